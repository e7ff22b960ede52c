"""P35: class attributes a pinned class inherits as None (an interface's default) where upstream's
class defines them (glm4v's ``ChatGLMModel.hf_to_vllm_mapper | WeightsMapper(...)``): the detector,
its negatives, the table against the pinned source, and the migration of the real glm4v."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
from analysis_helpers import analyze, empty_plugin, only, pinned
from flagos_migrate.catalog.tables import NONE_DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_SRC = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0"))
PINNED_VENV = Path(os.environ.get("MMF_PINNED_VENV", Path.home() / ".cache/mmf/venv-vllm013"))

GLM4V_BODY = '''
from vllm.model_executor.models.chatglm import ChatGLMModel
from vllm.model_executor.models.utils import WeightsMapper


class GLM4VModel(ChatGLMModel):
    hf_to_vllm_mapper = ChatGLMModel.hf_to_vllm_mapper | WeightsMapper(
        orig_to_new_substr={"vision.": "visual."}
    )
'''


def test_a_read_of_the_pinned_none_mapper_is_reported_with_its_definer():
    found = only(analyze(GLM4V_BODY), "P35")
    assert [(f.line, f.col, f.message) for f in found] == [(
        7, 24, "`ChatGLMModel.hf_to_vllm_mapper` is None on the pinned vLLM: ChatGLMModel "
        "(vllm.model_executor.models.chatglm) does not define `hf_to_vllm_mapper` and inherits the default "
        "None of vllm.model_executor.models.interfaces.SupportsQuant; upstream's class defines it (used while "
        "the module is imported: the import fails)")]
    assert found[0].severity == "error"
    assert found[0].data == {"class": "vllm.model_executor.models.chatglm.ChatGLMModel", "attr": "hf_to_vllm_mapper",
                             "definer": "vllm.model_executor.models.interfaces.SupportsQuant", "import_time": True}
    # it is no P9 miss: the attribute exists on the pinned class
    assert only(analyze(GLM4V_BODY), "P9") == []


def test_a_local_subclass_is_answered_by_its_pinned_base():
    code = '''
    from vllm.model_executor.models.chatglm import ChatGLMModel


    class Tower(ChatGLMModel):
        pass


    class Outer(Tower):
        hf_to_vllm_mapper = Tower.hf_to_vllm_mapper
    '''
    found = only(analyze(code), "P35")
    assert [(f.line, f.data["class"], f.data["definer"]) for f in found] == [
        (10, "vllm.model_executor.models.chatglm.ChatGLMModel", "vllm.model_executor.models.interfaces.SupportsQuant")]
    assert found[0].message.endswith("upstream's class defines it (read while the module is imported)")


def test_negatives_own_value_the_interface_itself_and_a_local_definition():
    code = '''
    from vllm.model_executor.models.chatglm import ChatGLMBaseModel, ChatGLMModel
    from vllm.model_executor.models.interfaces import SupportsQuant
    from vllm.model_executor.models.llama import LlamaForCausalLM


    class Mine(ChatGLMModel):
        hf_to_vllm_mapper = None


    class Outer(Mine):
        packed = LlamaForCausalLM.packed_modules_mapping   # the pinned class defines its own
        base = ChatGLMBaseModel.hf_to_vllm_mapper          # so does the pinned ChatGLMBaseModel
        declared = SupportsQuant.hf_to_vllm_mapper         # the interface's own None is what is asked for
        mine = Mine.hf_to_vllm_mapper                      # the local class assigns it
    '''
    assert only(analyze(code), "P35") == []


def test_a_read_inside_a_method_is_reported_without_the_import_claim():
    code = '''
    from vllm.model_executor.models.chatglm import ChatGLMModel


    def mapper():
        return ChatGLMModel.hf_to_vllm_mapper
    '''
    found = only(analyze(code), "P35")
    assert len(found) == 1 and found[0].data["import_time"] is False
    assert found[0].message.endswith("upstream's class defines it")


COHERE_EAGLE = '''
from vllm.model_executor.models.commandr import CohereForCausalLM
from vllm.model_executor.models.utils import WeightsMapper


class EagleCohereForCausalLM(CohereForCausalLM):
    def __init__(self, config):
        if config.tie_word_embeddings:
            self.hf_to_vllm_mapper = self.hf_to_vllm_mapper | WeightsMapper(
                orig_to_new_prefix={"model.embed_tokens.": None}
            )

    def load_weights(self, weights):
        return self.load(weights, mapper=self.hf_to_vllm_mapper)
'''


def test_self_read_as_an_operand_in_a_method_is_reported():
    """cohere_eagle: ``self.hf_to_vllm_mapper | WeightsMapper(...)`` in __init__; the pinned
    CohereForCausalLM inherits SupportsQuant's None, so building the model fails (found at runtime)."""
    found = only(analyze(COHERE_EAGLE), "P35")
    assert [(f.line, f.col, f.message) for f in found] == [(
        9, 37, "`self.hf_to_vllm_mapper` is None on the pinned vLLM: CohereForCausalLM "
        "(vllm.model_executor.models.commandr) does not define `hf_to_vllm_mapper` and inherits the default "
        "None of vllm.model_executor.models.interfaces.SupportsQuant; upstream's class defines it")]
    assert found[0].severity == "error" and found[0].data["import_time"] is False


def test_self_reads_that_do_not_fail_are_not_reported():
    own_value = COHERE_EAGLE.replace("    def __init__(self, config):",
                                     "    hf_to_vllm_mapper = WeightsMapper()\n\n    def __init__(self, config):")
    assigned_first = COHERE_EAGLE.replace("        if config.tie_word_embeddings:",
                                          "        self.hf_to_vllm_mapper = WeightsMapper()\n"
                                          "        if config.tie_word_embeddings:")
    # the load_weights read passes the value on (None is a valid "no mapper"): only operands are reported
    for code in (own_value, assigned_first):
        assert only(analyze(code), "P35") == []


@pytest.mark.skipif(not (PINNED_VENV / "lib").is_dir(), reason="needs the pinned venv's source (MMF_PINNED_VENV)")
@pytest.mark.parametrize("entry", sorted(NONE_DEFAULTS), ids=lambda e: f"{e[0].rsplit('.', 1)[1]}.{e[1]}")
def test_each_none_default_is_declared_none_in_the_pinned_source(entry):
    qualname, attr = entry
    module, cls = qualname.rsplit(".", 1)
    root = next(PINNED_VENV.glob("lib/python3*/site-packages"))
    tree = ast.parse((root / (module.replace(".", "/") + ".py")).read_text())
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    values = [s.value for s in body if isinstance(s, (ast.Assign, ast.AnnAssign))
              and attr in {t.id for t in (s.targets if isinstance(s, ast.Assign) else [s.target])
                           if isinstance(t, ast.Name)}]
    assert len(values) == 1 and isinstance(values[0], ast.Constant) and values[0].value is None
    assert pinned().resolve(module, cls) is not None


@pytest.mark.slow
@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm").is_dir(), reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
def test_glm4v_takes_upstreams_chatglm_whose_class_defines_the_mapper(tmp_path):
    """The real glm4v: the upstream text has the one P35 read (line 380), the migration takes upstream's
    chatglm along (the pinned sibling would import but its ChatGLMModel inherits None) and nothing of
    P35 is left, in apply or in the validator's analysis of the written file."""
    from flagos_migrate.migrate.engine import Migration
    from flagos_migrate.migrate.upstream import Upstream, open_upstream
    from flagos_migrate.plugin.tree import PluginTree

    text = (UPSTREAM_SRC / "vllm/model_executor/models/glm4v.py").read_text()
    absolute = re.sub(r"^from \.(\w)", r"from vllm.model_executor.models.\1", text, flags=re.M)
    before = only(analyze(absolute, "vllm_fl.models.glm4v", plugin=False), "P35")
    assert [(f.line, f.data["attr"]) for f in before] == [(380, "hf_to_vllm_mapper")]
    plugin = empty_plugin(tmp_path / "plugin")
    m = Migration("glm4v", Upstream(open_upstream(str(UPSTREAM_SRC))), PluginTree(plugin), pinned()).run()
    assert m.redirects["vllm.model_executor.models.chatglm"] == "vllm_fl.models.chatglm"
    assert "vllm_fl.models.chatglm" in m.units
    assert "from vllm_fl.models.chatglm import ChatGLMBaseModel, ChatGLMModel, GLMTransformer" in m.model_unit.text
    # upstream's text imports relatively (P1), so the read resolves only once re-pointed: to the copy
    assert [f for f in m.left() if f.rule == "P35"] == []


def test_self_operand_reads_name_the_sibling_the_migration_takes_along():
    """The engine takes upstream's sibling along for a ``self.attr |`` operand too (not only for class-body
    reads); the slice check (``missing_class_attributes``: import time only) does not see method bodies."""
    from flagos_migrate.migrate.vendor import import_time_class_reads, missing_class_attributes

    origin = "vllm.model_executor.models.cohere_eagle"
    want = [("vllm.model_executor.models.commandr", "CohereForCausalLM", "hf_to_vllm_mapper")]
    assert import_time_class_reads(COHERE_EAGLE, origin, pinned(), origin, self_operands=True) == want
    assert import_time_class_reads(COHERE_EAGLE, origin, pinned(), origin) == []
    assert missing_class_attributes(COHERE_EAGLE, origin, pinned(), origin) == []
    assigned_first = COHERE_EAGLE.replace("        if config.tie_word_embeddings:",
                                          "        self.hf_to_vllm_mapper = WeightsMapper()\n"
                                          "        if config.tie_word_embeddings:")
    assert import_time_class_reads(assigned_first, origin, pinned(), origin, self_operands=True) == []


@pytest.mark.slow
@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm").is_dir(), reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
def test_cohere_eagle_takes_upstreams_commandr_whose_class_defines_the_mapper(tmp_path):
    """The real cohere_eagle: ``self.hf_to_vllm_mapper | WeightsMapper(...)`` in __init__ failed construct
    on the pinned CohereForCausalLM (SupportsQuant's None; its load_weights is AutoWeightsLoader without a
    mapper, so the pinned class cannot stand in). Upstream's commandr comes along, the eagle subclasses its
    CohereForCausalLM (stacked q/k/v and gate/up in the mapper, through the P22 back-port) and P35 is gone."""
    from flagos_migrate.migrate.engine import Migration
    from flagos_migrate.migrate.upstream import Upstream, open_upstream
    from flagos_migrate.plugin.tree import PluginTree

    plugin = empty_plugin(tmp_path / "plugin")
    m = Migration("cohere_eagle", Upstream(open_upstream(str(UPSTREAM_SRC))), PluginTree(plugin), pinned()).run()
    assert m.redirects["vllm.model_executor.models.commandr"] == "vllm_fl.models.commandr"
    assert "vllm_fl.models.commandr" in m.units
    assert "from vllm_fl.models.commandr import CohereDecoderLayer, CohereForCausalLM, LayerNorm" in m.model_unit.text
    assert [f for f in m.left() if f.rule == "P35"] == [] and m.left() == []


# -- P16: module state copied at import time (issue 13, class 5) ---------------------------------


def test_a_copy_of_module_state_the_pinned_module_rebinds_is_reported():
    code = '''
    from vllm.config.vllm import _current_vllm_config, get_current_vllm_config
    from vllm.distributed import parallel_state


    def current():
        return _current_vllm_config or get_current_vllm_config()
    '''
    found = only(analyze(code), "P16")
    assert [(f.line, f.col, f.severity, f.message) for f in found] == [(
        2, 0, "error", "`from vllm.config.vllm import _current_vllm_config` copies module state the pinned "
        "vllm.config.vllm rebinds later (a function of it sets `global _current_vllm_config`): this file keeps "
        "the value of import time, upstream's code reads the live one")]
    # negatives: the function that reads it live, and the module itself (read through it)
    assert only(analyze("from vllm.config.vllm import get_current_vllm_config\nimport vllm.config.vllm as m\n"
                        "x = m._current_vllm_config\n"), "P16") == []


@pytest.mark.skipif(not (PINNED_VENV / "lib").is_dir(), reason="needs the pinned venv's source (MMF_PINNED_VENV)")
def test_the_live_state_table_is_every_global_the_pinned_vllm_rebinds():
    from flagos_migrate.catalog.tables import LIVE_MODULE_STATE

    root = next(PINNED_VENV.glob("lib/python3*/site-packages"))
    want: dict[str, set[str]] = {}
    for path in sorted((root / "vllm").rglob("*.py")):
        tree = ast.parse(path.read_bytes())
        top = {t.id for s in tree.body if isinstance(s, ast.Assign) for t in s.targets if isinstance(t, ast.Name)}
        top |= {s.target.id for s in tree.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                want.setdefault(module, set()).update(n for n in node.names if n in top)
    assert {m: set(n) for m, n in LIVE_MODULE_STATE["0.13.0"].items()} == {m: n for m, n in want.items() if n}
