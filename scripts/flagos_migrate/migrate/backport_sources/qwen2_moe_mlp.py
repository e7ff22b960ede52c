"""Qwen2-MoE's dense MLP for the pinned vLLM with upstream's gate contract (back-port, rule P22).

Upstream's ``Qwen2MoeMLP(..., expert_gate=...)`` scales the output by ``sigmoid(expert_gate(x)[0])``:
the gate its callers pass (Qwen3-Next, Qwen3.5, InternS2, AliceAI, Qwen2-MoE) is a vLLM
``ReplicatedLinear``, which returns ``(output, bias)``. vLLM 0.13.0's class calls
``sigmoid(expert_gate(x))``, written for a ``torch.nn.Linear``: handed upstream's gate it applies the
sigmoid to a tuple and the first forward raises (``'tuple' object has no attribute 'sigmoid'``), on GPU
as on CPU. Upstream also takes ``disable_tp=`` / ``is_sequence_parallel=`` (replicated projections for
sequence-parallel MoE), which the pinned class rejects. This subclass keeps the pinned layers and
loading and takes both as upstream does. Written by model-migrate-flagos; ``migrate_model.py apply``
installs it as ``vllm_fl/compat/qwen2_moe_mlp.py``.
"""

from __future__ import annotations

import torch.nn.functional as F
from vllm.model_executor.layers.linear import MergedColumnParallelLinear, RowParallelLinear
from vllm.model_executor.models.qwen2_moe import Qwen2MoeMLP as _PinnedQwen2MoeMLP

__all__ = ["Qwen2MoeMLP"]


class Qwen2MoeMLP(_PinnedQwen2MoeMLP):
    """The pinned ``Qwen2MoeMLP`` with upstream's constructor and gate call."""

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str, quant_config=None,
                 reduce_results: bool = True, expert_gate=None, is_sequence_parallel: bool = False,
                 disable_tp: bool = False, prefix: str = "") -> None:
        super().__init__(hidden_size, intermediate_size, hidden_act, quant_config=quant_config,
                         reduce_results=reduce_results, expert_gate=expert_gate, prefix=prefix)
        if disable_tp or is_sequence_parallel:  # upstream's replicated projections, same names and sizes
            self.gate_up_proj = MergedColumnParallelLinear(hidden_size, [intermediate_size] * 2, bias=False,
                                                           quant_config=quant_config, disable_tp=True,
                                                           prefix=f"{prefix}.gate_up_proj")
            self.down_proj = RowParallelLinear(intermediate_size, hidden_size, bias=False, quant_config=quant_config,
                                               reduce_results=reduce_results, disable_tp=True,
                                               prefix=f"{prefix}.down_proj")

    def forward(self, x):
        gate_up, _ = self.gate_up_proj(x)
        out = self.act_fn(gate_up)
        out, _ = self.down_proj(out)
        if self.expert_gate is not None:
            out = F.sigmoid(self.expert_gate(x)[0]) * out  # a vLLM linear: (output, bias)
        return out
