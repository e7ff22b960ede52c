"""Slices of upstream modules for vllm_fl/compat (P16): exactly what a definition needs, nothing invented."""

from __future__ import annotations

import ast

from flagos_migrate.migrate.vendor import compat_module_for, render_compat, slice_definitions

UPSTREAM = '''"""An upstream module."""

from __future__ import annotations

import torch

from vllm.model_executor.layers.activation import SiluAndMul
from .utils import maybe_prefix

try:
    from torch._opaque_base import OpaqueBase
except ImportError:
    OpaqueBase = object

TABLE = {SiluAndMul: "silu"}
if torch.cuda.is_available():
    TABLE[torch.nn.GELU] = "gelu"


class Name(OpaqueBase):
    def me(self) -> Name:
        return self


def helper(x):
    return TABLE.get(type(x)), maybe_prefix("a", "b")


def unrelated():
    return 1


def pinned_too():
    return 2


def uses_pinned():
    return pinned_too()
'''


def pinned_has(module, name):
    return name == "pinned_too"


def test_slice_takes_definitions_blocks_and_mutations_it_needs():
    sl = slice_definitions(UPSTREAM, "vllm.model_executor.models.up", ["Name", "helper"], pinned_has)
    code = "".join(sl.code)
    assert "except ImportError:\n    OpaqueBase = object" in code  # try-defined base comes along
    assert 'TABLE[torch.nn.GELU] = "gelu"' in code  # the block that fills TABLE too
    assert "def unrelated" not in code
    assert sl.imports == {"vllm.model_executor.layers.activation": ["SiluAndMul"],
                          "vllm.model_executor.models.utils": ["maybe_prefix"]}
    assert sl.plain_imports == ["import torch"] and sl.future_annotations


def test_names_the_pinned_module_has_are_imported_not_copied():
    sl = slice_definitions(UPSTREAM, "vllm.x.up", ["uses_pinned"], pinned_has)
    assert sl.imports == {"vllm.x.up": ["pinned_too"]}
    assert "def pinned_too" not in "".join(sl.code)


def test_rendered_module_is_valid_and_keeps_deferred_annotations():
    sl = slice_definitions(UPSTREAM, "vllm.model_executor.models.up", ["Name"], pinned_has)
    text = render_compat("vllm.model_executor.models.up", "0.33.0", ["Name"], sl)
    tree = ast.parse(text)
    assert "vllm.model_executor.models.up" in ast.get_docstring(tree)
    assert isinstance(tree.body[1], ast.ImportFrom) and tree.body[1].module == "__future__"
    assert 'vllm.model_executor.models.up' in text and '__all__ = [\n    "Name",\n]' in text


def test_missing_or_too_large_definitions_are_refused():
    assert slice_definitions(UPSTREAM, "m", ["nope"], pinned_has) is None
    big = "def huge():\n" + "    x = 1\n" * 500
    assert slice_definitions(big, "m", ["huge"], pinned_has) is None
    assert compat_module_for("vllm.model_executor.models.utils") == "vllm_fl.compat.model_executor_models_utils"


def test_type_checking_else_branch_binds_at_run_time():
    src = (
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import torch\nelse:\n"
        "    torch = LazyLoader('torch')\n\n\ndef f(x):\n    return torch.ones(x)\n"
    )
    sl = slice_definitions(src, "vllm.m", ["f"], pinned_has)
    assert "torch = LazyLoader('torch')" in "".join(sl.code)


def test_class_attributes_read_at_import_time_are_checked_against_the_pinned_class():
    from flagos_migrate.migrate.vendor import missing_class_attributes
    from flagos_migrate.pinned.api_index import PinnedApis

    apis = PinnedApis.load("0.13.0")
    src = (
        "from vllm.config import CacheConfig\n\n"
        "FIELD = CacheConfig.block_size\nLATER = CacheConfig.not_there_at_all\n\n\n"
        "def f():\n    return CacheConfig.also_not_there\n"
    )
    assert missing_class_attributes(src, "vllm_fl.compat.x", apis) == ["CacheConfig.not_there_at_all"]


def test_class_reads_follow_local_subclasses_to_their_pinned_bases():
    """``Qwen3Model.hf_to_vllm_mapper`` where the local Qwen3Model inherits it from upstream's Qwen2Model:
    the pinned Qwen2Model lacks it, so upstream's qwen2 must come along (the closure decision)."""
    import textwrap

    from flagos_migrate.migrate.vendor import import_time_class_reads
    from flagos_migrate.pinned.api_index import PinnedApis

    apis = PinnedApis.load("0.13.0")
    src = textwrap.dedent("""
        from .qwen2 import Qwen2Model

        class Qwen3Model(Qwen2Model):
            own = 1

        class Head(Qwen3Model):
            mapper = Qwen3Model.hf_to_vllm_mapper
            loader = Qwen3Model.load_weights  # the pinned Qwen2Model has this one
            mine = Qwen3Model.own

        def later():
            return Qwen2Model.not_read_at_import
        """)
    origin = "vllm.model_executor.models.qwen3"
    reads = import_time_class_reads(src, origin, apis, origin)
    assert reads == [("vllm.model_executor.models.qwen2", "Qwen2Model", "hf_to_vllm_mapper")]


LIVE_STATE = '''"""Upstream module state that a setter rebinds."""

from __future__ import annotations

_current_vllm_config: VllmConfig | None = None


class VllmConfig:
    pass


def set_current_vllm_config(config):
    global _current_vllm_config
    _current_vllm_config = config


def get_current_vllm_config_or_none() -> VllmConfig | None:
    return _current_vllm_config
'''


def test_module_state_a_setter_rebinds_is_read_through_the_module_not_copied():
    """Issue 13 class 5: ``from vllm.config.vllm import _current_vllm_config`` would freeze the value
    of import time (None); the vendored helper must read the pinned module's live global."""
    sl = slice_definitions(LIVE_STATE, "vllm.config.vllm", ["get_current_vllm_config_or_none"],
                           lambda mod, n: n in ("_current_vllm_config", "VllmConfig", "set_current_vllm_config"))
    text = render_compat("vllm.config.vllm", "0.33.0", ["get_current_vllm_config_or_none"], sl)
    assert text == '''"""Vendored from upstream vLLM (version 0.33.0): vllm.config.vllm.

Generated by model-migrate-flagos (rule P16): definitions the pinned vLLM lacks, copied with
what they need. Regenerated on every migrate_model.py apply; do not edit by hand.
"""

from __future__ import annotations

import vllm.config.vllm as _vllm_config_vllm
from vllm.config.vllm import VllmConfig


def get_current_vllm_config_or_none() -> VllmConfig | None:
    return _vllm_config_vllm._current_vllm_config


__all__ = [
    "get_current_vllm_config_or_none",
]
'''


def test_state_no_setter_rebinds_and_a_copied_setter_are_left_as_they_were():
    """Negative: a constant is imported by name as before; a slice that would copy the setter itself
    (writing the compat module's own global) is refused rather than split from its state."""
    constant = LIVE_STATE.replace("    global _current_vllm_config\n    _current_vllm_config = config\n",
                                  "    return config\n")
    sl = slice_definitions(constant, "vllm.config.vllm", ["get_current_vllm_config_or_none"],
                           lambda mod, n: n in ("_current_vllm_config", "VllmConfig"))
    assert sl.imports == {"vllm.config.vllm": ["VllmConfig", "_current_vllm_config"]} and sl.plain_imports == []
    assert slice_definitions(LIVE_STATE, "vllm.config.vllm", ["set_current_vllm_config"],
                             lambda mod, n: n in ("_current_vllm_config", "VllmConfig")) is None
