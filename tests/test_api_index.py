"""The static API index: building from source (folder, package folder, wheel) and querying it."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.pinned import api_index
from flagos_migrate.pinned.api_index import ApiIndex, PinnedApis, Symbol
from flagos_migrate.pinned.index_builder import build_index, module_record
from flagos_migrate.pinned.sources import git_head, module_name, open_source

ROOT = Path(__file__).resolve().parents[1]

MINI = {
    "mini/__init__.py": """
        from typing import TYPE_CHECKING
        from .core import Engine as Engine
        from .layers import *
        __all__ = ["Engine", "Linear"]
        if TYPE_CHECKING:
            from .hidden import OnlyForTypes
    """,
    "mini/core.py": """
        import torch
        from torch import nn
        from dataclasses import dataclass

        try:
            from fast_ext import kernel
        except ImportError:
            kernel = None

        class Base(nn.Module):
            level = 1
            def __init__(self, size: int, *, scale: float = 1.0, **kw):
                super().__init__()
                self.size = size
            def forward(self, x):
                return x * self.size
            @property
            def doubled(self):
                return self.size * 2

        class Engine(Base):
            def run(self, a, b=2, *args, flag, **kwargs):
                return self.helper + config.width

        @dataclass
        class Settings:
            name: str
            depth: int = 3

        def make(x, y=1, /, z=2):
            return x
    """,
    "mini/layers.py": """
        __all__ = ["Linear"]
        from mini.utils.ops import CustomOp, direct_register_custom_op

        @CustomOp.register("mini_linear")
        class Linear:
            pass

        class _Private:
            pass

        direct_register_custom_op(op_name="mini_fused", op_func=None)
    """,
    "mini/utils/__init__.py": "",
    "mini/utils/ops.py": """
        class CustomOp:
            @classmethod
            def register(cls, name):
                return lambda c: c
        def direct_register_custom_op(op_name, op_func):
            pass
    """,
    "mini/lazy.py": """
        _MAP = {"Thing": "mini.core:Engine", "Other": ".core:Settings"}
        __all__ = ["Thing", "Other"]
        def __getattr__(name):
            raise AttributeError(name)
    """,
    "mini/opaque.py": """
        def __getattr__(name):
            return name
    """,
    "mini/broken.py": "def oops(:\n",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


@pytest.fixture()
def mini_index(tmp_path) -> ApiIndex:
    src = open_source(write_tree(tmp_path, MINI), "mini")
    return ApiIndex(json_roundtrip(build_index(src)))


def json_roundtrip(data: dict) -> dict:
    """As written to disk and read back (records are JSON text, decoded lazily)."""
    raw = gzip.compress(json.dumps(data).encode())
    path_data = json.loads(gzip.decompress(raw))
    path_data["modules"] = api_index.LazyRecords(path_data["modules"])
    return path_data


def test_module_names_and_unparsable_files(tmp_path):
    src = open_source(write_tree(tmp_path, MINI), "mini")
    data = build_index(src)
    assert set(data["modules"]) == {
        "mini", "mini.core", "mini.layers", "mini.utils", "mini.utils.ops", "mini.lazy", "mini.opaque",
    }
    assert data["unparsable"] == ["mini/broken.py"]
    assert module_name("mini/utils/__init__.py") == "mini.utils"


def test_resolve_follows_reexports_stars_and_submodules(mini_index):
    assert mini_index.resolve("mini", "Engine") == Symbol("mini.core", "Engine", "class")
    assert mini_index.resolve("mini", "Linear") == Symbol("mini.layers", "Linear", "class")
    # __all__ of the star-imported module hides private names
    assert mini_index.resolve("mini", "_Private") is None
    assert mini_index.resolve("mini", "utils") == Symbol("mini.utils", "", "module")
    assert mini_index.resolve("mini", "OnlyForTypes") == Symbol("mini", "OnlyForTypes", "typing-only")
    assert mini_index.resolve("mini", "Nothing") is None
    # names bound under try/except are still bound
    assert mini_index.resolve("mini.core", "kernel").kind in ("var", "external")
    assert mini_index.resolve("mini.core", "nn") == Symbol("torch", "nn", "external")


def test_lazy_modules(mini_index):
    assert mini_index.resolve("mini.lazy", "Thing") == Symbol("mini.core", "Engine", "class")
    assert mini_index.resolve("mini.lazy", "Other") == Symbol("mini.core", "Settings", "class")
    assert mini_index.resolve("mini.lazy", "Missing") is None  # its map is complete
    assert mini_index.resolve("mini.opaque", "anything").kind == "lazy"  # unknowable: not "missing"


def test_class_records_and_signatures(mini_index):
    rec = mini_index.modules["mini.core"]["classes"]["Base"]
    assert rec["bases"] == ["nn.Module"]
    assert {"level", "size", "doubled"} <= set(rec["attrs"])
    init = rec["methods"]["__init__"]
    assert init == {"p": ["size"], "r": 1, "k": ["scale"], "kr": [], "kw": 1}
    run = mini_index.modules["mini.core"]["classes"]["Engine"]["methods"]["run"]
    assert run == {"p": ["a", "b"], "r": 1, "k": ["flag"], "kr": ["flag"], "a": 1, "kw": 1}
    assert mini_index.modules["mini.core"]["classes"]["Engine"]["cfg"] == ["width"]
    assert mini_index.modules["mini.core"]["functions"]["make"] == {"p": ["x", "y", "z"], "r": 1, "k": [], "kr": [], "po": 2}
    settings = mini_index.modules["mini.core"]["classes"]["Settings"]
    assert settings["dc"] and settings["fields"] == [["name", False], ["depth", True]]


def test_custom_ops_and_definers(mini_index):
    assert mini_index.custom_ops() == {"mini_linear": "mini.layers", "mini_fused": "mini.layers"}
    assert mini_index.definers("Engine") == [("mini.core", "class")]


def test_mro_and_members_with_external_base(mini_index):
    apis = PinnedApis(mini_index, None, extra={"mini": mini_index})
    engine = Symbol("mini.core", "Engine", "class")
    classes, external = apis.mro(engine)
    assert [s.name for s, _ in classes] == ["Engine", "Base"]
    assert external == ["torch.nn.Module"]
    assert apis.class_has_member(engine, "doubled") is True
    assert apis.class_has_member(engine, "register_buffer") is True  # from torch.nn.Module's members
    assert apis.class_has_member(engine, "_mark_tower_model") is False
    assert apis.init_signature(engine)["p"] == ["size"]
    assert apis.init_signature(Symbol("mini.core", "Settings", "class")) == {
        "p": ["name", "depth"], "r": 1, "k": [], "kr": []
    }


def test_wheel_and_package_folder_sources(tmp_path):
    tree = write_tree(tmp_path / "tree", {k: v for k, v in MINI.items() if k != "mini/broken.py"})
    wheel = tmp_path / "mini-1.2.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for p in sorted((tree / "mini").rglob("*.py")):
            zf.write(p, p.relative_to(tree).as_posix())
        zf.writestr("mini-1.2.3.dist-info/METADATA", "Name: mini\n")
    from_wheel = open_source(wheel, "mini")
    from_pkg = open_source(tree / "mini", "mini")
    assert from_wheel.version == "1.2.3"
    assert from_wheel.files() == from_pkg.files()
    assert build_index(from_wheel)["modules"] == build_index(from_pkg)["modules"]


def test_source_errors_say_what_to_do(tmp_path):
    with pytest.raises(UsageError) as missing:
        open_source(tmp_path / "nope", "vllm")
    assert "pip download vllm" in missing.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="does not contain the package 'vllm'"):
        open_source(tmp_path / "empty", "vllm")
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="not a readable wheel"):
        open_source(tmp_path / "bad.whl", "vllm")


def test_git_head_reads_checkout_without_git(tmp_path):
    repo = tmp_path / "repo"
    write_tree(repo, {"vllm/__init__.py": ""})
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"], check=True
    )
    expected = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert git_head(repo) == expected.strip()
    assert open_source(repo, "vllm").version == f"git:{expected.strip()}"


def test_record_keeps_type_checking_names_apart():
    rec = module_record("m.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from x import Y\nelse:\n    Z = 1\n")
    assert rec["tc"]["imports"] == {"Y": "x:Y"}
    assert rec["defs"] == {"Z": "var"}
    assert rec["imports"] == {"TYPE_CHECKING": "typing:TYPE_CHECKING"}


# -- the shipped index of the pinned version: facts from the drift measurements ---------------------


@pytest.fixture(scope="module")
def pinned() -> PinnedApis:
    return PinnedApis.load("0.13.0")


def test_shipped_index_covers_vllm_0_13_0(pinned):
    assert pinned.vllm.version == "0.13.0" and len(pinned.vllm.modules) == 1179
    assert pinned.transformers.version == "4.57.6"


@pytest.mark.parametrize(
    ("module", "name", "defined_in"),
    [
        ("vllm.attention.layer", "Attention", "vllm.attention.layer"),
        ("vllm.multimodal.inputs", "MultiModalDataDict", "vllm.multimodal.inputs"),
        ("vllm.config", "VllmConfig", "vllm.config.vllm"),
        ("vllm", "LLM", "vllm.entrypoints.llm"),  # served by vllm/__init__'s lazy __getattr__
        ("transformers", "PretrainedConfig", "transformers.configuration_utils"),
    ],
)
def test_pinned_names_present(pinned, module, name, defined_in):
    assert pinned.resolve(module, name).module == defined_in


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("transformers", "PreTrainedConfig"),  # the transformers 5 spelling
        ("vllm.inputs", "MultiModalDataDict"),
        ("vllm", "NoSuchThing"),
    ],
)
def test_pinned_names_missing(pinned, module, name):
    assert pinned.resolve(module, name) is None


def test_pinned_modules_missing(pinned):
    assert pinned.has_module("vllm.model_executor.layers.attention") is False
    assert pinned.has_module("vllm.v1.attention.backend") is False
    assert pinned.has_module("torch.nn") is None  # not indexed: unknown


def test_mark_tower_model_absent_from_pinned_multimodal_bases(pinned):
    qwen2_vl = pinned.resolve("vllm.model_executor.models.qwen2_vl", "Qwen2VLForConditionalGeneration")
    assert pinned.class_has_member(qwen2_vl, "_mark_tower_model") is False
    assert pinned.class_has_member(qwen2_vl, "get_language_model") is True


def test_weights_mapper_signature_lacks_stacked_mapping(pinned):
    sig = pinned.callable_signature(pinned.resolve("vllm.model_executor.models.utils", "WeightsMapper"))
    assert "orig_to_new_prefix" in sig["p"] and "orig_to_new_stacked" not in sig["p"] + sig["k"]


def test_unknown_pinned_version_is_a_clear_error():
    with pytest.raises(UsageError) as err:
        PinnedApis.load("0.0.1")
    assert "build_api_index.py vllm==0.0.1" in err.value.hint


def test_build_script_dry_run_on_a_folder(tmp_path):
    tree = write_tree(tmp_path / "t", {"vllm/__init__.py": "X = 1\n", "vllm/version.py": '__version__ = "9.9.9"\n'})
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/build_api_index.py"), "--package", "vllm", str(tree), "--dry-run", "--json"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["version"] == "9.9.9" and summary["modules"] == 2 and summary["output"] is None
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts/build_api_index.py"), str(tmp_path / "missing")],
        capture_output=True, text=True,
    )
    assert bad.returncode == 2 and "error: source not found" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "line",
    ["__version__ = '0.33.0'", 'version: str = "0.33.0"', "__version__ = version = '0.33.0'"],
)
def test_version_of_an_unpacked_package_folder(tmp_path, line):
    write_tree(tmp_path, {"vllm/__init__.py": "", "vllm/_version.py": f"# generated\n{line}\n"})
    assert open_source(tmp_path, "vllm").version == "0.33.0"


def test_namedtuple_based_classes_are_fully_known(pinned):
    """GroupShape derives from a NamedTuple: its members are known, so a read of an upstream-only
    member (``GroupShape.PER_CHANNEL``) is a definite miss, not "maybe from an unknown base"."""
    gs = pinned.resolve("vllm.model_executor.layers.quantization.utils.quant_utils", "GroupShape")
    assert pinned.mro(gs)[1] == ["typing.NamedTuple"]
    assert pinned.class_has_member(gs, "PER_CHANNEL") is False
    assert pinned.class_has_member(gs, "PER_TOKEN") is True  # a ClassVar of the pinned class
    assert pinned.class_has_member(gs, "row") is True  # a field of its NamedTuple base
    assert pinned.class_has_member(gs, "_replace") is True  # what every NamedTuple has
