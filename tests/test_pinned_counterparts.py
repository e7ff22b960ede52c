"""P43: architectures that run through pinned vLLM code outside the model file that computes otherwise than upstream's
(GLM-4.7-Flash's attention chosen by 0.13.0's ModelConfig.is_deepseek_mla; Command A Vision's language model served by
0.13.0's Cohere2ForCausalLM, one sliding-window token narrower), and P38's MTP draft the pinned SpeculativeConfig never
makes (GLM-4.7-Flash's). These were "0 left" (or only an unrelated finding left) with the difference seen only at runtime.
Reported on the registration by plan/apply and the validator; each table entry is checked against both vLLM sources."""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import pytest
from analysis_helpers import GOOD_PLUGIN, empty_plugin, pinned
from flagos_migrate.analysis.inherited import framework_findings
from flagos_migrate.catalog.rules import BY_ID
from flagos_migrate.catalog.tables import PINNED_COUNTERPARTS, SPECULATIVE_UNCONVERTED
from flagos_migrate.commands.validate import validate

UPSTREAM_SRC = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0"))
PINNED_VENV = Path(os.environ.get("MMF_PINNED_VENV", Path.home() / ".cache/mmf/venv-vllm013"))
BOTH = pytest.mark.skipif(not (UPSTREAM_SRC.is_dir() and (PINNED_VENV / "lib").is_dir()),
                          reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC) and the pinned venv (MMF_PINNED_VENV)")
MLA_TYPES = BY_ID["P43"].tables["mla_model_types"]


def _p43(arch: str, version: str = "0.13.0", registered=frozenset(), builds_on=frozenset()):
    return [f for f in framework_findings(arch, "m.py", 5, version=version, registered=registered, builds_on=builds_on)
            if f.rule == "P43"]


def test_the_findings_name_the_pinned_code_and_what_it_does():
    (glm,) = _p43("Glm4MoeLiteForCausalLM")
    assert glm.severity == "warning" and glm.line == 5
    assert glm.message.startswith("architecture Glm4MoeLiteForCausalLM runs through the pinned vLLM 0.13.0's "
                                  "ModelConfig.is_deepseek_mla (vllm/config/model.py): its tuple of model types lacks "
                                  "glm4_moe_lite (upstream's ModelArchConfigConvertor.is_deepseek_mla lists it), so "
                                  "model_config.use_mla is False")
    (mtp,) = _p43("Glm4MoeLiteMTPModel")
    assert mtp.severity == "warning" and "lacks glm4_moe_lite_mtp" in mtp.message
    (cohere,) = _p43("Cohere2VisionForConditionalGeneration")
    assert cohere.severity == "error" and cohere.data["arch"] == "Cohere2VisionForConditionalGeneration"
    assert "Cohere2ForCausalLM (CohereForCausalLM of vllm/model_executor/models/commandr.py)" in cohere.message
    assert "`per_layer_sliding_window=config.sliding_window`, upstream's `config.sliding_window + 1`" in cohere.message
    assert cohere.fix.startswith("register upstream's Cohere2ForCausalLM in the plugin")


def test_colpali_names_the_pinned_config_whose_language_config_gets_no_rope():
    (f,) = _p43("ColPaliForRetrieval")
    assert f.severity == "error" and f.data["arch"] == "ColPaliForRetrieval"
    assert "ColPaliConfig of transformers 4.57.6" in f.message and "never to `vlm_config.text_config`" in f.message
    assert "'GemmaConfig' object has no attribute 'rope_parameters'" in f.message
    assert f.fix.startswith("in the model file, `super().__init__(vllm_config=vllm_config.with_hf_config(config.vlm_config)")


COLPALI = """\
from vllm.model_executor.models.paligemma import PaliGemmaForConditionalGeneration


class ColPaliModel(PaliGemmaForConditionalGeneration):
    def __init__(self, *, vllm_config, prefix: str = ""):
        config = vllm_config.model_config.hf_config
        super().__init__(
            vllm_config=vllm_config.with_hf_config(config.vlm_config), prefix=prefix
        )
        self.hidden_size = config.vlm_config.text_config.hidden_size
"""

COLPALI_AFTER = """\
from vllm.model_executor.models.paligemma import PaliGemmaForConditionalGeneration
from vllm.transformers_utils.config import patch_rope_parameters


class ColPaliModel(PaliGemmaForConditionalGeneration):
    def __init__(self, *, vllm_config, prefix: str = ""):
        config = vllm_config.model_config.hf_config
        # the pinned get_config patches RoPE on ColPaliConfig's own text_config, not on vlm_config's (P43)
        patch_rope_parameters(config.vlm_config.text_config)
        super().__init__(vllm_config=vllm_config.with_hf_config(config.vlm_config), prefix=prefix)
        self.hidden_size = config.vlm_config.text_config.hidden_size
"""


def test_colpali_statement_becomes_the_pinned_rope_patch_then_upstreams(tmp_path: Path):
    from analysis_helpers import migrate_example, only

    m = migrate_example(tmp_path, COLPALI, "colpali")
    assert m.model_unit.text == COLPALI_AFTER
    (f,) = only(m.model_unit.before, "P43")
    assert f.line == 7 and "never to `vlm_config.text_config`" in f.message
    assert only(m.model_unit.after, "P43") == [] and "P43" in m.model_unit.rules
    # the registration is answered by the rewritten file, not by the upstream one
    for text, left in ((COLPALI_AFTER, 0), (COLPALI, 1)):
        found = framework_findings("ColPaliForRetrieval", "m.py", 5, version="0.13.0", model_tree=ast.parse(text))
        assert len([f for f in found if f.rule == "P43"]) == left
    # another module with the same statement is not colpali: nothing rewritten
    other = migrate_example(tmp_path / "other", COLPALI, "other_vlm")
    assert only(other.model_unit.before, "P43") == [] and "patch_rope_parameters" not in other.model_unit.text


MOSS = """\
from torch import nn

PICK = lambda config: config.language_config


class MossAudioModel(nn.Module):
    def __init__(self, *, vllm_config, prefix: str = ""):
        super().__init__()
        language_config = self.config.language_config
        self.language_model = build(vllm_config.with_hf_config(language_config))
"""

MOSS_AFTER = """\
from torch import nn
from vllm.transformers_utils.config import patch_rope_parameters

PICK = lambda config: config.language_config


class MossAudioModel(nn.Module):
    def __init__(self, *, vllm_config, prefix: str = ""):
        super().__init__()
        language_config = self.config.language_config
        # the pinned get_config never sees this Qwen3Config (the file's MossAudioConfig makes it): its RoPE (P43)
        patch_rope_parameters(language_config)
        self.language_model = build(vllm_config.with_hf_config(language_config))
"""


def test_moss_audio_statement_gets_the_pinned_rope_patch_after_it(tmp_path: Path):
    """moss_audio matched nowhere (forward passed, |dlogit| 1.35): its language model's 4.57.6 Qwen3Config never went
    through the pinned get_config, so the pinned Qwen3 layer took RoPE base 1e6 over config.json's. A lambda in the
    file (whose body is an expression, not a statement list) does not stop the statement search."""
    from analysis_helpers import migrate_example, only

    m = migrate_example(tmp_path, MOSS, "moss_audio")
    assert m.model_unit.text == MOSS_AFTER
    (f,) = only(m.model_unit.before, "P43")
    assert f.line == 9 and "set_default_rope_theta then gives it" in f.message
    assert only(m.model_unit.after, "P43") == []
    for text, left in ((MOSS_AFTER, 0), (MOSS, 1)):
        found = framework_findings("MossAudioModel", "m.py", 5, version="0.13.0", model_tree=ast.parse(text))
        assert len([f for f in found if f.rule == "P43"]) == left


MOSS_OTHER_CLASS = """\
from torch import nn
from vllm.transformers_utils.config import patch_rope_parameters


class MossAudioEncoderHelper(nn.Module):
    def __init__(self, config):
        super().__init__()
        language_config = self.config.language_config
        # the pinned get_config never sees this Qwen3Config (the file's MossAudioConfig makes it): its RoPE (P43)
        patch_rope_parameters(language_config)


class MossAudioModel(nn.Module):
    def __init__(self, *, vllm_config, prefix: str = ""):
        super().__init__()
        language_config = self.config.language_config
        self.language_model = build(vllm_config.with_hf_config(language_config))
"""


def test_an_answer_counts_only_in_the_class_the_entry_names(tmp_path: Path):
    """The table's code in another class of the file answers nothing (before, any body of the file did: the model's
    own statement was then neither reported nor rewritten), and upstream's statement there is not the one to
    rewrite: only MossAudioModel's (table data, `class`)."""
    from analysis_helpers import migrate_example, only

    entry = PINNED_COUNTERPARTS["0.13.0"]["MossAudioModel"]
    assert entry["answered_by_statement"]["class"] == "MossAudioModel"
    assert PINNED_COUNTERPARTS["0.13.0"]["ColPaliForRetrieval"]["answered_by_statement"]["class"] == "ColPaliModel"
    found = framework_findings("MossAudioModel", "m.py", 5, version="0.13.0", model_tree=ast.parse(MOSS_OTHER_CLASS))
    assert [f.rule for f in found if f.rule == "P43"] == ["P43"]
    m = migrate_example(tmp_path, MOSS_OTHER_CLASS, "moss_audio")
    (f,) = only(m.model_unit.before, "P43")
    assert f.line == 16  # MossAudioModel's statement, not the helper's at line 8
    model = m.model_unit.text.split("class MossAudioModel", 1)[1]
    assert "patch_rope_parameters(language_config)" in model
    assert m.model_unit.text.count("patch_rope_parameters(language_config)") == 2


def test_glm_ocr_names_the_pinned_base_that_builds_no_language_model_for_its_type():
    (f,) = _p43("GlmOcrForConditionalGeneration")
    assert f.severity == "error" and "Glm4vForConditionalGeneration.__init__" in f.message
    assert "upstream's lists glm_ocr (and glmga) with glm4v" in f.message


def test_gte_new_classifier_names_the_pinned_bert_pooler_that_takes_another_config():
    """bert_with_rope was "0 left" and its GteNewForSequenceClassification failed construct once the harness built
    the pinned vLLM's own class (e2120c6's recheck): the pooler call has the right arity and the wrong object."""
    (f,) = _p43("GteNewForSequenceClassification")
    assert f.severity == "error" and "BertPooler (vllm/model_executor/models/bert.py)" in f.message
    assert "'ModelConfig' object has no attribute 'hidden_size'" in f.message
    # upstream's bert in the plugin answers it: the file imports BertPooler from the plugin's copy (apply brings it)
    assert f.fix.startswith("extend the class of upstream's bert migrated into the plugin")
    assert _p43("GteNewForSequenceClassification", builds_on=frozenset({"bert"})) == []


def test_voxtral_realtime_names_the_pinned_voxtral_tower_that_is_never_causal():
    """voxtral_realtime extended the pinned VoxtralForConditionalGeneration, whose audio tower is always the
    bidirectional WhisperEncoder: with a realtime config it built (and loaded) another network than upstream's."""
    (f,) = _p43("VoxtralRealtimeGeneration")
    assert f.severity == "error" and "VoxtralEncoderModel (vllm/model_executor/models/voxtral.py)" in f.message
    assert "upstream's builds WhisperCausalEncoder when the audio config has `is_causal` (voxtral.py:726)" in f.message
    assert f.fix.startswith("extend the class of upstream's voxtral migrated into the plugin")
    assert _p43("VoxtralRealtimeGeneration", builds_on=frozenset({"voxtral"})) == []


@BOTH
def test_the_pinned_voxtral_has_no_causal_tower_and_upstreams_builds_one():
    rel = "vllm/model_executor/models/voxtral.py"
    pinned_src = (_pinned_root() / rel).read_text()
    assert "is_causal" not in pinned_src and "whisper_causal" not in pinned_src
    assert not (_pinned_root() / "vllm/model_executor/models/whisper_causal.py").exists()
    up = (UPSTREAM_SRC / rel).read_text().splitlines()
    assert 'self.is_causal = getattr(self.config, "is_causal", False)' in up[726 - 1]
    assert "WhisperEncoderCls = WhisperCausalEncoder" in "\n".join(up[726:732])
    realtime = (UPSTREAM_SRC / "vllm/model_executor/models/voxtral_realtime.py").read_text()
    assert "class VoxtralRealtimeGeneration(VoxtralForConditionalGeneration" in realtime
    assert PINNED_COUNTERPARTS["0.13.0"]["VoxtralRealtimeGeneration"]["answered_by_module"] == "voxtral"


def test_colbert_modernbert_names_the_pinned_loader_that_refuses_the_model_prefix():
    """colbert had no finding for it and its ColBERTModernBertModel failed load (e1959dc's recheck): the derived
    checkpoint is spelled `model.*`, which upstream's ModernBertModel maps and the pinned one looks up as it is."""
    (f,) = _p43("ColBERTModernBertModel")
    assert f.severity == "error" and "ModernBertModel.load_weights (vllm/model_executor/models/modernbert.py)" in f.message
    assert "KeyError: 'model.embeddings.norm.weight'" in f.message
    # upstream's modernbert in the plugin answers it (its loader maps model. and skips unknown names; its layers are
    # upstream's, where the pinned ModernBertLayer's window is one token narrower)
    assert f.fix.startswith("extend the class of upstream's modernbert migrated into the plugin")
    assert _p43("ColBERTModernBertModel", builds_on=frozenset({"modernbert"})) == []


def test_nemotron_nano_vl_names_the_pinned_radio_tower_that_builds_one_cls_token():
    archs = ("NemotronH_Nano_VL_V2", "NemotronH_Nano_Omni_Reasoning_V3", "NemotronH_Super_Omni_Reasoning_V3",
             "NemotronH_Omni_Reasoning_V3")
    found = [_p43(arch) for arch in archs]
    assert all(len(f) == 1 and f[0].severity == "error" for f in found)
    assert len({f[0].message.split(" runs through ")[1] for f in found}) == 1  # one entry, four architectures
    (f,) = found[0]
    assert "RadioConfig (vllm/transformers_utils/configs/radio.py) and RadioModel" in f.message
    assert "[8, hidden] into the pinned [1, hidden]" in f.message
    assert f.fix.startswith("extend the class of upstream's radio migrated into the plugin")
    # answered where the file builds on the plugin's copy of upstream's radio (apply brings it along)
    assert [g for g in framework_findings(archs[0], "m.py", 5, version="0.13.0", builds_on={"radio"})
            if g.rule == "P43"] == []


def test_negatives_other_architectures_other_pins_and_an_answered_counterpart():
    for arch in ("DeepseekV3ForCausalLM", "Glm4MoeForCausalLM", "Cohere2ForCausalLM", "LlamaForCausalLM",
                 "PaliGemmaForConditionalGeneration"):
        assert _p43(arch) == []
    assert _p43("Glm4MoeLiteForCausalLM", version="0.99.0") == []
    # the plugin serves upstream's Cohere2ForCausalLM (apply commandr): the language model is upstream's
    assert _p43("Cohere2VisionForConditionalGeneration", registered={"Cohere2ForCausalLM"}) == []


def test_the_mtp_draft_the_pinned_speculative_config_never_makes():
    (f,) = [f for f in framework_findings("Glm4MoeLiteMTPModel", "m.py", 2, version="0.13.0") if f.rule == "P38"]
    assert f.severity == "error"
    assert f.data == {"arch": "Glm4MoeLiteMTPModel", "method": "mtp", "target": "Glm4MoeLiteForCausalLM"}
    assert "the pinned vLLM 0.13.0's has no case for Glm4MoeLiteForCausalLM" in f.message
    assert [f for f in framework_findings("Glm4MoeMTPModel", "m.py", 2, version="0.13.0") if f.rule == "P38"] == []


def test_glm_ocr_is_answered_when_its_file_builds_on_upstreams_glm4_1v(tmp_path: Path):
    assert _p43("GlmOcrForConditionalGeneration")[0].fix.startswith(
        "extend the class of upstream's glm4_1v migrated into the plugin (import it from the plugin's models.glm4_1v)")
    assert [f for f in framework_findings("GlmOcrForConditionalGeneration", "m.py", 5, version="0.13.0",
                                          builds_on={"glm4_1v"}) if f.rule == "P43"] == []
    # the validator reads what the registered file imports: the pinned base reports, the plugin's copy answers
    plugin = tmp_path / "plugin"
    shutil.copytree(GOOD_PLUGIN, plugin)
    init = plugin / "vllm_fl" / "__init__.py"
    anchor = "def register_model():\n"
    init.write_text(init.read_text().replace(anchor, anchor + "    from vllm import ModelRegistry\n\n"
                    '    ModelRegistry.register_model("GlmOcrForConditionalGeneration", '
                    '"vllm_fl.models.glm_ocr:GlmOcrForConditionalGeneration")\n', 1))
    model = plugin / "vllm_fl" / "models" / "glm_ocr.py"

    def p43(base_module: str) -> int:
        model.write_text(f"from {base_module} import Glm4vForConditionalGeneration\n\n\n"
                         "class GlmOcrForConditionalGeneration(Glm4vForConditionalGeneration):\n    pass\n")
        return len([f for f in validate(str(plugin), all_models=True).findings if f.rule == "P43"])

    assert p43("vllm.model_executor.models.glm4_1v") == 1
    assert p43("vllm_fl.models.glm4_1v") == 0


def test_the_validator_reports_it_on_the_registration(tmp_path: Path):
    plugin = tmp_path / "plugin"
    shutil.copytree(GOOD_PLUGIN, plugin)
    init = plugin / "vllm_fl" / "__init__.py"
    text = init.read_text()
    anchor = "def register_model():\n"
    assert anchor in text and [f for f in validate(str(plugin), all_models=True).findings if f.rule == "P43"] == []

    def register(*archs: str) -> list:
        calls = "".join(f'    ModelRegistry.register_model("{a}", "vllm_fl.models.cohere2_vision:{a}")\n' for a in archs)
        init.write_text(text.replace(anchor, anchor + "    from vllm import ModelRegistry\n\n" + calls, 1))
        return [(f.file, f.severity) for f in validate(str(plugin), all_models=True).findings if f.rule == "P43"]

    assert register("Cohere2VisionForConditionalGeneration") == [("vllm_fl/__init__.py", "error")]
    assert register("Cohere2VisionForConditionalGeneration", "Cohere2ForCausalLM") == []


@pytest.mark.slow
@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm").is_dir(), reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
def test_plan_of_the_real_upstream_files(tmp_path: Path):
    from flagos_migrate.migrate.engine import Migration
    from flagos_migrate.migrate.upstream import Upstream, open_upstream
    from flagos_migrate.plugin.tree import PluginTree

    up = Upstream(open_upstream(str(UPSTREAM_SRC)))
    for model, rules in (("glm4_moe_lite", ["P43"]), ("glm4_moe_lite_mtp", ["P38", "P43"]), ("cohere2_vision", ["P43"]),
                         ("colpali", []), ("glm_ocr", []), ("colbert", []), ("colmodernvbert", []),
                         ("nano_nemotron_vl", []), ("bert_with_rope", []), ("voxtral_realtime", []),
                         ("unlimited_ocr", ["P43"]), ("deepseek_ocr", []), ("deepseek_ocr2", [])):
        plugin = PluginTree(empty_plugin(tmp_path / model))
        mig = Migration(model, up, plugin, pinned(), all_archs=True).run()
        left = mig.left()
        if model == "glm_ocr":
            glm_ocr = mig
        if model == "colmodernvbert":  # answered_by_module: upstream's modernbert comes along, its layers imported
            assert "vllm.model_executor.models.modernbert" in mig.summary()["closure"]
            assert "from vllm_fl.models.modernbert import ModernBertEmbeddings, ModernBertLayer" in (
                mig.units["vllm_fl.models.colmodernvbert"].text)
        if model == "nano_nemotron_vl":  # answered_by_module: upstream's radio comes along, its tower imported
            assert "vllm.model_executor.models.radio" in mig.summary()["closure"]
            assert "from vllm_fl.models.radio import RadioModel, calc_seq_lens" in (
                mig.units["vllm_fl.models.nano_nemotron_vl"].text)
        if model == "bert_with_rope":  # answered_by_module: upstream's bert comes along, its BertPooler imported
            assert "vllm.model_executor.models.bert" in mig.summary()["closure"]
            assert "from vllm_fl.models.bert import BertPooler" in mig.units["vllm_fl.models.bert_with_rope"].text
        if model == "voxtral_realtime":  # answered_by_module: upstream's voxtral comes along, its model extended
            assert "vllm.model_executor.models.voxtral" in mig.summary()["closure"]
            assert "from vllm_fl.models.voxtral import" in mig.units["vllm_fl.models.voxtral_realtime"].text
        if model == "colpali":  # upstream's statement became the pinned RoPE patch, then itself
            assert "patch_rope_parameters(config.vlm_config.text_config)\n" in mig.units["vllm_fl.models.colpali"].text
        assert sorted(f.rule for f in left if f.rule in ("P38", "P43")) == rules, model
        assert all(f.file == f"vllm_fl/models/{model}.py" for f in left if f.rule in ("P38", "P43"))
    # glm_ocr hands the pinned Glm4vVisionTransformer six positional arguments it does not take: upstream's glm4_1v
    # comes along, the file extends its Glm4vForConditionalGeneration (which names glm_ocr's language model), no P43
    assert "vllm.model_executor.models.glm4_1v" in glm_ocr.summary()["closure"]
    assert "from vllm_fl.models.glm4_1v import" in glm_ocr.units["vllm_fl.models.glm_ocr"].text


# -- the tables against both vLLM sources ----------------------------------------------------------------------

def _pinned_root() -> Path:
    return next(PINNED_VENV.glob("lib/python3*/site-packages"))


def _function(path: Path, name: str) -> ast.FunctionDef:
    return next(n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef) and n.name == name)


def _mla_types(fn: ast.FunctionDef) -> set[str]:
    """The model types of ``is_deepseek_mla``'s ``model_type in (...)`` test."""
    for node in ast.walk(fn):
        if (isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In)
                and isinstance(node.comparators[0], ast.Tuple) and "model_type" in ast.unparse(node.left)):
            return {e.value for e in node.comparators[0].elts}
    raise AssertionError("no model_type tuple")


@BOTH
def test_the_mla_model_types_are_upstreams_the_pinned_model_config_lacks():
    up = _mla_types(_function(UPSTREAM_SRC / "vllm/transformers_utils/model_arch_config_convertor.py", "is_deepseek_mla"))
    pin = _mla_types(_function(_pinned_root() / "vllm/config/model.py", "is_deepseek_mla"))
    assert set(MLA_TYPES["0.13.0"]) == up - pin
    # the GLM-4.7-Flash entries: their model types are among them and upstream's decoder layer reads use_mla
    entries = PINNED_COUNTERPARTS["0.13.0"]
    for arch, model_type in (("Glm4MoeLiteForCausalLM", "glm4_moe_lite"), ("Glm4MoeLiteMTPModel", "glm4_moe_lite_mtp")):
        assert entries[arch]["pinned"].startswith("ModelConfig.is_deepseek_mla") and model_type in MLA_TYPES["0.13.0"]
    layer = (UPSTREAM_SRC / "vllm/model_executor/models/glm4_moe_lite.py").read_text()
    assert "if model_config.use_mla:\n            attn_cls = Glm4MoeLiteMLAAttention" in layer
    assert "from .glm4_moe_lite import" in (UPSTREAM_SRC / "vllm/model_executor/models/glm4_moe_lite_mtp.py").read_text()


def _window_values(path: Path) -> list[str]:
    """What ``self.sliding_window`` is set to from the config in commandr.py's attention."""
    return [ast.unparse(n.value) for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Assign)
            and [ast.unparse(t) for t in n.targets] == ["self.sliding_window"] and "config" in ast.unparse(n.value)]


@BOTH
def test_the_cohere2_window_is_one_token_narrower_on_the_pinned_vllm():
    rel = Path("vllm/model_executor/models/commandr.py")
    assert _window_values(_pinned_root() / rel) == ["config.sliding_window"]
    assert _window_values(UPSTREAM_SRC / rel) == ["config.sliding_window + 1"]
    # cohere2_vision builds its language model by architecture name, which the pinned registry serves from commandr
    vision = (UPSTREAM_SRC / "vllm/model_executor/models/cohere2_vision.py").read_text()
    assert "architectures=config.text_config.architectures" in vision
    registry = (_pinned_root() / "vllm/model_executor/models/registry.py").read_text()
    assert '"Cohere2ForCausalLM": ("commandr", "CohereForCausalLM")' in registry


@BOTH
def test_the_unconverted_mtp_targets_are_upstreams_override_cases_the_pinned_one_lacks():
    rel = Path("vllm/config/speculative.py")
    up, pin = (root / rel for root in (UPSTREAM_SRC, _pinned_root()))
    for arch, entry in SPECULATIVE_UNCONVERTED["0.13.0"].items():
        case = f"hf_config.architectures[0] == '{entry['target']}'"
        body = ast.unparse(_function(up, "hf_config_override"))
        assert f"if {case}:" in body and f"'{entry['model_type']}'" in body and f"'{arch}'" in body
        assert entry["target"] not in ast.unparse(_function(pin, "hf_config_override"))
        assert entry["model_type"] not in pin.read_text()  # nor one of its MTPModelTypes


def _mapper_prefixes(path: Path) -> dict[str, str]:
    """ModernBertModel's ``hf_to_vllm_mapper`` prefixes and whether its ``load_weights`` skips an unknown name."""
    cls = next(n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef) and n.name == "ModernBertModel")
    mapper = next(n.value for n in cls.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "hf_to_vllm_mapper")
    return ast.literal_eval(mapper.keywords[0].value), "if name not in params_dict:\n                continue" in ast.unparse(cls)


@BOTH
def test_the_pinned_modernbert_loader_maps_no_model_prefix_and_skips_no_unknown_name():
    rel = Path("vllm/model_executor/models/modernbert.py")
    assert _mapper_prefixes(_pinned_root() / rel) == ({"layers.": "encoder_layer.layers."}, False)
    assert _mapper_prefixes(UPSTREAM_SRC / rel) == (
        {"model.layers.": "encoder_layer.layers.", "layers.": "encoder_layer.layers.", "model.": ""}, True)
    colbert = (UPSTREAM_SRC / "vllm/model_executor/models/colbert.py").read_text()
    assert "from .modernbert import ModernBertModel" in colbert and "self.model.load_weights(other_weights)" in colbert


def _window_and_rope_dtype(path: Path) -> tuple[list[str], list[str]]:
    """ModernBertAttention's sliding window values and the dtype it builds its rotary embedding with."""
    cls = next(n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)
               and n.name == "ModernBertAttention")
    windows = [ast.unparse(n.value) for n in ast.walk(cls) if isinstance(n, (ast.Assign, ast.AnnAssign))
               and ast.unparse(n.targets[0] if isinstance(n, ast.Assign) else n.target) == "sliding_window"
               and n.value is not None and "config" in ast.unparse(n.value)]
    dtypes = [ast.unparse(k.value) for n in ast.walk(cls) if isinstance(n, ast.Call) and ast.unparse(n.func) == "get_rope"
              for k in n.keywords if k.arg == "dtype"]
    return windows, dtypes


@BOTH
def test_the_pinned_modernbert_layer_has_a_narrower_window_and_a_float16_rope_cache():
    rel = Path("vllm/model_executor/models/modernbert.py")
    assert _window_and_rope_dtype(_pinned_root() / rel) == (["config.local_attention // 2"] * 2, ["torch.float16"])
    assert _window_and_rope_dtype(UPSTREAM_SRC / rel) == (["config.sliding_window + 1"], ["dtype"])
    vbert = (UPSTREAM_SRC / "vllm/model_executor/models/colmodernvbert.py").read_text()
    assert "from .modernbert import ModernBertEmbeddings, ModernBertLayer" in vbert
    entries = PINNED_COUNTERPARTS["0.13.0"]
    # colbert's ColBERTModernBertModel builds the pinned ModernBertModel whole (its layers and its loader)
    colbert = (UPSTREAM_SRC / "vllm/model_executor/models/colbert.py").read_text()
    assert "from .modernbert import ModernBertModel" in colbert
    assert {a for a, e in entries.items() if e.get("answered_by_module") == "modernbert"} == {
        "ColModernVBertForRetrieval", "ModernVBertModel", "ColBERTModernBertModel"}


@BOTH
def test_the_pinned_bert_pooler_takes_the_hf_config_and_upstreams_the_model_config():
    """GteNewForSequenceClassification's pooler: `BertPooler(vllm_config.model_config)` in upstream's bert_with_rope;
    the pinned BertPooler reads `config.hidden_size` from its one argument, upstream's `model_config.hf_config`."""
    rel = "vllm/model_executor/models/bert.py"

    def init(root: Path) -> str:
        cls = next(n for n in ast.walk(ast.parse((root / rel).read_text()))
                   if isinstance(n, ast.ClassDef) and n.name == "BertPooler")
        return ast.unparse(next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"))

    pinned_init, upstream_init = init(_pinned_root()), init(UPSTREAM_SRC)
    assert "def __init__(self, config: BertConfig)" in pinned_init and "config.hidden_size" in pinned_init
    assert "def __init__(self, model_config: ModelConfig)" in upstream_init
    assert "config: BertConfig = model_config.hf_config" in upstream_init
    assert "BertPooler(vllm_config.model_config)" in (UPSTREAM_SRC / "vllm/model_executor/models/bert_with_rope.py").read_text()
    assert PINNED_COUNTERPARTS["0.13.0"]["GteNewForSequenceClassification"]["answered_by_module"] == "bert"


COLPALI_CONFIGS = """
from transformers import ColPaliConfig
saved = ColPaliConfig().to_dict()
loaded = ColPaliConfig.from_dict(saved)
print("text_config" in saved, loaded.text_config is loaded.vlm_config.text_config,
      loaded.get_text_config() is loaded.text_config, sorted(getattr(ColPaliConfig, "sub_configs", {})))
"""


@BOTH
def test_the_pinned_colpali_config_keeps_a_text_config_the_pinned_rope_patch_reaches_and_the_model_does_not_read():
    import subprocess

    from flagos_migrate.migrate.tf5_configs import open_transformers5

    # 4.57.6: a saved config holds text_config; loaded back it is another object than vlm_config's, and it is the one
    # get_text_config gives (sub_configs: it and vlm_config, not vlm_config's own text_config)
    proc = subprocess.run([str(PINNED_VENV / "bin" / "python"), "-c", COLPALI_CONFIGS], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "False", "True", "['text_config',", "'vlm_config']"]
    # the pinned get_config patches RoPE on get_text_config() and on each sub-config only
    body = ast.unparse(_function(_pinned_root() / "vllm/transformers_utils/config.py", "get_config"))
    assert "patch_rope_parameters(config.get_text_config())" in body and "patch_rope_parameters(getattr(config, sub_config))" in body
    # upstream builds the language model from vlm_config (the pinned PaliGemma's Gemma reads config.rope_parameters)
    assert "with_hf_config(config.vlm_config)" in (UPSTREAM_SRC / "vllm/model_executor/models/colpali.py").read_text()
    gemma = (_pinned_root() / "vllm/model_executor/models/gemma.py").read_text()
    assert "config.rope_parameters" in gemma
    # transformers 5's ColPaliConfig: no text_config field, its text config is vlm_config's
    tf5 = open_transformers5()
    if tf5 is not None:
        text = tf5.read_text("transformers/models/colpali/configuration_colpali.py")
        assert "return self.vlm_config.get_text_config(" in text and "text_config:" not in text


REFERENCE_VENV = Path(os.environ.get("MMF_REFERENCE_VENV", Path.home() / ".cache/mmf/venv-vllm033"))
# a saved ColPaliConfig whose language model has its own RoPE base: the config the language model is built from
# (vlm_config's text config), after the table's code on the pinned stack / as transformers 5 builds it
COLPALI_ROPE = """
import json
from transformers import ColPaliConfig, GemmaConfig, PaliGemmaConfig
saved = ColPaliConfig(vlm_config=PaliGemmaConfig(text_config=GemmaConfig(rope_theta=5000.0).to_dict())).to_dict()
config = ColPaliConfig.from_dict(saved)
text = config.vlm_config.text_config
if {pinned}:
    from vllm.transformers_utils.config import patch_rope_parameters
    patch_rope_parameters(text)
print(json.dumps(dict(sorted(text.rope_parameters.items()))))
"""


@BOTH
@pytest.mark.skipif(not (REFERENCE_VENV / "bin" / "python").is_file(), reason="needs the upstream venv (MMF_REFERENCE_VENV)")
def test_the_pinned_rope_patch_gives_the_colpali_language_config_transformers_5s_rope():
    """P43 colpali's answer: the pinned get_config's own patch_rope_parameters, on the 4.57.6 GemmaConfig the model
    builds from, gives the rope_parameters transformers 5's GemmaConfig holds for the same saved config."""
    import json
    import subprocess

    def rope(python: Path, pinned: bool) -> dict:
        proc = subprocess.run([str(python), "-c", COLPALI_ROPE.format(pinned=pinned)], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    pinned, upstream = rope(PINNED_VENV / "bin" / "python", True), rope(REFERENCE_VENV / "bin" / "python", False)
    assert pinned == upstream == {"rope_theta": 5000.0, "rope_type": "default"}
    # the table's code calls what the pinned get_config calls on the configs it reaches
    fix = PINNED_COUNTERPARTS["0.13.0"]["ColPaliForRetrieval"]["answered_by_statement"]
    assert ["vllm.transformers_utils.config", "patch_rope_parameters"] in fix["imports"]
    assert "patch_rope_parameters(config.vlm_config.text_config)" in fix["pinned"]


# a Qwen3Config as moss_audio's MossAudioConfig makes it from config.json's language_config, then the pinned decoder
# layer's own default: the rope_parameters the language model is built with
MOSS_ROPE = """
import json
from transformers import Qwen3Config
from vllm.transformers_utils.config import set_default_rope_theta
out = []
for saved in ({{"rope_theta": 5000.0}}, {{}}):
    config = Qwen3Config(**saved)
    if {pinned}:
        from vllm.transformers_utils.config import patch_rope_parameters
        patch_rope_parameters(config)
    set_default_rope_theta(config, default_theta=1000000)
    out.append(dict(sorted(config.rope_parameters.items())))
print(json.dumps(out))
"""


@BOTH
@pytest.mark.skipif(not (REFERENCE_VENV / "bin" / "python").is_file(), reason="needs the upstream venv (MMF_REFERENCE_VENV)")
def test_the_pinned_rope_patch_gives_the_moss_audio_language_config_transformers_5s_rope():
    """P43 moss_audio's answer on the real classes: without it the pinned stack builds RoPE base 1e6 for any
    config.json; with it, what transformers 5's Qwen3Config holds (its 10000.0 default when config.json has none)."""
    import json
    import subprocess

    def rope(python: Path, pinned: bool) -> list:
        proc = subprocess.run([str(python), "-c", MOSS_ROPE.format(pinned=pinned)], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    upstream = rope(REFERENCE_VENV / "bin" / "python", False)
    assert upstream == [{"rope_theta": 5000.0, "rope_type": "default"}, {"rope_theta": 10000.0, "rope_type": "default"}]
    assert rope(PINNED_VENV / "bin" / "python", True) == upstream
    assert rope(PINNED_VENV / "bin" / "python", False) == [{"rope_theta": 1000000, "rope_type": "default"}] * 2
    fix = PINNED_COUNTERPARTS["0.13.0"]["MossAudioModel"]["answered_by_statement"]
    assert "patch_rope_parameters(language_config)" in fix["pinned"]


def _language_model_types(path: Path) -> set[str]:
    """The model types Glm4vForConditionalGeneration.__init__ maps to Glm4ForCausalLM."""
    init = next(f for c in ast.walk(ast.parse(path.read_text())) if isinstance(c, ast.ClassDef)
                and c.name == "Glm4vForConditionalGeneration" for f in c.body
                if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    for node in ast.walk(init):
        if isinstance(node, ast.If) and "Glm4ForCausalLM" in ast.unparse(node.body[0]):
            test = node.test
            values = test.comparators[0]
            return {e.value for e in values.elts} if isinstance(values, ast.Tuple) else {values.value}
    raise AssertionError("no Glm4ForCausalLM case")


@BOTH
def test_the_pinned_glm4v_base_maps_no_language_model_for_glm_ocr():
    rel = Path("vllm/model_executor/models/glm4_1v.py")
    assert _language_model_types(_pinned_root() / rel) == {"glm4v"}
    assert {"glm4v", "glm_ocr"} <= _language_model_types(UPSTREAM_SRC / rel)
    ocr = ast.parse((UPSTREAM_SRC / "vllm/model_executor/models/glm_ocr.py").read_text())
    cls = next(n for n in ocr.body if isinstance(n, ast.ClassDef) and n.name == "GlmOcrForConditionalGeneration")
    assert [ast.unparse(b) for b in cls.bases] == ["Glm4vForConditionalGeneration"]


@BOTH
def test_the_pinned_radio_tower_takes_reg_tokens_and_upstreams_a_cls_token_per_teacher():
    rel = Path("vllm/model_executor/models/radio.py")
    pinned_model, upstream_model = (_pinned_root() / rel).read_text(), (UPSTREAM_SRC / rel).read_text()
    assert "register_multiple=config.reg_tokens" in pinned_model and "cls_token_per_teacher" not in pinned_model
    assert "num_cls_tokens=len(unique_teachers) if config.cls_token_per_teacher else 1" in upstream_model
    assert "register_multiple=config.register_multiple" in upstream_model
    cfg = Path("vllm/transformers_utils/configs/radio.py")
    pinned_cfg, upstream_cfg = (_pinned_root() / cfg).read_text(), (UPSTREAM_SRC / cfg).read_text()
    assert "reg_tokens: int | None = None" in pinned_cfg
    assert not any(k in pinned_cfg for k in ("register_multiple", "teachers", "cls_token_per_teacher"))
    assert all(k in upstream_cfg for k in ("register_multiple: int | None = None", "cls_token_per_teacher: bool = False"))
    # the model file builds the tower from these two modules, passing the checkpoint's RADIO args
    model = (UPSTREAM_SRC / "vllm/model_executor/models/nano_nemotron_vl.py").read_text()
    assert "from vllm.model_executor.models.radio import RadioModel" in model
    assert "from vllm.transformers_utils.configs.radio import RadioConfig" in model
    assert "**hf_config_vision.args," in model and "return RadioModel(config=radio_config)" in model


# -- P43 rope_patch: a config the model file builds itself -------------------------------------------------------

BUILT = """\
from torch import nn
from transformers import Qwen3Config, SiglipVisionConfig
from transformers.models.qwen2.modeling_qwen2 import Qwen2Model


class DemoConfig:
    def __init__(self, language_config=None):
        self.language_config = Qwen3Config(**(language_config or {}))


class Demo(nn.Module):
    def __init__(self, config):
        super().__init__()
        local = Qwen3Config(hidden_size=64, rope_theta=config.rope_theta)
        self.local = Qwen2Model(local)
        vision = SiglipVisionConfig(**config.vision_config)
        patched = Qwen3Config.from_dict(config.text_config)
        patched.rope_parameters = {"rope_type": "default", "rope_theta": config.rope_theta}
        self.text = build(patched)
        loose = Qwen3Config.from_dict(config.text_config)
        self.other = build(loose, vision)
"""


def _built_findings(text: str, module: str = "demo"):
    from analysis_helpers import analyze, only

    return [f for f in only(analyze(text, module=f"vllm_fl.models.{module}",
                                    origin=f"vllm.model_executor.models.{module}"), "P43")
            if "builds a transformers" in f.message]


def test_a_rope_config_the_model_file_builds_is_reported_where_the_pinned_get_config_never_patches_it():
    """moss_audio's MossAudioConfig built its language model's Qwen3Config itself: on 4.57.6 it had rope_theta and no
    rope_parameters, the pinned get_config never saw it, and the pinned Qwen3 layer took RoPE base 1e6 (its own P43
    entry fixed that model). Now any such construction is reported: on an attribute (used where the file does not
    say) and on a name handed to vLLM code; not when handed to a transformers class only (that version's own
    modeling: mimo_audio's Qwen2Model), not when the file sets its rope_parameters (cosmos3_edge), not for a class
    without RoPE fields (SiglipVisionConfig)."""
    found = _built_findings(BUILT)
    assert [(f.line, f.severity) for f in found] == [(8, "warning"), (20, "warning")]
    f = found[0]
    assert f.message.startswith("`Qwen3Config(...)` builds a transformers 4.57.6 config "
                                "(transformers.models.qwen3.configuration_qwen3.Qwen3Config) in the model file: it keeps "
                                "rope_theta / rope_scaling and has no rope_parameters")
    assert "patch_rope_parameters, vllm/transformers_utils/config.py:306" in f.message
    assert found[1].message.startswith("`Qwen3Config.from_dict(...)` builds")
    assert f.fix.startswith("call patch_rope_parameters(<this config>)")
    # the module whose answered_by_statement entry patches the config it builds is answered there
    assert _built_findings(BUILT, "moss_audio") == []
    # a config module's class is what get_config loads (and patches, its text config too): not a model file
    from analysis_helpers import analyze
    assert [f for f in analyze(BUILT, module="vllm_fl.configs.demo") if "builds a transformers" in f.message] == []


@BOTH
def test_the_rope_patch_table_names_the_pinned_get_configs_own_patch():
    from flagos_migrate.catalog.tables import ROPE_PATCH

    where = ROPE_PATCH["0.13.0"]["where"]
    lines = (_pinned_root() / "vllm/transformers_utils/config.py").read_text().splitlines()
    assert where.startswith("vllm/transformers_utils/config.py:306")
    assert lines[305].startswith("def patch_rope_parameters(")
    for at in (708, 709, 714):
        assert "patch_rope_parameters(" in lines[at - 1], at
    get_config = next(i for i, ln in enumerate(lines) if ln.startswith("def get_config("))
    assert get_config < 707 < next(i for i, ln in enumerate(lines) if i > get_config and ln.startswith("def "))


@pytest.mark.skipif(not UPSTREAM_SRC.is_dir(), reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
def test_the_upstream_corpus_has_no_rope_config_built_in_a_file_that_no_finding_covers():
    """Every upstream model file: the one construction of a RoPE config that reaches vLLM code is moss_audio's
    Qwen3Config (line 283), answered by its own P43 entry (found when the file is not moss_audio); mimo_audio's
    Qwen2Config goes to transformers' Qwen2Model; cosmos3_edge's NemotronHConfig is transformers 5's (the plugin's
    config bridge on the pinned stack, which keeps rope_parameters) and the file sets rope_parameters itself."""
    models = UPSTREAM_SRC / "vllm/model_executor/models"
    hits = {p.stem: [f.line for f in _built_findings(p.read_text(), p.stem)] for p in sorted(models.glob("*.py"))}
    assert {k: v for k, v in hits.items() if v} == {}
    assert [f.line for f in _built_findings((models / "moss_audio.py").read_text(), "moss_audio_copy")] == [283]
    assert _built_findings((models / "mimo_audio.py").read_text(), "mimo_audio_copy") == []
def test_deepseek_vl2_names_the_pinned_processor_loader_that_knows_no_vllm_processor():
    """After its processor ports, deepseek_vl2's image forward failed "Failed to load the processor": upstream's
    get_hf_processor() without a class finds vLLM's own DeepseekVLV2Processor by the checkpoint's processor_class,
    the pinned get_processor tries AutoProcessor only. Reported on the registration, with the pinned line."""
    (f,) = _p43("DeepseekVLV2ForCausalLM")
    assert f.severity == "error"
    assert "get_processor (vllm/transformers_utils/processor.py:106)" in f.message
    assert "get_processor_cls_name_from_config" in f.message and "Failed to load the processor" in f.message
    assert _p43("DeepseekOCRForCausalLM") == []  # its processor class is passed by upstream's file too


def test_deepseek_ocr2_names_the_pinned_processor_that_swallows_its_v2_strategy():
    """The pinned DeepseekOCRProcessor takes no `strategy` and counts v1's image tokens (273 for a small image) where
    OCR-2's prompt updates count v2's (257): "found 0 prompt placeholders". Reported unless upstream's processor
    module comes along (apply brings it for this architecture)."""
    (f,) = _p43("DeepseekOCR2ForCausalLM")
    assert f.severity == "error" and "swallows" in f.message and "bring upstream's processor module" in f.fix
    assert _p43("DeepseekOCR2ForCausalLM", builds_on={"processors.deepseek_ocr"}) == []
    assert _p43("DeepseekOCR2ForCausalLM", builds_on={"deepseek_ocr"}) != []  # the model module is another one


def test_unlimited_ocr_names_the_pinned_image_parser_it_inherits():
    """Unlimited-OCR extends DeepseekOCRForCausalLM, which its migrated file imports from the pinned deepseek_ocr: the
    pinned _parse_and_validate_image_input binds the global view's side to the config's image_size and drops
    pixel_values summing to 0, upstream's binds the tensor's side and drops only None (uocr17). A warning: at the
    released geometry both compute the same; answered when the file builds on the plugin's copy of upstream's
    deepseek_ocr. DeepSeek-OCR (upstream's own module) and DeepSeek-OCR-2 (its own method) have no such entry."""
    (f,) = _p43("UnlimitedOCRForCausalLM")
    assert f.severity == "warning"
    assert ("DeepseekOCRForCausalLM._parse_and_validate_image_input (vllm/model_executor/models/deepseek_ocr.py:428)"
            in f.message)
    assert "`self.vision_config.image_size` (:439), upstream's to `pixel_values.shape[-1]` (deepseek_ocr.py:465)" in f.message
    assert "`torch.sum(pixel_values).item() == 0` (:435)" in f.message
    assert 'raises ValueError ("data dim[2] expected 1024, got 640")' in f.message
    assert f.fix.startswith("keep mm_processor_kwargs base_size at the config's vision_config.image_size")
    assert "upstream's _parse_and_validate_image_input (deepseek_ocr.py:449)" in f.fix
    assert _p43("UnlimitedOCRForCausalLM", builds_on=frozenset({"deepseek_ocr"})) == []
    assert _p43("DeepseekOCRForCausalLM") == []
    assert [g for g in _p43("DeepseekOCR2ForCausalLM") if "_parse_and_validate_image_input" in g.message] == []


def _method_lines(path: Path, cls: str, name: str) -> tuple[int, list[str]]:
    """The first line of ``cls.name`` and the file's lines."""
    tree = ast.parse(path.read_text())
    node = next(f for c in tree.body if isinstance(c, ast.ClassDef) and c.name == cls for f in c.body
                if isinstance(f, ast.FunctionDef) and f.name == name)
    return node.lineno, path.read_text().splitlines()


@BOTH
def test_the_pinned_deepseek_ocr_image_parser_binds_the_config_side_and_drops_a_zero_sum():
    """The line numbers the UnlimitedOCRForCausalLM entry cites, on both sources; and who inherits the method."""
    rel = Path("vllm/model_executor/models/deepseek_ocr.py")
    at, pin = _method_lines(_pinned_root() / rel, "DeepseekOCRForCausalLM", "_parse_and_validate_image_input")
    assert at == 428
    assert pin[435 - 1].strip() == "if pixel_values is None or torch.sum(pixel_values).item() == 0:"
    assert pin[439 - 1].strip() == "base_size = self.vision_config.image_size"
    at, up = _method_lines(UPSTREAM_SRC / rel, "DeepseekOCRForCausalLM", "_parse_and_validate_image_input")
    assert at == 449
    assert up[456 - 1].strip() == "if pixel_values is None:"
    assert up[465 - 1].strip() == "base_size = pixel_values.shape[-1]"
    assert "torch.sum(pixel_values)" not in "\n".join(up[449 - 1:480])
    # unlimited_ocr extends it from the sibling module and does not define it
    models = UPSTREAM_SRC / "vllm/model_executor/models"
    unlimited = ast.parse((models / "unlimited_ocr.py").read_text())
    cls = next(n for n in unlimited.body if isinstance(n, ast.ClassDef) and n.name == "UnlimitedOCRForCausalLM")
    assert [ast.unparse(b) for b in cls.bases] == ["DeepseekOCRForCausalLM"]
    assert "_parse_and_validate_image_input" not in ast.unparse(cls)
    assert any(isinstance(n, ast.ImportFrom) and n.module == "deepseek_ocr" and n.level == 1
               and "DeepseekOCRForCausalLM" in [a.name for a in n.names] for n in unlimited.body)
    # DeepSeek-OCR-2 defines its own, binding the config's side as the pinned one does (no difference to report)
    at, ocr2 = _method_lines(models / "deepseek_ocr2.py", "DeepseekOCR2ForCausalLM", "_parse_and_validate_image_input")
    body = "\n".join(ocr2[at - 1:at + 20])
    assert "base_size = self.vision_config.image_size" in body and "torch.sum(pixel_values)" not in body
    assert not (_pinned_root() / "vllm/model_executor/models/deepseek_ocr2.py").exists()


# the method of each vLLM's DeepseekOCRForCausalLM, on a global view of the config's side, of 640, and one summing to 0
DEEPSEEK_OCR_PARSE = """
import types, torch
from vllm.model_executor.models.deepseek_ocr import DeepseekOCRForCausalLM
me = types.SimpleNamespace(vision_config=types.SimpleNamespace(image_size=1024))
def run(pixel_values):
    try:
        r = DeepseekOCRForCausalLM._parse_and_validate_image_input(
            me, pixel_values=pixel_values, images_crop=torch.zeros(0, 3, 640, 640),
            images_spatial_crop=torch.tensor([[1, 1]]))
        return "none" if r is None else "x".join(map(str, r["data"].shape))
    except ValueError as e:
        return "ValueError: " + str(e).split(". ")[0]
halves = torch.ones(1, 3, 1024, 1024)
halves[..., :512] = -1
print(repr([run(torch.ones(1, 3, 1024, 1024)), run(torch.ones(1, 3, 640, 640)), run(halves)]))
"""


@BOTH
@pytest.mark.skipif(not (REFERENCE_VENV / "bin" / "python").is_file(), reason="needs the upstream venv (MMF_REFERENCE_VENV)")
def test_the_pinned_deepseek_ocr_image_parser_refuses_another_side_and_drops_a_zero_sum_upstreams_does_not():
    import subprocess

    def parse(python: Path) -> list:
        proc = subprocess.run([str(python), "-c", DEEPSEEK_OCR_PARSE], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        return ast.literal_eval(proc.stdout.strip().splitlines()[-1])

    assert parse(PINNED_VENV / "bin" / "python") == ["1x3x1024x1024", "ValueError: data dim[2] expected 1024, got 640",
                                                     "none"]
    assert parse(REFERENCE_VENV / "bin" / "python") == ["1x3x1024x1024", "1x3x640x640", "1x3x1024x1024"]
