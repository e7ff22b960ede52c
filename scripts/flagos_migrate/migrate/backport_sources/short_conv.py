"""LFM2's short convolution layer for the pinned vLLM, taking upstream's ``quant_config`` (back-port, rule P22).

Upstream's ``ShortConv(config, dim, layer_idx, model_config, cache_config, quant_config, prefix)``
hands ``quant_config`` to its two projections, ``in_proj`` (a ``MergedColumnParallelLinear`` of
``[dim] * 3``) and ``out_proj`` (a ``RowParallelLinear``); the convolution weight stays unquantized.
vLLM 0.13.0's ``ShortConv`` builds the same layers with the same sizes and prefixes but takes no
``quant_config``, so its projections are always unquantized. Dropping the keyword would be equivalent
only for an unquantized checkpoint. This subclass keeps the pinned layer (its state, forward and
custom op) and, when a ``quant_config`` is given, builds the two projections as upstream does.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/short_conv.py``.
"""

from __future__ import annotations

from vllm.model_executor.layers.linear import MergedColumnParallelLinear, RowParallelLinear
from vllm.model_executor.layers.mamba.short_conv import ShortConv as _PinnedShortConv

__all__ = ["ShortConv"]


class ShortConv(_PinnedShortConv):
    """The pinned ``ShortConv`` with upstream's constructor (``quant_config`` reaches the projections)."""

    def __init__(self, config, dim: int, layer_idx: int, model_config=None, cache_config=None,
                 quant_config=None, prefix: str = ""):
        super().__init__(config, dim, layer_idx, model_config=model_config, cache_config=cache_config,
                         prefix=prefix)
        if quant_config is None:
            return  # the pinned projections are upstream's unquantized ones
        self.in_proj = MergedColumnParallelLinear(
            input_size=dim,
            output_sizes=[dim] * 3,
            bias=self.bias,
            quant_config=quant_config,
            prefix=f"{prefix}.in_proj",
        )
        self.out_proj = RowParallelLinear(
            input_size=dim,
            output_size=dim,
            bias=self.bias,
            quant_config=quant_config,
            prefix=f"{prefix}.out_proj",
        )
