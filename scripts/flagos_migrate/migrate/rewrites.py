"""Source rewrites of the migration, one per catalog rule, on libcst trees.

libcst keeps every comment, blank line and quote style that a rewrite does not touch, so a
migrated file diffs cleanly against its upstream origin. Each function here is pure: it takes
a module and the facts a finding carries (line numbers, names, target modules) and returns the
rewritten module; deciding *what* to rewrite is the job of ``migration.py``. The import rewrites
live in ``rewrite_imports``; ``apply_edits`` runs every line-keyed rewrite in one traversal of the
statements that hold the lines (``cst_positions``).
"""

from __future__ import annotations

import re

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from flagos_migrate.catalog.tables import (
    ATTR_RENAMES,
    LANGUAGE_MARKER_COMMENT,
    MARK_CONTEXT_MANAGERS,
    TOWER_COMMENT,
)
from flagos_migrate.migrate.cst_positions import LineTransformer, visit_at_lines
from flagos_migrate.migrate.edits import Edits, ImportAction  # noqa: F401  (re-exported)
from flagos_migrate.migrate.rewrite_imports import (  # noqa: F401  (import_from_text, rewrite_imports re-exported)
    ImportRewriter,
    NameRenamer,
    add_after_imports,
    add_type_checking_imports,
    binds_at_top,
    import_from_text,
    rewrite_imports,
)
from flagos_migrate.migrate.statement_edits import add_imports, edit_statements


def parse(text: str) -> cst.Module:
    return cst.parse_module(text)


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


class _Unwrapper(LineTransformer):
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
        line = self.line_of(original)
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
        note = _tower_note(updated.items[0]) or _language_note(updated.items[0], inner)
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


def _language_note(item: cst.WithItem, body: list) -> list[cst.EmptyLine]:
    """P23: an unwrapped language-model marker whose block assigns no ``self.X`` (the child is built in a base's
    ``__init__``) says so, or the unwrapped file shows no marked language model and the P23 finding is lost."""
    call = item.item
    if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)
            and call.func.attr.value in ("_mark_language_model", "_mark_composite_model")):
        return []
    code = cst.Module([]).code_for_node
    text = "".join(code(stmt) for stmt in body)
    if re.search(r"\bself\.\w+\s*(:[^=\n]*)?=[^=]", text):
        return []
    marker = " ".join(code(call).split()).replace("( ", "(").replace(", )", ")")
    return [cst.EmptyLine(comment=cst.Comment(LANGUAGE_MARKER_COMMENT.format(marker=marker)))]


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


class _KwargEditor(LineTransformer):
    def __init__(self, drops: set[tuple[int, str]], renames: dict[tuple[int, str], str] | None = None,
                 adds: dict[tuple[int, str], str] | None = None):
        self.drops = drops
        self.kw_renames = renames or {}
        self.kw_adds = adds or {}
        self.kw_adds_to: dict[tuple[int, str], str] = {}
        self.callee_renames: dict[tuple[int, str], str] = {}
        self.wraps: dict[tuple[int, int | str], tuple[str, str]] = {}
        self.by_keyword: dict[tuple[int, str], tuple[str, ...]] = {}

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        if not (self.drops or self.kw_renames or self.kw_adds or self.callee_renames or self.wraps
                or self.by_keyword):
            return updated
        start = self.line_of(original)
        func_name = updated.func.value if isinstance(updated.func, cst.Name) else None
        if func_name and (start, func_name) in self.by_keyword:
            updated = _keywords_for_positionals(updated, self.by_keyword[(start, func_name)])
        if any(line == start for line, _ in self.wraps):
            updated = _wrap_args(updated, {where: w for (line, where), w in self.wraps.items() if line == start})
        callee = func_name or (updated.func.attr.value if isinstance(updated.func, cst.Attribute) else None)
        adds = {kw: v for (line, kw), v in self.kw_adds.items()
                if line == start and self.kw_adds_to.get((line, kw), callee) == callee}
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
            line = self.line_of(arg.value)
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


def _keywords_for_positionals(call: cst.Call, names: tuple[str, ...]) -> cst.Call:
    """The call's first positional arguments passed as ``name=value``, in place, layout kept."""
    args = list(call.args)
    if len(args) < len(names) or any(a.keyword is not None or a.star for a in args[:len(names)]):
        return call
    eq = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))
    for i, name in enumerate(names):
        args[i] = args[i].with_changes(keyword=cst.Name(name), equal=eq)
    return call.with_changes(args=args)


def _wrap_args(call: cst.Call, wraps: dict[int | str, tuple[str, str]]) -> cst.Call:
    """The argument at a position (or keyword) ``a`` becomes ``function(a, extra)``, its layout kept."""
    args = list(call.args)
    positional = [i for i, a in enumerate(args) if a.keyword is None and not a.star]
    for where, (func, extra) in wraps.items():
        if isinstance(where, int):
            i = positional[where] if where < len(positional) else None
        else:
            i = next((j for j, a in enumerate(args) if a.keyword is not None and a.keyword.value == where), None)
        if i is None:
            continue
        inner = cst.Module([]).code_for_node(args[i].value)
        args[i] = args[i].with_changes(value=cst.parse_expression(f"{func}({inner}, {extra})"))
    return call.with_changes(args=args)


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


class _AttrDefaults(LineTransformer):
    """``x.attr`` on a listed line -> ``getattr(x, "attr", default)`` (``{obj}`` in the default: ``x``); a key in
    ``lazy`` whose default reads ``x`` (P39's derived fields): ``(getattr(x, "attr") if hasattr(x, "attr") else
    default)``."""

    def __init__(self, defaults: dict[tuple[int, str], str], lazy: frozenset | set = frozenset()):
        self.defaults = defaults
        self.lazy = lazy
        self._stores: set[int] = set()  # ``self.attr = config.attr``: the target on the line is no read

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._stores.add(id(node.target))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._stores.add(id(node.target))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._stores.add(id(node.target))

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        line = self.line_of(original)
        default = self.defaults.get((line, updated.attr.value))
        if default is None or id(original) in self._stores:
            return updated
        obj, name = cst.Module([]).code_for_node(updated.value), updated.attr.value
        if (line, name) in self.lazy and "{obj}" in default:
            # a default derived from the object's other fields (P39's ModernBertConfig.layer_types) is evaluated
            # only when the attribute is missing: getattr evaluates it first, and an object that has the attribute
            # may lack the fields it derives from (transformers 5's ModernBertConfig, a config bridge, has no
            # global_attn_every_n_layers). getattr(x, "a") is no attribute read, so the rewrite stays a fixpoint
            expr = cst.parse_expression(f'(getattr({obj}, "{name}") if hasattr({obj}, "{name}") '
                                        f'else {default.replace("{obj}", obj)})')
            return expr.with_changes(lpar=updated.lpar or expr.lpar, rpar=updated.rpar or expr.rpar)
        return cst.Call(func=cst.Name("getattr"), args=[
            cst.Arg(updated.value, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
            cst.Arg(cst.SimpleString(f'"{name}"'), comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
            # ``{obj}``: the default reads the same object (a method's stand-in spelled with its fields)
            cst.Arg(cst.parse_expression(default.replace("{obj}", obj)))],
            lpar=updated.lpar, rpar=updated.rpar)


def attr_defaults(module: cst.Module, defaults: dict[tuple[int, str], str], text: str | None = None,
                  lazy: frozenset | set = frozenset()) -> cst.Module:
    """``text``: the module's source, when the caller has it (only the statements on the lines are visited);
    ``lazy``: the keys whose derived default is read only when the attribute is missing."""
    if not defaults:
        return module
    if text is None:
        return MetadataWrapper(module, unsafe_skip_copy=True).visit(_AttrDefaults(defaults, lazy))
    return visit_at_lines(module, text, _AttrDefaults(defaults, lazy), {line for line, _ in defaults})


class _StringReplacer(LineTransformer):
    """A string constant on a listed line, of a listed value -> the new value, in the same quotes."""

    def __init__(self, strings: dict[tuple[int, str], str]):
        self.strings = strings

    def leave_SimpleString(self, original: cst.SimpleString, updated: cst.SimpleString):
        value = updated.evaluated_value
        new = self.strings.get((self.line_of(original), value)) if isinstance(value, str) else None
        if new is None:
            return updated
        quote = updated.quote
        return updated.with_changes(value=f"{updated.prefix}{quote}{new}{quote}")


class _NeverInstance(LineTransformer):
    """``isinstance(x, C)`` on a listed line -> ``False``; an ``and`` whose first operand became that -> ``False``
    (its other operands never run there)."""

    def __init__(self, checks: set[tuple[int, str]]):
        self.checks = checks
        self.made: set[int] = set()  # ids of the False names written here

    def _false(self) -> cst.Name:
        node = cst.Name("False")
        self.made.add(id(node))
        return node

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        if (isinstance(updated.func, cst.Name) and updated.func.value == "isinstance" and len(updated.args) == 2
                and isinstance(updated.args[1].value, cst.Name)
                and (self.line_of(original), updated.args[1].value.value) in self.checks):
            return self._false()
        return updated

    def leave_BooleanOperation(self, original: cst.BooleanOperation, updated: cst.BooleanOperation):
        if isinstance(updated.operator, cst.And) and id(updated.left) in self.made:
            return self._false()
        return updated


def never_instances(module: cst.Module, text: str, checks: set[tuple[int, str]]) -> cst.Module:
    return visit_at_lines(module, text, _NeverInstance(checks), {line for line, _ in checks}) if checks else module


def replace_strings(module: cst.Module, text: str, strings: dict[tuple[int, str], str]) -> cst.Module:
    if not strings:
        return module
    return visit_at_lines(module, text, _StringReplacer(strings), {line for line, _ in strings})


class _AttrAliases(LineTransformer):
    """``holder.attr`` on a listed line (``holder`` a plain name) -> ``holder.new`` (P40)."""

    def __init__(self, aliases: dict[tuple[int, str, str], str]):
        self.aliases = aliases

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        if not isinstance(updated.value, cst.Name):
            return updated
        new = self.aliases.get((self.line_of(original), updated.value.value, updated.attr.value))
        return updated if new is None else updated.with_changes(attr=cst.Name(new))


def alias_attrs(module: cst.Module, text: str, aliases: dict[tuple[int, str, str], str]) -> cst.Module:
    if not aliases:
        return module
    return visit_at_lines(module, text, _AttrAliases(aliases), {line for line, _, _ in aliases})


def rename_attrs(module: cst.Module, attrs: set[str]) -> cst.Module:
    return module.visit(_AttrRenamer(attrs)) if attrs else module


# -- P17: remove hook methods ---------------------------------------------------------------------


class _ClassScoped(cst.CSTTransformer):
    """Keeps the names of the classes enclosing the node being visited (innermost last)."""

    def __init__(self):
        self.classes: list[str] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(node.name.value)

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self.classes.pop()
        return updated


class _MethodRemover(_ClassScoped):
    def __init__(self, targets: set[tuple[str, str]]):
        super().__init__()
        self.targets = targets

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        return False  # holds no class or def: not rebuilt node by node

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        updated = super().leave_ClassDef(original, updated)
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


# -- P6: keywords a pinned caller passes to an override -------------------------------------------


class _OverrideKeywords(_ClassScoped):
    def __init__(self, targets: dict[tuple[str, str, str], str]):
        super().__init__()
        self.targets = targets

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        return False  # holds no def: not rebuilt node by node

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        if not self.classes:
            return updated
        cls, name = self.classes[-1], updated.name.value
        adds = [(kw, v) for (c, meth, kw), v in self.targets.items() if (c, meth) == (cls, name)]
        params = updated.params
        have = {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}
        adds = [(kw, v) for kw, v in adds if kw not in have]
        if not adds or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        # appended after the last keyword-only parameter, laid out like the others (as _add_kwargs does)
        kwonly = list(params.kwonly_params)
        star = params.star_arg if isinstance(params.star_arg, (cst.Param, cst.ParamStar)) else cst.ParamStar()
        before = kwonly[-2].comma if len(kwonly) > 1 else getattr(star, "comma", cst.MaybeSentinel.DEFAULT)
        sep = before if isinstance(before, cst.Comma) else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        end = kwonly[-1].comma if kwonly else cst.MaybeSentinel.DEFAULT
        if kwonly:
            kwonly[-1] = kwonly[-1].with_changes(comma=sep)
        eq = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))
        for i, (kw, value) in enumerate(adds):
            kwonly.append(cst.Param(name=cst.Name(kw), default=cst.parse_expression(value), equal=eq,
                                    comma=end if i == len(adds) - 1 else sep))
        params = params.with_changes(star_arg=star, kwonly_params=kwonly)
        why = "{kw} other than {value}: upstream's {cls}.{name} takes no {kw}; it builds what the pinned method builds with {kw}={value}"
        guards = [cst.parse_statement(f"if {kw} != {value}:\n"
                                      f"    raise NotImplementedError({why.format(kw=kw, value=value, cls=cls, name=name)!r})\n")
                  for kw, value in adds]
        body = list(updated.body.body)
        at = 1 if body and _is_docstring(body[0]) else 0
        return updated.with_changes(params=params, body=updated.body.with_changes(body=body[:at] + guards + body[at:]))


def _is_docstring(stmt: cst.BaseStatement) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


def add_override_keywords(module: cst.Module, targets: dict[tuple[str, str, str], str]) -> cst.Module:
    return module.visit(_OverrideKeywords(targets)) if targets else module


# -- P7: overrides in upstream's form of a framework method ----------------------------------------


class _OverrideForms(_ClassScoped):
    """The table's method takes the pinned parameters, binds upstream's arguments first, and its
    ``super().<method>(<upstream arguments>)`` calls become the table's ``super_call``."""

    def __init__(self, targets: dict[tuple[str, str], dict]):
        super().__init__()
        self.targets = targets
        self.row: list[dict | None] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.row.append(self.targets.get((self.classes[-1], node.name.value)) if self.classes else None)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        row = self.row[-1] if self.row else None
        func = updated.func
        if (row is None or not isinstance(func, cst.Attribute) or func.attr.value != row["method"]
                or not isinstance(func.value, cst.Call) or not isinstance(func.value.func, cst.Name)
                or func.value.func.value != "super" or func.value.args):
            return updated
        if [a.value.value if isinstance(a.value, cst.Name) and not a.keyword and not a.star else None
                for a in updated.args] != list(row["upstream"]):
            return updated
        return cst.parse_expression(row["super_call"])

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        row = self.row.pop()
        if row is None or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        upstream = [p.name.value for p in updated.params.params][1:]
        if upstream != list(row["upstream"]) or updated.params.star_arg is not cst.MaybeSentinel.DEFAULT:
            return updated
        first = updated.params.params[0].name.value
        params = cst.parse_statement(f"def f({first}, {row['pinned']}):\n    pass\n").params
        body = list(updated.body.body)
        at = 1 if body and _is_docstring(body[0]) else 0
        bind = cst.parse_statement(row["bind"] + "\n")
        return updated.with_changes(params=params, whitespace_before_params=cst.SimpleWhitespace(""),
                                    body=updated.body.with_changes(body=body[:at] + [bind] + body[at:]))


def override_forms(module: cst.Module, targets: dict[tuple[str, str], dict]) -> cst.Module:
    return module.visit(_OverrideForms(targets)) if targets else module


# -- P23: add methods -----------------------------------------------------------------------------


class _MethodAdder(cst.CSTTransformer):
    def __init__(self, methods: dict[tuple[str, str], tuple[str, str]]):
        self.methods = methods
        self.depth = 0

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.depth += 1

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        return False  # holds no class: not rebuilt node by node

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self.depth -= 1
        if self.depth or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        name = updated.name.value
        have = {s.name.value for s in updated.body.body if isinstance(s, cst.FunctionDef)}
        # a source may hold more than one def (a method and the hook that reads what it sets)
        new = [s.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
               for (cls, method), (_, src) in sorted(self.methods.items()) if cls == name and method not in have
               for s in cst.parse_module(src.rstrip() + "\n").body
               if not (isinstance(s, cst.FunctionDef) and s.name.value in have)]
        if not new:
            return updated
        # the ``pass`` a removal left in a class whose only method went (a port replacing the method)
        body = [s for s in updated.body.body if not (isinstance(s, cst.SimpleStatementLine) and len(s.body) == 1
                                                    and isinstance(s.body[0], cst.Pass))]
        if not body:
            new[0] = new[0].with_changes(leading_lines=[])
        return updated.with_changes(body=updated.body.with_changes(body=[*body, *new]))


def add_methods(module: cst.Module, methods: dict[tuple[str, str], tuple[str, str]]) -> cst.Module:
    return module.visit(_MethodAdder(methods)) if methods else module


class _LineEdits(ImportRewriter, _Unwrapper, _KwargEditor):
    """Every line-keyed rewrite in one traversal, so all of them see the analysed positions."""

    def __init__(self, edits: Edits):
        ImportRewriter.__init__(self, edits.imports)
        self.lines_unwrap = set(edits.unwrap)
        self.plain_unwrap = frozenset(edits.unwrap_calls)
        self.drops = set(edits.drop_kwargs)
        self.kw_renames = {(line, old): new for line, old, new in edits.rename_kwargs}
        self.kw_adds = {key: value for key, (_, value) in edits.add_kwargs.items()}
        self.kw_adds_to = dict(edits.add_kwargs_to)
        self.callee_renames = {key: new for key, (_, new) in edits.rename_callees.items()}
        self.wraps = {key: (func, extra) for key, (_, func, extra) in edits.wrap_args.items()}
        self.by_keyword = {key: names for key, (_, names) in edits.keyword_positionals.items()}

    def edited_lines(self) -> set[int]:
        """Every line an edit is keyed by (nothing else changes)."""
        return (self.lines | self.lines_unwrap | {line for line, _ in self.drops}
                | {line for line, _ in self.kw_renames} | {line for line, _ in self.kw_adds}
                | {line for line, _ in self.callee_renames} | {line for line, _ in self.wraps}
                | {line for line, _ in self.by_keyword})


def apply_edits(text: str, edits: Edits) -> str:
    """One pass of every rewrite; the caller re-analyses and repeats until nothing changes."""
    module = parse(text)
    if edits.replace_statements:
        # alone in their pass: they move later lines, and the engine re-analyses before the next pass
        module = edit_statements(module, {line: code for line, (_, code) in edits.replace_statements.items()})
        return add_imports(module, [key for key in edits.add_imports if not binds_at_top(module, key[1] or key[0].split('.')[0])]).code
    if edits.never_instances:
        # alone in their pass too: an ``and`` over several lines becomes one ``False``
        return never_instances(module, text, set(edits.never_instances)).code
    # first: they rewrite within lines, so the analysis' lines still hold for the passes after them
    strings = {k: v for k, (_, v) in edits.replace_strings.items()}
    module = replace_strings(module, text, strings)
    if strings:
        text = module.code
    aliases = {k: v for k, (_, v) in edits.attr_aliases.items()}
    module = alias_attrs(module, text, aliases)
    if aliases:
        text = module.code
    defaults = {k: v for k, (_, v) in edits.attr_defaults.items()}
    # P39's defaults derive from fields of the same config, which a config that has the attribute may lack
    module = attr_defaults(module, defaults, text, {k for k, (rule, _) in edits.attr_defaults.items() if rule == "P39"})
    if defaults:
        text = module.code  # the lines are where they were, their text changed
    if (edits.imports or edits.unwrap or edits.unwrap_calls or edits.drop_kwargs or edits.rename_kwargs
            or edits.add_kwargs or edits.wrap_args or edits.rename_callees or edits.keyword_positionals):
        line_edits = _LineEdits(edits)
        # the plain context managers are unwrapped wherever they are: their blocks are edited too
        module = visit_at_lines(module, text, line_edits, line_edits.edited_lines(), line_edits.plain_unwrap)
        if line_edits.renames:
            module = module.visit(NameRenamer(line_edits.renames))
        module = add_after_imports(module, line_edits.equivalents)
        module = add_type_checking_imports(module, line_edits.type_checking)
    module = remove_methods(module, set(edits.remove_methods))
    module = add_override_keywords(module, {k: v for k, (_, v) in edits.override_keywords.items()})
    module = override_forms(module, {k: v for k, (_, v) in edits.override_forms.items()})
    module = add_methods(module, edits.add_methods)
    module = rename_attrs(module, set(edits.attr_renames))
    module = add_imports(module, [key for key in edits.add_imports if not binds_at_top(module, key[1] or key[0].split('.')[0])])
    return module.code
