"""Upstream's ``QKVParallelLinear(v_head_size=...)`` for the pinned vLLM (back-port, rule P22).

Upstream's fused QKV projection takes keyword ``v_head_size``: V heads of another size than Q/K heads
(MiMo-V2-Flash: 192-dim Q/K, 128-dim V). The output is then ``[q | k | v]`` with V's part
``num_kv_heads * v_head_size`` wide, and every loader offset past K uses that size. vLLM 0.13.0's
layer has one head size. This subclass is the pinned layer unchanged when V's size is Q/K's (or not
given); otherwise it sizes the layer as upstream does and loads the q/k/v shards (or a fused checkpoint
tensor) at upstream's offsets. Quantized weights with a separate V size are refused at construction:
the pinned quantized loaders (packed, block-scaled, GGUF, bitsandbytes) assume one head size.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/qkv_linear.py``.
"""

from __future__ import annotations

import torch
from torch.nn import Parameter
from vllm.distributed import divide, get_tensor_model_parallel_world_size
from vllm.model_executor.layers.linear import ColumnParallelLinear
from vllm.model_executor.layers.linear import QKVParallelLinear as _PinnedQKVParallelLinear
from vllm.model_executor.layers.quantization import QuantizationConfig

__all__ = ["QKVParallelLinear"]


class QKVParallelLinear(_PinnedQKVParallelLinear):
    """The pinned layer with upstream's ``v_head_size``."""

    def __init__(self, hidden_size: int, head_size: int, total_num_heads: int,
                 total_num_kv_heads: int | None = None, bias: bool = True, skip_bias_add: bool = False,
                 params_dtype: torch.dtype | None = None, quant_config: QuantizationConfig | None = None,
                 prefix: str = "", *, return_bias: bool = True, disable_tp: bool = False,
                 v_head_size: int | None = None):
        self.v_head_size = head_size if v_head_size is None else v_head_size
        if self.v_head_size == head_size:
            super().__init__(hidden_size, head_size, total_num_heads, total_num_kv_heads, bias, skip_bias_add,
                             params_dtype, quant_config, prefix, return_bias=return_bias, disable_tp=disable_tp)
            return
        if quant_config is not None:
            raise NotImplementedError(
                f"QKVParallelLinear(v_head_size={v_head_size}) with head_size={head_size} and a quantization "
                "config: vLLM 0.13.0's quantized QKV loaders assume one head size (back-port vllm_fl.compat.qkv_linear)")
        # the pinned __init__'s arithmetic, with upstream's V size
        self.hidden_size = hidden_size
        self.head_size = head_size
        self.total_num_heads = total_num_heads
        self.total_num_kv_heads = total_num_heads if total_num_kv_heads is None else total_num_kv_heads
        tp_size = get_tensor_model_parallel_world_size() if not disable_tp else 1
        self.num_heads = divide(self.total_num_heads, tp_size)
        if tp_size >= self.total_num_kv_heads:
            self.num_kv_heads = 1
            self.num_kv_head_replicas = divide(tp_size, self.total_num_kv_heads)
        else:
            self.num_kv_heads = divide(self.total_num_kv_heads, tp_size)
            self.num_kv_head_replicas = 1
        self.output_sizes = [
            self.num_heads * self.head_size * tp_size,
            self.num_kv_heads * self.head_size * tp_size,
            self.num_kv_heads * self.v_head_size * tp_size,
        ]
        ColumnParallelLinear.__init__(
            self, input_size=hidden_size, output_size=sum(self.output_sizes), bias=bias, gather_output=False,
            skip_bias_add=skip_bias_add, params_dtype=params_dtype, quant_config=None, prefix=prefix,
            return_bias=return_bias, disable_tp=disable_tp)

    # upstream's offsets (this rank's slice, then the checkpoint's whole tensor)
    def _get_shard_offset_mapping(self, loaded_shard_id: str):
        return {
            "q": 0,
            "k": self.num_heads * self.head_size,
            "v": (self.num_heads + self.num_kv_heads) * self.head_size,
            "total": (self.num_heads + self.num_kv_heads) * self.head_size + self.num_kv_heads * self.v_head_size,
        }.get(loaded_shard_id)

    def _get_shard_size_mapping(self, loaded_shard_id: str):
        return {
            "q": self.num_heads * self.head_size,
            "k": self.num_kv_heads * self.head_size,
            "v": self.num_kv_heads * self.v_head_size,
        }.get(loaded_shard_id)

    def _checkpoint_shards(self) -> list[tuple[str, int, int]]:
        q, k = self.total_num_heads * self.head_size, self.total_num_kv_heads * self.head_size
        return [("q", 0, q), ("k", q, k), ("v", q + k, self.total_num_kv_heads * self.v_head_size)]

    def _load_fused_module_from_checkpoint(self, param, loaded_weight: torch.Tensor):
        if self.v_head_size == self.head_size:
            return super()._load_fused_module_from_checkpoint(param, loaded_weight)
        for shard_id, offset, size in self._checkpoint_shards():
            self.weight_loader_v2(param, loaded_weight.narrow(param.output_dim, offset, size), shard_id)

    def weight_loader(self, param: Parameter, loaded_weight: torch.Tensor, loaded_shard_id: str | None = None):
        """The pinned loader; with a separate V size its plain path (unquantized: the bias) at upstream's offsets."""
        if self.v_head_size == self.head_size:
            return super().weight_loader(param, loaded_weight, loaded_shard_id)
        output_dim = getattr(param, "output_dim", None)
        if output_dim is None:  # the same for every shard and rank
            assert param.data.shape == loaded_weight.shape
            param.data.copy_(loaded_weight)
            return
        if loaded_shard_id is None:  # fused on disk
            for shard_id, offset, size in self._checkpoint_shards():
                self.weight_loader(param, loaded_weight.narrow(output_dim, offset, size), shard_id)
            return
        assert loaded_shard_id in ("q", "k", "v")
        offset = self._get_shard_offset_mapping(loaded_shard_id)
        size = self._get_shard_size_mapping(loaded_shard_id)
        rank = self.tp_rank if loaded_shard_id == "q" else self.tp_rank // self.num_kv_head_replicas
        if not getattr(param, "is_sharded_weight", False):
            loaded_weight = loaded_weight.narrow(output_dim, rank * size, size)
        param_data = param.data.narrow(output_dim, offset, size)
        assert param_data.shape == loaded_weight.shape
        param_data.copy_(loaded_weight)
