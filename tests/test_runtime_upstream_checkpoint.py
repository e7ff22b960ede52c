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
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from analysis_helpers import CPU_ENV as ENV
from analysis_helpers import REFERENCE_PY as REFERENCE
from analysis_helpers import VERIFY_DIR as VERIFY

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

# the values too: upstream vLLM (its CPU experts computed by _runtime_moe) on the derived checkpoint gives
# transformers 5's logits on the same file; and the experts count (one expert's down_proj zeroed changes them)
import torch
from safetensors.torch import save_file
import _runtime_moe
from _runtime_forward import _forward, _hf_logits
from vllm.config import set_current_vllm_config
from vllm.model_executor.model_loader.utils import process_weights_after_loading
out["moe_patched"] = _runtime_moe.install()
assert self_check(model, ck, expected, vc) is None
with set_current_vllm_config(vc):
    process_weights_after_loading(model, vc.model_config, torch.device("cpu"))
ids = [3, 17, 42, 5, 99, 64, 7, 120, 1, 33, 80, 11]
logits, _ = _forward(model, vc, cfg, ids)
save_file(dict(ck), os.path.join(work, "model.safetensors"))
hf_logits, _, _ = _hf_logits("Qwen3MoeForCausalLM", work, ids)
out["vs_hf"] = float((logits - hf_logits).abs().max())
with torch.no_grad():
    dict(model.named_parameters())[[n for n in expected if "layers.1." in n and n.endswith("w2_weight")][0]][1].zero_()
out["expert_counts"] = float((_forward(model, vc, cfg, ids)[0] - logits).abs().max())
ref = torch.zeros(4, 64)
torch.manual_seed(0)
h, w1, w2 = torch.randn(4, 64) * 0.1, torch.randn(3, 96, 64) * 0.1, torch.randn(3, 64, 48) * 0.1
tw, ti = torch.rand(4, 2), torch.tensor([[0, 2], [1, 0], [2, 1], [0, 1]])
_runtime_moe.experts_reference(ref, h, w1, w2, tw, ti, "silu")
loop = torch.stack([sum(tw[t, k] * (torch.nn.functional.silu(w1[ti[t, k], :48] @ h[t]) * (w1[ti[t, k], 48:] @ h[t])) @ w2[ti[t, k]].T
                        for k in range(2)) for t in range(4)])
out["per_token_loop"] = float((ref - loop).abs().max())
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
    # upstream vLLM with the reference CPU experts computes transformers 5's Qwen3-MoE on the derived checkpoint
    assert got["moe_patched"] == ["vllm.model_executor.layers.fused_moe.experts.cpu_moe.CPUUnquantizedExperts",
                                  "vllm.model_executor.layers.fused_moe.router.cpu_router.CPURouter._compute_routing",
                                  "vllm.model_executor.layers.fused_moe.router.zero_expert_router.zero_experts_compute_triton",
                                  # non-gated experts (relu2_no_mul ..., _upstream_non_gated): the config's refusal off
                                  # a GPU caught (its __post_init__'s last statement), and the CPU experts class marked
                                  # to take them (experts_reference computes them); a gated Qwen3-MoE reaches neither
                                  "vllm.model_executor.layers.fused_moe.config.FusedMoEConfig.__post_init__",
                                  "vllm.model_executor.layers.fused_moe.experts.cpu_moe.CPUUnquantizedExperts"
                                  "._supports_no_act_and_mul",
                                  # the compiled ops a model calls itself (_runtime_moe_ops, the same on both sides)
                                  "vllm._custom_ops.moe_align_block_size", "vllm._custom_ops.moe_sum",
                                  "vllm._custom_ops.rms_norm", "vllm._custom_ops.topk_softmax",
                                  "vllm._custom_ops.topk_sigmoid",
                                  "vllm.model_executor.layers.fused_moe.fused_moe.invoke_fused_moe_triton_kernel",
                                  "torch.ops._C.silu_and_mul", "torch.ops._C.gelu_and_mul",
                                  "torch.ops._C.gelu_tanh_and_mul"]
    assert got["vs_hf"] < 1e-4, got["vs_hf"]
    assert got["expert_counts"] > 1e-3
    assert got["per_token_loop"] < 1e-6
    assert got["misnamed"].startswith("its load_weights refused the derived checkpoint (ValueError: There is no module "
                                      "or parameter named 'layers.0.self_attn.kv_proj'")


ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = Path(os.environ.get("MMF_UPSTREAM") or Path.home() / ".cache" / "mmf" / "src" / "vllm-0.33.0")


def test_a_moe_no_transformers_has_loads_and_matches_upstream_vllm(tmp_path):
    """BailingMoe (Ling): neither transformers 4.57.6 nor 5.20.2 has a class for it, so before this source
    the load level was skipped and forward and match never ran. Upstream vLLM's own BailingMoeV2ForCausalLM
    names the checkpoint (QKV, shared experts' gate_up and the routed experts split back), the migrated
    file loads it on vLLM 0.13.0, and its logits equal upstream vLLM 0.33.0's on the same checkpoint."""
    pinned = os.environ.get("MMF_PINNED_VENV")
    reference = os.environ.get("MMF_REFERENCE_VENV")
    if not pinned or not reference:
        pytest.skip("needs MMF_PINNED_VENV (vLLM 0.13.0) and MMF_REFERENCE_VENV (vLLM 0.33.0)")
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    plugin = tmp_path / "plugin"
    shutil.copytree(ROOT / "examples" / "plugin", plugin)
    script = str(ROOT / "scripts" / "migrate_model.py")
    proc = subprocess.run([sys.executable, script, "apply", "bailing_moe", "--upstream", str(UPSTREAM),
                           "--plugin", str(plugin), "--all-archs", "--json"], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, script, "verify", "bailing_moe", "--plugin", str(plugin), "--run",
                           "--python", pinned, "--reference-python", reference, "--json"],
                          capture_output=True, text=True, timeout=2400)
    assert proc.stdout, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    archs = {a["architecture"]: a for a in report["architectures"]}
    arch = archs["BailingMoeV2ForCausalLM"]
    assert arch["checkpoint"] == "upstream vLLM 0.33.0 BailingMoeV2ForCausalLM (validated by its own load_weights)"
    assert f"checkpoint: {arch['checkpoint']}" in arch["notes"]
    assert {lv: arch["levels"][lv]["status"] for lv in arch["levels"]} == {
        "import": "pass", "construct": "pass", "load": "pass", "forward": "pass", "match": "pass"}, arch["levels"]
    assert arch["reference"] == "vllm-0.33.0"
    assert arch["built_from"]["reference"].endswith("vllm/model_executor/models/bailing_moe.py")
    assert arch["load_stats"]["checkpoint_tensors"] > arch["load_stats"]["parameters"]  # experts split per expert


def test_a_stacked_shard_may_span_several_outputs_and_the_parts_must_tile_the_layer():
    """Qwen3.5's mapper stacks ``.in_proj_qkv`` as the span (0, 1, 2) of ``in_proj_qkvz``'s four outputs and
    ``.in_proj_z`` as 3: split back as two tensors, q+k+v rows then z rows. Parts that do not tile the layer's
    outputs exactly (a packed mapping of two names over four outputs) split nothing. Pure (no torch)."""
    import sys

    sys.path.insert(0, str(VERIFY))
    from _runtime_load import _shard_index, _split_stacked

    class Param:
        output_dim = 0

    stacked = {("substr", ".in_proj_qkvz"): [(".in_proj_qkv", _shard_index((0, 1, 2))), (".in_proj_z", _shard_index(3))],
               ("leaf", "gate_up_proj"): [("gate_proj", (0, 0)), ("up_proj", (1, 1))]}
    assert _split_stacked("model.layers.0.linear_attn.in_proj_qkvz.weight", Param(), [32, 32, 64, 64], stacked) == [
        ("model.layers.0.linear_attn.in_proj_qkv.weight", (0, 0, 128)),
        ("model.layers.0.linear_attn.in_proj_z.weight", (0, 128, 64))]
    assert _split_stacked("model.layers.0.mlp.gate_up_proj.weight", Param(), [48, 48], stacked) == [
        ("model.layers.0.mlp.gate_proj.weight", (0, 0, 48)), ("model.layers.0.mlp.up_proj.weight", (0, 48, 48))]
    assert _split_stacked("model.layers.0.mlp.gate_up_proj.weight", Param(), [48, 48, 48], stacked) is None
    assert _shard_index("k") == (1, 1) and _shard_index((0, 2)) is None and _shard_index("x") is None
    # a mapper's substring is a whole segment: JinaVL's Qwen2-VL tower stacks ".qkv", which is not the language
    # model's ".qkv_proj" (split as q_proj_proj before, a name upstream refuses); one ending in "." is a segment
    qkv = [(".q_proj", (0, 0)), (".k_proj", (1, 1)), (".v_proj", (2, 2))]
    jina = {("substr", ".qkv"): qkv, ("leaf", "qkv_proj"): [("q_proj", (0, 0)), ("k_proj", (1, 1)), ("v_proj", (2, 2))]}
    assert [n for n, _ in _split_stacked("language_model.model.layers.0.self_attn.qkv_proj.weight", Param(), [4, 2, 2],
                                         jina)] == [f"language_model.model.layers.0.self_attn.{p}_proj.weight" for p in "qkv"]
    assert [n for n, _ in _split_stacked("visual.blocks.0.attn.qkv.weight", Param(), [4, 4, 4], jina)] == [
        f"visual.blocks.0.attn.{p}_proj.weight" for p in "qkv"]
    dots = {("substr", ".fc13."): [(".fc1.", (0, 0)), (".fc3.", (1, 1))]}
    assert [n for n, _ in _split_stacked("vision_tower.blocks.0.mlp.fc13.weight", Param(), [4, 4], dots)] == [
        "vision_tower.blocks.0.mlp.fc1.weight", "vision_tower.blocks.0.mlp.fc3.weight"]


def test_the_mapper_read_backwards_is_the_one_the_class_loader_passes():
    """JinaVL's load_weights passes ``mapper=self.weight_mapper`` ("model." -> "language_model.model."), not the
    ``hf_to_vllm_mapper`` it inherits from Qwen2-VL ("model.visual." -> "visual."): read backwards, the inherited one
    spelled the tower model.visual.*, which JinaVL's own mapper sends into the language model (load skipped before).
    A loader naming none, or two different ones, keeps hf_to_vllm_mapper. Pure (no torch)."""
    sys.path.insert(0, str(VERIFY))
    from _runtime_load import _mapper_attr

    class Jina:
        def load_weights(self, weights):
            return self.loader.load_weights(weights, mapper=self.weight_mapper)

    class Plain:
        def load_weights(self, weights):
            return self.loader.load_weights(weights, mapper=self.hf_to_vllm_mapper)

    class Two:
        def load_weights(self, weights):
            return (self.a(weights, mapper=self.one_mapper), self.b(weights, mapper=self.other_mapper))

    assert _mapper_attr(Jina()) == "weight_mapper"
    assert _mapper_attr(Plain()) == _mapper_attr(Two()) == _mapper_attr(object()) == "hf_to_vllm_mapper"


class _StandInMapper:
    orig_to_new_prefix: dict = {}
    orig_to_new_substr = {".fc1.": ".mlp.fc1."}


_ENCODER_MAPPER = _StandInMapper()


def _load_encoder_layers(module, weights):
    return module.loader.load_weights(weights, mapper=_ENCODER_MAPPER)


class _UltravoxLikeEncoder:
    def load_weights(self, weights):
        return _load_encoder_layers(self, weights)


class _NoMapperEncoder:
    def load_weights(self, weights):
        return self.loader.load_weights(weights)


def test_a_module_level_mapper_the_loader_hands_on_is_read_backwards():
    """Ultravox's whisper encoder declares no hf_to_vllm_mapper: its load_weights hands ``self`` to
    ``_load_whisper_layer_weights``, which passes the module-level ``_WHISPER_ENCODER_MAPPER`` (``.fc1.`` ->
    ``.mlp.fc1.``); unread, the derived names kept ``.mlp.fc1.`` and upstream refused ``layers.0.mlp.mlp``. The
    mapper is found through the function its loader calls; a loader passing none has none. Pure (no torch)."""
    sys.path.insert(0, str(VERIFY))
    from _runtime_load import _module_mapper, _unmap

    assert _module_mapper(_UltravoxLikeEncoder()) is _ENCODER_MAPPER
    assert _module_mapper(_NoMapperEncoder()) is None
    assert _unmap("audio_tower.layers.0.mlp.fc1.weight", [("audio_tower", _ENCODER_MAPPER)]) == \
        "audio_tower.layers.0.fc1.weight"


class _StackingMapper:
    orig_to_new_stacked = {".q_proj": (".qkv_proj", "q"), ".gate_proj": (".gate_up_proj", 0)}


class _Qwen3LikeModel:
    hf_to_vllm_mapper = _StackingMapper()

    def load_weights(self, weights):
        return self.loader.load_weights(weights, mapper=self.hf_to_vllm_mapper)


class _LagunaLikeDraftModel(_Qwen3LikeModel):  # inherits the mapper, its own loader never passes it
    def load_weights(self, weights):
        return {name for name, _ in weights}


def test_only_a_mapper_the_loader_passes_keeps_stacked_layers_out_of_the_as_held_layout():
    """FunAudioChat's Qwen3 decoder passes its stacking mapper: no release holds its q/k/v whole, so the as-held
    layout (which upstream's loader took while its audio attention refuses every released spelling) is not taken and
    the load level says why, instead of failing on a spelling no checkpoint has (the pinned Qwen3 loader: KeyError
    gate_gate_up_proj). DFlash Laguna's draft inherits such a mapper and reads params_dict[name]: as-held stays its
    layout. Pure (no torch)."""
    from types import SimpleNamespace as NS

    sys.path.insert(0, str(VERIFY))
    from _runtime_load import _passed_stacks

    def model(*mods):
        return NS(named_modules=lambda: [(f"m{i}", m) for i, m in enumerate(mods)])

    assert _passed_stacks(model(_Qwen3LikeModel(), object())) == {".qkv_proj", ".gate_up_proj"}
    assert _passed_stacks(model(_LagunaLikeDraftModel())) == set()
    # FunAudioChat: neither as-held nor qkv-held (a whole qkv_proj, which the pinned Qwen2 loader reads as qkqkv_proj)
    from _runtime_load import kept_whole
    from checkpoint_layouts import LAYOUTS

    table = {e["id"]: e for e in LAYOUTS}
    stacks = {".qkv_proj", ".gate_up_proj"}
    assert kept_whole(table["as-held"], stacks) == [".gate_up_proj", ".qkv_proj"]
    assert kept_whole(table["qkv-held"], stacks) == [".qkv_proj"]
    assert kept_whole(table["experts-stacked-qkv-held"], {".gate_up_proj"}) == []
    assert kept_whole(table["split"], stacks) == [] and kept_whole(table["qkv-held"], set()) == []


def test_the_draft_respellings_undo_the_renames_drafts_make_in_code():
    """Golden before/after of each respelling (``draft_respellings.RESPELLINGS``) on the names upstream vLLM's
    own draft classes are derived with: an EAGLE loader prefixes ``model.`` to all but lm_head, a DeepSeek-style
    MTP loader inserts ``.mtp_block`` into an MTP layer's block, a Qwen3-Next-style MTP loader reads ``mtp.`` as
    ``model.`` (keeping the target's embed_tokens), Bailing's reads ``model.word_embeddings``. A respelling that
    makes two names one is refused (None). Pure (no torch)."""
    sys.path.insert(0, str(VERIFY))
    from draft_respellings import RESPELLINGS, respell

    table = {e["id"]: e["rewrites"] for e in RESPELLINGS}
    assert list(table) == ["draft-model-prefix", "mtp-block-segment-layer-embed", "mtp-block-segment",
                           "mtp-block-segment-shared-head", "mtp-prefix", "longcat-mtp-names", "loop-gate-projections",
                           "splade-mlm-head", "unprefixed-encoder", "radio-blocks", "word-embeddings",
                           "nemo-asr-names", "mistral-audio-encoder"]
    assert all(e["evidence"].split(" ")[0].endswith(".py") for e in RESPELLINGS)  # each names its upstream file
    eagle = ["model.embed_tokens.weight", "model.layers.2.self_attn.qkv_proj.weight", "model.fc.weight", "lm_head.weight"]
    assert respell(eagle, table["draft-model-prefix"]) == {
        "model.embed_tokens.weight": "embed_tokens.weight",
        "model.layers.2.self_attn.qkv_proj.weight": "layers.2.self_attn.qkv_proj.weight",
        "model.fc.weight": "fc.weight", "lm_head.weight": "lm_head.weight"}
    mtp = ["model.embed_tokens.weight", "model.layers.2.enorm.weight", "model.layers.2.shared_head.head.weight",
           "model.layers.2.mtp_block.self_attn.kv_a_proj_with_mqa.weight",
           "model.language_model.layers.1.mtp_block.mlp.experts.0.down_proj.weight"]
    assert respell(mtp, table["mtp-block-segment"]) == {
        "model.embed_tokens.weight": "model.embed_tokens.weight",
        "model.layers.2.enorm.weight": "model.layers.2.enorm.weight",
        "model.layers.2.shared_head.head.weight": "model.layers.2.shared_head.head.weight",
        "model.layers.2.mtp_block.self_attn.kv_a_proj_with_mqa.weight": "model.layers.2.self_attn.kv_a_proj_with_mqa.weight",
        "model.language_model.layers.1.mtp_block.mlp.experts.0.down_proj.weight":
            "model.language_model.layers.1.mlp.experts.0.down_proj.weight"}
    # the released DeepSeek-V3 / GLM spelling: the first MTP layer (num_hidden_layers) holds its own embed_tokens
    assert respell(mtp[:3], table["mtp-block-segment-layer-embed"], {"num_hidden_layers": 2}) == {
        "model.embed_tokens.weight": "model.layers.2.embed_tokens.weight",
        "model.layers.2.enorm.weight": "model.layers.2.enorm.weight",
        "model.layers.2.shared_head.head.weight": "model.layers.2.shared_head.head.weight"}
    assert respell(mtp, table["mtp-block-segment-layer-embed"], {}) is None  # no layer count, no guess
    assert respell(mtp, table["mtp-block-segment-shared-head"])["model.layers.2.shared_head.head.weight"] == "lm_head.weight"
    nxt = ["model.embed_tokens.weight", "model.fc.weight", "model.layers.0.mlp.experts.1.up_proj.weight",
           "model.pre_fc_norm_hidden.weight", "lm_head.weight"]
    assert respell(nxt, table["mtp-prefix"]) == {
        "model.embed_tokens.weight": "model.embed_tokens.weight", "model.fc.weight": "mtp.fc.weight",
        "model.layers.0.mlp.experts.1.up_proj.weight": "mtp.layers.0.mlp.experts.1.up_proj.weight",
        "model.pre_fc_norm_hidden.weight": "mtp.pre_fc_norm_hidden.weight", "lm_head.weight": "lm_head.weight"}
    assert respell(["model.embed_tokens.weight", "model.layers.2.eh_proj.weight"], table["word-embeddings"]) == {
        "model.embed_tokens.weight": "model.word_embeddings.weight",
        "model.layers.2.eh_proj.weight": "model.layers.2.eh_proj.weight"}
    # LongCat-Flash's MTP layer as its released checkpoint spells it (new_to_old_names_mapping read backwards)
    longcat = ["model.embed_tokens.weight", "model.layers.4.enorm.weight", "model.layers.4.eh_proj.weight",
               "model.layers.4.final_layernorm.weight", "model.layers.4.mtp_block.self_attn.q_a_proj.weight",
               "model.layers.4.mtp_block.mlp.down_proj.weight", "lm_head.weight"]
    assert respell(longcat, table["longcat-mtp-names"]) == {
        "model.embed_tokens.weight": "model.mtp.embed_tokens.weight",
        "model.layers.4.enorm.weight": "model.mtp.layers.0.enorm.m.weight",
        "model.layers.4.eh_proj.weight": "model.mtp.layers.0.eh_proj.weight",
        "model.layers.4.final_layernorm.weight": "model.mtp.norm.weight",
        "model.layers.4.mtp_block.self_attn.q_a_proj.weight": "model.mtp.layers.0.self_attn.q_a_proj.weight",
        "model.layers.4.mtp_block.mlp.down_proj.weight": "model.mtp.layers.0.transformer_layer.mlp.down_proj.weight",
        "lm_head.weight": "lm_head.weight"}
    # IQuest-LoopCoder's loop gates: its loader reads gate_projections.{i}.weight into .gate_projections.{i}.gate_proj
    loop = ["model.gate_projections.0.gate_proj.weight", "model.gate_projections.1.gate_proj.bias",
            "model.layers.0.mlp.gate_proj.weight"]
    assert respell(loop, table["loop-gate-projections"]) == {
        "model.gate_projections.0.gate_proj.weight": "model.gate_projections.0.weight",
        "model.gate_projections.1.gate_proj.bias": "model.gate_projections.1.bias",
        "model.layers.0.mlp.gate_proj.weight": "model.layers.0.mlp.gate_proj.weight"}
    # the SPLADE BERT reads its MLM head as BertForMaskedLM saves it (cls.predictions.*)
    splade = ["mlm_head.dense.weight", "mlm_head.layer_norm.bias", "mlm_head.decoder.weight",
              "bert.encoder.layer.0.attention.output.LayerNorm.weight"]
    assert respell(splade, table["splade-mlm-head"]) == {
        "mlm_head.dense.weight": "cls.predictions.transform.dense.weight",
        "mlm_head.layer_norm.bias": "cls.predictions.transform.LayerNorm.bias",
        "mlm_head.decoder.weight": "cls.predictions.decoder.weight",
        "bert.encoder.layer.0.attention.output.LayerNorm.weight": "bert.encoder.layer.0.attention.output.LayerNorm.weight"}
    # BGE-M3 (a RoBERTa embedding model): its loader reads the encoder unprefixed, the heads as they are
    bge = ["bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.attention.self.query.weight",
           "sparse_linear.weight", "colbert_linear.bias"]
    assert respell(bge, table["unprefixed-encoder"]) == {
        "bert.embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
        "bert.encoder.layer.0.attention.self.query.weight": "encoder.layer.0.attention.self.query.weight",
        "sparse_linear.weight": "sparse_linear.weight", "colbert_linear.bias": "colbert_linear.bias"}
    # Nemotron Nano VL's RADIO tower as its loader reads it (radio_model.model.blocks.{i}); the rest as it was
    radio = ["vision_model.model.encoder.layers.3.attn.qkv.weight", "vision_model.model.patch_generator.embedder.weight",
             "language_model.model.layers.0.mixer.in_proj.weight", "mlp1.0.weight"]
    assert respell(radio, table["radio-blocks"]) == {
        "vision_model.model.encoder.layers.3.attn.qkv.weight": "vision_model.radio_model.model.blocks.3.attn.qkv.weight",
        "vision_model.model.patch_generator.embedder.weight":
            "vision_model.radio_model.model.patch_generator.embedder.weight",
        "language_model.model.layers.0.mixer.in_proj.weight": "language_model.model.layers.0.mixer.in_proj.weight",
        "mlp1.0.weight": "mlp1.0.weight"}
    # Cohere ASR as NeMo saves it: its loader's transform reads transf_decoder._decoder / ._embedding and
    # log_softmax.mlp.layer0, prefixes every other name with model., and stacks query_net / key_net / value_net
    nemo = ["model.decoder.embedding.token_embedding.weight", "model.decoder.layers.0.first_sub_layer.q_proj.weight",
            "model.decoder.layers.0.first_sub_layer.v_proj.bias", "model.decoder.layers.0.second_sub_layer.q_proj.weight",
            "model.decoder.layers.0.second_sub_layer.kv_proj.weight", "model.encoder.layers.0.conv.batch_norm.weight",
            "proj_out.bias"]
    assert respell(nemo, table["nemo-asr-names"]) == {
        "model.decoder.embedding.token_embedding.weight": "transf_decoder._embedding.token_embedding.weight",
        "model.decoder.layers.0.first_sub_layer.q_proj.weight": "transf_decoder._decoder.layers.0.first_sub_layer.query_net.weight",
        "model.decoder.layers.0.first_sub_layer.v_proj.bias": "transf_decoder._decoder.layers.0.first_sub_layer.value_net.bias",
        "model.decoder.layers.0.second_sub_layer.q_proj.weight":
            "transf_decoder._decoder.layers.0.second_sub_layer.query_net.weight",
        "model.decoder.layers.0.second_sub_layer.kv_proj.weight": "transf_decoder._decoder.layers.0.second_sub_layer.kv_proj.weight",
        "model.encoder.layers.0.conv.batch_norm.weight": "encoder.layers.0.conv.batch_norm.weight",
        "proj_out.bias": "log_softmax.mlp.layer0.bias"}
    # Voxtral as Mistral's consolidated checkpoint: the encoder under mm_whisper_embeddings., the language model bare
    mistral = ["whisper_encoder.whisper_encoder.layers.0.self_attn.q_proj.weight", "language_model.model.norm.weight",
               "language_model.lm_head.weight", "audio_language_adapter.w_in.weight"]
    assert respell(mistral, table["mistral-audio-encoder"]) == {
        "whisper_encoder.whisper_encoder.layers.0.self_attn.q_proj.weight":
            "mm_whisper_embeddings.whisper_encoder.layers.0.self_attn.q_proj.weight",
        "language_model.model.norm.weight": "model.norm.weight", "language_model.lm_head.weight": "lm_head.weight",
        "audio_language_adapter.w_in.weight": "audio_language_adapter.w_in.weight"}
    # the causal (realtime) encoder's SwiGLU parts as its load_weight reads them (fc1 / fc3 stacked, fc2 down); the
    # language model's own gate/up/down keep their names
    causal = ["whisper_encoder.whisper_encoder.layers.0.mlp.gate_proj.weight",
              "whisper_encoder.whisper_encoder.layers.0.mlp.up_proj.weight",
              "whisper_encoder.whisper_encoder.layers.0.mlp.down_proj.weight",
              "language_model.model.layers.0.mlp.gate_proj.weight"]
    assert respell(causal, table["mistral-audio-encoder"]) == {
        causal[0]: "mm_whisper_embeddings.whisper_encoder.layers.0.mlp.fc1.weight",
        causal[1]: "mm_whisper_embeddings.whisper_encoder.layers.0.mlp.fc3.weight",
        causal[2]: "mm_whisper_embeddings.whisper_encoder.layers.0.mlp.fc2.weight",
        causal[3]: "model.layers.0.mlp.gate_proj.weight"}
    # two names one: refused, never a checkpoint with a tensor silently dropped
    assert respell(["model.fc.weight", "fc.weight"], table["draft-model-prefix"]) is None


def test_a_legacy_leaf_alias_is_not_read_backwards_and_the_rest_of_the_mapper_is():
    """BERT's mapper reads the TF-era ``LayerNorm.gamma`` / ``.beta`` as ``LayerNorm.weight`` / ``.bias``: read
    backwards it spelled every encoder norm ``gamma``, and the load level, pairing parameters by their names' endings,
    paired ``model.embeddings.LayerNorm.weight`` with the only tensor still ending so (the SPLADE MLM head's) and failed
    a correct load. A substring rename of the leaf alone, where the mapper reads the held name unchanged, keeps the
    held name; a rename of the module (Step3p7's ``in_proj_weight`` -> ``qkv_proj.weight``), the stacked and prefix
    maps are still read backwards. Pure (a stand-in mapper with vLLM's map_name contract)."""
    sys.path.insert(0, str(VERIFY))
    from _runtime_load import _unmap

    class Mapper:
        def __init__(self, substr=None, prefix=None):
            self.orig_to_new_substr, self.orig_to_new_prefix = substr or {}, prefix or {}

        def map_name(self, key):
            for orig, new in self.orig_to_new_substr.items():
                if orig in key:
                    key = key.replace(orig, new, 1)
            for orig, new in self.orig_to_new_prefix.items():
                if key.startswith(orig):
                    key = new + key[len(orig):]
            return key

    bert = Mapper({"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"})
    top = Mapper(prefix={"bert.": "model."})
    mappers = [("", top), ("model", bert)]
    assert _unmap("model.embeddings.LayerNorm.weight", mappers) == "bert.embeddings.LayerNorm.weight"
    assert _unmap("model.encoder.layer.0.output.LayerNorm.bias", mappers) == "bert.encoder.layer.0.output.LayerNorm.bias"
    assert _unmap("model.encoder.layer.0.output.dense.weight", mappers) == "bert.encoder.layer.0.output.dense.weight"
    # a module renamed with its leaf is a released spelling: read backwards as before
    step = Mapper({".attn.in_proj_weight": ".attn.qkv_proj.weight"})
    assert _unmap("vision.blocks.0.attn.qkv_proj.weight", [("", step)]) == "vision.blocks.0.attn.in_proj_weight"
    # a leaf rename the mapper would not read back as held (another rule rewrites the held name) is reversed
    odd = Mapper({"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.weight": "LayerNorm.w"})
    assert _unmap("enc.LayerNorm.weight", [("", odd)]) == "enc.LayerNorm.gamma"


def test_the_checkpoint_layouts_join_each_tensors_experts_in_expert_order():
    """Golden of the layouts (``checkpoint_layouts.LAYOUTS``) a derived checkpoint is tried in after the
    conventional one: Step3's loader reads ``moe.down_proj.weight`` holding every expert (``experts-stacked``),
    DFlash-Laguna's reads every parameter as the class holds it (``as-held``). Experts join in index order; a gap
    in the indices or a joined name that is already a name of its own joins nothing (None). Pure (no torch)."""
    sys.path.insert(0, str(VERIFY))
    from checkpoint_layouts import LAYOUTS, held_expert_parts, stacked_experts

    table = {e["id"]: e for e in LAYOUTS}
    assert list(table) == ["split", "experts-stacked", "mla-a-split", "experts-held-w1w2w3", "qk-rotary-interleaved", "conv1d-split-qkv",
                           "as-held", "qkv-held", "embedding-rows-split", "substr-exact", "unmapped",
                           "experts-stacked-qkv-held", "tower-qkv-held"]
    # MiniCPM's MoE holds every expert in ws [expert, 2 x intermediate, hidden] (w1 rows then w3) and w2s
    held = table["experts-held-w1w2w3"]["held_experts"]
    assert held_expert_parts("model.layers.1.mlp.ws", (2, 8, 4), held) == [
        ("model.layers.1.mlp.experts.0.w1.weight", 0, 0, 4), ("model.layers.1.mlp.experts.0.w3.weight", 0, 4, 4),
        ("model.layers.1.mlp.experts.1.w1.weight", 1, 0, 4), ("model.layers.1.mlp.experts.1.w3.weight", 1, 4, 4)]
    assert held_expert_parts("model.layers.1.mlp.w2s", (2, 4, 4), held) == [
        ("model.layers.1.mlp.experts.0.w2.weight", 0, 0, 4), ("model.layers.1.mlp.experts.1.w2.weight", 1, 0, 4)]
    assert held_expert_parts("model.layers.1.mlp.ws", (2, 7, 4), held) is None  # rows do not halve
    assert held_expert_parts("model.layers.1.mlp.ws", (8, 4), held) is None  # not [expert, rows, ...]
    assert held_expert_parts("model.layers.1.mlp.gate.weight", (2, 8, 4), held) is None
    # Llama 4's loader permutes q/k from the interleaved rotary layout: the derived q_proj / k_proj are stored so
    assert [f for _, f in table["qk-rotary-interleaved"]["interleaved_rotary"]] == ["num_attention_heads",
                                                                                     "num_key_value_heads"]
    assert table["mla-a-split"]["stacked_extra"] == {"fused_qkv_a_proj": ["q_a_proj", "kv_a_proj_with_mqa"]}
    assert table["split"]["split_stacked"] and table["split"]["split_experts"] and not table["split"]["stack_experts"]
    assert not table["as-held"]["split_stacked"] and not table["as-held"]["split_experts"]
    # GTE's "new" loader splits gate_up_proj and reads the qkv_proj whole: only that one is held
    assert table["qkv-held"]["split_stacked"] and table["qkv-held"]["held_stacked"] == ("qkv_proj",)
    # Step3-VL: the text model's experts joined per tensor, the vision tower's qkv_proj read whole
    both = table["experts-stacked-qkv-held"]
    assert both["stack_experts"] == table["experts-stacked"]["stack_experts"] and both["held_stacked"] == ("qkv_proj",)
    assert all(e["evidence"].split(" ")[0].endswith(".py") for e in LAYOUTS[1:])  # each names its upstream file
    stack = table["experts-stacked"]["stack_experts"]
    names = ["model.layers.1.moe.experts.1.down_proj.weight", "model.layers.1.moe.experts.0.down_proj.weight",
             "model.layers.1.moe.experts.10.down_proj.weight", *[f"model.layers.1.moe.experts.{i}.down_proj.weight"
                                                                 for i in range(2, 10)],
             "model.layers.1.moe.experts.0.gate_proj.weight", "model.layers.1.moe.gate.weight",
             "model.layers.1.share_expert.gate_proj.weight"]
    joined = stacked_experts(names, stack)
    assert list(joined) == ["model.layers.1.moe.down_proj.weight", "model.layers.1.moe.gate_proj.weight"]
    assert joined["model.layers.1.moe.down_proj.weight"] == [
        f"model.layers.1.moe.experts.{i}.down_proj.weight" for i in range(11)]  # 10 after 9, not after 1
    assert joined["model.layers.1.moe.gate_proj.weight"] == ["model.layers.1.moe.experts.0.gate_proj.weight"]
    assert stacked_experts(["a.experts.0.w.weight", "a.experts.2.w.weight"], stack) is None  # expert 1 missing
    assert stacked_experts(["a.experts.0.w.weight", "a.w.weight"], stack) is None  # a.w.weight twice


def test_a_loader_that_scales_on_load_and_a_head_the_target_lends_are_judged_as_upstream_serves_them():
    """Two things upstream's own loader does not write back as derived, both served that way, so the self-check
    expects them: LongCat's composed weight loaders scale q/kv_a_layernorm by sqrt(hidden / rank) on load
    (``checkpoint_layouts.LOAD_SCALES``, only with the config's flag); an MTP draft's lm_head, which LongCat's MTP
    loader skips, is the target's at serving time (both proposers assign it), so only a draft that has no head of
    its own (``has_own_lm_head`` absent or False), built as a draft, with the tensor in the checkpoint, lends it.
    Pure (no torch, no vLLM)."""
    from types import SimpleNamespace as NS

    sys.path.insert(0, str(VERIFY))
    from _runtime_load import target_shared
    from checkpoint_layouts import LOAD_SCALES, load_scale

    assert [e["id"] for e in LOAD_SCALES] == ["longcat-mla-q-lora-norm", "longcat-mla-kv-lora-norm"]
    cfg = NS(mla_scale_q_lora=True, mla_scale_kv_lora=False, hidden_size=64, q_lora_rank=16, kv_lora_rank=32)
    assert load_scale("model.layers.4.mtp_block.self_attn.q_a_layernorm.weight", cfg) == 2.0
    assert load_scale("model.layers.4.mtp_block.self_attn.kv_a_layernorm.weight", cfg) == 1.0  # flag off
    assert load_scale("model.layers.4.mtp_block.self_attn.q_a_proj.weight", cfg) == 1.0
    assert load_scale("x.q_a_layernorm.weight", NS(hidden_size=64, q_lora_rank=16)) == 1.0  # no flag, no scale

    class Head:
        def named_parameters(self):
            return [("weight", None)]

    draft, ckpt = NS(lm_head=Head()), {"lm_head.weight": None}
    spec = NS(speculative_config=object())
    assert target_shared(draft, spec, ckpt) == ["lm_head.weight"]
    assert target_shared(draft, NS(speculative_config=None), ckpt) == []  # not built as a draft
    assert target_shared(NS(lm_head=Head(), has_own_lm_head=True), spec, ckpt) == []  # its own head
    assert target_shared(NS(lm_head=Head(), has_own_lm_head=False), spec, ckpt) == ["lm_head.weight"]
    assert target_shared(draft, spec, {}) == []  # nothing to stand in for the target's head


def test_a_substring_map_read_backwards_exactly_takes_the_fewest_renames_the_forward_map_sends_back():
    """FunASR's top mapper applies every substring entry in order: its encoder's released name takes one rename
    (``audio_encoder.`` -> ``model.encoder.audio_encoder.``; the first-match reversal took ``q_proj.`` -> ``linear_q.``
    only and upstream refused ``model`` in FunASREncoder), its decoder's ``q_proj`` takes none (reversed, it would read
    ``linear_q``, no name the decoder's checkpoint has). Pure."""
    sys.path.insert(0, str(VERIFY))
    from _runtime_load import _substr_inverse

    funasr = {"linear_q.": "q_proj.", "linear_k.": "k_proj.", "linear_v.": "v_proj.", "linear_out.": "out_proj.",
              "audio_adaptor.": "model.encoder.audio_adaptor.", "audio_encoder.": "model.encoder.audio_encoder.",
              "llm.model.": "model.decoder.", "llm.lm_head": "lm_head"}
    assert _substr_inverse("model.encoder.audio_encoder.encoders.0.self_attn.q_proj.weight", funasr) == \
        "audio_encoder.encoders.0.self_attn.q_proj.weight"
    assert _substr_inverse("model.encoder.audio_adaptor.blocks.0.self_attn.out_proj.bias", funasr) == \
        "audio_adaptor.blocks.0.self_attn.out_proj.bias"
    assert _substr_inverse("model.decoder.layers.0.self_attn.q_proj.weight", funasr) == \
        "model.decoder.layers.0.self_attn.q_proj.weight"
    # two renames needed at once (each new name holds its old one, so neither alone maps back): only the pair
    both = {"a.": "b.a.", "x.": "y.x."}
    assert _substr_inverse("b.a.y.x.w", both) == "a.x.w"
    assert _substr_inverse("q.w", {"q.": None}) == "q.w"  # nothing to read back


def test_a_prefix_map_read_backwards_takes_a_name_the_forward_map_sends_back():
    """Both vLLMs' WeightsMapper apply every prefix entry in order, none ending the loop. ColUltraVBert's
    ``vision_model.vision_model.`` -> itself, then ``vision_model.`` -> ``vision_model.vision_model.``: a doubled name is
    renamed again (tripled), so only ``vision_model.*`` loads, and the first match read backwards (the identity) spelled
    a name upstream's loader refused ('no vision_model in SiglipVisionTransformer'). A map whose first match goes back
    (the usual one) reads as before. Pure."""
    sys.path.insert(0, str(VERIFY))
    from _runtime_load import _prefix_forward, _prefix_inverse

    col = {"vision_model.vision_model.": "vision_model.vision_model.", "vision_model.": "vision_model.vision_model."}
    assert _prefix_forward("vision_model.vision_model.encoder.w", col) == "vision_model.vision_model.vision_model.encoder.w"
    assert _prefix_inverse("vision_model.vision_model.encoder.w", col) == "vision_model.encoder.w"
    assert _prefix_forward("vision_model.encoder.w", col) == "vision_model.vision_model.encoder.w"
    assert _prefix_inverse("text_model.layers.0.w", col) == "text_model.layers.0.w"
    usual = {"model.visual.": "visual.", "model.": "language_model.model.", "lm_head.": "language_model.lm_head."}
    assert _prefix_inverse("visual.blocks.0.w", usual) == "model.visual.blocks.0.w"
    assert _prefix_inverse("language_model.model.layers.0.w", usual) == "model.layers.0.w"
    assert _prefix_inverse("language_model.lm_head.weight", usual) == "lm_head.weight"
    assert _prefix_forward("audio_invert_tower.x", {"audio_invert_tower.": None}) is None
    # nothing sends it back: the first match, as before (the self-check then judges it)
    assert _prefix_inverse("b.w", {"a.": "b.", "b.": "c."}) == "a.w"


def test_a_parameter_no_name_reaches_through_the_classs_own_maps_is_named_as_the_cause():
    """Why no checkpoint derived from upstream's own class passes its own load_weights, named (load was skipped
    naming only the refusal). ColQwen3.5 (upstream colqwen3_5.py): its own mapper sends every ``language_model.``
    name to ``language_model.model.``, so its language model's ``lm_head`` has no checkpoint name (the derived one
    lands in Qwen3_5Model); the inner Qwen3_5ForCausalLM's map leaves the others reachable. FunAudioChat (upstream
    funaudiochat.py): its audio attention stacks ``.q_proj`` (a leading dot) into ``.qkv_proj``, while its own
    load_weights gets ``q_proj.weight``, relative to it: no part reaches qkv_proj. Pure."""
    from types import SimpleNamespace as NS

    sys.path.insert(0, str(VERIFY))
    from _runtime_load import unnamed_by_mappers

    mappers = [("", NS(orig_to_new_prefix={"language_model.": "language_model.model.", "mtp.": None})),
               ("language_model", NS(orig_to_new_prefix={"model.language_model.": "model.", "mtp.": None}))]
    names = ["language_model.lm_head.weight", "language_model.model.embed_tokens.weight",
             "language_model.model.layers.0.mlp.down_proj.weight", "visual.blocks.0.norm1.weight",
             "custom_text_proj.weight"]
    assert unnamed_by_mappers(names, mappers) == {"language_model.lm_head.weight": (
        "", "its prefix map sends language_model.lm_head.weight to language_model.model.lm_head.weight, so no name "
            "reaches language_model.lm_head.weight")}
    # with upstream's usual Qwen3-VL map (lm_head. -> language_model.lm_head.) every name is reached
    usual = [("", NS(orig_to_new_prefix={"model.visual.": "visual.", "model.language_model.": "language_model.model.",
                                         "lm_head.": "language_model.lm_head."}))]
    assert unnamed_by_mappers(names, usual) == {}
    assert unnamed_by_mappers(["mtp.layers.0.w"], mappers[:1]) == {
        "mtp.layers.0.w": ("", "its prefix map drops mtp.layers.0.w, so no name reaches mtp.layers.0.w")}

    stack = {".q_proj": (".qkv_proj", "q"), ".k_proj": (".qkv_proj", "k"), ".v_proj": (".qkv_proj", "v")}
    audio = [("audio_tower.layers.0.self_attn", NS(orig_to_new_stacked=stack))]
    assert unnamed_by_mappers(["audio_tower.layers.0.self_attn.qkv_proj.weight",
                               "audio_tower.layers.0.self_attn.out_proj.weight"], audio) == {
        "audio_tower.layers.0.self_attn.qkv_proj.weight": (
            "audio_tower.layers.0.self_attn", "its stacked map ('.q_proj' -> '.qkv_proj') renames no name it gets "
            "(q_proj.weight, relative to it), so no part reaches qkv_proj.weight")}
    # the same map on a module above the layer (names with a dot before q_proj) reaches it
    assert unnamed_by_mappers(["layers.0.self_attn.qkv_proj.weight"], [("", NS(orig_to_new_stacked=stack))]) == {}


def test_molmos_embedding_is_stored_as_its_vocabulary_rows_and_the_added_rows_apart():
    """Molmo's loader concatenates ``wte.embedding`` (embedding_size, else vocab_size, rows) and ``wte.new_embedding``
    (the rest) into ``model.embed_tokens.weight``: the layout splits the parameter so; a config without the size or
    sizes that do not tile the rows refuse the layout (()); another parameter is not named (None). Pure."""
    from types import SimpleNamespace as NS

    sys.path.insert(0, str(VERIFY))
    from checkpoint_layouts import LAYOUTS, row_parts

    table = {e["id"]: e for e in LAYOUTS}["embedding-rows-split"]["split_rows"]
    assert row_parts("model.embed_tokens.weight", 640, table, NS(embedding_size=None, vocab_size=512)) == [
        ("model.transformer.wte.embedding", 0, 512), ("model.transformer.wte.new_embedding", 512, 128)]
    assert row_parts("model.embed_tokens.weight", 640, table, NS(embedding_size=576, vocab_size=512)) == [
        ("model.transformer.wte.embedding", 0, 576), ("model.transformer.wte.new_embedding", 576, 64)]
    assert row_parts("model.embed_tokens.weight", 512, table, NS(vocab_size=512)) == ()  # nothing left for the rest
    assert row_parts("model.embed_tokens.weight", 640, table, NS()) == ()
    assert row_parts("lm_head.weight", 640, table, NS(vocab_size=512)) is None


FOLD = '''
    import sys
    sys.path.insert(0, VERIFY)
    from checkpoint_layouts import fold, folded

    raw = torch.randn(3, 4, 4)
    # upstream's XPressRefinerHead.fold_from_raw_, as written there
    tril = torch.tril(torch.ones(4, 4, dtype=raw.dtype))
    eye = torch.eye(4, dtype=raw.dtype)
    print("same", torch.equal(fold("tril-plus-eye", raw), raw * tril + eye))
    print("named", folded("model.xpress_head.mix_L")["stored"], folded("model.xpress_head.mix_L.x"))
'''


def test_xpress_mixer_is_stored_raw_and_loaded_folded(tmp_path):
    """Qwen3-XPress's loader requires ``xpress_head.mix.L`` (the raw mixer) and folds it into ``mix_L`` =
    raw * tril + eye: the derivation stores a drawn raw tensor under the stored name and expects its fold, bit for bit
    what upstream's fold_from_raw_ computes (checked on the pinned torch)."""
    from tests.test_backports import run_in_pinned_venv

    out = run_in_pinned_venv(tmp_path, f"\n    VERIFY = {str(VERIFY)!r}" + FOLD)
    assert out.get("same") == "True"
    assert out.get("named") == "('mix_L', 'mix.L') None"


def test_what_a_draft_takes_from_the_target_and_what_a_class_keeps_at_init_are_named_by_its_own_flags():
    """A draft built as one that declares no embedding of its own (``has_own_embed_tokens`` False: Cohere's EAGLE
    sets it in __init__, the EAGLE interface defaults it) takes ``model.embed_tokens`` from the target in both vLLMs'
    proposers, and one with ``has_own_lm_head`` False its ``lm_head``; True, or not built as a draft, it lends nothing. DFlash's ``mask_embedding`` is kept at its init while
    ``has_separate_mask_embedding`` is False (no mask_embedding.pt), and no longer once the loader set it. Pure."""
    from types import SimpleNamespace as NS

    sys.path.insert(0, str(VERIFY))
    from _runtime_load import lent_by_target
    from checkpoint_layouts import KEPT_AT_INIT, kept_at_init

    class Draft:
        def __init__(self, own):
            self.has_own_embed_tokens = own

        def named_parameters(self):
            return [(n, None) for n in ("model.embed_tokens.weight", "model.layers.4.mlp.down_proj.weight",
                                        "model.embed_tokens_extra.weight", "lm_head.weight")]

    spec = NS(speculative_config=object())
    assert lent_by_target(Draft(False), spec) == ["model.embed_tokens.weight"]
    assert lent_by_target(Draft(True), spec) == []
    assert lent_by_target(Draft(False), NS(speculative_config=None)) == []
    headless = Draft(True)
    headless.has_own_lm_head = False  # the EAGLE interface's default: the target's head too
    assert lent_by_target(headless, spec) == ["lm_head.weight"]
    assert [e["id"] for e in KEPT_AT_INIT] == ["dflash-mask-embedding", "radio-layer-scale"]
    # RADIO's layer scales: no flag, the owning class decides (InternViT's own loader loads its ls1 / ls2)
    RadioVisionEncoderLayer = type("RadioVisionEncoderLayer", (), {})
    InternVisionEncoderLayer = type("InternVisionEncoderLayer", (), {})
    assert kept_at_init("vision_model.model.encoder.layers.0.ls1", RadioVisionEncoderLayer()) == "radio-layer-scale"
    assert kept_at_init("vision_model.model.encoder.layers.0.ls2", RadioVisionEncoderLayer()) == "radio-layer-scale"
    assert kept_at_init("vision_model.encoder.layers.0.ls1", InternVisionEncoderLayer()) is None
    assert kept_at_init("vision_model.model.encoder.layers.0.norm1.weight", RadioVisionEncoderLayer()) is None
    assert kept_at_init("model.mask_embedding", NS(has_separate_mask_embedding=False)) == "dflash-mask-embedding"
    assert kept_at_init("model.mask_embedding", NS(has_separate_mask_embedding=True)) is None
    assert kept_at_init("model.mask_embedding", NS()) is None  # no flag: not this class
    assert kept_at_init("model.embed_tokens.weight", NS(has_separate_mask_embedding=False)) is None


def test_an_eagle_draft_whose_loader_renames_in_code_loads_and_matches_upstream_vllm(tmp_path):
    """EagleLlamaForCausalLM: no transformers has it, and upstream vLLM's own class cannot name its checkpoint
    through its mappings, since its ``load_weights`` prefixes ``model.`` to every name but lm_head in code. Before
    the respelling table the load level was skipped ("nothing named the checkpoint") and forward and match never
    ran; now the derived names are respelled (draft-model-prefix), upstream's own loader writes every parameter
    back exactly, the migrated file loads that checkpoint on vLLM 0.13.0 and computes upstream vLLM 0.33.0's logits."""
    pinned = os.environ.get("MMF_PINNED_VENV")
    reference = os.environ.get("MMF_REFERENCE_VENV")
    if not pinned or not reference:
        pytest.skip("needs MMF_PINNED_VENV (vLLM 0.13.0) and MMF_REFERENCE_VENV (vLLM 0.33.0)")
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    plugin = tmp_path / "plugin"
    (plugin / "vllm_fl").mkdir(parents=True)
    (plugin / "vllm_fl" / "__init__.py").touch()
    script = str(ROOT / "scripts" / "migrate_model.py")
    proc = subprocess.run([sys.executable, script, "apply", "llama_eagle", "--upstream", str(UPSTREAM),
                           "--plugin", str(plugin)], capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, script, "verify", "llama_eagle", "--plugin", str(plugin), "--run",
                           "--timeout", "300", "--python", pinned, "--reference-python", reference, "--json"],
                          capture_output=True, text=True, timeout=2400)
    assert proc.stdout, proc.stderr[-3000:]
    arch = {a["architecture"]: a for a in json.loads(proc.stdout)["architectures"]}["EagleLlamaForCausalLM"]
    assert arch["checkpoint"].startswith("upstream vLLM 0.33.0 EagleLlamaForCausalLM (validated by its own "
                                         "load_weights), respelled as its load_weights reads it (draft-model-prefix: ")
    assert {lv: arch["levels"][lv]["status"] for lv in arch["levels"]} == {
        "import": "pass", "construct": "pass", "load": "pass", "forward": "pass", "match": "pass"}, arch["levels"]
    assert arch["reference"] == "vllm-0.33.0"


def test_the_peer_of_an_architecture_is_the_class_upstreams_registry_serves_it_with(monkeypatch):
    """NemotronHPuzzleForCausalLM: no transformers class of its own, and upstream's class cannot be built on CPU (its
    non-gated experts), so nothing named its checkpoint. Upstream's registry serves it with NemotronHForCausalLM, which
    transformers has: that class names the checkpoint and is the Hugging Face reference. No peer for an architecture
    transformers has, one upstream serves with a class of its own name, or one whose class transformers lacks. Pure
    (stand-in modules)."""
    import types

    monkeypatch.syspath_prepend(str(VERIFY))
    import _runtime_worker

    tf = types.ModuleType("transformers")
    tf.NemotronHForCausalLM = tf.LlamaForCausalLM = object
    registry = types.ModuleType("vllm.model_executor.models.registry")
    lazy = types.SimpleNamespace
    registry.ModelRegistry = lazy(models={
        "NemotronHPuzzleForCausalLM": lazy(module_name="nemotron_h", class_name="NemotronHForCausalLM"),
        "NemotronHForCausalLM": lazy(module_name="nemotron_h", class_name="NemotronHForCausalLM"),
        "StepVLForConditionalGeneration": lazy(module_name="step_vl", class_name="StepVLForConditionalGeneration"),
        "SomeNewForCausalLM": lazy(module_name="x", class_name="XForCausalLM"),
        "ImportedForCausalLM": lazy(model_cls=type("LlamaForCausalLM", (), {}))})
    for name, mod in (("transformers", tf), ("vllm", types.ModuleType("vllm")),
                      ("vllm.model_executor", types.ModuleType("vllm.model_executor")),
                      ("vllm.model_executor.models", types.ModuleType("vllm.model_executor.models")),
                      ("vllm.model_executor.models.registry", registry)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(_runtime_worker, "hf_class_name", lambda arch: None)
    peer = _runtime_worker.upstream_peer
    assert peer("NemotronHPuzzleForCausalLM") == "NemotronHForCausalLM"
    assert peer("ImportedForCausalLM") == "LlamaForCausalLM"
    assert peer("NemotronHForCausalLM") is None  # transformers has it: its own class
    assert peer("StepVLForConditionalGeneration") is None  # served with a class of its own name
    assert peer("SomeNewForCausalLM") is None  # transformers lacks the class upstream serves it with
    assert peer("UnknownForCausalLM") is None


HELD_UNDER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
from _runtime_load import upstream_checkpoint
from checkpoint_layouts import LAYOUTS

class Fused(torch.nn.Module):  # a stacked layer as vLLM builds one: its parts' sizes in output_sizes
    def __init__(self):
        super().__init__()
        self.output_sizes = [4, 2, 2]
        self.weight = torch.nn.Parameter(torch.zeros(8, 4))

class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv_proj = Fused()

class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.vision_model = Block()
        self.language_model = Block()

table = {e["id"]: e for e in LAYOUTS}
out = {}
for layout in ("split", "tower-qkv-held"):
    ck, expected = upstream_checkpoint(Model(), 0, table[layout])
    out[layout] = {k: list(v.shape) for k, v in sorted(ck.items())}
    if layout == "tower-qkv-held":
        out["whole_equal"] = bool((ck["vision_model.qkv_proj.weight"] == expected["vision_model.qkv_proj.weight"]).all())
        out["k_rows"] = bool((ck["language_model.k_proj.weight"] == expected["language_model.qkv_proj.weight"][4:6]).all())
print(json.dumps(out))
"""


@pytest.mark.skipif(not REFERENCE.exists(), reason="needs the reference venv (torch)")
def test_a_tower_released_fused_keeps_its_stacked_layers_whole_beside_a_split_language_model(tmp_path):
    """Layout tower-qkv-held (``held_under``): Step-3.7's Perception Encoder holds q/k/v in one released tensor
    (step3p7.py's mapper: .attn.in_proj_weight -> .attn.qkv_proj.weight) while its language model's own mapper stacks
    the parts: the derived checkpoint keeps vision_model.*.qkv_proj whole with the parameter's values and splits the
    language model's by output_sizes (the conventional layout splits both, experts-stacked-qkv-held keeps both)."""
    proc = subprocess.run([str(REFERENCE), "-c", HELD_UNDER, str(VERIFY)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **ENV})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    lm = {"language_model.q_proj.weight": [4, 4], "language_model.k_proj.weight": [2, 4],
          "language_model.v_proj.weight": [2, 4]}
    assert got["tower-qkv-held"] == {**lm, "vision_model.qkv_proj.weight": [8, 4]}
    assert got["split"] == {**lm, **{k.replace("language_model", "vision_model"): v for k, v in lm.items()}}
    assert got["whole_equal"] and got["k_rows"]
