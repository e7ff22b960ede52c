"""Processors, feature extractors and their helpers that only transformers 5 has (rule P5).

Upstream vLLM imports ``Qwen3ASRProcessor`` from ``transformers.models.qwen3_asr``, a module
transformers 4.57.6 does not have. Like the processors vLLM itself ships (vendored whole into
``vllm_fl/processors/``), such a module is vendored whole from the transformers 5 source into
``vllm_fl/processors/tf5_<file>.py``; a name it takes from a transformers 5 framework module that
4.57.6 lacks (``audio_utils.make_audio_chat_template_content``, ``TorchvisionBackend``) is sliced
from that module with what it needs (the P16 slicer) into ``vllm_fl/processors/tf5_<module>.py``.
Every import is then either a name 4.57.6 has (kept, so classes keep their identity), another
vendored module, or missing: then nothing is vendored and the finding names what is missing.
Configuration classes are not vendored here: they get a bridge (P2, ``tf5_configs``).

Only syntax trees are emitted (``ast.unparse`` of the parsed 5.x source with its imports
re-pointed); nothing from a checkpoint reaches the code.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from flagos_migrate.astutil import parse_source, resolve_relative
from flagos_migrate.catalog.findings import Finding
from flagos_migrate.catalog.tables import (
    AUTO_MAPPINGS,
    DEPENDENCY_SUBSTITUTES,
    NEWER_DEPENDENCIES,
    TF5_FRAMEWORK_COMPAT,
    TRANSFORMERS_RENAMES,
)
from flagos_migrate.migrate.tf5_configs import BASE_MODULE as TF5_BASE_MODULE
from flagos_migrate.migrate.tf5_configs import (
    KEYMAP_MODULE,
    Bridge,
    Transformers5,
    _decorator_name,
    _runtime_names,
    _Translator,
    base_text,
    keymap_class_text,
    keymap_module_for,
    keymap_text,
    open_transformers5,
)
from flagos_migrate.migrate.unit import Unit
from flagos_migrate.migrate.vendor import _stmt_names, slice_definitions

PROCESSORS_PKG = "vllm_fl.processors"
# the class of the plugin's transformers 5 config base holding 5.x base-class methods 4.57.6 lacks
TF5_METHODS_MIXIN = "Transformers5ConfigMethods"


def tf5_base_methods() -> set[str]:
    """The methods :data:`TF5_METHODS_MIXIN` defines in the transformers 5 config base's source."""
    tree = ast.parse(base_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == TF5_METHODS_MIXIN)
    return {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
# whole modules of transformers/models/<x>/ that are vendored: not the modelling code, not configs
VENDORED_KINDS = ("processing_", "feature_extraction_", "image_processing_", "video_processing_", "tokenization_")
MAX_TF5_SLICE_LINES = 800  # a transformers 5 base class (TorchvisionBackend) is ~330 lines
MAX_TF5_MODELING_LINES = 1600  # P41: Gemma 4's vision and audio towers with what they need are ~1000 lines
# P41: 5.x framework names vendored modelling needs that 4.57.6 lacks (table ``framework``), written once from our source
TF5_MODELING_COMPAT = "vllm_fl.compat.tf5_modeling"
TF5_MODELING_COMPAT_SOURCE = Path(__file__).resolve().parent / "bridge_sources" / "tf5_modeling_compat.py"
_TOP_DEF = re.compile(rb"^(?:class|def)\s+([A-Za-z_][A-Za-z0-9_]*)|^([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=\n]*)?=", re.M)


def vendored_module_for(tf5_module: str) -> str:
    """``transformers.models.qwen3_asr.processing_qwen3_asr`` -> ``vllm_fl.processors.tf5_processing_qwen3_asr``;
    ``transformers.audio_utils`` -> ``vllm_fl.processors.tf5_audio_utils``."""
    parts = tf5_module.split(".")
    stem = parts[-1] if len(parts) == 4 and parts[1] == "models" else "_".join(parts[1:])
    return f"{PROCESSORS_PKG}.tf5_{stem}"


def is_model_module(tf5_module: str) -> bool:
    parts = tf5_module.split(".")
    return len(parts) == 4 and parts[1] == "models" and parts[3].startswith(VENDORED_KINDS)


def top_level_defs(data: bytes) -> set[str]:
    return {(m.group(1) or m.group(2)).decode() for m in _TOP_DEF.finditer(data)}


def defines(data: bytes, name: str) -> bool:
    """The module source ``data`` binds ``name`` at module level: a definition at column 0, or one
    inside a module-level ``if``/``try`` (``if is_torchvision_available(): mapping = {...}``)."""
    if name.encode() not in data:
        return False
    if name in top_level_defs(data):
        return True
    tree = parse_source(data.decode("utf-8", "replace"), "<tf5>")
    return tree is not None and any(name in _stmt_names(stmt) for stmt in tree.body
                                    if isinstance(stmt, (ast.If, ast.Try)))


def substitute_import(module: str, alias: ast.alias) -> ast.Try:
    """``from module import name`` that only a newer dependency has (P5 table ``substitutes``): tried
    first, else the module the older stack imports for the same thing, bound to the same name."""
    bound = alias.asname or alias.name
    sub = DEPENDENCY_SUBSTITUTES[f"{module}:{alias.name}"]
    fallback = ast.Import([ast.alias(sub, None if sub == bound else bound)])
    handler = ast.ExceptHandler(ast.Name("ImportError", ast.Load()), None, [fallback])
    return ast.Try([ast.ImportFrom(module, [alias], 0)], [handler], [], [])


@dataclass
class Tf5Module:
    """One module vendored from transformers 5: whole (a model's processor) or a slice of names."""

    origin: str
    target: str
    whole: bool
    names: set[str] = field(default_factory=set)
    text: str = ""
    missing: list[str] = field(default_factory=list)
    ok: bool = True
    busy: bool = False  # being translated: a module importing it back gets its target
    registrations: dict[str, tuple[str, str]] = field(default_factory=dict)  # P41: model -> (Auto class, config)


class Tf5Vendoring:
    """A part of ``engine.Migration`` (a mixin): what comes from transformers 5 (``tf5``, its source;
    config bridges, the key-mapping config, vendored processors); reads ``apis`` (the pinned indexes),
    writes ``units``."""

    @property
    def tf5(self) -> Transformers5 | None:
        """The transformers 5 source (``$MMF_TRANSFORMERS5`` or the newest cached wheel), if any."""
        if self._tf5 is False:
            try:
                src = open_transformers5()
            except Exception as exc:  # an unreadable wheel: no bridges, the P5 findings stay
                self.notes.append(f"transformers 5 source unusable: {exc}")
                src = None
            self._tf5 = Transformers5(src) if src is not None else None
        return self._tf5

    def _fill_model_type_from_tf5(self) -> None:
        cc = self.resolved.get("ConfigClassName")
        if self.resolved.get("model_type") or not cc or self.apis.resolve("transformers", cc) is not None:
            return
        tf5 = self.tf5
        mt = tf5.model_type_of(cc) if tf5 else None
        if mt:
            self.resolved["model_type"] = mt
            self.resolved["notes"] = [n for n in self.resolved.get("notes", []) if "pass --hf-config" not in n]

    def _bridge_arch_configs(self) -> None:
        """P2 for the architectures this migration registers: a checkpoint whose model type only
        transformers 5 maps to the architecture (``granitemoe_swa`` for ``GraniteMoeSWAForCausalLM``,
        served by ``granitemoeshared.py`` upstream, whose file imports only ``GraniteMoeSharedConfig``)
        names a config class the pinned transformers lacks, so the pinned vLLM cannot read its
        config.json; the class gets a bridge and its ``_CONFIG_REGISTRY`` entry like an imported one."""
        tf5 = self.tf5
        if tf5 is None:
            return
        for arch in self.resolved.get("architectures") or []:
            for mt in tf5.arch_model_types.get(arch, []):
                cc = tf5.model_types.get(mt)
                if (cc and mt not in self.up.config_registry and cc != self.resolved.get("ConfigClassName")
                        and self.apis.resolve("transformers", cc) is None):
                    self._tf5_bridge(cc)

    def _tf5_bridge(self, cls_name: str) -> str | None:
        """Translate the transformers 5 module defining ``cls_name`` (and the config modules it
        needs) into ``vllm_fl/configs/``; the bridge module, or None when it cannot be written."""
        if cls_name in self.bridged:
            if self.bridged[cls_name].startswith(TF5_BASE_MODULE.rsplit(".", 1)[0] + ".tf5_"):
                self.tf5_bridged.setdefault(cls_name, self.bridged[cls_name])
            return self.bridged[cls_name]
        tf5 = self.tf5
        origin = tf5.module_of(cls_name) if tf5 else None
        if origin is None:
            return None

        def pinned_has(module: str, name: str) -> bool:
            return self.apis.resolve(module, name) is not None

        bridges, todo, seen = [], [origin], set()
        while todo:
            mod = todo.pop(0)
            if mod in seen:
                continue
            seen.add(mod)
            b = tf5.translate(mod, pinned_has)
            if b.missing:
                self.vendor_failed[("transformers", cls_name)] = (
                    f"its transformers {tf5.version} config ({mod}) needs what transformers 4.x lacks: "
                    + ", ".join(b.missing))
                return None
            bridges.append(b)
            todo.extend(b.needs)
        base_module = TF5_BASE_MODULE
        if base_module not in self.units:
            self.units[base_module] = Unit(base_module, None, "config", base_text(), base_text())
            self.set_overlay(base_module, base_text())
        for b in bridges:
            for name in b.classes:
                self.bridged.setdefault(name, b.module)
            if b.module not in self.units:
                self.units[b.module] = Unit(b.module, b.origin, "config", b.text, b.text)
                self.set_overlay(b.module, b.text)
        self.tf5_bridged[cls_name] = self.bridged[cls_name]
        return self.bridged[cls_name]

    def _key_mapping_config(self) -> None:
        """P33: with ``--hf-config``, config.json keys the pinned config class does not take but that map
        to keys it does (a transformers 5 config.json: ``num_local_experts``, ``rope_parameters``) get a
        subclass of the pinned class that maps them, registered for the model_type."""
        from flagos_migrate.analysis.config_keys import drift_for

        if not isinstance(self.hf_config, dict):
            return
        report = drift_for(self.apis, self.resolved.get("ConfigClassName"), self.hf_config, self.tf5)
        keymap = {k["key"]: tuple(k["maps_to"]) for k in (report or {}).get("keys", []) if k["maps_to"]}
        mt = self.hf_config.get("model_type")
        module = keymap_module_for(mt) if isinstance(mt, str) and keymap else None
        if module is None:
            return
        text = keymap_class_text(report["config_class"], mt, keymap, self.apis.index_for("transformers").version)
        if text is None:
            self.notes.append("config.json key drift not mapped: a key or class name is not a plain identifier")
            return
        self.units[KEYMAP_MODULE] = Unit(KEYMAP_MODULE, None, "config", keymap_text(), keymap_text(), {"P33"})
        self.units[module] = Unit(module, None, "config", text, text, {"P33"})
        self.set_overlay(module, text)
        self.key_mapped = (mt, report["config_class"], module)

    def _tf5_state(self) -> dict[str, Tf5Module]:
        if not hasattr(self, "_tf5_mods"):
            self._tf5_mods: dict[str, Tf5Module] = {}
            self.tf5_vendored: dict[tuple[str, str], str] = {}
        return self._tf5_mods

    def _tf5_locate(self, module: str, name: str, depth: int = 0) -> str | None:
        """The transformers 5 module that defines what ``from module import name`` binds: its own
        top-level definition, an explicit import followed (``from .x import name``), or, for a
        lazy package (``transformers``, ``transformers.models.x``), the processor-kind module of it
        that defines the name."""
        src = self.tf5.source
        base = module.replace(".", "/")
        rel = next((r for r in (base + ".py", base + "/__init__.py") if src.has(r)), None)
        if rel is None or depth > 4:
            return None
        data = src.read_bytes(rel)
        if name.encode() in data:
            if defines(data, name):
                return module
            tree = parse_source(data.decode("utf-8", "replace"), rel)
            for node in ast.walk(tree) if tree is not None else ():
                if isinstance(node, ast.ImportFrom) and any(a.name == name and not a.asname for a in node.names):
                    target = (resolve_relative(module, rel.endswith("__init__.py"), node.level, node.module)
                              if node.level else node.module or "")
                    if target.split(".")[0] == "transformers" and target != module:
                        return self._tf5_locate(target, name, depth + 1)
        if not rel.endswith("__init__.py"):
            return None
        if module == "transformers":
            def wanted(r: str) -> bool:
                return (r.startswith("transformers/models/") and r.count("/") == 3
                        and r.rsplit("/", 1)[1].startswith(VENDORED_KINDS))
        else:
            def wanted(r: str) -> bool:
                return (r.startswith(base + "/") and r.count("/") == base.count("/") + 1
                        and r.rsplit("/", 1)[1].startswith(VENDORED_KINDS))
        needle = name.encode()
        for r in sorted(r for r in src.files() if wanted(r)):
            data = src.read_bytes(r)
            if needle in data and defines(data, name):
                return r[:-3].replace("/", ".")
        return None

    def _tf5_vendor(self, module: str, name: str) -> str | None:
        """The plugin module that provides ``name`` (imported from the transformers 5 ``module``),
        vendored from the transformers 5 source; None when that cannot be done (the reason is in
        ``vendor_failed``)."""
        mods = self._tf5_state()
        key = (module, name)
        if key in self.tf5_vendored:
            return self.tf5_vendored[key]
        if self.tf5 is None or (name in TRANSFORMERS_RENAMES) or name.endswith("Config"):
            return None
        origin = self._tf5_locate(module, name)
        if origin is None:
            self.vendor_failed[("transformers", name)] = f"transformers {self.tf5.version} has no {module}:{name}"
            return None
        whole = is_model_module(origin)
        if origin.split(".")[1] == "models" and not whole:
            self.vendor_failed[("transformers", name)] = f"{origin} is modelling code, not a processor"
            return None
        m = mods.get(origin)
        if m is None:
            m = mods[origin] = Tf5Module(origin, vendored_module_for(origin), whole)
            if not whole:
                m.names |= self._tf5_held_names(origin, m.target)
        elif not m.ok:
            self.vendor_failed[("transformers", name)] = f"{origin} needs what transformers 4.x lacks: " + ", ".join(m.missing)
            return None
        self.tf5_vendored[key] = m.target
        if m.busy or (m.text and (whole or name in m.names)):
            return m.target  # done, or being translated (modules that import each other)
        m.names.add(name)
        m.busy = True
        try:
            ok = self._tf5_translate(m)
        finally:
            m.busy = False
        if not ok:
            self.tf5_vendored.pop(key, None)
            self.vendor_failed[("transformers", name)] = f"{origin} needs what transformers 4.x lacks: " + ", ".join(m.missing)
            return None
        return m.target

    def _tf5_held_names(self, origin: str, target: str) -> set[str]:
        """The names a slice the plugin already holds exports (its ``__all__``) that ``origin`` defines:
        the slice is regenerated on every apply, so it keeps them, else a later model's apply drops
        what an earlier model imports from it (qwen3_asr's ``import_utils`` slice dropped gemma4's
        ``is_torchcodec_greater_or_equal``)."""
        path = self.plugin.module_path(target)
        data = self.tf5.source.read_bytes(origin.replace(".", "/") + ".py")
        tree = parse_source(path.read_text(encoding="utf-8", errors="replace"), str(path)) if path else None
        for node in tree.body if tree is not None else ():
            if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]
                    and isinstance(node.value, ast.List)):
                return {e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
                        and e.value.isidentifier() and defines(data, e.value)}
        return set()

    def _tf5_translate(self, m: Tf5Module) -> bool:
        rel = m.origin.replace(".", "/") + ".py"
        text = self.tf5.source.read_text(rel)
        if not m.whole:
            sl = slice_definitions(text, m.origin, sorted(m.names), self._tf5_pinned_has, MAX_TF5_SLICE_LINES)
            if sl is None:
                m.ok, m.missing = False, [f"{m.origin}:{n}" for n in sorted(m.names)] + ["(not sliceable)"]
                return False
            imports = "".join(f"from {mod} import {', '.join(ns)}\n" for mod, ns in sl.imports.items() if mod != "__future__")
            text = ("from __future__ import annotations\n" if sl.future_annotations else "") + \
                "\n".join(sl.plain_imports) + "\n" + imports + "\n\n" + "\n\n".join(sl.code)
        tree = parse_source(text, rel)
        if tree is None:
            m.ok, m.missing = False, [f"{m.origin}: does not parse"]
            return False
        missing: list[str] = []
        tree.body = self._tf5_imports(tree.body, m.origin, missing, import_time=True)
        for node in ast.walk(tree):
            # documentation only; 4.57.6's auto_docstring fails on 5.x signatures (``int | None``)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                node.decorator_list = [d for d in node.decorator_list if _decorator_name(d) != "auto_docstring"]
        if not m.whole:
            tree.body.append(ast.Assign([ast.Name("__all__", ast.Store())],
                                        ast.List([ast.Constant(n) for n in sorted(m.names)], ast.Load())))
        if missing:
            m.ok, m.missing = False, sorted(set(missing))
            return False
        body = ast.unparse(ast.fix_missing_locations(tree))
        how = "the whole module" if m.whole else "the definitions " + ", ".join(sorted(m.names)) + " with what they need"
        m.text = (f'"""Vendored from transformers {self.tf5.version}: {m.origin} ({how}).\n\n'
                  "Generated by model-migrate-flagos (rule P5): transformers 4.57.6 lacks it; every name it imports\n"
                  "is one 4.57.6 has or another vendored module. Regenerated on every migrate_model.py apply.\n"
                  '"""\n' + body + "\n")
        self.units[m.target] = Unit(m.target, m.origin, "closure", m.text, m.text, {"P5"})
        self.set_overlay(m.target, m.text)
        return True

    def _flag_tf5_base_drift(self) -> None:
        """After every unit is migrated (each pass re-analyses): P5 on vendored classes built on a base
        transformers 5 rewrote."""
        for m in self._tf5_state().values():
            unit = self.units.get(m.target)
            if m.ok and m.text and unit is not None:
                unit.after = [f for f in unit.after if not (f.rule == "P5" and "class" in f.data)] + self._tf5_base_drift(unit)
        # upstream vLLM's own config modules too: written for transformers 5's PreTrainedConfig, they keep 4.57.6's
        # PretrainedConfig (P5's rename), which lacks what 5.x added (bailing_moe_v3_vl: self.validate_layer_type())
        if self.tf5 is not None:
            for unit in list(self.units.values()):
                if unit.role == "config" and (unit.origin or "").startswith("vllm.transformers_utils.configs."):
                    self._translate_strict_configs(unit)
                    drift = self._tf5_base_drift(unit, "upstream vLLM, for transformers")
                    drift = [f for f in drift if not self._mix_in_tf5_methods(unit, f)]
                    unit.after = [f for f in unit.after if not (f.rule == "P5" and "class" in f.data)] + drift \
                        + _strict_on_a_4x_base(unit)

    def _translate_strict_configs(self, unit: Unit) -> bool:
        """P5: an upstream vLLM config class written as a transformers 5 ``@strict`` dataclass on
        ``PretrainedConfig`` (dory) is translated as the transformers 5 config bridges are (``tf5_configs``):
        the same class with its fields as ``__v5_fields__``, its methods and ``__post_init__``, on the plugin's
        transformers 5 base, which assigns the fields, runs the post-init and the class's validators as 5.x
        does. Only the class's statements are re-emitted; the rest of the module keeps its text. True if done."""
        tree = parse_source(unit.text, unit.relpath)
        if tree is None:
            return False
        classes = [cls for cls in tree.body if isinstance(cls, ast.ClassDef) and _strict_decorator(tree, cls)
                   and [getattr(b, "id", None) for b in cls.bases] == ["PretrainedConfig"] and not cls.keywords]
        bound = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                 for a in n.names} | {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        if not classes or "PreTrainedConfig" in bound:
            return False
        before = _runtime_names(tree.body)
        bridge = Bridge(unit.origin or unit.module, unit.module)
        translator = _Translator(self.tf5, unit.origin or unit.module, self._tf5_pinned_has, bridge)
        lines = unit.text.splitlines(keepends=True)
        for cls in reversed(classes):  # bottom up: line numbers above stay valid
            start = min([d.lineno for d in cls.decorator_list] + [cls.lineno])
            new = translator.config_class(cls)
            new.bases = [ast.Name("PreTrainedConfig", ast.Load())]
            lines[start - 1:cls.end_lineno] = [ast.unparse(ast.fix_missing_locations(new)) + "\n"]
        if bridge.needs:  # a sub-config by model_type from another transformers 5 module: not this translation
            return False
        text = "".join(lines)
        # an import only the translated classes read (``strict``, the 4.x base) goes with them
        tree = parse_source(text, unit.relpath)
        gone = before - _runtime_names(tree.body)
        for node in reversed([n for n in tree.body if isinstance(n, ast.ImportFrom)]):
            if all((a.asname or a.name) in gone for a in node.names):
                lines = text.splitlines(keepends=True)
                del lines[node.lineno - 1:node.end_lineno]
                text = "".join(lines)
        imp = f"from {TF5_BASE_MODULE} import PreTrainedConfig\n"
        body = parse_source(text, unit.relpath).body
        doc = body[0].end_lineno if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else 0
        at = max([n.end_lineno for n in body if isinstance(n, (ast.Import, ast.ImportFrom))] + [doc])
        lines = text.splitlines(keepends=True)
        lines.insert(at, imp)
        unit.text = "".join(lines)
        unit.rules.add("P5")
        if TF5_BASE_MODULE not in self.units:
            self.units[TF5_BASE_MODULE] = Unit(TF5_BASE_MODULE, None, "config", base_text(), base_text())
            self.set_overlay(TF5_BASE_MODULE, base_text())
        return True

    def _mix_in_tf5_methods(self, unit: Unit, finding: Finding) -> bool:
        """P5: an upstream vLLM config class calling only base methods the plugin's transformers 5 base writes as
        5.x does (``Transformers5ConfigMethods``) gets that class mixed in after its 4.57.6 base: the names the
        pinned base lacks resolve to 5.x's bodies, nothing the pinned base defines is shadowed. True if done."""
        if not set(finding.data["methods"]) <= tf5_base_methods():
            return False
        tree = parse_source(unit.text, unit.relpath)
        cls = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == finding.data["class"]),
                   None) if tree is not None else None
        if cls is None or not cls.bases or cls.keywords:
            return False
        lines = unit.text.splitlines(keepends=True)
        last = cls.bases[-1]
        raw = lines[last.end_lineno - 1].encode("utf-8")
        lines[last.end_lineno - 1] = (raw[:last.end_col_offset] + b", " + TF5_METHODS_MIXIN.encode()
                                      + raw[last.end_col_offset:]).decode("utf-8")
        text = "".join(lines)
        imp = f"from {TF5_BASE_MODULE} import {TF5_METHODS_MIXIN}\n"
        if imp not in text:
            body = parse_source(text, unit.relpath).body
            at = max((n.end_lineno for n in body if isinstance(n, (ast.Import, ast.ImportFrom))), default=0)
            lines = text.splitlines(keepends=True)
            lines.insert(at, imp)
            text = "".join(lines)
        unit.text = text
        unit.rules.add("P5")
        if TF5_BASE_MODULE not in self.units:
            self.units[TF5_BASE_MODULE] = Unit(TF5_BASE_MODULE, None, "config", base_text(), base_text())
            self.set_overlay(TF5_BASE_MODULE, base_text())
        return True

    def _tf5_base_drift(self, unit: Unit, written: str = "vendored from transformers") -> list[Finding]:
        """P5 on a vendored class whose ``self.X()`` / ``super().X()`` only transformers 5's version of a
        base it keeps from 4.57.6 defines (5.x rewrote ``BaseImageProcessor``: ``_set_attributes``): the
        module imports, but the class fails when built on 4.57.6's base."""
        from flagos_migrate.analysis.facts import AnalysisContext, ModuleFacts

        tree = parse_source(unit.text, unit.relpath)
        if tree is None:
            return []
        m = ModuleFacts(tree, AnalysisContext(self.ctx_apis(), unit.module, unit.relpath))
        out: list[Finding] = []
        for cls in m.local_classes.values():
            lin = m.hierarchy.linearize(("local", cls))
            kept = [o[0] for k, o in lin if k == "pinned" and o[0].module.split(".")[0] == "transformers"]
            if not kept:
                continue
            # a base kept under 4.57.6's name (P5's rename: PretrainedConfig) is transformers 5's class of the other
            older = {new: old for old, new in TRANSFORMERS_RENAMES.items()}
            newer = {f"{s.module}.{s.name}": self._tf5_class_members(s.module, older.get(s.name, s.name)) for s in kept}
            lacking: dict[str, int] = {}
            for node in m.below(cls, ast.Call):
                f = node.func
                if not isinstance(f, ast.Attribute) or m.enclosing_class(node) is not cls:
                    continue
                if not ((isinstance(f.value, ast.Name) and f.value.id == "self") or (
                        isinstance(f.value, ast.Call) and isinstance(f.value.func, ast.Name) and f.value.func.id == "super")):
                    continue
                if any(f.attr in ms for ms in newer.values()) and m.hierarchy.hierarchy_defines(lin, f.attr) is not True:
                    lacking.setdefault(f.attr, node.lineno)
            if lacking:
                bases = ", ".join(sorted(b for b, ms in newer.items() if ms & set(lacking)))
                out.append(Finding(
                    "P5", unit.relpath, min(lacking.values()), 0,
                    f"class {cls.name} ({written} {self.tf5.version}) calls "
                    f"{', '.join(sorted(lacking))}, which transformers {self.tf5.version}'s {bases} defines and "
                    "transformers 4.57.6's does not: the module imports, building the class fails",
                    severity="error", fix=("vendor a processor written for 4.57.6's base, or port those methods"
                                           if written.startswith("vendored") else
                                           "build the class on a base that has them (the plugin's transformers 5 "
                                           "config base vllm_fl.configs.tf5_base.PreTrainedConfig defines "
                                           "validate_layer_type / validate_rope), or port those methods"),
                    data={"class": cls.name, "methods": sorted(lacking), "bases": bases}))
        return out

    def _tf5_class_members(self, module: str, name: str, depth: int = 0) -> set[str]:
        """Methods the transformers 5 class ``module.name`` and its transformers bases define."""
        origin = self._tf5_locate(module, name) if depth < 8 else None
        rel = origin.replace(".", "/") + ".py" if origin else None
        tree = parse_source(self.tf5.source.read_text(rel), rel) if rel and self.tf5.source.has(rel) else None
        cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None) if tree else None
        if cls is None:
            return set()
        # methods only: an annotated instance attribute (``feature_extractor: Any``) is set at run time in both
        members = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        imported = {a.asname or a.name: (resolve_relative(origin, False, n.level, n.module) if n.level else n.module or "")
                    for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        for b in cls.bases:
            if isinstance(b, ast.Name):
                src = imported.get(b.id, origin)
                if src.split(".")[0] == "transformers":
                    members |= self._tf5_class_members(src, b.id, depth + 1)
        return members

    def _tf5_pinned_has(self, module: str, name: str) -> bool:
        return self.apis.resolve(module, name) is not None

    def _tf5_imports(self, body: list[ast.stmt], origin: str, missing: list[str], import_time: bool) -> list[ast.stmt]:
        """``body`` with every ``from`` import absolute and re-pointed: kept where 4.57.6 has the
        name, else to the vendored module (import-time imports only; a missing name inside a
        function stays absolute and fails only when that function runs)."""
        out: list[ast.stmt] = []
        for stmt in body:
            if isinstance(stmt, ast.ImportFrom):
                out += self._tf5_import(stmt, origin, missing, import_time)
                continue
            if isinstance(stmt, ast.Import) and import_time:
                missing += [f"{a.name} ({NEWER_DEPENDENCIES.get(a.name)})" for a in stmt.names
                            if not self._third_party_ok(a.name, None)]
            inner_time = import_time and not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for fname in ("body", "orelse", "finalbody"):
                sub = getattr(stmt, fname, None)
                if isinstance(sub, list) and sub and isinstance(sub[0], ast.stmt):
                    setattr(stmt, fname, self._tf5_imports(sub, origin, missing, inner_time) or [ast.Pass()])
            for handler in getattr(stmt, "handlers", []):
                handler.body = self._tf5_imports(handler.body, origin, missing, inner_time) or [ast.Pass()]
            out.append(stmt)
        return out

    def _third_party_ok(self, module: str, name: str | None) -> bool:
        """A non-transformers import of vendored 5.x code, unless the P5 table ``newer_dependencies``
        names it: what only the newer dependency transformers 5 requires has (``huggingface_hub.utils.httpx``)."""
        return f"{module}:{name}" not in NEWER_DEPENDENCIES and module not in NEWER_DEPENDENCIES

    def _tf5_import(self, stmt: ast.ImportFrom, origin: str, missing: list[str], import_time: bool) -> list[ast.stmt]:
        src = resolve_relative(origin, False, stmt.level, stmt.module) if stmt.level else stmt.module or ""
        if src.split(".")[0] != "transformers":
            subs = [a for a in stmt.names if f"{src}:{a.name}" in DEPENDENCY_SUBSTITUTES]
            if import_time:
                missing += [f"{src}:{a.name} ({NEWER_DEPENDENCIES.get(f'{src}:{a.name}')})"
                            for a in stmt.names if a not in subs and not self._third_party_ok(src, a.name)]
            rest = [a for a in stmt.names if a not in subs]
            return ([ast.ImportFrom(src, rest, stmt.level)] if rest else []) + [substitute_import(src, a) for a in subs]
        grouped: dict[str, list[ast.alias]] = {}
        out: list[ast.stmt] = []
        modeling = ".modeling_" in origin  # P41's vendored towers (processor modules keep P5's handling)
        for a in stmt.names:
            target = src
            if modeling and f"{src}:{a.name}" in TF5_FRAMEWORK_COMPAT:  # P41: 4.57.6 lacks it or has it with another API
                self._tf5_modeling_compat()
                grouped.setdefault(TF5_MODELING_COMPAT, []).append(ast.alias(a.name, a.asname))
                continue
            if modeling and a.name.endswith("Config") and not self._tf5_pinned_has(src, a.name) and import_time:
                bridge = self._tf5_bridge(a.name)  # a config only transformers 5 has: its bridge (P2)
                if bridge:
                    grouped.setdefault(bridge, []).append(ast.alias(a.name, a.asname))
                    continue
            if (modeling and a.name != "*" and import_time and not self._tf5_pinned_has(src, a.name)
                    and self.tf5.source.has(f"{src.replace('.', '/')}/{a.name}.py")):
                # ``from transformers import initialization as init``: a module only transformers 5 has, vendored whole
                sub = self._tf5_vendor_module(f"{src}.{a.name}")
                if sub is None:
                    missing.append(f"{src}.{a.name}")
                else:
                    pkg, _, leaf = sub.rpartition(".")
                    out.append(ast.ImportFrom(pkg, [ast.alias(leaf, a.asname or a.name)], 0))
                continue
            if a.name != "*" and not self._tf5_pinned_has(src, a.name):
                renamed = TRANSFORMERS_RENAMES.get(a.name)
                if renamed and self._tf5_pinned_has("transformers", renamed):
                    grouped.setdefault("transformers", []).append(ast.alias(renamed, a.asname or a.name))
                    continue
                vendored = self._tf5_vendor(src, a.name) if import_time else self.tf5_vendored.get((src, a.name))
                if vendored:
                    target = vendored
                elif import_time:
                    missing.append(f"{src}:{a.name}")
            grouped.setdefault(target, []).append(ast.alias(a.name, a.asname))
        return [ast.ImportFrom(t, names, 0) for t, names in grouped.items()] + out

    def _tf5_vendor_module(self, origin: str) -> str | None:
        """A transformers 5 framework module 4.57.6 lacks (``transformers.initialization``), vendored whole."""
        mods = self._tf5_state()
        m = mods.get(origin)
        if m is None:
            m = mods[origin] = Tf5Module(origin, vendored_module_for(origin), True)
            m.busy = True
            try:
                m.ok = self._tf5_translate(m)
            finally:
                m.busy = False
        return m.target if m.ok or m.busy else None

    def _tf5_modeling_compat(self) -> None:
        if TF5_MODELING_COMPAT not in self.units:
            text = TF5_MODELING_COMPAT_SOURCE.read_text("utf-8")
            self.units[TF5_MODELING_COMPAT] = Unit(TF5_MODELING_COMPAT, None, "closure", text, text, {"P41"})
            self.set_overlay(TF5_MODELING_COMPAT, text)

    def _tf5_auto_mapping(self, factory: str) -> dict[str, str]:
        """model_type -> model class of transformers 5's mapping for the Auto class ``factory`` (table ``auto_mappings``)."""
        name = AUTO_MAPPINGS.get(factory)
        tree = self.tf5.tree("transformers.models.auto.modeling_auto") if name else None
        for node in tree.body if tree is not None else ():
            if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]
                    and isinstance(node.value, ast.Call) and node.value.args):
                try:
                    return dict(ast.literal_eval(node.value.args[0]))
                except (ValueError, TypeError, SyntaxError):
                    return {}
        return {}

    def _tf5_sub_config(self, configs: list[str], attr: str) -> str | None:
        """The config class transformers 5 declares for the field ``attr`` of one of ``configs``: its
        annotation (``vision_config: Gemma4VisionConfig | dict[str, Any] | None``), else its ``sub_configs_defaults``
        entry (``"vision_config": SubConfigSpec(config_class=AutoConfig, model_type="gemma4_vision")``)."""
        for cc in configs:
            module = self.tf5.module_of(cc)
            tree = self.tf5.tree(module) if module else None
            cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cc), None) if tree else None
            for stmt in cls.body if cls is not None else ():
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == attr:
                    named = [n.id for n in ast.walk(stmt.annotation)
                             if isinstance(n, ast.Name) and n.id in self.tf5.config_classes]
                    if named:
                        return named[0]
            for stmt in cls.body if cls is not None else ():
                if (isinstance(stmt, ast.Assign) and [getattr(t, "id", None) for t in stmt.targets] == ["sub_configs_defaults"]
                        and isinstance(stmt.value, ast.Dict)):
                    for key, spec in zip(stmt.value.keys, stmt.value.values):
                        if not (isinstance(key, ast.Constant) and key.value == attr and isinstance(spec, ast.Call)):
                            continue
                        kw = {k.arg: k.value for k in spec.keywords}
                        mt = kw.get("model_type")
                        if isinstance(mt, ast.Constant) and isinstance(mt.value, str):
                            return self.tf5.model_types.get(mt.value)
                        named = kw.get("config_class")
                        if isinstance(named, ast.Name) and named.id in self.tf5.config_classes:
                            return named.id
        return None

    def _tf5_towers(self, requests: list[tuple[str, list[str], str | None]]) -> list[tuple[str, str]] | None:
        """P41: for each ``Auto*.from_config(config=<x>.<attr>)`` (factory, the file's bridged configs, attr), the model
        class transformers 5's mapping builds for that sub-config, vendored with what it needs from its
        ``modeling_*.py`` and registered with the Auto class for the bridged config. The (module, class) pairs to
        import, or None when one of them cannot be (all or none: the finding goes when the file imports one)."""
        if self.tf5 is None:
            return None
        wanted: dict[str, dict[str, tuple[str, str]]] = {}  # modeling module -> model class -> (factory, config)
        for factory, configs, attr in requests:
            cc = self._tf5_sub_config(configs, attr) if attr else None
            mt = self.tf5.model_type_of(cc) if cc else None
            model = self._tf5_auto_mapping(factory).get(mt) if mt else None
            module = self.tf5.module_of(cc) if cc else None
            modeling = module.replace(".configuration_", ".modeling_") if module else None
            rel = modeling.replace(".", "/") + ".py" if modeling else None
            if not (model and rel and self.tf5.source.has(rel) and defines(self.tf5.source.read_bytes(rel), model)):
                return None
            wanted.setdefault(modeling, {})[model] = (factory, cc)
        out = []
        for modeling, models in wanted.items():
            target = self._tf5_vendor_modeling(modeling, models)
            if target is None:
                return None
            out += [(target, model) for model in models]
        return out

    def _tf5_held_registrations(self, origin: str, target: str) -> dict[str, tuple[str, str]]:
        """``{model: (Auto class, config)}`` of the ``Auto.register(Config, Model, ...)`` statements of the module
        the plugin already holds at ``target``, for the models transformers 5's ``origin`` defines."""
        path = self.plugin.module_path(target)
        tree = parse_source(path.read_text(encoding="utf-8", errors="replace"), str(path)) if path else None
        data = self.tf5.source.read_bytes(origin.replace(".", "/") + ".py")
        out: dict[str, tuple[str, str]] = {}
        for node in tree.body if tree is not None else ():
            call = node.value if isinstance(node, ast.Expr) else None
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "register"
                    and isinstance(call.func.value, ast.Name) and call.func.value.id in AUTO_MAPPINGS
                    and len(call.args) == 2 and all(isinstance(a, ast.Name) for a in call.args)
                    and defines(data, call.args[1].id) and self.tf5.module_of(call.args[0].id)):
                out[call.args[1].id] = (call.func.value.id, call.args[0].id)
        return out

    def _tf5_vendor_modeling(self, origin: str, models: dict[str, tuple[str, str]]) -> str | None:
        """The slice of the transformers 5 ``origin`` (a ``modeling_*.py``) holding ``models`` (class -> (Auto class,
        bridged config)), each registered with its Auto class; its plugin module, or None (``vendor_failed``)."""
        mods = self._tf5_state()
        m = mods.get(origin)
        if m is None:
            m = mods[origin] = Tf5Module(origin, vendored_module_for(origin), False)
            # a tower an earlier model's apply vendored into the plugin's module stays (its registration too)
            models = {**self._tf5_held_registrations(origin, m.target), **models}
        if set(models) <= m.names and m.text:
            return m.target
        m.names |= set(models)
        models = m.registrations = {**m.registrations, **models}
        text = _without_foreign_isinstance(self.tf5.source.read_text(origin.replace(".", "/") + ".py"), origin,
                                           sorted(m.names))
        sl = slice_definitions(text, origin, sorted(m.names), self._tf5_pinned_has, MAX_TF5_MODELING_LINES) \
            if text is not None else None
        missing: list[str] = []
        tree = None
        if sl is not None:
            imports = "".join(f"from {mod} import {', '.join(ns)}\n" for mod, ns in sl.imports.items()
                              if mod != "__future__")
            tree = parse_source(("from __future__ import annotations\n" if sl.future_annotations else "")
                                + "\n".join(sl.plain_imports) + "\n" + imports + "\n\n" + "\n\n".join(sl.code), origin)
        if tree is None:
            missing.append(f"{origin}: not sliceable within {MAX_TF5_MODELING_LINES} lines")
        else:
            tree.body = self._tf5_imports(tree.body, origin, missing, import_time=True)
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    node.decorator_list = [d for d in node.decorator_list if _decorator_name(d) != "auto_docstring"]
        bridges = {cfg: self._tf5_bridge(cfg) for _, cfg in models.values()}
        missing += [f"{cfg} (no config bridge)" for cfg, b in bridges.items() if not b]
        if missing:
            m.ok, m.missing = False, sorted(set(missing))
            for model in models:
                self.vendor_failed[("transformers", model)] = (f"{origin} needs what transformers 4.x lacks: "
                                                               + ", ".join(m.missing))
            return None
        # registered where defined: the model file's import of the class makes its Auto.from_config find it
        reg = [f"from transformers import {', '.join(sorted({f for f, _ in models.values()}))}"]
        reg += [f"from {bridges[cfg]} import {cfg}" for _, cfg in sorted(models.values())]
        reg += [f"{factory}.register({cfg}, {model}, exist_ok=True)" for model, (factory, cfg) in sorted(models.items())]
        tree.body += ast.parse("\n".join(reg)).body
        body = ast.unparse(ast.fix_missing_locations(tree))
        m.text = (f'"""Vendored from transformers {self.tf5.version}: {origin} (the definitions {", ".join(sorted(m.names))}'
                  " with what they need).\n\nGenerated by model-migrate-flagos (rule P41): transformers 4.57.6 has no "
                  "model for these configs; every name\nit imports is one 4.57.6 has, a config bridge, another vendored "
                  "module or the plugin's compat module.\nRegenerated on every migrate_model.py apply.\n\"\"\"\n"
                  + body + "\n")
        m.ok = True
        self.units[m.target] = Unit(m.target, origin, "closure", m.text, m.text, {"P41"})
        self.set_overlay(m.target, m.text)
        return m.target


__all__ = ["PROCESSORS_PKG", "Tf5Vendoring", "is_model_module", "vendored_module_for"]


def _strict_decorator(tree: ast.Module, cls: ast.ClassDef) -> ast.expr | None:
    """The ``@strict`` (``huggingface_hub.dataclasses``) decorating ``cls``, or None."""
    strict = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom)
              and n.module == "huggingface_hub.dataclasses" for a in n.names if a.name == "strict"}
    return next((d for d in cls.decorator_list
                 if (d.func if isinstance(d, ast.Call) else d).__class__ is ast.Name
                 and (d.func if isinstance(d, ast.Call) else d).id in strict), None)


def _strict_on_a_4x_base(unit: Unit) -> list[Finding]:
    """P5 on an upstream vLLM config class written as a transformers 5 dataclass config (``@strict`` from
    ``huggingface_hub.dataclasses``, fields as annotations, ``__post_init__``): 4.57.6's ``PretrainedConfig`` is no
    dataclass, so ``@strict`` raises ``StrictDataclassDefinitionError`` when the module is imported (dory)."""
    tree = parse_source(unit.text, unit.relpath)
    if tree is None:
        return []
    out: list[Finding] = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        dec = _strict_decorator(tree, cls)
        if dec is None or not any(isinstance(b, ast.Name) and b.id == "PretrainedConfig" for b in cls.bases):
            continue
        out.append(Finding(
            "P5", unit.relpath, dec.lineno, dec.col_offset,
            f"class {cls.name} (upstream vLLM) is a transformers 5 dataclass config (@strict, fields as annotations, "
            "__post_init__): transformers 4.57.6's PretrainedConfig is no dataclass, so @strict raises "
            "StrictDataclassDefinitionError when the module is imported, and its fields would not reach __init__",
            severity="error",
            fix="write the class as a 4.57.6 config (an __init__ taking each field with its default, then the "
                "__post_init__ body, then super().__init__(**kwargs)), as the transformers 5 config bridges are",
            data={"class": cls.name, "decorator": "strict"}))
    return out



def _without_foreign_isinstance(text: str, module: str, wanted: list[str]) -> str | None:
    """``text`` without the ``if isinstance(x, C)`` branches (``elif`` arms too) on a class ``C`` of the module that the
    slice of ``wanted`` needs only for such a test: nothing in the slice is a C, so the branch never runs
    (``Gemma4PreTrainedModel._init_weights`` names the text model's classes; the towers need none of them)."""
    tree = parse_source(text, module)
    if tree is None:
        return None
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}

    def tested(node: ast.AST) -> str | None:
        t = node.test if isinstance(node, ast.If) else None
        if (isinstance(t, ast.BoolOp) and isinstance(t.op, ast.And)):
            t = t.values[0]
        if (isinstance(t, ast.Call) and isinstance(t.func, ast.Name) and t.func.id == "isinstance"
                and len(t.args) == 2 and isinstance(t.args[1], ast.Name) and t.args[1].id in classes):
            return t.args[1].id
        return None

    class Prune(ast.NodeTransformer):
        def __init__(self, gone: set[str]):
            self.gone = gone

        def visit_If(self, node: ast.If):
            self.generic_visit(node)
            if tested(node) in self.gone:
                return node.orelse or None
            return node

    candidates = {tested(n) for n in ast.walk(tree)} - {None} - set(wanted)
    gone = set(candidates)
    while True:
        pruned = _fill_empty(Prune(gone).visit(parse_source(text, module)))
        pruned_text = ast.unparse(ast.fix_missing_locations(pruned))
        sl = slice_definitions(pruned_text, module, wanted, lambda *_: False, 10 ** 6)
        if sl is None:
            return None
        kept = {n.name for seg in sl.code for n in ast.parse(seg).body if isinstance(n, ast.ClassDef)}
        if not gone & kept:
            return pruned_text
        gone -= kept


def _fill_empty(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        for fname in ("body", "orelse", "finalbody"):
            sub = getattr(node, fname, None)
            if fname == "body" and isinstance(sub, list) and not sub:
                setattr(node, fname, [ast.Pass()])
    return tree
