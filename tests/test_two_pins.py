"""The same migration decided against two pins: vLLM 0.13.0 and vLLM 0.20.2 (the index shipped in the
bundle, built from a venv where `pip install vllm==0.20.2` had put transformers 4.57.6: xgrammar
caps it below 5 although vLLM's own requirement allows 5.x). Back-ports and rewrites follow what
each target lacks; nothing names a version."""

from __future__ import annotations

import ast
import json

import pytest
from flagos_migrate.migrate import backports
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.pinned.target import resolve_target
from test_migrate_apply import cli, common, plugin  # noqa: F401  (the fixture)

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
