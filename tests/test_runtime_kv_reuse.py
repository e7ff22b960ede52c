"""The reference attention's KV cache within one prefill (``verify/_runtime_forward.py``).

vLLM's attention writes the keys/values it is given to its KV cache and a call without them reads that cache.
IQuest LoopCoder runs its layers twice: the second loop attends to the first loop's keys through
``attn[0](q, None, None)``. The reference attention keeps the last key/value each layer was given, so both
sides read what the layer wrote; before, the forward failed on both (``'NoneType' object has no attribute
'reshape'``), and iquest_loopcoder, a "0 left" file, failed a level.
"""

from __future__ import annotations

import os

import pytest
from analysis_helpers import UPSTREAM_SRC as UPSTREAM
from analysis_helpers import apply_and_verify_run


def test_a_loop_that_reads_an_earlier_loops_keys_runs_and_matches_upstream(tmp_path):
    if not os.environ.get("MMF_REFERENCE_VENV"):
        pytest.skip("needs MMF_REFERENCE_VENV (vLLM 0.33.0) to match against")
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream source at {UPSTREAM}")
    (report,) = apply_and_verify_run(tmp_path, "iquest_loopcoder")
    levels = {name: level["status"] for name, level in report["levels"].items()}
    assert levels == dict.fromkeys(("import", "construct", "load", "forward", "match"), "pass"), report
    assert report["reference"] == "vllm-0.33.0" and report["max_abs_logit_diff"] <= 1e-3, report
