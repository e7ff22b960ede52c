"""P3 for environment variables: ``envs.X`` and ``envs.is_set("X")`` where the pinned ``vllm.envs`` has no X.

The pinned ``vllm.envs`` raises AttributeError for a variable it does not define, both on the attribute
read (``__getattr__``) and in ``is_set``. Attribute reads are found by ``imports.check_module_attributes``
(which asks :func:`env_fix` for the data below); string-named lookups (``envs.is_set("X")``,
``getattr(envs, "X")``) are found here. Where every such variable is in the catalog's table (P3
``env_vars``: upstream's default and parser), the file's import of ``vllm.envs`` is re-pointed to the
compat module that reads them as upstream does (``vllm_fl/compat/envs.py``), and the finding is fixed.
"""

from __future__ import annotations

import ast

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.catalog.tables import ENV_VARS
from flagos_migrate.migrate.edits import Edits, ImportAction

ENVS = "vllm.envs"
COMPAT_ENVS = "vllm_fl.compat.envs"
STRING_LOOKUPS = ("is_set", "getattr")


def _envs_binding(m: ModuleFacts, name: str):
    """The module-level import binding ``name`` to ``vllm.envs`` (``import vllm.envs as envs`` or
    ``from vllm import envs``), else None."""
    b = m.module_bindings.get(name)
    if b is None or b.type_checking:
        return None
    if (b.name is None and b.module == ENVS and b.alias != "vllm") or (b.module == "vllm" and b.name == "envs"):
        return b
    return None


def env_fix(m: ModuleFacts, root: ast.AST, var: str) -> dict:
    """Finding data for a read of ``var`` through the name ``root``: the import to re-point when the
    table reads ``var`` as upstream does."""
    b = _envs_binding(m, root.id) if isinstance(root, ast.Name) else None
    if b is None or var not in ENV_VARS:
        return {}
    return {"env_var": var, "envs_import": [b.line, b.name]}


def check_env_lookups(m: ModuleFacts) -> None:
    for node in m.of_type(ast.Call):
        func, args = node.func, node.args
        if isinstance(func, ast.Attribute) and func.attr == "is_set" and isinstance(func.value, ast.Name):
            root, key = func.value, args[0] if args else None
            shown = f"{func.value.id}.is_set"
        elif isinstance(func, ast.Name) and func.id == "getattr" and len(args) >= 2 and isinstance(args[0], ast.Name):
            root, key = args[0], args[1]
            shown = "getattr"
        else:
            continue
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)) or _envs_binding(m, root.id) is None:
            continue
        var = key.value
        if m.apis.resolve(ENVS, var) is not None or (shown == "getattr" and len(args) > 2):
            continue  # the pinned vLLM has it, or getattr has a default
        index = m.apis.index_for(ENVS)
        m.add("P3", node, f"`{ENVS}.{var}` does not exist in {index.package} {index.version} "
              f"(`{ast.unparse(node)[:80]}` raises AttributeError there)",
              data={"module": ENVS, "name": var, "used_at_runtime": True, "annotation_only": False,
                    "unused": False, "import_time": False, "attribute_access": True, **env_fix(m, root, var)})


def propose_edits(findings, edits: Edits) -> None:
    """Re-point the import of ``vllm.envs`` once every variable the file lacks is in the table."""
    env = [f for f in findings if f.rule == "P3" and f.data.get("module") == ENVS and f.data.get("attribute_access")]
    if not env or not all(f.data.get("env_var") for f in env):
        return
    for line, name in {tuple(f.data["envs_import"]) for f in env}:
        if name is None:  # import vllm.envs as envs
            edits.imports[(line, None)] = ImportAction("P3", "repoint", COMPAT_ENVS)
        else:  # from vllm import envs
            edits.imports[(line, name)] = ImportAction("P3", "rename", COMPAT_ENVS.rsplit(".", 1)[0], name)
