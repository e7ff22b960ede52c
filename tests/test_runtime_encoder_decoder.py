"""Encoder-decoder models in the runtime harness (Whisper).

The decoder of an encoder-decoder attends to its encoder's states, which vLLM's runner computes from the
audio (``embed_multimodal``) and hands the forward as ``encoder_outputs``; without them both versions' cross
attention reads a None key (``'NoneType' object has no attribute 'reshape'``, the forward level's old failure).
The harness now feeds fixed mel features through the encoder on both sides, and its reference attention lets
a cross-attention query see every encoder state (non-causal, keys longer than queries).
"""

from __future__ import annotations

from analysis_helpers import verified_to_match
from flagos_migrate.verify.runtime_tiny import LAYERS, tiny_config


def test_the_tiny_config_cuts_an_encoder_decoders_own_layer_counts():
    # transformers 5's WhisperConfig reads num_hidden_layers as encoder_layers and 4.57.6's does not: cutting only
    # num_hidden_layers built 2 encoder layers upstream and 4 on the pinned side (load: no 'model.encoder.layers.2')
    tiny = tiny_config({"d_model": 1280, "num_hidden_layers": 32, "encoder_layers": 32, "decoder_layers": 32,
                        "encoder_attention_heads": 20, "decoder_attention_heads": 20, "vocab_size": 51866})
    assert (tiny["num_hidden_layers"], tiny["encoder_layers"], tiny["decoder_layers"]) == (LAYERS, LAYERS, LAYERS)


def test_whisper_decodes_against_its_encoder_and_matches_upstream(tmp_path):
    report = verified_to_match(tmp_path, "whisper")
    assert any(n.startswith("encoder-decoder: fixed audio") and "16 encoder states" in n for n in report["notes"]), \
        report["notes"]
