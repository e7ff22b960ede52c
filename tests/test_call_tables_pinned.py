"""The P7 call tables on the real versions: a re-pointed call returns on vLLM 0.13.0 what upstream's
call returns on upstream vLLM, over every dtype setting. Skips without $MMF_PINNED_VENV and
$MMF_REFERENCE_VENV (a venv with upstream vLLM)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from flagos_migrate.catalog.tables import CALLEE_RENAMES
from flagos_migrate.verify.import_probe import python_of

GRID = '''
import itertools, json, sys
import torch
from vllm.model_executor.layers.mamba.mamba_utils import MambaStateDtypeCalculator as C
out = {}
for model, cache, ssm in itertools.product(("bfloat16", "float16", "float32"), ("auto", "bfloat16", "float32"),
                                           ("auto", "bfloat16", "float32")):
    try:
        r = getattr(C, sys.argv[1])(getattr(torch, model), cache, ssm)
        out[f"{model}/{cache}/{ssm}"] = [str(d) for d in r]
    except Exception as exc:
        out[f"{model}/{cache}/{ssm}"] = type(exc).__name__
print(json.dumps(out))
'''


def _grid(venv: str, method: str) -> dict:
    proc = subprocess.run([python_of(venv), "-c", GRID, method], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_gated_delta_net_state_dtype_re_pointed_matches_upstream():
    pinned, upstream = os.environ.get("MMF_PINNED_VENV"), os.environ.get("MMF_REFERENCE_VENV")
    if not pinned or not upstream:
        pytest.skip("needs $MMF_PINNED_VENV (vLLM 0.13.0) and $MMF_REFERENCE_VENV (upstream vLLM)")
    new, _ = CALLEE_RENAMES[("gated_delta_net_state_dtype", 3)]
    theirs = _grid(upstream, "gated_delta_net_state_dtype")
    ours = _grid(pinned, new)
    assert ours == theirs and len(ours) == 27
    # and the pinned method of the old name is not it (the reason for the table entry)
    assert _grid(pinned, "gated_delta_net_state_dtype") != theirs


MROPE = '''
import inspect, json, sys, torch
from vllm.model_executor.layers.rotary_embedding.mrope import MRotaryEmbedding
# the cache rows each side builds: upstream factor 1 -> 64; the pinned __init__ always multiplies by 4
rows = 64 if sys.argv[1] == "upstream" else 64 * 4
rope = MRotaryEmbedding.__new__(MRotaryEmbedding)  # no CustomOp __init__: no vLLM config needed
rope.head_size, rope.rotary_dim, rope.base, rope.is_neox_style = 8, 8, 10000.0, True
rope.max_position_embeddings, rope.dtype = rows, torch.float32
cache = rope._compute_cos_sin_cache()
print(json.dumps({"rows": cache.shape[0], "first": cache[:64].tolist(),
                  "init_x4": "max_position_embeddings * 4" in inspect.getsource(MRotaryEmbedding.__init__)}))
'''


def test_mrope_positions_factor_drop_keeps_every_position_upstream_has():
    """P6 safe_drop_when get_rope(mrope_positions_factor=): upstream with factor 1 caches 64 rows, the
    pinned MRotaryEmbedding 256 (always 4x); the 64 upstream has are the same values."""
    pinned, upstream = os.environ.get("MMF_PINNED_VENV"), os.environ.get("MMF_REFERENCE_VENV")
    if not pinned or not upstream:
        pytest.skip("needs $MMF_PINNED_VENV (vLLM 0.13.0) and $MMF_REFERENCE_VENV (upstream vLLM)")
    out = {}
    for side, venv in (("upstream", upstream), ("pinned", pinned)):
        proc = subprocess.run([python_of(venv), "-c", MROPE, side], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["upstream"]["rows"], out["pinned"]["rows"]) == (64, 256)
    assert out["pinned"]["init_x4"] and not out["upstream"]["init_x4"]
    assert out["upstream"]["first"] == out["pinned"]["first"]
