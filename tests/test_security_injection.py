"""Issue 15, item 1: nothing read from config.json (or upstream) becomes code in vllm_fl/__init__.py."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.commands.validate import validate
from flagos_migrate.plugin.registration import plan_registration

from tests.analysis_helpers import GOOD_PLUGIN
from tests.test_migrate_apply import INIT, cli, common, make_plugin

PAYLOADS = [
    'a"]=1;import os;os.system("id")#',
    "a\\",
    "a\\\"]=1#",
    "mini\n",
    "a\nimport os",
    "a\r__import__('os')",
    "a'b",
]


@pytest.fixture
def plugin(tmp_path) -> Path:
    return make_plugin(tmp_path)


@pytest.mark.parametrize("model_type", [*PAYLOADS, 5, ["mini"], {"a": 1}, True])
def test_apply_refuses_a_hostile_model_type(capsys, tmp_path, plugin, model_type):
    hf = tmp_path / "config.json"
    hf.write_text(json.dumps({"model_type": model_type, "architectures": ["MiniForCausalLM"]}))
    code, out, err = cli(capsys, "apply", "mini", *common(plugin, "--hf-config", str(hf)))
    assert code == 2 and "model_type" in err, err
    assert (plugin / "vllm_fl" / "__init__.py").read_text() == INIT


@pytest.mark.parametrize("archs", [["Mini\nimport os"], "MiniForCausalLM", [5], ['A"); import os #']])
def test_apply_refuses_hostile_architectures(capsys, tmp_path, plugin, archs):
    hf = tmp_path / "config.json"
    hf.write_text(json.dumps({"model_type": "mini", "architectures": archs}))
    code, _, err = cli(capsys, "apply", "mini", *common(plugin, "--hf-config", str(hf)))
    assert code == 2 and "architectures" in err, err


def _new_statements(before: str, after: str) -> list[ast.stmt]:
    old = {ast.dump(n) for n in ast.walk(ast.parse(before)) if isinstance(n, ast.stmt)}
    return [n for n in ast.walk(ast.parse(after)) if isinstance(n, ast.stmt) and ast.dump(n) not in old]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_written_registration_only_holds_string_literals(tmp_path, payload):
    """Even when a hostile string reaches the editor, the file holds it as one literal, nothing else."""
    init = tmp_path / "__init__.py"
    init.write_text(INIT)
    plan = plan_registration(INIT, init, f"Mini {payload}", "vllm_fl.models.mini",
                             [(payload, "MiniForCausalLM")], [(payload, "MiniConfig", "vllm_fl.configs.mini")])
    tree = ast.parse(plan.text)  # still parses
    keys = [n.targets[0].slice for n in ast.walk(tree)
            if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Subscript)]
    assert [(type(k), k.value) for k in keys] == [(ast.Constant, payload)]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("register_model")]
    assert [c.args[0].value for c in calls][-1] == payload
    allowed = (ast.Try, ast.ImportFrom, ast.Assign, ast.Expr)
    for stmt in _new_statements(INIT, plan.text):
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "register_model":
            continue  # the function that holds the new blocks
        assert isinstance(stmt, allowed), ast.unparse(stmt)
        if isinstance(stmt, ast.Expr):
            assert isinstance(stmt.value, ast.Call)
            assert ast.unparse(stmt.value.func) in ("ModelRegistry.register_model", "logger.error")
        if isinstance(stmt, ast.ImportFrom):
            assert stmt.module in ("vllm.transformers_utils.config", "vllm_fl.configs.mini", "vllm")


@pytest.mark.parametrize("cls, module", [("Mini; import os", "vllm_fl.configs.mini"),
                                         ("MiniConfig", "os; import sys"), ("class", "vllm_fl.x")])
def test_names_that_become_code_must_be_identifiers(tmp_path, cls, module):
    init = tmp_path / "__init__.py"
    init.write_text(INIT)
    with pytest.raises(UsageError, match="refusing to register"):
        plan_registration(INIT, init, "Mini", "vllm_fl.models.mini", [], [("mini", cls, module)])


INJECTED = '''
    # written by the old editor from a hostile config.json
    try:
        from vllm.transformers_utils.config import _CONFIG_REGISTRY
        from vllm_fl.configs.qwen3_5 import Qwen3_5Config

        _CONFIG_REGISTRY["a"]=1;import os;os.system("id")#"] = Qwen3_5Config
    except Exception as e:
        logger.error("x: %s", e)
    try:
        _CONFIG_REGISTRY[5] = Qwen3_5Config
        ModelRegistry.register_model(ARCH, "vllm_fl.models.qwen3_5:Qwen3_5ForCausalLM")
    except Exception as e:
        logger.error("x: %s", e)
'''


def test_validator_flags_injected_and_non_literal_registrations(tmp_path):
    dest = tmp_path / "plugin"
    shutil.copytree(GOOD_PLUGIN, dest)
    init = dest / "vllm_fl" / "__init__.py"
    init.write_text(init.read_text() + INJECTED)
    report = validate(str(dest), all_models=True)
    irregular = [f for f in report.findings if f.data.get("kind") == "irregular-registration"]
    assert all(f.rule == "P10" and f.severity == "error" for f in irregular)
    messages = " | ".join(f.message for f in irregular)
    assert "shares its line with other statements" in messages
    assert "the value is not a config class" in messages
    assert "_CONFIG_REGISTRY[5]: the model_type is not a string literal" in messages
    assert "register_model(ARCH, ...): the architecture is not a string literal" in messages
    assert validate(str(GOOD_PLUGIN), all_models=True).findings == []
