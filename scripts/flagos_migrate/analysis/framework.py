"""What the pinned vLLM's framework around a model file does differently, though every name resolves
(issue 13, classes 6 and 7: same name, different behaviour; framework-level dependencies).

- P27: an embedding architecture served through the pooling adapter, whose ``*Model`` checkpoint
  (names without ``model.``) the pinned adapter loads only through ``self.model.load_weights``.
- P28: ``config.rope_parameters[layer_type]``, transformers 5's per-layer-type layout; the pinned
  vLLM under transformers 4.57.6 has one flat dict (``patch_rope_parameters``).
- P29: a transformers config class that the pinned vLLM's config registry replaces with its own for
  the model type (``isinstance`` against transformers' class fails on the pinned vLLM).
- P36: a layer kind looked up by transformers 5's name (``"full_attention"``, ``"linear_attention"``),
  which transformers 5's ``PreTrainedConfig`` makes of a checkpoint's legacy ``layer_types``; the
  pinned transformers' class keeps (and accepts only) the legacy names.
- P37: expert parameters named in upstream's ``routed_experts`` layout while the class holding the
  experts comes from a pinned sibling built on the pinned ``FusedMoE`` (``experts.w13_weight``).
- P39: a config field transformers 5's class added (``Lfm2VlConfig.projector_use_layernorm``) read from
  the pinned transformers' class of that name, which lacks it unless the checkpoint's config.json has it.
- P41: a transformers ``Auto*`` class asked to build a model from a config class that transformers 4.57.6
  lacks (only transformers 5 or upstream vLLM has it; on the pinned stack it comes from the plugin's config
  bridge): 4.57.6's auto mappings are keyed by its own config classes.
- P43 (``answered_by_statement``): upstream's statement that builds through pinned code which computes
  otherwise, where the pinned vLLM's own code gives the same result when called first (colpali).
- P46: a sub-config's ``model_type`` compared with the name upstream's config module gives it
  (``"aimv2_vision_model"``, transformers 5's ``Aimv2VisionConfig``) where the pinned vLLM's config module builds
  its own class of another name (ovis: ``AIMv2Config``, ``"aimv2"``).
- P40: an alias transformers 5's ``attribute_map`` added (``LongcatFlashConfig.intermediate_size`` for
  ``ffn_hidden_size``) read through a config annotated with the pinned transformers' class of that name.
"""

from __future__ import annotations

import ast
import builtins
import copy

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.astutil import dotted
from flagos_migrate.catalog.tables import (
    ADDED_CONFIG_FIELDS,
    ATTRIBUTE_ALIASES,
    BASE_CONFIG_DEFAULTS,
    DECLARED_BY_CONFIG_CLASS,
    HF_CONFIG_CLASSES,
    LEGACY_LAYER_TYPES,
    PINNED_COUNTERPARTS,
    PINNED_MODEL_TYPES,
    POOLING_ARCHS,
    POOLING_INNER_LOAD,
    REPLACED_CONFIG_CLASSES,
    ROPE_LAYOUTS,
    ROPE_PATCH,
    TF5_BASE_ATTR,
    TF5_BASE_ATTR_MODULE,
    TF5_DEFAULT_READS,
)
from flagos_migrate.migrate.edits import Edits

PINNED_CONFIGS = "vllm.transformers_utils.configs"


def _stem(m: ModuleFacts) -> str:
    return (m.ctx.origin_module or m.ctx.module).rsplit(".", 1)[-1]


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == name), None)


# -- P27 -------------------------------------------------------------------------------------------

def _inner_model(m: ModuleFacts, outer: ast.ClassDef) -> ast.ClassDef | None:
    """The local class ``outer`` builds as ``self.model = Inner(...)``."""
    for sub in ast.walk(outer):
        if (isinstance(sub, ast.Assign) and len(sub.targets) == 1 and dotted(sub.targets[0]) == "self.model"
                and isinstance(sub.value, ast.Call) and isinstance(sub.value.func, ast.Name)):
            return m.local_classes.get(sub.value.func.id)
    return None


def _loads_weights(m: ModuleFacts, cls: ast.ClassDef, seen: frozenset[str] = frozenset()) -> bool | None:
    """``cls`` or a base defines ``load_weights`` (None: a base nobody can name)."""
    if _method(cls, "load_weights") is not None:
        return True
    for base in cls.bases:
        spelled = dotted(base) or ""
        if spelled in ("nn.Module", "torch.nn.Module"):
            continue
        local = m.local_classes.get(spelled)
        if local is not None and local.name not in seen:
            found = _loads_weights(m, local, seen | {cls.name})
            if found is not False:
                return found
            continue
        sym = m.resolve_expr(base)
        if sym is None or sym.kind != "class":
            return None
        classes, external = m.apis.mro(sym)
        if "?" in external:
            return None
        if any("load_weights" in rec["methods"] for _, rec in classes):
            return True
    return False


def _stacked_only_mapper(outer: ast.ClassDef) -> bool:
    """``hf_to_vllm_mapper = WeightsMapper(orig_to_new_stacked=...)`` in the class body, nothing else
    (stacked projection names match the same under ``model.`` and without it)."""
    for stmt in outer.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and dotted(stmt.targets[0]) == "hf_to_vllm_mapper"
                and isinstance(stmt.value, ast.Call) and (dotted(stmt.value.func) or "").endswith("WeightsMapper")):
            return not stmt.value.args and [k.arg for k in stmt.value.keywords] == ["orig_to_new_stacked"]
    return False


def _mapper_keyword(outer: ast.ClassDef) -> ast.keyword | None:
    """``mapper=self.hf_to_vllm_mapper`` of the one ``<AutoWeightsLoader>.load_weights(weights, mapper=...)``
    that ``outer.load_weights`` returns, the loader built as ``AutoWeightsLoader(self, ...)``."""
    fn = _method(outer, "load_weights")
    if fn is None:
        return None
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if not body or not isinstance(body[-1], ast.Return) or not isinstance(body[-1].value, ast.Call):
        return None
    call = body[-1].value
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "load_weights"):
        return None
    loader = call.func.value
    if isinstance(loader, ast.Name) and len(body) == 2 and isinstance(body[0], ast.Assign) \
            and [dotted(t) for t in body[0].targets] == [loader.id]:
        loader = body[0].value
    elif len(body) != 1:
        return None
    if not (isinstance(loader, ast.Call) and dotted(loader.func) == "AutoWeightsLoader"
            and [dotted(a) for a in loader.args] == ["self"]):
        return None
    mapper = [k for k in call.keywords if k.arg == "mapper"]
    if len(call.args) != 1 or len(call.keywords) != 1 or not mapper or dotted(mapper[0].value) != "self.hf_to_vllm_mapper":
        return None
    return mapper[0]


def check_pooling_inner_load(m: ModuleFacts) -> None:
    stem = _stem(m)
    served: dict[str, list[str]] = {}
    for arch, (module, cls) in POOLING_ARCHS.items():
        if module == stem:
            served.setdefault(cls, []).append(arch)
    for cname, archs in served.items():
        outer = m.local_classes.get(cname)
        inner = _inner_model(m, outer) if outer is not None else None
        if inner is None or _loads_weights(m, inner) is not False:
            continue
        kw = _mapper_keyword(outer)
        source = None
        if kw is not None and _stacked_only_mapper(outer) and {"Iterable", "torch", "AutoWeightsLoader"} <= set(
                m.module_bindings) | set(m.local_classes):
            source = POOLING_INNER_LOAD.format(outer=cname)
        names = ", ".join(f"`{a}`" for a in archs)
        m.add("P27", outer, f"{names} serve{'s' if len(archs) == 1 else ''} {cname} through the pooling adapter; "
              "such a checkpoint has no `model.` prefix, and the pinned adapter (vllm/model_executor/models/"
              "adapters.py, `_create_pooling_model_cls.load_weights`) loads those names only through "
              f"`self.model.load_weights`, which {inner.name} does not define, else through {cname}.load_weights, "
              "which finds no `embed_tokens` (upstream's adapter finds the prefix itself)",
              fix=(f"{inner.name} gets the load_weights upstream's LlamaModel has (the mapper applied there)"
                   if source else f"give {inner.name} a load_weights that loads its own names"),
              data={"class": cname, "inner": inner.name, "archs": archs, "source": source,
                    "mapper_line": getattr(kw.value, "lineno", None) if kw is not None else None})


# -- P28 -------------------------------------------------------------------------------------------

def _layer_type_key(key: ast.expr) -> bool:
    if isinstance(key, ast.Constant):
        return isinstance(key.value, str) and key.value.endswith("_attention")
    spelled = dotted(key) if isinstance(key, (ast.Name, ast.Attribute)) else None
    return bool(spelled) and "layer_type" in spelled


def _asks_for_field(test: ast.expr) -> str | None:
    """The config field a test asks about without reading it: ``getattr(c, "f", default)``, ``hasattr(c, "f")``."""
    for n in ast.walk(test):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("getattr", "hasattr")
                and len(n.args) == (3 if n.func.id == "getattr" else 2) and isinstance(n.args[1], ast.Constant)
                and isinstance(n.args[1].value, str)):
            return n.args[1].value
    return None


def _pinned_configs_lack(m: ModuleFacts, field: str) -> bool:
    """Every transformers config class the module imports exists on the pin and has no ``field``: a
    branch that runs only when the config has it (0.13.0's own modernbert asks for ``layer_types``)
    never runs there. No such import, or one the index does not know: not proven."""
    found = False
    for b in m.bindings:
        if b.level or b.module.split(".")[0] != "transformers" or not b.name.endswith("Config"):
            continue
        sym = m.apis.resolve(b.module, b.name)
        if sym is None or m.apis.class_has_member(sym, field) is not False:
            return False
        found = True
    return found


def _guarded(m: ModuleFacts, node: ast.AST) -> bool:
    """Inside the body of an ``if`` (or a conditional expression) whose test looks at rope_parameters,
    or asks for a config field the pinned config classes do not have (a branch dead on the pin)."""
    child, cur = node, m.parents.get(node)
    while cur is not None and not isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        if isinstance(cur, (ast.If, ast.IfExp)) and child is not cur.test:
            if any((isinstance(n, ast.Attribute) and n.attr == "rope_parameters")
                   or (isinstance(n, ast.Name) and n.id == "rope_parameters") for n in ast.walk(cur.test)):
                return True
            field = _asks_for_field(cur.test)
            if child in cur.body if isinstance(cur, ast.If) else child is cur.body:
                if field and _pinned_configs_lack(m, field):
                    return True
        child, cur = cur, m.parents.get(cur)
    return False


def _available(fn: ast.FunctionDef, before: int, code: str) -> bool:
    """Every name and ``self.X`` the replacement reads (besides what it assigns itself) is a parameter
    of ``fn`` or assigned in ``fn`` before line ``before``."""
    tree = ast.parse(code)
    own = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    bound = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]}
    for n in ast.walk(fn):
        if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.lineno < before:
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                for sub in ast.walk(t):
                    if isinstance(sub, (ast.Name, ast.Attribute)) and isinstance(sub.ctx, ast.Store):
                        bound.add(dotted(sub) or "")
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self":
            if dotted(n) not in bound:
                return False
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            if n.id not in bound and n.id not in own and not hasattr(builtins, n.id):
                return False
    return True


def check_rope_layer_types(m: ModuleFacts) -> None:
    layout = ROPE_LAYOUTS.get(m.apis.version, {}).get(_stem(m))
    for node in m.of_type(ast.Subscript):
        if not (isinstance(node.value, ast.Attribute) and node.value.attr == "rope_parameters"
                and isinstance(node.ctx, ast.Load) and _layer_type_key(node.slice)) or _guarded(m, node):
            continue
        stmt = m.enclosing(node, ast.stmt)
        fn = m.enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        source = None
        if (layout and isinstance(stmt, ast.Assign) and fn is not None and ast.unparse(stmt) == layout["upstream"]
                and _available(fn, stmt.lineno, layout["pinned"])):
            source = layout["pinned"]
        where = ("" if not layout else
                 f"; the transformers 4 branch can build what {layout['derived']} holds from the pinned class's "
                 "fields" if layout.get("derived") else
                 f"; the pinned vllm.model_executor.models.{_stem(m)} reads both layouts (lines "
                 f"{layout['lines'][0]}-{layout['lines'][1]})")
        # a model the pinned vLLM has: its config is a 4.57.6 class, flat; a new one's config (remote code,
        # a transformers 5 bridge) may keep the per-layer-type dict, which patch_rope_parameters leaves nested
        known = m.apis.vllm.has_module(f"vllm.model_executor.models.{_stem(m)}")
        m.add("P28", node, f"`{ast.unparse(node)}` reads transformers 5's per-layer-type rope_parameters; under "
              "transformers 4.57.6 the pinned vLLM's patch_rope_parameters builds one flat dict (rope_theta, "
              "rope_scaling) from a config that has no per-layer-type dict, "
              + ("so this raises KeyError when the model is built" if known else
                 "so this raises KeyError unless the model's config class keeps that dict")
              + where, severity="" if known else "warning",
              fix=("upstream's read becomes the both-layouts code of the table" if source else
                   "read the per-layer-type dict only when the config has it (`if layer_type in "
                   "config.rope_parameters`), else the flat dict and the 4.57.6 config's per-layer field"),
              data={"source": source, "stmt_line": getattr(stmt, "lineno", None)})


# -- P43 (answered in the model file) -------------------------------------------------------------

def _statements(code: str) -> list[str]:
    return [ast.unparse(s) for s in ast.parse(code).body]


def _scopes(fix: dict, tree: ast.AST | None) -> list[ast.ClassDef]:
    """The classes of ``tree`` named by the entry's ``class`` (where upstream's statement and its answer count)."""
    if tree is None:
        return []
    return [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == fix["class"]]


def statement_answers(entry: dict, tree: ast.AST | None) -> bool:
    """The file already runs the table's pinned code (every statement of it, in one body, in order) inside the class
    the entry names: the same lines in another class answer nothing."""
    fix = entry.get("answered_by_statement")
    if not fix:
        return False
    want = _statements(fix["pinned"])
    for scope in _scopes(fix, tree):
        for node in ast.walk(scope):
            stmts = getattr(node, "body", ())
            if not isinstance(stmts, list):  # a lambda's (or an IfExp's) body is one expression
                continue
            body = [ast.unparse(s) for s in stmts if isinstance(s, ast.stmt)]
            if any(body[i:i + len(want)] == want for i in range(len(body) - len(want) + 1)):
                return True
    return False


def check_counterpart_statements(m: ModuleFacts) -> None:
    """P43 entries answered by a statement of the model file (``answered_by_statement``): upstream's statement, in
    the class the entry names, becomes the table's code, which calls the pinned vLLM's own function first."""
    for arch, entry in PINNED_COUNTERPARTS.get(m.apis.version, {}).items():
        fix = entry.get("answered_by_statement")
        if not fix or fix["module"] != _stem(m) or statement_answers(entry, m.tree):
            continue
        upstream = _statements(fix["upstream"])
        for stmt in m.of_type(ast.Expr, ast.Assign):
            if [ast.unparse(stmt)] != upstream or not any(m.enclosing_class(stmt) is c for c in _scopes(fix, m.tree)):
                continue
            m.add("P43", stmt, f"architecture {arch} builds through the pinned vLLM {m.apis.version}'s "
                  f"{' '.join(entry['pinned'].split())}: {' '.join(entry['what'].split())}",
                  fix="the statement becomes the table's code (the pinned vLLM's own function called first)",
                  data={"source": fix["pinned"], "stmt_line": stmt.lineno,
                        "imports": [tuple(i) for i in fix.get("imports", ())]})


# -- P43 (a config the model file builds, which the pinned get_config never patches) ----------------

ROPE_FIELDS = ("rope_theta", "rope_scaling")
_BUILDERS = ("from_dict", "from_pretrained")


def _rope_fields(m: ModuleFacts, call: ast.Call) -> tuple[str, list[str]] | None:
    """(qualname, RoPE fields) when ``call`` builds a pinned transformers config class (``X(...)``,
    ``X.from_dict(...)``) that keeps RoPE fields and has no ``rope_parameters``; else None."""
    func = call.func
    target = func.value if isinstance(func, ast.Attribute) and func.attr in _BUILDERS else func
    sym = m.resolve_expr(target)
    if sym is None or sym.kind != "class" or sym.module.split(".")[0] != "transformers":
        return None
    mro, _ = m.apis.mro(sym)
    names: set[str] = set()
    for _, rec in mro:
        names.update(rec.get("attrs") or ())
        for assigned in (rec.get("sets") or {}).values():
            names.update(assigned)
    if not any(q.endswith("PretrainedConfig") for q in [s.qualname for s, _ in mro]) or "rope_parameters" in names:
        return None
    fields = [f for f in ROPE_FIELDS if f in names]
    return (sym.qualname, fields) if fields else None


def _to_transformers(m: ModuleFacts, node: ast.AST) -> bool:
    """``node`` is an argument of a call to a transformers class (``Qwen2Model(cfg)``): that version's own
    modeling, which reads its own fields."""
    parent = m.parents.get(node)
    if isinstance(parent, ast.keyword):
        parent = m.parents.get(parent)
    if not isinstance(parent, ast.Call) or parent.func is node:
        return False
    sym = m.resolve_expr(parent.func)
    return sym is not None and sym.kind == "class" and sym.module.split(".")[0] == "transformers"


def _stays_unpatched(m: ModuleFacts, call: ast.Call) -> bool:
    """The built config may reach vLLM code: not only handed to transformers classes, and the file never sets its
    ``rope_parameters`` itself (cosmos3_edge sets them after building its NemotronHConfig)."""
    if _to_transformers(m, call):
        return False
    parent = m.parents.get(call)
    if not (isinstance(parent, ast.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0], ast.Name)):
        return True  # an attribute, a return value, a container: used where this file does not say
    name = parent.targets[0].id
    scope = m.enclosing(call, (ast.FunctionDef, ast.AsyncFunctionDef)) or m.tree
    uses = [n for n in m.subtree(scope) if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load)]
    for use in uses:
        up = m.parents.get(use)
        if isinstance(up, ast.Attribute) and up.attr == "rope_parameters" and isinstance(up.ctx, ast.Store):
            return False
    return any(not _to_transformers(m, use) for use in uses)


def check_configs_built_in_file(m: ModuleFacts) -> None:
    """P43 ``rope_patch``: a config of a pinned transformers class with RoPE fields and no ``rope_parameters``, built
    by the model file itself, which the pinned get_config (the one place that gives loaded configs
    ``rope_parameters``) never sees."""
    patch = ROPE_PATCH.get(m.apis.version)
    # model files only: a config module's class is what get_config loads, and it patches its text config too
    if not patch or m.apis.transformers is None or ".models." not in f".{m.ctx.origin_module or m.ctx.module}.":
        return
    # a module whose answered_by_statement entry calls the patch on the config it builds (moss_audio) is answered there
    if any((e.get("answered_by_statement") or {}).get("module") == _stem(m)
           for e in PINNED_COUNTERPARTS.get(m.apis.version, {}).values()):
        return
    for call in m.of_type(ast.Call):
        found = _rope_fields(m, call)
        if found is None or not _stays_unpatched(m, call):
            continue
        qualname, fields = found
        tf = m.apis.transformers.version
        m.add("P43", call,
              f"`{ast.unparse(call.func)}(...)` builds a transformers {tf} config ({qualname}) in the model file: it keeps "
              f"{' / '.join(fields)} and has no rope_parameters, and the pinned vLLM {m.apis.version}'s get_config, "
              f"which gives the configs it loads rope_parameters ({patch['function']}, {patch['where']}), never sees "
              "it; transformers 5's class holds them in rope_parameters. A pinned layer that reads "
              "config.rope_parameters then raises AttributeError, and one that takes set_default_rope_theta's default "
              "rotates with that base whatever config.json says (moss_audio's language model: 1e6)",
              severity="warning",
              fix=f"call {patch['function']}(<this config>) (vllm.transformers_utils.config) on it before a model is "
                  "built from it, as the pinned get_config does (a P43 answered_by_statement entry makes apply write "
                  "it), or report the difference",
              data={"class": qualname, "fields": fields})


# -- P29 -------------------------------------------------------------------------------------------

def check_replaced_config_classes(m: ModuleFacts) -> None:
    table = REPLACED_CONFIG_CLASSES.get(m.apis.version, {})
    by_name = {cls: mt for mt, cls in table.items()}
    for b in m.bindings:
        if (b.name in by_name and not b.level and b.module.split(".")[0] == "transformers"
                and m.apis.resolve(PINNED_CONFIGS, b.name) is not None):
            m.add("P29", b.node, f"`{b.name}` from {b.module}: the pinned vLLM builds every `{by_name[b.name]}` "
                  f"config as its own {PINNED_CONFIGS}.{b.name} (_CONFIG_REGISTRY in "
                  "vllm/transformers_utils/config.py), not transformers' class of that name",
                  line=b.line, col=b.col, fix=f"import {b.name} from {PINNED_CONFIGS}",
                  data={"module": b.module, "name": b.name, "new_module": PINNED_CONFIGS, "model_type": by_name[b.name]})


# -- P36 -------------------------------------------------------------------------------------------

LAYER_TYPE_FIELDS = ("layer_types", "layers_block_type")


def _reads_layer_types(m: ModuleFacts, expr: ast.expr) -> bool:
    """``expr`` reads the config's layer kinds: ``config.layer_types[i]``, or a name the enclosing function
    binds from such a read (``layer_type = config.layer_types[i]``, ``for i, t in enumerate(config.layer_types)``)."""
    return _reads_field(m, expr, LAYER_TYPE_FIELDS)


def _dict_looked_up_by_layer_type(m: ModuleFacts, d: ast.Dict) -> bool:
    """The dict literal (or the name it is assigned to) is subscripted with a layer kind of the config."""
    parent = m.parents.get(d)
    if isinstance(parent, ast.Subscript) and parent.value is d:
        return _reads_layer_types(m, parent.slice)
    if not (isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is d):
        return False
    targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
    names = {t.id for t in targets if isinstance(t, ast.Name)}
    return any(isinstance(n.value, ast.Name) and n.value.id in names and _reads_layer_types(m, n.slice)
               for n in m.of_type(ast.Subscript))


def _compared_with_layer_type(m: ModuleFacts, node: ast.Constant) -> bool:
    parent = m.parents.get(node)
    if isinstance(parent, (ast.Tuple, ast.List, ast.Set)):  # ``t in ("full_attention", ...)``
        node, parent = parent, m.parents.get(parent)
    if not isinstance(parent, ast.Compare):
        return False
    return any(_reads_layer_types(m, side) for side in [parent.left, *parent.comparators] if side is not node)


def check_legacy_layer_types(m: ModuleFacts) -> None:
    table = LEGACY_LAYER_TYPES.get(m.apis.version, {})
    classes = {b.name: table[b.name] for b in m.bindings
               if b.name in table and not b.level and b.module.split(".")[0] == "transformers"
               and m.apis.resolve(b.module, b.name) is not None}
    if not classes:
        return
    for node in m.of_type(ast.Constant):
        owner = next((c for c, names in classes.items() if node.value in names), None)
        if owner is None or not isinstance(node.value, str):
            continue
        parent = m.parents.get(node)
        lookup = isinstance(parent, ast.Dict) and node in parent.keys and _dict_looked_up_by_layer_type(m, parent)
        if not (lookup or _compared_with_layer_type(m, node)):
            continue
        legacy = classes[owner][node.value]
        m.add("P36", node, f'"{node.value}" is transformers 5\'s name of a layer kind: its PreTrainedConfig renames '
              f'a checkpoint\'s legacy layer_types on load ("{legacy}" -> "{node.value}", configuration_utils.'
              f"_LEGACY_LAYER_TYPE_REMAP); the pinned transformers' {owner} keeps \"{legacy}\" and accepts only "
              "the legacy names, so "
              + ("this lookup raises KeyError when the model is built" if lookup else "this comparison never holds"),
              fix=f'the legacy name "{legacy}", the one the pinned config holds',
              data={"config_class": owner, "value": node.value, "legacy": legacy})


# -- P46 -------------------------------------------------------------------------------------------

def _reads_field(m: ModuleFacts, expr: ast.expr, fields: tuple[str, ...]) -> bool:
    """``expr`` reads one of ``fields`` (``config.backbone_config.model_type``), or is a name the enclosing
    function binds from such a read (``model_type = config.backbone_config.model_type``, a ``for`` target)."""
    if any(isinstance(n, ast.Attribute) and n.attr in fields for n in ast.walk(expr)):
        return True
    names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    fn = m.enclosing(expr, (ast.FunctionDef, ast.AsyncFunctionDef))
    for n in ast.walk(fn) if fn is not None and names else ():
        target, value = ((n.targets[0], n.value) if isinstance(n, ast.Assign) and len(n.targets) == 1
                         else (n.target, n.iter) if isinstance(n, (ast.For, ast.comprehension)) else (None, None))
        bound = {t.id for t in ast.walk(target) if isinstance(t, ast.Name)} if target is not None else set()
        if bound & names and any(isinstance(x, ast.Attribute) and x.attr in fields for x in ast.walk(value)):
            return True
    return False


def check_pinned_model_types(m: ModuleFacts) -> None:
    table = PINNED_MODEL_TYPES.get(m.apis.version, {}).get(_stem(m), {})
    for node in m.of_type(ast.Constant) if table else ():
        entry = table.get(node.value) if isinstance(node.value, str) else None
        parent = m.parents.get(node)
        cmp_node = node
        if isinstance(parent, (ast.Tuple, ast.List, ast.Set)):  # ``t in ("aimv2_vision_model", ...)``
            cmp_node, parent = parent, m.parents.get(parent)
        if entry is None or not isinstance(parent, ast.Compare) or not any(
                _reads_field(m, side, ("model_type",)) for side in [parent.left, *parent.comparators]
                if side is not cmp_node):
            continue
        pinned_module, pinned_cls = entry["pinned_class"].split(":")
        m.add("P46", node, f'"{node.value}" is the model_type of {entry["upstream_class"].replace(":", ".")}, the '
              f"class upstream's config module builds this sub-config as; the pinned vLLM's builds it as its own "
              f'{pinned_module}.{pinned_cls} (model_type "{entry["pinned"]}"), so this comparison never holds',
              fix=f'the pinned name "{entry["pinned"]}", the model_type of the config the pinned vLLM builds',
              data={"value": node.value, "pinned": entry["pinned"], "pinned_class": entry["pinned_class"]})


# -- P37 -------------------------------------------------------------------------------------------

# upstream's expert mapping helpers: their rows name ``experts.routed_experts.w13_`` unless the call passes
# another ``routed_experts_prefix`` (vllm/model_executor/layers/fused_moe/layer.py, routed_experts.py)
ROUTED_LAYOUT_HELPERS = ("fused_moe_make_expert_params_mapping", "make_expert_params_mapping")


def names_routed_layout(tree: ast.AST) -> bool:
    """The file names upstream's ``routed_experts`` parameters: in a string, or through a mapping helper
    called with its default prefix (glm4_moe_lite: ``fused_moe_make_expert_params_mapping(self, ...)``)."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and "routed_experts" in n.value:
            return True
        if isinstance(n, ast.Call):
            name = n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", None)
            prefix = next((k.value for k in n.keywords if k.arg == "routed_experts_prefix"), None)
            if name in ROUTED_LAYOUT_HELPERS and (prefix is None or (isinstance(prefix, ast.Constant)
                                                                     and prefix.value)):
                return True
    return False


def pinned_layout_siblings(apis, tree: ast.AST, bindings) -> list:
    """The imports of classes holding ``experts`` from a pinned model module that builds them with the
    pinned ``FusedMoE`` (parameters ``experts.w13_weight``), in a file whose strings name upstream's
    ``routed_experts`` layout and which builds no ``FusedMoEFactory`` of its own (engine and detector)."""
    if not names_routed_layout(tree):
        return []
    if any(b.name == "FusedMoEFactory" for b in bindings):
        return []
    out = []
    for b in bindings:
        if not b.name or b.type_checking or not b.module.startswith("vllm.model_executor.models."):
            continue
        sym = apis.resolve(b.module, b.name)
        # the pinned FusedMoE, or its SharedFusedMoE subclass (0.13.0's glm4_moe): the same parameter names
        fused = apis.resolve(b.module, "FusedMoE") or apis.resolve(b.module, "SharedFusedMoE")
        if (sym is None or sym.kind != "class" or sym.module != b.module or fused is None
                or fused.kind != "class"):
            continue
        classes, _ = apis.mro(sym)
        if any("experts" in rec["attrs"] for _, rec in classes):
            out.append(b)
    return out


def check_routed_layout_siblings(m: ModuleFacts) -> None:
    for b in pinned_layout_siblings(m.apis, m.tree, m.bindings):
        m.add("P37", b.node, f"`{b.name}` comes from the pinned {b.module}, whose experts are the pinned "
              "FusedMoE (parameters `experts.w13_weight`, `experts.w2_weight`), while this file names upstream's "
              "layout (`experts.routed_experts.w13_weight`, the fused-MoE refactor vllm#41184): those names are "
              "not in the model, so its expert weights do not load (a loader that skips unknown names leaves "
              "them unloaded, one that looks them up raises KeyError)", line=b.line, col=b.col,
              fix=f"take upstream's {b.module.rsplit('.', 1)[1]} along (its experts are the P22 back-port's "
                  "FusedMoEFactory, the layout this file names)",
              data={"module": b.module, "name": b.name})


# -- P39 -------------------------------------------------------------------------------------------

def check_added_config_fields(m: ModuleFacts) -> None:
    table = ADDED_CONFIG_FIELDS.get(m.apis.version, {})
    fields = {attr: (b.name, entry) for b in m.bindings
              if b.name in table and not b.level and b.module.split(".")[0] == "transformers"
              and m.apis.resolve(b.module, b.name) is not None
              for attr, entry in table[b.name].items()}
    if not fields:
        return
    for node in m.of_type(ast.Attribute):
        if node.attr not in fields or not isinstance(node.ctx, ast.Load):
            continue
        base = node.value
        holder = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
        if "config" not in holder.lower():  # a module's own attribute of the same name (self.<field>) is not it
            continue
        cls, entry = fields[node.attr]
        default = entry["default"]
        m.add("P39", node, f"`{ast.unparse(node)}`: transformers 5's {cls} declares `{node.attr}` (default "
              f"{default}: {entry['why']}); the pinned transformers' {cls} has no such field, so the model fails "
              "with AttributeError on a checkpoint whose config.json does not carry it",
              fix=f'getattr({ast.unparse(base)}, "{node.attr}", {default}), transformers 5\'s default',
              data={"config_class": cls, "attr": node.attr, "default": default})


# -- P45 -------------------------------------------------------------------------------------------

def _literal(node: ast.expr) -> tuple[bool, object]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def check_base_config_defaults(m: ModuleFacts) -> None:
    table = BASE_CONFIG_DEFAULTS.get(m.apis.version, {})
    if not table:
        return
    stem = (m.ctx.origin_module or m.ctx.module).rsplit(".", 1)[-1]
    declared = DECLARED_BY_CONFIG_CLASS.get(m.apis.version, {}).get(stem, {})
    reads = TF5_DEFAULT_READS.get(m.apis.version, {}).get(stem, {})
    for node in m.of_type(ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") and not node.keywords
                and len(node.args) == (3 if node.func.id == "getattr" else 2)
                and isinstance(node.args[1], ast.Constant) and node.args[1].value in table):
            continue
        obj, attr = ast.unparse(node.args[0]), node.args[1].value
        if "config" not in obj.lower():  # not a config (a module's own attribute of the same name)
            continue
        if attr in declared.get(obj, {}).get("declares", ()):
            continue  # the model's config class sets it itself: both stacks read the class's value
        pinned = table[attr]
        head = (f"`{ast.unparse(node)}`: the pinned transformers' PretrainedConfig sets `{attr}` = {pinned} on every "
                "config and transformers 5's does not")
        if node.func.id == "hasattr":
            m.add("P45", node, f"{head}, so this is always true on the pinned vLLM, where upstream's is false unless "
                  "the config class or the checkpoint's config.json sets it",
                  fix="read the key from the checkpoint's config.json (or the config class's own declaration)",
                  data={"attr": attr, "pinned_default": pinned, "upstream_default": None})
            continue
        ok, value = _literal(node.args[2])
        if ok and type(value) is type(ast.literal_eval(pinned)) and value == ast.literal_eval(pinned):
            continue  # the same value either way
        default = ast.unparse(node.args[2])
        what = (f"{head}: where neither the config class nor the checkpoint's config.json sets it, upstream "
                f"reads its default {default} and the pinned vLLM reads {pinned}")
        read = reads.get(obj, {})
        stmt = m.enclosing(node, ast.stmt)
        if (attr in read.get("attrs", ()) and obj.endswith(".hf_config") and ok
                and isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.Expr, ast.Return))):
            classes = tuple(read["classes"])
            call = f"{TF5_BASE_ATTR}({obj[: -len('.hf_config')]}, {attr!r}, {default}, {classes!r})"
            m.add("P45", node, f"{what}; for the config classes its checkpoints load as ({', '.join(classes)}: "
                  f"{read['source'].strip()}) apply reads what upstream reads",
                  fix=f"`{call}` ({TF5_BASE_ATTR_MODULE}: the object's value where config.json or a flat "
                      f"hf_overrides entry sets `{attr}`, else {default}; another class keeps {pinned} and warns)",
                  data={"attr": attr, "pinned_default": pinned, "upstream_default": default,
                        "stmt_line": stmt.lineno, "source": _replace_call(stmt, node, call),
                        "imports": [[TF5_BASE_ATTR_MODULE, TF5_BASE_ATTR]]})
            continue
        m.add("P45", node, what,
              fix=f"read the key from the checkpoint's config.json (or the config class's own declaration), "
                  f"falling back to {default}",
              data={"attr": attr, "pinned_default": pinned, "upstream_default": default})


def _replace_call(stmt: ast.stmt, call: ast.Call, source: str) -> str:
    """``stmt``'s source with the one ``call`` (by position) replaced by ``source``."""
    new = ast.parse(source, mode="eval").body
    key = (call.lineno, call.col_offset, call.end_lineno, call.end_col_offset)

    class Swap(ast.NodeTransformer):
        def visit_Call(self, node):
            if (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset) == key:
                return new
            return self.generic_visit(node)

    return ast.unparse(Swap().visit(copy.deepcopy(stmt)))


# -- P40 -------------------------------------------------------------------------------------------

def _annotated_with(arg: ast.arg, names: set[str]) -> str | None:
    ann = arg.annotation
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        try:
            ann = ast.parse(ann.value, mode="eval").body
        except SyntaxError:
            return None
    if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):  # ``X | None``
        ann = ann.left if isinstance(ann.left, (ast.Name, ast.Attribute)) else ann.right
    name = ann.id if isinstance(ann, ast.Name) else ann.attr if isinstance(ann, ast.Attribute) else None
    return name if name in names else None


def check_attribute_aliases(m: ModuleFacts) -> None:
    table = ATTRIBUTE_ALIASES.get(m.apis.version, {})
    classes = {b.name for b in m.bindings if b.name in table and not b.level
               and b.module.split(".")[0] == "transformers" and m.apis.resolve(b.module, b.name) is not None}
    stem = (m.ctx.origin_module or m.ctx.module).rsplit(".", 1)[-1]
    hf_class = HF_CONFIG_CLASSES.get(m.apis.version, {}).get(stem)
    if hf_class not in table:
        hf_class = None
    if not classes and not hf_class:
        return
    for fn in m.of_type(ast.FunctionDef, ast.AsyncFunctionDef):
        args = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
        holders = {a.arg: cls for a in args if (cls := _annotated_with(a, classes))}
        if not holders:
            continue
        for node in ast.walk(fn):  # a nested function's own parameter of the same name is annotated on its own
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in holders and node.attr in table[holders[node.value.id]]):
                continue
            cls = holders[node.value.id]
            entry = table[cls][node.attr]
            what = (f"`{ast.unparse(node)}`: transformers 5's {cls} reads `{node.attr}` as `{entry['target']}` through "
                    f"its attribute_map; the pinned transformers' {cls} has no `{node.attr}`, so the "
                    "model fails with AttributeError")
            if entry.get("manual"):
                m.add("P40", node, f"{what}; no rename is the same here: {entry['manual']}",
                      fix=f"read what `{entry['target']}` means from the pinned {cls} by hand",
                      data={"config_class": cls, "attr": node.attr, "target": entry["target"], "manual": True})
                continue
            m.add("P40", node, what, fix=f"{node.value.id}.{entry['target']}, the field the alias reads",
                  data={"config_class": cls, "attr": node.attr, "target": entry["target"], "holder": node.value.id})
    _pinned_alias_reads(m, table, classes, hf_class)


def _holder_class(m: ModuleFacts, node: ast.AST, name: str, classes: set[str]) -> str | None:
    """The table class ``name`` is annotated with as a parameter of the function around ``node`` (the
    nearest function that has a parameter of that name decides)."""
    fn = m.enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    while fn is not None:
        for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs:
            if a.arg == name:
                return _annotated_with(a, classes)
        fn = m.enclosing(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
    return None


def _pinned_alias_reads(m: ModuleFacts, table: dict, classes: set[str], hf_class: str | None) -> None:
    """A pinned vLLM class built from a config of the table reads the alias in code no rewrite of this
    file reaches (longcat_flash_mtp: the pinned DeepseekV2DecoderLayer reads ``config.intermediate_size``
    of the hf_config, 4.57.6's LongcatFlashConfig). A finding, unless the file sets the alias itself (the
    pinned longcat_flash_mtp.py sets ``hf_config.intermediate_size`` before it builds the layer)."""
    # (holder, alias) the file sets itself: on the config the call is given, not another one
    set_here = {(ast.unparse(n.value), n.attr) for n in m.of_type(ast.Attribute) if isinstance(n.ctx, ast.Store)}
    for call in m.of_type(ast.Call):
        sym = m.resolve_expr(call.func)
        if sym is None or sym.kind != "class" or not sym.module.startswith("vllm."):
            continue
        sig = m.apis.init_signature(sym) or {}
        bound = [(p, a) for p, a in zip(sig.get("p", []), call.args)] + [(k.arg, k.value) for k in call.keywords]
        given = next((a for p, a in bound if p in ("config", "hf_config")), None)
        vllm_config = next((a for p, a in bound if p == "vllm_config"
                            or (isinstance(a, ast.Name) and a.id == "vllm_config")), None)
        if isinstance(given, ast.Name):
            cls, holder = _holder_class(m, call, given.id, classes), given.id
        elif given is None and hf_class and vllm_config is not None:
            # the pinned class reads vllm_config.model_config.hf_config
            cls, holder = hf_class, f"{ast.unparse(vllm_config)}.model_config.hf_config"
        else:
            continue
        if cls is None:
            continue
        reads: set[str] = set()
        for psym, rec in m.apis.mro(sym)[0]:
            if psym.module.startswith("vllm."):
                reads.update((rec.get("cfgv") or {}).get("config", rec.get("cfg", [])))
        rec = m.apis.class_record(sym) or {}
        where = f"{sym.module.replace('.', '/')}.py:{rec.get('line', 1)}"
        via = "the model's hf_config" if given is None else f"`{given.id}`"
        aliases = sorted(a for a in reads & set(table[cls]) if (holder, a) not in set_here)
        # the hf_config's alias set from its target before the statement that builds the class: the value
        # transformers 5's attribute_map returns for every read of it (the pinned longcat_flash_mtp.py does this
        # itself). An annotated config stays a finding (the rewrite above turns its alias stores into target
        # stores), as do a "manual" alias (the pinned field means something else) and a compound statement
        stmt = m.enclosing(call, ast.stmt)
        plain = [a for a in aliases if not table[cls][a].get("manual")]
        source = None
        if given is None and plain and isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.Expr, ast.Return)):
            source = "".join(f"{holder}.{a} = {holder}.{table[cls][a]['target']}\n" for a in plain) + ast.unparse(stmt)
        for alias in aliases:
            target = table[cls][alias]["target"]
            done = source is not None and alias in plain
            m.add("P40", call, f"`{sym.name}(...)`: the pinned {sym.qualname} ({where}) reads `config.{alias}` of "
                  f"the config it is given, here {via}, the pinned transformers' {cls}, which has no `{alias}` "
                  f"(transformers 5's {cls} reads it as `{target}` through its attribute_map), so the model fails "
                  "with AttributeError when it is built; the rewrite of this file does not reach pinned code",
                  fix=(f"`{holder}.{alias} = {holder}.{target}` before the statement: every read of the alias then "
                       "gets the value transformers 5 returns for it" if done else
                       f"give {sym.name} a config where `{alias}` resolves: set it from `{target}` on that config "
                       "first (the value transformers 5 returns for the alias), or subclass it to read the target"),
                  data={"config_class": cls, "attr": alias, "target": target, "manual": not done,
                        "pinned_class": sym.qualname, "where": where,
                        **({"source": source, "stmt_line": stmt.lineno} if done else {})})


def propose_edits(f, edits: Edits) -> None:
    """P27: the inner model's load_weights, the outer call without its mapper; P28, P43: the pinned code;
    P36: the legacy layer-kind name; P39: the read with transformers 5's default; P40: the aliased field."""
    d = f.data
    if f.rule == "P27" and d.get("source") and d.get("mapper_line"):
        edits.add_methods[(d["inner"], "load_weights")] = ("P27", d["source"])
        edits.drop_kwargs[(d["mapper_line"], "mapper")] = "P27"
    elif f.rule == "P28" and d.get("source") and d.get("stmt_line"):
        edits.replace_statements[d["stmt_line"]] = ("P28", d["source"])
    elif f.rule == "P43" and d.get("source") and d.get("stmt_line"):
        edits.replace_statements[d["stmt_line"]] = ("P43", d["source"])
        for module, name in d.get("imports", ()):
            edits.add_imports[(module, name)] = "P43"
    elif f.rule == "P45" and d.get("source") and d.get("stmt_line"):
        edits.replace_statements[d["stmt_line"]] = ("P45", d["source"])
        for module, name in d.get("imports", ()):
            edits.add_imports[(module, name)] = "P45"
    elif f.rule == "P36":
        edits.replace_strings[(f.line, d["value"])] = ("P36", d["legacy"])
    elif f.rule == "P46":
        edits.replace_strings[(f.line, d["value"])] = ("P46", d["pinned"])
    elif f.rule == "P39":
        edits.attr_defaults[(f.line, d["attr"])] = ("P39", d["default"])
    elif f.rule == "P40" and d.get("stmt_line") and not d.get("manual"):
        edits.replace_statements[d["stmt_line"]] = ("P40", d["source"])
    elif f.rule == "P40" and not d.get("manual"):
        edits.attr_aliases[(f.line, d["holder"], d["attr"])] = ("P40", d["target"])


# -- P41 -------------------------------------------------------------------------------------------

AUTO_FACTORIES = ("from_config", "_from_config")
PLUGIN_CONFIGS = "vllm_fl.configs."
# where P41's fix vendors transformers 5's modelling (migrate/tf5_modules.vendored_module_for of a modeling_ module)
TF5_MODELING_PREFIX = "vllm_fl.processors.tf5_modeling_"


def _outside_pinned_configs(m: ModuleFacts) -> list[tuple[str, str]]:
    """(class, module) of the config classes the file imports that the pinned stack lacks: a plugin config
    bridge (P2 writes them there), or a transformers / vLLM config class the pinned index does not have."""
    out = []
    for b in m.bindings:
        if not b.name or not b.name.endswith("Config") or b.level or b.type_checking:
            continue
        top = b.module.split(".")[0]
        if b.module.startswith(PLUGIN_CONFIGS) or (
                (top == "transformers" or b.module.startswith("vllm.transformers_utils.config"))
                and m.apis.resolve(b.module, b.name) is None):
            out.append((b.name, b.module))
    return out


def check_auto_from_bridged_config(m: ModuleFacts) -> None:
    auto = {b.alias: b.name for b in m.bindings
            if b.name and b.name.startswith("Auto") and b.module.split(".")[0] == "transformers"}
    if not auto:
        return
    bridged = _outside_pinned_configs(m)
    # the file imports towers vendored from transformers 5's modelling (the fix below): importing them registers
    # each with the Auto class for its bridged config (all of the file's calls are fixed at once, or none is)
    if not bridged or any(b.module.startswith(TF5_MODELING_PREFIX) for b in m.bindings):
        return
    names = ", ".join(f"{c} ({mod})" for c, mod in bridged)
    index = m.apis.index_for("transformers")
    version = index.version if index is not None else "pinned"
    for node in m.of_type(ast.Call):
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr in AUTO_FACTORIES
                and isinstance(func.value, ast.Name) and func.value.id in auto):
            continue
        m.add("P41", node, f"`{auto[func.value.id]}.{func.attr}(...)` picks the model class by the config's class; "
              f"the config classes this file uses are not transformers {version}'s "
              f"({names}), so its auto mappings have no model for them and the call raises "
              "'Unrecognized configuration class' when the model is built",
              fix="build the tower the way the pinned vLLM builds it (a vLLM module for it), or vendor the "
                  "transformers 5 modeling and build it directly",
              severity="error", data={"factory": auto[func.value.id], "configs": [c for c, _ in bridged],
                                      "config_attr": _config_attr(m, node)})


def _config_attr(m: ModuleFacts, call: ast.Call) -> str | None:
    """``vision_config`` of ``AutoModel.from_config(config=config.vision_config)``: the sub-config read; also through
    a local the function binds once from it (diffusion_gemma: ``vision_config = getattr(config, "vision_config",
    None)``, then ``config=vision_config``)."""
    arg = next((k.value for k in call.keywords if k.arg == "config"), call.args[0] if call.args else None)
    if isinstance(arg, ast.Name):
        arg = _bound_once(m, call, arg.id)
    if (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "getattr"
            and len(arg.args) >= 2 and isinstance(arg.args[1], ast.Constant) and isinstance(arg.args[1].value, str)):
        return arg.args[1].value
    return arg.attr if isinstance(arg, ast.Attribute) else None


def _bound_once(m: ModuleFacts, node: ast.AST, name: str) -> ast.expr | None:
    """The value a function's only binding of local ``name`` assigns (None: a parameter, rebound, or bound
    another way: a loop, a with, a walrus)."""
    scope = m.enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    if scope is None or name in {a.arg for a in scope.args.posonlyargs + scope.args.args + scope.args.kwonlyargs}:
        return None
    values = []
    for sub in m.below(scope, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.With, ast.NamedExpr):
        targets = (sub.targets if isinstance(sub, ast.Assign)
                   else [i.optional_vars for i in sub.items if i.optional_vars] if isinstance(sub, ast.With)
                   else [sub.target])
        stores = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        if name not in stores:
            continue
        if not (isinstance(sub, ast.Assign) and len(sub.targets) == 1 and isinstance(sub.targets[0], ast.Name)):
            return None
        values.append(sub.value)
    return values[0] if len(values) == 1 else None
