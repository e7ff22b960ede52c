"""The pinned target: the vLLM version the plugin runs on, its transformers, the plugin package.

Every command asks this module, and only this module, which target it works against:
``--pinned VERSION`` when given, else what the plugin checkout itself declares (a ``vllm``
requirement in ``pyproject.toml``, ``setup.py``, ``setup.cfg`` or ``requirements*.txt``), else
the vLLM installed in the running Python, else :data:`DEFAULT_VLLM`. The transformers version is
``--transformers`` when given, else what the vLLM index records (read from the vLLM wheel's
metadata and the version installed beside it when the index was built: ``build_api_index.py``).
The plugin's base moves (0.13.0, 0.18, 0.19, 0.20.2, ...), so nothing else in the code names a version.
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from flagos_migrate.cli import UsageError, progress

#: the plugin's historical base: used only when neither --pinned nor the plugin checkout says
DEFAULT_VLLM = "0.13.0"
#: the plugin's Python package
PLUGIN_PACKAGE = "vllm_fl"

# A version is used in file names (``vllm-<version>.json.gz``): digits, letters, dots, ``+``, ``-`` only.
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!_-]*$")
# ``vllm==0.13.0``, ``vllm[audio]==0.13.0``, ``"vllm >= 0.18.1, < 0.19"``; not ``vllm_fl``/``vllm-plugin``
_REQUIREMENT = re.compile(
    r"(?<![\w.-])vllm(?:\[[^\]\n]*\])?\s*(===|==|~=|>=)\s*v?([0-9][0-9A-Za-z.+!]*)", re.IGNORECASE
)
# files of a checkout that declare its dependencies, in the order they are read
_DECLARING_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt")


@dataclass(frozen=True)
class PinnedTarget:
    """What the plugin is migrated to and checked against."""

    vllm: str
    transformers: str | None  # None: the vLLM index names none (rebuild it, or --transformers)
    package: str = PLUGIN_PACKAGE
    source: str = "default"  # where the vLLM version came from

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        tf = self.transformers or "unknown"
        return f"pinned target: vLLM {self.vllm}, transformers {tf}, package {self.package} (from {self.source})"


def check_version(version: str, what: str = "--pinned") -> str:
    version = version.strip()
    if not _VERSION.match(version):
        raise UsageError(f"{what} {version!r} is not a version", hint="give a version such as 0.13.0 or 0.20.2")
    return version


def declared_vllm(plugin_root: str | Path | None) -> tuple[str, str] | None:
    """``(version, "file (requirement)")`` of the vLLM the checkout declares, else None.

    An exact pin (``==``) wins over a lower bound (``>=``/``~=``), which stands for the version
    the plugin was written against."""
    if plugin_root is None:
        return None
    root = Path(plugin_root).expanduser()
    try:  # the path is input: a name too long or unreadable declares nothing (the caller reports it)
        if root.name == PLUGIN_PACKAGE and not (root / "pyproject.toml").exists():
            root = root.parent  # the package folder was given
        files = [root / name for name in _DECLARING_FILES]
        files += sorted(root.glob("requirements*.txt")) + sorted((root / "requirements").glob("*.txt"))
    except OSError:
        return None
    lower: tuple[str, str] | None = None
    for path in dict.fromkeys(files):
        try:
            text = path.read_text("utf-8", errors="replace") if path.is_file() else ""
        except OSError:
            continue
        for m in _REQUIREMENT.finditer(text):
            version = m.group(2).rstrip(".")
            if not _VERSION.match(version):
                continue
            found = (version, f"{path.name}: {m.group(0).strip()}")
            if m.group(1) in ("==", "==="):
                return found
            lower = lower or found
    return lower


def installed_vllm() -> str | None:
    """The vLLM installed in the running Python (read from its metadata, nothing imported)."""
    try:
        version = metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return None
    return version if _VERSION.match(version) else None


def index_transformers(vllm: str) -> str | None:
    """The transformers version the vLLM index records (None without an index or a record)."""
    from flagos_migrate.pinned import api_index

    try:
        return api_index.load_index("vllm", vllm).data.get("transformers")
    except UsageError:
        return None


def resolve_target(pinned: str | None = None, plugin: str | Path | None = None,
                   transformers: str | None = None) -> PinnedTarget:
    """The target from ``--pinned``, else the plugin checkout, else the installed vLLM, else the default."""
    if pinned:
        vllm, source = check_version(pinned), "--pinned"
    elif (declared := declared_vllm(plugin)) is not None:
        vllm, source = declared[0], f"plugin {declared[1]}"
    elif (installed := installed_vllm()) is not None:
        vllm, source = installed, f"vllm installed in {sys.executable}"
    else:
        vllm, source = DEFAULT_VLLM, "default"
    tf = check_version(transformers, "--transformers") if transformers else index_transformers(vllm)
    return PinnedTarget(vllm, tf, PLUGIN_PACKAGE, source)


def target_of(args, plugin_attr: str = "plugin") -> PinnedTarget:
    """Resolve the target of parsed command-line ``args`` once, announce it on stderr, and store
    it back (``args.target``; ``args.pinned`` becomes the vLLM version) for the code that follows."""
    cached = getattr(args, "target", None)
    if isinstance(cached, PinnedTarget):
        return cached
    target = resolve_target(getattr(args, "pinned", None), getattr(args, plugin_attr, None),
                            getattr(args, "transformers", None))
    progress(target.describe())
    args.target, args.pinned = target, target.vllm
    return target


def add_arguments(parser, what: str = "the plugin checkout") -> None:
    """``--pinned`` and ``--transformers``, the same on every command."""
    parser.add_argument("--pinned", metavar="VERSION",
                        help=f"vLLM version the plugin is pinned to (default: the vllm requirement of {what}, "
                        f"else the installed vLLM, else {DEFAULT_VLLM})")
    parser.add_argument("--transformers", metavar="VERSION",
                        help="transformers version that runs with it (default: the one the vLLM index records)")
