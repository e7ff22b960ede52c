"""Provenance of a migration: where each written file came from and what it looked like.

One JSON record per model at ``vllm_fl/models/.migration/<model>.json``. It makes ``apply``
safe to repeat: a file whose bytes differ from every recorded output was edited by hand and is
not overwritten without ``--force``; and a re-run after an upstream update can say which
upstream files changed since the last apply.
"""

from __future__ import annotations

import json
from pathlib import Path

from flagos_migrate.cli import UsageError
from flagos_migrate.fsutil import ensure_within, sha256_text

RECORD_DIR = "models/.migration"
FORMAT = 1


def record_path(package_dir: Path, model: str) -> Path:
    return package_dir / RECORD_DIR / f"{model}.json"


def lock_path(package_dir: Path) -> Path:
    """The lock taken by ``apply`` around its read-modify-write of ``__init__.py`` and the record."""
    return package_dir / RECORD_DIR / ".lock"


def _malformed(path: Path, why: str) -> UsageError:
    return UsageError(f"malformed migration record {path}: {why}",
                      hint="move it away (apply writes a new one; files it listed then count as hand-edited)")


def read_record(path: Path) -> dict | None:
    """A record of this format, None for another format; UsageError when it cannot be used."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _malformed(path, str(exc)) from None
    if not isinstance(data, dict):
        raise _malformed(path, "not a JSON object")
    if data.get("format") != FORMAT:
        return None
    files = data.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in files.items()):
        raise _malformed(path, "'files' must map paths to objects")
    for rel, info in files.items():
        for key in ("origin", "upstream_sha256", "output_sha256"):
            if info.get(key) is not None and not isinstance(info[key], str):
                raise _malformed(path, f"files[{rel!r}].{key} must be a string")
    reg = data.get("registration", [])
    if not isinstance(reg, list) or not all(isinstance(r, str) for r in reg):
        raise _malformed(path, "'registration' must be a list of strings")
    if not isinstance(data.get("upstream", {}), dict):
        raise _malformed(path, "'upstream' must be an object")
    return data


def load_record(package_dir: Path, model: str) -> dict | None:
    return read_record(ensure_within(record_path(package_dir, model), package_dir))


def all_records(package_dir: Path) -> list[dict]:
    out = []
    folder = package_dir / RECORD_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = read_record(ensure_within(path, package_dir))
        if data is not None:
            out.append(data)
    return out


def known_outputs(package_dir: Path) -> dict[str, set[str]]:
    """relpath -> every output hash some migration recorded for it (shared compat files too)."""
    out: dict[str, set[str]] = {}
    for rec in all_records(package_dir):
        for rel, info in (rec.get("files") or {}).items():
            if info.get("output_sha256"):
                out.setdefault(rel, set()).add(info["output_sha256"])
    return out


def build_record(model: str, upstream: dict, pinned: str, files: dict[str, dict], registration: list[str],
                 left: int, issues_left: int | None = None, left_findings: list[dict] | None = None) -> dict:
    """``files``: relpath -> {role, origin, upstream_sha256, text, rules}; ``left``: how many findings
    ``left_for_you`` lists (warnings included), ``issues_left``: how many of them are errors;
    ``left_findings``: those findings, each with its span (verify.left_findings.record_entries), which
    ``verify --run`` ties a failure to."""
    return {
        "format": FORMAT,
        "tool": "model-migrate-flagos migrate_model.py",
        "model": model,
        "upstream": upstream,
        "pinned_vllm": pinned,
        "files": {
            rel: {
                "role": info["role"],
                "origin": info.get("origin"),
                "upstream_sha256": info.get("upstream_sha256"),
                "output_sha256": sha256_text(info["text"]),
                "rules": sorted(info.get("rules") or []),
            }
            for rel, info in sorted(files.items())
        },
        "registration": registration,
        "findings_left": left,
        "issues_left": left if issues_left is None else issues_left,
        "left": list(left_findings or []),
    }


def upstream_changes(previous: dict | None, current_files: dict[str, dict], upstream: dict) -> list[str]:
    """What changed upstream since the previous apply (file hashes of the same origins)."""
    if not previous:
        return []
    out = []
    before = {info.get("origin"): info.get("upstream_sha256") for info in previous.get("files", {}).values()}
    now = {info.get("origin"): info.get("upstream_sha256") for info in current_files.values()}
    old_version = (previous.get("upstream") or {}).get("version")
    if old_version and old_version != upstream.get("version"):
        out.append(f"upstream version {old_version} -> {upstream.get('version')}")
    for origin in sorted(o for o in now if o):
        if origin in before and before[origin] and now[origin] and before[origin] != now[origin]:
            out.append(f"{origin} changed upstream since the last apply")
        elif origin not in before:
            out.append(f"{origin} is new in this migration")
    for origin in sorted(o for o in before if o and o not in now):
        out.append(f"{origin} is no longer needed")
    return out
