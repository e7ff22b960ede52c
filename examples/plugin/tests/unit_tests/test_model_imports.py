"""Every registered model module imports (needs vLLM 0.13.0 installed)."""

import importlib

import pytest

pytest.importorskip("vllm")


@pytest.mark.parametrize("module", ["vllm_fl.models.qwen3_next"])
def test_model_module_imports(module):
    importlib.import_module(module)
