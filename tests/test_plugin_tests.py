"""run_plugin_tests.py (procedure step 8): finds the plugin's unit tests, runs them with a Python
that has pytest, and says how when that Python has none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "scripts" / "run_plugin_tests.py"
IMPORT_TEST = '''import importlib

import pytest


@pytest.mark.parametrize("module", ["vllm_fl.models.foo", "vllm_fl.models.bar"])
def test_model_imports(module):
    importlib.import_module(module)
'''


def run(*args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run([python, str(CLI), *args], capture_output=True, text=True, timeout=300)


def plugin_in_real_shape(root: Path) -> Path:
    """vllm-plugin-FL's layout: tests/unit_tests/worker/test_model_imports.py, GPU tests apart."""
    (root / "vllm_fl" / "models").mkdir(parents=True)
    (root / "vllm_fl" / "__init__.py").write_text("")
    (root / "vllm_fl" / "models" / "__init__.py").write_text("")
    (root / "vllm_fl" / "models" / "foo.py").write_text("VALUE = 1\n")
    (root / "vllm_fl" / "models" / "bar.py").write_text("VALUE = 2\n")
    (root / "tests" / "unit_tests" / "worker").mkdir(parents=True)
    (root / "tests" / "unit_tests" / "worker" / "test_model_imports.py").write_text(IMPORT_TEST)
    (root / "tests" / "functional_tests").mkdir()
    (root / "tests" / "functional_tests" / "test_gpu.py").write_text("def test_gpu():\n    assert False\n")
    return root


def test_finds_and_runs_the_unit_tests(tmp_path):
    plugin = plugin_in_real_shape(tmp_path / "plugin")
    log = tmp_path / "unit.log"
    p = run(str(plugin), "foo", "--python", sys.executable, "--log", str(log), "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["tests"] == "tests/unit_tests" and data["test_files"] == 1
    assert data["covers_model"] == ["tests/unit_tests/worker/test_model_imports.py"]
    assert data["counts"] == {"passed": 2} and "2 passed" in log.read_text()
    assert "-m pytest tests/unit_tests" in data["command"]
    # the new model is not in the import test yet: said in text mode
    p = run(str(plugin), "baz", "--python", sys.executable)
    assert p.returncode == 0 and "tests/unit_tests: 2 passed" in p.stdout
    assert "no test names vllm_fl.models.baz" in p.stdout
    # a failing unit test is exit 1 with its count
    (plugin / "tests" / "unit_tests" / "test_broken.py").write_text("def test_broken():\n    assert 1 == 2\n")
    p = run(str(plugin), "--python", sys.executable, "--json")
    assert p.returncode == 1 and json.loads(p.stdout)["counts"] == {"failed": 1, "passed": 2}


def test_a_plugin_without_unit_tests_says_so(tmp_path):
    plugin = plugin_in_real_shape(tmp_path / "plugin")
    (plugin / "tests" / "unit_tests" / "worker" / "test_model_imports.py").unlink()
    p = run(str(plugin), "--json")
    data = json.loads(p.stdout)
    # only GPU tests are left: they are not unit tests, so there are none
    assert p.returncode == 0 and data["tests"] is None
    assert data["message"] == "the plugin has no unit tests (looked in tests/unit_tests, tests/unit, tests)"


def test_a_python_without_pytest_gets_pytest_from_a_folder(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    bare = str(venv / "bin" / "python")
    plugin = plugin_in_real_shape(tmp_path / "plugin")
    p = run(str(plugin), "--python", bare)
    assert p.returncode == 2 and f"error: {bare} has no pytest" in p.stderr
    assert "--pytest-path" in p.stderr and "pip install --target" in p.stderr
    site = str(Path(pytest.__file__).resolve().parent.parent)  # where this Python's pytest lives
    p = run(str(plugin), "--python", bare, "--pytest-path", site, "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["counts"] == {"passed": 2} and data["python"] == bare
    assert data["command"].split(" && ")[1].startswith("PYTHONPATH=")
