"""P23-P26 (issue 13, classes 1, 2, 7, 8): golden before/after text through the migration engine,
negative fixtures, the validator on migrated text, and the rule tables checked against both sources."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from flagos_migrate.analysis.inherited import framework_hooks, model_config_writes, runs_on_model_config
from flagos_migrate.catalog.rules import BY_ID
from flagos_migrate.catalog.tables import (
    CONFIG_HOOKS,
    INHERITED_DEFAULTS,
    PINNED_HOOK_DIFFERS,
    PINNED_HOOKS,
    RUNNER_FLAGS,
)
from flagos_migrate.commands.validate import validate

from tests.analysis_helpers import GOOD_PLUGIN, PINNED_VENV, UPSTREAM_SRC, analyze, only
from tests.analysis_helpers import migrate_example as migrate

# -- P23: inherited interface defaults -------------------------------------------------------------

EAGLE_TEXT = '''\
from torch import nn
from vllm.model_executor.models.interfaces import SupportsEagle3


class ExampleForCausalLM(nn.Module, SupportsEagle3):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super().__init__()
        self.model = nn.Linear(2, 2)
'''

EAGLE_TEXT_AFTER = EAGLE_TEXT + '''
    def get_eagle3_aux_hidden_state_layers(self) -> tuple[int, ...]:
        num_layers = len(self.model.layers)
        return (2, num_layers // 2, num_layers - 3)

    def set_aux_hidden_state_layers(self, layers: tuple[int, ...]) -> None:
        self.model.aux_hidden_state_layers = layers
'''


def test_eagle3_hooks_are_written_as_the_pinned_llama_writes_them(tmp_path):
    m = migrate(tmp_path, EAGLE_TEXT)
    assert m.model_unit.text == EAGLE_TEXT_AFTER
    assert sorted(f.data["method"] for f in m.model_unit.before if f.rule == "P23") == [
        "get_eagle3_aux_hidden_state_layers", "set_aux_hidden_state_layers"]
    assert not [f for f in m.left() if f.rule == "P23"]


HOOK_TEXT = '''\
from torch import nn
from vllm.model_executor.models.interfaces import SupportsEagle3


class ExampleForCausalLM(nn.Module, SupportsEagle3):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super().__init__()
        self.model = nn.Linear(2, 2)

    def get_eagle3_default_aux_hidden_state_layers(self) -> tuple[int, ...]:
        return (1, 2)
'''


def test_upstreams_own_eagle3_default_hook_is_what_the_pinned_name_returns(tmp_path):
    """Upstream's hook name is never called by 0.13.0's model runner: the pinned name delegates to it."""
    m = migrate(tmp_path, HOOK_TEXT)
    assert m.model_unit.text == HOOK_TEXT + '''
    def get_eagle3_aux_hidden_state_layers(self) -> tuple[int, ...]:
        return self.get_eagle3_default_aux_hidden_state_layers()

    def set_aux_hidden_state_layers(self, layers: tuple[int, ...]) -> None:
        self.model.aux_hidden_state_layers = layers
'''


MM_TEXT = '''\
import torch
from torch import nn
from vllm.model_executor.models.interfaces import SupportsEagle3, SupportsMultiModal
from vllm.model_executor.models.utils import init_vllm_registered_model


class ExampleForConditionalGeneration(nn.Module, SupportsMultiModal, SupportsEagle3):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super().__init__()
        with self._mark_language_model(vllm_config):
            self.text_model = init_vllm_registered_model(vllm_config=vllm_config, prefix=prefix)
'''


def test_multimodal_language_model_and_eagle3_through_it(tmp_path):
    m = migrate(tmp_path, MM_TEXT)
    assert m.model_unit.text == '''\
import torch
from torch import nn
from vllm.model_executor.models.interfaces import SupportsEagle3, SupportsMultiModal
from vllm.model_executor.models.utils import init_vllm_registered_model


class ExampleForConditionalGeneration(nn.Module, SupportsMultiModal, SupportsEagle3):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super().__init__()
        self.text_model = init_vllm_registered_model(vllm_config=vllm_config, prefix=prefix)

    def get_eagle3_aux_hidden_state_layers(self) -> tuple[int, ...]:
        num_layers = len(self.text_model.model.layers)
        return (2, num_layers // 2, num_layers - 3)

    def get_language_model(self) -> torch.nn.Module:
        return self.text_model

    def set_aux_hidden_state_layers(self, layers: tuple[int, ...]) -> None:
        self.text_model.model.aux_hidden_state_layers = layers
'''


# gemma4_mm / gemma4_unified: a tensor buffer (or None) built beside the language model under the marker,
# after a `self.X = bool(...)` that upstream's fallback over the children cannot judge
PLE_TEXT = MM_TEXT.replace(", SupportsEagle3)", ")").replace("SupportsEagle3, ", "").replace(
    "        with self._mark", "        self.enable_lora = bool(vllm_config)\n        with self._mark")
PLE_BLOCK = """
            if vllm_config.ple:
                self.per_layer_embeddings = torch.zeros(4, 2)
            else:
                self.per_layer_embeddings = None
"""


def test_a_tensor_beside_the_language_model_is_no_marked_child(tmp_path):
    # upstream collects children with a module registration hook: the buffer never registers, so the
    # language model is still the one child upstream's default returns
    text = PLE_TEXT + PLE_BLOCK
    m = migrate(tmp_path, text)
    assert "    def get_language_model(self) -> torch.nn.Module:\n        return self.text_model\n" in m.model_unit.text
    assert [f for f in m.left() if f.rule == "P23"] == []


def test_a_module_that_may_be_beside_the_language_model_is_left_for_you(tmp_path):
    # negative: one branch assigns a module, so upstream may mark two children (their common prefix is
    # the model itself, then its fallback over the children decides, and `bool(...)` comes first): the
    # file does not show which, the finding stays
    text = PLE_TEXT + PLE_BLOCK.replace("torch.zeros(4, 2)", "nn.Linear(4, 2)")
    m = migrate(tmp_path, text)
    assert [f.data["method"] for f in m.left() if f.rule == "P23"] == ["get_language_model"]
    assert "def get_language_model" not in m.model_unit.text


def test_targets_marker_is_left_for_you_with_the_evidence(tmp_path):
    text = MM_TEXT.replace("_mark_language_model(vllm_config)", "_mark_language_model(vllm_config, targets=nn.Linear)")
    text = text.replace(", SupportsEagle3)", ")").replace("SupportsEagle3, ", "")
    m = migrate(tmp_path, text)
    left = [f for f in m.left() if f.rule == "P23"]
    assert [f.data["method"] for f in left] == ["get_language_model"]
    assert "only declares it (returns None)" in left[0].message
    assert "def get_language_model" not in m.model_unit.text


def test_negatives_own_method_pinned_parent_and_plain_module():
    own = analyze('''
        import torch
        from torch import nn
        from vllm.model_executor.models.interfaces import SupportsMultiModal

        class M(nn.Module, SupportsMultiModal):
            def get_language_model(self) -> torch.nn.Module:
                return self.language_model
    ''')
    parent = analyze('''
        from vllm.model_executor.models.interfaces import SupportsEagle3
        from vllm.model_executor.models.llama import LlamaForCausalLM

        class M(LlamaForCausalLM, SupportsEagle3):
            pass
    ''')
    plain = analyze('''
        from torch import nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.model = nn.Linear(2, 2)
    ''')
    assert only(own, "P23") == only(parent, "P23") == only(plain, "P23") == []


NO_LANGUAGE_MODEL = '''
    from torch import nn
    from vllm.model_executor.models.interfaces import IsAttentionFree, SupportsMultiModal

    class Predictor(nn.Module):
        def forward(self, x):
            return x

    class M(nn.Module, IsAttentionFree, SupportsMultiModal):
        def __init__(self):
            super().__init__()
            self.runner = Predictor()

        def embed_input_ids(self, input_ids, multimodal_embeddings=None):
            return input_ids
'''


def test_get_language_model_only_where_upstreams_default_finds_one():
    # the pinned terratorch: no child for upstream's default to return (it raises there, the pinned
    # default returns None): nothing relied on
    assert only(analyze(NO_LANGUAGE_MODEL), "P23") == []
    # a child whose class has embed_input_ids is what upstream's fallback returns: relied on
    child = NO_LANGUAGE_MODEL.replace("        def forward(self, x):",
                                      "        def embed_input_ids(self, ids):\n            return ids\n\n"
                                      "        def forward(self, x):")
    (f,) = only(analyze(child), "P23")
    assert f.data["method"] == "get_language_model"


COMPOSITE_IN_BASE = """
from vllm.model_executor.models.chatglm import ChatGLMBaseModel, GLMTransformer
from vllm.model_executor.models.interfaces import SupportsMultiModal


class GLM4VForCausalLM(ChatGLMBaseModel, SupportsMultiModal):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        with self._mark_composite_model(vllm_config, language_targets=GLMTransformer):
            super().__init__(vllm_config=vllm_config, prefix=prefix)
"""


def test_a_language_model_marker_over_a_base_init_gets_upstreams_default_written():
    """glm4v failed forward (get_language_model() None): its marker wraps super().__init__ (the language model is
    built in the base's __init__, another file), so no `self.X` names it. The written get_language_model calls
    upstream's default, back-ported (vllm_fl/compat/language_model.py), over the descendants of the marker's
    targets; the unwrapped file then relies on nothing. A child assigned after the block (upstream's marker would
    not have seen it) leaves the finding for you, with the comment the P4 unwrap writes."""
    from flagos_migrate.analysis import inherited, members
    from flagos_migrate.migrate.edits import Edits
    from flagos_migrate.migrate.rewrites import apply_edits

    found = analyze(COMPOSITE_IN_BASE, plugin=False)
    (f,) = only(found, "P23")
    assert f.data["source"] == ("def get_language_model(self):\n"
                                "    return default_language_model(self, language_model_names(self, (GLMTransformer,)))")
    edits = Edits()
    for g in only(found, "P4"):
        members.propose_edits(g, edits)
    inherited.propose_edits(f, edits)
    out = apply_edits(COMPOSITE_IN_BASE, edits)
    assert "from vllm_fl.compat.language_model import default_language_model\n" in out
    assert "from vllm_fl.compat.language_model import language_model_names\n" in out
    assert "        # P23: upstream's get_language_model() finds the language model this block builds: " \
           "self._mark_composite_model(vllm_config, language_targets=GLMTransformer)\n" \
           "        super().__init__(vllm_config=vllm_config, prefix=prefix)\n\n" \
           "    def get_language_model(self):\n" \
           "        return default_language_model(self, language_model_names(self, (GLMTransformer,)))\n" in out
    assert only(analyze(out, plugin=False), "P23") == []
    # a module child assigned after the block: upstream's names (taken at the block's end) may differ
    later = COMPOSITE_IN_BASE.replace("super().__init__(vllm_config=vllm_config, prefix=prefix)\n",
                                      "super().__init__(vllm_config=vllm_config, prefix=prefix)\n"
                                      "        self.extra = GLMTransformer(vllm_config)\n")
    (g,) = only(analyze(later, plugin=False), "P23")
    assert g.data["source"] is None
    edits = Edits()
    for h in only(analyze(later, plugin=False), "P4"):
        members.propose_edits(h, edits)
    assert "        # P23: upstream's get_language_model()" in apply_edits(later, edits)
    (kept,) = only(analyze(apply_edits(later, edits), plugin=False), "P23")
    assert kept.data["source"] is None and kept.severity == "error"
    # a marked block that builds its child keeps no comment (P23 writes the method from it)
    built = COMPOSITE_IN_BASE.replace("super().__init__(vllm_config=vllm_config, prefix=prefix)",
                                      "self.transformer = GLMTransformer(vllm_config)")
    assert "# P23:" not in apply_edits(built, edits)


def test_without_a_marker_get_language_model_is_upstreams_first_child_with_embed_input_ids():
    """colmodernvbert: no marker; upstream's default falls back to the first child (registration order) whose
    class has embed_input_ids (its text_embeddings); the pinned default returned None."""
    code = """
import torch
from torch import nn
from vllm.model_executor.models.interfaces import SupportsMultiModal


class Embeddings(nn.Module):
    def embed_input_ids(self, ids):
        return ids

    def forward(self, ids):
        return ids


class Retrieval(nn.Module, SupportsMultiModal):
    def __init__(self):
        super().__init__()
        self.connector = nn.Linear(2, 2)
        self.text_embeddings = Embeddings()
        self.text_final_norm = nn.LayerNorm(2)
"""
    (f,) = only(analyze(code), "P23")
    assert f.data["source"] == "def get_language_model(self) -> torch.nn.Module:\n    return self.text_embeddings"


def test_validator_reports_a_hand_migrated_class_without_the_method():
    found = only(analyze('''
        from torch import nn
        from vllm.model_executor.models.interfaces import SupportsMultiModal

        class M(nn.Module, SupportsMultiModal):
            def __init__(self):
                super().__init__()
                self.language_model = nn.Linear(2, 2)
    '''), "P23")
    assert [(f.data["method"], f.data["source"], f.severity) for f in found] == [
        ("get_language_model", None, "error")]


# -- P24: dead hooks -------------------------------------------------------------------------------

DEAD = '''
    from vllm.model_executor.models.llama import LlamaModel

    class ExampleModel(LlamaModel):
        def create_qkvz_proj(self, hidden_size):
            return hidden_size * 2
'''


def test_override_the_pinned_parent_never_calls_is_reported():
    found = only(analyze(DEAD), "P24")
    assert len(found) == 1 and found[0].severity == "warning"
    assert found[0].message == (
        "`ExampleModel.create_qkvz_proj()` overrides nothing on the pinned vLLM: its parent `LlamaModel` "
        f"(vllm/model_executor/models/llama.py:{found[0].data['where'].rsplit(':', 1)[1]}) and the rest of its "
        "pinned hierarchy neither define nor call `create_qkvz_proj`, and nothing in this file calls it, so the "
        "parent builds what it builds without it")


@pytest.mark.parametrize("variant", [
    DEAD + "\n        def forward(self, x):\n            return self.create_qkvz_proj(x)\n",  # the file calls it
    DEAD.replace("create_qkvz_proj", "forward"),  # the pinned parent defines it
    DEAD.replace("create_qkvz_proj", "load_weights"),  # a pinned class defines the name: duck-typed hook
    DEAD.replace("LlamaModel", "SupportsLoRA").replace("llama", "interfaces"),  # no model parent
])
def test_dead_hook_negatives(variant):
    assert only(analyze(variant), "P24") == []


DEAD_ATTRS = '''
    from vllm.model_executor.models.gpt_oss import OAIAttention, TransformerBlock

    class FilterAttention(OAIAttention):
        rope_is_neox_style = False

    class FilterBlock(TransformerBlock):
        attention_cls: type = FilterAttention
        packed_modules_mapping = {}
'''


def test_class_attribute_hooks_the_pinned_parent_never_reads_are_reported():
    """openai_privacy_filter failed match (3.7): upstream's gpt_oss builds `self.attention_cls(...)` and reads
    `self.rope_is_neox_style`, which the subclass sets; the pinned gpt_oss has neither (GPT-J RoPE became NeoX)."""
    found = only(analyze(DEAD_ATTRS), "P24")
    assert [(f.data["class"], f.data["attribute"]) for f in found] == [
        ("FilterAttention", "rope_is_neox_style"), ("FilterBlock", "attention_cls")]
    assert found[0].message.startswith("`FilterAttention.rope_is_neox_style` overrides nothing on the pinned vLLM: "
                                       "its parent `OAIAttention` (vllm/model_executor/models/gpt_oss.py:")
    assert "neither define nor read `rope_is_neox_style`, and nothing in this file reads it" in found[0].message
    # read in the file, or a name pinned classes define (a framework attribute): not a dead hook
    read = DEAD_ATTRS + "\n    def neox(a):\n        return a.rope_is_neox_style\n"
    assert [f.data["attribute"] for f in only(analyze(read), "P24")] == ["attention_cls"]
    # a capability flag the framework reads (mimo's supports_aux_hidden_states_over_pp): not a parent's hook
    flag = DEAD_ATTRS.replace("rope_is_neox_style = False", "supports_aux_hidden_states_over_pp = False")
    assert [f.data["attribute"] for f in only(analyze(flag), "P24")] == ["attention_cls"]


RUNNER_FLAG = '''
    from vllm.model_executor.models.voxtral import VoxtralForConditionalGeneration

    class Realtime(VoxtralForConditionalGeneration):
        requires_raw_input_tokens = True

        def forward(self, input_ids, positions, inputs_embeds=None):
            assert input_ids is not None
            return inputs_embeds
'''


def test_a_flag_only_upstreams_runner_reads_is_an_error_naming_both_runners():
    """voxtral_realtime failed forward on an empty AssertionError: 0.13.0's runner calls every multimodal model with
    input_ids=None; upstream's hands a model flagged requires_raw_input_tokens its ids. Reported on the flag whatever
    the parents (upstream's voxtral in the plugin leaves no pinned parent), once (not also as a dead hook)."""
    (f,) = only(analyze(RUNNER_FLAG), "P24")
    assert f.severity == "error" and f.data == {"class": "Realtime", "attribute": "requires_raw_input_tokens",
                                                "problem": "runner-flag"}
    assert f.message.startswith("`Realtime.requires_raw_input_tokens = True` is dead on the pinned vLLM: upstream's "
                                "GPU model runner hands such a multimodal model its token ids next to the embeddings")
    assert "calls every multimodal model with `input_ids=None`" in f.message and "gpu_model_runner.py:2480" in f.message
    local = RUNNER_FLAG.replace("from vllm.model_executor.models.voxtral import VoxtralForConditionalGeneration",
                                "class VoxtralForConditionalGeneration:\n        pass")
    assert [g.data["problem"] for g in only(analyze(local), "P24")] == ["runner-flag"]
    # False (the default) asks nothing of the runner
    assert only(analyze(RUNNER_FLAG.replace("= True", "= False")), "P24") == []


def test_the_runner_flag_table_against_both_runners():
    pinned = next(PINNED_VENV.glob("lib/python3*/site-packages")) / "vllm"
    if not (pinned.is_dir() and (UPSTREAM_SRC / "vllm").is_dir()):
        pytest.skip("needs the pinned venv and upstream vLLM 0.33.0 source")
    (row,) = RUNNER_FLAGS
    up = (UPSTREAM_SRC / "vllm/v1/worker/gpu_model_runner.py").read_text().splitlines()
    assert "if self.model.requires_raw_input_tokens:" in up[3250 - 1]
    runner = (pinned / "v1/worker/gpu_model_runner.py").read_text()
    assert "requires_raw_input_tokens" not in runner and runner.splitlines()[2480 - 1].strip() == "input_ids = None"
    assert not any(row["attribute"] in p.read_text() for p in pinned.rglob("*.py"))


# -- P25: framework-level hooks on the architecture ---------------------------------------------

def test_framework_hooks_name_the_upstream_code():
    assert framework_hooks("LlamaBidirectionalModel") == [
        "architecture LlamaBidirectionalModel: upstream's MODELS_CONFIG_MAP (vllm/model_executor/models/config.py) "
        "applies `LlamaBidirectionalConfig` to its config; the pinned vLLM has no entry, so nothing does"]
    assert framework_hooks("TeleChat3ForCausalLM") == [
        "architecture TeleChat3ForCausalLM: upstream's patch_legacy_rope_type rewrites rope_type 'telechat3-yarn' "
        "(it becomes `yarn` with `attention_factor = 0.07 * log(factor) + 1`); the pinned vLLM does not"]
    assert framework_hooks("LlamaForCausalLM") == [] and framework_hooks("GteNewModel") == []


def test_validator_reports_it_on_the_registration_until_the_plugin_hooks_it(tmp_path):
    plugin = tmp_path / "plugin"
    shutil.copytree(GOOD_PLUGIN, plugin)
    assert [f for f in validate(str(plugin), all_models=True).findings if f.rule == "P25"] == []  # hooked
    init = plugin / "vllm_fl" / "__init__.py"
    text = init.read_text()
    hook = '        MODELS_CONFIG_MAP["Qwen3_5ForConditionalGeneration"] = Qwen3_5ForCausalLMConfig\n'
    assert hook in text
    init.write_text(text.replace(hook, ""))
    p25 = [f for f in validate(str(plugin), all_models=True).findings if f.rule == "P25"]
    assert [(f.data["arch"], f.file, f.severity) for f in p25] == [
        ("Qwen3_5ForConditionalGeneration", "vllm_fl/__init__.py", "warning")]
    assert p25[0].message == framework_hooks("Qwen3_5ForConditionalGeneration")[0]
    assert framework_hooks("Qwen3_5ForConditionalGeneration", {"Qwen3_5ForConditionalGeneration"}) == []
    assert framework_hooks("TeleChat3ForCausalLM", {"TeleChat3ForCausalLM"}) == []


# -- P26: tower skipping lost by unwrapping -------------------------------------------------------

TOWER = '''\
from torch import nn
from vllm.model_executor.models.interfaces import SupportsMultiModal


class ExampleForConditionalGeneration(nn.Module, SupportsMultiModal):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super().__init__()
        with self._mark_tower_model(vllm_config, {"image", "video"}):
            self.visual = nn.Linear(2, 2)
        self.language_model = nn.Linear(2, 2)

    def get_language_model(self) -> nn.Module:
        return self.language_model
'''


def test_unwrapped_tower_keeps_a_comment_and_plan_apply_validator_agree(tmp_path):
    m = migrate(tmp_path, TOWER)
    assert m.model_unit.text == TOWER.replace('''        with self._mark_tower_model(vllm_config, {"image", "video"}):
            self.visual = nn.Linear(2, 2)
''', '''        # P26: built under self._mark_tower_model(vllm_config, {"image", "video"}) upstream, which skips it when the limit is 0
        self.visual = nn.Linear(2, 2)
''')
    before = [(f.rule, f.message) for f in m.model_unit.before if f.rule == "P26"]
    left = [(f.rule, f.message) for f in m.left() if f.rule == "P26"]
    validator = [(f.rule, f.message) for f in analyze(m.model_unit.text) if f.rule == "P26"]
    assert before == left == validator and len(before) == 1
    assert "when the modality limit is 0" in before[0][1]
    # negative: the agent decided and removed the comment
    decided = "\n".join(ln for ln in m.model_unit.text.splitlines() if "# P26:" not in ln)
    assert only(analyze(decided), "P26") == []


# -- the tables against both sources -------------------------------------------------------------

needs_sources = pytest.mark.skipif(
    not (UPSTREAM_SRC.is_dir() and (PINNED_VENV / "lib").is_dir()),
    reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC) and the pinned venv (MMF_PINNED_VENV)")


def _pinned_root() -> Path:
    return next(PINNED_VENV.glob("lib/python3*/site-packages"))


def _method(root: Path, qualname: str, name: str) -> ast.FunctionDef | None:
    module, cls = qualname.rsplit(".", 1)
    tree = ast.parse((root / (module.replace(".", "/") + ".py")).read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and f.name == name:
                    return f
    return None


def _is_stub(f: ast.FunctionDef) -> bool:
    body = [s for s in f.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                      and isinstance(s.value.value, str))]
    return len(body) == 1 and isinstance(body[0], ast.Expr) and body[0].value.value is Ellipsis


@needs_sources
@pytest.mark.parametrize("entry", INHERITED_DEFAULTS, ids=lambda e: e["method"])
def test_each_inherited_default_is_a_stub_pinned_and_a_body_upstream(entry):
    pinned_def = _method(_pinned_root(), entry["interface"], entry["method"])
    assert pinned_def is not None and _is_stub(pinned_def)
    up = _method(UPSTREAM_SRC, entry["interface"], entry.get("upstream_hook") or entry["method"])
    assert up is not None and not _is_stub(up)


def _config_map(path: Path) -> dict[str, str]:
    for node in ast.parse(path.read_text()).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "MODELS_CONFIG_MAP":
            return {k.value: ast.unparse(v) for k, v in zip(node.value.keys, node.value.values)}
    raise AssertionError(f"no MODELS_CONFIG_MAP in {path}")


@needs_sources
def test_config_hooks_are_upstreams_map_minus_the_pinned_one():
    rel = Path("vllm/model_executor/models/config.py")
    up, pin = _config_map(UPSTREAM_SRC / rel), _config_map(_pinned_root() / rel)
    assert CONFIG_HOOKS == {k: v for k, v in up.items() if k not in pin}
    rope = (UPSTREAM_SRC / "vllm/transformers_utils/config.py").read_text()
    pinned_rope = (_pinned_root() / "vllm/transformers_utils/config.py").read_text()
    for patch in BY_ID["P25"].tables["rope_type_patches"]:
        assert f'"{patch["rope_type"]}"' in rope and patch["rope_type"] not in pinned_rope


def _class_source(path: Path, name: str) -> str:
    text = path.read_text()
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == name)
    return ast.get_source_segment(text, node)


@needs_sources
def test_pinned_hook_differs_entries_are_in_both_maps_and_differ_as_said():
    rel = Path("vllm/model_executor/models/config.py")
    up, pin = _config_map(UPSTREAM_SRC / rel), _config_map(_pinned_root() / rel)
    for arch, entry in PINNED_HOOK_DIFFERS.items():
        assert up[arch] == pin[arch] == entry["hook"]
    # Qwen2ForRewardModel: upstream writes use_activation; the pinned hook writes softmax, which the pinned
    # PoolerConfig folds into use_activation only in __post_init__ (before any hook runs)
    assert "pooler_config.use_activation = False" in _class_source(UPSTREAM_SRC / rel, "Qwen2ForRewardModelConfig")
    assert "pooler_config.softmax = False" in _class_source(_pinned_root() / rel, "Qwen2ForRewardModelConfig")
    post_init = _class_source(_pinned_root() / "vllm/config/pooler.py", "PoolerConfig")
    assert "self.use_activation = get_use_activation(self)" in post_init
    assert framework_hooks("Qwen2ForRewardModel") == [
        "architecture Qwen2ForRewardModel: upstream's MODELS_CONFIG_MAP (vllm/model_executor/models/config.py) "
        f"applies `Qwen2ForRewardModelConfig`, which {PINNED_HOOK_DIFFERS['Qwen2ForRewardModel']['what']}"]
    assert framework_hooks("Qwen2ForRewardModel", {"Qwen2ForRewardModel"}) == []  # the plugin's own hook answers it


@needs_sources
def test_pinned_hooks_do_what_upstreams_model_config_hooks_do():
    """P25 pinned_hooks: upstream maps the architecture to a hook that runs on the ModelConfig, the pinned map lacks
    the architecture, and the pinned hook of the same name does the same statements to the same config: its
    verify_and_update_config body is upstream's verify_and_update_model_config body after it binds
    `model_config = vllm_config.model_config` (ColBERTJinaRobertaModel: JinaRobertaModelConfig's rotary_kwargs)."""
    rel = Path("vllm/model_executor/models/config.py")
    up, pin = _config_map(UPSTREAM_SRC / rel), _config_map(_pinned_root() / rel)
    assert PINNED_HOOKS
    for arch, hook in PINNED_HOOKS.items():
        assert up[arch] == CONFIG_HOOKS[arch] == hook and arch not in pin
        ups = _method(UPSTREAM_SRC, f"vllm.model_executor.models.config.{hook}", "verify_and_update_model_config")
        pins = _method(_pinned_root(), f"vllm.model_executor.models.config.{hook}", "verify_and_update_config")
        first, *rest = pins.body
        assert ast.unparse(first) == "model_config = vllm_config.model_config"
        assert [ast.dump(n) for n in rest] == [ast.dump(n) for n in ups.body]
    # negative: a hook whose pinned body differs (Qwen2ForRewardModelConfig writes softmax, upstream use_activation)
    ups = _method(UPSTREAM_SRC, "vllm.model_executor.models.config.Qwen2ForRewardModelConfig",
                  "verify_and_update_model_config")
    pins = _method(_pinned_root(), "vllm.model_executor.models.config.Qwen2ForRewardModelConfig", "verify_and_update_config")
    assert [ast.dump(n) for n in pins.body[1:]] != [ast.dump(n) for n in ups.body]


def test_runs_on_model_config_follows_the_hooks_bases_in_its_module():
    text = '''
class VerifyAndUpdateConfig:
    @staticmethod
    def verify_and_update_config(vllm_config): return
    @staticmethod
    def verify_and_update_model_config(model_config):
        \"\"\"upstream's base: a no-op\"\"\"
        return
class Base(VerifyAndUpdateConfig):
    @staticmethod
    def verify_and_update_model_config(model_config): model_config.hf_config.x = 1
class Child(Base):
    @staticmethod
    def verify_and_update_config(vllm_config): vllm_config.cache_config.y = 2
class Plain(VerifyAndUpdateConfig):
    @staticmethod
    def verify_and_update_config(vllm_config): vllm_config.cache_config.y = 2
'''
    assert runs_on_model_config(text, "Base") and runs_on_model_config(text, "Child")
    assert not runs_on_model_config(text, "Plain") and not runs_on_model_config(text, "Missing")
    assert not runs_on_model_config("class (", "Base")
    # what P25 says the pinned vLLM never does: the model-config hook's assignments, a base's for Child
    assert model_config_writes(text, "Child") == ["model_config.hf_config.x = 1"]
    assert model_config_writes(text, "Plain") == [] and model_config_writes("class (", "Base") == []


def test_an_override_of_a_hook_the_pinned_processor_base_never_calls_is_reported_once():
    """internvl failed forward on KeyError 'image_token_id' with no finding: upstream's BaseMultiModalProcessor
    calls _postprocess_hf_mm_data on the Hugging Face output (InternVL adds image_token_id there); the pinned base
    neither defines nor calls it (0.13.0's models do it in _call_hf_processor). Reported on the first local class
    of the chain defining it (its subclass's override calling super() is the same dead hook)."""
    code = """
from vllm.multimodal.processing import BaseMultiModalProcessor


class BaseProc(BaseMultiModalProcessor):
    def _postprocess_hf_mm_data(self, mm_data, hf_processor_mm_kwargs, processed_data):
        processed_data["image_token_id"] = 7
        return processed_data


class VideoProc(BaseProc):
    def _postprocess_hf_mm_data(self, mm_data, hf_processor_mm_kwargs, processed_data):
        return super()._postprocess_hf_mm_data(mm_data, hf_processor_mm_kwargs, processed_data)


class Other:
    def _postprocess_hf_mm_data(self, mm_data, hf_processor_mm_kwargs, processed_data):
        return processed_data
"""
    (f,) = only(analyze(code, plugin=False), "P24")
    assert {k: f.data[k] for k in ("class", "method", "parent")} == {
        "class": "BaseProc", "method": "_postprocess_hf_mm_data",
        "parent": "vllm.multimodal.processing.BaseMultiModalProcessor"}
    assert f.line == 6 and "_call_hf_processor" in f.fix
    # its first argument unread (upstream's and the pinned data differ in keys, not in emptiness): apply ports it
    assert "self._postprocess_hf_mm_data(mm_data, mm_kwargs, processed_data)" in f.data["source"]
