"""The harness's torch stand-ins for the compiled fused-MoE ops a model calls itself (``_runtime_moe_ops``):
``moe_align_block_size`` / ``moe_sum`` of ``_moe_C``, ``_C::rms_norm`` and the fused-MoE Triton kernel, which
neither CUDA wheel can run on this CPU; and upstream's swigluoai experts in ``_runtime_moe``. Checked in both
venvs against the ops' definitions (``moe_align_block_size``'s docstring example, a per-token loop in the
kernel's order, the RMS formula of ``layernorm_kernels.cu``, upstream's ``SwigluOAIAndMul.forward_native``);
then K2 Horizon (its MoVA value experts call those ops directly), forward "skipped: needs GPU (compiled op
_moe_C::moe_align_block_size)" before, matches upstream vLLM."""

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
import vllm.platforms as platforms
from vllm.platforms.cpu import CpuPlatform

platforms._current_platform = CpuPlatform()
from vllm import _custom_ops as ops
from vllm.model_executor.layers.fused_moe import fused_moe
from vllm.model_executor.layers.fused_moe.moe_align_block_size import moe_align_block_size

out = {}
topk = torch.tensor([[2, 3, 4], [1, 2, 4], [1, 3, 4], [1, 2, 3]], dtype=torch.int32)
try:
    moe_align_block_size(topk, 4, 5)
    out["before"] = "ran"
except Exception as exc:
    out["before"] = type(exc).__name__
import _runtime_moe_ops

out["patched"] = _runtime_moe_ops.install()
s, e, n = moe_align_block_size(topk, 4, 5)
out["doc_example"] = [s[:int(n)].tolist(), e[:int(n) // 4].tolist(), int(n)]
torch.manual_seed(0)
T, H, N, E, K = 7, 16, 12, 6, 2
x, w1 = torch.randn(T, H), torch.randn(E, N, H)
ids = torch.stack([torch.randperm(E)[:K] for _ in range(T)]).to(torch.int32)
wts = torch.rand(T, K)
want = torch.zeros(T, K, N)
for t in range(T):
    for k in range(K):
        want[t, k] = (x[t] @ w1[ids[t, k]].t()) * wts[t, k]
cfg = {"BLOCK_SIZE_M": 4}
launch = getattr(fused_moe, "dispatch_fused_moe_kernel", None) or fused_moe.invoke_fused_moe_kernel
for bm in (4, 16):
    cfg = {"BLOCK_SIZE_M": bm}
    s, e, n = moe_align_block_size(ids, bm, E)
    C = torch.empty(T, K, N)
    launch(x, w1, C, None, None, None, wts, s, e, n, True, K, cfg, None, False, False, False, False, False)
    out[f"gemm_bm{bm}"] = float((C - want).abs().max())
if hasattr(fused_moe, "_prepare_expert_assignment"):  # upstream: the unsorted (naive) path too
    s, e, n = fused_moe._prepare_expert_assignment(ids[:1], cfg, 1, K, 64, None)
    C = torch.empty(1, K, N)
    w64 = torch.randn(64, N, H)
    launch(x[:1], w64, C, None, None, None, wts[:1], s, e, n, True, K, cfg, None, False, False, False, False, False)
    ref = torch.stack([(x[0] @ w64[ids[0, k]].t()) * wts[0, k] for k in range(K)]).unsqueeze(0)
    out["naive_path"] = [s is None, float((C - ref).abs().max())]
summed = torch.empty(T, N)
ops.moe_sum(want, summed)
out["moe_sum"] = float((summed - want.sum(1)).abs().max())
y, g = torch.empty(T, H), torch.randn(H)
ops.rms_norm(y, x, g, 1e-6)
out["rms_norm"] = float((y - x / (x.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt() * g).abs().max())
try:
    launch(x, w1, C, None, torch.ones(1), None, wts, s, e, n, True, K, cfg, None, True, False, False, False, False)
except NotImplementedError as exc:
    out["quantized"] = str(exc)
if hasattr(fused_moe, "_prepare_expert_assignment"):  # upstream: swigluoai experts as its op defines them
    import types

    from _runtime_moe import experts_reference
    from vllm.model_executor.layers.activation import SwigluOAIAndMul

    w13, w2 = torch.randn(E, 2 * N, H) * 2, torch.randn(E, H, N)
    got = torch.empty(T, H)
    experts_reference(got, x, w13, w2, wts, ids, "swigluoai")
    act = types.SimpleNamespace(alpha=1.702, limit=7.0)
    ref = torch.zeros(T, H)
    for t in range(T):
        for k in range(K):
            e = int(ids[t, k])
            ref[t] += (SwigluOAIAndMul.forward_native(act, x[t] @ w13[e].t()) @ w2[e].t()) * wts[t, k]
    out["swigluoai"] = float((got - ref).abs().max())
print(json.dumps(out))
"""


def _run(python):
    return run_script_json(python, SCRIPT)


@pytest.mark.parametrize("venv", ["pinned", "reference"])
def test_moe_op_stand_ins_compute_what_the_ops_define(venv):
    python = PINNED_PY if venv == "pinned" else REFERENCE_PY
    if not python.exists():
        pytest.skip(f"needs the {venv} venv (MMF_PINNED_VENV / MMF_REFERENCE_VENV)")
    got = _run(python)
    assert got["before"] in ("NotImplementedError", "AttributeError")  # no CPU kernel for the compiled op
    launcher = "invoke_fused_moe_kernel" if venv == "pinned" else "invoke_fused_moe_triton_kernel"
    topk = ["vllm._custom_ops.topk_softmax"] + (["vllm._custom_ops.topk_sigmoid"] if venv == "reference" else [])
    assert got["patched"] == ["vllm._custom_ops.moe_align_block_size", "vllm._custom_ops.moe_sum",
                              "vllm._custom_ops.rms_norm", *topk,
                              f"vllm.model_executor.layers.fused_moe.fused_moe.{launcher}",
                              "torch.ops._C.silu_and_mul", "torch.ops._C.gelu_and_mul",
                              "torch.ops._C.gelu_tanh_and_mul"]
    # moe_align_block_size's own docstring example (its experts 1..4: num_experts 5, expert 0 empty)
    assert got["doc_example"] == [[3, 6, 9, 12, 0, 4, 10, 12, 1, 7, 11, 12, 2, 5, 8, 12], [1, 2, 3, 4], 16]
    assert got["gemm_bm4"] < 1e-5 and got["gemm_bm16"] < 1e-5, got
    assert got["moe_sum"] < 1e-6 and got["rms_norm"] < 1e-5, got
    assert "needs GPU" in got["quantized"] and "triton" in got["quantized"]  # quantized stays the GPU's
    if venv == "reference":
        assert got["naive_path"][0] is True and got["naive_path"][1] < 1e-5, got  # upstream's unsorted path
        assert got["swigluoai"] < 1e-4, got


@pytest.mark.skipif(not (PINNED_PY.exists() and REFERENCE_PY.exists() and UPSTREAM_SRC.is_dir()),
                    reason="needs both venvs (MMF_PINNED_VENV, MMF_REFERENCE_VENV) and the upstream source")
def test_k2_horizon_mova_experts_match_upstream_vllm(tmp_path):
    (arch,) = apply_and_verify_run(tmp_path, "k2_horizon", "--all-archs")
    assert {lv: s["status"] for lv, s in arch["levels"].items()} == {
        "import": "pass", "construct": "pass", "load": "pass", "forward": "pass", "match": "pass"}, \
        (arch["levels"], arch["first_error"])
    assert arch["reference"] == "vllm-0.33.0"


UNSORTED = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import torch
import vllm.platforms as platforms
from vllm.platforms.cpu import CpuPlatform

platforms._current_platform = CpuPlatform()
import _runtime_moe_ops

_runtime_moe_ops.install()  # the pinned kernel's semantics in torch, before the back-port binds the launcher
import fused_moe_kernel  # the back-port, as apply installs it

torch.manual_seed(0)
H, N, E, K, BM = 16, 12, 64, 2, 16
x, w = torch.randn(1, H), torch.randn(E, N, H)
ids, wts = torch.tensor([[5, 40]], dtype=torch.int32), torch.rand(1, K)
C = torch.empty(1, K, N)
# upstream's _prepare_expert_assignment for 1 token * top-2 * 4 <= 64 experts: no sorted ids
fused_moe_kernel.dispatch_fused_moe_kernel(x, w, C, None, None, None, wts, None, ids.view(-1),
                                           torch.tensor([ids.numel() * BM]), True, K, {"BLOCK_SIZE_M": BM},
                                           None, False, False, False, False, False)
want = torch.stack([(x[0] @ w[int(e)].t()) * wts[0, k] for k, e in enumerate(ids[0])]).unsqueeze(0)
print(json.dumps({"unsorted": float((C - want).abs().max())}))
"""


def test_the_kernel_back_port_serves_upstreams_unsorted_path():
    # before: NotImplementedError ("0.13.0's fused-MoE kernels need sorted_token_ids"), on every decode step of
    # K2 Horizon's MoVA experts with few tokens on a GPU; now one (token, slot) pair per block of the sorted layout
    if not PINNED_PY.exists():
        pytest.skip("needs the pinned venv (MMF_PINNED_VENV, vLLM 0.13.0)")
    from flagos_migrate.migrate import backports

    got = run_script_json(PINNED_PY, UNSORTED, str(backports.SOURCES))
    assert got["unsorted"] < 1e-5
