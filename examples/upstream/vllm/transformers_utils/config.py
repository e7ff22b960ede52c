# Example upstream config registry (shape of vllm/transformers_utils/config.py):
# model_type -> config class name exported by vllm.transformers_utils.configs


class LazyConfigDict(dict):
    pass


_CONFIG_REGISTRY = LazyConfigDict(
    nova_lite="NovaLiteConfig",
)
