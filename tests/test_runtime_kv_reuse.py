"""The reference attention's KV cache within one prefill (``verify/_runtime_forward.py``).

vLLM's attention writes the keys/values it is given to its KV cache and a call without them reads that cache.
IQuest LoopCoder runs its layers twice: the second loop attends to the first loop's keys through
``attn[0](q, None, None)``. The reference attention keeps the last key/value each layer was given, so both
sides read what the layer wrote; before, the forward failed on both (``'NoneType' object has no attribute
'reshape'``), and iquest_loopcoder, a "0 left" file, failed a level.
"""

from __future__ import annotations

from analysis_helpers import verified_to_match


def test_a_loop_that_reads_an_earlier_loops_keys_runs_and_matches_upstream(tmp_path):
    report = verified_to_match(tmp_path, "iquest_loopcoder")
    assert report["max_abs_logit_diff"] <= 1e-3, report
