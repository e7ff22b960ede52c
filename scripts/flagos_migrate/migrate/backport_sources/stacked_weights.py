"""Stacked weight mapping for the pinned vLLM (back-port, rule P22).

Upstream vLLM declares fused projections in the model's ``WeightsMapper``:
``orig_to_new_stacked={".q_proj": (".qkv_proj", "q"), ".gate_proj": (".gate_up_proj", 0)}``.
Each checkpoint tensor is renamed to the fused parameter and tagged with its shard id, and the
loader hands that id to the parameter's ``weight_loader``. vLLM 0.13.0 has neither half: its
``WeightsMapper`` rejects the keyword and its ``AutoWeightsLoader`` never passes a shard id.

This module adds both on top of the pinned classes (subclasses, so ``isinstance`` checks and
the pinned ``apply_list``/``apply_dict`` keep working). Untagged tensors load exactly as on the
pinned version. Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/stacked_weights.py`` and re-points ``WeightsMapper``/``AutoWeightsLoader``
imports of migrated files here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import torch
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
        for old, (new, shard_id) in self.orig_to_new_stacked.items():
            if old in key:
                key = key.replace(old, new, 1)
                shard = shard_id
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
        return key, shard

    def _map_name(self, key: str) -> str | None:
        # the pinned apply_list/apply_dict (quantization configs' module names) call this
        mapped = self.map_name_with_shard(key)
        return None if mapped is None else mapped[0]

    def map_name(self, key: str) -> str | None:
        return self._map_name(key)

    def apply(self, weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[tuple[str, torch.Tensor]]:
        for name, tensor in weights:
            mapped = self.map_name_with_shard(name)
            if mapped is None:
                continue
            new_name, shard = mapped
            if shard is None:
                yield new_name, tensor
                continue
            for i, one in enumerate(shard if isinstance(shard, list) else [shard]):
                # every shard needs its own tensor object to carry its id; detach() shares storage
                part = tensor if i == 0 else tensor.detach()
                part.shard_id = one
                yield new_name, part


class AutoWeightsLoader(_PinnedAutoWeightsLoader):
    """The pinned loader, handing a tensor's ``shard_id`` to the parameter's ``weight_loader``."""

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
            loader = getattr(param, "weight_loader", None)
            if loader is None:
                raise ValueError(
                    f"checkpoint tensor for shard {shard!r} of '{qualname}', but that parameter has no "
                    "weight_loader taking a shard id: build the layer as MergedColumnParallelLinear or "
                    "QKVParallelLinear, or drop the entry from orig_to_new_stacked")
            loader(param, tensor, shard)
            yield qualname


__all__ = ["AutoWeightsLoader", "ShardId", "ShardIds", "WeightsMapper"]
