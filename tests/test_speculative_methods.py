"""P38: draft architectures upstream builds only through a speculative method the pinned vLLM lacks
(extract_hidden_states was "0 left for you" and failed construct with a bare AssertionError: no pinned
config reaches it). Reported on the registration by plan/apply and the validator alike; the table is
checked against both vLLM sources."""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import pytest
from analysis_helpers import GOOD_PLUGIN, empty_plugin, pinned
from flagos_migrate.analysis.inherited import framework_findings, speculative_method
from flagos_migrate.catalog.tables import SPECULATIVE_ONLY
from flagos_migrate.commands.validate import validate

UPSTREAM_SRC = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0"))
PINNED_VENV = Path(os.environ.get("MMF_PINNED_VENV", Path.home() / ".cache/mmf/venv-vllm013"))

MESSAGE = (
    "architecture ExtractHiddenStatesModel: upstream builds it only as the draft of `--speculative-config "
    "'{\"method\": \"extract_hidden_states\"}'` (its SpeculativeConfig and its proposer); the pinned vLLM 0.13.0's "
    "SpeculativeConfig has no method 'extract_hidden_states' (SpeculativeMethod in vllm/config/speculative.py) "
    "and no proposer builds this class, so the registered draft is never used")


def test_the_finding_names_the_method_and_the_pinned_code():
    (f,) = framework_findings("ExtractHiddenStatesModel", "m.py", 3, 0, version="0.13.0")
    assert (f.rule, f.line, f.severity, f.message) == ("P38", 3, "error", MESSAGE)
    assert f.data == {"arch": "ExtractHiddenStatesModel", "method": "extract_hidden_states"}
    assert speculative_method("DFlashLagunaForCausalLM", "0.13.0") == "dflash"
    assert speculative_method("Qwen3DSparkModel", "0.13.0") == "dspark"


def test_negatives_other_drafts_and_other_pins():
    # EAGLE and MTP drafts: the pinned SpeculativeConfig has those methods
    for arch in ("EagleLlamaForCausalLM", "Eagle3LlamaForCausalLM", "DeepSeekMTPModel", "LlamaForCausalLM"):
        assert [f for f in framework_findings(arch, "m.py", 1, version="0.13.0") if f.rule == "P38"] == []
    # a pin the table has no row for is not judged
    assert framework_findings("ExtractHiddenStatesModel", "m.py", 1, version="0.99.0") == []


def test_the_validator_reports_it_on_the_registration(tmp_path):
    plugin = tmp_path / "plugin"
    shutil.copytree(GOOD_PLUGIN, plugin)
    assert [f for f in validate(str(plugin), all_models=True).findings if f.rule == "P38"] == []
    init = plugin / "vllm_fl" / "__init__.py"
    text = init.read_text()
    anchor = "def register_model():\n"
    assert anchor in text
    init.write_text(text.replace(anchor, anchor + "    from vllm import ModelRegistry\n\n    ModelRegistry.register_model("
                                 '"ExtractHiddenStatesModel", "vllm_fl.models.extract_hidden_states:'
                                 'ExtractHiddenStatesModel")\n', 1))
    p38 = [f for f in validate(str(plugin), all_models=True).findings if f.rule == "P38"]
    assert [(f.file, f.message) for f in p38] == [("vllm_fl/__init__.py", MESSAGE)]


def _literals(tree: ast.Module, name: str, seen: set[str] | None = None) -> set[str]:
    """The strings of a ``Name = Literal[...]`` alias, following the aliases it nests."""
    seen = seen if seen is not None else set()
    seen.add(name)
    node = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                and [getattr(t, "id", None) for t in n.targets] == [name])
    out: set[str] = set()
    for e in ast.walk(node.slice):
        if isinstance(e, ast.Constant) and isinstance(e.value, str):
            out.add(e.value)
        elif isinstance(e, ast.Name) and e.id not in seen and e.id != "Literal":
            out |= _literals(tree, e.id, seen)
    return out


def _registry(root: Path, name: str) -> dict[str, tuple]:
    tree = ast.parse((root / "vllm/model_executor/models/registry.py").read_text())
    node = next(n.value for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                and getattr(n.targets[0] if isinstance(n, ast.Assign) else n.target, "id", None) == name)
    return {k.value: ast.literal_eval(v) for k, v in zip(node.keys, node.values) if k is not None}


@pytest.mark.skipif(not (UPSTREAM_SRC.is_dir() and (PINNED_VENV / "lib").is_dir()),
                    reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC) and the pinned venv (MMF_PINNED_VENV)")
def test_the_table_is_upstreams_methods_the_pinned_config_lacks_and_their_drafts():
    pinned_root = next(PINNED_VENV.glob("lib/python3*/site-packages"))
    rel = Path("vllm/config/speculative.py")
    up = _literals(ast.parse((UPSTREAM_SRC / rel).read_text()), "SpeculativeMethod")
    pin = _literals(ast.parse((pinned_root / rel).read_text()), "SpeculativeMethod")
    table = SPECULATIVE_ONLY["0.13.0"]
    assert set(table) <= up - pin
    drafts = _registry(UPSTREAM_SRC, "_SPECULATIVE_DECODING_MODELS")
    pinned_drafts = _registry(pinned_root, "_SPECULATIVE_DECODING_MODELS")
    listed = {arch for archs in table.values() for arch in archs}
    assert listed <= set(drafts) and not listed & set(pinned_drafts)
    # complete: every upstream draft registered for these methods' classes is in the table
    marks = {"extract_hidden_states": "ExtractHiddenStates", "dflash": "DFlash", "dspark": "DSpark"}
    # XPress drafts are served under method="dflash" by either name (EAGLEConfig renames Qwen3XPressModel to
    # DFlashQwen3XPressModel): upstream's XPRESS_ARCHITECTURES
    spec = ast.parse((UPSTREAM_SRC / rel).read_text())
    xpress = next(ast.literal_eval(n.value.args[0]) for n in spec.body if isinstance(n, ast.Assign)
                  and getattr(n.targets[0], "id", None) == "XPRESS_ARCHITECTURES")
    # and the drafts upstream's v2 runner picks a dflash speculator for by name (LiLiCorrDraftModel)
    init = ast.parse((UPSTREAM_SRC / "vllm/v1/worker/gpu/spec_decode/__init__.py").read_text())
    branch = next(n for n in ast.walk(init) if isinstance(n, ast.If) and isinstance(n.test, ast.Compare)
                  and getattr(n.test.comparators[0], "value", None) == "dflash")
    named = {c.value for stmt in branch.body for c in ast.walk(stmt)
             if isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value in drafts}
    extra = {"dflash": set(xpress) | named}
    for method, mark in marks.items():
        expected = {a for a, (_, cls) in drafts.items() if mark in a or mark in cls} | extra.get(method, set())
        assert set(table[method]) == expected, method


@pytest.mark.slow
@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm").is_dir(), reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
def test_extract_hidden_states_is_no_longer_zero_left(tmp_path):
    from flagos_migrate.migrate.engine import Migration
    from flagos_migrate.migrate.upstream import Upstream, open_upstream
    from flagos_migrate.plugin.tree import PluginTree

    plugin = empty_plugin(tmp_path / "plugin")
    m = Migration("extract_hidden_states", Upstream(open_upstream(str(UPSTREAM_SRC))), PluginTree(plugin),
                  pinned()).run()
    # (and its op reads the forward context's slot_mapping, which 0.13.0's runner never sets: P9 instance_getters)
    assert [(f.rule, f.message) for f in m.left()] == [
        ("P9", "`forward_context.slot_mapping`: ForwardContext of the pinned vllm has no attribute `slot_mapping`"),
        ("P38", MESSAGE)]


def test_eagle3_drafts_of_targets_the_pinned_config_refuses():
    """deepseek_eagle3 failed construct (ValidationError: Eagle3 is only supported for ['llama', 'qwen', 'minicpm',
    'gpt_oss'] models) with no finding saying the drafts cannot be served on 0.13.0."""
    for arch, target in (("Eagle3DeepseekV2ForCausalLM", "deepseek_v2"), ("Eagle3DeepseekV3ForCausalLM", "deepseek_v3")):
        (f,) = [f for f in framework_findings(arch, "m.py", 2, version="0.13.0") if f.rule == "P38"]
        assert f.severity == "error" and f.data == {"arch": arch, "method": "eagle3", "target": target}
        assert "allows eagle3 only for targets whose model_type names one of llama, qwen, minicpm, gpt_oss" in f.message
    # negatives: a supported target's draft, and another pin
    assert [f for f in framework_findings("Eagle3LlamaForCausalLM", "m.py", 1, version="0.13.0") if f.rule == "P38"] == []
    assert framework_findings("Eagle3DeepseekV2ForCausalLM", "m.py", 1, version="0.99.0") == []


@pytest.mark.skipif(not (UPSTREAM_SRC.is_dir() and (PINNED_VENV / "lib").is_dir()),
                    reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC) and the pinned venv (MMF_PINNED_VENV)")
def test_the_refused_targets_table_is_the_pinned_check_and_upstreams_drafts():
    from flagos_migrate.catalog.tables import SPECULATIVE_REFUSED

    pinned_root = next(PINNED_VENV.glob("lib/python3*/site-packages"))
    rel = Path("vllm/config/speculative.py")

    def supported(root):
        return next((ast.literal_eval(n.value) for n in ast.walk(ast.parse((root / rel).read_text()))
                     if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "eagle3_target_supported"), None)

    entry = SPECULATIVE_REFUSED["0.13.0"]["eagle3"]
    assert entry["supported"] == supported(pinned_root) and supported(UPSTREAM_SRC) is None  # upstream dropped it
    drafts = _registry(UPSTREAM_SRC, "_SPECULATIVE_DECODING_MODELS")
    for arch, target in entry["archs"].items():
        assert arch in drafts and not any(s in target for s in entry["supported"])
