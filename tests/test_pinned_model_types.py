"""P46: a sub-config's model_type compared with the name upstream's config module gives it, where the pinned
vLLM's config module builds its own class of another name. Ovis2 failed construct on every checkpoint
(``ValueError: Unsupported visual tokenizer model_type: aimv2``) with no finding naming it: detector, golden
before/after, negatives, and the table re-read from the pinned and reference sources."""

from __future__ import annotations

import ast
import os
import textwrap
from pathlib import Path

import pytest
from analysis_helpers import PINNED_VENV, UPSTREAM_SRC, analyze, migrate_example, only
from flagos_migrate.catalog.tables import PINNED_MODEL_TYPES

REFERENCE_VENV = Path(os.environ.get("MMF_REFERENCE_VENV", Path.home() / ".cache/mmf/venv-vllm033"))

# upstream ovis.py's _init_backbone, cut down; plus the tuple form and a string that is no comparison
OVIS = '''
def init_backbone(config):
    model_type = config.backbone_config.model_type
    if model_type == "aimv2_vision_model":
        return "AIMv2Model"
    elif model_type == "siglip_vision_model":
        return "SiglipVisionModel"
    raise ValueError(f"Unsupported visual tokenizer model_type: {model_type}")


def is_aimv2(config) -> bool:
    return config.backbone_config.model_type in ("aimv2_vision_model",)


def label() -> str:
    return "aimv2_vision_model"
'''

OVIS_AFTER = (OVIS.replace('== "aimv2_vision_model"', '== "aimv2"')
              .replace('in ("aimv2_vision_model",)', 'in ("aimv2",)'))


def test_each_comparison_with_a_model_type_read_is_reported_with_the_pinned_name():
    found = only(analyze(OVIS, module="vllm_fl.models.ovis"), "P46")
    assert [(f.line, f.col, f.data["value"], f.data["pinned"]) for f in found] == [
        (4, 21, "aimv2_vision_model", "aimv2"), (12, 49, "aimv2_vision_model", "aimv2")]
    assert found[0].message == (
        '"aimv2_vision_model" is the model_type of transformers.Aimv2VisionConfig, the class upstream\'s config '
        "module builds this sub-config as; the pinned vLLM's builds it as its own "
        'vllm.transformers_utils.configs.ovis.AIMv2Config (model_type "aimv2"), so this comparison never holds')
    assert found[0].severity == "error"


def test_the_migration_writes_the_pinned_name_and_nothing_else(tmp_path):
    m = migrate_example(tmp_path, OVIS, "ovis")
    assert m.model_unit.text == textwrap.dedent(OVIS_AFTER)
    assert "P46" in m.model_unit.rules and not [f for f in m.left() if f.rule == "P46"]
    assert only(analyze(OVIS_AFTER, module="vllm_fl.models.ovis"), "P46") == []


def test_negatives_another_module_and_a_name_not_in_the_table():
    # the table is per model module: another module's Aimv2VisionConfig is transformers' class on both stacks
    assert only(analyze(OVIS, module="vllm_fl.models.demo"), "P46") == []
    # siglip_vision_model is the pinned config's name too (not in the table)
    assert only(analyze(OVIS.replace("aimv2_vision_model", "other"), module="vllm_fl.models.ovis"), "P46") == []


def _class_model_type(src: str, cls: str) -> str:
    node = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == cls)
    for s in node.body:
        if isinstance(s, (ast.Assign, ast.AnnAssign)):
            targets = s.targets if isinstance(s, ast.Assign) else [s.target]
            if any(getattr(t, "id", None) == "model_type" for t in targets):
                return ast.literal_eval(s.value)
    raise AssertionError(f"{cls} has no model_type")


@pytest.mark.skipif(not ((PINNED_VENV / "lib").is_dir() and (REFERENCE_VENV / "lib").is_dir()
                         and (UPSTREAM_SRC / "vllm").is_dir()),
                    reason="needs the pinned venv, the reference venv and upstream vLLM 0.33.0's source")
def test_the_table_is_what_each_config_module_builds_and_the_pinned_tower_reads():
    """Each entry: upstream's config module builds the sub-config as upstream_class, whose model_type (reference
    transformers) is the key; the pinned config module builds it as pinned_class, whose model_type is the pinned
    name; the pinned tower module of the model reads a field only the pinned class has (so only that name)."""
    pinned_site = next(PINNED_VENV.glob("lib/python3*/site-packages"))
    ref_site = next(REFERENCE_VENV.glob("lib/python3*/site-packages"))
    for module, entries in PINNED_MODEL_TYPES["0.13.0"].items():
        upstream_cfg = (UPSTREAM_SRC / "vllm/transformers_utils/configs" / f"{module}.py").read_text()
        for upstream_name, e in entries.items():
            pmod, pcls = e["pinned_class"].split(":")
            pinned_src = (pinned_site / (pmod.replace(".", "/") + ".py")).read_text()
            assert _class_model_type(pinned_src, pcls) == e["pinned"], module
            assert f"{pcls}(**backbone_config)" in pinned_src, module
            umod, ucls = e["upstream_class"].split(":")
            assert f"{ucls}(**backbone_config)" in upstream_cfg, module
            tf5 = next(p for p in (ref_site / "transformers/models").glob("*/configuration_*.py")
                       if f"class {ucls}(" in p.read_text())
            assert _class_model_type(tf5.read_text(), ucls) == upstream_name, module
    # ovis's tower: the pinned AIMv2Model reads use_bias, which AIMv2Config declares and Aimv2VisionConfig lacks
    tower = (pinned_site / "vllm/model_executor/models/aimv2.py").read_text()
    assert "config.use_bias" in tower
    tf5_aimv2 = (ref_site / "transformers/models/aimv2/configuration_aimv2.py").read_text()
    assert "use_bias" not in tf5_aimv2 and "mlp_bias" in tf5_aimv2


@pytest.mark.slow
@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm").is_dir(), reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
def test_the_real_ovis_compares_the_pinned_name(tmp_path):
    """The real ovis, whose construct failed on every checkpoint (ValueError: Unsupported visual tokenizer
    model_type: aimv2) with no finding naming it: the backbone comparison takes the pinned name, P46 fixed."""
    from analysis_helpers import empty_plugin, pinned
    from flagos_migrate.migrate.engine import Migration
    from flagos_migrate.migrate.upstream import Upstream, open_upstream
    from flagos_migrate.plugin.tree import PluginTree

    plugin = empty_plugin(tmp_path / "plugin")
    m = Migration("ovis", Upstream(open_upstream(str(UPSTREAM_SRC))), PluginTree(plugin), pinned()).run()
    assert '        if model_type == "aimv2":\n' in m.model_unit.text
    assert "aimv2_vision_model" not in m.model_unit.text
    assert "P46" in m.model_unit.rules and not [f for f in m.left() if f.rule == "P46"]
