"""Processors and feature extractors that only transformers 5 has, vendored from the transformers 5
source (P5): whole modules into vllm_fl/processors/tf5_<file>.py, the transformers 5 helpers they need
sliced, every import either a name transformers 4.57.6 has or another vendored module; a module that
needs what 4.57.6 lacks stays a finding that names it. The pinned half imports the vendored modules on
the real transformers 4.57.6 and compares a feature extractor's output with transformers 5's own
(skips without $MMF_PINNED_VENV and the 0.33.0 reference venv).
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
from flagos_migrate.migrate.upstream import Upstream, open_upstream
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree
from flagos_migrate.verify.import_probe import python_of

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_mini"
needs_tf5 = pytest.mark.skipif(open_transformers5() is None,
                               reason="no transformers 5 wheel (MMF_TRANSFORMERS5 or ~/.cache/mmf/wheels)")

MODEL = '''\
"""A model that takes its processors from transformers 5 (fixture)."""

from torch import nn
from transformers.models.qwen3_asr import Qwen3ASRFeatureExtractor, Qwen3ASRProcessor
from transformers.models.exaone4_5 import Exaone4_5_Processor
from transformers.models.qwen3_asr.modeling_qwen3_asr import Qwen3ASRPreTrainedModel
from transformers import TokenizersBackend
from transformers.models.cohere2_vision.image_processing_cohere2_vision import Cohere2VisionImageProcessor


class AsrForConditionalGeneration(nn.Module):
    processors = (Qwen3ASRFeatureExtractor, Qwen3ASRProcessor, Exaone4_5_Processor, TokenizersBackend,
                  Cohere2VisionImageProcessor)
    base = Qwen3ASRPreTrainedModel
'''


@pytest.fixture(scope="module")
def apis() -> PinnedApis:
    return PinnedApis.load("0.13.0")


@pytest.fixture(scope="module")
def migration(tmp_path_factory, apis) -> Migration:
    tmp = tmp_path_factory.mktemp("tf5mod")
    up = tmp / "upstream"
    shutil.copytree(UPSTREAM, up)
    (up / "vllm" / "model_executor" / "models" / "asr.py").write_text(MODEL)
    plugin = empty_plugin(tmp / "plugin")
    return Migration("asr", Upstream(open_upstream(str(up))), PluginTree(plugin), apis).run()


def _imports(text: str) -> list[tuple[str, str]]:
    return [(n.module, a.name) for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom) for a in n.names]


@needs_tf5
def test_processor_modules_are_vendored_whole_and_the_model_imports_them(migration):
    model = migration.model_unit.text
    assert ("from vllm_fl.processors.tf5_feature_extraction_qwen3_asr import Qwen3ASRFeatureExtractor" in model)
    assert "from vllm_fl.processors.tf5_processing_qwen3_asr import Qwen3ASRProcessor" in model
    assert "from vllm_fl.processors.tf5_processing_exaone4_5 import Exaone4_5_Processor" in model
    # a transformers 5 alias of a 4.x class is the 4.x class (P5 renames), not a vendored copy
    assert "from transformers import PreTrainedTokenizerFast" in model and "TokenizersBackend" not in model
    vendored = {m: u for m, u in migration.units.items() if m.startswith("vllm_fl.processors.tf5_")}
    assert {"vllm_fl.processors.tf5_processing_qwen3_asr", "vllm_fl.processors.tf5_feature_extraction_qwen3_asr",
            "vllm_fl.processors.tf5_processing_exaone4_5"} <= set(vendored)
    for module, unit in vendored.items():
        assert unit.origin.startswith("transformers."), module
        for src, name in _imports(unit.text):
            # every import: a name 4.57.6 has, another vendored module, or not transformers at all;
            # imports inside functions may stay (they run only when called) and are findings if missing
            if src.startswith("transformers"):
                assert migration.apis.resolve(src, name) is not None or any(
                    f.rule == "P5" and name in f.message for f in unit.after), (module, src, name)
            elif src.startswith("vllm_fl."):
                assert src in vendored, (module, src)


@needs_tf5
def test_helpers_transformers_4_57_6_lacks_are_sliced_from_their_transformers_5_module(migration):
    utils = migration.units["vllm_fl.processors.tf5_audio_utils"]
    tree = ast.parse(utils.text)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"make_audio_chat_template_content", "make_list_of_audio_chat_template"} <= defined
    # what 4.57.6 has is imported from it (identity kept), not copied
    assert ("transformers.audio_utils", "make_list_of_audio") in _imports(utils.text)
    assert "make_list_of_audio" not in defined


@needs_tf5
def test_modelling_code_is_not_vendored_and_the_finding_says_why(migration):
    left = {f.data["name"]: f for f in migration.model_unit.after if f.rule == "P5"}
    assert set(left) == {"Qwen3ASRPreTrainedModel"}
    assert "not vendored from transformers 5" in left["Qwen3ASRPreTrainedModel"].message
    assert "modelling code" in left["Qwen3ASRPreTrainedModel"].message


@needs_tf5
def test_a_newer_dependency_with_a_substitute_is_tried_first_then_the_older_stack_s_module(migration):
    # TorchvisionBackend (transformers 5's image-processor base) reaches image_utils.load_image_as_tensor,
    # which imports httpx from huggingface_hub >= 1.0; 4.57.6 runs with huggingface_hub < 1.0, and the
    # P5 table ``substitutes`` names the module that is the same client there (httpx)
    assert not any(f.rule == "P5" and f.data["name"] == "Cohere2VisionImageProcessor" for f in migration.model_unit.after)
    assert ("from vllm_fl.processors.tf5_image_processing_cohere2_vision import Cohere2VisionImageProcessor"
            in migration.model_unit.text)
    backends = migration.units["vllm_fl.processors.tf5_image_processing_backends"].text
    assert "class TorchvisionBackend" in backends
    utils = migration.units["vllm_fl.processors.tf5_image_utils"].text
    assert "try:\n    from huggingface_hub.utils import httpx\nexcept ImportError:\n    import httpx\n" in utils
    assert "def load_image_as_tensor" in utils


@needs_tf5
def test_a_class_on_a_base_transformers_5_rewrote_imports_but_keeps_a_finding(migration):
    # transformers 5's BaseImageProcessor (image_processing_utils) is a rewrite of 4.57.6's: the vendored
    # TorchvisionBackend keeps 4.57.6's class (identity) and calls what only 5.x's defines
    unit = migration.units["vllm_fl.processors.tf5_image_processing_backends"]
    left = [f for f in unit.after if f.rule == "P5"]
    assert len(left) == 1 and left[0].data["class"] == "TorchvisionBackend"
    assert left[0].data["methods"] == ["_set_attributes"] and left[0].severity == "error"
    assert left[0].data["bases"] == "transformers.image_processing_utils.BaseImageProcessor"
    assert left[0] in migration.left()
    # the vendored processors built on transformers classes 5.x did not rewrite keep none
    assert not any(f.rule == "P5" for f in migration.units["vllm_fl.processors.tf5_processing_qwen3_asr"].after)


def _bailing_vl(tmp_path: Path, apis) -> Migration:
    from analysis_helpers import UPSTREAM_SRC

    if not UPSTREAM_SRC.is_dir():
        pytest.skip("no upstream vLLM 0.33.0 source")
    return Migration("bailing_moe_v3_vl", Upstream(open_upstream(str(UPSTREAM_SRC))),
                     PluginTree(empty_plugin(tmp_path / "plugin")), apis).run()


@needs_tf5
def test_an_upstream_vllm_config_class_calling_what_only_transformers_5s_base_defines_gets_those_methods(tmp_path, apis):
    """bailing_moe_v3_vl failed construct: upstream's BailingMoeV3TextConfig (vLLM's own config module, kept on
    4.57.6's PretrainedConfig by P5's rename) calls self.validate_layer_type(), which only 5.x's base defines. The
    plugin's transformers 5 base holds it as 5.x writes it, mixed in after the pinned base."""
    mig = _bailing_vl(tmp_path, apis)
    unit = mig.units["vllm_fl.configs.bailing_moe_v3_vl"]
    assert not [f for f in unit.after if f.rule == "P5"] and "P5" in unit.rules
    before = unit.upstream_text.replace("from transformers.configuration_utils import PreTrainedConfig",
                                        "from transformers.configuration_utils import PretrainedConfig")
    before = before.replace("PreTrainedConfig", "PretrainedConfig")
    assert unit.text == before.replace(
        "from transformers.configuration_utils import PretrainedConfig\n",
        "from transformers.configuration_utils import PretrainedConfig\n"
        "from vllm_fl.configs.tf5_base import Transformers5ConfigMethods\n").replace(
        "class BailingMoeV3TextConfig(PretrainedConfig):",
        "class BailingMoeV3TextConfig(PretrainedConfig, Transformers5ConfigMethods):")
    assert "vllm_fl.configs.tf5_base" in mig.units  # the base comes along


def test_a_method_the_mixin_does_not_hold_keeps_the_finding(tmp_path, apis, monkeypatch):
    from flagos_migrate.migrate import tf5_modules

    monkeypatch.setattr(tf5_modules, "tf5_base_methods", lambda: {"validate_rope"})
    if open_transformers5() is None:
        pytest.skip("no transformers 5 wheel")
    mig = _bailing_vl(tmp_path, apis)
    unit = mig.units["vllm_fl.configs.bailing_moe_v3_vl"]
    (left,) = [f for f in unit.after if f.rule == "P5"]
    assert left.data["class"] == "BailingMoeV3TextConfig" and left.data["methods"] == ["validate_layer_type"]
    assert left.data["bases"] == "transformers.configuration_utils.PretrainedConfig" and left in mig.left()
    assert "Transformers5ConfigMethods" not in unit.text


BUILD_TEXT_CONFIG = """
import sys
sys.path.insert(0, sys.argv[1])
from {module} import BailingMoeV3TextConfig
cfg = BailingMoeV3TextConfig(num_hidden_layers=6, layer_group_size=3)
print("layer_types", cfg.layer_types)
cfg.layer_types = ["full_attention", "bogus_attention"] + cfg.layer_types[2:]
try:
    cfg.validate_layer_type()
    print("bogus", "accepted")
except ValueError as e:
    print("bogus", str(e)[:40])
cfg.layer_types = cfg.layer_types[:2]
try:
    cfg.validate_layer_type()
    print("count", "accepted")
except ValueError as e:
    print("count", str(e)[:40])
"""


@needs_tf5
@pytest.mark.slow
def test_the_mixed_in_config_builds_on_4_57_6_and_validates_as_transformers_5s(tmp_path, apis):
    from analysis_helpers import REFERENCE_PY

    pinned = os.environ.get("MMF_PINNED_VENV")
    if not pinned or not REFERENCE_PY.is_file():
        pytest.skip("needs MMF_PINNED_VENV and the reference venv (MMF_REFERENCE_VENV)")
    mig = _bailing_vl(tmp_path, apis)
    root = tmp_path / "tree"
    for module in ("vllm_fl.configs.bailing_moe_v3_vl", "vllm_fl.configs.tf5_base"):
        path = root / mig.units[module].relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(mig.units[module].text)
    for pkg in ("vllm_fl", "vllm_fl/configs"):
        (root / pkg / "__init__.py").write_text("")
    outs = {}
    for side, python, module in (("plugin", python_of(pinned), "vllm_fl.configs.bailing_moe_v3_vl"),
                                 ("reference", str(REFERENCE_PY), "vllm.transformers_utils.configs.bailing_moe_v3_vl")):
        script = tmp_path / f"{side}.py"
        script.write_text(BUILD_TEXT_CONFIG.format(module=module))
        proc = subprocess.run([python, str(script), str(root)], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[side] = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert outs["plugin"] == outs["reference"]
    assert outs["plugin"]["bogus"] != "accepted" and outs["plugin"]["count"] != "accepted"


VERIFY_DIR = ROOT / "scripts" / "flagos_migrate" / "verify"


def _dory(tmp_path: Path, apis) -> Migration:
    from analysis_helpers import UPSTREAM_SRC

    if not UPSTREAM_SRC.is_dir():
        pytest.skip("no upstream vLLM 0.33.0 source")
    return Migration("dory", Upstream(open_upstream(str(UPSTREAM_SRC))),
                     PluginTree(empty_plugin(tmp_path / "plugin")), apis).run()


@needs_tf5
def test_an_upstream_vllm_config_written_as_a_strict_dataclass_is_translated_as_the_bridges_are(tmp_path, apis):
    """dory failed construct (StrictDataclassDefinitionError from its config module): upstream's DoryConfig is a
    transformers 5 @strict dataclass config, which 4.57.6's PretrainedConfig cannot be. The class is translated as
    the transformers 5 config bridges are: its fields (names and defaults as written) become __v5_fields__, every
    method stays as written, the base is the plugin's transformers 5 base; the rest of the module keeps its text."""
    from flagos_migrate.migrate.tf5_modules import _strict_on_a_4x_base
    from flagos_migrate.migrate.unit import Unit

    mig = _dory(tmp_path, apis)
    unit = mig.units["vllm_fl.configs.dory"]
    assert not [f for f in unit.after if f.rule == "P5"] and "P5" in unit.rules
    assert "vllm_fl.configs.tf5_base" in mig.units  # the base comes along
    up = ast.parse(unit.upstream_text)
    (up_cls,) = [n for n in up.body if isinstance(n, ast.ClassDef)]
    tree = ast.parse(unit.text)
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert cls.name == "DoryConfig" and [ast.unparse(b) for b in cls.bases] == ["PreTrainedConfig"]
    assert cls.decorator_list == [] and "strict" not in unit.text
    fields = next(ast.literal_eval(s.value) for s in cls.body if isinstance(s, ast.Assign)
                  and s.targets[0].id == "__v5_fields__")
    assert fields == {s.target.id: ast.literal_eval(s.value) for s in up_cls.body if isinstance(s, ast.AnnAssign)}
    assert list(fields)[:3] == ["vocab_size", "hidden_size", "num_hidden_layers"]  # dataclass field order
    methods = {n.name: ast.dump(n) for n in cls.body if isinstance(n, ast.FunctionDef)}
    assert methods == {n.name: ast.dump(n) for n in up_cls.body if isinstance(n, ast.FunctionDef)}
    assert ("vllm_fl.configs.tf5_base", "PreTrainedConfig") in _imports(unit.text)
    assert not [m for m, _ in _imports(unit.text) if m.startswith(("huggingface_hub", "transformers"))]
    assert unit.text.startswith(unit.upstream_text[:unit.upstream_text.index('"""')])  # the header is kept
    # the detector still judges the untranslated class; not the same class undecorated, nor one on another base
    strict = Unit(unit.module, unit.origin, "config", unit.upstream_text,
                  unit.upstream_text.replace("PreTrainedConfig", "PretrainedConfig"), set())
    (left,) = _strict_on_a_4x_base(strict)
    assert left.data == {"class": "DoryConfig", "decorator": "strict"} and left.severity == "error"
    plain = Unit(unit.module, unit.origin, "config", strict.text, strict.text.replace("@strict\n", ""), set())
    assert _strict_on_a_4x_base(plain) == []
    other = Unit(unit.module, unit.origin, "config", strict.text,
                 strict.text.replace("class DoryConfig(PretrainedConfig)", "class DoryConfig(Base)"), set())
    assert _strict_on_a_4x_base(other) == []


BUILD_DORY = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
DoryConfig = importlib.import_module(sys.argv[2]).DoryConfig
out = {}
for kw in ({}, {"num_hidden_layers": 6, "rope_theta": 5000.0},
           {"num_hidden_layers": 4, "n_input_layers": 1, "n_output_layers": 1, "sliding_window": 8,
            "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 7.0}}}):
    c = DoryConfig(**kw)
    out[json.dumps(kw)] = {k: getattr(c, k, "MISSING") for k in (
        "layer_types", "rope_parameters", "n_recurrent_layers", "sliding_window", "head_dim", "tie_word_embeddings",
        "hidden_size", "num_hidden_layers", "recurrent_kv_cache_mode", "ngpt_alpha_init", "vocab_size")}
    c.validate()  # transformers 5's validate (upstream's dory.py calls it): a valid config passes
# the harness's tiny config: the defaults shrunk (runtime_tiny), with CHECKPOINT_FIELDS' dory entry
sys.path.insert(0, sys.argv[3])
import runtime_tiny
source = {**DoryConfig().to_dict(), **json.loads(sys.argv[4])}
tiny = DoryConfig.from_dict(runtime_tiny.tiny_config(source))
tiny.validate()
out["tiny"] = [tiny.num_hidden_layers, tiny.n_recurrent_layers, tiny.layer_types]
for bad in ({"num_attention_heads": 3}, {"n_input_layers": 5}, {"attention_bias": True}):
    try:
        DoryConfig(**bad).validate()
        out[json.dumps(bad)] = "accepted"
    except Exception as exc:  # transformers 5 refuses it while building (StrictDataclassClassValidationError)
        out[json.dumps(bad)] = "refused" if "Validation" in type(exc).__name__ or isinstance(exc, ValueError) else repr(exc)
print(json.dumps(out, sort_keys=True))
"""


@needs_tf5
@pytest.mark.slow
def test_the_translated_dory_config_builds_on_4_57_6_as_upstreams_on_transformers_5(tmp_path, apis):
    from analysis_helpers import REFERENCE_PY
    from flagos_migrate.verify.config_hints import CHECKPOINT_FIELDS

    pinned = os.environ.get("MMF_PINNED_VENV")
    if not pinned or not REFERENCE_PY.is_file():
        pytest.skip("needs MMF_PINNED_VENV and the reference venv (MMF_REFERENCE_VENV)")
    mig = _dory(tmp_path, apis)
    root = tmp_path / "tree"
    for module in ("vllm_fl.configs.dory", "vllm_fl.configs.tf5_base"):
        path = root / mig.units[module].relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(mig.units[module].text)
    for pkg in ("vllm_fl", "vllm_fl/configs"):
        (root / pkg / "__init__.py").write_text("")
    script = tmp_path / "build.py"
    script.write_text(BUILD_DORY)
    outs = {}
    for side, python, module in (("plugin", python_of(pinned), "vllm_fl.configs.dory"),
                                 ("reference", str(REFERENCE_PY), "vllm.transformers_utils.configs.dory")):
        proc = subprocess.run([python, str(script), str(root), module, str(VERIFY_DIR),
                               json.dumps(CHECKPOINT_FIELDS["dory"])], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outs["plugin"] == outs["reference"]
    first = outs["plugin"]["{}"]
    assert first["layer_types"][:3] == ["sliding_attention", "mlp", "sliding_attention"] and first["vocab_size"] == 131072
    assert outs["plugin"]['{"num_attention_heads": 3}'] == outs["plugin"]['{"attention_bias": true}'] == "refused"
    assert outs["plugin"]["tiny"][0] == outs["plugin"]["tiny"][1] < 8  # the recurrent block is the tiny model's layers


def test_a_newer_dependency_without_a_substitute_keeps_the_finding_and_names_it(migration, monkeypatch):
    import flagos_migrate.migrate.tf5_modules as tf5_modules

    stmt = ast.parse("from huggingface_hub.utils import httpx, HfHubHTTPError").body[0]
    missing: list[str] = []
    out = migration._tf5_import(stmt, "transformers.image_utils", missing, True)
    assert missing == []
    assert ast.unparse(ast.Module(out, [])) == (
        "from huggingface_hub.utils import HfHubHTTPError\n"
        "try:\n    from huggingface_hub.utils import httpx\nexcept ImportError:\n    import httpx")
    monkeypatch.setattr(tf5_modules, "DEPENDENCY_SUBSTITUTES", {})
    stmt = ast.parse("from huggingface_hub.utils import httpx").body[0]
    out = migration._tf5_import(stmt, "transformers.image_utils", missing, True)
    assert ast.unparse(ast.Module(out, [])) == "from huggingface_hub.utils import httpx"
    assert len(missing) == 1 and missing[0].startswith("huggingface_hub.utils:httpx (huggingface_hub >= 1.0")


PINNED = '''
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    if sys.argv[2] == "plugin":
        import transformers
        from vllm_fl.processors.tf5_feature_extraction_qwen3_asr import Qwen3ASRFeatureExtractor
        from vllm_fl.processors.tf5_processing_qwen3_asr import Qwen3ASRProcessor
        from vllm_fl.processors.tf5_processing_exaone4_5 import Exaone4_5_Processor
        assert transformers.__version__ == "4.57.6", transformers.__version__
    else:
        from transformers.models.qwen3_asr import Qwen3ASRFeatureExtractor
    wave = np.sin(np.linspace(0, 400, 16000)).astype(np.float32) * 0.3
    fe = Qwen3ASRFeatureExtractor()
    out = fe(wave, sampling_rate=16000, return_tensors="np")
    print(json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))
'''


def _write_processors(migration: Migration, root: Path) -> Path:
    """The vendored processor modules of ``migration`` as a plugin tree under ``root``."""
    for module, unit in migration.units.items():
        if module.startswith("vllm_fl.processors."):
            path = root / unit.relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(unit.text)
    for pkg in ("vllm_fl", "vllm_fl/processors"):
        (root / pkg / "__init__.py").write_text("")
    return root


@needs_tf5
@pytest.mark.slow
def test_the_vendored_feature_extractor_imports_on_4_57_6_and_matches_transformers_5(migration, tmp_path):
    pinned = os.environ.get("MMF_PINNED_VENV")
    ref = Path.home() / ".cache" / "mmf" / "venv-vllm033"
    if not pinned or not ref.is_dir():
        pytest.skip("needs MMF_PINNED_VENV and the transformers 5 venv ~/.cache/mmf/venv-vllm033")
    root = _write_processors(migration, tmp_path / "plugin")
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(PINNED))
    outs = {}
    for which, venv in (("plugin", pinned), ("reference", str(ref))):
        proc = subprocess.run([python_of(venv), str(script), str(root), which], capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[which] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outs["plugin"].keys() == outs["reference"].keys() and outs["plugin"]
    import numpy as np

    for key in outs["reference"]:
        got, want = np.asarray(outs["plugin"][key]), np.asarray(outs["reference"][key])
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-5), key


@needs_tf5
@pytest.mark.slow
def test_the_class_on_a_rewritten_base_imports_on_4_57_6_and_fails_to_build_as_the_finding_says(migration, tmp_path):
    pinned = os.environ.get("MMF_PINNED_VENV")
    if not pinned:
        pytest.skip("needs MMF_PINNED_VENV")
    root = _write_processors(migration, tmp_path / "plugin")
    script = tmp_path / "build.py"
    script.write_text(textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from vllm_fl.processors.tf5_image_processing_cohere2_vision import Cohere2VisionImageProcessor
        try:
            Cohere2VisionImageProcessor()
            print("built")
        except AttributeError as e:
            print("AttributeError:", e)
    """))
    proc = subprocess.run([python_of(pinned), str(script), str(root)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [finding] = [f for f in migration.units["vllm_fl.processors.tf5_image_processing_backends"].after if f.rule == "P5"]
    out = proc.stdout.strip().splitlines()[-1]
    assert out.startswith("AttributeError:") and any(m in out for m in finding.data["methods"]), out


ANNOTATED = '''\
"""A model that names a transformers 5 image processor only in annotations (fixture)."""

from torch import nn
from transformers.models.lfm2_vl.image_processing_lfm2_vl import Lfm2VlImageProcessor


def image_processor_of(processor) -> Lfm2VlImageProcessor:
    image_processor: Lfm2VlImageProcessor = processor.image_processor
    return image_processor


class AnnForConditionalGeneration(nn.Module):
    pass
'''

ANNOTATED_AFTER = '''\
"""A model that names a transformers 5 image processor only in annotations (fixture)."""

from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from transformers.models.lfm2_vl.image_processing_lfm2_vl import Lfm2VlImageProcessor


def image_processor_of(processor) -> "Lfm2VlImageProcessor":
    image_processor: "Lfm2VlImageProcessor" = processor.image_processor
    return image_processor


class AnnForConditionalGeneration(nn.Module):
    pass
'''


def test_a_transformers_5_class_only_annotations_use_moves_under_type_checking(tmp_path, apis):
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    (up / "vllm" / "model_executor" / "models" / "ann.py").write_text(ANNOTATED)
    plugin = empty_plugin(tmp_path / "plugin")
    mig = Migration("ann", Upstream(open_upstream(str(up))), PluginTree(plugin), apis).run()
    assert mig.model_unit.text == ANNOTATED_AFTER
    assert not [f for f in mig.model_unit.after if f.rule in ("P5", "P14")]
    assert not any(m.startswith("vllm_fl.processors.") for m in mig.units)  # nothing vendored for an annotation


@needs_tf5
def test_a_slice_an_earlier_apply_wrote_keeps_its_names(tmp_path, apis):
    """Models applied one after another into one plugin: a later model's slice of the same transformers
    5 module is regenerated with the names the held slice exports too (else qwen3_asr's import_utils
    slice dropped what gemma4 imports); a name the held file lists that transformers 5's module does not
    define is not taken from it."""
    up = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, up)
    (up / "vllm" / "model_executor" / "models" / "asr.py").write_text(MODEL)
    plugin = tmp_path / "plugin"
    (plugin / "vllm_fl" / "processors").mkdir(parents=True)
    (plugin / "vllm_fl" / "models").mkdir()
    for pkg in ("", "models/", "processors/"):
        (plugin / "vllm_fl" / f"{pkg}__init__.py").write_text("")
    (plugin / "vllm_fl" / "processors" / "tf5_audio_utils.py").write_text(
        '"""Vendored from transformers: an earlier apply."""\n\n\ndef conv1d_output_length(x):\n    return x\n\n\n'
        "__all__ = ['conv1d_output_length', 'not_in_transformers_5']\n")
    m = Migration("asr", Upstream(open_upstream(str(up))), PluginTree(plugin), apis).run()
    text = m.units["vllm_fl.processors.tf5_audio_utils"].text
    defined = {n.name for n in ast.parse(text).body if isinstance(n, ast.FunctionDef)}
    assert {"conv1d_output_length", "make_audio_chat_template_content"} <= defined
    assert "not_in_transformers_5" not in text
    # negative: without the held slice, the name no model here needs is not sliced
    assert "conv1d_output_length" not in migration_text(tmp_path, apis)


def migration_text(tmp_path: Path, apis: PinnedApis) -> str:
    up = tmp_path / "upstream"
    plugin = tmp_path / "fresh"
    (plugin / "vllm_fl" / "models").mkdir(parents=True)
    (plugin / "vllm_fl" / "__init__.py").write_text("")
    (plugin / "vllm_fl" / "models" / "__init__.py").write_text("")
    m = Migration("asr", Upstream(open_upstream(str(up))), PluginTree(plugin), apis).run()
    return m.units["vllm_fl.processors.tf5_audio_utils"].text
