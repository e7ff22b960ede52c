"""Kimi delta attention (KDA) with upstream's shared-layer API for the pinned vLLM (back-port, rule P22).

Upstream's ``vllm.model_executor.layers.mamba.gdn.kimi_gdn_linear_attn.KimiGatedDeltaNetAttention``
(AliceAI, Kimi-K3) is the KDA layer vLLM 0.13.0 has as ``layers.kda.KimiDeltaAttention``, with
upstream's constructor ``(config, vllm_config, prefix)``, ``forward(hidden_states, positions)``
returning the output, and other parameters: one merged projection ``in_proj_qkvgfab`` (q, k, v,
beta, and the gate's low-rank ``f_a`` replicated on every TP rank), one fused ``conv1d`` loaded
from ``q_conv1d``/``k_conv1d``/``v_conv1d`` by shard id, and a 1-D fp32 ``A_log`` (old 4-D
checkpoints load too). This is that layer over the pinned one: its ``MambaBase`` state (the
pinned ``kda_state_shape``: q, k and v conv states and the recurrent state; the migrated
model's ``get_mamba_state_shape_from_config`` calls the same calculator), its ``kda_attention``
custom op and core (conv, chunked/recurrent KDA kernels), and the pinned ``FusedRMSNormGated``
output norm with the sigmoid gate. The per-channel decay gate ``-exp(A_log) * softplus(f + dt_bias)``
and ``beta = sigmoid(b)`` run in torch (fp32) before the core, as the pinned layer's
``fused_kda_gate`` computes them.

Refused at construction, as 0.13.0's kernels cannot do them: Kimi-K3's full-rank gate
(``use_full_rank_gate``), the bounded "safe" gate (``gate_lower_bound``) and a KDA prefill
backend other than Triton. Upstream's speculative multi-token decode is not there (0.13.0's KDA
core has none). Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/kimi_gdn_linear_attn.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from vllm.config import VllmConfig
from vllm.distributed import (
    divide,
    get_tensor_model_parallel_rank,
    get_tensor_model_parallel_world_size,
)
from vllm.model_executor.layers.fla.ops.kda import FusedRMSNormGated
from vllm.model_executor.layers.kda import KimiDeltaAttention
from vllm.model_executor.layers.linear import (
    ColumnParallelLinear,
    MergedColumnParallelLinear,
    ReplicatedLinear,
    RowParallelLinear,
    UnquantizedLinearMethod,
)
from vllm.model_executor.model_loader.weight_utils import default_weight_loader, sharded_weight_loader
from vllm.model_executor.models.utils import extract_layer_index
from vllm.model_executor.utils import set_weight_attrs


def a_log_weight_loader(shard_axis: int):
    """Upstream's: KDA ``A_log`` stored 1-D or in the old ``(1, 1, H, 1)`` shape, cut to this rank's heads."""

    def loader(param: torch.Tensor, loaded_weight: torch.Tensor) -> None:
        shard_size = param.data.shape[shard_axis]
        if loaded_weight.dim() == 4:
            assert loaded_weight.shape[:2] == (1, 1) and loaded_weight.shape[-1] == 1, (
                f"Expected old A_log shape (1, 1, H, 1), got {loaded_weight.shape}")
            loaded_weight = loaded_weight.view(loaded_weight.shape[2])
        loaded_weight = loaded_weight.narrow(shard_axis, get_tensor_model_parallel_rank() * shard_size, shard_size)
        return default_weight_loader(param, loaded_weight)

    return loader


def _make_fused_conv1d_weight_loader(dims, tp_size, tp_rank):
    sharded_dims = [dim // tp_size for dim in dims]

    def weight_loader(param, loaded_weight, loaded_shard_id=None):
        if loaded_shard_id is None:
            raise ValueError("the fused conv1d weight loads from q_conv1d/k_conv1d/v_conv1d (shard ids 0-2)")
        if loaded_weight.dim() == 2:
            loaded_weight = loaded_weight.unsqueeze(1)
        shard_size = sharded_dims[loaded_shard_id]
        start = sum(sharded_dims[:loaded_shard_id])
        param.data[start:start + shard_size].copy_(loaded_weight[tp_rank * shard_size:(tp_rank + 1) * shard_size])

    return weight_loader


class _KimiGDNMergedColumnParallelLinear(MergedColumnParallelLinear):
    """Upstream's merged projection with one output replicated across TP ranks: that shard is sized
    ``size * tp_size`` so every rank keeps ``size`` rows, and loads from rank zero's slice."""

    def __init__(self, input_size, output_sizes, replicated_shard_id, tp_size, **kwargs):
        self.replicated_shard_id = replicated_shard_id
        output_sizes = list(output_sizes)
        output_sizes[replicated_shard_id] *= tp_size
        super().__init__(input_size, output_sizes, **kwargs)

    def _as_rank_zero(self, load, param, loaded_weight, loaded_shard_id):
        tp_rank, param_tp_rank = self.tp_rank, getattr(param, "tp_rank", None)
        if loaded_shard_id == self.replicated_shard_id:
            self.tp_rank = 0
            if param_tp_rank is not None:
                param.tp_rank = 0
        try:
            load(param, loaded_weight, loaded_shard_id)
        finally:
            self.tp_rank = tp_rank
            if param_tp_rank is not None:
                param.tp_rank = param_tp_rank

    def weight_loader(self, param, loaded_weight, loaded_shard_id=None):
        self._as_rank_zero(super().weight_loader, param, loaded_weight, loaded_shard_id)

    def weight_loader_v2(self, param, loaded_weight, loaded_shard_id=None):
        self._as_rank_zero(super().weight_loader_v2, param, loaded_weight, loaded_shard_id)


class _KeepConvWeight(UnquantizedLinearMethod):
    """``conv1d`` only holds the conv weights the core reads; 0.13.0's CPU linear method would repack
    it as a 2-D GEMM weight after loading (it fails on the 3-D weight)."""

    def process_weights_after_loading(self, layer) -> None:
        pass


class _ConvSlice:
    """The pinned core reads ``q_conv1d``/``k_conv1d``/``v_conv1d`` (``.weight``, ``.bias``); here they are
    row slices of the one fused conv1d weight, so the loaded values are the ones it convolves with."""

    bias = None

    def __init__(self, conv1d: nn.Module, index: int, size: int) -> None:
        self._conv1d, self._index, self._size = conv1d, index, size

    @property
    def weight(self) -> torch.Tensor:
        return self._conv1d.weight[self._index * self._size:(self._index + 1) * self._size]


def kda_gate(raw_g: torch.Tensor, A_log: torch.Tensor, dt_bias: torch.Tensor, head_dim: int) -> torch.Tensor:
    """``-exp(A_log[h]) * softplus(raw_g + dt_bias)`` per channel, fp32, ``[..., heads, head_dim]``
    (the pinned ``fused_kda_gate``'s formula: softplus with beta 1, threshold 20)."""
    g = (raw_g.float() + dt_bias.float()).unflatten(-1, (-1, head_dim))
    return -A_log.float().exp()[:, None] * F.softplus(g)


class KimiGatedDeltaNetAttention(KimiDeltaAttention):
    """Upstream's constructor and forward contract over the pinned KDA layer's state and core."""

    def __init__(self, config, vllm_config: VllmConfig, prefix: str = "") -> None:
        # the pinned __init__ builds 0.13.0's separate projections (and reads the KDA geometry from the
        # model config, not from ``config``): this builds upstream's parameters on the pinned class instead
        nn.Module.__init__(self)
        kda_config = config.linear_attn_config
        assert kda_config is not None, "linear_attn_config must be set"
        if kda_config.get("use_full_rank_gate", False):
            raise NotImplementedError("KDA use_full_rank_gate: the pinned vLLM's KDA layer has the low-rank gate only")
        if kda_config.get("gate_lower_bound", None) is not None:
            raise NotImplementedError("KDA gate_lower_bound (safe gate): the pinned vLLM's KDA kernels lack it")
        additional_config = vllm_config.additional_config
        backend = (additional_config.get("kda_prefill_backend", "auto")
                   if isinstance(additional_config, dict) else "auto")
        if backend not in ("auto", "triton"):
            raise NotImplementedError(f"KDA prefill backend {backend!r}: the pinned vLLM has the Triton one only")
        self.tp_size = get_tensor_model_parallel_world_size()
        self.tp_rank = get_tensor_model_parallel_rank()
        self.prefix = prefix
        self.layer_idx = extract_layer_index(prefix)
        self.hidden_size = config.hidden_size
        self.model_config = vllm_config.model_config
        self.cache_config = vllm_config.cache_config
        self.quant_config = quant_config = vllm_config.quant_config
        speculative_config = vllm_config.speculative_config
        self.num_spec = speculative_config.num_speculative_tokens if speculative_config else 0
        if self.num_spec:
            raise NotImplementedError("KDA with speculative decoding: the pinned vLLM's KDA core has no draft path")
        self.head_dim = kda_config["head_dim"]
        self.num_heads = kda_config["num_heads"]
        assert self.num_heads % self.tp_size == 0
        self.local_num_heads = divide(self.num_heads, self.tp_size)
        self.projection_size = self.head_dim * self.num_heads
        self.local_projection_size = divide(self.projection_size, self.tp_size)
        self.conv_size = kda_config["short_conv_kernel_size"]
        self.use_full_rank_gate = False
        self.gate_lower_bound = None

        self.in_proj_qkvgfab = _KimiGDNMergedColumnParallelLinear(
            self.hidden_size, [self.projection_size] * 3 + [self.num_heads, self.head_dim], replicated_shard_id=4,
            tp_size=self.tp_size, bias=False, quant_config=quant_config, prefix=f"{prefix}.in_proj_qkvgfab")
        self.f_b_proj = ColumnParallelLinear(self.head_dim, self.projection_size, bias=False,
                                             quant_config=quant_config, prefix=f"{prefix}.f_b_proj")
        self.dt_bias = nn.Parameter(torch.empty(self.local_projection_size, dtype=torch.float32))
        set_weight_attrs(self.dt_bias, {"weight_loader": sharded_weight_loader(0)})
        self.conv1d = ColumnParallelLinear(input_size=self.conv_size, output_size=3 * self.projection_size,
                                           bias=False, params_dtype=torch.float32, prefix=f"{prefix}.conv1d")
        self.conv1d.weight.data = self.conv1d.weight.data.unsqueeze(1)
        delattr(self.conv1d.weight, "weight_loader")
        set_weight_attrs(self.conv1d.weight, {"weight_loader": _make_fused_conv1d_weight_loader(
            [self.projection_size] * 3, self.tp_size, self.tp_rank)})
        if type(self.conv1d.quant_method) is UnquantizedLinearMethod:
            self.conv1d.quant_method = _KeepConvWeight()
        self.q_conv1d, self.k_conv1d, self.v_conv1d = (
            _ConvSlice(self.conv1d, i, self.local_projection_size) for i in range(3))
        self.A_log = nn.Parameter(torch.empty(self.local_num_heads, dtype=torch.float32))
        set_weight_attrs(self.A_log, {"weight_loader": a_log_weight_loader(0)})
        self.g_a_proj = ReplicatedLinear(self.hidden_size, self.head_dim, bias=False, quant_config=quant_config,
                                         prefix=f"{prefix}.g_a_proj")
        self.g_b_proj = ColumnParallelLinear(self.head_dim, self.projection_size, bias=False,
                                             quant_config=quant_config, prefix=f"{prefix}.g_b_proj")
        self.o_norm = FusedRMSNormGated(self.head_dim, activation="sigmoid")
        self.o_proj = RowParallelLinear(self.projection_size, self.hidden_size, bias=False,
                                        quant_config=quant_config, prefix=f"{prefix}.o_proj")

        compilation_config = vllm_config.compilation_config
        if prefix in compilation_config.static_forward_context:
            raise ValueError(f"Duplicate layer name: {prefix}")
        compilation_config.static_forward_context[prefix] = self

    def forward(self, hidden_states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        num_tokens = hidden_states.size(0)
        local = self.local_projection_size
        mixed_qkv, raw_beta, f_a = self.in_proj_qkvgfab(hidden_states)[0].split(
            [3 * local, self.local_num_heads, self.head_dim], dim=-1)
        q, k, v = (t.contiguous() for t in mixed_qkv.split(local, dim=-1))
        g1 = kda_gate(self.f_b_proj(f_a)[0], self.A_log, self.dt_bias, self.head_dim).unsqueeze(0)
        beta = raw_beta.float().sigmoid().unsqueeze(0)
        g2 = rearrange(self.g_b_proj(self.g_a_proj(hidden_states)[0])[0], "... (h d) -> ... h d", d=self.head_dim)
        core_attn_out = torch.zeros((1, num_tokens, self.local_num_heads, self.head_dim),
                                    dtype=hidden_states.dtype, device=hidden_states.device)
        # the pinned op runs the pinned core (_forward) on this layer's conv slices and state
        torch.ops.vllm.kda_attention(q, k, v, g1, beta, core_attn_out, self.prefix)
        core_attn_out = self.o_norm(core_attn_out, g2)
        return self.o_proj(rearrange(core_attn_out, "1 n h d -> n (h d)"))[0]


__all__ = ["KimiGatedDeltaNetAttention", "kda_gate"]
