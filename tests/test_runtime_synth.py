"""``verify --run`` on a remote-code MoE whose config class exists nowhere, pinned or upstream.

K2-Horizon's config lives in its hub repo (transformers 4.57.6 and 5.x and vLLM 0.13.0 have none): the
harness synthesizes a tiny config from what upstream's ``k2_horizon.py`` reads from its config and
builds the migrated class from it on the real vLLM 0.13.0 ($MMF_PINNED_VENV). No transformers has the
model either, so without $MMF_REFERENCE_VENV the load level is skipped naming that; with it, upstream
vLLM's own K2HorizonForCausalLM names the checkpoint (self-checked by its own load_weights) and load passes.
(MiniMax-M2 was this test's model until apply began bridging transformers 5's MiniMaxM2Config for
the architecture it registers (P2): it now builds from that bridge.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "migrate_model.py"
EXAMPLE_PLUGIN = ROOT / "examples" / "plugin"
UPSTREAM = Path(os.environ.get("MMF_UPSTREAM") or Path.home() / ".cache" / "mmf" / "src" / "vllm-0.33.0")


@pytest.fixture(scope="module")
def k2_report(tmp_path_factory):
    if not os.environ.get("MMF_PINNED_VENV"):
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    plugin = tmp_path_factory.mktemp("synth") / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    proc = subprocess.run([sys.executable, str(SCRIPT), "apply", "k2_horizon", "--upstream", str(UPSTREAM),
                           "--plugin", str(plugin), "--all-archs", "--json"], capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    ref = os.environ.get("MMF_REFERENCE_VENV")
    cmd = [sys.executable, str(SCRIPT), "verify", "k2_horizon", "--plugin", str(plugin), "--upstream", str(UPSTREAM),
           "--run", "--python", os.environ["MMF_PINNED_VENV"], "--json", *(("--reference-python", ref) if ref else ())]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400)
    assert proc.stdout, proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_a_remote_code_moe_constructs_from_a_synthesized_config(k2_report):
    code, report, err = k2_report
    (arch,) = report["architectures"]
    assert arch["architecture"] == "K2HorizonForCausalLM"
    assert arch["config_source"] == "synthesized"
    assert any(n.startswith("config: synthesized") and "k2_horizon reads" in n for n in arch["notes"])
    levels = arch["levels"]
    assert levels["import"]["status"] == "pass" and levels["construct"]["status"] == "pass", (levels, err[-2000:])
    if not os.environ.get("MMF_REFERENCE_VENV"):
        # no transformers has K2-Horizon: without the reference nothing names its checkpoint; load says so
        assert levels["load"]["status"] == "skipped" and "checkpoint names" in levels["load"]["reason"]
        assert "K2HorizonForCausalLM" in levels["load"]["reason"]
        return
    # with it, upstream vLLM's own class names the checkpoint, and the migrated class loads it
    assert arch["checkpoint"] == "upstream vLLM 0.33.0 K2HorizonForCausalLM (validated by its own load_weights)"
    assert levels["load"]["status"] == "pass", (levels, err[-2000:])


@pytest.fixture(scope="module")
def internvl_report(tmp_path_factory):
    """InternVL's InternVLChatConfig is remote code (no transformers has it, nor the pinned vLLM): the
    synthesized config nests the family's tiny InternViT tower and Qwen2 language model (SYNTH_FAMILIES)."""
    if not os.environ.get("MMF_PINNED_VENV"):
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    plugin = tmp_path_factory.mktemp("synth_internvl") / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    proc = subprocess.run([sys.executable, str(SCRIPT), "apply", "internvl", "--upstream", str(UPSTREAM),
                           "--plugin", str(plugin), "--all-archs", "--json"], capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    cmd = [sys.executable, str(SCRIPT), "verify", "internvl", "--plugin", str(plugin), "--upstream", str(UPSTREAM),
           "--run", "--python", os.environ["MMF_PINNED_VENV"], "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400)
    assert proc.stdout, proc.stderr[-3000:]
    return json.loads(proc.stdout), proc.stderr


def test_a_remote_code_vlm_constructs_from_its_familys_sub_configs(internvl_report):
    report, err = internvl_report
    (arch,) = report["architectures"]
    assert arch["architecture"] == "InternVLChatModel" and arch["config_source"] == "synthesized"
    levels = arch["levels"]
    # was skipped: "the synthesized config has no value for 'force_image_size'"
    assert levels["construct"]["status"] == "pass", (levels, err[-2000:])


def test_a_config_class_the_pinned_vllm_exports_without_registering_it():
    """0.13.0 exports DotsOCRConfig but registers no 'dots_ocr' (upstream's dots_ocr.py imports it and refuses any
    other class): the module-bound lookup finds it there; what transformers maps stays transformers'."""
    if not os.environ.get("MMF_PINNED_VENV"):
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    python = Path(os.environ["MMF_PINNED_VENV"]) / "bin" / "python"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import _runtime_config as rc; "
            "t = rc._vllm_exported_configs({'DotsOCRConfig', 'DeepseekV3Config'}); "
            "print(t['dots_ocr'].__name__, 'deepseek_v3' in t, rc._vllm_exported_configs({'X'}) == {})")
    proc = subprocess.run([str(python), "-c", code, str(ROOT / "scripts" / "flagos_migrate" / "verify")],
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout.split() == ["DotsOCRConfig", "False", "True"], proc.stderr[-2000:]
