"""migrate_model.py plan/apply/verify on the upstream_mini fixture and a plugin tree made per test."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import migrate_model
import pytest
from flagos_migrate.analysis.engine import AnalysisContext, analyze_source
from flagos_migrate.cli import UsageError
from flagos_migrate.migrate import backports
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree, parse_registrations

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_mini"

INIT = '''import logging

logger = logging.getLogger(__name__)


def register_model():
    from vllm import ModelRegistry

    # Existing model (kept as is)
    try:
        ModelRegistry.register_model("FooForCausalLM", "vllm_fl.models.foo:FooForCausalLM")
    except Exception as e:
        logger.error("foo: %s", e)
'''


def make_plugin(tmp_path: Path) -> Path:
    """A plugin checkout with one existing registration (INIT) and an empty models package."""
    root = tmp_path / "plugin"
    (root / "vllm_fl" / "models").mkdir(parents=True)
    (root / "vllm_fl" / "__init__.py").write_text(INIT)
    (root / "vllm_fl" / "models" / "__init__.py").write_text("")
    return root


@pytest.fixture
def plugin(tmp_path) -> Path:
    return make_plugin(tmp_path)


def cli(capsys, *args) -> tuple[int, str, str]:
    try:
        code = migrate_model.main(list(args))
    except UsageError as exc:
        out, err = capsys.readouterr()
        return 2, out, err + f"error: {exc.message}\nhint: {exc.hint}\n"
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def common(plugin: Path, *extra: str) -> list[str]:
    return ["--upstream", str(UPSTREAM), "--plugin", str(plugin), "--all-archs", *extra]


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_peer_architectures_are_asked_not_guessed(capsys, plugin, command):
    before = snapshot(plugin)
    code, out, err = cli(capsys, command, "mini", "--upstream", str(UPSTREAM), "--plugin", str(plugin))
    assert code == 2 and out == "" and snapshot(plugin) == before
    assert "MiniForCausalLM, MiniLMHeadModel, MiniVLForConditionalGeneration" in err
    assert "hint: answer with --arch NAME" in err and "--all-archs" in err


def test_arch_choice_limits_what_is_registered(capsys, plugin):
    code, out, _ = cli(capsys, "plan", "mini", "--upstream", str(UPSTREAM), "--plugin", str(plugin),
                       "--arch", "MiniVLForConditionalGeneration", "--json")
    plan = json.loads(out)
    assert plan["resolved"]["ModelClassName"] == "MiniVLForConditionalGeneration"
    assert [a for a in plan["registration"]["add"] if " -> " in a] == [
        "MiniVLForConditionalGeneration -> vllm_fl.models.mini:MiniVLForConditionalGeneration"]


def test_plan_splits_fixed_and_left_and_writes_nothing(capsys, plugin):
    before = snapshot(plugin)
    code, out, _ = cli(capsys, "plan", "mini", *common(plugin, "--json"))
    assert snapshot(plugin) == before
    plan = json.loads(out)
    assert code == 1  # a finding is left for the agent
    fixed_rules = {f["rule"] for f in plan["will_fix"]}
    assert {"P1", "P3", "P4", "P5", "P6", "P9", "P13", "P14", "P17"} <= fixed_rules
    applied = {r for f in plan["files"] for r in f["rules"]}
    assert {"P1", "P2", "P3", "P4", "P5", "P6", "P9", "P13", "P14", "P16", "P17", "P22"} <= applied
    left = [f for f in plan["left_for_you"] if f["severity"] == "error"]
    assert [(f["rule"], f["data"]["kwarg"]) for f in left] == [("P6", "weight_offset")]
    assert list(plan["backports"]) == ["vllm_fl.compat.stacked_weights"]
    assert ("vllm_fl/compat/stacked_weights.py", "backport") in {(f["path"], f["role"]) for f in plan["files"]}
    assert plan["closure"] == ["vllm.model_executor.models.mini_base"]
    assert plan["config_bridges"] == ["vllm_fl.configs.mini <- vllm.transformers_utils.configs.mini"]
    # a pinned function with another signature: upstream's definition comes along for the call
    assert plan["compat"] == {"vllm_fl.compat.model_executor_models_utils": ["extract_layer_index", "scaled_sum"]}
    assert "MiniLMHeadModel -> vllm_fl.models.mini:MiniForCausalLM" in plan["registration"]["add"]


def test_apply_writes_migrated_files_registration_and_provenance(capsys, plugin):
    code, out, _ = cli(capsys, "apply", "mini", *common(plugin))
    assert code == 1 and "left for you (1)" in out and "weight_offset" in out
    pkg = plugin / "vllm_fl"
    model = (pkg / "models" / "mini.py").read_text()
    assert "from ." not in model and "_mark_language_model" not in model
    assert "from vllm_fl.models.mini_base import MiniBlock  # the block lives in a sibling module" in model
    assert "from vllm_fl.configs.mini import MiniConfig" in model
    assert "from vllm_fl.compat.model_executor_models_utils import extract_layer_index, scaled_sum" in model
    assert "from vllm.attention.layer import Attention" in model
    # the stacked mapper is kept and comes from the back-port (P22), written once into compat/
    assert "orig_to_new_stacked" in model and "from vllm_fl.compat.stacked_weights import WeightsMapper" in model
    assert (pkg / "compat" / "stacked_weights.py").read_text() == backports.STACKED_WEIGHTS.text()
    assert "get_mamba_state_copy_func" not in model and "MambaStateCopyFuncCalculator" not in model
    assert "EncoderCudaGraphConfig" not in model  # unused and missing: removed
    assert "if TYPE_CHECKING:\n    from vllm.v1.worker.encoder_cudagraph_defs import EncoderItemSpec" in model
    assert 'def describe(self, spec: "EncoderItemSpec") -> str:' in model
    assert "def forward(self, x: torch.Tensor) -> torch.Tensor:" in model
    assert "cache_config.enable_prefix_caching" in model and "disable_tp" not in model
    assert '@default_pooling_type(pooling_type="CLS")\nclass MiniForEmbedding' in model  # the pinned keyword
    # the vendored helper is the real definition with what it needs, never a stub
    compat = (pkg / "compat" / "model_executor_models_utils.py").read_text()
    tree = ast.parse(compat)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert defined == {"scaled_sum", "_double", "extract_layer_index"} and "_SCALE = 2.0" in compat
    assert "vllm.model_executor.models.utils" in compat.split('"""')[1]  # provenance header
    bridge = (pkg / "configs" / "mini.py").read_text()
    assert "class MiniConfig(PretrainedConfig):" in bridge and 'model_type = "mini"' in bridge
    assert (pkg / "configs" / "__init__.py").is_file() and (pkg / "compat" / "__init__.py").is_file()
    reg = parse_registrations(pkg / "__init__.py")
    assert [m.arch for m in reg.models] == ["FooForCausalLM", "MiniForCausalLM", "MiniLMHeadModel",
                                           "MiniVLForConditionalGeneration"]
    assert [(c.model_type, c.cls) for c in reg.configs] == [("mini", "MiniConfig")]
    assert (pkg / "__init__.py").read_text().startswith(INIT)
    record = json.loads((pkg / "models" / ".migration" / "mini.json").read_text())
    assert record["pinned_vllm"] == "0.13.0" and record["upstream"]["version"] == "0.33.0"
    assert set(record["files"]) == {"vllm_fl/models/mini.py", "vllm_fl/models/mini_base.py",
                                    "vllm_fl/configs/mini.py", "vllm_fl/compat/model_executor_models_utils.py",
                                    "vllm_fl/compat/stacked_weights.py"}
    assert "P13" in record["files"]["vllm_fl/models/mini.py"]["rules"]
    assert record["files"]["vllm_fl/compat/stacked_weights.py"]["role"] == "backport"


def test_written_files_pass_the_validator_analysis_except_what_is_left(capsys, plugin):
    cli(capsys, "apply", "mini", *common(plugin))
    tree = PluginTree(plugin)
    apis = PinnedApis.load("0.13.0").with_package(tree.index())
    for rel in ("models/mini.py", "models/mini_base.py", "configs/mini.py", "compat/model_executor_models_utils.py",
                "compat/stacked_weights.py"):
        path = tree.package_dir / rel
        ctx = AnalysisContext(apis, tree.module_of(path), str(path))
        errors = [f for f in analyze_source(path.read_text(), ctx) if f.is_issue]
        expected = [("P6", "weight_offset")] if rel == "models/mini.py" else []
        assert [(f.rule, f.data.get("kwarg")) for f in errors] == expected, rel


def test_second_apply_changes_no_byte(capsys, plugin):
    cli(capsys, "apply", "mini", *common(plugin))
    first = snapshot(plugin)
    code, out, _ = cli(capsys, "apply", "mini", *common(plugin))
    assert snapshot(plugin) == first
    assert "nothing changed" in out and code == 1


def test_plan_and_apply_agree(capsys, plugin):
    _, out, _ = cli(capsys, "plan", "mini", *common(plugin, "--json"))
    planned = [(f["rule"], f["message"]) for f in json.loads(out)["left_for_you"]]
    _, out, _ = cli(capsys, "apply", "mini", *common(plugin, "--json"))
    applied = [(f["rule"], f["message"]) for f in json.loads(out)["left_for_you"]]
    assert planned == applied and planned


def test_hand_edited_file_needs_force(capsys, plugin):
    cli(capsys, "apply", "mini", *common(plugin))
    target = plugin / "vllm_fl" / "models" / "mini.py"
    edited = target.read_text().replace("return set()", "return {'tuned by hand'}")
    target.write_text(edited)
    code, _, err = cli(capsys, "apply", "mini", *common(plugin))
    assert code == 2 and "edited by hand" in err and "--force" in err
    assert "-        return {'tuned by hand'}" in err  # the diff of what apply would do
    assert target.read_text() == edited
    code, _, _ = cli(capsys, "apply", "mini", *common(plugin, "--force"))
    assert code == 1 and "tuned by hand" not in target.read_text()


def test_file_not_written_by_the_tool_is_protected(capsys, plugin):
    own = plugin / "vllm_fl" / "models" / "mini.py"
    own.write_text("# the plugin's own hand migration\n")
    code, _, err = cli(capsys, "apply", "mini", *common(plugin))
    assert code == 2 and "vllm_fl/models/mini.py" in err
    assert own.read_text() == "# the plugin's own hand migration\n"


def test_dry_run_prints_diffs_and_writes_nothing(capsys, plugin):
    before = snapshot(plugin)
    code, out, _ = cli(capsys, "apply", "mini", *common(plugin, "--dry-run"))
    assert snapshot(plugin) == before
    assert code == 1
    assert "+++ b/vllm_fl/models/mini.py" in out and "+++ b/vllm_fl/__init__.py" in out
    assert '+        ModelRegistry.register_model("MiniForCausalLM", "vllm_fl.models.mini:MiniForCausalLM")' in out


def test_rerun_after_upstream_update_reports_the_change(capsys, plugin, tmp_path):
    upstream = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, upstream)
    args = ["--upstream", str(upstream), "--plugin", str(plugin), "--all-archs"]
    cli(capsys, "apply", "mini", *args)
    base = upstream / "vllm" / "model_executor" / "models" / "mini_base.py"
    base.write_text(base.read_text().replace("return self.proj(x)", "return self.proj(x) * 1"))
    code, out, _ = cli(capsys, "apply", "mini", *args)
    assert "upstream: vllm.model_executor.models.mini_base changed upstream since the last apply" in out
    assert "wrote vllm_fl/models/mini_base.py" in out
    assert "self.proj(x) * 1" in (plugin / "vllm_fl" / "models" / "mini_base.py").read_text()


def test_sibling_the_plugin_already_holds_is_reused_not_overwritten(capsys, plugin):
    own = plugin / "vllm_fl" / "models" / "mini_base.py"
    own.write_text("from torch import nn\n\n\nclass MiniBlock(nn.Module):\n    pass\n")
    code, out, _ = cli(capsys, "apply", "mini", *common(plugin))
    assert own.read_text().endswith("    pass\n")
    assert "wrote vllm_fl/models/mini_base.py" not in out
    assert "from vllm_fl.models.mini_base import MiniBlock" in (plugin / "vllm_fl/models/mini.py").read_text()
    code, out, _ = cli(capsys, "plan", "mini", *common(plugin, "--json"))
    assert not [f for f in json.loads(out)["left_for_you"] if f["rule"] == "P18"]  # the plugin's copy imports


def _plan_p18_with_held_base(capsys, plugin, base_text: str) -> list[dict]:
    """The plugin holds its own mini_base (used as it is); plan mini and return its one P18 finding."""
    (plugin / "vllm_fl" / "models" / "mini_base.py").write_text(base_text)
    code, out, _ = cli(capsys, "plan", "mini", *common(plugin, "--json"))
    held = [f for f in json.loads(out)["left_for_you"] if f["rule"] == "P18"]
    assert code == 1 and len(held) == 1
    return held


def test_a_held_sibling_that_will_not_import_is_reported_on_its_importer(capsys, plugin):
    """The plugin's own mini_base is used as it is; when it cannot import, neither can mini (P18)."""
    held = _plan_p18_with_held_base(capsys, plugin, "from vllm.model_executor.layers.fused_moe import FusedMoEFactory"
                                    "\n\n\nclass MiniBlock(FusedMoEFactory):\n    pass\n")
    assert held[0]["file"] == "vllm_fl/models/mini.py" and "vllm_fl.models.mini_base" in held[0]["message"]
    assert "FusedMoEFactory" in held[0]["message"]


def test_a_held_sibling_with_findings_left_makes_its_importer_not_clean(capsys, plugin):
    """A sibling an earlier apply left work in is used as it is: the model importing it runs only
    once that work is done, so its plan is not "0 left" (granite_speech_plus over granite_speech)."""
    held = _plan_p18_with_held_base(capsys, plugin, "from torch import nn\n\n\nclass MiniBlock(nn.Module):\n"
                                    "    def forward(self, x):\n        return self.configure_mm_token_handling(x)\n")
    # a call no pinned class answers is a warning on a plain nn.Module (it may be set at run time)
    assert held[0]["file"] == "vllm_fl/models/mini.py" and held[0]["severity"] == "warning"
    assert "`vllm_fl.models.mini_base` (the plugin's own module, used as it is) has 1 finding(s) left" in held[0]["message"]
    assert held[0]["message"].endswith("first: vllm_fl/models/mini_base.py:6:15: warning P4 "
                                       "`self.configure_mm_token_handling()` in class MiniBlock: no class of its "
                                       "hierarchy on the pinned version defines `configure_mm_token_handling`")
    assert held[0]["data"] == {"module": "vllm_fl.models.mini_base", "import_time": False}


def test_refuses_to_write_through_a_symlink_outside_the_plugin(capsys, plugin, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (plugin / "vllm_fl" / "compat").symlink_to(outside, target_is_directory=True)
    code, _, err = cli(capsys, "apply", "mini", *common(plugin))
    assert code == 2 and "outside the plugin" in err
    assert not any(outside.iterdir())


def test_bad_inputs_exit_2(capsys, plugin, tmp_path):
    code, _, err = cli(capsys, "apply", "Mini-Model", *common(plugin))
    assert code == 2 and "snake_case" in err
    code, _, err = cli(capsys, "plan", "mini", "--upstream", str(UPSTREAM), "--plugin", str(tmp_path / "none"))
    assert code == 2 and "plugin folder not found" in err
    code, _, err = cli(capsys, "apply", "mini", "--upstream", str(UPSTREAM), "--plugin", str(tmp_path))
    assert code == 2 and "not a vllm-plugin-FL checkout" in err
    code, _, err = cli(capsys, "plan", "nonexistent_model", *common(plugin))
    assert code == 2 and "no model file" in err


def test_vendoring_refuses_helpers_that_need_missing_apis(plugin):
    up = Upstream(open_upstream(str(UPSTREAM)))
    m = Migration("plain", up, PluginTree(plugin), PinnedApis.load("0.13.0"))
    assert m.vendor("vllm.model_executor.models.utils", "needs_the_future", 0) is None
    assert "pinned vLLM lacks" in m.vendor_failed[("vllm.model_executor.models.utils", "needs_the_future")]
    assert m.vendor("vllm.model_executor.models.utils", "scaled_sum", 0) == "vllm_fl.compat.model_executor_models_utils"


def test_verify_without_vllm_says_what_to_install(capsys, plugin):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is importable in this Python")
    cli(capsys, "apply", "plain", *common(plugin))
    code, _, err = cli(capsys, "verify", "plain", "--plugin", str(plugin))
    assert code == 2 and "vLLM is not importable" in err and "pip install vllm==0.13.0" in err


def _python_with_vllm(tmp_path: Path, version: str) -> Path:
    """This interpreter with a stand-in ``vllm`` of ``version`` on its path (metadata only)."""
    site = tmp_path / f"site-{version}"
    (site / "vllm").mkdir(parents=True)
    (site / "vllm" / "__init__.py").write_text("")
    (site / f"vllm-{version}.dist-info").mkdir()
    (site / f"vllm-{version}.dist-info" / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    py = tmp_path / f"python-{version}"
    py.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" "$@"\n')
    py.chmod(0o755)
    return py


def test_verify_warns_when_the_python_has_another_vllm_than_the_pin(capsys, plugin, tmp_path):
    cli(capsys, "apply", "plain", *common(plugin))
    other = _python_with_vllm(tmp_path, "0.20.2")
    _, out, err = cli(capsys, "verify", "plain", "--plugin", str(plugin), "--python", str(other), "--pinned", "0.13.0",
                      "--json")
    assert f"warning: the vLLM in {other} is 0.20.2, the pin is 0.13.0 (from --pinned)" in err
    assert "pass --pinned 0.20.2" in err
    if out.strip():
        assert json.loads(out)["python_vllm"] == "0.20.2"
    same = _python_with_vllm(tmp_path, "0.13.0+cpu")  # a local build of the pinned release
    _, _, err = cli(capsys, "verify", "plain", "--plugin", str(plugin), "--python", str(same), "--pinned", "0.13.0")
    assert "warning: the vLLM in" not in err


def test_verify_without_a_record_exit_2(capsys, plugin):
    code, _, err = cli(capsys, "verify", "mini", "--plugin", str(plugin))
    assert code == 2 and "apply mini" in err


@pytest.mark.slow
def test_verify_imports_with_the_pinned_vllm(capsys, plugin):
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    cli(capsys, "apply", "mini", *common(plugin))
    code, out, _ = cli(capsys, "verify", "mini", "--plugin", str(plugin), "--python", venv)
    # everything apply wrote imports on the real 0.13.0, the stacked-weights back-port included
    assert code == 0, out
    for module in ("models.mini", "models.mini_base", "configs.mini", "compat.stacked_weights"):
        assert f"ok      vllm_fl.{module}" in out
    # what is left for the agent (RMSNorm(weight_offset=)) runs in __init__; run at import time it fails
    model = plugin / "vllm_fl" / "models" / "mini.py"
    model.write_text(model.read_text() + "\n_NORM = RMSNorm(8, weight_offset=1.0)\n")
    code, out, _ = cli(capsys, "verify", "mini", "--plugin", str(plugin), "--python", venv)
    assert code == 1
    assert "ok      vllm_fl.models.mini_base" in out and "ok      vllm_fl.configs.mini" in out
    assert "FAILED  vllm_fl.models.mini: TypeError" in out and "(likely P6)" in out


def test_only_plain_upstream_helpers_replace_a_pinned_function(plugin):
    """Upstream's definition replaces a pinned function of another signature only when it is a plain
    helper: decorator factories and functions that set attributes on their arguments talk to the
    pinned framework, which reads other attributes."""
    up = Upstream(open_upstream(str(UPSTREAM)))
    m = Migration("mini", up, PluginTree(plugin), PinnedApis.load("0.13.0"))
    utils = "vllm.model_executor.models.utils"
    assert m._plain_upstream_helper(utils, "extract_layer_index") is True
    assert m._plain_upstream_helper(utils, "scaled_sum") is True
    assert m._plain_upstream_helper(utils, "tag_model") is False
    assert m._plain_upstream_helper(utils, "tagged") is False
    assert m._plain_upstream_helper(utils, "not_defined_upstream") is False


def test_a_class_attribute_only_upstream_has_brings_its_module_along(capsys, plugin):
    """``Qwen2VLMultiModalDataParser.embedding_fields`` is read in a class body; the pinned class lacks
    it, so upstream's module comes along and the absolute import is re-pointed to the plugin's copy."""
    code, out, _ = cli(capsys, "plan", "omni", *common(plugin, "--json"))
    plan = json.loads(out)
    assert code == 0 and plan["closure"] == ["vllm.model_executor.models.qwen2_vl",
                                             "vllm.transformers_utils.processors.omni",
                                             "vllm.transformers_utils.processors.omni_base"]
    assert list(plan["backports"]) == ["vllm_fl.compat.gate_linear"]  # GateLinear: a back-port, not a finding
    cli(capsys, "apply", "omni", *common(plugin))
    model = (plugin / "vllm_fl" / "models" / "omni.py").read_text()
    assert "from vllm_fl.models.qwen2_vl import Qwen2VLMultiModalDataParser" in model
    assert "from vllm_fl.compat.gate_linear import GateLinear" in model
    assert "from vllm_fl.processors.omni import OmniProcessor" in model  # the whole processor module came along
    processor = (plugin / "vllm_fl" / "processors" / "omni.py").read_text()
    assert "from vllm_fl.processors.omni_base import describe" in processor
    assert (plugin / "vllm_fl" / "processors" / "__init__.py").is_file()
    assert (plugin / "vllm_fl" / "models" / "qwen2_vl.py").is_file()
    assert (plugin / "vllm_fl" / "compat" / "gate_linear.py").read_text() == backports.GATE_LINEAR.text()


def test_an_installed_backport_is_used_by_every_later_migration(capsys, plugin):
    """Once the plugin holds the stacked-weights back-port, a migration that would not need it still
    imports the shadowed names from it, so shared files never flip between two texts."""
    pkg = plugin / "vllm_fl"
    cli(capsys, "apply", "plain", *common(plugin))
    assert "from vllm.model_executor.models.utils import WeightsMapper" in (pkg / "models" / "plain.py").read_text()
    assert not (pkg / "compat" / "stacked_weights.py").exists()  # nothing needed it yet
    cli(capsys, "apply", "mini", *common(plugin))
    cli(capsys, "apply", "plain", *common(plugin))
    assert "from vllm_fl.compat.stacked_weights import WeightsMapper" in (pkg / "models" / "plain.py").read_text()
    before = snapshot(plugin)
    for name in ("mini", "plain", "mini"):
        code, out, _ = cli(capsys, "apply", name, *common(plugin))
        assert "nothing changed (already applied)" in out, name
    assert snapshot(plugin) == before


@pytest.mark.slow
def test_verify_on_a_plugin_whose_init_needs_a_gpu(capsys, plugin):
    """The real plugin's __init__ imports flag_gems, which raises without a GPU: verify still
    imports the migrated modules; one that needs such a package itself is exit 2 with a hint."""
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    cli(capsys, "apply", "plain", *common(plugin))
    (plugin / "fake_flag_gems").mkdir()
    (plugin / "fake_flag_gems" / "__init__.py").write_text("raise RuntimeError('flag_gems: no device found')\n")
    init = plugin / "vllm_fl" / "__init__.py"
    init.write_text("import fake_flag_gems  # noqa: F401\n" + init.read_text())
    code, out, _ = cli(capsys, "verify", "plain", "--plugin", str(plugin), "--python", venv)
    assert code == 0 and "ok      vllm_fl.models.plain" in out, out
    model = plugin / "vllm_fl" / "models" / "plain.py"
    model.write_text("import fake_flag_gems  # noqa: F401\n" + model.read_text())
    code, out, err = cli(capsys, "verify", "plain", "--plugin", str(plugin), "--python", venv, "--json")
    assert code == 2 and "could not be checked" in err and "hint:" in err
    data = json.loads(out)
    assert data["failed"] == 0 and data["environment"] == 1
    assert "fake_flag_gems" in data["results"]["vllm_fl.models.plain"]["environment"]


def test_plan_p1_says_what_apply_writes(capsys, plugin):
    """A relative import of a sibling that comes along: the plan names the plugin's module that apply
    writes, not the upstream module the relative import resolves to."""
    _, out, _ = cli(capsys, "plan", "mini", *common(plugin, "--json"))
    p1 = {f["message"]: f["fix"] for f in json.loads(out)["will_fix"] if f["rule"] == "P1" and f["file"].endswith("/mini.py")}
    sibling = [m for m in p1 if "mini_base" in m]
    assert sibling == ["relative import `from .mini_base import MiniBlock`: apply writes `from vllm_fl.models.mini_base "
                       "import MiniBlock` (the plugin's migrated sibling; upstream resolves to "
                       "vllm.model_executor.models.mini_base)"]
    assert p1[sibling[0]] == "import from the absolute module: from vllm_fl.models.mini_base import MiniBlock"
    cli(capsys, "apply", "mini", *common(plugin))
    assert "from vllm_fl.models.mini_base import MiniBlock" in (plugin / "vllm_fl" / "models" / "mini.py").read_text()


def test_record_counts_what_left_for_you_lists(capsys, plugin, tmp_path):
    """One "left for you" (catalog.findings.left_for_you): a warning alone is left for you, so apply
    exits 1; findings_left is its length (issues_left: the errors); the validator counts it alike
    while only errors change its own exit code."""
    upstream = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, upstream)
    plain = upstream / "vllm" / "model_executor" / "models" / "plain.py"
    plain.write_text(plain.read_text() + "\n\ndef _leftover():\n    try:\n        return 1\n    except:\n        return 0\n")
    code, out, _ = cli(capsys, "apply", "plain", "--upstream", str(upstream), "--plugin", str(plugin), "--json")
    applied = json.loads(out)
    left = applied["left_for_you"]
    assert [(f["rule"], f["severity"]) for f in left] == [("P19", "warning")]
    assert code == 1
    record = json.loads((plugin / applied["record"]).read_text())
    assert (record["findings_left"], record["issues_left"]) == (1, 0)
    # each finding left with its span in the written file (verify --run ties a failure to it): the innermost
    # statement around it, here the try the bare except belongs to
    (entry,) = record["left"]
    written = (plugin / entry["file"]).read_text().splitlines()
    assert (entry["rule"], entry["severity"]) == ("P19", "warning")
    assert written[entry["span"][0] - 1] == "    try:" and entry["span"][1] == len(written)
    assert entry["span"][0] < entry["line"] <= entry["span"][1]
    spec = importlib.util.spec_from_file_location("validate_migration", ROOT / "scripts" / "validate_migration.py")
    validator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(validator)
    assert validator.main([str(plugin), "plain", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], len(report["warnings"]), report["left_for_you"]) == (True, 1, 1)


SIBLING_USER = '''"""Inference-only Large model (fixture: a subclass of a sibling the pinned vLLM has)."""

from .llama import LlamaForCausalLM


class LargeForCausalLM(LlamaForCausalLM):
    pass
'''


@pytest.mark.parametrize("written_by_apply", [True, False])
def test_a_pinned_sibling_is_kept_over_a_copy_an_earlier_migration_wrote(tmp_path, written_by_apply):
    """Issue 13 class 9: the pinned llama has LlamaForCausalLM, so a migrated copy of upstream's llama
    that an earlier apply wrote (which may need what 0.13.0 lacks, as deepseek_v2 did for
    mistral_large_3) does not replace it; a module the plugin wrote itself still wins."""
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    models = up / "vllm" / "model_executor" / "models"
    (models / "large.py").write_text(SIBLING_USER)
    (models / "llama.py").write_text("from torch import nn\n\n\nclass LlamaForCausalLM(nn.Module):\n    pass\n")
    plugin = make_plugin(tmp_path)
    (plugin / "vllm_fl" / "models" / "llama.py").write_text(
        "from torch import nn\n\n\nclass LlamaForCausalLM(nn.Module):\n    pass\n")
    if written_by_apply:
        record = plugin / "vllm_fl" / "models" / ".migration" / "llama.json"
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"format": 1, "model": "llama", "files": {
            "vllm_fl/models/llama.py": {"role": "model", "origin": "vllm.model_executor.models.llama"}}}))
    m = Migration("large", Upstream(open_upstream(str(up))), PluginTree(plugin), PinnedApis.load("0.13.0")).run()
    expected = ("from vllm.model_executor.models.llama import LlamaForCausalLM" if written_by_apply
                else "from vllm_fl.models.llama import LlamaForCausalLM")
    assert m.model_unit.text == SIBLING_USER.replace("from .llama import LlamaForCausalLM", expected)
    assert "vllm_fl.models.llama" not in m.units  # never rewritten either way


TOWER_USER = '''"""A model that builds upstream's vision tower with a keyword only upstream's class takes."""

from torch import nn

from .idefics2_vision_model import Idefics2VisionTransformer


class TowerUser(nn.Module):
    def __init__(self, config, prefix=""):
        super().__init__()
        self.vpm = CALL
'''

UPSTREAM_TOWER = '''"""Upstream's tower (fixture): its __init__ grew a keyword the pinned one does not take."""

from torch import nn


class Idefics2VisionTransformer(nn.Module):
    def __init__(self, config, quant_config=None, *, num_hidden_layers_override=None,
                 require_post_norm=True, apply_encoder_attention_mask=False, prefix=""):
        super().__init__()
        self.apply_encoder_attention_mask = apply_encoder_attention_mask
'''


def test_a_pinned_sibling_whose_class_rejects_a_keyword_gives_way_to_upstreams(tmp_path, plugin):
    """minicpmv4_6 builds ``Idefics2VisionTransformer(apply_encoder_attention_mask=True)``: the pinned
    class has no such keyword (nor the attention mask it turns on), so the sibling that comes along is
    upstream's, the class the caller was written for; calls the pinned class takes, or whose extra
    keyword a P6 table settles, keep the pinned sibling."""
    root = tmp_path / "up"
    shutil.copytree(UPSTREAM, root)
    (root / "vllm" / "model_executor" / "models" / "idefics2_vision_model.py").write_text(UPSTREAM_TOWER)
    m = Migration("mini", Upstream(open_upstream(str(root))), PluginTree(plugin), PinnedApis.load("0.13.0"))
    origin, tower = "vllm.model_executor.models.tower_user", "vllm.model_executor.models.idefics2_vision_model"

    def needs(call: str) -> list:
        m.redirects.clear()
        return m._needs(origin, TOWER_USER.replace("CALL", call))

    assert needs("Idefics2VisionTransformer(config, apply_encoder_attention_mask=True, prefix=prefix)") == [
        (tower, "closure")]
    assert m.redirects[tower] == "vllm_fl.models.idefics2_vision_model"
    assert needs("Idefics2VisionTransformer(config, require_post_norm=False, prefix=prefix)") == []
    assert needs("Idefics2VisionTransformer(config, prefix=prefix, return_bias=False)") == []  # safe drop
    assert tower not in m.redirects
    # through a local subclass that keeps the inherited __init__ (cosmos3_edge's NemotronHModel), not one
    # with its own __init__ (which takes what it defines)
    sub = "class Mine(Idefics2VisionTransformer):\n    BODY\n\n\nclass TowerUser"
    m.redirects.clear()
    text = TOWER_USER.replace("CALL", "Mine(config, apply_encoder_attention_mask=True)").replace("class TowerUser", sub)
    assert m._needs(origin, text.replace("BODY", "load_weights = None")) == [(tower, "closure")]
    m.redirects.clear()
    own = "def __init__(self, config, apply_encoder_attention_mask=False):\n        super().__init__(config)"
    assert m._needs(origin, text.replace("BODY", own)) == []
    # negative: upstream's class does not take the keyword either: its copy would not help (P6 stays)
    (root / "vllm" / "model_executor" / "models" / "idefics2_vision_model.py").write_text(
        UPSTREAM_TOWER.replace("apply_encoder_attention_mask=False, ", ""))
    m = Migration("mini", Upstream(open_upstream(str(root))), PluginTree(plugin), PinnedApis.load("0.13.0"))
    assert m._needs(origin, TOWER_USER.replace("CALL", "Idefics2VisionTransformer(config, apply_encoder_attention_mask=True)")) == []


def test_a_missing_name_only_function_bodies_read_is_imported_there_and_stays_left(tmp_path):
    # openpangu: the sink-attention layer (absent on 0.13.0) is built only for configs with sink tokens; its
    # import no longer stops the file's other architectures, and the finding stays, on the moved import
    from tests.analysis_helpers import migrate_example

    m = migrate_example(tmp_path, '''\
        import torch
        from vllm.model_executor.layers.attention import StaticSinkAttention


        class SinkAttention(torch.nn.Module):
            def __init__(self, n):
                super().__init__()
                self.attn = StaticSinkAttention(n)
        ''', "sinky")
    text = m.model_unit.text
    assert "\nfrom vllm.model_executor.layers.attention" not in text
    assert ("    def __init__(self, n):\n        from vllm.model_executor.layers.attention import StaticSinkAttention\n"
            "        super().__init__()\n") in text
    left = [f for f in m.left() if f.rule == "P3"]
    assert len(left) == 1 and left[0].data["name"] == "StaticSinkAttention" and not left[0].data["import_time"]
    compile(text, "sinky.py", "exec")


ATTN_USER = '''"""A model that calls upstream's attention module as upstream's forward takes it."""

from torch import nn

from .qwen3_next import Qwen3NextAttention


class AttnUser(nn.Module):
    def __init__(self, config, prefix=""):
        super().__init__()
        self.self_attn = Qwen3NextAttention(config)

    def forward(self, positions, hidden_states):
        return CALL
'''

UPSTREAM_ATTN = '''"""Upstream's attention (fixture): its forward returns the output the pinned one writes into."""

from torch import nn


class Qwen3NextAttention(nn.Module):
    def forward(self, positions, hidden_states):
        return hidden_states
'''


def test_a_pinned_sibling_whose_module_forward_needs_more_than_the_call_gives_way_to_upstreams(tmp_path, plugin):
    """AliceAI calls ``self.self_attn(hidden_states=..., positions=...)`` on a Qwen3NextAttention: 0.13.0's
    ``forward(positions, output, hidden_states)`` also requires the ``output`` it writes into (forward failed:
    missing 1 required positional argument: 'output'); upstream's returns it. The sibling that comes along is
    upstream's; a call that passes what the pinned forward requires keeps the pinned sibling."""
    root = tmp_path / "up"
    shutil.copytree(UPSTREAM, root)
    (root / "vllm" / "model_executor" / "models" / "qwen3_next.py").write_text(UPSTREAM_ATTN)
    m = Migration("mini", Upstream(open_upstream(str(root))), PluginTree(plugin), PinnedApis.load("0.13.0"))
    origin, sibling = "vllm.model_executor.models.attn_user", "vllm.model_executor.models.qwen3_next"

    def needs(call: str) -> list:
        m.redirects.clear()
        return m._needs(origin, ATTN_USER.replace("CALL", call))

    assert needs("self.self_attn(hidden_states=hidden_states, positions=positions)") == [(sibling, "closure")]
    assert needs("self.self_attn(positions, hidden_states)") == [(sibling, "closure")]
    assert needs("self.self_attn(positions, hidden_states, hidden_states)") == []
    assert needs("self.self_attn(positions=positions, output=hidden_states, hidden_states=hidden_states)") == []


def test_a_p9_default_with_a_caveat_is_applied_and_keeps_a_warning(tmp_path):
    """upstream's lfm2 bidirectional convolution reads ``get_forward_context().is_padding`` (a mask only upstream's
    runner sets): it is read as None, upstream's value on an unpadded batch (forward fail -> match pass), and the
    file keeps a warning that names when 0.13.0 pads (CUDA graphs, sequence parallelism) and what avoids it."""
    from tests.analysis_helpers import migrate_example

    m = migrate_example(tmp_path, '''\
        import torch
        from vllm.forward_context import get_forward_context


        def conv(x: torch.Tensor) -> torch.Tensor:
            is_padding = get_forward_context().is_padding
            return x if is_padding is None else x.masked_fill(is_padding[:, None], 0)
        ''', "padded")
    text = m.model_unit.text
    assert '    is_padding = getattr(get_forward_context(), "is_padding", None)\n' in text
    (left,) = [f for f in m.left() if f.rule == "P9"]
    assert (left.severity, left.line) == ("warning", text.splitlines().index(
        '    is_padding = getattr(get_forward_context(), "is_padding", None)') + 1)
    assert "is read as None" in left.message and "CUDA graph" in left.message
    assert "--enforce-eager" in left.fix
    # a default with no caveat leaves nothing (nemotron_vl's mm_device_do_normalize)
    m = migrate_example(tmp_path / "plain", '''\
        def normalize(self):
            return self.model_config.get_multimodal_config().mm_device_do_normalize
        ''', "plain")
    assert "mm_device_do_normalize\", False)" in m.model_unit.text and not [f for f in m.left() if f.rule == "P9"]
