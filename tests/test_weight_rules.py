"""Weight-loading rules of issue 13, class 4: P31 (tuple shard ids), P32 (GGUF handling upstream
dropped), and P22 installing the back-port for every migrated file that imports AutoWeightsLoader
(upstream models rely on its loading behaviour; tests/test_weight_loading.py checks that behaviour)."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
from analysis_helpers import analyze, only
from analysis_helpers import migrate_example as migrate
from flagos_migrate.catalog.tables import GGUF_HANDLING
from flagos_migrate.migrate import backports

# ---------------------------------------------------------------- P22: a loader-only file gets the back-port

LOADER_ONLY = '''\
from .utils import AutoWeightsLoader, maybe_prefix


def load(model, weights):
    return AutoWeightsLoader(model).load_weights(weights)
'''
LOADER_ONLY_AFTER = '''\
from vllm.model_executor.models.utils import maybe_prefix
from vllm_fl.compat.stacked_weights import AutoWeightsLoader


def load(model, weights):
    return AutoWeightsLoader(model).load_weights(weights)
'''


def test_a_file_importing_only_the_loader_loads_through_the_backport(tmp_path):
    m = migrate(tmp_path, LOADER_ONLY)
    assert m.model_unit.text == LOADER_ONLY_AFTER
    assert backports.STACKED_WEIGHTS.module in m.units


def test_a_file_without_the_loader_gets_no_backport(tmp_path):
    text = "from .utils import maybe_prefix\n\n\nNAME = maybe_prefix('a', 'b')\n"
    m = migrate(tmp_path, text)
    assert m.model_unit.text == text.replace("from .utils", "from vllm.model_executor.models.utils")
    assert backports.STACKED_WEIGHTS.module not in m.units


def test_needed_resolves_relative_imports_against_the_origin():
    tree = ast.parse("from .utils import AutoWeightsLoader\n")
    assert backports.needed([tree], origins=["vllm.model_executor.models.gemma3"]) == [backports.STACKED_WEIGHTS]
    assert backports.needed([tree]) == []  # without an origin a relative import names nothing
    other = ast.parse("from .other import AutoWeightsLoader\n")
    assert backports.needed([other], origins=["vllm.model_executor.models.gemma3"]) == []


# ---------------------------------------------------------------- P31: tuple shard ids

def test_p31_a_literal_tuple_handed_to_a_weight_loader():
    code = '''
        def load(param, w):
            param.weight_loader(param, w, (0, 1, 2))
            param.weight_loader(param, w, 1)
            param.weight_loader(param, w, loaded_shard_id=(2, 3))
    '''
    found = only(analyze(code), "P31")
    assert [(f.line, f.data["shard_id"], f.data["kind"]) for f in found] == [(3, (0, 1, 2), "call"), (5, (2, 3), "call")]
    assert found[0].message == ("`param.weight_loader(param, w, (0, 1, 2))` passes the tuple shard id (0, 1, 2): "
                                "the pinned MergedColumnParallelLinear.weight_loader takes one int "
                                "(`assert loaded_shard_id < len(self.output_sizes)` raises TypeError on a tuple)")
    assert "load_shard(param, loaded_weight, shard_id)" in found[0].fix
    assert found[0].severity == "error"


def test_p31_a_stacked_params_mapping_entry_with_a_tuple():
    code = '''
        stacked_params_mapping = [
            ("in_proj_qkvz", "in_proj_qkv", (0, 1, 2)),
            ("in_proj_qkvz", "in_proj_z", 3),
            ("qkv_proj", "q_proj", "q"),
        ]
    '''
    found = only(analyze(code), "P31")
    assert [(f.line, f.data["kind"]) for f in found] == [(3, "mapping")]


def test_p31_negatives_ints_strings_and_the_backported_mapper():
    code = '''
        from vllm_fl.compat.stacked_weights import WeightsMapper

        mapper = WeightsMapper(orig_to_new_stacked={".in_proj_qkv": (".in_proj_qkvz", (0, 1, 2))})
        pairs = [("a", "b", ("x", "y")), ("a", "b", ())]
        shape = (0, 1, 2)

        def load(param, w, shard_id):
            param.weight_loader(param, w, shard_id)
            param.weight_loader(param, w, "q")
            torch.permute(w, (0, 1, 2))
    '''
    assert only(analyze(code), "P31") == []


# ---------------------------------------------------------------- P32: GGUF handling upstream dropped

GEMMA3_LIKE = '''
    class Gemma3Model:
        def load_weights(self, weights):
            return AutoWeightsLoader(self).load_weights(weights)
'''


def test_p32_the_pinned_module_of_that_name_handled_gguf():
    found = only(analyze(GEMMA3_LIKE, module="vllm_fl.models.gemma3"), "P32")
    assert [(f.line, f.severity) for f in found] == [(3, "warning")]
    entry = GGUF_HANDLING["0.13.0"]["gemma3"]
    assert found[0].message == (
        "GGUF checkpoints: the pinned vllm.model_executor.models.gemma3 subtracts 1 from every norm.weight of a "
        "GGUF checkpoint in load_weights (llama.cpp stores Gemma norms plus one) (line 385: "
        f"`{entry['code']}`); upstream has no GGUF support and dropped it, so this file handles a GGUF "
        "checkpoint differently")
    rope = only(analyze("rotary = get_rope(64, max_position=8)\n", module="vllm_fl.models.llama"), "P32")
    assert [f.line for f in rope] == [1] and "is_neox_style=False" in rope[0].message


def test_p32_negatives_a_file_that_handles_gguf_and_other_modules():
    kept = GEMMA3_LIKE + '''
        def fix(self, name, w):
            if self.quant_config.get_name() == "gguf" and name.endswith("norm.weight"):
                w -= 1
    '''
    assert only(analyze(kept, module="vllm_fl.models.gemma3"), "P32") == []
    assert only(analyze(GEMMA3_LIKE, module="vllm_fl.models.gemma2"), "P32") == []


def test_p32_table_is_what_the_pinned_source_does():
    """Every pinned model module that tests for GGUF is in the table, at the line and with the code
    the table names (re-derived from the pinned vLLM's source)."""
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    models = next(Path(venv).glob("lib/python3*/site-packages/vllm/model_executor/models"))
    found = {}
    for path in sorted(models.glob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r'get_name\(\) == "gguf"', line):
                found.setdefault(path.stem, (i, line.strip()))
    assert found == {m: (e["line"], e["code"]) for m, e in GGUF_HANDLING["0.13.0"].items()}


def test_p32_upstream_dropped_every_case_in_the_table():
    models = Path(os.environ.get("MMF_UPSTREAM") or Path.home() / ".cache/mmf/src/vllm-0.33.0") / "vllm/model_executor/models"
    if not models.is_dir():
        pytest.skip(f"no upstream vLLM source at {models.parent.parent.parent} (set MMF_UPSTREAM)")
    for stem in GGUF_HANDLING["0.13.0"]:
        path = models / f"{stem}.py"
        assert not path.exists() or "gguf" not in path.read_text().lower(), stem

