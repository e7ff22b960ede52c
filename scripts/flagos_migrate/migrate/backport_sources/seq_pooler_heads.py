"""Upstream's sequence pooler heads for the pinned vLLM (back-port, rule P22).

Upstream's ``vllm.model_executor.layers.pooler.seqwise`` heads take what the model gives them:
``EmbeddingPoolerHead(projector=None, head_dtype=None, activation=None)`` (BERT's and ModernBERT's poolers pass
their dense/tanh or dense/GELU/norm layers as the projector and no activation; ``pooler_for_embed`` passes the
sentence-transformers projector and ``PoolerNormalize()``) and ``ClassifierPoolerHead(classifier, logit_mean,
logit_sigma, head_dtype, activation)``. vLLM 0.13.0's ``EmbeddingPoolerHead()`` of that name takes no argument:
it always loads the sentence-transformers projector and normalises, so it cannot be BERT's pooler. The classes
here are upstream's, unchanged but for one field: upstream asks each request's ``use_activation`` whether to
activate, which 0.13.0's ``PoolingParams`` sets only for classify / score / token_classify; for an embedding
0.13.0's request field is ``normalize`` (default True, upstream's ``use_activation`` default for embed; 0.13.0's own
embedding head reads it there), so ``_activates`` reads that one for the embedding tasks.
``SequencePoolerHead`` comes along so that upstream's ``SequencePooler`` (vendored) sees these heads as heads and
narrows its tasks to theirs (``embed`` / ``classify``), as upstream's does.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/seq_pooler_heads.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Set
from typing import TypeAlias

import torch
import torch.nn as nn
from vllm.tasks import PoolingTask
from vllm.v1.pool.metadata import PoolingMetadata

__all__ = ["ClassifierPoolerHead", "EmbeddingPoolerHead", "SequencePoolerHead", "SequencePoolerHeadOutput"]

SequencePoolerHeadOutput = torch.Tensor | list[torch.Tensor]
_Fn: TypeAlias = Callable[[torch.Tensor], torch.Tensor]


def _activates(pooling_params) -> list[bool]:
    """Upstream's per-request ``use_activation``, spelled as 0.13.0's PoolingParams holds it."""
    return [bool(p.normalize if p.task in ("embed", "token_embed") else p.use_activation) for p in pooling_params]


class SequencePoolerHead(nn.Module, ABC):
    @abstractmethod
    def get_supported_tasks(self) -> Set[PoolingTask]:
        raise NotImplementedError

    @abstractmethod
    def forward(self, pooled_data: torch.Tensor | list[torch.Tensor],
                pooling_metadata: PoolingMetadata) -> SequencePoolerHeadOutput:
        raise NotImplementedError

    def _stacked(self, pooled_data, pooling_params) -> torch.Tensor:
        """One row per request, in the head's dtype (what both of upstream's heads do first)."""
        if len(pooled_data) != len(pooling_params):
            raise ValueError(f"pooled_data length ({len(pooled_data)}) does not match "
                             f"pooling_params length ({len(pooling_params)})")
        if isinstance(pooled_data, list):
            pooled_data = torch.stack(pooled_data)
        return pooled_data.to(self.head_dtype) if self.head_dtype is not None else pooled_data


class EmbeddingPoolerHead(SequencePoolerHead):
    def __init__(self, projector: _Fn | None = None, head_dtype: torch.dtype | str | None = None,
                 activation: _Fn | None = None) -> None:
        super().__init__()
        self.projector = projector
        self.head_dtype = head_dtype
        self.activation = activation

    def get_supported_tasks(self) -> Set[PoolingTask]:
        return {"embed"}

    def forward(self, pooled_data, pooling_metadata: PoolingMetadata) -> SequencePoolerHeadOutput:
        pooling_params = pooling_metadata.pooling_params
        pooled_data = self._stacked(pooled_data, pooling_params)
        embeddings = self.projector(pooled_data) if self.projector is not None else pooled_data

        # matryoshka representation
        dimensions_list = [p.dimensions for p in pooling_params]
        if any(d is not None for d in dimensions_list):
            if len(set(dimensions_list)) == 1 and not isinstance(embeddings, list):
                embeddings = embeddings[..., :dimensions_list[0]]
            else:
                embeddings = [vecs if d is None else vecs[..., :d] for vecs, d in zip(embeddings, dimensions_list)]

        if self.activation is not None:
            flags = _activates(pooling_params)
            if len(set(flags)) == 1:
                if flags[0]:
                    embeddings = self.activation(embeddings)
            else:
                embeddings = [self.activation(vecs) if f else vecs for vecs, f in zip(embeddings, flags)]
        return embeddings


class ClassifierPoolerHead(SequencePoolerHead):
    def __init__(self, classifier: _Fn | None = None, logit_mean: float | None = None,
                 logit_sigma: float | None = None, head_dtype: torch.dtype | str | None = None,
                 activation: _Fn | None = None) -> None:
        super().__init__()
        self.classifier = classifier
        self.logit_mean = logit_mean
        self.logit_sigma = logit_sigma
        self.head_dtype = head_dtype
        self.activation = activation

    def get_supported_tasks(self) -> Set[PoolingTask]:
        return {"classify"}

    def forward(self, pooled_data, pooling_metadata: PoolingMetadata) -> SequencePoolerHeadOutput:
        pooling_params = pooling_metadata.pooling_params
        pooled_data = self._stacked(pooled_data, pooling_params)
        logits = self.classifier(pooled_data) if self.classifier is not None else pooled_data

        # affine score calibration: activation((logit - mean) / sigma)
        if self.logit_mean is not None:
            logits = ([v - self.logit_mean for v in logits] if isinstance(logits, list)
                      else logits - self.logit_mean)
        if self.logit_sigma is not None:
            logits = ([v / self.logit_sigma for v in logits] if isinstance(logits, list)
                      else logits / self.logit_sigma)

        if self.activation is not None:
            flags = _activates(pooling_params)
            if len(set(flags)) == 1:
                logits = self.activation(logits) if flags[0] else logits
            else:
                logits = [self.activation(vecs) if f else vecs for vecs, f in zip(logits, flags)]
        return logits
