"""Tiny configs the pinned vLLM's own class builds from (it failed the same way as the migrated one, so the level
was skipped): the harness's config, not the migration, was short. Host tests of the pure parts; one test on the
real pinned vLLM (skips without MMF_PINNED_VENV)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "flagos_migrate" / "verify"))

from _runtime_config import RELEASED_NAMES, _released_names  # noqa: E402
from _runtime_env import _over_position_limit  # noqa: E402
from analysis_helpers import PINNED_VENV, run_script_json  # noqa: E402

# 0.13.0's refusal (vllm/config/model.py _get_and_verify_max_len), as pydantic wraps it
REFUSAL = ("1 validation error for ModelConfig\n  Value error, User-specified max_model_len (256) is greater than the "
           "derived max_model_len (max_position_embeddings=77 or model_max_length=None in model's config.json).")


def test_only_the_position_limit_refusal_retries_without_a_max_model_len():
    assert _over_position_limit(ValueError(REFUSAL))
    assert not _over_position_limit(ValueError("max_model_len must be a positive integer"))
    assert not _over_position_limit(ValueError("The checkpoint you are trying to load has model type `x`"))


def test_a_held_field_is_written_under_its_released_name():
    data = {"wrapped_model_config": {"model_type": "llama", "hidden_size": 64}, "hidden_size": 64}
    _released_names(data, "ultravox")
    assert data == {"text_config": {"model_type": "llama", "hidden_size": 64}, "hidden_size": 64}
    other = {"wrapped_model_config": {}}
    _released_names(other, "llama")  # only the tabled model types
    assert other == {"wrapped_model_config": {}}
    assert RELEASED_NAMES["ultravox"] == {"wrapped_model_config": "text_config"}


SCRIPT = r"""
import json, os, sys, tempfile
sys.path.insert(0, sys.argv[1])
import _runtime_config as C
import _runtime_env as E
from vllm.transformers_utils.config import get_config
from vllm.transformers_utils.configs.ultravox import UltravoxConfig

out = {}
with tempfile.TemporaryDirectory() as work:
    # the pinned UltravoxConfig's own save holds wrapped_model_config, which it does not read back
    UltravoxConfig().save_pretrained(work)
    try:
        out["own_save"] = type(get_config(work, trust_remote_code=False).text_config).__name__
    except AttributeError as exc:
        out["own_save"] = str(exc)
with tempfile.TemporaryDirectory() as work:
    C._write_tiny_config("UltravoxModel", UltravoxConfig, work)
    saved = json.load(open(os.path.join(work, "config.json")))
    cfg = get_config(work, trust_remote_code=False)
    out["keys"] = sorted(k for k in ("text_config", "wrapped_model_config") if k in saved)
    out["text_hidden"] = cfg.text_config.hidden_size
    out["text_layers"] = cfg.text_config.num_hidden_layers
out["synth_name"] = C.synth_class("mmf_synth_test_gte_new", "NewConfig").__name__
with tempfile.TemporaryDirectory() as work:
    json.dump({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "max_position_embeddings": 64,
               "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1, "vocab_size": 512,
               "intermediate_size": 128}, open(os.path.join(work, "config.json"), "w"))
    out["short"] = E._model_config(work, "auto").max_model_len
    cfg = json.load(open(os.path.join(work, "config.json")))
    cfg["max_position_embeddings"] = 2048
    json.dump(cfg, open(os.path.join(work, "config.json"), "w"))
    out["long"] = E._model_config(work, "auto").max_model_len
print(json.dumps(out))
"""


@pytest.mark.skipif(not os.environ.get("MMF_PINNED_VENV"), reason="needs MMF_PINNED_VENV (vLLM 0.13.0)")
def test_pinned_configs_build_as_released_checkpoints_give_them():
    out = run_script_json(PINNED_VENV / "bin" / "python", SCRIPT)
    assert "get_text_config" in out["own_save"]  # what the harness saved before: a dict where a config goes
    assert out["keys"] == ["text_config"]
    assert (out["text_hidden"], out["text_layers"]) == (64, 2)  # the language model shrank with the rest
    assert out["synth_name"] == "NewConfig"
    assert (out["short"], out["long"]) == (64, 256)  # the position limit when below the harness's context


def test_a_tower_one_width_wide_stays_so_and_a_merger_takes_the_text_width():
    from runtime_mm import shrink_vision_geometry
    from runtime_tiny import VISION_INTERMEDIATE, tiny_config

    # ERNIE-4.5-VL's tower (baidu's config.json: embed_dim 1280 = hidden_size; its vLLM class asserts them equal)
    ernie = tiny_config({"hidden_size": 2560, "num_attention_heads": 20, "vision_config": {
        "depth": 32, "embed_dim": 1280, "hidden_size": 1280, "num_heads": 16, "patch_size": 14}})
    shrink_vision_geometry(ernie)
    assert ernie["vision_config"]["embed_dim"] == ernie["vision_config"]["hidden_size"] == 32
    # its MLP: transformers 5's class is intermediate_size wide (4 x 1280), both vLLMs' embed_dim x mlp_ratio: the
    # tiny tower keeps the ratio, else the checkpoint's fc1 (64 rows) fits neither vLLM's (128)
    held = tiny_config({"hidden_size": 2560, "num_attention_heads": 20, "vision_config": {
        "depth": 32, "embed_dim": 1280, "hidden_size": 1280, "num_heads": 16, "patch_size": 14,
        "intermediate_size": 5120, "mlp_ratio": 4}})
    shrink_vision_geometry(held)
    assert (held["vision_config"]["intermediate_size"], held["vision_config"]["mlp_ratio"]) == (128, 4)
    # a ratio the released sizes do not hold (StepVL's PerceptionEncoder: 8960 / 1536 of another width) is not forced
    free = tiny_config({"hidden_size": 2560, "num_attention_heads": 20, "vision_config": {
        "depth": 32, "hidden_size": 1792, "num_heads": 16, "patch_size": 14, "intermediate_size": 15360,
        "mlp_ratio": 8960 / 1536}})
    shrink_vision_geometry(free)
    assert free["vision_config"]["intermediate_size"] == VISION_INTERMEDIATE
    # Qwen2-VL's: a 1280-wide tower whose merger writes the 1536-wide text model's embeddings
    qwen = tiny_config({"text_config": {"hidden_size": 1536, "num_attention_heads": 12}, "vision_config": {
        "depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16, "patch_size": 14}})
    shrink_vision_geometry(qwen)
    assert (qwen["vision_config"]["embed_dim"], qwen["vision_config"]["hidden_size"]) == (32, 64)
