"""Upstream's model-offloading API over what the pinned vLLM offloads (back-port, rule P22).

Upstream moved CPU weight offloading into ``vllm.model_executor.offloader``: a global offloader
(``get_offloader()``) that is a ``NoopOffloader`` unless offloading is configured, a ``UVAOffloader`` for
``cpu_offload_gb`` and a ``PrefetchOffloader`` for grouped prefetching. Model files ask it which kind runs
(AliceAI refuses prefetching and non-UVA CPU offloading) or hand it layers (``wrap_modules``). vLLM 0.13.0
has no such module: its only offloading is ``maybe_offload_to_cpu`` in ``models/utils.py``, by
``cpu_offload_gb`` (``set_cpu_offload_max_bytes``), always over UVA (it asserts UVA), and no prefetching.
``get_offloader()`` here says exactly that in upstream's terms: a ``UVAOffloader`` with
``uva_offloading=True`` over the pinned function while a CPU offload budget is set, else a
``NoopOffloader``; a ``PrefetchOffloader`` is never the offloader (building one raises).
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/offloader.py``.
"""

from __future__ import annotations

from collections.abc import Generator

import torch.nn as nn
from vllm.model_executor.models import utils as _pinned_utils

__all__ = ["BaseOffloader", "NoopOffloader", "PrefetchOffloader", "UVAOffloader", "get_offloader"]


class BaseOffloader:
    """Upstream's offloader interface (vllm/model_executor/offloader/base.py): the hooks a model may call."""

    supports_tower_offload: bool = False

    def wrap_modules(self, modules_generator: Generator[nn.Module, None, None], prefix: str = "") -> list[nn.Module]:
        raise NotImplementedError

    def post_init(self) -> None:
        return

    def sync_prev_onload(self) -> None:
        return

    def join_after_forward(self) -> None:
        return

    def _wait_for_layer(self, layer_idx: int) -> None:
        return

    def _start_prefetch(self, layer_idx: int) -> None:
        return


class NoopOffloader(BaseOffloader):
    """No offloading: the modules as they are (upstream's default)."""

    def wrap_modules(self, modules_generator: Generator[nn.Module, None, None], prefix: str = "") -> list[nn.Module]:
        return list(modules_generator)


class UVAOffloader(BaseOffloader):
    """The pinned CPU offloading (``maybe_offload_to_cpu``) under upstream's name: UVA only, as 0.13.0's is."""

    supports_tower_offload = True

    def __init__(self, cpu_offload_max_bytes: int, cpu_offload_params: set[str] | None = None) -> None:
        if cpu_offload_params:
            raise NotImplementedError("vLLM 0.13.0 offloads whole modules by budget, not named parameters")
        self.cpu_offload_max_bytes = cpu_offload_max_bytes
        self.cpu_offload_params: set[str] = set()
        self.uva_offloading = True  # 0.13.0's maybe_offload_to_cpu asserts UVA and always offloads through it

    @property
    def cpu_offload_bytes(self) -> int:
        return _pinned_utils._CPU_OFFLOAD_BYTES

    def wrap_modules(self, modules_generator: Generator[nn.Module, None, None], prefix: str = "") -> list[nn.Module]:
        return [_pinned_utils.maybe_offload_to_cpu(module) for module in modules_generator]


class PrefetchOffloader(BaseOffloader):
    """Upstream's grouped prefetch offloading, which vLLM 0.13.0 does not have: never the offloader here."""

    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError("vLLM 0.13.0 has no prefetch offloading")


def get_offloader() -> BaseOffloader:
    """What the pinned vLLM offloads: its CPU offload budget (``cpu_offload_gb``) over UVA, or nothing."""
    max_bytes = _pinned_utils._CPU_OFFLOAD_MAX_BYTES
    return UVAOffloader(max_bytes) if max_bytes > 0 else NoopOffloader()
