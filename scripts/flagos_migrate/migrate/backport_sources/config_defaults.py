"""Config fields whose default the pinned stack gives otherwise than upstream's (rules P7 and P45).

Written by model-migrate-flagos; regenerated on every migrate_model.py apply, do not edit by hand.

Upstream's ``Qwen3_VisionTransformer`` reads ``vision_config.deepstack_visual_indexes`` when the
config has it, else ``[]``; vLLM 0.13.0's reads it unguarded. The migrated call hands the pinned
class ``with_config_defaults(config, deepstack_visual_indexes=[])`` instead of the config.

transformers 4.57.6's ``PretrainedConfig.__init__`` sets ``is_decoder`` (and other generation-era
attributes) on every config; transformers 5's sets none of them, so upstream's
``getattr(hf_config, "is_decoder", True)`` reads True for a config.json without the key and the
pinned object answers False. ``tf5_base_attr`` reads what upstream reads (P45 ``tf5_default_reads``).
"""

from __future__ import annotations

import copy
import logging

logger = logging.getLogger(__name__)


def with_config_defaults(config, **defaults):
    """``config`` itself when it has every field of ``defaults``; else a shallow copy with the missing
    fields set to (a copy of) their default. The model's own config is never changed: other code tests
    it with ``hasattr`` (upstream's ``use_deepstack``) and must see what upstream sees."""
    missing = {name: value for name, value in defaults.items() if not hasattr(config, name)}
    if not missing:
        return config
    view = copy.copy(config)
    for name, value in missing.items():
        setattr(view, name, copy.deepcopy(value))
    return view


def _class_path(config) -> str:
    cls = type(config)
    return f"{cls.__module__}.{cls.__qualname__}"


def _config_json(model_config):
    """The top-level keys of config.json as the pinned HFConfigParser reads them (``get_config_dict`` of
    ``hf_config_path or model`` at the model's revision), or None where the pinned get_config did not read an
    HF config.json (a Mistral params.json, a GGUF file) or it cannot be read again."""
    from transformers import PretrainedConfig
    from vllm.transformers_utils.config import MISTRAL_CONFIG_NAME
    from vllm.transformers_utils.gguf_utils import is_gguf
    from vllm.transformers_utils.repo_utils import _get_hf_token, file_or_path_exists

    model = model_config.hf_config_path or model_config.model
    fmt = str(getattr(model_config.config_format, "value", model_config.config_format))
    try:
        if fmt not in ("auto", "hf") or is_gguf(model) or (
                fmt == "auto" and file_or_path_exists(model, MISTRAL_CONFIG_NAME, revision=model_config.revision)):
            return None
        import huggingface_hub

        config_dict, _ = PretrainedConfig.get_config_dict(
            model, revision=model_config.revision, code_revision=model_config.code_revision,
            token=_get_hf_token(), local_files_only=huggingface_hub.constants.HF_HUB_OFFLINE)
    except (OSError, ValueError):
        return None
    return config_dict if isinstance(config_dict, dict) else None


def tf5_base_attr(model_config, name, default, classes):
    """Upstream's ``getattr(model_config.hf_config, name, default)`` where ``name`` is an attribute the pinned
    PretrainedConfig sets on every config and transformers 5's does not.

    ``classes``: the config classes (module.qualname, the pinned transformers') whose transformers 5 class
    declares no ``name`` (P45 ``tf5_default_reads``, checked on transformers 5's source). For those, upstream's
    object has the attribute only when config.json or a flat ``hf_overrides`` entry sets it (its get_config
    ``config.update``s those), and then holds the same value as the pinned object; otherwise upstream reads
    ``default``. Any other class, or overrides given as a function (which may set anything), keep the pinned
    object's value, with a warning: there what upstream reads is not known here."""
    config = model_config.hf_config
    value = getattr(config, name, default)
    overrides = model_config.hf_overrides
    if _class_path(config) not in classes or callable(overrides):
        why = "hf_overrides is a function" if callable(overrides) else f"config class {_class_path(config)}"
        logger.warning("%s: upstream reads %r when neither config.json nor the config class sets it; %s is not one "
                       "known to declare no %s under transformers 5 (P45), so the pinned value %r is read",
                       name, default, why, name, value)
        return value
    if name in overrides:
        return value
    raw = _config_json(model_config)
    if raw is None or name in raw:
        return value
    return default


__all__ = ["with_config_defaults", "tf5_base_attr"]
