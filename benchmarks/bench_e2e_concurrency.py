#!/usr/bin/env python3
"""Wall time of scripts/e2e_eval.py for N prompts at a fixed server latency: sequential vs concurrent.

Two fake vLLM servers (tests/fakes/vllm_openai_server.py) answer every request after
``--latency`` seconds. "sequential" asks one request at a time, GT first and then local
(--gt-only then --local-only with --concurrency 1), as a one-by-one client would; "concurrent"
is the default run (prompts in parallel, GT and local overlapping). The sequential run takes
about 2 * N * latency seconds (20 s with the defaults); --skip-sequential leaves it out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]

import e2e_eval  # noqa: E402

from tests.fakes.vllm_openai_server import start_server  # noqa: E402


def timed_run(argv: list[str]) -> tuple[float, int]:
    t0 = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = e2e_eval.main(argv)
    return time.monotonic() - t0, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per request (default 1.0)")
    parser.add_argument("--count", type=int, default=10, help="number of prompts (default 10)")
    parser.add_argument("--skip-sequential", action="store_true", help="only time the concurrent run")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()

    gt = start_server(served_model_name="gt", latency=args.latency)
    local = start_server(served_model_name="local", latency=args.latency)
    numbers: dict[str, float | int] = {"prompts": args.count, "latency_s": args.latency}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prompts = Path(tmp) / "prompts.json"
            prompts.write_text(json.dumps({"prompts": [
                {"id": f"p{i}", "category": "bench", "modality": "text",
                 "messages": [{"role": "user", "content": f"benchmark prompt {i}"}]} for i in range(args.count)]}))
            common = ["--prompts", str(prompts), "--gt-host", "127.0.0.1", "--gt-port", str(gt.port),
                      "--local-port", str(local.port), "--max-tokens", "32", "--token-match-count", "32"]
            if not args.skip_sequential:
                seq_dir = str(Path(tmp) / "sequential")
                t_gt, c1 = timed_run([*common, "--gt-only", "--concurrency", "1", "--results-dir", seq_dir])
                t_local, c2 = timed_run([*common, "--local-only", "--concurrency", "1", "--results-dir", seq_dir])
                numbers["sequential_s"] = round(t_gt + t_local, 3)
                assert c1 == c2 == 0, "sequential run failed"
            wall, code = timed_run([*common, "--concurrency", str(max(args.count, 1)),
                                    "--results-dir", str(Path(tmp) / "concurrent")])
            assert code == 0, "concurrent run failed"
            numbers["concurrent_s"] = round(wall, 3)
            if "sequential_s" in numbers:
                numbers["speedup"] = round(numbers["sequential_s"] / wall, 1)
    finally:
        gt.shutdown()
        local.shutdown()
    if args.json:
        print(json.dumps(numbers))
    else:
        print(f"{args.count} prompts, {args.latency:g} s per request, GT + local")
        if "sequential_s" in numbers:
            print(f"  sequential (one request at a time): {numbers['sequential_s']:.2f} s")
        print(f"  concurrent (e2e_eval.py default):   {numbers['concurrent_s']:.2f} s")
        if "speedup" in numbers:
            print(f"  speedup: {numbers['speedup']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
