"""The plugin's own MODELS_CONFIG_MAP entries at runtime (``verify/runtime.py`` plugin_config_hooks, the worker's
``_install_config_hooks``).

A P25 finding is answered by a hook of the plugin's own in register_model() (``MODELS_CONFIG_MAP["Arch"] = Hook``),
which the pinned VllmConfig runs; apply writes one itself where it vendors upstream's. The runtime check installs
those entries as register_model() does, or it would verify the model without the hook a serve runs.
"""

from __future__ import annotations

import os

import pytest
from analysis_helpers import UPSTREAM_SRC, apply_and_verify_run
from flagos_migrate.verify.runtime import plugin_config_hooks

INIT = '''def register_model():
    try:
        from vllm.model_executor.models.config import MODELS_CONFIG_MAP
        from vllm_fl.compat.model_executor_models_config import ColQwen3_5Config
        from vllm_fl.reward_hooks import RawReward as Raw

        MODELS_CONFIG_MAP["ColQwen3_5"] = ColQwen3_5Config
        MODELS_CONFIG_MAP["Qwen2ForRewardModel"] = Raw
    except Exception as e:
        __import__("logging").getLogger(__name__).error("Failed: %s", e)
    import os
    from elsewhere.hooks import Foreign
    from vllm.model_executor.models.config import JinaRobertaModelConfig
    from vllm.model_executor.models.bert import BertPooler

    MODELS_CONFIG_MAP["Evil"] = os.system
    MODELS_CONFIG_MAP["Other"] = Foreign
    MODELS_CONFIG_MAP["ColBERTJinaRobertaModel"] = JinaRobertaModelConfig
    MODELS_CONFIG_MAP["Pooled"] = BertPooler
'''


def test_the_hooks_register_model_maps_are_read_not_run(tmp_path):
    pkg = tmp_path / "vllm_fl"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(INIT)
    assert plugin_config_hooks(pkg) == [
        # the pinned vLLM's own hook module (P25 pinned_hooks), not any other pinned module
        {"architecture": "ColBERTJinaRobertaModel", "module": "vllm.model_executor.models.config",
         "class": "JinaRobertaModelConfig"},
        {"architecture": "ColQwen3_5", "module": "vllm_fl.compat.model_executor_models_config",
         "class": "ColQwen3_5Config"},
        {"architecture": "Qwen2ForRewardModel", "module": "vllm_fl.reward_hooks", "class": "RawReward"},
    ]  # only the plugin's own classes: os.system and another package's class are not the plugin's hooks
    assert plugin_config_hooks(tmp_path / "missing") == []


def test_the_p25_port_of_the_reward_hook_runs_and_matches_upstream(tmp_path):
    """qwen2_rm was "0 left" and its reward pooler gave sigmoid(score) where upstream gives the score (the pinned
    hook of that name has no effect; pooler Δ0.912): apply now writes the P25 port (ported_hooks) and maps the
    architecture to it in place of the pinned hook, and the pooler matches."""
    if not os.environ.get("MMF_PINNED_VENV") or not os.environ.get("MMF_REFERENCE_VENV"):
        pytest.skip("needs MMF_PINNED_VENV (vLLM 0.13.0) and MMF_REFERENCE_VENV (vLLM 0.33.0)")
    if not UPSTREAM_SRC.is_dir():
        pytest.skip(f"no upstream source at {UPSTREAM_SRC}")
    (report,) = apply_and_verify_run(tmp_path, "qwen2_rm", "--arch", "Qwen2ForRewardModel")
    assert {k: v["status"] for k, v in report["levels"].items()} == dict.fromkeys(
        ("import", "construct", "load", "forward", "match"), "pass"), report
    assert ("config hook: the plugin's Qwen2ForRewardModelConfig (register_model() maps Qwen2ForRewardModel "
            "to it)") in report["notes"]
    assert "pooler token_classify: max |Δ| 0" in report["notes"], report["notes"]
