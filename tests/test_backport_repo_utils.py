"""P22 ``repo_utils.py``: upstream's ``get_hf_file_bytes`` / ``get_hf_file_to_dict`` over the pinned Hub client.

qwen3_dflash's MuseGlimmerAssistantModel and jina's JinaEmbeddingsV5Model / JinaForRanking failed load on vLLM 0.13.0
with ``HFValidationError: Repo id must be in the form 'repo_name' or 'namespace/repo_name': '/tmp/...'``: their loaders
ask for an optional file beside the checkpoint (``mask_embedding.pt``, ``adapters/{task}/adapter_config.json``) and
take None for "not there", which upstream's function returns for a local directory without it; the pinned function
of the same name sends the directory to ``hf_hub_download``. The import is re-pointed (golden text below); on the real
pinned vLLM the pinned function raises and the back-port returns None for a directory without the file, and both read
a file that is there.
"""

from __future__ import annotations

import ast
from pathlib import Path

from analysis_helpers import migrate_example
from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv

UPSTREAM_FILE = '''
from vllm.transformers_utils.repo_utils import get_hf_file_bytes


def read_mask(model, revision):
    return get_hf_file_bytes("mask_embedding.pt", model, revision)
'''


def test_importing_either_reader_needs_the_backport_and_other_repo_utils_names_do_not():
    for name in ("get_hf_file_bytes", "get_hf_file_to_dict"):
        uses = ast.parse(f"from vllm.transformers_utils.repo_utils import {name}\n")
        assert backports.needed([uses], pinned_lacks=lambda module, name: False) == [backports.REPO_UTILS]
    other = ast.parse("from vllm.transformers_utils.repo_utils import list_repo_files\n")
    assert backports.needed([other], pinned_lacks=lambda module, name: False) == []


def test_apply_re_points_the_import_to_the_backport(tmp_path: Path):
    m = migrate_example(tmp_path, UPSTREAM_FILE, name="reader")
    assert m.model_unit.text == UPSTREAM_FILE.replace(
        "from vllm.transformers_utils.repo_utils import get_hf_file_bytes",
        "from vllm_fl.compat.repo_utils import get_hf_file_bytes")
    assert backports.REPO_UTILS in m.backports


READ = '''
    import json, os, tempfile
    from vllm.transformers_utils import repo_utils as pinned
    import repo_utils

    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach the network
    d = tempfile.mkdtemp()
    try:
        pinned.get_hf_file_bytes("mask_embedding.pt", d, "main")
        print("pinned_bytes", "None")
    except Exception as exc:
        print("pinned_bytes", type(exc).__name__)
    try:
        pinned.get_hf_file_to_dict("adapters/retrieval/adapter_config.json", d, "main")
        print("pinned_dict", "None")
    except Exception as exc:
        print("pinned_dict", type(exc).__name__)
    print("bytes", repo_utils.get_hf_file_bytes("mask_embedding.pt", d, "main"))
    print("dict", repo_utils.get_hf_file_to_dict("adapters/retrieval/adapter_config.json", d, "main"))
    os.makedirs(os.path.join(d, "adapters", "retrieval"))
    with open(os.path.join(d, "adapters", "retrieval", "adapter_config.json"), "w") as f:
        json.dump({"r": 4}, f)
    with open(os.path.join(d, "mask_embedding.pt"), "wb") as f:
        f.write(b"abc")
    print("read_bytes", repo_utils.get_hf_file_bytes("mask_embedding.pt", d, "main")
          == pinned.get_hf_file_bytes("mask_embedding.pt", d, "main") == b"abc")
    print("read_dict", repo_utils.get_hf_file_to_dict("adapters/retrieval/adapter_config.json", d)
          == pinned.get_hf_file_to_dict("adapters/retrieval/adapter_config.json", d) == {"r": 4})
'''


def test_the_backport_on_the_real_pinned_vllm(tmp_path: Path):
    out = run_in_pinned_venv(tmp_path, READ)
    keys = ("pinned_bytes", "pinned_dict", "bytes", "dict", "read_bytes", "read_dict")
    assert {k: out.get(k) for k in keys} == {
        "pinned_bytes": "HFValidationError", "pinned_dict": "HFValidationError", "bytes": "None", "dict": "None",
        "read_bytes": "True", "read_dict": "True"}
