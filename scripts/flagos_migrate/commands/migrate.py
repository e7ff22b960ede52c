"""The four subcommands of ``migrate_model.py``: resolve, plan, apply, verify.

I/O lives here; the engine (``migration.py``) only computes texts in memory.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from flagos_migrate.catalog.findings import Finding, format_text, left_counts, left_for_you
from flagos_migrate.cli import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, UsageError, print_json, progress
from flagos_migrate.fsutil import (
    atomic_write_json,
    atomic_write_text,
    check_writable,
    ensure_within,
    locked,
    remove_stale_temps,
    sha256_text,
)
from flagos_migrate.migrate.engine import Migration, new_packages
from flagos_migrate.migrate.upstream import Upstream, check_model_name, open_upstream, read_hf_config, resolve
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.pinned.target import target_of
from flagos_migrate.plugin.provenance import (
    build_record,
    known_outputs,
    load_record,
    lock_path,
    record_path,
    upstream_changes,
)
from flagos_migrate.plugin.registration import plan_registration
from flagos_migrate.plugin.tree import PluginTree
from flagos_migrate.verify import left_findings

PACKAGE_DOCS = {
    "vllm_fl/compat/__init__.py": '"""Upstream vLLM helpers vendored (rule P16) and back-ports (rule P22) by model-migrate-flagos."""\n',
    "vllm_fl/configs/__init__.py": '"""Config bridges for model types the pinned transformers lacks."""\n',
    "vllm_fl/models/__init__.py": '"""Models migrated from upstream vLLM."""\n',
    "vllm_fl/processors/__init__.py": '"""Hugging Face processors that upstream vLLM ships, brought along by migrations."""\n',
}


@dataclass
class Output:
    relpath: str
    text: str
    role: str
    origin: str | None = None
    upstream_sha256: str | None = None
    rules: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    migration: Migration
    outputs: list[Output]
    registration: object
    record: dict
    changes_upstream: list[str]
    pinned: dict = field(default_factory=dict)  # the target (target.PinnedTarget.to_dict())
    # the __init__.py text the registration was planned on, and how to plan it again on a newer
    # text (another apply may have registered its model meanwhile)
    init_text: str | None = None
    replan: Callable[[str], object] | None = None


def _upstream_info(up: Upstream) -> dict:
    from flagos_migrate.pinned.sources import git_head

    info = {"source": up.source.label, "version": up.version}
    if up.source.root is not None:
        head = git_head(up.source.root)
        if head:
            info["commit"] = head
    return info


def load_inputs(args) -> tuple[Upstream, PinnedApis, dict | None]:
    check_model_name(args.model_name)
    hf = read_hf_config(getattr(args, "hf_config", None))
    up = Upstream(open_upstream(args.upstream, fetch=getattr(args, "fetch", False)))
    apis = PinnedApis.load(target_of(args))
    return up, apis, hf


def prepare(args, loaded: tuple[Upstream, PinnedApis, dict | None] | None = None) -> Prepared:
    """Everything ``apply`` would write, without writing (``loaded``: inputs already opened)."""
    up, apis, hf = loaded or load_inputs(args)
    plugin = PluginTree(args.plugin)
    previous = load_record(plugin.package_dir, args.model_name)
    started = time.perf_counter()
    if _package_model(args, up):
        from flagos_migrate.migrate.packages import PackageMigration

        m = PackageMigration(args.model_name, up, plugin, apis, getattr(args, "variant", None), previous,
                             getattr(args, "arch", None), getattr(args, "all_archs", False))
    else:
        m = Migration(args.model_name, up, plugin, apis, hf, previous,
                      getattr(args, "arch", None), getattr(args, "all_archs", False))
    check_answered(m.resolved)
    m.run()
    progress(f"migrated {len(m.units)} module(s) in memory in {time.perf_counter() - started:.1f}s")
    outputs = []
    for unit in m.units.values():
        outputs.append(Output(unit.relpath, unit.text, unit.role, unit.origin,
                              sha256_text(unit.upstream_text) if unit.role != "compat" else
                              sha256_text(up.text(unit.origin) or ""), sorted(unit.rules)))
    written = {u.relpath for u in m.units.values()}
    for rel in new_packages(plugin, [u.module for u in m.units.values()]):
        if rel not in written:  # a per-model package brings its own __init__ files
            outputs.append(Output(rel, PACKAGE_DOCS.get(rel, ""), "package"))
    init_text = read_init(plugin)

    def replan(text: str):
        try:
            return plan_registration(text, plugin.init_file, m.resolved["MODEL_DISPLAY_NAME"],
                                     m.model_unit.module,
                                     m.model_registrations() + getattr(m, "sibling_registrations", list)(),
                                     m.config_registrations(),
                                     getattr(m, "config_hooks", []))
        except ValueError as exc:
            raise UsageError(str(exc), hint="fix vllm_fl/__init__.py so that it parses, then run again") from exc

    reg = replan(init_text)
    files = {o.relpath: {"role": o.role, "origin": o.origin, "upstream_sha256": o.upstream_sha256,
                         "text": o.text, "rules": o.rules} for o in outputs if o.role != "package"}
    up_info = _upstream_info(up)
    counts = left_counts(m.left())  # what plan/apply print as "left for you"
    entries = left_findings.record_entries(left_for_you(m.left()), {o.relpath: o.text for o in outputs})
    record = build_record(args.model_name, up_info, args.pinned, files, reg.added + reg.present, counts["left"],
                          counts["errors"], entries)
    return Prepared(m, outputs, reg, record, upstream_changes(previous, files, up_info),
                    target_of(args).to_dict(), init_text, replan)


def read_init(plugin: PluginTree) -> str:
    try:
        return plugin.init_file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {plugin.init_file}: {exc}",
                         hint="vllm_fl/__init__.py must be a readable UTF-8 file") from None


ANSWER_HINT = "answer with --arch NAME (repeatable; an architecture or a class) or --all-archs"


def check_answered(resolved: dict) -> None:
    """plan/apply never guess which of several peer architectures to migrate: exit 2 until answered."""
    classes = resolved["ambiguous"].get("ModelClassName")
    if classes:
        archs = [a for a, c in resolved["classes"].items() if c in classes]
        raise UsageError(
            f"{resolved['model_name']} defines {len(classes)} model classes for {len(archs)} architectures "
            f"({', '.join(archs)}); which to migrate and register is your answer, not a guess",
            hint=f"{ANSWER_HINT}, e.g. --arch {archs[0]}",
        )


def _findings_json(findings: list[Finding]) -> list[dict]:
    return [f.to_dict() for f in findings]


def _plan_payload(p: Prepared) -> dict:
    m = p.migration
    return {
        "resolved": m.resolved,
        "files": [{"path": o.relpath, "role": o.role, "origin": o.origin, "rules": o.rules} for o in p.outputs],
        **m.summary(),
        "registration": {"add": p.registration.added, "present": p.registration.present,
                         "conflicts": p.registration.conflicts},
        "will_fix": _findings_json(m.fixed()),
        "left_for_you": _findings_json(left_for_you(m.left())),
        "left_to_earlier_migrations": _findings_json(left_for_you(m.others_left())),
        "upstream_changes": p.changes_upstream,
        "pinned": p.pinned,
    }


def _exit_for(findings: list[Finding], conflicts: list[str]) -> int:
    """Exit 1 while anything is left for you (warnings included) or a registration conflicts."""
    return EXIT_FINDINGS if left_for_you(findings) or conflicts else EXIT_OK


def _print_findings(title: str, findings: list[Finding], indent: str = "") -> None:
    print(f"{indent}{title} ({len(findings)}):")
    for f in findings:
        print(indent + "  " + format_text(f).replace("\n", "\n  " + indent))


def _print_plan(p: Prepared) -> None:
    m = p.migration
    r = m.resolved
    print(f"model {r['model_name']} ({r['MODEL_DISPLAY_NAME']}) from {r['upstream_files'][0]}")
    s = m.summary()
    print("files:")
    for o in p.outputs:
        print(f"  {o.relpath:60s} {o.role:8s} {' '.join(o.rules)}")
    if s["closure"]:
        print("closure (sibling modules that come along): " + ", ".join(s["closure"]))
    if s["config_bridges"]:
        print("config bridges: " + ", ".join(s["config_bridges"]))
    for why_key, why in s["not_vendored"].items():
        print(f"not vendored: {why_key}: {why}")
    for line in p.registration.added:
        print(f"register: {line}")
    for line in p.registration.conflicts:
        print(f"registration conflict: {line}")
    for line in p.changes_upstream:
        print(f"upstream: {line}")
    _print_findings("this tool will fix", m.fixed())
    _print_findings("left for you", left_for_you(m.left()))
    _print_others(m)


def _print_others(m) -> None:
    others = left_for_you(m.others_left())
    if others:
        files = sorted({f.file for f in others})
        print(f"not counted ({len(others)}): findings in shared files ({', '.join(files)}) inside definitions "
              "that only earlier migrations vendored; their records hold them")


def _print_resolved(r: dict) -> None:
    print(f"model {r['model_name']} ({r['MODEL_DISPLAY_NAME']}) from {r['upstream_files'][0]} "
          f"(upstream {r['upstream_version']})")
    for key in ("ModelClassName", "model_type", "ConfigClassName", "config_module"):
        print(f"  {key:16s} {r[key] if r[key] is not None else '(unresolved)'}")
    print("architectures (registered):")
    for arch in r["architectures"]:
        print(f"  {arch} -> {r['classes'][arch]}")
    others = sorted(set(r["classes"]) - set(r["architectures"]))
    if others:
        print("not chosen: " + ", ".join(others))
    for what, candidates in r["ambiguous"].items():
        print(f"ambiguous {what}: {', '.join(candidates)}")
        print("  " + (ANSWER_HINT if what == "ModelClassName" else "answer with --hf-config CONFIG_JSON"))
    for note in r["notes"]:
        print(f"note: {note}")
    drift = r.get("config_key_drift")
    if drift and drift["keys"]:
        print(f"config.json keys {drift['config_class']} (pinned transformers) does not take:")
        for d in drift["keys"]:
            print(f"  {d['key']}" + (f" -> {', '.join(d['maps_to'])}" if d["maps_to"] else "") + f": {d['why']}")
        if drift["mapped"] is not None:
            print("  the mapped config.json is under config_key_drift.mapped in --json")


def _key_drift(apis, config_class: str | None, hf: dict) -> dict | None:
    """The config.json keys the pinned config class does not take (analysis/config_keys.py)."""
    from flagos_migrate.analysis.config_keys import drift_for
    from flagos_migrate.migrate.tf5_configs import Transformers5, open_transformers5

    source = open_transformers5()
    return drift_for(apis, config_class, hf, Transformers5(source) if source is not None else None)


def _package_model(args, up: Upstream) -> bool:
    """A per-model package (vllm/models/NAME/): resolve and plan print its own shapes; apply runs
    the engine over the package (``PackageMigration``)."""
    from flagos_migrate.migrate.packages import is_package_model

    return is_package_model(up, args.model_name)


def cmd_resolve(args) -> int:
    up, apis, hf = load_inputs(args)
    if _package_model(args, up):
        from flagos_migrate.migrate.packages import resolve_package

        result = resolve_package(up, args.model_name, getattr(args, "variant", None))
        print_json(result)
        return EXIT_FINDINGS if result["ambiguous"] or not result["ModelClassName"] else EXIT_OK
    result = resolve(up, args.model_name, hf, getattr(args, "arch", None), getattr(args, "all_archs", False))
    if hf is not None:
        result["config_key_drift"] = _key_drift(apis, result["ConfigClassName"], hf)
    if args.json:
        print_json({**result, "pinned": target_of(args).to_dict()})
    else:
        _print_resolved(result)
    return EXIT_FINDINGS if result["ambiguous"] or not result["ModelClassName"] else EXIT_OK


def _print_package_plan(plan: dict) -> None:
    r = plan["resolved"]
    print(f"model {r['model_name']} ({r['MODEL_DISPLAY_NAME']}): package {r['upstream_module']}, "
          f"variant {r['variant']}, {len(plan['files'])} file(s) -> {r['plugin_package']}")
    print("files:")
    for path, info in plan["files"].items():
        print(f"  {path:64s} {info['lines']:6d} lines  {info['findings']:3d} finding(s)")
    print(f"left for you, grouped by what the pinned vLLM lacks ({len(plan['groups'])}):")
    for key, paths in plan["groups"].items():
        print(f"  {key}: {len(paths)} file(s)")
        for path in paths:
            print(f"    {path}")
    reg = plan.get("registration")
    if reg is None:
        return
    print("registration of " + ", ".join(reg["architectures"])
          + ("" if reg["answered"] else f" (every architecture of the package; {ANSWER_HINT})") + ":")
    _print_findings("this tool will fix", reg["will_fix"], "  ")
    _print_findings("left for you", left_for_you(reg["left_for_you"]), "  ")


def cmd_plan(args) -> int:
    up, apis, _ = load_inputs(args)
    if _package_model(args, up):
        from flagos_migrate.migrate.packages import plan_package

        plugin = PluginTree(args.plugin)
        plan = plan_package(up, apis, args.model_name, getattr(args, "variant", None), plugin,
                            load_record(plugin.package_dir, args.model_name), getattr(args, "arch", None),
                            getattr(args, "all_archs", False))
        reg = plan["registration"]
        if args.json:
            print_json({**plan, "registration": {**reg, "will_fix": _findings_json(reg["will_fix"]),
                                                 "left_for_you": _findings_json(left_for_you(reg["left_for_you"]))}})
        else:
            _print_package_plan(plan)
        return EXIT_FINDINGS if plan["groups"] or left_for_you(reg["left_for_you"]) else EXIT_OK
    p = prepare(args, (up, apis, read_hf_config(getattr(args, "hf_config", None))))
    if args.json:
        print_json(_plan_payload(p))
    else:
        _print_plan(p)
    return _exit_for(p.migration.left(), p.registration.conflicts)


def _diff(rel: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"a/{rel}", f"b/{rel}"))


def compute_writes(p: Prepared) -> tuple[list[tuple[Path, str, str]], list[str]]:
    """(path, old text, new text) of every file that changes, and which of them were hand-edited."""
    plugin = p.migration.plugin
    root = plugin.root
    known = known_outputs(plugin.package_dir)
    writes: list[tuple[Path, str, str]] = []
    hand_edited: list[str] = []
    outputs = [(o.relpath, o.text) for o in p.outputs]
    outputs.append((plugin.init_file.relative_to(root).as_posix(), p.registration.text))
    for rel, text in outputs:
        path = ensure_within(root / rel, plugin.package_dir)
        # undecodable bytes stay distinct (so they count as hand-edited) instead of raising
        old = path.read_bytes().decode("utf-8", "surrogateescape") if path.is_file() else None
        if old == text:
            continue
        if old is not None and path != plugin.init_file and sha256_text(old) not in known.get(rel, set()):
            hand_edited.append(rel)
        writes.append((path, old or "", text))
    return writes, hand_edited


def write_prepared(p: Prepared, args) -> list[tuple[Path, str, str]]:
    """Write what ``prepare`` computed (unless --dry-run); refuse hand-edited files without --force.

    The read-modify-write of ``__init__.py`` and the record runs under a lock on the plugin, so
    that applies of different models at once all end registered.
    """
    if args.dry_run:
        return _write_locked(p, args)
    package = p.migration.plugin.package_dir
    lock = ensure_within(lock_path(package), package)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with locked(lock):
        return _write_locked(p, args)


def _write_locked(p: Prepared, args) -> list[tuple[Path, str, str]]:
    plugin = p.migration.plugin
    if p.replan is not None and not args.dry_run:
        now = read_init(plugin)
        if now != p.init_text:  # changed since prepare(): plan the registration on what is there now
            p.registration, p.init_text = p.replan(now), now
            p.record["registration"] = p.registration.added + p.registration.present
    writes, hand_edited = compute_writes(p)
    root = plugin.root
    if hand_edited and not args.force:
        for path, old, new in writes:
            rel = path.relative_to(root).as_posix()
            if rel in hand_edited:
                sys.stderr.write(_diff(rel, old, new))
        raise UsageError(
            "these files were edited by hand (or not written by this tool) since the last apply: "
            + ", ".join(hand_edited),
            hint="the diffs above show what apply would change; re-run with --force to overwrite them",
        )
    if args.dry_run:
        return writes
    package = plugin.package_dir
    rec_path = record_path(package, args.model_name)
    # every check before the first write: a refusal leaves the plugin as it was
    for path in [w[0] for w in writes] + [rec_path]:
        check_writable(ensure_within(path, package))
    for rel in [o.relpath for o in p.outputs] + [plugin.init_file.relative_to(root).as_posix()]:
        remove_stale_temps(root / rel)  # left by an apply that was killed mid-write
    remove_stale_temps(rec_path)
    try:
        for path, _, new in writes:
            atomic_write_text(path, new, within=package)
        if writes or not rec_path.is_file():
            atomic_write_json(rec_path, p.record, within=package)
    except OSError as exc:
        raise UsageError(f"writing the migration failed: {exc}",
                         hint="fix the cause and run apply again (it picks up where it stopped)") from None
    return writes


def cmd_apply(args, loaded=None) -> int:
    if loaded is None:
        loaded = load_inputs(args)
    p = prepare(args, loaded)
    root = p.migration.plugin.root
    writes = write_prepared(p, args)
    changed = [w[0].relative_to(root).as_posix() for w in writes]
    code = _exit_for(p.migration.left(), p.registration.conflicts)
    if args.dry_run:
        if args.json:
            print_json({**_plan_payload(p), "would_write": changed})
        else:
            for path, old, new in writes:
                sys.stdout.write(_diff(path.relative_to(root).as_posix(), old, new))
            print(f"dry run: {len(writes)} file(s) would change; nothing written", file=sys.stderr)
        return code
    rec = record_path(p.migration.plugin.package_dir, args.model_name).relative_to(root).as_posix()
    if args.json:
        print_json({**_plan_payload(p), "written": changed, "record": rec})
        return code
    for rel in changed:
        print(f"wrote {rel}")
    if not changed:
        print("nothing changed (already applied)")
    for line in p.registration.conflicts:
        print(f"registration conflict: {line}")
    for line in p.changes_upstream:
        print(f"upstream: {line}")
    _print_findings("left for you", left_for_you(p.migration.left()))
    _print_others(p.migration)
    return code


_VLLM_IN = ("import importlib.metadata as md, importlib.util, sys\n"
            "if not importlib.util.find_spec('vllm'): sys.exit(3)\n"
            "try: print(md.version('vllm'))\n"
            "except md.PackageNotFoundError: print('')\n")


def _vllm_in(python: str) -> str | None:
    """The vLLM version installed in ``python`` ('' when importable without metadata, e.g. a source
    checkout on the path); None when vLLM is not importable there. Nothing of vLLM is imported."""
    try:
        out = subprocess.run([python, "-c", _VLLM_IN], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _vllm_importable(python: str) -> bool:
    return _vllm_in(python) is not None


def _warn_other_vllm(python: str, found: str | None, pinned) -> None:
    """The checks ran against the pin's index; a --python with another vLLM checks something else."""
    if not found:
        return
    base = found.split("+", 1)[0]  # a local build tag (0.13.0+cpu) is the same release
    if base != pinned.vllm:
        progress(f"warning: the vLLM in {python} is {found}, the pin is {pinned.vllm} (from {pinned.source}): "
                 f"the imports run on another vLLM than the one the migration targeted; pass --pinned {base} "
                 f"or a --python with vLLM {pinned.vllm}")


def cmd_verify(args) -> int:
    from flagos_migrate.verify.import_probe import moved_checker, probe_imports, python_of

    check_model_name(args.model_name)
    plugin = PluginTree(args.plugin)
    record = load_record(plugin.package_dir, args.model_name)
    if record is None:
        raise UsageError(f"no migration record for {args.model_name} in {record_path(plugin.package_dir, args.model_name)}",
                         hint=f"run: migrate_model.py apply {args.model_name} first")
    python = python_of(args.python) if args.python else sys.executable
    pinned = target_of(args)
    found = _vllm_in(python)
    _warn_other_vllm(python, found, pinned)
    run_note = None
    if getattr(args, "run", False):
        from flagos_migrate.verify.runtime import architectures_of

        if architectures_of(record):
            return _verify_run(args, plugin, record, python)
        # a module other models import (an encoder, an MTP head, shared layers): nothing to build on its
        # own; the models that import it build it. What can be checked here is that its files import.
        run_note = (f"{args.model_name} registers no architecture (a module other models import): nothing to build, "
                    "its files are import-checked; verify --run the models that use it")
        progress(run_note)
    if found is None:
        raise UsageError(
            f"vLLM is not importable in {python}",
            hint=f"install the pinned vLLM there (pip install vllm=={args.pinned}) and the plugin with "
            "`pip install --no-build-isolation --no-deps -e .`, or pass --python /path/to/venv/bin/python",
        )
    modules = [rel[:-3].replace("/", ".").removesuffix(".__init__") for rel in record["files"]]
    # the plugin's own __init__ is not the migration's and may need a GPU (flag_gems): skipped
    results = probe_imports(python, modules, sys_path=[str(plugin.root)], jobs=args.jobs, no_init=[pinned.package],
                            moved=moved_checker(pinned), pinned=pinned)
    failed = {m: r for m, r in results.items() if not r.ok}
    environment = {m: r for m, r in failed.items() if r.environment}
    if args.json:
        print_json({"python": python, "python_vllm": found or None, "pinned": pinned.to_dict(),
                    "results": {m: r.__dict__ for m, r in results.items()},
                    "ok": len(results) - len(failed), "failed": len(failed) - len(environment),
                    "environment": len(environment), **({"run": run_note} if run_note else {})})
    else:
        for m, r in results.items():
            if r.ok:
                print(f"ok      {m}")
            elif r.environment:
                print(f"ENV     {m}: {r.error_type}: {r.message}  ({r.environment})")
            else:
                print(f"FAILED  {m}: {r.error_type}: {r.message}" + (f"  (likely {r.rule})" if r.rule else ""))
        print(f"{len(results) - len(failed)}/{len(results)} module(s) import")
    if len(failed) > len(environment):
        return EXIT_FINDINGS
    if environment:
        first = next(iter(environment.values()))
        raise UsageError(f"{len(environment)} module(s) could not be checked in {python}: {first.environment}",
                         hint="install what is missing in that Python, or run verify where the package works "
                         "(a GPU machine); these failures say nothing about the migrated code")
    return EXIT_OK


def _config_hints(args, record: dict):
    """``config_hints`` for verify_runtime: read from the upstream source (--upstream, else the one
    the record names); None when neither opens (the worker then finds what the pinned stack has)."""
    from flagos_migrate.verify import config_hints

    recorded = record.get("upstream") if isinstance(record.get("upstream"), dict) else {}
    for where in (args.upstream, recorded.get("source")):
        if isinstance(where, str) and Path(where).expanduser().exists():
            try:
                up = Upstream(open_upstream(where))
            except UsageError:
                continue
            return lambda specs: config_hints.hints_for(up, args.model_name, specs)
    return None


def _verify_run(args, plugin: PluginTree, record: dict, python: str) -> int:
    """``verify --run``: the runtime levels (import, construct, load, forward, match) per architecture."""
    from flagos_migrate.verify import runtime
    from flagos_migrate.verify.import_probe import python_of

    reference = python_of(args.reference_python) if args.reference_python else None
    for py, what in ((python, "--python"), (reference, "--reference-python")):
        if py and not _vllm_importable(py):
            raise UsageError(f"vLLM is not importable in {py} ({what})",
                             hint="give a venv with vLLM installed (its folder or its bin/python)")
    hf_config = read_hf_config(args.hf_config) if args.hf_config else None
    report = runtime.verify_runtime(python, plugin.root, record, args.model_name, args.pinned,
                                    reference_python=reference, tolerance=args.tolerance,
                                    timeout=args.timeout, progress=progress, hf_config=hf_config,
                                    config_hints=_config_hints(args, record))
    if args.json:
        print_json(report)
    else:
        for line in runtime.text_lines(report):
            print(line)
    env = report.get("environment_error")
    if env and not runtime.any_failed(report):
        raise UsageError(env["message"], hint=env["hint"])
    if env:
        progress(f"warning: {env['message']} ({env['hint']})")
    return runtime.exit_code(report)


COMMANDS = {"resolve": cmd_resolve, "plan": cmd_plan, "apply": cmd_apply, "verify": cmd_verify}
__all__ = ["COMMANDS", "EXIT_ERROR", "compute_writes", "prepare", "write_prepared"]
