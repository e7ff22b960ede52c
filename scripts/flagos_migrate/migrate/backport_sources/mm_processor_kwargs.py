"""Upstream's ``InputProcessingContext.get_merged_mm_kwargs`` for the pinned vLLM (back-port, rule P22).

Upstream's processing infos build their Hugging Face processors with ``self.ctx.get_merged_mm_kwargs(kwargs)``
(internvl, glm4v, interns1, skyworkr1v): the configured ``mm_processor_kwargs`` merged with the request's, nested
scopes (``images_kwargs``, ...) merged recursively, then flat keys a scope already holds dropped
(``vllm/multimodal/processing/context.py``). vLLM 0.13.0's ``InputProcessingContext`` has no such method; its
``MultiModalConfig.merge_mm_processor_kwargs`` merges flat (``{**configured, **request}``), which is the same
only when no value is a scope mapping. This module is upstream's merge and resolution, verbatim, over the pinned
``MultiModalConfig``; upstream's ``mm_device_do_normalize`` (absent on the pinned config) reads False, its default.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/mm_processor_kwargs.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["get_merged_mm_kwargs"]

_HF_PROCESSOR_KWARG_SCOPES = (
    "text_kwargs",
    "images_kwargs",
    "videos_kwargs",
    "audio_kwargs",
)


def _recursively_merge_mm_processor_kwargs(
    defaults: Mapping[str, object],
    overrides: Mapping[str, object],
) -> dict[str, object]:
    """Merge two mappings recursively, with ``overrides`` taking precedence.

    Nested values are merged only when both values are mappings; otherwise the
    override replaces the existing value.
    """
    merged = dict(defaults)

    for key, value in overrides.items():
        default_value = merged.get(key)
        if isinstance(default_value, Mapping) and isinstance(value, Mapping):
            merged[key] = _recursively_merge_mm_processor_kwargs(default_value, value)
        else:
            merged[key] = value

    return merged


def _merge_mm_processor_scope(
    config_flat: Mapping[str, object],
    config_scoped: Mapping[str, object],
    inference_flat: Mapping[str, object],
    inference_scoped: Mapping[str, object],
) -> dict[str, object]:
    """Merge kwargs for one existing HuggingFace processor kwarg scope.

    Flat kwargs contribute only to keys present in either the configured or
    inference-time scope. For those keys, precedence is:
    configured flat < configured scoped < inference flat < inference scoped.

    Nested mappings are merged recursively; otherwise the higher-priority value
    replaces the lower-priority value.
    """
    # Flat kwargs contribute only to keys present in this scope in either input.
    scoped_keys = config_scoped.keys() | inference_scoped.keys()
    config_flat_for_scope = {
        key: value for key, value in config_flat.items() if key in scoped_keys
    }
    inference_flat_for_scope = {
        key: value for key, value in inference_flat.items() if key in scoped_keys
    }

    # Merge from lowest to highest priority:
    # configured flat -> configured scoped -> inference flat -> inference scoped.
    merged = _recursively_merge_mm_processor_kwargs(
        config_flat_for_scope, config_scoped
    )
    merged = _recursively_merge_mm_processor_kwargs(merged, inference_flat_for_scope)
    merged = _recursively_merge_mm_processor_kwargs(merged, inference_scoped)
    return merged


def _merge_mm_processor_kwargs(
    config_kwargs: Mapping[str, object],
    inference_kwargs: Mapping[str, object],
) -> dict[str, object]:
    """Merge configured and inference-time multi-modal processor kwargs.

    The merge is performed in two parts:

    1. The shared flat kwargs are merged recursively, with inference-time values
       taking precedence.
    2. Each existing HuggingFace processor kwarg scope is merged separately.
       For keys present in either the configured or inference-time scope,
       precedence is:
       configured flat < configured scoped < inference flat < inference scoped.

    For example:

        configured = {
            "size": {"shortest_edge": 256},
            "videos_kwargs": {
                "size": {"longest_edge": 1024},
                "num_frames": 16,
            },
        }
        inference = {
            "size": {"shortest_edge": 512},
            "videos_kwargs": {"fps": 4},
        }

    produces:

        {
            "size": {"shortest_edge": 512},
            "videos_kwargs": {
                "size": {
                    "shortest_edge": 512,
                    "longest_edge": 1024,
                },
                "num_frames": 16,
                "fps": 4,
            },
        }

    Scoped values do not modify the shared flat kwargs or sibling scopes.
    Missing scopes, None-valued scopes, and empty scope mappings are treated as
    absent and do not create a scope.
    """
    # Merge the shared flat kwargs first; nested scopes are handled separately
    # below.
    config_flat = {
        key: value
        for key, value in config_kwargs.items()
        if key not in _HF_PROCESSOR_KWARG_SCOPES
    }
    inference_flat = {
        key: value
        for key, value in inference_kwargs.items()
        if key not in _HF_PROCESSOR_KWARG_SCOPES
    }
    merged = _recursively_merge_mm_processor_kwargs(config_flat, inference_flat)

    # Merge each nested processor kwarg scope present in either input.
    for scoped_key in _HF_PROCESSOR_KWARG_SCOPES:
        config_scope_value = config_kwargs.get(scoped_key)
        inference_scope_value = inference_kwargs.get(scoped_key)

        # Treat missing scopes, None-valued scopes, and empty scope mappings as
        # absent.
        if isinstance(config_scope_value, Mapping) and not config_scope_value:
            config_scope_value = None
        if isinstance(inference_scope_value, Mapping) and not inference_scope_value:
            inference_scope_value = None

        # Skip adding the scope to the merged result when it is absent from both
        # sources.
        if config_scope_value is None and inference_scope_value is None:
            continue

        # Handle the inference scope first because it has higher precedence; only
        # mapping-valued scopes participate in the recursive scoped merge.
        inference_scope_kwargs: Mapping[str, object]
        if inference_scope_value is None:
            inference_scope_kwargs = {}
        elif not isinstance(inference_scope_value, Mapping):
            # Non-mapping scopes cannot participate in the recursive scoped merge;
            # the higher-priority inference value replaces the configured scope.
            merged[scoped_key] = inference_scope_value
            continue
        else:
            inference_scope_kwargs = inference_scope_value

        # Handle the configured scope next because it has lower precedence; only
        # mapping-valued scopes participate in the recursive scoped merge.
        if isinstance(config_scope_value, Mapping):
            config_scope_kwargs = config_scope_value
        elif inference_scope_value is None:
            # Non-mapping scopes cannot participate in the recursive scoped merge;
            # preserve the configured value when inference contributes nothing.
            merged[scoped_key] = config_scope_value
            continue
        else:
            config_scope_kwargs = {}

        # Merge this scope together with the matching flat kwargs.
        merged[scoped_key] = _merge_mm_processor_scope(
            config_flat,
            config_scope_kwargs,
            inference_flat,
            inference_scope_kwargs,
        )

    return merged


def _merge_scoped_mm_processor_value(
    flat_value: object,
    scoped_value: object,
) -> object:
    """Merge a flat value with an existing, more specific scoped value.

    Mappings are merged recursively; otherwise the scoped value replaces the
    flat value.
    """
    if isinstance(flat_value, Mapping) and isinstance(scoped_value, Mapping):
        # Merge recursively so scoped leaves override matching flat leaves
        # without dropping unrelated flat entries.
        merged = dict(flat_value)
        for key, value in scoped_value.items():
            if key in merged:
                merged[key] = _merge_scoped_mm_processor_value(merged[key], value)
            else:
                merged[key] = value
        return merged
    return scoped_value


def _resolve_mm_processor_kwargs(
    kwargs: Mapping[str, object],
    supported_mm_processor_kwargs: Mapping[str, set[str]] | None = None,
) -> dict[str, object]:
    """Resolve flat processor kwargs into HuggingFace processor kwarg scopes.

    With ``supported_mm_processor_kwargs``, each scope lists the flat keys it
    supports. Matching flat keys are routed to every scope that supports them,
    existing scoped values take precedence, and keys not supported by any scope
    remain flat.

    Without ``supported_mm_processor_kwargs``, flat keys already represented in
    at least one existing mapping-valued scope are removed from the shared flat
    namespace; all other flat keys are left unchanged because there is no
    information to determine which scopes should receive them.
    """
    resolved = dict(kwargs)

    # Without ``supported_mm_processor_kwargs``, remove flat entries already
    # represented in at least one existing mapping-valued scope. There is no
    # information to route the remaining flat entries.
    if supported_mm_processor_kwargs is None:
        # Collect all keys represented in existing mapping-valued scopes.
        # Non-mapping scope values do not contain scoped kwargs and are left
        # untouched.
        represented_scoped_keys: set[str] = set()
        for scoped_key in _HF_PROCESSOR_KWARG_SCOPES:
            scoped_kwargs = resolved.get(scoped_key)
            if isinstance(scoped_kwargs, Mapping):
                represented_scoped_keys.update(scoped_kwargs)

        # Remove flat entries for keys already represented in a scope.
        for key in represented_scoped_keys:
            if key not in _HF_PROCESSOR_KWARG_SCOPES:
                resolved.pop(key, None)
        return resolved

    # With ``supported_mm_processor_kwargs``, collect the flat kwargs before
    # routing each one to the processor kwarg scopes that support it.
    flat_kwargs = {
        key: value
        for key, value in resolved.items()
        if key not in _HF_PROCESSOR_KWARG_SCOPES
    }

    for key, flat_value in flat_kwargs.items():
        # Find every processor kwarg scope that supports this flat key. If none
        # supports it, keep the key in the shared flat namespace.
        supported_scopes = [
            scoped_key
            for scoped_key in _HF_PROCESSOR_KWARG_SCOPES
            if key in supported_mm_processor_kwargs.get(scoped_key, set())
        ]
        if not supported_scopes:
            continue

        # Add the flat value to each supported destination scope.
        for scoped_key in supported_scopes:
            # Start from a copy of the existing scoped kwargs, or an empty scope
            # if absent.
            if scoped_key in resolved:
                scoped_kwargs = resolved[scoped_key]
                # A scope must be a mapping before keys can be added to it. Do
                # not replace an explicit non-mapping value.
                if not isinstance(scoped_kwargs, Mapping):
                    raise TypeError(f"`{scoped_key}` must be a mapping")
                scoped_kwargs = dict(scoped_kwargs)
            else:
                scoped_kwargs = {}

            # Add the flat value to this scope. Existing scoped values take
            # precedence.
            if key in scoped_kwargs:
                scoped_kwargs[key] = _merge_scoped_mm_processor_value(
                    flat_value, scoped_kwargs[key]
                )
            else:
                # Assign the flat value to this scope. For mappings, assign a
                # copy so the same mapping object is not shared between the flat
                # value and multiple scopes.
                scoped_kwargs[key] = (
                    dict(flat_value) if isinstance(flat_value, Mapping) else flat_value
                )
            resolved[scoped_key] = scoped_kwargs

        # After routing to every destination, remove the flat copy.
        resolved.pop(key)

    return resolved


def get_merged_mm_kwargs(
    ctx,
    kwargs: Mapping[str, object],
    *,
    supported_mm_processor_kwargs: Mapping[str, set[str]] | None = None,
) -> dict[str, Any]:
    """Upstream's ``ctx.get_merged_mm_kwargs(kwargs, ...)`` for a pinned ``InputProcessingContext``."""
    mm_config = ctx.model_config.get_multimodal_config()
    merged = _merge_mm_processor_kwargs(mm_config.mm_processor_kwargs or {}, kwargs)
    if getattr(mm_config, "mm_device_do_normalize", False):
        for key in ("do_normalize", "do_rescale"):
            merged[key] = False
    return _resolve_mm_processor_kwargs(
        merged,
        supported_mm_processor_kwargs=supported_mm_processor_kwargs,
    )
