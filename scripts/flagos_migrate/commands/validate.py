"""Orchestration of ``validate_migration.py``: arguments -> files -> findings -> report.

The per-file checks live in ``analysis``; what needs the whole plugin (registrations in
``__init__.py``, config bridges against the model that uses them) is judged here.
"""

from __future__ import annotations

import ast
import gc
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from flagos_migrate.analysis import AnalysisContext, analyze_source, parse_text
from flagos_migrate.analysis.bridges import bridge_field_findings
from flagos_migrate.analysis.inherited import framework_findings
from flagos_migrate.astutil import Walk, parse_source
from flagos_migrate.catalog.findings import Finding, sort_key
from flagos_migrate.cli import UsageError
from flagos_migrate.pinned.api_index import PinnedApis, available_versions, find_index_file
from flagos_migrate.pinned.target import PinnedTarget, resolve_target
from flagos_migrate.plugin.provenance import RECORD_DIR, all_records
from flagos_migrate.plugin.tree import PACKAGE, PluginTree, RegistrationFile, parse_registrations


@dataclass
class Report:
    pinned: str
    plugin: str
    files: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0


# -- choosing files ----------------------------------------------------------------------------


def resolve_model_file(tree: PluginTree, model: str) -> Path:
    """A path, or a bare model name meaning vllm_fl/models/NAME.py."""
    if len(model) > 4096 or any(len(part) > 255 for part in model.split("/")) or "\x00" in model:
        raise UsageError(f"model file or name is too long or holds a NUL byte: {model[:60]!r}... "
                         f"({len(model)} characters)", hint="pass a model name or a path to its file")
    p = Path(model).expanduser()
    if p.suffix == ".py" or "/" in model or p.exists():
        p = _in_cwd_or_plugin(tree, model)
        if not p.exists():
            raise UsageError(f"model file not found: {model}",
                             hint="pass a path to the model file or a model name (vllm_fl/models/NAME.py)")
        if not p.is_file():
            raise UsageError(f"model file is not a file: {model}")
        return p
    cand = tree.package_dir / "models" / f"{model}.py"
    if not cand.is_file():
        known = ", ".join(f.stem for f in tree.model_files()) or "none"
        raise UsageError(f"no model file {cand} for model name {model!r}", hint=f"model files in the plugin: {known}")
    return cand


def _in_cwd_or_plugin(tree: PluginTree, path: str) -> Path:
    """A relative path is taken from the working directory, else from the plugin checkout."""
    p = Path(path).expanduser()
    if not p.exists() and not p.is_absolute() and (tree.root / p).exists():
        return tree.root / p
    return p


def _existing_file(tree: PluginTree, path: str, what: str) -> Path:
    p = _in_cwd_or_plugin(tree, path)
    if not p.is_file():
        raise UsageError(f"{what} not found: {path}", hint=f"pass an existing {what} or leave it out")
    return p


def registered_modules(reg: RegistrationFile) -> list[str]:
    return sorted({m.module for m in reg.models if m.module})


def all_files(tree: PluginTree, reg: RegistrationFile) -> list[Path]:
    """--all: every model file the plugin holds or registers, and every config bridge."""
    files = set(tree.model_files())
    for mod in registered_modules(reg):
        path = tree.module_path(mod)
        if path is not None:
            files.add(path)
    cfg_dir = tree.package_dir / "configs"
    if cfg_dir.is_dir():
        files.update(p for p in cfg_dir.glob("*.py") if p.name != "__init__.py")
    return sorted(files)


def module_for(tree: PluginTree, path: Path) -> str:
    try:
        return tree.module_of(path)
    except ValueError:  # a file outside the plugin (about to be migrated into models/)
        return f"{PACKAGE}.models.{path.stem}"


def display(tree: PluginTree, path: Path) -> str:
    try:
        return path.resolve().relative_to(tree.root.resolve()).as_posix()
    except ValueError:
        return str(path)


# -- registration (check 5) ----------------------------------------------------------------------


def check_registrations(tree: PluginTree, apis: PinnedApis, reg: RegistrationFile, shown: str,
                        only_modules: set[str] | None = None) -> list[Finding]:
    """Judge each register_model / _CONFIG_REGISTRY entry on its own.

    ``only_modules``: judge only model entries pointing at these modules (single-file mode);
    config entries are always judged.
    """
    out: list[Finding] = []
    if reg.parse_error:
        return [Finding("P20", shown, 1, 0, reg.parse_error)]
    if not reg.has_register_model and not reg.models:
        out.append(Finding("P10", shown, 1, 0, "no register_model() function and no ModelRegistry.register_model "
                           "call: the plugin registers no model", fix="add register_model() with one guarded "
                           "block per model (see plugin.md)", data={"kind": "no-register-model"}))
    for line, col, why in reg.irregular:
        out.append(Finding("P10", shown, line, col, f"{why}: a registration must be one plain statement of "
                           "string literals (input pasted into code looks like this)",
                           fix="rewrite the block as migrate_model.py apply writes it, and check where the "
                           "value came from", data={"kind": "irregular-registration"}))
    registered = {m.arch for m in reg.models}
    for m in reg.models:
        if only_modules is not None and m.module not in only_modules:
            continue
        # P25: upstream hooks on the arch; P38: a speculative method the pinned vLLM lacks; P43: pinned code
        # outside the model file that computes otherwise
        syntax = _plugin_model_tree(tree, m.module)  # parsed once: its imports and itself both go to P43
        out.extend(framework_findings(m.arch, shown, m.line, m.col, reg.config_hooks, apis.version, registered,
                                      _plugin_models_imported(syntax), syntax))
        if m.module is None:
            continue  # a dynamic target: cannot judge
        top = m.module.split(".")[0]
        if top != PACKAGE:
            if apis.has_module(m.module) is False:
                out.append(Finding("P10", shown, m.line, m.col, f"register_model({m.arch!r}): module {m.module} "
                                   "does not exist in the pinned vLLM", data={"arch": m.arch, "module": m.module,
                                                                            "class": m.cls}))
            continue
        path = tree.module_path(m.module)
        if path is None:
            out.append(Finding("P10", shown, m.line, m.col, f"register_model({m.arch!r}): module {m.module} not "
                               "found in the plugin", fix=f"create {m.module.replace('.', '/')}.py or fix the path",
                               data={"arch": m.arch, "module": m.module, "class": m.cls}))
            continue
        if not apis.has_module(m.module):
            continue  # the file exists but does not parse: reported as P20 on that file
        if not m.cls:
            out.append(Finding("P10", shown, m.line, m.col, f"register_model({m.arch!r}): target {m.raw!r} has no "
                               "':ClassName'", data={"arch": m.arch, "module": m.module, "class": None}))
            continue
        sym = apis.resolve(m.module, m.cls)
        if sym is None:
            out.append(Finding("P10", shown, m.line, m.col, f"register_model({m.arch!r}): class {m.cls} is not "
                               f"defined in {m.module}", data={"arch": m.arch, "module": m.module, "class": m.cls}))
    for c in reg.configs:
        out.extend(_check_config_registration(tree, apis, c, shown))
    return out


def _plugin_model_tree(tree: PluginTree, module: str | None) -> ast.Module | None:
    """The parsed plugin file of ``module`` (a model module of the plugin), else None."""
    path = tree.module_path(module) if module and module.startswith(f"{PACKAGE}.models.") else None
    return parse_source(path.read_text(encoding="utf-8", errors="replace"), str(path)) if path and path.is_file() else None


def _plugin_models_imported(syntax: ast.Module | None) -> set[str]:
    """The plugin model modules (short names: ``glm4_1v``) a parsed plugin model file imports from."""
    prefix = f"{PACKAGE}.models."
    return {n.module[len(prefix):] for n in ast.walk(syntax) if isinstance(n, ast.ImportFrom) and n.module
            and n.module.startswith(prefix) and "." not in n.module[len(prefix):]} if syntax else set()


def _check_config_registration(tree: PluginTree, apis: PinnedApis, c, shown: str) -> list[Finding]:
    data = {"model_type": c.model_type, "class": c.cls, "module": c.module}
    if not c.module:
        return []
    sym = apis.resolve(c.module, c.cls)
    if sym is None:
        where = "the plugin" if c.module.startswith(PACKAGE) else "the pinned version"
        return [Finding("P10", shown, c.line, c.col, f"_CONFIG_REGISTRY[{c.model_type!r}]: class {c.cls} not found "
                        f"in {c.module} ({where})", data=data)]
    if sym.kind != "class":
        return []
    model_type = config_model_type(apis, sym)
    if model_type is not None and model_type != c.model_type:
        data["class_model_type"] = model_type
        return [Finding("P10", shown, c.line, c.col, f"_CONFIG_REGISTRY[{c.model_type!r}] = {c.cls}, but "
                        f"{c.cls}.model_type is {model_type!r}", fix="use the model_type of the HF config.json "
                        "for both", data=data)]
    return []


def config_model_type(apis: PinnedApis, sym) -> str | None:
    """The literal ``model_type`` class attribute of a config class (first in the MRO), if readable."""
    classes, _ = apis.mro(sym)
    for s, rec in classes:
        if "model_type" in rec.get("attrs", ()):
            idx = apis.index_for(s.module)
            lit = (idx.module(s.module) or {}).get("classes", {}).get(s.name, {}).get("consts", {}).get("model_type")
            if lit is not None:
                return lit
            return _literal_class_attr(apis, s, "model_type")
    return None


def _literal_class_attr(apis: PinnedApis, sym, attr: str) -> str | None:
    """Read a string class attribute from the plugin's source file (plugin classes only)."""
    path = _PLUGIN_FILES.get(sym.module)
    if path is None:
        return None
    _, tree, _ = _parsed(path)
    if tree is None:
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == sym.name:
            for stmt in node.body:
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                    if any(isinstance(t, ast.Name) and t.id == attr for t in targets):
                        v = stmt.value
                        if isinstance(v, ast.Constant) and isinstance(v.value, str):
                            return v.value
    return None


_PLUGIN_FILES: dict[str, Path] = {}
# every file of one run, read and parsed once: the plugin index, every check and the cross-file
# checks share the tree (path -> (bytes, tree or None, P20 finding or None))
_PARSED: dict[Path, tuple[bytes, ast.Module | None, Finding | None]] = {}
# each tree of the run walked once (path -> Walk): the plugin index and every check read it
_WALKS: dict[Path, Walk] = {}


def _parsed(path: Path) -> tuple[bytes, ast.Module | None, Finding | None]:
    found = _PARSED.get(path)
    if found is None:
        data = path.read_bytes()
        tree, err = parse_text(data, str(path))
        found = _PARSED[path] = (data, tree, err)
    return found


# -- records of migrate_model.py apply -----------------------------------------------------------

_RECORDED_MODEL = re.compile(r"(?P<arch>\w+) -> (?P<module>[\w.]+):(?P<cls>\w+)( \(line \d+\))?\Z")
_RECORDED_CONFIG = re.compile(r'_CONFIG_REGISTRY\["(?P<type>[^"]+)"\] = .*\Z|config (?P<type2>\S+) -> .*\Z')


def check_records(tree: PluginTree, reg: RegistrationFile, shown: str, only: set[str] | None) -> list[Finding]:
    """A model that ``apply`` migrated (its record says what it registered) must still be registered."""
    out: list[Finding] = []
    archs, types = {m.arch for m in reg.models}, {c.model_type for c in reg.configs}
    for rec in all_records(tree.package_dir):
        name = rec.get("model")
        where = f"{RECORD_DIR}/{name}.json"
        for line in rec.get("registration") or []:
            m = _RECORDED_MODEL.match(line)
            if m and (only is None or m["module"] in only) and m["arch"] not in archs:
                out.append(Finding("P10", shown, 1, 0, f"{m['arch']} was migrated (record {where}) but is not "
                                   f"registered: no register_model({m['arch']!r}, ...)",
                                   fix=f"run migrate_model.py apply {name} again (it adds the missing block)",
                                   data={"kind": "unregistered-migration", "arch": m["arch"], "model": name}))
            c = _RECORDED_CONFIG.match(line)
            mt = c and (c["type"] or c["type2"])
            if mt and only is None and mt not in types:
                out.append(Finding("P10", shown, 1, 0, f"config {mt!r} was bridged (record {where}) but is not "
                                   "registered in _CONFIG_REGISTRY", fix=f"run migrate_model.py apply {name} again",
                                   data={"kind": "unregistered-migration", "model_type": mt, "model": name}))
    return out


# -- the run -----------------------------------------------------------------------------------


def load_apis(pinned: PinnedTarget) -> PinnedApis:
    try:
        find_index_file("vllm", pinned.vllm)
    except UsageError:
        known = ", ".join(available_versions("vllm")) or "none"
        raise UsageError(f"no API index for vLLM {pinned.vllm} (available: {known})",
                         hint=f"build it: python3 scripts/build_api_index.py vllm=={pinned.vllm} "
                         "(its transformers index comes along)") from None
    return PinnedApis.load(pinned)


def analyze_file(tree: PluginTree, apis: PinnedApis, path: Path) -> list[Finding]:
    shown = display(tree, path)
    try:
        data, ptree, _ = _parsed(path)
    except OSError as exc:
        return [Finding("P20", shown, 1, 0, f"cannot read file: {exc.strerror or exc}")]
    ctx = AnalysisContext(apis, module_for(tree, path), shown)
    return analyze_source(data, ctx, tree=ptree, walked=_WALKS.get(path))


def validate(plugin: str, model: str | None = None, config: str | None = None, init: str | None = None,
             all_models: bool = False, pinned: PinnedTarget | str | None = None,
             hf_config: str | None = None) -> Report:
    """``pinned``: the target (a vLLM version stands for its target); None: what the plugin declares.
    ``hf_config``: a checkpoint's config.json, checked for keys the pinned config class does not take (P33)."""
    started = time.perf_counter()
    tree = PluginTree(plugin)
    if not isinstance(pinned, PinnedTarget):
        pinned = resolve_target(pinned, tree.root)
    base_apis = load_apis(pinned)
    _PLUGIN_FILES.clear()
    _PLUGIN_FILES.update({tree.module_of(p): p for p in tree.python_files()})
    _PARSED.clear()
    _WALKS.clear()
    parsed = {}
    # The trees of every file stay alive for the whole run: millions of nodes the cyclic collector
    # would walk again at every full collection (two thirds of the parse time on the corpus). They
    # hold no cycles (refcounting frees them), so they are parsed with the collector off and then
    # kept out of its generations until the run ends.
    gc.disable()
    try:
        for path in _PLUGIN_FILES.values():
            try:
                data, ptree, _ = _parsed(path)
            except OSError:
                continue
            parsed[path] = (data, ptree)
            if ptree is not None:
                _WALKS[path] = Walk(ptree)
    finally:
        gc.enable()
    gc.freeze()
    try:
        report = _validate_parsed(tree, pinned, base_apis, parsed, started, model, config, init, all_models)
        if hf_config:
            report.findings.extend(hf_config_findings(tree, base_apis, hf_config, init))
            report.findings.sort(key=sort_key)
        return report
    finally:
        gc.unfreeze()
        _WALKS.clear()


def _validate_parsed(tree: PluginTree, pinned: PinnedTarget, base_apis: PinnedApis, parsed: dict, started: float,
                     model: str | None, config: str | None, init: str | None, all_models: bool) -> Report:
    apis = base_apis.with_package(tree.index(parsed=parsed, walks=_WALKS))
    init_path = _existing_file(tree, init, "__init__ file") if init else tree.init_file
    reg = parse_registrations(init_path)
    report = Report(pinned=pinned.vllm, plugin=str(tree.root))

    if all_models:
        files = all_files(tree, reg)
        if not files and not reg.models:
            raise UsageError(f"the plugin at {tree.root} holds no model files and registers no model",
                             hint="nothing to validate: migrate a model first (vllm_fl/models/<name>.py)")
        only = None
    else:
        if model is None:
            raise UsageError("give a MODEL_FILE (path or model name) or --all")
        files = [resolve_model_file(tree, model)]
        if config:
            files.append(_existing_file(tree, config, "config file"))
        only = {module_for(tree, files[0])}

    for path in files:
        report.files.append(display(tree, path))
        report.findings.extend(analyze_file(tree, apis, path))
    report.findings.extend(cross_file_checks(tree, apis, files))

    shown_init = display(tree, init_path)
    report.files.append(shown_init)
    report.findings.extend(check_registrations(tree, apis, reg, shown_init, only))
    if init is None and not reg.parse_error:
        report.findings.extend(check_records(tree, reg, shown_init, only))
    if not all_models and reg.models and not any(m.module in only for m in reg.models if m.module):
        report.findings.append(Finding("P10", shown_init, 1, 0, f"{files[0].name} is not registered: no "
                                       f"register_model(...) points at {next(iter(only))}", severity="warning",
                                       data={"module": next(iter(only))}))
    report.findings.sort(key=sort_key)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def hf_config_findings(tree: PluginTree, apis: PinnedApis, hf_config: str, init: str | None) -> list[Finding]:
    """P33 over a checkpoint's config.json: the keys the config class the pinned vLLM builds does not take;
    P42: its rope parameter sets the plugin's back-ported get_rope refuses."""
    from flagos_migrate.analysis.config_keys import drift_findings
    from flagos_migrate.migrate.tf5_configs import Transformers5, open_transformers5
    from flagos_migrate.migrate.upstream import read_hf_config

    data = read_hf_config(hf_config)
    path = Path(hf_config).expanduser()
    reg = parse_registrations(_existing_file(tree, init, "__init__ file") if init else tree.init_file)
    registered = next((c for c in reg.configs if c.model_type == data.get("model_type")), None)
    from flagos_migrate.analysis.rope_refusals import ROPE_MODULE, line_in, rope_findings

    source = open_transformers5()
    text = path.read_text("utf-8")
    out = drift_findings(apis, data, str(path), text, registered, _PLUGIN_FILES,
                         Transformers5(source) if source is not None else None)
    if ROPE_MODULE in _PLUGIN_FILES:  # P42: the plugin's models build their rope through the back-port
        out.extend(rope_findings(data, str(path), line_in(text)))
    return out


def cross_file_checks(tree: PluginTree, apis: PinnedApis, files: list[Path]) -> list[Finding]:
    """Checks that need two files: config bridges against the pinned parents of their models."""
    out: list[Finding] = []
    for path in files:
        try:
            text, ptree, _ = _parsed(path)
        except OSError:
            continue
        if ptree is None or b"configs" not in text:  # imports no config bridge (relative ones included)
            continue
        out.extend(bridge_field_findings(ptree, AnalysisContext(apis, module_for(tree, path), display(tree, path)),
                                         _PLUGIN_FILES, walked=_WALKS.get(path)))
    return out
