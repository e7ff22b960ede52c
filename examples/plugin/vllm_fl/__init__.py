"""Example out-of-tree vLLM plugin in the shape of vllm-plugin-FL (pinned to vLLM 0.13.0)."""

import logging

logger = logging.getLogger(__name__)


def register():
    """vllm.platform_plugins entry point: the platform class path, or None to keep vLLM's."""
    return None


def register_model():
    """vllm.general_plugins entry point: one guarded block per model."""
    from vllm import ModelRegistry

    # Qwen3-Next: the plugin's variant overrides the in-tree architecture
    try:
        import vllm.model_executor.models.qwen3_next as upstream_qwen3_next

        from vllm_fl.models.qwen3_next import Qwen3NextForCausalLM

        upstream_qwen3_next.Qwen3NextForCausalLM = Qwen3NextForCausalLM
        ModelRegistry.register_model(
            "Qwen3NextForCausalLM", "vllm_fl.models.qwen3_next:Qwen3NextForCausalLM"
        )
    except Exception as e:
        logger.error(f"Register Qwen3NextForCausalLM failed: {e}")
