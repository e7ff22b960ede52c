"""Qwen gated-delta-net linear attention for the pinned vLLM (back-port, rule P22).

Upstream moved Qwen3-Next's ``Qwen3NextGatedDeltaNet`` into
``vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn.QwenGatedDeltaNetAttention`` and gave it
a second checkpoint layout. Its constructor takes ``(config, vllm_config, prefix,
gqa_interleaved_layout, reduce_results)`` and ``forward(hidden_states)`` returns the output;
vLLM 0.13.0's class takes the configs one by one and writes into an ``output`` argument.

- ``gqa_interleaved_layout=True`` (Qwen3-Next): the pinned layer as it is, q/k/v/z and b/a fused
  and interleaved per key-head group in one checkpoint tensor each.
- ``gqa_interleaved_layout=False`` (Qwen3.5, InternS2): separate ``in_proj_qkv``/``in_proj_z`` and
  ``in_proj_b``/``in_proj_a`` tensors, loaded as shards of merged projections (``in_proj_qkv`` as one
  tuple shard ``(0, 1, 2)``, which the pinned ``MergedColumnParallelLinear`` does not take, so the
  projections here split it), and split flat ``[q, k, v, z]`` / ``[b, a]`` in the forward.

The recurrent core (``torch.ops.vllm.gdn_attention_core``, the conv and chunked delta-rule kernels,
the state shapes and the attention backend) is the pinned one, unchanged. What 0.13.0 cannot do is
refused at construction: an output gate other than SiLU. Written by model-migrate-flagos;
``migrate_model.py apply`` installs it as ``vllm_fl/compat/gdn_linear_attn.py``.
"""

from __future__ import annotations

import torch
from torch import nn
from vllm.config import VllmConfig
from vllm.model_executor.layers.linear import (
    MergedColumnParallelLinear,
    RowParallelLinear,
    UnquantizedLinearMethod,
)
from vllm.model_executor.model_loader.weight_utils import sharded_weight_loader
from vllm.model_executor.models.qwen3_next import Qwen3NextGatedDeltaNet
from vllm.model_executor.utils import set_weight_attrs


class _MergedProjection(MergedColumnParallelLinear):
    """``MergedColumnParallelLinear`` that also takes a tuple shard id: consecutive shards stored
    as one checkpoint tensor (upstream's loader does this; the pinned one asserts an int)."""

    def _split(self, load, param, loaded_weight, loaded_shard_id):
        if not isinstance(loaded_shard_id, tuple):
            return load(param, loaded_weight, loaded_shard_id)
        output_dim = getattr(param, "output_dim", 0)
        sizes = [self.output_sizes[i] for i in loaded_shard_id]
        if loaded_weight.shape[output_dim] != sum(sizes):
            raise ValueError(f"checkpoint tensor of {loaded_weight.shape[output_dim]} rows for shards "
                             f"{loaded_shard_id} of sizes {sizes}")
        for shard_id, part in zip(loaded_shard_id, loaded_weight.split(sizes, dim=output_dim)):
            load(param, part, shard_id)

    # the pinned class binds one of the two to its parameters, depending on the linear method
    def weight_loader(self, param, loaded_weight, loaded_shard_id=None):
        self._split(super().weight_loader, param, loaded_weight, loaded_shard_id)

    def weight_loader_v2(self, param, loaded_weight, loaded_shard_id=None):
        self._split(super().weight_loader_v2, param, loaded_weight, loaded_shard_id)


class _KeepConvWeight(UnquantizedLinearMethod):
    """``conv1d`` only holds the conv weights the core reads; it never runs as a GEMM. 0.13.0's CPU
    linear method would repack it as a 2-D GEMM weight after loading (it fails on the 3-D weight)."""

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        pass


class QwenGatedDeltaNetAttention(Qwen3NextGatedDeltaNet):
    """Upstream's constructor and forward contract over the pinned gated-delta-net layer."""

    def __init__(
        self,
        config,
        vllm_config: VllmConfig,
        prefix: str = "",
        gqa_interleaved_layout: bool = False,
        reduce_results: bool = True,
    ) -> None:
        gate = getattr(config, "output_gate_type", "silu")
        if gate not in ("silu", "swish"):
            raise NotImplementedError(
                f"output_gate_type={gate!r}: the pinned vLLM's RMSNormGated gates with SiLU only")
        super().__init__(
            config,
            model_config=vllm_config.model_config,
            cache_config=vllm_config.cache_config,
            quant_config=vllm_config.quant_config,
            speculative_config=vllm_config.speculative_config,
            prefix=prefix,
        )
        if type(self.conv1d.quant_method) is UnquantizedLinearMethod:
            self.conv1d.quant_method = _KeepConvWeight()
        self.gqa_interleaved_layout = gqa_interleaved_layout
        self.qkvz_layout = "interleaved" if gqa_interleaved_layout else "flat"
        if not gqa_interleaved_layout:
            # Qwen3.5: q, k, v, z and b, a are separate checkpoint tensors, one shard each
            self.in_proj_qkvz = _MergedProjection(
                input_size=self.hidden_size,
                output_sizes=[self.key_dim, self.key_dim, self.value_dim, self.value_dim],
                bias=False, quant_config=self.quant_config, prefix=f"{prefix}.in_proj_qkvz")
            self.in_proj_ba = _MergedProjection(
                input_size=self.hidden_size, output_sizes=[self.num_v_heads] * 2,
                bias=False, quant_config=self.quant_config, prefix=f"{prefix}.in_proj_ba")
        if not reduce_results:
            self.out_proj = RowParallelLinear(
                self.value_dim, self.hidden_size, bias=False, input_is_parallel=True,
                reduce_results=False, quant_config=self.quant_config, prefix=f"{prefix}.out_proj")
        # upstream keeps A_log in fp32 whatever the model dtype (the gating exponentiates it)
        self.A_log = nn.Parameter(torch.empty(self.num_v_heads // self.tp_size, dtype=torch.float32))
        set_weight_attrs(self.A_log, {"weight_loader": sharded_weight_loader(0)})

    def fix_query_key_value_ordering(self, mixed_qkvz: torch.Tensor, mixed_ba: torch.Tensor):
        if self.gqa_interleaved_layout:
            return super().fix_query_key_value_ordering(mixed_qkvz, mixed_ba)
        n = mixed_qkvz.shape[0]
        k, v = self.key_dim // self.tp_size, self.value_dim // self.tp_size
        query, key, value, z = mixed_qkvz.split([k, k, v, v], dim=-1)
        b, a = mixed_ba.chunk(2, dim=-1)
        return (query.reshape(n, -1, self.head_k_dim), key.reshape(n, -1, self.head_k_dim),
                value.reshape(n, -1, self.head_v_dim), z.reshape(n, -1, self.head_v_dim),
                b.contiguous(), a.contiguous())

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        output = torch.empty_like(hidden_states)
        super().forward(hidden_states, output)
        return output


__all__ = ["QwenGatedDeltaNetAttention"]
