"""Hand-written back-ports of upstream APIs that cannot be vendored (rule P22).

Some upstream APIs are not a helper to copy (P16) but a change in how the pinned vLLM itself
behaves: upstream's ``WeightsMapper(orig_to_new_stacked=...)`` only works because upstream's
loader passes shard ids on. Each back-port here is a small module in ``backport_sources/``,
written for the pinned vLLM and tested against it, that ``migrate_model.py apply`` installs into
``vllm_fl/compat/`` once a migrated file needs it; the migrated files' imports of the names it
shadows are then re-pointed there. The table is data: the analysis (finding hints), the plan
and the rewrite all read it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flagos_migrate.astutil import import_bindings
from flagos_migrate.catalog.tables import ENV_VARS

SOURCES = Path(__file__).resolve().parent / "backport_sources"


@dataclass(frozen=True)
class Backport:
    source: str  # file name in backport_sources/
    module: str  # where it lives in the plugin
    names: tuple[tuple[str, str], ...]  # (name, upstream module it is imported from), re-pointed together
    keywords: tuple[tuple[str, str], ...]  # (class, keyword) the pinned class rejects, the back-port takes
    what: str  # one line for plans and hints
    # (name, upstream module) whose import alone needs the back-port: upstream's class takes the same
    # call but behaves differently, and upstream models rely on it (they dropped the hand-written code)
    on_import: tuple[tuple[str, str], ...] = ()
    # plugin modules of other back-ports this one imports (installed along with it)
    requires: tuple[str, ...] = ()
    # environment variables it reads as upstream does: a file reading one through ``vllm.envs`` that the
    # pinned version lacks needs it (P3); its source gets the table written in
    env_vars: tuple[tuple[str, tuple[str, str]], ...] = ()
    # (class, attribute) the pinned class lacks and the back-port's subclass defines: reading
    # ``Class.attribute`` needs it (upstream's ``DispatchPooler.for_seq_cls``)
    members: tuple[tuple[str, str], ...] = ()
    # the shadowed names come from it only in the files that need it (a subclass or wrapper that is the pinned
    # callable unless given what it adds); the others keep the pinned import, so installing it re-points
    # nothing another migration wrote (stacked weights, by contrast: mappers and loaders come in pairs)
    local: bool = False
    # (name, upstream module) vendored from upstream (P16) whose definition builds a shadowed name with what
    # only the back-port takes (upstream's pooler_for_embed builds EmbeddingPoolerHead(head_dtype=, ...)): a
    # file importing it needs the back-port, which the vendored copy then imports the name from
    vendored_callers: tuple[tuple[str, str], ...] = ()
    # (shadowed name, method, keyword, what the pinned vLLM does instead, what meets it): a call the back-port
    # takes whose effect the pinned vLLM never consults keeps a warning (left for you)
    call_caveats: tuple[tuple[str, str, str, str, str], ...] = ()

    def shadowed(self) -> dict[str, str]:
        """Name -> the first module it is imported from (the pinned home of a shadowed class)."""
        out: dict[str, str] = {}
        for name, module in self.names:
            out.setdefault(name, module)
        return out

    def repoints(self, module: str, name: str) -> bool:
        return (name, module) in self.names

    def text(self) -> str:
        text = _source_text(self.source)
        if self.env_vars:
            rows = "".join(f"    {name!r}: {spec!r},\n" for name, spec in self.env_vars)
            text = text.replace("UPSTREAM_ENV_VARS: dict[str, tuple[str, str]] = {}",
                                "UPSTREAM_ENV_VARS: dict[str, tuple[str, str]] = {\n" + rows + "}", 1)
        return text


STACKED_WEIGHTS = Backport(
    "stacked_weights.py",
    "vllm_fl.compat.stacked_weights",
    (("WeightsMapper", "vllm.model_executor.models.utils"),
     ("AutoWeightsLoader", "vllm.model_executor.models.utils")),
    (("WeightsMapper", "orig_to_new_stacked"), ("WeightsMapper", "orig_to_new_regex")),
    "stacked weight mapping: WeightsMapper(orig_to_new_stacked=...) and a loader that passes shard ids",
    # upstream's AutoWeightsLoader renames KV-cache scales, ignores GPTQ biases, loads buffers, skips tied
    # aliases and cuts tuple shard ids; upstream models rely on that where 0.13.0's did it by hand
    (("AutoWeightsLoader", "vllm.model_executor.models.utils"),),
)

GATE_LINEAR = Backport(
    "gate_linear.py",
    "vllm_fl.compat.gate_linear",
    (("GateLinear", "vllm.model_executor.layers.fused_moe"),
     ("GateLinear", "vllm.model_executor.layers.fused_moe.router.gate_linear")),
    (),
    "MoE router gate: GateLinear as a ReplicatedLinear with an out_dtype for router logits",
)

_FM = "vllm.model_executor.layers.fused_moe"
FUSED_MOE_ROUTING = Backport(
    "fused_moe_routing.py",
    "vllm_fl.compat.fused_moe_routing",
    (),
    (),
    "upstream's MoE routing (grouped top-k, correction bias, scoring, routed scaling) and expert "
    "activations in plain torch, for the fused-MoE back-port",
)
FUSED_MOE = Backport(
    "fused_moe.py",
    "vllm_fl.compat.fused_moe",
    ((("FusedMoEFactory", _FM), ("FusedMoEFactory", _FM + ".layer"),
      ("fused_moe_make_expert_params_mapping", _FM), ("fused_moe_make_expert_params_mapping", _FM + ".layer"),
      ("MoERunner", _FM), ("MoERunner", _FM + ".runner.moe_runner"),
      ("RoutedExperts", _FM), ("RoutedExperts", _FM + ".routed_experts"),
      ("is_model_fused_shared_expert_compatible", _FM + ".utils"),
      ("resolve_layer_fused_shared_expert", _FM + ".utils"))),
    (),
    "fused-MoE construction: FusedMoEFactory/MoERunner (gate, shared experts, upstream routing) over the "
    "pinned FusedMoE, routed-expert checkpoint names and fused_moe_make_expert_params_mapping",
    requires=(FUSED_MOE_ROUTING.module,),
)

GDN_LINEAR_ATTN = Backport(
    "gdn_linear_attn.py",
    "vllm_fl.compat.gdn_linear_attn",
    (("QwenGatedDeltaNetAttention", "vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn"),),
    (),
    "Qwen gated-delta-net linear attention: upstream's constructor, forward and Qwen3.5's separate "
    "in_proj_qkv/z/b/a checkpoint layout over the pinned Qwen3NextGatedDeltaNet",
)

OLMO_GDN_LINEAR_ATTN = Backport(
    "olmo_gdn_linear_attn.py",
    "vllm_fl.compat.olmo_gdn_linear_attn",
    (("OlmoHybridGatedDeltaNetAttention", "vllm.model_executor.layers.mamba.gdn.olmo_gdn_linear_attn"),),
    (),
    "OLMo Hybrid gated-delta-net linear attention: upstream's projections (in_proj_qkvg, b_proj/a_proj, fused "
    "q/k/v conv1d), grouped q/k and gating (linear_allow_neg_eigval) over the pinned Qwen3NextGatedDeltaNet core",
)

BAILING_LINEAR_ATTN = Backport(
    "bailing_linear_attn.py",
    "vllm_fl.compat.bailing_linear_attn",
    (("BailingMoELinearAttention", "vllm.model_executor.layers.mamba.linear.bailing_linear_attn"),),
    (),
    "Bailing MoE V2.5 linear attention: upstream's query_key_value, q/k norm, RoPE and sigmoid-gated group "
    "RMSNorm over the pinned MiniMaxText01LinearAttention (lightning attention state, slopes and kernels)",
    requires=("vllm_fl.compat.rope",),  # its RoPE is upstream's get_rope, as every migrated file's
)

KIMI_GDN_LINEAR_ATTN = Backport(
    "kimi_gdn_linear_attn.py",
    "vllm_fl.compat.kimi_gdn_linear_attn",
    (("KimiGatedDeltaNetAttention", "vllm.model_executor.layers.mamba.gdn.kimi_gdn_linear_attn"),),
    (),
    "Kimi delta attention (AliceAI): upstream's in_proj_qkvgfab, fused q/k/v conv1d, 1-D A_log and forward "
    "contract over the pinned KimiDeltaAttention's state and kda_attention core (full-rank and bounded gates refused)",
)

# Bailing V3's KDA gate: upstream's fused_kda_gate(lower_bound=) bounded gate, which 0.13.0's kernel lacks
KDA_GATE = Backport(
    "kda_gate.py",
    "vllm_fl.compat.kda_gate",
    (("fused_kda_gate", "vllm.third_party.flash_linear_attention.ops.kda"),),
    (("fused_kda_gate", "lower_bound"),),
    "KDA gate: upstream's fused_kda_gate(lower_bound=) bounded gate (lower_bound * sigmoid(exp(A) * (g + bias)), "
    "torch) over the pinned softplus kernel",
    local=True,
)

SPARSE_MLA = Backport(
    "sparse_mla.py",
    "vllm_fl.compat.sparse_mla",
    (("SparseAttnIndexer", "vllm.model_executor.layers.sparse_attn_indexer"),
     ("SparseMLAIndexGroupBuilder", "vllm.v1.attention.backends.mla.index_group")),
    (),
    "DeepSeek V3.2 sparse MLA: SparseAttnIndexer over the pinned sparse_attn_indexer op (CUDA, FP8 path; "
    "the rest refused), SparseMLAIndexGroupBuilder refused (0.13.0's MLA wrapper takes no index groups)",
)

_MLA = "vllm.model_executor.layers.mla"
MLA = Backport(
    "mla.py",
    "vllm_fl.compat.mla",
    (("MLAModules", _MLA), ("MultiHeadLatentAttentionWrapper", _MLA)),
    (("MLAModules", "g_proj"), ("MLAModules", "index_group_builder"),
     ("MultiHeadLatentAttentionWrapper", "skip_topk"),
     ("MultiHeadLatentAttentionWrapper", "non_causal_multi_token_decode"),
     ("MultiHeadLatentAttentionWrapper", "allow_short_prefill_indexer_scoring_skip"),
     ("MultiHeadLatentAttentionWrapper", "fuse_qkv_rmsnorm")),
    "multi-head latent attention: upstream's MLAModules(g_proj=, index_group_builder=) and "
    "MultiHeadLatentAttentionWrapper keywords over the pinned wrapper (output gate, skip_topk; sparse index "
    "groups and non-causal multi-token decode refused)",
)

LAYER_NAME = Backport(
    "layer_name.py",
    "vllm_fl.compat.layer_name",
    (("_encode_layer_name", "vllm.utils.torch_utils"), ("_resolve_layer_name", "vllm.utils.torch_utils"),
     ("LayerNameType", "vllm.utils.torch_utils"), ("LayerName", "vllm.utils.torch_utils")),
    (),
    "layer names for custom ops: plain str, as upstream passes them on torch < 2.11 (the pinned torch)",
)

FUSED_MOE_KERNEL = Backport(
    "fused_moe_kernel.py",
    "vllm_fl.compat.fused_moe_kernel",
    (("dispatch_fused_moe_kernel", _FM + ".fused_moe"),),
    (),
    "dispatch_fused_moe_kernel: upstream's name for the pinned invoke_fused_moe_kernel (same parameters, "
    "same kernel choice)",
)

_HPC = "vllm.model_executor.layers.hpc"
HPC_ROPE_NORM = Backport(
    "hpc_rope_norm.py",
    "vllm_fl.compat.hpc_rope_norm",
    (("HpcRopeNorm", _HPC), ("HpcRopeNorm", _HPC + ".rope_norm"),
     ("QkNormPolicy", _HPC), ("QkNormPolicy", _HPC + ".rope_norm")),
    (),
    "HunYuan's fused HPC RoPE + QK-norm: support() is False as upstream's is without the HPC_ATTN attention "
    "backend (0.13.0 has none), so the model's plain rotary + norm path runs",
)

ACTIVATION = Backport(
    "activation.py",
    "vllm_fl.compat.activation",
    (("get_act_and_mul_fn", "vllm.model_executor.layers.activation"),),
    (),
    "activation layers by name: get_act_and_mul_fn with upstream's names the pinned registry lacks "
    "(gelu_pytorch_tanh, swish)",
    # the same call, fewer names on 0.13.0 (issue 13 class 6): the config's name decides at build time
    (("get_act_and_mul_fn", "vllm.model_executor.layers.activation"),),
)

# upstream's LayerNorm: a drop-in for nn.LayerNorm (elementwise_affine=, bias=, dtype=; parameters in the default
# dtype); 0.13.0's class of that name is another layer (dim, eps: float32 weight and bias, float32 compute)
LAYERNORM = Backport(
    "layernorm.py",
    "vllm_fl.compat.layernorm",
    (("LayerNorm", "vllm.model_executor.layers.layernorm"),),
    (),
    "LayerNorm: upstream's drop-in for nn.LayerNorm (elementwise_affine, bias, dtype); 0.13.0's class of that "
    "name always has float32 weight and bias and computes in float32",
    # the same name, another layer on 0.13.0: every import of it means upstream's
    (("LayerNorm", "vllm.model_executor.layers.layernorm"),),
)

ENVS = Backport(
    "envs.py",
    "vllm_fl.compat.envs",
    (),
    (),
    "vllm.envs plus upstream's environment variables the pinned version lacks, read with upstream's default "
    "and parser (P3 table env_vars)",
    env_vars=tuple(sorted(ENV_VARS.items())),
)

# not an upstream API: what a P7 `config_defaults` rewrite calls (installed when a migrated file imports it)
CONFIG_DEFAULTS = Backport(
    "config_defaults.py",
    "vllm_fl.compat.config_defaults",
    (),
    (),
    "config fields a pinned class reads unguarded, with upstream's default (with_config_defaults)",
)

# upstream's InputProcessingContext.get_merged_mm_kwargs (internvl, glm4v, interns1, skyworkr1v), what a P9
# unset_defaults rewrite calls (installed when a migrated file imports it)
MM_PROCESSOR_KWARGS = Backport(
    "mm_processor_kwargs.py",
    "vllm_fl.compat.mm_processor_kwargs",
    (),
    (),
    "upstream's get_merged_mm_kwargs: configured and request mm_processor_kwargs merged recursively by scope",
)

# multimodal processors marking embed positions by several ids (isaac, minicpmv and kin, mllama4, molmo2)
PROMPT_UPDATE_DETAILS = Backport(
    "prompt_update_details.py",
    "vllm_fl.compat.prompt_update_details",
    (("PromptUpdateDetails", "vllm.multimodal.processing"),
     ("PromptUpdateDetails", "vllm.multimodal.processing.processor")),
    (),
    "prompt updates: upstream's PromptUpdateDetails.select_token_ids over the pinned class",
    members=(("PromptUpdateDetails", "select_token_ids"),),
    local=True,
)

# upstream's default SupportsMultiModal.get_language_model over a marker's `targets=` (glm4v), what a P23
# written get_language_model calls (installed when a migrated file imports it)
LANGUAGE_MODEL = Backport(
    "language_model.py",
    "vllm_fl.compat.language_model",
    (),
    (),
    "upstream's default get_language_model: the marked targets' common prefix, else the first child with "
    "embed_input_ids",
)

# upstream's multimodal processor apply(inputs, timing_ctx) over the pinned apply(prompt, mm_data, ...): what a P7
# override_forms rewrite calls (installed when a migrated file imports it)
PROCESSOR_APPLY = Backport(
    "processor_apply.py",
    "vllm_fl.compat.processor_apply",
    (),
    (),
    "upstream's processor apply(inputs, timing_ctx) over the pinned apply(prompt, mm_data, ...): the inputs the "
    "pinned arguments carry; the token-id prompt and replaced items refused",
)

# back-ports nothing shadows: written when a migrated file imports them (a rewrite's call)
ON_IMPORT_ONLY: tuple[Backport, ...] = (CONFIG_DEFAULTS, MM_PROCESSOR_KWARGS, LANGUAGE_MODEL, PROCESSOR_APPLY)

# LFM2's short convolution (lfm2, lfm2_moe): upstream passes quant_config on to the two projections
SHORT_CONV = Backport(
    "short_conv.py",
    "vllm_fl.compat.short_conv",
    (("ShortConv", "vllm.model_executor.layers.mamba.short_conv"),),
    (("ShortConv", "quant_config"),),
    "LFM2 short convolution: the pinned ShortConv with upstream's quant_config reaching in_proj/out_proj",
)

_TOKWISE = "vllm.model_executor.layers.pooler.tokwise"
# ColBERT-style models (colmodernvbert, colqwen3, colqwen3_5, roberta's ColBERT head); token classifiers
# (qwen3_asr_forced_aligner, openai_privacy_filter, bert, roberta, qwen2_rm, internlm2, modernbert)
TOKEN_POOLER = Backport(
    "token_pooler.py",
    "vllm_fl.compat.token_pooler",
    (("pooler_for_token_embed", _TOKWISE), ("pooler_for_token_embed", _TOKWISE + ".poolers"),
     ("pooler_for_token_classify", _TOKWISE), ("pooler_for_token_classify", _TOKWISE + ".poolers")),
    (),
    "per-token poolers: upstream's pooler_for_token_embed(pooler_config, projector) as the pinned "
    "Pooler.for_token_embed with the model's projector on its head, pooler_for_token_classify(pooler_config) "
    "as the pinned Pooler.for_token_classify with upstream's default activation",
)

_POOLER = "vllm.model_executor.layers.pooler"
# pooling models built with upstream's factories (jamba's sequence classifier, bert, roberta, embedding_gemma2...)
DISPATCH_POOLER = Backport(
    "dispatch_pooler.py",
    "vllm_fl.compat.dispatch_pooler",
    (("DispatchPooler", _POOLER), ("DispatchPooler", _POOLER + ".special")),
    (),
    "pooler factories: upstream's DispatchPooler.for_embedding / for_seq_cls over the pinned poolers, as "
    "0.13.0's own models spell them out",
    members=(("DispatchPooler", "for_embedding"), ("DispatchPooler", "for_seq_cls")),
)

_SEQWISE = "vllm.model_executor.layers.pooler.seqwise"
# models passing their own pooler layers to upstream's sequence head (bert, modernbert) and upstream's
# pooler_for_embed / pooler_for_classify (lfm2's bidirectional embedder, vendored with the seqwise poolers)
SEQ_POOLER_HEADS = Backport(
    "seq_pooler_heads.py",
    "vllm_fl.compat.seq_pooler_heads",
    tuple((name, module) for name in ("EmbeddingPoolerHead", "ClassifierPoolerHead", "SequencePoolerHead",
                                      "SequencePoolerHeadOutput")
          for module in (_SEQWISE, _SEQWISE + ".heads")),
    (),
    "sequence pooler heads: upstream's EmbeddingPoolerHead(projector=, head_dtype=, activation=) and "
    "ClassifierPoolerHead (0.13.0's EmbeddingPoolerHead() takes none), the activation flag read from "
    "0.13.0's PoolingParams field for the task",
    vendored_callers=tuple((name, module) for name in ("pooler_for_embed", "pooler_for_classify")
                           for module in (_SEQWISE, _SEQWISE + ".poolers")),
)

_POOLER_COMMON = "vllm.model_executor.layers.pooler.common"
# upstream's poolers merge their methods' updates with `|` (vendored seqwise / tokwise poolers: LFM2's embedder,
# ModernBERT, jina); 0.13.0's class of that name has the field and apply() but no __or__
POOLING_PARAMS_UPDATE = Backport(
    "pooling_params_update.py",
    "vllm_fl.compat.pooling_params_update",
    (("PoolingParamsUpdate", _POOLER_COMMON), ("PoolingParamsUpdate", _POOLER)),
    (),
    "PoolingParamsUpdate: the pinned dataclass with upstream's `|` (a field asked for when either side asks); "
    "0.13.0's has no __or__ and upstream's poolers merge with |=",
    # the same name and field on 0.13.0, without the operator upstream's code uses: every import means upstream's
    (("PoolingParamsUpdate", _POOLER_COMMON), ("PoolingParamsUpdate", _POOLER)),
    # what a model imports whose vendored (P16) definition merges with |=: SequencePooler / TokenPooler and the
    # factories building them (LFM2's embedder imports pooler_for_embed)
    vendored_callers=tuple((name, module) for kind, names in (
        ("seqwise", ("SequencePooler", "pooler_for_embed", "pooler_for_classify")),
        ("tokwise", ("TokenPooler", "pooler_for_token_embed", "pooler_for_token_classify")))
        for name in names for module in (f"{_POOLER}.{kind}", f"{_POOLER}.{kind}.poolers")),
)

# RoBERTa's BGE-M3 embedder: upstream's wrappers over other poolers (filter BOS/EOS rows, dense + sparse concatenated)
SPECIAL_POOLERS = Backport(
    "special_poolers.py",
    "vllm_fl.compat.special_poolers",
    tuple((name, module) for name in ("BOSEOSFilter", "BgeM3Pooler") for module in (_POOLER, _POOLER + ".special")),
    (),
    "pooler wrappers: upstream's BOSEOSFilter (drops the BOS / EOS rows of per-token outputs) and BgeM3Pooler "
    "(dense embedding + sparse weights) over the pinned poolers and metadata",
    requires=(POOLING_PARAMS_UPDATE.module,),
)

_MINIMAX_NORM = "vllm.model_executor.layers.minimax_rms_norm"
# MiniMax-M2: upstream moved the layer and gave it K-norm sharding keywords and forward_qkv
MINIMAX_RMS_NORM = Backport(
    "minimax_rms_norm.py",
    "vllm_fl.compat.minimax_rms_norm",
    (("MiniMaxText01RMSNormTP", _MINIMAX_NORM), ("MiniMaxText01RMSNormTP", _MINIMAX_NORM + ".rms_norm_tp")),
    (("MiniMaxText01RMSNormTP", "weight_shard_world_size"), ("MiniMaxText01RMSNormTP", "weight_shard_rank")),
    "MiniMax TP RMSNorm: the pinned MiniMaxText01RMSNormTP with upstream's weight_shard_world_size/rank and "
    "forward_qk/forward_qkv",
    members=(("MiniMaxText01RMSNormTP", "forward_qk"), ("MiniMaxText01RMSNormTP", "forward_qkv")),
)

# upstream's QKVParallelLinear(v_head_size=): V heads of another size than Q/K (MiMo-V2-Flash)
# upstream's get_rope rope types 0.13.0 lacks ("proportional": Gemma 4; "bailing_mrope": Bailing MoE V3 VL; FoPE,
# which 0.13.0 silently builds as plain RoPE: InternS1-Pro) or computes otherwise from keys of the checkpoint's config.json (YaRN's scale from
# attention_factor / mscale / mscale_all_dim: Ministral 3; dynamic NTK's base; rope_dim; DeepSeek YaRN's attn_factor),
# the rest handed to the pinned get_rope unchanged. Which of those a checkpoint has is not in the model file, so
# every import of get_rope needs it (on_import)
_ROPE_MODULE = "vllm.model_executor.layers.rotary_embedding"
ROPE = Backport(
    "rope.py",
    "vllm_fl.compat.rope",
    (("get_rope", _ROPE_MODULE),),
    (),
    "rotary embeddings: upstream's get_rope for the rope types the pinned one lacks (Gemma 4's proportional "
    "RoPE, Bailing V3 VL's bailing_mrope, InternS1-Pro's FoPE) or computes otherwise (YaRN's attention_factor, mscale / mscale_all_dim, also "
    "with M-RoPE; dynamic NTK; rope_dim; DeepSeek YaRN's attn_factor), the pinned get_rope for the rest",
    on_import=(("get_rope", _ROPE_MODULE),),
    local=True,
)

QKV_LINEAR = Backport(
    "qkv_linear.py",
    "vllm_fl.compat.qkv_linear",
    (("QKVParallelLinear", "vllm.model_executor.layers.linear"),),
    (("QKVParallelLinear", "v_head_size"),),
    "fused QKV projection: the pinned QKVParallelLinear with upstream's v_head_size (V heads of another size, "
    "loaded at upstream's offsets; unquantized only)",
    local=True,
)

_MM_ATTN = "vllm.model_executor.layers.attention"
# upstream's ViT attention: metadata class methods its encoders call (qwen2_5_vl, pixtral, qwen3_vl...) and a
# forward taking sequence_lengths (FlashInfer only), which 0.13.0's layer rejects
MM_ENCODER_ATTENTION = Backport(
    "mm_encoder_attention.py",
    "vllm_fl.compat.mm_encoder_attention",
    (("MMEncoderAttention", "vllm.attention.layers.mm_encoder_attention"), ("MMEncoderAttention", _MM_ATTN),
     ("MMEncoderAttention", _MM_ATTN + ".mm_encoder_attention")),
    (),
    "ViT attention: the pinned MMEncoderAttention with upstream's compute_max_seqlen / maybe_compute_seq_lens / "
    "maybe_recompute_cu_seqlens for the backends 0.13.0 picks, and forward(sequence_lengths=) (FlashInfer only)",
    on_import=(("MMEncoderAttention", _MM_ATTN), ("MMEncoderAttention", _MM_ATTN + ".mm_encoder_attention")),
    members=(("MMEncoderAttention", "compute_max_seqlen"), ("MMEncoderAttention", "maybe_compute_seq_lens"),
             ("MMEncoderAttention", "maybe_recompute_cu_seqlens")),
)

# upstream's Attention(head_size_v=) and the DiffKV backends MiMo-V2-Flash picks for it: the pinned layer over
# zero-padded heads (exactly upstream's output; a wider V cache). Local: other files keep the pinned Attention
_ATTN = "vllm.model_executor.layers.attention"
_REGISTRY = "backends.registry"
DIFFKV_ATTENTION = Backport(
    "diffkv_attention.py",
    "vllm_fl.compat.diffkv_attention",
    (("Attention", "vllm.attention.layer"), ("Attention", _ATTN), ("Attention", _ATTN + ".attention"),
     ("AttentionBackendEnum", "vllm.attention." + _REGISTRY), ("AttentionBackendEnum", "vllm.v1.attention." + _REGISTRY),
     ("FlashAttentionDiffKVBackend", "vllm.v1.attention.backends.flash_attn_diffkv"),
     ("TritonAttentionDiffKVBackend", "vllm.v1.attention.backends.triton_attn_diffkv")),
    (("Attention", "head_size_v"),),
    "attention with V heads of another size: the pinned Attention over Q/K/V zero-padded to one head size, the "
    "output cut back (upstream's result, a wider V cache); upstream's DiffKV backends choose the pinned backend",
    members=(("AttentionBackendEnum", "FLASH_ATTN_DIFFKV"), ("AttentionBackendEnum", "TRITON_ATTN_DIFFKV")),
    local=True,
)

_OFFLOADER = "vllm.model_executor.offloader"
# upstream's offloader module (AliceAI asks which kind runs; whisper hands it layers): 0.13.0 offloads only by
# cpu_offload_gb, over UVA, in models/utils.py's maybe_offload_to_cpu
OFFLOADER = Backport(
    "offloader.py",
    "vllm_fl.compat.offloader",
    tuple((name, module) for module in (_OFFLOADER, _OFFLOADER + ".base")
          for name in ("BaseOffloader", "NoopOffloader", "get_offloader"))
    + (("PrefetchOffloader", _OFFLOADER), ("PrefetchOffloader", _OFFLOADER + ".prefetch"),
       ("UVAOffloader", _OFFLOADER), ("UVAOffloader", _OFFLOADER + ".uva")),
    (),
    "model offloading: upstream's get_offloader / UVAOffloader / PrefetchOffloader describing what the pinned "
    "vLLM offloads (cpu_offload_gb over UVA, no prefetching)",
)

_QWEN2_MOE = "vllm.model_executor.models.qwen2_moe"
# upstream's callers hand Qwen2MoeMLP a ReplicatedLinear gate and upstream's forward takes its [0]; the pinned
# forward calls the gate as a torch.nn.Linear: importing the class is what needs the back-port
QWEN2_MOE_MLP = Backport(
    "qwen2_moe_mlp.py",
    "vllm_fl.compat.qwen2_moe_mlp",
    (("Qwen2MoeMLP", _QWEN2_MOE),),
    (("Qwen2MoeMLP", "disable_tp"), ("Qwen2MoeMLP", "is_sequence_parallel")),
    "Qwen2-MoE dense MLP: upstream's expert_gate contract (a vLLM linear, sigmoid of its [0]) and disable_tp / "
    "is_sequence_parallel over the pinned layers",
    on_import=(("Qwen2MoeMLP", _QWEN2_MOE),),
    local=True,
)

_SIGLIP = "vllm.model_executor.models.siglip"
# upstream's SiglipVisionModel builds no pooling head unless asked (use_head=False); 0.13.0's builds one whenever the
# config lacks vision_use_head. Callers rely on the default (colmodernvbert, cohere2_vision, gemma3_mm, llava,
# paligemma, ...) or pass use_head= (nemotron_vl), so every import needs it (on_import)
SIGLIP_VISION = Backport(
    "siglip_vision.py",
    "vllm_fl.compat.siglip_vision",
    (("SiglipVisionModel", _SIGLIP),),
    (("SiglipVisionModel", "use_head"),),
    "SigLIP vision tower: upstream's use_head (default False: no pooling head, its checkpoint tensors dropped) "
    "over the pinned tower",
    on_import=(("SiglipVisionModel", _SIGLIP),),
    local=True,
)

_REPO_UTILS = "vllm.transformers_utils.repo_utils"
# upstream's readers of optional files beside a checkpoint take None for "not there" (qwen3_dflash's
# mask_embedding.pt, jina's adapters); 0.13.0's functions of those names send a local directory to the Hub
# (HFValidationError) and get_hf_file_bytes raises on the Hub's "no such file": every import means upstream's
REPO_UTILS = Backport(
    "repo_utils.py",
    "vllm_fl.compat.repo_utils",
    (("get_hf_file_bytes", _REPO_UTILS), ("get_hf_file_to_dict", _REPO_UTILS)),
    (),
    "optional files beside a checkpoint: upstream's get_hf_file_bytes / get_hf_file_to_dict (None for a file a "
    "local directory or the Hub does not have; 0.13.0's raise)",
    on_import=(("get_hf_file_bytes", _REPO_UTILS), ("get_hf_file_to_dict", _REPO_UTILS)),
    local=True,
)

_GPT_OSS = "vllm.model_executor.models.gpt_oss"
# upstream's GPT-OSS layers are built through hooks (rope_is_neox_style, _build_attention, attention_cls, mlp_cls,
# block_cls) the OpenAI privacy filter overrides; 0.13.0's build their parts directly, so a subclass of them stayed
# a causal GPT-OSS: importing the classes is what needs the back-port (its defaults build what the pinned ones do)
GPT_OSS_HOOKS = Backport(
    "gpt_oss_hooks.py",
    "vllm_fl.compat.gpt_oss_hooks",
    (("OAIAttention", _GPT_OSS), ("TransformerBlock", _GPT_OSS), ("GptOssModel", _GPT_OSS)),
    (),
    "GPT-OSS layers with upstream's construction hooks (rope_is_neox_style, _build_attention, attention_cls, "
    "mlp_cls, block_cls) over the pinned classes; their defaults build what the pinned constructors build",
    on_import=(("OAIAttention", _GPT_OSS), ("TransformerBlock", _GPT_OSS), ("GptOssModel", _GPT_OSS)),
    local=True,
)

_ADAPTERS = "vllm.model_executor.models.adapters"
# upstream's as_seq_cls_model sizes the score head by the top-level config's labels when a composite config declares
# its own (_resolve_num_labels), 0.13.0's by the text config's always: Decision 3.0 (its hook writes hf_config.id2label)
# built two rows for four codes. Identical for a non-composite config, so every import takes it (on_import)
SEQ_CLS_ADAPTER = Backport(
    "seq_cls_adapter.py",
    "vllm_fl.compat.seq_cls_adapter",
    (("as_seq_cls_model", _ADAPTERS),),
    (),
    "sequence-classification adapter: the pinned as_seq_cls_model with upstream's label count (the top-level "
    "config's when a composite config declares its own, else the text config's)",
    on_import=(("as_seq_cls_model", _ADAPTERS),),
    local=True,
)

_VIDEO = "vllm.multimodal.video"
# LLaVA-OneVision-2's frame-sampling loader subclasses upstream's VideoBackend (absent on 0.13.0, whose OpenCV
# loader has one load_bytes) and registers it bound to its HF video processor
VIDEO_BACKEND = Backport(
    "video_backend.py",
    "vllm_fl.compat.video_backend",
    tuple((name, module) for name in ("VideoBackend", "VideoSourceMetadata", "VideoTargetMetadata",
                                      "VIDEO_LOADER_REGISTRY", "get_video_loader_backend_for_processor")
          for module in (_VIDEO, "vllm.multimodal.video_decoders", "vllm.multimodal.video_decoders.base")
          if name not in ("VIDEO_LOADER_REGISTRY", "get_video_loader_backend_for_processor") or module == _VIDEO),
    (),
    "upstream's VideoBackend (frame-index policy over VideoSourceMetadata / VideoTargetMetadata, the OpenCV "
    "codec) over the pinned OpenCVVideoBackend, and a VIDEO_LOADER_REGISTRY whose register() takes "
    "video_processor= and registers into the pinned registry",
    # upstream's registry (0.13.0's has the name, whose register() takes no video_processor=): its import means
    # upstream's API, which the wrapper keeps for plain loaders too (register by name, load)
    on_import=(("VIDEO_LOADER_REGISTRY", _VIDEO),),
    local=True,  # re-pointed only in the files that import one of these
    call_caveats=(("VIDEO_LOADER_REGISTRY", "register", "video_processor",
                   "upstream's MediaConnector.fetch_video picks this loader for every video of a model whose HF "
                   "video processor has that name (media/connector.py get_video_loader_backend_for_processor); "
                   "0.13.0's fetch_video takes no processor and its VideoMediaIO loads "
                   "VLLM_VIDEO_LOADER_BACKEND (default opencv: 32 uniform frames) unless the request names one "
                   "(multimodal/video.py VideoMediaIO), so the model's videos are sampled otherwise",
                   "serve it with VLLM_VIDEO_LOADER_BACKEND={name} (or --media-io-kwargs "
                   "'{{\"video\": {{\"video_backend\": \"{name}\"}}}}')"),),
)

BACKPORTS: tuple[Backport, ...] = (STACKED_WEIGHTS, GATE_LINEAR, FUSED_MOE_ROUTING, FUSED_MOE, GDN_LINEAR_ATTN,
                                   OLMO_GDN_LINEAR_ATTN, BAILING_LINEAR_ATTN, KIMI_GDN_LINEAR_ATTN,
                                   KDA_GATE, SPARSE_MLA, MLA, LAYER_NAME, FUSED_MOE_KERNEL, HPC_ROPE_NORM, ACTIVATION, ENVS,
                                   CONFIG_DEFAULTS, SHORT_CONV, TOKEN_POOLER, DISPATCH_POOLER, SEQ_POOLER_HEADS, POOLING_PARAMS_UPDATE,
                                   SPECIAL_POOLERS,
                                   MINIMAX_RMS_NORM, QKV_LINEAR, ROPE, MM_ENCODER_ATTENTION, LAYERNORM,
                                   DIFFKV_ATTENTION, OFFLOADER, QWEN2_MOE_MLP, SIGLIP_VISION, REPO_UTILS,
                                   MM_PROCESSOR_KWARGS, PROMPT_UPDATE_DETAILS, GPT_OSS_HOOKS,
                                   SEQ_CLS_ADAPTER, VIDEO_BACKEND)


@lru_cache(maxsize=None)
def _source_text(name: str) -> str:
    return (SOURCES / name).read_text("utf-8")


def with_requirements(chosen: Iterable[Backport]) -> list[Backport]:
    """These back-ports and the ones they import, in table order."""
    wanted = {bp.module for bp in chosen}
    changed = True
    while changed:
        extra = {req for bp in BACKPORTS if bp.module in wanted for req in bp.requires} - wanted
        wanted |= extra
        changed = bool(extra)
    return [bp for bp in BACKPORTS if bp.module in wanted]


def _class_of(callee: str) -> str:
    """``a.b.Cls``, ``Cls`` or ``a.b.Cls.__init__`` -> ``Cls``."""
    last = callee.rsplit(".", 1)[-1]
    return callee.rsplit(".", 2)[-2] if last == "__init__" and "." in callee else last


def for_keyword(callee: str, keyword: str) -> Backport | None:
    """The back-port that makes ``callee(keyword=...)`` work (``callee`` as the analysis shows it)."""
    cls = _class_of(callee)
    return next((bp for bp in BACKPORTS if (cls, keyword) in bp.keywords), None)


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def for_member(cls: str, attr: str) -> Backport | None:
    """The back-port whose subclass of the pinned ``cls`` defines ``attr``."""
    return next((bp for bp in BACKPORTS if (cls, attr) in bp.members), None)


def for_import(module: str, name: str) -> Backport | None:
    """The back-port that provides ``from module import name`` (when the pinned vLLM lacks it)."""
    return next((bp for bp in BACKPORTS if bp.repoints(module, name)), None)


def env_reads(tree: ast.Module, bindings) -> set[str]:
    """Variables read through a name bound to ``vllm.envs``: ``envs.X``, ``envs.is_set("X")``,
    ``getattr(envs, "X")``."""
    names = {b.alias for b in bindings if (b.name is None and b.module == "vllm.envs" and b.alias != "vllm")
             or (b.module == "vllm" and b.name == "envs")}
    if not names:
        return set()
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
            out.add(node.attr)
        elif isinstance(node, ast.Call):
            f, a = node.func, node.args
            if isinstance(f, ast.Attribute) and f.attr == "is_set" and isinstance(f.value, ast.Name):
                root, key = f.value, a[0] if a else None
            elif isinstance(f, ast.Name) and f.id == "getattr" and len(a) >= 2 and isinstance(a[0], ast.Name):
                root, key = a[0], a[1]
            else:
                continue
            if root.id in names and isinstance(key, ast.Constant) and isinstance(key.value, str):
                out.add(key.value)
    return out


def needed(trees: Iterable[ast.Module], pinned_lacks=lambda module, name: True,
           pinned_takes=lambda module, cls, keyword: False, origins: Iterable[str | None] = ()) -> list[Backport]:
    """Back-ports whose keywords some call in these modules passes where the pinned class does not
    take them (``pinned_takes``), whose names they import from an upstream module where
    ``pinned_lacks(module, name)``, whose ``on_import`` names they import at all, or whose ``members``
    they read (``DispatchPooler.for_seq_cls``). ``origins``: each
    tree's upstream module, against which its relative imports resolve (none: absolute imports only)."""
    wanted: set[str] = set()
    trees = list(trees)
    for tree, origin in zip(trees, list(origins) or [None] * len(trees)):
        bindings = import_bindings(tree, origin or "")
        for b in bindings:
            if b.name and (origin or not b.level):
                wanted.update(bp.module for bp in BACKPORTS
                              if (b.name, b.module) in bp.on_import or (b.name, b.module) in bp.vendored_callers)
        read = env_reads(tree, bindings)
        wanted.update(bp.module for bp in BACKPORTS for name, _ in bp.env_vars
                      if name in read and pinned_lacks("vllm.envs", name))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and (bp := for_member(node.value.id, node.attr)) is not None):
                wanted.add(bp.module)  # the table lists members the pinned class lacks (tests check it)
            elif isinstance(node, ast.Call) and (name := _called_name(node)):
                for kw in node.keywords:
                    bp = for_keyword(name, kw.arg) if kw.arg else None
                    if bp is not None and not pinned_takes(bp.shadowed()[_class_of(name)], _class_of(name), kw.arg):
                        wanted.add(bp.module)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    bp = for_import(node.module, alias.name)
                    if bp is not None and not bp.keywords and pinned_lacks(node.module, alias.name):
                        wanted.add(bp.module)
    return with_requirements(bp for bp in BACKPORTS if bp.module in wanted)
