#!/usr/bin/env python3
"""Side by side: our validator over the whole upstream corpus in one ``--all`` call, against the
earlier FlagOS validator (scripts/validate_migration.py of FlagOS's model-migrate-flagos skill,
https://github.com/flagos-ai/skills) run once per file, on the same files and the same machine.

The 291 modules of ``vllm/model_executor/models/`` of the upstream vLLM (default 0.33.0) are laid
out as a plugin tree (``vllm_fl/models/<name>.py``, relative imports made absolute). Each side runs
as its own processes, as a user would run it; wall and CPU time (of the child processes) are
measured, best of --repeat runs. The earlier validator is not part of this repository: pass its
path with --flagos (a checkout of flagos-ai/skills: skills/model-migrate-flagos/scripts/...).

exit codes: 0 done, 2 could not run (missing sources / validator)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (puts scripts/ on sys.path)

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = ROOT / "scripts" / "validate_migration.py"
DEFAULT_FLAGOS = Path.home() / ".cache" / "mmf" / "flagos-skill" / "validate_migration.py"
INIT = "def register_model():\n    pass\n"


def _timed(commands: list[list[str]]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the children) for running ``commands`` one after another."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for cmd in commands:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", type=Path, default=corpus.DEFAULT_UPSTREAM, help="upstream vLLM (folder/wheel)")
    p.add_argument("--flagos", type=Path, default=DEFAULT_FLAGOS,
                   help=f"the earlier FlagOS validate_migration.py (default {DEFAULT_FLAGOS})")
    p.add_argument("--repeat", type=int, default=3, help="runs per side; the best is reported (default 3)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--output", type=Path, help="also write the JSON result here")
    args = p.parse_args()
    if not args.flagos.is_file():
        print(f"error: the earlier FlagOS validator is not at {args.flagos}\nhint: --flagos PATH "
              "(skills/model-migrate-flagos/scripts/validate_migration.py of flagos-ai/skills)", file=sys.stderr)
        return 2
    try:
        source = corpus.open_vllm(args.upstream)
    except Exception as exc:  # a missing corpus is "could not run", with the reason
        print(f"error: {exc}", file=sys.stderr)
        return 2
    relpaths = corpus.model_files(source, include_shared=True)
    with tempfile.TemporaryDirectory(prefix="mmf-bench-") as tmp:
        plugin = Path(tmp) / "plugin"
        (plugin / "vllm_fl").mkdir(parents=True)
        (plugin / "vllm_fl" / "__init__.py").write_text(INIT, encoding="utf-8")
        mapping = corpus.lay_out(source, relpaths, plugin / "vllm_fl", package="models")
        files = sorted(str(plugin / "vllm_fl" / "models" / f"{m.rsplit('.', 1)[-1]}.py") for m in mapping.values())
        ours_cmd = [[sys.executable, str(VALIDATOR), str(plugin), "--all", "--json"]]
        theirs_cmd = [[sys.executable, str(args.flagos), str(plugin), f] for f in files]
        ours = min((_timed(ours_cmd) for _ in range(args.repeat)), key=lambda t: t[0])
        theirs = min((_timed(theirs_cmd) for _ in range(args.repeat)), key=lambda t: t[0])
    result = {
        "upstream": str(args.upstream), "files": len(files), "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "ours_all_call": {"wall_seconds": round(ours[0], 2), "cpu_seconds": round(ours[1], 2)},
        "flagos_once_per_file": {"wall_seconds": round(theirs[0], 2), "cpu_seconds": round(theirs[1], 2)},
        "ratio_wall": round(ours[0] / theirs[0], 3), "ratio_cpu": round(ours[1] / theirs[1], 3),
    }
    print(f"{len(files)} files: ours (one --all call) {ours[0]:.2f}s wall / {ours[1]:.2f}s CPU; earlier FlagOS "
          f"validator (once per file) {theirs[0]:.2f}s wall / {theirs[1]:.2f}s CPU; ratio {result['ratio_wall']} "
          f"(wall), {result['ratio_cpu']} (CPU)", file=sys.stderr)
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
