"""Non-gated fused-MoE experts (``*_no_mul``: Nemotron-H's relu2) on CPU.

Neither vLLM runs them off a GPU: 0.13.0's ``FusedMoE`` refuses them at construction (layer.py:617) and its CPU
experts have no such activation; upstream's ``FusedMoEConfig.__post_init__`` refuses them (config.py:1410) and no
CPU experts class supports them. The harness computes them in torch on both sides (``_runtime_moe``: the pinned
layer built with its own non-gated weights, its CPU experts' call; upstream's refusal, its last statement, caught,
its CPU experts computed by ``experts_reference``), as both GPU paths define them. Checked here against a per-token
loop on the pinned CPU experts, and the refusal-is-last proof on synthetic functions and on upstream's own; then
nemotron_h_mtp, "skipped: needs GPU" at 959f5fe, matches upstream vLLM."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from analysis_helpers import (
    PINNED_VENV,
    REFERENCE_PY,
    UPSTREAM_SRC,
    apply_and_verify_run,
    run_script_json,
)

PINNED_PY = PINNED_VENV / "bin" / "python"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "flagos_migrate" / "verify"))

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
import torch.nn.functional as F
import vllm.platforms as platforms
from vllm.platforms.cpu import CpuPlatform

platforms._current_platform = CpuPlatform()
from vllm.model_executor.layers.fused_moe import cpu_fused_moe

torch.manual_seed(0)
E, H, I, T = 4, 16, 8, 9
m = torch.nn.Module()
m.w13_weight = torch.nn.Parameter(torch.randn(E, I, H) * 0.3, requires_grad=False)  # non-gated: up alone
m.w2_weight = torch.nn.Parameter(torch.randn(E, H, I) * 0.3, requires_grad=False)
moe = cpu_fused_moe.CPUFusedMOE(m)
x, logits = torch.randn(T, H), torch.randn(T, E)


def call(act, top_k=2):
    return moe(m, x, False, top_k, logits, True, global_num_experts=E, activation=act)


def loop(act):  # per token and routed expert: weight * down(act(up x)), as fused_experts_impl computes on a GPU
    w, ids = torch.topk(torch.softmax(logits, -1), 2, dim=-1)
    w = w / w.sum(-1, keepdim=True)
    out = torch.zeros(T, H)
    for t in range(T):
        for v, e in zip(w[t], ids[t]):
            out[t] += v * F.linear(act(F.linear(x[t], m.w13_weight[e])), m.w2_weight[e])
    return out


out = {}
try:
    call("relu2_no_mul")
    out["before"] = "ran"
except AssertionError:
    out["before"] = "AssertionError"
gated_m = torch.nn.Module()
gated_m.w13_weight = torch.nn.Parameter(torch.randn(E, 2 * I, H) * 0.3, requires_grad=False)
gated_m.w2_weight = m.w2_weight
gated = cpu_fused_moe.CPUFusedMOE(gated_m)
silu = gated(gated_m, x, False, 2, logits, True, global_num_experts=E)
import _runtime_moe

out["patched"] = _runtime_moe.install()
out["gated_unchanged"] = torch.equal(gated(gated_m, x, False, 2, logits, True, global_num_experts=E), silu)
out["relu2"] = float((call("relu2_no_mul") - loop(lambda h: torch.square(F.relu(h)))).abs().max())
out["silu"] = float((call("silu_no_mul") - loop(F.silu)).abs().max())
out["relu2_is_not_silu"] = float((call("relu2_no_mul") - call("silu_no_mul")).abs().max())
print(json.dumps(out))
"""


@pytest.mark.skipif(not PINNED_PY.exists(), reason="needs the pinned venv (MMF_PINNED_VENV, vLLM 0.13.0)")
def test_non_gated_stand_in_computes_what_the_pinned_gpu_experts_compute():
    got = run_script_json(PINNED_PY, SCRIPT)
    assert got["before"] == "AssertionError"  # the pinned CPU experts have no non-gated activation
    assert "vllm.model_executor.layers.fused_moe.layer.FusedMoE.__init__" in got["patched"]
    assert got["gated_unchanged"] is True  # every gated layer runs the pinned code as it is
    assert got["relu2"] < 1e-5 and got["silu"] < 1e-5, got
    assert got["relu2_is_not_silu"] > 1e-3, got


def test_a_refusal_is_caught_only_when_nothing_runs_after_it():
    from _runtime_moe import _refusal_is_last

    def last(self):
        self.a = 1
        if not self.gated:
            raise NotImplementedError("is_act_and_mul=False is supported only for CUDA")

    def more_after(self):
        if not self.gated:
            raise NotImplementedError("is_act_and_mul=False is supported only for CUDA")
        self.a = 1

    def other_error(self):
        if not self.gated:
            raise ValueError("no")

    assert _refusal_is_last(last)
    assert not _refusal_is_last(more_after) and not _refusal_is_last(other_error)


UPSTREAM_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from _runtime_moe import _refusal_is_last
from vllm.model_executor.layers.fused_moe.config import FusedMoEConfig

print(json.dumps({"last": _refusal_is_last(FusedMoEConfig.__post_init__)}))
"""


@pytest.mark.skipif(not REFERENCE_PY.exists(), reason="needs the reference venv (MMF_REFERENCE_VENV, vLLM 0.33.0)")
def test_upstreams_non_gated_refusal_is_the_last_statement_of_its_config():
    assert run_script_json(REFERENCE_PY, UPSTREAM_SCRIPT) == {"last": True}


FIVE = {"import": "pass", "construct": "pass", "load": "pass", "forward": "pass", "match": "pass"}


@pytest.mark.skipif(not (PINNED_PY.exists() and REFERENCE_PY.exists() and UPSTREAM_SRC.is_dir()),
                    reason="needs both venvs (MMF_PINNED_VENV, MMF_REFERENCE_VENV) and the upstream source")
def test_nemotron_h_mtp_matches_upstream_vllm(tmp_path):
    # 959f5fe: construct "skipped: needs GPU (is_act_and_mul=False is supported only for CUDA for now)"; then
    # forward "embed_tokens not initialized - must be shared from target model" (the draft builds it None)
    (arch,) = apply_and_verify_run(tmp_path, "nemotron_h_mtp")
    assert {lv: s["status"] for lv, s in arch["levels"].items()} == FIVE, (arch["levels"], arch["first_error"])
    assert arch["reference"] == "vllm-0.33.0"
    assert any("non-gated fused-MoE experts (relu2_no_mul)" in n for n in arch["notes"]), arch["notes"]
    assert any("model.embed_tokens, lm_head as None" in n for n in arch["notes"]), arch["notes"]
