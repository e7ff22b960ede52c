"""P42: a checkpoint whose rope the back-ported get_rope refuses (YaRN with M-RoPE, DeepSeek-V4's rope) migrated
with "0 left for you" and failed only when built. With its config.json given, plan/apply and the validator say so;
each P42 row is built with the back-port on the real vLLM 0.13.0 and seen refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from analysis_helpers import GOOD_PLUGIN, empty_plugin, pinned
from flagos_migrate.analysis.rope_refusals import refused_ropes
from flagos_migrate.catalog.rules import BY_ID
from flagos_migrate.commands.validate import validate

from tests.test_backports import run_in_pinned_venv

UPSTREAM_SRC = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0"))
YARN_MROPE = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768,
              "mrope_section": [8, 12, 12]}
QWEN3 = {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "rope_scaling": YARN_MROPE}
MESSAGE = ("config.json `rope_scaling`: rope_type yarn with `mrope_section`: the back-ported get_rope "
           "(vllm_fl.compat.rope) refuses it when the model is built (upstream's M-RoPE YaRN frequencies depend on "
           "get_rope(mrope_positions_factor=), which vLLM 0.13.0's get_rope lacks, and 0.13.0's MRotaryEmbedding "
           "cannot build YaRN), so this checkpoint does not build on the pinned vLLM")


def _where(config: dict) -> list[str]:
    return [where for where, _, _ in refused_ropes(config)]


def test_the_refused_parameter_sets_where_config_json_holds_them():
    assert _where(QWEN3) == ["rope_scaling"]
    # transformers 4's `type`, a sub-config, transformers 5's per-layer-type rope_parameters
    assert _where({"rope_scaling": {"type": "yarn", "factor": 2.0, "mrope_section": [2, 1, 1]}}) == ["rope_scaling"]
    assert _where({"text_config": {"rope_parameters": YARN_MROPE}}) == ["text_config.rope_parameters"]
    assert _where({"rope_parameters": {"full_attention": YARN_MROPE, "sliding_attention": {"rope_type": "default"}}}) \
        == ["rope_parameters.full_attention"]
    assert _where({"rope_parameters": {"rope_type": "deepseek_yarn", "factor": 4.0, "is_deepseek_v4": True}}) \
        == ["rope_parameters"]


def test_what_the_back_port_builds_is_not_reported():
    assert _where({"rope_scaling": {k: v for k, v in YARN_MROPE.items() if k != "mrope_section"}}) == []
    assert _where({"rope_scaling": {"rope_type": "default", "mrope_section": [8, 12, 12]}}) == []
    assert _where({"rope_parameters": {"rope_type": "deepseek_yarn", "factor": 4.0}}) == []
    assert _where({"rope_parameters": {"rope_type": "deepseek_yarn", "is_deepseek_v4": False}}) == []
    # dual-chunk attention: the back-port's YaRN branch is not taken (the pinned get_rope builds it)
    assert _where(dict(QWEN3, dual_chunk_attention_config={"chunk_size": 8192})) == []
    assert _where({"rope_scaling": ["not", "a", "dict"], "text_config": "x"}) == []


@pytest.mark.slow
@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm").is_dir(), reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
def test_plan_of_qwen3_with_a_yarn_mrope_checkpoint_is_no_longer_zero_left(tmp_path: Path):
    from flagos_migrate.migrate.engine import Migration
    from flagos_migrate.migrate.upstream import Upstream, open_upstream
    from flagos_migrate.plugin.tree import PluginTree

    up = Upstream(open_upstream(str(UPSTREAM_SRC)))
    plugin = PluginTree(empty_plugin(tmp_path / "plugin"))
    m = Migration("qwen3", up, plugin, pinned(), QWEN3).run()
    found = [f for f in m.left() if f.rule == "P42"]
    assert [(f.file, f.severity, f.message) for f in found] == [("vllm_fl/models/qwen3.py", "error", MESSAGE)]
    line = m.model_unit.text.splitlines()[found[0].line - 1]
    assert line == "from vllm_fl.compat.rope import get_rope"
    plain = dict(QWEN3, rope_scaling={k: v for k, v in YARN_MROPE.items() if k != "mrope_section"})
    assert [f for f in Migration("qwen3", up, plugin, pinned(), plain).run().left() if f.rule == "P42"] == []
    assert [f for f in Migration("qwen3", up, plugin, pinned()).run().left() if f.rule == "P42"] == []


def test_the_validator_reports_it_when_the_plugin_holds_the_back_port(tmp_path: Path):
    plugin = tmp_path / "plugin"
    shutil.copytree(GOOD_PLUGIN, plugin)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(QWEN3, indent=1))
    assert [f for f in validate(str(plugin), all_models=True, hf_config=str(config)).findings if f.rule == "P42"] == []
    (plugin / "vllm_fl" / "compat").mkdir(exist_ok=True)
    (plugin / "vllm_fl" / "compat" / "__init__.py").touch()
    (plugin / "vllm_fl" / "compat" / "rope.py").write_text("def get_rope(*a, **k):\n    return None\n")
    found = [f for f in validate(str(plugin), all_models=True, hf_config=str(config)).findings if f.rule == "P42"]
    line = next(i for i, t in enumerate(config.read_text().splitlines(), 1) if '"mrope_section"' in t)
    assert [(f.file, f.line, f.message) for f in found] == [(str(config), line, MESSAGE)]


REFUSED = '''
    import json
    import rope

    for row in json.loads(ROWS):
        params = {"rope_type": row["rope_types"][0], "rope_theta": 10000.0, "factor": 4.0,
                  "original_max_position_embeddings": 64, "mrope_section": [2, 1, 1], "beta_fast": 32, "beta_slow": 1,
                  "mscale": 1.0, "mscale_all_dim": 1.0}
        params[row["with_key"]] = params.get(row["with_key"]) or True
        try:
            rope.get_rope(8, 256, True, params)
            print(row["with_key"], "built")
        except NotImplementedError:
            print(row["with_key"], "refused")
        if row["with_key"] == "mrope_section":  # without it: plain YaRN, which the back-port builds
            del params["mrope_section"]
            print("yarn", type(rope.get_rope(8, 256, True, params)).__name__)
'''


def test_every_row_is_refused_by_the_back_port_on_the_real_pinned_vllm(tmp_path: Path):
    rows = json.dumps(BY_ID["P42"].tables["refused"])
    out = run_in_pinned_venv(tmp_path, REFUSED.replace("json.loads(ROWS)", f"json.loads({rows!r})"))
    assert {k: out.get(k) for k in ("mrope_section", "is_deepseek_v4", "yarn")} == {"mrope_section": "refused", "is_deepseek_v4": "refused", "yarn": "YaRNScalingRotaryEmbedding"}
