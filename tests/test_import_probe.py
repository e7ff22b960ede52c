"""import_probe: real imports in a forked, preloaded worker; first-error parsing; likely rules.

The first group runs with the test interpreter on tiny modules written here (no vLLM needed).
The last test imports a few model modules in a venv with the pinned vLLM and skips without
$MMF_PINNED_VENV.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.pinned.sources import open_source
from flagos_migrate.verify.import_probe import (
    PINNED_VENV_ENV,
    ProbeResult,
    likely_rule,
    parse_missing,
    probe_imports,
    probe_in_current_python,
    python_of,
)

from benchmarks.corpus import SHARED_MODULES, absolutize_relative_imports, lay_out, model_files

MODULES = {
    "good": "VALUE = 42\n",
    "missing_mod": "import os\nimport no_such_module_mmf_xyz\n",
    "cannot_name": "from json import no_such_name_mmf\n",
    "attr": "class Base:\n    pass\n\n\nBase()._mark_tower_model()\n",
    "syntax": "def broken(:\n    pass\n",
    "hangs": "import time\ntime.sleep(60)\n",
    "exits": "import os\nos._exit(7)\n",
    "kwarg": "def f(a):\n    return a\n\n\nf(a=1, orig_to_new_stacked={})\n",
    "arity": "def g(a, b):\n    return a\n\n\ng(1)\n",
    "deep": "from pk.helper import run\n\nrun()\n",
    "nested": "from pk.missing_mod import VALUE\n",
    "helper": "def run():\n    raise ValueError('boom in helper')\n",
    "leaks": "import os\nos.environ['MMF_PROBE_LEAK'] = '1'\nimport sys\nsys.modules['mmf_leak_marker'] = sys\n",
    "sees_leak": "import os\nassert 'MMF_PROBE_LEAK' not in os.environ, 'leaked'\nimport mmf_leak_marker\n",
}


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    pkg = root / "pk"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, text in MODULES.items():
        (pkg / f"{name}.py").write_text(text)
    mods = [f"pk.{n}" for n in MODULES] + ["pk.does_not_exist"]
    t0 = time.monotonic()
    results = probe_imports(sys.executable, mods, [str(root)], jobs=4, timeout=3, preload=())
    return root, results, time.monotonic() - t0


def test_ok_module(probed):
    _, res, _ = probed
    assert res["pk.good"].ok
    assert res["pk.good"].error_type == ""
    assert res["pk.good"].origin.endswith("pk/good.py")
    assert likely_rule(res["pk.good"]) is None


def test_missing_module(probed):
    r = probed[1]["pk.missing_mod"]
    assert not r.ok and r.error_type == "ModuleNotFoundError"
    assert r.missing == "no_such_module_mmf_xyz"
    assert r.in_probed_file and r.file.endswith("pk/missing_mod.py") and r.line == 2
    assert r.rule is None  # a third-party package, not a catalog rule


def test_cannot_import_name(probed):
    r = probed[1]["pk.cannot_name"]
    assert r.error_type == "ImportError"
    assert (r.missing, r.missing_from) == ("no_such_name_mmf", "json")
    assert r.line == 1 and r.in_probed_file
    assert "(" not in r.first_error  # the path of the module is cut for grouping


def test_attribute_error_is_missing_method(probed):
    r = probed[1]["pk.attr"]
    assert r.error_type == "AttributeError"
    assert (r.missing, r.missing_from) == ("_mark_tower_model", "Base")
    assert r.line == 5
    assert r.rule == "P4"


def test_syntax_error(probed):
    r = probed[1]["pk.syntax"]
    assert r.error_type == "SyntaxError" and r.rule == "P20"
    assert r.file.endswith("pk/syntax.py") and r.line == 1 and r.in_probed_file


def test_timeout_kills_only_that_child(probed):
    _, res, elapsed = probed
    r = res["pk.hangs"]
    assert r.error_type == "Timeout" and not r.ok
    assert elapsed < 30  # the 60 s sleep was cut at the 3 s timeout
    assert res["pk.good"].ok  # the others still ran


def test_os_exit_is_reported(probed):
    r = probed[1]["pk.exits"]
    assert r.error_type == "Exited" and "7" in r.message


def test_type_errors_map_to_kwarg_and_arity(probed):
    _, res, _ = probed
    assert res["pk.kwarg"].rule == "P6" and res["pk.kwarg"].missing == "orig_to_new_stacked"
    assert res["pk.arity"].rule == "P7" and res["pk.arity"].missing == "b"


def test_error_in_helper_points_at_probed_file_and_raise_site(probed):
    r = probed[1]["pk.deep"]
    assert r.error_type == "ValueError" and r.message == "boom in helper"
    assert r.file.endswith("pk/deep.py") and r.line == 3 and r.in_probed_file
    assert r.raised_at.endswith("pk/helper.py:2")


def test_each_module_gets_a_fresh_fork(probed):
    res = probed[1]
    assert res["pk.leaks"].ok
    assert not res["pk.sees_leak"].ok  # neither env nor sys.modules changes of "leaks" are visible
    assert res["pk.sees_leak"].error_type in ("AssertionError", "ModuleNotFoundError")


def test_unknown_module_and_order(probed):
    res = probed[1]
    assert res["pk.does_not_exist"].error_type == "ModuleNotFoundError"
    assert list(res)[: len(MODULES)] == [f"pk.{n}" for n in MODULES]


def test_current_python_and_bad_python(tmp_path):
    (tmp_path / "solo_mod_mmf.py").write_text("import json\n")
    stats: dict = {}
    res = probe_in_current_python(["solo_mod_mmf"], [str(tmp_path)], preload=["json", "no_such_preload_mmf"],
                                  stats=stats)
    assert res["solo_mod_mmf"].ok
    assert list(stats["preload_failed"]) == ["no_such_preload_mmf"]
    assert stats["python_version"] == sys.version.split()[0]
    with pytest.raises(UsageError):
        probe_imports(str(tmp_path / "no-python"), ["x"])
    with pytest.raises(UsageError):
        python_of(tmp_path)  # a folder without bin/python


@pytest.mark.parametrize(
    "etype,message,rule",
    [
        ("ModuleNotFoundError", "No module named 'vllm.model_executor.layers.attention'", "P3"),
        ("ModuleNotFoundError", "No module named 'vllm_fl.models.qwen3_5'", "P18"),
        ("ModuleNotFoundError", "No module named 'transformers.models.audioflamingo3'", "P5"),
        ("ModuleNotFoundError", "No module named 'timm'", None),
        ("ImportError", "cannot import name 'PreTrainedConfig' from 'transformers' (/x/__init__.py)", "P5"),
        ("ImportError", "cannot import name 'MultiModalDummyOptions' from 'vllm.config.multimodal' (/x.py)", "P3"),
        ("ImportError", "cannot import name 'Foo' from 'vllm_fl.ops' (/x.py)", "P18"),
        ("AttributeError", "'Qwen3VLForConditionalGeneration' object has no attribute '_mark_tower_model'", "P4"),
        ("AttributeError", "'CacheConfig' object has no attribute 'mamba_cache_mode'", "P9"),
        ("AttributeError", "module 'vllm.envs' has no attribute 'VLLM_NEW_FLAG'", "P3"),
        ("TypeError", "WeightsMapper.__init__() got an unexpected keyword argument 'orig_to_new_stacked'", "P6"),
        ("TypeError", "Attention.__init__() missing 1 required positional argument: 'scale'", "P7"),
        ("TypeError", "f() takes 2 positional arguments but 3 were given", "P7"),
        ("AssertionError", "Duplicate op name: gemma_rms_norm", "P11"),
        ("RuntimeError", "Tried to register an operator (vllm::sequence_parallel_chunk_impl(Tensor x) -> Tensor) with "
                         "the same name and overload name multiple times. Each overload's schema should only be "
                         "registered with a single call to def().", "P11"),
        ("SyntaxError", "invalid syntax (x.py, line 3)", "P20"),
        ("ValueError", "something else", None),
    ],
)
def test_likely_rule_table(etype, message, rule):
    assert likely_rule({"type": etype, "message": message, "module": "m"}) == rule


def test_moved_name_becomes_p13():
    err = ProbeResult("m", False, "ImportError", "cannot import name 'Attention' from 'vllm.model_executor.layers.attention'")
    assert likely_rule(err) == "P3"
    assert likely_rule(err, moved=lambda mod, name: name == "Attention") == "P13"


def test_missing_module_whose_names_moved_becomes_p13():
    err = {"type": "ModuleNotFoundError", "message": "No module named 'vllm.model_executor.layers.attention'",
           "imported_names": ["Attention"]}
    assert likely_rule(err) == "P3"
    assert likely_rule(err, moved=lambda mod, name: name == "Attention") == "P13"
    err["imported_names"] = ["Attention", "NewThing"]
    assert likely_rule(err, moved=lambda mod, name: name == "Attention") == "P3"


def test_imported_names_of_failing_statement(probed):
    r = probed[1]["pk.cannot_name"]
    assert r.imported_names == ["no_such_name_mmf"]
    nested = probed[1]["pk.nested"]  # fails inside pk.missing_mod, not on the names it imports
    assert nested.missing == "no_such_module_mmf_xyz" and nested.line == 1 and nested.in_probed_file
    assert nested.imported_names == []


def test_parse_missing_keyword_only():
    assert parse_missing("TypeError", "f() missing 2 required keyword-only arguments: 'a' and 'b'") == ("a,b", "f")


def test_absolutize_relative_imports_keeps_lines():
    src = textwrap.dedent(
        """\
        from . import utils
        from .utils import (a,
            b)
        import os  # from .x import y stays a comment
        if True:
            from ..layers.linear import X as Y  # comment
        from .interfaces import A; from .registry import B
        from .utils_extra import c
        """
    )
    out = absolutize_relative_imports(src, "vllm.model_executor.models.llama")
    assert out.splitlines() == [
        "from vllm.model_executor.models import utils",
        "from vllm.model_executor.models.utils import (a,",
        "    b)",
        "import os  # from .x import y stays a comment",
        "if True:",
        "    from vllm.model_executor.layers.linear import X as Y  # comment",
        "from vllm.model_executor.models.interfaces import A; from vllm.model_executor.models.registry import B",
        "from vllm.model_executor.models.utils_extra import c",
    ]
    assert absolutize_relative_imports("def (:\n", "a.b") == "def (:\n"


def test_corpus_listing_and_layout(tmp_path):
    root = tmp_path / "src"
    models = root / "vllm" / "model_executor" / "models"
    (models / "transformers").mkdir(parents=True)
    for pkg in (root / "vllm", root / "vllm" / "model_executor", models, models / "transformers"):
        (pkg / "__init__.py").write_text("")
    (models / "llama.py").write_text("from .utils import x\n")
    (models / "utils.py").write_text("x = 1\n")
    (models / "transformers" / "base.py").write_text("")
    src = open_source(root, "vllm")
    assert model_files(src) == ["vllm/model_executor/models/llama.py"]
    assert "vllm/model_executor/models/utils.py" in model_files(src, include_shared=True)
    assert "utils" in SHARED_MODULES
    mapping = lay_out(src, model_files(src), tmp_path / "out")
    assert mapping == {"vllm/model_executor/models/llama.py": "mmf_corpus.llama"}
    text = (tmp_path / "out" / "mmf_corpus" / "llama.py").read_text()
    assert text == "from vllm.model_executor.models.utils import x\n"


@pytest.mark.skipif(not os.environ.get(PINNED_VENV_ENV), reason=f"needs {PINNED_VENV_ENV} (a venv with vLLM 0.13.0)")
def test_real_pinned_vllm(tmp_path):
    python = python_of(os.environ[PINNED_VENV_ENV])
    pkg = tmp_path / "mmf_real"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "uses_llama.py").write_text("from vllm.model_executor.models.llama import LlamaForCausalLM\n")
    (pkg / "new_attention.py").write_text("from vllm.model_executor.layers.attention import Attention\n")
    (pkg / "tf5.py").write_text("from transformers import PreTrainedConfig\n")
    res = probe_imports(python, ["mmf_real.uses_llama", "mmf_real.new_attention", "mmf_real.tf5"],
                        [str(tmp_path)], jobs=2, timeout=120)
    assert res["mmf_real.uses_llama"].ok, res["mmf_real.uses_llama"].first_error
    assert res["mmf_real.new_attention"].rule == "P3"
    assert res["mmf_real.new_attention"].missing == "vllm.model_executor.layers.attention"
    assert res["mmf_real.tf5"].rule == "P5" and res["mmf_real.tf5"].missing == "PreTrainedConfig"
    assert Path(res["mmf_real.tf5"].file).name == "tf5.py"


def test_killed_probe_leaves_no_hung_child(tmp_path):
    pidfile = tmp_path / "child.pid"
    (tmp_path / "hang_forever_mmf.py").write_text(
        f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)\n"
    )
    scripts = Path(__file__).resolve().parent.parent / "scripts"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from flagos_migrate.verify.import_probe import probe_imports;"
        "probe_imports(sys.executable, ['hang_forever_mmf'], [sys.argv[2]], timeout=120, preload=())"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(scripts), str(tmp_path)])
    try:
        deadline = time.monotonic() + 20
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline, "the probed module never started"
            time.sleep(0.05)
        child = int(pidfile.read_text())
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_plugin_init_needing_a_gpu_is_skipped_and_classified_as_environment(tmp_path):
    """A plugin whose __init__ imports a GPU-only package (flag_gems without a GPU): its model
    files import without running that __init__; a module that needs the package itself is an
    environment failure with a reason, never a code failure without a rule."""
    (tmp_path / "gpu_pkg").mkdir()
    (tmp_path / "gpu_pkg" / "__init__.py").write_text("raise RuntimeError('flag_gems: the device is missing')\n")
    plug = tmp_path / "plug"
    (plug / "models").mkdir(parents=True)
    (plug / "__init__.py").write_text("import gpu_pkg\n")
    (plug / "models" / "__init__.py").write_text("")
    (plug / "models" / "model.py").write_text("import json\nVALUE = json.dumps(1)\n")
    (plug / "models" / "kernel.py").write_text("import gpu_pkg\n")
    (plug / "models" / "needs_cuda.py").write_text("raise RuntimeError('Found no NVIDIA driver on your system')\n")
    (plug / "models" / "broken.py").write_text("raise ValueError('a bug in the model file')\n")
    (plug / "models" / "timm_user.py").write_text("import no_such_vision_pkg_mmf\n")
    mods = [f"plug.models.{n}" for n in ("model", "kernel", "needs_cuda", "broken", "timm_user")]
    plain = probe_imports(sys.executable, mods[:1], [str(tmp_path)], preload=())
    r = plain["plug.models.model"]
    assert not r.ok and r.rule is None and r.raised_in == "gpu_pkg"
    assert r.environment == "raised inside the third-party package 'gpu_pkg' while it was imported"
    res = probe_imports(sys.executable, mods, [str(tmp_path)], preload=(), no_init=["plug"])
    assert res["plug.models.model"].ok
    assert "third-party package 'gpu_pkg'" in res["plug.models.kernel"].environment
    assert res["plug.models.needs_cuda"].environment == "needs a GPU (or its driver), which this machine lacks"
    assert res["plug.models.timm_user"].environment == "the package 'no_such_vision_pkg_mmf' is not installed in this Python"
    broken = res["plug.models.broken"]
    assert not broken.ok and broken.environment == "" and broken.in_probed_file  # the code's own error
