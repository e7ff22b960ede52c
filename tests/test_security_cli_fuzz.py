"""Issue 15, item 6 and the fuzz test: hostile arguments and inputs to every CLI end in a message
and exit 2 (or a documented 0/1), never a traceback. A table, run in-process through the scripts'
own main(); each case also names the input it is about."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import build_api_index
import e2e_eval
import migrate_model
import pytest
import remote_gt_server
import render_patch_catalog
import validate_migration
from flagos_migrate.cli import UsageError

from tests.analysis_helpers import GOOD_PLUGIN

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_mini"


def outcome(main, argv: list[str]) -> int:
    """What run_main would exit with; any other exception (a traceback) fails the test."""
    try:
        code = main(argv)
    except UsageError:
        return 2
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    return code


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    (tmp_path / "folder").mkdir()
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe{\x00")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "results_file").write_text("x")
    bad = tmp_path / "bad_results"
    bad.mkdir()
    (bad / "gt.json").write_text(json.dumps({"results": {"p1": 5, "p2": {"status": "ok", "output": 7},
                                                         "p3": {"status": "ok", "params": [], "output": {}}}}))
    (bad / "local.json").write_text(json.dumps({"results": {"p1": [1], "p2": {"status": "ok", "output": "x"},
                                                            "p3": {"status": "error", "error": 5}}}))
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"prompts": [{"id": "p1", "category": "c", "messages": [
        {"role": "user", "content": "hi"}]}, {"id": "p2", "category": "c", "messages": [
            {"role": "user", "content": "hi"}]}, {"id": "p3", "category": "c", "messages": [
                {"role": "user", "content": "hi"}]}]}))
    hf_bad = tmp_path / "hf_bad.json"
    hf_bad.write_text(json.dumps({"model_type": "mini\n", "architectures": [1, 2]}))
    plugin = tmp_path / "plugin"
    (plugin / "vllm_fl").mkdir(parents=True)
    (plugin / "vllm_fl" / "__init__.py").write_text("def register_model():\n    pass\n")
    gt_bad = tmp_path / "gt_bad.json"
    gt_bad.write_text(json.dumps({"model": "m", "gt_machine": {"host": "-oProxyCommand=id", "ssh_port": "x"}}))
    return {"dir": str(tmp_path / "folder"), "binary": str(tmp_path / "binary.json"), "file": str(tmp_path / "a_file"),
            "results_file": str(tmp_path / "results_file"), "bad_results": str(bad), "prompts": str(prompts),
            "hf_bad": str(hf_bad), "plugin": str(plugin), "gt_bad": str(gt_bad), "tmp": str(tmp_path)}


LONG = "x" * 5000
CASES = [
    # e2e_eval.py: folders and non-UTF-8 files as prompts or config, results dir that is a file, bad hosts
    (e2e_eval, ["--prompts", "{dir}", "--local-only", "--dry-run"]),
    (e2e_eval, ["--prompts", "{binary}", "--local-only", "--dry-run"]),
    (e2e_eval, ["--config", "{dir}", "--local-only", "--dry-run"]),
    (e2e_eval, ["--config", "{binary}", "--local-only", "--dry-run"]),
    (e2e_eval, ["--results-dir", "{results_file}", "--local-only", "--prompts", "{prompts}", "--dry-run"]),
    (e2e_eval, ["--results-dir", "{results_file}", "--compare-only", "--prompts", "{prompts}"]),
    (e2e_eval, ["--results-dir", "{bad_results}", "--compare-only", "--prompts", "{prompts}"]),
    (e2e_eval, ["--gt-host", "bad host/x", "--gt-only", "--prompts", "{prompts}", "--dry-run"]),
    (e2e_eval, ["--gt-host", "-oProxyCommand=id", "--gt-only", "--prompts", "{prompts}", "--dry-run"]),
    (e2e_eval, ["--gt-host", LONG, "--gt-only", "--prompts", "{prompts}", "--dry-run"]),
    (e2e_eval, ["--gt-port", "99999", "--gt-host", "h", "--dry-run"]),
    (e2e_eval, ["--wait-timeout", "nan"]),
    (e2e_eval, ["--request-timeout", "inf"]),
    (e2e_eval, ["--top-k", "-5"]),
    (e2e_eval, ["--bogus"]),
    # migrate_model.py: malformed --hf-config, folders and files in the wrong place, absurd names
    (migrate_model, ["plan", "mini", "--upstream", str(UPSTREAM), "--plugin", "{plugin}", "--hf-config", "{hf_bad}"]),
    (migrate_model, ["plan", "mini", "--upstream", str(UPSTREAM), "--plugin", "{plugin}", "--hf-config", "{dir}"]),
    (migrate_model, ["plan", "mini", "--upstream", str(UPSTREAM), "--plugin", "{plugin}", "--hf-config", "{binary}"]),
    (migrate_model, ["plan", "mini", "--upstream", str(UPSTREAM), "--plugin", "{file}"]),
    (migrate_model, ["plan", LONG, "--upstream", str(UPSTREAM), "--plugin", "{plugin}"]),
    (migrate_model, ["plan", "mini\n", "--upstream", str(UPSTREAM), "--plugin", "{plugin}"]),
    (migrate_model, ["plan", "mini", "--upstream", "{binary}", "--plugin", "{plugin}"]),
    (migrate_model, ["apply", "../x", "--upstream", str(UPSTREAM), "--plugin", "{plugin}"]),
    (migrate_model, ["frobnicate"]),
    # validate_migration.py
    (validate_migration, [str(GOOD_PLUGIN), LONG]),
    (validate_migration, [str(GOOD_PLUGIN), "{dir}"]),
    (validate_migration, [str(GOOD_PLUGIN), "{binary}"]),
    (validate_migration, ["{file}", "--all"]),
    (validate_migration, [str(GOOD_PLUGIN), "--pinned", "../../etc", "--all"]),
    (validate_migration, [LONG, "--all"]),
    # remote_gt_server.py (e2e_remote_serve.sh): bad configs, all without connecting
    (remote_gt_server, ["status", "{gt_bad}", "--dry-run"]),
    (remote_gt_server, ["status", "{dir}", "--dry-run"]),
    (remote_gt_server, ["status", "{binary}", "--dry-run"]),
    (remote_gt_server, ["start", "{gt_bad}", "m\n", "--dry-run"]),
    (remote_gt_server, ["start", "{gt_bad}", "--poll", "nan", "--dry-run"]),
    # build_api_index.py / render_patch_catalog.py: outputs that are files
    (build_api_index, [str(UPSTREAM), "--package", "vllm", "--output", "{results_file}"]),
    (render_patch_catalog, ["--out", "{dir}"]),
]


@pytest.mark.parametrize("main_module, argv", CASES)
def test_hostile_input_is_an_error_not_a_traceback(main_module, argv, files, monkeypatch, capsys):
    monkeypatch.chdir(files["tmp"])
    code = outcome(main_module.main, [a.format(**files) for a in argv])
    assert code in (0, 1, 2), code
    err = capsys.readouterr().err
    assert "Traceback" not in err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
