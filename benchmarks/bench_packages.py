#!/usr/bin/env python3
"""Per-model packages of upstream vLLM (``vllm/models/<name>/``): resolve and plan each one.

Printed per package: files of the closure for the variant, lines, findings left, and the groups of
what the pinned vLLM lacks (the work map ``migrate_model.py plan`` prints). With ``--apply NAME ...``
and ``--python`` (a venv with the pinned vLLM), those packages are also applied into a fresh copy of
the example plugin and every written module is imported there (``migrate_model.py verify``).

exit codes: 0 ran, 2 could not run (no upstream, bad arguments)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402
from flagos_migrate.cli import UsageError, progress  # noqa: E402
from flagos_migrate.migrate.packages import package_models, plan_package  # noqa: E402
from flagos_migrate.migrate.upstream import Upstream, open_upstream  # noqa: E402
from flagos_migrate.pinned.api_index import PinnedApis  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", default=str(corpus.DEFAULT_UPSTREAM))
    ap.add_argument("--pinned", default="0.13.0")
    ap.add_argument("--variant", default="nvidia", choices=("nvidia", "amd", "generic"))
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--apply", nargs="*", default=[], metavar="NAME", help="packages to apply and import too")
    ap.add_argument("--python", help="interpreter or venv with the pinned vLLM (for --apply)")
    args = ap.parse_args()
    if args.apply and not args.python:
        print("error: --apply needs --python\nhint: pass the venv with the pinned vLLM", file=sys.stderr)
        return 2
    try:
        up = Upstream(open_upstream(args.upstream))
        apis = PinnedApis.load(args.pinned)
    except UsageError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 2
    names = [n for n in package_models(up) if not args.only or n in args.only]
    out = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            plan = plan_package(up, apis, name, args.variant)
            out[name] = {"resolved": bool(plan["resolved"]["architectures"]),
                         "model_class": plan["resolved"]["ModelClassName"],
                         "files": len(plan["files"]), "lines": sum(f["lines"] for f in plan["files"].values()),
                         "findings": sum(f["findings"] for f in plan["files"].values()),
                         "groups": {k: len(v) for k, v in plan["groups"].items()}}
        except Exception as exc:  # one package's crash must not hide the others
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        out[name]["seconds"] = round(time.perf_counter() - t0, 1)
        progress(f"planned {name} ({out[name]['seconds']}s)")
    for name in args.apply:
        t0 = time.perf_counter()
        out.setdefault(name, {})["apply"] = _apply_and_import(name, args)
        out[name]["apply"]["seconds"] = round(time.perf_counter() - t0, 1)
        progress(f"applied and imported {name} ({out[name]['apply']['seconds']}s)")
    summary = {"packages": len(names), "resolve_and_plan": sum(1 for r in out.values() if "error" not in r),
               "apply_and_import": {n: out[n]["apply"].get("entry_point_imports", False) for n in args.apply},
               "variant": args.variant, "upstream": up.source.label,
               "command": "python3 benchmarks/bench_packages.py --json"
               + (f" --apply {' '.join(args.apply)} --python <pinned venv>" if args.apply else "")}
    if args.json:
        print(json.dumps({"summary": summary, "per_package": out}, indent=2))
        return 0
    for n, r in out.items():
        if "error" in r:
            print(f"{n:14s} ERROR {r['error'][:100]}")
        else:
            print(f"{n:14s} {r['files']:4d} files {r['lines']:6d} lines {r['findings']:5d} findings "
                  f"{len(r['groups']):3d} groups  {r['model_class']}")
    print(json.dumps(summary, indent=2))
    return 0


def _apply_and_import(name: str, args) -> dict:
    """apply into a fresh copy of the example plugin, then verify (import every written module)."""
    script = str(ROOT / "scripts" / "migrate_model.py")
    with tempfile.TemporaryDirectory(prefix=f"mmf-pkg-{name}-") as tmp:
        plugin = Path(tmp) / "plugin"
        shutil.copytree(ROOT / "examples" / "plugin", plugin)
        applied = subprocess.run([sys.executable, script, "apply", name, "--upstream", args.upstream, "--plugin",
                                  str(plugin), "--variant", args.variant, "--json"], capture_output=True, text=True)
        if applied.returncode not in (0, 1):
            return {"error": applied.stderr.strip().splitlines()[-1:]}
        plan = json.loads(applied.stdout)
        left = plan["left_for_you"]
        verified = subprocess.run([sys.executable, script, "verify", name, "--plugin", str(plugin), "--python",
                                   args.python, "--jobs", "1", "--json"], capture_output=True, text=True)
        try:
            results = json.loads(verified.stdout)["results"]
        except (ValueError, KeyError):
            return {"error": verified.stderr.strip().splitlines()[-1:]}
    pkg = f"vllm_fl.models.{name}"
    mine = {m: r for m, r in results.items() if m == pkg or m.startswith(pkg + ".")}
    return {"written": len(plan["written"]), "left_errors": sum(1 for f in left if f["severity"] == "error"),
            "left_warnings": sum(1 for f in left if f["severity"] != "error"),
            "registration": plan["registration"]["add"],
            "modules": len(results), "import_ok": sum(1 for r in results.values() if r["ok"]),
            "import_failed": sorted(m for m, r in results.items() if not r["ok"] and not r["environment"]),
            "environment": sorted(f"{m}: {r['environment']}" for m, r in results.items() if r["environment"]),
            "package_modules_ok": f"{sum(1 for r in mine.values() if r['ok'])}/{len(mine)}",
            "entry_point_imports": bool(results.get(pkg, {}).get("ok"))}


if __name__ == "__main__":
    sys.exit(main())
