"""DeepSeek V3.2 sparse MLA for the pinned vLLM: the indexer op and the index-group builder (back-port, P22).

Upstream moved the sparse-attention indexer out of ``deepseek_v2.py`` into
``vllm.model_executor.layers.sparse_attn_indexer.SparseAttnIndexer`` (a ``CustomOp`` around the
``sparse_attn_indexer`` kernel chain) and added ``vllm.v1.attention.backends.mla.index_group``
(``SparseMLAIndexGroupBuilder``: side streams that turn logical top-k indices into physical KV
rows). Both are used only for checkpoints with ``index_topk`` (DeepSeek V3.2, GLM-5); the models
of this family that have none (DeepSeek V2/V3, Kimi K2, LongCat, Mistral Large 3, GLM-4.7-Flash)
import these names but never build them.

- ``SparseAttnIndexer``: upstream's constructor; its FP8 path runs the pinned vLLM's own op
  ``torch.ops.vllm.sparse_attn_indexer`` (registered by 0.13.0's ``deepseek_v2`` module, the same
  DeepGEMM kernels 0.13.0's ``Indexer`` calls), on CUDA only. What 0.13.0's op cannot do (FP4 cache,
  compressed or two-level candidate selection, decode/prefill context parallelism) is refused at
  construction; on a platform without CUDA the forward says so (no pure-torch indexer here).
- ``SparseMLAIndexGroupBuilder``: refused at construction. The pinned ``MLAModules`` /
  ``MultiHeadLatentAttentionWrapper`` take no ``index_group_builder``: 0.13.0's sparse MLA backend
  reads the indexer's top-k buffer itself, so there is nothing to hand the group to.

Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/sparse_mla.py``.
"""

from __future__ import annotations

import torch
from torch import nn
from vllm.config import get_current_vllm_config
from vllm.platforms import current_platform


class SparseAttnIndexer(nn.Module):
    """Upstream's indexer op layer over the pinned ``torch.ops.vllm.sparse_attn_indexer``."""

    def __init__(
        self,
        k_cache,
        quant_block_size: int,
        scale_fmt: str,
        topk_tokens: int,
        head_dim: int,
        max_model_len: int,
        max_total_seq_len: int,
        topk_indices_buffer: torch.Tensor,
        skip_k_cache_insert: bool = False,
        use_fp4_cache: bool = False,
        compress_ratio: int = 1,
        candidate_blocks: torch.Tensor | None = None,
        candidate_block_size: int = 0,
        candidate_write: bool = False,
    ):
        super().__init__()
        refused = [what for what, on in (
            ("an FP4 indexer cache (use_fp4_cache)", use_fp4_cache),
            (f"compress_ratio={compress_ratio}", compress_ratio != 1),
            ("two-level candidate selection (candidate_blocks)",
             candidate_blocks is not None or candidate_write or candidate_block_size),
            ("skip_k_cache_insert", skip_k_cache_insert)) if on]
        parallel = get_current_vllm_config().parallel_config
        if getattr(parallel, "decode_context_parallel_size", 1) > 1:
            refused.append("decode context parallelism")
        if getattr(parallel, "prefill_context_parallel_size", 1) > 1:
            refused.append("prefill context parallelism")
        if refused:
            raise NotImplementedError(
                "SparseAttnIndexer: vLLM 0.13.0's sparse_attn_indexer op has no " + ", ".join(refused)
                + " (upstream added them after 0.13.0)")
        self.k_cache = k_cache
        self.quant_block_size = quant_block_size
        self.scale_fmt = scale_fmt
        self.topk_tokens = topk_tokens
        self.head_dim = head_dim
        self.max_model_len = max_model_len
        self.max_total_seq_len = max_total_seq_len
        self.topk_indices_buffer = topk_indices_buffer

    def forward(self, hidden_states: torch.Tensor, q_quant, k: torch.Tensor | None,
                weights: torch.Tensor) -> torch.Tensor:
        if not current_platform.is_cuda():
            raise RuntimeError("SparseAttnIndexer: vLLM 0.13.0 runs the sparse attention indexer with "
                               "DeepGEMM kernels only; CUDA is not available on this platform")
        if isinstance(q_quant, tuple):  # (values, scales): upstream's FP4 query, refused above
            raise NotImplementedError("SparseAttnIndexer: an FP4 query has no vLLM 0.13.0 kernel")
        # registers the pinned op (0.13.0 defines it next to its own Indexer)
        import vllm.model_executor.models.deepseek_v2  # noqa: F401

        kv_cache = self.k_cache.kv_cache
        if isinstance(kv_cache, (list, tuple)):  # 0.13.0 binds one cache per virtual engine
            kv_cache = kv_cache[0]
        return torch.ops.vllm.sparse_attn_indexer(
            hidden_states, self.k_cache.prefix, kv_cache, q_quant, k, weights,
            self.quant_block_size, self.scale_fmt, self.topk_tokens, self.head_dim,
            self.max_model_len, self.max_total_seq_len, self.topk_indices_buffer)


class SparseMLAIndexGroupBuilder:
    """Refused: 0.13.0's sparse MLA has no index groups to assign layers to."""

    def __init__(self, logical_topk_indices: torch.Tensor, max_decode_rows: int | None = None) -> None:
        raise NotImplementedError(
            "SparseMLAIndexGroupBuilder: vLLM 0.13.0's MLAModules/MultiHeadLatentAttentionWrapper take no "
            "index_group_builder (its sparse MLA backend reads the indexer's top-k buffer directly); a "
            "checkpoint with index_topk (DeepSeek V3.2 sparse attention) needs that part of the model "
            "rewritten to vLLM 0.13.0's own deepseek_v2 Indexer")


__all__ = ["SparseAttnIndexer", "SparseMLAIndexGroupBuilder"]
