"""verify --run's synthetic checkpoint of a class only transformers 5 has is spelled as a released checkpoint:
transformers 5 renames and fuses weights on load (conversion_mapping.py), so its classes' own state-dict
names are not a checkpoint's. hy_v3's upstream load_weights reads the hub's ``mlp.expert_bias``,
``mlp.router.gate.weight``, ``mlp.shared_mlp.*`` and per-expert ``experts.{i}.gate_proj``; a checkpoint in
the class's in-memory names (``e_score_correction_bias``, fused ``gate_up_proj``) failed load with
``KeyError: 'layers.1.mlp.e_score_correction_bias'``, the harness's error, not the migration's.
Runs in the reference venv (transformers 5)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

VERIFY = Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"
REFERENCE = Path(os.environ.get("MMF_REFERENCE_VENV", Path.home() / ".cache/mmf/venv-vllm033")) / "bin" / "python"

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, transformers
from _runtime_load import Checkpoint, _as_saved, make_checkpoint

def tiny(model_type):
    return transformers.AutoConfig.for_model(
        model_type, hidden_size=64, intermediate_size=64, moe_intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=4, num_experts_per_tok=2,
        vocab_size=128)

out = {}
ck = make_checkpoint("HYV3ForCausalLM", tiny("hy_v3"), 0)
out["hy_v3"] = sorted(k for k in ck if k.startswith("model.layers.1.mlp.") and ".experts.1." not in k
                      and ".experts.2." not in k and ".experts.3." not in k)
out["hy_v3_in_memory"] = {k: v for k, v in ck.in_memory.items() if k != v}
# values: each expert's split tensors are the rows of the class's fused in-memory tensor
with torch.device("meta"):
    hf = transformers.HYV3ForCausalLM(tiny("hy_v3"))
own = Checkpoint({k: torch.randn(t.shape) for k, t in hf.state_dict().items()})
saved = _as_saved(hf, own)
fused = own["model.layers.1.mlp.experts.gate_up_proj"]
half = fused.shape[1] // 2
out["split_equal"] = all(
    torch.equal(saved[f"model.layers.1.mlp.experts.{i}.gate_proj.weight"], fused[i, :half])
    and torch.equal(saved[f"model.layers.1.mlp.experts.{i}.up_proj.weight"], fused[i, half:])
    for i in range(4))
out["bias_same_tensor"] = saved["model.layers.1.mlp.expert_bias"] is own["model.layers.1.mlp.e_score_correction_bias"]
# negative: a class with no weight conversion keeps its names (and the same object back)
llama = transformers.AutoConfig.for_model("llama", hidden_size=64, intermediate_size=64, num_hidden_layers=1,
                                          num_attention_heads=4, num_key_value_heads=2, vocab_size=128)
with torch.device("meta"):
    hf = transformers.LlamaForCausalLM(llama)
own = Checkpoint({k: torch.zeros(t.shape) for k, t in hf.state_dict().items()})
out["llama_unchanged"] = _as_saved(hf, own) is own
print(json.dumps(out))
"""


@pytest.mark.skipif(not REFERENCE.exists(), reason="needs the reference venv (MMF_REFERENCE_VENV, transformers 5)")
def test_a_transformers5_checkpoint_is_spelled_as_save_pretrained_writes_it():
    proc = subprocess.run([str(REFERENCE), "-c", textwrap.dedent(SCRIPT), str(VERIFY)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["hy_v3"] == [
        "model.layers.1.mlp.expert_bias",
        "model.layers.1.mlp.experts.0.down_proj.weight",
        "model.layers.1.mlp.experts.0.gate_proj.weight",
        "model.layers.1.mlp.experts.0.up_proj.weight",
        "model.layers.1.mlp.router.gate.weight",
        "model.layers.1.mlp.shared_mlp.down_proj.weight",
        "model.layers.1.mlp.shared_mlp.gate_proj.weight",
        "model.layers.1.mlp.shared_mlp.up_proj.weight",
    ]
    # renamed tensors keep the class's own name (the respelled checkpoint); split experts have none
    assert got["hy_v3_in_memory"] == {
        "model.layers.1.mlp.expert_bias": "model.layers.1.mlp.e_score_correction_bias",
        "model.layers.1.mlp.router.gate.weight": "model.layers.1.mlp.gate.weight",
        "model.layers.1.mlp.shared_mlp.down_proj.weight": "model.layers.1.mlp.shared_experts.down_proj.weight",
        "model.layers.1.mlp.shared_mlp.gate_proj.weight": "model.layers.1.mlp.shared_experts.gate_proj.weight",
        "model.layers.1.mlp.shared_mlp.up_proj.weight": "model.layers.1.mlp.shared_experts.up_proj.weight",
    }
    assert got["split_equal"] is True
    assert got["bias_same_tensor"] is True
    assert got["llama_unchanged"] is True


PINNED = Path(os.environ.get("MMF_PINNED_VENV", Path.home() / ".cache/mmf/venv-vllm013")) / "bin" / "python"

TIED = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, transformers
from _runtime_load import make_checkpoint

cfg = transformers.BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              vocab_size=64, max_position_embeddings=32)
ck = make_checkpoint("BertForMaskedLM", cfg, 0)
out = {"bias": torch.equal(ck["cls.predictions.decoder.bias"], ck["cls.predictions.bias"]),
       "weight": torch.equal(ck["cls.predictions.decoder.weight"], ck["bert.embeddings.word_embeddings.weight"]),
       # an alias is its own tensor (a loader writing one does not write the other)
       "copy": ck["cls.predictions.decoder.bias"] is not ck["cls.predictions.bias"]}
# negative: untied, the decoder weight is drawn apart from the embeddings
ck = make_checkpoint("BertForMaskedLM", transformers.BertConfig(**{**cfg.to_dict(), "tie_word_embeddings": False}), 0)
out["untied"] = not torch.equal(ck["cls.predictions.decoder.weight"], ck["bert.embeddings.word_embeddings.weight"])
print(json.dumps(out))
"""


@pytest.mark.skipif(not PINNED.exists(), reason="needs the pinned venv (MMF_PINNED_VENV, transformers 4.57.6)")
def test_tied_tensors_of_the_class_hold_the_same_values_in_the_checkpoint():
    """BERT's MLM decoder bias is cls.predictions.bias (and its weight the word embeddings), as in every checkpoint
    the class writes; drawn apart, BertForMaskedLM's load failed: `mlm_head.decoder.bias differs from its checkpoint
    tensor cls.predictions.decoder.bias` (the migrated mapper loads cls.predictions.bias, as upstream's does)."""
    proc = subprocess.run([str(PINNED), "-c", textwrap.dedent(TIED), str(VERIFY)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"bias": True, "weight": True, "copy": True,
                                                                 "untied": True}
