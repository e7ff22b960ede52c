"""validate.py / validate_migration.py: files, registrations (check 5), bridges, formats, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.commands.validate import validate

from tests.analysis_helpers import GOOD_PLUGIN

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "scripts" / "validate_migration.py"


@pytest.fixture()
def plugin(tmp_path) -> Path:
    dest = tmp_path / "plugin"
    shutil.copytree(GOOD_PLUGIN, dest)
    return dest


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"fixture changed: {old!r} not in {path}"
    path.write_text(text.replace(old, new))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLI), *args], capture_output=True, text=True, timeout=60)


def rules_of(report, severity="error"):
    return sorted(f.rule for f in report.findings if f.severity == severity)


# -- the good plugin ---------------------------------------------------------------------------------


def test_plugin_with_several_models_validates_clean_all():
    report = validate(str(GOOD_PLUGIN), all_models=True)
    assert report.findings == []
    assert "vllm_fl/models/kimi_k25.py" in report.files and "vllm_fl/configs/qwen3_5.py" in report.files
    assert "vllm_fl/__init__.py" in report.files


@pytest.mark.parametrize("model", ["qwen3_next", "kimi_k25", "qwen3_5", "vllm_fl/models/qwen3_5.py"])
def test_each_model_validates_clean_on_its_own(model):
    assert validate(str(GOOD_PLUGIN), model).findings == []


# -- check 5: registrations, judged per entry -------------------------------------------------------


def test_registration_to_missing_module_and_class(plugin):
    init = plugin / "vllm_fl" / "__init__.py"
    edit(init, '"vllm_fl.models.kimi_k25:KimiK25ForCausalLM"', '"vllm_fl.models.kimi_k2_5:KimiK25ForCausalLM"')
    edit(init, '"vllm_fl.models.qwen3_5:Qwen3_5ForCausalLM")\n        ModelRegistry',
         '"vllm_fl.models.qwen3_5:Qwen3_5Missing")\n        ModelRegistry')
    report = validate(str(plugin), all_models=True)
    p10 = [f for f in report.findings if f.rule == "P10"]
    assert sorted(f.data["arch"] for f in p10) == ["KimiK25ForConditionalGeneration", "Qwen3_5ForCausalLM"]
    # single-file mode judges only the entries of that file
    only_next = validate(str(plugin), "qwen3_next")
    assert [f for f in only_next.findings if f.rule == "P10"] == []


def test_config_registry_type_mismatch_and_missing_class(plugin):
    init = plugin / "vllm_fl" / "__init__.py"
    edit(init, '_CONFIG_REGISTRY["qwen3_5"] = Qwen3_5Config', '_CONFIG_REGISTRY["qwen3.5"] = Qwen3_5Config')
    edit(init, "from vllm_fl.configs.kimi_k25 import KimiK25Config", "from vllm_fl.configs.kimi_k25 import KimiConfig")
    edit(init, '_CONFIG_REGISTRY["kimi_k25"] = KimiK25Config', '_CONFIG_REGISTRY["kimi_k25"] = KimiConfig')
    report = validate(str(plugin), all_models=True)
    msgs = sorted(f.message for f in report.findings if f.rule == "P10")
    assert len(msgs) == 2
    assert any("model_type is 'qwen3_5'" in m for m in msgs) and any("KimiConfig not found" in m for m in msgs)


def test_unregistered_model_file_is_a_warning(plugin):
    (plugin / "vllm_fl" / "models" / "extra.py").write_text("X = 1\n")
    report = validate(str(plugin), "extra")
    assert rules_of(report) == [] and rules_of(report, "warning") == ["P10"]


def test_init_without_register_model_is_a_finding(plugin):
    (plugin / "vllm_fl" / "__init__.py").write_text("def register():\n    return None\n")
    report = validate(str(plugin), "qwen3_5")
    assert any(f.rule == "P10" and f.data.get("kind") == "no-register-model" for f in report.findings)


# -- broken model / bridge / ops files in the plugin ------------------------------------------------------


def test_broken_model_file_variants(plugin):
    model = plugin / "vllm_fl" / "models" / "kimi_k25.py"
    edit(model, "from vllm.config import VllmConfig", "from vllm.config import VllmConfig\nfrom .utils import x")
    edit(model, "WeightsMapper(orig_to_new_prefix=", "WeightsMapper(orig_to_new_stacked={}, orig_to_new_prefix=")
    edit(model, "tp = vllm_config.parallel_config.tensor_parallel_size",
         "tp = vllm_config.parallel_config.no_such_parallel_field")
    report = validate(str(plugin), "kimi_k25")
    assert rules_of(report) == ["P1", "P6", "P9"]


def test_bridge_missing_model_type_and_fields(plugin):
    cfg = plugin / "vllm_fl" / "configs" / "qwen3_5.py"
    edit(cfg, '    model_type = "qwen3_5"\n', "")
    edit(cfg, "        self.vocab_size = vocab_size\n", "")
    report = validate(str(plugin), "qwen3_5", str(cfg))
    assert "P15" in rules_of(report)  # no model_type
    assert any(f.rule == "P15" and f.data.get("missing") == ["vocab_size"] for f in report.findings)


def test_duplicate_op_in_second_plugin_module(plugin):
    (plugin / "vllm_fl" / "models" / "fla_ops.py").write_text(
        "from vllm.utils.torch_utils import direct_register_custom_op\n\n\ndef f(x):\n    return x\n\n\n"
        'direct_register_custom_op(op_name="fl_gdn_core", op_func=f)\n')
    model = plugin / "vllm_fl" / "models" / "qwen3_5.py"
    edit(model, "from vllm_fl.models.qwen3_next import Qwen3NextGatedDeltaNet",
         "from vllm_fl.models.qwen3_next import Qwen3NextGatedDeltaNet\nfrom vllm_fl.models import fla_ops  # noqa")
    report = validate(str(plugin), "qwen3_5")
    (f,) = [f for f in report.findings if f.rule == "P11"]
    assert f.data["two_paths"] and f.data["other_module"] == "vllm_fl.ops.fla"


# -- bad input ------------------------------------------------------------------------------------------


def test_syntax_error_and_non_utf8_are_p20(plugin):
    bad = plugin / "vllm_fl" / "models" / "qwen3_5.py"
    bad.write_text("def broken(:\n")
    assert rules_of(validate(str(plugin), "qwen3_5")) == ["P20"]
    bad.write_bytes(b"x = '\xff\xfe'\n")
    (f,) = [f for f in validate(str(plugin), "qwen3_5").findings if f.rule == "P20"]
    assert "UTF-8" in f.message


@pytest.mark.parametrize("args", [
    ("/no/such/plugin", "qwen3_5"),
    (str(GOOD_PLUGIN), "no_such_model"),
    (str(GOOD_PLUGIN), "vllm_fl/models/none.py"),
])
def test_bad_paths_raise_usage_error(args):
    with pytest.raises(UsageError):
        validate(*args)


def test_empty_plugin_all_is_usage_error(tmp_path):
    pkg = tmp_path / "vllm_fl"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    with pytest.raises(UsageError, match="no model"):
        validate(str(tmp_path), all_models=True)


def test_unknown_pinned_version_names_the_build_command():
    with pytest.raises(UsageError) as exc:
        validate(str(GOOD_PLUGIN), "qwen3_5", pinned="9.9.9")
    assert "build_api_index.py vllm==9.9.9" in exc.value.hint


# -- the CLI -------------------------------------------------------------------------------------------


def test_cli_clean_exit_0_and_text_summary():
    proc = run_cli(str(GOOD_PLUGIN), "--all")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("OK: 0 issue(s)")


def test_cli_findings_exit_1_json_and_github(plugin):
    edit(plugin / "vllm_fl" / "models" / "qwen3_5.py", "from vllm.config import VllmConfig",
         "from vllm.config import VllmConfig\nfrom transformers import PreTrainedConfig  # noqa\n"
         "try:\n    pass\nexcept:\n    pass")
    proc = run_cli(str(plugin), "qwen3_5", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["pinned"]["vllm"] == "0.13.0" and doc["pinned"]["transformers"] == "4.57.6" and doc["files"]
    (issue,) = doc["issues"]
    assert issue["rule"] == "P5" and issue["data"]["new_name"] == "PretrainedConfig"
    assert {"rule", "file", "line", "col", "message"} <= set(issue)
    assert [w["rule"] for w in doc["warnings"]] == ["P19"]
    gh = run_cli(str(plugin), "qwen3_5", "--format", "github")
    assert gh.returncode == 1 and gh.stdout.startswith("::error file=vllm_fl/models/qwen3_5.py,line=")
    assert "::warning " in gh.stdout


def test_cli_strict_turns_warnings_into_issues(plugin):
    edit(plugin / "vllm_fl" / "models" / "qwen3_5.py", "from vllm.config import VllmConfig",
         "from vllm.config import VllmConfig\nimport pdb  # noqa")
    assert run_cli(str(plugin), "qwen3_5").returncode == 0
    assert run_cli(str(plugin), "qwen3_5", "--strict").returncode == 1


def test_cli_bad_input_exit_2_without_traceback(tmp_path):
    for args in ([str(tmp_path / "nope"), "x"], [str(GOOD_PLUGIN), "x", "--pinned", "0.0.1"], [str(tmp_path), "x"]):
        proc = run_cli(*args)
        # the pinned target is announced first, then the one error
        first, *rest = proc.stderr.splitlines()
        assert proc.returncode == 2 and first.startswith("pinned target: vLLM ") and "Traceback" not in proc.stderr
        assert rest[0].startswith("error: ") and rest[1].startswith("hint: "), proc.stderr


def test_cli_file_arguments_relative_to_the_plugin_from_any_directory(tmp_path):
    # the design card's form: PLUGIN MODEL_FILE CONFIG_FILE INIT_FILE with paths inside the plugin
    proc = subprocess.run(
        [sys.executable, str(CLI), str(GOOD_PLUGIN), "vllm_fl/models/qwen3_5.py", "vllm_fl/configs/qwen3_5.py",
         "vllm_fl/__init__.py", "--json"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    files = json.loads(proc.stdout)["files"]
    assert any(f.endswith("configs/qwen3_5.py") for f in files) and any(f.endswith("__init__.py") for f in files)
    missing = subprocess.run(
        [sys.executable, str(CLI), str(GOOD_PLUGIN), "qwen3_5", "vllm_fl/configs/nope.py"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert missing.returncode == 2 and "config file not found: vllm_fl/configs/nope.py" in missing.stderr
