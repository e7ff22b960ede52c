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


PER_LAYER_ROPE = '''
import json, sys
sys.path.insert(0, sys.argv[1])
from vllm.transformers_utils.config import patch_rope_parameters
from vllm_fl.configs.tf5_mimo_v2_flash import MiMoV2FlashConfig
# MiMo-V2-Flash's config.json: flat rope_theta / partial_rotary_factor (upstream's mimo_v2.py reads them), which
# transformers 5 keeps next to its per-layer-type rope_parameters
cfg = MiMoV2FlashConfig(rope_theta=5000000.0, swa_rope_theta=10000.0, partial_rotary_factor=0.334)
patch_rope_parameters(cfg)  # what 0.13.0's ModelConfig runs: it wrote the flat keys next to the layer types
print(json.dumps({"rope": cfg.rope_parameters, "theta": cfg.rope_theta, "saved": json.loads(cfg.to_json_string())["rope_parameters"]}))
'''


@pytest.mark.skipif(SOURCE is None or not VENV4.exists(), reason="needs a transformers 5 wheel and the pinned venv")
def test_a_per_layer_type_rope_takes_the_pinned_vllms_flat_keys_into_each_layer_type(tmp_path):
    """mimo_v2 with its released rope fields failed ModelConfig on the pinned vLLM: "rope_parameters should have a
    'rope_type' key" (patch_rope_parameters had added rope_theta beside full_attention/sliding_attention)."""
    from flagos_migrate.migrate.tf5_configs import Transformers5
    from flagos_migrate.pinned.api_index import PinnedApis

    write_bridges(Transformers5(SOURCE), PinnedApis.load("0.13.0"), tmp_path, "MiMoV2FlashConfig")
    proc = subprocess.run([str(VENV4), "-c", PER_LAYER_ROPE, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["rope"]) == set(out["saved"]) == {"full_attention", "sliding_attention"}
    # each layer type keeps its own theta (transformers 5's setdefault), the flat one stays for upstream's read
    assert out["rope"]["full_attention"]["rope_theta"] == 5000000.0
    assert out["rope"]["sliding_attention"]["rope_theta"] == 10000.0 and out["theta"] == 5000000.0
    assert out["rope"]["sliding_attention"]["rope_type"] == "default"


TIED_TEXT = '''
import json, sys
sys.path.insert(0, sys.argv[1])
from vllm_fl.configs.tf5_qwen3_vl import Qwen3VLConfig
print(json.dumps([Qwen3VLConfig(text_config={"num_hidden_layers": 2}, tie_word_embeddings=t).get_text_config().tie_word_embeddings
                  for t in (False, True)]))
'''


@pytest.mark.skipif(SOURCE is None or not VENV4.exists(), reason="needs a transformers 5 wheel and the pinned venv")
def test_bridge_text_config_takes_the_top_levels_tie_word_embeddings(tmp_path):
    """cosmos3 failed load (32768 checkpoint values not loaded): transformers 5's Qwen3VLTextConfig has no
    tie_word_embeddings, so the bridge's text config took 4.57.6's default True and the pinned Qwen3 language
    model tied the lm_head the checkpoint holds apart; upstream vLLM copies the top level's value there."""
    from flagos_migrate.migrate.tf5_configs import Transformers5
    from flagos_migrate.pinned.api_index import PinnedApis

    write_bridges(Transformers5(SOURCE), PinnedApis.load("0.13.0"), tmp_path, "Qwen3VLConfig")
    proc = subprocess.run([str(VENV4), "-c", TIED_TEXT, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, True]


TIED_OWN_FIELD = '''
import json, sys
sys.path.insert(0, sys.argv[1])
from vllm_fl.configs.tf5_glmasr import GlmAsrConfig
print(json.dumps([GlmAsrConfig(tie_word_embeddings=t).get_text_config().tie_word_embeddings for t in (False, True)]))
'''


@pytest.mark.skipif(SOURCE is None or not VENV4.exists(), reason="needs a transformers 5 wheel and the pinned venv")
def test_the_top_levels_tie_word_embeddings_wins_over_the_text_config_classes_own(tmp_path):
    """glmasr failed load (language_model.lm_head.weight not loaded): its LlamaConfig text config has a
    tie_word_embeddings field of its own (False), GlmAsrConfig's top level says True, and upstream vLLM copies
    the top level's into the text config of every multimodal model whatever the text config class has."""
    from flagos_migrate.migrate.tf5_configs import Transformers5
    from flagos_migrate.pinned.api_index import PinnedApis

    write_bridges(Transformers5(SOURCE), PinnedApis.load("0.13.0"), tmp_path, "GlmAsrConfig")
    proc = subprocess.run([str(VENV4), "-c", TIED_OWN_FIELD, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, True]
