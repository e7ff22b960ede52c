"""Source rewrites of the migration, one per catalog rule, on libcst trees.

libcst keeps every comment, blank line and quote style that a rewrite does not touch, so a
migrated file diffs cleanly against its upstream origin. Each function here is pure: it takes
a module and the facts a finding carries (line numbers, names, target modules) and returns the
rewritten module; deciding *what* to rewrite is the job of ``migration.py``.
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from flagos_migrate.catalog.tables import ATTR_RENAMES, MARK_CONTEXT_MANAGERS, TOWER_COMMENT
from flagos_migrate.migrate.edits import Edits, ImportAction  # noqa: F401  (re-exported)

LINE_LIMIT = 110


def parse(text: str) -> cst.Module:
    return cst.parse_module(text)


# -- imports ------------------------------------------------------------------------------------


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


class _ImportRewriter(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, plan: dict[tuple[int, str | None], ImportAction]):
        self.plan = plan
        self.lines = {line for line, _ in plan}
        self.type_checking: list[tuple[str, str]] = []  # (module, alias text)
        self.renames: dict[str, str] = {}  # local name -> new local name
        self.equivalents: list[str] = []  # ``X = (A, B)`` lines, placed after the imports
        self.applied: set[str] = set()

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        if len(updated.body) != 1 or not isinstance(updated.body[0], (cst.ImportFrom, cst.Import)):
            return updated
        line = self.get_metadata(PositionProvider, original.body[0]).start.line
        if line not in self.lines:
            return updated
        if isinstance(updated.body[0], cst.Import):
            act = self.plan.get((line, None))
            if act is not None and act.kind == "remove":
                self.applied.add(act.rule)
                return cst.RemoveFromParent()
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


class _NameRenamer(cst.CSTTransformer):
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


def _binds(module: cst.Module, name: str) -> bool:
    """True when a top-level import binds ``name``."""
    for stmt in module.body:
        if _is_import_line(stmt):
            for imp in stmt.body:
                if isinstance(imp, cst.ImportFrom) and not isinstance(imp.names, cst.ImportStar):
                    for a in imp.names:
                        local = a.asname.name.value if a.asname is not None else _alias_name(a)
                        if local == name:
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
    if not _binds(module, "TYPE_CHECKING"):
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
    rewriter = _ImportRewriter(plan)
    module = MetadataWrapper(module, unsafe_skip_copy=True).visit(rewriter)
    if rewriter.renames:
        module = module.visit(_NameRenamer(rewriter.renames))
    module = add_after_imports(module, rewriter.equivalents)
    return add_type_checking_imports(module, rewriter.type_checking)


# -- P4: unwrap _mark_* context managers -----------------------------------------------------------


def _mark_call(item: cst.WithItem, plain: frozenset[str] = frozenset()) -> str | None:
    """Name of a ``self._mark_*(...)`` context manager, or of a plain ``name(...)`` in ``plain``."""
    call = item.item
    if item.asname is not None or not isinstance(call, cst.Call):
        return None
    if isinstance(call.func, cst.Attribute):
        name = call.func.attr.value
        return name if name in MARK_CONTEXT_MANAGERS else None
    if isinstance(call.func, cst.Name) and call.func.value in plain:
        return call.func.value
    return None


class _Unwrapper(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, lines: set[int] | None, plain: frozenset[str] = frozenset()):
        self.lines_unwrap = lines  # None: every _mark_* block
        self.plain_unwrap = plain  # local names of P21 debug context managers: every block

    def leave_With(self, original: cst.With, updated: cst.With):
        if len(updated.items) != 1:
            return updated
        name = _mark_call(updated.items[0], self.plain_unwrap)
        if name is None:
            return updated
        if name in self.plain_unwrap:
            return self._flatten(updated)
        line = self.get_metadata(PositionProvider, original).start.line
        if self.lines_unwrap is not None and line not in self.lines_unwrap:
            return updated
        return self._flatten(updated)

    @staticmethod
    def _flatten(updated: cst.With):
        if isinstance(updated.body, cst.SimpleStatementSuite):
            inner = [cst.SimpleStatementLine(body=list(updated.body.body))]
        else:
            inner = list(updated.body.body)
        if not inner:
            return cst.RemoveFromParent()
        note = _tower_note(updated.items[0])
        inner[0] = inner[0].with_changes(leading_lines=[*updated.leading_lines, *note, *inner[0].leading_lines])
        return cst.FlattenSentinel(inner)


def _tower_note(item: cst.WithItem) -> list[cst.EmptyLine]:
    """P26: an unwrapped ``_mark_tower_model`` block says what unwrapping lost, so the validator (which
    sees only the result) reports it as plan and apply do."""
    call = item.item
    if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)
            and call.func.attr.value == "_mark_tower_model"):
        return []
    code = cst.Module([]).code_for_node
    args = ", ".join((f"{a.keyword.value}={code(a.value)}" if a.keyword else code(a.value)) for a in call.args)
    return [cst.EmptyLine(comment=cst.Comment(TOWER_COMMENT.format(args=args)))]


def unwrap_mark_contexts(module: cst.Module, lines: set[int] | None = None) -> cst.Module:
    return MetadataWrapper(module, unsafe_skip_copy=True).visit(_Unwrapper(lines))


def mark_context_lines(module: cst.Module) -> dict[int, str]:
    """Lines of ``with self._mark_*(...)`` blocks -> method name."""
    found: dict[int, str] = {}

    class _Find(cst.CSTVisitor):
        METADATA_DEPENDENCIES = (PositionProvider,)

        def visit_With(self, node: cst.With) -> None:
            if len(node.items) == 1 and (name := _mark_call(node.items[0])):
                found[self.get_metadata(PositionProvider, node).start.line] = name

    MetadataWrapper(module, unsafe_skip_copy=True).visit(_Find())
    return found


# -- P6: drop or rename keyword arguments ---------------------------------------------------------


class _KwargEditor(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, drops: set[tuple[int, str]], renames: dict[tuple[int, str], str] | None = None,
                 adds: dict[tuple[int, str], str] | None = None):
        self.drops = drops
        self.kw_renames = renames or {}
        self.kw_adds = adds or {}
        self.callee_renames: dict[tuple[int, str], str] = {}

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        if not self.drops and not self.kw_renames and not self.kw_adds and not self.callee_renames:
            return updated
        start = self.get_metadata(PositionProvider, original).start.line
        adds = {kw: v for (line, kw), v in self.kw_adds.items() if line == start}
        if adds:
            updated = _add_kwargs(updated, adds)
        func = updated.func
        if isinstance(func, cst.Attribute) and (start, func.attr.value) in self.callee_renames:
            updated = updated.with_changes(func=func.with_changes(
                attr=cst.Name(self.callee_renames[(start, func.attr.value)])))
        drop_idx = set()
        new_args = list(updated.args)
        for i, arg in enumerate(original.args):
            if arg.keyword is None:
                continue
            # the analysis points at the keyword's value (or the call) depending on the Python version
            line = self.get_metadata(PositionProvider, arg.value).start.line
            keys = ((line, arg.keyword.value), (start, arg.keyword.value))
            if any(k in self.drops for k in keys):
                drop_idx.add(i)
            elif (new := next((self.kw_renames[k] for k in keys if k in self.kw_renames), None)) is not None:
                new_args[i] = new_args[i].with_changes(keyword=cst.Name(new))
        if not drop_idx:
            return updated.with_changes(args=new_args)
        args = [a for i, a in enumerate(new_args) if i not in drop_idx]
        if len(args) == len(updated.args):
            return updated
        if args and len(new_args) - 1 in drop_idx:
            # the last argument went: the new last one ends as it did (trailing comma and the line
            # break before the closing parenthesis, or nothing)
            args[-1] = args[-1].with_changes(comma=updated.args[-1].comma)
        return updated.with_changes(args=args)


def _add_kwargs(call: cst.Call, adds: dict[str, str]) -> cst.Call:
    """Append ``kw=value`` after the last argument, laid out like the call's other arguments."""
    args = list(call.args)
    have = {a.keyword.value for a in args if a.keyword is not None}
    new = [(kw, v) for kw, v in adds.items() if kw not in have]
    if not new or any(a.star for a in args):
        return call
    # the separator between arguments: the one before the last (a line break and indent in a
    # multi-line call), else ", "
    sep = args[-2].comma if len(args) > 1 and isinstance(args[-2].comma, cst.Comma) else cst.Comma(
        whitespace_after=cst.SimpleWhitespace(" "))
    end = args[-1].comma if args else cst.MaybeSentinel.DEFAULT
    if args:
        args[-1] = args[-1].with_changes(comma=sep)
    for i, (kw, value) in enumerate(new):
        last = i == len(new) - 1
        args.append(cst.Arg(value=cst.parse_expression(value), keyword=cst.Name(kw),
                            equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                                  whitespace_after=cst.SimpleWhitespace("")),
                            comma=end if last else sep))
    return call.with_changes(args=args)


def drop_kwargs(module: cst.Module, drops: set[tuple[int, str]]) -> cst.Module:
    return MetadataWrapper(module, unsafe_skip_copy=True).visit(_KwargEditor(drops)) if drops else module


# -- P9: attribute renames with comparison semantics ----------------------------------------------


class _AttrRenamer(cst.CSTTransformer):
    def __init__(self, attrs: set[str]):
        self.attrs = attrs

    def leave_Comparison(self, original: cst.Comparison, updated: cst.Comparison):
        if len(updated.comparisons) != 1 or not isinstance(updated.left, cst.Attribute):
            return updated
        attr = updated.left.attr.value
        if attr not in self.attrs:
            return updated
        comp = updated.comparisons[0]
        op = "==" if isinstance(comp.operator, cst.Equal) else "!=" if isinstance(comp.operator, cst.NotEqual) else None
        if op is None or not isinstance(comp.comparator, cst.SimpleString):
            return updated
        _, new_attr, semantics = ATTR_RENAMES[attr]
        negate = semantics.get((op, comp.comparator.evaluated_value))
        if negate is None:
            return updated
        expr = updated.left.with_changes(attr=cst.Name(new_attr))
        if negate:
            return cst.UnaryOperation(operator=cst.Not(), expression=expr, lpar=updated.lpar, rpar=updated.rpar)
        return expr.with_changes(lpar=updated.lpar, rpar=updated.rpar)


class _AttrDefaults(cst.CSTTransformer):
    """``x.attr`` on a listed line -> ``getattr(x, "attr", default)``."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, defaults: dict[tuple[int, str], str]):
        self.defaults = defaults

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        line = self.get_metadata(PositionProvider, original).start.line
        default = self.defaults.get((line, updated.attr.value))
        if default is None:
            return updated
        return cst.Call(func=cst.Name("getattr"), args=[
            cst.Arg(updated.value, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
            cst.Arg(cst.SimpleString(f'"{updated.attr.value}"'),
                    comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
            cst.Arg(cst.parse_expression(default))], lpar=updated.lpar, rpar=updated.rpar)


def attr_defaults(module: cst.Module, defaults: dict[tuple[int, str], str]) -> cst.Module:
    return MetadataWrapper(module, unsafe_skip_copy=True).visit(_AttrDefaults(defaults)) if defaults else module


def rename_attrs(module: cst.Module, attrs: set[str]) -> cst.Module:
    return module.visit(_AttrRenamer(attrs)) if attrs else module


# -- P17: remove hook methods ---------------------------------------------------------------------


class _MethodRemover(cst.CSTTransformer):
    def __init__(self, targets: set[tuple[str, str]]):
        self.targets = targets
        self.classes: list[str] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(node.name.value)

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self.classes.pop()
        body = updated.body
        if isinstance(body, cst.IndentedBlock) and not body.body:
            body = body.with_changes(body=[cst.SimpleStatementLine(body=[cst.Pass()])])
            return updated.with_changes(body=body)
        return updated

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        if self.classes and (self.classes[-1], updated.name.value) in self.targets:
            return cst.RemoveFromParent()
        return updated


def remove_methods(module: cst.Module, targets: set[tuple[str, str]]) -> cst.Module:
    return module.visit(_MethodRemover(targets)) if targets else module


# -- P23: add methods -----------------------------------------------------------------------------


class _MethodAdder(cst.CSTTransformer):
    def __init__(self, methods: dict[tuple[str, str], tuple[str, str]]):
        self.methods = methods
        self.depth = 0

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.depth += 1

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self.depth -= 1
        if self.depth or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        name = updated.name.value
        have = {s.name.value for s in updated.body.body if isinstance(s, cst.FunctionDef)}
        new = [cst.parse_statement(src.rstrip() + "\n").with_changes(leading_lines=[cst.EmptyLine(indent=False)])
               for (cls, method), (_, src) in sorted(self.methods.items()) if cls == name and method not in have]
        if not new:
            return updated
        return updated.with_changes(body=updated.body.with_changes(body=[*updated.body.body, *new]))


def add_methods(module: cst.Module, methods: dict[tuple[str, str], tuple[str, str]]) -> cst.Module:
    return module.visit(_MethodAdder(methods)) if methods else module


class _LineEdits(_ImportRewriter, _Unwrapper, _KwargEditor):
    """Every line-keyed rewrite in one traversal, so all of them see the analysed positions."""

    def __init__(self, edits: Edits):
        _ImportRewriter.__init__(self, edits.imports)
        self.lines_unwrap = set(edits.unwrap)
        self.plain_unwrap = frozenset(edits.unwrap_calls)
        self.drops = set(edits.drop_kwargs)
        self.kw_renames = {(line, old): new for line, old, new in edits.rename_kwargs}
        self.kw_adds = {key: value for key, (_, value) in edits.add_kwargs.items()}
        self.callee_renames = {key: new for key, (_, new) in edits.rename_callees.items()}


def apply_edits(text: str, edits: Edits) -> str:
    """One pass of every rewrite; the caller re-analyses and repeats until nothing changes."""
    module = parse(text)
    # first: it rewrites within lines, so the analysis' positions still hold for the passes after it
    module = attr_defaults(module, {k: v for k, (_, v) in edits.attr_defaults.items()})
    if (edits.imports or edits.unwrap or edits.unwrap_calls or edits.drop_kwargs or edits.rename_kwargs
            or edits.add_kwargs or edits.rename_callees):
        line_edits = _LineEdits(edits)
        module = MetadataWrapper(module, unsafe_skip_copy=True).visit(line_edits)
        if line_edits.renames:
            module = module.visit(_NameRenamer(line_edits.renames))
        module = add_after_imports(module, line_edits.equivalents)
        module = add_type_checking_imports(module, line_edits.type_checking)
    module = remove_methods(module, set(edits.remove_methods))
    module = add_methods(module, edits.add_methods)
    module = rename_attrs(module, set(edits.attr_renames))
    return module.code
