"""Run a short script in the pinned venv next to the runtime worker's modules (``verify/`` first on
``sys.path`` as ``sys.argv[1]``), on the CPU platform; its last stdout line is JSON. Skips without
``MMF_PINNED_VENV``."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

VERIFY = Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"


def pinned_python() -> str:
    value = os.environ.get("MMF_PINNED_VENV")
    if not value:
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    venv = Path(value)
    return str(venv / "bin" / "python" if venv.is_dir() else venv)


def run_in_worker(code: str, *args: str, timeout: float = 600) -> dict:
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([pinned_python(), "-c", textwrap.dedent(code), str(VERIFY), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
