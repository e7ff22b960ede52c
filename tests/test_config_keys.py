"""Config key drift: config.json keys written by transformers 5 that the pinned 4.57.6 class does not take.

The static half judges real config.json shapes against the pinned transformers index; the CLI half
runs ``resolve --hf-config``; the pinned half builds the real 4.57.6 classes from the original and
the mapped config.json (skips without $MMF_PINNED_VENV).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from flagos_migrate.analysis import config_keys as ck
from flagos_migrate.migrate.tf5_configs import open_transformers5
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.verify.import_probe import python_of

from tests.test_migrate_resolve import UPSTREAM, run

# a Qwen3-MoE config.json as transformers 5 writes it (64 experts, the class default is 128)
QWEN3_MOE_TF5 = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 2048,
                 "num_local_experts": 64, "num_experts_per_tok": 8, "transformers_version": "5.0.0",
                 "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}, "dtype": "bfloat16"}
QWEN3_MOE_TF5_ALIASES = {"num_experts": "num_local_experts"}  # transformers 5's Qwen3MoeConfig.attribute_map
# Gemma 3 with per-layer-type RoPE (transformers 5) and linear scaling on the global layers
GEMMA3_TF5 = {"model_type": "gemma3_text", "hidden_size": 64,
              "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                                  "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}


@pytest.fixture(scope="module")
def apis():
    return PinnedApis.load("0.13.0")


def test_transformers5_keys_of_a_class_4_57_6_has_are_reported_and_mapped(apis):
    known = ck.pinned_keys(apis, "Qwen3MoeConfig")
    drift = {d.key: d for d in ck.key_drift(QWEN3_MOE_TF5, known, QWEN3_MOE_TF5_ALIASES)}
    assert set(drift) == {"num_local_experts", "rope_parameters"}
    assert drift["num_local_experts"].maps_to == ("num_experts",)
    assert drift["rope_parameters"].maps_to == ("rope_theta", "rope_scaling")
    mapped = ck.mapped_config(QWEN3_MOE_TF5, list(drift.values()))
    assert mapped["num_experts"] == 64 and mapped["rope_theta"] == 1e6
    assert "num_local_experts" not in mapped and "rope_parameters" not in mapped and "rope_scaling" not in mapped


def test_a_4_57_6_config_has_no_drift_and_unknown_keys_are_listed_without_a_mapping(apis):
    known = ck.pinned_keys(apis, "Qwen3MoeConfig")
    v4 = {"model_type": "qwen3_moe", "num_experts": 64, "rope_theta": 1e6, "rope_scaling": None,
          "torch_dtype": "bfloat16", "transformers_version": "4.57.6", "architectures": ["Qwen3MoeForCausalLM"]}
    assert ck.key_drift(v4, known, QWEN3_MOE_TF5_ALIASES) == []
    [d] = ck.key_drift({**v4, "made_up_key": 1}, known, QWEN3_MOE_TF5_ALIASES)
    assert d.key == "made_up_key" and d.maps_to == ()
    assert ck.mapped_config({**v4, "made_up_key": 1}, [d])["made_up_key"] == 1


def test_per_layer_type_rope_parameters_map_to_gemma3s_global_and_local_keys(apis):
    known = ck.pinned_keys(apis, "Gemma3TextConfig")
    [d] = ck.key_drift(GEMMA3_TF5, known, {})
    assert d.maps_to == ("rope_theta", "rope_scaling", "rope_local_base_freq")
    mapped = ck.mapped_config(GEMMA3_TF5, [d])
    assert mapped["rope_theta"] == 1e6 and mapped["rope_local_base_freq"] == 10000.0
    assert mapped["rope_scaling"] == {"rope_type": "linear", "factor": 8.0}


def test_a_class_the_pinned_transformers_lacks_is_not_judged(apis):
    # a transformers 5 class gets a translated bridge that takes its own keys
    assert ck.report(apis, "Qwen3_5Config", {"rope_parameters": {}}) is None


def test_cli_resolve_reports_the_drift(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"architectures": ["MiniForCausalLM"], "model_type": "qwen3_moe",
                               "num_local_experts": 4, "rope_parameters": {"rope_theta": 10000.0}}))
    if open_transformers5() is None:
        pytest.skip("no transformers 5 wheel to name the class of model_type qwen3_moe")
    p = run("resolve", "mini", "--upstream", str(UPSTREAM), "--hf-config", str(cfg), "--json")
    drift = json.loads(p.stdout)["config_key_drift"]
    assert drift["config_class"] == "Qwen3MoeConfig"
    assert {d["key"]: d["maps_to"] for d in drift["keys"]} == {"num_local_experts": ["num_experts"],
                                                               "rope_parameters": ["rope_theta", "rope_scaling"]}
    assert drift["mapped"]["num_experts"] == 4
    p = run("resolve", "mini", "--upstream", str(UPSTREAM), "--hf-config", str(cfg))
    assert "num_local_experts -> num_experts" in p.stdout


PINNED = '''
    import json, sys
    from transformers import Gemma3TextConfig, Qwen3MoeConfig
    cases = json.loads(sys.argv[1])
    orig, mapped = Qwen3MoeConfig(**cases["qwen_orig"]), Qwen3MoeConfig(**cases["qwen_mapped"])
    print("silent_default", orig.num_experts == 128)
    print("mapped_experts", mapped.num_experts == 64 and mapped.rope_theta == 1e6 and mapped.rope_scaling is None)
    g = Gemma3TextConfig(**cases["gemma_mapped"])
    print("gemma", g.rope_theta == 1e6 and g.rope_local_base_freq == 10000.0
          and g.rope_scaling == {"rope_type": "linear", "factor": 8.0})
'''


@pytest.mark.slow
def test_the_mapped_config_builds_what_the_checkpoint_says_on_transformers_4_57_6(apis, tmp_path: Path):
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    qd = ck.key_drift(QWEN3_MOE_TF5, ck.pinned_keys(apis, "Qwen3MoeConfig"), QWEN3_MOE_TF5_ALIASES)
    gd = ck.key_drift(GEMMA3_TF5, ck.pinned_keys(apis, "Gemma3TextConfig"), {})
    cases = {"qwen_orig": QWEN3_MOE_TF5, "qwen_mapped": ck.mapped_config(QWEN3_MOE_TF5, qd),
             "gemma_mapped": ck.mapped_config(GEMMA3_TF5, gd)}
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(PINNED))
    proc = subprocess.run([python_of(venv), str(script), json.dumps(cases)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    for case in ("silent_default", "mapped_experts", "gemma"):
        assert lines[case] == "True", case


# --- P33: the key-mapping config class apply writes, and the validator's --hf-config -------------

def _apply_plain_with(tmp_path: Path, hf: dict) -> tuple[Path, Path]:
    from tests.test_migrate_apply import make_plugin

    plugin = make_plugin(tmp_path)
    cfg = tmp_path / "ckpt" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps(hf, indent=2))
    p = run("apply", "plain", "--upstream", str(UPSTREAM), "--plugin", str(plugin), "--hf-config", str(cfg))
    assert p.returncode in (0, 1), p.stderr
    return plugin, cfg


VALIDATE = Path(__file__).resolve().parent.parent / "scripts" / "validate_migration.py"


def validate_json(*args) -> dict:
    import sys

    p = subprocess.run([sys.executable, str(VALIDATE), *args, "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout)


def test_apply_writes_a_key_mapping_class_and_the_validator_sees_it_settled(tmp_path):
    if open_transformers5() is None:
        pytest.skip("no transformers 5 wheel to name the class of model_type qwen3_moe")
    hf = {**QWEN3_MOE_TF5, "architectures": ["PlainForCausalLM"], "made_up_key": 1}
    bare = tmp_path / "bare"
    bare.mkdir()
    from tests.test_migrate_apply import make_plugin

    # before apply: the validator reports each key, an error where the pinned class would use a default
    empty = make_plugin(bare)
    (bare / "config.json").write_text(json.dumps(hf, indent=2))
    r = validate_json(str(empty), "--all", "--hf-config", str(bare / "config.json"))
    p33 = {f["data"]["key"]: f for f in r["issues"] + r["warnings"] if f["rule"] == "P33"}
    assert set(p33) == {"num_local_experts", "rope_parameters", "made_up_key"}
    assert p33["num_local_experts"]["severity"] == "error" and p33["made_up_key"]["severity"] == "warning"
    assert p33["num_local_experts"]["line"] == json.dumps(hf, indent=2).splitlines().index(
        '  "num_local_experts": 64,') + 1

    plugin, cfg = _apply_plain_with(tmp_path, hf)
    keys = plugin / "vllm_fl" / "configs" / "keys_qwen3_moe.py"
    text = keys.read_text()
    assert "class Qwen3MoeConfig(_Pinned):" in text and "from transformers import Qwen3MoeConfig as _Pinned" in text
    assert "__v5_keys__ = {'num_local_experts': ('num_experts',), 'rope_parameters': ('rope_theta', 'rope_scaling')}" in text
    assert (plugin / "vllm_fl" / "configs" / "tf5_keymap.py").read_text() == (
        Path(ck.__file__).resolve().parent.parent / "migrate" / "bridge_sources" / "tf5_keymap.py").read_text()
    init = (plugin / "vllm_fl" / "__init__.py").read_text()
    assert '_CONFIG_REGISTRY["qwen3_moe"] = Qwen3MoeConfig' in init
    # after apply: the mapped keys are settled by the registered class; the unknown key is still reported
    r = validate_json(str(plugin), "--all", "--hf-config", str(cfg))
    assert {f["data"]["key"] for f in r["issues"] + r["warnings"] if f["rule"] == "P33"} == {"made_up_key"}


REGISTERED = '''
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from vllm.transformers_utils.config import get_config
    before = get_config(sys.argv[2], trust_remote_code=False)  # 0.13.0 on its own: the silent default
    import vllm_fl
    vllm_fl.register_model()
    cfg = get_config(sys.argv[2], trust_remote_code=False)
    print(json.dumps({"before": before.num_experts, "class": type(cfg).__module__, "experts": cfg.num_experts,
                      "theta": cfg.rope_theta}))
'''


@pytest.mark.slow
def test_the_plugin_builds_the_checkpoints_expert_count_on_the_real_pinned_vllm(tmp_path):
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    if open_transformers5() is None:
        pytest.skip("no transformers 5 wheel to name the class of model_type qwen3_moe")
    hf = {**QWEN3_MOE_TF5, "architectures": ["PlainForCausalLM"]}
    plugin, cfg = _apply_plain_with(tmp_path, hf)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(REGISTERED))
    proc = subprocess.run([python_of(venv), str(script), str(plugin), str(cfg.parent)], capture_output=True,
                          text=True, timeout=1800, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"before": 128, "class": "vllm_fl.configs.keys_qwen3_moe", "experts": 64, "theta": 1000000.0}
