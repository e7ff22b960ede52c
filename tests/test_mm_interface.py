"""Issue 11 (multimodal files on vLLM 0.13.0): members of upstream's multimodal interfaces and bases that the
pinned ones lack. P4 `base_methods`: `SupportsMultiModal.configure_mm_token_handling` (upstream masks the
out-of-vocabulary multimodal tokens before the text embedding) is written into the class with upstream's
masking branch over the pinned text-embedding hook; P9: `MultiModalConfig.get_video_pruning_spec()` read with
the pinned config's own fields; P23: several children marked as the language model (upstream's fallback to the
first child with `embed_input_ids`); P41: a transformers Auto class asked to build a model from a config class
the pinned transformers lacks. Golden text through the engine, entries checked against both sources, and the
written code run on the real pinned classes."""

from __future__ import annotations

import ast
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from flagos_migrate.catalog.rules import BY_ID
from flagos_migrate.verify.import_probe import python_of

from tests.analysis_helpers import PINNED_VENV, UPSTREAM_SRC, analyze, only
from tests.analysis_helpers import migrate_example as migrate

ENTRY = next(e for e in BY_ID["P4"].tables["base_methods"] if e["method"] == "configure_mm_token_handling")
INTERFACES = Path("vllm/model_executor/models/interfaces.py")

OOV = '''\
from torch import nn
from vllm.model_executor.models.interfaces import SupportsMultiModal


class ExampleForConditionalGeneration(nn.Module, SupportsMultiModal):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.configure_mm_token_handling(
            vocab_size=config.text_config.vocab_size,
            mm_token_ids=[config.image_token_index],
        )
'''

OOV_AFTER = OOV + '''
    def configure_mm_token_handling(self, vocab_size: int, mm_token_ids: list[int]):
        self._has_oov_mm_tokens = any(tok_id >= vocab_size for tok_id in mm_token_ids)

    def _embed_text_input_ids(
        self, input_ids, embed_input_ids, *, is_multimodal, handle_oov_mm_token=False
    ):
        if is_multimodal is not None and self._has_oov_mm_tokens:
            # Force all input IDs to be in vocab; we do this instead of squeezing
            # to ensure that any external configuration requiring offset tracking,
            # e.g., LoRA, are applied correctly regardless of whether or not
            # we have multimodal tokens.
            in_vocab_ids = input_ids.masked_fill(
                is_multimodal.to(device=input_ids.device, non_blocking=True), 0
            )
            return embed_input_ids(in_vocab_ids)
        return super()._embed_text_input_ids(
            input_ids,
            embed_input_ids,
            is_multimodal=is_multimodal,
            handle_oov_mm_token=handle_oov_mm_token,
        )
'''


def test_configure_mm_token_handling_is_written_with_upstreams_masking_over_the_pinned_hook(tmp_path):
    m = migrate(tmp_path, OOV)
    assert m.model_unit.text == OOV_AFTER
    assert [f.data["method"] for f in m.model_unit.before if f.rule == "P4"] == ["configure_mm_token_handling"]
    assert not [f for f in m.left() if f.rule == "P4"]


def test_a_class_defining_the_hook_itself_keeps_its_own(tmp_path):
    own = OOV + '''
    def _embed_text_input_ids(self, input_ids, embed_input_ids, *, is_multimodal, handle_oov_mm_token=False):
        return embed_input_ids(input_ids)
'''
    text = migrate(tmp_path, own).model_unit.text
    assert text.count("def _embed_text_input_ids") == 1 and "def configure_mm_token_handling" in text


def _method(path: Path, cls: str, name: str) -> ast.FunctionDef | None:
    klass = next(n for n in ast.walk(ast.parse(path.read_text("utf-8"))) if isinstance(n, ast.ClassDef) and n.name == cls)
    return next((f for f in klass.body if isinstance(f, ast.FunctionDef) and f.name == name), None)


def _code(f: ast.FunctionDef) -> list[ast.stmt]:
    """The statements after the docstring."""
    doc = f.body and isinstance(f.body[0], ast.Expr) and isinstance(f.body[0].value, ast.Constant)
    return f.body[1:] if doc else f.body


def test_the_entry_is_upstreams_flag_and_masking_and_the_pinned_hook_takes_the_rest():
    if not UPSTREAM_SRC.is_dir():
        pytest.skip("the upstream vLLM 0.33.0 source is not unpacked")
    found = sorted(PINNED_VENV.glob("lib/python3*/site-packages/vllm"))
    if not found:
        pytest.skip("the pinned vLLM 0.13.0 venv is not built")
    up_conf = _method(UPSTREAM_SRC / INTERFACES, "SupportsMultiModal", "configure_mm_token_handling")
    up_hook = _method(UPSTREAM_SRC / INTERFACES, "SupportsMultiModal", "_embed_text_input_ids")
    pin_hook = _method(found[0].parent / INTERFACES, "SupportsMultiModal", "_embed_text_input_ids")
    assert up_conf is not None and _method(found[0].parent / INTERFACES, "SupportsMultiModal", up_conf.name) is None
    conf, hook = ast.parse(ENTRY["source"]).body
    # the flag as upstream computes it (its logger line aside), upstream's masking branch verbatim
    assert ast.dump(conf.body[0]) == ast.dump(_code(up_conf)[0])
    assert ast.dump(hook.body[0]) == ast.dump(_code(up_hook)[0])
    # the pinned hook takes the rest: same parameters plus its handle_oov_mm_token keyword
    assert [a.arg for a in pin_hook.args.kwonlyargs] == [a.arg for a in hook.args.kwonlyargs]
    assert [a.arg for a in pin_hook.args.args] == [a.arg for a in hook.args.args]


RUN = '''
import textwrap
import torch
from torch import nn
from vllm.model_executor.models.interfaces import SupportsMultiModal

class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(8, 4)
    def embed_input_ids(self, ids):
        return self.emb(ids)

class Base(nn.Module, SupportsMultiModal):
    def __init__(self, vocab, mm):
        super().__init__()
        self.lm = LM()
        self.configure_mm_token_handling(vocab_size=vocab, mm_token_ids=mm)
    def get_language_model(self):
        return self.lm

# the entry's methods in a class body, as the migration writes them (super() needs the class cell)
exec("class Written(Base):\\n" + textwrap.indent(SOURCE, "    "))

torch.manual_seed(0)
ids = torch.tensor([1, 9, 9, 2])  # image token 9 >= vocab 8
mask = torch.tensor([False, True, True, False])
mm = [torch.randn(2, 4)]
m = Written(8, [9])
out = m.embed_input_ids(ids, mm, is_multimodal=mask)
expect = m.lm.emb(ids.masked_fill(mask, 0))  # upstream: masked to 0, then the image rows scattered
expect[mask] = mm[0]
print("oov_flag", m._has_oov_mm_tokens)
print("oov_equal", torch.equal(out, expect))
try:  # the pinned hook alone, as the class called it before: the image token id reaches the embedding
    super(Written, m)._embed_text_input_ids(ids, m.lm.embed_input_ids, is_multimodal=mask, handle_oov_mm_token=False)
    print("pinned_alone_fails False")
except IndexError:
    print("pinned_alone_fails True")
inv = Written(16, [3])
ids2 = torch.tensor([1, 3, 2])
out2 = inv.embed_input_ids(ids2, [torch.randn(1, 4)], is_multimodal=torch.tensor([False, True, False]))
print("inv_flag", inv._has_oov_mm_tokens)
print("inv_text_equal", torch.equal(out2[[0, 2]], inv.lm.emb(torch.tensor([1, 2]))))
print("pinned_has_it", hasattr(SupportsMultiModal, "configure_mm_token_handling"))
'''


def test_the_written_methods_mask_oov_tokens_on_the_real_pinned_interface(tmp_path):
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    script = tmp_path / "run.py"
    script.write_text("SOURCE = " + repr(ENTRY["source"]) + "\n" + RUN)
    proc = subprocess.run([python_of(venv), str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = ("oov_flag", "oov_equal", "pinned_alone_fails", "inv_flag", "inv_text_equal", "pinned_has_it")
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(keys))
    assert out == {"oov_flag": "True", "oov_equal": "True", "pinned_alone_fails": "True", "inv_flag": "False",
                   "inv_text_equal": "True", "pinned_has_it": "False"}


# -- P41: a transformers Auto class asked to build a model from a config the pinned stack lacks -----

TOWER = '''
    from torch import nn
    from transformers import AutoModel
    from {module} import {config}


    class Tower(nn.Module):
        def __init__(self, config: {config}) -> None:
            super().__init__()
            self.vision_tower = AutoModel.from_config(config=config.vision_config)
'''


def test_auto_from_config_with_a_bridged_config_class_is_reported():
    # the migrated gemma4_mm imports its configs from the plugin's transformers 5 bridge
    found = analyze(TOWER.format(module="vllm_fl.configs.tf5_gemma4", config="Gemma4Config"))
    (f,) = only(found, "P41")
    assert f.severity == "error" and f.line == 10 and f.data["configs"] == ["Gemma4Config"]
    assert "Gemma4Config (vllm_fl.configs.tf5_gemma4)" in f.message and "Unrecognized configuration class" in f.message
    # upstream's spelling before the bridge: transformers 5's module, which 4.57.6 lacks
    (f,) = only(analyze(TOWER.format(module="transformers.models.gemma4", config="Gemma4Config")), "P41")
    assert f.data["factory"] == "AutoModel" and f.data["config_attr"] == "vision_config"


def test_the_sub_config_is_found_through_a_local_bound_once_from_it():
    """diffusion_gemma: ``vision_config = getattr(config, "vision_config", None)`` then
    ``AutoModel.from_config(config=vision_config)`` inside a ``with``: the sub-config is named, so apply vendors
    the tower as for gemma4_mm; a parameter or a rebound local names none."""
    src = TOWER.format(module="vllm_fl.configs.tf5_gemma4", config="Gemma4Config")
    bound = src.replace(
        "            self.vision_tower = AutoModel.from_config(config=config.vision_config)",
        "            vision_config = getattr(config, 'vision_config', None)\n"
        "            with open('x') as fh:\n"
        "                self.vision_tower = AutoModel.from_config(config=vision_config)")
    (f,) = only(analyze(bound), "P41")
    assert f.data["config_attr"] == "vision_config"
    (f,) = only(analyze(bound.replace("getattr(config, 'vision_config', None)", "config.audio_config")), "P41")
    assert f.data["config_attr"] == "audio_config"
    rebound = bound.replace("            with open", "            vision_config = other()\n            with open")
    assert only(analyze(rebound), "P41")[0].data["config_attr"] is None
    param = bound.replace("config: {c})".format(c="Gemma4Config"), "config: Gemma4Config, vision_config=None)")
    param = param.replace("            vision_config = getattr(config, 'vision_config', None)\n", "")
    assert only(analyze(param), "P41")[0].data["config_attr"] is None


def test_auto_from_config_is_not_reported_once_the_file_imports_the_vendored_towers():
    # P41's fix: the towers vendored from transformers 5's modelling register themselves with AutoModel
    fixed = TOWER.format(module="vllm_fl.configs.tf5_gemma4", config="Gemma4Config").replace(
        "from transformers import AutoModel\n",
        "from transformers import AutoModel\n    from vllm_fl.processors.tf5_modeling_gemma4 import Gemma4VisionModel\n")
    assert "tf5_modeling_gemma4" in fixed and not only(analyze(fixed), "P41")


def test_auto_from_config_with_a_config_the_pinned_transformers_has_is_not():
    # Gemma 3n: transformers 4.57.6 has the config classes and their models (gemma3n_mm builds its towers so)
    assert not only(analyze(TOWER.format(module="transformers.models.gemma3n", config="Gemma3nConfig")), "P41")
    # no Auto factory call: the bridged config alone is fine
    plain = TOWER.format(module="vllm_fl.configs.tf5_gemma4", config="Gemma4Config").replace(
        "AutoModel.from_config(config=config.vision_config)", "nn.Linear(2, 2)")
    assert not only(analyze(plain), "P41")


# -- P9 unset_defaults: MultiModalConfig.get_video_pruning_spec (Qwen3-VL's _init_video_pruning) ------

PRUNING = '''\
from torch import nn
from vllm.config import MultiModalConfig


class ExampleForConditionalGeneration(nn.Module):
    def _init_video_pruning(self, multimodal_config: MultiModalConfig) -> None:
        pruning_spec = multimodal_config.get_video_pruning_spec()
'''
SPEC = ('getattr(multimodal_config, "get_video_pruning_spec", lambda: ("evs", float(multimodal_config.video_pruning_rate)) '
        'if multimodal_config.is_multimodal_pruning_enabled() else None)()')


def test_get_video_pruning_spec_is_read_with_the_pinned_configs_own_fields(tmp_path):
    m = migrate(tmp_path, PRUNING)
    assert m.model_unit.text == PRUNING.replace("multimodal_config.get_video_pruning_spec()", SPEC)
    assert not [f for f in m.left() if f.rule == "P9"]


SPEC_RUN = '''
import ast, types
from vllm.config import MultiModalConfig
up = next(n for n in ast.walk(ast.parse(open(UPSTREAM).read()))
          if isinstance(n, ast.FunctionDef) and n.name == "get_video_pruning_spec")
up.returns = None  # its annotation names upstream-only types
ns = {}
exec(compile(ast.Module(body=[up], type_ignores=[]), "upstream", "exec"), ns)
for rate in (None, 0.0, 0.25, 0.7):
    multimodal_config = MultiModalConfig(video_pruning_rate=rate)
    ours = eval(SPEC)
    # upstream's method on upstream's defaults (video_pruning_method "evs")
    theirs = ns["get_video_pruning_spec"](types.SimpleNamespace(video_pruning_rate=rate, video_pruning_method="evs"))
    print(f"rate{rate}", ours == theirs, ours)
'''


def test_the_stand_in_equals_upstreams_method_on_the_real_pinned_config(tmp_path):
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    if not UPSTREAM_SRC.is_dir():
        pytest.skip("the upstream vLLM 0.33.0 source is not unpacked")
    script = tmp_path / "run.py"
    script.write_text(f"SPEC = {SPEC!r}\nUPSTREAM = {str(UPSTREAM_SRC / 'vllm/config/multimodal.py')!r}\n" + SPEC_RUN)
    proc = subprocess.run([python_of(venv), str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith("rate"))
    assert out == {"rateNone": "True None", "rate0.0": "True None", "rate0.25": "True ('evs', 0.25)",
                   "rate0.7": "True ('evs', 0.7)"}


# -- P23: several children marked as the language model (Aria: text model, lm_head, logits processor) --

MARKED = '''\
from torch import nn
from vllm.model_executor.layers.logits_processor import LogitsProcessor
from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead
from vllm.model_executor.models.interfaces import SupportsMultiModal
from vllm.model_executor.models.llama import LlamaModel


class TextModel(LlamaModel):
    pass


class Projector(nn.Module):
    pass


class ExampleForConditionalGeneration(nn.Module, SupportsMultiModal):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.config = config
        self.projector = Projector()
        with self._mark_language_model(vllm_config):
            self.language_model = TextModel(vllm_config=vllm_config, prefix=prefix)
            self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size)
            self.logits_processor = LogitsProcessor(config.vocab_size)
'''
MARKED_AFTER = MARKED.replace('''        with self._mark_language_model(vllm_config):
            self.language_model = TextModel(vllm_config=vllm_config, prefix=prefix)
            self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size)
            self.logits_processor = LogitsProcessor(config.vocab_size)
''', '''        self.language_model = TextModel(vllm_config=vllm_config, prefix=prefix)
        self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size)
        self.logits_processor = LogitsProcessor(config.vocab_size)

    def get_language_model(self) -> nn.Module:
        return self.language_model
''')


def test_several_marked_children_give_the_first_child_with_embed_input_ids_as_upstream(tmp_path):
    # upstream: no common prefix of language_model / lm_head / logits_processor, so its default takes the
    # first child with embed_input_ids in registration order (the projector before it has none)
    m = migrate(tmp_path, MARKED)
    assert m.model_unit.text == MARKED_AFTER
    assert not [f for f in m.left() if f.rule == "P23"]


def test_an_earlier_child_of_unknown_class_leaves_the_finding(tmp_path):
    unknown = MARKED.replace("self.projector = Projector()", "self.projector = build_projector()").replace(
        "class Projector(nn.Module):\n    pass\n", "def build_projector():\n    return nn.Identity()\n")
    m = migrate(tmp_path, unknown)
    assert "def get_language_model" not in m.model_unit.text
    assert [f.data["method"] for f in m.left() if f.rule == "P23"] == ["get_language_model"]


COMPOSITE = '''\
from torch import nn
from vllm.model_executor.models.interfaces import SupportsMultiModal
from vllm.model_executor.models.llama import LlamaModel


class Tower(nn.Module):
    pass


class ExampleModel(nn.Module):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super().__init__()
        self.vision_model = Tower()
        self.text_model = LlamaModel(vllm_config=vllm_config, prefix=prefix)


class ExampleForConditionalGeneration(nn.Module, SupportsMultiModal):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super().__init__()
        with self._mark_composite_model(
            vllm_config,
            language_targets=LlamaModel,
            tower_targets={"image": Tower},
        ):
            self.model = ExampleModel(vllm_config=vllm_config, prefix=prefix)
'''


def test_language_targets_give_the_descendant_of_that_class(tmp_path):
    # Idefics3: upstream marks the LlamaModel inside self.model; get_language_model returns it
    m = migrate(tmp_path, COMPOSITE)
    assert m.model_unit.text.endswith('''        self.model = ExampleModel(vllm_config=vllm_config, prefix=prefix)

    def get_language_model(self) -> nn.Module:
        return self.model.text_model
''')
    assert not [f for f in m.left() if f.rule == "P23"]
    # two descendants of the target class: which one upstream's common prefix picks is not this rewrite's
    two = COMPOSITE.replace("        self.vision_model = Tower()\n",
                            "        self.draft_model = LlamaModel(vllm_config=vllm_config, prefix=prefix)\n")
    assert [f.data["method"] for f in migrate(tmp_path / "two", two).left() if f.rule == "P23"] == ["get_language_model"]


def test_a_tower_child_of_a_class_the_index_cannot_see_is_an_encoder_there(tmp_path):
    # Aria: the tower is built under _mark_tower_model from a class the index cannot resolve, the text model
    # is a local subclass of one it cannot either (relative imports): upstream's default still takes it
    towered = MARKED.replace("        self.projector = Projector()\n", '''        with self._mark_tower_model(vllm_config, "image"):
            self.vision_tower = build_tower()
''')
    m = migrate(tmp_path, towered)
    assert "        return self.language_model\n" in m.model_unit.text
    assert not [f for f in m.left() if f.rule == "P23"]


# -- a module built from a pinned sibling's class, then called with a keyword only upstream's forward takes --

IDEFICS3 = ast.parse(textwrap.dedent('''
    from torch import nn
    from vllm.model_executor.models.idefics2_vision_model import Idefics2VisionTransformer

    class Idefics3Model(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.vision_model = Idefics2VisionTransformer(config.vision_config)

        def image_pixels_to_features(self, pixel_values, patch_attention_mask, position_ids):
            return self.vision_model(pixel_values=pixel_values, patch_attention_mask=patch_attention_mask,
                                     position_ids=position_ids)
'''))
UPSTREAM_IDEFICS2 = '''
class Idefics2VisionTransformer:
    def __init__(self, config):
        pass

    def forward(self, pixel_values, patch_attention_mask=None, position_ids=None):
        pass
'''
IDEFICS2 = "vllm.model_executor.models.idefics2_vision_model"
VIT = {"Idefics2VisionTransformer": "Idefics2VisionTransformer"}


def test_a_called_module_whose_pinned_forward_rejects_a_keyword_brings_upstreams_sibling():
    # 0.13.0's Idefics2VisionTransformer.forward(pixel_values, patch_attention_mask, tgt_sizes): no position_ids
    from flagos_migrate.analysis import calls

    from tests.analysis_helpers import pinned

    assert calls.pinned_class_rejects(pinned(), IDEFICS2, VIT, IDEFICS3, UPSTREAM_IDEFICS2)
    # upstream's forward does not take it either: nothing to bring
    assert not calls.pinned_class_rejects(pinned(), IDEFICS2, VIT, IDEFICS3,
                                          UPSTREAM_IDEFICS2.replace(", position_ids=None", ""))
    # keywords the pinned forward takes, or an attribute also built from something else: not judged
    plain = ast.parse(ast.unparse(IDEFICS3).replace(", position_ids=position_ids", ""))
    assert not calls.pinned_class_rejects(pinned(), IDEFICS2, VIT, plain, UPSTREAM_IDEFICS2)
    rebuilt = ast.parse(ast.unparse(IDEFICS3).replace(
        "super().__init__()", "super().__init__()\n        self.vision_model = nn.Identity()"))
    assert not calls.pinned_class_rejects(pinned(), IDEFICS2, VIT, rebuilt, UPSTREAM_IDEFICS2)


GLM_OCR_VIT = ast.parse('''
from vllm.model_executor.models.glm4_1v import Glm4vVisionTransformer


class GlmOcrVisionTransformer(Glm4vVisionTransformer):
    def __init__(self, text_config, vision_config, norm_eps=1e-5, quant_config=None, input_norm=None, prefix=""):
        super().__init__(text_config, vision_config, norm_eps, quant_config, input_norm, prefix)
''')
UPSTREAM_GLM4_1V = '''
class Glm4vVisionTransformer:
    def __init__(self, text_config, vision_config, norm_eps=1e-6, quant_config=None, input_norm=None, prefix=""):
        pass
'''


def test_a_subclass_handing_the_pinned_init_more_positionals_than_it_takes_brings_upstreams_sibling():
    # 0.13.0's Glm4vVisionTransformer(vision_config, norm_eps, quant_config, multimodal_config, prefix): five;
    # glm_ocr's subclass hands upstream's six, text_config first (P7), and extends its ForConditionalGeneration (P43)
    from flagos_migrate.analysis import calls

    from tests.analysis_helpers import pinned

    glm = "vllm.model_executor.models.glm4_1v"
    vit = {"Glm4vVisionTransformer": "Glm4vVisionTransformer"}
    assert calls.pinned_class_rejects(pinned(), glm, vit, GLM_OCR_VIT, UPSTREAM_GLM4_1V)
    # upstream's class does not take six either: nothing to bring
    assert not calls.pinned_class_rejects(pinned(), glm, vit, GLM_OCR_VIT,
                                          UPSTREAM_GLM4_1V.replace(', input_norm=None', ''))
    # five, as the pinned one takes
    five = ast.parse(ast.unparse(GLM_OCR_VIT).replace("text_config, vision_config, norm_eps", "vision_config, norm_eps"))
    assert not calls.pinned_class_rejects(pinned(), glm, vit, five, UPSTREAM_GLM4_1V)
