"""Tiny configs for runtime verification: a model's own config shrunk so it builds in seconds on CPU.

Standard library only and no ``flagos_migrate`` imports: ``_runtime_worker.py`` loads this file by
path inside a foreign venv (the pinned or the upstream vLLM), and the host tests it directly.

:func:`tiny_config` maps a config dict (``PretrainedConfig.to_dict()`` of the model's config class)
to a small one that keeps what decides the code paths: the layer-type pattern, MoE vs dense,
grouped-query attention, the vision tower's structure, multimodal rope sections. Sizes shrink,
special token ids move into the small vocabulary, so the same dict builds the pinned model, the
upstream model and the Hugging Face reference alike.
"""

from __future__ import annotations

import copy
import math

HIDDEN = 64
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
INTERMEDIATE = 128
LAYERS = 2
VOCAB = 512
EXPERTS = 4
EXPERTS_PER_TOKEN = 2
# no fused expert tensor square ([E, 2 * I, H] and [E, H, I]): transformers 5 loads qwen3_vl_moe's experts with
# Transpose(check_dims=True), which leaves a square tensor as it is, so a checkpoint in the released layout
# reached the Hugging Face reference transposed (2 * 32 == HIDDEN: match off by 2.5 where both sides agree)
MOE_INTERMEDIATE = 48
MAX_POSITIONS = 2048

VISION_HIDDEN = 32
VISION_HEADS = 2
VISION_INTERMEDIATE = 64
VISION_DEPTH = 1

# key -> value set wherever the key already exists (a config never gains a field it lacked)
_TEXT_SIZES = {
    "hidden_size": HIDDEN,
    "d_model": HIDDEN,
    "n_embd": HIDDEN,
    # LFM2's widths of the MLP and the short conv, which its released config.json carries next to
    # hidden_size and intermediate_size (equal to them)
    "block_dim": HIDDEN,
    "conv_dim": HIDDEN,
    "block_ff_dim": INTERMEDIATE,
    "intermediate_size": INTERMEDIATE,
    "ffn_hidden_size": INTERMEDIATE,
    "n_inner": INTERMEDIATE,  # GPT-2's MLP width when set (Nomic BERT's config.json: its intermediate_size)
    "num_attention_heads": HEADS,
    "n_head": HEADS,
    # an encoder-decoder's own heads and widths next to d_model (Whisper's 6 heads over a 64-wide d_model
    # left embed_dim % num_heads != 0 at construct)
    "encoder_attention_heads": HEADS,
    "decoder_attention_heads": HEADS,
    "encoder_ffn_dim": INTERMEDIATE,
    "decoder_ffn_dim": INTERMEDIATE,
    "head_dim": HEAD_DIM,
    "num_experts": EXPERTS,
    "num_local_experts": EXPERTS,
    "n_routed_experts": EXPERTS,
    "moe_num_experts": EXPERTS,
    "num_experts_per_tok": EXPERTS_PER_TOKEN,
    "moe_topk": EXPERTS_PER_TOKEN,
    "moe_k": EXPERTS_PER_TOKEN,
    "moe_top_k": EXPERTS_PER_TOKEN,
    "num_experts_per_token": EXPERTS_PER_TOKEN,
    "n_activated_experts": EXPERTS_PER_TOKEN,
    "moe_intermediate_size": MOE_INTERMEDIATE,
    "shared_expert_intermediate_size": MOE_INTERMEDIATE,
    "expert_hidden_dim": MOE_INTERMEDIATE,
    "expert_ffn_hidden_size": MOE_INTERMEDIATE,
    "n_group": 1,
    "topk_group": 1,
    "n_shared_experts": 1,
    "kv_lora_rank": 32,
    "q_lora_rank": 32,
    "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 16,
    "v_head_dim": 16,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 16,
}
# model types whose router's top-k is part of the model, not a size: Llama 4's MoE scales the experts' input
# by the router weight (apply_router_weight_on_input), which upstream vLLM implements for top-1 only (its
# prepare step asserts it) and every released Llama 4 routes top-1; the shrink keeps their class's value
TOP_K_KEPT = ("llama4_text",)
_TOP_K_KEYS = ("num_experts_per_tok", "moe_k", "moe_topk", "moe_top_k", "num_experts_per_token", "n_activated_experts")

_VISION_SIZES = {
    "hidden_size": VISION_HIDDEN,
    "embed_dim": VISION_HIDDEN,
    "intermediate_size": VISION_INTERMEDIATE,
    "num_heads": VISION_HEADS,
    "num_attention_heads": VISION_HEADS,
    "depth": VISION_DEPTH,
    "num_hidden_layers": VISION_DEPTH,
    "num_layers": VISION_DEPTH,
}
# an encoder-decoder's own counts too: transformers 5's WhisperConfig reads num_hidden_layers as encoder_layers and
# 4.57.6's does not, so a tiny config that cut only num_hidden_layers built 2 encoder layers upstream and 4 pinned
_LAYER_COUNTS = ("num_hidden_layers", "n_layer", "num_layers", "encoder_layers", "decoder_layers")
_VISION_KEYS = ("vision_config", "vision_tower_config", "visual")
_TEXT_KEYS = ("text_config", "language_config", "llm_config")


def _pattern_layers(types: list) -> list:
    """Two layers keeping the pattern: the first layer of each distinct type, in order (at least 2)."""
    seen: list = []
    for t in types:
        if t not in seen:
            seen.append(t)
    while len(seen) < LAYERS and types:
        seen.append(types[len(seen) % len(types)])
    return seen


def _token_ids(cfg: dict, vocab: int) -> None:
    """Special token ids above the small vocabulary move to its top end (distinct, stable order)."""
    nxt = vocab - 1
    for key in sorted(cfg, key=str):
        value = cfg[key]
        if not isinstance(key, str) or not key.endswith("token_id") and not key.endswith("token_index"):
            continue
        if isinstance(value, int) and value >= vocab:
            cfg[key] = nxt
            nxt -= 1
        elif isinstance(value, list) and all(isinstance(v, int) for v in value):
            cfg[key] = [v if v < vocab else vocab - 1 for v in value]


def _rope(cfg: dict, head_dim: int) -> None:
    """Multimodal rope sections must sum to half the (new) head dim: scale them proportionally."""
    for key in ("rope_scaling", "rope_parameters"):
        rope = cfg.get(key)
        if not isinstance(rope, dict):
            continue
        for sec_key in ("mrope_section",):
            sec = rope.get(sec_key)
            if isinstance(sec, list) and sec and all(isinstance(s, int) for s in sec):
                rope[sec_key] = scale_sections(sec, head_dim // 2)


def scale_sections(sections: list[int], total: int) -> list[int]:
    """Positive integers proportional to ``sections`` that sum to ``total``; sections equal in the config stay
    equal where one section is unique (Bailing M-RoPE refuses H != W: [12, 10, 10] -> [4, 2, 2], not [3, 2, 3])."""
    old = sum(sections)
    out = [max(1, s * total // old) for s in sections]
    # the rounding remainder goes to the last section, or to the first unique one when the last has an equal
    rest = len(sections) - 1
    if sections.count(sections[rest]) > 1:
        rest = next((i for i, s in enumerate(sections) if sections.count(s) == 1), rest)
    out[rest] += total - sum(out)
    if out[-1] < 1:  # more sections than total allows: fall back to ones
        out = [1] * len(sections)
        out[-1] += total - len(sections)
    return out


# text model types whose language model, not the config, supplies partial_rotary_factor when the config has none:
# GLM-OCR's text model is Glm4ForCausalLM, whose Glm4Attention (upstream's and 0.13.0's glm4.py) sets 0.5 by
# setdefault on rope_parameters (4.57.6's Glm4vTextConfig declares the 0.5 itself, transformers 5's GlmOcrTextConfig
# does not): M-RoPE sections sized to the whole head fail MRotaryEmbedding's sum(mrope_section) == rotary_dim // 2
MODEL_ROTARY_FACTORS = {"glm_ocr_text": 0.5}


def rotary_dim(cfg: dict, head_dim: int) -> int:
    """The rotated part of the head: ``partial_rotary_factor`` at the top (transformers 4) or inside
    ``rope_parameters``/``rope_scaling`` (transformers 5 moves it there: Qwen3.5 rotates a quarter)."""
    scopes = [cfg] + [cfg[k] for k in ("rope_parameters", "rope_scaling") if isinstance(cfg.get(k), dict)]
    factor = next((s["partial_rotary_factor"] for s in scopes if isinstance(s.get("partial_rotary_factor"), (int, float))),
                  MODEL_ROTARY_FACTORS.get(cfg.get("model_type")))
    return int(head_dim * factor) if factor is not None and 0 < factor < 1 else head_dim


def _head_dim(cfg: dict) -> int | None:
    if isinstance(cfg.get("head_dim"), int):
        return cfg["head_dim"]
    hidden = next((cfg[k] for k in ("hidden_size", "n_embd", "d_model") if isinstance(cfg.get(k), int)), None)
    heads = next((cfg[k] for k in ("num_attention_heads", "n_head") if isinstance(cfg.get(k), int)), None)
    return hidden // heads if hidden and heads else None


def _kept_indexes(types: list, kept: list) -> list[int]:
    """Indexes into the original layers of the layers ``_pattern_layers`` kept."""
    out: list[int] = []
    for t in kept:
        free = [i for i, x in enumerate(types) if x == t and i not in out]
        out.append(free[0] if free else len(out) % len(types))
    return out


# lists of layer indexes, not per-layer values (Llama 4's ``moe_layers``: which layers are MoE)
_INDEX_LISTS = ("moe_layers",)


def _per_layer_overrides(cfg: dict, before: dict, indexes: list[int]) -> None:
    """transformers 5's sparse ``per_layer_config`` ({layer index: overrides}, Gemma 4's wider full-attention
    layers) follows the kept layers to their new positions; an overridden size keeps its ratio to the
    global one (Gemma 4: full-attention head_dim 512 over 256 stays twice the tiny head_dim)."""
    overrides = cfg.get("per_layer_config")
    if not isinstance(overrides, dict) or not overrides:
        return
    by_index = {int(k): v for k, v in overrides.items() if isinstance(v, dict)}
    out = {}
    for pos, i in enumerate(indexes):
        if i not in by_index:
            continue
        one = copy.deepcopy(by_index[i])
        for key, value in one.items():
            old, new = before.get(key), cfg.get(key)
            if all(isinstance(v, int) and not isinstance(v, bool) for v in (value, old, new)) and old:
                one[key] = max(1, value * new // old)
        out[str(pos)] = one
    cfg["per_layer_config"] = out


def _shrink_text(cfg: dict) -> None:
    before = dict(cfg)
    old_heads = cfg.get("num_attention_heads")
    old_head_dim = _head_dim(cfg)
    old_layers = next((cfg[k] for k in _LAYER_COUNTS if isinstance(cfg.get(k), int)), None)
    old_hidden = next((cfg[k] for k in ("hidden_size", "n_embd", "d_model") if isinstance(cfg.get(k), int)), None)
    keep_top_k = cfg.get("model_type") in TOP_K_KEPT
    for key, value in _TEXT_SIZES.items():
        # a 0 stays 0: it switches a part off (num_experts 0 is MiniCPM's dense MLP, n_shared_experts 0 no
        # shared expert); a smaller model never gains a part its checkpoint does not hold
        if keep_top_k and key in _TOP_K_KEYS:
            continue
        if key in cfg and isinstance(cfg[key], int) and not isinstance(cfg[key], bool) and cfg[key] != 0:
            # an MLP exactly 4x the hidden size stays 4x (vLLM's Falcon builds 4 * hidden, not the config's size)
            four_x = key in ("intermediate_size", "ffn_hidden_size", "n_inner") and old_hidden and cfg[key] == 4 * old_hidden
            cfg[key] = 4 * HIDDEN if four_x else value
        elif (key in cfg and isinstance(cfg[key], list) and cfg[key] and len(cfg[key]) != old_layers
              and all(isinstance(v, int) and not isinstance(v, bool) for v in cfg[key])):
            # one size per kind, not per layer (ERNIE-4.5-VL's moe_intermediate_size [text, vision]): each tiny
            cfg[key] = [value if v else 0 for v in cfg[key]]
    heads = cfg.get("num_attention_heads", HEADS)
    for key in ("num_key_value_heads", "n_head_kv", "num_kv_heads"):
        if isinstance(cfg.get(key), int):
            # keep MHA as MHA and GQA as GQA
            cfg[key] = heads if isinstance(old_heads, int) and cfg[key] >= old_heads else KV_HEADS
    # linear attention as well: as many value heads as key heads stays so (AliceAI's KDA refuses any other
    # geometry), more value heads than key heads stays grouped (Qwen3-Next)
    if before.get("linear_num_value_heads") == before.get("linear_num_key_heads") and "linear_num_key_heads" in cfg:
        cfg["linear_num_value_heads"] = cfg["linear_num_key_heads"]
    if "vocab_size" in cfg:
        old_vocab, cfg["vocab_size"] = cfg["vocab_size"], VOCAB
        # a draft head's vocabulary shrinks with it: the whole one stays whole (Laguna DFlash shares the target's
        # lm_head and refuses another size), a truncated one (EAGLE-3's d2t) keeps its share
        draft = cfg.get("draft_vocab_size")
        if isinstance(draft, int) and not isinstance(draft, bool) and isinstance(old_vocab, int) and old_vocab > 0:
            cfg["draft_vocab_size"] = VOCAB if draft >= old_vocab else max(2, VOCAB * draft // old_vocab)
    if isinstance(cfg.get("max_position_embeddings"), int):
        # never below a scaled rope's original context (llama3/yarn scaling reads it against this)
        floor = max([r.get("original_max_position_embeddings") for r in (cfg.get("rope_scaling"), cfg.get("rope_parameters"))
                     if isinstance(r, dict) and isinstance(r.get("original_max_position_embeddings"), int)] or [0])
        cfg["max_position_embeddings"] = max(min(cfg["max_position_embeddings"], MAX_POSITIONS),
                                             min(floor, cfg["max_position_embeddings"]))
    for key in ("sliding_window", "local_attention"):  # local_attention: ModernBERT's whole window
        if isinstance(cfg.get(key), int):
            cfg[key] = min(cfg[key], 8)  # smaller than the prompt, so the window matters
    types = cfg.get("layer_types")
    if isinstance(types, list) and types:
        kept = _pattern_layers(types)
        indexes = _kept_indexes(types, kept)
        cfg["layer_types"] = kept
        layers = len(kept)
    else:
        layers = LAYERS
        indexes = list(range(layers))
    # other per-layer lists (gemma3n's intermediate_size, activation_sparsity_pattern) keep the same layers
    for key, value in list(cfg.items()):
        if key != "layer_types" and key not in _INDEX_LISTS and isinstance(value, list) and old_layers \
                and len(value) == old_layers > layers:
            kept_values = [value[i] for i in indexes]
            if key in _TEXT_SIZES and all(isinstance(v, int) for v in kept_values):
                kept_values = [_TEXT_SIZES[key] if v else 0 for v in kept_values]  # a 0 stays 0, as above
            cfg[key] = kept_values
    counts = {k: cfg[k] for k in _LAYER_COUNTS if isinstance(cfg.get(k), int)}
    for key in _LAYER_COUNTS:
        if isinstance(cfg.get(key), int):
            cfg[key] = layers
    # a count that is a multiple of another stays one: LongCat-Flash's num_hidden_layers is 2 * num_layers
    # (two attention/MLP pairs per layer; transformers derives it so, 5.x as a property whose setter halves
    # it back), so equal counts would build half the layers on one side
    if counts.get("num_layers") and counts.get("num_hidden_layers") == 2 * counts["num_layers"]:
        cfg["num_hidden_layers"] = 2 * layers
    _per_layer_overrides(cfg, before, indexes)
    if isinstance(cfg.get("num_kv_shared_layers"), int) and cfg["num_kv_shared_layers"] >= layers:
        cfg["num_kv_shared_layers"] = 0  # layers sharing an earlier layer's KV need more layers than kept
    for key in _INDEX_LISTS:  # lists of layer indexes: the kept layers that were in it, at their new positions
        if isinstance(cfg.get(key), list):
            listed = set(cfg[key])
            cfg[key] = [pos for pos, i in enumerate(indexes) if i in listed]
    # per-layer lists sized by the layer count (mlp_only_layers, ...) keep indexes that still exist
    for key in ("mlp_only_layers",):
        if isinstance(cfg.get(key), list):
            cfg[key] = [i for i in cfg[key] if isinstance(i, int) and i < layers]
    # leading dense layers: one, so a MoE layer is left (LFM2-MoE's num_dense_layers defaults to 2, which
    # on the 2 tiny layers built no MoE block: set_moe_parameters raised "No Lfm2MoeSparseMoeBlock layer")
    for key in ("first_k_dense_replace", "num_dense_layers"):
        if isinstance(cfg.get(key), int) and not isinstance(cfg[key], bool):
            cfg[key] = min(cfg[key], 1)
    if isinstance(cfg.get("decoder_sparse_step"), int):
        cfg["decoder_sparse_step"] = 1
    # a hybrid schedule's period (Bailing V3: every layer_group_size-th layer full attention, the others linear)
    # spans the kept layers, so they keep one of each kind: the default 5 over 2 layers made both full attention,
    # which the config class, given the kept layer_types [linear, full], refuses
    if isinstance(cfg.get("layer_group_size"), int) and not isinstance(cfg["layer_group_size"], bool) \
            and cfg["layer_group_size"] > layers:
        cfg["layer_group_size"] = layers
    if isinstance(cfg.get("qk_head_dim"), int) and isinstance(cfg.get("qk_nope_head_dim"), int) \
            and isinstance(cfg.get("qk_rope_head_dim"), int):  # MLA's query head, derived (DeepSeek-V3's to_dict keeps it)
        cfg["qk_head_dim"] = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    head_dim = _head_dim(cfg) or HIDDEN // max(1, heads)
    # a partial rotary share that leaves the tiny head an odd rotated width (MiMo-V2-Flash's 0.334: 64 of 192,
    # 5 of 16) is a shape no checkpoint has, which neither side rotates: the head doubles until it is even
    while isinstance(cfg.get("head_dim"), int) and rotary_dim(cfg, head_dim) % 2 and head_dim < 8 * HEAD_DIM:
        head_dim = cfg["head_dim"] = 2 * head_dim
    # a rotary dimension keeps its share of the head (GPT-J: 64 of 256 -> 4 of 16)
    if isinstance(cfg.get("rotary_dim"), int) and old_head_dim:
        cfg["rotary_dim"] = max(2, (cfg["rotary_dim"] * head_dim // old_head_dim) // 2 * 2)
    if "num_key_value_heads" in cfg and cfg["num_key_value_heads"] is None:
        cfg["num_key_value_heads"] = heads  # None means as many as the query heads (what HF reads)
    _mamba(cfg)
    for key in ("num_experts_per_tok", "moe_k", "moe_topk", "moe_top_k", "num_experts_per_token"):
        experts = next((cfg[k] for k in ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
                        if isinstance(cfg.get(k), int)), None)
        if isinstance(cfg.get(key), int) and experts and cfg[key] > experts:
            cfg[key] = experts  # top-k never above the (shrunk) expert count
    # M-RoPE sections cover the rotary part of the head (GLM-4.1V rotates half of it)
    _rope(cfg, rotary_dim(cfg, head_dim))
    _token_ids(cfg, cfg.get("vocab_size", VOCAB))


# the spellings of a Mamba-2 mixer's sizes: (expand, heads, head dim, groups, state size); the first
# shares its head names with attention, so it applies only to configs without attention heads
_MAMBA_KEYS = (
    ("expand", "num_heads", "head_dim", "n_groups", "state_size"),
    ("mamba_expand", "mamba_n_heads", "mamba_d_head", "mamba_n_groups", "mamba_d_state"),  # Granite 4, Falcon-H1
    ("expand", "mamba_num_heads", "mamba_head_dim", "n_groups", "ssm_state_size"),  # Nemotron-H
)


def _mamba(cfg: dict) -> None:
    """Mamba-2 heads must tile the expanded hidden size (``num_heads * head_dim == expand * hidden``),
    groups must divide the heads; the SSM state and time-step rank shrink too."""
    hidden = cfg.get("hidden_size")
    if not isinstance(hidden, int):
        return
    for n, (expand, heads, head_dim, groups, state) in enumerate(_MAMBA_KEYS):
        if n == 0 and "num_attention_heads" in cfg:
            continue
        if isinstance(cfg.get(expand), int) and isinstance(cfg.get(heads), int) and isinstance(cfg.get(head_dim), int):
            dim = math.gcd(cfg[head_dim], cfg[expand] * hidden)  # a head dim that tiles the expanded size
            cfg[head_dim] = dim
            cfg[heads] = max(1, cfg[expand] * hidden // dim)
            if isinstance(cfg.get(groups), int):
                kept = max(1, min(cfg[groups], cfg[heads]))
                while cfg[heads] % kept:
                    kept -= 1
                cfg[groups] = kept
        if n and isinstance(cfg.get(state), int):
            cfg[state] = min(cfg[state], 16)
        # Falcon-H1 sizes the mixer by mamba_d_ssm when set (else expand * hidden): the heads tile it
        if n == 1 and isinstance(cfg.get("mamba_d_ssm"), int) and isinstance(cfg.get(heads), int) \
                and isinstance(cfg.get(head_dim), int):
            cfg["mamba_d_ssm"] = cfg[heads] * cfg[head_dim]
    if isinstance(cfg.get("time_step_rank"), int):
        cfg["time_step_rank"] = max(1, hidden // 16)
    if isinstance(cfg.get("state_size"), int):
        cfg["state_size"] = min(cfg["state_size"], 16)


# model types whose config derives a size from the tower's width that the tiny width would make 0: Granite 4
# Vision's Window Q-Former takes vision hidden_size // 64 attention heads (its config's __post_init__); the tower
# keeps that many columns (64: one Q-Former head), its heads as runtime_tiny's
# Gemma 3n's tower is timm's MobileNetV5 (its vision_config a TimmWrapperConfig naming the architecture), whose
# widths are the architecture's: it returns 2048 channels whatever hidden_size says, and upstream reshapes them
# by vision_config.hidden_size (the tiny 32 failed: "shape '[1, 32, 256]' is invalid for input of size 524288")
VISION_HIDDEN_BY_TYPE = {"granite4_vision": 64, "gemma3n": 2048}
# model types whose image embeddings go into the text model's input embeddings row for row with no projection
# between (SigLIP's dual encoder as vLLM serves it: embed_multimodal's pooled rows are scattered into inputs_embeds
# the text hidden states padded to text_config.projection_size; the released checkpoints' three widths are one,
# 768 / 1152): the tower and the text projection_size are the text model's width
VISION_AS_TEXT_WIDTH = frozenset({"siglip"})


def _mlp_ratio_held(cfg: dict) -> tuple[str, float] | None:
    """(width key, ratio) when a tower's ``intermediate_size`` is its width times its ``mlp_ratio`` (ERNIE-4.5-VL's:
    transformers 5's class builds the MLP from intermediate_size 5120, both vLLMs' from embed_dim 1280 x mlp_ratio 4):
    the shrink keeps it so, or the two sides' MLPs differ in width. Else None."""
    ratio, inter = cfg.get("mlp_ratio"), cfg.get("intermediate_size")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 0 or \
            isinstance(inter, bool) or not isinstance(inter, int):
        return None
    width = next((k for k in ("embed_dim", "hidden_size") if isinstance(cfg.get(k), int)), None)
    return (width, ratio) if width is not None and cfg[width] * ratio == inter else None


def _shrink_vision(cfg: dict, text_hidden: int, hidden: int = VISION_HIDDEN) -> None:
    depth = next((cfg[k] for k in ("depth", "num_hidden_layers", "num_layers") if isinstance(cfg.get(k), int)), None)
    old_heads = next((cfg[k] for k in ("num_heads", "num_attention_heads") if isinstance(cfg.get(k), int)), None)
    # Qwen2-VL's tower is embed_dim wide and its merger writes hidden_size, the text model's width; a tower whose
    # two are one width stays so (ERNIE-4.5-VL's: embed_dim 1280 = hidden_size, which its vLLM class asserts)
    merger = all(isinstance(cfg.get(k), int) for k in ("embed_dim", "hidden_size")) \
        and cfg["embed_dim"] != cfg["hidden_size"] and "out_hidden_size" not in cfg
    ratio = _mlp_ratio_held(cfg)
    for key, value in _VISION_SIZES.items():
        if key in cfg and isinstance(cfg[key], int) and not isinstance(cfg[key], bool):
            cfg[key] = hidden if value == VISION_HIDDEN and key in ("hidden_size", "embed_dim") else value
    if ratio is not None and float(cfg[ratio[0]] * ratio[1]).is_integer():
        cfg["intermediate_size"] = int(cfg[ratio[0]] * ratio[1])
    if merger:
        cfg["hidden_size"] = text_hidden
    # a tower with grouped-query attention (EXAONE 4.5's: 16 heads, 8 KV heads) stays grouped, its KV heads
    # dividing the tiny heads (the encoder attention asserts it); MHA stays MHA
    for key in ("num_key_value_heads", "num_kv_heads"):
        if isinstance(cfg.get(key), int) and isinstance(old_heads, int):
            cfg[key] = VISION_HEADS if cfg[key] >= old_heads else VISION_HEADS // 2
    # per-layer lists of the tower keep its first layers (MuseGlimmer's vision layer_types must match the depth)
    for key, value in list(cfg.items()):
        if "layer" in key and isinstance(value, list) and depth and len(value) == depth > VISION_DEPTH:
            cfg[key] = value[:VISION_DEPTH]
    if isinstance(cfg.get("out_hidden_size"), int):
        cfg["out_hidden_size"] = text_hidden
    for key in ("fullatt_block_indexes", "deepstack_visual_indexes"):
        if isinstance(cfg.get(key), list):
            cfg[key] = [i for i in cfg[key] if isinstance(i, int) and i < VISION_DEPTH] or [0]


# an audio encoder's sizes (Whisper-style spellings, as Qwen2.5-/Qwen3-Omni's audio_config has them)
_AUDIO_KEYS = ("audio_config", "audio_tower_config")
_AUDIO_SIZES = {
    "d_model": VISION_HIDDEN, "encoder_layers": VISION_DEPTH, "encoder_attention_heads": VISION_HEADS,
    "encoder_ffn_dim": VISION_INTERMEDIATE, "num_hidden_layers": VISION_DEPTH, "num_attention_heads": VISION_HEADS,
    "hidden_size": VISION_HIDDEN, "intermediate_size": VISION_INTERMEDIATE, "downsample_hidden_size": VISION_HIDDEN,
}


def _shrink_audio(cfg: dict, text_hidden: int) -> None:
    old_heads = cfg.get("num_attention_heads")
    for key, value in _AUDIO_SIZES.items():
        if key in cfg and isinstance(cfg[key], int) and not isinstance(cfg[key], bool):
            cfg[key] = value
    # KV heads with the heads: an MHA encoder stays MHA (GLM-ASR's 20 over 20 left 20 KV heads for 2 heads, and
    # the attention asserted num_heads % num_kv_heads at construct), a grouped one stays grouped (1 KV head)
    if isinstance(cfg.get("num_key_value_heads"), int) and isinstance(old_heads, int):
        cfg["num_key_value_heads"] = cfg["num_attention_heads"] if cfg["num_key_value_heads"] >= old_heads else 1
    if isinstance(cfg.get("output_dim"), int):
        cfg["output_dim"] = text_hidden  # projected into the language model's embeddings


def _holders(cfg: dict) -> list[str]:
    """Keys of sub-configs that hold a language config themselves (Qwen3-Omni's thinker_config and
    talker_config, each with its text_config, vision/audio towers): a model within the model."""
    return [k for k, v in cfg.items() if k not in _TEXT_KEYS + _VISION_KEYS + _AUDIO_KEYS and isinstance(v, dict)
            and any(isinstance(v.get(t), dict) for t in _TEXT_KEYS)]


def tiny_config(config: dict) -> dict:
    """A small copy of ``config`` (a config ``to_dict()``) with the same structure; pure."""
    cfg = copy.deepcopy(config)
    holders = _holders(cfg)
    if holders and not any(isinstance(cfg.get(k), dict) for k in _TEXT_KEYS):
        # the language model sits one level down (Qwen3-Omni: hf_config.thinker_config.text_config): each such
        # model shrinks as a whole config; the top level's special token ids stay in its vocabulary
        for key in holders:
            cfg[key] = tiny_config(cfg[key])
        first = cfg[holders[0]]
        text = next(first[k] for k in _TEXT_KEYS if isinstance(first.get(k), dict))
        _token_ids(cfg, text.get("vocab_size", VOCAB))
        return cfg
    text = next((cfg[k] for k in _TEXT_KEYS if isinstance(cfg.get(k), dict)), None)
    if text is not None:
        _shrink_text(text)
        # every other text config too: DeepseekVLV2Config keeps text_config and builds its language model from
        # language_config (a copy of it, CHECKPOINT_FIELDS), which stayed the full DeepSeek-V2 otherwise
        for other in (cfg[k] for k in _TEXT_KEYS if isinstance(cfg.get(k), dict) and cfg[k] is not text):
            _shrink_text(other)
        # top-level copies of text fields (some configs keep both) follow the text config
        for key in list(cfg):
            # (never a None of the text config over a set value: GLM-4.1V's text image_token_id is None)
            # (nor another kind of value: ERNIE-4.5-VL's top level holds per-modality lists its text config keeps as one)
            if key in text and key not in _TEXT_KEYS and key != "architectures" and text[key] is not None \
                    and type(cfg[key]) is type(text[key]) and (
                    isinstance(cfg[key], int) and not isinstance(cfg[key], bool) or isinstance(cfg[key], list)):
                cfg[key] = copy.deepcopy(text[key])  # sizes and per-layer lists (Isaac: a Qwen3Config with a text_config)
        # top-level M-RoPE sections (Bailing V3 VL's own `mrope_section` field, which its config class copies
        # into the text rope and refuses when the two differ) follow the text head's rotary part too
        rotary = rotary_dim(text, _head_dim(text) or HIDDEN // max(1, text.get("num_attention_heads") or HEADS))
        _rope(cfg, rotary)
        sec = cfg.get("mrope_section")
        if isinstance(sec, list) and sec and all(isinstance(v, int) and not isinstance(v, bool) for v in sec):
            cfg["mrope_section"] = scale_sections(sec, rotary // 2)
        _token_ids(cfg, text.get("vocab_size", VOCAB))
    else:
        _shrink_text(cfg)
    text_hidden = (text or cfg).get("hidden_size", HIDDEN)
    for key in _VISION_KEYS:
        if isinstance(cfg.get(key), dict):
            old = cfg[key].get("hidden_size")
            width = text_hidden if cfg.get("model_type") in VISION_AS_TEXT_WIDTH else \
                VISION_HIDDEN_BY_TYPE.get(cfg.get("model_type"), VISION_HIDDEN)
            if cfg.get("model_type") in VISION_AS_TEXT_WIDTH and isinstance((text or {}).get("projection_size"), int):
                text["projection_size"] = text_hidden
            _shrink_vision(cfg[key], text_hidden, width)
            new = cfg[key].get("hidden_size")
            # a top-level width that is the tower's after its pixel shuffle (MuseGlimmer's out_hidden_size =
            # hidden * merge_size**2) follows the tower
            merge = next((cfg[key][k] for k in ("merge_size", "spatial_merge_size")
                          if isinstance(cfg[key].get(k), int)), None)
            if merge and isinstance(old, int) and isinstance(new, int) and cfg.get("out_hidden_size") == old * merge**2:
                cfg["out_hidden_size"] = new * merge**2
            # a top-level copy of the tower's width (ERNIE-4.5-VL's pixel_hidden_size, its resampler's input)
            for width in TOWER_WIDTHS:
                if isinstance(old, int) and isinstance(new, int) and cfg.get(width) == old:
                    cfg[width] = new
    for key in _AUDIO_KEYS:
        if isinstance(cfg.get(key), dict):
            _shrink_audio(cfg[key], text_hidden)
    # a model within the model next to a text config of the top level (ColPaliConfig: text_config and vlm_config,
    # whose own text_config the model is built from) shrinks too, as a whole config: left, it stayed the released
    # PaliGemma size (a 2B Gemma, out of memory); shrunk alike, the copies stay equal
    for key in holders:
        cfg[key] = tiny_config(cfg[key])
    _keep_released_ties(cfg)
    return cfg


# per model type: sizes its released checkpoints keep equal that two readers take from different keys, so the tiny
# config keeps them equal: key path -> the key paths whose product it is. GLM-OCR's merger: upstream vLLM sizes its
# context by text_config.intermediate_size, transformers 5's GlmOcrVisionPatchMerger by vision_config.out_hidden_size
# * in_channels (the released config.json: 4608 = 1536 * 3); shrunk apart, the checkpoint did not load
RELEASED_TIES = {"glm_ocr": {"text_config.intermediate_size": ("vision_config.out_hidden_size", "vision_config.in_channels")}}


def _keep_released_ties(cfg: dict) -> None:
    def scope(path: str):
        *heads, leaf = path.split(".")
        cur = cfg
        for h in heads:
            cur = cur.get(h) if isinstance(cur, dict) else None
        return (cur, leaf) if isinstance(cur, dict) else (None, leaf)

    for target, factors in RELEASED_TIES.get(cfg.get("model_type"), {}).items():
        values = [s.get(leaf) for s, leaf in map(scope, factors) if s is not None]
        holder, leaf = scope(target)
        if holder is not None and len(values) == len(factors) and all(isinstance(v, int) for v in values):
            holder[leaf] = math.prod(values)


# top-level fields that hold the vision tower's width
TOWER_WIDTHS = ("pixel_hidden_size",)
# Qwen2-VL's released split of the rotary half-dimension (t, h, w): [16, 24, 24] of 64
MROPE_SECTION = [16, 24, 24]
# the rope keys that make a rope Fourier rope (upstream's interns1_pro.py: use_fope when any is not None); get_rope
# takes its M-RoPE branch before FoPE, so a FoPE rope with sections would not be FoPE (Intern-S1-Pro has none)
FOPE_KEYS = ("fope_init_factor", "fope_sep_head", "num_inv_freq")
# architectures whose class computes M-RoPE positions (get_mrope_input_positions) while their released config.json
# has no mrope_section, so vLLM serves them with 1-D positions (uses_mrope reads the config): GLM-4V-9B's config.json
# has no rope_scaling and its ChatGLM text model builds a plain rotary (chatglm.py: get_rope, rope_type "default");
# given sections, the runner handed that rotary [3, tokens] positions
PLAIN_ROPE_ARCHS = ("GLM4VForCausalLM",)


def with_mrope(cfg: dict) -> bool:
    """Give a (tiny) config that has no M-RoPE sections the ones every released checkpoint of an
    M-RoPE model carries (the Qwen2-VL family, GLM-4.1V: ``rope_scaling.mrope_section``), which the
    config classes' defaults lack: without them vLLM builds plain 1-D rope. Sized to the rotary part
    of the text head. Every language config gets them, also one level down (Qwen3-Omni's
    thinker_config.text_config and talker_config.text_config, both M-RoPE in its released config.json);
    none to a Fourier rope (:data:`FOPE_KEYS`). True when it added them. Mutates ``cfg``."""
    holders = [cfg] + [v for v in cfg.values() if isinstance(v, dict) and any(isinstance(v.get(k), dict) for k in _TEXT_KEYS)]
    texts = [h[k] for h in holders for k in _TEXT_KEYS if isinstance(h.get(k), dict)] or [cfg]
    added = False
    for text in texts:
        ropes = [scope[key] for scope in (text, cfg) for key in ("rope_scaling", "rope_parameters")
                 if isinstance(scope.get(key), dict)]
        ropes += [v for r in ropes for v in r.values() if isinstance(v, dict)]  # per layer type (Cohere Compass)
        if any("mrope_section" in r or any(r.get(k) is not None for k in FOPE_KEYS) for r in ropes):
            continue
        head_dim = _head_dim(text) or HEAD_DIM
        rotary = rotary_dim(text, head_dim)
        # a transformers 5 config keeps its rope in rope_parameters (Qwen3.5's released config.json has the
        # sections there), a 4.57.6 one in rope_scaling
        key = "rope_parameters" if isinstance(text.get("rope_parameters"), dict) else "rope_scaling"
        rope = dict(text.get(key) or {}) if isinstance(text.get(key), dict) else {}
        # both spellings: Qwen3-VL's released text_config says rope_type "default" (4.57.6's rope validation
        # requires that key), Qwen2-VL's says type
        rope.setdefault("type", rope.get("rope_type", "default"))
        rope.setdefault("rope_type", rope["type"])
        rope["mrope_section"] = scale_sections(MROPE_SECTION, rotary // 2)
        text[key] = rope
        added = True
    return added


def prompt_ids(vocab: int, count: int, reserved: set[int], seed: int = 0) -> list[int]:
    """``count`` deterministic token ids below ``vocab`` that avoid ``reserved`` (special ids)."""
    out: list[int] = []
    state = (seed * 2654435761 + 12345) & 0xFFFFFFFF
    while len(out) < count:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        tok = 1 + state % max(1, vocab - 2)
        if tok not in reserved:
            out.append(tok)
    return out


def special_ids(config: dict) -> set[int]:
    """Every integer ``*_token_id``/``*_token_index`` anywhere in the config."""
    found: set[int] = set()
    stack = [config]
    while stack:
        cur = stack.pop()
        for key, value in cur.items():
            if isinstance(value, dict):
                stack.append(value)
            elif isinstance(key, str) and key.endswith(("token_id", "token_index")):
                if isinstance(value, int):
                    found.add(value)
                elif isinstance(value, list):
                    found.update(v for v in value if isinstance(v, int))
    return found
