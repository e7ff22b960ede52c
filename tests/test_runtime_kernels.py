"""The harness's torch references for GPU-only kernels, installed alike in the pinned and the upstream venv
(``verify/_runtime_kernels.py``, ``verify/_runtime_moe_ops.py``), each checked against another formulation:

- ``_moe_C::topk_softmax`` (MiniCPM's MoE calls ``fused_topk`` itself): against the pinned vLLM's CPU router
  (``cpu_fused_moe.select_experts``: a softmax over the top-k logits, or ``exp(logit - logsumexp)``), with the
  kernel's contract beyond it: descending order, a tie to the lower expert, the ids' own dtype, and
  ``token_expert_indices[t, j] = j * tokens + t`` (the kernel's ``source_rows``);
- ``_C::silu_and_mul`` / ``gelu_and_mul``: ``act(x) * y`` over the halves;
- AliceAI's ``attn_res`` (its Triton ``_attn_res_kernel``): against a per-token loop with the kernel's online
  softmax over the sources (running max and rescaled denominator);
- Qwen3-VL's ``triton_pos_embed_interpolate``: against upstream's own ``pos_embed_interpolate_native`` (read
  from the upstream source, run with torch only);
- which functions the table recognises (defined there, a migrated copy, a vendored copy) and the split conv1d
  checkpoint layout (``checkpoint_layouts.even_parts``)."""

from __future__ import annotations

import ast
import sys

import pytest
from analysis_helpers import PINNED_VENV, UPSTREAM_SRC, verified_to_match

from tests.worker_helpers import VERIFY
from tests.worker_helpers import run_in_worker as _run

PRELUDE = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
torch.manual_seed(0)
'''


def test_topk_softmax_reference_is_the_pinned_cpu_router_and_the_kernels_contract():
    out = _run(PRELUDE + '''
from _runtime_moe_ops import topk_softmax_reference, act_and_mul_reference, ACT_AND_MUL
T, E, K = 7, 8, 3
gating = torch.randn(T, E)
res = {}
for renorm in (False, True):
    for dtype in (torch.int32, torch.int64):
        w, i, tei = torch.empty(T, K), torch.empty(T, K, dtype=dtype), torch.empty(T, K, dtype=torch.int32)
        topk_softmax_reference(w, i, tei, gating, renorm)
        # the pinned vLLM's CPU router (cpu_fused_moe.select_experts, softmax): another formulation
        lv, li = torch.topk(gating, k=K, dim=-1)
        want = lv.softmax(-1) if renorm else (lv - gating.logsumexp(-1, keepdim=True)).exp()
        res[f"{renorm}_{dtype}"] = [torch.equal(i.long(), li), float((w - want).abs().max()), str(i.dtype),
                                    torch.equal(tei, (torch.arange(K)[None] * T + torch.arange(T)[:, None]).int()),
                                    bool((w[:, :-1] >= w[:, 1:]).all())]
tie = torch.tensor([[0.0, 1.0, 1.0, 0.5, 1.0]])
w, i, tei = torch.empty(1, 2), torch.empty(1, 2, dtype=torch.int32), torch.empty(1, 2, dtype=torch.int32)
topk_softmax_reference(w, i, tei, tie, False)
res["tie"] = i.tolist()
try:
    topk_softmax_reference(w, i, tei, tie, False, None, torch.tensor([True]))
except NotImplementedError as exc:
    res["padding"] = str(exc)
x = torch.randn(5, 12)
for name, act in (("silu_and_mul", torch.nn.functional.silu), ("gelu_and_mul", torch.nn.functional.gelu)):
    o = torch.empty(5, 6)
    act_and_mul_reference(ACT_AND_MUL[name])(o, x)
    res[name] = float((o - act(x[:, :6]) * x[:, 6:]).abs().max())
print(json.dumps(res))
''')
    for key, (same_ids, diff, dtype, tei, descending) in ((k, v) for k, v in out.items() if "_torch." in k):
        assert same_ids and diff < 1e-6 and tei and descending, (key, out[key])
        assert dtype == key.split("_", 1)[1], (key, dtype)
    assert out["tie"] == [[1, 2]]  # equal scores: the lower expert first, as the kernel's argmax
    assert "is_padding" in out["padding"]
    assert out["silu_and_mul"] < 1e-6 and out["gelu_and_mul"] < 1e-6


def test_attn_res_reference_equals_the_kernels_online_softmax_per_token():
    out = _run(PRELUDE + '''
import math
from _runtime_kernels import attn_res_reference
M, R, D = 4, 5, 16
res = {}
for num_blocks, with_delta, write, out_norm in ((0, False, -1, False), (3, False, -1, False), (3, True, 4, True),
                                              (5, False, -1, True)):
    prefix, blocks = torch.randn(M, D), torch.randn(M, R, D)
    delta = torch.randn(M, D) if with_delta else None
    nw, qk, onw = torch.rand(D) + 0.5, torch.randn(D), torch.rand(D) + 0.5
    p0, b0 = prefix.clone(), blocks.clone()
    got = attn_res_reference(prefix, delta, blocks, nw, qk, onw if out_norm else None, num_blocks, write, 1e-6, 1e-5)
    want = torch.empty(M, D)
    for r in range(M):
        p = p0[r] + (delta[r] if with_delta else 0)
        if num_blocks == 0:
            mixed = p
        else:
            m, den, acc = -math.inf, 0.0, torch.zeros(D)
            for s in range(num_blocks + 1):
                v = p if s == num_blocks else b0[r, s]
                logit = float((v * nw * qk).sum()) / math.sqrt(float((v * v).mean()) + 1e-6)
                new = max(m, logit)
                den = den * math.exp(m - new) + math.exp(logit - new)
                acc = acc * math.exp(m - new) + math.exp(logit - new) * v
                m = new
            mixed = acc / den
        if out_norm:
            mixed = mixed / math.sqrt(float((mixed * mixed).mean()) + 1e-5) * onw
        want[r] = mixed
    written = torch.equal(blocks[:, write], p0 + delta) if write >= 0 else torch.equal(blocks, b0)
    res[f"{num_blocks}_{with_delta}_{write}_{out_norm}"] = [float((got - want).abs().max()), written,
                                                            torch.equal(prefix, p0 + delta) if with_delta else
                                                            torch.equal(prefix, p0)]
print(json.dumps(res))
''')
    for key, (diff, written, prefix_updated) in out.items():
        assert diff < 1e-5 and written and prefix_updated, (key, out[key])


def _native_source():
    path = UPSTREAM_SRC / "vllm" / "model_executor" / "models" / "qwen3_vl.py"
    tree = ast.parse(path.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "pos_embed_interpolate_native")
    return ast.get_source_segment(path.read_text(), fn)


@pytest.mark.skipif(not UPSTREAM_SRC.is_dir(), reason="needs the upstream source (~/.cache/mmf/src/vllm-0.33.0)")
def test_pos_embed_reference_equals_upstreams_native_interpolation():
    out = _run(PRELUDE + '''
from _runtime_kernels import pos_embed_interpolate_reference
ns = {"torch": torch}
exec(sys.argv[2], ns)
native = ns["pos_embed_interpolate_native"]
res = {}
for n, t, h, w, m in ((6, 1, 4, 6, 2), (5, 2, 8, 4, 2), (4, 1, 2, 2, 2), (7, 3, 6, 9, 3)):
    e = torch.randn(n * n, 10)
    for dtype in (torch.float32, torch.bfloat16):
        got = pos_embed_interpolate_reference(e.to(dtype), t, h, w, n, m, dtype)
        want = native(e.to(dtype), t, h, w, n, m, dtype)
        res[f"{n}_{h}x{w}_{dtype}"] = [list(got.shape) == list(want.shape), float((got.float() - want.float()).abs().max())]
print(json.dumps(res))
''', _native_source())
    for key, (shape, diff) in out.items():
        assert shape and diff < (2e-2 if "bfloat16" in key else 1e-5), (key, out[key])


def test_the_table_recognises_the_function_its_migrated_copy_and_a_vendored_copy():
    sys.path.insert(0, str(VERIFY))
    try:
        import types

        from _runtime_kernels import defined_by
        from checkpoint_layouts import even_parts
    finally:
        sys.path.remove(str(VERIFY))

    made = []

    def fn_in(module, name, doc=None):
        mod = types.ModuleType(module, doc)
        sys.modules[module] = mod
        made.append(module)
        exec(f"def {name}():\n    pass\n", mod.__dict__)
        return mod.__dict__[name]

    path = "vllm.models.kimi_k3.nvidia.ops.attn_res"
    try:
        assert defined_by(fn_in(path, "attn_res"), path, "attn_res")
        assert defined_by(fn_in("vllm_fl.compat.models_kimi_k3_nvidia_ops_attn_res", "attn_res",
                                f"Vendored from upstream vLLM (version 0.33.0): {path}.\n\nmore"), path, "attn_res")
        assert not defined_by(fn_in("vllm_fl.compat.other_ops", "attn_res",
                                    "Vendored from upstream vLLM (version 0.33.0): vllm.other.attn_res_x.\n"),
                              path, "attn_res")
        assert not defined_by(fn_in("somewhere.else", "attn_res"), path, "attn_res")
        assert not defined_by(fn_in(path + "_2", "other"), path, "attn_res")
    finally:
        for name in made:
            sys.modules.pop(name, None)
    table = {"conv1d": ("q_conv1d", "k_conv1d", "v_conv1d")}
    assert even_parts("model.layers.0.linear_attn.conv1d.weight", (12, 1, 4), table) == [
        ("model.layers.0.linear_attn.q_conv1d.weight", 0, 4), ("model.layers.0.linear_attn.k_conv1d.weight", 4, 4),
        ("model.layers.0.linear_attn.v_conv1d.weight", 8, 4)]
    assert even_parts("model.layers.0.linear_attn.conv1d.weight", (10, 1, 4), table) is None  # uneven
    assert even_parts("model.layers.0.self_attn.qkv_proj.weight", (12, 8), table) is None


@pytest.mark.skipif(not PINNED_VENV.exists(), reason="needs the pinned venv (MMF_PINNED_VENV, vLLM 0.13.0)")
def test_minicpm_routes_through_the_topk_softmax_reference_and_matches_upstream(tmp_path):
    """MiniCPM's MoE calls ``fused_topk`` and ``fused_experts`` itself: forward "skipped: needs GPU (compiled op
    _moe_C::topk_softmax)" before; with the references on both sides, every level passes against upstream."""
    report = verified_to_match(tmp_path, "minicpm")
    used = next(n for n in report["notes"] if n.startswith("GPU-only kernels computed by torch references"))
    assert "_custom_ops.topk_softmax" in used and "torch.ops._C.silu_and_mul" in used, used


@pytest.mark.skipif(not PINNED_VENV.exists(), reason="needs the pinned venv (MMF_PINNED_VENV, vLLM 0.13.0)")
def test_alice_ai_loads_its_split_conv_layout_runs_attn_res_in_torch_and_matches_upstream(tmp_path):
    """AliceAI: load "skipped: nothing named the checkpoint" before (upstream's own load_weights reads the fused
    conv1d as q/k/v_conv1d shards: layout conv1d-split-qkv), then its Triton attn_res (the torch reference on
    both sides) and the pinned Qwen3NextAttention.forward contract (upstream's qwen3_next comes along)."""
    report = verified_to_match(tmp_path, "alice_ai")
    assert "(conv1d-split-qkv: alice_ai.py" in report["checkpoint"], report["checkpoint"]
    used = next(n for n in report["notes"] if n.startswith("GPU-only kernels computed by torch references"))
    assert "attention residual" in used, used
