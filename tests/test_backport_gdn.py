"""The gated-delta-net back-port (P22, ``vllm_fl/compat/gdn_linear_attn.py``) on the real vLLM 0.13.0.

The reference is transformers 4.57.6's own ``Qwen3NextGatedDeltaNet`` (its pure-torch path on CPU)
with Qwen3-Next's interleaved checkpoint. The back-port is built on CPU over the pinned layer twice:
with that interleaved checkpoint, and with the same weights written in Qwen3.5's layout (separate
``in_proj_qkv``/``in_proj_z``/``in_proj_b``/``in_proj_a``) loaded through upstream's stacked mapping
(``in_proj_qkv`` as the tuple shard ``(0, 1, 2)``). The pinned recurrent core is Triton-only, so the
test gives the layer a CPU core written from transformers' torch functions; everything else
(projections, layout split, gating parameters, gated norm, output projection, loaders) is the real
pinned code plus the back-port. Skips without $MMF_PINNED_VENV.
"""

from __future__ import annotations

import ast

import pytest
from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv

BP = backports.GDN_LINEAR_ATTN


def test_the_table_repoints_the_upstream_name_and_needed_finds_it():
    module = "vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn"
    tree = ast.parse(f"from {module} import QwenGatedDeltaNetAttention\n")
    assert backports.needed([tree]) == [BP]
    assert backports.for_import(module, "QwenGatedDeltaNetAttention") is BP
    # the other gated-delta-net layers are back-ported apart (tests/test_backport_linear_attn.py)
    assert backports.for_import("vllm.model_executor.layers.mamba.gdn.kimi_gdn_linear_attn",
                                "KimiGatedDeltaNetAttention") is backports.KIMI_GDN_LINEAR_ATTN


RUNTIME = '''
    # the CPU platform, as verify --run forces it (0.13.0 picks it only for CPU builds of vLLM)
    import vllm.platforms as platforms
    from vllm.platforms.cpu import CpuPlatform
    platforms._current_platform = CpuPlatform()
    import torch.nn.functional as F
    from transformers import Qwen3NextConfig
    from transformers.models.qwen3_next import modeling_qwen3_next as hf
    from vllm.config import get_current_vllm_config
    from vllm.forward_context import set_forward_context
    import stacked_weights as sw
    from gdn_linear_attn import QwenGatedDeltaNetAttention

    H, NK, NV, HK, HV, K = 32, 2, 4, 8, 6, 4
    R = NV // NK
    cfg = Qwen3NextConfig(hidden_size=H, linear_num_key_heads=NK, linear_num_value_heads=NV,
                          linear_key_head_dim=HK, linear_value_head_dim=HV, linear_conv_kernel_dim=K,
                          hidden_act="silu", rms_norm_eps=1e-6, num_hidden_layers=1)
    cfg.dtype = torch.float32
    torch.manual_seed(0)
    ref = hf.Qwen3NextGatedDeltaNet(cfg, layer_idx=0).float()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    sd = {n: p.detach().clone() for n, p in ref.state_dict().items()}

    # Qwen3.5's flat layout from the interleaved one: per key-head group [q, k, v (R heads), z (R heads)]
    qkvz = sd["in_proj_qkvz.weight"].view(NK, 2 * HK + 2 * R * HV, H)
    q, k, v, z = qkvz.split([HK, HK, R * HV, R * HV], dim=1)
    flat = {n: t.reshape(-1, H) for n, t in dict(q=q, k=k, v=v, z=z).items()}
    ba = sd["in_proj_ba.weight"].view(NK, 2 * R, H)
    flat["b"], flat["a"] = (t.reshape(-1, H) for t in ba.split([R, R], dim=1))

    STACKED = {".in_proj_qkv": (".in_proj_qkvz", (0, 1, 2)), ".in_proj_z": (".in_proj_qkvz", 3),
               ".in_proj_b": (".in_proj_ba", 0), ".in_proj_a": (".in_proj_ba", 1)}

    class Model(torch.nn.Module):
        def __init__(self, interleaved, prefix):
            super().__init__()
            # Qwen3-Next names its fused tensors as the parameters; Qwen3.5's model maps its own
            self.mapper = sw.WeightsMapper(orig_to_new_stacked={} if interleaved else STACKED)
            self.linear_attn = QwenGatedDeltaNetAttention(cfg, get_current_vllm_config(), prefix=prefix,
                                                          gqa_interleaved_layout=interleaved)
        def load_weights(self, weights):
            return sw.AutoWeightsLoader(self).load_weights(weights, mapper=self.mapper)

    def cpu_core(layer):
        """transformers' torch path for the conv and the chunked delta rule, on the layer's parameters."""
        def core(mixed_qkv, b, a, core_attn_out):
            n = mixed_qkv.shape[0]
            x = F.conv1d(mixed_qkv.T.unsqueeze(0), layer.conv1d.weight, padding=K - 1,
                         groups=mixed_qkv.shape[1])[..., :n]
            x = F.silu(x)[0].T
            qq, kk, vv = x.split([NK * HK, NK * HK, NV * HV], dim=-1)
            qq = qq.reshape(1, n, NK, HK).repeat_interleave(R, dim=2)
            kk = kk.reshape(1, n, NK, HK).repeat_interleave(R, dim=2)
            g = -layer.A_log.float().exp() * F.softplus(a.float() + layer.dt_bias)
            out, _ = hf.torch_chunk_gated_delta_rule(qq, kk, vv.reshape(1, n, NV, HV), g=g[None],
                                                     beta=b.sigmoid()[None], use_qk_l2norm_in_kernel=True)
            core_attn_out.copy_(out[0])
        return core

    common = {n: sd[n] for n in ("conv1d.weight", "dt_bias", "A_log", "norm.weight", "out_proj.weight")}
    x = torch.randn(5, H)
    with torch.no_grad():
        want = ref(x[None])[0]
    print("reference_not_trivial", want.abs().max().item() > 1e-2, want.abs().max().item())
    for interleaved in (True, False):
        m = Model(interleaved, prefix=f"model.layers.{int(interleaved)}.linear_attn")
        names = ({"in_proj_qkvz.weight": sd["in_proj_qkvz.weight"], "in_proj_ba.weight": sd["in_proj_ba.weight"]}
                 if interleaved else
                 {"in_proj_qkv.weight": torch.cat([flat["q"], flat["k"], flat["v"]]),
                  "in_proj_z.weight": flat["z"], "in_proj_b.weight": flat["b"], "in_proj_a.weight": flat["a"]})
        names.update(common)
        loaded = m.load_weights([("linear_attn." + n, t.clone()) for n, t in names.items()])
        # as vLLM's loader does after loading (the CPU linear method prepares its kernel here)
        for mod in m.modules():
            if getattr(mod, "quant_method", None) is not None:
                mod.quant_method.process_weights_after_loading(mod)
        layer = m.linear_attn
        layer._forward_core = cpu_core(layer)
        with torch.no_grad(), set_forward_context(None, get_current_vllm_config()):
            got = layer(x)
        err = (got - want).abs().max().item()
        name = "interleaved" if interleaved else "flat"
        print(name, set(loaded) == {n for n, _ in m.named_parameters()} and err < 1e-4 * max(1.0, want.abs().max().item()), err)
    print("fp32_A_log", layer.A_log.dtype == torch.float32 and torch.equal(layer.A_log, sd["A_log"]))
    print("flat_qkvz", torch.equal(layer.in_proj_qkvz.weight, torch.cat([flat["q"], flat["k"], flat["v"], flat["z"]])))
    cfg.output_gate_type = "sigmoid"
    try:
        QwenGatedDeltaNetAttention(cfg, get_current_vllm_config(), prefix="model.layers.9.linear_attn")
        print("refuses_sigmoid_gate", False)
    except NotImplementedError:
        print("refuses_sigmoid_gate", True)
'''


@pytest.mark.slow
def test_both_layouts_match_the_transformers_layer_on_the_real_pinned_vllm(tmp_path):
    lines = run_in_pinned_venv(tmp_path, RUNTIME)
    for case in ("reference_not_trivial", "interleaved", "flat", "fp32_A_log", "flat_qkvz", "refuses_sigmoid_gate"):
        assert lines[case].startswith("True"), (case, lines[case])
