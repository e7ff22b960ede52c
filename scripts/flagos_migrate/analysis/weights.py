"""Weight-loading semantics the pinned vLLM does not share (issue 13, class 4).

P31: a tuple shard id (``weight_loader(param, w, (0, 1, 2))``, or a ``stacked_params_mapping``
entry whose shard id is a tuple) handed to a pinned ``weight_loader``, which takes one int and
fails on a tuple. Inside ``WeightsMapper(orig_to_new_stacked=...)`` the P22 back-port's loader
cuts the tensor itself, so those are not reported.

P32: the pinned vLLM's own module of the same name handles GGUF checkpoints (a norm offset, a
rope style, swapped tensors) that upstream 0.33.0, which has no GGUF support, dropped; a migrated
file that says nothing about GGUF loads such a checkpoint differently from the pinned model.
"""

from __future__ import annotations

import ast

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.catalog.tables import GGUF_HANDLING

LOADER_ATTRS = ("weight_loader", "weight_loader_v2")


def _int_tuple(node: ast.AST) -> bool:
    return (isinstance(node, ast.Tuple) and bool(node.elts)
            and all(isinstance(e, ast.Constant) and type(e.value) is int for e in node.elts))


def _in_stacked_mapper(m: ModuleFacts, node: ast.AST) -> bool:
    """``node`` sits in the value of an ``orig_to_new_stacked=`` keyword (the back-port handles it)."""
    cur = m.parents.get(node)
    while cur is not None:
        if isinstance(cur, ast.keyword) and cur.arg == "orig_to_new_stacked":
            return True
        if isinstance(cur, (ast.stmt, ast.Call)):
            return False
        cur = m.parents.get(cur)
    return False


FIX = ("load each shard id of the tuple on its slice: `from vllm_fl.compat.stacked_weights import load_shard; "
       "load_shard(param, loaded_weight, shard_id)` (P22 back-port), or narrow the tensor by the layer's "
       "output_sizes and call weight_loader once per shard id")


def check_tuple_shard_ids(m: ModuleFacts) -> None:
    for node in m.of_type(ast.Call, ast.Tuple):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in LOADER_ATTRS:
                continue
            shard = node.args[2] if len(node.args) > 2 else next(
                (k.value for k in node.keywords if k.arg in ("loaded_shard_id", "shard_id")), None)
            if shard is not None and _int_tuple(shard):
                m.add("P31", node, f"`{ast.unparse(node)[:80]}` passes the tuple shard id {ast.unparse(shard)}: "
                      "the pinned MergedColumnParallelLinear.weight_loader takes one int "
                      "(`assert loaded_shard_id < len(self.output_sizes)` raises TypeError on a tuple)",
                      fix=FIX, data={"shard_id": ast.literal_eval(shard), "kind": "call"})
        elif (isinstance(node, ast.Tuple) and len(node.elts) == 3 and _int_tuple(node.elts[2])
              and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts[:2])
              and isinstance(m.parents.get(node), (ast.List, ast.Tuple)) and not _in_stacked_mapper(m, node)):
            m.add("P31", node, f"stacked-parameter entry {ast.unparse(node)} has the tuple shard id "
                  f"{ast.unparse(node.elts[2])}, which the loop hands to a pinned weight_loader that takes one int",
                  fix=FIX, data={"shard_id": ast.literal_eval(node.elts[2]), "kind": "mapping"})


def _anchor(m: ModuleFacts, names: list[str]) -> ast.AST | None:
    for node in m.nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            return node
        if isinstance(node, ast.Call):
            func = node.func
            if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) in names:
                return node
    return None


def check_gguf_handling(m: ModuleFacts) -> None:
    table = GGUF_HANDLING.get(m.apis.version, {})
    stem = (m.ctx.origin_module or m.ctx.module).rsplit(".", 1)[-1]
    entry = table.get(stem)
    if entry is None:
        return
    if any(isinstance(n.value, str) and "gguf" in n.value.lower() for n in m.of_type(ast.Constant)):
        return  # the file handles GGUF itself (the pinned code kept, or a hand port)
    node = _anchor(m, entry["anchor"])
    m.add("P32", node, f"GGUF checkpoints: the pinned vllm.model_executor.models.{stem} {entry['does']} "
          f"(line {entry['line']}: `{entry['code']}`); upstream has no GGUF support and dropped it, so this "
          "file handles a GGUF checkpoint differently", line=None if node is not None else 1,
          fix=f"port the pinned code ({entry['port']}) or state that GGUF checkpoints are not supported",
          data={"pinned_module": f"vllm.model_executor.models.{stem}", "pinned_line": entry["line"]})
