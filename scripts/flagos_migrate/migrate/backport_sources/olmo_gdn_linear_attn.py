"""OLMo Hybrid's gated-delta-net linear attention for the pinned vLLM (back-port, rule P22).

Upstream's ``vllm.model_executor.layers.mamba.gdn.olmo_gdn_linear_attn.OlmoHybridGatedDeltaNetAttention``
is the gated delta rule of Qwen3-Next with OLMo's checkpoint layout and two changes to the math;
vLLM 0.13.0 has no such module. This is that layer over the pinned ``Qwen3NextGatedDeltaNet``
(its ``MambaBase`` state: ``"gdn_attention"``, the conv and recurrent state shapes, the GDN
attention backend and its metadata, and its ``gdn_attention_core`` custom op):

- projections as upstream's: ``in_proj_qkvg`` (q, k, v, g shards), separate ``b_proj``/``a_proj``,
  one fused ``conv1d`` loaded from ``q_conv1d``/``k_conv1d``/``v_conv1d`` (shard ids 0-2),
  ``o_norm`` (gated RMSNorm, eps 1e-5, norm before the SiLU gate) and ``o_proj``;
- the core: the pinned conv and delta-rule kernels, with q and k repeated per value-head group
  as upstream does (each key head serves ``num_v_heads // num_k_heads`` consecutive value heads),
  and upstream's gating: ``g = -exp(A_log) * softplus(a + dt_bias)``, ``beta = sigmoid(b)``,
  doubled with ``linear_allow_neg_eigval`` (both in fp32; the pinned Qwen3-Next gating has no
  doubling and rounds beta to the model dtype).

Upstream wraps the whole forward (projections too) in its own custom op so that inductor cannot
reorder the projections' float accumulation; here only the core is opaque, through the pinned
``gdn_attention_core`` op, which 0.13.0's compilation config already splits the graph at (a new op
would be captured inside the graph). Same math; compiled runs may round the projections
differently. State dtypes: the pinned ``mamba2_state_dtype`` (conv state in the cache dtype, the
recurrent state in ``mamba_ssm_cache_dtype``), as upstream's three-argument GDN calculator.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/olmo_gdn_linear_attn.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from vllm.config import VllmConfig
from vllm.forward_context import get_forward_context
from vllm.model_executor.layers.fla.ops import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule
from vllm.model_executor.layers.layernorm import RMSNormGated
from vllm.model_executor.layers.linear import (
    ColumnParallelLinear,
    MergedColumnParallelLinear,
    RowParallelLinear,
    UnquantizedLinearMethod,
)
from vllm.model_executor.layers.mamba.mamba_utils import MambaStateDtypeCalculator
from vllm.model_executor.layers.mamba.ops.causal_conv1d import causal_conv1d_fn, causal_conv1d_update
from vllm.model_executor.models.qwen3_next import Qwen3NextGatedDeltaNet
from vllm.model_executor.utils import set_weight_attrs
from vllm.platforms import current_platform
from vllm.v1.attention.backends.gdn_attn import GDNAttentionMetadata


class _KeepConvWeight(UnquantizedLinearMethod):
    """``conv1d`` only holds the conv weights the core reads; it never runs as a GEMM. 0.13.0's CPU
    linear method would repack it as a 2-D GEMM weight after loading (it fails on the 3-D weight)."""

    def process_weights_after_loading(self, layer) -> None:
        pass


def _make_fused_conv1d_weight_loader(dims, tp_size, tp_rank):
    """Upstream's loader: the separate q/k/v conv checkpoint tensors (shard ids 0, 1, 2) into the
    fused conv1d weight, each cut to this rank's slice."""
    sharded_dims = [d // tp_size for d in dims]

    def weight_loader(param, loaded_weight, loaded_shard_id=None):
        if loaded_shard_id is None:
            raise ValueError("the fused conv1d weight loads from q_conv1d/k_conv1d/v_conv1d (shard ids 0-2)")
        if loaded_weight.dim() == 2:
            loaded_weight = loaded_weight.unsqueeze(1)
        shard_size = sharded_dims[loaded_shard_id]
        tp_start = tp_rank * shard_size
        offset = sum(sharded_dims[:loaded_shard_id])
        param.data[offset:offset + shard_size].copy_(loaded_weight[tp_start:tp_start + shard_size])

    return weight_loader


def olmo_hybrid_gdn_gating(A_log, a, b, dt_bias, allow_neg_eigval: bool = False):
    """Upstream's ``fused_olmo_hybrid_gdn_gating`` in torch: ``g`` and ``beta`` of shape
    ``[1, tokens, heads]`` in fp32 (softplus with beta 1, threshold 20, as its kernel)."""
    g = -A_log.float().exp() * F.softplus(a.float() + dt_bias.float())
    beta = b.float().sigmoid()
    if allow_neg_eigval:
        beta = beta * 2.0
    return g.unsqueeze(0), beta.unsqueeze(0)


class OlmoHybridGatedDeltaNetAttention(Qwen3NextGatedDeltaNet):
    """Upstream's constructor ``(config, vllm_config, prefix)`` and ``forward(hidden_states, output)``."""

    def __init__(self, config, vllm_config: VllmConfig, prefix: str = "") -> None:
        assert getattr(config, "linear_use_gate", True), "OlmoHybridGatedDeltaNet requires linear_use_gate=True"
        super().__init__(
            config,
            model_config=vllm_config.model_config,
            cache_config=vllm_config.cache_config,
            quant_config=vllm_config.quant_config,
            speculative_config=vllm_config.speculative_config,
            prefix=prefix,
        )
        self.allow_neg_eigval = getattr(config, "linear_allow_neg_eigval", False)
        # the pinned layer's Qwen3-Next projections and norm give way to OLMo's
        del self.in_proj_qkvz, self.in_proj_ba, self.norm, self.out_proj
        quant_config = self.quant_config
        self.in_proj_qkvg = MergedColumnParallelLinear(
            input_size=self.hidden_size,
            output_sizes=[self.key_dim, self.key_dim, self.value_dim, self.value_dim],
            bias=False, quant_config=quant_config, prefix=f"{prefix}.in_proj_qkvg")
        # b and a stay separate matmuls upstream: fusing them changes the gating's accumulation order
        self.b_proj = ColumnParallelLinear(input_size=self.hidden_size, output_size=self.num_v_heads, bias=False,
                                           quant_config=quant_config, prefix=f"{prefix}.b_proj")
        self.a_proj = ColumnParallelLinear(input_size=self.hidden_size, output_size=self.num_v_heads, bias=False,
                                           quant_config=quant_config, prefix=f"{prefix}.a_proj")
        delattr(self.conv1d.weight, "weight_loader")  # the pinned one reads one fused tensor
        set_weight_attrs(self.conv1d.weight, {"weight_loader": _make_fused_conv1d_weight_loader(
            [self.key_dim, self.key_dim, self.value_dim], self.tp_size, self.tp_rank)})
        if type(self.conv1d.quant_method) is UnquantizedLinearMethod:
            self.conv1d.quant_method = _KeepConvWeight()
        # eps 1e-5 as FLA's FusedRMSNormGated, which OLMo was trained with
        self.o_norm = RMSNormGated(self.head_v_dim, eps=1e-5, group_size=None, norm_before_gate=True,
                                   device=current_platform.current_device(),
                                   dtype=config.torch_dtype if hasattr(config, "torch_dtype") else None)
        self.o_proj = RowParallelLinear(self.value_dim, self.hidden_size, bias=False, input_is_parallel=True,
                                        quant_config=quant_config, prefix=f"{prefix}.o_proj")

    def get_state_dtype(self) -> tuple[torch.dtype, torch.dtype]:
        return MambaStateDtypeCalculator.mamba2_state_dtype(
            self.model_config.dtype, self.cache_config.mamba_cache_dtype, self.cache_config.mamba_ssm_cache_dtype)

    def rearrange_mixed_qkv(self, mixed_qkv):
        if mixed_qkv is None:
            return None, None, None
        query, key, value = torch.split(
            mixed_qkv, [self.key_dim // self.tp_size, self.key_dim // self.tp_size, self.value_dim // self.tp_size],
            dim=-1)
        num_k_heads = self.num_k_heads // self.tp_size
        num_v_heads = self.num_v_heads // self.tp_size
        query = rearrange(query, "l (h d) -> 1 l h d", h=num_k_heads, d=self.head_k_dim)
        key = rearrange(key, "l (h d) -> 1 l h d", h=num_k_heads, d=self.head_k_dim)
        value = rearrange(value, "l (h d) -> 1 l h d", h=num_v_heads, d=self.head_v_dim)
        if num_v_heads > num_k_heads:
            ratio = num_v_heads // num_k_heads
            query = query.repeat_interleave(ratio, dim=2)
            key = key.repeat_interleave(ratio, dim=2)
        return query.contiguous(), key.contiguous(), value.contiguous()

    def forward(self, hidden_states: torch.Tensor, output: torch.Tensor):
        num_tokens = hidden_states.size(0)
        projected_qkvg, _ = self.in_proj_qkvg(hidden_states)
        conv_dim = (self.key_dim * 2 + self.value_dim) // self.tp_size
        mixed_qkv = projected_qkvg[..., :conv_dim]
        gate = projected_qkvg[..., conv_dim:]
        b, _ = self.b_proj(hidden_states)
        a, _ = self.a_proj(hidden_states)
        heads = self.num_v_heads // self.tp_size
        core_attn_out = torch.zeros((num_tokens, heads, self.head_v_dim), dtype=hidden_states.dtype,
                                    device=hidden_states.device)
        # the pinned op calls this layer's _forward_core through the forward context
        torch.ops.vllm.gdn_attention_core(mixed_qkv, b, a, core_attn_out, self.prefix)
        normed = self.o_norm(core_attn_out.reshape(-1, self.head_v_dim), gate.reshape(-1, self.head_v_dim))
        output[:num_tokens], _ = self.o_proj(normed.view(num_tokens, heads * self.head_v_dim))

    def _forward_core(self, mixed_qkv: torch.Tensor, b: torch.Tensor, a: torch.Tensor,
                      core_attn_out: torch.Tensor):
        """The pinned Qwen3-Next core (0.13.0's cache and metadata), with upstream OLMo's gating."""
        forward_context = get_forward_context()
        attn_metadata = forward_context.attn_metadata
        if attn_metadata is None:
            return  # profile run
        assert isinstance(attn_metadata, dict)
        attn_metadata = attn_metadata.get(self.prefix)
        if attn_metadata is None:
            return
        assert isinstance(attn_metadata, GDNAttentionMetadata)
        has_initial_state = attn_metadata.has_initial_state
        spec_query_start_loc = attn_metadata.spec_query_start_loc
        non_spec_query_start_loc = attn_metadata.non_spec_query_start_loc
        spec_sequence_masks = attn_metadata.spec_sequence_masks
        spec_token_indx = attn_metadata.spec_token_indx
        non_spec_token_indx = attn_metadata.non_spec_token_indx
        spec_state_indices_tensor = attn_metadata.spec_state_indices_tensor
        non_spec_state_indices_tensor = attn_metadata.non_spec_state_indices_tensor
        self_kv_cache = self.kv_cache[forward_context.virtual_engine]
        conv_state = self_kv_cache[0].transpose(-1, -2)
        ssm_state = self_kv_cache[1]
        num_actual_tokens = attn_metadata.num_actual_tokens
        num_accepted_tokens = attn_metadata.num_accepted_tokens

        mixed_qkv = mixed_qkv[:num_actual_tokens]
        b = b[:num_actual_tokens]
        a = a[:num_actual_tokens]
        conv_weights = self.conv1d.weight.view(self.conv1d.weight.size(0), self.conv1d.weight.size(2))

        if spec_sequence_masks is not None:
            if attn_metadata.num_prefills == 0 and attn_metadata.num_decodes == 0:
                mixed_qkv_spec, mixed_qkv_non_spec = mixed_qkv, None
            else:
                mixed_qkv_spec = mixed_qkv.index_select(0, spec_token_indx)
                mixed_qkv_non_spec = mixed_qkv.index_select(0, non_spec_token_indx)
        else:
            mixed_qkv_spec, mixed_qkv_non_spec = None, mixed_qkv

        if spec_sequence_masks is not None:
            mixed_qkv_spec = causal_conv1d_update(
                mixed_qkv_spec, conv_state, conv_weights, None, self.activation,
                conv_state_indices=spec_state_indices_tensor[:, 0][:attn_metadata.num_spec_decodes],
                num_accepted_tokens=num_accepted_tokens, query_start_loc=spec_query_start_loc,
                max_query_len=spec_state_indices_tensor.size(-1), validate_data=False)
        if attn_metadata.num_prefills > 0:
            mixed_qkv_non_spec = causal_conv1d_fn(
                mixed_qkv_non_spec.transpose(0, 1), conv_weights, None, activation=self.activation,
                conv_states=conv_state, has_initial_state=has_initial_state,
                cache_indices=non_spec_state_indices_tensor, query_start_loc=non_spec_query_start_loc,
                metadata=attn_metadata).transpose(0, 1)
        elif attn_metadata.num_decodes > 0:
            mixed_qkv_non_spec = causal_conv1d_update(
                mixed_qkv_non_spec, conv_state, conv_weights, None, self.activation,
                conv_state_indices=non_spec_state_indices_tensor[:attn_metadata.num_actual_tokens],
                validate_data=True)
        else:
            mixed_qkv_non_spec = None

        query_spec, key_spec, value_spec = self.rearrange_mixed_qkv(mixed_qkv_spec)
        query_non_spec, key_non_spec, value_non_spec = self.rearrange_mixed_qkv(mixed_qkv_non_spec)

        g, beta = olmo_hybrid_gdn_gating(self.A_log, a, b, self.dt_bias, self.allow_neg_eigval)

        if spec_sequence_masks is not None:
            if attn_metadata.num_prefills == 0 and attn_metadata.num_decodes == 0:
                g_spec, beta_spec, g_non_spec, beta_non_spec = g, beta, None, None
            else:
                g_spec = g.index_select(1, spec_token_indx)
                beta_spec = beta.index_select(1, spec_token_indx)
                g_non_spec = g.index_select(1, non_spec_token_indx)
                beta_non_spec = beta.index_select(1, non_spec_token_indx)
        else:
            g_spec, beta_spec, g_non_spec, beta_non_spec = None, None, g, beta

        if spec_sequence_masks is not None:
            core_attn_out_spec, _ = fused_recurrent_gated_delta_rule(
                q=query_spec, k=key_spec, v=value_spec, g=g_spec, beta=beta_spec, initial_state=ssm_state,
                inplace_final_state=True, cu_seqlens=spec_query_start_loc[:attn_metadata.num_spec_decodes + 1],
                ssm_state_indices=spec_state_indices_tensor, num_accepted_tokens=num_accepted_tokens,
                use_qk_l2norm_in_kernel=True)
        else:
            core_attn_out_spec = None

        if attn_metadata.num_prefills > 0:
            initial_state = ssm_state[non_spec_state_indices_tensor].contiguous()
            initial_state[~has_initial_state, ...] = 0
            core_attn_out_non_spec, last_recurrent_state = chunk_gated_delta_rule(
                q=query_non_spec, k=key_non_spec, v=value_non_spec, g=g_non_spec, beta=beta_non_spec,
                initial_state=initial_state, output_final_state=True, cu_seqlens=non_spec_query_start_loc,
                head_first=False, use_qk_l2norm_in_kernel=True)
            ssm_state[non_spec_state_indices_tensor] = last_recurrent_state.to(ssm_state.dtype)
        elif attn_metadata.num_decodes > 0:
            core_attn_out_non_spec, _ = fused_recurrent_gated_delta_rule(
                q=query_non_spec, k=key_non_spec, v=value_non_spec, g=g_non_spec, beta=beta_non_spec,
                initial_state=ssm_state, inplace_final_state=True,
                cu_seqlens=non_spec_query_start_loc[:attn_metadata.num_decodes + 1],
                ssm_state_indices=non_spec_state_indices_tensor, use_qk_l2norm_in_kernel=True)
        else:
            core_attn_out_non_spec = None

        if spec_sequence_masks is not None and core_attn_out_non_spec is not None:
            merged_out = torch.empty((1, num_actual_tokens, *core_attn_out_spec.shape[2:]),
                                     dtype=core_attn_out_non_spec.dtype, device=core_attn_out_non_spec.device)
            merged_out.index_copy_(1, spec_token_indx, core_attn_out_spec)
            merged_out.index_copy_(1, non_spec_token_indx, core_attn_out_non_spec)
            core_attn_out[:num_actual_tokens] = merged_out.squeeze(0)
        elif spec_sequence_masks is not None:
            core_attn_out[:num_actual_tokens] = core_attn_out_spec.squeeze(0)
        else:
            core_attn_out[:num_actual_tokens] = core_attn_out_non_spec.squeeze(0)


__all__ = ["OlmoHybridGatedDeltaNetAttention", "olmo_hybrid_gdn_gating"]
