"""P22 back-port mm_encoder_attention.py: upstream's ViT attention helpers (compute_max_seqlen,
maybe_compute_seq_lens, maybe_recompute_cu_seqlens) and forward(sequence_lengths=) over the pinned
MMEncoderAttention, run on the real pinned layer; and the migration re-points upstream's import there."""

from __future__ import annotations

from tests.analysis_helpers import migrate_example as migrate
from tests.test_backports import run_in_pinned_venv

RUN = '''
    import numpy as np
    from vllm.attention.backends.registry import AttentionBackendEnum as B
    from vllm.attention.layers.mm_encoder_attention import MMEncoderAttention as Pinned
    import mm_encoder_attention as bp

    A = bp.MMEncoderAttention
    cu = np.array([0, 3, 7, 12], dtype=np.int32)
    print("max_sdpa", A.compute_max_seqlen(B.TORCH_SDPA, cu))
    print("max_fa", A.compute_max_seqlen(B.FLASH_ATTN, cu))
    print("max_fa_one", A.compute_max_seqlen(B.FLASH_ATTN, cu[:1]))
    print("seq_lens", A.maybe_compute_seq_lens(B.TORCH_SDPA, cu, torch.device("cpu")))
    t = A.maybe_recompute_cu_seqlens(B.TORCH_SDPA, cu, 64, 1, torch.device("cpu"))
    print("cu", t.dtype, t.tolist())
    try:
        A.maybe_compute_seq_lens(B.FLASHINFER, cu, torch.device("cpu"))
    except NotImplementedError:
        print("flashinfer refused")
    print("pinned_lacks", not any(hasattr(Pinned, m) for m in
          ("compute_max_seqlen", "maybe_compute_seq_lens", "maybe_recompute_cu_seqlens")))
    torch.manual_seed(0)
    ours, pinned = A(num_heads=2, head_size=8, scale=8 ** -0.5), Pinned(num_heads=2, head_size=8, scale=8 ** -0.5)
    q, k, v = (torch.randn(1, 12, 2, 8) for _ in range(3))
    cut = torch.from_numpy(cu)
    a = ours(query=q, key=k, value=v, cu_seqlens=cut, max_seqlen=torch.tensor(5), sequence_lengths=None)
    b = pinned(query=q, key=k, value=v, cu_seqlens=cut, max_seqlen=torch.tensor(5))
    print("forward_equal", torch.equal(a, b), tuple(a.shape))
    # no cu_seqlens (Idefics2's ViT): each batch row is one sequence, a 3-D query keeps its layout, as upstream
    q3, k3, v3 = (torch.randn(2, 6, 16) for _ in range(3))
    whole = ours(q3, k3, v3)
    ref = torch.nn.functional.scaled_dot_product_attention(
        *(x.view(2, 6, 2, 8).transpose(1, 2) for x in (q3, k3, v3))).transpose(1, 2).reshape(2, 6, 16)
    print("no_cu", tuple(whole.shape), torch.allclose(whole, ref, atol=1e-6))
    try:
        A(num_heads=2, head_size=8, scale=0.5)
    except NotImplementedError:
        print("scale refused")
    try:
        pinned(query=q, key=k, value=v, cu_seqlens=cut, max_seqlen=torch.tensor(5), sequence_lengths=None)
        print("pinned_takes_sequence_lengths True")
    except TypeError:
        print("pinned_takes_sequence_lengths False")
'''


def test_upstreams_helpers_and_keyword_on_the_real_pinned_layer(tmp_path):
    out = run_in_pinned_venv(tmp_path, RUN)
    assert out["max_sdpa"] == "0" and out["max_fa"] == "5" and out["max_fa_one"] == "0"
    assert out["seq_lens"] == "None" and out["cu"] == "torch.int32 [0, 3, 7, 12]"
    assert out["flashinfer"] == "refused" and out["pinned_lacks"] == "True"
    assert out["forward_equal"] == "True (1, 12, 2, 8)" and out["pinned_takes_sequence_lengths"] == "False"
    assert out["no_cu"] == "(2, 6, 16) True" and out["scale"] == "refused"


UPSTREAM_VIT = '''\
from vllm.model_executor.layers.attention import MMEncoderAttention


def max_len(backend, cu):
    return MMEncoderAttention.compute_max_seqlen(backend, cu)
'''


def test_upstreams_import_comes_from_the_back_port(tmp_path):
    m = migrate(tmp_path, UPSTREAM_VIT)
    assert m.model_unit.text == UPSTREAM_VIT.replace(
        "vllm.model_executor.layers.attention", "vllm_fl.compat.mm_encoder_attention")
    assert [bp.module for bp in m.backports] == ["vllm_fl.compat.mm_encoder_attention"]
    assert not m.left()
