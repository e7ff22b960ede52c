"""verify --run writes the tiny config.json under the model_type AutoConfig reads its class by:
transformers 4.57.6's Lfm2VlConfig spells itself "lfm2-vl" but is registered as "lfm2_vl", so the
config.json its save_pretrained writes does not load back (vLLM: "model type `lfm2-vl` but
Transformers does not recognize this architecture"), a harness error lfm2_vl stopped at. Real vLLM
0.13.0 venv ($MMF_PINNED_VENV)."""

from __future__ import annotations

from tests.worker_helpers import run_in_worker

SCRIPT = """
import json, sys, tempfile
sys.path.insert(0, sys.argv[1])
import transformers
from transformers import AutoConfig
from _runtime_config import _save, auto_model_type

out = {"lfm2": auto_model_type(transformers.Lfm2VlConfig), "llama": auto_model_type(transformers.LlamaConfig)}
for name, cfg in (("lfm2_saved", transformers.Lfm2VlConfig()), ("llama_saved", transformers.LlamaConfig())):
    work = tempfile.mkdtemp()
    notes = []
    _save(cfg, work, notes)
    back = AutoConfig.from_pretrained(work)
    out[name] = [json.load(open(work + "/config.json"))["model_type"], type(back).__name__, len(notes)]
print(json.dumps(out))
"""


def test_the_tiny_config_json_names_the_model_type_autoconfig_maps_to_its_class():
    got = run_in_worker(SCRIPT)
    assert got == {"lfm2": "lfm2_vl", "llama": None,
                   "lfm2_saved": ["lfm2_vl", "Lfm2VlConfig", 1],
                   "llama_saved": ["llama", "LlamaConfig", 0]}
