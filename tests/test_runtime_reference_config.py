"""verify --run's Hugging Face reference is built from the config class the pinned side built from, or
not at all: transformers' GraniteMoeSWAForCausalLM reads any config.json as GraniteMoeSWAConfig, so from
the GraniteMoeSharedConfig of the class upstream registers it to it got a sliding window and attention
sinks the pinned model did not have (and random sinks: the checkpoint had none): max |Δlogit| 2.35 that
was the harness's, not the migration's. Runs in the reference venv (transformers 5)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

VERIFY = Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"
REFERENCE = Path(os.environ.get("MMF_REFERENCE_VENV", Path.home() / ".cache/mmf/venv-vllm033")) / "bin" / "python"

SCRIPT = """
import json, os, sys, tempfile
sys.path.insert(0, sys.argv[1])
import transformers
from _runtime_env import LevelError
from _runtime_forward import _same_config_class

out = {}
for cls_name, model_type in (("GraniteMoeSWAForCausalLM", "granitemoeshared"),
                             ("GraniteMoeSWAForCausalLM", "granitemoe_swa"),
                             ("GraniteMoeSharedForCausalLM", "granitemoeshared"),
                             ("Qwen3_5ForCausalLM", "qwen3_5")):
    work = tempfile.mkdtemp()
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump({"model_type": model_type}, f)
    try:
        _same_config_class(getattr(transformers, cls_name), work)
        out[cls_name + ":" + model_type] = None
    except LevelError as exc:
        out[cls_name + ":" + model_type] = str(exc)
print(json.dumps(out))
"""


@pytest.mark.skipif(not REFERENCE.exists(), reason="needs the reference venv (MMF_REFERENCE_VENV, transformers 5)")
def test_the_reference_refuses_a_config_of_another_unrelated_class():
    proc = subprocess.run([str(REFERENCE), "-c", textwrap.dedent(SCRIPT), str(VERIFY)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {
        "GraniteMoeSWAForCausalLM:granitemoeshared": (
            "transformers' GraniteMoeSWAForCausalLM reads GraniteMoeSWAConfig (model type 'granitemoe_swa'); the "
            "pinned side built from GraniteMoeSharedConfig ('granitemoeshared'): not the same model, no comparison "
            "(the pinned stack has no config class for the architecture's own model type: P2)"),
        # negatives: its own model type, the class's own, a text model of a composite config
        "GraniteMoeSWAForCausalLM:granitemoe_swa": None,
        "GraniteMoeSharedForCausalLM:granitemoeshared": None,
        "Qwen3_5ForCausalLM:qwen3_5": None,
    }
