"""P22 ``layernorm.py``: upstream's ``LayerNorm`` (a drop-in for ``nn.LayerNorm``, which upstream's OPT builds with
``elementwise_affine=``), against torch's ``nn.LayerNorm`` and upstream's own class, on the real vLLM 0.13.0 (and the
upstream venv). The runtime half skips without $MMF_PINNED_VENV."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest
from flagos_migrate.migrate import backports

from tests.analysis_helpers import CPU_ENV, REFERENCE_PY
from tests.test_backports import run_in_pinned_venv


def test_every_import_of_upstreams_layernorm_needs_the_backport():
    tree = ast.parse("from vllm.model_executor.layers.layernorm import LayerNorm, RMSNorm\n")
    assert backports.LAYERNORM in backports.needed([tree], pinned_lacks=lambda m, n: False)
    assert backports.needed([ast.parse("from vllm.model_executor.layers.layernorm import RMSNorm\n")],
                            pinned_lacks=lambda m, n: False) == []


# each case: (hidden, eps, elementwise_affine, bias); upstream's class and the back-port get the same
# parameter values and input, and must give the same output and parameter names
CASES = [(8, 1e-5, True, True), (8, 1e-6, False, True), (8, 1e-5, True, False)]

LN = '''
    import json
    from vllm.model_executor.layers.layernorm import LayerNorm as Pinned
    import layernorm

    CASES = %r
    out = {}
    for i, (h, eps, affine, bias) in enumerate(CASES):
        torch.manual_seed(i)
        ours = layernorm.LayerNorm(h, eps=eps, elementwise_affine=affine, bias=bias)
        ref = torch.nn.LayerNorm(h, eps=eps, elementwise_affine=affine, bias=bias)
        for p in ref.parameters():
            p.data.normal_()
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(3, h)
        out[str(i)] = {"names": sorted(n for n, _ in ours.named_parameters()),
                       "torch": torch.equal(ours(x), ref(x)), "y": ours(x).tolist()}
    # the pinned class of that name is another layer: it rejects the keyword
    try:
        Pinned(8, elementwise_affine=False)
        out["pinned_rejects"] = False
    except TypeError:
        out["pinned_rejects"] = True
    print("json", json.dumps(out))
''' % (CASES,)

UPSTREAM = '''
import json, sys, torch
from vllm.config import VllmConfig, set_current_vllm_config
from vllm.model_executor.layers.layernorm import LayerNorm
CASES = %r
out = {}
ctx = set_current_vllm_config(VllmConfig())  # a CustomOp reads the compilation config when built
ctx.__enter__()
for i, (h, eps, affine, bias) in enumerate(CASES):
    torch.manual_seed(i)
    layer = LayerNorm(h, eps=eps, elementwise_affine=affine, bias=bias)
    ref = torch.nn.LayerNorm(h, eps=eps, elementwise_affine=affine, bias=bias)
    for p in ref.parameters():
        p.data.normal_()
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(3, h)
    out[str(i)] = {"names": sorted(n for n, _ in layer.named_parameters()), "y": layer.forward_native(x).tolist()}
print(json.dumps(out))
''' % (CASES,)


@pytest.mark.slow
def test_upstreams_layernorm_on_the_real_pinned_vllm(tmp_path: Path):
    got = json.loads(run_in_pinned_venv(tmp_path, LN)["json"])
    assert got.pop("pinned_rejects") is True
    assert [got[str(i)]["names"] for i in range(3)] == [["bias", "weight"], [], ["weight"]]
    assert all(got[str(i)]["torch"] for i in range(3))
    if not REFERENCE_PY.exists():
        return
    proc = subprocess.run([str(REFERENCE_PY), "-c", UPSTREAM], capture_output=True, text=True, timeout=300,
                          env={**CPU_ENV, "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    for i in range(3):  # upstream's own class: the same parameters and, on the same values, the same output
        assert theirs[str(i)]["names"] == got[str(i)]["names"]
        assert theirs[str(i)]["y"] == got[str(i)]["y"]
