"""Upstream's per-model packages: ``vllm/models/<name>/`` (resolve and plan).

vLLM 0.33.0 keeps its newest models as packages: an ``__init__.py`` entry point that picks the
platform variant (``nvidia/``, ``amd/`` or a generic fallback) when imported, ``common/`` code
shared by the variants, and shared helpers in ``vllm/models/common/``. The registry points at
``vllm.models.<name>``. The closure of such a model is its package for one variant (``nvidia``
by default) plus the ``vllm.models.common`` modules it imports, read statically like any
upstream file. ``plan`` analyses every file of the closure at its place in the plugin
(``vllm_fl/models/<name>/...``) and groups what is left by what the pinned vLLM lacks (a missing
module or subsystem, custom CUDA/CuTe ops), so the agent gets a map of the work. ``apply`` runs the
migration engine over the same closure (``PackageMigration``): every file is written at that place,
the entry point ``__init__.py`` stays the entry point (its platform dispatch or module ``__getattr__``
as written, imports re-pointed into the plugin), and the registration names the package
(``vllm_fl.models.<name>:<Class>``), so the entry point picks the class as upstream's registry does.
"""

from __future__ import annotations

import ast
from collections import defaultdict

from flagos_migrate.catalog.rules import CATALOG
from flagos_migrate.cli import UsageError
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.unit import Unit
from flagos_migrate.migrate.upstream import Upstream, _display_name
from flagos_migrate.pinned.index_builder import parse_source, resolve_relative

RULES = {r.id: r for r in CATALOG}
PACKAGES_ROOT = "vllm.models"
SHARED = "common"  # vllm/models/common: helpers shared by the packages, not a model
VARIANTS = ("nvidia", "amd", "generic")
# variant sub-packages a platform does not load
OTHER_VARIANTS = {"nvidia": ("amd",), "amd": ("nvidia",), "generic": ("nvidia", "amd")}
# imports that mean a kernel toolchain the CPU-pinned plugin does not have (grouped as "custom ops")
KERNEL_PACKAGES = frozenset({"cutlass", "cuda", "triton", "deep_gemm", "flashinfer", "tilelang", "aiter",
                             "flash_mla", "flash_attn", "vllm_flash_attn", "nvshmem", "cupy", "tvm_ffi", "quack"})


def package_models(up: Upstream) -> list[str]:
    """Names of ``vllm/models/<name>/__init__.py`` packages (``common`` is not a model)."""
    prefix = PACKAGES_ROOT.replace(".", "/") + "/"
    out = set()
    for rel in up.source.files():
        if rel.startswith(prefix) and rel.endswith("/__init__.py") and rel.count("/") == prefix.count("/") + 1:
            name = rel[len(prefix):].split("/")[0]
            if name != SHARED:
                out.add(name)
    return sorted(out)


def is_package_model(up: Upstream, name: str) -> bool:
    return up.source.has(f"{PACKAGES_ROOT.replace('.', '/')}/{name}/__init__.py") and name != SHARED


def check_variant(variant: str | None) -> str:
    v = variant or "nvidia"
    if v not in VARIANTS:
        raise UsageError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}",
                         hint="nvidia (CUDA, the default), amd (ROCm) or generic (the entry point's fallback)")
    return v


def _module_of(rel: str) -> str:
    return rel[:-3].replace("/", ".").removesuffix(".__init__")


def _in_variant(module: str, pkg: str, variant: str) -> bool:
    rest = module[len(pkg) + 1:].split(".") if module != pkg else []
    return not (rest and rest[0] in OTHER_VARIANTS[variant])


def _imports(text: str, module: str, is_pkg: bool) -> list[tuple[str, str | None, int]]:
    """(absolute module, name or None, line) of every import, relative ones resolved."""
    tree = parse_source(text, module)
    out = []
    for node in ast.walk(tree) if tree else []:
        if isinstance(node, ast.ImportFrom):
            src = resolve_relative(module, is_pkg, node.level, node.module) if node.level else node.module or ""
            out += [(src, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
    return out


def package_closure(up: Upstream, name: str, variant: str) -> list[str]:
    """Relpaths of the package files for ``variant`` and the ``vllm.models`` modules outside it
    (``vllm.models.common``, other packages for the same variant) that they import."""
    pkg = f"{PACKAGES_ROOT}.{name}"
    prefix = pkg.replace(".", "/") + "/"
    files = [r for r in up.source.files() if r.startswith(prefix) and _in_variant(_module_of(r), pkg, variant)]
    shared_prefix = f"{PACKAGES_ROOT}.{SHARED}"
    todo, seen = list(files), set(files)
    while todo:
        rel = todo.pop()
        mod = _module_of(rel)
        for src, nm, _ in _imports(up.source.read_text(rel), mod, rel.endswith("__init__.py")):
            for cand in (f"{src}.{nm}" if nm else None, src):
                # vllm.models.common and modules of other packages (deepseek_v41 builds on deepseek_v4)
                if not cand or not cand.startswith(PACKAGES_ROOT + ".") or cand.startswith(pkg + "."):
                    continue
                other = ".".join(cand.split(".")[:3])
                if other != shared_prefix and not _in_variant(cand, other, variant):
                    continue
                target = up.relpath(cand)
                if target and target not in seen:
                    seen.add(target)
                    todo.append(target)
                    # a package's __init__ runs before its modules: it comes along too
                    parts = cand.split(".")
                    for i in range(3, len(parts)):
                        init = up.relpath(".".join(parts[:i]))
                        if init and init not in seen:
                            seen.add(init)
                            todo.append(init)
                if target:
                    break
    return sorted(seen)


def plugin_module_for(module: str) -> str:
    """``vllm.models.beam.nvidia.model`` -> ``vllm_fl.models.beam.nvidia.model``."""
    return "vllm_fl.models." + module[len(PACKAGES_ROOT) + 1:]


def resolve_package(up: Upstream, name: str, variant: str | None = None) -> dict:
    """The design card's placeholders for a per-model package."""
    variant = check_variant(variant)
    pkg = f"{PACKAGES_ROOT}.{name}"
    archs = {a: (m, c, t) for a, (m, c, t) in up.model_registry.items() if m == pkg or m.startswith(pkg + ".")}
    classes = sorted({c for _, c, _ in archs.values()})
    init = up.text(pkg) or ""
    tree = parse_source(init, pkg)
    exported = set()
    for node in ast.walk(tree) if tree else []:
        if isinstance(node, ast.ImportFrom):
            exported.update(a.asname or a.name for a in node.names)
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            exported.add(node.name)
        elif isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            exported.add("__getattr__")
    files = package_closure(up, name, variant)
    # the model itself, not its draft/MTP heads (registered in the speculative-decoding table)
    served = sorted({c for _, c, t in archs.values() if "SPECULATIVE" not in t.upper()})
    main = [c for c in served if c.endswith("ForCausalLM") or c.endswith("ForConditionalGeneration")] or served
    notes = []
    lazy = bool(tree and any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body))
    if lazy:
        notes.append("the entry point resolves its classes lazily (module __getattr__); kept as written")
    return {
        "model_name": name,
        "model_name_lower": name.lower(),
        "MODEL_DISPLAY_NAME": _display_name(init, tree, (main[0] if main else name).split("For")[0]) if tree else name,
        "ModelClassName": main[0] if len(main) == 1 else None,
        "model_type": None,
        "ConfigClassName": None,
        "config_module": None,
        "architectures": sorted(archs),
        "classes": {a: c for a, (_, c, _) in sorted(archs.items())},
        "classes_missing_upstream": sorted(c for c in classes if c not in exported and not lazy),
        "draft_architectures": sorted(a for a, (_, _, t) in archs.items() if "SPECULATIVE" in t.upper()),
        "upstream_files": [up.source.path_of(r) for r in files],
        "upstream_module": pkg,
        "upstream_version": up.version,
        "package": True,
        "variant": variant,
        "plugin_package": plugin_module_for(pkg),
        "ambiguous": {"ModelClassName": main} if len(main) > 1 else {},
        "notes": notes,
    }


def _group_key(f, apis, closure: set[str], pkg: str, variant: str) -> str | None:
    """What a finding says the pinned vLLM lacks, as a work item (None: the package brings it)."""
    d = f.data or {}
    mod = d.get("module") or d.get("absolute") or ""
    top = mod.split(".")[0]
    if top in KERNEL_PACKAGES:
        return f"kernel toolchain `{top}` (custom CUDA/CuTe/Triton ops)"
    if mod.startswith(PACKAGES_ROOT + ".") or f.rule == "P1":
        name = d.get("name")
        if (mod in closure or (name and f"{mod}.{name}" in closure) or mod.startswith(f"{PACKAGES_ROOT}.{SHARED}")
                or mod == pkg or mod.startswith(pkg + ".")
                or not _in_variant(mod, ".".join(mod.split(".")[:3]), variant)):
            return None  # in the closure, or the other platform's branch of the entry point
        return f"`{mod}` (another upstream package)"
    if mod.startswith("vllm"):
        parts = mod.split(".")
        for i in range(len(parts), 1, -1):
            if apis.has_module(".".join(parts[:i])):
                missing = ".".join(parts[: i + 1]) if i < len(parts) else mod
                return f"`{missing}` ({'module' if i < len(parts) else 'names'} missing in the pinned vLLM)"
        return f"`{mod}` (missing in the pinned vLLM)"
    if top == "transformers":
        return "transformers 5 API (P5: a config bridge, P2)"
    rule = RULES.get(f.rule)
    return f"{f.rule}: {rule.title}" if rule else f"rule {f.rule}"


def plan_package(up: Upstream, apis, name: str, variant: str | None = None, plugin=None, previous: dict | None = None,
                 archs: list[str] | None = None, all_archs: bool = False) -> dict:
    """Per-file analysis of the package closure placed in the plugin, grouped by what is missing, and (with
    ``plugin``) the registration's findings for the architectures apply would register (``registration``)."""
    from flagos_migrate.analysis.engine import AnalysisContext, analyze_source

    resolved = resolve_package(up, name, variant)
    variant = resolved["variant"]
    files = package_closure(up, name, variant)
    closure = {_module_of(r) for r in files}
    per_file: dict[str, dict] = {}
    groups: dict[str, list[str]] = defaultdict(list)
    for rel in files:
        module = _module_of(rel)
        target = plugin_module_for(module)
        path = target.replace(".", "/") + ("/__init__.py" if rel.endswith("__init__.py") else ".py")
        text = up.source.read_text(rel)
        # relative imports resolve in upstream's package: they come along, so they are not work items
        origin = f"{module}.__init__" if rel.endswith("__init__.py") else module  # ``.x`` is inside the package
        ctx = AnalysisContext(apis=apis, module=target, path=path, origin_module=origin)
        findings = [f for f in analyze_source(text, ctx) if f.is_issue]
        kernels = sorted({m.split(".")[0] for m, _, _ in _imports(text, module, rel.endswith("__init__.py"))
                          if m.split(".")[0] in KERNEL_PACKAGES})
        torch_ops = sorted({_torch_op(n) for n in ast.walk(parse_source(text, rel) or ast.Module([], []))
                            if _torch_op(n)})
        keys = sorted({k for f in findings if (k := _group_key(f, apis, closure, f"{PACKAGES_ROOT}.{name}", variant))} | {f"kernel toolchain `{k}` (custom CUDA/CuTe/Triton ops)"
                                                                for k in kernels})
        if torch_ops:
            keys.append("custom torch ops: " + ", ".join(torch_ops[:6]))
        for k in keys:
            groups[k].append(path)
        per_file[path] = {"origin": module, "lines": text.count("\n"), "findings": len(findings),
                          "rules": sorted({f.rule for f in findings}), "needs": keys}
    out = {"resolved": resolved, "files": per_file,
           "groups": {k: sorted(v) for k, v in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))}}
    if plugin is not None:
        out["registration"] = package_registration(up, apis, plugin, name, variant, previous, archs, all_archs)
    return out


def package_registration(up: Upstream, apis, plugin, name: str, variant: str, previous: dict | None = None,
                         archs: list[str] | None = None, all_archs: bool = False) -> dict:
    """What the validator reports on the registration of the architectures apply would register (P25 hooks and
    architecture conversions, P38 drafts, P43), split as apply splits them: the engine's own
    ``registration_findings`` over the package's entry point, so plan, apply and the validator agree. Unanswered
    (several main classes, no --arch), every architecture upstream maps to the package."""
    m = PackageMigration(name, up, plugin, apis, variant, previous, archs, all_archs)
    m.discover()
    unit = m.units.get(plugin_module_for(f"{PACKAGES_ROOT}.{name}"))
    found = m.registration_findings(unit) if unit is not None else []
    return {"architectures": list(m.resolved["architectures"]), "answered": not m.resolved["ambiguous"],
            "will_fix": [f for f, state in found if state == "fixed"],
            "left_for_you": [f for f, state in found if state != "fixed"]}


class PackageMigration(Migration):
    """``apply`` for a per-model package: the engine over the package closure (see the module doc)."""

    def __init__(self, name, up, plugin, apis, variant, previous, archs, all_archs):
        resolved = resolve_package(up, name, variant)
        _choose(resolved, archs, all_archs)
        self.variant = resolved["variant"]
        super().__init__(name, up, plugin, apis, None, previous, resolved=resolved)

    def discover(self) -> None:
        """The package files for the variant (and ``vllm.models.common`` modules they import) at
        their place under ``vllm_fl/models/``, then what they need, as for a model file."""
        queue = []
        # the other platforms' modules keep their place too (the entry point's other branches import
        # them there), but are not written: --variant brings them
        for rel in package_closure(self.up, self.name, "generic") + package_closure(self.up, self.name, "nvidia") \
                + package_closure(self.up, self.name, "amd"):
            self.redirects[_module_of(rel)] = plugin_module_for(_module_of(rel))
        for rel in package_closure(self.up, self.name, self.variant):
            module = _module_of(rel)
            self.redirects[module] = plugin_module_for(module)
            queue.append((rel, module))
        for rel, module in queue:
            text = self.up.source.read_text(rel)
            is_pkg = rel.endswith("__init__.py")
            target = self.redirects[module]
            # an __init__'s relative imports resolve inside it: its origin names it as upstream's plan does
            origin = f"{module}.__init__" if is_pkg else module
            self.units[target] = Unit(target, origin, "model" if module == f"{PACKAGES_ROOT}.{self.name}"
                                      else "closure", text, text, package=is_pkg)
            self.set_overlay(target, text)
        siblings = [need for u in list(self.units.values()) if u.origin
                    for need in self._needs(u.origin.removesuffix(".__init__"), u.upstream_text)]
        while siblings:
            origin, role = siblings.pop(0)
            target = self.redirects.get(origin)
            text = self.up.text(origin)
            if target is None or text is None or target in self.units:
                continue
            self.units[target] = Unit(target, origin, role, text, text)
            self.set_overlay(target, text)
            siblings += [(o, r) for o, r in self._needs(origin, text) if self.redirects.get(o) not in self.units]

    def run(self):
        super().run()
        # the entry point's branch for another platform imports a module this variant does not write
        other = {plugin_module_for(_module_of(r)) for v in VARIANTS if v != self.variant
                 for r in package_closure(self.up, self.name, v)} - set(self.units)
        for unit in self.units.values():
            for f in unit.after:
                mod = (f.data or {}).get("module")
                if f.rule == "P18" and mod in other:
                    f.severity = "warning"
                    f.message = (f"`{mod}` belongs to another platform's variant of the package, which "
                                 f"`--variant {self.variant}` does not write; the entry point imports it only there")
                    f.fix = "apply again with --variant for that platform if the plugin must run there"
        return self

    def model_registrations(self) -> list[tuple[str, str]]:
        """Every chosen architecture: the entry point serves its class (imported, or looked up
        by a module ``__getattr__``), as upstream's registry entries assume."""
        chosen = set(self.resolved["architectures"])
        return [(a, c) for a, c in sorted(self.resolved["classes"].items()) if a in chosen]


def _choose(resolved: dict, archs: list[str] | None, all_archs: bool) -> None:
    """--arch / --all-archs for a package: register the main class's architectures, the ones
    named, or all (the draft heads of the speculative table only when asked)."""
    classes = resolved["classes"]
    if all_archs:
        chosen = sorted(classes)
    elif archs:
        unknown = [a for a in archs if a not in classes and a not in classes.values()]
        if unknown:
            raise UsageError(f"{', '.join(unknown)}: not an architecture or class of {resolved['model_name']}",
                             hint=f"one of: {', '.join(sorted(classes))}")
        chosen = sorted(a for a, c in classes.items() if a in archs or c in archs)
    elif resolved["ModelClassName"]:
        drafts = set(resolved["draft_architectures"])
        chosen = sorted(a for a, c in classes.items() if c == resolved["ModelClassName"] and a not in drafts)
    else:
        return  # ambiguous: check_answered asks
    resolved["architectures"] = chosen
    resolved["ambiguous"] = {}


def _torch_op(node: ast.AST) -> str | None:
    """``torch.ops.<namespace>`` of a custom-op call such as ``torch.ops._C.foo``."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
        inner = node.value
        if inner.attr == "ops" and isinstance(inner.value, ast.Name) and inner.value.id == "torch":
            return f"torch.ops.{node.attr}"
    return None


__all__ = ["VARIANTS", "PackageMigration", "check_variant", "is_package_model", "package_closure", "package_models",
           "package_registration", "plan_package", "resolve_package"]
