"""Build the static API index of a library from its source, with ``ast`` and without importing it.

``ast`` was chosen over Griffe after measuring: vLLM 0.13.0 (1179 modules) indexes in a few
seconds with the standard library alone, and the validator then needs no extra dependency.

The index is plain data (see ``api_index.py`` for its reader):

    {"format": 2, "records": 3, "package": "vllm", "version": "0.13.0", "source": "...", "command": "...",
     "modules": {"vllm.attention.layer": "<MODULE as JSON text>", ...}}

    MODULE = {"file": "vllm/attention/layer.py", "pkg": false, "lazy": false,
              "defs": {name: "class" | "function" | "var"},
              "imports": {alias: "module" | "module:name"},   # bindings made by import statements
              "star": [module, ...], "all": [names] | null,
              "tc": {"defs": {...}, "imports": {...}, "star": [...]},   # only under TYPE_CHECKING
              "classes": {name: CLASS}, "functions": {name: SIG}, "ops": [custom op names],
              "lazymap": {name: "module:name"}}   # what a module-level __getattr__ serves
    CLASS = {"line": n, "bases": ["nn.Module", ...], "methods": {name: SIG}, "attrs": [names],
             "dc": true when a dataclass (then "fields": [[name, has_default], ...]),
             "reads": {method: [self.X attributes read]}, "sets": {method: [self.X assigned]},
             "guards": {method: [X of getattr(self, "X", d) / hasattr(self, "X")]},
             "scalls": {method: [m of self.m(...) calls]},
             "cfg": [X of config.X read directly anywhere in the class],
             "cfgv": {"config" | "text_config" | "vision_config": [X]}}   # the same reads by the config
                   # object they go through (config/hf_config, text_config/hf_text_config, vision_config)
    SIG = {"p": [positional names], "po": n positional-only, "r": n required positionals,
           "k": [keyword-only], "kr": [required keyword-only], "a": 1 if *args, "kw": 1 if **kwargs,
           "d": [decorator names] when decorated}
    (CLASS also has "decos": [decorator names] when decorated, "dyn": true when it sets attributes
    with computed names, so that its members cannot be listed.)
"""

from __future__ import annotations

import ast
import json
import sys
import time

from flagos_migrate.astutil import (  # noqa: F401  (re-exported: the index's readers import them from here)
    decorator_names,
    dotted,
    is_type_checking_test,
    parse_source,
    resolve_relative,
    signature_of,
    string_arg,
    walk,
)
from flagos_migrate.pinned.sources import SourceTree, module_name

FORMAT = 2
#: what a module record holds, raised when records gain a field readers use (3: config reads by
#: object, ``cfgv``); an index built by an older builder still loads, but one from a newer builder
#: for the same version wins over it (a stale cache must not shadow the bundled index; 4: ``scalls``
#: for every class, not only those with guards)
RECORDS = 4

# Names under which code reads a HuggingFace config object; ``config.X`` on these is a direct read.
CONFIG_VARIABLES = frozenset({"config", "hf_config", "text_config", "hf_text_config", "vision_config"})
# the config object a read goes through (P15 attributes each field to the bridge that must set it)
CONFIG_OBJECT = {"config": "config", "hf_config": "config", "text_config": "text_config",
                 "hf_text_config": "text_config", "vision_config": "vision_config"}


def custom_op_names(tree: ast.AST, nodes: list[ast.AST] | None = None) -> list[str]:
    """Op names registered with ``CustomOp.register("x")`` or ``direct_register_custom_op(op_name=...)``
    (``nodes``: the tree walked already)."""
    names = set()
    for node in walk(tree) if nodes is None else nodes:
        if not isinstance(node, ast.Call):
            continue
        func = dotted(node.func) or ""
        last = func.rsplit(".", 1)[-1]
        if func.endswith("CustomOp.register") or func.endswith("CustomOp.register_oot"):
            name = string_arg(node, "name", 0)
        elif last == "direct_register_custom_op":
            name = string_arg(node, "op_name", 0)
        else:
            continue
        if name:
            names.add(name)
    return sorted(names)


class _MethodScan:
    """Collect ``self.X`` reads and writes and direct ``config.X`` reads inside one function
    (every node of it: decorators, defaults and nested functions included)."""

    def __init__(self) -> None:
        self.reads: set[str] = set()
        self.sets: set[str] = set()
        self.config_reads: set[str] = set()
        self.config_reads_by: dict[str, set[str]] = {}  # config object -> fields read through it
        self.dynamic = False  # setattr(self, <computed name>, ...) or self.__dict__: members unknowable
        self.guards: set[str] = set()  # getattr(self, "x", default) / hasattr(self, "x"): reads that tolerate absence
        self.self_calls: set[str] = set()  # self.m(...): methods this one calls

    def visit(self, func: ast.AST, walked=None) -> None:
        """``walked``: ``astutil.Walk`` of the tree, when the caller has it (the answer is sets:
        the order the nodes come in does not matter)."""
        if walked is not None:
            for node in walked.below(func, ast.Attribute):
                self._attribute(node)
            for node in walked.below(func, ast.Call):
                self._call(node)
            return
        # one flat walk, not an ast.NodeVisitor: the plugin index scans every method of every file
        for node in walk(func):
            kind = type(node)
            if kind is ast.Attribute:
                self._attribute(node)
            elif kind is ast.Call:
                self._call(node)

    def _attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name):
            if node.value.id == "self":
                (self.sets if isinstance(node.ctx, ast.Store) else self.reads).add(node.attr)
                if node.attr == "__dict__":
                    self.dynamic = True
            elif node.value.id in CONFIG_VARIABLES and isinstance(node.ctx, ast.Load):
                self._config_read(node.value.id, node.attr)
        elif (
            isinstance(node.value, ast.Attribute)
            and node.value.attr in CONFIG_VARIABLES
            and isinstance(node.ctx, ast.Load)
        ):
            self._config_read(node.value.attr, node.attr)
        elif (
            isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "get_text_config"
            and isinstance(node.ctx, ast.Load)
        ):
            self._config_read("text_config", node.attr, flat=False)

    def _config_read(self, via: str, attr: str, flat: bool = True) -> None:
        if flat:
            self.config_reads.add(attr)
        self.config_reads_by.setdefault(CONFIG_OBJECT[via], set()).add(attr)

    def _call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
            self.self_calls.add(func.attr)
        elif (isinstance(func, ast.Name) and ((func.id == "getattr" and len(node.args) == 3)
                                              or (func.id == "hasattr" and len(node.args) == 2))
              and isinstance(node.args[0], ast.Name) and node.args[0].id == "self"
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            self.guards.add(node.args[1].value)
        # setattr(self, "x", ...) assigns as well
        if (
            isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "self"
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            self.sets.add(node.args[1].value)
        elif (
            isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "self"
        ):
            self.dynamic = True


def class_record(node: ast.ClassDef, walked=None) -> dict:
    decorators = decorator_names(node)
    is_dataclass = any(d.rsplit(".", 1)[-1] == "dataclass" or d.endswith("config") for d in decorators)
    methods: dict[str, dict] = {}
    attrs: set[str] = set()
    fields: list[list] = []
    reads: dict[str, list[str]] = {}
    sets: dict[str, list[str]] = {}
    guards: dict[str, list[str]] = {}
    self_calls: dict[str, list[str]] = {}
    cfg: set[str] = set()
    cfg_by: dict[str, set[str]] = {}
    dynamic = False
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decs = decorator_names(stmt)
            static = "staticmethod" in decs
            if any(d == "property" or d.endswith(".setter") or d.endswith("cached_property") for d in decs):
                attrs.add(stmt.name)
            methods[stmt.name] = signature_of(stmt.args, drop_first=not static)
            if decs:
                methods[stmt.name]["d"] = decs
            scan = _MethodScan()
            scan.visit(stmt, walked)
            if scan.reads:
                reads[stmt.name] = sorted(scan.reads)
            if scan.guards:
                guards[stmt.name] = sorted(scan.guards)
            if scan.self_calls:
                self_calls[stmt.name] = sorted(scan.self_calls)
            if scan.sets:
                sets[stmt.name] = sorted(scan.sets)
                attrs.update(scan.sets)
            cfg |= scan.config_reads
            for via, attrs_read in scan.config_reads_by.items():
                cfg_by.setdefault(via, set()).update(attrs_read)
            dynamic = dynamic or scan.dynamic
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            attrs.add(stmt.target.id)
            annotation = dotted(stmt.annotation) or ""
            if is_dataclass and not annotation.endswith("ClassVar"):
                fields.append([stmt.target.id, stmt.value is not None])
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                for name in _target_names(target):
                    attrs.add(name)
        elif isinstance(stmt, ast.ClassDef):
            attrs.add(stmt.name)
    record = {
        "line": node.lineno,
        "bases": [b for b in (dotted(base) for base in node.bases) if b],
        "methods": methods,
        "attrs": sorted(attrs),
    }
    if dynamic:
        record["dyn"] = True
    if decorators:
        record["decos"] = decorators  # a decorator may replace __init__ (e.g. support_torch_compile)
    if is_dataclass:
        record["dc"] = True
        record["fields"] = fields
    if reads:
        record["reads"] = reads
    if sets:
        record["sets"] = sets
    if guards:  # P12: a read that runs only behind a guard
        record["guards"] = guards
    if self_calls:  # P12: which methods run a read (a helper that only overridden methods call is dead)
        record["scalls"] = self_calls
    if cfg:
        record["cfg"] = sorted(cfg)
    if cfg_by:
        record["cfgv"] = {via: sorted(attrs_read) for via, attrs_read in sorted(cfg_by.items())}
    return record


def _target_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        out: list[str] = []
        for elt in target.elts:
            out.extend(_target_names(elt))
        return out
    return []


def _literal_strings(node: ast.AST) -> list[str] | None:
    if isinstance(node, (ast.List, ast.Tuple)):
        vals = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        return vals
    return None


class _ModuleScan:
    """Walk a module's top-level statements (into if/try/with, not into defs)."""

    def __init__(self, name: str, is_package: bool, walked=None):
        self.name = name
        self.is_package = is_package
        self.walked = walked  # astutil.Walk of the tree, when the caller has it
        self.main = {"defs": {}, "imports": {}, "star": []}
        self.tc = {"defs": {}, "imports": {}, "star": []}
        self.classes: dict[str, dict] = {}
        self.functions: dict[str, dict] = {}
        self.all: list[str] | None = None
        self.lazy = False
        self.str_maps: dict[str, str] = {}  # top-level {"Name": "module[:attr]"} literals

    def scan(self, body: list[ast.stmt], section: dict) -> None:
        for stmt in body:
            self.statement(stmt, section)

    def statement(self, stmt: ast.stmt, section: dict) -> None:
        if isinstance(stmt, ast.If):
            if is_type_checking_test(stmt.test):
                self.scan(stmt.body, self.tc)
                self.scan(stmt.orelse, section)
            else:
                self.scan(stmt.body, section)
                self.scan(stmt.orelse, section)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            self.scan(stmt.body, section)
            for handler in stmt.handlers:
                self.scan(handler.body, section)
            self.scan(stmt.orelse, section)
            self.scan(stmt.finalbody, section)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            self.scan(stmt.body, section)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    section["imports"][alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    section["imports"][top] = top
        elif isinstance(stmt, ast.ImportFrom):
            source = (
                resolve_relative(self.name, self.is_package, stmt.level, stmt.module)
                if stmt.level
                else stmt.module or ""
            )
            for alias in stmt.names:
                if alias.name == "*":
                    section["star"].append(source)
                else:
                    section["imports"][alias.asname or alias.name] = f"{source}:{alias.name}"
        elif isinstance(stmt, ast.ClassDef):
            section["defs"][stmt.name] = "class"
            self.classes[stmt.name] = class_record(stmt, self.walked)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            section["defs"][stmt.name] = "function"
            self.functions[stmt.name] = signature_of(stmt.args)
            decs = decorator_names(stmt)
            if decs:
                self.functions[stmt.name]["d"] = decs  # a decorator may change the call signature
            if stmt.name == "__getattr__":
                self.lazy = True
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for name in _target_names(target):
                    section["defs"].setdefault(name, "var")
                    if name == "__all__" and stmt.value is not None:
                        values = _literal_strings(stmt.value)
                        if values is not None:
                            if isinstance(stmt, ast.AugAssign) and self.all is not None:
                                self.all.extend(values)
                            else:
                                self.all = values
                # transformers: sys.modules[__name__] = _LazyModule(...)
            if isinstance(stmt.value, ast.Call) and (dotted(stmt.value.func) or "").endswith("_LazyModule"):
                self.lazy = True
            if isinstance(stmt.value, ast.Dict):
                self._collect_str_map(stmt.value)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            # __all__.extend([...]) / __all__ += handled above
            func = stmt.value.func
            if (
                isinstance(func, ast.Attribute)
                and dotted(func.value) == "__all__"
                and func.attr == "extend"
                and stmt.value.args
                and self.all is not None
            ):
                values = _literal_strings(stmt.value.args[0])
                if values:
                    self.all.extend(values)

    def _collect_str_map(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values):
            if (
                isinstance(key, ast.Constant)
                and isinstance(key.value, str)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
                and " " not in value.value
                and ("." in value.value or ":" in value.value)
            ):
                self.str_maps[key.value] = value.value

    def lazy_map(self) -> dict[str, str]:
        """Targets that a module-level ``__getattr__`` serves, as ``module:name`` like imports.

        vLLM writes them as ``{"LLM": ".entrypoints.llm:LLM"}`` or
        ``{"Qwen3NextConfig": "vllm.transformers_utils.configs.qwen3_next"}``.
        """
        out = {}
        for key, value in self.str_maps.items():
            mod, _, attr = value.partition(":")
            if mod.startswith("."):
                level = len(mod) - len(mod.lstrip("."))
                mod = resolve_relative(self.name, self.is_package, level, mod.lstrip(".") or None)
            out[key] = f"{mod}:{attr or key}"
        return out

    def record(self, relpath: str, tree: ast.Module, text: bytes | str | None = None) -> dict:
        self.scan(tree.body, self.main)
        rec = {
            "file": relpath,
            "pkg": self.is_package,
            "lazy": self.lazy,
            "defs": self.main["defs"],
            "imports": self.main["imports"],
            "star": self.main["star"],
            "all": self.all,
            "classes": self.classes,
            "functions": self.functions,
            "ops": (custom_op_names(tree, self.walked and self.walked.nodes)
                    if text is None or _may_register_ops(text) else []),
        }
        if any(self.tc.values()):
            rec["tc"] = self.tc
        if self.lazy and self.str_maps:
            rec["lazymap"] = self.lazy_map()
        return rec


def _may_register_ops(text: bytes | str) -> bool:
    """Whether the source can register a custom op at all (a registration spells one of these names);
    saves a walk over every node of the many modules that register none."""
    if isinstance(text, bytes):
        return b"CustomOp" in text or b"direct_register_custom_op" in text
    return "CustomOp" in text or "direct_register_custom_op" in text


def module_record(relpath: str, text: bytes | str, tree: ast.Module | None = None, walked=None) -> dict | None:
    """Index record of one module, or None when it does not parse (``tree``: already parsed;
    ``walked``: ``astutil.Walk(tree)``, already made)."""
    if tree is None:
        tree = parse_source(text, relpath)
    if tree is None:
        return None
    name = module_name(relpath)
    return _ModuleScan(name, relpath.endswith("__init__.py"), walked).record(relpath, tree, text)


def build_index(source: SourceTree, command: str = "", progress=None) -> dict:
    """Index every module of ``source``; modules that fail to parse are listed, not fatal."""
    modules: dict[str, dict] = {}
    unparsable: list[str] = []
    started = time.perf_counter()
    total = len(source.files())
    for i, (relpath, data) in enumerate(source.iter_texts(), 1):
        rec = module_record(relpath, data)
        if rec is None:
            unparsable.append(relpath)
            continue
        modules[module_name(relpath)] = rec
        if progress and i % 200 == 0:
            progress(f"indexed {i}/{total} modules")
    add_dynamic_exports(modules, source.package)
    # each record is kept as JSON text so that readers decode only the modules they touch
    modules = {k: json.dumps(v, separators=(",", ":"), sort_keys=True) for k, v in modules.items()}
    return {
        "format": FORMAT,
        "records": RECORDS,
        "package": source.package,
        "version": source.version,
        "source": source.label,
        "command": command,
        "python": sys.version.split()[0],
        "seconds": round(time.perf_counter() - started, 2),
        "unparsable": unparsable,
        "modules": modules,
    }


def add_dynamic_exports(modules: dict[str, dict], package: str) -> None:
    """``"dynexp": {name: module}`` on lazy packages whose ``__init__`` calls ``define_import_structure``
    (transformers): at run time they export the ``__all__`` of every module below them (below
    ``<package>.models`` for the top-level package). Precomputed so readers need not decode them all.
    """
    for name, rec in modules.items():
        if not (rec.get("lazy") and "define_import_structure" in rec.get("imports", {})):
            continue
        base = f"{name}.models" if name == package and f"{name}.models" in modules else name
        prefix = base + "."
        out: dict[str, str] = {}
        below = sorted((m for m in modules if m.startswith(prefix)),
                       key=lambda m: (m.rsplit(".", 1)[-1].startswith("modular_"), m))
        for mod in below:
            for exported in modules[mod].get("all") or ():
                out.setdefault(exported, mod)
        rec["dynexp"] = out
