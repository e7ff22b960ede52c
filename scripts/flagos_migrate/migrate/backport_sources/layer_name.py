"""Layer names passed to custom ops, as the pinned vLLM passes them (back-port, rule P22).

Upstream wraps a layer name in ``vllm.utils.torch_utils.LayerName`` (a torch opaque type) before
handing it to a custom op, so that torch.compile lifts it as a graph input, but only on
torch >= 2.11 (``HAS_OPAQUE_TYPE and envs.VLLM_USE_LAYERNAME``); below that, upstream's
``_encode_layer_name`` returns the string unchanged and ``LayerNameType`` is ``str``. vLLM 0.13.0
runs on torch 2.9, where torch has no opaque types and its own custom ops take the name as ``str``:
these are upstream's definitions on that torch. Written by model-migrate-flagos;
``migrate_model.py apply`` installs it as ``vllm_fl/compat/layer_name.py``.
"""

from __future__ import annotations


class LayerName:
    """Upstream's wrapper, never created here (only unwrapped if some caller passes one)."""

    def __init__(self, value: str):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, LayerName) and self.value == other.value

    def __hash__(self):
        return hash(self.value)


# the type custom-op signatures declare for a layer name: str on torch < 2.11, as upstream's
LayerNameType = str


def _resolve_layer_name(layer_name: str | LayerName) -> str:
    """Unwrap a LayerName to str, or return str unchanged."""
    return layer_name.value if isinstance(layer_name, LayerName) else layer_name


def _encode_layer_name(layer_name: str) -> str:
    """The name as the pinned custom ops take it (upstream wraps it only on torch >= 2.11)."""
    return layer_name


__all__ = ["LayerName", "LayerNameType", "_encode_layer_name", "_resolve_layer_name"]
