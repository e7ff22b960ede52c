"""Issue 14 (fused-MoE files on vLLM 0.13.0): a method upstream's version of a pinned base added (P4
`base_methods`, Qwen3-VL's `_init_video_pruning`), a pinned base whose `__init__` rejects what a local
subclass hands it through `super().__init__` (upstream's sibling comes along: qwen3_vl_moe's
`Qwen3MoeModel(decoder_layer_type=)`), and Attention keywords 0.13.0's backends reject (P6: Gemma 4's
`mm_prefix_clamp_sliding_window`, MiMo-V2's `head_size_v`). Golden text through the engine, negatives,
and the tables checked against both sources."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
from flagos_migrate.analysis import calls
from flagos_migrate.catalog.rules import BY_ID
from flagos_migrate.plugin.tree import PluginTree

from tests.analysis_helpers import PINNED_VENV, UPSTREAM_SRC, analyze, empty_plugin, only, pinned
from tests.analysis_helpers import migrate_example as migrate

# -- P4 base_methods -------------------------------------------------------------------------------

PRUNING = '''\
from vllm.model_executor.models.qwen3_vl import Qwen3VLForConditionalGeneration


class ExampleForConditionalGeneration(Qwen3VLForConditionalGeneration):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super(Qwen3VLForConditionalGeneration, self).__init__()
        self._init_video_pruning(vllm_config.model_config.multimodal_config)
'''

PRUNING_AFTER = PRUNING + '''
    def _init_video_pruning(self, multimodal_config) -> None:
        self.video_pruning_rate = multimodal_config.video_pruning_rate
        self.is_multimodal_pruning_enabled = (
            multimodal_config.is_multimodal_pruning_enabled()
        )
'''


def test_a_method_upstreams_base_added_is_written_as_the_pinned_base_does_the_work(tmp_path):
    m = migrate(tmp_path, PRUNING)
    # the class skips the pinned Qwen3-VL __init__, so P12 writes upstream's guarded deepstack readers too (with
    # the imports their text needs: the file imports neither torch nor IntermediateTensors)
    (guarded,) = BY_ID["P12"].tables["guarded_readers"]
    head, _, body = PRUNING_AFTER.partition("\n\n\n")
    init, _, pruning = body.partition("\n\n")
    assert m.model_unit.text == (head + "\nimport torch\nfrom vllm.sequence import IntermediateTensors\n\n\n" + init
                                 + "\n\n" + textwrap.indent(guarded["source"], "    ") + "\n\n" + pruning)
    compile(m.model_unit.text, "migrated.py", "exec")
    # a file that imports torch already gets no second `import torch`
    again = migrate(tmp_path / "again", "import torch\n" + PRUNING).model_unit.text
    assert again.count("import torch\n") == 1 and again.startswith("import torch\n")
    assert [f.data["method"] for f in m.model_unit.before if f.rule == "P4"] == ["_init_video_pruning"]
    assert not [f for f in m.left() if f.rule == "P4"]


def test_the_same_call_on_a_base_the_table_does_not_name_stays_left(tmp_path):
    text = PRUNING.replace("qwen3_vl import Qwen3VLForConditionalGeneration",
                           "qwen2_5_vl import Qwen2_5_VLForConditionalGeneration").replace(
        "(Qwen3VLForConditionalGeneration)", "(Qwen2_5_VLForConditionalGeneration)").replace(
        "super(Qwen3VLForConditionalGeneration", "super(Qwen2_5_VLForConditionalGeneration")
    m = migrate(tmp_path, text)
    assert m.model_unit.text == textwrap.dedent(text)
    (f,) = [f for f in m.left() if f.rule == "P4"]
    assert f.data["method"] == "_init_video_pruning" and f.data["source"] is None


def _class(path: Path, name: str) -> ast.ClassDef:
    return next(n for n in ast.walk(ast.parse(path.read_text("utf-8"))) if isinstance(n, ast.ClassDef) and n.name == name)


def _pinned_root() -> Path:
    found = sorted(PINNED_VENV.glob("lib/python3*/site-packages"))
    if not found or not (found[0] / "vllm").is_dir():
        pytest.skip("the pinned vLLM 0.13.0 venv is not built")
    return found[0]


# the entries written as statements of the pinned base's __init__ (one def; configure_mm_token_handling,
# which brings the hook that reads its flag, is checked against both interfaces in test_mm_interface.py)
@pytest.mark.parametrize("entry", [e for e in BY_ID["P4"].tables["base_methods"]
                                   if len(ast.parse(e["source"]).body) == 1], ids=lambda e: e["method"])
def test_each_base_method_is_upstreams_and_its_body_is_the_pinned_bases_own_statements(entry):
    if not UPSTREAM_SRC.is_dir():
        pytest.skip("the upstream vLLM 0.33.0 source is not unpacked")
    module, cls = entry["base"].rsplit(".", 1)
    rel = Path(*module.split(".")).with_suffix(".py")
    up = _class(UPSTREAM_SRC / rel, cls)
    pin = _class(_pinned_root() / rel, cls)
    # upstream's class defines it, or a mixin of upstream's interfaces it derives from (EagleModelMixin)
    mixins = [_class(UPSTREAM_SRC / "vllm/model_executor/models/interfaces.py", b.id) for b in up.bases
              if isinstance(b, ast.Name) and b.id.endswith("Mixin")]
    assert any(isinstance(f, ast.FunctionDef) and f.name == entry["method"] for c in [up, *mixins] for f in c.body)
    assert not any(isinstance(f, ast.FunctionDef) and f.name == entry["method"] for f in pin.body)
    # the body is statements of the pinned base's own methods (__init__, or forward's inline collection);
    # a final `return <parameter>` hands back what the caller passed in
    pinned_statements = {ast.dump(s) for f in pin.body if isinstance(f, ast.FunctionDef)
                         for s in ast.walk(f) if isinstance(s, ast.stmt)}
    (method,) = ast.parse(entry["source"]).body
    body = method.body
    if isinstance(body[-1], ast.Return) and isinstance(body[-1].value, ast.Name):
        assert body[-1].value.id in {a.arg for a in method.args.args}
        body = body[:-1]
    assert method.name == entry["method"]
    if all(ast.dump(s) in pinned_statements for s in body):
        return
    # otherwise it is upstream's own text (annotations aside) and reads only what the pinned base's __init__
    # assigns (Qwen2Model: 0.13.0's inline statement takes no None residual, upstream's method does)
    (theirs,) = [f for c in [up, *mixins] for f in c.body if isinstance(f, ast.FunctionDef) and f.name == method.name]
    assert _unannotated(theirs) == _unannotated(method)
    reads = {n.attr for n in ast.walk(method) if isinstance(n, ast.Attribute)
             and isinstance(n.value, ast.Name) and n.value.id == "self"}
    (init,) = [f for f in pin.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
    assigned = {t.attr for n in ast.walk(init) if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
    assert reads and reads <= assigned


def _unannotated(fn: ast.FunctionDef) -> str:
    fn = ast.parse(ast.unparse(fn)).body[0]
    for a in fn.args.args:
        a.annotation = None
    fn.returns = None
    return ast.dump(fn)


# -- a pinned base whose __init__ rejects what super().__init__ hands it ----------------------------

LOCAL = ast.parse(textwrap.dedent('''
    from vllm.model_executor.models.qwen3_moe import Qwen3MoeModel

    class LLMModel(Qwen3MoeModel):
        def __init__(self, *, vllm_config, prefix="", decoder_layer_type=None):
            super().__init__(vllm_config=vllm_config, prefix=prefix, decoder_layer_type=decoder_layer_type)
'''))
UPSTREAM_QWEN3_MOE = '''
class Qwen3MoeModel:
    def __init__(self, *, vllm_config, prefix="", decoder_layer_type=None):
        pass
'''
ALIASES = {"Qwen3MoeModel": "Qwen3MoeModel"}
QWEN3_MOE = "vllm.model_executor.models.qwen3_moe"


def test_super_init_with_a_keyword_only_upstreams_base_takes_brings_upstreams_module():
    assert calls.pinned_class_rejects(pinned(), QWEN3_MOE, ALIASES, LOCAL, UPSTREAM_QWEN3_MOE)


def test_super_init_negatives_keywords_the_pinned_base_takes_or_upstreams_does_not():
    plain = ast.parse(ast.unparse(LOCAL).replace(", decoder_layer_type=decoder_layer_type)", ")"))
    assert not calls.pinned_class_rejects(pinned(), QWEN3_MOE, ALIASES, plain, UPSTREAM_QWEN3_MOE)
    assert not calls.pinned_class_rejects(pinned(), QWEN3_MOE, ALIASES, LOCAL,
                                          UPSTREAM_QWEN3_MOE.replace(", decoder_layer_type=None", ""))
    # super(Other, self).__init__ skips the imported base: not judged against it
    skipping = ast.parse(ast.unparse(LOCAL).replace("super().__init__", "super(Qwen3MoeModel, self).__init__"))
    assert not calls.pinned_class_rejects(pinned(), QWEN3_MOE, ALIASES, skipping, UPSTREAM_QWEN3_MOE)


# -- P6: Attention keywords 0.13.0's backends reject --------------------------------------------------

GEMMA4_ATTN = """
from vllm.attention.layer import Attention
def build(num_heads, head_dim, is_sliding):
    return Attention(num_heads, head_dim, head_dim**-0.5, mm_prefix_clamp_sliding_window=is_sliding, prefix="attn")
"""


def test_p6_gemma4s_mm_prefix_clamp_is_dropped():
    (f,) = only(analyze(GEMMA4_ATTN), "P6")
    assert f.data["kwarg"] == "mm_prefix_clamp_sliding_window" and f.data["safe_drop"]


def test_p6_mimo_v2s_v_head_size_for_attention_is_left_for_you():
    (f,) = only(analyze(GEMMA4_ATTN.replace("mm_prefix_clamp_sliding_window=is_sliding", "head_size_v=16")), "P6")
    assert f.data["kwarg"] == "head_size_v" and not f.data["safe_drop"]
    assert "V heads of another size" in f.fix


def test_the_pinned_vllm_never_reads_the_clamp_and_builds_no_mm_prefix_for_gemma4():
    root = _pinned_root() / "vllm"
    assert not any("mm_prefix_clamp" in p.read_text("utf-8", "replace") for p in root.rglob("*.py"))
    model = (root / "config" / "model.py").read_text("utf-8")
    block = model[model.index("MM_PREFIX_LM_MODELS = (") + len("MM_PREFIX_LM_MODELS = "):]
    block = "\n".join(line.split("#")[0] for line in block.splitlines())
    block = block[:block.index(")") + 1]
    assert ast.literal_eval(block) == ("gemma3",)
    assert not any("head_size_v" in p.read_text("utf-8", "replace") for p in (root / "v1" / "attention").rglob("*.py"))


# -- local back-ports: installed, they re-point only the files that need them ----------------------------

def test_an_upstream_import_a_local_backport_shadows_moves_to_the_pinned_module_in_a_file_that_does_not_need_it(tmp_path):
    """step3_text, applied after mimo_v2 installed diffkv_attention.py, kept `from vllm.model_executor.layers.attention
    import Attention` (P3: no such module in 0.13.0): the move to vllm.attention.layer (P13) was skipped for the
    back-port that shadows the name, which re-points only the files that pass head_size_v."""
    from flagos_migrate.analysis.engine import analyze_source
    from flagos_migrate.analysis.facts import AnalysisContext
    from flagos_migrate.migrate import backports

    plugin = empty_plugin(tmp_path / "plugin")
    (plugin / "vllm_fl" / "compat").mkdir()
    (plugin / "vllm_fl" / "compat" / "__init__.py").write_text("")
    bp = backports.DIFFKV_ATTENTION
    (plugin / "vllm_fl" / "compat" / bp.source).write_text(bp.text())
    apis = pinned().with_package(PluginTree(plugin).index())
    text = "from vllm.model_executor.layers.attention import Attention\nattn = Attention(4, 16, 0.25{})\n"

    def found(source):
        return sorted((f.rule, f.data.get("new_module") or f.data.get("backport") or "") for f in analyze_source(
            source, AnalysisContext(apis, "vllm_fl.models.demo", "demo.py", origin_module="vllm.model_executor.models.demo"))
            if f.rule in ("P3", "P13", "P22"))

    assert found(text.format("")) == [("P13", "vllm.attention.layer")]
    needs = found(text.format(", head_size_v=8"))  # the back-port is where it comes from (P3 names it, P22 re-points)
    assert ("P22", bp.module) in needs and all(rule != "P13" for rule, _ in needs)


def test_a_local_backport_in_the_plugin_repoints_only_the_files_that_need_it(tmp_path):
    from flagos_migrate.analysis.engine import analyze_source
    from flagos_migrate.analysis.facts import AnalysisContext
    from flagos_migrate.migrate import backports

    plugin = empty_plugin(tmp_path / "plugin")
    (plugin / "vllm_fl" / "compat").mkdir()
    (plugin / "vllm_fl" / "compat" / "__init__.py").write_text("")
    for bp in (backports.ROPE, backports.QKV_LINEAR):
        (plugin / "vllm_fl" / "compat" / bp.source).write_text(bp.text())
    apis = pinned().with_package(PluginTree(plugin).index())
    text = ("from vllm.model_executor.layers.rotary_embedding import get_rope\n"
            "from vllm.model_executor.layers.linear import QKVParallelLinear\n"
            "rope = get_rope(16, 64)\nqkv = QKVParallelLinear(8, 6, 2, 1)\n")

    def p22(source, origin):
        return sorted(f.data["name"] for f in analyze_source(source, AnalysisContext(
            apis, "vllm_fl.models.demo", "demo.py", origin_module=origin)) if f.rule == "P22")

    # the pinned QKVParallelLinear, as another migration wrote it; get_rope from the back-port in every file (which
    # rope it builds comes from the checkpoint's config.json)
    assert p22(text, "vllm.model_executor.models.qwen2") == ["get_rope"]
    assert p22(text, "vllm.model_executor.models.gemma4") == ["get_rope"]
    assert p22(text.replace("(8, 6, 2, 1)", "(8, 6, 2, 1, v_head_size=4)"), "vllm.model_executor.models.qwen2") == [
        "QKVParallelLinear", "get_rope"]
