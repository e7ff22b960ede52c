"""Reading a plugin checkout: finding vllm_fl, its modules and its registrations (no imports)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.plugin.tree import PluginTree, find_package_dir, parse_registrations

ROOT = Path(__file__).resolve().parents[1]

SEVERAL_SHAPES = '''
import logging
logger = logging.getLogger(__name__)

def register():
    return "vllm_fl.platform.PlatformFL"

def register_model():
    from vllm import ModelRegistry

    # Qwen3.5 config bridge
    try:
        from vllm.transformers_utils.config import _CONFIG_REGISTRY
        from vllm_fl.configs.qwen3_5_moe import Qwen3_5MoeConfig
        _CONFIG_REGISTRY["qwen3_5_moe"] = Qwen3_5MoeConfig
    except Exception as e:
        logger.error(f"config: {e}")

    # config and model in one block, class object instead of a string
    try:
        from vllm_fl.configs.glm_moe_dsa import GlmMoeDsaConfig as Bridge
        from vllm_fl.models.glm_moe_dsa import GlmMoeDsaForCausalLM
        _CONFIG_REGISTRY["glm_moe_dsa"] = Bridge
        ModelRegistry.register_model("GlmMoeDsaForCausalLM", GlmMoeDsaForCausalLM)
    except Exception as e:
        logger.error(f"glm: {e}")

    # in-tree override
    try:
        import vllm.model_executor.models.qwen3_next as qn
        from vllm_fl.models.qwen3_next import Qwen3NextForCausalLM
        qn.Qwen3NextForCausalLM = Qwen3NextForCausalLM
        ModelRegistry.register_model("Qwen3NextForCausalLM", "vllm_fl.models.qwen3_next:Qwen3NextForCausalLM")
    except Exception as e:
        logger.error(f"qwen3_next: {e}")

    # several architectures from one file
    for arch in ("Qwen3_5ForConditionalGeneration",):
        pass
    ModelRegistry.register_model("Qwen3_5MoeForConditionalGeneration", "vllm_fl.models.qwen3_5:Qwen3_5MoeForConditionalGeneration")
    ModelRegistry.register_model("Qwen3_5ForConditionalGeneration", "vllm_fl.models.qwen3_5:Qwen3_5ForConditionalGeneration")
'''


def test_registrations_of_the_usual_shapes(tmp_path):
    init = tmp_path / "__init__.py"
    init.write_text(SEVERAL_SHAPES)
    reg = parse_registrations(init)
    assert reg.has_register_model and reg.parse_error is None
    assert [(m.arch, m.module, m.cls) for m in reg.models] == [
        ("GlmMoeDsaForCausalLM", "vllm_fl.models.glm_moe_dsa", "GlmMoeDsaForCausalLM"),
        ("Qwen3NextForCausalLM", "vllm_fl.models.qwen3_next", "Qwen3NextForCausalLM"),
        ("Qwen3_5MoeForConditionalGeneration", "vllm_fl.models.qwen3_5", "Qwen3_5MoeForConditionalGeneration"),
        ("Qwen3_5ForConditionalGeneration", "vllm_fl.models.qwen3_5", "Qwen3_5ForConditionalGeneration"),
    ]
    assert [(c.model_type, c.cls, c.module) for c in reg.configs] == [
        ("qwen3_5_moe", "Qwen3_5MoeConfig", "vllm_fl.configs.qwen3_5_moe"),
        ("glm_moe_dsa", "GlmMoeDsaConfig", "vllm_fl.configs.glm_moe_dsa"),
    ]
    assert [o.target for o in reg.overrides] == ["vllm.model_executor.models.qwen3_next.Qwen3NextForCausalLM"]
    assert reg.overrides[0].value == "vllm_fl.models.qwen3_next:Qwen3NextForCausalLM"


def test_broken_and_empty_init_files(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def register_model(:\n")
    assert "syntax error at line 1" in parse_registrations(bad).parse_error
    latin = tmp_path / "latin.py"
    latin.write_bytes("# caf\xe9\n".encode("latin-1"))
    assert "cannot read" in parse_registrations(latin).parse_error
    empty = tmp_path / "empty.py"
    empty.write_text("")
    reg = parse_registrations(empty)
    assert not reg.has_register_model and reg.models == [] and reg.parse_error is None


def test_find_package_dir(tmp_path):
    with pytest.raises(UsageError, match="plugin folder not found"):
        find_package_dir(tmp_path / "missing")
    with pytest.raises(UsageError, match="not a vllm-plugin-FL checkout"):
        find_package_dir(tmp_path)
    pkg = tmp_path / "vllm_fl"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    assert find_package_dir(tmp_path) == pkg
    assert find_package_dir(pkg) == pkg


def test_plugin_index_with_overlay_of_unwritten_files():
    tree = PluginTree(ROOT / "examples" / "plugin")
    assert [p.name for p in tree.model_files()] == ["qwen3_next.py"]
    assert tree.module_path("vllm_fl.models.qwen3_next").name == "qwen3_next.py"
    assert tree.module_path("vllm_fl.models.nova_lite") is None
    idx = tree.index()
    assert idx.resolve("vllm_fl.models.qwen3_next", "Qwen3NextForCausalLM").kind == "class"
    overlay = tree.index(overlay={"vllm_fl.models.nova_lite": textwrap.dedent("class NovaLiteForCausalLM:\n    pass\n")})
    assert overlay.resolve("vllm_fl.models.nova_lite", "NovaLiteForCausalLM").kind == "class"
    assert tree.index().resolve("vllm_fl.models.nova_lite", "NovaLiteForCausalLM") is None  # cache untouched
    reg = tree.registrations()
    assert [m.arch for m in reg.models] == ["Qwen3NextForCausalLM"] and len(reg.overrides) == 1
