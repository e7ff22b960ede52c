"""A multimodal draft (Qwen3.5's MTP, ``SupportsMultiModal``) is checked as the pinned vLLM runs it: its
``get_language_model()`` is never asked for (0.13.0's EAGLE proposer asks the target's only, to share its
embeddings), so the forward level no longer fails on the interface default's None (and since ea97a20 the draft
has upstream's fallback written, its predictor). Before: forward
"get_language_model() returned None"; now both Qwen3.5 MTP drafts compute upstream vLLM's logits, their
shared-expert MLP through the Qwen2MoeMLP back-port and their MoE through the fused-MoE back-port."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from analysis_helpers import UPSTREAM_SRC, apply_and_verify_run

ROOT = Path(__file__).resolve().parents[1]


def test_qwen3_5_mtp_drafts_reach_match_without_a_language_model_of_their_own(tmp_path):
    pinned, reference = os.environ.get("MMF_PINNED_VENV"), os.environ.get("MMF_REFERENCE_VENV")
    if not pinned or not reference or not UPSTREAM_SRC.is_dir():
        pytest.skip("needs MMF_PINNED_VENV (vLLM 0.13.0), MMF_REFERENCE_VENV (vLLM 0.33.0) and the upstream source")
    archs = {a["architecture"]: a for a in apply_and_verify_run(tmp_path, "qwen3_5_mtp", "--all-archs")}
    assert set(archs) == {"Qwen3_5MTP", "Qwen3_5MoeMTP"}
    for arch in archs.values():
        assert {lv: s["status"] for lv, s in arch["levels"].items()} == {
            "import": "pass", "construct": "pass", "load": "pass", "forward": "pass", "match": "pass"}, arch["levels"]
        assert arch["reference"] == "vllm-0.33.0"
    # since ea97a20 the migrated draft has upstream's interface fallback written (its first child with
    # embed_input_ids, the MTP predictor), so there is no None left to excuse
    text = (tmp_path / "plugin" / "vllm_fl" / "models" / "qwen3_5_mtp.py").read_text()
    assert "    def get_language_model(self) -> torch.nn.Module:\n        return self.model\n" in text
