"""P25 settled where the pinned code allows it: upstream's MODELS_CONFIG_MAP hook for a registered
architecture is vendored (P16) when its code needs only what the pinned vLLM has, and register_model()
maps the architecture to it (the pinned VllmConfig consults MODELS_CONFIG_MAP at the same point as
upstream's); a hook that needs more stays a P25 finding."""

from __future__ import annotations

import shutil
from pathlib import Path

from analysis_helpers import empty_plugin
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.registration import plan_registration
from flagos_migrate.plugin.tree import PluginTree, parse_registrations

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_mini"

# upstream's config.py, cut down (ColQwen3_5 is in the P25 table: the pinned map has no entry for it)
HOOKS = '''"""Model-specific config hooks (fixture)."""

from typing import TYPE_CHECKING

from vllm.logger import init_logger
{extra_import}
if TYPE_CHECKING:
    from vllm.config import VllmConfig

logger = init_logger(__name__)


class VerifyAndUpdateConfig:
    @staticmethod
    def verify_and_update_config(vllm_config: "VllmConfig") -> None:
        raise NotImplementedError


class ColQwen3_5Config(VerifyAndUpdateConfig):
    @staticmethod
    def verify_and_update_config(vllm_config: "VllmConfig") -> None:
        cache_config = vllm_config.cache_config
        mamba_ssm_dtype = getattr(vllm_config.model_config.hf_text_config, "mamba_ssm_dtype", None)
        if cache_config.mamba_ssm_cache_dtype == "auto" and mamba_ssm_dtype is not None:
            cache_config.mamba_ssm_cache_dtype = {value}
'''

MODEL = '''"""Inference-only ColQwen3.5 (fixture)."""

from torch import nn


class ColQwen3_5(nn.Module):
    pass
'''


def migrate(tmp_path: Path, extra_import: str = "", value: str = "mamba_ssm_dtype") -> tuple[Migration, Path]:
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    models = up / "vllm" / "model_executor" / "models"
    (models / "config.py").write_text(HOOKS.format(extra_import=extra_import, value=value))
    (models / "colqwen3_5.py").write_text(MODEL)
    registry = models / "registry.py"
    registry.write_text(registry.read_text().replace(
        "_MULTIMODAL_MODELS = {", '_MULTIMODAL_MODELS = {\n    "ColQwen3_5": ("colqwen3_5", "ColQwen3_5"),'))
    plugin = empty_plugin(tmp_path / "plugin", init="def register_model():\n    pass\n")
    m = Migration("colqwen3_5", Upstream(open_upstream(str(up))), PluginTree(plugin), PinnedApis.load("0.13.0")).run()
    return m, plugin


def test_upstreams_hook_is_vendored_and_registered(tmp_path):
    m, plugin = migrate(tmp_path)
    assert m.config_hooks == [("ColQwen3_5", "ColQwen3_5Config", "vllm_fl.compat.model_executor_models_config")]
    assert [f.rule for f in m.left()] == []
    assert [f.rule for f in m.fixed() if f.rule == "P25"] == ["P25"]
    hook = m.units["vllm_fl.compat.model_executor_models_config"].text
    # only the hook is copied; its base class is the pinned vLLM's own
    assert hook.split('"""\n\n', 1)[1] == '''from vllm.model_executor.models.config import VerifyAndUpdateConfig


class ColQwen3_5Config(VerifyAndUpdateConfig):
    @staticmethod
    def verify_and_update_config(vllm_config: "VllmConfig") -> None:
        cache_config = vllm_config.cache_config
        mamba_ssm_dtype = getattr(vllm_config.model_config.hf_text_config, "mamba_ssm_dtype", None)
        if cache_config.mamba_ssm_cache_dtype == "auto" and mamba_ssm_dtype is not None:
            cache_config.mamba_ssm_cache_dtype = mamba_ssm_dtype


__all__ = [
    "ColQwen3_5Config",
]
'''
    init = plugin / "vllm_fl" / "__init__.py"
    plan = plan_registration(init.read_text(), init, "ColQwen3.5", m.model_unit.module, m.model_registrations(),
                             m.config_registrations(), m.config_hooks)
    assert plan.text == '''def register_model():
    pass

    # ColQwen3_5 config hook (upstream's MODELS_CONFIG_MAP entry; the pinned map lacks it)
    try:
        from vllm.model_executor.models.config import MODELS_CONFIG_MAP
        from vllm_fl.compat.model_executor_models_config import ColQwen3_5Config

        MODELS_CONFIG_MAP["ColQwen3_5"] = ColQwen3_5Config
    except Exception as e:
        __import__("logging").getLogger(__name__).error("Failed to register ColQwen3_5 config hook: %s", e)
    # ColQwen3.5 model
    try:
        from vllm import ModelRegistry

        ModelRegistry.register_model("ColQwen3_5", "vllm_fl.models.colqwen3_5:ColQwen3_5")
    except Exception as e:
        __import__("logging").getLogger(__name__).error("Failed to register ColQwen3.5 model: %s", e)
'''
    assert 'MODELS_CONFIG_MAP["ColQwen3_5"] = vllm_fl.compat.model_executor_models_config.ColQwen3_5Config' in plan.added
    init.write_text(plan.text)
    assert parse_registrations(init).config_hooks == {"ColQwen3_5"}
    # registered once: a second plan adds nothing
    again = plan_registration(plan.text, init, "ColQwen3.5", m.model_unit.module, m.model_registrations(),
                              m.config_registrations(), m.config_hooks)
    assert again.added == [] and again.text == plan.text


def test_a_hook_needing_what_the_pinned_vllm_lacks_stays_a_finding(tmp_path):
    """Negative: the hook's code imports a helper 0.13.0 does not have (and upstream's slice cannot bring)."""
    m, _ = migrate(tmp_path, "from vllm.utils.no_such_module import pick_dtype\n", "pick_dtype(mamba_ssm_dtype)")
    assert m.config_hooks == []
    (f,) = [f for f in m.left() if f.rule == "P25"]
    assert "applies `ColQwen3_5Config`" in f.message
    assert "vllm_fl.compat.model_executor_models_config" not in m.units


# A second hook in the same upstream file, for another model, one the catalog does not port (this example was jina's
# JinaEmbeddingsV5ModelConfig, which P25 ported_hooks now ports). It runs on the ModelConfig (verify_and_update_model_config),
# which the pinned VllmConfig never calls.
OTHER_HOOK = '''

class EmbeddingGemma2ModelConfig(VerifyAndUpdateConfig):
    @staticmethod
    def verify_and_update_model_config(model_config) -> None:
        model_config.hf_config.num_labels = 1
'''


def _two_models(tmp_path: Path, other_hook: str):
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    models = up / "vllm" / "model_executor" / "models"
    (models / "config.py").write_text(HOOKS.format(extra_import="", value="mamba_ssm_dtype") + other_hook)
    (models / "colqwen3_5.py").write_text(MODEL)
    (models / "embedding_gemma2.py").write_text(MODEL.replace("ColQwen3.5", "EmbeddingGemma2")
                                                .replace("ColQwen3_5", "EmbeddingGemma2Model"))
    registry = models / "registry.py"
    registry.write_text(registry.read_text().replace("_MULTIMODAL_MODELS = {", '_MULTIMODAL_MODELS = {\n'
                        '    "ColQwen3_5": ("colqwen3_5", "ColQwen3_5"),\n'
                        '    "EmbeddingGemma2Model": ("embedding_gemma2", "EmbeddingGemma2Model"),'))
    plugin = empty_plugin(tmp_path / "plugin", init="def register_model():\n    pass\n")
    return Upstream(open_upstream(str(up))), plugin


def test_a_hook_upstream_runs_on_the_model_config_stays_a_finding(tmp_path):
    """Negative: vendored and registered, EmbeddingGemma2ModelConfig would be called as verify_and_update_config
    (the pinned base's, which raises NotImplementedError) and its model-config part never: P25 stays, saying why."""
    source, plugin = _two_models(tmp_path, OTHER_HOOK)
    other = Migration("embedding_gemma2", source, PluginTree(plugin), PinnedApis.load("0.13.0")).run()
    (p25,) = other.left()
    assert p25.rule == "P25" and "applies `EmbeddingGemma2ModelConfig`" in p25.message
    assert "defines verify_and_update_model_config" in p25.fix and "never calls" in p25.fix
    # the finding says what the pinned model is built without
    assert p25.message.endswith("; its verify_and_update_model_config, which the pinned vLLM never calls, does "
                                "`model_config.hf_config.num_labels = 1`")
    assert other.config_hooks == [] and "vllm_fl.compat.model_executor_models_config" not in other.units
    # not even copied: an unregistered copy would stay in the shared compat file, its P24 refusing later hooks there
    assert "vllm_fl.compat.model_executor_models_config" not in other.compat_units


def test_hooks_of_two_migrations_share_one_file(tmp_path):
    """The compat file of hooks is shared: its text is the union of every migration's hooks."""
    source, plugin = _two_models(tmp_path, OTHER_HOOK.replace("verify_and_update_model_config(model_config)",
                                                              "verify_and_update_config(vllm_config)")
                                 .replace("model_config.hf_config", "vllm_config.model_config.hf_config"))
    apis = PinnedApis.load("0.13.0")
    other = Migration("embedding_gemma2", source, PluginTree(plugin), apis).run()
    assert other.left() == []
    assert [h[:2] for h in other.config_hooks] == [("EmbeddingGemma2Model", "EmbeddingGemma2ModelConfig")]
    hooks = plugin / "vllm_fl" / "compat" / "model_executor_models_config.py"
    hooks.parent.mkdir(parents=True, exist_ok=True)
    (hooks.parent / "__init__.py").write_text("")
    hooks.write_text(other.units["vllm_fl.compat.model_executor_models_config"].text)  # as apply writes it
    col = Migration("colqwen3_5", source, PluginTree(plugin), apis).run()
    text = col.units["vllm_fl.compat.model_executor_models_config"].text
    assert "class EmbeddingGemma2ModelConfig" in text and "class ColQwen3_5Config" in text  # one shared file
    assert col.left() == [] and col.others_left() == []


def test_the_hook_comment_names_the_hooks_architecture_not_the_models_first(tmp_path):
    """jina registers JinaEmbeddingsV5Model and JinaForRanking, and only the latter has a hook (P25's port): the
    block was announced as "JinaEmbeddingsV5Model config hook", the model's display name, its first architecture.
    Qwen2ForRewardModel's replaces a pinned entry of that name (pinned_hook_differs), and says so."""
    init = tmp_path / "__init__.py"
    init.write_text("def register_model():\n    pass\n")
    plan = plan_registration(init.read_text(), init, "JinaEmbeddingsV5Model", "vllm_fl.models.jina",
                             [("JinaEmbeddingsV5Model", "JinaEmbeddingsV5Model"), ("JinaForRanking", "JinaForRanking")],
                             [], [("JinaForRanking", "JinaForRankingConfig", "vllm_fl.compat.config_hook_ports"),
                                  ("Qwen2ForRewardModel", "Qwen2ForRewardModelConfig",
                                   "vllm_fl.compat.config_hook_ports")])
    assert plan.text == '''def register_model():
    pass

    # JinaForRanking config hook (upstream's MODELS_CONFIG_MAP entry; the pinned map lacks it)
    try:
        from vllm.model_executor.models.config import MODELS_CONFIG_MAP
        from vllm_fl.compat.config_hook_ports import JinaForRankingConfig

        MODELS_CONFIG_MAP["JinaForRanking"] = JinaForRankingConfig
    except Exception as e:
        __import__("logging").getLogger(__name__).error("Failed to register JinaForRanking config hook: %s", e)
    # Qwen2ForRewardModel config hook (upstream's MODELS_CONFIG_MAP entry; the pinned map's does otherwise)
    try:
        from vllm.model_executor.models.config import MODELS_CONFIG_MAP
        from vllm_fl.compat.config_hook_ports import Qwen2ForRewardModelConfig

        MODELS_CONFIG_MAP["Qwen2ForRewardModel"] = Qwen2ForRewardModelConfig
    except Exception as e:
        __import__("logging").getLogger(__name__).error("Failed to register Qwen2ForRewardModel config hook: %s", e)
    # JinaEmbeddingsV5Model model
    try:
        from vllm import ModelRegistry

        ModelRegistry.register_model("JinaEmbeddingsV5Model", "vllm_fl.models.jina:JinaEmbeddingsV5Model")
        ModelRegistry.register_model("JinaForRanking", "vllm_fl.models.jina:JinaForRanking")
    except Exception as e:
        __import__("logging").getLogger(__name__).error("Failed to register JinaEmbeddingsV5Model model: %s", e)
'''
