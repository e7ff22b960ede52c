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


def bridge_field_findings(tree: ast.Module, ctx: AnalysisContext, plugin_files: dict, walked=None) -> list[Finding]:
    """P15: fields that the pinned parent classes of this file's models read directly (``config.X``)
    but the config bridge the file imports from ``vllm_fl.configs`` never sets. Each read is attributed
    to the config object it goes through: a text-config bridge answers for ``text_config.X`` and for a
    language-model parent's ``config.X``, not for a multimodal parent's ``config.vision_config``.

    A warning: a field may also arrive from the checkpoint's config.json through ``**kwargs``.
    ``walked``: ``astutil.Walk(tree)`` when the caller has it.
    """
    base = ctx.origin_module or ctx.module
    is_package = ctx.path.endswith("__init__.py") and not ctx.origin_module
    # the bindings alone first: most files import no bridge, and need no facts at all
    if not any(b.name and b.module.startswith(f"{PLUGIN}.configs") and not b.level
               for b in import_bindings(tree, base, is_package)):
        return []
    an = ModuleFacts(tree, ctx, walked)
    bridges = [b for b in an.bindings if b.name and b.module.startswith(f"{PLUGIN}.configs") and not b.level]
    parents: dict[str, tuple[str, dict[str, list[str]]]] = {}  # name -> (role, config object -> fields)
    for cls in an.local_classes.values():
        lin = an.hierarchy.linearize(("local", cls))
        if any(k == "unknown" for k, _ in lin):
            continue
        for kind, obj in lin[1:]:
            if kind == "pinned" and obj[0].module.startswith("vllm.model_executor.models"):
                by = obj[1].get("cfgv") or ({"*": obj[1]["cfg"]} if obj[1].get("cfg") else {})
                if by:
                    parents[obj[0].name] = (_parent_role(ctx.apis, obj[0]), by)
    if not parents:
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
        role = _bridge_role(b.name)
        if "__getattr__" in defined or (role == "top" and any(a.endswith("_config") for a in _class_sets(cls))):
            continue  # nested sub-configs: the parents may be reading those
        reads = _reads_for(role, parents)
        missing = sorted(a for a in reads if a not in defined)
        if missing:
            via = sorted({v for a in missing for _, v in reads[a]})
            out.append(Finding(
                "P15", ctx.path, b.line, b.col,
                f"config bridge {b.name} ({b.module}) never sets {', '.join(missing)}, which the pinned parent "
                f"class(es) {', '.join(sorted({c for a in missing for c, _ in reads[a]}))} read as "
                f"{' / '.join(f'{v}.X' for v in via)}",
                severity="warning", fix=f"add these fields to {b.name} with upstream's defaults",
                data={"class": b.name, "module": b.module, "missing": missing, "config_object": role,
                      "read_by": {a: sorted({c for c, _ in reads[a]}) for a in missing},
                      "read_through": {a: sorted({v for _, v in reads[a]}) for a in missing}}))
    return out


def _bridge_role(name: str) -> str:
    """Which config object of the model a bridge class is: the text or vision sub-config, or the top."""
    if name.endswith("TextConfig"):
        return "text"
    if name.endswith(("VisionConfig", "VisualConfig")):
        return "vision"
    return "top"


def _parent_role(apis, sym) -> str:
    """What a pinned parent's ``config`` is: the top-level config of a multimodal model, the vision
    config of a vision tower, else the (text) config a language model is built from."""
    if any(s.name == "SupportsMultiModal" for s, _ in apis.mro(sym)[0]):
        return "multimodal"
    return "vision" if ("Vision" in sym.name or "Visual" in sym.name) else "text"


def _reads_for(role: str, parents: dict) -> dict[str, set[tuple[str, str]]]:
    """Field -> {(parent, object read through)} of the reads a bridge of ``role`` must answer: each
    read goes through ``config``/``hf_config`` (the parent's own config), ``text_config`` or
    ``vision_config``; an index without that split ("*") attributes every read to every bridge."""
    any_multimodal = any(r == "multimodal" for r, _ in parents.values())
    wanted = {
        # without a multimodal parent the top config is the text config
        "top": lambda prole, via: ((via == "config" and prole == "multimodal")
                                   or (not any_multimodal and via in ("config", "text_config"))),
        "text": lambda prole, via: via == "text_config" or (via == "config" and prole == "text"),
        "vision": lambda prole, via: via == "vision_config" or (via == "config" and prole == "vision"),
    }[role]
    out: dict[str, set[tuple[str, str]]] = {}
    for name, (prole, by) in parents.items():
        for via, fields in by.items():
            if via == "*" or wanted(prole, via):
                for field in fields:
                    out.setdefault(field, set()).add((name, "config" if via == "*" else via))
    return out
