"""A sub-config's released field the pinned class holds as its default: 4.57.6's save_pretrained leaves it
out of the tiny config.json, and a reference class that does not declare it then lacks it (transformers 5's
Qwen3VLTextConfig has no tie_word_embeddings; upstream's interns1_pro.py reads text_config.tie_word_embeddings,
which Intern-S1-Pro's own InternS1ProTextConfig holds, False). Host only: the writer is plain JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "flagos_migrate" / "verify"))

from _runtime_config import _carried, _keep_released  # noqa: E402
from flagos_migrate.verify.config_hints import CHECKPOINT_FIELDS  # noqa: E402


def test_a_dropped_released_sub_config_field_is_written_back(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3_vl", "text_config": {"hidden_size": 64}}))
    tiny = {"text_config": {"hidden_size": 64, "tie_word_embeddings": False, "rope_scaling": {"rope_type": "default"}}}
    carried = _carried({"complete": {"checkpoint": CHECKPOINT_FIELDS}}, "InternS1ProForConditionalGeneration",
                       type("C", (), {"model_type": "qwen3_vl"})())
    assert carried["text_config.tie_word_embeddings"] is False
    notes: list[str] = []
    _keep_released(tmp_path, tiny, carried, notes)
    text = json.loads((tmp_path / "config.json").read_text())["text_config"]
    assert text["tie_word_embeddings"] is False  # written back: the reference class reads it from here
    assert text["rope_scaling"] == {"rope_type": "default"}  # the tiny value, wherever save dropped it
    assert text["hidden_size"] == 64 and len(notes) == 1


def test_nothing_is_rewritten_when_the_fields_are_there(tmp_path):
    data = {"text_config": {"tie_word_embeddings": True}}
    (tmp_path / "config.json").write_text(json.dumps(data))
    notes: list[str] = []
    _keep_released(tmp_path, {"text_config": {"tie_word_embeddings": True}},
                   {"text_config.tie_word_embeddings": False, "vision_config.x": 1}, notes)
    assert json.loads((tmp_path / "config.json").read_text()) == data and notes == []


def test_deepseek_vl2s_config_json_holds_its_language_model_as_language_config_only(tmp_path, monkeypatch):
    """Upstream 0.33.0's DeepseekVLV2Config builds text_config from language_config, then passes its leftover
    kwargs to PreTrainedConfig: a text_config key (to_dict writes one) replaced the built config with a dict and
    upstream's ModelConfig refused it, so its class was never built. A released config.json has no such key."""
    import _runtime_config

    monkeypatch.setattr(_runtime_config, "auto_model_type", lambda cls: None)

    class Saved:  # the pinned 0.13.0 class: its model_type is the family's, the instance's the OCR model's
        model_type = "deepseek_vl_v2"

        def __init__(self, model_type):
            self.model_type = model_type

        def save_pretrained(self, path):
            Path(path, "config.json").write_text(json.dumps({
                "model_type": self.model_type, "language_config": {"num_attention_heads": 4},
                "text_config": {"num_attention_heads": 4}, "vision_config": {"width": 32}}))

    for model_type in ("deepseek_ocr", "deepseek_vl_v2"):
        _runtime_config._save(Saved(model_type), tmp_path)
        data = json.loads((tmp_path / "config.json").read_text())
        assert "text_config" not in data and data["language_config"] == {"num_attention_heads": 4}
        assert data["vision_config"] == {"width": 32}
    Saved.model_type = "qwen2_vl"  # another family keeps what it saved
    _runtime_config._save(Saved("qwen2_vl"), tmp_path)
    assert "text_config" in json.loads((tmp_path / "config.json").read_text())


def test_decision_3s_tiny_config_carries_a_decision_config_upstreams_hook_accepts():
    """Upstream's D3ForSequenceClassificationConfig refuses a config without decision_config (released: a
    decision_config.json its arch-config convertor reads). The table's one passes the hook's checks, its codes
    outnumber PretrainedConfig's default 2 labels (upstream's hook makes them the labels; a pinned side without the
    hook keeps 2, which must show), and its token ids are words of the tiny vocabulary."""
    from flagos_migrate.verify.runtime_tiny import VOCAB

    decision = CHECKPOINT_FIELDS["D3ForSequenceClassification"]["decision_config"]
    assert decision["format_version"] == 1 and decision.get("pooling", "last") == "last"
    assert decision.get("attention_mode", "causal") in ("causal", "noncausal_full_attention")
    assert len(decision["codes"]) == len(decision["token_ids"]) > 2
    assert all(0 <= t < VOCAB for t in decision["token_ids"])
