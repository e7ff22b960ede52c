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
    specials = {a["content"] for a in tok["added_tokens"] if a["special"]}
    assert specials == set(written)
    # a named class (LlamaTokenizerFast): every word is an added token too, the id its vocabulary gives it
    assert {a["content"]: a["id"] for a in tok["added_tokens"] if not a["special"]} == {
        w: i for w, i in vocab.items() if w not in written}
    cfg = json.loads((tmp_path / rt.TOKENIZER_CONFIG_FILE).read_text(encoding="utf-8"))
    assert cfg["pad_token"] == "<｜▁pad▁｜>" and "<image>" in cfg["additional_special_tokens"]


def test_the_tokenizer_class_is_the_one_a_released_checkpoint_of_the_family_declares(tmp_path):
    """The pinned processors type-check the tokenizer (DeepseekOCRProcessor: LlamaTokenizer(Fast); Qwen3VLProcessor:
    Qwen2Tokenizer(Fast)); the generic class made DeepSeek-OCR's image path raise and ColQwen3's fall back."""
    for model_type, cls in (("deepseek_ocr", "LlamaTokenizerFast"), ("deepseek_ocr2", "LlamaTokenizerFast"),
                            ("deepseek_vl_v2", "LlamaTokenizerFast"), ("colqwen3", "Qwen2TokenizerFast"),
                            ("isaac", "Qwen2TokenizerFast"), ("internvl_chat", "Qwen2TokenizerFast"),
                            ("Ovis2_5", "Qwen2TokenizerFast"), ("NemotronH_Nano_VL_V2", "PreTrainedTokenizerFast")):
        rt.write(str(tmp_path), model_type, 512)
        cfg = json.loads((tmp_path / rt.TOKENIZER_CONFIG_FILE).read_text(encoding="utf-8"))
        assert cfg["tokenizer_class"] == cls, model_type
        tok = json.loads((tmp_path / rt.TOKENIZER_FILE).read_text(encoding="utf-8"))
        words = [a for a in tok["added_tokens"] if not a["special"]]
        if cls == rt.DEFAULT_TOKENIZER_CLASS:  # read as written everywhere: the file as before, BOS as before
            assert not words and "add_bos_token" not in cfg, model_type
        else:
            assert len(words) == 512 - len(rt.special_tokens(rt.tokens_for(model_type))) and not cfg["add_bos_token"]


_ENCODE = """import json, sys
from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained(sys.argv[1])
print(json.dumps([type(t).__name__, t(sys.argv[2]).input_ids]))
"""


@pytest.mark.parametrize("model_type", ["deepseek_ocr", "colqwen3", "isaac", "internvl_chat", "Ovis2_5"])
def test_transformers_4_57_and_5_read_the_named_class_to_the_same_ids(tmp_path, model_type):
    """transformers 5 rebuilds LlamaTokenizer / Qwen2Tokenizer's own BPE from the file's vocabulary: without the words
    as added tokens it dropped every w<N> ("w5 w7 <image> w9" -> [504]) where 4.57 gave [5, 7, 504, 9]."""
    pythons = [os.environ.get(v) for v in ("MMF_PINNED_VENV", "MMF_REFERENCE_VENV")]
    if not all(pythons):
        pytest.skip("needs MMF_PINNED_VENV (transformers 4.57) and MMF_REFERENCE_VENV (transformers 5)")
    import subprocess
    written = rt.write(str(tmp_path), model_type, 512)
    text = " ".join(["w5", "w7", *written, "w500"])
    expected = [5, 7, *written.values(), 500]
    cls = rt.tokens_for(model_type)["tokenizer_class"]
    for venv in pythons:
        out = subprocess.run([os.path.join(venv, "bin", "python"), "-c", _ENCODE, str(tmp_path), text],
                             capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stderr[-2000:]
        name, ids = json.loads(out.stdout.strip().splitlines()[-1])
        assert name in (cls, cls.removesuffix("Fast")) and ids == expected, (venv, name, ids)


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


# -- tekken (Voxtral Realtime) ----------------------------------------------------------------------------------

_AUDIO = {"sampling_rate": 16000, "num_mel_bins": 128, "hop_length": 160, "window_size": 400}


def test_the_tekken_file_holds_the_specials_first_the_bytes_and_the_audio_front_end_of_the_config(tmp_path):
    assert rt.write_tekken(str(tmp_path), ["VoxtralRealtimeGeneration"], 512, dict(_AUDIO, num_mel_bins=80))
    data = json.loads((tmp_path / rt.TEKKEN_FILE).read_text())
    cfg = data["config"]
    assert (cfg["default_vocab_size"], cfg["default_num_special_tokens"], cfg["num_vocab_tokens"]) == (512, 32, 480)
    assert [t["token_str"] for t in data["special_tokens"][:3]] == ["<unk>", "<s>", "</s>"]
    assert {"[AUDIO]", "[BEGIN_AUDIO]", "[STREAMING_PAD]"} <= {t["token_str"] for t in data["special_tokens"]}
    assert len({t["token_bytes"] for t in data["vocab"]}) == 480  # each token once
    # the mel front end is the tiny config's (80 here), the streaming fields the table's
    assert data["audio"]["audio_encoding_config"] == {"num_mel_bins": 80, "hop_length": 160, "window_size": 400}
    assert data["audio"]["transcription_format"] == "streaming" and data["audio"]["sampling_rate"] == 16000
    assert rt.tekken_special_ids(["VoxtralRealtimeGeneration"]) == set(range(32))


def test_no_tekken_file_outside_the_table_and_none_without_the_audio_fields(tmp_path):
    assert not rt.write_tekken(str(tmp_path), ["VoxtralForConditionalGeneration"], 512, _AUDIO)
    assert not (tmp_path / rt.TEKKEN_FILE).exists() and rt.tekken_special_ids(["LlamaForCausalLM"]) == set()
    with pytest.raises(ValueError, match="hop_length"):
        rt.tekken_json(rt.TEKKEN_TOKENIZERS["VoxtralRealtimeGeneration"], 512, {"sampling_rate": 16000})
    with pytest.raises(ValueError, match="256 byte tokens"):
        rt.tekken_json(rt.TEKKEN_TOKENIZERS["VoxtralRealtimeGeneration"], 200, _AUDIO)


_TEKKEN = """import json, sys
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
t = MistralTokenizer.from_file(sys.argv[1]).instruct_tokenizer
audio = t.audio_encoder
print(json.dumps([audio.audio_config.get_num_delay_tokens(), t.start(), audio.encode_streaming_tokens()[:2],
                  t.tokenizer.n_words, t.tokenizer.encode("hello w5", bos=False, eos=False)]))
"""


def test_mistral_common_of_both_venvs_reads_the_tekken_file_alike(tmp_path):
    """Voxtral Realtime's __init__ reads tokenizer.instruct.audio_encoder.audio_config.get_num_delay_tokens(): both
    venvs' mistral_common build the streaming audio encoder from the file (480 ms at 12.5 Hz: 6 tokens, the
    released model's default) and encode alike."""
    pythons = [os.environ.get(v) for v in ("MMF_PINNED_VENV", "MMF_REFERENCE_VENV")]
    if not all(pythons):
        pytest.skip("needs MMF_PINNED_VENV and MMF_REFERENCE_VENV (mistral_common in each)")
    import subprocess
    rt.write_tekken(str(tmp_path), ["VoxtralRealtimeGeneration"], 512, _AUDIO)
    outs = []
    for venv in pythons:
        out = subprocess.run([os.path.join(venv, "bin", "python"), "-c", _TEKKEN, str(tmp_path / rt.TEKKEN_FILE)],
                             capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stderr[-2000:]
        outs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    delay, start, streaming, n_words, ids = outs[0]
    assert outs[0] == outs[1]
    assert (delay, start, n_words) == (6, [1], 512) and streaming == [25, 25]  # [STREAMING_PAD]'s rank
    assert ids and all(32 <= i < 512 for i in ids)
