"""Upstream's ``BaseMultiModalProcessor.apply(inputs, timing_ctx)`` over the pinned ``apply(prompt, mm_data, ...)``
(rule P7, table ``override_forms``).

Written by model-migrate-flagos; regenerated on every migrate_model.py apply, do not edit by hand.

vLLM 0.13.0's engine calls a multimodal processor's ``apply(prompt, mm_data, hf_processor_mm_kwargs,
tokenization_kwargs=None, *, mm_uuids=None)``; upstream's overrides take ``(inputs: ProcessorInputs, timing_ctx)``
and hand both to ``super().apply``. The migrated override takes the pinned arguments, builds the part of
upstream's ``ProcessorInputs`` the pinned ones carry the same (the request's multimodal processor kwargs, the
parsed items, the uuids) and calls the pinned ``super().apply`` with them. What differs raises instead of
computing otherwise: upstream's ``inputs.prompt`` is the token ids its input processor made before ``apply``
(0.13.0 hands ``apply`` the request's prompt as given, text or ids, and tokenizes it inside), and the pinned
``apply`` parses ``mm_data`` itself, so items an override replaces could not reach it.
"""

from __future__ import annotations

from contextlib import nullcontext


class NoTiming:
    """Upstream's ``TimingContext``: 0.13.0's processor records no stage timings."""

    def record(self, *args, **kwargs):
        return nullcontext()


class ApplyInputs:
    """The fields of upstream's ``ProcessorInputs`` that the pinned ``apply`` arguments carry."""

    def __init__(self, processor, prompt, mm_data, hf_processor_mm_kwargs, tokenization_kwargs=None, mm_uuids=None):
        self._processor = processor
        self._prompt = prompt
        self._mm_data = mm_data
        self._items = None
        self.hf_processor_mm_kwargs = hf_processor_mm_kwargs
        self.tokenization_kwargs = tokenization_kwargs
        self.mm_uuids = mm_uuids

    @property
    def mm_data_items(self):
        # what upstream's input processor parses before apply, parsed as the pinned apply parses it
        if self._items is None:
            self._items = self._processor._to_mm_items(self._mm_data)
        return self._items

    @mm_data_items.setter
    def mm_data_items(self, items):
        raise NotImplementedError(
            "upstream's apply replaces inputs.mm_data_items here; the pinned BaseMultiModalProcessor.apply parses "
            "mm_data itself, so replaced items cannot reach it")

    @property
    def prompt(self):
        raise NotImplementedError(
            "upstream's apply reads inputs.prompt here, the token ids its input processor made before apply; the "
            "pinned apply receives the request's prompt as given (text or ids) and tokenizes it inside")

    @prompt.setter
    def prompt(self, value):
        raise NotImplementedError(
            "upstream's apply sets inputs.prompt here (token ids); the pinned apply tokenizes the request's prompt "
            "inside, with its own tokenization")

    def pinned_apply(self, apply):
        """The pinned ``apply`` (``super().apply``) with these inputs: upstream's ``super().apply(inputs, timing_ctx)``."""
        return apply(self._prompt, self._mm_data, self.hf_processor_mm_kwargs, self.tokenization_kwargs,
                     mm_uuids=self.mm_uuids)


def apply_inputs(processor, prompt, mm_data, hf_processor_mm_kwargs, tokenization_kwargs=None, mm_uuids=None):
    """Upstream's ``(inputs, timing_ctx)`` from the pinned ``apply`` arguments."""
    return ApplyInputs(processor, prompt, mm_data, hf_processor_mm_kwargs, tokenization_kwargs, mm_uuids), NoTiming()


__all__ = ["ApplyInputs", "NoTiming", "apply_inputs"]
