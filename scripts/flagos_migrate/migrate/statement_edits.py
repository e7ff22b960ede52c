"""Edits of whole statements: a statement replaced by the code the pinned vLLM's own module has (P28),
and imports a new value needs (P7). Statements are keyed by the line the analysis saw, so the engine
applies them in a pass of their own (``rewrites.apply_edits``)."""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider


class _StatementEditor(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, statements: dict[int, str]):
        self.statements = statements

    def _line(self, node: cst.CSTNode) -> int:
        return self.get_metadata(PositionProvider, node).start.line

    def leave_SimpleStatementLine(self, original, updated):
        code = self.statements.get(self._line(original))
        if code is None:
            return updated
        new = cst.parse_module(code.rstrip() + "\n")
        body = list(new.body)
        if not body:
            return updated
        # the replaced statement's comments and blank lines stay in front, then the code's own header
        body[0] = body[0].with_changes(leading_lines=[*updated.leading_lines, *new.header, *body[0].leading_lines])
        return cst.FlattenSentinel(body)


def edit_statements(module: cst.Module, statements: dict[int, str]) -> cst.Module:
    """``statements``: start line of a simple statement -> the code that replaces it."""
    if not statements:
        return module
    return MetadataWrapper(module, unsafe_skip_copy=True).visit(_StatementEditor(statements))


def add_imports(module: cst.Module, entries: list[tuple[str, str]]) -> cst.Module:
    """``from module import name`` for each entry (``import module`` for an empty name: upstream's text that reads
    ``torch.zeros``), right after the last top-level import."""
    if not entries:
        return module
    body = list(module.body)
    last = max((i for i, s in enumerate(body) if isinstance(s, cst.SimpleStatementLine)
                and any(isinstance(x, (cst.Import, cst.ImportFrom)) for x in s.body)), default=-1)
    body[last + 1:last + 1] = [cst.parse_statement(f"from {mod} import {name}\n" if name else f"import {mod}\n")
                            for mod, name in sorted(entries)]
    return module.with_changes(body=body)
