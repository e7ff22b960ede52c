"""Upstream's default ``SupportsMultiModal.get_language_model()`` for the pinned vLLM (back-port, rule P22/P23).

Upstream marks the language model with ``with self._mark_language_model(vllm_config, targets=T)`` (or
``_mark_composite_model(..., language_targets=T)``): at the block's end ``collect_children`` records every
descendant that is an instance of ``T``, and the interface's default ``get_language_model()`` walks their common
dotted prefix, returns that module when it has ``embed_input_ids`` and ``forward``, and otherwise the first child
(registration order) that has them (``vllm/model_executor/models/interfaces.py``, ``utils.collect_children``,
``utils.common_prefix``). vLLM 0.13.0's ``SupportsMultiModal.get_language_model`` is a stub (returns None). A
written ``get_language_model`` whose marked block builds its child in a base's ``__init__`` (glm4v:
``super().__init__(...)`` under the marker) calls these functions, verbatim upstream, over the module tree as it
stands (the written class adds no child after that block; upstream's per-module cache only memoises the result).
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/language_model.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["default_language_model", "language_model_names"]


def language_model_names(module: nn.Module, targets: type[nn.Module] | tuple[type[nn.Module], ...]) -> list[str]:
    """upstream ``collect_children(module, targets=targets)``: the descendants that are instances of ``targets``."""
    return [name for name, module_ in module.named_modules() if isinstance(module_, targets)]


def _common_prefix(items: Sequence[Sequence[str]]) -> Sequence[str]:
    """upstream ``vllm.utils.collection_utils.common_prefix``."""
    if len(items) == 0:
        return []
    if len(items) == 1:
        return items[0]
    shortest = min(items, key=len)
    if not shortest:
        return shortest[:0]
    for match_len in range(1, len(shortest) + 1):
        match = shortest[:match_len]
        for item in items:
            if item[:match_len] != match:
                return shortest[: match_len - 1]
    return shortest


def _is_language_model(model: object) -> bool:
    return callable(getattr(model, "embed_input_ids", None)) and callable(getattr(model, "forward", None))


def default_language_model(module: nn.Module, language_model_names: list[str]) -> nn.Module:
    """upstream ``SupportsMultiModal.get_language_model`` with ``module._language_model_names`` given."""
    if language_model_names:
        mod = module
        for attr in _common_prefix([name.split(".") for name in language_model_names]):
            if attr:
                mod = getattr(mod, attr)
        if mod is not module and _is_language_model(mod):
            return mod
    # Fallback
    for mod in module.children():
        if _is_language_model(mod):
            return mod
    raise NotImplementedError(
        f"No language model found in {type(module).__name__}! "
        "You should initialize it via `_mark_language_model`, "
        "and make sure `embed_input_ids` is implemented."
    )
