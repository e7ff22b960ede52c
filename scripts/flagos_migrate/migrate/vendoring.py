"""P16 inside a migration: upstream helpers the migrated code needs and the pinned vLLM lacks (or
has with another signature) are sliced from upstream into ``vllm_fl/compat``, migrated like any
module, and kept only when nothing in them blocks the import; hooks made only of missing names go
(P17) and debug context managers are unwrapped (P21) instead.

``Vendoring`` is a part of ``engine.Migration`` (a mixin): it reads the migration's upstream
(``up``), pinned APIs (``apis``), the plugin's records (``_base``), the overlay of what is being
written, and runs ``migrate_unit`` on each slice. The slicing itself is ``vendor.py``.
"""

from __future__ import annotations

import ast

from flagos_migrate.analysis.imports import blocks_import
from flagos_migrate.astutil import parse_source
from flagos_migrate.catalog.findings import Finding
from flagos_migrate.migrate.edits import Edits, ImportAction
from flagos_migrate.migrate.unit import Unit
from flagos_migrate.migrate.vendor import (
    Vendored,
    _stmt_names,
    compat_module_for,
    locate_definition,
    missing_class_attributes,
    render_compat,
    slice_definitions,
    slice_ops_clash,
)

MAX_VENDOR_DEPTH = 4


class Vendoring:
    def _vendor_changed_function(self, callee: str, bindings, tree: ast.Module, edits: Edits, depth: int) -> None:
        """A module-level vLLM function whose pinned signature rejects upstream's call: upstream's own
        definition, vendored (P16), is the one the call was written for. Only plain helpers: classes
        keep their identity (isinstance, registries), and decorators or functions that set attributes
        on what they are given talk to the pinned framework, which would not read upstream's attributes
        (``default_pooling_type`` upstream sets ``default_seq_pooling_type``; 0.13.0 reads another)."""
        last = callee.rsplit(".", 1)[-1]
        decorators = {n.id for d in ast.walk(tree) for dec in getattr(d, "decorator_list", ())
                      for n in ast.walk(dec) if isinstance(n, ast.Name)}
        for b in bindings:
            if b.name != last or b.type_checking or (b.line, b.name) in edits.imports or b.alias in decorators:
                continue
            sym = self.apis.resolve(b.module, b.name)
            if sym is None or sym.kind != "function" or sym.qualname != callee:
                continue
            if not self._plain_upstream_helper(b.module, b.name):
                continue
            target = self.vendor(b.module, b.name, depth)
            if target:
                edits.imports[(b.line, b.name)] = ImportAction("P16", "repoint", target)

    def _plain_upstream_helper(self, module: str, name: str) -> bool:
        """Upstream's ``name`` is a function that neither builds functions (decorators, closures) nor
        writes attributes of its parameters."""
        loc = locate_definition(self.up, module, name)
        tree = parse_source(self.up.text(loc[0]) or "", loc[0]) if loc else None
        fn = next((s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and s.name == loc[1]), None) if tree else None
        if fn is None:
            return False
        params = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
        for node in ast.walk(fn):
            if node is not fn and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return False
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
            for tgt in targets:
                if isinstance(tgt, ast.Attribute) and isinstance(tgt.value, ast.Name) and tgt.value.id in params:
                    return False
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
                    and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in params):
                return False
        return True

    def _vendorable(self, module: str, name: str) -> bool:
        """Upstream's ``name`` in ``module`` is a plain helper (``_plain_upstream_helper``) whose slice
        needs only what the pinned vLLM has: a pinned sibling lacking only such helpers stays the
        sibling (issue 13 class 9), the helper comes along as P16."""
        loc = locate_definition(self.up, module, name)
        if loc is None or loc[1] != name or not self._plain_upstream_helper(module, name):
            return False
        return slice_definitions(self.up.text(loc[0]) or "", loc[0], [name],
                                 lambda m, n: self.apis.resolve(m, n) is not None) is not None

    def _removed_or_vendor(self, missing: dict[str, Finding], removed: list[Finding], edits: Edits,
                           depth: int) -> None:
        """Names the pinned vLLM lacks and nothing re-points: hooks made of them go (P17), debug
        context managers are unwrapped (P21), anything else is vendored from upstream (P16)."""
        hooks = [f for f in removed if f.rule == "P17"]
        debug = {f.data["alias"] for f in removed if f.rule == "P21"}
        for alias, f in missing.items():
            covering = [h for h in hooks if alias in h.data["names"]]
            if covering:
                for h in covering:
                    edits.remove_methods[(h.data["class"], h.data["method"])] = "P17"
                continue
            if alias in debug:
                edits.unwrap_calls[alias] = "P21"  # the import goes once nothing uses it
                continue
            target = self.vendor(f.data["module"], f.data["name"], depth)
            if target:
                edits.imports[(f.line, f.data["name"])] = ImportAction("P16", "repoint", target)

    def _existing_compat_names(self, cmod: str) -> set[str]:
        rec = self._base.get(cmod)
        return set(rec.get("all") or []) if rec else set()

    def vendor(self, module: str, name: str, depth: int) -> str | None:
        if depth >= MAX_VENDOR_DEPTH or (module, name) in self.vendor_failed:
            return None
        loc = locate_definition(self.up, module, name)
        if loc is None or loc[1] != name:
            self.vendor_failed[(module, name)] = "upstream does not define it"
            return None
        dmod = loc[0]
        cmod = compat_module_for(dmod)
        current = self.compat.get(cmod) or Vendored(dmod, self._existing_compat_names(cmod))
        if name in current.names and current.text:
            return cmod
        trial = set(current.names) | {name}

        def pinned_has(mod: str, n: str) -> bool:
            return self.apis.resolve(mod, n) is not None

        sl = slice_definitions(self.up.text(dmod) or "", dmod, sorted(trial), pinned_has)
        if sl is None:
            self.vendor_failed[(module, name)] = "definition too large or not at module level upstream"
            return None
        text = render_compat(dmod, self.up.version, sorted(trial), sl)
        if slice_ops_clash(text, self.apis.vllm.custom_ops()):
            self.vendor_failed[(module, name)] = "registers a custom op the pinned vLLM already registers"
            return None
        saved = self._overlay.get(cmod)
        self.set_overlay(cmod, text)
        unit = Unit(cmod, dmod, "compat", text)
        self.migrate_unit(unit, depth + 1)
        errors = [f for f in unit.after if blocks_import(f)]
        if not errors and (attrs := missing_class_attributes(unit.text, cmod, self.apis)):
            errors = [Finding("P3", unit.relpath, 1, 0, f"`{attrs[0]}` does not exist in the pinned vLLM "
                              "and is read at import time")]
        if errors:
            if saved is None:
                self._overlay.pop(cmod, None)
            else:
                self._overlay[cmod] = saved
            self._apis_cache = None
            self.vendor_failed[(module, name)] = f"its code needs what the pinned vLLM lacks: {errors[0].message}"
            return None
        self.set_overlay(cmod, unit.text)
        self.compat[cmod] = Vendored(dmod, trial, unit.text)
        self.compat_units[cmod] = unit  # its findings (e.g. call mismatches in bodies) stay visible
        self.compat_asked.setdefault(cmod, set()).add(name)
        return cmod

    def foreign_lines(self, cmod: str) -> set[int]:
        """Lines of the compat module ``cmod`` (its written text) that hold definitions only other
        migrations need: the file is shared, and its text is the union of every migration's names.
        Their findings were that migration's to settle and are in its record; counting them here
        made a model "left" with another model's work (qwen3_5 after alice_ai: 5 left, not 2)."""
        asked = self.compat_asked.get(cmod)
        v, unit = self.compat.get(cmod), self.units.get(cmod)
        if not asked or v is None or unit is None:
            return set()
        sl = slice_definitions(self.up.text(v.upstream_module) or "", v.upstream_module, sorted(asked),
                               lambda m, n: self.apis.resolve(m, n) is not None)
        tree = parse_source(unit.text or "", unit.relpath)
        if sl is None or tree is None:
            return set()
        mine = set(sl.names)
        out: set[int] = set()
        for stmt in tree.body:
            names = set(_stmt_names(stmt))
            if names and not names & mine:
                start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
                out.update(range(start, (stmt.end_lineno or stmt.lineno) + 1))
        return out
