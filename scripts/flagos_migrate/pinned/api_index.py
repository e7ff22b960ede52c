"""Read and query the static API index of a pinned library version (built by ``index_builder``).

An ``ApiIndex`` answers for one package (``vllm`` or ``transformers``); ``PinnedApis`` puts the
pinned vLLM and its transformers together and routes every dotted name to the right index.
Answers are three-valued where the source cannot tell: ``None`` means "unknown" (a lazy module,
a base class outside the indexed packages), and callers must not report an issue on unknown.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flagos_migrate.cli import UsageError, progress
from flagos_migrate.pinned.index_builder import FORMAT

DATA_DIR = Path(__file__).resolve().parent / "data" / "index"
USER_DIR_ENV = "MMF_INDEX_DIR"

# Members of classes outside the indexed packages, so that ``self.X`` on an ``nn.Module``
# subclass can be judged. Generated from the real classes (see data/external_members.json).
EXTERNAL_MEMBERS_FILE = Path(__file__).resolve().parent / "data" / "external_members.json"


@dataclass(frozen=True)
class Symbol:
    """What a dotted name resolves to."""

    module: str  # defining module (or the module itself for kind "module")
    name: str  # "" for modules
    kind: str  # module | class | function | var | external | lazy | typing-only

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}" if self.name else self.module


def index_search_path() -> list[Path]:
    paths = []
    if os.environ.get(USER_DIR_ENV):
        paths.append(Path(os.environ[USER_DIR_ENV]).expanduser())
    paths.append(Path.home() / ".cache" / "model-migrate-flagos" / "index")
    paths.append(DATA_DIR)
    return paths


def index_file_name(package: str, version: str) -> str:
    return f"{package}-{version}.json.gz"


def available_versions(package: str) -> list[str]:
    found = set()
    for d in index_search_path():
        for f in d.glob(f"{package}-*.json.gz"):
            found.add(f.name[len(package) + 1 : -len(".json.gz")])
    return sorted(found)


def _same_version(a: str, b: str) -> bool:
    """``0.18`` and ``0.18.0`` name one release (a plugin may declare either)."""
    def norm(v: str) -> str:
        parts = v.split(".")
        while len(parts) > 1 and parts[-1] == "0":
            parts.pop()
        return ".".join(parts)

    return norm(a) == norm(b)


def _index_files(package: str, version: str) -> list[Path]:
    """Every index of ``version`` in search order (``0.18`` also finds ``0.18.0``)."""
    files = [d / index_file_name(package, version) for d in index_search_path()]
    found = [f for f in files if f.is_file()]
    if not found:
        for other in available_versions(package):
            if _same_version(other, version):
                return _index_files(package, other)
    return found


def _newest_built(files: list[Path]) -> tuple[Path, dict | None]:
    """The index to use among several of one version: the one built by the newest builder
    (``records``), the first in search order among equals. Only then are files read twice."""
    if len(files) == 1:
        return files[0], None
    best: tuple[int, Path, dict] | None = None
    for f in files:
        data = load_index_data(f)
        if best is None or data.get("records", 2) > best[0]:
            best = (data.get("records", 2), f, data)
    assert best is not None
    for f in files:
        if f != best[1]:
            progress(f"note: API index {f} is not used: {best[1]} of the same version was built by a newer "
                     f"builder (records {best[0]}); rebuild or delete the other one")
    return best[1], best[2]


def find_index_file(package: str, version: str) -> Path:
    if files := _index_files(package, version):
        return _newest_built(files)[0]
    known = ", ".join(available_versions(package)) or "none"
    raise UsageError(
        f"no API index for {package} {version} (indexes found for: {known})",
        hint=f"build it: python3 scripts/build_api_index.py {package}=={version} "
        f"(or from a folder/wheel: python3 scripts/build_api_index.py --package {package} PATH)",
    )


def load_index_data(path: Path) -> dict:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read API index {path}: {exc}", hint="rebuild it with build_api_index.py") from exc
    if data.get("format") != FORMAT:
        raise UsageError(f"API index {path} has format {data.get('format')}, expected {FORMAT}", hint="rebuild it")
    data["modules"] = LazyRecords(data["modules"])
    return data


class LazyRecords(dict):
    """Module records stored as JSON text and decoded on first access.

    transformers has ~2200 modules and ~12000 classes; decoding all of them costs most of a
    second, while a model file touches a few dozen. The outer JSON stays cheap to parse.
    """

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if isinstance(value, str):
            value = json.loads(value)
            dict.__setitem__(self, key, value)
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def items(self):
        return ((k, self[k]) for k in self.keys())

    def values(self):
        return (self[k] for k in self.keys())


class ApiIndex:
    """Queries over one package's index data."""

    @classmethod
    def from_records(cls, package: str, version: str, records: dict[str, dict]) -> ApiIndex:
        """An index over module records made in memory (``index_builder.module_record``)."""
        return cls({"format": FORMAT, "package": package, "version": version, "modules": dict(records)})

    def __init__(self, data: dict):
        self.data = data
        self.package: str = data["package"]
        self.version: str = data["version"]
        self.modules: dict[str, dict] = data["modules"]
        self._definers: dict[str, list[tuple[str, str]]] | None = None
        self._ops: dict[str, str] | None = None
        self._resolved: dict[tuple[str, str, bool], Symbol | None] = {}

    # -- modules and names -------------------------------------------------------------------

    def has_module(self, module: str) -> bool:
        return module in self.modules

    def module(self, module: str) -> dict | None:
        return self.modules.get(module)

    def resolve(
        self, module: str, name: str, _seen: frozenset = frozenset(), allow_lazy: bool = True
    ) -> Symbol | None:
        """What ``from module import name`` binds, following re-exports; None when it fails.
        Answers are kept per index (its records never change once loaded): every file of a run asks
        for the same few hundred names, each through chains of re-exports."""
        if _seen:
            return self._resolve(module, name, _seen, allow_lazy)
        key = (module, name, allow_lazy)
        try:
            return self._resolved[key]
        except KeyError:
            found = self._resolved[key] = self._resolve(module, name, _seen, allow_lazy)
            return found

    def _resolve(self, module: str, name: str, _seen: frozenset, allow_lazy: bool) -> Symbol | None:
        key = (module, name)
        if key in _seen:
            return None
        seen = _seen | {key}
        rec = self.modules.get(module)
        if rec is None:
            return None
        lazy = rec.get("lazy", False)
        sections = [rec]
        if lazy and "tc" in rec:
            # lazily-exporting packages (transformers, vllm/__init__) list their exports under TYPE_CHECKING
            sections.append(rec["tc"])
        for sec in sections:
            kind = sec["defs"].get(name)
            if kind:
                return Symbol(module, name, kind)
        for sec in sections:
            target = sec["imports"].get(name)
            if target:
                return self._follow(target, seen)
        if lazy and name in rec.get("lazymap", {}):
            return self._follow(rec["lazymap"][name], seen)
        sub = f"{module}.{name}"
        if sub in self.modules:
            return Symbol(sub, "", "module")
        for sec in sections:
            for star in sec["star"]:
                srec = self.modules.get(star)
                if srec is None:
                    continue
                exported = srec.get("all")
                if exported is not None and name not in exported:
                    continue
                if exported is None and name.startswith("_"):
                    continue
                found = self.resolve(star, name, seen, allow_lazy=False)
                if found:
                    return found
        if lazy and "define_import_structure" in rec["imports"]:
            # transformers builds its lazy exports from the ``__all__`` of every file below a folder
            target = self._dynamic_exports(module).get(name)
            if target and (target, name) not in seen:
                return self.resolve(target, name, seen, allow_lazy=False)
        if lazy and allow_lazy:
            if name in (rec.get("all") or ()):
                return Symbol(module, name, "lazy")
            if not (rec.get("all") or rec.get("lazymap") or rec.get("tc")):
                return Symbol(module, name, "lazy")  # a __getattr__ we cannot read: unknown
        if name in rec.get("tc", {}).get("defs", {}) or name in rec.get("tc", {}).get("imports", {}):
            return Symbol(module, name, "typing-only")
        return None

    def _dynamic_exports(self, module: str) -> dict[str, str]:
        """name -> module for a package whose ``__init__`` calls ``define_import_structure``: every
        module below it (below ``<package>.models`` for the top-level package) exports its ``__all__``."""
        if not hasattr(self, "_dyn_cache"):
            self._dyn_cache: dict[str, dict[str, str]] = {}
        if module not in self._dyn_cache and isinstance(self.modules[module].get("dynexp"), dict):
            self._dyn_cache[module] = self.modules[module]["dynexp"]  # precomputed by the builder
        if module not in self._dyn_cache:
            base = f"{module}.models" if module == self.package and f"{module}.models" in self.modules else module
            out: dict[str, str] = {}
            prefix = base + "."
            # ``modular_*`` files are sources for code generation, not imported
            mods = sorted((k for k in self.modules.keys() if k.startswith(prefix)),
                          key=lambda k: (k.rsplit(".", 1)[-1].startswith("modular_"), k))
            for mod in mods:
                for exported in self.modules[mod].get("all") or ():
                    out.setdefault(exported, mod)
            self._dyn_cache[module] = out
        return self._dyn_cache[module]

    def _follow(self, target: str, seen: frozenset) -> Symbol | None:
        if ":" not in target:
            if target in self.modules or target.split(".")[0] != self.package:
                return Symbol(target, "", "module" if target in self.modules else "external")
            return None
        mod, name = target.split(":", 1)
        if mod.split(".")[0] != self.package:
            return Symbol(mod, name, "external")
        if mod not in self.modules:
            return None
        return self.resolve(mod, name, seen)

    def resolve_dotted(self, module: str, dotted_name: str) -> Symbol | None:
        """Resolve ``a.b.C`` as written inside ``module`` (local names, then attribute chains)."""
        head, *rest = dotted_name.split(".")
        sym = self.resolve(module, head)
        for part in rest:
            if sym is None:
                return None
            if sym.kind == "module":
                sym = self.resolve(sym.module, part) if sym.module in self.modules else None
            elif sym.kind == "external":
                sym = Symbol(sym.qualname, part, "external")
            else:
                return None
        return sym

    # -- reverse look-ups: where is a name defined ------------------------------------------

    def definers(self, name: str) -> list[tuple[str, str]]:
        """``[(module, kind), ...]`` of modules that define (not import) ``name``."""
        if self._definers is None:
            table: dict[str, list[tuple[str, str]]] = {}
            for mod, rec in self.modules.items():
                for n, kind in rec["defs"].items():
                    table.setdefault(n, []).append((mod, kind))
            self._definers = table
        return self._definers.get(name, [])

    # -- classes and signatures --------------------------------------------------------------

    def class_record(self, sym: Symbol) -> dict | None:
        if sym.kind != "class":
            return None
        return self.modules[sym.module]["classes"].get(sym.name)

    def function_signature(self, sym: Symbol) -> dict | None:
        if sym.kind != "function":
            return None
        return self.modules[sym.module]["functions"].get(sym.name)

    def custom_ops(self) -> dict[str, str]:
        """Op name -> module that registers it (computed once: it decodes every module record; do
        not change the dict returned)."""
        if self._ops is None:
            out: dict[str, str] = {}
            for mod, rec in self.modules.items():
                for op in rec.get("ops", ()):
                    out.setdefault(op, mod)
            self._ops = out
        return self._ops


@lru_cache(maxsize=8)
def load_index(package: str, version: str) -> ApiIndex:
    path, data = _newest_built(_index_files(package, version) or [find_index_file(package, version)])
    return ApiIndex(data if data is not None else load_index_data(path))


@lru_cache(maxsize=1)
def external_members() -> dict[str, frozenset[str]]:
    """Qualified class name -> member names, for bases such as ``torch.nn.Module``."""
    if not EXTERNAL_MEMBERS_FILE.is_file():
        return {}
    doc = json.loads(EXTERNAL_MEMBERS_FILE.read_text())
    out = {name: frozenset(members) for name, members in doc["classes"].items()}
    module = out["torch.nn.Module"]
    for name, extra in doc["module_subclasses"].items():
        out[name] = module | frozenset(extra)
    return out


class PinnedApis:
    """The pinned vLLM plus the transformers it runs with: one place to ask about any dotted name."""

    def __init__(self, vllm: ApiIndex, transformers: ApiIndex | None, extra: dict[str, ApiIndex] | None = None):
        self.vllm = vllm
        self.transformers = transformers
        self.version = vllm.version
        # further packages answered from source, e.g. the plugin's own ``vllm_fl`` tree
        self.extra: dict[str, ApiIndex] = dict(extra or {})

    def with_package(self, index: ApiIndex) -> PinnedApis:
        """A copy that also answers for ``index.package`` (e.g. the plugin tree being checked)."""
        return PinnedApis(self.vllm, self.transformers, {**self.extra, index.package: index})

    @classmethod
    def load(cls, pinned, transformers: str | None = None) -> PinnedApis:
        """The indexes of a pin: a vLLM version (``str``) or a ``target.PinnedTarget``. The
        transformers version is ``transformers``, else the target's, else what the vLLM index
        records; without one every transformers name would pass unchecked, so that is an error."""
        if not isinstance(pinned, str):
            transformers = transformers or pinned.transformers
            pinned = pinned.vllm
        vllm = load_index("vllm", pinned)
        tf_version = transformers or vllm.data.get("transformers")
        if not tf_version:
            raise UsageError(
                f"the API index of vLLM {vllm.version} records no transformers version",
                hint=f"rebuild it (python3 scripts/build_api_index.py vllm=={vllm.version} reads it from the "
                "wheel's Requires-Dist), or pass --transformers VERSION",
            )
        return cls(vllm, load_index("transformers", tf_version))

    def index_for(self, module: str) -> ApiIndex | None:
        top = module.split(".")[0]
        if top == "vllm":
            return self.vllm
        if top == "transformers":
            return self.transformers
        return self.extra.get(top)

    def has_module(self, module: str) -> bool | None:
        idx = self.index_for(module)
        return None if idx is None else idx.has_module(module)

    def resolve(self, module: str, name: str) -> Symbol | None:
        """None: missing. Symbol(kind='external'): outside the indexed packages (unknown)."""
        idx = self.index_for(module)
        if idx is None:
            return Symbol(module, name, "external")
        sym = idx.resolve(module, name)
        return self._cross(sym)

    def _cross(self, sym: Symbol | None) -> Symbol | None:
        # vllm re-exporting a transformers name: continue in the other index
        if sym is not None and sym.kind == "external" and self.index_for(sym.module) is not None:
            idx = self.index_for(sym.module)
            if sym.name == "":
                return Symbol(sym.module, "", "module") if idx.has_module(sym.module) else None
            return idx.resolve(sym.module, sym.name)
        return sym

    def resolve_qualname(self, qualname: str) -> Symbol | None:
        """``vllm.a.b.Name`` -> Symbol (tries the longest module prefix)."""
        parts = qualname.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            mod = ".".join(parts[:cut])
            idx = self.index_for(mod)
            if idx is not None and idx.has_module(mod):
                sym = self.resolve(mod, parts[cut])
                for extra in parts[cut + 1 :]:
                    if sym is None or sym.kind != "module":
                        return sym if sym is None or sym.kind in ("external", "lazy") else None
                    sym = self.resolve(sym.module, extra)
                return sym
        if self.index_for(qualname) is not None and self.has_module(qualname):
            return Symbol(qualname, "", "module")
        return None if self.index_for(qualname) is not None else Symbol(qualname, "", "external")

    def class_record(self, sym: Symbol) -> dict | None:
        idx = self.index_for(sym.module)
        return idx.class_record(sym) if idx else None

    def base_symbols(self, sym: Symbol) -> list[Symbol | None]:
        rec = self.class_record(sym)
        if rec is None:
            return []
        idx = self.index_for(sym.module)
        return [self._cross(idx.resolve_dotted(sym.module, base)) for base in rec["bases"]]

    def mro(self, sym: Symbol) -> tuple[list[tuple[Symbol, dict]], list[str]]:
        """Indexed classes in method-resolution order (depth-first, de-duplicated), and the
        qualified names of bases that are outside the index (e.g. ``torch.nn.Module``)."""
        seen: set[str] = set()
        out: list[tuple[Symbol, dict]] = []
        external: list[str] = []
        stack = [sym]
        while stack:
            cur = stack.pop(0)
            if cur.qualname in seen:
                continue
            seen.add(cur.qualname)
            rec = self.class_record(cur)
            if rec is None:
                external.append(cur.qualname)
                continue
            out.append((cur, rec))
            for base in self.base_symbols(cur):
                if base is None:
                    external.append("?")
                elif base.kind == "class":
                    stack.append(base)
                else:
                    external.append(base.qualname)
        return out, external

    def class_has_member(self, sym: Symbol, member: str) -> bool | None:
        """True/False when the whole hierarchy is known; None when an unknown base may define it."""
        classes, external = self.mro(sym)
        for _, rec in classes:
            if member in rec["methods"] or member in rec["attrs"] or any(f[0] == member for f in rec.get("fields", ())):
                return True
        known = external_members()
        unknown = False
        for ext in external:
            members = known.get(_normalise_external(ext))
            if members is None:
                unknown = True
            elif member in members:
                return True
        if member.startswith("__") and member.endswith("__"):
            return None  # dunder methods come from object/type machinery
        return None if unknown else False

    def init_signature(self, sym: Symbol) -> dict | None:
        """Signature of calling the class: the first ``__init__`` in the MRO, or dataclass fields."""
        classes, external = self.mro(sym)
        for _, rec in classes:
            if "__init__" in rec["methods"]:
                return rec["methods"]["__init__"]
            if rec.get("dc"):
                fields = rec.get("fields", [])
                names = [f[0] for f in fields]
                required = 0
                for f in fields:
                    if f[1]:
                        break
                    required += 1
                return {"p": names, "r": required, "k": [], "kr": []}
            if "__new__" in rec["methods"]:
                return None
        return None  # defined outside the index (nn.Module etc.): unknown

    def callable_signature(self, sym: Symbol) -> dict | None:
        if sym.kind == "function":
            idx = self.index_for(sym.module)
            return idx.function_signature(sym) if idx else None
        if sym.kind == "class":
            return self.init_signature(sym)
        return None


def _normalise_external(name: str) -> str:
    aliases = {
        "torch.nn.Module": "torch.nn.Module",
        "torch.nn.modules.module.Module": "torch.nn.Module",
        "nn.Module": "torch.nn.Module",
    }
    return aliases.get(name, name)
