#!/usr/bin/env python3
"""Build the static API index of vLLM (or transformers) that the validator and migration use."""

from __future__ import annotations

import gzip
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from flagos_migrate.cli import EXIT_OK, UsageError, make_parser, print_json, progress, run_main
from flagos_migrate.fsutil import atomic_write_bytes
from flagos_migrate.pinned import api_index
from flagos_migrate.pinned.index_builder import build_index
from flagos_migrate.pinned.sources import open_source

EPILOG = """examples:
  python3 scripts/build_api_index.py vllm==0.13.0            # download the wheel with pip, index it
  python3 scripts/build_api_index.py --package vllm ~/src/vllm   # a checkout or site-packages folder
  python3 scripts/build_api_index.py --package transformers transformers-4.57.6-py3-none-any.whl --bundle

Indexes are written to ~/.cache/model-migrate-flagos/index/ (or --output DIR, or --bundle for the
copy shipped in scripts/flagos_migrate/pinned/data/index/). $MMF_INDEX_DIR is searched first when loading."""

WHEEL_CACHE = Path.home() / ".cache" / "model-migrate-flagos" / "wheels"


def parse_args(argv):
    p = make_parser("build_api_index.py", __doc__, EPILOG)
    p.add_argument("source", help="PACKAGE==VERSION to download from PyPI, or a folder / wheel file")
    p.add_argument("--package", help="top-level package inside SOURCE (default: from PACKAGE==VERSION, else vllm)")
    p.add_argument("--version", dest="version_override", help="record this version instead of the detected one")
    p.add_argument("--output", type=Path, help="folder to write PACKAGE-VERSION.json.gz into")
    p.add_argument("--bundle", action="store_true", help="write into the bundle's data/index folder")
    p.add_argument("--dry-run", action="store_true", help="build and report, write nothing")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p.parse_args(argv)


def download_wheel(package: str, version: str) -> Path:
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    for cached in WHEEL_CACHE.glob(f"{package}-{version}-*.whl"):
        return cached
    progress(f"downloading {package}=={version} (no dependencies) into {WHEEL_CACHE} ...")
    cmd = [sys.executable, "-m", "pip", "download", f"{package}=={version}", "--no-deps",
           "--only-binary", ":all:", "-d", str(WHEEL_CACHE)]
    if package == "vllm":
        cmd += ["--python-version", "3.12", "--platform", "manylinux_2_31_x86_64",
                "--platform", "manylinux_2_28_x86_64"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise UsageError(
            f"pip download {package}=={version} failed: {result.stderr.strip().splitlines()[-1:]}",
            hint="check the version exists (pip index versions %s) and that PyPI is reachable" % package,
        )
    for cached in WHEEL_CACHE.glob(f"{package}-{version}-*.whl"):
        return cached
    raise UsageError(f"pip reported success but no {package} {version} wheel is in {WHEEL_CACHE}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if "==" in args.source and not Path(args.source).exists():
        package, version = args.source.split("==", 1)
        path = download_wheel(package, version)
    else:
        package = args.package or "vllm"
        path = Path(args.source)
    source = open_source(path, package)
    if args.version_override:
        source.version = args.version_override
    command = "python3 scripts/build_api_index.py " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    started = time.perf_counter()
    data = build_index(source, command=command, progress=progress)
    if package == "vllm" and source.version in api_index.TRANSFORMERS_FOR_VLLM:
        data["transformers"] = api_index.TRANSFORMERS_FOR_VLLM[source.version]
    payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    compressed = gzip.compress(payload, compresslevel=9, mtime=0)
    out_dir = api_index.DATA_DIR if args.bundle else (args.output or api_index.index_search_path()[-2])
    target = out_dir / api_index.index_file_name(package, source.version)
    if not args.dry_run:
        atomic_write_bytes(target, compressed)
    summary = {
        "package": package,
        "version": source.version,
        "source": source.label,
        "modules": len(data["modules"]),
        "classes": sum(m.count('"line":') for m in data["modules"].values()),
        "unparsable": data["unparsable"],
        "seconds": round(time.perf_counter() - started, 2),
        "bytes": len(compressed),
        "output": None if args.dry_run else str(target),
    }
    if args.json:
        print_json(summary)
    else:
        where = "(dry run, nothing written)" if args.dry_run else f"-> {target}"
        print(f"{package} {source.version}: {summary['modules']} modules, {summary['classes']} classes in {summary['seconds']} s, {len(compressed)} bytes {where}")
        if data["unparsable"]:
            print(f"  not parsable: {', '.join(data['unparsable'][:10])}")
    return EXIT_OK


if __name__ == "__main__":
    run_main(main)
