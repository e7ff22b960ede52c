"""The same migration decided against two pins: vLLM 0.13.0 and vLLM 0.20.2 (the index shipped in the
bundle, built from a venv where `pip install vllm==0.20.2` had put transformers 4.57.6: xgrammar
caps it below 5 although vLLM's own requirement allows 5.x). Back-ports and rewrites follow what
each target lacks; nothing names a version."""

from __future__ import annotations

import ast
import json
import shutil

import pytest
from flagos_migrate.migrate import backports
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.pinned.target import resolve_target
from test_migrate_apply import UPSTREAM, cli, common, plugin  # noqa: F401  (the fixture)

PINS = ("0.13.0", "0.20.2")


@pytest.mark.parametrize("pinned, transformers", [("0.13.0", "4.57.6"), ("0.20.2", "4.57.6")])
def test_each_pin_brings_its_own_transformers(pinned, transformers):
    assert resolve_target(pinned).transformers == transformers
    apis = PinnedApis.load(pinned)
    assert (apis.vllm.version, apis.transformers.version) == (pinned, transformers)


def _lacks(apis):
    return lambda module, name: apis.resolve(module, name) is None


def _takes(apis):
    def takes(module, cls, keyword):
        sym = apis.resolve(module, cls)
        sig = apis.callable_signature(sym) if sym is not None else None
        return sig is not None and keyword in set(sig["p"]) | set(sig["k"])
    return takes


def test_backports_needed_follow_what_each_pin_lacks():
    code = ast.parse("from vllm.model_executor.layers.fused_moe import GateLinear\n"
                     "from vllm.model_executor.models.utils import WeightsMapper\n"
                     "m = WeightsMapper(orig_to_new_stacked={'qkv': ('qkv_proj', 0)})\n")
    got = {}
    for pin in PINS:
        apis = PinnedApis.load(pin)
        got[pin] = [bp.module for bp in backports.needed([code], _lacks(apis), _takes(apis))]
    # 0.20.2 ships GateLinear, but its WeightsMapper still has no stacked mapping
    assert got == {"0.13.0": ["vllm_fl.compat.stacked_weights", "vllm_fl.compat.gate_linear"],
                   "0.20.2": ["vllm_fl.compat.stacked_weights"]}


def _plan(capsys, plugin, model, pin):  # noqa: F811
    code, out, err = cli(capsys, "plan", model, *common(plugin, "--pinned", pin, "--json"))
    assert code in (0, 1), err
    assert f"pinned target: vLLM {pin}" in err
    return json.loads(out)


def test_plan_of_the_same_model_against_two_pins(capsys, plugin):  # noqa: F811
    omni = {pin: _plan(capsys, plugin, "omni", pin) for pin in PINS}
    assert "vllm_fl.compat.gate_linear" in omni["0.13.0"]["backports"]
    assert "vllm_fl.compat.gate_linear" not in omni["0.20.2"]["backports"]
    assert all(p["pinned"]["vllm"] == pin for pin, p in omni.items())
    mini = {pin: _plan(capsys, plugin, "mini", pin) for pin in PINS}
    for pin in PINS:
        assert "vllm_fl.compat.stacked_weights" in mini[pin]["backports"], pin
    # upstream's attention module: 0.20.2 has it, 0.13.0 defines Attention elsewhere (P13 re-points it)
    p13 = {pin: [f for f in mini[pin]["will_fix"] if f["rule"] == "P13" and "layers.attention" in f["message"]]
           for pin in PINS}
    assert p13["0.13.0"] and "vllm.attention.layer" in p13["0.13.0"][0]["message"]
    assert p13["0.20.2"] == []
    # the transformers of both pins lacks transformers 5's PreTrainedConfig: renamed on both
    for pin in PINS:
        assert any("PreTrainedConfig" in f["message"] for f in mini[pin]["will_fix"] if f["rule"] == "P5"), pin
    assert mini["0.20.2"]["pinned"] == {"vllm": "0.20.2", "transformers": "4.57.6", "package": "vllm_fl",
                                        "source": "--pinned"}


def test_a_backport_written_for_one_pin_leaves_what_another_pin_lacks(capsys, tmp_path, plugin):  # noqa: F811
    # the gated-delta-net back-port builds on 0.13.0's Qwen3NextGatedDeltaNet, which 0.20.2 no longer
    # has: on 0.20.2 a model that needs it must not be called clean (qwen3_5 and qwen3_next_mtp were,
    # and did not import)
    upstream = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, upstream)
    models = upstream / "vllm" / "model_executor" / "models"
    (models / "gdn.py").write_text(
        '"""Inference-only Gdn model (fixture: a layer only the gated-delta-net back-port gives)."""\n\n'
        "from torch import nn\n\n"
        "from vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn import QwenGatedDeltaNetAttention\n\n\n"
        "class GdnForCausalLM(nn.Module):\n"
        "    def __init__(self, *, vllm_config, prefix: str = ''):\n"
        "        super().__init__()\n"
        "        self.attn = QwenGatedDeltaNetAttention(vllm_config.model_config.hf_config, vllm_config, prefix)\n")
    registry = models / "registry.py"
    registry.write_text(registry.read_text().replace(
        '"OmniForConditionalGeneration": ("omni", "OmniForConditionalGeneration"),',
        '"OmniForConditionalGeneration": ("omni", "OmniForConditionalGeneration"),\n'
        '    "GdnForCausalLM": ("gdn", "GdnForCausalLM"),'))
    left = {}
    for pin in PINS:
        code, out, err = cli(capsys, "plan", "gdn", "--upstream", str(upstream), "--plugin", str(plugin),
                             "--all-archs", "--pinned", pin, "--json")
        assert code in (0, 1), err
        plan = json.loads(out)
        assert "vllm_fl.compat.gdn_linear_attn" in plan["backports"], pin
        left[pin] = [f for f in plan["left_for_you"] if f["file"].endswith("compat/gdn_linear_attn.py")]
    assert left["0.13.0"] == []
    assert [(f["rule"], "Qwen3NextGatedDeltaNet" in f["message"]) for f in left["0.20.2"]] == [("P3", True)]
    # once the back-port is in the plugin, a model that does not use it is not charged with it
    assert cli(capsys, "apply", "gdn", "--upstream", str(upstream), "--plugin", str(plugin), "--all-archs",
               "--pinned", "0.20.2")[0] in (0, 1)
    assert (plugin / "vllm_fl" / "compat" / "gdn_linear_attn.py").is_file()
    code, out, err = cli(capsys, "plan", "plain", "--upstream", str(upstream), "--plugin", str(plugin),
                         "--all-archs", "--pinned", "0.20.2", "--json")
    assert code in (0, 1), err
    assert not [f for f in json.loads(out)["left_for_you"] if "compat/" in f["file"]]
