"""The analysis of one file: parse once, build the shared per-module facts, run every check.

``analyze_source(text, ctx)`` is the engine behind ``validate_migration.py`` and the migration
planner: it never imports anything and never raises on bad code (an unparsable file is a P20
finding). Every answer that the index cannot give for sure (unknown bases, lazy modules, callees
outside the indexed packages, dynamic code) produces no finding: the plugin's migrated files ran
in production on the pinned vLLM, so a false alarm costs more than a miss here.

The checks live by concern next to this module (``imports``, ``removed``, ``calls``, ``members``,
``structure``, ``bridges``), each with the edits its findings propose; ``CHECKS`` is the order they
run in. The migration engine makes no finding of its own: what it rewrites, the validator reports.
"""

from __future__ import annotations

import ast
import warnings

from flagos_migrate.analysis import (
    calls,
    classattrs,
    env_vars,
    framework,
    imports,
    inherited,
    members,
    removed,
    routed_experts,
    structure,
    torch_apis,
    weights,
)
from flagos_migrate.analysis.facts import AnalysisContext, ModuleFacts
from flagos_migrate.astutil import ImportBinding, Usage, Walk, import_bindings, name_usage
from flagos_migrate.catalog.findings import Finding
from flagos_migrate.pinned.api_index import Symbol
from flagos_migrate.pinned.index_builder import custom_op_names

# every check of one file, in order; a check may read the findings of those before it
CHECKS = (
    imports.check_imports,
    imports.check_module_attributes,
    env_vars.check_env_lookups,
    imports.check_backport_imports,
    imports.check_backport_caveats,
    removed.check_removed_apis,
    torch_apis.check_torch_apis,
    calls.check_calls,
    members.check_methods,
    members.check_loader_children,
    members.check_mark_contexts,
    members.check_config_attributes,
    members.check_attr_renames,
    members.check_class_members,
    classattrs.check_none_class_attributes,
    classattrs.check_frozen_module_state,
    inherited.check_inherited_defaults,
    inherited.check_dead_hooks,
    inherited.check_base_hooks,
    inherited.check_runner_flags,
    inherited.check_hook_ports,
    inherited.check_override_signatures,
    inherited.check_signature_ports,
    inherited.check_override_forms,
    inherited.check_tower_skipping,
    framework.check_pooling_inner_load,
    framework.check_rope_layer_types,
    framework.check_counterpart_statements,
    framework.check_configs_built_in_file,
    framework.check_replaced_config_classes,
    framework.check_legacy_layer_types,
    framework.check_pinned_model_types,
    framework.check_added_config_fields,
    framework.check_attribute_aliases,
    framework.check_base_config_defaults,
    framework.check_routed_layout_siblings,
    framework.check_auto_from_bridged_config,
    structure.check_custom_ops,
    structure.check_incomplete_init,
    structure.check_merged_projections,
    structure.check_config_bridges,
    structure.check_cleanliness,
    weights.check_tuple_shard_ids,
    weights.check_gguf_handling,
    routed_experts.check_routed_expert_names,
)

import_blockers = imports.import_blockers


def parse_text(text: str | bytes, path: str) -> tuple[ast.Module | None, Finding | None]:
    """The tree, or a P20 finding saying why there is none."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, Finding("P20", path, 1, 0, f"file is not UTF-8 ({exc.reason} at byte {exc.start})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(text, filename=path), None
        except SyntaxError as exc:
            return None, Finding("P20", path, exc.lineno or 1, max(0, (exc.offset or 1) - 1), f"syntax error: {exc.msg}")
        except ValueError as exc:  # null bytes
            return None, Finding("P20", path, 1, 0, f"cannot parse: {exc}")


def analyze_tree(tree: ast.Module, ctx: AnalysisContext, source: str | None = None,
                 walked: Walk | None = None) -> list[Finding]:
    facts = ModuleFacts(tree, ctx, walked)
    facts.source = source  # comments some checks read (P26), when the caller has the text
    for check in CHECKS:
        check(facts)
    return facts.findings


def analyze_source(text: str | bytes, ctx: AnalysisContext, tree: ast.Module | None = None,
                   walked: Walk | None = None) -> list[Finding]:
    """All findings for one file; never raises on bad code (P20 instead). ``tree``: ``text`` parsed
    already, ``walked``: ``Walk(tree)`` (the validator parses and walks each file once for the index
    and every check)."""
    if tree is None:
        walked = None  # a walk belongs to the tree it was made of
        tree, err = parse_text(text, ctx.path)
        if tree is None:
            return [err]
    try:
        findings = analyze_tree(tree, ctx, text if isinstance(text, str) else text.decode("utf-8", "replace"), walked)
    except RecursionError:
        return [Finding("P20", ctx.path, 1, 0, "file too deeply nested to analyse", severity="warning")]
    except Exception as exc:  # a bug of ours must not hide the other files' results
        return [Finding("P20", ctx.path, 1, 0, f"internal error of the analysis ({type(exc).__name__}: {exc}); "
                        "this file was not checked", severity="warning", data={"internal_error": True})]
    uniq = {}
    for f in findings:
        uniq.setdefault((f.rule, f.line, f.col, f.message), f)
    return sorted(uniq.values(), key=lambda f: (f.line, f.col, f.rule))


__all__ = ["AnalysisContext", "ImportBinding", "Usage", "analyze_source", "analyze_tree", "custom_op_names",
           "import_bindings", "import_blockers", "name_usage", "parse_text", "Symbol"]
