"""A synthesized config's sub-configs from the class upstream builds a tower from (subconfig_classes, the host
side) and the worker's view of them (the sub-config's class by model_type, a config class by name)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from flagos_migrate.verify import config_hints as H
from flagos_migrate.verify import subconfig_classes as S

ROOT = Path(__file__).resolve().parents[1]

TOWER = '''
class VisionTransformer(nn.Module):
    def __init__(self, vision_config: "Qwen2_5_VLVisionConfig", norm_eps: float = 1e-6, quant_config: QuantizationConfig | None = None):
        pass

class Tower(nn.Module):
    def __init__(self, config: Idefics2VisionConfig | None, quant_config: QuantizationConfig | None = None):
        pass

class Generic(nn.Module):
    def __init__(self, config: PretrainedConfig):
        pass
'''

MODEL = '''
from .tower import VisionTransformer

class Model(nn.Module):
    def __init__(self, *, vllm_config, prefix=""):
        config = vllm_config.model_config.hf_config
        vision_config = config.vision_config
        self.visual = VisionTransformer(vision_config=vision_config, norm_eps=1e-6)
        self.generic = Generic(config.vit_config)
        self.language_model = init_vllm_registered_model(vllm_config=vllm_config, hf_config=config.text_config)
'''


def test_the_class_an_init_annotates_and_a_registered_language_model():
    assert S.sub_config_classes([MODEL, TOWER]) == {"text_config": S.LANGUAGE, "vision_config": "Qwen2_5_VLVisionConfig"}


def test_a_base_class_in_an_imported_module_builds_the_tower_positionally():
    base = TOWER + '''
class Base(nn.Module):
    def init_vision_module(self, config):
        return Tower(config.vision_config, quant_config=None)
'''
    # MiniCPM-O's tower is built by MiniCPM-V's base class in the module it imports
    assert S.sub_config_classes(["class Child(Base):\n    pass\n", base]) == {"vision_config": "Idefics2VisionConfig"}
    # another build an imported module makes is not the model's (clip.py's text tower for Phi-3-V)
    assert S.sub_config_classes(["class Child(nn.Module):\n    pass\n", base]) == {}


def test_with_hf_config_is_a_registered_language_model_only_inside_the_registry_builder():
    model = MODEL.replace("hf_config=config.text_config)",
                          "vllm_config=vllm_config.with_hf_config(config.llm_config))\n"
                          "        self.bert = Bert(vllm_config=vllm_config.with_hf_config(config.text_config))")
    # ColUltraVBert hands its text_config to the file's own UltraBert: no registered model serves there
    assert S.sub_config_classes([model, TOWER]) == {"llm_config": S.LANGUAGE, "vision_config": "Qwen2_5_VLVisionConfig"}


def test_two_classes_for_one_sub_config_say_nothing():
    two = MODEL + "\n    def other(self, config):\n        return Tower(config.vision_config)\n"
    assert "vision_config" not in S.sub_config_classes([two, TOWER])


def test_with_parts_fills_only_what_nothing_else_valued():
    cfg, missing, classes = H.with_parts({"hidden_size": 64}, ["text_config", "vision_config", "image_size"],
                                         {"text_config": S.LANGUAGE, "vision_config": "SiglipVisionConfig",
                                          "audio_config": "WhisperConfig"})
    assert cfg["text_config"]["model_type"] == "qwen2" and "vision_config" not in cfg
    assert missing == ["vision_config", "image_size"]  # the worker fills the tower from its class's defaults
    assert classes == {"text_config": S.LANGUAGE, "vision_config": "SiglipVisionConfig"}


def test_the_worker_finds_a_nested_class_and_builds_a_sub_config_of_its_model_type():
    """On the pinned transformers 4.57.6: Qwen2_5_VLVisionConfig is no top-level export and says model_type
    "qwen2_5_vl" (the composite's), Idefics2VisionConfig's "idefics2_vision" is mapped by no AutoConfig key; a
    synthesized config nesting their dicts gets those classes back, and a tower class fills a missing sub-config."""
    if not os.environ.get("MMF_PINNED_VENV"):
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    python = Path(os.environ["MMF_PINNED_VENV"]) / "bin" / "python"
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import _runtime_config as rc\n"
            "q = rc.config_class_named('Qwen2_5_VLVisionConfig')\n"
            "i = rc.config_class_named('Idefics2VisionConfig')\n"
            "synth = {'config': {}, 'missing': ['vision_config', 'audio_config'],\n"
            "         'tower_classes': {'vision_config': 'Qwen2_5_VLVisionConfig', 'audio_config': 'NoSuchConfig'}}\n"
            "filled = rc._tower_parts(synth)\n"
            "cls = rc.synth_class('mmf_synth_test_towers')\n"
            "c = cls(vision_config=synth['config']['vision_config'])\n"
            "d = cls(vision_config=i().to_dict())\n"
            "print(json.dumps([q.__name__, q.model_type, type(c.vision_config).__name__,\n"
            "                  type(d.vision_config).__name__, synth['missing'], len(filled),\n"
            "                  rc.config_class_named('NoSuchConfig') is None]))")
    proc = subprocess.run([str(python), "-c", code, str(ROOT / "scripts" / "flagos_migrate" / "verify")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [
        "Qwen2_5_VLVisionConfig", "qwen2_5_vl", "Qwen2_5_VLVisionConfig", "Idefics2VisionConfig", ["audio_config"], 1,
        True]


def test_a_familys_tiny_values_stand_over_the_shrink(monkeypatch):
    """MiniCPM-V's resampler has hidden_size // 128 heads: the family's 128-wide language model stays 128 (the
    shrink's 64 gave 0 heads); a sub-config's field one level down too; what the family does not set shrinks."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts" / "flagos_migrate" / "verify"))
    import _runtime_config as rc

    family = H.family_values("minicpmv")
    tiny = {"hidden_size": 64, "intermediate_size": 128, "query_num": 64, "vision_config": {"num_hidden_layers": 1}}
    notes: list = []
    rc._keep_family(tiny, {**family, "vision_config": {"num_hidden_layers": 2}}, notes)
    assert tiny["hidden_size"] == 128 and tiny["intermediate_size"] == 128 and tiny["vision_config"]["num_hidden_layers"] == 2
    assert "version" not in tiny  # only fields the config holds
    assert notes == ["config: hidden_size=128, vision_config.num_hidden_layers=2: the family's values (SYNTH_FAMILIES, "
                     "tiny already) over the shrink"]
