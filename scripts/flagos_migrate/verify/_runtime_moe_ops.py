"""Torch stand-ins for the compiled fused-MoE ops a model calls itself (part of ``_runtime_worker.py``,
through ``_runtime_moe.install``). Standard library only at import.

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
        fused_moe_gemm_reference(a["A"], a["B"], a["C"], a["topk_weights"], a["sorted_token_ids"],
                                 a["expert_ids"], a["num_tokens_post_padded"], a["mul_routed_weight"],
                                 a["top_k"], a["config"]["BLOCK_SIZE_M"], a.get("B_bias"))

    launch._mmf_stand_in = True
    return launch


def _cpu_op(own, reference, first):
    """``own`` for tensors off the CPU, ``reference`` for CPU ones (``first``: the argument to look at)."""
    def op(*args, **kwargs):
        t = args[first] if len(args) > first else next(iter(kwargs.values()), None)
        return reference(*args, **kwargs) if _on_cpu(t) else own(*args, **kwargs)

    op._mmf_stand_in = True
    return op


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
                             ("rms_norm", rms_norm_reference, 1)):
        own = getattr(ops, name, None)
        if own is not None and not getattr(own, "_mmf_stand_in", False):
            setattr(ops, name, _cpu_op(own, ref, first))
            patched.append(f"vllm._custom_ops.{name}")
    for name in ("invoke_fused_moe_kernel", "invoke_fused_moe_triton_kernel"):  # 0.13.0 / upstream
        own = getattr(fused_moe, name, None)
        if own is not None and not getattr(own, "_mmf_stand_in", False) and "sorted_token_ids" in \
                inspect.signature(own).parameters:
            setattr(fused_moe, name, _gemm_launcher(own))
            patched.append(f"{fused_moe.__name__}.{name}")
    return patched
