"""``verify --run`` gives the models whose vLLM classes read token ids while built a tiny tokenizer, written
offline next to the tiny config (``runtime_tokenizer``), the same file on the pinned and the upstream side.

Before it the harness ran every model with ``skip_tokenizer_init``, and DeepSeek-OCR's ``__init__``
(``tokenizer.vocab["<image>"]``) stopped at construct on both vLLMs ("'NoneType' object has no attribute
'vocab'"): construct was skipped as "the pinned vLLM's own class fails the same way". The pure half checks the
written tokenizer; the runtime half verifies DeepSeek-OCR against upstream (skips without the venvs)."""

from __future__ import annotations

import json
import os

import pytest
from analysis_helpers import UPSTREAM_SRC, apply_and_verify_run
from flagos_migrate.verify import runtime_tokenizer as rt


def test_the_special_tokens_sit_at_the_top_of_the_tiny_vocabulary_and_the_words_below(tmp_path):
    written = rt.write(str(tmp_path), "deepseek_ocr", 512)
    assert written["<image>"] == rt.image_token_id("deepseek_ocr", 512)
    assert set(written.values()) == rt.special_ids("deepseek_ocr", 512) == set(range(512 - len(written), 512))
    tok = json.loads((tmp_path / rt.TOKENIZER_FILE).read_text(encoding="utf-8"))
    vocab = tok["model"]["vocab"]
    assert len(vocab) == 512 and sorted(vocab.values()) == list(range(512))  # every id within the model's vocab
    assert vocab["w7"] == 7  # a prompt of token ids spells itself as words
    assert {a["content"] for a in tok["added_tokens"]} == set(written)
    cfg = json.loads((tmp_path / rt.TOKENIZER_CONFIG_FILE).read_text(encoding="utf-8"))
    assert cfg["pad_token"] == "<｜▁pad▁｜>" and "<image>" in cfg["additional_special_tokens"]


def test_a_model_type_outside_the_table_gets_no_tokenizer(tmp_path):
    assert rt.write(str(tmp_path), "llama", 512) is None
    assert not rt.written(str(tmp_path)) and rt.special_ids("llama", 512) == set()


def test_a_synthesized_config_finds_its_tokenizer_by_architecture(tmp_path):
    """InternVL's remote-code config has no class here: its config is synthesized under the harness's own model type,
    so the table is read by architecture too. Upstream's InternVLProcessingInfo reads the vocabulary while its
    ModelConfig is built (ctx_video_token, "<|video_pad|>" for a Qwen2 language model) and its processor expands the
    prompt's "<image>" into <img> <IMG_CONTEXT>... </img>: all in the tiny vocabulary."""
    written = rt.write(str(tmp_path), "mmf_synth_internvlchatmodel", 512, ["InternVLChatModel"])
    assert {"<image>", "<IMG_CONTEXT>", "<img>", "</img>", "<|video_pad|>"} <= set(written)
    assert rt.image_token_id("mmf_synth_internvlchatmodel", 512, ["InternVLChatModel"]) == written["<image>"]
    assert rt.tokens_for("internvl_chat") is rt.tokens_for(None, ["InternVLChatModel"])
    assert rt.tokens_for("mmf_synth_llamaforcausallm", ["LlamaForCausalLM"]) is None  # outside the table: none


def test_a_vocabulary_too_small_for_the_special_tokens_is_refused():
    with pytest.raises(ValueError):
        rt.vocabulary(rt.tokens_for("isaac"), 4)


def test_deepseek_ocr_is_built_with_the_tiny_tokenizer_on_both_sides(tmp_path):
    pinned, reference = os.environ.get("MMF_PINNED_VENV"), os.environ.get("MMF_REFERENCE_VENV")
    if not pinned or not reference or not UPSTREAM_SRC.is_dir():
        pytest.skip("needs MMF_PINNED_VENV (vLLM 0.13.0), MMF_REFERENCE_VENV (vLLM 0.33.0) and the upstream source")
    (arch,) = apply_and_verify_run(tmp_path, "deepseek_ocr", "--all-archs")
    assert arch["architecture"] == "DeepseekOCRForCausalLM"
    # before: construct skipped, "the pinned vLLM's own DeepseekOCRForCausalLM fails the same way here
    # (AttributeError: 'NoneType' object has no attribute 'vocab')"
    assert arch["levels"]["construct"]["status"] == "pass", arch["levels"]
    assert any(n.startswith("tokenizer: a tiny WordLevel tokenizer") for n in arch["notes"]), arch["notes"]
