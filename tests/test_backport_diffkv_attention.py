"""P22 ``diffkv_attention.py``: upstream's ``Attention(head_size_v=...)`` (MiMo-V2-Flash) on the real vLLM 0.13.0.

The back-port runs the pinned layer over heads zero-padded to one size. Checked on the real pinned CPU backend
(its SDPA path, pure torch: this machine has no vLLM C++ ops) against a dense reference
``softmax(q k^T * scale) v`` with V heads of their own size, smaller and larger than Q/K's, grouped KV heads;
the layer it builds caches the padded size, upstream's DiffKV backends hand the choice to the pinned selector,
and without ``head_size_v`` it is the pinned layer. The runtime half skips without $MMF_PINNED_VENV.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv


def test_the_keyword_and_the_diffkv_members_need_the_backport():
    imports = ("from vllm.model_executor.layers.attention import Attention\n"
               "from vllm.v1.attention.backends.registry import AttentionBackendEnum\n")
    uses = ast.parse(imports + "a = Attention(2, 8, 0.1, head_size_v=4)\n")
    member = ast.parse(imports + "b = AttentionBackendEnum.TRITON_ATTN_DIFFKV.get_class()\n")
    plain = ast.parse(imports + "a = Attention(2, 8, 0.1, num_kv_heads=1)\nb = AttentionBackendEnum.FLASH_ATTN\n")
    assert backports.for_keyword("vllm.attention.layer.Attention", "head_size_v") is backports.DIFFKV_ATTENTION
    assert backports.needed([uses], pinned_lacks=lambda m, n: False) == [backports.DIFFKV_ATTENTION]
    assert backports.needed([member], pinned_lacks=lambda m, n: False) == [backports.DIFFKV_ATTENTION]
    assert backports.needed([plain], pinned_lacks=lambda m, n: False) == []


ATTN = '''
    # the CPU platform, as verify --run forces it (0.13.0 picks it only for CPU builds of vLLM)
    import vllm.platforms as platforms
    from vllm.platforms.cpu import CpuPlatform
    platforms._current_platform = CpuPlatform()
    from vllm.attention.backends.abstract import AttentionType
    from vllm.attention.layer import Attention as Pinned
    from vllm.forward_context import set_forward_context
    from types import SimpleNamespace
    from vllm.config import get_current_vllm_config
    import diffkv_attention as d

    CONFIG_VALUE = get_current_vllm_config()

    torch.manual_seed(0)
    T, NH, NKV, SCALE = 5, 4, 2, 0.3

    def dense(q, k, v):  # per head: softmax(q k^T * scale) v, V heads of their own size
        q, k, v = q.view(T, NH, -1), k.view(T, NKV, -1), v.view(T, NKV, -1)
        k, v = k.repeat_interleave(NH // NKV, 1), v.repeat_interleave(NH // NKV, 1)
        p = torch.softmax(torch.einsum("thd,shd->hts", q, k) * SCALE, -1)
        return torch.einsum("hts,shd->thd", p, v).reshape(T, -1)

    def run(name, dk, dv):
        layer = d.Attention(NH, dk, SCALE, NKV, prefix=name, attn_type=AttentionType.ENCODER_ONLY, head_size_v=dv)
        q, k, v = torch.randn(T, NH * dk), torch.randn(T, NKV * dk), torch.randn(T, NKV * dv)
        md = SimpleNamespace(num_actual_tokens=T, sdpa_attn_masks=None, sdpa_start_loc=torch.tensor([0, T]),
                             seq_lens=torch.tensor([T]))
        with set_forward_context({name: md}, CONFIG_VALUE, num_tokens=T):
            out = layer(q, k, v)
        print(name, out.shape == (T, NH * dv) and torch.allclose(out, dense(q, k, v), atol=1e-5)
              and layer.head_size == max(dk, dv) and layer.impl.head_size == max(dk, dv))

    run("v_smaller", 64, 32)   # MiMo-V2-Flash's shape, scaled down: 192 Q/K, 128 V
    run("v_larger", 32, 64)
    run("same", 32, 32)

    # a decoder layer: upstream's DiffKV backend stands in for "no FA3/4"; the pinned selector picks for the padded size
    backend = d.AttentionBackendEnum.TRITON_ATTN_DIFFKV.get_class()
    backend.set_head_size_v(32)
    print("no_fa3", d.AttentionBackendEnum.FLASH_ATTN_DIFFKV.get_class().is_supported_on_current_device(
        head_size=64, head_size_v=32, has_sinks=False) is False)
    dec = d.Attention(NH, 64, SCALE, NKV, prefix="dec", attn_backend=backend, head_size_v=32)
    pinned = Pinned(NH, 64, SCALE, NKV, prefix="pinned")
    print("decoder", dec.attn_backend is pinned.attn_backend
          and dec.get_kv_cache_spec(CONFIG_VALUE).head_size == 64)
    print("pinned_members", d.AttentionBackendEnum.CPU_ATTN is d._PinnedAttentionBackendEnum.CPU_ATTN
          and d.AttentionBackendEnum["FLASH_ATTN"] is d._PinnedAttentionBackendEnum.FLASH_ATTN
          and d.AttentionBackendEnum["TRITON_ATTN_DIFFKV"].name == "TRITON_ATTN_DIFFKV")
    try:
        Pinned(NH, 64, SCALE, NKV, prefix="rejects", head_size_v=32)
        print("pinned_rejects", False)
    except TypeError:
        print("pinned_rejects", True)
'''


@pytest.mark.slow
def test_attention_with_a_v_head_size_of_its_own_on_the_real_pinned_vllm(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, ATTN)
    for check in ("v_smaller", "v_larger", "same", "no_fa3", "decoder", "pinned_members", "pinned_rejects"):
        assert lines.get(check) == "True", (check, lines)
