"""Routing weights on the experts' input (Llama 4's top-1 MoE, ``apply_router_weight_on_input``) on CPU.

The pinned vLLM's CPU experts (0.13.0's ``cpu_fused_moe.CPUFusedMOE``) assert against the flag; its GPU path
(``fused_experts_impl``: the Triton kernel scales the first GEMM's output by the router weight, not the
second's) serves it. The harness's stand-in (``_runtime_moe.weight_on_input_reference``) computes that on
the pinned side, as upstream's CPU experts are computed in torch on the reference side. Checked here against
the pinned CPU experts' own code (on the input scaled by the weight, each expert then weighted 1) and a
per-token loop in the kernel's order; then mllama4, whose forward was "skipped: needs GPU
(cpu_fused_moe.py:240 assert not apply_router_weight_on_input)", matches upstream vLLM."""

from __future__ import annotations

import pytest
from analysis_helpers import (
    PINNED_VENV,
    REFERENCE_PY,
    UPSTREAM_SRC,
    apply_and_verify_run,
    run_script_json,
)

PINNED_PY = PINNED_VENV / "bin" / "python"

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
import torch.nn.functional as F
import vllm.platforms as platforms
from vllm.platforms.cpu import CpuPlatform

platforms._current_platform = CpuPlatform()  # as the harness does (0.13 picks CPU only for CPU builds)
from vllm.model_executor.layers.fused_moe import cpu_fused_moe
from vllm.model_executor.models.llama4 import Llama4MoE

torch.manual_seed(0)
E, H, I, T = 4, 16, 8, 9
route = Llama4MoE.custom_routing_function  # the pinned Llama 4 router: top-1 logit, sigmoid weight


def layer(bias):
    m = torch.nn.Module()
    m.w13_weight = torch.nn.Parameter(torch.randn(E, 2 * I, H) * 0.3, requires_grad=False)
    m.w2_weight = torch.nn.Parameter(torch.randn(E, H, I) * 0.3, requires_grad=False)
    if bias:
        m.w13_bias = torch.nn.Parameter(torch.randn(E, 2 * I), requires_grad=False)
        m.w2_bias = torch.nn.Parameter(torch.randn(E, H), requires_grad=False)
    return m, cpu_fused_moe.CPUFusedMOE(m)


def call(moe, m, x, logits, top_k, on_input, routing=route):
    return moe(m, x, False, top_k, logits, False, custom_routing_function=routing, global_num_experts=E,
               apply_router_weight_on_input=on_input)


def loop(m, x, logits, top_k, bias):
    # per token and routed expert, the Triton kernel's order: (x W13^T + b13) * weight, act, W2, summed
    out = torch.zeros(T, H)
    vals, ids = torch.topk(logits, top_k, dim=-1)
    for t in range(T):
        for v, e in zip(vals[t], ids[t]):
            h = F.linear(x[t], m.w13_weight[e], m.w13_bias[e] if bias else None) * torch.sigmoid(v)
            g, u = h.chunk(2)
            out[t] += F.linear(F.silu(g) * u, m.w2_weight[e], m.w2_bias[e] if bias else None)
    return out


def unit(hidden_states, gating_output, topk, renormalize):
    _, ids = route(hidden_states, gating_output, topk, renormalize)
    return torch.ones(ids.shape), ids


x, logits = torch.randn(T, H), torch.randn(T, E)
out = {}
m, moe = layer(False)
unweighted = call(moe, m, x, logits, 1, False)
try:
    call(moe, m, x, logits, 1, True)
    out["before"] = "ran"
except AssertionError:
    out["before"] = "AssertionError"
import _runtime_moe

out["patched"] = _runtime_moe.install()
out["unchanged_without_flag"] = torch.equal(call(moe, m, x, logits, 1, False), unweighted)
got = call(moe, m, x, logits, 1, True)
out["top1_vs_loop"] = float((got - loop(m, x, logits, 1, False)).abs().max())
w = torch.sigmoid(logits.max(dim=-1).values).unsqueeze(-1)
out["top1_vs_pinned_cpu_on_scaled_input"] = float((got - call(moe, m, x * w, logits, 1, False, unit)).abs().max())
out["top1_vs_output_weighting"] = float((got - unweighted).abs().max())
mb, moeb = layer(True)
out["bias_top2_vs_loop"] = float((call(moeb, mb, x, logits, 2, True) - loop(mb, x, logits, 2, True)).abs().max())
print(json.dumps(out))
"""


@pytest.mark.skipif(not PINNED_PY.exists(), reason="needs the pinned venv (MMF_PINNED_VENV, vLLM 0.13.0)")
def test_weight_on_input_stand_in_computes_what_the_pinned_gpu_experts_compute():
    got = run_script_json(PINNED_PY, SCRIPT)
    assert got["before"] == "AssertionError"  # the pinned CPU experts refuse the flag
    assert "vllm.model_executor.layers.fused_moe.cpu_fused_moe.CPUFusedMOE.__call__" in got["patched"]
    assert got["unchanged_without_flag"] is True  # every other MoE runs the pinned code as it is
    assert got["top1_vs_loop"] < 1e-5 and got["top1_vs_pinned_cpu_on_scaled_input"] < 1e-5, got
    assert got["bias_top2_vs_loop"] < 1e-5, got  # the bias before the weight, as the kernel adds it
    assert got["top1_vs_output_weighting"] > 0.1, got  # the flag is not the output-weighted path renamed


def _levels(arch):
    return {lv: s["status"] for lv, s in arch["levels"].items()}


FIVE = {"import": "pass", "construct": "pass", "load": "pass", "forward": "pass", "match": "pass"}


@pytest.mark.skipif(not (PINNED_PY.exists() and REFERENCE_PY.exists() and UPSTREAM_SRC.is_dir()),
                    reason="needs both venvs (MMF_PINNED_VENV, MMF_REFERENCE_VENV) and the upstream source")
def test_llama4_multimodal_moe_matches_upstream_vllm(tmp_path):
    (arch,) = apply_and_verify_run(tmp_path, "mllama4", "--all-archs")
    assert _levels(arch) == FIVE, (arch["levels"], arch["first_error"])
    assert arch["reference"] == "vllm-0.33.0"


# InternS2MobiusMTP failed forward at da6f98e (the image path asked the draft's get_language_model(), None);
# 8044ae0 gives a draft no image: both architectures now compute upstream vLLM's logits
@pytest.mark.skipif(not (PINNED_PY.exists() and REFERENCE_PY.exists() and UPSTREAM_SRC.is_dir()),
                    reason="needs both venvs (MMF_PINNED_VENV, MMF_REFERENCE_VENV) and the upstream source")
def test_interns2_mobius_and_its_draft_match_upstream_vllm(tmp_path):
    archs = {a["architecture"]: a for a in apply_and_verify_run(tmp_path, "interns2_mobius", "--all-archs")}
    assert set(archs) == {"InternS2MobiusForConditionalGeneration", "InternS2MobiusMTP"}
    for arch in archs.values():
        assert _levels(arch) == FIVE, (arch["levels"], arch["first_error"])
        assert arch["reference"] == "vllm-0.33.0"


def test_the_tiny_config_keeps_llama4s_top_1_router():
    # upstream vLLM implements weights on the experts' input for top-1 only (its prepare step asserts): a tiny
    # Llama 4 routed top-2 was a model upstream cannot run, and match fell back to transformers, text only
    from flagos_migrate.verify.runtime_tiny import EXPERTS, EXPERTS_PER_TOKEN, tiny_config

    llama4 = tiny_config({"model_type": "llama4", "text_config": {
        "model_type": "llama4_text", "num_experts_per_tok": 1, "num_local_experts": 16, "hidden_size": 5120}})
    assert llama4["text_config"]["num_experts_per_tok"] == 1
    assert llama4["text_config"]["num_local_experts"] == EXPERTS  # the other sizes shrink as ever
    mixtral = tiny_config({"model_type": "mixtral", "num_experts_per_tok": 1, "num_local_experts": 8})
    assert mixtral["num_experts_per_tok"] == EXPERTS_PER_TOKEN != 1  # only the table's types keep theirs
