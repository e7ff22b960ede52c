"""Check 1: imports (relative, missing vLLM modules/names, moved names, transformers, vllm_fl)."""

from __future__ import annotations

from flagos_migrate.analysis.engine import ImportBinding, import_bindings, name_usage, parse_text

from tests.analysis_helpers import analyze, only, rules


def test_relative_import_is_p1_with_rewrite_data():
    fs = analyze("from .utils import maybe_prefix, WeightsMapper\n", origin="vllm.model_executor.models.llama")
    (f,) = only(fs, "P1")
    assert f.data["level"] == 1 and f.data["written"] == ".utils"
    assert f.data["names"] == ["maybe_prefix", "WeightsMapper"]
    assert f.data["absolute"] == "vllm.model_executor.models.utils"
    assert f.data["pinned_module_exists"] and f.data["missing_names"] == []


def test_relative_import_resolves_against_module_without_origin():
    (f,) = only(analyze("from ..configs.x import C\n", module="vllm_fl.models.demo"), "P1")
    assert f.data["absolute"] == "vllm_fl.configs.x" and f.data["level"] == 2


def test_relative_import_reports_names_missing_in_pinned():
    (f,) = only(analyze("from .utils import not_there_at_all\n", origin="vllm.model_executor.models.llama"), "P1")
    assert f.data["missing_names"] == ["not_there_at_all"]


def test_existing_imports_are_clean():
    code = """
    import torch
    import vllm.model_executor.models.utils
    from vllm.attention.layer import Attention
    from vllm.model_executor.models.utils import maybe_prefix
    from transformers import PretrainedConfig
    x = (Attention, maybe_prefix, PretrainedConfig, torch)
    """
    assert analyze(code) == []


def test_missing_module_name_moved_is_p13_with_new_module():
    fs = analyze("from vllm.model_executor.layers.attention import Attention\nA = Attention\n")
    (f,) = only(fs, "P13")
    assert f.data["new_module"] == "vllm.attention.layer"
    assert f.data["module"] == "vllm.model_executor.layers.attention" and f.data["name"] == "Attention"
    assert "vllm.attention.layer" in f.data["candidates"]


def test_moved_name_skips_type_checking_standins():
    (f,) = only(analyze("from vllm.inputs import MultiModalDataDict\nX = MultiModalDataDict\n"), "P13")
    assert f.data["new_module"] == "vllm.multimodal.inputs"


def test_missing_name_unknown_is_p3_with_usage():
    fs = analyze("from vllm.model_executor.models.utils import no_such_helper\nno_such_helper()\n")
    (f,) = only(fs, "P3")
    assert f.data == {**f.data, "module": "vllm.model_executor.models.utils", "name": "no_such_helper",
                      "used_at_runtime": True, "unused": False, "annotation_only": False}


def test_missing_unused_import_is_marked_unused():
    (f,) = only(analyze("from vllm.model_executor.models.utils import no_such_helper\n"), "P3")
    assert f.data["unused"] and not f.data["used_at_runtime"]


def test_missing_module_import_statement():
    (f,) = only(analyze("import vllm.model_executor.layers.no_such_module\n"), "P3")
    assert f.data["name"] is None and f.data["module"] == "vllm.model_executor.layers.no_such_module"


def test_annotation_only_missing_name_is_p14():
    code = """
    from vllm.model_executor.models.utils import NoSuchType
    def f(x: NoSuchType) -> "NoSuchType":
        return x
    """
    (f,) = only(analyze(code), "P14")
    assert f.data["name"] == "NoSuchType" and f.data["annotation_only"]


def test_transformers_rename_is_p5_with_new_name():
    (f,) = only(analyze("from transformers import PreTrainedConfig\n"), "P5")
    assert f.data["new_name"] == "PretrainedConfig"


def test_transformers_missing_config_class_p5_without_rename():
    (f,) = only(analyze("from transformers import Qwen3_5Config\nQwen3_5Config()\n"), "P5")
    assert "new_name" not in f.data and "bridge" in f.fix


def test_guarded_and_type_checking_imports_are_not_issues():
    code = """
    from typing import TYPE_CHECKING
    if TYPE_CHECKING:
        from vllm.no_such import Thing
    try:
        from vllm.model_executor.layers.attention import Attention
    except ImportError:
        from vllm.attention.layer import Attention
    """
    assert analyze(code) == []


def test_function_level_import_is_checked_but_not_import_time():
    code = """
    def f():
        from vllm.no_such_module import X
        return X
    """
    (f,) = only(analyze(code), "P3")
    assert f.data["import_time"] is False


def test_vllm_fl_imports_against_plugin_tree():
    assert analyze("from vllm_fl.ops.fla import ChunkGatedDeltaRule\nChunkGatedDeltaRule()\n") == []
    fs = analyze("from vllm_fl.ops.fla import NoSuchOp\nfrom vllm_fl.ops.nothing import Y\nNoSuchOp(), Y\n")
    assert rules(fs) == ["P18", "P18"]


def test_vllm_fl_unknown_without_plugin_index():
    assert analyze("from vllm_fl.ops.nothing import Y\nY\n", plugin=False) == []


def test_future_and_external_imports_are_ignored():
    assert analyze("from __future__ import annotations\nimport numpy as np\nfrom einops import rearrange\n") == []


def test_lazy_transformers_names_are_not_reported():
    # transformers exports most names lazily: a name it declares must resolve
    assert analyze("from transformers import AutoConfig, LlamaConfig\nAutoConfig, LlamaConfig\n") == []


def test_bad_source_is_p20_never_raises():
    (f,) = analyze("def broken(:\n")
    assert f.rule == "P20" and f.line == 1
    tree, err = parse_text(b"\xff\xfe x = 1\n", "x.py")
    assert tree is None and err.rule == "P20" and "UTF-8" in err.message


def test_import_bindings_and_usage_helpers():
    tree, _ = parse_text("import a.b.c\nfrom .m import x as y\ndef f(z: y):\n    return a.b\n", "t.py")
    bs = import_bindings(tree, "pkg.mod")
    assert [(b.alias, b.module, b.name) for b in bs] == [("a", "a.b.c", None), ("y", "pkg.m", "x")]
    assert all(isinstance(b, ImportBinding) for b in bs)
    usage = name_usage(tree)
    assert usage["y"].annotation_only and usage["a"].runtime == 1


def test_relative_import_inside_plugin_resolving_to_plugin_module_is_fine():
    assert analyze("from ..ops.fla import ChunkGatedDeltaRule\nChunkGatedDeltaRule\n") == []
    # but a copied upstream file (origin set) is always flagged: its dots meant vllm's package
    assert only(analyze("from .utils import maybe_prefix\n", origin="vllm.model_executor.models.x"), "P1")


def test_moved_name_among_model_modules_prefers_same_family():
    code = "from vllm.model_executor.models.utils import get_spec_layer_idx_from_weight_name as g\ng()\n"
    (f,) = only(analyze(code, origin="vllm.model_executor.models.deepseek_mtp"), "P13")
    assert f.data["new_module"] == "vllm.model_executor.models.deepseek_v2"
    (f,) = only(analyze(code, origin="vllm.model_executor.models.other"), "P3")
    assert "new_module" not in f.data and len(f.data["candidates"]) > 1


def test_transformers_name_kept_in_a_sibling_module_is_p13():
    code = "from transformers.models.llama4.image_processing_llama4 import get_best_fit\nget_best_fit()\n"
    (f,) = only(analyze(code), "P13")
    assert f.data["new_module"] == "transformers.models.llama4.image_processing_llama4_fast"


def test_missing_name_used_only_inside_functions_can_be_deferred_to_them():
    # openpangu: the sink-attention layer only some configs build; every other use runs when the file imports
    code = """
    from vllm.model_executor.layers.attention import StaticSinkAttention
    from vllm.v1.attention.backends.flash_attn_diffkv import FlashAttentionDiffKVBackend
    from vllm.v1.worker.gpu.spec_decode.xpress import kernels
    from vllm.v1.worker.gpu.model_states.default import DefaultModelState


    class SinkAttention:
        backend = FlashAttentionDiffKVBackend

        def __init__(self, n):
            \"\"\"Doc.\"\"\"
            self.attn = StaticSinkAttention(n, backend=lambda: FlashAttentionDiffKVBackend)


    def refine(x, k=kernels.default):
        def inner():
            return StaticSinkAttention(x)
        return inner


    class State(DefaultModelState):
        pass
    """
    found = {f.data["name"]: f.data.get("defer_to") for f in only(analyze(code), "P3")}
    assert found == {"StaticSinkAttention": [11, 17],  # __init__ and the nested def (the innermost)
                     "FlashAttentionDiffKVBackend": None,  # also read in a class body
                     "kernels": None,  # a default: evaluated when the def runs, at import
                     "DefaultModelState": None}  # a base class


def test_a_class_of_an_absent_subsystem_only_isinstance_checks_is_never_an_instance_on_the_pinned_vllm():
    code = """
    from vllm.model_executor.layers.quantization.online.base import OnlineQuantizationConfig
    from vllm.v1.worker.gpu.model_states.interface import ModelState


    def patch(q, m):
        return isinstance(q.quant, OnlineQuantizationConfig) or isinstance(m, ModelState) or ModelState
    """
    found = {f.data["name"]: f for f in only(analyze(code), "P3")}
    assert found["OnlineQuantizationConfig"].data["never_instance"] == [7]
    assert "isinstance check of it False" in found["OnlineQuantizationConfig"].fix
    assert "never_instance" not in found["ModelState"].data  # also read as a value
    # a name of another missing module is not taken for one nothing builds
    other = analyze("from vllm.model_executor.layers.no_such import Cfg\n\ndef f(q):\n    return isinstance(q, Cfg)\n")
    assert "never_instance" not in only(other, "P3")[0].data
