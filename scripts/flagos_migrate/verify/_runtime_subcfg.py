"""Two config shapes the tiny config must get right (part of ``_runtime_worker.py``; used by
``_runtime_config``). Standard library only at import.

- A causal-LM architecture that transformers maps under a composite model type and a text one
  (``Llama4ForCausalLM``: ``llama4`` and ``llama4_text``) is built by vLLM from the text config, as
  a text-only checkpoint's config.json names it; the composite config has no ``vocab_size``.
- ``cfg_cls().to_dict()`` writes sub-configs with every generic ``PretrainedConfig`` key; some
  sub-config classes of 4.57.6 refuse them (``DbrxAttentionConfig``: "Found unknown kwargs"), while
  ``save_pretrained`` (what a checkpoint's config.json holds) writes sub-configs as their diff.
"""


def text_first(arch, types):
    """``types`` with the model types whose config class has no ``text_config`` first, for a
    ``*ForCausalLM`` architecture (stable otherwise)."""
    if not arch.endswith("ForCausalLM") or len(types) < 2:
        return types
    from transformers import CONFIG_MAPPING

    def composite(mt):
        cls = CONFIG_MAPPING[mt] if mt in CONFIG_MAPPING else None
        return "text_config" in (getattr(cls, "sub_configs", None) or {})

    return sorted(types, key=composite)


def _generic_defaults():
    from transformers import PretrainedConfig

    return PretrainedConfig().to_dict()


def from_dict(cfg_cls, tiny):
    """``cfg_cls.from_dict(tiny)``; when a sub-config class refuses the generic keys, again with each
    sub-config dict holding only what differs from the generic defaults (its ``model_type`` kept)."""
    try:
        return cfg_cls.from_dict(tiny)
    except (TypeError, ValueError) as exc:
        if "unknown kwargs" not in str(exc) and "unexpected keyword" not in str(exc):
            raise
    generic = _generic_defaults()
    slim = dict(tiny)
    for key, value in tiny.items():
        if isinstance(value, dict) and "model_type" in value:
            slim[key] = {k: v for k, v in value.items()
                         if k == "model_type" or k not in generic or generic[k] != v}
    return cfg_cls.from_dict(slim)
