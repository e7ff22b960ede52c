"""Read a Python library's source without importing it.

A source may be a folder that holds the package (a git checkout or a site-packages folder),
the package folder itself, or a wheel file. All three are presented the same way: relative
paths of ``.py`` files and their text.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from flagos_migrate.cli import UsageError


@dataclass
class SourceTree:
    """``.py`` files of one top-level package, from a folder or a wheel."""

    package: str
    label: str  # human-readable origin (path of the folder or wheel)
    version: str  # best knowledge of the version, "unknown" when nothing says
    root: Path | None = None  # folder that contains ``package/`` (None for wheels)
    wheel: Path | None = None
    _names: list[str] = field(default_factory=list)

    def files(self) -> list[str]:
        """Relative paths such as ``vllm/model_executor/models/llama.py``, sorted."""
        return list(self._names)

    def has(self, relpath: str) -> bool:
        return relpath in self._name_set

    @property
    def _name_set(self) -> set[str]:
        cached = self.__dict__.get("_set")
        if cached is None:
            cached = self.__dict__["_set"] = set(self._names)
        return cached

    def read_bytes(self, relpath: str) -> bytes:
        if self.wheel is not None:
            with zipfile.ZipFile(self.wheel) as zf:
                return zf.read(relpath)
        assert self.root is not None
        return (self.root / relpath).read_bytes()

    def read_text(self, relpath: str) -> str:
        return self.read_bytes(relpath).decode("utf-8")

    def iter_texts(self):
        """Yield ``(relpath, bytes)`` for every file, opening a wheel only once."""
        if self.wheel is not None:
            with zipfile.ZipFile(self.wheel) as zf:
                for name in self._names:
                    yield name, zf.read(name)
        else:
            assert self.root is not None
            for name in self._names:
                yield name, (self.root / name).read_bytes()

    def path_of(self, relpath: str) -> str:
        """A path a human can open (for a wheel: ``wheel!relpath``)."""
        if self.wheel is not None:
            return f"{self.wheel}!{relpath}"
        assert self.root is not None
        return str(self.root / relpath)


_WHEEL_VERSION = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)-")
# `__version__ = "1.2"`, `version: str = "1.2"`, `__version__ = version = '1.2'` (vcs-versioning)
_VERSION_ASSIGN = re.compile(
    r"""^(?:__version__|version)\s*(?::\s*str\s*)?=\s*(?:(?:__version__|version)\s*=\s*)?['"]([^'"]+)['"]""", re.M
)


def open_source(path: str | os.PathLike, package: str) -> SourceTree:
    """Open ``path`` (folder holding ``package/``, the package folder, or a wheel)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(
            f"source not found: {p}",
            hint=_how_to_get(package),
        )
    if p.is_file():
        if p.suffix != ".whl":
            raise UsageError(f"{p} is a file but not a wheel (.whl)", hint=_how_to_get(package))
        return _open_wheel(p, package)
    if (p / package / "__init__.py").is_file():
        return _open_folder(p, package)
    if p.name == package and (p / "__init__.py").is_file():
        return _open_folder(p.parent, package)
    raise UsageError(
        f"{p} does not contain the package '{package}' (expected {p / package / '__init__.py'})",
        hint="give a source checkout (the folder holding vllm/), a site-packages folder, or a wheel file. "
        + _how_to_get(package),
    )


def _how_to_get(package: str) -> str:
    if package == "vllm":
        return (
            "get upstream vLLM with `git clone https://github.com/vllm-project/vllm DIR`, or on machines "
            "without GitHub: `pip download vllm --no-deps --only-binary :all: --python-version 3.12 "
            "--platform manylinux_2_28_x86_64 -d DIR` and pass the .whl file"
        )
    return f"`pip download {package} --no-deps -d DIR` and pass the .whl file"


def _open_wheel(wheel: Path, package: str) -> SourceTree:
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = sorted(n for n in zf.namelist() if n.startswith(package + "/") and n.endswith(".py"))
    except zipfile.BadZipFile as exc:
        raise UsageError(f"{wheel} is not a readable wheel: {exc}", hint="download it again") from exc
    if not names:
        raise UsageError(f"wheel {wheel} holds no '{package}/' package")
    m = _WHEEL_VERSION.match(wheel.name)
    version = m.group("version") if m else "unknown"
    return SourceTree(package=package, label=str(wheel), version=version, wheel=wheel, _names=names)


def _open_folder(root: Path, package: str) -> SourceTree:
    base = root / package
    names = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for fn in filenames:
            if fn.endswith(".py"):
                full = Path(dirpath) / fn
                names.append(full.relative_to(root).as_posix())
    names.sort()
    return SourceTree(
        package=package, label=str(root), version=_folder_version(root, package), root=root, _names=names
    )


def _folder_version(root: Path, package: str) -> str:
    """Version of a package folder: dist-info beside it, a version module, or the git commit."""
    for info in sorted(root.glob(f"{package}-*.dist-info")):
        m = re.match(rf"{package}-(.+)\.dist-info$", info.name)
        if m:
            return m.group(1)
    for candidate in ("_version.py", "version.py", "__init__.py"):
        f = root / package / candidate
        if f.is_file():
            m = _VERSION_ASSIGN.search(f.read_text("utf-8", errors="replace"))
            if m:
                return m.group(1)
    commit = git_head(root)
    return f"git:{commit}" if commit else "unknown"


def git_head(root: Path) -> str | None:
    """The commit a checkout is at, read from .git without running git."""
    git = root / ".git"
    head = git / "HEAD"
    if not head.is_file():
        return None
    ref = head.read_text().strip()
    if not ref.startswith("ref:"):
        return ref[:40] or None
    ref_path = git / ref.split(":", 1)[1].strip()
    if ref_path.is_file():
        return ref_path.read_text().strip()[:40]
    packed = git / "packed-refs"
    if packed.is_file():
        name = ref.split(":", 1)[1].strip()
        for line in packed.read_text().splitlines():
            if line.endswith(" " + name):
                return line.split(" ", 1)[0][:40]
    return None


def module_name(relpath: str) -> str:
    """``vllm/a/b.py`` -> ``vllm.a.b``; ``vllm/a/__init__.py`` -> ``vllm.a``."""
    parts = relpath[:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def dist_metadata(source: SourceTree) -> str | None:
    """The ``METADATA`` text of the source's own distribution (a wheel's ``*.dist-info``, or the
    dist-info beside a site-packages folder), else None (a git checkout has none)."""
    pattern = re.compile(rf"^{re.escape(source.package)}-[^/]+\.dist-info/METADATA$")
    if source.wheel is not None:
        with zipfile.ZipFile(source.wheel) as zf:
            for name in zf.namelist():
                if pattern.match(name):
                    return zf.read(name).decode("utf-8", errors="replace")
        return None
    assert source.root is not None
    for info in sorted(source.root.glob(f"{source.package}-*.dist-info")):
        meta = info / "METADATA"
        if meta.is_file():
            return meta.read_text("utf-8", errors="replace")
    return None


def required_spec(source: SourceTree, requirement: str) -> str | None:
    """The version specifier the source requires of ``requirement`` (``<5,>=4.56.0``), from its
    metadata (``Requires-Dist``) or, for a checkout, its ``requirements/*.txt``; None when unstated.
    Requirements under an extra (``; extra == "x"``) do not count."""
    texts: list[str] = []
    meta = dist_metadata(source)
    if meta is not None:
        texts = [line.split(":", 1)[1] for line in meta.splitlines() if line.lower().startswith("requires-dist:")]
    elif source.root is not None:
        for f in sorted((source.root / "requirements").glob("*.txt")) + [source.root / "requirements.txt"]:
            if f.is_file():
                texts += f.read_text("utf-8", errors="replace").splitlines()
    pattern = re.compile(rf"^\s*{re.escape(requirement)}(?:\[[^\]]*\])?\s*\(?\s*([<>=!~][^;#)]*)", re.IGNORECASE)
    for text in texts:
        if "extra ==" in text.replace('"', "").replace("'", ""):
            continue
        m = pattern.match(text)
        if m:
            return m.group(1).replace(" ", "")
    return None


def installed_beside(source: SourceTree, distribution: str) -> str | None:
    """Version of ``distribution`` installed next to a site-packages source (its dist-info), else None."""
    if source.root is None:
        return None
    for info in sorted(source.root.glob(f"{distribution}-*.dist-info")):
        m = re.match(rf"{re.escape(distribution)}-([^-]+)\.dist-info$", info.name)
        if m:
            return m.group(1)
    return None
