"""Upstream's ``PoolingParamsUpdate`` for the pinned vLLM (back-port, rule P22).

Upstream's poolers merge what their pooling methods ask of a request with ``updates |= method_updates``
(``vllm.model_executor.layers.pooler.common.PoolingParamsUpdate.__or__``: a field is asked for when either side
asks for it). vLLM 0.13.0's class of that name (``vllm.model_executor.layers.pooler``) has the same one field,
``requires_token_ids``, and the same ``apply``, but no ``__or__``: upstream's vendored sequence and token poolers
raise TypeError when the pinned runner asks them for their updates (at warm-up and for every request). This is
the pinned dataclass with upstream's ``__or__``; the pinned runner reads it as its own (a subclass).
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/pooling_params_update.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from vllm.model_executor.layers.pooler import PoolingParamsUpdate as _PinnedPoolingParamsUpdate

__all__ = ["PoolingParamsUpdate"]


@dataclass(frozen=True)
class PoolingParamsUpdate(_PinnedPoolingParamsUpdate):
    """The pinned dataclass (its one field, its ``apply``) with upstream's merge."""

    def __or__(self, other: _PinnedPoolingParamsUpdate) -> PoolingParamsUpdate:
        return PoolingParamsUpdate(requires_token_ids=self.requires_token_ids or other.requires_token_ids)
