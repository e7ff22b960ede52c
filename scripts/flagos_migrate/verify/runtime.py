"""Runtime truth for a migration: build, load, run and compare each registered architecture.

``migrate_model.py verify NAME --run`` calls :func:`verify_runtime`. The levels, per architecture,
in order, stopping at the first that fails:

  import     the migrated module and class import on the pinned vLLM
  construct  the class builds on CPU from a tiny config derived from the model's own config class
  load       a synthetic checkpoint (names/shapes of the Hugging Face class, random values) loads
             through the migrated ``load_weights``: every parameter written, fused ones equal to
             the concatenation of their parts, nothing left over. Without a Hugging Face class in
             either transformers, upstream vLLM's own class names it (its parameters split back
             through its own mappings, kept only when its own load_weights reproduces them);
             the report's ``checkpoint`` says which
  forward    a 12-token prefill gives finite logits (multimodal: ``get_language_model()`` and the
             ``embed_input_ids`` path too); GPU-only kernels make it ``skipped: needs GPU (<op>)``
  match      with a reference Python (upstream vLLM): the same config, checkpoint and tokens through
             the upstream model (else its Hugging Face class), max |Δlogit| within the tolerance

The heavy work runs in ``_runtime_worker.py`` under the pinned (and the reference) interpreter;
this module builds its requests and shapes its answers (pure functions, tested without vLLM).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable

from flagos_migrate.catalog.tables import REMOTE_CONFIG_FIRST
from flagos_migrate.cli import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, UsageError
from flagos_migrate.verify import import_probe, left_findings
from flagos_migrate.verify.reference_divergences import numerical_divergence
from flagos_migrate.verify.worker_io import StderrTail, json_events

WORKER = Path(__file__).resolve().parent / "_runtime_worker.py"
LEVELS = ("import", "construct", "load", "forward", "match")
TOLERANCE = 1e-3
DEFAULT_TIMEOUT = 900.0  # per architecture and side; vLLM imports alone take a minute on a busy box
NUM_TOKENS = 12
SEED = 0

WORKER_ENV = {
    **import_probe.DEFAULT_ENV,
    "VLLM_TARGET_DEVICE": "cpu",  # upstream vLLM picks its CPU platform from this
    "VLLM_PLUGINS": "",  # no installed plugin (the real vllm_fl included) loads behind our back
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "CUDA_VISIBLE_DEVICES": "",
}

# an apply that finds the registration already in place records it with where it is ("(line 20)")
_REGISTRATION = re.compile(
    r"^\s*(?P<arch>[A-Za-z_]\w*)\s*->\s*(?P<module>[\w.]+):(?P<cls>[A-Za-z_]\w*)(?:\s+\(line \d+\))?\s*$")

# Third-party packages whose absence or failure on a CPU-only machine is the environment's problem,
# not the migration's (they need a GPU, or are the plugin's own GPU runtime).
GPU_PACKAGES = ("flag_gems", "triton", "flash_attn", "vllm_flash_attn", "deep_gemm", "flashinfer", "cuda",
                "pynvml", "apex", "xformers", "mamba_ssm", "causal_conv1d", "fla")


# --------------------------------------------------------------------------------------------
# inputs from the provenance record


def architectures_of(record: dict) -> list[dict]:
    """``[{"architecture", "module", "class"}]`` from the record's ``registration`` lines
    (``"Arch -> vllm_fl.models.x:Class"``); malformed lines are ignored (the record is input)."""
    out = []
    for line in record.get("registration") or []:
        m = _REGISTRATION.match(str(line))
        if m and m.group("module").split(".")[0] == "vllm_fl":
            out.append({"architecture": m.group("arch"), "module": m.group("module"), "class": m.group("cls")})
    return out


def _files_of(record: dict, role: str) -> list[str]:
    """The record's ``files`` of one role, as plugin-relative ``.py`` paths; a path that is not plain
    ``[\\w/]+.py`` (``..``, absolute) is ignored: the record is input."""
    return [rel for rel, info in sorted((record.get("files") or {}).items())
            if isinstance(info, dict) and info.get("role") == role and re.fullmatch(r"[\w/]+\.py", str(rel))]


def config_modules_of(record: dict) -> list[str]:
    """Modules of the config bridges the migration wrote (``files`` with role ``config``)."""
    return [rel[:-3].replace("/", ".") for rel in _files_of(record, "config")]


_SIBLING_IMPORT = re.compile(r"^\s*from\s+vllm_fl\.models\.(\w+)\s+import", re.M)


def plugin_registrations(package_dir: Path, record: dict) -> list[dict]:
    """The architectures the plugin's other migration records register (:func:`architectures_of`), as its
    register() does: a model that builds another by name finds it whichever migration registered it."""
    from flagos_migrate.plugin.provenance import all_records

    return [a for other in all_records(package_dir) if other.get("model") != record.get("model")
            for a in architectures_of(other)]


def plugin_config_hooks(package_dir: Path) -> list[dict]:
    """The ``MODELS_CONFIG_MAP`` entries the plugin's register_model() writes (P25: a vendored upstream hook, or the
    pinned vLLM's own one of P25's pinned_hooks),
    which the pinned VllmConfig then runs: the worker installs them as register_model() does. Only classes of
    the plugin's own package: the file is the plugin's, the names are read, never executed."""
    from flagos_migrate.catalog.tables import PINNED_HOOKS_MODULE
    from flagos_migrate.plugin.tree import parse_registrations

    init = package_dir / "__init__.py"
    if not init.is_file():
        return []
    regs = parse_registrations(init)
    return [{"architecture": arch, "module": mod, "class": cls} for arch, (mod, cls) in sorted(regs.hook_targets.items())
            if (mod.startswith("vllm_fl.") or mod == PINNED_HOOKS_MODULE) and all(p.isidentifier() for p in mod.split("."))
            and cls.isidentifier()]


def plugin_config_types(package_dir: Path) -> list[str]:
    """The model types the plugin's register_model() puts in ``_CONFIG_REGISTRY`` (read, never executed)."""
    from flagos_migrate.plugin.tree import parse_registrations

    init = package_dir / "__init__.py"
    return sorted({c.model_type for c in parse_registrations(init).configs}) if init.is_file() else []


def plugin_config_modules(package_dir: Path, record: dict) -> list[str]:
    """The config bridges of the plugin's other records, which its register() registers for a serve too: a
    draft's target checkpoint names a model type only another record's bridge knows (exaone4_5_mtp is a draft of
    an exaone4_5 checkpoint, whose Exaone4_5Config exaone4_5's record wrote); the worker reads them only there."""
    from flagos_migrate.plugin.provenance import all_records

    own = config_modules_of(record)
    out: list[str] = []
    for other in all_records(package_dir):
        if other.get("model") != record.get("model"):
            out += [m for m in config_modules_of(other) if m not in out and m not in own]
    return out


def sibling_config_modules(package_dir: Path, record: dict) -> list[str]:
    """Config bridges of the sibling models the record's model files import (``vllm_fl.models.X``), from their
    own records: mimo_v2_mtp builds mimo_v2's layers and is a draft of MiMoV2FlashForCausalLM, whose bridge
    (``tf5_mimo_v2_flash``) only mimo_v2's record lists; the worker's own record's come after (they win)."""
    from flagos_migrate.plugin.provenance import load_record

    out: list[str] = []
    own = config_modules_of(record)
    for rel in _files_of(record, "model"):
        try:
            text = (package_dir.parent / rel).read_text(encoding="utf-8")
        except OSError:
            continue
        for name in _SIBLING_IMPORT.findall(text):
            sibling = load_record(package_dir, name) if name != record.get("model") else None
            out += [m for m in config_modules_of(sibling or {}) if m not in out and m not in own]
    return out


# --------------------------------------------------------------------------------------------
# results


def level(status: str, reason: str | None = None) -> dict:
    return {"status": status, "reason": reason}


_RUNTIME_RULES: tuple[tuple[re.Pattern, str], ...] = (
    # a merged projection built as a plain ColumnParallelLinear (e.g. a hook the pinned parent never calls)
    (re.compile(r"has no attribute 'output_sizes'"), "P8"),
    (re.compile(r"is not the concatenation of its checkpoint parts"), "P8"),
    # positionals to a class the pinned support_torch_compile wraps (its __init__ takes keywords only)
    (re.compile(r"_support_torch_compile\.<locals>\.__init__\(\) takes 1 positional argument"), "P7"),
    # the language model lost with _mark_language_model
    (re.compile(r"get_language_model\(\) returned None|'NoneType' object has no attribute 'embed_input_ids'"), "P4"),
    # upstream's stacked loading (tuple shard ids, orig_to_new_stacked) on the pinned loaders
    (re.compile(r"weight_loader\w*\(\) (takes|got)"), "P22"),
    (re.compile(r"not \(fully\) loaded|did not report .* parameter|more values than the model's parameters"), "P22"),
    # transformers' Auto factory asked for a model of a plugin config bridge's class (Gemma 4's towers)
    (re.compile(r"Unrecognized configuration class <class 'vllm_fl\.configs\."), "P41"),
    # a transformers 5 @strict dataclass config on 4.57.6's PretrainedConfig
    (re.compile(r"StrictDataclassDefinitionError"), "P5"),
    # the pinned SpeculativeConfig refuses the draft's method for its target
    (re.compile(r"(Eagle3|EAGLE3?|MTP|mtp) is only supported for"), "P38"),
    # a model flagged requires_raw_input_tokens given no ids by the pinned runner (P24 runner_flags)
    (re.compile(r"requires_raw_input_tokens"), "P24"),
)


def likely_rule(level_name: str, error: dict) -> str | None:
    """Catalog id most likely behind a level's failure (None when no rule fits)."""
    message = str(error.get("message") or "")
    for pattern, rule in _RUNTIME_RULES:
        if pattern.search(message):
            return rule
    if error.get("type") == "LevelError":
        return None
    return import_probe.likely_rule({"type": error.get("type", ""), "message": message, "ok": False})


# Packages whose missing modules are the migration's (a module the pinned stack does not have).
OWN_PACKAGES = ("vllm", "vllm_fl", "torch", "transformers")
# "pip install timm" names the package; a bare "install X" may name a pronoun ("You can install it with pip")
_INSTALL_HINT = re.compile(r"pip install `?([A-Za-z][\w-]*)|(?:please )?install `?(?!(?:it|them|this|these)\b)"
                           r"([A-Za-z][\w-]*)`?(?: to use|\b)", re.I)


def environment_problem(error: dict | None) -> str | None:
    """The package behind a failure that is the environment's problem, else None: a GPU-only
    package at import, or at any level an optional third-party package this Python lacks (an
    ``ImportError`` naming a module outside vLLM, the plugin, torch and transformers, or asking to
    install one, as OpenVLA's ``Please install timm``)."""
    if not error:
        return None
    message = str(error.get("message") or "")
    m = re.search(r"No module named '([\w.]+)'", message)
    top = m.group(1).split(".")[0] if m else None
    if error.get("type") in ("ImportError", "ModuleNotFoundError"):
        if top and top not in OWN_PACKAGES:
            return top
        hint = _INSTALL_HINT.search(message)
        name = hint and (hint.group(1) or hint.group(2))
        if not top and name and name.lower() not in OWN_PACKAGES:
            return name
    if error.get("level") != "import":
        return None
    if top in GPU_PACKAGES:
        return top
    for frame in error.get("frames") or []:
        parts = Path(str(frame.get("file", ""))).parts
        for pkg in GPU_PACKAGES:
            if pkg in parts:
                return pkg
    if re.search(r"no nvidia driver|found no nvidia|cuda driver|torch not compiled with cuda", message, re.I):
        return "CUDA"
    return None


def shape_architecture(spec: dict, pinned: dict | None, reference: dict | None, want_match: bool,
                       tolerance: float = TOLERANCE, match_skip: str | None = None) -> dict:
    """One architecture's entry of the report from the workers' answers; pure."""
    levels = {lv: level("skipped", "not run") for lv in LEVELS}
    first_error = None
    if pinned is None:
        levels["import"] = level("fail", "the runtime worker gave no result")
        first_error = {"level": "import", "message": "the runtime worker gave no result", "traceback_tail": "",
                       "likely_rule": None}
    elif pinned.get("crash"):
        crash = pinned["crash"]
        levels["import"] = level("fail", crash.get("message"))
        first_error = {"level": "import", "message": str(crash.get("message")),
                       "traceback_tail": crash.get("traceback_tail", ""), "likely_rule": None}
    else:
        for lv, value in (pinned.get("levels") or {}).items():
            if lv in levels and isinstance(value, dict):
                levels[lv] = level(value.get("status", "skipped"), value.get("reason"))
        err = pinned.get("first_error")
        if err:
            first_error = {"level": err.get("level"), "message": f"{err.get('type')}: {err.get('message')}",
                           "traceback_tail": err.get("traceback_tail", ""),
                           "likely_rule": likely_rule(err.get("level", ""), err)}
    max_diff = None
    ref_name = None
    if not want_match:
        levels["match"] = level("skipped", match_skip or "no --reference-python given")
    elif levels["forward"]["status"] != "pass":
        why = levels["forward"]["reason"] if levels["forward"]["status"] == "skipped" else "forward failed"
        levels["match"] = level("skipped", why if first_error is None else "an earlier level failed")
    elif reference is None or reference.get("crash"):
        msg = (reference or {}).get("crash", {}).get("message") or "the reference worker gave no result"
        levels["match"] = level("skipped", f"no reference could run: {msg}")
    elif reference.get("error"):
        levels["match"] = level("skipped", f"no reference could run: {reference['error']}")
        ref_name = reference.get("reference")
    else:
        ref_name = reference.get("reference")
        max_diff = float(reference["max_abs_logit_diff"])
        pooled = reference.get("max_abs_pooler_diff")
        # a pooling model: what its pooler returns is held to the tolerance too, reported apart
        pooled_text = "" if pooled is None else f", pooler output max |Δ| {float(pooled):.3g}"
        if max_diff <= tolerance and (pooled is None or float(pooled) <= tolerance):
            levels["match"] = level("pass", f"max |Δlogit| {max_diff:.3g}{pooled_text} <= {tolerance:g} ({ref_name})")
        else:
            reason = f"max |Δlogit| {max_diff:.3g}{pooled_text}, tolerance {tolerance:g} ({ref_name})"
            # a failure proven to be rounding (reference_divergences): still a failure, named with its evidence
            # instead of a rule guessed from the findings left
            known = None if pooled is not None and float(pooled) > tolerance else numerical_divergence(
                spec["architecture"], ref_name, reference.get("text_logit_diff"), reference.get("image_logit_diff"),
                tolerance)
            if known:
                reason += f"; a known numerical divergence in the {known['prefill']} prefill (within its bound " \
                          f"{known['bound']:g}), not a rule: see known_divergence"
            levels["match"] = level("fail", reason)
            first_error = first_error or {"level": "match", "message": reason, "traceback_tail": "",
                                          "likely_rule": None}
            if known and first_error["level"] == "match":
                first_error["known_divergence"] = known
    return {
        "architecture": spec["architecture"],
        "module": spec["module"],
        "class": spec["class"],
        "levels": levels,
        "first_error": first_error,
        "max_abs_logit_diff": max_diff,
        "max_abs_pooler_diff": (reference or {}).get("max_abs_pooler_diff"),
        "tolerance": tolerance,
        "reference": ref_name,
        # what the Hugging Face stand-in for upstream vLLM was changed in (reference_divergences), with evidence
        "reference_adjustments": list((reference or {}).get("reference_adjustments") or []),
        "notes": list((pinned or {}).get("notes") or []) + list((reference or {}).get("notes") or [])
        + [f"not covered by this match: {u}" for u in [(spec.get("config_hints") or {}).get("unexercised")] if u],
        "load_stats": ((pinned or {}).get("stats") or {}).get("load"),
        # what named the synthetic checkpoint: a transformers class, or upstream vLLM's own (self-checked)
        "checkpoint": (pinned or {}).get("checkpoint_source"),
        # where the tiny config's class came from (registry, draft, base class, peer, bridge, synthesized)
        "config_source": (pinned or {}).get("config_source"),
        # the files of the model classes each side built: match compares different code
        "built_from": {"pinned": (pinned or {}).get("model_file"), "reference": (reference or {}).get("model_file")},
    }


def with_left_findings(arch: dict, raw: dict | None, left: list[dict], unchanged: set[str] | None = None,
                       chosen: dict | None = None) -> dict:
    """``arch`` (:func:`shape_architecture`) with its failure tied to the finding left that it most plausibly
    is (left_findings.explain: its rule becomes ``likely_rule``, with ``likely_finding`` / ``likely_why``) and,
    findings being left, their rules (``rules_left``), whether one fits or not; ``raw``: the worker's error
    (frames). Mutates and returns ``arch``."""
    err = arch.get("first_error")
    if not err or not left:
        return arch
    if err.get("known_divergence"):  # proven rounding: no finding left is behind it
        err["rules_left"] = left_findings.rules_left(left)
        return arch
    error = raw if raw and raw.get("level") == err.get("level") else err  # the match level's has no traceback
    got = left_findings.explain(err.get("level") or "", error, left, unchanged, chosen,
                                arch=str(arch.get("architecture") or ""), guess=err.get("likely_rule"))
    if got:
        err["likely_rule"], err["likely_finding"], err["likely_why"] = got["rule"], got["finding"], got["why"]
    err["rules_left"] = left_findings.rules_left(left)
    return arch


def unchanged_files(plugin_root: Path, record: dict) -> set[str]:
    """The record's files still as apply wrote them (their spans hold)."""
    from flagos_migrate.fsutil import sha256_text

    out = set()
    for rel, info in (record.get("files") or {}).items():
        try:
            text = (plugin_root / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if sha256_text(text) == info.get("output_sha256"):
            out.add(rel)
    return out


def report_ok(architectures: list[dict]) -> bool:
    return bool(architectures) and all(
        a["levels"][lv]["status"] != "fail" for a in architectures for lv in LEVELS)


def any_failed(report: dict) -> bool:
    return any(a["levels"][lv]["status"] == "fail" for a in report.get("architectures") or [] for lv in LEVELS)


def exit_code(report: dict) -> int:
    """0 every level that ran passed, 1 a level failed (even when another architecture could not
    be set up here), 2 could not run."""
    if any_failed(report):
        return EXIT_FINDINGS
    if report.get("environment_error"):
        return EXIT_ERROR
    return EXIT_OK if report.get("ok") else EXIT_FINDINGS


def text_lines(report: dict) -> list[str]:
    """One line per architecture per level (the text form of ``verify --run``)."""
    lines = []
    for arch in report["architectures"]:
        for lv in LEVELS:
            st = arch["levels"][lv]
            word = {"pass": "pass", "fail": "FAIL", "skipped": "skipped"}.get(st["status"], st["status"])
            line = f"{arch['architecture']:<40} {lv:<10} {word}"
            if st.get("reason"):
                line += f"  {st['reason']}"
            err = arch.get("first_error")
            if st["status"] == "fail" and err and err.get("level") == lv:
                line += _likely_text(err)
            lines.append(line)
    return lines


def _likely_text(err: dict) -> str:
    """``  (likely P12: <why>, finding P12 at file:line)``; a guess from the message alone says so when
    findings are left, with their rules."""
    left = err.get("rules_left")
    known = err.get("known_divergence")
    if known:
        return f"  (known numerical divergence, no rule: {known['why']}; evidence: {'; '.join(known['evidence'])})"
    if err.get("likely_finding"):
        return f"  (likely {err['likely_rule']}: {err.get('likely_why')}, finding {err['likely_finding']})"
    if err.get("likely_rule") and left:
        return f"  (likely {err['likely_rule']} from the message alone; rules left: {', '.join(left)})"
    if left:
        return f"  (rules left: {', '.join(left)}; none fits the failure)"
    return f"  (likely {err['likely_rule']})" if err.get("likely_rule") else ""


# --------------------------------------------------------------------------------------------
# running the worker


class Worker:
    """One ``_runtime_worker.py`` process under a foreign ``python``. It starts importing vLLM at
    once; :meth:`run` sends the request later (so the reference side imports while the pinned side
    runs) and returns the ready event and the results by spec id."""

    def __init__(self, python: str):
        self.python = python
        env = {**os.environ, **WORKER_ENV, "MMF_RUNTIME_HOST_PID": str(os.getpid())}  # it dies with us
        try:
            self.proc = subprocess.Popen([python, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=env, text=True, start_new_session=True)
        except OSError as exc:
            raise UsageError(f"cannot run {python}: {exc}", hint="give a working python executable or venv") from exc
        self.tail = StderrTail(self.proc.stderr)

    def close(self) -> None:
        """Stop the process (ours, started by this object, the leader of its own session) and its
        process group if it still runs; its per-architecture children die with it (the worker sets
        their parent-death signal)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
            self.proc.wait()
        self.tail.join()

    def run(self, request: dict, timeout: float,
            progress: Callable[[str], None] | None = None) -> tuple[dict, dict[str, dict]]:
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        budget = 900 + timeout * (len(request.get("architectures") or []) + 1)
        watchdog = threading.Timer(budget, proc.kill)
        watchdog.start()
        ready: dict = {}
        results: dict[str, dict] = {}
        try:
            for event in json_events(proc.stdout):
                if event.get("event") == "ready":
                    ready = event
                    if not event.get("environment_error"):
                        try:
                            proc.stdin.write(json.dumps(request))
                            proc.stdin.close()
                        except OSError:
                            break
                elif event.get("event") == "result":
                    results[str(event.get("id") or event.get("architecture", ""))] = event
                    if progress:
                        progress(event.get("architecture", ""))
            proc.wait()
        finally:
            watchdog.cancel()
            self.close()
        if not ready:
            raise UsageError(f"the runtime worker could not start under {self.python} (exit code {proc.returncode})",
                             hint=self.tail.last(5).strip() or "check that the interpreter runs")
        if ready.get("environment_error"):
            err = ready["environment_error"]
            raise UsageError(f"vLLM cannot be set up on CPU under {self.python}: {err.get('type')}: {err.get('message')}",
                             hint="give a venv with vLLM, torch and transformers installed (--python / --reference-python)")
        return ready, results


def run_worker(python: str, request: dict, timeout: float,
               progress: Callable[[str], None] | None = None) -> tuple[dict, dict[str, dict]]:
    """Run ``_runtime_worker.py`` under ``python`` with ``request``; its ready event and results."""
    return Worker(python).run(request, timeout, progress)


def verify_runtime(python: str, plugin_root: Path, record: dict, model: str, pinned: str,
                   reference_python: str | None = None, tolerance: float = TOLERANCE,
                   timeout: float = DEFAULT_TIMEOUT, progress: Callable[[str], None] | None = None,
                   workdir: str | None = None, hf_config: dict | None = None,
                   config_hints: Callable[[list[dict]], dict[str, dict]] | None = None) -> dict:
    """Run the levels for every architecture the record registered; the report (see module doc).
    ``hf_config`` (a real config.json) is the base of the tiny config of the architectures it names;
    ``config_hints(specs)``: per spec id, where a config class comes from when the pinned stack has none."""
    specs = [{**s, "id": f"{i}-{s['architecture']}", **with_base_config(s["architecture"], hf_config)}
             for i, s in enumerate(architectures_of(record))]
    hints = config_hints(specs) if config_hints and specs else {}
    for spec in specs:  # where the worker gets a config class the pinned stack lacks (config_hints)
        if hints.get(spec["id"]):
            spec["config_hints"] = hints[spec["id"]]
    if not specs:
        raise UsageError(f"the migration record of {model} registers no vllm_fl architecture",
                         hint=f"run: migrate_model.py apply {model} (it registers the model classes)")
    say = progress or (lambda _msg: None)
    with _terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="mmf-runtime-") as tmp:
        work = workdir or tmp
        base = {"sys_path": [str(plugin_root)], "namespace_packages": {"vllm_fl": str(plugin_root / "vllm_fl")},
                "registrations": plugin_registrations(Path(plugin_root) / "vllm_fl", record),
                "config_hooks": plugin_config_hooks(Path(plugin_root) / "vllm_fl"),
                "config_modules": sibling_config_modules(Path(plugin_root) / "vllm_fl", record)
                + config_modules_of(record), "workdir": work, "timeout": timeout,
                "plugin_config_modules": plugin_config_modules(Path(plugin_root) / "vllm_fl", record),
                "own_config_modules": config_modules_of(record),
                # bridges register_model() leaves to the checkpoint's own config (P2 remote_config_first), and what
                # it registers: a bridge module of such a model type is registered for those model types only
                "unregistered_bridges": sorted(REMOTE_CONFIG_FIRST),
                "registered_configs": plugin_config_types(Path(plugin_root) / "vllm_fl"),
                "seed": SEED, "num_tokens": NUM_TOKENS}
        say(f"pinned: building {len(specs)} architecture(s) under {python}")
        started: list[Worker] = []

        def worker(py: str) -> Worker:
            started.append(Worker(py))
            return started[-1]

        def reference_worker() -> Worker:
            # the first request goes to the worker started early; later ones need a new process
            fresh = [w for w in started if w.python == reference_python and w.proc.stdin and not w.proc.stdin.closed]
            return fresh[0] if fresh else worker(reference_python)

        try:
            if reference_python:
                worker(reference_python)  # imports vLLM while the pinned side runs
            ready, pinned_res = worker(python).run({**base, "mode": "pinned", "architectures": specs}, timeout,
                                                   lambda a: say(f"pinned: {a} done"))
            ref_ready: dict = {}
            ref_res: dict[str, dict] = {}
            if reference_python:
                need = [s for s in specs if (pinned_res.get(s["id"]) or {}).get("needs_checkpoint")]
                if need:
                    say(f"reference: checkpoint names for {len(need)} architecture(s) the pinned transformers lacks")
                    ref_ready, made = reference_worker().run(
                        {**base, "mode": "reference", "sys_path": [], "namespace_packages": {},
                         "architectures": [{**s, "make_checkpoint": True} for s in need]}, timeout)
                    # the rerun loads what the reference named, not the pinned transformers' spelling again
                    again = [{**s, "reference_checkpoint": True} for s in need
                             if (made.get(s["id"]) or {}).get("checkpoint")]
                    for s in need:  # the reference could not name the tensors either: say so, not "pass it"
                        got = made.get(s["id"]) or {}
                        why = got.get("error") or (got.get("crash") or {}).get("message")
                        load = ((pinned_res.get(s["id"]) or {}).get("levels") or {}).get("load")
                        if why and isinstance(load, dict):
                            load["reason"] = ("nothing named the checkpoint: no Hugging Face class here, nor one in the "
                                              f"reference or upstream vLLM's own class there ({why})")
                    if again:
                        _, rerun = worker(python).run({**base, "mode": "pinned", "architectures": again}, timeout)
                        pinned_res.update(rerun)
                todo = [s for s in specs
                        if ((pinned_res.get(s["id"]) or {}).get("levels") or {}).get("forward", {}).get("status")
                        == "pass"]
                if todo:
                    say(f"reference: running {len(todo)} architecture(s) under {reference_python}")
                    ref_ready, ref_res = reference_worker().run(
                        {**base, "mode": "reference", "sys_path": [], "namespace_packages": {}, "architectures": todo},
                        timeout, lambda a: say(f"reference: {a} done"))
        finally:
            for w in started:
                w.close()
        archs = [shape_architecture(s, pinned_res.get(s["id"]), ref_res.get(s["id"]),
                                    want_match=bool(reference_python), tolerance=tolerance) for s in specs]
    left, unchanged = record.get("left") or [], unchanged_files(Path(plugin_root), record)
    for spec, arch in zip(specs, archs):
        chosen = left_findings.chosen_by_new(spec, (pinned_res.get(spec["id"]) or {}).get("model_classes"),
                                             Path(plugin_root), left)
        with_left_findings(arch, _raw_error(pinned_res, spec), left, unchanged, chosen)
    env_pkgs = set()
    for spec, arch in zip(specs, archs):
        pkg = environment_problem(_raw_error(pinned_res, spec))
        if pkg:  # the environment's problem: not a level this migration failed
            env_pkgs.add(pkg)
            failed = (arch["first_error"] or {}).get("level") or "import"
            why = "GPU-only package" if pkg in GPU_PACKAGES or pkg == "CUDA" else "package not installed here:"
            arch["levels"][failed if failed in LEVELS else "import"] = level("skipped", f"environment: needs {why} {pkg}")
            arch["first_error"] = None
    report = {
        "model": model,
        "pinned": pinned,
        "plugin": str(plugin_root),
        "ok": report_ok(archs) and not env_pkgs,
        "architectures": archs,
        "python": python,
        "vllm": ready.get("vllm"),
        "reference_python": reference_python,
        "reference_vllm": ref_ready.get("vllm"),
        "environment_error": None,
    }
    if env_pkgs:
        report["environment_error"] = {
            "message": f"the migrated models need package(s) {', '.join(sorted(env_pkgs))}, which cannot be set up "
                       f"under {python} (GPU-only, or not installed)",
            "hint": "install them in that venv (a GPU-only one: run where it imports, or on a GPU machine) and "
                    "re-run; this is not a migration failure",
        }
    return report


class _terminate_as_interrupt:
    """SIGTERM/SIGHUP raise KeyboardInterrupt while the workers run, so that ``finally`` stops them
    (they run in their own session: a signal to our process group does not reach them)."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP)

    def __enter__(self):
        self.old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.old[sig] = signal.signal(sig, self._raise)
        return self

    @staticmethod
    def _raise(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False


def with_base_config(arch: str, hf_config: dict | None) -> dict:
    """Spec fields taking the tiny config from a real config.json that names ``arch`` (pure)."""
    if not isinstance(hf_config, dict) or arch not in (hf_config.get("architectures") or []):
        return {}
    out: dict = {"base_config": hf_config}
    if isinstance(hf_config.get("model_type"), str):
        out["model_type"] = hf_config["model_type"]
    return out


def _raw_error(results: dict[str, dict], arch: dict) -> dict | None:
    return (results.get(arch["id"]) or {}).get("first_error")
