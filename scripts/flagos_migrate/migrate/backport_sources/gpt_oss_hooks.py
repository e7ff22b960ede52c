"""GPT-OSS's layers with upstream's construction hooks, for the pinned vLLM (back-port, rule P22).

Upstream's ``gpt_oss.py`` builds its parts through hooks a subclass overrides: ``OAIAttention.rope_is_neox_style``
(the rotary convention) and ``OAIAttention._build_attention`` (the attention layer), ``TransformerBlock.attention_cls``
/ ``mlp_cls`` and ``GptOssModel.block_cls``. The OpenAI privacy filter builds a bidirectional GPT-OSS encoder that
way (GPT-J rope, ``EncoderOnlyAttention`` with a window of ``sliding_window + 1`` on every layer). vLLM 0.13.0's
classes have none of these hooks: they build ``OAIAttention`` (NeoX rope, causal decoder attention, a window on even
layers) and ``TransformerBlock`` directly, so such a subclass silently stayed a causal GPT-OSS.

These subclasses are the pinned classes with the pinned constructors' bodies, each part built through upstream's
hook, whose default is what the pinned constructor builds (the same modules, parameters and names: plain GPT-OSS
computes what it did; tests/test_backports.py checks it on the real pinned layers). ``forward`` is the pinned one.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/gpt_oss_hooks.py``.
"""

from __future__ import annotations

import torch
from torch import nn
from vllm.attention.backends.abstract import AttentionType
from vllm.attention.layer import Attention
from vllm.compilation.decorators import support_torch_compile
from vllm.distributed import get_tensor_model_parallel_world_size
from vllm.model_executor.layers.layernorm import RMSNorm
from vllm.model_executor.layers.linear import QKVParallelLinear, RowParallelLinear
from vllm.model_executor.layers.rotary_embedding import get_rope
from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding
from vllm.model_executor.models.gpt_oss import GptOssModel as _PinnedGptOssModel
from vllm.model_executor.models.gpt_oss import MLPBlock
from vllm.model_executor.models.gpt_oss import OAIAttention as _PinnedOAIAttention
from vllm.model_executor.models.gpt_oss import TransformerBlock as _PinnedTransformerBlock
from vllm.model_executor.models.utils import (
    extract_layer_index,
    make_empty_intermediate_tensors_factory,
    make_layers,
)

__all__ = ["GptOssModel", "OAIAttention", "TransformerBlock"]


class OAIAttention(_PinnedOAIAttention):
    """The pinned ``OAIAttention`` with upstream's ``rope_is_neox_style`` and ``_build_attention``."""

    rope_is_neox_style: bool = True

    def __init__(self, config, quant_config=None, cache_config=None, prefix: str = ""):
        nn.Module.__init__(self)  # the pinned constructor's body, the rope style and attention through the hooks
        self.layer_idx = extract_layer_index(prefix)
        self.head_dim = config.head_dim
        self.num_attention_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.hidden_size = config.hidden_size

        self.rotary_emb = get_rope(
            self.head_dim,
            max_position=config.max_position_embeddings,
            dtype=torch.float32,
            rope_parameters={
                "rope_theta": config.rope_parameters["rope_theta"],
                "rope_type": "yarn",
                "factor": config.rope_parameters["factor"],
                "original_max_position_embeddings": config.rope_parameters["original_max_position_embeddings"],
                "beta_fast": config.rope_parameters["beta_fast"],
                "beta_slow": config.rope_parameters["beta_slow"],
                "truncate": config.rope_parameters.get("truncate", True),
            },
            is_neox_style=self.rope_is_neox_style,
        )

        tp_size = get_tensor_model_parallel_world_size()

        self.sinks = torch.nn.Parameter(torch.empty(config.num_attention_heads // tp_size, requires_grad=False))

        self.q_size = self.num_attention_heads * self.head_dim // tp_size
        self.kv_size = self.num_key_value_heads * self.head_dim // tp_size
        self.scaling = self.head_dim**-0.5

        self.qkv_proj = QKVParallelLinear(
            hidden_size=self.hidden_size,
            head_size=self.head_dim,
            total_num_heads=self.num_attention_heads,
            total_num_kv_heads=self.num_key_value_heads,
            quant_config=quant_config,
            prefix=f"{prefix}.qkv_proj",
        )

        self.o_proj = RowParallelLinear(
            input_size=self.num_attention_heads * self.head_dim,
            output_size=self.hidden_size,
            quant_config=quant_config,
            prefix=f"{prefix}.o_proj",
        )

        self.num_local_attention_heads = config.num_attention_heads // tp_size
        self.num_local_key_value_heads = config.num_key_value_heads // tp_size

        self.attn = self._build_attention(config=config, cache_config=cache_config, quant_config=quant_config,
                                          prefix=prefix)

    def _build_attention(self, config, cache_config, quant_config, prefix: str) -> Attention:
        # the pinned constructor's attention: a window on every other layer, causal decoder attention
        sliding_window = config.sliding_window if self.layer_idx % 2 == 0 else None
        return Attention(
            self.num_local_attention_heads,
            self.head_dim,
            self.scaling,
            num_kv_heads=self.num_local_key_value_heads,
            cache_config=cache_config,
            quant_config=quant_config,
            per_layer_sliding_window=sliding_window,
            attn_type=AttentionType.DECODER,
            prefix=f"{prefix}.attn",
            sinks=self.sinks,
        )


class TransformerBlock(_PinnedTransformerBlock):
    """The pinned ``TransformerBlock`` with upstream's ``attention_cls`` and ``mlp_cls``."""

    attention_cls: type[nn.Module] = OAIAttention
    mlp_cls: type[nn.Module] = MLPBlock

    def __init__(self, vllm_config, quant_config, prefix: str = ""):
        nn.Module.__init__(self)
        config = vllm_config.model_config.hf_config
        cache_config = vllm_config.cache_config

        self.layer_idx = extract_layer_index(prefix)
        self.attn = self.attention_cls(config, prefix=f"{prefix}.attn", quant_config=quant_config,
                                       cache_config=cache_config)
        self.mlp = self.mlp_cls(vllm_config, self.layer_idx, prefix=f"{prefix}.mlp")
        self.input_layernorm = RMSNorm(config.hidden_size, eps=1e-5)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=1e-5)


# its own __init__ replaces the one the pinned class's decorator wrapped: decorated again, as upstream's class is
@support_torch_compile
class GptOssModel(_PinnedGptOssModel):
    """The pinned ``GptOssModel`` with upstream's ``block_cls``."""

    block_cls: type[nn.Module] = TransformerBlock

    def __init__(self, *, vllm_config, prefix: str = ""):
        nn.Module.__init__(self)
        self.config = vllm_config.model_config.hf_config
        self.quant_config = vllm_config.quant_config
        self.parallel_config = vllm_config.parallel_config
        self.embedding = VocabParallelEmbedding(self.config.vocab_size, self.config.hidden_size)
        self.start_layer, self.end_layer, self.layers = make_layers(
            self.config.num_hidden_layers,
            lambda prefix: self.block_cls(vllm_config, prefix=prefix, quant_config=self.quant_config),
            prefix=f"{prefix}.layers",
        )
        self.norm = RMSNorm(self.config.hidden_size, eps=1e-5)
        self.make_empty_intermediate_tensors = make_empty_intermediate_tensors_factory(
            ["hidden_states", "residual"], self.config.hidden_size
        )
        self.aux_hidden_state_layers = tuple[int, ...]()
