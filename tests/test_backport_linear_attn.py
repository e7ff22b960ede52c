"""Linear-attention back-ports (P22) on the real vLLM 0.13.0: OLMo Hybrid's gated delta net
(``vllm_fl/compat/olmo_gdn_linear_attn.py``), Bailing V2.5's lightning attention
(``vllm_fl/compat/bailing_linear_attn.py``) and the Kimi delta attention of AliceAI
(``vllm_fl/compat/kimi_gdn_linear_attn.py``).

The layer is built on CPU over the pinned ``Qwen3NextGatedDeltaNet``, loaded with OLMo's separate
checkpoint tensors through upstream's stacked mapping, and run through the pinned
``gdn_attention_core`` op with a GDN prefill metadata and a state cache of the layer's own state
shapes. Only the two Triton kernels (causal conv, chunked delta rule) are swapped for torch ones;
projections, layout, grouped q/k, gating, gated norm and output projection are the back-port's.
The reference is plain PyTorch written from upstream's layer (a token-by-token delta rule).
Bailing's layer is built over the pinned ``MiniMaxText01LinearAttention`` and run through the pinned
``linear_attention`` op with a prefill metadata; only the lightning-attention Triton kernel is
swapped for a torch recurrence, and the reference is the decayed causal attention written out
(``sum_j exp(-slope * (t - j)) (q_t . k_j) v_j``). Kimi's layer runs the pinned ``kda_attention`` op and
core; its conv, chunked KDA and gated-norm Triton kernels are swapped for torch ones (the KDA
recurrence written once, used by the kernel stand-in and the reference); the reference computes
the projections, convs, gate, beta, norm and output projection from the checkpoint tensors.
Skips without $MMF_PINNED_VENV.
"""

from __future__ import annotations

import ast

import pytest
from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv

OLMO = backports.OLMO_GDN_LINEAR_ATTN
BAILING = backports.BAILING_LINEAR_ATTN
KIMI = backports.KIMI_GDN_LINEAR_ATTN


def test_the_table_repoints_olmos_layer_and_needed_finds_it():
    module = "vllm.model_executor.layers.mamba.gdn.olmo_gdn_linear_attn"
    tree = ast.parse(f"from {module} import OlmoHybridGatedDeltaNetAttention\n")
    assert backports.needed([tree]) == [OLMO]
    assert backports.for_import(module, "OlmoHybridGatedDeltaNetAttention") is OLMO


def test_the_table_repoints_bailings_layer_and_needed_finds_it():
    module = "vllm.model_executor.layers.mamba.linear.bailing_linear_attn"
    tree = ast.parse(f"from {module} import BailingMoELinearAttention\n")
    # with the rope back-port it imports: its RoPE is upstream's get_rope, as every migrated file's (P22)
    assert backports.needed([tree]) == [BAILING, backports.ROPE]
    assert backports.for_import(module, "BailingMoELinearAttention") is BAILING


def test_the_table_repoints_kimis_layer_and_needed_finds_it():
    module = "vllm.model_executor.layers.mamba.gdn.kimi_gdn_linear_attn"
    tree = ast.parse(f"from {module} import KimiGatedDeltaNetAttention\n")
    assert backports.needed([tree]) == [KIMI]
    assert backports.for_import(module, "KimiGatedDeltaNetAttention") is KIMI


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


BAILING_RUNTIME = '''
    import math
    import vllm.platforms as platforms
    from vllm.platforms.cpu import CpuPlatform
    platforms._current_platform = CpuPlatform()
    import torch.nn.functional as F
    from transformers import PretrainedConfig
    from vllm.config import get_current_vllm_config
    from vllm.forward_context import set_forward_context
    from vllm.model_executor.layers.mamba import linear_attn as pinned
    from vllm.v1.attention.backends.linear_attn import LinearAttentionMetadata
    from vllm.model_executor.model_loader.weight_utils import default_weight_loader
    import bailing_linear_attn as bp

    HID, NH, D, L, T, THETA = 32, 4, 8, 4, 6, 10000.0

    # the pinned lightning-attention prefill kernel (Triton), as a torch recurrence over one sequence
    def prefix_fn(q, k, v, kv_cache, slope_rate, block_size, layer_idx=None, **kw):
        S = kv_cache.float().clone()
        out = []
        for t in range(q.shape[1]):
            S = torch.exp(-slope_rate.float()) * S + k[:, t, :, None] * v[:, t, None, :]
            out.append(torch.einsum("hd,hde->he", q[:, t], S).reshape(-1))
        kv_cache.copy_(S)
        return torch.stack(out)
    pinned.MiniMaxText01LinearKernel.jit_linear_forward_prefix = staticmethod(prefix_fn)

    def rope(x, pos):
        inv = 1.0 / THETA ** (torch.arange(0, D, 2).float() / D)
        ang = pos[:, None].float() * inv
        cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    def rms(x, w, eps, groups=1):
        xs = x.reshape(*x.shape[:-1], groups, -1)
        return (xs / (xs.pow(2).mean(-1, keepdim=True) + eps).sqrt()).reshape(x.shape) * w

    def run(case, layer_idx, **opts):
        cfg = PretrainedConfig(hidden_size=HID, num_attention_heads=NH, head_dim=D, max_position_embeddings=64,
                               num_hidden_layers=L, rms_norm_eps=1e-6, use_bias=False, use_qkv_bias=True,
                               rope_theta=THETA, **opts)
        prefix = f"model.layers.{layer_idx}.self_attn"
        layer = bp.BailingMoELinearAttention(cfg, get_current_vllm_config(), prefix=prefix)
        torch.manual_seed(layer_idx)
        r = lambda *s: torch.randn(*s) * 0.3
        ckpt = {"query_key_value.weight": r(3 * NH * D, HID), "query_key_value.bias": r(3 * NH * D),
                "g_proj.weight": r(NH * D, HID), "dense.weight": r(HID, NH * D), "g_norm.weight": 1 + r(NH * D)}
        if opts.get("use_qk_norm"):
            ckpt.update({"query_layernorm.weight": 1 + r(D), "key_layernorm.weight": 1 + r(D)})
        params = dict(layer.named_parameters())
        shapes_ok = {n: tuple(p.shape) for n, p in params.items()} == {n: tuple(t.shape) for n, t in ckpt.items()}
        for n, t in ckpt.items():
            getattr(params[n], "weight_loader", default_weight_loader)(params[n], t.clone())
        for mod in layer.modules():
            if getattr(mod, "quant_method", None) is not None:
                mod.quant_method.process_weights_after_loading(mod)
        print(case + "_shapes", shapes_ok and layer.get_state_shape() == ((NH, D, D),), layer.get_state_shape(), sorted(params))
        layer.kv_cache = [[torch.full((2, NH, D, D), 7.0)]]  # a stale state the new sequence must not see
        md = LinearAttentionMetadata(num_prefills=1, num_prefill_tokens=T, num_decodes=0, num_decode_tokens=0,
                                     query_start_loc=torch.tensor([0, T]), seq_lens=torch.tensor([T]),
                                     state_indices_tensor=torch.tensor([1]))
        x, pos = torch.randn(T, HID), torch.arange(T)
        out = torch.zeros_like(x)
        with torch.no_grad(), set_forward_context({prefix: md}, get_current_vllm_config()):
            layer(hidden_states=x, output=out, positions=pos)

        # plain PyTorch, from upstream's layer
        qkv = x @ ckpt["query_key_value.weight"].T + ckpt["query_key_value.bias"]
        if opts.get("use_linear_silu"):
            qkv = F.silu(qkv)
        q, k, v = (t.reshape(T, NH, D) for t in qkv.split(NH * D, dim=-1))
        if opts.get("use_qk_norm"):
            q, k = rms(q, ckpt["query_layernorm.weight"], 1e-6), rms(k, ckpt["key_layernorm.weight"], 1e-6)
        if opts.get("linear_rope", True):
            q, k = rope(q, pos), rope(k, pos)
        q = q * D ** -0.5
        slopes = torch.tensor([2.0 ** (-8 / NH * (h + 1)) for h in range(NH)]) * (1 - layer_idx / (L - 1) + 1e-5)
        dist = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).float()
        decay = torch.where(dist >= 0, torch.exp(-slopes[:, None, None] * dist), torch.zeros(()))
        attn = torch.einsum("thd,jhd->htj", q, k) * decay
        hidden = torch.einsum("htj,jhe->the", attn, v).reshape(T, NH * D)
        gate = x @ ckpt["g_proj.weight"].T
        groups = opts.get("group_norm_size", 1)
        hidden = rms(hidden, ckpt["g_norm.weight"], 1e-6, groups) * gate.sigmoid()
        want = hidden @ ckpt["dense.weight"].T
        err = (out - want).abs().max().item()
        print(case + "_slopes", torch.allclose(layer.tp_slope.flatten(), slopes), layer.tp_slope.flatten().tolist())
        print(case + "_matches", want.abs().max().item() > 1e-2 and err < 1e-4 * max(1.0, want.abs().max().item()), err)

    run("gated_groups", 1, use_qk_norm=True, group_norm_size=2)
    run("silu_norope", 2, use_linear_silu=True, linear_rope=False)
'''


@pytest.mark.slow
def test_bailing_linear_attention_matches_plain_torch_on_the_real_pinned_vllm(tmp_path):
    lines = run_in_pinned_venv(tmp_path, BAILING_RUNTIME)
    for case in ("gated_groups", "silu_norope"):
        for check in ("shapes", "slopes", "matches"):
            assert lines[f"{case}_{check}"].startswith("True"), (case, check, lines[f"{case}_{check}"])


KIMI_RUNTIME = '''
    import copy
    import vllm.platforms as platforms
    from vllm.platforms.cpu import CpuPlatform
    platforms._current_platform = CpuPlatform()
    import torch.nn.functional as F
    from transformers import PretrainedConfig
    from vllm.config import get_current_vllm_config
    from vllm.forward_context import set_forward_context
    from vllm.model_executor.layers import kda as pinned_kda
    from vllm.model_executor.layers.fla.ops import kda as pinned_fla_kda
    from vllm.v1.attention.backends.gdn_attn import GDNAttentionMetadata
    import stacked_weights as sw
    import kimi_gdn_linear_attn as bp

    HID, NH, D, K, T = 32, 2, 8, 4, 6
    P = NH * D

    def kda_recurrence(q, k, v, g, beta, S):
        \"\"\"[T, H, D] inputs, per-channel log decay g, state S [H, D, D]: the KDA delta rule.\"\"\"
        q, k = F.normalize(q, dim=-1, eps=1e-6) * D ** -0.5, F.normalize(k, dim=-1, eps=1e-6)
        out = []
        for t in range(q.shape[0]):
            S = S * g[t].exp()[:, :, None]
            delta = (v[t] - torch.einsum("hkv,hk->hv", S, k[t])) * beta[t][:, None]
            S = S + torch.einsum("hk,hv->hkv", k[t], delta)
            out.append(torch.einsum("hkv,hk->hv", S, q[t]))
        return torch.stack(out), S

    def conv_fn(x, weight, bias, activation=None, conv_states=None, has_initial_state=None, cache_indices=None,
                query_start_loc=None, metadata=None):
        return F.silu(F.conv1d(x[None].float(), weight[:, None, :], padding=K - 1, groups=x.shape[0])[0, :, :x.shape[1]]).to(x.dtype)

    def chunk_fn(q, k, v, g, beta, initial_state, output_final_state, use_qk_l2norm_in_kernel, cu_seqlens):
        out, S = kda_recurrence(q[0].float(), k[0].float(), v[0].float(), g[0], beta[0], initial_state[0].float())
        return out[None], S[None]

    def norm_fn(x, g, weight, bias, activation="swish", residual=None, prenorm=False, residual_in_fp32=False, eps=1e-6):
        assert activation == "sigmoid"
        return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight * g.sigmoid()).to(x.dtype)

    pinned_kda.causal_conv1d_fn, pinned_kda.chunk_kda = conv_fn, chunk_fn
    pinned_fla_kda.rms_norm_gated = norm_fn

    cfg = PretrainedConfig(hidden_size=HID, rms_norm_eps=1e-6)
    cfg.linear_attn_config = {"head_dim": D, "num_heads": NH, "short_conv_kernel_size": K,
                              "use_full_rank_gate": False, "gate_lower_bound": None}
    PREFIX = "model.layers.0.linear_attn"

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear_attn = bp.KimiGatedDeltaNetAttention(cfg, get_current_vllm_config(), prefix=PREFIX)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Layer()

    # upstream alice_ai.py's mapping for the KDA tensors (its conv shards load the same way)
    STACKED = {".linear_attn.q_proj": (".linear_attn.in_proj_qkvgfab", 0),
               ".linear_attn.k_proj": (".linear_attn.in_proj_qkvgfab", 1),
               ".linear_attn.v_proj": (".linear_attn.in_proj_qkvgfab", 2),
               ".linear_attn.b_proj": (".linear_attn.in_proj_qkvgfab", 3),
               ".linear_attn.f_a_proj": (".linear_attn.in_proj_qkvgfab", 4),
               ".q_conv1d": (".conv1d", 0), ".k_conv1d": (".conv1d", 1), ".v_conv1d": (".conv1d", 2)}
    torch.manual_seed(0)
    r = lambda *s: torch.randn(*s) * 0.3
    ckpt = {"q_proj.weight": r(P, HID), "k_proj.weight": r(P, HID), "v_proj.weight": r(P, HID),
            "b_proj.weight": r(NH, HID), "f_a_proj.weight": r(D, HID), "f_b_proj.weight": r(P, D),
            "g_a_proj.weight": r(D, HID), "g_b_proj.weight": r(P, D), "dt_bias": r(P),
            "q_conv1d.weight": r(P, 1, K), "k_conv1d.weight": r(P, 1, K), "v_conv1d.weight": r(P, 1, K),
            "A_log": r(1, 1, NH, 1), "o_norm.weight": 1 + r(D), "o_proj.weight": r(HID, P)}
    m = Model()
    loaded = sw.AutoWeightsLoader(m).load_weights([("model.linear_attn." + n, t.clone()) for n, t in ckpt.items()],
                                                  mapper=sw.WeightsMapper(orig_to_new_stacked=STACKED))
    for mod in m.modules():
        if getattr(mod, "quant_method", None) is not None:
            mod.quant_method.process_weights_after_loading(mod)
    layer = m.model.linear_attn
    params = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    print("all_loaded", set(loaded) == {"model.linear_attn." + n for n in params}, sorted(loaded))
    print("shapes", params == {"in_proj_qkvgfab.weight": (3 * P + NH + D, HID), "f_b_proj.weight": (P, D), "dt_bias": (P,),
                               "conv1d.weight": (3 * P, 1, K), "A_log": (NH,), "g_a_proj.weight": (D, HID),
                               "g_b_proj.weight": (P, D), "o_norm.weight": (D,), "o_proj.weight": (HID, P)}, params)
    print("old_A_log_loads", torch.equal(layer.A_log, ckpt["A_log"].flatten()))
    print("state", layer.mamba_type == "gdn_attention" and len(layer.get_state_shape()) == 4, layer.get_state_shape())

    shapes = layer.get_state_shape()
    layer.kv_cache = [tuple(torch.full((2, *s), 5.0) for s in shapes)]  # stale: a new sequence starts from zero
    md = GDNAttentionMetadata(num_prefills=1, num_prefill_tokens=T, num_decodes=0, num_decode_tokens=0,
                              num_spec_decodes=0, num_spec_decode_tokens=0, num_actual_tokens=T,
                              has_initial_state=torch.tensor([False]), non_spec_query_start_loc=torch.tensor([0, T]),
                              non_spec_state_indices_tensor=torch.tensor([1]))
    x = torch.randn(T, HID)
    with torch.no_grad(), set_forward_context({PREFIX: md}, get_current_vllm_config()):
        got = layer(hidden_states=x, positions=torch.arange(T))

    def conv(w, y):
        return F.silu(F.conv1d(y.T[None], w, padding=K - 1, groups=y.shape[1])[0, :, :T]).T
    q, k, v = (conv(ckpt[f"{n}_conv1d.weight"], x @ ckpt[f"{n}_proj.weight"].T).view(T, NH, D) for n in "qkv")
    g = -ckpt["A_log"].flatten().exp()[:, None] * F.softplus(((x @ ckpt["f_a_proj.weight"].T) @ ckpt["f_b_proj.weight"].T
                                                               + ckpt["dt_bias"]).view(T, NH, D))
    beta = (x @ ckpt["b_proj.weight"].T).sigmoid()
    o, S = kda_recurrence(q, k, v, g, beta, torch.zeros(NH, D, D))
    gate = ((x @ ckpt["g_a_proj.weight"].T) @ ckpt["g_b_proj.weight"].T).view(T, NH, D)
    o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + 1e-5) * ckpt["o_norm.weight"] * gate.sigmoid()
    want = o.reshape(T, P) @ ckpt["o_proj.weight"].T
    err = (got - want).abs().max().item()
    print("matches", want.abs().max().item() > 1e-2 and err < 1e-4 * max(1.0, want.abs().max().item()), err)
    print("final_state_cached", torch.allclose(layer.kv_cache[0][3][1], S, atol=1e-5))
    for key, value in (("use_full_rank_gate", True), ("gate_lower_bound", -1.0)):
        bad = copy.copy(cfg)
        bad.linear_attn_config = dict(cfg.linear_attn_config, **{key: value})
        try:
            bp.KimiGatedDeltaNetAttention(bad, get_current_vllm_config(), prefix=f"model.layers.9.{key}")
            print("refuses_" + key, False)
        except NotImplementedError:
            print("refuses_" + key, True)
'''


@pytest.mark.slow
def test_kimi_kda_builds_loads_and_matches_plain_torch_on_the_real_pinned_vllm(tmp_path):
    lines = run_in_pinned_venv(tmp_path, KIMI_RUNTIME)
    for case in ("all_loaded", "shapes", "old_A_log_loads", "state", "matches", "final_state_cached",
                 "refuses_use_full_rank_gate", "refuses_gate_lower_bound"):
        assert lines[case].startswith("True"), (case, lines[case])
