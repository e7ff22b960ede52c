"""``verify/config_hints``: where the runtime harness gets a config class the pinned stack lacks.

Pure functions over source text (config reads, synthesis, drafts, base classes); the last tests
read the real upstream vLLM source when it is there (~/.cache/mmf/src/vllm-0.33.0 or $MMF_UPSTREAM).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from flagos_migrate.verify import config_hints as H
from flagos_migrate.verify.runtime_tiny import HIDDEN, LAYERS, MOE_INTERMEDIATE

UPSTREAM = Path(os.environ.get("MMF_UPSTREAM") or Path.home() / ".cache" / "mmf" / "src" / "vllm-0.33.0")

MODEL = textwrap.dedent('''
    class Attention(nn.Module):
        def __init__(self, config, vllm_config, layer_idx):
            self.hidden = config.hidden_size
            self.window = config.sliding_window if config.layer_types[layer_idx] == "sliding_attention" else None
            self.bias = getattr(config, "attention_bias", False)
            self.custom = getattr(config, "my_custom_flag", 7)
            self.cache = vllm_config.cache_config.block_size       # not the HF config
            text = config.get_text_config()                        # a method, not a field
            if hasattr(config, "index_topk"):                      # optional branch
                self.topk = config.index_topk
            self.gate = config.router_gate_kind                    # nothing values this name
            self.use_router_bias = config.use_router_bias
            assert self.use_router_bias, "only with a router bias"  # a flag the code needs set

    class Model(nn.Module):
        def __init__(self, *, vllm_config, prefix=""):
            config = vllm_config.model_config.hf_config
            for t in config.mlp_layer_types:
                pass
            self.n = self.config.num_local_experts
''')


def test_config_reads_keep_hf_config_fields_only_with_their_defaults():
    reads = H.config_reads(MODEL)
    assert set(reads) == {"hidden_size", "sliding_window", "layer_types", "attention_bias", "my_custom_flag",
                          "index_topk", "router_gate_kind", "mlp_layer_types", "num_local_experts", "use_router_bias"}
    assert reads["use_router_bias"].get("asserted") and not reads["hidden_size"].get("asserted")
    assert reads["hidden_size"]["default"] is H.MISSING
    assert reads["attention_bias"]["default"] is False and reads["my_custom_flag"]["default"] == 7
    assert reads["layer_types"]["indexed"] and reads["mlp_layer_types"]["indexed"]
    assert not reads["hidden_size"]["indexed"]
    assert reads["index_topk"].get("guarded")


def test_synthesized_config_values_by_name_and_lists_what_no_name_values():
    cfg, missing = H.synthesize(H.config_reads(MODEL))
    assert cfg["hidden_size"] == HIDDEN and cfg["num_local_experts"] == 4
    assert cfg["attention_bias"] is False
    assert cfg["use_router_bias"] is True  # use_* is off by name, but the code asserts it
    assert "my_custom_flag" not in cfg  # read with a default: every reader keeps its own
    assert len(cfg["layer_types"]) == LAYERS and "sliding_attention" in cfg["layer_types"]
    assert "index_topk" not in cfg  # hasattr-guarded: left out, so the code takes its plain branch
    assert missing == ["router_gate_kind"]


def test_synthesis_table_patterns():
    assert H.synth_value("use_qk_norm") is False and H.synth_value("o_proj_bias") is False
    assert H.synth_value("shared_expert_intermediate_size") == H.synth_value("moe_intermediate_size")
    assert H.synth_value("dense_intermediate_size") == H.SYNTH_VALUES["intermediate_size"]
    assert H.synth_value("num_mova_experts") == H.SYNTH_VALUES["num_experts"]
    assert H.synth_value("router_gate_kind") is H.MISSING


def test_a_synthesized_decoder_is_causal():
    # deepseek_v2.py's getattr(config, "is_causal", True): the is_ pattern's False made glm4_moe_lite_mtp's
    # synthesized draft encoder-only upstream (0.13.0's DeepseekV2Attention never reads it): match 1.29 -> 0
    src = textwrap.dedent("""
        def f(config):
            if getattr(config, "is_causal", True):
                return 1
    """)
    cfg, _ = H.synthesize(H.config_reads(src))
    assert cfg["is_causal"] is True and H.synth_value("is_encoder") is False


def test_rope_fields_come_together_so_either_side_finds_its_spelling():
    cfg, _ = H.synthesize({"rope_parameters": {"default": H.MISSING, "indexed": False}})
    assert cfg["rope_theta"] == cfg["rope_parameters"]["rope_theta"] and cfg["rope_scaling"] is None


def test_completion_values_fields_read_without_a_default():
    done = H.completion(H.config_reads(MODEL))
    assert set(done["fill"]) == {"hidden_size", "sliding_window", "layer_types", "mlp_layer_types",
                                 "num_local_experts", "use_router_bias"}  # not attention_bias (a default), index_topk (guarded)
    assert done["fill"]["layer_types"] == H.SYNTH_VALUES["layer_types"]
    assert done["indexed"] == ["layer_types", "mlp_layer_types"]


OVERRIDE = textwrap.dedent('''
    class SpeculativeConfig:
        @staticmethod
        def hf_config_override(hf_config, transformers_mtp_overrides=None):
            initial_architecture = hf_config.architectures[0]
            if hf_config.model_type in ("deepseek_v3", "deepseek_v32"):
                hf_config.model_type = "deepseek_mtp"
            if hf_config.model_type == "deepseek_mtp":
                n_predict = getattr(hf_config, "num_nextn_predict_layers", None)
                hf_config.update({"n_predict": n_predict, "architectures": ["DeepSeekMTPModel"]})
            if hf_config.architectures[0] == "Glm4MoeLiteForCausalLM":
                hf_config.model_type = "glm4_moe_lite_mtp"
                hf_config.update({"num_hidden_layers": 0, "n_predict": 1, "architectures": ["Glm4MoeLiteMTPModel"]})
            if initial_architecture == "MistralLarge3ForCausalLM":
                hf_config.update({"architectures": ["EagleMistralLarge3ForCausalLM"]})
            return hf_config
''')


def test_draft_bases_read_hf_config_override_backwards():
    drafts = H.draft_bases(OVERRIDE)
    assert drafts["DeepSeekMTPModel"] == {"model_types": ["deepseek_mtp", "deepseek_v3", "deepseek_v32"],
                                          "architectures": [], "update": {"n_predict": 1}}
    assert drafts["Glm4MoeLiteMTPModel"]["architectures"] == ["Glm4MoeLiteForCausalLM"]
    assert drafts["Glm4MoeLiteMTPModel"]["update"] == {"num_hidden_layers": 0, "n_predict": 1}
    assert drafts["EagleMistralLarge3ForCausalLM"]["architectures"] == ["MistralLarge3ForCausalLM"]
    assert H.draft_bases("def other(): pass") == {} and H.draft_bases("not python (") == {}


def test_class_ancestors_follow_same_file_bases_nearest_first():
    src = textwrap.dedent('''
        class A(nn.Module, SupportsPP): pass
        class B(A): pass
        class C(B, mod.Mixin): pass
    ''')
    assert H.class_ancestors(src, "C") == ["B", "Mixin", "A", "SupportsPP"]
    assert H.class_ancestors(src, "Missing") == []


def test_class_ancestors_follow_a_module_level_alias_of_a_wrapped_class():
    # upstream d3.py: the base is a module-level name bound to as_seq_cls_model(Qwen3_5ForConditionalGeneration)
    src = textwrap.dedent('''
        if TYPE_CHECKING:
            _Base = Qwen3_5ForConditionalGeneration
        else:
            _Base = as_seq_cls_model(Qwen3_5ForConditionalGeneration)
        class D3ForSequenceClassification(_Base): pass
        Other = make_thing(4)
    ''')
    assert H.class_ancestors(src, "D3ForSequenceClassification") == ["_Base", "Qwen3_5ForConditionalGeneration"]
    # a class of the file named like an alias is the class, not the alias
    same = "class A(B): pass\nclass B: pass\nB2 = wrap(C)\n"
    assert H.class_ancestors(same, "A") == ["B"]


def _upstream():
    if not (UPSTREAM / "vllm" / "config" / "speculative.py").is_file():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    from flagos_migrate.migrate.upstream import Upstream, open_upstream

    return Upstream(open_upstream(str(UPSTREAM)))


@pytest.mark.parametrize("model, arch, cls, kind, expect", [
    ("deepseek_mtp", "DeepSeekMTPModel", "DeepSeekMTP", "draft", "deepseek_v3"),
    ("mistral_large_3", "MistralLarge3ForCausalLM", "MistralLarge3ForCausalLM", "bases", "DeepseekV3ForCausalLM"),
    ("deepseek_v2", "DeepseekForCausalLM", "DeepseekForCausalLM", "bases", "DeepseekV2ForCausalLM"),
    # a base registered in another file brings its own bases there (InternS2Preview subclasses Qwen3_5Moe)
    ("interns2_mobius", "InternS2MobiusForConditionalGeneration", "InternS2MobiusForConditionalGeneration", "bases",
     "Qwen3_5MoeForConditionalGeneration"),
    # a base class registered under another architecture name brings that architecture (its config): Clef-Omni's
    # Qwen3OmniMoeThinkerForConditionalGeneration is Qwen3OmniMoeForConditionalGeneration's class
    ("clef_omni", "ClefOmniForJointSchema", "ClefOmniForJointSchema", "bases", "Qwen3OmniMoeForConditionalGeneration"),
])
def test_hints_from_the_real_upstream_source(model, arch, cls, kind, expect):
    hints = H.hints_for(_upstream(), model, [{"id": "0", "architecture": arch, "class": cls}])["0"]
    found = hints["draft"]["model_types"] if kind == "draft" else hints["bases"]
    assert expect in found
    assert hints["synth"]["model_type"].startswith("mmf_synth_")


def test_a_checkpoint_naming_its_own_remote_config_is_synthesized_not_built_from_a_base_class():
    """P2 remote_config_first (step3p7, molmo2): the checkpoint's remote-code config, which both vLLMs read through
    AutoConfig, is the one a serve builds from: not the base class's Step3VLConfig (a Step3 text model) nor
    transformers 5's renaming class. The hints say so (the worker then synthesizes; without the table entry, step3p7
    was built from Step3VLConfig) and the families hold every field upstream's files read."""
    import re

    from flagos_migrate.catalog.tables import REMOTE_CONFIG_FIRST

    if not H._tf5_arch_model_types():
        pytest.skip("no transformers 5 wheel")
    up = _upstream()
    hints = H.hints_for(up, "step3p7", [{"id": "0", "architecture": "Step3p7ForConditionalGeneration",
                                         "class": "Step3p7ForConditionalGeneration"}])["0"]
    assert "step3p7" in REMOTE_CONFIG_FIRST and hints["synth"]["remote_config"] and hints["bases"] == []
    vision = hints["synth"]["config"]["vision_config"]
    pe = (UPSTREAM / "vllm" / "model_executor" / "models" / "step_vl.py").read_text()
    block = pe[pe.index("class PerceptionEncoder("):]
    block = block[:block.index("\nclass ", 1)]
    assert set(re.findall(r"\bconfig\.([a-z_0-9]+)\b", block)) <= set(vision)
    assert vision["output_dim"] == vision["width"]
    base = H.hints_for(up, "step3_vl", [{"id": "0", "architecture": "Step3VLForConditionalGeneration",
                                         "class": "Step3VLForConditionalGeneration"}])["0"]
    assert not base["synth"]["remote_config"]  # its own Step3VLConfig, registered upstream
    # molmo2.py copies each field of its VitConfig / AdapterConfig / TextConfig dataclasses from the sub-config
    fam = H.family_values("molmo2")
    src = (UPSTREAM / "vllm" / "model_executor" / "models" / "molmo2.py").read_text()
    for cls, key in (("VitConfig", "vit_config"), ("AdapterConfig", "adapter_config"), ("TextConfig", "text_config")):
        body = src[src.index(f"class {cls}:"):]
        body = body[:body.index("\n\n\n")]
        fields = set(re.findall(r"^    ([a-z_0-9]+): ", body, re.M))
        assert fields and fields <= set(fam[key]), (key, fields - set(fam[key]))
        assert not fam[key]["model_type"] or fam[key]["model_type"].startswith("mmf_synth_")  # no class renames it
    adapter, vit = fam["adapter_config"], fam["vit_config"]
    assert adapter["text_hidden_size"] == fam["text_config"]["hidden_size"]
    assert all(-vit["num_hidden_layers"] <= i < vit["num_hidden_layers"] for i in adapter["vit_layers"])
    grid = vit["image_default_input_size"][0] // vit["image_patch_size"]
    assert vit["image_num_pos"] == grid * grid


def test_llava_onevision2s_remote_config_stand_in_holds_what_upstream_reads():
    """LLaVA-OneVision-2's checkpoints name their own remote-code LlavaOnevision2Config (no transformers class): the
    family holds every vision_config field upstream's tower and processing info read (getattr with a default too,
    at the released defaults), a Qwen3 text_config (upstream builds Qwen3ForCausalLM from it), an image token in the
    tiny vocabulary, and a head_dim the 4:6:6 vision rope accepts; the hints then miss nothing."""
    import re

    fam = H.family_values("llava_onevision2")
    src = (UPSTREAM / "vllm" / "model_executor" / "models" / "llava_onevision2.py").read_text()
    vision = fam["vision_config"]
    tower = src[src.index("class LlavaOnevision2VisionTower("):]
    tower = tower[:tower.index("\nclass ", 1)]
    info = src[src.index("class LlavaOnevision2ProcessingInfo("):]
    info = info[:info.index("\nclass ", 1)]
    read = set(re.findall(r"\bvision_config\.([a-z_0-9]+)\b", tower + info))
    read |= set(re.findall(r"getattr\(\s*(?:config\.)?vision_config,\s*\"([a-z_0-9]+)\"", src))
    assert {"patch_size", "spatial_merge_size", "hidden_size", "num_hidden_layers", "frame_windows_size",
            "layer_norm_eps", "temporal_patch_size"} <= read <= set(vision), read - set(vision)
    assert vision["model_type"].startswith("mmf_synth_")  # no class renames it: the same plain config on both sides
    # the released defaults where upstream's getattr has one: the stand-in reads as a checkpoint would
    for key, default in (("num_channels", "3"), ("frame_windows_size", "4"), ("rope_theta", "10000.0"),
                         ("layer_norm_eps", "1e-6"), ("temporal_patch_size", "1")):
        assert f'"{key}", {default})' in src and vision[key] == float(default), key
    head_dim = vision["hidden_size"] // vision["num_attention_heads"]
    assert "assert half % 16 == 0" in src and (head_dim // 2) % 16 == 0
    text = fam["text_config"]
    assert 'architectures=["Qwen3ForCausalLM"]' in src and text["model_type"] == "qwen3"
    assert "config.image_token_id" in src and 0 <= fam["image_token_id"] < text["vocab_size"]
    hints = H.hints_for(_upstream(), "llava_onevision2", [{"id": "0", "architecture": "LlavaOnevision2ForConditionalGeneration",
                                                          "class": "LlavaOnevision2ForConditionalGeneration"}])["0"]
    assert hints["synth"]["missing"] == [] and hints["synth"]["config"]["vision_config"] == vision
    assert "LlavaOnevision2ForConditionalGeneration" not in H.SYNTH_BLOCKERS


def test_a_remote_code_moe_gets_a_complete_synthesized_config_from_upstream():
    """MiniMax-M2's config lives in its hub repo: every field upstream's file reads gets a value."""
    hints = H.hints_for(_upstream(), "minimax_m2", [{"id": "0", "architecture": "MiniMaxM2ForCausalLM",
                                                     "class": "MiniMaxM2ForCausalLM"}])["0"]
    synth = hints["synth"]
    assert synth["missing"] == []
    cfg = synth["config"]
    assert (cfg["hidden_size"], cfg["num_local_experts"], cfg["num_experts_per_tok"], cfg["num_hidden_layers"]) == \
        (HIDDEN, 4, 2, LAYERS)
    assert cfg["num_attention_heads"] % cfg["num_key_value_heads"] == 0


# ------------------------------------------------------------------------------ the worker's side


def _worker_modules(monkeypatch):
    # the worker's modules import each other by bare name from their directory; standard library only at import
    root = Path(__file__).resolve().parents[1] / "scripts" / "flagos_migrate" / "verify"
    monkeypatch.syspath_prepend(str(root))
    import _runtime_config
    import _runtime_worker

    return _runtime_config, _runtime_worker


def test_a_found_class_gets_what_upstream_reads_and_its_defaults_lack(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)

    class Defaults:  # a config class instance: layer_types None, no num_nextn_predict_layers
        layer_types = None
        hidden_size = 2048

    source = {"layer_types": None, "hidden_size": 2048}
    notes: list = []
    complete = {"fill": {"layer_types": ["sliding_attention", "full_attention"], "hidden_size": 64,
                         "num_nextn_predict_layers": 1}, "indexed": ["layer_types"]}
    rc._complete(source, Defaults(), complete, "AfmoeConfig", notes)
    assert source == {"layer_types": ["sliding_attention", "full_attention"], "hidden_size": 2048,
                      "num_nextn_predict_layers": 1}  # a set value stays: the tiny config shrinks it
    assert "num_nextn_predict_layers, layer_types" in notes[0]


def test_a_blocker_is_said_instead_of_the_advice_to_pass_a_real_config(monkeypatch):
    """SYNTH_BLOCKERS: an architecture no config.json builds here says why, not "pass --hf-config", also for the
    bridge's own sub-config (step3p7's transformers 5 Step3p7VisionConfig); without it the sub-config is P39's."""
    _, worker = _worker_modules(monkeypatch)
    why = H.SYNTH_BLOCKERS["NemotronH_Omni_Reasoning_V3"]["why"]
    exc = AttributeError("'Step3p7VisionConfig' object has no attribute 'output_dim'")
    bridge = {"config_source": "bridge", "config_class": "Step3p7Config"}
    reason = worker._synth_lacks(bridge, exc, None, why)
    assert reason.startswith("the bridge config (Step3p7VisionConfig) has no 'output_dim'") and reason.endswith(why)
    assert "--hf-config" not in reason
    assert worker._synth_lacks(bridge, exc) is None
    synth = worker._synth_lacks({"config_source": "synthesized"}, AttributeError(
        "'SynthesizedConfig' object has no attribute 'force_image_size'"), None, "its tower is remote code")
    assert synth.endswith("values it: its tower is remote code")


def test_only_what_register_model_registers_of_a_bridge_shadowing_a_remote_config(monkeypatch):
    """P2 remote_config_first: of a bridge module defining such a model type (step3p7's holds step3p5 too), the worker
    registers only the model types register_model() registers; other modules' bridges stay."""
    _, worker = _worker_modules(monkeypatch)

    def cls(name, module):
        return type(name, (), {"__module__": module})

    mod = "vllm_fl.configs.tf5_step3p7"
    top, text, vision = cls("Step3p7Config", mod), cls("Step3p7TextConfig", mod), cls("Step3p7VisionConfig", mod)
    other = cls("Qwen3_5Config", "vllm_fl.configs.tf5_qwen3_5")
    bridges = {"step3p7": top, "step3p5": text, "step3p5_vision": vision, "qwen3_5": other}
    req = {"unregistered_bridges": ["molmo2", "step3p7"], "registered_configs": ["step3p5"]}
    assert worker._registered_bridges(bridges, req) == {"step3p5": text, "qwen3_5": other}
    assert worker._registered_bridges(bridges, {}) == bridges  # nothing to leave out: all as before


def test_each_synth_blocker_holds_in_the_sources():
    """Each SYNTH_BLOCKERS entry's evidence is in upstream's source / transformers 5's package (skipped without)."""
    import glob

    tf5 = sorted(glob.glob(str(Path(os.environ.get("MMF_REFERENCE_VENV") or Path.home() / ".cache/mmf/venv-vllm033")
                               / "lib" / "python3*" / "site-packages")))
    roots = {"upstream": UPSTREAM, "tf5": Path(tf5[0]) if tf5 else None}
    if not UPSTREAM.is_dir() or roots["tf5"] is None:
        pytest.skip("needs upstream vLLM 0.33.0's source and the reference venv (transformers 5)")
    assert H.SYNTH_BLOCKERS
    for arch, entry in H.SYNTH_BLOCKERS.items():
        assert entry["why"] and entry["evidence"], arch
        for root, path, text in entry["evidence"]:
            assert text in (roots[root] / path).read_text(), (arch, path, text)


def test_each_unexercised_path_holds_in_the_sources_and_is_said_with_a_pass():
    """UNEXERCISED: what a passing match leaves out (NemotronHPuzzle's per-layer path: a remote-code config method
    no class here defines; gemma4_mm's image / audio paths) is in the architecture's notes, and its evidence is in
    the sources while what it says is absent is not (skipped without upstream's source and transformers 5)."""
    import glob

    from flagos_migrate.verify import runtime

    spec = {"architecture": "NemotronHPuzzleForCausalLM", "module": "vllm_fl.models.nemotron_h",
            "class": "NemotronHForCausalLM",
            "config_hints": {"unexercised": H.UNEXERCISED["NemotronHPuzzleForCausalLM"]["why"]}}
    passed = {"architecture": spec["architecture"], "first_error": None, "notes": ["n"],
              "levels": {lv: {"status": "pass", "reason": None} for lv in runtime.LEVELS[:-1]}}
    ref = {"reference": "vllm-0.33.0", "max_abs_logit_diff": 0.0}
    arch = runtime.shape_architecture(spec, passed, ref, want_match=True)
    assert arch["levels"]["match"]["status"] == "pass"
    assert arch["notes"][-1].startswith("not covered by this match: the Puzzle per-layer path")
    plain = runtime.shape_architecture({**spec, "config_hints": {"unexercised": None}}, passed, ref, want_match=True)
    assert plain["notes"] == ["n"]
    tf5 = sorted(glob.glob(str(Path(os.environ.get("MMF_REFERENCE_VENV") or Path.home() / ".cache/mmf/venv-vllm033")
                               / "lib" / "python3*" / "site-packages")))
    roots = {"upstream": UPSTREAM, "tf5": Path(tf5[0]) if tf5 else None}
    if not UPSTREAM.is_dir() or roots["tf5"] is None:
        pytest.skip("needs upstream vLLM 0.33.0's source and the reference venv (transformers 5)")
    for name, entry in H.UNEXERCISED.items():
        assert entry["why"] and entry["evidence"], name
        for root, path, text in entry["evidence"]:
            assert text in (roots[root] / path).read_text(), (name, path, text)
        for root, path, text in entry.get("absent", ()):
            assert text not in (roots[root] / path).read_text(), (name, path, text)


def test_a_build_short_of_a_synthesized_attribute_is_skipped_naming_it(monkeypatch):
    _, worker = _worker_modules(monkeypatch)
    exc = AttributeError("'SynthesizedConfig' object has no attribute 'router_gate_kind'")
    reason = worker._synth_lacks({"config_source": "synthesized"}, exc)
    assert "'router_gate_kind'" in reason and "synthesized config has no value" in reason
    assert worker._synth_lacks({"config_source": "registry"}, exc) is None  # a real class: the migration's error
    draft = AttributeError("'Glm4vTextConfig' object has no attribute 'num_nextn_predict_layers'")
    assert "draft config (Glm4vTextConfig) has no 'num_nextn_predict_layers'" in \
        worker._synth_lacks({"config_source": "draft"}, draft)
    assert worker._synth_lacks({"config_source": "synthesized"}, AttributeError("'Foo' object has no attribute 'x'")) \
        is None
    # transformers 5's own class (a bridge) without a field upstream reads: only a real config.json carries it
    omni = AttributeError("'NemotronH_Omni_Reasoning_V3_Config' object has no attribute 'patch_size'")
    bridge = {"config_source": "bridge", "config_class": "NemotronH_Omni_Reasoning_V3_Config"}
    assert "bridge config (NemotronH_Omni_Reasoning_V3_Config) has no 'patch_size'" in worker._synth_lacks(bridge, omni)
    # a pinned transformers class under the bridge (a text_config) lacking a field: the migration's (P39)
    pinned_sub = AttributeError("'Lfm2Config' object has no attribute 'projector_use_layernorm'")
    assert worker._synth_lacks(bridge, pinned_sub) is None
    # a transformers 5 alias the pinned class lacks (P40): no real config.json carries it either, so the build
    # fails with every checkpoint (longcat_flash_mtp hands LongcatFlashConfig to a layer reading intermediate_size)
    alias = AttributeError("'LongcatFlashConfig' object has no attribute 'intermediate_size'")
    aliases = {"LongcatFlashConfig": ["intermediate_size", "moe_intermediate_size"]}
    assert worker._synth_lacks({"config_source": "draft"}, alias, aliases) is None
    assert "has no 'intermediate_size'" in worker._synth_lacks({"config_source": "draft"}, alias, {"Other": ["x"]})


def test_a_missing_attribute_of_vllms_own_config_is_the_migrations_not_the_tiny_configs(monkeypatch):
    # colqwen3_5's vendored pooler reads PoolerConfig.get_tok_pooling_type, which vLLM 0.13.0's PoolerConfig lacks:
    # with a base-class config that was reported as "the base class config (PoolerConfig) has no ..." and skipped
    import sys
    import types

    _, worker = _worker_modules(monkeypatch)
    fake = types.ModuleType("vllm.config")
    fake.PoolerConfig = type("PoolerConfig", (), {})
    fake.get_current_vllm_config = lambda: None  # a function of the module is no config class
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setitem(sys.modules, "vllm.config", fake)
    pooler = AttributeError("'PoolerConfig' object has no attribute 'get_tok_pooling_type'")
    assert worker._synth_lacks({"config_source": "base class"}, pooler) is None
    hf = AttributeError("'Qwen3_5Config' object has no attribute 'joint_head_config'")
    assert "base class config (Qwen3_5Config) has no 'joint_head_config'" in \
        worker._synth_lacks({"config_source": "base class"}, hf)


# ------------------------------------------------------------------------------ required reads, layer kinds, equivalents

HYBRID = textwrap.dedent('''
    ALL_DECODER_LAYER_TYPES = {"attention": AttentionLayer, "mamba": MambaLayer}

    class DecoderLayer(nn.Module):
        def __init__(self, config, layer_idx):
            if not hasattr(config, "first_k_dense_replace"):
                raise ValueError("first_k_dense_replace not exist,please check config")
            if hasattr(config, "index_topk"):
                self.topk = config.index_topk
            self.dense = layer_idx < config.first_k_dense_replace
            self.size = config.expert_hidden_dim
            self.layer = ALL_DECODER_LAYER_TYPES[config.layer_types[layer_idx]]
''')


def test_a_hasattr_that_only_raises_reads_a_required_field_and_layer_kinds_come_from_the_lookup_table():
    reads = H.config_reads(HYBRID)
    assert not reads["first_k_dense_replace"].get("guarded")  # raises when absent: required (hy_v3)
    assert reads["index_topk"].get("guarded")  # a real option stays one
    assert reads["layer_types"]["kinds"] == ["attention", "mamba"]
    done = H.completion(reads)
    assert done["fill"]["first_k_dense_replace"] == 1
    assert done["fill"]["layer_types"] == ["attention", "mamba"]  # never a kind the model has no layer for
    assert done["fill"]["expert_hidden_dim"] is None  # no table value: only from the class's own field
    assert done["equivalent"] == {"expert_hidden_dim": ["moe_intermediate_size", None],
                                  "first_k_dense_replace": ["mlp_layer_types", "dense"]}
    cfg, missing = H.synthesize(reads)
    assert cfg["layer_types"] == ["attention", "mamba"] and missing == ["expert_hidden_dim"]


IF_CHAIN_HYBRID = '''
class Block(nn.Module):
    def __init__(self, config, layer_type, prefix=""):
        self.window = getattr(config, "block_attn_res_block_size", None)
        if layer_type == "linear_attention":
            self.linear_attn = Linear(config.linear_num_key_heads, config.linear_num_value_heads,
                                      config.linear_key_head_dim, config.linear_value_head_dim,
                                      config.linear_conv_kernel_dim)
        elif layer_type == "full_attention":
            self.self_attn = Attention(config)
        else:
            raise ValueError(f"Invalid layer_type {layer_type}")

class Model(nn.Module):
    def __init__(self, config):
        self.layers = [Block(config, config.layer_types[i]) for i in range(config.num_hidden_layers)]
'''


def test_layer_kinds_come_from_an_if_chain_that_raises_on_any_other_kind():
    reads = H.config_reads(IF_CHAIN_HYBRID)
    assert reads["layer_types"]["kinds"] == ["linear_attention", "full_attention"]
    cfg, missing = H.synthesize(reads)
    assert cfg["layer_types"] == ["linear_attention", "full_attention"] and missing == []
    # equal key/value head counts of one size (AliceAI's KDA refuses others), a 4-tap conv
    assert cfg["linear_num_key_heads"] == cfg["linear_num_value_heads"]
    assert cfg["linear_key_head_dim"] == cfg["linear_value_head_dim"] and cfg["linear_conv_kernel_dim"] == 4
    assert cfg["block_attn_res_block_size"] == 1  # read with a None default that the model refuses
    # a chain that falls through (no raise) names no kinds: the model may build a layer for anything else
    lenient = IF_CHAIN_HYBRID.replace('raise ValueError(f"Invalid layer_type {layer_type}")', "pass")
    assert "kinds" not in H.config_reads(lenient)["layer_types"]


def test_speculative_method_of_draft_architectures():
    reads_draft = "config = vllm_config.speculative_config.draft_model_config.hf_config"
    assert H.speculative_method("NemotronHMTPModel", "", True) == "mtp"  # a draft of hf_config_override
    assert H.speculative_method("EagleLlamaForCausalLM", reads_draft, False) == "eagle"
    assert H.speculative_method("Eagle3LlamaForCausalLM", "assert vllm_config.speculative_config is not None",
                                False) == "eagle3"
    # a base model that reads the speculative config only when there is one is not a draft
    assert H.speculative_method("Qwen3NextForCausalLM", reads_draft, False) is None
    assert H.speculative_method("LlamaEagleHelper", "if vllm_config.speculative_config: pass", False) is None
    # an architecture named unlike a draft, registered to a draft class upstream: the class names it
    assert H.speculative_method("PeagleQwen3ForCausalLM", reads_draft, False, "Eagle3Qwen3ForCausalLM") == "eagle3"
    assert H.speculative_method("PeagleQwen3ForCausalLM", reads_draft, False) is None
    assert H.speculative_method("EagleLlamaForCausalLM", reads_draft, False, "Eagle3LlamaForCausalLM") == "eagle"


def test_the_found_class_gives_what_upstream_spells_its_own_way(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)

    class HYV3Defaults:  # transformers 5's HYV3Config: no first_k_dense_replace / expert_hidden_dim / qk_norm
        model_type = "hy_v3"
        moe_intermediate_size = 1536
        mlp_layer_types = ["dense", "sparse", "sparse"]

    source = {"moe_intermediate_size": 1536, "mlp_layer_types": ["dense", "sparse", "sparse"]}
    notes: list = []
    done = H.completion(H.config_reads(HYBRID))
    rc._complete(source, HYV3Defaults(), done, "HYV3Config", notes)
    assert source["expert_hidden_dim"] == 1536 and source["first_k_dense_replace"] == 1
    assert source["layer_types"] == ["attention", "mamba"]
    assert source["qk_norm"] is True  # its released checkpoints carry q_norm/k_norm (read with default False)
    assert any("expert_hidden_dim = moe_intermediate_size" in n and "mlp_layer_types's leading 'dense'" in n
               for n in notes), notes
    # without the class's field: the table's value, or nothing when the table has none
    bare: dict = {}
    rc._complete(bare, object(), done, "Other", [])
    assert bare["first_k_dense_replace"] == 1 and "expert_hidden_dim" not in bare and "qk_norm" not in bare


def test_afmoe_routes_as_its_released_checkpoints_not_as_the_tables_generic_softmax(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)
    # upstream afmoe.py reads these without a default; transformers 5's AfmoeConfig (the plugin's bridge) lacks them
    reads = H.config_reads("def f(config):\n    a = config.score_func\n    b = config.route_norm\n"
                           "    c = config.n_group\n    d = config.topk_group\n")
    done = H.completion(reads)
    assert done["fill"]["score_func"] == "softmax"  # the generic table alone would build a softmax router

    class AfmoeBridge:
        model_type = "afmoe"

    source: dict = {}
    rc._complete(source, AfmoeBridge(), done, "AfmoeConfig", [])
    assert source == {"score_func": "sigmoid", "route_norm": True, "n_group": 1, "topk_group": 1}

    class PinnedAfmoe:  # the pinned vLLM's own AfmoeConfig has the fields: its values stay
        model_type = "afmoe"
        score_func, route_norm, n_group, topk_group = "sigmoid", True, 1, 1

    kept: dict = {}
    rc._complete(kept, PinnedAfmoe(), done, "AfmoeConfig", [])
    assert kept == {}


def test_released_values_win_over_a_class_default_only_when_the_tiny_config_comes_from_the_defaults(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)
    done = H.completion({})

    class Phimoe:  # 4.57.6's PhimoeConfig defaults both False; Phi-3.5-MoE's config.json sets both
        model_type = "phimoe"
        attention_bias = False
        lm_head_bias = False

    source = {"attention_bias": False, "lm_head_bias": False}
    notes: list = []
    rc._complete(source, Phimoe(), done, "PhimoeConfig", notes, defaults=True)
    assert source == {"attention_bias": True, "lm_head_bias": True} and "another default" in notes[0]
    real = {"attention_bias": False, "lm_head_bias": False}  # from a real config.json (--hf-config): it stays
    rc._complete(real, Phimoe(), done, "PhimoeConfig", [], defaults=False)
    assert real == {"attention_bias": False, "lm_head_bias": False}


def test_minicpm3_stays_dense_as_its_released_checkpoints(monkeypatch):
    from flagos_migrate.verify.runtime_tiny import EXPERTS, tiny_config

    rc, _ = _worker_modules(monkeypatch)
    # upstream minicpm.py: the getattr with default picks the branch, the MoE branch reads it bare
    reads = H.config_reads("def f(self):\n    self.num_experts = getattr(self.config, 'num_experts', 0)\n"
                           "    if self.num_experts:\n        n = self.config.num_experts\n"
                           "        k = self.config.num_experts_per_tok\n")
    done = H.completion(reads)
    assert done["fill"]["num_experts"] == EXPERTS  # the bare read wins: the generic table alone builds a MoE

    class MiniCPM3Bridge:  # transformers 5's MiniCPM3Config has no num_experts
        model_type = "minicpm3"

    source: dict = {"hidden_size": 2560, "num_attention_heads": 40, "num_hidden_layers": 62}
    notes: list = []
    rc._complete(source, MiniCPM3Bridge(), done, "MiniCPM3Config", notes)
    assert source["num_experts"] == 0 and "num_experts=0" in notes[0]
    # the table's note names only what it still set
    assert "num_experts_per_tok absent" in notes[1] and "num_experts," not in notes[1]
    # and the tiny config keeps it dense (the shrink set every expert count to EXPERTS: the pinned
    # MiniCPMDecoderLayer built MiniCPMMoE and load failed on the dense checkpoint's mlp.down_proj)
    assert tiny_config(source)["num_experts"] == 0


def test_longcat_flash_sizes_come_from_its_own_fields_and_keep_two_sublayers_per_layer(monkeypatch):
    from flagos_migrate.verify.runtime_tiny import LAYERS, MOE_INTERMEDIATE, tiny_config

    rc, _ = _worker_modules(monkeypatch)
    # upstream's longcat_flash.py reads transformers 5's attribute_map aliases, bare
    reads = H.config_reads("def f(config):\n    a = config.intermediate_size\n    b = config.moe_intermediate_size\n")
    done = H.completion(reads)

    class LongcatFlash457:  # 4.57.6's LongcatFlashConfig: no aliases, the fields they stand for
        model_type = "longcat_flash"
        ffn_hidden_size = 12288
        expert_ffn_hidden_size = 2048

    source = {"hidden_size": 6144, "num_attention_heads": 64, "ffn_hidden_size": 12288,
              "expert_ffn_hidden_size": 2048, "num_layers": 28, "num_hidden_layers": 56}
    notes = []
    rc._complete(source, LongcatFlash457(), done, "LongcatFlashConfig", notes)
    # P40's aliases stay absent, as on LongCat-Flash's config.json: a file reading them on the pinned class fails
    # construct as it would on a real checkpoint (filling them hid that); the migrated file reads the fields
    assert "intermediate_size" not in source and "moe_intermediate_size" not in source
    assert notes[0].startswith("config: intermediate_size, moe_intermediate_size left absent: transformers 5's "
                               "LongcatFlashConfig aliases them (attribute_map)")
    other = {"hidden_size": 64}
    rc._complete(other, object(), done, "LlamaConfig", [])  # not an alias there: the table fills it
    assert "intermediate_size" in other
    tiny = tiny_config(source)
    # the experts' width from the class's own field: the checkpoint's 2048 once built 32-wide experts (the
    # FusedMoE loader took the first 32 rows, 3,096,576 values taken by no parameter)
    assert tiny["expert_ffn_hidden_size"] == MOE_INTERMEDIATE
    # transformers' num_hidden_layers is 2 * num_layers (5.x: a property whose setter halves it)
    assert (tiny["num_layers"], tiny["num_hidden_layers"]) == (LAYERS, 2 * LAYERS)
    plain = tiny_config({"hidden_size": 4096, "num_attention_heads": 32, "num_layers": 4, "num_hidden_layers": 4})
    assert (plain["num_layers"], plain["num_hidden_layers"]) == (LAYERS, LAYERS)


def test_a_zero_size_stays_zero_in_the_tiny_config():
    from flagos_migrate.verify.runtime_tiny import EXPERTS, tiny_config

    # a 0 switches a part off; the shrink keeps the parts the config has and makes them small
    tiny = tiny_config({"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 4,
                        "n_routed_experts": 64, "n_shared_experts": 0, "q_lora_rank": 0, "kv_lora_rank": 512})
    assert (tiny["n_routed_experts"], tiny["n_shared_experts"], tiny["q_lora_rank"]) == (EXPERTS, 0, 0)
    assert tiny["kv_lora_rank"] == 32
    per_layer = tiny_config({"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 4,
                             "num_experts": [0, 64, 64, 64]})  # a dense first layer stays dense
    assert per_layer["num_experts"] == [0, EXPERTS]


def test_a_sub_config_field_released_checkpoints_carry_fills_only_a_none_or_absent_one(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)
    done = H.completion({})

    class Qwen3ASR:  # upstream vLLM's Qwen3ASRConfig: thinker_config.classify_num defaults to None
        model_type = "qwen3_asr"

    source = {"thinker_config": {"classify_num": None, "text_config": {}}}
    notes: list = []
    rc._complete(source, Qwen3ASR(), done, "Qwen3ASRConfig", notes)
    assert source["thinker_config"]["classify_num"] == 8 and "thinker_config.classify_num=8" in notes[0]
    real = {"thinker_config": {"classify_num": 5000}}  # a value the config holds stays
    rc._complete(real, Qwen3ASR(), done, "Qwen3ASRConfig", [])
    assert real == {"thinker_config": {"classify_num": 5000}}
    nothing: dict = {}  # no such sub-config: nothing is invented
    rc._complete(nothing, Qwen3ASR(), done, "Qwen3ASRConfig", [])
    assert nothing == {}
    # from the class's defaults (no config.json) the released value wins over a default too, as at the top level
    # (Step3-VL's text_config.moe_layers_enum: the default tuple, written as a list, where the model parses a string)
    defaults = {"thinker_config": {"classify_num": 5000}}
    rc._complete(defaults, Qwen3ASR(), done, "Qwen3ASRConfig", [], defaults=True)
    assert defaults == {"thinker_config": {"classify_num": 8}}


def test_module_bound_bridge_is_the_config_source_when_it_is_the_only_top_level_one(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)
    import types

    class Text:
        model_type = "cosmos3_omni_text"

    class Omni:
        model_type = "cosmos3_omni"
        sub_configs = {"text_config": Text}

    class Other:
        model_type = "qwen3_vl"

    bridges = {"cosmos3_omni": Omni, "cosmos3_omni_text": Text, "qwen3_vl": Other}
    mod = types.ModuleType("vllm_fl.models.cosmos3")
    mod.Cosmos3OmniConfig, mod.Cosmos3TextConfig, mod.json, mod.names = Omni, Text, object(), []  # unhashable too
    assert rc._module_bridge(mod, bridges) is Omni  # the text config is Omni's sub-config
    mod.Other = Other
    assert rc._module_bridge(mod, bridges) is None  # two top-level bridges: a question, not a guess
    assert rc._module_bridge(None, bridges) is None

    # a sub-config its defaults build, undeclared (upstream's ColUltraVBertConfig: UltraBertConfig in __init__; the
    # model was synthesized, construct skipped on pixel_shuffle_factor)
    class UltraBert:
        model_type = "ultrabert"

    class ColUltraVBert:
        model_type = "ultravbert"

        def __init__(self):
            self.text_config = UltraBert()

    mod = types.ModuleType("vllm_fl.models.colultravbert")
    mod.ColUltraVBertConfig, mod.UltraBertConfig = ColUltraVBert, UltraBert
    assert rc._module_bridge(mod, {"ultravbert": ColUltraVBert, "ultrabert": UltraBert}) is ColUltraVBert


def test_the_module_bound_bridge_wins_over_the_one_spelled_like_the_architecture_when_it_holds_what_is_read(
        monkeypatch):
    rc, _ = _worker_modules(monkeypatch)

    class ModernVBert:  # what upstream's colmodernvbert.py imports and reads (config.text_config)
        model_type = "modernvbert"
        sub_configs = {"text_config": object, "vision_config": object}

    class ColModernVBert:  # transformers 5's retrieval wrapper config: a vlm_config instead
        model_type = "colmodernvbert"
        sub_configs = {"vlm_config": object}

    hints = {"synth": {"config": {"hidden_size": 64}, "missing": ["text_config", "vision_config"]}}
    assert rc._holds_more_of_what_is_read(ModernVBert, ColModernVBert, hints) is True
    # negatives: upstream reads neither sub-config; the same class; no bound class
    assert rc._holds_more_of_what_is_read(ModernVBert, ColModernVBert, {"synth": {"missing": ["vlm_config"]}}) is False
    assert rc._holds_more_of_what_is_read(ModernVBert, ModernVBert, hints) is False
    assert rc._holds_more_of_what_is_read(None, ColModernVBert, hints) is False


def test_tiny_mamba_mixers_in_every_spelling_tile_the_expanded_size():
    from flagos_migrate.verify.runtime_tiny import tiny_config

    granite = tiny_config({"hidden_size": 1536, "num_attention_heads": 12, "num_hidden_layers": 4, "mamba_expand": 2,
                           "mamba_n_heads": 128, "mamba_d_head": 24, "mamba_n_groups": 1, "mamba_d_state": 128,
                           "layer_types": ["mamba", "mamba", "attention", "mamba"]})
    assert granite["mamba_n_heads"] * granite["mamba_d_head"] == granite["mamba_expand"] * granite["hidden_size"]
    assert granite["mamba_d_state"] == 16 and granite["layer_types"] == ["mamba", "attention"]
    # Falcon-H1: the mixer is mamba_d_ssm wide when set (4.57.6's FalconH1Config default 1024, 0.13.0's
    # MambaMixer2 checks heads * head dim against it)
    falcon = tiny_config({"hidden_size": 1024, "num_attention_heads": 8, "mamba_expand": 2, "mamba_n_heads": 128,
                          "mamba_d_head": 8, "mamba_n_groups": 1, "mamba_d_state": 256, "mamba_d_ssm": 1024})
    assert falcon["mamba_n_heads"] * falcon["mamba_d_head"] == falcon["mamba_d_ssm"] == 2 * falcon["hidden_size"]
    nemotron_h = tiny_config({"hidden_size": 4096, "num_attention_heads": 32, "expand": 2, "mamba_num_heads": 128,
                              "mamba_head_dim": 64, "n_groups": 8, "ssm_state_size": 128})
    assert nemotron_h["mamba_num_heads"] * nemotron_h["mamba_head_dim"] == 2 * nemotron_h["hidden_size"]
    assert nemotron_h["mamba_num_heads"] % nemotron_h["n_groups"] == 0 and nemotron_h["ssm_state_size"] == 16


def test_layer_kinds_a_transformers_4_class_refuses_go_in_the_legacy_names_its_checkpoints_carry(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)

    class Granite4Config:  # like 4.57.6's GraniteMoeHybridConfig: only the legacy names
        @classmethod
        def from_dict(cls, d):
            if any(t not in ("mamba", "attention") for t in d.get("layer_types") or ()):
                raise ValueError("layer_types must be a list strings in  [`mamba` `attention`]")
            return cls()

    complete = {"fill": {"layer_types": ["full_attention", "linear_attention"]}}
    source = {"layer_types": ["full_attention", "linear_attention"]}
    notes: list = []
    rc._legacy_kinds(source, Granite4Config, complete, notes)
    assert source["layer_types"] == ["attention", "mamba"] and "legacy names" in notes[0]

    class Accepting:
        @classmethod
        def from_dict(cls, d):
            return cls()

    source = {"layer_types": ["full_attention", "linear_attention"]}
    rc._legacy_kinds(source, Accepting, complete, [])
    assert source["layer_types"] == ["full_attention", "linear_attention"]  # a class that takes them keeps them


def test_bridges_are_the_plugin_configs_the_model_imported_and_its_own_last(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)
    import sys
    import types

    for name in ("vllm_fl.configs.tf5_qwen3_5", "vllm_fl.configs.tf5_base", "other_pkg.configs.x"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    got = rc.bridge_modules(["vllm_fl.configs.own", "vllm_fl.configs.tf5_base"], {"vllm_fl": "/p/vllm_fl"})
    assert got == ["vllm_fl.configs.tf5_qwen3_5", "vllm_fl.configs.own", "vllm_fl.configs.tf5_base"]
    assert rc.bridge_modules(None, None) == []


def test_a_multimodal_config_whose_vision_sub_config_defaults_to_none_gets_the_sub_class_defaults(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)

    class Vision:
        def to_dict(self):
            return {"model_type": "v", "hidden_size": 768}

    class Needy:
        def __init__(self, required):
            pass

    class Composite:  # transformers 5's optional sub-configs (Gemma4Config): None unless a checkpoint sets them
        sub_configs = {"text_config": Vision, "vision_config": Vision, "audio_config": Vision}

    source = {"text_config": None, "vision_config": None, "audio_config": None}
    notes: list = []
    rc._with_tower(source, Composite, notes)
    assert source == {"text_config": None, "vision_config": {"model_type": "v", "hidden_size": 768},
                      "audio_config": None}
    assert notes and "vision_config (Vision)" in notes[0]
    kept = {"vision_config": {"model_type": "mine"}}  # a set one is never replaced
    rc._with_tower(kept, Composite, [])
    assert kept == {"vision_config": {"model_type": "mine"}}
    Composite.sub_configs = {"vision_config": Needy}  # a class that needs arguments stays None
    left = {"vision_config": None}
    rc._with_tower(left, Composite, [])
    assert left == {"vision_config": None}


def test_a_tower_keeps_per_layer_lists_as_long_as_its_depth():
    from flagos_migrate.verify.runtime_tiny import VISION_DEPTH, tiny_config

    tiny = tiny_config({"hidden_size": 2048, "num_attention_heads": 16, "num_hidden_layers": 4,
                        "vision_config": {"hidden_size": 1024, "num_hidden_layers": 4, "image_size": [32, 32, 3, 3],
                                          "layer_types": ["full", "sliding", "sliding", "full"]}})
    vision = tiny["vision_config"]
    assert vision["num_hidden_layers"] == VISION_DEPTH and vision["layer_types"] == ["full"]
    assert vision["image_size"] == [32, 32, 3, 3]  # a list that is not per layer keeps its length


def test_a_top_level_width_after_the_towers_pixel_shuffle_follows_the_tower():
    from flagos_migrate.verify.runtime_tiny import VISION_HIDDEN, tiny_config

    glimmer = {"hidden_size": 6656, "out_hidden_size": 6144,
               "vision_config": {"hidden_size": 1536, "num_hidden_layers": 50, "merge_size": 2}}
    assert tiny_config(glimmer)["out_hidden_size"] == VISION_HIDDEN * 4
    # negatives: a width unrelated to the shuffle, and a tower without a merge size, keep theirs
    other = {"hidden_size": 6656, "out_hidden_size": 4096,
             "vision_config": {"hidden_size": 1536, "num_hidden_layers": 50, "merge_size": 2}}
    assert tiny_config(other)["out_hidden_size"] == 4096
    plain = {"hidden_size": 6656, "out_hidden_size": 6144, "vision_config": {"hidden_size": 1536}}
    assert tiny_config(plain)["out_hidden_size"] == 6144


def test_a_value_upstream_asserts_is_the_one_every_checkpoint_it_serves_carries(monkeypatch):
    """llama4_eagle asserts its draft config has no YOCO layers and no MoE layers; Llama4TextConfig lacks the
    first two and defaults moe_layers to every layer (its construct was skipped, then failed the assert)."""
    reads = H.config_reads(textwrap.dedent('''
        def validate(self):
            assert self.config.yoco_global_kv_layer is None
            assert len(self.config.moe_layers) == 0
            assert self.config.hidden_size == 64          # a size: not a single value upstream supports
            self.n = self.config.num_hidden_layers
    '''))
    assert reads["yoco_global_kv_layer"]["only"] is None and reads["moe_layers"]["only"] == []
    assert "only" not in reads["hidden_size"] and "only" not in reads["num_hidden_layers"]
    done = H.completion(reads)
    assert done["only"] == {"moe_layers": [], "yoco_global_kv_layer": None}
    synth, missing = H.synthesize(reads)
    assert synth["yoco_global_kv_layer"] is None and synth["moe_layers"] == [] and "yoco_global_kv_layer" not in missing
    rc, _ = _worker_modules(monkeypatch)

    class Llama4Text:  # 4.57.6's Llama4TextConfig: moe_layers from interleave_moe_layer_step, no yoco fields
        model_type = "llama4_text"
        moe_layers = [0, 1]

    source = {"moe_layers": [0, 1], "vocab_size": 202048}
    notes: list = []
    only = {"only": done["only"]}  # (the sizes of the fill are another test's)
    rc._complete(source, Llama4Text(), only, "Llama4TextConfig", notes, defaults=True)
    assert source == {"moe_layers": [], "yoco_global_kv_layer": None, "vocab_size": 202048}
    assert "the one value upstream's model asserts" in notes[0]
    real = {"moe_layers": [0, 1]}  # a real config.json's value is reported by the model's own assert, not replaced
    rc._complete(real, Llama4Text(), only, "Llama4TextConfig", [], defaults=False)
    assert real == {"moe_layers": [0, 1], "yoco_global_kv_layer": None}


def test_an_eagle_heads_draft_vocabulary_is_the_whole_vocabulary_when_the_class_has_none(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)
    done = H.completion({"draft_vocab_size": {"default": H.MISSING, "indexed": False}})
    assert done["fill"] == {"draft_vocab_size": None} and done["equivalent"] == {"draft_vocab_size": ["vocab_size", None]}

    class Llama4Text:
        model_type = "llama4_text"
        vocab_size = 202048

    source = {"vocab_size": 202048}
    rc._complete(source, Llama4Text(), done, "Llama4TextConfig", [])
    assert source == {"vocab_size": 202048, "draft_vocab_size": 202048}


def test_a_synthesized_config_holds_what_the_layers_of_an_imported_modules_imports_read():
    """glm4_moe_lite_mtp -> glm4_moe_lite -> deepseek_v2: the MoE block's moe_intermediate_size is read two
    imports away (the draft's construct was skipped for it)."""
    hints = H.hints_for(_upstream(), "glm4_moe_lite_mtp", [{"id": "0", "architecture": "Glm4MoeLiteMTPModel",
                                                            "class": "Glm4MoeLiteMTPModel"}])["0"]
    synth = hints["synth"]
    assert synth["config"]["moe_intermediate_size"] == MOE_INTERMEDIATE and "moe_intermediate_size" not in synth["missing"]
    assert hints["speculative"] == "mtp" and hints["draft"]["architectures"][0] == "Glm4MoeLiteForCausalLM"
    # a found class is still completed from the direct imports only
    assert "moe_intermediate_size" not in hints["complete"]["fill"]


def test_mimo_v2_flash_gets_the_hub_spelling_upstream_reads_from_the_classs_own_per_layer_fields(monkeypatch):
    """Upstream's mimo_v2.py reads hybrid_layer_pattern/moe_layer_freq/swa_*; transformers 5's MiMoV2FlashConfig
    keeps layer_types/mlp_layer_types (construct was skipped for hybrid_layer_pattern)."""
    rc, _ = _worker_modules(monkeypatch)
    done = H.completion({})

    class MiMo:
        model_type = "mimo_v2_flash"

    source = {"layer_types": ["full_attention", "sliding_attention", "sliding_attention"],
              "mlp_layer_types": ["dense", "sparse", "sparse"], "rms_norm_eps": 1e-5,
              "rope_parameters": {"full_attention": {"rope_theta": 5e6, "partial_rotary_factor": 0.334},
                                  "sliding_attention": {"rope_theta": 1e4, "partial_rotary_factor": 0.334}}}
    notes: list = []
    rc._complete(source, MiMo(), done, "MiMoV2FlashConfig", notes, defaults=True)
    assert source["hybrid_layer_pattern"] == [0, 1, 1] and source["moe_layer_freq"] == [0, 1, 1]
    # the SWA heads as the tiny full-attention ones: Q/K 32 (16 doubled for the 0.334 rotary share), V 16
    assert (source["swa_num_attention_heads"], source["swa_num_key_value_heads"], source["swa_head_dim"],
            source["swa_v_head_dim"]) == (4, 4, 32, 16)
    assert source["add_swa_attention_sink_bias"] is True and source["sliding_window_size"] == 7
    # the hub's flat rope fields and epsilon, from what transformers 5 keeps per layer type / calls rms_norm_eps
    assert (source["rope_theta"], source["swa_rope_theta"], source["partial_rotary_factor"]) == (5e6, 1e4, 0.334)
    assert source["layernorm_epsilon"] == 1e-5
    no_list: dict = {}  # a class without the per-layer fields: nothing derived, the literals still set
    rc._complete(no_list, MiMo(), done, "MiMoV2FlashConfig", [], defaults=True)
    assert "hybrid_layer_pattern" not in no_list and no_list["swa_head_dim"] == 32 and "rope_theta" not in no_list


def test_deepseek_routers_as_their_released_checkpoints(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)
    done = H.completion({})

    class V2:  # 4.57.6's DeepseekV2Config: n_group/topk_group None
        model_type = "deepseek_v2"
        n_group = None
        topk_group = None

    class V3:  # DeepseekV3Config: no topk_method/scoring_func; HF routes with sigmoid + correction bias
        model_type = "deepseek_v3"

    v2 = {"n_group": None, "topk_group": None, "num_experts_per_tok": None}
    rc._complete(v2, V2(), done, "DeepseekV2Config", [], defaults=True)
    assert v2 == {"n_group": 1, "topk_group": 1, "num_experts_per_tok": 6}  # V2-Lite's; the tiny config shrinks it
    v3: dict = {}
    rc._complete(v3, V3(), done, "DeepseekV3Config", [], defaults=False)
    assert v3 == {"topk_method": "noaux_tc", "scoring_func": "sigmoid"}


def test_step3s_moe_layers_as_its_released_comma_separated_string(monkeypatch):
    """step3_text's construct was skipped (the pinned vLLM's own class failed alike): both vLLMs parse
    moe_layers_enum.strip().split(","), the pinned Step3TextConfig defaults to a tuple, a list in the tiny JSON."""
    rc, _ = _worker_modules(monkeypatch)

    class Step3Text:  # the pinned vllm.transformers_utils.configs.Step3TextConfig
        model_type = "step3_text"
        moe_layers_enum = (4, 5, 6)

    source = {"moe_layers_enum": [4, 5, 6]}
    rc._complete(source, Step3Text(), H.completion({}), "Step3TextConfig", [], defaults=True)
    assert source["moe_layers_enum"] == "1"  # layer 0 dense, layer 1 MoE on the 2 tiny layers
    assert [int(i) for i in source["moe_layers_enum"].strip().split(",")] == [1]


def test_a_model_gets_the_config_bridges_of_the_sibling_models_its_files_import(tmp_path):
    """mimo_v2_mtp builds mimo_v2's layers and is MiMoV2FlashForCausalLM's draft: that config bridge is in mimo_v2's
    record only (its construct ran on a synthesized config without hybrid_layer_pattern)."""
    import json

    from flagos_migrate.verify.runtime import config_modules_of, sibling_config_modules

    pkg = tmp_path / "vllm_fl"
    (pkg / "models" / ".migration").mkdir(parents=True)
    (pkg / "models" / "mimo_v2_mtp.py").write_text("from vllm_fl.models.mimo_v2 import MiMoV2MLP\n")

    def record(name, files):
        data = {"format": 1, "model": name, "files": files, "registration": []}
        (pkg / "models" / ".migration" / f"{name}.json").write_text(json.dumps(data))
        return data

    base = record("mimo_v2", {"vllm_fl/models/mimo_v2.py": {"role": "model"},
                              "vllm_fl/configs/tf5_mimo_v2_flash.py": {"role": "config"}})
    mtp = record("mimo_v2_mtp", {"vllm_fl/models/mimo_v2_mtp.py": {"role": "model"}})
    assert sibling_config_modules(pkg, mtp) == ["vllm_fl.configs.tf5_mimo_v2_flash"]
    assert sibling_config_modules(pkg, base) == [] and config_modules_of(mtp) == []
    # every other record's bridges too (the plugin's register() registers them all): none imported by the draft
    from flagos_migrate.verify.runtime import plugin_config_modules

    other = record("exaone4_5", {"vllm_fl/configs/tf5_exaone4_5.py": {"role": "config"},
                                 "vllm_fl/configs/tf5_exaone4.py": {"role": "config"}})
    assert plugin_config_modules(pkg, mtp) == ["vllm_fl.configs.tf5_exaone4", "vllm_fl.configs.tf5_exaone4_5",
                                               "vllm_fl.configs.tf5_mimo_v2_flash"]
    assert "vllm_fl.configs.tf5_exaone4_5" not in plugin_config_modules(pkg, other)


def test_sibling_config_modules_reads_no_file_a_record_names_outside_the_plugin(tmp_path):
    """The record is input: a model file named by ``..`` is not read (its import would bring a bridge)."""
    import json

    from flagos_migrate.verify.runtime import sibling_config_modules

    pkg = tmp_path / "plugin" / "vllm_fl"
    (pkg / "models" / ".migration").mkdir(parents=True)
    (tmp_path / "outside.py").write_text("from vllm_fl.models.mimo_v2 import MiMoV2MLP\n")
    base = {"format": 1, "model": "mimo_v2", "registration": [],
            "files": {"vllm_fl/configs/tf5_mimo_v2_flash.py": {"role": "config"}}}
    (pkg / "models" / ".migration" / "mimo_v2.json").write_text(json.dumps(base))
    evil = {"format": 1, "model": "x", "registration": [], "files": {"../outside.py": {"role": "model"}}}
    assert sibling_config_modules(pkg, evil) == []
    evil["files"] = {"outside.py": {"role": "model"}}  # the same file, named plainly, would be read
    (pkg.parent / "outside.py").write_text((tmp_path / "outside.py").read_text())
    assert sibling_config_modules(pkg, evil) == ["vllm_fl.configs.tf5_mimo_v2_flash"]


def test_a_value_whose_alternative_only_raises_is_the_one_upstream_serves():
    """bailing_moe_v3's KDA layer raises unless ``no_kda_lora`` is set (read with default False, so the synthesized
    config left it out and construct failed with that ValueError); zamba2 raises for any activation but gelu."""
    reads = H.config_reads(textwrap.dedent('''
        def build(config):
            if not getattr(config, "no_kda_lora", False):
                raise ValueError("expects no_kda_lora=True")
            if config.hidden_act != "gelu":
                raise ValueError("only gelu")
            if not config.use_fast:            # the branch does more than raise: an option, not a requirement
                warn("slow")
                raise ValueError("slow")
            if config.head_dim != config.hidden_size // 2:   # no literal: not one value
                raise ValueError("head_dim")
            if getattr(config, "rope_scaling", None) is not None:
                raise NotImplementedError("no rope scaling")
    '''))
    assert reads["no_kda_lora"]["only"] is True and reads["hidden_act"]["only"] == "gelu"
    assert reads["rope_scaling"]["only"] is None
    assert "only" not in reads["use_fast"] and "only" not in reads["head_dim"]
    synth, missing = H.synthesize(reads)
    assert synth["no_kda_lora"] is True and synth["hidden_act"] == "gelu" and "no_kda_lora" not in missing
    assert H.completion(reads)["only"] == {"hidden_act": "gelu", "no_kda_lora": True, "rope_scaling": None}


@pytest.mark.skipif(not (UPSTREAM / "vllm" / "model_executor" / "models" / "bailing_moe_v3.py").is_file(),
                    reason="no upstream vLLM source")
def test_bailing_moe_v3s_kda_flag_is_synthesized_set_from_the_real_source():
    src = (UPSTREAM / "vllm" / "model_executor" / "models" / "bailing_moe_v3.py").read_text()
    synth, _ = H.synthesize(H.config_reads(src))
    assert synth["no_kda_lora"] is True


def test_a_draft_heads_vocabulary_shrinks_with_the_vocabulary():
    """Laguna DFlash shares the target's lm_head and refuses a draft_vocab_size other than the target's vocabulary
    (construct failed with 100352 != 512: vocab_size shrank, draft_vocab_size did not); an EAGLE-3 head over a
    truncated vocabulary keeps its share of it."""
    from flagos_migrate.verify.runtime_tiny import VOCAB, tiny_config

    whole = tiny_config({"hidden_size": 2048, "num_attention_heads": 16, "vocab_size": 100352, "draft_vocab_size": 100352})
    assert whole["vocab_size"] == VOCAB and whole["draft_vocab_size"] == VOCAB
    part = tiny_config({"hidden_size": 4096, "num_attention_heads": 32, "vocab_size": 128256, "draft_vocab_size": 32000})
    assert part["draft_vocab_size"] == VOCAB * 32000 // 128256 < VOCAB


def test_a_synthesized_draft_vocabulary_is_the_synthesized_vocabulary():
    reads = H.config_reads(textwrap.dedent('''
        def build(self, vllm_config):
            self.config = vllm_config.speculative_config.draft_model_config.hf_config
            if getattr(self.config, "draft_vocab_size", None) is None:
                raise ValueError("requires draft_vocab_size")
            self.lm_head = ParallelLMHead(self.config.draft_vocab_size, self.config.hidden_size)
            self.ids = self.config.dflash_config["target_layer_ids"]
    '''))
    synth, missing = H.synthesize(reads)
    assert synth["draft_vocab_size"] == synth["vocab_size"] and "draft_vocab_size" not in missing
    assert synth["dflash_config"]["target_layer_ids"] == list(range(LAYERS))
    assert synth["dflash_config"]["mask_token_id"] < synth["vocab_size"]


def test_a_draft_named_through_a_variable_and_served_from_its_files_target():
    """upstream's hf_config_override names InternS2MobiusMTP through ``architecture = "InternS2MobiusMTP" if is_mobius
    else ...``: read as no draft, it was synthesized (model_type mmf_synth_*) and Qwen3.5's decoder layer refused
    it. Its model types have no config class anywhere (remote code); the file's own target is built from
    Qwen3_5MoeConfig, which the draft now follows after its own."""
    drafts = H.draft_bases(textwrap.dedent('''
        def hf_config_override(hf_config):
            if hf_config.model_type in ("intern_s2_preview", "interns2_mobius"):
                is_mobius = hf_config.model_type == "interns2_mobius"
                architecture = "InternS2MobiusMTP" if is_mobius else "Qwen3_5MTP"
                hf_config.update({"n_predict": 1, "architectures": [architecture]})
    '''))
    assert drafts["InternS2MobiusMTP"]["model_types"] == ["intern_s2_preview", "interns2_mobius"]
    assert "Qwen3_5MTP" in drafts
    # a dict looked up gives its values (MiMo-V2's mtp_arch_maps[arch]), never its keys, the base architectures;
    # a name tested inside the element (is_moe, bound to model types) is no draft
    drafts = H.draft_bases(textwrap.dedent('''
        def hf_config_override(hf_config):
            if hf_config.model_type in ("qwen3_5", "qwen3_5_moe"):
                is_moe = hf_config.model_type in ("qwen3_5_moe", "qwen3_5_moe_text")
                hf_config.update({"architectures": ["Qwen3_5MoeMTP" if is_moe else "Qwen3_5MTP"]})
            if (arch := hf_config.architectures[0]) in ("MiMoV2ForCausalLM", "MiMoV2OmniForCausalLM"):
                mtp_arch_maps = {"MiMoV2ForCausalLM": "MiMoV2MTPModel", "MiMoV2OmniForCausalLM": "MiMoV2OmniMTPModel"}
                hf_config.update({"n_predict": 1, "architectures": [mtp_arch_maps[arch]]})
    '''))
    assert sorted(drafts) == ["MiMoV2MTPModel", "MiMoV2OmniMTPModel", "Qwen3_5MTP", "Qwen3_5MoeMTP"]
    assert drafts["MiMoV2OmniMTPModel"]["architectures"] == ["MiMoV2ForCausalLM", "MiMoV2OmniForCausalLM"]
    specs = [{"id": "t", "architecture": "InternS2MobiusForConditionalGeneration",
              "class": "InternS2MobiusForConditionalGeneration"},
             {"id": "d", "architecture": "InternS2MobiusMTP", "class": "InternS2MobiusMTP"}]
    hints = H.hints_for(_upstream(), "interns2_mobius", specs)
    draft = hints["d"]["draft"]
    assert "interns2_mobius" in draft["model_types"] and hints["d"]["speculative"] == "mtp"
    found = draft["architectures"]
    assert found.index("InternS2MobiusForConditionalGeneration") < found.index("Qwen3_5MoeForConditionalGeneration")
    assert hints["t"]["draft"] is None  # the target is no draft
    assert hints["t"]["complete"]["fill"]["num_blocks"] == LAYERS  # Mobius's shared MoE blocks, one per tiny layer


def test_a_composite_configs_text_sub_config_gets_the_field_its_layers_read(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)

    class Text:  # Qwen3_5MoeTextConfig: no num_blocks
        hidden_size = 2048

    class Composite:
        text_config = Text()

    source = {"text_config": {"hidden_size": 2048}}
    rc._complete(source, Composite(), {"fill": {"num_blocks": 2, "hidden_size": 64}}, "Qwen3_5MoeConfig", [])
    assert source == {"text_config": {"hidden_size": 2048, "num_blocks": 2}, "num_blocks": 2, "hidden_size": 64}
    # never a second norm epsilon: Cosmos3 Edge's text config (rms_norm_eps) goes to NemotronHConfig as
    # layer_norm_epsilon=rms_norm_eps plus its to_dict(), which a filled layer_norm_epsilon made a duplicate keyword
    edge = {"text_config": {"hidden_size": 2048, "rms_norm_eps": 1e-6}}
    rc._complete(edge, Composite(), {"fill": {"layer_norm_epsilon": 1e-6, "mamba_head_dim": 16}}, "Cosmos3EdgeConfig", [])
    assert edge["text_config"] == {"hidden_size": 2048, "rms_norm_eps": 1e-6, "mamba_head_dim": 16}
    # nor a field upstream also reads with a default (gemma4: getattr(config, "num_experts", None) means dense)
    reads = H.config_reads("def f(config):\n    moe = getattr(config, 'num_experts', None) is not None\n"
                           "    return moe and config.num_experts\n")
    done = H.completion(reads)
    assert done["defaulted"] == ["num_experts"] and "num_experts" in done["fill"]
    dense = {"text_config": {"hidden_size": 2048}}
    rc._complete(dense, Composite(), done, "Gemma4UnifiedConfig", [])
    assert "num_experts" not in dense["text_config"] and "num_experts" in dense


def test_a_language_model_one_level_down_shrinks_with_its_towers():
    """Qwen3-Omni's config holds its language model in thinker_config (text_config, vision_config, audio_config)
    and talker_config: nothing was shrunk (hidden 2048, a 32-layer 1280-wide audio encoder) and the run was killed
    for memory. Each holder now shrinks as a config of its own; the audio encoder projects to the tiny text width."""
    from flagos_migrate.verify.runtime_tiny import HIDDEN, VOCAB, tiny_config

    source = {
        "thinker_config": {
            "text_config": {"hidden_size": 2048, "num_attention_heads": 32, "num_hidden_layers": 48, "vocab_size": 152064,
                            "num_experts": 128},
            "vision_config": {"hidden_size": 1152, "depth": 27, "num_heads": 16, "out_hidden_size": 2048},
            "audio_config": {"d_model": 1280, "encoder_layers": 32, "encoder_attention_heads": 20,
                             "encoder_ffn_dim": 5120, "output_dim": 2048, "num_mel_bins": 128},
            "image_token_id": 151655,
        },
        "talker_config": {"text_config": {"hidden_size": 1024, "num_attention_heads": 16, "vocab_size": 3072}},
        "im_start_token_id": 151644,
        "enable_audio_output": False,
    }
    tiny = tiny_config(source)
    thinker = tiny["thinker_config"]
    assert thinker["text_config"]["hidden_size"] == HIDDEN and thinker["text_config"]["vocab_size"] == VOCAB
    assert thinker["text_config"]["num_hidden_layers"] == LAYERS
    assert thinker["vision_config"]["depth"] == 1 and thinker["vision_config"]["out_hidden_size"] == HIDDEN
    audio = thinker["audio_config"]
    assert audio["encoder_layers"] == 1 and audio["d_model"] < 1280 and audio["output_dim"] == HIDDEN
    assert audio["d_model"] % audio["encoder_attention_heads"] == 0 and audio["num_mel_bins"] == 128  # the input stays
    assert thinker["image_token_id"] < VOCAB and tiny["im_start_token_id"] < VOCAB
    assert tiny["talker_config"]["text_config"]["hidden_size"] == HIDDEN
    assert tiny["enable_audio_output"] is False
    flat = tiny_config({"hidden_size": 2048, "num_attention_heads": 32, "vocab_size": 1000})  # no holder: as before
    assert flat["hidden_size"] == HIDDEN


def test_a_vision_sub_config_class_is_never_the_models_own_config_but_fills_its_part(monkeypatch):
    """mimo_v2_omni's file binds only Mimo_VLVisionConfig (base_config_key "vision_config", the vision part of a
    remote-code top-level config): it was taken as the model's config and construct failed on
    'Mimo_VLVisionConfig' object has no attribute 'vision_config'. A text sub-config is a whole language model's
    config (a text-only checkpoint names it) and stays eligible."""
    import types

    rc, _ = _worker_modules(monkeypatch)

    class VisionPart:
        base_config_key = "vision_config"
        model_type = "mimovl"

        def to_dict(self):
            return {"model_type": "mimovl", "hidden_size": 1280, "depth": 28}

    class TextPart:
        base_config_key = "text_config"

    assert rc._sub_config_only(VisionPart) and not rc._sub_config_only(TextPart)
    module = types.ModuleType("vllm_fl.models.mimo_v2_omni")
    module.Mimo_VLVisionConfig = VisionPart
    assert rc._module_bridge(module, {"mimovl": VisionPart}) is None
    synth = {"config": {"hidden_size": 64}, "missing": ["vision_config", "use_sink"]}
    assert rc._bound_parts(module, {"mimovl": VisionPart}, synth) == ["vision_config (VisionPart)"]
    assert synth["config"]["vision_config"]["depth"] == 28 and synth["missing"] == ["use_sink"]
    unbound = {"config": {}, "missing": ["vision_config"]}  # a class the file does not bind fills nothing
    assert rc._bound_parts(types.ModuleType("other"), {"mimovl": VisionPart}, unbound) == []


def test_no_fused_expert_tensor_of_the_tiny_config_is_square():
    """transformers 5's Transpose(check_dims=True) (qwen3_vl_moe's expert conversion) keeps a square tensor as it
    is: with 2 * MOE_INTERMEDIATE == HIDDEN the reference read the released layout transposed."""
    assert HIDDEN not in (MOE_INTERMEDIATE, 2 * MOE_INTERMEDIATE)
def test_lfm2s_block_dim_is_its_hidden_size_also_in_a_sub_config(monkeypatch):
    from flagos_migrate.verify.runtime_tiny import HIDDEN, tiny_config

    rc, _ = _worker_modules(monkeypatch)
    done = H.completion({})

    class Lfm2Vl:  # 4.57.6's Lfm2VlConfig: its text_config an Lfm2Config, which has no block_dim
        model_type = "lfm2_vl"

    source = {"text_config": {"model_type": "lfm2", "hidden_size": 1024}, "vision_config": {"model_type": "siglip2"}}
    notes: list = []
    rc._complete(source, Lfm2Vl(), done, "Lfm2VlConfig", notes)
    assert source["text_config"]["block_dim"] == 1024 and "text_config.block_dim=1024" in notes[0]
    assert "block_dim" not in source["vision_config"]
    assert tiny_config(source["text_config"])["block_dim"] == HIDDEN  # shrunk with the hidden size it equals
    carried = {"text_config": {"model_type": "lfm2", "hidden_size": 1024, "block_dim": 512}}  # a value held stays
    rc._complete(carried, Lfm2Vl(), done, "Lfm2VlConfig", [])
    assert carried["text_config"]["block_dim"] == 512

    class Lfm2:
        model_type = "lfm2"

    top = {"hidden_size": 2560}  # the class's defaults of a top-level LFM2
    rc._complete(top, Lfm2(), done, "Lfm2Config", [], defaults=True)
    assert top["block_dim"] == 2560
    # a released LFM2's layers (short conv first), not the defaults' all-attention: the tiny model has a ShortConv
    assert tiny_config(top)["layer_types"] == ["conv", "full_attention"]


def test_a_config_class_from_transformers_5s_mapping_or_the_module_bound_vllm_config(monkeypatch):
    import sys
    import types

    rc, _ = _worker_modules(monkeypatch)
    tf = types.ModuleType("transformers")  # 4.57.6 maps none of these names: empty auto mappings
    tf.CONFIG_MAPPING, tf.__version__ = {}, "4.57.6"
    auto, modeling_auto = types.ModuleType("transformers.models.auto"), types.ModuleType("m")
    auto.modeling_auto = modeling_auto
    for name, mod in (("transformers", tf), ("transformers.models", types.ModuleType("transformers.models")),
                      ("transformers.models.auto", auto), ("transformers.models.auto.modeling_auto", modeling_auto)):
        monkeypatch.setitem(sys.modules, name, mod)

    class Omni:  # the plugin's bridge of transformers 5's nemotron_h_omni (NemotronH_Omni_Reasoning_V3)
        model_type = "nemotron_h_omni"

    class Other:
        model_type = "radio"

    bridges = {"nemotron_h_omni": Omni, "radio": Other}
    notes: list = []
    hints = {"tf5_model_types": ["nemotron_h_omni"]}
    assert rc._config_class("NemotronH_Omni_Reasoning_V3", bridges, notes=notes, hints=hints) == (Omni, "bridge")
    assert "transformers 5 maps NemotronH_Omni_Reasoning_V3" in notes[0]


    class ModernVBert:  # what upstream's colmodernvbert.py imports and reads (config.text_config)
        model_type = "modernvbert"
        sub_configs = {"text_config": object}

    class ColModernVBert:  # what transformers 5 maps ColModernVBertForRetrieval to: a vlm_config instead
        model_type = "colmodernvbert"
        sub_configs = {"vlm_config": object}

    col = types.ModuleType("vllm_fl.models.colmodernvbert")
    col.ModernVBertConfig = ModernVBert
    reads = {"tf5_model_types": ["colmodernvbert"], "synth": {"missing": ["text_config"]}}
    assert rc._config_class("ColModernVBertForRetrieval", {"modernvbert": ModernVBert, "colmodernvbert": ColModernVBert},
                            module=col, hints=reads)[0] is ModernVBert  # the module-bound bridge comes first

    class ChatGLM:  # vLLM's own ChatGLMConfig, which upstream's glm4v.py imports
        model_type = "chatglm"

    monkeypatch.setattr(rc, "_vllm_configs", lambda: {"chatglm": ChatGLM})
    mod = types.ModuleType("vllm_fl.models.glm4v")
    mod.ChatGLMConfig = ChatGLM
    assert rc._config_class("GLM4VForCausalLM", bridges, module=mod, hints={}) == (ChatGLM, "registry")
    synth = {"synth": {"config": {"hidden_size": 64}, "model_type": "mmf_synth_glm4v", "reads": 1}}
    monkeypatch.setattr(rc, "synth_class", lambda mt, name=None: mt)
    assert rc._config_class("GLM4VForCausalLM", bridges, module=types.ModuleType("m"), hints=synth) == \
        ("mmf_synth_glm4v", "synthesized")  # a module that binds no config: synthesized as before


class _PinnedRegistry:
    """The pinned ModelRegistry, as far as the worker uses it: knows Llama, not Gemma 4."""

    def __init__(self):
        self.models = {"LlamaForCausalLM": "vllm"}

    def get_supported_archs(self):
        return self.models.keys()

    def register_model(self, arch, cls):
        self.models[arch] = cls


def test_the_records_other_architectures_are_registered_before_a_build_over_the_pinned_ones(monkeypatch):
    """As the plugin's register_model() does for a serve: an architecture the pinned registry also has is the
    plugin's (cohere2_vision builds Cohere2ForCausalLM by name; with upstream's commandr migrated into the plugin,
    the pinned registry's own class had served it here, and the P43 the registration answers still showed)."""
    _, rw = _worker_modules(monkeypatch)

    reg = _PinnedRegistry()
    req = {"architectures": [
        {"architecture": "Gemma4UnifiedForConditionalGeneration", "module": "vllm_fl.models.gemma4_unified",
         "class": "Gemma4UnifiedForConditionalGeneration"},
        {"architecture": "Gemma4ForCausalLM", "module": "vllm_fl.models.gemma4", "class": "Gemma4ForCausalLM"},
        {"architecture": "LlamaForCausalLM", "module": "vllm_fl.models.llama", "class": "LlamaForCausalLM"}]}
    rw._register_siblings(reg, req, "Gemma4UnifiedForConditionalGeneration")
    assert reg.models == {"LlamaForCausalLM": "vllm_fl.models.llama:LlamaForCausalLM",
                          "Gemma4ForCausalLM": "vllm_fl.models.gemma4:Gemma4ForCausalLM"}


def test_an_architecture_another_record_registers_is_registered_before_a_build(monkeypatch, tmp_path):
    """gemma4 migrated first registers Gemma4ForCausalLM from its own record; gemma4_unified's record then
    does not name it, and its build by name failed ("Model architectures ['Gemma4ForCausalLM'] are not supported")."""
    import json

    from flagos_migrate.verify.runtime import plugin_registrations

    _, rw = _worker_modules(monkeypatch)
    pkg = tmp_path / "vllm_fl"
    (pkg / "models" / ".migration").mkdir(parents=True)

    def record(name, lines):
        data = {"format": 1, "model": name, "files": {}, "registration": lines}
        (pkg / "models" / ".migration" / f"{name}.json").write_text(json.dumps(data))
        return data

    record("gemma4", ["Gemma4ForCausalLM -> vllm_fl.models.gemma4:Gemma4ForCausalLM", "Evil -> os:system"])
    unified = record("gemma4_unified", ["Gemma4UnifiedForConditionalGeneration -> "
                                        "vllm_fl.models.gemma4_unified:Gemma4UnifiedForConditionalGeneration"])
    others = plugin_registrations(pkg, unified)
    assert others == [{"architecture": "Gemma4ForCausalLM", "module": "vllm_fl.models.gemma4", "class": "Gemma4ForCausalLM"}]

    reg = _PinnedRegistry()
    rw._register_siblings(reg, {"architectures": [{"architecture": "Gemma4UnifiedForConditionalGeneration",
                                                   "module": "vllm_fl.models.gemma4_unified",
                                                   "class": "Gemma4UnifiedForConditionalGeneration"}],
                                "registrations": others}, "Gemma4UnifiedForConditionalGeneration")
    assert reg.models == {"LlamaForCausalLM": "vllm", "Gemma4ForCausalLM": "vllm_fl.models.gemma4:Gemma4ForCausalLM"}


def test_the_tiny_lfm2_moe_keeps_a_moe_layer_after_its_leading_dense_ones():
    from flagos_migrate.verify.runtime_tiny import tiny_config

    # Lfm2MoeConfig's defaults: 2 leading dense layers; the tiny model has 2 layers, so both were dense
    tiny = tiny_config({"hidden_size": 2048, "num_attention_heads": 32, "num_hidden_layers": 24, "num_dense_layers": 2,
                        "num_experts": 32, "layer_types": ["conv", "conv", "full_attention"] * 8})
    assert tiny["num_dense_layers"] == 1 < len(tiny["layer_types"]) == tiny["num_hidden_layers"]
    assert tiny_config({"hidden_size": 64, "num_dense_layers": 0})["num_dense_layers"] == 0  # all MoE stays all MoE


def test_an_architectures_own_released_fields_over_its_model_types(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)
    done = H.completion({})

    class ChatGLM:  # vLLM's ChatGLMConfig: neither original_rope nor vision_config
        model_type = "chatglm"

    glm4v: dict = {"hidden_size": 4096}
    rc._complete(glm4v, ChatGLM(), done, "ChatGLMConfig", [], defaults=True, arch="GLM4VForCausalLM")
    assert glm4v["original_rope"] is True and glm4v["vision_config"]["patch_size"] == 14
    text: dict = {"hidden_size": 4096}  # a text-only ChatGLM (which refuses a vision_config) gets none
    rc._complete(text, ChatGLM(), done, "ChatGLMConfig", [], defaults=True, arch="ChatGLMForCausalLM")
    assert text["original_rope"] is True and "vision_config" not in text

    class Qwen35:  # Clef-Flash's base class config: no joint_head_config
        model_type = "qwen3_5"

    clef: dict = {}
    rc._complete(clef, Qwen35(), done, "Qwen3_5Config", [], defaults=True, arch="ClefFlashForJointSchema")
    assert set(clef["joint_head_config"]) == {"hidden_size", "width", "routing_layers", "layers", "heads", "feedforward"}


def test_a_drafts_model_type_spelled_like_the_architecture_comes_first(monkeypatch):
    rc, _ = _worker_modules(monkeypatch)

    class Dense:
        model_type = "qwen3_5"

    class Moe:
        model_type = "qwen3_5_moe"

    bridges = {"qwen3_5": Dense, "qwen3_5_moe": Moe}
    hints = {"draft": {"model_types": ["qwen3_5", "qwen3_5_moe"]}}
    import sys
    import types

    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(CONFIG_MAPPING={}))
    assert rc._from_hints("Qwen3_5MoeMTP", hints, bridges, {}, [])[0] is Moe
    assert rc._from_hints("Qwen3_5MTP", hints, bridges, {}, [])[0] is Dense


def test_a_drafts_inherited_base_of_another_model_type_is_not_its_config(monkeypatch):
    """Step3p5MTP is rewritten from model types step3p5 / step3p7, whose configs the pinned stack lacks; a base class
    of one target (Step3p7ForConditionalGeneration <- Step3VLForConditionalGeneration) has Step3VLConfig, which no
    checkpoint of those types is: it was taken, and construct was skipped for a field that class has not. A rewrite
    keyed on the architecture alone (EagleMistralLarge3 <- MistralLarge3 <- DeepseekV3) keeps its base's config."""
    rc, _ = _worker_modules(monkeypatch)

    class Step3VL:
        model_type = "step3_vl"

    import sys
    import types

    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(CONFIG_MAPPING={}))
    monkeypatch.setattr(rc, "_class_of_arch", lambda arch, b, v: Step3VL if arch.startswith("Step3VL") else None)
    draft = {"model_types": ["step3p5", "step3p7"], "inherited": ["Step3VLForConditionalGeneration"],
             "architectures": ["Step3p5ForCausalLM", "Step3p7ForConditionalGeneration", "Step3VLForConditionalGeneration"]}
    notes: list = []
    assert rc._from_hints("Step3p5MTP", {"draft": draft}, {}, {}, notes) == (None, None)  # then synthesized
    assert "not Step3VL (step3_vl)" in notes[0]
    keyed_on_arch = {**draft, "model_types": []}
    assert rc._from_hints("Step3p5MTP", {"draft": keyed_on_arch}, {}, {}, []) == (Step3VL, "draft")
    named = {**draft, "inherited": []}  # a base architecture the rewrite names itself is taken whatever its type
    assert rc._from_hints("Step3p5MTP", {"draft": named}, {}, {}, []) == (Step3VL, "draft")


def test_the_step3p5_draft_hints_keep_its_targets_inherited_bases_apart():
    hints = H.hints_for(_upstream(), "step3p5_mtp", [{"id": "0", "architecture": "Step3p5MTP", "class": "Step3p5MTP"}])
    draft = hints["0"]["draft"]
    assert draft["model_types"] == ["step3p5", "step3p7"]
    assert "Step3VLForConditionalGeneration" in draft["inherited"]
    assert "Step3p5ForCausalLM" not in draft["inherited"]
    # its MTP layer's own kinds (the released config's padded layer_types): the layer is built at num_hidden_layers
    assert hints["0"]["synth"]["config"]["mtp_layer_types"] == ["sliding_attention"]


def test_a_drafts_target_model_type_from_another_records_bridge(monkeypatch):
    """exaone4_5_mtp is a draft of an exaone4_5 checkpoint, whose Exaone4_5_Config only exaone4_5's migration
    bridged: the plugin's register() registers it for a serve, so the draft is built from it, registered
    where vLLM's get_config looks, and the other records' bridges are read only when the draft's own miss."""
    rc, _ = _worker_modules(monkeypatch)

    class Exaone45:
        model_type = "exaone4_5"

    import sys
    import types

    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(CONFIG_MAPPING={}))
    registered = []
    monkeypatch.setattr(rc, "_register_bridge", lambda mt, cls: registered.append((mt, cls)))
    hints = {"draft": {"model_types": ["exaone4_5_mtp", "exaone4_5"]}}
    notes: list = []
    assert rc._from_hints("Exaone4_5_MTP", hints, {}, {}, notes, lambda: {"exaone4_5": Exaone45}) == (Exaone45, "draft")
    assert registered == [("exaone4_5", Exaone45)] and "another migration of the plugin wrote" in notes[0]
    assert rc._from_hints("Exaone4_5_MTP", hints, {}, {}, []) == (None, None)  # without them: none (synthesized)

    def unread():
        raise AssertionError("read although the draft's own bridges have its model type")

    own = {"exaone4_5": type("Own", (), {"model_type": "exaone4_5"})}
    assert rc._from_hints("Exaone4_5_MTP", hints, own, {}, [], unread)[0] is own["exaone4_5"]


def test_a_tiny_audio_encoder_keeps_its_kv_heads_dividing_its_heads():
    from flagos_migrate.verify.runtime_tiny import tiny_config

    # GLM-ASR's audio_config: 20 heads over 20 KV heads; the shrink left 20 KV heads for 2 heads
    base = {"text_config": {"hidden_size": 2048, "num_attention_heads": 16, "num_hidden_layers": 4}}
    mha = tiny_config({**base, "audio_config": {"hidden_size": 1280, "num_attention_heads": 20,
                                                "num_key_value_heads": 20, "num_hidden_layers": 32}})["audio_config"]
    assert mha["num_key_value_heads"] == mha["num_attention_heads"]
    gqa = tiny_config({**base, "audio_config": {"hidden_size": 1280, "num_attention_heads": 20,
                                                "num_key_value_heads": 4, "num_hidden_layers": 32}})["audio_config"]
    assert gqa["num_attention_heads"] % gqa["num_key_value_heads"] == 0 < gqa["num_key_value_heads"] < 2


def test_a_draft_of_a_model_type_tested_by_substring():
    """upstream's EXAONE-4.5 rewrite tests ``"exaone4_5" in hf_config.model_type``: read as no model type, the MTP
    had no base config and was synthesized (no text_config, which it reads); the substring is the model type."""
    drafts = H.draft_bases(textwrap.dedent('''
        def hf_config_override(hf_config):
            if "exaone4_5" in hf_config.model_type:
                hf_config.model_type = "exaone4_5_mtp"
            if hf_config.model_type == "exaone4_5_mtp":
                n_predict = getattr(hf_config, "num_nextn_predict_layers", None)
                hf_config.update({"n_predict": n_predict, "architectures": ["Exaone4_5_MTP"]})
    '''))
    assert drafts["Exaone4_5_MTP"]["model_types"] == ["exaone4_5_mtp", "exaone4_5"]
    # a string tested for in something else is no model type
    other = H.draft_bases(textwrap.dedent('''
        def hf_config_override(hf_config):
            if "exaone4_5" in hf_config.architectures[0]:
                hf_config.update({"architectures": ["Exaone4_5_MTP"]})
    '''))
    assert other["Exaone4_5_MTP"]["model_types"] == []


LAGUNA_DFLASH = '''
def _get_dflash_layer_types(config):
    layer_types = getattr(config, "layer_types", None)
    if layer_types is None:
        raise ValueError("Laguna DFlash config requires `layer_types`.")
    if len(set(layer_types)) > 1:
        raise NotImplementedError("Laguna DFlash drafter requires a uniform `layer_types`")
    return tuple(layer_types)


def window(config):
    if len(set(config.sliding_window_pattern)) > 2:
        raise ValueError("at most two")
    kinds = config.mlp_layer_types
    if len(set(kinds)) > 1:
        print("mixed")
'''


def test_a_per_layer_field_whose_mixed_values_only_raise_is_uniform(monkeypatch):
    """laguna_dflash raises on a mixed layer_types: the tiny config kept LagunaConfig's full/sliding pattern and
    construct failed; every drafter checkpoint holds one kind throughout, so the tiny config does too."""
    reads = H.config_reads(LAGUNA_DFLASH)
    assert reads["layer_types"].get("uniform")
    # a set of more than two, or mixed values that do not raise, say nothing
    assert not reads["sliding_window_pattern"].get("uniform") and not reads["mlp_layer_types"].get("uniform")
    done = H.completion(reads)
    assert done["uniform"] == ["layer_types"]
    rc, _ = _worker_modules(monkeypatch)

    class Laguna:
        layer_types = ["full_attention", "sliding_attention", "sliding_attention"]
        mlp_layer_types = ["dense", "sparse", "sparse"]
        sliding_window_pattern = [1, 2]

    source = {"layer_types": list(Laguna.layer_types), "mlp_layer_types": ["dense", "sparse", "sparse"]}
    notes: list = []
    rc._complete(source, Laguna(), done, "LagunaConfig", notes)
    assert source == {"layer_types": ["full_attention"] * 3, "mlp_layer_types": ["dense", "sparse", "sparse"]}
    assert any("raises on mixed values" in n for n in notes)
    cfg, _ = H.synthesize({"layer_types": {**reads["layer_types"], "only": ["full_attention", "sliding_attention"]}})
    assert cfg["layer_types"] == ["full_attention", "full_attention"]


@pytest.mark.parametrize("model, arch, expect", [
    # MiniCPM's muP scales: logits scale hidden_size / dim_model_base, 1 in the tiny config
    ("minicpm", "MiniCPMForCausalLM", {"dim_model_base": HIDDEN, "scale_emb": 12, "scale_depth": 1.4}),
    ("rnj1", "Rnj1ForCausalLM", {"query_pre_attn_scalar": HIDDEN // 4, "final_logit_softcapping": None}),
    ("exaone", "ExaoneForCausalLM", {"activation_function": "silu"}),
    ("plamo3", "Plamo3ForCausalLM", {"rope_local_theta": 10000.0, "interleaved_sliding_window": [8, None]}),
    # HrmTextConfig: num_hidden_layers = num_layers_per_stack * H_cycles * (L_cycles + 1)
    ("hrm_text", "HrmTextForCausalLM", {"H_cycles": 1, "L_cycles": 1, "num_layers_per_stack": LAYERS // 2}),
])
def test_remote_code_scalars_the_model_reads_are_synthesized(model, arch, expect):
    hints = H.hints_for(_upstream(), model, [{"id": "0", "architecture": arch, "class": arch}])["0"]["synth"]
    assert {k: hints["config"].get(k, "absent") for k in expect} == expect
    assert not set(expect) & set(hints["missing"])
    if model == "hrm_text":
        c = hints["config"]
        assert c["num_layers_per_stack"] * c["H_cycles"] * (c["L_cycles"] + 1) == c["num_hidden_layers"]


def test_a_draft_layers_own_kinds_where_the_class_defaults_have_no_draft_layer(monkeypatch):
    """step3p5_mtp: Step3p7TextConfig splits a released checkpoint's padded layer_types into mtp_layer_types; from
    the class's defaults (no draft layer) it was None, the draft count 1 made the MTP layer index one past
    layer_types and upstream's _get_layer_type raised IndexError."""
    rc, _ = _worker_modules(monkeypatch)
    tiny = {"layer_types": ["full_attention", "sliding_attention"], "mlp_layer_types": ["dense", "sparse"],
            "mtp_layer_types": None, "mtp_mlp_layer_types": None, "mtp_loss_weight": None}
    notes: list = []
    rc._draft_layer_kinds(tiny, 1, notes)
    assert tiny["mtp_layer_types"] == ["sliding_attention"] and tiny["mtp_mlp_layer_types"] == ["sparse"]
    assert tiny["mtp_loss_weight"] is None and "draft layer's own entries" in notes[0]
    given = {"layer_types": ["full_attention"], "mtp_layer_types": ["sliding_attention"]}
    rc._draft_layer_kinds(given, 2, [])  # a checkpoint's own entries stay
    assert given["mtp_layer_types"] == ["sliding_attention"]
    none = {"layer_types": ["full_attention"], "mtp_layer_types": None}
    rc._draft_layer_kinds(none, 0, [])  # no draft layer: nothing to carry
    assert none["mtp_layer_types"] is None


def test_an_architecture_upstream_reaches_only_through_a_speculative_method_is_a_draft():
    """ExtractHiddenStatesModel (P38: method extract_hidden_states) has no draft name; built without a speculative
    config it stopped at upstream's ``assert speculative_config is not None``."""
    assert "ExtractHiddenStatesModel" in H._speculative_only() and "Qwen3DSparkModel" in H._speculative_only()
    assert "Qwen3ForCausalLM" not in H._speculative_only()
    assert H.speculative_method("ExtractHiddenStatesModel", "", "ExtractHiddenStatesModel" in H._speculative_only())


def test_the_one_bridge_fallback_is_the_records_own_never_a_siblings(monkeypatch):
    """qwen3_dspark imports qwen3_dflash, whose record bridged MuseGlimmerAssistantConfig (for its
    MuseGlimmerAssistantModel): as the one bridge loaded it built the DSpark drafts ("the bridge config
    (MuseGlimmerAssistantConfig) has no 'markov_rank'"); a record's own single bridge still is its config."""
    import sys
    import types

    rc, _ = _worker_modules(monkeypatch)
    tf = types.ModuleType("transformers")
    tf.CONFIG_MAPPING, tf.__version__ = {}, "4.57.6"
    auto, modeling_auto = types.ModuleType("transformers.models.auto"), types.ModuleType("m")
    auto.modeling_auto = modeling_auto
    for name, mod in (("transformers", tf), ("transformers.models", types.ModuleType("transformers.models")),
                      ("transformers.models.auto", auto), ("transformers.models.auto.modeling_auto", modeling_auto)):
        monkeypatch.setitem(sys.modules, name, mod)

    class Muse:
        model_type = "muse_glimmer_assistant"

    bridges = {"muse_glimmer_assistant": Muse}
    synth = {"synth": {"config": {"hidden_size": 64}, "model_type": "mmf_synth_qwen3dsparkmodel", "reads": 1,
                       "file": "m"}}
    monkeypatch.setattr(rc, "synth_class", lambda mt, name=None: ("synth", mt))
    assert rc._config_class("Qwen3DSparkModel", bridges, hints=synth, own_bridges={}) == \
        (("synth", "mmf_synth_qwen3dsparkmodel"), "synthesized")
    assert rc._config_class("Qwen3DSparkModel", bridges, hints=synth, own_bridges=bridges) == (Muse, "bridge")

@pytest.mark.parametrize("model", ["internvl", "h2ovl", "nvlm_d", "skyworkr1v"])
def test_the_internvl_family_synthesizes_its_towers(model):
    hints = H.hints_for(_upstream(), model, [{"id": "0", "architecture": "X", "class": "X"}])["0"]["synth"]
    cfg, missing = hints["config"], hints["missing"]
    assert cfg["vision_config"]["model_type"] == "intern_vit_6b" and cfg["vision_config"]["image_size"] == 56
    assert cfg["text_config"]["architectures"] == ["Qwen2ForCausalLM"]
    assert cfg["force_image_size"] is None and cfg["downsample_ratio"] == 0.5 and cfg["ps_version"] == "v2"
    # the tower's reads (intern_vit.py's config.image_size, norm_type, ...) are held by the vision_config
    assert not {"vision_config", "text_config", "force_image_size", "image_size", "norm_type", "patch_size"} & set(missing)


def test_a_family_holds_only_its_files():
    assert H.family_values("internvl")["select_layer"] == -1
    assert H.family_values("nemotron_vl") == {}  # its chat model's tower is C-RADIO remote code: not known
    assert H.family_values("nemotron_vl", "Llama_Nemotron_Nano_VL") == {}
    # the same file's embedders hold a SigLIP tower: a key naming an architecture wins over the file's
    embed = H.family_values("nemotron_vl", "LlamaNemotronVLModel")
    assert embed["vision_config"]["model_type"] == "siglip_vision_model"
    assert embed == H.family_values("nemotron_vl", "LlamaNemotronVLForSequenceClassification")
    cfg, missing = H.with_family({"a": 1}, ["image_size", "other"], {"vision_config": {"image_size": 56}})
    assert cfg == {"a": 1, "vision_config": {"image_size": 56}} and missing == ["other"]


def test_an_architecture_takes_the_config_of_a_peer_registered_to_the_same_class():
    up = _upstream()
    hints = H.hints_for(up, "qwen2_5_omni_thinker", [
        {"id": "0", "architecture": "Qwen2_5OmniModel", "class": "Qwen2_5OmniThinkerForConditionalGeneration"}])["0"]
    assert hints["peers"] == ["Qwen2_5OmniForConditionalGeneration"]  # transformers' qwen2_5_omni
    hints = H.hints_for(up, "interns1", [
        {"id": "0", "architecture": "InternS1ForConditionalGeneration", "class": "InternS1ForConditionalGeneration"}])["0"]
    assert hints["peers"] == ["InternVLForConditionalGeneration"]
    # the Transformers modeling backend registers many architectures to one generic class: no peers there
    reg = up.model_registry.get("CwmForCausalLM")
    if reg and reg[0].startswith(H.TRANSFORMERS_BACKEND):
        hints = H.hints_for(up, reg[0].rsplit(".", 1)[-1], [
            {"id": "0", "architecture": "CwmForCausalLM", "class": reg[1]}])["0"]
        assert hints["peers"] == []


def test_keye_synthesizes_its_siglip_tower_over_the_qwen3_config():
    hints = H.hints_for(_upstream(), "keye", [{"id": "0", "architecture": "KeyeForConditionalGeneration",
                                               "class": "KeyeForConditionalGeneration"}])["0"]["synth"]
    vision = hints["config"]["vision_config"]
    assert vision["model_type"] == "siglip_vision_model" and vision["spatial_merge_size"] == 2
    assert "text_config" not in hints["config"]  # the language model is the top-level config's Qwen3
    assert not {"vision_config", "image_size", "patch_size", "num_channels"} & set(hints["missing"])


def test_sarvam_synthesizes_a_direct_query_projection():
    """sarvam passed construct and failed forward on the table's q_lora_rank 32: upstream's sarvam.py builds
    MLAModules(fused_qkv_a_proj=None), which upstream's own MLA wrapper refuses for a low-rank query; the
    released Sarvam-105B config (q_lora_rank None) builds the direct q_proj."""
    hints = H.hints_for(_upstream(), "sarvam", [{"id": "0", "architecture": "SarvamMLAForCausalLM",
                                                 "class": "SarvamMLAForCausalLM"}])["0"]["synth"]
    assert "q_lora_rank" in hints["config"] and hints["config"]["q_lora_rank"] is None
    assert "q_lora_rank" not in hints["missing"]


def test_the_one_value_upstream_asserts_reaches_a_composite_models_text_config_too(monkeypatch):
    # bailing_moe_v3.py raises unless getattr(config, "no_kda_lora", False): Bailing V3 VL's KDA layers read it
    # from the text config, whose class defaults it False
    rc, _ = _worker_modules(monkeypatch)
    done = {"only": {"no_kda_lora": True}}

    class BailingVL:
        model_type = "bailing_moe_v3_vl"

    source = {"text_config": {"no_kda_lora": False, "hidden_size": 64}, "vision_config": {"no_kda_lora": False}}
    notes: list = []
    rc._complete(source, BailingVL(), done, "BailingMoeV3VLConfig", notes, defaults=True)
    assert source["no_kda_lora"] is True and source["text_config"]["no_kda_lora"] is True
    assert source["vision_config"] == {"no_kda_lora": False}  # a tower is not the language model
    assert "text_config.no_kda_lora=True" in notes[0]
    plain = {"text_config": {"hidden_size": 64}}  # a text config without the field gets none invented
    rc._complete(plain, BailingVL(), done, "BailingMoeV3VLConfig", [], defaults=True)
    assert plain["text_config"] == {"hidden_size": 64}


def test_a_hybrid_period_and_top_level_mrope_sections_follow_the_tiny_text_config():
    from flagos_migrate.verify.runtime_tiny import tiny_config

    # Bailing V3 VL: every 5th layer full attention, M-RoPE sections at the top level and in the text rope
    released = {"mrope_section": [12, 10, 10], "text_config": {
        "hidden_size": 4096, "num_attention_heads": 32, "head_dim": 128, "num_hidden_layers": 20,
        "layer_group_size": 5, "rope_parameters": {"rope_type": "default", "mrope_section": [12, 10, 10]}}}
    tiny = tiny_config(released)
    text = tiny["text_config"]
    assert text["layer_group_size"] == LAYERS == text["num_hidden_layers"]  # one linear, one full layer
    assert tiny["mrope_section"] == text["rope_parameters"]["mrope_section"]  # the class refuses two that differ
    assert sum(tiny["mrope_section"]) == text["head_dim"] // 2
    short = tiny_config({"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 4, "layer_group_size": 1})
    assert short["layer_group_size"] == 1  # a period already within the kept layers stays


def test_a_bare_assert_of_a_config_flag_is_the_one_value_served():
    """Cohere Compass's language model asserts ``config.tie_word_embeddings``: its construct failed once the
    bridge's text config took the top level's default False (upstream's with_hf_config copy)."""
    reads = H.config_reads(textwrap.dedent('''
        def build(self, config):
            assert config.tie_word_embeddings
            assert not config.use_qk_norm
            assert config.hidden_size > 0                 # a bound, not a single value
    '''))
    assert reads["tie_word_embeddings"]["only"] is True and reads["use_qk_norm"]["only"] is False
    assert "only" not in reads["hidden_size"]


def test_qwen3_dflash_drafts_are_synthesized_with_full_attention_only():
    """qwen3_dflash2 / qwen3_dspark: upstream's qwen3_dflash.py refuses mixed sliding/full layers without Model
    Runner V2, which neither vLLM builds on the CPU; the table's mixed layer_types built nothing on either side."""
    from flagos_migrate.verify.config_hints import SYNTH_VALUES, family_values

    assert set(SYNTH_VALUES["layer_types"]) == {"sliding_attention", "full_attention"}  # the reason for the entry
    for model in ("qwen3_dflash2", "qwen3_dspark"):
        assert set(family_values(model)["layer_types"]) == {"full_attention"}
    assert "layer_types" not in family_values("qwen3")


COMPOSED = '''
class Mixin:
    def head(self, vllm_config):
        return Dense(vllm_config=vllm_config)

class Late(Mixin, nn.Module):
    def __init__(self, *, vllm_config, prefix=""):
        super().__init__()
        self.model = ModernBertModel(vllm_config=vllm_config, prefix=prefix)
        self.text = Qwen2Model(vllm_config=vllm_config.with_hf_config(config.text_config), prefix=prefix)
        self.tower = init_vllm_registered_model(vllm_config=vllm_config, prefix=prefix)
        self.again = ModernBertModel(vllm_config=vllm_config)
'''


def test_the_parts_a_class_builds_from_its_whole_config_are_its_composed_classes():
    """ColBERT's checkpoints are BERT / ModernBERT / LFM2 ones: upstream's classes build those models from the whole
    config (construct stopped at the synthesized config's missing position_embedding_type, conv_dim,
    deterministic_flash_attn). A part built around a sub-config reads another config; a function is no class."""
    assert H.composed_classes(COMPOSED, "Late") == ["ModernBertModel", "Dense"]
    assert H.composed_classes(COMPOSED, "Mixin") == ["Dense"]
    assert H.composed_classes("class A(:", "A") == [] and H.composed_classes(COMPOSED, "Absent") == []
    if (UPSTREAM / "vllm" / "model_executor" / "models" / "colbert.py").is_file():
        hints = H.hints_for(_upstream(), "colbert", [
            {"id": "0", "architecture": "HF_ColBERT", "class": "ColBERTModel"},
            {"id": "1", "architecture": "ColBERTLfm2Model", "class": "ColBERTLfm2Model"}])
        assert hints["0"]["composed"] == ["BertModel"] and hints["1"]["composed"] == ["Lfm2Model"]


MATCH_KINDS = '''
class Layer(nn.Module):
    def __init__(self, config, layer_idx):
        position_type = config.position_layers[layer_idx]
        match position_type:
            case "rope":
                rope = config.rope_parameters
            case "nope":
                rope = None
            case _:
                raise ValueError(position_type)
'''


def test_layer_kinds_come_from_a_match_whose_wildcard_raises():
    """DomynEdge reads config.position_layers[i] and matches "rope" / "nope", raising on anything else: construct
    stopped at the synthesized config's missing position_layers. One of each kind, in its order."""
    reads = H.config_reads(MATCH_KINDS)
    assert reads["position_layers"]["kinds"] == ["rope", "nope"]
    cfg, missing = H.synthesize(reads)
    assert cfg["position_layers"] == ["rope", "nope"] and "position_layers" not in missing
    lenient = MATCH_KINDS.replace("raise ValueError(position_type)", "rope = None")
    assert "kinds" not in H.config_reads(lenient)["position_layers"]  # a wildcard that builds something: any kind


def test_a_field_transformers_5_derives_is_left_absent_where_the_pinned_class_lacks_it(monkeypatch):
    """ColBERT's ModernBERT (and modernbert's own models) stopped at construct with KeyError 'sliding_attention':
    the table's layer_types on 4.57.6's ModernBertConfig sent the pinned modernbert.py down its transformers 5 branch,
    which indexes rope_parameters per layer type. A released config.json has no layer_types (transformers 5 derives
    it from global_attn_every_n_layers), so the tiny config has none either; other model types still get it."""
    rc, _ = _worker_modules(monkeypatch)
    reads = {"layer_types": {"default": H.MISSING, "indexed": True}}
    complete = H.completion(reads)
    assert complete["tf5_derived"]["modernbert"] == ["layer_types", "sliding_window"]

    class ModernBert:
        model_type = "modernbert"

    class Other:
        model_type = "other"

    source, notes = {}, []
    rc._complete(source, ModernBert(), complete, "ModernBertConfig", notes)
    assert "layer_types" not in source and "TF5_DERIVED" in notes[0]
    source = {}
    rc._complete(source, Other(), complete, "OtherConfig", [])
    assert source["layer_types"] == H.SYNTH_VALUES["layer_types"]


def test_a_read_through_one_layers_view_of_the_config_is_a_read_of_the_field():
    """DomynEdge reads config.per_layer_config[i].head_dim only: the synthesized config had no head_dim (construct
    stopped there); the per-layer view is transformers 5's, no overrides by default."""
    reads = H.config_reads("def f(config, i):\n    return config.per_layer_config[i].head_dim\n")
    assert reads["head_dim"]["default"] is H.MISSING
    cfg, missing = H.synthesize(reads)
    assert cfg["head_dim"] == H.SYNTH_VALUES["head_dim"] and cfg["per_layer_config"] == {} and missing == []


def test_a_synthesized_configs_per_layer_blocks_read_by_attribute_and_written_as_dicts(monkeypatch):
    """Nemotron-NAS (DeciLM remote code) reads config.block_configs[i].attention.no_op and tests
    hasattr(block.ffn, "ffn_mult"): the released config.json's dicts, which its config class makes objects of."""
    rc, _ = _worker_modules(monkeypatch)
    block = rc._Fields.of({"attention": {"no_op": False, "n_heads_in_group": 2}, "ffn": {"ffn_mult": 2.625}})
    assert block.attention.no_op is False and block.ffn.ffn_mult == 2.625
    assert hasattr(block.ffn, "ffn_mult") and not hasattr(block.ffn, "intermediate_size")
    import copy
    import json

    assert json.loads(json.dumps(copy.deepcopy(block))) == block  # still the config.json's dict
    family = H.family_values("nemotron_nas")["block_configs"]
    assert len(family) == LAYERS and family[0]["attention"]["n_heads_in_group"] == 2


def test_a_hasattr_guard_does_not_make_optional_what_a_built_module_reads_without_a_default():
    """cohere_eagle tests hasattr(self.config, "layer_types") to prepend the target's, and the commandr layers it
    builds read config.layer_types[i]: the file's guarded read replaced commandr's, so the completion left
    layer_types out and construct stopped at the EAGLE config's missing layer_types."""
    built = H.config_reads("def f(config, i):\n    return config.layer_types[i]\n")
    own = H.config_reads("def g(config):\n    if hasattr(config, 'layer_types'):\n        pass\n")
    merged = {**built, **H._over(built, own)}
    assert not merged["layer_types"].get("guarded") and merged["layer_types"]["indexed"]
    assert H.completion(merged)["fill"]["layer_types"] == H.SYNTH_VALUES["layer_types"]
    # a name only ever tested stays optional, and a read with a default elsewhere keeps the guard
    assert H._over({}, own)["layer_types"]["guarded"]
    defaulted = H.config_reads("def f(config):\n    return getattr(config, 'layer_types', None)\n")
    assert H._over(defaulted, own)["layer_types"]["guarded"]


def test_cohere_asrs_encoder_has_the_decoders_head_count_upstreams_model_config_requires():
    # upstream 0.33.0's ModelConfig asserts encoder["n_heads"] == transf_decoder["config_dict"]["num_attention_heads"]
    # (model_arch_config_convertor): with 2 against 4 its own class was never built, and the checkpoint's spelling
    # went unjudged (the pinned KeyError on num_batches_tracked then read as the migration's)
    cohere = H.CHECKPOINT_FIELDS["cohere_asr"]
    assert cohere["encoder"]["n_heads"] == cohere["transf_decoder"]["config_dict"]["num_attention_heads"]
    assert cohere["encoder"]["d_model"] % cohere["encoder"]["n_heads"] == 0
