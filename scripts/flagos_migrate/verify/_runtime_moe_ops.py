"""Torch stand-ins for the compiled fused-MoE ops a model calls itself (part of ``_runtime_worker.py``,
through ``_runtime_moe.install``). Standard library only at import.

MiniCPM's MoE calls ``fused_topk`` (``_moe_C::topk_softmax``) and ``fused_experts`` (the Triton kernel, then
``_C::silu_and_mul``) itself, as does every caller of those functions outside ``FusedMoE``'s CPU method.

Most MoE layers reach their experts through ``FusedMoE``, whose CPU method computes in torch. A model that
calls the GPU building blocks directly (K2 Horizon's MoVA value experts: ``_prepare_expert_assignment`` ->
``moe_align_block_size``, the fused-MoE Triton kernel, ``ops.moe_sum``; its grouped RMSNorm:
``ops.rms_norm``) cannot run on this CPU in either venv: the CUDA wheels' ``_moe_C`` / ``_C`` ops have
no CPU kernels and Triton needs a GPU. Here each op, on CPU tensors only, computes in torch what its
kernel computes (the pinned vLLM's CUDA/Triton sources, cited per function); the model's own code and
every tensor on a GPU are left alone. Installed alike in the pinned and the upstream venv, so both run
the model's code with the same op semantics; quantized variants are refused (``triton``: needs GPU).
"""

import inspect

CALLED = set()  # the ops a stand-in computed in this worker (named in the forward's notes)


def moe_align_reference(topk_ids, num_experts, block_size, sorted_token_ids, experts_ids, num_tokens_post_pad,
                        expert_map=None, scatter_idx=None):
    """``_moe_C::moe_align_block_size``: each expert's (token, slot) pairs (flat indices into ``topk_ids``),
    expert by expert, each expert's run padded to a multiple of ``block_size`` with ``topk_ids.numel()``
    (an index no pair has); ``experts_ids[b]`` the expert of block ``b``; ``num_tokens_post_pad`` the
    padded total. With ``expert_map`` (``ignore_invalid_experts``) pairs of experts mapped to -1 are left
    out and the others counted under their local id. Unused blocks get expert -1 (the kernel stops at
    ``num_tokens_post_pad``)."""

    if scatter_idx is not None:
        raise NotImplementedError("moe_align_block_size(scatter_idx=...): no torch stand-in (triton/GPU path)")
    flat = topk_ids.reshape(-1).long()
    ids = flat if expert_map is None else expert_map[flat].long()
    numel = flat.numel()
    sorted_token_ids.fill_(numel)
    experts_ids.fill_(-1)
    pos = 0
    for e in range(int(num_experts)):
        idx = (ids == e).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        sorted_token_ids[pos:pos + idx.numel()] = idx.to(sorted_token_ids.dtype)
        padded = -(-idx.numel() // block_size) * block_size
        experts_ids[pos // block_size:(pos + padded) // block_size] = e
        pos += padded
    num_tokens_post_pad.fill_(pos)


def fused_moe_gemm_reference(A, B, C, topk_weights, sorted_token_ids, expert_ids, num_tokens_post_padded,
                             mul_routed_weight, top_k, block_m, B_bias=None):
    """The unquantized fused-MoE Triton kernel (``fused_moe_kernel``): for each block of ``block_m`` rows of
    ``sorted_token_ids`` below ``num_tokens_post_padded``, rows ``r`` < ``A.size(0) * top_k`` get
    ``C[r] = (A[r // top_k] @ B[e]^T + B_bias[e]) * topk_weights[r]`` (the weight only with
    ``mul_routed_weight``; fp32 accumulation, then ``C``'s dtype), ``e = expert_ids[block]``; expert -1
    writes zeros. ``sorted_token_ids=None`` (upstream's unsorted path) is block ``b`` = row ``b``."""
    import torch

    num_valid = A.size(0) * top_k
    out = C.view(-1, C.size(-1))
    weights = None if topk_weights is None else topk_weights.reshape(-1)
    end = int(num_tokens_post_padded.reshape(-1)[0])
    for b in range(-(-end // block_m)):
        if sorted_token_ids is None:
            rows = torch.tensor([b] if b < num_valid else [], dtype=torch.long)
        else:
            rows = sorted_token_ids[b * block_m:(b + 1) * block_m].long()
            rows = rows[rows < num_valid]
        if rows.numel() == 0:
            continue
        e = int(expert_ids[b])
        if e == -1:
            out[rows] = 0
            continue
        acc = A[rows // top_k].float() @ B[e].float().t()
        if B_bias is not None:
            acc = acc + B_bias[e].float()
        if mul_routed_weight:
            acc = acc * weights[rows].float().unsqueeze(-1)
        out[rows] = acc.to(C.dtype)


def moe_sum_reference(input, output, topk_ids=None, expert_map=None):
    """``_moe_C::moe_sum``: ``output = input.sum(1)`` over the top-k slots (slots of experts another rank
    holds, ``expert_map`` -1, left out)."""
    x = input.float()
    if topk_ids is not None and expert_map is not None:
        x = x * (expert_map[topk_ids.long()] >= 0).unsqueeze(-1)
    output.copy_(x.sum(dim=1).to(output.dtype))


def rms_norm_reference(out, input, weight, epsilon):
    """``_C::rms_norm`` (csrc/layernorm_kernels.cu): ``(x * rsqrt(mean(x^2) + eps))`` in fp32, cast to the
    input's dtype, times ``weight`` (none upstream may pass)."""
    import torch

    x = input.float()
    y = (x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + epsilon)).to(input.dtype)
    out.copy_(y if weight is None else y * weight)


def topk_reference(weights, ids, token_expert_indices, gating, renormalize=False, bias=None, scoring="softmax",
                   scale=1.0, is_padding=None):
    """What the compiled ``topk_softmax`` / ``topk_sigmoid`` kernels (``csrc/moe/topk_softmax_kernels.cu``)
    write: each row's scores in fp32 (softmax over all experts, or sigmoid); the ``k`` best experts by score
    (plus ``bias``, upstream's ``e_score_correction_bias``, when given) in descending order, a tie going to the
    lower expert id (the kernel's argmax); ``weights`` the chosen scores without the bias, divided by their sum
    when ``renormalize``, times ``scale`` (``routed_scaling_factor``, sigmoid only: the softmax caller scales
    itself), in ``weights``' dtype; ``ids`` in their own dtype (int32, uint32 or int64, as the caller allocated);
    ``token_expert_indices[t, j] = j * num_tokens + t`` (the kernel's ``source_rows``). The pinned vLLM's torch
    routers (``fused_topk_bias``, ``grouped_topk``, ``cpu_fused_moe.select_experts``) compute the same.
    ``is_padding`` (upstream, set only by the GPU runner with ``VLLM_MOE_SKIP_PADDING``) is refused."""
    import torch

    if is_padding is not None and bool(is_padding.any()):
        raise NotImplementedError("topk routing with padded rows (is_padding): no torch stand-in (GPU runner only)")
    scores = gating.float().reshape(-1, gating.shape[-1])
    scores = scores.softmax(dim=-1) if scoring == "softmax" else scores.sigmoid()
    choice = scores if bias is None else scores + bias.float().unsqueeze(0)
    top = torch.sort(choice, dim=-1, descending=True, stable=True)[1][:, :weights.shape[-1]]
    w = scores.gather(1, top)
    if renormalize:
        w = w / w.sum(dim=-1, keepdim=True)
    weights.copy_((w * scale).to(weights.dtype))
    ids.copy_(top.to(ids.dtype))
    if token_expert_indices is not None:
        n, k = top.shape
        rows = torch.arange(k).unsqueeze(0) * n + torch.arange(n).unsqueeze(1)
        token_expert_indices.copy_(rows.to(token_expert_indices.dtype))


def topk_softmax_reference(weights, ids, token_expert_indices, gating, renormalize=False,
                           e_score_correction_bias=None, is_padding=None):
    """``vllm._custom_ops.topk_softmax`` (0.13.0: the first five parameters; upstream: all seven)."""
    topk_reference(weights, ids, token_expert_indices, gating, renormalize, e_score_correction_bias,
                   is_padding=is_padding)


def topk_sigmoid_reference(weights, ids, token_expert_indices, gating, renormalize=False,
                           e_score_correction_bias=None, routed_scaling_factor=1.0, is_padding=None):
    """``vllm._custom_ops.topk_sigmoid`` (upstream only)."""
    topk_reference(weights, ids, token_expert_indices, gating, renormalize, e_score_correction_bias, "sigmoid",
                   routed_scaling_factor, is_padding)


def _gelu_erf(x):
    import torch.nn.functional as F

    return F.gelu(x)


def _gelu_tanh(x):
    import torch.nn.functional as F

    return F.gelu(x, approximate="tanh")


def _silu(x):
    import torch.nn.functional as F

    return F.silu(x)


# ``_C``'s gated activations (csrc/activation_kernels.cu ``act_and_mul_kernel``): ``out = act(x) * y`` over
# the input's halves ``[x, y]``, the activation computed in fp32 and rounded to the input's dtype first
ACT_AND_MUL = {"silu_and_mul": _silu, "gelu_and_mul": _gelu_erf, "gelu_tanh_and_mul": _gelu_tanh}


def act_and_mul_reference(act):
    def op(out, input):
        d = input.shape[-1] // 2
        x, y = input[..., :d], input[..., d:]
        out.copy_(act(x.float()).to(input.dtype) * y)

    return op


def _on_cpu(*tensors):
    return all(t is None or not hasattr(t, "device") or t.device.type == "cpu" for t in tensors)


def _gemm_launcher(own):
    """A torch launcher in place of ``own`` (the pinned ``invoke_fused_moe_kernel`` / upstream's
    ``invoke_fused_moe_triton_kernel``, the same parameters by name) for unquantized CPU tensors."""
    sig = inspect.signature(own)

    def launch(*args, **kwargs):
        a = sig.bind(*args, **kwargs)
        a.apply_defaults()
        a = a.arguments
        if not _on_cpu(a["A"], a["B"], a["C"]):
            return own(*args, **kwargs)
        quantized = [k for k in ("use_fp8_w8a8", "use_int8_w8a8", "use_int8_w8a16", "use_int4_w4a16")
                     if a.get(k)] + [k for k in ("A_scale", "B_scale") if a.get(k) is not None]
        if quantized:
            raise NotImplementedError(f"fused-MoE triton kernel with {quantized}: no torch stand-in (needs GPU)")
        CALLED.add("fused-MoE triton kernel")
        fused_moe_gemm_reference(a["A"], a["B"], a["C"], a["topk_weights"], a["sorted_token_ids"],
                                 a["expert_ids"], a["num_tokens_post_padded"], a["mul_routed_weight"],
                                 a["top_k"], a["config"]["BLOCK_SIZE_M"], a.get("B_bias"))

    launch._mmf_stand_in = True
    return launch


def _cpu_op(own, reference, first, name):
    """``own`` for tensors off the CPU, ``reference`` for CPU ones (``first``: the argument to look at)."""
    def op(*args, **kwargs):
        t = args[first] if len(args) > first else next(iter(kwargs.values()), None)
        if not _on_cpu(t):
            return own(*args, **kwargs)
        CALLED.add(name)
        return reference(*args, **kwargs)

    op._mmf_stand_in = True
    return op


def _namespace_ops(namespace, table):
    """Shadow ``torch.ops.<namespace>.<name>`` (the calls read the namespace's attribute at call time) for
    each ``table`` row: the reference for CPU tensors, the venv's own op, if it has one, for others. The CUDA
    wheels here load no ``_C`` at all without a GPU driver (``libcuda.so.1``), so the name is absent."""
    import torch

    ns = getattr(torch.ops, namespace)
    patched = []
    for name, ref in table.items():
        own = ns.__dict__.get(name)
        if own is not None and getattr(own, "_mmf_stand_in", False):
            continue
        if own is None:
            try:
                own = getattr(ns, name)
            except Exception:  # absent: every call would raise; CPU calls get the reference
                own = None
        label = f"torch.ops.{namespace}.{name}"
        setattr(ns, name, _cpu_op(own if own is not None else ref, ref, 1, label))
        patched.append(label)
    return patched


def install():
    """Patch the ops and the kernel launcher where the model's calls look them up (module attributes
    read at call time); names that a venv lacks are skipped. The names patched."""
    patched = []
    try:
        from vllm import _custom_ops as ops
        from vllm.model_executor.layers.fused_moe import fused_moe
    except Exception:
        return patched
    for name, ref, first in (("moe_align_block_size", moe_align_reference, 0), ("moe_sum", moe_sum_reference, 0),
                             ("rms_norm", rms_norm_reference, 1), ("topk_softmax", topk_softmax_reference, 0),
                             ("topk_sigmoid", topk_sigmoid_reference, 0)):
        own = getattr(ops, name, None)
        if own is not None and not getattr(own, "_mmf_stand_in", False):
            setattr(ops, name, _cpu_op(own, ref, first, f"_custom_ops.{name}"))
            patched.append(f"vllm._custom_ops.{name}")
    for name in ("invoke_fused_moe_kernel", "invoke_fused_moe_triton_kernel"):  # 0.13.0 / upstream
        own = getattr(fused_moe, name, None)
        if own is not None and not getattr(own, "_mmf_stand_in", False) and "sorted_token_ids" in \
                inspect.signature(own).parameters:
            setattr(fused_moe, name, _gemm_launcher(own))
            patched.append(f"{fused_moe.__name__}.{name}")
    return patched + _namespace_ops("_C", {k: act_and_mul_reference(f) for k, f in ACT_AND_MUL.items()})
