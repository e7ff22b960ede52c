"""Import triage (P1, P2, P3, P5, P13, P14, P18): every import of the file against the pinned index,
and attribute reads on imported pinned modules; what blocks importing the file; the import edits
these findings propose.
"""

from __future__ import annotations

import ast
import os

from flagos_migrate.analysis import env_vars
from flagos_migrate.analysis.facts import PLUGIN, ModuleFacts
from flagos_migrate.astutil import ImportBinding, Usage, context_flags
from flagos_migrate.catalog.findings import Finding
from flagos_migrate.catalog.tables import (
    ABSENT_SUBSYSTEMS,
    IMPORT_FAILURE_RULES,
    IMPORT_STATEMENT_RULES,
    ISINSTANCE_EQUIVALENTS,
    TRANSFORMERS_RENAMES,
)
from flagos_migrate.migrate import backports
from flagos_migrate.migrate.edits import ImportAction

# compiled extension modules of the vLLM wheel (not in a source index, but importable)
COMPILED_MODULES = frozenset({
    "vllm._C", "vllm._moe_C", "vllm._flashmla_C", "vllm._flashmla_extension_C", "vllm.cumem_allocator",
    "vllm.vllm_flash_attn._vllm_fa2_C", "vllm.vllm_flash_attn._vllm_fa3_C",
})


def check_imports(m: ModuleFacts) -> None:
    for b in m.bindings:
        if b.module == "__future__" or b.type_checking:
            continue
        if b.level:
            _relative(m, b)
            continue
        if b.guarded:
            continue
        if not m.known_package(b.module):
            continue
        _absolute(m, b)


def _usage_data(m, b: ImportBinding) -> dict:
    u = m.usage.get(b.alias, Usage())
    return {"used_at_runtime": u.runtime > 0, "annotation_only": u.annotation_only, "unused": u.unused,
            "import_time": b.import_time}


def _relative(m, b: ImportBinding) -> None:
    names = [a.name for a in b.node.names]
    if names and b.name != names[0]:
        return  # one finding per statement, on its first name
    missing: list[str] = []
    exists = bool(m.apis.has_module(b.module))
    if (not m.ctx.origin_module and b.module.split(".")[0] == PLUGIN and exists
            and all(n == "*" or m.apis.resolve(b.module, n) is not None for n in names)):
        return  # a plugin file importing a plugin sibling that exists: fine where it is
    if exists:
        for n in names:
            if n != "*" and m.apis.resolve(b.module, n) is None:
                missing.append(n)
    m.add(
     "P1", b.node, f"relative import `from {b.written} import {', '.join(names)}` "
     f"(resolves to {b.module})",
     fix=f"import from the absolute module: from {b.module} import ..." if exists and not missing else None,
     data={"level": b.level, "written": b.written, "names": names, "absolute": b.module,
           "pinned_module_exists": exists, "missing_names": missing if exists else names,
           "import_time": b.import_time},
 )


def _absolute(m, b: ImportBinding) -> None:
    top = b.module.split(".")[0]
    has_mod = m.apis.has_module(b.module)
    if b.name is None or b.name == "*":
        if not has_mod:
            _missing(m, b, None)
        return
    if not has_mod:
        # maybe ``from vllm.a import b`` where a.b is a module
        _missing(m, b, b.name, module_missing=True)
        return
    sym = m.apis.resolve(b.module, b.name)
    if sym is None:
        _missing(m, b, b.name)
    elif sym.kind == "typing-only" and top in ("vllm", "transformers"):
        _missing(m, b, b.name, typing_only=True)


def _missing(m, b: ImportBinding, name: str | None, module_missing: bool = False,
             typing_only: bool = False) -> None:
    top = b.module.split(".")[0]
    data = {"module": b.module, "name": name, **_usage_data(m, b)}
    what = f"`{b.module}`" if name is None else f"`{name}` from `{b.module}`"
    pinned = f"{m.apis.index_for(b.module).package} {m.apis.index_for(b.module).version}"
    reason = "module does not exist" if (module_missing or name is None) else "name does not exist"
    if typing_only:
        reason = "name exists only under TYPE_CHECKING"
    if top == PLUGIN:
        m.add("P18", b.node, f"import of {what}: {reason} in the plugin tree", data=data)
        return
    if top == "transformers" and name:
        sibling = _transformers_sibling(m, b.module, name)
        if sibling:
            data.update({"new_module": sibling, "candidates": [sibling]})
            m.add("P13", b.node, f"import of {what}: {reason} in {pinned}; it is defined in `{sibling}`",
                  fix=f"from {sibling} import {name}", data=data)
            return
    if top == "transformers":
        new = TRANSFORMERS_RENAMES.get(name or "")
        if new and m.apis.resolve("transformers", new) is None:
            new = None
        if new:
            data["new_name"] = new
        fix = (f"use `{new}` (transformers {pinned.split()[-1]} spelling)" if new else
               ("add a config bridge in vllm_fl/configs/ (P2)" if (name or "").endswith("Config") else None))
        m.add("P5", b.node, f"import of {what}: {reason} in {pinned}", fix=fix,
              data=data)
        return
    # vllm: moved? annotation only? unused?
    if name is not None:
        cands = moved_candidates(m, name, b.module)
        moved_bp = backports.for_import(b.module, name)
        if moved_bp is not None and moved_bp.local and moved_bp not in backports.needed(
                [m.tree], lambda mod, n: m.apis.resolve(mod, n) is None, origins=[m.ctx.origin_module]):
            moved_bp = None  # a local back-port re-points only the files that need it (step3_text's Attention)
        if cands and cands[0] is not None and not (moved_bp is not None and m.apis.has_module(moved_bp.module)):
            # (a back-port of the plugin that shadows the name is where it comes from: P22 re-points it there)
            new_module, all_cands = cands
            data.update({"new_module": new_module, "candidates": all_cands})
            m.add("P13", b.node, f"import of {what}: {reason} in {pinned}; "
                  f"it is defined in `{new_module}`", fix=f"from {new_module} import {name}",
                  data=data)
            return
        if cands:
            data["candidates"] = cands[1]
    # a name a back-port provides is imported from it even when only annotations use it: torch's
    # custom-op schema (infer_schema) and dataclasses read annotations at run time
    if name is not None and data["annotation_only"] and backports.for_import(b.module, name) is None:
        m.add("P14", b.node, f"import of {what}: {reason} in {pinned}; used only in annotations",
              fix="move the import under `if TYPE_CHECKING:` and add `from __future__ import annotations`",
              data=data)
        return
    if name and name.endswith("Config") and b.module.startswith("vllm.transformers_utils.config"):
        m.add("P2", b.node, f"import of {what}: {reason} in {pinned}",
              fix=f"import {name} from the plugin's config bridge vllm_fl.configs.<model_type>", data=data)
        return
    fix = None
    bp = backports.for_import(b.module, name) if name else None
    equivalent = ISINSTANCE_EQUIVALENTS.get((b.module, name or ""))
    if equivalent and not data["unused"] and _isinstance_only(m, b.alias):
        classes = ", ".join(cls for _, cls in equivalent)
        data["equivalent"] = [list(pair) for pair in equivalent]
        m.add("P13", b.node, f"import of {what}: {reason} in {pinned}; used only in isinstance checks, "
              f"where the pinned classes ({classes}) stand for it",
              fix=f"{b.alias} = ({classes},) with those classes imported", data=data)
        return
    if data["unused"]:
        fix = "the name is unused: remove the import"
    elif bp is not None:
        fix = f"`migrate_model.py apply` installs the back-port {bp.module} (P22: {bp.what}) and imports it from there"
        data["backport"] = bp.module
    elif data.get("candidates"):
        fix = "defined in several pinned modules: " + ", ".join(data["candidates"])
    elif (absent := absent_subsystem(b.module)) is not None:
        fix = f"no counterpart in {pinned}: {absent}; port the subsystem or leave the model out"
        data["absent_subsystem"] = True
        if name is not None and (checks := _isinstance_checks(m, b.alias)):
            # nothing on the pinned vLLM is an instance of it: each check is False (and an `and` it begins)
            data["never_instance"] = checks
            fix = (f"nothing on {pinned} is a `{name}` ({absent}): `apply` makes each isinstance check of it False, "
                   "and an `and` it begins")
    if name is not None and b.import_time and not data["unused"] and (users := function_users(m, b.alias)):
        # what apply does when nothing resolves it: the import moves into these functions (the finding stays)
        data["defer_to"] = users
    m.add("P3", b.node, f"import of {what}: {reason} in {pinned}" + (" (unused)" if data["unused"] else ""),
          fix=fix, data=data)


def absent_subsystem(module: str) -> str | None:
    """What the pinned vLLM lacks for an import from ``module`` (the P3 table ``absent_subsystems``)."""
    return next((why for prefix, why in ABSENT_SUBSYSTEMS.items()
                 if module == prefix or module.startswith(prefix + ".")), None)


def function_users(m, alias: str) -> list[int] | None:
    """The ``def`` lines of the functions whose bodies hold every use of ``alias``, or None when a use runs when
    the module is imported (module level, a class body, a decorator, a default or an annotation of a def)."""
    lines: set[int] = set()
    uses = [n for n in m.of_type(ast.Name) if n.id == alias and isinstance(n.ctx, ast.Load)]
    for node in uses:
        child, parent = node, m.parents.get(node)
        while parent is not None:
            if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(child is s for s in parent.body):
                lines.add(parent.lineno)
                break
            if isinstance(parent, (ast.Module, ast.ClassDef)) and any(child is s for s in parent.body):
                return None
            child, parent = parent, m.parents.get(parent)
        else:
            return None
    return sorted(lines) or None


def _isinstance_checks(m, alias: str) -> list[int] | None:
    """The lines of the ``isinstance(x, alias)`` calls when they are every use of ``alias`` (``x`` a name or an
    attribute of one: nothing runs but the check), else None."""
    uses = [n for n in m.of_type(ast.Name) if n.id == alias and isinstance(n.ctx, ast.Load)]
    lines = []
    for node in uses:
        call = m.parents.get(node)
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "isinstance"
                and len(call.args) == 2 and call.args[1] is node and not call.keywords):
            return None
        subject = call.args[0]
        while isinstance(subject, ast.Attribute):
            subject = subject.value
        if not isinstance(subject, ast.Name):
            return None
        lines.append(call.lineno)
    return sorted(set(lines)) or None


def _isinstance_only(m, alias: str) -> bool:
    """Every use of ``alias`` is the class argument of isinstance/issubclass (or inside its tuple)."""
    uses = [n for n in m.of_type(ast.Name) if n.id == alias and isinstance(n.ctx, ast.Load)]
    for node in uses:
        parent = m.parents.get(node)
        if isinstance(parent, ast.Tuple):
            node, parent = parent, m.parents.get(parent)
        if not (isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name)
                and parent.func.id in ("isinstance", "issubclass") and len(parent.args) == 2
                and parent.args[1] is node):
            return False
    return bool(uses)


def _transformers_sibling(m, module: str, name: str) -> str | None:
    """The one module of the same transformers model package that defines ``name`` (e.g. a helper
    that 4.57.6 keeps in ``image_processing_x_fast``); only that package is searched, so it stays cheap."""
    parts = module.split(".")
    if len(parts) < 3 or parts[1] != "models" or m.apis.transformers is None:
        return None
    prefix = ".".join(parts[:3]) + "."
    idx = m.apis.transformers
    found = [m for m in idx.modules.keys() if m.startswith(prefix) and ".modular_" not in m
             and name in idx.modules[m]["defs"]]
    return found[0] if len(found) == 1 else None


def moved_candidates(m, name: str, module: str) -> tuple[str | None, list[str]] | None:
    """(unique target module or None, all candidates) for a name defined elsewhere in pinned vLLM."""
    idx = m.apis.vllm
    found = []
    for mod, kind in idx.definers(name):
        rec = idx.module(mod)
        # ``X = object`` stand-ins beside a TYPE_CHECKING import are not definitions
        if rec and name in rec.get("tc", {}).get("imports", {}):
            continue
        if mod.split(".")[-1].startswith("_") or ".tests." in mod:
            continue
        found.append((mod, kind))
    if not found:
        return None
    cands = [m for m, _ in found]
    kinds = {k for _, k in found}
    non_model = [m for m, _ in found if not m.startswith("vllm.model_executor.models.")]
    if len(non_model) == 1:
        return non_model[0], cands
    if not non_model and len(found) == 1:
        return found[0][0], cands
    if not non_model:
        # several model modules: the one of the same model family as this file, if exactly one
        stem = (m.ctx.origin_module or m.ctx.module).rsplit(".", 1)[-1]
        scored = sorted(((len(os.path.commonprefix([stem, m.rsplit(".", 1)[-1]])), m) for m in cands),
                        reverse=True)
        if scored[0][0] >= 4 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
            return scored[0][1], cands
    if len(kinds) > 1:
        classes = [m for m, k in found if k == "class" and not m.startswith("vllm.model_executor.models.")]
        if len(classes) == 1:
            return classes[0], cands
    return None, cands


def check_module_attributes(m: ModuleFacts) -> None:
    for node in m.of_type(ast.Attribute):
        if not isinstance(node.ctx, ast.Load):
            continue
        if isinstance(m.parents.get(node), ast.Attribute):
            continue  # judge the longest chain once, from its outermost node
        chain = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            chain.append(cur)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            continue
        for attr_node in reversed(chain):
            base = m.resolve_expr(attr_node.value)
            if base is None or base.kind != "module" or base.module.split(".")[0] not in ("vllm", "transformers"):
                break
            if base.module in COMPILED_MODULES or f"{base.module}.{attr_node.attr}" in COMPILED_MODULES:
                break
            sym = m.apis.resolve(base.module, attr_node.attr)
            if sym is None and not _guarded_by_hasattr(m, attr_node):
                flags = context_flags(attr_node, m.parents)
                top_level = not (flags["function_level"] or flags["guarded"] or flags["type_checking"]
                                 or flags["conditional"])
                m.add("P3", attr_node, f"`{base.module}.{attr_node.attr}` does not exist in "
                      f"{m.apis.index_for(base.module).package} {m.apis.index_for(base.module).version}",
                      data={"module": base.module, "name": attr_node.attr, "used_at_runtime": True,
                            "annotation_only": False, "unused": False, "import_time": top_level,
                            "attribute_access": True, **env_vars.env_fix(m, cur, attr_node.attr)})
                break
            if sym is None or sym.kind != "module":
                break


def _guarded_by_hasattr(m, node: ast.AST) -> bool:
    attr = getattr(node, "attr", None)
    return attr is not None and attr in m.hasattr_names


def import_blockers(findings: list[Finding]) -> list[Finding]:
    """The error findings that make importing the file fail (as opposed to failing later, at run time)."""
    out = []
    for f in findings:
        if f.severity != "error" or f.rule not in IMPORT_FAILURE_RULES:
            continue
        if f.rule == "P20" or f.data.get("import_time", False):
            out.append(f)
        elif f.rule == "P11" and f.data.get("import_time", True):
            out.append(f)
    return out


def blocks_import(f: Finding) -> bool:
    """A finding that stops a vendored slice from being taken: an import that cannot resolve, or
    anything that fails while the module is imported. Call and attribute problems inside function
    bodies stay in the plan as "left for you" on the compat module, like any migrated file's."""
    if not f.is_issue:
        return False
    if f.data.get("import_time") is True:
        return True
    # an import statement that cannot resolve blocks even inside a function: the helper could never work
    return f.rule in IMPORT_STATEMENT_RULES and not f.data.get("attribute_access")


# -- check: names a back-port of the plugin shadows (P22) ----------------------------------------
def check_backport_imports(m: ModuleFacts) -> None:
    """Once a back-port is in the plugin (or comes with this migration), every import of a name it
    shadows comes from it: mappers and loaders must come in pairs."""
    local = None
    for bp in backports.BACKPORTS:
        if m.ctx.module == bp.module or not m.apis.has_module(bp.module):
            continue
        if bp.local:
            if local is None:
                local = set(backports.needed([m.tree], lambda mod, name: m.apis.resolve(mod, name) is None,
                                             origins=[m.ctx.origin_module]))
            if bp not in local:
                continue
        for b in m.bindings:
            if b.name and not b.type_checking and bp.repoints(b.module, b.name):
                m.add("P22", b.node, f"`{b.name}` comes from the back-port {bp.module} ({bp.what})",
                      line=b.line, col=0, fix=f"from {bp.module} import {b.name}",
                      data={"name": b.name, "module": b.module, "backport": bp.module})


def check_backport_caveats(m: ModuleFacts) -> None:
    """A call a back-port takes whose effect the pinned vLLM never consults (its ``call_caveats``) keeps a
    warning: LLaVA-OneVision-2's ``VIDEO_LOADER_REGISTRY.register(name, video_processor=...)`` registers the
    loader, but 0.13.0 never picks a loader by the model's video processor."""
    caveats = {(name, method, kw): (bp, why, fix) for bp in backports.BACKPORTS
               for name, method, kw, why, fix in bp.call_caveats}
    if not caveats:
        return
    bound = {b.alias: b.name for b in m.bindings if b.name and not b.type_checking
             and any(b.name == n and (bp.repoints(b.module, b.name) or b.module == bp.module)
                     for (n, _, _), (bp, _, _) in caveats.items())}
    for node in m.of_type(ast.Call):
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in bound):
            continue
        for kw in node.keywords:
            hit = caveats.get((bound[func.value.id], func.attr, kw.arg))
            if hit is None:
                continue
            bp, why, fix = hit
            first = node.args[0] if node.args else None
            name = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else "<name>"
            m.add("P22", node, f"`{func.value.id}.{func.attr}({kw.arg}=...)` (the back-port {bp.module} takes it): "
                  f"{why}", severity="warning", fix=fix.format(name=name), data={"caveat": kw.arg})


def import_action(f: Finding) -> ImportAction | None:
    """The edit an import finding proposes by itself (the migration first re-points modules that
    come along or are bridged)."""
    d = f.data
    if f.rule == "P5" and d.get("new_name"):
        return ImportAction("P5", "rename", None, d["new_name"])
    if f.rule == "P13" and d.get("new_module"):
        return ImportAction("P13", "repoint", d["new_module"])
    if f.rule == "P13" and d.get("equivalent"):
        return ImportAction("P13", "equivalent", targets=tuple(tuple(pair) for pair in d["equivalent"]))
    if d.get("unused"):
        return ImportAction("P3", "remove")
    if f.rule == "P14" and d.get("annotation_only") and d.get("import_time", True):
        return ImportAction("P14", "type_checking")
    # a transformers 5 class (an image processor in ``image_processor: X = ...``) that only annotations
    # use, not renamed, bridged or vendored: as P14, under TYPE_CHECKING with those annotations quoted
    if f.rule == "P5" and d.get("annotation_only") and d.get("import_time", True) and d.get("name"):
        return ImportAction("P5", "type_checking")
    if f.rule == "P22":
        return ImportAction("P22", "repoint", d["backport"])
    if f.rule == "P29":
        return ImportAction("P29", "repoint", d["new_module"])
    return None
