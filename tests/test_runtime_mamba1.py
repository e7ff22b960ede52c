"""The runtime harness's reference Mamba-1 mixer and short conv prefill (``verify/_runtime_mamba1.py``).

In the pinned venv ($MMF_PINNED_VENV: vLLM 0.13.0, transformers 4.57.6): the real vLLM ``MambaMixer`` and
``ShortConv``, given transformers' weights and the reference by ``install``, called through their own
``forward`` (the custom op that looks the layer up by name), give what transformers' torch slow paths give
(``MambaMixer`` / ``FalconMambaMixer`` / ``JambaMambaMixer.slow_forward``, ``Lfm2ShortConv.slow_forward``),
while without the reference the pinned op leaves the output unwritten. Then real ``verify --run``s of a
tiny Mamba, LFM2-MoE and LFM2 reach forward (and match with $MMF_REFERENCE_VENV).
"""

from __future__ import annotations

import os

import pytest
from analysis_helpers import UPSTREAM_SRC as UPSTREAM
from analysis_helpers import apply_and_verify_run

from tests.worker_helpers import run_in_worker as _run

# vLLM 0.13.0 on CPU, one rank; the layers register in this config's forward context
PRELUDE = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
from _runtime_env import _cpu_gemm_keeps_conv_weights, _init_distributed, _platform_cpu
_platform_cpu()
_cpu_gemm_keeps_conv_weights()  # as the worker: the conv's 3-D weight is not repacked as a GEMM's
from vllm.config import CacheConfig, DeviceConfig, VllmConfig, set_current_vllm_config
from vllm.forward_context import set_forward_context
import _runtime_mamba1 as m1
vc = VllmConfig(device_config=DeviceConfig(device="cpu"))
_init_distributed(vc)
torch.manual_seed(0)


def randomize(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)


def after_loading(layer):
    """What the loader does next (the CPU GEMMs' packing), as on the runtime's path."""
    for m in layer.modules():
        if getattr(m, "quant_method", None) is not None:
            m.quant_method.process_weights_after_loading(m)


def run(layer, hidden):
    """The layer's own forward (its op), from a NaN-filled output: what it leaves unwritten stays NaN."""
    output = torch.full_like(hidden, float("nan"))
    with torch.no_grad(), set_forward_context(None, vc, num_tokens=hidden.shape[0]):
        layer(hidden, output)
    return output


def compare(layer, hidden, want):
    before = run(layer, hidden)
    given = m1.install(torch.nn.ModuleList([layer]))
    got = run(layer, hidden)
    return {"given": given, "calls": layer._mmf_reference_calls, "diff": float((got - want).abs().max()),
            "scale": float(want.abs().max()), "unwritten_before": int(before.isnan().any(-1).sum())}
'''


@pytest.mark.parametrize("family", ["mamba", "falcon_mamba", "jamba"])
def test_vllm_mamba_mixer_with_the_reference_gives_transformers_slow_path(family):
    out = _run(PRELUDE + '''
family = sys.argv[2]
from vllm.model_executor.layers.mamba.mamba_mixer import MambaMixer
if family == "jamba":
    from transformers import JambaConfig as Config
    from transformers.models.jamba import modeling_jamba as hf
    cfg = Config(hidden_size=16, mamba_d_state=6, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=3,
                 num_hidden_layers=1, vocab_size=32, rms_norm_eps=1e-6)
    mixer, rms = hf.JambaMambaMixer(cfg, layer_idx=0), (True, True, cfg.rms_norm_eps)
    sizes = (cfg.mamba_d_state, cfg.mamba_d_conv, cfg.mamba_expand * cfg.hidden_size, cfg.mamba_dt_rank,
             cfg.mamba_conv_bias, cfg.mamba_proj_bias)
else:
    import importlib
    import transformers
    name = "FalconMamba" if family == "falcon_mamba" else "Mamba"
    hf = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    cfg = getattr(transformers, name + "Config")(hidden_size=16, state_size=6, conv_kernel=4, expand=2,
                                                 time_step_rank=3, num_hidden_layers=1, vocab_size=32,
                                                 use_mambapy=False)
    mixer = getattr(hf, name + "Mixer")(cfg, layer_idx=0)
    # FalconMamba normalises dt, B and C without weights (vLLM: rms_norm_has_weight=False)
    rms = (True, False, cfg.mixer_rms_eps) if family == "falcon_mamba" else (False, True, 1e-5)
    sizes = (cfg.state_size, cfg.conv_kernel, cfg.intermediate_size, cfg.time_step_rank, cfg.use_conv_bias,
             cfg.use_bias)
mixer.eval()
randomize(mixer)
state, conv, inter, rank, conv_bias, bias = sizes
with set_current_vllm_config(vc):
    layer = MambaMixer(hidden_size=16, ssm_state_size=state, conv_kernel_size=conv, intermediate_size=inter,
                       time_step_rank=rank, use_conv_bias=conv_bias, use_bias=bias, use_rms_norm=rms[0],
                       rms_norm_has_weight=rms[1], rms_norm_eps=rms[2], activation=cfg.hidden_act,
                       cache_config=CacheConfig(), prefix="mixer." + family)
hf_params = dict(mixer.named_parameters())
with torch.no_grad():
    for name, p in layer.named_parameters():
        p.copy_(-torch.exp(hf_params["A_log"].float()) if name == "A" else hf_params[name].reshape(p.shape))
after_loading(layer)
with torch.no_grad():
    hidden = torch.randn(1, 13, 16)
    want = mixer.slow_forward(hidden)[0]
print(json.dumps({**compare(layer, hidden[0], want), "hf": type(mixer).__name__}))
''', family)
    assert out["given"] == ["MambaMixer"] and out["calls"] == 1, out
    assert out["unwritten_before"] == 13, out  # the pinned op alone: a profile run, nothing written
    assert out["scale"] > 0.01 and out["diff"] < 1e-5, out


def test_vllm_short_conv_with_the_reference_gives_transformers_slow_path():
    out = _run(PRELUDE + '''
from transformers import Lfm2Config
from transformers.models.lfm2 import modeling_lfm2 as hf
from vllm.model_executor.layers.mamba.short_conv import ShortConv
cfg = Lfm2Config(hidden_size=16, conv_L_cache=3, conv_bias=True, num_hidden_layers=1, vocab_size=32)
conv = hf.Lfm2ShortConv(cfg, layer_idx=0).eval()
randomize(conv)
with set_current_vllm_config(vc):
    layer = ShortConv(cfg, dim=16, layer_idx=0, cache_config=CacheConfig(), prefix="conv")
hf_params = dict(conv.named_parameters())
with torch.no_grad():
    for name, p in layer.named_parameters():
        p.copy_(hf_params[name].reshape(p.shape))
after_loading(layer)
with torch.no_grad():
    hidden = torch.randn(1, 11, 16)
    want = conv.slow_forward(hidden)[0]
print(json.dumps(compare(layer, hidden[0], want)))
''')
    assert out["given"] == ["ShortConv"] and out["calls"] == 1, out
    assert out["unwritten_before"] == 11, out
    assert out["scale"] > 0.01 and out["diff"] < 1e-5, out


@pytest.mark.parametrize(("model", "archs", "classes", "apply_args"), [
    ("mamba", ("MambaForCausalLM", "FalconMambaForCausalLM"), "MambaMixer", ()),
    ("lfm2_moe", ("Lfm2MoeForCausalLM",), "ShortConv", ()),
    # the tiny LFM2 has a short-conv layer as the released ones (config_hints: its layer_types)
    ("lfm2", ("Lfm2ForCausalLM",), "ShortConv", ("--arch", "Lfm2ForCausalLM")),
])
def test_verify_run_reaches_forward_and_matches_through_the_reference(tmp_path, model, archs, classes, apply_args):
    if not os.environ.get("MMF_REFERENCE_VENV"):
        pytest.skip("needs MMF_REFERENCE_VENV (vLLM 0.33.0) to match against")
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream source at {UPSTREAM}")
    reports = {a["architecture"]: a for a in apply_and_verify_run(tmp_path, model, *apply_args)}
    for arch in archs:
        report = reports[arch]
        levels = {name: level["status"] for name, level in report["levels"].items()}
        assert levels == dict.fromkeys(("import", "construct", "load", "forward", "match"), "pass"), report
        assert any("reference Mamba-1 / short conv" in n and classes in n for n in report["notes"]), report["notes"]
