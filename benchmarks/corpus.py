"""Corpus helpers shared by the benchmarks: upstream model files, the relative->absolute baseline
rewrite, and laying rewritten files out as an importable package for ``import_probe``.

Which files count as model files. ``vllm/model_executor/models/`` holds, besides one file per
model family, modules that every model shares. Those are not migrated (the pinned vLLM has its
own) and are left out of the model corpus: see :data:`SHARED_MODULES`. Sub-packages (e.g.
``models/transformers/``, the Transformers backend) are left out as well. On vLLM 0.33.0 this
gives 283 model files out of 291 top-level modules (drift.md); on 0.13.0, 194 out of 202.

Use from a benchmark: ``sys.path`` must hold the repository root (``from benchmarks.corpus
import ...``) or ``benchmarks/`` (``import corpus``); this module puts ``scripts/`` on the path
itself so that ``flagos_migrate`` imports.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from flagos_migrate.pinned.index_builder import resolve_relative  # noqa: E402
from flagos_migrate.pinned.sources import SourceTree, module_name, open_source  # noqa: E402

MODELS_DIR = "vllm/model_executor/models"
MODELS_PACKAGE = "vllm.model_executor.models"

# Shared, non-model modules of models/ (checked against 0.13.0 and 0.33.0): base classes and
# protocols (interfaces, interfaces_base), helpers (utils, vision, module_mapping), the
# registry, pooling/generation adapters, and per-architecture config fix-ups (config).
SHARED_MODULES = frozenset(
    {"adapters", "config", "interfaces", "interfaces_base", "module_mapping", "registry", "utils", "vision"}
)

DEFAULT_UPSTREAM = Path.home() / ".cache" / "mmf" / "src" / "vllm-0.33.0"
PROBE_PACKAGE = "mmf_corpus"


def model_files(source: SourceTree, include_shared: bool = False) -> list[str]:
    """Relative paths of the top-level modules of ``models/`` (model files only by default)."""
    out = []
    prefix = MODELS_DIR + "/"
    for rel in source.files():
        if not rel.startswith(prefix):
            continue
        name = rel[len(prefix):]
        if "/" in name or name == "__init__.py":
            continue
        if not include_shared and name[:-3] in SHARED_MODULES:
            continue
        out.append(rel)
    return out


def open_vllm(path: str | os.PathLike) -> SourceTree:
    """A vLLM source: folder holding ``vllm/``, the ``vllm`` folder, a site-packages folder or a wheel."""
    source = open_source(path, "vllm")
    if source.version == "unknown":  # an unpacked wheel has no dist-info; its folder name may tell
        m = re.search(r"vllm-(\d[\w.+]*)", Path(path).expanduser().resolve().name)
        if m:
            source.version = m.group(1)
    return source


def installed_vllm_root(venv: str | os.PathLike) -> Path | None:
    """The site-packages folder of ``venv`` that holds ``vllm/`` (for the control run)."""
    for sp in sorted(Path(venv).expanduser().glob("lib/python*/site-packages")):
        if (sp / "vllm" / "__init__.py").is_file():
            return sp
    return None


def _relative_spans(tree: ast.Module) -> list[ast.ImportFrom]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]


def absolutize_relative_imports(text: str, module: str, is_package: bool = False) -> str:
    """Rewrite every ``from .x import y`` of ``module`` to ``from <absolute> import y``.

    Only the ``from <dots><name>`` part of each statement changes, on its own line, so line
    numbers (and everything else) stay as they were. Text that does not parse is returned
    unchanged: the probe then reports the SyntaxError, which is the truth about that file.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    lines = text.splitlines(keepends=True)
    # Right to left within a line, bottom to top overall, so earlier offsets stay valid.
    for node in sorted(_relative_spans(tree), key=lambda n: (n.lineno, n.col_offset), reverse=True):
        absolute = resolve_relative(module, is_package, node.level, node.module)
        idx = node.lineno - 1
        raw = lines[idx].encode("utf-8")
        head, rest = raw[: node.col_offset].decode("utf-8"), raw[node.col_offset:].decode("utf-8")
        pattern = r"from\s+" + r"\s*".join([r"\."] * node.level)
        if node.module:
            pattern += r"\s*" + re.escape(node.module) + r"(?!\w)"
        m = re.match(pattern, rest)
        if m is None:  # e.g. a backslash continuation between the dots and the name; rare enough
            continue
        lines[idx] = head + "from " + absolute + rest[m.end():]
    return "".join(lines)


def lay_out(
    source: SourceTree,
    relpaths: list[str],
    dest: str | os.PathLike,
    package: str = PROBE_PACKAGE,
    rewrite: bool = True,
) -> dict[str, str]:
    """Copy ``relpaths`` into ``dest/<package>/`` (relative imports made absolute against their
    original module) and return ``{relpath: module name to import}``.

    ``dest`` then goes on the probe's ``sys_path``. Sibling imports resolve to the pinned
    vLLM's modules, which is exactly the baseline of drift.md.
    """
    pkg_dir = Path(dest) / package
    pkg_dir.mkdir(parents=True, exist_ok=True)
    (pkg_dir / "__init__.py").write_text("", encoding="utf-8")
    mapping = {}
    for rel, data in _texts(source, relpaths):
        stem = Path(rel).stem
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            (pkg_dir / f"{stem}.py").write_bytes(data)
        else:
            if rewrite:
                text = absolutize_relative_imports(text, module_name(rel), rel.endswith("/__init__.py"))
            (pkg_dir / f"{stem}.py").write_text(text, encoding="utf-8")
        mapping[rel] = f"{package}.{stem}"
    return mapping


def _texts(source: SourceTree, relpaths: list[str]):
    wanted = set(relpaths)
    if len(wanted) > 20:
        for rel, data in source.iter_texts():
            if rel in wanted:
                yield rel, data
    else:
        for rel in relpaths:
            yield rel, source.read_bytes(rel)
