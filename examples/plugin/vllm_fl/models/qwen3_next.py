"""Qwen3-Next for the plugin: vLLM 0.13.0's model with the plugin's weight-name handling."""

from collections.abc import Iterable

import torch

from vllm.model_executor.models.qwen3_next import (
    Qwen3NextForCausalLM as _PinnedQwen3NextForCausalLM,
)


class Qwen3NextForCausalLM(_PinnedQwen3NextForCausalLM):
    # checkpoints exported by some training stacks prefix every tensor with "module."
    _strip_prefix = "module."

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        renamed = (
            (name[len(self._strip_prefix) :] if name.startswith(self._strip_prefix) else name, tensor)
            for name, tensor in weights
        )
        return super().load_weights(renamed)
