"""The fixed audio an encoder-decoder's embed_multimodal is given at the forward level (``_runtime_forward``):
Whisper's list of log-mel features, and what a model module's table entry (``ENCODER_INPUTS``) adds. Cohere ASR
loaded (its NeMo-spelled checkpoint) and failed the forward on "Audio feature lengths must be a tensor." with
Whisper's 80 mel bins against its 32-wide encoder. Pure: the width is read from a config, the entry checked
against upstream's own file."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

VERIFY = Path(__file__).resolve().parents[1] / "scripts" / "flagos_migrate" / "verify"
UPSTREAM_SRC = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0"))


def _forward_module():
    sys.path.insert(0, str(VERIFY))
    import _runtime_forward

    return _runtime_forward


def test_the_feature_width_is_the_entrys_config_path_else_num_mel_bins():
    fwd = _forward_module()
    spec = fwd.ENCODER_INPUTS["cohere_asr"]
    nemo = SimpleNamespace(preprocessor={"features": 32, "sample_rate": 16000}, num_mel_bins=128)
    assert fwd.encoder_feature_width(nemo, spec) == 32  # the entry's path wins over a num_mel_bins beside it
    assert fwd.encoder_feature_width(SimpleNamespace(num_mel_bins=128), {}) == 128  # Whisper
    assert fwd.encoder_feature_width(SimpleNamespace(), {}) == 80
    # the path missing from this config: num_mel_bins, as for a module without an entry
    assert fwd.encoder_feature_width(SimpleNamespace(preprocessor={}, num_mel_bins=64), spec) == 64


def test_each_entry_is_what_upstreams_file_reads():
    """`lengths` is the keyword upstream's _parse_and_validate_audio_input pops and requires as a tensor; `mels` the
    config path its processing info builds the feature extractor from."""
    fwd = _forward_module()
    for module, spec in fwd.ENCODER_INPUTS.items():
        path = UPSTREAM_SRC / "vllm" / "model_executor" / "models" / f"{module}.py"
        if not path.is_file():
            pytest.skip("the upstream vLLM 0.33.0 source is not unpacked")
        text = path.read_text("utf-8")
        parse = next(n for n in ast.walk(ast.parse(text))
                     if isinstance(n, ast.FunctionDef) and n.name == "_parse_and_validate_audio_input")
        body = ast.unparse(parse)
        assert f'kwargs.pop({spec["lengths"]!r}, None)' in body
        assert "must be a tensor" in body
        holder, key = spec["mels"]
        assert f"= hf_config.{holder}\n" in text and f'.get("{key}", ' in text


class _Realtime:
    """A model that needs its ids next to the embeddings (upstream's Voxtral Realtime forward)."""

    requires_raw_input_tokens = True

    def __init__(self):
        self.calls = []

    def __call__(self, input_ids, positions, inputs_embeds, **extra):
        self.calls.append(input_ids)
        assert input_ids is not None
        return inputs_embeds


def _runner(monkeypatch, knows_flag: bool):
    interfaces = SimpleNamespace(**({"requires_raw_input_tokens": lambda model: True} if knows_flag else {}))
    models = SimpleNamespace(interfaces=interfaces)
    for name, mod in (("vllm", SimpleNamespace()), ("vllm.model_executor", SimpleNamespace(models=models)),
                      ("vllm.model_executor.models", models), ("vllm.model_executor.models.interfaces", interfaces)):
        monkeypatch.setitem(sys.modules, name, mod)


def test_the_multimodal_prefill_hands_the_ids_only_where_the_runner_reads_the_flag(monkeypatch):
    """0.13.0's runner calls every multimodal model with input_ids=None (gpu_model_runner.py:2480); upstream's hands a
    model flagged requires_raw_input_tokens its ids (_prepare_mm_inputs). voxtral_realtime failed on an empty
    AssertionError; now the error names the flag, and the upstream side is called as its runner calls it."""
    fwd = _forward_module()
    _runner(monkeypatch, knows_flag=True)
    model, notes = _Realtime(), []
    assert fwd._embeds_forward(model, "ids", "pos", "embeds", {}, notes) == "embeds"
    assert model.calls == ["ids"] and notes and notes[0].startswith("requires_raw_input_tokens: input_ids handed")
    _runner(monkeypatch, knows_flag=False)
    model = _Realtime()
    with pytest.raises(fwd.LevelError, match="the model sets requires_raw_input_tokens, which only upstream's runner"):
        fwd._embeds_forward(model, "ids", "pos", "embeds", {}, [])
    assert model.calls == [None]  # called as the pinned runner calls it
    # an unflagged model is called with None on either runner, its own error unchanged
    model.requires_raw_input_tokens = False
    with pytest.raises(AssertionError):
        fwd._embeds_forward(model, "ids", "pos", "embeds", {}, [])
