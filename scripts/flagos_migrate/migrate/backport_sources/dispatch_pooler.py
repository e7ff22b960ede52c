"""Upstream's ``DispatchPooler`` factories for the pinned vLLM (back-port, rule P22).

Upstream's ``DispatchPooler`` (``vllm.model_executor.layers.pooler.special``) has two class methods its
models build their poolers with: ``for_embedding(pooler_config)`` (tasks ``token_embed`` and ``embed``) and
``for_seq_cls(pooler_config, *, pooling=None, classifier=None)`` (``token_classify`` and ``classify``).
vLLM 0.13.0's ``DispatchPooler`` takes the same ``{task: pooler}`` mapping but has neither method; its own
models spell the mapping out with the pinned factories (0.13.0's jamba.py, bert.py):
``Pooler.for_token_embed`` / ``Pooler.for_embed``, and for sequence classification
``Pooler.for_token_classify`` plus ``ClassifierPooler`` for ``classify`` (activation from the config's
``problem_type``, upstream's choice too) and for ``score``, the cross-encoder task 0.13.0 still serves
separately (upstream folded it into ``classify``; its activation comes from the sentence-transformers
config, as 0.13.0's own models do). A ``pooling`` the model passes replaces the configured one, as
upstream's. This subclass adds the two methods; the mapping, dispatch and every pooler are the pinned ones.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/dispatch_pooler.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from vllm.config import PoolerConfig
from vllm.model_executor.layers.pooler import ClassifierPooler, Pooler
from vllm.model_executor.layers.pooler import DispatchPooler as _PinnedDispatchPooler

__all__ = ["DispatchPooler"]


class DispatchPooler(_PinnedDispatchPooler):
    """The pinned ``DispatchPooler`` with upstream's ``for_embedding`` and ``for_seq_cls``."""

    @classmethod
    def for_embedding(cls, pooler_config: PoolerConfig) -> DispatchPooler:
        return cls({"token_embed": Pooler.for_token_embed(pooler_config),
                    "embed": Pooler.for_embed(pooler_config)})

    @classmethod
    def for_seq_cls(cls, pooler_config: PoolerConfig, *, pooling: Callable | None = None,
                    classifier: Callable | None = None) -> DispatchPooler:
        def classify(act_fn: str) -> Pooler:
            if pooling is None:  # the configured pooling type, as 0.13.0's own models build it
                return Pooler.for_classify(pooler_config, classifier=classifier, act_fn=act_fn)
            return ClassifierPooler(pooling=pooling, classifier=classifier, act_fn=act_fn)

        return cls({"token_classify": Pooler.for_token_classify(pooler_config, classifier=classifier),
                    "classify": classify("classify"), "score": classify("score")})
