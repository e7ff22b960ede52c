"""migrate_model.py resolve: placeholders from the upstream registry and config modules, ambiguity reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.migrate.upstream import Upstream, check_model_name, open_upstream, resolve

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_mini"
SCRIPT = ROOT / "scripts" / "migrate_model.py"


@pytest.fixture(scope="module")
def up() -> Upstream:
    return Upstream(open_upstream(str(UPSTREAM)))


def test_registry_and_config_classes_are_read(up):
    assert up.model_registry["MiniLMHeadModel"][:2] == ("vllm.model_executor.models.mini", "MiniForCausalLM")
    assert up.config_registry == {"mini": "MiniConfig"}
    assert up.find_config_class("MiniConfig").model_type == "mini"


def test_resolve_fills_placeholders(up):
    r = resolve(up, "mini")
    assert r["model_type"] == "mini" and r["ConfigClassName"] == "MiniConfig"
    assert r["config_module"] == "vllm.transformers_utils.configs.mini"
    assert r["MODEL_DISPLAY_NAME"] == "Mini-1"
    assert r["architectures"] == ["MiniForCausalLM", "MiniLMHeadModel", "MiniVLForConditionalGeneration"]
    assert r["upstream_version"] == "0.33.0"
    # two model classes map to this file: reported, not guessed
    assert r["ModelClassName"] is None
    assert r["ambiguous"]["ModelClassName"] == ["MiniForCausalLM", "MiniVLForConditionalGeneration"]


def test_hf_config_settles_the_ambiguity(up):
    r = resolve(up, "mini", {"model_type": "mini", "architectures": ["MiniLMHeadModel"]})
    assert r["ModelClassName"] == "MiniForCausalLM" and not r["ambiguous"]


def test_two_config_classes_without_model_type_are_ambiguous(up):
    r = resolve(up, "twin")
    assert r["ConfigClassName"] is None
    assert r["ambiguous"]["ConfigClassName"] == ["TwinAConfig", "TwinBConfig"]
    assert r["model_type"] is None and any("--hf-config" in n for n in r["notes"])


def test_unknown_model_suggests_close_names(up):
    with pytest.raises(UsageError) as exc:
        resolve(up, "minj")
    assert "mini" in exc.value.hint


@pytest.mark.parametrize("bad", ["Qwen3", "qwen-3", "3qwen", "", "qwen__3", "qwen_", "../x"])
def test_model_name_must_be_snake_case(bad):
    with pytest.raises(UsageError):
        check_model_name(bad)


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_cli_resolve_json_and_exit_codes(tmp_path):
    p = run("resolve", "plain", "--upstream", str(UPSTREAM), "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["ModelClassName"] == "PlainForCausalLM" and data["architectures"] == ["PlainForCausalLM"]
    p = run("resolve", "mini", "--upstream", str(UPSTREAM), "--json")
    assert p.returncode == 1 and json.loads(p.stdout)["ambiguous"]


def test_cli_resolve_prints_text_without_json_and_says_how_to_answer():
    p = run("resolve", "mini", "--upstream", str(UPSTREAM))
    assert p.returncode == 1 and not p.stdout.lstrip().startswith("{")
    assert "ambiguous ModelClassName: MiniForCausalLM, MiniVLForConditionalGeneration" in p.stdout
    assert "--arch NAME" in p.stdout and "--all-archs" in p.stdout
    p = run("resolve", "mini", "--upstream", str(UPSTREAM), "--arch", "MiniVLForConditionalGeneration")
    assert p.returncode == 0, p.stdout
    assert "ModelClassName   MiniVLForConditionalGeneration" in p.stdout
    assert "  MiniVLForConditionalGeneration -> MiniVLForConditionalGeneration" in p.stdout
    assert "not chosen: MiniForCausalLM, MiniLMHeadModel" in p.stdout


def test_arch_answers_the_peer_question(up):
    # a class name picks every architecture it implements
    r = resolve(up, "mini", archs=["MiniForCausalLM"])
    assert r["ModelClassName"] == "MiniForCausalLM" and not r["ambiguous"]
    assert r["architectures"] == ["MiniForCausalLM", "MiniLMHeadModel"]
    r = resolve(up, "mini", all_archs=True)
    assert r["ModelClassName"] == "MiniForCausalLM" and not r["ambiguous"]
    assert r["architectures"] == ["MiniForCausalLM", "MiniLMHeadModel", "MiniVLForConditionalGeneration"]
    # peers with a config each: the chosen class names its config, so that question is answered too
    r = resolve(up, "twin", archs=["TwinBForCausalLM"])
    assert (r["ModelClassName"], r["ConfigClassName"], r["ambiguous"]) == ("TwinBForCausalLM", "TwinBConfig", {})
    with pytest.raises(UsageError) as exc:
        resolve(up, "twin", archs=["TwinCForCausalLM"])
    assert "TwinAForCausalLM, TwinBForCausalLM" in exc.value.hint


def test_cli_missing_upstream_says_how_to_get_it(tmp_path):
    p = run("resolve", "mini", "--upstream", str(tmp_path / "nowhere"))
    assert p.returncode == 2
    assert "error: source not found" in p.stderr
    assert "git clone" in p.stderr and "pip download vllm" in p.stderr and "--fetch" in p.stderr
    assert "Traceback" not in p.stderr


def test_cli_bad_hf_config(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    p = run("resolve", "mini", "--upstream", str(UPSTREAM), "--hf-config", str(bad))
    assert p.returncode == 2 and "error: cannot read --hf-config" in p.stderr


def _fake_pip(tmp_path, wheel_src: Path | None) -> str:
    """An executable standing in for ``python -m pip download``: copies a wheel into ``-d DIR``."""
    script = tmp_path / "fakepython"
    copy = f'cp "{wheel_src}" "$dest/"' if wheel_src else 'echo "ERROR: No matching distribution found for vllm" >&2; exit 1'
    script.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 0 ]; do if [ "$1" = "-d" ]; then dest="$2"; fi; shift; done\n'
        f"{copy}\n"
    )
    script.chmod(0o755)
    return str(script)


def test_fetch_downloads_a_wheel_and_opens_it(tmp_path, monkeypatch):
    import zipfile

    from flagos_migrate.migrate import upstream as upstream_mod

    wheel = tmp_path / "vllm-9.9.9-cp38-abi3-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for f in UPSTREAM.rglob("*.py"):
            zf.write(f, f.relative_to(UPSTREAM).as_posix())
    cache = tmp_path / "cache"
    got = upstream_mod.fetch_latest_wheel(cache, python=_fake_pip(tmp_path, wheel))
    assert got.parent == cache and got.name == wheel.name
    monkeypatch.setattr(upstream_mod, "fetch_latest_wheel", lambda: got)
    up = Upstream(upstream_mod.open_upstream(str(tmp_path / "missing"), fetch=True))
    assert up.version == "9.9.9" and resolve(up, "plain")["ModelClassName"] == "PlainForCausalLM"


def test_fetch_failure_is_a_clear_error(tmp_path):
    from flagos_migrate.migrate import upstream as upstream_mod

    with pytest.raises(UsageError) as exc:
        upstream_mod.fetch_latest_wheel(tmp_path / "cache", python=_fake_pip(tmp_path, None))
    assert "No matching distribution" in exc.value.message and "pip download" in exc.value.hint


def test_a_file_that_never_names_its_config_takes_the_one_registered_under_its_name(tmp_path):
    # upstream's funaudiochat.py reads hf_config untyped; FunAudioChatConfig is registered as "funaudiochat":
    # without it the plugin registers no config and the pinned vLLM cannot read the checkpoint's config.json
    import shutil

    shutil.copytree(UPSTREAM, tmp_path / "up")
    models = tmp_path / "up" / "vllm" / "model_executor" / "models"
    text = (models / "mini.py").read_text()
    (models / "mini.py").write_text("\n".join(line for line in text.splitlines() if "MiniConfig" not in line and "PreTrainedConfig" not in line))
    r = resolve(Upstream(open_upstream(str(tmp_path / "up"))), "mini", all_archs=True)
    assert (r["ConfigClassName"], r["config_module"]) == ("MiniConfig", "vllm.transformers_utils.configs.mini")
    (models / "mini2.py").write_text((models / "mini.py").read_text())  # no config registered as "mini2"
    assert resolve(Upstream(open_upstream(str(tmp_path / "up"))), "mini2", all_archs=True)["ConfigClassName"] is None
