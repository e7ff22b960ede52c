"""Line-keyed libcst rewrites that visit only the top-level statements holding the lines.

The analysis names what to rewrite by line (an import, a ``with`` block, a keyword of a call).
libcst's ``PositionProvider`` computes positions by generating the code of the whole module, and a
transformer rebuilds every node it visits: for a model file of a few thousand lines that is most
of an ``apply`` pass, while the edits sit in a handful of statements. ``visit_at_lines`` gives each
statement that holds an edited line to the transformer as a module of its own, its positions
shifted to where the statement sits in the file, and keeps every other statement as it is. The
statement's own code must be exactly its lines of the file; when any is not (or the lines cannot
be told), the whole module is visited as before.
"""

from __future__ import annotations

import ast
import warnings

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from flagos_migrate.astutil import source_lines


class LineTransformer(cst.CSTTransformer):
    """A transformer that reads the file line a node starts on (``self.line_of(node)``)."""

    METADATA_DEPENDENCIES = (PositionProvider,)
    line_offset = 0  # lines of the file before the module being visited (visit_at_lines)

    def line_of(self, node: cst.CSTNode) -> int:
        return self.get_metadata(PositionProvider, node).start.line + self.line_offset


def visit_at_lines(module: cst.Module, text: str, transformer: LineTransformer, lines: set[int],
                   with_calls: frozenset[str] = frozenset()) -> cst.Module:
    """``MetadataWrapper(module).visit(transformer)`` for a transformer that changes nothing outside
    the top-level statements spanning ``lines`` and those holding a ``with name(...)`` block of a
    name in ``with_calls`` (``module`` is ``text`` parsed)."""
    parts = _statement_parts(module, text, lines, with_calls)
    if parts is None:
        return MetadataWrapper(module, unsafe_skip_copy=True).visit(transformer)
    body: list[cst.BaseStatement] = []
    for stmt, offset in parts:
        if offset is None:
            body.append(stmt)
            continue
        transformer.line_offset = offset
        try:
            one = MetadataWrapper(module.with_changes(body=[stmt], header=(), footer=()),
                                  unsafe_skip_copy=True).visit(transformer)
        finally:
            transformer.line_offset = 0
        body.extend(one.body)
    return module.with_changes(body=body)


def _statement_parts(module: cst.Module, text: str, lines: set[int], with_calls: frozenset[str]) -> list[tuple] | None:
    """Each top-level statement with the line offset of its own module when it spans one of
    ``lines`` (None: kept as it is), or None when a statement cannot be placed for sure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            return None
    if with_calls:
        lines = lines | {node.lineno for node in ast.walk(tree) if isinstance(node, (ast.With, ast.AsyncWith))
                         and any(isinstance(i.context_expr, ast.Call) and isinstance(i.context_expr.func, ast.Name)
                                 and i.context_expr.func.id in with_calls for i in node.items)}
    stmts = list(tree.body)
    file_lines = source_lines(text)
    out: list[tuple] = []
    k = 0
    for stmt in module.body:
        # a line of simple statements is one ast statement per ``;``-separated part
        n = len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1
        group = stmts[k:k + n]
        k += n
        if len(group) != n:
            return None
        first = min([group[0].lineno] + [d.lineno for d in getattr(group[0], "decorator_list", ())])
        last = max(s.end_lineno for s in group)
        if not any(first <= line <= last for line in lines):
            out.append((stmt, None))
            continue
        code = source_lines(module.with_changes(body=[stmt], header=(), footer=()).code)
        start = first - len(stmt.leading_lines)  # the file line the statement's own module begins on
        if start < 1 or file_lines[start - 1:start - 1 + len(code)] != code:
            return None
        out.append((stmt, start - 1))
    if k != len(stmts):
        return None
    return out
