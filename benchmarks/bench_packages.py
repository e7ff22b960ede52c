#!/usr/bin/env python3
"""Per-model packages of upstream vLLM (``vllm/models/<name>/``): resolve and plan each one.

Printed per package: files of the closure for the variant, lines, findings left, and the groups of
what the pinned vLLM lacks (the work map ``migrate_model.py plan`` prints).

exit codes: 0 ran, 2 could not run (no upstream, bad arguments)
"""

from __future__ import annotations

import argparse
import json
import sys
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
    args = ap.parse_args()
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
    summary = {"packages": len(names), "resolve_and_plan": sum(1 for r in out.values() if "error" not in r),
               "variant": args.variant, "upstream": up.source.label,
               "command": "python3 benchmarks/bench_packages.py --json"}
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


if __name__ == "__main__":
    sys.exit(main())
