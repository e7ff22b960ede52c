"""P47: torch attributes upstream calls that the pinned torch lacks. gemma4_mm's image path calls
`torch.accelerator.get_memory_info()`, which torch 2.9.0 (vLLM 0.13.0's) does not have: AttributeError on the
pinned stack with no finding before. Goldens of the detector, negatives, the migration leaving it, the real
upstream files, and every table entry checked missing on the pinned torch."""

from __future__ import annotations

import json
import subprocess

import pytest
from analysis_helpers import PINNED_VENV, UPSTREAM_SRC, analyze, migrate_example, only
from flagos_migrate.catalog.tables import TORCH_APIS

SNIPPET = '''
import torch
from torch import accelerator as acc
from torch.accelerator import get_memory_info


def chunk(pixel_values):
    free, total = torch.accelerator.get_memory_info()
    a = acc.get_memory_info()[0]
    b = get_memory_info()
    # on the pinned torch, or not torch: no finding
    c = torch.cuda.mem_get_info()
    d = torch.accelerator.current_device_index()
    e = pixel_values.accelerator.get_memory_info()
    return free, total, a, b, c, d, e
'''


def test_calls_of_missing_torch_apis_are_findings():
    found = only(analyze(SNIPPET), "P47")
    assert [(f.line, f.data["api"]) for f in found] == [
        (4, "torch.accelerator.get_memory_info"),
        (8, "torch.accelerator.get_memory_info"),
        (9, "torch.accelerator.get_memory_info"),
        (10, "torch.accelerator.get_memory_info"),
    ]
    assert found[1].message.startswith(
        "`torch.accelerator.get_memory_info` does not exist in the pinned "
        "vLLM's torch 2.9.0 (upstream's torch 2.14.0 has it): it raises AttributeError when this runs")
    assert {f.severity for f in found} == {"error"}
    assert all(f.data["pinned_equivalent"] is None for f in found)


def test_a_file_without_torch_has_no_finding():
    assert not only(analyze("def f(torch):\n    return torch.accelerator.get_memory_info()\n"), "P47")


def test_the_migration_leaves_the_call_and_the_finding(tmp_path):
    m = migrate_example(tmp_path, SNIPPET, "torch_drift")
    assert "torch.accelerator.get_memory_info()" in m.model_unit.text
    assert len([f for f in m.left() if f.rule == "P47"]) == 4


@pytest.mark.parametrize("stem", ["gemma4_mm", "gemma4_unified", "diffusion_gemma"])
def test_upstream_files_that_call_it(stem):
    path = UPSTREAM_SRC / "vllm" / "model_executor" / "models" / f"{stem}.py"
    if not path.exists():
        pytest.skip("upstream source not unpacked")
    found = only(analyze(path.read_text(), f"vllm_fl.models.{stem}", f"vllm.model_executor.models.{stem}"), "P47")
    assert found and {f.data["api"] for f in found} == {"torch.accelerator.get_memory_info"}


def test_every_entry_is_missing_on_the_pinned_torch():
    python = PINNED_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip("pinned venv not built (MMF_PINNED_VENV)")
    entry = TORCH_APIS["0.13.0"]
    script = ("import functools, importlib, json, sys, torch\n"
              "def has(chain):\n"
              "    obj = torch\n"
              "    for i, part in enumerate(chain.split('.')[1:], 2):\n"
              "        if not hasattr(obj, part):\n"
              "            try:\n"
              "                obj = importlib.import_module('.'.join(chain.split('.')[:i]))\n"
              "            except ImportError:\n"
              "                return False\n"
              "        else:\n"
              "            obj = getattr(obj, part)\n"
              "    return True\n"
              "print(json.dumps({'version': torch.__version__.split('+')[0],"
              " 'has': {c: has(c) for c in json.loads(sys.argv[1])}}))\n")
    out = subprocess.run([str(python), "-c", script, json.dumps(sorted(entry["missing"]))], capture_output=True,
                         text=True, timeout=300, env={"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["version"] == entry["torch_version"]
    assert got["has"] == {c: False for c in entry["missing"]}
