"""Upstream's ``LayerNorm`` for the pinned vLLM (back-port, rule P22).

Upstream's ``vllm.model_executor.layers.layernorm.LayerNorm(hidden_size, eps=1e-5, elementwise_affine=True,
bias=True, dtype=None)`` is a drop-in for ``nn.LayerNorm``: parameters in the default dtype (none without
``elementwise_affine``, no bias without ``bias``), normalised in the wider of the input and parameter dtypes
and cast back. vLLM 0.13.0 has another class under that name, ``LayerNorm(dim, eps=1e-6)``: always a weight and
a bias, in float32, the input cast to float32; upstream's OPT (``elementwise_affine=config.layer_norm_elementwise_affine``)
raises TypeError on it. This is upstream's class with its native forward, the one its CUDA path runs too
(``forward_cuda`` returns ``forward_native``; only XPU has a kernel).
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/layernorm.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from vllm.model_executor.utils import set_weight_attrs

__all__ = ["LayerNorm"]


class LayerNorm(nn.Module):
    """Upstream's standard (mean-centered) LayerNorm (vllm/model_executor/layers/layernorm.py)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.normalized_shape = (hidden_size,)
        self.eps = eps
        weight_dtype = dtype or torch.get_default_dtype()
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(hidden_size, dtype=weight_dtype))
            set_weight_attrs(self.weight, {"dummy_weight_value": 1.0})
            if bias:
                self.bias = nn.Parameter(torch.zeros(hidden_size, dtype=weight_dtype))
                set_weight_attrs(self.bias, {"dummy_weight_value": 0.0})

    def _compute_dtype(self, x: torch.Tensor) -> torch.dtype:
        if self.weight is None:
            return x.dtype
        return torch.promote_types(x.dtype, self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compute_dtype = self._compute_dtype(x)
        if compute_dtype != x.dtype:
            return F.layer_norm(x.to(compute_dtype), self.normalized_shape, self.weight, self.bias,
                                self.eps).type_as(x)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"
