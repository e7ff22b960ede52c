"""Upstream's multi-head latent attention wrapper keywords for the pinned vLLM (back-port, rule P22).

Upstream's ``vllm.model_executor.layers.mla`` grew keywords that 0.13.0's ``MLAModules`` and
``MultiHeadLatentAttentionWrapper`` reject, and every model of the DeepSeek family passes some of
them (DeepSeek V2/V3, Kimi, Mistral Large 3, GLM-4.7-Flash, Sarvam, the MTP/EAGLE drafts):

- ``MLAModules(g_proj=)``: an output gate, ``attn_out * sigmoid(g_proj(hidden_states))`` before
  ``o_proj`` (upstream's forward); done here the same way.
- ``MLAModules(index_group_builder=)``: DeepSeek V3.2's sparse-MLA index groups. None (every model
  without ``index_topk``) changes nothing; a builder is refused: 0.13.0's sparse MLA backend reads the
  indexer's top-k buffer itself and takes no groups.
- ``skip_topk``: a sparse layer that reuses the top-k buffer an earlier layer wrote instead of running
  its indexer; kept as upstream's attribute (the MTP proposer toggles it) and honoured in the forward.
- ``allow_short_prefill_indexer_scoring_skip``: only binds upstream's ``SparseAttnIndexer`` op to
  the layer (a CUDA shortcut that skips scoring nobody reads); 0.13.0's indexer has no such op, so
  there is nothing to bind and the result is the same.
- ``fuse_qkv_rmsnorm``: one kernel for the q_a and kv_a RMSNorms; here the two norms run as
  modules, which is what the fused kernel computes.
- ``non_causal_multi_token_decode=True`` (drafts that decode several tokens without a causal mask) is
  refused: 0.13.0's MLA backends decode causally only. False, the default, is the pinned behaviour.
- A query projection that replicates heads across a decode-context-parallel group (``qrep_active``,
  upstream's layers only) is refused; 0.13.0's layers have none.

Both classes extend the pinned ones (``isinstance`` keeps working; the pinned ``MLAAttention`` and its
backends do the attention). Written by model-migrate-flagos; ``migrate_model.py apply`` installs it
as ``vllm_fl/compat/mla.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from vllm.config import CacheConfig
from vllm.model_executor.layers.mla import MLAModules as _PinnedMLAModules
from vllm.model_executor.layers.mla import (
    MultiHeadLatentAttentionWrapper as _PinnedMultiHeadLatentAttentionWrapper,
)
from vllm.model_executor.layers.quantization import QuantizationConfig

__all__ = ["MLAModules", "MultiHeadLatentAttentionWrapper"]


@dataclass
class MLAModules(_PinnedMLAModules):
    """The pinned modules plus upstream's ``g_proj`` and ``index_group_builder`` (same order)."""

    g_proj: torch.nn.Module | None = None
    index_group_builder: Any = None


class MultiHeadLatentAttentionWrapper(_PinnedMultiHeadLatentAttentionWrapper):
    """The pinned MLA wrapper with upstream's constructor and forward (output gate, skip_topk)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        scale: float,
        qk_nope_head_dim: int,
        qk_rope_head_dim: int,
        v_head_dim: int,
        q_lora_rank: int | None,
        kv_lora_rank: int,
        mla_modules: MLAModules,
        cache_config: CacheConfig | None = None,
        quant_config: QuantizationConfig | None = None,
        prefix: str = "",
        skip_topk: bool = False,
        non_causal_multi_token_decode: bool = False,
        allow_short_prefill_indexer_scoring_skip: bool = False,
        fuse_qkv_rmsnorm: bool = False,
    ) -> None:
        q_proj_layer = mla_modules.q_b_proj if q_lora_rank is not None else mla_modules.q_proj
        refused = [what for what, on in (
            ("non-causal multi-token decode (non_causal_multi_token_decode=True)", non_causal_multi_token_decode),
            ("sparse-MLA index groups (index_group_builder)",
             getattr(mla_modules, "index_group_builder", None) is not None),
            ("a query projection replicated across the decode-context-parallel group (qrep_active)",
             getattr(q_proj_layer, "qrep_active", False))) if on]
        if refused:
            raise NotImplementedError("MultiHeadLatentAttentionWrapper: vLLM 0.13.0's MLA attention has no "
                                      + ", ".join(refused) + " (upstream added it after 0.13.0)")
        super().__init__(hidden_size, num_heads, scale, qk_nope_head_dim, qk_rope_head_dim, v_head_dim,
                         q_lora_rank, kv_lora_rank, mla_modules, cache_config, quant_config, prefix)
        self.g_proj = getattr(mla_modules, "g_proj", None)
        self.skip_topk = skip_topk
        self.fuse_qkv_rmsnorm = fuse_qkv_rmsnorm
        self.dcp_q_replicate = False

    def forward_native(
        self,
        positions: torch.Tensor,
        hidden_states: torch.Tensor,
        llama_4_scaling: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q_c = None
        if self.q_lora_rank is not None:
            assert self.fused_qkv_a_proj is not None, "fused_qkv_a_proj is required when q_lora_rank is not None"
            assert self.q_a_layernorm is not None, "q_a_layernorm is required when q_lora_rank is not None"
            assert self.q_b_proj is not None, "q_b_proj is required when q_lora_rank is not None"
            qkv_lora = self.fused_qkv_a_proj(hidden_states)[0]
            q_c, kv_lora = qkv_lora.split([self.q_lora_rank, self.kv_lora_rank + self.qk_rope_head_dim], dim=-1)
            q_c = self.q_a_layernorm(q_c)
            q = self.q_b_proj(q_c)[0]
        else:
            assert self.kv_a_proj_with_mqa is not None, "kv_a_proj_with_mqa is required when q_lora_rank is None"
            assert self.q_proj is not None, "q_proj is required when q_lora_rank is None"
            kv_lora = self.kv_a_proj_with_mqa(hidden_states)[0]
            q = self.q_proj(hidden_states)[0]

        kv_c, k_pe = kv_lora.split([self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        kv_c_normed = self.kv_a_layernorm(kv_c)
        q = q.view(-1, self.num_heads, self.qk_head_dim)
        k_pe = k_pe.unsqueeze(1)  # head dim of 1
        if self.rotary_emb is not None:
            q[..., self.qk_nope_head_dim:], k_pe = self.rotary_emb(positions, q[..., self.qk_nope_head_dim:], k_pe)

        # a skip_topk layer reads the top-k buffer an earlier layer's indexer wrote (upstream)
        if self.indexer and self.is_sparse and not self.skip_topk:
            self.indexer(hidden_states, q_c, positions, self.indexer_rope_emb)

        if llama_4_scaling is not None:
            q *= llama_4_scaling

        attn_out = self.mla_attn(q, kv_c_normed, k_pe,
                                 output_shape=(hidden_states.shape[0], self.num_heads * self.v_head_dim))
        if self.g_proj is not None:
            attn_out = attn_out * self.g_proj(hidden_states)[0].sigmoid()
        return self.o_proj(attn_out)[0]

    def forward_cuda(self, *args, **kwargs):
        return self.forward_native(*args, **kwargs)
