"""Upstream's MoE routing and expert activations, in plain torch (part of the fused-MoE back-port, P22).

The router (``Router``: grouped top-k, a custom routing function, correction bias or plain top-k,
with upstream's scoring functions, renormalisation and routed scaling) and the activations upstream
names (``_activate``) that ``vllm_fl/compat/fused_moe.py`` hands the pinned ``FusedMoE`` as its
``custom_routing_function`` and runs in its per-expert CPU loop. Kept apart from the layers so that
each file stays readable; ``migrate_model.py apply`` installs it as
``vllm_fl/compat/fused_moe_routing.py`` whenever it installs ``fused_moe.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

# activations upstream names; the pinned kernels know the first three under these names
_GATED = {
    "silu": lambda g, u: F.silu(g) * u,
    "gelu": lambda g, u: F.gelu(g) * u,
    "gelu_tanh": lambda g, u: F.gelu(g, approximate="tanh") * u,
    "relu2": lambda g, u: torch.square(F.relu(g)) * u,
}
_NOT_GATED = {
    "silu_no_mul": F.silu,
    "gelu_no_mul": F.gelu,
    "gelu_tanh_no_mul": lambda x: F.gelu(x, approximate="tanh"),
    "relu2_no_mul": lambda x: torch.square(F.relu(x)),
}
_SPECIAL = ("swigluoai", "swigluoai_uninterleave", "swiglustep")
_PINNED_KERNEL_ACTIVATIONS = ("silu", "gelu", "swigluoai")


def _activate(activation: str, h: torch.Tensor, limit: float | None, alpha: float | None,
              beta: float | None) -> torch.Tensor:
    """Upstream's MoE activation on one expert's ``x @ w13.T`` (gate first, then up)."""
    if activation in _NOT_GATED:
        return _NOT_GATED[activation](h)
    if activation == "swigluoai":  # gpt-oss: gate/up interleaved, fixed alpha and limit
        gate, up = h[..., ::2], h[..., 1::2]
        gate = gate.clamp(max=7.0)
        up = up.clamp(min=-7.0, max=7.0)
        return (up + 1) * gate * torch.sigmoid(1.702 * gate)
    gate, up = h.chunk(2, dim=-1)
    if activation == "swigluoai_uninterleave":  # packed layout, the model's limit/alpha/beta
        if limit is None:
            raise ValueError("swigluoai_uninterleave needs swiglu_limit")
        gate = gate.clamp(max=limit)
        up = up.clamp(min=-limit, max=limit)
        a = 1.0 if alpha is None else alpha
        return (up + (beta or 0.0)) * gate * torch.sigmoid(a * gate)
    if activation == "swiglustep":
        lim = 7.0 if limit is None else limit
        return F.silu(gate).clamp(max=lim) * up.clamp(min=-lim, max=lim)
    if activation == "silu" and limit is not None:  # upstream's silu_and_mul_with_clamp
        return F.silu(gate.clamp(max=limit)) * up.clamp(min=-limit, max=limit)
    return _GATED[activation](gate, up)


# ------------------------------------------------------------------------------------------ routing


def _scores(logits: torch.Tensor, scoring_func: str) -> torch.Tensor:
    if scoring_func == "softmax":
        return torch.softmax(logits.float(), dim=-1)
    if scoring_func == "sigmoid":
        return logits.float().sigmoid()
    raise ValueError(f"Unsupported scoring function: {scoring_func}")


def grouped_topk(gating_output: torch.Tensor, topk: int, renormalize: bool, num_expert_group: int,
                 topk_group: int, scoring_func: str = "softmax", routed_scaling_factor: float = 1.0,
                 e_score_correction_bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-style routing: pick ``topk_group`` groups, then ``topk`` experts inside them."""
    scores = _scores(gating_output, scoring_func)
    n = scores.shape[0]
    original = scores
    if e_score_correction_bias is not None:
        # the bias steers the choice (groups by their two best experts); weights stay unbiased
        scores = scores + e_score_correction_bias.float().unsqueeze(0)
        group_scores = scores.view(n, num_expert_group, -1).topk(2, dim=-1)[0].sum(dim=-1)
    else:
        group_scores = scores.view(n, num_expert_group, -1).max(dim=-1).values
    group_idx = torch.topk(group_scores, k=topk_group, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    score_mask = group_mask.unsqueeze(-1).expand(n, num_expert_group, scores.shape[-1] // num_expert_group)
    masked = scores.masked_fill(~score_mask.reshape(n, -1).bool(), float("-inf"))
    topk_ids = torch.topk(masked, k=topk, dim=-1, sorted=False)[1]
    topk_weights = original.gather(1, topk_ids)
    return _finish(topk_weights, topk_ids, renormalize, routed_scaling_factor)


def _finish(topk_weights: torch.Tensor, topk_ids: torch.Tensor, renormalize: bool,
            routed_scaling_factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The common end of every router: renormalise, scale, and the dtypes the experts take."""
    if renormalize:
        topk_weights = topk_weights / topk_weights.sum(dim=-1, keepdim=True)
    if routed_scaling_factor != 1.0:
        topk_weights = topk_weights * routed_scaling_factor
    return topk_weights.float(), topk_ids.to(torch.int32)


def topk_bias(gating_output: torch.Tensor, topk: int, renormalize: bool, scoring_func: str,
              e_score_correction_bias: torch.Tensor, routed_scaling_factor: float = 1.0
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's ``fused_topk_bias``: choose on score + bias, weigh with the score, then scale."""
    scores = _scores(gating_output, scoring_func)
    topk_ids = torch.topk(scores + e_score_correction_bias.float().unsqueeze(0), k=topk, dim=-1)[1]
    topk_weights = scores.gather(1, topk_ids)
    return _finish(topk_weights, topk_ids, renormalize, routed_scaling_factor)


def fused_topk(gating_output: torch.Tensor, topk: int, renormalize: bool, scoring_func: str = "softmax"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's ``fused_topk`` (topk_softmax/topk_sigmoid kernels): no routed scaling here."""
    topk_weights, topk_ids = torch.topk(_scores(gating_output, scoring_func), k=topk, dim=-1)
    return _finish(topk_weights, topk_ids, renormalize)


@dataclass
class Router:
    """Upstream's router choice (``create_fused_moe_router`` on GPU), as one callable.

    Called by the pinned ``FusedMoE`` as its ``custom_routing_function``."""

    top_k: int
    renormalize: bool = True
    use_grouped_topk: bool = False
    num_expert_group: int | None = None
    topk_group: int | None = None
    scoring_func: str = "softmax"
    routed_scaling_factor: float = 1.0
    e_score_correction_bias: torch.Tensor | None = None
    custom_routing_function: Callable | None = None
    # upstream's ZeroExpertRouter (LongCat-Flash): experts from num_logical_experts on are "zero experts"
    # that the router itself computes ("identity": the token, weighted); the runner adds that output
    zero_expert_type: str | None = None
    num_logical_experts: int | None = None
    zero_expert_output: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.zero_expert_type is not None:
            if self.zero_expert_type != "identity":
                raise NotImplementedError(f"zero_expert_type={self.zero_expert_type!r}: upstream computes "
                                          "identity zero experts only")
            if self.e_score_correction_bias is None or self.num_logical_experts is None:
                raise ValueError("zero experts need e_score_correction_bias and num_logical_experts (upstream)")
        if self.use_grouped_topk and (self.num_expert_group is None or self.topk_group is None):
            raise ValueError("num_expert_group and topk_group must be provided when use_grouped_topk is True")
        if self.scoring_func not in ("softmax", "sigmoid"):
            raise NotImplementedError(
                f"scoring_func={self.scoring_func!r}: vLLM 0.13.0 has no kernel for it and the "
                "back-port routes with softmax or sigmoid only")

    def select(self, hidden_states: torch.Tensor, router_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bias = self.e_score_correction_bias
        if self.zero_expert_type is not None:
            return self._select_with_zero_experts(hidden_states, router_logits)
        if self.use_grouped_topk:
            n = router_logits.shape[-1]
            if self.num_expert_group < n and n % self.num_expert_group == 0:
                return grouped_topk(router_logits, self.top_k, self.renormalize, self.num_expert_group,
                                    self.topk_group, self.scoring_func, self.routed_scaling_factor, bias)
            # upstream falls back here when the experts do not split into the groups
            if bias is not None:
                return topk_bias(router_logits, self.top_k, self.renormalize, self.scoring_func, bias,
                                 self.routed_scaling_factor)
            return fused_topk(router_logits, self.top_k, self.renormalize)
        if self.custom_routing_function is not None:
            w, ids = self.custom_routing_function(hidden_states=hidden_states, gating_output=router_logits,
                                                  topk=self.top_k, renormalize=self.renormalize)
            return w.float(), ids.to(torch.int32)
        if bias is not None:
            return topk_bias(router_logits, self.top_k, self.renormalize, self.scoring_func, bias,
                             self.routed_scaling_factor)
        return fused_topk(router_logits, self.top_k, self.renormalize, self.scoring_func)

    def _select_with_zero_experts(self, hidden_states: torch.Tensor, router_logits: torch.Tensor
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Upstream's ZeroExpertRouter: biased top-k over real and zero experts, scaled; the zero experts'
        share of the token is kept for the runner, and their slots become expert 0 with weight 0."""
        weights, ids = topk_bias(router_logits, self.top_k, self.renormalize, self.scoring_func,
                                 self.e_score_correction_bias, self.routed_scaling_factor)
        zero = ids >= self.num_logical_experts
        share = (weights * zero).sum(dim=-1, keepdim=True)
        self.zero_expert_output = (hidden_states.float() * share).to(hidden_states.dtype)
        return weights.masked_fill(zero, 0.0), ids.masked_fill(zero, 0)

    def take_zero_expert_output(self) -> torch.Tensor | None:
        """The zero experts' output of the last routing, once (upstream's ``zero_expert_output``)."""
        out, self.zero_expert_output = self.zero_expert_output, None
        return out

    def __call__(self, hidden_states: torch.Tensor, gating_output: torch.Tensor, topk: int, renormalize: bool):
        return self.select(hidden_states, gating_output)


__all__ = ["Router", "fused_topk", "grouped_topk", "topk_bias"]
