"""The reference attention's KV cache within one prefill (``verify/_runtime_forward.py``).

vLLM's attention writes the keys/values it is given to its KV cache and a call without them reads that cache.
IQuest LoopCoder runs its layers twice: the second loop attends to the first loop's keys through
``attn[0](q, None, None)``. The reference attention keeps the last key/value each layer was given, so both
sides read what the layer wrote; before, the forward failed on both (``'NoneType' object has no attribute
'reshape'``), and iquest_loopcoder, a "0 left" file, failed a level.
"""

from __future__ import annotations

from analysis_helpers import verified_to_match


def test_a_loop_that_reads_an_earlier_loops_keys_runs_and_matches_upstream(tmp_path):
    report = verified_to_match(tmp_path, "iquest_loopcoder")
    assert report["max_abs_logit_diff"] <= 1e-3, report


def test_a_drafts_attention_over_the_targets_kv_cache_runs_and_matches_upstream(tmp_path):
    """Gemma 4's MTP layers attend with q only (attn(q, None, None)) over the target layer's K/V the proposer shares
    (kv_sharing_target_layer_name); no target runs here, so forward failed on both sides ('called without
    key/value before any were written'). A draft's attention that reads K/V it never wrote gets fixed keys and
    values for the prefill's tokens, the same in both venvs, as its target hidden states are."""
    report = verified_to_match(tmp_path, "gemma4_mtp")
    assert report["max_abs_logit_diff"] <= 1e-3, report
    assert any("read the target's KV cache" in n and "self_attn.attn" in n for n in report["notes"]), report["notes"]


def test_only_a_drafts_attention_reads_the_fixed_target_kv():
    from worker_helpers import run_in_worker

    out = run_in_worker("""
        import sys, json; sys.path.insert(0, sys.argv[1])
        import torch, _runtime_forward as F
        from _runtime_env import LevelError
        F._reference_attention()

        class Layer(torch.nn.Module):  # the fields the reference attention reads of vLLM's Attention
            num_heads, num_kv_heads, head_size, layer_name = 4, 2, 8, "draft.layers.0.attn"

        from vllm.attention.layer import Attention
        q = torch.ones(5, 32)
        plain = Layer()
        try:
            Attention.forward(plain, q, None, None)
            raised = False
        except LevelError:
            raised = True
        draft = Layer()
        marked = F._mark_target_kv(torch.nn.ModuleList([draft]))
        a = Attention.forward(draft, q, None, None)
        k, v = F._target_kv(q, 4, 2, 8, 8)
        print(json.dumps([raised, len(marked), list(a.shape), bool(draft._mmf_target_kv_used),
                          list(k.shape), bool(torch.equal(k, F._target_kv(q, 4, 2, 8, 8)[0]))]))
    """)
    assert out == [True, 1, [5, 32], True, [5, 16], True]


def test_an_encoder_only_window_is_a_band_both_ways():
    """The OpenAI privacy filter's EncoderOnlyAttention(per_layer_sliding_window=W): vLLM masks (W - 1, W - 1) for
    encoder-only attention (0.13.0's CPU backend, upstream's kernels); the reference masked the left side only, so
    a prompt longer than the window saw every later token on both sides. A decoder's window stays causal."""
    from worker_helpers import run_in_worker

    out = run_in_worker("""
        import sys, json; sys.path.insert(0, sys.argv[1])
        import torch, _runtime_forward as F
        F._reference_attention()
        from vllm.attention.layer import Attention

        class Layer(torch.nn.Module):
            num_heads, num_kv_heads, head_size, sliding_window = 1, 1, 1, 2

        q = torch.zeros(5, 1)  # equal scores: each token averages the values it may see
        v = torch.arange(5.0).reshape(5, 1)
        enc, dec = Layer(), Layer()
        enc.attn_type, dec.attn_type = "encoder_only", "decoder"
        print(json.dumps([Attention.forward(enc, q, q, v).flatten().tolist(),
                          Attention.forward(dec, q, q, v).flatten().tolist()]))
    """)
    assert out == [[0.5, 1.0, 2.0, 3.0, 3.5], [0.0, 0.5, 1.5, 2.5, 3.5]]
