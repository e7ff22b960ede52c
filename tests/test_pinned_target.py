"""The pinned target: where the vLLM version comes from, which transformers runs with it, and
how build_api_index.py records and finds both."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.pinned import api_index
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.pinned.index_builder import RECORDS
from flagos_migrate.pinned.sources import installed_beside, open_source, required_spec
from flagos_migrate.pinned.target import DEFAULT_VLLM, declared_vllm, installed_vllm, resolve_target

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "scripts" / "build_api_index.py"


def plugin_with(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "vllm_fl").mkdir(parents=True, exist_ok=True)
    (tmp_path / "vllm_fl" / "__init__.py").write_text("def register_model():\n    pass\n")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


@pytest.mark.parametrize("files, version, where", [
    ({"pyproject.toml": '[project.optional-dependencies]\ntest = ["pytest", "vllm[audio]==0.20.2"]\n'},
     "0.20.2", "pyproject.toml: vllm[audio]==0.20.2"),
    ({"setup.py": 'setup(name="vllm-plugin-FL", install_requires=["vllm >= 0.18.1, < 0.19"])\n'},
     "0.18.1", "setup.py: vllm >= 0.18.1"),
    ({"requirements/common.txt": "torch\nvllm~=0.19.0\n"}, "0.19.0", "common.txt: vllm~=0.19.0"),
    # an exact pin anywhere wins over a lower bound read earlier
    ({"pyproject.toml": 'dependencies = ["vllm>=0.13"]\n', "requirements.txt": "vllm==0.13.0\n"},
     "0.13.0", "requirements.txt: vllm==0.13.0"),
])
def test_the_plugin_checkout_declares_its_vllm(tmp_path, files, version, where):
    plugin = plugin_with(tmp_path, files)
    assert declared_vllm(plugin) == (version, where)
    assert declared_vllm(plugin / "vllm_fl") == (version, where)  # the package folder itself
    target = resolve_target(None, plugin)
    assert (target.vllm, target.source) == (version, f"plugin {where}")
    # --pinned always wins
    assert resolve_target("0.13.0", plugin).source == "--pinned"


def test_names_that_only_contain_vllm_declare_nothing(tmp_path):
    plugin = plugin_with(tmp_path, {"pyproject.toml": 'name = "vllm-plugin-FL"\ndeps = ["vllm_fl==1.0", '
                                                      '"my-vllm==2.0", "flagos.vllm==3"]\n'})
    assert declared_vllm(plugin) is None
    target = resolve_target(None, plugin)
    expected = installed_vllm()
    assert target.vllm == (expected or DEFAULT_VLLM)
    assert target.source == ("default" if expected is None else f"vllm installed in {sys.executable}")


def test_the_default_target_reads_transformers_from_the_index():
    target = resolve_target(None, None) if installed_vllm() is None else resolve_target(DEFAULT_VLLM)
    assert (target.vllm, target.transformers, target.package) == ("0.13.0", "4.57.6", "vllm_fl")
    assert resolve_target("0.13.0", transformers="4.50.0").transformers == "4.50.0"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "0.13.0/..", "latest", ""])
def test_a_version_that_is_not_one_is_refused(bad):
    if not bad:
        assert resolve_target(bad).source != "--pinned"  # empty means "not given"
        return
    with pytest.raises(UsageError):
        resolve_target(bad)


def test_a_short_version_finds_the_index_of_the_same_release():
    assert api_index.find_index_file("vllm", "0.13") == api_index.find_index_file("vllm", "0.13.0")


def _site_packages(tmp_path: Path, requires: str | None, installed: str | None) -> Path:
    site = tmp_path / "site-packages"
    (site / "vllm").mkdir(parents=True)
    (site / "vllm" / "__init__.py").write_text("X = 1\n")
    info = site / "vllm-9.9.9.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", "Name: vllm", "Version: 9.9.9", "Requires-Dist: torch==2.11.0"]
    if requires:
        lines += [f"Requires-Dist: {requires}", 'Requires-Dist: transformers>=9; extra == "bench"']
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    if installed:
        (site / f"transformers-{installed}.dist-info").mkdir()
    return site


def test_transformers_requirement_and_installed_version_are_read_from_the_distribution(tmp_path):
    source = open_source(_site_packages(tmp_path, "transformers!=5.0.*,>=4.56.0", "4.57.6"), "vllm")
    assert source.version == "9.9.9"
    assert required_spec(source, "transformers") == "!=5.0.*,>=4.56.0"
    assert required_spec(source, "tokenizers") is None
    assert installed_beside(source, "transformers") == "4.57.6"


def _build(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUILD), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_the_index_records_the_transformers_installed_beside_vllm(tmp_path):
    site = _site_packages(tmp_path, "transformers<5,>=4.56.0", "4.57.6")
    out = tmp_path / "index"
    proc = _build("--package", "vllm", str(site), "--output", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["transformers"] == "4.57.6" and summary["transformers_requires"] == "<5,>=4.56.0"
    assert summary["transformers_from"].startswith("installed beside vllm")
    # transformers 4.57.6 is shipped: nothing else was built
    assert summary["transformers_index"] == str(api_index.DATA_DIR / "transformers-4.57.6.json.gz")
    data = json.loads(gzip.decompress((out / "vllm-9.9.9.json.gz").read_bytes()))
    assert (data["transformers"], data["transformers_installed"]) == ("4.57.6", "4.57.6")
    # and every command then pairs 9.9.9 with it, with no table to edit
    os.environ[api_index.USER_DIR_ENV] = str(out)
    try:
        api_index.load_index.cache_clear()
        apis = PinnedApis.load("9.9.9")
        assert apis.transformers.version == "4.57.6" and resolve_target("9.9.9").transformers == "4.57.6"
    finally:
        del os.environ[api_index.USER_DIR_ENV]
        api_index.load_index.cache_clear()


def test_transformers_override_and_an_index_without_transformers(tmp_path, monkeypatch):
    site = _site_packages(tmp_path, None, None)
    out = tmp_path / "index"
    proc = _build("--package", "vllm", str(site), "--output", str(out), "--transformers", "4.57.6", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["transformers_from"] == "--transformers"
    # without a requirement or an override the index names none: loading it is an error, not a
    # silent "every transformers name is external"
    proc = _build("--package", "vllm", str(site), "--output", str(out), "--json")
    assert proc.returncode == 0 and "pass --transformers VERSION" in proc.stderr
    monkeypatch.setenv(api_index.USER_DIR_ENV, str(out))
    api_index.load_index.cache_clear()
    try:
        with pytest.raises(UsageError) as err:
            PinnedApis.load("9.9.9")
        assert "records no transformers version" in err.value.message and "--transformers" in err.value.hint
        assert PinnedApis.load("9.9.9", transformers="4.57.6").transformers.version == "4.57.6"
    finally:
        api_index.load_index.cache_clear()


def test_a_wheel_that_cannot_be_fetched_names_the_platform_tags_tried(tmp_path):
    # pip against an index that does not answer (nothing leaves the machine)
    env = {"HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}
    proc = _build("vllm==0.20.2", "--dry-run", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    error = next(line for line in proc.stderr.splitlines() if line.startswith("error: "))
    assert "Python 3.12" in error and "manylinux_2_35_x86_64" in error and "manylinux_2_28_x86_64" in error


def test_a_wheel_build_keeps_the_pairing_measured_beside_an_installed_vllm(tmp_path):
    # vLLM's own requirement allows transformers 5, but `pip install` put 4.57.6 beside it (another
    # dependency caps it): a later build from the wheel keeps what was measured, asking nobody
    site = _site_packages(tmp_path, "transformers>=4.56.0", "4.57.6")
    measured = tmp_path / "measured"
    assert _build("--package", "vllm", str(site), "--output", str(measured)).returncode == 0
    wheel = tmp_path / "vllm-9.9.9-cp38-abi3-manylinux_2_35_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("vllm/__init__.py", "X = 1\n")
        zf.writestr("vllm-9.9.9.dist-info/METADATA", "Name: vllm\nVersion: 9.9.9\nRequires-Dist: transformers>=4.56.0\n")
    offline = {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_FIND_LINKS": "",
               "PIP_EXTRA_INDEX_URL": "", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", api_index.USER_DIR_ENV: str(measured)}
    proc = _build("--package", "vllm", str(wheel), "--output", str(tmp_path / "out"), "--json", env=offline)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["transformers"] == "4.57.6" and summary["transformers_requires"] == ">=4.56.0"
    assert summary["transformers_from"].startswith("installed beside vllm 9.9.9 (")


def test_an_index_from_an_older_builder_does_not_shadow_a_newer_one(tmp_path, monkeypatch, capsys):
    # a cache index of 0.20.2 built before the records gained config reads by object (no ``records``
    # stamp, no ``cfgv``) sat before the bundled one in the search path, and was used
    bundled = api_index.DATA_DIR / "vllm-0.20.2.json.gz"
    data = json.loads(gzip.decompress(bundled.read_bytes()))
    assert data["records"] == RECORDS
    stale = dict(data, source="stale", modules={"vllm": data["modules"]["vllm"]})
    del stale["records"]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "vllm-0.20.2.json.gz").write_bytes(gzip.compress(json.dumps(stale).encode()))
    monkeypatch.setenv(api_index.USER_DIR_ENV, str(cache))
    api_index.load_index.cache_clear()
    try:
        assert api_index.find_index_file("vllm", "0.20.2") == bundled
        assert api_index.load_index("vllm", "0.20.2").data["source"] == data["source"]
        assert f"API index {cache / 'vllm-0.20.2.json.gz'} is not used" in capsys.readouterr().err
        # one built by the current builder is the user's override: it comes first again
        (cache / "vllm-0.20.2.json.gz").write_bytes(gzip.compress(json.dumps(dict(stale, records=RECORDS)).encode()))
        api_index.load_index.cache_clear()
        assert api_index.find_index_file("vllm", "0.20.2") == cache / "vllm-0.20.2.json.gz"
        assert api_index.load_index("vllm", "0.20.2").data["source"] == "stale"
    finally:
        api_index.load_index.cache_clear()
