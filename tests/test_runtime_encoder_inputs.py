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
