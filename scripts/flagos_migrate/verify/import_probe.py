"""Import modules for real in a given Python and report, per module, ``ok`` or the first error.

This is the ground truth that static findings are measured against: the corpus benchmarks and
``migrate_model.py verify`` call :func:`probe_imports`. The probe runs ``_probe_worker.py`` under
the chosen interpreter (a venv with the pinned vLLM, or ``sys.executable``); the worker preloads
torch and the shared vLLM modules once and forks one child per module, so a module costs
milliseconds instead of the seconds a fresh ``import vllm`` takes, and no module's side effects
leak into the next. :func:`likely_rule` maps an error to the rule catalog (``rules.py``).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from flagos_migrate.cli import UsageError
from flagos_migrate.verify.worker_io import StderrTail, json_events

WORKER = Path(__file__).resolve().parent / "_probe_worker.py"
PINNED_VENV_ENV = "MMF_PINNED_VENV"

# Imported once per worker before forking: everything most model files import anyway, as spelled
# by any supported pin; :func:`preload_for` keeps the ones the pinned index has (a module that
# moved, e.g. ``vllm.attention.layer``, is preloaded where the pin has it).
VLLM_PRELOAD: tuple[str, ...] = (
    "torch",
    "torch.nn",
    "transformers",
    "vllm",
    "vllm.config",
    "vllm.distributed",
    "vllm.logger",
    "vllm.sequence",
    "vllm.attention.layer",
    "vllm.compilation.decorators",
    "vllm.model_executor.custom_op",
    "vllm.model_executor.layers.activation",
    "vllm.model_executor.layers.layernorm",
    "vllm.model_executor.layers.linear",
    "vllm.model_executor.layers.logits_processor",
    "vllm.model_executor.layers.quantization",
    "vllm.model_executor.layers.rotary_embedding",
    "vllm.model_executor.layers.vocab_parallel_embedding",
    "vllm.model_executor.layers.fused_moe",
    "vllm.model_executor.model_loader.weight_utils",
    "vllm.model_executor.models",
    "vllm.model_executor.models.interfaces",
    "vllm.model_executor.models.interfaces_base",
    "vllm.model_executor.models.utils",
    "vllm.multimodal",
    "vllm.multimodal.inputs",
    "vllm.multimodal.processing",
    "vllm.multimodal.profiling",
    "vllm.transformers_utils.configs",
    # Measured on vLLM 0.13.0: the non-model modules that forked children still imported most
    # often (each saves ~0.1-0.2 s per file that needs it). Model modules are never preloaded,
    # so a probed file is not judged against siblings it would not load by itself.
    "transformers.activations",
    "transformers.modeling_outputs",
    "transformers.models.llama",
    "vllm.sampling_params",
    "vllm.pooling_params",
    "vllm.v1.serial_utils",
    "vllm.v1.attention.backends.utils",
    "vllm.utils.tensor_schema",
    "vllm.attention.layers.encoder_only_attention",
    # where later pins (0.20.x) moved the attention layers
    "vllm.model_executor.layers.attention",
    "vllm.model_executor.layers.attention.encoder_only_attention",
    "vllm.model_executor.layers.conv",
    "vllm.model_executor.layers.pooler",
    "vllm.model_executor.layers.mamba.abstract",
    "vllm.model_executor.layers.mamba.mamba_utils",
    "vllm.model_executor.models.adapters",
    "vllm.model_executor.models.config",
    "vllm.model_executor.models.module_mapping",
    "vllm.multimodal.image",
)

# Quieter, deterministic imports of vLLM on machines without GPUs.
DEFAULT_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass
class ProbeResult:
    """Outcome of importing one module."""

    module: str
    ok: bool
    error_type: str = ""  # exception class name, or Timeout / Crashed / Exited / NotRun
    message: str = ""
    missing: str = ""  # the missing module or name parsed from the message
    missing_from: str = ""  # for "cannot import name X from Y": Y
    file: str = ""  # where it went wrong inside the probed file (else the innermost frame)
    line: int = 0
    in_probed_file: bool = False
    imported_names: list[str] = field(default_factory=list)  # of the failing ``from X import ...`` there
    raised_at: str = ""  # innermost frame, file:line
    origin: str = ""  # the probed module's file
    seconds: float = 0.0
    rule: str | None = None  # likely catalog id
    environment: str = ""  # why the failure is the environment's (a missing package, no GPU), not the code's
    raised_in: str = ""  # top-level package of the innermost frame outside the import machinery
    frames: list[dict] = field(default_factory=list)
    output_tail: str = ""

    @property
    def first_error(self) -> str:
        """Short one-line form used for grouping: ``Type: message``."""
        if self.ok:
            return ""
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        first = _TRAILING_PATH.sub("", first)  # "cannot import name X from Y (/site-packages/...)"
        return f"{self.error_type}: {first}" if first else self.error_type

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.file else ""

    def to_json(self) -> dict:
        data = asdict(self)
        data["first_error"] = self.first_error
        return data


# --------------------------------------------------------------------------------------------
# Parsing error messages


_NO_MODULE = re.compile(r"No module named '?(?P<mod>[\w.]+)'?")
_CANNOT_IMPORT = re.compile(r"cannot import name '(?P<name>[\w.]+)' from '(?P<mod>[\w.]+)'")
_CANNOT_IMPORT_PARTIAL = re.compile(r"cannot import name '(?P<name>[\w.]+)' from partially initialized module '(?P<mod>[\w.]+)'")
_NO_ATTR_MODULE = re.compile(r"module '(?P<owner>[\w.]+)' has no attribute '(?P<name>\w+)'")
_NO_ATTR_TYPE = re.compile(r"type object '(?P<owner>[\w.]+)' has no attribute '(?P<name>\w+)'")
_NO_ATTR_OBJECT = re.compile(r"'(?P<owner>[\w.]+)' object has no attribute '(?P<name>\w+)'")
_UNEXPECTED_KW = re.compile(r"(?P<func>[\w.<>]+)\(\) got an unexpected keyword argument '(?P<name>\w+)'")
_MISSING_ARG = re.compile(r"(?P<func>[\w.<>]+)\(\) missing \d+ required (?:positional|keyword-only) arguments?: (?P<names>.+)")
_TOO_MANY = re.compile(r"(?P<func>[\w.<>]+)\(\) takes (?:from \d+ to )?\d+ positional arguments? but \d+ (?:was|were) given")
# CustomOp.register asserts "Duplicate op name"; torch.library refuses a second definition with
# "Tried to register an operator (...) with the same name and overload name multiple times".
_DUPLICATE_OP = re.compile(r"Duplicate op name|same name and overload name multiple times|already (?:has|been) registered", re.I)
_TRAILING_PATH = re.compile(r" \((?:/|[A-Za-z]:\\|unknown location)[^)]*\)$")
_QUOTED = re.compile(r"'(\w+)'")

_VLLM_CONFIG_CLASS = re.compile(
    r"^(Vllm|Cache|Model|Parallel|Scheduler|Load|Device|Compilation|Speculative|LoRA|MultiModal|Observability|"
    r"KVTransfer|KVEvents|StructuredOutputs|Pooler|Attention|EPLB|Kernel|Profiler|ECTransfer)Config$"
)


def parse_missing(error_type: str, message: str) -> tuple[str, str]:
    """``(missing, missing_from)`` out of an import/attribute/type error message."""
    if m := _NO_MODULE.search(message):
        return m.group("mod"), ""
    if m := (_CANNOT_IMPORT.search(message) or _CANNOT_IMPORT_PARTIAL.search(message)):
        return m.group("name"), m.group("mod")
    for pattern in (_NO_ATTR_MODULE, _NO_ATTR_TYPE, _NO_ATTR_OBJECT):
        if m := pattern.search(message):
            return m.group("name"), m.group("owner")
    if m := _UNEXPECTED_KW.search(message):
        return m.group("name"), m.group("func")
    if m := _MISSING_ARG.search(message):
        names = _QUOTED.findall(m.group("names"))
        return ",".join(names), m.group("func")
    if m := _TOO_MANY.search(message):
        return "", m.group("func")
    return "", ""


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def likely_rule(error: ProbeResult | dict, moved: Callable[[str, str], bool] | None = None) -> str | None:
    """Catalog id (``rules.py``) most likely behind an import failure, or None when no rule fits.

    ``moved(module, name)`` may tell whether the pinned vLLM defines ``name`` in another module
    (then "cannot import name" is P13 rather than P3, and so is a missing module when every name
    the failing statement imports lives elsewhere); without it, P3 is assumed. See
    :func:`moved_checker`.
    """
    if isinstance(error, dict):
        error = ProbeResult(module=error.get("module", ""), ok=bool(error.get("ok")),
                            error_type=error.get("error_type", error.get("type", "")),
                            message=error.get("message", ""),
                            imported_names=list(error.get("imported_names") or []))
    if error.ok:
        return None
    kind, msg = error.error_type, error.message
    if kind in ("SyntaxError", "IndentationError", "TabError", "UnicodeDecodeError"):
        return "P20"
    if _DUPLICATE_OP.search(msg):
        return "P11"
    missing, owner = (error.missing, error.missing_from) if error.missing or error.missing_from \
        else parse_missing(kind, msg)
    if _NO_MODULE.search(msg):
        top = _top(missing)
        if top == "vllm_fl":
            return "P18"
        if top == "transformers":
            return "P5"
        if top == "vllm":
            names = error.imported_names
            if moved is not None and names and all(moved(missing, n) for n in names):
                return "P13"
            return "P3"
        return None  # an optional third-party package (timm, ...) that the environment lacks
    if _CANNOT_IMPORT.search(msg) or _CANNOT_IMPORT_PARTIAL.search(msg):
        top = _top(owner)
        if top == "vllm_fl":
            return "P18"
        if top == "transformers":
            return "P5"
        if top == "vllm":
            return "P13" if moved is not None and moved(owner, missing) else "P3"
        return None
    if kind == "AttributeError" or "has no attribute" in msg:
        if missing.startswith("_mark_"):
            return "P4"
        if _NO_ATTR_MODULE.search(msg):
            top = _top(owner)
            return {"transformers": "P5", "vllm": "P3", "vllm_fl": "P18"}.get(top)
        if _VLLM_CONFIG_CLASS.match(owner.rsplit(".", 1)[-1]):
            return "P9"
        if owner.endswith("Config"):
            return "P15"  # a model config (HF / bridge) lacking a field the code reads
        return "P4"
    if kind == "TypeError":
        if _UNEXPECTED_KW.search(msg):
            return "P6"
        if _MISSING_ARG.search(msg) or _TOO_MANY.search(msg):
            return "P7"
    return None


# Packages whose errors are the migration's to fix; an error raised inside any other
# third-party package (flag_gems without a GPU, a CUDA-only kernel library) is the environment's.
OWN_PACKAGES = frozenset({"vllm", "vllm_fl", "transformers", "torch"})
_GPU_ONLY = re.compile(
    r"\bCUDA\b|\bNVIDIA\b|libcuda|\bno GPU|GPU.{0,20}(?:not found|not available|unavailable|required)|"
    r"Found no .{0,20}driver|0 active drivers|Torch not compiled with|\bROCm\b",
    re.I,
)


def environment_reason(res: ProbeResult) -> str:
    """Why a failure is the environment's rather than the migrated code's ("" when it is the code's).

    A catalog rule explains the failure: the code's. Otherwise: a missing third-party package,
    a message about GPUs or drivers, or an exception raised inside a third-party package (not
    vLLM, the plugin, transformers, torch, the standard library or the probed package itself).
    """
    if res.ok or res.rule is not None:
        return ""
    top = _top(res.missing) if res.missing else ""
    if res.error_type == "ModuleNotFoundError" and top and top not in OWN_PACKAGES and top != _top(res.module):
        return f"the package {top!r} is not installed in this Python"
    if _GPU_ONLY.search(res.message):
        return "needs a GPU (or its driver), which this machine lacks"
    raised = res.raised_in
    if raised and raised not in OWN_PACKAGES and raised != _top(res.module):
        return f"raised inside the third-party package {raised!r} while it was imported"
    return ""


# --------------------------------------------------------------------------------------------
# Running the worker


def _pinned_apis(pinned):
    try:
        from flagos_migrate.pinned.api_index import PinnedApis

        return PinnedApis.load(pinned)
    except (UsageError, OSError, ValueError, KeyError):
        return None


def preload_for(pinned) -> tuple[str, ...]:
    """:data:`VLLM_PRELOAD` without the modules the pinned vLLM (a version or a target) lacks;
    all of it when there is no index to ask."""
    apis = _pinned_apis(pinned)
    if apis is None:
        return VLLM_PRELOAD
    return tuple(m for m in VLLM_PRELOAD if apis.has_module(m) is not False)


def moved_checker(pinned) -> Callable[[str, str], bool] | None:
    """``moved(module, name)`` from the static index of the pinned versions (None without an index):
    true when the pinned package defines ``name`` in a module other than ``module``. ``pinned`` is
    a vLLM version or a ``target.PinnedTarget``."""
    apis = _pinned_apis(pinned)
    if apis is None:
        return None

    def moved(module: str, name: str) -> bool:
        index = apis.index_for(module)
        return index is not None and any(m != module for m, _ in index.definers(name))

    return moved


def _imported_names(path: str, line: int, module: str) -> list[str]:
    """Names imported by ``from <module> import ...`` at ``path:line`` (else [], e.g. when the
    statement there imports another module that itself failed)."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.lineno <= line <= (node.end_lineno or node.lineno):
            # "No module named 'a.b'" for ``from a.b.c import X`` names the first missing package
            if node.level == 0 and node.module and (node.module == module or node.module.startswith(module + ".")):
                return [a.name for a in node.names if a.name != "*"]
    return []


def _result_from_worker(raw: dict, moved: Callable[[str, str], bool] | None = None) -> ProbeResult:
    frames = raw.get("frames") or []
    origin = raw.get("origin") or ""
    res = ProbeResult(
        module=raw["module"],
        ok=bool(raw.get("ok")),
        error_type=raw.get("type", "") if not raw.get("ok") else "",
        message=raw.get("message", "") if not raw.get("ok") else "",
        origin=origin,
        seconds=float(raw.get("seconds") or 0.0),
        frames=frames,
        output_tail=raw.get("output_tail", ""),
    )
    if res.ok:
        return res
    res.missing, res.missing_from = parse_missing(res.error_type, res.message)
    if frames:
        res.raised_at = f"{frames[-1]['file']}:{frames[-1]['line']}"
    # Where the probed file went wrong: a syntax error names it; otherwise the innermost frame
    # inside the probed file (the import statement or call that failed).
    if raw.get("syntax_file") and raw.get("syntax_line"):
        res.file, res.line = raw["syntax_file"], int(raw["syntax_line"])
        res.in_probed_file = bool(origin) and _same_file(raw["syntax_file"], origin)
    else:
        own = [f for f in frames if origin and _same_file(f["file"], origin)]
        if own:
            res.file, res.line, res.in_probed_file = own[-1]["file"], int(own[-1]["line"]), True
        elif frames:
            res.file, res.line = frames[-1]["file"], int(frames[-1]["line"])
    if res.in_probed_file and res.error_type in ("ModuleNotFoundError", "ImportError"):
        res.imported_names = _imported_names(res.file, res.line, res.missing_from or res.missing)
    res.rule = likely_rule(res, moved)
    if not raw.get("raised_in_stdlib"):
        res.raised_in = raw.get("raised_in") or ""
    res.environment = environment_reason(res)
    return res


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return a == b


def python_of(venv_or_python: str | os.PathLike) -> str:
    """The interpreter of a venv folder (``bin/python``) or the given interpreter path itself."""
    p = Path(venv_or_python).expanduser()
    if p.is_dir():
        for cand in (p / "bin" / "python", p / "bin" / "python3", p / "Scripts" / "python.exe"):
            if cand.exists():
                return str(cand)
        raise UsageError(f"{p} is a folder but holds no bin/python", hint="give a venv folder or a python executable")
    if not p.exists():
        raise UsageError(f"python not found: {p}", hint=f"set {PINNED_VENV_ENV} to a venv folder with vLLM installed")
    return str(p)


def pinned_python_from_env() -> str | None:
    """The interpreter of ``$MMF_PINNED_VENV``, or None when the variable is unset."""
    value = os.environ.get(PINNED_VENV_ENV)
    return python_of(value) if value else None


def probe_imports(
    python: str,
    modules: Iterable[str],
    sys_path: Iterable[str] = (),
    jobs: int = 2,
    timeout: float = 120,
    env: dict | None = None,
    progress: Callable[[ProbeResult, int, int], None] | None = None,
    preload: Iterable[str] | None = None,
    startup_timeout: float = 600,
    moved: Callable[[str, str], bool] | None = None,
    stats: dict | None = None,
    no_init: Iterable[str] = (),
    pinned=None,
) -> dict[str, ProbeResult]:
    """Import each module in a fresh fork of a preloaded ``python``; return results by module.

    ``sys_path`` entries are put first on the worker's ``sys.path``. ``preload`` defaults to
    :data:`VLLM_PRELOAD` as far as the ``pinned`` vLLM has it (:func:`preload_for`); pass ``()``
    for plain Python modules. ``timeout`` is per module.
    ``progress(result, done, total)`` is called as results arrive. A worker that cannot start
    raises :class:`UsageError`; modules it never reported come back as ``NotRun``. ``moved`` is
    passed to :func:`likely_rule` (e.g. ``moved_checker(target)``). A ``stats`` dict, when
    given, receives ``preload_seconds``, ``preload_failed`` ({module: error}) and ``python_version``
    of the worker (``verify`` can tell "vLLM is not importable here" from it). Packages in
    ``no_init`` are registered without running their ``__init__.py`` (``verify`` passes the
    plugin's ``vllm_fl``: its ``__init__`` may import GPU-only packages the models never need).
    """
    modules = list(dict.fromkeys(modules))
    if not modules:
        return {}
    request = {
        "sys_path": [str(p) for p in sys_path],
        "preload": list(preload if preload is not None else preload_for(pinned) if pinned else VLLM_PRELOAD),
        "jobs": max(1, int(jobs)),
        "timeout": float(timeout),
        "modules": modules,
        "no_init": list(no_init),
    }
    full_env = {**os.environ, **DEFAULT_ENV, **(env or {})}
    try:
        proc = subprocess.Popen(
            [python, str(WORKER), "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            text=True,
        )
    except OSError as exc:
        raise UsageError(f"cannot run {python}: {exc}", hint="give a working python executable or venv") from exc

    tail = StderrTail(proc.stderr)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(request))
    proc.stdin.close()

    # The whole run can never take longer than startup + every module timing out in sequence.
    budget = startup_timeout + timeout * (len(modules) / request["jobs"] + 1)
    watchdog = threading.Timer(budget, proc.kill)
    watchdog.start()
    results: dict[str, ProbeResult] = {}
    ready = False
    try:
        for event in json_events(proc.stdout):
            if event.get("event") == "ready":
                ready = True
                if stats is not None:
                    stats.update(preload_seconds=event.get("preload_seconds"),
                                 preload_failed=event.get("preload_failed") or {},
                                 python_version=event.get("python"))
            elif event.get("event") == "result":
                res = _result_from_worker(event, moved)
                results[res.module] = res
                if progress:
                    progress(res, len(results), len(modules))
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tail.join()
    if not ready:
        raise UsageError(
            f"the import probe could not start under {python} (exit code {proc.returncode})",
            hint=tail.last(5).strip() or "check that the interpreter runs",
        )
    for mod in modules:
        if mod not in results:
            results[mod] = ProbeResult(module=mod, ok=False, error_type="NotRun",
                                       message="the probe worker stopped before importing this module",
                                       output_tail=tail.last(10))
    return {m: results[m] for m in modules}


def probe_in_current_python(modules: Iterable[str], sys_path: Iterable[str] = (), **kw) -> dict[str, ProbeResult]:
    """:func:`probe_imports` with the running interpreter (what ``migrate_model.py verify`` uses)."""
    return probe_imports(sys.executable, modules, sys_path, **kw)


def summarize(results: dict[str, ProbeResult], top: int = 15) -> dict:
    """Counts, rates and the most frequent first errors of a probe run."""
    from collections import Counter

    total = len(results)
    ok = sum(1 for r in results.values() if r.ok)
    errors = Counter(r.first_error for r in results.values() if not r.ok)
    rules = Counter(r.rule or "none" for r in results.values() if not r.ok)
    return {
        "total": total,
        "ok": ok,
        "failed": total - ok,
        "ok_rate": round(ok / total, 4) if total else 0.0,
        "top_errors": errors.most_common(top),
        "rules": dict(rules.most_common()),
    }
