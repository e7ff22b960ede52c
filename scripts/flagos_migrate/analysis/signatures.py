"""Call signatures the pinned version gives a call of the file: module functions, pinned classes
(their ``__init__`` along the MRO, dataclass fields), ``self.X()`` / ``super().X()`` / ``cls.X()`` reaching a
pinned method, ``PinnedClass.X()`` (classmethods, staticmethods, methods given the instance). ``callee`` answers only when it is sure (no signature-changing decorator, no dynamic class).
"""

from __future__ import annotations

import ast

from flagos_migrate.astutil import dotted, signature_of
from flagos_migrate.pinned.api_index import _normalise_external, external_members

# bases whose __init__ takes nothing we could judge against: skipped when looking for __init__
NO_INIT_BASES = frozenset({"builtins.object", "object", "abc.ABC", "typing.Generic", "typing.Protocol"})

# decorators that keep a function's or class's call signature
HARMLESS_DECORATORS = frozenset({
    "staticmethod", "classmethod", "property", "cached_property", "lru_cache", "cache", "overload",
    "abstractmethod", "wraps", "no_grad", "inference_mode", "contextmanager", "deprecated", "final",
    "override", "dataclass", "config", "register", "register_oot", "runtime_checkable", "setter",
    "total_ordering", "unique", "singledispatchmethod",
})


def decorators(node) -> list[str]:
    """Decorator names as written; ``?`` for one that is not a dotted name (never harmless)."""
    out = []
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        out.append(dotted(target) or "?")
    return out


def harmless(decorator: str) -> bool:
    return decorator.rsplit(".", 1)[-1] in HARMLESS_DECORATORS


def entry_init_signature(h, entries: list[tuple]) -> dict | None:
    """Signature of calling a class whose MRO is ``entries`` (None when unknown)."""
    for i, (kind, obj) in enumerate(entries):
        if kind == "local":
            if any(not harmless(d) for d in decorators(obj)):
                return None
            for stmt in obj.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name in ("__init__", "__new__"):
                    if stmt.name == "__new__" or any(not harmless(d) for d in decorators(stmt)):
                        return None
                    return signature_of(stmt.args, drop_first=True)
            if any(d.rsplit(".", 1)[-1] == "dataclass" for d in decorators(obj)):
                return None
        elif kind == "pinned":
            sym, rec = obj
            if any(not harmless(d) for d in rec.get("decos", ())):
                return None
            if "__init__" in rec["methods"]:
                sig = rec["methods"]["__init__"]
                return None if any(not harmless(d) for d in sig.get("d", ())) else sig
            if "__new__" in rec["methods"]:
                return None
            if rec.get("dc"):
                return _dataclass_signature(entries[i:])
        elif kind == "external":
            if _normalise_external(obj) in NO_INIT_BASES:
                continue
            return None
        else:
            return None
    return None


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


def callee(m, call: ast.Call) -> tuple[str, dict, int] | None:
    """(qualname shown, signature, positional args to skip) of a call we can judge."""
    h = m.hierarchy
    func = call.func
    # super().X(...)
    if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name) and func.value.func.id == "super" and not func.value.args):
        cls = m.enclosing_class(call)
        if cls is None:
            return None
        lin = h.linearize(("local", cls))[1:]
        return _method_in(h, lin, func.attr, f"super().{func.attr}")
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
        cls = m.enclosing_class(call)
        if cls is None:
            return None
        lin = h.linearize(("local", cls))
        # local methods are the file's own business; only calls that reach a pinned method are judged
        if func.attr in h.local_method_names(cls):
            return None
        return _method_in(h, lin, func.attr, f"self.{func.attr}")
    # Base.__init__(self, ...)
    if isinstance(func, ast.Attribute) and func.attr == "__init__":
        sym = m.resolve_expr(func.value)
        if sym is not None and sym.kind == "class":
            rec = m.apis.class_record(sym)
            if rec is None:
                return None
            sig = entry_init_signature(h, h.linearize(("pinned", (sym, rec))))
            return (f"{sym.qualname}.__init__", sig, 1) if sig else None
        return None
    # cls.X(...) in a classmethod of a local class: like self.X, only a pinned method is judged
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "cls":
        cls = m.enclosing_class(call)
        if cls is None or not _in_classmethod(m, call) or func.attr in h.local_method_names(cls):
            return None
        return _method_in(h, h.linearize(("local", cls)), func.attr, f"cls.{func.attr}", through_class=True)
    # PinnedClass.X(...): classmethods, staticmethods, and methods called with an explicit instance
    if isinstance(func, ast.Attribute) and func.attr != "__init__":
        sym = m.resolve_expr(func.value)
        if sym is not None and sym.kind == "class":
            rec = m.apis.class_record(sym)
            if rec is None:
                return None
            return _method_in(h, h.linearize(("pinned", (sym, rec))), func.attr, f"{sym.name}.{func.attr}",
                              through_class=True, call=call)
    if isinstance(func, ast.Name) and func.id in m.local_classes and func.id not in m.rebound:
        cls = m.local_classes[func.id]
        sig = entry_init_signature(h, h.linearize(("local", cls)))
        return (func.id, sig, 0) if sig else None
    sym = m.resolve_expr(func)
    if sym is None:
        return None
    if sym.kind == "function":
        idx = m.apis.index_for(sym.module)
        sig = idx.function_signature(sym) if idx else None
        if sig is None or any(not harmless(d) for d in sig.get("d", ())):
            return None
        return sym.qualname, sig, 0
    if sym.kind == "class":
        rec = m.apis.class_record(sym)
        if rec is None:
            return None
        sig = entry_init_signature(h, h.linearize(("pinned", (sym, rec))))
        return (sym.qualname, sig, 0) if sig else None
    return None


def _in_classmethod(m, node: ast.AST) -> bool:
    func = m.enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    return func is not None and "classmethod" in decorators(func) and func.args.args[:1] != [] \
        and func.args.args[0].arg == "cls"


def _through_class(sig: dict, name: str, shown: str, call: ast.Call | None) -> tuple[str, dict, int] | None:
    """A method reached through the class, not an instance: a classmethod or staticmethod takes the
    call's arguments as they are; a plain method takes the instance as its first positional argument."""
    decs = sig.get("d", ())
    if any(d.rsplit(".", 1)[-1] in ("classmethod", "staticmethod") for d in decs):
        return shown, sig, 0
    if call is None or not call.args or isinstance(call.args[0], ast.Starred):
        return None  # cls.method(...) of a plain method, or no explicit instance: not ours to judge
    return shown, sig, 1


def _method_in(h, lin: list[tuple], name: str, shown: str, through_class: bool = False,
               call: ast.Call | None = None) -> tuple[str, dict, int] | None:
    if name == "__init__":
        sig = entry_init_signature(h, lin)
        return (shown, sig, 0) if sig else None
    for kind, obj in lin:
        if kind == "local":
            members, dynamic = h.local_members(obj)
            if dynamic:
                return None
            for stmt in obj.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                    decs = decorators(stmt)
                    if through_class or any(not harmless(d) for d in decs):
                        return None
                    return shown, signature_of(stmt.args, drop_first="staticmethod" not in decs), 0
            if name in members:
                return None  # an attribute holding a callable
        elif kind == "pinned":
            rec = obj[1]
            if name in rec["methods"]:
                sig = rec["methods"][name]
                if any(not harmless(d) for d in sig.get("d", ())):
                    return None
                if name in rec["attrs"] and name not in rec["methods"]:
                    return None
                if through_class:
                    return _through_class(sig, name, f"{obj[0].qualname}.{name}", call)
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
