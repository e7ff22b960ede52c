"""AST facts shared by the index builder, the analysis, the rewriter and the plugin reader.

Pure functions over ``ast`` trees (no I/O, no index): dotted names, relative-import resolution,
signatures, and the one walk over import statements (``import_bindings``) with where each runs,
plus ``name_usage`` (run time / annotations only / unused). Everything that asks "what does this
file import, and is it used" reads these, so the answer is decided in one place.
"""

from __future__ import annotations

import ast
import re
import warnings
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

# a line and its end as Python's tokenizer ends lines (not at \f, \x1c or \u2028 like str.splitlines)
_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")

# exceptions whose handler makes an import in the ``try`` body optional
GUARD_EXCEPTIONS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def signature_of(args: ast.arguments, drop_first: bool = False) -> dict:
    """Compact signature; ``drop_first`` removes ``self``/``cls`` of methods."""
    positional = [a.arg for a in args.posonlyargs + args.args]
    posonly = len(args.posonlyargs)
    n_required = len(positional) - len(args.defaults)
    if drop_first and positional:
        positional = positional[1:]
        n_required = max(0, n_required - 1)
        posonly = max(0, posonly - 1)
    kwonly = [a.arg for a in args.kwonlyargs]
    kw_required = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    sig = {"p": positional, "r": n_required, "k": kwonly, "kr": kw_required}
    if posonly:
        sig["po"] = posonly
    if args.vararg:
        sig["a"] = 1
    if args.kwarg:
        sig["kw"] = 1
    return sig


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for Name/Attribute chains, the base of a subscript, else None."""
    if isinstance(node, ast.Subscript):
        return dotted(node.value)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def is_type_checking_test(test: ast.AST) -> bool:
    name = dotted(test)
    return name in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def resolve_relative(current: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute module of ``from <level dots><target> import ...`` inside module ``current``."""
    parts = current.split(".")
    if not is_package:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    base = ".".join(parts)
    if target:
        return f"{base}.{target}" if base else target
    return base


def decorator_names(node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    out = []
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = dotted(target)
        if name:
            out.append(name)
    return out


def string_arg(call: ast.Call, keyword: str, position: int) -> str | None:
    for kw in call.keywords:
        if kw.arg == keyword and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            return kw.value.value
    if len(call.args) > position:
        arg = call.args[position]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
    return None


def parse_source(text: bytes | str, relpath: str) -> ast.Module | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old files are not our concern
        try:
            return ast.parse(text, filename=relpath)
        except (SyntaxError, ValueError):
            return None



class Walk:
    """Every node of a tree walked once, breadth-first like ast.walk: the nodes, each node's parent,
    the nodes of each type (each list in walk order), and where each node's children start in the
    walk. The children of consecutive nodes are consecutive, so the nodes below any node, in the
    order ast.walk gives them, are a few slices of the one walk: no check walks a subtree again."""

    __slots__ = ("nodes", "parents", "by_type", "_starts", "_pos", "_type_pos")

    def __init__(self, tree: ast.AST):
        nodes: list[ast.AST] = [tree]
        parents: dict[ast.AST, ast.AST] = {}
        by_type: dict[type, list[ast.AST]] = defaultdict(list)
        starts: list[int] = []  # starts[i]: index in ``nodes`` of the first child of nodes[i]
        append, node_type, start, node_fields = nodes.append, ast.AST, starts.append, _NODE_FIELDS.get
        for node in nodes:  # the list grows while it is read: breadth-first
            cls = node.__class__
            by_type[cls].append(node)
            start(len(nodes))
            fields = node_fields(cls)
            if fields is None:
                fields = _node_fields(cls)
            for name in fields:
                value = getattr(node, name, None)
                if value.__class__ is list:
                    for item in value:
                        if isinstance(item, node_type):
                            parents[item] = node
                            append(item)
                elif isinstance(value, node_type):
                    parents[value] = node
                    append(value)
        starts.append(len(nodes))
        self.nodes, self.parents, self.by_type, self._starts = nodes, parents, by_type, starts
        self._pos: dict[ast.AST, int] | None = None
        self._type_pos: dict[type, list[int]] = {}

    def _index(self, node: ast.AST) -> int | None:
        if self._pos is None:
            self._pos = {n: i for i, n in enumerate(self.nodes)}
        return self._pos.get(node)

    def subtree(self, node: ast.AST) -> list[ast.AST]:
        """``walk(node)`` (same nodes, same order) for a node of this tree, read off the one walk
        level by level: the descendants at each depth are one slice."""
        i = self._index(node)
        if i is None:
            return walk(node)
        nodes, starts = self.nodes, self._starts
        out = nodes[i:i + 1]
        a, b = i, i + 1
        while True:
            a, b = starts[a], starts[b]
            if a == b:
                return out
            out += nodes[a:b]

    def below(self, node: ast.AST, *types: type) -> list[ast.AST]:
        """``[n for n in walk(node) if type(n) in types]`` (same order) without testing every node:
        the nodes of a type at each depth below ``node`` are one slice of that type's list."""
        i = self._index(node)
        if i is None or any(issubclass(t, _SHARED_NODES) for t in types):
            return [n for n in self.subtree(node) if type(n) in types]
        if len(types) == 1:
            return [n for _, n in self._below(i, types[0])]
        found = [pair for t in types for pair in self._below(i, t)]
        found.sort(key=_first)  # back into walk order
        return [n for _, n in found]

    def _below(self, i: int, t: type) -> list[tuple[int, ast.AST]]:
        """(walk position, node) of the nodes of type ``t`` below nodes[i] (itself included)."""
        nodes = self.by_type.get(t)
        if not nodes:
            return []
        where = self._type_pos.get(t)
        if where is None:
            pos = self._pos
            where = self._type_pos[t] = [pos[n] for n in nodes]
        out: list[tuple[int, ast.AST]] = []
        starts = self._starts
        a, b = i, i + 1
        while a < b:
            lo = bisect_left(where, a)
            hi = bisect_left(where, b, lo)
            out.extend(zip(where[lo:hi], nodes[lo:hi]))
            a, b = starts[a], starts[b]
        return out


def _first(pair: tuple) -> int:
    return pair[0]


# fields that hold a name, a number or a string in every node type (``Name.id``, ``alias.asname``)
# and the types whose other fields do too: the walk reads only the fields that can hold nodes
_SCALAR_FIELDS = frozenset({"id", "attr", "arg", "name", "asname", "module", "level", "kind", "conversion",
                            "is_async", "type_comment", "simple", "tag"})
_NODE_FIELDS: dict[type, tuple[str, ...]] = {ast.Constant: (), ast.Global: (), ast.Nonlocal: ()}
if hasattr(ast, "MatchSingleton"):
    _NODE_FIELDS[ast.MatchSingleton] = ()


def _node_fields(cls: type) -> tuple[str, ...]:
    fields = _NODE_FIELDS[cls] = tuple(f for f in cls._fields if f not in _SCALAR_FIELDS)
    return fields


# node types whose instances the parser shares between places (``ast.Load()``, ``ast.Add()``): one
# object at many positions of the walk, so they have no one position
_SHARED_NODES = (ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop)


def walk_indexed(tree: ast.AST) -> tuple[list[ast.AST], dict[ast.AST, ast.AST], dict[type, list[ast.AST]]]:
    """Every node (breadth-first, like ast.walk), each node's parent, and the nodes of each type
    (each list in walk order), in one pass: the checks of a file read the lists of the types they
    look at instead of testing every node again."""
    w = Walk(tree)
    return w.nodes, w.parents, w.by_type


def source_lines(source: str) -> list[str]:
    """Lines with their ends, split where Python's tokenizer splits (\\r\\n, \\r, \\n only), as
    ast.get_source_segment splits them."""
    return _LINE_RE.findall(source)


def source_segment(lines: list[str], node: ast.AST) -> str | None:
    """``ast.get_source_segment`` over lines split once by ``source_lines`` (offsets are UTF-8 bytes)."""
    end_lineno, end_col = getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
    if end_lineno is None or end_col is None:
        return None
    first, last = node.lineno - 1, end_lineno - 1
    if last >= len(lines):
        return None
    if first == last:
        return lines[first].encode()[node.col_offset:end_col].decode()
    head = lines[first].encode()[node.col_offset:].decode()
    tail = lines[last].encode()[:end_col].decode()
    return head + "".join(lines[first + 1:last]) + tail


def walk_with_parents(tree: ast.AST) -> tuple[list[ast.AST], dict[ast.AST, ast.AST]]:
    """Every node (breadth-first, like ast.walk) and each node's parent, in one pass."""
    nodes, parents, _ = walk_indexed(tree)
    return nodes, parents


def walk(node: ast.AST) -> list[ast.AST]:
    """``list(ast.walk(node))``, same order, at about two thirds of the cost."""
    nodes = [node]
    append, node_type = nodes.append, ast.AST
    for cur in nodes:
        for name in cur._fields:
            value = getattr(cur, name, None)
            if value.__class__ is list:
                for item in value:
                    if isinstance(item, node_type):
                        append(item)
            elif isinstance(value, node_type):
                append(value)
    return nodes


def _of_types(nodes: list, by_type: dict | None, *types: type) -> list:
    """The nodes of ``types``: from the per-type lists when given, else by testing each node."""
    if by_type is None:
        return [n for n in nodes if isinstance(n, types)]
    if len(types) == 1:
        return by_type.get(types[0], [])
    return [n for t in types for n in by_type.get(t, ())]


def _handler_guards(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any((dotted(t) or "").rsplit(".", 1)[-1] in GUARD_EXCEPTIONS for t in types)


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


def context_flags(node: ast.AST, parents: dict) -> dict:
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
                    parents: dict | None = None, nodes: list | None = None,
                    by_type: dict | None = None) -> list[ImportBinding]:
    """Every import in the file, with where it runs. Relative imports resolve against ``module``."""
    if parents is None or nodes is None:
        nodes, parents, by_type = walk_indexed(tree)
    out: list[ImportBinding] = []
    for node in _of_types(nodes, by_type, ast.Import, ast.ImportFrom):
        if isinstance(node, ast.Import):
            flags = context_flags(node, parents)
            for a in node.names:
                alias = a.asname or a.name.split(".")[0]
                out.append(ImportBinding(alias, a.name, None, node, node.lineno, node.col_offset,
                                         written=a.name, **flags))
        elif isinstance(node, ast.ImportFrom):
            flags = context_flags(node, parents)
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


def _annotation_nodes(nodes: list, by_type: dict | None = None, subtree=None) -> set[int]:
    """ids of every node inside an annotation."""
    roots: list[ast.AST] = []
    for node in _of_types(nodes, by_type, ast.arg, ast.FunctionDef, ast.AsyncFunctionDef, ast.AnnAssign):
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
    ids: set[int] = set()
    for root in roots:
        ids.update(map(id, (subtree or walk)(root)))
    return ids


def _type_checking_ids(nodes: list, by_type: dict | None = None, subtree=None) -> set[int]:
    ids: set[int] = set()
    for node in _of_types(nodes, by_type, ast.If):
        if is_type_checking_test(node.test):
            for stmt in node.body:
                ids.update(map(id, (subtree or walk)(stmt)))
    return ids


_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def name_usage(tree: ast.AST, parents: dict | None = None, nodes: list | None = None,
               by_type: dict | None = None, subtree=None) -> dict[str, Usage]:
    """Loads of each name: at run time or only inside annotations (string annotations included).

    Names listed in ``__all__`` count as run-time uses (re-exports); names used only under
    ``if TYPE_CHECKING:`` count as annotations. ``subtree``: ``Walk.subtree`` of the tree, when walked.
    """
    if parents is None or nodes is None:
        nodes, parents, by_type = walk_indexed(tree)
    ann = _annotation_nodes(nodes, by_type, subtree)
    tc_ids = _type_checking_ids(nodes, by_type, subtree)
    usage: dict[str, Usage] = {}
    load = ast.Load
    for node in _of_types(nodes, by_type, ast.Name):
        if isinstance(node.ctx, load):
            u = usage.get(node.id)
            if u is None:  # not setdefault: that would build a Usage for every load
                u = usage[node.id] = Usage()
            if id(node) in ann or id(node) in tc_ids:
                u.annotation += 1
            else:
                u.runtime += 1
                u.runtime_lines.append(node.lineno)
            u.lines.append(node.lineno)
    for node in _of_types(nodes, by_type, ast.Constant):
        if isinstance(node.value, str) and id(node) in ann:
            for ident in set(_IDENT.findall(node.value)):
                u = usage.setdefault(ident, Usage())
                u.annotation += 1
                u.lines.append(node.lineno)
    for node in _of_types(nodes, by_type, ast.Assign):
        for t in node.targets:
            if isinstance(t, ast.Name) and t.id == "__all__" and isinstance(node.value, (ast.List, ast.Tuple)):
                for elt in node.value.elts:
                    if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                        usage.setdefault(elt.value, Usage()).runtime += 1
    return usage


def binding_map(tree: ast.AST, module: str, is_package: bool = False, from_only: bool = False) -> dict[str, str]:
    """alias -> ``module`` (``import``) or ``module:name`` (``from ... import``) of every import in the
    file, functions included; a later binding of the same alias wins."""
    out: dict[str, str] = {}
    for b in import_bindings(tree, module, is_package):
        if b.name is None:
            if not from_only:
                out[b.alias] = b.module if b.alias != b.module.split(".")[0] else b.alias
        elif b.name != "*":
            out[b.alias] = f"{b.module}:{b.name}"
    return out
