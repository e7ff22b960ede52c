"""Cross-file check: a config bridge against the pinned parents of the model that uses it (P15).

The one check that reads another file (the bridge the model imports from ``vllm_fl.configs``);
``validate_migration.py`` runs it with the plugin's files at hand.
"""

from __future__ import annotations

import ast

from flagos_migrate.analysis.engine import parse_text
from flagos_migrate.analysis.facts import PLUGIN, AnalysisContext, ModuleFacts
from flagos_migrate.astutil import import_bindings
from flagos_migrate.catalog.findings import Finding


def _class_sets(node: ast.ClassDef) -> set[str]:
    """Attributes a config class defines: class attributes, ``self.X = ...`` anywhere, attribute_map keys."""
    out: set[str] = set()
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    out.add(t.id)
                    if t.id == "attribute_map" and isinstance(stmt.value, ast.Dict):
                        out.update(k.value for k in stmt.value.keys
                                   if isinstance(k, ast.Constant) and isinstance(k.value, str))
    for sub in ast.walk(node):
        if (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store) and isinstance(sub.value, ast.Name)
                and sub.value.id == "self"):
            out.add(sub.attr)
        elif (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "setattr"
              and len(sub.args) >= 2 and isinstance(sub.args[1], ast.Constant)):
            out.add(str(sub.args[1].value))
    return out


def bridge_field_findings(tree: ast.Module, ctx: AnalysisContext, plugin_files: dict) -> list[Finding]:
    """P15: fields that the pinned parent classes of this file's models read directly (``config.X``)
    but the config bridge the file imports from ``vllm_fl.configs`` never sets.

    A warning: a field may also arrive from the checkpoint's config.json through ``**kwargs``.
    """
    base = ctx.origin_module or ctx.module
    is_package = ctx.path.endswith("__init__.py") and not ctx.origin_module
    # the bindings alone first: most files import no bridge, and need no facts at all
    if not any(b.name and b.module.startswith(f"{PLUGIN}.configs") and not b.level
               for b in import_bindings(tree, base, is_package)):
        return []
    an = ModuleFacts(tree, ctx)
    bridges = [b for b in an.bindings if b.name and b.module.startswith(f"{PLUGIN}.configs") and not b.level]
    reads: dict[str, set[str]] = {}
    for cls in an.local_classes.values():
        lin = an.hierarchy.linearize(("local", cls))
        if any(k == "unknown" for k, _ in lin):
            continue
        for kind, obj in lin[1:]:
            if kind == "pinned" and obj[0].module.startswith("vllm.model_executor.models"):
                for attr in obj[1].get("cfg", ()):
                    reads.setdefault(attr, set()).add(obj[0].name)
    if not reads:
        return []
    out: list[Finding] = []
    pretrained = ctx.apis.resolve("transformers", "PretrainedConfig")
    base_members: set[str] = set()
    if pretrained is not None and pretrained.kind == "class":
        for _, rec in ctx.apis.mro(pretrained)[0]:
            base_members |= set(rec["methods"]) | set(rec["attrs"])
    for b in bridges:
        path = plugin_files.get(b.module)
        if path is None:
            continue
        btree, _ = parse_text(path.read_bytes(), str(path))
        if btree is None:
            continue
        cls = next((n for n in btree.body if isinstance(n, ast.ClassDef) and n.name == b.name), None)
        if cls is None:
            continue
        defined = _class_sets(cls) | base_members
        if "__getattr__" in defined or any(a.endswith("_config") for a in _class_sets(cls)):
            continue  # nested sub-configs: the parents may be reading those
        missing = sorted(a for a in reads if a not in defined)
        if missing:
            out.append(Finding(
                "P15", ctx.path, b.line, b.col,
                f"config bridge {b.name} ({b.module}) never sets {', '.join(missing)}, which the pinned parent "
                f"class(es) {', '.join(sorted({c for a in missing for c in reads[a]}))} read as config.X",
                severity="warning", fix="add these fields to the bridge with upstream's defaults",
                data={"class": b.name, "module": b.module, "missing": missing,
                      "read_by": {a: sorted(reads[a]) for a in missing}}))
    return out
