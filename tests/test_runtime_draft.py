"""A draft model (EAGLE/MTP) is built the way vLLM's proposer builds it: the target's ``VllmConfig``
with a speculative config that holds the draft's model config.

Real run on vLLM 0.13.0 ($MMF_PINNED_VENV): 0.13.0's own ``EagleLlamaForCausalLM`` reads
``vllm_config.speculative_config.draft_model_config.hf_config`` and the target's layer count;
without a speculative config it cannot be built at all, with the harness's it is, from the draft's
rewritten config (one draft layer) next to a two-layer target.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "flagos_migrate" / "verify"))

from tests.worker_helpers import run_in_worker  # noqa: E402

EAGLE_LLAMA = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from _runtime_env import _platform_cpu, _vllm_config, _init_distributed, _construct, _resolved_class
from _runtime_config import _write_tiny_config
from transformers import LlamaConfig
work = sys.argv[2]
_platform_cpu()
out = {}
hints = {"speculative": "eagle", "draft": {"update": {"num_hidden_layers": 1}}}
cfg = _write_tiny_config("EagleLlamaForCausalLM", LlamaConfig, work, notes=[], hints=hints, source_kind="draft")
out["draft_layers"] = cfg.num_hidden_layers
vc = _vllm_config(work)
_init_distributed(vc)
spec = vc.speculative_config
out["method"] = spec.method
out["target_layers"] = vc.model_config.hf_config.num_hidden_layers
out["draft_is_other_config"] = spec.draft_model_config is not vc.model_config
cls = _resolved_class(vc)
out["class"] = cls.__name__
model = _construct(cls, vc)
out["built_layers"] = len(model.model.layers)
out["reads_draft_config"] = model.config.num_hidden_layers
# vLLM's SpeculativeConfig wraps an EAGLE draft's config in its EAGLEConfig: config.model is the draft's own
# (upstream's EagleDeepSeekMTPModel reads config.model.hidden_size)
out["wrapped"] = type(spec.draft_model_config.hf_config).__name__
out["inner"] = [type(spec.draft_model_config.hf_config.model).__name__, spec.draft_model_config.hf_config.model.num_hidden_layers]
# without the target dir: no speculative config, and the same class cannot be built
import shutil
shutil.rmtree(os.path.join(work, "target"))
vc2 = _vllm_config(work)
out["plain_spec"] = vc2.speculative_config is None
try:
    _construct(cls, vc2)
    out["plain"] = "built"
except AttributeError as exc:
    out["plain"] = str(exc)
print(json.dumps(out))
"""


def test_an_eagle_draft_builds_with_the_target_config_and_a_speculative_config(tmp_path):
    out = run_in_worker(EAGLE_LLAMA, str(tmp_path), timeout=900)
    assert out["class"] == "EagleLlamaForCausalLM" and out["method"] == "eagle"
    assert out["target_layers"] == 2 and out["draft_layers"] == 1 and out["draft_is_other_config"]
    assert out["built_layers"] == 1 and out["reads_draft_config"] == 1  # the draft's config, not the target's
    assert out["wrapped"] == "EAGLEConfig" and out["inner"] == ["LlamaConfig", 1]
    assert out["plain_spec"] and "draft_model_config" in out["plain"]  # what the harness did before


def test_a_layer_that_refuses_to_build_off_cuda_is_named_not_blamed_on_the_migration():
    import _runtime_env

    def build():
        raise NotImplementedError("is_act_and_mul=False is supported only for CUDA for now")

    try:
        build()
    except NotImplementedError as exc:
        found = _runtime_env.cuda_only_refusal(exc)
    assert found.startswith("is_act_and_mul=False is supported only for CUDA") and "test_runtime_draft.py:" in found
    assert _runtime_env.cuda_only_refusal(NotImplementedError("no such method")) is None
    assert _runtime_env.cuda_only_refusal(AttributeError("only for CUDA")) is None  # not a refusal to build


DRAFT_CONFIGS = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from _runtime_env import _platform_cpu
from _runtime_config import _class_of_arch, _write_tiny_config
from transformers import Glm4vConfig
_platform_cpu()
out = {}
# a base class's causal-LM name takes the text config, as the architecture's own name does
out["llama4_base"] = _class_of_arch("Llama4ForCausalLM", {}, {}).__name__
# GLM-OCR's MTP draft reads hf_config.text_config.num_nextn_predict_layers; Glm4vTextConfig has no such field
hints = {"speculative": "mtp", "draft": {"update": {"num_hidden_layers": 0, "n_predict": 1}},
         "complete": {"fill": {"num_nextn_predict_layers": 1}}}
notes = []
cfg = _write_tiny_config("GlmOcrMTPModel", Glm4vConfig, sys.argv[2], notes=notes, hints=hints, source_kind="draft")
out["text_count"] = cfg.text_config.num_nextn_predict_layers
out["note"] = [n for n in notes if "text sub-config" in n]
print(json.dumps(out))
"""


def test_a_drafts_base_config_is_the_text_config_and_its_layer_count_sits_where_the_draft_reads_it(tmp_path):
    out = run_in_worker(DRAFT_CONFIGS, str(tmp_path), timeout=600)
    assert out["llama4_base"] == "Llama4TextConfig"  # not Llama4Config, whose top level has no vocab_size
    assert out["text_count"] == 1 and len(out["note"]) == 1
