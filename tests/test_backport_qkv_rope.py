"""P22 ``qkv_linear.py``: upstream's ``QKVParallelLinear(v_head_size=...)`` (MiMo-V2-Flash), and ``rope.py``: upstream's
``get_rope`` for Gemma 4's "proportional" RoPE and YaRN's scale (checked against upstream's formulas), on the real
vLLM 0.13.0.

The layer is checked against a dense reference: the q/k/v projections loaded one by one (the weight through
the pinned v2 loader, the bias through the v1 loader) and as one fused checkpoint tensor give
``[x Wq + bq | x Wk + bk | x Wv + bv]`` with V heads of their own size; without ``v_head_size`` it is the
pinned layer. The runtime half skips without $MMF_PINNED_VENV.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv


def test_the_keyword_needs_the_backport_and_a_plain_call_does_not():
    uses = ast.parse("from vllm.model_executor.layers.linear import QKVParallelLinear\n"
                     "p = QKVParallelLinear(8, 6, 2, 1, v_head_size=4)\n")
    plain = ast.parse("from vllm.model_executor.layers.linear import QKVParallelLinear\n"
                      "p = QKVParallelLinear(8, 6, 2, 1)\n")
    assert backports.for_keyword("vllm.model_executor.layers.linear.QKVParallelLinear", "v_head_size") \
        is backports.QKV_LINEAR
    assert backports.needed([uses], pinned_lacks=lambda module, name: False) == [backports.QKV_LINEAR]
    assert backports.needed([plain], pinned_lacks=lambda module, name: False) == []


QKV = '''
    from vllm.model_executor.layers.linear import QKVParallelLinear as Pinned
    from qkv_linear import QKVParallelLinear

    torch.manual_seed(0)
    H, D, DV, NH, NKV = 8, 6, 4, 2, 1
    wq, wk, wv = torch.randn(NH * D, H), torch.randn(NKV * D, H), torch.randn(NKV * DV, H)
    bq, bk, bv = torch.randn(NH * D), torch.randn(NKV * D), torch.randn(NKV * DV)
    x = torch.randn(3, H)
    dense = torch.cat([x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv], dim=-1)

    layer = QKVParallelLinear(H, D, NH, NKV, bias=True, v_head_size=DV)
    print("sizes", layer.output_sizes == [NH * D, NKV * D, NKV * DV] and layer.weight.shape == (22, H))
    for sid, w, b in (("q", wq, bq), ("k", wk, bk), ("v", wv, bv)):
        layer.weight.weight_loader(layer.weight, w, sid)
        layer.bias.weight_loader(layer.bias, b, sid)
    out, _ = layer(x)
    print("shards", torch.allclose(out, dense, atol=1e-5))

    fused = QKVParallelLinear(H, D, NH, NKV, bias=True, v_head_size=DV)
    fused.weight.weight_loader(fused.weight, torch.cat([wq, wk, wv]))
    fused.bias.weight_loader(fused.bias, torch.cat([bq, bk, bv]))
    out, _ = fused(x)
    print("fused", torch.allclose(out, dense, atol=1e-5))

    same, pinned = QKVParallelLinear(H, D, NH, NKV, bias=False), Pinned(H, D, NH, NKV, bias=False)
    print("plain", same.output_sizes == pinned.output_sizes and same.weight.shape == pinned.weight.shape
          and same._get_shard_offset_mapping("v") == pinned._get_shard_offset_mapping("v"))
    from vllm.model_executor.layers.quantization.fp8 import Fp8Config
    try:
        QKVParallelLinear(H, D, NH, NKV, v_head_size=DV, quant_config=Fp8Config())
        print("quantized", "built")
    except NotImplementedError:
        print("quantized", True)
'''


@pytest.mark.slow
def test_qkv_with_a_v_head_size_of_its_own_on_the_real_pinned_vllm(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, QKV)
    for check in ("sizes", "shards", "fused", "plain", "quantized"):
        assert lines[check] == "True", check


# -- rope.py: upstream's get_rope "proportional" (Gemma 4) ------------------------------------------------

def test_gemma4s_and_llamas_modules_need_the_rope_backport_and_another_does_not():
    tree = ast.parse("from vllm.model_executor.layers.rotary_embedding import get_rope\n")
    # llama.py: Ministral 3 (mistral.py over llama.py's LlamaAttention) has YaRN with mscale = mscale_all_dim = 1
    for module in ("gemma4", "llama"):
        assert backports.needed([tree], pinned_lacks=lambda m, n: False,
                                origins=[f"vllm.model_executor.models.{module}"]) == [backports.ROPE]
    assert backports.needed([tree], pinned_lacks=lambda m, n: False,
                            origins=["vllm.model_executor.models.qwen2"]) == []


ROPE = '''
    from vllm.model_executor.layers.rotary_embedding import get_rope as pinned_get_rope
    import rope

    D, BASE, FACTOR = 16, 10000.0, 0.25
    emb = rope.get_rope(D, 64, True, {"rope_type": "proportional", "rope_theta": BASE, "partial_rotary_factor": FACTOR})
    # upstream's formula (HF _compute_proportional_rope_parameters): head_size in the exponent, the rest unrotated
    angles = int(D * FACTOR) // 2
    inv = torch.cat([1.0 / BASE ** (torch.arange(0, 2 * angles, 2, dtype=torch.float) / D), torch.zeros(D // 2 - angles)])
    pos = torch.arange(5)
    freqs = torch.outer(pos.float(), inv)
    print("cache", torch.allclose(emb.cos_sin_cache[:5], torch.cat([freqs.cos(), freqs.sin()], dim=-1), atol=1e-6))
    q, k = torch.randn(5, 2 * D), torch.randn(5, D)
    rq, rk = emb.forward_native(pos, q.clone(), k.clone())
    emb2 = torch.cat([freqs, freqs], dim=-1)
    def rot(x):
        x = x.view(5, -1, D)
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        return (x * emb2.cos()[:, None] + torch.cat([-x2, x1], dim=-1) * emb2.sin()[:, None]).view(5, -1)
    print("rotation", torch.allclose(rq, rot(q), atol=1e-5) and torch.allclose(rk, rot(k), atol=1e-5))
    # the unrotated half of each head passes through
    print("nope", torch.allclose(rq.view(5, 2, D)[..., angles:D // 2], q.view(5, 2, D)[..., angles:D // 2]))
    plain = {"rope_type": "default", "rope_theta": BASE}
    print("delegates", rope.get_rope(D, 64, True, plain) is pinned_get_rope(D, 64, True, plain))
    try:
        pinned_get_rope(D, 64, True, {"rope_type": "proportional", "rope_theta": BASE})
        print("pinned_lacks", False)
    except ValueError:
        print("pinned_lacks", True)
'''


@pytest.mark.slow
def test_proportional_rope_on_the_real_pinned_vllm(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, ROPE)
    for check in ("cache", "rotation", "nope", "delegates", "pinned_lacks"):
        assert lines[check] == "True", check


YARN = '''
    import math
    from vllm.model_executor.layers.rotary_embedding import get_rope as pinned_get_rope
    import rope

    D, BASE, FACTOR, ORIG = 16, 10000.0, 16.0, 32
    yarn = {"rope_type": "yarn", "rope_theta": BASE, "factor": FACTOR, "original_max_position_embeddings": ORIG,
            "beta_fast": 32.0, "beta_slow": 1.0}
    plain = pinned_get_rope(D, 512, True, dict(yarn))
    # the pinned scale with no upstream key: yarn_get_mscale(factor), upstream's too (the same cache)
    pinned_scale = 0.1 * math.log(FACTOR) + 1.0
    print("plain", torch.equal(rope.get_rope(D, 512, True, dict(yarn)).cos_sin_cache, plain.cos_sin_cache))
    # Ministral 3: mscale = mscale_all_dim = 1 -> upstream's scale is yarn_get_mscale(f, 1) / yarn_get_mscale(f, 1) = 1
    ministral = dict(yarn, mscale=1.0, mscale_all_dim=1.0, llama_4_scaling_beta=0.1)
    got = rope.get_rope(D, 512, True, ministral).cos_sin_cache
    print("mscale", torch.allclose(got, plain.cos_sin_cache / pinned_scale, atol=1e-6))
    # mscale = 1, mscale_all_dim = 0.5 -> (0.1 ln f + 1) / (0.05 ln f + 1)
    ratio = (0.1 * math.log(FACTOR) + 1) / (0.05 * math.log(FACTOR) + 1)
    got = rope.get_rope(D, 512, True, dict(yarn, mscale=1.0, mscale_all_dim=0.5)).cos_sin_cache
    print("ratio", torch.allclose(got, plain.cos_sin_cache / pinned_scale * ratio, atol=1e-6))
    got = rope.get_rope(D, 512, True, dict(yarn, attention_factor=0.75)).cos_sin_cache
    print("attention_factor", torch.allclose(got, plain.cos_sin_cache / pinned_scale * 0.75, atol=1e-6))
    # the drift itself: the pinned get_rope reads none of the three keys
    print("pinned_differs", torch.equal(pinned_get_rope(D, 512, True, ministral).cos_sin_cache, plain.cos_sin_cache))
'''


@pytest.mark.slow
def test_yarn_scale_on_the_real_pinned_vllm(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, YARN)
    for check in ("plain", "mscale", "ratio", "attention_factor", "pinned_differs"):
        assert lines[check] == "True", check


# -- rope.py: upstream's get_rope FoPE (InternS1-Pro) -------------------------------------------------------------

def test_interns1_pros_module_needs_the_rope_backport():
    tree = ast.parse("from vllm.model_executor.layers.rotary_embedding import get_rope\n")
    assert backports.needed([tree], pinned_lacks=lambda m, n: False,
                            origins=["vllm.model_executor.models.interns1_pro"]) == [backports.ROPE]


FOPE = '''
    from vllm.model_executor.layers.rotary_embedding import get_rope as pinned_get_rope
    import rope

    torch.manual_seed(0)
    D, NH, NKV, MAXPOS, BASE, T = 16, 4, 2, 64, 10000.0, 6

    def reference(q, k, pos, cos_coef, sin_coef, num_inv_freq):
        """FoPE in plain torch: the selected inverse frequencies mixed per KV head by the coefficients into the
        head's cos / sin (padded with 1, both halves alike), applied neox-style; a query head uses its group's."""
        inv = 1.0 / BASE ** (torch.arange(0, D, 2, dtype=torch.float) / D)
        inv = inv[:num_inv_freq] if num_inv_freq is not None else inv[inv > 2 * torch.pi / MAXPOS]
        ang = pos.float()[:, None] * inv[None]                          # (T, F)
        coefs = [(cos_coef[h], sin_coef[h]) for h in range(NKV)]
        out = []
        for x, heads in ((q, NH), (k, NKV)):
            x = x.view(T, heads, D)
            y = torch.empty_like(x)
            for j in range(heads):
                cc, sc = coefs[j // (heads // NKV)]
                c = torch.cat([ang.cos() @ cc, torch.ones(T, D // 2 - ang.shape[1])], dim=-1).repeat(1, 2)
                s = torch.cat([ang.sin() @ sc, torch.ones(T, D // 2 - ang.shape[1])], dim=-1).repeat(1, 2)
                x1, x2 = x[:, j, : D // 2], x[:, j, D // 2:]
                y[:, j] = x[:, j] * c + torch.cat([-x2, x1], dim=-1) * s
            out.append(y.view(T, -1))
        return out

    pos = torch.tensor([0, 3, 1, 7, 63, 20])
    q, k = torch.randn(T, NH * D), torch.randn(T, NKV * D)
    for name, num_inv_freq, sep_head in (("sep_head", None, True), ("num_inv_freq", 5, True)):
        params = {"rope_type": "default", "rope_theta": BASE, "use_fope": True, "fope_init_factor": 0.5,
                  "fope_sep_head": sep_head, "num_inv_freq": num_inv_freq, "num_key_value_heads": NKV}
        emb = rope.get_rope(D, MAXPOS, True, params, torch.float32)
        F = emb.inv_freq.numel()
        shape = (NKV, F, F)
        cos_coef, sin_coef = torch.randn(shape), torch.randn(shape)
        # a checkpoint holds every KV head's coefficients; the layer's own loader takes this rank's
        emb.cos_coef.weight_loader(emb.cos_coef, cos_coef)
        emb.sin_coef.weight_loader(emb.sin_coef, sin_coef)
        rq, rk = emb.forward_native(pos, q.clone(), k.clone())
        eq, ek = reference(q, k, pos, cos_coef, sin_coef, num_inv_freq)
        print(name, type(emb).__name__ == "FourierRotaryEmbedding" and F == (3 if num_inv_freq is None else 5)
              and torch.allclose(rq.reshape(T, -1), eq, atol=1e-4) and torch.allclose(rk.reshape(T, -1), ek, atol=1e-4))
        # as upstream's _ROPE_DICT: the same arguments give the same module (every layer shares the coefficients)
        print(name + "_shared", rope.get_rope(D, MAXPOS, True, dict(params), torch.float32) is emb)
    # upstream's fope_sep_head=False path mixes 3-D coefficients with a 2-D einsum and raises when built: so does
    # the back-port (the same code), rather than computing something upstream does not
    try:
        rope.get_rope(D, MAXPOS, True, dict(params, fope_sep_head=False), torch.float32)
        print("not_sep_head", False)
    except RuntimeError:
        print("not_sep_head", True)
    # 0.13.0's own get_rope ignores use_fope: plain RoPE, no coefficients (what the back-port is for)
    plain = pinned_get_rope(D, MAXPOS, True, dict(params), torch.float32)
    print("pinned_plain", not hasattr(plain, "cos_coef"))
    # an M-RoPE config takes upstream's M-RoPE branch first: the pinned get_rope, as upstream would
    mrope = dict(params, mrope_section=[2, 3, 3])
    print("mrope_delegates", rope.get_rope(D, MAXPOS, True, mrope, torch.float32)
          is pinned_get_rope(D, MAXPOS, True, mrope, torch.float32))
'''


@pytest.mark.slow
def test_fope_on_the_real_pinned_vllm_matches_plain_torch(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, FOPE)
    for check in ("sep_head", "sep_head_shared", "num_inv_freq", "num_inv_freq_shared", "not_sep_head", "pinned_plain",
                  "mrope_delegates"):
        assert lines[check] == "True", check
