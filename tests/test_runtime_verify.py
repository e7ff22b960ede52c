"""``migrate_model.py verify --run``: the runtime levels (import, construct, load, forward, match).

The pure halves (tiny configs, record parsing, result shaping, likely rules, exit codes) run
everywhere. The real halves build migrated models on the real vLLM 0.13.0 on CPU in the venv named
by $MMF_PINNED_VENV (and compare with upstream vLLM in $MMF_REFERENCE_VENV); they migrate llama
from the upstream vLLM source in ~/.cache/mmf/src/vllm-0.33.0 (or $MMF_UPSTREAM) and skip without.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flagos_migrate.verify import runtime
from flagos_migrate.verify.runtime_tiny import (
    HEAD_DIM,
    VOCAB,
    prompt_ids,
    scale_sections,
    special_ids,
    tiny_config,
)

from tests.worker_helpers import run_in_worker

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "migrate_model.py"
EXAMPLE_PLUGIN = ROOT / "examples" / "plugin"
UPSTREAM = Path(os.environ.get("MMF_UPSTREAM") or Path.home() / ".cache" / "mmf" / "src" / "vllm-0.33.0")

# ------------------------------------------------------------------------------------ tiny configs

QWEN3 = {"model_type": "qwen3", "hidden_size": 4096, "intermediate_size": 12288, "num_attention_heads": 32,
         "num_key_value_heads": 8, "head_dim": 128, "num_hidden_layers": 36, "vocab_size": 151936,
         "max_position_embeddings": 40960, "bos_token_id": 151643, "eos_token_id": 151645,
         "tie_word_embeddings": False, "id2label": {0: "LABEL_0"}}

QWEN25_VL = {
    "model_type": "qwen2_5_vl", "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
    "text_config": {"hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28,
                    "num_key_value_heads": 4, "num_hidden_layers": 28, "vocab_size": 152064,
                    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "eos_token_id": 151645},
    "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                      "out_hidden_size": 3584, "fullatt_block_indexes": [7, 15, 23, 31], "patch_size": 14,
                      "spatial_merge_size": 2},
}

QWEN3_NEXT = {"hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 2, "num_hidden_layers": 48,
              "num_experts": 512, "num_experts_per_tok": 10, "moe_intermediate_size": 512, "vocab_size": 151936,
              "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"] * 12,
              "linear_num_key_heads": 16, "linear_num_value_heads": 32}


def test_tiny_dense_config_is_small_and_keeps_gqa():
    tiny = tiny_config(QWEN3)
    assert (tiny["hidden_size"], tiny["num_hidden_layers"], tiny["vocab_size"]) == (64, 2, VOCAB)
    assert tiny["num_attention_heads"] == 4 and tiny["num_key_value_heads"] == 2  # GQA stays GQA
    assert tiny["head_dim"] == HEAD_DIM
    assert tiny["bos_token_id"] < VOCAB and tiny["eos_token_id"] < VOCAB and tiny["bos_token_id"] != tiny["eos_token_id"]
    assert QWEN3["hidden_size"] == 4096  # pure: the input is untouched


def test_tiny_config_keeps_mha_as_mha():
    tiny = tiny_config({"hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 16})
    assert tiny["num_key_value_heads"] == tiny["num_attention_heads"]


def test_tiny_vlm_config_has_a_one_block_tower_and_rope_sections_for_the_small_head():
    tiny = tiny_config(QWEN25_VL)
    text, vision = tiny["text_config"], tiny["vision_config"]
    assert vision["depth"] == 1 and vision["fullatt_block_indexes"] == [0]
    assert vision["out_hidden_size"] == text["hidden_size"] == 64
    assert vision["patch_size"] == 14 and vision["spatial_merge_size"] == 2  # structure kept
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    assert sum(text["rope_scaling"]["mrope_section"]) == head_dim // 2
    ids = {tiny[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id")}
    assert len(ids) == 3 and max(ids) < text["vocab_size"]


def test_a_tower_whose_config_derives_heads_from_its_width_keeps_a_width_giving_one():
    """Granite 4 Vision's config gives its Window Q-Former vision hidden_size // 64 heads: the tiny 32 gave 0."""
    granite = {"model_type": "granite4_vision", "text_config": {"model_type": "granite", "hidden_size": 4096,
                                                                "num_attention_heads": 32, "num_hidden_layers": 40},
               "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152, "num_attention_heads": 16,
                                 "intermediate_size": 4304, "num_hidden_layers": 27}}
    vision = tiny_config(granite)["vision_config"]
    assert vision["hidden_size"] // 64 == 1 and vision["num_attention_heads"] == 2 and vision["num_hidden_layers"] == 1
    other = tiny_config({**granite, "model_type": "llava"})["vision_config"]
    assert other["hidden_size"] == 32 and other["intermediate_size"] == vision["intermediate_size"]


def test_a_timm_tower_keeps_its_architectures_width():
    """Gemma 3n's MobileNetV5 (timm) returns 2048 channels whatever the config says; upstream reshapes them by
    vision_config.hidden_size: the tiny 32 failed the image step on both sides."""
    gemma3n = {"model_type": "gemma3n", "text_config": {"model_type": "gemma3n_text", "hidden_size": 2048,
                                                          "num_attention_heads": 8, "num_hidden_layers": 30},
               "vision_config": {"model_type": "gemma3n_vision", "architecture": "mobilenetv5_300m_enc",
                                 "hidden_size": 2048}}
    assert tiny_config(gemma3n)["vision_config"]["hidden_size"] == 2048
    assert tiny_config({**gemma3n, "model_type": "llava"})["vision_config"]["hidden_size"] == 32


def test_a_dual_encoder_scattering_image_rows_into_text_embeddings_keeps_one_width():
    """SigLIP as vLLM serves it scatters embed_multimodal's pooled rows into the text inputs_embeds (no projection
    between): the tiny 32-wide tower against the 64-wide text model failed the image step ('Error during masked
    scatter operation') on both sides; the released widths are one (768: tower, text, text projection_size)."""
    siglip = {"model_type": "siglip",
              "text_config": {"model_type": "siglip_text_model", "hidden_size": 768, "num_attention_heads": 12,
                              "intermediate_size": 3072, "num_hidden_layers": 12, "projection_size": 768},
              "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 768, "num_attention_heads": 12,
                                "intermediate_size": 3072, "num_hidden_layers": 12}}
    tiny = tiny_config(siglip)
    assert tiny["vision_config"]["hidden_size"] == tiny["text_config"]["hidden_size"] == 64
    assert tiny["text_config"]["projection_size"] == 64  # the width inputs_embeds are padded to
    assert tiny["vision_config"]["hidden_size"] % tiny["vision_config"]["num_attention_heads"] == 0
    assert tiny_config({**siglip, "model_type": "clip"})["vision_config"]["hidden_size"] == 32  # CLIP projects


def test_tiny_hybrid_config_keeps_one_layer_of_each_type_and_few_experts():
    tiny = tiny_config(QWEN3_NEXT)
    assert tiny["layer_types"] == ["linear_attention", "full_attention"]
    assert tiny["num_hidden_layers"] == 2
    assert tiny["num_experts"] == 4 and tiny["num_experts_per_tok"] == 2
    assert tiny["linear_num_value_heads"] % tiny["linear_num_key_heads"] == 0
    assert tiny["linear_num_value_heads"] > tiny["linear_num_key_heads"]  # grouped stays grouped


def test_tiny_config_keeps_as_many_linear_value_heads_as_key_heads():
    # AliceAI's KDA layer refuses unequal key/value head counts
    tiny = tiny_config({"hidden_size": 2048, "num_attention_heads": 16, "linear_num_key_heads": 32,
                        "linear_num_value_heads": 32})
    assert tiny["linear_num_key_heads"] == tiny["linear_num_value_heads"] == 2


def test_tiny_config_per_layer_lists_follow_the_kept_layers():
    # gemma3n: a size per layer and a sparsity per layer, for 35 layers
    cfg = {"hidden_size": 2048, "num_attention_heads": 8, "num_hidden_layers": 5, "num_kv_shared_layers": 3,
           "layer_types": ["sliding_attention"] * 4 + ["full_attention"],
           "intermediate_size": [16384] * 5, "activation_sparsity_pattern": [0.95, 0.95, 0.0, 0.0, 0.0]}
    tiny = tiny_config(cfg)
    assert tiny["layer_types"] == ["sliding_attention", "full_attention"] and tiny["num_hidden_layers"] == 2
    assert tiny["intermediate_size"] == [128, 128]
    assert tiny["activation_sparsity_pattern"] == [0.95, 0.0]  # layers 0 and 4
    assert tiny["num_kv_shared_layers"] == 0


def test_tiny_config_keeps_sizes_consistent_with_each_other():
    gptj = tiny_config({"n_embd": 4096, "n_head": 16, "n_layer": 28, "rotary_dim": 64})
    assert gptj["rotary_dim"] == 4  # a quarter of the 16-wide head, as 64 of 256 was
    # MiMo-V2-Flash rotates 0.334 of its 192-wide head (64): of 16 that is 5, odd; the head doubles to 32 (10)
    mimo = tiny_config({"hidden_size": 4096, "num_attention_heads": 64, "head_dim": 192, "partial_rotary_factor": 0.334})
    assert mimo["head_dim"] == 32
    quarter = tiny_config({"hidden_size": 4096, "num_attention_heads": 32, "head_dim": 256,
                           "rope_parameters": {"partial_rotary_factor": 0.25}})
    assert quarter["head_dim"] == 16  # an even share stays on the tiny head
    mamba2 = tiny_config({"hidden_size": 4096, "num_hidden_layers": 64, "expand": 2, "num_heads": 128,
                          "head_dim": 64, "n_groups": 8, "state_size": 128, "time_step_rank": 256})
    assert mamba2["num_heads"] * mamba2["head_dim"] == mamba2["expand"] * mamba2["hidden_size"]
    assert mamba2["num_heads"] % mamba2["n_groups"] == 0 and mamba2["state_size"] <= 16
    ernie = tiny_config({"hidden_size": 2560, "num_attention_heads": 20, "moe_num_experts": 64, "moe_k": 6})
    assert ernie["moe_num_experts"] == 4 and ernie["moe_k"] == 2
    falcon = tiny_config({"hidden_size": 4544, "num_attention_heads": 71, "ffn_hidden_size": 18176})
    assert falcon["ffn_hidden_size"] == 4 * falcon["hidden_size"]
    nemotron = tiny_config({"hidden_size": 6144, "num_attention_heads": 48, "num_key_value_heads": None})
    assert nemotron["num_key_value_heads"] == nemotron["num_attention_heads"]


@pytest.mark.parametrize("sections,total", [([16, 24, 24], 8), ([1, 1, 1], 3), ([2, 2], 32), ([8, 12, 12], 16)])
def test_scaled_rope_sections_sum_to_the_target(sections, total):
    out = scale_sections(sections, total)
    assert sum(out) == total and len(out) == len(sections) and min(out) >= 1


def test_scaled_rope_sections_keep_equal_sections_equal():
    # Bailing V3 VL's [T, H, W] = [12, 10, 10]: upstream's Bailing M-RoPE refuses H != W (the construct error)
    assert scale_sections([12, 10, 10], 8) == [4, 2, 2]
    assert scale_sections([16, 24, 24], 8) == [2, 3, 3]


def test_prompt_ids_avoid_special_ids_and_are_deterministic():
    tiny = tiny_config(QWEN25_VL)
    reserved = special_ids(tiny)
    ids = prompt_ids(VOCAB, 12, reserved, seed=0)
    assert len(ids) == 12 and not set(ids) & reserved and all(0 < i < VOCAB for i in ids)
    assert ids == prompt_ids(VOCAB, 12, reserved, seed=0) != prompt_ids(VOCAB, 12, reserved, seed=1)


# ------------------------------------------------------------------------------------ record parsing

RECORD = {
    "registration": ["Qwen3ForCausalLM -> vllm_fl.models.qwen3:Qwen3ForCausalLM",
                     "Evil -> os:system", "garbage", "X -> vllm_fl.models.x:Y; import os"],
    "files": {"vllm_fl/models/qwen3.py": {"role": "model"}, "vllm_fl/configs/qwen3_x.py": {"role": "config"},
              "vllm_fl/configs/../../etc.py": {"role": "config"}},
}


def test_architectures_come_from_the_record_and_only_name_plugin_modules():
    assert runtime.architectures_of(RECORD) == [
        {"architecture": "Qwen3ForCausalLM", "module": "vllm_fl.models.qwen3", "class": "Qwen3ForCausalLM"}]
    assert runtime.config_modules_of(RECORD) == ["vllm_fl.configs.qwen3_x"]


def test_a_registration_apply_found_in_place_still_names_its_architecture(tmp_path):
    """A second apply into the same tree records the registration it found with its line; verify
    must still build it (it said "registers no architecture" and exited 0)."""
    from flagos_migrate.plugin.registration import plan_registration

    init = tmp_path / "__init__.py"
    init.write_text((EXAMPLE_PLUGIN / "vllm_fl" / "__init__.py").read_text())
    regs = [("Gemma3ForCausalLM", "Gemma3ForCausalLM")]
    first = plan_registration(init.read_text(), init, "gemma3", "vllm_fl.models.gemma3", regs, [])
    init.write_text(first.text)
    again = plan_registration(first.text, init, "gemma3", "vllm_fl.models.gemma3", regs, [])
    assert again.added == [] and again.present[0].endswith(")")  # "... (line N)"
    want = [{"architecture": "Gemma3ForCausalLM", "module": "vllm_fl.models.gemma3", "class": "Gemma3ForCausalLM"}]
    assert runtime.architectures_of({"registration": first.added}) == want
    assert runtime.architectures_of({"registration": again.present}) == want
    assert runtime.architectures_of({"registration": [again.present[0] + "; import os"]}) == []


# ------------------------------------------------------------------------------------ result shaping

SPEC = {"architecture": "A", "module": "vllm_fl.models.a", "class": "A"}


def _pinned(**levels):
    full = {lv: {"status": "skipped", "reason": "an earlier level failed"} for lv in runtime.LEVELS[:-1]}
    full.update({k: {"status": v[0], "reason": v[1]} for k, v in levels.items()})
    return {"architecture": "A", "levels": full, "first_error": None, "notes": []}


PASS = ("pass", None)


def test_a_construct_failure_names_the_level_and_the_likely_rule():
    pinned = _pinned(**{"import": PASS, "construct": ("fail", "TypeError: x")})
    pinned["first_error"] = {"level": "construct", "type": "TypeError",
                             "message": "get_rope() got an unexpected keyword argument 'mrope_positions_factor'",
                             "traceback_tail": "Traceback ..."}
    arch = runtime.shape_architecture(SPEC, pinned, None, want_match=True)
    assert arch["first_error"]["level"] == "construct" and arch["first_error"]["likely_rule"] == "P6"
    assert arch["levels"]["match"]["status"] == "skipped"
    report = {"ok": runtime.report_ok([arch]), "architectures": [arch]}
    assert runtime.exit_code(report) == 1


def test_match_within_and_beyond_the_tolerance():
    pinned = _pinned(**{lv: PASS for lv in ("import", "construct", "load", "forward")})
    good = runtime.shape_architecture(SPEC, pinned, {"reference": "vllm-0.33.0", "max_abs_logit_diff": 2e-6},
                                      want_match=True)
    assert good["levels"]["match"]["status"] == "pass" and good["reference"] == "vllm-0.33.0"
    assert good["max_abs_logit_diff"] == 2e-6 and good["first_error"] is None
    assert runtime.exit_code({"ok": runtime.report_ok([good])}) == 0
    bad = runtime.shape_architecture(SPEC, pinned, {"reference": "transformers-5.2", "max_abs_logit_diff": 0.5},
                                     want_match=True)
    assert bad["levels"]["match"]["status"] == "fail" and bad["first_error"]["level"] == "match"
    assert runtime.exit_code({"ok": runtime.report_ok([bad])}) == 1
    assert runtime.shape_architecture(SPEC, pinned, None, want_match=False)["levels"]["match"] == \
        {"status": "skipped", "reason": "no --reference-python given"}


def test_the_hugging_face_stand_in_is_adjusted_only_where_upstream_vllm_leaves_something_out():
    """phimoe failed match (0.41, transformers-5.20.2): transformers' PhimoeForCausalLM adds lm_head.bias,
    which upstream vLLM (and the pinned one) loads and never adds. Only the Hugging Face stand-in is
    adjusted, with the upstream lines as evidence, and the report says so."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"))
    from reference_divergences import REFERENCE_DIVERGENCES, adjustments_for

    (adj,) = adjustments_for("PhiMoEForCausalLM", "transformers-5.20.2")
    assert adj["parameter"] == "lm_head.bias" and adj["action"] == "zeroed"
    assert adj["evidence"][0].startswith("vllm/model_executor/models/phimoe.py:580: ")
    assert adjustments_for("PhiMoEForCausalLM", "vllm-0.33.0") == []  # upstream itself runs as it is
    assert adjustments_for("MixtralForCausalLM", "transformers-5.20.2") == []
    pinned = _pinned(**{lv: PASS for lv in ("import", "construct", "load", "forward")})
    arch = runtime.shape_architecture(SPEC, pinned, {"reference": "transformers-5.20.2", "max_abs_logit_diff": 1e-6,
                                                     "reference_adjustments": [adj]}, want_match=True)
    assert arch["levels"]["match"]["status"] == "pass" and arch["reference_adjustments"] == [adj]
    if UPSTREAM.is_dir():  # each line of evidence is in upstream's source at that line
        for entry in REFERENCE_DIVERGENCES.values():
            for ev in entry["evidence"]:
                path, line, text = ev.split(":", 2)
                assert text.strip() in (UPSTREAM / path).read_text().splitlines()[int(line) - 1], ev


COHERE_WINDOW = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import torch
from transformers import Cohere2MoeConfig, Cohere2MoeForCausalLM
from reference_divergences import adjustments_for
from _runtime_forward import _hf_logits
work = sys.argv[2]
cfg = Cohere2MoeConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=4, head_dim=16, num_hidden_layers=2,
                       intermediate_size=32, num_experts=4, num_experts_per_tok=2, vocab_size=128, sliding_window=4,
                       layer_types=["sliding_attention", "full_attention"], mlp_layer_types=["sparse", "sparse"],
                       architectures=["Cohere2MoeForCausalLM"])
torch.manual_seed(0)
Cohere2MoeForCausalLM(cfg).save_pretrained(work)
ids = list(range(3, 13))
adj = adjustments_for("Cohere2MoeForCausalLM", "transformers-5")
adjusted, _, applied = _hf_logits("Cohere2MoeForCausalLM", work, ids, adj)
plain, _, _ = _hf_logits("Cohere2MoeForCausalLM", work, ids)
cfg.sliding_window = 5  # what upstream vLLM's sliding layers see
wider = Cohere2MoeForCausalLM.from_pretrained(work, config=cfg, dtype=torch.float32, attn_implementation="eager").eval()
with torch.no_grad():
    five = wider(input_ids=torch.tensor([ids])).logits[0].float()
print(json.dumps({"applied": [a["parameter"] + a["action"] for a in applied],
                  "vs_wider": float((adjusted - five).abs().max()),
                  "rows_changed": [int(i) for i in ((adjusted - plain).abs().max(-1).values > 1e-6).nonzero().flatten()]}))
"""


def test_cohere2_moes_stand_in_sees_the_window_upstream_vllm_sees(tmp_path):
    """cohere2_moe failed match (0.048, transformers-5.20.2), only at positions past the window: upstream's
    sliding layers see sliding_window + 1 tokens (cohere2_moe.py:256), transformers' sliding_window. The stand-in's
    window is widened by one, and that is all that changes: exactly the model with sliding_window + 1."""
    venv = os.environ.get("MMF_REFERENCE_VENV")
    if not venv:
        pytest.skip("MMF_REFERENCE_VENV (a venv with upstream vLLM and transformers 5) is not set")
    python = str(Path(venv) / "bin" / "python") if Path(venv).is_dir() else venv
    verify = Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"
    proc = subprocess.run([python, "-c", COHERE_WINDOW, str(verify), str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["applied"] == ["config.sliding_window+1"]
    assert out["vs_wider"] == 0.0
    assert out["rows_changed"] and min(out["rows_changed"]) >= 4  # only positions with more than 4 tokens behind


def test_a_gpu_only_forward_is_skipped_never_passed_and_does_not_fail_the_run():
    pinned = _pinned(**{"import": PASS, "construct": PASS, "load": PASS,
                        "forward": ("skipped", "needs GPU (triton kernel in chunk_gated_delta_rule)")})
    arch = runtime.shape_architecture(SPEC, pinned, None, want_match=True)
    assert arch["levels"]["forward"]["status"] == "skipped"
    assert arch["levels"]["match"] == {"status": "skipped", "reason": "needs GPU (triton kernel in chunk_gated_delta_rule)"}
    assert runtime.exit_code({"ok": runtime.report_ok([arch])}) == 0
    lines = runtime.text_lines({"architectures": [arch]})
    assert len(lines) == 5 and "forward" in lines[3] and "needs GPU" in lines[3]


@pytest.mark.parametrize("message,rule", [
    ("'ColumnParallelLinear' object has no attribute 'output_sizes'", "P8"),
    ("weight_loader_v2() takes 3 positional arguments but 4 were given", "P22"),
    ("get_language_model() returned None: the multimodal path has no language model", "P4"),
    ("'NoneType' object has no attribute 'embed_input_ids'", "P4"),
    ("get_rope() got an unexpected keyword argument 'mrope_positions_factor'", "P6"),
    ("'VllmConfig' object has no attribute 'kernel_config'", "P9"),
    ("1 parameter(s) not (fully) loaded: model.layers.1.mlp.down_proj.weight", "P22"),
    # paddleocr_vl / pixtral before P7 passed their compiled layers' positionals by name (likely rule None)
    ("_support_torch_compile.<locals>.__init__() takes 1 positional argument but 2 positional arguments (and 1 "
     "keyword-only argument) were given", "P7"),
    ("ValueError: Unrecognized configuration class <class 'vllm_fl.configs.tf5_gemma4.Gemma4VisionConfig'> for this "
     "kind of AutoModel: AutoModel.", "P41"),
    ("StrictDataclassDefinitionError: Class 'DoryConfig' must be a dataclass before applying @strict.", "P5"),
    ("Eagle3 is only supported for ['llama', 'qwen', 'minicpm', 'gpt_oss'] models. Got "
     "self.target_model_config.hf_text_config.model_type='deepseek_v3'", "P38"),
])
def test_likely_rules_of_runtime_failures(message, rule):
    kind = "LevelError" if "loaded" in message or "returned None" in message else \
        ("TypeError" if "()" in message and "object" not in message else "AttributeError")
    assert runtime.likely_rule("construct", {"type": kind, "message": message}) == rule


def test_an_auto_class_refusing_a_config_transformers_has_is_not_p41():
    message = "Unrecognized configuration class <class 'transformers.models.bert.BertConfig'> for this kind of AutoModel"
    assert runtime.likely_rule("construct", {"type": "ValueError", "message": message}) is None


def test_gpu_only_packages_are_environment_problems():
    flag_gems = {"level": "import", "type": "ModuleNotFoundError", "message": "No module named 'flag_gems'"}
    assert runtime.environment_problem(flag_gems) == "flag_gems"
    assert runtime.environment_problem({**flag_gems, "message": "No module named 'vllm.foo'"}) is None
    assert runtime.environment_problem({**flag_gems, "level": "forward", "type": "RuntimeError",
                                        "message": "flag_gems kernel failed"}) is None
    # an optional third-party package this venv lacks, at any level (OpenVLA needs timm at build)
    timm = {"level": "construct", "type": "ImportError",
            "message": "Please install timm to use OpenVLA. OpenVLA verification used timm==0.9.10."}
    assert runtime.environment_problem(timm) == "timm"
    # transformers' own wording names the package after "pip install", not after "install it" (gemma3n_mm)
    wrapper = {**timm, "message": "TimmWrapperModel requires the timm library but it was not found in your environment. "
                                  "You can install it with pip:\n`pip install timm`. Please note that you may need to restart"}
    assert runtime.environment_problem(wrapper) == "timm"
    assert runtime.environment_problem({**timm, "message": "No module named 'vllm.model_executor.layers.foo'"}) is None
    assert runtime.environment_problem({**timm, "message": "cannot import name 'X' from 'vllm.config'"}) is None


def test_a_real_failure_wins_over_an_environment_problem_in_the_exit_code():
    pinned = _pinned(**{"import": PASS, "construct": ("fail", "TypeError: x")})
    failed = runtime.shape_architecture(SPEC, pinned, None, want_match=False)
    assert runtime.exit_code({"ok": False, "environment_error": {"message": "m"}, "architectures": [failed]}) == 1
    assert runtime.exit_code({"ok": False, "environment_error": {"message": "m"}, "architectures": []}) == 2


def test_verify_run_on_a_record_without_architectures_says_there_is_nothing_to_build(tmp_path):
    plugin = tmp_path / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    record = plugin / "vllm_fl" / "models" / ".migration" / "enc.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"format": 1, "files": {"vllm_fl/models/enc.py": {"role": "model"}}, "registration": []}))
    proc = subprocess.run([sys.executable, str(SCRIPT), "verify", "enc", "--plugin", str(plugin), "--run",
                           "--python", sys.executable, "--json"], capture_output=True, text=True, timeout=120)
    assert "registers no architecture" in proc.stderr and "registers no vllm_fl architecture" not in proc.stderr
    assert "Traceback" not in proc.stderr


def _mini_plugin(tmp_path):
    """The example plugin with a migration record registering the bundled mini model."""
    plugin = tmp_path / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    record = plugin / "vllm_fl" / "models" / ".migration" / "mini.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"format": 1, "files": {},
                                  "registration": ["MiniForCausalLM -> vllm_fl.models.mini:MiniForCausalLM"]}))
    return plugin


def test_verify_run_without_vllm_exits_2_with_a_hint(tmp_path):
    plugin = _mini_plugin(tmp_path)
    proc = subprocess.run([sys.executable, str(SCRIPT), "verify", "mini", "--plugin", str(plugin), "--run",
                           "--python", sys.executable, "--json"], capture_output=True, text=True, timeout=120)
    if proc.returncode == 0:
        pytest.skip("this Python has vLLM")
    assert proc.returncode == 2
    assert "error: vLLM is not importable" in proc.stderr and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------ real runs

BROKEN = textwrap.dedent('''
    """Deliberately broken migrations of llama (test fixture, written by the test)."""
    import torch
    from vllm.model_executor.layers.layernorm import RMSNorm

    from vllm_fl.models.llama import LlamaForCausalLM


    class DropsATensor(LlamaForCausalLM):
        """load_weights loses one checkpoint tensor (as a wrong mapper or a skipped shard would)."""

        def load_weights(self, weights):
            return super().load_weights((n, w) for n, w in weights if "layers.1.mlp.down_proj" not in n)


    class PassesAnUpstreamKeyword(LlamaForCausalLM):
        """Builds a layer with a keyword only upstream's class takes (as an unported call would)."""

        def __init__(self, *, vllm_config, prefix=""):
            extra_norm = RMSNorm(8, eps=1e-6, has_weight=True, upstream_only=True)
            super().__init__(vllm_config=vllm_config, prefix=prefix)
            self.extra_norm = extra_norm


    class ShiftsLogits(LlamaForCausalLM):
        """Runs, but computes something else than upstream (as a wrong rewrite would)."""

        def compute_logits(self, hidden_states):
            return super().compute_logits(hidden_states) + 0.01


    class PerturbsOneWeight(LlamaForCausalLM):
        """Loads the checkpoint exactly, then runs with one weight changed by 0.05 (as a wrong
        post-load transform would): only match can see it."""

        def forward(self, *args, **kwargs):
            if not getattr(self, "_perturbed", False):
                self._perturbed = True
                with torch.no_grad():
                    self.model.layers[1].mlp.down_proj.weight[0, 0] += 0.05
            return super().forward(*args, **kwargs)
''')


def _venv(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} (a venv with real vLLM) is not set")
    return value


@pytest.fixture(scope="module")
def llama_plugin(tmp_path_factory):
    """A plugin with llama migrated by apply, plus deliberately broken variants registered for the
    same architecture (the report has one entry per registration)."""
    _venv("MMF_PINNED_VENV")
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    plugin = tmp_path_factory.mktemp("rt") / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    proc = subprocess.run([sys.executable, str(SCRIPT), "apply", "llama", "--upstream", str(UPSTREAM),
                           "--plugin", str(plugin), "--all-archs", "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    (plugin / "vllm_fl" / "models" / "broken_llama.py").write_text(BROKEN)
    # like the real plugin: its top-level __init__ imports a GPU-only package; verify must not run it
    init = plugin / "vllm_fl" / "__init__.py"
    init.write_text("import flag_gems  # GPU-only\n" + init.read_text())
    record_path = plugin / "vllm_fl" / "models" / ".migration" / "llama.json"
    record = json.loads(record_path.read_text())
    record["registration"] = ["LlamaForCausalLM -> vllm_fl.models.llama:LlamaForCausalLM"] + [
        f"LlamaForCausalLM -> vllm_fl.models.broken_llama:{cls}"
        for cls in ("DropsATensor", "PassesAnUpstreamKeyword", "ShiftsLogits", "PerturbsOneWeight")]
    record_path.write_text(json.dumps(record))
    return plugin


def _run_verify(plugin: Path, *extra: str) -> tuple[int, dict, str]:
    cmd = [sys.executable, str(SCRIPT), "verify", "llama", "--plugin", str(plugin), "--run",
           "--python", os.environ["MMF_PINNED_VENV"], "--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    try:
        payload = json.loads(proc.stdout)
    except ValueError:
        payload = {}
    return proc.returncode, payload, proc.stderr


@pytest.fixture(scope="module")
def llama_report(llama_plugin):
    extra = ("--reference-python", os.environ["MMF_REFERENCE_VENV"]) if os.environ.get("MMF_REFERENCE_VENV") else ()
    return _run_verify(llama_plugin, *extra)


def test_real_llama_builds_loads_and_runs_and_broken_variants_fail_at_their_level(llama_report, llama_plugin):
    code, report, stderr = llama_report
    assert report, stderr[-3000:]
    assert code == 1  # a level failed (the broken variants)
    by_class = {a["class"]: a for a in report["architectures"]}
    good = by_class["LlamaForCausalLM"]
    for lv in ("import", "construct", "load", "forward"):
        assert good["levels"][lv]["status"] == "pass", (lv, good["levels"][lv], good["first_error"])
    assert good["first_error"] is None
    assert good["load_stats"]["fused_equal"] >= 4  # qkv_proj and gate_up_proj of both layers
    assert good["built_from"]["pinned"].startswith(str(llama_plugin))  # the migrated file ran
    if os.environ.get("MMF_REFERENCE_VENV"):
        assert good["levels"]["match"]["status"] == "pass" and good["max_abs_logit_diff"] <= good["tolerance"]
        assert good["reference"].startswith(("vllm-", "transformers-"))
        # the reference ran upstream's own file, in its venv: two different codes gave these logits
        ref_file = good["built_from"]["reference"]
        assert "site-packages" in ref_file and not ref_file.startswith(str(llama_plugin)), ref_file
        assert Path(ref_file).read_text() != Path(good["built_from"]["pinned"]).read_text()

    drops = by_class["DropsATensor"]
    assert [drops["levels"][lv]["status"] for lv in runtime.LEVELS] == ["pass", "pass", "fail", "skipped", "skipped"]
    assert "layers.1.mlp.down_proj" in drops["first_error"]["message"]
    assert drops["first_error"]["likely_rule"] == "P22"

    kw = by_class["PassesAnUpstreamKeyword"]
    assert [kw["levels"][lv]["status"] for lv in runtime.LEVELS[:3]] == ["pass", "fail", "skipped"]
    assert "upstream_only" in kw["first_error"]["message"] and kw["first_error"]["likely_rule"] == "P6"
    assert "Traceback" in kw["first_error"]["traceback_tail"] or "line" in kw["first_error"]["traceback_tail"]

    shifted = by_class["ShiftsLogits"]
    assert [shifted["levels"][lv]["status"] for lv in runtime.LEVELS[:4]] == ["pass"] * 4
    if os.environ.get("MMF_REFERENCE_VENV"):  # the comparison sees a 0.01 shift of every logit
        assert shifted["levels"]["match"]["status"] == "fail"
        assert shifted["max_abs_logit_diff"] == pytest.approx(0.01, abs=1e-4)
        assert shifted["first_error"]["level"] == "match"

    perturbed = by_class["PerturbsOneWeight"]
    assert [perturbed["levels"][lv]["status"] for lv in runtime.LEVELS[:4]] == ["pass"] * 4
    if os.environ.get("MMF_REFERENCE_VENV"):  # one weight off by 0.05 shows in the logits
        assert perturbed["levels"]["match"]["status"] == "fail" and perturbed["max_abs_logit_diff"] > 1e-3


def test_a_module_that_needs_a_gpu_only_package_is_an_environment_problem_exit_2(tmp_path):
    _venv("MMF_PINNED_VENV")
    plugin = tmp_path / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    (plugin / "vllm_fl" / "models" / "gems.py").write_text(
        "import flag_gems  # the plugin's GPU kernels\n\n\nclass GemsForCausalLM:\n    pass\n")
    record = plugin / "vllm_fl" / "models" / ".migration" / "gems.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"format": 1, "files": {},
                                  "registration": ["LlamaForCausalLM -> vllm_fl.models.gems:GemsForCausalLM"]}))
    proc = subprocess.run([sys.executable, str(SCRIPT), "verify", "gems", "--plugin", str(plugin), "--run",
                           "--python", os.environ["MMF_PINNED_VENV"], "--json"],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error:" in proc.stderr and "hint:" in proc.stderr and "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert "flag_gems" in report["environment_error"]["message"]
    arch = report["architectures"][0]
    assert arch["levels"]["import"]["status"] == "skipped" and arch["first_error"] is None


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_a_killed_verify_leaves_no_worker_running(tmp_path, sig):
    import signal
    import time

    _venv("MMF_PINNED_VENV")
    plugin = _mini_plugin(tmp_path)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "verify", "mini", "--plugin", str(plugin), "--run",
                             "--python", os.environ["MMF_PINNED_VENV"], "--json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    deadline = time.monotonic() + 180
    while worker is None and time.monotonic() < deadline and proc.poll() is None:
        for child in _children(proc.pid):
            try:
                if b"_runtime_worker.py" in Path(f"/proc/{child}/cmdline").read_bytes():
                    worker = child
            except OSError:
                pass
        time.sleep(0.2)
    assert worker is not None, "the worker never started"
    proc.send_signal(getattr(signal, sig))
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        try:  # a zombie (exited, not yet reaped by init) counts as gone
            if Path(f"/proc/{worker}/stat").read_text().split(")")[-1].split()[0] == "Z":
                break
        except OSError:
            break
        time.sleep(0.2)
    state = Path(f"/proc/{worker}/stat").read_text().split(")")[-1].split()[0] if Path(f"/proc/{worker}").exists() else "gone"
    assert state in ("gone", "Z"), f"worker {worker} still running after {sig} of verify ({state})"


def test_config_classes_are_found_by_the_architecture_stem_and_rope_context_is_kept(monkeypatch):
    # the worker's modules import each other by bare name from their directory; standard library only at import
    monkeypatch.syspath_prepend(str(ROOT / "scripts" / "flagos_migrate" / "verify"))
    import _runtime_config as worker
    table = {"chatglm": "ChatGLMConfig", "kimi_vl": "KimiVLConfig", "qwen3_5_moe": "Qwen35Moe"}
    assert worker._by_stem("ChatGLMModel", table) == "ChatGLMConfig"
    assert worker._by_stem("ChatGLMForConditionalGeneration", table) == "ChatGLMConfig"
    assert worker._by_stem("KimiVLForConditionalGeneration", table) == "KimiVLConfig"
    assert worker._by_stem("Qwen3_5MoeForCausalLM", table) == "Qwen35Moe"
    assert worker._by_stem("LlamaForCausalLM", table) is None
    # a config that is itself a text config and holds one too (Isaac): the top-level layer list follows
    isaac = tiny_config({"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32,
                         "layer_types": ["full_attention"] * 32,
                         "text_config": {"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32,
                                         "layer_types": ["full_attention"] * 32}})
    assert len(isaac["layer_types"]) == isaac["num_hidden_layers"] == 2
    llama3 = tiny_config({"hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 131072,
                          "rope_scaling": {"rope_type": "llama3", "original_max_position_embeddings": 8192}})
    assert llama3["max_position_embeddings"] == 8192


XIELU_LOAD = textwrap.dedent('''\
    """check_loaded on vLLM's real XIELU: parameters kept in bfloat16 whatever the model's dtype."""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import torch
    from _runtime_env import _platform_cpu
    _platform_cpu()
    from _runtime_load import check_loaded
    from vllm.model_executor.layers.activation import XIELU

    model = torch.nn.Module()
    model.act_fn = XIELU()  # alpha_p / alpha_n: bfloat16 parameters, pinned and upstream alike
    ckpt = {n: torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * 0.1
            for n, p in model.named_parameters()}
    out = {"dtypes": sorted({str(p.dtype) for p in model.parameters()})}
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.data.copy_(ckpt[n])  # what default_weight_loader does
    out["loaded"] = check_loaded(model, ckpt, None)[0]
    with torch.no_grad():
        model.act_fn.alpha_p.add_(0.5)
    out["wrong"] = check_loaded(model, ckpt, None)[0]
    print(json.dumps(out))
''')


def test_the_load_check_compares_in_the_dtype_a_layer_keeps_its_parameters(tmp_path):
    """apertus failed load on XIELU's alpha_p/alpha_n: the layer keeps them in bfloat16, so the load
    rounds the fp32 checkpoint; the harness compared in fp32 (its bug, not the migration's)."""
    out = run_in_worker(XIELU_LOAD, timeout=600)
    assert out["dtypes"] == ["torch.bfloat16"]
    assert out["loaded"] == []
    assert out["wrong"] == ["act_fn.alpha_p differs from its checkpoint tensor act_fn.alpha_p"]


DROPPED_LOAD = textwrap.dedent('''\
    """check_loaded with a checkpoint tensor the model has no parameter for (colpali's embedding_proj_layer.bias)."""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import torch
    from _runtime_load import check_loaded
    from reference_divergences import dropped_by_upstream

    model = torch.nn.Module()
    model.custom_text_proj = torch.nn.Linear(8, 4, bias=False)
    ckpt = {"custom_text_proj.weight": torch.randn(4, 8), "embedding_proj_layer.bias": torch.randn(4)}
    with torch.no_grad():
        model.custom_text_proj.weight.copy_(ckpt["custom_text_proj.weight"])
    lost = check_loaded(model, ckpt, None)[0]
    problems, stats = check_loaded(model, ckpt, None, (), dropped_by_upstream("ColPaliForRetrieval"))
    other = check_loaded(model, ckpt, None, (), dropped_by_upstream("PaliGemmaForConditionalGeneration"))[0]
    print(json.dumps({"lost": lost, "dropped": problems, "stats": stats.get("dropped_as_upstream"), "other": other}))
''')


def test_a_tensor_upstreams_own_file_never_loads_is_no_loss_and_is_said():
    """colpali failed load: upstream's file builds custom_text_proj without a bias (the config names embedding_dim)
    and skips the Hugging Face checkpoint's embedding_proj_layer.bias; the migrated file does the same. Only the
    table's names for that architecture are excused (and the HF stand-in zeroes the bias, so it computes alike)."""
    out = run_in_worker(DROPPED_LOAD, timeout=600)
    lost = ["the checkpoint holds 4 more values than the model's parameters: some checkpoint tensors were not loaded"]
    assert out["lost"] == lost and out["other"] == lost
    assert out["dropped"] == [] and out["stats"] == ["embedding_proj_layer.bias"]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"))
    from reference_divergences import adjustments_for

    assert [a["parameter"] for a in adjustments_for("ColPaliForRetrieval", "transformers-4.57.6")] == [
        "embedding_proj_layer.bias"]


TRANSFORM_LOAD = textwrap.dedent('''\
    """check_loaded + accept_transforms on vLLM's real RMSNorm whose weight loader scales on load, the way
    upstream's longcat_flash.py folds sqrt(hidden/q_lora_rank) into q_a_layernorm (composed_weight_loader)."""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import torch
    from _runtime_env import _platform_cpu
    _platform_cpu()
    from _runtime_load import accept_transforms, check_loaded
    from vllm.model_executor.layers.layernorm import RMSNorm
    from vllm.model_executor.model_loader.weight_utils import composed_weight_loader, default_weight_loader
    from vllm.model_executor.utils import set_weight_attrs

    model = torch.nn.Module()
    model.q_a_layernorm = RMSNorm(32)
    scale = (64 / 32) ** 0.5
    set_weight_attrs(model.q_a_layernorm.weight,
                     {"weight_loader": composed_weight_loader(default_weight_loader, lambda x: x * scale)})
    ckpt = {"q_a_layernorm.weight": torch.randn(32, generator=torch.Generator().manual_seed(0))}
    with torch.no_grad():
        model.q_a_layernorm.weight.fill_(float("nan"))
    model.q_a_layernorm.weight.weight_loader(model.q_a_layernorm.weight, ckpt["q_a_layernorm.weight"])
    params = dict(model.named_parameters())
    out = {}
    problems, stats = check_loaded(model, ckpt, None)
    out["problems"] = problems
    changed = stats["changed"]
    # the pinned vLLM's own class scales the same way (its load_weights: weight.data *= scale)
    same = {"q_a_layernorm.weight": ckpt["q_a_layernorm.weight"] * scale}
    out["as_pinned"] = accept_transforms(problems, changed, params, same, [], {})
    other = {"q_a_layernorm.weight": ckpt["q_a_layernorm.weight"] * 2.0}  # a transform the pinned class does not make
    out["unlike_pinned"] = accept_transforms(problems, changed, params, other, [], {})
    out["no_pinned_class"] = accept_transforms(problems, changed, params, None, [], {})
    out["upstream_side"] = accept_transforms(problems, changed, params, None, [], {}, reference=True)
    print(json.dumps(out))
''')


def test_a_transform_on_load_passes_only_as_the_pinned_vllms_own_class_makes_it():
    """longcat_flash failed load: its q/kv_a_layernorm weights hold sqrt(hidden/rank) * the checkpoint's, which
    the pinned vLLM's own load_weights and upstream's weight loader both fold in on load."""
    out = run_in_worker(TRANSFORM_LOAD, timeout=600)
    wrong = ["q_a_layernorm.weight differs from its checkpoint tensor q_a_layernorm.weight"]
    assert out["problems"] == wrong
    assert out["as_pinned"] == []
    assert out["unlike_pinned"] == wrong and out["no_pinned_class"] == wrong
    assert out["upstream_side"] == []


def test_unloaded_passes_only_as_the_pinned_class_leaves_it_and_without_a_reference_tensor():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"))
    from _runtime_load import unloaded_as_pinned

    head = ((64, 32), 2048, "a1")  # (shape, values left unloaded, digest of which)
    unloaded = {"lm_head.weight": head}
    names = {"model.embed_tokens.weight", "score.weight"}  # a sequence-classification checkpoint: no lm_head
    assert unloaded_as_pinned(unloaded, {"lm_head.weight": head}, names) == ["lm_head.weight"]
    assert unloaded_as_pinned(unloaded, None, names) == []  # no pinned class to compare with
    assert unloaded_as_pinned(unloaded, {}, names) == []  # the pinned class loads it
    assert unloaded_as_pinned(unloaded, {"lm_head.weight": ((64, 32), 1024, "b2")}, names) == []  # other values
    # a tensor the reference class has (dropped from the checkpoint) is missing, whatever the pinned class does
    assert unloaded_as_pinned(unloaded, {"lm_head.weight": head}, names | {"lm_head.weight"}) == []
    layer = {"model.layers.1.mlp.down_proj.weight": head}
    assert unloaded_as_pinned(layer, layer, {"model.language_model.layers.1.mlp.down_proj.weight"}) == []


JAMBA_SEQ_CLS = textwrap.dedent('''\
    """load_checkpoint of JambaForSequenceClassification on the pinned vLLM's own class: it inherits
    JambaForCausalLM's lm_head, which the sequence-classification checkpoint (score.weight) never holds."""
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    work = sys.argv[2]
    os.environ["VLLM_TARGET_DEVICE"] = "cpu"
    from _runtime_env import (_platform_cpu, _vllm_config, _init_distributed, _construct, _resolved_class,
                              _cpu_gemm_keeps_conv_weights)
    _platform_cpu()
    _cpu_gemm_keeps_conv_weights()  # as the worker: the mamba conv1d weight is 3-D
    from _runtime_config import _config_class, _write_tiny_config
    from _runtime_load import load_checkpoint, make_checkpoint

    arch = "JambaForSequenceClassification"
    cfg = _write_tiny_config(arch, _config_class(arch, {})[0], work)
    ckpt = make_checkpoint(arch, cfg, 0)
    out = {"lm_head_in_ckpt": [k for k in ckpt if "lm_head" in k], "score": [k for k in ckpt if "score" in k]}
    vc = _vllm_config(work)
    _init_distributed(vc)
    cls = _resolved_class(vc)

    def attempt(c, builtin):
        notes = []
        fresh = _vllm_config(work)
        try:
            stats, _ = load_checkpoint(_construct(cls, fresh), c, fresh, builtin, work, notes)
        except Exception as exc:
            return {"error": type(exc).__name__ + ": " + str(exc)[:200]}
        return {"unloaded_as_pinned": stats.get("unloaded_as_pinned"), "notes": notes}

    out["with_pinned_class"] = attempt(ckpt, cls)
    out["without"] = attempt(ckpt, None)
    short = type(ckpt)({k: v for k, v in ckpt.items() if k != "score.weight"})
    short.in_memory = ckpt.in_memory  # the reference class's names
    out["short"] = attempt(short, cls)  # score.weight: a tensor the reference class has, missing here
    print(json.dumps(out))
''')


def test_jamba_seq_cls_lm_head_is_left_unloaded_as_the_pinned_class_leaves_it(tmp_path):
    """jamba failed load ('1 parameter(s) not (fully) loaded: lm_head.weight'): the pinned vLLM 0.13.0's own
    JambaForSequenceClassification, loading the same checkpoint, leaves the same lm_head unloaded."""
    out = run_in_worker(JAMBA_SEQ_CLS, str(tmp_path), timeout=900)
    assert out["lm_head_in_ckpt"] == [] and out["score"] == ["score.weight"]
    ok = out["with_pinned_class"]
    assert ok.get("unloaded_as_pinned") == ["lm_head.weight"], ok
    assert "leaves the very same values unloaded" in ok["notes"][0]
    assert "not (fully) loaded: lm_head.weight" in out["without"]["error"]
    assert "not (fully) loaded: score.weight" in out["short"]["error"]


GEMMA3N_SPELLING = textwrap.dedent('''\
    """load_checkpoint on the pinned vLLM's own Gemma3nForCausalLM: transformers saves the class as
    model.language_model.*, which vLLM (pinned and upstream) serves only inside the multimodal class."""
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    work = sys.argv[2]
    os.environ["VLLM_TARGET_DEVICE"] = "cpu"
    import torch
    from _runtime_env import _platform_cpu, _vllm_config, _init_distributed, _construct, _resolved_class
    _platform_cpu()
    from _runtime_config import _config_class, _write_tiny_config
    from _runtime_load import load_checkpoint, make_checkpoint

    arch = "Gemma3nForCausalLM"
    cfg = _write_tiny_config(arch, _config_class(arch, {})[0], work)  # (class, where it came from)
    ckpt = make_checkpoint(arch, cfg, 0)
    out = {"saved": sorted(ckpt)[:3], "garbled": [k for k in ckpt if "model.language_model" in k[len("model."):]]}
    vc = _vllm_config(work)
    _init_distributed(vc)
    cls = _resolved_class(vc)

    def attempt(c, builtin):
        notes = []
        fresh = _vllm_config(work)  # layer names are per config
        try:
            stats, used = load_checkpoint(_construct(cls, fresh), c, fresh, builtin, work, notes)
        except Exception as exc:
            return {"error": type(exc).__name__ + ": " + str(exc)[:200]}
        return {"names": sorted(used)[:3], "notes": notes, "equal": stats["equal"] + stats["fused_equal"]}

    out["with_pinned_class"] = attempt(ckpt, cls)
    out["without"] = attempt(ckpt, None)  # nobody to decide which spelling is served: the failure stands
    short = type(ckpt)({k: v for k, v in ckpt.items() if not k.endswith("layers.1.mlp.down_proj.weight")})
    short.in_memory = ckpt.in_memory
    out["short"] = attempt(short, cls)  # respelling does not excuse a missing tensor
    print(json.dumps(out))
''')


def test_gemma3n_causal_lm_takes_the_names_the_pinned_class_loads(tmp_path):
    """gemma3n failed load on model.language_model.*: transformers (4.57 and 5) saves Gemma3nForCausalLM
    so, but vLLM's Gemma3nForCausalLM, the pinned one and upstream's alike, loads only its own names
    (served inside Gemma3nForConditionalGeneration, whose mapper renames). The harness's, not the
    migration's; and its reverse of the conversion mapping garbled per_layer_model_projection."""
    out = run_in_worker(GEMMA3N_SPELLING, str(tmp_path), timeout=900)
    assert out["saved"][0].startswith("model.language_model.")
    assert out["garbled"] == []
    ok = out["with_pinned_class"]
    assert "error" not in ok, ok
    assert ok["names"][0].startswith("model.") and not ok["names"][0].startswith("model.language_model.")
    assert ok["equal"] > 0 and "does not load the spelling transformers saves" in ok["notes"][-1]
    assert "language_model" in out["without"]["error"]  # the pinned class's own loader on the saved names
    assert "not (fully) loaded" in out["short"]["error"] and "layers.1.mlp.down_proj" in out["short"]["error"]


NEMOTRON_NAMES = textwrap.dedent('''\
    """make_checkpoint from the config class the pinned vLLM builds for model_type nemotron."""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import transformers
    from vllm.transformers_utils.configs import NemotronConfig
    from _runtime_load import make_checkpoint

    cfg = NemotronConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=128, rope_theta=5000.0)
    out = {"vllm_has_rope_theta": hasattr(cfg, "rope_theta")}
    try:
        transformers.NemotronForCausalLM(cfg)
    except AttributeError as exc:
        out["direct"] = str(exc)
    ckpt = make_checkpoint("NemotronForCausalLM", cfg, 0)
    out["shapes"] = {k: list(v.shape) for k, v in ckpt.items() if ".0." in k or "layers" not in k}
    print(json.dumps(out))
''')


def test_the_reference_class_is_built_from_its_own_config_class(tmp_path):
    """nemotron failed construct in the harness's checkpoint maker: transformers' NemotronForCausalLM
    reads config.rope_theta, and the pinned vLLM's NemotronConfig (the class it builds for
    model_type nemotron) keeps rope_parameters only. The harness's, not the migration's."""
    out = run_in_worker(NEMOTRON_NAMES, timeout=600)
    assert out["vllm_has_rope_theta"] is False and "rope_theta" in out["direct"]  # what failed before
    shapes = out["shapes"]
    assert shapes["model.embed_tokens.weight"] == [128, 64] and shapes["lm_head.weight"] == [128, 64]
    assert shapes["model.layers.0.self_attn.k_proj.weight"] == [32, 64]  # 2 kv heads of 16
    assert shapes["model.layers.0.mlp.up_proj.weight"] == [96, 64]


BRIDGE_BEFORE_BASE = textwrap.dedent('''\
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from transformers import PretrainedConfig
    from _runtime_config import _config_class

    class Dense(PretrainedConfig):
        model_type = "qwen3_5"

    class Moe(PretrainedConfig):
        model_type = "qwen3_5_moe"

    bridges = {"qwen3_5": Dense, "qwen3_5_moe": Moe}
    hints = {"bases": ["Qwen3_5ForConditionalGeneration"]}
    notes = []
    cls, source = _config_class("Qwen3_5MoeForConditionalGeneration", bridges, notes=notes, hints=hints)
    dense, dsource = _config_class("Qwen3_5ForConditionalGeneration", bridges, notes=[], hints={})
    print(json.dumps({"moe": [cls.__name__, source], "dense": [dense.__name__, dsource], "notes": notes}))
''')


def test_a_bridge_spelled_like_the_architecture_comes_before_its_base_class_config(tmp_path):
    """qwen3_5's MoE class subclasses the dense one upstream; built from the dense class's config it has
    no MoE layer (construct failed: "No Qwen3Next layer found"). The plugin's own bridge decides."""
    out = run_in_worker(BRIDGE_BEFORE_BASE, timeout=600)
    assert out["moe"] == ["Moe", "bridge"] and out["notes"] == []
    assert out["dense"] == ["Dense", "bridge"]


FORWARD_KWARGS = """
import hashlib, json, sys, types
sys.path.insert(0, sys.argv[1])
import torch
from _runtime_forward import _call_kwargs
from vllm.model_executor.models.ernie_mtp import ErnieMTP
from vllm.model_executor.models.internlm2 import InternLM2ForCausalLM
from vllm.model_executor.models.llama import LlamaForCausalLM
from vllm.model_executor.models.llama_eagle import EagleLlamaForCausalLM
vc = types.SimpleNamespace(model_config=types.SimpleNamespace(get_hidden_size=lambda: 8, dtype=torch.float32))
out = {}
for cls in (ErnieMTP, InternLM2ForCausalLM, LlamaForCausalLM, EagleLlamaForCausalLM):
    kw = _call_kwargs(object.__new__(cls), vc, None, 5, [])
    hs = kw.get("hidden_states")
    out[cls.__name__] = {k: (list(v.shape) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    if hs is not None:
        out[cls.__name__]["sha"] = hashlib.sha256(hs.numpy().tobytes()).hexdigest()
print(json.dumps(out))
"""


def test_the_forward_gets_what_the_runner_or_the_spec_decode_proposer_passes():
    """ernie_mtp / mistral_eagle failed forward ('missing 1 required positional argument: hidden_states'),
    internlm2 ('... intermediate_tensors'): vLLM's proposer hands a draft the target's hidden states
    (draft hidden size wide), the runner hands every other model intermediate_tensors (None on rank 0).
    The draft's hidden states are fixed, the same tensor whichever side builds them."""
    out = run_in_worker(FORWARD_KWARGS)
    assert out["InternLM2ForCausalLM"] == {"intermediate_tensors": None}
    assert out["LlamaForCausalLM"] == {"intermediate_tensors": None}
    assert out["ErnieMTP"]["hidden_states"] == [5, 8]
    assert out["EagleLlamaForCausalLM"]["hidden_states"] == [5, 8]
    assert out["ErnieMTP"]["sha"] == out["EagleLlamaForCausalLM"]["sha"]
    assert "intermediate_tensors" not in out["ErnieMTP"]  # the proposer does not pass it


RUNNER_EMBED = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
from vllm.model_executor.models.interfaces import _require_is_multimodal
from _runtime_forward import _runner_embed

seen = {}

def fireredasr2_like(input_ids, multimodal_embeddings=None, *, is_multimodal=None):
    mask = _require_is_multimodal(is_multimodal)  # raises on None, as FireRedASR2's embed_input_ids
    seen["mm"] = multimodal_embeddings
    return torch.ones(input_ids.shape[0], 4) * int(mask.any())

def text_only(input_ids):
    return torch.zeros(input_ids.shape[0], 4)

ids = torch.tensor([3, 4, 5])
try:
    fireredasr2_like(ids)
    bare = "ok"
except ValueError as e:
    bare = str(e)[:40]
out = {"bare": bare, "runner": _runner_embed(fireredasr2_like, ids).sum().item(), "mm": seen["mm"],
       "text_only": list(_runner_embed(text_only, ids).shape)}
print(json.dumps(out))
"""


def test_a_multimodal_prefill_takes_inputs_embeds_where_the_runner_passes_them():
    """CLIP and SigLIP failed forward (a bare AssertionError: their forward asserts inputs_embeds): the runner
    (0.13.0's and upstream's gpu_model_runner._preprocess) embeds a multimodal model's ids first and passes
    inputs_embeds, a text prompt's too, unless the model is an encoder-decoder or takes no multimodal input
    (every modality limit 0); upstream asks its model config, 0.13.0 its multimodal registry."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"))
    from _runtime_forward import _runner_takes_embeds

    class Upstream:  # upstream's ModelConfig: the answer is its property
        is_encoder_decoder, is_multimodal_model, limits_zero = False, True, False

        @property
        def supports_multimodal_inputs(self):
            return not self.limits_zero

    class VC:
        def __init__(self, mc):
            self.model_config = mc

    notes = []
    assert _runner_takes_embeds(VC(Upstream()), notes) is True
    text_only = Upstream()
    text_only.limits_zero = True
    assert _runner_takes_embeds(VC(text_only), notes) is False
    whisper = Upstream()
    whisper.is_encoder_decoder = True  # the decoder takes ids (and the encoder's states)
    assert _runner_takes_embeds(VC(whisper), notes) is False
    text = Upstream()
    text.is_multimodal_model = False
    assert _runner_takes_embeds(VC(text), notes) is False and notes == []


def test_embed_input_ids_is_called_with_the_runners_empty_multimodal_inputs():
    """FireRedASR2 failed forward ('embed_input_ids now requires is_multimodal arg'): the check called
    embed_input_ids(ids) bare, where the pinned runner passes the gathered embeddings ([] for text) and their
    all-False mask. A model that takes neither is called with the ids alone."""
    out = run_in_worker(RUNNER_EMBED, timeout=300)
    assert out["bare"].startswith("`embed_input_ids` now requires")
    assert out["runner"] == 0 and out["mm"] == [] and out["text_only"] == [3, 4]


def test_isaacs_tiny_pixel_shuffle_is_its_vllm_processors_default():
    """Isaac's vLLM processor builds IsaacImageProcessor from the request kwargs alone (pixel_shuffle_scale default
    2: grid / 4 placeholders); the model merges by vision_config.pixel_shuffle_scale_factor, 1 in IsaacConfig's
    defaults: its M-RoPE walk gave 4x the grid. The checkpoint fields the harness sets are the processor's."""
    import ast

    from flagos_migrate.verify.config_hints import CHECKPOINT_FIELDS

    from tests.analysis_helpers import UPSTREAM_SRC

    path = UPSTREAM_SRC / "vllm" / "transformers_utils" / "processors" / "isaac.py"
    if not path.is_file():
        pytest.skip(f"no upstream source at {UPSTREAM_SRC}")
    init = next(n for c in ast.walk(ast.parse(path.read_text())) if isinstance(c, ast.ClassDef)
                and c.name == "IsaacImageProcessor" for n in c.body
                if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    args = init.args.args[-len(init.args.defaults):]
    default = next(ast.literal_eval(d) for a, d in zip(args, init.args.defaults) if a.arg == "pixel_shuffle_scale")
    fields = CHECKPOINT_FIELDS["IsaacForConditionalGeneration"]
    assert fields["pixel_shuffle_scale"] == fields["vision_config.pixel_shuffle_scale_factor"] == default == 2
