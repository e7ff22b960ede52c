"""P27-P29 (issue 13, classes 6 and 7: what the pinned framework around a model file does differently):
golden before/after text through the migration engine (as the model file of the table's name),
negative fixtures, the validator's view, and the rule tables re-derived from both sources."""

from __future__ import annotations

import ast
import os
import shutil
import textwrap
from pathlib import Path

import pytest
from flagos_migrate.catalog.tables import POOLING_ARCHS, REPLACED_CONFIG_CLASSES, ROPE_LAYOUTS
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.plugin.tree import PluginTree

from tests.analysis_helpers import (
    PINNED_VENV,
    UPSTREAM_MINI,
    UPSTREAM_SRC,
    analyze,
    empty_plugin,
    migrate_example,
    only,
    pinned,
)


def migrate(tmp_path: Path, name: str, text: str, extra: dict[str, str] | None = None) -> Migration:
    return migrate_example(tmp_path, text, name, extra)


# -- P27: the inner model's load_weights for the pinned pooling adapter ------------------------------

GEMMA2 = '''\
from collections.abc import Iterable

import torch
from torch import nn
from vllm.model_executor.models.utils import AutoWeightsLoader, WeightsMapper


class Gemma2Model(nn.Module):
    def __init__(self, *, vllm_config, prefix: str = ""):
        super().__init__()
        self.norm = nn.LayerNorm(4)


class Gemma2ForCausalLM(nn.Module):
    hf_to_vllm_mapper = WeightsMapper(
        orig_to_new_stacked={
            ".q_proj": (".qkv_proj", "q"),
            ".k_proj": (".qkv_proj", "k"),
        }
    )

    def __init__(self, *, vllm_config, prefix: str = ""):
        super().__init__()
        self.model = Gemma2Model(vllm_config=vllm_config, prefix=prefix)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        loader = AutoWeightsLoader(self)
        return loader.load_weights(weights, mapper=self.hf_to_vllm_mapper)
'''

GEMMA2_AFTER = '''\
from collections.abc import Iterable

import torch
from torch import nn
from vllm_fl.compat.stacked_weights import AutoWeightsLoader, WeightsMapper


class Gemma2Model(nn.Module):
    def __init__(self, *, vllm_config, prefix: str = ""):
        super().__init__()
        self.norm = nn.LayerNorm(4)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        loader = AutoWeightsLoader(self)
        return loader.load_weights(weights, mapper=Gemma2ForCausalLM.hf_to_vllm_mapper)


class Gemma2ForCausalLM(nn.Module):
    hf_to_vllm_mapper = WeightsMapper(
        orig_to_new_stacked={
            ".q_proj": (".qkv_proj", "q"),
            ".k_proj": (".qkv_proj", "k"),
        }
    )

    def __init__(self, *, vllm_config, prefix: str = ""):
        super().__init__()
        self.model = Gemma2Model(vllm_config=vllm_config, prefix=prefix)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        loader = AutoWeightsLoader(self)
        return loader.load_weights(weights)
'''


def test_p27_inner_model_gets_load_weights_and_the_mapper_runs_there(tmp_path):
    m = migrate(tmp_path, "gemma2", GEMMA2)
    assert m.model_unit.text == GEMMA2_AFTER
    assert "P27" in m.model_unit.rules
    (f,) = only(m.model_unit.before, "P27")
    assert f.data["archs"] == ["Gemma2Model"] and f.data["inner"] == "Gemma2Model"
    assert "self.model.load_weights" in f.message
    assert not only(m.model_unit.after, "P27")


def test_p27_negatives_and_what_stays_a_finding(tmp_path):
    # the migrated text: nothing left
    assert only(analyze(GEMMA2_AFTER, module="vllm_fl.models.gemma2"), "P27") == []
    # another module name: not an architecture the pooling adapter wraps
    assert only(analyze(GEMMA2, module="vllm_fl.models.gemma9"), "P27") == []
    # the inner model loads its own names (upstream's LlamaModel): nothing to say
    llama = GEMMA2.replace("Gemma2", "Llama").replace(
        "        self.norm = nn.LayerNorm(4)\n",
        "        self.norm = nn.LayerNorm(4)\n\n    def load_weights(self, weights):\n        return set()\n", 1)
    assert only(analyze(llama, module="vllm_fl.models.llama"), "P27") == []
    # a mapper that renames prefixes would run on other names inside the model: left for you
    prefixed = GEMMA2.replace("        orig_to_new_stacked={", "        orig_to_new_prefix={\"model.\": \"m.\"},\n"
                              "        orig_to_new_stacked={")
    m = migrate(tmp_path, "gemma2", prefixed)
    (f,) = only(m.model_unit.after, "P27")
    assert f.data["source"] is None and "P27" not in m.model_unit.rules


# -- P28: per-layer-type rope_parameters ------------------------------------------------------------

GEMMA3 = '''\
from torch import nn
from vllm.model_executor.layers.rotary_embedding import get_rope


class Gemma3Attention(nn.Module):
    def __init__(self, config, layer_type: str) -> None:
        super().__init__()
        self.is_sliding = layer_type == "sliding_attention"

        rope_parameters = config.rope_parameters[layer_type]
        self.rotary_emb = get_rope(4, max_position=8, rope_parameters=rope_parameters, is_neox_style=True)
'''

GEMMA3_AFTER = '''\
from torch import nn
from vllm_fl.compat.rope import get_rope


class Gemma3Attention(nn.Module):
    def __init__(self, config, layer_type: str) -> None:
        super().__init__()
        self.is_sliding = layer_type == "sliding_attention"

        # Initialize the rotary embedding.
        if layer_type in config.rope_parameters:
            # Transformers v5 rope config.
            rope_parameters = config.rope_parameters[layer_type]
        else:
            # Transformers v4 rope config.
            # Global attention. Use the values in config.json.
            rope_parameters = config.rope_parameters
            # Local attention. Override the values in config.json.
            if self.is_sliding:
                rope_parameters = dict(
                    rope_type="default", rope_theta=config.rope_local_base_freq
                )
        self.rotary_emb = get_rope(4, max_position=8, rope_parameters=rope_parameters, is_neox_style=True)
'''


def test_p28_the_read_becomes_the_pinned_modules_both_layouts_code(tmp_path):
    m = migrate(tmp_path, "gemma3", GEMMA3)
    assert m.model_unit.text == GEMMA3_AFTER
    assert "P28" in m.model_unit.rules
    (f,) = only(m.model_unit.before, "P28")
    assert "KeyError" in f.message and "lines 162-174" in f.message
    assert only(m.model_unit.after, "P28") == []


def test_p28_negatives_and_what_stays_a_finding(tmp_path):
    # guarded reads (upstream plamo3, rnj1) and flat keys are fine
    guarded = '''
    def rope(config, layer_type):
        if layer_type in config.rope_parameters:
            return config.rope_parameters[layer_type]
        return config.rope_parameters["rope_theta"]
    '''
    assert only(analyze(guarded, module="vllm_fl.models.plamo3"), "P28") == []
    # a branch that asks for a field the pinned config class lacks never runs there (0.13.0's own modernbert,
    # ModernBertConfig of 4.57.6 has no layer_types); where the pinned class has the field, the read stays a finding
    asks = '''
    from transformers import {cfg}

    def rope(config: {cfg}, layer_id):
        if layer_types := getattr(config, "layer_types", None):
            layer_type = layer_types[layer_id]
            rope_parameters = config.rope_parameters[layer_type]
        else:
            rope_parameters = {{"rope_type": "default", "rope_theta": config.global_rope_theta}}
        return rope_parameters
    '''
    assert only(analyze(asks.format(cfg="ModernBertConfig"), module="vllm_fl.models.modernbert"), "P28") == []
    assert len(only(analyze(asks.format(cfg="Gemma3TextConfig"), module="vllm_fl.models.modernbert"), "P28")) == 1
    # no config class named: not proven dead, still a finding
    assert len(only(analyze(asks.format(cfg="ModernBertConfig").replace("from transformers import ModernBertConfig", ""),
                            module="vllm_fl.models.modernbert"), "P28")) == 1
    # a module without the pinned code (upstream dory): a finding, no rewrite
    m = migrate(tmp_path / "a", "dory", GEMMA3)
    (f,) = only(m.model_unit.after, "P28")
    assert f.data["source"] is None and "reads both layouts" not in f.message
    assert m.model_unit.text.count("config.rope_parameters[layer_type]") == 1
    # the pinned code reads self.is_sliding, which this file does not set: left for you
    m = migrate(tmp_path / "b", "gemma3", GEMMA3.replace("self.is_sliding = ", "sliding = "))
    (f,) = only(m.model_unit.after, "P28")
    assert f.data["source"] is None and "P28" not in m.model_unit.rules


# -- P29: config classes the pinned vLLM replaces ---------------------------------------------------

def test_p29_only_classes_the_pinned_registry_replaces_for_their_own_model_type():
    code = '''
    from transformers import LlamaConfig, NemotronConfig, Qwen3NextConfig
    from vllm.transformers_utils.configs import Olmo3Config
    '''
    found = only(analyze(code), "P29")
    assert [(f.data["name"], f.data["model_type"]) for f in found] == [
        ("NemotronConfig", "nemotron"), ("Qwen3NextConfig", "qwen3_next")]


def test_p29_one_name_of_a_shared_import_is_repointed(tmp_path):
    m = migrate(tmp_path, "alice", '''\
    from transformers import PretrainedConfig, Qwen3NextConfig


    def adapt(config: PretrainedConfig) -> Qwen3NextConfig:
        return config
    ''')
    assert m.model_unit.text == textwrap.dedent('''\
    from transformers import PretrainedConfig
    from vllm.transformers_utils.configs import Qwen3NextConfig


    def adapt(config: PretrainedConfig) -> Qwen3NextConfig:
        return config
    ''')


# -- the tables against both sources ----------------------------------------------------------------

needs_sources = pytest.mark.skipif(
    not (UPSTREAM_SRC.is_dir() and (PINNED_VENV / "lib").is_dir()),
    reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC) and the pinned venv (MMF_PINNED_VENV)")


def _pinned_root() -> Path:
    return next(PINNED_VENV.glob("lib/python3*/site-packages"))


def _dict_assign(path: Path, name: str) -> ast.expr:
    for node in ast.parse(path.read_text()).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == name:
            return node.value
    raise AssertionError(f"no {name} in {path}")


@needs_sources
def test_pooling_archs_are_upstreams_embedding_models_on_a_causal_lm_class():
    table = _dict_assign(UPSTREAM_SRC / "vllm/model_executor/models/registry.py", "_EMBEDDING_MODELS")
    entries = {k.value: tuple(e.value for e in v.elts) for k, v in zip(table.keys, table.values)
               if isinstance(v, ast.Tuple) and len(v.elts) == 2}
    assert POOLING_ARCHS == {a: mc for a, mc in entries.items() if mc[1].endswith("ForCausalLM")}
    adapter = (_pinned_root() / "vllm/model_executor/models/adapters.py").read_text()
    assert 'hasattr(self, "model") and hasattr(self.model, "load_weights")' in adapter


@needs_sources
@pytest.mark.parametrize("stem", sorted(s for s, e in ROPE_LAYOUTS["0.13.0"].items() if not e.get("derived")))
def test_rope_layouts_are_the_pinned_modules_code(stem):
    entry = ROPE_LAYOUTS["0.13.0"][stem]
    lines = (_pinned_root() / f"vllm/model_executor/models/{stem}.py").read_text().splitlines()
    first, last = entry["lines"]
    assert textwrap.dedent("\n".join(lines[first - 1:last])) == entry["pinned"]
    upstream = (UPSTREAM_SRC / f"vllm/model_executor/models/{stem}.py").read_text()
    assert f"        {entry['upstream']}\n" in upstream


@needs_sources
def test_replaced_config_classes_are_the_pinned_registry_where_transformers_has_the_model_type():
    reg = _dict_assign(_pinned_root() / "vllm/transformers_utils/config.py", "_CONFIG_REGISTRY")
    registry = {k.arg: k.value.value for k in reg.keywords}
    auto = _dict_assign(_pinned_root() / "transformers/models/auto/configuration_auto.py", "CONFIG_MAPPING_NAMES")
    names = {ast.literal_eval(e.elts[0]): ast.literal_eval(e.elts[1]) for e in auto.args[0].elts}
    assert REPLACED_CONFIG_CLASSES["0.13.0"] == {mt: c for mt, c in registry.items() if names.get(mt) == c}


# -- P7 (class 6): MMEncoderAttention gets the MultiModalConfig upstream's layer reads itself ---------

VISION = '''\
from vllm.config import MultiModalConfig
from vllm.config.vllm import get_current_vllm_config_or_none


def get_multimodal_config() -> MultiModalConfig | None:
    """The current MultiModalConfig, or None outside an engine config context."""
    vllm_config = get_current_vllm_config_or_none()
    if vllm_config is None or vllm_config.model_config is None:
        return None
    return getattr(vllm_config.model_config, "multimodal_config", None)
'''

CONFIG_VLLM = '''\
_current_vllm_config = None


def set_current_vllm_config(vllm_config):
    global _current_vllm_config
    _current_vllm_config = vllm_config


def get_current_vllm_config_or_none():
    return _current_vllm_config
'''

VIT = '''\
from torch import nn
from vllm.model_executor.layers.attention.mm_encoder_attention import MMEncoderAttention


class VisionAttention(nn.Module):
    def __init__(self, num_heads: int, head_dim: int, prefix: str = "") -> None:
        super().__init__()
        self.attn = MMEncoderAttention(
            num_heads,
            head_dim,
            prefix=f"{prefix}.attn",
        )
        self.other = MMEncoderAttention(num_heads, head_dim)
        self.given = MMEncoderAttention(num_heads, head_dim, multimodal_config=None)
'''

VIT_AFTER = '''\
from torch import nn
from vllm_fl.compat.mm_encoder_attention import MMEncoderAttention
from vllm_fl.compat.model_executor_models_vision import get_multimodal_config


class VisionAttention(nn.Module):
    def __init__(self, num_heads: int, head_dim: int, prefix: str = "") -> None:
        super().__init__()
        self.attn = MMEncoderAttention(
            num_heads,
            head_dim,
            prefix=f"{prefix}.attn",
            multimodal_config=get_multimodal_config(),
        )
        self.other = MMEncoderAttention(num_heads, head_dim, multimodal_config=get_multimodal_config())
        self.given = MMEncoderAttention(num_heads, head_dim, multimodal_config=None)
'''


def test_p7_mm_encoder_attention_is_given_the_current_multimodal_config(tmp_path):
    m = migrate(tmp_path, "vit", VIT, {"vllm/model_executor/models/vision.py": VISION,
                                       "vllm/config/vllm.py": CONFIG_VLLM})
    assert m.model_unit.text == VIT_AFTER
    assert {"P7", "P16"} <= m.model_unit.rules
    assert only(m.model_unit.after, "P7") == []
    vendored = m.units["vllm_fl.compat.model_executor_models_vision"].text
    assert "from vllm_fl.compat.config_vllm import get_current_vllm_config_or_none" in vendored
    # read live through the module, not a copy of the None at import time (class 5)
    assert "return _vllm_config_vllm._current_vllm_config" in m.units["vllm_fl.compat.config_vllm"].text


def test_p7_without_the_readers_source_upstream_stays_a_finding(tmp_path):
    """No upstream get_multimodal_config to vendor (the mini upstream lacks vision.py): the call keeps
    its warning instead of importing a name nobody provides."""
    m = migrate(tmp_path, "vit", VIT)
    assert [f.line for f in only(m.model_unit.after, "P7")] == [8, 13]
    assert "get_multimodal_config" not in m.model_unit.text


# -- P22: get_act_and_mul_fn with upstream's names (gemma3's gelu_pytorch_tanh) --------------------

def test_activation_backport_is_brought_by_the_import():
    from flagos_migrate.migrate import backports

    tree = ast.parse("from vllm.model_executor.layers.activation import GeluAndMul, get_act_and_mul_fn\n")
    assert backports.needed([tree]) == [backports.ACTIVATION]
    assert backports.for_import("vllm.model_executor.layers.activation", "GeluAndMul") is None


ACTIVATION_RUNTIME = '''
    import torch.nn.functional as F
    from vllm.model_executor.layers import activation as pinned
    import activation as bp

    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    gate, up = x[:, :4], x[:, 4:]
    def same(layer, want):
        return torch.allclose(layer.forward_native(x), want, atol=1e-6)
    try:
        pinned.get_act_and_mul_fn("gelu_pytorch_tanh")
        print("pinned_rejects False")
    except ValueError:
        print("pinned_rejects True")
    print("gelu_tanh", same(bp.get_act_and_mul_fn("gelu_pytorch_tanh"), F.gelu(gate, approximate="tanh") * up))
    print("swish", same(bp.get_act_and_mul_fn("SWISH"), F.silu(gate) * up))
    print("gelu_pinned", type(bp.get_act_and_mul_fn("gelu")) is type(pinned.get_act_and_mul_fn("gelu")))
    try:
        bp.get_act_and_mul_fn("nope")
        print("unknown_raises False")
    except ValueError:
        print("unknown_raises True")
'''


def test_activation_backport_builds_upstreams_layers_on_the_real_pinned_vllm(tmp_path):
    from tests.test_backports import run_in_pinned_venv

    lines = run_in_pinned_venv(tmp_path, ACTIVATION_RUNTIME)
    for case in ("pinned_rejects", "gelu_tanh", "swish", "gelu_pinned", "unknown_raises"):
        assert lines[case] == "True", (case, lines[case])


MM_RUNTIME = '''
    import importlib, types
    from vllm.attention.backends.registry import AttentionBackendEnum
    from vllm.config import MultiModalConfig
    from vllm.config import vllm as config_vllm
    from vllm.attention.layers.mm_encoder_attention import MMEncoderAttention
    sys.path.insert(0, sys.argv[2])
    for name in [n for n in sys.modules if n == "vllm_fl" or n.startswith("vllm_fl.")]:
        del sys.modules[name]  # a vllm_fl the setup imported from elsewhere: this test's plugin is the one
    vision = importlib.import_module("vllm_fl.compat.model_executor_models_vision")
    mm = MultiModalConfig(mm_encoder_attn_backend="TORCH_SDPA")
    current = config_vllm._current_vllm_config
    config_vllm._current_vllm_config = None
    print("none_outside", vision.get_multimodal_config() is None)
    # the engine sets the current config after the model module was imported: read live
    config_vllm._current_vllm_config = current
    object.__setattr__(current, "model_config", types.SimpleNamespace(multimodal_config=mm))
    print("live", vision.get_multimodal_config() is mm)
    layer = MMEncoderAttention(4, 8, multimodal_config=vision.get_multimodal_config())
    print("backend", layer.attn_backend == AttentionBackendEnum.TORCH_SDPA)
'''


def test_p7_vendored_reader_hands_the_live_config_to_the_pinned_layer(tmp_path):
    """The migrated call on the real vLLM 0.13.0: the vendored get_multimodal_config returns the
    MultiModalConfig set after import, and the pinned MMEncoderAttention takes its backend override."""
    from tests.test_backports import CPU_SETUP, python_of

    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    m = migrate(tmp_path / "m", "vit", VIT, {"vllm/model_executor/models/vision.py": VISION,
                                             "vllm/config/vllm.py": CONFIG_VLLM})
    plugin = tmp_path / "plugin"
    for module in ("vllm_fl.compat.model_executor_models_vision", "vllm_fl.compat.config_vllm"):
        path = plugin / (module.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(m.units[module].text)
    for pkg in ("vllm_fl", "vllm_fl/compat"):
        (plugin / pkg / "__init__.py").write_text("")
    script = tmp_path / "run.py"
    script.write_text(CPU_SETUP + textwrap.dedent(MM_RUNTIME))
    import subprocess

    proc = subprocess.run([python_of(venv), str(script), str(tmp_path), str(plugin)], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    for case in ("live", "backend", "none_outside"):
        assert lines.get(case) == "True", (case, lines.get(case), proc.stderr[-2000:])


# -- P10: a sibling's architecture the model builds by name ------------------------------------------

WRAP = '''\
from torch import nn
from vllm.model_executor.models.utils import init_vllm_registered_model

from .plain import PlainForCausalLM


class WrapForConditionalGeneration(nn.Module):
    def __init__(self, *, vllm_config, prefix: str = ""):
        super().__init__()
        self.language_model: PlainForCausalLM = init_vllm_registered_model(
            vllm_config=vllm_config, prefix=prefix, architectures=["PlainForCausalLM"])
        self.other = init_vllm_registered_model(vllm_config=vllm_config, architectures=["LlamaForCausalLM"])
        self.mapper = PlainForCausalLM.hf_to_vllm_mapper  # what brings the sibling along
'''


def test_a_sibling_architecture_built_by_name_is_registered_with_the_model(tmp_path):
    # gemma4_unified builds init_vllm_registered_model(architectures=["Gemma4ForCausalLM"]): 0.13.0's registry
    # lacks the name (construct failed "not supported for now") though the sibling gemma4.py came along;
    # LlamaForCausalLM is the pinned vLLM's own and needs nothing
    m = migrate(tmp_path, "wrap", WRAP)
    assert "vllm_fl.models.plain" in m.units
    assert m.sibling_registrations() == [("PlainForCausalLM", "PlainForCausalLM", "vllm_fl.models.plain")]
    init = tmp_path / "plugin" / "vllm_fl" / "__init__.py"
    from flagos_migrate.plugin.registration import parse_registrations, plan_registration
    plan = plan_registration(init.read_text(), init, "Wrap", m.model_unit.module,
                             m.model_registrations() + m.sibling_registrations(), [])
    init.write_text(plan.text)
    got = {(r.arch, r.module, r.cls) for r in parse_registrations(init).models}
    assert ("PlainForCausalLM", "vllm_fl.models.plain", "PlainForCausalLM") in got
    assert not any(arch == "LlamaForCausalLM" for arch, _, _ in got)


def test_no_sibling_registration_without_a_name_built_through_the_registry(tmp_path):
    m = migrate(tmp_path, "wrap", WRAP.replace('architectures=["PlainForCausalLM"]', 'architectures=None'))
    assert m.sibling_registrations() == []


def test_a_sibling_named_only_by_the_registry_call_comes_along_and_is_registered(tmp_path):
    # upstream's gemma4_unified/gemma4_mm import Gemma4ForCausalLM for a string annotation only (P14 keeps it
    # under TYPE_CHECKING); the name in init_vllm_registered_model(architectures=[...]) is what needs gemma4.py
    text = WRAP.replace("        self.mapper = PlainForCausalLM.hf_to_vllm_mapper  # what brings the sibling along\n", "")
    text = text.replace("self.language_model: PlainForCausalLM", 'self.language_model: "PlainForCausalLM"')
    m = migrate(tmp_path, "wrap", text)
    assert "vllm_fl.models.plain" in m.units
    assert m.sibling_registrations() == [("PlainForCausalLM", "PlainForCausalLM", "vllm_fl.models.plain")]


# -- P1: one module's classes throughout ---------------------------------------------------------------

NEXT_UP = '''\
from torch import nn


class Qwen3NextSparseMoeBlock(nn.Module):
    pass


class QwenNextMixtureOfExperts:
    pass
'''

MTP5 = '''\
from torch import nn
from vllm.model_executor.models.qwen3_next import QwenNextMixtureOfExperts

from .sib5 import Sib5Layer


class Mtp5(nn.Module, QwenNextMixtureOfExperts):
    def __init__(self, *, vllm_config, prefix: str = ""):
        super().__init__()
        self.layers = nn.ModuleList([Sib5Layer()])
'''


def test_a_sibling_the_plugins_copy_of_another_sibling_builds_from_is_taken_from_the_plugin_too(tmp_path):
    # the plugin's qwen3_5.py (an earlier migration) builds vllm_fl.models.qwen3_next's MoE blocks; qwen3_5_mtp
    # took QwenNextMixtureOfExperts from the pinned qwen3_next, whose isinstance checks then found no
    # Qwen3Next layer in the plugin's layers (construct failed); the pinned module alone has every name
    import json

    sib = "from torch import nn\nfrom vllm.model_executor.models.qwen3_next import Qwen3NextSparseMoeBlock\n\n\n" \
          "class Sib5Layer(nn.Module):\n    def __init__(self):\n        super().__init__()\n" \
          "        self.mlp = Qwen3NextSparseMoeBlock()\n"
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM_MINI, up)
    models = up / "vllm" / "model_executor" / "models"
    (models / "qwen3_next.py").write_text(NEXT_UP)
    (models / "sib5.py").write_text(sib)
    (models / "mtp5.py").write_text(MTP5)
    plugin = empty_plugin(tmp_path / "plugin")
    pkg = plugin / "vllm_fl" / "models"
    (pkg / "qwen3_next.py").write_text(NEXT_UP)
    (pkg / "sib5.py").write_text(sib.replace("vllm.model_executor.models.qwen3_next", "vllm_fl.models.qwen3_next"))
    (pkg / ".migration").mkdir()
    (pkg / ".migration" / "sib5.json").write_text(json.dumps({"format": 1, "model": "sib5", "files": {
        "vllm_fl/models/sib5.py": {"role": "model"}, "vllm_fl/models/qwen3_next.py": {"role": "closure"}}}))
    m = Migration("mtp5", Upstream(open_upstream(str(up))), PluginTree(plugin), pinned()).run()
    assert m.redirects["vllm.model_executor.models.qwen3_next"] == "vllm_fl.models.qwen3_next"
    assert "from vllm_fl.models.qwen3_next import QwenNextMixtureOfExperts" in m.model_unit.text
