"""verify --run ties a failure to the finding apply left behind it (verify.left_findings), golden on real
reports: the tracebacks and findings in tests/fixtures/left_findings are interns1_pro's, gemma4_mtp's and
openai_privacy_filter's (vLLM 0.33.0 on 0.13.0), whose reports named a rule from the message alone (P4, or
none) while apply had left P12, P38 and P24."""

from __future__ import annotations

import json
from pathlib import Path

from flagos_migrate.verify import left_findings as L
from flagos_migrate.verify import runtime

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "left_findings"


def _case(name):
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def _arch(error, level=None):
    """An architecture entry as shape_architecture gives it, failing at the error's level."""
    level = level or error["level"]
    first = {"level": level, "message": f"{error['type']}: {error['message']}" if error.get("type") else error["message"],
             "traceback_tail": error.get("traceback_tail", ""),
             "likely_rule": runtime.likely_rule(level, error)}
    return {"architecture": "X", "levels": {level: {"status": "fail", "reason": first["message"]}}, "first_error": first}


def test_interns1_pros_missing_attribute_is_the_p12_finding_that_names_it():
    case = _case("interns1_pro")
    error, left = case["error"], case["left"]
    assert runtime.likely_rule("forward", error) == "P4"  # the message alone: a method no pinned base defines
    assert L.missing_name(error) == "deepstack_input_embeds"
    got = L.explain("forward", error, left)
    assert got == {"rule": "P12", "finding": "P12 at vllm_fl/models/interns1_pro.py:563",
                   "why": "the error names deepstack_input_embeds, which the finding names"}
    arch = runtime.with_left_findings(_arch(error), error, left)
    err = arch["first_error"]
    assert (err["likely_rule"], err["rules_left"]) == ("P12", ["P12", "P26"])
    assert "likely P12: the error names deepstack_input_embeds" in runtime.text_lines(
        {"architectures": [{**arch, "levels": {lv: arch["levels"].get(lv, {"status": "skipped"})
                                                for lv in runtime.LEVELS}}]})[3]


def test_a_traceback_inside_no_span_and_naming_nothing_left_keeps_the_guess_and_lists_the_rules():
    case = _case("interns1_pro")
    # the same traceback (frames in the pinned qwen3_vl.py only) with an error naming nothing a finding names
    error = {**case["error"], "message": "'InternS1ProForConditionalGeneration' object has no attribute 'rope_deltas'"}
    assert L.explain("forward", error, case["left"]) is None
    err = runtime.with_left_findings(_arch(error), error, case["left"])["first_error"]
    assert (err["likely_rule"], err["rules_left"]) == ("P4", ["P12", "P26"]) and "likely_finding" not in err
    assert runtime._likely_text(err) == "  (likely P4 from the message alone; rules left: P12, P26)"


def test_a_frame_inside_a_findings_span_is_that_finding_innermost_frame_and_span_first():
    left = _case("interns1_pro")["left"]
    p26 = next(e for e in left if e["rule"] == "P26" and e["file"].endswith("interns1_pro.py"))
    assert p26["span"] == [575, 580]  # the statement its comment precedes, not the whole __init__
    tail = ('Traceback (most recent call last):\n'
            '  File "/tmp/p/vllm_fl/models/interns1_pro.py", line 590, in __init__\n    x = f()\n'
            '  File "/tmp/p/vllm_fl/models/interns1_pro.py", line 576, in __init__\n    y = g()\n'
            '  File "/venv/lib/python3.11/site-packages/vllm/model_executor/models/qwen3_vl.py", line 9, in g\n'
            'ValueError: bad')
    error = {"level": "construct", "type": "ValueError", "message": "bad", "traceback_tail": tail}
    got = L.explain("construct", error, left)
    assert got["rule"] == "P26" and got["finding"] == "P26 at vllm_fl/models/interns1_pro.py:574"
    assert "interns1_pro.py:576" in got["why"] and "575-580" in got["why"]
    outer = {**error, "traceback_tail": tail.replace("line 576", "line 600")}
    assert L.explain("construct", outer, left)["rule"] == "P12"  # only __init__'s span (P12's def) holds it
    # a file changed since apply: its spans no longer hold
    assert L.explain("construct", error, left, unchanged={"vllm_fl/models/qwen3_vl_moe.py"}) is None


def test_a_match_failure_with_p24_left_is_p24():
    case = _case("openai_privacy_filter")
    error, left = case["error"], case["left"]
    got = L.explain("match", error, left)
    assert got["rule"] == "P24" and got["finding"] == (
        "P24 at vllm_fl/models/openai_privacy_filter.py:29 (and 3 more of P24)")
    assert "override the pinned parent never calls" in got["why"]
    assert L.explain("forward", error, left) is None  # a P24 left says nothing of an error raised elsewhere
    arch = runtime.with_left_findings(_arch(error), None, left)
    assert (arch["first_error"]["likely_rule"], arch["first_error"]["rules_left"]) == ("P24", ["P24"])


def test_a_match_failure_is_tied_to_the_finding_on_its_own_architecture_first():
    """llama: each Bidirectional architecture has its P25 (upstream's LlamaBidirectionalConfig, never run on the pin);
    the model's match failure named the classifier's, the first in the file."""
    left = [{"rule": "P25", "file": "vllm_fl/models/llama.py", "line": line, "span": (line, line + 5),
             "message": f"architecture {arch}: upstream's MODELS_CONFIG_MAP applies `LlamaBidirectionalConfig`"}
            for line, arch in ((577, "LlamaBidirectionalForSequenceClassification"), (585, "LlamaBidirectionalModel"))]
    error = {"level": "match", "message": "max |Δlogit| 3.45, tolerance 0.001 (vllm-0.33.0)"}
    got = L.explain("match", error, left, arch="LlamaBidirectionalModel")
    assert got["finding"] == "P25 at vllm_fl/models/llama.py:585 (and 1 more of P25)"
    assert L.explain("match", error, left, arch="LlamaBidirectionalForSequenceClassification")["finding"].startswith(
        "P25 at vllm_fl/models/llama.py:577")
    assert L.explain("match", error, left)["finding"].startswith("P25 at vllm_fl/models/llama.py:577")  # file order


def test_a_match_failure_prefers_the_p43_on_its_architecture_to_a_processor_hook_before_it():
    """cohere2_vision: the text prefill differs (0.0776), which no multimodal processor hook reaches; the P43 on the
    registration (the pinned Cohere2ForCausalLM's narrower sliding window) is the finding, not the P24 at line 229."""
    left = [{"rule": "P24", "file": "vllm_fl/models/cohere2_vision.py", "line": 229, "span": (229, 240),
             "message": "`Cohere2VisionMultiModalProcessor._postprocess_hf_mm_data()` is dead on the pinned vLLM"},
            {"rule": "P43", "file": "vllm_fl/models/cohere2_vision.py", "line": 318, "span": (318, 400),
             "message": "architecture Cohere2VisionForConditionalGeneration runs through the pinned vLLM 0.13.0's "
                        "Cohere2ForCausalLM"}]
    error = {"level": "match", "message": "max |Δlogit| 0.0776, tolerance 0.001 (vllm-0.33.0)"}
    got = L.explain("match", error, left, arch="Cohere2VisionForConditionalGeneration")
    assert got["rule"] == "P43" and got["finding"] == "P43 at vllm_fl/models/cohere2_vision.py:318"
    # a longer architecture name that starts the same is another architecture
    assert L.explain("match", error, left, arch="Cohere2Vision")["rule"] == "P24"


def test_spans_of_a_def_a_class_a_statement_and_a_comment():
    text = ("import x\n\n\n@dec\nclass A(B):\n    flag = False\n\n    def f(self):\n        # P26: note\n"
            "        self.t = T(\n            1,\n        )\n        return 1\n")
    assert L.span_of(text, 5) == (4, 13)  # the class header: the class with its decorator
    assert L.span_of(text, 6) == (6, 6)  # a class attribute: that statement
    assert L.span_of(text, 8) == (8, 13)  # a def header: the def
    assert L.span_of(text, 9) == (10, 12)  # a comment apply wrote: the statement after it
    assert L.span_of("def (:\n", 1) == (1, 1)


def test_no_findings_left_changes_nothing():
    case = _case("interns1_pro")
    arch = runtime.with_left_findings(_arch(case["error"]), case["error"], [])
    assert arch["first_error"]["likely_rule"] == "P4" and "rules_left" not in arch["first_error"]
    assert L.rules_left([{"rule": "P26"}, {"rule": "P12"}, {"rule": "P4"}, {"rule": "P12"}]) == ["P4", "P12", "P26"]


def test_gemma4_mtps_kv_less_attention_is_the_p38_draft_finding_its_forward_passes_through():
    """Gemma4MTP's attention reads the target's KV cache (attn(q, None, None)), which only upstream's gemma4_mtp
    proposer wires; the message names no rule (a harness LevelError), the frames pass Gemma4MTP.forward, inside
    the class the P38 finding is on (no proposer of the pinned vLLM builds it)."""
    case = _case("gemma4_mtp")
    error, left = case["error"], case["left"]
    assert runtime.likely_rule("forward", error) is None
    got = L.explain("forward", error, left)
    assert got["rule"] == "P38" and got["finding"] == "P38 at vllm_fl/models/gemma4_mtp.py:439"
    # the innermost frames (the attention at 249, the layers at 315 / 426) lie in no finding's span
    assert got["why"].startswith("the traceback passes vllm_fl/models/gemma4_mtp.py:536, inside the finding's span")
    tail_only = {k: v for k, v in error.items() if k != "frames"}  # the 12-line text tail reaches only line 249
    assert L.explain("forward", tail_only, left) is None


JINA = '''
class JinaEmbeddingsV5DecoderModel:
    pass


class JinaEmbeddingsV5EncoderModel:
    pass


class JinaEmbeddingsV5Model(JinaEmbeddingsV5DecoderModel):
    def __new__(cls, *, vllm_config, prefix=""):
        is_decoder = getattr(vllm_config.model_config.hf_config, "is_decoder", True)
        if not is_decoder:
            return JinaEmbeddingsV5EncoderModel(vllm_config=vllm_config, prefix=prefix)
        return super().__new__(cls)
'''


def test_a_class_its_registered_class_chose_in_new_is_the_finding_in_that_new(tmp_path):
    # jina at 86d8aa3: JinaEmbeddingsV5Model's __new__ read 4.57.6's is_decoder False (P45) and built the encoder;
    # the load failed inside it ('no k_norm in LlamaModel'), no frame passing the read: likely_rule None
    path = tmp_path / "vllm_fl" / "models" / "jina.py"
    path.parent.mkdir(parents=True)
    path.write_text(JINA)
    spec = {"module": "vllm_fl.models.jina", "class": "JinaEmbeddingsV5Model"}
    left = [{"rule": "P25", "file": "vllm_fl/models/jina.py", "line": 10, "span": [10, 15], "message": "hook"},
            {"rule": "P45", "file": "vllm_fl/models/jina.py", "line": 12, "span": [12, 12], "message": "is_decoder"}]
    built = ["JinaEmbeddingsV5EncoderModel", "object"]
    chosen = L.chosen_by_new(spec, built, tmp_path, left)
    assert chosen == {"file": "vllm_fl/models/jina.py", "span": [11, 15], "registered": "JinaEmbeddingsV5Model",
                      "built": "JinaEmbeddingsV5EncoderModel"}
    error = {"level": "load", "message": "There is no module or parameter named 'layers.0.self_attn.k_norm' in "
             "LlamaModel", "traceback_tail": 'File "/venv/vllm/model_executor/models/llama.py", line 480, in load'}
    assert L.explain("load", error, left, None, chosen) == {
        "rule": "P45", "finding": "P45 at vllm_fl/models/jina.py:12",
        "why": "the pinned vLLM built JinaEmbeddingsV5EncoderModel, not the registered JinaEmbeddingsV5Model: its "
               "__new__ (lines 11-15) chose it, and the finding lies there"}
    assert L.explain("load", error, left) is None  # without it, nothing ties
    # the registered class built (the decoder side): nothing was chosen
    assert L.chosen_by_new(spec, ["JinaEmbeddingsV5Model", "JinaEmbeddingsV5DecoderModel"], tmp_path, left) is None
    # a class without __new__, or no file
    assert L.chosen_by_new({**spec, "class": "JinaEmbeddingsV5EncoderModel"}, built[1:], tmp_path, left) is None
    assert L.chosen_by_new({**spec, "module": "vllm_fl.models.gone"}, built, tmp_path, left) is None


def test_an_error_beats_a_warning_on_the_same_statement():
    # gemma4_mm: apply unwraps `with self._mark_tower_model(...)` and writes P26's comment (a warning: the outputs
    # are upstream's) before the statement P41 is on (AutoModel.from_config of a bridged config): both spans are
    # that one line; the report named P26, whose line comes first
    p26 = {"rule": "P26", "file": "vllm_fl/models/gemma4_mm.py", "line": 1095, "span": [1096, 1096],
           "severity": "warning", "message": "encoder tower built under `self._mark_tower_model(...)`"}
    p41 = {"rule": "P41", "file": "vllm_fl/models/gemma4_mm.py", "line": 1096, "span": [1096, 1096],
           "severity": "error", "message": "`AutoModel.from_config(...)` picks the model class by the config's class"}
    error = {"level": "construct", "type": "ValueError", "message": "Unrecognized configuration class",
             "traceback_tail": 'File "/tmp/p/vllm_fl/models/gemma4_mm.py", line 1096, in __init__\n'}
    for left in ([p26, p41], [p41, p26]):
        assert L.explain("construct", error, left)["finding"] == "P41 at vllm_fl/models/gemma4_mm.py:1096"
    # a warning alone on the line is still named
    assert L.explain("construct", error, [p26])["rule"] == "P26"


def test_a_framework_refusal_is_the_finding_of_the_guessed_rule_on_that_architecture():
    # deepseek_eagle3: the pinned SpeculativeConfig refuses the eagle3 draft of a deepseek_v2 target while the config
    # is built, no frame in the migrated files; the report named P38 from the message and no finding
    def p38(arch):
        return {"rule": "P38", "file": "vllm_fl/models/deepseek_eagle3.py", "line": 269, "span": [269, 269],
                "severity": "error", "message": f"architecture {arch}: upstream builds it as the `eagle3` draft"}
    left = [p38("Eagle3DeepseekV2ForCausalLM"), p38("Eagle3DeepseekV3ForCausalLM"),
            {"rule": "P6", "file": "vllm_fl/models/deepseek_v2.py", "line": 655, "span": [652, 659],
             "severity": "error", "message": "`MLAAttentionSpec()` does not accept keyword `max_tp_shards`"}]
    error = {"level": "construct", "type": "ValidationError", "message": "Eagle3 is only supported for ['llama']",
             "traceback_tail": 'File "/venv/lib/python3.11/site-packages/vllm/config/speculative.py", line 9\n'}
    got = L.explain("construct", error, left, arch="Eagle3DeepseekV3ForCausalLM", guess="P38")
    assert got["finding"] == "P38 at vllm_fl/models/deepseek_eagle3.py:269" and "on Eagle3DeepseekV3ForCausalLM" in got["why"]
    assert L.explain("construct", error, left, arch="Eagle3DeepseekV3ForCausalLM", guess="P6") is None
    assert L.explain("construct", error, left, arch="OtherForCausalLM", guess="P38") is None
    arch = runtime.with_left_findings({**_arch({**error, "type": "ValidationError"}),
                                       "architecture": "Eagle3DeepseekV2ForCausalLM"}, error, left)
    assert arch["first_error"]["likely_finding"] == "P38 at vllm_fl/models/deepseek_eagle3.py:269"


GEMMA3N = {"architecture": "Gemma3nForConditionalGeneration", "module": "vllm_fl.models.gemma3n_mm",
           "class": "Gemma3nForConditionalGeneration"}
GEMMA3N_LEFT = [{"rule": "P24", "file": "vllm_fl/models/gemma3n_mm.py", "line": 266, "span": [266, 300],
                 "severity": "error", "message": "`Gemma3nMultiModalProcessor._postprocess_hf_mm_data()` is dead on "
                 "the pinned vLLM: upstream's BaseMultiModalProcessor calls it"},
                {"rule": "P26", "file": "vllm_fl/models/gemma3n_mm.py", "line": 617, "span": [617, 620],
                 "severity": "warning", "message": "encoder tower built"}]


def _passed_to_forward():
    levels = {lv: {"status": "pass", "reason": None} for lv in runtime.LEVELS[:-1]}
    return {"architecture": GEMMA3N["architecture"], "levels": levels, "first_error": None, "notes": []}


def _gemma3n(text, image, reference="vllm-0.33.0", spec=GEMMA3N):
    ref = {"reference": reference, "max_abs_logit_diff": max(text, image), "text_logit_diff": text,
           "image_logit_diff": image}
    arch = runtime.shape_architecture(spec, _passed_to_forward(), ref, want_match=True)
    return runtime.with_left_findings(arch, None, GEMMA3N_LEFT)


def test_gemma3ns_image_prefill_is_the_known_numerical_divergence_not_the_p24_left():
    """gemma3n_mm failed match by 0.00219 in the prefill with an image (text Δ0), and the report guessed P24 (a
    processor hook for audio a prefill never reaches). Session 15 proved it fp32 rounding in the timm tower (the
    two towers agree to 1.9e-12 in fp64): the report names that with its evidence. The level still fails (the
    tolerance is the same) and the exit code says so."""
    arch = _gemma3n(0.0, 0.002187669277191162)
    err = arch["first_error"]
    assert arch["levels"]["match"]["status"] == "fail" and arch["tolerance"] == runtime.TOLERANCE == 1e-3
    assert "known numerical divergence in the image prefill" in arch["levels"]["match"]["reason"]
    assert err["likely_rule"] is None and "likely_finding" not in err and err["rules_left"] == ["P24", "P26"]
    known = err["known_divergence"]
    assert "fp32 rounding in the vision tower" in known["why"] and "1.9e-12 in fp64" in known["why"]
    assert any(e.startswith("vllm/model_executor/models/gemma3n_mm.py:617:") for e in known["evidence"])
    assert runtime.exit_code({"ok": runtime.report_ok([arch]), "architectures": [arch]}) == 1
    assert runtime._likely_text(err).startswith("  (known numerical divergence, no rule: fp32 rounding")


def test_the_numerical_divergence_covers_only_its_architecture_prefill_reference_and_bound():
    """Negatives: the text prefill differing, a difference above the entry's bound, another reference, no image
    compared, another architecture: each the plain failure with the rule the findings left point to (P24 here)."""
    for arch in (_gemma3n(0.002, 0.002), _gemma3n(0.0, 0.05), _gemma3n(0.0, 0.002, reference="transformers-5.20.2"),
                 _gemma3n(0.0, 0.002, spec={**GEMMA3N, "architecture": "Gemma3nForCausalLM"})):
        err = arch["first_error"]
        assert arch["levels"]["match"]["status"] == "fail" and "known_divergence" not in err
        assert "known numerical divergence" not in arch["levels"]["match"]["reason"]
        assert err["likely_rule"] == "P24"
    ref = {"reference": "vllm-0.33.0", "max_abs_logit_diff": 0.002, "text_logit_diff": 0.002}
    arch = runtime.shape_architecture(GEMMA3N, _passed_to_forward(), ref, want_match=True)
    assert "known_divergence" not in arch["first_error"]
    # within the tolerance it passes as any model does
    assert _gemma3n(0.0, 5e-4)["levels"]["match"]["status"] == "pass"
