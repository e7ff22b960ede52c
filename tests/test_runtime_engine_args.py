"""verify --run's ENGINE_ARGS (_runtime_env.py): serve options the harness passes for an architecture, the same to
the pinned and the upstream ModelConfig. Unlimited-OCR: upstream's config hook picks a vision-encoder backend the
CPU platform refuses unless the user chose one, so the harness chooses CPU's own (TORCH_SDPA), which that hook
keeps and which is what the pinned side picks unset."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest
from analysis_helpers import PINNED_VENV, UPSTREAM_SRC, VERIFY_DIR

sys.path.insert(0, str(VERIFY_DIR))
import _runtime_env  # noqa: E402 - the worker module, outside the package

needs_sources = pytest.mark.skipif(
    not (UPSTREAM_SRC.is_dir() and (PINNED_VENV / "lib").is_dir()),
    reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC) and the pinned venv (MMF_PINNED_VENV)")


def _workdir(tmp_path: Path, archs) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": archs}))
    return tmp_path


def test_the_entry_of_the_configs_first_architecture_is_passed(tmp_path):
    assert _runtime_env._engine_args(_workdir(tmp_path, ["UnlimitedOCRForCausalLM"])) == {
        "mm_encoder_attn_backend": "TORCH_SDPA"}
    assert _runtime_env._engine_args(_workdir(tmp_path, ["DeepseekOCRForCausalLM"])) == {}
    assert _runtime_env._engine_args(_workdir(tmp_path, [])) == {}
    assert _runtime_env._engine_args(tmp_path / "absent") == {}


def _hook_body(config_py: str, arch: str) -> str:
    tree = ast.parse(config_py)
    table = next(n for n in tree.body if isinstance(n, ast.AnnAssign | ast.Assign)
                 and "MODELS_CONFIG_MAP" in ast.unparse(n.target if isinstance(n, ast.AnnAssign) else n.targets[0]))
    hook = next(v.id for k, v in zip(table.value.keys, table.value.values) if ast.literal_eval(k) == arch)
    return ast.unparse(next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == hook))


@needs_sources
def test_each_entry_is_a_choice_upstreams_hook_keeps_and_the_only_vit_backend_cpu_has():
    pinned_root = next(PINNED_VENV.glob("lib/python3*/site-packages"))
    interface = (UPSTREAM_SRC / "vllm/platforms/interface.py").read_text()
    # the CPU platform defines no vit backends of its own: the base class's list, TORCH_SDPA alone
    assert "get_supported_vit_attn_backends" not in (UPSTREAM_SRC / "vllm/platforms/cpu.py").read_text()
    supported = re.search(r"def get_supported_vit_attn_backends.*?return \[(.*?)\]", interface, re.S).group(1)
    assert [s.strip() for s in supported.split(",") if s.strip()] == ["AttentionBackendEnum.TORCH_SDPA"]
    config_py = (UPSTREAM_SRC / "vllm/model_executor/models/config.py").read_text()
    for arch, args in _runtime_env.ENGINE_ARGS.items():
        assert args == {"mm_encoder_attn_backend": "TORCH_SDPA"}, arch  # the only kind of entry so far
        body = _hook_body(config_py, arch)
        # upstream's hook sets FLASH_ATTN only when the user left it unset (or chose FLASHINFER)
        assert "if mm_config.mm_encoder_attn_backend is None:\n" \
               "                mm_config.mm_encoder_attn_backend = AttentionBackendEnum.FLASH_ATTN" in body, arch
        assert body.count("mm_config.mm_encoder_attn_backend = ") == 2 and "FLASHINFER" in body, arch
        # both ModelConfigs take the option
        for root in (UPSTREAM_SRC, pinned_root):
            assert "mm_encoder_attn_backend: InitVar[" in (root / "vllm/config/model.py").read_text(), root
