"""A reference for Kimi Delta Attention's prefill (KDA; part of ``_runtime_forward.py``), the same on both
sides, as ``_runtime_gdn`` is for the gated delta net.

The KDA layers run their projections, then a core that reads the runner's GDN metadata and state cache
(GPU runner only; without them it returns and leaves the output zero) and runs FLA's Triton chunk
kernels. Only that core is replaced, for one prefill sequence with zero initial state; two core
contracts (:data:`_CORES`):

- ``split`` (0.13.0's ``KimiDeltaAttention._forward``, upstream's ``BailingMoeV3KimiDeltaAttention._forward``
  and the migrated copy of it): ``(q, k, v, g1, beta, core_attn_out)``, the gate ``g1`` and ``beta``
  already computed by the forward; each of q, k, v through the layer's own short conv
  (``q_conv1d``/``k_conv1d``/``v_conv1d``, SiLU). Upstream's ``chunk_kda`` takes ``safe_gate`` /
  ``lower_bound`` and ignores them (``**kwargs``): the bound is the gate's, in the forward.
- ``packed`` (upstream's ``KimiGatedDeltaNetAttention._forward``, AliceAI): ``(mixed_qkv, g1, g2, beta,
  core_attn_out)`` with the raw gate and beta projections: one fused ``conv1d`` cut in q, k, v; the gate
  ``-exp(A_log) * softplus(g1 + dt_bias)`` or, with ``gate_lower_bound``, ``lower * sigmoid(exp(A_log) *
  (g1 + dt_bias))``; ``beta = sigmoid(beta)``; then the layer's ``o_norm(out, g2)`` in place, as the core
  ends.

Then the KDA rule token by token (:func:`kda_rule`): q/k l2-normalised (``use_qk_l2norm_in_kernel=True``,
eps 1e-6), ``scale = head_dim ** -0.5``, per head ``S = S * exp(g)[:, None]; S += k (beta (v - k S)); o =
(q * scale) S`` with ``g`` per key channel (the decay GDN has per head). No KDA layer has a negative
eigenvalue variant (AliceAI refuses ``kda_allow_negative_eigenvalues``).

Outside the core the KDA forward also calls Triton-only kernels, which the CPU cannot run: FLA's
``fused_kda_gate`` (both versions; the callers import it by name, so each caller module's binding is
replaced) and 0.13.0's ``FusedRMSNormGated`` output norm (upstream's is a ``CustomOp`` whose CPU path is
its own torch ``forward_native``). :data:`_KERNELS` gives them torch references of what the kernels
compute, with the replaced function's own signature: a call the pinned kernel refuses (a keyword it
lacks) still raises. Standard library only at import.
"""

import inspect
import sys

import _runtime_gdn

# (module, class, core method, contract); a migrated copy of a class (same module file name, e.g.
# vllm_fl.models.bailing_moe_v3) is read as the class; a class overriding the core is another core
_CORES = (
    ("vllm.model_executor.layers.kda", "KimiDeltaAttention", "_forward", "split"),
    ("vllm.model_executor.models.bailing_moe_v3", "BailingMoeV3KimiDeltaAttention", "_forward", "split"),
    ("vllm.model_executor.layers.mamba.gdn.kimi_gdn_linear_attn", "KimiGatedDeltaNetAttention", "_forward", "packed"),
)
# FLA's KDA modules (0.13.0 / 0.33.0) whose Triton-only functions and classes get torch references
_FLA = ("vllm.model_executor.layers.fla.ops.kda", "vllm.third_party.flash_linear_attention.ops.kda")


def kda_gate(g, A_log, dt_bias=None, lower_bound=None, beta=1.0, threshold=20.0):
    """The per-channel decay (log space), fp32: ``g`` (..., H, D), ``A_log`` H values, ``dt_bias`` H*D.
    ``-exp(A_log) * softplus(g + dt_bias)`` (softplus with ``beta``/``threshold`` as FLA's kernel), or the
    bounded gate ``lower_bound * sigmoid(exp(A_log) * (g + dt_bias))``."""
    import torch.nn.functional as F

    g = g.float()
    if dt_bias is not None:
        g = g + dt_bias.float().reshape(g.shape[-2:])
    a = A_log.float().reshape(-1)[:, None].exp()
    if lower_bound is not None:
        return lower_bound * (a * g).sigmoid()
    return -a * F.softplus(g, beta=beta, threshold=threshold)


def kda_rule(q, k, v, g, beta, scale=None):
    """KDA over one sequence from a zero state: ``q``/``k`` (T, H, K), ``v`` (T, H, V), ``g`` (T, H, K)
    (log decay per key channel), ``beta`` (T, H); q/k l2-normalised here. Returns (T, H, V) in float32."""
    import torch

    q, k, v, g, beta = (t.float() for t in (q, k, v, g, beta))
    q, k = _runtime_gdn.l2norm(q), _runtime_gdn.l2norm(k)
    q = q * (scale if scale is not None else q.shape[-1] ** -0.5)
    state = torch.zeros(v.shape[1], q.shape[-1], v.shape[-1])
    out = torch.empty(v.shape)
    for t in range(v.shape[0]):
        state = state * g[t].exp()[:, :, None]
        delta = (v[t] - torch.einsum("hk,hkv->hv", k[t], state)) * beta[t][:, None]
        state = state + k[t][:, :, None] * delta[:, None, :]
        out[t] = torch.einsum("hk,hkv->hv", q[t], state)
    return out


def _conv(x, conv, weight=None):
    """The layer's short conv (a ColumnParallelLinear holding (C, 1, W) weights), SiLU, zero history."""
    weight = conv.weight if weight is None else weight
    bias = getattr(conv, "bias", None)
    return _runtime_gdn.causal_conv1d(x.float(), weight.reshape(weight.shape[0], weight.shape[-1]).float(),
                                      None if bias is None else bias.float(), "silu")


def _heads(x, head_dim):
    return x.reshape(x.shape[0], -1, head_dim)


def _done(layer):
    layer._mmf_reference_calls = getattr(layer, "_mmf_reference_calls", 0) + 1


def reference_split(layer, q_proj_states, k_proj_states, v_proj_states, g1, beta, core_attn_out):
    """The ``split`` core for one prefill sequence: the layer's convs, the forward's gate and beta."""
    n, d = q_proj_states.shape[0], layer.head_dim
    q, k, v = (_heads(_conv(x, c), d) for x, c in ((q_proj_states, layer.q_conv1d), (k_proj_states, layer.k_conv1d),
                                                   (v_proj_states, layer.v_conv1d)))
    out = kda_rule(q, k, v, g1.reshape(-1, *q.shape[1:])[:n], beta.reshape(-1, q.shape[1])[:n])
    core_attn_out[0, :n] = out.to(core_attn_out.dtype)
    _done(layer)


def reference_packed(layer, mixed_qkv, g1, g2, beta, core_attn_out):
    """The ``packed`` core for one prefill sequence: the fused conv cut in q/k/v, the gate and beta from
    the raw projections with the layer's ``A_log``/``dt_bias``/``gate_lower_bound``, then its ``o_norm``."""
    n, d, size = mixed_qkv.shape[0], layer.head_dim, layer.local_projection_size
    weights = layer.conv1d.weight.split(size, dim=0)
    q, k, v = (_heads(_runtime_gdn.causal_conv1d(x.float(), w.reshape(w.shape[0], w.shape[-1]).float(), None, "silu"), d)
               for x, w in zip(mixed_qkv.split(size, dim=-1), weights))
    g = kda_gate(g1.reshape(-1, *q.shape[1:])[:n], layer.A_log, layer.dt_bias, getattr(layer, "gate_lower_bound", None))
    out = kda_rule(q, k, v, g, beta.reshape(-1, q.shape[1])[:n].float().sigmoid())
    core_attn_out[0, :n] = out.to(core_attn_out.dtype)
    core_attn_out.copy_(layer.o_norm(core_attn_out, g2))
    _done(layer)


_REFERENCES = {"split": reference_split, "packed": reference_packed}


def _core_of(layer):
    """The (method, contract) of ``layer``'s core if it is one read here, else None."""
    for path, name, method, contract in _CORES:
        owner = next((c for c in type(layer).__mro__ if method in c.__dict__), None)
        if owner is None or owner.__name__ != name:
            continue
        module = owner.__module__
        if module == path or module.rsplit(".", 1)[-1] == path.rsplit(".", 1)[-1]:
            return method, contract
    return None


def _gate_reference(original):
    """``fused_kda_gate`` in torch, bound to ``original``'s signature (a keyword it lacks raises)."""
    sig = inspect.signature(original)

    def fused_kda_gate(*args, **kwargs):
        a = sig.bind(*args, **kwargs)
        a.apply_defaults()
        p = a.arguments
        g = p["g"]
        return kda_gate(g.reshape(*g.shape[:-1], -1, p["head_k_dim"]), p["A"], p.get("g_bias"), p.get("lower_bound"),
                        p.get("beta", 1.0), p.get("threshold", 20.0))

    fused_kda_gate._mmf_reference = original
    return fused_kda_gate


def _norm_forward(self, x, g, residual=None, prenorm=False, residual_in_fp32=False):
    """``FusedRMSNormGated`` (0.13.0: Triton only) in torch: RMS norm over the head, weight, gate; as
    upstream's own ``forward_native``."""
    import torch

    if residual is not None or prenorm:
        raise NotImplementedError("reference FusedRMSNormGated: residual / prenorm not read")
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
    if self.weight is not None:
        y = y * self.weight.float()
    if getattr(self, "bias", None) is not None:
        y = y + self.bias.float()
    gf = g.float()
    y = y * gf * gf.sigmoid() if self.activation in ("swish", "silu") else y * gf.sigmoid()
    return y.to(x.dtype)


def _kernels(layers):
    """Give the Triton-only FLA kernels the KDA forwards call torch references: ``fused_kda_gate`` in FLA's
    module and in every module of a KDA layer's class that bound it by name; 0.13.0's ``FusedRMSNormGated``
    (an ``nn.Module``; upstream's ``CustomOp`` has its own CPU path)."""
    for path in _FLA:
        module = sys.modules.get(path)
        if module is None:
            try:
                module = __import__(path, fromlist=["fused_kda_gate"])
            except Exception:
                continue
        original = getattr(module, "fused_kda_gate", None)
        original = getattr(original, "_mmf_reference", original)
        if original is None:
            continue
        reference = _gate_reference(original)
        owners = {module} | {sys.modules.get(c.__module__) for m in layers for c in type(m).__mro__}
        for owner in owners:
            current = getattr(owner, "fused_kda_gate", None)
            if current is original or getattr(current, "_mmf_reference", None) is original:
                owner.fused_kda_gate = reference
        norm = getattr(module, "FusedRMSNormGated", None)
        if norm is not None and "forward_native" not in norm.__dict__:
            norm.forward = _norm_forward


def install(model):
    """Give every KDA layer of ``model`` whose core is one read here the reference core, and the FLA kernels
    its forward calls torch references. Returns the class names given it."""
    layers = []
    for m in model.modules():
        core = _core_of(m)
        if core is not None:
            method, contract = core
            _runtime_gdn.mark(m, {method: _REFERENCES[contract]}, "kda")
            layers.append(m)
    if layers:
        _kernels(layers)
    return sorted({type(m).__name__ for m in layers})
