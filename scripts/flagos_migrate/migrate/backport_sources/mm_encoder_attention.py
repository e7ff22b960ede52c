"""Upstream's ``MMEncoderAttention`` helpers for the pinned vLLM (back-port, rule P22).

Upstream's ViT attention (``vllm.model_executor.layers.attention.mm_encoder_attention``) gained three class
methods its vision encoders call to prepare the attention metadata once per image batch:
``compute_max_seqlen(backend, cu_seqlens)`` (the longest sequence, for the flash-attention backends),
``maybe_compute_seq_lens(backend, cu_seqlens, device)`` (per-sequence lengths, FlashInfer's cuDNN path only;
None otherwise) and ``maybe_recompute_cu_seqlens(backend, cu_seqlens, hidden_size, tp_size, device)``
(FlashInfer's own offsets; the cumulative lengths unchanged, as a device tensor, otherwise), and its forward
takes the ``sequence_lengths`` they produce (read by FlashInfer only). vLLM 0.13.0's ``MMEncoderAttention``
(``vllm.attention.layers.mm_encoder_attention``) has none of them and its forward rejects the keyword; its
platforms pick only TORCH_SDPA, FLASH_ATTN or ROCM_AITER_FA for a ViT (``get_supported_vit_attn_backends``),
never FlashInfer. This subclass adds upstream's bodies for those backends (FlashInfer, which the pinned layer
cannot run, raises) and drops ``sequence_lengths`` before the pinned forward; as upstream's forward, it takes
no ``cu_seqlens`` (each batch row one sequence) and returns a 3-D query's layout. The pinned wrappers use
``head_size ** -0.5``: another ``scale`` is refused at construction. Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/mm_encoder_attention.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from vllm.attention.backends.registry import AttentionBackendEnum
from vllm.attention.layers.mm_encoder_attention import MMEncoderAttention as _PinnedMMEncoderAttention
from vllm.config import MultiModalConfig

__all__ = ["MMEncoderAttention"]

# upstream computes the longest sequence for these backends (0.13.0 can pick the first two for a ViT)
_MAX_SEQLEN_BACKENDS = (AttentionBackendEnum.FLASH_ATTN, AttentionBackendEnum.ROCM_AITER_FA,
                        AttentionBackendEnum.TRITON_ATTN)


def _no_flashinfer(attn_backend: AttentionBackendEnum) -> None:
    if attn_backend == AttentionBackendEnum.FLASHINFER:
        raise NotImplementedError("vLLM 0.13.0's MMEncoderAttention has no FlashInfer (cuDNN) path for a ViT")


class MMEncoderAttention(_PinnedMMEncoderAttention):
    """The pinned ``MMEncoderAttention`` with upstream's metadata helpers and ``sequence_lengths`` keyword."""

    @classmethod
    def compute_max_seqlen(cls, attn_backend: AttentionBackendEnum, cu_seqlens: np.ndarray) -> int:
        _no_flashinfer(attn_backend)
        max_seqlen = 0
        if attn_backend in _MAX_SEQLEN_BACKENDS and len(cu_seqlens) >= 2:
            max_seqlen = int((cu_seqlens[1:] - cu_seqlens[:-1]).max())
        return max_seqlen

    @classmethod
    def maybe_compute_seq_lens(cls, attn_backend: AttentionBackendEnum, cu_seqlens: np.ndarray,
                               device: torch.device) -> torch.Tensor | None:
        _no_flashinfer(attn_backend)
        return None

    @classmethod
    def maybe_recompute_cu_seqlens(cls, attn_backend: AttentionBackendEnum, cu_seqlens: np.ndarray,
                                   hidden_size: int, tp_size: int, device: torch.device,
                                   fp8_padded_hidden_size: int | None = None) -> torch.Tensor:
        _no_flashinfer(attn_backend)
        # upstream: async_tensor_h2d(cu_seqlens, device), the array's dtype kept
        return torch.from_numpy(np.asarray(cu_seqlens)).to(device=device, non_blocking=True)

    def __init__(self, num_heads: int, head_size: int, scale: float | None = None, num_kv_heads: int | None = None,
                 prefix: str = "", multimodal_config: MultiModalConfig | None = None) -> None:
        super().__init__(num_heads, head_size, scale=scale, num_kv_heads=num_kv_heads, prefix=prefix,
                         multimodal_config=multimodal_config)
        # 0.13.0's SDPA and flash-attention wrappers take no scale (they use head_size ** -0.5): another
        # one would be computed differently from upstream, which passes it on
        if scale is not None and abs(scale - head_size ** -0.5) > 1e-6 * head_size ** -0.5:
            raise NotImplementedError(f"vLLM 0.13.0's MMEncoderAttention ignores scale={scale} (it uses "
                                      f"head_size ** -0.5 = {head_size ** -0.5})")

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                cu_seqlens: torch.Tensor | None = None, max_seqlen: torch.Tensor | None = None,
                sequence_lengths: torch.Tensor | None = None) -> torch.Tensor:
        # sequence_lengths feeds FlashInfer only; every backend 0.13.0 picks ignores it upstream too
        bsz, q_len = query.size()[:2]
        if cu_seqlens is None:
            # upstream attends within each batch row; 0.13.0's wrappers need the boundaries: its SDPA path
            # splits the sequence dim, its flash-attention path the flattened (batch x sequence) dim
            step = q_len if self.is_flash_attn_backend else 0
            cu_seqlens = (torch.arange(0, (bsz + 1) * q_len, step=q_len, dtype=torch.int32, device=query.device)
                          if step else torch.tensor([0, q_len], dtype=torch.int32, device=query.device))
            max_seqlen = torch.tensor(q_len) if max_seqlen is None else max_seqlen
        out = super().forward(query, key, value, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen)
        # upstream hands back the caller's layout: (batch, seq, hidden) for a 3-D query
        return out.reshape(bsz, q_len, -1) if query.dim() != 4 else out
