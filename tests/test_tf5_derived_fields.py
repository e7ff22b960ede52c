"""Fields transformers 5's config class derives from keys the pinned transformers' class also keeps (the
``derived`` entries of P39's added_config_fields and P28's rope_layouts). modernbert failed construct on
4.57.6's ModernBertConfig (no layer_types / per-layer-type rope_parameters / sliding_window). The rewrite
must give what transformers 5 gives: both classes are built from the same config.json, the pinned one
after the pinned vLLM's patch_rope_parameters, and the rewritten expressions compared with transformers 5's
fields."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from analysis_helpers import PINNED_VENV, analyze, migrate_example, only
from flagos_migrate.catalog.tables import ADDED_CONFIG_FIELDS, ROPE_LAYOUTS

REFERENCE_VENV = Path(os.environ.get("MMF_REFERENCE_VENV", Path.home() / ".cache/mmf/venv-vllm033"))

DERIVED_FIELDS = {cls: {a: e for a, e in fields.items() if e.get("derived")}
                  for cls, fields in ADDED_CONFIG_FIELDS["0.13.0"].items()}
DERIVED_FIELDS = {cls: fields for cls, fields in DERIVED_FIELDS.items() if fields}
DERIVED_ROPE = {stem: e for stem, e in ROPE_LAYOUTS["0.13.0"].items() if e.get("derived")}

# config.json shapes: the class defaults, a published one (ModernBERT-base), and one where every derived
# value differs from the defaults
CONFIGS = [
    {},
    {"num_hidden_layers": 22, "global_attn_every_n_layers": 3, "local_attention": 128,
     "global_rope_theta": 160000.0, "local_rope_theta": 10000.0},
    {"num_hidden_layers": 5, "global_attn_every_n_layers": 2, "local_attention": 64,
     "global_rope_theta": 1000.0, "local_rope_theta": 500.0},
]

MODERNBERT = '''
from transformers import ModernBertConfig


class Attention:
    def __init__(self, config: ModernBertConfig, layer_id: int):
        layer_type = config.layer_types[layer_id]
        rope_parameters = config.rope_parameters[layer_type]
        sliding_window = None
        if layer_type == "sliding_attention":
            sliding_window = config.sliding_window + 1
        self.rope = (rope_parameters, sliding_window)
'''


def test_derived_fields_are_read_with_the_derivation_and_the_rope_read_gets_both_layouts(tmp_path):
    found = only(analyze(MODERNBERT), "P39")
    assert [(f.line, f.data["attr"]) for f in found] == [(7, "layer_types"), (11, "sliding_window")]
    m = migrate_example(tmp_path, MODERNBERT, "modernbert")
    text = m.model_unit.text
    # the derivation runs only when the config lacks the field: transformers 5's ModernBertConfig (a config
    # bridge, colmodernvbert's text config) has layer_types and no global_attn_every_n_layers to derive it from
    layer_types = ('(getattr(config, "layer_types") if hasattr(config, "layer_types") else ["sliding_attention" if '
                   'bool(i % config.global_attn_every_n_layers) else "full_attention" for i in '
                   'range(config.num_hidden_layers)])')
    assert f'layer_type = {layer_types}[layer_id]' in text
    window = '(getattr(config, "sliding_window") if hasattr(config, "sliding_window") else config.local_attention // 2)'
    assert f'sliding_window = {window} + 1' in text
    from types import SimpleNamespace

    tf5 = SimpleNamespace(layer_types=["full_attention", "sliding_attention"], sliding_window=64, num_hidden_layers=2)
    pinned = SimpleNamespace(global_attn_every_n_layers=2, num_hidden_layers=3, local_attention=128)
    assert eval(layer_types, {"config": tf5}) == tf5.layer_types and eval(window, {"config": tf5}) == 64
    assert eval(layer_types, {"config": pinned}) == ["full_attention", "sliding_attention", "full_attention"]
    assert eval(window, {"config": pinned}) == 64
    again = migrate_example(tmp_path / "again", text, "modernbert").model_unit.text
    assert again.count("hasattr(config") == 2  # a fixpoint: the rewritten reads are not rewritten again
    assert textwrap.indent(DERIVED_ROPE["modernbert"]["pinned"], " " * 8) in text
    assert not [f for f in m.left() if f.rule in ("P28", "P39")]
    # the P28 message says where the replacement comes from
    (p28,) = only(m.model_unit.before, "P28")
    assert "ModernBertConfig.convert_rope_params_to_dict" in p28.message


def _run(venv: Path, code: str) -> list:
    out = subprocess.run([str(venv / "bin/python"), "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not ((PINNED_VENV / "bin/python").exists() and (REFERENCE_VENV / "bin/python").exists()),
                    reason="needs the pinned venv (MMF_PINNED_VENV) and the reference venv (MMF_REFERENCE_VENV)")
def test_derived_values_on_the_pinned_class_are_transformers_5s():
    assert DERIVED_FIELDS and DERIVED_ROPE
    classes = sorted(set(DERIVED_FIELDS) | {e["config_class"] for e in DERIVED_ROPE.values()})
    fields = {c: sorted(DERIVED_FIELDS.get(c, {})) for c in classes}
    ropes = {e["config_class"]: e["pinned"] for e in DERIVED_ROPE.values()}
    exprs = {c: {a: e["default"].replace("{obj}", "config") for a, e in DERIVED_FIELDS.get(c, {}).items()}
             for c in classes}
    # transformers 5: the fields themselves, and rope_parameters per layer kind
    reference = _run(REFERENCE_VENV, f"""
import json, transformers
out = []
for cls in {classes!r}:
    for d in {CONFIGS!r}:
        config = getattr(transformers, cls)(**d)
        row = {{a: getattr(config, a) for a in {fields!r}[cls]}}
        if cls in {sorted(ropes)!r}:
            row["rope"] = [config.rope_parameters[t] for t in config.layer_types]
        out.append(row)
print(json.dumps(out))
""")
    # 4.57.6 after the pinned vLLM's patch_rope_parameters (what get_config does), with the rewritten reads
    pinned_side = _run(PINNED_VENV, f"""
import json, transformers
from vllm.transformers_utils.config import patch_rope_parameters
out = []
for cls in {classes!r}:
    for d in {CONFIGS!r}:
        config = getattr(transformers, cls)(**d)
        patch_rope_parameters(config)
        for a in {fields!r}[cls]:
            assert not hasattr(config, a), (cls, a)
        row = {{a: eval(e, {{"config": config}}) for a, e in {exprs!r}[cls].items()}}
        if cls in {ropes!r}:
            kinds = eval({exprs!r}[cls]["layer_types"], {{"config": config}})
            row["rope"] = []
            for layer_type in kinds:
                scope = {{"config": config, "layer_type": layer_type}}
                exec({ropes!r}[cls], scope)
                row["rope"].append(scope["rope_parameters"])
        out.append(row)
print(json.dumps(out))
""")
    assert pinned_side == reference
    # the configs tell the derivations apart (not all layers one kind, thetas differ)
    assert {t["rope_theta"] for t in reference[2]["rope"]} == {1000.0, 500.0}


def test_the_tiny_config_shrinks_modernberts_window_below_the_prompt():
    # ModernBERT's window is local_attention (128 by default, longer than any prompt of the harness): a window
    # that never cuts would leave the sliding layers' derivation untested
    from flagos_migrate.verify.runtime_tiny import tiny_config
    cfg = tiny_config({"model_type": "modernbert", "architectures": ["ModernBertModel"], "hidden_size": 768,
                       "num_attention_heads": 12, "num_hidden_layers": 22, "local_attention": 128,
                       "global_attn_every_n_layers": 3, "vocab_size": 50368})
    assert cfg["local_attention"] == 8 and "sliding_window" not in cfg
