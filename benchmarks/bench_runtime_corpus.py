#!/usr/bin/env python3
"""Corpus benchmark of ``migrate_model.py verify --run``: every upstream model file, migrated by
``apply``, then built, loaded, run and compared on the real pinned vLLM (CPU).

Every model file of the upstream vLLM (default: ~/.cache/mmf/src/vllm-0.33.0) is applied, one after
another, into one plugin tree that starts fresh for this run (as bench_migrate_corpus.py does: a
sibling migrated earlier is reused). Then, per model and in --jobs parallel processes, the real
CLI runs ``migrate_model.py verify NAME --plugin TREE --python PINNED --run --json`` (plus
``--reference-python`` when an upstream venv is given) with a per-model timeout, and its JSON is
read. Printed side by side: how many files pass each level (import, construct, load, forward,
match; a file passes a level when every architecture it registers does); the promise check
(models ``apply`` left with 0 findings for the agent, i.e. "0 left for you", that fail a level);
and the same counts for the models that vLLM 0.13.0 does not have at all ("new models").

Per-file results are written after every model to --output (default, for a run over the whole
corpus: benchmarks/results/runtime_corpus_<upstream>_on_<pinned>.json); --resume continues such
a file, so a long run can be stopped and picked up, and a partial run still states its count.

needs: $MMF_PINNED_VENV (or --python) with vllm==0.13.0; for match, $MMF_REFERENCE_VENV (or
--reference-python) with the upstream vLLM.

exit codes: 0 ran (whatever the verdicts), 2 could not run (no upstream, no pinned Python, bad
arguments), 130 interrupted (results so far are kept in --output)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402
from bench_migrate_corpus import fresh_plugin  # noqa: E402
from flagos_migrate.catalog.findings import left_for_you  # noqa: E402
from flagos_migrate.cli import UsageError, progress  # noqa: E402
from flagos_migrate.pinned import target  # noqa: E402

LEVELS = ("import", "construct", "load", "forward", "match")
MIGRATE = ROOT / "scripts" / "migrate_model.py"
REFERENCE_VENV_ENV = "MMF_REFERENCE_VENV"
APPLIED = ".bench_runtime_applied.json"  # apply's results, next to the tree they describe
_LIVE: set[subprocess.Popen] = set()  # verify processes this benchmark started, killed on Ctrl-C


def apply_one(name: str, plugin: Path, args, loaded) -> dict:
    """``apply`` for one model, in process (the CLI's own code); what it fixed and left."""
    from flagos_migrate.commands.migrate import prepare, write_prepared

    ns = argparse.Namespace(model_name=name, upstream=args.upstream, plugin=str(plugin), pinned=args.pinned,
                            json=True, fetch=False, hf_config=None, dry_run=False, force=False, target=args.target,
                            all_archs=True)  # every architecture, as upstream registers them
    p = prepare(ns, loaded)
    write_prepared(p, ns)
    left = left_for_you(p.migration.left())
    return {"left": len(left), "errors_left": sum(1 for f in left if f.is_issue), "rules_left": sorted({f.rule for f in left}),
            "left_findings": [f"{f.rule} {f.file}:{f.line} {f.message}"[:160] for f in left]}


def verify_command(name: str, plugin: Path, python: str, reference: str | None, script: Path,
                   arch_timeout: float, pinned: str | None = None) -> list[str]:
    cmd = [sys.executable, str(script), "verify", name, "--plugin", str(plugin), "--python", python, "--run", "--json",
           "--timeout", str(arch_timeout)]
    if pinned:
        cmd += ["--pinned", pinned]
    if reference:
        cmd += ["--reference-python", reference]
    return cmd


def run_verify(cmd: list[str], timeout: float) -> dict:
    """Run one ``verify --run`` in its own process group; kill that group (ours) on timeout."""
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    _LIVE.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.communicate()
        return {"exit": None, "timeout": True, "seconds": round(time.perf_counter() - t0, 1),
                "error": f"timed out after {timeout:.0f} s"}
    finally:
        _LIVE.discard(proc)
    res = {"exit": proc.returncode, "seconds": round(time.perf_counter() - t0, 1)}
    try:
        res["report"] = json.loads(out)
    except json.JSONDecodeError:
        tail = (err or out).strip().splitlines()[-3:]
        res["error"] = " | ".join(tail)[:300] or f"no JSON on stdout (exit {proc.returncode})"
    if proc.returncode == 2 and "error" not in res:
        res["error"] = " ".join(line for line in err.splitlines() if line.startswith(("error:", "hint:")))[:300]
    return res


def kill_group(proc: subprocess.Popen) -> None:
    """Stop a ``verify`` this benchmark started: SIGINT first, so that it stops the worker it
    started in a session of its own (a SIGKILL would orphan that worker), then SIGKILL the
    process group ``run_verify`` created for it (its pid), nothing else."""
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def arch_levels(arch: dict) -> dict[str, str]:
    """One architecture's levels, normalised: a level counts only when every earlier one passed
    (the harness stops at the first level that does not pass); match is "skipped" without a reference."""
    out: dict[str, str] = {}
    for level in LEVELS:
        entry = (arch.get("levels") or {}).get(level) or {}
        status = entry.get("status", "skipped")
        out[level] = status if status in ("pass", "fail") else f"skipped: {entry.get('reason') or ''}".rstrip(": ")
        if status != "pass":
            break
    return out


def summarize_file(res: dict) -> dict:
    """One file's result from the verify JSON: per architecture the levels reached, and the first error."""
    report = res.get("report") or {}
    archs = report.get("architectures") or []
    environment = res.get("exit") == 2 and archs and report.get("environment_error")
    if (res.get("timeout") or res.get("exit") == 2 or not archs) and not environment:
        env = report.get("environment_error") or {}
        msg = res.get("error") or env.get("message") or "no architecture verified"
        return {"outcome": "timeout" if res.get("timeout") else "could not run", "architectures": {},
                "first_error": {"level": None, "message": str(msg)[:300], "likely_rule": None}}
    per_arch, first = {}, None
    for a in archs:
        name = a.get("architecture") or "?"
        per_arch[name] = {"levels": arch_levels(a), "max_abs_logit_diff": a.get("max_abs_logit_diff"),
                          "reference": a.get("reference")}
        fe = a.get("first_error")
        if fe:
            per_arch[name]["error"] = {"level": fe.get("level"), "message": (fe.get("message") or "")[:300],
                                       "likely_rule": fe.get("likely_rule")}
            first = first or {"architecture": name, **per_arch[name]["error"]}
    if environment:  # the machine lacks a package a model needs: not verified here, not a migration failure
        first = {"level": None, "message": str(report["environment_error"].get("message"))[:300], "likely_rule": None}
        return {"outcome": "environment", "architectures": per_arch, "first_error": first}
    return {"outcome": "pass" if report.get("ok") else "fail", "architectures": per_arch, "first_error": first}


def file_levels(r: dict) -> dict[str, str]:
    """A file passes a level when every architecture does, fails it when any does."""
    archs = [a["levels"] for a in r.get("architectures", {}).values()]
    out = {}
    for level in LEVELS:
        statuses = [a.get(level) for a in archs]
        if not archs or any(s is None for s in statuses) and "fail" not in statuses:
            continue
        out[level] = "fail" if "fail" in statuses else "pass" if all(s == "pass" for s in statuses) else "skipped"
    return out


def level_counts(files: dict[str, dict]) -> dict:
    """Per level: architectures (and files) that pass, fail or were skipped there; the rest never got there."""
    out = {}
    for level in LEVELS:
        arch = {"pass": 0, "fail": 0, "skipped": 0}
        files_c = {"pass": 0, "fail": 0}
        for r in files.values():
            for a in r.get("architectures", {}).values():
                s = a["levels"].get(level)
                if s is not None:
                    arch["pass" if s == "pass" else "fail" if s == "fail" else "skipped"] += 1
            fs = file_levels(r).get(level)
            if fs in files_c:
                files_c[fs] += 1
        out[level] = {"architectures": arch, "files": files_c}
    return out


def promise_failures(files: dict[str, dict]) -> list[dict]:
    """"0 left for you" files with an architecture that fails a level (or that could not be verified)."""
    out = []
    for n, r in sorted(files.items()):
        if r.get("left") != 0:
            continue
        if r["outcome"] in ("timeout", "could not run"):
            out.append({"model": n, "architecture": None, "level": r["outcome"], **r["first_error"]})
        for arch, a in r.get("architectures", {}).items():
            failed = next((lv for lv, s in a["levels"].items() if s == "fail"), None)
            if failed:
                out.append({"model": n, "architecture": arch, **a.get("error", {}), "level": failed})
    return out


def build_summary(per_file: dict[str, dict], meta: dict) -> dict:
    done = {n: r for n, r in per_file.items() if "outcome" in r}
    clean = {n: r for n, r in done.items() if r.get("left") == 0}
    new = {n: r for n, r in done.items() if r.get("new_model")}
    return {
        **meta,
        "files_verified": len(done),
        "architectures_verified": sum(len(r["architectures"]) for r in done.values()),
        "outcomes": {k: sum(1 for r in done.values() if r["outcome"] == k)
                     for k in ("pass", "fail", "timeout", "could not run", "environment")},
        "levels": level_counts(done),
        "zero_left": {"files": len(clean), "levels": level_counts(clean), "failing": promise_failures(done),
                      "environment": sorted(n for n, r in clean.items() if r["outcome"] == "environment")},
        "new_models": {"files": len(new), "levels": level_counts(new)},
        "apply_errors": sorted(n for n, r in per_file.items() if "apply_error" in r),
        "no_architecture": sorted(n for n, r in per_file.items() if r.get("registered") == 0),
    }


def render_table(summary: dict) -> str:
    rows = [("all verified", summary["files_verified"], summary["levels"]),
            ('"0 left for you"', summary["zero_left"]["files"], summary["zero_left"]["levels"]),
            ("new models (not in pinned)", summary["new_models"]["files"], summary["new_models"]["levels"])]
    lines = ["architectures pass/fail/skipped at each level (files where every architecture passes / any fails);",
             "an architecture that failed or was skipped at a level is not counted at the later ones",
             f"{'':28s} {'files':>5s} " + " ".join(f"{lv:>15s}" for lv in LEVELS)]
    for label, n, counts in rows:
        cells = [f"{c['architectures']['pass']}/{c['architectures']['fail']}/{c['architectures']['skipped']}"
                 f" ({c['files']['pass']}/{c['files']['fail']})" for c in (counts[lv] for lv in LEVELS)]
        lines.append(f"{label:28s} {n:5d} " + " ".join(f"{c:>15s}" for c in cells))
    return "\n".join(lines)


def code_version() -> str:
    """The commit the benchmark (and the verify it runs) comes from, for the results file."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def default_output(args, upstream_version: str) -> Path | None:
    if args.output:
        return Path(args.output)
    if args.only or args.limit:
        return None  # a partial run does not overwrite the committed whole-corpus results
    return ROOT / "benchmarks" / "results" / f"runtime_corpus_{upstream_version}_on_{args.pinned}.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", default=str(corpus.DEFAULT_UPSTREAM), help="upstream vLLM source (default %(default)s)")
    target.add_arguments(ap, "(no plugin here)")
    ap.add_argument("--python", help="venv or interpreter with the pinned vLLM (default $MMF_PINNED_VENV)")
    ap.add_argument("--reference-python", help=f"venv with the upstream vLLM, for match (default ${REFERENCE_VENV_ENV}; "
                                               "without one, match is skipped)")
    ap.add_argument("--limit", type=int, default=0, help="first N model files only")
    ap.add_argument("--only", nargs="*", default=[], metavar="NAME", help="these model names only")
    ap.add_argument("--jobs", type=int, default=2, help="verify processes at once (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per model file (all its architectures) "
                                                                "before it counts as timed out (default %(default)s)")
    ap.add_argument("--arch-timeout", type=float, default=300,
                    help="verify's own --timeout: seconds per architecture and side (default %(default)s)")
    ap.add_argument("--output", help="per-file results JSON (default: benchmarks/results/ for a whole-corpus run, "
                                     "none for --limit/--only)")
    ap.add_argument("--resume", action="store_true", help="keep the models already verified in --output")
    ap.add_argument("--keep", metavar="DIR", help="plugin tree here instead of a temp folder: an empty or missing "
                                                  "folder, or one a previous run applied into (its apply is reused)")
    ap.add_argument("--apply-only", action="store_true", help="apply into --keep DIR and stop (verify later)")
    ap.add_argument("--migrate-script", default=str(MIGRATE), help=argparse.SUPPRESS)  # a stand-in, for testing
    ap.add_argument("--json", action="store_true", help="print the summary and per-file results as JSON")
    args = ap.parse_args()
    try:
        target.target_of(args)  # args.pinned: the vLLM version from here on
    except UsageError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 2

    python = args.python or os.environ.get("MMF_PINNED_VENV")
    if not python:
        print("error: no Python with the pinned vLLM\nhint: set MMF_PINNED_VENV or pass --python", file=sys.stderr)
        return 2
    reference = args.reference_python or os.environ.get(REFERENCE_VENV_ENV) or None
    try:
        from flagos_migrate.migrate.upstream import Upstream, open_upstream
        from flagos_migrate.pinned.api_index import PinnedApis

        up = Upstream(open_upstream(args.upstream))
        apis = PinnedApis.load(args.target)
    except UsageError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 2
    names = [Path(r).stem for r in corpus.model_files(up.source)]
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            print(f"error: not model files of {up.source.label}: {', '.join(unknown)}", file=sys.stderr)
            return 2
        names = [n for n in names if n in set(args.only)]
    if args.limit:
        names = names[: args.limit]
    output = default_output(args, up.source.version)
    per_file: dict[str, dict] = {}
    if args.resume and output and output.is_file():
        per_file = {n: r for n, r in json.loads(output.read_text())["per_file"].items() if "outcome" in r}
    if args.apply_only and not args.keep:
        print("error: --apply-only needs --keep DIR\nhint: the applied tree is reused from there", file=sys.stderr)
        return 2
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmf-bench-runtime-"))
    manifest = work / APPLIED
    applied: dict[str, dict] = {}
    if manifest.is_file():
        applied = json.loads(manifest.read_text())
        plugin = work
    elif work.exists() and any(work.iterdir()):
        print(f"error: plugin folder {work} is not empty and holds no {APPLIED}", file=sys.stderr)
        return 2
    else:
        plugin = fresh_plugin(work)
    meta = {"upstream": up.source.label, "pinned": args.pinned, "corpus_files": len(corpus.model_files(up.source)),
            "selected": len(names), "reference": "given" if reference else "none: match skipped",
            "timeout_s": args.timeout, "arch_timeout_s": args.arch_timeout, "jobs": args.jobs, "code": code_version(), "plugin_tree": str(plugin)}

    def save() -> None:
        if output:
            output.parent.mkdir(parents=True, exist_ok=True)
            tmp = output.with_suffix(".tmp")
            tmp.write_text(json.dumps({"summary": build_summary(per_file, meta), "per_file": per_file}, indent=1))
            tmp.replace(output)

    # Apply everything first (sequentially: the models share one tree), then verify in parallel.
    started = time.perf_counter()
    to_apply = [n for n in names if n not in applied]
    for i, name in enumerate(to_apply, 1):
        t0 = time.perf_counter()
        try:
            applied[name] = apply_one(name, plugin, args, (up, apis, None))
        except UsageError as exc:
            applied[name] = {"apply_error": exc.message}
        except Exception as exc:  # one crash must not hide the other files' numbers
            applied[name] = {"apply_error": f"{type(exc).__name__}: {exc}"}
        applied[name]["apply_seconds"] = round(time.perf_counter() - t0, 2)
        applied[name]["new_model"] = not apis.has_module(f"{corpus.MODELS_PACKAGE}.{name}")
        if i % 20 == 0 or i == len(to_apply):
            progress(f"applied {i}/{len(to_apply)} ({time.perf_counter() - started:.0f}s)")
            manifest.write_text(json.dumps(applied, indent=1))
    if args.apply_only:
        print(f"applied {len(applied)} models into {plugin} ({len(to_apply)} now)")
        return 0
    # Files that register no architecture of their own (encoders, MTP/utility modules that another
    # model's file uses) have nothing for --run to build: counted apart, not as failures.
    from flagos_migrate.plugin.provenance import load_record
    from flagos_migrate.verify.runtime import architectures_of

    for n in names:
        if "apply_error" not in applied[n]:
            applied[n]["registered"] = len(architectures_of(load_record(plugin / "vllm_fl", n) or {}))
    todo = [n for n in names if "apply_error" not in applied[n] and applied[n]["registered"] and n not in per_file]
    for n in names:
        if "apply_error" in applied[n] or not applied[n]["registered"]:
            per_file[n] = applied[n]
        elif n in per_file:
            per_file[n].update(applied[n])
    t_verify = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        futs = {pool.submit(run_verify, verify_command(n, plugin, python, reference, Path(args.migrate_script),
                                                       args.arch_timeout, args.pinned), args.timeout): n for n in todo}
        for i, fut in enumerate(as_completed(futs), 1):
            n = futs[fut]
            res = fut.result()
            per_file[n] = {**applied[n], **summarize_file(res), "exit": res.get("exit"),
                           "verify_seconds": res["seconds"]}
            save()
            fl = file_levels(per_file[n])
            last = next((lv for lv in reversed(LEVELS) if fl.get(lv) == "pass"), "-")
            progress(f"verified {i}/{len(todo)} {n}: {per_file[n]['outcome']} (all architectures pass up to: {last}; "
                     f"{res['seconds']:.0f}s, {time.perf_counter() - t_verify:.0f}s so far)")
        pool.shutdown()
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(_LIVE):
            kill_group(proc)
        save()
        print(f"interrupted; results so far in {output}" if output else "interrupted", file=sys.stderr)
        return 130
    save()
    summary = build_summary(per_file, meta)
    summary["seconds"] = {"total": round(time.perf_counter() - started, 1),
                          "verify": round(time.perf_counter() - t_verify, 1)}
    if args.json:
        print(json.dumps({"summary": summary, "per_file": per_file}, indent=2))
        return 0
    print(f"{'model / architecture':44s} {'left':>4s} " + " ".join(f"{lv[:9]:>9s}" for lv in LEVELS) + "  error")
    for n, r in per_file.items():
        if "apply_error" in r:
            print(f"{n:44s} apply error: {r['apply_error'][:90]}")
            continue
        if "outcome" not in r:
            continue
        if not r["architectures"]:
            print(f"{n:44s} {r.get('left', -1):4d} {r['outcome']}: {r['first_error']['message'][:90]}")
        for arch, a in r["architectures"].items():
            cells = [(a["levels"].get(lv) or "-").split(":")[0] for lv in LEVELS]
            msg = a.get("error", {}).get("message", "")[:70]
            print(f"{n + ' / ' + arch:44.44s} {r.get('left', -1):4d} " + " ".join(f"{c:>9s}" for c in cells)
                  + f"  {msg}")
    print()
    print(render_table(summary))
    print(f"\n{summary['files_verified']} of {meta['corpus_files']} corpus files verified "
          f"({summary['outcomes']}); reference for match: {meta['reference']}")
    if summary["no_architecture"]:
        print(f"{len(summary['no_architecture'])} selected files register no architecture (nothing to run): "
              + " ".join(summary["no_architecture"]))
    if summary["zero_left"]["failing"]:
        print('\npromise check: "0 left for you" models that fail a level')
        for f in summary["zero_left"]["failing"]:
            print(f"  {f['model']:24s} {str(f['architecture'] or '-'):36.36s} {f['level']:10s} "
                  f"{str(f.get('message') or '')[:80]}")
    else:
        print('\npromise check: no "0 left for you" model failed a level')
    if output:
        print(f"per-file results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
