# Example upstream model registry (shape of vllm/model_executor/models/registry.py):
# architecture name -> (module under vllm/model_executor/models, class name)

_TEXT_GENERATION_MODELS = {
    "LlamaForCausalLM": ("llama", "LlamaForCausalLM"),
    "NovaLiteForCausalLM": ("nova_lite", "NovaLiteForCausalLM"),
    "NovaLiteModel": ("nova_lite", "NovaLiteForCausalLM"),
}

_EMBEDDING_MODELS = {}

_MULTIMODAL_MODELS = {}

_VLLM_MODELS = {
    **_TEXT_GENERATION_MODELS,
    **_EMBEDDING_MODELS,
    **_MULTIMODAL_MODELS,
}
