#!/usr/bin/env python3
"""Baseline of the migration: how many upstream model files import on the pinned vLLM after
relative->absolute imports alone, and, as a control, how many of the pinned vLLM's own model
files import the same way.

Every file is copied into a temporary package with its relative imports made absolute
(``benchmarks/corpus.py``) and imported for real in the pinned venv by ``import_probe`` (one
preloaded worker, one fork per file). Prints rates, time per file and in total, and the most
frequent first errors with their likely catalog rule.

Needs a venv with the pinned vLLM: --pinned-venv or $MMF_PINNED_VENV. Never writes vLLM source
anywhere but a temporary folder; --output writes only derived per-file results (JSON).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent / "scripts")]

import corpus  # noqa: E402
from flagos_migrate import cli  # noqa: E402
from flagos_migrate.fsutil import atomic_write_json  # noqa: E402
from flagos_migrate.pinned import target  # noqa: E402
from flagos_migrate.verify.import_probe import (  # noqa: E402
    PINNED_VENV_ENV,
    ProbeResult,
    moved_checker,
    probe_imports,
    python_of,
)


def parse_args(argv):
    import os

    p = cli.make_parser(
        "bench_import_baseline.py",
        __doc__.split("\n\n")[0],
        epilog="example: MMF_PINNED_VENV=~/.cache/mmf/venv-vllm013 python3 benchmarks/bench_import_baseline.py --jobs 2",
    )
    p.add_argument("--upstream", default=str(corpus.DEFAULT_UPSTREAM),
                   help="upstream vLLM: folder holding vllm/, site-packages, or wheel (default: %(default)s)")
    p.add_argument("--pinned-venv", default=os.environ.get(PINNED_VENV_ENV),
                   help=f"venv with the pinned vLLM (default: ${PINNED_VENV_ENV})")
    p.add_argument("--control", default=None,
                   help="pinned vLLM source for the control run (default: the venv's own site-packages)")
    p.add_argument("--no-control", action="store_true", help="skip the control run on the pinned vLLM's own files")
    p.add_argument("--include-shared", action="store_true",
                   help="also probe the shared modules of models/ (utils, interfaces, ...)")
    target.add_arguments(p, "(no plugin here)")
    p.add_argument("--jobs", type=int, default=2, help="modules imported in parallel (default: 2)")
    p.add_argument("--timeout", type=float, default=120, help="seconds per module (default: 120)")
    p.add_argument("--limit", type=int, default=0, help="only the first N files of each corpus (0: all)")
    p.add_argument("--top", type=int, default=15, help="how many frequent first errors to print")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--output", help="write per-file results as JSON to this file")
    p.add_argument("--quiet", action="store_true", help="no per-file progress on stderr")
    return p.parse_args(argv)


def run_corpus(label, source, python, args, tmp, moved=None):
    rels = corpus.model_files(source, include_shared=args.include_shared)
    if args.limit:
        rels = rels[: args.limit]
    mapping = corpus.lay_out(source, rels, Path(tmp) / label)

    def progress(res: ProbeResult, done: int, total: int) -> None:
        if not args.quiet:
            status = "ok" if res.ok else f"{res.rule or '-'} {res.first_error[:100]}"
            cli.progress(f"[{label} {done}/{total}] {res.module.rsplit('.', 1)[-1]}: {status}")

    t0 = time.monotonic()
    stats: dict = {}
    results = probe_imports(python, list(mapping.values()), [str(Path(tmp) / label)], jobs=args.jobs,
                            timeout=args.timeout, progress=progress, moved=moved, stats=stats,
                            pinned=args.target)
    wall = time.monotonic() - t0
    per_file = {rel: results[mod] for rel, mod in mapping.items()}
    summary = summarize(label, source, per_file, wall, args.top)
    summary["preload_seconds"] = stats.get("preload_seconds")
    summary["preload_failed"] = stats.get("preload_failed")
    summary["jobs"] = args.jobs
    return summary


def summarize(label, source, per_file, wall, top):
    n = len(per_file)
    ok = [rel for rel, r in per_file.items() if r.ok]
    seconds = [r.seconds for r in per_file.values()]
    shared = {f"{corpus.MODELS_DIR}/{s}.py" for s in corpus.SHARED_MODULES}
    models_only = {rel: r for rel, r in per_file.items() if rel not in shared}
    return {
        "label": label,
        "source": source.label.replace(str(Path.home()), "~"),
        "version": source.version,
        "files": n,
        "ok": len(ok),
        "ok_rate": round(len(ok) / n, 4) if n else 0.0,
        "model_files": len(models_only),
        "model_files_ok": sum(1 for r in models_only.values() if r.ok),
        "wall_seconds": round(wall, 2),
        "import_seconds_total": round(sum(seconds), 2),
        "import_seconds_per_file": round(sum(seconds) / n, 4) if n else 0.0,
        "wall_seconds_per_file": round(wall / n, 4) if n else 0.0,
        "top_errors": Counter(r.first_error for r in per_file.values() if not r.ok).most_common(top),
        "rules": dict(Counter(r.rule or "none" for r in per_file.values() if not r.ok).most_common()),
        "results": {rel: compact(r) for rel, r in per_file.items()},
    }


def compact(r: ProbeResult) -> dict:
    """Per-file record without temporary paths or tracebacks (small enough to commit)."""
    out = {"ok": r.ok, "seconds": round(r.seconds, 3)}
    if not r.ok:
        raised = r.raised_at.split("site-packages/", 1)[-1] if "site-packages/" in r.raised_at else ""
        out.update(error_type=r.error_type, first_error=r.first_error, missing=r.missing,
                   missing_from=r.missing_from, rule=r.rule, line=r.line if r.in_probed_file else 0,
                   raised_in_pinned=raised)
    return out


def print_text(s):
    print(f"== {s['label']}: {s['source']} ({s['version']})")
    print(f"   import ok: {s['ok']}/{s['files']} = {100 * s['ok_rate']:.1f}%"
          + (f"  (model files only: {s['model_files_ok']}/{s['model_files']})" if s["model_files"] != s["files"] else ""))
    print(f"   time: {s['wall_seconds']:.1f} s wall in total (preload included), "
          f"{s['wall_seconds_per_file'] * 1000:.0f} ms wall per file, "
          f"{s['import_seconds_per_file'] * 1000:.0f} ms import per file in the fork, "
          f"{s['preload_seconds']} s preload, {s['jobs']} jobs")
    print(f"   likely rules of failures: {s['rules']}")
    print("   most frequent first errors:")
    for err, count in s["top_errors"]:
        print(f"   {count:4d}  {err[:150]}")


def main(argv=None) -> int:
    args = parse_args(argv)
    target.target_of(args)  # its index tells moved names (P13) from missing ones (P3)
    if not args.pinned_venv:
        raise cli.UsageError(
            f"no venv with the pinned vLLM: --pinned-venv is not given and ${PINNED_VENV_ENV} is unset",
            hint=f"export {PINNED_VENV_ENV}=/path/to/venv (a venv where `import vllm` works, with the pinned vLLM)",
        )
    python = python_of(args.pinned_venv)
    upstream = corpus.open_vllm(args.upstream)
    control_src = None
    if not args.no_control:
        root = args.control or corpus.installed_vllm_root(args.pinned_venv)
        if root is None:
            raise cli.UsageError(f"no vllm/ found in the site-packages of {args.pinned_venv}",
                                 hint="give --control PATH or --no-control")
        control_src = corpus.open_vllm(root)

    moved = moved_checker(args.target)
    summaries = []
    with tempfile.TemporaryDirectory(prefix="mmf-baseline-") as tmp:
        summaries.append(run_corpus("upstream", upstream, python, args, tmp, moved))
        if control_src is not None:
            summaries.append(run_corpus("control", control_src, python, args, tmp, moved))

    if args.output:
        atomic_write_json(Path(args.output), {"summaries": summaries})
    if args.json:
        cli.print_json([{k: v for k, v in s.items() if k != "results"} for s in summaries])
    else:
        for s in summaries:
            print_text(s)
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.run_main(main)
