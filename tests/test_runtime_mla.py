"""The runtime harness's reference MLA attention and the two tiny-config shapes of MoE models.

Real halves on the real vLLM 0.13.0 ($MMF_PINNED_VENV): the pinned vLLM's own DeepSeek MLA
attention layer (``DeepseekV2MLAAttention``) is refused on CPU without the harness ("MLA is not
supported on CPU") and, with it, equals the Hugging Face DeepSeek-V3 attention of transformers
4.57.6 (eager) on the same weights. The tiny-config halves run the worker's helpers there too.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERIFY = ROOT / "scripts" / "flagos_migrate" / "verify"
sys.path.insert(0, str(VERIFY))

import _runtime_mla  # noqa: E402  (the worker's module, standard library only at import)
import runtime_tiny  # noqa: E402

from tests.worker_helpers import TINY_DEEPSEEK_V3  # noqa: E402
from tests.worker_helpers import run_in_worker as _run  # noqa: E402

# --------------------------------------------------------------------------------------------- pure

def test_tiny_mla_config_recomputes_the_derived_query_head():
    # DeepSeek-V3's to_dict keeps qk_head_dim = 128 + 64; the tiny heads are 16 + 16
    cfg = runtime_tiny.tiny_config({"model_type": "deepseek_v3", "hidden_size": 7168, "num_attention_heads": 128,
                                    "num_hidden_layers": 61, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
                                    "v_head_dim": 128, "qk_head_dim": 192, "kv_lora_rank": 512, "q_lora_rank": 1536,
                                    "vocab_size": 129280})
    assert cfg["qk_head_dim"] == cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"] == 32


def test_reference_mla_backend_builds_an_impl_that_keeps_kv_b_proj():
    proj = object()
    impl = _runtime_mla.ReferenceMLABackend.get_impl_cls()(num_heads=4, head_size=48, scale=0.1, kv_b_proj=proj)
    assert impl.kv_b_proj is proj and impl.scale == 0.1
    assert _runtime_mla.ReferenceMLABackend.get_required_kv_cache_layout() is None
    assert _runtime_mla.BACKEND == "_runtime_mla.ReferenceMLABackend"


# ------------------------------------------------------------------------------------ real 0.13.0

MLA_LAYER = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import torch
from _runtime_env import _platform_cpu, _vllm_config, _init_distributed
from _runtime_forward import _reference_attention
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3 import modeling_deepseek_v3 as M
work = sys.argv[2]
""" + TINY_DEEPSEEK_V3 + """_platform_cpu()
from vllm.config import set_current_vllm_config
from vllm.forward_context import set_forward_context
from vllm.model_executor.models.deepseek_v2 import DeepseekV2MLAAttention
from vllm.model_executor.model_loader.utils import process_weights_after_loading
vc = _vllm_config(work)
_init_distributed(vc)

def build(prefix):
    with set_current_vllm_config(vc), torch.device("cpu"):
        return DeepseekV2MLAAttention(vllm_config=vc, config=vc.model_config.hf_config, hidden_size=64,
            num_heads=4, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, q_lora_rank=32,
            kv_lora_rank=32, max_position_embeddings=512, prefix=prefix)

out = {}
try:
    build("unpatched.attn")
    out["unpatched"] = "built"
except NotImplementedError as exc:
    out["unpatched"] = str(exc)
out["patched"] = _reference_attention()
torch.manual_seed(0)
hf = M.DeepseekV3Attention(cfg, layer_idx=0).eval()
for p in hf.parameters():
    torch.nn.init.normal_(p, std=0.2)
ours = build("model.layers.0.self_attn")
sd, mine = hf.state_dict(), dict(ours.named_parameters())
with torch.no_grad():
    mine["fused_qkv_a_proj.weight"].copy_(torch.cat([sd["q_a_proj.weight"], sd["kv_a_proj_with_mqa.weight"]]))
    for k in ("q_a_layernorm.weight", "q_b_proj.weight", "kv_a_layernorm.weight", "kv_b_proj.weight", "o_proj.weight"):
        mine[k].copy_(sd[k])
process_weights_after_loading(ours, vc.model_config, torch.device("cpu"))
n = 9
x = torch.randn(n, 64)
pos = torch.arange(n)
cos, sin = M.DeepseekV3RotaryEmbedding(cfg)(x[None], pos[None])
mask = torch.full((n, n), float("-inf")).triu(1)[None, None]
with torch.no_grad():
    ref = hf(x[None], position_embeddings=(cos, sin), attention_mask=mask)[0][0]
    with set_forward_context(None, vc, num_tokens=n):
        got = ours(pos, x, None)
        # the last token's output depends on the earlier ones: causal, not per-token
        alone = ours(pos[-1:], x[-1:], None)
out["max_diff"] = float((ref - got).abs().max())
out["scale"] = float(ref.abs().max())
out["context_matters"] = float((alone[0] - got[-1]).abs().max())
out["backend"] = type(ours.mla_attn.mla_attn.impl).__name__ if hasattr(ours.mla_attn, "mla_attn") else None
print(json.dumps(out))
"""


def test_pinned_deepseek_mla_is_refused_on_cpu_and_with_the_reference_equals_hugging_face(tmp_path):
    res = _run(MLA_LAYER, str(tmp_path))
    assert res["unpatched"] == "MLA is not supported on CPU."
    assert "vllm.platforms.cpu.CpuPlatform.get_attn_backend_cls (MLA)" in res["patched"]
    assert "vllm.attention.layer.MLAAttention" in res["patched"]
    assert res["backend"] == "ReferenceMLAImpl"
    assert res["scale"] > 0.1 and res["max_diff"] < 1e-5, res
    assert res["context_matters"] > 1e-3, res


DBRX_D_MODEL = 2048  # 4.57.6's DbrxConfig().d_model; the tiny config shrinks it

SUBCFG = """
import json, sys
sys.path.insert(0, sys.argv[1])
import _runtime_subcfg as S
from transformers import DbrxConfig
out = {}
try:
    DbrxConfig.from_dict(DbrxConfig().to_dict())
    out["plain"] = "ok"
except ValueError as exc:
    out["plain"] = str(exc)[:40]
cfg = S.from_dict(DbrxConfig, DbrxConfig(d_model=64, attn_config={"kv_n_heads": 2}).to_dict())
out["kv_n_heads"] = cfg.attn_config.kv_n_heads
out["d_model"] = cfg.d_model
out["order"] = S.text_first("Llama4ForCausalLM", ["llama4", "llama4_text"])
out["vl_order"] = S.text_first("Llama4ForConditionalGeneration", ["llama4", "llama4_text"])
# the whole tiny-config path goes through it too (the completion of missing attributes built the class
# with plain from_dict, and dbrx failed construct again)
import tempfile
from _runtime_config import _write_tiny_config
tiny = _write_tiny_config("DbrxForCausalLM", DbrxConfig, tempfile.mkdtemp(), notes=[])
out["tiny_d_model"] = tiny.d_model
print(json.dumps(out))
"""


def test_dbrx_sub_configs_round_trip_and_llama4_causal_lm_takes_the_text_config():
    res = _run(SUBCFG)
    assert res["plain"].startswith("Found unknown kwargs")  # what the harness hit before
    assert res["kv_n_heads"] == 2 and res["d_model"] == 64
    assert res["order"] == ["llama4_text", "llama4"]
    assert res["vl_order"] == ["llama4", "llama4_text"]
    assert 0 < res["tiny_d_model"] < DBRX_D_MODEL


def test_tiny_config_remaps_llama4_moe_layer_indexes_to_the_kept_layers():
    pattern = ["chunked_attention"] * 3 + ["full_attention"]
    scout = runtime_tiny.tiny_config({"model_type": "llama4_text", "num_hidden_layers": 48, "hidden_size": 5120,
                                      "num_attention_heads": 40, "moe_layers": list(range(48)),
                                      "layer_types": pattern * 12})
    assert scout["layer_types"] == ["chunked_attention", "full_attention"] and scout["moe_layers"] == [0, 1]
    maverick = runtime_tiny.tiny_config({"model_type": "llama4_text", "num_hidden_layers": 48, "hidden_size": 5120,
                                         "num_attention_heads": 40, "moe_layers": list(range(1, 48, 2)),
                                         "layer_types": pattern * 12})
    assert maverick["moe_layers"] == [1]  # kept layers 0 (dense) and 3 (MoE)
