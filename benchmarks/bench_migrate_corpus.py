#!/usr/bin/env python3
"""Corpus benchmark of ``migrate_model.py apply``: every upstream model file, migrated, then imported.

For each model file of the upstream vLLM (default: ~/.cache/mmf/src/vllm-0.33.0), ``apply`` runs
for real (the same code as the CLI) into a plugin tree that starts fresh for this run; models are
applied one after another into that one tree, so that a sibling migrated earlier is reused as
the plugin would reuse it, and so that one import probe can load them all. Printed: findings
left per file, seconds per file, and, when a Python with the real pinned vLLM is given
(``$MMF_PINNED_VENV`` or ``--python``), the share of migrated model modules that import.
Baseline from drift.md: relative->absolute imports alone let about 7% import.

exit codes: 0 ran, 2 could not run (no upstream, bad arguments)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402
from flagos_migrate.catalog.findings import left_for_you  # noqa: E402
from flagos_migrate.cli import UsageError, progress  # noqa: E402
from flagos_migrate.commands.migrate import prepare, write_prepared  # noqa: E402
from flagos_migrate.migrate.upstream import Upstream, open_upstream  # noqa: E402
from flagos_migrate.pinned import target  # noqa: E402
from flagos_migrate.pinned.api_index import PinnedApis  # noqa: E402

APPLIED = ".bench_migrate_applied.json"  # an --apply-only run's results, next to the tree they describe

INIT = '''"""vllm_fl (benchmark plugin tree)."""

import logging

logger = logging.getLogger(__name__)


def register_model():
    from vllm import ModelRegistry  # noqa: F401
'''


# First import errors that no mechanical rewrite fixes: the new fused-MoE construction API
# (FusedMoEFactory & co. build upstream's MoE subsystem, which the pinned FusedMoE does not mirror),
# and config/processor classes that exist only in transformers 5 (no source for a bridge in upstream vLLM).
STRUCTURAL = {
    "new fused-MoE API (P3, a subsystem, not a helper)": ("FusedMoEFactory", "fused_moe_make_expert_params_mapping",
                                                        "GateLinear"),
    "transformers-5-only class (P5, the agent writes the bridge)": ("from 'transformers'",
                                                                    "No module named 'transformers."),
}


def structural_breakdown(per_file: dict[str, dict]) -> dict:
    """How many failed imports each structural blocker explains, and the rate on the other files."""
    counts = dict.fromkeys(STRUCTURAL, 0)
    blocked = set()
    for name, r in per_file.items():
        err = r.get("import_error", "")
        for label, needles in STRUCTURAL.items():
            if r.get("imports") is False and any(n in err for n in needles):
                counts[label] += 1
                blocked.add(name)
    rest = [r for n, r in per_file.items() if n not in blocked]
    ok = sum(1 for r in rest if r.get("imports"))
    return {"blocked": counts, "others": len(rest), "others_ok": ok,
            "others_rate": round(ok / len(rest), 4) if rest else 0.0}


def fresh_plugin(dest: Path) -> Path:
    pkg = dest / "vllm_fl"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text(INIT)
    (pkg / "models" / "__init__.py").write_text("")
    return dest


def from_record(plugin: Path, name: str) -> dict | None:
    """Per-file result of a model an earlier (interrupted) run applied into ``plugin`` (--resume):
    its migration record, or None when it has none. Fixed findings and seconds are not recorded."""
    path = plugin / "vllm_fl" / "models" / ".migration" / f"{name}.json"
    try:
        rec = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("findings_left"), int):
        return None
    return {"left": rec["findings_left"], "errors_left": rec.get("issues_left"), "fixed": None, "modules": len(rec.get("files") or {}), "rules_left": [],
            "left_findings": [], "left_at_import": None, "resumed": True, "seconds": 0.0}


def apply_all(names, plugin, up, apis, pinned, args) -> tuple[dict[str, dict], Counter, float]:
    """``apply`` every model, one after another, into one plugin tree; per-file results."""
    per_file: dict[str, dict] = {}
    rules_left: Counter = Counter()
    started = time.perf_counter()
    for i, name in enumerate(names, 1):
        if args.resume and (done := from_record(plugin, name)) is not None:
            per_file[name] = done  # applied by the interrupted run: not applied again
            continue
        t0 = time.perf_counter()
        ns = argparse.Namespace(model_name=name, upstream=args.upstream, plugin=str(plugin), pinned=args.pinned,
                                json=True, fetch=False, hf_config=None, dry_run=False, force=False, target=pinned,
                                all_archs=True)  # a maintainer porting all: every architecture
        try:
            p = prepare(ns, (up, apis, None))
            write_prepared(p, ns)
            left = left_for_you(p.migration.left())
            per_file[name] = {"left": len(left), "errors_left": sum(1 for f in left if f.is_issue), "fixed": len(p.migration.fixed()),
                              "modules": len(p.outputs), "rules_left": sorted({f.rule for f in left}),
                              "left_findings": [f"{f.rule} {f.file}:{f.line} {f.message}"[:160] for f in left],
                              "left_at_import": sum(1 for f in left if f.data.get("import_time") is True)}
            rules_left.update(f.rule for f in left)
        except UsageError as exc:
            per_file[name] = {"error": exc.message}
        except Exception as exc:  # a crash on one file must not hide the others' numbers
            per_file[name] = {"error": f"{type(exc).__name__}: {exc}"}
        per_file[name]["seconds"] = round(time.perf_counter() - t0, 2)
        if i % 10 == 0 or i == len(names):
            progress(f"applied {i}/{len(names)} ({time.perf_counter() - started:.0f}s)")
    return per_file, rules_left, time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", default=str(corpus.DEFAULT_UPSTREAM))
    target.add_arguments(ap, "(no plugin here)")
    ap.add_argument("--limit", type=int, default=0, help="first N model files only")
    ap.add_argument("--only", nargs="*", default=[], help="these model names only")
    ap.add_argument("--python", help="interpreter/venv with the pinned vLLM (default $MMF_PINNED_VENV)")
    ap.add_argument("--keep", help="write the plugin tree here instead of a temporary folder")
    ap.add_argument("--apply-only", action="store_true", help="apply into --keep DIR and stop (import later)")
    ap.add_argument("--import-only", action="store_true",
                    help="import what an --apply-only run left in --keep DIR (apply is not repeated)")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted run in --keep DIR: models with a migration record there are "
                    "not applied again (their findings-left count comes from the record)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        pinned = target.target_of(args)
        up = Upstream(open_upstream(args.upstream))
        apis = PinnedApis.load(pinned)
    except UsageError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 2
    names = [Path(r).stem for r in corpus.model_files(up.source)]
    if args.only:
        names = [n for n in names if n in set(args.only)]
    if args.limit:
        names = names[: args.limit]
    if (args.apply_only or args.import_only) and not args.keep:
        print("error: --apply-only and --import-only need --keep DIR", file=sys.stderr)
        return 2
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmf-bench-migrate-"))
    applied_file = work / APPLIED
    if args.import_only:
        if not applied_file.is_file():
            print(f"error: {work} holds no --apply-only run ({APPLIED} missing)", file=sys.stderr)
            return 2
        saved = json.loads(applied_file.read_text())
        plugin, per_file, total_apply = work, saved["per_file"], saved["total_apply"]
        rules_left = Counter(saved["rules_left"])
        names = [n for n in names if n in per_file]
    elif args.resume:
        if not args.keep or not (work / "vllm_fl" / "models").is_dir():
            print("error: --resume needs --keep DIR holding the plugin tree of an earlier run", file=sys.stderr)
            return 2
        plugin = work
        per_file, rules_left, total_apply = apply_all(names, plugin, up, apis, pinned, args)
    elif args.keep and work.exists() and any(work.iterdir()):
        print(f"error: --keep folder {work} is not empty (--resume continues the run that left it)", file=sys.stderr)
        return 2
    else:
        plugin = fresh_plugin(work)
        per_file, rules_left, total_apply = apply_all(names, plugin, up, apis, pinned, args)
    if args.apply_only:
        applied_file.write_text(json.dumps({"per_file": per_file, "total_apply": total_apply,
                                            "rules_left": dict(rules_left), "pinned": pinned.to_dict()}))
        progress(f"applied {len(per_file)} model(s) into {work}; import them with --import-only --keep {work}")
        return 0

    python = args.python or os.environ.get("MMF_PINNED_VENV")
    probe = None
    if python:
        from flagos_migrate.verify.import_probe import probe_imports, python_of

        mods = {n: f"vllm_fl.models.{n}" for n, r in per_file.items() if "error" not in r}
        t0 = time.perf_counter()
        results = probe_imports(python_of(python), list(mods.values()), sys_path=[str(plugin)], jobs=args.jobs,
                                pinned=pinned)
        for n, m in mods.items():
            r = results[m]
            per_file[n]["imports"] = r.ok
            if not r.ok:
                per_file[n]["import_error"] = f"{r.error_type}: {r.message}"[:200]
                per_file[n]["likely_rule"] = r.rule
        ok = sum(1 for r in results.values() if r.ok)
        probe = {"ok": ok, "total": len(names), "rate": round(ok / len(names), 4) if names else 0.0,
                 "seconds": round(time.perf_counter() - t0, 1),
                 "top_errors": Counter(per_file[n].get("import_error", "").split(":")[0] + ": " +
                                       per_file[n].get("import_error", "").split(":", 1)[-1][:90]
                                       for n in mods if not per_file[n].get("imports")).most_common(12)}
        probe["structural"] = structural_breakdown(per_file)
        # "0 left for you" is a promise: every file plan calls clean must import
        clean = [n for n in mods if per_file[n].get("left") == 0]
        probe["clean_files"] = len(clean)
        probe["clean_files_not_importing"] = sorted(n for n in clean if not per_file[n].get("imports"))
    secs = [r["seconds"] for r in per_file.values()]
    lefts = [r["left"] for r in per_file.values() if "left" in r]
    summary = {
        "pinned": pinned.to_dict(),
        "upstream": up.source.label,
        "files": len(names),
        "resumed": sum(1 for r in per_file.values() if r.get("resumed")),
        "crashed": sorted(n for n, r in per_file.items() if "error" in r),
        "clean_statically": sum(1 for x in lefts if x == 0),
        "findings_left": {"median": statistics.median(lefts) if lefts else 0, "max": max(lefts, default=0),
                          "total": sum(lefts)},
        "rules_left": dict(rules_left.most_common()),
        "seconds_per_file": {"median": round(statistics.median(secs), 2) if secs else 0,
                             "max": max(secs, default=0), "total": round(total_apply, 1)},
        "import": probe or "skipped: set MMF_PINNED_VENV (or --python) to a venv with the pinned vLLM",
        "plugin_tree": str(plugin),
    }
    if args.json:
        print(json.dumps({"summary": summary, "per_file": per_file}, indent=2))
        return 0
    print(f"{'model':32s} {'left':>4s} {'fixed':>5s} {'mods':>4s} {'sec':>6s}  import")
    for n, r in per_file.items():
        if "error" in r:
            print(f"{n:32s} ERROR {r['error'][:100]}")
            continue
        imp = "" if "imports" not in r else ("ok" if r["imports"] else f"FAIL {r.get('import_error', '')[:80]}")
        fixed = "-" if r["fixed"] is None else str(r["fixed"])
        print(f"{n:32s} {r['left']:4d} {fixed:>5s} {r['modules']:4d} {r['seconds']:6.2f}  {imp}")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
