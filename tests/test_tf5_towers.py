"""P41's fix: `AutoModel.from_config(config.vision_config)` of a config only the plugin's transformers 5 bridge has.
The model class transformers 5's AutoModel mapping builds for that sub-config is vendored at apply time from the
transformers 5 wheel (a slice of its modeling_*.py, imports re-pointed, 5.x framework names 4.57.6 lacks from the
plugin's compat module) and registered with AutoModel for the bridged config; the model file imports it. The
runtime half builds Gemma 4's vision and audio towers on transformers 4.57.6 from the vendored module and on
transformers 5 from its own, with the same weights, and compares what vLLM calls (skips without
$MMF_PINNED_VENV and the 0.33.0 reference venv).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from analysis_helpers import empty_plugin
from flagos_migrate.migrate.engine import Migration
from flagos_migrate.migrate.tf5_configs import open_transformers5
from flagos_migrate.migrate.tf5_modules import TF5_MODELING_COMPAT, _without_foreign_isinstance
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree
from flagos_migrate.verify.import_probe import python_of

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_mini"
needs_tf5 = pytest.mark.skipif(open_transformers5() is None,
                               reason="no transformers 5 wheel (MMF_TRANSFORMERS5 or ~/.cache/mmf/wheels)")
VENDORED = "vllm_fl.processors.tf5_modeling_gemma4"

MODEL = '''\
"""A model that builds transformers 5 towers by their configs (fixture, as gemma4_mm does)."""

from torch import nn
from transformers import AutoModel
from transformers.models.gemma4 import Gemma4Config


class TowersForConditionalGeneration(nn.Module):
    def __init__(self, config: Gemma4Config) -> None:
        super().__init__()
        self.vision_tower = AutoModel.from_config(config=config.vision_config)
        self.audio_tower = AutoModel.from_config(config=config.audio_config)
'''


@pytest.fixture(scope="module")
def migration(tmp_path_factory) -> Migration:
    tmp = tmp_path_factory.mktemp("tf5towers")
    up = tmp / "upstream"
    shutil.copytree(UPSTREAM, up)
    (up / "vllm" / "model_executor" / "models" / "towers.py").write_text(MODEL)
    plugin = empty_plugin(tmp / "plugin")
    return Migration("towers", Upstream(open_upstream(str(up))), PluginTree(plugin), PinnedApis.load("0.13.0")).run()


@needs_tf5
def test_the_towers_are_vendored_registered_and_imported(migration):
    model = migration.model_unit.text
    assert f"from {VENDORED} import Gemma4VisionModel" in model
    assert f"from {VENDORED} import Gemma4AudioModel" in model
    assert "AutoModel.from_config(config=config.vision_config)" in model  # the call stays; the import registers
    assert not [f for f in migration.model_unit.after if f.rule == "P41"]
    text = migration.units[VENDORED].text
    tree = ast.parse(text)
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert {"Gemma4VisionModel", "Gemma4AudioModel", "Gemma4VisionEncoder", "Gemma4AudioLayer"} <= classes
    # the text model is not brought along: only _init_weights' isinstance branches named it
    assert not {c for c in classes if c.startswith("Gemma4Text")} and "Gemma4TextRouter" not in text
    assert "AutoModel.register(Gemma4VisionConfig, Gemma4VisionModel, exist_ok=True)" in text
    assert "AutoModel.register(Gemma4AudioConfig, Gemma4AudioModel, exist_ok=True)" in text
    imports = [(n.module, a.name) for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names]
    assert (TF5_MODELING_COMPAT, "create_bidirectional_mask") in imports
    assert (TF5_MODELING_COMPAT, "ALL_ATTENTION_FUNCTIONS") in imports
    assert ("vllm_fl.processors", "tf5_initialization") in imports  # `from transformers import initialization as init`
    assert ("vllm_fl.configs.tf5_gemma4", "Gemma4VisionConfig") in imports
    for src, name in imports:
        if src.startswith("transformers"):
            assert migration.apis.resolve(src, name) is not None, (src, name)
        elif src.startswith("vllm_fl."):
            assert src in migration.units or f"{src}.{name}" in migration.units, (src, name)
    # plan's summary lists the compat module (our own, no upstream origin) beside the vendored slice
    closure = migration.summary()["closure"]
    assert f"{TF5_MODELING_COMPAT} <- model-migrate-flagos" in closure


@needs_tf5
def test_a_sub_config_declared_by_model_type_finds_its_tower(tmp_path):
    # EmbeddingGemma 2 declares `vision_config: PreTrainedConfig | dict` and its class only in sub_configs_defaults
    # (SubConfigSpec(config_class=AutoConfig, model_type="gemma4_vision")): the same Gemma 4 tower
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    (up / "vllm" / "model_executor" / "models" / "towers.py").write_text(MODEL.replace(
        "transformers.models.gemma4 import Gemma4Config", "transformers.models.embedding_gemma2 import EmbeddingGemma2Config"
    ).replace("config: Gemma4Config", "config: EmbeddingGemma2Config"))
    m = Migration("towers", Upstream(open_upstream(str(up))), PluginTree(empty_plugin(tmp_path / "plugin")),
                  PinnedApis.load("0.13.0")).run()
    assert f"from {VENDORED} import Gemma4VisionModel" in m.model_unit.text
    assert f"from {VENDORED} import Gemma4AudioModel" in m.model_unit.text
    assert not [f for f in m.model_unit.after if f.rule == "P41"]
    # negative: a config argument that is no sub-config attribute (`config=vision_config`) keeps the finding
    (up / "vllm" / "model_executor" / "models" / "towers.py").write_text(MODEL.replace(
        "AutoModel.from_config(config=config.vision_config)", "AutoModel.from_config(config=config)"))
    m = Migration("towers", Upstream(open_upstream(str(up))), PluginTree(empty_plugin(tmp_path / "plugin2")),
                  PinnedApis.load("0.13.0")).run()
    assert len([f for f in m.model_unit.after if f.rule == "P41"]) == 2 and VENDORED not in m.model_unit.text


@needs_tf5
def test_a_tower_an_earlier_apply_vendored_stays_registered(tmp_path):
    """Models applied one after another into one plugin: a later model needing only the vision tower regenerates the
    module with the audio tower an earlier model imports, and its registration (read off the held module's
    `AutoModel.register` statements); a registered name transformers 5's module does not define is not kept."""
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    (up / "vllm" / "model_executor" / "models" / "towers.py").write_text(
        MODEL.replace("        self.audio_tower = AutoModel.from_config(config=config.audio_config)\n", ""))
    plugin = empty_plugin(tmp_path / "plugin")
    held = Path(plugin) / "vllm_fl" / "processors"
    held.mkdir(parents=True, exist_ok=True)
    (held / "__init__.py").write_text("")
    (held / "tf5_modeling_gemma4.py").write_text(
        "AutoModel.register(Gemma4AudioConfig, Gemma4AudioModel, exist_ok=True)\n"
        "AutoModel.register(Gemma4VisionConfig, NotInTransformers5, exist_ok=True)\n")
    m = Migration("towers", Upstream(open_upstream(str(up))), PluginTree(plugin), PinnedApis.load("0.13.0")).run()
    text = m.units[VENDORED].text
    assert "class Gemma4AudioModel(" in text and "class Gemma4VisionModel(" in text
    assert "AutoModel.register(Gemma4AudioConfig, Gemma4AudioModel, exist_ok=True)" in text
    assert "AutoModel.register(Gemma4VisionConfig, Gemma4VisionModel, exist_ok=True)" in text
    assert "NotInTransformers5" not in text
    assert f"from {VENDORED} import Gemma4VisionModel" in m.model_unit.text and "Gemma4AudioModel" not in m.model_unit.text


def test_isinstance_branches_on_classes_outside_the_slice_are_dropped():
    source = textwrap.dedent('''
        class A:
            pass


        class B:
            pass


        class Unused:
            pass


        class Base:
            def init(self, module):
                if isinstance(module, A):
                    x = 1
                elif isinstance(module, Unused):
                    x = 2
                elif isinstance(module, B) and module.flag:
                    x = 3


        class Model(Base):
            part = A
    ''')
    out = _without_foreign_isinstance(source, "m", ["Model"])
    assert "isinstance(module, Unused)" not in out and "isinstance(module, A)" in out
    # B is needed only by its isinstance test: dropped too; A is needed by Model's body: kept
    assert "isinstance(module, B)" not in out
    # a class the slice needs for another reason keeps its branch
    out = _without_foreign_isinstance(source.replace("part = A", "part = (A, B)"), "m", ["Model"])
    assert "isinstance(module, B) and module.flag" in out and "isinstance(module, Unused)" not in out


PINNED = '''
    import sys
    import torch
    root, side, weights, out = sys.argv[1:5]
    torch.manual_seed(0)
    if side == "plugin":
        sys.path.insert(0, root)
        import vllm_fl.processors.tf5_modeling_gemma4  # registers the towers with AutoModel
        from vllm_fl.configs.tf5_gemma4 import Gemma4AudioConfig, Gemma4VisionConfig
    else:
        from transformers.models.gemma4.configuration_gemma4 import Gemma4AudioConfig, Gemma4VisionConfig
    from transformers import AutoModel
    vision = Gemma4VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                num_key_value_heads=2, head_dim=16, patch_size=4, position_embedding_size=64,
                                pooling_kernel_size=2)
    audio = Gemma4AudioConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, output_proj_dims=48,
                              subsampling_conv_channels=[16, 4], conv_kernel_size=5)
    res = {}
    for name, cfg in (("vision", vision), ("audio", audio)):
        m = AutoModel.from_config(config=cfg)
        if name == "audio":
            m.post_init()  # as upstream's gemma4_mm does
        m.eval()
        res[name + "_class"] = type(m).__name__
        if side == "plugin":
            torch.save({k: torch.randn_like(v) if v.is_floating_point() else v for k, v in m.state_dict().items()},
                       f"{weights}/{name}.pt")
        keys = m.load_state_dict(torch.load(f"{weights}/{name}.pt"), strict=True)
        res[name + "_buffers"] = {k: v.clone() for k, v in m.named_buffers()}
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            if name == "vision":
                # one image of 4x4 patches and 4 padding patches, called as upstream's gemma4_mm calls the tower
                pv = torch.rand(1, 20, 48, generator=g)
                xs, ys = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="xy")
                pp = torch.cat([torch.stack([xs.flatten(), ys.flatten()], -1), torch.full((4, 2), -1)], 0)[None]
                pad = (pp == -1).all(-1)
                enc = m.encoder(inputs_embeds=m.patch_embedder(pv, pp, pad), attention_mask=~pad,
                                pixel_position_ids=pp).last_hidden_state
                pooled, mask = m.pooler(hidden_states=enc, pixel_position_ids=pp, padding_positions=pad,
                                        output_length=5)
                res["vision"] = (enc, pooled, mask, m(pv, pp).last_hidden_state)
            else:
                feats = torch.randn(2, 64, 16, generator=g)
                fmask = torch.ones(2, 64, dtype=torch.bool)
                fmask[1, 40:] = False
                o = m(feats, fmask)
                res["audio"] = (o.last_hidden_state, o.attention_mask)
    torch.save(res, out)
    if side == "reference":  # the plugin side ran first: compare here, where torch is
        import json

        def flat(x, path=""):
            if isinstance(x, dict):
                for k in sorted(x):
                    yield from flat(x[k], f"{path}.{k}")
            elif isinstance(x, (tuple, list)):
                for i, v in enumerate(x):
                    yield from flat(v, f"{path}[{i}]")
            else:
                yield path, x

        got, want = dict(flat(torch.load(f"{weights}/plugin.pt"))), dict(flat(res))
        diffs = {}
        for key in sorted(set(got) | set(want)):
            a, b = got.get(key), want.get(key)
            if isinstance(b, torch.Tensor) and isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype:
                diffs[key] = float((a.float() - b.float()).abs().max()) if b.numel() else 0.0
            else:
                diffs[key] = 0.0 if (a == b if not isinstance(b, torch.Tensor) else False) else repr((a, b))[:200]
        print(json.dumps({"classes": [got.get(".audio_class"), got.get(".vision_class")], "diffs": diffs}))
'''


@needs_tf5
@pytest.mark.slow
def test_the_vendored_towers_build_on_4_57_6_and_compute_what_transformers_5s_do(migration, tmp_path):
    pinned = os.environ.get("MMF_PINNED_VENV")
    ref = os.environ.get("MMF_REFERENCE_VENV") or str(Path.home() / ".cache" / "mmf" / "venv-vllm033")
    if not pinned or not Path(ref).is_dir():
        pytest.skip("needs MMF_PINNED_VENV and the transformers 5 venv (MMF_REFERENCE_VENV)")
    root = tmp_path / "plugin"
    for module, unit in migration.units.items():
        if module.startswith(("vllm_fl.processors.", "vllm_fl.configs.", "vllm_fl.compat.")):
            path = root / unit.relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(unit.text)
    for pkg in ("vllm_fl", "vllm_fl/processors", "vllm_fl/configs", "vllm_fl/compat"):
        (root / pkg / "__init__.py").write_text("")
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(PINNED))
    for side, venv in (("plugin", pinned), ("reference", ref)):  # the plugin side writes the weights
        proc = subprocess.run([python_of(venv), str(script), str(root), side, str(tmp_path), str(tmp_path / f"{side}.pt")],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["classes"] == ["Gemma4AudioModel", "Gemma4VisionModel"]
    assert any(k.startswith(".vision[") for k in report["diffs"]) and any(k.startswith(".audio[") for k in report["diffs"])
    assert {k: d for k, d in report["diffs"].items() if not (isinstance(d, float) and d <= 1e-6)} == {}
