"""P36: layer kinds looked up by their transformers 5 names where the pinned config class keeps the
legacy ones; P37: expert parameters named in upstream's ``routed_experts`` layout while the experts come
from a pinned sibling. Both were granitemoehybrid's runtime failures as "0 left for you" (construct
``KeyError: 'attention'``, then 4 expert parameters never loaded): detectors, goldens, negatives, the
table against both transformers, and the migration of the real file."""

from __future__ import annotations

import ast
import os
import re
import textwrap
from pathlib import Path

import pytest
from analysis_helpers import PINNED_VENV, UPSTREAM_SRC, analyze, empty_plugin, migrate_example, only, pinned
from flagos_migrate.catalog.tables import LEGACY_LAYER_TYPES
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.plugin.tree import PluginTree

REFERENCE_VENV = Path(os.environ.get("MMF_REFERENCE_VENV", Path.home() / ".cache/mmf/venv-vllm033"))


def migrate(tmp_path: Path, name: str, text: str) -> Migration:
    return migrate_example(tmp_path, text, name)


# -- P36 -------------------------------------------------------------------------------------------

HYBRID = '''
from transformers import GraniteMoeHybridConfig

ALL_DECODER_LAYER_TYPES = {
    "full_attention": "AttentionLayer",
    "linear_attention": "MambaLayer",
}


def get_layer(config: GraniteMoeHybridConfig, layer_idx: int) -> str:
    return ALL_DECODER_LAYER_TYPES[config.layer_types[layer_idx]]


def attention_layers(config: GraniteMoeHybridConfig) -> list[int]:
    return [i for i, t in enumerate(config.layer_types) if t in ("full_attention",)]


def first_mamba(config: GraniteMoeHybridConfig) -> int:
    for i, kind in enumerate(config.layers_block_type):
        if kind != "linear_attention":
            continue
        return i
    return -1
'''

HYBRID_AFTER = HYBRID.replace('"full_attention"', '"attention"').replace('"linear_attention"', '"mamba"')


def test_each_lookup_and_comparison_of_a_layer_kind_is_reported_with_the_legacy_name():
    found = only(analyze(HYBRID), "P36")
    assert [(f.line, f.col, f.data["value"], f.data["legacy"]) for f in found] == [
        (5, 4, "full_attention", "attention"), (6, 4, "linear_attention", "mamba"),
        (15, 65, "full_attention", "attention"), (20, 19, "linear_attention", "mamba")]
    assert found[0].message == (
        '"full_attention" is transformers 5\'s name of a layer kind: its PreTrainedConfig renames a checkpoint\'s '
        'legacy layer_types on load ("attention" -> "full_attention", configuration_utils._LEGACY_LAYER_TYPE_REMAP); '
        "the pinned transformers' GraniteMoeHybridConfig keeps \"attention\" and accepts only the legacy names, so "
        "this lookup raises KeyError when the model is built")
    assert found[2].message.endswith("so this comparison never holds")
    assert {f.severity for f in found} == {"error"}
    assert found[0].fix == 'the legacy name "attention", the one the pinned config holds'


def test_the_migration_writes_the_legacy_names_and_nothing_else(tmp_path):
    m = migrate(tmp_path, "hybrid", HYBRID)
    assert m.model_unit.text == textwrap.dedent(HYBRID_AFTER)
    assert "P36" in m.model_unit.rules and not [f for f in m.left() if f.rule == "P36"]
    # negative: the migrated text has nothing left for the rule
    assert only(analyze(HYBRID_AFTER), "P36") == []


def test_quotes_and_the_other_strings_of_the_line_are_kept(tmp_path):
    code = '''
    from transformers import GraniteMoeHybridConfig

    KINDS = {'full_attention': "full_attention layer", "linear_attention": 'linear_attention layer'}


    def kind(config: GraniteMoeHybridConfig, i: int) -> str:
        return KINDS[config.layer_types[i]]
    '''
    m = migrate(tmp_path, "hybrid_quotes", code)
    assert "KINDS = {'attention': \"full_attention layer\", \"mamba\": 'linear_attention layer'}\n" in m.model_unit.text


def test_negatives_other_configs_plain_values_and_tables_not_looked_up_by_layer_kind():
    # Qwen3NextConfig names its layer kinds the transformers 5 way on the pin too: not in the table
    assert only(analyze(HYBRID.replace("GraniteMoeHybridConfig", "Qwen3NextConfig")), "P36") == []
    # the config class of the table, the names used otherwise: a value passed on, a table of rope
    # parameters, a dict looked up by something else, a comparison with a plain string
    code = '''
    from transformers import GraniteMoeHybridConfig

    ROPE = {"full_attention": 10000.0}
    KINDS = {"full_attention": 1, "linear_attention": 2}


    def build(config: GraniteMoeHybridConfig, name: str):
        theta = ROPE[name]
        make(kind="full_attention", theta=theta)
        return KINDS[name], name == "linear_attention"
    '''
    assert only(analyze(code), "P36") == []


@pytest.mark.skipif(not ((PINNED_VENV / "lib").is_dir() and (REFERENCE_VENV / "lib").is_dir()),
                    reason="needs the pinned venv (MMF_PINNED_VENV) and the reference venv (MMF_REFERENCE_VENV)")
def test_the_table_is_transformers_5s_remap_of_the_names_each_pinned_class_keeps():
    """Each entry: transformers 5's _LEGACY_LAYER_TYPE_REMAP maps the legacy name to the new one, and the
    pinned transformers' class validates its layer_types against the legacy names. Complete: every 4.57.6
    configuration module that spells a legacy name of the remap as a layer kind is in the table."""
    ref = next(REFERENCE_VENV.glob("lib/python3*/site-packages"))
    utils = ast.parse((ref / "transformers/configuration_utils.py").read_text())
    remap = next(ast.literal_eval(n.value) for n in utils.body if isinstance(n, ast.Assign)
                 and [getattr(t, "id", None) for t in n.targets] == ["_LEGACY_LAYER_TYPE_REMAP"])
    models = next(PINNED_VENV.glob("lib/python3*/site-packages")) / "transformers/models"
    table = LEGACY_LAYER_TYPES["0.13.0"]
    for cls, names in table.items():
        assert all(remap[legacy] == new for new, legacy in names.items()), cls
        src = next(p for p in models.glob("*/configuration_*.py") if f"class {cls}(" in p.read_text()).read_text()
        allowed = re.search(r"layer_type not in (\[[^\]]*\])", src)
        assert allowed and sorted(ast.literal_eval(allowed.group(1))) == sorted(names.values()), cls
    spelled = set()
    for path in models.glob("*/configuration_*.py"):
        src = path.read_text()
        if "layer_types" in src and re.search(r"layer_type not in \[[^\]]*(" + "|".join(
                f'"{re.escape(k)}"' for k in remap) + ")", src):
            spelled |= set(re.findall(r"^class (\w+Config)\(", src, flags=re.M))
    assert spelled == set(table)


# -- P37 -------------------------------------------------------------------------------------------

ROUTED = '''
from vllm.model_executor.models.granitemoe import GraniteMoeMoE
from vllm.model_executor.models.granitemoeshared import GraniteMoeSharedMLP


def expert_name(n: str) -> str:
    return n.replace(".input_linear.", ".experts.routed_experts.w13_")
'''


def test_a_pinned_sibling_whose_experts_are_the_pinned_fused_moe_is_reported():
    found = only(analyze(ROUTED), "P37")
    assert [(f.line, f.col, f.data) for f in found] == [
        (2, 0, {"module": "vllm.model_executor.models.granitemoe", "name": "GraniteMoeMoE"})]
    assert found[0].message == (
        "`GraniteMoeMoE` comes from the pinned vllm.model_executor.models.granitemoe, whose experts are the pinned "
        "FusedMoE (parameters `experts.w13_weight`, `experts.w2_weight`), while this file names upstream's layout "
        "(`experts.routed_experts.w13_weight`, the fused-MoE refactor vllm#41184): those names are not in the "
        "model, so its expert weights do not load (a loader that skips unknown names leaves them unloaded, one "
        "that looks them up raises KeyError)")
    assert found[0].fix == ("take upstream's granitemoe along (its experts are the P22 back-port's FusedMoEFactory, "
                            "the layout this file names)")


def test_p37_negatives_pinned_layout_names_own_factory_and_the_plugins_copy():
    # the pinned layout's names (0.13.0's own granitemoehybrid)
    assert only(analyze(ROUTED.replace("routed_experts.w13_", "w13_")), "P37") == []
    # the file builds its experts itself with upstream's factory (the P22 back-port's layout)
    own = ROUTED + "from vllm.model_executor.layers.fused_moe import FusedMoEFactory\n"
    assert only(analyze(own), "P37") == []
    # the class comes from the plugin's copy of upstream's sibling (what apply writes)
    copy = ROUTED.replace("vllm.model_executor.models.granitemoe ", "vllm_fl.models.granitemoe ")
    assert only(analyze(copy, plugin=False), "P37") == []


# glm4_moe_lite: Glm4MoE from the pinned glm4_moe, and expert rows from upstream's mapping helper, whose default
# prefix names `experts.routed_experts.w13_` (load failed: KeyError 'layers.1.mlp.experts.routed_experts.w2_weight')
HELPER_ROUTED = '''
from vllm.model_executor.layers.fused_moe import fused_moe_make_expert_params_mapping
from vllm.model_executor.models.glm4_moe import Glm4MoE


def load_weights(self, weights):
    return fused_moe_make_expert_params_mapping(self, ckpt_gate_proj_name="gate_proj", ckpt_down_proj_name="down_proj",
                                                ckpt_up_proj_name="up_proj", num_experts=4)
'''


def test_upstreams_mapping_helper_names_the_routed_layout_too():
    found = only(analyze(HELPER_ROUTED), "P37")
    assert [(f.line, f.data) for f in found] == [(3, {"module": "vllm.model_executor.models.glm4_moe",
                                                      "name": "Glm4MoE"})]
    # with the pinned layout's prefix the rows name `experts.w13_`: nothing to report
    pinned_prefix = HELPER_ROUTED.replace("num_experts=4)", "num_experts=4, routed_experts_prefix=\"\")")
    assert only(analyze(pinned_prefix), "P37") == []


@pytest.mark.slow
@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm").is_dir(), reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
def test_granitemoehybrid_gets_the_legacy_layer_kinds_and_upstreams_granitemoe(tmp_path):
    """The real granitemoehybrid, which failed construct (KeyError: 'attention') and then load (its experts
    unloaded) as "0 left for you": both names of its layer table become the legacy ones, upstream's
    granitemoe comes along (its GraniteMoeMoE builds FusedMoEFactory), the pinned granitemoeshared stays
    (GraniteMoeSharedMLP holds no experts), and nothing is left."""
    plugin = empty_plugin(tmp_path / "plugin")
    m = Migration("granitemoehybrid", Upstream(open_upstream(str(UPSTREAM_SRC))), PluginTree(plugin), pinned()).run()
    text = m.model_unit.text
    assert ('    "attention": GraniteMoeHybridAttentionDecoderLayer,\n'
            '    "mamba": GraniteMoeHybridMambaDecoderLayer,\n') in text
    assert "from vllm_fl.models.granitemoe import GraniteMoeMoE\n" in text
    assert "from vllm.model_executor.models.granitemoeshared import GraniteMoeSharedMLP\n" in text
    assert "vllm_fl.models.granitemoe" in m.units and "vllm_fl.models.granitemoeshared" not in m.units
    assert {"P36"} <= m.model_unit.rules
    assert {f.rule for f in m.model_unit.before} >= {"P36"}
    assert m.left() == []


@pytest.mark.slow
@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm").is_dir(), reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
def test_glm4_moe_lite_gets_upstreams_glm4_moe_and_keeps_a_moved_helper_pinned(tmp_path):
    """The real glm4_moe_lite, which failed load (KeyError '...experts.routed_experts.w2_weight'): its rows come
    from upstream's mapping helper, so upstream's glm4_moe comes along (P37); the helper it imports from
    upstream's utils (get_spec_layer_idx_from_weight_name, which 0.13.0 defines in its model modules, P13)
    then comes from a pinned definer that stays pinned, not from the plugin's glm4_moe, which lacks it."""
    plugin = empty_plugin(tmp_path / "plugin")
    m = Migration("glm4_moe_lite", Upstream(open_upstream(str(UPSTREAM_SRC))), PluginTree(plugin), pinned()).run()
    text = m.model_unit.text
    assert "from vllm_fl.models.glm4_moe import Glm4MixtureOfExperts, Glm4MoE, Glm4MoeMLP\n" in text
    assert "from vllm.model_executor.models.deepseek_v2 import get_spec_layer_idx_from_weight_name\n" in text
    assert "vllm_fl.models.glm4_moe" in m.units


# -- P39 -------------------------------------------------------------------------------------------

LFM2_VL = '''
from torch import nn
from transformers.models.lfm2_vl.configuration_lfm2_vl import Lfm2VlConfig


class Projector(nn.Module):
    def __init__(self, config: Lfm2VlConfig):
        super().__init__()
        self.projector_use_layernorm = config.projector_use_layernorm
        if self.projector_use_layernorm:
            self.layer_norm = nn.LayerNorm(4)


class Model(nn.Module):
    def __init__(self, *, vllm_config):
        super().__init__()
        self.config = vllm_config.model_config.hf_config
        self.norm = self.config.projector_use_layernorm
'''


def test_a_field_transformers_5_added_is_read_with_its_default():
    # lfm2_vl failed construct: 'Lfm2VlConfig' object has no attribute 'projector_use_layernorm' (4.57.6's class)
    found = only(analyze(LFM2_VL), "P39")
    assert [(f.line, f.data["attr"], f.data["default"]) for f in found] == [
        (9, "projector_use_layernorm", "True"), (18, "projector_use_layernorm", "True")]
    assert found[0].message.startswith("`config.projector_use_layernorm`: transformers 5's Lfm2VlConfig declares "
                                       "`projector_use_layernorm` (default True")
    assert found[0].severity == "error"


def test_the_migration_reads_the_field_with_the_default_and_leaves_the_modules_own(tmp_path):
    m = migrate(tmp_path, "lfm2_vl_mini", LFM2_VL)
    text = m.model_unit.text
    assert 'self.projector_use_layernorm = getattr(config, "projector_use_layernorm", True)' in text
    assert 'self.norm = getattr(self.config, "projector_use_layernorm", True)' in text
    assert "if self.projector_use_layernorm:" in text
    assert not [f for f in m.left() if f.rule == "P39"]


def test_no_finding_without_the_transformers_class():
    code = LFM2_VL.replace("from transformers.models.lfm2_vl.configuration_lfm2_vl import Lfm2VlConfig",
                           "Lfm2VlConfig = object")
    assert only(analyze(code), "P39") == []


@pytest.mark.skipif(not ((PINNED_VENV / "lib").is_dir() and (REFERENCE_VENV / "lib").is_dir()),
                    reason="needs the pinned venv (MMF_PINNED_VENV) and the reference venv (MMF_REFERENCE_VENV)")
def test_each_added_field_is_transformers_5s_with_its_default_and_absent_from_the_pinned_class():
    from flagos_migrate.catalog.tables import ADDED_CONFIG_FIELDS
    ref = next(REFERENCE_VENV.glob("lib/python3*/site-packages")) / "transformers/models"
    old = next(PINNED_VENV.glob("lib/python3*/site-packages")) / "transformers/models"
    for cls, fields in ADDED_CONFIG_FIELDS["0.13.0"].items():
        new_src = next(p for p in ref.glob("*/configuration_*.py") if f"class {cls}(" in p.read_text())
        old_src = next(p for p in old.glob("*/configuration_*.py") if f"class {cls}(" in p.read_text())
        new_cls = next(n for n in ast.parse(new_src.read_text()).body if isinstance(n, ast.ClassDef) and n.name == cls)
        declared = {s.target.id: ast.unparse(s.value) for s in new_cls.body
                    if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value is not None}
        for attr, entry in fields.items():
            if entry.get("derived"):  # a value transformers 5 computes: test_tf5_derived_fields
                continue
            assert declared.get(attr) == entry["default"], (cls, attr)
            assert attr not in old_src.read_text(), (cls, attr)


# -- P40 -------------------------------------------------------------------------------------------

LONGCAT = '''
from torch import nn
from transformers import FalconH1Config, LongcatFlashConfig


class DecoderLayer(nn.Module):
    def __init__(self, vllm_config, config: LongcatFlashConfig, prefix: str = ""):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.moe = (config.moe_intermediate_size, config.n_routed_experts)


class Model(nn.Module):
    def __init__(self, *, vllm_config):
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.size = config.intermediate_size


def kinds(config: "FalconH1Config | None") -> list[str]:
    return config.layer_types
'''


def test_an_alias_transformers_5_added_is_found_where_the_config_is_annotated_with_the_class():
    # longcat_flash with LongCat-Flash's config.json: 'LongcatFlashConfig' object has no attribute 'intermediate_size'
    found = only(analyze(LONGCAT), "P40")
    assert [(f.line, f.data["attr"], f.data["target"], bool(f.data.get("manual"))) for f in found] == [
        (9, "intermediate_size", "ffn_hidden_size", False),
        (10, "moe_intermediate_size", "expert_ffn_hidden_size", False),
        (21, "layer_types", "layers_block_type", True)]
    assert found[0].message.startswith("`config.intermediate_size`: transformers 5's LongcatFlashConfig reads "
                                       "`intermediate_size` as `ffn_hidden_size` through its attribute_map")
    assert "no rename is the same here" in found[2].message and found[0].severity == "error"


def test_the_migration_reads_the_aliased_field_and_leaves_the_rest(tmp_path):
    m = migrate(tmp_path, "longcat_mini", LONGCAT)
    text = m.model_unit.text
    assert "self.intermediate_size = config.ffn_hidden_size\n" in text  # the module's own attribute stays
    assert "self.moe = (config.expert_ffn_hidden_size, config.n_routed_experts)" in text
    assert "self.size = config.intermediate_size\n" in text  # not annotated: another class, maybe
    assert "return config.layer_types\n" in text
    assert [(f.rule, f.data["attr"]) for f in m.left() if f.rule == "P40"] == [("P40", "layer_types")]


MTP = '''
from torch import nn
from transformers import LongcatFlashConfig

from vllm.model_executor.models.deepseek_v2 import DeepseekV2DecoderLayer


class PredictorLayer(nn.Module):
    def __init__(self, vllm_config, prefix: str):
        super().__init__()
        self.mtp_block = DeepseekV2DecoderLayer(vllm_config, prefix)


def block(vllm_config, config: LongcatFlashConfig, prefix: str):
    return DeepseekV2DecoderLayer(vllm_config, prefix, config=config)
'''


def test_a_pinned_class_built_from_a_config_whose_alias_it_reads_is_a_finding():
    # longcat_flash_mtp on 0.13.0: the pinned DeepseekV2DecoderLayer reads config.intermediate_size of the
    # hf_config, 4.57.6's LongcatFlashConfig (construct failed on any real config.json): was "0 left for you"
    found = only(analyze(MTP, module="vllm_fl.models.longcat_flash_mtp"), "P40")
    assert [(f.line, f.data["pinned_class"], f.data["attr"], f.data["target"], f.data["manual"]) for f in found] == [
        (11, "vllm.model_executor.models.deepseek_v2.DeepseekV2DecoderLayer", "intermediate_size", "ffn_hidden_size",
         False),
        (15, "vllm.model_executor.models.deepseek_v2.DeepseekV2DecoderLayer", "intermediate_size", "ffn_hidden_size",
         True)]
    assert found[0].message == (
        "`DeepseekV2DecoderLayer(...)`: the pinned vllm.model_executor.models.deepseek_v2.DeepseekV2DecoderLayer "
        "(vllm/model_executor/models/deepseek_v2.py:1099) reads `config.intermediate_size` of the config it is given, "
        "here the model's hf_config, the pinned transformers' LongcatFlashConfig, which has no `intermediate_size` "
        "(transformers 5's LongcatFlashConfig reads it as `ffn_hidden_size` through its attribute_map), so the model "
        "fails with AttributeError when it is built; the rewrite of this file does not reach pinned code")
    assert "here `config`" in found[1].message
    # another model's file: its hf_config is not known to be LongcatFlashConfig, the annotated call still is
    assert [f.line for f in only(analyze(MTP), "P40")] == [15]
    # the file gives the config the alias first, as the pinned longcat_flash_mtp.py does: settled (the annotated
    # `config` of the other call is another object: still a finding)
    settled = MTP.replace("        self.mtp_block =", "        vllm_config.model_config.hf_config.intermediate_size = 1\n"
                          "        self.mtp_block =")
    assert [f.line for f in only(analyze(settled, module="vllm_fl.models.longcat_flash_mtp"), "P40")] == [16]


@pytest.mark.skipif(not (PINNED_VENV / "lib").is_dir(), reason="needs the pinned venv (MMF_PINNED_VENV)")
def test_each_hf_config_class_is_the_one_the_pinned_speculative_config_hands_the_draft():
    from flagos_migrate.catalog.tables import HF_CONFIG_CLASSES

    site = next(PINNED_VENV.glob("lib/python3*/site-packages"))
    spec = (site / "vllm/config/speculative.py").read_text()
    for module, cls in HF_CONFIG_CLASSES["0.13.0"].items():
        src = next(p for p in (site / "transformers/models").glob("*/configuration_*.py") if f"class {cls}(" in p.read_text())
        model_type = re.search(r'model_type = "([^"]+)"', src.read_text()).group(1)
        # the draft's model_type is rewritten on the target's config object: its class stays the target's
        assert f'hf_config.model_type == "{model_type}"' in spec and f'hf_config.model_type = "{module}"' in spec, module


def test_the_migration_sets_the_hf_configs_alias_before_the_pinned_class_is_built(tmp_path):
    # as the pinned longcat_flash_mtp.py (hf_config.intermediate_size from FlashConfig's ffn_hidden_size): every
    # read of the alias then gets what transformers 5's attribute_map returns. An annotated config is left: the
    # P40 rewrite of its reads turns a store of the alias into a store of the target
    m = migrate(tmp_path, "longcat_flash_mtp", MTP)
    assert m.model_unit.text == MTP.replace(
        "        self.mtp_block =",
        "        vllm_config.model_config.hf_config.intermediate_size = vllm_config.model_config.hf_config.ffn_hidden_size\n"
        "        self.mtp_block =")
    assert [(f.rule, f.line) for f in m.fixed() if f.rule == "P40"] == [("P40", 11)]
    assert [(f.rule, f.line, f.data["attr"]) for f in m.left() if f.rule == "P40"] == [
        ("P40", 16, "intermediate_size")]
    # the alias set on another config than the one the class reads settles nothing
    other = MTP.replace("        self.mtp_block =", "        other.intermediate_size = 1\n        self.mtp_block =")
    assert [f.line for f in only(analyze(other, module="vllm_fl.models.longcat_flash_mtp"), "P40")] == [12, 16]


def test_no_alias_finding_without_the_transformers_class():
    code = LONGCAT.replace("from transformers import FalconH1Config, LongcatFlashConfig",
                           "LongcatFlashConfig = FalconH1Config = object")
    assert only(analyze(code), "P40") == []


@pytest.mark.skipif(not ((PINNED_VENV / "lib").is_dir() and (REFERENCE_VENV / "lib").is_dir()),
                    reason="needs the pinned venv (MMF_PINNED_VENV) and the reference venv (MMF_REFERENCE_VENV)")
def test_each_alias_is_transformers_5s_and_unknown_to_the_pinned_class_which_sets_its_target():
    from flagos_migrate.catalog.tables import ATTRIBUTE_ALIASES

    def classes(venv):
        root = next(venv.glob("lib/python3*/site-packages")) / "transformers/models"
        out = {}
        for path in root.glob("*/configuration_*.py"):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef):
                    out[node.name] = node
        return out

    def amap(cls):
        for s in cls.body:
            if isinstance(s, (ast.Assign, ast.AnnAssign)) and "attribute_map" in ast.unparse(
                    s.targets[0] if isinstance(s, ast.Assign) else s.target):
                return ast.literal_eval(s.value)
        return {}

    new, old = classes(REFERENCE_VENV), classes(PINNED_VENV)
    for cls, aliases in ATTRIBUTE_ALIASES["0.13.0"].items():
        sets = {n.attr for n in ast.walk(old[cls]) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                and isinstance(n.value, ast.Name) and n.value.id == "self"}
        for alias, entry in aliases.items():
            assert amap(new[cls]).get(alias) == entry["target"], (cls, alias)
            assert alias not in amap(old[cls]) and alias not in sets, (cls, alias)
            assert (entry["target"] in sets) or entry.get("manual"), (cls, alias)  # the rename reads a set field
