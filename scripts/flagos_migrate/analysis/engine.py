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
import os
import re
import warnings
from dataclasses import dataclass, field

from flagos_migrate.catalog.findings import Finding
from flagos_migrate.migrate import backports
from flagos_migrate.pinned.api_index import PinnedApis, Symbol, _normalise_external, external_members
from flagos_migrate.pinned.index_builder import custom_op_names, dotted, resolve_relative, signature_of

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
# Safe only in some calls: (callee, kwarg) -> (literal value it must have or None, keyword the same
# call must also pass). ``is_encoder`` tags a multimodal encoder for upstream's compile cache; with
# ``enable_if`` (the pinned ``should_torch_compile_mm_vit`` check) the pinned decorator compiles it
# exactly when upstream would, which is how the pinned vLLM's own vision blocks are decorated.
# Upstream split ``default_pooling_type(pooling_type)`` into a sequence and a token pooling type;
# the pinned token poolers pool ALL tokens whatever the type says (only "STEP" changes them), so a
# token type of "ALL" next to a sequence type (which becomes the pinned one) says nothing new.
# Alone it becomes the pinned type, as the pinned token-classification models spell it ("ALL").
SAFE_DROP_WHEN: dict[tuple[str, str], tuple[str | None, str]] = {
    ("support_torch_compile", "is_encoder"): (None, "enable_if"),
    ("default_pooling_type", "tok_pooling_type"): ("ALL", "seq_pooling_type"),
}
# Keywords that the pinned signature spells differently: (callee, kwarg) -> (pinned keyword, keywords
# that must not be passed too, unless they are dropped). The pinned single pooling type is the
# sequence one ("CLS" for bert); a token type becomes it only when it is the only one passed.
KWARG_RENAMES: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("default_pooling_type", "seq_pooling_type"): ("pooling_type", frozenset({"tok_pooling_type"})),
    ("default_pooling_type", "tok_pooling_type"): ("pooling_type", frozenset({"seq_pooling_type"})),
}

# Upstream classes that merged several pinned ones, for code that only asks ``isinstance(x, Cls)``:
# (upstream module, class) -> the pinned (module, class) pairs. Upstream's AutoAWQConfig unified the
# AWQ configs (Triton, Marlin); the pinned vLLM's own models check ``(GPTQConfig, GPTQMarlinConfig)``.
ISINSTANCE_EQUIVALENTS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("vllm.model_executor.layers.quantization.auto_awq", "AutoAWQConfig"): (
        ("vllm.model_executor.layers.quantization.awq", "AWQConfig"),
        ("vllm.model_executor.layers.quantization.awq_marlin", "AWQMarlinConfig"),
    ),
    ("vllm.model_executor.layers.quantization.auto_gptq", "AutoGPTQConfig"): (
        ("vllm.model_executor.layers.quantization.gptq", "GPTQConfig"),
        ("vllm.model_executor.layers.quantization.gptq_marlin", "GPTQMarlinConfig"),
    ),
}

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
    return _walk_with_parents(tree)[1]


def _walk_with_parents(tree: ast.AST) -> tuple[list[ast.AST], dict[ast.AST, ast.AST]]:
    """Every node (breadth-first, like ast.walk) and each node's parent, in one pass."""
    nodes = [tree]
    parents: dict[ast.AST, ast.AST] = {}
    i = 0
    while i < len(nodes):
        node = nodes[i]
        i += 1
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, ast.AST):
                parents[value] = node
                nodes.append(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        parents[item] = node
                        nodes.append(item)
    return nodes, parents


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
        if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # decorators, defaults and annotations run when the ``def`` runs; only the body waits
            if child in cur.body:
                flags["function_level"] = True
        elif isinstance(cur, ast.Lambda):
            if child is cur.body:
                flags["function_level"] = True
        elif isinstance(cur, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            pass
        elif isinstance(cur, ast.ClassDef):
            if child in cur.body:
                flags["class_level"] = True
        elif isinstance(cur, ast.If):
            from flagos_migrate.pinned.index_builder import is_type_checking_test

            if is_type_checking_test(cur.test) and child in cur.body:
                flags["type_checking"] = True
            elif child is not cur.test:
                flags["conditional"] = True
        elif isinstance(cur, ast.Try) or type(cur).__name__ == "TryStar":
            if child in cur.body and any(_handler_guards(h) for h in cur.handlers):
                flags["guarded"] = True
            elif child in cur.handlers or child in cur.orelse:
                flags["conditional"] = True  # a fallback runs only when the guarded part failed
        elif isinstance(cur, (ast.For, ast.While, ast.AsyncFor)):
            if child in cur.body or child in cur.orelse:
                flags["conditional"] = True
        child, cur = cur, parents.get(cur)
    return flags


def import_bindings(tree: ast.AST, module: str, is_package: bool = False,
                    parents: dict | None = None, nodes: list | None = None) -> list[ImportBinding]:
    """Every import in the file, with where it runs. Relative imports resolve against ``module``."""
    if parents is None or nodes is None:
        nodes, parents = _walk_with_parents(tree)
    out: list[ImportBinding] = []
    for node in nodes:
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
    runtime_lines: list[int] = field(default_factory=list)  # loads outside annotations

    @property
    def unused(self) -> bool:
        return not (self.runtime or self.annotation)

    @property
    def annotation_only(self) -> bool:
        return self.annotation > 0 and self.runtime == 0


def _annotation_nodes(nodes: list) -> set[int]:
    """ids of every node inside an annotation."""
    roots: list[ast.AST] = []
    for node in nodes:
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


def _type_checking_ids(nodes: list) -> set[int]:
    from flagos_migrate.pinned.index_builder import is_type_checking_test

    ids: set[int] = set()
    for node in nodes:
        if isinstance(node, ast.If) and is_type_checking_test(node.test):
            for stmt in node.body:
                ids.update(id(sub) for sub in ast.walk(stmt))
    return ids


_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def name_usage(tree: ast.AST, parents: dict | None = None, nodes: list | None = None) -> dict[str, Usage]:
    """Loads of each name: at run time or only inside annotations (string annotations included).

    Names listed in ``__all__`` count as run-time uses (re-exports); names used only under
    ``if TYPE_CHECKING:`` count as annotations.
    """
    if parents is None or nodes is None:
        nodes, parents = _walk_with_parents(tree)
    ann = _annotation_nodes(nodes)
    tc_ids = _type_checking_ids(nodes)
    usage: dict[str, Usage] = {}
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            u = usage.setdefault(node.id, Usage())
            if id(node) in ann or id(node) in tc_ids:
                u.annotation += 1
            else:
                u.runtime += 1
                u.runtime_lines.append(node.lineno)
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
        self.nodes, self.parents = _walk_with_parents(tree)
        self.is_package = ctx.path.endswith("__init__.py")
        base = ctx.origin_module or ctx.module
        self.bindings = import_bindings(tree, base, self.is_package and not ctx.origin_module, self.parents,
                                        self.nodes)
        self.usage = name_usage(tree, self.parents, self.nodes)
        self.future_annotations = any(
            b.module == "__future__" and b.name == "annotations" for b in self.bindings
        )
        # alias -> binding made at module level (the last one wins, like Python)
        self.module_bindings: dict[str, ImportBinding] = {}
        for b in self.bindings:
            if not b.function_level and not b.class_level:
                self.module_bindings[b.alias] = b
        self.local_defs = self._module_defs()
        self.local_classes = {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}
        self.rebound = self._rebound() - set(self.local_classes)
        self._mro_cache: dict[str, list] = {}
        self._members_cache: dict[str, tuple] = {}
        self._cfg_cache: dict[str, Symbol | None] = {}
        self._subtrees: dict[int, list] = {}
        # attribute names tested with hasattr(...) anywhere: reads of them are guarded
        self.hasattr_names = {
            n.args[1].value for n in self.nodes
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "hasattr"
            and len(n.args) >= 2 and isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str)
        }

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
        if (not self.ctx.origin_module and b.module.split(".")[0] == PLUGIN and exists
                and all(n == "*" or self.apis.resolve(b.module, n) is not None for n in names)):
            return  # a plugin file importing a plugin sibling that exists: fine where it is
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
        if top == "transformers" and name:
            sibling = self._transformers_sibling(b.module, name)
            if sibling:
                data.update({"new_module": sibling, "candidates": [sibling]})
                self.add("P13", b.node, f"import of {what}: {reason} in {pinned}; it is defined in `{sibling}`",
                         fix=f"from {sibling} import {name}", autofix=True, data=data)
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
        bp = backports.for_import(b.module, name) if name else None
        equivalent = ISINSTANCE_EQUIVALENTS.get((b.module, name or ""))
        if equivalent and not data["unused"] and self._isinstance_only(b.alias):
            classes = ", ".join(cls for _, cls in equivalent)
            data["equivalent"] = [list(pair) for pair in equivalent]
            self.add("P13", b.node, f"import of {what}: {reason} in {pinned}; used only in isinstance checks, "
                     f"where the pinned classes ({classes}) stand for it",
                     fix=f"{b.alias} = ({classes},) with those classes imported", autofix=True, data=data)
            return
        if data["unused"]:
            fix = "the name is unused: remove the import"
        elif bp is not None:
            fix = f"`migrate_model.py apply` installs the back-port {bp.module} (P22: {bp.what}) and imports it from there"
            data["backport"] = bp.module
        elif data.get("candidates"):
            fix = "defined in several pinned modules: " + ", ".join(data["candidates"])
        self.add("P3", b.node, f"import of {what}: {reason} in {pinned}" + (" (unused)" if data["unused"] else ""),
                 fix=fix, autofix=data["unused"] or bp is not None, data=data)

    def _isinstance_only(self, alias: str) -> bool:
        """Every use of ``alias`` is the class argument of isinstance/issubclass (or inside its tuple)."""
        uses = [n for n in self.nodes if isinstance(n, ast.Name) and n.id == alias and isinstance(n.ctx, ast.Load)]
        for node in uses:
            parent = self.parents.get(node)
            if isinstance(parent, ast.Tuple):
                node, parent = parent, self.parents.get(parent)
            if not (isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name)
                    and parent.func.id in ("isinstance", "issubclass") and len(parent.args) == 2
                    and parent.args[1] is node):
                return False
        return bool(uses)

    def _transformers_sibling(self, module: str, name: str) -> str | None:
        """The one module of the same transformers model package that defines ``name`` (e.g. a helper
        that 4.57.6 keeps in ``image_processing_x_fast``); only that package is searched, so it stays cheap."""
        parts = module.split(".")
        if len(parts) < 3 or parts[1] != "models" or self.apis.transformers is None:
            return None
        prefix = ".".join(parts[:3]) + "."
        idx = self.apis.transformers
        found = [m for m in idx.modules.keys() if m.startswith(prefix) and ".modular_" not in m
                 and name in idx.modules[m]["defs"]]
        return found[0] if len(found) == 1 else None

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
        if not non_model:
            # several model modules: the one of the same model family as this file, if exactly one
            stem = (self.ctx.origin_module or self.ctx.module).rsplit(".", 1)[-1]
            scored = sorted(((len(os.path.commonprefix([stem, m.rsplit(".", 1)[-1]])), m) for m in cands),
                            reverse=True)
            if scored[0][0] >= 4 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
                return scored[0][1], cands
        if len(kinds) > 1:
            classes = [m for m, k in found if k == "class" and not m.startswith("vllm.model_executor.models.")]
            if len(classes) == 1:
                return classes[0], cands
        return None, cands

    # -- resolving names of the file to pinned symbols ------------------------------------------

    def _rebound(self) -> set[str]:
        """Names assigned other than by one module-level import: we cannot say what they hold."""
        names: set[str] = set()
        for node in self.nodes:
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.ClassDef) and node not in self.tree.body:
                names.add(node.name)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
        seen: dict[str, tuple] = {}
        for b in self.bindings:
            key = (b.module, b.name)
            if b.alias in seen and seen[b.alias] != key:
                names.add(b.alias)
            seen[b.alias] = key
        return names

    def resolve_expr(self, node: ast.AST) -> Symbol | None:
        """Pinned symbol of a Name / attribute chain, None when unknown (never guesses)."""
        if isinstance(node, ast.Name):
            if node.id in self.rebound:
                return None
            b = self.module_bindings.get(node.id)
            if b is None or b.type_checking or b.level:
                return None
            if b.name is None:
                # ``import a.b.c`` binds ``a``; ``import a.b.c as x`` binds ``a.b.c``
                mod = b.module if b.alias != b.module.split(".")[0] else b.alias
                if not self.known_package(mod):
                    return Symbol(mod, "", "external")
                return Symbol(mod, "", "module") if self.apis.has_module(mod) else None
            if not self.known_package(b.module):
                return Symbol(b.module, b.name, "external")  # e.g. torch.nn: named, never judged
            sym = self.apis.resolve(b.module, b.name)
            return sym if sym is not None and sym.kind in ("module", "class", "function", "var", "external") else None
        if isinstance(node, ast.Attribute):
            base = self.resolve_expr(node.value)
            if base is not None and base.kind == "external":
                return Symbol(base.qualname, node.attr, "external")
            if base is None or base.kind != "module" or not self.apis.has_module(base.module):
                return None
            sym = self.apis.resolve(base.module, node.attr)
            return sym if sym is not None and sym.kind in ("module", "class", "function", "var", "external") else None
        return None

    # -- local class hierarchy (C3 over local classes, pinned classes and external bases) -------

    def _entry_bases(self, entry: tuple) -> list[tuple]:
        kind, obj = entry
        out: list[tuple] = []
        if kind == "local":
            for base in obj.bases:
                local = self._local_class_before(base.id, obj) if isinstance(base, ast.Name) else None
                if local is not None:
                    out.append(("local", local))
                    continue
                sym = self.resolve_expr(base.value if isinstance(base, ast.Subscript) else base)
                out.append(self._symbol_entry(sym, dotted(base) or "?"))
        elif kind == "pinned":
            for sym in self.apis.base_symbols(obj[0]):
                out.append(self._symbol_entry(sym, "?"))
        return out

    def _local_class_before(self, name: str, cls: ast.ClassDef) -> ast.ClassDef | None:
        """The local class a base name means at the ``class`` statement (``class X(X)`` means the import)."""
        found = None
        for stmt in self.tree.body:
            if stmt is cls:
                break
            if isinstance(stmt, ast.ClassDef) and stmt.name == name:
                found = stmt
        return found

    def _symbol_entry(self, sym: Symbol | None, written: str) -> tuple:
        if sym is None:
            return ("unknown", written)
        if sym.kind == "class":
            rec = self.apis.class_record(sym)
            return ("pinned", (sym, rec)) if rec is not None else ("unknown", sym.qualname)
        if sym.kind == "external":
            return ("external", sym.qualname)
        return ("unknown", sym.qualname)

    @staticmethod
    def _entry_key(entry: tuple) -> str:
        kind, obj = entry
        if kind == "local":
            return "local:" + obj.name
        if kind == "pinned":
            return obj[0].qualname
        return f"{kind}:{obj}"

    def linearize(self, entry: tuple, _depth: int = 0) -> list[tuple]:
        """Method resolution order (C3; depth-first order when C3 has no solution)."""
        key = self._entry_key(entry)
        if key in self._mro_cache:
            return self._mro_cache[key]
        if _depth > 40:
            return [entry, ("unknown", "deep")]
        bases = self._entry_bases(entry)
        seqs = [self.linearize(b, _depth + 1) for b in bases] + [list(bases)]
        seqs = [list(s) for s in seqs if s]
        result = [entry]
        while seqs:
            head = None
            for seq in seqs:
                cand = self._entry_key(seq[0])
                if not any(cand in [self._entry_key(e) for e in s[1:]] for s in seqs):
                    head = seq[0]
                    break
            if head is None:  # inconsistent: fall back to depth-first, de-duplicated
                seen = {self._entry_key(e) for e in result}
                for seq in seqs:
                    for e in seq:
                        if self._entry_key(e) not in seen:
                            seen.add(self._entry_key(e))
                            result.append(e)
                break
            hk = self._entry_key(head)
            result.append(head)
            seqs = [[e for e in s if self._entry_key(e) != hk] for s in seqs]
            seqs = [s for s in seqs if s]
        self._mro_cache[key] = result
        return result

    def local_members(self, node: ast.ClassDef) -> tuple[set[str], bool]:
        """Members a local class defines (methods, class attributes, self.X assigned anywhere in it),
        and whether it sets attributes dynamically (then nothing can be judged)."""
        if node.name in self._members_cache:
            return self._members_cache[node.name]
        members: set[str] = set()
        dynamic = False
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                members.add(stmt.name)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    for sub in ast.walk(t):
                        if isinstance(sub, ast.Name):
                            members.add(sub.id)
        for sub in self.subtree(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls"):
                if isinstance(sub.ctx, ast.Store):
                    members.add(sub.attr)
                elif sub.attr == "__dict__":
                    dynamic = True
            elif isinstance(sub, ast.Call):
                fname = dotted(sub.func) or ""
                last = fname.rsplit(".", 1)[-1]
                if last in ("setattr", "add_module", "register_module", "register_buffer", "register_parameter"):
                    args = sub.args[1:] if last == "setattr" else sub.args
                    if last == "setattr" and not (sub.args and isinstance(sub.args[0], ast.Name)
                                                  and sub.args[0].id == "self"):
                        continue
                    if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                        members.add(args[0].value)
                    else:
                        dynamic = True
        if "__getattr__" in members or "__getattribute__" in members:
            dynamic = True
        self._members_cache[node.name] = (members, dynamic)
        return members, dynamic

    def entry_defines(self, entry: tuple, member: str) -> bool | None:
        kind, obj = entry
        if kind == "local":
            members, dynamic = self.local_members(obj)
            return True if member in members else (None if dynamic else False)
        if kind == "pinned":
            rec = obj[1]
            if member in rec["methods"] or member in rec["attrs"] or any(f[0] == member for f in rec.get("fields", ())):
                return True
            if "__getattr__" in rec["methods"] or rec.get("dyn"):
                return None
            return False
        if kind == "external":
            known = external_members().get(_normalise_external(obj))
            if known is None:
                return None
            return member in known
        return None

    def hierarchy_defines(self, entries: list[tuple], member: str) -> bool | None:
        unknown = False
        for e in entries:
            r = self.entry_defines(e, member)
            if r:
                return True
            if r is None:
                unknown = True
        return None if unknown else False

    def enclosing(self, node: ast.AST, kinds) -> ast.AST | None:
        cur = self.parents.get(node)
        while cur is not None and not isinstance(cur, kinds):
            cur = self.parents.get(cur)
        return cur

    def enclosing_class(self, node: ast.AST) -> ast.ClassDef | None:
        """The top-level class whose method contains ``node`` (None in nested classes/functions)."""
        func = self.enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        if func is None:
            return None
        cls = self.parents.get(func)
        if isinstance(cls, ast.ClassDef) and cls.name in self.local_classes and self.local_classes[cls.name] is cls:
            return cls
        return None

    def subclass_defines(self, cls: ast.ClassDef, member: str) -> bool:
        """A local subclass defines the member (template-method pattern): not an issue."""
        key = "local:" + cls.name
        for other in self.local_classes.values():
            if other is cls:
                continue
            lin = self.linearize(("local", other))
            if any(self._entry_key(e) == key for e in lin[1:]) and member in self.local_members(other)[0]:
                return True
        return False

    # -- signatures -------------------------------------------------------------------------------

    def entry_init_signature(self, entries: list[tuple]) -> dict | None:
        """Signature of calling a class whose MRO is ``entries`` (None when unknown)."""
        for i, (kind, obj) in enumerate(entries):
            if kind == "local":
                if any(not _harmless(d) for d in _decorators(obj)):
                    return None
                for stmt in obj.body:
                    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name in ("__init__", "__new__"):
                        if stmt.name == "__new__" or any(not _harmless(d) for d in _decorators(stmt)):
                            return None
                        return signature_of(stmt.args, drop_first=True)
                if any(d.rsplit(".", 1)[-1] == "dataclass" for d in _decorators(obj)):
                    return None
            elif kind == "pinned":
                sym, rec = obj
                if any(not _harmless(d) for d in rec.get("decos", ())):
                    return None
                if "__init__" in rec["methods"]:
                    sig = rec["methods"]["__init__"]
                    return None if any(not _harmless(d) for d in sig.get("d", ())) else sig
                if "__new__" in rec["methods"]:
                    return None
                if rec.get("dc"):
                    return self._dataclass_signature(entries[i:])
            elif kind == "external":
                if _normalise_external(obj) in _NO_INIT_BASES:
                    continue
                return None
            else:
                return None
        return None

    @staticmethod
    def _dataclass_signature(entries: list[tuple]) -> dict | None:
        fields: dict[str, bool] = {}
        for kind, obj in reversed(entries):
            if kind == "pinned" and obj[1].get("dc"):
                for name, has_default in obj[1].get("fields", ()):
                    fields[name] = has_default
            elif kind not in ("external",) and kind != "pinned":
                return None
        return {"p": list(fields), "r": 0, "k": [], "kr": [], "dc": 1,
                "req": [n for n, d in fields.items() if not d]}

    def callee(self, call: ast.Call) -> tuple[str, dict, int] | None:
        """(qualname shown, signature, positional args to skip) of a call we can judge."""
        func = call.func
        # super().X(...)
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)
                and isinstance(func.value.func, ast.Name) and func.value.func.id == "super" and not func.value.args):
            cls = self.enclosing_class(call)
            if cls is None:
                return None
            lin = self.linearize(("local", cls))[1:]
            return self._method_in(lin, func.attr, f"super().{func.attr}")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
            cls = self.enclosing_class(call)
            if cls is None:
                return None
            lin = self.linearize(("local", cls))
            # local methods are the file's own business; only calls that reach a pinned method are judged
            key = "lm:" + cls.name
            if key not in self._members_cache:
                self._members_cache[key] = set().union(*(self.local_members(e[1])[0] for e in lin if e[0] == "local"))
            if func.attr in self._members_cache[key]:
                return None
            return self._method_in(lin, func.attr, f"self.{func.attr}")
        # Base.__init__(self, ...)
        if isinstance(func, ast.Attribute) and func.attr == "__init__":
            sym = self.resolve_expr(func.value)
            if sym is not None and sym.kind == "class":
                rec = self.apis.class_record(sym)
                if rec is None:
                    return None
                sig = self.entry_init_signature(self.linearize(("pinned", (sym, rec))))
                return (f"{sym.qualname}.__init__", sig, 1) if sig else None
            return None
        if isinstance(func, ast.Name) and func.id in self.local_classes and func.id not in self.rebound:
            cls = self.local_classes[func.id]
            sig = self.entry_init_signature(self.linearize(("local", cls)))
            return (func.id, sig, 0) if sig else None
        sym = self.resolve_expr(func)
        if sym is None:
            return None
        if sym.kind == "function":
            idx = self.apis.index_for(sym.module)
            sig = idx.function_signature(sym) if idx else None
            if sig is None or any(not _harmless(d) for d in sig.get("d", ())):
                return None
            return sym.qualname, sig, 0
        if sym.kind == "class":
            rec = self.apis.class_record(sym)
            if rec is None:
                return None
            sig = self.entry_init_signature(self.linearize(("pinned", (sym, rec))))
            return (sym.qualname, sig, 0) if sig else None
        return None

    def _method_in(self, lin: list[tuple], name: str, shown: str) -> tuple[str, dict, int] | None:
        if name == "__init__":
            sig = self.entry_init_signature(lin)
            return (shown, sig, 0) if sig else None
        for kind, obj in lin:
            if kind == "local":
                members, dynamic = self.local_members(obj)
                if dynamic:
                    return None
                for stmt in obj.body:
                    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                        decs = _decorators(stmt)
                        if any(not _harmless(d) for d in decs):
                            return None
                        return shown, signature_of(stmt.args, drop_first="staticmethod" not in decs), 0
                if name in members:
                    return None  # an attribute holding a callable
            elif kind == "pinned":
                rec = obj[1]
                if name in rec["methods"]:
                    sig = rec["methods"][name]
                    if any(not _harmless(d) for d in sig.get("d", ())):
                        return None
                    if name in rec["attrs"] and name not in rec["methods"]:
                        return None
                    return f"{obj[0].qualname}.{name}", sig, 0
                if name in rec["attrs"] or "__getattr__" in rec["methods"]:
                    return None
            elif kind == "external":
                known = external_members().get(_normalise_external(obj))
                if known is None or name in known:
                    return None
            else:
                return None
        return None

    # -- check 1b: attribute reads on imported pinned modules -----------------------------------------

    def check_module_attributes(self) -> None:
        for node in self.nodes:
            if not (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)):
                continue
            if isinstance(self.parents.get(node), ast.Attribute):
                continue  # judge the longest chain once, from its outermost node
            chain = []
            cur: ast.AST = node
            while isinstance(cur, ast.Attribute):
                chain.append(cur)
                cur = cur.value
            if not isinstance(cur, ast.Name):
                continue
            for attr_node in reversed(chain):
                base = self.resolve_expr(attr_node.value)
                if base is None or base.kind != "module" or base.module.split(".")[0] not in ("vllm", "transformers"):
                    break
                if base.module in COMPILED_MODULES or f"{base.module}.{attr_node.attr}" in COMPILED_MODULES:
                    break
                sym = self.apis.resolve(base.module, attr_node.attr)
                if sym is None and not self._guarded_by_hasattr(attr_node):
                    flags = _context_flags(attr_node, self.parents)
                    top_level = not (flags["function_level"] or flags["guarded"] or flags["type_checking"]
                                     or flags["conditional"])
                    self.add("P3", attr_node, f"`{base.module}.{attr_node.attr}` does not exist in "
                             f"{self.apis.index_for(base.module).package} {self.apis.index_for(base.module).version}",
                             data={"module": base.module, "name": attr_node.attr, "used_at_runtime": True,
                                   "annotation_only": False, "unused": False, "import_time": top_level,
                                   "attribute_access": True})
                    break
                if sym is None or sym.kind != "module":
                    break

    def _guarded_by_hasattr(self, node: ast.AST) -> bool:
        attr = getattr(node, "attr", None)
        return attr is not None and attr in self.hasattr_names

    # -- check 2: calls -------------------------------------------------------------------------------

    def check_calls(self) -> None:
        for node in self.nodes:
            if not isinstance(node, ast.Call):
                continue
            found = self.callee(node)
            if found is None:
                continue
            shown, sig, skip = found
            self._judge_call(node, shown, sig, skip)

    def _judge_call(self, call: ast.Call, shown: str, sig: dict, skip: int) -> None:
        star = any(isinstance(a, ast.Starred) for a in call.args)
        kwstar = any(k.arg is None for k in call.keywords)
        n_pos = len(call.args) - skip
        params = sig["p"]
        posonly = sig.get("po", 0)
        kw_names = [k.arg for k in call.keywords if k.arg is not None]
        rendered = render_signature(sig)
        flags = _context_flags(call, self.parents)
        import_time = not (flags["function_level"] or flags["guarded"] or flags["conditional"])
        base = {"callee": shown, "signature": rendered, "import_time": import_time}
        if not star and not sig.get("a") and not sig.get("dc") and n_pos > len(params):
            self.add("P7", call, f"`{shown}()` takes {len(params)} positional argument(s) on the pinned version, "
                     f"{n_pos} given", fix=f"pinned signature: {shown}{rendered}",
                     data={**base, "problem": "too-many-positional", "given": n_pos})
        accepted = set(params[posonly:]) | set(sig["k"])
        rejected = [k for k in call.keywords if k.arg is not None and k.arg not in accepted and not sig.get("kw")]
        dropped = {k.arg for k in rejected if _safe_drop(shown, k.arg, kw_names, k.value)}
        for k in rejected:
            safe = k.arg in dropped
            bp = backports.for_keyword(shown, k.arg)
            rename = None if safe else _kwarg_rename(shown, k.arg, kw_names, accepted, dropped)
            extra: dict = {}
            if bp is not None:
                fix = (f"`migrate_model.py apply` installs the back-port {bp.module} (P22: {bp.what}) and "
                       "imports the class from there")
                extra["backport"] = bp.module
            elif rename is not None:
                fix = f"the pinned keyword is `{rename}=`: `{k.arg}=` becomes `{rename}=`"
                extra["rename_to"] = rename
            else:
                fix = f"drop `{k.arg}=` (an optional refinement)" if safe else f"adapt the call; pinned signature: {shown}{rendered}"
            self.add("P6", k.value, f"`{shown}()` does not accept keyword `{k.arg}` on the pinned version",
                     line=getattr(k, "lineno", call.lineno), col=getattr(k, "col_offset", call.col_offset),
                     fix=fix, autofix=safe or bool(extra),
                     data={**base, "kwarg": k.arg, "safe_drop": safe, **extra})
        if star or kwstar:
            return
        if sig.get("dc"):
            required = list(sig.get("req", ()))
            missing = [p for p in required if p not in kw_names and params.index(p) >= n_pos]
        else:
            missing = [p for i, p in enumerate(params[: sig["r"]]) if i >= n_pos and (p not in kw_names or i < posonly)]
            missing += [p for p in sig["kr"] if p not in kw_names]
        if missing:
            self.add("P7", call, f"`{shown}()` misses required argument(s) {', '.join(missing)} on the pinned version",
                     fix=f"pinned signature: {shown}{rendered}", data={**base, "problem": "missing-required",
                                                                        "missing": missing})

    # -- check 3: self.X() / super().X() ---------------------------------------------------------------

    def check_methods(self) -> None:
        for cls in self.local_classes.values():
            lin = self.linearize(("local", cls))
            if not any(k == "pinned" or (k == "external" and _normalise_external(o) not in _NO_INIT_BASES)
                       for k, o in lin[1:]):
                continue  # plain classes and mixins: attributes may come from anywhere
            for node in self.subtree(cls):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if self.enclosing_class(node) is not cls:
                    continue
                func = node.func
                if isinstance(func.value, ast.Name) and func.value.id == "self":
                    via, entries = "self", lin
                elif (isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name)
                      and func.value.func.id == "super" and not func.value.args):
                    via, entries = "super", lin[1:]
                else:
                    continue
                name = func.attr
                if self.hierarchy_defines(entries, name) is not False:
                    continue
                if via == "self" and self.subclass_defines(cls, name):
                    continue
                if name in self.hasattr_names:
                    continue
                pinned = [o[0].qualname for k, o in entries if k == "pinned"]
                # only torch bases: the method may be dead code of the file itself; a pinned vLLM base
                # whose newer version added the method (``_mark_tower_model``) is the case that breaks
                severity = "error" if pinned else "warning"
                self.add("P4", node, f"`{via}{'()' if via == 'super' else ''}.{name}()` in class {cls.name}: no class "
                         f"of its hierarchy on the pinned version defines `{name}`",
                         fix=("unwrap the context manager (its body runs directly)"
                              if name in _MARK_CONTEXT_MANAGERS else "define it or remove the call"),
                         autofix=name in _MARK_CONTEXT_MANAGERS, severity=severity,
                         data={"method": name, "via": via, "class": cls.name, "pinned_bases": pinned})

    # -- check 4: vLLM config attributes ----------------------------------------------------------------

    def check_config_attributes(self) -> None:
        aliases = self._config_aliases()
        for node in self.nodes:
            if not (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)):
                continue
            base = node.value
            kind = None
            if isinstance(base, ast.Attribute) and base.attr in CONFIG_CLASSES:
                kind = base.attr
            elif isinstance(base, ast.Name):
                kind = aliases.get(base.id)
                if CONFIG_CLASSES.get(base.id) and self._trusted_config_name(base):
                    kind = base.id
            if not kind or CONFIG_CLASSES.get(kind) is None or node.attr in self.hasattr_names:
                continue
            if node.attr.startswith("__"):
                continue
            sym = self._config_class(kind)
            if sym is None or self.apis.class_has_member(sym, node.attr) is not False:
                continue
            rename = CONFIG_ATTR_RENAMES.get((kind, node.attr))
            data = {"config": kind, "config_class": sym.qualname, "attr": node.attr}
            if rename:
                data["rename"] = rename
            self.add("P9", node, f"`{kind}.{node.attr}`: {sym.name} of the pinned vLLM has no attribute `{node.attr}`",
                     fix=(f"use `{kind}.{rename}`" if rename else f"read it with getattr({kind}, {node.attr!r}, "
                          "<default>) or drop the feature"), autofix=bool(rename), data=data)

    def subtree(self, node: ast.AST) -> list[ast.AST]:
        """All nodes below ``node`` (cached: classes and functions are walked by several checks)."""
        key = id(node)
        found = self._subtrees.get(key)
        if found is None:
            found = self._subtrees[key] = list(ast.walk(node))
        return found

    def _trusted_config_name(self, node: ast.Name) -> bool:
        """A variable called e.g. ``cache_config`` holds the vLLM config class: every binding of it in the
        enclosing function is a parameter annotated with that class (or unannotated) or ``X.cache_config``."""
        cls_name = CONFIG_CLASSES[node.id]
        scope = self.enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        while scope is not None:
            bound = False
            args = scope.args
            for a in args.posonlyargs + args.args + args.kwonlyargs:
                if a.arg == node.id:
                    bound = True
                    if a.annotation is not None and cls_name not in ast.unparse(a.annotation):
                        return False
            for sub in self.subtree(scope):
                if isinstance(sub, (ast.Assign, ast.AnnAssign)):
                    targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                    if any(isinstance(t, ast.Name) and t.id == node.id for t in targets):
                        bound = True
                        v = sub.value
                        if not (isinstance(v, ast.Attribute) and v.attr == node.id):
                            return False
                elif isinstance(sub, (ast.For, ast.With, ast.NamedExpr)) and node.id in {
                        n.id for n in ast.walk(sub) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}:
                    return False
            if bound:
                return True
            scope = self.enclosing(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        return False

    def _config_class(self, kind: str) -> Symbol | None:
        if kind not in self._cfg_cache:
            sym = self.apis.resolve("vllm.config", CONFIG_CLASSES[kind])
            self._cfg_cache[kind] = sym if sym is not None and sym.kind == "class" else None
        return self._cfg_cache[kind]

    def _config_aliases(self) -> dict[str, str]:
        """``cc = vllm_config.cache_config`` style aliases (a name bound only that way)."""
        out: dict[str, str] = {}
        spoiled: set[str] = set()
        for node in self.nodes:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                v = node.value
                if isinstance(v, ast.Attribute) and v.attr in CONFIG_CLASSES and name not in CONFIG_CLASSES:
                    if out.get(name, v.attr) != v.attr:
                        spoiled.add(name)
                    out[name] = v.attr
        stores: dict[str, int] = {}
        for node in self.nodes:
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                stores[node.id] = stores.get(node.id, 0) + 1
            elif isinstance(node, ast.arg):
                stores[node.arg] = stores.get(node.arg, 0) + 1
        counted: dict[str, int] = {}
        for node in self.nodes:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Attribute) and node.value.attr in CONFIG_CLASSES):
                counted[node.targets[0].id] = counted.get(node.targets[0].id, 0) + 1
        return {n: k for n, k in out.items() if n not in spoiled and stores.get(n, 0) == counted.get(n, 0)}

    # -- check 7: custom ops ------------------------------------------------------------------------------

    def check_custom_ops(self) -> None:
        pinned_ops = self.apis.vllm.custom_ops()
        plugin = self.apis.extra.get(PLUGIN)
        plugin_ops: dict[str, str] = {}
        if plugin is not None:
            for mod, rec in plugin.modules.items():
                if mod == self.ctx.module:
                    continue
                for op in rec.get("ops", ()):
                    plugin_ops.setdefault(op, mod)
        for node, name in _op_registrations(self.tree, self.nodes):
            flags = _context_flags(node, self.parents)
            if flags["guarded"] or flags["conditional"] or flags["function_level"]:
                continue  # guarded registration: the plugin's way to avoid a duplicate
            where = pinned_ops.get(name)
            if where:
                # certain when this file imports the registering module (e.g. to subclass from it);
                # otherwise only when something else imports that module too
                imported = any(b.module == where or b.module.startswith(where + ".") for b in self.bindings)
                self.add("P11", node, f"custom op {name!r} is already registered by the pinned vLLM ({where}): "
                         "registering it again raises `Duplicate op name`" + ("" if imported else
                                                                              " once both modules are imported"),
                         fix="rename the op or guard the registration (e.g. `if not hasattr(torch.ops.vllm, ...)`)",
                         severity="error" if imported else "warning",
                         data={"op": name, "registered_by": where, "pinned": True, "certain": imported,
                               "import_time": True})
            elif name in plugin_ops:
                self.add("P11", node, f"custom op {name!r} is also registered by plugin module {plugin_ops[name]}",
                         fix="register it in one module and import it from there", data={
                             "op": name, "registered_by": plugin_ops[name], "pinned": False, "import_time": True})
        if plugin is None:
            return
        # the same ops reached through two plugin module paths
        for b in self.bindings:
            if b.type_checking or b.guarded or b.module.split(".")[0] != PLUGIN:
                continue
            target = b.module if b.name is None else b.module
            sym = self.apis.resolve(b.module, b.name) if b.name else None
            if sym is not None and sym.kind == "module":
                target = sym.module
            elif sym is not None and sym.kind == "class":
                target = sym.module
            rec = plugin.module(target)
            if not rec:
                continue
            for op in rec.get("ops", ()):
                for mod, other in plugin.modules.items():
                    if mod in (target, self.ctx.module) or op not in other.get("ops", ()):
                        continue
                    self.add("P11", b.node, f"`{target}` registers custom op {op!r}, which `{mod}` registers too: "
                             "importing both raises `Duplicate op name`", fix="import the op classes from one "
                             "module path (the one the parent model uses)",
                             data={"op": op, "module": target, "other_module": mod, "two_paths": True,
                                   "import_time": b.import_time})
                    break

    # -- check 8: __init__ that skips its parent ---------------------------------------------------------------

    def check_incomplete_init(self) -> None:
        for cls in self.local_classes.values():
            init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
            if init is None:
                continue
            skips = False
            calls_super = False
            for node in ast.walk(init):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__":
                    v = node.func.value
                    if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super":
                        calls_super = True
                    else:
                        sym = self.resolve_expr(v)
                        written = dotted(v) or ""
                        if (sym is not None and sym.kind == "external" and _normalise_external(sym.qualname)
                                == "torch.nn.Module") or written in ("nn.Module", "torch.nn.Module"):
                            skips = True
                        elif sym is not None and sym.kind == "class":
                            calls_super = True  # an explicit parent init
            if not skips or calls_super:
                continue
            lin = self.linearize(("local", cls))
            own, dynamic = self.local_members(cls)
            if dynamic:
                continue
            skipped = [(o[0], o[1]) for k, o in lin[1:] if k == "pinned"]
            if not skipped:
                continue
            set_by_init: set[str] = set()
            for _, rec in skipped:
                set_by_init |= set(rec.get("sets", {}).get("__init__", ()))
            overridden = set(own)
            missing: dict[str, list[str]] = {}
            for sym, rec in skipped:
                for method, reads in rec.get("reads", {}).items():
                    if method == "__init__" or method in overridden:
                        continue
                    for attr in reads:
                        if attr in set_by_init and attr not in own and not self._class_level(skipped, attr):
                            missing.setdefault(attr, []).append(f"{sym.name}.{method}")
                overridden |= set(rec["methods"])
            if missing:
                attrs = sorted(missing)
                parent = skipped[0][0].qualname
                # certain when a reading method runs anyway: the framework's forward, or one this class calls
                called = {n.func.attr for n in self.subtree(cls) if isinstance(n, ast.Call)
                          and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                          and n.func.value.id == "self"}
                certain = any(m.split(".")[-1] in called or m.split(".")[-1] == "forward"
                              for ms in missing.values() for m in ms)
                self.add("P12", init, f"{cls.name}.__init__ calls nn.Module.__init__ instead of {skipped[0][0].name}."
                         f"__init__ and never sets {', '.join(attrs)}, which inherited methods read",
                         fix="set these attributes in the override (as the parent's __init__ does)",
                         severity="error" if certain else "warning",
                         data={"class": cls.name, "parent": parent, "missing": attrs, "certain": certain,
                               "read_by": {a: sorted(set(m)) for a, m in missing.items()}})

    @staticmethod
    def _class_level(classes: list[tuple], attr: str) -> bool:
        for _, rec in classes:
            sets = set().union(*[set(v) for v in rec.get("sets", {}).values()]) if rec.get("sets") else set()
            if attr in rec["methods"] or (attr in rec["attrs"] and attr not in sets):
                return True
        return False

    # -- check 9: merged projections built as ColumnParallelLinear ---------------------------------------

    def check_merged_projections(self) -> None:
        for node in self.nodes:
            if not isinstance(node, ast.Call):
                continue
            sym = self.resolve_expr(node.func)
            if sym is None or sym.name != "ColumnParallelLinear" or sym.kind != "class":
                continue
            size = next((k.value for k in node.keywords if k.arg == "output_size"), None)
            if size is None and len(node.args) >= 2:
                size = node.args[1]
            terms = self._sum_terms(size, node)
            if len(terms) < 2 or len({ast.dump(t) for t in terms}) < 2:
                continue
            target = self.parents.get(node)
            attr = None
            if isinstance(target, ast.Assign) and isinstance(target.targets[0], ast.Attribute):
                attr = target.targets[0].attr
            if attr and self._has_custom_loader(attr):
                continue
            parts = [ast.unparse(t) for t in terms]
            self.add("P8", node, f"ColumnParallelLinear{' ' + attr if attr else ''} has output_size "
                     f"{' + '.join(parts)}: a merged projection of sub-projections of different sizes is sharded "
                     "wrongly under tensor parallelism", fix="use MergedColumnParallelLinear(input_size, "
                     f"output_sizes=[{', '.join(parts)}])", data={"attr": attr, "output_sizes": parts})

    def _sum_terms(self, node: ast.AST | None, call: ast.Call) -> list[ast.AST]:
        if node is None:
            return []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self._sum_terms(node.left, call) + self._sum_terms(node.right, call)
        # one level of indirection: a name / self.attr assigned a sum in the same function
        func = self.enclosing(call, (ast.FunctionDef, ast.AsyncFunctionDef))
        if func is not None and isinstance(node, (ast.Name, ast.Attribute)):
            written = ast.dump(node).replace("ctx=Load()", "")
            for stmt in ast.walk(func):
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                        and ast.dump(stmt.targets[0]).replace("ctx=Store()", "") == written
                        and isinstance(stmt.value, ast.BinOp) and isinstance(stmt.value.op, ast.Add)):
                    return self._sum_terms(stmt.value, call) if stmt.lineno < call.lineno else []
        return [node]

    def _has_custom_loader(self, attr: str) -> bool:
        """``set_weight_attrs(self.<attr>.weight, {"weight_loader": ...})`` shards the merged parts itself."""
        for node in self.nodes:
            if isinstance(node, ast.Call) and (dotted(node.func) or "").endswith("set_weight_attrs") and node.args:
                if attr in (dotted(node.args[0]) or "").split("."):
                    return True
        return False

    # -- check 6 (one file): config bridges ---------------------------------------------------------------

    def check_config_bridges(self) -> None:
        for cls in self.local_classes.values():
            lin = self.linearize(("local", cls))
            if not any(k == "pinned" and o[0].name in ("PretrainedConfig", "PreTrainedConfig")
                       and o[0].module.startswith("transformers") for k, o in lin):
                continue
            if any(k == "unknown" for k, _ in lin):
                continue
            has_type = False
            for k, o in lin:
                if k == "local" and "model_type" in self.local_members(o)[0]:
                    has_type = True
                elif k == "pinned" and o[0].name not in ("PretrainedConfig", "PreTrainedConfig") and (
                        "model_type" in o[1]["attrs"]):
                    has_type = True
            if not has_type:
                self.add("P15", cls, f"config class {cls.name} has no `model_type`: vLLM cannot map the "
                         "checkpoint's config.json to it", fix='add `model_type = "<model_type of config.json>"`',
                         data={"class": cls.name, "problem": "no-model-type"})

    # -- check 10: cleanliness ---------------------------------------------------------------------------

    def check_cleanliness(self) -> None:
        docstrings = set()
        for node in self.nodes:
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    docstrings.add(id(first.value))
        for node in self.nodes:
            if isinstance(node, ast.ExceptHandler) and node.type is None:
                self.add("P19", node, "bare `except:` also catches KeyboardInterrupt/SystemExit and hides real errors",
                         fix="catch a specific exception (at least `except Exception:`)", data={"kind": "bare-except"})
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if HARDCODED_PATH.search(node.value):
                    self.add("P19", node, f"hard-coded path {node.value[:60]!r}", fix="take the path from "
                             "configuration or an argument", data={"kind": "hard-coded-path", "value": node.value})
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "breakpoint":
                self.add("P19", node, "leftover `breakpoint()`", fix="remove it", data={"kind": "debug"})
        for b in self.bindings:
            if b.module.split(".")[0] in DEBUG_MODULES:
                self.add("P19", b.node, f"leftover debug import `{b.module}`", fix="remove it",
                         data={"kind": "debug", "module": b.module})

    def run(self) -> list[Finding]:
        self.check_imports()
        self.check_module_attributes()
        self.check_calls()
        self.check_methods()
        self.check_config_attributes()
        self.check_custom_ops()
        self.check_incomplete_init()
        self.check_merged_projections()
        self.check_config_bridges()
        self.check_cleanliness()
        return self.findings

PLUGIN = "vllm_fl"

# compiled extension modules of the vLLM wheel (not in a source index, but importable)
COMPILED_MODULES = frozenset({
    "vllm._C", "vllm._moe_C", "vllm._flashmla_C", "vllm._flashmla_extension_C", "vllm.cumem_allocator",
    "vllm.vllm_flash_attn._vllm_fa2_C", "vllm.vllm_flash_attn._vllm_fa3_C",
})

# bases whose __init__ takes nothing we could judge against: skipped when looking for __init__
_NO_INIT_BASES = frozenset({"builtins.object", "object", "abc.ABC", "typing.Generic", "typing.Protocol"})

# decorators that keep a function's or class's call signature
_HARMLESS_DECORATORS = frozenset({
    "staticmethod", "classmethod", "property", "cached_property", "lru_cache", "cache", "overload",
    "abstractmethod", "wraps", "no_grad", "inference_mode", "contextmanager", "deprecated", "final",
    "override", "dataclass", "config", "register", "register_oot", "runtime_checkable", "setter",
    "total_ordering", "unique", "singledispatchmethod",
})

# upstream context managers that mark sub-modules; the migration unwraps them
_MARK_CONTEXT_MANAGERS = frozenset({"_mark_tower_model", "_mark_language_model", "_mark_composite_model"})


def _decorators(node) -> list[str]:
    out = []
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        out.append(dotted(target) or "?")
    return out


def _harmless(decorator: str) -> bool:
    return decorator.rsplit(".", 1)[-1] in _HARMLESS_DECORATORS


def _callee_name(callee: str) -> str:
    return callee.split(".")[-1] if not callee.endswith("__init__") else callee.split(".")[-2]


def _safe_drop(callee: str, kwarg: str, passed: list[str] = (), value: ast.expr | None = None) -> bool:
    last = _callee_name(callee)
    for (name, kw), safe in SAFE_DROP_KWARGS.items():
        if kw == kwarg and last == name:
            return safe
    condition = SAFE_DROP_WHEN.get((last, kwarg))
    if condition is not None:
        literal, partner = condition
        value_ok = literal is None or (isinstance(value, ast.Constant) and value.value == literal)
        return value_ok and partner in passed
    return kwarg in SAFE_DROP_KWARG_NAMES


def _kwarg_rename(callee: str, kwarg: str, passed: list[str], accepted: set[str],
                  dropped: set[str] = frozenset()) -> str | None:
    """The pinned spelling of ``kwarg`` when the table has one and the call allows it."""
    entry = KWARG_RENAMES.get((_callee_name(callee), kwarg))
    if entry is None:
        return None
    new, exclusive = entry
    if new not in accepted or new in passed or exclusive & (set(passed) - dropped):
        return None
    return new


def render_signature(sig: dict) -> str:
    parts = []
    po = sig.get("po", 0)
    for i, p in enumerate(sig["p"]):
        if sig.get("dc"):
            parts.append(p + ("" if p in sig.get("req", ()) else "=..."))
        else:
            parts.append(p + ("=..." if i >= sig["r"] else ""))
        if po and i == po - 1:
            parts.append("/")
    if sig.get("a"):
        parts.append("*args")
    elif sig["k"]:
        parts.append("*")
    for k in sig["k"]:
        parts.append(k + ("" if k in sig["kr"] else "=..."))
    if sig.get("kw"):
        parts.append("**kwargs")
    return "(" + ", ".join(parts) + ")"


def _op_registrations(tree: ast.AST, nodes: list | None = None) -> list[tuple[ast.AST, str]]:
    """(node, op name) of ``CustomOp.register("x")`` / ``direct_register_custom_op(op_name="x")``."""
    out = []
    for node in nodes if nodes is not None else ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = dotted(node.func) or ""
        if func.endswith("CustomOp.register") or func.endswith("CustomOp.register_oot"):
            key, pos = "name", 0
        elif func.rsplit(".", 1)[-1] == "direct_register_custom_op":
            key, pos = "op_name", 0
        else:
            continue
        name = None
        for kw in node.keywords:
            if kw.arg == key and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                name = kw.value.value
        if name is None and len(node.args) > pos and isinstance(node.args[pos], ast.Constant):
            name = node.args[pos].value if isinstance(node.args[pos].value, str) else None
        if name:
            out.append((node, name))
    return out


# rules whose error findings, when they run at import time, make ``import`` of the file fail
IMPORT_FAILURE_RULES = frozenset({"P1", "P2", "P3", "P5", "P6", "P7", "P11", "P13", "P14", "P18", "P20"})


def import_blockers(findings: list[Finding]) -> list[Finding]:
    """The error findings that make importing the file fail (as opposed to failing later, at run time)."""
    out = []
    for f in findings:
        if f.severity != "error" or f.rule not in IMPORT_FAILURE_RULES:
            continue
        if f.rule == "P20" or f.data.get("import_time", False):
            out.append(f)
        elif f.rule == "P11" and f.data.get("import_time", True):
            out.append(f)
    return out


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
    except Exception as exc:  # a bug of ours must not hide the other files' results
        return [Finding("P20", ctx.path, 1, 0, f"internal error of the analysis ({type(exc).__name__}: {exc}); "
                        "this file was not checked", severity="warning", data={"internal_error": True})]
    uniq = {}
    for f in findings:
        uniq.setdefault((f.rule, f.line, f.col, f.message), f)
    return sorted(uniq.values(), key=lambda f: (f.line, f.col, f.rule))


__all__ = ["AnalysisContext", "ImportBinding", "Usage", "analyze_source", "analyze_tree", "custom_op_names",
           "import_bindings", "name_usage", "parse_text", "Symbol"]


# --------------------------------------------------------------------------------------------
# check 6 across files: a config bridge against the pinned parents of the model that uses it
# --------------------------------------------------------------------------------------------


def _class_sets(node: ast.ClassDef) -> set[str]:
    """Attributes a config class defines: class attributes, ``self.X = ...`` anywhere, attribute_map keys."""
    out: set[str] = set()
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    out.add(t.id)
                    if t.id == "attribute_map" and isinstance(stmt.value, ast.Dict):
                        out.update(k.value for k in stmt.value.keys
                                   if isinstance(k, ast.Constant) and isinstance(k.value, str))
    for sub in ast.walk(node):
        if (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store) and isinstance(sub.value, ast.Name)
                and sub.value.id == "self"):
            out.add(sub.attr)
        elif (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "setattr"
              and len(sub.args) >= 2 and isinstance(sub.args[1], ast.Constant)):
            out.add(str(sub.args[1].value))
    return out


def bridge_field_findings(tree: ast.Module, ctx: AnalysisContext, plugin_files: dict) -> list[Finding]:
    """P15: fields that the pinned parent classes of this file's models read directly (``config.X``)
    but the config bridge the file imports from ``vllm_fl.configs`` never sets.

    A warning: a field may also arrive from the checkpoint's config.json through ``**kwargs``.
    """
    an = _Analyzer(tree, ctx)
    bridges = [b for b in an.bindings if b.name and b.module.startswith(f"{PLUGIN}.configs") and not b.level]
    if not bridges:
        return []
    reads: dict[str, set[str]] = {}
    for cls in an.local_classes.values():
        lin = an.linearize(("local", cls))
        if any(k == "unknown" for k, _ in lin):
            continue
        for kind, obj in lin[1:]:
            if kind == "pinned" and obj[0].module.startswith("vllm.model_executor.models"):
                for attr in obj[1].get("cfg", ()):
                    reads.setdefault(attr, set()).add(obj[0].name)
    if not reads:
        return []
    out: list[Finding] = []
    pretrained = ctx.apis.resolve("transformers", "PretrainedConfig")
    base_members: set[str] = set()
    if pretrained is not None and pretrained.kind == "class":
        for _, rec in ctx.apis.mro(pretrained)[0]:
            base_members |= set(rec["methods"]) | set(rec["attrs"])
    for b in bridges:
        path = plugin_files.get(b.module)
        if path is None:
            continue
        btree, _ = parse_text(path.read_bytes(), str(path))
        if btree is None:
            continue
        cls = next((n for n in btree.body if isinstance(n, ast.ClassDef) and n.name == b.name), None)
        if cls is None:
            continue
        defined = _class_sets(cls) | base_members
        if "__getattr__" in defined or any(a.endswith("_config") for a in _class_sets(cls)):
            continue  # nested sub-configs: the parents may be reading those
        missing = sorted(a for a in reads if a not in defined)
        if missing:
            out.append(Finding(
                "P15", ctx.path, b.line, b.col,
                f"config bridge {b.name} ({b.module}) never sets {', '.join(missing)}, which the pinned parent "
                f"class(es) {', '.join(sorted({c for a in missing for c in reads[a]}))} read as config.X",
                severity="warning", fix="add these fields to the bridge with upstream's defaults",
                data={"class": b.name, "module": b.module, "missing": missing,
                      "read_by": {a: sorted(reads[a]) for a in missing}}))
    return out
