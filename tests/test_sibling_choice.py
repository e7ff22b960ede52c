"""Issue 13 class 9, sibling choice: a sibling module the pinned vLLM has stays the pinned one when
the migrated file needs from it only what it has plus plain upstream helpers, which come along as
P16 slices; anything else (a class, a helper that writes its arguments' attributes) brings
upstream's sibling along as before."""

from __future__ import annotations

import shutil
from pathlib import Path

from analysis_helpers import empty_plugin
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_mini"

# upstream's qwen3_vl, cut down: the pinned 0.13.0 qwen3_vl has Qwen3VLForConditionalGeneration, not the rest
SIBLING = '''"""Upstream's Qwen3-VL pieces (fixture)."""

from torch import nn

from vllm.config import VllmConfig


class Qwen3VLForConditionalGeneration(nn.Module):
    pass


class Qwen3VLNewTower(nn.Module):
    pass


def mrope_positions_factor(vllm_config: VllmConfig) -> int:
    spec = vllm_config.speculative_config
    model_config = (spec and spec.target_model_config) or vllm_config.model_config
    mm_config = model_config.multimodal_config
    pruned = mm_config is not None and mm_config.is_multimodal_pruning_enabled()
    return 4 if pruned else 1


def mark_pruned(model: nn.Module) -> None:
    model.pruned = True
'''

MODEL = '''"""Inference-only Large model (fixture)."""

from vllm.config import VllmConfig

from .qwen3_vl import Qwen3VLForConditionalGeneration, {extra}


class LargeForConditionalGeneration(Qwen3VLForConditionalGeneration):
    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        self.factor = {call}
'''


def migrate(tmp_path: Path, extra: str, call: str) -> Migration:
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    models = up / "vllm" / "model_executor" / "models"
    (models / "qwen3_vl.py").write_text(SIBLING)
    (models / "large.py").write_text(MODEL.format(extra=extra, call=call))
    plugin = empty_plugin(tmp_path / "plugin", init="def register_model():\n    pass\n")
    return Migration("large", Upstream(open_upstream(str(up))), PluginTree(plugin), PinnedApis.load("0.13.0")).run()


def test_the_pinned_sibling_stays_and_a_plain_helper_it_lacks_is_vendored(tmp_path):
    m = migrate(tmp_path, "mrope_positions_factor", "mrope_positions_factor(vllm_config)")
    assert m.model_unit.text == '''"""Inference-only Large model (fixture)."""

from vllm.config import VllmConfig

from vllm.model_executor.models.qwen3_vl import Qwen3VLForConditionalGeneration
from vllm_fl.compat.model_executor_models_qwen3_vl import mrope_positions_factor


class LargeForConditionalGeneration(Qwen3VLForConditionalGeneration):
    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        self.factor = mrope_positions_factor(vllm_config)
'''
    assert "vllm_fl.models.qwen3_vl" not in m.units
    compat = m.units["vllm_fl.compat.model_executor_models_qwen3_vl"].text
    assert "def mrope_positions_factor(vllm_config: VllmConfig) -> int:" in compat
    assert "class " not in compat and "mark_pruned" not in compat
    assert m.left() == []


def test_a_class_only_upstreams_sibling_has_brings_the_sibling(tmp_path):
    """Negative: a class keeps its identity (isinstance, registries); it is not sliced."""
    m = migrate(tmp_path, "Qwen3VLNewTower", "Qwen3VLNewTower()")
    assert "from vllm_fl.models.qwen3_vl import Qwen3VLForConditionalGeneration, Qwen3VLNewTower" in m.model_unit.text
    assert m.units["vllm_fl.models.qwen3_vl"].role == "closure"


def test_a_helper_writing_its_arguments_attributes_brings_the_sibling(tmp_path):
    """Negative: such a helper talks to what it is given, which the pinned sibling would build otherwise."""
    m = migrate(tmp_path, "mark_pruned", "mark_pruned(self)")
    assert "from vllm_fl.models.qwen3_vl import Qwen3VLForConditionalGeneration, mark_pruned" in m.model_unit.text
    assert "vllm_fl.models.qwen3_vl" in m.units
