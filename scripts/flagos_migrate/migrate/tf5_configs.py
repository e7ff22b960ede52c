"""Config bridges translated from transformers 5 source (rule P2).

Upstream vLLM imports config classes that only transformers 5 has (``Qwen3_5Config``,
``NemotronHConfig``, ...). Their source is in the transformers 5 wheel
(``transformers/models/<x>/configuration_<x>.py``): ``@strict`` dataclasses with fields,
``sub_configs_defaults`` and ``__post_init__``. A bridge is that module rebuilt from its parsed
syntax tree for transformers 4.x: every class keeps its name, class attributes, methods and
post-init; its fields become ``__v5_fields__`` (defaults as written) that the generated base
``vllm_fl.configs.tf5_base`` (``bridge_sources/tf5_config_base.py``) assigns before running the
post-init as transformers 5 does. Only syntax trees are emitted (``ast.unparse``): no text is
pasted from anywhere, and nothing from a checkpoint's config.json reaches the code.

Imports are kept when the pinned transformers has the name, redirected to the base for the
transformers 5 config machinery, or to another bridge for a config class the pinned version
lacks (or that a class inherits: a 4.x class has another constructor). Anything else makes the
bridge impossible; ``missing`` names it.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from jinja2 import Template

from flagos_migrate.pinned.index_builder import parse_source, resolve_relative
from flagos_migrate.pinned.sources import SourceTree, open_source

BASE_MODULE = "vllm_fl.configs.tf5_base"
BASE_SOURCE = Path(__file__).resolve().parent / "bridge_sources" / "tf5_config_base.py"
# names of the transformers 5 config machinery that the base module provides (as -> what it binds)
BASE_NAMES = {"PreTrainedConfig": "PreTrainedConfig", "PretrainedConfig": "PreTrainedConfig",
              "SubConfigSpec": "SubConfigSpec", "RopeParameters": "RopeParameters",
              "layer_type_validation": "layer_type_validation",
              "remap_legacy_layer_types": "remap_legacy_layer_types"}
# decorators that only document (auto_docstring) or type-check (strict) a transformers 5 config
DROPPED_DECORATORS = frozenset({"auto_docstring", "strict"})
FETCH_CACHE = Path.home() / ".cache" / "model-migrate-flagos" / "transformers"
_CLASS_LINE = re.compile(rb"^class\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(", re.M)
_MODEL_TYPE_LINE = re.compile(rb"^    model_type(?:\s*:[^=\n]*)?\s*=\s*[\"']([A-Za-z0-9_\-]+)[\"']", re.M)

MODULE_TEMPLATE = Template('''\
"""Config bridge: {{ origin }} from transformers {{ version }}, for transformers 4.x.

Translated by model-migrate-flagos (rule P2) from the parsed transformers 5 source: the same
classes, fields, defaults, sub-configs and post-init, on the base in {{ base }}.
Regenerated on every migrate_model.py apply; do not edit by hand.
"""

{{ body }}
''', keep_trailing_newline=True)


def _wheel_candidates() -> list[Path]:
    roots = [FETCH_CACHE, Path.home() / ".cache" / "mmf" / "wheels"]
    found = [p for r in roots if r.is_dir() for p in r.glob("transformers-5*.whl")]
    return sorted(found, key=lambda p: _version_key(p.name))


def _version_key(name: str) -> tuple:
    m = re.match(r"transformers-([0-9.]+)", name)
    return tuple(int(x) for x in m.group(1).strip(".").split(".")) if m else ()


def fetch_transformers5(cache: Path = FETCH_CACHE, python: str = sys.executable) -> Path | None:
    """``pip download`` the newest transformers 5 wheel (no dependencies) into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "pip", "download", "transformers>=5", "--no-deps", "--only-binary", ":all:", "-d", str(cache)]
    subprocess.run(cmd, capture_output=True, text=True)
    wheels = _wheel_candidates()
    return wheels[-1] if wheels else None


def open_transformers5(path: str | None = None, fetch: bool = False) -> SourceTree | None:
    """The transformers 5 source: ``path``, ``$MMF_TRANSFORMERS5``, the newest cached wheel, or
    (``fetch``) a freshly downloaded one; None when there is none."""
    where = path or os.environ.get("MMF_TRANSFORMERS5")
    if not where:
        wheels = _wheel_candidates()
        if not wheels and fetch:
            fetched = fetch_transformers5()
            wheels = [fetched] if fetched else []
        if not wheels:
            return None
        where = str(wheels[-1])
    return open_source(where, "transformers")


@dataclass
class Bridge:
    """One translated transformers 5 configuration module."""

    origin: str  # transformers.models.x.configuration_x
    module: str  # vllm_fl.configs.tf5_x
    text: str = ""
    classes: dict[str, str | None] = field(default_factory=dict)  # class -> model_type
    needs: list[str] = field(default_factory=list)  # other transformers 5 modules it imports from
    missing: list[str] = field(default_factory=list)  # ``module:name`` it needs and cannot have


def bridge_module_for(origin: str) -> str:
    """``transformers.models.qwen3_5.configuration_qwen3_5`` -> ``vllm_fl.configs.tf5_qwen3_5``."""
    parts = origin.split(".")
    stem = parts[2] if len(parts) > 2 and parts[1] == "models" else parts[-1]
    return f"vllm_fl.configs.tf5_{stem}"


class Transformers5:
    """Static queries over the transformers 5 source."""

    def __init__(self, source: SourceTree):
        self.source = source

    @property
    def version(self) -> str:
        return self.source.version

    @cached_property
    def _scan(self) -> tuple[dict[str, str], dict[str, str]]:
        """(class -> module, model_type -> class) over every ``transformers/models/*/configuration_*.py``,
        from one pass over the source (a class's ``model_type = "..."`` line inside its body)."""
        classes: dict[str, str] = {}
        types: dict[str, str] = {}
        for rel, data in self.source.iter_texts():
            parts = rel.split("/")
            if not (len(parts) == 4 and parts[1] == "models" and parts[3].startswith("configuration_")):
                continue
            module = rel[:-3].replace("/", ".")
            found = list(_CLASS_LINE.finditer(data))
            for i, m in enumerate(found):
                name = m.group(1).decode()
                classes.setdefault(name, module)
                end = found[i + 1].start() if i + 1 < len(found) else len(data)
                mt = _MODEL_TYPE_LINE.search(data, m.end(), end)
                if mt:
                    types.setdefault(mt.group(1).decode(), name)
        return classes, types

    @property
    def config_classes(self) -> dict[str, str]:
        return self._scan[0]

    @property
    def model_types(self) -> dict[str, str]:
        """model_type -> config class name."""
        return self._scan[1]

    def model_type_of(self, name: str) -> str | None:
        return next((t for t, c in self.model_types.items() if c == name), None)

    def tree(self, module: str) -> ast.Module | None:
        rel = module.replace(".", "/") + ".py"
        return parse_source(self.source.read_bytes(rel), rel) if self.source.has(rel) else None

    def module_of(self, name: str) -> str | None:
        return self.config_classes.get(name)

    def fields_of(self, name: str) -> tuple[dict[str, str], set[str]] | None:
        """(attribute_map, field names incl. inherited translated ones) of a transformers 5 config class."""
        module = self.module_of(name)
        tree = self.tree(module) if module else None
        cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None) if tree else None
        if cls is None:
            return None
        amap: dict[str, str] = {}
        names: set[str] = set()
        for stmt in cls.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and not _is_classvar(stmt):
                names.add(stmt.target.id)
            targets = stmt.targets if isinstance(stmt, ast.Assign) else (
                [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == "attribute_map" for t in targets):
                try:
                    value = ast.literal_eval(stmt.value)
                except (ValueError, TypeError, SyntaxError):
                    value = {}
                amap.update({k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)})
        return amap, names

    def translate(self, module: str, pinned_has, is_config_module=None) -> Bridge:
        """The bridge for ``module``; ``pinned_has(module, name)`` asks the pinned transformers."""
        bridge = Bridge(module, bridge_module_for(module))
        tree = self.tree(module)
        if tree is None:
            bridge.missing.append(f"{module}: not in transformers {self.version}")
            return bridge
        out = _Translator(self, module, pinned_has, bridge).module(tree)
        body = ast.unparse(ast.fix_missing_locations(out))
        bridge.text = MODULE_TEMPLATE.render(origin=module, version=self.version, base=BASE_MODULE, body=body)
        return bridge


def base_text() -> str:
    return BASE_SOURCE.read_text("utf-8")


def _is_classvar(stmt: ast.AnnAssign) -> bool:
    ann = stmt.annotation
    if isinstance(ann, ast.Subscript):
        ann = ann.value
    name = ann.attr if isinstance(ann, ast.Attribute) else getattr(ann, "id", "")
    return name == "ClassVar"


def _class_model_type(node: ast.ClassDef) -> str | None:
    for stmt in node.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else (
            [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "model_type" for t in targets):
            v = getattr(stmt, "value", None)
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                return v.value
    return None


def _decorator_name(dec: ast.expr) -> str:
    node = dec.func if isinstance(dec, ast.Call) else dec
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


# ``field(default=...)``, ``positive_int_field(default=...)``, ``interval(min=0)(default=...)``: a
# dataclass field, possibly with a value check that the 4.x config (no ``@strict``) does not run
FIELD_FACTORIES = frozenset({"field", "interval", "positive_int_field", "is_divisible_by"})


def _field_call(call: ast.Call) -> bool:
    func = call.func.func if isinstance(call.func, ast.Call) else call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in FIELD_FACTORIES and any(k.arg in ("default", "default_factory") for k in call.keywords)


def _runtime_names(nodes: list[ast.AST]) -> set[str]:
    """Names read when the module runs (annotations are deferred by ``from __future__``)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            out.add(node.id)
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    visit(child)

    for n in nodes:
        visit(n)
    return out


class _Translator:
    def __init__(self, tf5: Transformers5, module: str, pinned_has, bridge: Bridge):
        self.tf5 = tf5
        self.origin = module
        self.pinned_has = pinned_has
        self.bridge = bridge
        self.registered_deps: list[str] = []

    def _model_type_deps(self, cls: ast.ClassDef) -> None:
        """Sub-configs named by model_type (``SubConfigSpec(AutoConfig, model_type="x")``,
        ``CONFIG_MAPPING["x"]``) whose class transformers 5 defines elsewhere come along."""
        for node in ast.walk(cls):
            mt = None
            if isinstance(node, ast.Call) and _decorator_name(node) == "SubConfigSpec":
                kw = next((k.value for k in node.keywords if k.arg == "model_type"), None)
                mt = kw.value if isinstance(kw, ast.Constant) else None
            elif isinstance(node, ast.Subscript) and getattr(node.value, "id", "") == "CONFIG_MAPPING":
                mt = node.slice.value if isinstance(node.slice, ast.Constant) else None
            dep_cls = self.tf5.model_types.get(mt) if isinstance(mt, str) else None
            dep = self.tf5.module_of(dep_cls) if dep_cls else None
            if dep and dep != self.origin and dep not in self.registered_deps:
                self.registered_deps.append(dep)
                if dep not in self.bridge.needs:
                    self.bridge.needs.append(dep)

    def module(self, tree: ast.Module) -> ast.Module:
        imports: list[tuple[str, str, str]] = []  # (module, name, alias)
        plain: list[ast.Import] = []
        body: list[ast.stmt] = []
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom):
                src = resolve_relative(self.origin, False, stmt.level, stmt.module) if stmt.level else stmt.module or ""
                if src == "__future__":
                    continue
                imports += [(src, a.name, a.asname or a.name) for a in stmt.names]
            elif isinstance(stmt, ast.Import):
                plain.append(stmt)
            elif isinstance(stmt, ast.ClassDef):
                body.append(self.config_class(stmt))
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # module docstring
            elif isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets):
                continue
            else:
                body.append(stmt)
        used = _runtime_names(body)
        bases = {b.id for c in body if isinstance(c, ast.ClassDef) for b in c.bases if isinstance(b, ast.Name)}
        head: list[ast.stmt] = [ast.ImportFrom("__future__", [ast.alias("annotations")], 0)]
        head += [s for s in plain if any((a.asname or a.name.split(".")[0]) in used for a in s.names)]
        grouped: dict[str, list[ast.alias]] = {}
        for src, name, alias in imports:
            if alias not in used:
                continue
            target, real = self.import_source(src, name, alias in bases)
            if target is None:
                self.bridge.missing.append(f"{src}:{name}")
                continue
            grouped.setdefault(target, []).append(ast.alias(real, alias if alias != real else None))
        for target, names in grouped.items():
            head.append(ast.ImportFrom(target, names, 0))
        for dep in self.registered_deps:
            # a sub-config resolved by model_type: importing its bridge registers that type
            head.append(ast.Import([ast.alias(bridge_module_for(dep))]))
        exported = [c.name for c in body if isinstance(c, ast.ClassDef)]
        all_list = ast.Assign([ast.Name("__all__", ast.Store())],
                              ast.List([ast.Constant(n) for n in exported], ast.Load()))
        return ast.Module(head + body + [all_list], [])

    def import_source(self, src: str, name: str, is_base: bool) -> tuple[str | None, str]:
        """Where the bridge takes ``name`` from (None: nowhere) and under which real name."""
        if name in BASE_NAMES and src.split(".")[1:2] in (["configuration_utils"], ["modeling_rope_utils"], []):
            return BASE_MODULE, BASE_NAMES[name]
        cfg_module = self.tf5.module_of(name) if name.endswith("Config") else None
        if cfg_module and cfg_module != self.origin and (is_base or not self.pinned_has(src, name)):
            if cfg_module not in self.bridge.needs:
                self.bridge.needs.append(cfg_module)
            return bridge_module_for(cfg_module), name
        if self.pinned_has(src, name):
            return src, name
        return None, name

    def config_class(self, cls: ast.ClassDef) -> ast.ClassDef:
        self._model_type_deps(cls)
        fields: list[tuple[str, ast.expr]] = []
        factories: list[tuple[str, ast.expr]] = []
        body: list[ast.stmt] = []
        for stmt in cls.body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                continue  # docstring
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                name = stmt.target.id
                if _is_classvar(stmt) or name.startswith("__"):
                    if stmt.value is not None:
                        body.append(ast.Assign([ast.Name(name, ast.Store())], stmt.value))
                    continue
                value = stmt.value if stmt.value is not None else ast.Constant(None)
                if isinstance(value, ast.Call) and _field_call(value):
                    kws = {k.arg: k.value for k in value.keywords}
                    if "default_factory" in kws:
                        factories.append((name, kws["default_factory"]))
                        continue
                    value = kws.get("default", ast.Constant(None))
                fields.append((name, value))
                continue
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                stmt.decorator_list = [d for d in stmt.decorator_list if _decorator_name(d) not in DROPPED_DECORATORS]
            body.append(stmt)
        if fields:
            body.append(ast.Assign([ast.Name("__v5_fields__", ast.Store())],
                                   ast.Dict([ast.Constant(n) for n, _ in fields], [v for _, v in fields])))
        if factories:
            body.append(ast.Assign([ast.Name("__v5_factories__", ast.Store())],
                                   ast.Dict([ast.Constant(n) for n, _ in factories], [v for _, v in factories])))
        self.bridge.classes[cls.name] = _class_model_type(cls)
        decorators = [d for d in cls.decorator_list if _decorator_name(d) not in DROPPED_DECORATORS]
        cls.body, cls.decorator_list = body or [ast.Pass()], decorators
        return cls


__all__ = ["BASE_MODULE", "Bridge", "Transformers5", "base_text", "bridge_module_for", "open_transformers5"]
