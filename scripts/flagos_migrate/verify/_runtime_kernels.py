"""Torch references for GPU-only functions a model's own code calls by name (part of ``_runtime_forward.py``),
the same on both sides, as ``_runtime_gdn`` is for a layer's core.

Some model files call a module-level function that launches a Triton kernel (AliceAI's attention residual
``attn_res``, from ``vllm.models.kimi_k3.nvidia.ops``; Qwen3-VL's and Cohere Compass's
``triton_pos_embed_interpolate``), which the CPU cannot run in either venv. :data:`_FUNCTIONS` names each such function by the upstream module that
defines it, with a torch reference of what its kernel computes; the reference replaces the name in every
module of the model's classes that bound it, on the pinned side too: there the function is the migrated
file's own copy (a module of the same file name) or a vendored one (a compat module whose docstring names the
upstream module, rule P16). The reference is bound to the replaced function's signature, so a call the
function would refuse still raises. Standard library only at import.
"""

import inspect
import sys

CALLS = {}  # label -> calls of the reference in this worker


def attn_res_reference(prefix, delta, blocks, norm_weight, qk_weight, output_norm_weight, num_blocks,
                       block_write_idx, eps, output_norm_eps):
    """``attn_res`` (``vllm/models/kimi_k3/nvidia/ops/attn_res.py``, its ``_attn_res_kernel``), per token in
    fp32: the prefix plus ``delta`` (rounded to the prefix's dtype and written back into ``prefix``); written
    into ``blocks[:, block_write_idx]`` when that is >= 0; then, over the sources ``blocks[:, :num_blocks]``
    and the prefix (last), a softmax of ``<v, norm_weight * qk_weight> * rsqrt(mean(v^2) + eps)`` mixing the
    sources (the prefix alone when ``num_blocks`` is 0); RMS-normed with ``output_norm_weight`` and
    ``output_norm_eps`` when given; in the prefix's dtype."""
    import torch

    p = prefix.float()
    if delta is not None:
        p = (p + delta.float()).to(prefix.dtype)
        prefix.copy_(p)
        p = p.float()
    if block_write_idx >= 0:
        blocks[:, block_write_idx] = p.to(blocks.dtype)
    if num_blocks == 0:
        mixed = p
    else:
        sources = torch.cat([blocks[:, :num_blocks].float(), p.unsqueeze(1)], dim=1)
        logits = (sources * (norm_weight.float() * qk_weight.float())).sum(-1)
        logits = logits * torch.rsqrt(sources.pow(2).mean(-1) + eps)
        mixed = (logits.softmax(dim=-1).unsqueeze(-1) * sources).sum(1)
    if output_norm_weight is not None:
        mixed = mixed * torch.rsqrt(mixed.pow(2).mean(-1, keepdim=True) + output_norm_eps)
        mixed = mixed * output_norm_weight.float()
    return mixed.to(prefix.dtype)


def pos_embed_interpolate_reference(embed_weight, t, h, w, num_grid_per_side, m_size, dtype):
    """``triton_pos_embed_interpolate`` (Qwen3-VL's ``_bilinear_pos_embed_kernel``): the position embeddings
    (a ``num_grid_per_side`` square grid) bilinearly interpolated at an ``h`` x ``w`` grid spanning it
    (``(num_grid_per_side - 1) / (h - 1)`` per step, 0 for one row), the lower corner floored and the upper
    clamped to the grid; the four weights in ``dtype`` and the sum in ``dtype``, as the kernel casts them; rows
    in spatial-merge order (``m_size`` x ``m_size`` blocks, row-major inside a block), repeated ``t`` times."""
    import torch

    assert h % m_size == 0 and w % m_size == 0, f"h={h} and w={w} must be divisible by m_size={m_size}"
    n = num_grid_per_side
    rows = torch.arange(h, dtype=torch.float32) * (float(n - 1) / float(h - 1) if h > 1 else 0.0)
    cols = torch.arange(w, dtype=torch.float32) * (float(n - 1) / float(w - 1) if w > 1 else 0.0)
    hf, wf = rows.floor().long(), cols.floor().long()
    hc, wc = (hf + 1).clamp(max=n - 1), (wf + 1).clamp(max=n - 1)
    dh, dw = (rows - hf.float())[:, None], (cols - wf.float())[None, :]
    w11 = dh * dw
    w10, w01 = dh - w11, dw - w11
    w00 = 1.0 - dh - w01
    e = embed_weight.to(dtype)

    def at(hi, wi):
        return e[(hi[:, None] * n + wi[None, :]).reshape(-1)].reshape(h, w, -1)

    out = (w00.to(dtype)[..., None] * at(hf, wf) + w01.to(dtype)[..., None] * at(hf, wc)
           + w10.to(dtype)[..., None] * at(hc, wf) + w11.to(dtype)[..., None] * at(hc, wc))
    d = out.shape[-1]
    out = out.reshape(h // m_size, m_size, w // m_size, m_size, d).permute(0, 2, 1, 3, 4).reshape(h * w, d)
    return out.repeat(t, 1)


# (upstream module defining the function, its name, torch reference, label)
_FUNCTIONS = (
    ("vllm.models.kimi_k3.nvidia.ops.attn_res", "attn_res", attn_res_reference, "attention residual"),
    ("vllm.model_executor.models.qwen3_vl", "triton_pos_embed_interpolate", pos_embed_interpolate_reference,
     "bilinear position-embedding interpolation"),
    # the same kernel and launcher, copied into Cohere Compass's file
    ("vllm.model_executor.models.cohere_compass", "triton_pos_embed_interpolate", pos_embed_interpolate_reference,
     "bilinear position-embedding interpolation"),
)
_VENDORED = "Vendored from upstream vLLM"


def defined_by(fn, path, name):
    """Whether ``fn`` is ``path``'s ``name``: defined there, in a migrated copy of that module (the same file
    name) or in a vendored copy (a module whose docstring says it is vendored from ``path``)."""
    if getattr(fn, "__name__", None) != name:
        return False
    module = getattr(fn, "__module__", None) or ""
    if module == path or module.rsplit(".", 1)[-1] == path.rsplit(".", 1)[-1]:
        return True
    doc = getattr(sys.modules.get(module), "__doc__", None) or ""
    return doc.startswith(_VENDORED) and f": {path}." in doc.split("\n", 1)[0]


def _bound(original, reference, label, calls):
    """``reference`` with ``original``'s signature (a call ``original`` refuses still raises), counting calls."""
    sig = inspect.signature(original)

    def call(*args, **kwargs):
        a = sig.bind(*args, **kwargs)
        a.apply_defaults()
        calls[label] = calls.get(label, 0) + 1
        return reference(**a.arguments)

    call._mmf_reference = original
    return call


def install(model, calls=CALLS):
    """Replace each :data:`_FUNCTIONS` function bound by name in a module of ``model``'s classes (their MRO) with
    its reference. Returns the sorted labels of those replaced; ``calls`` (a dict) counts the calls per label."""
    modules = {sys.modules.get(c.__module__) for m in model.modules() for c in type(m).__mro__}
    done = set()
    for module in filter(None, modules):
        for attr, value in list(vars(module).items()):
            original = getattr(value, "_mmf_reference", value)
            row = next((r for r in _FUNCTIONS if callable(original) and defined_by(original, r[0], r[1])), None)
            if row is None:
                continue
            setattr(module, attr, _bound(original, row[2], row[3], calls))
            done.add(row[3])
    return sorted(done)
