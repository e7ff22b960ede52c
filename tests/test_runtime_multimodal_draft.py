"""A multimodal draft (Qwen3.5's MTP, ``SupportsMultiModal``) is checked as the pinned vLLM runs it: its
``get_language_model()`` is never asked for (0.13.0's EAGLE proposer asks the target's only, to share its
embeddings), so the forward level no longer fails on the interface default's None. Before: forward
"get_language_model() returned None"; now both Qwen3.5 MTP drafts compute upstream vLLM's logits, their
shared-expert MLP through the Qwen2MoeMLP back-port and their MoE through the fused-MoE back-port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_helpers import UPSTREAM_SRC

ROOT = Path(__file__).resolve().parents[1]


def test_qwen3_5_mtp_drafts_reach_match_without_a_language_model_of_their_own(tmp_path):
    pinned, reference = os.environ.get("MMF_PINNED_VENV"), os.environ.get("MMF_REFERENCE_VENV")
    if not pinned or not reference or not UPSTREAM_SRC.is_dir():
        pytest.skip("needs MMF_PINNED_VENV (vLLM 0.13.0), MMF_REFERENCE_VENV (vLLM 0.33.0) and the upstream source")
    plugin = tmp_path / "plugin"
    (plugin / "vllm_fl").mkdir(parents=True)
    (plugin / "vllm_fl" / "__init__.py").touch()
    script = str(ROOT / "scripts" / "migrate_model.py")
    proc = subprocess.run([sys.executable, script, "apply", "qwen3_5_mtp", "--all-archs", "--upstream", str(UPSTREAM_SRC),
                           "--plugin", str(plugin)], capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, script, "verify", "qwen3_5_mtp", "--plugin", str(plugin), "--run",
                           "--python", pinned, "--reference-python", reference, "--json"],
                          capture_output=True, text=True, timeout=2400)
    assert proc.stdout, proc.stderr[-3000:]
    archs = {a["architecture"]: a for a in json.loads(proc.stdout)["architectures"]}
    assert set(archs) == {"Qwen3_5MTP", "Qwen3_5MoeMTP"}
    for arch in archs.values():
        assert {lv: s["status"] for lv, s in arch["levels"].items()} == {
            "import": "pass", "construct": "pass", "load": "pass", "forward": "pass", "match": "pass"}, arch["levels"]
        assert arch["reference"] == "vllm-0.33.0"
        assert any(n.startswith("draft: get_language_model() not checked") for n in arch["notes"]), arch["notes"]
