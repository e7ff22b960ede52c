"""Issue 15, items 3, 4, 6 and 7 for migrate_model.py apply: every write stays inside the plugin,
concurrent applies all end registered, leftovers are cleaned, bad trees are an error (exit 2)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.commands.validate import validate
from flagos_migrate.plugin.tree import parse_registrations

from tests.test_migrate_apply import INIT, UPSTREAM, common, make_plugin, snapshot

ROOT = Path(__file__).resolve().parent.parent
MIGRATE = ROOT / "scripts" / "migrate_model.py"
VALIDATE = ROOT / "scripts" / "validate_migration.py"


@pytest.fixture
def plugin(tmp_path) -> Path:
    return make_plugin(tmp_path)


def run(script: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def assert_clean_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert any(line.startswith("error: ") for line in proc.stderr.splitlines()), proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


# -- item 3: nothing is written outside the plugin --------------------------------------------------


def test_record_folder_linked_elsewhere_is_refused(tmp_path, plugin):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "plain.json").write_text("precious\n")
    (plugin / "vllm_fl" / "models" / ".migration").symlink_to(outside, target_is_directory=True)
    before = snapshot(plugin)
    proc = run(MIGRATE, "apply", "plain", *common(plugin))
    assert_clean_error(proc, "outside")
    assert (outside / "plain.json").read_text() == "precious\n" and os.listdir(outside) == ["plain.json"]
    assert snapshot(plugin) == before  # refused before the first write


def test_target_file_linked_elsewhere_is_refused(tmp_path, plugin):
    outside = tmp_path / "elsewhere.py"
    outside.write_text("precious\n")
    (plugin / "vllm_fl" / "models" / "plain.py").symlink_to(outside)
    proc = run(MIGRATE, "apply", "plain", *common(plugin, "--force"))
    assert_clean_error(proc, "symlink out of the plugin")
    assert outside.read_text() == "precious\n"


def test_package_linked_out_of_the_checkout_is_refused(tmp_path, plugin):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "vllm_fl").symlink_to(plugin / "vllm_fl", target_is_directory=True)
    before = snapshot(plugin)
    proc = run(MIGRATE, "apply", "plain", *common(checkout))
    assert_clean_error(proc, "symlink out of the plugin checkout")
    assert snapshot(plugin) == before


def test_validator_refuses_a_python_file_linked_out_of_the_plugin(tmp_path, plugin):
    assert run(MIGRATE, "apply", "plain", *common(plugin)).returncode == 0
    (tmp_path / "x.py").write_text("X = 1\n")
    (plugin / "vllm_fl" / "models" / "linked.py").symlink_to(tmp_path / "x.py")
    assert_clean_error(run(VALIDATE, str(plugin), "--all"), "symlink out of the plugin")


# -- item 6/7: read-only files and folders, leftovers, malformed records ----------------------------


def test_read_only_file_is_not_replaced(plugin):
    target = plugin / "vllm_fl" / "models" / "plain.py"
    target.write_text("# mine\n")
    target.chmod(0o444)
    proc = run(MIGRATE, "apply", "plain", *common(plugin, "--force"))
    assert_clean_error(proc, "read-only")
    assert target.read_text() == "# mine\n"
    assert not (plugin / "vllm_fl" / "models" / ".migration" / "plain.json").exists()


def test_read_only_package_folder_writes_nothing(plugin):
    pkg = plugin / "vllm_fl"
    (pkg / "models" / ".migration").mkdir()
    before = snapshot(plugin)
    pkg.chmod(0o555)  # __init__.py can be written in place, but not replaced
    try:
        proc = run(MIGRATE, "apply", "mini", *common(plugin))
    finally:
        pkg.chmod(0o755)
    assert_clean_error(proc, "read-only")
    after = snapshot(plugin)
    after.pop("vllm_fl/models/.migration/.lock", None)  # the apply lock, empty
    assert after == before


def test_stale_temporary_files_are_removed(plugin):
    models = plugin / "vllm_fl" / "models"
    stale = [models / ".plain.py.k3j2h1g0.tmp", plugin / "vllm_fl" / ".__init__.py.abcdefgh.tmp"]
    for path in stale:
        path.write_text("half a file")
    keep = models / ".plain.py.notmine.tmp"
    keep.write_text("someone else's")
    proc = run(MIGRATE, "apply", "plain", *common(plugin))
    assert proc.returncode == 0, proc.stderr
    assert not any(p.exists() for p in stale) and keep.exists()


@pytest.mark.parametrize("record", ['{"format": 1, "files": [1]}', '{"format": 1, "files": {"a": 5}}',
                                    '[1, 2]', "{not json", '{"format": 1, "files": {}, "registration": 7}'])
def test_malformed_record_is_an_error(plugin, record):
    rec = plugin / "vllm_fl" / "models" / ".migration"
    rec.mkdir()
    (rec / "plain.json").write_text(record)
    assert_clean_error(run(MIGRATE, "apply", "plain", *common(plugin)), "malformed migration record")


def test_init_that_is_not_utf8_is_an_error(plugin):
    (plugin / "vllm_fl" / "__init__.py").write_bytes(b"# \xff\xfe\n")
    assert_clean_error(run(MIGRATE, "apply", "plain", *common(plugin)))


# -- item 4: concurrent applies ---------------------------------------------------------------------


def _upstream_with(tmp_path: Path, n: int) -> Path:
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    models = up / "vllm" / "model_executor" / "models"
    plain = (models / "plain.py").read_text()
    registry = models / "registry.py"
    entries = "".join(f'    "Plain{i:02d}ForCausalLM": ("plain{i:02d}", "Plain{i:02d}ForCausalLM"),\n' for i in range(n))
    registry.write_text(registry.read_text().replace("_TEXT_GENERATION_MODELS = {\n",
                                                     "_TEXT_GENERATION_MODELS = {\n" + entries))
    for i in range(n):
        (models / f"plain{i:02d}.py").write_text(plain.replace("PlainForCausalLM", f"Plain{i:02d}ForCausalLM"))
    return up


def test_concurrent_applies_of_different_models_all_register(tmp_path, plugin):
    n = 20
    up = _upstream_with(tmp_path, n)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts"), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(MIGRATE), "apply", f"plain{i:02d}", "--upstream", str(up),
                               "--plugin", str(plugin)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for i in range(n)]
    results = [(p.wait(timeout=600), p.stderr.read().decode()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(code == 0 for code, _ in results), results
    text = (plugin / "vllm_fl" / "__init__.py").read_text()
    ast.parse(text)
    archs = {m.arch for m in parse_registrations(plugin / "vllm_fl" / "__init__.py").models}
    assert {f"Plain{i:02d}ForCausalLM" for i in range(n)} <= archs
    assert len(list((plugin / "vllm_fl" / "models" / ".migration").glob("*.json"))) == n
    assert not list(plugin.rglob("*.tmp"))


def test_validator_reports_a_migrated_model_that_is_not_registered(plugin):
    assert run(MIGRATE, "apply", "plain", *common(plugin)).returncode == 0
    init = plugin / "vllm_fl" / "__init__.py"
    def lost(report):
        return [f for f in report.findings if f.data.get("kind") == "unregistered-migration"]

    assert lost(validate(str(plugin), all_models=True)) == []
    init.write_text(INIT)  # the block lost, as a racing apply did before the lock
    found = lost(validate(str(plugin), all_models=True))
    assert [(f.rule, f.severity, f.data["arch"]) for f in found] == [("P10", "error", "PlainForCausalLM")]
    proc = run(VALIDATE, str(plugin), "--all")
    assert proc.returncode == 1 and "PlainForCausalLM was migrated" in proc.stdout, proc.stdout
    assert json.loads((plugin / "vllm_fl" / "models" / ".migration" / "plain.json").read_text())["model"] == "plain"


@pytest.mark.parametrize("name", ["x" * 5000, "a/" + "b" * 300])
def test_validator_refuses_absurd_model_names(name):
    from tests.analysis_helpers import GOOD_PLUGIN

    assert_clean_error(run(VALIDATE, str(GOOD_PLUGIN), name), "too long or holds a NUL")
    with pytest.raises(UsageError, match="NUL"):
        validate(str(GOOD_PLUGIN), "qwen\x00")
