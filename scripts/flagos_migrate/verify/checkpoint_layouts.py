"""Layouts of a checkpoint derived from upstream vLLM's own class (``_runtime_load.upstream_checkpoint``), for
classes whose ``load_weights`` reads a released layout other than the conventional one (stacked layers split into
their parts, fused experts split per expert) through code the derivation cannot read backwards: an inline expert
mapping over tensors that hold every expert, a loader with no stacked mapping at all.

Data only, tried in order (each with every ``draft_respellings`` entry), never chosen by architecture name: a layout
is kept only when upstream's own ``load_weights`` writes every parameter back with exactly the derived values
(``_runtime_load.self_check``). Each entry: ``id``; ``split_stacked``: stacked layers (qkv_proj, gate_up_proj ...)
split into their parts (else kept as the class holds them), ``stacked_extra`` more of them ({fused: [parts]}) than
the conventional qkv_proj / gate_up_proj and the model's ``packed_modules_mapping``; ``held_stacked`` (optional): leaves of stacked layers kept whole
among the split ones; ``split_experts``: fused expert parameters split per
expert by the expert layer's ``get_expert_mapping`` (else kept as the class holds them); ``stack_experts``: (regular expression over a
per-expert name with the expert index as group ``index``, replacement) joining the experts of one tensor into one
tensor with the experts along a new first dimension, or None; ``held_experts`` (optional): {parameter leaf: per-expert
name templates} for an expert layer that holds every expert in one parameter [expert, rows, ...] with no expert mapping
of its own: expert ``e``'s rows split evenly between the templates in order, each named ``<module>.<template>`` with
``{e}`` the expert; ``interleaved_rotary`` (optional): (regular expression over a checkpoint name, config field
holding its head count) for tensors stored with each head's rotary pairs interleaved, which the class's loader
permutes into halves (:func:`interleave_rotary`); ``unmapped`` (optional): names as the class holds them, no
``hf_to_vllm_mapper`` read backwards (a loader that never applies it); ``split_rows`` (optional): ((regular expression over a
parameter name, ((checkpoint name, config fields giving its rows, the first set one; None for the rest of the rows),
...)), ...) for a parameter its loader concatenates from tensors stored apart (:func:`row_parts`); ``held_under``
(optional): prefixes of vLLM parameter names whose stacked layers stay whole (a tower released fused beside a
language model released split); ``substr_exact`` (optional): substring maps read backwards exactly
(``_runtime_load._substr_inverse``), not by their first match; ``split_even`` (optional):
{module leaf: part module leaves} for a fused layer with no ``output_sizes`` whose loader takes its parts by shard
id: its parameters' rows split evenly between the parts in order (:func:`even_parts`); ``evidence``: where upstream vLLM 0.33.0 reads it."""

import re

LAYOUTS = (
    {"id": "split", "split_stacked": True, "stacked_extra": {}, "split_experts": True, "stack_experts": None,
     "evidence": "the conventional layout: stacked_params_mapping / packed_modules_mapping / get_expert_mapping"},
    {"id": "experts-stacked", "split_stacked": True, "stacked_extra": {}, "split_experts": True,
     "stack_experts": (r"^(?P<head>.*)\.experts\.(?P<index>\d+)\.(?P<tail>.+)$", r"\g<head>.\g<tail>"),
     "evidence": "step3_text.py Step3TextModel.load_weights: expert_params_mapping reads .moe.gate_proj/.up_proj/"
                 ".down_proj.weight, each holding every expert, and hands loaded_weight[expert_id] to the expert "
                 "weight_loader for expert_id in range(loaded_weight.shape[0])"},
    {"id": "mla-a-split", "split_stacked": True, "split_experts": True, "stack_experts": None,
     "stacked_extra": {"fused_qkv_a_proj": ["q_a_proj", "kv_a_proj_with_mqa"]},
     "evidence": "longcat_flash_mtp.py LongCatFlashMTP.load_weights (as deepseek_v2.py's): stacked_params_mapping "
                 "(fused_qkv_a_proj, q_a_proj, 0), (fused_qkv_a_proj, kv_a_proj_with_mqa, 1), with no "
                 "packed_modules_mapping declaring it, and its released names hold q_a_proj and kv_a_proj_with_mqa"},
    {"id": "experts-held-w1w2w3", "split_stacked": True, "stacked_extra": {}, "split_experts": True, "stack_experts": None,
     "held_experts": {"ws": ("experts.{e}.w1.weight", "experts.{e}.w3.weight"), "w2s": ("experts.{e}.w2.weight",)},
     "evidence": "minicpm.py MiniCPMModel.load_weights: expert_params_mapping reads experts.{e}.w1/w3.weight into ws "
                 "(MiniCPMMoE.weight_loader: w1 the first intermediate_size rows of ws[e], w3 the next) and "
                 "experts.{e}.w2.weight into w2s[e]; MiniCPMMoE has no get_expert_mapping to read backwards"},
    {"id": "qk-rotary-interleaved", "split_stacked": True, "stacked_extra": {}, "split_experts": True,
     "stack_experts": None,
     "interleaved_rotary": ((r"(^|\.)(q_proj|wq)\.weight$", "num_attention_heads"),
                            (r"(^|\.)(k_proj|wk)\.weight$", "num_key_value_heads")),
     "evidence": "llama4.py Llama4ForCausalLM.permute_qk_weight_for_rotary, which Llama4ForCausalLM.load_weights and "
                 "llama4_eagle.py EagleLlama4ForCausalLM.load_weights apply to every tensor: each q_proj / k_proj "
                 "weight is read in Meta's interleaved rotary layout and permuted per head into vLLM's "
                 "(view(heads, d/2, 2, in).transpose(1, 2))"},
    {"id": "conv1d-split-qkv", "split_stacked": True, "stacked_extra": {}, "split_experts": True,
     "stack_experts": None, "split_even": {"conv1d": ("q_conv1d", "k_conv1d", "v_conv1d")},
     "evidence": "alice_ai.py AliceAIForCausalLM.load_weights: _load_split_kda_conv_weights reads "
                 "linear_attn.q_conv1d/k_conv1d/v_conv1d.weight as shards 0/1/2 of the fused linear_attn.conv1d "
                 "(kimi_gdn_linear_attn.py _make_fused_conv1d_weight_loader over [key_dim, key_dim, value_dim], "
                 "equal: _make_kimi_kda_config requires matching key/value head counts and dims)"},
    {"id": "as-held", "split_stacked": False, "stacked_extra": {}, "split_experts": False, "stack_experts": None,
     "evidence": "laguna_dflash.py DFlashLagunaModel.load_weights: params_dict[name] for every name (no stacked or "
                 "expert mapping), so qkv_proj and every other parameter is read as the class holds it"},
    {"id": "qkv-held", "split_stacked": True, "stacked_extra": {}, "split_experts": True, "stack_experts": None,
     "held_stacked": ("qkv_proj",),
     "evidence": "bert_with_rope.py BertWithRope.load_weights (GteNewModel's): its stacked_params_mapping holds "
                 "gate_up_proj's parts only (gate_proj, up_proj), and the qkv_proj is read whole (GteNewModel's mapper: "
                 "attention.qkv_proj -> attn.qkv_proj)"},
    {"id": "embedding-rows-split", "split_stacked": True, "stacked_extra": {}, "split_experts": True,
     "stack_experts": None,
     "split_rows": ((r"^model\.embed_tokens\.weight$", (("model.transformer.wte.embedding", ("embedding_size", "vocab_size")),
                                                       ("model.transformer.wte.new_embedding", None))),),
     "evidence": "molmo.py _get_weights_with_merged_embedding: model.transformer.wte.embedding (the config's "
                 "embedding_size or vocab_size rows) and wte.new_embedding (the ADDITIONAL_VOCAB_SIZE rows after them) "
                 "are concatenated into model.embed_tokens.weight; a checkpoint without them raises KeyError"},
    {"id": "substr-exact", "split_stacked": True, "stacked_extra": {}, "split_experts": True, "stack_experts": None,
     "substr_exact": True,
     "evidence": "funasr.py FunASRForConditionalGeneration.hf_to_vllm_mapper: WeightsMapper applies every substring "
                 "entry in order (utils.py _map_name_with_shard), and one released name takes two (linear_q. -> q_proj., "
                 "audio_encoder. -> model.encoder.audio_encoder.) while the decoder's q_proj takes none: read backwards "
                 "as the fewest renames the forward map sends back to the held name"},
    {"id": "unmapped", "split_stacked": True, "stacked_extra": {}, "split_experts": True, "stack_experts": None,
     "unmapped": True,
     "evidence": "pixtral.py PixtralForConditionalGeneration.load_weights: reads vision_encoder.* / "
                 "vision_language_adapter.* / language_model.* as the class names its modules (Mistral's consolidated "
                 "spelling) and never applies its hf_to_vllm_mapper, which upstream uses for quantization, LoRA and "
                 "--mm-encoder-only only (default_loader.py): read backwards it spells HF names the loader refuses"},
    {"id": "experts-stacked-qkv-held", "split_stacked": True, "stacked_extra": {}, "split_experts": True,
     "stack_experts": (r"^(?P<head>.*)\.experts\.(?P<index>\d+)\.(?P<tail>.+)$", r"\g<head>.\g<tail>"),
     "held_stacked": ("qkv_proj",),
     "evidence": "step3_vl.py Step3VLForConditionalGeneration.load_weights: the language model's Step3TextModel reads "
                 "experts-stacked's .moe.gate_proj/.up_proj/.down_proj.weight (every expert in one tensor), and the "
                 "vision tower (Step3VisionTransformer; step_vl.py's PerceptionEncoder) has no load_weights or stacked "
                 "mapping of its own, so AutoWeightsLoader hands its qkv_proj.weight whole to QKVParallelLinear's "
                 "weight_loader (step_vl.py's mapper: .attn.in_proj_weight -> .attn.qkv_proj.weight)"},
    {"id": "tower-qkv-held", "split_stacked": True, "stacked_extra": {}, "split_experts": True, "stack_experts": None,
     "held_under": ("vision_model.",),
     "evidence": "step3p7.py Step3p7ForConditionalGeneration.hf_to_vllm_mapper: model.vision_model. -> vision_model. "
                 "and .attn.in_proj_weight -> .attn.qkv_proj.weight (the Perception Encoder's q/k/v are one released "
                 "tensor, PyTorch MultiheadAttention's), which AutoWeightsLoader hands whole to QKVParallelLinear's "
                 "weight_loader; the language model (model. -> language_model.model.) is read by its own "
                 "load_weights, whose mapper stacks its q/k/v parts (so experts-stacked-qkv-held, which keeps every "
                 "qkv_proj whole, is refused there)"},
)


def held_expert_parts(name, shape, held_experts):
    """A parameter ``name`` of ``shape`` -> [(checkpoint name, expert, first row, rows)] under ``held_experts`` (see
    :data:`LAYOUTS`), else None: its leaf not in the table, not [expert, rows, ...], or rows that do not split evenly
    between the templates. Pure."""
    module, _, leaf = name.rpartition(".")
    templates = (held_experts or {}).get(leaf)
    if not templates or len(shape) < 3 or shape[1] % len(templates):
        return None
    rows = shape[1] // len(templates)
    head = module + "." if module else ""
    return [(head + template.format(e=e), e, i * rows, rows)
            for e in range(shape[0]) for i, template in enumerate(templates)]


def even_parts(name, shape, split_even):
    """A parameter ``name`` of ``shape`` -> [(checkpoint name, first row, rows)] under ``split_even`` (see
    :data:`LAYOUTS`), else None: its module's leaf not in the table, or rows that do not split evenly. Pure."""
    module, _, leaf = name.rpartition(".")
    head, _, owner = module.rpartition(".")
    parts = (split_even or {}).get(owner)
    if not parts or not shape or shape[0] % len(parts):
        return None
    rows = shape[0] // len(parts)
    head = head + "." if head else ""
    return [(f"{head}{part}.{leaf}", i * rows, rows) for i, part in enumerate(parts)]


def stacked_experts(names, stack_experts):
    """``names`` (per-expert checkpoint names) -> {joined name: [per-expert names, expert 0 first]} under
    ``stack_experts`` (pattern, replacement); names it does not match are not in the result. None when a joined
    tensor's experts are not exactly 0..n-1 or a joined name is also a name of its own. Pure."""
    pattern, replacement = stack_experts
    groups: dict[str, dict[int, str]] = {}
    for name in names:
        m = re.match(pattern, name)
        if m is None:
            continue
        groups.setdefault(m.expand(replacement), {})[int(m.group("index"))] = name
    if any(joined in names for joined in groups):
        return None
    if any(sorted(by_index) != list(range(len(by_index))) for by_index in groups.values()):
        return None
    return {joined: [by_index[i] for i in range(len(by_index))] for joined, by_index in groups.items()}


def interleave_rotary(t, heads):
    """``t`` (a tensor ``[heads * d, ...]`` in vLLM's rotary layout: each head's first half, then its second) in the
    interleaved layout of Meta's checkpoints (pairs side by side): the inverse of upstream's
    ``view(heads, d // 2, 2, ...).transpose(1, 2)``; None when ``heads`` does not divide the rows into even heads.
    Pure (tensor methods only)."""
    rows = t.shape[0]
    if not isinstance(heads, int) or heads < 1 or rows % (2 * heads):
        return None
    return t.reshape(heads, 2, rows // heads // 2, *t.shape[1:]).transpose(1, 2).reshape(t.shape).contiguous()


# Values a class's own weight loader changes on load (a composed loader), so that the self-check compares what it
# writes with what it must write: a parameter whose name matches ``param`` is loaded as the checkpoint tensor times
# (config[num] / config[den]) ** power when config[flag] is true. Each entry names where upstream does it.
LOAD_SCALES = (
    {"id": "longcat-mla-q-lora-norm", "param": r"\.q_a_layernorm\.weight$", "flag": "mla_scale_q_lora",
     "num": "hidden_size", "den": "q_lora_rank", "power": 0.5,
     "evidence": "longcat_flash.py scale_mla_lora_norms_on_load: q_a_layernorm's weight_loader multiplies by "
                 "(hidden_size / q_lora_rank) ** 0.5 when mla_scale_q_lora"},
    {"id": "longcat-mla-kv-lora-norm", "param": r"\.kv_a_layernorm\.weight$", "flag": "mla_scale_kv_lora",
     "num": "hidden_size", "den": "kv_lora_rank", "power": 0.5,
     "evidence": "longcat_flash.py scale_mla_lora_norms_on_load: kv_a_layernorm's weight_loader multiplies by "
                 "(hidden_size / kv_lora_rank) ** 0.5 when mla_scale_kv_lora"},
)


def load_scale(name, config):
    """The factor ``name`` (a parameter) is loaded with under :data:`LOAD_SCALES` and ``config`` (an object with
    attributes), 1.0 for none; the first matching entry whose flag is set and whose sizes are positive numbers. Pure."""
    for entry in LOAD_SCALES:
        if not re.search(entry["param"], name) or getattr(config, entry["flag"], False) is not True:
            continue
        num, den = getattr(config, entry["num"], None), getattr(config, entry["den"], None)
        if isinstance(num, (int, float)) and isinstance(den, (int, float)) and num > 0 and den > 0:
            return (num / den) ** entry["power"]
    return 1.0


# Parameters a class keeps at their initial value by design: its loader drops them (maps them to None) unless a file
# beside the checkpoint ships them, and its forward reads them only then (the owning module's ``unless`` flag, which
# the loader sets when the file is there); or, with no flag, its loader skips them always (``owner``: the classes of
# the module holding them). No released checkpoint holds them, so the derived one does not either, and
# the load level restores their initial value (both sides build it alike) where the loader left them unwritten and
# the flag is still False. Each entry names where upstream does it.
KEPT_AT_INIT = (
    {"id": "dflash-mask-embedding", "param": r"(^|\.)mask_embedding$", "unless": "has_separate_mask_embedding",
     "evidence": "qwen3_dflash.py DFlashQwen3ForCausalLM.load_weights: orig_to_new_substr['mask_embedding'] = None "
                 "unless _read_mask_embedding finds mask_embedding.pt beside the checkpoint (which sets "
                 "has_separate_mask_embedding); DFlashQwen3Model.embed_input_ids reads mask_embedding only when "
                 "has_separate_mask_embedding (its __init__: zeros); qwen3_xpress / qwen3_dspark inherit both"},
    # no flag: the loader skips them always and the forward reads them always, so every served model holds the
    # initial value; scoped by the owning class (InternViT's own loader does load its ls1 / ls2)
    {"id": "radio-layer-scale", "param": r"(^|\.)ls[12]$", "owner": ("RadioVisionEncoderLayer",),
     "evidence": "radio.py RadioModel.load_weights: model.blocks.{i}.ls1 / ls2 are skipped ('layer-scale entries that "
                 "vLLM doesn't use'); RadioVisionEncoderLayer.forward multiplies by ls1 / ls2, which "
                 "InternVisionEncoderLayer.__init__ sets to initializer_factor * ones (0.13.0's radio.py and "
                 "intern_vit.py alike)"},
)


def kept_at_init(name, owner):
    """The :data:`KEPT_AT_INIT` entry id ``name`` (a parameter) falls under with ``owner`` (the module holding it;
    its flag read as it is now, or for an entry with no flag its class name in the entry's ``owner``), else None.
    Pure."""
    for entry in KEPT_AT_INIT:
        if not re.search(entry["param"], name):
            continue
        if "unless" in entry and getattr(owner, entry["unless"], None) is False:
            return entry["id"]
        if "owner" in entry and type(owner).__name__ in entry["owner"]:
            return entry["id"]
    return None


def row_parts(name, rows, split_rows, config):
    """``name`` (a parameter whose checkpoint holds ``rows`` rows) -> [(checkpoint name, first row, rows)] under
    ``split_rows`` (see :data:`LAYOUTS`) and ``config`` (an object with attributes); None when no entry names it, ()
    when one does and the sizes do not fit (a field unset, or parts that do not tile the rows exactly). Pure."""
    for pattern, parts in split_rows or ():
        if not re.search(pattern, name):
            continue
        out, start = [], 0
        for i, (part, fields) in enumerate(parts):
            if fields is None:
                size = rows - start if i == len(parts) - 1 else None
            else:
                size = next((v for f in fields if isinstance(v := getattr(config, f, None), int) and v > 0), None)
            if size is None or size <= 0 or start + size > rows:
                return ()
            out.append((part, start, size))
            start += size
        return out if start == rows else ()
    return None


# Parameters a class's loader computes from a differently stored tensor (a fold on load, not a scale): the checkpoint
# holds the stored tensor under ``stored`` (the parameter's leaf -> the stored leaf) and the parameter is
# :func:`fold` of it. The derivation draws the stored tensor and expects its fold; the self-check still demands that
# upstream's own loader writes exactly that. Each entry names where upstream does it.
FOLDED_ON_LOAD = (
    {"id": "xpress-mix-fold", "param": r"(^|\.)xpress_head\.mix_L$", "stored": ("mix_L", "mix.L"),
     "fold": "tril-plus-eye",
     "evidence": "qwen3_xpress.py Qwen3XPressForCausalLM.load_weights: xpress_head.mix.L (the raw mixer, as trained) "
                 "is required and folded by XPressRefinerHead.fold_from_raw_ into mix_L = raw * tril + eye over its "
                 "last two (block) dimensions; names of mix_L itself are dropped"},
)


def folded(name):
    """The :data:`FOLDED_ON_LOAD` entry naming ``name`` (a parameter), else None. Pure."""
    return next((e for e in FOLDED_ON_LOAD if re.search(e["param"], name)), None)


def fold(kind, raw):
    """``raw`` (a tensor) as the loader folds it: ``tril-plus-eye`` is ``raw * tril + eye`` over the last two
    (square) dimensions. Tensor methods only."""
    if kind != "tril-plus-eye" or raw.dim() < 2 or raw.shape[-1] != raw.shape[-2]:
        raise ValueError(f"no fold {kind!r} for a tensor of shape {tuple(raw.shape)}")
    n = raw.shape[-1]
    eye = raw.new_zeros((n, n))
    eye.fill_diagonal_(1)
    return raw * raw.new_ones((n, n)).tril() + eye

# Upstream's own bugs the derivation steps over, for naming only: "Class.attr" (``_runtime_env.unset_attribute``: an
# attribute upstream's ``load_weights`` reads that no class of the built object sets) -> ``value``, what the initializer
# the class skips would set it to here, ``why`` and ``evidence``. ``_runtime_load.self_check`` sets it on the object and
# runs upstream's loader again, so the names are still the ones upstream's own loader writes back exactly; the value
# is not supplied when a submodule holds the attribute set otherwise. The reference run keeps the bug (its match is
# skipped, naming it).
UNSET_BY_UPSTREAM = {
    "EagleMistralLarge3Model.is_fused_shared_expert_enabled": {
        "value": False,
        "why": "EagleMistralLarge3Model.__init__ calls nn.Module.__init__, skipping DeepseekV2Model.__init__, which sets "
               "it to is_model_fused_shared_expert_compatible(self.layers, DeepseekV2MoE, 'mlp'): True only when "
               "every DeepseekV2MoE layer has its own is_fused_shared_expert_enabled (the ROCm AITER fused shared "
               "expert, False unless requested there)",
        "evidence": [
            "vllm/model_executor/models/mistral_large_3_eagle.py:55: nn.Module.__init__(self)",
            "vllm/model_executor/models/deepseek_v2.py:1479: self.is_fused_shared_expert_enabled = "
            "is_model_fused_shared_expert_compatible(",
            "vllm/model_executor/models/deepseek_v2.py:1635: if self.is_fused_shared_expert_enabled",
            "vllm/model_executor/layers/fused_moe/utils.py:167: return enabled_count > 0 and disabled_count == 0",
        ],
    },
}
