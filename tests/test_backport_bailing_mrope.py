"""P22 rope.py: upstream's ``bailing_mrope`` rope type (Ling / Bailing MoE V3 VL). vLLM 0.13.0's ``get_rope``
raises ``Unknown RoPE scaling type bailing_mrope`` (bailing_moe_v3_vl failed construct on it); the back-port's
``get_rope`` builds upstream's class over the pinned ``MRotaryEmbedding``. Checked against upstream's own class:
upstream's vLLM computes cache and rotations in the reference venv (skips without $MMF_REFERENCE_VENV), the
back-port the same inputs on the real pinned vLLM (skips without $MMF_PINNED_VENV)."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.test_backports import python_of, run_in_pinned_venv

# upstream's get_rope in the reference venv: 1-D (text) and [3, N] (T/H/W) positions, neox and GPT-J style, a
# partial rotary dim, float32 and bfloat16; the inputs and upstream's outputs saved for the pinned side
UPSTREAM = textwrap.dedent('''
    import sys, torch
    from vllm.config import DeviceConfig, VllmConfig, set_current_vllm_config
    with set_current_vllm_config(VllmConfig(device_config=DeviceConfig(device="cpu"))):
        from vllm.model_executor.layers.rotary_embedding import get_rope
        torch.manual_seed(0)
        out = {}
        for name, D, ROT, neox, sec, dtype in (("neox", 16, 16, True, [2, 3, 3], torch.float32),
                                               ("gptj_partial", 16, 12, False, [2, 2, 2], torch.float32),
                                               ("bf16", 32, 32, False, [4, 6, 6], torch.bfloat16)):
            params = {"rope_type": "bailing_mrope", "rope_theta": 10000.0, "mrope_section": sec}
            if ROT != D:
                params["partial_rotary_factor"] = ROT / D
            emb = get_rope(D, 64, neox, params, dtype)
            T = 7
            q, k = torch.randn(T, 4 * D, dtype=dtype), torch.randn(T, 2 * D, dtype=dtype)
            p1 = torch.tensor([0, 3, 1, 7, 63, 20, 255])
            p2 = torch.randint(0, 256, (3, T))
            out[name] = dict(D=D, neox=neox, params=params, dtype=dtype, q=q, k=k, p1=p1, p2=p2,
                             cls=type(emb).__name__, cache=emb.cos_sin_cache.clone(),
                             r1=emb.forward_native(p1, q.clone(), k.clone()),
                             r2=emb.forward_native(p2, q.clone(), k.clone()))
        torch.save(out, sys.argv[1])
''')

PINNED = '''
    from vllm.model_executor.layers.rotary_embedding import get_rope as pinned_get_rope
    import rope

    ref = torch.load("upstream.pt")
    for name, case in ref.items():
        emb = rope.get_rope(case["D"], 64, case["neox"], dict(case["params"]), case["dtype"])
        print(name + "_class", case["cls"] == type(emb).__name__ == "BailingMRotaryEmbedding")
        print(name + "_cache", torch.equal(emb.cos_sin_cache, case["cache"]))
        for pos in ("p1", "p2"):
            q, k = emb.forward_native(case[pos], case["q"].clone(), case["k"].clone())
            rq, rk = case["r" + pos[1]]
            print(name + "_" + pos, torch.equal(q, rq) and torch.equal(k, rk))
        # the CPU dispatch (CustomOp.forward) is upstream's forward_native too, not the pinned M-RoPE's
        q, k = emb(case["p2"], case["q"].clone(), case["k"].clone())
        print(name + "_dispatch", torch.equal(q, case["r2"][0]) and torch.equal(k, case["r2"][1]))
        print(name + "_shared", rope.get_rope(case["D"], 64, case["neox"], dict(case["params"]), case["dtype"]) is emb)
    # what the back-port is for: 0.13.0's own get_rope has no such type
    try:
        pinned_get_rope(16, 64, True, dict(ref["neox"]["params"]), torch.float32)
        print("pinned_lacks", False)
    except ValueError as e:
        print("pinned_lacks", "bailing_mrope" in str(e))
    # upstream's checks of the sections, as upstream raises them
    try:
        rope.get_rope(16, 64, True, {"rope_type": "bailing_mrope", "mrope_section": [2, 2, 4]}, torch.float32)
        print("unequal_hw_refused", False)
    except ValueError as e:
        print("unequal_hw_refused", "equal H and W" in str(e))
'''


@pytest.mark.slow
def test_bailing_mrope_on_the_real_pinned_vllm_is_upstreams(tmp_path: Path):
    venv = os.environ.get("MMF_REFERENCE_VENV")
    if not venv:
        pytest.skip("MMF_REFERENCE_VENV (a venv with upstream vLLM) is not set")
    script = tmp_path / "upstream.py"
    script.write_text(UPSTREAM)
    env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", CUDA_VISIBLE_DEVICES="", VLLM_PLUGINS="")
    proc = subprocess.run([python_of(venv), str(script), str(tmp_path / "upstream.pt")], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = run_in_pinned_venv(tmp_path, PINNED)
    for name in ("neox", "gptj_partial", "bf16"):
        for check in ("class", "cache", "p1", "p2", "dispatch", "shared"):
            assert lines[f"{name}_{check}"] == "True", f"{name}_{check}"
    assert lines["pinned_lacks"] == "True"
    assert lines["unequal_hw_refused"] == "True"


@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get("MMF_PINNED_VENV") and os.environ.get("MMF_REFERENCE_VENV")),
                    reason="needs MMF_PINNED_VENV (vLLM 0.13.0) and MMF_REFERENCE_VENV (upstream vLLM)")
def test_bailing_moe_v3_vl_matches_upstream_with_upstreams_rope(tmp_path: Path):
    """bailing_moe_v3_vl failed construct on 'Unknown RoPE scaling type bailing_mrope' (then on its tiny sections,
    [3, 2, 3]: H != W), then nothing named the checkpoint: upstream's VllmConfig refused the tiny MLA + Mamba
    hybrid config on CPU (mamba block size aligned to prefix caching that its CPU platform then turns off)."""
    from tests.analysis_helpers import apply_and_verify_run

    (arch,) = apply_and_verify_run(tmp_path, "bailing_moe_v3_vl", "--all-archs")
    assert arch["levels"]["load"]["status"] == "pass", arch["levels"]
    assert arch["levels"]["match"]["status"] == "pass", (arch["levels"], arch["first_error"])
    assert arch["reference"].startswith("vllm-0.33.0") and arch["max_abs_logit_diff"] <= 1e-3
