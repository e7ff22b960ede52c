"""The stacked-weights back-port (P22) loads like upstream's AutoWeightsLoader (issue 13, class 4).

tests/fixtures/weights/loading_scenarios.py builds the same small model of real vLLM layers on
both versions and loads the same integer-valued checkpoint: q/k/v and gate/up stacking, Qwen3.5's
tuple shard id (0, 1, 2), a GPTQ leftover bias, a tied embedding's alias, a persistent buffer,
KV-cache scales under an fp8 config, and what LoRA and quantization configs see of the mapper.
upstream_loading_0.33.0.json is its record on upstream vLLM 0.33.0 (regenerate with the command in
the script's docstring). The pinned side runs with $MMF_PINNED_VENV and must produce the same
record; with $MMF_UPSTREAM_VENV (default ~/.cache/mmf/venv-vllm033) the record is re-made live.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from flagos_migrate.migrate import backports
from flagos_migrate.verify.import_probe import python_of

FIXTURES = Path(__file__).parent / "fixtures" / "weights"
SCRIPT = FIXTURES / "loading_scenarios.py"
RECORD = FIXTURES / "upstream_loading_0.33.0.json"
UPSTREAM_VENV = Path(os.environ.get("MMF_UPSTREAM_VENV", Path.home() / ".cache/mmf/venv-vllm033"))

# where a tuple does not start at shard 0 the back-port loads the shards it names; upstream 0.33.0's
# weight_loader numbers the pieces from 0 (enumerate over output_sizes[a:b+1]) and truncates them:
# (1, 2) over output sizes [2, 2, 3, 3] lands in rows 0-3 instead of rows 2-6. No model in the 0.33.0
# corpus uses such a tuple (the one tuple, Qwen3.5's, is (0, 1, 2)).
NOT_FROM_ZERO_UPSTREAM = [0.0, 4.0, 8.0, 12.0] + [-1.0] * 6
NOT_FROM_ZERO_INTENDED = [-1.0, -1.0, 0.0, 4.0, 8.0, 12.0, 16.0, -1.0, -1.0, -1.0]


def _run(python: str, side: str, out: Path) -> dict:
    cmd = [python, str(SCRIPT), side, str(out)] + ([str(backports.SOURCES)] if side == "pinned" else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=out.parent,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def pinned_record(tmp_path_factory) -> dict:
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    return _run(python_of(venv), "pinned", tmp_path_factory.mktemp("pinned") / "pinned.json")


def test_the_upstream_record_shows_each_behaviour_the_backport_must_match():
    up = json.loads(RECORD.read_text())
    assert not [k for k, v in up.items() if isinstance(v, dict) and "error" in v]
    qkvz = up["tuple_shard"]["state"]["inner.layers.0.linear_attn.in_proj_qkvz.weight"]
    assert [row[0] for row in qkvz] == [400.0, 404.0, 408.0, 412.0, 416.0, 420.0, 424.0, 500.0, 504.0, 508.0]
    assert "inner.layers.0.self_attn.o_proj.bias" not in up["gptq_bias"]["state"]
    assert "lm_head.weight" not in up["tied_alias"]["loaded"]
    assert up["tied_alias"]["state"]["inner.embed_tokens.weight"][0][0] == 1000.0
    assert up["buffer"]["state"]["inner.layers.0.mask"] == [5.0, 6.0]
    scales = {k: v for k, v in up["kv_scales"]["state"].items() if k.endswith("_scale")}
    assert scales == {"inner.layers.0.self_attn.attn.k_scale": 0.5, "inner.layers.0.self_attn.attn.v_scale": 0.25,
                      "inner.layers.1.self_attn.attn.k_scale": 0.125, "inner.layers.1.self_attn.attn.v_scale": -1.0}
    # consumers that only name modules keep the constituent name and keep names mapped to None
    assert up["naming_map"] == ["inner.layers.0.self_attn.q_proj", "inner.layers.0.gate_proj",
                                "inner.layers.0.x.dropped.y", "inner.layers.0.linear_attn.in_proj_qkv"]
    assert up["shards_not_from_zero"] == NOT_FROM_ZERO_UPSTREAM


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["stacked", "tuple_shard", "gptq_bias", "tied_alias", "buffer", "kv_scales",
                                      "full_map", "naming_map", "naming_dict"])
def test_the_backport_on_the_pinned_vllm_loads_as_upstream(pinned_record, scenario):
    up = json.loads(RECORD.read_text())
    assert pinned_record[scenario] == up[scenario]


@pytest.mark.slow
def test_a_tuple_not_from_zero_loads_the_shards_it_names(pinned_record):
    assert pinned_record["shards_not_from_zero"] == NOT_FROM_ZERO_INTENDED


@pytest.mark.slow
def test_the_record_is_what_upstream_does(tmp_path: Path):
    python = UPSTREAM_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no upstream vLLM venv at {UPSTREAM_VENV} (set MMF_UPSTREAM_VENV)")
    assert _run(str(python), "upstream", tmp_path / "upstream.json") == json.loads(RECORD.read_text())
