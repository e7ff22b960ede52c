"""Logits a model masks on purpose (part of ``_runtime_worker.py``). Standard library only at import.

Upstream's moondream3.py suppresses its answer delimiter in ``compute_logits`` (``logits[:, answer_id] =
float("-inf")``): a token column that is -inf on every row is the model's, not a numerical failure. The
forward level accepts such columns (and nothing else that is not finite), and the match compares the rest,
requiring both sides to mask the same tokens.
"""


def masked_tokens(logits):
    """The token ids ``logits`` ([tokens, vocab]) holds at -inf on every row ([] for none); None when it holds a
    NaN, a +inf, or a -inf outside such a column (not finite)."""
    import torch

    if torch.isnan(logits).any() or torch.isposinf(logits).any():
        return None
    neg = torch.isneginf(logits)
    if not neg.any():
        return []
    if logits.dim() != 2:
        return None
    cols = neg.all(dim=0)
    if (neg & ~cols).any():
        return None
    return [int(i) for i in torch.nonzero(cols).flatten()]


def max_abs_diff(pinned, reference) -> float:
    """max |pinned - reference| over the entries neither side masks; inf when they mask different entries."""
    import torch

    mp, mr = torch.isneginf(pinned), torch.isneginf(reference)
    if not torch.equal(mp, mr):
        return float("inf")
    keep = ~mp
    return float((pinned[keep] - reference[keep]).abs().max()) if keep.any() else 0.0
