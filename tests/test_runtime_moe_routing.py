"""The harness's stand-ins for the compiled MoE routing kernels on CPU (``_runtime_moe_ops``, both venvs;
``_runtime_moe``, upstream's): ``topk_softmax`` / ``topk_sigmoid`` of ``_moe_C`` and LongCat's Triton
``zero_experts_compute_triton``,
which the CUDA wheel cannot run here. Checked against the pinned vLLM's own torch routing (0.13.0's
``fused_topk_bias`` and ``grouped_topk`` are plain torch: the kernels' semantics in code) and against a
per-token loop; then real models whose routing upstream's CPU router lacks match upstream vLLM."""

from __future__ import annotations

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
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
from _runtime_moe import zero_experts_reference
from _runtime_moe_ops import topk_reference
from vllm.model_executor.layers.fused_moe.fused_moe import fused_topk_bias, grouped_topk

torch.manual_seed(0)
out = {}
gating, bias = torch.randn(6, 8), torch.randn(8) * 0.3
for renorm in (False, True):
    w, i = torch.empty(6, 3), torch.empty(6, 3, dtype=torch.int32)
    topk_reference(w, i, None, gating, renorm, bias)
    pw, pi = fused_topk_bias(torch.zeros(6, 4), gating, bias, 3, renorm)
    order, porder = i.long().sort(-1)[1], pi.long().sort(-1)[1]
    out[f"softmax_bias_{renorm}"] = [torch.equal(i.long().gather(1, order), pi.long().gather(1, porder)),
                                     float((w.gather(1, order) - pw.gather(1, porder)).abs().max())]
    # sigmoid with a correction bias and a scaling factor: the pinned grouped_topk over one group
    w, i = torch.empty(6, 3), torch.empty(6, 3, dtype=torch.int32)
    topk_reference(w, i, None, gating, renorm, bias, "sigmoid", 2.5)
    gw, gi = grouped_topk(torch.zeros(6, 4), gating, 3, renorm, 1, 1, "sigmoid", 2.5, bias)
    order, gorder = i.long().sort(-1)[1], gi.long().sort(-1)[1]
    out[f"sigmoid_bias_{renorm}"] = [torch.equal(i.long().gather(1, order), gi.long().gather(1, gorder)),
                                     float((w.gather(1, order) - gw.gather(1, gorder)).abs().max())]
# zero experts (ids >= 4 of 6): their share of each token's hidden state, and the slots emptied in place
ids = torch.tensor([[0, 4], [5, 4], [1, 2]])
scales = torch.tensor([[0.5, 0.25], [0.125, 1.0], [0.75, 0.25]])
h = torch.randn(3, 16)
want = torch.stack([h[0] * 0.25, h[1] * 1.125, h[2] * 0.0])
got = zero_experts_reference(ids, scales, 4, "identity", h)
out["zero"] = float((got - want).abs().max())
out["zero_ids"], out["zero_scales"] = ids.tolist(), scales.tolist()
try:
    zero_experts_reference(ids, scales, 4, "copy", h)
except NotImplementedError as exc:
    out["other_type"] = str(exc)
print(json.dumps(out))
"""


@pytest.mark.skipif(not PINNED_PY.exists(), reason="needs the pinned venv (MMF_PINNED_VENV, vLLM 0.13.0)")
def test_routing_stand_ins_compute_what_the_pinned_torch_routing_computes():
    got = run_script_json(PINNED_PY, SCRIPT)
    for key in ("softmax_bias_False", "softmax_bias_True", "sigmoid_bias_False", "sigmoid_bias_True"):
        same_ids, diff = got[key]
        assert same_ids is True and diff < 1e-6, (key, got[key])
    assert got["zero"] < 1e-6
    assert got["zero_ids"] == [[0, 0], [0, 0], [1, 2]]  # zero-expert slots emptied for the real experts
    assert got["zero_scales"] == [[0.5, 0.0], [0.0, 0.0], [0.75, 0.25]]
    assert "identity only" in got["other_type"]


# LongCat: zero experts and a softmax router with a correction bias outside upstream's CPU router;
# Step-3.5: sigmoid + bias, which upstream's CPU router asserts against; Ernie 4.5 MoE: softmax + bias,
# which upstream's CPU router silently drops (0.58 off before): each routed as upstream's GPU router does
@pytest.mark.skipif(not (PINNED_PY.exists() and REFERENCE_PY.exists() and UPSTREAM_SRC.is_dir()),
                    reason="needs both venvs (MMF_PINNED_VENV, MMF_REFERENCE_VENV) and the upstream source")
# DBRX: upstream vLLM 0.33.0's own load_weights cannot load it (KeyError on experts.w13_weight), and
# transformers 5's DbrxAttention raises on clip_qkv=None; with the released configs' clip_qkv=8 (CHECKPOINT_FIELDS)
# the Hugging Face class is the reference
@pytest.mark.parametrize("model,reference", [("longcat_flash", "vllm-0.33.0"), ("step3p5", "vllm-0.33.0"),
                                             ("ernie45_moe", "vllm-0.33.0"), ("dbrx", "transformers-5")])
def test_biased_and_zero_expert_routing_matches_upstream_vllm(tmp_path, model, reference):
    (arch,) = apply_and_verify_run(tmp_path, model, "--all-archs")
    assert arch["levels"]["load"]["status"] == "pass", arch["levels"]
    assert arch["levels"]["match"]["status"] == "pass", (arch["levels"], arch["first_error"])
    assert arch["reference"].startswith(reference)  # upstream vLLM itself where it can run the model


PINNED_ROUTER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
import vllm.platforms as platforms
from vllm.platforms.cpu import CpuPlatform

platforms._current_platform = CpuPlatform()
from vllm.model_executor.layers.fused_moe import cpu_fused_moe
from vllm.model_executor.layers.fused_moe.fused_moe import fused_topk_bias

torch.manual_seed(0)
x, logits = torch.randn(6, 8), torch.randn(6, 4)
bias = torch.tensor([0.0, 5.0, 0.0, 5.0])  # steers every token to experts 1 and 3
sel = lambda **kw: cpu_fused_moe.select_experts(hidden_states=x, router_logits=logits, top_k=2, use_grouped_topk=False,
                                                renormalize=True, **kw)
before = sel(e_score_correction_bias=bias)
plain = sel()
import _runtime_moe

out = {"patched": _runtime_moe.install()}
got = sel(e_score_correction_bias=bias)
want = fused_topk_bias(hidden_states=x, gating_output=logits, e_score_correction_bias=bias, topk=2, renormalize=True)
out["before_ignored_bias"] = torch.equal(before[1], plain[1])
out["ids"] = sorted({int(i) for i in got[1].flatten()})
out["same_as_gpu"] = torch.equal(got[1], want[1]) and torch.equal(got[0], want[0])
scaled = sel(e_score_correction_bias=bias, routed_scaling_factor=2.5)
out["scaled"] = bool(torch.allclose(scaled[0], want[0] * 2.5))
after_plain = sel()
out["unbiased_untouched"] = torch.equal(after_plain[0], plain[0]) and torch.equal(after_plain[1], plain[1])
print(json.dumps(out))
"""


# ERNIE-4.5-VL's language model is the pinned vLLM's own (ernie45_vl_moe.py), whose experts route with a correction
# bias the pinned CPU router dropped while its GPU router applies it: max |Δlogit| 1.04 against upstream, 0 after
@pytest.mark.skipif(not PINNED_PY.exists(), reason="needs the pinned venv (MMF_PINNED_VENV, vLLM 0.13.0)")
def test_the_pinned_cpu_router_routes_a_biased_layer_as_its_gpu_router_does():
    got = run_script_json(PINNED_PY, PINNED_ROUTER)
    assert "vllm.model_executor.layers.fused_moe.cpu_fused_moe.select_experts" in got["patched"]
    assert got["before_ignored_bias"] is True  # the pinned CPU router's own top-k never saw the bias
    assert got["ids"] == [1, 3] and got["same_as_gpu"] is True and got["scaled"] is True
    assert got["unbiased_untouched"] is True
