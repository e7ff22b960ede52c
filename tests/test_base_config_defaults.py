"""P45: a `getattr(<config>, "X", <default>)` / `hasattr(<config>, "X")` of an attribute the pinned
PretrainedConfig sets on every config and transformers 5's does not. Upstream's jina reads
`getattr(hf_config, "is_decoder", True)`: True on transformers 5 (the Qwen3 decoder), 4.57.6's False on the
pinned vLLM (the Llama encoder; verify --run failed load on 'no k_norm in LlamaModel' with no finding).
Goldens of the detector, negatives, the real file, and the table recomputed from both transformers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from analysis_helpers import PINNED_VENV, UPSTREAM_SRC, analyze, migrate_example, only, run_script_json
from flagos_migrate.catalog.tables import BASE_CONFIG_DEFAULTS

REFERENCE_VENV = Path(os.environ.get("MMF_REFERENCE_VENV", Path.home() / ".cache/mmf/venv-vllm033"))

SNIPPET = '''
from torch import nn


class Model(nn.Module):
    def __init__(self, *, vllm_config, config):
        super().__init__()
        self.is_decoder = getattr(vllm_config.model_config.hf_config, "is_decoder", True)
        self.tied = getattr(config, "tie_word_embeddings", False)
        self.cross = hasattr(config.text_config, "add_cross_attention")
        self.k = getattr(config, "top_k", 50 if self.is_decoder else 1)
        # the pinned default either way, not a config, not in the table, or no default: no finding
        self.a = getattr(config, "is_decoder", False)
        self.b = getattr(config, "tie_word_embeddings", True)
        self.c = getattr(self, "is_decoder", True)
        self.d = getattr(config, "num_hidden_layers", 2)
        self.e = getattr(config, "is_decoder")
        self.f = getattr(config, "bos_token_id", None)
        self.g = getattr(config, "top_k", 50.0)
'''


def test_defaults_that_differ_from_the_pinned_ones_are_findings():
    found = only(analyze(SNIPPET), "P45")
    assert [(f.line, f.data["attr"], f.data["pinned_default"], f.data["upstream_default"]) for f in found] == [
        (8, "is_decoder", "False", "True"),
        (9, "tie_word_embeddings", "True", "False"),
        (10, "add_cross_attention", "False", None),
        (11, "top_k", "50", "50 if self.is_decoder else 1"),
        (19, "top_k", "50", "50.0"),
    ]
    assert found[0].message == (
        "`getattr(vllm_config.model_config.hf_config, 'is_decoder', True)`: the pinned transformers' PretrainedConfig "
        "sets `is_decoder` = False on every config and transformers 5's does not: where neither the config class nor "
        "the checkpoint's config.json sets it, upstream reads its default True and the pinned vLLM reads False")
    assert "always true on the pinned vLLM" in found[2].message
    assert {f.severity for f in found} == {"error"}


def test_the_migration_leaves_the_read_and_the_finding(tmp_path):
    m = migrate_example(tmp_path, SNIPPET, "getattr_defaults")
    assert 'getattr(vllm_config.model_config.hf_config, "is_decoder", True)' in m.model_unit.text
    assert [f.data["attr"] for f in m.left() if f.rule == "P45"] == [
        "is_decoder", "tie_word_embeddings", "add_cross_attention", "top_k", "top_k"]


@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm/model_executor/models/jina.py").is_file(),
                    reason="needs upstream's source (MMF_UPSTREAM_SRC)")
def test_upstream_jina_dispatch_is_found():
    text = (UPSTREAM_SRC / "vllm/model_executor/models/jina.py").read_text()
    found = only(analyze(text, "vllm_fl.models.jina"), "P45")
    assert [(f.data["attr"], f.data["upstream_default"]) for f in found] == [("is_decoder", "True")]
    assert text.splitlines()[found[0].line - 1].strip().startswith("is_decoder = getattr(")


DECLARED = '''
from torch import nn


class Model(nn.Module):
    def __init__(self, *, vllm_config):
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.tied = getattr(config, "tie_word_embeddings", False)
        self.decoder_tied = getattr(config.decoder, "tie_word_embeddings", False)
        self.cross = getattr(config.decoder, "add_cross_attention", True)
        self.top = getattr(config, "add_cross_attention", True)
'''


def test_an_attribute_the_models_config_class_declares_is_not_a_finding():
    # nemotron_parse's NemotronParseConfig declares tie_word_embeddings, its decoder class add_cross_attention
    # (not tie_word_embeddings): the same reads in a module the table does not name are all findings
    named = only(analyze(DECLARED, "vllm_fl.models.nemotron_parse"), "P45")
    assert [(f.line, ast_obj(f)) for f in named] == [(10, "config.decoder.tie_word_embeddings"),
                                                     (12, "config.add_cross_attention")]
    other = only(analyze(DECLARED, "vllm_fl.models.demo"), "P45")
    assert [f.line for f in other] == [9, 10, 11, 12]


def ast_obj(f) -> str:
    return f.message.split("`")[1].replace("getattr(", "").split(", '")[0] + "." + f.data["attr"]


def test_every_declared_entry_is_a_read_of_the_upstream_file():
    # an entry names an object the upstream model file really reads a base attribute from (no stale entries)
    import ast

    from flagos_migrate.catalog.tables import DECLARED_BY_CONFIG_CLASS
    for stem, objects in DECLARED_BY_CONFIG_CLASS["0.13.0"].items():
        path = UPSTREAM_SRC / f"vllm/model_executor/models/{stem}.py"
        if not path.is_file():
            pytest.skip("needs upstream's source (MMF_UPSTREAM_SRC)")
        reads = {(ast.unparse(n.args[0]), n.args[1].value) for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("getattr", "hasattr")
                 and len(n.args) >= 2 and isinstance(n.args[1], ast.Constant)}
        for obj, entry in objects.items():
            assert entry["classes"] and entry["source"]
            assert set(entry["declares"]) <= set(BASE_CONFIG_DEFAULTS["0.13.0"])
            assert any((obj, a) in reads for a in BASE_CONFIG_DEFAULTS["0.13.0"]), (stem, obj)


@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm/model_executor/models/sarvam.py").is_file(),
                    reason="needs upstream's source (MMF_UPSTREAM_SRC)")
def test_upstream_files_whose_config_class_declares_the_attribute():
    def p45(stem):
        text = (UPSTREAM_SRC / f"vllm/model_executor/models/{stem}.py").read_text()
        return [text.splitlines()[f.line - 1].strip() for f in only(analyze(text, f"vllm_fl.models.{stem}"), "P45")]
    for stem in ("bailing_moe", "param2moe", "sarvam"):
        assert p45(stem) == [], stem
    # the decoder's class leaves tie_word_embeddings to the base: 4.57.6's True, upstream's False
    assert p45("nemotron_parse") == ['or getattr(config.decoder, "tie_word_embeddings", False)']
    # Parse 3.5's config class is not in the table (no source shows it): all three reads stay
    assert len(p45("nemotron_parse3_5")) == 3


PROBE = '''
import json, sys
from transformers import PretrainedConfig
c = PretrainedConfig()
names = set(vars(c)) | {k for k in dir(type(c)) if not k.startswith("_")}
out = {}
for k in sorted(n for n in names if not n.startswith("_")):
    try:
        v = getattr(c, k)
    except Exception:
        continue
    if not callable(v):
        out[k] = repr(v)
print(json.dumps(out))
'''


@pytest.mark.skipif(not ((PINNED_VENV / "bin/python").is_file() and (REFERENCE_VENV / "bin/python").is_file()),
                    reason="needs the pinned venv (MMF_PINNED_VENV) and the reference venv (MMF_REFERENCE_VENV)")
def test_the_table_is_what_the_pinned_base_config_sets_and_transformers_5s_does_not():
    pinned = run_script_json(PINNED_VENV / "bin/python", PROBE)
    tf5 = run_script_json(REFERENCE_VENV / "bin/python", PROBE)
    assert BASE_CONFIG_DEFAULTS["0.13.0"] == {k: v for k, v in pinned.items() if k not in tf5}
    assert BASE_CONFIG_DEFAULTS["0.13.0"]["is_decoder"] == "False"


# -- tf5_default_reads: the read apply makes where the table names the config classes --------------------

JINA = '''
from torch import nn


class Model(nn.Module):
    def __new__(cls, *, vllm_config, prefix=""):
        is_decoder = getattr(vllm_config.model_config.hf_config, "is_decoder", True)
        if not is_decoder:
            return None
        return super().__new__(cls)

    def other(self, vllm_config):
        if getattr(vllm_config.model_config.hf_config, "is_decoder", True):
            return 1
'''

QWEN3 = "transformers.models.qwen3.configuration_qwen3.Qwen3Config"


def test_a_read_of_the_table_becomes_tf5_base_attr(tmp_path):
    m = migrate_example(tmp_path, JINA, "jina")
    text = m.model_unit.text
    assert "from vllm_fl.compat.config_defaults import tf5_base_attr\n" in text
    assert (f"        is_decoder = tf5_base_attr(vllm_config.model_config, 'is_decoder', True, ('{QWEN3}',))\n"
            "        if not is_decoder:\n") in text
    # a read inside a compound statement is not rewritten: it stays a finding
    assert '        if getattr(vllm_config.model_config.hf_config, "is_decoder", True):\n' in text
    assert [f.line for f in m.left() if f.rule == "P45"] == [14]  # the written file: one import more
    assert "vllm_fl.compat.config_defaults" in m.units  # the helper comes along
    # the same file under another name: no table entry, the read and its finding stay
    other = migrate_example(tmp_path / "o", JINA, "notjina")
    assert "tf5_base_attr" not in other.model_unit.text
    assert [f.line for f in other.left() if f.rule == "P45"] == [7, 13]


TF5_WHEEL = Path.home() / ".cache/mmf/wheels/transformers-5.20.2-py3-none-any.whl"


@pytest.mark.skipif(not TF5_WHEEL.is_file(), reason="needs the transformers 5 wheel (~/.cache/mmf/wheels)")
def test_every_listed_class_declares_none_of_its_attributes_in_transformers_5():
    import ast
    import zipfile

    from flagos_migrate.catalog.tables import TF5_DEFAULT_READS
    with zipfile.ZipFile(TF5_WHEEL) as whl:
        base = whl.read("transformers/configuration_utils.py").decode()
        rows = [(stem, obj, e) for stem, objs in TF5_DEFAULT_READS["0.13.0"].items() for obj, e in objs.items()]
        assert rows
        for stem, obj, entry in rows:
            assert obj.endswith(".hf_config") and entry["classes"] and entry["source"], (stem, obj)
            assert set(entry["attrs"]) <= set(BASE_CONFIG_DEFAULTS["0.13.0"]), (stem, obj)
            for attr in entry["attrs"]:
                assert attr not in base  # transformers 5's PreTrainedConfig sets no such attribute
            for path in entry["classes"]:
                module, cls = path.rsplit(".", 1)
                text = whl.read(module.replace(".", "/") + ".py").decode()
                node = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == cls)
                assert [ast.unparse(b) for b in node.bases] == ["PreTrainedConfig"], path
                for attr in entry["attrs"]:
                    assert attr not in text, (path, attr)


HELPER_PROBE = r'''
import json, sys, tempfile, os, types, importlib.util
cases = json.loads(sys.argv[2])  # argv[1]: the harness's folder (run_script_json)
side = sys.argv[3]
from transformers import AutoConfig
if side == "pinned":
    spec = importlib.util.spec_from_file_location("cd", sys.argv[4])
    cd = importlib.util.module_from_spec(spec); spec.loader.exec_module(cd)
out = []
for case in cases:
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(case["config"], f)
    config = AutoConfig.from_pretrained(d)
    overrides = case["overrides"]
    fn = None
    if overrides == "function":
        def fn(c):
            return c
        overrides = fn
    elif overrides:
        config.update(overrides)  # get_config's flat hf_overrides on both stacks
    if side == "reference":  # upstream: getattr(hf_config, "is_decoder", True) on transformers 5
        out.append(getattr(config, "is_decoder", True))
        continue
    mc = types.SimpleNamespace(hf_config=config, hf_overrides=overrides, model=d, hf_config_path=None,
                               revision=None, code_revision=None, config_format="auto")
    out.append([getattr(config, "is_decoder", True),
                cd.tf5_base_attr(mc, "is_decoder", True, (type(config).__module__ + "." + type(config).__qualname__
                                                          if case["listed"] else "x.Y",))])
print(json.dumps(out))
'''

QWEN3_JSON = {"model_type": "qwen3", "architectures": ["JinaEmbeddingsV5Model"], "hidden_size": 64,
              "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 1, "intermediate_size": 128,
              "vocab_size": 256, "head_dim": 16}
HELPER_CASES = [
    {"config": QWEN3_JSON, "overrides": {}, "listed": True},  # -small: no key, upstream reads True
    {"config": {**QWEN3_JSON, "is_decoder": False}, "overrides": {}, "listed": True},  # the key written: its value
    {"config": {**QWEN3_JSON, "is_decoder": True}, "overrides": {}, "listed": True},
    {"config": QWEN3_JSON, "overrides": {"is_decoder": False}, "listed": True},  # a flat override: its value
    {"config": QWEN3_JSON, "overrides": "function", "listed": True},  # unknown: the pinned value
    {"config": QWEN3_JSON, "overrides": {}, "listed": False},  # a class not listed: the pinned value
]


@pytest.mark.skipif(not ((PINNED_VENV / "bin/python").is_file() and (REFERENCE_VENV / "bin/python").is_file()),
                    reason="needs the pinned venv (MMF_PINNED_VENV) and the reference venv (MMF_REFERENCE_VENV)")
def test_tf5_base_attr_reads_on_the_pinned_stack_what_upstream_reads_on_transformers_5():
    import json

    from flagos_migrate.migrate.backports import CONFIG_DEFAULTS
    source = Path(__file__).resolve().parent.parent / "scripts/flagos_migrate/migrate/backport_sources"
    helper = str(source / CONFIG_DEFAULTS.source)
    cases = json.dumps(HELPER_CASES)
    upstream = run_script_json(REFERENCE_VENV / "bin/python", HELPER_PROBE, cases, "reference")
    pinned = run_script_json(PINNED_VENV / "bin/python", HELPER_PROBE, cases, "pinned", helper)
    assert upstream == [True, False, True, False, True, True]
    assert [p for p, _ in pinned] == [False, False, True, False, False, False]  # the read before the rewrite
    helper_reads = [h for _, h in pinned]
    assert helper_reads[:4] == upstream[:4]  # the listed class, the key's presence known: upstream's value
    assert helper_reads[4:] == [False, False]  # not known: the pinned value (and a warning)
