"""A checkpoint upstream vLLM's own class loads without an error but only in part (its loader skips names it lacks):
the tensors whose names end in a skipped parameter's own name are taken under that name, when the loader then writes
every parameter and each renamed one exactly with its tensor (``_runtime_load.own_names_of_skipped``). ernie45_vl:
transformers 5 saves the vision tower as ``model.vision_model.*``, upstream's Ernie4_5_VLMoeForConditionalGeneration
reads the released ``vision_model.*`` and its language model skips ``vision_model`` names. Real torch modules and
vLLM's config context in the pinned venv (a toy loader stands for the class's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from analysis_helpers import run_script_json

PINNED = Path(os.environ.get("MMF_PINNED_VENV", Path.home() / ".cache/mmf/venv-vllm013")) / "bin" / "python"

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
from vllm.config import VllmConfig
from _runtime_env import _platform_cpu
from _runtime_load import Checkpoint, own_names_of_skipped

class Toy(torch.nn.Module):  # as upstream's: model.* to the language model, which skips vision_model names
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale
        self.vision_model = torch.nn.Linear(2, 3)
        self.lm = torch.nn.Linear(3, 3, bias=False)
    def load_weights(self, weights):
        params = dict(self.named_parameters())
        for name, t in weights:
            if name.startswith("model.") and "vision_model" in name:
                continue
            name = name.removeprefix("model.")
            if name in params:
                params[name].data.copy_(t * (self.scale if name.startswith("vision_model") else 1.0))
        return set(params)

def ckpt(**names):
    out = Checkpoint({k: torch.randn(shape) for k, shape in names.items()}); out.in_memory = {}
    return out

_platform_cpu(); vc = VllmConfig()
saved = ckpt(**{"model.vision_model.weight": (3, 2), "model.vision_model.bias": (3,), "model.lm.weight": (3, 3)})
got, renamed = own_names_of_skipped(Toy(), saved, vc)
out = {"names": sorted(got), "renamed": renamed,
       "same": all(got[k.removeprefix("model.") if "vision" in k else k] is t for k, t in saved.items())}
# a loader that transforms the tensor it reads: not written back exactly, nothing taken
out["scaled"] = own_names_of_skipped(Toy(scale=2.0), saved, vc)
# two tensors of the shape end in the name: which one is meant is unknown, nothing taken
two = ckpt(**{"model.vision_model.weight": (3, 2), "extra.vision_model.weight": (3, 2),
              "model.vision_model.bias": (3,), "model.lm.weight": (3, 3)})
out["ambiguous"] = own_names_of_skipped(Toy(), two, vc)
# a skipped parameter no tensor names: nothing taken
out["missing"] = own_names_of_skipped(Toy(), ckpt(**{"model.vision_model.weight": (3, 2), "lm.weight": (3, 3)}), vc)
# ignored parameters (kept at init, a draft's target's) are never looked for
out["ignored"] = own_names_of_skipped(
    Toy(), ckpt(**{"model.vision_model.weight": (3, 2), "lm.weight": (3, 3)}), vc, {"vision_model.bias"})[1]
print(json.dumps(out))
"""


@pytest.mark.skipif(not PINNED.exists(), reason="needs the pinned venv (MMF_PINNED_VENV, vLLM 0.13.0)")
def test_tensors_a_loader_skips_are_taken_under_the_parameters_own_names_only_when_written_back_exactly():
    got = run_script_json(PINNED, SCRIPT)
    assert got["names"] == ["model.lm.weight", "vision_model.bias", "vision_model.weight"]
    assert got["renamed"] == "model.vision_model.bias -> vision_model.bias" and got["same"] is True
    assert got["scaled"] == [None, "renamed, 2 parameter(s) not written back exactly: vision_model.weight, vision_model.bias"]
    assert got["ambiguous"] == [None, "2 tensor(s) of its shape end in vision_model.weight"]
    assert got["missing"] == [None, "0 tensor(s) of its shape end in vision_model.bias"]
    assert got["ignored"] == "model.vision_model.weight -> vision_model.weight"
