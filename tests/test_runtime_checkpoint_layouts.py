"""A checkpoint named by upstream vLLM's own class whose ``load_weights`` reads a layout other than the
conventional split one (``verify/checkpoint_layouts.py``), each layout kept only when upstream's own loader
writes every parameter back exactly:

- Step3's text model reads its routed experts as one tensor per projection holding every expert
  (``moe.down_proj.weight`` [experts, hidden, inter], ``experts-stacked``); the derived per-expert names were
  refused (KeyError 'layers.1.moe.experts.0.down_proj.weight') and load was skipped;
- Laguna's DFlash draft reads every parameter as the class holds it (``qkv_proj`` fused, ``as-held``) after the
  EAGLE-style ``model.`` prefix, and only dense layers (the table's MoE layer could never load through it);
- LongCat-Flash's MTP draft reads ``model.mtp.layers.0.*`` (``longcat-mtp-names``) with MLA's q_a_proj and
  kv_a_proj_with_mqa apart (``mla-a-split``), scales q/kv_a_layernorm on load (``LOAD_SCALES``) and leaves its
  lm_head to the target's, which its proposer lends it.

Before: load "skipped: nothing named the checkpoint", forward and match never ran; now all five levels pass
against upstream vLLM 0.33.0."""

from __future__ import annotations

import os

import pytest
from analysis_helpers import PINNED_VENV, UPSTREAM_SRC, apply_and_verify_run, run_script_json


@pytest.mark.skipif(not (os.environ.get("MMF_PINNED_VENV") and os.environ.get("MMF_REFERENCE_VENV")
                         and UPSTREAM_SRC.is_dir()),
                    reason="needs MMF_PINNED_VENV (vLLM 0.13.0), MMF_REFERENCE_VENV (vLLM 0.33.0) and the upstream source")
@pytest.mark.parametrize("model,source", [
    ("step3_text", "upstream vLLM 0.33.0 Step3TextForCausalLM (validated by its own load_weights), respelled as its "
                   "load_weights reads it (experts-stacked: step3_text.py"),
    ("laguna_dflash", "upstream vLLM 0.33.0 DFlashLagunaForCausalLM (validated by its own load_weights), respelled "
                      "as its load_weights reads it (as-held + draft-model-prefix: laguna_dflash.py"),
    ("longcat_flash_mtp", "upstream vLLM 0.33.0 LongCatFlashMTP (validated by its own load_weights), respelled as "
                          "its load_weights reads it (mla-a-split + longcat-mtp-names: longcat_flash_mtp.py"),
])
def test_a_checkpoint_in_the_layout_upstreams_loader_reads_loads_and_matches(tmp_path, model, source):
    (arch,) = apply_and_verify_run(tmp_path, model, "--all-archs")
    assert (arch.get("checkpoint") or "").startswith(source), arch.get("checkpoint")
    assert {lv: s["status"] for lv, s in arch["levels"].items()} == {
        "import": "pass", "construct": "pass", "load": "pass", "forward": "pass", "match": "pass"}, arch["levels"]
    assert arch["reference"] == "vllm-0.33.0"


@pytest.mark.skipif(not os.environ.get("MMF_PINNED_VENV"), reason="needs MMF_PINNED_VENV (vLLM 0.13.0, torch)")
def test_interleaved_rotary_is_what_llama4s_loader_permutes_back():
    """EAGLE Llama 4's loader (Llama4ForCausalLM.permute_qk_weight_for_rotary, the pinned vLLM's as upstream's) permutes
    every q_proj / k_proj weight from Meta's interleaved rotary layout: a checkpoint derived from the class's values
    must hold them interleaved (qk-rotary-interleaved), or its own loader writes back other values and no checkpoint
    passed the self-check (load skipped)."""
    out = run_script_json(PINNED_VENV / "bin" / "python", """
        import json, sys, types
        sys.path.insert(0, sys.argv[1])
        import torch
        from checkpoint_layouts import interleave_rotary
        from vllm.model_executor.models.llama4 import Llama4ForCausalLM

        cfg = types.SimpleNamespace(num_attention_heads=4, num_key_value_heads=2, head_dim=16, hidden_size=8)
        held = {"q_proj": torch.randn(4 * 16, 8), "k_proj": torch.randn(2 * 16, 8)}
        back, moved = {}, {}
        for proj, t in held.items():
            ckpt = interleave_rotary(t, cfg.num_attention_heads if proj == "q_proj" else cfg.num_key_value_heads)
            _, loaded = Llama4ForCausalLM.permute_qk_weight_for_rotary(
                types.SimpleNamespace(config=cfg), f"layers.0.self_attn.{proj}.weight", ckpt)
            back[proj], moved[proj] = torch.equal(loaded, t), not torch.equal(ckpt, t)
        print(json.dumps({"back": back, "moved": moved, "odd": interleave_rotary(torch.zeros(6, 2), 4) is None}))
    """)
    assert out == {"back": {"q_proj": True, "k_proj": True}, "moved": {"q_proj": True, "k_proj": True}, "odd": True}
