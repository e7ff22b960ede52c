"""Golden before/after of the multimodal processor ports: hooks upstream's BaseMultiModalProcessor calls that the
pinned 0.13.0 base never calls (P24 base_hooks: deepseek_ocr's `_get_hf_mm_inputs`, InternVL's
`_postprocess_hf_mm_data`) and overrides with upstream's parameters of a method the pinned base calls with others
(P6 signature_ports: deepseek_vl2's `_cached_apply_hf_processor`). Each shape apply does not port keeps its finding."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from analysis_helpers import empty_plugin
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_mini"
UPSTREAM_SRC = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0"))


@pytest.fixture(scope="module")
def apis() -> PinnedApis:
    return PinnedApis.load("0.13.0")


def migrate(tmp_path: Path, apis: PinnedApis, text: str) -> Migration:
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    (up / "vllm" / "model_executor" / "models" / "example.py").write_text(text)
    return Migration("example", Upstream(open_upstream(str(up))), PluginTree(empty_plugin(tmp_path / "plugin")),
                     apis).run()


HOOK_BEFORE = '''import torch

from vllm.multimodal.processing import BaseMultiModalProcessor


class ExampleMultiModalProcessor(BaseMultiModalProcessor):
    def _postprocess_hf_mm_data(self, mm_data, hf_processor_mm_kwargs, processed_data):
        hf_processor = self.info.get_hf_processor(**hf_processor_mm_kwargs)
        processed_data["image_token_id"] = torch.tensor(hf_processor.image_token_id)
        return processed_data


class ExampleVideoMultiModalProcessor(ExampleMultiModalProcessor):
    def _postprocess_hf_mm_data(self, mm_data, hf_processor_mm_kwargs, processed_data):
        processed_data = super()._postprocess_hf_mm_data(mm_data, hf_processor_mm_kwargs, processed_data)
        if not mm_data:
            return processed_data
        processed_data["video_token_id"] = torch.tensor(7)
        return processed_data
'''

HOOK_PORT = '''
    def _call_hf_processor(self, prompt, mm_data, mm_kwargs, tok_kwargs):
        # P24: upstream's base runs _postprocess_hf_mm_data on the processor's output; the pinned base never
        # calls it (0.13.0's models post-process here). Without multimodal data upstream calls no processor:
        # its renderer tokenizes the prompt
        if mm_data:
            processed_data = super()._call_hf_processor(prompt, mm_data, mm_kwargs, tok_kwargs)
        else:
            processed_data = self.info.get_tokenizer()(prompt, **tok_kwargs, return_tensors="pt")
        return self._postprocess_hf_mm_data(mm_data, mm_kwargs, processed_data)
'''


def test_a_dead_postprocess_hook_is_called_from_the_pinned_call_hf_processor(tmp_path, apis):
    """InternVL: the image_token_id its embed_multimodal reads was added by a hook 0.13.0 never calls (forward
    KeyError 'image_token_id'). The first class of the chain gets the pinned `_call_hf_processor` calling it
    (0.13.0's internvl.py does the same work there); the hooks stay, the subclass's reached through self."""
    m = migrate(tmp_path, apis, HOOK_BEFORE)
    head, tail = HOOK_BEFORE.split("\n\nclass ExampleVideoMultiModalProcessor")
    assert m.model_unit.text == head + HOOK_PORT + "\n\nclass ExampleVideoMultiModalProcessor" + tail
    assert "P24" in {f.rule for f in m.fixed()} and not [f for f in m.model_unit.after if f.rule == "P24"]


def test_a_hook_reading_upstreams_processor_data_keeps_its_finding(tmp_path, apis):
    """Upstream's first argument holds the dummy text and `audio`; the pinned `mm_data` neither: a hook reading
    its keys is not ported (only its emptiness is the same on both)."""
    text = HOOK_BEFORE.replace("if not mm_data:", 'if mm_data.get("images") is None:')
    m = migrate(tmp_path, apis, text)
    assert m.model_unit.text == text
    (f,) = [f for f in m.model_unit.after if f.rule == "P24"]
    assert f.data["method"] == "_postprocess_hf_mm_data" and "_call_hf_processor" in f.fix and "source" not in f.data


RENAME_BEFORE = '''from vllm.multimodal.processing import BaseMultiModalProcessor


class ExampleMultiModalProcessor(BaseMultiModalProcessor):
    def _get_hf_mm_text(self, mm_counts):
        return self.dummy_inputs.get_dummy_text(mm_counts)

    def _get_hf_mm_inputs(self, mm_items, hf_kwargs):
        hf_inputs = super()._get_hf_mm_inputs(mm_items, hf_kwargs)
        hf_data = hf_inputs.hf_data
        if "text" in hf_data:
            hf_data["prompt"] = hf_data.pop("text")
        if "audio" in hf_data:
            hf_data["audios"] = hf_data.pop("audio")
        return hf_inputs
'''


def test_renames_of_the_processor_data_move_into_call_hf_processor(tmp_path, apis):
    """deepseek_ocr's shape (text -> prompt, through an alias of hf_data), and nano_nemotron_vl's audio -> audios,
    which 0.13.0's data already spells so (parse.py: `<modality>s`): no rename written for it. The hook goes."""
    m = migrate(tmp_path, apis, RENAME_BEFORE)
    text = m.model_unit.text
    assert "def _get_hf_mm_inputs" not in text and "def _get_hf_mm_text" in text
    assert ('        hf_data = dict(text=prompt, **mm_data)\n'
            '        if "text" in hf_data:\n'
            '            hf_data["prompt"] = hf_data.pop("text")\n'
            '        return self.info.ctx.call_hf_processor(\n') in text
    assert "audios" not in text
    assert {"P24", "P4"} <= {f.rule for f in m.fixed()} and not m.model_unit.after


def test_a_get_hf_mm_inputs_doing_more_than_renames_is_named_not_ported(tmp_path, apis):
    """Pixtral / Voxtral change the keywords there: no port; the finding names the dead hook and where the pinned
    base builds the processor's data and keywords."""
    text = RENAME_BEFORE.replace('        return hf_inputs\n',
                                 '        return hf_inputs._replace(hf_kwargs=dict(hf_inputs.hf_kwargs, return_tensors=None))\n')
    m = migrate(tmp_path, apis, text)
    assert m.model_unit.text == text
    (f,) = [f for f in m.model_unit.after if f.rule == "P24"]
    assert f.data["method"] == "_get_hf_mm_inputs" and "dict(text=prompt, **mm_data)" in f.fix


CACHED_BEFORE = '''from vllm.multimodal.processing import BaseMultiModalProcessor


class ExampleMultiModalProcessor(BaseMultiModalProcessor):
    def _cached_apply_hf_processor(
        self,
        inputs,
        timing_ctx,
    ):
        # the processor's output depends on how many images the prompt holds
        if inputs.mm_data_items.get_count("image", strict=False) > 2:
            return self._apply_hf_processor(inputs, timing_ctx)

        return super()._cached_apply_hf_processor(inputs, timing_ctx)
'''

CACHED_AFTER = '''from vllm.multimodal.processing import BaseMultiModalProcessor


class ExampleMultiModalProcessor(BaseMultiModalProcessor):
    def _cached_apply_hf_processor(self, prompt, mm_data_items, hf_processor_mm_kwargs, tokenization_kwargs, *, mm_uuids=None):
        # the processor's output depends on how many images the prompt holds
        if mm_data_items.get_count("image", strict=False) > 2:
            return self._apply_hf_processor(prompt, mm_data_items, hf_processor_mm_kwargs, tokenization_kwargs, mm_uuids=mm_uuids)

        return super()._cached_apply_hf_processor(prompt, mm_data_items, hf_processor_mm_kwargs, tokenization_kwargs, mm_uuids=mm_uuids)
'''


def test_an_override_with_upstreams_parameters_gets_the_pinned_ones(tmp_path, apis):
    """deepseek_vl2: 0.13.0's apply() calls `_cached_apply_hf_processor(prompt, mm_items, hf_processor_mm_kwargs,
    tokenization_kwargs=..., mm_uuids=...)`; upstream's override took (inputs, timing_ctx): forward raised
    "unexpected keyword argument 'tokenization_kwargs'". Written as 0.13.0's deepseek_vl2.py writes it."""
    m = migrate(tmp_path, apis, CACHED_BEFORE)
    assert m.model_unit.text == CACHED_AFTER
    assert "P6" in {f.rule for f in m.fixed()} and not m.model_unit.after
    again = migrate(tmp_path / "again", apis, CACHED_AFTER)
    assert again.model_unit.text == CACHED_AFTER and not again.model_unit.before


def test_an_override_using_upstreams_result_object_is_named_not_ported(tmp_path, apis):
    """jina_vl reads the MultiModalProcessingResult upstream's base returns (the pinned one returns a tuple)."""
    text = CACHED_BEFORE.replace("        return super()._cached_apply_hf_processor(inputs, timing_ctx)\n",
                                 "        res = super()._cached_apply_hf_processor(inputs, timing_ctx)\n"
                                 "        return res.kwargs\n")
    m = migrate(tmp_path, apis, text)
    assert m.model_unit.text == text
    found = [f for f in m.model_unit.after if f.rule == "P6" and f.data.get("problem") == "override-takes-upstream-parameters"]
    assert len(found) == 1 and "tokenization_kwargs" in found[0].message and "signature_port" not in found[0].data


@pytest.mark.slow
@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm").is_dir(), reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
@pytest.mark.parametrize("model", ["deepseek_ocr", "deepseek_ocr2"])
def test_the_real_deepseek_ocr_files_get_the_pinned_processor_method(tmp_path, apis, model):
    """The real files: the rename hook becomes `_call_hf_processor` (P24, P4 fixed, none left but P26); OCR-2 brings
    upstream's processor module (its `strategy="v2"`, P43 answered_by_processor), OCR keeps the pinned one."""
    m = Migration(model, Upstream(open_upstream(str(UPSTREAM_SRC))), PluginTree(empty_plugin(tmp_path / "plugin")),
                  apis).run()
    text = m.model_unit.text
    assert "def _get_hf_mm_inputs" not in text and 'hf_data["prompt"] = hf_data.pop("text")' in text
    assert {f.rule for f in m.model_unit.after} == {"P26"}
    along = "vllm.transformers_utils.processors.deepseek_ocr" in m.redirects
    assert along == (model == "deepseek_ocr2")
    assert ("from vllm_fl.processors.deepseek_ocr import" in text) == along
