"""What a pooling model's pooler returns for the tiny prefill, on each side (part of ``_runtime_worker.py``).

The forward level of a pooling model compares hidden states; what the model serves is its pooler's output
(embedding, class scores, per-token scores), which holds more of the model than the hidden states: the
classifier head, the pooling method, the normalization or activation the pooler applies. Both vLLMs run the
pooler as their GPU runner does in ``_dummy_pooler_run_task`` (one request, the whole prompt scheduled):
``PoolingParams(task)``, its ``verify``, the pooler's ``get_pooling_updates(task)``, a ``PoolingMetadata``
with its cursor, then ``model.pooler(hidden_states=..., pooling_metadata=...)``. The two versions differ in
that call's pieces, so each is driven by its own signatures, never by a version check:

- ``PoolingParams.verify``: 0.13.0 takes ``(task, model_config)``, 0.33.0 ``(model_config)``;
- ``PoolingMetadata``: 0.33.0 adds the field ``prompt_token_ids_cpu``;
- ``build_pooling_cursor``: 0.13.0 takes ``num_scheduled_tokens`` as a list, 0.33.0 ``num_scheduled_tokens_np``
  as a numpy array.

Standard library only at import; torch, numpy and vLLM inside the functions.
"""

import inspect
import os

POOLED_FILE = "pooled.pt"
# the tasks a single prompt serves on both versions (0.13.0's "score" pairs two prompts, "plugin" is a plugin's
# own; 0.33.0 has neither)
COMPARED_TASKS = ("embed", "classify", "token_embed", "token_classify")


def _metadata(vc, ids, params):
    import numpy as np
    import torch
    from vllm.v1.pool.metadata import PoolingMetadata, PoolingStates

    n = len(ids)
    fields = inspect.signature(PoolingMetadata).parameters
    token_ids = torch.tensor([list(ids)], dtype=torch.int32)
    kwargs = {"prompt_lens": torch.tensor([n]), "prompt_token_ids": token_ids,
              "pooling_params": [params], "pooling_states": [PoolingStates()]}
    if "prompt_token_ids_cpu" in fields:
        kwargs["prompt_token_ids_cpu"] = token_ids
    md = PoolingMetadata(**kwargs)
    first = next(iter(inspect.signature(md.build_pooling_cursor).parameters))
    scheduled = np.array([n]) if first.endswith("_np") else [n]
    md.build_pooling_cursor(scheduled, seq_lens_cpu=torch.tensor([n]), device=torch.device("cpu"))
    return md


def _params(task, vc):
    from vllm.pooling_params import PoolingParams

    params = PoolingParams(task=task)
    verify = inspect.signature(params.verify).parameters
    if "task" in verify:
        params.verify(task=task, model_config=vc.model_config)
    else:
        params.verify(vc.model_config)
    return params


def _one(out):
    """The one request's output of a ``PoolerOutput`` (a list per request, or a stacked tensor)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out[0] if out.dim() > 0 and out.shape[0] == 1 else out
    if isinstance(out, (list, tuple)) and len(out) == 1:
        return _one(out[0]) if isinstance(out[0], (list, tuple)) else out[0]
    raise TypeError(f"pooler returned {type(out).__name__} of {len(out) if hasattr(out, '__len__') else '?'} items")


def tasks_of(model):
    pooler = getattr(model, "pooler", None)
    if pooler is None or not hasattr(pooler, "get_supported_tasks"):
        return []
    return [t for t in COMPARED_TASKS if t in set(pooler.get_supported_tasks())]


def pool(model, vc, hidden, ids):
    """{task: the pooler's output for the one prompt (fp32, CPU)} over the tasks the pooler supports."""
    import torch

    out = {}
    for task in tasks_of(model):
        params = _params(task, vc)
        model.pooler.get_pooling_updates(task).apply(params)
        with torch.no_grad():
            res = model.pooler(hidden_states=hidden, pooling_metadata=_metadata(vc, ids, params))
        value = _one(res)
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"pooler ({task}) returned {type(value).__name__}, not a tensor")
        out[task] = value.detach().float().cpu()
    return out


def save(pooled, work):
    import torch

    torch.save(pooled, os.path.join(work, POOLED_FILE))


def describe(pooled) -> str:
    return ", ".join(f"{task} {tuple(t.shape)}" for task, t in pooled.items())


def compare(pooled_ref, work):
    """({task: max |Δ|}, notes) of the pinned side's saved pooler outputs against ``pooled_ref``; (None, notes)
    when the pinned side saved none."""
    import torch

    path = os.path.join(work, POOLED_FILE)
    if not os.path.exists(path):
        return None, []
    pinned = torch.load(path)
    diffs, notes = {}, []
    for task in sorted(set(pinned) | set(pooled_ref)):
        if task not in pinned or task not in pooled_ref:
            side = "pinned" if task in pinned else "upstream"
            notes.append(f"pooler task {task!r} only on the {side} side: not compared")
            continue
        a, b = pinned[task], pooled_ref[task]
        if tuple(a.shape) != tuple(b.shape):  # a different output is no match, however close the hidden states
            notes.append(f"pooler ({task}) shapes differ: pinned {tuple(a.shape)}, upstream {tuple(b.shape)}")
            diffs[task] = float("inf")
            continue
        diffs[task] = float((a - b).abs().max()) if a.numel() else 0.0
    return diffs, notes
