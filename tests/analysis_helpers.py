"""Shared helpers for the analysis/validator tests: the pinned index and a one-call analyser."""

from __future__ import annotations

import textwrap
from functools import lru_cache
from pathlib import Path

from flagos_migrate.analysis.engine import AnalysisContext, analyze_source
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "plugins"
GOOD_PLUGIN = FIXTURES / "good"


@lru_cache(maxsize=1)
def pinned() -> PinnedApis:
    return PinnedApis.load("0.13.0")


@lru_cache(maxsize=1)
def pinned_with_plugin() -> PinnedApis:
    return pinned().with_package(PluginTree(GOOD_PLUGIN).index())


def analyze(code: str, module: str = "vllm_fl.models.demo", origin: str | None = None, plugin: bool = True):
    apis = pinned_with_plugin() if plugin else pinned()
    ctx = AnalysisContext(apis, module, "demo.py", origin_module=origin)
    return analyze_source(textwrap.dedent(code), ctx)


def rules(findings, severity: str | None = None) -> list[str]:
    return [f.rule for f in findings if severity is None or f.severity == severity]


def only(findings, rule: str):
    return [f for f in findings if f.rule == rule]


def empty_plugin(root: Path, init: str = "") -> Path:
    """A plugin tree with nothing migrated yet: ``vllm_fl/__init__.py`` (``init``) and ``vllm_fl/models/``."""
    (root / "vllm_fl" / "models").mkdir(parents=True)
    (root / "vllm_fl" / "__init__.py").write_text(init)
    (root / "vllm_fl" / "models" / "__init__.py").write_text("")
    return root
