"""Where transformers computes what upstream vLLM does not (part of ``_runtime_worker.py``).

``match`` compares the migrated file with upstream vLLM; when upstream cannot run on the CPU, the
Hugging Face class stands in for it. Where that class computes something upstream vLLM's model file
leaves out, the stand-in is adjusted so that it computes what upstream does: data, one entry per
architecture, each with the upstream lines that show it. Only the Hugging Face reference is adjusted
(upstream vLLM itself and the migrated file run the checkpoint as it is, so a migrated file that adds
what upstream leaves out still fails ``match``), and every adjustment is reported
(``reference_adjustments``). Standard library only.

``NUMERICAL_DIVERGENCES`` is the other kind: a ``match`` failure shown to be fp32 rounding of the same computation
on the two stacks (the same code agrees in fp64), not a behaviour change. Nothing is adjusted and the tolerance is
the same for every model: the level still fails, and the report names the divergence with its evidence instead of
guessing a rule (``numerical_divergence``), only within the entry's bound and only in the prefill it names.
"""

# vLLM architecture -> {"zero": parameters (the Hugging Face class's names) set to 0 after loading,
# "config_add": {config field: amount added before the class is built}, "dropped": checkpoint tensors (the Hugging
# Face class's names) upstream vLLM's model file never loads (the load level counts them as not lost, on both sides,
# and says so), "why": what upstream vLLM does instead, "evidence": file:line in upstream vLLM 0.33.0's source}
REFERENCE_DIVERGENCES: dict[str, dict] = {
    "ColPaliForRetrieval": {
        "zero": ["embedding_proj_layer.bias"],
        "dropped": ["embedding_proj_layer.bias"],
        "why": "upstream vLLM builds custom_text_proj without a bias whenever the config names the embedding size "
               "(ColPaliConfig.embedding_dim, always set) and skips a checkpoint tensor its projection has no "
               "parameter for; transformers' ColPaliForRetrieval projects with nn.Linear(hidden, embedding_dim), "
               "bias included",
        "evidence": [
            "vllm/model_executor/models/colpali.py:134: if self.embed_dim is not None:",
            "vllm/model_executor/models/colpali.py:138: bias=False,",
            "vllm/model_executor/models/colpali.py:212: if param is not None:",
        ],
    },
    "PhiMoEForCausalLM": {
        "zero": ["lm_head.bias"],
        "why": "upstream vLLM builds and loads lm_head.bias (ParallelLMHead(bias=True)) but never adds it: "
               "compute_logits calls logits_processor(self.lm_head, hidden_states) without embedding_bias, "
               "and the head's matmul takes only that bias; transformers' PhimoeForCausalLM adds it "
               "(nn.Linear(bias=config.lm_head_bias))",
        "evidence": [
            "vllm/model_executor/models/phimoe.py:580: logits = self.logits_processor(self.lm_head, hidden_states)",
            "vllm/model_executor/layers/logits_processor.py:145: lm_head, hidden_states, bias=embedding_bias",
        ],
    },
    "Cohere2MoeForCausalLM": {
        "config_add": {"sliding_window": 1},
        "why": "upstream vLLM's sliding layers see sliding_window + 1 tokens ([pos - sliding_window, pos], Cohere's "
               "training convention as its commandr.py states); transformers' Cohere2Moe masks to sliding_window "
               "tokens",
        "evidence": [
            "vllm/model_executor/models/cohere2_moe.py:256: self.sliding_window = config.sliding_window + 1",
            "vllm/model_executor/models/commandr.py:237: # cohere swa layer sees [pos - sliding_window, pos], i.e. "
            "sliding_window + 1",
        ],
    },
    "MiMoV2FlashForCausalLM": {
        "config_add": {"sliding_window": -1},
        "why": "upstream vLLM's sliding layers see sliding_window_size tokens (the query and sliding_window_size - 1 "
               "before it: the Triton/FA DiffKV impls' window (w - 1, 0)); transformers' MiMoV2FlashConfig takes "
               "sliding_window = sliding_window_size + 1 (SGLang's convention: that many previous tokens plus the "
               "query; its configuration_mimo_v2_flash.py)",
        "evidence": [
            "vllm/model_executor/models/mimo_v2.py:318: sliding_window = sliding_window_size if sliding_window_size "
            "> -1 else None",
            "vllm/v1/attention/backends/triton_attn.py:508: self.sliding_window = (sliding_window - 1, 0)",
            "vllm/v1/attention/backends/triton_attn_diffkv.py:108: class TritonAttentionDiffKVImpl(TritonAttentionImpl):",
        ],
    },
}


def adjustments_for(arch: str, reference: str | None) -> list[dict]:
    """What to change in the reference run of ``arch`` (``reference``: "transformers-X" or "vllm-X"):
    the table's entry as a list of {"parameter", "action", "why", "evidence"}; none for upstream vLLM
    itself, which computes what it computes. Pure."""
    entry = REFERENCE_DIVERGENCES.get(arch)
    if not entry or not str(reference or "").startswith("transformers"):
        return []
    return [{"parameter": name, "action": "zeroed", "why": entry["why"], "evidence": list(entry["evidence"])}
            for name in entry.get("zero", ())] + \
        [{"parameter": f"config.{name}", "action": f"{amount:+d}", "why": entry["why"], "evidence": list(entry["evidence"])}
         for name, amount in (entry.get("config_add") or {}).items()]


def dropped_by_upstream(arch: str) -> list[str]:
    """Checkpoint tensors upstream vLLM's model file for ``arch`` never loads (the table's ``dropped``). Pure."""
    return list((REFERENCE_DIVERGENCES.get(arch) or {}).get("dropped", ()))


# vLLM architecture -> a match failure proven to be numerical: "reference" (the reference it was measured against:
# upstream vLLM, whose code the migrated file runs), "prefill" ("image": the text prefill must match within the
# tolerance, only the prefill with the image may differ), "bound" (the largest |Δlogit| the evidence covers: the
# observed difference with a margin; above it the entry says nothing), "why", "evidence" (file:line, versions, the
# measurement)
NUMERICAL_DIVERGENCES: dict[str, dict] = {
    "Gemma3nForConditionalGeneration": {
        "reference": "vllm-0.33.0",
        "prefill": "image",
        "bound": 5e-3,
        "why": "fp32 rounding in the vision tower, not a behaviour change: both sides build transformers' "
               "TimmWrapperModel over timm 1.0.31's MobileNetV5 (AutoModel.from_config(config.vision_config)) and "
               "run it in fp32 on torch 2.9.0 (pinned) / 2.14.0 (upstream); on the harness's own checkpoint and "
               "pixel_values the two towers agree to 1.9e-12 in fp64, while in fp32 each is off its fp64 output by "
               "2.3e-3 / 2.1e-3 and they differ by 6.7e-4, less than either side's own rounding error. Upstream "
               "multiplies the tower's output by vision_config.hidden_size ** 0.5 before the embedder; the text "
               "prefill matches exactly (Δ0), the prefill with one image by Δ0.00219",
        "evidence": [
            "vllm/model_executor/models/gemma3n_mm.py:617: self.vision_tower = AutoModel.from_config("
            "config=config.vision_config) (upstream 0.33.0; pinned 0.13.0's gemma3n_mm.py:504 the same)",
            "vllm/model_executor/models/gemma3n_mm.py:703: vision_outputs = self.vision_tower(pixel_values="
            "pixel_values, do_pooling=False, return_dict=True).last_hidden_state",
            "vllm/model_executor/models/gemma3n_mm.py:718: vision_outputs *= "
            "self.config.vision_config.hidden_size**0.5",
            "measured on the harness's workdir with the tower alone in each venv, fp32 and fp64 "
            "(session 15, /work/coord/match15.md; script match15_gemma3n_tower.py)",
        ],
    },
}


def numerical_divergence(arch: str, reference: str | None, text_diff, image_diff, tolerance: float) -> dict | None:
    """The table's entry for a failed ``match`` of ``arch`` that the evidence covers: measured against the entry's
    reference, the other prefill within ``tolerance``, the one it names within its bound; else None (the failure
    is then as unexplained as before). Returns {"why", "evidence", "bound", "prefill"}. Pure."""
    entry = NUMERICAL_DIVERGENCES.get(arch)
    if not entry or reference != entry["reference"] or text_diff is None:
        return None
    if entry["prefill"] == "image":
        if image_diff is None or float(text_diff) > tolerance or float(image_diff) > entry["bound"]:
            return None
    return {"prefill": entry["prefill"], "bound": entry["bound"], "why": entry["why"],
            "evidence": list(entry["evidence"])}
