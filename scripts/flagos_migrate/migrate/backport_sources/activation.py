"""Activation layers by name for the pinned vLLM (back-port, rule P22).

Upstream's ``get_act_and_mul_fn`` knows names the pinned registry does not: ``gelu_pytorch_tanh``
(Gemma 3's ``hidden_activation``) and ``swish``. Upstream models look the layer up by the config's
name, where the pinned models built it by hand (0.13.0's gemma3.py: ``GeluAndMul(approximate="tanh")``
after checking the name), so on vLLM 0.13.0 the same call raises ``ValueError: Activation function
'gelu_pytorch_tanh' is not supported``. Here those names build the pinned layer that computes what
upstream's registry builds; every other name goes to the pinned function unchanged.

Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/activation.py`` and re-points ``get_act_and_mul_fn`` imports of migrated files here.
"""

from __future__ import annotations

from torch import nn
from vllm.model_executor.layers import activation as _pinned
from vllm.model_executor.layers.activation import GeluAndMul, SiluAndMul

# upstream _ACTIVATION_AND_MUL_REGISTRY entries the pinned one lacks, built as upstream builds them
_AND_MUL_MISSING = {
    "gelu_pytorch_tanh": lambda: GeluAndMul(approximate="tanh"),
    "swish": lambda: SiluAndMul(),
}


def get_act_and_mul_fn(act_fn_name: str, *, compile_native: bool = True) -> nn.Module:
    """Upstream's lookup: its extra names here, the rest from the pinned registry. ``compile_native``
    (upstream: do not torch.compile SiluAndMul's native path) changes no value; the pinned layer takes none."""
    name = act_fn_name.lower()
    if name in _AND_MUL_MISSING:
        return _AND_MUL_MISSING[name]()
    return _pinned.get_act_and_mul_fn(name)


__all__ = ["get_act_and_mul_fn"]
