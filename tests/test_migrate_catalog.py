"""references/compatibility-patches.md is generated from the rule catalog and must not drift from it."""

from __future__ import annotations

import re
from pathlib import Path

import render_patch_catalog as rpc
from flagos_migrate.catalog.rules import CATALOG, Rule

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "references" / "compatibility-patches.md"


def test_committed_catalog_matches_rules():
    assert DOC.read_text("utf-8") == rpc.render(), "run: python3 scripts/render_patch_catalog.py"


def test_every_rule_has_a_section_and_a_table_row():
    text = rpc.render()
    for r in CATALOG:
        assert f"## {r.id} — {r.title}\n" in text
        assert re.search(rf"^\| \[{r.id}\]\(#", text, re.M)


def test_check_mode_detects_drift(tmp_path):
    out = tmp_path / "cp.md"
    assert rpc.main(["--out", str(out), "--check"]) == 1
    assert rpc.main(["--out", str(out)]) == 0 and out.read_text() == rpc.render()
    assert rpc.main(["--out", str(out), "--check"]) == 0
    extra = (*CATALOG, Rule("P99", "x", "Extra", "manual", "error", "w", "h"))
    assert rpc.render(extra) != out.read_text()


def test_rule_ids_are_sequential():
    ids = [int(r.id[1:]) for r in CATALOG]
    assert ids == list(range(1, len(ids) + 1))
