#!/usr/bin/env python3
"""How well does the static validator predict "this file will not import on the pinned vLLM"?

For every model file of an upstream vLLM (default: 0.33.0 from ~/.cache/mmf/src), apply only the
relative->absolute import rewrite, run the validator's analysis on it and take its verdict: the
file will not import when an error finding that runs at import time remains
(``analysis.import_blockers``). Where a venv with the real pinned vLLM is given ($MMF_PINNED_VENV
or --venv), import every file for real (``import_probe``) and print precision and recall of that
verdict, time per file and in total, and every disagreement with its reason.

The control run (--control, default on) does the same with the pinned version's own model files:
they import on the pinned version, so every issue reported there is a false positive.

exit codes: 0 done, 2 could not run (missing sources / venv)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (puts scripts/ on sys.path)
from flagos_migrate.analysis.engine import AnalysisContext, analyze_source, import_blockers  # noqa: E402
from flagos_migrate.pinned import target  # noqa: E402
from flagos_migrate.pinned.api_index import PinnedApis  # noqa: E402
from flagos_migrate.pinned.sources import module_name  # noqa: E402
from flagos_migrate.verify.import_probe import PINNED_VENV_ENV, probe_imports, python_of  # noqa: E402

SRC = Path.home() / ".cache" / "mmf" / "src"

_APIS: PinnedApis | None = None


def _init(pinned) -> None:
    global _APIS
    _APIS = PinnedApis.load(pinned)


def _analyse(item: tuple[str, str, bytes]) -> dict:
    """Worker: analyse one absolutized file; return a JSON-able summary."""
    rel, module, data = item
    try:
        text = data.decode("utf-8")
        text = corpus.absolutize_relative_imports(text, module_name(rel))
    except UnicodeDecodeError:
        text = data
    stem = Path(rel).stem
    ctx = AnalysisContext(_APIS, f"{corpus.PROBE_PACKAGE}.{stem}", rel)
    started = time.perf_counter()  # the validator's own time (the baseline rewrite is not its cost)
    cpu = time.process_time()  # CPU time: comparable on a machine shared with other jobs
    findings = analyze_source(text, ctx)
    cpu = time.process_time() - cpu
    blockers = import_blockers(findings)
    issues = [f for f in findings if f.severity == "error"]
    return {
        "file": rel,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu,
        "fails": bool(blockers),
        "first_blocker": (f"{blockers[0].rule} line {blockers[0].line}: {blockers[0].message}" if blockers else ""),
        "issues": len(issues),
        "warnings": len(findings) - len(issues),
        "rules": sorted({f.rule for f in issues}),
        "internal_errors": [f.message for f in findings if f.data.get("internal_error")],
        "issue_texts": [f"{f.rule} line {f.line}: {f.message}" for f in issues],
    }


def analyse_corpus(source, relpaths: list[str], pinned: str, jobs: int) -> tuple[dict[str, dict], float]:
    items = [(rel, module_name(rel), data) for rel, data in corpus._texts(source, relpaths)]
    started = time.perf_counter()
    if jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_init, initargs=(pinned,)) as pool:
            results = list(pool.map(_analyse, items, chunksize=8))
    else:
        _init(pinned)
        results = [_analyse(i) for i in items]
    return {r["file"]: r for r in results}, time.perf_counter() - started


def probe(source, relpaths: list[str], venv: str, jobs: int, pinned: str) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="mmf-validator-corpus-") as tmp:
        mapping = corpus.lay_out(source, relpaths, tmp)
        results = probe_imports(python_of(venv), list(mapping.values()), sys_path=[tmp], jobs=jobs, pinned=pinned)
        return {rel: {"ok": results[mod].ok, "error": results[mod].first_error,
                      "where": results[mod].location} for rel, mod in mapping.items()}


def compare(static: dict[str, dict], real: dict[str, dict]) -> dict:
    tp = [f for f in static if static[f]["fails"] and not real[f]["ok"]]
    fp = [f for f in static if static[f]["fails"] and real[f]["ok"]]
    fn = [f for f in static if not static[f]["fails"] and not real[f]["ok"]]
    tn = [f for f in static if not static[f]["fails"] and real[f]["ok"]]
    precision = len(tp) / (len(tp) + len(fp)) if tp or fp else 1.0
    recall = len(tp) / (len(tp) + len(fn)) if tp or fn else 1.0
    return {
        "true_positive": len(tp), "false_positive": len(fp), "false_negative": len(fn), "true_negative": len(tn),
        "precision": round(precision, 4), "recall": round(recall, 4),
        "false_positives": [{"file": f, "validator": static[f]["first_blocker"]} for f in fp],
        "false_negatives": [{"file": f, "import_error": real[f]["error"], "where": real[f]["where"]} for f in fn],
    }


def run_one(label: str, root: Path, pinned: str, jobs: int, venv: str | None, log) -> dict:
    source = corpus.open_vllm(root)
    relpaths = corpus.model_files(source)
    static, seconds = analyse_corpus(source, relpaths, pinned, jobs)
    out = {
        "label": label, "source": str(root), "version": source.version, "files": len(relpaths),
        "analysis_seconds_total": round(seconds, 2), "analysis_ms_per_file": round(1000 * seconds / len(relpaths), 1),
        # per-file analyze_source() time summed over files (CPU of the validator alone, any job count)
        "validator_seconds_sum": round(sum(r["seconds"] for r in static.values()), 2),
        "validator_ms_per_file_median": round(1000 * sorted(r["seconds"] for r in static.values())[len(static) // 2], 1),
        "validator_cpu_seconds_sum": round(sum(r["cpu_seconds"] for r in static.values()), 2),
        "jobs": jobs, "predicted_failing": sum(r["fails"] for r in static.values()),
        "files_with_issues": sum(bool(r["issues"]) for r in static.values()),
        "internal_errors": {f: r["internal_errors"] for f, r in static.items() if r["internal_errors"]},
    }
    log(f"{label}: analysed {len(relpaths)} files in {seconds:.2f}s ({out['analysis_ms_per_file']} ms/file, "
        f"{jobs} jobs, wall clock incl. workers' start and the relative-import rewrite); validator alone: "
        f"{out['validator_seconds_sum']}s summed ({out['validator_cpu_seconds_sum']}s CPU), median "
        f"{out['validator_ms_per_file_median']} ms/file; "
        f"predicted not importable: {out['predicted_failing']}")
    if label == "control":
        out["issues_on_control"] = {f: r["issue_texts"] for f, r in static.items() if r["issues"]}
    if venv:
        started = time.perf_counter()
        real = probe(source, relpaths, venv, jobs, pinned)
        out["probe_seconds"] = round(time.perf_counter() - started, 1)
        out["really_failing"] = sum(not r["ok"] for r in real.values())
        out.update(compare(static, real))
        log(f"{label}: real imports failing {out['really_failing']}/{len(relpaths)}; precision {out['precision']}, "
            f"recall {out['recall']} (TP {out['true_positive']}, FP {out['false_positive']}, "
            f"FN {out['false_negative']}, TN {out['true_negative']})")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", type=Path, default=SRC / "vllm-0.33.0", help="upstream vLLM source (folder/wheel)")
    p.add_argument("--control-source", type=Path, help="the pinned vLLM's own source (default: "
                   f"{SRC}/vllm-PINNED when it exists, else the site-packages of --venv)")
    p.add_argument("--no-control", action="store_true", help="skip the control run on the pinned files")
    target.add_arguments(p, "(no plugin here)")
    p.add_argument("--venv", default=os.environ.get(PINNED_VENV_ENV), help=f"venv with the real pinned vLLM "
                   f"(default ${PINNED_VENV_ENV}); without it only the static side runs")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--output", type=Path, help="also write the JSON result here")
    args = p.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    pinned = target.target_of(args)
    if args.control_source is None and not args.no_control:
        own = SRC / f"vllm-{pinned.vllm}"
        args.control_source = own if own.exists() else (corpus.installed_vllm_root(args.venv) if args.venv else own)
    runs = [("upstream", args.upstream)] + ([] if args.no_control else [("control", args.control_source)])
    for _, root in runs:
        if not root.exists():
            print(f"error: source not found: {root}\nhint: unpack the vLLM wheel there or pass --upstream/"
                  "--control-source", file=sys.stderr)
            return 2
    # the target (not just its vLLM version) goes to the workers: --transformers must reach them
    result = {"pinned": pinned.to_dict(), "runs": [run_one(label, root, pinned, args.jobs, args.venv, log)
                                             for label, root in runs]}
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    else:
        for run in result["runs"]:
            print(f"== {run['label']} ({run['version']}): {run['files']} files, static {run['analysis_seconds_total']}s "
                  f"wall ({run['jobs']} jobs); validator alone {run['validator_seconds_sum']}s summed "
                  f"({run['validator_cpu_seconds_sum']}s CPU), median "
                  f"{run['validator_ms_per_file_median']} ms/file")
            if "precision" in run:
                print(f"   precision {run['precision']}  recall {run['recall']}  TP {run['true_positive']} "
                      f"FP {run['false_positive']} FN {run['false_negative']} TN {run['true_negative']}")
                for fp in run["false_positives"]:
                    print(f"   FP {fp['file']}: {fp['validator']}")
                for fn in run["false_negatives"]:
                    print(f"   FN {fn['file']}: {fn['import_error']} ({fn['where']})")
            for f, texts in run.get("issues_on_control", {}).items():
                for t in texts:
                    print(f"   control issue {f}: {t}")
            for f, errs in run["internal_errors"].items():
                print(f"   INTERNAL {f}: {errs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
