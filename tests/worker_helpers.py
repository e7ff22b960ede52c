"""Run a short script in the pinned venv next to the runtime worker's modules (``verify/`` first on
``sys.path`` as ``sys.argv[1]``), on the CPU platform; its last stdout line is JSON. Skips without
``MMF_PINNED_VENV``."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

VERIFY = Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"
# a one-layer DeepSeek-V3 config for worker scripts on MLA (``work`` is the folder vLLM reads it from);
# eager attention so the Hugging Face layer is the plain reference
TINY_DEEPSEEK_V3 = '''
cfg = DeepseekV3Config(hidden_size=64, num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=1,
                       q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12,
                       vocab_size=128, intermediate_size=64, moe_intermediate_size=16, n_routed_experts=4,
                       num_experts_per_tok=2, n_group=1, topk_group=1, max_position_embeddings=512,
                       architectures=["DeepseekV3ForCausalLM"])
cfg.save_pretrained(work)
cfg._attn_implementation = "eager"
'''


def pinned_python() -> str:
    value = os.environ.get("MMF_PINNED_VENV")
    if not value:
        pytest.skip("MMF_PINNED_VENV (a venv with real vLLM) is not set")
    venv = Path(value)
    return str(venv / "bin" / "python" if venv.is_dir() else venv)


def run_in_worker(code: str, *args: str, timeout: float = 600) -> dict:
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([pinned_python(), "-c", textwrap.dedent(code), str(VERIFY), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
