"""The one rule catalog.

Every check of ``validate_migration.py``, every line of the plan that ``migrate_model.py plan``
prints and every rewrite that ``migrate_model.py apply`` performs carries one of these ids, and
``references/compatibility-patches.md`` is rendered from this table. Ids P1-P12 keep the numbers
of the original design card's patch catalog; P13 and later are new.

``fix`` says what the migration does about a finding of that rule:
  auto    - rewritten by ``migrate_model.py apply`` (when the finding's data allows it)
  partial - rewritten in the common, safe cases; the rest is left as a finding
  manual  - always left for the agent/human, with a hint
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    id: str
    key: str
    title: str
    fix: str  # auto | partial | manual
    severity: str  # error | warning
    why: str  # what breaks on the pinned version
    how: str  # what the tool does / what to do by hand
    example_before: str = ""
    example_after: str = ""


CATALOG: tuple[Rule, ...] = (
    Rule(
        "P1", "relative-import", "Relative imports become absolute", "auto", "error",
        "Upstream model files import siblings with `from .utils import ...`; inside `vllm_fl/models/` the dots "
        "point at the plugin package, where those modules do not exist.",
        "Each relative import is rewritten to `vllm.model_executor.models.<module>` when the pinned vLLM has that "
        "module and every imported name, and to `vllm_fl.models.<module>` when the plugin holds the module or the "
        "migration brings it along (also when a pinned class lacks an attribute that the file reads while its "
        "class bodies run). Absolute imports of such a module are re-pointed the same way. Hugging Face processors "
        "that upstream vLLM ships (`vllm.transformers_utils.processors.<x>`) and the pinned one lacks come along "
        "whole, as `vllm_fl.processors.<x>`.",
        "from .utils import maybe_prefix",
        "from vllm.model_executor.models.utils import maybe_prefix",
    ),
    Rule(
        "P2", "config-import", "Config classes come from the plugin's config bridge", "auto", "error",
        "New model types ship their config class in transformers 5.x or in a vLLM config module that the pinned "
        "vLLM lacks; importing it fails on vLLM 0.13.0 / transformers 4.57.6.",
        "The import is redirected to `vllm_fl.configs.<model_type>` and a bridge module is generated there from "
        "upstream's config source (a `PretrainedConfig` subclass with the same `model_type`), then registered in "
        "`_CONFIG_REGISTRY`.",
        "from vllm.transformers_utils.configs.qwen3_5 import Qwen3_5Config",
        "from vllm_fl.configs.qwen3_5 import Qwen3_5Config",
    ),
    Rule(
        "P3", "missing-api", "Imports of vLLM modules or names the pinned version lacks", "partial", "error",
        "The module or the name does not exist in the pinned vLLM: the file raises ImportError on import.",
        "Unused imports are removed; names that moved are re-pointed (P13); upstream helpers whose own code "
        "resolves on the pinned version are vendored (P16); annotation-only names leave the runtime path (P14). "
        "Whatever remains is left for you: back-port the API into the plugin or rewrite the caller.",
    ),
    Rule(
        "P4", "missing-method", "Calls to methods that no pinned base class defines", "partial", "error",
        "`self.X(...)` / `super().X(...)` where neither the file nor the pinned base classes define `X`, such as "
        "`self._mark_tower_model(...)` from newer `SupportsMultiModal`: AttributeError at model construction.",
        "The context managers `_mark_tower_model` / `_mark_language_model` / `_mark_composite_model` are "
        "unwrapped so their bodies run directly; other missing methods are left for you.",
        "with self._mark_tower_model(vllm_config, \"image\"):\n    self.visual = VisionTower(...)",
        "self.visual = VisionTower(...)",
    ),
    Rule(
        "P5", "transformers-api", "transformers 5.x names that 4.57.6 lacks", "partial", "error",
        "vLLM 0.13.0 runs with transformers 4.57.6; transformers 5 spellings such as `PreTrainedConfig` do not "
        "exist there.",
        "Known renames are rewritten from a table checked against the transformers index "
        "(`PreTrainedConfig` -> `PretrainedConfig`); other missing transformers names are left for you "
        "(usually: a config bridge, P2).",
        "from transformers import PreTrainedConfig",
        "from transformers import PretrainedConfig",
    ),
    Rule(
        "P6", "unknown-kwarg", "Keyword arguments the pinned signature rejects", "partial", "error",
        "A call passes a keyword that the pinned function or class does not accept: TypeError at run time.",
        "Dropped only where the safe-drop table says the keyword is an optional refinement, some only next to "
        "another keyword (`support_torch_compile(is_encoder=True)` when the call also passes `enable_if=`, as the "
        "pinned vLLM decorates its own vision blocks); renamed where the pinned signature spells it differently "
        "(`default_pooling_type(seq_pooling_type=\"CLS\")` becomes `pooling_type=\"CLS\"`; `tok_pooling_type=\"ALL\"` "
        "next to it is dropped, since 0.13.0's token poolers pool all tokens unless the type is STEP; a token type "
        "alone becomes `pooling_type`; a sequence type with a STEP token type is left); otherwise left for you. `WeightsMapper(orig_to_new_stacked=...)` is never "
        "dropped: it carries the qkv/gate_up weight stacking, and P22 brings a back-port that keeps it.",
    ),
    Rule(
        "P7", "call-arity", "Calls with too many positional or missing required arguments", "manual", "error",
        "The pinned signature has fewer positional parameters, or requires a parameter the call does not pass.",
        "Compare the call with the pinned signature given in the finding and adapt the call.",
    ),
    Rule(
        "P8", "merged-projection", "Merged projections must be MergedColumnParallelLinear", "manual", "warning",
        "A `ColumnParallelLinear` whose output is split into sub-projections of different sizes shards wrongly "
        "under tensor parallelism: every rank gets a slice of the concatenation, not a slice of each part, and "
        "the model produces garbage text at TP > 1.",
        "Build it as `MergedColumnParallelLinear(input_size, output_sizes=[...])` with one size per "
        "sub-projection, and load each shard with its index (override `__init__` if the parent builds it).",
    ),
    Rule(
        "P9", "config-attribute", "Attributes the pinned vLLM config classes lack", "partial", "error",
        "Reads such as `cache_config.mamba_cache_mode` on `CacheConfig`, `ModelConfig`, `ParallelConfig`, "
        "`SchedulerConfig`, ... fail with AttributeError when the pinned class lacks the field.",
        "Renames from the attribute table are applied (`cache_config.mamba_cache_mode == \"all\"` becomes "
        "`cache_config.enable_prefix_caching`); other attributes are left for you.",
    ),
    Rule(
        "P10", "registration", "Model and config registration in vllm_fl/__init__.py", "auto", "error",
        "A `ModelRegistry.register_model(\"Arch\", \"vllm_fl.models.<file>:<Class>\")` pointing at a module or "
        "class that does not exist, or a `_CONFIG_REGISTRY[\"<type>\"] = Cls` whose class is missing or whose "
        "`model_type` differs from the key, fails only at serve time.",
        "`apply` adds one guarded block per model (and per config bridge) to `register_model()`, keeping every "
        "existing block; each registration is validated on its own.",
    ),
    Rule(
        "P11", "custom-op", "Custom ops registered twice or imported through two paths", "manual", "error",
        "`CustomOp.register(\"name\")` / `direct_register_custom_op(op_name=...)` for a name the pinned vLLM or "
        "another plugin module already registers raises `AssertionError: Duplicate op name`; so does the same "
        "op module imported under two module paths.",
        "Import the op from the same module path as the parent model does (e.g. `vllm_fl.ops.fla`), or guard "
        "the registration so an op already registered is not registered again.",
    ),
    Rule(
        "P12", "incomplete-init", "__init__ overrides that skip the parent", "manual", "error",
        "An `__init__` that calls `nn.Module.__init__(self)` instead of the parent's `__init__` leaves every "
        "attribute the parent would set unset; inherited methods that read them fail later (often only during "
        "CUDA-graph warm-up).",
        "Set every attribute that the inherited methods read (the finding lists them), custom ops included.",
    ),
    Rule(
        "P13", "moved-name", "Names that moved to another pinned module", "auto", "error",
        "The name exists in the pinned vLLM, but in another module (e.g. `MultiModalDataDict` lives in "
        "`vllm.multimodal.inputs` on 0.13.0, `Attention` in `vllm.attention.layer`).",
        "The import is re-pointed to the pinned module that defines a name of the same kind; when several "
        "modules define it, non-model modules are preferred and an ambiguity is reported, not guessed. An "
        "upstream class that merged several pinned ones (`AutoAWQConfig`, `AutoGPTQConfig`) and that the file "
        "uses only in `isinstance` checks becomes a tuple of those pinned classes.",
        "from vllm.model_executor.layers.attention import Attention",
        "from vllm.attention.layer import Attention",
    ),
    Rule(
        "P14", "annotation-only", "Missing names used only in annotations", "auto", "error",
        "A name that the pinned version lacks but that the file uses only in type annotations still fails at "
        "import time, because the import statement runs.",
        "The import moves under `if TYPE_CHECKING:` and `from __future__ import annotations` keeps the "
        "annotations unevaluated.",
    ),
    Rule(
        "P15", "config-bridge", "Config bridges complete for the pinned parents", "partial", "error",
        "A config bridge must be a `PretrainedConfig` subclass with a `model_type`; pinned parent model classes "
        "read some fields directly (`config.X`), and a bridge that never sets them fails with AttributeError.",
        "The bridge is generated from upstream's config class; fields that pinned parents read but the bridge "
        "never sets are reported so you can add them with upstream's defaults.",
    ),
    Rule(
        "P16", "vendored-api", "Upstream helpers vendored into vllm_fl/compat", "auto", "error",
        "An upstream helper that the pinned vLLM lacks, but whose own code only needs what the pinned version "
        "has, can be brought along instead of rewritten. The same holds for a module-level function that the "
        "pinned vLLM has with another signature (`async_tensor_h2d(data, device, dtype=...)`): the upstream "
        "caller was written for upstream's definition. Only plain helpers are swapped that way: never classes, "
        "decorators, or functions that set attributes on their arguments (the pinned framework reads its own).",
        "The definition is copied once into `vllm_fl/compat/<upstream module>.py` with provenance and the import "
        "is re-pointed there. Never a placeholder stub: a name that cannot be resolved stays a finding.",
    ),
    Rule(
        "P17", "removed-hook", "Hook methods made only of removed APIs", "auto", "warning",
        "Upstream classes implement hooks that the pinned vLLM never calls and whose bodies use APIs it lacks "
        "(e.g. `get_mamba_state_copy_func`).",
        "A method whose only content is such calls, and that no pinned base class declares, is removed.",
    ),
    Rule(
        "P18", "plugin-import", "vllm_fl imports that the plugin tree does not hold or that will not import",
        "manual", "error",
        "`from vllm_fl.x import Y` where the plugin folder has no module `vllm_fl/x.py` (or package) defining `Y`; "
        "or, in a migration, a sibling the plugin already holds (and that is used as it is) that will not import "
        "on the pinned vLLM itself, so neither will the module importing it.",
        "Migrate the missing module too, or point the import at the module that defines the name; fix a broken "
        "sibling first (validate_migration.py names its blockers).",
    ),
    Rule(
        "P19", "cleanliness", "Leftovers that do not belong in a plugin file", "manual", "warning",
        "Bare `except:` hides real errors; hard-coded `/models/` or site-packages paths break on other machines; "
        "debug imports (`pdb`, `ipdb`, `breakpoint()`) stop servers.",
        "Catch specific exceptions, take paths from configuration, remove debug code.",
    ),
    Rule(
        "P20", "unreadable-file", "Files that cannot be read or parsed", "manual", "error",
        "A file with a syntax error or that is not UTF-8 cannot be imported at all.",
        "Fix the syntax error / re-save the file as UTF-8; nothing else can be checked until then.",
    ),
    Rule(
        "P21", "debug-context", "Context managers that only scope upstream debug checks", "auto", "error",
        "Upstream wraps code in context managers that only switch an upstream debugging aid on or off "
        "(e.g. `with gpu_sync_allowed():` from `vllm.utils.gpu_sync_debug`); the pinned vLLM has neither the "
        "module nor the check, so the import fails.",
        "`with` blocks of the table's context managers are unwrapped (their bodies run directly, as they do "
        "upstream whenever the check is off) and the import, then unused, is removed. A use outside a `with` "
        "statement is left for you.",
        "with gpu_sync_allowed():\n    n = int(mask.sum())",
        "n = int(mask.sum())",
    ),
    Rule(
        "P22", "backport", "Back-ports of upstream behaviour the pinned vLLM lacks", "auto", "error",
        "Some upstream APIs change how vLLM itself behaves rather than add a helper: "
        "`WeightsMapper(orig_to_new_stacked=...)` renames `q_proj`/`k_proj`/`v_proj` (and `gate_proj`/`up_proj`) "
        "checkpoint tensors to the fused parameter and relies on upstream's loader to pass each tensor's shard id "
        "to the parameter's `weight_loader`. vLLM 0.13.0 rejects the keyword, and its `AutoWeightsLoader` passes "
        "no shard id; dropping the keyword would load q, k and v into the whole fused weight.",
        "A back-port written for the pinned vLLM (subclasses of its `WeightsMapper` and `AutoWeightsLoader`; "
        "untagged tensors load exactly as before) is installed once as `vllm_fl/compat/stacked_weights.py`, and "
        "every migrated file's imports of `WeightsMapper` and `AutoWeightsLoader` are re-pointed there, so mappers "
        "and loaders always come in pairs; once installed, later migrations import from it too. Loaders outside the plugin (a pinned parent class's `load_weights`) "
        "still ignore shard ids: check the weights load when the mapper reaches one. Likewise upstream's MoE "
        "router gate `GateLinear` (a `ReplicatedLinear` with an `out_dtype` for router logits; the rest of it "
        "picks fast kernels 0.13.0 lacks) comes from `vllm_fl/compat/gate_linear.py`, and upstream's fused-MoE "
        "construction API (`FusedMoEFactory`, `MoERunner`, `RoutedExperts`, `fused_moe_make_expert_params_mapping`: "
        "gate inside, shared experts added, upstream routing, `routed_experts.w13_weight` parameters) from "
        "`vllm_fl/compat/fused_moe.py`, built on the pinned `FusedMoE`; what 0.13.0 cannot do (fused shared "
        "experts, zero experts, EPLB on CPU) raises `NotImplementedError` at construction.",
        "from .utils import AutoWeightsLoader, WeightsMapper, maybe_prefix",
        "from vllm.model_executor.models.utils import maybe_prefix\n"
        "from vllm_fl.compat.stacked_weights import AutoWeightsLoader, WeightsMapper",
    ),
)

BY_ID: dict[str, Rule] = {r.id: r for r in CATALOG}
BY_KEY: dict[str, Rule] = {r.key: r for r in CATALOG}


def rule(rule_id: str) -> Rule:
    return BY_ID[rule_id]
