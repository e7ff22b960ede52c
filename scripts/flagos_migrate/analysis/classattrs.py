"""P35: class attributes a pinned class inherits as None where upstream's class defines them (and
P16's module state a file copies at import time, the same kind of value that changes under a read).

Upstream's ``GLM4VModel`` combines ``ChatGLMModel.hf_to_vllm_mapper | WeightsMapper(...)`` in its
class body: upstream's ``ChatGLMModel`` defines the mapper, the pinned one does not and inherits
``SupportsQuant.hf_to_vllm_mapper = None``. The read is no P9 miss (the attribute exists), yet it is
None: ``None | WeightsMapper(...)`` fails the import, a plain read gives the class no mapper. Which
interface attributes the pinned vLLM declares as None is a table of the rule (``none_defaults``);
the first class of the pinned hierarchy that defines the attribute decides its value.
"""

from __future__ import annotations

import ast

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.astutil import context_flags
from flagos_migrate.catalog.tables import LIVE_MODULE_STATE, NONE_DEFAULTS
from flagos_migrate.pinned.api_index import Symbol


def none_default(apis, sym: Symbol, attr: str) -> str | None:
    """The qualified name of the pinned class whose ``None`` default ``sym.attr`` inherits (the first
    class of ``sym``'s pinned hierarchy that defines ``attr`` is a ``none_defaults`` entry), else None."""
    if (sym.qualname, attr) in NONE_DEFAULTS:
        return None  # the interface itself: reading its declared None is what the code asks for
    classes, _ = apis.mro(sym)
    for cls, rec in classes:
        if attr in rec["attrs"] or attr in rec["methods"] or any(f[0] == attr for f in rec.get("fields", ())):
            return cls.qualname if (cls.qualname, attr) in NONE_DEFAULTS else None
    return None


def _local_definers(m: ModuleFacts, name: str, attr: str, depth: int = 0) -> list[tuple[Symbol, str]]:
    """(pinned class, definer) for ``Local.attr`` where the local class ``name`` does not assign
    ``attr`` and every base that could answer is a pinned class inheriting the None default."""
    cls = m.local_classes.get(name)
    if cls is None or depth > 8 or any(attr in _assigned(s) for s in cls.body):
        return []
    found = []
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in m.local_classes:
            found.extend(_local_definers(m, base.id, attr, depth + 1))
            continue
        sym = m.resolve_expr(base)
        if sym is not None and sym.kind == "class" and (definer := none_default(m.apis, sym, attr)):
            found.append((sym, definer))
            break  # the first base that answers decides (the method resolution order)
    return found


def _assigned(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, ast.Assign):
        return {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and isinstance(stmt.target, ast.Name):
        return {stmt.target.id}
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    return set()


def _self_operand_owner(m: ModuleFacts, node: ast.Attribute) -> str | None:
    """The local class whose method reads ``self.attr`` as an operand of ``|`` before the method assigns
    ``self.attr`` itself, else None."""
    if node.value.id != "self" or not isinstance(m.parents.get(node), ast.BinOp):
        return None
    func = m.parents.get(node)
    while func is not None and not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        func = m.parents.get(func)
    cls = m.parents.get(func) if func is not None else None
    if not isinstance(cls, ast.ClassDef) or cls.name not in m.local_classes:
        return None
    assigned_before = any(
        isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self" and t.attr == node.attr
        and isinstance(t.ctx, ast.Store) and t.lineno < node.lineno for t in ast.walk(func))
    return None if assigned_before else cls.name


def check_none_class_attributes(m: ModuleFacts) -> None:
    for node in m.of_type(ast.Attribute):
        if not isinstance(node.ctx, ast.Load) or not isinstance(node.value, ast.Name):
            continue
        name, attr = node.value.id, node.attr
        sym = m.resolve_expr(node.value)
        if sym is not None and sym.kind == "class":
            definer = none_default(m.apis, sym, attr)
            hits = [(sym, definer)] if definer else []
        elif name in m.local_classes and name not in m.rebound:
            hits = _local_definers(m, name, attr)
        elif (owner := _self_operand_owner(m, node)) is not None:
            # ``self.hf_to_vllm_mapper | WeightsMapper(...)`` in a method (cohere_eagle's __init__): None
            # fails there whatever upstream holds; a plain read (passed on as a value) is not reported
            hits, name = _local_definers(m, owner, attr), "self"
        else:
            continue
        if not hits:
            continue
        pinned, definer = hits[0]
        flags = context_flags(node, m.parents)
        import_time = not (flags["function_level"] or flags["guarded"] or flags["conditional"]
                           or flags["type_checking"])
        parent = m.parents.get(node)
        operand = isinstance(parent, (ast.BinOp, ast.Call, ast.Attribute, ast.Subscript)) and (
            not isinstance(parent, ast.Call) or parent.func is node)
        m.add("P35", node, f"`{name}.{attr}` is None on the pinned vLLM: {pinned.name} "
              f"({pinned.module}) does not define `{attr}` and inherits the default None of "
              f"{definer}; upstream's class defines it"
              + (" (used while the module is imported: the import fails)" if import_time and operand else
                 " (read while the module is imported)" if import_time else ""),
              fix=(f"take upstream's {pinned.name} along (its class defines `{attr}`) or define the value in "
                   "the class that reads it, checking that the pinned class uses it as upstream's does"),
              data={"class": pinned.qualname, "attr": attr, "definer": definer, "import_time": import_time})


def check_frozen_module_state(m: ModuleFacts) -> None:
    """P16 (issue 13, class 5): ``from m import _x`` where a function of the pinned ``m`` rebinds ``_x``
    (``global _current_vllm_config``): the copy keeps the value of import time, upstream reads the live one."""
    index = m.apis.index_for("vllm")
    state = LIVE_MODULE_STATE.get(index.version if index else "", {})
    for b in m.bindings:
        if b.name and b.name in state.get(b.module, ()):
            m.add("P16", b.node, f"`from {b.module} import {b.name}` copies module state the pinned {b.module} "
                  f"rebinds later (a function of it sets `global {b.name}`): this file keeps the value of import "
                  "time, upstream's code reads the live one", line=b.line, col=b.col,
                  fix=f"import {b.module} and read `{b.name}` through it where it is used",
                  data={"module": b.module, "name": b.name, "live_state": True})
