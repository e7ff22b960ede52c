"""Upstream's MiniMax tensor-parallel RMSNorm for the pinned vLLM (back-port, rule P22).

Upstream moved ``MiniMaxText01RMSNormTP`` to ``vllm.model_executor.layers.minimax_rms_norm`` and gave it two
things MiniMax-M2 uses: keyword-only ``weight_shard_world_size`` / ``weight_shard_rank`` (K-norm weights
sharded by KV head when KV heads are replicated across TP ranks) and the static ``forward_qkv(q_norm,
k_norm, qkv, q_size, kv_size)``, which splits the fused QKV output and RMS-normalises q and k over the whole
(all-reduced) head dimension. vLLM 0.13.0 has the same layer in ``vllm.model_executor.layers.mamba.linear_attn``
(weight sharded by TP rank, the same ``_forward``) without either. This subclass adds both: the weight is
re-made at the shard size with upstream's loader, and ``forward_qkv`` is upstream's torch path (with TP, the
per-token variances are all-reduced and averaged as upstream's eager fallback does; upstream's fused
Lamport/Triton kernels compute the same values on GPU).
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/minimax_rms_norm.py``.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from vllm.distributed import get_tensor_model_parallel_world_size, tensor_model_parallel_all_reduce
from vllm.model_executor.layers.mamba.linear_attn import (
    MiniMaxText01RMSNormTP as _PinnedMiniMaxText01RMSNormTP,
)

__all__ = ["MiniMaxText01RMSNormTP"]


class MiniMaxText01RMSNormTP(_PinnedMiniMaxText01RMSNormTP):
    """The pinned layer with upstream's weight sharding keywords and ``forward_qk`` / ``forward_qkv``."""

    def __init__(self, hidden_size: int, eps: float = 1e-6, *, weight_shard_world_size: int | None = None,
                 weight_shard_rank: int | None = None) -> None:
        super().__init__(hidden_size, eps)
        self.weight_shard_world = weight_shard_world_size or self.tp_world
        self.weight_shard_rank = self.tp_rank if weight_shard_rank is None else weight_shard_rank
        if (self.weight_shard_world, self.weight_shard_rank) != (self.tp_world, self.tp_rank):
            self.weight = nn.Parameter(torch.ones(hidden_size // self.weight_shard_world))
        self.weight.weight_loader = partial(self.shard_weight_loader, shard_world_size=self.weight_shard_world,
                                            shard_rank=self.weight_shard_rank)

    @staticmethod
    def shard_weight_loader(param: nn.Parameter, loaded_weight: torch.Tensor, shard_world_size: int,
                            shard_rank: int) -> None:
        shard_size = loaded_weight.shape[0] // shard_world_size
        param.data.copy_(loaded_weight[shard_rank * shard_size:(shard_rank + 1) * shard_size])

    @staticmethod
    def forward_qk(q_norm: MiniMaxText01RMSNormTP, k_norm: MiniMaxText01RMSNormTP, q: torch.Tensor,
                   k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        orig_dtype = q.dtype
        q, k = q.to(torch.float32), k.to(torch.float32)
        qk_var = torch.cat([q.pow(2).mean(dim=-1, keepdim=True), k.pow(2).mean(dim=-1, keepdim=True)], dim=-1)
        tp_world = get_tensor_model_parallel_world_size()
        if tp_world > 1:
            qk_var = tensor_model_parallel_all_reduce(qk_var.flatten()).view_as(qk_var) / tp_world
        q_var, k_var = qk_var.chunk(2, dim=-1)
        q = q * torch.rsqrt(q_var + q_norm.variance_epsilon) * q_norm.weight
        k = k * torch.rsqrt(k_var + k_norm.variance_epsilon) * k_norm.weight
        return q.to(orig_dtype), k.to(orig_dtype)

    @staticmethod
    def forward_qkv(q_norm: MiniMaxText01RMSNormTP, k_norm: MiniMaxText01RMSNormTP, qkv: torch.Tensor,
                    q_size: int, kv_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        assert qkv.ndim == 2
        assert q_norm.variance_epsilon == k_norm.variance_epsilon
        q, k, v = qkv.split([q_size, kv_size, kv_size], dim=-1)
        q, k = MiniMaxText01RMSNormTP.forward_qk(q_norm, k_norm, q, k)
        return q, k, v
