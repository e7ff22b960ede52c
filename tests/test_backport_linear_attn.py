"""Linear-attention back-ports (P22) on the real vLLM 0.13.0: OLMo Hybrid's gated delta net
(``vllm_fl/compat/olmo_gdn_linear_attn.py``).

The layer is built on CPU over the pinned ``Qwen3NextGatedDeltaNet``, loaded with OLMo's separate
checkpoint tensors through upstream's stacked mapping, and run through the pinned
``gdn_attention_core`` op with a GDN prefill metadata and a state cache of the layer's own state
shapes. Only the two Triton kernels (causal conv, chunked delta rule) are swapped for torch ones;
projections, layout, grouped q/k, gating, gated norm and output projection are the back-port's.
The reference is plain PyTorch written from upstream's layer (a token-by-token delta rule).
Skips without $MMF_PINNED_VENV.
"""

from __future__ import annotations

import ast

import pytest
from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv

OLMO = backports.OLMO_GDN_LINEAR_ATTN


def test_the_table_repoints_olmos_layer_and_needed_finds_it():
    module = "vllm.model_executor.layers.mamba.gdn.olmo_gdn_linear_attn"
    tree = ast.parse(f"from {module} import OlmoHybridGatedDeltaNetAttention\n")
    assert backports.needed([tree]) == [OLMO]
    assert backports.for_import(module, "OlmoHybridGatedDeltaNetAttention") is OLMO


OLMO_RUNTIME = '''
    import vllm.platforms as platforms
    from vllm.platforms.cpu import CpuPlatform
    platforms._current_platform = CpuPlatform()
    import torch.nn.functional as F
    from transformers import PretrainedConfig
    from transformers.models.qwen3_next import modeling_qwen3_next as hf
    from vllm.config import get_current_vllm_config
    from vllm.forward_context import set_forward_context
    from vllm.v1.attention.backends.gdn_attn import GDNAttentionMetadata
    import stacked_weights as sw
    import olmo_gdn_linear_attn as bp

    H, NK, NV, HK, HV, K, T = 32, 2, 4, 8, 6, 4, 7
    R = NV // NK
    cfg = PretrainedConfig(hidden_size=H, linear_num_key_heads=NK, linear_num_value_heads=NV,
                           linear_key_head_dim=HK, linear_value_head_dim=HV, linear_conv_kernel_dim=K,
                           hidden_act="silu", rms_norm_eps=1e-6, linear_allow_neg_eigval=True)
    cfg.dtype = torch.float32
    torch.manual_seed(0)
    r = lambda *s: torch.randn(*s) * 0.3
    ckpt = {"q_proj.weight": r(NK * HK, H), "k_proj.weight": r(NK * HK, H), "v_proj.weight": r(NV * HV, H),
            "g_proj.weight": r(NV * HV, H), "b_proj.weight": r(NV, H), "a_proj.weight": r(NV, H),
            "q_conv1d.weight": r(NK * HK, 1, K), "k_conv1d.weight": r(NK * HK, 1, K),
            "v_conv1d.weight": r(NV * HV, 1, K), "A_log": r(NV), "dt_bias": r(NV),
            "o_norm.weight": 1 + r(HV), "o_proj.weight": r(H, NV * HV)}

    # upstream olmo_hybrid.py's mapping for the linear-attention tensors
    STACKED = {".linear_attn.q_proj": (".linear_attn.in_proj_qkvg", 0),
               ".linear_attn.k_proj": (".linear_attn.in_proj_qkvg", 1),
               ".linear_attn.v_proj": (".linear_attn.in_proj_qkvg", 2),
               ".linear_attn.g_proj": (".linear_attn.in_proj_qkvg", 3),
               ".q_conv1d": (".conv1d", 0), ".k_conv1d": (".conv1d", 1), ".v_conv1d": (".conv1d", 2)}
    PREFIX = "model.layers.0.linear_attn"

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear_attn = bp.OlmoHybridGatedDeltaNetAttention(cfg, get_current_vllm_config(), prefix=PREFIX)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Layer()
        def load_weights(self, weights):
            return sw.AutoWeightsLoader(self).load_weights(weights, mapper=sw.WeightsMapper(orig_to_new_stacked=STACKED))

    m = Model()
    loaded = m.load_weights([("model.linear_attn." + n, t.clone()) for n, t in ckpt.items()])
    for mod in m.modules():
        if getattr(mod, "quant_method", None) is not None:
            mod.quant_method.process_weights_after_loading(mod)
    layer = m.model.linear_attn
    params = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    print("all_loaded", set(loaded) == {"model.linear_attn." + n for n in params}, sorted(set(params) - {n.split("linear_attn.")[-1] for n in loaded}))
    print("shapes", params == {"conv1d.weight": (2 * NK * HK + NV * HV, 1, K), "dt_bias": (NV,), "A_log": (NV,),
                               "in_proj_qkvg.weight": (2 * NK * HK + 2 * NV * HV, H), "b_proj.weight": (NV, H),
                               "a_proj.weight": (NV, H), "o_norm.weight": (HV,), "o_proj.weight": (H, NV * HV)}, params)
    print("fused_conv", torch.equal(layer.conv1d.weight, torch.cat([ckpt["q_conv1d.weight"], ckpt["k_conv1d.weight"],
                                                                   ckpt["v_conv1d.weight"]])))
    print("state", layer.mamba_type == "gdn_attention" and layer.get_state_shape() == ((K - 1, 2 * NK * HK + NV * HV), (NV, HK, HV)),
          layer.get_state_shape())

    # the pinned Triton kernels, in torch (single sequence, no initial state)
    def conv_fn(x, weight, bias, activation=None, conv_states=None, has_initial_state=None, cache_indices=None,
                query_start_loc=None, metadata=None):
        out = F.conv1d(x[None], weight[:, None, :], padding=K - 1, groups=x.shape[0])[0, :, :x.shape[1]]
        return F.silu(out)

    def chunk_fn(q, k, v, g, beta, initial_state, output_final_state, cu_seqlens, head_first, use_qk_l2norm_in_kernel):
        assert q.shape[2] == v.shape[2]  # q and k already repeated per value-head group
        return hf.torch_chunk_gated_delta_rule(q, k, v, g=g, beta=beta, initial_state=initial_state,
                                               output_final_state=output_final_state,
                                               use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel)
    bp.causal_conv1d_fn, bp.chunk_gated_delta_rule = conv_fn, chunk_fn

    conv_shape, ssm_shape = layer.get_state_shape()
    layer.kv_cache = [(torch.zeros(2, *conv_shape), torch.zeros(2, *ssm_shape))]
    md = GDNAttentionMetadata(num_prefills=1, num_prefill_tokens=T, num_decodes=0, num_decode_tokens=0,
                              num_spec_decodes=0, num_spec_decode_tokens=0, num_actual_tokens=T,
                              has_initial_state=torch.tensor([False]), non_spec_query_start_loc=torch.tensor([0, T]),
                              non_spec_state_indices_tensor=torch.tensor([1]))
    x = torch.randn(T, H)
    out = torch.empty_like(x)
    with torch.no_grad(), set_forward_context({PREFIX: md}, get_current_vllm_config()):
        layer(x, out)

    # plain PyTorch, from upstream's layer: separate q/k/v convs, q/k repeated per group, delta rule per token
    def conv(w, y):
        return F.silu(F.conv1d(y.T[None], w, padding=K - 1, groups=y.shape[1])[0, :, :T]).T
    q = conv(ckpt["q_conv1d.weight"], x @ ckpt["q_proj.weight"].T).view(T, NK, HK).repeat_interleave(R, 1)
    k = conv(ckpt["k_conv1d.weight"], x @ ckpt["k_proj.weight"].T).view(T, NK, HK).repeat_interleave(R, 1)
    v = conv(ckpt["v_conv1d.weight"], x @ ckpt["v_proj.weight"].T).view(T, NV, HV)
    q, k = F.normalize(q, dim=-1, eps=1e-6) * HK ** -0.5, F.normalize(k, dim=-1, eps=1e-6)
    beta = 2 * (x @ ckpt["b_proj.weight"].T).sigmoid()
    g = -ckpt["A_log"].exp() * F.softplus(x @ ckpt["a_proj.weight"].T + ckpt["dt_bias"])
    S = torch.zeros(NV, HK, HV)
    o = torch.empty(T, NV, HV)
    for t in range(T):
        S = S * g[t].exp()[:, None, None]
        delta = (v[t] - torch.einsum("hkv,hk->hv", S, k[t])) * beta[t][:, None]
        S = S + torch.einsum("hk,hv->hkv", k[t], delta)
        o[t] = torch.einsum("hkv,hk->hv", S, q[t])
    gate = (x @ ckpt["g_proj.weight"].T).view(T, NV, HV)
    o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + 1e-5) * ckpt["o_norm.weight"] * F.silu(gate)
    want = o.reshape(T, NV * HV) @ ckpt["o_proj.weight"].T
    err = (out - want).abs().max().item()
    print("reference_not_trivial", want.abs().max().item() > 1e-2, want.abs().max().item())
    print("matches", err < 1e-4 * max(1.0, want.abs().max().item()), err)
    print("final_state_cached", torch.allclose(layer.kv_cache[0][1][1], S, atol=1e-4), (layer.kv_cache[0][1][1] - S).abs().max().item())
    layer.allow_neg_eigval = False
    out2 = torch.empty_like(x)
    with torch.no_grad(), set_forward_context({PREFIX: md}, get_current_vllm_config()):
        layer(x, out2)
    print("neg_eigval_matters", (out2 - out).abs().max().item() > 1e-3)
'''


@pytest.mark.slow
def test_olmo_gdn_builds_loads_and_matches_plain_torch_on_the_real_pinned_vllm(tmp_path):
    lines = run_in_pinned_venv(tmp_path, OLMO_RUNTIME)
    for case in ("all_loaded", "shapes", "fused_conv", "state", "reference_not_trivial", "matches",
                 "final_state_cached", "neg_eigval_matters"):
        assert lines[case].startswith("True"), (case, lines[case])
