"""P34: a hand-written ``load_weights`` that names the fused-expert parameters without ``routed_experts.``.

Upstream's fused-MoE refactor (vllm#41184) moved the expert weights one level down: ``FusedMoEFactory``
returns a ``MoERunner`` whose ``RoutedExperts`` child owns them, so a parameter is
``...experts.routed_experts.w13_weight``. Models loading through ``AutoWeightsLoader`` or upstream's
``fused_moe_make_expert_params_mapping`` follow; a few hand-written loaders still map checkpoint names onto
``...experts.w13_weight`` and index ``params_dict`` with it, which fails on upstream itself (dbrx:
vllm#49004, ``KeyError: 'blocks.0.ffn.experts.w13_weight'``). The P22 back-port keeps upstream's layout,
so the migrated file fails the same way.

The fix is upstream's own helper ``maybe_remap_moe_expert_param_name(name, params_dict)``, which upstream
applies in llama4/mllama4/granitemoehybrid for this very move: before each ``params_dict[name]`` of such a
loader, ``name`` gains ``routed_experts.`` only when the name is an expert parameter and the nested name
exists; every name that already resolves is left alone, so the only behaviour that changes is the KeyError.
"""

from __future__ import annotations

import ast
import re

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.migrate.edits import Edits

HELPER = "maybe_remap_moe_expert_param_name"
HELPER_MODULE = "vllm_fl.compat.fused_moe"
# string constants a loader maps checkpoint names onto: "w13", "w13_weight", "experts.w13_" (no checkpoint
# says w13: they say w1/w3 or gate_up_proj; "w2" alone is a checkpoint name too, Mixtral's)
_TARGET = re.compile(r"^(?:.*\.)?w13(?:_weight)?_?$")
_ALREADY = (HELPER, "remap_moe_expert_weights")


def _imports_factory(m: ModuleFacts) -> bool:
    return any(b.name in ("FusedMoEFactory", "MoERunner") for b in m.bindings)


def _params_dicts(fn: ast.FunctionDef) -> set[str]:
    """Names bound to ``dict(self.named_parameters(...))`` in ``fn``."""
    out = set()
    for node in ast.walk(fn):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "dict" and node.value.args
                and isinstance(node.value.args[0], ast.Call)
                and isinstance(node.value.args[0].func, ast.Attribute)
                and node.value.args[0].func.attr == "named_parameters"):
            out.add(node.targets[0].id)
    return out


def _lookups(fn: ast.FunctionDef, dicts: set[str]) -> list[tuple[ast.Assign, str, str]]:
    """``x = params_dict[name]`` statements: (statement, dict name, key name)."""
    out = []
    for node in ast.walk(fn):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript)
                and isinstance(node.value.value, ast.Name) and node.value.value.id in dicts
                and isinstance(node.value.slice, ast.Name)):
            out.append((node, node.value.value.id, node.value.slice.id))
    return sorted(out, key=lambda t: t[0].lineno)


def check_routed_expert_names(m: ModuleFacts) -> None:
    if not _imports_factory(m):
        return
    for fn in m.of_type(ast.FunctionDef):
        if fn.name != "load_weights":
            continue
        consts = [n.value for n in ast.walk(fn) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        # f-strings' literal parts count too ("experts.w13_" inside f"...{x}")
        targets = sorted({c for c in consts if _TARGET.match(c)})
        if not targets or any("routed_experts" in c for c in consts):
            continue
        if any(isinstance(n, ast.Name) and n.id in _ALREADY or isinstance(n, ast.Attribute) and n.attr in _ALREADY
               for n in ast.walk(fn)):
            continue
        found = _lookups(fn, _params_dicts(fn))
        if not found:
            continue
        stmts = [(s.lineno, f"{key} = {HELPER}({key}, {d})\n{ast.unparse(s)}\n") for s, d, key in found]
        cls = m.enclosing_class(fn)
        where = f"{cls.name}.load_weights" if cls is not None else "load_weights"
        m.add("P34", found[0][0], f"`{where}` maps checkpoint names onto {', '.join(repr(t) for t in targets)} "
              f"and looks them up in `{found[0][1]}`, but FusedMoEFactory's runner keeps the fused expert "
              "parameters under `routed_experts.` (`...experts.routed_experts.w13_weight`): KeyError on load, "
              "on upstream too (vllm#49004)",
              fix=f"look names up through `{HELPER}(name, params_dict)` (upstream's helper for this move)",
              data={"statements": stmts, "targets": targets})


def propose_edits(f, edits: Edits) -> None:
    """P34: each lookup statement gets the remap in front of it, and the helper is imported."""
    for line, source in f.data.get("statements") or []:
        edits.replace_statements[line] = ("P34", source)
    if f.data.get("statements"):
        edits.add_imports[(HELPER_MODULE, HELPER)] = "P34"
