"""Tiny configs for the worker (part of ``_runtime_worker.py``): which config class an architecture
is built from (the plugin's config bridges, the pinned vLLM's registry, transformers' auto
mappings, a peer's registered class) and the tiny config written from its defaults or a real
config.json. Standard library only at import (see ``_runtime_env``).
"""

import _runtime_subcfg as _subcfg
import runtime_mm
import runtime_tiny
from _runtime_env import Unavailable, _tf_version


def _hf_model_types(arch):
    """model_types whose Hugging Face class of any auto mapping is named ``arch``."""
    from transformers.models.auto import modeling_auto

    found = []
    for name in dir(modeling_auto):
        table = getattr(modeling_auto, name)
        if not name.endswith("MAPPING_NAMES") or not isinstance(table, dict):
            continue
        for model_type, cls in table.items():
            names = cls if isinstance(cls, (tuple, list)) else (cls,)
            if arch in names and model_type not in found:
                found.append(model_type)
    return found


def _bridge_classes(modules):
    """PretrainedConfig subclasses the plugin's config bridges define, by model_type."""
    import importlib

    from transformers import PretrainedConfig

    out = {}
    for name in modules or []:
        mod = importlib.import_module(name)
        for value in vars(mod).values():
            if isinstance(value, type) and issubclass(value, PretrainedConfig) and value.__module__ == mod.__name__ \
                    and getattr(value, "model_type", ""):
                out[value.model_type] = value
    return out


def _register_bridge(model_type, cls):
    from transformers import AutoConfig

    try:
        AutoConfig.register(model_type, cls, exist_ok=True)
    except Exception:
        pass
    try:
        from vllm.transformers_utils.config import _CONFIG_REGISTRY

        _CONFIG_REGISTRY[model_type] = cls
    except Exception:
        pass


def _vllm_configs():
    """The config classes the pinned vLLM itself registers (``vllm.transformers_utils.configs``)."""
    try:
        from vllm.transformers_utils.config import _CONFIG_REGISTRY
    except Exception:
        return {}
    out = {}
    for mt, cls in dict(_CONFIG_REGISTRY).items():
        if isinstance(cls, str):  # newer vLLMs register lazily, by class name
            try:
                import vllm.transformers_utils.configs as configs

                cls = getattr(configs, cls)
            except Exception:
                continue
        out[mt] = cls
    return out


def _by_stem(arch, table):
    """The one entry of ``table`` whose model_type spells the architecture's prefix
    ("Qwen3_5MoeForCausalLM" -> "qwen3_5_moe"), compared without case and underscores."""
    stem = arch.split("For")[0].replace("_", "").lower()
    stem = stem[:-len("model")] if stem.endswith("model") and len(stem) > 5 else stem  # ChatGLMModel
    named = [cls for mt, cls in table.items() if mt.replace("_", "").replace("-", "").lower() == stem]
    return named[0] if len(named) == 1 else None


def _config_class(arch, bridges, model_type_hint=None, cls_name=None, notes=None):
    """The config class to build ``arch`` from, looked up where the pinned stack gets it: the
    plugin's config bridges (``vllm_fl/configs``), the pinned vLLM's own config registry,
    transformers' auto mappings (the order of vLLM's ``get_config``); else the config of the class ``arch`` is registered to (a peer
    architecture such as ``InternLM3ForCausalLM -> LlamaForCausalLM`` whose own config is remote code)."""
    from transformers import CONFIG_MAPPING

    vllm_cfgs = _vllm_configs()
    types = ([model_type_hint] if model_type_hint else []) + _subcfg.text_first(arch, _hf_model_types(arch))
    for mt in types:  # in the order the pinned vLLM's get_config reads a config.json
        if mt in bridges:
            return bridges[mt]
        if mt in vllm_cfgs:
            return vllm_cfgs[mt]
        if mt in CONFIG_MAPPING:
            return CONFIG_MAPPING[mt]
    if len(bridges) == 1:
        return next(iter(bridges.values()))
    found = _by_stem(arch, bridges) or _by_stem(arch, vllm_cfgs)
    if found is not None:
        return found
    if cls_name and cls_name != arch:
        for mt in _hf_model_types(cls_name):
            if mt in CONFIG_MAPPING:
                if notes is not None:
                    notes.append(f"config: no config class of its own for {arch} here (remote code); built from "
                                 f"{CONFIG_MAPPING[mt].__name__}, the config of {cls_name} it is registered to")
                return CONFIG_MAPPING[mt]
    raise Unavailable(f"no config class for {arch}: transformers {_tf_version()} maps no model_type to it, the "
                      f"pinned vLLM's config registry has none for it and the plugin's config bridges define "
                      f"{sorted(bridges) or 'none'} (a remote-code model, or a model type the pinned transformers "
                      "lacks without a config bridge: P2)")


def _config_class_of(cls_name):
    from transformers import CONFIG_MAPPING

    types = _hf_model_types(cls_name) if cls_name else []
    return CONFIG_MAPPING[types[0]] if types and types[0] in CONFIG_MAPPING else None


def _sub_architectures(tiny):
    """A language sub-config without ``architectures`` gets its causal-LM class, as a real
    checkpoint's config.json has it (BLIP-2's default OPT ``text_config`` has none; vLLM builds the
    language model from it with ``init_vllm_registered_model``)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    for key in runtime_tiny._TEXT_KEYS:
        sub = tiny.get(key)
        if isinstance(sub, dict) and not sub.get("architectures"):
            name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(sub.get("model_type"))
            if isinstance(name, str):
                sub["architectures"] = [name]


def _write_tiny_config(arch, cfg_cls, workdir, base=None, mrope=False, notes=None):
    """The tiny config of ``arch``: from the model's real config.json when given (``--hf-config``),
    else from the config class's defaults; ``mrope``: the model computes M-RoPE positions, so the
    config gets the sections its real checkpoints carry where the defaults lack them."""
    source = cfg_cls.from_dict(base).to_dict() if base else cfg_cls().to_dict()
    tiny = runtime_tiny.tiny_config(source)
    if mrope and runtime_tiny.with_mrope(tiny) and notes is not None:
        notes.append("config: M-RoPE sections added (rope_scaling.mrope_section, as the model's released "
                     "checkpoints carry them; the config class's defaults have none)")
    runtime_mm.shrink_vision_geometry(tiny)
    tiny["architectures"] = [arch]
    tiny.pop("transformers_version", None)
    _sub_architectures(tiny)
    cfg = _subcfg.from_dict(cfg_cls, tiny)
    cfg.architectures = [arch]
    cfg.save_pretrained(workdir)
    return cfg


def _text_config(cfg):
    getter = getattr(cfg, "get_text_config", None)
    return getter() if getter else cfg
