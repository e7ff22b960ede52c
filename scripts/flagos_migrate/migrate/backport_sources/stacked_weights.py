"""Stacked weight mapping for the pinned vLLM (back-port, rule P22).

Upstream vLLM declares fused projections in the model's ``WeightsMapper``:
``orig_to_new_stacked={".q_proj": (".qkv_proj", "q"), ".gate_proj": (".gate_up_proj", 0)}``.
Each checkpoint tensor is renamed to the fused parameter and tagged with its shard id, and the
loader hands that id to the parameter's ``weight_loader``. vLLM 0.13.0 has neither half: its
``WeightsMapper`` rejects the keyword and its ``AutoWeightsLoader`` never passes a shard id.

This module adds both on top of the pinned classes (subclasses, so ``isinstance`` checks and
the pinned ``apply_list``/``apply_dict`` keep working). Untagged tensors load exactly as on the
pinned version. It also does what upstream's ``AutoWeightsLoader.load_weights`` does that the
pinned one does not, because upstream models dropped the hand-written code for it:

- a tuple shard id ``(0, 1, 2)`` (one checkpoint tensor holding several consecutive shards) is
  split along the parameter's output dim and each shard id loaded, as the pinned loader's own
  fused-on-disk path does; the pinned ``weight_loader`` rejects a tuple;
- KV-cache scale names are renamed (upstream's ``get_cache_scale_mapper`` regexes, then the
  pinned quantization config's own ``get_cache_scale``), as pinned models did by hand with
  ``maybe_remap_kv_scale_name``/``get_cache_scale``; scale, zero-point and ``.g_idx`` tensors the
  model has no parameter for are ignored, and so are unexpected ``.bias`` tensors (GPTQ);
- persistent buffers load; a tied embedding's alias (``lm_head.weight``) is skipped;
- ``_map_name`` (what the pinned quantization configs, LoRA name parsing and the bitsandbytes
  loader call) keeps only the renames, as upstream's ``get_rename_mapper()`` does: a stacked name
  stays ``q_proj`` and a name mapped to None is kept, not dropped.

Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/stacked_weights.py`` and re-points ``WeightsMapper``/``AutoWeightsLoader``
imports of migrated files here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Union

import torch
from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding
from vllm.model_executor.models.utils import AutoWeightsLoader as _PinnedAutoWeightsLoader
from vllm.model_executor.models.utils import WeightsMapper as _PinnedWeightsMapper

# an int for MergedColumnParallelLinear, "q"/"k"/"v" for QKVParallelLinear, a tuple for several
ShardId = Union[str, int, tuple]
# a list loads the same checkpoint tensor into each listed shard
ShardIds = Union[ShardId, list]


def _merge(*parts: Mapping) -> dict:
    out: dict = {}
    for part in parts:
        out.update(part)
    return out


@dataclass
class WeightsMapper(_PinnedWeightsMapper):
    """The pinned mapper plus upstream's ``orig_to_new_regex`` and ``orig_to_new_stacked``."""

    orig_to_new_regex: Mapping[Any, str | None] = field(default_factory=dict)
    orig_to_new_stacked: Mapping[str, tuple[str, ShardIds]] = field(default_factory=dict)

    def __or__(self, other: _PinnedWeightsMapper) -> WeightsMapper:
        return WeightsMapper(
            orig_to_new_substr=_merge(self.orig_to_new_substr, other.orig_to_new_substr),
            orig_to_new_prefix=_merge(self.orig_to_new_prefix, other.orig_to_new_prefix),
            orig_to_new_suffix=_merge(self.orig_to_new_suffix, other.orig_to_new_suffix),
            orig_to_new_regex=_merge(self.orig_to_new_regex, getattr(other, "orig_to_new_regex", {})),
            orig_to_new_stacked=_merge(self.orig_to_new_stacked, getattr(other, "orig_to_new_stacked", {})),
        )

    def __ror__(self, other: _PinnedWeightsMapper) -> WeightsMapper:
        # ``pinned_mapper | stacked_mapper``: Python asks the subclass first, so the stacking survives
        return WeightsMapper(
            orig_to_new_substr=other.orig_to_new_substr,
            orig_to_new_prefix=other.orig_to_new_prefix,
            orig_to_new_suffix=other.orig_to_new_suffix,
        ) | self

    def map_name_with_shard(self, key: str) -> tuple[str, ShardIds | None] | None:
        """``(new name, shard id or None)``, or None when the tensor is to be dropped.

        Same order as upstream: regex, substrings, stacking, prefixes, suffixes."""
        mapped = self._map_stacking(key)
        return None if mapped is None else mapped[:2]

    def _map_stacking(self, key: str) -> tuple[str, ShardIds | None, tuple[str, str] | None] | None:
        """:meth:`map_name_with_shard` and the stacking rename it made (``(old, new)``, else None)."""
        for pattern, new in self.orig_to_new_regex.items():
            if pattern.search(key):
                if new is None:
                    return None
                key = pattern.sub(new, key)
        for old, new in self.orig_to_new_substr.items():
            if old in key:
                if new is None:
                    return None
                key = key.replace(old, new, 1)
        shard: ShardIds | None = None
        stacked = None
        for old, (new, shard_id) in self.orig_to_new_stacked.items():
            if old in key:
                key = key.replace(old, new, 1)
                shard, stacked = shard_id, (old, new)
        for old, new in self.orig_to_new_prefix.items():
            if key.startswith(old):
                if new is None:
                    return None
                key = key.replace(old, new, 1)
        for old, new in self.orig_to_new_suffix.items():
            if key.endswith(old):
                if new is None:
                    return None
                key = new.join(key.rsplit(old, 1))
        return key, shard, stacked

    def get_rename_mapper(self) -> WeightsMapper:
        """Upstream's mapper for consumers that name modules rather than load them: no stacking
        (``q_proj`` stays ``q_proj``), no mapping to None (nothing is dropped)."""
        def keep(d):
            return {k: v for k, v in d.items() if v is not None}
        return replace(self, orig_to_new_regex=keep(self.orig_to_new_regex),
                       orig_to_new_substr=keep(self.orig_to_new_substr), orig_to_new_stacked={},
                       orig_to_new_prefix=keep(self.orig_to_new_prefix),
                       orig_to_new_suffix=keep(self.orig_to_new_suffix))

    def _map_name(self, key: str) -> str | None:
        # The pinned vLLM hands the model's own mapper to the consumers that only name modules
        # (apply_vllm_mapper's apply_list/apply_dict, LoRA name parsing, bitsandbytes) and they call
        # this; upstream hands them get_rename_mapper(), so this is that mapper's answer.
        mapped = self.get_rename_mapper().map_name_with_shard(key)
        return None if mapped is None else mapped[0]

    def map_name(self, key: str) -> str | None:
        """The full mapping (stacking and drops included), as upstream's ``map_name``."""
        mapped = self.map_name_with_shard(key)
        return None if mapped is None else mapped[0]

    def apply(self, weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[tuple[str, torch.Tensor]]:
        for name, tensor in weights:
            mapped = self._map_stacking(name)
            if mapped is None:
                continue
            new_name, shard, stacked = mapped
            if shard is None:
                yield new_name, tensor
                continue
            for i, one in enumerate(shard if isinstance(shard, list) else [shard]):
                # every shard needs its own tensor object to carry its id; detach() shares storage
                part = tensor if i == 0 else tensor.detach()
                part.shard_id = one
                if not isinstance(shard, list):  # one tensor, one shard: a pinned loader can take it unstacked
                    part.stacked_from = stacked
                yield new_name, part


def _split_consecutive(shard: tuple, sizes: list) -> list[int]:
    ids = list(shard)
    if not ids or any(not 0 <= i < len(sizes) for i in ids) or any(b - a != 1 for a, b in zip(ids, ids[1:])):
        raise ValueError(f"shard id {shard!r} must be consecutive indices below {len(sizes)}")
    return ids


def load_shard(param: torch.nn.Parameter, loaded_weight: torch.Tensor, shard: ShardId) -> None:
    """``param.weight_loader(param, loaded_weight, shard)`` that also takes upstream's tuple shard id.

    A tuple names consecutive shards of a MergedColumnParallelLinear stored as one tensor: it is cut
    along the parameter's output dim by the layer's ``output_sizes`` (packed quantized weights
    divided by their packing factor) and each piece loaded with its own shard id, which is what the
    pinned ``weight_loader`` does itself for a tensor holding all shards (shard id None)."""
    loader = param.weight_loader
    if not isinstance(shard, tuple):
        loader(param, loaded_weight, shard)
        return
    sizes = getattr(getattr(loader, "__self__", None), "output_sizes", None)
    if sizes is None:
        raise ValueError(f"tuple shard id {shard!r} for a parameter whose layer has no output_sizes: "
                         "build the layer as MergedColumnParallelLinear")
    ids = _split_consecutive(shard, sizes)
    output_dim = getattr(param, "output_dim", None)
    if output_dim is None:
        # a per-tensor scale: upstream loads the one value into every listed shard
        for i in ids:
            loader(param, loaded_weight, i)
        return
    packed = getattr(param, "packed_dim", None) == output_dim and getattr(param, "packed_factor", None)
    offset = 0
    for i in ids:
        size = sizes[i] // packed if packed else sizes[i]
        loader(param, loaded_weight.narrow(output_dim, offset, size), i)
        offset += size
    if offset != loaded_weight.shape[output_dim]:
        raise ValueError(f"tuple shard id {shard!r}: the checkpoint tensor has {loaded_weight.shape[output_dim]} "
                         f"rows along dim {output_dim}, the shards {offset}")


# upstream QuantizationConfig.get_cache_scale_mapper(): checkpoint KV-cache scale names -> vLLM's
CACHE_SCALE_REGEX = {
    re.compile(r"\.kv_scale$"): r".attn.k_scale",
    re.compile(r"\.self_attn\.[kv]_proj\.([kv])_scale$"): r".self_attn.attn.\1_scale",
    re.compile(r"\.self_attn\.qk(?:qk)?v_proj\.([kv])_scale$"): r".self_attn.attn.\1_scale",
    re.compile(r"\.mixer\.[kv]_proj\.([kv])_scale$"): r".mixer.attn.\1_scale",
    re.compile(r"\.self_attn\.q\.scale$"): r".self_attn.attn.q_scale",
    re.compile(r"\.self_attn\.([kv])_cache\.scale$"): r".self_attn.attn.\1_scale",
    re.compile(r"(?<!\.attn)\.([qkv])_scale$"): r".attn.\1_scale",
    re.compile(r"(?<!\.attn)\.([qkv])_zero_point$"): r".attn.\1_zero_point",
}
# upstream QuantizationConfig._ignore_unexpected_suffixes; ".g_idx" is upstream's
# get_checkpoint_weight_mapper() drop, kept here where the pinned kernel has the parameter
QUANT_IGNORE_SUFFIXES = (".q_scale", ".k_scale", ".v_scale", ".q_zero_point", ".k_zero_point",
                         ".v_zero_point", ".g_idx")


def _tied_aliases(module: torch.nn.Module) -> dict[str, str]:
    """Each tied word-embedding qualname after the first -> the first (upstream's aliases)."""
    first: dict[int, str] = {}
    aliased: dict[str, str] = {}
    for prefix, sub in module.named_modules(remove_duplicate=False):
        if isinstance(sub, VocabParallelEmbedding):
            for name, param in sub.named_parameters(remove_duplicate=False):
                qualname = f"{prefix}.{name}" if prefix else name
                if first.setdefault(id(param), qualname) != qualname:
                    aliased[qualname] = first[id(param)]
    return aliased


class AutoWeightsLoader(_PinnedAutoWeightsLoader):
    """The pinned loader, handing a tensor's ``shard_id`` to the parameter's ``weight_loader``,
    plus what upstream's ``load_weights`` does that the pinned one does not (module docstring)."""

    def __init__(self, module: torch.nn.Module, **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        self.aliased_params = _tied_aliases(module)

    def _can_skip(self, qualname: str) -> bool:
        return qualname in self.aliased_params or super()._can_skip(qualname)

    def _add_loadable_non_param_tensors(self, module: torch.nn.Module, child_params: dict) -> None:
        super()._add_loadable_non_param_tensors(module, child_params)
        # upstream loads persistent buffers (PyTorch's state_dict() has them); 0.13.0 does not
        transient = getattr(module, "_non_persistent_buffers_set", set())
        for name, buf in module.named_buffers(recurse=False):
            if name not in child_params and name not in transient:
                child_params[name] = buf

    def _load_param(self, base_prefix: str, param: torch.nn.Parameter,
                    weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[str]:
        for weight_name, tensor in weights:
            shard = getattr(tensor, "shard_id", None)
            if shard is None or weight_name != "":
                yield from super()._load_param(base_prefix, param, [(weight_name, tensor)])
                continue
            qualname = self._get_qualname(base_prefix, weight_name)
            if self._can_skip(qualname):
                continue
            if getattr(param, "weight_loader", None) is None:
                raise ValueError(
                    f"checkpoint tensor for shard {shard!r} of '{qualname}', but that parameter has no "
                    "weight_loader taking a shard id: build the layer as MergedColumnParallelLinear or "
                    "QKVParallelLinear, or drop the entry from orig_to_new_stacked")
            load_shard(param, tensor, shard)
            yield qualname

    def _load_module(self, base_prefix: str, module: torch.nn.Module,
                     weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[str]:
        # A child whose own load_weights is the pinned vLLM's reads checkpoint names and stacks them by hand
        # (Qwen2Model's stacked_params_mapping): it gets a tensor this mapper stacked under its checkpoint name,
        # and its weight_loader the same shard id (upstream's child takes the stacked name and the id instead).
        # Stacked, its `"up_proj" in name` matched inside gate_up_proj: gate_gate_up_proj (MOSS-Audio's Qwen3)
        if module is not self.module and _pinned_loader(module):
            weights = _unstacked(weights)
        yield from super()._load_module(base_prefix, module, weights)

    def _quant_config(self):
        # upstream: many models keep quant_config on the inner model, so look one level down too
        modules = (self.module, *self.module.children())
        return next((m.quant_config for m in modules if getattr(m, "quant_config", None) is not None), None)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]], *,
                     mapper: _PinnedWeightsMapper | None = None) -> set[str]:
        # upstream ignores unexpected biases (typically from GPTQ checkpoints)
        self.ignore_unexpected_suffixes.append(".bias")
        mapper = WeightsMapper() | (mapper or WeightsMapper())
        quant_config = self._quant_config()
        if quant_config is not None:
            # one mapper, as upstream: its regexes run before the stacking and prefix renames
            mapper |= WeightsMapper(orig_to_new_regex=CACHE_SCALE_REGEX)
            self.ignore_unexpected_suffixes.extend(QUANT_IGNORE_SUFFIXES)
        weights = mapper.apply(weights)
        if quant_config is not None:
            # the config's own spellings (fp8/quark: ``k_proj.output_scale``), upstream's suffix map
            weights = _renamed(weights, quant_config.get_cache_scale)
        return super().load_weights(weights)


def _pinned_loader(module: torch.nn.Module) -> bool:
    """Whether ``module``'s own ``load_weights`` is the pinned vLLM's (inherited or not), not a migrated one."""
    fn = getattr(type(module), "load_weights", None)
    return callable(fn) and (getattr(fn, "__module__", None) or "").split(".")[0] == "vllm"


def _unstacked(weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[tuple[str, torch.Tensor]]:
    """The tensors :meth:`WeightsMapper.apply` stacked back under their checkpoint names, untagged."""
    for name, tensor in weights:
        stacked = getattr(tensor, "stacked_from", None)
        if stacked is not None and getattr(tensor, "shard_id", None) is not None and stacked[1] in name:
            name = name.replace(stacked[1], stacked[0], 1)
            del tensor.shard_id, tensor.stacked_from
        yield name, tensor


def _renamed(weights: Iterable[tuple[str, torch.Tensor]], rename) -> Iterable[tuple[str, torch.Tensor]]:
    for name, tensor in weights:
        yield rename(name) or name, tensor


__all__ = ["AutoWeightsLoader", "ShardId", "ShardIds", "WeightsMapper", "load_shard"]
