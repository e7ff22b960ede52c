"""``verify --run`` on a pooling model compares what its pooler returns for the tiny prefill, on both sides,
besides the hidden states: the classifier head, the pooling method and the activation live in the pooler, and
the hidden states say nothing about them. Each vLLM's pooler is driven its own way (``_runtime_pool``: 0.13.0's
``PoolingParams.verify(task, model_config)`` and list-based pooling cursor, 0.33.0's ``verify(model_config)``,
``prompt_token_ids_cpu`` and numpy cursor), as its GPU runner's ``_dummy_pooler_run_task`` does.

The runtime test migrates BERT's sequence classifier and scales its classifier's output in the migrated file (a
defect only the pooler shows: the hidden states are the encoder's). Before, match passed on the hidden states
(max |Δ| 0); now it fails on the pooler's class scores and reports both diffs. Skips without the venvs."""

from __future__ import annotations

import os
import re

import pytest
from analysis_helpers import UPSTREAM_SRC, apply_and_verify_run

# after the classifier is built: its output scaled (softmax of 3x differs from softmax of x)
SCALED = '''
        _classify = self.classifier.forward

        def _scaled(x, _classify=_classify):
            out = _classify(x)
            return (out[0] * 3.0, *out[1:]) if isinstance(out, tuple) else out * 3.0

        self.classifier.forward = _scaled
'''


def _scale_the_classifier(plugin):
    path = plugin / "vllm_fl" / "models" / "bert.py"
    src = path.read_text(encoding="utf-8")
    start = src.index("class BertForSequenceClassification")
    at = src.index("        pooler_config = vllm_config.model_config.pooler_config", start)
    path.write_text(src[:at] + SCALED.lstrip("\n") + src[at:], encoding="utf-8")


def test_a_classifier_defect_the_hidden_states_cannot_show_fails_match_on_the_pooler_output(tmp_path):
    pinned, reference = os.environ.get("MMF_PINNED_VENV"), os.environ.get("MMF_REFERENCE_VENV")
    if not pinned or not reference or not UPSTREAM_SRC.is_dir():
        pytest.skip("needs MMF_PINNED_VENV (vLLM 0.13.0), MMF_REFERENCE_VENV (vLLM 0.33.0) and the upstream source")
    (arch,) = apply_and_verify_run(tmp_path, "bert", "--arch", "BertForSequenceClassification",
                                   edit=_scale_the_classifier)
    levels = {lv: s["status"] for lv, s in arch["levels"].items()}
    assert levels == {"import": "pass", "construct": "pass", "load": "pass", "forward": "pass", "match": "fail"}, \
        arch["levels"]
    assert arch["reference"] == "vllm-0.33.0"
    assert arch["max_abs_logit_diff"] <= arch["tolerance"]  # the encoder's hidden states agree
    assert arch["max_abs_pooler_diff"] > arch["tolerance"]  # the class scores do not
    diffs = {m.group(1): float(m.group(2)) for n in arch["notes"]
             for m in [re.match(r"pooler (\w+): max \|Δ\| (\S+)", n)] if m}
    assert diffs["classify"] > arch["tolerance"], arch["notes"]
    assert "pooler output max |Δ|" in arch["levels"]["match"]["reason"]


def test_match_holds_the_pooler_output_to_the_tolerance_and_reports_it_apart():
    from flagos_migrate.verify import runtime

    spec = {"architecture": "BertModel", "module": "vllm_fl.models.bert", "class": "BertEmbeddingModel"}
    levels = {lv: {"status": "pass", "reason": None} for lv in ("import", "construct", "load", "forward")}
    pinned = {"architecture": "BertModel", "levels": levels, "first_error": None, "notes": []}
    ref = {"reference": "vllm-0.33.0", "max_abs_logit_diff": 0.0}
    bad = runtime.shape_architecture(spec, pinned, {**ref, "max_abs_pooler_diff": 0.2}, want_match=True)
    assert bad["levels"]["match"]["status"] == "fail" and bad["first_error"]["level"] == "match"
    assert bad["max_abs_logit_diff"] == 0.0 and bad["max_abs_pooler_diff"] == 0.2
    assert "pooler output max |Δ| 0.2" in bad["levels"]["match"]["reason"]
    good = runtime.shape_architecture(spec, pinned, {**ref, "max_abs_pooler_diff": 1e-7}, want_match=True)
    assert good["levels"]["match"]["status"] == "pass" and "pooler output" in good["levels"]["match"]["reason"]
    plain = runtime.shape_architecture(spec, pinned, ref, want_match=True)  # not a pooling model: as before
    assert plain["levels"]["match"]["reason"] == "max |Δlogit| 0 <= 0.001 (vllm-0.33.0)"
    assert plain["max_abs_pooler_diff"] is None
