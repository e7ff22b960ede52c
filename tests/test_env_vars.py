"""P3 for environment variables: upstream's `vllm.envs` names the pinned one lacks.

The table (catalog P3 `env_vars`) is re-derived from upstream 0.33.0's vllm/envs.py and checked against
the pinned index; detection covers attribute reads, `envs.is_set("X")` and `getattr(envs, "X")`; the compat
module runs under the pinned vLLM and must read each variable as upstream's `vllm.envs` does under the same
environments (upstream venv: $MMF_UPSTREAM_VENV, default ~/.cache/mmf/venv-vllm033).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest
from flagos_migrate.catalog.tables import ENV_VARS
from flagos_migrate.migrate import backports
from flagos_migrate.verify.import_probe import python_of

from tests.analysis_helpers import analyze, only, pinned

UPSTREAM_SRC = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0"))
UPSTREAM_VENV = Path(os.environ.get("MMF_UPSTREAM_VENV", Path.home() / ".cache/mmf/venv-vllm033"))
PARSERS = {"bool_int": "bool(int(os.getenv({n!r}, {d!r})))", "int": "int(os.getenv({n!r}, {d!r}))",
           "lower": "os.getenv({n!r}, {d!r}).lower()"}


def _upstream_lambdas() -> dict[str, str]:
    tree = ast.parse((UPSTREAM_SRC / "vllm/envs.py").read_text())
    return {k.value: ast.unparse(v.body) for node in ast.walk(tree) if isinstance(node, ast.Dict)
            for k, v in zip(node.keys, node.values)
            if isinstance(k, ast.Constant) and isinstance(v, ast.Lambda)}


@pytest.mark.skipif(not (UPSTREAM_SRC / "vllm/envs.py").exists(), reason="no upstream 0.33.0 source")
def test_every_table_entry_is_upstreams_default_and_parser():
    lambdas = _upstream_lambdas()
    for name, (parser, default) in ENV_VARS.items():
        assert lambdas[name] == PARSERS[parser].format(n=name, d=default), name


def test_the_pinned_vllm_envs_lacks_every_table_entry():
    apis = pinned()
    assert apis.resolve("vllm.envs", "VLLM_CACHE_ROOT") is not None  # the index does list env vars
    assert [n for n in ENV_VARS if apis.resolve("vllm.envs", n) is not None] == []


CODE = '''
import vllm.envs as envs

a = envs.VLLM_DCP_Q_REPLICATE if envs.is_set("VLLM_DCP_Q_REPLICATE") else False
b = getattr(envs, "VLLM_MOE_SKIP_PADDING")
c = getattr(envs, "VLLM_NOT_IN_THE_TABLE", None)
d = envs.is_set("VLLM_CACHE_ROOT")
'''


def test_attribute_reads_and_string_lookups_are_found_with_the_import_to_repoint():
    found = only(analyze(CODE), "P3")
    got = sorted((f.line, f.data["name"], tuple(f.data.get("envs_import") or ())) for f in found)
    # the getattr with a default and the pinned VLLM_CACHE_ROOT are not findings
    assert got == [(4, "VLLM_DCP_Q_REPLICATE", (2, None)), (4, "VLLM_DCP_Q_REPLICATE", (2, None)),
                   (5, "VLLM_MOE_SKIP_PADDING", (2, None))]
    assert any("is_set" in f.message for f in found)


def test_a_variable_outside_the_table_stays_left_for_you():
    found = only(analyze("from vllm import envs\n\nx = envs.is_set('VLLM_NOT_IN_THE_TABLE')\n"), "P3")
    assert len(found) == 1 and "envs_import" not in found[0].data


def test_needed_installs_the_compat_module_only_for_a_table_variable():
    def need(code):
        return backports.ENVS in backports.needed([ast.parse(code)])
    assert need("import vllm.envs as envs\nx = envs.is_set('VLLM_DCP_Q_REPLICATE')\n")
    assert need("from vllm import envs\nx = getattr(envs, 'VLLM_MOE_SKIP_PADDING')\n")
    assert not need("import vllm.envs as envs\nx = envs.VLLM_CACHE_ROOT\n")
    assert not need("import os\nx = os.environ.get('VLLM_DCP_Q_REPLICATE')\n")


SCRIPT = '''
import json, os, sys
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "pinned":
    import envs  # the back-port source, table written in below
    envs.UPSTREAM_ENV_VARS.update({k: tuple(v) for k, v in json.loads(sys.argv[3]).items()})
else:
    import vllm.envs as envs
out = {}
for name in json.loads(sys.argv[3]):
    for value in (None, "1", "0", "37", "FP16", ""):
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value
        try:
            got = repr(getattr(envs, name))
        except Exception as exc:
            got = type(exc).__name__
        out[f"{name}={value}"] = [got, envs.is_set(name)]
out["pinned_name"] = [repr(type(envs.VLLM_CACHE_ROOT)), envs.is_set("VLLM_CACHE_ROOT")]
try:
    envs.VLLM_NO_SUCH_VARIABLE
    out["unknown"] = "no error"
except AttributeError:
    out["unknown"] = "AttributeError"
print(json.dumps(out))
'''


def _run(python: str, side: str, tmp_path: Path) -> dict:
    script = tmp_path / f"{side}.py"
    script.write_text(SCRIPT)
    table = {k: list(v) for k, v in ENV_VARS.items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    proc = subprocess.run([python, str(script), str(backports.SOURCES), side, json.dumps(table)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_compat_module_reads_each_variable_as_upstream(tmp_path):
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    ours = _run(python_of(venv), "pinned", tmp_path)
    assert ours["unknown"] == "AttributeError" and ours["pinned_name"] == ["<class 'str'>", False]
    assert ours["VLLM_DCP_Q_REPLICATE=None"] == ["False", False]
    assert ours["VLLM_DCP_Q_REPLICATE=1"] == ["True", True]
    if not (UPSTREAM_VENV / "bin/python").exists():
        pytest.skip("no upstream vLLM venv to compare with")
    theirs = _run(str(UPSTREAM_VENV / "bin/python"), "upstream", tmp_path)
    assert ours == theirs
