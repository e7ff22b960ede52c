"""P22 ``seq_pooler_heads.py`` (upstream's sequence pooler heads) and P9's ``PoolingMetadata`` stand-ins
(``get_pooling_cursor()`` / ``get_prompt_token_ids_cpu()``), which BERT's sequence classifier, ModernBERT's pooler and
LFM2's bidirectional embedder (upstream's vendored seqwise poolers) need on vLLM 0.13.0. The runtime halves run
the back-port and the rewritten reads on the real pinned vLLM and upstream's own classes in the upstream venv on the
same inputs; they skip without $MMF_PINNED_VENV."""

from __future__ import annotations

import ast
import json
import math
import subprocess
from pathlib import Path

import pytest
from flagos_migrate.analysis import members
from flagos_migrate.migrate import backports
from flagos_migrate.migrate.edits import Edits
from flagos_migrate.migrate.rewrites import apply_edits

from tests.analysis_helpers import CPU_ENV, REFERENCE_PY, analyze, only
from tests.test_backports import run_in_pinned_venv

SEQWISE = "vllm.model_executor.layers.pooler.seqwise"


def test_upstreams_heads_and_the_vendored_factories_that_build_them_need_the_backport():
    # bert.py / modernbert.py build EmbeddingPoolerHead(head_dtype=, projector=) themselves
    heads = ast.parse(f"from {SEQWISE} import EmbeddingPoolerHead, SequencePooler\n")
    assert backports.needed([heads]) == [backports.SEQ_POOLER_HEADS, backports.POOLING_PARAMS_UPDATE]
    # lfm2.py imports upstream's pooler_for_embed, vendored (P16): its copy builds the head with keywords
    factory = ast.parse(f"from {SEQWISE} import pooler_for_embed\n")
    # (and its SequencePooler merges updates with |=: pooling_params_update.py)
    assert backports.needed([factory], pinned_lacks=lambda m, n: False) == [backports.SEQ_POOLER_HEADS,
                                                                             backports.POOLING_PARAMS_UPDATE]
    methods = ast.parse(f"from {SEQWISE} import get_seq_pooling_method\n")
    assert backports.SEQ_POOLER_HEADS not in backports.needed([methods])


METHODS = '''
from vllm.v1.pool.metadata import PoolingMetadata


def cls_pool(hidden_states, pooling_metadata: PoolingMetadata):
    pooling_cursor = pooling_metadata.get_pooling_cursor()
    return hidden_states[pooling_cursor.first_token_indices_gpu]


def token_ids(pooling_metadata: PoolingMetadata):
    return pooling_metadata.get_prompt_token_ids_cpu()


def finished(pooling_metadata: PoolingMetadata):
    pooling_cursor = pooling_metadata.get_pooling_cursor()
    return pooling_cursor.get_finished_mask()
'''
METHODS_AFTER = '''
from vllm.v1.pool.metadata import PoolingMetadata


def cls_pool(hidden_states, pooling_metadata: PoolingMetadata):
    pooling_cursor = getattr(pooling_metadata, "get_pooling_cursor", lambda: pooling_metadata.pooling_cursor)()
    return hidden_states[pooling_cursor.first_token_indices_gpu]


def token_ids(pooling_metadata: PoolingMetadata):
    return getattr(pooling_metadata, "get_prompt_token_ids_cpu", lambda: [t.cpu() for t in pooling_metadata.get_prompt_token_ids()])()


def finished(pooling_metadata: PoolingMetadata):
    pooling_cursor = getattr(pooling_metadata, "get_pooling_cursor", lambda: pooling_metadata.pooling_cursor)()
    return getattr(pooling_cursor, "get_finished_mask", lambda: pooling_cursor.is_finished().tolist())()
'''


def _rewritten() -> str:
    found = only(analyze(METHODS), "P9")
    # (the cursor bound from get_pooling_cursor() is the pinned PoolingCursor: its get_finished_mask() too)
    assert sorted(f.data["attr"] for f in found) == ["get_finished_mask", "get_pooling_cursor", "get_pooling_cursor",
                                                     "get_prompt_token_ids_cpu"]
    edits = Edits()
    for f in found:
        members.propose_edits(f, edits)
    return apply_edits(METHODS, edits)


def test_p9_upstreams_pooling_metadata_getters_read_the_pinned_fields():
    """upstream's seqwise / tokwise methods (vendored) and bert's SPLADE pooler call the getters; 0.13.0's
    PoolingMetadata holds the cursor as a field and the token ids on the model device only."""
    out = _rewritten()
    assert out == METHODS_AFTER
    assert only(analyze(out), "P9") == []


HEADS_INPUT = {
    "pooled": [[0.5, -1.0, 2.0, 0.25, -0.75, 1.5], [1.0, 0.5, -0.5, 2.0, 0.0, -1.25],
               [-2.0, 1.0, 0.75, -0.5, 1.25, 0.5]],
    "weight": [[0.1 * ((i * 7 + j * 3) % 11) - 0.5 for j in range(6)] for i in range(4)],
    "bias": [0.05, -0.1, 0.2, 0.0],
}
# (head, activation, per-request activation flags, per-request dimensions)
HEADS_CASES = [
    ("embed", None, [True, True, True], [None, None, None]),  # BERT's pooler: dense + tanh, no normalisation
    ("embed", "normalize", [True, False, True], [None, None, None]),  # pooler_for_embed, mixed requests
    ("embed", "normalize", [True, True, True], [2, 2, 2]),  # matryoshka cut, then normalised
    ("classify", "sigmoid", [True, False, True], [None, None, None]),  # logit_mean / logit_sigma calibration
]

HEADS = '''
import json
from types import SimpleNamespace
import torch
if PINNED:
    from seq_pooler_heads import ClassifierPoolerHead, EmbeddingPoolerHead, SequencePoolerHead
    from vllm.model_executor.layers.pooler import PoolerNormalize
    def params(task, flag, dims):  # 0.13.0's request field for an embedding's activation is `normalize`
        if task == "embed":
            return PoolingParams(task="embed", normalize=flag, dimensions=dims)
        return PoolingParams(task="classify", use_activation=flag)
else:
    from vllm.model_executor.layers.pooler.seqwise import (ClassifierPoolerHead, EmbeddingPoolerHead,
                                                           SequencePoolerHead)
    from vllm.model_executor.layers.pooler.activations import PoolerNormalize
    def params(task, flag, dims):
        return PoolingParams(task=task, use_activation=flag, dimensions=dims if task == "embed" else None)
from vllm.pooling_params import PoolingParams
dense = torch.nn.Linear(6, 4)
with torch.no_grad():
    dense.weight.copy_(torch.tensor(INPUT["weight"]))
    dense.bias.copy_(torch.tensor(INPUT["bias"]))
pooled = torch.tensor(INPUT["pooled"])
out = {}
for i, (task, act, flags, dims) in enumerate(CASES):
    md = SimpleNamespace(pooling_params=[params(task, f, d) for f, d in zip(flags, dims)])
    activation = {"normalize": PoolerNormalize(), "sigmoid": torch.sigmoid, None: None}[act]
    if task == "embed":
        head = EmbeddingPoolerHead(head_dtype=torch.float32, projector=lambda x: torch.tanh(dense(x)),
                                   activation=activation)
    else:
        head = ClassifierPoolerHead(classifier=dense, logit_mean=0.5, logit_sigma=2.0, head_dtype=torch.float32,
                                    activation=activation)
    with torch.no_grad():
        y = head(list(pooled), md)
    y = [t.tolist() for t in y] if isinstance(y, list) else y.tolist()
    out[str(i)] = {"y": y, "head": isinstance(head, SequencePoolerHead), "tasks": sorted(head.get_supported_tasks())}
print("json", json.dumps(out))
'''

CURSOR = '''
    import json, numpy as np
    from vllm.pooling_params import PoolingParams
    from vllm.v1.pool import metadata
    from vllm.v1.pool.metadata import PoolingMetadata, PoolingStates
    metadata.pin_memory = False  # as on the CPU platform (this setup's platform guess says CUDA)
    ns = {}
    exec(%r, ns)  # the rewritten reads, on the pinned PoolingMetadata its runner builds
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]])
    md = PoolingMetadata(prompt_lens=torch.tensor([3, 4]), prompt_token_ids=ids,
                         pooling_params=[PoolingParams(task="embed"), PoolingParams(task="embed")],
                         pooling_states=[PoolingStates(), PoolingStates()])
    md.build_pooling_cursor([3, 2], torch.tensor([3, 2]), torch.device("cpu"))  # the 2nd: 2 of 4 prompt tokens
    hidden = torch.arange(10.0).reshape(5, 2)
    print("json", json.dumps({"cls": ns["cls_pool"](hidden, md).tolist(),
                              "ids": [t.tolist() for t in ns["token_ids"](md)],
                              "cpu": all(t.device.type == "cpu" for t in ns["token_ids"](md)),
                              "finished": ns["finished"](md)}))
'''

CURSOR_UPSTREAM = '''
import json, sys, numpy as np, torch
from vllm.pooling_params import PoolingParams
from vllm.v1.pool.metadata import PoolingMetadata, PoolingStates
ns = {}
exec(sys.argv[1], ns)  # upstream's own reads, on upstream's PoolingMetadata
ids = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]])
md = PoolingMetadata(prompt_lens=torch.tensor([3, 4]), prompt_token_ids=ids, prompt_token_ids_cpu=ids,
                     pooling_params=[PoolingParams(task="embed"), PoolingParams(task="embed")],
                     pooling_states=[PoolingStates(), PoolingStates()])
md.build_pooling_cursor(np.array([3, 2]), torch.tensor([3, 2]), torch.device("cpu"))
hidden = torch.arange(10.0).reshape(5, 2)
print("json", json.dumps({"cls": ns["cls_pool"](hidden, md).tolist(),
                          "ids": [t.tolist() for t in ns["token_ids"](md)], "cpu": True,
                          "finished": ns["finished"](md)}))
'''


def _heads_script(pinned: bool) -> str:
    return (f"INPUT, CASES, PINNED = {HEADS_INPUT!r}, {HEADS_CASES!r}, {pinned!r}\n" + HEADS)


def _close(a: list[list[float]], b: list[list[float]]) -> bool:
    return len(a) == len(b) and all(x == pytest.approx(y, abs=1e-6) for x, y in zip(a, b))


def _upstream(tmp_path: Path, script: str, *args: str) -> dict | None:
    if not REFERENCE_PY.exists():
        return None
    proc = subprocess.run([str(REFERENCE_PY), "-c", script, *args], capture_output=True, text=True, timeout=300,
                          env={**CPU_ENV, "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1].split(" ", 1)[1])


@pytest.mark.slow
def test_upstreams_sequence_heads_on_the_real_pinned_vllm(tmp_path: Path):
    got = json.loads(run_in_pinned_venv(tmp_path, _heads_script(True))["json"])
    pooled, weight, bias = (HEADS_INPUT[k] for k in ("pooled", "weight", "bias"))

    def dense(row):
        return [sum(w * x for w, x in zip(wr, row)) + b for wr, b in zip(weight, bias)]

    bert = [[math.tanh(v) for v in dense(r)] for r in pooled]
    assert _close(got["0"]["y"], bert)  # no activation given: the model's layers only
    norm = [[v / math.sqrt(sum(u * u for u in r)) for v in r] for r in bert]
    assert _close(got["1"]["y"], [norm[0], bert[1], norm[2]])  # per request
    cut = [[v / math.sqrt(sum(u * u for u in r[:2])) for v in r[:2]] for r in bert]
    assert _close(got["2"]["y"], cut)
    logits = [[(v - 0.5) / 2.0 for v in dense(r)] for r in pooled]
    sig = [[1 / (1 + math.exp(-v)) for v in r] for r in logits]
    assert _close(got["3"]["y"], [sig[0], logits[1], sig[2]])
    assert all(got[str(i)]["head"] for i in range(4))
    assert [got[str(i)]["tasks"] for i in range(4)] == [["embed"]] * 3 + [["classify"]]
    theirs = _upstream(tmp_path, _heads_script(False))
    if theirs is not None:  # upstream's own heads, the same inputs and per-request flags
        for i in range(4):
            assert _close(got[str(i)]["y"], theirs[str(i)]["y"]), i
            assert got[str(i)]["tasks"] == theirs[str(i)]["tasks"]


@pytest.mark.slow
def test_the_rewritten_pooling_metadata_reads_on_the_real_pinned_vllm(tmp_path: Path):
    got = json.loads(run_in_pinned_venv(tmp_path, CURSOR % _rewritten())["json"])
    # the first token of each request (rows 0 and 3), each request's own ids on the CPU, the first one finished
    assert got == {"cls": [[0.0, 1.0], [6.0, 7.0]], "ids": [[5, 6, 7], [8, 9, 10, 11]], "cpu": True,
                   "finished": [True, False]}
    theirs = _upstream(tmp_path, CURSOR_UPSTREAM, METHODS)
    if theirs is not None:
        assert theirs == got
