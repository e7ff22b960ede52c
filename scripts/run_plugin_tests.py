#!/usr/bin/env python3
"""Find the plugin's unit tests and run them with a Python that has pytest (procedure step 8).

Looks in tests/unit_tests/ (the real vllm-plugin-FL), then tests/unit/, then tests/ (without
functional_tests/ and e2e_tests/, which need GPUs or servers) and says which folder it took, or
that the plugin has no unit tests. With MODEL, it also lists the test files that name
vllm_fl.models.MODEL (the plugin's import test should). The tests run with --python (the pinned
vLLM's interpreter): when that Python has no pytest, --pytest-path DIR adds a folder holding pytest
(`PY -m pip install --target DIR pytest`) so that the pinned venv itself stays untouched."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

from flagos_migrate.cli import EXIT_FINDINGS, EXIT_OK, UsageError, make_parser, print_json, progress, run_main
from flagos_migrate.commands import plugin_tests
from flagos_migrate.verify.import_probe import pinned_python_from_env, python_of

EPILOG = """examples:
  python3 scripts/run_plugin_tests.py ~/vllm-plugin-FL qwen3_5 --python ~/venv013/bin/python
  python3 scripts/run_plugin_tests.py . qwen3_5 --python $MMF_PINNED_VENV --pytest-path ~/.cache/model-migrate-flagos/pytest
  python3 scripts/run_plugin_tests.py . --dry-run --json          # which tests, which command; runs nothing

--python defaults to $MMF_PINNED_VENV, else this Python. Exit 0: the tests pass (or the plugin
has none: "tests": null); 1: a test failed; 2: no pytest in that Python, or bad input."""


def parse_args(argv):
    p = make_parser("run_plugin_tests.py", __doc__, EPILOG)
    p.add_argument("plugin_folder", nargs="?", default=os.getcwd(), help="the vllm-plugin-FL checkout (default: .)")
    p.add_argument("model_name", nargs="?", metavar="MODEL", help="the migrated model (vllm_fl.models.MODEL)")
    p.add_argument("--python", metavar="PATH", help="interpreter or venv with the pinned vLLM and the plugin")
    p.add_argument("--pytest-path", metavar="DIR", help="a folder holding pytest, put on PYTHONPATH")
    p.add_argument("--tests", metavar="FOLDER", help="run this folder (relative to the plugin) instead of the one found")
    p.add_argument("--log", metavar="FILE", help="write pytest's whole output here")
    p.add_argument("--timeout", type=float, default=3600, help="seconds for the whole run (default 3600)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--dry-run", action="store_true", help="say which tests and which command; run nothing")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.plugin_folder).expanduser().resolve()
    if not (root / "vllm_fl" / "__init__.py").is_file():
        raise UsageError(f"{root} holds no vllm_fl/__init__.py", hint="pass the vllm-plugin-FL checkout")
    python = python_of(args.python) if args.python else (pinned_python_from_env() or sys.executable)
    found = plugin_tests.find_tests(root, args.model_name)
    folder = args.tests or found.folder
    if args.tests and not (root / args.tests).is_dir():
        raise UsageError(f"--tests {args.tests} is not a folder of {root}", hint="give a folder relative to the plugin")
    result = {"plugin": str(root), "tests": folder, "test_files": len(found.files),
              "looked_in": list(plugin_tests.TEST_DIRS), "covers_model": found.covers_model, "python": python}
    if folder is None:
        result["message"] = "the plugin has no unit tests (looked in " + ", ".join(plugin_tests.TEST_DIRS) + ")"
        print_json(result) if args.json else print(result["message"])
        return EXIT_OK
    cmd = plugin_tests.pytest_command(python, folder, [])
    result["command"] = (f"cd {shlex.quote(str(root))} && "
                         + (f"PYTHONPATH={shlex.quote(args.pytest_path)} " if args.pytest_path else "")
                         + shlex.join(cmd))
    if args.dry_run:
        print_json(result) if args.json else print(f"{folder}: {len(found.files)} test file(s)\n{result['command']}")
        return EXIT_OK
    if not plugin_tests.has_pytest(python, args.pytest_path):
        raise plugin_tests.missing_pytest_error(python)
    progress(f"running {folder} ({len(found.files)} test file(s)) with {python}")
    code, counts = plugin_tests.run_tests(root, python, folder, [], args.pytest_path,
                                          Path(args.log) if args.log else None, args.timeout)
    result.update(counts=counts, exit_code=code, log=args.log)
    if args.json:
        print_json(result)
    else:
        print(f"{folder}: " + (", ".join(f"{n} {k}" for k, n in counts.items()) or f"pytest exit {code}"))
        if args.model_name and not found.covers_model:
            print(f"note: no test names vllm_fl.models.{args.model_name}; add it to the plugin's import test")
    # pytest: 0 passed, 5 nothing collected; anything else is a failure of the tests
    return EXIT_OK if code in (0, 5) else EXIT_FINDINGS


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    run_main(main)
