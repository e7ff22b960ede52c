"""Static checks of one Python file against the pinned vLLM / transformers API index.

``analyze_source(text, ctx)`` is the engine behind ``validate_migration.py`` and the migration
planner: it never imports anything and never raises on bad code (an unparsable file is a P20
finding). Every answer that the index cannot give for sure (unknown bases, lazy modules, callees
outside the indexed packages, dynamic code) produces no finding: the plugin's migrated files ran
in production on the pinned vLLM, so a false alarm costs more than a miss here.

The usage analysis (``import_bindings``, ``name_usage``) is shared with the rewriter so that
"used at run time / only in annotations / unused" is decided in one place.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field

from .api_index import PinnedApis, Symbol
from .findings import Finding
from .index_builder import custom_op_names, dotted, resolve_relative

# --------------------------------------------------------------------------------------------
# context and tables
# --------------------------------------------------------------------------------------------


@dataclass
class AnalysisContext:
    apis: PinnedApis  # pinned vllm + transformers, plus the plugin's vllm_fl via apis.with_package(...)
    module: str  # dotted name the file has or will have, e.g. "vllm_fl.models.qwen3_5"
    path: str  # path shown in findings
    origin_module: str | None = None  # upstream module the text came from (relative imports resolve there)


# transformers 5 spellings -> the 4.57.6 name (each checked against both indexes by a test)
TRANSFORMERS_RENAMES = {
    "PreTrainedConfig": "PretrainedConfig",
}

# Keywords that are optional refinements: dropping them keeps behaviour on the pinned version.
# (callee qualname suffix, kwarg) -> safe. Anything not listed is not safe to drop.
SAFE_DROP_KWARGS: dict[tuple[str, str], bool] = {
    ("WeightsMapper", "orig_to_new_stacked"): False,  # carries qkv/gate_up stacking
    ("support_torch_compile", "enable_if"): False,
    ("RMSNorm", "has_weight"): False,
    ("Attention", "attn_type"): False,
}
SAFE_DROP_KWARG_NAMES = frozenset({"disable_tp", "return_bias", "prefix_separator"})

# variable names that hold vLLM config objects -> the class that defines them in vllm.config
CONFIG_CLASSES = {
    "cache_config": "CacheConfig",
    "model_config": "ModelConfig",
    "parallel_config": "ParallelConfig",
    "scheduler_config": "SchedulerConfig",
    "lora_config": "LoRAConfig",
    "speculative_config": "SpeculativeConfig",
    "compilation_config": "CompilationConfig",
    "device_config": "DeviceConfig",
    "load_config": "LoadConfig",
    "multimodal_config": "MultiModalConfig",
    "quant_config": None,  # many classes: never judged
}

# known renames of config attributes: (config var, upstream attr) -> pinned spelling
CONFIG_ATTR_RENAMES = {
    ("cache_config", "mamba_cache_mode"): "enable_prefix_caching",
}

GUARD_EXCEPTIONS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
DEBUG_MODULES = frozenset({"pdb", "ipdb", "pudb", "pdbpp", "debugpy", "remote_pdb", "rpdb"})
HARDCODED_PATH = re.compile(r"(^|[\s'\"=:])/(models|root|home/[^/\s]+)/|site-packages/")


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------


def parse_text(text: str | bytes, path: str) -> tuple[ast.Module | None, Finding | None]:
    """The tree, or a P20 finding saying why there is none."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, Finding("P20", path, 1, 0, f"file is not UTF-8 ({exc.reason} at byte {exc.start})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(text, filename=path), None
        except SyntaxError as exc:
            return None, Finding("P20", path, exc.lineno or 1, max(0, (exc.offset or 1) - 1), f"syntax error: {exc.msg}")
        except ValueError as exc:  # null bytes
            return None, Finding("P20", path, 1, 0, f"cannot parse: {exc}")


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    out = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            out[child] = node
    return out


def _handler_guards(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any((dotted(t) or "").rsplit(".", 1)[-1] in GUARD_EXCEPTIONS for t in types)


# --------------------------------------------------------------------------------------------
# import bindings and name usage (shared with the rewriter)
# --------------------------------------------------------------------------------------------


@dataclass
class ImportBinding:
    """One name bound by an import statement."""

    alias: str  # local name bound (for ``import a.b`` this is ``a``)
    module: str  # absolute module imported from (``import a.b`` -> ``a.b``)
    name: str | None  # imported name, None for ``import module``
    node: ast.stmt
    line: int
    col: int
    level: int = 0  # relative level as written
    written: str = ""  # module as written (".utils")
    function_level: bool = False  # inside a def: runs only when called
    guarded: bool = False  # inside try/except ImportError (or broader): a failure is handled
    type_checking: bool = False  # under ``if TYPE_CHECKING:``: never runs
    conditional: bool = False  # under another ``if``: runs on some configurations only
    class_level: bool = False

    @property
    def import_time(self) -> bool:
        """Runs unconditionally when the module is imported."""
        return not (self.function_level or self.guarded or self.type_checking or self.conditional)


def _context_flags(node: ast.AST, parents: dict) -> dict:
    flags = {"function_level": False, "guarded": False, "type_checking": False, "conditional": False,
             "class_level": False}
    child, cur = node, parents.get(node)
    while cur is not None:
        if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            flags["function_level"] = True
        elif isinstance(cur, ast.ClassDef):
            flags["class_level"] = True
        elif isinstance(cur, ast.If):
            from .index_builder import is_type_checking_test

            if is_type_checking_test(cur.test) and child in cur.body:
                flags["type_checking"] = True
            elif child is not cur.test:
                flags["conditional"] = True
        elif isinstance(cur, ast.Try) or type(cur).__name__ == "TryStar":
            if child in cur.body and any(_handler_guards(h) for h in cur.handlers):
                flags["guarded"] = True
        child, cur = cur, parents.get(cur)
    return flags


def import_bindings(tree: ast.AST, module: str, is_package: bool = False,
                    parents: dict | None = None) -> list[ImportBinding]:
    """Every import in the file, with where it runs. Relative imports resolve against ``module``."""
    parents = parents if parents is not None else _parents(tree)
    out: list[ImportBinding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            flags = _context_flags(node, parents)
            for a in node.names:
                alias = a.asname or a.name.split(".")[0]
                out.append(ImportBinding(alias, a.name, None, node, node.lineno, node.col_offset,
                                         written=a.name, **flags))
        elif isinstance(node, ast.ImportFrom):
            flags = _context_flags(node, parents)
            written = "." * node.level + (node.module or "")
            src = resolve_relative(module, is_package, node.level, node.module) if node.level else node.module or ""
            for a in node.names:
                out.append(ImportBinding(a.asname or a.name, src, a.name, node, node.lineno, node.col_offset,
                                         level=node.level, written=written, **flags))
    out.sort(key=lambda b: (b.line, b.col))
    return out


@dataclass
class Usage:
    runtime: int = 0
    annotation: int = 0
    lines: list[int] = field(default_factory=list)

    @property
    def unused(self) -> bool:
        return not (self.runtime or self.annotation)

    @property
    def annotation_only(self) -> bool:
        return self.annotation > 0 and self.runtime == 0


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
    ids: set[int] = set()
    for root in roots:
        for sub in ast.walk(root):
            ids.add(id(sub))
    return ids


_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def name_usage(tree: ast.AST, parents: dict | None = None) -> dict[str, Usage]:
    """Loads of each name: at run time or only inside annotations (string annotations included).

    Names listed in ``__all__`` count as run-time uses (re-exports); names used only under
    ``if TYPE_CHECKING:`` count as annotations.
    """
    parents = parents if parents is not None else _parents(tree)
    ann = _annotation_nodes(tree)
    usage: dict[str, Usage] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            u = usage.setdefault(node.id, Usage())
            if id(node) in ann or _context_flags(node, parents)["type_checking"]:
                u.annotation += 1
            else:
                u.runtime += 1
            u.lines.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) in ann:
            for ident in set(_IDENT.findall(node.value)):
                u = usage.setdefault(ident, Usage())
                u.annotation += 1
                u.lines.append(node.lineno)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id == "__all__" and isinstance(node.value, (ast.List, ast.Tuple)):
                    for elt in node.value.elts:
                        if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                            usage.setdefault(elt.value, Usage()).runtime += 1
    return usage


def _dotted_usage(tree: ast.AST, alias: str) -> Usage:
    """Usage of ``alias`` counted on attribute chains too (``import a.b`` binds ``a``)."""
    return name_usage(tree).get(alias, Usage())


# --------------------------------------------------------------------------------------------
# the analysis of one file
# --------------------------------------------------------------------------------------------


class _Analyzer:
    def __init__(self, tree: ast.Module, ctx: AnalysisContext):
        self.tree = tree
        self.ctx = ctx
        self.apis = ctx.apis
        self.findings: list[Finding] = []
        self.parents = _parents(tree)
        self.is_package = ctx.path.endswith("__init__.py")
        base = ctx.origin_module or ctx.module
        self.bindings = import_bindings(tree, base, self.is_package and not ctx.origin_module, self.parents)
        self.usage = name_usage(tree, self.parents)
        self.future_annotations = any(
            b.module == "__future__" and b.name == "annotations" for b in self.bindings
        )
        # alias -> binding made at module level (the last one wins, like Python)
        self.module_bindings: dict[str, ImportBinding] = {}
        for b in self.bindings:
            if not b.function_level and not b.class_level:
                self.module_bindings[b.alias] = b
        self.local_defs = self._module_defs()

    # -- helpers ------------------------------------------------------------------------------

    def add(self, rule: str, node: ast.AST | None, message: str, line: int | None = None, col: int | None = None,
            **kw) -> Finding:
        f = Finding(rule, self.ctx.path, line if line is not None else getattr(node, "lineno", 1),
                    col if col is not None else getattr(node, "col_offset", 0), message, **kw)
        self.findings.append(f)
        return f

    def _module_defs(self) -> set[str]:
        names = set()
        for stmt in self.tree.body:
            if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(stmt.name)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    for sub in ast.walk(t):
                        if isinstance(sub, ast.Name):
                            names.add(sub.id)
        return names

    def known_package(self, module: str) -> bool:
        return self.apis.index_for(module) is not None

    # -- check 1: imports ---------------------------------------------------------------------

    def check_imports(self) -> None:
        for b in self.bindings:
            if b.module == "__future__" or b.type_checking:
                continue
            if b.level:
                self._relative(b)
                continue
            if b.guarded:
                continue
            if not self.known_package(b.module):
                continue
            self._absolute(b)

    def _usage_data(self, b: ImportBinding) -> dict:
        u = self.usage.get(b.alias, Usage())
        return {"used_at_runtime": u.runtime > 0, "annotation_only": u.annotation_only, "unused": u.unused,
                "import_time": b.import_time}

    def _relative(self, b: ImportBinding) -> None:
        names = [a.name for a in b.node.names]
        if names and b.name != names[0]:
            return  # one finding per statement, on its first name
        missing: list[str] = []
        exists = bool(self.apis.has_module(b.module))
        if exists:
            for n in names:
                if n != "*" and self.apis.resolve(b.module, n) is None:
                    missing.append(n)
        self.add(
            "P1", b.node, f"relative import `from {b.written} import {', '.join(names)}` "
            f"(resolves to {b.module})",
            fix=f"import from the absolute module: from {b.module} import ..." if exists and not missing else None,
            autofix=True,
            data={"level": b.level, "written": b.written, "names": names, "absolute": b.module,
                  "pinned_module_exists": exists, "missing_names": missing if exists else names,
                  "import_time": b.import_time},
        )

    def _absolute(self, b: ImportBinding) -> None:
        top = b.module.split(".")[0]
        has_mod = self.apis.has_module(b.module)
        if b.name is None or b.name == "*":
            if not has_mod:
                self._missing(b, None)
            return
        if not has_mod:
            # maybe ``from vllm.a import b`` where a.b is a module
            self._missing(b, b.name, module_missing=True)
            return
        sym = self.apis.resolve(b.module, b.name)
        if sym is None:
            self._missing(b, b.name)
        elif sym.kind == "typing-only" and top in ("vllm", "transformers"):
            self._missing(b, b.name, typing_only=True)

    def _missing(self, b: ImportBinding, name: str | None, module_missing: bool = False,
                 typing_only: bool = False) -> None:
        top = b.module.split(".")[0]
        data = {"module": b.module, "name": name, **self._usage_data(b)}
        what = f"`{b.module}`" if name is None else f"`{name}` from `{b.module}`"
        pinned = f"{self.apis.index_for(b.module).package} {self.apis.index_for(b.module).version}"
        reason = "module does not exist" if (module_missing or name is None) else "name does not exist"
        if typing_only:
            reason = "name exists only under TYPE_CHECKING"
        if top == PLUGIN:
            self.add("P18", b.node, f"import of {what}: {reason} in the plugin tree", data=data)
            return
        if top == "transformers":
            new = TRANSFORMERS_RENAMES.get(name or "")
            if new and self.apis.resolve("transformers", new) is None:
                new = None
            if new:
                data["new_name"] = new
            fix = (f"use `{new}` (transformers {pinned.split()[-1]} spelling)" if new else
                   ("add a config bridge in vllm_fl/configs/ (P2)" if (name or "").endswith("Config") else None))
            self.add("P5", b.node, f"import of {what}: {reason} in {pinned}", fix=fix, autofix=bool(new),
                     data=data)
            return
        # vllm: moved? annotation only? unused?
        if name is not None:
            cands = self.moved_candidates(name, b.module)
            if cands and cands[0] is not None:
                new_module, all_cands = cands
                data.update({"new_module": new_module, "candidates": all_cands})
                self.add("P13", b.node, f"import of {what}: {reason} in {pinned}; "
                         f"it is defined in `{new_module}`", fix=f"from {new_module} import {name}",
                         autofix=True, data=data)
                return
            if cands:
                data["candidates"] = cands[1]
        if name is not None and data["annotation_only"]:
            self.add("P14", b.node, f"import of {what}: {reason} in {pinned}; used only in annotations",
                     fix="move the import under `if TYPE_CHECKING:` and add `from __future__ import annotations`",
                     autofix=True, data=data)
            return
        if name and name.endswith("Config") and b.module.startswith("vllm.transformers_utils.config"):
            self.add("P2", b.node, f"import of {what}: {reason} in {pinned}",
                     fix=f"import {name} from the plugin's config bridge vllm_fl.configs.<model_type>", data=data)
            return
        fix = None
        if data["unused"]:
            fix = "the name is unused: remove the import"
        elif data.get("candidates"):
            fix = "defined in several pinned modules: " + ", ".join(data["candidates"])
        self.add("P3", b.node, f"import of {what}: {reason} in {pinned}" + (" (unused)" if data["unused"] else ""),
                 fix=fix, autofix=data["unused"], data=data)

    def moved_candidates(self, name: str, module: str) -> tuple[str | None, list[str]] | None:
        """(unique target module or None, all candidates) for a name defined elsewhere in pinned vLLM."""
        idx = self.apis.vllm
        found = []
        for mod, kind in idx.definers(name):
            rec = idx.module(mod)
            # ``X = object`` stand-ins beside a TYPE_CHECKING import are not definitions
            if rec and name in rec.get("tc", {}).get("imports", {}):
                continue
            if mod.split(".")[-1].startswith("_") or ".tests." in mod:
                continue
            found.append((mod, kind))
        if not found:
            return None
        cands = [m for m, _ in found]
        kinds = {k for _, k in found}
        non_model = [m for m, _ in found if not m.startswith("vllm.model_executor.models.")]
        if len(non_model) == 1:
            return non_model[0], cands
        if not non_model and len(found) == 1:
            return found[0][0], cands
        if len(kinds) > 1:
            classes = [m for m, k in found if k == "class" and not m.startswith("vllm.model_executor.models.")]
            if len(classes) == 1:
                return classes[0], cands
        return None, cands

    def run(self) -> list[Finding]:
        self.check_imports()
        return self.findings


PLUGIN = "vllm_fl"


def analyze_tree(tree: ast.Module, ctx: AnalysisContext) -> list[Finding]:
    return _Analyzer(tree, ctx).run()


def analyze_source(text: str | bytes, ctx: AnalysisContext) -> list[Finding]:
    """All findings for one file; never raises on bad code (P20 instead)."""
    tree, err = parse_text(text, ctx.path)
    if tree is None:
        return [err]
    try:
        findings = analyze_tree(tree, ctx)
    except RecursionError:
        return [Finding("P20", ctx.path, 1, 0, "file too deeply nested to analyse", severity="warning")]
    uniq = {}
    for f in findings:
        uniq.setdefault((f.rule, f.line, f.col, f.message), f)
    return sorted(uniq.values(), key=lambda f: (f.line, f.col, f.rule))


__all__ = ["AnalysisContext", "ImportBinding", "Usage", "analyze_source", "analyze_tree", "custom_op_names",
           "import_bindings", "name_usage", "parse_text", "Symbol"]
