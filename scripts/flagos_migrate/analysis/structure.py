"""Checks of a file's structure: custom ops registered twice (P11), ``__init__`` overrides that skip
the parent (P12), merged projections built as one ColumnParallelLinear (P8), config classes without
``model_type`` (P15, one file) and leftovers (P19).
"""

from __future__ import annotations

import ast
import re

from flagos_migrate.analysis.facts import PLUGIN, ModuleFacts
from flagos_migrate.astutil import context_flags, dotted
from flagos_migrate.catalog.tables import GUARDED_READERS
from flagos_migrate.pinned.api_index import _normalise_external

DEBUG_MODULES = frozenset({"pdb", "ipdb", "pudb", "pdbpp", "debugpy", "remote_pdb", "rpdb"})
HARDCODED_PATH = re.compile(r"(^|[\s'\"=:])/(models|root|home/[^/\s]+)/|site-packages/")


# -- check 7: custom ops ------------------------------------------------------------------------------
def check_custom_ops(m: ModuleFacts) -> None:
    plugin = m.apis.extra.get(PLUGIN)
    registrations = _op_registrations(m.tree, m.of_type(ast.Call))
    pinned_ops = m.apis.vllm.custom_ops() if registrations else {}
    plugin_ops: dict[str, str] = {}
    if plugin is not None and registrations:
        for mod, rec in plugin.modules.items():
            if mod == m.ctx.module:
                continue
            for op in rec.get("ops", ()):
                plugin_ops.setdefault(op, mod)
    for node, name in registrations:
        flags = context_flags(node, m.parents)
        if flags["guarded"] or flags["conditional"] or flags["function_level"]:
            continue  # guarded registration: the plugin's way to avoid a duplicate
        where = pinned_ops.get(name)
        if where:
            # certain when this file imports the registering module (e.g. to subclass from it);
            # otherwise only when something else imports that module too
            imported = any(b.module == where or b.module.startswith(where + ".") for b in m.bindings)
            m.add("P11", node, f"custom op {name!r} is already registered by the pinned vLLM ({where}): "
                  "registering it again raises `Duplicate op name`" + ("" if imported else
                                                                       " once both modules are imported"),
                  fix="rename the op or guard the registration (e.g. `if not hasattr(torch.ops.vllm, ...)`)",
                  severity="error" if imported else "warning",
                  data={"op": name, "registered_by": where, "pinned": True, "certain": imported,
                        "import_time": True})
        elif name in plugin_ops:
            m.add("P11", node, f"custom op {name!r} is also registered by plugin module {plugin_ops[name]}",
                  fix="register it in one module and import it from there", data={
                      "op": name, "registered_by": plugin_ops[name], "pinned": False, "import_time": True})
    if plugin is None:
        return
    # the same ops reached through two plugin module paths
    for b in m.bindings:
        if b.type_checking or b.guarded or b.module.split(".")[0] != PLUGIN:
            continue
        target = b.module if b.name is None else b.module
        sym = m.apis.resolve(b.module, b.name) if b.name else None
        if sym is not None and sym.kind == "module":
            target = sym.module
        elif sym is not None and sym.kind == "class":
            target = sym.module
        rec = plugin.module(target)
        if not rec:
            continue
        for op in rec.get("ops", ()):
            for mod, other in plugin.modules.items():
                if mod in (target, m.ctx.module) or op not in other.get("ops", ()):
                    continue
                m.add("P11", b.node, f"`{target}` registers custom op {op!r}, which `{mod}` registers too: "
                      "importing both raises `Duplicate op name`", fix="import the op classes from one "
                      "module path (the one the parent model uses)",
                      data={"op": op, "module": target, "other_module": mod, "two_paths": True,
                            "import_time": b.import_time})
                break


# -- check 8: __init__ that skips its parent ---------------------------------------------------------------
def check_incomplete_init(m: ModuleFacts) -> None:
    for cls in m.local_classes.values():
        init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
        if init is None:
            continue
        skips = False
        calls_super = False
        skip_through = None  # super(C, self).__init__(): C's __init__ and those before it in the MRO never run
        for node in m.below(init, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "__init__":
                v = node.func.value
                if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super":
                    named = m.resolve_expr(v.args[0]) if len(v.args) == 2 else None
                    if named is not None and named.kind == "class":
                        skips, skip_through = True, named.qualname
                    else:
                        calls_super = True
                else:
                    sym = m.resolve_expr(v)
                    written = dotted(v) or ""
                    if (sym is not None and sym.kind == "external" and _normalise_external(sym.qualname)
                            == "torch.nn.Module") or written in ("nn.Module", "torch.nn.Module"):
                        skips = True
                    elif sym is not None and sym.kind == "class":
                        calls_super = True  # an explicit parent init
        if not skips or calls_super:
            continue
        lin = m.hierarchy.linearize(("local", cls))
        own, dynamic = m.hierarchy.local_members(cls)
        if dynamic:
            continue
        skipped = [(o[0], o[1]) for k, o in lin[1:] if k == "pinned"]
        if skip_through is not None:
            # only what the MRO holds up to the named class is skipped; the chained __init__ sets the rest
            names = [o[0].qualname if k == "pinned" else None for k, o in lin[1:]]
            if skip_through not in names:
                continue  # a local class named: its own __init__ is not in the pinned index
            upto = names.index(skip_through)
            skipped = [(o[0], o[1]) for k, o in lin[1:upto + 2] if k == "pinned"]
        if not skipped:
            continue
        set_by_init: set[str] = set()
        for _, rec in skipped:
            set_by_init |= set(rec.get("sets", {}).get("__init__", ()))
        overridden = set(own)
        own_calls = {n.func.attr for n in m.subtree(cls) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                     and n.func.value.id == "self"}
        missing: dict[str, list[str]] = {}
        live = _live_calls(m, lin)
        # walk the MRO: a local class between this one and a pinned parent overrides that parent's methods too
        for kind, entry in lin[1:]:
            if kind == "local":
                overridden |= m.hierarchy.local_members(entry)[0]
                continue
            if kind != "pinned":
                continue
            sym, rec = entry[0], entry[1]
            for method, reads in rec.get("reads", {}).items():
                if method == "__init__" or method in overridden:
                    continue
                for attr in reads:
                    if (attr in set_by_init and attr not in own and not _class_level(skipped, attr)
                            and not _guarded(rec, method, attr, own_calls)
                            and not _unreached(method, live)):
                        missing.setdefault(attr, []).append(f"{sym.name}.{method}")
            overridden |= set(rec["methods"])
        if skip_through is not None:
            # upstream named the class it skips on purpose, and upstream's parent may read the same attributes
            # (qwen3_vl_moe's EPLB hooks): only reads on the path every forward takes are judged, which fail
            # whenever the model runs (InternS1-Pro's deepstack buffer, read by the pinned Qwen3-VL forward)
            hot = _runs_on_forward(live)
            missing = {a: ms for a, ms in missing.items() if any(x.split(".")[-1] in hot for x in ms)}
        # upstream's guarded readers (the P12 table) replace every pinned reader of the attribute: apply writes them
        write = {}
        for attr in list(missing):
            for sym, _ in skipped:
                entry = GUARDED_READERS.get((sym.qualname, attr))
                if entry is not None and {r.split(".")[-1] for r in missing[attr]} <= _defined(entry["source"]):
                    write[attr] = entry
                    break
        if missing:
            attrs = sorted(missing)
            parent = skipped[0][0].qualname
            # certain when a reading method runs anyway: the framework's forward, or one this class calls
            called = {n.func.attr for n in m.subtree(cls) if isinstance(n, ast.Call)
                      and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                      and n.func.value.id == "self"}
            certain = skip_through is not None or any(m.split(".")[-1] in called or m.split(".")[-1] == "forward"
                                                      for ms in missing.values() for m in ms)
            how = (f"calls super({skipped[-1][0].name}, self).__init__, skipping {skipped[0][0].name}.__init__,"
                   if skip_through is not None else
                   f"calls nn.Module.__init__ instead of {skipped[0][0].name}.__init__")
            m.add("P12", init, f"{cls.name}.__init__ {how} and never sets {', '.join(attrs)}, which inherited "
                  "methods read",
                  fix="set these attributes in the override (as the parent's __init__ does)",
                  severity="error" if certain else "warning",
                  data={"class": cls.name, "parent": parent, "missing": attrs, "certain": certain,
                        "read_by": {a: sorted(set(m)) for a, m in missing.items()},
                        **({"write": [{"attr": a, "source": e["source"], "imports": [list(i) for i in e["imports"]]}
                                      for a, e in sorted(write.items())]} if write else {})})


def _defined(source: str) -> set[str]:
    return {s.name for s in ast.parse(source).body if isinstance(s, ast.FunctionDef)}


def propose_edits(f, edits) -> None:
    """P12: upstream's guarded readers of an attribute the skipped ``__init__`` sets, written into the class
    (the next pass finds the class defining every reader, and the attribute no longer missing)."""
    for w in f.data.get("write", ()):
        edits.add_methods[(f.data["class"], f"<guarded {w['attr']}>")] = ("P12", w["source"])
        for module, name in w["imports"]:
            edits.add_imports[(module, name)] = "P12"


def _guarded(rec: dict, method: str, attr: str, own_calls: set[str]) -> bool:
    """The read tolerates the attribute's absence: the method tests it first (``getattr(self, "x",
    None)``, ``hasattr``), or it is a private helper that only methods testing it call (upstream's
    qwen3_vl ``_resize_deepstack_input_embeds``, called from ``_get_``/``_set_deepstack_input_embeds``)."""
    guards = rec.get("guards", {})
    if attr in guards.get(method, ()):
        return True
    if not method.startswith("_") or method in own_calls:
        return False
    callers = [m for m, called in rec.get("scalls", {}).items() if method in called and m != method]
    return bool(callers) and all(attr in guards.get(c, ()) for c in callers)


def _live_calls(m, lin: list[tuple]) -> tuple[dict[str, set[str]], set[str]] | None:
    """The ``self.X()`` calls of every method as it runs on this class (the implementation that wins in
    the MRO), and every method some pinned implementation calls, overridden or not; None when a class
    of the MRO cannot be read."""
    winners: dict[str, set[str]] = {}
    helpers: set[str] = set()
    delegated: set[str] = set()  # super().X() / Parent.X(self, ...): the parents' X runs too
    for kind, entry in lin:
        if kind == "local":
            for stmt in entry.body:
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                calls = set()
                for n in m.subtree(stmt):
                    if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
                        continue
                    v = n.func.value
                    if isinstance(v, ast.Name) and v.id == "self":
                        calls.add(n.func.attr)
                    elif ((isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super")
                          or (n.args and isinstance(n.args[0], ast.Name) and n.args[0].id == "self")):
                        delegated.add(n.func.attr)
                winners.setdefault(stmt.name, calls)
        elif kind == "pinned":
            calls = entry[1].get("scalls", {})
            for name in entry[1]["methods"]:
                winners.setdefault(name, set(calls.get(name, ())))
                if name in delegated:  # a name that is not private: always live
                    winners.setdefault(f"super().{name}", set()).update(calls.get(name, ()))
            helpers.update(c for called in calls.values() for c in called)
        elif kind == "unknown":
            return None
    return winners, helpers


def _runs_on_forward(live: tuple[dict[str, set[str]], set[str]] | None) -> set[str]:
    """The methods a forward pass runs on this class: ``forward`` and ``embed_input_ids`` (the runner calls
    both for a multimodal model) and every ``self.X()`` they call, as the MRO resolves them."""
    if live is None:
        return set()
    winners, _ = live
    todo, seen = ["forward", "embed_input_ids"], set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(winners.get(name, ()))
    return seen


def _unreached(method: str, live: tuple[dict[str, set[str]], set[str]] | None,
               seen: frozenset[str] = frozenset()) -> bool:
    """A private helper the pinned parent calls only from methods this class overrides (or from helpers
    that are themselves unreached): nothing runs it. The pinned qwen3_vl's ``_get_``/``_set_``/
    ``_clear_deepstack_input_embeds`` serve its ``forward`` and ``embed_input_ids``, which qwen3_5
    replaces. A private method no pinned code calls may be the framework's hook: not judged."""
    if live is None or not method.startswith("_") or method.startswith("__") or method in seen:
        return False
    winners, helpers = live
    if method not in helpers:
        return False
    callers = [c for c, called in winners.items() if method in called and c != method]
    return all(_unreached(c, live, seen | {method}) for c in callers)


def _class_level(classes: list[tuple], attr: str) -> bool:
    for _, rec in classes:
        sets = set().union(*[set(v) for v in rec.get("sets", {}).values()]) if rec.get("sets") else set()
        if attr in rec["methods"] or (attr in rec["attrs"] and attr not in sets):
            return True
    return False


# -- check 9: merged projections built as ColumnParallelLinear ---------------------------------------
def check_merged_projections(m: ModuleFacts) -> None:
    for node in m.of_type(ast.Call):
        sym = m.resolve_expr(node.func)
        if sym is None or sym.name != "ColumnParallelLinear" or sym.kind != "class":
            continue
        size = next((k.value for k in node.keywords if k.arg == "output_size"), None)
        if size is None and len(node.args) >= 2:
            size = node.args[1]
        terms = _sum_terms(m, size, node)
        if len(terms) < 2 or len({ast.dump(t) for t in terms}) < 2:
            continue
        target = m.parents.get(node)
        attr = None
        if isinstance(target, ast.Assign) and isinstance(target.targets[0], ast.Attribute):
            attr = target.targets[0].attr
        if attr and _has_custom_loader(m, attr):
            continue
        parts = [ast.unparse(t) for t in terms]
        m.add("P8", node, f"ColumnParallelLinear{' ' + attr if attr else ''} has output_size "
              f"{' + '.join(parts)}: a merged projection of sub-projections of different sizes is sharded "
              "wrongly under tensor parallelism", fix="use MergedColumnParallelLinear(input_size, "
              f"output_sizes=[{', '.join(parts)}])", data={"attr": attr, "output_sizes": parts})


def _sum_terms(m, node: ast.AST | None, call: ast.Call) -> list[ast.AST]:
    if node is None:
        return []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _sum_terms(m, node.left, call) + _sum_terms(m, node.right, call)
    # one level of indirection: a name / m.attr assigned a sum in the same function
    func = m.enclosing(call, (ast.FunctionDef, ast.AsyncFunctionDef))
    if func is not None and isinstance(node, (ast.Name, ast.Attribute)):
        written = ast.dump(node).replace("ctx=Load()", "")
        for stmt in m.below(func, ast.Assign):
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and ast.dump(stmt.targets[0]).replace("ctx=Store()", "") == written
                    and isinstance(stmt.value, ast.BinOp) and isinstance(stmt.value.op, ast.Add)):
                return _sum_terms(m, stmt.value, call) if stmt.lineno < call.lineno else []
    return [node]


def _has_custom_loader(m, attr: str) -> bool:
    """``set_weight_attrs(m.<attr>.weight, {"weight_loader": ...})`` shards the merged parts itself."""
    for node in m.of_type(ast.Call):
        if (dotted(node.func) or "").endswith("set_weight_attrs") and node.args:
            if attr in (dotted(node.args[0]) or "").split("."):
                return True
    return False


# -- check 6 (one file): config bridges ---------------------------------------------------------------
def check_config_bridges(m: ModuleFacts) -> None:
    for cls in m.local_classes.values():
        lin = m.hierarchy.linearize(("local", cls))
        if not any(k == "pinned" and o[0].name in ("PretrainedConfig", "PreTrainedConfig")
                   and o[0].module.startswith("transformers") for k, o in lin):
            continue
        if any(k == "unknown" for k, _ in lin):
            continue
        has_type = False
        for k, o in lin:
            if k == "local" and "model_type" in m.hierarchy.local_members(o)[0]:
                has_type = True
            elif k == "pinned" and o[0].name not in ("PretrainedConfig", "PreTrainedConfig") and (
                    "model_type" in o[1]["attrs"]):
                has_type = True
        if not has_type:
            m.add("P15", cls, f"config class {cls.name} has no `model_type`: vLLM cannot map the "
                  "checkpoint's config.json to it", fix='add `model_type = "<model_type of config.json>"`',
                  data={"class": cls.name, "problem": "no-model-type"})


# -- check 10: cleanliness ---------------------------------------------------------------------------
def check_cleanliness(m: ModuleFacts) -> None:
    docstrings = set()
    for node in m.of_type(ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef):
        if node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in m.of_type(ast.ExceptHandler):
        if node.type is None:
            m.add("P19", node, "bare `except:` also catches KeyboardInterrupt/SystemExit and hides real errors",
                  fix="catch a specific exception (at least `except Exception:`)", data={"kind": "bare-except"})
    for node in m.of_type(ast.Constant):
        if isinstance(node.value, str) and id(node) not in docstrings and HARDCODED_PATH.search(node.value):
            m.add("P19", node, f"hard-coded path {node.value[:60]!r}", fix="take the path from "
                  "configuration or an argument", data={"kind": "hard-coded-path", "value": node.value})
    for node in m.of_type(ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id == "breakpoint":
            m.add("P19", node, "leftover `breakpoint()`", fix="remove it", data={"kind": "debug"})
    for b in m.bindings:
        if b.module.split(".")[0] in DEBUG_MODULES:
            m.add("P19", b.node, f"leftover debug import `{b.module}`", fix="remove it",
                  data={"kind": "debug", "module": b.module})


def _op_registrations(tree: ast.AST, nodes: list | None = None) -> list[tuple[ast.AST, str]]:
    """(node, op name) of ``CustomOp.register("x")`` / ``direct_register_custom_op(op_name="x")``."""
    out = []
    for node in nodes if nodes is not None else ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = dotted(node.func) or ""
        if func.endswith("CustomOp.register") or func.endswith("CustomOp.register_oot"):
            key, pos = "name", 0
        elif func.rsplit(".", 1)[-1] == "direct_register_custom_op":
            key, pos = "op_name", 0
        else:
            continue
        name = None
        for kw in node.keywords:
            if kw.arg == key and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                name = kw.value.value
        if name is None and len(node.args) > pos and isinstance(node.args[pos], ast.Constant):
            name = node.args[pos].value if isinstance(node.args[pos].value, str) else None
        if name:
            out.append((node, name))
    return out
