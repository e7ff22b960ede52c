"""Issue 14 part 3: a model built on the pinned qwen3_vl (the sibling the pinned vLLM has) the way
upstream's qwen3_5 builds its vision tower: P6 drops upstream's ``input_norm`` where the pinned code
shows the drop is equivalent, P7 passes the config the pinned tower reads, and the import the dropped
keyword alone read goes with it instead of being vendored."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from analysis_helpers import empty_plugin
from flagos_migrate.analysis import AnalysisContext, analyze_source
from flagos_migrate.migrate import backports
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree

from tests.test_backports import run_in_pinned_venv

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_mini"

# upstream's qwen3_vl, cut to what the fixture imports (the pinned 0.13.0 qwen3_vl has both classes)
UPSTREAM_QWEN3_VL = '''"""Upstream's Qwen3-VL pieces (fixture)."""

from torch import nn


class Qwen3VLForConditionalGeneration(nn.Module):
    pass
'''

# -- the vision tower the pinned qwen3_vl builds: P6 drops upstream's input_norm, P7 passes the config --

TOWER_USER = '''"""Inference-only Large model (fixture: upstream's way of building the Qwen3-VL tower)."""

from vllm.config import VllmConfig
from vllm.model_executor.layers.fusion.mm_input_norm import build_mm_input_norm

from .qwen3_vl import Qwen3_VisionTransformer, Qwen3VLForConditionalGeneration


class LargeForConditionalGeneration(Qwen3VLForConditionalGeneration):
    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        config = vllm_config.model_config.hf_config
        self.visual = Qwen3_VisionTransformer(
            config.vision_config,
            norm_eps=getattr(config, "rms_norm_eps", 1e-6),
            input_norm={norm},
            prefix=f"{{prefix}}.visual",
        )
'''

UPSTREAM_VISION = '''"""Upstream's vision helpers (fixture)."""

from vllm.config import MultiModalConfig, get_current_vllm_config


def get_multimodal_config() -> MultiModalConfig | None:
    return getattr(get_current_vllm_config().model_config, "multimodal_config", None)
'''


def migrate_tower(tmp_path: Path, norm: str) -> Migration:
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    models = up / "vllm" / "model_executor" / "models"
    (models / "qwen3_vl.py").write_text(UPSTREAM_QWEN3_VL + "\n\nclass Qwen3_VisionTransformer(nn.Module):\n    pass\n")
    (models / "vision.py").write_text(UPSTREAM_VISION)
    (models / "large.py").write_text(TOWER_USER.format(norm=norm))
    plugin = empty_plugin(tmp_path / "plugin", init="def register_model():\n    pass\n")
    return Migration("large", Upstream(open_upstream(str(up))), PluginTree(plugin), PinnedApis.load("0.13.0")).run()


def test_the_pinned_tower_gets_upstreams_config_and_no_input_norm(tmp_path):
    """On 0.13.0 (no MultiModalConfig.mm_device_do_normalize) build_mm_input_norm returns a cast to the
    tower's dtype, which the pinned tower's forward does itself: dropped, and its import with it (not
    vendored). The pinned tower reads the attention backend and data parallelism from the config it
    is given, upstream's from the current one: apply passes upstream's reader of it."""
    m = migrate_tower(tmp_path, "build_mm_input_norm(vllm_config.model_config)")
    assert m.model_unit.text == '''"""Inference-only Large model (fixture: upstream's way of building the Qwen3-VL tower)."""

from vllm.config import VllmConfig

from vllm.model_executor.models.qwen3_vl import Qwen3_VisionTransformer, Qwen3VLForConditionalGeneration
from vllm_fl.compat.model_executor_models_vision import get_multimodal_config
from vllm_fl.compat.config_defaults import with_config_defaults


class LargeForConditionalGeneration(Qwen3VLForConditionalGeneration):
    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        config = vllm_config.model_config.hf_config
        self.visual = Qwen3_VisionTransformer(
            with_config_defaults(config.vision_config, deepstack_visual_indexes=[]),
            norm_eps=getattr(config, "rms_norm_eps", 1e-6),
            prefix=f"{prefix}.visual",
            multimodal_config=get_multimodal_config(),
        )
'''
    assert "vllm_fl.compat.model_executor_layers_fusion_mm_input_norm" not in m.units
    assert {"P1", "P3", "P6", "P7"} <= m.model_unit.rules
    assert m.left() == []
    # the pinned tower reads vision_config.deepstack_visual_indexes unguarded, upstream's defaults it to []:
    # the helper that gives it that default comes along
    assert m.units["vllm_fl.compat.config_defaults"].text == backports.CONFIG_DEFAULTS.text()


def test_a_call_already_given_the_default_is_left_alone():
    """Negative: re-migrating (or a hand edit) that already wraps the config adds nothing; the bare
    config is found."""
    apis = PinnedApis.load("0.13.0")
    text = ("from vllm.model_executor.models.qwen3_vl import Qwen3_VisionTransformer\n"
            "from vllm_fl.compat.config_defaults import with_config_defaults\n\n"
            "def build(config, mm):\n"
            "    return Qwen3_VisionTransformer(with_config_defaults(config.vision_config, deepstack_visual_indexes=[]),"
            " multimodal_config=mm)\n")
    findings = analyze_source(text, AnalysisContext(apis, "vllm_fl.models.large", "vllm_fl/models/large.py"))
    assert not [f for f in findings if f.rule == "P7" and f.data.get("problem") == "config-defaults"]
    bare = text.replace("with_config_defaults(config.vision_config, deepstack_visual_indexes=[])", "config.vision_config")
    findings = analyze_source(bare, AnalysisContext(apis, "vllm_fl.models.large", "vllm_fl/models/large.py"))
    (f,) = [f for f in findings if f.rule == "P7" and f.data.get("problem") == "config-defaults"]
    assert f.data["wrap"] == [0, "deepstack_visual_indexes=[]"] and f.severity == "warning"


def test_an_input_norm_not_built_by_upstreams_factory_is_left(tmp_path):
    """Negative: any other module passed as input_norm may normalise: the keyword is not dropped."""
    m = migrate_tower(tmp_path, "config.input_norm")
    assert "input_norm=config.input_norm," in m.model_unit.text
    (f,) = [f for f in m.left() if f.rule == "P6"]
    assert f.data["kwarg"] == "input_norm" and not f.data["safe_drop"]


TOWER_RUNTIME = '''
    from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLVisionConfig
    from vllm.model_executor.models.qwen3_vl import Qwen3_VisionTransformer
    from config_defaults import with_config_defaults

    def tiny(**kw):
        return Qwen3VLVisionConfig(depth=2, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=16,
                                   patch_size=2, spatial_merge_size=2, temporal_patch_size=2,
                                   num_position_embeddings=16, **kw)

    lacking = tiny()
    del lacking.deepstack_visual_indexes  # a vision config without the field, as Qwen3.5's
    try:
        Qwen3_VisionTransformer(lacking, norm_eps=1e-6, prefix="visual")
        print("bare", "built")
    except AttributeError as exc:
        print("bare", "deepstack_visual_indexes" in str(exc))
    tower = Qwen3_VisionTransformer(with_config_defaults(lacking, deepstack_visual_indexes=[]), norm_eps=1e-6,
                                    prefix="visual")
    print("defaulted", tower.deepstack_visual_indexes == [] and len(tower.deepstack_merger_list) == 0)
    print("original_untouched", not hasattr(lacking, "deepstack_visual_indexes"))
    having = tiny(deepstack_visual_indexes=[1])
    print("same_object", with_config_defaults(having, deepstack_visual_indexes=[]) is having)
    print("kept", Qwen3_VisionTransformer(having, norm_eps=1e-6, prefix="v").deepstack_visual_indexes == [1])
'''


@pytest.mark.slow
def test_with_config_defaults_builds_the_real_pinned_tower_from_a_config_without_the_field(tmp_path):
    """On the real vLLM 0.13.0: its Qwen3_VisionTransformer fails on a vision config without
    deepstack_visual_indexes; through with_config_defaults it builds with upstream's [] (no deepstack
    mergers), the model's own config still lacks the field (hasattr tests elsewhere see what upstream
    sees), and a config that has it is passed through unchanged."""
    lines = run_in_pinned_venv(tmp_path, TOWER_RUNTIME)
    for check in ("bare", "defaulted", "original_untouched", "same_object", "kept"):
        assert lines[check] == "True", (check, lines)


# -- exaone4_5: a local subclass of the pinned Qwen2_5_VisionTransformer forwards its own input_norm --

FORWARDING = '''"""Inference-only Exa model (fixture: upstream's exaone4_5 tower)."""

from torch import nn
from vllm.config import VllmConfig
from vllm.model_executor.layers.fusion.mm_input_norm import build_mm_input_norm
from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VisionTransformer


class ExaVisionTransformer(Qwen2_5_VisionTransformer):
    def __init__(self, vision_config, norm_eps: float = 1e-6, input_norm: nn.Module | None = None, prefix: str = ""):
        super().__init__(
            vision_config=vision_config,
            norm_eps=norm_eps,
            input_norm=input_norm,
            prefix=prefix,
        )


class ExaForConditionalGeneration(nn.Module):
    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.visual = ExaVisionTransformer(
            config.vision_config,
            input_norm={norm},
            prefix=f"{{prefix}}.visual",
        ){tail}
'''


def _forwarding_p6(norm: str, tail: str = "") -> list:
    text = FORWARDING.format(norm=norm, tail=tail)
    findings = analyze_source(text, AnalysisContext(PinnedApis.load("0.13.0"), "vllm_fl.models.exa",
                                                    "vllm_fl/models/exa.py"))
    return [f for f in findings if f.rule == "P6" and f.data.get("kwarg") == "input_norm"]


def test_a_subclass_forwarding_upstreams_input_norm_into_the_pinned_qwen2_5_tower_drops_it(tmp_path):
    """exaone4_5: the pinned Qwen2_5_VisionTransformer.forward casts its input to its dtype itself, which
    is all upstream's build_mm_input_norm gives on 0.13.0; the subclass's one construction passes that
    factory, so the forwarded keyword is dropped (golden), the subclass keeps its parameter."""
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    (up / "vllm" / "model_executor" / "models" / "exa.py").write_text(
        FORWARDING.format(norm="build_mm_input_norm(vllm_config.model_config)", tail=""))
    plugin = empty_plugin(tmp_path / "plugin", init="def register_model():\n    pass\n")
    m = Migration("exa", Upstream(open_upstream(str(up))), PluginTree(plugin), PinnedApis.load("0.13.0")).run()
    text = m.model_unit.text
    assert '''        super().__init__(
            vision_config=vision_config,
            norm_eps=norm_eps,
            prefix=prefix,
        )
''' in text
    assert "input_norm=build_mm_input_norm(vllm_config.model_config)," in text
    assert not [f for f in m.left() if f.rule == "P6"]


@pytest.mark.parametrize("norm,tail", [
    ("config.input_norm", ""),  # a module that may normalise
    ("build_mm_input_norm(vllm_config.model_config)", "\n        self.visual.input_norm.input_dtype"),  # read back
])
def test_a_forwarded_input_norm_that_may_differ_is_left(norm, tail):
    """Negatives: another value at a construction, or upstream's stored `.input_norm` read later: kept."""
    (f,) = _forwarding_p6(norm, tail)
    assert not f.data["safe_drop"]
    (ok,) = _forwarding_p6("build_mm_input_norm(vllm_config.model_config)")
    assert ok.data["safe_drop"] and ok.data["callee"] == "super().__init__"


def test_a_subclass_built_without_the_keyword_is_left():
    """Negative: a construction that omits input_norm relies on upstream's default, not on the table."""
    text = FORWARDING.format(norm="build_mm_input_norm(vllm_config.model_config)",
                             tail="\n        self.other = ExaVisionTransformer(config.vision_config)")
    findings = analyze_source(text, AnalysisContext(PinnedApis.load("0.13.0"), "vllm_fl.models.exa",
                                                    "vllm_fl/models/exa.py"))
    (f,) = [f for f in findings if f.rule == "P6" and f.data.get("kwarg") == "input_norm"]
    assert not f.data["safe_drop"]
