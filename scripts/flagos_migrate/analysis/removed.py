"""What to do with names the pinned vLLM lacks and the file uses at run time, beyond importing them:
hook methods made only of such names (P17: removed, the pinned vLLM never calls them) and upstream
debug context managers (P21: their ``with`` blocks unwrapped). Both build on the P3 findings of the
import triage, so they run after it.
"""

from __future__ import annotations

import ast
import builtins
from functools import lru_cache

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.astutil import walk
from flagos_migrate.catalog.findings import Finding
from flagos_migrate.catalog.tables import DEBUG_CONTEXT_MANAGERS

BUILTINS = frozenset(dir(builtins)) | {"self", "cls", "__class__"}


@lru_cache(maxsize=4)
def _method_names(index) -> frozenset[str]:
    out: set[str] = set()
    for rec in index.modules.values():
        for cls in rec.get("classes", {}).values():
            out.update(cls.get("methods", {}))
    return frozenset(out)


def pinned_method_names(apis) -> frozenset[str]:
    """Every method name some pinned vLLM class defines (hooks vLLM may call)."""
    return _method_names(apis.vllm)


def runtime_missing(m: ModuleFacts) -> dict[str, Finding]:
    """alias -> the P3 finding of a name the pinned version lacks and the file uses at run time."""
    by_line = {(b.line, b.name): b for b in m.bindings}
    out: dict[str, Finding] = {}
    for f in m.found("P3"):
        d = f.data
        if d.get("name") and d.get("used_at_runtime") and not d.get("attribute_access") and not d.get("backport"):
            b = by_line.get((f.line, d["name"]))
            if b is not None:
                out[b.alias] = f
    return out


def hook_methods(tree: ast.Module, missing: set[str], pinned_methods,
                 classes: list[ast.ClassDef] | None = None) -> dict[tuple[str, str], tuple]:
    """Methods whose whole body is one statement using only missing names: (class, method) -> span.
    ``pinned_methods`` is called only when a candidate exists (it reads the whole index);
    ``classes``: every class of ``tree`` in walk order, when the caller has them already."""
    out = {}
    names = None
    if classes is None:
        classes = [n for n in walk(tree) if isinstance(n, ast.ClassDef)]
    for cls in classes:
        for fn in cls.body:
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
            if len(body) != 1 or not isinstance(body[0], (ast.Return, ast.Expr)):
                continue
            params = {a.arg for a in walk(fn.args) if isinstance(a, ast.arg)}
            used = {n.id for n in walk(body[0]) if isinstance(n, ast.Name)} - params - BUILTINS
            if not used or not used <= missing:
                continue
            names = pinned_methods() if names is None else names
            if fn.name not in names:
                start = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
                out[(cls.name, fn.name)] = (start, fn.end_lineno)
    return out


def check_removed_apis(m: ModuleFacts) -> None:
    missing = runtime_missing(m)
    if not missing:
        return
    hooks = hook_methods(m.tree, set(missing), lambda: pinned_method_names(m.apis), m.of_type(ast.ClassDef))
    covered: dict[tuple[str, str], list[str]] = {}
    for alias, f in missing.items():
        lines = m.usage[alias].runtime_lines if alias in m.usage else []
        spans = list(hooks.values())
        if lines and hooks and all(any(a <= ln <= b for a, b in spans) for ln in lines):
            for key, (a, b) in hooks.items():
                if any(a <= ln <= b for ln in lines):
                    covered.setdefault(key, []).append(alias)
            continue
        if f.data["name"] in DEBUG_CONTEXT_MANAGERS.get(f.data["module"], ()):
            m.add("P21", f, f"`{f.data['name']}` only scopes an upstream debug check the pinned vLLM lacks: "
                  "its `with` blocks run their bodies directly", line=f.line, col=f.col,
                  fix="unwrap its `with` blocks and remove the import",
                  data={"alias": alias, "module": f.data["module"], "name": f.data["name"]})
    for (cls, meth), aliases in covered.items():
        m.add("P17", None, f"hook `{cls}.{meth}` uses only APIs the pinned vLLM lacks and no pinned class "
              "declares it", line=hooks[(cls, meth)][0], col=0,
              data={"class": cls, "method": meth, "names": sorted(aliases)})
