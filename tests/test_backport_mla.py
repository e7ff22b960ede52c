"""The MLA-wrapper back-port (``mla.py``, P22) on the real vLLM 0.13.0.

Upstream's DeepSeek family builds ``MLAModules(..., index_group_builder=...)`` and passes
``skip_topk``/``non_causal_multi_token_decode``/``allow_short_prefill_indexer_scoring_skip`` to
``MultiHeadLatentAttentionWrapper``; 0.13.0 rejects all of them. The back-port takes them over the
pinned wrapper. Checked here, with the runtime harness's reference MLA backend (0.13.0 has no MLA
on CPU otherwise) and the pinned DeepSeek MLA layer's own modules:

- with upstream's defaults (and the keywords that change nothing on 0.13.0) it is the pinned wrapper:
  equal outputs, and both equal the Hugging Face DeepSeek-V3 attention of transformers 4.57.6;
- with ``g_proj`` its output is ``o_proj(attn * sigmoid(g_proj(x)))``, computed here in plain torch
  around the Hugging Face attention;
- what 0.13.0 cannot do (an index-group builder, non-causal multi-token decode) raises at construction.

The static half (the table, the P6 findings it answers, the rewrite) runs without the pinned venv.
"""

from __future__ import annotations

import ast

from flagos_migrate.migrate import backports

from tests.worker_helpers import TINY_DEEPSEEK_V3, run_in_worker

UPSTREAM_CALLS = '''
from vllm.model_executor.layers.mla import MLAModules, MultiHeadLatentAttentionWrapper

mla_modules = MLAModules(kv_a_layernorm=a, kv_b_proj=b, rotary_emb=r, o_proj=o, fused_qkv_a_proj=f,
                         kv_a_proj_with_mqa=None, q_a_layernorm=n, q_b_proj=q, q_proj=None, indexer=None,
                         is_sparse=False, topk_indices_buffer=None, index_group_builder=None)
attn = MultiHeadLatentAttentionWrapper(64, 4, 0.1, 16, 8, 12, 32, 32, mla_modules, skip_topk=False)
'''


def test_the_table_takes_upstreams_mla_keywords():
    tree = ast.parse(UPSTREAM_CALLS)
    # the pinned classes reject these keywords: the back-port comes along, and only it
    assert backports.needed([tree]) == [backports.MLA]
    assert backports.needed([tree], pinned_takes=lambda module, cls, kw: True) == []
    for kw in ("index_group_builder", "g_proj"):
        assert backports.for_keyword("vllm.model_executor.layers.mla.MLAModules", kw) is backports.MLA
    assert backports.for_keyword("MultiHeadLatentAttentionWrapper", "non_causal_multi_token_decode") is backports.MLA
    assert backports.for_keyword("MultiHeadLatentAttentionWrapper", "prefix") is None


LAYER = """
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
import torch
from _runtime_env import _platform_cpu, _vllm_config, _init_distributed
from _runtime_forward import _reference_attention
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3 import modeling_deepseek_v3 as M
work = sys.argv[2]
spec = importlib.util.spec_from_file_location("backport_mla", sys.argv[3])
B = sys.modules["backport_mla"] = importlib.util.module_from_spec(spec)  # dataclasses look the module up
spec.loader.exec_module(B)
""" + TINY_DEEPSEEK_V3 + """_platform_cpu()
from vllm.config import set_current_vllm_config
from vllm.forward_context import set_forward_context
from vllm.model_executor.layers.linear import ReplicatedLinear
from vllm.model_executor.layers.mla import MLAModules as PinnedModules
from vllm.model_executor.layers.mla import MultiHeadLatentAttentionWrapper as PinnedWrapper
from vllm.model_executor.models.deepseek_v2 import DeepseekV2MLAAttention
from vllm.model_executor.model_loader.utils import process_weights_after_loading
vc = _vllm_config(work)
_init_distributed(vc)
_reference_attention()
H, NH, V = 64, 4, 12

with set_current_vllm_config(vc), torch.device("cpu"):
    pinned = DeepseekV2MLAAttention(vllm_config=vc, config=vc.model_config.hf_config, hidden_size=H,
        num_heads=NH, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=V, q_lora_rank=32,
        kv_lora_rank=32, max_position_embeddings=512, prefix="model.layers.0.self_attn")
    g_proj = ReplicatedLinear(H, NH * V, bias=False, prefix="model.layers.2.self_attn.g_proj")

    def modules(cls, **extra):
        return cls(kv_a_layernorm=pinned.kv_a_layernorm, kv_b_proj=pinned.kv_b_proj, rotary_emb=pinned.rotary_emb,
                   o_proj=pinned.o_proj, fused_qkv_a_proj=pinned.fused_qkv_a_proj, kv_a_proj_with_mqa=None,
                   q_a_layernorm=pinned.q_a_layernorm, q_b_proj=pinned.q_b_proj, q_proj=None, indexer=None,
                   is_sparse=False, topk_indices_buffer=None, **extra)

    args = (H, NH, pinned.scaling, 16, 8, V, 32, 32)
    ours = B.MultiHeadLatentAttentionWrapper(*args, modules(B.MLAModules, index_group_builder=None), None, None,
                                             "model.layers.1.self_attn", skip_topk=False,
                                             non_causal_multi_token_decode=False,
                                             allow_short_prefill_indexer_scoring_skip=True, fuse_qkv_rmsnorm=True)
    gated = B.MultiHeadLatentAttentionWrapper(*args, modules(B.MLAModules, g_proj=g_proj), None, None,
                                              "model.layers.2.self_attn")
    out = {"isinstance": isinstance(ours, PinnedWrapper) and isinstance(modules(B.MLAModules), PinnedModules)}
    for name, kw in (("group", dict(index_group_builder=object())), ("non_causal", {})):
        try:
            B.MultiHeadLatentAttentionWrapper(*args, modules(B.MLAModules, **kw), None, None,
                                              f"model.layers.9.{name}", non_causal_multi_token_decode=not kw)
            out[name] = "built"
        except NotImplementedError as exc:
            out[name] = str(exc)

torch.manual_seed(0)
hf = M.DeepseekV3Attention(cfg, layer_idx=0).eval()
for p in hf.parameters():
    torch.nn.init.normal_(p, std=0.2)
sd, mine = hf.state_dict(), dict(pinned.named_parameters())
with torch.no_grad():
    mine["fused_qkv_a_proj.weight"].copy_(torch.cat([sd["q_a_proj.weight"], sd["kv_a_proj_with_mqa.weight"]]))
    for k in ("q_a_layernorm.weight", "q_b_proj.weight", "kv_a_layernorm.weight", "kv_b_proj.weight", "o_proj.weight"):
        mine[k].copy_(sd[k])
    torch.nn.init.normal_(g_proj.weight, std=0.3)
for m in (pinned, ours, gated):
    process_weights_after_loading(m, vc.model_config, torch.device("cpu"))
n = 9
x = torch.randn(n, H)
pos = torch.arange(n)
cos, sin = M.DeepseekV3RotaryEmbedding(cfg)(x[None], pos[None])
mask = torch.full((n, n), float("-inf")).triu(1)[None, None]


class Gate(torch.nn.Module):  # upstream's output gate, in plain torch, before HF's o_proj
    def __init__(self, o_proj):
        super().__init__()
        self.o_proj = o_proj

    def forward(self, attn):
        return self.o_proj(attn * torch.sigmoid(x @ g_proj.weight.t())[None])


with torch.no_grad():
    ref = hf(x[None], position_embeddings=(cos, sin), attention_mask=mask)[0][0]
    hf.o_proj = Gate(hf.o_proj)
    ref_gated = hf(x[None], position_embeddings=(cos, sin), attention_mask=mask)[0][0]
    with set_forward_context(None, vc, num_tokens=n):
        got_pinned = pinned(pos, x, None)
        got = ours(pos, x)
        got_gated = gated(pos, x)
out["pinned_vs_ours"] = float((got_pinned - got).abs().max())
out["hf_vs_ours"] = float((ref - got).abs().max())
out["gated_vs_ref"] = float((ref_gated - got_gated).abs().max())
out["gate_matters"] = float((got_gated - got).abs().max())
out["scale"] = float(ref.abs().max())
print(json.dumps(out))
"""


def test_the_backport_is_the_pinned_wrapper_plus_upstreams_gate_on_the_real_pinned_vllm(tmp_path):
    res = run_in_worker(LAYER, str(tmp_path), str(backports.SOURCES / "mla.py"))
    assert res["isinstance"] is True
    assert res["scale"] > 0.1, res
    assert res["pinned_vs_ours"] == 0.0, res  # the same modules, the same pinned attention
    assert res["hf_vs_ours"] < 1e-5, res
    assert res["gated_vs_ref"] < 1e-5 and res["gate_matters"] > 1e-2, res
    assert "sparse-MLA index groups (index_group_builder)" in res["group"]
    assert "non-causal multi-token decode" in res["non_causal"]
