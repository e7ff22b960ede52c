"""Upstream's per-token embedding pooler factory for the pinned vLLM (back-port, rule P22).

Upstream's ``pooler_for_token_embed(pooler_config, projector=None)`` (``vllm.model_executor.layers.pooler.tokwise``)
builds a ``TokenPooler``: the token pooling method of ``pooler_config.get_tok_pooling_type()`` ("ALL", or "STEP")
and a ``TokenEmbeddingPoolerHead(head_dtype=model_config.head_dtype, projector=projector or the
sentence-transformers projector, activation=PoolerNormalize())``. vLLM 0.13.0 has the same pieces as
``Pooler.for_token_embed(pooler_config)``: ``AllPooler`` (``StepPooler`` when the pooling type is "STEP"), whose
``TokenEmbeddingPoolerHead`` casts to ``model_config.head_dtype``, applies the sentence-transformers projector,
cuts to the request's ``dimensions`` and normalises when the request asks, in upstream's order. The one
argument 0.13.0 lacks is the model's own projector (ColBERT-style models pass their ``custom_text_proj`` /
``colbert_linear``): set on the pinned head in place of the sentence-transformers one, as upstream's head
prefers it. What upstream's head does beyond that (late chunking) no 0.13.0 request can ask for.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/token_pooler.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from vllm.config import PoolerConfig
from vllm.model_executor.layers.pooler import Pooler

__all__ = ["pooler_for_token_embed"]


def pooler_for_token_embed(pooler_config: PoolerConfig,
                           projector: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Pooler:
    """The pinned token-embedding pooler, with the model's projector when it passes one."""
    pooler = Pooler.for_token_embed(pooler_config)
    if projector is not None:
        pooler.head.projector = projector
    return pooler
