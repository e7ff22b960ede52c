"""P12 judges only reads that can run: a private helper of the pinned parent that only the methods a
subclass overrides call is dead code on that subclass. qwen3_5 on the pinned qwen3_vl is the case:
``Qwen3_5ForConditionalGeneration.__init__`` skips ``Qwen3VLForConditionalGeneration.__init__`` and
never sets ``deepstack_input_embeds``, which only ``_get_``/``_set_``/``_clear_deepstack_input_embeds``
read, and those serve the pinned ``forward`` and ``embed_input_ids``, which qwen3_5 replaces. The
parent is the real pinned 0.13.0 class (the bundled index)."""

from __future__ import annotations

from flagos_migrate.analysis.engine import AnalysisContext, analyze_source
from flagos_migrate.pinned.api_index import PinnedApis

CHILD = '''
from torch import nn
from vllm.model_executor.models.qwen3_vl import Qwen3VLForConditionalGeneration


class Child(Qwen3VLForConditionalGeneration):
    def __init__(self, *, vllm_config, prefix=""):
        nn.Module.__init__(self)
        self.config = vllm_config.model_config.hf_config
{body}
'''

EMBED = '''
    def embed_input_ids(self, input_ids, multimodal_embeddings=None, *, is_multimodal=None):
        return self.language_model.embed_input_ids(input_ids)
'''
FORWARD = '''
    def forward(self, input_ids, positions, intermediate_tensors=None, inputs_embeds=None, **kwargs):
        {call}
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds)
'''


def p12(body: str) -> list:
    code = CHILD.format(body=body)
    findings = analyze_source(code, AnalysisContext(PinnedApis.load("0.13.0"), "vllm_fl.models.child", "child.py"))
    return [f for f in findings if f.rule == "P12"]


def deepstack(findings: list) -> dict:
    return {f.data["class"]: f.data["read_by"].get("deepstack_input_embeds") for f in findings
            if "deepstack_input_embeds" in f.data["missing"]}


def test_helpers_only_overridden_methods_call_are_not_judged():
    assert deepstack(p12(EMBED + FORWARD.format(call="pass"))) == {}


def test_the_inherited_forward_still_runs_them():
    """Negative: without a forward of its own, the pinned forward runs its buffer helpers."""
    found = p12(EMBED)
    assert deepstack(found) == {"Child": ["Qwen3VLForConditionalGeneration._clear_deepstack_input_embeds",
                                          "Qwen3VLForConditionalGeneration._get_deepstack_input_embeds"]}
    assert found[0].severity == "error"  # the framework calls forward


def test_a_forward_delegating_to_the_parent_runs_them():
    """Negative: super().forward(...) runs the pinned forward, and with it the helpers."""
    found = deepstack(p12(EMBED + FORWARD.format(call="super().forward(input_ids, positions)")))
    assert found == {"Child": ["Qwen3VLForConditionalGeneration._clear_deepstack_input_embeds",
                               "Qwen3VLForConditionalGeneration._get_deepstack_input_embeds"]}


def test_a_helper_the_subclass_calls_itself_is_judged():
    """Negative: the subclass's own forward calls one of the helpers."""
    found = deepstack(p12(EMBED + FORWARD.format(call="self._get_deepstack_input_embeds(input_ids.size(0))")))
    assert found == {"Child": ["Qwen3VLForConditionalGeneration._get_deepstack_input_embeds"]}
