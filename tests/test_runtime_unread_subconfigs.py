"""A config class that builds its sub-configs from other keys and does not read them back (upstream's
Moondream3Config: text_config from config["text"], the checkpoint's own spellings). Its to_dict() holds
text_config / vision_config as dicts, which built again reach PretrainedConfig's leftover kwargs and replace the
built sub-configs ("'dict' object has no attribute 'hidden_size'" on both sides). The tiny config.json leaves them
out, as a released one does, and CHECKPOINT_FIELDS carries the released "config" key, tiny. The worker half runs
in the pinned venv (transformers 4.57.6; skips without MMF_PINNED_VENV)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "flagos_migrate" / "verify"))

from flagos_migrate.verify.config_hints import CHECKPOINT_FIELDS  # noqa: E402

from tests.worker_helpers import run_in_worker  # noqa: E402

UPSTREAM = Path.home() / ".cache" / "mmf" / "src" / "vllm-0.33.0"

SCRIPT = '''
import json, os, sys, tempfile
sys.path.insert(0, sys.argv[1])
from transformers import LlavaConfig, PretrainedConfig
from _runtime_config import _save, _unread_sub_configs


class TextConfig(PretrainedConfig):
    model_type = "mmf_unread_text"

    def __init__(self, dim=2048, n_layers=24, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.hidden_size, self.num_hidden_layers = dim, dim, n_layers


class ComposedConfig(PretrainedConfig):  # upstream's Moondream3Config, reduced
    model_type = "mmf_unread"

    def __init__(self, config=None, **kwargs):
        config = config or {}
        self.text_config = TextConfig(**config.get("text", {}))
        self.config = config
        super().__init__(**kwargs)
        self.hidden_size = self.text_config.hidden_size


out = {"unread": _unread_sub_configs(ComposedConfig, ComposedConfig().to_dict()),
       "llava": _unread_sub_configs(LlavaConfig, LlavaConfig().to_dict())}
work = tempfile.mkdtemp()
cfg = ComposedConfig.from_dict({"config": {"text": {"dim": 64, "n_layers": 2}}})
_save(cfg, work, drop=out["unread"])
saved = json.load(open(os.path.join(work, "config.json")))
again = ComposedConfig.from_dict(saved)
out.update(saved_keys=sorted(k for k in saved if k.endswith("_config")), hidden=again.text_config.hidden_size,
           layers=again.text_config.num_hidden_layers, top=again.hidden_size)
print(json.dumps(out))
'''


def test_a_sub_config_the_class_does_not_read_back_is_left_out_of_config_json():
    out = run_in_worker(SCRIPT)
    assert out["unread"] == ["text_config"] and out["llava"] == []  # LlavaConfig reads its sub-configs back
    assert out["saved_keys"] == []  # and what the class builds from "config" is the tiny one
    assert (out["hidden"], out["layers"], out["top"]) == (64, 2, 64)


def test_moondream3s_released_config_key_is_tiny_and_rotates_what_upstream_rotates():
    text = CHECKPOINT_FIELDS["moondream3"]["config"]["text"]
    head = text["dim"] // text["n_heads"]
    assert text["dim"] <= 128 and text["n_layers"] == 2 and text["moe"]["start_layer"] < text["n_layers"]
    model = UPSTREAM / "vllm" / "model_executor" / "models" / "moondream3.py"
    if not model.is_file():
        pytest.skip("no upstream vLLM 0.33.0 source")
    (rotated,) = {int(n) for n in re.findall(r'"partial_rotary_factor": (\d+) / self\.head_dim', model.read_text())}
    assert 0 < rotated / head <= 1  # get_rope refuses a factor above 1 (the tiny 16-wide heads gave 2.0)
    json.dumps(CHECKPOINT_FIELDS["moondream3"])  # config.json material
