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
from flagos_migrate.catalog.tables import CALLEE_RENAMES, REQUIRED_VALUES, UNSET_DEFAULTS
from flagos_migrate.verify.import_probe import python_of

from tests.analysis_helpers import run_script_json

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


PINNED_SETTLED = '''
import json
import os
import sys
os.environ["VLLM_USE_V2_MODEL_RUNNER"] = "1"  # asks for V2: 0.13.0's CPU worker still builds its V1 runner
import torch
from torch import nn
import vllm.platforms as platforms
from vllm.platforms.cpu import CpuPlatform
platforms._current_platform = CpuPlatform()  # as verify --run forces it (0.13.0 picks it only for CPU builds)
from vllm.config import VllmConfig, set_current_vllm_config
from vllm.compilation.decorators import support_torch_compile
from vllm.attention.layer import Attention
from vllm.attention.selector import get_attn_backend
from vllm.config import DeviceConfig

value, default = sys.argv[2], sys.argv[3]  # the P7 and P9 table entries
out = {}
cfg = VllmConfig(device_config=DeviceConfig(device="cpu"))
cfg.cache_config.block_size = 128  # what the CPU platform fills in before any model is built
with set_current_vllm_config(cfg):
    # P7 required_values: get_attn_backend(..., block_size=<table value>) is the backend 0.13.0's own Attention picks
    from vllm.config import get_current_vllm_config  # noqa: F401 (the table value's import)
    ours = get_attn_backend(64, torch.float32, "auto", block_size=eval(value))
    layer = Attention(2, 64, 0.125, num_kv_heads=2, cache_config=cfg.cache_config, prefix="l.attn")
    out["backend"] = [ours.get_name(), layer.attn_backend.get_name(), eval(value)]
    try:
        get_attn_backend(64, torch.float32, "auto")
        out["without"] = "ok"
    except TypeError as exc:
        out["without"] = type(exc).__name__

    # P7 keyword-only compile: positionals raise on the pinned wrapper; by name they reach __init__ as upstream's
    @support_torch_compile(dynamic_arg_dims={"x": 0})
    class Layer(nn.Module):
        def __init__(self, config, quant_config=None, prefix: str = ""):
            super().__init__()
            self.seen = (config, quant_config, prefix)

        def forward(self, x):
            return x

    try:
        Layer("cfg", quant_config=None, prefix="p")
        out["positional"] = "ok"
    except TypeError:
        out["positional"] = "TypeError"
    out["by_name"] = list(Layer(config="cfg", quant_config=None, prefix="p").seen)

    # P9 unset default: the pinned VllmConfig has no use_v2_model_runner; the default on this CPU is False (0.13.0's
    # CPUWorker always builds CPUModelRunner, a V1 runner)
    out["has_attr"] = hasattr(cfg, "use_v2_model_runner")
    out["v2"] = eval(default)
print(json.dumps(out))
'''


def test_settled_pinned_calls_on_the_real_pinned_classes():
    """issue 11: hrm_text's get_attn_backend block size, paddleocr_vl/pixtral's compiled layers built by name and
    qwen3_dflash's use_v2_model_runner read, each on the real vLLM 0.13.0."""
    pinned = os.environ.get("MMF_PINNED_VENV")
    if not pinned:
        pytest.skip("needs $MMF_PINNED_VENV (vLLM 0.13.0)")
    out = run_script_json(python_of(pinned), PINNED_SETTLED, REQUIRED_VALUES[("get_attn_backend", "block_size")][0],
                          UNSET_DEFAULTS[("VllmConfig", "use_v2_model_runner")][0])
    ours, layers, block = out["backend"]
    assert ours == layers and block == 128
    assert out["without"] == "TypeError"  # the reason for the table entry
    assert out["positional"] == "TypeError" and out["by_name"] == ["cfg", None, "p"]
    # the env asks for V2, but 0.13.0's CPU worker never builds it
    assert out["has_attr"] is False and out["v2"] is False
