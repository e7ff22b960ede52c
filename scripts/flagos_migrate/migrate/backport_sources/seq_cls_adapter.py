"""Upstream's label count for the sequence-classification adapter on the pinned vLLM (back-port, rule P22).

Upstream's ``as_seq_cls_model`` (``vllm/model_executor/models/adapters.py``) sizes the ``score`` head by
``_resolve_num_labels(hf_config, text_config)``: the top-level config's ``num_labels`` when the config is composite
and declares a label space of its own (not transformers' default of two), else the text config's. vLLM 0.13.0's
reads ``hf_config.get_text_config().num_labels`` always, so a multimodal model whose labels sit on the top-level
config (Decision 3.0: upstream's D3ForSequenceClassificationConfig sets ``hf_config.id2label`` to its answer codes)
gets a two-row head and its checkpoint's ``score`` [codes, hidden] does not load. This is the pinned adapter with
that one read changed: ``_init_pooler`` is the pinned one's, the head sized as upstream sizes it. (Upstream also
leaves the head unquantized for an online conversion; that part is not back-ported: the pinned one is kept.)
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/seq_cls_adapter.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transformers import PretrainedConfig
from vllm.model_executor.layers.linear import ReplicatedLinear
from vllm.model_executor.layers.pooler import DispatchPooler, Pooler
from vllm.model_executor.models import adapters as _pinned
from vllm.model_executor.models.utils import maybe_prefix

if TYPE_CHECKING:
    from vllm.config import VllmConfig

__all__ = ["as_seq_cls_model", "resolve_num_labels"]


def resolve_num_labels(hf_config, text_config) -> int:
    """Upstream's ``_resolve_num_labels``: the top-level config's label count when it declares its own."""
    if text_config is hf_config:
        return hf_config.num_labels
    if hf_config.num_labels != PretrainedConfig().num_labels:
        return hf_config.num_labels
    return text_config.num_labels


def as_seq_cls_model(cls):
    """The pinned ``as_seq_cls_model(cls)`` whose ``score`` head has upstream's label count."""
    pinned = _pinned.as_seq_cls_model(cls)
    if pinned is cls:  # already a pooling model: the pinned adapter leaves it alone, as upstream's does
        return cls

    class ModelForSequenceClassification(pinned):
        def _init_pooler(self, vllm_config: "VllmConfig", prefix: str = ""):
            # the pinned _init_pooler, the head's rows read as upstream reads them
            text_config = vllm_config.model_config.hf_config.get_text_config()
            model_config = vllm_config.model_config
            quant_config = vllm_config.quant_config

            self.score = ReplicatedLinear(
                model_config.get_hidden_size(),
                resolve_num_labels(model_config.hf_config, text_config),
                bias=False,
                params_dtype=vllm_config.model_config.head_dtype,
                quant_config=quant_config,
                return_bias=False,
                prefix=maybe_prefix(prefix, "score"),
            )

            pooler_config = vllm_config.model_config.pooler_config
            assert pooler_config is not None

            self.pooler = DispatchPooler(
                {
                    "token_classify": Pooler.for_token_classify(
                        pooler_config, classifier=self.score
                    ),
                    "classify": Pooler.for_classify(
                        pooler_config, classifier=self.score, act_fn="classify"
                    ),
                    "score": Pooler.for_classify(
                        pooler_config, classifier=self.score, act_fn="score"
                    ),
                }
            )

    ModelForSequenceClassification.__name__ = pinned.__name__
    ModelForSequenceClassification.__qualname__ = pinned.__qualname__
    return ModelForSequenceClassification
