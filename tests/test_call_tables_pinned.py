"""The P7 call tables on the real versions: a re-pointed call returns on vLLM 0.13.0 what upstream's
call returns on upstream vLLM, over every dtype setting. Skips without $MMF_PINNED_VENV and
$MMF_REFERENCE_VENV (a venv with upstream vLLM)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path

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


def _methods(venv: str, rel: str, cls: str) -> dict[str, str]:
    path = next(Path(venv).glob(f"lib/python3*/site-packages/vllm/{rel}"))
    tree = ast.parse(path.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return {f.name: ast.unparse(f) for f in node.body if isinstance(f, ast.FunctionDef)}


def test_mrope_positions_factor_drop_keeps_every_position_upstream_has():
    """P6 safe_drop_when get_rope(mrope_positions_factor=): the factor only sizes the cos/sin cache
    (upstream max_position * factor, the pinned MRotaryEmbedding always * 4); each row is a function of
    its position by the same code on both versions, so the rows upstream has are the pinned rows."""
    pinned, upstream = os.environ.get("MMF_PINNED_VENV"), os.environ.get("MMF_REFERENCE_VENV")
    if not pinned or not upstream:
        pytest.skip("needs $MMF_PINNED_VENV (vLLM 0.13.0) and $MMF_REFERENCE_VENV (upstream vLLM)")
    rel = "model_executor/layers/rotary_embedding/"
    ours, theirs = (_methods(v, rel + "mrope.py", "MRotaryEmbedding") for v in (pinned, upstream))
    for name in ("_compute_inv_freq", "_compute_cos_sin_cache"):
        assert ours[name] == theirs[name]
        base = [_methods(v, rel + "base.py", "RotaryEmbeddingBase")[name] for v in (pinned, upstream)]
        assert base[0] == base[1]
    assert "self.cache_max_position_num = max_position_embeddings * 4" in ours["__init__"]
    assert "self.cache_max_position_num = max_position_embeddings * positions_factor" in theirs["__init__"]
