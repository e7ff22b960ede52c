"""P3's `absent_subsystems` table: an import from an upstream subsystem the pinned vLLM has no counterpart
for carries what the pinned code lacks there (diffusion_gemma's ModelState, qianfan_ocr's online quantization)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flagos_migrate.analysis import AnalysisContext, analyze_source
from flagos_migrate.catalog.tables import ABSENT_SUBSYSTEMS
from flagos_migrate.pinned.api_index import PinnedApis

UPSTREAM = Path.home() / ".cache" / "mmf" / "src" / "vllm-0.33.0"


def _p3(text: str) -> list:
    findings = analyze_source(text, AnalysisContext(PinnedApis.load("0.13.0"), "vllm_fl.models.m", "vllm_fl/models/m.py"))
    return [f for f in findings if f.rule == "P3"]


def test_an_import_from_an_absent_subsystem_says_what_the_pinned_version_lacks():
    (f,) = _p3("from vllm.model_executor.layers.quantization.online.base import OnlineQuantizationConfig\n\n"
               "def ignored(q):\n    return isinstance(q, OnlineQuantizationConfig)\n")
    assert f.data["absent_subsystem"] is True
    # only an isinstance check reads it: the fix says apply makes it False (caf5a5f), with the table's evidence
    assert f.fix.startswith("nothing on vllm 0.13.0 is a `OnlineQuantizationConfig` (upstream's online quantization "
                            "(`OnlineQuantizationConfig`") and "isinstance check of it False" in f.fix
    (h,) = _p3("from vllm.model_executor.layers.quantization.online.base import OnlineQuantizationConfig\n\n"
               "class Q(OnlineQuantizationConfig):\n    pass\n")  # a base class: no such rewrite, the plain evidence
    assert h.fix.startswith("no counterpart in vllm 0.13.0: upstream's online quantization (`OnlineQuantizationConfig`")
    (g,) = _p3("from vllm.v1.worker.gpu.model_states.interface import ModelState\n\nclass S(ModelState):\n    pass\n")
    assert "get_model_state_cls()" in g.fix


def test_other_missing_modules_keep_the_plain_finding():
    """Negative: a missing module outside the table (a prefix that only looks alike) gets no such evidence."""
    (f,) = _p3("from vllm.model_executor.layers.quantization.onlinex import Q\n\nQ()\n")
    assert "absent_subsystem" not in f.data and not (f.fix or "").startswith("no counterpart")


@pytest.mark.parametrize("prefix", sorted(ABSENT_SUBSYSTEMS))
def test_every_table_entry_is_upstream_only(prefix):
    """The table is checked against both versions: upstream has the package, the pinned index does not."""
    assert not PinnedApis.load("0.13.0").has_module(prefix)
    if not UPSTREAM.is_dir():
        pytest.skip("upstream vLLM 0.33.0 source not unpacked")
    assert (UPSTREAM / Path(*prefix.split("."))).is_dir()
