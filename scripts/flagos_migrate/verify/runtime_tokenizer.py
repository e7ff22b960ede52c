"""A tiny tokenizer for ``verify --run``, written offline next to the tiny config, for the models whose vLLM
classes read token ids from the tokenizer while they are built (the harness runs every other model without
one: ``skip_tokenizer_init``).

DeepSeek-VL2 / DeepSeek-OCR(-2) / Unlimited-OCR look up ``tokenizer.vocab["<image>"]`` in ``__init__`` and
their processors read the begin/end/pad tokens; Isaac encodes its ``vision_token`` (``<image>``) and the
``<|image_pad|>`` it replaces it with. A released checkpoint's tokenizer holds those tokens; here a
``tokenizers`` WordLevel tokenizer (``tokenizer.json``, the format every transformers version reads) holds
them at the top of the tiny vocabulary, and plain words ``w<N>`` below: the same file on the pinned and the
upstream side, no download. Which tokens a model type needs is data (``TOKENIZER_TOKENS``), not code.

An entry names the tokenizer class a released checkpoint of its family declares (``tokenizer_class``) where the pinned
processors type-check it (DeepseekOCRProcessor wants LlamaTokenizer(Fast), Qwen3VLProcessor Qwen2Tokenizer(Fast)).
transformers 4.57 reads ``tokenizer.json`` as written for any fast class, but transformers 5 rebuilds a named class's
own model (a byte-fallback BPE for Llama / Qwen2) from the file's vocabulary and would lose every ``w<N>``: so the
words of such an entry are added tokens too (matched before the model on both versions; ``lstrip`` eats the space
before each), and BOS/EOS are not added implicitly (transformers 5 reads no post-processor from the file; 4.57's
Llama would add BOS).

Mistral's own checkpoints ship a tekken tokenizer (``tekken.json``, read by mistral_common, served with
``tokenizer_mode mistral``) instead: Voxtral Realtime's ``__init__`` reads ``tokenizer.instruct.audio_encoder``'s
streaming audio config (its delay in tokens). ``TEKKEN_TOKENIZERS`` names those architectures; ``tekken_json``
writes a tiny tekken file (the 256 byte tokens, two-letter words up to the vocabulary size, the special tokens
mistral_common's instruct and audio encoders look up at ranks 0..) with the audio section sized from the tiny
config's own mel front end. Both venvs hold mistral_common and both vLLMs read the same file.

Standard library only; pure (the host tests it directly; the worker loads it by path).
"""

import base64
import json
import os

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TEKKEN_FILE = "tekken.json"

# DeepSeek's LLaMA-style tokenizer (DeepseekVLV2Processor / DeepseekOCRProcessor): begin/end/pad, the image
# placeholder, the grounding and SFT tokens its processor adds when missing (present, they add nothing)
_DEEPSEEK = {"tokenizer_class": "LlamaTokenizerFast", "bos": "<｜begin▁of▁sentence｜>", "eos": "<｜end▁of▁sentence｜>", "pad": "<｜▁pad▁｜>",
             "image": "<image>",
             "extra": ("<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>", "<|User|>", "<|Assistant|>")}
# Isaac (Qwen3's tokenizer, declared Qwen2Tokenizer as every Qwen2/2.5/3 checkpoint): the config's vision_token and
# the pad token each image becomes
_ISAAC = {"tokenizer_class": "Qwen2TokenizerFast", "eos": "<|im_end|>", "pad": "<|endoftext|>", "image": "<image>",
          "extra": ("<|image_pad|>", "<|im_start|>")}

# InternVL2.5/3 (a Qwen2.5 tokenizer plus InternVL's tokens): upstream's InternVLProcessingInfo reads the vocabulary
# while the ModelConfig is built (ctx_video_token: "<|video_pad|>" for a Qwen2 language model, in every Qwen2.5
# tokenizer) and its processor expands the prompt's "<image>" into <img> <IMG_CONTEXT>... </img>
_INTERNVL = {"tokenizer_class": "Qwen2TokenizerFast", "eos": "<|im_end|>", "pad": "<|endoftext|>", "image": "<image>",
             "extra": ("<IMG_CONTEXT>", "<img>", "</img>", "<|video_pad|>", "<|im_start|>")}

# Nemotron Nano VL v2 / Nemotron 3 Omni (nano_nemotron_vl.py): the model encodes IMG_START / IMG_END / IMG_CONTEXT
# while built (upstream's processors/nano_nemotron_vl.py: "<img>", "</img>", "<image>"); the audio tokens beside them.
# No class: a Nemotron-H checkpoint ships tokenizer.json alone, declared PreTrainedTokenizerFast (the default here)
_NEMOTRON_VL = {"bos": "<s>", "eos": "</s>", "pad": "<unk>", "image": "<image>",
                "extra": ("<img>", "</img>", "<video>", "<so_start>", "<so_end>", "<so_embedding>")}

# Qwen3-VL's tokenizer (ColQwen3 and the other Qwen3-VL embedders): upstream's ColQwen3ProcessingInfo builds
# Qwen3VLProcessor while the model is built, which loads the checkpoint's tokenizer and reads these tokens
_QWEN3_VL = {"tokenizer_class": "Qwen2TokenizerFast", "eos": "<|im_end|>", "pad": "<|endoftext|>", "image": "<|image_pad|>",
             "extra": ("<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|im_start|>")}

# Ovis2.5 / 2.6 (a Qwen3 tokenizer): upstream's Ovis2_5ProcessingInfo builds Ovis2_5Processor in __init__, which
# adds its visual tokens to the tokenizer unless present (here they are, inside the tiny vocabulary)
_OVIS = {"tokenizer_class": "Qwen2TokenizerFast", "eos": "<|im_end|>", "pad": "<|endoftext|>",
         "extra": ("<image>", "<video>", "<ovis_visual_atom>", "<ovis_image_start>", "<ovis_image_end>",
                   "<ovis_video_start>", "<ovis_video_end>", "<|image_pad|>", "<|im_start|>")}

# model type of the tiny config (else its architecture: a synthesized config's model type is the harness's own, as
# InternVL's remote-code config has no class here) -> the special tokens its classes and processor read
TOKENIZER_TOKENS = {
    "deepseek_vl_v2": _DEEPSEEK,
    "deepseek_ocr": _DEEPSEEK,
    "deepseek_ocr2": _DEEPSEEK,
    "unlimited-ocr": _DEEPSEEK,
    "unlimited_ocr": _DEEPSEEK,
    "isaac": _ISAAC,
    "colqwen3": _QWEN3_VL,
    "ops_colqwen3": _QWEN3_VL,
    "qwen3_vl_nemotron_embed": _QWEN3_VL,
    "ColQwen3_5": _QWEN3_VL,  # its model type is qwen3_5 (Qwen3.5's config): keyed by its architecture
    "Ovis2_5": _OVIS,
    "Ovis2_6ForCausalLM": _OVIS,
    "Ovis2_6_MoeForCausalLM": _OVIS,
    "internvl_chat": _INTERNVL,
    "InternVLChatModel": _INTERNVL,
    "NemotronH_Nano_VL_V2": _NEMOTRON_VL,
    "NemotronH_Nano_Omni_Reasoning_V3": _NEMOTRON_VL,
    "NemotronH_Super_Omni_Reasoning_V3": _NEMOTRON_VL,
    "NemotronH_Omni_Reasoning_V3": _NEMOTRON_VL,
}
_ROLES = ("bos", "eos", "pad", "image")
# an entry naming no class: the generic one (tokenizer.json read as written on every transformers version)
DEFAULT_TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def tokens_for(model_type, architectures=None) -> dict | None:
    """The table's tokens of ``model_type``, else of the first of ``architectures`` it holds, else None."""
    for key in (model_type, *(architectures or ())):
        if isinstance(key, str) and key in TOKENIZER_TOKENS:
            return TOKENIZER_TOKENS[key]
    return None


def special_tokens(spec: dict) -> list:
    """The spec's special tokens, each once, roles first."""
    out = [spec[r] for r in _ROLES if spec.get(r)] + list(spec.get("extra") or ())
    return list(dict.fromkeys(out))


def vocabulary(spec: dict, vocab_size: int) -> dict:
    """token -> id: the special tokens at the top ids (``vocab_size - k`` ..), words below."""
    specials = special_tokens(spec)
    if vocab_size <= len(specials) + 1:
        raise ValueError(f"a vocabulary of {vocab_size} has no room for {len(specials)} special tokens")
    words = vocab_size - len(specials)
    vocab = {f"w{i}": i for i in range(words)}
    vocab.update({tok: words + i for i, tok in enumerate(specials)})
    return vocab


def tokenizer_json(spec: dict, vocab_size: int) -> dict:
    vocab = vocabulary(spec, vocab_size)
    specials = special_tokens(spec)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        # a named class: the words as added tokens as well, which transformers 5's rebuild keeps (module docstring)
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": True, "rstrip": False,
                          "normalized": False, "special": False}
                         for t, i in vocab.items() if t not in specials and spec.get("tokenizer_class")]
        + [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True} for t in specials],
        "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"},
    }


def tokenizer_config(spec: dict) -> dict:
    cfg = {"tokenizer_class": spec.get("tokenizer_class") or DEFAULT_TOKENIZER_CLASS, "model_max_length": 4096,
           "unk_token": "w0", "clean_up_tokenization_spaces": False}
    if spec.get("tokenizer_class"):  # what transformers 5's rebuild adds (nothing): 4.57's Llama would add BOS
        cfg.update(add_bos_token=False, add_eos_token=False)
    for role in ("bos", "eos", "pad"):
        if spec.get(role):
            cfg[f"{role}_token"] = spec[role]
    extra = [t for t in special_tokens(spec) if t not in (spec.get("bos"), spec.get("eos"), spec.get("pad"))]
    cfg["additional_special_tokens"] = extra
    return cfg


def write(workdir: str, model_type, vocab_size: int, architectures=None):
    """Write the tiny tokenizer of ``model_type`` (else ``architectures``) into ``workdir``; its {token: id} of the
    special tokens, or None when the model type needs none (nothing written)."""
    spec = tokens_for(model_type, architectures)
    if spec is None:
        return None
    with open(os.path.join(workdir, TOKENIZER_FILE), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(spec, vocab_size), f, ensure_ascii=False)
    with open(os.path.join(workdir, TOKENIZER_CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(spec), f, ensure_ascii=False)
    vocab = vocabulary(spec, vocab_size)
    return {t: vocab[t] for t in special_tokens(spec)}


def written(workdir: str) -> bool:
    return os.path.isfile(os.path.join(workdir, TOKENIZER_FILE))


def image_token_id(model_type, vocab_size: int, architectures=None):
    """The image placeholder's id in the tiny tokenizer of ``model_type`` (else ``architectures``), else None."""
    spec = tokens_for(model_type, architectures)
    if spec is None or not spec.get("image"):
        return None
    return vocabulary(spec, vocab_size)[spec["image"]]


def special_ids(model_type, vocab_size: int, architectures=None) -> set:
    """The ids of the tiny tokenizer's special tokens (a prompt of plain words avoids them), else empty."""
    spec = tokens_for(model_type, architectures)
    if spec is None or not isinstance(vocab_size, int):
        return set()
    vocab = vocabulary(spec, vocab_size)
    return {vocab[t] for t in special_tokens(spec)}


# -- tekken (mistral_common) ---------------------------------------------------------------------------------

# architecture -> its tekken file's version and audio section. Voxtral Realtime (Voxtral-Mini-4B-Realtime-2602):
# mistral_common's streaming AudioConfig (transcription_format "streaming" needs the delay, a multiple of one
# 80 ms frame at 12.5 Hz, the look-ahead/back and the left padding); the mel front end's fields come from the tiny
# config's audio_config (AUDIO_FROM_CONFIG), so the tokenizer's features fit the tiny encoder
TEKKEN_TOKENIZERS = {
    "VoxtralRealtimeGeneration": {
        "version": "v13",
        "audio": {"frame_rate": 12.5, "transcription_format": "streaming", "transcription_delay_ms": 480,
                  "streaming_look_ahead_ms": 2.5, "streaming_look_back_ms": 52.5, "streaming_n_left_pad_tokens": 32},
    },
}
# tekken audio section key -> the tiny config's audio_config key it takes its value from
AUDIO_FROM_CONFIG = {"sampling_rate": "sampling_rate"}
ENCODING_FROM_CONFIG = {"num_mel_bins": "num_mel_bins", "hop_length": "hop_length", "window_size": "window_size"}
# the special tokens (mistral_common's SpecialTokens values), ranks 0.. in this order: the first 20 are its
# DEPRECATED_SPECIAL_TOKENS (a v1..v7 file's), then the ones the instruct and audio encoders look up
TEKKEN_SPECIALS = ("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                   "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]",
                   "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
                   "[TOOL_CONTENT]", "[ARGS]", "[CALL_ID]", "[AUDIO]", "[BEGIN_AUDIO]", "[TRANSCRIBE]",
                   "[STREAMING_PAD]", "[STREAMING_WORD]")
TEKKEN_NUM_SPECIAL = 32  # the rest <SPECIAL_{rank}>, as mistral_common's template names them
# tiktoken's pattern of Mistral's tekken files
TEKKEN_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
                  r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")


def tekken_for(architectures) -> dict | None:
    for arch in architectures or ():
        if isinstance(arch, str) and arch in TEKKEN_TOKENIZERS:
            return TEKKEN_TOKENIZERS[arch]
    return None


def tekken_json(spec: dict, vocab_size: int, audio_config: dict) -> dict:
    """A tekken file of ``vocab_size`` ids (specials first, then the 256 bytes and two-letter words) with the spec's
    audio section, its mel front end from ``audio_config`` (the tiny config's)."""
    words = vocab_size - TEKKEN_NUM_SPECIAL
    if words < 256 or words - 256 > 26 * 26:
        raise ValueError(f"a tekken vocabulary of {vocab_size} needs 256 byte tokens and at most 676 words")
    tokens = [bytes([i]) for i in range(256)] + [bytes([97 + i // 26, 97 + i % 26]) for i in range(words - 256)]
    specials = list(TEKKEN_SPECIALS) + [f"<SPECIAL_{i}>" for i in range(len(TEKKEN_SPECIALS), TEKKEN_NUM_SPECIAL)]
    out = {"config": {"pattern": TEKKEN_PATTERN, "num_vocab_tokens": len(tokens), "default_vocab_size": vocab_size,
                      "default_num_special_tokens": TEKKEN_NUM_SPECIAL, "version": spec["version"]},
           "vocab": [{"rank": i, "token_bytes": base64.b64encode(t).decode(), "token_str": None}
                     for i, t in enumerate(tokens)],
           "special_tokens": [{"rank": i, "token_str": t, "is_control": True} for i, t in enumerate(specials)]}
    if spec.get("audio") is not None:
        missing = [k for k in (*AUDIO_FROM_CONFIG.values(), *ENCODING_FROM_CONFIG.values()) if k not in audio_config]
        if missing:
            raise ValueError(f"the tiny audio_config has no {', '.join(missing)} for the tekken audio section")
        out["audio"] = {**spec["audio"], **{k: audio_config[c] for k, c in AUDIO_FROM_CONFIG.items()},
                        "audio_encoding_config": {k: audio_config[c] for k, c in ENCODING_FROM_CONFIG.items()}}
    return out


def write_tekken(workdir: str, architectures, vocab_size: int, audio_config: dict) -> bool:
    """Write the tiny tekken file of the first of ``architectures`` the table holds; False when none does."""
    spec = tekken_for(architectures)
    if spec is None:
        return False
    with open(os.path.join(workdir, TEKKEN_FILE), "w", encoding="utf-8") as f:
        json.dump(tekken_json(spec, vocab_size, audio_config), f)
    return True


def tekken_special_ids(architectures) -> set:
    """The tiny tekken file's special ids (ranks 0..), else empty."""
    return set(range(TEKKEN_NUM_SPECIAL)) if tekken_for(architectures) is not None else set()
