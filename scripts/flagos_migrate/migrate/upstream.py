"""Upstream vLLM as the migration reads it: model files, the model registry, config classes.

Everything is read statically from a ``SourceTree`` (checkout, site-packages or wheel); nothing
upstream is imported. ``resolve`` fills the design card's placeholders from these facts and
reports ambiguity instead of guessing.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from flagos_migrate import names
from flagos_migrate.astutil import binding_map, dotted, parse_source
from flagos_migrate.cli import UsageError
from flagos_migrate.pinned.index_builder import module_record
from flagos_migrate.pinned.sources import SourceTree, open_source

DEFAULT_UPSTREAM = "/tmp/vllm-upstream-ref"
MODELS_PKG = "vllm.model_executor.models"
CONFIGS_PKG = "vllm.transformers_utils.configs"
# Hugging Face processors that upstream vLLM ships itself; a migration brings a missing one along
PROCESSORS_PKG = "vllm.transformers_utils.processors"
FETCH_CACHE = Path.home() / ".cache" / "model-migrate-flagos" / "upstream"

# Modules of vllm/model_executor/models that are infrastructure, not models: a migration never
# copies them into the plugin (a copy of ``interfaces`` would make the model's protocols differ
# from the ones vLLM checks); names missing there are back-ported one by one instead (P16).
SHARED_MODEL_MODULES = frozenset(
    {"utils", "interfaces", "interfaces_base", "vision", "module_mapping", "adapters", "registry", "config"}
)


def check_model_name(name: str) -> str:
    if not names.matches(names.MODEL_MODULE, name) or name.endswith("_") or "__" in name:
        shown = name if len(name or "") <= 80 else f"{name[:60]}... ({len(name)} characters)"
        raise UsageError(
            f"MODEL_NAME must be a snake_case module name, got {shown!r}",
            hint="use the upstream file name without .py, e.g. qwen3_5 for vllm/model_executor/models/qwen3_5.py",
        )
    return name


def fetch_latest_wheel(cache: Path = FETCH_CACHE, python: str = sys.executable) -> Path:
    """``pip download`` the newest vLLM wheel (no dependencies) into ``cache``; return its path."""
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "pip", "download", "vllm", "--no-deps", "--only-binary", ":all:", "-d", str(cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(cache.glob("vllm-*.whl"), key=lambda p: p.stat().st_mtime)
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UsageError(
            f"could not download the latest vLLM wheel: {tail[0]}",
            hint=f"run by hand: {' '.join(cmd)} (add --platform/--python-version on other machines)",
        )
    return wheels[-1]


def open_upstream(path: str | None, fetch: bool = False) -> SourceTree:
    """The upstream source; ``fetch`` downloads the latest wheel when ``path`` does not exist."""
    where = Path(path or DEFAULT_UPSTREAM).expanduser()
    if not where.exists() and fetch:
        return open_source(fetch_latest_wheel(), "vllm")
    try:
        return open_source(where, "vllm")
    except UsageError as exc:
        if not where.exists():
            exc.hint = f"{exc.hint}; or re-run with --fetch to download the latest vLLM wheel with pip"
        raise


def module_relpath(module: str, is_package: bool = False) -> str:
    base = module.replace(".", "/")
    return f"{base}/__init__.py" if is_package else f"{base}.py"


@dataclass
class ConfigClass:
    name: str
    module: str
    model_type: str | None
    bases: list[str] = field(default_factory=list)


class Upstream:
    """Static queries over one upstream vLLM source."""

    def __init__(self, source: SourceTree):
        self.source = source
        self._records: dict[str, dict | None] = {}

    @property
    def version(self) -> str:
        return self.source.version

    # -- modules ---------------------------------------------------------------------------

    def relpath(self, module: str) -> str | None:
        for cand in (module_relpath(module), module_relpath(module, True)):
            if self.source.has(cand):
                return cand
        return None

    def has_module(self, module: str) -> bool:
        return self.relpath(module) is not None

    def text(self, module: str) -> str | None:
        rel = self.relpath(module)
        return self.source.read_text(rel) if rel else None

    def record(self, module: str) -> dict | None:
        if module not in self._records:
            rel = self.relpath(module)
            self._records[module] = module_record(rel, self.source.read_bytes(rel)) if rel else None
        return self._records[module]

    def model_modules(self) -> list[str]:
        """Short names of every ``vllm/model_executor/models/*.py`` file."""
        prefix = MODELS_PKG.replace(".", "/") + "/"
        out = []
        for rel in self.source.files():
            if rel.startswith(prefix) and rel.count("/") == prefix.count("/") and not rel.endswith("__init__.py"):
                out.append(rel[len(prefix) : -3])
        return out

    def require_model_file(self, name: str) -> str:
        module = f"{MODELS_PKG}.{name}"
        if self.relpath(module) is None:
            close = difflib.get_close_matches(name, self.model_modules(), n=5)
            raise UsageError(
                f"upstream {self.source.label} has no model file {module_relpath(module)}",
                hint=("did you mean: " + ", ".join(close)) if close else "check the model name against upstream's "
                "vllm/model_executor/models/ folder",
            )
        return module

    # -- registries ------------------------------------------------------------------------

    @cached_property
    def model_registry(self) -> dict[str, tuple[str, str, str]]:
        """Architecture -> (module, class, table) from upstream's ``registry.py`` dict literals."""
        text = self.text(f"{MODELS_PKG}.registry")
        tree = parse_source(text, "registry.py") if text else None
        out: dict[str, tuple[str, str, str]] = {}
        if tree is None:
            return out
        for node in tree.body:
            target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            value = getattr(node, "value", None)
            if not isinstance(value, ast.Dict) or not isinstance(target, ast.Name):
                continue
            for key, val in zip(value.keys, value.values):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(val, ast.Tuple)):
                    continue
                parts = [e.value for e in val.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if len(parts) != 2 or len(val.elts) != 2:
                    continue
                mod = parts[0] if "." in parts[0] else f"{MODELS_PKG}.{parts[0]}"
                out.setdefault(key.value, (mod, parts[1], target.id))
        return out

    @cached_property
    def config_classes(self) -> dict[str, list[ConfigClass]]:
        """Config class name -> definitions in upstream's config modules (with their model_type)."""
        prefix = CONFIGS_PKG.replace(".", "/") + "/"
        out: dict[str, list[ConfigClass]] = {}
        for rel in self.source.files():
            if not rel.startswith(prefix):
                continue
            module = rel[:-3].replace("/", ".").removesuffix(".__init__")
            tree = parse_source(self.source.read_bytes(rel), rel)
            if tree is None:
                continue
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    mt = _model_type_of(node)
                    bases = [b for b in (dotted(x) for x in node.bases) if b]
                    out.setdefault(node.name, []).append(ConfigClass(node.name, module, mt, bases))
        return out

    @cached_property
    def config_registry(self) -> dict[str, str]:
        """model_type -> config class name from upstream's ``_CONFIG_REGISTRY``."""
        text = self.text("vllm.transformers_utils.config")
        tree = parse_source(text, "config.py") if text else None
        out: dict[str, str] = {}
        if tree is None:
            return out
        for node in tree.body:
            target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            if not (isinstance(target, ast.Name) and target.id == "_CONFIG_REGISTRY"):
                continue
            value = getattr(node, "value", None)
            if isinstance(value, ast.Call):
                for kw in value.keywords:
                    if kw.arg and isinstance(kw.value, ast.Constant):
                        out[kw.arg] = str(kw.value.value)
                value = value.args[0] if value.args else None
            if isinstance(value, ast.Dict):
                for k, v in zip(value.keys, value.values):
                    if isinstance(k, ast.Constant):
                        out[str(k.value)] = v.value if isinstance(v, ast.Constant) else (dotted(v) or "")
        return out

    def find_config_class(self, name: str) -> ConfigClass | None:
        found = self.config_classes.get(name) or []
        return found[0] if found else None


def _model_type_of(node: ast.ClassDef) -> str | None:
    for stmt in node.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == "model_type" for t in targets):
                if isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                    return stmt.value.value
    return None


# -- resolve ------------------------------------------------------------------------------------

_DISPLAY = re.compile(r"Inference-only\s+(.+?)\s+model", re.I)


def _hf_config_calls(tree: ast.Module) -> list[str]:
    """Names passed to ``get_hf_config(X)`` / ``get_hf_config((X, Y))``, in order of appearance."""
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (dotted(node.func) or "").endswith("get_hf_config") and node.args:
            arg = node.args[0]
            elts = arg.elts if isinstance(arg, ast.Tuple) else [arg]
            for e in elts:
                name = dotted(e)
                if name and name not in out:
                    out.append(name)
    return out


def _display_name(text: str, tree: ast.Module, fallback: str) -> str:
    doc = ast.get_docstring(tree) or ""
    m = _DISPLAY.search(doc) or _DISPLAY.search(text[:4000])
    return m.group(1).strip() if m else fallback


def read_hf_config(path: str | None) -> dict | None:
    if not path:
        return None
    p = Path(path).expanduser()
    try:
        data = json.loads(p.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"--hf-config file not found: {p}", hint="pass the model's config.json") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read --hf-config {p}: {exc}", hint="pass the model's config.json") from exc
    if not isinstance(data, dict):
        raise UsageError(f"--hf-config {p} is not a JSON object", hint="pass the model's config.json")
    check_hf_config(data, p)
    return data


def check_hf_config(data: dict, where: object) -> None:
    """The fields a migration reads from config.json end up in the plugin's code as literals:
    they must be plain names (a downloaded config.json is untrusted input)."""
    model_type = data.get("model_type")
    if model_type is not None and not names.matches(names.MODEL_TYPE, model_type):
        raise UsageError(f"--hf-config {where}: model_type must be a name of letters, digits and _ . -, "
                         f"got {model_type!r:.100}", hint="pass the model's own config.json, unedited")
    archs = data.get("architectures")
    if archs is not None and (not isinstance(archs, list) or not all(names.is_identifier(a) for a in archs)):
        raise UsageError(f"--hf-config {where}: architectures must be a list of class names, got {archs!r:.100}",
                         hint="pass the model's own config.json, unedited")


def _choose_archs(archs: dict[str, tuple], chosen: list[str]) -> list[str]:
    """Architectures picked by ``--arch`` (an architecture or a class name); unknown ones refused."""
    out: list[str] = []
    for want in chosen:
        hits = [want] if want in archs else [a for a, (_, c, _) in archs.items() if c == want]
        if not hits:
            raise UsageError(
                f"--arch {want!r} is not an architecture or class of this model file",
                hint="choose from: " + ", ".join(sorted(archs)) if archs else "upstream registers none for it",
            )
        out += [a for a in sorted(hits) if a not in out]
    return out


def _class_levels(tree: ast.Module, cls: str) -> list[set[str]]:
    """Names read in the body of ``cls``, then in its same-file bases, level by level."""
    defs = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    seen: set[str] = set()
    level = [cls] if cls in defs else []
    out: list[set[str]] = []
    while level:
        seen.update(level)
        out.append({n.id for c in level for n in ast.walk(defs[c]) if isinstance(n, ast.Name)})
        level = [b for c in level for b in (dotted(x) for x in defs[c].bases) if b in defs and b not in seen]
    return out


def resolve(up: Upstream, name: str, hf_config: dict | None = None, archs: list[str] | None = None,
            all_archs: bool = False) -> dict:
    """The design card's placeholders for ``name``; ``ambiguous`` lists what needs a human.

    ``archs`` (``--arch``, architectures or class names) or ``all_archs`` (``--all-archs``) answer
    the question which of several peer architectures of one file to migrate and register.
    """
    check_model_name(name)
    module = up.require_model_file(name)
    text = up.text(module) or ""
    tree = parse_source(text, module)
    if tree is None:
        raise UsageError(f"upstream {module} does not parse", hint="check the upstream checkout")
    ambiguous: dict[str, list] = {}
    notes: list[str] = []

    archs_of_file = {a: (m, c, t) for a, (m, c, t) in up.model_registry.items() if m == module}
    classes = sorted({c for _, c, _ in archs_of_file.values()})
    defined = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    chosen: list[str] | None = None
    if archs:
        chosen = _choose_archs(archs_of_file, archs)
    elif all_archs:
        chosen = sorted(archs_of_file)
    elif hf_config and hf_config.get("architectures"):
        chosen = [a for a in hf_config["architectures"] if a in archs_of_file] or None
        if chosen is None:
            notes.append("none of config.json's architectures maps to this file in upstream's registry")
    if chosen:
        classes = sorted({archs_of_file[a][1] for a in chosen})
    model_class = classes[0] if len(classes) == 1 else None
    if len(classes) > 1 and chosen:
        model_class = archs_of_file[chosen[0]][1]  # the first answer is the main class
        notes.append(f"{len(classes)} classes chosen; ModelClassName is {model_class}, every one is registered")
    elif len(classes) > 1:
        ambiguous["ModelClassName"] = classes
    if not classes:
        notes.append("upstream's registry maps no architecture to this file (a helper module?)")
    archs = archs_of_file

    imports = binding_map(tree, module, from_only=True)
    model_type = hf_config.get("model_type") if hf_config else None
    used = [_class_levels(tree, c) for c in classes] if chosen else None
    config_class, config_module = _pick_config(up, tree, imports, model_type, name, ambiguous, used)
    if model_type is None and config_class:
        cc = up.find_config_class(config_class)
        model_type = cc.model_type if cc else None
        if model_type is None:
            notes.append(
                f"model_type of {config_class} is not in upstream vLLM's config modules (a transformers "
                "class?); pass --hf-config config.json"
            )
    if model_type is None and config_class is None:
        notes.append("no config class found; pass --hf-config config.json")

    return {
        "model_name": name,
        "model_name_lower": name.lower(),
        "MODEL_DISPLAY_NAME": _display_name(text, tree, (model_class or name).split("For")[0]),
        "ModelClassName": model_class,
        "model_type": model_type,
        "ConfigClassName": config_class,
        "config_module": config_module,
        "architectures": sorted(a for a, (_, c, _) in archs.items() if c in classes),
        "classes": {a: c for a, (_, c, _) in sorted(archs.items())},
        "classes_missing_upstream": sorted(c for c in classes if c not in defined),
        "upstream_files": [up.source.path_of(up.relpath(module) or "")],
        "upstream_module": module,
        "upstream_version": up.version,
        "ambiguous": ambiguous,
        "notes": notes,
    }


def _pick_config(
    up: Upstream, tree: ast.Module, imports: dict[str, str], model_type: str | None, name: str, ambiguous: dict,
    used: list[list[set[str]]] | None = None,
) -> tuple[str | None, str | None]:
    def source_of(alias: str) -> tuple[str, str] | None:
        where = imports.get(alias)
        if not where:
            return None
        mod, _, real = where.partition(":")
        if mod.startswith("transformers") or mod.startswith(CONFIGS_PKG) or up.find_config_class(real):
            return real, mod
        return None

    called = [c for c in _hf_config_calls(tree) if source_of(c)]
    candidates = called or [a for a in imports if a.endswith("Config") and source_of(a)]
    found = [source_of(a) for a in candidates]
    found = [f for f in found if f]
    if used and not model_type:
        # each chosen class (or its nearest same-file base naming one) names the same single
        # candidate, e.g. ``config: XConfig = vllm_config.model_config.hf_config``
        picks = set()
        for levels in used:
            hits = next(([a for a in candidates if source_of(a) and a in names] for names in levels
                         if any(source_of(a) and a in names for a in candidates)), [])
            picks.add(hits[0] if len(hits) == 1 else None)
        if len(picks) == 1 and None not in picks:
            return source_of(picks.pop())
    if model_type:
        typed = [f for f in found if (up.find_config_class(f[0]) or ConfigClass("", "", None)).model_type == model_type]
        if typed:
            found = typed
        else:
            reg = up.config_registry.get(model_type)
            if reg and up.find_config_class(reg):
                return reg, up.find_config_class(reg).module
    if len(found) > 1 and not called:
        # several config classes imported: keep the top-level ones (not *Text*/*Vision*/*Audio* parts)
        top = [f for f in found if not re.search(r"(Text|Vision|Audio|Encoder|Decoder)Config$", f[0])]
        found = top or found
    if len(found) > 1:
        exact = [f for f in found if (up.find_config_class(f[0]) or ConfigClass("", "", None)).model_type == name]
        if len(exact) == 1:
            return exact[0]
        ambiguous["ConfigClassName"] = [f[0] for f in found]
        return None, None
    if not found and not model_type:
        # a file that never names its config (funaudiochat reads hf_config untyped): the config upstream's
        # registry holds under the file's own name, which vLLM needs registered to read the checkpoint
        reg = up.config_registry.get(name)
        cc = up.find_config_class(reg) if reg else None
        if cc is not None:
            return reg, cc.module
    return found[0] if found else (None, None)
