"""The catalog's examples are golden tests: every example_before of catalog.yaml, migrated by the
engine as an upstream model file, comes out exactly as its example_after, and the rule it shows is
among the findings the migration fixed (the detector and the rewrite of one rule agree)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from analysis_helpers import empty_plugin
from flagos_migrate.catalog.rules import CATALOG, Rule
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_mini"
EXAMPLES = [r for r in CATALOG if r.example_before]


@pytest.fixture(scope="module")
def apis() -> PinnedApis:
    return PinnedApis.load("0.13.0")


def migrate(tmp_path: Path, apis: PinnedApis, rule: Rule, text: str) -> Migration:
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    for rel, extra in rule.example_upstream.items():
        (up / rel).parent.mkdir(parents=True, exist_ok=True)
        (up / rel).write_text(extra)
    (up / "vllm" / "model_executor" / "models" / "example.py").write_text(text)
    plugin = empty_plugin(tmp_path / "plugin")
    return Migration("example", Upstream(open_upstream(str(up))), PluginTree(plugin), apis).run()


def test_the_examples_cover_the_auto_rules():
    shown = {r.id for r in EXAMPLES}
    assert {"P1", "P2", "P4", "P5", "P13", "P21", "P22"} <= shown
    assert all(r.example_after for r in EXAMPLES), "an example_before without its example_after"


@pytest.mark.parametrize("rule", EXAMPLES, ids=[r.id for r in EXAMPLES])
def test_example_before_becomes_example_after(tmp_path, apis, rule):
    m = migrate(tmp_path, apis, rule, rule.example_before)
    assert m.model_unit.text == rule.example_after
    assert rule.id in {f.rule for f in m.fixed()} | m.model_unit.rules


@pytest.mark.parametrize("rule", EXAMPLES, ids=[r.id for r in EXAMPLES])
def test_example_after_is_left_alone(tmp_path, apis, rule):
    """Negative: the migrated text has nothing left for this rule to rewrite."""
    m = migrate(tmp_path, apis, rule, rule.example_after)
    assert m.model_unit.text == rule.example_after
    assert rule.id not in {f.rule for f in m.model_unit.before}
