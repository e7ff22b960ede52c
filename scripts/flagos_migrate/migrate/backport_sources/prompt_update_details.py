"""Upstream's ``PromptUpdateDetails.select_token_ids`` for the pinned vLLM (back-port, rule P22).

Upstream's multimodal processors (isaac, minicpmv and its kin, mllama4, molmo2) mark the image embedding
positions of a replacement with ``PromptUpdateDetails.select_token_ids(seq, embed_token_ids)``: the positions
of ``seq`` holding any of those ids (``torch.isin``). vLLM 0.13.0's ``PromptUpdateDetails`` has
``select_token_id`` (one id) and ``select_text`` but not this method; its ``is_embed`` takes
``(tokenizer, full)`` where upstream's takes ``full``, the token ids the pinned ``_seq2tokens`` returns
unchanged for a list of ids (what these processors pass). This subclass adds the method and returns the
pinned class, built as the pinned ``select_token_id`` builds it with the one comparison widened to the set.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/prompt_update_details.py``.
"""

from __future__ import annotations

import torch
from vllm.multimodal.processing import PromptUpdateDetails as _PinnedPromptUpdateDetails
from vllm.multimodal.processing import _seq2tokens

__all__ = ["PromptUpdateDetails"]


class PromptUpdateDetails(_PinnedPromptUpdateDetails):
    """The pinned ``PromptUpdateDetails`` with upstream's ``select_token_ids``."""

    @staticmethod
    def select_token_ids(seq, embed_token_ids: list[int]) -> _PinnedPromptUpdateDetails:
        def is_embed(tokenizer, full) -> torch.Tensor:
            return torch.isin(torch.tensor(_seq2tokens(tokenizer, full)), torch.tensor(embed_token_ids))

        return _PinnedPromptUpdateDetails(full=seq, is_embed=is_embed)
