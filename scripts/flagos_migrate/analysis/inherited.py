"""What a class inherits that behaves differently on the pinned vLLM, although every name resolves.

- P23: interface methods whose upstream default body the pinned version only declares (a stub that
  returns None), where nothing else in the class's hierarchy defines them; the fix writes the method
  the way the pinned version's own models do, when the file shows what it must return.
- P24: overrides of hooks that no pinned class of the hierarchy defines or calls (dead on 0.13.0).
- P25: architectures whose behaviour upstream sets in framework code keyed by the architecture name
  (``framework_hooks``, used on registrations by the migration and the validator); P38 with it: draft
  architectures upstream builds only through a speculative method the pinned vLLM lacks.
- P26: encoder towers built under ``_mark_tower_model``, which upstream skips at a modality limit of 0;
  P4 unwraps the marker and leaves a ``# P26:`` comment so the validator still sees it afterwards.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.analysis.framework import statement_answers
from flagos_migrate.astutil import dotted, source_segment
from flagos_migrate.catalog.findings import Finding
from flagos_migrate.catalog.tables import (
    ARCH_CONVERSIONS,
    ARCH_CONVERSIONS_ABSENT,
    ARCH_CONVERTOR_MODULE,
    BASE_HOOKS,
    CONFIG_HOOKS,
    FRAMEWORK_FLAGS,
    HOOK_PORTS,
    INHERITED_DEFAULTS,
    INHERITED_NOT_CHILDREN,
    INHERITED_TEMPLATES,
    LANGUAGE_MARKER_COMMENT,
    OVERRIDE_FORMS,
    OVERRIDE_KEYWORDS,
    PINNED_COUNTERPARTS,
    PINNED_HOOK_DIFFERS,
    ROPE_TYPE_PATCHES,
    RUNNER_FLAGS,
    SIGNATURE_PORTS,
    SPECULATIVE_ONLY,
    SPECULATIVE_REFUSED,
    SPECULATIVE_UNCONVERTED,
    TOWER_COMMENT,
)
from flagos_migrate.migrate.edits import Edits

# what a written ``language_model_targets`` body calls (migrate/backport_sources/language_model.py)
LANGUAGE_MODEL_BACKPORT = "vllm_fl.compat.language_model"
LANGUAGE_MODEL_BACKPORT_NAMES = ("default_language_model", "language_model_names")

_INTERFACE_MODULES = ("vllm.model_executor.models.interfaces", "vllm.model_executor.models.interfaces_base")


# -- the ancestry of a local class, relative imports resolved where the pinned vLLM has them ---------

class _Ancestry:
    """Local classes and pinned classes above ``cls`` (None: a base nobody can name, say nothing)."""

    def __init__(self, locals_: list[ast.ClassDef], pinned: list[tuple], interfaces: set[str]):
        self.locals = locals_  # cls first
        self.pinned = pinned  # (Symbol, record)
        self.interfaces = interfaces  # qualnames of interfaces reached (pinned or an upstream relative import)


def _ancestry(m: ModuleFacts, cls: ast.ClassDef) -> _Ancestry | None:
    locals_: list[ast.ClassDef] = []
    pinned: list[tuple] = []
    interfaces: set[str] = set()
    seen: set[str] = set()
    todo = [cls]
    while todo:
        cur = todo.pop(0)
        if cur.name in seen:
            continue
        seen.add(cur.name)
        locals_.append(cur)
        for base in cur.bases:
            expr = base.value if isinstance(base, ast.Subscript) else base
            local = m.hierarchy._local_class_before(expr.id, cur) if isinstance(expr, ast.Name) else None
            if local is not None:
                todo.append(local)
                continue
            sym = m.resolve_expr(expr) or _relative_symbol(m, expr)
            if sym is None:
                b = m.module_bindings.get(expr.id) if isinstance(expr, ast.Name) else None
                if b is not None and b.name and b.module in _INTERFACE_MODULES:
                    interfaces.add(f"{b.module}.{b.name}")  # an upstream-only interface: no method of ours
                    continue
                return None
            if sym.kind == "external":
                continue
            if sym.kind != "class":
                return None
            classes, external = m.apis.mro(sym)
            if "?" in external:
                return None
            for s, rec in classes:
                if s.module in _INTERFACE_MODULES:
                    interfaces.add(s.qualname)
                pinned.append((s, rec))
    return _Ancestry(locals_, pinned, interfaces)


def _relative_symbol(m: ModuleFacts, expr: ast.AST):
    """``from .interfaces import X`` in an upstream file: the pinned class that P1 points it at."""
    if not isinstance(expr, ast.Name):
        return None
    b = m.module_bindings.get(expr.id)
    if b is None or not b.level or not b.name or b.type_checking or expr.id in m.rebound:
        return None
    sym = m.apis.resolve(b.module, b.name)
    return sym if sym is not None and sym.kind == "class" else None


def _defines(node: ast.ClassDef, name: str) -> bool:
    return any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == name for s in node.body)


def _self_assigns(m: ModuleFacts, node: ast.AST) -> dict[str, ast.expr]:
    """``self.X = value`` anywhere below ``node``: X -> the value (the last one)."""
    out: dict[str, ast.expr] = {}
    for sub in m.below(node, ast.Assign, ast.AnnAssign):
        if isinstance(sub, (ast.Assign, ast.AnnAssign)):
            targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
            for t in targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    if sub.value is not None:
                        out[t.attr] = sub.value
    return out


def _marked_language_model(m: ModuleFacts, classes: list[ast.ClassDef]) -> tuple[str, ast.expr] | None:
    """The one ``self.X`` built inside ``with self._mark_language_model(...)`` without ``targets=``."""
    found: dict[str, ast.expr] = {}
    for node, sub, marker, targets in _marker_blocks(m, classes):
        if targets is not None:
            return _targeted_child(m, sub.body, targets)
        if marker == "_mark_composite_model":
            return None
        not_children: set[str] = set()
        for stmt in sub.body:
            assigned = _self_assigns(m, stmt)
            found.update(assigned)
            not_children |= {a for a in assigned if not _maybe_child(m, stmt, a)}
        # a tensor or None assigned there registers no child: upstream's marker never sees it
        found = {a: v for a, v in found.items() if a not in not_children}
        if len(found) > 1:
            # several children share no dotted prefix: upstream's default falls back to the first
            # child registered with `embed_input_ids` (Aria: its text model before lm_head)
            return _first_language_child(m, node, set(found))
    return next(iter(found.items())) if len(found) == 1 else None


def _marker_blocks(m: ModuleFacts, classes: list[ast.ClassDef]):
    """(class, with-statement, marker name, its ``targets=``/``language_targets=`` value or None) for each
    ``with self._mark_language_model(...)`` / ``_mark_composite_model(...)`` block of the classes."""
    for node in classes:
        for sub in m.below(node, ast.With):
            if len(sub.items) != 1:
                continue
            call = sub.items[0].context_expr
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr in ("_mark_language_model", "_mark_composite_model")):
                continue
            targets = next((k.value for k in call.keywords if k.arg in ("targets", "language_targets")), None)
            yield node, sub, call.func.attr, targets


def _maybe_child(m: ModuleFacts, node: ast.AST, attr: str) -> bool:
    """Some ``self.<attr> = value`` below ``node`` may assign an ``nn.Module``: not every value is a
    constant (None) or a call the P23 table names as returning a tensor (``torch.zeros``)."""
    def module_free(value: ast.expr) -> bool:
        if isinstance(value, ast.Constant):
            return True
        if isinstance(value, ast.IfExp):
            return module_free(value.body) and module_free(value.orelse)
        if not isinstance(value, ast.Call):
            return False
        name = dotted(value.func) or ""
        head, _, rest = name.partition(".")
        b = m.module_bindings.get(head)
        if b is None or b.level or head in m.rebound:
            return False
        if b.name is not None:  # from torch import zeros
            bound = f"{b.module}.{b.name}"
        else:  # import torch (binds the top package) / import torch.nn as tnn (binds the module)
            bound = head if b.alias == b.module.split(".")[0] else b.module
        return ".".join(p for p in (bound, rest) if p) in INHERITED_NOT_CHILDREN

    for sub in m.below(node, ast.Assign, ast.AnnAssign):
        targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
        if any(isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
               and t.attr == attr for t in targets) and sub.value is not None and not module_free(sub.value):
            return True
    return False


def _targeted_child(m: ModuleFacts, body: list[ast.stmt], targets: ast.expr) -> tuple[str, ast.expr] | None:
    """``targets=``: upstream marks the descendants of those classes; the one ``self.X = T(...)`` in the
    block, or the one ``self.Y = T(...)`` in the ``__init__`` of the local class ``self.X`` is built from
    (Idefics3: ``self.model = Idefics3Model(...)`` whose ``text_model`` is the ``LlamaModel``)."""
    names = {dotted(e) for e in (targets.elts if isinstance(targets, ast.Tuple) else [targets])}

    def is_target(value: ast.expr) -> bool:
        return isinstance(value, ast.Call) and dotted(value.func) in names

    found: list[tuple[str, ast.expr]] = []
    for stmt in body:
        for attr, value in _self_assigns(m, stmt).items():
            if is_target(value):
                found.append((attr, value))
                continue
            local = m.local_classes.get(dotted(value.func) or "") if isinstance(value, ast.Call) else None
            init = next((s for s in local.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"),
                        None) if local is not None else None
            inner = [(a, v) for a, v in _self_assigns(m, init).items() if is_target(v)] if init else []
            found += [(f"{attr}.{a}", v) for a, v in inner]
    return found[0] if len(found) == 1 else None


def _targets_of_childless_marker(m: ModuleFacts, classes: list[ast.ClassDef]) -> str | None:
    """The ``targets=`` / ``language_targets=`` source (a tuple) of a language-model marker whose block assigns
    no ``self.X`` (glm4v: ``super().__init__(...)`` under it, the child built in a base's ``__init__``), when
    nothing after the block in that method may assign a child: upstream's default over the descendants of
    those classes is then the same whenever it is called."""
    for _node, sub, _marker, targets in _marker_blocks(m, classes):
        if targets is None or any(_self_assigns(m, stmt) for stmt in sub.body):
            return None
        func = m.enclosing(sub, (ast.FunctionDef,))
        later = [a for a in (m.below(func, ast.Assign, ast.AnnAssign) if func else ())
                 if a.lineno > sub.end_lineno]
        if any(_maybe_child(m, a, attr) for a in later for attr in _self_assigns(m, a)):
            return None
        text = ast.unparse(targets)
        return text if isinstance(targets, ast.Tuple) else f"({text},)"
    return None


def _first_language_child(m: ModuleFacts, cls: ast.ClassDef, marked: set[str]) -> tuple[str, ast.expr] | None:
    """Upstream's fallback over ``self.children()``: the first ``self.X = Cls(...)`` of ``__init__`` (in
    registration order) whose class has ``embed_input_ids``. A child built under ``_mark_tower_model`` is an
    encoder tower there; a marked child whose class the index cannot see (a relative import) counts when it
    is built as a model (``*Model``, ``*ForCausalLM``, a registered model); None as soon as another child's
    class is not known to lack it."""
    init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
    towers = {id(n) for w in (m.below(init, ast.With) if init else ()) if len(w.items) == 1
              and isinstance(c := w.items[0].context_expr, ast.Call) and isinstance(c.func, ast.Attribute)
              and c.func.attr == "_mark_tower_model" for n in ast.walk(w)}
    seen: set[str] = set()
    assigns = sorted((n for n in m.below(init, ast.Assign) if len(n.targets) == 1),
                     key=lambda n: (n.lineno, n.col_offset)) if init else []
    for node in assigns:
        t = node.targets[0]
        if not (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                and t.attr not in seen and isinstance(node.value, ast.Call)):
            continue
        seen.add(t.attr)
        if id(node) in towers:
            continue
        func = node.value.func
        local = m.local_classes.get(func.id) if isinstance(func, ast.Name) else None
        entry = ("local", local) if local is not None else m.hierarchy._symbol_entry(m.resolve_expr(func), "?")
        has = (m.hierarchy.hierarchy_defines(m.hierarchy.linearize(entry), "embed_input_ids")
               if entry[0] != "unknown" else None)
        name = (dotted(func) or "").rsplit(".", 1)[-1]
        if has is None and t.attr in marked and (
                name == "init_vllm_registered_model" or name.endswith(("ForCausalLM", "Model"))):
            has = True
        if has:
            return t.attr, node.value
        if has is None:
            return None
    return None


def _builds_language_model(m: ModuleFacts, classes: list[ast.ClassDef]) -> bool:
    """Upstream's default returns a child only when there is one: the chain marks a language model
    (``_mark_language_model``, ``_mark_composite_model``, or a ``self.*language_model*`` left by unwrapping
    it), or builds a child its fallback takes (one with ``embed_input_ids``: a registered model, a
    ``*ForCausalLM``/``*Model``, a local class defining it)."""
    head = LANGUAGE_MARKER_COMMENT.split("{marker}")[0].strip()
    for node in classes:
        for sub in m.below(node, ast.Call):
            if isinstance(sub.func, ast.Attribute) and sub.func.attr in ("_mark_language_model",
                                                                        "_mark_composite_model"):
                return True
        # the marker P4 unwrapped where its block built no child (the comment it left says so)
        if m.source_lines and any(line.strip().startswith(head)
                                  for line in m.source_lines[node.lineno - 1:node.end_lineno]):
            return True
        for attr, value in _self_assigns(m, node).items():
            if "language_model" in attr:
                return True  # the marker's own idiom, unwrapped by hand
            name = (dotted(value.func) or "").rsplit(".", 1)[-1] if isinstance(value, ast.Call) else ""
            if name == "init_vllm_registered_model" or name.endswith(("ForCausalLM", "Model")):
                return True
            local = m.local_classes.get(name)
            if local is not None and _defines(local, "embed_input_ids"):
                return True
    return False


def _builds_causal_lm(value: ast.expr) -> bool:
    """The value is a whole causal LM (with its ``.model`` decoder): a registered model or *ForCausalLM."""
    if not isinstance(value, ast.Call):
        return False
    name = (dotted(value.func) or "").rsplit(".", 1)[-1]
    return name == "init_vllm_registered_model" or name.endswith("ForCausalLM")


def _annotation(m: ModuleFacts, source: str) -> str:
    """The templates annotate with ``torch.nn.Module``; spell it as the file can."""
    if "torch" in m.module_bindings:
        return source
    if "nn" in m.module_bindings:
        return source.replace("torch.nn.Module", "nn.Module")
    return source.replace(" -> torch.nn.Module", "")


# -- P23 -------------------------------------------------------------------------------------------

def check_inherited_defaults(m: ModuleFacts) -> None:
    if not m.local_classes:
        return
    for cls in m.local_classes.values():
        anc = None
        for entry in INHERITED_DEFAULTS:
            iface, method = entry["interface"], entry["method"]
            if anc is None:
                anc = _ancestry(m, cls) or False
            if not anc or iface not in anc.interfaces:
                continue
            if not any(s.qualname == iface and method in rec["methods"] for s, rec in anc.pinned):
                continue  # the pinned interface does not declare it: not this drift
            if any(_defines(c, method) for c in anc.locals):
                continue
            if any(s.qualname != iface and method in rec["methods"] for s, rec in anc.pinned):
                continue  # a pinned parent model defines it
            if m.hierarchy.subclass_defines(cls, method):
                continue
            # report on the first local class of the chain that reaches the interface
            if any(_reaches(m, c, iface) for c in anc.locals[1:]):
                continue
            if entry.get("fix") == "language_model" and not _builds_language_model(m, anc.locals):
                continue  # no child for upstream's default to find: it raises, the pinned one returns None
            source = _fix_source(m, anc, entry)
            iname = iface.rsplit(".", 1)[-1]
            m.add("P23", cls, f"class {cls.name} relies on upstream's default `{iname}.{method}()`, which "
                  f"{entry['upstream']}; the pinned {iname} only declares it (returns None)",
                  fix=("the method is written as the pinned models write it" if source else
                       f"define `{method}` in {cls.name} as the pinned vLLM's own models do"),
                  data={"class": cls.name, "method": method, "interface": iface, "source": source})


def _unmarked_module(m: ModuleFacts, anc: _Ancestry) -> bool:
    """One local class over interfaces only (every child it has is assigned in its own ``__init__``, in the
    order ``children()`` registers them), with no language-model marker or its unwrapped comment."""
    if len(anc.locals) != 1 or any(s.module not in _INTERFACE_MODULES for s, _ in anc.pinned):
        return False
    cls = anc.locals[0]
    head = LANGUAGE_MARKER_COMMENT.split("{marker}")[0].strip()
    marked = any(isinstance(c.func, ast.Attribute) and c.func.attr in ("_mark_language_model", "_mark_composite_model")
                 for c in m.below(cls, ast.Call))
    return not marked and not any(line.strip().startswith(head)
                                  for line in m.source_lines[cls.lineno - 1:cls.end_lineno])


def _reaches(m: ModuleFacts, cls: ast.ClassDef, iface: str) -> bool:
    anc = _ancestry(m, cls)
    return bool(anc) and iface in anc.interfaces


def _fix_source(m: ModuleFacts, anc: _Ancestry, entry: dict) -> str | None:
    fix = entry["fix"]
    lm = _marked_language_model(m, anc.locals)
    if fix == "language_model" and lm is None and _unmarked_module(m, anc):
        # no marker anywhere: upstream's default falls back to the first child with embed_input_ids
        # (ColModernVBERT's text_embeddings, a ModernBertEmbeddings)
        lm = _first_language_child(m, anc.locals[0], set())
    if fix == "language_model" and lm is None and (targets := _targets_of_childless_marker(m, anc.locals)):
        return _annotation(m, INHERITED_TEMPLATES["language_model_targets"].format(targets=targets))
    if fix == "language_model":
        return _annotation(m, INHERITED_TEMPLATES[fix].format(attr=lm[0])) if lm else None
    if fix == "eagle3_get" and any(_defines(c, entry.get("upstream_hook", "")) for c in anc.locals):
        return INHERITED_TEMPLATES["eagle3_get_hook"]
    multimodal = any(i.endswith(".SupportsMultiModal") for i in anc.interfaces)
    assigned: dict[str, ast.expr] = {}
    for c in anc.locals:
        for k, v in _self_assigns(m, c).items():
            assigned.setdefault(k, v)
    if multimodal:
        if lm is None and "language_model" in assigned:
            lm = ("language_model", assigned["language_model"])
        holder = f"self.{lm[0]}.model" if lm and _builds_causal_lm(lm[1]) else None
    else:
        holder = "self.model" if "model" in assigned else None
    return INHERITED_TEMPLATES[fix].format(holder=holder) if holder else None


# -- P24 -------------------------------------------------------------------------------------------

_METHOD_NAMES: dict[int, frozenset[str]] = {}


def _pinned_method_names(m: ModuleFacts) -> frozenset[str]:
    """Every method name of every pinned vLLM class: a name in here may be called by duck typing."""
    key = id(m.apis.vllm)
    if key not in _METHOD_NAMES:
        names: set[str] = set()
        for rec in m.apis.vllm.modules.values():
            for crec in rec.get("classes", {}).values():
                names.update(crec["methods"])
        _METHOD_NAMES[key] = frozenset(names)
    return _METHOD_NAMES[key]


def _model_parent(qualname: str) -> bool:
    return qualname.startswith("vllm.model_executor.models.") and not qualname.startswith(_INTERFACE_MODULES)


def check_dead_hooks(m: ModuleFacts) -> None:
    referenced: set[str] | None = None
    for cls in m.local_classes.values():
        lin = m.hierarchy.linearize(("local", cls))
        if any(k == "unknown" for k, _ in lin):
            continue
        parents = [o for k, o in lin if k == "pinned" and _model_parent(o[0].qualname)]
        if not parents:
            continue
        for stmt in cls.body:
            name = _hook_name(stmt)
            if name is None:
                continue
            method = isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
            if any(k == "pinned" and (name in o[1]["methods"] or name in o[1]["attrs"]
                                      or any(name in r for r in o[1].get("reads", {}).values()))
                   for k, o in lin):
                continue
            if referenced is None:
                referenced = _referenced_names(m)
            if name in referenced or name in (_pinned_method_names(m) if method else _pinned_member_names(m)):
                continue
            parent, rec = parents[0]
            where = f"{parent.module.replace('.', '/')}.py:{rec.get('line', 1)}"
            shown, use = (f"{name}()", "call") if method else (name, "read")
            m.add("P24", stmt, f"`{cls.name}.{shown}` overrides nothing on the pinned vLLM: its parent "
                  f"`{parent.name}` ({where}) and the rest of its pinned hierarchy neither define nor {use} "
                  f"`{name}`, and nothing in this file {use}s it, so the parent builds what it builds "
                  "without it", fix=f"override the pinned `{parent.name}` method that builds the part instead",
                  data={"class": cls.name, "method" if method else "attribute": name, "parent": parent.qualname,
                        "where": where})


def check_base_hooks(m: ModuleFacts) -> None:
    """P24, table ``base_hooks``: a hook upstream's framework base class calls (``_postprocess_hf_mm_data``) that the
    pinned base neither defines nor calls; reported on the first local class of the chain defining it."""
    for cls in m.local_classes.values():
        defined = {s.name for s in cls.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
        rows = [r for r in BASE_HOOKS if r["method"] in defined]
        if not rows:
            continue
        lin = m.hierarchy.linearize(("local", cls))
        pinned = [o for k, o in lin if k == "pinned"]
        for row in rows:
            base = next((o for o in pinned if o[0].qualname == row["base"]), None)
            if base is None or any(row["method"] in rec["methods"] for _, rec in pinned):
                continue
            if any(k == "local" and o is not cls and _defines(o, row["method"]) for k, o in lin):
                continue  # its local parent's is reported
            if any(k == "local" and _calls_self(o, "_call_hf_processor", row["method"]) for k, o in lin):
                continue  # ported: the pinned base's method calls it
            stmt = next(s for s in cls.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and s.name == row["method"])
            name = row["base"].rsplit(".", 1)[-1]
            data = {"class": cls.name, "method": row["method"], "parent": row["base"]}
            port = _port_renames(m, cls, lin, stmt, row) or _port_hook(m, cls, lin, row)
            if port:
                data.update(source=port, replace=row["method"] == "_get_hf_mm_inputs")
            m.add("P24", stmt, f"`{cls.name}.{row['method']}()` is dead on the pinned vLLM: {row['upstream'].strip()}; "
                  f"the pinned {name} neither defines nor calls it, so what it does to the output never happens",
                  fix=("apply ports it to `_call_hf_processor` (the keys renamed there)" if port
                       else f"port it: {row['pinned'].strip()}"), data=data)


def _renamed_keys(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[str, str]] | None:
    """The keys an override of ``_get_hf_mm_inputs`` renames when its whole body is ``v = super().<it>(<its
    parameters>)``, then guarded renames ``if "a" in d: d["b"] = d.pop("a")`` of ``d`` = ``v.hf_data`` (or a name
    bound to it), then ``return v``; None for any other body."""
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    params = [a.arg for a in fn.args.posonlyargs + fn.args.args][1:]
    if len(body) < 2 or fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs:
        return None
    first, last = body[0], body[-1]
    if not (isinstance(first, ast.Assign) and len(first.targets) == 1 and isinstance(first.targets[0], ast.Name)
            and isinstance(first.value, ast.Call) and isinstance(first.value.func, ast.Attribute)
            and first.value.func.attr == fn.name and isinstance(first.value.func.value, ast.Call)
            and dotted(first.value.func.value.func) == "super" and not first.value.func.value.args
            and not first.value.keywords and [dotted(a) for a in first.value.args] == params):
        return None
    var = first.targets[0].id
    if not (isinstance(last, ast.Return) and isinstance(last.value, ast.Name) and last.value.id == var):
        return None
    data = {f"{var}.hf_data"}
    renames: list[tuple[str, str]] = []
    for s in body[1:-1]:
        if (isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
                and dotted(s.value) in data and not renames):
            data.add(s.targets[0].id)  # ``hf_data = hf_inputs.hf_data``
            continue
        if not (isinstance(s, ast.If) and not s.orelse and len(s.body) == 1 and isinstance(s.test, ast.Compare)
                and len(s.test.ops) == 1 and isinstance(s.test.ops[0], ast.In)
                and isinstance(s.test.left, ast.Constant) and isinstance(s.test.left.value, str)
                and dotted(s.test.comparators[0]) in data):
            return None
        old, (a,) = s.test.left.value, s.body
        if not (isinstance(a, ast.Assign) and len(a.targets) == 1 and isinstance(a.targets[0], ast.Subscript)
                and dotted(a.targets[0].value) in data and isinstance(a.targets[0].slice, ast.Constant)
                and isinstance(a.targets[0].slice.value, str) and isinstance(a.value, ast.Call)
                and isinstance(a.value.func, ast.Attribute) and a.value.func.attr == "pop"
                and dotted(a.value.func.value) in data and not a.value.keywords
                and len(a.value.args) == 1 and isinstance(a.value.args[0], ast.Constant)
                and a.value.args[0].value == old):
            return None
        renames.append((old, a.targets[0].slice.value))
    return renames or None


def _calls_self(node: ast.ClassDef, method: str, name: str) -> bool:
    """``node``'s ``method`` calls ``self.<name>(...)``."""
    return any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == method
               and any(isinstance(c, ast.Call) and dotted(c.func) == f"self.{name}" for c in ast.walk(s))
               for s in node.body)


def _port_hook(m: ModuleFacts, cls: ast.ClassDef, lin, row: dict) -> str | None:
    """P24 ``port_hook``: the pinned ``_call_hf_processor`` calling the dead hook, where every override of it in the
    chain (``cls``'s, its local subclasses') reads its first parameter only as an ``if`` test's truth (upstream's
    data is empty exactly when the pinned base's is) or passes it on to ``super()``'s same hook, and no class of
    the chain has a ``_call_hf_processor`` of its own."""
    port = row.get("port_hook")
    if not port or any(k == "local" and _defines(o, "_call_hf_processor") for k, o in lin):
        return None
    chain = [c for c in m.local_classes.values()
             if any(k == "local" and o is cls for k, o in m.hierarchy.linearize(("local", c)))]
    if any(_defines(c, "_call_hf_processor") for c in chain):
        return None
    for c in chain:
        for stmt in c.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == row["method"] \
                    and not _reads_data_as_truth(stmt):
                return None
    return port["source"]


def _reads_data_as_truth(stmt) -> bool:
    """The hook's first parameter is read only as an ``if`` test (``if not mm_data:``) or passed to ``super()``'s."""
    args = [a.arg for a in stmt.args.posonlyargs + stmt.args.args]
    if len(args) != 4 or stmt.args.vararg or stmt.args.kwarg or stmt.args.kwonlyargs:
        return False
    allowed: set[int] = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.If):
            test = node.test.operand if isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not) \
                else node.test
            allowed.add(id(test))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == stmt.name
                and isinstance(node.func.value, ast.Call) and dotted(node.func.value.func) == "super"):
            allowed.update(id(a) for a in node.args)
    return all(id(n) in allowed for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id == args[1])


def _port_renames(m: ModuleFacts, cls: ast.ClassDef, lin, stmt, row: dict) -> str | None:
    """P24 ``port_renames``: the pinned ``_call_hf_processor`` doing what an override of the dead hook that only
    renames keys of the processor's data does, where the class has no ``_call_hf_processor`` of its own (upstream's
    takes other parameters), no other local class defines the hook, and every key is one the pinned base spells."""
    port = row.get("port_renames")
    renames = _renamed_keys(stmt) if port else None
    if not renames or any(k == "local" and _defines(o, "_call_hf_processor") for k, o in lin):
        return None
    if any(c is not cls and _defines(c, row["method"]) for c in m.local_classes.values()):
        return None
    keys = port["keys"]
    if any(old not in keys for old, _ in renames):
        return None
    q = json.dumps
    lines = [f"    if {q(keys[old])} in hf_data:\n        hf_data[{q(new)}] = hf_data.pop({q(keys[old])})\n"
             for old, new in renames if keys[old] != new]  # upstream renaming back to the pinned spelling: as is
    return port["source"].replace("{renames}\n", "".join(lines))


def check_runner_flags(m: ModuleFacts) -> None:
    """P24, table ``runner_flags``: a class that sets a flag upstream's model runner reads off the model (Voxtral
    Realtime's ``requires_raw_input_tokens = True``) and the pinned runner never reads; whatever its parents."""
    rows = {r["attribute"]: r for r in RUNNER_FLAGS}
    for cls in m.local_classes.values():
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                target, value = stmt.targets[0].id, stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                target, value = stmt.target.id, stmt.value
            else:
                continue
            row = rows.get(target)
            if row is None or not (isinstance(value, ast.Constant) and value.value is True):
                continue
            m.add("P24", stmt, f"`{cls.name}.{target} = True` is dead on the pinned vLLM: {' '.join(row['upstream'].split())}; "
                  f"{' '.join(row['pinned'].split())}", severity="error",
                  fix="report that the model cannot be served on the pinned vLLM (or back-port the runner's handling "
                      "of the flag, outside the model file)",
                  data={"class": cls.name, "attribute": target, "problem": "runner-flag"})


def check_hook_ports(m: ModuleFacts) -> None:
    """P24, table ``hook_ports``: a hook upstream's base calls and the pinned one does not, in a class where the
    pinned method the table writes gives its effect (``_get_hf_mm_text`` returning the dummy text: 0.13.0's
    ``_apply_hf_processor_main`` without the HF prompt update); apply writes that method."""
    for cls in m.local_classes.values():
        defined = {s.name: s for s in cls.body if isinstance(s, ast.FunctionDef)}
        for row in HOOK_PORTS:
            stmt = defined.get(row["method"])
            if stmt is None or cls.name not in row["classes"] or row["adds"] in defined:
                continue
            body = [s for s in stmt.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
            if not (len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is not None
                    and ast.unparse(body[0].value) == row["returns"]):
                continue
            lin = m.hierarchy.linearize(("local", cls))
            if not any(k == "pinned" and o[0].qualname == row["base"] for k, o in lin):
                continue
            base = row["base"].rsplit(".", 1)[-1]
            m.add("P24", stmt, f"`{cls.name}.{row['method']}()` is dead on the pinned vLLM: upstream's {base} hands the "
                  "Hugging Face processor only this text with the items and applies the prompt updates itself; the "
                  f"pinned {base} hands it a text prompt to expand", severity="warning",
                  fix=f"apply writes `{row['adds']}` without the HF prompt update (the pinned path that runs the HF "
                      "processor on the dummy text and applies the prompt updates)",
                  data={"class": cls.name, "method": row["adds"], "hook": row["method"], "source": row["source"],
                        "parent": row["base"]})


def check_override_signatures(m: ModuleFacts) -> None:
    """P6: a method overriding a pinned one that the pinned hierarchy calls on ``self`` but that lacks a keyword-only
    parameter the pinned signature requires: every pinned call passes it by name, so the call raises TypeError
    (upstream's h2ovl / nvlm_d ``_init_vision_model`` has no ``is_mono``; 0.13.0's ``InternVLChatModel.__init__``
    passes it, for Mono-InternVL, which upstream dropped)."""
    for cls in m.local_classes.values():
        lin = m.hierarchy.linearize(("local", cls))
        if any(k == "unknown" for k, _ in lin):
            continue
        pinned = [o for k, o in lin if k == "pinned"]
        for stmt in cls.body:
            if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) or stmt.name.startswith("__"):
                continue
            if stmt.args.kwarg is not None:
                continue
            owner = next(((s, rec) for s, rec in pinned if stmt.name in rec["methods"]), None)
            if owner is None:
                continue
            callers = [f"{s.name}.{caller}" for s, rec in pinned
                       for caller, called in rec.get("scalls", {}).items() if stmt.name in called]
            if not callers:
                continue
            have = {a.arg for a in stmt.args.posonlyargs + stmt.args.args + stmt.args.kwonlyargs}
            lacking = [p for p in owner[1]["methods"][stmt.name].get("kr", ()) if p not in have]
            if not lacking:
                continue
            sym = owner[0]
            pinned_method = f"{sym.qualname}.{stmt.name}"
            values = {p: OVERRIDE_KEYWORDS[(pinned_method, p)] for p in lacking if (pinned_method, p) in OVERRIDE_KEYWORDS}
            settled = len(values) == len(lacking)
            m.add("P6", stmt, f"`{cls.name}.{stmt.name}()` overrides the pinned `{sym.name}.{stmt.name}`, which "
                  f"{callers[0]} calls with keyword(s) {', '.join(lacking)} (required by the pinned signature); this "
                  "override takes none of them, so the pinned call raises TypeError (unexpected keyword argument)",
                  fix=(f"apply adds {', '.join(f'`{p}={v}`' for p, v in values.items())} (upstream's override always "
                       "builds for that value; any other raises NotImplementedError)" if settled else
                       f"accept {', '.join(f'`{p}`' for p in lacking)} and do what the pinned `{sym.name}` does for "
                       f"its values (or refuse the ones upstream dropped); pinned signature: {pinned_method}"),
                  data={"class": cls.name, "method": stmt.name, "pinned": pinned_method,
                        "callers": callers, "kwargs": lacking, "problem": "override-lacks-keyword",
                        **({"override_keywords": values} if settled else {})})


def check_signature_ports(m: ModuleFacts) -> None:
    """P6, table ``signature_ports``: an override with upstream's parameters of a pinned base method that the pinned
    callers call with others (deepseek_vl2's ``_cached_apply_hf_processor(inputs, timing_ctx)``): TypeError when the
    pinned base calls it. Ported where its body reads upstream's parameters only as the table's attributes and
    passes them on whole only to the table's calls."""
    for cls in m.local_classes.values():
        defined = {s.name: s for s in cls.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
        rows = [r for r in SIGNATURE_PORTS if r["method"] in defined]
        if not rows:
            continue
        lin = m.hierarchy.linearize(("local", cls))
        for row in rows:
            stmt = defined[row["method"]]
            if not any(k == "pinned" and o[0].qualname == row["base"] for k, o in lin):
                continue
            if [a.arg for a in stmt.args.posonlyargs + stmt.args.args][1:] != row["upstream"]:
                continue
            base = row["base"].rsplit(".", 1)[-1]
            source = _signature_port(m, stmt, row)
            m.add("P6", stmt, f"`{cls.name}.{row['method']}({', '.join(row['upstream'])})` takes upstream's parameters; "
                  f"the pinned {base} calls it as `{row['method']}({row['pinned']})`, so it raises TypeError "
                  "(unexpected keyword argument) when the pinned base calls it",
                  fix=("apply gives it the pinned parameters (the reads and calls of upstream's re-pointed)" if source
                       else f"take the pinned parameters ({row['pinned']}) and do with them what it does with upstream's"),
                  data={"class": cls.name, "method": row["method"], "pinned": f"{row['base']}.{row['method']}",
                        "problem": "override-takes-upstream-parameters",
                        **({"signature_port": source} if source else {})})


def _signature_port(m: ModuleFacts, stmt, row: dict) -> str | None:
    """The override with the pinned parameters (P6 ``signature_ports``), or None where its body uses upstream's
    parameters otherwise than the table says, or its text does not spell them as re-pointed."""
    params = row["upstream"]
    if stmt.args.vararg or stmt.args.kwarg or stmt.args.kwonlyargs or stmt.decorator_list or not m.source:
        return None
    allowed: set[int] = set()
    returned = {id(n.value) for n in ast.walk(stmt) if isinstance(n, ast.Return)}
    for node in ast.walk(stmt):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == params[0]
                and node.attr in row["attributes"]):
            allowed.add(id(node.value))
        # only returned as it comes: upstream's result object and the pinned tuple are read differently (jina_vl
        # reorders mm_res.kwargs)
        if (isinstance(node, ast.Call) and not node.keywords and [dotted(a) for a in node.args] == params
                and _callee(node.func) in row["calls"] and id(node) in returned):
            allowed.update(id(a) for a in node.args)
    if any(isinstance(n, ast.Name) and n.id in params and id(n) not in allowed for n in ast.walk(stmt)):
        return None
    lines = m.source.splitlines()
    first = stmt.body[0]
    head = max(i for i in range(stmt.lineno, first.lineno) if lines[i - 1].strip()
               and not lines[i - 1].strip().startswith("#"))
    body = "\n".join(lines[head:stmt.end_lineno])
    for attr, name in row["attributes"].items():
        body = re.sub(rf"\b{params[0]}\.{attr}\b", name, body)
    body = body.replace(f"({', '.join(params)})", f"({row['arguments']})")
    body_only = textwrap.indent(textwrap.dedent(body), "    ")
    source = f"def {stmt.name}(self, {row['pinned']}):\n{body_only}\n"
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    if any(isinstance(n, ast.Name) and n.id in params for n in ast.walk(tree)):
        return None  # a use the text did not spell as the table does: left
    return source


def _callee(func: ast.expr) -> str | None:
    """``self.x`` / ``super().x`` as written."""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) and dotted(func.value.func) == "super" \
            and not func.value.args:
        return f"super().{func.attr}"
    return dotted(func)


def check_override_forms(m: ModuleFacts) -> None:
    """P7, table ``override_forms``: a method of a local class of the table's pinned base hierarchy written in
    upstream's form (``BaseMultiModalProcessor.apply(self, inputs, timing_ctx)``), which the pinned framework calls
    with its own arguments (TypeError at the first call). Once rewritten (the table's adapter bound first in the
    body), a read of what the adapter refuses stays a finding there."""
    for cls in m.local_classes.values():
        for index, row in enumerate(OVERRIDE_FORMS):
            stmt = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == row["method"]), None)
            if stmt is None:
                continue
            lin = m.hierarchy.linearize(("local", cls))
            if not any(k == "pinned" and o[0].qualname == row["base"] for k, o in lin):
                continue
            a = stmt.args
            params = [p.arg for p in a.posonlyargs + a.args][1:]
            base = row["base"].rsplit(".", 1)[-1]
            if params == list(row["upstream"]) and not (a.vararg or a.kwarg or a.kwonlyargs):
                m.add("P7", stmt, f"`{cls.name}.{row['method']}({', '.join(params)})` is upstream's form of "
                      f"`{base}.{row['method']}`, which the pinned vLLM calls as `{row['method']}({row['pinned']})`: "
                      "every call raises TypeError",
                      fix=f"apply takes the pinned parameters and binds upstream's arguments from them "
                          f"(`{row['bind']}`, {row['import'][0]}); `super().{row['method']}({', '.join(params)})` "
                          f"becomes `{row['super_call']}`",
                      data={"class": cls.name, "method": row["method"], "override_form": index,
                            "problem": "override-form"})
                continue
            adapter = row["import"][1]
            if not any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == adapter
                       for n in ast.walk(stmt)):
                continue
            holder = row["bind"].split("=", 1)[0].split(",")[0].strip()
            carries, refused = set(row["carries"]), row.get("refused", {})
            for node in ast.walk(stmt):
                if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == holder):
                    continue
                if node.attr in refused and (node.attr not in carries or isinstance(node.ctx, ast.Store)):
                    why = refused[node.attr].strip()
                elif node.attr not in carries:
                    why = (f"upstream's ProcessorInputs.{node.attr}, which the pinned apply's arguments do not carry "
                           f"(the adapter has no such attribute: AttributeError)")
                else:
                    continue
                m.add("P7", node, f"`{holder}.{node.attr}` in `{cls.name}.{row['method']}`: {why}",
                      fix=f"port this path to the pinned `{base}.{row['method']}({row['pinned']})`",
                      data={"class": cls.name, "method": row["method"], "problem": "override-form-refused",
                            "attribute": node.attr})


def _hook_name(stmt: ast.stmt) -> str | None:
    """A method, or a class attribute (upstream's gpt_oss reads ``self.attention_cls`` / ``self.rope_is_neox_style``,
    which a subclass sets in its body), that a subclass may define to change what its parent builds."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        name = stmt.name
    elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        name = stmt.targets[0].id
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and isinstance(stmt.target, ast.Name):
        name = stmt.target.id
    else:
        return None
    if name.startswith("__") or (not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                                 and (any(re.match(p, name) for p in FRAMEWORK_FLAGS)
                                      or any(r["attribute"] == name for r in RUNNER_FLAGS))):
        return None  # a runner flag is check_runner_flags' (an error naming what the runner does)
    return name


_MEMBER_NAMES: dict[int, frozenset[str]] = {}


def _pinned_member_names(m: ModuleFacts) -> frozenset[str]:
    """Every method and class attribute name of every pinned vLLM class: a class attribute of one of these
    names may be read by the framework (``packed_modules_mapping``, ``hf_to_vllm_mapper``)."""
    key = id(m.apis.vllm)
    if key not in _MEMBER_NAMES:
        names: set[str] = set(_pinned_method_names(m))
        for rec in m.apis.vllm.modules.values():
            for crec in rec.get("classes", {}).values():
                names.update(crec["attrs"])
        _MEMBER_NAMES[key] = frozenset(names)
    return _MEMBER_NAMES[key]


def _referenced_names(m: ModuleFacts) -> set[str]:
    out: set[str] = set()
    out.update(node.attr for node in m.of_type(ast.Attribute))
    out.update(node.id for node in m.of_type(ast.Name) if isinstance(node.ctx, ast.Load))
    out.update(node.value for node in m.of_type(ast.Constant)
               if isinstance(node.value, str) and node.value.isidentifier())
    return out


# -- P25 -------------------------------------------------------------------------------------------

def framework_hooks(arch: str, hooked: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """What upstream's framework does for ``arch`` that the pinned vLLM does not (one message each);
    ``hooked``: architectures the plugin gives a ``MODELS_CONFIG_MAP`` entry of its own."""
    out: list[str] = []
    if arch in hooked:  # the plugin's own hook runs where upstream's would (before the model is built)
        return out
    hook = CONFIG_HOOKS.get(arch)
    if hook:
        out.append(f"architecture {arch}: upstream's MODELS_CONFIG_MAP (vllm/model_executor/models/config.py) "
                   f"applies `{hook}` to its config; the pinned vLLM has no entry, so nothing does")
    differs = PINNED_HOOK_DIFFERS.get(arch)
    if differs:
        out.append(f"architecture {arch}: upstream's MODELS_CONFIG_MAP (vllm/model_executor/models/config.py) "
                   f"applies `{differs['hook']}`, which {differs['what']}")
    for patch in ROPE_TYPE_PATCHES:
        if arch in patch["archs"]:
            out.append(f"architecture {arch}: upstream's patch_legacy_rope_type rewrites rope_type "
                       f"{patch['rope_type']!r} (it {patch['what']}); the pinned vLLM does not")
    return out


def arch_conversion(arch: str, version: str) -> tuple[str, str] | None:
    """P25: when upstream converts a released checkpoint's architectures into ``arch`` before choosing the model
    class and the pinned vLLM ``version`` does not, (message, fix) saying so and how to serve such a checkpoint on
    the pinned vLLM (``--hf-overrides``: the architecture and each file the conversion reads)."""
    conv = ARCH_CONVERSIONS.get(arch)
    resolves = ARCH_CONVERSIONS_ABSENT.get(version)
    if conv is None or resolves is None:
        return None
    types = " / ".join(conv["model_types"])
    source = conv.get("source")
    names = (f"names {', '.join(source)} in config.json (model_type {types})" if source else
             f"of model_type {types} names its own architecture in config.json")
    when = []
    if conv.get("fields"):
        when.append("depending on config.json's " + ", ".join(conv["fields"]))
    reads = conv.get("reads") or {}
    when += [f"when the checkpoint holds {name}, which it reads into hf_config.{attr}" for name, attr in reads.items()]
    message = (f"architecture {arch}: a released checkpoint {names}; upstream's ModelConfig converts it to {arch} "
               f"before choosing the model class{' ' if when else ''}{' and '.join(when)} "
               f"({ARCH_CONVERTOR_MODULE}:{conv['line']}, run at vllm/config/model.py:694); the pinned vLLM {version} "
               f"converts no architecture and resolves config.json's as they are ({resolves}): it builds the class "
               f"registered under the checkpoint's own architecture, if any, never {arch}"
               + (f", and reads no {', '.join(reads)}" if reads else ""))
    overrides = ", ".join([f'"architectures": ["{arch}"]'] + [f'"{attr}": <the content of {name}>'
                                                           for name, attr in reads.items()])
    fix = (f"serve a released checkpoint with --hf-overrides '{{{overrides}}}' (what upstream's conversion sets), "
           "and say so in the report")
    return message, fix


MODEL_CONFIG_HOOK = "verify_and_update_model_config"


def _does_nothing(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A body of a docstring, ``pass``, ``...`` or a bare ``return`` (upstream's base class's no-op hook)."""
    return all(isinstance(b, ast.Pass) or (isinstance(b, ast.Return) and b.value is None)
               or (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)) for b in fn.body)


def runs_on_model_config(text: str, hook: str) -> bool:
    """Whether upstream's hook class ``hook`` (or a base class defined in ``text``, the module holding it)
    defines ``verify_and_update_model_config`` to do something (upstream's base class's does nothing): upstream
    calls it while the ModelConfig is built, the pinned VllmConfig never (it calls
    ``verify_and_update_config(vllm_config)`` alone), so a vendored copy would silently skip that part."""
    return _model_config_hook(text, hook) is not None


def model_config_writes(text: str, hook: str, most: int = 4) -> list[str]:
    """The attribute assignments (as text, at most ``most``) in upstream's ``hook`` class's
    ``verify_and_update_model_config`` (or a base class's in ``text``): what a P25 finding says the pinned vLLM
    never does (JinaForRankingConfig's `model_config.hf_config.embedding_size = 512`)."""
    fn = _model_config_hook(text, hook)
    if fn is None:
        return []
    writes = [ast.unparse(n) for n in ast.walk(fn) if isinstance(n, (ast.Assign, ast.AugAssign))
              and all(isinstance(t, (ast.Attribute, ast.Subscript))
                      for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))]
    return [w if len(w) <= 120 else w[:117] + "..." for w in writes[:most]]


def _model_config_hook(text: str, hook: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The first ``verify_and_update_model_config`` that does something along ``hook``'s class chain in
    ``text`` (the class, then the bases defined there), or None."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    seen, todo = set(), [hook]
    while todo:
        node = classes.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        for b in node.body:
            if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef)) and b.name == MODEL_CONFIG_HOOK \
                    and not _does_nothing(b):
                return b
        todo.extend(b.id for b in node.bases if isinstance(b, ast.Name))
    return None


def speculative_method(arch: str, version: str) -> str | None:
    """P38: the speculative method the pinned vLLM ``version`` lacks through which alone upstream builds ``arch``."""
    return next((method for method, archs in SPECULATIVE_ONLY.get(version, {}).items() if arch in archs), None)


def framework_findings(arch: str, path: str, line: int, col: int = 0,
                       hooked: frozenset[str] | set[str] = frozenset(), version: str = "",
                       registered: frozenset[str] | set[str] = frozenset(),
                       builds_on: frozenset[str] | set[str] = frozenset(),
                       model_tree: ast.AST | None = None) -> list[Finding]:
    """P25 (upstream's config hooks), P38 (a speculative method the pinned ``version`` lacks) and P43 (pinned code
    outside the model file that computes otherwise; ``registered``: the architectures the plugin registers;
    ``builds_on``: upstream model modules, such as ``glm4_1v``, whose plugin copy the architecture's file imports
    in place of the pinned one; ``model_tree``: the architecture's model file, which may run the entry's
    ``answered_by_statement``) on ``arch``."""
    out = [Finding("P25", path, line, col, msg, fix="port the hook's effect: the config bridge, the model, or "
                   f'`MODELS_CONFIG_MAP["{arch}"] = <your VerifyAndUpdateConfig>` in register_model()',
                   data={"arch": arch}) for msg in framework_hooks(arch, hooked)]
    conversion = arch_conversion(arch, version)
    if conversion is not None:  # no hook answers it: the pinned vLLM never picks the class for a released checkpoint
        out.append(Finding("P25", path, line, col, conversion[0], severity="warning", fix=conversion[1],
                           data={"arch": arch, "converted_from": ARCH_CONVERSIONS[arch].get("source"),
                                 # verify --run builds the class by name: never why its logits differ
                                 "runtime_unseen": True}))
    method = speculative_method(arch, version)
    if method:
        out.append(Finding(
            "P38", path, line, col,
            f"architecture {arch}: upstream builds it only as the draft of `--speculative-config "
            f"'{{\"method\": \"{method}\"}}'` (its SpeculativeConfig and its proposer); the pinned vLLM {version}'s "
            f"SpeculativeConfig has no method {method!r} (SpeculativeMethod in vllm/config/speculative.py) and "
            "no proposer builds this class, so the registered draft is never used",
            fix=f"report that the draft cannot be served on the pinned vLLM (or back-port the {method!r} method "
                "and its proposer into its config and model runner)",
            data={"arch": arch, "method": method}))
    for method, entry in SPECULATIVE_REFUSED.get(version, {}).items():
        target = entry["archs"].get(arch)
        if target is None:
            continue
        out.append(Finding(
            "P38", path, line, col,
            f"architecture {arch}: upstream builds it as the `{method}` draft of a {target} target; the pinned vLLM "
            f"{version}'s SpeculativeConfig allows {method} only for targets whose model_type names one of "
            f"{', '.join(entry['supported'])} (vllm/config/speculative.py) and refuses this one, so the registered "
            "draft is never used",
            severity="error",
            fix=f"report that the draft cannot be served on the pinned vLLM (or lift the {method} target check in "
                "its SpeculativeConfig, outside the model file)",
            data={"arch": arch, "method": method, "target": target}))
    unconverted = SPECULATIVE_UNCONVERTED.get(version, {}).get(arch)
    if unconverted is not None:
        target = unconverted["target"]
        out.append(Finding(
            "P38", path, line, col,
            f"architecture {arch}: upstream's SpeculativeConfig.hf_config_override makes it (model_type "
            f"{unconverted['model_type']}) from a {target} target for `--speculative-config '{{\"method\": \"mtp\"}}'`; "
            f"the pinned vLLM {version}'s has no case for {target} (vllm/config/speculative.py), so the draft keeps the "
            "target's model_type, none of its MTPModelTypes, and its SpeculativeConfig raises NotImplementedError "
            "(draft model): the registered draft is never used",
            severity="error",
            fix=f"report that the draft cannot be served on the pinned vLLM (or back-port the {target} case of "
                "hf_config_override and the MTP model type, outside the model file)",
            data={"arch": arch, "method": "mtp", "target": target}))
    entry = PINNED_COUNTERPARTS.get(version, {}).get(arch)
    if (entry is not None and entry.get("answered_by") not in registered
            and entry.get("answered_by_module") not in builds_on
            and entry.get("answered_by_copy") not in builds_on
            and f"processors.{entry.get('answered_by_processor')}" not in builds_on
            and not statement_answers(entry, model_tree)):
        pinned = " ".join(entry["pinned"].split())
        out.append(Finding(
            "P43", path, line, col,
            f"architecture {arch} runs through the pinned vLLM {version}'s {pinned}: {' '.join(entry['what'].split())}",
            severity=entry["severity"],
            fix=(f"register upstream's {entry['answered_by']} in the plugin (migrate its file), or report the difference"
                 if entry.get("answered_by") else
                 f"extend the class of upstream's {entry['answered_by_module']} migrated into the plugin (import it "
                 f"from the plugin's models.{entry['answered_by_module']}), or report the difference"
                 if entry.get("answered_by_module") else
                 f"bring upstream's processor module {entry['answered_by_processor']} into the plugin (apply does for "
                 "this architecture), or report the difference" if entry.get("answered_by_processor") else
                 f"in the model file, `{entry['answered_by_statement']['upstream']}` becomes the table's code (apply "
                 "rewrites it), or report the difference" if entry.get("answered_by_statement") else
                 " ".join(entry["fix"].split()) if entry.get("fix") else
                 "report the difference (the pinned code is outside the model file)"),
            data={"arch": arch, "pinned": pinned}))
    return out


# -- P26 -------------------------------------------------------------------------------------------

_head, _tail = TOWER_COMMENT.split("{args}")
_TOWER_COMMENT_RE = re.compile(r"^[ \t]*" + re.escape(_head) + r"(.*)" + re.escape(_tail) + r"[ \t]*$", re.M)


def _tower_message(args: str) -> str:
    return (f"encoder tower built under `self._mark_tower_model({args})`: upstream does not build it (nor load "
            "its weights) when the modality limit is 0; unwrapped, it is always built")


# why apply leaves it: the outputs are the same either way; skipping is a change of the model's own code
# (its weight loading and every reader of the attribute), which upstream's marker did in the framework
_TOWER_WHY = ("outputs are the same; skipping it needs the model's own load_weights to skip the tower's weights "
              "(upstream's loader skips a marked tower by itself, 0.13.0's AutoWeightsLoader only when told "
              "skip_prefixes) and every reader of the attribute to accept None, which apply cannot prove")


def _written(m: ModuleFacts, node: ast.AST) -> str:
    """The expression as the file spells it (the comment apply writes keeps the spelling too)."""
    return (source_segment(m.source_lines, node) if m.source else None) or ast.unparse(node)


def check_tower_skipping(m: ModuleFacts) -> None:
    for node in m.of_type(ast.With, ast.AsyncWith):
        if len(node.items) != 1:
            continue
        call = node.items[0].context_expr
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == "_mark_tower_model" and node.items[0].optional_vars is None):
            args = ", ".join([_written(m, a) for a in call.args]
                             + [f"{k.arg}={_written(m, k.value)}" for k in call.keywords if k.arg])
            m.add("P26", node, _tower_message(args), fix="keep it (delete the P26 comment apply leaves) or build "
                  f"it only when the limit is non-zero, as the pinned models do; left for you: {_TOWER_WHY}",
                  data={"args": args})
    source = m.source
    if source and "# P26:" in source:
        for match in _TOWER_COMMENT_RE.finditer(source):
            line = source.count("\n", 0, match.start()) + 1
            m.add("P26", None, _tower_message(match.group(1)), line=line, col=0,
                  fix="keep it (delete this comment) or build it only when the limit is non-zero, as the pinned "
                      f"models do; left for you: {_TOWER_WHY}", data={"args": match.group(1)})


def propose_edits(f: Finding, edits: Edits) -> None:
    """P23: write the method the pinned models write; P24: port a dead hook where the table says how."""
    if f.rule == "P24" and f.data.get("hook") and f.data.get("source"):
        edits.add_methods[(f.data["class"], f.data["method"])] = ("P24", f.data["source"])
        return
    if f.rule == "P24" and f.data.get("source"):
        # the pinned base's method that does the hook's work is written; a hook it does not call goes
        if f.data.get("replace"):
            edits.remove_methods[(f.data["class"], f.data["method"])] = "P24"
        edits.add_methods[(f.data["class"], "_call_hf_processor")] = ("P24", f.data["source"])
        return
    if f.rule == "P23" and f.data.get("source"):
        edits.add_methods[(f.data["class"], f.data["method"])] = ("P23", f.data["source"])
        for name in LANGUAGE_MODEL_BACKPORT_NAMES:
            if re.search(rf"\b{name}\(", f.data["source"]):
                edits.add_imports[(LANGUAGE_MODEL_BACKPORT, name)] = "P23"
