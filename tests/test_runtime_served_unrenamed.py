"""A checkpoint transformers saves under its class's own names (nothing renamed on save) is still judged by
upstream vLLM's own class: transformers 5's ColModernVBertForRetrieval names ``embedding_proj_layer`` / ``vlm.*``,
upstream's class reads the released ``model.custom_text_proj`` / ``model.*`` and refused it, and the load level
failed on names, not on the migration. Here a Llama checkpoint under a prefix no Llama reads stands in for it:
refused, and the checkpoint upstream's class names (validated by its own load_weights) is served instead.
Runs in the reference venv (vLLM 0.33.0)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest
from analysis_helpers import CPU_ENV as ENV
from analysis_helpers import REFERENCE_PY as REFERENCE
from analysis_helpers import VERIFY_DIR as VERIFY

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1]); work = sys.argv[2]
import transformers
from _runtime_env import _construct, _init_distributed, _platform_cpu, _resolved_class, _vllm_config
from _runtime_forward import _reference_attention
from _runtime_load import Checkpoint, make_checkpoint, served_spelling

_platform_cpu(); _reference_attention()
cfg = transformers.AutoConfig.for_model(
    "llama", hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
    num_key_value_heads=2, vocab_size=128, max_position_embeddings=256, architectures=["LlamaForCausalLM"])
cfg.save_pretrained(work)
vc = _vllm_config(work); _init_distributed(vc)
model = _construct(_resolved_class(vc), vc, [])
ck = make_checkpoint("LlamaForCausalLM", cfg, 0)
odd = Checkpoint({k.replace("model.", "backbone.", 1): t for k, t in ck.items()})
odd.in_memory = {k: k for k in odd}  # the class's own names: nothing renamed on save
served, why = served_spelling(model, odd, vc, 0)
print(json.dumps({"same": served is odd, "why": why, "backbone": any(k.startswith("backbone.") for k in served),
                  "stands": served_spelling(model, ck, vc, 0)[0] is ck}))
"""


@pytest.mark.skipif(not REFERENCE.exists(), reason="needs the reference venv (MMF_REFERENCE_VENV, vLLM 0.33.0)")
def test_a_checkpoint_in_the_classs_own_names_is_judged_by_upstreams_class(tmp_path):
    proc = subprocess.run([str(REFERENCE), "-c", textwrap.dedent(SCRIPT), str(VERIFY), str(tmp_path)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, **ENV})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["same"] is False and got["backbone"] is False
    assert got["why"].startswith("refused by upstream vLLM's own LlamaForCausalLM as transformers saves it")
    assert got["stands"] is True  # the spelling upstream's class loads stays as it is
