"""Members the pinned classes lack: ``self.X()`` / ``super().X()`` that no class of the hierarchy
defines (P4, with the upstream marker context managers it unwraps), attributes of the vLLM config
objects (P9, with the attribute renames it applies) and members read through a pinned class or a
parameter annotated with a pinned dataclass (P9).
"""

from __future__ import annotations

import ast

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.analysis.signatures import NO_INIT_BASES
from flagos_migrate.astutil import context_flags, dotted
from flagos_migrate.catalog.findings import Finding
from flagos_migrate.catalog.tables import (
    ATTR_RENAMES,
    BASE_METHODS,
    CONFIG_ATTR_RENAMES,
    CONFIG_CLASSES,
    CONFIG_GETTERS,
    CONFIG_VARIABLE_ONLY,
    INSTANCE_ATTRIBUTES,
    INSTANCE_GETTERS,
    LOADER_CHILDREN,
    MARK_CONTEXT_MANAGERS,
    NO_COUNTERPART,
    UNSET_CAVEATS,
    UNSET_DEFAULTS,
    UNSET_IMPORTS,
    UNSET_RETURNS,
)
from flagos_migrate.migrate import backports
from flagos_migrate.migrate.edits import Edits, ImportAction
from flagos_migrate.pinned.api_index import Symbol, _normalise_external


# -- check: self.X() / super().X() ---------------------------------------------------------------
def check_methods(m: ModuleFacts) -> None:
    for cls in m.local_classes.values():
        lin = m.hierarchy.linearize(("local", cls))
        if not any(k == "pinned" or (k == "external" and _normalise_external(o) not in NO_INIT_BASES)
                   for k, o in lin[1:]):
            continue  # plain classes and mixins: attributes may come from anywhere
        for node in m.below(cls, ast.Call):
            if not isinstance(node.func, ast.Attribute):
                continue
            if m.enclosing_class(node) is not cls:
                continue
            func = node.func
            if isinstance(func.value, ast.Name) and func.value.id == "self":
                via, entries = "self", lin
            elif (isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name)
                  and func.value.func.id == "super" and not func.value.args):
                via, entries = "super", lin[1:]
            else:
                continue
            name = func.attr
            if m.hierarchy.hierarchy_defines(entries, name) is not False:
                continue
            if via == "self" and m.hierarchy.subclass_defines(cls, name):
                continue
            if name in m.hasattr_names:
                continue
            pinned = [o[0].qualname for k, o in entries if k == "pinned"]
            # only torch bases: the method may be dead code of the file itself; a pinned vLLM base
            # whose newer version added the method (``_mark_tower_model``) is the case that breaks
            severity = "error" if pinned else "warning"
            # upstream's version of a pinned base added it: written as the pinned base does that work
            source = next((BASE_METHODS[(b, name)] for b in pinned if (b, name) in BASE_METHODS), None)
            m.add("P4", node, f"`{via}{'()' if via == 'super' else ''}.{name}()` in class {cls.name}: no class "
                  f"of its hierarchy on the pinned version defines `{name}`",
                  fix=("unwrap the context manager (its body runs directly)" if name in MARK_CONTEXT_MANAGERS
                       else "the method is written as the pinned base does its work" if source
                       else "define it or remove the call"),
                  severity=severity,
                  data={"method": name, "via": via, "class": cls.name, "pinned_bases": pinned,
                        "source": source})


# -- check: AutoWeightsLoader(self) over a pinned child without load_weights ---------------------
def check_loader_children(m: ModuleFacts) -> None:
    """``AutoWeightsLoader(self)`` in a class under a pinned owner of the table: the loader calls the
    child module's ``load_weights``, which only upstream's version of the child has (P4 loader_children)."""
    for cls in m.local_classes.values():
        lin = m.hierarchy.linearize(("local", cls))
        owner = next((o[0].qualname for k, o in lin[1:] if k == "pinned" and o[0].qualname in LOADER_CHILDREN), None)
        if owner is None:
            continue
        child, attr = LOADER_CHILDREN[owner]
        if _assigns_own(cls, attr, child.rsplit(".", 1)[-1], set(m.local_classes)):
            continue  # its `self.model` is the file's own (deepseek_eagle's DeepseekV2Model with a load_weights)
        for node in m.below(cls, ast.Call):
            if (m.enclosing_class(node) is not cls or (dotted(node.func) or "").rsplit(".", 1)[-1] != "AutoWeightsLoader"
                    or not node.args or not (isinstance(node.args[0], ast.Name) and node.args[0].id == "self")):
                continue
            source = _owner_loader(cls, node)
            name = dotted(node.func)
            # the loader's import goes with its only use
            uses = sum(1 for n in m.of_type(ast.Name) if n.id == name and isinstance(n.ctx, ast.Load))
            imported = next(([i.lineno, a.name] for i in m.of_type(ast.ImportFrom) for a in i.names
                             if (a.asname or a.name) == name), None) if uses == 1 else None
            m.add("P4", node, f"`AutoWeightsLoader(self)` in class {cls.name}: it hands the checkpoint to the child "
                  f"modules' `load_weights`, which the pinned {child.rsplit('.', 1)[-1]} (built by "
                  f"{owner.rsplit('.', 1)[-1]}) does not define, so stacked and expert names fail to load",
                  fix=(f"load through the pinned {owner.rsplit('.', 1)[-1]}.load_weights, the mapper applied first"
                       if source else f"load through super().load_weights (the pinned {owner.rsplit('.', 1)[-1]} "
                       f"loads the whole model) or write {child.rsplit('.', 1)[-1]}'s load_weights"),
                  data={"method": "load_weights", "via": "AutoWeightsLoader", "class": cls.name,
                        "owner": owner, "child": child, "source": source,
                        "replace": bool(source), "import": imported if source else None})


def _assigns_own(cls: ast.ClassDef, attr: str, child: str, local: set[str]) -> bool:
    """The class's ``__init__`` assigns ``self.<attr>`` something other than a call of the pinned child
    (a class of the file, even of the same name, loads as the file says)."""
    init = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
    for node in ast.walk(init) if init else ():
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Attribute) and t.attr == attr and isinstance(t.value, ast.Name)
                   and t.value.id == "self" for t in targets):
                v = node.value
                callee = dotted(v.func) if isinstance(v, ast.Call) else None
                return not (callee and callee.rsplit(".", 1)[-1] == child and callee not in local)
    return False


def _owner_loader(cls: ast.ClassDef, call: ast.Call) -> str | None:
    """The class's load_weights written over the pinned owner's, when that is equivalent: the class builds
    no modules of its own (no ``__init__``: its children are the owner's) and its load_weights is only
    ``loader = AutoWeightsLoader(self)`` / ``return loader.load_weights(weights[, mapper=M])``."""
    defs = {f.name: f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    fn = defs.get("load_weights")
    if "__init__" in defs or fn is None or call.keywords or len(call.args) != 1:
        return None
    body = fn.body[1:] if fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant) else fn.body
    if len(body) != 2 or not (isinstance(body[0], ast.Assign) and body[0].value is call and len(body[0].targets) == 1
                              and isinstance(body[0].targets[0], ast.Name)):
        return None
    ret = body[1].value if isinstance(body[1], ast.Return) else None
    if not (isinstance(ret, ast.Call) and isinstance(ret.func, ast.Attribute) and ret.func.attr == "load_weights"
            and isinstance(ret.func.value, ast.Name) and ret.func.value.id == body[0].targets[0].id
            and len(ret.args) == 1 and all(k.arg == "mapper" for k in ret.keywords)):
        return None
    weights = ast.unparse(ret.args[0])
    mapper = next((ast.unparse(k.value) for k in ret.keywords), None)
    returns = f" -> {ast.unparse(fn.returns)}" if fn.returns else ""
    return (f"def load_weights(self, {ast.unparse(fn.args.args[1])}){returns}:\n"
            f"    # P4: the pinned parent loads the whole model (its model class has no load_weights for\n"
            f"    # AutoWeightsLoader to hand the checkpoint to)\n"
            f"    return super().load_weights({f'{mapper}.apply({weights})' if mapper else weights})\n")


# -- check 4: vLLM config attributes ----------------------------------------------------------------
def check_config_attributes(m: ModuleFacts) -> None:
    aliases = _config_aliases(m)
    for node in m.of_type(ast.Attribute):
        if not isinstance(node.ctx, ast.Load):
            continue
        base = node.value
        kind = None
        if isinstance(base, ast.Attribute) and base.attr in CONFIG_CLASSES and base.attr not in CONFIG_VARIABLE_ONLY:
            kind = base.attr
        elif isinstance(base, ast.Name):
            kind = aliases.get(base.id)
            if CONFIG_CLASSES.get(base.id) and _trusted_config_name(m, base):
                kind = base.id
        elif isinstance(base, ast.Call) and not base.args and not base.keywords:
            kind = CONFIG_GETTERS.get(dotted(base.func).rsplit(".", 1)[-1] if dotted(base.func) else "")
        if not kind or CONFIG_CLASSES.get(kind) is None or node.attr in m.hasattr_names:
            continue
        if node.attr.startswith("__"):
            continue
        sym = _config_class(m, kind)
        if sym is None or m.apis.class_has_member(sym, node.attr) is not False:
            continue
        rename = CONFIG_ATTR_RENAMES.get((kind, node.attr))
        data = {"config": kind, "config_class": sym.qualname, "attr": node.attr}
        unset = UNSET_DEFAULTS.get((sym.name, node.attr))
        if rename:
            data["rename"] = rename
            fix = f"use `{kind}.{rename}`"
        elif unset:
            data["default"] = unset[0]
            if (sym.name, node.attr) in UNSET_CAVEATS:
                data["caveat"] = list(UNSET_CAVEATS[(sym.name, node.attr)])
            obj = dotted(base) or kind
            fix = f"read it as getattr({obj}, {node.attr!r}, {unset[0].replace('{obj}', obj)}): {unset[1]}"
        else:
            fix = f"read it with getattr({kind}, {node.attr!r}, <default>) or drop the feature"
        m.add("P9", node, f"`{kind}.{node.attr}`: {sym.name} of the pinned vLLM has no attribute `{node.attr}`",
              fix=fix, data=data)


def _trusted_config_name(m, node: ast.Name) -> bool:
    """A variable called e.g. ``cache_config`` holds the vLLM config class: every binding of it in the
    enclosing function is a parameter annotated with that class (or unannotated) or ``X.cache_config``."""
    scope = m.enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    key = ("trusted_config_name", scope, node.id)  # the answer is the same for every read in the function
    found = m.memo.get(key)
    if found is None:
        found = m.memo[key] = _trusted_in(m, scope, node.id)
    return found


def _trusted_in(m, scope: ast.AST | None, name: str) -> bool:
    cls_name = CONFIG_CLASSES[name]
    while scope is not None:
        bound = False
        args = scope.args
        for a in args.posonlyargs + args.args + args.kwonlyargs:
            if a.arg == name:
                bound = True
                if a.annotation is not None and cls_name not in ast.unparse(a.annotation):
                    return False
        for sub in m.below(scope, ast.Assign, ast.AnnAssign, ast.For, ast.With, ast.NamedExpr):
            if isinstance(sub, (ast.Assign, ast.AnnAssign)):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    bound = True
                    v = sub.value
                    if isinstance(v, ast.IfExp) and isinstance(v.orelse, ast.Constant) and v.orelse.value is None:
                        v = v.body  # ``x.cfg if x else None``
                    if not (isinstance(v, ast.Attribute) and CONFIG_CLASSES.get(v.attr) == cls_name) \
                            and not _returns(m, v, cls_name):
                        return False
            elif isinstance(sub, (ast.For, ast.With, ast.NamedExpr)) and name in {
                    n.id for n in m.below(sub, ast.Name) if isinstance(n.ctx, ast.Store)}:
                return False
        if bound:
            return True
        scope = m.enclosing(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    return False


def _returns(m, value: ast.expr | None, cls_name: str) -> bool:
    """``f()`` of a function of this file annotated to return ``cls_name`` (or ``cls_name | None``)."""
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)):
        return False
    fn = next((s for s in m.tree.body if isinstance(s, ast.FunctionDef) and s.name == value.func.id), None)
    return fn is not None and fn.returns is not None and cls_name in ast.unparse(fn.returns)


def _config_class(m, kind: str) -> Symbol | None:
    sym = m.apis.resolve("vllm.config", CONFIG_CLASSES[kind])
    return sym if sym is not None and sym.kind == "class" else None


def _config_aliases(m) -> dict[str, str]:
    """``cc = vllm_config.cache_config`` style aliases (a name bound only that way)."""
    out: dict[str, str] = {}
    spoiled: set[str] = set()
    for node in m.of_type(ast.Assign):
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            v = node.value
            if isinstance(v, ast.Attribute) and v.attr in CONFIG_CLASSES and name not in CONFIG_CLASSES:
                if out.get(name, v.attr) != v.attr:
                    spoiled.add(name)
                out[name] = v.attr
    stores: dict[str, int] = {}
    for node in m.of_type(ast.Name):
        if isinstance(node.ctx, ast.Store):
            stores[node.id] = stores.get(node.id, 0) + 1
    for node in m.of_type(ast.arg):
        stores[node.arg] = stores.get(node.arg, 0) + 1
    counted: dict[str, int] = {}
    for node in m.of_type(ast.Assign):
        if (len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Attribute) and node.value.attr in CONFIG_CLASSES):
            counted[node.targets[0].id] = counted.get(node.targets[0].id, 0) + 1
    return {n: k for n, k in out.items() if n not in spoiled and stores.get(n, 0) == counted.get(n, 0)}


# -- check: members of pinned classes read through the class or a typed parameter (P9) ----------
def check_class_members(m: ModuleFacts) -> None:
    """``PinnedClass.X`` (a class attribute, classmethod or staticmethod) and ``param.X`` where the
    parameter is annotated with a pinned vLLM dataclass (``pooling_metadata: PoolingMetadata``), when no
    class of the pinned hierarchy defines ``X``. Read in a module or class body it fails the import."""
    typed = _typed_parameters(m)
    typed.update(_typed_locals(m, typed))
    typed.update(_getter_locals(m))
    seen_p9 = {(f.line, f.col) for f in m.found("P9")}
    stored = {n.attr for n in m.of_type(ast.Attribute) if not isinstance(n.ctx, ast.Load)}
    for node in m.of_type(ast.Attribute):
        if not isinstance(node.ctx, ast.Load):
            continue
        attr = node.attr
        if attr.startswith("__") or attr in m.hasattr_names or (node.lineno, node.col_offset) in seen_p9:
            continue
        sym, via = m.resolve_expr(node.value), "class"
        if sym is None or sym.kind != "class":
            sym, via = (typed.get((id(_scope(m, node)), node.value.id))
                        if typed and isinstance(node.value, ast.Name) else _getter_class(m, node.value)), "instance"
        if sym is None:
            sym = _self_attribute_class(m, node.value, stored)
        if sym is None or not _closed_class(m, sym) or m.apis.class_has_member(sym, attr) is not False:
            continue
        flags = context_flags(node, m.parents)
        import_time = not (flags["function_level"] or flags["guarded"] or flags["conditional"]
                           or flags["type_checking"])
        shown = ast.unparse(node.value)
        bp = backports.for_member(sym.name, attr) if via == "class" else None
        fix = ("use what the pinned class offers for it, pass it in, or back-port it; pinned class: "
               f"{sym.qualname}")
        if bp is not None:
            fix = (f"`migrate_model.py apply` installs the back-port {bp.module} (P22: {bp.what}) and imports "
                   f"{sym.name} from there")
        # a method upstream added whose value the pinned instance holds (PoolingMetadata.get_pooling_cursor())
        unset = UNSET_DEFAULTS.get((sym.name, attr)) if via == "instance" and bp is None else None
        if unset:
            fix = f"read it as getattr({shown}, {attr!r}, {unset[0].replace('{obj}', shown)}): {unset[1]}"
        elif (sym.name, attr) in NO_COUNTERPART and bp is None:
            fix = f"no counterpart on the pinned {sym.name}: {NO_COUNTERPART[(sym.name, attr)]}"
        m.add("P9", node, f"`{shown}.{attr}`: {sym.name} of the pinned "
              f"{m.apis.index_for(sym.module).package} has no attribute `{attr}`"
              + (" (read while the module is imported)" if import_time else ""),
              fix=fix,
              data={"class": sym.qualname, "config_class": sym.qualname, "attr": attr, "via": via,
                    "import_time": import_time, **({"backport": bp.module} if bp else {}),
                    **({"default": unset[0]} if unset else {}),
                    **({"caveat": list(UNSET_CAVEATS[(sym.name, attr)])}
                       if unset and (sym.name, attr) in UNSET_CAVEATS else {}),
                    **({"default_import": list(UNSET_IMPORTS[(sym.name, attr)])}
                       if unset and (sym.name, attr) in UNSET_IMPORTS else {})})


def _self_attribute_class(m, value: ast.expr, stored: set[str]) -> Symbol | None:
    """The pinned class a pinned base's ``__init__`` stores at ``self.<path>`` (P9 ``instance_attributes``), for
    ``value`` = ``self.<path>`` in a method of a class under that base; None when the file assigns the path's
    first attribute itself (it may hold something else)."""
    path = []
    while isinstance(value, ast.Attribute):
        path.append(value.attr)
        value = value.value
    if not (path and isinstance(value, ast.Name) and value.id == "self") or path[-1] in stored:
        return None
    cls = m.enclosing_class(value)
    if cls is None:
        return None
    dotted_path = ".".join(reversed(path))
    for kind, obj in m.hierarchy.linearize(("local", cls)):
        target = INSTANCE_ATTRIBUTES.get((obj[0].qualname, dotted_path)) if kind == "pinned" else None
        if target:
            module, _, name = target.rpartition(".")
            sym = m.apis.resolve(module, name)
            return sym if sym is not None and sym.kind == "class" else None
    return None


def _closed_class(m, sym: Symbol) -> bool:
    """A pinned class whose members the index knows: no dynamic attributes, no ``__getattr__``."""
    classes, _ = m.apis.mro(sym)
    return bool(classes) and not any(rec.get("dyn") or "__getattr__" in rec["methods"]
                                     or "__getattribute__" in rec["methods"] for _, rec in classes)


def _scope(m, node: ast.AST):
    return m.enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))


def _typed_locals(m, typed: dict[tuple[int, str], Symbol]) -> dict[tuple[int, str], Symbol]:
    """(function, local) -> pinned class, for a local bound once from a typed parameter's member whose stand-in
    the P9 table says returns that class (``pooling_cursor = pooling_metadata.get_pooling_cursor()``)."""
    out: dict[tuple[int, str], Symbol] = {}
    if not typed:
        return out
    for func in m.of_type(ast.FunctionDef, ast.AsyncFunctionDef):
        binds = [n for n in m.below(func, ast.Name) if isinstance(n.ctx, (ast.Store, ast.Del))]
        for node in m.below(func, ast.Assign):
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                continue
            value = node.value.func if isinstance(node.value, ast.Call) and not node.value.args else node.value
            if not (isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)):
                continue
            owner = typed.get((id(func), value.value.id))
            returns = UNSET_RETURNS.get((owner.name, value.attr)) if owner is not None else None
            name = node.targets[0].id
            if returns is None or sum(1 for n in binds if n.id == name) != 1:
                continue
            sym = m.apis.resolve(owner.module, returns)
            if sym is not None and (rec := m.apis.class_record(sym)) is not None and rec.get("dc"):
                out[(id(func), name)] = sym
    return out


def _getter_class(m, value: ast.expr) -> Symbol | None:
    """The pinned dataclass a no-argument call of an ``instance_getters`` function returns
    (``get_forward_context()`` -> ``ForwardContext``)."""
    if not (isinstance(value, ast.Call) and not value.args and not value.keywords):
        return None
    fn = m.resolve_expr(value.func)
    returns = INSTANCE_GETTERS.get(fn.qualname) if fn is not None and fn.kind == "function" else None
    sym = m.apis.resolve(fn.module, returns) if returns else None
    rec = m.apis.class_record(sym) if sym is not None and sym.kind == "class" else None
    return sym if rec is not None and rec.get("dc") else None


def _getter_locals(m) -> dict[tuple[int, str], Symbol]:
    """(function, local) -> pinned dataclass, for a local bound once from an ``instance_getters`` call
    (``forward_context = get_forward_context()``)."""
    out: dict[tuple[int, str], Symbol] = {}
    for func in m.of_type(ast.FunctionDef, ast.AsyncFunctionDef):
        binds = [n.id for n in m.below(func, ast.Name) if isinstance(n.ctx, (ast.Store, ast.Del))]
        for node in m.below(func, ast.Assign):
            if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and binds.count(node.targets[0].id) == 1 and (sym := _getter_class(m, node.value)) is not None:
                out[(id(func), node.targets[0].id)] = sym
    return out


def _typed_parameters(m) -> dict[tuple[int, str], Symbol]:
    """(function, parameter) -> pinned vLLM dataclass the parameter is annotated with, for parameters
    the function never rebinds. Only dataclasses: their fields are the whole interface (a class such as
    a layer base is often given a subclass with more attributes). Config variables are P9's."""
    out: dict[tuple[int, str], Symbol] = {}
    for func in m.of_type(ast.FunctionDef, ast.AsyncFunctionDef):
        args = func.args
        params = [a for a in args.posonlyargs + args.args + args.kwonlyargs
                  if a.annotation is not None and a.arg not in ("self", "cls") and a.arg not in CONFIG_CLASSES]
        if not params:
            continue
        stored = {n.id for n in m.below(func, ast.Name) if isinstance(n.ctx, (ast.Store, ast.Del))}
        for a in params:
            if a.arg in stored:
                continue
            sym = _annotation_class(m, a.annotation)
            # config classes are judged by variable name (above): the pinned step3_text annotates the
            # HF config it is given as ``config: ModelConfig``, so an annotation alone is not trusted
            if sym is None or not sym.module.startswith("vllm.") or sym.module.startswith("vllm.config"):
                continue
            rec = m.apis.class_record(sym)
            if rec is not None and rec.get("dc"):
                out[(id(func), a.arg)] = sym
    return out


def _annotation_class(m, ann: ast.expr) -> Symbol | None:
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        try:
            ann = ast.parse(ann.value, mode="eval").body
        except SyntaxError:
            return None
        if not isinstance(ann, (ast.Name, ast.Attribute)):
            return None
    if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
        parts = [p for p in (ann.left, ann.right) if not (isinstance(p, ast.Constant) and p.value is None)]
        if len(parts) != 1:
            return None
        ann = parts[0]
    if not isinstance(ann, (ast.Name, ast.Attribute)):
        return None
    sym = m.resolve_expr(ann)
    return sym if sym is not None and sym.kind == "class" else None


# -- check: marker context managers the pinned vLLM has nowhere (P4) -----------------------------
_MARKS_MISSING: dict[int, bool] = {}


def _pinned_lacks_marks(m: ModuleFacts) -> bool:
    key = id(m.apis.vllm)
    if key not in _MARKS_MISSING:
        sym = m.apis.resolve("vllm.model_executor.models.interfaces", "SupportsMultiModal")
        _MARKS_MISSING[key] = sym is None or sym.kind != "class" or not any(
            m.apis.class_has_member(sym, name) for name in MARK_CONTEXT_MANAGERS)
    return _MARKS_MISSING[key]


def check_mark_contexts(m: ModuleFacts) -> None:
    """``with x._mark_tower_model(...):`` where the pinned SupportsMultiModal has none of the markers:
    the hierarchy check above judges only classes with known pinned bases; these methods exist nowhere."""
    withs = [n for n in m.of_type(ast.With, ast.AsyncWith) if len(n.items) == 1
             and n.items[0].optional_vars is None and isinstance(n.items[0].context_expr, ast.Call)
             and isinstance(n.items[0].context_expr.func, ast.Attribute)
             and n.items[0].context_expr.func.attr in MARK_CONTEXT_MANAGERS]
    if not withs or not _pinned_lacks_marks(m):
        return
    reported = {f.line for f in m.found("P4") if f.data.get("method") in MARK_CONTEXT_MANAGERS}
    for node in withs:
        method = node.items[0].context_expr.func.attr
        if node.lineno not in reported:
            m.add("P4", node, f"`self.{method}(...)` context manager does not exist in the pinned vLLM",
                  fix="unwrap the context manager (its body runs directly)",
                  data={"method": method, "via": "self"})


# -- check: renamed config attributes compared where the config variable is not recognised (P9) ---
_OPS = {ast.Eq: "==", ast.NotEq: "!="}


def check_attr_renames(m: ModuleFacts) -> None:
    """``<anything>.mamba_cache_mode == "all"``: the comparison the rename table knows how to rewrite,
    when the pinned config class lacks the attribute and no P9 above named it already."""
    named = {f.data.get("attr") for f in m.found("P9")}
    for attr, (var, new_attr, semantics) in ATTR_RENAMES.items():
        if attr in named:
            continue
        for node in m.of_type(ast.Compare):
            if (len(node.ops) == 1 and isinstance(node.left, ast.Attribute)
                    and node.left.attr == attr and type(node.ops[0]) in _OPS
                    and isinstance(node.comparators[0], ast.Constant)
                    and (_OPS[type(node.ops[0])], node.comparators[0].value) in semantics):
                sym = _config_class(m, var)
                if sym is None or m.apis.class_has_member(sym, attr) is not False:
                    return
                m.add("P9", node, f"`{var}.{attr}` does not exist in the pinned vLLM; compared as `{new_attr}`",
                      fix=f"use `{var}.{new_attr}`",
                      data={"config": var, "config_class": sym.qualname, "attr": attr, "rename": new_attr})
                break


def propose_edits(f: Finding, edits: Edits) -> None:
    """P4: unwrap the marker context managers, write the table's base methods; P9: apply the attribute renames of the table."""
    if f.rule == "P4" and f.data.get("method") in MARK_CONTEXT_MANAGERS:
        edits.unwrap[f.line] = "P4"
    elif f.rule == "P4" and f.data.get("replace"):
        edits.remove_methods[(f.data["class"], f.data["method"])] = "P4"
        edits.add_methods[(f.data["class"], f.data["method"])] = ("P4", f.data["source"])
        if f.data.get("import"):
            edits.imports[tuple(f.data["import"])] = ImportAction("P4", "remove")
    elif f.rule == "P4" and f.data.get("source"):
        edits.add_methods[(f.data["class"], f.data["method"])] = ("P4", f.data["source"])
    elif f.rule == "P9" and f.data.get("default") is not None:
        edits.attr_defaults[(f.line, f.data["attr"])] = ("P9", f.data["default"])
        if f.data.get("default_import"):
            edits.add_imports[tuple(f.data["default_import"])] = "P9"
    elif f.rule == "P9" and f.data.get("config") and f.data.get("attr") in ATTR_RENAMES:
        edits.attr_renames[f.data["attr"]] = "P9"
