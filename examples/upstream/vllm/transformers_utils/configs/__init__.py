from vllm.transformers_utils.configs.nova_lite import NovaLiteConfig

__all__ = ["NovaLiteConfig"]
