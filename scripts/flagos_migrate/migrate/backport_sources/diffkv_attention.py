"""Upstream's ``Attention(head_size_v=...)`` for the pinned vLLM (back-port, rule P22).

Upstream's attention layer takes V heads of another size than Q/K heads (MiMo-V2-Flash: 192-dim Q/K,
128-dim V) and picks a DiffKV backend for them (``AttentionBackendEnum.FLASH_ATTN_DIFFKV`` /
``TRITON_ATTN_DIFFKV``). vLLM 0.13.0's layer has one head size: it hands ``head_size_v`` on to the
backend impl's ``__init__``, which rejects it, and its enum has no DiffKV member.

Here the pinned layer attends with heads of ``D = max(head_size, head_size_v)``: Q and K are zero-padded to
``D`` (``q.k`` is unchanged and the scale is passed explicitly), V too, and the output is cut back to
``head_size_v``. For every query, ``softmax(s) @ [V | 0] = [softmax(s) @ V | 0]`` whatever the scores ``s``
hold (scale, soft cap, ALiBi, window, sinks, FP8 scales: zeros change no maximum), so the result is upstream's;
the cost is a KV cache of ``D``-wide V heads. The DiffKV backends are stand-ins that only say "no FA3/4 here":
the layer then takes the pinned backend the pinned selector picks for ``D``. With ``head_size_v`` equal to
``head_size`` (or not given) the layer is the pinned one.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/diffkv_attention.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from vllm.attention.backends.registry import AttentionBackendEnum as _PinnedAttentionBackendEnum
from vllm.attention.layer import Attention as _PinnedAttention

__all__ = ["Attention", "AttentionBackendEnum", "FlashAttentionDiffKVBackend", "TritonAttentionDiffKVBackend"]


class _DiffKVBackend:
    """What upstream's models ask of a DiffKV backend class before they hand it to ``Attention``."""

    head_size_v: int = 128

    @classmethod
    def set_head_size_v(cls, head_size_v: int) -> None:
        cls.head_size_v = head_size_v

    @classmethod
    def is_supported_on_current_device(cls, head_size: int, head_size_v: int, has_sinks: bool) -> bool:
        return False  # 0.13.0 has no FA3/4 DiffKV kernel: upstream then takes TRITON_ATTN_DIFFKV


class FlashAttentionDiffKVBackend(_DiffKVBackend):
    @staticmethod
    def get_name() -> str:
        return "FLASH_ATTN_DIFFKV"


class TritonAttentionDiffKVBackend(_DiffKVBackend):
    @staticmethod
    def get_name() -> str:
        return "TRITON_ATTN_DIFFKV"


class _DiffKVMember:
    def __init__(self, name: str, backend: type[_DiffKVBackend]):
        self.name, self.value, self._backend = name, f"{__name__}.{backend.__name__}", backend

    def get_class(self) -> type[_DiffKVBackend]:
        return self._backend

    def get_path(self, include_classname: bool = True) -> str:
        return self.value if include_classname else self.value.rsplit(".", 1)[0]

    def __repr__(self) -> str:
        return f"<AttentionBackendEnum.{self.name}>"


class _WithDiffKV(type):
    """The pinned enum's members and methods, plus upstream's two DiffKV members."""

    def __getattr__(cls, name):
        return getattr(_PinnedAttentionBackendEnum, name)

    def __getitem__(cls, name):
        return cls.__dict__[name] if isinstance(cls.__dict__.get(name), _DiffKVMember) else _PinnedAttentionBackendEnum[name]

    def __iter__(cls):
        return iter(_PinnedAttentionBackendEnum)

    def __len__(cls):
        return len(_PinnedAttentionBackendEnum)


class AttentionBackendEnum(metaclass=_WithDiffKV):
    FLASH_ATTN_DIFFKV = _DiffKVMember("FLASH_ATTN_DIFFKV", FlashAttentionDiffKVBackend)
    TRITON_ATTN_DIFFKV = _DiffKVMember("TRITON_ATTN_DIFFKV", TritonAttentionDiffKVBackend)


class Attention(_PinnedAttention):
    """The pinned layer with upstream's ``head_size_v``."""

    def __init__(self, num_heads: int, head_size: int, scale: float, num_kv_heads: int | None = None,
                 *args, attn_backend=None, head_size_v: int | None = None, **kwargs):
        size_v = head_size if head_size_v is None else head_size_v
        if isinstance(attn_backend, type) and issubclass(attn_backend, _DiffKVBackend):
            attn_backend = None  # the pinned selector's backend for the padded size
        padded = max(head_size, size_v)
        super().__init__(num_heads, padded, scale, num_kv_heads, *args, attn_backend=attn_backend, **kwargs)
        self.qk_head_size, self.v_head_size = head_size, size_v

    def forward(self, query: torch.Tensor, key: torch.Tensor | None, value: torch.Tensor | None,
                output_shape: torch.Size | None = None) -> torch.Tensor:
        dim, dv, padded = self.qk_head_size, self.v_head_size, self.head_size
        if dim == dv == padded:
            return super().forward(query, key, value, output_shape)
        tokens = query.shape[0]

        def pad(x, heads, size):
            return F.pad(x.reshape(-1, heads, size), (0, padded - size)).reshape(-1, heads * padded)

        query = pad(query, self.num_heads, dim)
        key = None if key is None else pad(key, self.num_kv_heads, dim)
        value = None if value is None else pad(value, self.num_kv_heads, dv)
        out = super().forward(query, key, value, torch.Size((tokens, self.num_heads * padded)))
        out = out.view(tokens, self.num_heads, padded)[..., :dv].reshape(tokens, self.num_heads * dv)
        return out if output_shape is None else out.view(output_shape)
