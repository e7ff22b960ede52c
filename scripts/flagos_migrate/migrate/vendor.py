"""Slices of upstream modules vendored into ``vllm_fl/compat/`` (rule P16).

An upstream helper that the pinned vLLM lacks is copied with exactly what it needs: the
top-level definitions of its own module that it references (transitively), and import lines
for the names it takes from elsewhere. Names that the pinned module already defines are
imported from there instead of copied, so classes keep their identity. The slice then runs
through the same rewrite pipeline as a model file; if anything stays unresolved the name is
not vendored and remains a finding (never a placeholder).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from flagos_migrate.analysis.classattrs import none_default
from flagos_migrate.astutil import is_type_checking_test, parse_source, resolve_relative
from flagos_migrate.migrate.rewrites import import_from_text
from flagos_migrate.migrate.upstream import Upstream
from flagos_migrate.pinned.index_builder import custom_op_names

COMPAT_PKG = "vllm_fl.compat"
MAX_SLICE_LINES = 400  # bigger slices are subsystems, not helpers: port them by hand
MAX_FOLLOW = 4


def compat_module_for(upstream_module: str) -> str:
    """``vllm.model_executor.models.utils`` -> ``vllm_fl.compat.model_executor_models_utils``."""
    rest = upstream_module.split(".", 1)[1] if "." in upstream_module else upstream_module
    return f"{COMPAT_PKG}.{rest.replace('.', '_')}"


def _plain_targets(target: ast.AST) -> list[str]:
    """Names an assignment binds (``a``, ``a, b``), not the ones it writes into (``a[k]``, ``a.x``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _plain_targets(elt)]
    if isinstance(target, ast.Starred):
        return _plain_targets(target.value)
    return []


def _stmt_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return [n for t in targets for n in _plain_targets(t)]
    if isinstance(stmt, (ast.Try, ast.If)):
        # ``try: from x import A / except ImportError: A = object``: the whole block defines A;
        # ``if TYPE_CHECKING: import torch / else: torch = LazyLoader(...)``: its else branch does
        parts = stmt.orelse if is_type_checking_test(getattr(stmt, "test", None)) else [stmt]
        out: list[str] = []
        for sub in (n for part in parts for n in ast.walk(part)):
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                out += [a.asname or a.name.split(".")[0] for a in sub.names if a.name != "*"]
            elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)):
                out += _stmt_names(sub)
        return out
    return []


def _mutated(stmt: ast.stmt) -> set[str]:
    """Top-level names a statement changes in place: ``X[k] = v``, ``X.a = v``, ``X.update(...)``."""
    out: set[str] = set()
    for sub in ast.walk(stmt):
        targets = []
        if isinstance(sub, ast.Assign):
            targets = sub.targets
        elif isinstance(sub, (ast.AugAssign, ast.AnnAssign)):
            targets = [sub.target]
        for t in targets:
            if isinstance(t, (ast.Subscript, ast.Attribute)):
                base = t.value
                while isinstance(base, (ast.Subscript, ast.Attribute)):
                    base = base.value
                if isinstance(base, ast.Name):
                    out.add(base.id)
        if isinstance(sub, ast.Expr) and isinstance(sub.value, ast.Call) and isinstance(sub.value.func, ast.Attribute):
            if isinstance(sub.value.func.value, ast.Name):
                out.add(sub.value.func.value.id)
    return out


def _referenced(stmt: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)} | {
        n.value.id for n in ast.walk(stmt) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    }


@dataclass
class SliceResult:
    names: list[str]  # top-level names copied
    imports: dict[str, list[str]]  # absolute module -> imported names (``a as b`` text)
    plain_imports: list[str]  # ``import x`` lines
    code: list[str]  # source segments in upstream order
    lines: int
    future_annotations: bool = False  # upstream defers annotations; the slice must too


def slice_definitions(text: str, module: str, wanted: list[str], pinned_has,
                      max_lines: int = MAX_SLICE_LINES) -> SliceResult | None:
    """The definitions ``wanted`` need from their module ``module``; None when not sliceable."""
    tree = parse_source(text, module)
    if tree is None:
        return None
    defs: dict[str, ast.stmt] = {}
    imports: dict[str, tuple[str, str | None]] = {}  # alias -> (module, name or None for import x)
    for stmt in tree.body:
        for n in _stmt_names(stmt):
            defs.setdefault(n, stmt)
        if isinstance(stmt, ast.ImportFrom):
            src = resolve_relative(module, False, stmt.level, stmt.module) if stmt.level else stmt.module or ""
            for a in stmt.names:
                imports[a.asname or a.name] = (src, a.name)
        elif isinstance(stmt, ast.Import):
            for a in stmt.names:
                imports[a.asname or a.name.split(".")[0]] = (a.name if a.asname else a.name.split(".")[0], None)
    if any(w not in defs for w in wanted):
        return None
    mutators: dict[str, list[ast.stmt]] = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for n in _mutated(stmt) - set(_stmt_names(stmt)):
            mutators.setdefault(n, []).append(stmt)
    # module state some function rebinds (``global _current_vllm_config``): a copy made by
    # ``from module import _x`` keeps the value of import time, upstream reads the live one
    rebound = {n for node in ast.walk(tree) if isinstance(node, ast.Global) for n in node.names}
    live: dict[str, str] = {}  # name -> module it is read through
    chosen: list[ast.stmt] = []
    seen_stmts: set[int] = set()
    need_imports: dict[str, tuple[str, str | None]] = {}
    todo = list(wanted)
    seen_names: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen_names:
            continue
        seen_names.add(name)
        if name in defs:
            if name not in wanted and pinned_has(module, name):
                if name in rebound and isinstance(defs[name], (ast.Assign, ast.AnnAssign)):
                    live[name] = module
                else:
                    need_imports[name] = (module, name)
                continue
            for stmt in [defs[name], *mutators.get(name, [])]:
                if id(stmt) in seen_stmts:
                    continue
                seen_stmts.add(id(stmt))
                chosen.append(stmt)
                todo.extend(_referenced(stmt))
        elif name in imports:
            need_imports[name] = imports[name]
    chosen.sort(key=lambda s: s.lineno)
    segments = []
    total = 0
    lines = text.splitlines(keepends=True)
    if live:
        lines = _read_through_module(lines, chosen, live)
        if lines is None:
            return None
    for stmt in chosen:
        start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        seg = "".join(lines[start - 1 : stmt.end_lineno])
        total += stmt.end_lineno - start + 1
        segments.append(seg)
    if total > max_lines:
        return None
    from_imports: dict[str, list[str]] = {}
    plain: list[str] = []
    for src in sorted(set(live.values())):
        plain.append(f"import {src} as {_module_alias(src)}")
    for alias, (src, name) in sorted(need_imports.items(), key=lambda kv: (kv[1][0], kv[0])):
        if name is None:
            plain.append(f"import {src} as {alias}" if alias != src.split(".")[0] else f"import {src}")
        else:
            from_imports.setdefault(src, []).append(name if alias == name else f"{name} as {alias}")
    future = any(isinstance(s, ast.ImportFrom) and s.module == "__future__"
                 and any(a.name == "annotations" for a in s.names) for s in tree.body)
    return SliceResult(sorted(seen_names & set(defs)), from_imports, plain, segments, total, future)


def _module_alias(module: str) -> str:
    return "_" + module.replace(".", "_")


def _read_through_module(lines: list[str], chosen: list[ast.stmt], live: dict[str, str]) -> list[str] | None:
    """``_x`` becomes ``_vllm_m._x`` in the copied statements (reads only; None when a copied
    function rebinds it itself: it would then write the compat module's own global)."""
    spots: list[tuple[int, int, int, str]] = []
    for stmt in chosen:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Global) and live.keys() & set(node.names):
                return None
            if isinstance(node, ast.Name) and node.id in live:
                if not isinstance(node.ctx, ast.Load):
                    return None
                spots.append((node.lineno, node.col_offset, node.end_col_offset, node.id))
    out = list(lines)
    for lineno, start, end, name in sorted(spots, reverse=True):
        raw = out[lineno - 1].encode("utf-8")  # AST columns count UTF-8 bytes
        out[lineno - 1] = (raw[:start] + f"{_module_alias(live[name])}.{name}".encode() + raw[end:]).decode("utf-8")
    return out


def render_compat(upstream_module: str, upstream_version: str, names: list[str], sl: SliceResult) -> str:
    head = (
        f'"""Vendored from upstream vLLM (version {upstream_version}): {upstream_module}.\n\n'
        "Generated by model-migrate-flagos (rule P16): definitions the pinned vLLM lacks, copied with\n"
        "what they need. Regenerated on every migrate_model.py apply; do not edit by hand.\n"
        '"""\n\n'
    )
    imports = ["from __future__ import annotations\n\n"] if sl.future_annotations else []
    imports += [f"{line}\n" for line in sl.plain_imports]
    for mod, ns in sl.imports.items():
        if mod == "__future__":
            continue
        imports.append(import_from_text(mod, ns))
    body = "\n\n".join(seg.rstrip("\n") + "\n" for seg in sl.code)
    exported = "".join(f'    "{n}",\n' for n in sorted(names))
    return f"{head}{''.join(imports)}\n\n{body}\n\n__all__ = [\n{exported}]\n"


@dataclass
class Vendored:
    upstream_module: str
    names: set[str] = field(default_factory=set)
    text: str = ""
    ok: bool = True


def locate_definition(up: Upstream, module: str, name: str) -> tuple[str, str] | None:
    """(module, name) where upstream defines what ``from module import name`` binds."""
    for _ in range(MAX_FOLLOW):
        rec = up.record(module)
        if rec is None:
            return None
        if name in rec["defs"]:
            return module, name
        target = rec["imports"].get(name) or (rec.get("lazymap") or {}).get(name)
        if not target or ":" not in target:
            return None
        module, name = target.split(":", 1)
        if not module.startswith("vllm"):
            return None
    return None


def missing_class_attributes(text: str, module: str, apis, origin: str | None = None) -> list[str]:
    """``Cls.attr`` read at import time (outside functions) where the pinned class lacks ``attr``.

    The analysis judges module attributes; a slice also runs class-level reads such as
    ``GroupShape.PER_CHANNEL`` when imported, so they decide whether it can be taken."""
    return [f"{name}.{attr}" for _, name, attr in import_time_class_reads(text, module, apis, origin)]


def import_time_class_reads(text: str, module: str, apis, origin: str | None = None,
                            self_operands: bool = False) -> list[tuple[str, str, str]]:
    """(module, class, attr) of the reads ``missing_class_attributes`` reports (and those P35 finds None
    there, in a class body or as a ``self.attr |`` operand in a method: upstream's sibling then comes
    along, its class defines them; the latter with ``self_operands``); relative imports
    resolve against ``origin`` (the upstream module an unmigrated text comes from)."""
    tree = parse_source(text, module)
    if tree is None:
        return []
    bound: dict[str, tuple[str, str]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and (stmt.module or stmt.level):
            src = resolve_relative(origin or module, False, stmt.level, stmt.module) if stmt.level else stmt.module
            for a in stmt.names:
                bound[a.asname or a.name] = (src, a.name)
    # local classes: a read of ``Local.attr`` that Local's body does not assign is answered by its
    # imported bases (``class Qwen3Model(Qwen2Model)`` then ``Qwen3Model.hf_to_vllm_mapper``)
    local: dict[str, tuple[set[str], list[str]]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            own = {n for s in stmt.body for n in _stmt_names(s)}
            local[stmt.name] = (own, [b.id for b in stmt.bases if isinstance(b, ast.Name)])

    def lacking(cls_name: str, attr: str, depth: int = 0) -> list[tuple[str, str, str]]:
        if cls_name in bound:
            mod, name = bound[cls_name]
            sym = apis.resolve(mod, name) if mod.split(".")[0] in ("vllm", "transformers") else None
            # absent from the pinned class (P9), or inherited there as an interface's None (P35)
            if sym is not None and sym.kind == "class" and (apis.class_has_member(sym, attr) is False
                                                            or none_default(apis, sym, attr)):
                return [(mod, name, attr)]
            return []
        if cls_name not in local or attr in local[cls_name][0] or depth > 8:
            return []
        bases = local[cls_name][1]
        found = [lacking(b, attr, depth + 1) for b in bases]
        # missing only when no base has it; blame the imported bases that lack it
        return [x for f in found for x in f] if bases and all(found) else []

    out = []
    # ``self.attr | ...`` in a method of a local class, before the method assigns ``self.attr``: None
    # fails there too when the model is built (cohere_eagle's ``self.hf_to_vllm_mapper | WeightsMapper``)
    for cls in (s for s in tree.body if self_operands and isinstance(s, ast.ClassDef)):
        for fn in (s for s in cls.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for op in (n for n in ast.walk(fn) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)):
                for side in (op.left, op.right):
                    if (isinstance(side, ast.Attribute) and isinstance(side.value, ast.Name)
                            and side.value.id == "self" and not _self_assigned_before(fn, side)):
                        out.extend(lacking(cls.name, side.attr))
    todo = [s for s in tree.body if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue  # bodies run later; decorators and defaults were queued with the parent
        if isinstance(node, ast.ClassDef):
            todo.extend(node.decorator_list + node.bases + [s for s in node.body])
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and isinstance(node.ctx, ast.Load):
            out.extend(lacking(node.value.id, node.attr))
        todo.extend(ast.iter_child_nodes(node))
    return out


def _self_assigned_before(fn: ast.AST, read: ast.Attribute) -> bool:
    return any(isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
               and t.attr == read.attr and isinstance(t.ctx, ast.Store) and t.lineno < read.lineno
               for t in ast.walk(fn))


def slice_ops_clash(text: str, pinned_ops: dict[str, str]) -> list[str]:
    tree = parse_source(text, "slice")
    return [op for op in custom_op_names(tree) if op in pinned_ops] if tree else []
