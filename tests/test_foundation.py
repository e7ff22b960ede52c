"""The bundle's shape: README's two commands, every script's --help, CI entry, packaging."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY_SCRIPTS = sorted(p for p in (ROOT / "scripts").glob("*.py"))
SH_SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block and text.index("```bash") < 400, "README must open with the two commands"
    return [line.split("#")[0].strip() for line in block.group(1).strip().splitlines()]


def test_readme_opens_with_setup_and_test_commands():
    setup, tests = readme_commands()
    assert "requirements.txt" in setup and "examples/run_example.sh" in setup
    assert "requirements-test.txt" in tests and "tests/run.sh" in tests
    for rel in ("requirements.txt", "requirements-test.txt", "examples/run_example.sh", "tests/run.sh"):
        assert (ROOT / rel).is_file(), rel


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "requirements-test.txt" in ci and "bash tests/run.sh" in ci
    for pkg in ("openssh-server", "shellcheck"):
        assert pkg in ci


def test_runtime_dependencies_agree():
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    req = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    assert sorted(project["dependencies"]) == sorted(req)
    names = {re.split(r"[<>=]", r)[0].lower() for r in req}
    assert {"pyyaml", "jinja2", "libcst", "requests", "paramiko"} <= names
    assert project["requires-python"] == ">=3.10"


@pytest.mark.parametrize("script", PY_SCRIPTS, ids=lambda p: p.name)
def test_python_scripts_have_help_with_exit_codes(script, tmp_path):
    # run from an unrelated folder: scripts must not depend on the working directory
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout and "exit codes" in out.stdout.lower()
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    assert script.read_text().startswith("#!/usr/bin/env python3")


@pytest.mark.parametrize("script", SH_SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_have_help(script, tmp_path):
    out = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower() and "exit" in out.stdout.lower()
    assert os.access(script, os.X_OK), f"{script.name} is not executable"


def test_design_card_scripts_exist():
    for name in ("validate_migration.py", "benchmark.sh", "serve.sh", "request.sh", "e2e_eval.py",
                 "e2e_test_prompts.json", "e2e_config.template.json", "e2e_remote_serve.sh", "migrate_model.py"):
        assert (ROOT / "scripts" / name).is_file(), name


def test_source_segment_over_lines_split_once_equals_ast_get_source_segment():
    import ast

    from flagos_migrate.astutil import source_lines, source_segment

    for src in ["a = 1\r\nb = (x +\r\n  y)\n", "x = 'é' + f(\n  2)\n", "a\rb = g(3,\n 4)", "x = 1\x0c + 2\n",
                "class C:\n    def f(self):\n        return {'k': [1,\n 2]}\n"]:
        lines = source_lines(src)
        assert "".join(lines) == src
        nodes = [n for n in ast.walk(ast.parse(src)) if isinstance(n, (ast.expr, ast.stmt))]
        assert nodes
        for node in nodes:
            assert source_segment(lines, node) == ast.get_source_segment(src, node), (src, ast.dump(node))


def test_one_walk_answers_every_subtree_as_ast_walk_does():
    """The validator walks each file once: ``Walk.subtree``/``Walk.below`` must give what a new
    ``ast.walk`` of the node gives, node for node and in the same order (the checks' findings and
    the rewrites depend on it), over the package's own sources and odd syntax."""
    import ast

    from flagos_migrate.astutil import Walk

    sources = [p.read_text("utf-8") for p in sorted((ROOT / "scripts" / "flagos_migrate").rglob("*.py"))]
    sources += ["global g\nnonlocal_free = 1\ndef f():\n    nonlocal_x = 1\n    def g():\n        global h\n",
                "match x:\n    case None: pass\n    case [1, *rest] as y if y: pass\n    case {'k': v, **kw}: pass\n",
                "@d1\n@d2(x=1)\nclass C(B, metaclass=M):\n    a: int = 1\n    async def m(self, *a, k=2, **kw):\n"
                "        async with c as d, e: return [i async for i in z if i]\n",
                "x = f'{a!r:>{w}}' + b'\\x00'.decode()\ntry:\n    pass\nexcept* E as e:\n    pass\n"]
    kinds = [(ast.Call,), (ast.Attribute, ast.Call), (ast.Name,), (ast.Assign, ast.AnnAssign), (ast.Load,)]
    checked = 0
    for src in sources:
        tree = ast.parse(src)
        w = Walk(tree)
        assert w.nodes == list(ast.walk(tree))
        for node in w.nodes[::7] + list(tree.body):
            expected = list(ast.walk(node))
            assert w.subtree(node) == expected
            for types in kinds:
                assert w.below(node, *types) == [n for n in expected if type(n) in types]
            checked += 1
        outside = ast.parse("y = g(1)").body[0]  # a node of another tree: walked on its own
        assert w.subtree(outside) == list(ast.walk(outside))
    assert checked > 1000
