#!/usr/bin/env python3
"""Print how long building and loading the pinned API index take.

usage: python3 benchmarks/bench_index.py [--wheel PATH] [--repeat N]
  --wheel   a vLLM wheel (or folder) to time the build on; without it only loading is timed
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from flagos_migrate.pinned.index_builder import build_index  # noqa: E402
from flagos_migrate.pinned.sources import open_source  # noqa: E402
from flagos_migrate.pinned.target import DEFAULT_VLLM  # noqa: E402

LOAD = (
    "import time; t=time.perf_counter();"
    "from flagos_migrate.pinned.api_index import PinnedApis; a=PinnedApis.load('{pinned}');"
    "t1=time.perf_counter(); a.resolve('transformers','PretrainedConfig'); a.vllm.definers('Attention');"
    "print(t1-t, time.perf_counter()-t1)"
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wheel", type=Path)
    p.add_argument("--pinned", default=DEFAULT_VLLM)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    loads, first_queries = [], []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", LOAD.format(pinned=args.pinned)], cwd=ROOT / "scripts",
                             capture_output=True, text=True, check=True)
        load, query = map(float, out.stdout.split())
        loads.append(load)
        first_queries.append(query)
    print(f"load vllm {args.pinned} + transformers index in a fresh process: "
          f"median {statistics.median(loads):.3f} s (min {min(loads):.3f}, max {max(loads):.3f}, n={args.repeat})")
    print(f"first transformers look-up + full reverse map of vLLM names: median {statistics.median(first_queries):.3f} s")
    if args.wheel:
        src = open_source(args.wheel, "vllm")
        t = time.perf_counter()
        data = build_index(src)
        print(f"build index of {src.label}: {len(data['modules'])} modules in {time.perf_counter() - t:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
