"""A transformers 5 config bridge serializes as transformers 5 does: ``save_pretrained`` on 4.57.6
writes a config.json (verify --run writes the tiny config that way) without the rope-validation
bookkeeping set that transformers 5 never serializes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.test_tf5_configs import SOURCE, write_bridges

VENV4 = Path(os.environ.get("MMF_PINNED_VENV", Path.home() / ".cache/mmf/venv-vllm013")) / "bin" / "python"

CODE = '''
import json, sys, tempfile
sys.path.insert(0, sys.argv[1])
from vllm_fl.configs.tf5_qwen3_5_moe import Qwen3_5MoeConfig
cfg = Qwen3_5MoeConfig(text_config={"partial_rotary_factor": 0.25, "num_hidden_layers": 2})
assert "partial_rotary_factor" in cfg.text_config.ignore_keys_at_rope_validation  # kept on the object
out = tempfile.mkdtemp()
cfg.save_pretrained(out)
print(json.dumps(json.load(open(out + "/config.json"))))
'''


@pytest.mark.skipif(SOURCE is None or not VENV4.exists(), reason="needs a transformers 5 wheel and the pinned venv")
def test_bridge_with_partial_rotary_saves_as_json(tmp_path):
    from flagos_migrate.migrate.tf5_configs import Transformers5
    from flagos_migrate.pinned.api_index import PinnedApis

    write_bridges(Transformers5(SOURCE), PinnedApis.load("0.13.0"), tmp_path, "Qwen3_5MoeConfig")
    proc = subprocess.run([str(VENV4), "-c", CODE, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "ignore_keys_at_rope_validation" not in saved
    assert "ignore_keys_at_rope_validation" not in saved["text_config"]
    assert saved["text_config"]["rope_parameters"]["partial_rotary_factor"] == 0.25


UNSET_SUB = '''
import json, sys
sys.path.insert(0, sys.argv[1])
from vllm_fl.configs.tf5_embedding_gemma2 import EmbeddingGemma2Config
cfg = EmbeddingGemma2Config()  # vision_config and audio_config are optional and left None
assert cfg.vision_config is None and cfg.text_config is not None
text = repr(cfg)  # vLLM logs the config: 4.57.6's to_diff_dict diffed the None sub-config and failed
print(json.dumps(cfg.to_diff_dict()))
'''


@pytest.mark.skipif(SOURCE is None or not VENV4.exists(), reason="needs a transformers 5 wheel and the pinned venv")
def test_bridge_with_an_unset_optional_sub_config_serializes(tmp_path):
    from flagos_migrate.migrate.tf5_configs import Transformers5
    from flagos_migrate.pinned.api_index import PinnedApis

    write_bridges(Transformers5(SOURCE), PinnedApis.load("0.13.0"), tmp_path, "EmbeddingGemma2Config")
    proc = subprocess.run([str(VENV4), "-c", UNSET_SUB, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    diff = json.loads(proc.stdout.strip().splitlines()[-1])
    # written as transformers 5 writes it: the unset sub-configs as null, the set one diffed
    assert diff["vision_config"] is None and diff["audio_config"] is None
    assert isinstance(diff["text_config"], dict)
