"""Upstream's ``get_rope`` rope types that the pinned vLLM lacks (back-port, rule P22).

Upstream's ``get_rope`` builds ``Gemma4RotaryEmbedding`` for ``rope_type: "proportional"`` (Gemma 4's full-attention
layers, from its config.json): the inverse frequencies of the first ``rotary_dim / 2`` pairs use ``head_size`` as
the exponent's denominator, the remaining pairs get frequency 0 (cos 1, sin 0: unrotated), and the rotation covers
the whole head (neox-style ``rotate_half``). vLLM 0.13.0's ``get_rope`` raises ``Unknown RoPE scaling type
proportional``. This ``get_rope`` builds upstream's class (over the pinned ``RotaryEmbedding``, as upstream's is)
for that type and hands every other call to the pinned ``get_rope`` unchanged.

Upstream's YaRN (``rope_type: "yarn"``, no ``mrope_section``) scales cos/sin by the config's ``attention_factor``, else
by ``yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)`` when both are set, else by
``yarn_get_mscale(factor)``, as transformers does; 0.13.0's reads none of those three keys and scales by
``yarn_get_mscale(factor) * attn_factor`` (Ministral 3's config, ``mscale = mscale_all_dim = 1``: upstream 1.0,
0.13.0 1.28, so every logit moves). This ``get_rope`` builds the pinned ``YaRNScalingRotaryEmbedding`` with upstream's
scale (``apply_yarn_scaling=False``: the scale is ``attn_factor`` as given) and upstream's keys only.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/rope.py``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from vllm.model_executor.layers.rotary_embedding import get_rope as _pinned_get_rope
from vllm.model_executor.layers.rotary_embedding.base import RotaryEmbedding
from vllm.model_executor.layers.rotary_embedding.yarn_scaling_rope import YaRNScalingRotaryEmbedding

__all__ = ["Gemma4RotaryEmbedding", "get_rope"]

_ROPE_DICT: dict[tuple[Any, ...], RotaryEmbedding] = {}


class Gemma4RotaryEmbedding(RotaryEmbedding):
    """Upstream's proportional RoPE (vllm/model_executor/layers/rotary_embedding/gemma4_rope.py)."""

    def __init__(self, head_size: int, rotary_dim: int, max_position_embeddings: int, base: float,
                 is_neox_style: bool, dtype: torch.dtype) -> None:
        self.rope_angles = rotary_dim // 2
        self.nope_angles = (head_size // 2) - self.rope_angles
        # rotary_dim = head_size: the unrotated pairs rotate by 0 through the cache
        super().__init__(head_size, head_size, max_position_embeddings, base, is_neox_style, dtype)

    def _compute_inv_freq(self, base: float) -> torch.Tensor:
        exponents = torch.arange(0, 2 * self.rope_angles, 2, dtype=torch.float) / self.head_size
        inv_freq = 1.0 / (base**exponents)
        if self.nope_angles > 0:
            inv_freq = torch.cat([inv_freq, torch.zeros(self.nope_angles, dtype=torch.float)])
        return inv_freq


def _yarn_scale(params: dict[str, Any]) -> float:
    """Upstream's YaRNScalingRotaryEmbedding scale (yarn_scaling_rope.py; its yarn_get_mscale takes an mscale,
    0.13.0's does not)."""
    factor = params["factor"]

    def get_mscale(mscale: float = 1) -> float:
        return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0

    if params.get("attention_factor") is not None:
        return float(params["attention_factor"])
    if params.get("mscale") and params.get("mscale_all_dim"):
        return float(get_mscale(params["mscale"]) / get_mscale(params["mscale_all_dim"]))
    return float(get_mscale())


def get_rope(head_size: int, max_position: int, is_neox_style: bool = True,
             rope_parameters: dict[str, Any] | None = None, dtype: torch.dtype | None = None,
             dual_chunk_attention_config: dict[str, Any] | None = None) -> RotaryEmbedding:
    params = rope_parameters or {}
    rope_type = params.get("rope_type")
    yarn = rope_type == "yarn" and "mrope_section" not in params and dual_chunk_attention_config is None
    if rope_type != "proportional" and not yarn:
        return _pinned_get_rope(head_size, max_position, is_neox_style, rope_parameters, dtype,
                                dual_chunk_attention_config)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    rotary_dim = params.get("rope_dim")
    if not rotary_dim:
        factor = params.get("partial_rotary_factor", 1.0)
        if factor <= 0.0 or factor > 1.0:
            raise ValueError(f"partial_rotary_factor={factor} must be between 0.0 and 1.0")
        rotary_dim = int(head_size * factor)
    base = params.get("rope_theta", 10000)
    if yarn:
        # upstream's keys only (0.13.0's extrapolation_factor / attn_factor / apply_yarn_scaling are not read there)
        extra = {k: params[k] for k in ("beta_fast", "beta_slow", "truncate") if k in params}
        scale = _yarn_scale(params)
        key = ("yarn", head_size, rotary_dim, params["original_max_position_embeddings"], is_neox_style, base,
               params["factor"], scale, tuple(sorted(extra.items())), dtype)
        if key not in _ROPE_DICT:
            _ROPE_DICT[key] = YaRNScalingRotaryEmbedding(
                head_size, rotary_dim, params["original_max_position_embeddings"], base, is_neox_style,
                params["factor"], dtype, attn_factor=scale, apply_yarn_scaling=False, **extra)
        return _ROPE_DICT[key]
    key = (head_size, rotary_dim, max_position, is_neox_style, base, dtype)
    if key not in _ROPE_DICT:
        _ROPE_DICT[key] = Gemma4RotaryEmbedding(head_size, rotary_dim, max_position, base, is_neox_style, dtype)
    return _ROPE_DICT[key]
