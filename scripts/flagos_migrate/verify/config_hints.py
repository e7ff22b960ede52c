"""Where the runtime worker gets a config class when the pinned stack has none for an architecture.

Host side of ``verify --run`` (the worker, ``_runtime_config``, consumes the hints). Read statically
from the upstream source (the reference side, never the migrated file):

- ``draft``: an MTP/EAGLE/draft architecture is built from its base model's config. Upstream's
  ``SpeculativeConfig.hf_config_override`` (``vllm/config/speculative.py``) rewrites a base config
  into the draft one (``deepseek_v3 -> deepseek_mtp``, ``architectures: ["DeepSeekMTPModel"]``);
  :func:`draft_bases` reads that function backwards: draft architecture -> base model types,
  base architectures and the literal updates (``n_predict``, ``num_hidden_layers: 0``).
- ``bases``: the upstream class's ancestors (``MistralLarge3ForCausalLM(DeepseekV3ForCausalLM)``):
  the config of a base architecture builds the subclass.
- ``synth``: a config synthesized from the attributes the upstream model file reads from its config
  (``config.X``, ``getattr(config, "X", default)``), valued from :data:`SYNTH_VALUES` by name (a
  name read with a default and not in the table is left out); what the table cannot value and no
  default covers is listed as missing. Both sides build from it.
- ``complete``: attributes a found config class lacks, or leaves ``None`` where the file indexes
  them (``config.layer_types[i]``), that upstream reads without a default: from the class's own
  field of the same meaning (:data:`EQUIVALENTS`), else the same table; a per-layer list the code
  looks up in a dict of layer kinds gets those kinds. ``if not hasattr(config, X): raise`` is a
  read of a required X, not an option.
- ``speculative``: the method a draft architecture is served with; the worker builds its
  ``VllmConfig`` the way vLLM's proposer does (the target's config plus a speculative config
  holding the draft's model config).

Pure functions over source text; :func:`hints_for` reads the upstream tree.
"""

from __future__ import annotations

import ast
import copy
import re

from flagos_migrate.catalog.tables import REMOTE_CONFIG_FIRST
from flagos_migrate.verify import runtime_tiny as T
from flagos_migrate.verify import subconfig_classes

SPECULATIVE = "vllm.config.speculative"
MODELS_PKG = "vllm.model_executor.models"
TRANSFORMERS_BACKEND = MODELS_PKG + ".transformers"
# names that hold the Hugging Face config in model files (``vllm_config`` and the like do not)
CONFIG_NAMES = {"config", "hf_config", "text_config", "hf_text_config", "language_config"}
NOT_FIELDS = {"get_text_config", "to_dict", "get", "update", "model_type", "architectures"}
MISSING = object()

_ROPE = {"rope_type": "default", "rope_theta": 10000.0}
# one table: attribute name -> value of a synthesized tiny config (the sizes of ``runtime_tiny``)
SYNTH_VALUES: dict[str, object] = {
    "hidden_size": T.HIDDEN, "intermediate_size": T.INTERMEDIATE, "ffn_hidden_size": T.INTERMEDIATE,
    "num_attention_heads": T.HEADS, "num_key_value_heads": T.KV_HEADS, "num_kv_heads": T.KV_HEADS,
    "head_dim": T.HEAD_DIM, "num_hidden_layers": T.LAYERS, "num_layers": T.LAYERS, "vocab_size": T.VOCAB,
    "max_position_embeddings": T.MAX_POSITIONS, "hidden_act": "silu", "hidden_activation": "silu",
    "rms_norm_eps": 1e-6, "layer_norm_eps": 1e-5, "layer_norm_epsilon": 1e-5, "norm_eps": 1e-6,
    "rope_theta": 10000.0, "rope_scaling": None, "rope_parameters": _ROPE, "partial_rotary_factor": 1.0,
    "rotary_dim": T.HEAD_DIM, "tie_word_embeddings": False, "initializer_range": 0.02,
    "attention_bias": False, "mlp_bias": False, "use_bias": False, "bias": False, "qkv_bias": False,
    "attention_dropout": 0.0, "hidden_dropout": 0.0,
    # a decoder is causal: every upstream reader takes getattr(config, "is_causal", True) (deepseek_v2.py, llama.py,
    # gemma3.py, apertus.py), and only vLLM's own config fix-ups for bidirectional embedding checkpoints set False
    # (models/config.py). The is_ pattern's False built encoder-only attention upstream (glm4_moe_lite_mtp's synthesized
    # draft: bidirectional upstream, causal in 0.13.0's DeepseekV2Attention, which has no such read)
    "is_causal": True,
    "num_experts": T.EXPERTS, "num_local_experts": T.EXPERTS, "n_routed_experts": T.EXPERTS,
    "moe_num_experts": T.EXPERTS, "num_routed_experts": T.EXPERTS,
    "num_experts_per_tok": T.EXPERTS_PER_TOKEN, "num_experts_per_token": T.EXPERTS_PER_TOKEN,
    "moe_topk": T.EXPERTS_PER_TOKEN, "moe_top_k": T.EXPERTS_PER_TOKEN, "moe_k": T.EXPERTS_PER_TOKEN,
    "n_activated_experts": T.EXPERTS_PER_TOKEN, "top_k": T.EXPERTS_PER_TOKEN,
    "moe_intermediate_size": T.MOE_INTERMEDIATE, "shared_expert_intermediate_size": T.MOE_INTERMEDIATE,
    "expert_intermediate_size": T.MOE_INTERMEDIATE,
    "n_shared_experts": 1, "num_shared_experts": 1, "moe_shared_experts": 1,
    "n_group": 1, "topk_group": 1, "num_expert_group": 1, "num_expert_groups": 1, "num_limited_groups": 1,
    "norm_topk_prob": True, "routed_scaling_factor": 1.0, "route_scale": 1.0, "scoring_func": "softmax",
    "score_func": "softmax", "score_function": "softmax", "topk_method": "greedy", "moe_layer_freq": 1, "decoder_sparse_step": 1,
    "first_k_dense_replace": 1, "num_dense_layers": 1, "moe_router_enable_expert_bias": False,
    "kv_lora_rank": 32, "q_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 16, "v_head_dim": 16,
    "sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"], "max_window_layers": T.LAYERS,
    "mup_enabled": False, "route_norm": True, "norm_expert_weight": True, "need_fp32_gate": False,
    "logit_scale": 1.0, "mlp_layer_types": ["dense", "sparse"], "top_k_experts": T.EXPERTS_PER_TOKEN,
    "share_expert_dim": T.MOE_INTERMEDIATE, "num_attention_groups": T.KV_HEADS, "swiglu_limits": None,
    "swiglu_limits_shared": None, "gating": False, "moe_apply_router_weight_on_input": False,
    "attention_gate_func": None, "query_key_norm": False, "mova_num_experts": T.EXPERTS,
    "mova_num_experts_per_tok": T.EXPERTS_PER_TOKEN, "layernorm_num_groups": 1, "short_conv_kernel_size": 4,
    "layer_group_size": T.LAYERS, "max_position_embedding": T.MAX_POSITIONS, "num_nextn_predict_layers": 1, "n_predict": 1, "mlp_only_layers": [],
    "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
    # a multimodal prompt's special tokens (Qwen2-VL's released ids; the tiny config moves them to distinct ids at
    # the top of its vocabulary)
    "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    # linear-attention (gated delta net / KDA) geometry: as many value heads as key heads, of one size
    "linear_num_key_heads": 2, "linear_num_value_heads": 2, "linear_key_head_dim": 16, "linear_value_head_dim": 16,
    "linear_conv_kernel_dim": 4,
    # AliceAI's attention-residual block (layers per block), which upstream reads with a None default and then
    # refuses: 1, so the tiny layers cross a block boundary
    "block_attn_res_block_size": 1,
    # InternS2-Mobius's routed MoE blocks, shared round-robin by the layers (layer i uses block i % num_blocks)
    "num_blocks": T.LAYERS,
    # a DFlash draft's block (z-lab's checkpoints): the target layers it reads, its mask token in the vocabulary
    "dflash_config": {"target_layer_ids": list(range(T.LAYERS)), "mask_token_id": T.VOCAB - 1},
    # a DSpark draft's (upstream's qwen3_dspark.py / gemma4_dspark.py): the same target layers at the top level, and
    # the rank of its Markov transition head (nn.Embedding(vocab, rank) and a rank -> vocab head): a size, tiny
    "target_layer_ids": list(range(T.LAYERS)), "markov_rank": 16,
    # MiniCPM's muP scales (remote-code MiniCPMConfig; MiniCPM-2B's config.json: scale_emb 12, scale_depth 1.4,
    # dim_model_base 256 of hidden 2304): upstream's minicpm.py scales logits by hidden_size / dim_model_base,
    # here 1 (dim_model_base = the tiny hidden_size)
    "scale_emb": 12, "scale_depth": 1.4, "dim_model_base": T.HIDDEN,
    # the width of an embedding that is not the hidden state (ALBERT's factorized embeddings, jina-reranker-v3's
    # projector output that upstream's jina.py reads unguarded): the tiny hidden size, a size like the others
    "embedding_size": T.HIDDEN,
    # transformers 5's sparse per-layer overrides (PreTrainedConfig.per_layer_config, {layer index: fields}): none,
    # every layer the top-level config (upstream reads config.per_layer_config[i].head_dim: DomynEdge, Gemma 4);
    # written as no key (synth_class), as transformers 5 saves a homogeneous config: its {} is a heterogeneous one
    "per_layer_config": {},
    # BERT's token-type table (transformers' BertConfig default 2: segments A and B)
    "type_vocab_size": 2,
    # Gemma-3-style attention (rnj1.py scales by query_pre_attn_scalar**-0.5; Gemma3TextConfig's default is the
    # head_dim, 256 = head_dim 256) and no final soft cap (Gemma3TextConfig's default None)
    "query_pre_attn_scalar": T.HEAD_DIM, "final_logit_softcapping": None,
    # PLaMo 3: the local layers' rope base (rope_theta's value here) and vLLM's per-layer window list (its
    # get_config renames a list sliding_window to interleaved_sliding_window): the table's layer_types, window 8
    # on the sliding layer, None on the full one
    "rope_local_theta": 10000.0, "interleaved_sliding_window": [8, None],
    # transformers 5's HrmTextConfig: num_hidden_layers = num_layers_per_stack * H_cycles * (L_cycles + 1), the
    # tiny 2 layers with one cycle of each (defaults H 2, L 3)
    "H_cycles": 1, "L_cycles": 1, "num_layers_per_stack": T.LAYERS // 2,
}
# a remote-code model family's nested sub-configs and top-level fields, keyed by the upstream model files that
# build it (the family's config class is remote code in both transformers): a sub-config is a dict with its
# model_type, which the worker builds as that transformers class, else as a plain config holding the fields
# (``_runtime_config.synth_class``). Tiny sizes, as in runtime_tiny; the rest as the released config.json
_QWEN2_TEXT = {  # a tiny Qwen2 language model (transformers' Qwen2Config)
    "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": T.HIDDEN,
    "intermediate_size": T.INTERMEDIATE, "num_attention_heads": T.HEADS, "num_key_value_heads": T.KV_HEADS,
    "num_hidden_layers": T.LAYERS, "vocab_size": T.VOCAB, "max_position_embeddings": T.MAX_POSITIONS,
    "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": False, "rope_theta": 10000.0}
# MiMo-V2-Flash's config.json spellings (remote code), which upstream's mimo_v2.py / mimo_v2_mtp.py read and
# CHECKPOINT_FIELDS' "mimo_v2_flash" derives for transformers 5's class: layer 0 full attention then SWA, layer 0 dense
# then MoE (the table's int moe_layer_freq 1 built no MoE layer), the SWA attention with twice the KV heads and a sink
# per head, the hub's window (sliding_window_size + 1 is the table's 8). Tiny; a whole-head rotation as the table's
_MIMO_V2_FLASH_HUB = {
    "hybrid_layer_pattern": [0, 1], "moe_layer_freq": [0, 1], "swa_num_attention_heads": T.HEADS,
    "swa_num_key_value_heads": 2 * T.KV_HEADS, "swa_head_dim": T.HEAD_DIM, "swa_v_head_dim": T.HEAD_DIM,
    "add_swa_attention_sink_bias": True, "add_full_attention_sink_bias": False, "sliding_window_size": 7}
# DFlash2's grouped convolution and candidate selector sizes (see SYNTH_FAMILIES' qwen3_dflash2), tiny
_DFLASH2_CONFIG = {"target_layer_ids": list(range(T.LAYERS)), "mask_token_id": T.VOCAB - 1, "conv_kernel_size": 3,
                   "conv_group_size": 8, "selector_rank": 16, "selector_top_k": 4}
SYNTH_FAMILIES: dict[tuple[str, ...], dict[str, object]] = {
    # InternVL's InternVLChatConfig (OpenGVLab/InternVL2_5-1B's config.json): an InternViT tower (the pinned and
    # upstream intern_vit.py's InternVisionModel reads these fields; InternViT-300M-448px's values: qkv_bias,
    # layer_norm, no qk norm, 448 / 14), a Qwen2 language model (init_vllm_registered_model builds whatever its
    # text_config's architectures name: InternVL2.5/3's is Qwen2ForCausalLM), pixel shuffle 0.5 "v2", the last
    # tower layer. force_image_size None: every released value equals the tower's image_size, which upstream's
    # `config.force_image_size or config.vision_config.image_size` then takes (the tiny tower's 4x4 patches)
    ("internvl", "h2ovl", "nvlm_d", "skyworkr1v"): {
        "vision_config": {
            "model_type": "intern_vit_6b", "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
            "num_hidden_layers": 1, "image_size": 56, "patch_size": 14, "num_channels": 3, "qkv_bias": True,
            "qk_normalization": False, "norm_type": "layer_norm", "layer_norm_eps": 1e-6, "hidden_act": "gelu",
            "initializer_factor": 1.0, "initializer_range": 0.02, "drop_path_rate": 0.0, "dropout": 0.0,
            "attention_dropout": 0.0, "use_flash_attn": False},
        "text_config": _QWEN2_TEXT,
        "force_image_size": None, "downsample_ratio": 0.5, "ps_version": "v2", "select_layer": -1,
        "dynamic_image_size": True, "min_dynamic_patch": 1, "max_dynamic_patch": 12, "use_thumbnail": True,
        "template": "internvl2_5",
    },
    # Eagle2.5-VL (nvidia/Eagle2.5-8B: a SigLIP tower, a Qwen2 language model, as upstream's eagle2_5_vl.py builds
    # them: SiglipVisionModel(config.vision_config), init_vllm_registered_model(config.text_config)); its
    # force_image_size, downsample_ratio and select_layer are read with defaults (None, 0.5, -1). The tower is
    # transformers' SiglipVisionConfig, tiny: 4x4 patches of 14
    ("eagle2_5_vl",): {
        "vision_config": {
            "model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
            "num_hidden_layers": 1, "image_size": 56, "patch_size": 14, "num_channels": 3, "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6},
        "text_config": _QWEN2_TEXT,
        "ps_version": "v2", "dynamic_image_size": True, "min_dynamic_patch": 1, "max_dynamic_patch": 12,
        "use_thumbnail": True,
    },
    # Pixtral in Mistral's format: vLLM's own config loader (transformers_utils/configs/mistral.py,
    # _remap_mistral_vision_args) nests params.json's vision_encoder as a plain config (the fields of upstream's
    # VisionEncoderArgs; Pixtral-12B's: patches of 16, rope-2D base 10000, image token 10) and the rest as the
    # text_config of the MistralForCausalLM pixtral.py builds. Tiny: 4x4 patches of 16
    ("pixtral",): {
        "vision_config": {
            "model_type": "mistral_vision_encoder", "hidden_size": 32, "num_channels": 3, "image_size": 64,
            "patch_size": 16, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "rope_theta": 10000.0, "image_token_id": 10, "adapter_bias": True, "spatial_merge_size": 1,
            "add_pre_mm_projector_layer_norm": False, "mm_projector_id": ""},
        "text_config": {**_QWEN2_TEXT, "model_type": "mistral", "architectures": ["MistralForCausalLM"]},
    },
    # Sarvam-105B (sarvam_mla): its query projection is direct, not low-rank. Both vLLMs' SarvamMLAConfig and
    # transformers' default q_lora_rank to None (sarvamai/sarvam-105b's config.json), and upstream's sarvam.py
    # hands MLAModules fused_qkv_a_proj=None, which upstream's own MLA wrapper refuses for a q_lora_rank
    # ("fused_qkv_a_proj is required"): the table's generic 32 built a model upstream cannot run either
    ("sarvam",): {"q_lora_rank": None},
    # Keye-VL: the top-level config is the Qwen3 language model's (upstream's keye.py builds it with
    # architectures=["Qwen3ForCausalLM"] from the whole hf_config); its KeyeSiglipVisionModel reads a SigLIP
    # tower's fields plus the 2x2 spatial_merge_size its processor merges with (Keye-VL's merge_size 2). Tiny
    # EXAONE's remote-code ExaoneConfig names hidden_act activation_function (default and released "silu"). Per
    # family, not in SYNTH_VALUES: the name means another activation elsewhere (GPT-2 "gelu_new", Nomic BERT
    # "swiglu", mBART's decoder "gelu"), and a "silu" for every synthesized config built those models wrong
    ("exaone",): {"activation_function": "silu"},
    # GTE v1.5 (Alibaba-NLP/gte-base-en-v1.5's config.json, remote-code NewConfig: GteNewModel's only config, the one
    # bert_with_rope.py architecture without a class here): gelu, which both vLLMs' GteNewModelConfig assert and
    # turn into geglu, and rope positions
    ("bert_with_rope",): {"hidden_act": "gelu", "position_embedding_type": "rope"},
    # ColBERTJinaRobertaModel (jinaai/jina-colbert-v2, upstream's docstring) builds bert_with_rope's JinaRobertaModel,
    # which refuses any position_embedding_type but rotary/rope; its remote-code XLMRobertaFlashConfig says "rotary",
    # the one upstream's JinaRobertaModelConfig fixes up (asserting that class name). colbert's only synthesized
    # architecture (HF_ColBERT and ColBERTModernBertModel build from transformers' BertConfig / ModernBertConfig).
    # The same class's LoRA adapters' rank and alpha (its defaults 4 and 1, so every config.json holds them), which
    # upstream's JinaRobertaModel.load_weights reads unguarded to merge the adapters (jina_merge_lora_weights)
    ("colbert",): {"position_embedding_type": "rotary", "lora_rank": 4, "lora_alpha": 1},
    # MOSS-Audio (remote code; upstream's moss_audio.py rebuilds its own MossAudioConfig from the config's
    # language_config and audio_config): a Qwen3 language model (MossQwen3ForCausalLM, built with architectures
    # Qwen3ForCausalLM) and the Whisper-style encoder of MossAudioEncoderConfig's fields. Without them upstream's
    # MossAudioConfig built 4.57.6's default Qwen3Config (32 layers, max_window_layers 28) and the default encoder.
    # Tiny: the language model one window throughout (use_sliding_window off, as Qwen3's released configs), the
    # encoder's output as wide as it (no out_proj), one deepstack layer of its two (the released [8, 16, 24] of 32)
    ("moss_audio",): {
        "language_config": {k: v for k, v in _QWEN2_TEXT.items() if k not in ("model_type", "architectures")}
        | {"head_dim": T.HIDDEN // T.HEADS, "use_sliding_window": False, "max_window_layers": T.LAYERS},
        "audio_config": {"d_model": 32, "output_dim": 32, "num_mel_bins": 128, "encoder_layers": 2,
                         "encoder_attention_heads": 2, "encoder_ffn_dim": 64, "downsample_hidden_size": 32,
                         "deepstack_encoder_layer_indexes": [1]},
        "adapter_hidden_size": 64},
    # Solar Pro's block skip connections (upstage's remote-code SolarConfig defaults: the hidden state is kept
    # before the layers bskcn_1 [12, 20, 32, 44] and bskcn_2 [20, 32], blended back before bskcn_3 [16, 24, 36, 48]
    # and bskcn_4 [28, 40] with weight bskcn_tv [0.9 training, 0.8 inference]); upstream's solar.py reads them
    # unguarded in forward. A state is kept only once a residual exists (upstream asserts it: from layer 1 on), so
    # the tiny 2 layers keep and blend before layer 1: the path runs at the released weights, but blends the state
    # it just kept (an identity; its effect needs a deeper model than the tiny one)
    # AliceAI: upstream's AliceAIForCausalLMConfig (models/config.py) refuses a config whose KDA may take negative
    # eigenvalues or whose router is not sigmoid with bias correction (the released model's, which alice_ai.py
    # computes without reading them); a synthesized config without them built nothing upstream
    ("alice_ai",): {"kda_allow_negative_eigenvalues": False, "router_score_function": "sigmoid",
                    "router_bias_correction": True},
    # DomynEdge (remote code): per layer an attention window, read as config.window_sizes[i][0] (0: none; upstream
    # builds per_layer_sliding_window = window + 1). Tiny: the table's sliding-then-full layers, window 7 + 1 = 8
    ("domyn_edge",): {"window_sizes": [[7, 0], [0, 0]]},
    # Nemotron-NAS (DeciLM remote code; nvidia/Llama-3_1-Nemotron-51B-Instruct's config.json): per layer a block of
    # an attention (KV heads = heads // n_heads_in_group, or no_op) and an FFN (width from ffn_mult, or no_op).
    # Tiny: both layers whole, the table's 2 KV heads of 4, ffn_mult as released (upstream rounds to 256)
    ("nemotron_nas",): {"block_configs": [
        {"attention": {"n_heads_in_group": T.HEADS // T.KV_HEADS, "no_op": False, "replace_with_linear": False},
         "ffn": {"ffn_mult": 2.625, "no_op": False, "replace_with_linear": False}}] * T.LAYERS},
    # FireRedASR2 (remote code): audio_encoder_conf is the keyword arguments of upstream's ConformerEncoder (the
    # released 80 filterbank bins, 16 layers of 20 heads over 1280, kernel 33) and the adapter merges 2 frames
    # (encoder_downsample_rate). Tiny: one layer of 2 heads over 32, the released bins and kernel
    ("fireredasr2",): {"audio_encoder_conf": {"idim": 80, "n_layers_enc": 1, "n_head": 2, "d_model": 32,
                                              "kernel_size": 33},
                       "encoder_downsample_rate": 2},
    # Fun-ASR (remote code): audio_encoder_conf is the keyword arguments of upstream's SenseVoiceEncoderSmall (input
    # 560 fixed there). Its output width is upstream's hard-coded adaptor input (encoder_dim=512), so 512 as released;
    # one block, no time-parallel blocks, a small FFN
    ("funasr",): {"audio_encoder_conf": {"output_size": 512, "attention_heads": 4, "linear_units": 64,
                                         "num_blocks": 1, "tp_blocks": 0, "kernel_size": 11, "sanm_shift": 0}},
    # Nemotron-Parse 3.5 (remote code): a RADIO encoder named by its timm model (vLLM's RadioConfig takes the sizes
    # from the name: the smallest, ViT-S/16 384 wide, the released ViT-H's 1280 being what vision_spatial_dim
    # defaults to), one summary per teacher (3, as the released 3840 = 3 x 1280), an mBART decoder with a causal
    # visual prefix and no cross-attention, native packing (upstream refuses anything else). Tiny: 64x64 pages
    # (4x4 patches; the neck merges 4 columns), the decoder at the tiny text sizes. The released tower is SO400M
    # (27 x 1152, sizes fixed by the name), the only one upstream's load_weights accepts (its LayerScale check): the
    # tiny model constructs on both sides, and its load stops there, named
    ("nemotron_parse3_5",): {
        "encoder": {"model_type": "radio", "patch_size": 16,
                    "args": {"model": "vit_small_patch16_224", "cls_token_per_teacher": True,
                             "teachers": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "cpe_max_size": 2048}},
        "decoder": {"model_type": "mbart", "vocab_size": T.VOCAB, "d_model": T.HIDDEN, "decoder_layers": T.LAYERS,
                    "decoder_attention_heads": T.HEADS, "decoder_ffn_dim": T.INTERMEDIATE,
                    "encoder_layers": 1, "encoder_attention_heads": T.HEADS, "encoder_ffn_dim": T.INTERMEDIATE,
                    "activation_function": "gelu", "causal_vision_prefix": True, "add_cross_attention": False},
        "image_size": [64, 64], "navit_packing": True, "vision_spatial_dim": 384, "vision_summary_dim": 3 * 384},
    # Nemotron-Parse 3.5's MTP draft reads the size of the mBART decoder of its target's config (remote code:
    # RADIO encoder, mBART decoder sub-configs): decoder.vocab_size and decoder.d_model, tiny. causal_vision_prefix:
    # upstream's SpeculativeConfig rewrites only such a target into the draft (hf_config_override)
    ("nemotron_parse3_5_mtp",): {"decoder": {"model_type": "mbart", "vocab_size": T.VOCAB, "d_model": T.HIDDEN,
                                             "causal_vision_prefix": True,
                                             "decoder_layers": 1, "decoder_attention_heads": T.HEADS,
                                             "decoder_ffn_dim": T.INTERMEDIATE, "encoder_layers": 1,
                                             "encoder_attention_heads": T.HEADS, "encoder_ffn_dim": T.INTERMEDIATE}},
    # Nemotron Nano VL v2 / Nemotron 3 Omni (remote-code NemotronH_Nano_VL_V2 config; nvidia/NVIDIA-Nemotron-Nano-
    # 12B-v2-VL-BF16's config.json): a RADIO tower named by its timm model (vLLM's RadioConfig takes its sizes from the
    # name: the smallest, ViT-S/16 384 wide, the released ViT-H 1280 = vit_hidden_size), a Nemotron-H language model
    # (upstream builds it with init_vllm_registered_model and takes its Mamba state shapes from it), pixel shuffle 0.5
    # "v2", InternVL image tags, CLIP normalization. Tiny: 64x64 images (4x4 patches of 16, 2x2 tokens after the
    # shuffle), a projector 64 wide (released 20480), the language model one Mamba, one attention and one MLP layer
    # (the released pattern's kinds; MoE "E" layers are the Omni 30B-A3B's, whose non-gated experts need CUDA). No
    # sound_config: the Omni checkpoints' Parakeet encoder is left out (upstream builds it only when one is set)
    ("nano_nemotron_vl",): {
        # video_temporal_patch_size set: transformers 5's RadioConfig declares it None, over which upstream's
        # getattr(..., 1) default never applies (the reference side's ViTPatchGenerator compared None > 1), and refuses
        # 1 ("must be at least 2 or None"): 2, the Omni checkpoints' video tubelet (transformers 5's
        # NemotronH_Omni_Reasoning_V3_Config builds its RADIO tower so), with its separate video embedder
        "vision_config": {"model_type": "radio", "patch_size": 16, "preferred_resolution": [64, 64],
                          "video_temporal_patch_size": 2,
                          "args": {"model": "vit_small_patch16_224", "cls_token_per_teacher": True,
                                   "teachers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                                   "cpe_max_size": 2048, "register_multiple": 8}},
        "text_config": {"model_type": "nemotron_h", "architectures": ["NemotronHForCausalLM"],
                        "hidden_size": T.HIDDEN, "intermediate_size": T.INTERMEDIATE, "vocab_size": T.VOCAB,
                        "num_attention_heads": T.HEADS, "num_key_value_heads": T.KV_HEADS, "head_dim": T.HEAD_DIM,
                        "num_hidden_layers": 3, "hybrid_override_pattern": "M*-",
                        "max_position_embeddings": T.MAX_POSITIONS, "attention_bias": False, "mlp_bias": False,
                        "mlp_hidden_act": "relu2", "use_bias": False, "layer_norm_epsilon": 1e-5,
                        "residual_in_fp32": False, "rescale_prenorm_residual": True, "tie_word_embeddings": False,
                        "ssm_state_size": 16, "mamba_num_heads": 2, "mamba_head_dim": 64, "n_groups": 2,
                        "expand": 2, "conv_kernel": 4, "use_conv_bias": True, "mamba_proj_bias": False,
                        "mamba_hidden_act": "silu", "chunk_size": 128, "time_step_min": 0.001,
                        "time_step_max": 0.1, "time_step_floor": 1e-4, "time_step_limit": [0.0, float("inf")],
                        "num_logits_to_keep": 1, "use_mamba_kernels": True, "rms_norm_eps": 1e-5,
                        # the checkpoint's dtype (released "bfloat16"; here the harness's): upstream casts the tower
                        # to language_model.config.dtype and asserts it is a torch.dtype, which transformers makes of
                        # this string on both sides
                        "torch_dtype": "float32"},
        "force_image_size": 64, "patch_size": 16, "downsample_ratio": 0.5, "ps_version": "v2",
        "image_tag_type": "internvl", "template": "nemotron_h", "vit_hidden_size": 384, "projector_hidden_size": 64,
        "norm_mean": [0.48145466, 0.4578275, 0.40821073], "norm_std": [0.26862954, 0.26130258, 0.27577711],
        # the remote-code NemotronH_Nano_VL_V2_Config's default (use_thumbnail: bool = True), which the file's
        # processor reads unguarded (BaseNanoNemotronVLProcessor.__init__: config.use_thumbnail), as 0.13.0's does
        "use_thumbnail": True,
    },
    # Kimi-VL (moonshotai/Kimi-VL-A3B-Instruct's config.json): both vLLMs' KimiVLConfig builds its text_config as
    # transformers' DeepseekV2Config, whose defaults leave the routing None (num_experts_per_tok, n_group,
    # topk_group: the MoE's grouped top-k asserted them, the pinned vLLM's own class alike); the release routes
    # 6 of 64 experts in one group. Tiny: the table's 2 of 4 experts, one group
    ("kimi_vl",): {"text_config": {"num_experts_per_tok": T.EXPERTS_PER_TOKEN, "n_group": 1, "topk_group": 1}},
    # Ovis2 (AIDC-AI/Ovis2-1B's config.json; both vLLMs ship an OvisConfig whose defaults hold neither part, so its
    # get_text_config() was the config itself and building the language model built Ovis again: RecursionError on
    # both sides): a Qwen2 language model in llm_config, an AIMv2 visual tokenizer (images of 448 in patches of 14,
    # no biases: 0.13.0's AIMv2Config says use_bias, transformers 5's Aimv2VisionConfig mlp_bias) whose head maps
    # the 2x2-strided tower onto visual_vocab words (released 65536). Tiny: one 32-wide layer, 64 visual words
    ("ovis",): {
        "llm_config": _QWEN2_TEXT,
        "visual_tokenizer_config": {
            "model_type": "aimv2_visual_tokenizer", "vocab_size": 64, "tokenize_function": "softmax", "tau": 1.0,
            "depths": None, "drop_cls_token": False, "hidden_stride": 2,
            "backbone_config": {"model_type": "aimv2", "hidden_size": T.VISION_HIDDEN,
                                "intermediate_size": T.VISION_INTERMEDIATE, "num_attention_heads": T.VISION_HEADS,
                                "num_hidden_layers": T.VISION_DEPTH, "num_channels": 3, "image_size": 56,
                                "patch_size": 14, "rms_norm_eps": 1e-5, "qkv_bias": False, "use_bias": False,
                                "mlp_bias": False}},
        "hidden_size": T.HIDDEN, "conversation_formatter_class": "QwenConversationFormatter",
    },
    # Ovis2.5 / Ovis2.6 (AIDC-AI's remote-code Ovis2_5Config; Ovis2.5-9B's config.json): a SigLIP2 NaViT visual
    # tokenizer in vit_config (upstream's siglip2navit.py reads these; released 1152 x 27 layers, images of 512 in
    # patches of 16, windows of 112 merged 2x2, original position embeddings kept, 2-D rope) whose head maps onto
    # visual_vocab_size visual words (released 65536; upstream reserves 4 of them for its indicator tokens). Tiny:
    # one 32-wide layer, 64 visual words
    ("ovis2_5",): {
        "vit_config": {"model_type": "siglip2_navit", "hidden_size": T.VISION_HIDDEN,
                       "intermediate_size": T.VISION_INTERMEDIATE, "num_attention_heads": T.VISION_HEADS,
                       "num_hidden_layers": T.VISION_DEPTH, "num_channels": 3, "num_patches": -1, "image_size": 512,
                       "patch_size": 16, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6,
                       "attention_dropout": 0.0, "hidden_stride": 2, "window_size": 112, "fullatt_block_indexes": None,
                       "temporal_patch_size": 1, "preserve_original_pe": True, "use_rope": True},
        "visual_vocab_size": 64,
    },
    # Llama-Nemotron VL (remote-code config; nvidia/llama-nemotron-embed-vl / rerank-vl's config.json): a SigLIP tower,
    # which upstream's embedding and reranking classes build as vLLM's SiglipVisionModel(config.vision_config), pixel
    # shuffle 0.5 "v2", every image resized to force_image_size (the tower's own size), mean pooling. Tiny: the tower
    # 64x64 in patches of 16 (2x2 tokens after the shuffle). Keyed by architecture: the chat checkpoint
    # (Llama_Nemotron_Nano_VL, same file) holds a C-RADIO tower of remote code that its class builds with
    # AutoModel.from_config, which transformers 4.57.6 has no class for; a SigLIP there is no released checkpoint
    # (and transformers 5's SiglipVisionModel drops the vision_model. level 4.57.6's has: no one checkpoint loads both)
    ("LlamaNemotronVLModel", "LlamaNemotronVLForSequenceClassification"): {
        "vision_config": {
            "model_type": "siglip_vision_model", "hidden_size": T.VISION_HIDDEN, "intermediate_size": T.VISION_INTERMEDIATE,
            "num_attention_heads": T.VISION_HEADS, "num_hidden_layers": T.VISION_DEPTH, "image_size": 64,
            "patch_size": 16, "num_channels": 3, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6},
        # the language model: the released llm_config (a Llama), which the remote class hands out as its text config;
        # upstream asks get_text_config(), which on a config without one returns the config itself (this
        # architecture again: construct recursed until RecursionError). Any registered causal LM serves there
        "text_config": _QWEN2_TEXT,
        "force_image_size": 64, "downsample_ratio": 0.5, "ps_version": "v2", "pooling": "avg",
        "vit_hidden_size": T.VISION_HIDDEN, "projector_hidden_size": T.INTERMEDIATE,
        "dynamic_image_size": True, "min_dynamic_patch": 1, "max_dynamic_patch": 12, "use_thumbnail": True,
    },
    # Kanana-V (kakaocorp's remote-code config; kanana-1.5-v-3b-instruct's config.json): a Qwen2-VL vision tower
    # without its merger (upstream's CustomQwen2VLVE reads these Qwen2VLVisionConfig fields), a Dynamic C-Abstractor
    # projector (RegNet stages of depth `depth` around a merge_size x merge_size patch merge, an MLP readout of
    # mlp_depth onto the language model's width, learned position embeddings of pos_emb_size, reading the tower's
    # hidden state feature_layer_index: Honeybee's C-Abstractor default, the last) and a Llama language
    # model (upstream builds LlamaForCausalLM from text_config). Tiny: one 32-wide tower layer, one RegNet block a
    # stage, 16 positions (a 4x4 grid)
    ("kanana_v",): {
        "vision_config": {"model_type": "qwen2_vl", "depth": T.VISION_DEPTH, "embed_dim": T.VISION_HIDDEN,
                          "hidden_size": T.VISION_HIDDEN, "num_heads": T.VISION_HEADS, "mlp_ratio": 2,
                          "in_channels": 3, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                          "hidden_act": "quick_gelu"},
        "projector_config": {"model_type": "kanana-1.5-v-visual-projector", "depth": 1, "mlp_depth": 2,
                             "merge_size": 2, "encoder_hidden_size": T.VISION_HIDDEN, "hidden_size": T.VISION_HIDDEN,
                             "output_hidden_size": T.HIDDEN, "pos_emb": True, "pos_emb_size": 16,
                             "feature_layer_index": -1},
        "text_config": {**_QWEN2_TEXT, "model_type": "llama", "architectures": ["LlamaForCausalLM"]},
    },
    ("solar",): {"bskcn_1": [1], "bskcn_2": [1], "bskcn_3": [1], "bskcn_4": [1], "bskcn_tv": [0.9, 0.8]},
    # Gemma 4's drafts (the MTP assistant, the DSpark draft) read their layers' own sizes from transformers 5's
    # per_layer_config ({layer index: overrides}, read as config.per_layer_config[i].head_dim): Gemma4TextConfig
    # gives each full-attention layer global_head_dim, 512 over head_dim 256. The table's layer_types end in the full
    # layer (Gemma 4 forces its last layer full): twice the tiny head_dim there
    ("gemma4_mtp",): {"head_dim": T.HEAD_DIM, "per_layer_config": {"1": {"head_dim": 2 * T.HEAD_DIM}}},
    # Qwen3 DFlash drafts (qwen3_dflash.py's layers, which DFlash2 and DSpark build): upstream refuses a draft mixing
    # sliding and full attention unless Model Runner V2 runs it ("DFlash drafters with mixed sliding/full attention
    # require the V2 model runner"), which neither vLLM builds on the CPU (0.33.0's use_v2_model_runner: "Model Runner
    # V2 requires Triton; using the V1 model runner instead"; 0.13.0's CPUWorker builds its V1 runner): the table's
    # mixed layer_types built nothing on either side. All full attention, the standard DFlash checkpoint's
    # (z-lab/Qwen3.5-9B-DFlash in upstream's docstring), on both sides
    ("qwen3_dspark",): {"layer_types": ["full_attention"] * T.LAYERS},
    # DFlash2's grouped convolution and candidate selector read their sizes from dflash_config unguarded
    # (draft_config["conv_kernel_size"], ...: upstream's speculators/algos.py update_dflash2 copies them there from
    # the checkpoint's config); tiny sizes, the groups dividing the tiny hidden size
    ("qwen3_dflash2",): {"layer_types": ["full_attention"] * T.LAYERS, "dflash_config": _DFLASH2_CONFIG},
    # the DSpark draft's layers are all full attention with keys as values: upstream's gemma4_dspark.py asserts
    # "Gemma4 DSpark fused precompute assumes uniform attention_k_eq_v layers" (use_k_eq_v: a full-attention layer
    # of a config with attention_k_eq_v), so every checkpoint it serves is so; each full layer at global_head_dim
    ("gemma4_dspark",): {"head_dim": T.HEAD_DIM, "layer_types": ["full_attention"] * T.LAYERS, "attention_k_eq_v": True,
                         "per_layer_config": {str(i): {"head_dim": 2 * T.HEAD_DIM} for i in range(T.LAYERS)}},
    # MiMo-V2-Omni's vision tower: its window-attention blocks hold a sink per head (upstream's mimo_v2_omni.py: "The
    # checkpoint stores these only for non-full-attention blocks"), a flag vLLM's Mimo_VLVisionConfig does not
    # declare; set over that class's defaults, which the worker fills the vision_config from
    # Its language model is MiMoV2FlashForCausalLM (_MIMO_V2_FLASH_HUB)
    ("mimo_v2_omni",): {"vision_config": {"use_sink": True}, **_MIMO_V2_FLASH_HUB},
    # the extract_hidden_states draft caches the target's hidden states of these layers (one cache head each):
    # upstream's ExtractHiddenStatesProposer refuses a draft config without them ("eagle_aux_hidden_state_layer_ids
    # must be set in the draft model config"); the model's own getattr default [] built a cache of no heads.
    # Both tiny target layers
    ("extract_hidden_states",): {"eagle_aux_hidden_state_layer_ids": list(range(T.LAYERS))},
    # Laguna's DFlash draft has dense layers only: upstream's laguna_dflash.py DFlashLagunaModel.load_weights hands
    # every tensor to weight_loader(param, loaded_weight), which a MoE layer's RoutedExperts.weight_loader (weight
    # name, shard and expert id required) refuses, so every checkpoint it serves is dense; the table's
    # ["dense", "sparse"] built a layer no checkpoint of it can load
    ("laguna_dflash",): {"mlp_layer_types": ["dense"] * T.LAYERS},
    # Step-3.5-Flash's MTP layers (upstream's step3p5_mtp.py builds Step3p5DecoderLayer at index num_hidden_layers and
    # on, whose kind it reads from [*layer_types, *mtp_layer_types]; without them an IndexError on both vLLMs):
    # sliding-window attention and a dense MLP, as the released config.json pads its 45 layer_types with the 3 MTP
    # layers' (48 layers, 36 sliding + 12 full: the 45 decoder layers hold 33 + 12), "MoE decoder layers surrounded
    # by dense layers at the beginning/end and MTP layers" (NVIDIA Megatron Bridge's Step-3.5 notes);
    # transformers 5's Step3p7TextConfig splits those pads off into these fields
    ("step3p5_mtp",): {"mtp_layer_types": ["sliding_attention"], "mtp_mlp_layer_types": ["dense"]},
    # MiMo-V2-Flash's (and -Omni's) MTP draft: its layer reads the SWA attention's fields, its target the rest
    ("mimo_v2_mtp",): _MIMO_V2_FLASH_HUB,
    # MiniCPM-V / MiniCPM-o (openbmb's remote-code MiniCPMVConfig, a Qwen2Config with a SigLIP tower: MiniCPM-V-2_6's
    # and MiniCPM-o-2_6's config.json): version 2.6 picks upstream's Qwen2-based MiniCPMV2_6 (without one it takes
    # the Llama-3 2.5), 64 resampler queries, the whole tower; MiniCPM-o's audio pooling and chunk. The tower and
    # the Whisper audio encoder come from the classes upstream builds them from (subconfig_classes)
    # the tower's resampler has hidden_size // 128 heads (upstream's init_resampler): a 128-wide language model, 1 head
    ("minicpmv", "minicpmo"): {"version": 2.6, "query_num": 64, "drop_vision_last_layer": False, "hidden_size": 2 * T.HIDDEN,
                               "audio_pool_step": 2, "audio_chunk_length": 1.0},
    # Phi-3-Vision (microsoft/Phi-3-vision-128k-instruct's remote-code Phi3VConfig, a Phi-3 with these dicts):
    # upstream's phi3v.py builds the CLIP ViT-L/14-336 it hard-codes (1024 wide, not shrunk) up to img_processor's
    # layer_idx; 0 builds its first layer only (the released -2 builds 23 of 24, the same code path), image_dim_out
    # its width, 144 tokens per crop; the HD transform with learnable separators (upstream asserts both)
    ("phi3v",): {
        "img_processor": {"image_dim_out": 1024, "model_name": "openai/clip-vit-large-patch14-336",
                          "name": "clip_vision_model", "num_img_tokens": 144, "layer_idx": 0},
        "embd_layer": {"embedding_cls": "image", "hd_transform_order": "sub_glb", "projection_cls": "mlp",
                       "use_hd_transform": True, "with_learnable_separator": True}},
    # Phi-4-reasoning-vision (phi4siglip.py): a Phi-3 language model over a SigLIP2 NaFlex tower, which upstream
    # builds from the vision_config dict (patches of 16) up to its second-to-last layer, projected from mm_hidden_size,
    # the tower's width. Tiny (the tower shrinks like any; mm_hidden_size its tiny width)
    ("phi4siglip",): {"mm_hidden_size": T.VISION_HIDDEN,
                      "vision_config": {"hidden_size": T.VISION_HIDDEN, "intermediate_size": T.VISION_INTERMEDIATE,
                                        "num_attention_heads": T.VISION_HEADS, "num_hidden_layers": 2,
                                        "patch_size": 16, "num_patches": 16}},
    # Molmo (allenai/Molmo-7B-D-0924's remote-code MolmoConfig): a Qwen2-style decoder with q/k/v biases, RMS norms
    # before each block, no q/k norm, untied head, embeddings as wide as the vocabulary (embedding_size; upstream adds
    # its 128 extra tokens); the vision backbone upstream's molmo.py hard-codes (VisionBackboneConfig)
    ("molmo",): {"embedding_size": T.VOCAB, "attention_layer_norm": False, "layer_norm_type": "rms",
                 "norm_after": False, "weight_tying": False, "qkv_bias": True},
    # Molmo2 (allenai/Molmo2-8B's remote-code Molmo2Config, auto_map AutoConfig: catalog P2 remote_config_first,
    # so both sides build from this config, as a serve with --trust-remote-code builds from the checkpoint's class):
    # upstream's molmo2.py copies every field of its VitConfig / AdapterConfig / TextConfig dataclasses from
    # vit_config, adapter_config and text_config (getattr, no default). The released layout, tiny: a SigLIP-style
    # tower of 4x4 patches of 14 (image_num_pos their count), the adapter pooling the last two tower layers
    # (released: -3 and -9 of 27) at the tower's width into the text width, a Qwen3-style text model with q/k norms
    # and 128 extra embedding rows; the special tokens in those rows, in the released order (151936 + i there).
    # The sub-configs are the checkpoint class's own (its model_types here are ones no transformers class maps, so
    # both sides hold the same plain configs, not transformers 5's renaming Molmo2*Config)
    ("molmo2",): {
        "vit_config": {"model_type": "mmf_synth_molmo2_vit", "hidden_size": T.VISION_HIDDEN, "intermediate_size": T.VISION_INTERMEDIATE,
                       "num_hidden_layers": 2, "num_attention_heads": T.VISION_HEADS,
                       "num_key_value_heads": T.VISION_HEADS, "head_dim": T.VISION_HIDDEN // T.VISION_HEADS,
                       "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6,
                       "image_default_input_size": [56, 56], "image_patch_size": 14, "image_num_pos": 16},
        "adapter_config": {"model_type": "mmf_synth_molmo2_adapter", "vit_layers": [-1, -2], "pooling_attention_mask": True, "hidden_size": T.VISION_HIDDEN,
                           "num_attention_heads": T.VISION_HEADS, "num_key_value_heads": T.VISION_HEADS,
                           "head_dim": T.VISION_HIDDEN // T.VISION_HEADS, "hidden_act": "silu",
                           "intermediate_size": T.INTERMEDIATE, "text_hidden_size": T.HIDDEN},
        "text_config": {"model_type": "mmf_synth_molmo2_text", "hidden_size": T.HIDDEN, "num_attention_heads": T.HEADS,
                        "num_key_value_heads": T.KV_HEADS, "head_dim": T.HEAD_DIM, "vocab_size": T.VOCAB,
                        "additional_vocab_size": 128,
                        "qkv_bias": False, "num_hidden_layers": T.LAYERS, "intermediate_size": T.INTERMEDIATE,
                        "hidden_act": "silu", "max_position_embeddings": T.MAX_POSITIONS, "rope_theta": 1000000.0,
                        "use_qk_norm": True, "qk_norm_type": "qwen3", "layer_norm_eps": 1e-6, "norm_after": False,
                        "rope_scaling_layers": None},
        "image_start_token_id": T.VOCAB, "image_end_token_id": T.VOCAB + 1, "image_patch_id": T.VOCAB + 2,
        "image_col_id": T.VOCAB + 3, "low_res_image_start_token_id": T.VOCAB + 4, "image_low_res_id": T.VOCAB + 5,
        "frame_start_token_id": T.VOCAB + 7, "frame_end_token_id": T.VOCAB + 8},
    # Step-3.7 (custom code, trust_remote_code: catalog P2 remote_config_first): its vision_config is the Perception
    # Encoder's, in the fields upstream's PerceptionEncoderConfig spells (vllm/transformers_utils/configs/step5.py,
    # "the vision tower shared by Step3p7 and Step5"), which step_vl.py's PerceptionEncoder and step3p7.py read
    # unguarded: its defaults (728-pixel images in patches of 14, mlp_ratio 8960 / 1536, rope2d, a pre-norm), the
    # sizes tiny, output_dim the width (its None reads as the width); the projector's bias, as the released one. Its
    # text_config builds whatever registered causal LM it names (a tiny Qwen2 here; the wrapper is what is verified).
    # The vision sub-config's model_type is one no class maps, so both sides hold the same plain config
    ("step3p7",): {
        "vision_config": {"model_type": "mmf_synth_perception_encoder", "hidden_act": "quick_gelu", "patch_size": 14,
                          "width": T.VISION_HIDDEN, "layers": T.VISION_DEPTH, "heads": T.VISION_HEADS,
                          "mlp_ratio": 8960 / 1536, "output_dim": T.VISION_HIDDEN, "ls_init_value": 0.1,
                          "drop_path": 0.0, "image_size": 728, "use_abs_posemb": True, "use_cls_token": False,
                          "use_rope2d": True, "pool_type": "none", "attn_pooler_heads": 8, "use_ln_pre": True,
                          "use_ln_post": False},
        "projector_bias": False},
    # LLaVA-OneVision-2 (the checkpoint's remote-code LlavaOnevision2Config, auto_map AutoConfig: no transformers class,
    # not in upstream's _CONFIG_REGISTRY, so both sides build from this stand-in of it). Upstream's
    # llava_onevision2.py reads config.vision_config (LlavaOnevision2VisionTower: patch_size, spatial_merge_size,
    # hidden_size, num_hidden_layers, num_attention_heads, intermediate_size unguarded; num_channels,
    # frame_windows_size, rope_theta, layer_norm_eps with defaults 3, 4, 10000.0, 1e-6; the processing info
    # temporal_patch_size, default 1), config.text_config (handed whole to init_vllm_registered_model as
    # Qwen3ForCausalLM: "OV2 LLM is plain Qwen3", hidden_size for the merger's output width) and
    # config.image_token_id. Values: the LlavaOnevision2VisionConfig defaults of the remote-code configuration module
    # (read in a public copy of configuration_llava_onevision2_moe.py, which defines the vision config the dense
    # LlavaOnevision2Config nests; no released config.json was at hand to check them against): patches of 14,
    # spatial_merge_size 2, temporal_patch_size 1, frame_windows_size 4, rope_theta 10000.0, layer_norm_eps 1e-6,
    # 3 channels, intermediate 4x the width (4096 / 1024); its special tokens (image 151655, video 151656, vision
    # start/end 151652 / 151653) here the last rows of the tiny vocabulary. Tiny: 2 heads of 32 (upstream's
    # LlavaOnevision2VisionRotaryEmbedding asserts head_dim // 2 % 16 == 0, its 4:6:6 T:H:W split; the default
    # 1024 / 16 heads is 64); the sub-config's model_type one no class maps, so both sides hold the same plain config
    ("llava_onevision2",): {
        "vision_config": {"model_type": "mmf_synth_llava_onevision2_vision", "hidden_size": 2 * T.VISION_HIDDEN,
                          "intermediate_size": 8 * T.VISION_HIDDEN, "num_hidden_layers": T.VISION_DEPTH,
                          "num_attention_heads": T.VISION_HEADS, "num_channels": 3, "patch_size": 14,
                          "spatial_merge_size": 2, "temporal_patch_size": 1, "frame_windows_size": 4,
                          "rope_theta": 10000.0, "layer_norm_eps": 1e-6, "hidden_act": "gelu"},
        "text_config": {**_QWEN2_TEXT, "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"],
                        "head_dim": T.HEAD_DIM},
        "image_token_id": T.VOCAB - 4, "video_token_id": T.VOCAB - 3, "vision_start_token_id": T.VOCAB - 2,
        "vision_end_token_id": T.VOCAB - 1},
    ("keye", "keye_vl1_5"): {
        "vision_config": {
            "model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
            "num_hidden_layers": 1, "image_size": 56, "patch_size": 14, "num_channels": 3, "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6, "spatial_merge_size": 2},
    },
}


def family_values(model: str, arch: str | None = None) -> dict[str, object]:
    """:data:`SYNTH_FAMILIES`' values for architecture ``arch`` when a key names it (one file's architectures that
    load different checkpoints: nemotron_vl's SigLIP embedders and its C-RADIO chat model), else for the upstream
    model file ``model`` ({} for none); pure."""
    found = next((v for k, v in SYNTH_FAMILIES.items() if arch and arch in k), None)
    if found is None:
        found = next((v for k, v in SYNTH_FAMILIES.items() if model in k), {})
    return copy.deepcopy(found)


def with_family(cfg: dict, missing: list[str], family: dict[str, object]) -> tuple[dict, list[str]]:
    """``cfg`` and ``missing`` (:func:`synthesize`) with a family's values: its fields set, and no longer
    missing either those or the reads its sub-configs hold (the tower's image_size, read from the
    vision_config by a module the model imports, is no top-level field); pure."""
    held = set(family) | {k for v in family.values() if isinstance(v, dict) for k in v}
    return {**cfg, **family}, [m for m in missing if m not in held]


def with_parts(cfg: dict, missing: list[str], parts: dict[str, str]) -> tuple[dict, list[str], dict[str, str]]:
    """``cfg`` and ``missing`` with the sub-configs upstream's file says the class of
    (:func:`subconfig_classes.sub_config_classes`), where nothing else valued them: one a registered language
    model is built from becomes a tiny Qwen2 (any registered causal LM serves there: the wrapper is what is
    verified); the others, by class name, for the worker to fill from that class's defaults (returned, with the
    language ones, for its note); pure."""
    cfg, missing, classes = dict(cfg), list(missing), {}
    for key, cls in sorted(parts.items()):
        if key not in missing:
            continue
        if cls == subconfig_classes.LANGUAGE:
            cfg[key] = copy.deepcopy(_QWEN2_TEXT)
            missing.remove(key)
        classes[key] = cls
    return cfg, missing, classes


# fields the released checkpoints of an architecture carry that its config class lacks (model_type ->
# values), as data, each from the Hugging Face implementation that loads those checkpoints: the
# worker sets them where the class has no such attribute, or over the class's default when the tiny
# config comes from its defaults, whether upstream reads them with a default or not (its default
# describes a different checkpoint)
CHECKPOINT_FIELDS: dict[str, dict[str, object]] = {
    # transformers' HYV3Attention builds q_norm/k_norm unconditionally: its checkpoints hold them
    "hy_v3": {"qk_norm": True},
    # Dory (vLLM's own DoryConfig) splits its layers into input, recurrent and output blocks that must sum to
    # num_hidden_layers (its validate_architecture; upstream's dory.py calls config.validate()). A released config.json
    # carries the split of its own layer count; the defaults' 72 recurrent layers are not the tiny model's: None, so
    # the class's __post_init__ gives the recurrent block every layer the input and output blocks leave (as its
    # defaults do for 72)
    "dory": {"n_recurrent_layers": None},
    # upstream's granite4_vision.py builds one projector per deepstack_layer_map pair (len(), iterated unguarded), which
    # transformers 5's Granite4VisionConfig defaults to None: every released checkpoint carries the pairs (vision layer,
    # negative; language layer), the 4 spatial groups' language layers (its default [12, 15, 18, 21] is past the
    # tiny 2 layers) and the Window Q-Former's rate, query / window side (read unguarded: Fraction(None) raises;
    # ibm-granite's "4/8"). Tiny: the last tower layer into layer 0, the spatial groups from layer 1 on, windows
    # of 2 patches to a side (the tiny tower's 4x4 grid)
    # upstream's Moondream3Config (vLLM's own, for moondream/moondream3-preview) builds its sub-configs from the
    # released config.json's one "config" key, in the checkpoint's own spellings (dim, n_layers, a moe block, a vision
    # encoder's enc_*); tiny, as in runtime_tiny: 2 layers, the second MoE, a tower of 4x4 patches of 14. The heads
    # are the released 64 wide (2 of them): upstream's attention rotates a fixed 32 dims of each (32 / head_dim)
    "moondream3": {"config": {
        "text": {"dim": 128, "ff_dim": T.INTERMEDIATE, "n_layers": T.LAYERS, "vocab_size": T.VOCAB,
                 "max_context": T.MAX_POSITIONS, "n_heads": 2, "n_kv_heads": 2, "prefix_attn": 730,
                 "rope_theta": 1500000.0, "moe": {"start_layer": 1, "n_experts": T.EXPERTS,
                                                  "n_experts_per_tok": T.EXPERTS_PER_TOKEN,
                                                  "expert_inner_dim": T.MOE_INTERMEDIATE}},
        "vision": {"enc_dim": T.VISION_HIDDEN, "enc_patch_size": 14, "enc_n_layers": T.VISION_DEPTH,
                   "enc_ff_dim": T.VISION_INTERMEDIATE, "enc_n_heads": T.VISION_HEADS, "proj_inner_dim": T.INTERMEDIATE,
                   "crop_size": 56, "max_crops": 2, "overlap_margin": 1},
        "tokenizer": {"answer_id": 3}}},
    "granite4_vision": {"deepstack_layer_map": [[-1, 0]], "spatial_target_layers": [1, 2, 3, 4], "downsample_rate": "1/2"},
    # released DBRX configs clip q/k/v at 8 (databricks/dbrx-base attn_config); transformers 5's DbrxAttention
    # calls clamp(min=None, max=None) when clip_qkv is None (its default) and raises: no reference at all
    "dbrx": {"attn_config.clip_qkv": 8},
    # transformers 5's AfmoeTokenChoiceRouter always scores with a sigmoid and renormalises in one group,
    # which its AfmoeConfig does not spell: Arcee's released config.json carries these (and the pinned
    # vLLM's own AfmoeConfig defaults to them); the table's generic "softmax" built another model
    "afmoe": {"score_func": "sigmoid", "route_norm": True, "n_group": 1, "topk_group": 1},
    # a dotted name is a sub-config's field: Qwen3-ForcedAligner's thinker_config carries the size of its
    # time-bin classifier, which Qwen3ASRThinkerConfig defaults to None (the aligner builds nn.Linear(h, it));
    # the ASR model ignores it. Small, like every size of the tiny config
    "qwen3_asr": {"thinker_config.classify_num": 8},
    # upstream's phimoe.py builds qkv/o/lm_head with bias always; PhimoeConfig defaults both flags False, the released
    # Phi-3.5-MoE config.json sets them (a tiny config from the defaults gave a checkpoint without the biases)
    "phimoe": {"attention_bias": True, "lm_head_bias": True},
    # upstream's mimo_v2.py reads the hub config.json's own spelling of MiMo-V2-Flash (hybrid_layer_pattern,
    # moe_layer_freq, swa_*), which the released checkpoint carries next to what transformers 5's
    # MiMoV2FlashConfig keeps (layer_types, mlp_layer_types): derived from those, and the SWA attention as
    # transformers' MiMoV2FlashAttention builds it: the same query heads and head sizes, twice the KV heads,
    # a sink per head. Tiny sizes, as in runtime_tiny (these names are not shrunk there)
    "mimo_v2_flash": {
        "hybrid_layer_pattern": {"=from": "layer_types", "map": {"full_attention": 0, "sliding_attention": 1}},
        "moe_layer_freq": {"=from": "mlp_layer_types", "map": {"dense": 0, "sparse": 1}},
        # the tiny head_dim (16, doubled for the 0.334 rotary share below: 32) and v_head_dim (16): V heads of
        # their own size, as the released 192 / 128
        "swa_num_attention_heads": T.HEADS, "swa_num_key_value_heads": 2 * T.KV_HEADS, "swa_head_dim": 2 * T.HEAD_DIM,
        "swa_v_head_dim": 16, "add_swa_attention_sink_bias": True, "add_full_attention_sink_bias": False,
        # the hub's window (transformers' config takes sliding_window = sliding_window_size + 1): the tiny window 8
        "sliding_window_size": 7,
        # the hub's flat rope fields, which transformers 5 keeps per layer type in rope_parameters (upstream reads
        # them with defaults 1e6 and a whole-head rotation: another model than transformers')
        "rope_theta": {"=from": "rope_parameters.full_attention.rope_theta"},
        "swa_rope_theta": {"=from": "rope_parameters.sliding_attention.rope_theta"},
        "partial_rotary_factor": {"=from": "rope_parameters.full_attention.partial_rotary_factor"},
        # the hub's name of the norms' epsilon (transformers' MiMoV2FlashRMSNorm takes rms_norm_eps)
        "layernorm_epsilon": {"=from": "rms_norm_eps"},
    },
    # transformers' LongcatFlashMLA (4.57.6 and 5.x) scales both LoRA paths unconditionally, and its
    # zero experts are nn.Identity
    "longcat_flash": {"mla_scale_q_lora": True, "mla_scale_kv_lora": True, "zero_expert_type": "identity"},
    # MiniCPM3-4B's config.json has no num_experts: upstream's MiniCPMDecoderLayer reads getattr(config,
    # "num_experts", 0) and builds its dense MLP for 0 (transformers' MiniCPM3MLP is dense); the bare read
    # in its MoE branch made the table's 4 experts a MoE model no MiniCPM3 checkpoint fits
    "minicpm3": {"num_experts": 0},
    # DeepSeek-V3's config.json sets topk_method "noaux_tc" and scoring_func "sigmoid", which neither
    # DeepseekV3Config spells; upstream registers gate.e_score_correction_bias only for noaux_tc and reads the
    # scoring with a "softmax" default, HF's DeepseekV3TopkRouter always holds the bias and scores with a sigmoid
    "deepseek_v3": {"topk_method": "noaux_tc", "scoring_func": "sigmoid"},
    # upstream's DeepseekV2MoE routes with grouped top-k always; DeepseekV2Config defaults n_group/topk_group
    # and num_experts_per_tok to None, every released config.json sets them (DeepSeek-V2-Lite: 1, 1 and 6 of
    # 64 experts, which the tiny config shrinks like every size)
    "deepseek_v2": {"n_group": 1, "topk_group": 1, "num_experts_per_tok": 6},
    # transformers 5's MiniMaxM2TopKRouter always scores with a sigmoid plus e_score_correction_bias (a buffer of
    # every checkpoint), which MiniMaxM2Config does not spell: MiniMax-M2's config.json carries both
    "minimax_m2": {"use_routing_bias": True, "scoring_func": "sigmoid"},
    # upstream's Qwen3-Omni thinker loads no talker tensors (its mapper drops "talker."); the thinker-only release
    # (Qwen3-Omni-30B-A3B-Thinking) says enable_audio_output false, so transformers builds no talker/code2wav
    # (4.57.6's talker also reads shared_expert_intermediate_size, which its Qwen3OmniMoeTalkerTextConfig lacks).
    # Its vision tower's image_size (the Qwen conversion script writes it from img_size; 768 = 48 patches of 16, the
    # grid of num_position_embeddings 2304) and apply_vit_abs_pos_embed (transformers' tower always adds its
    # pos_embed), which vLLM's tower reads and Qwen3OmniMoeVisionEncoderConfig lacks
    # QianfanOCR: transformers 5's QianfanOCRConfig keeps none of the InternVL fields upstream's InternVL parent and
    # QianfanOCR's processing info read bare (force_image_size, ps_version, select_layer, the dynamic-patch ones), so
    # a loadable checkpoint's config.json carries them: the internvl family's values (force_image_size None takes
    # the tower's image_size, what every released InternVL-family value equals; select_layer -1 is the config's
    # vision_feature_layer). Both sides read the same values
    "qianfan_ocr": {"force_image_size": None, "ps_version": "v2", "select_layer": -1, "dynamic_image_size": True,
                    "min_dynamic_patch": 1, "max_dynamic_patch": 12},
    # Qwen2.5-Omni's thinker (both vLLMs) drops every talker./token2wav. tensor (its mapper maps them to None), so a
    # checkpoint without them is one it loads alike; the released config.json says enable_audio_output true, for
    # which 4.57.6 builds the talker and token2wav at full size (sub-configs the tiny config does not shrink): the
    # pinned worker making the tiny checkpoint grew past 23 GB and was killed (signal 9), failing "import"
    "qwen2_5_omni": {"enable_audio_output": False},
    "qwen3_omni_moe": {"enable_audio_output": False, "thinker_config.vision_config.image_size": 768,
                       "thinker_config.vision_config.apply_vit_abs_pos_embed": True},
    # vLLM's lfm2.py (0.13.0 and upstream) builds the MLP over config.block_dim (0.13.0: block_ff_dim wide) and
    # the short conv over config.conv_dim, which neither transformers' Lfm2Config declares: LFM2's config.json
    # carries them, equal to what transformers' Lfm2MLP/Lfm2ShortConv build from (hidden_size; intermediate_size,
    # which Lfm2Config reads from block_ff_dim). Also a sub-config's: LFM2-VL's text_config is an Lfm2Config
    # upstream's FunAudioChatDiscreteEncoder embeds a codebook (nn.Embedding(codebook_size, ..., padding_idx=
    # int(pad_token_id))), which vLLM's FunAudioChatAudioEncoderConfig defaults to None: a checkpoint with
    # the discrete tower carries both. Small, like every size of the tiny config; the pad id a code of it
    "funaudiochat": {"audio_config.codebook_size": 16, "audio_config.pad_token_id": 0},
    # Cohere's ASR checkpoints (remote code, NeMo's layout) carry the Conformer encoder, the Transformer decoder and
    # the output head as NeMo config dicts, which upstream's cohere_asr.py reads (config.encoder["d_model"],
    # config.transf_decoder["config_dict"]["hidden_size"], config.head["num_classes"]) and transformers 5's
    # CohereAsrConfig does not declare (its encoder_config / hidden_size are another spelling). NeMo's Conformer
    # defaults (dw_striding by 8, rel_pos attention, untied biases, x-scaling, batch-norm convs); tiny: one encoder
    # layer over 32 mel features, the decoder at the tiny text sizes, the tiny vocabulary. The encoder has the decoder's
    # head count: upstream 0.33.0's ModelConfig refuses a CohereAsrConfig whose encoder n_heads differs from the
    # decoder's num_attention_heads ("Encoder and decoder must have the same number of kv heads",
    # model_arch_config_convertor), so its own class could not be built to judge the checkpoint's spelling
    "cohere_asr": {
        "encoder": {"feat_in": 32, "n_layers": 1, "d_model": 32, "feat_out": -1, "causal_downsampling": False,
                    "subsampling": "dw_striding", "subsampling_factor": 8, "subsampling_conv_channels": -1,
                    "ff_expansion_factor": 4, "self_attention_model": "rel_pos", "n_heads": T.HEADS,
                    "att_context_size": [-1, -1], "xscaling": True, "untie_biases": True, "pos_emb_max_len": 5000,
                    "conv_kernel_size": 9, "conv_norm_type": "batch_norm", "conv_context_size": None},
        "transf_decoder": {"config_dict": {"hidden_size": T.HIDDEN, "inner_size": T.INTERMEDIATE, "hidden_act": "relu",
                                           "num_attention_heads": T.HEADS, "max_sequence_length": 1024,
                                           "num_layers": T.LAYERS}},
        "head": {"num_classes": T.VOCAB, "hidden_size": T.HIDDEN}, "preprocessor": {"features": 32, "sample_rate": 16000},
        "sample_rate": 16000, "max_audio_clip_s": 30, "overlap_chunk_second": 5},
    # vLLM's chatglm.py reads config.original_rope unguarded (its note: GLM-4's checkpoints say true, CogAgent's
    # false), which its ChatGLMConfig does not declare; glm-4-9b's and GLM-4V-9B's config.json carry true. Their
    # config.json also say tie_word_embeddings false (a separate output_layer), which upstream's ChatGLMBaseModel
    # reads bare and transformers 5's PreTrainedConfig no longer defaults (4.57.6's default True tied it here)
    "chatglm": {"original_rope": True, "tie_word_embeddings": False},
    # the Llama bidirectional embedders / rerankers (nvidia/llama-nemotron-embed-1b-v2, llama-nemotron-rerank-1b-v2)
    # name their pooling in config.json ("avg"); upstream's LlamaBidirectionalConfig refuses a config without it
    **{arch: {"pooling": "avg"} for arch in ("LlamaBidirectionalModel", "LlamaBidirectionalForSequenceClassification")},
    # GLM-4.1V / GLM-4.5V rotate half of the text head (their config.json: text_config.partial_rotary_factor 0.5,
    # M-RoPE sections [8, 12, 12] of a 128 head), which both vLLMs' glm4.py default to and 4.57.6's Glm4v*TextConfig
    # leave None (the tiny sections covered the whole head: MRotaryEmbedding asserted); GLM-4.5V's text head_dim
    # (128) and its use_qk_norm (false), which both vLLMs read and Glm4vMoeTextConfig does not declare
    "glm4v": {"text_config.partial_rotary_factor": 0.5},
    "glm4v_moe": {"text_config.partial_rotary_factor": 0.5, "text_config.head_dim": 128,
                  "text_config.use_qk_norm": False},

    # ERNIE-4.5-VL's tower as baidu's released config.json spells it (remote-code DFNRopeVisionTransformerConfig:
    # embed_dim 1280 = hidden_size, mlp_ratio 4), which both vLLMs' ernie45_vl.py read (and assert equal) and
    # transformers 5's Ernie4_5_VLMoeVisionConfig does not declare; embed_dim shrinks with the tower
    # Its resampler's fields (baidu's config.json: pixel_hidden_size, spatial_conv_size, temporal_conv_size,
    # use_temporal_conv), which upstream's ernie45_vl.py reads at the top level and transformers 5's class does not
    # declare: transformers 5's own resampler (Ernie4_5_VLMoeVariableResolutionResamplerModel) takes the tower's
    # hidden_size, spatial_merge_size and temporal_merge_size for them and always merges in time; the image
    # placeholder id is its image_token_id
    "ernie4_5_vl_moe": {"vision_config.embed_dim": 1280, "vision_config.mlp_ratio": 4,
                        "pixel_hidden_size": {"=from": "vision_config.hidden_size"},
                        "spatial_conv_size": {"=from": "vision_config.spatial_merge_size"},
                        "temporal_conv_size": {"=from": "vision_config.temporal_merge_size"},
                        "use_temporal_conv": True, "im_patch_id": {"=from": "image_token_id"},
                        # the language model (upstream's ernie45_vl_moe.py) reads baidu's flat text fields from the
                        # top level, the MoE ones per modality ([text, vision]; ERNIE-4.5-VL-28B-A3B: 64 experts each,
                        # MoE from layer 1, expert widths [1536, 512], 2 shared experts): tiny, layer 0 dense then MoE
                        "rms_norm_eps": {"=from": "text_config.rms_norm_eps"},
                        "moe_num_experts": [T.EXPERTS, T.EXPERTS], "moe_layer_start_index": [1, 1],
                        "moe_layer_end_index": [T.LAYERS - 1, T.LAYERS - 1],
                        "moe_intermediate_size": [T.MOE_INTERMEDIATE, T.MOE_INTERMEDIATE // 2],
                        "moe_num_shared_experts": 2},

    # Voxtral is served from Mistral's params.json, whose audio encoder args both vLLMs' mistral.py turn into a
    # WhisperConfig audio_config with downsample_factor and the mel front end's window_size / hop_length /
    # sampling_rate (Voxtral-Mini-3B-2507's: 4, 50 Hz frames to 12.5 Hz; 400, 160, 16 kHz), which both vLLMs'
    # voxtral.py read unguarded and transformers' VoxtralEncoderConfig does not declare
    "voxtral": {"audio_config.downsample_factor": 4, "audio_config.window_size": 400, "audio_config.hop_length": 160,
                "audio_config.sampling_rate": 16000},
    # a realtime checkpoint's params.json has encoder_args.causal: both vLLMs' config loaders (upstream's mistral.py
    # _remap_mistral_audio_args) name it VoxtralRealtimeGeneration and give its audio_config is_causal, block_pool_size
    # (the downsample factor) and the encoder's pos_embed / sliding_window (Voxtral-Mini-4B-Realtime-2602: a causal
    # RoPE encoder, window 750, 128 mels); global_log_mel_max None (read unguarded; the file may not carry it); its
    # encoder_head_dim (the tiny tower's width over its heads) and RoPE positions (block_pool_size times the text's)
    "VoxtralRealtimeGeneration": {"audio_config.is_causal": True, "audio_config.block_pool_size": 4,
                                  "audio_config.pos_embed": "rope", "audio_config.sliding_window": 750,
                                  "audio_config.num_mel_bins": 128, "audio_config.global_log_mel_max": None,
                                  "audio_config.encoder_head_dim": T.VISION_HIDDEN // T.VISION_HEADS,
                                  "audio_config.max_position_embeddings": 4 * T.MAX_POSITIONS},

    # keyed by architecture: GLM-4V-9B is a chatglm checkpoint whose config.json adds the EVA2-CLIP tower's
    # vision_config (a plain dict upstream's glm4v.py reads as a Namespace), which ChatGLMConfig never fills in
    # (and a text-only ChatGLM refuses): its fields, tiny (4x4 patches of 14 pixels plus the class token,
    # the tiny tower geometry)
    # Clef-Flash is a Qwen3.5 checkpoint whose config.json adds joint_head_config, the keywords of upstream's
    # JointSchemaHead (clef_joint_schema.py); Qwen3_5Config has no such field. Tiny; hidden_size the text model's
    "ClefFlashForJointSchema": {"joint_head_config": {"hidden_size": T.HIDDEN, "width": 32, "routing_layers": 1,
                                                      "layers": 1, "heads": 2, "feedforward": 64}},
    # Intern-S1-Pro (internlm/Intern-S1-Pro's config.json) is a Qwen3-VL checkpoint whose text_config.rope_scaling
    # is Fourier rope: {"rope_type": "default", "fope_init_factor": 0.5, "fope_sep_head": true, "num_inv_freq": null},
    # and no mrope_section. Upstream's interns1_pro.py asserts a FoPE key there ("should use FOPE for InternS1Pro
    # model"); Qwen3VLTextConfig's default rope_scaling (None) built a model no Intern-S1-Pro checkpoint fits. Its
    # remote-code InternS1ProTextConfig holds tie_word_embeddings (False), which upstream reads from text_config
    # and transformers 5's Qwen3VLTextConfig does not declare
    # upstream's llama4_eagle.py serves dense drafts only (asserts len(config.moe_layers) == 0: "moe is not supported
    # by draft model yet", and its loader writes no fused expert), while Llama4DecoderLayer builds a MoE block where
    # (layer_idx + 1) % interleave_moe_layer_step == 0 (both vLLMs): a dense Llama 4 config holds step 0 next to its
    # empty moe_layers (transformers' Llama4TextConfig derives moe_layers from the step, so step 1 means every layer)
    "EagleLlama4ForCausalLM": {"interleave_moe_layer_step": 0},
    # the DFlash2 draft is built from its base class's Qwen3Config (not synthesized, so SYNTH_FAMILIES' qwen3_dflash2
    # entry never reached it: KeyError 'conv_kernel_size'); the same dflash_config
    "DFlash2DraftModel": {"dflash_config": _DFLASH2_CONFIG},
    # LiLiCorr (upstream's lilicorr.py, from sglang PR #37462) reads its correlator head's sizes from dflash_config
    # unguarded and checks them: a power-of-two candidate top-k of at most 16, heads dividing the width (a None
    # lilicorr_hidden_size is the draft's), a trained block_size above the speculative tokens (the harness's 1);
    # the DFlash2 convolution geometry, both or neither. Tiny
    "LiLiCorrDraftModel": {"dflash_config": {
        **_DFLASH2_CONFIG, "lilicorr_enabled": True, "block_size": 4, "lilicorr_hidden_size": None,
        "lilicorr_candidate_topk": 4, "lilicorr_num_heads": T.HEADS, "lilicorr_mlp_ratio": 2.0,
        "lilicorr_factor_dim": 16, "lilicorr_vector_eps": 1e-6, "lilicorr_logit_scale": 1.0, "lilicorr_num_layers": 1}},
    # StepVL's tower is upstream's PerceptionEncoder (step_vl.py), which reads the fields of upstream's
    # PerceptionEncoderConfig (vllm/transformers_utils/configs/step5.py: "the vision tower shared by Step3p7 and
    # Step5") unguarded: a checkpoint's vision_config carries them next to Step3VisionEncoderConfig's (which keeps
    # unknown keys as attributes on both sides). PerceptionEncoderConfig's defaults, the sizes tiny: output_dim
    # the width (its None reads as the width), mlp_ratio 8960 / 1536
    "StepVLForConditionalGeneration": {
        "vision_config.width": T.VISION_HIDDEN, "vision_config.heads": T.VISION_HEADS,
        "vision_config.layers": T.VISION_DEPTH, "vision_config.output_dim": T.VISION_HIDDEN,
        "vision_config.mlp_ratio": 8960 / 1536, "vision_config.ls_init_value": 0.1,
        "vision_config.use_abs_posemb": True, "vision_config.use_cls_token": False, "vision_config.use_rope2d": True,
        "vision_config.use_ln_pre": True, "vision_config.use_ln_post": False},
    # Intern-S1 is built here from InternVLConfig, whose top-level tie_word_embeddings is PretrainedConfig's True
    # while its text config's is False: upstream copies the top level over the text config of a multimodal model
    # (VllmConfig.with_hf_config, vllm/config/vllm.py) and tied lm_head to the embeddings, 0.13.0 reads the text
    # config's and left lm_head unloaded (NaN: 'logits are not finite'). Released Intern-S1 checkpoints ship an
    # lm_head (Qwen3 text models, untied), so the two levels agree there: False
    "InternS1ForConditionalGeneration": {"tie_word_embeddings": False},
    # Isaac's vLLM processor builds IsaacImageProcessor from the request kwargs alone, whose pixel_shuffle_scale
    # defaults to 2 (vllm/transformers_utils/processors/isaac.py), and counts grid / 4 placeholders per image; the
    # model merges by vision_config.pixel_shuffle_scale_factor, which IsaacConfig's defaults leave at 1 (its
    # pixel_shuffle_scale 1): the model's M-RoPE walk gave 4x the grid ('get_mrope_input_positions gave (3, 262)
    # for 76 tokens'). The released checkpoints' config.json set both to 2, the processor's
    "IsaacForConditionalGeneration": {"pixel_shuffle_scale": 2, "vision_config.pixel_shuffle_scale_factor": 2},
    "InternS1ProForConditionalGeneration": {"text_config.rope_scaling": {
        "rope_type": "default", "fope_init_factor": 0.5, "fope_sep_head": True, "num_inv_freq": None},
        "text_config.tie_word_embeddings": False},
    # Clef-Omni is a Qwen3-Omni checkpoint whose config.json adds the same joint_head_config as Clef-Flash (upstream's
    # clef_omni.py builds JointSchemaHead(**joint_head_config)); hidden_size the thinker's text model's, tiny
    "ClefOmniForJointSchema": {"joint_head_config": {"hidden_size": T.HIDDEN, "width": 32, "routing_layers": 1,
                                                     "layers": 1, "heads": 2, "feedforward": 64}},
    "GLM4VForCausalLM": {"vision_config": {
        "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "num_hidden_layers": 1, "in_channels": 3,
        "patch_size": 14, "image_size": 56, "num_positions": 17, "dropout_prob": 0.0, "hidden_act": "gelu",
        "layer_norm_eps": 1e-6, "scaling_factor": 8}},
    # Step3's config.json spells its MoE layers as one comma-separated string ("4,5,...,59"), which both vLLMs'
    # step3_text.py parse with moe_layers_enum.strip().split(","); the pinned Step3TextConfig defaults to a tuple,
    # which the tiny config.json wrote as a list (AttributeError 'list' object has no attribute 'strip', for the
    # pinned vLLM's own class too). The tiny 2 layers: one dense, then MoE, as the released leading dense layers
    "step3_text": {"moe_layers_enum": "1"},
    # Step3-VL's language model is built by name from text_config.architectures (init_vllm_registered_model): both
    # vLLMs' Step3TextConfig say ["Step3TextForCausalLM"] as a class attribute, which 4.57.6's PretrainedConfig
    # __init__ shadows with None when config.json has no such key (TypeError 'NoneType' object is not iterable, the
    # pinned vLLM's own Step3VLForConditionalGeneration too); a loadable checkpoint's text_config names it
    # Its MoE layers as step3_text's, one comma-separated string (the class default's tuple was written as a list)
    "step3_vl": {"text_config.architectures": ["Step3TextForCausalLM"], "text_config.moe_layers_enum": "1"},
    # TeleChat2's remote-code config spells the sizes GPT-2's way: upstream's telechat2.py replaces the LlamaConfig's
    # attribute_map with num_hidden_layers -> n_layer, num_attention_heads -> n_head, intermediate_size ->
    # ffn_hidden_size, rms_norm_eps -> layer_norm_epsilon, the fields Tele-AI/TeleChat2's config.json carries
    "TeleChat2ForCausalLM": {"n_layer": {"=from": "num_hidden_layers"}, "n_head": {"=from": "num_attention_heads"},
                             "ffn_hidden_size": {"=from": "intermediate_size"},
                             "layer_norm_epsilon": {"=from": "rms_norm_eps"}},
    # nomic-ai/nomic-embed-text-v1's config.json (remote code; transformers 5's NomicBertConfig keeps the 4.x names,
    # a checkpoint carries its own): GPT-2-style sizes, which upstream's NomicBertModelConfig copies into
    # hidden_size / intermediate_size / num_hidden_layers / layer_norm_eps, a SwiGLU MLP, no biases (it asserts
    # fc1 == fc2 == qkv), plain rope (it asserts no scale base, not interleaved)
    "nomic_bert": {"activation_function": "swiglu", "n_embd": {"=from": "hidden_size"},
                   "n_inner": {"=from": "intermediate_size"}, "n_layer": {"=from": "num_hidden_layers"},
                   "layer_norm_epsilon": {"=from": "layer_norm_eps"}, "qkv_proj_bias": False, "mlp_fc1_bias": False,
                   "mlp_fc2_bias": False, "rotary_emb_scale_base": None, "rotary_emb_interleaved": False},
    # the GTE checkpoints (Alibaba-NLP's "new" remote code, Snowflake's arctic-embed-m-v2.0) say
    # position_embedding_type "rope", which transformers 5's GteConfig drops (its GteModel always rotates);
    # upstream's bert_with_rope.py refuses any other
    "gte": {"position_embedding_type": "rope"},
    # Lfm2Config's default layer_types (no full_attn_idxs: every layer attention) describe no release: the
    # released LFM2s (LFM2-350M/1.2B: full_attn_idxs [2, 5, 8, 10, 12, 14] of 16) start with short-conv layers;
    # from the defaults the tiny model had no ShortConv at all
    "lfm2": {"block_dim": {"=from": "hidden_size"}, "conv_dim": {"=from": "hidden_size"},
             "block_ff_dim": {"=from": "intermediate_size"},
             "layer_types": ["full_attention" if i in (2, 5, 8, 10, 12, 14) else "conv" for i in range(16)]},
    # DeepseekVLV2Config's __init__ defaults tile_tag to the string "tile_tag" (its class attribute says "2D"), which
    # both vLLMs' deepseek_vl2.py / deepseek_ocr.py refuse ("Only 2D tile_tag is supported"); every released
    # config.json (deepseek-vl2-tiny, DeepSeek-OCR, DeepSeek-OCR-2, Unlimited-OCR) says "2D". Its text_config is
    # built from the key language_config only, which those config.json files carry (a DeepSeek-V2 config) and
    # to_dict never writes: without it the reloaded text model was DeepseekV2Config's full-size defaults, with no
    # architectures to build it by. Its MoE routes in one group (n_group / topk_group 1, as the released DeepSeek-V2
    # family's config.json); DeepseekV2Config's None left 0.13.0's grouped top-k asserting at construct. Each token
    # goes to num_experts_per_tok experts, which every released language_config sets (6 of 64) and DeepseekV2Config
    # defaults to None (topk(k=None) failed the forward on both vLLMs once the checkpoint was named): the tiny 2 of 4
    **{mt: {"tile_tag": "2D", "language_config": {"=from": "text_config"}, "language_config.n_group": 1,
            "language_config.topk_group": 1, "language_config.num_experts_per_tok": T.EXPERTS_PER_TOKEN}
       for mt in ("deepseek_vl_v2", "deepseek_ocr", "deepseek_ocr2", "unlimited-ocr")},
    # DeepSeek-OCR(-2)'s projector is a linear layer from its towers' fixed widths (both vLLMs build them with no
    # config: SAM-B 1024 + CLIP-L 1024 concatenated; OCR-2's Qwen2 encoder 896, deepencoder2.py) into the language
    # model, as their released config.json say (projector_type "linear", input_dim 2048 / 896, n_embed 1280, the
    # language model's width). MlpProjectorConfig's defaults are DeepSeek-VL2's (downsample_mlp_gelu from a 1152-wide
    # SigLIP into 2048): the image forward failed "(64x8192 and 4608x2048)" on the projector. Tiny: into the tiny width
    "DeepseekOCRForCausalLM": {"projector_config.projector_type": "linear", "projector_config.input_dim": 2048,
                               "projector_config.n_embed": T.HIDDEN},
    # DeepSeek-OCR-2's model binds its pixels' side to vision_config.image_size, its processor's fixed BASE_SIZE 1024
    # (runtime_mm.FIXED_GEOMETRY_ARCHS keeps it unshrunk); VisionEncoderConfig's default is 384
    "DeepseekOCR2ForCausalLM": {"projector_config.projector_type": "linear", "projector_config.input_dim": 896,
                                "projector_config.n_embed": T.HIDDEN, "vision_config.image_size": 1024},
    # Unlimited-OCR: DeepSeek-OCR's vision stack and linear projector (upstream's unlimited_ocr.py: "the exact
    # DeepSeek-OCR (gundam, base_size=1024 ...) vision stack ... followed by a linear MLP projector"); the pinned
    # deepseek_ocr.py it builds on binds the pixels' side to vision_config.image_size, the processor's BASE_SIZE 1024
    # (runtime_mm.FIXED_GEOMETRY_ARCHS keeps it unshrunk; VisionEncoderConfig's default 384 would refuse it too)
    "UnlimitedOCRForCausalLM": {"projector_config.projector_type": "linear", "projector_config.input_dim": 2048,
                                "projector_config.n_embed": T.HIDDEN, "vision_config.image_size": 1024},
    # Cohere Compass (North): upstream's CohereCompassAttention reads its rope per layer type
    # (config.rope_parameters.get(layer_type); a layer type without one is NoPE) and transformers 5's
    # CohereCompassTextConfig keeps what config.json nests so (it drops a flat rope_theta then). Its defaults hold
    # no rope at all, and the flat M-RoPE sections the tiny config added came with rope_theta None, which transformers
    # 5's strict config refused on both sides. Tiny: the default full-attention layers rotate with M-RoPE over the
    # tiny head (16: sections of 8), theta the synthesis table's
    "cohere_compass": {"text_config.rope_parameters": {"full_attention": {
        "rope_type": "default", "rope_theta": _ROPE["rope_theta"], "mrope_section": [2, 3, 3]}}},
    # ColQwen3.5: upstream's ColQwen3_5Config refuses a checkpoint that does not declare its attention
    # (retrieval_attention_contract 'causal' or 'bidirectional', on the config or its text config) and makes every
    # config follow it. Tiny: bidirectional, the one that differs from a decoder's default, so a pinned side that
    # ignores the declaration shows (causal would agree with it either way)
    "ColQwen3_5": {"retrieval_attention_contract": "bidirectional"},
    # Decision 3.0 (upstream's d3.py): a released checkpoint is a Qwen3_5Model config.json plus decision_config.json,
    # which upstream's Qwen3_5 arch-config convertor reads into hf_config.decision_config (and upstream's
    # D3ForSequenceClassificationConfig refuses a config without it). The tiny config holds the attribute itself
    # (its architectures name D3 already, so the convertor's Qwen3_5Model branch never runs): version 1, last-token
    # pooling, causal, four answer codes (more than the config's default 2 labels: upstream's hook makes the codes
    # the labels, a pinned side without the hook keeps 2, and that difference must show), their ids plain words
    "D3ForSequenceClassification": {"decision_config": {
        "format_version": 1, "pooling": "last", "attention_mode": "causal", "codes": ["A", "B", "C", "D"],
        "token_ids": [10, 11, 12, 13]}},
}
# fields transformers 5's class of a model type derives when a config.json lacks them, which the pinned class does
# not declare (model_type -> names): a released checkpoint's config.json does not carry them, so the tiny config leaves
# them absent as well, where the completion would set a table value. ModernBertConfig (transformers 5) derives
# layer_types from global_attn_every_n_layers (ModernBERT's config.json field); the pinned vLLM's modernbert.py reads
# layer_types only when present (its "Transformers v5" branch, which then indexes rope_parameters per layer type, a
# dict only transformers 5 builds): the table's layer_types sent the pinned class down a path no checkpoint takes.
# sliding_window is its property over local_attention; the migration derives both on 4.57.6's class (P39), which a
# table value would bypass
TF5_DERIVED: dict[str, tuple[str, ...]] = {
    "modernbert": ("layer_types", "sliding_window"),
}
# the class name of an architecture's remote-code config, which a synthesized config takes: both vLLMs' config
# fix-ups assert it (GteNewModelConfig: `config.__class__.__name__ == "NewConfig"`, Alibaba-NLP/new-impl's
# configuration.NewConfig, which every GTE v1.5 checkpoint's auto_map loads; JinaRobertaModelConfig:
# "XLMRobertaFlashConfig", jinaai/xlm-roberta-flash-implementation's, for a rotary one)
SYNTH_CLASS_NAMES: dict[str, str] = {"GteNewModel": "NewConfig", "GteNewForSequenceClassification": "NewConfig",
                                     "ColBERTJinaRobertaModel": "XLMRobertaFlashConfig"}
# architectures no tiny config builds here, and why: said in the construct skip instead of the advice to pass a real
# config.json, which would not help. "evidence": (root, path, text) that the sources hold, root "upstream" (vLLM
# 0.33.0's source) or "tf5" (transformers 5's package) (tests/test_config_hints.py checks each)
SYNTH_BLOCKERS: dict[str, dict] = {
    # the chat model's tower is the checkpoint's C-RADIO, remote code built by AutoModel (the embedder and reranker
    # of the same file build vLLM's SigLIP and run: SYNTH_FAMILIES)
    "Llama_Nemotron_Nano_VL": {
        "why": "its vision tower is AutoModel.from_config(config.vision_config, trust_remote_code=...) (upstream's "
               "nemotron_vl.py LlamaNemotronVLChatModel._init_vision_model): the released checkpoint's C-RADIO tower "
               "is remote code, which neither transformers 4.57.6 nor 5.x has a class for; only the checkpoint's own "
               "code builds it",
        "evidence": [("upstream", "vllm/model_executor/models/nemotron_vl.py", "return AutoModel.from_config(")]},
    # transformers 5's class renames the released fields upstream reads
    "NemotronH_Omni_Reasoning_V3": {
        "why": "transformers 5's NemotronH_Omni_Reasoning_V3_Config (the only class of nemotron_h_omni, upstream's "
               "and the bridge's) declares no patch_size (so its defaults have none; a config.json's is kept) and "
               "renames the released vit_hidden_size to vision_hidden_size (and llm_config, sound_config to "
               "text_config, audio_config: _legacy_field_names), while upstream's nano_nemotron_vl.py reads "
               "config.vit_hidden_size unguarded: built from a released config.json, the class has no "
               "vit_hidden_size (checked: vit_hidden_size=384 gives vision_hidden_size 384 and no vit_hidden_size), so "
               "upstream's own class builds from none with transformers 5 either",
        "evidence": [("tf5", "transformers/models/nemotron_h_omni/configuration_nemotron_h_omni.py",
                      '"vit_hidden_size": "vision_hidden_size"'),
                     ("upstream", "vllm/model_executor/models/nano_nemotron_vl.py", "vit_hidden_size = config.vit_hidden_size"),
                     ("upstream", "vllm/model_executor/models/nano_nemotron_vl.py", "patch_size = config.patch_size")]},
    # a ViT-H neck: nothing smaller builds
    "NemotronParseForConditionalGeneration": {
        "why": "its encoder neck hard-codes the widths of RADIO's vit_huge_patch16_224 (nemotron_parse.py: "
               "nn.Conv1d(1280, ...) and a projection from 3840): only the full 32 x 1280 tower (about 630M "
               "parameters) builds it, which a tiny config cannot shrink and this shared CPU harness does not build",
        "evidence": [("upstream", "vllm/model_executor/models/nemotron_parse.py", "nn.Conv1d(1280, last_hidden_state, 1)")]},
    # construct loads the checkpoint's processor
    "OpenPanguVLForConditionalGeneration": {
        "why": "its construct builds the checkpoint's Hugging Face processor (openpangu_vl.py: "
               "MULTIMODAL_REGISTRY.create_processor(model_config).info.get_hf_processor().image_processor, "
               "AutoProcessor from the checkpoint directory; the released one is remote code), which no tiny "
               "checkpoint directory holds",
        "evidence": [("upstream", "vllm/model_executor/models/openpangu_vl.py", "MULTIMODAL_REGISTRY.create_processor(")]},
}
# what a match of an architecture here leaves out, and why no input or config built here reaches it: said in the
# architecture's notes ("not covered by this match"), so a pass is read for what it compares. "evidence" as
# SYNTH_BLOCKERS; "absent": (root, path, text) the sources do not hold (tests/test_config_hints.py checks both)
UNEXERCISED: dict[str, dict] = {
    "NemotronHPuzzleForCausalLM": {
        "why": "the Puzzle per-layer path (block i's own intermediate size, experts, heads): upstream's nemotron_h.py "
               "enters it only through config.get_nemotron_h_config_for_layer(i) (its MLP, MoE and attention layers; "
               "nemotron_h_mtp.py's mtp_n_routed_experts too), a method of the released checkpoint's remote-code "
               "config (model_type nemotron_h_puzzle) that no class here defines (transformers 5.20.2's "
               "NemotronHConfig, the plugin's bridge of it, upstream vLLM 0.33.0's configs): block_configs in a "
               "config.json are read by no code on either side (upstream's _get_max_n_routed_experts only when "
               "n_routed_experts is unset, which NemotronHConfig's default never is), so this compares the "
               "homogeneous NemotronH path",
        "evidence": [("upstream", "vllm/model_executor/models/nemotron_h.py",
                      'getattr(config, "get_nemotron_h_config_for_layer", None)'),
                     ("upstream", "vllm/model_executor/models/nemotron_h_mtp.py", "self.config.mtp_n_routed_experts")],
        "absent": [("tf5", "transformers/models/nemotron_h/configuration_nemotron_h.py", "get_nemotron_h_config_for_layer"),
                   ("tf5", "transformers/models/nemotron_h/configuration_nemotron_h.py", "block_configs"),
                   ("upstream", "vllm/transformers_utils/config.py", "nemotron_h_puzzle")]},
    "Gemma4ForConditionalGeneration": {
        "why": "the image, video and audio paths (text prefill only). Image: transformers 4.57.6 has no Gemma 4 "
               "image processor, and the model's own needs the vendored transformers 5 TorchvisionBackend, which "
               "calls _set_attributes, absent from 4.57.6's BaseImageProcessor (P5, left); past it the image and "
               "video paths call torch.accelerator.get_memory_info (gemma4_mm.py, both encoders), absent from the "
               "pinned torch 2.9.0 (P47, left: AttributeError on any device), which a harness stand-in would hide. "
               "On the reference side torch 2.14's CPU build raises there too; a stand-in would be value-free for "
               "one image (_encoder_chunk returns at least 1 on every path and one bucketed image is encoded "
               "min(1, chunk) = 1 at a time), but there is no pinned image run to compare it with. Audio: the "
               "harness feeds audio to encoder-decoder models only. The vision and audio towers are compared in "
               "both transformers on the same weights by tests/test_tf5_towers.py",
        "evidence": [("upstream", "vllm/model_executor/models/gemma4_mm.py", "free, total = torch.accelerator.get_memory_info()"),
                     ("upstream", "vllm/model_executor/models/gemma4_mm.py", "return max(1, budget // cost) if cost > 0 else 1"),
                     ("tf5", "transformers/image_processing_utils.py", "def _set_attributes(")]},
}
# always in a synthesized config: vLLM's ModelConfig reads them whatever the model file does, and
# the pinned side reads rope_theta/rope_scaling where upstream reads rope_parameters
CORE = ("hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "vocab_size",
        "intermediate_size", "max_position_embeddings", "rms_norm_eps", "hidden_act", "tie_word_embeddings",
        "rope_theta", "rope_scaling", "rope_parameters")
# a found class keeps its own rope spelling (transformers 4.57.6 configs carry rope_theta/rope_scaling)
ROPE_KEYS = ("rope_theta", "rope_scaling", "rope_parameters")
# name patterns valued when no exact entry does, first match wins (booleans off, small sizes)
SYNTH_PATTERNS: tuple[tuple[str, object], ...] = (
    (r"^(use|enable|is|apply|has)_\w+$", False),
    (r"_bias$", False),
    (r"_(eps|epsilon)$", 1e-6),
    (r"_dropout$", 0.0),
    (r"(expert|moe|shared)\w*_intermediate_size$", T.MOE_INTERMEDIATE),
    (r"intermediate_size$", T.INTERMEDIATE),
    (r"_head_dim$", 16),
    (r"scaling_factor$", 1.0),
    (r"(score|scoring)_func$", "softmax"),
    (r"^n(um)?_\w*experts_per_tok$", T.EXPERTS_PER_TOKEN),
    (r"^n(um)?_\w*experts$", T.EXPERTS),
    (r"^need_\w+$", False),
)


# a field upstream reads that a config class spells its own way: taken from the class's own field,
# so both sides describe one checkpoint (transformers 5's HYV3Config holds hy_v3's expert size as
# moe_intermediate_size and its dense-then-MoE layout as mlp_layer_types, upstream reads
# expert_hidden_dim and first_k_dense_replace): name -> (the class's field, the leading value counted
# for a per-layer list, or None for the same value)
EQUIVALENTS: dict[str, tuple[str, str | None]] = {
    "expert_hidden_dim": ("moe_intermediate_size", None),
    "first_k_dense_replace": ("mlp_layer_types", "dense"),
    # an EAGLE head over the whole vocabulary: upstream's llama_eagle.py sets draft_vocab_size to the vocab_size
    # when a checkpoint does not carry a truncated one (llama4_eagle reads it unguarded)
    "draft_vocab_size": ("vocab_size", None),
}


def _read_value(name: str, read: dict) -> object:
    """The table's value of a read, or the kinds of layer the code builds (one of each, in its order)."""
    return list(read["kinds"]) if read.get("kinds") else synth_value(name)


def synth_value(name: str) -> object:
    """The synthesized value of attribute ``name``, or MISSING; pure."""
    if name in SYNTH_VALUES:
        return SYNTH_VALUES[name]
    for pattern, value in SYNTH_PATTERNS:
        if re.search(pattern, name):
            return value
    return MISSING


# ------------------------------------------------------------------------------ config reads


def _is_config(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in CONFIG_NAMES
    return isinstance(node, ast.Attribute) and node.attr in CONFIG_NAMES


def _literal(node: ast.AST) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return MISSING


def config_reads(source: str) -> dict[str, dict]:
    """Attributes ``source`` reads from a Hugging Face config: name -> ``{"default": literal or
    MISSING (read without one), "indexed": subscripted/iterated, "guarded": tested with hasattr,
    "asserted": a name the code asserts true, "only": the one value the code asserts it has (:func:`_asserted_values`)}``;
    pure. A read without default anywhere wins over one with a default."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out: dict[str, dict] = {}
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def add(name: str, default: object, node: ast.AST) -> None:
        parent = parents.get(node)
        indexed = isinstance(parent, ast.Subscript) and parent.value is node or \
            isinstance(parent, (ast.For, ast.comprehension)) and parent.iter is node
        cur = out.setdefault(name, {"default": default, "indexed": False})
        if default is MISSING:
            cur["default"] = MISSING
        else:  # some read says what the field's absence means (gemma4: getattr(config, "num_experts", None))
            cur["defaulted"] = True
        cur["indexed"] = cur["indexed"] or indexed

    required = _raised_if_absent(tree)
    kinds = _layer_kinds(tree)
    asserted = set()  # assert self.use_moe_router_bias: a flag the code supports only set (Step-3.5)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            test = node.test.left if isinstance(node.test, ast.Compare) and len(node.test.ops) == 1 and \
                isinstance(node.test.ops[0], (ast.Is, ast.Eq)) and _literal(node.test.comparators[0]) is True \
                else node.test
            if isinstance(test, (ast.Attribute, ast.Name)):
                asserted.add(test.attr if isinstance(test, ast.Attribute) else test.id)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_config(node.value) and node.attr not in NOT_FIELDS \
                and not node.attr.startswith("_") and isinstance(node.ctx, ast.Load):
            parent = parents.get(node)
            if isinstance(parent, ast.Call) and parent.func is node:
                continue  # a method call (config.get_text_config())
            add(node.attr, MISSING, node)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                and isinstance(node.value.value, ast.Attribute) and node.value.value.attr == "per_layer_config" \
                and _is_config(node.value.value.value):
            # one layer's view of the config (config.per_layer_config[i].head_dim): a read of the field itself
            add(node.attr, MISSING, node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") \
                and len(node.args) >= 2 and _is_config(node.args[0]) and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str):
            if node.func.id == "hasattr":  # optional: absent takes the other branch
                entry = out.setdefault(node.args[1].value, {"default": MISSING, "indexed": False})
                if node not in required:  # `if not hasattr(config, X): raise`: X is required, not optional
                    entry["guarded"] = True
                continue
            default = _literal(node.args[2]) if len(node.args) > 2 else MISSING
            add(node.args[1].value, None if default is MISSING and len(node.args) > 2 else default, node)
    for name in asserted & set(out):
        out[name]["asserted"] = True
    for name, value in _asserted_values(tree).items():
        if name in out:
            out[name]["only"] = value
    for name in _uniform_fields(tree):
        if name in out:
            out[name]["uniform"] = True
    for name, values in kinds.items():
        if name in out:
            out[name]["kinds"] = values
    return out


def _asserted_values(tree: ast.AST) -> dict[str, object]:
    """Config fields the code asserts a single value of (llama4_eagle: ``assert self.config.yoco_global_kv_layer
    is None``, ``assert len(self.config.moe_layers) == 0``; bailing_moe_v3: ``if not getattr(config, "no_kda_lora",
    False): raise``, zamba2: ``if config.hidden_act != "gelu": raise``): name -> that value, the only one upstream
    builds the model with, so every checkpoint it serves carries it; pure."""
    out: dict[str, object] = {}
    for node in ast.walk(tree):  # `assert config.tie_word_embeddings` (Cohere Compass): only true is served
        test = node.test if isinstance(node, ast.Assert) else None
        negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
        attr = test.operand if negated else test
        if isinstance(attr, ast.Attribute) and _is_config(attr.value):
            out.setdefault(attr.attr, not negated)
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.Assert) else None
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Is, ast.Eq))):
            continue
        left, value = test.left, _literal(test.comparators[0])
        if isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id == "len" \
                and len(left.args) == 1 and value == 0:
            left, value = left.args[0], []  # len(config.X) == 0: an empty list
        if isinstance(left, ast.Attribute) and _is_config(left.value) and (value is None or value == []):
            out[left.attr] = value
    for node in ast.walk(tree):  # a test whose branch only raises: what it refuses is not served
        if not (isinstance(node, ast.If) and node.body and all(isinstance(stmt, ast.Raise) for stmt in node.body)):
            continue
        test = node.test
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            name, value = _read_name(test.operand), True  # `if not getattr(config, "no_kda_lora", False): raise`
        elif isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.NotEq, ast.IsNot)):
            name, value = _read_name(test.left), _literal(test.comparators[0])  # `if config.hidden_act != "gelu"`
        else:
            continue
        if name is not None and value is not MISSING:
            out.setdefault(name, value)
    return out


def _uniform_fields(tree: ast.AST) -> set:
    """Per-layer config fields whose mixed values only raise (laguna_dflash: ``layer_types = getattr(config,
    "layer_types", None)`` ... ``if len(set(layer_types)) > 1: raise NotImplementedError``): every checkpoint
    upstream serves holds one value throughout, read directly or through a name bound to the read; pure."""
    out = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        bound = {n.targets[0].id: _read_name(n.value) for n in ast.walk(fn) if isinstance(n, ast.Assign)
                 and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name) and _read_name(n.value)}
        for node in ast.walk(fn):
            if not (isinstance(node, ast.If) and node.body and all(isinstance(st, ast.Raise) for st in node.body)):
                continue
            test = node.test
            if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Gt, ast.NotEq))
                    and _literal(test.comparators[0]) == 1 and _called(test.left, "len")
                    and _called(test.left.args[0], "set")):
                continue
            seq = test.left.args[0].args[0]
            name = _read_name(seq) or (bound.get(seq.id) if isinstance(seq, ast.Name) else None)
            if name:
                out.add(name)
    return out


def _called(node: ast.AST, func: str) -> bool:
    """``node`` is ``func(<one argument>)``."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == func \
        and len(node.args) == 1 and not node.keywords


def _read_name(node: ast.AST) -> str | None:
    """The field ``node`` reads from a config (``config.X``, ``getattr(config, "X"[, default])``), else None."""
    if isinstance(node, ast.Attribute) and _is_config(node.value):
        return node.attr
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
            and len(node.args) >= 2 and _is_config(node.args[0]) and isinstance(node.args[1], ast.Constant) \
            and isinstance(node.args[1].value, str):
        return node.args[1].value
    return None


def _raised_if_absent(tree: ast.AST) -> set:
    """``hasattr`` calls whose False branch only raises (hy_v3: ``if not hasattr(config,
    "first_k_dense_replace"): raise ValueError``): the attribute is required, not an option."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not) \
                and isinstance(node.test.operand, ast.Call) and node.body \
                and all(isinstance(stmt, ast.Raise) for stmt in node.body):
            out.add(node.test.operand)
    return out


def _layer_kinds(tree: ast.AST) -> dict[str, list[str]]:
    """Per-layer config lists the code looks up in a module-level dict of string keys
    (granitemoehybrid: ``ALL_DECODER_LAYER_TYPES[config.layer_types[i]]``): name -> those keys, the
    only values the model builds a layer for; pure."""
    tables = {}
    for stmt in getattr(tree, "body", []):
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else \
            stmt.target if isinstance(stmt, ast.AnnAssign) else None
        value = getattr(stmt, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Dict) and value.keys \
                and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys):
            tables[target.id] = [k.value for k in value.keys]
    out: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in tables \
                and isinstance(node.slice, ast.Subscript) and isinstance(node.slice.value, ast.Attribute) \
                and _is_config(node.slice.value.value):
            out.setdefault(node.slice.value.attr, tables[node.value.id])
    # or an if/elif chain over one layer's kind that raises on any other (AliceAI: ``if layer_type ==
    # "linear_attention": ... elif layer_type == "full_attention": ... else: raise``): ``X_type`` -> ``X_types``
    for node in ast.walk(tree):
        kinds, subject, branch = [], None, node
        while isinstance(branch, ast.If) and isinstance(branch.test, ast.Compare) and len(branch.test.ops) == 1 \
                and isinstance(branch.test.ops[0], ast.Eq) and isinstance(branch.test.comparators[0], ast.Constant) \
                and isinstance(branch.test.comparators[0].value, str):
            left = branch.test.left
            name = left.id if isinstance(left, ast.Name) else left.attr if isinstance(left, ast.Attribute) else None
            if name is None or not name.endswith("_type") or subject not in (None, name):
                break
            subject = name
            kinds.append(branch.test.comparators[0].value)
            branch = branch.orelse[0] if len(branch.orelse) == 1 else None
        if subject and len(kinds) > 1 and isinstance(branch, ast.Raise):
            out.setdefault(subject + "s", kinds)
    # or a match over one layer's entry of a config list whose wildcard case raises (DomynEdge: ``position_type =
    # config.position_layers[layer_idx]``, ``match position_type: case "rope": ... case "nope": ... case _: raise``)
    entries = {n.targets[0].id: n.value.value.attr for n in ast.walk(tree) if isinstance(n, ast.Assign)
               and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Subscript)
               and isinstance(n.value.value, ast.Attribute) and _is_config(n.value.value.value)}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Match) and isinstance(node.subject, ast.Name) and node.subject.id in entries
                and node.cases):
            continue
        *named, last = node.cases
        kinds = [c.pattern.value.value for c in named if isinstance(c.pattern, ast.MatchValue)
                 and isinstance(c.pattern.value, ast.Constant) and isinstance(c.pattern.value.value, str)]
        wildcard = isinstance(last.pattern, ast.MatchAs) and last.pattern.pattern is None
        if len(kinds) == len(named) > 1 and wildcard and all(isinstance(st, ast.Raise) for st in last.body):
            out.setdefault(entries[node.subject.id], kinds)
    return out


def synthesize(reads: dict[str, dict]) -> tuple[dict, list[str]]:
    """A tiny config from ``reads`` (:func:`config_reads`): the table's value where it has one; a
    name the code reads with a default or only under ``hasattr`` is left out; the names read
    without either that the table does not value are listed (sorted); pure."""
    cfg: dict = {}
    missing: list[str] = []
    for name, read in sorted(reads.items()):
        value = read["only"] if "only" in read else _read_value(name, read)
        if value is MISSING:
            # read with a default (each reader keeps its own: sarvam's "sigmoid" is not bailing_moe's None)
            # or hasattr-guarded (the code takes its branch for configs without it): left out
            if read["default"] is MISSING and not read.get("guarded"):
                missing.append(name)
            continue
        cfg[name] = True if value is False and read.get("asserted") else value
    for key in CORE:  # what vLLM itself reads (ModelConfig, get_rope): the pinned spelling of rope too
        cfg.setdefault(key, SYNTH_VALUES[key])
    for name in list(missing):  # a name another field values (draft_vocab_size: the whole vocab_size)
        field, leading = EQUIVALENTS.get(name, (None, None))
        if leading is None and field in cfg:
            cfg[name] = cfg[field]
            missing.remove(name)
    if isinstance(cfg.get("layer_types"), list):
        cfg["layer_types"] = cfg["layer_types"][: cfg.get("num_hidden_layers", T.LAYERS)]
    for name, read in reads.items():  # one value throughout where mixed ones only raise (laguna_dflash)
        if read.get("uniform") and isinstance(cfg.get(name), list) and cfg[name]:
            cfg[name] = [cfg[name][0]] * len(cfg[name])
    return cfg, missing


def _aliases() -> dict[str, list[str]]:
    """config class -> the aliases transformers 5's attribute_map adds to it (P40's table): a real
    config.json never carries them (it holds the fields they stand for), so the tiny config leaves them
    absent and a model file that reads one on the pinned class fails as it would on a real checkpoint."""
    from flagos_migrate.catalog.tables import ATTRIBUTE_ALIASES

    out: dict[str, set[str]] = {}
    for classes in ATTRIBUTE_ALIASES.values():
        for cls, aliases in classes.items():
            out.setdefault(cls, set()).update(aliases)
    return {cls: sorted(v) for cls, v in sorted(out.items())}


def completion(reads: dict[str, dict]) -> dict:
    """``{"fill": {name: value}, "indexed": [names], "equivalent": {name: [field, leading]}}``: table
    values for the attributes the file reads without a default, which the worker sets where a found
    config class lacks them (``num_nextn_predict_layers`` on DeepseekV3Config builds DeepSeek's MTP),
    or leaves None where the file indexes them (AfMoE's ``config.layer_types[i]``): every real
    config.json carries them. ``equivalent``: the class's own field to take such a value from first
    (:data:`EQUIVALENTS`); ``checkpoint``: :data:`CHECKPOINT_FIELDS`; pure."""
    fill = {}
    for name, read in sorted(reads.items()):
        value = _read_value(name, read)
        if value is not MISSING and read["default"] is MISSING and not read.get("guarded") and name not in ROPE_KEYS:
            fill[name] = True if value is False and read.get("asserted") else value
        elif name in EQUIVALENTS and read["default"] is MISSING and not read.get("guarded"):
            fill[name] = None  # only from the class's own field (no table value)
    return {"fill": fill, "indexed": sorted(n for n in fill if reads[n]["indexed"]),
            "defaulted": sorted(n for n in fill if reads[n].get("defaulted")),
            "only": {n: r["only"] for n, r in sorted(reads.items()) if "only" in r},
            "uniform": sorted(n for n, r in reads.items() if r.get("uniform")),
            "equivalent": {n: list(EQUIVALENTS[n]) for n in fill if n in EQUIVALENTS},
            "aliases": _aliases(),
            "checkpoint": {mt: dict(v) for mt, v in CHECKPOINT_FIELDS.items()},
            "tf5_derived": {mt: list(v) for mt, v in TF5_DERIVED.items()}}


# ------------------------------------------------------------------------------ drafts and bases


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _test_keys(test: ast.AST) -> tuple[list[str], list[str]]:
    """(model types, architectures) an ``if`` of ``hf_config_override`` compares against."""
    types: list[str] = []
    archs: list[str] = []
    for node in ast.walk(test):
        if not isinstance(node, ast.Compare):
            continue
        left = ast.unparse(node.left)
        values = [s for c in node.comparators for s in _strings(c)]
        if left.endswith("model_type"):
            types += values
        elif len(node.ops) == 1 and isinstance(node.ops[0], ast.In) \
                and ast.unparse(node.comparators[0]).endswith("model_type"):
            types += _strings(node.left)  # `"exaone4_5" in hf_config.model_type`: that model type and its kin
        elif "architecture" in left or left == "arch" or isinstance(node.left, ast.NamedExpr):
            archs += values
        elif any("architectures" in ast.unparse(c) for c in node.comparators):
            archs += _strings(node.left)
    for node in ast.walk(test):  # {"A", "B"}.intersection(... architectures ...)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "intersection":
            archs += _strings(node.func.value)
    return types, archs


def draft_bases(source: str) -> dict[str, dict]:
    """Draft architecture -> ``{"model_types", "architectures", "update"}`` from upstream's
    ``hf_config_override``: the base configs it is rewritten from; pure."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    fn = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "hf_config_override"), None)
    if fn is None:
        return {}
    alias: dict[str, set[str]] = {}  # model type -> the model types / architectures rewritten into it
    out: dict[str, dict] = {}
    for stmt in fn.body:
        if not isinstance(stmt, ast.If):
            continue
        types, archs = _test_keys(stmt.test)
        # a name bound in the branch (``architecture = "InternS2MobiusMTP" if is_mobius else ...``): its strings
        # (a dict's values only: mtp_arch_maps[arch] maps base architectures to their drafts)
        bound = {t.id: [x for v in n.value.values for x in _strings(v)] if isinstance(n.value, ast.Dict)
                 else _strings(n.value) for n in ast.walk(stmt) if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name)}
        for node in ast.walk(stmt):
            if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]).endswith(".model_type") \
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                alias.setdefault(node.value.value, set()).update(types + archs)
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
                    and node.args and isinstance(node.args[0], ast.Dict)):
                continue
            update: dict = {}
            drafts: list[str] = []
            for k, v in zip(node.args[0].keys, node.args[0].values):
                if not isinstance(k, ast.Constant):
                    continue
                if k.value == "architectures":
                    # an element that is a bound name, or a bound dict looked up (not names inside expressions:
                    # `"Qwen3_5MoeMTP" if is_moe else ...` tests is_moe, bound to model types)
                    elts = v.elts if isinstance(v, (ast.List, ast.Tuple)) else []
                    named = [e.id if isinstance(e, ast.Name) else e.value.id for e in elts
                             if isinstance(e, ast.Name) or isinstance(e, ast.Subscript) and isinstance(e.value, ast.Name)]
                    drafts = _strings(v) + [d for name in named for d in bound.get(name, ())]
                else:  # n_predict and the like are variables upstream: one draft layer here
                    lit = _literal(v)
                    update[k.value] = 1 if lit is MISSING else lit
            for d in drafts:
                entry = out.setdefault(d, {"model_types": [], "architectures": [], "update": update})
                entry["model_types"] += [t for t in types if t not in entry["model_types"]]
                entry["architectures"] += [a for a in archs if a not in entry["architectures"]]
    for entry in out.values():  # deepseek_mtp <- deepseek_v3, deepseek_v32 (and their aliases)
        todo = list(entry["model_types"])
        while todo:
            for src in sorted(alias.get(todo.pop(0), ())):
                kind = "architectures" if src[:1].isupper() else "model_types"
                if src not in entry[kind]:
                    entry[kind].append(src)
                    todo.append(src)
    return out


def _module_aliases(tree: ast.AST) -> dict[str, list[str]]:
    """Module-level names bound to a class or to a class wrapper's result (d3:
    ``_Base = as_seq_cls_model(Qwen3_5ForConditionalGeneration)``, also under ``if TYPE_CHECKING``):
    name -> the class names it stands for (the wrapper's bare-name arguments)."""
    out: dict[str, list[str]] = {}
    stack = list(getattr(tree, "body", []))
    while stack:
        stmt = stack.pop(0)
        if isinstance(stmt, (ast.If, ast.Try)):
            stack += stmt.body + stmt.orelse + [s for h in getattr(stmt, "handlers", []) for s in h.body]
            continue
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            continue
        value = stmt.value
        names = [value.id] if isinstance(value, ast.Name) else \
            [a.id for a in value.args if isinstance(a, ast.Name)] if isinstance(value, ast.Call) else []
        entry = out.setdefault(stmt.targets[0].id, [])
        entry += [n for n in names if n not in entry]
    return out


def class_ancestors(source: str, cls: str) -> list[str]:
    """Names of ``cls``'s base classes, nearest first, following bases defined in the same file and
    module-level aliases of a class (:func:`_module_aliases`); pure."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    defs = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    aliases = _module_aliases(tree)
    out: list[str] = []
    level = [cls]
    while level:
        nxt = []
        for c in level:
            bases = [ast.unparse(b).split(".")[-1] for b in getattr(defs.get(c), "bases", [])]
            for name in bases:
                for real in [name] + ([] if name in defs else aliases.get(name, [])):
                    if real not in out and real != cls and real not in ("Module", "object"):
                        out.append(real)
                        nxt.append(real)
        level = nxt
    return out



def composed_classes(source: str, cls: str) -> list[str]:
    """Classes ``cls`` builds inside itself from its own ``vllm_config`` (colbert's ColBERTModernBertModel:
    ``self.model = ModernBertModel(vllm_config=vllm_config, ...)``), in source order, through its bases defined in
    the same file: that class reads the very config the model is built from, so its config class is the
    checkpoint's when the model has none of its own (ColBERT checkpoints are BERT, ModernBERT, LFM2 ones). Only the
    whole ``vllm_config``: a part rebuilt around a sub-config (``vllm_config.with_hf_config(...)``) reads another
    config; pure."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    defs = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    out: list[str] = []
    for name in [cls] + class_ancestors(source, cls):
        for node in ast.walk(defs[name]) if name in defs else ():
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id[:1].isupper()):
                continue
            whole = any(k.arg == "vllm_config" and isinstance(k.value, ast.Name) and k.value.id == "vllm_config"
                        for k in node.keywords)
            if whole and node.func.id not in out and node.func.id != cls:
                out.append(node.func.id)
    return out

# ------------------------------------------------------------------------------ the tree


def _imported_models(source: str) -> list[str]:
    """Upstream model modules ``source`` imports from (an MTP file builds its base model's layers)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for n in tree.body:
        if isinstance(n, ast.ImportFrom) and n.module:
            mod = f"{MODELS_PKG}.{n.module}" if n.level == 1 else n.module  # from .bailing_moe import ...
            if mod.startswith(MODELS_PKG + ".") and mod not in out:
                out.append(mod)
    return out


# a draft model (MTP, EAGLE, ...) is built by vLLM's proposer with the target's VllmConfig and a
# speculative config that carries the draft's model config; such a class reads it unguarded
DRAFT_NAME = re.compile(r"MTP|Mtp|Eagle|EAGLE|DFlash|Dflash|DSpark|Dspark|Xpress|MultiTokenPredictor")
NEEDS_SPECULATIVE = re.compile(r"speculative_config\.draft_model_config|get_draft_quant_config|"
                               r"assert\s+(?:self\.)?(?:vllm_config\.)?speculative_config\s+is\s+not\s+None")


def _speculative_only() -> set:
    """Architectures upstream builds only through a speculative method (P38's table, every pinned version):
    drafts whatever their name (ExtractHiddenStatesModel)."""
    from flagos_migrate.catalog.tables import SPECULATIVE_ONLY

    return {a for methods in SPECULATIVE_ONLY.values() for archs in methods.values() for a in archs}


def speculative_method(arch: str, source: str, is_draft: bool, cls: str | None = None) -> str | None:
    """The speculative method a draft architecture is served with (``eagle3``/``eagle``/``mtp``),
    when upstream builds it only with a speculative config: a draft of ``hf_config_override``, or a
    draft-named class in a file that reads the draft's model config unguarded; else None; pure.
    ``cls``: the class upstream registers ``arch`` to, which names it when the architecture's own name
    does not (PeagleQwen3ForCausalLM -> Eagle3Qwen3ForCausalLM: an EAGLE-3 draft)."""
    name = arch if DRAFT_NAME.search(arch) or not cls else cls
    if not is_draft and not (DRAFT_NAME.search(name) and NEEDS_SPECULATIVE.search(source)):
        return None
    low = name.lower()
    return "eagle3" if "eagle3" in low else "eagle" if "eagle" in low else "mtp"


def _imported_deep(upstream, text: str, depth: int = 3) -> list[str]:
    """Model modules imported through the directly imported ones (up to ``depth`` levels), nearest
    first, without the direct imports."""
    direct = _imported_models(text)
    seen, level, out = set(direct), direct, []
    for _ in range(depth - 1):
        nxt = []
        for mod in level:
            for sub in _imported_models(upstream.text(mod) or ""):
                if sub not in seen:
                    seen.add(sub)
                    nxt.append(sub)
        out += nxt
        level = nxt
    return out


def hints_for(upstream, model: str, specs: list[dict]) -> dict[str, dict]:
    """Per spec id the worker's ``config_hints``, from the upstream tree (an ``Upstream``)."""
    text = upstream.text(f"{MODELS_PKG}.{model}") or ""
    drafts = draft_bases(upstream.text(SPECULATIVE) or "")
    sources = [text] + [upstream.text(m) or "" for m in _imported_models(text)]
    reads: dict[str, dict] = {}
    for src in reversed(sources):  # the model file's own reads win
        reads.update(_over(reads, config_reads(src)))
    # a synthesized config (no class at all) holds what every layer the model builds reads, also through a
    # module an imported one imports (glm4_moe_lite_mtp -> glm4_moe_lite -> deepseek_v2's MoE reads
    # moe_intermediate_size); a found class is completed from the direct imports only
    deep = dict(reads)
    for src in reversed([upstream.text(m) or "" for m in _imported_deep(upstream, text)]):
        for name, read in config_reads(src).items():
            deep.setdefault(name, read)
    synth0, missing0 = synthesize(deep)
    parts = subconfig_classes.sub_config_classes(
        sources + [upstream.text(m) or "" for m in _imported_deep(upstream, text)])
    tf5_types = _tf5_arch_model_types()
    out = {}
    bases_of, up_of, up_reg_of, remote_of = {}, {}, {}, {}
    for spec in specs:
        arch, cls = spec["architecture"], spec["class"]
        up = upstream.model_registry.get(arch)
        up_reg_of[arch] = up
        up_cls = up[1] if up else cls
        # the class the architecture is registered to (a peer), then its ancestors
        bases = ([up_cls] if up_cls != arch else []) + [b for b in class_ancestors(text, up_cls) if b != arch]
        # a base class upstream registers under another architecture name (ClefOmniForJointSchema subclasses
        # Qwen3OmniMoeThinkerForConditionalGeneration, registered as Qwen3OmniMoeForConditionalGeneration): that
        # architecture, after the class names, whose config the checkpoints of the subclass extend. Not those of the
        # class the architecture itself is registered to: those are its peers ("peers", after the plugin's bridges)
        bases += [a for b in list(bases) if b != up_cls for a, reg in sorted(upstream.model_registry.items())
                  if reg[1] == b and a != b and a != arch and a not in bases and not reg[0].startswith(TRANSFORMERS_BACKEND)]
        for base in list(bases):  # a base registered in another file brings its own bases (InternS2Mobius <-
            reg = upstream.model_registry.get(base)  # InternS2Preview, which subclasses Qwen3_5Moe there)
            if reg and reg[0] != f"{MODELS_PKG}.{model}":
                bases += [b for b in class_ancestors(upstream.text(reg[0]) or "", reg[1]) if b not in bases and b != arch]
        # a checkpoint naming its own remote-code config (P2 remote_config_first) is read by that class, not by a
        # base class's (Step3p7ForConditionalGeneration subclasses Step3VLForConditionalGeneration, whose Step3VLConfig
        # builds a Step3 text model; Step-3.7's config builds Step-3.5's): synthesized from what upstream reads
        remote = bool(set(tf5_types.get(arch, ())) & set(REMOTE_CONFIG_FIRST))
        if remote:
            bases = []
        remote_of[arch] = remote
        bases_of[arch], up_of[arch] = bases, up_cls
    for spec in specs:
        arch = spec["architecture"]
        bases = bases_of[arch]
        draft = drafts.get(arch)
        if draft:  # a base architecture's own bases (EagleMistralLarge3 <- MistralLarge3 <- DeepseekV3), kept apart too
            draft.setdefault("inherited", [])
            for base in list(draft["architectures"]):
                reg = upstream.model_registry.get(base)
                if reg:
                    more = [b for b in class_ancestors(upstream.text(reg[0]) or "", reg[1])
                            if b not in draft["architectures"]]
                    draft["architectures"] += more
                    draft["inherited"] += more
            # the target the same file registers, and its bases, after the draft's own: InternS2MobiusMTP is
            # rewritten from interns2_mobius (remote code), whose InternS2MobiusForConditionalGeneration is built
            # from Qwen3_5MoeConfig; the draft's own base Qwen3_5MoeMTP has no config of that name
            for other, other_bases in bases_of.items():
                if other != arch and other not in drafts:
                    draft["architectures"] += [b for b in [other, *other_bases] if b not in draft["architectures"]]
        family = family_values(model, arch)
        synth, missing, tower_classes = with_parts(*with_family(synth0, missing0, family), parts)
        out[spec["id"]] = {
            "bases": bases, "draft": draft, "composed": composed_classes(text, up_of[arch]),
            "speculative": speculative_method(arch, text, bool(draft) or arch in _speculative_only(), up_of[arch]),
            "synth": {"config": synth, "missing": missing, "reads": len(reads), "tower_classes": tower_classes,
                      "family": family, "remote_config": remote_of[arch],
                      "file": f"{MODELS_PKG}.{model}", "model_type": _synth_model_type(arch),
                      "class_name": SYNTH_CLASS_NAMES.get(arch),
                      "blocker": (SYNTH_BLOCKERS.get(arch) or {}).get("why")},
            "unexercised": (UNEXERCISED.get(arch) or {}).get("why"),
            "complete": completion(reads),
            # the model types transformers 5 maps the architecture to (nemotron_h_omni for
            # NemotronH_Omni_Reasoning_V3): a plugin bridge of one is the config a checkpoint names
            "tf5_model_types": list(tf5_types.get(arch, [])),
            # the other architectures upstream registers to the same class (Qwen2_5OmniModel and
            # Qwen2_5OmniForConditionalGeneration: one Qwen2_5OmniThinkerForConditionalGeneration): one class reads
            # one config, so a config class transformers maps a peer to builds this one too (not the Transformers
            # modeling backend, whose classes build any Hugging Face model from its own config)
            "peers": [a for a, reg in upstream.model_registry.items()
                      if a != arch and up_reg_of[arch] is not None and tuple(reg[:2]) == tuple(up_reg_of[arch][:2])
                      and not reg[0].startswith(TRANSFORMERS_BACKEND)],
        }
    return out


def _over(earlier: dict[str, dict], later: dict[str, dict]) -> dict[str, dict]:
    """``later``'s reads, which win over ``earlier``'s, except that a name ``later`` only tests with ``hasattr``
    stays required where a module the model builds reads it without a default (cohere_eagle tests
    ``hasattr(self.config, "layer_types")`` to prepend the target's; the commandr layers it builds read
    ``config.layer_types[i]``): the guard is not what makes it optional; pure."""
    out = {}
    for name, read in later.items():
        prev = earlier.get(name)
        if read.get("guarded") and read["default"] is MISSING and prev is not None and not prev.get("guarded") \
                and prev["default"] is MISSING:
            read = {**read, "guarded": False, "indexed": read["indexed"] or prev["indexed"]}
        out[name] = read
    return out


def _tf5_arch_model_types() -> dict[str, list[str]]:
    """transformers 5's architecture -> model types (its auto model mappings), or {} without its source."""
    try:
        from flagos_migrate.migrate.tf5_configs import Transformers5, open_transformers5

        src = open_transformers5()
        return Transformers5(src).arch_model_types if src is not None else {}
    except Exception:  # an unreadable wheel: the worker looks the config up without it
        return {}


def _synth_model_type(arch: str) -> str:
    """A model_type no real config uses, so nothing else claims the synthesized class."""
    return "mmf_synth_" + re.sub(r"[^a-z0-9]+", "_", arch.lower()).strip("_")
