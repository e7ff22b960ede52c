"""Upstream's ``get_rope`` rope types that the pinned vLLM lacks (back-port, rule P22).

Upstream's ``get_rope`` builds ``Gemma4RotaryEmbedding`` for ``rope_type: "proportional"`` (Gemma 4's full-attention
layers, from its config.json): the inverse frequencies of the first ``rotary_dim / 2`` pairs use ``head_size`` as
the exponent's denominator, the remaining pairs get frequency 0 (cos 1, sin 0: unrotated), and the rotation covers
the whole head (neox-style ``rotate_half``). vLLM 0.13.0's ``get_rope`` raises ``Unknown RoPE scaling type
proportional``. Upstream's ``get_rope`` also builds ``FourierRotaryEmbedding`` (FoPE, InternS1-Pro) for a
``default`` rope without ``mrope_section`` whose parameters say ``use_fope``: per KV head (``fope_sep_head``) learned
``cos_coef`` / ``sin_coef`` mix the inverse frequencies (the first ``num_inv_freq``, else those above
``2 pi / max_position``) into the head's cos / sin, padded with 1; vLLM 0.13.0's ``get_rope`` ignores the keys and
builds plain RoPE (other numbers, no coefficients to load). Upstream's ``get_rope`` builds
``BailingMRotaryEmbedding`` for ``rope_type: "bailing_mrope"`` (Ling / Bailing MoE V3 VL: H/W positions on
alternating frequency pairs, T on the tail); vLLM 0.13.0's raises ``Unknown RoPE scaling type bailing_mrope``.
This ``get_rope`` builds upstream's classes (over the pinned ``RotaryEmbedding`` / ``MRotaryEmbedding``, as
upstream's are) for those and hands every other call to the pinned ``get_rope``
unchanged. As upstream's, one instance serves every call with the same arguments (its ``_ROPE_DICT``): the layers
of a model share one FoPE module and its coefficients.

Upstream's YaRN (``rope_type: "yarn"``, no ``mrope_section``) scales cos/sin by the config's
``attention_factor``, else by ``yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)`` when both
are set, else by ``yarn_get_mscale(factor)``, as transformers does; 0.13.0's reads none of those three keys and scales
by ``yarn_get_mscale(factor) * attn_factor`` (Ministral 3's config, ``mscale = mscale_all_dim = 1``: upstream 1.0,
0.13.0 1.28, so every logit moves). This ``get_rope`` builds the pinned ``YaRNScalingRotaryEmbedding`` with upstream's
scale (``apply_yarn_scaling=False``: the scale is ``attn_factor`` as given) and upstream's keys only. M-RoPE + YaRN
is refused with the reason (upstream's frequencies depend on ``mrope_positions_factor``, which the migration drops;
0.13.0's ``MRotaryEmbedding`` cannot build YaRN at all). Upstream's dynamic NTK (``rope_type: "dynamic"`` with a
``factor``) keeps the base unless ``max_trained_positions`` is below ``max_position``; 0.13.0's always grows it: the
back-port builds upstream's. Upstream reads ``rope_dim`` as the rotary dim and no ``attn_factor`` /
``extrapolation_factor`` for DeepSeek YaRN; 0.13.0 the reverse: the pinned ``get_rope`` gets upstream's rotary dim as
a ``partial_rotary_factor`` and no key only it reads. Upstream's ``is_deepseek_v4`` rope (another class) is refused.
Every other call is the pinned ``get_rope``'s, unchanged (the same cached module): upstream computes those the same.
Migrated files that import ``get_rope`` take it from here, whatever their model: the numbers depend on the
checkpoint's config.json, which the migration does not see.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/rope.py``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from vllm.distributed import get_tensor_model_parallel_rank, get_tensor_model_parallel_world_size
from vllm.model_executor.layers.rotary_embedding import get_rope as _pinned_get_rope
from vllm.model_executor.layers.rotary_embedding.base import RotaryEmbedding
from vllm.model_executor.layers.rotary_embedding.common import rotate_neox
from vllm.model_executor.layers.rotary_embedding.mrope import MRotaryEmbedding
from vllm.model_executor.layers.rotary_embedding.yarn_scaling_rope import YaRNScalingRotaryEmbedding

__all__ = ["BailingMRotaryEmbedding", "DynamicNTKScalingRotaryEmbedding", "FourierRotaryEmbedding",
           "Gemma4RotaryEmbedding", "get_rope"]

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


class FourierRotaryEmbedding(RotaryEmbedding):
    """Upstream's FoPE (vllm/model_executor/layers/rotary_embedding/fope.py). Upstream builds its base with
    ``init_cache=False``, which 0.13.0's ``RotaryEmbedding`` does not take: the pinned base computes its plain
    cache once (over this class's selected frequencies), then upstream's FoPE cache replaces it."""

    def __init__(self, head_size: int, rotary_dim: int, max_position_embeddings: int, base: float,
                 is_neox_style: bool, dtype: torch.dtype, init_cache: bool, num_key_value_heads: int,
                 num_inv_freq: int, fope_sep_head: bool, fope_init_factor: float) -> None:
        self.num_key_value_heads = num_key_value_heads
        self.num_inv_freq = num_inv_freq
        self.fope_sep_head = fope_sep_head
        self.fope_init_factor = fope_init_factor
        super().__init__(head_size, rotary_dim, max_position_embeddings, base, is_neox_style, dtype)
        self.inv_freq: torch.Tensor
        self.register_buffer("inv_freq", self._compute_inv_freq(self.base), persistent=False)
        self.input_dim = self.inv_freq.shape[-1]
        self.output_dim = self.inv_freq.shape[-1]
        self.cos_coef = nn.Parameter(torch.empty(num_key_value_heads, self.input_dim, self.output_dim),
                                     requires_grad=False)
        self.sin_coef = nn.Parameter(torch.empty(num_key_value_heads, self.input_dim, self.output_dim),
                                     requires_grad=False)
        self.sin_coef.weight_loader = self.weight_loader
        self.cos_coef.weight_loader = self.weight_loader
        self.cos_sin_cache: torch.Tensor
        self.register_buffer("cos_sin_cache", self._compute_cos_sin_cache().to(dtype), persistent=False)
        # the cache is computed again in the first forward, once the coefficients are loaded
        self.update_cache = True

    def _compute_inv_freq(self, base: float) -> torch.Tensor:
        inv_freq = 1.0 / (base ** (torch.arange(0, self.rotary_dim, 2, dtype=torch.float) / self.rotary_dim))
        selected = torch.ones_like(inv_freq, dtype=torch.bool)
        if self.num_inv_freq is not None:
            selected[self.num_inv_freq:] = False
        else:
            selected = inv_freq > (2.0 * torch.pi / self.max_position_embeddings)
        return inv_freq[selected]

    def _compute_cos_sin_cache(self) -> torch.Tensor:
        if "cos_coef" not in self._parameters:  # the pinned base's __init__: its plain cache, replaced above
            return super()._compute_cos_sin_cache()
        t = torch.arange(self.max_position_embeddings, dtype=torch.float, device=self.inv_freq.device)
        freqs = torch.einsum("j,i -> ji", t, self.inv_freq)
        if self.fope_sep_head:
            pos_cos = freqs.cos().unsqueeze(0).expand(self.num_key_value_heads, -1, -1)
            pos_sin = freqs.sin().unsqueeze(0).expand(self.num_key_value_heads, -1, -1)
            sin = torch.einsum("htD, hDd -> thd", pos_sin, self.sin_coef.float())
            cos = torch.einsum("htD, hDd -> thd", pos_cos, self.cos_coef.float())
        else:
            sin = torch.einsum("tD, Dd -> td", freqs.sin(), self.sin_coef.float())
            cos = torch.einsum("tD, Dd -> td", freqs.cos(), self.cos_coef.float())
        sin = F.pad(input=sin, pad=(0, self.head_size // 2 - sin.size(-1)), mode="constant", value=1)
        cos = F.pad(input=cos, pad=(0, self.head_size // 2 - cos.size(-1)), mode="constant", value=1)
        sin = torch.cat((sin, sin), dim=-1)
        cos = torch.cat((cos, cos), dim=-1)
        return torch.cat((cos, sin), dim=-1)  # (max_position, [num_kv_heads,] head_size * 2)

    def forward_native(self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor | None = None,
                       offsets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.update_cache:
            self.cos_sin_cache.copy_(self._compute_cos_sin_cache().to(self.dtype))
            self.update_cache = False
        positions = positions.flatten()
        cos, sin = self.cos_sin_cache.index_select(0, positions).chunk(2, dim=-1)
        query = query.unflatten(-1, (-1, self.head_size))
        assert key is not None, "Key tensor is required for FoPE."
        key = key.unflatten(-1, (-1, self.head_size))
        assert query.dim() == key.dim() == 3, "Expected query key (seq_len, heads, head_dim)"
        assert cos.dim() <= 3 and sin.dim() <= 3
        need_reshape = False
        if cos.dim() == 3:  # one cos / sin per KV head: the heads of a group side by side
            need_reshape = True
            query_shape, key_shape = query.shape, key.shape
            cos, sin = cos.flatten(0, 1), sin.flatten(0, 1)
            seq_len = cos.size(0)
            query = query.view(seq_len, -1, query.size(-1))
            key = key.view(seq_len, -1, key.size(-1))
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        query = (query * cos) + (rotate_neox(query) * sin)
        key = (key * cos) + (rotate_neox(key) * sin)
        if need_reshape:
            query, key = query.view(query_shape), key.view(key_shape)
        return query, key

    def weight_loader(self, param: nn.Parameter, loaded_weight: torch.Tensor) -> None:
        """A rank's KV heads of the coefficients (replicated where there are fewer heads than ranks)."""
        world_size = get_tensor_model_parallel_world_size()
        rank = get_tensor_model_parallel_rank()
        num_key_value_heads = loaded_weight.size(0)
        if num_key_value_heads < world_size:
            n_replicate = world_size // num_key_value_heads
            world_size = num_key_value_heads
            rank = rank // n_replicate
        param.data.copy_(loaded_weight.chunk(world_size, dim=0)[rank])


def _validate_bailing_mrope_config(head_size: int, rotary_dim: int, mrope_section: list[int]) -> int:
    if rotary_dim <= 0 or rotary_dim % 2 != 0 or rotary_dim > head_size:
        raise ValueError("Bailing M-RoPE requires an even rotary_dim in (0, head_size], "
                         f"got rotary_dim={rotary_dim} and head_size={head_size}")
    if len(mrope_section) != 3:
        raise ValueError(f"Bailing M-RoPE expects [T, H, W] sections, got mrope_section={mrope_section}")
    temporal_size, height_size, width_size = mrope_section
    if any(section_size < 0 for section_size in mrope_section):
        raise ValueError(f"Bailing M-RoPE sections must be non-negative, got mrope_section={mrope_section}")
    if height_size != width_size:
        raise ValueError("Bailing M-RoPE requires equal H and W sections, "
                         f"got height_size={height_size} and width_size={width_size}")
    spatial_size = height_size + width_size
    if spatial_size + temporal_size != rotary_dim // 2:
        raise ValueError("Bailing M-RoPE sections must sum to rotary_dim // 2, got "
                         f"mrope_section={mrope_section} and rotary_dim={rotary_dim}")
    return spatial_size


def _validate_bailing_positions(positions: torch.Tensor, *, require_2d: bool = False) -> None:
    if positions.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"Bailing M-RoPE positions must have int32 or int64 dtype, got dtype={positions.dtype}")
    if positions.ndim == 1 and not require_2d:
        return
    if positions.ndim == 2:
        if positions.shape[0] == 3:
            return
        raise ValueError(f"Bailing M-RoPE expects T/H/W positions with shape [3, N], got shape={tuple(positions.shape)}")
    if require_2d:
        raise ValueError(f"Bailing M-RoPE expects T/H/W positions with shape [3, N], got shape={tuple(positions.shape)}")
    raise ValueError(f"Bailing M-RoPE positions must be 1D or 2D, got shape={tuple(positions.shape)}")


class BailingMRotaryEmbedding(MRotaryEmbedding):
    """Upstream's Bailing M-RoPE (vllm/model_executor/layers/rotary_embedding/bailing_mrope.py): the first
    ``sum(H, W)`` frequency pairs alternate between the H and W positions, the rest (the tail) take the T
    position, over the pinned ``MRotaryEmbedding``'s cache (upstream's with its default ``positions_factor`` 4:
    ``4 * max_position`` rows, as 0.13.0's). 0.13.0's ``get_rope`` raises ``Unknown RoPE scaling type
    bailing_mrope``. Upstream's CUDA path for 2-D positions with GPT-J style is a fused Triton kernel that rounds
    each product to the query's dtype and subtracts / adds in float32 before storing in that dtype: the roundings
    of ``forward_native`` (which upstream runs on CPU and for every other case), so CUDA runs that here."""

    def __init__(self, head_size: int, rotary_dim: int, max_position_embeddings: int, base: float,
                 is_neox_style: bool, dtype: torch.dtype, mrope_section: list[int]) -> None:
        self.spatial_size = _validate_bailing_mrope_config(head_size, rotary_dim, mrope_section)
        super().__init__(head_size, rotary_dim, max_position_embeddings, base, is_neox_style, dtype,
                         mrope_section=mrope_section)

    def select_cos_sin(self, positions: torch.Tensor,
                       cos_sin_cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _validate_bailing_positions(positions)
        if cos_sin_cache is None:
            cos_sin_cache = self.cos_sin_cache
        cos_sin = cos_sin_cache[positions.to(torch.long)]
        cos, sin = cos_sin.chunk(2, dim=-1)
        if positions.ndim == 1:
            return cos, sin
        spatial_mask = torch.arange(self.spatial_size, device=cos.device) % 2 == 0
        spatial_mask = spatial_mask.unsqueeze(0)
        spatial_cos = torch.where(spatial_mask, cos[1, :, : self.spatial_size], cos[2, :, : self.spatial_size])
        spatial_sin = torch.where(spatial_mask, sin[1, :, : self.spatial_size], sin[2, :, : self.spatial_size])
        temporal_slice = slice(self.spatial_size, self.rotary_dim // 2)
        return (torch.cat((spatial_cos, cos[0, :, temporal_slice]), dim=-1),
                torch.cat((spatial_sin, sin[0, :, temporal_slice]), dim=-1))

    def forward_native(self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor | None = None,
                       offsets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if key is None:
            raise ValueError("Bailing M-RoPE requires key states")
        # upstream's _match_cos_sin_cache_dtype returns the cache; 0.13.0's sets it and returns None
        self._match_cos_sin_cache_dtype(query)
        cos, sin = self.select_cos_sin(positions, self.cos_sin_cache)
        num_tokens = positions.shape[-1]
        query_shape = query.shape
        query = query.view(num_tokens, -1, self.head_size)
        query_rot = self.apply_rotary_emb.forward_native(query[..., : self.rotary_dim], cos, sin)
        query = torch.cat((query_rot, query[..., self.rotary_dim :]), dim=-1)
        key_shape = key.shape
        key = key.view(num_tokens, -1, self.head_size)
        key_rot = self.apply_rotary_emb.forward_native(key[..., : self.rotary_dim], cos, sin)
        key = torch.cat((key_rot, key[..., self.rotary_dim :]), dim=-1)
        return query.reshape(query_shape), key.reshape(key_shape)

    def forward_cuda(self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor | None = None,
                     offsets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.forward_native(positions, query, key, offsets)

    def forward_cpu(self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor | None = None,
                    offsets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.forward_native(positions, query, key, offsets)


_FOPE_KEYS = ("num_key_value_heads", "num_inv_freq", "fope_sep_head", "fope_init_factor")


class DynamicNTKScalingRotaryEmbedding(RotaryEmbedding):
    """Upstream's dynamic NTK (dynamic_ntk_scaling_rope.py): the base grows by ``factor * max_position /
    max_trained_positions - (factor - 1)`` (1, plain RoPE, unless ``max_trained_positions`` is below
    ``max_position``) over a cache of ``max_position`` rows; 0.13.0's grows it by ``factor**2 - factor + 1`` over
    ``max_position * factor`` rows (other frequencies for every factor above 1)."""

    def __init__(self, head_size: int, rotary_dim: int, max_position_embeddings: int, max_trained_positions: int,
                 base: float, is_neox_style: bool, scaling_factor: float, dtype: torch.dtype) -> None:
        self.scaling_factor = scaling_factor
        self.max_trained_positions = max_trained_positions
        super().__init__(head_size, rotary_dim, max_position_embeddings, base, is_neox_style, dtype)

    def _compute_cos_sin_cache(self) -> torch.Tensor:
        base = self.base * ((self.scaling_factor * self.max_position_embeddings / self.max_trained_positions)
                            - (self.scaling_factor - 1)) ** (self.rotary_dim / (self.rotary_dim - 2))
        inv_freq = self._compute_inv_freq(base)
        t = torch.arange(self.max_position_embeddings, dtype=torch.float)
        freqs = torch.einsum("i,j -> ij", t, inv_freq)
        return torch.cat((freqs.cos(), freqs.sin()), dim=-1)


# keys 0.13.0's get_rope hands its classes that upstream's never reads (a config carrying one moves the pinned
# numbers only): dropped before delegating, so the pinned class computes what upstream's does
_PINNED_ONLY_KEYS = {"deepseek_yarn": ("extrapolation_factor", "attn_factor"),
                     "deepseek_llama_scaling": ("extrapolation_factor", "attn_factor")}


def _cache_key(params: dict[str, Any]) -> tuple[Any, ...]:
    """Upstream's key of the rope parameters (lists as tuples)."""
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())


def _is_fope(params: dict[str, Any], dual_chunk_attention_config: dict[str, Any] | None) -> bool:
    """Where upstream's get_rope builds FourierRotaryEmbedding."""
    return (dual_chunk_attention_config is None and params.get("rope_type", "default") == "default"
            and "mrope_section" not in params and bool(params.get("use_fope")))


def _rotary_dim(head_size: int, params: dict[str, Any]) -> int:
    """Upstream's rotary_dim: ``rope_dim`` when set (0.13.0 ignores the key), else ``partial_rotary_factor``."""
    if rotary_dim := params.get("rope_dim"):
        return int(rotary_dim)
    factor = params.get("partial_rotary_factor", 1.0)
    if factor <= 0.0 or factor > 1.0:
        raise ValueError(f"partial_rotary_factor={factor} must be between 0.0 and 1.0")
    return int(head_size * factor)


def _pinned_params(head_size: int, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that make the pinned get_rope compute upstream's rope: upstream's rotary_dim as a
    ``partial_rotary_factor`` (exact, else refused) and no key only 0.13.0 reads."""
    out = {k: v for k, v in params.items() if k not in _PINNED_ONLY_KEYS.get(params.get("rope_type", "default"), ())}
    rope_dim = out.get("rope_dim")
    if rope_dim and rope_dim != _rotary_dim(head_size, {k: v for k, v in out.items() if k != "rope_dim"}):
        del out["rope_dim"]
        out["partial_rotary_factor"] = rope_dim / head_size
        if int(head_size * out["partial_rotary_factor"]) != rope_dim:
            raise ValueError(f"rope_dim={rope_dim} is not a partial_rotary_factor of head_size={head_size} "
                             "for vLLM 0.13.0's get_rope")
    return out


def get_rope(head_size: int, max_position: int, is_neox_style: bool = True,
             rope_parameters: dict[str, Any] | None = None, dtype: torch.dtype | None = None,
             dual_chunk_attention_config: dict[str, Any] | None = None) -> RotaryEmbedding:
    params = rope_parameters or {}
    rope_type = params.get("rope_type", "default")
    if rope_type in ("deepseek_yarn", "deepseek_llama_scaling") and params.get("is_deepseek_v4"):
        # upstream's DeepseekV4ScalingRotaryEmbedding (the last rotary_dim, an fp32 cache, inverse rotation):
        # 0.13.0's get_rope ignores the key and would build the V2/V3 class, so refuse rather than compute that
        raise NotImplementedError("rope is_deepseek_v4 (upstream's DeepseekV4ScalingRotaryEmbedding) has no "
                                  "counterpart in vLLM 0.13.0")
    yarn = rope_type == "yarn" and dual_chunk_attention_config is None
    if yarn and "mrope_section" in params:
        # upstream's M-RoPE + YaRN (mrope.py) spans its YaRN correction range over original_max_position *
        # mrope_positions_factor, a get_rope argument the migration drops (P6: 0.13.0's get_rope lacks it), so the
        # frequencies are not known here; 0.13.0's MRotaryEmbedding cannot build YaRN (it never sets the truncate
        # its YaRN frequencies read: AttributeError). Refused with the reason rather than computed otherwise.
        raise NotImplementedError("rope_type yarn with mrope_section: upstream's frequencies depend on "
                                  "get_rope(mrope_positions_factor=), which vLLM 0.13.0's get_rope lacks, and "
                                  "0.13.0's MRotaryEmbedding cannot build YaRN")
    dynamic = (rope_type == "dynamic" and "alpha" not in params and "factor" in params
               and dual_chunk_attention_config is None)
    fope = _is_fope(params, dual_chunk_attention_config)
    # upstream's dual-chunk branch comes first: a bailing_mrope config with one is the pinned get_rope's too
    bailing = rope_type == "bailing_mrope" and dual_chunk_attention_config is None
    if rope_type != "proportional" and not yarn and not fope and not dynamic and not bailing:
        return _pinned_get_rope(head_size, max_position, is_neox_style,
                                _pinned_params(head_size, params) if rope_parameters is not None else None,
                                dtype, dual_chunk_attention_config)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    rotary_dim = _rotary_dim(head_size, params)
    base = params.get("rope_theta", 10000)
    if yarn:
        # upstream's keys only (0.13.0's extrapolation_factor / attn_factor / apply_yarn_scaling are not read there)
        extra = {k: params[k] for k in ("beta_fast", "beta_slow", "truncate") if k in params}
        scale = _yarn_scale(params)
        orig = params["original_max_position_embeddings"]
        key = ("yarn", head_size, rotary_dim, orig, is_neox_style, base, params["factor"], scale,
               tuple(sorted(extra.items())), dtype)
        if key not in _ROPE_DICT:
            _ROPE_DICT[key] = YaRNScalingRotaryEmbedding(
                head_size, rotary_dim, orig, base, is_neox_style, params["factor"], dtype, attn_factor=scale,
                apply_yarn_scaling=False, **extra)
        return _ROPE_DICT[key]
    key = (head_size, rotary_dim, max_position, is_neox_style, _cache_key(params), dtype)
    if key not in _ROPE_DICT:
        if dynamic:
            _ROPE_DICT[key] = DynamicNTKScalingRotaryEmbedding(
                head_size, rotary_dim, max_position, params.get("max_trained_positions", max_position), base,
                is_neox_style, params["factor"], dtype)
        elif bailing:
            _ROPE_DICT[key] = BailingMRotaryEmbedding(head_size, rotary_dim, max_position, base, is_neox_style, dtype,
                                                      mrope_section=params["mrope_section"])
        elif fope:
            extra = {k: v for k, v in params.items() if k in _FOPE_KEYS}
            _ROPE_DICT[key] = FourierRotaryEmbedding(head_size, rotary_dim, max_position, base, is_neox_style, dtype,
                                                     init_cache=False, **extra)
        else:
            _ROPE_DICT[key] = Gemma4RotaryEmbedding(head_size, rotary_dim, max_position, base, is_neox_style, dtype)
    return _ROPE_DICT[key]
