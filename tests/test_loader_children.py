"""P4 `loader_children`: a class under a pinned owner that loads through `AutoWeightsLoader(self)`, whose
child module (upstream's DeepseekV2Model) has a `load_weights` only upstream's version defines. The pinned
loader then walks the child's parameters by checkpoint name and fails on stacked and expert names
(mistral_large_3: "no module or parameter named 'model.layers.0.mlp.gate_proj'"); the pinned owner's own
load_weights loads the whole model as upstream's child does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from flagos_migrate.catalog.rules import BY_ID

from tests.analysis_helpers import PINNED_VENV, UPSTREAM_SRC, analyze, only
from tests.analysis_helpers import migrate_example as migrate

BEFORE = '''\
from collections.abc import Iterable

import torch

from vllm.model_executor.models.deepseek_v2 import DeepseekV3ForCausalLM
from vllm.model_executor.models.utils import AutoWeightsLoader, WeightsMapper


class ExampleForCausalLM(DeepseekV3ForCausalLM):
    hf_to_vllm_mapper = WeightsMapper(orig_to_new_prefix={"tok_embeddings.": "model.embed_tokens."})

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        loader = AutoWeightsLoader(self)
        return loader.load_weights(weights, mapper=self.hf_to_vllm_mapper)
'''

AFTER = '''\
from collections.abc import Iterable

import torch

from vllm.model_executor.models.deepseek_v2 import DeepseekV3ForCausalLM
from vllm_fl.compat.stacked_weights import WeightsMapper


class ExampleForCausalLM(DeepseekV3ForCausalLM):
    hf_to_vllm_mapper = WeightsMapper(orig_to_new_prefix={"tok_embeddings.": "model.embed_tokens."})

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        # P4: the pinned parent loads the whole model (its model class has no load_weights for
        # AutoWeightsLoader to hand the checkpoint to)
        return super().load_weights(self.hf_to_vllm_mapper.apply(weights))
'''


def test_autoweightsloader_under_the_pinned_deepseek_loads_through_its_own_load_weights(tmp_path):
    m = migrate(tmp_path, BEFORE)
    assert [f.data.get("via") for f in m.model_unit.before if f.rule == "P4"] == ["AutoWeightsLoader"]
    assert m.model_unit.text == AFTER
    assert not [f for f in m.left() if f.rule == "P4"]


def test_a_class_building_its_own_modules_keeps_the_finding():
    code = BEFORE.replace("    def load_weights", "    def __init__(self, *, vllm_config, prefix=''):\n"
                          "        super().__init__(vllm_config=vllm_config, prefix=prefix)\n\n    def load_weights")
    (f,) = only(analyze(code), "P4")
    assert f.data["via"] == "AutoWeightsLoader" and not f.data["replace"] and f.severity == "error"


def test_a_class_building_the_files_own_model_is_not_reported():
    # deepseek_eagle: a local DeepseekV2Model (with its own load_weights) built as self.model
    code = BEFORE.replace("class ExampleForCausalLM", """class DeepseekV2Model(torch.nn.Module):
    def load_weights(self, weights):
        return set()


class ExampleForCausalLM""").replace("    def load_weights(self, weights: Iterable", """    def __init__(self, *, vllm_config, prefix=''):
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        self.model = DeepseekV2Model()

    def load_weights(self, weights: Iterable""")
    assert not [f for f in only(analyze(code), "P4") if f.data.get("via") == "AutoWeightsLoader"]


def test_a_child_with_its_own_load_weights_is_not_reported():
    # the same loader under a pinned class whose children all load by name (no table entry)
    code = BEFORE.replace("deepseek_v2 import DeepseekV3ForCausalLM", "llama import LlamaForCausalLM").replace(
        "(DeepseekV3ForCausalLM)", "(LlamaForCausalLM)")
    assert not [f for f in only(analyze(code), "P4") if f.data.get("via") == "AutoWeightsLoader"]


def _class(path: Path, name: str) -> ast.ClassDef:
    return next(n for n in ast.walk(ast.parse(path.read_text("utf-8"))) if isinstance(n, ast.ClassDef) and n.name == name)


def _defines(cls: ast.ClassDef, method: str) -> bool:
    return any(isinstance(f, ast.FunctionDef) and f.name == method for f in cls.body)


@pytest.mark.parametrize("entry", BY_ID["P4"].tables["loader_children"], ids=lambda e: e["child"])
def test_each_entry_is_a_child_only_upstream_loads_and_an_owner_the_pinned_version_loads_whole(entry):
    if not UPSTREAM_SRC.is_dir():
        pytest.skip("the upstream vLLM 0.33.0 source is not unpacked")
    found = sorted(PINNED_VENV.glob("lib/python3*/site-packages/vllm"))
    if not found:
        pytest.skip("the pinned vLLM 0.13.0 venv is not built")
    mod, owner = entry["owner"].rsplit(".", 1)
    cmod, child = entry["child"].rsplit(".", 1)
    rel = lambda m: Path(*m.split(".")).with_suffix(".py")  # noqa: E731
    pin_owner, pin_child = _class(found[0].parent / rel(mod), owner), _class(found[0].parent / rel(cmod), child)
    up_owner, up_child = _class(UPSTREAM_SRC / rel(mod), owner), _class(UPSTREAM_SRC / rel(cmod), child)
    assert _defines(up_child, "load_weights") and not _defines(pin_child, "load_weights")
    # upstream's owner hands the checkpoint to AutoWeightsLoader; the pinned one loads it itself
    assert "AutoWeightsLoader(self)" in ast.unparse(next(f for f in up_owner.body if getattr(f, "name", "") == "load_weights"))
    pin_load = next(f for f in pin_owner.body if getattr(f, "name", "") == "load_weights")
    assert "AutoWeightsLoader" not in ast.unparse(pin_load) and "expert_params_mapping" in ast.unparse(pin_load)
    # and the pinned owner builds that child as its `model`
    assert f"self.model = {child}(" in ast.unparse(pin_owner).replace("\n", " ") or child in ast.unparse(pin_owner)
