"""Registration edits of vllm_fl/__init__.py on the shapes the real plugin had (docs/plugin.md)."""

from __future__ import annotations

import ast

import pytest
from flagos_migrate.plugin.registration import plan_registration
from flagos_migrate.plugin.tree import parse_registrations

STANDARD = '''import logging

logger = logging.getLogger(__name__)


def register():
    return "vllm_fl.platform.PlatformFL"


def register_model():
    from vllm import ModelRegistry

    # Qwen3.5 config bridge
    try:
        from vllm.transformers_utils.config import _CONFIG_REGISTRY
        from vllm_fl.configs.qwen3_5 import Qwen3_5Config
        _CONFIG_REGISTRY["qwen3_5"] = Qwen3_5Config
    except Exception as e:
        logger.error("qwen3_5 config: %s", e)

    # Qwen3.5 model
    try:
        ModelRegistry.register_model("Qwen3_5ForCausalLM", "vllm_fl.models.qwen3_5:Qwen3_5ForCausalLM")
    except Exception as e:
        logger.error("qwen3_5: %s", e)
'''

MERGED_NO_LOGGER = '''def register_model():
    from vllm import ModelRegistry  # registry first

    try:
        from vllm.transformers_utils.config import _CONFIG_REGISTRY
        from vllm_fl.configs.glm_moe_dsa import GlmMoeDsaConfig
        _CONFIG_REGISTRY["glm_moe_dsa"] = GlmMoeDsaConfig
        ModelRegistry.register_model("GlmMoeDsaForCausalLM", "vllm_fl.models.glm_moe_dsa:GlmMoeDsaForCausalLM")
        ModelRegistry.register_model("GlmMoeDsaMTP", "vllm_fl.models.glm_moe_dsa:GlmMoeDsaMTP")
    except Exception:
        pass
    return None
'''

OVERRIDE = '''import logging

import vllm.model_executor.models.qwen3_next

from vllm_fl.models.qwen3_next import Qwen3NextForCausalLM

logger = logging.getLogger(__name__)


def register_model():
    # in-tree override: vLLM's own module gets the plugin's class
    vllm.model_executor.models.qwen3_next.Qwen3NextForCausalLM = Qwen3NextForCausalLM
'''

NO_FUNCTION = '''"""vllm_fl without a register_model yet."""


def register():
    return "vllm_fl.platform.PlatformFL"
'''


def edit(tmp_path, text, archs, configs=(), module="vllm_fl.models.mini", display="Mini"):
    path = tmp_path / "__init__.py"
    path.write_text(text)
    plan = plan_registration(text, path, display, module, list(archs), list(configs))
    path.write_text(plan.text)
    return plan, parse_registrations(path)


def test_standard_shape_appends_guarded_blocks_and_keeps_everything(tmp_path):
    plan, reg = edit(tmp_path, STANDARD, [("MiniForCausalLM", "MiniForCausalLM")],
                     [("mini", "MiniConfig", "vllm_fl.configs.mini")])
    assert plan.text.startswith(STANDARD.rstrip("\n"))  # every existing line, in order, untouched
    assert [m.arch for m in reg.models] == ["Qwen3_5ForCausalLM", "MiniForCausalLM"]
    assert [c.model_type for c in reg.configs] == ["qwen3_5", "mini"]
    assert reg.models[-1].module == "vllm_fl.models.mini" and reg.models[-1].cls == "MiniForCausalLM"
    tree = ast.parse(plan.text)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "register_model")
    tries = [n for n in fn.body if isinstance(n, ast.Try)]
    assert len(tries) == 4  # one guarded block per config and per model
    assert "# Mini model" in plan.text and "logger.error(" in plan.text.split("# Mini model")[1]


def test_second_edit_changes_nothing(tmp_path):
    plan, _ = edit(tmp_path, STANDARD, [("MiniForCausalLM", "MiniForCausalLM")],
                   [("mini", "MiniConfig", "vllm_fl.configs.mini")])
    again = plan_registration(plan.text, tmp_path / "__init__.py", "Mini", "vllm_fl.models.mini",
                              [("MiniForCausalLM", "MiniForCausalLM")], [("mini", "MiniConfig", "vllm_fl.configs.mini")])
    assert again.text == plan.text and not again.added and len(again.present) == 2


def test_merged_block_without_logger_keeps_final_return(tmp_path):
    plan, reg = edit(tmp_path, MERGED_NO_LOGGER, [("MiniForCausalLM", "MiniForCausalLM"), ("MiniMTP", "MiniMTP")])
    assert plan.text.startswith(MERGED_NO_LOGGER.split("    return None")[0])
    assert plan.text.rstrip().endswith("return None")
    assert [m.arch for m in reg.models][-2:] == ["MiniForCausalLM", "MiniMTP"]
    assert "logger" not in plan.text.replace("getLogger", "")  # no undefined name introduced
    ast.parse(plan.text)


def test_in_tree_override_is_recognised(tmp_path):
    plan, reg = edit(tmp_path, OVERRIDE, [("Qwen3NextForCausalLM", "Qwen3NextForCausalLM")],
                     module="vllm_fl.models.qwen3_next")
    assert plan.text == OVERRIDE
    assert plan.present and not plan.added


def test_missing_register_model_is_created(tmp_path):
    plan, reg = edit(tmp_path, NO_FUNCTION, [("MiniForCausalLM", "MiniForCausalLM")])
    assert plan.text.startswith(NO_FUNCTION)
    assert reg.has_register_model and [m.arch for m in reg.models] == ["MiniForCausalLM"]
    assert "from vllm import ModelRegistry" in plan.text


def test_conflicting_registration_is_reported_not_changed(tmp_path):
    plan, _ = edit(tmp_path, STANDARD, [("Qwen3_5ForCausalLM", "OtherClass")],
                   [("qwen3_5", "OtherConfig", "vllm_fl.configs.other")])
    assert plan.text == STANDARD
    assert len(plan.conflicts) == 2


def test_unparsable_init_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        edit(tmp_path, "def register_model(:\n", [("A", "A")])
