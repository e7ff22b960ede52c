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
from analysis_helpers import UPSTREAM_SRC, apply_and_verify_run


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
