"""Shared helpers for the analysis/validator tests: the pinned index and a one-call analyser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from functools import lru_cache
from pathlib import Path

from flagos_migrate.analysis.engine import AnalysisContext, analyze_source
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "plugins"
GOOD_PLUGIN = FIXTURES / "good"
UPSTREAM_MINI = Path(__file__).resolve().parent / "fixtures" / "upstream_mini"
# The real sources, for tests that check a rule's table against both versions (they skip without them).
UPSTREAM_SRC = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0"))
PINNED_VENV = Path(os.environ.get("MMF_PINNED_VENV", Path.home() / ".cache/mmf/venv-vllm013"))
# the runtime harness's worker modules and the upstream venv's python, for tests that run them in that venv
VERIFY_DIR = Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"
REFERENCE_PY = Path(os.environ.get("MMF_REFERENCE_VENV", Path.home() / ".cache/mmf/venv-vllm033")) / "bin" / "python"
CPU_ENV = {"VLLM_TARGET_DEVICE": "cpu", "VLLM_PLUGINS": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def run_script_json(python: Path, script: str, *args: str) -> dict:
    """Run a test script in a venv's python on the CPU, the harness's worker modules' folder as its argv[1]
    (``args`` after it); the JSON its last line prints."""
    proc = subprocess.run([str(python), "-c", textwrap.dedent(script), str(VERIFY_DIR), *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **CPU_ENV})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@lru_cache(maxsize=1)
def pinned() -> PinnedApis:
    return PinnedApis.load("0.13.0")


@lru_cache(maxsize=1)
def pinned_with_plugin() -> PinnedApis:
    return pinned().with_package(PluginTree(GOOD_PLUGIN).index())


def analyze(code: str, module: str = "vllm_fl.models.demo", origin: str | None = None, plugin: bool = True):
    apis = pinned_with_plugin() if plugin else pinned()
    ctx = AnalysisContext(apis, module, "demo.py", origin_module=origin)
    return analyze_source(textwrap.dedent(code), ctx)


def rules(findings, severity: str | None = None) -> list[str]:
    return [f.rule for f in findings if severity is None or f.severity == severity]


def only(findings, rule: str):
    return [f for f in findings if f.rule == rule]


def empty_plugin(root: Path, init: str = "") -> Path:
    """A plugin tree with nothing migrated yet: ``vllm_fl/__init__.py`` (``init``) and ``vllm_fl/models/``."""
    (root / "vllm_fl" / "models").mkdir(parents=True)
    (root / "vllm_fl" / "__init__.py").write_text(init)
    (root / "vllm_fl" / "models" / "__init__.py").write_text("")
    return root


def migrate_example(tmp_path: Path, text: str, name: str = "example", extra: dict[str, str] | None = None) -> Migration:
    """Migrate ``text`` as upstream's ``models/<name>.py`` (beside the mini upstream tree and any ``extra``
    files, by relative path) into an empty plugin, through the real engine."""
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM_MINI, up)
    for rel, code in (extra or {}).items():
        (up / rel).parent.mkdir(parents=True, exist_ok=True)
        (up / rel).write_text(code)
    (up / "vllm" / "model_executor" / "models" / f"{name}.py").write_text(textwrap.dedent(text))
    plugin = empty_plugin(tmp_path / "plugin")
    return Migration(name, Upstream(open_upstream(str(up))), PluginTree(plugin), pinned()).run()


def verified_to_match(tmp_path: Path, model: str, *apply_args: str) -> dict:
    """The one architecture of ``model``, applied and verified against upstream vLLM, asserted to pass every level
    (skips without the reference venv or the upstream source); its report."""
    import pytest

    if not os.environ.get("MMF_REFERENCE_VENV"):
        pytest.skip("needs MMF_REFERENCE_VENV (vLLM 0.33.0) to match against")
    if not UPSTREAM_SRC.is_dir():
        pytest.skip(f"no upstream source at {UPSTREAM_SRC}")
    (report,) = apply_and_verify_run(tmp_path, model, *apply_args)
    levels = {name: level["status"] for name, level in report["levels"].items()}
    assert levels == dict.fromkeys(("import", "construct", "load", "forward", "match"), "pass"), report
    assert report["reference"] == "vllm-0.33.0", report
    return report


def apply_and_verify_run(tmp_path: Path, model: str, *apply_args: str, edit=None) -> list[dict]:
    """``apply`` MODEL into a fresh plugin, then ``verify --run`` on the pinned venv against the reference venv
    (both from the environment, as the runtime tests that compare with upstream need); the architectures' reports.
    ``edit(plugin)``: changes the migrated tree between the two (a test's deliberate defect)."""
    import json
    import subprocess
    import sys

    script = str(Path(__file__).resolve().parent.parent / "scripts" / "migrate_model.py")
    plugin = empty_plugin(tmp_path / "plugin")
    applied = subprocess.run([sys.executable, script, "apply", model, *apply_args, "--upstream", str(UPSTREAM_SRC),
                              "--plugin", str(plugin)], capture_output=True, text=True, timeout=900)
    assert applied.returncode in (0, 1), applied.stdout[-2000:] + applied.stderr[-2000:]  # 1: findings left
    if edit is not None:
        edit(plugin)
    proc = subprocess.run([sys.executable, script, "verify", model, "--plugin", str(plugin), "--run", "--python",
                           str(PINNED_VENV / "bin" / "python"), "--reference-python", str(REFERENCE_PY), "--json"],
                          capture_output=True, text=True, timeout=2400)
    assert proc.stdout, proc.stderr[-3000:]
    return json.loads(proc.stdout)["architectures"]
