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
from flagos_migrate.verify.runtime_tiny import HIDDEN, LAYERS

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


def _upstream():
    if not (UPSTREAM / "vllm" / "config" / "speculative.py").is_file():
        pytest.skip(f"no upstream vLLM source at {UPSTREAM} (set MMF_UPSTREAM)")
    from flagos_migrate.migrate.upstream import Upstream, open_upstream

    return Upstream(open_upstream(str(UPSTREAM)))


@pytest.mark.parametrize("model, arch, cls, kind, expect", [
    ("deepseek_mtp", "DeepSeekMTPModel", "DeepSeekMTP", "draft", "deepseek_v3"),
    ("mistral_large_3", "MistralLarge3ForCausalLM", "MistralLarge3ForCausalLM", "bases", "DeepseekV3ForCausalLM"),
    ("deepseek_v2", "DeepseekForCausalLM", "DeepseekForCausalLM", "bases", "DeepseekV2ForCausalLM"),
])
def test_hints_from_the_real_upstream_source(model, arch, cls, kind, expect):
    hints = H.hints_for(_upstream(), model, [{"id": "0", "architecture": arch, "class": cls}])["0"]
    found = hints["draft"]["model_types"] if kind == "draft" else hints["bases"]
    assert expect in found
    assert hints["synth"]["model_type"].startswith("mmf_synth_")


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
