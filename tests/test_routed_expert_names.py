"""P34: hand-written load_weights that name the fused expert parameters without ``routed_experts.``.

Golden before/after on upstream 0.33.0's own dbrx.py (the one corpus instance, vllm#49004) when the
corpus is there, negative fixtures always. The real-layer check of the rewritten loader is
``dbrx_remap`` in tests/test_backport_fused_moe.py (pinned venv).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests.analysis_helpers import analyze, only

LOADER = '''
from vllm.model_executor.layers.fused_moe import FusedMoEFactory


class M:
    def __init__(self):
        self.experts = FusedMoEFactory(num_experts=4, top_k=2, hidden_size=8, intermediate_size=16)

    def load_weights(self, weights):
        mapping = [("{target}" if w in ("w1", "v1") else "w2", f"mlp.{{w}}") for w in ("w1", "v1", "w2")]
        params_dict = dict(self.named_parameters(remove_duplicate=False))
        for name, loaded_weight in weights:
            for param_name, weight_name in mapping:
                if weight_name not in name:
                    continue
                name = name.replace(weight_name, param_name)
                {extra}param = params_dict[name]
                break
            else:
                param = params_dict[name]
'''


def test_the_pre_refactor_name_is_found_with_both_lookups():
    found = only(analyze(LOADER.format(target="w13", extra="")), "P34")
    assert len(found) == 1
    f = found[0]
    assert "KeyError on load" in f.message and "vllm#49004" in f.message
    assert f.data["targets"] == ["w13"]
    assert [tuple(s) for s in f.data["statements"]] == [
        (17, "name = maybe_remap_moe_expert_param_name(name, params_dict)\nparam = params_dict[name]\n"),
        (20, "name = maybe_remap_moe_expert_param_name(name, params_dict)\nparam = params_dict[name]\n")]


@pytest.mark.parametrize("target,extra,w2", [
    ("routed_experts.w13", "", "w2"),  # a constant names upstream's nested layout
    ("w13", "name = maybe_remap_moe_expert_param_name(name, params_dict)\n                ", "w2"),  # remapped
    ("gate_up_proj", "", "down_proj"),  # no fused-expert target at all
])
def test_loaders_that_already_resolve_are_left_alone(target, extra, w2):
    code = LOADER.format(target=target, extra=extra).replace('else "w2"', f'else "{w2}"')
    assert only(analyze(code), "P34") == []


def test_a_file_without_the_factory_is_not_judged():
    code = LOADER.format(target="w13", extra="").replace(
        "from vllm.model_executor.layers.fused_moe import FusedMoEFactory", "FusedMoEFactory = dict")
    assert only(analyze(code), "P34") == []


UPSTREAM = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0"))


@pytest.mark.skipif(not (UPSTREAM / "vllm/model_executor/models/dbrx.py").exists(), reason="no upstream 0.33.0 source")
def test_upstream_dbrx_gets_the_remap_before_both_lookups():
    text = (UPSTREAM / "vllm/model_executor/models/dbrx.py").read_text()
    found = only(analyze(text, origin="vllm.model_executor.models.dbrx"), "P34")
    assert [f.data["targets"] for f in found] == [["w13"]]
    lines = text.splitlines()
    assert [lines[line - 1].strip() for line, _ in found[0].data["statements"]] == ["param = params_dict[name]"] * 2
    assert textwrap.dedent(found[0].data["statements"][0][1]) == (
        "name = maybe_remap_moe_expert_param_name(name, params_dict)\nparam = params_dict[name]\n")
