#!/usr/bin/env python3
"""Copy-then-patch migration of an upstream vLLM model into vllm-plugin-FL (vllm_fl).

  resolve  the design card's placeholders (model file, classes, architectures, model_type,
           config class, display name) as JSON; ambiguity is reported, not guessed
  plan     every finding on the copied file, split into "this tool will fix" and "left for
           you", with the sibling modules, processors, config bridges, vendored helpers (P16)
           and back-ports for the pinned vLLM (P22) that come along
  apply    write all of that into the plugin, register the model, record provenance, print
           what is left (idempotent; hand-edited files need --force)
  verify   import every written module in this Python (or --python) and report the first
           error of each with its likely rule; with --run, build, load and run every
           registered architecture on the pinned vLLM on CPU, level by level (import,
           construct, load, forward, match), comparing logits with --reference-python
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from flagos_migrate.cli import make_parser, run_main
from flagos_migrate.commands.migrate import COMMANDS
from flagos_migrate.migrate.upstream import DEFAULT_UPSTREAM
from flagos_migrate.pinned import target

EPILOG = f"""examples:
  python3 scripts/migrate_model.py resolve qwen3_5 --upstream ~/src/vllm
  python3 scripts/migrate_model.py plan qwen3_5 --upstream vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64.whl
  python3 scripts/migrate_model.py apply qwen3_5 --plugin ~/vllm-plugin-FL --pinned 0.20.2 --dry-run
  python3 scripts/migrate_model.py verify qwen3_5 --plugin ~/vllm-plugin-FL --pinned 0.20.2 --python ~/venv/bin/python

The pinned target (vLLM, its transformers, the plugin package) is printed first on stderr and
under "pinned" in --json: --pinned, else the plugin's declared vllm requirement, else the
installed vLLM, else {target.DEFAULT_VLLM}.
--upstream (default {DEFAULT_UPSTREAM}) is a vLLM checkout, a site-packages folder or a wheel;
when it does not exist, --fetch downloads the latest vLLM wheel with pip into
~/.cache/model-migrate-flagos/upstream. --plugin defaults to the current directory.
A file with several peer model classes (dense and MoE, text and multimodal) is never guessed:
resolve exits 1 and lists them, plan/apply exit 2 until --arch NAME (repeatable) or --all-archs
answers (a per-model package's plan instead reports the registration of every architecture, marked
"answered": false; its apply exits 2 as a file's does). plan/apply exit 1 when findings are left for
you (or a registration conflicts); verify exits 1 when a module fails to import and 2 when vLLM
itself is not importable. verify --run exits 0 when every level that ran passed (a GPU-only
layer's forward is "skipped: needs GPU (<op>)"), 1 when a level failed, 2 when it could not run (no vLLM, or the migrated modules need a GPU-only
package such as flag_gems: an environment problem, not a migration failure).
  python3 scripts/migrate_model.py verify qwen3 --plugin ~/vllm-plugin-FL --run \
      --python ~/venv013 --reference-python ~/venv033 --json"""


def parse_args(argv):
    parser = make_parser("migrate_model.py", __doc__, EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{resolve,plan,apply,verify}")
    for name in COMMANDS:
        p = sub.add_parser(name, help=(__doc__ or "").split(f"  {name}")[1].split("\n")[0].strip()
                           if f"  {name}" in (__doc__ or "") else name)
        p.add_argument("model_name", metavar="MODEL_NAME", help="snake_case upstream model file name, e.g. qwen3_5")
        p.add_argument("--upstream", default=DEFAULT_UPSTREAM, metavar="U",
                       help=f"upstream vLLM: checkout, site-packages or wheel (default {DEFAULT_UPSTREAM})")
        p.add_argument("--plugin", default=os.getcwd(), metavar="P",
                       help="vllm-plugin-FL checkout (default: current directory)")
        target.add_arguments(p)
        p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        p.add_argument("--fetch", action="store_true", help="download the latest vLLM wheel when U does not exist")
        p.add_argument("--hf-config", metavar="CONFIG_JSON",
                       help="the model's HF config.json (model_type and architectures)")
        p.add_argument("--variant", choices=("nvidia", "amd", "generic"), default=None,
                       help="for a per-model package vllm/models/NAME/: the platform variant its entry point "
                            "would pick (default nvidia, i.e. CUDA)")
        if name != "verify":
            which = p.add_mutually_exclusive_group()
            which.add_argument("--arch", action="append", metavar="NAME",
                               help="architecture (or class) to migrate and register when the file has several; "
                               "repeatable, the first is the main class")
            which.add_argument("--all-archs", action="store_true",
                               help="migrate and register every architecture upstream maps to the file")
        if name == "apply":
            p.add_argument("--dry-run", action="store_true", help="print unified diffs, write nothing")
            p.add_argument("--force", action="store_true", help="overwrite files edited by hand since the last apply")
        if name == "verify":
            p.add_argument("--python", metavar="PATH", help="interpreter or venv with vLLM (default: this Python)")
            p.add_argument("--jobs", type=int, default=2, help="parallel imports (default 2)")
            p.add_argument("--run", action="store_true",
                           help="runtime levels per architecture on CPU: import, construct (tiny config), load "
                                "(synthetic checkpoint), forward (12-token prefill), match (with --reference-python)")
            p.add_argument("--reference-python", metavar="PATH",
                           help="interpreter or venv with upstream vLLM for the match level (falls back to its "
                                "transformers where upstream cannot run a layer on CPU)")
            p.add_argument("--tolerance", type=float, default=1e-3,
                           help="max |delta logit| for match, fp32 (default 1e-3)")
            p.add_argument("--timeout", type=float, default=900,
                           help="seconds per architecture and side for --run (default 900)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    target.target_of(args)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    run_main(main)
