"""Tencent HPC fused RoPE + QK-norm for the pinned vLLM: never enabled (back-port, rule P22).

Upstream's ``vllm.model_executor.layers.hpc.HpcRopeNorm`` is a fused kernel from the external
``hpc`` package that HunYuan V3 (``hy_v3``) uses instead of its own ``rotary_emb`` + ``q_norm`` /
``k_norm`` when ``HpcRopeNorm.support(...)`` says so. Upstream's ``support`` answers False unless the
attention backend is ``AttentionBackendEnum.HPC_ATTN``; vLLM 0.13.0 has no such backend, so on the
pinned version the answer is always False and the model takes its plain path (the same modules,
the same weights). That is what ``support`` returns here; building the layer anyway is refused.
``QkNormPolicy`` is upstream's enum, unchanged. Written by model-migrate-flagos;
``migrate_model.py apply`` installs it as ``vllm_fl/compat/hpc_rope_norm.py``.
"""

from __future__ import annotations

from enum import IntEnum

from torch import nn


class QkNormPolicy(IntEnum):
    """Order of QK-RMSNorm relative to RoPE in the fused HPC rope_norm kernel (upstream's values)."""

    NONE = 0
    ROPE_THEN_NORM = 1
    NORM_THEN_ROPE = 2


class HpcRopeNorm(nn.Module):
    """Upstream's switch, answered for vLLM 0.13.0 (no HPC attention backend)."""

    @classmethod
    def support(cls, num_heads: int, num_kv_heads: int, head_dim: int, kv_cache_dtype: str) -> bool:
        return False  # upstream: False unless the attention backend is HPC_ATTN, which 0.13.0 lacks

    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError("HpcRopeNorm: vLLM 0.13.0 has no HPC_ATTN attention backend, which the "
                                  "fused HPC RoPE + QK-norm kernel runs with; HpcRopeNorm.support() is False")


__all__ = ["HpcRopeNorm", "QkNormPolicy"]
