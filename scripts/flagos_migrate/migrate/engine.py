"""The migration engine behind ``migrate_model.py plan`` and ``apply``.

One pipeline for everything: the upstream text is placed where it will live in the plugin, the
analysis (``analysis.py``, the validator's engine) reports findings, the findings' data decide
the rewrites (``rewrites.py``), and the result is analysed again, until nothing changes. ``plan``
runs exactly this in memory; "fixed" are the findings that disappear, "left" what remains, so
plan, apply and the validator can never disagree.
"""

from __future__ import annotations

import ast

from flagos_migrate.analysis import (
    AnalysisContext,
    analyze_source,
    calls,
    env_vars,
    framework,
    import_bindings,
    import_blockers,
    inherited,
    members,
    name_usage,
    routed_experts,
    structure,
)
from flagos_migrate.analysis.imports import import_action
from flagos_migrate.astutil import parse_source
from flagos_migrate.catalog.findings import Finding, format_text, left_for_you
from flagos_migrate.catalog.tables import (
    CONFIG_HOOKS,
    PINNED_COUNTERPARTS,
    PINNED_HOOK_DIFFERS,
    PINNED_HOOKS,
    PINNED_HOOKS_MODULE,
    PORTED_HOOKS,
    PORTED_HOOKS_MODULE,
    REMOTE_CONFIG_FIRST,
    port_writes_read_early,
    ported_hooks_text,
)
from flagos_migrate.migrate import backports
from flagos_migrate.migrate.edits import Edits, ImportAction
from flagos_migrate.migrate.rewrites import apply_edits
from flagos_migrate.migrate.tf5_configs import Transformers5
from flagos_migrate.migrate.tf5_modules import Tf5Vendoring
from flagos_migrate.migrate.unit import Unit
from flagos_migrate.migrate.upstream import (
    CONFIGS_PKG,
    MODELS_PKG,
    PROCESSORS_PKG,
    SHARED_MODEL_MODULES,
    Upstream,
    resolve,
)
from flagos_migrate.migrate.vendor import (
    COMPAT_PKG,
    Vendored,
    compat_module_for,
    import_time_class_reads,
    locate_definition,
)
from flagos_migrate.migrate.vendoring import Vendoring
from flagos_migrate.pinned.api_index import ApiIndex, PinnedApis
from flagos_migrate.pinned.index_builder import module_record
from flagos_migrate.plugin.provenance import all_records
from flagos_migrate.plugin.tree import PACKAGE, PluginTree

MAX_PASSES = 10
# where upstream defines its MODELS_CONFIG_MAP hooks (P25)
CONFIG_HOOKS_MODULE = "vllm.model_executor.models.config"
# findings about one imported name, whose edit is an import action
IMPORT_FINDINGS = frozenset({"P2", "P3", "P5", "P13", "P14", "P22", "P29"})
_RECORD_CACHE: dict[str, tuple[tuple[int, int], dict | None]] = {}


def plugin_records(plugin: PluginTree) -> dict[str, dict]:
    """Index records of the plugin's modules, re-read only for files that changed (mtime, size)."""
    out = {}
    for path in plugin.python_files():
        try:
            st = path.stat()
        except OSError:
            continue
        key, stamp = str(path), (st.st_mtime_ns, st.st_size)
        cached = _RECORD_CACHE.get(key)
        if cached is None or cached[0] != stamp:
            try:
                rec = module_record(path.relative_to(plugin.root).as_posix(), path.read_bytes())
            except OSError:
                rec = None
            cached = _RECORD_CACHE[key] = (stamp, rec)
        if cached[1] is not None:
            out[plugin.module_of(path)] = cached[1]
    return out


def defer_action(f: Finding) -> ImportAction:
    """P3: an import nothing resolves, used only inside functions, moves into them: the file imports, and the
    functions raise the same ImportError when called (the finding stays, on the moved import)."""
    return ImportAction("P3", "defer", lines=tuple(f.data["defer_to"]))


def d_written(f: Finding) -> str:
    """How a P1 finding's relative import is written (``.``, ``.sibling``)."""
    return f.data.get("written") or "." * int(f.data.get("level") or 1)


class Migration(Vendoring, Tf5Vendoring):
    """Everything one ``apply`` would write, computed in memory."""

    def __init__(self, name: str, up: Upstream, plugin: PluginTree, apis: PinnedApis,
                 hf_config: dict | None = None, previous: dict | None = None,
                 archs: list[str] | None = None, all_archs: bool = False, resolved: dict | None = None):
        self.name = name
        self.up = up
        self.plugin = plugin
        self.apis = apis
        self.hf_config = hf_config
        self.previous = previous or {}
        # resolved: what a per-model package resolved to (migrate/packages.py), else the model file's
        self.resolved = resolved if resolved is not None else resolve(up, name, hf_config, archs, all_archs)
        self.redirects: dict[str, str] = {}  # upstream module -> plugin module
        self.bridged: dict[str, str] = {}  # config class name -> plugin config module
        self.units: dict[str, Unit] = {}
        self.compat: dict[str, Vendored] = {}
        self.compat_units: dict[str, Unit] = {}
        self.compat_asked: dict[str, set[str]] = {}  # compat module -> the names this migration vendored
        self.vendor_failed: dict[tuple[str, str], str] = {}
        self.backports: list[backports.Backport] = []
        self._backports_needed: set[str] = set()  # modules of the back-ports this model's files call for
        self.notes: list[str] = []
        self._base = plugin_records(plugin)
        self._migrated_files: set[str] | None = None
        self._overlay: dict[str, dict] = {}
        self._apis_cache: PinnedApis | None = None
        self.tf5_bridged: dict[str, str] = {}  # transformers 5 class the model imports -> its bridge module
        self._tf5: Transformers5 | None | bool = False  # False: not opened yet
        self.key_mapped: tuple[str, str, str] | None = None  # P33: (model_type, class, module)
        self.config_hooks: list[tuple[str, str, str]] = []  # P25: (architecture, hook class, compat module)
        self.model_config_hooks: set[str] = set()  # P25: architectures whose hook the pinned vLLM would not run
        self.model_config_writes: dict[str, list[str]] = {}  # ... and what those hooks assign
        self._tf5_state()  # processors only transformers 5 has, vendored (tf5_modules)
        self._fill_model_type_from_tf5()

    # -- indexes ---------------------------------------------------------------------------

    def set_overlay(self, module: str, text: str) -> None:
        unit = self.units.get(module)
        rec = module_record(unit.relpath if unit is not None else module.replace(".", "/") + ".py", text)
        if rec is not None:
            self._overlay[module] = rec
            self._apis_cache = None

    def ctx_apis(self) -> PinnedApis:
        if self._apis_cache is None:
            index = ApiIndex.from_records(PACKAGE, "plugin", {**self._base, **self._overlay})
            self._apis_cache = self.apis.with_package(index)
        return self._apis_cache

    # -- transformers 5 config bridges (P2) ----------------------------------------------------

    # -- what comes along --------------------------------------------------------------------

    def _previously_written(self, module: str) -> bool:
        rel = module.replace(".", "/") + ".py"
        return rel in (self.previous.get("files") or {})

    def discover(self) -> None:
        """The model file, the sibling modules it needs (closure) and the config modules to bridge."""
        top = f"{MODELS_PKG}.{self.name}"
        self.redirects[top] = f"{PACKAGE}.models.{self.name}"
        queue = [(top, "model")]
        # the model's own config class is bridged even when the model file only annotates with it:
        # vLLM needs it in _CONFIG_REGISTRY to read the checkpoint's config.json
        own = self.resolved.get("ConfigClassName")
        cfg_mod = self.resolved.get("config_module") or ""
        if own and self.apis.resolve(cfg_mod, own) is None:
            if bridge := self._bridge(own):
                queue.append((bridge, "config"))
            elif cfg_mod.split(".")[0] == "transformers":
                self._tf5_bridge(own)
        self._bridge_arch_configs()  # model types only transformers 5 maps to a registered architecture
        while queue:
            origin, role = queue.pop(0)
            text = self.up.text(origin)
            if text is None:
                continue
            target = self.redirects[origin]
            self.units[target] = Unit(target, origin, role, text, text)
            self.set_overlay(target, text)
            for mod, new_role in self._needs(origin, text):
                if mod not in self.redirects:
                    continue
                if self.redirects[mod] not in self.units and (mod, new_role) not in queue:
                    queue.append((mod, new_role))

    def _needs(self, origin: str, text: str) -> list[tuple[str, str]]:
        tree = parse_source(text, origin)
        if tree is None:
            return []
        wanted: dict[str, set[str]] = {}
        out: list[tuple[str, str]] = []
        usage = name_usage(tree)
        classes_of: dict[str, dict[str, str]] = {}  # sibling module -> {local alias: imported name}
        for b in import_bindings(tree, origin):
            if b.type_checking or b.module == "__future__":
                continue
            used = usage.get(b.alias)
            # a config class only transformers 5 has is bridged even when only annotations use it:
            # the import stays and, without ``from __future__ import annotations``, runs
            tf5_config = (b.name and b.name.endswith("Config") and b.module.split(".")[0] == "transformers"
                          and used is not None and self.apis.resolve(b.module, b.name) is None)
            if b.name is not None and not (used and used.runtime) and not tf5_config:
                continue  # names used only in annotations (P14) or not at all (P3) need nothing along
            mod, name = b.module, b.name
            if mod == MODELS_PKG and name and self.up.has_module(f"{mod}.{name}"):
                mod, name = f"{mod}.{name}", None
            if mod.startswith(MODELS_PKG + ".") and mod != origin:
                wanted.setdefault(mod, set()).update([name] if name else [])
                if name:
                    classes_of.setdefault(mod, {})[b.alias] = name
            elif name and name.endswith("Config") and (mod.startswith(CONFIGS_PKG) or mod.split(".")[0] == "transformers"):
                if self.apis.resolve(mod, name) is None:
                    cfg = self._bridge(name)
                    if cfg:
                        out.append((cfg, "config"))
                    elif mod.split(".")[0] == "transformers":
                        self._tf5_bridge(name)
            elif name and mod.split(".")[0] == "transformers" and self.apis.resolve(mod, name) is None:
                self._tf5_vendor(mod, name)  # a processor only transformers 5 has
            elif (mod.startswith(PROCESSORS_PKG + ".") and mod != origin and self.up.has_module(mod)
                  and (not self.apis.has_module(mod) or (name and self.apis.resolve(mod, name) is None)
                       or mod in self._answering_processors())):
                # a whole processor module, like a sibling model module: too big to slice (P16)
                self.redirects.setdefault(mod, f"{PACKAGE}.processors.{mod[len(PROCESSORS_PKG) + 1:].replace('.', '_')}")
                out.append((mod, "closure"))
        # an architecture built by name (gemma4_mm/gemma4_unified: init_vllm_registered_model(architectures=
        # ["Gemma4ForCausalLM"]), its import only for the annotation): the module upstream's registry maps it to
        # is needed at run time like an import, when the pinned vLLM lacks the class (P10 registers it)
        for arch in _built_by_name(tree):
            module, cls, _ = self.up.model_registry.get(arch, (None, None, None))
            if module and module.startswith(MODELS_PKG + ".") and module != origin and self.apis.resolve(module, cls) is None:
                wanted.setdefault(module, set()).add(cls)
        # ``Parent.hf_to_vllm_mapper | ...`` in a class body (or ``self.hf_to_vllm_mapper | ...`` in a
        # method of a subclass): upstream's Parent has it, the pinned one not
        lacking = {m for m, _, _ in import_time_class_reads(text, origin, self.apis, origin, self_operands=True)}
        # the file names upstream's ``routed_experts`` parameters; the pinned sibling builds the pinned FusedMoE
        # (P37): upstream's sibling builds them with FusedMoEFactory (the P22 back-port)
        # P43's answered_by_module: a pinned sibling whose classes compute otherwise than upstream's for an
        # architecture this migration registers (colmodernvbert builds the pinned ModernBertLayer, whose sliding
        # window is one token narrower): upstream's module comes along instead, which answers the P43
        lacking |= {f"{MODELS_PKG}.{entry['answered_by_module']}"
                    for arch, entry in PINNED_COUNTERPARTS.get(self.apis.version, {}).items()
                    if entry.get("answered_by_module") and arch in (self.resolved.get("architectures") or ())}
        lacking |= {b.module for b in framework.pinned_layout_siblings(self.apis, tree, import_bindings(tree, origin))
                    if "FusedMoEFactory" in (self.up.text(b.module) or "")}
        # what the plugin's own copies of this file's siblings import, where the pinned vLLM lacks the sibling
        # (so the copy is used): the plugin's qwen3_5.py builds vllm_fl.models.qwen3_next's layers, and
        # qwen3_5_mtp's QwenNextMixtureOfExperts must be that module's too (the pinned one's isinstance
        # checks see no Qwen3Next layer in a model of the plugin's classes)
        copies_use = set()
        for mod in wanted:
            rec = self._base.get(f"{PACKAGE}.models.{mod[len(MODELS_PKG) + 1:]}")
            if rec and not self.apis.has_module(mod):
                copies_use |= {str(v).split(":")[0] for v in (rec.get("imports") or {}).values()}
        for mod, names in wanted.items():
            short = mod[len(MODELS_PKG) + 1 :]
            if "." in short or short in SHARED_MODEL_MODULES:
                continue
            plugin_mod = f"{PACKAGE}.models.{short}"
            if plugin_mod in self.redirects.values() or (plugin_mod in self._base and plugin_mod in copies_use):
                self.redirects.setdefault(mod, plugin_mod)
                continue
            # a plain helper only upstream's sibling has is vendored (P16) instead of the whole sibling
            pinned_ok = (bool(self.apis.has_module(mod)) and mod not in lacking
                         and all(self.apis.resolve(mod, n) or self._vendorable(mod, n) for n in names)
                         and not calls.pinned_class_rejects(
                             self.apis, mod, classes_of.get(mod, {}), tree, self.up.text(mod) or ""))
            held = plugin_mod in self._base and not self._previously_written(plugin_mod)
            # the plugin's own module wins; a copy an earlier migration wrote does not replace a pinned
            # sibling that has everything this file needs (that copy may need what 0.13.0 lacks)
            if held and not (pinned_ok and self._migrated_copy(plugin_mod)):
                self.redirects[mod] = plugin_mod
                continue
            if pinned_ok or not self.up.has_module(mod):
                continue
            self.redirects[mod] = plugin_mod
            out.append((mod, "closure"))
        return out

    def _answering_processors(self) -> set[str]:
        """P43's answered_by_processor: upstream's processor modules whose pinned namesake computes otherwise for an
        architecture this migration registers (DeepSeek-OCR-2's: the pinned DeepseekOCRProcessor swallows
        `strategy="v2"`): upstream's module comes along instead, which answers the P43."""
        return {f"{PROCESSORS_PKG}.{entry['answered_by_processor']}"
                for arch, entry in PINNED_COUNTERPARTS.get(self.apis.version, {}).items()
                if entry.get("answered_by_processor") and arch in (self.resolved.get("architectures") or ())}

    def _migrated_copy(self, module: str) -> bool:
        """A plugin module some earlier ``apply`` wrote as a model or a sibling (its provenance says so)."""
        if self._migrated_files is None:
            self._migrated_files = {rel for rec in all_records(self.plugin.package_dir)
                                    for rel, info in (rec.get("files") or {}).items()
                                    if info.get("role") in ("model", "closure")}
        return module.replace(".", "/") + ".py" in self._migrated_files

    def _bridge(self, cls_name: str) -> str | None:
        cc = self.up.find_config_class(cls_name)
        if cc is None:
            return None
        stem = cc.module.rsplit(".", 1)[-1]
        if cc.module == CONFIGS_PKG:
            return None
        target = f"{PACKAGE}.configs.{stem}"
        self.redirects.setdefault(cc.module, target)
        self.bridged[cls_name] = self.redirects[cc.module]
        # every config class of that module comes along with it
        for name, defs in self.up.config_classes.items():
            if any(d.module == cc.module for d in defs):
                self.bridged.setdefault(name, self.redirects[cc.module])
        return cc.module

    # -- the rewrite loop --------------------------------------------------------------------

    def run(self) -> Migration:
        self.discover()
        self._key_mapping_config()
        self.backports = self._needed_backports()
        for bp in self.backports:
            self.set_overlay(bp.module, bp.text())  # the migrated files resolve the shadowed names there
        for bp in backports.ON_IMPORT_ONLY:
            self.set_overlay(bp.module, bp.text())
        for unit in list(self.units.values()):
            self.migrate_unit(unit)
        self._config_defaults_backport()
        for bp in self.backports:
            self.units[bp.module] = self._backport_unit(bp)
        self._flag_broken_held_modules()
        self._flag_tf5_base_drift()
        self._flag_framework_hooks()
        self._flag_refused_ropes()
        self._prune_compat()
        # compat modules last: their final text is the union of every vendored name
        for cmod, v in self.compat.items():
            if v.ok and v.names:
                unit = self.compat_units.get(cmod) or Unit(cmod, v.upstream_module, "compat", v.text)
                unit.text = v.text
                unit.rules.add("P16")
                self.units[cmod] = unit
        return self

    def _config_defaults_backport(self) -> None:
        """What a rewrite calls (P7 ``config_defaults``, P9 ``unset_defaults``) comes along once a written file
        imports it."""
        for bp in backports.ON_IMPORT_ONLY:
            if bp in self.backports:
                continue
            for unit in self.units.values():
                tree = parse_source(unit.text or "", unit.relpath)
                if tree is not None and any(b.module == bp.module for b in import_bindings(tree, unit.module)):
                    self.backports.append(bp)
                    self._backports_needed.add(bp.module)
                    break
            else:
                self._overlay.pop(bp.module, None)
                self._apis_cache = None

    def _prune_compat(self) -> None:
        """Compat modules this run vendored that no written file imports any more (their only reader was
        a keyword a later pass dropped) are not written; the plugin's own compat modules stay."""
        while True:
            imported: set[str] = set()
            for mod, text in [(m, u.text) for m, u in self.units.items()] + [(c, v.text) for c, v in self.compat.items()]:
                tree = parse_source(text or "", mod)
                if tree is not None:
                    imported |= {b.module for b in import_bindings(tree, mod)}
            imported |= {module for _, _, module in self.config_hooks}  # register_model() imports those
            unused = [c for c in self.compat if c not in imported and c not in self._base]
            if not unused:
                return
            for cmod in unused:
                del self.compat[cmod]
                self.compat_units.pop(cmod, None)
                self._overlay.pop(cmod, None)
            self._apis_cache = None

    def _backport_unit(self, bp: backports.Backport) -> Unit:
        """A back-port is written and tested for one pin (0.13.0): what another pin lacks of what
        it uses (0.20.2 has no ``Qwen3NextGatedDeltaNet``) stays left on it, so a file that needs it
        is not called clean."""
        unit = Unit(bp.module, None, "backport", bp.text(), bp.text(), {"P22"})
        if bp.module in self._backports_needed:  # not one the plugin holds that this model does not use
            ctx = AnalysisContext(self.ctx_apis(), bp.module, unit.relpath)
            unit.after = [f for f in analyze_source(bp.text(), ctx) if f.is_issue]
        return unit

    def _flag_broken_held_modules(self) -> None:
        """A written module that imports a plugin module this migration does not write (the plugin's
        own copy wins) is only as good as that module: when it will not import, neither will the
        importer; when it has findings left (a sibling an earlier ``apply`` left work in), the model
        does not run until they are resolved, so this migration is not "0 left" either (P18)."""
        verdicts: dict[str, tuple[list[Finding], bool]] = {}
        held = {mod for mod in self.redirects.values() if mod in self._base and mod not in self.units}
        for unit in list(self.units.values()):
            tree = parse_source(unit.text, unit.relpath) if unit.role in ("model", "closure") else None
            if tree is None:
                continue
            for b in import_bindings(tree, unit.module):
                if b.module not in held or b.type_checking or b.level:
                    continue
                if b.module not in verdicts:
                    verdicts[b.module] = self._held_findings(b.module)
                found, blocks = verdicts[b.module]
                if found and not any(f.rule == "P18" and f.line == b.line for f in unit.after):
                    unit.after.append(_held_finding(b.module, unit.relpath, b.line, found, blocks))

    def _held_findings(self, module: str) -> tuple[list[Finding], bool]:
        """(what is left in a held plugin module, whether it stops the import): its import
        blockers when it has any, else every finding the validator reports on it."""
        path = self.plugin.module_path(module)
        try:
            text = path.read_text("utf-8") if path else None
        except (OSError, UnicodeDecodeError):
            return [], False
        if text is None:
            return [], False
        rel = path.relative_to(self.plugin.root).as_posix() if path.is_relative_to(self.plugin.root) else str(path)
        found = analyze_source(text, AnalysisContext(self.ctx_apis(), module, rel))
        blockers = import_blockers(found)
        return (blockers, True) if blockers else (left_for_you(found), False)

    def _flag_framework_hooks(self) -> None:
        """P25 (and P38, P43) on each architecture this migration registers, where the validator reports them
        (``registration_findings``), on the model unit: what apply answers is fixed, the rest left."""
        unit = self.units.get(f"{PACKAGE}.models.{self.name}")
        if unit is None:
            return
        for f, state in self.registration_findings(unit):
            if any(g.rule == f.rule and g.message == f.message for g in unit.after):
                continue
            if state != "added":
                if unit.before is unit.after:  # one list while nothing was rewritten
                    unit.before = list(unit.before)
                unit.before.append(f)
            if state == "fixed":
                unit.rules.add(f.rule)
            else:
                unit.after.append(f)

    def registration_findings(self, unit: Unit) -> list[tuple[Finding, str]]:
        """What the validator reports on the registration of each architecture this migration registers
        (``inherited.framework_findings``: P25, P38, P43), as (finding, state): "fixed" when apply answers it,
        "left" when not, "added" for what apply's answer itself leaves. The one place plan, apply and a
        per-model package's plan compute them (``unit``: the model file, or a package's entry point).
        Upstream's MODELS_CONFIG_MAP hook itself comes along when its code needs only what the pinned vLLM
        has (vendored, P16, with no finding left in it): register_model() then maps the architecture to it,
        which the pinned VllmConfig consults at the same point (before the model-type-wide hybrid hook)."""
        out: list[tuple[Finding, str]] = []
        tree = parse_source(unit.text, unit.relpath)
        lines = {n.name: n.lineno for n in tree.body if isinstance(n, ast.ClassDef)} if tree else {}
        regs = self.plugin.registrations() if self.plugin.init_file.is_file() else None
        hooked = regs.config_hooks if regs is not None else set()
        # architectures the plugin will serve itself after this apply (a P43 counterpart registered answers it)
        registered = {m.arch for m in regs.models} if regs is not None else set()
        registered |= {arch for arch, _ in self.model_registrations()}
        # upstream sibling modules the model file imports from the plugin's copy (a P43 base class that is upstream's)
        builds_on = {origin.rsplit(".", 1)[-1] for origin, target in self.redirects.items()
                     if origin.startswith(MODELS_PKG + ".") and target.startswith(f"{PACKAGE}.models.")
                     and target != unit.module}
        # and upstream processor modules that come along (a P43 answered_by_processor)
        builds_on |= {"processors." + origin[len(PROCESSORS_PKG) + 1:] for origin in self.redirects
                      if origin.startswith(PROCESSORS_PKG + ".")}
        for arch, cls in self.model_registrations():
            # an earlier apply's hook (the plugin holds its compat module) is written again, like any vendored slice
            ours = compat_module_for(CONFIG_HOOKS_MODULE) in self._base
            target = self._vendor_config_hook(arch) if arch not in hooked or ours else None
            for f in inherited.framework_findings(arch, unit.relpath, lines.get(cls, 1), hooked=hooked,
                                                  version=self.apis.version, registered=registered,
                                                  builds_on=builds_on, model_tree=tree):
                writes = self.model_config_writes.get(arch) if target is None else None
                if writes and "has no entry" in f.message:  # what the pinned model is built without
                    f.message += ("; its verify_and_update_model_config, which the pinned vLLM never calls, does "
                                  + ", ".join(f"`{w}`" for w in writes))
                if target is None and arch in self.model_config_hooks and "has no entry" in f.message:
                    f.fix = (f"upstream's {CONFIG_HOOKS[arch]} defines verify_and_update_model_config, which upstream "
                             "calls while the ModelConfig is built and the pinned VllmConfig never calls (it calls "
                             "verify_and_update_config(vllm_config) alone): a vendored copy would skip it. Port its "
                             f'effect: the config bridge, the model, or MODELS_CONFIG_MAP["{arch}"] = a hook whose '
                             "verify_and_update_config does it")
                if target == PINNED_HOOKS_MODULE and "MODELS_CONFIG_MAP" in f.message:
                    f.fix = (f"apply maps {arch} to the pinned vLLM's own {PINNED_HOOKS[arch]} in register_model(): its "
                             "verify_and_update_config does to the config what upstream's verify_and_update_model_config "
                             "does (P25 pinned_hooks)")
                    out.append((f, "fixed"))  # apply registers the pinned hook
                    continue
                if target == PORTED_HOOKS_MODULE and "MODELS_CONFIG_MAP" in f.message:
                    f.fix = (f"apply writes upstream's {self._ported_hook(arch)} ported to the pinned API (its "
                             "verify_and_update_model_config body as a verify_and_update_config, P25 ported_hooks) "
                             f"into {target} and maps {arch} to it in register_model()")
                    out.append((f, "fixed"))  # apply registers the ported hook
                    late = port_writes_read_early(self._ported_hook(arch))
                    if late:  # the port computes what upstream does, but the serve defaults were chosen without it
                        out.append((Finding(
                            "P25", f.file, f.line, f.col, severity="warning",
                            message=(f"architecture {arch}: the ported {self._ported_hook(arch)} sets "
                                     + ", ".join(f"`{w}`" for w in late) + ", which the pinned engine reads to pick "
                                     "its chunked-prefill and prefix-caching defaults before any hook runs (upstream "
                                     "sets them while the ModelConfig is built, so it turns both off where the hook "
                                     "makes the model bidirectional); on the pinned vLLM a prompt may be split into "
                                     "chunks or served from the prefix cache, which bidirectional pooling does not "
                                     "allow"),
                            fix=("serve a checkpoint the hook makes bidirectional with --no-enable-chunked-prefill "
                                 "--no-enable-prefix-caching (what upstream picks), or set the fields in a config "
                                 "bridge the ModelConfig reads")), "added"))
                    continue
                if target is not None and "MODELS_CONFIG_MAP" in f.message:
                    f.fix = (f"apply vendors upstream's {CONFIG_HOOKS[arch]} into {target} (P16) and maps "
                             f"{arch} to it in register_model()")
                    out.append((f, "fixed"))  # apply registers upstream's hook
                    continue
                out.append((f, "left"))
        return out

    def _flag_refused_ropes(self) -> None:
        """P42: with ``--hf-config``, each rope parameter set of the checkpoint the back-ported get_rope refuses,
        reported on the import of it in a written file (the model file first)."""
        from flagos_migrate.analysis.rope_refusals import ROPE_MODULE, rope_findings

        if not isinstance(self.hf_config, dict):
            return
        units = sorted(self.units.values(), key=lambda u: u is not self.units.get(f"{PACKAGE}.models.{self.name}"))
        for unit in units:
            tree = parse_source(unit.text, unit.relpath) if unit.role in ("model", "closure") else None
            line = next((b.line for b in (import_bindings(tree, unit.module) if tree is not None else ())
                         if b.module == ROPE_MODULE and b.name == "get_rope"), None)
            if line is None:
                continue
            if unit.before is unit.after:  # one list while nothing was rewritten
                unit.before = list(unit.before)
            found = rope_findings(self.hf_config, unit.relpath, lambda _key, at=line: at)
            unit.before.extend(found)
            unit.after.extend(found)
            return

    @staticmethod
    def _ported_hook(arch: str) -> str | None:
        """Upstream's hook for ``arch`` when the catalog ports it: one the pinned map lacks, or one whose pinned
        namesake does otherwise (P25 pinned_hook_differs; the port then replaces the pinned entry)."""
        hook = CONFIG_HOOKS.get(arch) or PINNED_HOOK_DIFFERS.get(arch, {}).get("hook")
        return hook if hook in PORTED_HOOKS else None

    def _vendor_config_hook(self, arch: str) -> str | None:
        hook = CONFIG_HOOKS.get(arch) or self._ported_hook(arch)
        if hook is None:
            return None
        if hook in PORTED_HOOKS:  # upstream's body on the pinned API (the catalog's port): written, registered
            text = ported_hooks_text(self.apis.version)
            self.units[PORTED_HOOKS_MODULE] = Unit(PORTED_HOOKS_MODULE, None, "config", text, text, {"P25"})
            self.config_hooks.append((arch, hook, PORTED_HOOKS_MODULE))
            return PORTED_HOOKS_MODULE
        if arch in PINNED_HOOKS:  # the pinned vLLM's own hook does the same: registered, nothing vendored
            self.config_hooks.append((arch, PINNED_HOOKS[arch], PINNED_HOOKS_MODULE))
            return PINNED_HOOKS_MODULE
        # decided on upstream's text, before vendoring: a copy nothing registers would stay in the shared compat file,
        # and its findings would refuse every later model's hook there
        text = self.up.text(CONFIG_HOOKS_MODULE) or ""
        if inherited.runs_on_model_config(text, hook):
            self.model_config_hooks.add(arch)
            self.model_config_writes[arch] = inherited.model_config_writes(text, hook)
            return None
        target = self.vendor(CONFIG_HOOKS_MODULE, hook, 0)
        unit = self.compat_units.get(target) if target else None
        if unit is None or any(f.is_issue for f in unit.after):
            return None
        self.config_hooks.append((arch, hook, target))
        return target

    def _needed_backports(self) -> list[backports.Backport]:
        """Back-ports some unit calls for (unless the pinned class already takes the keyword), and
        those the plugin already holds: once installed, every migration imports the shadowed names
        from it, so files shared by several migrations (closure, compat) read the same either way."""
        parsed = [(t, u.origin) for u in self.units.values() if (t := parse_source(u.upstream_text, u.relpath)) is not None]
        installed = [bp for bp in backports.BACKPORTS if bp.module in self._base]
        needed = backports.needed([t for t, _ in parsed], self._pinned_lacks, self._pinned_takes,
                                  origins=[o for _, o in parsed])
        self._backports_needed = {bp.module for bp in backports.with_requirements(needed)}
        return backports.with_requirements(installed + [bp for bp in needed if bp not in installed])

    def _pinned_lacks(self, module: str, name: str) -> bool:
        return self.apis.resolve(module, name) is None

    def _pinned_takes(self, module: str, cls: str, keyword: str) -> bool:
        sym = self.apis.resolve(module, cls)
        sig = self.apis.callable_signature(sym) if sym is not None else None
        return sig is not None and keyword in set(sig.get("p", ())) | set(sig.get("k", ()))

    def migrate_unit(self, unit: Unit, depth: int = 0) -> None:
        ctx = AnalysisContext(self.ctx_apis(), unit.module, unit.relpath, unit.origin)
        text = unit.upstream_text
        unit.before = analyze_source(text, ctx)
        findings = unit.before
        caveats: dict[str, Finding] = {}  # P9 defaults that are upstream's value only under a serving condition
        for _ in range(MAX_PASSES):
            edits = self.derive(unit, text, findings, depth)
            if not edits:
                break
            caveats.update((f.data["attr"], f) for f in findings if f.rule == "P9" and f.data.get("caveat")
                           and (f.line, f.data["attr"]) in edits.attr_defaults)
            new = apply_edits(text, edits)
            unit.rules |= edits.rules()
            if new == text:
                break
            text = new
            ctx = AnalysisContext(self.ctx_apis(), unit.module, unit.relpath, unit.origin)
            findings = analyze_source(text, ctx)
        # last, once nothing else resolves them: imports only function bodies read move into those (P3, left)
        deferred = Edits(imports={(f.line, f.data["name"]): defer_action(f) for f in findings
                                  if f.rule == "P3" and f.data.get("defer_to") and f.data.get("name")})
        if deferred.imports and (new := apply_edits(text, deferred)) != text:
            unit.rules |= deferred.rules()
            text = new
            findings = analyze_source(text, AnalysisContext(self.ctx_apis(), unit.module, unit.relpath, unit.origin))
        unit.text = text
        unit.after = findings + [_caveat_finding(f, text) for f in caveats.values()]

    def derive(self, unit: Unit, text: str, findings: list[Finding], depth: int) -> Edits:
        """The edits this pass makes: each finding's own proposal (next to its check in ``analysis``),
        then what needs the migration's state (modules that come along, bridges, vendoring)."""
        edits = Edits()
        tree = parse_source(text, unit.relpath)
        if tree is None:
            return edits
        aliases = {(b.line, b.name): b for b in import_bindings(tree, unit.origin or unit.module)}
        for b in aliases.values():
            # absolute imports of a module that comes along (or that the plugin holds): the names may
            # exist on the pinned version too, so no finding asks for it, but the pinned copy lacks
            # what made the migration bring the module (``Parent.embedding_fields`` read in a class body)
            if (b.name and not b.level and not b.type_checking and b.module != unit.origin
                    and b.module in self.redirects and (b.line, b.name) not in edits.imports):
                edits.imports[(b.line, b.name)] = ImportAction("P1", "repoint", self.redirects[b.module])
        runtime_missing: dict[str, Finding] = {}
        removed: list[Finding] = []  # P17 / P21: decided once every import's fate is known
        # back-port re-points first: a later finding on the same name (an unused import) wins
        for f in sorted(findings, key=lambda f: f.rule != "P22"):
            if f.rule == "P1":
                self._relative(edits, f)
            elif f.rule in IMPORT_FINDINGS:
                self._import(edits, f, aliases, runtime_missing)
            elif f.rule in ("P4", "P9"):
                members.propose_edits(f, edits)
            elif f.rule in ("P23", "P24"):
                inherited.propose_edits(f, edits)
            elif f.rule == "P12":
                structure.propose_edits(f, edits)
            elif f.rule in ("P27", "P28", "P36", "P39", "P40", "P43", "P45", "P46"):
                framework.propose_edits(f, edits)
            elif f.rule == "P34":
                routed_experts.propose_edits(f, edits)
            elif f.rule in ("P6", "P7"):
                if f.data.get("pass") and not self._provides(*f.data["pass"][2:]):
                    continue  # nothing would define what the call is to be given: the warning stays
                if not calls.propose_edits(f, edits) and f.data.get("callee") and not f.data.get("backport"):
                    self._vendor_changed_function(f.data["callee"], aliases.values(), tree, edits, depth)
            elif f.rule in ("P17", "P21"):
                removed.append(f)
        towers = [f for f in findings if f.rule == "P41"]
        if towers:
            # P41: transformers 5's towers vendored and registered for their bridged configs; imported by the file
            done = self._tf5_towers([(f.data["factory"], f.data["configs"], f.data.get("config_attr")) for f in towers])
            for module, cls in done or ():
                edits.add_imports[(module, cls)] = "P41"
        if any(bp.module == env_vars.COMPAT_ENVS for bp in self.backports):
            env_vars.propose_edits(findings, edits)
        if edits.drop_kwargs:
            # a name read only in the keywords this pass drops goes with them, rather than being vendored
            # (or, vendored by an earlier pass, its import goes: the unused slice is pruned at the end)
            gone = _read_only_in_dropped(tree, set(edits.drop_kwargs))
            for alias in gone & set(runtime_missing):
                f = runtime_missing.pop(alias)
                edits.imports[(f.line, f.data["name"])] = ImportAction(f.rule, "remove")
            for b in aliases.values():
                if b.alias in gone and b.name and b.module.startswith(COMPAT_PKG + ".") and (b.line, b.name) not in edits.imports:
                    edits.imports[(b.line, b.name)] = ImportAction("P6", "remove")
        if runtime_missing:
            self._removed_or_vendor(runtime_missing, removed, edits, depth)
        return edits

    def _provides(self, module: str, name: str) -> bool:
        """``from module import name`` will work: the pinned vLLM has it, or upstream's definition can be vendored."""
        return self.apis.resolve(module, name) is not None or locate_definition(self.up, module, name) is not None

    def _import(self, edits: Edits, f: Finding, aliases: dict, runtime_missing: dict[str, Finding]) -> None:
        d = f.data
        name = d.get("name")
        if not name:
            if d.get("unused") and f.rule == "P3":  # ``import missing.module`` that nothing uses
                edits.imports[(f.line, None)] = ImportAction("P3", "remove")
            return
        act = self._import_action(f)
        if act is None and f.rule == "P3" and d.get("never_instance") and (f.line, name) in aliases:
            for line in d["never_instance"]:  # the import goes once nothing reads the name (next pass)
                edits.never_instances[(line, aliases[(f.line, name)].alias)] = "P3"
            return
        if act is not None:
            edits.imports[(f.line, name)] = act
        elif f.rule == "P3" and d.get("used_at_runtime") and not d.get("attribute_access") and not d.get("backport"):
            b = aliases.get((f.line, name))
            if b is not None:
                runtime_missing[b.alias] = f

    def _relative(self, edits: Edits, f: Finding) -> None:
        absm, names = f.data["absolute"], f.data.get("names") or []
        target = self.redirects.get(absm, absm)
        writes = {n: target for n in names}
        for n in names:
            sub = self.redirects.get(f"{absm}.{n}")
            if sub:  # ``from . import sibling`` where the sibling comes along
                writes[n] = sub.rsplit(".", 1)[0]
                edits.imports[(f.line, n)] = ImportAction("P1", "repoint", writes[n])
        edits.imports[(f.line, None)] = ImportAction("P1", "repoint", target)
        # the plan says what apply writes: a sibling that comes along (or that the plugin holds)
        # is imported from the plugin, not from where upstream's relative import resolves
        by_module: dict[str, list[str]] = {}
        for n, mod in writes.items():
            by_module.setdefault(mod, []).append(n)
        written = "; ".join(f"from {m} import {', '.join(ns)}" for m, ns in by_module.items())
        if set(by_module) != {absm}:
            where = "the plugin's migrated sibling" if any(m.startswith(PACKAGE + ".") for m in by_module) else ""
            f.message = (f"relative import `from {d_written(f)} import {', '.join(names)}`: apply writes "
                         f"`{written}`" + (f" ({where}; upstream resolves to {absm})" if where else ""))
        f.fix = f"import from the absolute module: {written}"

    def _import_action(self, f: Finding) -> ImportAction | None:
        d = f.data
        mod, name = d["module"], d["name"]
        if mod in self.redirects and f.rule != "P22":
            return ImportAction("P2" if mod.startswith(CONFIGS_PKG) else "P1", "repoint", self.redirects[mod])
        if name in self.bridged and (mod.startswith(CONFIGS_PKG) or mod.split(".")[0] == "transformers"):
            return ImportAction("P2", "repoint", self.bridged[name])
        if f.rule == "P5" and (mod, name) in self.tf5_vendored:
            return ImportAction("P5", "repoint", self.tf5_vendored[(mod, name)])
        target = d.get("new_module")
        if f.rule == "P13" and target in self.redirects and not self._defines(target, name):
            # the pinned module P13 found becomes the plugin's copy of upstream's, which no longer defines the
            # name (glm4_moe_lite: get_spec_layer_idx_from_weight_name moved from glm4_moe to utils upstream):
            # another pinned definer that stays pinned
            other = next((c for c in d.get("candidates") or [] if c not in self.redirects), None)
            if other is not None:
                d["new_module"] = other
                f.message = f.message.replace(f"`{target}`", f"`{other}`")
                f.fix = f"from {other} import {name}"
        if f.rule == "P5" and ("transformers", name) in self.vendor_failed and "vendor_failed" not in d:
            d["vendor_failed"] = self.vendor_failed[("transformers", name)]
            f.message += f"; not vendored from transformers 5: {d['vendor_failed']}"
        return import_action(f)

    def _defines(self, module: str, name: str) -> bool:
        """Upstream's ``module`` defines ``name`` at its top level (a redirected module is written from it)."""
        tree = parse_source(self.up.text(module) or "", module)
        return tree is not None and any(
            getattr(n, "name", None) == name or any(isinstance(t, ast.Name) and t.id == name
                                                    for t in getattr(n, "targets", []))
            for n in tree.body)

    # -- results -------------------------------------------------------------------------------

    @property
    def model_unit(self) -> Unit:
        return self.units[f"{PACKAGE}.models.{self.name}"]

    def fixed(self) -> list[Finding]:
        return [f for m, u in self.units.items() for f in self._own(m, u.fixed())]

    def left(self) -> list[Finding]:
        return [f for m, u in self.units.items() for f in self._own(m, u.after)]

    def others_left(self) -> list[Finding]:
        """Findings of shared compat files inside definitions only earlier migrations vendored."""
        out = []
        for m, u in self.units.items():
            foreign = self.foreign_lines(m) if u.role == "compat" else set()
            out += [f for f in u.after if f.line in foreign]
        return out

    def _own(self, module: str, findings: list[Finding]) -> list[Finding]:
        if self.units[module].role != "compat":
            return findings
        foreign = self.foreign_lines(module)
        return [f for f in findings if f.line not in foreign]

    def config_registrations(self) -> list[tuple[str, str, str]]:
        """(model_type, class, plugin module) for bridged configs that upstream registers."""
        out = []
        for model_type, cls in sorted(self.up.config_registry.items()):
            if cls in self.bridged and self.bridged[cls] in self.units:
                out.append((model_type, cls, self.bridged[cls]))
        tf5 = self.tf5 if self.tf5_bridged else None
        for cls, module in sorted(self.tf5_bridged.items()):
            mt = tf5.model_type_of(cls)
            if mt and not any(m == mt for m, _, _ in out):
                out.append((mt, cls, module))
        if self.key_mapped and not any(m == self.key_mapped[0] for m, _, _ in out):
            out.append(self.key_mapped)
        mt, cc = self.resolved.get("model_type"), self.resolved.get("ConfigClassName")
        if mt and cc in self.bridged and not any(m == mt for m, _, _ in out):
            out.append((mt, cc, self.bridged[cc]))
        # P2 remote_config_first: the checkpoint's own config class, which upstream reads through AutoConfig,
        # would be shadowed by a bridge in 0.13.0's _CONFIG_REGISTRY (read before AutoConfig)
        return [r for r in out if r[0] not in REMOTE_CONFIG_FIRST]

    def sibling_registrations(self) -> list[tuple[str, str, str]]:
        """(architecture, class, plugin module) a migrated file builds by name, ``init_vllm_registered_model(
        ..., architectures=["Gemma4ForCausalLM"])``, where upstream's registry maps it to a sibling brought
        into the plugin and the pinned vLLM lacks that class (so its registry lacks the name: P10)."""
        siblings = {u.origin: u for u in self.units.values() if u.origin and u.role in ("model", "closure")}
        own = self.model_unit.module
        out: set[tuple[str, str, str]] = set()
        # the model's own file only: a sibling brought along for a helper (embedding_gemma2 takes Gemma4MLP
        # from gemma4_mm.py's module) builds nothing this model serves
        unit = self.model_unit
        for arch in _built_by_name(parse_source(unit.text, unit.relpath)):
            module, cls, _ = self.up.model_registry.get(arch, (None, None, None))
            if module is None or self.apis.resolve(module, cls) is not None:
                continue
            sibling = siblings.get(module)
            if sibling is not None and sibling.module != own:
                defined = parse_source(sibling.text, sibling.relpath)
                if defined and any(isinstance(n, ast.ClassDef) and n.name == cls for n in defined.body):
                    out.add((arch, cls, sibling.module))
                continue
            # the sibling an earlier migration wrote into the plugin (redirected to, not rewritten)
            held = self.redirects.get(module)
            if held and held != own and cls in ((self._base.get(held) or {}).get("classes") or {}):
                out.add((arch, cls, held))
        return sorted(out)

    def model_registrations(self) -> list[tuple[str, str]]:
        """(architecture, class) pairs to register, for classes the migrated file defines."""
        tree = parse_source(self.model_unit.text, "model")
        defined = {n.name for n in tree.body if isinstance(n, ast.ClassDef)} if tree else set()
        chosen = set(self.resolved["architectures"])
        return [(a, c) for a, c in sorted(self.resolved["classes"].items()) if c in defined and a in chosen]

    def summary(self) -> dict:
        return {
            # a closure module of our own (the transformers 5 modeling compat) has no upstream origin
            "closure": sorted(u.origin or f"{u.module} <- model-migrate-flagos"
                              for u in self.units.values() if u.role == "closure"),
            "config_bridges": sorted(f"{u.module} <- {u.origin or 'model-migrate-flagos (transformers 5 config base)'}"
                                     for u in self.units.values() if u.role == "config"),
            "compat": {m: sorted(v.names) for m, v in sorted(self.compat.items())},
            "backports": {bp.module: bp.what for bp in self.backports},
            "not_vendored": {f"{m}:{n}": why for (m, n), why in sorted(self.vendor_failed.items())},
        }


def _built_by_name(tree: ast.Module | None) -> list[str]:
    """Architectures a module builds by name: the literal ``architectures=[...]`` of its
    ``init_vllm_registered_model`` calls."""
    out: list[str] = []
    for call in ast.walk(tree) if tree is not None else ():
        func = call.func if isinstance(call, ast.Call) else None
        if (getattr(func, "id", None) or getattr(func, "attr", None)) != "init_vllm_registered_model":
            continue
        for kw in call.keywords:
            if kw.arg == "architectures" and isinstance(kw.value, ast.List | ast.Tuple):
                out += [e.value for e in kw.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
                        and e.value not in out]
    return out


def _read_only_in_dropped(tree: ast.Module, drops: set[tuple[int, str]]) -> set[str]:
    """Names every read of which sits in the value of a keyword argument ``drops`` removes (keyed by
    the call's or the value's line, as P6 findings point)."""
    inside: dict[str, int] = {}
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        for k in call.keywords:
            if k.arg and ((call.lineno, k.arg) in drops or (k.value.lineno, k.arg) in drops):
                for n in ast.walk(k.value):
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                        inside[n.id] = inside.get(n.id, 0) + 1
    if not inside:
        return set()
    total: dict[str, int] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in inside:
            total[n.id] = total.get(n.id, 0) + 1
    return {name for name, count in inside.items() if total.get(name) == count}


def _held_finding(module: str, relpath: str, line: int, found: list[Finding], blocks: bool) -> Finding:
    """P18 on the line that imports a held plugin module: why this model depends on work left there."""
    first = found[0]
    if blocks:
        return Finding("P18", relpath, line, 0, f"`{module}` (the plugin's own module, used as it is) will not "
                       f"import on the pinned vLLM: {first.message}",
                       fix=f"fix {module.replace('.', '/')}.py first (validate_migration.py shows it), or migrate it again",
                       data={"module": module, "import_time": True})
    errors = any(f.is_issue for f in found)
    return Finding("P18", relpath, line, 0, f"`{module}` (the plugin's own module, used as it is) has "
                   f"{len(found)} finding(s) left for you, so this model runs only once they are resolved; "
                   f"first: {format_text(first).splitlines()[0]}",
                   severity="error" if errors else "warning",
                   fix=f"resolve what validate_migration.py reports on {module.replace('.', '/')}.py, or migrate "
                       "it again", data={"module": module, "import_time": False})


def new_packages(plugin: PluginTree, modules: list[str]) -> list[str]:
    """``__init__.py`` relpaths that must exist for ``modules`` to import (compat/, configs/)."""
    out = []
    for mod in modules:
        parts = mod.split(".")[:-1]
        for i in range(2, len(parts) + 1):
            pkg = ".".join(parts[:i])
            if plugin.module_path(pkg) is None:
                rel = pkg.replace(".", "/") + "/__init__.py"
                if rel not in out:
                    out.append(rel)
    return out


__all__ = ["COMPAT_PKG", "Migration", "Unit", "new_packages"]



def _caveat_finding(f: Finding, text: str) -> Finding:
    """The warning a P9 default with a caveat keeps: the read is upstream's value only under a serving condition
    (on the line of the rewritten read when the file names the attribute once as a string)."""
    condition, remedy = f.data["caveat"]
    quoted = (f'"{f.data["attr"]}"', f"'{f.data['attr']}'")
    lines = [i for i, ln in enumerate(text.splitlines(), 1) if any(q in ln for q in quoted)]
    cls = f.data.get("class") or f.data.get("config_class") or ""
    return Finding("P9", f.file, lines[0] if len(lines) == 1 else f.line, f.col, severity="warning",
                   message=(f"`{f.data['attr']}` is read as {f.data['default']} (the pinned {cls.rsplit('.', 1)[-1]} "
                            f"has no such field), which is upstream's value except where the pinned vLLM serves it "
                            f"otherwise: {condition}"),
                   fix=remedy, data={"attr": f.data["attr"], "caveat": True})

