"""P15 across files: each field a pinned parent reads is attributed to the config object the read goes
through (issue 17 item 6), so a text-config bridge is never asked for the vision config's fields."""

from __future__ import annotations

from pathlib import Path

from flagos_migrate.analysis.bridges import bridge_field_findings
from flagos_migrate.analysis.engine import AnalysisContext, parse_text
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.plugin.tree import PluginTree

MODEL = '''from vllm.model_executor.models.qwen2 import Qwen2Model
from vllm.model_executor.models.qwen2_vl import Qwen2VLForConditionalGeneration
from vllm_fl.configs.demo import {imports}


class DemoModel(Qwen2Model):
    pass


class DemoForConditionalGeneration(Qwen2VLForConditionalGeneration):
    pass
'''

CONFIGS = '''from transformers import PretrainedConfig


class DemoTextConfig(PretrainedConfig):
    model_type = "demo_text"

    def __init__(self, hidden_size=64, vocab_size=128, num_hidden_layers=2, rms_norm_eps=1e-6, **kwargs):
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size
        self.num_hidden_layers = num_hidden_layers
        self.rms_norm_eps = rms_norm_eps
        super().__init__(**kwargs)


class DemoVisionConfig(PretrainedConfig):
    model_type = "demo_vision"

    def __init__(self, depth=2, embed_dim=32, hidden_size=64, in_channels=3, mlp_ratio=4, num_heads=2,
                 patch_size=14, temporal_patch_size=2, **kwargs):
        self.depth, self.embed_dim, self.hidden_size = depth, embed_dim, hidden_size
        self.in_channels, self.mlp_ratio, self.num_heads = in_channels, mlp_ratio, num_heads
        self.patch_size, self.temporal_patch_size = patch_size, temporal_patch_size
        super().__init__(**kwargs)


class DemoConfig(PretrainedConfig):
    model_type = "demo"

    def __init__(self, image_token_id=5, **kwargs):
        self.image_token_id = image_token_id
        super().__init__(**kwargs)
'''


def findings(tmp_path: Path, imports: str) -> dict[str, dict]:
    root = tmp_path / "plugin"
    for rel, text in {"vllm_fl/__init__.py": "", "vllm_fl/models/__init__.py": "", "vllm_fl/configs/__init__.py": "",
                      "vllm_fl/configs/demo.py": CONFIGS,
                      "vllm_fl/models/demo.py": MODEL.format(imports=imports)}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    tree = PluginTree(root)
    apis = PinnedApis.load("0.13.0").with_package(tree.index())
    path = root / "vllm_fl/models/demo.py"
    parsed, _ = parse_text(path.read_text(), str(path))
    files = {tree.module_of(p): p for p in tree.python_files()}
    out = bridge_field_findings(parsed, AnalysisContext(apis, "vllm_fl.models.demo", "demo.py"), files)
    assert all(f.rule == "P15" and f.severity == "warning" for f in out)
    return {f.data["class"]: f.data for f in out}


def test_each_bridge_answers_only_for_the_config_object_the_parents_read_through(tmp_path):
    found = findings(tmp_path, "DemoConfig, DemoTextConfig, DemoVisionConfig")
    # the language model (Qwen2Model) reads its own config: the text config lacks one field of it
    # (tie_word_embeddings, also read, comes with PretrainedConfig)
    assert found["DemoTextConfig"]["missing"] == ["max_window_layers"]
    assert found["DemoTextConfig"]["read_by"] == {"max_window_layers": ["Qwen2Model"]}
    # the multimodal parent's config.X are the top-level config's, vision_config.X the vision config's
    assert found["DemoConfig"]["missing"] == ["video_token_id", "vision_config", "vision_start_token_id"]
    assert found["DemoConfig"]["read_through"] == {"video_token_id": ["config"], "vision_config": ["config"],
                                                   "vision_start_token_id": ["config"]}
    assert found["DemoVisionConfig"]["missing"] == ["spatial_merge_size"]
    assert found["DemoVisionConfig"]["read_through"] == {"spatial_merge_size": ["vision_config"]}


def test_the_right_fix_silences_the_warning(tmp_path):
    """Adding the fields to the bridge the finding names leaves nothing: the fix the warning asks for
    is the one that removes it (the vision fields never land on the text config)."""
    global CONFIGS
    saved = CONFIGS
    try:
        CONFIGS = CONFIGS.replace("        self.rms_norm_eps = rms_norm_eps\n",
                                  "        self.rms_norm_eps = rms_norm_eps\n        self.max_window_layers = 2\n"
                                  "        self.tie_word_embeddings = False\n")
        CONFIGS = CONFIGS.replace("        self.patch_size, self.temporal_patch_size = patch_size, temporal_patch_size\n",
                                  "        self.patch_size, self.temporal_patch_size = patch_size, temporal_patch_size\n"
                                  "        self.spatial_merge_size = 2\n")
        found = findings(tmp_path, "DemoTextConfig, DemoVisionConfig")
    finally:
        CONFIGS = saved
    assert found == {}


def test_the_index_records_which_config_object_each_read_goes_through():
    import ast

    from flagos_migrate.pinned.index_builder import class_record
    src = '''
class M:
    def __init__(self, vllm_config):
        config = vllm_config.model_config.hf_config
        self.a = config.image_token_id
        self.b = config.vision_config.patch_size
        self.c = config.text_config.hidden_size
        self.d = vllm_config.model_config.hf_text_config.vocab_size
        self.e = config.get_text_config().num_hidden_layers
'''
    rec = class_record(ast.parse(src).body[0])
    assert rec["cfgv"] == {"config": ["get_text_config", "image_token_id", "text_config", "vision_config"],
                           "text_config": ["hidden_size", "num_hidden_layers", "vocab_size"],
                           "vision_config": ["patch_size"]}
    # the flat list keeps its meaning (reads of the call result were never in it)
    assert rec["cfg"] == ["get_text_config", "hidden_size", "image_token_id", "patch_size", "text_config",
                          "vision_config", "vocab_size"]
