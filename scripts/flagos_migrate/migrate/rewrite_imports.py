"""Import rewrites of the migration (P1, P2, P3, P5, P13, P14, P22 import actions) on libcst trees:
repoint, rename, move or drop imported names by line, move typing-only names under
``if TYPE_CHECKING:``, place statements after the imports. ``rewrites.apply_edits`` runs them with
the other line-keyed rewrites in one traversal.
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper

from flagos_migrate.migrate.cst_positions import LineTransformer
from flagos_migrate.migrate.edits import ImportAction

LINE_LIMIT = 110


# -- imports ---------------------------------------------------------------------------------------


def _dotted_expr(name: str) -> cst.Attribute | cst.Name:
    parts = name.split(".")
    node: cst.Attribute | cst.Name = cst.Name(parts[0])
    for p in parts[1:]:
        node = cst.Attribute(value=node, attr=cst.Name(p))
    return node


def _module_text(node: cst.ImportFrom) -> str:
    dots = "".join("." for _ in node.relative)
    mod = cst.Module([]).code_for_node(node.module) if node.module is not None else ""
    return dots + mod


def _alias_name(alias: cst.ImportAlias) -> str:
    return cst.Module([]).code_for_node(alias.name)


def _alias_text(alias: cst.ImportAlias) -> str:
    name = _alias_name(alias)
    if alias.asname is not None:
        return f"{name} as {cst.Module([]).code_for_node(alias.asname.name)}"
    return name


def import_from_text(module: str, names: list[str], indent: str = "") -> str:
    """``from module import a, b`` (parenthesised over several lines when long)."""
    one = f"{indent}from {module} import {', '.join(names)}"
    if len(one) <= LINE_LIMIT or len(names) == 1:
        return one + "\n"
    body = "".join(f"{indent}    {n},\n" for n in names)
    return f"{indent}from {module} import (\n{body}{indent})\n"


def _fix_commas(aliases: list[cst.ImportAlias], parenthesised: bool, last_comma) -> list[cst.ImportAlias]:
    out = []
    for i, a in enumerate(aliases):
        if i < len(aliases) - 1:
            if a.comma is cst.MaybeSentinel.DEFAULT:
                a = a.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        elif not parenthesised or last_comma is cst.MaybeSentinel.DEFAULT:
            a = a.with_changes(comma=cst.MaybeSentinel.DEFAULT)
        elif a.comma is cst.MaybeSentinel.DEFAULT:
            a = a.with_changes(comma=last_comma)  # multi-line list: keep the trailing comma style
        out.append(a)
    return out


class ImportRewriter(LineTransformer):
    def __init__(self, plan: dict[tuple[int, str | None], ImportAction]):
        self.plan = plan
        # the import lines, and the ``def`` lines a deferred import moves into
        self.lines = {line for line, _ in plan} | {ln for act in plan.values() if act.kind == "defer" for ln in act.lines}
        self.type_checking: list[tuple[str, str]] = []  # (module, alias text)
        self.renames: dict[str, str] = {}  # local name -> new local name
        self.equivalents: list[str] = []  # ``X = (A, B)`` lines, placed after the imports
        self.applied: set[str] = set()
        self.deferred: dict[int, list[tuple[str, str]]] = {}  # ``def`` line -> (module, alias text) moved into it

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        moved = self.deferred.get(self.line_of(original.name))
        if not moved or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        by_module: dict[str, list[str]] = {}
        for module, text in moved:
            by_module.setdefault(module, []).append(text)
        stmts = [cst.parse_statement(import_from_text(mod, names)) for mod, names in by_module.items()]
        body = list(updated.body.body)
        pos = 1 if body and _is_docstring(body[0]) else 0
        return updated.with_changes(body=updated.body.with_changes(body=body[:pos] + stmts + body[pos:]))

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        if len(updated.body) != 1 or not isinstance(updated.body[0], (cst.ImportFrom, cst.Import)):
            return updated
        line = self.line_of(original.body[0])
        if line not in self.lines:
            return updated
        if isinstance(updated.body[0], cst.Import):
            act = self.plan.get((line, None))
            if act is not None and act.kind == "remove":
                self.applied.add(act.rule)
                return cst.RemoveFromParent()
            names = updated.body[0].names
            if act is not None and act.kind == "repoint" and len(names) == 1 and names[0].asname is not None:
                # ``import a.b as x`` -> ``import new.module as x`` (P3: vllm.envs -> the compat module)
                self.applied.add(act.rule)
                alias = names[0].with_changes(name=_dotted_expr(act.new_module))
                return updated.with_changes(body=[updated.body[0].with_changes(names=[alias])])
            return updated
        node: cst.ImportFrom = updated.body[0]
        if isinstance(node.names, cst.ImportStar):
            return updated
        whole = self.plan.get((line, None))
        module = _module_text(node)
        if whole is not None and whole.kind == "repoint":
            node = node.with_changes(relative=(), module=_dotted_expr(whole.new_module))
            module = whole.new_module
            self.applied.add(whole.rule)
        keep: list[cst.ImportAlias] = []
        moved: dict[str, list[str]] = {}
        for alias in node.names:
            name = _alias_name(alias)
            act = self.plan.get((line, name))
            if act is None:
                keep.append(alias)
                continue
            self.applied.add(act.rule)
            if act.kind == "remove":
                continue
            if act.kind == "type_checking":
                self.type_checking.append((module, _alias_text(alias)))
                continue
            if act.kind == "defer":
                for def_line in act.lines:
                    self.deferred.setdefault(def_line, []).append((module, _alias_text(alias)))
                continue
            if act.kind == "equivalent":
                # ``X = (A, B)``: the one name upstream checks with isinstance, as the pinned classes
                for mod, cls in act.targets:
                    moved.setdefault(mod, []).append(cls)
                classes = ", ".join(cls for _, cls in act.targets)
                self.equivalents.append(f"{alias.asname.name.value if alias.asname else name} = "
                                        f"({classes}{',' if len(act.targets) == 1 else ''})\n")
                continue
            if act.kind == "rename":
                if alias.asname is None:
                    self.renames[name] = act.new_name
                alias = alias.with_changes(name=cst.Name(act.new_name))
                if act.new_module is None:
                    keep.append(alias)
                    continue
            target = act.new_module or module
            if target == module:
                keep.append(alias)
            else:
                moved.setdefault(target, []).append(_alias_text(alias))
        new_lines: list[cst.BaseStatement] = []
        if keep:
            parenthesised = node.lpar is not None
            last_comma = node.names[-1].comma
            node = node.with_changes(names=_fix_commas(keep, parenthesised, last_comma))
            new_lines.append(updated.with_changes(body=[node]))
        for target, names in moved.items():
            stmt = cst.parse_statement(import_from_text(target, names))
            if not new_lines:
                stmt = stmt.with_changes(leading_lines=updated.leading_lines)
            new_lines.append(stmt)
        if not new_lines:
            return cst.RemoveFromParent()
        return cst.FlattenSentinel(new_lines) if len(new_lines) > 1 else new_lines[0]


class NameRenamer(cst.CSTTransformer):
    def __init__(self, renames: dict[str, str]):
        self.renames = renames

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        new = self.renames.get(updated.value)
        return updated.with_changes(value=new) if new else updated

    def leave_ImportAlias(self, original: cst.ImportAlias, updated: cst.ImportAlias) -> cst.ImportAlias:
        return updated  # names inside other imports were renamed by the import pass already

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False  # never touch import statements (they were rewritten deliberately)


def _is_import_line(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and any(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body
    )


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _is_future(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and isinstance(stmt.body[0], cst.ImportFrom)
        and stmt.body[0].module is not None
        and cst.Module([]).code_for_node(stmt.body[0].module) == "__future__"
    )


def _is_type_checking_if(stmt: cst.CSTNode) -> bool:
    if not isinstance(stmt, cst.If):
        return False
    test = cst.Module([]).code_for_node(stmt.test).strip()
    return test in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def binds_at_top(module: cst.Module, name: str, *, assignments: bool = False) -> bool:
    """True when a top-level import (or, with ``assignments``, a plain assignment) binds ``name``.

    ``import a.b`` binds ``a``; a star import binds nothing we can name.
    """
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for s in stmt.body:
            if assignments and isinstance(s, cst.Assign):
                if any(isinstance(t.target, cst.Name) and t.target.value == name for t in s.targets):
                    return True
            if isinstance(s, cst.ImportFrom) and not isinstance(s.names, cst.ImportStar):
                if any((a.asname.name.value if a.asname is not None else _alias_name(a)) == name for a in s.names):
                    return True
            if isinstance(s, cst.Import):
                if any((a.asname.name.value if a.asname is not None else _alias_name(a).split(".")[0]) == name for a in s.names):
                    return True
    return False



def ensure_future_annotations(module: cst.Module) -> cst.Module:
    body = list(module.body)
    if any(_is_future(s) and "annotations" in cst.Module([]).code_for_node(s) for s in body):
        return module
    pos = 1 if body and _is_docstring(body[0]) else 0
    while pos < len(body) and _is_future(body[pos]):
        pos += 1
    stmt = cst.parse_statement("from __future__ import annotations\n")
    if pos < len(body):
        # keep the next statement's comments/blank lines where they were, after the new line
        nxt = body[pos]
        lead = nxt.leading_lines
        if pos == 0:
            stmt = stmt.with_changes(leading_lines=lead)
            body[pos] = nxt.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        else:
            stmt = stmt.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
            body[pos] = nxt.with_changes(leading_lines=[cst.EmptyLine(), *[x for x in lead if x.comment]])
    body.insert(pos, stmt)
    return module.with_changes(body=body)


def add_after_imports(module: cst.Module, lines: list[str]) -> cst.Module:
    """Statements right after the last top-level import (so every import stays at the top)."""
    if not lines:
        return module
    body = list(module.body)
    last_import = max((i for i, s in enumerate(body) if _is_import_line(s)), default=-1)
    stmts = [cst.parse_statement(line) for line in lines]
    stmts[0] = stmts[0].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
    body[last_import + 1:last_import + 1] = stmts
    return module.with_changes(body=body)


def add_type_checking_imports(module: cst.Module, entries: list[tuple[str, str]]) -> cst.Module:
    """Put ``from m import n`` lines under ``if TYPE_CHECKING:`` (existing block or a new one)."""
    if not entries:
        return module
    grouped: dict[str, list[str]] = {}
    for mod, alias in entries:
        if alias not in grouped.setdefault(mod, []):
            grouped[mod].append(alias)
    lines = [cst.parse_statement(import_from_text(m, names)) for m, names in grouped.items()]
    body = list(module.body)
    for i, stmt in enumerate(body):
        if _is_type_checking_if(stmt) and isinstance(stmt.body, cst.IndentedBlock):
            block = stmt.body.with_changes(body=[*stmt.body.body, *lines])
            body[i] = stmt.with_changes(body=block)
            break
    else:
        last_import = max((i for i, s in enumerate(body) if _is_import_line(s)), default=-1)
        block = cst.If(
            test=cst.Name("TYPE_CHECKING"),
            body=cst.IndentedBlock(body=lines),
            leading_lines=[cst.EmptyLine()],
        )
        body.insert(last_import + 1, block)
    module = module.with_changes(body=body)
    if not binds_at_top(module, "TYPE_CHECKING"):
        module = _insert_type_checking_name(module)
    if _has_future_annotations(module):
        return module
    # quote only the annotations that mention the moved names: a blanket ``from __future__ import
    # annotations`` would also turn ``x: torch.Tensor`` into a string, and vLLM reads some
    # annotations at run time (``support_torch_compile`` finds dynamic dimensions through them)
    locals_ = {alias.split(" as ")[-1] for _, alias in entries}
    return module.visit(_AnnotationQuoter(locals_))


def _imports_typing(stmt: cst.CSTNode) -> bool:
    """``import typing`` / ``from typing import ...`` as a top-level statement."""
    if not _is_import_line(stmt):
        return False
    for imp in stmt.body:
        if isinstance(imp, cst.Import) and any(cst.Module([]).code_for_node(a.name) == "typing" for a in imp.names):
            return True
        if isinstance(imp, cst.ImportFrom) and imp.module is not None and not imp.relative \
                and cst.Module([]).code_for_node(imp.module) == "typing":
            return True
    return False


def _insert_type_checking_name(module: cst.Module) -> cst.Module:
    """``from typing import TYPE_CHECKING`` next to the file's own typing import (after the last one),
    else at the top of the imports, after ``__future__``."""
    stmt = cst.parse_statement("from typing import TYPE_CHECKING\n")
    body = list(module.body)
    typing_lines = [i for i, s in enumerate(body) if _imports_typing(s)]
    if not typing_lines:
        return _insert_after_future(module, stmt)
    body.insert(typing_lines[-1] + 1, stmt)
    return module.with_changes(body=body)


def _has_future_annotations(module: cst.Module) -> bool:
    return any(_is_future(s) and "annotations" in cst.Module([]).code_for_node(s) for s in module.body)


class _AnnotationQuoter(cst.CSTTransformer):
    """Turn annotations that mention ``names`` into string annotations."""

    def __init__(self, names: set[str]):
        self.names = names

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        # only ``x: T = ...`` holds an annotation among simple statements (not rebuilt otherwise)
        return any(isinstance(s, cst.AnnAssign) for s in node.body)

    def leave_Annotation(self, original: cst.Annotation, updated: cst.Annotation) -> cst.Annotation:
        expr = updated.annotation
        if isinstance(expr, (cst.SimpleString, cst.ConcatenatedString)):
            return updated
        found = []

        class _Find(cst.CSTVisitor):
            def visit_Name(inner, node: cst.Name) -> None:  # noqa: N805
                if node.value in self.names:
                    found.append(node)

        expr.visit(_Find())
        if not found:
            return updated
        code = " ".join(cst.Module([]).code_for_node(expr).split())
        if '"' not in code:
            text = f'"{code}"'
        elif "'" not in code:
            text = f"'{code}'"
        else:
            return updated
        return updated.with_changes(annotation=cst.SimpleString(text))


def _insert_after_future(module: cst.Module, stmt: cst.BaseStatement) -> cst.Module:
    body = list(module.body)
    pos = 1 if body and _is_docstring(body[0]) else 0
    while pos < len(body) and _is_future(body[pos]):
        pos += 1
    if pos == 0 and body:
        stmt = stmt.with_changes(leading_lines=body[0].leading_lines)
        body[0] = body[0].with_changes(leading_lines=[])
    else:
        stmt = stmt.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
    body.insert(pos, stmt)
    return module.with_changes(body=body)


def rewrite_imports(module: cst.Module, plan: dict[tuple[int, str | None], ImportAction]) -> cst.Module:
    if not plan:
        return module
    rewriter = ImportRewriter(plan)
    module = MetadataWrapper(module, unsafe_skip_copy=True).visit(rewriter)
    if rewriter.renames:
        module = module.visit(NameRenamer(rewriter.renames))
    module = add_after_imports(module, rewriter.equivalents)
    return add_type_checking_imports(module, rewriter.type_checking)
