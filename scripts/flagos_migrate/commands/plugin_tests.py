"""Step 8: find the plugin's unit tests and run them with a Python that has pytest.

The real vllm-plugin-FL keeps its CPU tests in ``tests/unit_tests/`` (``functional_tests/`` and
``e2e_tests/`` need GPUs or servers); other checkouts may use ``tests/unit/`` or plain
``tests/``. The pinned venv often lacks pytest: then pytest can come from a folder on
``PYTHONPATH`` (``pip install --target DIR pytest``), so the pinned venv itself stays untouched.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from flagos_migrate.cli import UsageError

# where each plugin shape keeps the tests that run without a GPU, most specific first
TEST_DIRS = ("tests/unit_tests", "tests/unit", "tests")
# folders under tests/ that need GPUs or servers: never picked by the plain ``tests`` fallback
GPU_DIRS = ("functional_tests", "e2e_tests")
PYTEST_CACHE = Path.home() / ".cache" / "model-migrate-flagos" / "pytest"
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


@dataclass
class Found:
    folder: str | None  # relative to the plugin, None when there are no tests
    files: list[str] = field(default_factory=list)
    covers_model: list[str] = field(default_factory=list)  # test files that name vllm_fl.models.<model>


def _is_test_file(p: Path) -> bool:
    return p.suffix == ".py" and (p.name.startswith("test_") or p.name.endswith("_test.py"))


def find_tests(root: Path, model: str | None = None) -> Found:
    for rel in TEST_DIRS:
        folder = root / rel
        if not folder.is_dir():
            continue
        skip = [folder / d for d in GPU_DIRS] if rel == "tests" else []
        files = sorted(p for p in folder.rglob("*.py") if _is_test_file(p)
                       and not any(s in p.parents for s in skip))
        if not files:
            continue
        out = Found(rel, [p.relative_to(root).as_posix() for p in files])
        if model:
            needle = re.compile(rf"\bvllm_fl\.models\.{re.escape(model)}\b")
            out.covers_model = [p.relative_to(root).as_posix() for p in files
                                if needle.search(p.read_text("utf-8", errors="replace"))]
        return out
    return Found(None)


def has_pytest(python: str, extra_path: str | None = None) -> bool:
    env = _env(extra_path)
    try:
        proc = subprocess.run([python, "-c", "import pytest"], capture_output=True, env=env, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _env(extra_path: str | None) -> dict:
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    return env


def pytest_command(python: str, folder: str, extra: list[str]) -> list[str]:
    return [python, "-m", "pytest", folder, "-q", "-rN", "-p", "no:cacheprovider", *extra]


def missing_pytest_error(python: str) -> UsageError:
    return UsageError(
        f"{python} has no pytest",
        hint=f"either install it there ({python} -m pip install pytest), or keep that venv untouched: "
        f"{python} -m pip install --target {PYTEST_CACHE} pytest, then add --pytest-path {PYTEST_CACHE}",
    )


def counts(output: str) -> dict[str, int]:
    """passed/failed/skipped/errors from pytest's summary line (the last one that has counts)."""
    for line in reversed(output.strip().splitlines()):
        found = _COUNT.findall(line)
        if found:
            out: dict[str, int] = {}
            for n, what in found:
                key = "errors" if what.startswith("error") else what
                out[key] = out.get(key, 0) + int(n)
            return out
    return {}


def run_tests(root: Path, python: str, folder: str, extra: list[str], extra_path: str | None,
              log: Path | None, timeout: float) -> tuple[int, dict[str, int]]:
    cmd = pytest_command(python, folder, extra)
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=_env(extra_path), timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise UsageError(f"the plugin's tests did not finish in {timeout:.0f}s",
                         hint="raise --timeout, or pass a narrower folder with --tests") from exc
    output = proc.stdout + proc.stderr
    if log is not None:
        log.write_text(output, "utf-8")
    return proc.returncode, counts(output)
