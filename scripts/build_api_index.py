#!/usr/bin/env python3
"""Build the static API index of vLLM (or transformers) that the validator and migration use."""

from __future__ import annotations

import gzip
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from flagos_migrate.cli import EXIT_OK, UsageError, make_parser, print_json, progress, run_main
from flagos_migrate.fsutil import atomic_write_bytes
from flagos_migrate.pinned import api_index
from flagos_migrate.pinned.index_builder import build_index
from flagos_migrate.pinned.sources import installed_beside, open_source, required_spec
from flagos_migrate.pinned.target import check_version
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

EPILOG = """examples:
  python3 scripts/build_api_index.py vllm==0.20.2            # download the wheel with pip, index it
  python3 scripts/build_api_index.py --package vllm ~/venv/lib/python3.12/site-packages   # installed vLLM
  python3 scripts/build_api_index.py vllm==0.13.0 --transformers 4.57.6 --bundle
  python3 scripts/build_api_index.py --package transformers transformers-4.57.6-py3-none-any.whl --bundle

Indexes are written to ~/.cache/model-migrate-flagos/index/ (or --output DIR, or --bundle for the
copy shipped in scripts/flagos_migrate/pinned/data/index/). $MMF_INDEX_DIR is searched first when loading.
A vLLM index records the transformers version that runs with it: --transformers, else the one
installed beside a site-packages folder (or recorded so by an index of the same vLLM, e.g. the
bundled one), else the newest release that the wheel's `Requires-Dist: transformers...` allows
(another dependency may cap it: index an installed site-packages to be sure); that transformers
index is built too when none exists yet. vLLM wheels are fetched for Python 3.12 whatever their
manylinux tag."""

WHEEL_CACHE = Path.home() / ".cache" / "model-migrate-flagos" / "wheels"
# vLLM wheels carry one manylinux tag, newer with every few releases (0.13.0: 2_31, 0.20.x: 2_35);
# pip takes any of these for a download that is only read, never installed
PLATFORM_TAGS = ("manylinux_2_39_x86_64", "manylinux_2_35_x86_64", "manylinux_2_34_x86_64",
                 "manylinux_2_31_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                 "manylinux2014_x86_64")
PYTHON_VERSION = "3.12"


def parse_args(argv):
    p = make_parser("build_api_index.py", __doc__, EPILOG)
    p.add_argument("source", help="PACKAGE==VERSION to download from PyPI, or a folder / wheel file")
    p.add_argument("--package", help="top-level package inside SOURCE (default: from PACKAGE==VERSION, else vllm)")
    p.add_argument("--version", dest="version_override", help="record this version instead of the detected one")
    p.add_argument("--transformers", metavar="VERSION",
                   help="(vllm) the transformers version that runs with it (default: see below)")
    p.add_argument("--output", type=Path, help="folder to write PACKAGE-VERSION.json.gz into")
    p.add_argument("--bundle", action="store_true", help="write into the bundle's data/index folder")
    p.add_argument("--dry-run", action="store_true", help="build and report, write nothing")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p.parse_args(argv)


def _pip_download(requirement: str, platform: bool) -> tuple[subprocess.CompletedProcess, list[str]]:
    cmd = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary", ":all:",
           "-d", str(WHEEL_CACHE)]
    if platform:
        cmd += ["--python-version", PYTHON_VERSION, "--implementation", "cp"]
        for tag in PLATFORM_TAGS:
            cmd += ["--platform", tag]
    result = subprocess.run(cmd, capture_output=True, text=True)
    # "Saved /x/pkg-1.0-....whl" or "File was already downloaded /x/pkg-1.0-....whl"
    wheels = re.findall(r"(\S+\.whl)\s*$", result.stdout, re.M)
    return result, wheels


def download_wheel(package: str, version: str) -> Path:
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    for cached in WHEEL_CACHE.glob(f"{package}-{version}-*.whl"):
        return cached
    progress(f"downloading {package}=={version} (no dependencies) into {WHEEL_CACHE} ...")
    platform = package == "vllm"
    result, _ = _pip_download(f"{package}=={version}", platform)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        tried = f" for Python {PYTHON_VERSION} with platform tags {', '.join(PLATFORM_TAGS)}" if platform else ""
        raise UsageError(
            f"pip download {package}=={version} failed{tried}: {last}",
            hint=f"check the version exists (pip index versions {package}) and that PyPI is reachable; "
            f"or download the wheel yourself and pass its path (--package {package} FILE.whl)",
        )
    for cached in WHEEL_CACHE.glob(f"{package}-{version}-*.whl"):
        return cached
    raise UsageError(f"pip reported success but no {package} {version} wheel is in {WHEEL_CACHE}")


def _satisfies(version: str, spec: str | None) -> bool:
    if not spec:
        return True
    try:
        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return True


def newest_on_pypi(package: str, spec: str) -> str | None:
    """The release pip picks for ``package<spec>`` (downloaded into the wheel cache), or None offline."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    progress(f"asking pip for the newest {package}{spec} ...")
    result, wheels = _pip_download(f"{package}{spec}", platform=False)
    for wheel in wheels:
        m = re.match(rf"{package}-([^-]+)-", Path(wheel).name)
        if result.returncode == 0 and m:
            return m.group(1)
    return None


def _installed_pairing(version: str) -> tuple[str, str] | None:
    """The transformers an existing index of this vLLM version saw installed beside it, and where."""
    for folder in api_index.index_search_path():
        path = folder / api_index.index_file_name("vllm", version)
        if not path.is_file():
            continue
        try:
            data = api_index.load_index_data(path)
        except UsageError:
            continue
        if data.get("transformers_installed"):
            return data["transformers_installed"], data.get("source", str(path))
    return None


def pair_transformers(source, override: str | None) -> dict:
    """Which transformers runs with this vLLM, and how we know (stored in the index)."""
    spec = required_spec(source, "transformers")
    installed = installed_beside(source, "transformers")
    out = {"transformers": None, "transformers_requires": spec, "transformers_installed": installed}
    if override:
        out.update(transformers=check_version(override, "--transformers"), transformers_from="--transformers")
    elif installed:
        out.update(transformers=installed, transformers_from=f"installed beside vllm in {source.label}")
    elif (seen := _installed_pairing(source.version)) is not None:
        # pip install vllm==X resolves every dependency: one of them may cap transformers below
        # what vLLM's own requirement allows (0.20.2: xgrammar needs <5), so a measured pairing wins
        out.update(transformers=seen[0], transformers_installed=seen[0],
                   transformers_from=f"installed beside vllm {source.version} ({seen[1]})")
    elif spec:
        newest = newest_on_pypi("transformers", spec)
        if newest:
            out.update(transformers=newest, transformers_from=f"newest release matching transformers{spec} on PyPI")
            progress(f"note: transformers {newest} is the newest release vLLM's own requirement allows; another "
                     "dependency may cap it (check with `pip install vllm==X` in a venv and index that "
                     "site-packages, or pass --transformers)")
        else:
            known = [v for v in api_index.available_versions("transformers") if _satisfies(v, spec)]
            if known:
                best = max(known, key=Version)
                out.update(transformers=best, transformers_from=f"newest transformers index matching {spec} (PyPI not reachable)")
    if out["transformers"] and not _satisfies(out["transformers"], spec):
        progress(f"warning: transformers {out['transformers']} does not satisfy vLLM's requirement transformers{spec}")
    return out


def _write(data: dict, out_dir: Path, dry_run: bool) -> tuple[Path, bytes]:
    payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    compressed = gzip.compress(payload, compresslevel=9, mtime=0)
    target = out_dir / api_index.index_file_name(data["package"], data["version"])
    if not dry_run:
        atomic_write_bytes(target, compressed)
    return target, compressed


def ensure_transformers_index(version: str, out_dir: Path, dry_run: bool) -> str:
    """Build the transformers index of ``version`` unless one exists; returns where it is."""
    try:
        return str(api_index.find_index_file("transformers", version))
    except UsageError:
        pass
    if dry_run:
        return f"(dry run: would build transformers {version} into {out_dir})"
    wheel = download_wheel("transformers", version)
    progress(f"indexing transformers {version} (takes a couple of minutes) ...")
    data = build_index(open_source(wheel, "transformers"),
                       command=f"python3 scripts/build_api_index.py transformers=={version}", progress=progress)
    return str(_write(data, out_dir, dry_run)[0])


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
    check_version(source.version, "version")
    data = build_index(source, command=command, progress=progress)
    out_dir = api_index.DATA_DIR if args.bundle else (args.output or api_index.index_search_path()[-2])
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--output {out_dir} is not a folder", hint="name a folder (it is created when missing)")
    paired = {}
    if package == "vllm":
        paired = pair_transformers(source, args.transformers)
        data.update(paired)
        if paired["transformers"]:
            paired["transformers_index"] = ensure_transformers_index(paired["transformers"], out_dir, args.dry_run)
        else:
            progress(f"warning: cannot tell which transformers runs with vLLM {source.version} (no Requires-Dist, "
                     "PyPI not reachable); pass --transformers VERSION, or commands will need --transformers")
    elif args.transformers:
        raise UsageError("--transformers is for vllm indexes", hint="drop it when indexing transformers itself")
    target, compressed = _write(data, out_dir, args.dry_run)
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
        **paired,
    }
    if args.json:
        print_json(summary)
    else:
        where = "(dry run, nothing written)" if args.dry_run else f"-> {target}"
        print(f"{package} {source.version}: {summary['modules']} modules, {summary['classes']} classes in {summary['seconds']} s, {len(compressed)} bytes {where}")
        if paired:
            print(f"  transformers {paired['transformers'] or 'unknown'} (requires {paired['transformers_requires']}; "
                  f"{paired.get('transformers_from', 'pass --transformers')})")
        if data["unparsable"]:
            print(f"  not parsable: {', '.join(data['unparsable'][:10])}")
    return EXIT_OK


if __name__ == "__main__":
    run_main(main)
