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

def test_every_module_importing_get_rope_needs_the_rope_backport():
    """Which rope a layer builds comes from the checkpoint's config.json (Ministral 3's YaRN mscale through llama.py,
    a Qwen3 checkpoint with YaRN attention_factor through qwen3.py), not from the model file: every import of
    get_rope gets the back-port, whose get_rope is the pinned one wherever upstream computes the same."""
    tree = ast.parse("from vllm.model_executor.layers.rotary_embedding import get_rope\n")
    for module in ("gemma4", "llama", "qwen2", "qwen3", "deepseek_v2", "qwen2_5_vl"):
        assert backports.needed([tree], pinned_lacks=lambda m, n: False,
                                origins=[f"vllm.model_executor.models.{module}"]) == [backports.ROPE], module
    other = ast.parse("from vllm.model_executor.layers.rotary_embedding import MRotaryEmbedding\n")
    assert backports.needed([other], pinned_lacks=lambda m, n: False,
                            origins=["vllm.model_executor.models.qwen2"]) == []


QWEN3 = '''\
from torch import nn
from vllm.model_executor.layers.rotary_embedding import get_rope


class Qwen3Attention(nn.Module):
    def __init__(self, config, max_position: int = 4096) -> None:
        super().__init__()
        self.rotary_emb = get_rope(8, max_position=max_position, rope_parameters=config.rope_parameters)
'''


def test_apply_gives_a_model_other_than_llama_upstreams_get_rope(tmp_path: Path):
    """qwen3.py's attention with a checkpoint whose config says YaRN with attention_factor: 0.13.0's get_rope
    would scale by 0.1 ln(factor) + 1 instead; the migrated file takes get_rope from the back-port."""
    from tests.analysis_helpers import migrate_example
    m = migrate_example(tmp_path, QWEN3, "qwen3")
    assert m.model_unit.text == QWEN3.replace("from vllm.model_executor.layers.rotary_embedding import get_rope",
                                              "from vllm_fl.compat.rope import get_rope")
    assert "P22" in m.model_unit.rules
    assert backports.ROPE in m.backports  # installed as vllm_fl/compat/rope.py by apply


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


# -- rope.py: the pinned get_rope wherever upstream computes the same, upstream's numbers elsewhere ---------------

TABLE = '''
    import math
    from vllm.model_executor.layers.rotary_embedding import deepseek_scaling_rope
    from vllm.model_executor.layers.rotary_embedding import get_rope as pinned_get_rope
    import rope

    # 0.13.0's DeepSeek YaRN builds its frequencies on current_platform.device_type, empty on this script's
    # unspecified platform ("cpu" under verify --run's CPU platform)
    deepseek_scaling_rope.current_platform = types.SimpleNamespace(device_type="cpu")
    D, BASE, MAXPOS = 16, 10000.0, 64
    # rope configs upstream's get_rope (vllm 0.33.0 rotary_embedding/__init__.py) builds with the class and the
    # arguments 0.13.0's does: the back-port hands them to the pinned get_rope (the same cached module). (longrope
    # too, the same class in both; its pinned __init__ reads the current vLLM config, which this script has not.)
    SAME = {
        "none": None,
        "default": {"rope_type": "default", "rope_theta": BASE},
        "partial": {"rope_type": "default", "rope_theta": BASE, "partial_rotary_factor": 0.5},
        "linear": {"rope_type": "linear", "rope_theta": BASE, "factor": 2.0},
        "ntk": {"rope_type": "ntk", "rope_theta": BASE, "factor": 2.0},
        "dynamic_alpha": {"rope_type": "dynamic", "rope_theta": BASE, "alpha": 2.0},
        "llama3": {"rope_type": "llama3", "rope_theta": BASE, "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
        "mrope": {"rope_type": "default", "rope_theta": BASE, "mrope_section": [2, 3, 3]},
        "mrope_interleaved": {"rope_type": "default", "rope_theta": BASE, "mrope_section": [2, 3, 3],
                              "mrope_interleaved": True},
        "deepseek_yarn": {"rope_type": "deepseek_yarn", "rope_theta": BASE, "factor": 4.0,
                          "original_max_position_embeddings": 32, "mscale": 1.0, "mscale_all_dim": 0.5},
        "rope_dim_whole": {"rope_type": "default", "rope_theta": BASE, "rope_dim": D},
    }
    for name, params in SAME.items():
        print(name, rope.get_rope(D, MAXPOS, True, params, torch.float32)
              is pinned_get_rope(D, MAXPOS, True, params, torch.float32))
    # YaRN without upstream's keys: the back-port's own module, the pinned class with the same scale
    yarn = {"rope_type": "yarn", "rope_theta": BASE, "factor": 4.0, "original_max_position_embeddings": 32}
    print("yarn_plain", torch.equal(rope.get_rope(D, MAXPOS, True, dict(yarn), torch.float32).cos_sin_cache,
                                    pinned_get_rope(D, MAXPOS, True, dict(yarn), torch.float32).cos_sin_cache))

    def cache(inv, rows):
        freqs = torch.outer(torch.arange(rows, dtype=torch.float), inv)
        return torch.cat((freqs.cos(), freqs.sin()), dim=-1)

    # M-RoPE + YaRN: upstream's frequencies (mrope.py) span the correction range over original_max_position *
    # mrope_positions_factor, which the migration drops (P6); the back-port refuses it with that reason, and the
    # pinned get_rope cannot build it at all (its MRotaryEmbedding never sets the truncate YaRN reads)
    ymrope = dict(yarn, mrope_section=[2, 3, 3], mscale=1.0, mscale_all_dim=1.0)
    try:
        rope.get_rope(D, MAXPOS, True, dict(ymrope), torch.float32)
        print("mrope_yarn_refused", False)
    except NotImplementedError as exc:
        print("mrope_yarn_refused", "mrope_positions_factor" in str(exc))
    try:
        pinned_get_rope(D, MAXPOS, True, dict(ymrope), torch.float32)
        print("pinned_mrope_yarn_fails", False)
    except AttributeError:
        print("pinned_mrope_yarn_fails", True)
    # upstream's dynamic NTK (dynamic_ntk_scaling_rope.py): base * (f * max_pos / max_trained - (f - 1)) ** (d / (d - 2))
    # over max_pos rows; 0.13.0's base * (f * f - (f - 1)) ** ... over max_pos * f rows
    plain_inv = 1.0 / BASE ** (torch.arange(0, D, 2, dtype=torch.float) / D)
    dyn = {"rope_type": "dynamic", "rope_theta": BASE, "factor": 2.0}
    emb = rope.get_rope(D, MAXPOS, True, dict(dyn), torch.float32)
    print("dynamic", torch.allclose(emb.cos_sin_cache, cache(plain_inv, MAXPOS), atol=1e-5))
    grown = BASE * (2.0 * MAXPOS / 16 - 1.0) ** (D / (D - 2))
    emb = rope.get_rope(D, MAXPOS, True, dict(dyn, max_trained_positions=16), torch.float32)
    print("dynamic_trained", torch.allclose(
        emb.cos_sin_cache, cache(1.0 / grown ** (torch.arange(0, D, 2, dtype=torch.float) / D), MAXPOS), atol=1e-5))
    pinned = pinned_get_rope(D, MAXPOS, True, dict(dyn), torch.float32)
    print("pinned_dynamic_differs", pinned.cos_sin_cache.shape[0] == 2 * MAXPOS
          and not torch.allclose(pinned.cos_sin_cache[:MAXPOS], cache(plain_inv, MAXPOS), atol=1e-3))
    # upstream's DeepSeek YaRN reads no attn_factor (deepseek_scaling_rope.py); 0.13.0's multiplies its scale by it
    ds = dict(SAME["deepseek_yarn"])
    got = rope.get_rope(D, MAXPOS, True, dict(ds, attn_factor=0.5), torch.float32)
    print("deepseek_attn_factor", torch.equal(got.cos_sin_cache, pinned_get_rope(D, MAXPOS, True, ds,
                                                                                  torch.float32).cos_sin_cache))
    print("pinned_deepseek_differs", not torch.equal(
        pinned_get_rope(D, MAXPOS, True, dict(ds, attn_factor=0.5), torch.float32).cos_sin_cache, got.cos_sin_cache))
    # upstream's rotary_dim is rope_dim when set; 0.13.0 ignores the key and rotates the whole head
    got = rope.get_rope(D, MAXPOS, True, {"rope_type": "default", "rope_theta": BASE, "rope_dim": 8}, torch.float32)
    print("rope_dim", got.rotary_dim == 8 and torch.equal(got.cos_sin_cache, cache(
        1.0 / BASE ** (torch.arange(0, 8, 2, dtype=torch.float) / 8), MAXPOS)))
    try:  # upstream's DeepSeek V4 rope is another class: refused, not built as V2/V3's
        rope.get_rope(D, MAXPOS, True, dict(ds, is_deepseek_v4=True), torch.float32)
        print("deepseek_v4_refused", False)
    except NotImplementedError:
        print("deepseek_v4_refused", True)
'''

SAME_CASES = ("none", "default", "partial", "linear", "ntk", "dynamic_alpha", "llama3", "mrope",
              "mrope_interleaved", "deepseek_yarn", "rope_dim_whole", "yarn_plain")
UPSTREAM_CASES = ("mrope_yarn_refused", "pinned_mrope_yarn_fails",
                  "dynamic", "dynamic_trained", "pinned_dynamic_differs", "deepseek_attn_factor",
                  "pinned_deepseek_differs", "rope_dim", "deepseek_v4_refused")


@pytest.mark.slow
def test_get_rope_is_the_pinned_one_where_upstream_computes_the_same_and_upstreams_elsewhere(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, TABLE)
    for check in SAME_CASES + UPSTREAM_CASES:
        assert lines[check] == "True", check
