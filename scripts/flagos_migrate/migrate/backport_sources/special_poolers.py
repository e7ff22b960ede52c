"""Upstream's ``BOSEOSFilter`` and ``BgeM3Pooler`` for the pinned vLLM (back-port, rule P22).

Upstream's ``vllm.model_executor.layers.pooler.special`` has two wrappers over other poolers that vLLM 0.13.0
lacks (RoBERTa's BGE-M3 embedder builds them; importing them failed the whole roberta file, every one of its
architectures): ``BOSEOSFilter(pooler, bos_token_id=-1, eos_token_id=-1)`` drops the first / last row of each
request's per-token output when the prompt starts with BOS / ends with EOS (it asks the runner for the token ids),
and ``BgeM3Pooler(token_classify_pooler, embed_pooler)`` concatenates the two outputs per request. Both only call
the wrapped pinned poolers; what they read from the metadata has a pinned spelling: 0.13.0's ``PoolingMetadata``
gives the prompt token ids as ``get_prompt_token_ids()`` (upstream's ``get_prompt_token_ids_cpu()``, the same
rows), and 0.13.0's ``PoolingParams`` has no ``late_chunking_params`` (upstream skips the filter for a late-chunking
request; no 0.13.0 request can be one). ``BgeM3Pooler`` serves upstream's task ``"embed&token_classify"``, which
0.13.0's engine does not list among its pooling tasks: it is built, as upstream's, but the pinned engine never
routes a request to it. Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/special_poolers.py``.
"""

from __future__ import annotations

from collections.abc import Set

import torch
from vllm.model_executor.layers.pooler import Pooler
from vllm.v1.pool.metadata import PoolingMetadata
from vllm_fl.compat.pooling_params_update import PoolingParamsUpdate

__all__ = ["BOSEOSFilter", "BgeM3Pooler"]


class BOSEOSFilter(Pooler):
    """Filters the BOS and EOS token results from outputs (upstream's, over the pinned metadata)."""

    def __init__(self, pooler: Pooler, bos_token_id: int = -1, eos_token_id: int = -1) -> None:
        super().__init__()
        self.pooler = pooler
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id

    def extra_repr(self) -> str:
        return f"bos_token_id={self.bos_token_id}, eos_token_id={self.eos_token_id}"

    def get_supported_tasks(self) -> Set[str]:
        return self.pooler.get_supported_tasks()

    def get_pooling_updates(self, task: str) -> PoolingParamsUpdate:
        return PoolingParamsUpdate(requires_token_ids=True)

    def forward(self, hidden_states: torch.Tensor | list[torch.Tensor],
                pooling_metadata: PoolingMetadata) -> list[torch.Tensor]:
        pooled_outputs = self.pooler(hidden_states, pooling_metadata)
        assert isinstance(pooled_outputs, list)
        prompt_token_ids = pooling_metadata.get_prompt_token_ids()

        for i, (prompt_len, token_ids) in enumerate(zip(pooling_metadata.prompt_lens, prompt_token_ids)):
            if getattr(pooling_metadata.pooling_params[i], "late_chunking_params", None) is not None:
                continue
            pooled_data = pooled_outputs[i]
            assert isinstance(pooled_data, torch.Tensor) and pooled_data.shape[0] == prompt_len
            if int(token_ids[0]) == self.bos_token_id:
                pooled_data = pooled_data[1:]
            if int(token_ids[-1]) == self.eos_token_id:
                pooled_data = pooled_data[:-1]
            pooled_outputs[i] = pooled_data.squeeze(-1)

        return pooled_outputs


class BgeM3Pooler(Pooler):
    """Upstream's BGE-M3 pooler: the dense embedding and the sparse per-token weights of a request, concatenated."""

    def __init__(self, token_classify_pooler: Pooler, embed_pooler: Pooler) -> None:
        super().__init__()
        self.token_classify_pooler = token_classify_pooler
        self.embed_pooler = embed_pooler

    def forward(self, hidden_states: torch.Tensor, pooling_metadata: PoolingMetadata) -> list[torch.Tensor]:
        embed_outputs = self.embed_pooler(hidden_states, pooling_metadata)
        token_classify_outputs = self.token_classify_pooler(hidden_states, pooling_metadata)
        return [torch.cat([e.view(-1), t.view(-1)], dim=-1)
                for e, t in zip(embed_outputs, token_classify_outputs)]

    def get_supported_tasks(self) -> Set[str]:
        return {"embed&token_classify"}

    def get_pooling_updates(self, task: str) -> PoolingParamsUpdate:
        # the pinned poolers' updates have no `|`: merged as upstream's operator does
        embed = self.embed_pooler.get_pooling_updates("embed")
        return PoolingParamsUpdate(requires_token_ids=embed.requires_token_ids) | \
            self.token_classify_pooler.get_pooling_updates("token_classify")

    def extra_repr(self) -> str:
        return f"supported_task={self.get_supported_tasks()}"
