"""``verify --run`` on multimodal architectures: one tiny image through the vision tower.

The pure halves (the tower's geometry in the tiny config, placeholders, pixels) run everywhere. The
real half builds LLaVA on the real vLLM 0.13.0 on CPU in the venv named by $MMF_PINNED_VENV: a
plugin whose classes are the pinned vLLM's own LLaVA (a correct port by definition) and the same
class with what unwrapping upstream's ``_mark_language_model`` leaves on 0.13.0 (the interface's
``get_language_model``, which returns None), and one whose tower output is scaled (the image path,
and only it, differs: with $MMF_REFERENCE_VENV the match level must see it).
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
from flagos_migrate.verify.runtime_mm import (
    IMAGE_PATCHES,
    image_delimiters,
    image_token_id,
    pixels,
    prompt_with_image,
    rename_fields,
    shrink_vision_geometry,
)
from flagos_migrate.verify.runtime_tiny import tiny_config, with_mrope

from tests.analysis_helpers import PINNED_VENV, VERIFY_DIR
from tests.worker_helpers import run_in_worker

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "migrate_model.py"
EXAMPLE_PLUGIN = ROOT / "examples" / "plugin"
PINNED_PY = PINNED_VENV / "bin" / "python"

LLAVA = {"model_type": "llava", "image_token_index": 32000, "vision_feature_layer": -2,
         "text_config": {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32,
                         "num_hidden_layers": 32, "vocab_size": 32064},
         "vision_config": {"model_type": "clip_vision_model", "hidden_size": 1024, "image_size": 336,
                           "patch_size": 14, "num_hidden_layers": 24, "num_attention_heads": 16}}

QWEN2_VL = {"model_type": "qwen2_vl", "image_token_id": 151655,
            "text_config": {"hidden_size": 1536, "num_attention_heads": 12, "vocab_size": 151936},
            "vision_config": {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16,
                              "patch_size": 14, "spatial_merge_size": 2}}

GEMMA3 = {"model_type": "gemma3", "image_token_index": 262144, "mm_tokens_per_image": 256,
          "text_config": {"hidden_size": 2560, "num_attention_heads": 8, "vocab_size": 262208},
          "vision_config": {"hidden_size": 1152, "image_size": 896, "patch_size": 14, "num_hidden_layers": 27}}


# GLM-4.1V-9B's config.json, the keys that decide the code paths (M-RoPE over half the head)
GLM41V = {"architectures": ["Glm4vForConditionalGeneration"], "model_type": "glm4v",
          "image_token_id": 151343, "video_token_id": 151344, "image_start_token_id": 151339,
          "image_end_token_id": 151340, "video_start_token_id": 151341, "video_end_token_id": 151342,
          "text_config": {"model_type": "glm4v_text", "hidden_size": 4096, "intermediate_size": 13696,
                          "num_attention_heads": 32, "num_key_value_heads": 2, "num_hidden_layers": 40,
                          "vocab_size": 151552, "partial_rotary_factor": 0.5, "rope_theta": 10000,
                          "rope_scaling": {"type": "default", "mrope_section": [8, 12, 12]}},
          "vision_config": {"model_type": "glm4v", "hidden_size": 1536, "depth": 24, "num_heads": 12,
                            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "image_size": 336,
                            "out_hidden_size": 4096, "intermediate_size": 13696}}


def _tiny(cfg: dict) -> dict:
    out = tiny_config(cfg)
    shrink_vision_geometry(out)
    return out


def test_a_grouped_query_tower_stays_grouped_with_kv_heads_dividing_its_heads():
    # EXAONE 4.5's vision config: 16 heads over 8 KV heads (the tiny tower kept 8 KV heads for 2 heads: the
    # pinned MMEncoderAttention asserted num_heads % num_kv_heads == 0); an MHA tower keeps KV == heads
    gqa = tiny_config({"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
                       "vision_config": {"hidden_size": 3584, "num_heads": 16, "num_key_value_heads": 8, "depth": 32}})
    mha = tiny_config({"hidden_size": 4096, "num_attention_heads": 32,
                       "vision_config": {"hidden_size": 1024, "num_heads": 16, "num_key_value_heads": 16}})
    vision = gqa["vision_config"]
    assert vision["num_heads"] % vision["num_key_value_heads"] == 0 and vision["num_key_value_heads"] < vision["num_heads"]
    assert mha["vision_config"]["num_key_value_heads"] == mha["vision_config"]["num_heads"]


def test_per_layer_overrides_follow_the_kept_layers_and_keep_their_ratio():
    # Gemma 4 / EmbeddingGemma2: every 6th layer is full attention with twice the head_dim and 1 KV head,
    # kept in the sparse per_layer_config; the tiny config keeps one layer of each type
    types = ["sliding_attention"] * 5 + ["full_attention"]
    tiny = tiny_config({"hidden_size": 768, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 256,
                        "num_hidden_layers": 6, "layer_types": types,
                        "per_layer_config": {"5": {"head_dim": 512, "num_key_value_heads": 1}}})
    full = tiny["layer_types"].index("full_attention")
    assert tiny["per_layer_config"] == {str(full): {"head_dim": 2 * tiny["head_dim"], "num_key_value_heads": 1}}


def test_the_tower_sees_a_few_patches_and_keeps_one_block_up_to_its_feature_layer():
    tiny = _tiny(LLAVA)
    vision = tiny["vision_config"]
    assert vision["image_size"] == IMAGE_PATCHES * vision["patch_size"] == 56
    # vision_feature_layer=-2: two layers in the checkpoint, vLLM builds and runs the first
    assert vision["num_hidden_layers"] == 2 and tiny["vision_feature_layer"] == -2
    assert LLAVA["vision_config"]["image_size"] == 336  # pure on the input


def test_qwen2_vl_merger_writes_the_text_width_and_gemma3_pools_to_a_square():
    qwen = _tiny(QWEN2_VL)
    assert qwen["vision_config"]["hidden_size"] == qwen["text_config"]["hidden_size"] == 64
    assert qwen["vision_config"]["embed_dim"] == 32 and qwen["vision_config"]["depth"] == 1
    gemma = _tiny(GEMMA3)
    side = gemma["vision_config"]["image_size"] // gemma["vision_config"]["patch_size"]
    per_side = int(gemma["mm_tokens_per_image"] ** 0.5)
    assert per_side * per_side == gemma["mm_tokens_per_image"] and side % per_side == 0


def test_towers_whose_checkpoints_hold_no_siglip_head_say_vision_use_head_false():
    # LFM2-VL: upstream's lfm2_siglip2.Siglip2Model builds no head, so the Hugging Face class writing the
    # synthetic checkpoint must not either (a head there failed load: 'vision_model.head' in Siglip2Model)
    # "lfm2-vl": as 4.57.6's Lfm2VlConfig.to_dict() spells its model_type when the tiny config is shrunk
    for model_type in ("lfm2_vl", "lfm2-vl"):
        lfm2 = _tiny({"model_type": model_type, "vision_config": {"model_type": "siglip2_vision_model",
                                                                  "patch_size": 16, "num_hidden_layers": 1}})
        assert lfm2["vision_config"]["vision_use_head"] is False
    other = _tiny({"model_type": "llava", "vision_config": {"model_type": "siglip_vision_model", "patch_size": 14}})
    assert "vision_use_head" not in other["vision_config"]


def test_arias_tower_makes_a_patch_count_its_projector_has_queries_for():
    # the projector raises for a count its projector_patch_to_query_dict lacks; the default Idefics3 tower
    # (32-pixel patches) gave 900 patches of a 980 image: 'Number of patches 900 not found'
    aria = _tiny({"model_type": "aria", "vision_config": {"model_type": "idefics3_vision", "patch_size": 32},
                  "projector_patch_to_query_dict": {1225: 128, 4900: 256}})
    vision = aria["vision_config"]
    assert (vision["image_size"] // vision["patch_size"]) ** 2 in aria["projector_patch_to_query_dict"]
    assert vision["image_size"] in (490, 980)  # the only sides AriaImageProcessor pads an image to


HEADLESS = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch.nn as nn
import runtime_mm

class Pooling(nn.Module):  # what vLLM's pooling adapter leaves of a causal LM: lm_head deleted, a pooler
    def __init__(self):
        super().__init__()
        self.model, self.pooler = nn.Linear(2, 2), nn.Identity()

class Causal(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Linear(2, 2)

names = ["lm_head.weight", "model.weight"]
print(json.dumps([runtime_mm.unbuilt_tensors(Pooling(), names), runtime_mm.unbuilt_tensors(Causal(), names)]))
"""


def test_a_field_the_models_processor_renames_gets_the_image_processors_output():
    # Kanana-V's processor lays out (and its _parse_and_validate_image_input reads) vision_grid_thw; the Qwen2-VL
    # image processor of its tower outputs image_grid_thw: the forward failed "vision_grid_thw is required"
    grid = object()
    kanana = {"pixel_values": 1, "image_grid_thw": grid}
    rename_fields(kanana, {"pixel_values": None, "vision_grid_thw": None, "image_token_thw": None})
    assert kanana["vision_grid_thw"] is grid and "image_token_thw" not in kanana
    qwen2_vl = {"pixel_values": 1, "image_grid_thw": grid}  # lays out the name it was given: nothing added
    rename_fields(qwen2_vl, {"pixel_values": None, "image_grid_thw": None})
    assert qwen2_vl == {"pixel_values": 1, "image_grid_thw": grid}


GRID_ROWS = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
import runtime_mm

grid = torch.tensor([[1, 4, 4], [1, 2, 6]])
flat = {"pixel_values": torch.zeros(28, 8), "image_grid_thw": grid}
runtime_mm.grid_rows(flat)
other = {"pixel_values": torch.zeros(27, 8), "image_grid_thw": grid}  # rows the grid does not account for
runtime_mm.grid_rows(other)
print(json.dumps([flat["pixel_sizes"].tolist(), "pixel_sizes" in other]))
"""


@pytest.mark.skipif(not PINNED_PY.exists(), reason="needs the pinned venv (torch)")
def test_flat_patch_pixels_get_each_images_row_count_from_its_grid():
    # Kanana-V's fields split pixel_values by pixel_sizes, which its processor adds after the image processor:
    # without it the pixel field laid out nothing
    proc = subprocess.run([str(PINNED_PY), "-c", GRID_ROWS, str(VERIFY_DIR)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[16, 12], False]


@pytest.mark.skipif(not PINNED_PY.exists(), reason="needs the pinned venv (torch)")
def test_a_pooling_models_lm_head_is_no_lost_checkpoint_tensor():
    # DeepseekV3BidirectionalModel: named by DeepseekV3ForCausalLM, whose lm_head the pooling adapter deletes
    # (the load failed on 'the checkpoint holds 32768 more values'); a causal LM without it still fails
    proc = subprocess.run([str(PINNED_PY), "-c", HEADLESS, str(VERIFY_DIR)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [["lm_head.weight"], []]


def test_llava_next_video_pooler_sees_at_least_one_image_of_patches_squared():
    # its pooler computes sqrt(n * s // s) with s = image_size // patch_size**2 (ZeroDivisionError at 0)
    tiny = _tiny({"model_type": "llava_next_video", "spatial_pool_stride": 2, "image_token_index": 32001,
                  "text_config": {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32},
                  "vision_config": {"model_type": "clip_vision_model", "image_size": 336, "patch_size": 14}})
    vision = tiny["vision_config"]
    assert vision["image_size"] // vision["patch_size"] ** 2 == 1
    assert vision["image_size"] // vision["patch_size"] == IMAGE_PATCHES  # still a few patches per side
    assert _tiny(LLAVA)["vision_config"]["patch_size"] == 14  # only the pooled family changes its patch


def test_a_top_level_token_id_is_not_replaced_by_the_text_configs_none():
    # Glm4vConfig: image_token_id at the top, None in its text config
    tiny = _tiny({"model_type": "glm4v", "image_token_id": 151343, "video_token_id": 151344,
                  "text_config": {"hidden_size": 4096, "num_attention_heads": 32, "vocab_size": 151552,
                                  "image_token_id": None, "video_token_id": None},
                  "vision_config": {"hidden_size": 1536, "patch_size": 14, "spatial_merge_size": 2,
                                    "image_size": 336, "depth": 24}})
    assert image_token_id(tiny) is not None and tiny["image_token_id"] < tiny["text_config"]["vocab_size"]
    # its M-RoPE sections sum to half of the rotary part of the head (partial_rotary_factor 0.5)
    glm = _tiny(GLM41V)
    text = glm["text_config"]
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    assert sum(text["rope_scaling"]["mrope_section"]) == int(head_dim * 0.5) // 2


def test_mrope_sections_are_added_where_the_config_class_defaults_lack_them():
    tiny = _tiny(QWEN2_VL)  # Qwen2VLConfig() has rope_scaling None: vLLM would build 1-D rope
    assert with_mrope(tiny)
    text = tiny["text_config"]
    assert sum(text["rope_scaling"]["mrope_section"]) == text["hidden_size"] // text["num_attention_heads"] // 2
    glm = _tiny(GLM41V)  # a real config.json's sections are kept
    before = list(glm["text_config"]["rope_scaling"]["mrope_section"])
    assert not with_mrope(glm) and glm["text_config"]["rope_scaling"]["mrope_section"] == before


def test_mrope_sections_follow_the_rotary_factor_the_language_model_supplies():
    # transformers 5's GlmOcrTextConfig declares no partial_rotary_factor; GLM-OCR's language model (Glm4Attention,
    # upstream's and 0.13.0's) sets 0.5 by setdefault: sections sized to the whole head failed MRotaryEmbedding's
    # sum(mrope_section) == rotary_dim // 2 at construct on both sides
    def text(model_type, **rope):
        return {"model_type": "glm_ocr", "text_config": {"model_type": model_type, "hidden_size": 64,
                                                          "num_attention_heads": 2, "rope_parameters": dict(rope)}}

    ocr = text("glm_ocr_text", rope_type="default")
    assert with_mrope(ocr) and sum(ocr["text_config"]["rope_parameters"]["mrope_section"]) == 32 // 2 // 2
    own = text("glm_ocr_text", rope_type="default", partial_rotary_factor=0.25)  # the config's own factor wins
    assert with_mrope(own) and sum(own["text_config"]["rope_parameters"]["mrope_section"]) == 8 // 2
    other = text("qwen2_vl_text", rope_type="default")
    assert with_mrope(other) and sum(other["text_config"]["rope_parameters"]["mrope_section"]) == 32 // 2


def test_sizes_the_released_checkpoints_keep_equal_stay_equal_in_the_tiny_config():
    # GLM-OCR: upstream vLLM's merger context is text_config.intermediate_size, transformers 5's is the tower's
    # out_hidden_size * in_channels (4608 = 1536 * 3 released); shrunk apart, load failed (256 into 192)
    cfg = {"model_type": "glm_ocr",
           "text_config": {"model_type": "glm_ocr_text", "hidden_size": 1536, "intermediate_size": 4608,
                           "num_attention_heads": 16, "num_hidden_layers": 16, "vocab_size": 59392},
           "vision_config": {"model_type": "glm_ocr_vision", "hidden_size": 1024, "out_hidden_size": 1536,
                             "in_channels": 3, "intermediate_size": 4096, "num_heads": 16, "depth": 24}}
    tiny = tiny_config(cfg)
    text, vision = tiny["text_config"], tiny["vision_config"]
    assert text["intermediate_size"] == vision["out_hidden_size"] * vision["in_channels"] < 4608
    other = tiny_config({**cfg, "model_type": "glm4v"})  # no tie for another model type
    assert other["text_config"]["intermediate_size"] != other["vision_config"]["out_hidden_size"] * 3


def test_a_model_within_the_model_next_to_a_top_level_text_config_shrinks_alike():
    # ColPaliConfig keeps text_config and vlm_config (a PaliGemma with its own text_config, which the model builds
    # from): only the top-level one shrank, the language model was a released-size Gemma and the run ran out of memory
    gemma = {"model_type": "gemma", "hidden_size": 2048, "intermediate_size": 16384, "num_attention_heads": 8,
             "num_key_value_heads": 1, "head_dim": 256, "num_hidden_layers": 18, "vocab_size": 257216}
    siglip = {"model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
              "num_attention_heads": 16, "num_hidden_layers": 27, "image_size": 448, "patch_size": 14}
    cfg = {"model_type": "colpali", "text_config": dict(gemma),
           "vlm_config": {"model_type": "paligemma", "text_config": dict(gemma), "vision_config": siglip,
                          "image_token_index": 257152}}
    tiny = tiny_config(cfg)
    inner = tiny["vlm_config"]
    assert inner["text_config"] == tiny["text_config"] and inner["text_config"]["hidden_size"] < 2048
    assert inner["text_config"]["num_hidden_layers"] < 18 and inner["vision_config"]["hidden_size"] < 1152
    assert inner["image_token_index"] < inner["text_config"]["vocab_size"]


def test_added_mrope_sections_name_their_rope_type_and_reach_every_language_config():
    # 4.57.6's Qwen3VLMoeTextConfig validates rope_scaling and requires rope_type (Qwen3-VL's released
    # text_config: {"rope_type": "default", "mrope_section": [24, 20, 20], ...}); the validation raised
    # KeyError on the sections alone (qwen3_vl_moe, interns1_pro failed construct)
    cfg = {"model_type": "qwen3_vl_moe", "text_config": {"hidden_size": 64, "num_attention_heads": 4, "head_dim": 16,
                                                         "rope_scaling": None}}
    assert with_mrope(cfg)
    assert cfg["text_config"]["rope_scaling"] == {"type": "default", "rope_type": "default", "mrope_section": [2, 3, 3]}
    # Qwen3-Omni: the language configs sit one level down, in the thinker and in the talker
    omni = {"model_type": "qwen3_omni_moe",
            "thinker_config": {"text_config": {"hidden_size": 64, "num_attention_heads": 4, "head_dim": 16}},
            "talker_config": {"text_config": {"hidden_size": 64, "num_attention_heads": 4, "head_dim": 16,
                                              "rope_scaling": {"rope_type": "default", "mrope_section": [2, 3, 3]}}}}
    assert with_mrope(omni)
    assert omni["thinker_config"]["text_config"]["rope_scaling"]["mrope_section"] == [2, 3, 3]
    assert omni["talker_config"]["text_config"]["rope_scaling"] == {"rope_type": "default", "mrope_section": [2, 3, 3]}
    assert "rope_scaling" not in omni and not with_mrope(omni)  # sections present everywhere: nothing added


def test_mrope_sections_cover_the_rotary_part_a_transformers5_config_names_in_rope_parameters():
    # Qwen3.5's text config (transformers 5): partial_rotary_factor 0.25 inside rope_parameters; 0.13.0's
    # MRotaryEmbedding asserts sum(mrope_section) == rotary_dim // 2
    text = {"hidden_size": 64, "num_attention_heads": 4, "head_dim": 16,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25}}
    cfg = {"model_type": "qwen3_5_moe", "text_config": text}
    assert with_mrope(cfg)
    rope = cfg["text_config"]["rope_parameters"]
    assert sum(rope["mrope_section"]) == 16 // 4 // 2 and rope["partial_rotary_factor"] == 0.25
    assert "rope_scaling" not in cfg["text_config"]
    # sections a config already has are scaled to the rotary part of the shrunk head, not the whole head
    tiny = tiny_config({"hidden_size": 2048, "num_attention_heads": 16, "head_dim": 256,
                        "rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.25,
                                            "mrope_section": [11, 11, 10]}})
    assert sum(tiny["rope_parameters"]["mrope_section"]) == tiny["head_dim"] // 4 // 2


def test_blip2_text_embeddings_are_as_wide_as_the_projected_image_and_its_queries_few():
    blip2 = _tiny({"model_type": "blip-2", "num_query_tokens": 32,
                   "text_config": {"model_type": "opt", "hidden_size": 2560, "word_embed_proj_dim": 2560,
                                   "num_attention_heads": 32, "vocab_size": 50272},
                   "vision_config": {"hidden_size": 1408, "image_size": 224, "patch_size": 14},
                   "qformer_config": {"hidden_size": 768, "num_hidden_layers": 12, "encoder_hidden_size": 1408}})
    assert blip2["text_config"]["word_embed_proj_dim"] == blip2["text_config"]["hidden_size"] == 64
    assert blip2["num_query_tokens"] == 4
    assert blip2["qformer_config"]["encoder_hidden_size"] == blip2["vision_config"]["hidden_size"]


def test_image_token_and_placeholders():
    tiny = _tiny(LLAVA)
    token = image_token_id(tiny)
    assert token == tiny["image_token_index"] and token < tiny["text_config"]["vocab_size"]
    assert image_token_id({"text_config": {"image_token_id": 7}}) == 7
    assert image_token_id({"vision_config": {}}) is None
    assert prompt_with_image([1, 2, 3, 4], 9, 3) == [1, 2, 9, 9, 9, 3, 4]
    assert prompt_with_image([1, 2, 3, 4], 9, 2, (7, 8)) == [1, 2, 7, 9, 9, 8, 3, 4]


def test_the_image_sits_between_the_start_and_end_tokens_a_real_prompt_has():
    assert image_delimiters({"vision_start_token_id": 151652, "vision_end_token_id": 151653}) == (151652, 151653)
    assert image_delimiters({"text_config": {"image_start_token_id": 3, "image_end_token_id": 4}}) == (3, 4)
    assert image_delimiters({"vision_start_token_id": 5}) == (None, None)  # a start without an end: none
    assert image_delimiters(_tiny(LLAVA)) == (None, None)


def test_pixels_are_deterministic_rgb_bytes():
    img = pixels(8)
    assert len(img) == 8 and len(img[0]) == 8 and len(img[0][0]) == 3
    assert img == pixels(8) and all(0 <= v < 256 for row in img for px in row for v in px)
    assert len({tuple(px) for row in img for px in row}) > 16  # not flat: the tower sees structure


# ------------------------------------------------------------------------------------ real runs

PLUGIN_LLAVA = textwrap.dedent('''\
    """LLaVA as vLLM 0.13.0 ships it, and what a port that unwrapped _mark_language_model leaves."""
    from vllm.model_executor.models.interfaces import SupportsMultiModal
    from vllm.model_executor.models.llava import LlavaForConditionalGeneration as _Pinned


    class LlavaForConditionalGeneration(_Pinned):
        pass


    class LostLanguageModel(_Pinned):
        # upstream marks the language model with `with self._mark_language_model(...)` and defines no
        # get_language_model; unwrapped on 0.13.0 the interface's default (returns None) is what is left
        get_language_model = SupportsMultiModal.get_language_model


    class ScalesImageFeatures(_Pinned):
        def embed_multimodal(self, **kwargs):
            return [e * 1.01 for e in super().embed_multimodal(**kwargs)]
''')


def _venv(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} (a venv with real vLLM) is not set")
    return value


@pytest.fixture(scope="module")
def llava_report(tmp_path_factory):
    pinned = _venv("MMF_PINNED_VENV")
    plugin = tmp_path_factory.mktemp("mm") / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    (plugin / "vllm_fl" / "models" / "llava.py").write_text(PLUGIN_LLAVA)
    record = plugin / "vllm_fl" / "models" / ".migration" / "llava.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"format": 1, "files": {}, "registration": [
        f"LlavaForConditionalGeneration -> vllm_fl.models.llava:{cls}"
        for cls in ("LlavaForConditionalGeneration", "LostLanguageModel", "ScalesImageFeatures")]}))
    extra = ["--reference-python", os.environ["MMF_REFERENCE_VENV"]] if os.environ.get("MMF_REFERENCE_VENV") else []
    proc = subprocess.run([sys.executable, str(SCRIPT), "verify", "llava", "--plugin", str(plugin), "--run",
                           "--python", pinned, "--json", *extra], capture_output=True, text=True, timeout=2400)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = {}
    return proc.returncode, report, proc.stderr


def test_an_image_goes_through_the_tower_and_a_lost_language_model_fails_forward(llava_report):
    code, report, stderr = llava_report
    assert report, stderr[-3000:]
    assert code == 1  # LostLanguageModel fails its forward level
    by_class = {a["class"]: a for a in report["architectures"]}

    good = by_class["LlavaForConditionalGeneration"]
    for lv in ("import", "construct", "load", "forward"):
        assert good["levels"][lv]["status"] == "pass", (lv, good["levels"][lv], good["first_error"])
    reason = good["levels"]["forward"]["reason"]
    # 56x56 pixels, 14-pixel patches, CLS dropped: 16 image tokens merged at the placeholders
    assert reason.startswith("with one image (16 image tokens through the vision tower"), reason
    assert good["load_stats"]["not_built"] > 0  # the tower's last layer past vision_feature_layer=-2

    lost = by_class["LostLanguageModel"]
    assert [lost["levels"][lv]["status"] for lv in runtime.LEVELS[:4]] == ["pass", "pass", "pass", "fail"]
    assert "get_language_model() returned None" in lost["first_error"]["message"]
    assert lost["first_error"]["likely_rule"] == "P4"

    scaled = by_class["ScalesImageFeatures"]
    assert scaled["levels"]["forward"]["status"] == "pass"
    if os.environ.get("MMF_REFERENCE_VENV"):
        assert good["levels"]["match"]["status"] == "pass", good["levels"]["match"]
        assert any("with one image: max |Δlogit|" in n for n in good["notes"]), good["notes"]
        # the text prefill matches; only the image prefill sees the 1% scaled features
        assert scaled["levels"]["match"]["status"] == "fail", scaled["levels"]["match"]


PLUGIN_GLM41V = textwrap.dedent('''\
    """GLM-4.1V as vLLM 0.13.0 ships it, and one whose image prefill gets text positions."""
    import torch
    from vllm.model_executor.models.glm4_1v import Glm4vForConditionalGeneration as _Pinned


    class Glm4vForConditionalGeneration(_Pinned):
        pass


    class TextPositions(_Pinned):
        # what the harness passed before: arange in all three M-RoPE sections, image tokens included
        def get_mrope_input_positions(self, input_tokens, mm_features):
            n = len(input_tokens)
            return torch.arange(n).unsqueeze(0).expand(3, n).contiguous(), 0
''')


@pytest.fixture(scope="module")
def glm_report(tmp_path_factory):
    """GLM-4.1V (Qwen2-VL family: M-RoPE, grid_thw) from its real config.json keys (--hf-config)."""
    pinned = _venv("MMF_PINNED_VENV")
    root = tmp_path_factory.mktemp("glm")
    plugin = root / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    (plugin / "vllm_fl" / "models" / "glm4_1v.py").write_text(PLUGIN_GLM41V)
    record = plugin / "vllm_fl" / "models" / ".migration" / "glm4_1v.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"format": 1, "files": {}, "registration": [
        f"Glm4vForConditionalGeneration -> vllm_fl.models.glm4_1v:{cls}"
        for cls in ("Glm4vForConditionalGeneration", "TextPositions")]}))
    (root / "config.json").write_text(json.dumps(GLM41V))
    extra = ["--reference-python", os.environ["MMF_REFERENCE_VENV"]] if os.environ.get("MMF_REFERENCE_VENV") else []
    proc = subprocess.run([sys.executable, str(SCRIPT), "verify", "glm4_1v", "--plugin", str(plugin), "--run",
                           "--python", pinned, "--hf-config", str(root / "config.json"), "--json", *extra],
                          capture_output=True, text=True, timeout=2400)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = {}
    return proc.returncode, report, proc.stderr


def test_glm41v_image_runs_with_the_positions_of_its_own_mrope(glm_report):
    code, report, stderr = glm_report
    assert report, stderr[-3000:]
    by_class = {a["class"]: a for a in report["architectures"]}
    for cls in ("Glm4vForConditionalGeneration", "TextPositions"):
        arch = by_class[cls]
        for lv in ("import", "construct", "load", "forward"):
            assert arch["levels"][lv]["status"] == "pass", (cls, lv, arch["levels"][lv], arch["first_error"])
        reason = arch["levels"]["forward"]["reason"]
        # 56x56 pixels, 14-pixel patches, 2x2 merge: 4 image tokens; placeholders at its image_token_id
        assert reason.startswith("with one image (4 image tokens through the vision tower"), reason
        assert "M-RoPE positions from the model's get_mrope_input_positions over the image grid" in reason
        assert "the config names none" not in reason
    if os.environ.get("MMF_REFERENCE_VENV"):
        good = by_class["Glm4vForConditionalGeneration"]
        assert good["levels"]["match"]["status"] == "pass", good["levels"]["match"]
        assert any("with one image: max |Δlogit|" in n for n in good["notes"]), good["notes"]
        # the text prefill matches; the image prefill with text positions does not
        assert by_class["TextPositions"]["levels"]["match"]["status"] == "fail", by_class["TextPositions"]["levels"]
        assert code == 1


QWEN2_VL_POSITIONS = textwrap.dedent('''\
    """The pinned vLLM's Qwen2-VL M-RoPE positions for the harness's image prompt."""
    import json, sys, types
    sys.path.insert(0, sys.argv[1])
    import torch
    from transformers import Qwen2VLConfig
    from vllm.model_executor.models.qwen2_vl import Qwen2VLForConditionalGeneration
    import runtime_mm

    cfg = Qwen2VLConfig(vision_config={"spatial_merge_size": 2})
    grid = {"image_grid_thw": torch.tensor([[1, 4, 4]])}  # 4 tokens after the 2x2 merge
    out = {}
    for name, around in (("with", runtime_mm.image_delimiters(cfg.to_dict())), ("without", (None, None))):
        prompt = runtime_mm.prompt_with_image(list(range(10, 16)), cfg.image_token_id, 4, around)
        vc = types.SimpleNamespace(model_config=types.SimpleNamespace(uses_mrope=True))
        model = types.SimpleNamespace(config=cfg)  # the pinned method reads only self.config
        model.get_mrope_input_positions = types.MethodType(
            Qwen2VLForConditionalGeneration.get_mrope_input_positions, model)
        pos = runtime_mm.mrope_positions(model, vc, prompt, grid, cfg.image_token_id, 4, AssertionError)
        at = prompt.index(cfg.image_token_id)
        out[name] = pos[:, at:at + 4].tolist()
    print(json.dumps(out))
''')


def test_qwen2_vl_image_tokens_get_their_grid_positions_on_the_pinned_vllm(tmp_path):
    """Qwen2-VL's image prefill differed from upstream by 0.55: vLLM 0.13.0 finds an image's M-RoPE
    grid by the token after each <|vision_start|> (upstream by the placeholder offsets), and the
    harness's prompt had no vision-start token, so the pinned side ran the image on text positions."""
    out = run_in_worker(QWEN2_VL_POSITIONS, timeout=600)
    # 3 text tokens, the start token at 3, the 2x2 grid from 4: t 4 4 4 4, h 4 4 5 5, w 4 5 4 5
    assert out["with"] == [[4, 4, 4, 4], [4, 4, 5, 5], [4, 5, 4, 5]]
    assert out["without"] == [[3, 4, 5, 6]] * 3  # what the harness ran before: text positions


def test_an_assertion_in_the_pinned_cpu_only_path_is_a_gpu_need(tmp_path):
    # 0.13.0's cpu_fused_moe.py asserts `not apply_router_weight_on_input` (Llama 4's MoE sets it; the GPU
    # fused MoE has it): forward on CPU is skipped as needing a GPU, not failed
    from flagos_migrate.verify._runtime_env import gpu_only_op

    def raised(path: Path, code: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
        ns: dict = {}
        exec(compile(code, str(path), "exec"), ns)
        try:
            ns["f"]()
        except AssertionError as exc:
            return exc

    code = "def f(apply_router_weight_on_input=True):\n    assert not apply_router_weight_on_input\n"
    exc = raised(tmp_path / "vllm" / "model_executor" / "layers" / "fused_moe" / "cpu_fused_moe.py", code)
    assert gpu_only_op(exc) == "cpu_fused_moe.py:2 assert not apply_router_weight_on_input"
    # the same assertion in a model file is the model's
    assert gpu_only_op(raised(tmp_path / "vllm_fl" / "models" / "cpu_model.py", code)) is None


QWEN3_5_PROCESSOR = textwrap.dedent('''\
    """Which image processor the harness builds for Qwen3.5's model types on transformers 4.57.6."""
    import json, sys, types
    sys.path.insert(0, sys.argv[1])
    import runtime_mm

    out = {}
    for model_type in ("qwen3_5", "qwen3_5_moe", "no_such_model"):
        cfg = types.SimpleNamespace(model_type=model_type, vision_config=types.SimpleNamespace(
            patch_size=16, spatial_merge_size=2, temporal_patch_size=2, image_size=64))
        try:
            proc = runtime_mm.image_processor(cfg)
            out[model_type] = type(proc[0] if isinstance(proc, tuple) else proc).__name__
        except runtime_mm.NoImage as exc:
            out[model_type] = "NoImage: " + str(exc)
    print(json.dumps(out))
''')


def test_qwen3_5_images_are_processed_as_upstream_processes_them_with_qwen3_vls_processor():
    """4.57.6 maps no image processor to qwen3_5 / qwen3_5_moe, so the Qwen3.5 VL forward ran text only;
    upstream's Qwen3_5ProcessingInfo is Qwen3-VL's, so the image goes through its processor and the tower."""
    out = run_in_worker(QWEN3_5_PROCESSOR, timeout=600)
    assert out["qwen3_5"] == out["qwen3_5_moe"] == "Qwen2VLImageProcessor"
    assert out["no_such_model"].startswith("NoImage: ")  # no family, no guess


def test_a_fourier_rope_gets_no_mrope_sections():
    # Intern-S1-Pro's released text_config.rope_scaling is FoPE without sections; upstream's get_rope takes its
    # M-RoPE branch before FoPE, so added sections would build plain M-RoPE and fail interns1_pro's "should use
    # FOPE" assert. The table entry (CHECKPOINT_FIELDS) is exactly what upstream's use_fope test accepts
    from flagos_migrate.verify.config_hints import CHECKPOINT_FIELDS
    from flagos_migrate.verify.runtime_tiny import FOPE_KEYS

    rope = CHECKPOINT_FIELDS["InternS1ProForConditionalGeneration"]["text_config.rope_scaling"]
    assert rope == {"rope_type": "default", "fope_init_factor": 0.5, "fope_sep_head": True, "num_inv_freq": None}
    assert any(rope.get(k) is not None for k in FOPE_KEYS)  # upstream interns1_pro.py's use_fope
    cfg = {"model_type": "qwen3_vl", "text_config": {"hidden_size": 64, "num_attention_heads": 4, "head_dim": 16,
                                                     "rope_scaling": dict(rope)}}
    assert not with_mrope(cfg) and cfg["text_config"]["rope_scaling"] == rope
    # num_inv_freq alone (the other keys None) is FoPE too; a plain default rope still gets its sections
    only = {"text_config": {"hidden_size": 64, "num_attention_heads": 4,
                            "rope_scaling": {"rope_type": "default", "num_inv_freq": 4, "fope_sep_head": None}}}
    assert not with_mrope(only)
    plain = {"text_config": {"hidden_size": 64, "num_attention_heads": 4,
                             "rope_scaling": {"rope_type": "default", "fope_sep_head": None}}}
    assert with_mrope(plain) and "mrope_section" in plain["text_config"]["rope_scaling"]


PREPROCESSOR_FILE = textwrap.dedent('''\
    """The preprocessor_config.json the harness writes on transformers 4.57.6, per model type."""
    import json, os, sys, tempfile, types
    sys.path.insert(0, sys.argv[1])
    import runtime_mm

    out = {}
    tower = types.SimpleNamespace(patch_size=16, spatial_merge_size=2, temporal_patch_size=2, image_size=64)
    for model_type, arch in (("colqwen3", "ColQwen3"), ("qwen3_vl", "Qwen3VLForConditionalGeneration"),
                             ("mmf_synth_ovis2_5", "Ovis2_5")):
        cfg = types.SimpleNamespace(model_type=model_type, architectures=[arch], vision_config=tower)
        if arch == "Ovis2_5":  # a synthesized config, keyed by its architecture; its tower is vit_config
            cfg = types.SimpleNamespace(model_type=model_type, architectures=[arch], vit_config=tower)
        work = tempfile.mkdtemp()
        name = runtime_mm.write_preprocessor_config(work, cfg)
        path = os.path.join(work, runtime_mm.PREPROCESSOR_FILE)
        out[model_type] = [name, json.load(open(path)) if os.path.exists(path) else None, work]
    print(json.dumps(out))
''')


def test_colqwen3s_checkpoint_dir_holds_qwen3_vls_preprocessor_sized_to_the_tiny_tower():
    """Upstream's ColQwen3ProcessingInfo loads Qwen3VLProcessor while the model is built, so without a
    preprocessor_config.json in the tiny checkpoint dir its class could not be built to name the checkpoint.
    The file is Qwen3-VL's image processor at the tiny tower's patches (Ovis2.5's, keyed by its architecture: Qwen2-VL's);
    a model type outside the table gets none.
    With $MMF_REFERENCE_VENV, transformers 5's AutoImageProcessor reads the same file back."""
    out = run_in_worker(PREPROCESSOR_FILE, timeout=600)
    name, saved, work = out["colqwen3"]
    assert name == "Qwen2VLImageProcessor" and saved["image_processor_type"] == "Qwen2VLImageProcessor"
    assert saved["patch_size"] == 16 and saved["merge_size"] == 2
    assert saved["size"] == {"shortest_edge": 64 * 64, "longest_edge": 64 * 64}  # one tiny image, not 1 Mpx
    assert out["qwen3_vl"][:2] == [None, None]
    ovis = out["mmf_synth_ovis2_5"][1]  # Ovis2.5's Qwen2-VL image processor, at its vit_config's patches
    assert ovis["image_processor_type"] == "Qwen2VLImageProcessor" and ovis["patch_size"] == 16
    ref = os.environ.get("MMF_REFERENCE_VENV")
    if ref:
        code = ("import sys; from transformers import AutoImageProcessor as A; p = A.from_pretrained(sys.argv[1]); "
                "print(type(p).__name__, p.patch_size, p.size.longest_edge)")
        proc = subprocess.run([str(Path(ref) / "bin" / "python"), "-c", code, work], capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split()[-3:] == ["Qwen2VLImageProcessor", "16", str(64 * 64)]
    shutil.rmtree(work, ignore_errors=True)
    for key in ("qwen3_vl", "mmf_synth_ovis2_5"):
        shutil.rmtree(out[key][2], ignore_errors=True)


def test_mrope_sections_per_layer_type_get_no_flat_ones_beside_them():
    """Cohere Compass reads its rope per layer type (rope_parameters.get(layer_type)): a table entry nesting the
    sections there is the checkpoint's; flat sections added beside them came with rope_theta None, which
    transformers 5's strict CohereCompassTextConfig refused on both sides."""
    from flagos_migrate.verify.config_hints import CHECKPOINT_FIELDS

    nested = CHECKPOINT_FIELDS["cohere_compass"]["text_config.rope_parameters"]
    cfg = {"model_type": "cohere_compass", "text_config": {
        "hidden_size": 64, "num_attention_heads": 4, "layer_types": ["full_attention"] * 2,
        "rope_parameters": json.loads(json.dumps(nested))}}
    assert with_mrope(cfg) is False and cfg["text_config"]["rope_parameters"] == nested
    rope = nested["full_attention"]
    assert isinstance(rope["rope_theta"], float) and sum(rope["mrope_section"]) == 64 // 4 // 2
    flat = {"model_type": "qwen2_vl", "text_config": {"hidden_size": 64, "num_attention_heads": 4,
                                                      "rope_parameters": {"rope_type": "default"}}}
    assert with_mrope(flat) and "mrope_section" in flat["text_config"]["rope_parameters"]  # the flat case as before


def test_deepseek_ocr2s_tower_keeps_the_image_side_its_processor_makes():
    """DeepSeek-OCR-2 builds fixed-size towers and resizes every image to 1024; its model binds the pixels' side to
    vision_config.image_size (so does the pinned deepseek_ocr.py, which the migrated Unlimited-OCR builds on). Shrunk like any tower's, the image forward failed "data dim[2] expected 64, got 1024".
    DeepSeek-VL2 (config-built SigLIP, the same config class) still shrinks. The tiny config's projector is the
    released linear one from the towers' fixed width into the tiny language model (pure: the table's values)."""
    from flagos_migrate.verify import runtime_tiny as T
    from flagos_migrate.verify.config_hints import CHECKPOINT_FIELDS

    for arch, side in (("DeepseekOCR2ForCausalLM", 1024), ("UnlimitedOCRForCausalLM", 1024),
                       ("DeepseekVLV2ForCausalLM", 4 * 16)):
        cfg = {"architectures": [arch], "model_type": "deepseek_vl_v2",
               "vision_config": {"image_size": 1024, "patch_size": 16}, "text_config": {"hidden_size": 64}}
        shrink_vision_geometry(cfg)
        assert cfg["vision_config"]["image_size"] == side, arch
    for arch, width in (("DeepseekOCRForCausalLM", 2048), ("DeepseekOCR2ForCausalLM", 896),
                        ("UnlimitedOCRForCausalLM", 2048)):
        fields = CHECKPOINT_FIELDS[arch]
        assert (fields["projector_config.projector_type"], fields["projector_config.input_dim"],
                fields["projector_config.n_embed"]) == ("linear", width, T.HIDDEN)
    # Unlimited-OCR builds on the pinned deepseek_ocr.py, which binds the pixels' side to vision_config.image_size:
    # unshrunk, and the released 1024 over VisionEncoderConfig's default 384 (the forward failed "expected 64, got
    # 1024" with the shrunk tower)
    assert CHECKPOINT_FIELDS["UnlimitedOCRForCausalLM"]["vision_config.image_size"] == 1024
