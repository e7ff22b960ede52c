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
