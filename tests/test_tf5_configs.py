"""Config bridges translated from transformers 5 source (P2): the translation itself, the
round trip of real config.json shapes through transformers 5 and through the bridge on 4.57.6,
and the migration that writes and registers them."""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.tf5_configs import Transformers5, base_text, open_transformers5
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "tf5_configs"
ATTRS = ROOT / "tests" / "tf5_config_attrs.py"
VENV5 = Path(os.environ.get("MMF_UPSTREAM_VENV", Path.home() / ".cache/mmf/venv-vllm033")) / "bin" / "python"
VENV4 = Path(os.environ.get("MMF_PINNED_VENV", Path.home() / ".cache/mmf/venv-vllm013")) / "bin" / "python"

SOURCE = open_transformers5()
needs_tf5 = pytest.mark.skipif(SOURCE is None, reason="no transformers 5 wheel (MMF_TRANSFORMERS5 or ~/.cache/mmf/wheels)")


@pytest.fixture(scope="module")
def tf5() -> Transformers5:
    return Transformers5(SOURCE)


@pytest.fixture(scope="module")
def apis() -> PinnedApis:
    return PinnedApis.load("0.13.0")


def write_bridges(tf5: Transformers5, apis: PinnedApis, root: Path, *classes: str) -> list[str]:
    """The bridges of ``classes`` and every module they need, as a plugin tree under ``root``."""
    cfg = root / "vllm_fl" / "configs"
    cfg.mkdir(parents=True, exist_ok=True)
    (root / "vllm_fl" / "__init__.py").write_text("")
    (cfg / "__init__.py").write_text("")
    (cfg / "tf5_base.py").write_text(base_text())
    todo, done = [tf5.module_of(c) for c in classes], []
    while todo:
        mod = todo.pop(0)
        if mod in done:
            continue
        done.append(mod)
        b = tf5.translate(mod, lambda m, n: apis.resolve(m, n) is not None)
        assert not b.missing, b.missing
        (root / (b.module.replace(".", "/") + ".py")).write_text(b.text)
        todo += b.needs
    return done


@needs_tf5
def test_fields_defaults_and_post_init_come_from_the_parsed_source(tf5, apis):
    origin = tf5.module_of("Qwen3_5TextConfig")
    b = tf5.translate(origin, lambda m, n: apis.resolve(m, n) is not None)
    assert b.classes == {"Qwen3_5TextConfig": "qwen3_5_text", "Qwen3_5VisionConfig": "qwen3_5_vision",
                         "Qwen3_5Config": "qwen3_5"}
    src = {n.name: n for n in tf5.tree(origin).body if isinstance(n, ast.ClassDef)}
    out = {n.name: n for n in ast.parse(b.text).body if isinstance(n, ast.ClassDef)}
    for name, cls in src.items():
        want = {s.target.id: ast.literal_eval(s.value) for s in cls.body
                if isinstance(s, ast.AnnAssign) and s.value is not None}
        got = next(s.value for s in out[name].body if isinstance(s, ast.Assign) and s.targets[0].id == "__v5_fields__")
        assert ast.literal_eval(got) == want
        assert [d for d in out[name].decorator_list] == []  # @strict / @auto_docstring go
        src_post = [ast.dump(f) for f in cls.body if isinstance(f, ast.FunctionDef)]
        assert src_post == [ast.dump(f) for f in out[name].body if isinstance(f, ast.FunctionDef)]
    imports = [n for n in ast.parse(b.text).body if isinstance(n, ast.ImportFrom)]
    assert {n.module for n in imports} == {"__future__", "vllm_fl.configs.tf5_base"}


@needs_tf5
def test_a_sub_config_named_by_model_type_brings_its_module_and_validated_fields_keep_defaults(tf5, apis):
    b = tf5.translate(tf5.module_of("Kimi_K25Config"), lambda m, n: apis.resolve(m, n) is not None)
    assert b.needs == ["transformers.models.deepseek_v3.configuration_deepseek_v3"]
    assert "import vllm_fl.configs.tf5_deepseek_v3" in b.text
    g = tf5.translate(tf5.module_of("Gemma4TextConfig"), lambda m, n: apis.resolve(m, n) is not None)
    assert not g.missing and "interval" not in g.text  # ``interval(min=0.0, max=1.0)(default=0.02)`` -> 0.02


@needs_tf5
def test_a_name_the_pinned_transformers_lacks_makes_the_bridge_impossible(tf5):
    b = tf5.translate(tf5.module_of("Qwen3_5TextConfig"), lambda m, n: False)
    assert b.missing == []  # only the base's names: nothing from the pinned transformers needed
    n = tf5.translate(tf5.module_of("NemotronHConfig"), lambda m, n: False)
    assert n.missing == ["transformers.utils:logging"]
    k = tf5.translate(tf5.module_of("Kimi_K25Config"), lambda m, n: n != "AutoConfig")
    assert k.missing == ["transformers.models.auto:AutoConfig"]


ROUND_TRIPS = [
    ("Qwen3_5Config", "qwen3_5.json"),
    ("Qwen3_5TextConfig", "qwen3_5_legacy_rope.json"),
    ("NemotronHConfig", "nemotron_h.json"),
    ("Kimi_K25Config", "kimi_k25.json"),
    # its __post_init__ calls the validators transformers 5 defines on the base (validate_rope, validate_layer_type)
    ("Cohere2MoeConfig", "cohere2_moe.json"),
    # its __post_init__ reads id2label (a field of transformers 5's base) before the base runs; no labels given:
    # it names its 33 NER labels itself
    ("OpenAIPrivacyFilterConfig", "openai_privacy_filter.json"),
]


def _attrs(python: Path, jobs: list[dict], tmp: Path, path: Path | None = None) -> list[dict]:
    spec = tmp / f"spec-{python.parent.parent.name}.json"
    spec.write_text(json.dumps(jobs))
    cmd = [str(python), str(ATTRS), str(spec)] + ([str(path)] if path else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compare(v5: dict, v4: dict, where: str = "") -> list[str]:
    out = []
    for k, want in v5.items():
        if k == "rope_theta":  # transformers 5 has none: the bridge mirrors rope_parameters (checked below)
            continue
        got = v4.get(k)
        if k == "rope_scaling" and want is None and got == v4.get("rope_parameters"):
            # a class declaring its own rope_scaling field (Cohere2MoeConfig) keeps it None in transformers 5;
            # the bridge aliases it to rope_parameters, which is where the pinned vLLM reads RoPE
            continue
        if isinstance(want, dict) and isinstance(got, dict) and k not in ("rope_parameters", "attribute_map"):
            out += _compare(want, got, f"{where}{k}.")
        elif want != got:
            out.append(f"{where}{k}: transformers 5 {want!r}, bridge {got!r}")
    return out


def _but_the_tied_text_config(bridge: dict, diffs: list[str]) -> list[str]:
    """The one difference the bridges make on purpose: a sub-config's ``tie_word_embeddings`` is the top
    level's, as upstream vLLM's ``VllmConfig.with_hf_config`` sets it for every multimodal model (730b128,
    glmasr); transformers 5 keeps the sub-config's own."""
    top = bridge.get("tie_word_embeddings")
    return [d for d in diffs if not (d.split(":")[0].endswith(".tie_word_embeddings") and d.endswith(f"bridge {top!r}"))]


def _rope_mirrors(values: dict) -> list[str]:
    bad = []
    params = values.get("rope_parameters")
    if isinstance(params, dict) and "rope_theta" in params and "rope_type" in params:
        if values.get("rope_theta") != params["rope_theta"]:
            bad.append(f"rope_theta {values.get('rope_theta')} != rope_parameters {params['rope_theta']}")
    for v in values.values():
        if isinstance(v, dict) and "rope_parameters" in v:
            bad += _rope_mirrors(v)
    return bad


@pytest.mark.slow
@needs_tf5
@pytest.mark.skipif(not (VENV5.exists() and VENV4.exists()), reason="needs the transformers 5 and 4.57.6 venvs")
def test_round_trip_real_config_shapes(tf5, apis, tmp_path):
    bridges = {cls: "vllm_fl.configs.tf5_" + write_bridges(tf5, apis, tmp_path, cls)[0].split(".")[2]
               for cls, _ in ROUND_TRIPS}
    v5 = _attrs(VENV5, [{"target": f"transformers:{cls}", "config": str(FIXTURES / fx)} for cls, fx in ROUND_TRIPS],
                tmp_path)
    v4 = _attrs(VENV4, [{"target": f"{bridges[cls]}:{cls}", "config": str(FIXTURES / fx), "names": want["names"]}
                        for (cls, fx), want in zip(ROUND_TRIPS, v5)], tmp_path, tmp_path)
    for (cls, fixture), want, got in zip(ROUND_TRIPS, v5, v4):
        assert len(want["names"]) > 10
        assert _but_the_tied_text_config(got["values"], _compare(want["values"], got["values"])) == [], (cls, fixture)
        assert _rope_mirrors(got["values"]) == [], (cls, fixture)


def _migrate_gdn_mini(root, apis, init_text: str):
    """The transformers-5 fixture model migrated in memory into an empty plugin tree at root."""
    (root / "vllm_fl" / "models").mkdir(parents=True)
    (root / "vllm_fl" / "__init__.py").write_text(init_text)
    (root / "vllm_fl" / "models" / "__init__.py").write_text("")
    up = Upstream(open_upstream(str(ROOT / "tests" / "fixtures" / "upstream_tf5")))
    return Migration("gdn_mini", up, PluginTree(root), apis).run()


@needs_tf5
def test_migration_writes_registers_and_repoints_the_bridge(tmp_path, apis):
    m = _migrate_gdn_mini(tmp_path / "plugin", apis, "def register_model():\n    pass\n")
    assert m.resolved["model_type"] == "qwen3_5_text"
    assert "from vllm_fl.configs.tf5_qwen3_5 import Qwen3_5TextConfig" in m.model_unit.text
    assert {"vllm_fl.configs.tf5_base", "vllm_fl.configs.tf5_qwen3_5"} <= set(m.units)
    assert ("qwen3_5_text", "Qwen3_5TextConfig", "vllm_fl.configs.tf5_qwen3_5") in m.config_registrations()
    assert [f for f in m.left() if f.is_issue] == []
    assert any(f.rule == "P2" or f.rule == "P5" for f in m.fixed())


@pytest.mark.slow
@needs_tf5
@pytest.mark.skipif(not VENV4.exists(), reason="needs the pinned venv")
def test_migrated_model_builds_its_config_on_the_pinned_transformers(tmp_path, apis):
    root = tmp_path / "plugin"
    m = _migrate_gdn_mini(root, apis, "")
    for unit in m.units.values():
        path = root / unit.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(unit.text)
    code = ("import json,sys; sys.path.insert(0, sys.argv[1]); from vllm_fl.models.gdn_mini import *; "
            "from vllm_fl.configs.tf5_qwen3_5 import Qwen3_5TextConfig as C; "
            "m = GdnMiniForCausalLM(C(num_hidden_layers=8)); "
            "print(json.dumps([m.layer_types, m.rope_parameters, m.is_config]))")
    proc = subprocess.run([str(VENV4), "-c", code, str(root)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    layer_types, rope, is_config = json.loads(proc.stdout.strip().splitlines()[-1])
    assert layer_types == ["linear_attention"] * 3 + ["full_attention"] + ["linear_attention"] * 3 + ["full_attention"]
    assert rope == {"rope_theta": 10000.0, "partial_rotary_factor": 0.25, "rope_type": "default"}
    assert is_config is True


def _migrate_swa_mini(root, apis):
    (root / "vllm_fl" / "models").mkdir(parents=True)
    (root / "vllm_fl" / "__init__.py").write_text("def register_model():\n    pass\n")
    (root / "vllm_fl" / "models" / "__init__.py").write_text("")
    up = Upstream(open_upstream(str(ROOT / "tests" / "fixtures" / "upstream_tf5")))
    return Migration("swa_mini", up, PluginTree(root), apis, all_archs=True).run()


@needs_tf5
def test_an_architecture_whose_model_type_only_transformers_5_has_gets_its_bridge(tmp_path, apis, tf5):
    # upstream's granitemoeshared.py also serves GraniteMoeSWAForCausalLM, whose checkpoints say
    # model_type granitemoe_swa: transformers 5 reads them as GraniteMoeSWAConfig (sliding window,
    # sinks), 4.57.6 cannot read them at all; the file itself imports only GraniteMoeSharedConfig
    assert tf5.arch_model_types["GraniteMoeSWAForCausalLM"] == ["granitemoe_swa"]
    m = _migrate_swa_mini(tmp_path / "plugin", apis)
    assert m.config_registrations() == [
        ("granitemoe_swa", "GraniteMoeSWAConfig", "vllm_fl.configs.tf5_granitemoe_swa")]
    assert {"vllm_fl.configs.tf5_base", "vllm_fl.configs.tf5_granitemoe_swa"} <= set(m.units)
    # the model keeps the class the pinned transformers has (granitemoeshared: no bridge for it)
    assert "from transformers import GraniteMoeSharedConfig" in m.model_unit.text
    assert not any("granitemoeshared" in u for u in m.units if u.startswith("vllm_fl.configs."))


PER_LAYER = '''
import json, sys
sys.path.insert(0, sys.argv[1])
mod, cls = sys.argv[2].split(":")
C = getattr(__import__(mod, fromlist=[cls]), cls)
c = C(num_hidden_layers=6)  # the default overrides: the full-attention layer's head_dim and KV heads
layers = [(lc.head_dim, lc.num_key_value_heads, lc.intermediate_size) for lc in c.per_layer_config]
given = C(num_hidden_layers=6, per_layer_config={"02": {"intermediate_size": 96}})
again = C(**{k: v for k, v in given.to_dict().items() if k in ("num_hidden_layers", "per_layer_config")})
print(json.dumps({"layers": layers, "full": c.per_layer_config["full_attention"].head_dim,
                  "saved": c.to_dict()["per_layer_config"],
                  "again": [lc.intermediate_size for lc in again.per_layer_config]}))
'''


@pytest.mark.slow
@needs_tf5
@pytest.mark.skipif(not (VENV5.exists() and VENV4.exists()), reason="needs the transformers 5 and 4.57.6 venvs")
def test_per_layer_config_reads_as_transformers_5s_heterogeneous_config(tf5, apis, tmp_path):
    # EmbeddingGemma2 (as Gemma 4) keeps its wider full-attention layers in the sparse per_layer_config:
    # upstream reads config.per_layer_config[i].head_dim per layer (the bridge raised KeyError: 0 on a dict)
    module = "vllm_fl.configs.tf5_" + write_bridges(tf5, apis, tmp_path, "EmbeddingGemma2TextConfig")[0].split(".")[2]
    script = tmp_path / "per_layer.py"
    script.write_text(PER_LAYER)
    out = {}
    for side, python, target in (("5", VENV5, "transformers:EmbeddingGemma2TextConfig"),
                                 ("4", VENV4, f"{module}:EmbeddingGemma2TextConfig")):
        proc = subprocess.run([str(python), str(script), str(tmp_path), target], capture_output=True, text=True,
                              timeout=600, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["4"] == out["5"]
    assert out["4"]["layers"][5][0] == 512 and out["4"]["layers"][0][0] == 256 and out["4"]["again"][2] == 96


def test_a_model_type_whose_checkpoints_name_their_own_remote_config_gets_no_registration():
    """P2 remote_config_first: 0.13.0's get_config reads _CONFIG_REGISTRY before AutoConfig, so a bridge registered
    for molmo2 / step3p7 would shadow the checkpoint's own remote-code config, which upstream reads through AutoConfig
    (and its model file is written for): those registrations are dropped, the others (step3p5, upstream's own) kept."""
    from types import SimpleNamespace

    from flagos_migrate.catalog.tables import REMOTE_CONFIG_FIRST

    class Tf5:
        @staticmethod
        def model_type_of(cls):
            return {"Step3p7Config": "step3p7", "Molmo2Config": "molmo2", "Qwen3_5Config": "qwen3_5"}[cls]

    mod = "vllm_fl.configs.tf5_step3p7"
    fake = SimpleNamespace(
        up=SimpleNamespace(config_registry={"step3p5": "Step3p7TextConfig"}),
        bridged={"Step3p7TextConfig": mod, "Step3p7Config": mod, "Molmo2Config": "vllm_fl.configs.tf5_molmo2",
                 "Qwen3_5Config": "vllm_fl.configs.tf5_qwen3_5"},
        units={mod: 1, "vllm_fl.configs.tf5_molmo2": 1, "vllm_fl.configs.tf5_qwen3_5": 1},
        tf5_bridged={"Step3p7Config": mod, "Molmo2Config": "vllm_fl.configs.tf5_molmo2",
                     "Qwen3_5Config": "vllm_fl.configs.tf5_qwen3_5"},
        tf5=Tf5(), key_mapped=None, resolved={"model_type": "molmo2", "ConfigClassName": "Molmo2Config"})
    assert {"molmo2", "step3p7"} <= set(REMOTE_CONFIG_FIRST)
    assert Migration.config_registrations(fake) == [("step3p5", "Step3p7TextConfig", mod),
                                                    ("qwen3_5", "Qwen3_5Config", "vllm_fl.configs.tf5_qwen3_5")]


def test_each_remote_config_first_entry_holds_in_the_sources():
    """Each P2 remote_config_first entry's evidence is in upstream's source / transformers 5's package, and upstream
    registers no config class of its own for the model type (so its get_config takes AutoConfig)."""
    import glob

    from flagos_migrate.catalog.tables import REMOTE_CONFIG_FIRST

    upstream = Path(os.environ.get("MMF_UPSTREAM") or Path.home() / ".cache" / "mmf" / "src" / "vllm-0.33.0")
    site = sorted(glob.glob(str(Path(os.environ.get("MMF_REFERENCE_VENV") or Path.home() / ".cache/mmf/venv-vllm033")
                                / "lib" / "python3*" / "site-packages")))
    if not upstream.is_dir() or not site:
        pytest.skip("needs upstream vLLM 0.33.0's source and the reference venv (transformers 5)")
    roots = {"upstream": upstream, "tf5": Path(site[0])}
    registry = (upstream / "vllm" / "transformers_utils" / "config.py").read_text()
    registry = registry[registry.index("_CONFIG_REGISTRY"):registry.index("_SPECULATIVE_DECODING_CONFIGS")]
    for model_type, entry in REMOTE_CONFIG_FIRST.items():
        assert entry["why"] and entry["evidence"], model_type
        assert f"    {model_type}=" not in registry, model_type
        for root, path, text in entry["evidence"]:
            assert text in (roots[root] / path).read_text(), (model_type, path, text)
