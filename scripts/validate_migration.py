#!/usr/bin/env python3
"""Check migrated vllm-plugin-FL files against the pinned vLLM without importing anything.

Imports, call signatures, inherited methods, vLLM config attributes, registrations, config
bridges, custom ops, __init__ overrides, merged projections and cleanliness, judged against the
static API index of the pinned vLLM and its transformers (rule catalog P1-P47: references/compatibility-patches.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from flagos_migrate.catalog.findings import format_github, format_text, left_for_you, split
from flagos_migrate.cli import EXIT_FINDINGS, EXIT_OK, make_parser, print_json, progress, run_main
from flagos_migrate.commands import baseline
from flagos_migrate.commands.validate import validate
from flagos_migrate.fsutil import atomic_write_json
from flagos_migrate.pinned import target

EPILOG = """examples:
  python3 scripts/validate_migration.py ~/vllm-plugin-FL qwen3_5
  python3 scripts/validate_migration.py . vllm_fl/models/kimi_k25.py vllm_fl/configs/kimi_k25.py
  python3 scripts/validate_migration.py . --all --format github      # CI annotations
  python3 scripts/validate_migration.py . --all --strict --write-baseline .mmf-baseline.json
  python3 scripts/validate_migration.py . --all --strict --baseline .mmf-baseline.json
  python3 scripts/validate_migration.py . --all --strict --since origin/main
  python3 scripts/validate_migration.py . qwen3_moe --hf-config ~/ckpt/config.json  # key drift (P33)

The pinned target is --pinned, else the vllm requirement PLUGIN_FOLDER declares, else the
installed vLLM, else the default; it is printed first on stderr and under "pinned" in --json.
MODEL_FILE is a path or a model name (vllm_fl/models/NAME.py). Warnings never change the exit
code unless --strict; "left for you" counts them as plan and apply do (every finding, errors and
warnings alike). Findings an earlier --write-baseline recorded (same rule, file, message)
and, with --since, findings in files git shows unchanged since REF are counted as "known" and
never change the exit code."""


def parse_args(argv):
    p = make_parser("validate_migration.py", __doc__, EPILOG)
    p.add_argument("plugin_folder", help="the vllm-plugin-FL checkout (holds vllm_fl/)")
    p.add_argument("model_file", nargs="?", help="model file path or model name (omit with --all)")
    p.add_argument("config_file", nargs="?", help="the model's config bridge (vllm_fl/configs/...)")
    p.add_argument("init_file", nargs="?", help="the registering __init__.py (default: vllm_fl/__init__.py)")
    p.add_argument("--all", action="store_true", help="every model file and config bridge the plugin holds")
    p.add_argument("--hf-config", metavar="CONFIG_JSON",
                   help="a checkpoint's config.json: report every key the config class the pinned vLLM builds "
                   "does not take (P33; e.g. num_local_experts written by transformers 5)")
    target.add_arguments(p, "PLUGIN_FOLDER")
    p.add_argument("--format", choices=("text", "json", "github"), default="text")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--strict", action="store_true", help="warnings count as issues")
    p.add_argument("--baseline", metavar="FILE", help="ignore findings recorded in FILE (--write-baseline)")
    p.add_argument("--write-baseline", metavar="FILE",
                   help="record today's findings in FILE (exit 0); later runs pass it as --baseline")
    p.add_argument("--since", metavar="GIT_REF",
                   help="judge only files changed since GIT_REF (commits, uncommitted and untracked files)")
    p.add_argument("--dry-run", action="store_true", help="with --write-baseline: print the baseline, write nothing")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pinned = target.target_of(args, "plugin_folder")
    fmt = "json" if args.json else args.format
    if args.all and args.model_file:
        # with --all the positional slots shift: PLUGIN [INIT]
        init = args.model_file if args.model_file.endswith("__init__.py") else None
    else:
        init = args.init_file
    report = validate(args.plugin_folder, None if args.all else args.model_file, args.config_file,
                      init, all_models=args.all, pinned=pinned, hf_config=args.hf_config)
    if args.write_baseline:
        payload = baseline.baseline_payload(report.findings, pinned.vllm)
        if args.dry_run:
            print_json(payload)
        else:
            atomic_write_json(Path(args.write_baseline).expanduser(), payload)
        progress(f"{'would write' if args.dry_run else 'wrote'} a baseline of {len(payload['findings'])} "
                 f"finding(s) to {args.write_baseline}")
        return EXIT_OK
    findings, known = report.findings, []
    if args.since:
        findings, known = baseline.only_in(findings, baseline.changed_files(Path(report.plugin), args.since))
    if args.baseline:
        findings, old = baseline.subtract(findings, baseline.load_baseline(args.baseline))
        known += old
    issues, warnings = split(findings, strict=args.strict)
    left = len(left_for_you(findings))  # as plan/apply count it: warnings too, whatever --strict says
    if fmt == "json":
        print_json({"issues": [f.to_dict() for f in issues], "warnings": [f.to_dict() for f in warnings],
                    "files": report.files, "pinned": pinned.to_dict(), "plugin": report.plugin,
                    "seconds": report.seconds, "ok": not issues, "left_for_you": left, "known": len(known)})
    elif fmt == "github":
        for f in issues + warnings:
            print(format_github(f))
    else:
        for f in issues + warnings:
            print(format_text(f))
        verdict = "OK" if not issues else "FAILED"
        print(f"{verdict}: {len(issues)} issue(s), {len(warnings)} warning(s) in {len(report.files)} file(s) "
              f"against vLLM {report.pinned} ({report.seconds:.2f}s); {left} left for you"
              + (f"; {len(known)} known finding(s) not counted (baseline/--since)" if known else ""))
    if fmt != "text":
        progress(f"{len(issues)} issue(s), {len(warnings)} warning(s)")
    return EXIT_FINDINGS if issues else EXIT_OK


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
