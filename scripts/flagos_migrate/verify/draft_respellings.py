"""Respellings of a checkpoint derived from upstream vLLM's own class (``_runtime_load.upstream_checkpoint``)
back to the spelling a released checkpoint has, for classes whose ``load_weights`` renames names in code
rather than through a ``WeightsMapper`` the derivation can read backwards: speculative-decoding drafts
(EAGLE / EAGLE3 / DFlash prefix ``model.``, DeepSeek-style MTP inserts ``.mtp_block``, Qwen3-Next-style
MTP renames ``mtp.`` to ``model.``, Bailing MTP ``word_embeddings`` to ``embed_tokens``), and a few target models
whose loaders rename one kind of tensor the same way (IQuest-LoopCoder's loop gates, the SPLADE BERT's MLM head) or
read a prefix other than the mapper they inherit (RoBERTa embedding models, BGE-M3).

Data only, tried in order, never chosen by architecture name: a candidate is kept only when upstream's
own ``load_weights`` writes every parameter back with exactly the derived values
(``_runtime_load.self_check``), so a candidate that does not fit a class can never name its checkpoint.
Each entry: ``id``, ``rewrites`` (regular expression, replacement) applied in order to every tensor
name (each at most once per name), and ``evidence``: where upstream vLLM 0.33.0 makes the rename."""

import re

RESPELLINGS = (
    {"id": "draft-model-prefix",
     "rewrites": ((r"^model\.", ""),),
     "evidence": "llama_eagle.py / llama_eagle3.py / qwen3_eagle3.py / deepseek_eagle.py / minicpm_eagle.py / "
                 "laguna_dflash.py load_weights: name = 'model.' + name for every name but lm_head"},
    {"id": "mtp-block-segment-layer-embed",
     "rewrites": ((r"^(model\.(?:language_model\.)?layers\.\d+)\.mtp_block\.", r"\1."),
                  (r"^model\.embed_tokens\.", "model.layers.{num_hidden_layers}.embed_tokens.")),
     "evidence": "deepseek_mtp.py / glm4_moe_lite_mtp.py / openpangu_mtp.py _rewrite_spec_layer_name: as "
                 "mtp-block-segment, and the MTP layer's own embed_tokens (model.layers.{spec}.embed_tokens, spec = "
                 "num_hidden_layers, the first MTP layer) is read as model.embed_tokens; glm4_moe_lite_mtp and "
                 "openpangu_mtp skip any name outside the MTP layers"},
    {"id": "mtp-block-segment",
     "rewrites": ((r"^(model\.(?:language_model\.)?layers\.\d+)\.mtp_block\.", r"\1."),),
     "evidence": "deepseek_mtp.py (and glm4_moe_mtp, glm4_moe_lite_mtp, glm_ocr_mtp, openpangu_mtp, hy_v3_mtp) "
                 "_rewrite_spec_layer_name: model.layers.{spec}. -> model.layers.{spec}.mtp_block. for the "
                 "transformer block of an MTP layer"},
    {"id": "mtp-block-segment-shared-head",
     "rewrites": ((r"^(model\.layers\.\d+)\.mtp_block\.", r"\1."), (r"^model\.layers\.\d+\.shared_head\.head\.", "lm_head.")),
     "evidence": "hy_v3_mtp.py load_weights: as mtp-block-segment, and the MTP layer's shared_head.head is read "
                 "from lm_head.weight (its own model.layers.{spec}.shared_head name is skipped)"},
    {"id": "mtp-prefix",
     "rewrites": ((r"^model\.(?!embed_tokens\.)", "mtp."),),
     "evidence": "qwen3_next_mtp.py / qwen3_5_mtp.py / exaone_moe_mtp.py / exaone4_5_mtp.py load_weights: "
                 "'mtp.' -> 'model.'; is_unused_checkpoint_weight drops any other name but embed_tokens and lm_head"},
    {"id": "longcat-mtp-names",
     "rewrites": ((r"^model\.layers\.\d+\.mtp_block\.mlp\.", "model.mtp.layers.0.transformer_layer.mlp."),
                  (r"^model\.layers\.\d+\.mtp_block\.", "model.mtp.layers.0."),
                  (r"^model\.layers\.\d+\.(enorm|hnorm)\.", r"model.mtp.layers.0.\1.m."),
                  (r"^model\.layers\.\d+\.eh_proj\.", "model.mtp.layers.0.eh_proj."),
                  (r"^model\.layers\.\d+\.final_layernorm\.", "model.mtp.norm."),
                  (r"^model\.embed_tokens\.", "model.mtp.embed_tokens.")),
     "evidence": "longcat_flash_mtp.py load_weights: new_to_old_names_mapping (model.mtp.layers.0.* -> "
                 "model.layers.0.*, transformer_layer.mlp -> mlp, enorm.m / hnorm.m -> enorm / hnorm, model.mtp.norm "
                 "-> final_layernorm, model.mtp.embed_tokens -> embed_tokens) then _rewrite_spec_layer_name "
                 "(.mtp_block for the block); any name without model.mtp is skipped"},
    {"id": "loop-gate-projections",
     "rewrites": ((r"^(model\.gate_projections\.\d+)\.gate_proj\.", r"\1."),),
     "evidence": "iquest_loopcoder.py IQuestLoopCoderModel.load_weights: gate_projections.{i}.weight / .bias (the "
                 "loop gates) -> gate_projections.{i}.gate_proj.weight / .bias; the stacked mapping skips them"},
    {"id": "splade-mlm-head",
     "rewrites": ((r"^mlm_head\.dense\.", "cls.predictions.transform.dense."),
                  (r"^mlm_head\.layer_norm\.", "cls.predictions.transform.LayerNorm."),
                  (r"^mlm_head\.decoder\.", "cls.predictions.decoder.")),
     "evidence": "bert.py BertSpladeSparseEmbeddingModel.load_weights: name_map reads the BERT MLM head's "
                 "cls.predictions.transform.dense / .transform.LayerNorm / .decoder into mlm_head.dense / .layer_norm "
                 "/ .decoder; any other name goes to the encoder's loader"},
    {"id": "unprefixed-encoder",
     "rewrites": ((r"^bert\.", ""),),
     "evidence": "roberta.py RobertaEmbeddingModel.load_weights (BgeM3EmbeddingModel's too): its own mapper, not the "
                 "hf_to_vllm_mapper it inherits from BertEmbeddingModel ('bert.' -> 'model.'), reads 'roberta.' or, "
                 "without it, '' as 'model.' (sentence-transformers/stsb-roberta-base-v2, BAAI/bge-m3: the encoder "
                 "saved unprefixed)"},
    {"id": "radio-blocks",
     "rewrites": ((r"^vision_model\.model\.encoder\.layers\.", "vision_model.radio_model.model.blocks."),
                  (r"^vision_model\.model\.patch_generator\.", "vision_model.radio_model.model.patch_generator.")),
     "evidence": "nano_nemotron_vl.py NemotronH_Nano_VL_V2.load_weights hands vision_model.radio_model.* (less "
                 "vision_model.) to radio.py RadioModel.load_weights, which reads radio_model.model.blocks.{i}.* as "
                 "model.encoder.layers.{i}.* and radio_model.model.patch_generator.* as model.patch_generator.*; any "
                 "other vision_model.* name is skipped"},
    {"id": "word-embeddings",
     "rewrites": ((r"^model\.embed_tokens\.", "model.word_embeddings."),),
     "evidence": "bailing_moe_mtp.py / bailing_moe_v3_mtp.py load_weights: model.word_embeddings.weight -> "
                 "model.embed_tokens.weight (any other name outside the MTP layers is skipped)"},
    {"id": "nemo-asr-names",
     "rewrites": ((r"^model\.decoder\.embedding\.", "transf_decoder._embedding."),
                  (r"^model\.decoder\.", "transf_decoder._decoder."),
                  (r"\.first_sub_layer\.q_proj\.", ".first_sub_layer.query_net."),
                  (r"\.first_sub_layer\.k_proj\.", ".first_sub_layer.key_net."),
                  (r"\.first_sub_layer\.v_proj\.", ".first_sub_layer.value_net."),
                  (r"\.second_sub_layer\.q_proj\.", ".second_sub_layer.query_net."),
                  (r"^model\.", ""),
                  (r"^proj_out\.", "log_softmax.mlp.layer0.")),
     "evidence": "cohere_asr.py CohereAsrForConditionalGeneration.load_weights: NeMo's names, read by its transform "
                 "(transf_decoder._decoder -> decoder, transf_decoder._embedding -> decoder.embedding, "
                 "second_sub_layer.query_net -> q_proj, log_softmax.mlp.layer0 -> proj_out, 'model.' + every other "
                 "name) and CohereASRModel.load_weights' stacked_params_mapping (first_sub_layer.query_net / key_net / "
                 "value_net -> qkv_proj)"},
    {"id": "mistral-audio-encoder",
     "rewrites": ((r"^whisper_encoder\.", "mm_whisper_embeddings."),
                  (r"^language_model\.", ""),
                  # the causal (realtime) encoder's SwiGLU: Mistral's w1 / w3 / w2 as the remapping leaves them
                  (r"^(mm_whisper_embeddings\..*)\.mlp\.gate_proj\.", r"\1.mlp.fc1."),
                  (r"^(mm_whisper_embeddings\..*)\.mlp\.up_proj\.", r"\1.mlp.fc3."),
                  (r"^(mm_whisper_embeddings\..*)\.mlp\.down_proj\.", r"\1.mlp.fc2.")),
     "evidence": "voxtral.py VoxtralForConditionalGeneration.load_weights: a name under mm_whisper_embeddings. goes, "
                 "the prefix dropped, to whisper_encoder.load_weight; audio_language_adapter.* to the adapter; every "
                 "other name to language_model.load_weights as it is (Mistral's consolidated checkpoint: no "
                 "language_model. prefix). VoxtralEncoderModel.load_weight of a causal encoder (voxtral.py:842) "
                 "stacks mlp.fc1 / mlp.fc3 into mlp.gate_up_proj (shards 0, 1) and reads mlp.fc2 as mlp.down_proj, "
                 "its mistral_remapping's spelling of feed_forward.w1 / w3 / w2"},
)


FIELDS = ("num_hidden_layers",)  # config fields a replacement may name as {field}


def respell(names, rewrites, fields=None):
    """``names`` -> their respelling under ``rewrites`` ({old: new}), a ``{field}`` in a replacement filled from
    ``fields`` (config values by name); None when two names collide or a named field is missing. Pure."""
    fields = fields or {}
    out = {}
    for name in names:
        new = name
        for pattern, replacement in rewrites:
            for field in FIELDS:
                if "{" + field + "}" in replacement:
                    if not isinstance(fields.get(field), int):
                        return None
                    replacement = replacement.replace("{" + field + "}", str(fields[field]))
            new = re.sub(pattern, replacement, new, count=1)
        if new in out.values():
            return None
        out[name] = new
    return out
