"""A token a model masks on purpose: upstream's moondream3.py sets its answer delimiter's logits to -inf in
compute_logits. The forward level took that for non-finite logits; a column at -inf on every row is accepted
(nothing else that is not finite), and the match compares the other entries, requiring the same mask on both
sides. Runs in the pinned venv (torch; skips without MMF_PINNED_VENV)."""

from __future__ import annotations

from tests.worker_helpers import run_in_worker

SCRIPT = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
from _runtime_logits import masked_tokens, max_abs_diff

a = torch.randn(3, 8)
b = a + 0.25
ma, mb = a.clone(), b.clone()
ma[:, 3] = mb[:, 3] = float("-inf")
partial = a.clone()
partial[0, 2] = float("-inf")
nan = a.clone()
nan[1, 1] = float("nan")
pos = a.clone()
pos[:, 4] = float("inf")
other = mb.clone()
other[:, 5] = float("-inf")
print(json.dumps({
    "plain": masked_tokens(a), "column": masked_tokens(ma), "partial": masked_tokens(partial),
    "nan": masked_tokens(nan), "posinf": masked_tokens(pos),
    "diff": max_abs_diff(ma, mb), "unmasked_diff": max_abs_diff(a, b), "other_mask": max_abs_diff(ma, other)}))
'''


def test_a_token_masked_on_every_row_is_the_models_and_the_rest_is_compared():
    out = run_in_worker(SCRIPT)
    assert out["plain"] == [] and out["column"] == [3]
    assert out["partial"] is None and out["nan"] is None and out["posinf"] is None  # not finite, as before
    assert abs(out["diff"] - 0.25) < 1e-6 and abs(out["unmasked_diff"] - 0.25) < 1e-6
    assert out["other_mask"] == float("inf")  # a mask only one side has is a mismatch
