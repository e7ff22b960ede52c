"""validate_migration.py --write-baseline / --baseline / --since: old findings apart from new ones."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_PLUGIN = ROOT / "tests" / "fixtures" / "plugins" / "good"
CLI = ROOT / "scripts" / "validate_migration.py"
OLD_ISSUE = "\n\ndef _old():\n    try:\n        return 1\n    except:\n        return 0\n"
NEW_ISSUE = "from vllm.no_such_module_mmf import Thing\n\nTHING = Thing\n"


def run(plugin: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLI), str(plugin), "--all", "--strict", *args],
                          capture_output=True, text=True, timeout=120)


def git(plugin: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=plugin, check=True,
                   capture_output=True)


@pytest.fixture()
def plugin(tmp_path) -> Path:
    """The good plugin with one warning that was there before any migration (a bare except)."""
    dest = tmp_path / "plugin"
    shutil.copytree(GOOD_PLUGIN, dest)
    kimi = dest / "vllm_fl" / "models" / "kimi_k25.py"
    kimi.write_text(kimi.read_text() + OLD_ISSUE)
    return dest


def test_baseline_separates_old_from_new(plugin, tmp_path):
    assert run(plugin).returncode == 1  # --strict: the old warning fails the run
    base = tmp_path / "baseline.json"
    dry = run(plugin, "--write-baseline", str(base), "--dry-run")
    assert dry.returncode == 0 and not base.exists()
    assert json.loads(dry.stdout)["findings"] == [json.loads(dry.stdout)["findings"][0]]
    assert run(plugin, "--write-baseline", str(base)).returncode == 0
    assert json.loads(base.read_text())["findings"][0].startswith("P19|vllm_fl/models/kimi_k25.py|bare `except:`")
    ok = run(plugin, "--baseline", str(base), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["known"] == 1
    # lines above the old finding move it; it is still known. A new issue is not.
    kimi = plugin / "vllm_fl" / "models" / "kimi_k25.py"
    kimi.write_text("# a comment\n" + kimi.read_text())
    (plugin / "vllm_fl" / "models" / "fresh.py").write_text(NEW_ISSUE)
    new = run(plugin, "--baseline", str(base), "--json")
    data = json.loads(new.stdout)
    assert new.returncode == 1 and data["known"] == 1
    assert [(f["rule"], f["file"]) for f in data["issues"]] == [("P3", "vllm_fl/models/fresh.py")]


def test_since_judges_only_changed_files(plugin):
    git(plugin, "init", "-q")
    git(plugin, "add", "-A")
    git(plugin, "commit", "-qm", "before the migration")
    assert run(plugin, "--since", "HEAD").returncode == 0  # the old warning is in an unchanged file
    (plugin / "vllm_fl" / "models" / "fresh.py").write_text(NEW_ISSUE)  # untracked: counts as changed
    p = run(plugin, "--since", "HEAD")
    assert p.returncode == 1 and "vllm_fl/models/fresh.py" in p.stdout and "kimi_k25" not in p.stdout
    assert "1 known finding(s) not counted" in p.stdout
    bad = run(plugin, "--since", "no-such-ref")
    assert bad.returncode == 2 and "error: git rev-parse failed" in bad.stderr and "hint:" in bad.stderr
    assert run(plugin, "--since", "--output=x").returncode == 2


def test_bad_baseline_file_is_exit_2(plugin, tmp_path):
    p = run(plugin, "--baseline", str(tmp_path / "missing.json"))
    assert p.returncode == 2 and "--write-baseline" in p.stderr
    (tmp_path / "junk.json").write_text('{"findings": 3}')
    assert run(plugin, "--baseline", str(tmp_path / "junk.json")).returncode == 2
