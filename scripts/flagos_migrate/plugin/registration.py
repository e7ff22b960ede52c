"""Add a model's registration to ``vllm_fl/__init__.py`` (rule P10), touching nothing else.

The edit appends one guarded ``try``/``except`` block per config bridge and per model at the end
of ``register_model()``, as the plugin does by hand, so that one broken model never stops the
others. Existing blocks, comments and their order stay byte for byte; what is already
registered (also through an in-tree override ``vllm.model_executor.models.x.Cls = ...``) is
not registered again, and a conflicting registration is reported instead of changed.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field

import libcst as cst

from flagos_migrate import names
from flagos_migrate.catalog.tables import PINNED_HOOK_DIFFERS
from flagos_migrate.cli import UsageError
from flagos_migrate.migrate.rewrite_imports import binds_at_top
from flagos_migrate.plugin.tree import RegistrationFile, parse_registrations


@dataclass
class RegistrationPlan:
    text: str  # the new __init__.py text (unchanged when nothing to add)
    added: list[str] = field(default_factory=list)  # human-readable lines
    present: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def _function_binds(fn: cst.FunctionDef, name: str) -> bool:
    """True when an import directly in the function body binds ``name`` before any block runs."""
    tree = ast.parse(cst.Module([]).code_for_node(fn))
    for stmt in tree.body[0].body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == name for a in stmt.names):
                return True
    return False


# Every value below comes from input (config.json, upstream source): strings are written as
# escaped literals, comments keep printable characters only, and names that become code
# (imported module, class) must be plain identifiers, so nothing read can become a statement.


def _literal(text: str) -> str:
    """A double-quoted Python string literal of ``text`` (JSON escapes are valid Python escapes)."""
    return json.dumps(text)


def _comment(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:200]


def _code_name(value: str, what: str, dotted: bool = False) -> str:
    if not (names.is_dotted(value) if dotted else names.is_identifier(value)):
        raise UsageError(f"refusing to register {what} {value!r:.100}: not a Python "
                         f"{'module path' if dotted else 'identifier'}",
                         hint="the name came from config.json or upstream source; check that input")
    return value


def _error_call(has_logger: bool, what: str) -> str:
    message = _literal(f"Failed to register {what}: %s")
    if has_logger:
        return f"logger.error({message}, e)"
    return f'__import__("logging").getLogger(__name__).error({message}, e)'


def config_block(display: str, model_type: str, cls: str, module: str, has_logger: bool) -> str:
    cls, module = _code_name(cls, "config class"), _code_name(module, "module", dotted=True)
    return (
        f"# {_comment(display)} config bridge (transformers of the pinned vLLM lacks model_type "
        f"{_comment(repr(model_type))})\n"
        "try:\n"
        "    from vllm.transformers_utils.config import _CONFIG_REGISTRY\n"
        f"    from {module} import {cls}\n\n"
        f"    _CONFIG_REGISTRY[{_literal(model_type)}] = {cls}\n"
        "except Exception as e:\n"
        f"    {_error_call(has_logger, display + ' config')}\n"
    )


def hook_block(display: str, arch: str, cls: str, module: str, has_logger: bool) -> str:
    cls, module = _code_name(cls, "config hook class"), _code_name(module, "module", dotted=True)
    # P25 pinned_hook_differs: the plugin's entry replaces a pinned one of the same name that does otherwise
    pinned = "the pinned map's does otherwise" if arch in PINNED_HOOK_DIFFERS else "the pinned map lacks it"
    # named by the hook's architecture, not the model's display name (a multi-architecture model's first: jina's
    # JinaForRanking hook was announced as JinaEmbeddingsV5Model's)
    return (
        f"# {_comment(arch)} config hook (upstream's MODELS_CONFIG_MAP entry; {pinned})\n"
        "try:\n"
        "    from vllm.model_executor.models.config import MODELS_CONFIG_MAP\n"
        f"    from {module} import {cls}\n\n"
        f"    MODELS_CONFIG_MAP[{_literal(arch)}] = {cls}\n"
        "except Exception as e:\n"
        f"    {_error_call(has_logger, arch + ' config hook')}\n"
    )


def model_block(display: str, pairs: list[tuple[str, str]], module: str, has_logger: bool,
                import_registry: bool) -> str:
    """``pairs``: (architecture, class), or (architecture, class, module) for a sibling's class."""
    lines = [f"# {_comment(display)} model\n", "try:\n"]
    if import_registry:
        lines.append("    from vllm import ModelRegistry\n\n")
    for arch, cls, *own in pairs:
        where = _code_name(own[0] if own else module, "module", dotted=True)
        target = f"{where}:{_code_name(cls, 'model class')}"
        lines.append(f"    ModelRegistry.register_model({_literal(arch)}, {_literal(target)})\n")
    lines += ["except Exception as e:\n", f"    {_error_call(has_logger, display + ' model')}\n"]
    return "".join(lines)


def _covered_by_override(reg: RegistrationFile, module: str, cls: str) -> bool:
    return any(o.target.endswith("." + cls) and o.value.split(":")[0] in (module, f"{module}.{cls}")
               for o in reg.overrides) or any(o.value == f"{module}:{cls}" for o in reg.overrides)


def plan_registration(init_text: str, init_path, display: str, model_module: str,
                      archs: list[tuple[str, str]], configs: list[tuple[str, str, str]],
                      hooks: list[tuple[str, str, str]] = ()) -> RegistrationPlan:
    """The edited ``__init__.py``; ``archs`` = [(architecture, class)] of ``model_module``, or (architecture,
    class, module) for a sibling's class the model builds by name; ``configs`` = [(type, class, module)],
    ``hooks`` = [(architecture, config hook class, module)] (upstream's MODELS_CONFIG_MAP entries, P25)."""
    reg = parse_registrations(init_path)
    if reg.parse_error:
        raise ValueError(f"{init_path}: {reg.parse_error}")
    plan = RegistrationPlan(init_text)
    known_models = {m.arch: m for m in reg.models}
    known_configs = {c.model_type: c for c in reg.configs}
    todo_configs = []
    for model_type, cls, module in configs:
        have = known_configs.get(model_type)
        if have is None:
            todo_configs.append((model_type, cls, module))
            plan.added.append(f'_CONFIG_REGISTRY["{model_type}"] = {module}.{cls}')
        elif have.cls == cls and have.module in (module, None):
            plan.present.append(f"config {model_type} -> {cls} (line {have.line})")
        else:
            plan.conflicts.append(f"config {model_type} is already registered to {have.module}.{have.cls} "
                                  f"(line {have.line}); left unchanged")
    todo_models = []
    for arch, cls, *own in archs:
        module = own[0] if own else model_module
        have = known_models.get(arch)
        if have is None:
            if _covered_by_override(reg, module, cls):
                plan.present.append(f"{arch} (in-tree override of {cls})")
                continue
            todo_models.append((arch, cls, module))
            plan.added.append(f"{arch} -> {module}:{cls}")
        elif have.module == module and have.cls == cls:
            plan.present.append(f"{arch} -> {module}:{cls} (line {have.line})")
        else:
            plan.conflicts.append(f"{arch} is already registered to {have.raw} (line {have.line}); left unchanged")
    todo_hooks = []
    for arch, cls, module in hooks:
        if arch in reg.config_hooks:
            plan.present.append(f"config hook {arch}")
            continue
        todo_hooks.append((arch, cls, module))
        plan.added.append(f'MODELS_CONFIG_MAP["{arch}"] = {module}.{cls}')
    if not todo_configs and not todo_models and not todo_hooks:
        return plan
    plan.text = _insert_blocks(init_text, display, model_module, todo_configs, todo_models, todo_hooks)
    return plan


def _insert_blocks(text: str, display: str, model_module: str, configs, models, hooks=()) -> str:
    module = cst.parse_module(text)
    has_logger = binds_at_top(module, "logger", assignments=True)
    fn_index = next((i for i, s in enumerate(module.body)
                     if isinstance(s, cst.FunctionDef) and s.name.value == "register_model"), None)
    if fn_index is None:
        body_src = "".join(config_block(display, *c, has_logger) for c in configs)
        body_src += "".join(hook_block(display, *h, has_logger) for h in hooks)
        body_src += model_block(display, models, model_module, has_logger, True) if models else ""
        indented = "".join(("    " + ln if ln.strip() else ln) for ln in body_src.splitlines(keepends=True))
        sep = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return f"{text}{sep}\n\ndef register_model():\n{indented}".replace("\n\n\n\n", "\n\n\n")
    fn: cst.FunctionDef = module.body[fn_index]
    import_registry = not _function_binds(fn, "ModelRegistry") and not binds_at_top(module, "ModelRegistry", assignments=True)
    src = "".join(config_block(display, *c, has_logger) for c in configs)
    src += "".join(hook_block(display, *h, has_logger) for h in hooks)
    if models:
        src += model_block(display, models, model_module, has_logger, import_registry)
    # parsed as a function body so that each block keeps its leading comment
    wrapper = "def _():\n" + "".join(("    " + ln if ln.strip() else ln) for ln in src.splitlines(keepends=True))
    new_stmts = list(cst.parse_module(wrapper).body[0].body.body)
    if new_stmts:
        new_stmts[0] = new_stmts[0].with_changes(
            leading_lines=[cst.EmptyLine(indent=False), *new_stmts[0].leading_lines])
    if not isinstance(fn.body, cst.IndentedBlock):
        raise ValueError("register_model() is written on one line; expand it before migrating")
    body = list(fn.body.body)
    pos = len(body)
    if body and isinstance(body[-1], cst.SimpleStatementLine) and isinstance(body[-1].body[0], cst.Return):
        pos -= 1  # keep a final return last
    body[pos:pos] = new_stmts
    fn = fn.with_changes(body=fn.body.with_changes(body=body))
    return module.with_changes(body=[*module.body[:fn_index], fn, *module.body[fn_index + 1 :]]).code
