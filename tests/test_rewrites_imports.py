"""Before/after fixtures for the import rewrites (P1, P2, P3, P5, P13, P14, P16)."""

from __future__ import annotations

import ast

from flagos_migrate.migrate.rewrites import Edits, ImportAction, apply_edits, import_from_text

BEFORE = '''"""Doc string."""

# leading comment stays
import torch
from transformers import PreTrainedConfig
from .utils import (
    maybe_prefix,  # keep me
    AutoWeightsLoader,
    Gone,
)
from vllm.inputs import MultiModalDataDict, OnlyTyped
from vllm.transformers_utils.configs.mini import MiniConfig
from .helpers import scaled_sum


def f(x: OnlyTyped, c: PreTrainedConfig) -> MultiModalDataDict:
    return isinstance(c, PreTrainedConfig) and scaled_sum(x)
'''


def test_relative_import_repointed_and_names_kept_with_comments():
    e = Edits(imports={(6, None): ImportAction("P1", "repoint", "vllm.model_executor.models.utils")})
    out = apply_edits(BEFORE, e)
    assert "from vllm.model_executor.models.utils import (\n    maybe_prefix,  # keep me\n" in out
    assert "from .utils" not in out
    assert "# leading comment stays\nimport torch" in out
    assert e.rules() == {"P1"}


def test_unused_name_removed_and_other_name_moved_keeps_comment():
    e = Edits(imports={
        (6, None): ImportAction("P1", "repoint", "vllm.model_executor.models.utils"),
        (6, "Gone"): ImportAction("P3", "remove"),
        (6, "AutoWeightsLoader"): ImportAction("P16", "repoint", "vllm_fl.compat.utils"),
    })
    out = apply_edits(BEFORE, e)
    assert "Gone" not in out
    assert "from vllm_fl.compat.utils import AutoWeightsLoader\n" in out
    assert "maybe_prefix,  # keep me" in out
    ast.parse(out)


def test_moved_name_split_from_statement():
    e = Edits(imports={(11, "MultiModalDataDict"): ImportAction("P13", "repoint", "vllm.multimodal.inputs")})
    out = apply_edits(BEFORE, e)
    assert "from vllm.inputs import OnlyTyped\nfrom vllm.multimodal.inputs import MultiModalDataDict\n" in out


def test_transformers_rename_renames_usages_too():
    e = Edits(imports={(5, "PreTrainedConfig"): ImportAction("P5", "rename", None, "PretrainedConfig")})
    out = apply_edits(BEFORE, e)
    assert "from transformers import PretrainedConfig\n" in out
    assert "PreTrainedConfig" not in out
    assert "isinstance(c, PretrainedConfig)" in out


def test_annotation_only_goes_under_type_checking_and_only_its_annotations_are_quoted():
    e = Edits(imports={(11, "OnlyTyped"): ImportAction("P14", "type_checking")})
    out = apply_edits(BEFORE, e)
    tree = ast.parse(out)
    assert "from __future__ import annotations" not in out  # other annotations stay evaluated
    assert "from typing import TYPE_CHECKING" in out
    guard = [n for n in tree.body if isinstance(n, ast.If)]
    assert len(guard) == 1 and ast.unparse(guard[0].body[0]) == "from vllm.inputs import OnlyTyped"
    assert "from vllm.inputs import MultiModalDataDict\n" in out
    assert 'def f(x: "OnlyTyped", c: PreTrainedConfig) -> MultiModalDataDict:' in out


def test_type_checking_name_goes_after_the_files_own_typing_import():
    src = (
        "import torch\nimport typing\nfrom typing import Optional\n\nfrom a import B\n\n\n"
        "def f(x: B, y: Optional[int]): pass\n"
    )
    out = apply_edits(src, Edits(imports={(5, "B"): ImportAction("P14", "type_checking")}))
    assert out == (
        "import torch\nimport typing\nfrom typing import Optional\nfrom typing import TYPE_CHECKING\n\n"
        "if TYPE_CHECKING:\n    from a import B\n\n\n"
        'def f(x: "B", y: Optional[int]): pass\n'
    )


def test_type_checking_reuses_existing_block():
    src = (
        "from typing import TYPE_CHECKING\n\nfrom a import B\n\nif TYPE_CHECKING:\n    from c import D\n\n"
        "def f(x: B, y: list[B] | None, z: D): pass\n"
    )
    out = apply_edits(src, Edits(imports={(3, "B"): ImportAction("P14", "type_checking")}))
    assert out.count("if TYPE_CHECKING:") == 1
    assert "    from c import D\n    from a import B\n" in out
    assert 'def f(x: "B", y: "list[B] | None", z: D): pass' in out


def test_no_quoting_when_the_file_defers_annotations_already():
    src = "from __future__ import annotations\n\nfrom a import B\n\n\ndef f(x: B): pass\n"
    out = apply_edits(src, Edits(imports={(3, "B"): ImportAction("P14", "type_checking")}))
    assert "def f(x: B): pass" in out and "if TYPE_CHECKING:\n    from a import B" in out


def test_config_import_redirected_to_bridge():
    e = Edits(imports={(12, "MiniConfig"): ImportAction("P2", "repoint", "vllm_fl.configs.mini")})
    out = apply_edits(BEFORE, e)
    assert "from vllm_fl.configs.mini import MiniConfig\n" in out
    assert "vllm.transformers_utils" not in out


def test_plain_import_of_missing_module_removed():
    src = "import os\nimport vllm._gone_ops\n\nx = os.sep\n"
    out = apply_edits(src, Edits(imports={(2, None): ImportAction("P3", "remove")}))
    assert out == "import os\n\nx = os.sep\n"


def test_untouched_text_is_byte_identical():
    assert apply_edits(BEFORE, Edits()) == BEFORE


def test_long_import_is_wrapped():
    names = [f"name_number_{i}" for i in range(12)]
    text = import_from_text("vllm.model_executor.models.utils", names)
    assert text.startswith("from vllm.model_executor.models.utils import (\n")
    assert all(len(line) <= 110 for line in text.splitlines())
    ast.parse(text)


def test_equivalent_import_becomes_a_tuple_of_pinned_classes_after_the_imports():
    from flagos_migrate.migrate.rewrites import Edits, ImportAction, apply_edits

    src = ("import torch\n"
           "from vllm.model_executor.layers.quantization.auto_gptq import AutoGPTQConfig  # merged upstream\n"
           "from vllm.config import VllmConfig\n\n\n"
           "def skip(q):\n    return isinstance(q, AutoGPTQConfig)\n")
    act = ImportAction("P13", "equivalent", targets=(("vllm.model_executor.layers.quantization.gptq", "GPTQConfig"),
                                                    ("vllm.model_executor.layers.quantization.gptq_marlin",
                                                     "GPTQMarlinConfig")))
    out = apply_edits(src, Edits(imports={(2, "AutoGPTQConfig"): act}))
    assert out == ("import torch\n"
                   "from vllm.model_executor.layers.quantization.gptq import GPTQConfig\n"
                   "from vllm.model_executor.layers.quantization.gptq_marlin import GPTQMarlinConfig\n"
                   "from vllm.config import VllmConfig\n\n"
                   "AutoGPTQConfig = (GPTQConfig, GPTQMarlinConfig)\n\n\n"
                   "def skip(q):\n    return isinstance(q, AutoGPTQConfig)\n")


def test_deferred_import_moves_into_the_functions_that_use_it():
    # P3 left for you: the file imports; the functions raise the same ImportError when called
    src = ("import torch\n"
           "from vllm.model_executor.layers.attention import StaticSinkAttention, Other\n\n\n"
           "class Sink(torch.nn.Module):\n"
           "    def __init__(self, n):\n"
           "        \"\"\"Doc.\"\"\"\n"
           "        super().__init__()\n"
           "        self.attn = StaticSinkAttention(n)\n\n"
           "    def one(self):\n        return StaticSinkAttention(1)\n\n\n"
           "def untouched():\n    return Other\n")
    act = ImportAction("P3", "defer", lines=(6, 11))
    out = apply_edits(src, Edits(imports={(2, "StaticSinkAttention"): act}))
    assert out == ("import torch\n"
                   "from vllm.model_executor.layers.attention import Other\n\n\n"
                   "class Sink(torch.nn.Module):\n"
                   "    def __init__(self, n):\n"
                   "        \"\"\"Doc.\"\"\"\n"
                   "        from vllm.model_executor.layers.attention import StaticSinkAttention\n"
                   "        super().__init__()\n"
                   "        self.attn = StaticSinkAttention(n)\n\n"
                   "    def one(self):\n"
                   "        from vllm.model_executor.layers.attention import StaticSinkAttention\n"
                   "        return StaticSinkAttention(1)\n\n\n"
                   "def untouched():\n    return Other\n")


def test_an_isinstance_check_of_a_class_nothing_pinned_builds_is_false_and_so_is_the_and_it_begins():
    # qianfan_ocr: upstream's OnlineQuantizationConfig (an absent subsystem); the quant keys after the check never run
    src = ("def patch(q, keys):\n"
           "    if isinstance(q, Fp8Config) or (\n"
           "        isinstance(q, OnlineQuantizationConfig)\n"
           "        and q.args.linear is not None\n"
           "        and q.args.linear.weight in (kA, kB)\n"
           "    ):\n"
           "        return 1\n"
           "    return (keys and isinstance(q, OnlineQuantizationConfig), isinstance(q.inner, OnlineQuantizationConfig))\n")
    checks = {(3, "OnlineQuantizationConfig"): "P3", (8, "OnlineQuantizationConfig"): "P3"}
    out = apply_edits(src, Edits(never_instances=checks))
    assert out == ("def patch(q, keys):\n"
                   "    if isinstance(q, Fp8Config) or False:\n"
                   "        return 1\n"
                   "    return (keys and False, False)\n")
