"""P22 ``seq_cls_adapter.py``: upstream's ``as_seq_cls_model`` sizes the score head by ``_resolve_num_labels`` (the
top-level config's labels when a composite config declares its own), 0.13.0's by the text config's always. Decision
3.0 (d3: its hook writes ``hf_config.id2label``, four answer codes) built two rows and failed load ([4, 64] into
[2, 64]). The back-port is the pinned ``_init_pooler`` with that read changed (checked against both sources), and its
label count is upstream's on the real transformers of the pinned venv (it skips without $MMF_PINNED_VENV)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import textwrap

import pytest
from analysis_helpers import PINNED_VENV, UPSTREAM_SRC
from flagos_migrate.migrate import backports

BP = backports.SEQ_CLS_ADAPTER
ADAPTERS = "vllm/model_executor/models/adapters.py"
SOURCE = (backports.SOURCES / BP.source).read_text()


def _function(text: str, name: str) -> ast.FunctionDef:
    return next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef) and n.name == name)


def test_every_import_of_the_adapter_takes_it():
    assert BP in backports.needed([ast.parse("from vllm.model_executor.models.adapters import as_seq_cls_model\n")])
    assert BP not in backports.needed([ast.parse("from vllm.model_executor.models.adapters import "
                                                 "as_embedding_model\n")], pinned_lacks=lambda m, n: False)


@pytest.mark.skipif(not (UPSTREAM_SRC.is_dir() and (PINNED_VENV / "lib").is_dir()),
                    reason="needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC) and the pinned venv (MMF_PINNED_VENV)")
def test_it_is_the_pinned_init_pooler_with_upstreams_label_count():
    pinned = (next(PINNED_VENV.glob("lib/python3*/site-packages")) / ADAPTERS).read_text()
    upstream = (UPSTREAM_SRC / ADAPTERS).read_text()
    ours = _function(SOURCE, "_init_pooler")
    theirs = _function(ast.unparse(_function(pinned, "as_seq_cls_model")), "_init_pooler")
    swapped = ast.parse("resolve_num_labels(model_config.hf_config, text_config)", mode="eval").body

    class Count(ast.NodeTransformer):  # the one read that differs: the head's rows
        def visit_Attribute(self, node):
            if ast.unparse(node) == "text_config.num_labels":
                return swapped
            return self.generic_visit(node)

    assert ast.dump(ours) == ast.dump(Count().visit(theirs))
    # upstream sizes the head by _resolve_num_labels(hf_config, text_config) (hf_config: the model config's)
    assert "_resolve_num_labels(hf_config, text_config)," in upstream
    assert "hf_config = vllm_config.model_config.hf_config" in ast.unparse(_function(upstream, "as_seq_cls_model"))
    # and the count is upstream's function (transformers 5 spells the base class PreTrainedConfig)
    up = ast.unparse(_function(upstream, "_resolve_num_labels")).replace("PreTrainedConfig", "PretrainedConfig")
    mine = ast.unparse(_function(SOURCE, "resolve_num_labels"))
    strip = [ast.parse(t).body[0] for t in (up, mine)]
    for fn in strip:
        fn.name, fn.returns = "f", None
        fn.body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
                   and not isinstance(s, ast.ImportFrom)]
        for a in fn.args.args:
            a.annotation = None
    assert ast.dump(strip[0]) == ast.dump(strip[1])


RUN = '''
import ast, json, sys
from transformers import LlamaConfig, LlavaConfig, PretrainedConfig
src = open(sys.argv[1]).read()
fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "resolve_num_labels")
ns = {"PretrainedConfig": PretrainedConfig}
exec(compile(ast.Module([fn], []), "bp", "exec"), ns)
count = lambda c: ns["resolve_num_labels"](c, c.get_text_config())
out = {}
top = LlavaConfig()
top.id2label = dict(enumerate("ABCD"))  # what upstream's D3 hook writes: the top-level config's labels
assert top.get_text_config() is not top  # a composite config
out["top"] = [count(top), top.get_text_config().num_labels]
text = LlavaConfig()
text.get_text_config().id2label = dict(enumerate("ABC"))  # labels on the text config only
out["text"] = [count(text), text.num_labels]
out["plain"] = count(LlamaConfig(num_labels=5))
print(json.dumps(out))
'''


def test_the_label_count_on_the_pinned_transformers(tmp_path):
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (the pinned venv) is not set")
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(RUN))
    proc = subprocess.run([os.path.join(venv, "bin", "python"), str(script), str(backports.SOURCES / BP.source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    # the top-level labels win (the pinned adapter read the text config's 2); the text config's when the top
    # level keeps the default; a plain config's own
    assert got == {"top": [4, 2], "text": [3, 2], "plain": 5}
