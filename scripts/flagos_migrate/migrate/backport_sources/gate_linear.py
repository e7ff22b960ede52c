"""MoE router gate layer for the pinned vLLM (back-port, rule P22).

Upstream's ``GateLinear`` is a ``ReplicatedLinear`` for the router gate whose output can be cast to
an ``out_dtype`` (fp32 router logits), set at construction or later with ``set_out_dtype``, and
whose parameters are fp32 when ``force_fp32_compute`` is asked for on hardware without its
specialised kernels. Everything else it does is a choice among fast GEMM kernels (cuteDSL, ROCm,
cuBLAS) that vLLM 0.13.0 does not ship; their common fallback is a plain linear, which is what this
back-port runs, with the same constructor, attributes and return convention. Written by
model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/gate_linear.py``.
"""

from __future__ import annotations

import torch
from vllm.model_executor.layers.linear import ReplicatedLinear, UnquantizedLinearMethod
from vllm.model_executor.layers.quantization import QuantizationConfig


class GateLinear(ReplicatedLinear):
    """``ReplicatedLinear`` with an optional output dtype for router logits."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        bias: bool = False,
        out_dtype: torch.dtype | None = None,
        params_dtype: torch.dtype | None = None,
        force_fp32_compute: bool = False,
        skip_bias_add: bool = False,
        quant_config: QuantizationConfig | None = None,
        prefix: str = "",
        return_bias: bool = True,
    ):
        if force_fp32_compute:
            # upstream keeps fp32 weights whenever it cannot use its fused bf16-in/fp32-out kernels
            params_dtype = torch.float32
        super().__init__(input_size, output_size, bias=bias, skip_bias_add=skip_bias_add,
                         params_dtype=params_dtype, quant_config=quant_config, prefix=prefix,
                         return_bias=return_bias)
        self.out_dtype = out_dtype
        self.is_unquantized = isinstance(self.quant_method, UnquantizedLinearMethod)

    def set_out_dtype(self, out_dtype: torch.dtype) -> None:
        """Choose the logits dtype after construction (it may depend on the experts' quantization)."""
        if self.out_dtype is not None:
            raise ValueError("out_dtype has already been set")
        self.out_dtype = out_dtype

    def forward(self, x: torch.Tensor):
        if self.out_dtype is not None and self.is_unquantized and x.dtype != self.weight.dtype:
            x = x.to(self.weight.dtype)
        result = super().forward(x)
        output, output_bias = result if isinstance(result, tuple) else (result, None)
        if self.out_dtype is not None and output.dtype != self.out_dtype:
            output = output.to(self.out_dtype)
        return (output, output_bias) if self.return_bias else output


__all__ = ["GateLinear"]
