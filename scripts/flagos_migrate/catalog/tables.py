"""The rule tables that detectors (``analysis``) and fixers (``migrate``) both read.

One table per fact, in one place: a check finds what a table lists, and the rewrite of its finding
reads the same entry.
"""

from __future__ import annotations

# P5: transformers 5 spellings -> the 4.57.6 name (each checked against both indexes by a test)
TRANSFORMERS_RENAMES = {
    "PreTrainedConfig": "PretrainedConfig",
}

# P6: keywords that are optional refinements: dropping them keeps behaviour on the pinned version.
# (callee qualname suffix, kwarg) -> safe. Anything not listed is not safe to drop.
SAFE_DROP_KWARGS: dict[tuple[str, str], bool] = {
    ("WeightsMapper", "orig_to_new_stacked"): False,  # carries qkv/gate_up stacking
    ("support_torch_compile", "enable_if"): False,
    ("RMSNorm", "has_weight"): False,
    ("Attention", "attn_type"): False,
}
SAFE_DROP_KWARG_NAMES = frozenset({"disable_tp", "return_bias", "prefix_separator"})
# Safe only in some calls: (callee, kwarg) -> (literal value it must have or None, keyword the same
# call must also pass). ``is_encoder`` tags a multimodal encoder for upstream's compile cache; with
# ``enable_if`` (the pinned ``should_torch_compile_mm_vit`` check) the pinned decorator compiles it
# exactly when upstream would, which is how the pinned vLLM's own vision blocks are decorated.
# Upstream split ``default_pooling_type(pooling_type)`` into a sequence and a token pooling type;
# the pinned token poolers pool ALL tokens whatever the type says (only "STEP" changes them), so a
# token type of "ALL" next to a sequence type (which becomes the pinned one) says nothing new.
# Alone it becomes the pinned type, as the pinned token-classification models spell it ("ALL").
SAFE_DROP_WHEN: dict[tuple[str, str], tuple[str | None, str]] = {
    ("support_torch_compile", "is_encoder"): (None, "enable_if"),
    ("default_pooling_type", "tok_pooling_type"): ("ALL", "seq_pooling_type"),
}
# P6: keywords that the pinned signature spells differently: (callee, kwarg) -> (pinned keyword,
# keywords that must not be passed too, unless they are dropped). The pinned single pooling type is
# the sequence one ("CLS" for bert); a token type becomes it only when it is the only one passed.
KWARG_RENAMES: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("default_pooling_type", "seq_pooling_type"): ("pooling_type", frozenset({"tok_pooling_type"})),
    ("default_pooling_type", "tok_pooling_type"): ("pooling_type", frozenset({"seq_pooling_type"})),
}

# P13: upstream classes that merged several pinned ones, for code that only asks
# ``isinstance(x, Cls)``: (upstream module, class) -> the pinned (module, class) pairs. Upstream's
# AutoAWQConfig unified the AWQ configs (Triton, Marlin); the pinned vLLM's own models check
# ``(GPTQConfig, GPTQMarlinConfig)``.
ISINSTANCE_EQUIVALENTS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("vllm.model_executor.layers.quantization.auto_awq", "AutoAWQConfig"): (
        ("vllm.model_executor.layers.quantization.awq", "AWQConfig"),
        ("vllm.model_executor.layers.quantization.awq_marlin", "AWQMarlinConfig"),
    ),
    ("vllm.model_executor.layers.quantization.auto_gptq", "AutoGPTQConfig"): (
        ("vllm.model_executor.layers.quantization.gptq", "GPTQConfig"),
        ("vllm.model_executor.layers.quantization.gptq_marlin", "GPTQMarlinConfig"),
    ),
}

# P9: variable names that hold vLLM config objects -> the class that defines them in vllm.config
CONFIG_CLASSES = {
    "cache_config": "CacheConfig",
    "model_config": "ModelConfig",
    "parallel_config": "ParallelConfig",
    "scheduler_config": "SchedulerConfig",
    "lora_config": "LoRAConfig",
    "speculative_config": "SpeculativeConfig",
    "compilation_config": "CompilationConfig",
    "device_config": "DeviceConfig",
    "load_config": "LoadConfig",
    "multimodal_config": "MultiModalConfig",
    "quant_config": None,  # many classes: never judged
}

# P9: attribute renames of the config classes, with their comparison semantics:
# upstream attr -> (config variable, pinned attr, {(operator, literal): negate}).
# ``mamba_cache_mode == "all"`` means prefix caching is on.
ATTR_RENAMES: dict[str, tuple[str, str, dict[tuple[str, str], bool]]] = {
    "mamba_cache_mode": (
        "cache_config", "enable_prefix_caching",
        {("==", "all"): False, ("!=", "none"): False, ("==", "none"): True, ("!=", "all"): True},
    ),
}
# the same as (config var, upstream attr) -> pinned spelling, for the attribute check
CONFIG_ATTR_RENAMES = {(var, attr): new for attr, (var, new, _) in ATTR_RENAMES.items()}

# P4: context managers of newer SupportsMultiModal that only tag sub-modules; unwrapping keeps the
# initialisation they wrap.
MARK_CONTEXT_MANAGERS = frozenset({"_mark_tower_model", "_mark_language_model", "_mark_composite_model"})

# P21: context managers (module-level functions) that only scope an upstream debugging aid:
# upstream module -> names.
DEBUG_CONTEXT_MANAGERS: dict[str, frozenset[str]] = {
    "vllm.utils.gpu_sync_debug": frozenset({"gpu_sync_allowed"}),
}
