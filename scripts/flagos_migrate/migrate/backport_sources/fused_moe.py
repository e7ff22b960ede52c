"""Upstream's fused-MoE construction API for the pinned vLLM (back-port, rule P22).

Upstream builds a MoE layer with ``FusedMoEFactory(...)``: a ``MoERunner`` that holds the router
gate, the shared experts and a ``RoutedExperts`` module with the fused ``w13``/``w2`` weights, and
is called as ``experts(hidden_states=..., router_logits=...)``; it returns the shared plus routed
output, already combined. vLLM 0.13.0 has the pieces under other names: ``FusedMoE`` (routed
weights, their loader, quantization methods, expert maps) and ``SharedFusedMoE`` (returns a
``(shared, routed)`` tuple, the model adds them).

This module rebuilds the upstream surface on top of the pinned ``FusedMoE``:

* ``RoutedExperts`` *is* a pinned ``FusedMoE`` (same parameters, ``weight_loader``, quantization
  methods and EP maps), constructed from upstream's arguments, living at upstream's parameter
  path ``<prefix>.routed_experts.w13_weight``, with upstream's checkpoint-name ``load_weights``.
* Routing follows upstream's router selection (grouped top-k; custom routing function; correction
  bias; plain top-k; zero experts first, as upstream's ``ZeroExpertRouter``: LongCat-Flash's identity
  experts, whose weighted token the runner adds last), with upstream's scoring functions,
  renormalisation and routed scaling. It is
  handed to the pinned layer as its ``custom_routing_function``, so the pinned kernels apply it
  (``Router`` and the activations live in ``vllm_fl/compat/fused_moe_routing.py``, installed with this).
* ``MoERunner.forward`` is upstream's contract: internal gate, routed input/output transforms,
  shared experts added, routed scale on the output when asked, one final all-reduce.

Unquantized experts on CPU run a per-expert loop in plain torch (the pinned CPU kernel's own
method, which also covers what that kernel lacks: gelu, gelu_tanh, clamped SwiGLU, router weights
on the input); elsewhere, and for quantized experts, the pinned layer's quantization method runs. What the pinned vLLM cannot do is refused at construction with
``NotImplementedError`` naming the argument: ROCm fused shared experts, zero experts other than identity, hash
routing, sqrtsoftplus scoring, expert substitution, and EPLB on CPU.

Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/fused_moe.py`` and re-points the migrated files' imports of these names here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from vllm.distributed import tensor_model_parallel_all_reduce
from vllm.distributed.eplb.eplb_state import EplbState
from vllm.forward_context import is_forward_context_available, set_forward_context
from vllm.model_executor.layers.fused_moe.layer import FusedMoE
from vllm.model_executor.layers.fused_moe.unquantized_fused_moe_method import UnquantizedFusedMoEMethod
from vllm.model_executor.layers.quantization import QuantizationConfig
from vllm.platforms import current_platform
from vllm_fl.compat.fused_moe_routing import (
    _GATED,
    _NOT_GATED,
    _PINNED_KERNEL_ACTIVATIONS,
    _SPECIAL,
    Router,
    _activate,
)

# ----------------------------------------------------------------------------------- routed experts


@dataclass
class MoESpec:
    """What ``FusedMoEFactory`` hands ``RoutedExperts`` (upstream passes its ``FusedMoEConfig``)."""

    num_experts: int
    top_k: int
    hidden_size: int
    intermediate_size: int
    activation: str = "silu"
    has_bias: bool = False
    tp_size: int | None = None
    dp_size: int | None = None
    pcp_size: int | None = None
    enable_eplb: bool = False
    num_redundant_experts: int = 0
    is_sequence_parallel: bool = False


def _settable(name: str) -> property:
    """A property reading ``moe_parallel_config.<name>`` until the instance assigns its own value."""
    key = "_assigned_" + name

    def get(self):
        return self.__dict__[key] if key in self.__dict__ else getattr(self.moe_parallel_config, name)

    def set_(self, value):
        self.__dict__[key] = value

    return property(get, set_)


class RoutedExperts(FusedMoE):
    """The routed experts: the pinned ``FusedMoE`` built from upstream's ``RoutedExperts`` arguments."""

    def __init__(
        self,
        layer_name: str,
        params_dtype: torch.dtype | None,
        moe_config: MoESpec,
        quant_config: QuantizationConfig | None,
        expert_map_manager: Any = None,
        ckpt_gate_proj_name: str = "gate_proj",
        ckpt_down_proj_name: str = "down_proj",
        ckpt_up_proj_name: str | None = "up_proj",
        is_fused_checkpoint_transposed: bool = False,
        renormalize: bool = True,
        use_grouped_topk: bool = False,
        num_expert_group: int | None = None,
        topk_group: int | None = None,
        custom_routing_function: Callable | None = None,
        scoring_func: str = "softmax",
        routed_scaling_factor: float = 1.0,
        swiglu_limit: float | None = None,
        swiglu_alpha: float | None = None,
        swiglu_beta: float | None = None,
        e_score_correction_bias: torch.Tensor | None = None,
        apply_router_weight_on_input: bool = False,
        hash_indices_table: torch.Tensor | None = None,
    ):
        spec = moe_config
        if hash_indices_table is not None:
            raise NotImplementedError("hash_indices_table (hash routing): vLLM 0.13.0 has no hash router")
        act = spec.activation
        gated = not act.endswith("_no_mul")
        if act not in _GATED and act not in _NOT_GATED and act not in _SPECIAL:
            raise ValueError(f"Unknown MoE activation: {act!r}")
        if gated == (ckpt_up_proj_name is None):
            raise ValueError(f"{layer_name}: ckpt_up_proj_name={ckpt_up_proj_name!r} is inconsistent with "
                             f"activation {act!r}. Gated MoE needs an up projection name; non-gated MoE must pass None.")
        self.router = Router(top_k=spec.top_k, renormalize=renormalize, use_grouped_topk=use_grouped_topk,
                             num_expert_group=num_expert_group, topk_group=topk_group, scoring_func=scoring_func,
                             routed_scaling_factor=routed_scaling_factor,
                             e_score_correction_bias=e_score_correction_bias,
                             custom_routing_function=custom_routing_function)
        # Routing is ours (the router above); the pinned layer takes it as a custom routing function,
        # so it must not run its own grouped/bias/scoring paths.
        # 0.13.0's FusedMoE refuses non-gated experts off CUDA before it creates weights ("supported only
        # for CUDA"); no pinned kernel has a non-gated activation, so they always run in the torch loop
        # below: there the pinned layer is built gated and its weights re-made non-gated (Nemotron-H).
        regated = not gated and not current_platform.is_cuda()
        super().__init__(
            num_experts=spec.num_experts, top_k=spec.top_k, hidden_size=spec.hidden_size,
            intermediate_size=spec.intermediate_size, params_dtype=params_dtype, reduce_results=False,
            renormalize=renormalize, quant_config=quant_config, tp_size=spec.tp_size, dp_size=spec.dp_size,
            pcp_size=spec.pcp_size, prefix=layer_name, custom_routing_function=self.router,
            activation=act if act in _PINNED_KERNEL_ACTIVATIONS else "silu", is_act_and_mul=gated or regated,
            apply_router_weight_on_input=apply_router_weight_on_input, enable_eplb=spec.enable_eplb,
            num_redundant_experts=spec.num_redundant_experts, has_bias=spec.has_bias,
            is_sequence_parallel=spec.is_sequence_parallel)
        if regated and isinstance(self.quant_method, UnquantizedFusedMoEMethod):
            self._make_non_gated_weights()
        self.upstream_activation = act
        self.upstream_scoring_func = scoring_func
        self.ckpt_gate_proj_name = ckpt_gate_proj_name
        self.ckpt_down_proj_name = ckpt_down_proj_name
        self.ckpt_up_proj_name = ckpt_up_proj_name
        self.is_fused_checkpoint_transposed = is_fused_checkpoint_transposed
        self.swiglu_limit, self.swiglu_alpha, self.swiglu_beta = swiglu_limit, swiglu_alpha, swiglu_beta
        self.num_logical_experts = spec.num_experts
        self.unquantized = isinstance(self.quant_method, UnquantizedFusedMoEMethod)
        # activations the pinned kernels lack, and router weights on the input (the pinned CPU kernel
        # refuses them), run in the back-port's torch loop, which needs plain (unquantized) weights
        self.needs_native = (act not in _PINNED_KERNEL_ACTIVATIONS or swiglu_limit is not None
                             or swiglu_alpha is not None)
        if self.needs_native and not self.unquantized:
            raise NotImplementedError(
                f"{layer_name}: activation {act!r} (swiglu_limit={swiglu_limit}) has no vLLM 0.13.0 kernel for "
                f"{type(self.quant_method).__name__}; the back-port runs it for unquantized experts only")
        on_cpu = str(self.vllm_config.device_config.device_type if self.vllm_config.device_config else "") == "cpu"
        if spec.enable_eplb and (on_cpu or current_platform.is_cpu()):
            raise NotImplementedError("enable_eplb=True: vLLM 0.13.0 has no expert load balancing on CPU; "
                                      "run without --enable-eplb")

    def _make_non_gated_weights(self) -> None:
        """Upstream's non-gated parameters (w13 of one intermediate block per expert) in place of the gated
        ones: the pinned method's own ``create_weights``, with the flag its loader and shapes read cleared."""
        experts, _, hidden = self.w13_weight.shape
        self.moe_config.is_act_and_mul = False  # the same object as self.quant_method.moe
        self.quant_method.create_weights(
            layer=self, num_experts=experts, hidden_size=hidden,
            intermediate_size_per_partition=self.w2_weight.shape[2], params_dtype=self.w13_weight.dtype,
            weight_loader=self.weight_loader, global_num_experts=self.global_num_experts)

    # Upstream's RoutedExperts has no tp/dp/ep size properties, so its subclasses assign them
    # (DbrxExperts: ``self.tp_size = self.moe_config.tp_size``); the pinned FusedMoE has read-only
    # properties over moe_parallel_config. An assigned value is kept and read back, as upstream's.
    tp_size = _settable("tp_size")
    dp_size = _settable("dp_size")
    ep_size = _settable("ep_size")

    # -- execution

    def experts_native(self, x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor) -> torch.Tensor:
        """Each expert on its tokens, weighted and summed: the pinned CPU kernel's method, all activations."""
        out = torch.zeros(x.shape[0], self.w2_weight.shape[1], dtype=torch.float32, device=x.device)
        w13, w2 = self.w13_weight, self.w2_weight
        b13, b2 = getattr(self, "w13_bias", None), getattr(self, "w2_bias", None)
        on_input = self.apply_router_weight_on_input
        for e in topk_ids.unique().tolist():
            if e < 0:
                continue
            local = e if self.expert_map is None else int(self.expert_map[e])
            if local < 0:
                continue
            tok, slot = (topk_ids == e).nonzero(as_tuple=True)
            w = topk_weights[tok, slot].unsqueeze(-1)
            xe = x[tok]
            if on_input:
                xe = (xe.float() * w).to(x.dtype)
            h = F.linear(xe, w13[local], None if b13 is None else b13[local])
            h = _activate(self.upstream_activation, h, self.swiglu_limit, self.swiglu_alpha, self.swiglu_beta)
            y = F.linear(h.to(x.dtype), w2[local], None if b2 is None else b2[local]).float()
            out.index_add_(0, tok, y if on_input else y * w)
        return out.to(x.dtype)

    def run(self, x: torch.Tensor, router_logits: torch.Tensor) -> torch.Tensor:
        if self.unquantized and (x.device.type == "cpu" or self.needs_native
                                 or self.apply_router_weight_on_input):
            pad = self.hidden_size - x.shape[-1]
            if pad:
                x = F.pad(x, (0, pad))
            topk_weights, topk_ids = self.router.select(x, router_logits)
            if self.enable_eplb:
                raise NotImplementedError("EPLB is not supported by the back-port's CPU path")
            return self.experts_native(x, topk_weights, topk_ids)
        if is_forward_context_available():
            return super().forward(x, router_logits)
        # the pinned layer finds itself through the forward context; outside a model run, make one
        with set_forward_context(None, self.vllm_config):
            return super().forward(x, router_logits)

    # -- weight loading (upstream's checkpoint names)

    @staticmethod
    def build_expert_params_mapping(
        ckpt_gate_proj_name: str,
        ckpt_down_proj_name: str,
        ckpt_up_proj_name: str | None,
        num_experts: int,
        num_redundant_experts: int = 0,
        routed_experts_prefix: str = "routed_experts",
        lora_base_layer_prefix: str = "",
        lora_base_layer_prefix_on_param_name: str = "",
        include_fused: bool = False,
        is_gated: bool = True,
    ) -> list[tuple[str, str, int, str]]:
        """``(param_name, weight_name, expert_id, shard_id)`` rows, as upstream builds them."""
        physical_to_logical = EplbState.build_initial_global_physical_to_logical_map(
            num_experts, num_redundant_experts)
        if routed_experts_prefix:
            routed_experts_prefix += "."
        w13 = f"experts.{lora_base_layer_prefix_on_param_name}{routed_experts_prefix}w13_"
        w2 = f"experts.{lora_base_layer_prefix_on_param_name}{routed_experts_prefix}w2_"
        fused: list[tuple[str, str, int, str]] = []
        if include_fused:
            gate_up, shards = None, ("w1", "w3")
            if not is_gated:
                gate_up, shards = ckpt_gate_proj_name, ("w1",)
            elif (ckpt_gate_proj_name, ckpt_up_proj_name) == ("gate_proj", "up_proj"):
                gate_up = "gate_up_proj"
            elif (ckpt_gate_proj_name, ckpt_up_proj_name) == ("w1", "w3"):
                gate_up = "w13"
            if gate_up is not None:
                # a stacked [E, ...] checkpoint tensor; expert_id is the w1/w3 chunk index here
                fused = [*((f"{w13}weight", f"experts.{gate_up}", chunk, shard) for chunk, shard in enumerate(shards)),
                         (f"{w2}weight", f"experts.{ckpt_down_proj_name}", 0, "w2")]
            if gate_up is not None and is_gated:
                fused += [(w13, f"experts.{physical_to_logical[e]}.{gate_up}.{lora_base_layer_prefix}", e, shard)
                          for e in range(num_experts + num_redundant_experts) for shard in ("w1", "w3")]
        per_expert = [
            (w13 if name in (ckpt_gate_proj_name, ckpt_up_proj_name) else w2,
             f"experts.{physical_to_logical[e]}.{name}.{lora_base_layer_prefix}", e, shard)
            for e in range(num_experts + num_redundant_experts)
            for shard, name in (("w1", ckpt_gate_proj_name), ("w2", ckpt_down_proj_name), ("w3", ckpt_up_proj_name))
            if name is not None
        ]
        return fused + per_expert

    @staticmethod
    def make_expert_params_mapping(model: torch.nn.Module, ckpt_gate_proj_name: str, ckpt_down_proj_name: str,
                                   ckpt_up_proj_name: str | None, num_experts: int, num_redundant_experts: int = 0,
                                   routed_experts_prefix: str = "routed_experts") -> list[tuple[str, str, int, str]]:
        names = [n for n, _ in model.named_parameters()]
        prefix = "base_layer." if any(".base_layer." in n for n in names) else ""
        if routed_experts_prefix and not any(f".{routed_experts_prefix}." in n for n in names):
            # experts built by a pinned layer (a draft made of the pinned DeepseekV2DecoderLayer) keep 0.13.0's
            # ``experts.w13_weight``: the rows name the parameters the model has
            routed_experts_prefix = ""
        return RoutedExperts.build_expert_params_mapping(
            ckpt_gate_proj_name, ckpt_down_proj_name, ckpt_up_proj_name, num_experts, num_redundant_experts,
            routed_experts_prefix, lora_base_layer_prefix=prefix, lora_base_layer_prefix_on_param_name=prefix)

    def get_expert_mapping(self, include_fused: bool = False) -> list[tuple[str, str, int, str]]:
        return self.build_expert_params_mapping(
            self.ckpt_gate_proj_name, self.ckpt_down_proj_name, self.ckpt_up_proj_name,
            num_experts=self.num_logical_experts, num_redundant_experts=self.global_num_experts - self.num_logical_experts,
            routed_experts_prefix="", include_fused=include_fused, is_gated=self.moe_config.is_act_and_mul)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[str]:
        """Checkpoint tensors named relative to the layer (``0.gate_proj.weight``, ``gate_up_proj``...)."""
        mapping = self.get_expert_mapping(include_fused=True)
        for expert_name, loaded_weight in weights:
            qual_name = f"{self.layer_name}.{expert_name}"
            is_fused = loaded_weight.dim() == 3
            matched = False
            for param_name, weight_name, expert_id, shard_id in mapping:
                if weight_name not in qual_name:
                    if matched and is_fused:
                        break  # a stacked tensor uses the first contiguous run of rows
                    continue
                matched = True
                per_expert_w13 = (not is_fused and shard_id in ("w1", "w3")
                                  and any(f".{n}." in qual_name for n in ("gate_up_proj", "w13")))
                full = qual_name.replace(weight_name, param_name)
                name = full.removeprefix(f"{self.layer_name}.")
                param = getattr(self, name, None)
                if param is None:
                    if name.endswith(("w13_bias", "w2_bias")):
                        continue
                    raise AttributeError(f"Layer {self.layer_name} has no parameter {name!r} "
                                         f"for checkpoint weight {qual_name!r}")
                if is_fused:
                    stacked = loaded_weight.transpose(-1, -2) if self.is_fused_checkpoint_transposed else loaded_weight
                    if shard_id in ("w1", "w3") and self.moe_config.is_act_and_mul:
                        stacked = stacked.chunk(2, dim=1)[expert_id]
                    parts, start = stacked, 0
                elif per_expert_w13:
                    parts, start = loaded_weight.chunk(2, dim=0)[0 if shard_id == "w1" else 1].unsqueeze(0), expert_id
                else:
                    parts, start = loaded_weight.unsqueeze(0), expert_id
                for e, one in enumerate(parts.unbind(), start=start):
                    if param.weight_loader(param, one, full, shard_id=shard_id, expert_id=e, return_success=True):
                        yield name


# ----------------------------------------------------------------------------------------- runner


class _ConfigView:
    """The pinned ``FusedMoEConfig`` plus the fields upstream models read from ``experts.moe_config``."""

    def __init__(self, pinned, skip_final_all_reduce: bool):
        self._pinned = pinned
        self.skip_final_all_reduce = skip_final_all_reduce

    def __getattr__(self, name):
        return getattr(self._pinned, name)


class MoERunner(torch.nn.Module):
    """Upstream's MoE layer: gate, shared experts and routed experts behind one forward."""

    def __init__(self, layer_name: str, routed_experts: RoutedExperts, gate: torch.nn.Module | None = None,
                 shared_experts: torch.nn.Module | None = None,
                 routed_input_transform: torch.nn.Module | None = None,
                 routed_output_transform: torch.nn.Module | None = None,
                 routed_scaling_factor: float = 1.0, reduce_results: bool = True):
        super().__init__()
        self.layer_name = layer_name
        self.gate = gate
        self._shared_experts = shared_experts
        self.routed_input_transform = routed_input_transform
        self.routed_output_transform = routed_output_transform
        self.routed_experts = routed_experts
        bias = getattr(routed_experts.router, "e_score_correction_bias", None)
        if isinstance(bias, torch.nn.Parameter):
            # upstream's layer registers the correction bias it routes with: a checkpoint names it
            # ``...mlp.experts.e_score_correction_bias`` (Laguna), and the loader must find it here
            self.e_score_correction_bias = bias
        self.routed_scaling_factor = routed_scaling_factor  # applied to the output (apply_routed_scale_to_output)
        self.reduce_results = reduce_results
        self.moe_config = _ConfigView(routed_experts.moe_config, skip_final_all_reduce=(
            not reduce_results and not routed_experts.moe_parallel_config.use_all2all_kernels
            and not routed_experts.is_sequence_parallel))

    @property
    def shared_experts(self) -> torch.nn.Module | None:
        return self._shared_experts

    @property
    def router(self) -> Router:
        return self.routed_experts.router

    def forward(self, hidden_states: torch.Tensor, router_logits: torch.Tensor,
                input_ids: torch.Tensor | None = None,
                shared_experts_input: torch.Tensor | None = None) -> torch.Tensor:
        if shared_experts_input is None:
            shared_experts_input = hidden_states if self._shared_experts is not None else None
            if self.routed_input_transform is not None:
                r = self.routed_input_transform(hidden_states)
                hidden_states = r[0] if isinstance(r, tuple) else r
        shared_output = None
        if self._shared_experts is not None:
            shared_output = self._shared_experts(shared_experts_input)
        if self.gate is not None:
            # upstream's runner holds the gate: the router_logits argument is ignored then
            router_logits, _ = self.gate(hidden_states)
        routed_dim = hidden_states.shape[-1]
        fused_output = self.routed_experts.run(hidden_states, router_logits)[..., :routed_dim]
        if self.routed_scaling_factor != 1.0:
            if fused_output.dtype != torch.float16 or shared_output is None:
                fused_output = fused_output * self.routed_scaling_factor
            else:  # fp16: upstream scales the shared output down instead (the model compensates)
                shared_output = shared_output * (1.0 / self.routed_scaling_factor)
        if self.routed_output_transform is not None:
            r = self.routed_output_transform(fused_output)
            fused_output = r[0] if isinstance(r, tuple) else r
        result = fused_output if shared_output is None else shared_output + fused_output
        re = self.routed_experts
        if (not re.is_sequence_parallel and not self.moe_config.skip_final_all_reduce
                and (re.tp_size > 1 or re.ep_size > 1)):
            result = tensor_model_parallel_all_reduce(result)
        if self.router.zero_expert_type is not None:  # upstream adds the zero experts' output last
            result = result + self.router.take_zero_expert_output()[..., :routed_dim]
        return result

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[str]:
        own: list[str] = []

        def routed():
            for name, tensor in weights:
                if name == "e_score_correction_bias" and isinstance(getattr(self, name, None), torch.nn.Parameter):
                    self.e_score_correction_bias.data.copy_(tensor)
                    own.append(name)
                else:
                    yield name, tensor

        for name in self.routed_experts.load_weights(routed()):
            yield f"routed_experts.{name}"
        yield from own

    # -- what models and the EPLB machinery ask a MoE layer

    @property
    def layer_id(self) -> int:
        from vllm.model_executor.models.utils import extract_layer_index

        return extract_layer_index(self.layer_name)

    @property
    def is_monolithic(self) -> bool:
        return False

    @property
    def activation(self) -> str:
        return self.routed_experts.upstream_activation

    @property
    def _quant_method(self):
        return self.routed_experts.quant_method

    @property
    def expert_map(self) -> torch.Tensor | None:
        return self.routed_experts.expert_map

    @property
    def eplb_state(self):
        return None

    def update_expert_map(self) -> None:
        if self.routed_experts.expert_map is not None:  # the pinned layer keeps no map without EP
            self.routed_experts.update_expert_map()

    def _map_global_expert_id_to_local_expert_id(self, expert_id: int) -> int:
        return self.routed_experts._map_global_expert_id_to_local_expert_id(expert_id)

    def get_expert_weights(self) -> Iterable[torch.Tensor]:
        return self.routed_experts.get_expert_weights()

    def set_eplb_state(self, moe_layer_idx: int, expert_load_view: torch.Tensor,
                       logical_to_physical_map: torch.Tensor, logical_replica_count: torch.Tensor) -> None:
        self.routed_experts.set_eplb_state(moe_layer_idx, expert_load_view, logical_to_physical_map,
                                           logical_replica_count)


def FusedMoEFactory(  # noqa: N802 - upstream's name
    num_experts: int,
    top_k: int,
    hidden_size: int,
    intermediate_size: int,
    intermediate_pad: int | None = None,
    params_dtype: torch.dtype | None = None,
    renormalize: bool = True,
    use_grouped_topk: bool = False,
    num_expert_group: int | None = None,
    topk_group: int | None = None,
    quant_config: QuantizationConfig | None = None,
    tp_size: int | None = None,
    dp_size: int | None = None,
    pcp_size: int | None = None,
    prefix: str = "",
    custom_routing_function: Callable | None = None,
    router: Any = None,
    scoring_func: str = "softmax",
    routed_scaling_factor: float = 1.0,
    swiglu_limit: float | None = None,
    swiglu_alpha: float | None = None,
    swiglu_beta: float | None = None,
    activation_situ_beta: float | None = None,
    activation_situ_linear_beta: float | None = None,
    e_score_correction_bias: torch.Tensor | None = None,
    apply_router_weight_on_input: bool = False,
    activation: str = "silu",
    enable_eplb: bool = False,
    num_redundant_experts: int = 0,
    has_bias: bool = False,
    is_sequence_parallel: bool = False,
    reduce_results: bool = True,
    ckpt_names: tuple[str, str, str | None] = ("gate_proj", "down_proj", "up_proj"),
    is_fused_checkpoint_transposed: bool = False,
    n_shared_experts: int | None = None,
    fuse_shared_experts: bool = False,
    shared_expert_prefix: str | None = None,
    router_logits_dtype: torch.dtype | None = None,
    gate: torch.nn.Module | None = None,
    shared_experts: torch.nn.Module | None = None,
    shared_expert_gate: torch.nn.Module | None = None,
    routed_input_transform: torch.nn.Module | None = None,
    routed_output_transform: torch.nn.Module | None = None,
    apply_routed_scale_to_output: bool = False,
    zero_expert_type: str | None = None,
    hash_indices_table: torch.Tensor | None = None,
    bias_vl: torch.Tensor | None = None,
    image_sentinel_lo: int = 0,
    runner_cls: type[MoERunner] | None = None,
    runner_args: dict[str, Any] | None = None,
    routed_experts_cls: type[RoutedExperts] | None = None,
    moe_config_cls: Any = None,
    routed_experts_args: dict[str, Any] | None = None,
    skip_padding: bool = False,
) -> MoERunner:
    """Upstream's ``FusedMoEFactory``: a ``MoERunner`` over the pinned ``FusedMoE``."""
    refused = {
        "fuse_shared_experts (ROCm AITER fused shared experts)": fuse_shared_experts,
        "shared_expert_gate (only used with fused shared experts)": shared_expert_gate is not None,
        f"zero_expert_type={zero_expert_type!r} (upstream computes identity zero experts only)":
            zero_expert_type not in (None, "identity"),
        "bias_vl/image_sentinel_lo (vision routing bias)": bias_vl is not None or image_sentinel_lo,
        "router (a pre-built upstream router)": router is not None,
        "intermediate_pad": bool(intermediate_pad),
        "activation_situ_beta (SiTU activation)": activation_situ_beta is not None or activation == "situ",
        "moe_config_cls": moe_config_cls is not None,
    }
    if any(refused.values()):
        raise NotImplementedError(
            "FusedMoEFactory back-port for vLLM 0.13.0 cannot do: "
            + ", ".join(k for k, v in refused.items() if v))
    if not enable_eplb and num_redundant_experts:
        raise ValueError("Redundant experts are only supported with EPLB.")
    spec = MoESpec(num_experts=num_experts, top_k=top_k, hidden_size=hidden_size,
                   intermediate_size=intermediate_size, activation=activation, has_bias=has_bias,
                   tp_size=tp_size, dp_size=dp_size, pcp_size=pcp_size, enable_eplb=enable_eplb,
                   num_redundant_experts=num_redundant_experts, is_sequence_parallel=is_sequence_parallel)
    scale_on_output = routed_scaling_factor if apply_routed_scale_to_output else 1.0
    routed = (routed_experts_cls or RoutedExperts)(
        prefix, params_dtype, spec, quant_config,
        ckpt_gate_proj_name=ckpt_names[0], ckpt_down_proj_name=ckpt_names[1], ckpt_up_proj_name=ckpt_names[2],
        is_fused_checkpoint_transposed=is_fused_checkpoint_transposed, renormalize=renormalize,
        use_grouped_topk=use_grouped_topk, num_expert_group=num_expert_group, topk_group=topk_group,
        custom_routing_function=custom_routing_function, scoring_func=scoring_func,
        routed_scaling_factor=1.0 if apply_routed_scale_to_output else routed_scaling_factor,
        swiglu_limit=swiglu_limit, swiglu_alpha=swiglu_alpha, swiglu_beta=swiglu_beta,
        e_score_correction_bias=e_score_correction_bias, apply_router_weight_on_input=apply_router_weight_on_input,
        hash_indices_table=hash_indices_table, **(routed_experts_args or {}))
    if zero_expert_type is not None:
        # upstream's ZeroExpertRouter takes over the routing (router_factory: before any other router)
        routed.router = Router(top_k=top_k, renormalize=renormalize, scoring_func=scoring_func,
                               routed_scaling_factor=routed.router.routed_scaling_factor,
                               e_score_correction_bias=e_score_correction_bias, zero_expert_type=zero_expert_type,
                               num_logical_experts=num_experts)
        routed.custom_routing_function = routed.router
    return (runner_cls or MoERunner)(
        layer_name=prefix, routed_experts=routed, gate=gate, shared_experts=shared_experts,
        routed_input_transform=routed_input_transform, routed_output_transform=routed_output_transform,
        routed_scaling_factor=scale_on_output, reduce_results=reduce_results, **(runner_args or {}))


def fused_moe_make_expert_params_mapping(
    model: torch.nn.Module,
    ckpt_gate_proj_name: str,
    ckpt_down_proj_name: str,
    ckpt_up_proj_name: str | None,
    num_experts: int,
    num_redundant_experts: int = 0,
    routed_experts_prefix: str = "routed_experts",
) -> list[tuple[str, str, int, str]]:
    """Checkpoint -> fused-parameter rows for hand-written ``load_weights`` (upstream's helper)."""
    return RoutedExperts.make_expert_params_mapping(model, ckpt_gate_proj_name, ckpt_down_proj_name,
                                                    ckpt_up_proj_name, num_experts, num_redundant_experts,
                                                    routed_experts_prefix)


def maybe_remap_moe_expert_param_name(name: str, params_dict: dict[str, torch.nn.Parameter]) -> str:
    """Upstream's helper (``model_loader/weight_utils.py``) for the move of the fused expert parameters
    under ``routed_experts``: ``...experts.w13_weight`` becomes ``...experts.routed_experts.w13_weight``
    when that parameter exists, every other name is returned unchanged."""
    if ".experts." not in name or ".experts.routed_experts." in name:
        return name
    if not any(f".{s}" in name or name.endswith(s) for s in _EXPERT_PARAM_SUFFIXES):
        return name
    new_name = name.replace(".experts.", ".experts.routed_experts.", 1)
    return new_name if new_name in params_dict else name


# upstream's list of the fused expert parameter names (maybe_remap_moe_expert_param_name)
_EXPERT_PARAM_SUFFIXES = tuple(f"{w}_{s}" for s in ("weight", "weight_scale", "input_scale", "bias", "scale",
                                                    "qweight", "qzeros", "weight_shape") for w in ("w13", "w2"))


def resolve_layer_fused_shared_expert(quant_config: QuantizationConfig | None, prefix: str,
                                      shared_expert_name: str = "shared_experts",
                                      moe_backend: str | None = None) -> bool:
    """Upstream asks whether ROCm AITER fuses the shared experts in; on vLLM 0.13.0 they never are."""
    return False


def is_model_fused_shared_expert_compatible(layers: Iterable[torch.nn.Module], moe_cls: type[torch.nn.Module],
                                            moe_name: str) -> bool:
    """One fused-shared-expert state for all MoE layers of a model (upstream's check)."""
    from vllm.model_executor.models.utils import PPMissingLayer

    def moe_of(layer):
        for part in moe_name.split("."):
            layer = getattr(layer, part, None)
            if layer is None:
                return None
        return layer

    found = [m for layer in layers if not isinstance(layer, PPMissingLayer)
             and (m := moe_of(layer)) is not None and isinstance(m, moe_cls)]
    enabled = sum(bool(getattr(m, "is_fused_shared_expert_enabled", False)) for m in found)
    if 0 < enabled < len(found):
        raise NotImplementedError(
            f"Fused shared experts must be enabled for all MoE layers; found {enabled} enabled and "
            f"{len(found) - enabled} disabled layers.")
    return 0 < enabled == len(found)


__all__ = ["FusedMoEFactory", "MoERunner", "MoESpec", "RoutedExperts", "Router", "fused_moe_make_expert_params_mapping",
           "is_model_fused_shared_expert_compatible", "maybe_remap_moe_expert_param_name",
           "resolve_layer_fused_shared_expert"]
