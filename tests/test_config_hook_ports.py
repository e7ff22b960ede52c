"""P25 ported_hooks: upstream hooks that run on the ModelConfig alone (verify_and_update_model_config, which the
pinned vLLM never calls), written by apply as verify_and_update_config bodies on the pinned API.

Each port must do on the pinned config what upstream's hook does on upstream's: both are run here on the same
config (upstream's class body read from its source) and the effects compared, a field the pinned API names
otherwise read under its pinned name (checked against both PoolerConfig sources).
"""

from __future__ import annotations

import ast
import copy
import itertools
import os
import sys
import types
from pathlib import Path

import pytest
from analysis_helpers import PINNED_VENV, UPSTREAM_SRC, apply_and_verify_run, empty_plugin, verified_to_match
from flagos_migrate.analysis.inherited import runs_on_model_config
from flagos_migrate.catalog.tables import (
    CONFIG_HOOKS,
    PINNED_HOOK_DIFFERS,
    PORTED_HOOKS,
    PORTED_HOOKS_MODULE,
    ported_hooks_text,
)

CONFIG_PY = Path("vllm/model_executor/models/config.py")
CONFIG_DEFAULTS_SOURCE = (Path(__file__).resolve().parent.parent
                          / "scripts/flagos_migrate/migrate/backport_sources/config_defaults.py")
# upstream field -> the pinned API's name of it (0.13.0's PoolerConfig has no seq_pooling_type)
RENAMED = {"seq_pooling_type": "pooling_type"}

needs_sources = pytest.mark.skipif(
    not (UPSTREAM_SRC.is_dir() and (PINNED_VENV / "lib").is_dir()),
    reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC) and the pinned venv (MMF_PINNED_VENV)")

GOLDEN_VOYAGE = '''

class VoyageQwen3BidirectionalEmbedModelConfig(VerifyAndUpdateConfig):
    @staticmethod
    def verify_and_update_config(vllm_config) -> None:
        model_config = vllm_config.model_config
        model_config.hf_config.is_causal = False
        model_config.hf_config.embedding_size = model_config.hf_config.num_labels
'''


def test_the_written_module_is_every_port_as_a_pinned_hook_class():
    text = ported_hooks_text()
    assert text.endswith(GOLDEN_VOYAGE)
    assert "\nfrom vllm.model_executor.models.config import VerifyAndUpdateConfig\n" in text
    tree = ast.parse(text)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert [c.name for c in classes] == sorted(PORTED_HOOKS)
    for c in classes:
        (method,) = c.body
        assert method.name == "verify_and_update_config" and [a.arg for a in method.args.args] == ["vllm_config"]
    assert PORTED_HOOKS_MODULE == "vllm_fl.compat.config_hook_ports"


def _classes(text: str) -> dict[str, str]:
    tree = ast.parse(text)
    return {n.name: ast.get_source_segment(text, n) for n in tree.body if isinstance(n, ast.ClassDef)}


class _Logs:
    """A logger stand-in recording what a hook warns (upstream's module logger; the port's init_logger)."""

    def __init__(self):
        self.seen = []

    def warning(self, msg, *args):
        self.seen.append(msg % args)


def _load(source: str, name: str, monkeypatch, logs: _Logs):
    """``name`` out of ``source`` (its base classes defined there first) with stand-ins for the vLLM modules the
    hooks import (types / the base class / the logger)."""
    base = types.ModuleType("vllm.model_executor.models.config")
    base.VerifyAndUpdateConfig = type("VerifyAndUpdateConfig", (), {})
    pooler = types.ModuleType("vllm.config.pooler")
    pooler.SequencePoolingType = str
    logger = types.ModuleType("vllm.logger")
    logger.init_logger = lambda _name: logs
    # the plugin's P45 helper a port may call (jina's): the back-port's own source
    defaults = types.ModuleType("vllm_fl.compat.config_defaults")
    exec(compile(CONFIG_DEFAULTS_SOURCE.read_text(), str(CONFIG_DEFAULTS_SOURCE), "exec"), defaults.__dict__)  # noqa: S102 - the project's own back-port
    for mod, value in {"vllm.model_executor.models.config": base, "vllm.config.pooler": pooler,
                       "vllm.logger": logger, "vllm_fl.compat.config_defaults": defaults}.items():
        monkeypatch.setitem(sys.modules, mod, value)
    ns = {"VerifyAndUpdateConfig": base.VerifyAndUpdateConfig, "logger": logs}
    classes, order, todo = _classes(source), [], [name]
    while todo:  # the class, then the bases ``source`` defines, defined base first
        cls = todo.pop()
        order.insert(0, cls)
        todo += [b.id for b in ast.parse(classes[cls]).body[0].bases if isinstance(b, ast.Name) and b.id in classes]
    for cls in order:
        exec(compile(classes[cls], f"<{cls}>", "exec"), ns)  # noqa: S102 - the project's own catalog / upstream's source
    return ns[name]


def _effects(run, pooler_field: str, hf: dict, use_activation: bool | None, logs: _Logs, cache_dtype: str = "auto"):
    hf_config = types.SimpleNamespace(**hf)
    # use_activation: unset, or the user's --pooler-config choice (both PoolerConfigs have the field)
    pooler = types.SimpleNamespace(**{pooler_field: None, "use_activation": use_activation})
    text = hf.get("text_config", hf_config)  # hf_text_config: the text config when there is one, as both vLLMs pick
    # no hf_overrides; hf_config is no transformers class, so a P45 read keeps the object's value (getattr's)
    model_config = types.SimpleNamespace(hf_config=hf_config, hf_text_config=text, pooler_config=pooler,
                                         hf_overrides={})
    vllm_config = types.SimpleNamespace(model_config=model_config,
                                        cache_config=types.SimpleNamespace(mamba_ssm_cache_dtype=cache_dtype))
    logs.seen.clear()
    try:
        run(vllm_config)
    except Exception as exc:  # noqa: BLE001 - the refusal is an effect too
        return ("raises", type(exc).__name__)
    return (vars(hf_config), vars(text), getattr(pooler, pooler_field), pooler.use_activation,
            vllm_config.cache_config.mamba_ssm_cache_dtype, list(logs.seen))


def _upstream_run(up):
    """Upstream's order: verify_and_update_model_config while the ModelConfig is built, then the class's
    verify_and_update_config (its own or inherited) when the VllmConfig is."""
    def run(vllm_config):
        up.verify_and_update_model_config(vllm_config.model_config)
        if hasattr(up, "verify_and_update_config"):
            up.verify_and_update_config(vllm_config)
    return run


def _decision(**kw):
    return {"format_version": 1, "pooling": "last", "attention_mode": "causal", "codes": ["A", "B", "C"],
            "token_ids": [5, 6, 7], **kw}


CONFIGS = [{"pooling": p, "num_labels": 7} for p in ("avg", "cls", "last", "mean?", None)] + [
    # LlamaNemotronVL's shapes: the pooling read from the language model's config, the tower's patch size
    {"llm_config": types.SimpleNamespace(pooling=p), "vision_config": types.SimpleNamespace(patch_size=14)}
    for p in ("cls", "last", "max")] + [{"llm_config": types.SimpleNamespace(), "pooling": None}] + [
    # Decision 3.0's: its decision_config.json (the attention mode, the codes) and Qwen3.5's SSM dtype, on the
    # config or on a text config apart
    {"decision_config": d, "text_config": types.SimpleNamespace(**t)}
    for d in (_decision(), _decision(attention_mode="noncausal_full_attention"), _decision(format_version=2),
              _decision(pooling="mean"), _decision(attention_mode="sliding"), _decision(token_ids=[5]),
              _decision(codes=[]), "not a dict")
    for t in ({"mamba_ssm_dtype": "float32"}, {})] + [
    {"decision_config": _decision(), "mamba_ssm_dtype": "float16"}, {"pooling": "last"},
    # jina-embeddings-v5's: an encoder checkpoint says is_decoder false, a decoder true or nothing
    {"is_decoder": False}, {"is_decoder": True}]


@needs_sources
def test_each_port_does_on_the_pinned_config_what_upstreams_hook_does(monkeypatch):
    upstream = (UPSTREAM_SRC / CONFIG_PY).read_text()
    pinned = (next(PINNED_VENV.glob("lib/python3*/site-packages")) / CONFIG_PY).read_text()
    ports = _classes(ported_hooks_text())
    differs = {d["hook"] for d in PINNED_HOOK_DIFFERS.values()}
    assert PORTED_HOOKS
    for hook in PORTED_HOOKS:
        # a hook upstream maps and runs on the ModelConfig alone; the pinned vLLM has no class of its name, or
        # (pinned_hook_differs) one the port replaces
        assert hook in set(CONFIG_HOOKS.values()) | differs and runs_on_model_config(upstream, hook)
        assert (f"class {hook}(" in pinned) == (hook in differs)
        logs = _Logs()
        up = _load(upstream, hook, monkeypatch, logs)
        port = _load(ports[hook], hook, monkeypatch, logs)
        seen = set()
        for hf, use_activation, cache_dtype in itertools.product(CONFIGS, (None, True), ("auto", "float16")):
            want = _effects(_upstream_run(up), "seq_pooling_type", copy.deepcopy(hf), use_activation, logs,
                            cache_dtype)  # a copy each: a hook writes into the text config
            got = _effects(port.verify_and_update_config, RENAMED["seq_pooling_type"], copy.deepcopy(hf),
                           use_activation, logs, cache_dtype)
            assert got == want, (hook, hf, use_activation, cache_dtype)
            seen.add(repr(want))
        assert len(seen) > 1 or hook.startswith("Voyage")  # the inputs tell the pooling types apart


def _dataclass_fields(path: Path, cls: str) -> set[str]:
    tree = ast.parse(path.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


@needs_sources
def test_the_renamed_fields_are_the_pinned_poolerconfigs_names_of_upstreams():
    pinned_root = next(PINNED_VENV.glob("lib/python3*/site-packages"))
    up = _dataclass_fields(UPSTREAM_SRC / "vllm/config/pooler.py", "PoolerConfig")
    pin = _dataclass_fields(pinned_root / "vllm/config/pooler.py", "PoolerConfig")
    for upstream_name, pinned_name in RENAMED.items():
        assert upstream_name in up and upstream_name not in pin and pinned_name in pin
    # every pooler field a port writes is one the pinned PoolerConfig has
    for body in PORTED_HOOKS.values():
        for node in ast.walk(ast.parse(body)):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "pooler_config":
                assert node.attr in pin, node.attr


def test_the_voyage_port_makes_the_pinned_model_match_upstream(tmp_path):
    """voyage: match fail (Δ2.03, pooler 1.93: the pinned model ran causal, embedding_size unset) -> match pass
    with the port apply writes and register_model() maps."""
    if not os.environ.get("MMF_PINNED_VENV") or not os.environ.get("MMF_REFERENCE_VENV"):
        pytest.skip("needs MMF_PINNED_VENV (vLLM 0.13.0) and MMF_REFERENCE_VENV (vLLM 0.33.0)")
    if not UPSTREAM_SRC.is_dir():
        pytest.skip(f"no upstream source at {UPSTREAM_SRC}")
    (report,) = apply_and_verify_run(tmp_path, "voyage")
    assert {k: v["status"] for k, v in report["levels"].items()} == dict.fromkeys(
        ("import", "construct", "load", "forward", "match"), "pass"), report
    assert ("config hook: the plugin's VoyageQwen3BidirectionalEmbedModelConfig (register_model() maps "
            "VoyageQwen3BidirectionalEmbedModel to it)") in report["notes"]


def test_a_port_writing_what_the_pinned_serve_defaults_read_stays_a_warning(tmp_path):
    """The pinned engine picks its chunked-prefill / prefix-caching defaults from is_causal and the pooling type
    before any hook runs; upstream's hook runs first. So a port that writes them keeps a P25 warning (voyage is not
    "0 left"), while a port that writes neither (JinaForRanking's embedding_size) leaves nothing."""
    from flagos_migrate.catalog.tables import port_writes_read_early
    from flagos_migrate.migrate.engine import Migration
    from flagos_migrate.migrate.upstream import Upstream, open_upstream
    from flagos_migrate.pinned.api_index import PinnedApis
    from flagos_migrate.plugin.tree import PluginTree

    assert port_writes_read_early("VoyageQwen3BidirectionalEmbedModelConfig") == ["is_causal"]
    assert port_writes_read_early("LlamaBidirectionalConfig") == ["is_causal", "pooling_type"]
    assert port_writes_read_early("JinaForRankingConfig") == []
    assert port_writes_read_early("D3ForSequenceClassificationConfig") == ["is_causal"]  # its attention mode
    assert port_writes_read_early("JinaEmbeddingsV5ModelConfig") == ["is_causal"]  # an encoder checkpoint's
    if not UPSTREAM_SRC.is_dir():
        pytest.skip(f"no upstream source at {UPSTREAM_SRC}")
    up = Upstream(open_upstream(str(UPSTREAM_SRC)))
    m = Migration("voyage", up, PluginTree(empty_plugin(tmp_path / "a")), PinnedApis.load("0.13.0")).run()
    left = [f for f in m.model_unit.after if f.rule == "P25"]
    assert [(f.severity, "`is_causal`" in f.message, "--no-enable-chunked-prefill" in (f.fix or "")) for f in left] \
        == [("warning", True, True)], left
    m = Migration("jina", up, PluginTree(empty_plugin(tmp_path / "b")), PinnedApis.load("0.13.0"),
                  archs=["JinaForRanking"]).run()
    assert not [f for f in m.model_unit.after if f.rule == "P25" and "JinaForRanking" in f.message]


JINA_V5 = "JinaEmbeddingsV5ModelConfig"


def test_the_jina_port_reads_is_decoder_through_p45s_row_for_jina(monkeypatch):
    """The catalog holds upstream's body; the written class reads is_decoder as P45 rewrites jina.py's read, with the
    classes of P45's tf5_default_reads row for jina, read from the row (one list, two readers)."""
    from flagos_migrate.catalog import tables

    assert tables.PORTED_HOOK_TF5_READS == {JINA_V5: "jina"}
    assert 'getattr(model_config.hf_config, "is_decoder", True)' in PORTED_HOOKS[JINA_V5]
    assert "transformers." not in PORTED_HOOKS[JINA_V5]  # no class list of its own
    row = tables.TF5_DEFAULT_READS["0.13.0"]["jina"]["vllm_config.model_config.hf_config"]
    assert "is_decoder" in row["attrs"]

    def method(text):
        (cls,) = [n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == JINA_V5]
        return cls.body[0]

    written = method(ported_hooks_text())
    assert ast.unparse(written.body[0]) == "from vllm_fl.compat.config_defaults import tf5_base_attr"  # here alone
    (call,) = [n for n in ast.walk(written) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
               and n.func.id in ("tf5_base_attr", "getattr")]
    assert call.func.id == "tf5_base_attr" and ast.unparse(call.args[0]) == "model_config"
    assert [ast.literal_eval(a) for a in call.args[1:]] == ["is_decoder", True, tuple(row["classes"])]
    # the row changes, the port follows
    monkeypatch.setitem(row, "classes", ["x.A", "y.B"])
    assert "tf5_base_attr(model_config, 'is_decoder', True, ('x.A', 'y.B'))" in ported_hooks_text()
    monkeypatch.undo()
    # a pin without the row keeps upstream's getattr; every other port is written as the catalog has it either way
    assert 'if getattr(model_config.hf_config, "is_decoder", True):' in _classes(ported_hooks_text("0.20.2"))[JINA_V5]
    assert "tf5_base_attr" not in ported_hooks_text("0.20.2")
    plain = [n for n in PORTED_HOOKS if n != JINA_V5]
    assert [_classes(ported_hooks_text())[n] for n in plain] == [_classes(ported_hooks_text("0.20.2"))[n] for n in plain]


def test_a_hook_naming_a_module_whose_rows_it_does_not_read_is_refused():
    from flagos_migrate.catalog.tables import _tf5_reads_rewritten

    with pytest.raises(ValueError, match="reads none of its P45 rows"):
        _tf5_reads_rewritten(JINA_V5, "vllm_config.model_config.hf_config.is_causal = False", "0.13.0")
    # another attribute, an object that is no hf_config: not the row's
    body = 'if getattr(model_config.hf_config, "is_causal", True) or getattr(model_config, "is_decoder", True):\n    pass'
    with pytest.raises(ValueError, match="reads none"):
        _tf5_reads_rewritten(JINA_V5, body, "0.13.0")
    assert _tf5_reads_rewritten("LlamaBidirectionalConfig", body, "0.13.0") == body  # no entry: as written


class _Qwen3Config:
    """Stands for the pinned transformers' Qwen3Config (the row's class path); 4.57.6 sets is_decoder False on it."""

    def __init__(self, **kw):
        self.is_decoder = False
        self.__dict__.update(kw)


_Qwen3Config.__module__ = "transformers.models.qwen3.configuration_qwen3"
_Qwen3Config.__qualname__ = "Qwen3Config"


@pytest.mark.parametrize(("config_json", "overrides", "causal_set"), [
    ({}, {}, False),  # -small: config.json has no is_decoder -> upstream reads True, leaves the decoder causal
    ({"is_decoder": True}, {}, False),
    ({"is_decoder": False}, {}, True),  # a checkpoint saying encoder: both make it bidirectional
    ({}, {"is_decoder": False}, True),  # a flat hf_overrides entry, which upstream's get_config applies too
])
def test_the_jina_port_on_the_pinned_qwen3_config_does_what_upstream_does_on_transformers_5(
        monkeypatch, config_json, overrides, causal_set):
    port = _load(_classes(ported_hooks_text())[JINA_V5], JINA_V5, monkeypatch, _Logs())
    defaults = sys.modules["vllm_fl.compat.config_defaults"]
    monkeypatch.setattr(defaults, "_config_json", lambda _mc: config_json)  # what the pinned parser re-reads
    pinned = _Qwen3Config(**{**config_json, **overrides})  # 4.57.6's object: is_decoder always there
    vllm_config = types.SimpleNamespace(model_config=types.SimpleNamespace(hf_config=pinned, hf_overrides=overrides))
    port.verify_and_update_config(vllm_config)
    # upstream's hook on transformers 5's Qwen3Config, which has is_decoder only where config.json / overrides set it
    tf5 = types.SimpleNamespace(**config_json, **overrides)
    upstream = _load((UPSTREAM_SRC / CONFIG_PY).read_text(), JINA_V5, monkeypatch, _Logs()) \
        if UPSTREAM_SRC.is_dir() else None
    if upstream is not None:
        upstream.verify_and_update_model_config(types.SimpleNamespace(hf_config=tf5))
        assert vars(tf5).get("is_causal", "unset") == (False if causal_set else "unset")
    assert vars(pinned).get("is_causal", "unset") == (False if causal_set else "unset")


def test_the_jina_v5_port_keeps_the_qwen3_decoder_causal_and_matches_upstream(tmp_path):
    """jina JinaEmbeddingsV5Model (Qwen3Config, no is_decoder in config.json): registered with the port, the pinned
    hook reads upstream's True and leaves the decoder causal (a plain getattr would read 4.57.6's False and make the
    pinned Qwen3 bidirectional): match pass, |dlogit| 0 and pooler 0 vs upstream vLLM 0.33.0."""
    report = verified_to_match(tmp_path, "jina", "--arch", "JinaEmbeddingsV5Model")
    assert ("config hook: the plugin's JinaEmbeddingsV5ModelConfig (register_model() maps JinaEmbeddingsV5Model to "
            "it)") in report["notes"]
