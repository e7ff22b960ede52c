"""Kimi delta attention's gate with upstream's bounded ("safe") variant for the pinned vLLM (back-port, rule P22).

Upstream's FLA ``fused_kda_gate(g, A, head_k_dim, g_bias=, beta=, threshold=, lower_bound=)``
(``vllm.third_party.flash_linear_attention.ops.kda``; Bailing V3's KDA passes ``lower_bound`` from
``kda_lower_bound`` when ``kda_safe_gate``) computes, with a lower bound, ``lower_bound * sigmoid(exp(A) *
(g + g_bias))`` per channel instead of ``-exp(A) * softplus(g + g_bias)``. 0.13.0's kernel has the
softplus gate only and no such keyword (the call raises ``TypeError``). Here a call without a bound is the
pinned kernel's; a bounded one is computed in torch (fp32, ``[..., H, head_k_dim]``, as upstream's kernel
stores it). Upstream's ``chunk_kda`` / ``fused_recurrent_kda`` take ``safe_gate``/``lower_bound`` and
ignore them, as the pinned ones do (``**kwargs``): the bound is the gate's only.

Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/kda_gate.py``.
"""

from __future__ import annotations

import torch
from vllm.model_executor.layers.fla.ops import kda as _pinned


def fused_kda_gate(g: torch.Tensor, A: torch.Tensor, head_k_dim: int, g_bias: torch.Tensor | None = None,
                   beta: float = 1.0, threshold: float = 20.0, lower_bound: float | None = None) -> torch.Tensor:
    """Upstream's gate: the pinned kernel without ``lower_bound``, upstream's bounded gate with one."""
    if lower_bound is None:
        return _pinned.fused_kda_gate(g, A, head_k_dim, g_bias=g_bias, beta=beta, threshold=threshold)
    heads = A.numel()
    assert heads * head_k_dim == g.shape[-1]
    x = g.float().reshape(*g.shape[:-1], heads, head_k_dim)
    if g_bias is not None:
        x = x + g_bias.float().reshape(heads, head_k_dim)
    return lower_bound * torch.sigmoid(A.float().reshape(heads, 1).exp() * x)


__all__ = ["fused_kda_gate"]
