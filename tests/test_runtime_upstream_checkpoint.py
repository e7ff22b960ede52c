"""verify --run names a synthetic checkpoint from upstream vLLM's own class when no transformers has one
(BailingMoe, Sarvam, K2-Horizon, MTP drafts ...): the upstream model built on the tiny config, its
parameters split back through its own mappings (``output_sizes`` of stacked layers, the expert layer's
``get_expert_mapping``, ``hf_to_vllm_mapper`` read backwards), kept only when its own ``load_weights``
writes every parameter back with exactly those values. Runs in the reference venv (vLLM 0.33.0).

The ground truth: for Qwen3-MoE, which transformers 5 does have, the names and shapes derived from
upstream vLLM are exactly those of transformers' saved checkpoint. A broken split (two expert tensors
swapped, one dropped, one misnamed) is refused by the self-check, never passed on as a checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

VERIFY = Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"
REFERENCE = Path(os.environ.get("MMF_REFERENCE_VENV", Path.home() / ".cache/mmf/venv-vllm033")) / "bin" / "python"
ENV = {"VLLM_TARGET_DEVICE": "cpu", "VLLM_PLUGINS": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}

SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[1]); work = sys.argv[2]
import transformers
from _runtime_env import _construct, _init_distributed, _platform_cpu, _resolved_class, _vllm_config
from _runtime_forward import _reference_attention
from _runtime_load import Checkpoint, make_checkpoint, self_check, upstream_checkpoint

_platform_cpu(); _reference_attention()
cfg = transformers.AutoConfig.for_model(
    "qwen3_moe", hidden_size=64, intermediate_size=96, moe_intermediate_size=48, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=4, num_experts_per_tok=2,
    vocab_size=128, max_position_embeddings=256, tie_word_embeddings=False, architectures=["Qwen3MoeForCausalLM"])
cfg.save_pretrained(work)
vc = _vllm_config(work); _init_distributed(vc)
model = _construct(_resolved_class(vc), vc, [])
ck, expected = upstream_checkpoint(model, 0)
hf = make_checkpoint("Qwen3MoeForCausalLM", cfg, 0)
out = {"derived": {k: list(t.shape) for k, t in ck.items()}, "hf": {k: list(t.shape) for k, t in hf.items()},
       "fused": sorted(n for n in expected if n not in ck), "ok": self_check(model, ck, expected, vc)}
# each expert's gate/up rows are the halves of the fused w13 parameter it was split from
w13 = [n for n in expected if n.endswith("layers.1.mlp.experts.w13_weight")] or \\
      [n for n in expected if "layers.1.mlp.experts" in n and n.endswith("w13_weight")]
t = expected[w13[0]]
out["split_equal"] = bool((ck["model.layers.1.mlp.experts.2.gate_proj.weight"] == t[2, :48]).all()
                          and (ck["model.layers.1.mlp.experts.2.up_proj.weight"] == t[2, 48:]).all())

def broken(edit):
    bad = Checkpoint(ck); edit(bad)
    return self_check(model, bad, expected, vc)

g, u = "model.layers.1.mlp.experts.0.gate_proj.weight", "model.layers.1.mlp.experts.0.up_proj.weight"
def swap(c): c[g], c[u] = c[u], c[g]
out["swapped"] = broken(swap)
out["dropped"] = broken(lambda c: c.pop("model.layers.0.self_attn.k_proj.weight"))
out["misnamed"] = broken(lambda c: c.__setitem__("model.layers.0.self_attn.kv_proj.weight",
                                                 c.pop("model.layers.0.self_attn.k_proj.weight")))

print(json.dumps(out))
"""


@pytest.mark.skipif(not REFERENCE.exists(), reason="needs the reference venv (MMF_REFERENCE_VENV, vLLM 0.33.0)")
def test_upstream_vllm_names_the_checkpoint_transformers_saves_and_its_loader_refuses_a_broken_split(tmp_path):
    proc = subprocess.run([str(REFERENCE), "-c", textwrap.dedent(SCRIPT), str(VERIFY), str(tmp_path)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, **ENV})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    # the same names and shapes as transformers 5's own Qwen3MoeForCausalLM saves
    assert got["derived"] == got["hf"]
    assert "model.layers.1.mlp.experts.3.down_proj.weight" in got["derived"]
    assert got["derived"]["model.layers.0.self_attn.k_proj.weight"] == [32, 64]
    # upstream's stacked and fused parameters are not checkpoint names: they were split
    assert any(n.endswith("qkv_proj.weight") for n in got["fused"])
    assert any(n.endswith("w13_weight") for n in got["fused"])
    assert got["split_equal"] is True
    assert got["ok"] is None
    # a broken split is refused with its reason, never passed on
    assert got["swapped"] == ("1 parameter(s) differ from the derived checkpoint after its load_weights: "
                              "model.layers.1.mlp.experts.routed_experts.w13_weight")
    assert got["dropped"] == ("1 parameter(s) not (fully) written by its load_weights: "
                              "model.layers.0.self_attn.qkv_proj.weight")
    assert got["misnamed"].startswith("its load_weights refused the derived checkpoint (ValueError: There is no module "
                                      "or parameter named 'layers.0.self_attn.kv_proj'")

