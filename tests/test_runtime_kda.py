"""The runtime harness's reference Kimi Delta Attention prefill (``verify/_runtime_kda.py``).

In the pinned venv ($MMF_PINNED_VENV): the reference KDA rule equals a per-token recurrence written here in
another algebraic form (``S = (I - b k k^T) diag(exp g) S + b k v^T``, float64, loops per head); the torch
``fused_kda_gate`` keeps the pinned kernel's signature (the bounded gate's ``lower_bound`` keyword raises,
as the pinned kernel does) and the reference output norm is a plain RMS norm with the sigmoid gate. No venv
has fla's naive KDA; transformers 5 (the reference venv, $MMF_REFERENCE_VENV) has KDA in torch (Kimi
Linear): its whole ``KimiLinearDeltaAttention`` layer, core replaced by each reference contract, gives
the layer's own output through transformers' chunked and recurrent KDA rules. Then a real ``verify --run``
of Bailing V3 (its bounded gate through compat/kda_gate.py) matches upstream vLLM 0.33.0.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from analysis_helpers import apply_and_verify_run

from tests.worker_helpers import VERIFY, pinned_python
from tests.worker_helpers import run_in_worker as _run

BACKPORT = Path(__file__).resolve().parent.parent / "scripts/flagos_migrate/migrate/backport_sources/kda_gate.py"
PRELUDE = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
import _runtime_kda as kda
torch.manual_seed(0)
'''


def test_reference_kda_rule_equals_an_independent_recurrence():
    out = _run(PRELUDE + '''
T, H, K, V = 20, 3, 8, 6
q, k, v = torch.randn(T, H, K), torch.randn(T, H, K), torch.randn(T, H, V)
g = -torch.rand(T, H, K) * 0.7  # a decay per key channel
beta = torch.rand(T, H)
ref = kda.kda_rule(q, k, v, g, beta)

def unit(x):
    return x / (x.pow(2).sum(-1, keepdim=True) + 1e-6).sqrt()

naive = torch.zeros(T, H, V, dtype=torch.float64)
for h in range(H):
    S = torch.zeros(K, V, dtype=torch.float64)
    for t in range(T):
        kt, qt = unit(k[t, h].double()), unit(q[t, h].double()) / K ** 0.5
        b = float(beta[t, h])
        S = (torch.eye(K, dtype=torch.float64) - b * torch.outer(kt, kt)) @ torch.diag(g[t, h].double().exp()) @ S \\
            + b * torch.outer(kt, v[t, h].double())
        naive[t, h] = qt @ S
# one decay for every channel of a head is the gated delta net's rule
import _runtime_gdn as gdn
flat = g[:, :, :1].expand(T, H, K)
print(json.dumps({"naive": float((ref.double() - naive).abs().max()), "scale": float(ref.abs().max()),
                  "gdn": float((kda.kda_rule(q, k, v, flat, beta) - gdn.gated_delta_rule(q, k, v, g[:, :, 0], beta)).abs().max()),
                  "per_channel": float((ref - kda.kda_rule(q, k, v, flat, beta)).abs().max())}))
''')
    assert out["scale"] > 0.1 and out["naive"] < 1e-5, out
    assert out["gdn"] < 1e-5 and out["per_channel"] > 1e-3, out


def test_torch_gate_keeps_the_pinned_kernels_signature_and_the_norm_is_rms_with_a_sigmoid_gate():
    out = _run(PRELUDE + '''
from vllm.model_executor.layers.fla.ops import kda as fla
H, D = 2, 4
g, A, bias = torch.randn(5, H * D) * 3, torch.randn(H), torch.randn(H * D)
gate = kda._gate_reference(fla.fused_kda_gate)
y = gate(g, A, D, g_bias=bias)
want = -A.exp()[:, None] * torch.nn.functional.softplus((g + bias).reshape(5, H, D))
try:
    gate(g, A, D, g_bias=bias, lower_bound=-5.0)
    refused = False
except TypeError:
    refused = True
norm = fla.FusedRMSNormGated(D, activation="sigmoid")
norm.weight.data = torch.randn(D)
x, z = torch.randn(1, 5, H, D), torch.randn(1, 5, H, D)
n = kda._norm_forward(norm, x, z)
n_want = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight * torch.sigmoid(z)
print(json.dumps({"gate": float((y - want).abs().max()), "shape": list(y.shape), "refused": refused,
                  "norm": float((n - n_want).abs().max())}))
''')
    assert out["shape"] == [5, 2, 4] and out["gate"] < 1e-6 and out["refused"], out
    assert out["norm"] < 1e-5, out


def test_bounded_gate_backport_computes_upstreams_gate_and_hands_an_unbounded_one_to_the_pinned_kernel():
    # Bailing V3's fused_kda_gate(lower_bound=) on the pinned vLLM (compat/kda_gate.py, rule P22)
    out = _run(PRELUDE + f'''
import importlib.util
from vllm.model_executor.layers.fla.ops import kda as fla
spec = importlib.util.spec_from_file_location("kda_gate", {str(BACKPORT)!r})
bp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bp)
H, D = 2, 4
g, A, bias = torch.randn(3, 5, H * D) * 3, torch.randn(1, 1, H, 1), torch.randn(H * D)
y = bp.fused_kda_gate(g, A, D, g_bias=bias, lower_bound=-5.0)
want = -5.0 * torch.sigmoid(A.reshape(H, 1).exp() * (g + bias).reshape(3, 5, H, D))
seen = []
fla.fused_kda_gate = lambda *a, **k: seen.append(sorted(k)) or "pinned"  # Triton: no CPU; the call is what counts
print(json.dumps({{"bounded": float((y - want).abs().max()), "shape": list(y.shape), "dtype": str(y.dtype),
                  "unbounded": bp.fused_kda_gate(g, A, D, g_bias=bias), "kwargs": seen}}))
''')
    assert out["shape"] == [3, 5, 2, 4] and out["dtype"] == "torch.float32" and out["bounded"] < 1e-6, out
    assert out["unbounded"] == "pinned" and out["kwargs"] == [["beta", "g_bias", "threshold"]], out


def _run_reference(code: str) -> dict:
    venv = os.environ.get("MMF_REFERENCE_VENV")
    if not venv:
        pytest.skip("transformers 5's torch KDA (Kimi Linear) is in the reference venv: MMF_REFERENCE_VENV not set")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(Path(venv) / "bin" / "python"), "-c", textwrap.dedent(code), str(VERIFY)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_transformers_kimi_linear_layer_with_each_reference_core_gives_its_own_output():
    pinned_python()  # the worker's references run in both venvs; this part in transformers 5's
    out = _run_reference(PRELUDE + '''
import types
from transformers import KimiLinearConfig
from transformers.models.kimi_linear import modeling_kimi_linear as hf
H, D, T = 2, 8, 70  # 70 tokens: transformers' chunked rule crosses its 64-token chunk
cfg = KimiLinearConfig(hidden_size=32, num_hidden_layers=1, linear_num_heads=H, linear_head_dim=D,
                       linear_conv_kernel_dim=4, hidden_act="silu", rms_norm_eps=1e-6)
layer = hf.KimiLinearDeltaAttention(cfg, layer_idx=0).eval()
with torch.no_grad():
    for p in layer.parameters():
        p.copy_(torch.randn_like(p) * 0.3)
    x = torch.randn(1, T, 32)
    want = layer(x)[0]
    fg = layer.forget_gate
    qkv = [p(x)[0] for p in (layer.q_proj, layer.k_proj, layer.v_proj)]
    raw_g = fg.f_b_proj(fg.f_a_proj(x)).reshape(1, T, H, D)
    raw_b = layer.b_proj(x)
    g2 = layer.g_b_proj(layer.g_a_proj(x)).reshape(T, H, D)
    size = H * D
    packed = types.SimpleNamespace(head_dim=D, local_projection_size=size, conv1d=layer.conv1d, A_log=fg.A_log,
                                   dt_bias=fg.dt_bias, gate_lower_bound=None, o_norm=layer.o_norm)
    core = torch.empty(1, T, H, D)
    kda.reference_packed(packed, torch.cat(qkv, -1), raw_g, g2, raw_b, core)
    got_packed = layer.o_proj(core.reshape(T, -1))
    weights = layer.conv1d.weight.split(size, 0)
    split = types.SimpleNamespace(head_dim=D, **{n + "_conv1d": types.SimpleNamespace(weight=w, bias=None)
                                                 for n, w in zip("qkv", weights)})
    gate = kda._gate_reference(lambda g, A, head_k_dim, g_bias=None, beta=1.0, threshold=20.0: None)
    g1 = gate(fg.f_b_proj(fg.f_a_proj(x))[0], fg.A_log, D, g_bias=fg.dt_bias)
    core2 = torch.zeros(1, T, H, D)
    kda.reference_split(split, *qkv, g1[None], raw_b.sigmoid(), core2)
    got_split = layer.o_proj(layer.o_norm(core2[0], g2).reshape(T, -1))
    # transformers' own recurrent rule against the chunked one the layer ran
    c = layer.conv1d.weight.squeeze(1)
    conv = torch.nn.functional.silu(torch.nn.functional.conv1d(torch.cat(qkv, -1).t()[None], c[:, None], padding=3,
                                                                groups=3 * size)[..., :T])[0].t()
    q, k, v = (t.reshape(1, T, H, D) for t in conv.split(size, -1))
    rec, _ = hf.recurrent_kimi_delta_attention.__wrapped__(q, k, v, g=fg(x), beta=raw_b.sigmoid(), initial_state=None,
                                                           output_final_state=False, use_qk_l2norm_in_kernel=True)
    mine = kda.kda_rule(q[0], k[0], v[0], fg(x)[0], raw_b.sigmoid()[0])
print(json.dumps({"packed": float((got_packed - want).abs().max()), "split": float((got_split - want).abs().max()),
                  "recurrent": float((rec[0] - mine).abs().max()), "scale": float(want.abs().max()),
                  "calls": [packed._mmf_reference_calls, split._mmf_reference_calls]}))
''')
    assert out["scale"] > 0.01 and out["calls"] == [1, 1], out
    assert out["packed"] < 1e-5 and out["split"] < 1e-5 and out["recurrent"] < 1e-5, out


def _levels(arch: dict) -> dict:
    return {name: level["status"] for name, level in arch["levels"].items()}


@pytest.mark.parametrize("model,architecture", [("bailing_moe_v3", "BailingMoeV3ForCausalLM")])
def test_verify_run_matches_upstream_through_the_kda_reference(tmp_path, model, architecture):
    pinned_python()
    if not os.environ.get("MMF_REFERENCE_VENV"):
        pytest.skip("needs MMF_REFERENCE_VENV (vLLM 0.33.0): only upstream's own class names the checkpoint")
    (arch,) = [a for a in apply_and_verify_run(tmp_path, model) if a["architecture"] == architecture]
    assert _levels(arch)["forward"] == "pass" and _levels(arch)["match"] == "pass", arch
    assert any("reference Kimi delta attention" in note for note in arch["notes"]), arch["notes"]
