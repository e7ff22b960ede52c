"""Separating old findings from new ones: a baseline file, or the files changed since a git ref.

A plugin that already had an issue before a migration should not fail ``--strict`` forever
because of it. ``--write-baseline FILE`` records today's findings; ``--baseline FILE`` reports
only findings beyond it. A finding is recognised by rule, file and message (not by line: lines
move when code is added above). ``--since REF`` judges only the files git says changed since
REF (committed, staged, unstaged or untracked).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

from flagos_migrate.catalog.findings import Finding
from flagos_migrate.cli import UsageError

FORMAT = 1


def fingerprint(f: Finding) -> str:
    return f"{f.rule}|{f.file}|{f.message}"


def baseline_payload(findings: list[Finding], pinned: str) -> dict:
    return {"format": FORMAT, "tool": "model-migrate-flagos validate_migration.py", "pinned_vllm": pinned,
            "findings": sorted(fingerprint(f) for f in findings)}


def load_baseline(path: str) -> Counter:
    p = Path(path).expanduser()
    try:
        data = json.loads(p.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"baseline file not found: {p}",
                         hint="write one first: validate_migration.py PLUGIN --all --write-baseline FILE") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read baseline {p}: {exc}", hint="re-create it with --write-baseline") from exc
    found = data.get("findings") if isinstance(data, dict) and data.get("format") == FORMAT else None
    if not isinstance(found, list) or not all(isinstance(x, str) for x in found):
        raise UsageError(f"{p} is not a baseline written by validate_migration.py --write-baseline",
                         hint="re-create it with --write-baseline")
    return Counter(found)


def subtract(findings: list[Finding], known: Counter) -> tuple[list[Finding], list[Finding]]:
    """(new, known): each baseline entry absorbs one finding with the same fingerprint."""
    left = Counter(known)
    new, old = [], []
    for f in findings:
        key = fingerprint(f)
        if left[key] > 0:
            left[key] -= 1
            old.append(f)
        else:
            new.append(f)
    return new, old


def _git(root: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"cannot run git in {root}: {exc}", hint="install git, or use --baseline instead") from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"git {args[0]} failed in {root}: {tail}",
                         hint="--since needs a git checkout of the plugin and a commit it knows (e.g. origin/main)")
    return proc.stdout


def changed_files(root: Path, ref: str) -> set[str]:
    """Paths (relative to ``root``) changed since ``ref``, including uncommitted and untracked files."""
    if not ref or ref.startswith("-"):
        raise UsageError(f"--since needs a git ref, got {ref!r}", hint="e.g. --since origin/main or --since HEAD~1")
    sha = _git(root, "rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    changed = _git(root, "diff", "--name-only", "--relative", sha, "--").splitlines()
    untracked = _git(root, "ls-files", "--others", "--exclude-standard").splitlines()
    return {p for p in changed + untracked if p}


def only_in(findings: list[Finding], files: set[str]) -> tuple[list[Finding], list[Finding]]:
    """(in changed files, elsewhere)."""
    inside = [f for f in findings if f.file in files]
    return inside, [f for f in findings if f.file not in files]
