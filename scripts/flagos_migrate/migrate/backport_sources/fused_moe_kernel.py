"""Upstream's name for the pinned fused-MoE kernel launcher (back-port, rule P22).

Upstream split vLLM 0.13.0's ``invoke_fused_moe_kernel`` into ``dispatch_fused_moe_kernel`` (the
choice between the WNA16 CUDA kernel, the GPTQ/AWQ Triton kernel and the general Triton kernel) and
one ``invoke_*`` function per kernel; ``dispatch_fused_moe_kernel`` takes the same parameters in the
same order as the pinned ``invoke_fused_moe_kernel`` (A, B, C, A_scale, B_scale, B_zp, topk_weights,
sorted_token_ids, expert_ids, num_tokens_post_padded, mul_routed_weight, top_k, config,
compute_type, use_fp8_w8a8, use_int8_w8a8, use_int8_w8a16, use_int4_w4a16, per_channel_quant,
block_shape, B_bias) and makes the same choice, which the pinned function makes inline. The one
difference: upstream also takes ``sorted_token_ids=None`` (its unsorted Triton path, which its
``_prepare_expert_assignment`` picks when tokens * top_k * 4 <= experts, e.g. a decode step: block ``b``
computes (token, slot) pair ``b`` with expert ``expert_ids[b]``); 0.13.0's kernel has no such path but
reads the same from a sorted layout of one pair per block, the rest of each block padding (an index
>= the valid count, which the kernel masks), so that layout is built. The kernels are Triton/CUDA (GPU
only). Written by
model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/fused_moe_kernel.py``.
"""

from __future__ import annotations

from vllm.model_executor.layers.fused_moe.fused_moe import invoke_fused_moe_kernel


def dispatch_fused_moe_kernel(A, B, C, A_scale, B_scale, B_zp, topk_weights, sorted_token_ids, expert_ids,
                              num_tokens_post_padded, mul_routed_weight, top_k, config, compute_type,
                              use_fp8_w8a8, use_int8_w8a8, use_int8_w8a16, use_int4_w4a16,
                              per_channel_quant, block_shape=None, B_bias=None) -> None:
    if sorted_token_ids is None:
        import torch

        block, pairs, valid = config["BLOCK_SIZE_M"], expert_ids.numel(), A.size(0) * top_k
        sorted_token_ids = torch.full((pairs * block,), valid, dtype=torch.int32, device=A.device)
        sorted_token_ids[::block] = torch.arange(pairs, dtype=torch.int32, device=A.device)
    invoke_fused_moe_kernel(A, B, C, A_scale, B_scale, B_zp, topk_weights, sorted_token_ids, expert_ids,
                            num_tokens_post_padded, mul_routed_weight, top_k, config, compute_type,
                            use_fp8_w8a8, use_int8_w8a8, use_int8_w8a16, use_int4_w4a16,
                            per_channel_quant, block_shape, B_bias)


__all__ = ["dispatch_fused_moe_kernel"]
