"""``verify --run`` on a remote-code MoE whose config class exists nowhere, pinned or upstream.

K2-Horizon's config lives in its hub repo (transformers 4.57.6 and 5.x and vLLM 0.13.0 have none): the
harness synthesizes a tiny config from what upstream's ``k2_horizon.py`` reads from its config and
builds the migrated class from it on the real vLLM 0.13.0 ($MMF_PINNED_VENV). No transformers has the
model either, so without $MMF_REFERENCE_VENV the load level is skipped naming that; with it, upstream
vLLM's own K2HorizonForCausalLM names the checkpoint (self-checked by its own load_weights) and load passes.
(MiniMax-M2 was this test's model until apply began bridging transformers 5's MiniMaxM2Config for
the architecture it registers (P2): it now builds from that bridge.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "migrate_model.py"
EXAMPLE_PLUGIN = ROOT / "examples" / "plugin"
UPSTREAM = Path(os.environ.get("MMF_UPSTREAM") or Path.home() / ".cache" / "mmf" / "src" / "vllm-0.33.0")


@pytest.fixture(scope="module")
def k2_report(tmp_path_factory):
    if not os.environ.get("MMF_PINNED_VENV"):
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    plugin = tmp_path_factory.mktemp("synth") / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    proc = subprocess.run([sys.executable, str(SCRIPT), "apply", "k2_horizon", "--upstream", str(UPSTREAM),
                           "--plugin", str(plugin), "--all-archs", "--json"], capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    ref = os.environ.get("MMF_REFERENCE_VENV")
    cmd = [sys.executable, str(SCRIPT), "verify", "k2_horizon", "--plugin", str(plugin), "--upstream", str(UPSTREAM),
           "--run", "--python", os.environ["MMF_PINNED_VENV"], "--json", *(("--reference-python", ref) if ref else ())]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400)
    assert proc.stdout, proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_a_remote_code_moe_constructs_from_a_synthesized_config(k2_report):
    code, report, err = k2_report
    (arch,) = report["architectures"]
    assert arch["architecture"] == "K2HorizonForCausalLM"
    assert arch["config_source"] == "synthesized"
    assert any(n.startswith("config: synthesized") and "k2_horizon reads" in n for n in arch["notes"])
    levels = arch["levels"]
    assert levels["import"]["status"] == "pass" and levels["construct"]["status"] == "pass", (levels, err[-2000:])
    if not os.environ.get("MMF_REFERENCE_VENV"):
        # no transformers has K2-Horizon: without the reference nothing names its checkpoint; load says so
        assert levels["load"]["status"] == "skipped" and "checkpoint names" in levels["load"]["reason"]
        assert "K2HorizonForCausalLM" in levels["load"]["reason"]
        return
    # with it, upstream vLLM's own class names the checkpoint, and the migrated class loads it
    assert arch["checkpoint"] == "upstream vLLM 0.33.0 K2HorizonForCausalLM (validated by its own load_weights)"
    assert levels["load"]["status"] == "pass", (levels, err[-2000:])


@pytest.fixture(scope="module")
def internvl_report(tmp_path_factory):
    """InternVL's InternVLChatConfig is remote code (no transformers has it, nor the pinned vLLM): the
    synthesized config nests the family's tiny InternViT tower and Qwen2 language model (SYNTH_FAMILIES)."""
    if not os.environ.get("MMF_PINNED_VENV"):
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    plugin = tmp_path_factory.mktemp("synth_internvl") / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    proc = subprocess.run([sys.executable, str(SCRIPT), "apply", "internvl", "--upstream", str(UPSTREAM),
                           "--plugin", str(plugin), "--all-archs", "--json"], capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    cmd = [sys.executable, str(SCRIPT), "verify", "internvl", "--plugin", str(plugin), "--upstream", str(UPSTREAM),
           "--run", "--python", os.environ["MMF_PINNED_VENV"], "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400)
    assert proc.stdout, proc.stderr[-3000:]
    return json.loads(proc.stdout), proc.stderr


def test_a_remote_code_vlm_constructs_from_its_familys_sub_configs(internvl_report):
    report, err = internvl_report
    (arch,) = report["architectures"]
    assert arch["architecture"] == "InternVLChatModel" and arch["config_source"] == "synthesized"
    levels = arch["levels"]
    # was skipped: "the synthesized config has no value for 'force_image_size'"
    assert levels["construct"]["status"] == "pass", (levels, err[-2000:])


def test_a_config_class_the_pinned_vllm_exports_without_registering_it():
    """0.13.0 exports DotsOCRConfig but registers no 'dots_ocr' (upstream's dots_ocr.py imports it and refuses any
    other class): the module-bound lookup finds it there; what transformers maps stays transformers'."""
    if not os.environ.get("MMF_PINNED_VENV"):
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    python = Path(os.environ["MMF_PINNED_VENV"]) / "bin" / "python"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import _runtime_config as rc; "
            "t = rc._vllm_exported_configs({'DotsOCRConfig', 'DeepseekV3Config'}); "
            "print(t['dots_ocr'].__name__, 'deepseek_v3' in t, rc._vllm_exported_configs({'X'}) == {})")
    proc = subprocess.run([str(python), "-c", code, str(ROOT / "scripts" / "flagos_migrate" / "verify")],
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout.split() == ["DotsOCRConfig", "False", "True"], proc.stderr[-2000:]


# ------------------------------------------------------------------ the synthesis tables (no venv)

def test_activation_function_is_a_familys_value_not_every_synthesized_configs():
    """The table's "silu" for activation_function came from EXAONE and reached every synthesized config, while the
    same name is GPT-2's "gelu_new", Nomic BERT's "swiglu" and mBART's "gelu": only EXAONE's family carries it."""
    from flagos_migrate.verify import config_hints as H

    assert H.synth_value("activation_function") is H.MISSING
    assert H.family_values("exaone") == {"activation_function": "silu"}
    cfg, missing = H.synthesize({"activation_function": {"default": H.MISSING, "indexed": False}})
    assert "activation_function" not in cfg and missing == ["activation_function"]


def test_solars_skip_connections_keep_then_blend_within_the_tiny_layers():
    """upstream's solar.py reads bskcn_1..4 and bskcn_tv unguarded in forward: a state kept before a layer of
    bskcn_1/2 is blended back before a layer of bskcn_3/4, never before the first layer (no residual yet: upstream
    asserts one; the forward failed so with a keep at layer 0)."""
    from flagos_migrate.verify import config_hints as H
    from flagos_migrate.verify.runtime_tiny import LAYERS

    fam = H.family_values("solar")
    for keep, blend in (("bskcn_1", "bskcn_3"), ("bskcn_2", "bskcn_4")):
        assert all(1 <= i < LAYERS for i in fam[keep] + fam[blend])
        assert min(fam[keep]) <= min(fam[blend])  # the blend reads a state kept before it (or at its layer)
    assert fam["bskcn_tv"] == [0.9, 0.8]  # [training, inference]: the released weights


def test_nomic_berts_released_fields_pass_upstreams_checks():
    """NomicBertModelConfig (both vLLMs' models/config.py) asserts these on the config before building; a tiny
    config from transformers 5's NomicBertConfig lacked them all (construct skipped on 'activation_function')."""
    from flagos_migrate.verify import config_hints as H
    from flagos_migrate.verify.runtime_tiny import tiny_config

    nomic = H.CHECKPOINT_FIELDS["nomic_bert"]
    assert nomic["activation_function"] in ("swiglu", "gelu")
    assert nomic["mlp_fc1_bias"] == nomic["mlp_fc2_bias"] == nomic["qkv_proj_bias"]
    assert nomic["rotary_emb_scale_base"] is None and not nomic["rotary_emb_interleaved"]
    # GPT-2-style sizes derived from the class's own, then shrunk alike: upstream builds from n_inner, the
    # Hugging Face reference from intermediate_size (3072 = 4 x 768 stays 4 x the tiny hidden on both)
    tiny = tiny_config({"hidden_size": 768, "n_embd": 768, "intermediate_size": 3072, "n_inner": 3072,
                        "num_hidden_layers": 12, "n_layer": 12, "num_attention_heads": 12})
    assert tiny["n_inner"] == tiny["intermediate_size"] and tiny["n_embd"] == tiny["hidden_size"]
    assert tiny["n_layer"] == tiny["num_hidden_layers"]


def test_released_fields_upstream_reads_bare_are_ones_it_accepts():
    """Upstream reads these with no default, so a tiny config without them built nothing upstream and no checkpoint
    could be named (load skipped): ChatGLM's tie_word_embeddings (transformers 5's PreTrainedConfig no longer
    defaults it; glm-4-9b's config.json says false, a separate output_layer) and the Llama bidirectional models'
    pooling, one of the keys upstream's LlamaBidirectionalConfig maps ("avg", "cls", "last")."""
    from flagos_migrate.verify import config_hints as H

    assert H.CHECKPOINT_FIELDS["chatglm"]["tie_word_embeddings"] is False
    for arch in ("LlamaBidirectionalModel", "LlamaBidirectionalForSequenceClassification"):
        assert H.CHECKPOINT_FIELDS[arch]["pooling"] in ("avg", "cls", "last")


def test_telechat2s_gpt2_spellings_follow_the_llama_fields_they_alias():
    """upstream's telechat2.py points LlamaConfig's attribute_map at n_layer / n_head / ffn_hidden_size /
    layer_norm_epsilon (TeleChat2's config.json names): each derived from the field it stands for."""
    from flagos_migrate.verify import config_hints as H

    tele = H.CHECKPOINT_FIELDS["TeleChat2ForCausalLM"]
    assert {k: v["=from"] for k, v in tele.items()} == {
        "n_layer": "num_hidden_layers", "n_head": "num_attention_heads", "ffn_hidden_size": "intermediate_size",
        "layer_norm_epsilon": "rms_norm_eps"}


def test_gemma4_drafts_per_layer_sizes_and_the_dspark_layers_upstream_asserts():
    """Gemma4MTP / Gemma4DSpark read config.per_layer_config[i].head_dim (full-attention layers at global_head_dim,
    twice head_dim); upstream's DSpark asserts every layer is a full-attention one with attention_k_eq_v (its
    load_weights refused the mixed draft the generic layer_types built)."""
    from flagos_migrate.verify import config_hints as H
    from flagos_migrate.verify.runtime_tiny import HEAD_DIM, LAYERS

    mtp, dspark = H.family_values("gemma4_mtp"), H.family_values("gemma4_dspark")
    full = [i for i, t in enumerate(H.SYNTH_VALUES["layer_types"]) if t == "full_attention"]
    assert {int(i) for i in mtp["per_layer_config"]} == set(full)
    assert dspark["layer_types"] == ["full_attention"] * LAYERS and dspark["attention_k_eq_v"] is True
    assert dspark["per_layer_config"] == {str(i): {"head_dim": 2 * HEAD_DIM} for i in range(LAYERS)}


def test_mimo_v2_flash_hub_spellings_are_one_table_with_a_moe_layer():
    """MiMo-V2-Omni's language model and the MiMo-V2 MTP drafts read MiMo-V2-Flash's config.json spellings: one
    table; per-layer moe_layer_freq (the generic int 1 built no MoE layer: mimo_v2.py indexes a list only)."""
    from flagos_migrate.verify import config_hints as H
    from flagos_migrate.verify.runtime_tiny import LAYERS

    omni, mtp = H.family_values("mimo_v2_omni"), H.family_values("mimo_v2_mtp")
    assert {k: v for k, v in omni.items() if k != "vision_config"} == mtp
    assert omni["vision_config"] == {"use_sink": True}
    assert len(mtp["moe_layer_freq"]) == len(mtp["hybrid_layer_pattern"]) == LAYERS
    assert 1 in mtp["moe_layer_freq"] and set(mtp["hybrid_layer_pattern"]) == {0, 1}  # a MoE layer; full and SWA
    cfg, missing = H.with_family({}, ["swa_num_attention_heads", "use_sink", "other"], omni)
    assert missing == ["other"]


def test_a_familys_partial_sub_config_is_set_over_the_bound_classs_defaults(monkeypatch):
    """MiMo-V2-Omni: the vision_config comes from the defaults of the Mimo_VLVisionConfig the model file binds;
    the family's use_sink (no model_type: an overlay) is set over them, not in their place."""
    root = Path(__file__).resolve().parents[1] / "scripts" / "flagos_migrate" / "verify"
    monkeypatch.syspath_prepend(str(root))
    import types

    import _runtime_config as rc

    class VisionConfig:
        base_config_key = "vision_config"

        def to_dict(self):
            return {"depth": 28, "hidden_size": 1280}

    module = types.SimpleNamespace(VisionConfig=VisionConfig)
    synth = {"config": {"vision_config": {"use_sink": True}}, "missing": []}
    filled = rc._bound_parts(module, {"mimovl": VisionConfig}, synth)
    assert synth["config"]["vision_config"] == {"depth": 28, "hidden_size": 1280, "use_sink": True}
    assert filled == ["vision_config (VisionConfig, with use_sink)"]
    whole = {"config": {"vision_config": {"model_type": "siglip_vision_model"}}, "missing": []}
    assert rc._bound_parts(module, {"mimovl": VisionConfig}, whole) == []  # a family's own sub-config stays


def test_a_found_classs_none_defaults_take_the_familys_values(monkeypatch):
    """0.13.0's OvisConfig() holds no llm_config and no visual_tokenizer_config (its get_text_config() was itself:
    RecursionError on both vLLMs), KimiVLConfig's DeepseekV2Config text_config leaves the routing None (the grouped
    top-k asserted): those take the family's values; a value the defaults set stays, and a field the defaults do
    not have is not added to them."""
    root = Path(__file__).resolve().parents[1] / "scripts" / "flagos_migrate" / "verify"
    monkeypatch.syspath_prepend(str(root))
    import _runtime_config as rc
    from flagos_migrate.verify.config_hints import family_values

    class OvisConfig:
        pass

    ovis = {"visual_tokenizer_config": None, "hidden_size": None, "multimodal_max_length": 8192}
    notes = []
    rc._family_over_none(ovis, family_values("ovis"), OvisConfig, notes)
    assert ovis["llm_config"]["model_type"] == "qwen2" and ovis["hidden_size"] == 64
    assert ovis["visual_tokenizer_config"]["backbone_config"]["model_type"] == "aimv2"
    assert "conversation_formatter_class" not in ovis  # not a field of the defaults
    assert ovis["multimodal_max_length"] == 8192 and "OvisConfig's defaults leave them None" in notes[0]
    kimi = {"text_config": {"num_experts_per_tok": None, "n_group": None, "topk_group": 4, "hidden_size": 5120}}
    rc._family_over_none(kimi, family_values("kimi_vl"), OvisConfig, None)
    assert kimi["text_config"] == {"num_experts_per_tok": 2, "n_group": 1, "topk_group": 4, "hidden_size": 5120}
    untouched = {"text_config": None}
    rc._family_over_none(untouched, family_values("no_such_model"), OvisConfig, None)
    assert untouched == {"text_config": None}


def test_a_synthesized_per_layer_config_reads_like_transformers_5s():
    """Gemma 4's MTP and DSpark drafts read config.per_layer_config[i].head_dim: on the pinned transformers 4.57.6
    the synthesized class gives transformers 5's view over the sparse overrides and writes them back as sparse."""
    if not os.environ.get("MMF_PINNED_VENV"):
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    python = Path(os.environ["MMF_PINNED_VENV"]) / "bin" / "python"
    code = ("import sys, json, tempfile; sys.path.insert(0, sys.argv[1]); import _runtime_config as rc\n"
            "cls = rc.synth_class('mmf_synth_test_per_layer')\n"
            "c = cls(hidden_size=64, num_hidden_layers=2, head_dim=16, per_layer_config={'1': {'head_dim': 32}})\n"
            "d = tempfile.mkdtemp(); c.save_pretrained(d)\n"
            "from transformers import AutoConfig; back = AutoConfig.from_pretrained(d)\n"
            "print(json.dumps([[x.head_dim for x in c.per_layer_config], c.head_dim,\n"
            "                  json.load(open(d + '/config.json'))['per_layer_config'],\n"
            "                  [x.head_dim for x in back.per_layer_config]]))")
    proc = subprocess.run([str(python), "-c", code, str(ROOT / "scripts" / "flagos_migrate" / "verify")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[16, 32], 16, {"1": {"head_dim": 32}}, [16, 32]]


def test_a_synthesized_config_without_per_layer_overrides_is_homogeneous_on_both_sides(tmp_path):
    """SYNTH_VALUES' per_layer_config {} (no overrides) wrote a config.json key that transformers 5 reads as a
    heterogeneous config: upstream's step3p5.py then read config.per_layer_config[2] for Step3p5MTP's layer at
    num_hidden_layers and raised IndexError (load skipped, nothing named the checkpoint), while the pinned side
    read is_heterogeneous False. No key is written, so both sides build the same homogeneous config; the
    MTP layer's own kinds stay (the tiny config shape step3p5_mtp needs)."""
    if not os.environ.get("MMF_PINNED_VENV"):
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    if not (UPSTREAM / "vllm" / "model_executor" / "models" / "step3p5_mtp.py").is_file():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    from flagos_migrate.migrate.upstream import Upstream, open_upstream
    from flagos_migrate.verify import config_hints as H

    hints = H.hints_for(Upstream(open_upstream(str(UPSTREAM))), "step3p5_mtp",
                        [{"id": "0", "architecture": "Step3p5MTP", "class": "Step3p5MTP"}])
    synth = hints["0"]["synth"]["config"]
    assert synth["per_layer_config"] == {} and synth["mtp_layer_types"] == ["sliding_attention"]
    assert synth["mtp_mlp_layer_types"] == ["dense"]
    verify = str(ROOT / "scripts" / "flagos_migrate" / "verify")
    write = ("import sys, json; sys.path.insert(0, sys.argv[1]); import _runtime_config as rc\n"
             "cls = rc.synth_class('mmf_synth_test_homogeneous')\n"
             "c = cls(**json.loads(sys.argv[3])); c.save_pretrained(sys.argv[2])\n"
             "print(json.dumps([len(c.per_layer_config), c.is_heterogeneous]))")
    cfg = {k: synth[k] for k in ("per_layer_config", "is_heterogeneous", "layer_types", "mtp_layer_types")}
    cfg.update(hidden_size=64, num_hidden_layers=2)
    python = Path(os.environ["MMF_PINNED_VENV"]) / "bin" / "python"
    proc = subprocess.run([str(python), "-c", write, verify, str(tmp_path), json.dumps(cfg)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [2, False]
    written = json.loads((tmp_path / "config.json").read_text())
    assert "per_layer_config" not in written and written["mtp_layer_types"] == ["sliding_attention"]
    ref = os.environ.get("MMF_REFERENCE_VENV")
    if not ref:
        return
    read = ("import sys, json; sys.path.insert(0, sys.argv[1]); import _runtime_config as rc\n"
            "rc.register_synthesized(sys.argv[2])\n"
            "from transformers import AutoConfig; back = AutoConfig.from_pretrained(sys.argv[2])\n"
            "direct = rc.synth_class('mmf_synth_test_direct')(num_hidden_layers=2, per_layer_config={})\n"
            "print(json.dumps([back.is_heterogeneous, back.per_layer_config[1] is back, direct.is_heterogeneous]))")
    proc = subprocess.run([str(Path(ref) / "bin" / "python"), "-c", read, verify, str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, True, False]


@pytest.fixture(scope="module")
def telechat2_report(tmp_path_factory):
    """TeleChat2 is built from its base class's LlamaConfig; upstream's telechat2.py points that config's
    attribute_map at TeleChat2's own spellings (n_layer, n_head, ffn_hidden_size, layer_norm_epsilon), which
    LlamaConfig lacks: construct was skipped on 'n_layer' until CHECKPOINT_FIELDS carried them."""
    if not os.environ.get("MMF_PINNED_VENV"):
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    plugin = tmp_path_factory.mktemp("synth_telechat2") / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, plugin)
    proc = subprocess.run([sys.executable, str(SCRIPT), "apply", "telechat2", "--upstream", str(UPSTREAM),
                           "--plugin", str(plugin), "--json"], capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    ref = os.environ.get("MMF_REFERENCE_VENV")
    cmd = [sys.executable, str(SCRIPT), "verify", "telechat2", "--plugin", str(plugin), "--upstream", str(UPSTREAM),
           "--run", "--python", os.environ["MMF_PINNED_VENV"], "--json", *(("--reference-python", ref) if ref else ())]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400)
    assert proc.stdout, proc.stderr[-3000:]
    return json.loads(proc.stdout), proc.stderr


def test_a_base_class_config_gets_the_spellings_upstream_aliases_it_to(telechat2_report):
    report, err = telechat2_report
    (arch,) = report["architectures"]
    assert arch["architecture"] == "TeleChat2ForCausalLM" and arch["config_source"] == "base class"
    assert any("n_layer=" in n and "CHECKPOINT_FIELDS" in n for n in arch["notes"]), arch["notes"]
    levels = arch["levels"]
    assert levels["construct"]["status"] == "pass", (levels, err[-2000:])
    if os.environ.get("MMF_REFERENCE_VENV"):  # upstream vLLM's own class names the checkpoint and computes the reference
        assert levels["match"]["status"] == "pass", (levels, err[-2000:])


def test_the_extract_hidden_states_draft_caches_some_target_layers():
    """upstream's ExtractHiddenStatesProposer refuses a draft config without eagle_aux_hidden_state_layer_ids; the
    model's getattr default [] built a cache-only layer of 0 heads (a forward that cached nothing)."""
    from flagos_migrate.verify import config_hints as H
    from flagos_migrate.verify.runtime_tiny import LAYERS

    ids = H.family_values("extract_hidden_states")["eagle_aux_hidden_state_layer_ids"]
    assert ids and all(0 <= i < LAYERS for i in ids)


def test_every_text_config_of_a_config_shrinks():
    """DeepseekVLV2Config keeps text_config and builds its language model from language_config (CHECKPOINT_FIELDS
    copies it): only the first was shrunk, so DeepSeek-OCR built the full DeepSeek-V2 (a worker OOM-killed)."""
    from flagos_migrate.verify.runtime_tiny import HIDDEN, LAYERS, tiny_config

    full = {"model_type": "deepseek_v2", "hidden_size": 1280, "num_hidden_layers": 12, "num_attention_heads": 10,
            "intermediate_size": 6848, "n_routed_experts": 64, "vocab_size": 129280}
    tiny = tiny_config({"model_type": "deepseek_ocr", "text_config": dict(full), "language_config": dict(full)})
    assert tiny["language_config"] == tiny["text_config"]
    assert tiny["language_config"]["hidden_size"] == HIDDEN and tiny["language_config"]["num_hidden_layers"] == LAYERS


def test_a_top_level_copy_of_the_tower_width_follows_the_tower():
    """ERNIE-4.5-VL's resampler reads pixel_hidden_size, its tower's width (transformers 5's resampler takes the
    tower's hidden_size): derived from it (CHECKPOINT_FIELDS), then shrunk with it."""
    from flagos_migrate.verify import config_hints as H
    from flagos_migrate.verify.runtime_tiny import VISION_HIDDEN, tiny_config

    ernie = H.CHECKPOINT_FIELDS["ernie4_5_vl_moe"]
    assert ernie["pixel_hidden_size"] == {"=from": "vision_config.hidden_size"}
    assert ernie["spatial_conv_size"] == {"=from": "vision_config.spatial_merge_size"}
    tiny = tiny_config({"hidden_size": 2560, "pixel_hidden_size": 1280, "text_config": {"hidden_size": 2560},
                        "vision_config": {"hidden_size": 1280, "embed_dim": 1280, "depth": 32, "num_heads": 16}})
    assert tiny["pixel_hidden_size"] == tiny["vision_config"]["hidden_size"] == VISION_HIDDEN


def test_lilicorr_head_sizes_pass_upstreams_checks():
    """upstream's lilicorr.py reads its head's sizes from dflash_config unguarded and refuses: a candidate top-k that
    is not a power of two <= 16, heads not dividing the width, a block_size not above the speculative tokens (the
    harness's 1), one of the two convolution sizes without the other."""
    from flagos_migrate.verify import config_hints as H
    from flagos_migrate.verify.runtime_tiny import HIDDEN

    draft = H.CHECKPOINT_FIELDS["LiLiCorrDraftModel"]["dflash_config"]
    k = draft["lilicorr_candidate_topk"]
    assert 0 < k <= 16 and not k & (k - 1)
    assert HIDDEN % draft["lilicorr_num_heads"] == 0 and draft["block_size"] > 1
    assert bool(draft["conv_kernel_size"]) == bool(draft["conv_group_size"]) and HIDDEN % draft["conv_group_size"] == 0
    assert H.CHECKPOINT_FIELDS["DFlash2DraftModel"]["dflash_config"]["conv_kernel_size"]


def test_step_vls_tower_fields_are_the_ones_upstreams_perception_encoder_reads():
    """StepVL's PerceptionEncoder reads PerceptionEncoderConfig's fields (upstream's step5.py) from a
    Step3VisionEncoderConfig, which declares none of them: construct skipped on output_dim."""
    import ast

    from flagos_migrate.verify import config_hints as H

    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    models = UPSTREAM / "vllm" / "model_executor" / "models"
    tree = ast.parse((models / "step_vl.py").read_text())
    encoder = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PerceptionEncoder")
    init = next(n for n in encoder.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    read = {n.attr for n in ast.walk(init) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "config"}
    declared = set(re.findall(r"self\.(\w+) = ", (UPSTREAM / "vllm/transformers_utils/configs/step3_vl.py").read_text()))
    entry = {k.split(".", 1)[1] for k in H.CHECKPOINT_FIELDS["StepVLForConditionalGeneration"]}
    assert read - declared == entry
    # the same names PerceptionEncoderConfig holds
    pe = (UPSTREAM / "vllm/transformers_utils/configs/step5.py").read_text()
    assert all(f"self.{k} = {k}" in pe for k in entry)


def test_per_modality_size_lists_shrink_and_keep_their_kind_at_the_top_level():
    """ERNIE-4.5-VL's language model reads baidu's top-level per-modality lists (moe_num_experts [text, vision]),
    which transformers 5's text config keeps as one int: the top level kept the text config's int (the pinned
    vLLM's own class: 'int' object is not iterable), and a [text, vision] list of sizes stayed full size."""
    from flagos_migrate.verify.runtime_tiny import EXPERTS, MOE_INTERMEDIATE, tiny_config

    tiny = tiny_config({"hidden_size": 64, "num_hidden_layers": 2, "moe_num_experts": [EXPERTS, EXPERTS],
                        "moe_intermediate_size": [MOE_INTERMEDIATE, 24],
                        "text_config": {"hidden_size": 2560, "num_hidden_layers": 28, "moe_num_experts": 64,
                                        "moe_intermediate_size": [1536, 0]}})
    assert tiny["moe_num_experts"] == [EXPERTS, EXPERTS] and tiny["text_config"]["moe_num_experts"] == EXPERTS
    assert tiny["text_config"]["moe_intermediate_size"] == tiny["moe_intermediate_size"] == [MOE_INTERMEDIATE, 0]


def test_nano_nemotron_vl_family_holds_what_upstream_builds_from():
    """nano_nemotron_vl.py builds its projector from vit_hidden_size (the RADIO tower's width, which vLLM's
    RadioConfig takes from the timm name in VIT_TIMM_DIM_BY_NAME), takes its Mamba state shapes from a Nemotron-H
    text_config (whose heads must tile expand * hidden, and whose pattern gives one kind per layer), and encodes
    its image tags with the tokenizer while built (construct failed on a None tokenizer without them)."""
    from flagos_migrate.verify import config_hints as H
    from flagos_migrate.verify import runtime_tokenizer as RT

    fam = H.family_values("nano_nemotron_vl")
    radio = UPSTREAM / "vllm" / "transformers_utils" / "configs" / "radio.py"
    procs = UPSTREAM / "vllm" / "transformers_utils" / "processors" / "nano_nemotron_vl.py"
    if not (radio.is_file() and procs.is_file()):
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    name = fam["vision_config"]["args"]["model"]
    width = re.search(rf'"{name}": \((\d+),', radio.read_text())
    assert width and int(width.group(1)) == fam["vit_hidden_size"]
    text = fam["text_config"]
    assert text["mamba_num_heads"] * text["mamba_head_dim"] == text["expand"] * text["hidden_size"]
    assert text["mamba_num_heads"] % text["n_groups"] == 0
    assert len(text["hybrid_override_pattern"]) == text["num_hidden_layers"]
    assert fam["force_image_size"] % fam["patch_size"] == 0
    tags = dict(re.findall(r'^(IMG_START|IMG_END|IMG_CONTEXT) = "([^"]+)"', procs.read_text(), re.M))
    assert len(tags) == 3
    for arch in ("NemotronH_Nano_VL_V2", "NemotronH_Nano_Omni_Reasoning_V3", "NemotronH_Super_Omni_Reasoning_V3"):
        assert set(tags.values()) <= set(RT.special_tokens(RT.tokens_for(None, [arch])))
    # the processor reads use_thumbnail unguarded (forward skipped: "no value for 'use_thumbnail'"); the remote-code
    # NemotronH_Nano_VL_V2_Config's default is True
    assert "self.use_thumbnail: bool = config.use_thumbnail" in procs.read_text() and fam["use_thumbnail"] is True


def test_ovis2_5_vit_config_holds_every_field_upstreams_navit_tower_reads():
    """ovis2_5.py builds Siglip2NavitModel(config.vit_config), which reads these bare (construct skipped on
    vit_config without them); its head is visual_vocab_size minus the 4 indicator ids wide."""
    from flagos_migrate.verify import config_hints as H

    src = UPSTREAM / "vllm" / "model_executor" / "models" / "siglip2navit.py"
    if not src.is_file():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    fam = H.family_values("ovis2_5")
    reads = set(re.findall(r"\bconfig\.([a-z_]+)\b", src.read_text())) - {"get_text_config"}
    assert reads and reads <= set(fam["vit_config"])
    assert fam["vit_config"]["model_type"] == "siglip2_navit"  # the one type upstream's _init_backbone builds
    assert fam["visual_vocab_size"] > 4


def test_kanana_v_projector_joins_its_tower_to_its_language_model():
    """kanana_v.py's abstractor reads projector_config by attribute (a nested config: the family's dict needs a
    model_type to become one), takes the tower's width in and writes the language model's width out."""
    from flagos_migrate.verify import config_hints as H

    fam = H.family_values("kanana_v")
    proj, tower, text = fam["projector_config"], fam["vision_config"], fam["text_config"]
    assert isinstance(proj.get("model_type"), str)
    assert proj["encoder_hidden_size"] == tower["embed_dim"] and proj["output_hidden_size"] == text["hidden_size"]
    assert text["architectures"] == ["LlamaForCausalLM"]  # what upstream builds from text_config
