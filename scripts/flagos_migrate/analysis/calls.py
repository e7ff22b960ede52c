"""Calls the pinned signature rejects (P6 unknown keywords, P7 arity) and the keyword edits they
propose: safe drops and renames from the tables below, back-ports (P22) for keywords that carry
behaviour.
"""

from __future__ import annotations

import ast

from flagos_migrate.analysis.facts import ModuleFacts
from flagos_migrate.analysis.signatures import callee, render_signature
from flagos_migrate.astutil import context_flags, parse_source, signature_of
from flagos_migrate.catalog.findings import Finding
from flagos_migrate.catalog.tables import (
    BEHAVIOUR_NEEDS,
    BEHAVIOUR_PASS,
    CALLEE_RENAMES,
    CONFIG_DEFAULTS,
    FORWARDED_REJECTS,
    KWARG_RENAMES,
    NESTED_KEYWORDS,
    NESTED_SIGNATURES,
    OVERRIDE_FORMS,
    REQUIRED_VALUE_IMPORTS,
    REQUIRED_VALUES,
    SAFE_DROP_KWARG_NAMES,
    SAFE_DROP_KWARGS,
    SAFE_DROP_WHEN,
)
from flagos_migrate.migrate import backports
from flagos_migrate.migrate.edits import Edits


def check_calls(m: ModuleFacts) -> None:
    compiled = _compiled_classes(m)
    for node in m.of_type(ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id in compiled:
            _judge_compiled_call(m, node, compiled[node.func.id])
        elif isinstance(node.func, ast.Attribute):
            _judge_nested_call(m, node)
        found = callee(m, node)
        if found is None:
            continue
        shown, sig, skip = found
        _judge_call(m, node, shown, sig, skip)


def _judge_nested_call(m, call: ast.Call) -> None:
    """P6 on ``Pinned.Nested(kw=...)``: the index knows only the nested class's name; the table its parameters."""
    owner = m.resolve_expr(call.func.value)
    if owner is None or owner.kind != "class":
        return
    qual = f"{owner.module}.{owner.name}.{call.func.attr}"
    params = NESTED_SIGNATURES.get(m.apis.version, {}).get(qual)
    if params is None:
        return
    for k in call.keywords:
        if k.arg is not None and k.arg not in params:
            note = NESTED_KEYWORDS.get(m.apis.version, {}).get(f"{qual}.{k.arg}") or {}
            why = f": {' '.join(note['why'].split())}" if note.get("why") else ""
            fix = f"{' '.join(note['fix'].split())}; " if note.get("fix") else "adapt the call; "
            m.add("P6", call, f"`{owner.name}.{call.func.attr}()` does not accept keyword `{k.arg}` on the pinned "
                  f"version{why}", fix=f"{fix}pinned parameters: {qual}({', '.join(params)})",
                  data={"callee": qual, "kwarg": k.arg, "signature": f"({', '.join(params)})"})


_COMPILE_DECORATOR = ("vllm.compilation.decorators", "support_torch_compile")


def _compiled_classes(m: ModuleFacts) -> dict[str, ast.ClassDef]:
    """Local classes decorated with the pinned ``support_torch_compile``: its ``__init__`` wrapper takes keywords
    only (``*, vllm_config, prefix, **kwargs``), upstream's takes ``*args`` too and hands them on."""
    names = {b.alias for b in m.module_bindings.values() if (b.module, b.name) == _COMPILE_DECORATOR}
    out = {}
    for name, cls in m.local_classes.items():
        for dec in cls.decorator_list:
            f = dec.func if isinstance(dec, ast.Call) else dec
            if isinstance(f, ast.Name) and f.id in names:
                out[name] = cls
    return out


def _judge_compiled_call(m, call: ast.Call, cls: ast.ClassDef) -> None:
    """P7: positional arguments to a class the pinned ``support_torch_compile`` wraps (paddleocr_vl's
    ``SiglipEncoderLayer(config, ...)``) raise TypeError when it is built; they pass as keywords by the class's own
    ``__init__`` parameter names."""
    pos = [a for a in call.args if not isinstance(a, ast.Starred)]
    if not pos or len(pos) != len(call.args):
        return
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    args = (init.args.posonlyargs + init.args.args)[1:] if init is not None else []
    params = [a.arg for a in args]
    names = params[:len(pos)] if len(params) >= len(pos) else []
    # upstream's wrapper binds the positionals in order (old_init(self, *args, **kwargs)), so by name they bind
    # alike; before that it checks isinstance(arg, annotation) zipping them with old_init's parameters from
    # `self` on, so the i-th positional against parameter i-1: vacuous when those are unannotated (always for
    # one positional). Then only keywords the call does not pass, none positional-only.
    passed = {k.arg for k in call.keywords}
    settled = bool(names) and not passed & set(names) and len(pos) <= len(args) \
        and all(a.annotation is None for a in args[:len(pos) - 1]) and len(init.args.posonlyargs) <= 1
    m.add("P7", call, f"`{cls.name}()` is decorated with the pinned support_torch_compile, whose __init__ takes "
          f"keyword arguments only (upstream's takes *args too): {len(pos)} positional given, TypeError when it is built",
          fix=(f"apply passes them as keywords: {', '.join(f'{n}=...' for n in names)} (bound as upstream's "
               "wrapper binds them)" if settled else
               f"pass them as keywords: {', '.join(f'{n}=...' for n in names)}" if names else
               "pass them as keywords of the class's __init__"),
          data={"callee": cls.name, "problem": "keyword-only-compile", "given": len(pos), "names": names,
                **({"keywords_for_positionals": names} if settled else {})})


def _judge_call(m, call: ast.Call, shown: str, sig: dict, skip: int) -> None:
    star = any(isinstance(a, ast.Starred) for a in call.args)
    kwstar = any(k.arg is None for k in call.keywords)
    n_pos = len(call.args) - skip
    params = sig["p"]
    posonly = sig.get("po", 0)
    kw_names = [k.arg for k in call.keywords if k.arg is not None]
    rendered = render_signature(sig)
    flags = context_flags(call, m.parents)
    import_time = not (flags["function_level"] or flags["guarded"] or flags["conditional"])
    base = {"callee": shown, "signature": rendered, "import_time": import_time}
    if not star and not sig.get("a") and not sig.get("dc") and n_pos > len(params):
        renamed = CALLEE_RENAMES.get((_callee_name(shown), n_pos)) if isinstance(call.func, ast.Attribute) else None
        if renamed and not call.keywords and _has_method(m, shown, renamed[0]):
            fix = f"call `{renamed[0]}` of the same pinned class instead: upstream's {renamed[1]}"
            extra = {"rename_callee": renamed[0]}
        else:
            fix, extra = f"pinned signature: {shown}{rendered}", {}
        m.add("P7", call, f"`{shown}()` takes {len(params)} positional argument(s) on the pinned version, "
              f"{n_pos} given", fix=fix, data={**base, "problem": "too-many-positional", "given": n_pos, **extra})
    accepted = set(params[posonly:]) | set(sig["k"])
    forwarded = {k.arg: FORWARDED_REJECTS.get((_callee_name(shown), k.arg)) for k in call.keywords if k.arg is not None}
    rejected = [k for k in call.keywords if k.arg is not None and k.arg not in accepted
                and (not sig.get("kw") or forwarded[k.arg])]
    dropped = {k.arg for k in rejected if _safe_drop(shown, k.arg, kw_names, k.value)
               or _forwarded_safe_drop(m, call, shown, k, kw_names)}
    for k in rejected:
        safe = k.arg in dropped
        bp = backports.for_keyword(shown, k.arg)
        rename = None if safe else _kwarg_rename(shown, k.arg, kw_names, accepted, dropped)
        extra: dict = {}
        if bp is not None:
            fix = (f"`migrate_model.py apply` installs the back-port {bp.module} (P22: {bp.what}) and "
                   "imports the class from there")
            extra["backport"] = bp.module
        elif rename is not None:
            fix = f"the pinned keyword is `{rename}=`: `{k.arg}=` becomes `{rename}=`"
            extra["rename_to"] = rename
        elif forwarded[k.arg]:
            fix = f"adapt the call: the pinned `{shown}` takes `{k.arg}=` only into {forwarded[k.arg]}"
        else:
            fix = f"drop `{k.arg}=` (an optional refinement)" if safe else f"adapt the call; pinned signature: {shown}{rendered}"
        m.add("P6", k.value, f"`{shown}()` does not accept keyword `{k.arg}` on the pinned version",
              line=getattr(k, "lineno", call.lineno), col=getattr(k, "col_offset", call.col_offset),
              fix=fix,
              data={**base, "kwarg": k.arg, "safe_drop": safe, **extra})
    if star or kwstar:
        return
    if sig.get("dc"):
        required = list(sig.get("req", ()))
        missing = [p for p in required if p not in kw_names and params.index(p) >= n_pos]
    else:
        missing = [p for i, p in enumerate(params[: sig["r"]]) if i >= n_pos and (p not in kw_names or i < posonly)]
        missing += [p for p in sig["kr"] if p not in kw_names]
    if missing:
        values = _required_values(m, shown, missing, set(sig["kr"]) | set(params[posonly:]))
        if values:
            fix = (f"pass {', '.join(f'`{k}={v}`' for k, v in values.items())}: upstream "
                   + "; ".join(REQUIRED_VALUES[(_callee_name(shown), k)][2] for k in values))
        else:
            fix = f"pinned signature: {shown}{rendered}"
        imports = [REQUIRED_VALUE_IMPORTS[key] for k in values if (key := (_callee_name(shown), k))
                   in REQUIRED_VALUE_IMPORTS]
        m.add("P7", call, f"`{shown}()` misses required argument(s) {', '.join(missing)} on the pinned version",
              fix=fix, data={**base, "problem": "missing-required", "missing": missing,
                             **({"add_kwargs": values} if values else {}),
                             **({"add_imports": imports} if imports else {})})
    _config_defaults(m, call, shown, sig, skip, base)
    last = _callee_name(shown)
    for (name, kwarg), upstream in BEHAVIOUR_NEEDS.items():
        if name != last or kwarg in kw_names or kwarg not in accepted:
            continue
        if kwarg in params and params.index(kwarg) < n_pos:
            continue  # passed by position
        passed = BEHAVIOUR_PASS.get((name, kwarg))
        m.add("P7", call, f"`{shown}()` without `{kwarg}=` behaves differently on the pinned version: upstream "
              f"{upstream}; the pinned one uses only what it is given", severity="warning",
              fix=(f"apply passes `{kwarg}={passed[0]}` (upstream's own reader of the current config)" if passed else
                   f"pass `{kwarg}=` as the pinned vLLM's own models do; pinned signature: {shown}{rendered}"),
              data={**base, "problem": "behaviour-needs", "missing": [kwarg],
                    **({"pass": [kwarg, passed[0], *passed[1]]} if passed else {})})


CONFIG_DEFAULTS_MODULE = "vllm_fl.compat.config_defaults"
CONFIG_DEFAULTS_FUNC = "with_config_defaults"


def _config_defaults(m, call: ast.Call, shown: str, sig: dict, skip: int, base: dict) -> None:
    """P7 ``config_defaults``: a pinned class that reads config fields unguarded where upstream's falls
    back to a default gets its config argument through ``with_config_defaults`` (unless it already does)."""
    if not shown.startswith("vllm."):
        return  # the plugin's own copy of the class is upstream's, which has the fallback
    params = sig["p"]
    for param, defaults in CONFIG_DEFAULTS.get(_callee_name(shown), ()):
        index = params.index(param) - skip if param in params else None
        value = next((k.value for k in call.keywords if k.arg == param), None)
        where: int | str = param
        if value is None and index is not None and 0 <= index < len(call.args):
            value, where = call.args[index], index
        if value is None or isinstance(value, ast.Starred):
            continue
        if (isinstance(value, ast.Call) and getattr(value.func, "id", None) == CONFIG_DEFAULTS_FUNC
                and set(defaults) <= {k.arg for k in value.keywords}):
            continue
        fields = ", ".join(f"{k}={v}" for k, v in defaults.items())
        m.add("P7", call, f"`{shown}()` reads {', '.join(f'{param}.{k}' for k in defaults)} unguarded on the pinned "
              f"version; upstream's falls back to {fields} when the config lacks it", severity="warning",
              fix=f"apply passes `{CONFIG_DEFAULTS_FUNC}({ast.unparse(value)}, {fields})` "
                  f"({CONFIG_DEFAULTS_MODULE}: the config itself, or a copy with the missing fields)",
              data={**base, "problem": "config-defaults", "wrap": [where, fields]})


def unsettled_keywords(call: ast.Call, shown: str, sig: dict) -> list[str]:
    """Keywords of ``call`` that the pinned signature rejects and that no P6 table settles (safe drop,
    rename, back-port): the call needs a callee that takes them."""
    if sig.get("kw"):
        return []
    accepted = set(sig["p"][sig.get("po", 0):]) | set(sig["k"])
    passed = [k.arg for k in call.keywords if k.arg is not None]
    rejected = [k for k in call.keywords if k.arg is not None and k.arg not in accepted]
    dropped = {k.arg for k in rejected if _safe_drop(shown, k.arg, passed, k.value)}
    return [k.arg for k in rejected if k.arg not in dropped and backports.for_keyword(shown, k.arg) is None
            and _kwarg_rename(shown, k.arg, passed, accepted, dropped) is None]


def init_takes(source: str, cls: str, keywords: list[str], method: str = "__init__") -> bool:
    """The class ``cls`` that ``source`` defines has an ``__init__`` (``method``) of its own that takes every
    keyword."""
    sig = _own_method_signature(source, cls, method)
    return sig is not None and (bool(sig.get("kw")) or set(keywords) <= set(sig["p"]) | set(sig["k"]))


def _own_method_signature(source: str, cls: str, method: str) -> dict | None:
    """The signature (self dropped) of the ``method`` the class ``cls`` of ``source`` defines itself, or None."""
    tree = parse_source(source, "<upstream>")
    for node in tree.body if tree is not None else ():
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for b in node.body:
                if isinstance(b, ast.FunctionDef) and b.name == method:
                    return signature_of(b.args, drop_first=True)
    return None


def pinned_class_rejects(apis, module: str, aliases: dict[str, str], tree: ast.Module,
                         upstream_source: str = "") -> bool:
    """A class the file imports from the pinned ``module`` (``aliases``: local name -> imported name) is
    called with a keyword its pinned ``__init__`` rejects and no P6 table settles (minicpmv4_6's
    ``Idefics2VisionTransformer(apply_encoder_attention_mask=True)``; qwen3_asr's
    ``Qwen3OmniMoeAudioEncoder(prefix=...)``, which the pinned module binds to transformers' encoder): the
    caller was written for upstream's class, so upstream's module (``upstream_source``, whose class must take
    those keywords) must come along. A local subclass that
    keeps the inherited ``__init__`` counts as the class (cosmos3_edge's ``Cosmos3EdgeTextModel(NemotronHModel)``
    built with ``decoder_layer_types=``), and so does a local subclass's own ``__init__`` handing keywords on
    through ``super().__init__(...)`` (qwen3_vl_moe's ``Qwen3MoeLLMModel(Qwen3MoeModel)`` passes
    ``decoder_layer_type=``, its decoder layer ``is_fused_checkpoint_transposed=``)."""
    aliases = dict(aliases)
    calls: list[tuple[ast.Call, str]] = []  # (call, imported class whose pinned __init__ it reaches)
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and len(node.bases) == 1 and isinstance(node.bases[0], ast.Name)
                and node.bases[0].id in aliases):
            continue
        init = next((b for b in node.body if isinstance(b, ast.FunctionDef) and b.name == "__init__"), None)
        if init is None:
            aliases[node.name] = aliases[node.bases[0].id]
            continue
        calls += [(c, aliases[node.bases[0].id]) for c in ast.walk(init)
                  if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "__init__"
                  and isinstance(c.func.value, ast.Call) and isinstance(c.func.value.func, ast.Name)
                  and c.func.value.func.id == "super" and not c.func.value.args]
    calls += [(c, aliases[c.func.id]) for c in ast.walk(tree)
              if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in aliases]
    for call, name in calls:
        sym = apis.resolve(module, name)
        sig = apis.init_signature(sym) if sym is not None and sym.kind == "class" else None
        unsettled = unsettled_keywords(call, f"{module}.{name}", sig) if sig is not None else []
        if unsettled and init_takes(upstream_source, name, unsettled):
            return True
        # more positional arguments than the pinned __init__ takes (P7; glm_ocr's GlmOcrVisionTransformer hands
        # (text_config, vision_config, norm_eps, quant_config, input_norm, prefix) to upstream's
        # Glm4vVisionTransformer, whose pinned one takes vision_config first and five in all)
        if sig is not None and _positional_overflow(call, sig) and init_positional(upstream_source, name) >= len(call.args):
            return True
    # a module built from the class and then called (``self.vision_model(..., position_ids=...)``, Idefics3 on
    # upstream's Idefics2VisionTransformer): its pinned forward must take the keywords too, and be satisfied
    # by the call (AliceAI's ``self.self_attn(hidden_states=, positions=)``: 0.13.0's Qwen3NextAttention.forward
    # also requires the ``output`` it writes into, upstream's returns it)
    for call, name in _module_calls(tree, aliases):
        sym = apis.resolve(module, name)
        sig = _forward_signature(apis, sym) if sym is not None and sym.kind == "class" else None
        unsettled = unsettled_keywords(call, f"{module}.{name}.forward", sig) if sig is not None else []
        if unsettled and init_takes(upstream_source, name, unsettled, "forward"):
            return True
        if sig is not None and unsupplied_required(call, sig) and init_takes(
                upstream_source, name, [k.arg for k in call.keywords if k.arg is not None], "forward"):
            return True
    return False


def _positional_overflow(call: ast.Call, sig: dict) -> bool:
    """``call`` passes more positional arguments than the pinned signature ``sig`` (self not in it) takes."""
    return (not any(isinstance(a, ast.Starred) for a in call.args) and not sig.get("a") and not sig.get("dc")
            and len(call.args) > len(sig["p"]))


def init_positional(source: str, cls: str, method: str = "__init__") -> int:
    """How many positional arguments the ``method`` of the class ``cls`` that ``source`` defines takes (self
    not counted; a large number for ``*args``); -1 when it defines none of its own."""
    sig = _own_method_signature(source, cls, method)
    if sig is None:
        return -1
    return 1 << 30 if sig.get("a") else len(sig["p"])


def unsupplied_required(call: ast.Call, sig: dict) -> list[str]:
    """Required parameters of the pinned signature ``sig`` (self not in it) that ``call`` passes neither by
    position nor by keyword; none when the call unpacks ``*args`` / ``**kwargs`` or the signature is a
    dataclass's."""
    if sig.get("dc") or any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return []
    passed = {k.arg for k in call.keywords}
    posonly = sig.get("po", 0)
    missing = [p for i, p in enumerate(sig["p"][: sig["r"]])
               if i >= len(call.args) and (p not in passed or i < posonly)]
    return missing + [p for p in sig["kr"] if p not in passed]


def _self_attr(node: ast.expr) -> str | None:
    return node.attr if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                         and node.value.id == "self") else None


def _module_calls(tree: ast.Module, aliases: dict[str, str]) -> list[tuple[ast.Call, str]]:
    """``self.X(...)`` calls in a class whose ``self.X`` is only ever built from one imported class."""
    out = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        built: dict[str, set[str]] = {}
        for sub in ast.walk(cls):
            if isinstance(sub, (ast.Assign, ast.AnnAssign)):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                for t in targets:
                    if (attr := _self_attr(t)) is not None:
                        v = sub.value
                        built.setdefault(attr, set()).add(
                            aliases[v.func.id] if isinstance(v, ast.Call) and isinstance(v.func, ast.Name)
                            and v.func.id in aliases else "")
        out += [(c, next(iter(built[a]))) for c in ast.walk(cls)
                if isinstance(c, ast.Call) and (a := _self_attr(c.func)) in built and len(built[a]) == 1
                and "" not in built[a]]
    return out


def _forward_signature(apis, sym) -> dict | None:
    """The pinned class's ``forward`` (the first in its MRO)."""
    classes, _ = apis.mro(sym)
    return next((rec["methods"]["forward"] for _, rec in classes if "forward" in rec["methods"]), None)


def _required_values(m, shown: str, missing: list[str], keywords: set[str]) -> dict[str, str]:
    """Every missing argument's value from the table, when each has one (else nothing: a partial
    call is still wrong) and the file reads none of the names that make upstream's choice stateful."""
    last = _callee_name(shown)
    out = {}
    for kw in missing:
        entry = REQUIRED_VALUES.get((last, kw))
        if entry is None or kw not in keywords or entry[1] & m.names_read:
            return {}
        out[kw] = entry[0]
    return out


def _has_method(m, shown: str, method: str) -> bool:
    """The pinned class of ``module.Class.method`` defines ``method`` too."""
    mod, _, cls = shown.rsplit(".", 1)[0].rpartition(".")
    sym = m.apis.resolve(mod, cls) if mod else None
    rec = m.apis.class_record(sym) if sym is not None else None
    return bool(rec) and method in rec.get("methods", {})


def _callee_name(callee: str) -> str:
    return callee.split(".")[-1] if not callee.endswith("__init__") else callee.split(".")[-2]


def _safe_drop(callee: str, kwarg: str, passed: list[str] = (), value: ast.expr | None = None) -> bool:
    last = _callee_name(callee)
    for (name, kw), safe in SAFE_DROP_KWARGS.items():
        if kw == kwarg and last == name:
            return safe
    condition = SAFE_DROP_WHEN.get((last, kwarg))
    if condition is not None:
        literal, partner, maker = condition
        value_ok = literal is None or (isinstance(value, ast.Constant) and value.value == literal)
        if maker is not None:  # the value must be built by that call (upstream's own factory)
            func = value.func if isinstance(value, ast.Call) else None
            value_ok = value_ok and maker in (getattr(func, "id", None), getattr(func, "attr", None))
        return value_ok and (partner is None or partner in passed)
    return kwarg in SAFE_DROP_KWARG_NAMES


def _forwarded_safe_drop(m, call: ast.Call, shown: str, k: ast.keyword, passed: list[str]) -> bool:
    """``super().__init__(kw=kw)`` forwarding a parameter of the local class's own ``__init__`` into its
    pinned base: safe to drop when the file builds that class at least once, every time passing a value
    the table settles for the pinned base (``input_norm=build_mm_input_norm(...)``), never reassigns the
    parameter, and never reads the attribute upstream's base would have stored (``.input_norm``)."""
    if shown != "super().__init__" or not isinstance(k.value, ast.Name) or k.value.id != k.arg:
        return False
    func = m.enclosing(call, (ast.FunctionDef, ast.AsyncFunctionDef))
    cls = m.enclosing_class(call)
    if func is None or cls is None or func.name != "__init__" or m.parents.get(func) is not cls:
        return False
    if k.arg not in {a.arg for a in func.args.args + func.args.kwonlyargs}:
        return False
    if any(isinstance(n, ast.Name) and n.id == k.arg and isinstance(n.ctx, ast.Store) for n in ast.walk(func)):
        return False
    if any(isinstance(n, ast.Attribute) and n.attr == k.arg and isinstance(n.ctx, ast.Load) for n in m.nodes):
        return False
    base = _pinned_init_owner(m, cls)
    sites = [c for c in m.of_type(ast.Call) if isinstance(c.func, ast.Name) and c.func.id == cls.name]
    values = []
    for site in sites:
        given = next((kw for kw in site.keywords if kw.arg == k.arg), None)
        if given is None or any(kw.arg is None for kw in site.keywords):
            return False  # the default (or an unknown **kwargs) is not what the table settles
        values.append(given.value)
    return bool(base and values) and all(_safe_drop(base, k.arg, passed, v) for v in values)


def _pinned_init_owner(m, cls: ast.ClassDef) -> str | None:
    """The pinned class whose ``__init__`` a local class's ``super().__init__`` reaches (None: a local one)."""
    for kind, obj in m.hierarchy.linearize(("local", cls))[1:]:
        if kind == "local":
            if any(isinstance(s, ast.FunctionDef) and s.name == "__init__" for s in obj.body):
                return None
        elif kind == "pinned":
            if "__init__" in obj[1]["methods"]:
                return obj[0].name
        else:
            return None
    return None


def _kwarg_rename(callee: str, kwarg: str, passed: list[str], accepted: set[str],
                  dropped: set[str] = frozenset()) -> str | None:
    """The pinned spelling of ``kwarg`` when the table has one and the call allows it."""
    entry = KWARG_RENAMES.get((_callee_name(callee), kwarg))
    if entry is None:
        return None
    new, exclusive = entry
    if new not in accepted or new in passed or exclusive & (set(passed) - dropped):
        return None
    return new


def propose_edits(f: Finding, edits: Edits) -> bool:
    """P6: drop a safe keyword or rename it as the table says; P7: add a required keyword with the
    table's value, or pass what the table says the pinned callable needs; False when the finding asks
    for more."""
    d = f.data
    if f.rule == "P7" and d.get("wrap"):
        where, fields = d["wrap"]
        edits.wrap_args[(f.line, where)] = ("P7", CONFIG_DEFAULTS_FUNC, fields)
        edits.add_imports[(CONFIG_DEFAULTS_MODULE, CONFIG_DEFAULTS_FUNC)] = "P7"
        return True
    if f.rule == "P7" and d.get("pass"):
        kwarg, value, module, name = d["pass"]
        edits.add_kwargs[(f.line, kwarg)] = ("P7", value)
        edits.add_imports[(module, name)] = "P7"
        return True
    if f.rule == "P6" and d.get("safe_drop") and d.get("kwarg"):
        edits.drop_kwargs[(f.line, d["kwarg"])] = "P6"
        return True
    if f.rule == "P6" and d.get("rename_to") and d.get("kwarg"):
        edits.rename_kwargs[(f.line, d["kwarg"], d["rename_to"])] = "P6"
        return True
    if f.rule == "P7" and d.get("rename_callee"):
        edits.rename_callees[(f.line, _callee_name(d["callee"]))] = ("P7", d["rename_callee"])
        return True
    if f.rule == "P6" and d.get("signature_port"):
        edits.remove_methods[(d["class"], d["method"])] = "P6"
        edits.add_methods[(d["class"], d["method"])] = ("P6", d["signature_port"])
        return True
    if f.rule == "P7" and d.get("problem") == "override-form":
        row = OVERRIDE_FORMS[d["override_form"]]
        edits.override_forms[(d["class"], d["method"])] = ("P7", row)
        edits.add_imports[tuple(row["import"])] = "P7"
        return True
    if f.rule == "P6" and d.get("override_keywords"):
        for kw, value in d["override_keywords"].items():
            edits.override_keywords[(d["class"], d["method"], kw)] = ("P6", value)
        return True
    if f.rule == "P7" and d.get("keywords_for_positionals"):
        edits.keyword_positionals[(f.line, d["callee"])] = ("P7", tuple(d["keywords_for_positionals"]))
        return True
    if f.rule == "P7" and d.get("add_kwargs"):
        for kw, value in d["add_kwargs"].items():
            edits.add_kwargs[(f.line, kw)] = ("P7", value)
            edits.add_kwargs_to[(f.line, kw)] = _callee_name(d["callee"])
        for module, name in d.get("add_imports", ()):
            edits.add_imports[(module, name)] = "P7"
        return True
    return False
