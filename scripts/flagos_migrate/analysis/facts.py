"""Per-module facts that every check of one file shares: the tree, walked once, its import
bindings and name usage, its local classes, and the resolution of its names to pinned symbols.

``ModuleFacts`` is built once per file; each check reads it and adds findings to it. Caches that
several checks fill (sub-trees, class hierarchies) live here so no check walks a class twice.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cached_property

from flagos_migrate.astutil import (
    ImportBinding,
    Walk,
    import_bindings,
    name_usage,
    source_lines,
)
from flagos_migrate.catalog.findings import Finding
from flagos_migrate.pinned.api_index import PinnedApis, Symbol

PLUGIN = "vllm_fl"


@dataclass
class AnalysisContext:
    apis: PinnedApis  # pinned vllm + transformers, plus the plugin's vllm_fl via apis.with_package(...)
    module: str  # dotted name the file has or will have, e.g. "vllm_fl.models.qwen3_5"
    path: str  # path shown in findings
    origin_module: str | None = None  # upstream module the text came from (relative imports resolve there)


_RESOLVED_KINDS = ("module", "class", "function", "var", "external")


class ModuleFacts:
    def __init__(self, tree: ast.Module, ctx: AnalysisContext, walked: Walk | None = None):
        """``walked``: ``Walk(tree)`` when the caller has it already (the validator walks each file
        once for the plugin index and every check)."""
        self.tree = tree
        self.ctx = ctx
        self.apis = ctx.apis
        self.findings: list[Finding] = []
        self.source: str | None = None  # the file's text, when the caller has it (comments are not in the tree)
        self.walk = walked if walked is not None else Walk(tree)
        self.nodes, self.parents, self._by_type = self.walk.nodes, self.walk.parents, self.walk.by_type
        self.is_package = ctx.path.endswith("__init__.py")
        base = ctx.origin_module or ctx.module
        self.bindings = import_bindings(tree, base, self.is_package and not ctx.origin_module, self.parents,
                                        self.nodes, self._by_type)
        self.usage = name_usage(tree, self.parents, self.nodes, self._by_type, self.walk.subtree)
        # alias -> binding made at module level (the last one wins, like Python)
        self.module_bindings: dict[str, ImportBinding] = {}
        for b in self.bindings:
            if not b.function_level and not b.class_level:
                self.module_bindings[b.alias] = b
        self.local_classes = {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}
        self.rebound = self._rebound() - set(self.local_classes)
        self._subtrees: dict[int, list] = {}
        # answers of resolve_expr: a name means one thing in the whole file (rebound names mean
        # nothing), an attribute chain is resolved once per node (checks ask again for each link)
        self._resolved_names: dict[str, Symbol | None] = {}
        self._resolved_nodes: dict[ast.AST, Symbol | None] = {}
        self.memo: dict = {}  # per-file answers a check keeps for itself (key: a tuple naming the check)
        # attribute names tested with hasattr(...) anywhere: reads of them are guarded
        self.hasattr_names = {
            n.args[1].value for n in self.of_type(ast.Call)
            if isinstance(n.func, ast.Name) and n.func.id == "hasattr"
            and len(n.args) >= 2 and isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str)
        }

    @cached_property
    def source_lines(self) -> list[str]:
        """The file's lines with their ends, split once (ast.get_source_segment re-splits the
        whole file on every call, in a Python loop)."""
        return source_lines(self.source or "")

    @cached_property
    def names_read(self) -> frozenset[str]:
        """Every name and attribute name the file spells (``x`` and ``.x``)."""
        return frozenset([n.id for n in self.of_type(ast.Name)] + [n.attr for n in self.of_type(ast.Attribute)])

    @cached_property
    def hierarchy(self):
        """Class hierarchies of the local classes (built on first use: many files need none)."""
        from flagos_migrate.analysis.hierarchy import Hierarchy

        return Hierarchy(self)

    # -- findings -------------------------------------------------------------------------------

    def add(self, rule: str, node: ast.AST | None, message: str, line: int | None = None, col: int | None = None,
            **kw) -> Finding:
        f = Finding(rule, self.ctx.path, line if line is not None else getattr(node, "lineno", 1),
                    col if col is not None else getattr(node, "col_offset", 0), message, **kw)
        self.findings.append(f)
        return f

    def found(self, *rules: str) -> list[Finding]:
        """Findings made so far by earlier checks (checks that build on others run after them)."""
        return [f for f in self.findings if f.rule in rules]

    # -- walking ----------------------------------------------------------------------------------

    def of_type(self, *types: type) -> list[ast.AST]:
        """The file's nodes of exactly these types (``ast.Call``, not subclasses): walk order within
        one type; several types come one type after another."""
        if len(types) == 1:
            return self._by_type.get(types[0], [])
        return [n for t in types for n in self._by_type.get(t, ())]

    def subtree(self, node: ast.AST) -> list[ast.AST]:
        """All nodes below ``node`` (cached: classes and functions are walked by several checks)."""
        key = id(node)
        found = self._subtrees.get(key)
        if found is None:
            found = self._subtrees[key] = self.walk.subtree(node)
        return found

    def below(self, node: ast.AST, *types: type) -> list[ast.AST]:
        """The nodes of exactly these types in ``subtree(node)``, in its order (read off per-type lists)."""
        return self.walk.below(node, *types)

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

    # -- resolving names of the file to pinned symbols ------------------------------------------

    def known_package(self, module: str) -> bool:
        return self.apis.index_for(module) is not None

    def _rebound(self) -> set[str]:
        """Names assigned other than by one module-level import: we cannot say what they hold."""
        names: set[str] = {n.id for n in self.of_type(ast.Name) if isinstance(n.ctx, (ast.Store, ast.Del))}
        names.update(n.arg for n in self.of_type(ast.arg))
        names.update(n.name for n in self.of_type(ast.FunctionDef, ast.AsyncFunctionDef))
        top = set(map(id, self.tree.body))
        names.update(n.name for n in self.of_type(ast.ClassDef) if id(n) not in top)
        names.update(n.name for n in self.of_type(ast.ExceptHandler) if n.name)
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
            try:
                return self._resolved_names[node.id]
            except KeyError:
                found = self._resolved_names[node.id] = self._resolve_name(node.id)
                return found
        if isinstance(node, ast.Attribute):
            try:
                return self._resolved_nodes[node]
            except KeyError:
                found = self._resolved_nodes[node] = self._resolve_attribute(node)
                return found
        return None

    def _resolve_name(self, name: str) -> Symbol | None:
        if name in self.rebound:
            return None
        b = self.module_bindings.get(name)
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
        return sym if sym is not None and sym.kind in _RESOLVED_KINDS else None

    def _resolve_attribute(self, node: ast.Attribute) -> Symbol | None:
        base = self.resolve_expr(node.value)
        if base is not None and base.kind == "external":
            return Symbol(base.qualname, node.attr, "external")
        if base is None or base.kind != "module" or not self.apis.has_module(base.module):
            return None
        sym = self.apis.resolve(base.module, node.attr)
        return sym if sym is not None and sym.kind in _RESOLVED_KINDS else None
