"""P12's ``guarded_readers`` table: a class skipping the pinned Qwen3-VL ``__init__`` (upstream's interns1_pro) gets
upstream's guarded deepstack-buffer methods written in. Golden before/after text through the real engine, and the
written methods run on the real pinned ``Qwen3VLForConditionalGeneration`` (skips without MMF_PINNED_VENV)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from analysis_helpers import PINNED_VENV, migrate_example, only, run_script_json
from flagos_migrate.catalog.tables import GUARDED_READERS

INTERNS1_PRO = '''\
from torch import nn
from vllm.model_executor.models.qwen3_vl import Qwen3VLForConditionalGeneration


class InternS1Pro(Qwen3VLForConditionalGeneration):
    def __init__(self, *, vllm_config, prefix: str = ""):
        super(Qwen3VLForConditionalGeneration, self).__init__()
        self.config = vllm_config.model_config.hf_config
        self.use_deepstack = True
        self.deepstack_num_level = 2
        self.visual_dim = 4
        self.multiscale_dim = self.visual_dim * self.deepstack_num_level
        self.language_model = nn.Identity()
'''

ENTRY = GUARDED_READERS[("vllm.model_executor.models.qwen3_vl.Qwen3VLForConditionalGeneration",
                         "deepstack_input_embeds")]


def test_the_skipped_qwen3_vl_init_gets_upstreams_guarded_deepstack_readers(tmp_path: Path):
    m = migrate_example(tmp_path, INTERNS1_PRO, "interns1_pro")
    (before,) = only(m.model_unit.before, "P12")
    assert before.data["missing"] == ["deepstack_input_embeds"] and before.data["write"]
    assert only(m.model_unit.after, "P12") == [] and "P12" in m.model_unit.rules
    methods = textwrap.indent(ENTRY["source"], "    ")
    assert m.model_unit.text == (
        "from torch import nn\n"
        "from vllm.model_executor.models.qwen3_vl import Qwen3VLForConditionalGeneration\n"
        # upstream's text reads torch.zeros / torch.Tensor: a file importing only `from torch import nn` gets
        # `import torch` too (without it the written annotations raised NameError at import)
        "import torch\n"
        "from vllm.sequence import IntermediateTensors\n\n\n"
        + INTERNS1_PRO.split("\n\n\n", 1)[1]
        + "\n" + "\n".join(line.rstrip() for line in methods.splitlines()) + "\n")


def test_no_write_when_a_pinned_reader_is_not_in_the_table(tmp_path: Path):
    """The pinned ``forward`` reads ``use_deepstack``: a class that never sets it is left for you (no entry)."""
    text = INTERNS1_PRO.replace("        self.use_deepstack = True\n", "")
    m = migrate_example(tmp_path, text, "interns1_pro")
    (f,) = only(m.model_unit.after, "P12")
    assert "use_deepstack" in f.data["missing"]
    assert all(w["attr"] != "use_deepstack" for w in f.data.get("write", ()))


SCRIPT = r'''
import json, sys, textwrap, types
import torch
from vllm.model_executor.models.qwen3_vl import Qwen3VLForConditionalGeneration as Pinned
from vllm.sequence import IntermediateTensors

source, = sys.argv[2:]
ns = {"torch": torch, "IntermediateTensors": IntermediateTensors}
class Written(Pinned):
    pass
exec(textwrap.dedent(source), ns)
for k, v in ns.items():
    if callable(v) and k.startswith("_") and k.endswith("_deepstack_input_embeds"):
        setattr(Written, k, v)

def bare(cls, buffer):
    obj = cls.__new__(cls)
    torch.nn.Module.__init__(obj)
    obj.config = types.SimpleNamespace(text_config=types.SimpleNamespace(hidden_size=4))
    obj.deepstack_num_level = 2
    if buffer:
        obj.deepstack_input_embeds = [torch.zeros(6, 4) for _ in range(2)]
    return obj

out = {}
torch.manual_seed(0)
embeds = torch.randn(2, 5, 4)
# the buffer set (a class whose __init__ built it): what the pinned methods compute, batch within the buffer
runs = []
for cls in (Pinned, Written):
    obj = bare(cls, True)
    obj._set_deepstack_input_embeds(embeds)
    got = obj._get_deepstack_input_embeds(5)
    values = [got[f"deepstack_input_embeds_{i}"].clone() for i in range(2)]
    obj._clear_deepstack_input_embeds(5)
    runs.append((values, [b.clone() for b in obj.deepstack_input_embeds]))
out["same_get"] = all(torch.equal(a, b) for a, b in zip(runs[0][0], runs[1][0]))
out["same_cleared"] = all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
out["got_embeds"] = all(torch.equal(runs[1][0][i], embeds[i]) for i in range(2))
# absent (interns1_pro): the pinned ones raise, upstream's give no deepstack input and keep nothing
for cls, key in ((Pinned, "pinned"), (Written, "written")):
    obj = bare(cls, False)
    try:
        obj._set_deepstack_input_embeds(embeds)
        out[key] = [obj._get_deepstack_input_embeds(5), obj._clear_deepstack_input_embeds(5),
                    hasattr(obj, "deepstack_input_embeds")]
    except AttributeError as e:
        out[key] = "AttributeError: " + str(e)[-60:]
print(json.dumps(out))
'''


@pytest.mark.skipif(not os.environ.get("MMF_PINNED_VENV"), reason="needs MMF_PINNED_VENV (vLLM 0.13.0)")
def test_upstreams_readers_on_the_real_pinned_class():
    out = run_script_json(PINNED_VENV / "bin" / "python", SCRIPT, ENTRY["source"])
    assert out["same_get"] and out["same_cleared"] and out["got_embeds"], out
    assert out["written"] == [None, None, False], out
    assert out["pinned"].startswith("AttributeError") and "deepstack_input_embeds" in out["pinned"], out
