"""Per-model packages (vllm/models/<name>/): resolve and plan through migrate_model.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import migrate_model
import pytest
from flagos_migrate.cli import UsageError

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_tf5"
SCRIPT = ROOT / "scripts" / "migrate_model.py"


def run(capsys, *args) -> tuple[int, str, str]:
    try:
        code = migrate_model.main(list(args))
    except UsageError as exc:
        out, err = capsys.readouterr()
        return 2, out, f"{err}error: {exc.message}\nhint: {exc.hint}\n"
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def plugin(tmp_path) -> Path:
    (tmp_path / "vllm_fl" / "models").mkdir(parents=True)
    (tmp_path / "vllm_fl" / "__init__.py").write_text("def register_model():\n    pass\n")
    (tmp_path / "vllm_fl" / "models" / "__init__.py").write_text("")
    return tmp_path


def test_resolve_a_package_model_cuda_variant_by_default(capsys):
    code, out, _ = run(capsys, "resolve", "tiny", "--upstream", str(UPSTREAM))
    r = json.loads(out)
    assert code == 0
    assert r["package"] is True and r["variant"] == "nvidia" and r["upstream_module"] == "vllm.models.tiny"
    assert r["ModelClassName"] == "TinyForCausalLM"  # the draft head's table does not make it ambiguous
    assert r["architectures"] == ["TinyForCausalLM", "TinyMTPModel"]
    files = [f.split("upstream_tf5/")[1] for f in r["upstream_files"]]
    assert "vllm/models/tiny/nvidia/model.py" in files and "vllm/models/common/helpers.py" in files
    assert not any("/amd/" in f for f in files)


def test_variant_chooses_the_platform_sub_package(capsys):
    _, out, _ = run(capsys, "resolve", "tiny", "--upstream", str(UPSTREAM), "--variant", "amd")
    files = [f.split("upstream_tf5/")[1] for f in json.loads(out)["upstream_files"]]
    assert "vllm/models/tiny/amd/model.py" in files and not any("/nvidia/" in f for f in files)


def test_plan_groups_what_the_pinned_vllm_lacks_per_file(capsys, plugin):
    code, out, _ = run(capsys, "plan", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin), "--json")
    plan = json.loads(out)
    assert code == 1
    groups = plan["groups"]
    model = "vllm_fl/models/tiny/nvidia/model.py"
    assert groups["`vllm.model_executor.layers.sparse_mla` (module missing in the pinned vLLM)"] == [model]
    assert groups["custom torch ops: torch.ops._C"] == [model]
    # package-internal imports (relative, vllm.models.common) come along: they are not work items
    assert not any("tiny" in k or "common" in k for k in groups)
    assert plan["files"]["vllm_fl/models/tiny/common/layers.py"]["needs"] == []
    amd = json.loads(run(capsys, "plan", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin), "--json",
                         "--variant", "amd")[1])
    assert amd["groups"]["kernel toolchain `aiter` (custom CUDA/CuTe/Triton ops)"] == ["vllm_fl/models/tiny/amd/model.py"]


TINY_CONVERSION = {"model_types": ["tiny"], "source": ["TinyBaseForCausalLM"], "fields": ["vision_n_layers"],
                   "reads": {}, "line": 1}


def test_plan_reports_the_registrations_findings_as_apply_splits_them(capsys, plugin, monkeypatch):
    """The package plan's ``registration``: what the validator reports on the registration of the architectures
    apply would register (here a P25 architecture conversion put in the table for the fixture), left for you on the
    entry point exactly as apply leaves it."""
    from flagos_migrate.analysis import inherited

    code, out, _ = run(capsys, "plan", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin), "--json")
    reg = json.loads(out)["registration"]
    assert code == 1  # the groups
    assert reg == {"architectures": ["TinyForCausalLM"], "answered": True, "will_fix": [], "left_for_you": []}
    monkeypatch.setitem(inherited.ARCH_CONVERSIONS, "TinyForCausalLM", TINY_CONVERSION)
    code, out, _ = run(capsys, "plan", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin), "--json")
    plan = json.loads(out)
    assert code == 1 and list(plan) == ["resolved", "files", "groups", "registration"]
    reg = plan["registration"]
    assert reg["will_fix"] == []
    (conv,) = reg["left_for_you"]
    assert (conv["file"], conv["rule"], conv["severity"]) == ("vllm_fl/models/tiny/__init__.py", "P25", "warning")
    assert conv["data"]["converted_from"] == ["TinyBaseForCausalLM"] and conv["title"]
    assert "converts it to TinyForCausalLM" in conv["message"] and "vision_n_layers" in conv["message"]
    # apply leaves the same finding on the same file
    code, out, _ = run(capsys, "apply", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin), "--json",
                       "--dry-run")
    applied = [f for f in json.loads(out)["left_for_you"] if f["rule"] in ("P25", "P38", "P43")]
    assert applied == [conv]
    # text output: under the registration, indented
    code, out, _ = run(capsys, "plan", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin))
    tail = out.split("registration of TinyForCausalLM:\n")[1].splitlines()
    assert tail[:2] == ["  this tool will fix (0):", "  left for you (1):"]
    assert tail[2].startswith("    vllm_fl/models/tiny/__init__.py:") and "P25" in tail[2]


def test_plan_registration_of_every_architecture_until_answered(capsys, plugin):
    """--all-archs / --arch choose what the registration's findings are computed for, as for apply; an unknown
    architecture is a usage error (exit 2)."""
    reg = json.loads(run(capsys, "plan", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin), "--json",
                         "--all-archs")[1])["registration"]
    assert reg["architectures"] == ["TinyForCausalLM", "TinyMTPModel"] and reg["answered"] is True
    code, _, err = run(capsys, "plan", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin), "--arch", "Nope")
    assert code == 2 and "Nope: not an architecture or class of tiny" in err


def test_plan_exit_code_counts_the_registrations_findings(capsys, plugin, monkeypatch):
    """Exit 1 while the registration leaves a finding for you, even with no group left; 0 with neither."""
    from flagos_migrate.analysis import inherited
    from flagos_migrate.migrate import packages

    real = packages.plan_package
    monkeypatch.setattr(packages, "plan_package", lambda *a, **k: {**real(*a, **k), "groups": {}})
    assert run(capsys, "plan", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin))[0] == 0
    monkeypatch.setitem(inherited.ARCH_CONVERSIONS, "TinyForCausalLM", TINY_CONVERSION)
    assert run(capsys, "plan", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin))[0] == 1


ENTRY_AFTER = '''"""Tiny model entry point (fixture): the platform picks the variant."""

from vllm.platforms import current_platform

if current_platform.is_rocm():
    from vllm_fl.models.tiny.amd.model import TinyForCausalLM
else:
    from vllm_fl.models.tiny.nvidia.model import TinyForCausalLM

__all__ = ["TinyForCausalLM"]
'''


def test_apply_writes_the_package_at_its_place_with_its_entry_point(capsys, plugin):
    code, out, _ = run(capsys, "apply", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin), "--json")
    result = json.loads(out)
    assert code == 1  # the CUDA variant's sparse-MLA import is left for you
    pkg = plugin / "vllm_fl" / "models"
    written = sorted(p.relative_to(plugin).as_posix() for p in pkg.rglob("*.py"))
    assert written == ["vllm_fl/models/__init__.py", "vllm_fl/models/common/__init__.py",
                       "vllm_fl/models/common/helpers.py", "vllm_fl/models/tiny/__init__.py",
                       "vllm_fl/models/tiny/common/__init__.py", "vllm_fl/models/tiny/common/layers.py",
                       "vllm_fl/models/tiny/nvidia/__init__.py", "vllm_fl/models/tiny/nvidia/model.py"]
    # the entry point stays the entry point: its platform dispatch kept, imports re-pointed into the plugin
    assert (pkg / "tiny" / "__init__.py").read_text() == ENTRY_AFTER
    assert "from vllm_fl.models.common.helpers import double" in (pkg / "tiny" / "common" / "layers.py").read_text()
    assert not (plugin / "vllm_fl" / "compat").exists()  # the other variant is not sliced into compat/
    # registration names the package (the entry point serves the class); not the draft head's entry
    init = (plugin / "vllm_fl" / "__init__.py").read_text()
    assert 'ModelRegistry.register_model("TinyForCausalLM", "vllm_fl.models.tiny:TinyForCausalLM")' in init
    assert "TinyMTPModel" not in init
    left = {(f["file"], f["rule"], f["severity"]) for f in result["left_for_you"]}
    assert left == {("vllm_fl/models/tiny/nvidia/model.py", "P3", "error"),
                    ("vllm_fl/models/tiny/__init__.py", "P18", "warning")}
    amd = next(f for f in result["left_for_you"] if f["rule"] == "P18")
    assert "another platform's variant" in amd["message"] and "--variant nvidia" in amd["message"]
    record = json.loads((pkg / ".migration" / "tiny.json").read_text())
    assert "vllm_fl/models/tiny/__init__.py" in record["files"]
    assert record["files"]["vllm_fl/models/tiny/__init__.py"]["role"] == "model"
    # applied again: nothing changes
    assert run(capsys, "apply", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin))[1].startswith(
        "nothing changed")


def test_apply_amd_variant_writes_the_rocm_branch(capsys, plugin):
    run(capsys, "apply", "tiny", "--upstream", str(UPSTREAM), "--plugin", str(plugin), "--variant", "amd")
    pkg = plugin / "vllm_fl" / "models" / "tiny"
    assert (pkg / "amd" / "model.py").is_file() and not (pkg / "nvidia").exists()


# ------------------------------------------------------------------- real imports on vLLM 0.13.0

REAL_UPSTREAM = Path(os.environ.get("MMF_UPSTREAM") or Path.home() / ".cache" / "mmf" / "src" / "vllm-0.33.0")


def test_beam_applies_and_imports_on_the_pinned_vllm(tmp_path):
    """The smallest upstream package: apply writes vllm_fl/models/beam/, and every module it wrote
    (entry point included) imports on the real vLLM 0.13.0; registration names the package."""
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv or not (REAL_UPSTREAM / "vllm" / "models" / "beam" / "__init__.py").is_file():
        pytest.skip("needs $MMF_PINNED_VENV and the upstream vLLM source ($MMF_UPSTREAM)")
    plugin = tmp_path / "plugin"
    shutil.copytree(ROOT / "examples" / "plugin", plugin)
    applied = subprocess.run([sys.executable, str(SCRIPT), "apply", "beam", "--upstream", str(REAL_UPSTREAM),
                              "--plugin", str(plugin), "--json"], capture_output=True, text=True, timeout=1800)
    assert applied.returncode in (0, 1), applied.stderr[-2000:]
    plan = json.loads(applied.stdout)
    assert "BeamForCausalLM -> vllm_fl.models.beam:BeamForCausalLM" in plan["registration"]["add"]
    entry = (plugin / "vllm_fl" / "models" / "beam" / "__init__.py").read_text()
    assert "from vllm_fl.models.beam.nvidia.model import BeamForCausalLM" in entry
    verified = subprocess.run([sys.executable, str(SCRIPT), "verify", "beam", "--plugin", str(plugin), "--python",
                               venv, "--jobs", "1", "--json"], capture_output=True, text=True, timeout=1800)
    results = json.loads(verified.stdout)["results"]
    beam = {m: r for m, r in results.items() if m == "vllm_fl.models.beam" or m.startswith("vllm_fl.models.beam.")}
    assert len(beam) == 15 and all(r["ok"] for r in beam.values()), {m: r["message"] for m, r in beam.items()
                                                                      if not r["ok"]}
    # nothing the migration wrote fails; a module that needs a GPU is the machine's, not the migration's
    assert [m for m, r in results.items() if not r["ok"] and not r["environment"]] == []


def test_plan_deepseek_v4_leaves_the_architecture_conversion_for_you(tmp_path):
    """Golden on upstream 0.33.0's deepseek_v4 package: its plan names, under ``registration``, the P25 conversion
    upstream makes (DeepseekV4ForCausalLM with vision_n_layers -> DeepseekV4ForConditionalGeneration) and the
    hook the pinned vLLM never runs, left for you; unanswered (two main classes), every architecture of the
    package, drafts included (P38: no dspark method on 0.13.0). Answered with the text class, no conversion."""
    from flagos_migrate.migrate.packages import package_registration, plan_package
    from flagos_migrate.migrate.upstream import Upstream, open_upstream
    from flagos_migrate.pinned.api_index import PinnedApis
    from flagos_migrate.plugin.tree import PluginTree

    if not (REAL_UPSTREAM / "vllm" / "models" / "deepseek_v4" / "__init__.py").is_file():
        pytest.skip("needs the upstream vLLM source ($MMF_UPSTREAM)")
    up, apis = Upstream(open_upstream(str(REAL_UPSTREAM))), PinnedApis.load("0.13.0")
    shutil.copytree(ROOT / "examples" / "plugin", tmp_path / "plugin")
    plugin = PluginTree(tmp_path / "plugin")
    plan = plan_package(up, apis, "deepseek_v4", None, plugin)
    reg = plan["registration"]
    assert reg["answered"] is False
    assert reg["architectures"] == ["DSparkDraftModel", "DeepSeekV4MTPModel", "DeepseekV4ForCausalLM",
                                    "DeepseekV4ForConditionalGeneration"]
    assert reg["will_fix"] == []
    left = {(f.rule, f.severity, f.data["arch"]) for f in reg["left_for_you"]}
    assert left == {("P38", "error", "DSparkDraftModel"), ("P25", "warning", "DeepseekV4ForCausalLM"),
                    ("P25", "warning", "DeepseekV4ForConditionalGeneration")}, left
    (conv,) = [f for f in reg["left_for_you"] if (f.data or {}).get("converted_from")]
    assert conv.file == "vllm_fl/models/deepseek_v4/__init__.py"
    assert conv.data == {"arch": "DeepseekV4ForConditionalGeneration", "converted_from": ["DeepseekV4ForCausalLM"],
                         "runtime_unseen": True}
    assert ("a released checkpoint names DeepseekV4ForCausalLM in config.json (model_type deepseek_v4); upstream's "
            "ModelConfig converts it to DeepseekV4ForConditionalGeneration before choosing the model class depending "
            "on config.json's _dsv4_vl_inner, vision_n_layers") in conv.message
    assert conv.fix.startswith("serve a released checkpoint with --hf-overrides '{\"architectures\": "
                               "[\"DeepseekV4ForConditionalGeneration\"]}'")
    text = package_registration(up, apis, plugin, "deepseek_v4", "nvidia", archs=["DeepseekV4ForCausalLM"])
    assert text["answered"] is True and text["architectures"] == ["DeepseekV4ForCausalLM"]
    assert [(f.rule, f.data["arch"]) for f in text["left_for_you"]] == [("P25", "DeepseekV4ForCausalLM")]
