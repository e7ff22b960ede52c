"""Bailing MoE V2.5's linear attention for the pinned vLLM (back-port, rule P22).

Upstream's ``vllm.model_executor.layers.mamba.linear.bailing_linear_attn.BailingMoELinearAttention``
is MiniMax's lightning attention (per-head decay slopes by layer depth) with Bailing's projections;
vLLM 0.13.0 has no such module, but has the lightning attention layer itself
(``mamba.linear_attn.MiniMaxText01LinearAttention``). This is upstream's layer over that one:
its ``MambaBase`` state (``"linear_attention"``, one ``[heads, head_dim, head_dim]`` state per
sequence), its slope tensor, its prefill/decode kernels and its ``linear_attention`` custom op
(which 0.13.0's compilation config splits the graph at), with upstream's constructor
``(config, vllm_config, prefix)`` and ``_forward``:

- ``query_key_value`` (MHA ``QKVParallelLinear``, bias from ``use_bias``/``use_qkv_bias``), then in
  fp32: SiLU when ``use_linear_silu``/``linear_silu``, per-head RMS q/k norm when ``use_qk_norm``,
  neox RoPE when ``linear_rope`` (default on), ``q * head_dim**-0.5``;
- ``g_norm``: RMSNorm over ``hidden_inner_size // group_norm_size`` groups (weight sharded by TP
  rank), then ``sigmoid(g_proj(x))`` as the gate; ``dense`` as the output projection.

The two norms run in torch here: upstream's FLA ``layernorm_fn`` has a sigmoid gate 0.13.0's copy
lacks; the math is the kernel's (fp32 statistics, output in the input's dtype). Not back-ported:
upstream's speculative multi-token decode (0.13.0's linear-attention metadata has no draft
slots; decode is the pinned single-token path). Written by model-migrate-flagos;
``migrate_model.py apply`` installs it as ``vllm_fl/compat/bailing_linear_attn.py``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from vllm.config import VllmConfig
from vllm.distributed import get_tensor_model_parallel_rank, get_tensor_model_parallel_world_size
from vllm.forward_context import get_forward_context
from vllm.model_executor.layers.linear import ColumnParallelLinear, QKVParallelLinear, RowParallelLinear
from vllm.model_executor.layers.mamba.linear_attn import MiniMaxText01LinearAttention
from vllm.model_executor.models.utils import extract_layer_index
from vllm.v1.attention.backends.linear_attn import LinearAttentionMetadata
from vllm_fl.compat.rope import get_rope  # upstream's numbers where 0.13.0 computes others (P22)


def _build_rope_parameters(config) -> dict | None:
    """Upstream's: the config's rope parameters, with ``rope_theta``, ``partial_rotary_factor`` and a
    legacy ``rope_scaling`` dict folded in."""
    rope_parameters = copy.deepcopy(getattr(config, "rope_parameters", None)) or {}
    if "rope_theta" not in rope_parameters and hasattr(config, "rope_theta"):
        rope_parameters["rope_theta"] = config.rope_theta
    if "partial_rotary_factor" not in rope_parameters and hasattr(config, "partial_rotary_factor"):
        rope_parameters["partial_rotary_factor"] = config.partial_rotary_factor
    rope_scaling = getattr(config, "rope_scaling", None)
    if isinstance(rope_scaling, dict):
        rope_scaling = copy.deepcopy(rope_scaling)
        if "type" in rope_scaling and "rope_type" not in rope_scaling:
            rope_scaling["rope_type"] = rope_scaling.pop("type")
        rope_parameters.update(rope_scaling)
    return rope_parameters or None


def group_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, group_size: int,
                   gate: torch.Tensor | None = None) -> torch.Tensor:
    """FLA's ``layernorm_fn(..., is_rms_norm=True, norm_before_gate=True, activation="sigmoid")`` in
    torch: RMS statistics per ``group_size`` features in fp32, times the weight, times
    ``sigmoid(gate)`` when given; the result in ``x``'s dtype."""
    shape = x.shape
    xf = x.float().reshape(*shape[:-1], shape[-1] // group_size, group_size)
    y = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).reshape(shape) * weight.float()
    if gate is not None:
        y = y * torch.sigmoid(gate.float())
    return y.to(x.dtype)


class BailingGroupRMSNormGate(nn.Module):
    """Upstream's gated group RMSNorm (``RMSNormGated`` with a sigmoid gate), its weight sharded by TP
    rank unless ``tp_sharded=False`` (the q/k norms: one weight over the head dim, upstream's ``RMSNorm``)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, group_size: int | None = None,
                 norm_before_gate: bool = True, device=None, dtype=None, tp_sharded: bool = True):
        super().__init__()
        if not norm_before_gate:
            raise NotImplementedError("BailingGroupRMSNormGate: only norm_before_gate=True (upstream's use)")
        self.eps = eps
        self.group_size = group_size or hidden_size
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        if tp_sharded:
            self.weight.weight_loader = self._weight_loader

    @staticmethod
    def _weight_loader(param: torch.nn.Parameter, loaded_weight: torch.Tensor) -> None:
        tp_size = get_tensor_model_parallel_world_size()
        tp_rank = get_tensor_model_parallel_rank()
        shard_size = loaded_weight.shape[0] // tp_size
        param.data.copy_(loaded_weight[tp_rank * shard_size:(tp_rank + 1) * shard_size].contiguous())

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return group_rms_norm(x, self.weight, self.eps, self.group_size, z)


class BailingMoELinearAttention(MiniMaxText01LinearAttention):
    """Upstream's constructor ``(config, vllm_config, prefix)`` and ``forward(hidden_states, output, positions)``."""

    def __init__(self, config, vllm_config: VllmConfig, prefix: str = "linear_attn"):
        num_heads = config.num_attention_heads
        head_dim = config.head_dim if hasattr(config, "head_dim") else config.hidden_size // num_heads
        quant_config = vllm_config.quant_config
        super().__init__(
            hidden_size=config.hidden_size,
            hidden_inner_size=head_dim * num_heads,
            num_heads=num_heads,
            head_dim=head_dim,
            max_position=config.max_position_embeddings,
            block_size=getattr(config, "block", 256),
            num_hidden_layer=config.num_hidden_layers,
            model_config=vllm_config.model_config,
            cache_config=vllm_config.cache_config,
            quant_config=quant_config,
            layer_idx=extract_layer_index(prefix),
            prefix=prefix,
        )
        # MiniMax's projections and norm give way to Bailing's; the state, slopes and kernels stay
        del self.qkv_proj, self.output_gate, self.out_proj, self.norm
        self.quant_config = quant_config
        self.num_hidden_layers = config.num_hidden_layers
        self.scaling = head_dim ** -0.5
        self.tp_kv_heads = self.tp_heads
        self.q_size_per_rank = self.kv_size_per_rank = head_dim * self.tp_heads
        self.max_position_embeddings = config.max_position_embeddings
        self.use_qk_norm = getattr(config, "use_qk_norm", False)
        self.linear_scale = True  # upstream's "minimax" linear backend
        self.linear_rope = getattr(config, "linear_rope", True)
        if hasattr(config, "use_linear_silu"):
            self.linear_silu = config.use_linear_silu
        else:
            self.linear_silu = getattr(config, "linear_silu", False)
        self.query_key_value = QKVParallelLinear(
            self.hidden_size, head_dim, num_heads, num_heads, bias=(config.use_bias or config.use_qkv_bias),
            quant_config=quant_config, prefix=f"{prefix}.query_key_value")
        self.rms_norm_eps = float(getattr(config, "rms_norm_eps", 1e-5))
        if self.use_qk_norm:
            self.query_layernorm = BailingGroupRMSNormGate(head_dim, eps=self.rms_norm_eps, tp_sharded=False)
            self.key_layernorm = BailingGroupRMSNormGate(head_dim, eps=self.rms_norm_eps, tp_sharded=False)
        self.g_proj = ColumnParallelLinear(self.hidden_size, self.hidden_inner_size, bias=False,
                                           quant_config=quant_config, prefix=f"{prefix}.g_proj")
        self.dense = RowParallelLinear(self.hidden_inner_size, self.hidden_size, bias=config.use_bias,
                                       quant_config=quant_config, prefix=f"{prefix}.dense", reduce_results=True)
        self.group_norm_size = getattr(config, "group_norm_size", 1)
        assert self.tp_size <= self.group_norm_size, "tp_size must be <= group_norm_size for local rms norm"
        assert self.group_norm_size % self.tp_size == 0, "group_norm_size must be divisible by tp_size"
        self.g_norm = BailingGroupRMSNormGate(
            self.hidden_inner_size // self.tp_size, eps=self.rms_norm_eps,
            group_size=(self.hidden_inner_size // self.group_norm_size if self.group_norm_size > 1
                        else self.hidden_inner_size // self.tp_size))
        self.rotary_emb = get_rope(head_dim, max_position=self.max_position_embeddings, is_neox_style=True,
                                   rope_parameters=_build_rope_parameters(config) or None)

    def _forward(self, hidden_states: torch.Tensor, output: torch.Tensor, positions: torch.Tensor) -> None:
        forward_context = get_forward_context()
        attn_metadata = forward_context.attn_metadata
        if attn_metadata is not None:
            assert isinstance(attn_metadata, dict)
            attn_metadata = attn_metadata.get(self.prefix)
        if attn_metadata is not None:
            assert isinstance(attn_metadata, LinearAttentionMetadata)
            num_actual_tokens = attn_metadata.num_prefill_tokens + attn_metadata.num_decode_tokens
        else:
            num_actual_tokens = hidden_states.shape[0]

        qkv, _ = self.query_key_value(hidden_states[:num_actual_tokens])
        qkv = qkv.to(torch.float32)  # the rotary embedding runs in fp32
        if self.linear_silu:
            qkv = F.silu(qkv)
        q, k, v = torch.split(qkv, [self.q_size_per_rank, self.kv_size_per_rank, self.kv_size_per_rank], dim=-1)
        if self.use_qk_norm:
            q = self.query_layernorm(q.reshape(-1, self.tp_heads, self.head_dim)).reshape(-1, self.q_size_per_rank)
            k = self.key_layernorm(k.reshape(-1, self.tp_kv_heads, self.head_dim)).reshape(-1, self.kv_size_per_rank)
        if self.linear_rope:
            q, k = self.rotary_emb(positions[:num_actual_tokens], q, k)
        q = q.view((qkv.shape[0], self.tp_heads, self.head_dim))
        k = k.view((qkv.shape[0], self.tp_kv_heads, self.head_dim))
        v = v.view((qkv.shape[0], self.tp_kv_heads, self.head_dim))
        if self.linear_scale:
            q = q * self.scaling

        if attn_metadata is None:
            hidden = torch.empty((q.shape[0], q.shape[1] * q.shape[2]), device=q.device, dtype=q.dtype)
        else:
            kv_cache = self.kv_cache[forward_context.virtual_engine][0]
            state_indices_tensor = attn_metadata.state_indices_tensor
            # a new sequence starts from a zero state (as the pinned MiniMax layer does)
            for i in range(attn_metadata.num_prefills):
                j = attn_metadata.num_decode_tokens + i
                query_len = attn_metadata.query_start_loc[j + 1] - attn_metadata.query_start_loc[j]
                if attn_metadata.seq_lens[j] - query_len == 0:
                    kv_cache[state_indices_tensor[j], ...] = 0
            if attn_metadata.num_prefills > 0:
                hidden = self._prefill_and_mix_infer(q, k, v, kv_cache, state_indices_tensor, attn_metadata)
            else:
                hidden = self._decode_infer(q, k, v, kv_cache, state_indices_tensor, attn_metadata)

        gate, _ = self.g_proj(hidden_states[:num_actual_tokens])
        if self.group_norm_size > 1:
            hidden = self.g_norm(hidden, gate)
        else:
            hidden = torch.sigmoid(gate) * self.g_norm(hidden)
        hidden = hidden.to(hidden_states.dtype)
        output[:num_actual_tokens], _ = self.dense(hidden)


__all__ = ["BailingGroupRMSNormGate", "BailingMoELinearAttention", "group_rms_norm"]
