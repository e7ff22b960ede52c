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
    # ids are handed out in blocks (issue 13: P23-P26, P27-P30, P31-P32), so a block may land before
    # the one in front of it: unique, in catalog order, starting at P1
    ids = [int(r.id[1:]) for r in CATALOG]
    assert ids[0] == 1 and ids == sorted(set(ids))


PROCEDURE = ROOT / "references" / "procedure.md"


def test_final_report_template_in_the_procedure_is_rendered_from_templates(tmp_path):
    current = PROCEDURE.read_text("utf-8")
    block = rpc.REPORT_BEGIN + "```markdown\n" + rpc.render_report_template() + "```\n" + rpc.REPORT_END
    assert block in current, "run: python3 scripts/render_patch_catalog.py"
    assert "| 6 validation | [validate: ok]" in block and "{{model_name}}.py" in block
    # a hand edit inside the block is stale: --check fails, a render puts the template's text back
    stale = current.replace("| 6 validation |", "| 6 validated by hand |", 1)
    proc = tmp_path / "procedure.md"
    proc.write_text(stale, "utf-8")
    out = tmp_path / "cp.md"
    out.write_text(rpc.render(), "utf-8")
    assert rpc.main(["--out", str(out), "--procedure", str(proc), "--check"]) == 1
    assert rpc.main(["--out", str(out), "--procedure", str(proc)]) == 0
    assert proc.read_text("utf-8") == current


def test_final_report_template_takes_real_values():
    text = rpc.render_report_template({"display_name": "Qwen3.5", "model_name": "qwen3_5",
                                       "upstream_folder": "/src/vllm", "model_type": "qwen3_5",
                                       "config_class": "Qwen3_5Config"})
    assert text.startswith("## Qwen3.5 migrated to vllm-plugin-FL")
    assert "Model file: qwen3_5.py; upstream: [resolve: resolved.upstream_version] from /src/vllm" in text
    assert "{{" not in text
