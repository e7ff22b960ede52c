"""SigLIP's vision tower for the pinned vLLM with upstream's ``use_head`` (back-port, rule P22).

Upstream's ``SiglipVisionModel(config, quant_config, *, ..., use_head=False)`` builds the attention-pooling
head only when asked (``use_head=True``, or ``use_head=None`` and the config's ``vision_use_head``, True when
absent), and drops checkpoint tensors under ``vision_model.head.`` when it has none. vLLM 0.13.0's takes no
``use_head``: its ``SiglipVisionTransformer`` reads ``config.vision_use_head`` alone (True when absent), so a
config without the key gets a head upstream does not build (ColModernVBert: its parameters are never loaded,
and the forward would pool the patch features through it), and its ``load_weights`` has no name for head tensors
when it has no head. The pinned code decides the head from that one key and nothing else, so this subclass
hands it a shallow copy of the config whose ``vision_use_head`` is upstream's decision, and drops head tensors
when no head is built, as upstream's mapper does; the rest is the pinned tower.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/siglip_vision.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from vllm.model_executor.models.siglip import SiglipVisionModel as _PinnedSiglipVisionModel

__all__ = ["SiglipVisionModel"]


class SiglipVisionModel(_PinnedSiglipVisionModel):
    """The pinned ``SiglipVisionModel`` with upstream's ``use_head`` (default False: no pooling head)."""

    def __init__(self, config, quant_config=None, *, num_hidden_layers_override: int | None = None,
                 require_post_norm: bool | None = None, prefix: str = "", use_head: bool | None = False):
        if isinstance(use_head, bool) and getattr(config, "vision_use_head", True) is not use_head:
            config = copy.copy(config)  # the caller's config (shared with the model's) keeps its value
            config.vision_use_head = use_head
        super().__init__(config, quant_config, num_hidden_layers_override=num_hidden_layers_override,
                         require_post_norm=require_post_norm, prefix=prefix)

    def load_weights(self, weights: Iterable[tuple[str, object]]) -> set[str]:
        if self.vision_model.use_head:
            return super().load_weights(weights)
        return super().load_weights((n, w) for n, w in weights if not n.startswith("vision_model.head."))
