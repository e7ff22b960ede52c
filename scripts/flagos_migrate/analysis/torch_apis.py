"""P47: torch attributes upstream calls that the pinned vLLM's torch lacks (catalog P47 ``torch_apis``).

Upstream runs on a newer torch; a call of a function added since the pinned torch imports and builds fine and
raises AttributeError when it runs (gemma4_mm's ``torch.accelerator.get_memory_info()`` on torch 2.9.0). A chain
is matched after resolving its root through the file's own imports (``import torch``, ``from torch import
accelerator``), so only what the file really reaches in torch is reported.
"""

from __future__ import annotations

import ast

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.catalog.tables import TORCH_APIS


def _torch_prefixes(m: ModuleFacts) -> dict[str, str]:
    """Local name -> the torch module or name it is bound to (names bound to two things mean nothing)."""
    out: dict[str, str] = {}
    for b in m.bindings:
        if b.type_checking:
            continue
        if b.name is None:
            prefix = b.alias if b.module.split(".")[0] == b.alias else b.module
        else:
            prefix = f"{b.module}.{b.name}"
        if prefix.split(".")[0] != "torch":
            continue
        out[b.alias] = prefix if out.get(b.alias, prefix) == prefix else ""
    # a name also assigned or taken as a parameter may be something else (``m.rebound`` also counts a second
    # import of the same module, ``import torch`` + ``import torch._dynamo``, which binds the same torch)
    assigned = {n.id for n in m.of_type(ast.Name) if not isinstance(n.ctx, ast.Load)}
    assigned |= {a.arg for a in m.of_type(ast.arg)}
    return {k: v for k, v in out.items() if v and k not in assigned}


def _dotted(node: ast.Attribute) -> tuple[str, list[str]] | None:
    parts: list[str] = []
    cur: ast.expr = node
    while isinstance(cur, ast.Attribute):
        parts.append(cur.attr)
        cur = cur.value
    return (cur.id, parts[::-1]) if isinstance(cur, ast.Name) else None


def check_torch_apis(m: ModuleFacts) -> None:
    entry = TORCH_APIS.get(m.apis.version)
    if not entry:
        return
    missing = entry["missing"]
    prefixes = _torch_prefixes(m)
    if not prefixes:
        return
    hits: list[tuple[ast.AST, str, str]] = []
    for node in m.of_type(ast.Attribute):
        chain = _dotted(node)
        if chain is None or chain[0] not in prefixes:
            continue
        full = ".".join([prefixes[chain[0]], *chain[1]])
        if full in missing:
            hits.append((node, full, ast.unparse(node)))
    for node in m.of_type(ast.ImportFrom):
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            if node.level == 0 and full in missing:
                hits.append((node, full, f"from {node.module} import {alias.name}"))
    for alias, prefix in prefixes.items():
        if prefix in missing:  # `from torch.accelerator import get_memory_info`: its calls
            hits += [(n, prefix, alias) for n in m.of_type(ast.Name)
                     if n.id == alias and isinstance(n.ctx, ast.Load)]
    for node, full, shown in sorted(hits, key=lambda h: (h[0].lineno, h[0].col_offset)):
        row = missing[full]
        equivalent = row.get("pinned_equivalent")
        named = f"`{shown}`" if shown == full else f"`{shown}` (`{full}`)"
        m.add("P47", node, f"{named} does not exist in the pinned vLLM's torch {entry['torch_version']} "
              f"(upstream's torch {row['present_in']} has it): it raises AttributeError when this runs; "
              f"{' '.join(row['why'].split())}",
              fix=(f"use `{equivalent}`" if equivalent else
                   "decide per device what this should read on the pinned torch, or report that the path needs "
                   "the newer torch"),
              data={"api": full, "torch_version": entry["torch_version"], "present_in": row["present_in"],
                    "pinned_equivalent": equivalent})
