"""Upstream's per-token pooler factories for the pinned vLLM (back-port, rule P22).

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

Upstream's ``pooler_for_token_classify(pooler_config, *, pooling=None, classifier=None, act_fn=None)`` (BERT,
RoBERTa, Qwen2-RM, Qwen3-ForcedAligner, OpenAI privacy filter) is the pinned ``Pooler.for_token_classify``:
the same ALL/STEP choice, and a ``TokenClassifierPoolerHead`` that casts to ``head_dtype``, applies the
classifier, subtracts the pooler config's logit offset (0.13.0's ``logit_bias`` is upstream's ``logit_mean``;
0.13.0's PoolerConfig has no ``logit_sigma`` to divide by) and activates when the request asks. Its default
activation is upstream's ``get_act_fn(hf_config, static_num_labels=False)`` (the config's ``problem_type``,
then a sentence-transformers activation, else softmax/sigmoid by the number of logits), built from the
pinned activation classes; 0.13.0's own default is always the latter. A ``pooling=`` method replaces the
configured one in upstream's: RoBERTa's BGE-M3 sparse head passes ``AllPool()`` (migrated to the pinned ``AllPool``),
which is what 0.13.0's ``AllPooler`` pools with, so it builds that pooler whatever the configured type; any
other method is not a 0.13.0 token pooler: refused at construction.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/token_pooler.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from vllm.config import PoolerConfig, get_current_vllm_config
from vllm.model_executor.layers.pooler import (
    AllPool,
    AllPooler,
    Pooler,
    PoolerActivation,
    PoolerClassify,
    PoolerIdentity,
    PoolerMultiLabelClassify,
    TokenClassifierPoolerHead,
)
from vllm.utils.import_utils import resolve_obj_by_qualname

__all__ = ["pooler_for_token_classify", "pooler_for_token_embed"]


def pooler_for_token_embed(pooler_config: PoolerConfig,
                           projector: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Pooler:
    """The pinned token-embedding pooler, with the model's projector when it passes one."""
    pooler = Pooler.for_token_embed(pooler_config)
    if projector is not None:
        pooler.head.projector = projector
    return pooler


def _upstream_default_activation(hf_config) -> PoolerActivation:
    """Upstream's ``get_act_fn(hf_config, static_num_labels=False)`` with the pinned activation classes
    (``PoolerClassify(static_num_labels=False)`` is upstream's ``PoolerClassify(num_labels=None)``)."""
    problem_type = getattr(hf_config, "problem_type", "")
    if problem_type == "regression":
        return PoolerIdentity()
    if problem_type == "single_label_classification":
        return PoolerClassify(static_num_labels=False)
    if problem_type == "multi_label_classification":
        return PoolerMultiLabelClassify()
    name = None
    if hasattr(hf_config, "sentence_transformers") and "activation_fn" in hf_config.sentence_transformers:
        name = hf_config.sentence_transformers["activation_fn"]
    elif getattr(hf_config, "sbert_ce_default_activation_function", None) is not None:
        name = hf_config.sbert_ce_default_activation_function
    if name is not None:
        if not name.startswith("torch.nn.modules."):
            raise ValueError("Loading of activation functions is restricted to torch.nn.modules for security reasons")
        fn = resolve_obj_by_qualname(name)()
        if not isinstance(fn, torch.nn.Sigmoid | torch.nn.Softmax):  # upstream wraps these as PoolerClassify()
            return PoolerActivation.wraps(fn)
    return PoolerClassify(static_num_labels=False)


def pooler_for_token_classify(pooler_config: PoolerConfig, *, pooling=None,
                              classifier: Callable[[torch.Tensor], torch.Tensor] | None = None,
                              act_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Pooler:
    """The pinned token-classification pooler with upstream's default activation."""
    if pooling is not None and not isinstance(pooling, AllPool):
        raise NotImplementedError(
            "pooler_for_token_classify(pooling=...): vLLM 0.13.0's token poolers choose ALL or STEP from "
            f"pooler_config.pooling_type and take no other pooling method ({type(pooling).__name__})")
    model_config = get_current_vllm_config().model_config
    if model_config.pooler_config is None:
        raise ValueError("model_config.pooler_config must be set for token classification pooling")
    if act_fn is None:
        act_fn = _upstream_default_activation(model_config.hf_config)
    elif not callable(act_fn):
        raise TypeError(f"Expected a callable activation function, got {type(act_fn)}")
    if pooling is not None:  # upstream's AllPool(): the pinned AllPooler, whatever the configured type
        return AllPooler(head=TokenClassifierPoolerHead(classifier=classifier, act_fn=act_fn))
    return Pooler.for_token_classify(pooler_config, classifier=classifier, act_fn=act_fn)
