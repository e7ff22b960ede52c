"""The rule tables that detectors (``analysis``) and fixers (``migrate``) both read, in the shapes
they use. The data is in ``catalog.yaml``, with its rule: a table entry is changed there, once.
"""

from __future__ import annotations

import ast

from flagos_migrate.catalog.rules import BY_ID


def _table(rule: str, name: str):
    return BY_ID[rule].tables[name]


# P5: transformers 5 spellings -> the 4.57.6 name
TRANSFORMERS_RENAMES: dict[str, str] = dict(_table("P5", "renames"))
# P5: third-party names only the newer dependencies of transformers 5 have (vendored 5.x code needing one is not vendored)
NEWER_DEPENDENCIES: dict[str, str] = dict(_table("P5", "newer_dependencies"))
# P5: of those, the ones with a module the older stack imports for the same thing ("module:name" -> module)
DEPENDENCY_SUBSTITUTES: dict[str, str] = dict(_table("P5", "substitutes"))

# P2: model types whose released checkpoints name their own remote-code config, which upstream reads through
# AutoConfig and its model file is written for: no bridge is registered over it -> {why, evidence}
REMOTE_CONFIG_FIRST: dict[str, dict] = dict(_table("P2", "remote_config_first"))

# P3: upstream's environment variables the pinned vllm.envs lacks: name -> (parser, default string)
ENV_VARS: dict[str, tuple[str, str]] = {k: (v["parser"], str(v["default"])) for k, v in _table("P3", "env_vars").items()}

# P6: (callee, kwarg) -> safe to drop; keyword names safe to drop in any call; conditional drops
SAFE_DROP_KWARGS: dict[tuple[str, str], bool] = {(e["callee"], e["kwarg"]): False for e in _table("P6", "never_drop")}
SAFE_DROP_KWARG_NAMES = frozenset(_table("P6", "safe_drop"))
# (callee, keyword) -> where the pinned callee's **kwargs take it, though nothing there accepts it
FORWARDED_REJECTS: dict[tuple[str, str], str] = {(e["callee"], e["kwarg"]): e["into"] for e in _table("P6", "forwarded_rejects")}
SAFE_DROP_WHEN: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = {
    (e["callee"], e["kwarg"]): (e["value"], e["with"], e.get("value_call")) for e in _table("P6", "safe_drop_when")}
KWARG_RENAMES: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    (e["callee"], e["kwarg"]): (e["to"], frozenset(e.get("not_with", ()))) for e in _table("P6", "kwarg_renames")}

# P7: (callee, keyword) the pinned version needs for the behaviour upstream gets from the current config
BEHAVIOUR_NEEDS: dict[tuple[str, str], str] = {
    (e["callee"], e["kwarg"]): e["upstream"] for e in _table("P7", "behaviour_needs")}
# P7: (callee, required keyword) -> (the value that gives upstream's behaviour, names that make it depend
# on state: a file reading one of them keeps the finding, what upstream does)
REQUIRED_VALUES: dict[tuple[str, str], tuple[str, frozenset[str], str]] = {
    (e["callee"], e["kwarg"]): (e["value"], frozenset(e.get("unless", ())), e["upstream"])
    for e in _table("P7", "required_values")}
# P6: (pinned method qualname, keyword) -> the value upstream's override always builds for (Python source)
OVERRIDE_KEYWORDS: dict[tuple[str, str], str] = {
    (e["method"], e["kwarg"]): e["value"] for e in _table("P6", "override_keywords")}
# P6: pinned base methods whose pinned callers pass other parameters than upstream's (an override with upstream's raises)
SIGNATURE_PORTS: tuple[dict, ...] = tuple(_table("P6", "signature_ports"))
# P7: (callee, keyword) -> the (module, name) its table value needs imported
REQUIRED_VALUE_IMPORTS: dict[tuple[str, str], tuple[str, str]] = {
    (e["callee"], e["kwarg"]): tuple(e["import"]) for e in _table("P7", "required_values") if e.get("import")}

# P7: overrides in upstream's form of a framework method the pinned vLLM calls with other arguments
OVERRIDE_FORMS: tuple[dict, ...] = tuple(_table("P7", "override_forms"))
# P7: (callee, positional count) -> (the pinned method of the same class that does what upstream's does, why)
CALLEE_RENAMES: dict[tuple[str, int], tuple[str, str]] = {
    (e["callee"], int(e["positional"])): (e["to"], e["upstream"]) for e in _table("P7", "callee_renames")}
# ... and where the table says so, what apply passes: (callee, keyword) -> (value, (module, name) it needs)
BEHAVIOUR_PASS: dict[tuple[str, str], tuple[str, tuple[str, str]]] = {
    (e["callee"], e["kwarg"]): (e["pass"], tuple(e["pass_import"])) for e in _table("P7", "behaviour_needs")
    if e.get("pass")}

# P7: callee -> ((the parameter the config is passed as, {field: upstream's default as Python source}), ...):
# fields the pinned class reads unguarded where upstream's falls back to the default
CONFIG_DEFAULTS: dict[str, tuple[tuple[str, dict[str, str]], ...]] = {}
for _e in _table("P7", "config_defaults"):
    CONFIG_DEFAULTS.setdefault(_e["callee"], ())
    CONFIG_DEFAULTS[_e["callee"]] += ((_e["param"], dict(_e["defaults"])),)

# P3: upstream module prefix -> what the pinned vLLM lacks there (no rewrite or slice can stand in)
ABSENT_SUBSYSTEMS: dict[str, str] = dict(_table("P3", "absent_subsystems"))

# P13: (upstream module, class) -> the pinned (module, class) pairs it stands for in isinstance checks
ISINSTANCE_EQUIVALENTS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    (e["module"], e["class"]): tuple((m, c) for m, c in e["pinned"]) for e in _table("P13", "isinstance_equivalents")}

# P9: config variable -> vllm.config class (None: never judged); attribute renames with semantics:
# upstream attr -> (config variable, pinned attr, {(operator, literal): negate})
CONFIG_CLASSES: dict[str, str | None] = dict(_table("P9", "config_classes"))
CONFIG_VARIABLE_ONLY = frozenset(_table("P9", "variable_only"))
CONFIG_GETTERS: dict[str, str] = dict(_table("P9", "config_getters"))
# P9: pinned function (dotted) -> the dataclass of its module it returns
INSTANCE_GETTERS: dict[str, str] = dict(_table("P9", "instance_getters"))
# P9: (pinned base class, attribute path from self) -> the pinned class its __init__ stores there
INSTANCE_ATTRIBUTES: dict[tuple[str, str], str] = {
    (e["owner"], e["attr"]): e["class"] for e in _table("P9", "instance_attributes")}
# P9: (config class, attribute) -> (what a read means on the pinned config, as Python source; why)
UNSET_DEFAULTS: dict[tuple[str, str], tuple[str, str]] = {
    (e["class"], e["attr"]): (e["default"], e["why"]) for e in _table("P9", "unset_defaults")}
# (class, method) -> the pinned class (same module) its stand-in returns: a local bound once from it is one of those
# (class, attribute) -> (module, name) the default calls, imported into the file
UNSET_IMPORTS: dict[tuple[str, str], tuple[str, str]] = {
    (e["class"], e["attr"]): tuple(e["import"]) for e in _table("P9", "unset_defaults") if e.get("import")}
UNSET_RETURNS: dict[tuple[str, str], str] = {
    (e["class"], e["attr"]): e["returns"] for e in _table("P9", "unset_defaults") if e.get("returns")}
# (class, attribute) -> (the serving condition under which the default is not upstream's value, what meets it):
# the fix keeps a warning
UNSET_CAVEATS: dict[tuple[str, str], tuple[str, str]] = {
    (e["class"], e["attr"]): (e["caveat"], e["caveat_fix"]) for e in _table("P9", "unset_defaults") if e.get("caveat")}
# P9: (class, attribute) -> why the pinned class has no equivalent read (the finding's fix says it)
NO_COUNTERPART: dict[tuple[str, str], str] = {(e["class"], e["attr"]): e["why"] for e in _table("P9", "no_counterpart")}
ATTR_RENAMES: dict[str, tuple[str, str, dict[tuple[str, str], bool]]] = {
    e["attr"]: (e["config"], e["to"], {(c["op"], c["value"]): bool(c["negate"]) for c in e["compare"]})
    for e in _table("P9", "attr_renames")}
CONFIG_ATTR_RENAMES = {(var, attr): new for attr, (var, new, _) in ATTR_RENAMES.items()}

# P4: marker context managers the migration unwraps
MARK_CONTEXT_MANAGERS = frozenset(_table("P4", "mark_context_managers"))
# (pinned base qualname, method) -> the method as the pinned base does its work
BASE_METHODS: dict[tuple[str, str], str] = {(e["base"], e["method"]): e["source"] for e in _table("P4", "base_methods")}
# pinned class whose own load_weights does what upstream's version of its child class's added one does
# -> (child class, the attribute the owner builds it as)
LOADER_CHILDREN: dict[str, tuple[str, str]] = {e["owner"]: (e["child"], e["attr"]) for e in _table("P4", "loader_children")}

# P21: upstream module -> context managers that only scope a debugging aid
DEBUG_CONTEXT_MANAGERS: dict[str, frozenset[str]] = {
    mod: frozenset(names) for mod, names in _table("P21", "debug_context_managers").items()}

# rules whose error findings at import time make the import fail; those about import statements
IMPORT_FAILURE_RULES = frozenset(r.id for r in BY_ID.values() if r.blocks_import)
IMPORT_STATEMENT_RULES = frozenset(r.id for r in BY_ID.values() if r.import_statement)
# rules whose finding left says the pinned model runs but computes otherwise (raising nothing) -> how
MATCH_RULES: dict[str, str] = {r.id: r.computes_otherwise for r in BY_ID.values() if r.computes_otherwise}

# P23: interface methods the pinned vLLM only declares, and the bodies its own models write for them
INHERITED_DEFAULTS: tuple[dict, ...] = tuple(_table("P23", "inherited_defaults"))
INHERITED_TEMPLATES: dict[str, str] = dict(_table("P23", "templates"))
LANGUAGE_MARKER_COMMENT: str = _table("P23", "marker_comment")
INHERITED_NOT_CHILDREN: frozenset[str] = frozenset(_table("P23", "not_children"))
# P24: hooks upstream's framework base calls that the pinned base neither defines nor calls
BASE_HOOKS: tuple[dict, ...] = tuple(_table("P24", "base_hooks"))
# P24: class flags upstream's model runner reads off the model and the pinned runner never reads
RUNNER_FLAGS: tuple[dict, ...] = tuple(_table("P24", "runner_flags"))
# P24: upstream hooks ported as the pinned method that gives their effect, per checked class
HOOK_PORTS: tuple[dict, ...] = tuple(_table("P24", "hook_ports"))

# P25: architecture -> upstream's MODELS_CONFIG_MAP hook class the pinned map lacks; rope-type patches
CONFIG_HOOKS: dict[str, str] = dict(_table("P25", "config_hooks"))
ROPE_TYPE_PATCHES: tuple[dict, ...] = tuple(_table("P25", "rope_type_patches"))
PINNED_HOOK_DIFFERS: dict[str, dict] = dict(_table("P25", "pinned_hook_differs"))
# P25: architecture -> the pinned vLLM's own hook class (vllm.model_executor.models.config) that does what upstream's does
PINNED_HOOKS: dict[str, str] = dict(_table("P25", "pinned_hooks"))
PINNED_HOOKS_MODULE = "vllm.model_executor.models.config"
# P25: upstream hook class -> its verify_and_update_model_config body ported to a pinned verify_and_update_config
PORTED_HOOKS: dict[str, str] = dict(_table("P25", "ported_hooks"))
PORTED_HOOKS_MODULE = "vllm_fl.compat.config_hook_ports"
# P25: ported hook -> the model module whose P45 tf5_default_reads rows its hf_config base-attribute reads go through
PORTED_HOOK_TF5_READS: dict[str, str] = dict(_table("P25", "ported_hook_tf5_reads"))
# P25: fields the pinned engine reads for its serve defaults before any hook runs (a port writing one stays a warning)
SERVE_DEFAULTS_BEFORE_HOOKS: dict[str, str] = dict(_table("P25", "serve_defaults_before_hooks"))
# P25: target architecture -> upstream's conversion of a released checkpoint's architectures into it (model_types,
# source, fields, reads, line); pinned version -> where it resolves config.json's architectures without converting
ARCH_CONVERSIONS: dict[str, dict] = dict(_table("P25", "arch_conversions"))
ARCH_CONVERSIONS_ABSENT: dict[str, str] = {str(k): v for k, v in _table("P25", "arch_conversions_absent").items()}
ARCH_CONVERTOR_MODULE = "vllm/transformers_utils/model_arch_config_convertor.py"


def port_writes_read_early(hook: str) -> list[str]:
    """The fields ``hook``'s port assigns (``x.<field> = ...``) that the pinned engine reads before hooks run."""
    tree = ast.parse(PORTED_HOOKS[hook])
    written = {t.attr for n in ast.walk(tree) if isinstance(n, ast.Assign)
               for t in n.targets if isinstance(t, ast.Attribute)}
    return sorted(written & set(SERVE_DEFAULTS_BEFORE_HOOKS))


def _tf5_reads_rewritten(hook: str, body: str, version: str) -> str:
    """``body`` with each ``getattr(<m>.hf_config, "X", <literal>)`` whose X a P45 tf5_default_reads row of the
    module the hook serves (P25 ported_hook_tf5_reads) lists on a ``.hf_config`` written as P45 writes it in that
    module: ``tf5_base_attr(<m>, "X", <literal>, (<the row's classes>,))``, imported in the method (the module
    holds every port, and only this one needs the back-port). The classes are read from the row, never copied."""
    stem = PORTED_HOOK_TF5_READS.get(hook)
    rows = TF5_DEFAULT_READS.get(version, {}).get(stem, {}) if stem else {}
    if not rows:  # no P45 row on this pin (its transformers declares what transformers 5 does): upstream's getattr
        return body
    tree = ast.parse(body)
    lines = body.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    swaps = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and len(node.args) == 3 and not node.keywords and isinstance(node.args[1], ast.Constant)):
            continue
        obj, attr = ast.unparse(node.args[0]), node.args[1].value
        classes = {tuple(r["classes"]) for o, r in rows.items() if o.endswith(".hf_config") and attr in r["attrs"]}
        if not obj.endswith(".hf_config") or not classes:
            continue
        if len(classes) > 1:
            raise ValueError(f"{hook}: P45 rows of {stem} list {attr} with different classes: {sorted(classes)}")
        ast.literal_eval(node.args[2])  # a literal default, as P45 rewrites only those
        call = (f"{TF5_BASE_ATTR}({obj[: -len('.hf_config')]}, {attr!r}, {ast.unparse(node.args[2])}, "
                f"{classes.pop()!r})")
        span = (starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset)
        swaps.append((span, call))
    if not swaps:
        raise ValueError(f"{hook}: P25 ported_hook_tf5_reads names {stem}, but the body reads none of its P45 rows")
    assert body.isascii()  # ast's columns are UTF-8 offsets
    for (start, end), call in sorted(swaps, reverse=True):
        body = body[:start] + call + body[end:]
    return f"from {TF5_BASE_ATTR_MODULE} import {TF5_BASE_ATTR}\n\n{body}"


def ported_hooks_text(version: str = "0.13.0") -> str:
    """The plugin module holding every P25 ported hook (the whole table: the same text whichever model writes it),
    for pinned vLLM ``version`` (a hook's reads of a P45 tf5_default_reads row are that pin's)."""
    out = ['"""P25: upstream hooks that run on the ModelConfig (verify_and_update_model_config, which the pinned vLLM',
           'never calls), ported to the verify_and_update_config(vllm_config) the pinned VllmConfig runs. Written by',
           'migrate_model.py apply from the catalog (P25 ported_hooks); do not edit."""',
           "from vllm.model_executor.models.config import VerifyAndUpdateConfig", ""]
    for name, body in sorted(PORTED_HOOKS.items()):
        body = _tf5_reads_rewritten(name, body, version)
        out += ["", f"class {name}(VerifyAndUpdateConfig):", "    @staticmethod",
                "    def verify_and_update_config(vllm_config) -> None:"]
        out += [("        " + line) if line else "" for line in body.splitlines()]
        out.append("")
    return "\n".join(out)

# P26: the comment an unwrapped _mark_tower_model block keeps
TOWER_COMMENT: str = _table("P26", "comment")

# P32: pinned vLLM version -> module stem -> the pinned GGUF handling upstream dropped
GGUF_HANDLING: dict[str, dict[str, dict]] = _table("P32", "gguf_handling")

# P27: upstream embedding architecture -> (module stem, causal-LM class the pooling adapter wraps); the
# inner model's load_weights written ({outer}: the class whose mapper it applies)
POOLING_ARCHS: dict[str, tuple[str, str]] = {a: tuple(mc) for a, mc in _table("P27", "pooling_archs").items()}
POOLING_INNER_LOAD: str = _table("P27", "template")

# P28: pinned vLLM version -> module stem -> upstream's per-layer-type rope read and the pinned code for it
ROPE_LAYOUTS: dict[str, dict[str, dict]] = _table("P28", "rope_layouts")

# P29: pinned vLLM version -> model type -> the config class the pinned vLLM builds instead of transformers'
REPLACED_CONFIG_CLASSES: dict[str, dict[str, str]] = _table("P29", "replaced_config_classes")

# P36: pinned vLLM version -> transformers config class -> {transformers 5 layer-type name: the legacy
# name the pinned transformers' class keeps}
LEGACY_LAYER_TYPES: dict[str, dict[str, dict[str, str]]] = _table("P36", "legacy_layer_types")

# P39: pinned vLLM version -> transformers config class -> {field transformers 5's class added: {default, why}}
ADDED_CONFIG_FIELDS: dict[str, dict[str, dict[str, dict]]] = _table("P39", "added_config_fields")

# P46: pinned vLLM version -> model module -> {upstream's model_type of a sub-config: {pinned, pinned_class,
# upstream_class}}
PINNED_MODEL_TYPES: dict[str, dict[str, dict[str, dict[str, str]]]] = _table("P46", "pinned_model_types")
# P45: pinned vLLM version -> attribute the pinned PretrainedConfig sets on every config and transformers 5's
# does not -> its pinned default (Python source)
BASE_CONFIG_DEFAULTS: dict[str, dict[str, str]] = _table("P45", "base_config_defaults")
# P45: pinned vLLM version -> model module -> getattr object as spelled -> {classes, source, declares: attributes
# the config class declares itself (both stacks read its value)}
DECLARED_BY_CONFIG_CLASS: dict[str, dict[str, dict[str, dict]]] = _table("P45", "declared_by_config_class")
# P45: pinned vLLM version -> model module -> getattr object as spelled (a ModelConfig's .hf_config) -> {attrs, classes:
# the pinned transformers' config classes (module.qualname) whose transformers 5 class declares none of attrs,
# source}: apply rewrites the read to vllm_fl.compat.config_defaults.tf5_base_attr
TF5_DEFAULT_READS: dict[str, dict[str, dict[str, dict]]] = _table("P45", "tf5_default_reads")
# P45: what a tf5_default_reads read becomes (the plugin's back-port, vllm_fl/compat/config_defaults.py)
TF5_BASE_ATTR_MODULE = "vllm_fl.compat.config_defaults"
TF5_BASE_ATTR = "tf5_base_attr"

# P40: pinned vLLM version -> transformers config class -> {alias transformers 5's attribute_map adds: {target
# (and ``manual``: why a rename is not the same)}}
ATTRIBUTE_ALIASES: dict[str, dict[str, dict[str, dict]]] = _table("P40", "attribute_aliases")
# P40: pinned vLLM version -> model module name -> transformers class of the hf_config it is handed (files that
# never name it)
HF_CONFIG_CLASSES: dict[str, dict[str, str]] = _table("P40", "hf_config_classes")

# P38: pinned vLLM version -> speculative method the pinned vLLM lacks -> the architectures upstream reaches
# only through it
SPECULATIVE_ONLY: dict[str, dict[str, list[str]]] = _table("P38", "speculative_methods")
# P6: per pinned vLLM, a class nested in a pinned class (qualified) -> its parameters
NESTED_SIGNATURES: dict[str, dict[str, list[str]]] = _table("P6", "nested_signatures")
# P6: per pinned vLLM, "nested class.keyword" -> {why, fix}: what upstream does with it, what the pinned code can do
NESTED_KEYWORDS: dict[str, dict[str, dict]] = _table("P6", "nested_keywords")
# P38: per pinned vLLM, method -> {"supported": target families, "archs": {draft arch: its target family}}
SPECULATIVE_REFUSED: dict[str, dict[str, dict]] = _table("P38", "refused_targets")
# P38: per pinned vLLM, MTP draft arch -> {"target": the target arch upstream makes it from, "model_type": the draft's}
SPECULATIVE_UNCONVERTED: dict[str, dict[str, dict]] = _table("P38", "unconverted_targets")

# P35: (pinned class, attribute) declared None there (an interface's default), which subclasses inherit
NONE_DEFAULTS: frozenset[tuple[str, str]] = frozenset(
    (e["class"], e["attr"]) for e in _table("P35", "none_defaults"))

# P16: pinned vLLM version -> module -> module state a function of it rebinds (read live, never copied)
LIVE_MODULE_STATE: dict[str, dict[str, frozenset[str]]] = {
    version: {module: frozenset(names) for module, names in modules.items()}
    for version, modules in _table("P16", "live_module_state").items()}

# P24: class-attribute name patterns that are capability flags the framework reads, not a parent's hooks
FRAMEWORK_FLAGS: tuple[str, ...] = tuple(_table("P24", "framework_flags"))
# P43: pinned vLLM version -> architecture -> {"pinned": the pinned code outside the model file that decides,
# "what": what it does otherwise than upstream's, "severity", "answered_by": an architecture whose registration answers it,
# "answered_by_module": an upstream model module whose plugin copy, imported by the file in place of the pinned one, answers it
# (apply brings it along), "answered_by_copy": the same answer, which apply does not bring along, "fix": what to do when no
# answer applies}
PINNED_COUNTERPARTS: dict[str, dict[str, dict]] = _table("P43", "counterparts")
# P43: pinned vLLM version -> {"function", "where"}: the get_config patch that gives loaded configs rope_parameters
ROPE_PATCH: dict[str, dict[str, str]] = _table("P43", "rope_patch")

# P12: (pinned parent qualname, attribute) -> upstream's guarded readers of it: {"source", "imports"}
GUARDED_READERS: dict[tuple[str, str], dict] = {(e["parent"], e["attr"]): e for e in _table("P12", "guarded_readers")}

# P41: transformers Auto class -> its transformers 5 mapping; 5.x framework names taken from the plugin's compat module
AUTO_MAPPINGS: dict[str, str] = dict(_table("P41", "auto_mappings"))
TF5_FRAMEWORK_COMPAT = frozenset(_table("P41", "framework"))

# P47: pinned vLLM version -> {torch_version, missing: torch attribute chain -> {present_in, pinned_equivalent, why}}
TORCH_APIS: dict[str, dict] = _table("P47", "torch_apis")
