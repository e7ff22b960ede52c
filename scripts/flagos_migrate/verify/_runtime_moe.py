"""A reference for upstream vLLM's CPU MoE experts (part of ``_runtime_worker.py``). Standard library only
at import.

Upstream vLLM's unquantized CPU experts (``fused_moe/experts/cpu_moe.py``) prepack their weights and run
them with compiled ``torch.ops._C`` kernels, which the CUDA wheel installed here does not load without a
GPU driver; so upstream could not run any fused MoE model on this CPU and match compared those with the
Hugging Face class instead, or not at all when transformers has none (BailingMoe, Sarvam ...). Here the
experts keep their weights as loaded and compute in plain torch what the kernel computes: per token, the
routed experts' ``down(act(gate) * up)`` weighted by the router's weights, as the pinned vLLM's CPU
experts do (``cpu_fused_moe.CPUFusedMOE``: ``F.linear`` per expert). Routing stays upstream's own.
"""

GATED = {"silu": "silu", "gelu": "gelu", "gelu_tanh": "gelu_tanh", "swigluoai": "swigluoai"}
# Non-gated experts (Nemotron-H's relu2): w13 holds the up projection alone and the activation takes it whole.
# Both vLLMs define them so: the pinned GPU path (0.13.0 fused_moe.py:1980-1985: F.silu, F.gelu,
# square(relu)) and upstream's apply_moe_activation (0.33.0 activation.py:396-403, which adds gelu_tanh).
# Neither runs them off a GPU: the pinned FusedMoE refuses them at construction (layer.py:617) and its CPU
# experts have no such activation (cpu_fused_moe.py:215); upstream's FusedMoEConfig refuses them
# (config.py:1410) and no CPU experts class supports them (cpu_moe.py:227). So the harness computes them in
# torch on both sides, named in the forward's notes (NOT_GATED_NOTE).
NOT_GATED = ("silu_no_mul", "gelu_no_mul", "gelu_tanh_no_mul", "relu2_no_mul")
NOT_GATED_NOTE = ("non-gated fused-MoE experts ({}): a per-expert torch loop of what both vLLMs' GPU paths compute "
                  "(neither runs them off a GPU: 0.13.0 layer.py:617, 0.33.0 fused_moe/config.py:1410)")


def _act(name, x):
    import torch
    import torch.nn.functional as F

    if name in NOT_GATED:
        if name == "relu2_no_mul":
            return torch.square(F.relu(x))
        if name == "silu_no_mul":
            return F.silu(x)
        return F.gelu(x, approximate="tanh" if name == "gelu_tanh_no_mul" else "none")
    if name == "swigluoai":  # upstream's SwigluOAIAndMul.forward_native (alpha 1.702, limit 7, the fused
        # kernel's defaults): gate and up interleaved, as gpt-oss's load_weights lays w13 out
        gate, up = x[..., ::2].clamp(max=7.0), x[..., 1::2].clamp(min=-7.0, max=7.0)
        return (up + 1) * (gate * torch.sigmoid(gate * 1.702))
    gate, up = x.chunk(2, dim=-1)
    if name == "silu":
        return F.silu(gate) * up
    if name == "gelu":
        return F.gelu(gate) * up
    return F.gelu(gate, approximate="tanh") * up


def experts_reference(output, hidden_states, w1, w2, topk_weights, topk_ids, activation, expert_map=None,
                      w1_bias=None, w2_bias=None, weights_on_input=False):
    """``output`` = sum over each token's routed experts of weight * down(act(gate_up(x))); pure torch."""
    import torch
    import torch.nn.functional as F

    name = str(getattr(activation, "value", activation)).lower()
    if name not in GATED and name not in NOT_GATED:
        raise NotImplementedError(f"the reference MoE experts compute {sorted(GATED) + list(NOT_GATED)} only, "
                                  f"not {name!r}")
    if name in NOT_GATED:
        import _runtime_moe_ops

        _runtime_moe_ops.CALLED.add(NOT_GATED_NOTE.format(name))
    ids = topk_ids.long()
    if expert_map is not None:
        ids = expert_map[ids].long()
    acc = torch.zeros(hidden_states.shape[0], w2.shape[1], dtype=torch.float32)
    for e in torch.unique(ids).tolist():
        if e < 0:  # an expert of another rank
            continue
        tok, slot = (ids == e).nonzero(as_tuple=True)
        h = F.linear(hidden_states[tok], w1[e], None if w1_bias is None else w1_bias[e])
        out = F.linear(_act(name, h), w2[e], None if w2_bias is None else w2_bias[e])
        weight = 1.0 if weights_on_input else topk_weights[tok, slot].unsqueeze(-1).float()
        acc.index_add_(0, tok, out.float() * weight)
    output.copy_(acc.to(output.dtype))


def install():
    """Patch upstream's unquantized CPU experts (absent on the pinned vLLM: nothing to do there) and the
    pinned vLLM's CPU experts for routing weights on the input (absent upstream: nothing to do there);
    in both, the compiled fused-MoE ops a model calls itself (``_runtime_moe_ops``)."""
    import _runtime_moe_ops

    return (_upstream_experts() + _upstream_non_gated() + _pinned_weight_on_input() + _pinned_non_gated()
            + _pinned_biased_routing_as_on_gpu() + _runtime_moe_ops.install())


def non_gated_reference(x, topk_weights, topk_ids, gate_up, down, name):
    """What the pinned vLLM's GPU experts compute for a non-gated activation (``fused_experts_impl``: the
    first GEMM, the activation alone on it (fused_moe.py:1980-1985), the second GEMM scaled by the router
    weight, ``moe_sum``): per token, sum over its routed experts of weight * down(act(up(x))). ``gate_up[e]`` /
    ``down[e]`` are the pinned layer's own per-expert linears (``CPUFusedMOE``); pure torch."""
    import _runtime_moe_ops
    import torch

    _runtime_moe_ops.CALLED.add(NOT_GATED_NOTE.format(name))
    ids = topk_ids.long()
    acc = None
    for e in torch.unique(ids).tolist():
        tok, slot = (ids == e).nonzero(as_tuple=True)
        out = down[e](_act(name, gate_up[e](x[tok]))).float() * topk_weights[tok, slot].unsqueeze(-1).float()
        if acc is None:
            acc = torch.zeros(x.shape[0], out.shape[-1], dtype=torch.float32)
        acc.index_add_(0, tok, out)
    return acc.to(x.dtype)


def weight_on_input_reference(x, topk_weights, topk_ids, gate_up, down, act):
    """What the pinned vLLM's GPU experts compute with ``apply_router_weight_on_input`` (Llama 4's top-1
    MoE), which its CPU experts assert against: ``fused_experts_impl`` runs the Triton kernel with
    ``MUL_ROUTED_WEIGHT`` on the first GEMM and not the second, i.e. per token and routed expert
    ``down(act((x @ W13^T + b13) * weight))`` (the kernel scales the fp32 accumulator after its bias), and
    ``moe_sum`` adds the experts' outputs unweighted. ``gate_up[e]`` / ``down[e]`` / ``act`` are the pinned
    layer's own per-expert linears and activation (``CPUFusedMOE``); pure torch."""
    import torch

    ids = topk_ids.long()
    acc = None
    for e in torch.unique(ids).tolist():
        tok, slot = (ids == e).nonzero(as_tuple=True)
        h = gate_up[e](x[tok])
        h = (h.float() * topk_weights[tok, slot].unsqueeze(-1).float()).to(h.dtype)
        out = down[e](act(h)).float()
        if acc is None:
            acc = torch.zeros(x.shape[0], out.shape[-1], dtype=torch.float32)
        acc.index_add_(0, tok, out)
    return acc.to(x.dtype)


def _pinned_weight_on_input():
    """The pinned vLLM's CPU experts (``cpu_fused_moe.CPUFusedMOE``) assert ``not
    apply_router_weight_on_input``; its GPU path serves it. With the flag set, route with the layer's own
    ``select_experts`` and compute what the GPU path computes (:func:`weight_on_input_reference`); without
    it, the pinned code runs untouched. The model's own code is not changed."""
    try:
        from vllm.model_executor.layers.fused_moe import cpu_fused_moe
    except Exception:
        return []
    cls = getattr(cpu_fused_moe, "CPUFusedMOE", None)
    if cls is None or getattr(cls.__call__, "_mmf_weight_on_input", False):
        return []
    import inspect

    own = cls.__call__
    sig = inspect.signature(own)

    def __call__(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        non_gated = str(a["activation"]) in NOT_GATED
        if not a["apply_router_weight_on_input"] and not non_gated:
            return own(self, *args, **kwargs)
        if non_gated and a["apply_router_weight_on_input"]:
            raise NotImplementedError("non-gated experts with router weights on the input: no reference")
        x = a["x"]
        topk_weights, topk_ids = cpu_fused_moe.select_experts(
            hidden_states=x, router_logits=a["router_logits"], top_k=a["top_k"],
            use_grouped_topk=a["use_grouped_topk"], renormalize=a["renormalize"], topk_group=a["topk_group"],
            num_expert_group=a["num_expert_group"], custom_routing_function=a["custom_routing_function"],
            scoring_func=a["scoring_func"], routed_scaling_factor=a["routed_scaling_factor"],
            e_score_correction_bias=a["e_score_correction_bias"])
        layer = a["layer"]
        if non_gated:
            return non_gated_reference(x, topk_weights, topk_ids, layer.gate_up_linear, layer.down_linear,
                                       str(a["activation"]))
        return weight_on_input_reference(x, topk_weights, topk_ids, layer.gate_up_linear, layer.down_linear,
                                         self.act_to_impl[a["activation"]].forward_native)

    __call__._mmf_weight_on_input = True
    cls.__call__ = __call__
    return [cls.__module__ + "." + cls.__qualname__ + ".__call__"]


def _pinned_non_gated():
    """0.13.0's ``FusedMoE.__init__`` refuses non-gated experts off CUDA (layer.py:617, after the quantization
    method is chosen and before any weight exists); its CUDA path serves them (``fused_experts_impl``). For an
    unquantized layer off CUDA the layer is built gated, then given the non-gated weights of its own method's
    ``create_weights`` with the flag its loader reads cleared: the state the constructor builds with the flag
    on a GPU (nothing else in it reads the flag, layer.py:320-650). Its CPU experts then run
    :func:`non_gated_reference` (``_pinned_weight_on_input``). Every other layer runs the pinned code as it is."""
    try:
        from vllm.model_executor.layers.fused_moe import layer as moe_layer
        from vllm.model_executor.layers.fused_moe.unquantized_fused_moe_method import (
            UnquantizedFusedMoEMethod,
        )
    except Exception:
        return []
    cls = getattr(moe_layer, "FusedMoE", None)  # upstream's layer module has none (its experts are built otherwise)
    if cls is None or getattr(cls.__init__, "_mmf_non_gated", False):
        return []
    own = cls.__init__
    import inspect

    sig = inspect.signature(own)
    if "is_act_and_mul" not in sig.parameters:
        return []

    def __init__(self, *args, **kwargs):
        a = sig.bind(self, *args, **kwargs)
        a.apply_defaults()
        if a.arguments["is_act_and_mul"] or moe_layer.current_platform.is_cuda():
            return own(self, *args, **kwargs)
        a.arguments["is_act_and_mul"] = True
        own(*a.args, **a.kwargs)
        if not isinstance(self.quant_method, UnquantizedFusedMoEMethod):
            raise NotImplementedError("is_act_and_mul=False is supported only for CUDA for now (layer.py:617; "
                                      "the harness computes unquantized non-gated experts only)")
        experts, _, hidden = self.w13_weight.shape
        self.moe_config.is_act_and_mul = False  # the object the method's create_weights and the loader read
        self.quant_method.create_weights(
            layer=self, num_experts=experts, hidden_size=hidden,
            intermediate_size_per_partition=self.intermediate_size_per_partition,
            params_dtype=self.w13_weight.dtype, weight_loader=self.weight_loader,
            global_num_experts=self.global_num_experts)

    __init__._mmf_non_gated = True
    cls.__init__ = __init__
    return [cls.__module__ + "." + cls.__qualname__ + ".__init__"]


def _upstream_non_gated():
    """Upstream's ``FusedMoEConfig.__post_init__`` ends by refusing non-gated experts off CUDA/XPU/ROCm
    (config.py:1410-1415); the statement is its last, so the refusal caught leaves the config as a GPU
    builds it (checked on the source: nothing runs after it). Its CPU experts class is then chosen for
    them, computed by :func:`experts_reference` (``_upstream_experts``), which has the non-gated activations."""
    try:
        from vllm.model_executor.layers.fused_moe import config as moe_config
        from vllm.model_executor.layers.fused_moe.experts import cpu_moe
    except Exception:
        return []
    cls = getattr(moe_config, "FusedMoEConfig", None)
    experts = getattr(cpu_moe, "CPUUnquantizedExperts", None)
    if cls is None or experts is None or getattr(cls.__post_init__, "_mmf_non_gated", False):
        return []
    if not _refusal_is_last(cls.__post_init__):
        return []
    own = cls.__post_init__

    def __post_init__(self):
        try:
            own(self)
        except NotImplementedError as exc:
            if self.is_act_and_mul or not str(exc).startswith("is_act_and_mul=False is supported only"):
                raise

    __post_init__._mmf_non_gated = True
    cls.__post_init__ = __post_init__
    supported = experts._supports_activation

    experts._supports_no_act_and_mul = staticmethod(lambda: True)
    experts._supports_activation = staticmethod(
        lambda activation: str(getattr(activation, "value", activation)) in NOT_GATED or supported(activation))
    return [cls.__module__ + ".FusedMoEConfig.__post_init__", experts.__module__ + ".CPUUnquantizedExperts"
            "._supports_no_act_and_mul"]


def _refusal_is_last(fn):
    """True when ``fn``'s last statement is ``if <cond>: raise NotImplementedError(...)`` and nothing else:
    catching that refusal then leaves what the function built untouched."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return False
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.FunctionDef) else []
    last = body[-1] if body else None
    return (isinstance(last, ast.If) and not last.orelse and len(last.body) == 1
            and isinstance(last.body[0], ast.Raise) and isinstance(last.body[0].exc, ast.Call)
            and getattr(last.body[0].exc.func, "id", None) == "NotImplementedError")


def _pinned_biased_routing_as_on_gpu():
    """The pinned vLLM's CPU router (0.13.0's ``cpu_fused_moe.select_experts``) drops an ungrouped layer's
    ``e_score_correction_bias`` (a plain top-k of the logits), which its GPU router selects experts with
    (``FusedMoE.select_experts``: grouped top-k, else ``fused_topk_bias`` then ``routed_scaling_factor``, before any
    custom routing): ERNIE-4.5-VL's text and vision experts routed otherwise than on a GPU. Those layers route here
    with the pinned GPU path's own torch function, as upstream's are (:func:`_biased_routing_as_on_gpu`); every
    other layer runs the pinned CPU router untouched."""
    try:
        from vllm.model_executor.layers.fused_moe import cpu_fused_moe
        from vllm.model_executor.layers.fused_moe.fused_moe import fused_topk_bias
    except Exception:
        return []
    own = getattr(cpu_fused_moe, "select_experts", None)
    if own is None or getattr(own, "_mmf_biased", False):
        return []

    def select_experts(hidden_states, router_logits, top_k, use_grouped_topk, renormalize, *args, **kwargs):
        import inspect

        a = inspect.signature(own).bind(hidden_states, router_logits, top_k, use_grouped_topk, renormalize,
                                        *args, **kwargs)
        a.apply_defaults()
        bias = a.arguments.get("e_score_correction_bias")
        if use_grouped_topk or bias is None:
            return own(*a.args, **a.kwargs)
        weights, ids = fused_topk_bias(hidden_states=hidden_states, gating_output=router_logits,
                                       e_score_correction_bias=getattr(bias, "data", bias), topk=top_k,
                                       renormalize=renormalize)
        factor = a.arguments.get("routed_scaling_factor", 1.0)
        return (weights * factor if factor != 1.0 else weights), ids

    select_experts._mmf_biased = True
    cpu_fused_moe.select_experts = select_experts
    return [cpu_fused_moe.__name__ + ".select_experts"]


def _upstream_experts():
    """Upstream's unquantized CPU experts in plain torch (:func:`experts_reference`)."""
    try:
        from vllm.model_executor.layers.fused_moe.experts import cpu_moe
    except Exception:
        return []
    cls = getattr(cpu_moe, "CPUUnquantizedExperts", None)
    if cls is None:
        return []

    def process_weights_after_loading(self, layer):  # no prepack, no padding: the weights as loaded
        self._use_zentorch = False

    def apply(self, output, hidden_states, w1, w2, topk_weights, topk_ids, activation, global_num_experts,
              expert_map, a1q_scale, a2_scale, workspace13, workspace2, expert_tokens_meta,
              apply_router_weight_on_input):
        experts_reference(output, hidden_states, w1, w2, topk_weights, topk_ids, activation, expert_map,
                          getattr(self, "w1_bias", None), getattr(self, "w2_bias", None),
                          apply_router_weight_on_input)

    cls.process_weights_after_loading = process_weights_after_loading
    cls.apply = apply
    return [cls.__module__ + "." + cls.__qualname__] + _biased_routing_as_on_gpu() + _zero_experts()


def zero_experts_reference(expert_indices, expert_scales, num_experts, zero_expert_type, hidden_states):
    """Upstream's ``zero_experts_compute_triton`` in torch: the identity zero experts' output, each token's
    hidden state times the summed weights of the zero experts it routed to; and, in place as upstream does,
    those slots emptied (expert 0, weight 0) for the real experts that follow."""
    if zero_expert_type != "identity":
        raise NotImplementedError(f"zero_expert_type={zero_expert_type!r}: upstream computes identity only")
    zero_scales = expert_scales.clone()
    zero_scales[expert_indices < num_experts] = 0.0
    zero_slots = expert_indices >= num_experts
    expert_indices[zero_slots] = 0
    expert_scales[zero_slots] = 0.0
    share = zero_scales.float().sum(dim=-1, keepdim=True)
    return (hidden_states.float() * share).to(hidden_states.dtype)


def _zero_experts():
    """Upstream's zero-expert router (LongCat) computes the zero experts with a Triton kernel: in torch."""
    try:
        from vllm.model_executor.layers.fused_moe.router import zero_expert_router
    except Exception:
        return []
    if not hasattr(zero_expert_router, "zero_experts_compute_triton"):
        return []
    zero_expert_router.zero_experts_compute_triton = zero_experts_reference
    return [zero_expert_router.__name__ + ".zero_experts_compute_triton"]


def _biased_routing_as_on_gpu():
    """Upstream's CPU router has no plain (ungrouped) top-k with a correction bias: softmax drops the
    ``e_score_correction_bias`` its GPU router selects experts with (Ernie 4.5 MoE: 0.58 off), sigmoid
    asserts (Step-3.5). Those layers route here with the function upstream's GPU router calls
    (``fused_topk_bias``; its ``_moe_C`` kernels stand in torch, ``_runtime_moe_ops``): what upstream computes."""
    try:
        from vllm.model_executor.layers.fused_moe.router.cpu_router import CPURouter
        from vllm.model_executor.layers.fused_moe.router.fused_topk_bias_router import fused_topk_bias
    except Exception:
        return []
    own = CPURouter._compute_routing

    def _compute_routing(self, hidden_states, router_logits, indices_type, **kwargs):
        import torch

        if (not self.use_grouped_topk and self.scoring_func in ("softmax", "sigmoid")
                and self.custom_routing_function is None and self.e_score_correction_bias is not None):
            bias = self.e_score_correction_bias.data
            return fused_topk_bias(hidden_states=hidden_states, gating_output=router_logits,
                                   scoring_func=self.scoring_func, e_score_correction_bias=bias, topk=self.top_k,
                                   renormalize=self.renormalize, routed_scaling_factor=self.routed_scaling_factor,
                                   indices_type=torch.int32)  # cpu_fused_moe reads int32 ids
        return own(self, hidden_states, router_logits, indices_type, **kwargs)

    CPURouter._compute_routing = _compute_routing
    return [CPURouter.__module__ + ".CPURouter._compute_routing"]

