"""Tiny configs for the worker (part of ``_runtime_worker.py``): which config class an architecture
is built from (the plugin's config bridges, the pinned vLLM's registry, transformers' auto
mappings, a peer's registered class) and the tiny config written from its defaults or a real
config.json. Standard library only at import (see ``_runtime_env``).
"""

import copy
import re

import _runtime_env
import _runtime_subcfg as _subcfg
import runtime_mm
import runtime_tiny
import runtime_tokenizer
from _runtime_env import Unavailable, _tf_version


def _hf_model_types(arch, fold=False):
    """model_types whose Hugging Face class of any auto mapping is named ``arch`` (``fold``: compared
    without case)."""
    from transformers.models.auto import modeling_auto

    found = []
    for name in dir(modeling_auto):
        table = getattr(modeling_auto, name)
        if not name.endswith("MAPPING_NAMES") or not isinstance(table, dict):
            continue
        for model_type, cls in table.items():
            names = cls if isinstance(cls, (tuple, list)) else (cls,)
            hit = arch.lower() in [str(n).lower() for n in names] if fold else arch in names
            if hit and model_type not in found:
                found.append(model_type)
    return found


def _bridge_classes(modules, tolerant=False):
    """PretrainedConfig subclasses the plugin's config bridges define, by model_type (``tolerant``: a module
    that does not import is passed over, for the other records' bridges)."""
    import importlib

    from transformers import PretrainedConfig

    out = {}
    for name in modules or []:
        try:
            mod = importlib.import_module(name)
        except Exception:
            if not tolerant:
                raise
            continue
        for value in vars(mod).values():
            if isinstance(value, type) and issubclass(value, PretrainedConfig) and value.__module__ == mod.__name__ \
                    and getattr(value, "model_type", ""):
                out[value.model_type] = value
    return out


def bridge_modules(own, packages):
    """The config bridges a model is built with: the plugin's ``<package>.configs.*`` modules its code
    imported (a sibling migrated earlier wrote ``tf5_qwen3_5`` that d3's and colqwen3_5's base class
    reads: their own record does not list it), then the record's own (``own``), which win on a
    model_type both define. Call after importing the model module."""
    import sys

    loaded = sorted(m for m in list(sys.modules) for pkg in packages or () if m.startswith(f"{pkg}.configs."))
    return [m for m in loaded if m not in (own or [])] + list(own or [])


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


def _hf_config_names(module):
    """Config class names the model module asks its processing context for (``get_hf_config(DotsOCRConfig)``,
    ``def get_hf_config(self) -> DotsOCRConfig``): the model's own config, never a tower's it also imports
    (nemotron_parse imports RadioConfig for its encoder)."""
    import inspect

    try:
        src = inspect.getsource(module)
    except (TypeError, OSError):
        return set()
    return set(re.findall(r"get_hf_config\((\w+)", src)) | set(re.findall(r"def get_hf_config\(self\)\s*->\s*(\w+)", src))


def _vllm_exported_configs(names):
    """The config classes named ``names`` that ``vllm.transformers_utils.configs`` exports, by model_type, that
    neither its registry nor transformers maps (a model module may require one: only that module's lookup reads these)."""
    from transformers import CONFIG_MAPPING

    try:
        import vllm.transformers_utils.configs as configs
    except Exception:
        return {}
    out = {}
    for name in getattr(configs, "__all__", ()):
        try:
            cls = getattr(configs, name)
        except Exception:  # an export whose module does not import here
            continue
        mt = getattr(cls, "model_type", None)
        if name in names and isinstance(cls, type) and isinstance(mt, str) and mt and mt not in CONFIG_MAPPING:
            out.setdefault(mt, cls)
    return out


def _by_stem(arch, table):
    """The one entry of ``table`` whose model_type spells the architecture's prefix
    ("Qwen3_5MoeForCausalLM" -> "qwen3_5_moe"), compared without case and underscores."""
    stem = arch.split("For")[0].replace("_", "").lower()
    stem = stem[:-len("model")] if stem.endswith("model") and len(stem) > 5 else stem  # ChatGLMModel
    named = [cls for mt, cls in table.items() if mt.replace("_", "").replace("-", "").lower() == stem]
    return named[0] if len(named) == 1 else None


def _lookup(mt, bridges, vllm_cfgs, mapping):
    """The class of model_type ``mt`` in the order the pinned vLLM's get_config reads a config.json."""
    for table in (bridges, vllm_cfgs, mapping):
        if mt in table:
            return table[mt]
    return None


def _class_of_arch(arch, bridges, vllm_cfgs):
    """The config class of a known architecture name (transformers' auto mappings, compared without
    case: "PhiMoEForCausalLM" is 4.57.6's "PhimoeForCausalLM"; else the stem of a registry entry)."""
    from transformers import CONFIG_MAPPING

    # a base class's causal-LM name takes its text config, as the architecture's own does (EagleLlama4ForCausalLM
    # <- Llama4ForCausalLM: llama4_text, whose checkpoints are flat; llama4's composite config has no vocab_size)
    for mt in _subcfg.text_first(arch, _hf_model_types(arch) or _hf_model_types(arch, fold=True)):
        found = _lookup(mt, bridges, vllm_cfgs, CONFIG_MAPPING)
        if found is not None:
            return found
    return _by_stem(arch, bridges) or _by_stem(arch, vllm_cfgs)


def _from_hints(arch, hints, bridges, vllm_cfgs, notes, plugin_bridges=None):
    """A draft architecture's base config (upstream's ``hf_config_override`` read backwards), else
    the config of a base class of the upstream class (``config_hints`` on the host). ``plugin_bridges``:
    a callable giving the bridges of the plugin's other records, by model_type, which its register()
    registers for a serve too; a draft's target model type may be one of them (exaone4_5_mtp <- exaone4_5)."""
    from transformers import CONFIG_MAPPING

    draft = hints.get("draft") or {}
    # the model type spelled most like the architecture first: upstream's MTP rewrite serves qwen3_5 and
    # qwen3_5_moe, and Qwen3_5MoeMTP built from the dense Qwen3_5Config had no MoE layer ("No Qwen3Next layer")
    stem = arch.replace("_", "").lower()
    spelled = lambda mt: -len(mt.replace("_", "")) if stem.startswith(mt.replace("_", "").lower()) else 0  # noqa: E731
    types = sorted(draft.get("model_types") or [], key=spelled)
    for mt in types:
        found = _lookup(mt, bridges, vllm_cfgs, CONFIG_MAPPING)
        if found is not None:
            notes.append(f"config: {arch} is a draft model of model type {mt} (upstream's SpeculativeConfig."
                         f"hf_config_override); built from {found.__name__}")
            return found, "draft"
    others = plugin_bridges() if types and plugin_bridges else {}
    for mt in types:
        if mt in others:
            _register_bridge(mt, others[mt])
            notes.append(f"config: {arch} is a draft model of model type {mt} (upstream's SpeculativeConfig."
                         f"hf_config_override); built from {others[mt].__name__}, the config bridge another "
                         "migration of the plugin wrote (its register() registers it for a serve too)")
            return others[mt], "draft"
    for kind, names in (("draft", draft.get("architectures") or []), ("base class", hints.get("bases") or [])):
        for base in names:
            found = _class_of_arch(base, bridges, vllm_cfgs)
            if found is not None and kind == "draft" and _other_model_type(found, base, draft):
                notes.append(f"config: not {found.__name__} ({found.model_type}), the config of {base}: a base class "
                             f"of a target upstream rewrites by model type ({', '.join(draft['model_types'])}), "
                             "never by that one")
                continue
            if found is not None:
                why = ("a draft model of " if kind == "draft" else "a subclass of ") + base
                notes.append(f"config: {arch} is {why} upstream; built from {found.__name__}")
                return found, kind
    return None, None


def _other_model_type(found, base, draft):
    """Whether ``found``, the config of ``base``, is one upstream's draft rewrite never reads: ``base`` is only a
    base class of a target (Step3p7ForConditionalGeneration subclasses Step3VLForConditionalGeneration, whose
    Step3VLConfig is no Step3.5 checkpoint's) and the rewrite keys on model types, of which ``found``'s is none.
    A rewrite keyed on the architecture alone (MistralLarge3ForCausalLM) keeps its base's config (DeepseekV3)."""
    types = draft.get("model_types") or []
    return base in (draft.get("inherited") or ()) and bool(types) and getattr(found, "model_type", None) not in types


def _module_bridge(module, bridges):
    """The plugin's config bridge the model module itself binds (upstream's ``from transformers import
    Cosmos3OmniConfig`` re-pointed to ``vllm_fl.configs``, then ``ctx.get_hf_config(Cosmos3OmniConfig)``):
    the one such class no other bound one holds as a sub-config, else None."""
    known = {id(c) for c in bridges.values() if not _sub_config_only(c)}
    bound = []
    for value in vars(module).values() if module is not None else ():
        if isinstance(value, type) and id(value) in known and value not in bound:
            bound.append(value)
    subs = {sub for c in bound for sub in _held_sub_configs(c)}
    top = [c for c in bound if id(c) not in subs]
    return top[0] if len(top) == 1 else None


def _held_sub_configs(cls):
    """ids of the config classes ``cls`` holds as sub-configs: those it declares (``sub_configs``) and those its
    defaults build (upstream's ColUltraVBertConfig builds its UltraBertConfig text_config in ``__init__``)."""
    held = {id(sub) for sub in (getattr(cls, "sub_configs", None) or {}).values() if isinstance(sub, type)}
    try:
        instance = cls()
    except Exception:
        return held
    return held | {id(type(v)) for v in vars(instance).values()}


def _sub_config_only(cls):
    """A config class that declares itself a part of another (transformers' ``base_config_key``: MiMo-V2-Omni's
    Mimo_VLVisionConfig is the ``vision_config`` of a remote-code top-level config): never a model's own config."""
    key = getattr(cls, "base_config_key", None)
    return bool(key) and key not in runtime_tiny._TEXT_KEYS  # a text config is a whole language model's


def _bound_parts(module, bridges, synth):
    """A synthesized config's sub-configs the model file binds a class of (``base_config_key``) and reads
    without a value: from that class's defaults, as its real config.json nests them (MiMo-V2-Omni's
    vision_config, a Mimo_VLVisionConfig); the names filled."""
    filled = []
    missing = synth.get("missing") or []
    for cls in {id(c): c for c in bridges.values()}.values():
        key = getattr(cls, "base_config_key", None)
        # a family's sub-config without a model_type (SYNTH_FAMILIES) is what the released config.json sets over
        # the class's defaults (MiMo-V2-Omni's vision_config.use_sink), not a whole sub-config of its own
        given = synth["config"].get(key)
        overlay = given if isinstance(given, dict) and "model_type" not in given else None
        if _sub_config_only(cls) and (key in missing or overlay is not None) \
                and any(v is cls for v in vars(module).values()):
            try:
                synth["config"][key] = {**cls().to_dict(), **(overlay or {})}
            except Exception:  # a class that needs arguments: left missing
                continue
            if key in missing:
                missing.remove(key)
            filled.append(f"{key} ({cls.__name__}" + (f", with {', '.join(sorted(overlay))})" if overlay else ")"))
    return filled


def config_class_named(name):
    """The config class called ``name`` here: one transformers maps or nests as a sub-config (4.57.6 exports no
    Qwen2_5_VLVisionConfig at the top level), else transformers' or the pinned vLLM's export; else None."""
    import transformers
    from transformers import CONFIG_MAPPING

    for cls in list(CONFIG_MAPPING.values()):
        subs = getattr(cls, "sub_configs", None)
        for cand in [cls] + list(subs.values() if isinstance(subs, dict) else ()):
            if isinstance(cand, type) and cand.__name__ == name:
                return cand
    found = getattr(transformers, name, None)
    if found is None:
        try:
            import vllm.transformers_utils.configs as configs

            found = getattr(configs, name, None)
        except Exception:
            found = None
    return found if isinstance(found, type) else None


def _tower_parts(synth):
    """A synthesized config's sub-configs that upstream builds a tower from whose ``__init__`` names their config
    class (``hints["synth"]["tower_classes"]``, read on the host): from that class's defaults, shrunk later like
    any tower, as a real config.json nests one; the names filled."""
    filled = []
    missing = synth.get("missing") or []
    for key, name in sorted((synth.get("tower_classes") or {}).items()):
        if name == LANGUAGE and isinstance(synth["config"].get(key), dict):  # filled on the host
            filled.append(f"{key} (a tiny {synth['config'][key].get('model_type')} language model: upstream builds "
                          "whatever registered causal LM it names)")
            continue
        cls = config_class_named(name)
        if cls is None or key not in missing:
            continue
        try:
            values = cls().to_dict()
        except Exception:  # a class that needs arguments: left missing
            continue
        values["model_type"] = values.get("model_type") or getattr(cls, "model_type", "") or key
        synth["config"][key] = values
        missing.remove(key)
        filled.append(f"{key} ({name}, the config class of the module upstream builds from it)")
    return filled


def _holds_more_of_what_is_read(bound, named, hints):
    """Whether the bridge the model module binds has sub-configs upstream's file reads that the bridge
    spelled like the architecture lacks: upstream's ColModernVBertForRetrieval reads ``config.text_config``
    of the ``ModernVBertConfig`` it imports, transformers 5's ``ColModernVBertConfig`` holds a
    ``vlm_config`` instead (a checkpoint vLLM serves is the former's)."""
    if bound is None or bound is named:
        return False
    synth = (hints or {}).get("synth") or {}
    reads = set(synth.get("config") or ()) | set(synth.get("missing") or ())
    subs = lambda c: set(getattr(c, "sub_configs", None) or ())  # noqa: E731
    return bool((reads & subs(bound)) - subs(named))


def _config_class(arch, bridges, model_type_hint=None, cls_name=None, notes=None, hints=None, module=None,
                  plugin_bridges=None, own_bridges=None):
    """The config class to build ``arch`` from and where it came from, looked up where the pinned
    stack gets it: the plugin's config bridges (``vllm_fl/configs``), the pinned vLLM's own config
    registry, transformers' auto mappings (the order of vLLM's ``get_config``); else, from the
    host's ``hints``, the base config of a draft model or of a base class; else the config of the
    class ``arch`` is registered to (a peer architecture such as ``InternLM3ForCausalLM ->
    LlamaForCausalLM`` whose own config is remote code); else a config synthesized from what the
    upstream model file reads (``config_source: synthesized``). ``module``: the model module, whose
    own bound config bridge comes after a bridge spelled like the architecture."""
    from transformers import CONFIG_MAPPING

    notes = notes if notes is not None else []
    hints = hints or {}
    vllm_cfgs = _vllm_configs()
    types = ([model_type_hint] if model_type_hint else []) + _subcfg.text_first(arch, _hf_model_types(arch))
    for mt in types:  # in the order the pinned vLLM's get_config reads a config.json
        found = _lookup(mt, bridges, vllm_cfgs, CONFIG_MAPPING)
        if found is not None:
            return found, "registry"
    # the plugin's own bridge spelled like the architecture comes before a base class's config
    # (Qwen3_5MoeForConditionalGeneration subclasses Qwen3_5ForConditionalGeneration upstream, but its
    # checkpoints are Qwen3_5MoeConfig's: the dense class's config builds no MoE layer)
    # a checkpoint naming its own remote-code config (P2 remote_config_first), which register_model() leaves to
    # AutoConfig: not a bridge or base class of the file's, the stand-in of the checkpoint's class (step3p7's own
    # bridge module is its text part's, step3p5)
    if (hints.get("synth") or {}).get("remote_config"):
        notes.append(f"config: {arch}'s checkpoints name their own remote-code config (catalog P2 remote_config_first), "
                     "which both vLLMs read through AutoConfig: synthesized as its stand-in, the same on both sides")
        return _synthesized(arch, hints, module, bridges, notes)
    found = _by_stem(arch, bridges)
    bound = _module_bridge(module, bridges)
    if found is not None and not _holds_more_of_what_is_read(bound, found, hints):
        return found, "bridge"
    found = bound
    if found is not None:
        notes.append(f"config: {found.__name__}, the plugin's config bridge {getattr(module, '__name__', 'the module')} "
                     "itself imports (its model_type differs from the architecture's name)")
        return found, "bridge"
    # a model type only transformers 5 maps the architecture to (after the bridge the module binds: upstream's
    # colmodernvbert.py reads ModernVBertConfig's text_config, not the ColModernVBertConfig transformers 5 maps)
    for mt in hints.get("tf5_model_types") or []:
        if mt in bridges:
            notes.append(f"config: {bridges[mt].__name__}, the plugin's config bridge of model type {mt!r}, which "
                         f"transformers 5 maps {arch} to")
            return bridges[mt], "bridge"
    found, source = _from_hints(arch, hints, bridges, vllm_cfgs, notes, plugin_bridges)
    if found is not None:
        return found, source
    # the model's own one bridge, never a sibling's (qwen3_dspark imports qwen3_dflash, whose record bridged
    # MuseGlimmerAssistantConfig for its MuseGlimmerAssistantModel: the DSpark drafts were built from it)
    own = bridges if own_bridges is None else own_bridges
    if len(own) == 1 and not _sub_config_only(next(iter(own.values()))):
        return next(iter(own.values())), "bridge"
    found = _by_stem(arch, vllm_cfgs) or _class_of_arch(arch, {}, {})
    if found is not None:
        return found, "registry"
    # upstream's glm4v.py: ctx.get_hf_config(ChatGLMConfig), vLLM's own; also one the pinned vLLM exports without
    # registering its model_type (0.13.0's DotsOCRConfig, which dots_ocr.py imports and requires by name)
    found = _module_bridge(module, {**_vllm_exported_configs(_hf_config_names(module)), **vllm_cfgs})
    if found is not None:
        if found not in vllm_cfgs.values():  # get_config reads a config.json of its model_type through the registry
            _register_bridge(found.model_type, found)
        notes.append(f"config: {found.__name__}, the pinned vLLM's config class {getattr(module, '__name__', 'the module')} "
                     "itself imports (its model_type differs from the architecture's name)")
        return found, "registry"
    if cls_name and cls_name != arch:
        for mt in _hf_model_types(cls_name):
            if mt in CONFIG_MAPPING:
                notes.append(f"config: no config class of its own for {arch} here (remote code); built from "
                             f"{CONFIG_MAPPING[mt].__name__}, the config of {cls_name} it is registered to")
                return CONFIG_MAPPING[mt], "peer"
    for peer in hints.get("peers") or []:  # one class, one config: the config transformers maps a peer to
        for mt in _hf_model_types(peer):
            if mt in CONFIG_MAPPING:
                notes.append(f"config: no config class of its own for {arch} here (remote code); built from "
                             f"{CONFIG_MAPPING[mt].__name__}, the config of {peer}, which upstream registers to the "
                             "same class")
                return CONFIG_MAPPING[mt], "peer"
    for part in hints.get("composed") or []:  # the model's whole config builds a registered part (ColBERT's backbone)
        found = _class_of_arch(part, bridges, vllm_cfgs)
        if found is not None:
            notes.append(f"config: no config class of its own for {arch} here; built from {found.__name__}, the "
                         f"config of {part}, which upstream's class builds from its whole config")
            return found, "composed"
    return _synthesized(arch, hints, module, bridges, notes)


def _synthesized(arch, hints, module, bridges, notes):
    """The config synthesized from what upstream's file reads (``config_source: synthesized``), else Unavailable."""
    synth = hints.get("synth")
    if synth and synth.get("config"):
        parts = (_bound_parts(module, bridges, synth) if module is not None else []) + _tower_parts(synth)
        if parts:
            notes.append(f"config: {', '.join(parts)}: sub-configs from the defaults of the config class the model file "
                         "binds or builds its tower from")
        notes.append(f"config: synthesized: no config class for {arch} here (transformers {_tf_version()}, the pinned "
                     f"vLLM's registry, the plugin's bridges); from the {synth.get('reads')} attributes "
                     f"{synth.get('file')} reads from its config, valued by name"
                     + (f"; no value for {', '.join(synth['missing'])}" if synth.get("missing") else ""))
        return synth_class(synth["model_type"], synth.get("class_name")), "synthesized"
    raise Unavailable(f"no config class for {arch}: transformers {_tf_version()} maps no model_type to it, the "
                      f"pinned vLLM's config registry has none for it and the plugin's config bridges define "
                      f"{sorted(bridges) or 'none'} (a remote-code model, or a model type the pinned transformers "
                      "lacks without a config bridge: P2)")


SYNTH_PREFIX = "mmf_synth_"
LANGUAGE = "=language"  # subconfig_classes.LANGUAGE: a sub-config a registered language model is built from
MISSING = object()


def _derived_property(cls, name):
    """``name`` is a read-only property of ``cls`` (a config attribute the class computes)."""
    import inspect

    attr = inspect.getattr_static(cls, name, None)
    return isinstance(attr, property) and attr.fset is None


def synth_class(model_type, name=None):
    """A plain ``PretrainedConfig`` for a synthesized config.json, registered under its model type
    (``mmf_synth_*``, which no real config uses) where vLLM's get_config and AutoConfig look; ``name``: the
    class name of the architecture's remote-code config (config_hints.SYNTH_CLASS_NAMES), which vLLM checks."""
    from transformers import PretrainedConfig

    sparse = not isinstance(getattr(PretrainedConfig, "per_layer_config", None), property)

    def __init__(self, **kwargs):
        for key in [k for k in kwargs if _derived_property(PretrainedConfig, k)]:
            # transformers 5 derives it (is_heterogeneous from per_layer_config): setting it raises
            kwargs.pop(key)
        for key in list(kwargs):  # a nested dict with its model_type is a sub-config (vision_config, Parse's decoder)
            if isinstance(kwargs.get(key), dict) and isinstance(kwargs[key].get("model_type"), str):
                kwargs[key] = _sub_config(kwargs[key], key)
        for key, value in kwargs.items():  # a remote-code config's per-layer blocks read by attribute
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                kwargs[key] = [_Fields.of(v) for v in value]
        per_layer = kwargs.pop("per_layer_config", None) if sparse else None
        # {} (no overrides) is a homogeneous config, which transformers 5 saves without the key: its
        # PreTrainedConfig reads a {} as heterogeneous (is_heterogeneous True, per_layer_config[i] bounded by
        # num_hidden_layers: Step3p5MTP's layer at num_hidden_layers raised IndexError on the reference side only)
        if not sparse and kwargs.get("per_layer_config") == {}:
            kwargs.pop("per_layer_config")
        PretrainedConfig.__init__(self, **kwargs)
        if isinstance(per_layer, dict) and per_layer:
            self.__dict__[_PER_LAYER] = {int(i): dict(o) for i, o in per_layer.items()}

    body = {"model_type": model_type, "__init__": __init__}
    if sparse:  # transformers 4.x: the per-layer view transformers 5's PreTrainedConfig gives (HeterogeneousConfigMixin)
        body.update(per_layer_config=property(_per_layer_view), to_dict=_to_dict_sparse)
    cls = type(name or "SynthesizedConfig", (PretrainedConfig,), body)
    _register_bridge(model_type, cls)
    return cls


class _Fields(dict):
    """A nested block of a synthesized config read by attribute, as its remote-code config class builds one
    (DeciLM's ``config.block_configs[i].attention.no_op``: dataclasses from the config.json's dicts), and still the
    dict a config.json holds (to_dict and json write it as is); an absent field is an AttributeError (``hasattr``)."""

    @classmethod
    def of(cls, value):
        return cls({k: cls.of(v) for k, v in value.items()}) if isinstance(value, dict) else value

    def __getattr__(self, name):
        if name.startswith("__") or name not in self:
            raise AttributeError(name)
        return self[name]


_PER_LAYER = "_per_layer_overrides"


def _per_layer_view(self):
    """transformers 5's ``config.per_layer_config``: per layer, the config with that layer's sparse overrides
    (Gemma 4's full-attention head_dim; its MTP and DSpark drafts read ``config.per_layer_config[i].head_dim``),
    for a synthesized config on transformers 4, whose PretrainedConfig has no such view."""
    overrides = self.__dict__.get(_PER_LAYER) or {}
    layers = []
    for i in range(self.num_hidden_layers):
        one = copy.copy(self)
        one.__dict__.update(copy.deepcopy(overrides.get(i, {})))
        layers.append(one)
    return layers


def _to_dict_sparse(self):
    """``to_dict`` writing the overrides back as a config.json holds them (``per_layer_config``, string keys)."""
    from transformers import PretrainedConfig

    out = PretrainedConfig.to_dict(self)
    overrides = out.pop(_PER_LAYER, None)
    if overrides:  # none: homogeneous, no key (as transformers 5 saves it)
        out["per_layer_config"] = {str(i): o for i, o in overrides.items()}
    return out


def _sub_config(values, key=None):
    """A synthesized config's nested sub-config (a dict with its model_type, as a real config.json nests
    one) as an object, which the model reads attributes of (``config.vision_config.image_size``), as a
    remote-code config class builds it: the transformers class of that model_type (Qwen2Config), else a
    plain config holding the fields (InternViT's intern_vit_6b is remote code too)."""
    from transformers import PretrainedConfig

    values = dict(values)
    mt = values.pop("model_type")
    cls = _sub_class(key, mt) or type("SynthesizedSubConfig", (PretrainedConfig,), {"model_type": mt})
    return cls(**values)


def _sub_class(key, mt):
    """The class of sub-config ``key`` of model_type ``mt``: the mapped class, or its own sub-config ``key`` when
    that is a composite (4.57.6's Qwen2_5_VLVisionConfig says model_type "qwen2_5_vl", Qwen2_5_VLConfig's), else
    a mapped composite's sub-config of that model_type (Idefics2VisionConfig's "idefics2_vision"); else None."""
    from transformers import CONFIG_MAPPING, PretrainedConfig

    def sub(cls):
        subs = getattr(cls, "sub_configs", None)
        found = subs.get(key) if isinstance(subs, dict) else None
        return found if isinstance(found, type) and issubclass(found, PretrainedConfig) else None

    if mt in CONFIG_MAPPING:
        return sub(CONFIG_MAPPING[mt]) or CONFIG_MAPPING[mt]
    for cls in list(CONFIG_MAPPING.values()):
        found = sub(cls)
        if found is not None and getattr(found, "model_type", None) == mt:
            return found
    return None


def register_synthesized(workdir, name=None):
    """The reference side: the class of the synthesized config.json in ``workdir``, if it is one (``name``:
    as :func:`synth_class`)."""
    import json
    import os

    try:
        with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
            mt = json.load(f).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return synth_class(mt, name) if isinstance(mt, str) and mt.startswith(SYNTH_PREFIX) else None


def register_model_config(workdir, arch, notes=None):
    """The reference side: a config.json whose model_type this transformers does not know (a remote-code config:
    dots.ocr's ``dots_ocr``, which a released checkpoint loads with trust_remote_code) registered as the config class
    upstream vLLM's own model file of ``arch`` imports with that model_type (dots_ocr.py's DotsOCRConfig, vLLM's
    copy of the remote one), the class that model reads it as. Nothing when the type is known or no class fits."""
    import json
    import os
    import sys

    from transformers import CONFIG_MAPPING, AutoConfig, PretrainedConfig

    try:
        with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
            mt = json.load(f).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(mt, str) or mt in CONFIG_MAPPING:
        return None
    try:
        from vllm.model_executor.models.registry import ModelRegistry

        cls = ModelRegistry._try_load_model_cls(arch)
    except Exception:
        return None
    module = sys.modules.get(getattr(cls, "__module__", ""), None)
    found = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, PretrainedConfig)
             and getattr(v, "model_type", None) == mt] if module is not None else []
    if len(found) != 1:
        return None
    AutoConfig.register(mt, found[0], exist_ok=True)
    if notes is not None:
        notes.append(f"config: model_type {mt!r} (remote code) read as {found[0].__name__}, the class upstream's "
                     f"{module.__name__.rsplit('.', 1)[-1]}.py imports for it (this transformers has none)")
    return found[0]


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


def _equivalent(source, spec):
    """A value from the config's own field of the same meaning (``[field, leading]``: the field's
    value, or how many of its per-layer entries lead with ``leading``), else None."""
    field, leading = (list(spec) + [None, None])[:2]
    value = source.get(field)
    if leading is None:
        return value
    if not isinstance(value, list):
        return None
    count = 0
    while count < len(value) and value[count] == leading:
        count += 1
    return count


_EPS = re.compile(r"(^|_)(eps|epsilon)$")


def _complete(source, instance, complete, cls_name, notes, defaults=False, arch=None):
    """Attributes upstream's file reads without a default that the class's defaults lack, or leave
    None where the file indexes them: set from the class's own field of the same meaning where there
    is one, else from the synthesis table (a real config.json carries them). ``defaults``: ``source``
    is the class's defaults (no real config.json), so a value the released checkpoints carry wins over
    a class default too (Phi-3.5-MoE's config.json says attention_bias true, PhimoeConfig defaults False)."""
    fill, indexed = complete.get("fill") or {}, set(complete.get("indexed") or ())
    equivalent = complete.get("equivalent") or {}
    aliases = set((complete.get("aliases") or {}).get(cls_name) or ())  # P40: no config.json carries them
    derived_on_load = set((complete.get("tf5_derived") or {}).get(getattr(instance, "model_type", None)) or ())
    absent = sorted(k for k in fill if not hasattr(instance, k) and k not in aliases | derived_on_load)
    if notes is not None and any(k in derived_on_load and not hasattr(instance, k) for k in fill):
        notes.append(f"config: {', '.join(sorted(k for k in fill if k in derived_on_load and not hasattr(instance, k)))} "
                     f"left absent: transformers 5's class of {instance.model_type!r} derives it from the fields a "
                     "released config.json carries (config_hints.TF5_DERIVED)")
    if notes is not None and any(k in aliases and not hasattr(instance, k) for k in fill):
        notes.append(f"config: {', '.join(sorted(k for k in fill if k in aliases and not hasattr(instance, k)))} "
                     f"left absent: transformers 5's {cls_name} aliases them (attribute_map), a real config.json "
                     "holds the fields they stand for (P40)")
    nones = sorted(k for k in fill if k in indexed and k in source and source[k] is None)
    tabled, derived, in_text = [], [], []
    for key in absent + nones:
        value = _equivalent(source, equivalent[key]) if key in equivalent else None
        if value is not None:
            source[key] = value
            derived.append(f"{key} = {equivalent[key][0]}" + (f"'s leading {equivalent[key][1]!r} layers"
                                                                if equivalent[key][1] else ""))
        elif fill[key] is not None:
            source[key] = fill[key]
            tabled.append(key)
            # a composite config: its text sub-config lacking the field too gets it, where layers reading
            # hf_text_config look (InternS2-Mobius's decoder layers read num_blocks from Qwen3_5MoeTextConfig)
            for sub_key in runtime_tiny._TEXT_KEYS:
                sub, sub_inst = source.get(sub_key), getattr(instance, sub_key, None)
                # never a second norm epsilon next to the one the sub-config spells (Cosmos3 Edge's text config has
                # rms_norm_eps and hands layer_norm_epsilon=rms_norm_eps plus its to_dict() to NemotronHConfig)
                second_eps = _EPS.search(key) and any(_EPS.search(k) for k in sub) if isinstance(sub, dict) else False
                # nor a field some read of upstream's takes a default for: there its absence is a model of its own
                # (gemma4's getattr(config, "num_experts", None) is a dense model; a filled count built a MoE block
                # for Gemma4UnifiedTextConfig, which has no expert size)
                if isinstance(sub, dict) and sub_inst is not None and not hasattr(sub_inst, key) and key not in sub \
                        and not second_eps and key not in (complete.get("defaulted") or ()):
                    sub[key] = copy.deepcopy(fill[key])
                    in_text.append(f"{sub_key}.{key}")
    only = complete.get("only") or {}  # upstream asserts the one value it serves (llama4_eagle: yoco layers None)
    pinned = sorted(k for k in only if (not hasattr(instance, k) or defaults) and source.get(k, MISSING) != only[k])
    for key in pinned:
        source[key] = copy.deepcopy(only[key])
    for sub_key in runtime_tiny._TEXT_KEYS:  # a composite model's language layers read their text config's field
        sub = source.get(sub_key)  # (Bailing V3 VL's KDA layers: no_kda_lora, which its text config defaults False)
        for key in sorted(only):
            if isinstance(sub, dict) and key in sub and sub[key] != only[key]:
                sub[key] = copy.deepcopy(only[key])
                pinned.append(f"{sub_key}.{key}")
    if notes is not None and pinned:
        notes.append(f"config: {', '.join(f'{k}={only[k.rsplit(chr(46), 1)[-1]]!r}' for k in pinned)}: the one value upstream's model asserts "
                     f"(absent from, or another default in, {cls_name}): every checkpoint it serves carries it")
    mixed = sorted(k for k in complete.get("uniform") or () if isinstance(source.get(k), list)
                   and len({repr(v) for v in source[k]}) > 1)
    for key in mixed:  # upstream raises on mixed values: every checkpoint it serves holds one throughout
        source[key] = [source[key][0]] * len(source[key])
    if notes is not None and mixed:
        notes.append(f"config: {', '.join(f'{k}={source[k]!r}' for k in mixed)}: one value throughout, the first of "
                     f"{cls_name}'s; upstream's model raises on mixed values (every checkpoint it serves holds one)")
    table = complete.get("checkpoint") or {}
    # an architecture's own entry over its model type's (GLM-4V is a chatglm checkpoint with a vision_config)
    carried = {**(table.get(getattr(instance, "model_type", None)) or {}), **(table.get(arch) or {})}
    released = sorted(k for k in carried if "." not in k and (defaults or not hasattr(instance, k)))
    for key in list(released):
        value = _derived(source, carried[key])
        if value is MISSING:
            released.remove(key)
        else:
            source[key] = value
    tabled = [k for k in tabled if k not in released]  # the released value replaced the table's
    for key in sorted(k for k in carried if "." in k):  # in a sub-config: where its dict leaves it absent or None,
        *path, leaf = key.split(".")  # or over the class's default (no config.json), as for a top-level field
        sub = source
        for part in path:
            sub = sub.get(part) if isinstance(sub, dict) else None
        if isinstance(sub, dict) and (sub.get(leaf) is None or defaults):
            sub[leaf] = carried[key]
            released.append(key)
    for key, sub in sorted(source.items()):  # a sub-config of a tabled model_type (LFM2-VL's Lfm2Config text_config)
        sub_carried = table.get(sub.get("model_type")) if isinstance(sub, dict) else None
        for leaf, spec in sorted((sub_carried or {}).items()):
            value = _derived(sub, spec) if "." not in leaf and leaf not in sub else MISSING
            if value is not MISSING:
                sub[leaf] = value
                released.append(f"{key}.{leaf}")
    if notes is not None and released:
        notes.append(f"config: {', '.join(f'{k}={_at(source, k)!r}' for k in released)}: absent from (or another default "
                     f"in) {cls_name}, as a checkpoint both sides load carries them (config_hints.CHECKPOINT_FIELDS; "
                     "each entry says where its value comes from: most are the released config.json's)")
    if notes is not None and tabled:
        notes.append(f"config: {', '.join(tabled)} " + ("absent from" if absent else "None in")
                     + f" {cls_name}'s defaults and read by upstream's model; set from the synthesis table (a real "
                     "config.json carries them)")
    if notes is not None and in_text:
        notes.append(f"config: {', '.join(in_text)} too: in the text sub-config, where layers reading hf_text_config "
                     "look for them (its class lacks them as well)")
    if notes is not None and derived:
        notes.append(f"config: {cls_name} spells what upstream's model reads its own way; from the class's own "
                     f"fields: {'; '.join(derived)}")


def _at(source, dotted):
    """``source``'s value at a dotted key (a sub-config's field)."""
    for part in dotted.split("."):
        source = source.get(part) if isinstance(source, dict) else None
    return source


def _derived(source, value):
    """A CHECKPOINT_FIELDS value: a literal, ``{"=from": field}``, the config's own field (LFM2's block_dim
    is its hidden_size; dotted: a value inside one, MiMo-V2-Flash's rope_theta in its per-layer-type
    rope_parameters), or ``{"=from": field, "map": {...}}``, the class's own per-layer field with each
    entry mapped (MiMo-V2-Flash's hybrid_layer_pattern from layer_types); MISSING when the field is absent
    (not a list, for a map)."""
    if not (isinstance(value, dict) and "=from" in value):
        return copy.deepcopy(value)
    field = _at(source, value["=from"])
    if "map" not in value:
        return MISSING if field is None else copy.deepcopy(field)
    if not isinstance(field, list):
        return MISSING
    return [value["map"].get(v, v) for v in field]


# transformers 5's remap of legacy layer-type names (configuration_utils._LEGACY_LAYER_TYPE_REMAP), read
# backwards: a config class of transformers 4 holds (and checks) the legacy names its checkpoints carry
LEGACY_LAYER_TYPES = {"linear_attention": "mamba", "full_attention": "attention",
                      "indexed_attention": "deepseek_sparse_attention"}


def _legacy_kinds(source, cfg_cls, complete, notes):
    """Layer kinds filled in transformers 5's names that the class refuses (4.57.6's
    GraniteMoeHybridConfig accepts only "mamba"/"attention"): the legacy names real checkpoints of
    that class carry, which transformers 5 remaps on load. The model then gets what the pinned stack
    gives it from a real config.json."""
    fill = complete.get("fill") or {}
    keys = [k for k in fill if isinstance(fill[k], list) and source.get(k) == fill[k]
            and any(v in LEGACY_LAYER_TYPES for v in fill[k])]
    if not keys:
        return
    try:
        _subcfg.from_dict(cfg_cls, copy.deepcopy(source))
        return
    except ValueError:
        pass
    for key in keys:
        source[key] = [LEGACY_LAYER_TYPES.get(v, v) for v in source[key]]
    if notes is not None:
        notes.append(f"config: {cfg_cls.__name__} refuses transformers 5's layer kinds upstream's model looks up; "
                     f"{', '.join(keys)} in the legacy names its checkpoints carry ({source[keys[0]]}), which "
                     "transformers 5 remaps on load")


def hf_config_for(arch, cfg):
    """The config a Hugging Face class builds from: a synthesized config's values in the class's own
    config class (its other fields keep their defaults: HF's MiniMax-M2 reads ``pad_token_id``)."""
    import transformers

    hf_cls = getattr(transformers, hf_class_name(arch) or arch, None)
    if not str(getattr(cfg, "model_type", "")).startswith(SYNTH_PREFIX) or hf_cls is None:
        return cfg
    values = cfg.to_dict()
    values.pop("model_type", None)
    return hf_cls.config_class.from_dict(values)


def hf_class_name(arch):
    """transformers' spelling of ``arch`` when it differs only in case (4.57.6's "PhimoeForCausalLM"
    for vLLM's "PhiMoEForCausalLM"), else None."""
    import transformers

    if getattr(transformers, arch, None) is not None:
        return None
    from transformers.models.auto import modeling_auto

    for name in dir(modeling_auto):
        table = getattr(modeling_auto, name)
        if name.endswith("MAPPING_NAMES") and isinstance(table, dict):
            for cls in table.values():
                for n in cls if isinstance(cls, (tuple, list)) else (cls,):
                    if isinstance(n, str) and n.lower() == arch.lower() and getattr(transformers, n, None) is not None:
                        return n
    return None


def _with_tower(source, cfg_cls, notes):
    """A multimodal model's vision sub-config that the class's defaults leave None (transformers 5's
    optional sub-configs: Gemma4Config's ``vision_config``) gets its sub-config class's defaults, as
    the released checkpoints of a model served with images carry one; shrunk like any tower later."""
    subs = getattr(cfg_cls, "sub_configs", None) or {}
    filled = []
    for key in runtime_tiny._VISION_KEYS:
        sub = subs.get(key)
        if key in source and source[key] is None and isinstance(sub, type):
            try:
                source[key] = sub().to_dict()
            except Exception:  # a sub-config class that needs arguments: left None
                continue
            filled.append(f"{key} ({sub.__name__})")
    if filled and notes is not None:
        notes.append(f"config: {', '.join(filled)} from the sub-config class's defaults: {cfg_cls.__name__} leaves "
                     "it None by default, a checkpoint of a model served with images carries one")


def _write_tiny_config(arch, cfg_cls, workdir, base=None, mrope=False, notes=None, hints=None, source_kind=None,
                       multimodal=False):
    """The tiny config of ``arch``: from the model's real config.json when given (``--hf-config``),
    else from the config class's defaults (a synthesized class: from the synthesized values);
    ``mrope``: the model computes M-RoPE positions, so the config gets the sections its real
    checkpoints carry where the defaults lack them. ``hints``: a draft model's updates (upstream's
    ``hf_config_override``) and values for attributes the model indexes that the defaults leave None.
    ``multimodal``: the class takes images, so a vision sub-config left None is filled (:func:`_with_tower`)."""
    hints = hints or {}
    base_given = bool(base)
    if source_kind == "synthesized" and not base:
        base = dict(hints["synth"]["config"])
    source = _subcfg.from_dict(cfg_cls, base).to_dict() if base else cfg_cls().to_dict()
    _released_names(source, getattr(cfg_cls, "model_type", None))  # before: the released name is read back
    unread = [] if base else _unread_sub_configs(cfg_cls, source)
    for key in unread:
        source.pop(key)
    if unread and notes is not None:
        notes.append(f"config: {', '.join(unread)} left out of config.json: {cfg_cls.__name__} builds them itself from "
                     "other keys and does not read them back (from_dict of its own to_dict keeps them as plain dicts), "
                     "and a released config.json does not hold them")
    # every config.json names its architectures, and some classes read them while built (0.13.0's
    # DeepseekVLV2Config: `"DeepseekOCRForCausalLM" in (self.architectures or kwargs.get("architectures", []))`)
    source["architectures"] = source.get("architectures") or [arch]
    if source_kind != "synthesized" and not base:
        _family_over_none(source, (hints.get("synth") or {}).get("family") or {}, cfg_cls, notes)
    if multimodal and not base:
        _with_tower(source, cfg_cls, notes)
    if source_kind != "synthesized":
        # a deep copy: a class may pop from the sub-config dicts it is given (OvisConfig pops llm_config's model_type)
        _complete(source, _subcfg.from_dict(cfg_cls, copy.deepcopy(source)), hints.get("complete") or {}, cfg_cls.__name__, notes,
                  defaults=not base, arch=arch)
        _legacy_kinds(source, cfg_cls, hints.get("complete") or {}, notes)
    tiny = runtime_tiny.tiny_config(source)
    if source_kind == "synthesized" and not base_given:
        _keep_family(tiny, (hints.get("synth") or {}).get("family") or {}, notes)
    if mrope and arch not in runtime_tiny.PLAIN_ROPE_ARCHS and runtime_tiny.with_mrope(tiny) and notes is not None:
        notes.append("config: M-RoPE sections added (mrope_section in rope_scaling, in rope_parameters for a "
                     "transformers 5 config, as the model's released checkpoints carry them; the config "
                     "class's defaults have none)")
    runtime_mm.shrink_vision_geometry(tiny)
    tiny["architectures"] = [arch]
    tiny.pop("transformers_version", None)
    _sub_architectures(tiny)
    if hints.get("speculative"):  # a draft exists only in a checkpoint with a draft layer (NemotronHConfig's default is 0)
        read = (hints.get("complete") or {}).get("fill") or {}
        for key in DRAFT_LAYER_COUNTS:
            if isinstance(tiny.get(key), int) and not isinstance(tiny[key], bool) and tiny[key] < 1:
                tiny[key] = 1
            _draft_layer_kinds(tiny, tiny.get(key), notes)
            # a composite base config: its text config is where the draft reads the count (GLM-OCR's MTP reads
            # hf_config.text_config.num_nextn_predict_layers; the released checkpoint's text_config carries it)
            for sub in (tiny.get(k) for k in runtime_tiny._TEXT_KEYS):
                if isinstance(sub, dict) and key in read and not isinstance(sub.get(key), int):
                    sub[key] = 1
                    if notes is not None:
                        notes.append(f"config: {key}=1 in the text sub-config: the draft reads it there, a checkpoint "
                                     "with a draft layer carries it")
    target = copy.deepcopy(tiny)  # a draft's target: the base config before upstream's draft rewrite
    update = dict((hints.get("draft") or {}).get("update") or {}) if source_kind == "draft" else {}
    cfg = _subcfg.from_dict(cfg_cls, copy.deepcopy(tiny))
    cfg.architectures = [arch]
    _save(cfg, workdir, notes, drop=unread)
    if update and not hints.get("speculative"):
        cfg = _subcfg.from_dict(cfg_cls, {**tiny, **update})
        cfg.architectures = [arch]
        _save(cfg, workdir, drop=unread)
    elif update:  # upstream's rewrite updates the loaded config object (MiMo's num_hidden_layers 0 next to
        cfg.update(update)  # a 2-entry layer_types, which building the class again would refuse)
    _keep_released(workdir, tiny, _carried(hints, arch, cfg), notes)
    if hints.get("speculative"):
        _write_target(arch, cfg_cls, target, workdir, hints["speculative"], notes, update)
    _write_tokenizer(cfg, workdir, notes)
    _write_preprocessor(cfg, workdir, notes)
    _write_sentence_config(cfg, workdir, notes)
    return cfg


def _family_over_none(source, family, cfg_cls, notes):
    """A found config class's defaults that describe no model: a sub-config the defaults lack or leave None, and a
    field they leave None (also in a sub-config), take the family's values (SYNTH_FAMILIES: a released config.json's shape, tiny), which
    every checkpoint carries. 0.13.0's OvisConfig() has no llm_config and no visual_tokenizer_config, so its
    get_text_config() is the config itself and building the language model built Ovis again (RecursionError, the
    pinned vLLM's own Ovis alike). A value the defaults set is theirs. Mutates ``source``."""
    filled = []
    for key, value in family.items():
        if source.get(key) is None and (isinstance(value, dict) or key in source):
            source[key] = copy.deepcopy(value)
            filled.append(key)
        elif isinstance(value, dict) and isinstance(source.get(key), dict):
            # one level down too: KimiVLConfig's text_config is transformers' DeepseekV2Config, whose defaults
            # leave num_experts_per_tok, n_group and topk_group None (the MoE's grouped top-k asserted them)
            for sub, v in value.items():
                if source[key].get(sub) is None and sub in source[key]:
                    source[key][sub] = copy.deepcopy(v)
                    filled.append(f"{key}.{sub}")
    if filled and notes is not None:
        notes.append(f"config: {', '.join(filled)} from the family's values (SYNTH_FAMILIES, a released config.json's "
                     f"shape): {cfg_cls.__name__}'s defaults leave them None, which no checkpoint does")


def _keep_family(tiny, family, notes):
    """A synthesized config's SYNTH_FAMILIES values over the shrink: they are written tiny already, and some say
    what the family's code needs of its sizes (MiniCPM-V's resampler has hidden_size // 128 heads: none at the tiny
    64); a sub-config's fields one level down too. Mutates ``tiny``."""
    kept = []
    for key, value in family.items():
        if isinstance(value, dict) and isinstance(tiny.get(key), dict):
            for sub, v in value.items():
                if not isinstance(v, dict) and tiny[key].get(sub) != v:
                    tiny[key][sub] = copy.deepcopy(v)
                    kept.append(f"{key}.{sub}={v!r}")
        elif not isinstance(value, dict) and key in tiny and tiny[key] != value:
            tiny[key] = copy.deepcopy(value)
            kept.append(f"{key}={value!r}")
    if kept and notes is not None:
        notes.append(f"config: {', '.join(kept)}: the family's values (SYNTH_FAMILIES, tiny already) over the shrink")


# model_type -> the Sentence Transformers sentence_bert_config.json its released checkpoints carry, which vLLM
# reads as ModelConfig.encoder_config: both vLLMs' NomicBertModelConfig, given a max_model_len, pop its
# max_seq_length unguarded (None without the file: AttributeError); nomic-embed-text-v1's says 8192, here the
# context the harness builds for
SENTENCE_CONFIGS = {"nomic_bert": {"max_seq_length": _runtime_env.MAX_MODEL_LEN, "do_lower_case": False}}


def _write_sentence_config(cfg, workdir, notes):
    """The sentence_bert_config.json of a model type in :data:`SENTENCE_CONFIGS`, the same on both sides."""
    import json
    import os

    values = SENTENCE_CONFIGS.get(getattr(cfg, "model_type", None))
    if values is None:
        return
    with open(os.path.join(workdir, "sentence_bert_config.json"), "w", encoding="utf-8") as f:
        json.dump(values, f)
    if notes is not None:
        notes.append(f"config: sentence_bert_config.json {values} written, as {cfg.model_type}'s released checkpoints "
                     "carry one (vLLM reads it as the encoder config)")


def _write_preprocessor(cfg, workdir, notes):
    """The preprocessor_config.json of a model type whose upstream class loads its processor while built
    (runtime_mm.SHIPS_PREPROCESSOR), the same file on both sides."""
    name = runtime_mm.write_preprocessor_config(workdir, cfg)
    if name and notes is not None:
        notes.append(f"config: preprocessor_config.json written ({name}'s defaults sized to the tiny tower), the same "
                     f"on both sides: upstream's {cfg.model_type} class loads its processor while built, as a "
                     "released checkpoint ships one")


def _write_tokenizer(cfg, workdir, notes):
    """The tiny tokenizer of a model type whose classes read token ids while built (runtime_tokenizer's table)."""
    vocab = getattr(_text_config(cfg), "vocab_size", None) or getattr(cfg, "vocab_size", None)
    archs = getattr(cfg, "architectures", None)
    audio = getattr(cfg, "audio_config", None)
    if isinstance(vocab, int) and runtime_tokenizer.write_tekken(workdir, archs, vocab, audio.to_dict() if audio else {}):
        if notes is not None:
            notes.append(f"tokenizer: a tiny tekken tokenizer written offline ({runtime_tokenizer.TEKKEN_FILE}, {vocab} "
                         "ids, its audio section's mel front end the tiny audio_config's), served with tokenizer_mode "
                         "mistral, the same on both sides: the class reads the tokenizer's audio encoder while built")
        return
    if not isinstance(vocab, int) or runtime_tokenizer.tokens_for(getattr(cfg, "model_type", None), archs) is None:
        return
    written = runtime_tokenizer.write(workdir, cfg.model_type, vocab, archs)
    if notes is not None:
        notes.append(f"tokenizer: a tiny WordLevel tokenizer written offline ({vocab} tokens; "
                     f"{', '.join(f'{t}={i}' for t, i in written.items())}), the same on both sides: "
                     f"{cfg.model_type}'s classes read token ids from it while built")


DRAFT_LAYER_COUNTS = ("num_nextn_predict_layers",)


def _draft_layer_kinds(tiny, count, notes):
    """The draft layers' own per-layer entries (``mtp_layer_types`` next to ``layer_types``) that a config
    class with such fields left None because its defaults have no draft layer: Step3p7TextConfig splits them off
    a released checkpoint's padded ``layer_types`` (the draft layers trail the decoder's), so a checkpoint with
    ``count`` draft layers carries them; here the last decoder entry each, as the class derives its defaults
    (all full attention; MoE from the fourth layer on)."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return
    filled = []
    for key in sorted(k for k in tiny if k.startswith("mtp_") and tiny[k] is None):
        base = tiny.get(key[len("mtp_"):])
        if isinstance(base, list) and base:
            tiny[key] = [base[-1]] * count
            filled.append(key)
    if filled and notes is not None:
        notes.append(f"config: {', '.join(f'{k}={tiny[k]!r}' for k in filled)}: the draft layer's own entries, which "
                     "a checkpoint with a draft layer carries (the class's defaults have none); the last decoder "
                     "layer's")


def auto_model_type(cls):
    """The model_type AutoConfig maps to ``cls`` when the class's own spelling is none of its keys
    (4.57.6's Lfm2VlConfig says "lfm2-vl", registered as "lfm2_vl": a config.json it saves does not
    load back), else None."""
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    own = getattr(cls, "model_type", None)
    if not own or own in CONFIG_MAPPING:
        return None
    keys = [k for k, name in CONFIG_MAPPING_NAMES.items() if name == cls.__name__ and CONFIG_MAPPING[k] is cls]
    return keys[0] if len(keys) == 1 else None


def _carried(hints, arch, cfg):
    """The CHECKPOINT_FIELDS entries of ``arch`` and of ``cfg``'s model type (its own over the type's)."""
    table = (hints.get("complete") or {}).get("checkpoint") or {}
    return {**(table.get(getattr(cfg, "model_type", None)) or {}), **(table.get(arch) or {})}


def _keep_released(workdir, tiny, carried, notes=None):
    """A sub-config's released field (a dotted CHECKPOINT_FIELDS key) written into config.json where
    save_pretrained dropped it as the pinned class's default: a class of the reference transformers may not
    declare it (transformers 5's Qwen3VLTextConfig has no tie_word_embeddings, Intern-S1-Pro's text config
    holds False), and a released config.json holds what its own class sets."""
    import json
    import os

    path = os.path.join(workdir, "config.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    kept = []
    for key in sorted(k for k in carried if "." in k):
        *parts, leaf = key.split(".")
        sub, have = data, tiny
        for part in parts:
            sub = sub.get(part) if isinstance(sub, dict) else None
            have = have.get(part) if isinstance(have, dict) else None
        if isinstance(sub, dict) and isinstance(have, dict) and leaf not in sub and have.get(leaf) is not None:
            sub[leaf] = copy.deepcopy(have[leaf])
            kept.append(f"{key}={have[leaf]!r}")
    if not kept:
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    if notes is not None:
        notes.append(f"config: {', '.join(kept)} written into config.json: the pinned class's default, which "
                     "save_pretrained leaves out, and a field the released config.json's own class holds")


# model_type -> {field the config class holds: the name its released config.json gives it}: the pinned vLLM's
# UltravoxConfig keeps the language model's config as wrapped_model_config (an object, which to_dict writes out)
# and builds it from text_config, the key fixie-ai's config.json files carry; a config.json holding
# wrapped_model_config loads as a plain dict there ('dict' object has no attribute 'get_text_config')
# OvisConfig (both vLLMs') builds its language model from llm_config, AIDC-AI's released key, and holds it as
# text_config, which to_dict writes out and the class does not read back (reloaded, its text_config was None again)
RELEASED_NAMES = {"ultravox": {"wrapped_model_config": "text_config"}, "ovis": {"text_config": "llm_config"}}
# model_type -> keys to_dict writes that a released config.json does not hold, where the reference side's class
# reads them as something else: DeepSeek-VL2 / -OCR(-2) / Unlimited-OCR's config.json holds the language model as
# language_config (CHECKPOINT_FIELDS writes it); upstream 0.33.0's DeepseekVLV2Config builds text_config from it
# and then hands its leftover kwargs to PreTrainedConfig, so a text_config key replaced the built config with a
# plain dict ("The text_config ... does not have `num_attention_heads`": upstream's class was never built). The
# pinned class builds text_config from language_config after its super().__init__: the key changed nothing there
RELEASED_WITHOUT = {mt: ("text_config",) for mt in ("deepseek_vl_v2", "deepseek_ocr", "deepseek_ocr2", "unlimited-ocr")}


def _released_names(data, model_type):
    """``data`` (a config dict) with the fields :data:`RELEASED_NAMES` renames under their released names."""
    for held, released in (RELEASED_NAMES.get(model_type) or {}).items():
        if held in data:
            data[released] = data.pop(held)


def _unread_sub_configs(cfg_cls, data):
    """Keys of ``data`` (``cfg_cls().to_dict()``) holding a sub-config that ``cfg_cls`` builds from other keys and
    does not read back: built again from ``data``, the class keeps them as plain dicts, or fails reading one as a
    config ("'dict' object has no attribute") where it builds without them (upstream's Moondream3Config builds
    text_config from config["text"]; a text_config key reaches PretrainedConfig's leftover kwargs and replaces the
    built one with a dict). A released config.json does not hold them."""
    from transformers import PretrainedConfig

    try:
        default = cfg_cls()
    except Exception:  # noqa: BLE001 - building from the tiny config reports the class's own error
        return []
    keys = sorted(k for k, v in data.items() if isinstance(v, dict) and isinstance(default.__dict__.get(k), PretrainedConfig))
    if not keys:
        return []
    try:
        built = _subcfg.from_dict(cfg_cls, copy.deepcopy(data))
    except AttributeError as exc:
        if "'dict' object has no attribute" not in str(exc):
            return []
        try:
            built = _subcfg.from_dict(cfg_cls, {k: copy.deepcopy(v) for k, v in data.items() if k not in keys})
        except Exception:  # noqa: BLE001
            return []
        return keys if all(isinstance(built.__dict__.get(k), PretrainedConfig) for k in keys) else []
    except Exception:  # noqa: BLE001
        return []
    return [k for k in keys if isinstance(built.__dict__.get(k), dict)]


def _save(cfg, workdir, notes=None, drop=()):
    """``save_pretrained``, with the model_type AutoConfig reads the class under (:func:`auto_model_type`),
    as a released checkpoint's config.json names it; without the keys ``drop`` (:func:`_unread_sub_configs`)
    nor those a released one lacks (:data:`RELEASED_WITHOUT`); its fields under their released names
    (:data:`RELEASED_NAMES`)."""
    import json
    import os

    cfg.save_pretrained(workdir)
    key = auto_model_type(type(cfg))
    dropped = [k for mt in dict.fromkeys((getattr(cfg, "model_type", None), type(cfg).model_type))
               for k in RELEASED_WITHOUT.get(mt, ())]
    drop = [*drop, *dropped]
    path = os.path.join(workdir, "config.json")
    if drop or RELEASED_NAMES.get(getattr(cfg, "model_type", None)):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for name in drop:
            data.pop(name, None)
        _released_names(data, cfg.model_type)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
    if key is None:
        return
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    data["model_type"] = key
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    if notes is not None:
        notes.append(f"config: model_type {key!r} in config.json: {type(cfg).__name__} spells itself "
                     f"{type(cfg).model_type!r}, which AutoConfig does not map (its key for the class is {key!r})")


def _write_target(arch, cfg_cls, target, workdir, method, notes, update=None):
    """A draft model's target (``workdir/target``): vLLM's proposer builds a draft with the target
    model's ``VllmConfig`` and a speculative config holding the draft's model config (the rewritten
    config, ``workdir``); ``_runtime_env._vllm_config`` builds both from here. The target names the
    draft's architecture too, so it resolves on either side whatever base model the plugin has.
    ``update``: upstream's rewrite, applied by the draft's ``ModelConfig`` to the loaded config as
    ``SpeculativeConfig`` does (``hf_overrides``)."""
    import json
    import os

    base = _subcfg.from_dict(cfg_cls, target)
    base.architectures = [arch]
    os.makedirs(os.path.join(workdir, _runtime_env.TARGET_DIR), exist_ok=True)
    _save(base, os.path.join(workdir, _runtime_env.TARGET_DIR))
    with open(os.path.join(workdir, _runtime_env.TARGET_DIR, _runtime_env.SPECULATIVE_FILE), "w",
              encoding="utf-8") as f:
        json.dump({"method": method, "num_speculative_tokens": 1, "overrides": update or {}}, f)
    if notes is not None:
        notes.append(f"config: {arch} is a draft model: built as vLLM's proposer builds it, with the target's "
                     f"VllmConfig and a speculative config (method {method!r}, 1 token) holding the draft's "
                     "model config (upstream's hf_config_override rewrite where it has one)")


def _text_config(cfg):
    getter = getattr(cfg, "get_text_config", None)
    return getter() if getter else cfg
