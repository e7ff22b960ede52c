"""The plugin checkout (``vllm_fl``): where its files are, what it registers, what it defines.

Read with ``ast`` only: the validator runs in the plugin's CI, where neither vLLM nor the
plugin is importable.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path

from flagos_migrate.astutil import binding_map, dotted, parse_source
from flagos_migrate.cli import UsageError
from flagos_migrate.fsutil import is_within
from flagos_migrate.pinned.api_index import ApiIndex
from flagos_migrate.pinned.index_builder import module_record

PACKAGE = "vllm_fl"


@dataclass(frozen=True)
class ModelRegistration:
    """``ModelRegistry.register_model("Arch", "vllm_fl.models.x:Cls")`` (or a class object)."""

    arch: str
    module: str | None  # None when the target could not be read statically
    cls: str | None
    line: int
    col: int
    raw: str  # the target as written


@dataclass(frozen=True)
class ConfigRegistration:
    """``_CONFIG_REGISTRY["model_type"] = ConfigClass``."""

    model_type: str
    cls: str
    module: str | None  # where the class is imported from, when known
    line: int
    col: int


@dataclass(frozen=True)
class InTreeOverride:
    """``vllm.model_executor.models.x.Cls = PluginCls`` before registration."""

    target: str  # e.g. vllm.model_executor.models.qwen3_next.Qwen3NextForCausalLM
    value: str  # e.g. vllm_fl.models.qwen3_next:Qwen3NextForCausalLM (when known)
    line: int


@dataclass
class RegistrationFile:
    path: Path
    models: list[ModelRegistration] = field(default_factory=list)
    configs: list[ConfigRegistration] = field(default_factory=list)
    overrides: list[InTreeOverride] = field(default_factory=list)
    # registrations that are not plain literals or share their line with other code:
    # (line, col, why); an edit that pasted input into code looks like this
    irregular: list[tuple[int, int, str]] = field(default_factory=list)
    has_register_model: bool = False
    parse_error: str | None = None
    # architectures given a config hook of their own: ``MODELS_CONFIG_MAP["Arch"] = Hook`` (P25)
    config_hooks: set[str] = field(default_factory=set)
    # architecture -> (module, class) of the hook register_model() maps it to, where its binding says
    hook_targets: dict[str, tuple[str, str]] = field(default_factory=dict)


def find_package_dir(plugin_folder: str | Path) -> Path:
    """``plugin_folder/vllm_fl`` (or the folder itself when it is the package)."""
    root = Path(plugin_folder).expanduser()
    try:
        found = root.exists()
    except OSError as exc:  # the path is input: too long, or not readable
        raise UsageError(f"plugin folder cannot be read: {exc.strerror}",
                         hint="pass the vllm-plugin-FL checkout (the folder that holds vllm_fl/)") from None
    if not found:
        raise UsageError(
            f"plugin folder not found: {root}",
            hint="pass the vllm-plugin-FL checkout (the folder that holds vllm_fl/)",
        )
    if not root.is_dir():
        raise UsageError(f"plugin folder is not a directory: {root}")
    if (root / PACKAGE / "__init__.py").is_file():
        return _inside(root / PACKAGE, root)
    if root.name == PACKAGE and (root / "__init__.py").is_file():
        return _inside(root, root.parent)
    raise UsageError(
        f"{root} is not a vllm-plugin-FL checkout: {root / PACKAGE / '__init__.py'} does not exist",
        hint="run from the plugin checkout or pass its path; the package folder must be named vllm_fl",
    )


def _inside(package: Path, checkout: Path) -> Path:
    """The package folder, unless it (or its __init__.py) is a link out of the checkout."""
    for path in (package, package / "__init__.py"):
        if not is_within(path, checkout):
            raise UsageError(f"{path} is a symlink out of the plugin checkout {checkout} "
                             f"(to {os.path.realpath(path)})",
                             hint="migrate into a real checkout; the tools never follow links out of the plugin")
    return package


def parse_registrations(path: Path, module: str = f"{PACKAGE}") -> RegistrationFile:
    """Read the registrations of an ``__init__.py`` without running it."""
    result = RegistrationFile(path=path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        result.parse_error = f"cannot read {path}: {exc}"
        return result
    tree = parse_source(text, str(path))
    if tree is None:
        try:
            ast.parse(text)
        except SyntaxError as exc:
            result.parse_error = f"syntax error at line {exc.lineno}: {exc.msg}"
        else:
            result.parse_error = "cannot parse"
        return result
    bindings = binding_map(tree, module, path.name == "__init__.py")
    simple_on_line: dict[int, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not hasattr(node, "body"):
            simple_on_line[node.lineno] = simple_on_line.get(node.lineno, 0) + 1

    def irregular(node: ast.AST, why: str) -> None:
        result.irregular.append((node.lineno, node.col_offset, why))

    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "register_model":
            result.has_register_model = True
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                (dotted(node.value.func) or "").endswith("register_model") and simple_on_line[node.lineno] > 1:
            irregular(node, "a register_model call shares its line with other statements")
        if isinstance(node, ast.Call) and (dotted(node.func) or "").endswith("register_model") and len(node.args) >= 2:
            arch_node, target = node.args[0], node.args[1]
            if not (isinstance(arch_node, ast.Constant) and isinstance(arch_node.value, str)):
                irregular(node, f"register_model({ast.unparse(arch_node)[:60]}, ...): the architecture is not "
                          "a string literal")
                continue
            result.models.append(_model_registration(arch_node.value, target, bindings, node))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            tgt = node.targets[0]
            if (isinstance(tgt, ast.Subscript) and (dotted(tgt.value) or "").endswith("MODELS_CONFIG_MAP")
                    and isinstance(tgt.slice, ast.Constant) and isinstance(tgt.slice.value, str)):
                result.config_hooks.add(tgt.slice.value)
                written = dotted(node.value) or ""
                where = bindings.get(written.split(".")[0], "")
                if ":" in where and "." not in written:  # `from M import Hook` then `= Hook`
                    result.hook_targets[tgt.slice.value] = tuple(where.split(":", 1))
            elif isinstance(tgt, ast.Subscript) and (dotted(tgt.value) or "").endswith("_CONFIG_REGISTRY"):
                key = tgt.slice
                shown = f"_CONFIG_REGISTRY[{ast.unparse(key)[:60]}]"
                if simple_on_line[node.lineno] > 1:
                    irregular(node, f"{shown} shares its line with other statements")
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    irregular(node, f"{shown}: the model_type is not a string literal")
                elif not isinstance(node.value, (ast.Name, ast.Attribute)):
                    irregular(node, f"{shown} = {ast.unparse(node.value)[:60]}: the value is not a config class")
                else:
                    written = dotted(node.value) or ast.unparse(node.value)
                    where = bindings.get(written.split(".")[0])
                    if where and ":" in where and "." not in written:
                        mod, cls = where.split(":", 1)  # the class's own name, even when imported "as"
                    else:
                        mod, cls = where, written.split(".")[-1]
                    result.configs.append(ConfigRegistration(key.value, cls, mod, node.lineno, node.col_offset))
            elif isinstance(tgt, ast.Attribute):
                name = dotted(tgt) or ""
                head = bindings.get(name.split(".")[0], "")
                full = (head.replace(":", ".") + name[len(name.split(".")[0]) :]) if head else name
                if full.startswith("vllm.model_executor.models."):
                    val = dotted(node.value) or ""
                    val_bind = bindings.get(val.split(".")[0], val)
                    result.overrides.append(InTreeOverride(full, val_bind, node.lineno))
    # ast.walk is breadth-first; report in source order
    result.models.sort(key=lambda r: (r.line, r.col))
    result.configs.sort(key=lambda r: (r.line, r.col))
    result.overrides.sort(key=lambda r: r.line)
    result.irregular.sort()
    return result


def _model_registration(arch: str, target: ast.AST, bindings: dict[str, str], call: ast.Call) -> ModelRegistration:
    if isinstance(target, ast.Constant) and isinstance(target.value, str):
        raw = target.value
        mod, sep, cls = raw.partition(":")
        return ModelRegistration(arch, mod or None, cls if sep else None, call.lineno, call.col_offset, raw)
    name = dotted(target)
    raw = name or ast.unparse(target)
    bound = bindings.get((name or "").split(".")[0])
    if bound and ":" in bound:
        mod, cls = bound.split(":", 1)
        return ModelRegistration(arch, mod, cls, call.lineno, call.col_offset, raw)
    return ModelRegistration(arch, None, None, call.lineno, call.col_offset, raw)


class PluginTree:
    """One plugin checkout: its files, an index of them, its registrations."""

    def __init__(self, plugin_folder: str | Path):
        self.package_dir = find_package_dir(plugin_folder)
        self.root = self.package_dir.parent
        self._index: ApiIndex | None = None

    @property
    def init_file(self) -> Path:
        return self.package_dir / "__init__.py"

    def module_path(self, module: str) -> Path | None:
        """File of ``vllm_fl.a.b`` (module or package), or None."""
        parts = module.split(".")
        if parts[0] != PACKAGE:
            return None
        base = self.root.joinpath(*parts)
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.is_file():
                return cand
        return None

    def module_of(self, path: Path) -> str:
        rel = path.resolve().relative_to(self.root.resolve()).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    def _checked(self, files) -> list[Path]:
        out = sorted(files)
        for p in out:
            if not is_within(p, self.package_dir):
                raise UsageError(f"{p} is a symlink out of the plugin (to {os.path.realpath(p)})",
                                 hint="replace the link with the file itself, or remove it")
        return out

    def python_files(self) -> list[Path]:
        return self._checked(p for p in self.package_dir.rglob("*.py") if "__pycache__" not in p.parts)

    def model_files(self) -> list[Path]:
        d = self.package_dir / "models"
        return self._checked(p for p in d.glob("*.py") if p.name != "__init__.py") if d.is_dir() else []

    def index(self, overlay: dict[str, str] | None = None,
              parsed: dict[Path, tuple[bytes, ast.Module | None]] | None = None,
              walks: dict | None = None) -> ApiIndex:
        """Index of the plugin's own modules; ``overlay`` (module -> source text) adds or replaces
        modules that are not written yet (the migration checks its output before writing);
        ``parsed`` (path -> (bytes, tree)) holds files the caller read and parsed already, ``walks``
        (path -> astutil.Walk) those trees walked."""
        if self._index is None or overlay:
            records = {}
            for path in self.python_files():
                rel = path.relative_to(self.root).as_posix()
                try:
                    if parsed is not None and path in parsed:
                        data, tree = parsed[path]
                        rec = (module_record(rel, data, tree, (walks or {}).get(path))
                               if tree is not None else None)
                    else:
                        rec = module_record(rel, path.read_bytes())
                except OSError:
                    rec = None
                if rec is not None:
                    records[self.module_of(path)] = rec
            for module, text in (overlay or {}).items():
                rel = module.replace(".", "/") + ".py"
                rec = module_record(rel, text)
                if rec is not None:
                    records[module] = rec
            index = ApiIndex.from_records(PACKAGE, "plugin", records)
            if overlay:
                return index
            self._index = index
        return self._index

    def registrations(self) -> RegistrationFile:
        return parse_registrations(self.init_file)
