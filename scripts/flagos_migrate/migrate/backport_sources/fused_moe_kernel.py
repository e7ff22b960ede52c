"""Upstream's name for the pinned fused-MoE kernel launcher (back-port, rule P22).

Upstream split vLLM 0.13.0's ``invoke_fused_moe_kernel`` into ``dispatch_fused_moe_kernel`` (the
choice between the WNA16 CUDA kernel, the GPTQ/AWQ Triton kernel and the general Triton kernel) and
one ``invoke_*`` function per kernel; ``dispatch_fused_moe_kernel`` takes the same parameters in the
same order as the pinned ``invoke_fused_moe_kernel`` (A, B, C, A_scale, B_scale, B_zp, topk_weights,
sorted_token_ids, expert_ids, num_tokens_post_padded, mul_routed_weight, top_k, config,
compute_type, use_fp8_w8a8, use_int8_w8a8, use_int8_w8a16, use_int4_w4a16, per_channel_quant,
block_shape, B_bias) and makes the same choice, which the pinned function makes inline. The one
difference: upstream also takes ``sorted_token_ids=None`` (its unsorted Triton path), which 0.13.0
has no kernel for; that is refused. The kernels are Triton/CUDA (GPU only). Written by
model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/fused_moe_kernel.py``.
"""

from __future__ import annotations

from vllm.model_executor.layers.fused_moe.fused_moe import invoke_fused_moe_kernel


def dispatch_fused_moe_kernel(A, B, C, A_scale, B_scale, B_zp, topk_weights, sorted_token_ids, expert_ids,
                              num_tokens_post_padded, mul_routed_weight, top_k, config, compute_type,
                              use_fp8_w8a8, use_int8_w8a8, use_int8_w8a16, use_int4_w4a16,
                              per_channel_quant, block_shape=None, B_bias=None) -> None:
    if sorted_token_ids is None:
        raise NotImplementedError("dispatch_fused_moe_kernel: vLLM 0.13.0's fused-MoE kernels need "
                                  "sorted_token_ids (upstream's unsorted path came later)")
    invoke_fused_moe_kernel(A, B, C, A_scale, B_scale, B_zp, topk_weights, sorted_token_ids, expert_ids,
                            num_tokens_post_padded, mul_routed_weight, top_k, config, compute_type,
                            use_fp8_w8a8, use_int8_w8a8, use_int8_w8a16, use_int4_w4a16,
                            per_channel_quant, block_shape, B_bias)


__all__ = ["dispatch_fused_moe_kernel"]
