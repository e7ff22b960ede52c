"""Checks 2-4 and 6-10 of the analysis on small sources, each positive and negative."""

from __future__ import annotations

import textwrap

from flagos_migrate.analysis import calls, members
from flagos_migrate.analysis.engine import import_blockers
from flagos_migrate.migrate.edits import Edits

from tests.analysis_helpers import analyze, only, pinned


def proposes(f) -> bool:
    """The rewriter acts on this P6 finding (drops or renames the keyword)."""
    return calls.propose_edits(f, Edits())

# -- check 2: calls ---------------------------------------------------------------------------


def test_unknown_kwarg_on_pinned_class_is_p6_not_safe_to_drop():
    code = """
    from vllm.model_executor.models.utils import WeightsMapper
    M = WeightsMapper(orig_to_new_prefix={"a.": "b."}, orig_to_new_stacked={"qkv": ["q", "k", "v"]})
    """
    (f,) = only(analyze(code), "P6")
    assert f.data["kwarg"] == "orig_to_new_stacked" and f.data["safe_drop"] is False
    assert f.data["callee"] == "vllm.model_executor.models.utils.WeightsMapper"
    assert f.data["import_time"] is True  # a module-level call: the import itself fails
    # never dropped: the migration brings the back-port that accepts it (P22), and says so
    assert f.data["backport"] == "vllm_fl.compat.stacked_weights"
    assert "vllm_fl.compat.stacked_weights" in f.fix


def test_accepted_kwargs_and_star_kwargs_are_clean():
    code = """
    from vllm.model_executor.models.utils import WeightsMapper, maybe_prefix
    M = WeightsMapper(orig_to_new_prefix={"a.": "b."})
    def f(**kw):
        maybe_prefix(**kw)
        return WeightsMapper(**kw)
    """
    assert only(analyze(code), "P6") == [] and only(analyze(code), "P7") == []


def test_arity_too_many_and_missing_are_p7():
    code = """
    from vllm.model_executor.models.utils import maybe_prefix
    def f():
        maybe_prefix("a")
        maybe_prefix("a", "b", "c")
        maybe_prefix("a", "b")
    """
    problems = sorted(f.data["problem"] for f in only(analyze(code), "P7"))
    assert problems == ["missing-required", "too-many-positional"]


def test_star_args_at_call_site_are_not_judged_for_arity():
    code = """
    from vllm.model_executor.models.utils import maybe_prefix
    def f(args):
        return maybe_prefix(*args)
    """
    assert only(analyze(code), "P7") == []


def test_super_init_checked_against_pinned_parent():
    code = """
    from vllm.model_executor.models.llama import LlamaForCausalLM
    class Mine(LlamaForCausalLM):
        def __init__(self, *, vllm_config, prefix=""):
            super().__init__(vllm_config=vllm_config, prefix=prefix, no_such_option=True)
    class Fine(LlamaForCausalLM):
        def __init__(self, *, vllm_config, prefix=""):
            super().__init__(vllm_config=vllm_config, prefix=prefix)
    """
    (f,) = only(analyze(code), "P6")
    assert f.data["kwarg"] == "no_such_option" and f.data["callee"] == "super().__init__"
    assert f.line == 5


def test_classmethod_and_staticmethod_calls_through_a_pinned_class_are_judged():
    """Issue 13 class 3: ``PinnedClass.method(...)`` is checked against the pinned method's signature:
    0.13.0's gated_delta_net_state_dtype takes two arguments, mamba2_state_shape has no num_spec."""
    code = """
    from vllm.model_executor.layers.mamba.mamba_utils import MambaStateDtypeCalculator, MambaStateShapeCalculator
    from vllm.multimodal.hasher import MultiModalHasher

    class M:
        @classmethod
        def dtypes(cls, vllm_config):
            return MambaStateDtypeCalculator.gated_delta_net_state_dtype(
                vllm_config.model_config.dtype, vllm_config.cache_config.mamba_cache_dtype, "auto")

        @classmethod
        def shapes(cls):
            return MambaStateShapeCalculator.mamba2_state_shape(
                tp_world_size=1, intermediate_size=8, n_groups=1, num_heads=2, head_dim=4, state_size=4,
                conv_kernel=4, num_spec=0)

    H = MultiModalHasher.hash_kwargs("blake3", mm_hash="x")
    """
    found = analyze(code)
    p7 = only(found, "P7")
    assert [(f.line, f.data["callee"], f.data["given"]) for f in p7] == [
        (8, "vllm.model_executor.layers.mamba.mamba_utils.MambaStateDtypeCalculator.gated_delta_net_state_dtype", 3),
        (17, "vllm.multimodal.hasher.MultiModalHasher.hash_kwargs", 1)]
    assert p7[1].data["import_time"] is True and p7[0].data["import_time"] is False
    (p6,) = only(found, "P6")
    assert p6.data["kwarg"] == "num_spec" and p6.data["safe_drop"] is True


def test_calls_through_a_class_that_fit_or_cannot_be_judged_are_clean():
    code = """
    from vllm.model_executor.layers.mamba.mamba_utils import MambaStateDtypeCalculator, MambaStateShapeCalculator
    from vllm.model_executor.layers.linear import LinearBase

    class Local(MambaStateShapeCalculator):
        @classmethod
        def shapes(cls):
            a = cls.mamba2_state_shape(1, 8, 1, 2, 4, 4, 4)
            b = cls.extra_groups_for_head_shards(1, 2)
            return a, b, cls.local_thing(1, 2, 3)

        @classmethod
        def local_thing(cls, x, y, z):
            return x

    def f(layer, *args):
        MambaStateDtypeCalculator.gated_delta_net_state_dtype("auto", "auto")
        MambaStateDtypeCalculator.gated_delta_net_state_dtype(*args)
        return LinearBase.forward(layer, None)
    """
    found = analyze(code)
    assert only(found, "P6") == [] and only(found, "P7") == []


def test_cls_call_reaching_a_pinned_classmethod_is_judged():
    code = """
    from vllm.model_executor.layers.mamba.mamba_utils import MambaStateShapeCalculator

    class Local(MambaStateShapeCalculator):
        @classmethod
        def shapes(cls):
            return cls.extra_groups_for_head_shards(1, 2, 3)
    """
    (f,) = only(analyze(code), "P7")
    assert f.data["callee"].endswith("MambaStateShapeCalculator.extra_groups_for_head_shards")


def test_vllm_config_attribute_the_pinned_class_lacks_is_p9():
    """``vllm_config.num_speculative_tokens`` (a property added after 0.13.0) made falcon_h1 a "0 left"
    model that failed to construct; existing fields stay clean."""
    code = """
    from vllm.config import VllmConfig

    def shape(vllm_config: VllmConfig):
        return vllm_config.num_speculative_tokens, vllm_config.model_config, vllm_config.speculative_config
    """
    (f,) = only(analyze(code), "P9")
    assert f.data["config_class"].endswith("VllmConfig") and f.data["attr"] == "num_speculative_tokens"


def test_members_read_through_a_pinned_class_or_a_typed_parameter_are_p9():
    """Issue 13 class 3: class attributes and classmethods the pinned class lacks, read through the
    class (at import time in a class body: the import fails) or a parameter annotated with a pinned
    dataclass (the vendored pooler helpers' ``pooling_metadata.get_pooling_cursor()``)."""
    code = """
    from vllm.model_executor.layers.mamba.mamba_utils import MambaStateShapeCalculator
    from vllm.model_executor.models.qwen2 import Qwen2Model
    from vllm.v1.pool.metadata import PoolingMetadata

    class Mine(Qwen2Model):
        hf_to_vllm_mapper = Qwen2Model.hf_to_vllm_mapper

    def ring(n):
        return MambaStateShapeCalculator.append_replayssm_ring(base_shapes=n)

    def pool(hidden, pooling_metadata: PoolingMetadata):
        return pooling_metadata.get_pooling_cursor(), pooling_metadata.prompt_lens
    """
    found = [(f.line, f.data["class"].rsplit(".", 1)[-1], f.data["attr"], f.data["via"], f.data["import_time"])
             for f in only(analyze(code), "P9")]
    assert found == [(7, "Qwen2Model", "hf_to_vllm_mapper", "class", True),
                     (10, "MambaStateShapeCalculator", "append_replayssm_ring", "class", False),
                     (13, "PoolingMetadata", "get_pooling_cursor", "instance", False)]
    blockers = [f for f in import_blockers(analyze(code)) if f.rule == "P9"]
    assert [f.line for f in blockers] == [7]


def test_members_of_what_a_pinned_getter_returns_are_p9():
    """``get_forward_context()`` returns the pinned ``ForwardContext`` (P9 ``instance_getters``): upstream's
    lfm2 reads ``.is_padding`` (a mask only upstream's runner sets) and extract_hidden_states a local's
    ``.slot_mapping``; 0.13.0's dataclass has neither. Fields it has, and rebound locals, stay clean."""
    code = """
    from vllm.forward_context import get_forward_context

    def conv(x):
        pad = get_forward_context().is_padding
        return x, pad, get_forward_context().attn_metadata

    def cache(x):
        forward_context = get_forward_context()
        return forward_context.slot_mapping, forward_context.no_compile_layers

    def rebound(x):
        ctx = get_forward_context()
        ctx = x
        return ctx.slot_mapping
    """
    found = [(f.line, f.data["class"], f.data["attr"], f.data["via"]) for f in only(analyze(code), "P9")]
    assert found == [(5, "vllm.forward_context.ForwardContext", "is_padding", "instance"),
                     (10, "vllm.forward_context.ForwardContext", "slot_mapping", "instance")]
    # the slot mapping has no equivalent read (P9 no_counterpart): the fix says where 0.13.0 keeps one and why
    # that is not upstream's value, not the generic advice
    slot = only(analyze(code), "P9")[1]
    assert slot.fix.startswith("no counterpart on the pinned ForwardContext: ") and "attn_metadata[layer_name]" in slot.fix
    assert "default" not in slot.data


def test_members_the_pinned_class_has_or_unknowable_ones_are_clean():
    code = """
    from vllm.model_executor.layers.mamba.mamba_utils import MambaStateShapeCalculator
    from vllm.config import ModelConfig
    from vllm.model_executor.layers.linear import LinearBase
    from vllm.v1.pool.metadata import PoolingMetadata

    X = MambaStateShapeCalculator.mamba2_state_shape

    def f(layer: LinearBase, pooling_metadata: PoolingMetadata, other: "PoolingMetadata", c: ModelConfig):
        c.moe_num_experts                            # an HF config annotated as ModelConfig (step3_text)
        a = layer.anything_a_subclass_sets          # not a dataclass: subclasses add attributes
        if hasattr(pooling_metadata, "get_pooling_cursor"):
            a = pooling_metadata.get_pooling_cursor()
        other = object()
        return a, other.whatever, MambaStateShapeCalculator.__name__
    """
    assert only(analyze(code), "P9") == []


def test_same_name_different_behaviour_is_a_p7_warning_until_the_pinned_api_gets_what_it_needs():
    """Issue 13 class 6: the pinned get_vit_attn_backend / MMEncoderAttention accept upstream's call
    but take the ViT backend override only as an argument (upstream reads the current config)."""
    code = """
    from vllm.attention.layers.mm_encoder_attention import MMEncoderAttention
    from vllm.model_executor.models.vision import get_vit_attn_backend

    def build(head_dim, dtype, multimodal_config):
        a = get_vit_attn_backend(head_size=head_dim, dtype=dtype)
        b = MMEncoderAttention(4, head_dim, prefix="attn")
        c = get_vit_attn_backend(head_dim, dtype, attn_backend_override=multimodal_config.mm_encoder_attn_backend)
        d = MMEncoderAttention(4, head_dim, None, None, "attn", multimodal_config)
        e = MMEncoderAttention(4, head_dim, multimodal_config=multimodal_config)
        return a, b, c, d, e
    """
    found = only(analyze(code), "P7")
    assert [(f.line, f.severity, f.data["problem"], f.data["missing"]) for f in found] == [
        (6, "warning", "behaviour-needs", ["attn_backend_override"]),
        (7, "warning", "behaviour-needs", ["multimodal_config"])]
    assert "reads mm_encoder_attn_backend from the current MultiModalConfig" in found[0].message


def test_external_callees_and_unknown_bases_are_not_judged():
    code = """
    import torch
    from some_lib import Base
    class X(Base):
        def __init__(self):
            super().__init__(anything=1)
    torch.zeros(1, whatever=2)
    """
    assert analyze(code) == []


# -- check 3: self.X() / super().X() --------------------------------------------------------------


def test_missing_inherited_method_is_p4():
    code = """
    from torch import nn
    from vllm.model_executor.models.interfaces import SupportsMultiModal
    class M(nn.Module, SupportsMultiModal):
        def __init__(self, vllm_config):
            super().__init__()
            with self._mark_tower_model(vllm_config, "image"):
                self.visual = nn.Linear(2, 2)
            self.visual()
    """
    (f,) = only(analyze(code), "P4")
    assert f.data == {**f.data, "method": "_mark_tower_model", "via": "self", "class": "M"}
    edits = Edits()
    members.propose_edits(f, edits)
    assert edits.unwrap == {f.line: "P4"} and f.severity == "error"


def test_inherited_local_and_assigned_methods_are_fine():
    code = """
    from torch import nn
    from vllm.model_executor.models.interfaces import SupportsMultiModal
    class M(nn.Module, SupportsMultiModal):
        def __init__(self):
            super().__init__()
            self.hook = lambda: 1
            self.hook()
            self.helper()
            self.register_buffer("buf", None)
            self.get_language_model()
            super().named_parameters()
        def helper(self):
            return self.buf
    """
    assert only(analyze(code), "P4") == []


def test_super_call_not_defined_by_parents_is_p4():
    code = """
    from torch import nn
    class M(nn.Module):
        def forward(self):
            return super().no_such_parent_method()
    """
    (f,) = only(analyze(code), "P4")
    assert f.data["via"] == "super" and f.severity == "warning"  # torch-only hierarchy: maybe dead code


def test_unknown_base_or_dynamic_attrs_give_no_p4():
    code = """
    from torch import nn
    from elsewhere import Mixin
    class A(nn.Module, Mixin):
        def f(self):
            return self.from_mixin()
    class B(nn.Module):
        def __init__(self, names):
            super().__init__()
            for n in names:
                setattr(self, n, nn.Linear(1, 1))
        def f(self):
            return self.dynamic_one()
    class Plain:
        def f(self):
            return self.anything()
    """
    assert only(analyze(code), "P4") == []


def test_method_provided_by_local_subclass_is_not_reported():
    code = """
    from torch import nn
    class Base(nn.Module):
        def forward(self):
            return self.compute()
    class Child(Base):
        def compute(self):
            return 1
    """
    assert only(analyze(code), "P4") == []


# -- check 4: config attributes --------------------------------------------------------------------


def test_missing_cache_config_attr_is_p9_with_rename():
    code = """
    def build(vllm_config):
        if vllm_config.cache_config.mamba_cache_mode == "all":
            return 1
        cc = vllm_config.cache_config
        return cc.mamba_cache_mode
    """
    fs = only(analyze(code), "P9")
    assert len(fs) == 2
    assert fs[0].data == {"config": "cache_config", "config_class": "vllm.config.cache.CacheConfig",
                          "attr": "mamba_cache_mode", "rename": "enable_prefix_caching"}


def test_existing_attrs_getattr_and_foreign_config_names_are_fine():
    code = """
    from transformers import PretrainedConfig
    def build(vllm_config, model_config: PretrainedConfig):
        a = vllm_config.cache_config.block_size
        b = getattr(vllm_config.cache_config, "mamba_cache_mode", None)
        c = vllm_config.model_config.get_hidden_size()
        d = model_config.num_hidden_layers
        e = vllm_config.parallel_config.tensor_parallel_size
        return a, b, c, d, e
    """
    assert only(analyze(code), "P9") == []


def test_model_config_missing_attr_via_parameter():
    code = """
    from vllm.config import ModelConfig
    def build(model_config: ModelConfig):
        return model_config.no_such_field_here
    """
    (f,) = only(analyze(code), "P9")
    assert f.data["config_class"].endswith("ModelConfig") and "rename" not in f.data


# -- check 7: custom ops -----------------------------------------------------------------------


def test_op_already_registered_by_pinned_module_it_imports_is_p11():
    code = """
    from vllm.model_executor.models.qwen3_next import Qwen3NextGatedDeltaNet
    from vllm.utils.torch_utils import direct_register_custom_op
    def gdn_attention_core(x):
        return x
    direct_register_custom_op(op_name="gdn_attention_core", op_func=gdn_attention_core)
    """
    (f,) = only(analyze(code), "P11")
    assert f.severity == "error" and f.data["op"] == "gdn_attention_core" and f.data["certain"]


def test_guarded_or_new_op_registration_is_fine():
    code = """
    import torch
    from vllm.utils.torch_utils import direct_register_custom_op
    def core(x):
        return x
    if not hasattr(torch.ops.vllm, "gdn_attention_core"):
        direct_register_custom_op(op_name="gdn_attention_core", op_func=core)
    direct_register_custom_op(op_name="fl_brand_new_op", op_func=core)
    """
    assert only(analyze(code), "P11") == []


def test_op_registered_by_another_plugin_module_is_p11():
    code = """
    from vllm.utils.torch_utils import direct_register_custom_op
    def core(x):
        return x
    direct_register_custom_op(op_name="fl_gdn_core", op_func=core)
    """
    (f,) = only(analyze(code), "P11")
    assert f.data["registered_by"] == "vllm_fl.ops.fla" and not f.data["pinned"]


# -- check 8: __init__ skipping its parent -----------------------------------------------------------


def test_nn_module_init_leaving_attrs_unset_is_p12():
    code = """
    from torch import nn
    from vllm.model_executor.models.qwen3_next import Qwen3NextGatedDeltaNet
    class GDN(Qwen3NextGatedDeltaNet):
        def __init__(self, config, prefix=""):
            nn.Module.__init__(self)
            self.hidden_size = config.hidden_size
    """
    (f,) = only(analyze(code), "P12")
    assert f.data["class"] == "GDN" and f.data["parent"].endswith("Qwen3NextGatedDeltaNet")
    assert "hidden_size" not in f.data["missing"] and "prefix" in f.data["missing"]
    assert f.severity == "error"  # forward is inherited: the framework calls it


def test_p12_ignores_methods_a_local_intermediate_class_overrides():
    code = """
    from torch import nn
    from vllm.model_executor.models.qwen3_next import Qwen3NextGatedDeltaNet
    class GDN(Qwen3NextGatedDeltaNet):
        def __init__(self, config, prefix=""):
            nn.Module.__init__(self)
            self.hidden_size = config.hidden_size
    class Base(Qwen3NextGatedDeltaNet):
        def forward(self, hidden_states, output):
            return output
    class LocalGDN(Base):
        def __init__(self, config, prefix=""):
            nn.Module.__init__(self)
            self.hidden_size = config.hidden_size
    """
    found = {f.data["class"]: f for f in only(analyze(code), "P12")}
    direct, via_local = found["GDN"], found.get("LocalGDN")
    read_by_forward_only = {a for a, ms in direct.data["read_by"].items()
                            if {x.split(".")[-1] for x in ms} == {"forward"}}
    assert read_by_forward_only  # the pinned parent's forward reads attributes its __init__ sets
    # Base.forward overrides the pinned forward: what only it reads is not missing, and nothing the
    # framework surely runs reads the rest, so the finding is not certain
    assert via_local is not None and not read_by_forward_only & set(via_local.data["missing"])
    assert all(x.split(".")[-1] != "forward" for ms in via_local.data["read_by"].values() for x in ms)
    assert not via_local.data["certain"] and via_local.severity == "warning"


def test_init_calling_super_is_fine():
    code = """
    from vllm.model_executor.models.qwen3_next import Qwen3NextGatedDeltaNet
    class GDN(Qwen3NextGatedDeltaNet):
        def __init__(self, config, prefix=""):
            super().__init__(config, prefix=prefix)
    """
    assert only(analyze(code), "P12") == []


def test_super_naming_the_parent_skips_its_init_and_reads_on_every_forward_are_p12():
    """Upstream's interns1_pro: super(Qwen3VLForConditionalGeneration, self).__init__() skips that __init__, which
    builds the deepstack buffer; the pinned Qwen3-VL forward and embed_input_ids index it (upstream's read it
    through getattr: None), so the migrated model failed forward."""
    code = """
    from torch import nn
    from vllm.model_executor.models.qwen3_vl import Qwen3VLForConditionalGeneration
    class InternS1Pro(Qwen3VLForConditionalGeneration):
        def __init__(self, *, vllm_config, prefix=""):
            super(Qwen3VLForConditionalGeneration, self).__init__()
            self.config = vllm_config.model_config.hf_config
            self.use_deepstack = True
    """
    (f,) = only(analyze(code), "P12")
    assert f.data["class"] == "InternS1Pro" and "deepstack_input_embeds" in f.data["missing"]
    assert f.severity == "error" and "super(Qwen3VLForConditionalGeneration, self).__init__" in f.message
    # the class replacing forward and embed_input_ids (qwen3_5's way): nothing every forward runs reads it
    replaced = code + """
        def forward(self, input_ids, positions, intermediate_tensors=None, inputs_embeds=None, **kwargs):
            return self.language_model.model(input_ids, positions)
        def embed_input_ids(self, input_ids, multimodal_embeddings=None, *, is_multimodal=None):
            return self.language_model.embed_input_ids(input_ids)
    """
    assert "deepstack_input_embeds" not in {a for f in only(analyze(replaced), "P12") for a in f.data["missing"]}


def test_super_naming_the_parent_is_judged_only_on_the_forward_path():
    """qwen3_vl_moe's Qwen3MoeLLMForCausalLM skips Qwen3MoeForCausalLM.__init__ too: only its EPLB hook reads
    what that __init__ sets, as upstream's own parent does; no finding (not a difference the migration made)."""
    code = """
    from vllm.model_executor.models.qwen3_moe import Qwen3MoeForCausalLM, Qwen3MoeModel
    class LLM(Qwen3MoeForCausalLM):
        def __init__(self, *, vllm_config, prefix=""):
            super(Qwen3MoeForCausalLM, self).__init__()
            self.config = vllm_config.model_config.hf_config
            self.quant_config = vllm_config.quant_config
            self.model = Qwen3MoeModel(vllm_config=vllm_config, prefix=prefix)
            self.lm_head = None
            self.logits_processor = None
            self.make_empty_intermediate_tensors = self.model.make_empty_intermediate_tensors
    """
    assert only(analyze(code), "P12") == []


# -- check 9: merged projections -------------------------------------------------------------------


def test_column_parallel_with_summed_sizes_is_p8_warning():
    code = """
    from torch import nn
    from vllm.model_executor.layers.linear import ColumnParallelLinear
    class A(nn.Module):
        def __init__(self, h, q, kv):
            super().__init__()
            size = q + 2 * kv
            self.qkv = ColumnParallelLinear(h, size, bias=False)
    """
    (f,) = only(analyze(code), "P8")
    assert f.severity == "warning" and f.data["attr"] == "qkv" and f.data["output_sizes"] == ["q", "2 * kv"]


def test_merged_linear_and_plain_sizes_are_fine():
    code = """
    from torch import nn
    from vllm.model_executor.layers.linear import ColumnParallelLinear, MergedColumnParallelLinear
    class A(nn.Module):
        def __init__(self, h, q, kv):
            super().__init__()
            self.a = MergedColumnParallelLinear(h, [q, kv, kv], bias=False)
            self.b = ColumnParallelLinear(h, q, bias=False)
            self.c = ColumnParallelLinear(input_size=h, output_size=q + q)
    """
    assert only(analyze(code), "P8") == []


# -- check 6 (one file): config bridges --------------------------------------------------------------


def test_config_bridge_without_model_type_is_p15():
    code = """
    from transformers import PretrainedConfig
    class NoType(PretrainedConfig):
        def __init__(self, **kw):
            super().__init__(**kw)
    class WithType(PretrainedConfig):
        model_type = "with_type"
    """
    (f,) = only(analyze(code), "P15")
    assert f.data["class"] == "NoType"


# -- check 10: cleanliness -----------------------------------------------------------------------


def test_cleanliness_findings_are_warnings():
    code = '''
    """Docstring may mention /models/ freely."""
    import pdb
    WEIGHTS = "/models/llama-7b"
    SITE = "/usr/lib/python3/site-packages/vllm"
    def f():
        try:
            breakpoint()
        except:
            pass
    '''
    fs = only(analyze(code), "P19")
    kinds = sorted(f.data["kind"] for f in fs)
    assert kinds == ["bare-except", "debug", "debug", "hard-coded-path", "hard-coded-path"]
    assert all(f.severity == "warning" for f in fs)


def test_clean_code_has_no_p19():
    code = """
    import os
    PATH = os.environ.get("MODEL_DIR", "models")
    def f():
        try:
            return 1
        except Exception:
            return 2
    """
    assert only(analyze(code), "P19") == []


def test_is_encoder_is_safe_to_drop_only_next_to_enable_if():
    code = """
    from vllm.compilation.decorators import support_torch_compile
    from vllm.model_executor.models.vision import should_torch_compile_mm_vit

    @support_torch_compile(dynamic_arg_dims={"x": 0}, enable_if=should_torch_compile_mm_vit, is_encoder=True)
    class Gated:
        pass

    @support_torch_compile(dynamic_arg_dims={"x": 0}, is_encoder=True)
    class Ungated:
        pass
    """
    gated, ungated = only(analyze(code), "P6")
    assert (gated.data["kwarg"], gated.data["safe_drop"], proposes(gated)) == ("is_encoder", True, True)
    assert (ungated.data["kwarg"], ungated.data["safe_drop"], proposes(ungated)) == ("is_encoder", False, False)


def test_split_pooling_types_become_the_pinned_keyword():
    """The pinned single pooling type is the sequence one; token poolers of 0.13.0 pool ALL tokens
    unless the type is STEP, so a token type of "ALL" next to a sequence type is dropped; a token type
    alone becomes the pinned type (never a call without the required ``pooling_type``)."""
    calls = ['seq_pooling_type="CLS"', 'tok_pooling_type="ALL"', 'seq_pooling_type="CLS", tok_pooling_type="ALL"',
             'tok_pooling_type="STEP"', 'seq_pooling_type="CLS", tok_pooling_type="STEP"']
    code = "from vllm.model_executor.models.interfaces_base import default_pooling_type\n" + "".join(
        f"\n\n@default_pooling_type({args})\nclass Model{i}:\n    pass\n" for i, args in enumerate(calls))
    found = only(analyze(code), "P6")
    got = [(f.data["kwarg"], f.data.get("rename_to"), f.data["safe_drop"], proposes(f)) for f in found]
    assert got == [("seq_pooling_type", "pooling_type", False, True),
                   ("tok_pooling_type", "pooling_type", False, True),  # alone: the pinned type, as bert spells it
                   ("seq_pooling_type", "pooling_type", False, True), ("tok_pooling_type", None, True, True),
                   ("tok_pooling_type", "pooling_type", False, True),
                   ("seq_pooling_type", None, False, False), ("tok_pooling_type", None, False, False)]


def test_merged_upstream_class_used_only_in_isinstance_maps_to_the_pinned_classes():
    code = """
    from vllm.model_executor.layers.quantization.auto_awq import AutoAWQConfig

    def patch(quant_config):
        if isinstance(quant_config, (AutoAWQConfig, int)) or issubclass(type(quant_config), AutoAWQConfig):
            return None
        return quant_config
    """
    (f,) = only(analyze(code), "P13")
    assert f.data["equivalent"] == [
        ["vllm.model_executor.layers.quantization.awq", "AWQConfig"],
        ["vllm.model_executor.layers.quantization.awq_marlin", "AWQMarlinConfig"]]
    constructed = code.replace("return None", "return AutoAWQConfig()")  # built, not only checked
    assert only(analyze(constructed), "P13") == []
    assert [f.rule for f in analyze(constructed) if f.data.get("name") == "AutoAWQConfig"] == ["P3"]


def test_upstreams_token_pooler_head_base_in_isinstance_is_the_pinned_heads():
    # colpali asserts the head of pooler_for_token_embed is a TokenPoolerHead: a vendored copy of upstream's base is
    # no base of the pinned TokenEmbeddingPoolerHead (load failed: AssertionError); the pinned heads stand for it
    code = """
    from vllm.model_executor.layers.pooler.tokwise.heads import TokenPoolerHead

    def check(pooler):
        head = pooler.head
        assert isinstance(head, TokenPoolerHead)
        return head
    """
    (f,) = only(analyze(code), "P13")
    assert f.data["equivalent"] == [["vllm.model_executor.layers.pooler", "TokenEmbeddingPoolerHead"],
                                    ["vllm.model_executor.layers.pooler", "TokenClassifierPoolerHead"]]
    assert only(analyze(code.replace("return head", "return TokenPoolerHead")), "P13") == []  # used otherwise


OOV = '''
import torch

from vllm.model_executor.models.interfaces import SupportsMultiModal


class M(torch.nn.Module, SupportsMultiModal):
    def __init__(self):
        super().__init__()
        {init}

    def embed_input_ids(self, input_ids, multimodal_embeddings=None, *, is_multimodal=None):
        return self._embed_text_input_ids(input_ids, self.embed, is_multimodal=is_multimodal)
'''


def test_p7_required_keyword_with_a_table_value_is_proposed():
    (f,) = only(analyze(OOV.format(init="self.embed = None")), "P7")
    assert f.data["missing"] == ["handle_oov_mm_token"]
    assert f.data["add_kwargs"] == {"handle_oov_mm_token": "False"}
    assert f.fix.startswith("pass `handle_oov_mm_token=False`: upstream takes no handle_oov_mm_token")


PREFIX_LM = '''
from vllm.attention.selector import get_attn_backend


def backend(head_size, dtype, kv_cache_dtype):
    return get_attn_backend(head_size, dtype, kv_cache_dtype, attn_type="decoder")
'''


def test_p7_get_attn_backend_gets_the_block_size_the_pinned_attention_passes():
    """hrm_text's vendored PrefillPrefixLMAttention: upstream's get_attn_backend reads the block size from the
    current config itself; 0.13.0's requires it, and its own Attention passes cache_config.block_size (golden)."""
    from flagos_migrate.migrate.rewrites import apply_edits

    (f,) = only(analyze(PREFIX_LM), "P7")
    assert f.data["missing"] == ["block_size"]
    edits = Edits()
    assert calls.propose_edits(f, edits)
    out = apply_edits(PREFIX_LM, edits)
    assert out == PREFIX_LM.replace(
        "from vllm.attention.selector import get_attn_backend\n",
        "from vllm.attention.selector import get_attn_backend\nfrom vllm.config import get_current_vllm_config\n",
    ).replace('attn_type="decoder")', 'attn_type="decoder", block_size=get_current_vllm_config().cache_config.block_size)')
    assert only(analyze(out), "P7") == []


def test_p7_no_value_where_upstream_reads_oov_state():
    """Negative: a file that calls configure_mm_token_handling makes upstream's choice depend on
    _has_oov_mm_tokens, which the pinned version lacks: the finding stays, with the signature."""
    code = OOV.format(init="self.configure_mm_token_handling(10, [11])")
    (f,) = only(analyze(code), "P7")
    assert "add_kwargs" not in f.data and f.fix.startswith("pinned signature:")
    assert "add_kwargs" not in only(analyze(OOV.format(init="self._has_oov_mm_tokens = True")), "P7")[0].data


PARENT = '''
import torch
from torch import nn


class Parent(nn.Module):
    def __init__(self):
        super().__init__()
        self.buf = [torch.zeros(2)]
        self.hidden = 4

    def _get(self, n):
        if not getattr(self, "buf", None):
            return None
        if n > self.buf[0].size(0):
            self._resize(n)
        return self.buf

    def _resize(self, n):
        self.buf = [torch.zeros(n, device=self.buf[0].device)]

    def size(self):
        return self.hidden
{extra}'''


def _p12_with_parent(tmp_path, extra=""):
    from flagos_migrate.analysis.engine import AnalysisContext, analyze_source
    from flagos_migrate.plugin.tree import PluginTree

    (tmp_path / "vllm_fl" / "models").mkdir(parents=True)
    (tmp_path / "vllm_fl" / "__init__.py").write_text("")
    (tmp_path / "vllm_fl" / "models" / "__init__.py").write_text("")
    (tmp_path / "vllm_fl" / "models" / "parent.py").write_text(PARENT.format(extra=extra))
    apis = pinned().with_package(PluginTree(tmp_path).index())
    child = textwrap.dedent("""
    from torch import nn
    from vllm_fl.models.parent import Parent
    class Child(Parent):
        def __init__(self):
            nn.Module.__init__(self)
            self.hidden = 8
    """)
    return only(analyze_source(child, AnalysisContext(apis, "vllm_fl.models.child", "child.py")), "P12")


def test_p12_reads_behind_a_getattr_guard_are_not_missing(tmp_path):
    """Upstream's qwen3_5 skips Qwen3VLForConditionalGeneration.__init__ and never sets
    deepstack_input_embeds: every read of it tests it first (or runs only from a method that does)."""
    assert _p12_with_parent(tmp_path) == []


def test_p12_an_unguarded_read_is_still_missing(tmp_path):
    """Negative: a public method (anyone may call it) reading the attribute without a test."""
    found = _p12_with_parent(tmp_path, extra="\n    def size_of_buf(self):\n        return len(self.buf)\n")
    assert [f.data["missing"] for f in found] == [["buf"]]
    assert found[0].data["read_by"]["buf"] == ["Parent.size_of_buf"]


GDN_DTYPE = '''
from vllm.model_executor.layers.mamba.mamba_utils import MambaStateDtypeCalculator


def state_dtype(vllm_config):
    return MambaStateDtypeCalculator.gated_delta_net_state_dtype(
        vllm_config.model_config.dtype,
        vllm_config.cache_config.mamba_cache_dtype,
        {third}
    )
'''


def test_p7_more_positionals_re_pointed_to_the_pinned_method_that_takes_them():
    (f,) = only(analyze(GDN_DTYPE.format(third="vllm_config.cache_config.mamba_ssm_cache_dtype,")), "P7")
    assert f.data["problem"] == "too-many-positional" and f.data["rename_callee"] == "mamba2_state_dtype"
    assert f.fix.startswith("call `mamba2_state_dtype` of the same pinned class instead")
    edits = Edits()
    assert calls.propose_edits(f, edits) and edits.rename_callees == {(f.line, "gated_delta_net_state_dtype"):
                                                                     ("P7", "mamba2_state_dtype")}


def test_p7_no_re_point_for_a_keyword_or_two_positionals():
    """Negative: the table's entry is for three positionals; a keyword is a P6 question, and two
    positionals are what the pinned method takes."""
    kw = only(analyze(GDN_DTYPE.format(third="mamba_ssm_cache_dtype=vllm_config.cache_config.mamba_ssm_cache_dtype,")),
              "P7")
    assert all("rename_callee" not in f.data for f in kw)
    assert only(analyze(GDN_DTYPE.format(third="")), "P7") == []


FP8 = '''
from vllm.config import MultiModalConfig


def get_multimodal_config() -> MultiModalConfig | None:
    return None


def padded(num_heads, head_dim):
    mm_cfg = get_multimodal_config()
    if mm_cfg is None or mm_cfg.mm_encoder_attn_dtype != "fp8":
        return None
    return num_heads * head_dim
'''


def test_p9_a_field_for_a_feature_the_pinned_vllm_lacks_reads_upstreams_default():
    (f,) = only(analyze(FP8), "P9")
    assert f.data["attr"] == "mm_encoder_attn_dtype" and f.data["default"] == "None"
    assert f.fix.startswith("read it as getattr(mm_cfg, 'mm_encoder_attn_dtype', None): FP8 ViT")
    edits = Edits()
    members.propose_edits(f, edits)
    from flagos_migrate.migrate.rewrites import apply_edits

    out = apply_edits(FP8, edits)
    assert 'if mm_cfg is None or getattr(mm_cfg, "mm_encoder_attn_dtype", None) != "fp8":' in out
    assert only(analyze(out), "P9") == []


POOLER = '''
from vllm.config import PoolerConfig


def pooling_types(pooler_config: PoolerConfig):
    assert pooler_config.seq_pooling_type is not None
    return pooler_config.get_seq_pooling_type(), pooler_config.tok_pooling_type, pooler_config.get_tok_pooling_type()
'''
POOLER_AFTER = '''
from vllm.config import PoolerConfig


def pooling_types(pooler_config: PoolerConfig):
    assert getattr(pooler_config, "seq_pooling_type", pooler_config.pooling_type) is not None
    return getattr(pooler_config, "get_seq_pooling_type", lambda: pooler_config.pooling_type)(), getattr(pooler_config, "tok_pooling_type", "STEP" if pooler_config.pooling_type == "STEP" else "ALL"), getattr(pooler_config, "get_tok_pooling_type", lambda: "STEP" if pooler_config.pooling_type == "STEP" else "ALL")()
'''


def test_p9_upstreams_split_pooling_types_read_from_the_pinned_single_one():
    """bert's BertPooler, lfm2's and the vendored seqwise poolers read upstream's sequence pooling type; 0.13.0's
    PoolerConfig holds it as `pooling_type` (its own Pooler.for_embed reads it there); token types as its token
    poolers read it (STEP when it says STEP, else ALL)."""
    from flagos_migrate.migrate.rewrites import apply_edits

    found = only(analyze(POOLER), "P9")
    assert sorted(f.data["attr"] for f in found) == ["get_seq_pooling_type", "get_tok_pooling_type",
                                                     "seq_pooling_type", "tok_pooling_type"]
    edits = Edits()
    for f in found:
        members.propose_edits(f, edits)
    out = apply_edits(POOLER, edits)
    assert out == POOLER_AFTER
    assert only(analyze(out), "P9") == []


POOLER_RUN = '''
import json, sys
from vllm.config import PoolerConfig
ns = {}
if sys.argv[1] == "pinned":
    exec(sys.argv[2], ns)  # the rewritten function, on the pinned PoolerConfig
out = {}
for kind in ("CLS", "LAST", "MEAN", "ALL", "STEP"):
    pooler_config = PoolerConfig(pooling_type=kind)
    if sys.argv[1] == "pinned":
        out[kind] = list(ns["pooling_types"](pooler_config))
    else:  # upstream resolves the one type into the sequence or the token one
        out[kind] = [pooler_config.seq_pooling_type, pooler_config.tok_pooling_type]
print(json.dumps(out))
'''


def test_the_pooling_stand_ins_read_what_upstream_resolves_on_the_real_configs(tmp_path):
    """On the real PoolerConfig of each version: a sequence type set as the one pinned type is what upstream
    resolves as the sequence type, a token type what it resolves as the token type."""
    import json
    import subprocess

    import pytest

    from tests.analysis_helpers import CPU_ENV, PINNED_VENV, REFERENCE_PY
    pinned_py = PINNED_VENV / "bin" / "python"
    if not pinned_py.exists() or not REFERENCE_PY.exists():
        pytest.skip("needs the pinned and the upstream venvs")
    script = tmp_path / "run.py"
    script.write_text(POOLER_RUN)

    def run(py, which):
        proc = subprocess.run([str(py), str(script), which, POOLER_AFTER], capture_output=True, text=True,
                              timeout=300, env={**CPU_ENV, "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    ours, theirs = run(pinned_py, "pinned"), run(REFERENCE_PY, "upstream")
    for kind in ("CLS", "LAST", "MEAN"):  # get_seq_pooling_type()
        assert ours[kind][0] == theirs[kind][0] == kind
    for kind in ("ALL", "STEP"):  # tok_pooling_type, get_tok_pooling_type()
        assert ours[kind][1] == ours[kind][2] == theirs[kind][1] == kind


def test_p9_other_missing_fields_keep_the_finding():
    """Negative: a field not in the table is left for you, and a name bound from an unannotated call
    is not taken for a config object."""
    (f,) = only(analyze(FP8.replace("mm_encoder_attn_dtype", "mm_encoder_unknown_knob")), "P9")
    assert "default" not in f.data and f.fix.endswith("or drop the feature")
    assert only(analyze(FP8.replace(" -> MultiModalConfig | None", "")), "P9") == []


def test_p6_is_sequence_parallel_dropped_from_qwen2_moe_mlp_as_the_pinned_qwen3_next_builds_it():
    code = """
    from vllm.model_executor.models.qwen2_moe import Qwen2MoeMLP as Qwen3NextMLP
    def build(config, gate, sp):
        return Qwen3NextMLP(hidden_size=8, intermediate_size=16, hidden_act="silu", reduce_results=False,
                            expert_gate=gate, is_sequence_parallel=sp, prefix="shared_expert")
    """
    (f,) = only(analyze(code), "P6")
    assert f.data["kwarg"] == "is_sequence_parallel" and f.data["safe_drop"]
    # negative: the same keyword on another callee is not dropped
    other = code.replace("from vllm.model_executor.models.qwen2_moe import Qwen2MoeMLP as Qwen3NextMLP",
                         "from vllm.model_executor.models.qwen2_moe import Qwen2MoeSparseMoeBlock as Qwen3NextMLP")
    assert not any(g.data.get("safe_drop") for g in only(analyze(other), "P6"))


def test_p6_mrope_positions_factor_dropped_from_get_rope():
    code = """
    from vllm.model_executor.layers.rotary_embedding import get_rope
    def rope(config, factor):
        return get_rope(head_size=8, max_position=64, rope_parameters=config.rope_parameters,
                        mrope_positions_factor=factor)
    """
    (f,) = only(analyze(code), "P6")
    assert f.data["kwarg"] == "mrope_positions_factor" and f.data["safe_drop"]
    assert f.fix == "drop `mrope_positions_factor=` (an optional refinement)"


REPLAYSSM = '''
from vllm.config import VllmConfig
from vllm.model_executor.layers.mamba.mamba_utils import MambaStateDtypeCalculator


class ExampleForCausalLM:
    @classmethod
    def get_mamba_state_dtype_from_config(cls, vllm_config: VllmConfig):
        cache_config = vllm_config.cache_config
        base_dtype = MambaStateDtypeCalculator.mamba2_state_dtype(
            vllm_config.model_config.dtype, cache_config.mamba_cache_dtype, cache_config.mamba_ssm_cache_dtype)
        if cache_config.use_replayssm:
            return MambaStateDtypeCalculator.append_replayssm_ring(base_dtype, vllm_config.model_config.dtype)
        return base_dtype
'''


def test_p9_use_replayssm_reads_upstreams_default_false():
    """nemotron_h's mamba state hooks: ReplaySSM does not exist on 0.13.0, so the flag reads False
    (upstream's default) and the ring-buffer branch is the one upstream never takes without it."""
    fs = only(analyze(REPLAYSSM), "P9")
    (f,) = [g for g in fs if g.data.get("attr") == "use_replayssm"]
    assert f.data["default"] == "False"
    edits = Edits()
    members.propose_edits(f, edits)
    from flagos_migrate.migrate.rewrites import apply_edits

    out = apply_edits(REPLAYSSM, edits)
    assert out == REPLAYSSM.replace("if cache_config.use_replayssm:",
                                    'if getattr(cache_config, "use_replayssm", False):')
    assert [g.data.get("attr") for g in only(analyze(out), "P9")] == [
        g.data.get("attr") for g in fs if g is not f]
    # negative: its sibling field is no feature flag with a default that means "off": left for you
    (g,) = [g for g in only(analyze(REPLAYSSM.replace("use_replayssm", "replayssm_buffer_len")), "P9")
            if g.data.get("attr") == "replayssm_buffer_len"]
    assert "default" not in g.data


def test_p9_language_model_only_reads_false_through_an_aliased_multimodal_config():
    code = """
    def text_only(model_config):
        mm_config = model_config.multimodal_config if model_config else None
        return mm_config is None or mm_config.language_model_only
    """
    (f,) = only(analyze(code), "P9")
    assert f.data["config"] == "mm_config" and f.data["default"] == "False"
    # negative: bound from something else, the name says nothing
    assert only(analyze(code.replace("model_config.multimodal_config if model_config else None",
                                     "load_options()")), "P9") == []


def test_p9_mm_config_as_an_attribute_is_not_the_multimodal_config():
    # the pinned pixtral's own file: the image processor's `mm_config` holds its vision settings
    code = """
    class PixtralProcessorAdapter:
        def get_max_image_size(self):
            return self.image_processor.mm_config.max_image_size
    """
    assert only(analyze(code), "P9") == []
    # the same read through a variable bound from the model config is still judged
    bound = """
    def f(model_config):
        mm_config = model_config.multimodal_config
        return mm_config.max_image_size
    """
    (f,) = only(analyze(bound), "P9")
    assert f.data["attr"] == "max_image_size"


STEP1_ATTN = """
from vllm.attention.layer import Attention
def build(num_heads, head_dim, slopes):
    return Attention(num_heads, head_dim, head_dim**-0.5, alibi_slopes=slopes, use_alibi_sqrt=True, prefix="attn")
"""


def test_p6_keyword_the_pinned_callee_takes_only_into_kwargs_it_cannot_use_is_left_for_you():
    """0.13.0's Attention takes any keyword into **extra_impl_args and hands it to the backend impl,
    which has no square-root ALiBi: step1 imported as '0 left' and failed construct."""
    (f,) = only(analyze(STEP1_ATTN), "P6")
    assert f.data["kwarg"] == "use_alibi_sqrt" and not f.data["safe_drop"]
    assert f.fix == ("adapt the call: the pinned `vllm.attention.layer.Attention` takes `use_alibi_sqrt=` only into "
                     "the attention backend impl's __init__ (**extra_impl_args); no pinned backend has square-root ALiBi "
                     "(upstream adds -slope * sqrt(query_pos - key_pos) to each score, triton_attention_helpers.py:432, "
                     "in its Triton backend alone: its Attention refuses every backend whose supports_alibi_sqrt() is "
                     "False, CPU included, attention.py:365; the pinned backends' ALiBi is linear in the distance); "
                     "porting it is an attention backend with that kernel in the plugin, outside the model file, or "
                     "the model cannot be served on the pinned vLLM")
    assert not proposes(f)


RNJ1_ATTN = """
from vllm.attention.layer import Attention
def build(config, layer_type, num_heads, head_dim):
    is_chunked = layer_type == "chunked_attention"
    chunk_lookback = 1 if is_chunked else -1
    return Attention(num_heads, head_dim, head_dim**-0.5, per_layer_sliding_window=config.sliding_window if is_chunked else None,
                     chunk_lookback=chunk_lookback, prefix="attn")
"""


def test_p6_chunk_lookback_into_the_pinned_attentions_kwargs_is_left_for_you():
    """rnj1 was '0 left' and failed construct: 0.13.0's Attention hands chunk_lookback= to the backend impl's
    __init__, and no pinned backend has upstream's chunked (lookback) sliding-window attention."""
    (f,) = only(analyze(RNJ1_ATTN), "P6")
    assert f.data["kwarg"] == "chunk_lookback" and not f.data["safe_drop"]
    assert f.fix == ("adapt the call: the pinned `vllm.attention.layer.Attention` takes `chunk_lookback=` only into "
                     "the attention backend impl's __init__ (**extra_impl_args); no pinned backend has chunked "
                     "(lookback) attention (upstream masks each query to its chunk of sliding_window // "
                     "(chunk_lookback + 1) tokens and chunk_lookback chunks before it, triton_unified_attention.py:998, "
                     "in its Triton backend alone: its Attention asserts TRITON_ATTN when chunk_lookback > -1, CPU "
                     "included, attention.py:390; the pinned ChunkedLocalAttention (Llama 4's attention_chunk_size) "
                     "sees its own chunk only, no lookback); porting it is an attention backend with that kernel in "
                     "the plugin, outside the model file, or the model cannot be served on the pinned vLLM")
    assert not proposes(f)


def test_the_cited_upstream_lines_compute_what_the_p6_texts_say():
    """The file:line evidence in the two forwarded_rejects texts, read from upstream's source."""
    import os
    from pathlib import Path

    import pytest
    up = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0")) / "vllm"
    if not up.is_dir():
        pytest.skip("needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")

    def line(rel: str, n: int) -> str:
        return (up / rel).read_text().splitlines()[n - 1].strip()

    assert line("v1/attention/ops/triton_attention_helpers.py", 432) == "if USE_ALIBI_SQRT:"
    assert line("v1/attention/ops/triton_attention_helpers.py", 436) == "-tl.sqrt((-relative_pos).to(tl.float32)),"
    assert line("model_executor/layers/attention/attention.py", 365) == "if use_alibi_sqrt and not backend_supports_alibi_sqrt:"
    assert line("v1/attention/ops/triton_unified_attention.py", 998) == (
        "if sliding_window_val > 0 and chunk_lookback > -1:")
    assert line("v1/attention/ops/triton_unified_attention.py", 999) == (
        "chunk_size = sliding_window_val // (chunk_lookback + 1)")
    assert line("model_executor/layers/attention/attention.py", 390) == 'if extra_impl_args.get("chunk_lookback", -1) > -1:'


def test_p6_other_keywords_into_the_pinned_attentions_kwargs_stay_clean():
    """Negative: a keyword the table does not name still passes through **extra_impl_args unjudged."""
    assert only(analyze(STEP1_ATTN.replace("use_alibi_sqrt=True", "sinks=None")), "P6") == []


def test_p9_parallel_drafting_reads_upstreams_default_false():
    """llama_eagle3/qwen3_eagle3: the pinned SpeculativeConfig has no parallel drafting (no such field, its
    EAGLE proposer drafts token by token), so the flag reads upstream's default False and the mask-hidden
    buffer for parallel drafting is not built, as upstream does not build it without the flag."""
    code = '''
class Eagle3ExampleForCausalLM:
    def __init__(self, *, vllm_config, prefix=""):
        speculative_config = vllm_config.speculative_config
        self.use_parallel_drafting = speculative_config.parallel_drafting
'''
    (f,) = [g for g in only(analyze(code), "P9") if g.data.get("attr") == "parallel_drafting"]
    assert f.data["default"] == "False"
    edits = Edits()
    members.propose_edits(f, edits)
    from flagos_migrate.migrate.rewrites import apply_edits

    out = apply_edits(code, edits)
    assert out == code.replace("= speculative_config.parallel_drafting",
                               '= getattr(speculative_config, "parallel_drafting", False)')
    assert [g for g in only(analyze(out), "P9") if g.data.get("attr") == "parallel_drafting"] == []


def test_p9_a_read_through_get_multimodal_config_is_judged():
    """upstream's nemotron_vl reads `self.model_config.get_multimodal_config().mm_device_do_normalize`, a
    MultiModalConfig field 0.13.0 lacks: construct failed with AttributeError and no finding. A field the pinned
    class has stays clean."""
    code = '''
class M:
    def __init__(self, model_config):
        self.model_config = model_config
        if self.model_config.get_multimodal_config().mm_device_do_normalize:
            self.norm = 1
        self.limit = self.model_config.get_multimodal_config().limit_per_prompt
'''
    (f,) = only(analyze(code), "P9")
    assert (f.line, f.data["attr"]) == (5, "mm_device_do_normalize")
    assert f.data["config_class"].endswith("MultiModalConfig")
    # 0.13.0's processors always normalise on the host (its merge_mm_processor_kwargs never drops do_normalize),
    # so the model must not normalise again: read as False, upstream's IdentityInputNorm branch
    assert f.data["default"] == "False"
    edits = Edits()
    members.propose_edits(f, edits)
    from flagos_migrate.migrate.rewrites import apply_edits

    out = apply_edits(code, edits)
    assert out == code.replace("if self.model_config.get_multimodal_config().mm_device_do_normalize:",
                               'if getattr(self.model_config.get_multimodal_config(), "mm_device_do_normalize", False):')
    assert only(analyze(out), "P9") == []


def test_p9_a_read_through_get_current_vllm_config_is_judged():
    """upstream's qwen3_dflash.py reads `get_current_vllm_config().use_v2_model_runner` (a VllmConfig property
    0.13.0 lacks; its V2 runner is the env var VLLM_USE_V2_MODEL_RUNNER): it was not reported, and qwen3_dspark /
    qwen3_dflash2 failed construct with AttributeError on '0 left'-looking reads."""
    code = '''
from vllm.config import get_current_vllm_config


def needs_v2(layer_types):
    return layer_types and not get_current_vllm_config().use_v2_model_runner
'''
    (f,) = only(analyze(code), "P9")
    assert f.data["attr"] == "use_v2_model_runner" and f.data["config_class"].endswith("VllmConfig")
    # what the pinned workers decide it by: the GPU worker's V2 runner is VLLM_USE_V2_MODEL_RUNNER, CPU/XPU never
    edits = Edits()
    members.propose_edits(f, edits)
    from flagos_migrate.migrate.rewrites import apply_edits

    out = apply_edits(code, edits)
    assert out == code.replace(
        "get_current_vllm_config().use_v2_model_runner",
        'getattr(get_current_vllm_config(), "use_v2_model_runner", bool(__import__("vllm.envs", '
        'fromlist=["VLLM_USE_V2_MODEL_RUNNER"]).VLLM_USE_V2_MODEL_RUNNER and __import__("vllm.platforms", '
        'fromlist=["current_platform"]).current_platform.is_cuda_alike()))')
    assert only(analyze(out), "P9") == []
    # a field the pinned VllmConfig has, or another function's result: nothing
    assert only(analyze(code.replace("use_v2_model_runner", "cache_config")), "P9") == []
    assert only(analyze(code.replace("get_current_vllm_config()", "load_options()")), "P9") == []


COMPILED = '''
from torch import nn
from vllm.compilation.decorators import support_torch_compile


@support_torch_compile(dynamic_arg_dims={"x": 0})
class Layer(nn.Module):
    def __init__(self, config, quant_config=None, prefix: str = ""):
        super().__init__()


class Encoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList([Layer(config, quant_config=None, prefix="l")])
        self.other = Layer(config=config, prefix="m")
'''


def test_p7_positionals_to_a_class_the_pinned_support_torch_compile_wraps():
    """paddleocr_vl: SiglipEncoderLayer(config, ...) raised TypeError at construct with no finding (the pinned
    wrapper's __init__ is keyword-only, upstream's takes *args); keyword calls and undecorated classes are fine."""
    (f,) = only(analyze(COMPILED), "P7")
    assert f.data == {"callee": "Layer", "problem": "keyword-only-compile", "given": 1, "names": ["config"],
                      "keywords_for_positionals": ["config"]}
    assert f.line == 15 and f.fix.startswith("apply passes them as keywords: config=...")
    assert only(analyze(COMPILED.replace("Layer(config, quant", "Layer(config=config, quant")), "P7") == []
    assert only(analyze(COMPILED.replace('@support_torch_compile(dynamic_arg_dims={"x": 0})\n', "")), "P7") == []


def test_p7_positionals_to_a_compiled_class_pass_by_name_as_upstreams_wrapper_binds_them():
    """Golden: upstream's wrapper hands *args to the class's __init__ in order, so by its parameter names they
    bind alike on the pinned keyword-only wrapper (paddleocr_vl's SiglipEncoderLayer, pixtral's TransformerBlock)."""
    from flagos_migrate.migrate.rewrites import apply_edits

    (f,) = only(analyze(COMPILED), "P7")
    edits = Edits()
    assert calls.propose_edits(f, edits)
    out = apply_edits(COMPILED, edits)
    assert out == COMPILED.replace("Layer(config, quant_config", "Layer(config=config, quant_config")
    assert only(analyze(out), "P7") == []
    # two positionals where upstream's wrapper checks the second against an annotation: a finding only
    two = COMPILED.replace("def __init__(self, config, quant", "def __init__(self, config: object, quant").replace(
        "Layer(config, quant_config=None,", "Layer(config, None,")
    (g,) = only(analyze(two), "P7")
    assert g.data["names"] == ["config", "quant_config"] and "keywords_for_positionals" not in g.data
    assert not calls.propose_edits(g, Edits())
    # unannotated: both by name
    (h,) = only(analyze(two.replace("config: object", "config")), "P7")
    assert h.data["keywords_for_positionals"] == ["config", "quant_config"]


SOURCE = '''
from vllm.model_executor.model_loader import DefaultModelLoader


def weights(model, revision):
    return DefaultModelLoader.Source(model_or_path=model, subfolder="whisper-large-v3", revision=revision)
'''


def test_p6_a_keyword_a_class_nested_in_a_pinned_class_lacks():
    """kimi_audio failed construct (DefaultModelLoader.Source got an unexpected keyword argument 'subfolder') with
    no finding: the index records the nested dataclass's name only; the table gives its fields."""
    (f,) = only(analyze(SOURCE), "P6")
    assert f.data["kwarg"] == "subfolder" and f.data["callee"].endswith("default_loader.DefaultModelLoader.Source")
    # what upstream does with it and the local-directory equivalent, which is no rewrite: a hub id has none
    assert "upstream's loader reads the source's weights from that folder of the repo" in f.message
    assert "`model_or_path=os.path.join(model, subfolder)` hands the pinned loader the same files" in f.message
    assert f.fix.startswith("serve from a local directory and pass `model_or_path=os.path.join(model, subfolder)`")
    edits = Edits()
    assert not calls.propose_edits(f, edits) and not edits  # weights from a subfolder: nothing pinned does it
    assert only(analyze(SOURCE.replace('subfolder="whisper-large-v3", ', "")), "P6") == []


_PREPARE = """import json, os, sys
from vllm.config import LoadConfig
from vllm.model_executor.model_loader.default_loader import DefaultModelLoader
loader = DefaultModelLoader(LoadConfig())
root, sub, pinned = sys.argv[1], sys.argv[2], sys.argv[3] == "pinned"
if pinned:  # 0.13.0: no subfolder; the local directory joined
    folder, files, st = loader._prepare_weights(os.path.join(root, sub), None, True, None)
else:
    folder, files, st, _ = loader._prepare_weights(root, sub, None, True, None)
print(json.dumps([folder, sorted(files), st]))
"""


def test_a_joined_local_directory_gives_the_pinned_loader_upstreams_subfolder_files(tmp_path):
    """The P6 text's claim, on both real loaders: for a local model directory, 0.13.0's _prepare_weights of
    root/whisper-large-v3 finds the files (and filters by the folder's index) upstream's finds with subfolder=."""
    import json
    import os
    import subprocess

    import pytest
    venvs = [os.environ.get(v) for v in ("MMF_PINNED_VENV", "MMF_REFERENCE_VENV")]
    if not all(venvs):
        pytest.skip("needs MMF_PINNED_VENV and MMF_REFERENCE_VENV (vLLM 0.13.0 and 0.33.0)")
    root = tmp_path / "model"
    sub = root / "whisper-large-v3"
    sub.mkdir(parents=True)
    (root / "model.safetensors").write_bytes(b"top")  # the main weights: not the source's
    # an unindexed file beside the shards: both loaders drop it by the folder's own index
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors"):
        (sub / name).write_bytes(b"x")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (sub / "model.safetensors.index.json").write_text(json.dumps(index))
    outs = []
    for venv, side in zip(venvs, ("pinned", "upstream")):
        out = subprocess.run([os.path.join(venv, "bin", "python"), "-c", _PREPARE, str(root), sub.name, side],
                             capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stderr[-2000:]
        outs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1]
    folder, files, use_safetensors = outs[0]
    assert folder == str(sub) and use_safetensors
    assert files == [str(sub / "model-00001-of-00002.safetensors"), str(sub / "model-00002-of-00002.safetensors")]


def test_the_nested_signatures_are_the_pinned_dataclass_fields():
    import ast as _ast

    from flagos_migrate.catalog.tables import NESTED_SIGNATURES

    from tests.analysis_helpers import PINNED_VENV
    roots = list(PINNED_VENV.glob("lib/python3*/site-packages"))
    if not roots:
        import pytest
        pytest.skip("needs the pinned venv (MMF_PINNED_VENV)")
    for qual, params in NESTED_SIGNATURES["0.13.0"].items():
        module, outer, inner = qual.rsplit(".", 2)
        tree = _ast.parse((roots[0] / (module.replace(".", "/") + ".py")).read_text())
        cls = next(n for n in tree.body if isinstance(n, _ast.ClassDef) and n.name == outer)
        nested = next(n for n in cls.body if isinstance(n, _ast.ClassDef) and n.name == inner)
        assert [s.target.id for s in nested.body if isinstance(s, _ast.AnnAssign)] == params, qual


MONO = '''
from vllm.model_executor.models.internvl import InternVLChatModel


class H2OVLChatModel(InternVLChatModel):
    def _init_vision_model(self, config, quant_config, *, prefix: str):
        return None
'''


def test_p6_an_override_the_pinned_parent_calls_with_a_keyword_it_lacks():
    """h2ovl / nvlm_d failed construct (_init_vision_model() got an unexpected keyword argument 'is_mono') with no
    finding: 0.13.0's InternVLChatModel.__init__ passes is_mono=, required by its signature; upstream dropped it."""
    (f,) = only(analyze(MONO), "P6")
    assert f.data["kwargs"] == ["is_mono"] and f.data["callers"] == ["InternVLChatModel.__init__"]
    assert f.data["pinned"].endswith("internvl.InternVLChatModel._init_vision_model") and f.line == 6
    # a keyword the override_keywords table does not name stays for you (interns1's processor)
    proc = '''
from vllm.multimodal.processing import BaseMultiModalProcessor


class InternS1MultiModalProcessor(BaseMultiModalProcessor):
    def _apply_hf_processor_main(self, prompt, mm_items, hf_processor_mm_kwargs, tokenization_kwargs):
        return None
'''
    (g,) = only(analyze(proc), "P6")
    assert g.data["kwargs"] == ["enable_hf_prompt_update"] and "override_keywords" not in g.data
    assert not calls.propose_edits(g, Edits())
    # taking it, or **kwargs: nothing
    assert only(analyze(MONO.replace("*, prefix", "*, is_mono: bool, prefix")), "P6") == []
    assert only(analyze(MONO.replace("prefix: str)", "prefix: str, **kwargs)")), "P6") == []
    # a method the pinned parent does not call on self: nothing
    assert only(analyze(MONO.replace("_init_vision_model", "_init_other")), "P6") == []


def test_p6_an_override_keyword_from_the_table_is_taken_with_upstreams_value():
    """Golden: h2ovl/nvlm_d's _init_vision_model takes is_mono=False (upstream builds the InternVisionModel the pinned
    method builds for False; Mono-InternVL, True, upstream dropped: refused at the call)."""
    from flagos_migrate.migrate.rewrites import apply_edits

    code = MONO.replace("    def _init_vision_model(self, config, quant_config, *, prefix: str):\n",
                        "    def _init_vision_model(\n        self,\n        config,\n        quant_config,\n"
                        "        *,\n        prefix: str,\n    ):\n        \"\"\"The tower.\"\"\"\n")
    (f,) = only(analyze(code), "P6")
    assert f.data["override_keywords"] == {"is_mono": "False"} and f.fix.startswith("apply adds `is_mono=False`")
    edits = Edits()
    assert calls.propose_edits(f, edits)
    out = apply_edits(code, edits)
    assert out == code.replace("        prefix: str,\n    ):\n        \"\"\"The tower.\"\"\"\n", (
        "        prefix: str,\n        is_mono=False,\n    ):\n        \"\"\"The tower.\"\"\"\n"
        "        if is_mono != False:\n"
        "            raise NotImplementedError(\"is_mono other than False: upstream's H2OVLChatModel._init_vision_model "
        "takes no is_mono; it builds what the pinned method builds with is_mono=False\")\n"))
    assert only(analyze(out), "P6") == []
    # one line, no docstring
    out = apply_edits(MONO, edits)
    assert "def _init_vision_model(self, config, quant_config, *, prefix: str, is_mono=False):\n" \
           "        if is_mono != False:\n" in out
    compile(out, "demo.py", "exec")


DUAL_ENCODER = '''
from collections.abc import Callable

import torch
from torch import nn
from vllm.model_executor.models.interfaces import SupportsMultiModal


class CLIPEmbeddingModel(nn.Module, SupportsMultiModal):
    def _embed_text_input_ids(
        self,
        input_ids: torch.Tensor,
        embed_input_ids: Callable[[torch.Tensor], torch.Tensor],
        *,
        is_multimodal: torch.Tensor | None,
    ) -> torch.Tensor:
        return super()._embed_text_input_ids(
            input_ids,
            embed_input_ids,
            is_multimodal=is_multimodal,
        )
'''


def test_p6_a_dual_encoders_text_hook_takes_handle_oov_mm_token_false():
    """clip / siglip failed forward (_embed_text_input_ids() got an unexpected keyword argument
    'handle_oov_mm_token'): 0.13.0's SupportsMultiModal.embed_input_ids passes it; upstream's override takes none
    and embeds through super(), which with False is upstream's plain embedding. Golden: the override takes
    False (any other value refused) and the super() call passes it, the super() call itself untouched."""
    from flagos_migrate.migrate.rewrites import apply_edits

    found = analyze(DUAL_ENCODER)
    (f,) = only(found, "P6")
    assert f.data["override_keywords"] == {"handle_oov_mm_token": "False"}
    (g,) = only(found, "P7")
    edits = Edits()
    assert calls.propose_edits(f, edits) and calls.propose_edits(g, edits)
    out = apply_edits(DUAL_ENCODER, edits)
    assert "        is_multimodal: torch.Tensor | None,\n        handle_oov_mm_token=False,\n    ) -> torch.Tensor:\n" \
           "        if handle_oov_mm_token != False:\n" in out
    assert "        return super()._embed_text_input_ids(\n" in out
    assert "            is_multimodal=is_multimodal,\n            handle_oov_mm_token=False,\n        )\n" in out
    assert only(analyze(out), "P6") == [] and only(analyze(out), "P7") == []


PROCESSING_CTX = '''
from vllm.multimodal.processing import BaseMultiModalProcessor, BaseProcessingInfo


class InternVLProcessingInfo(BaseProcessingInfo):
    def get_image_processor(self, **kwargs):
        kwargs = self.ctx.get_merged_mm_kwargs(kwargs)
        return self.ctx.get_hf_config()


class InternVLProcessor(BaseMultiModalProcessor):
    def _call(self):
        return self.info.ctx.get_merged_mm_kwargs({}), self.info.get_image_processor()
'''


def test_p9_a_member_of_what_a_pinned_base_stores_on_self():
    """internvl failed forward at its first image (InputProcessingContext has no get_merged_mm_kwargs) with no
    finding: `self.ctx` of a BaseProcessingInfo (and `self.info.ctx` of a processor) is the pinned
    InputProcessingContext, which lacks the method; what it has (get_hf_config) and what the processing info
    subclass adds (self.info.get_image_processor) are not reported."""
    found = only(analyze(PROCESSING_CTX), "P9")
    assert [(f.line, f.data["attr"]) for f in found] == [(7, "get_merged_mm_kwargs"), (13, "get_merged_mm_kwargs")]
    assert all(f.data["class"] == "vllm.multimodal.processing.InputProcessingContext" for f in found)
    # settled: upstream's merge (the P22 back-port) stands in where the pinned context has no method
    from flagos_migrate.migrate.rewrites import apply_edits

    edits = Edits()
    for f in found:
        members.propose_edits(f, edits)
    out = apply_edits(PROCESSING_CTX, edits)
    assert "from vllm_fl.compat.mm_processor_kwargs import get_merged_mm_kwargs\n" in out
    assert ('        kwargs = getattr(self.ctx, "get_merged_mm_kwargs", lambda *args, **kwargs: '
            'get_merged_mm_kwargs(self.ctx, *args, **kwargs))(kwargs)\n') in out
    assert only(analyze(out), "P9") == []
    # a file that stores its own `ctx` may hold something else there: not judged
    stored = PROCESSING_CTX.replace("        kwargs = self.ctx", "        self.ctx = kwargs\n        kwargs = self.ctx")
    assert [f.line for f in only(analyze(stored), "P9")] == [14]
