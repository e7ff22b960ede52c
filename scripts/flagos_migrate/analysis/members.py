"""Members the pinned classes lack: ``self.X()`` / ``super().X()`` that no class of the hierarchy
defines (P4, with the upstream marker context managers it unwraps) and attributes of the vLLM config
objects (P9, with the attribute renames it applies).
"""

from __future__ import annotations

import ast

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.analysis.signatures import NO_INIT_BASES
from flagos_migrate.pinned.api_index import Symbol, _normalise_external

# upstream context managers that mark sub-modules; the migration unwraps them
MARK_CONTEXT_MANAGERS = frozenset({"_mark_tower_model", "_mark_language_model", "_mark_composite_model"})

# variable names that hold vLLM config objects -> the class that defines them in vllm.config
CONFIG_CLASSES = {
    "cache_config": "CacheConfig",
    "model_config": "ModelConfig",
    "parallel_config": "ParallelConfig",
    "scheduler_config": "SchedulerConfig",
    "lora_config": "LoRAConfig",
    "speculative_config": "SpeculativeConfig",
    "compilation_config": "CompilationConfig",
    "device_config": "DeviceConfig",
    "load_config": "LoadConfig",
    "multimodal_config": "MultiModalConfig",
    "quant_config": None,  # many classes: never judged
}

# known renames of config attributes: (config var, upstream attr) -> pinned spelling
CONFIG_ATTR_RENAMES = {
    ("cache_config", "mamba_cache_mode"): "enable_prefix_caching",
}


# -- check: self.X() / super().X() ---------------------------------------------------------------
def check_methods(m: ModuleFacts) -> None:
    for cls in m.local_classes.values():
        lin = m.hierarchy.linearize(("local", cls))
        if not any(k == "pinned" or (k == "external" and _normalise_external(o) not in NO_INIT_BASES)
                   for k, o in lin[1:]):
            continue  # plain classes and mixins: attributes may come from anywhere
        for node in m.subtree(cls):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
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
            m.add("P4", node, f"`{via}{'()' if via == 'super' else ''}.{name}()` in class {cls.name}: no class "
                  f"of its hierarchy on the pinned version defines `{name}`",
                  fix=("unwrap the context manager (its body runs directly)"
                       if name in MARK_CONTEXT_MANAGERS else "define it or remove the call"),
                  autofix=name in MARK_CONTEXT_MANAGERS, severity=severity,
                  data={"method": name, "via": via, "class": cls.name, "pinned_bases": pinned})


# -- check 4: vLLM config attributes ----------------------------------------------------------------
def check_config_attributes(m: ModuleFacts) -> None:
    aliases = _config_aliases(m)
    for node in m.nodes:
        if not (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)):
            continue
        base = node.value
        kind = None
        if isinstance(base, ast.Attribute) and base.attr in CONFIG_CLASSES:
            kind = base.attr
        elif isinstance(base, ast.Name):
            kind = aliases.get(base.id)
            if CONFIG_CLASSES.get(base.id) and _trusted_config_name(m, base):
                kind = base.id
        if not kind or CONFIG_CLASSES.get(kind) is None or node.attr in m.hasattr_names:
            continue
        if node.attr.startswith("__"):
            continue
        sym = _config_class(m, kind)
        if sym is None or m.apis.class_has_member(sym, node.attr) is not False:
            continue
        rename = CONFIG_ATTR_RENAMES.get((kind, node.attr))
        data = {"config": kind, "config_class": sym.qualname, "attr": node.attr}
        if rename:
            data["rename"] = rename
        m.add("P9", node, f"`{kind}.{node.attr}`: {sym.name} of the pinned vLLM has no attribute `{node.attr}`",
              fix=(f"use `{kind}.{rename}`" if rename else f"read it with getattr({kind}, {node.attr!r}, "
                   "<default>) or drop the feature"), autofix=bool(rename), data=data)


def _trusted_config_name(m, node: ast.Name) -> bool:
    """A variable called e.g. ``cache_config`` holds the vLLM config class: every binding of it in the
    enclosing function is a parameter annotated with that class (or unannotated) or ``X.cache_config``."""
    cls_name = CONFIG_CLASSES[node.id]
    scope = m.enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    while scope is not None:
        bound = False
        args = scope.args
        for a in args.posonlyargs + args.args + args.kwonlyargs:
            if a.arg == node.id:
                bound = True
                if a.annotation is not None and cls_name not in ast.unparse(a.annotation):
                    return False
        for sub in m.subtree(scope):
            if isinstance(sub, (ast.Assign, ast.AnnAssign)):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                if any(isinstance(t, ast.Name) and t.id == node.id for t in targets):
                    bound = True
                    v = sub.value
                    if not (isinstance(v, ast.Attribute) and v.attr == node.id):
                        return False
            elif isinstance(sub, (ast.For, ast.With, ast.NamedExpr)) and node.id in {
                    n.id for n in ast.walk(sub) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}:
                return False
        if bound:
            return True
        scope = m.enclosing(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    return False


def _config_class(m, kind: str) -> Symbol | None:
    sym = m.apis.resolve("vllm.config", CONFIG_CLASSES[kind])
    return sym if sym is not None and sym.kind == "class" else None


def _config_aliases(m) -> dict[str, str]:
    """``cc = vllm_config.cache_config`` style aliases (a name bound only that way)."""
    out: dict[str, str] = {}
    spoiled: set[str] = set()
    for node in m.nodes:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            v = node.value
            if isinstance(v, ast.Attribute) and v.attr in CONFIG_CLASSES and name not in CONFIG_CLASSES:
                if out.get(name, v.attr) != v.attr:
                    spoiled.add(name)
                out[name] = v.attr
    stores: dict[str, int] = {}
    for node in m.nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            stores[node.id] = stores.get(node.id, 0) + 1
        elif isinstance(node, ast.arg):
            stores[node.arg] = stores.get(node.arg, 0) + 1
    counted: dict[str, int] = {}
    for node in m.nodes:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Attribute) and node.value.attr in CONFIG_CLASSES):
            counted[node.targets[0].id] = counted.get(node.targets[0].id, 0) + 1
    return {n: k for n, k in out.items() if n not in spoiled and stores.get(n, 0) == counted.get(n, 0)}
