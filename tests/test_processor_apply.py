"""P7 override_forms (a multimodal processor's apply in upstream's form) and P24 hook_ports (_get_hf_mm_text ported as
0.13.0's path without the HF prompt update): nano_nemotron_vl's processor failed forward on both
(``apply() takes 3 positional arguments but 4 were given``; then ``found 0 prompt placeholders``)."""

from __future__ import annotations

import importlib.util
import inspect
import textwrap

import pytest
from flagos_migrate.analysis import calls, inherited
from flagos_migrate.migrate.backports import PROCESSOR_APPLY, SOURCES
from flagos_migrate.migrate.edits import Edits
from flagos_migrate.migrate.rewrites import apply_edits

from tests.analysis_helpers import PINNED_VENV, analyze, only, run_script_json

PROCESSOR = '''
from vllm.multimodal.processing import BaseMultiModalProcessor


class DemoProcessor(BaseMultiModalProcessor):
    def apply(
        self,
        inputs,
        timing_ctx,
    ):
        """Drops a flag first."""
        inputs.hf_processor_mm_kwargs = {
            k: v for k, v in inputs.hf_processor_mm_kwargs.items() if k != "flag"
        }
        if "video" not in inputs.mm_data_items:
            return super().apply(inputs, timing_ctx)
        ids = list(inputs.prompt)
        return super().apply(inputs, timing_ctx)
'''

MIGRATED = '''
from vllm.multimodal.processing import BaseMultiModalProcessor
from vllm_fl.compat.processor_apply import apply_inputs


class DemoProcessor(BaseMultiModalProcessor):
    def apply(self, prompt, mm_data, hf_processor_mm_kwargs, tokenization_kwargs=None, *, mm_uuids=None):
        """Drops a flag first."""
        inputs, timing_ctx = apply_inputs(self, prompt, mm_data, hf_processor_mm_kwargs, tokenization_kwargs, mm_uuids)
        inputs.hf_processor_mm_kwargs = {
            k: v for k, v in inputs.hf_processor_mm_kwargs.items() if k != "flag"
        }
        if "video" not in inputs.mm_data_items:
            return inputs.pinned_apply(super().apply)
        ids = list(inputs.prompt)
        return inputs.pinned_apply(super().apply)
'''


def _form(found):
    return [f for f in only(found, "P7") if f.data.get("problem") == "override-form"]


def test_p7_an_apply_in_upstreams_form_takes_the_pinned_arguments():
    """Golden: the signature becomes the pinned one, upstream's (inputs, timing_ctx) are bound first (after the
    docstring) and super().apply(inputs, timing_ctx) hands the pinned arguments on; the read of inputs.prompt (token
    ids upstream, the request's prompt on 0.13.0) stays a finding, where the adapter raises."""
    code = textwrap.dedent(PROCESSOR)
    found = analyze(code)
    (f,) = _form(found)
    assert f.line == 6 and f.data["class"] == "DemoProcessor" and f.data["method"] == "apply"
    assert "every call raises TypeError" in f.message
    edits = Edits()
    assert calls.propose_edits(f, edits)
    assert edits.add_imports == {("vllm_fl.compat.processor_apply", "apply_inputs"): "P7"}
    out = apply_edits(code, edits)
    assert out == textwrap.dedent(MIGRATED)
    compile(out, "demo.py", "exec")
    after = analyze(out)
    assert _form(after) == []
    (left,) = [g for g in only(after, "P7") if g.data.get("problem") == "override-form-refused"]
    assert left.data["attribute"] == "prompt" and left.line == out.splitlines().index("        ids = list(inputs.prompt)") + 1
    # nothing else of the method is left: no P9 on inputs.*, no P7 on super().apply
    assert [g for g in after if g.rule in ("P7", "P9") and g is not left] == []


def test_p7_override_forms_negatives():
    # the pinned form already: nothing
    assert _form(analyze(MIGRATED)) == []
    # not a multimodal processor: its apply is its own
    other = PROCESSOR.replace("from vllm.multimodal.processing import BaseMultiModalProcessor", "import torch") \
        .replace("(BaseMultiModalProcessor)", "(torch.nn.Module)")
    assert _form(analyze(other)) == []
    # another signature: not upstream's form, left as it is
    assert _form(analyze(PROCESSOR.replace("        inputs,\n        timing_ctx,\n", "        inputs,\n"))) == []
    # a replaced item set is refused too (a store), a read of it is not
    store = MIGRATED.replace("        ids = list(inputs.prompt)\n", "        inputs.mm_data_items = {}\n")
    (g,) = [x for x in only(analyze(store), "P7") if x.data.get("problem") == "override-form-refused"]
    assert g.data["attribute"] == "mm_data_items"
    # a field the pinned arguments do not carry (terratorch reads inputs.get_mm_hashes): AttributeError, a finding
    hashes = MIGRATED.replace("        ids = list(inputs.prompt)\n", "        ids = inputs.get_mm_hashes()\n")
    (h,) = [x for x in only(analyze(hashes), "P7") if x.data.get("problem") == "override-form-refused"]
    assert h.data["attribute"] == "get_mm_hashes" and "AttributeError" in h.message


HOOK = '''
from vllm.multimodal.processing import BaseMultiModalProcessor


class NanoNemotronVLMultiModalProcessor(BaseMultiModalProcessor):
    def _get_hf_mm_text(self, mm_counts):
        return self.dummy_inputs.get_dummy_text(mm_counts)
'''


def test_p24_the_dummy_text_hook_is_ported_as_the_pinned_path_without_the_hf_prompt_update():
    code = textwrap.dedent(HOOK)
    (f,) = only(analyze(code), "P24")
    assert f.data["method"] == "_apply_hf_processor_main" and f.data["hook"] == "_get_hf_mm_text"
    edits = Edits()
    inherited.propose_edits(f, edits)
    out = apply_edits(code, edits)
    assert out.startswith(code) and "enable_hf_prompt_update=False,\n        )\n" in out
    compile(out, "demo.py", "exec")
    assert only(analyze(out), "P24") == []
    # a class the table does not name (its HF processor's text-only tokenization unchecked), or another body: nothing
    assert only(analyze(HOOK.replace("NanoNemotronVLMultiModalProcessor", "OtherProcessor")), "P24") == []
    assert only(analyze(HOOK.replace("return self.dummy_inputs.get_dummy_text(mm_counts)", 'return "<image>"')),
                "P24") == []


def _adapter():
    spec = importlib.util.spec_from_file_location("processor_apply", SOURCES / PROCESSOR_APPLY.source)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_adapter_hands_the_pinned_arguments_on_and_refuses_what_differs():
    mod = _adapter()

    class Proc:
        parsed = 0

        def _to_mm_items(self, mm_data):
            Proc.parsed += 1
            return {k: list(v) for k, v in mm_data.items()}

    calls_seen = []
    inputs, timing = mod.apply_inputs(Proc(), "w1 <image>", {"image": ["img"]}, {"flag": 1, "k": 2}, {"t": 1},
                                      {"image": ["u"]})
    with timing.record("apply_hf_processor"):
        assert "image" in inputs.mm_data_items and inputs.mm_data_items["image"] == ["img"]
    assert Proc.parsed == 1  # parsed once, as the pinned apply parses it
    inputs.hf_processor_mm_kwargs = {"k": 2}
    out = inputs.pinned_apply(lambda *a, **kw: calls_seen.append((a, kw)) or "done")
    assert out == "done" and calls_seen == [(("w1 <image>", {"image": ["img"]}, {"k": 2}, {"t": 1}),
                                             {"mm_uuids": {"image": ["u"]}})]
    with pytest.raises(NotImplementedError, match="token ids"):
        inputs.prompt  # noqa: B018
    with pytest.raises(NotImplementedError):
        inputs.prompt = [1]
    with pytest.raises(NotImplementedError, match="parses mm_data itself"):
        inputs.mm_data_items = {}


def test_the_tables_hold_on_the_pinned_processor():
    """What both rewrites rely on, read from the pinned BaseMultiModalProcessor: apply's parameters (the table's
    pinned form), and _apply_hf_processor_main's path without the HF prompt update running the HF processor on
    dummy_inputs.get_dummy_text(mm_counts) (what _get_hf_mm_text returns) and applying no update itself."""
    if not (PINNED_VENV / "bin" / "python").exists():
        pytest.skip("needs MMF_PINNED_VENV (vLLM 0.13.0)")
    out = run_script_json(PINNED_VENV / "bin" / "python", '''
        import inspect, json
        from vllm.multimodal.processing import BaseMultiModalProcessor as B
        params = [[p.name, p.kind.name, p.default is not p.empty] for p in inspect.signature(B.apply).parameters.values()]
        print(json.dumps({"apply": params,
                          "main": inspect.getsource(B._apply_hf_processor_main),
                          "mm_only": inspect.getsource(B._apply_hf_processor_mm_only)}))
    ''')
    from flagos_migrate.catalog.tables import OVERRIDE_FORMS

    (row,) = [r for r in OVERRIDE_FORMS if r["method"] == "apply"]
    table = inspect.signature(eval(f"lambda self, {row['pinned']}: None"))  # noqa: S307 (the table's own text)
    assert out["apply"] == [[p.name, p.kind.name, p.default is not p.empty] for p in table.parameters.values()]
    assert "return prompt_ids, mm_processed_data, False" in out["main"]
    assert "if enable_hf_prompt_update:" in out["main"]
    assert "self.dummy_inputs.get_dummy_text(mm_counts)" in out["mm_only"]
