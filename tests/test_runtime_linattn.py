"""The runtime harness's reference lightning (linear) attention prefill (``verify/_runtime_linattn.py``).

In the pinned venv ($MMF_PINNED_VENV, transformers 4.57.6): the reference equals, with the pinned
layer's own slopes (``MiniMaxText01LinearAttention._build_slope_tensor`` times the layer-depth factor),
a token-by-token recurrence written here (``S = exp(-slope) S + k^T v; o = q S``, float64, the pinned
decode kernel's step), and transformers' whole ``MiniMaxLightningAttention`` (its block-wise torch path
over three 8-token blocks, given the same slopes) around the reference core gives the layer's own
output. The torch FLA norm equals the pinned FLA module's own torch ``rms_norm_ref`` (silu gate) and
the kernel's sigmoid gate written out. Then bailing_moe_linear (BailingMoeV2_5ForCausalLM), which
stopped at "forward: needs GPU (BailingMoELinearAttention: Triton scans)", applies and verifies to
match against upstream vLLM 0.33.0 ($MMF_REFERENCE_VENV).
"""

from __future__ import annotations

import os

import pytest
from analysis_helpers import UPSTREAM_SRC, apply_and_verify_run

from tests.worker_helpers import run_in_worker as _run

PRELUDE = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
import _runtime_linattn as la
from vllm.model_executor.layers.mamba.linear_attn import MiniMaxText01LinearAttention
torch.manual_seed(0)
'''


def test_reference_prefill_equals_a_token_recurrence_and_transformers_lightning_attention():
    out = _run(PRELUDE + '''
from transformers import MiniMaxConfig
from transformers.models.minimax import modeling_minimax as hf
T, H, D, LAYERS, IDX = 19, 4, 8, 4, 1
slope = MiniMaxText01LinearAttention._build_slope_tensor(H) * (1 - IDX / (LAYERS - 1) + 1e-5)  # (H, 1, 1)
q, k, v = torch.randn(T, H, D), torch.randn(T, H, D), torch.randn(T, H, D)
ref = la.lightning_prefill(q, k, v, slope)

rec = torch.zeros(T, H, D, dtype=torch.float64)
for h in range(H):
    S, a = torch.zeros(D, D, dtype=torch.float64), float(torch.exp(-slope[h].double()))
    for t in range(T):
        S = a * S + torch.outer(k[t, h].double(), v[t, h].double())
        rec[t, h] = q[t, h].double() @ S

cfg = MiniMaxConfig(hidden_size=H * D, num_attention_heads=H, head_dim=D, num_hidden_layers=LAYERS, block_size=8,
                    hidden_act="silu")
layer = hf.MiniMaxLightningAttention(cfg, layer_idx=IDX).eval()
with torch.no_grad():
    for p in layer.parameters():
        p.copy_(torch.randn_like(p) * 0.3)
    for name, buf in zip(("slope_rate", "query_decay", "key_decay", "diagonal_decay"),
                         (slope, *layer.decay_factors(slope))):
        setattr(layer, name, buf)
    hidden = torch.randn(1, T, H * D)
    want = layer(hidden, None, None)[0][0]
    qh, kh, vh = layer.act_fn(layer.qkv_proj(hidden[0])).reshape(T, H, 3 * D).split(D, dim=-1)
    got = layer.out_proj(torch.sigmoid(layer.output_gate(hidden[0]))
                         * layer.norm(la.lightning_prefill(qh, kh, vh, layer.slope_rate).reshape(T, -1)))
print(json.dumps({"recurrence": float((ref.double() - rec).abs().max()), "scale": float(rec.abs().max()),
                  "layer": float((got - want).abs().max()), "layer_scale": float(want.abs().max()),
                  "decay": float(slope.max()), "shape": list(ref.shape)}))
''')
    assert out["shape"] == [19, 4, 8] and out["scale"] > 1 and out["decay"] > 0.1, out  # decays over the 19 tokens
    assert out["recurrence"] < 1e-4, out
    assert out["layer_scale"] > 0.01 and out["layer"] < 1e-5, out


def test_reference_prefill_is_the_cores_output_for_the_layers_slopes():
    # the core hands back (tokens, heads * head_dim) in q's dtype, counted as reached
    out = _run(PRELUDE + '''
import types
T, H, D = 5, 2, 4
layer = types.SimpleNamespace(tp_slope=MiniMaxText01LinearAttention._build_slope_tensor(H))
q, k, v = torch.randn(T, H, D), torch.randn(T, H, D), torch.randn(T, H, D)
got = la.reference_prefill(layer, q, k, v, None, None, None)
first = (q[0] * k[0]).sum(-1, keepdim=True) * v[0]  # token 0 sees itself only, undecayed
print(json.dumps({"shape": list(got.shape), "calls": layer._mmf_reference_calls,
                  "first": float((got[0].reshape(H, D) - first).abs().max())}))
''')
    assert out["shape"] == [5, 8] and out["calls"] == 1 and out["first"] < 1e-6, out


def test_torch_fla_norm_equals_the_pinned_rms_norm_ref_and_the_sigmoid_gate():
    out = _run(PRELUDE + '''
from vllm.model_executor.layers.fla.ops import layernorm_guard as fla
x, z, w = torch.randn(6, 16), torch.randn(6, 16), torch.randn(16)
diffs = {}
for before in (True, False):
    for group in (None, 4):
        got, _, rstd = la.layer_norm_fwd(x, w, None, 1e-5, z=z, group_size=group, norm_before_gate=before,
                                         is_rms_norm=True)
        want = fla.rms_norm_ref(x, w, None, z=z, eps=1e-5, group_size=group, norm_before_gate=before)
        diffs[f"silu-{before}-{group}"] = float((got - want).abs().max())
xg = x.reshape(6, 4, 4)
normed = (xg * torch.rsqrt(xg.pow(2).mean(-1, keepdim=True) + 1e-5)).reshape(6, 16) * w
got, _, _ = la.layer_norm_fwd(x, w, None, 1e-5, z=z, group_size=4, is_rms_norm=True, activation="sigmoid")
diffs["sigmoid"] = float((got - normed * torch.sigmoid(z)).abs().max())
got, mean, _ = la.layer_norm_fwd(x, w, None, 1e-5, group_size=4)
want = torch.nn.functional.layer_norm(xg, (4,), eps=1e-5).reshape(6, 16) * w
diffs["layer_norm"] = float((got - want).abs().max())
print(json.dumps({"diffs": diffs, "mean": list(mean.shape)}))
''')
    assert out["mean"] == [24] and all(d < 1e-5 for d in out["diffs"].values()), out


def test_bailing_moe_linear_matches_upstream_through_the_reference(tmp_path):
    pinned, reference = os.environ.get("MMF_PINNED_VENV"), os.environ.get("MMF_REFERENCE_VENV")
    if not pinned or not reference or not UPSTREAM_SRC.is_dir():
        pytest.skip("needs MMF_PINNED_VENV (vLLM 0.13.0), MMF_REFERENCE_VENV (vLLM 0.33.0) and the upstream source")
    (arch,) = apply_and_verify_run(tmp_path, "bailing_moe_linear")
    assert arch["architecture"] == "BailingMoeV2_5ForCausalLM"
    assert {lv: s["status"] for lv, s in arch["levels"].items()} == {
        "import": "pass", "construct": "pass", "load": "pass", "forward": "pass", "match": "pass"}, arch["levels"]
    assert arch["reference"] == "vllm-0.33.0"
    assert any("reference lightning attention prefill" in n for n in arch["notes"]), arch["notes"]
