"""The transformers 5 config contract on transformers 4.x, for config bridges (rule P23).

Written by model-migrate-flagos; regenerated on every migrate_model.py apply, do not edit by hand.

transformers 5 configs are keyword-only dataclasses: fields with defaults, then ``__post_init__``
(sub-configs from ``sub_configs_defaults``, RoPE keys folded into ``rope_parameters``, leftover
keys set as attributes). The translated classes keep their fields as ``__v5_fields__`` and their
own ``__post_init__``; this base runs them in the same order and then hands the keys the 4.x
``PretrainedConfig.__init__`` owns to it. For the pinned vLLM (which reads RoPE the 4.x way),
``rope_scaling`` aliases ``rope_parameters`` as in transformers 5 and a flat ``rope_parameters``
mirrors its ``rope_theta``. ``per_layer_config`` (transformers 5's heterogeneous configs: Gemma 4's
full-attention layers with their own ``head_dim``) is a sequence of per-layer configs over sparse
overrides, as transformers 5's ``HeterogeneousConfigMixin`` gives it; the global fields stay readable
(transformers 5 refuses a per-layer field read globally, which the pinned vLLM's ModelConfig does).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence

from transformers import PretrainedConfig

# what transformers 5 calls ``RopeParameters`` is a TypedDict: a plain dict at run time
RopeParameters = dict
_PINNED_INIT_KEYS = frozenset(inspect.signature(PretrainedConfig.__init__).parameters) - {"self", "kwargs"}
_LEGACY_LAYER_TYPE_REMAP = {
    "mamba": "linear_attention",
    "attention": "full_attention",
    "deepseek_sparse_attention": "indexed_attention",
    "qwen_sparse_attention": "indexed_attention",
}
# transformers 5.20.2's configuration_utils: the layer kinds its validate_layer_type accepts
ALLOWED_ATTN_LAYER_TYPES = ("full_attention", "sliding_attention", "chunked_attention", "window_attention",
                            "indexed_attention", "compressed_sparse_attention", "heavily_compressed_attention",
                            "minimax_m3_sparse", "conv", "moe", "hybrid", "hybrid_sliding",
                            "reference_sliding_attention", "linear_attention")
ALLOWED_MLP_LAYER_TYPES = ("sparse", "dense")
_BRIDGES: dict = {}  # model_type -> translated class
_SCALED_ROPE_TYPES = ("llama3", "yarn", "longrope")
# class validators transformers 5 runs (``@strict``) but the base class defines: not re-run here
_BASE_VALIDATORS = frozenset({"validate_rope", "validate_token_ids", "validate_layer_type",
                              "validate_architecture", "validate_output_attentions"})


class Transformers5ConfigMethods:
    """Methods transformers 5's ``PreTrainedConfig`` defines and 4.57.6's ``PretrainedConfig`` lacks, as 5.x
    writes them. The bridges' base has them; upstream vLLM's own config modules, written for transformers 5
    but kept on 4.57.6's ``PretrainedConfig``, get them mixed in after it (bailing_moe_v3_vl's text config
    calls ``self.validate_layer_type()``): a name the pinned base defines is never shadowed."""

    def validate_layer_type(self):
        """transformers 5 ``validate_layer_type``: ``layer_types`` / ``mlp_layer_types`` hold known kinds, one a
        layer (and, as there, nothing is checked once ``layer_types`` is unset)."""
        for allowed, attr in zip((ALLOWED_ATTN_LAYER_TYPES, ALLOWED_MLP_LAYER_TYPES), ("layer_types", "mlp_layer_types")):
            layers = getattr(self, attr, None)
            if layers is None or not hasattr(self, "num_hidden_layers"):
                return
            if not all(kind in allowed for kind in layers):
                raise ValueError(f"The `{attr}` entries must be in {allowed} but got {layers}")
            if self.num_hidden_layers is not None and self.num_hidden_layers != len(layers):
                raise ValueError(f"`num_hidden_layers` ({self.num_hidden_layers}) must be equal to the number of "
                                 f"`{attr}` ({len(layers)})")


class SubConfigSpec:
    """How a composite config builds one sub-config (transformers 5 ``SubConfigSpec``)."""

    def __init__(self, config_class, model_type=None, init_kwargs=None, optional=False):
        self.init_kwargs = init_kwargs if init_kwargs is not None else {}
        self.config_class = config_class
        self.optional = optional
        if model_type is None and not hasattr(config_class, "model_type"):
            raise ValueError(f"sub-config spec for {config_class} needs a model_type")
        self.model_type = model_type if model_type is not None else config_class.model_type

    def get_config_class(self, model_type):
        if model_type in _BRIDGES:  # the transformers 5 class, translated: same keys as the checkpoint's
            return _BRIDGES[model_type]
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        if model_type not in CONFIG_MAPPING:
            raise ValueError(f"Unrecognized model type for subconfig: {model_type}")
        return CONFIG_MAPPING[model_type]

    def create_subconfig(self, key, subconfig=None, **kwargs):
        if isinstance(subconfig, PretrainedConfig):
            return subconfig, kwargs
        if isinstance(self.config_class, type) and issubclass(self.config_class, PretrainedConfig):
            cls = self.config_class
        else:
            model_type = subconfig.get("model_type", self.model_type) if subconfig is not None else self.model_type
            cls = self.get_config_class(model_type)
        if subconfig is None:
            subconfig = self.init_kwargs
        elif not isinstance(subconfig, dict):
            raise TypeError(f"`{key}` must be a dict, a config or None, got {type(subconfig)}")
        return cls(**subconfig), kwargs


def _layer_config(config, overrides: dict):
    """One layer's config: a shallow copy of the global one with that layer's overrides (transformers 5
    ``_get_layer_config``: ``skip`` lists the sub-layers the layer has not)."""
    out = copy.copy(config)
    out.__dict__.pop("_per_layer_overrides", None)
    out.skip = overrides.get("skip", [])
    for attr, value in overrides.items():
        if attr != "skip":
            setattr(out, attr, value)
    return out


class _PerLayerConfigView(Sequence):
    """``config.per_layer_config[i]`` (an index, a slice, or a layer type all of whose layers agree)."""

    def __init__(self, config) -> None:
        self._config = config

    def __len__(self) -> int:
        return self._config.num_hidden_layers

    def __getitem__(self, layer_idx):
        overrides = self._config.__dict__.get("_per_layer_overrides")
        if isinstance(layer_idx, str):
            types = getattr(self._config, "layer_types", None)
            if types is None or layer_idx not in types:
                raise ValueError(f"Layer type '{layer_idx}' not found in config.layer_types: {types}")
            if overrides is None:
                return self._config
            reference = overrides.get(types.index(layer_idx), {})
            if any(t == layer_idx and overrides.get(i, {}) != reference for i, t in enumerate(types)):
                raise ValueError(f"Layer type '{layer_idx}' is not homogeneous across layers")
            return _layer_config(self._config, reference)
        if isinstance(layer_idx, slice):
            return [self[i] for i in range(*layer_idx.indices(len(self)))]
        if layer_idx < 0:
            layer_idx += len(self)
        if not 0 <= layer_idx < len(self):
            raise IndexError("list index out of range")
        if overrides is None:
            return self._config
        return _layer_config(self._config, overrides.get(layer_idx, {}))


class PreTrainedConfig(PretrainedConfig, Transformers5ConfigMethods):
    """transformers 5 ``PreTrainedConfig`` semantics over the 4.x ``PretrainedConfig``."""

    model_type = ""  # as in transformers 5: the base of the bridges maps no checkpoint itself
    # the fields of transformers 5's base dataclass that a translated ``__post_init__`` reads before the base
    # runs (OpenAIPrivacyFilterConfig: ``if self.id2label is None``); 4.x sets them only in its __init__,
    # to which they are handed on as every field it owns
    __v5_fields__: dict = {"id2label": None, "label2id": None}
    __v5_factories__: dict = {}
    sub_configs_defaults: dict = {}
    default_theta = 10_000.0
    default_rope_type = "default"
    ignore_keys_at_rope_validation: set = set()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "sub_configs_defaults" in cls.__dict__:
            cls.sub_configs = {key: spec.config_class for key, spec in cls.sub_configs_defaults.items()}
        # transformers 5 knows every model_type; 4.x learns the ones it lacks (sub-configs by type)
        model_type = cls.__dict__.get("model_type")
        if model_type:
            _BRIDGES.setdefault(model_type, cls)
            from transformers import AutoConfig
            from transformers.models.auto.configuration_auto import CONFIG_MAPPING

            if model_type not in CONFIG_MAPPING:
                AutoConfig.register(model_type, cls)

    @classmethod
    def _v5_defaults(cls) -> dict:
        """name -> zero-argument factory of its default, parents first (dataclass field order)."""
        out: dict = {}
        for klass in reversed(cls.__mro__):
            for name, value in klass.__dict__.get("__v5_fields__", {}).items():
                out[name] = (lambda v=value: copy.deepcopy(v))
            out.update(klass.__dict__.get("__v5_factories__", {}))
        return out

    def __init__(self, **kwargs):
        for name, default in type(self)._v5_defaults().items():
            setattr(self, name, kwargs.pop(name) if name in kwargs else default())
        self.__post_init__(**kwargs)
        for klass in type(self).__mro__:
            for name, fn in klass.__dict__.items():
                if name.startswith("validate_") and name not in _BASE_VALIDATORS and callable(fn):
                    getattr(self, name)()
            if klass is PreTrainedConfig:
                break

    def __post_init__(self, **kwargs):
        for key, spec in type(self).sub_configs_defaults.items():
            sub = getattr(self, key, None)
            if sub is None and spec.optional:
                continue
            sub, kwargs = spec.create_subconfig(key, sub, **kwargs)
            setattr(self, key, sub)
        if "rope_parameters" in type(self)._v5_defaults():
            kwargs = self.convert_rope_params_to_dict(**kwargs)
        fields = type(self)._v5_defaults()
        owned = {name: getattr(self, name) for name in fields if name in _PINNED_INIT_KEYS}
        per_layer = kwargs.pop("per_layer_config", None)  # applied last, over every other field (transformers 5)
        PretrainedConfig.__init__(self, **owned, **kwargs)
        self._tie_text_config()
        if per_layer is not None:
            self.per_layer_config = per_layer
        for attr in ("layer_types", "mtp_layer_types"):
            types = getattr(self, attr, None)
            if types is not None and (remapped := remap_legacy_layer_types(types)) != types:
                setattr(self, attr, remapped)
        self._mirror_rope_for_pinned()

    def _tie_text_config(self) -> None:
        """transformers 5 keeps ``tie_word_embeddings`` on the config that holds both layers (Qwen3VLConfig) and
        not on its text config (Qwen3VLTextConfig has no such field); upstream vLLM copies the top level's into
        the text config its language model reads (VllmConfig.with_hf_config). 4.x's PretrainedConfig defaults it
        to True, so without the copy the pinned language model tied an lm_head the checkpoint holds apart. It
        copies it whether or not the text config class has the field too (GlmAsrConfig's top level says True,
        its LlamaConfig text config False: upstream ties, vllm/config/vllm.py "the presence of
        tie_word_embeddings in SomeVLTextConfig cannot be used as a signal")."""
        sub = self.__dict__.get("text_config")
        if "tie_word_embeddings" in type(self)._v5_defaults() and isinstance(sub, PretrainedConfig):
            sub.tie_word_embeddings = self.tie_word_embeddings

    def validate(self) -> None:
        """transformers 5's ``validate`` (what ``@strict`` gives its configs): every class validator, a public
        ``validate_*`` method taking only ``self``, run on the instance; upstream's dory.py calls it after
        hf_overrides. 4.57.6's PretrainedConfig has no such method. The validators are the bridge's: its own as
        transformers 5 writes them, this base's where 5.x's base has one (validate_rope, validate_layer_type)."""
        for name in dir(type(self)):
            method = getattr(type(self), name) if name.startswith("validate_") else None
            if callable(method) and len(inspect.signature(method).parameters) == 1:
                method(self)

    # -- per-layer overrides: transformers 5's HeterogeneousConfigMixin ------------------------------

    @property
    def is_heterogeneous(self) -> bool:
        return "_per_layer_overrides" in self.__dict__

    @property
    def per_layer_config(self):
        return _PerLayerConfigView(self)

    @per_layer_config.setter
    def per_layer_config(self, value) -> None:
        if value is None:
            self.__dict__.pop("_per_layer_overrides", None)
            return
        overrides = {int(i): copy.deepcopy(dict(o)) for i, o in value.items()}  # config.json keys are strings
        bad = [i for i in overrides if not 0 <= i < self.num_hidden_layers]
        if bad:
            raise ValueError(f"`per_layer_config` keys must be integer layer indices in the range "
                             f"[0, {self.num_hidden_layers}); got {bad}.")
        for one in overrides.values():  # an override equal to the global value is no override
            for attr in [a for a in one if a != "skip" and a in self.__dict__ and one[a] == self.__dict__[a]]:
                del one[attr]
            if "skip" in one:
                one["skip"] = sorted(set(one["skip"]))
        overrides = {i: o for i, o in overrides.items() if o}
        if overrides:
            self.__dict__["_per_layer_overrides"] = overrides
        else:
            self.__dict__.pop("_per_layer_overrides", None)

    def to_dict(self):
        # transformers 5 never serializes these (_remove_keys_not_serialized); a set is not JSON either
        out = super().to_dict()
        out.pop("ignore_keys_at_rope_validation", None)
        overrides = out.pop("_per_layer_overrides", None)
        if overrides:  # as transformers 5 writes it: zero-padded layer indexes
            width = len(str(max(overrides)))
            out["per_layer_config"] = {str(i).zfill(width): copy.deepcopy(o) for i, o in overrides.items()}
        return out

    def to_diff_dict(self):
        # transformers 5 diffs a sub-config only when one is set; 4.57.6 diffs every `sub_configs` key and
        # fails on an optional one left None (EmbeddingGemma2's vision_config), in repr() too. Such a key
        # is written as null, as transformers 5 writes it.
        unset = [k for k in type(self).sub_configs if k in self.__dict__ and self.__dict__[k] is None]
        if not unset:
            return super().to_diff_dict()
        saved = {k: self.__dict__.pop(k) for k in unset}
        try:
            out = super().to_diff_dict()
        finally:
            self.__dict__.update(saved)
        return {**out, **saved}

    # -- RoPE: transformers 5 keeps everything in ``rope_parameters`` -------------------------------

    @property
    def rope_scaling(self):
        return getattr(self, "rope_parameters", None)

    @rope_scaling.setter
    def rope_scaling(self, value):
        self.rope_parameters = value

    def nested_rope_parameter_keys(self, rope_parameters: dict) -> list:
        labels = getattr(self, "_rope_type_labels", None) or getattr(self, "layer_types", None) or ()
        return [key for key in rope_parameters if key in labels]

    def convert_rope_params_to_dict(self, **kwargs):
        rope_scaling = kwargs.pop("rope_scaling", None)
        self.rope_parameters = rope_scaling or self.rope_parameters
        self.rope_parameters = self.rope_parameters if self.rope_parameters is not None else {}
        rope_theta = kwargs.pop("rope_theta", self.__dict__.get("rope_theta", self.default_theta))
        partial = kwargs.pop("partial_rotary_factor", self.__dict__.get("partial_rotary_factor"))
        nested = self.nested_rope_parameter_keys(self.rope_parameters)
        for params in [self.rope_parameters[key] for key in nested] or [self.rope_parameters]:
            if params is None:
                continue
            params.setdefault("rope_theta", rope_theta)
            if partial is not None:
                params.setdefault("partial_rotary_factor", partial)
        if partial is not None:
            self.ignore_keys_at_rope_validation = set(self.ignore_keys_at_rope_validation or []) | {
                "partial_rotary_factor"}
        self.standardize_rope_params()
        return kwargs

    def standardize_rope_params(self):
        rope_theta = self.__dict__.get("rope_theta")
        partial = self.__dict__.get("partial_rotary_factor")
        params = getattr(self, "rope_parameters", None) or {}
        nested = self.nested_rope_parameter_keys(params)
        if not (params or rope_theta):
            return
        for one in [params[key] for key in nested] or [params]:
            if one is None:
                continue
            one.setdefault("rope_type", one.get("type", "default"))
            one.setdefault("rope_theta", rope_theta)
            if partial is not None:
                one.setdefault("partial_rotary_factor", partial)
            if one["rope_type"] in _SCALED_ROPE_TYPES:
                if not nested and "original_max_position_embeddings" in self.__dict__:
                    one["original_max_position_embeddings"] = self.original_max_position_embeddings
                else:
                    one.setdefault("original_max_position_embeddings", getattr(self, "max_position_embeddings", None))
            if self.default_rope_type != "default" and one["rope_type"] == "default":
                one["rope_type"] = self.default_rope_type
        self.rope_parameters = params

    # -- validators a translated ``__post_init__`` may call by name (Cohere2MoeConfig calls both):
    # transformers 5 defines them on its base class, 4.57.6's PretrainedConfig has neither

    def validate_rope(self):
        """transformers 5 ``validate_rope``: each RoPE dict gets its ``rope_type``; a fully rotated
        odd head (> 4) is refused. The per-type key checks of transformers 5 are not repeated."""
        params = getattr(self, "rope_parameters", None)
        if not params:
            return
        nested = self.nested_rope_parameter_keys(params)
        head_dim = getattr(self, "head_dim", None)
        for layer_type, one in ({key: params[key] for key in nested} or {"full_attention": params}).items():
            if one is None:
                continue
            one["rope_type"] = one.get("rope_type", one.get("type", "default"))
            if (isinstance(head_dim, int) and head_dim > 4 and head_dim % 2
                    and int(head_dim * one.get("partial_rotary_factor", 1.0)) == head_dim):
                raise ValueError(f"RoPE requires an even rotary dimension, but got `head_dim`={head_dim} for "
                                 f"`{layer_type}`.")

    def _mirror_rope_for_pinned(self) -> None:
        """A flat ``rope_parameters`` answers ``config.rope_theta`` too (4.x code reads it there);
        a per-layer-type one does not, and takes a flat key into each layer type's dict instead."""
        params = getattr(self, "rope_parameters", None)
        if isinstance(params, dict) and params and not self.nested_rope_parameter_keys(params):
            if "rope_theta" in params:
                self.__dict__["rope_theta"] = params["rope_theta"]
        elif isinstance(params, dict) and params and not isinstance(params, _PerLayerTypeRope):
            self.rope_parameters = _PerLayerTypeRope(params)


class _PerLayerTypeRope(dict):
    """A per-layer-type ``rope_parameters`` ({"full_attention": {...}, "sliding_attention": {...}}). vLLM 0.13.0's
    patch_rope_parameters writes a config's flat ``rope_theta`` / ``partial_rotary_factor`` (MiMo-V2-Flash's
    config.json carries both, which upstream's model reads) into it as keys next to the layer types, and then
    refuses the dict; transformers 5 (standardize_rope_params) gives each layer type the flat value it lacks."""

    def __setitem__(self, key, value):
        if isinstance(value, dict) or not any(isinstance(v, dict) for v in self.values()):
            return super().__setitem__(key, value)
        for one in self.values():
            if isinstance(one, dict):
                one.setdefault(key, value)


def remap_legacy_layer_types(layer_types):
    """Legacy layer-type names (``mamba``, ``attention``, ...) in the transformers 5 spelling."""
    return [_LEGACY_LAYER_TYPE_REMAP.get(t, t) for t in layer_types]


def layer_type_validation(layer_types, num_hidden_layers=None, attention=True):
    """transformers 5 ``layer_type_validation``: the list matches the number of layers."""
    if num_hidden_layers is not None and num_hidden_layers != len(layer_types):
        raise ValueError(f"`num_hidden_layers` ({num_hidden_layers}) must be equal to the number of layer types "
                         f"({len(layer_types)})")


__all__ = ["PreTrainedConfig", "RopeParameters", "SubConfigSpec", "Transformers5ConfigMethods", "layer_type_validation",
           "remap_legacy_layer_types"]
