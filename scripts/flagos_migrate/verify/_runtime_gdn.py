"""A reference for the gated delta net's prefill (part of ``_runtime_forward.py``), the same on both
sides, as ``_reference_attention`` is for attention.

vLLM's GDN layer runs its projections, then a core ``_forward_core(mixed_qkv, b, a, core_attn_out)``
(0.13.0's ``Qwen3NextGatedDeltaNet`` through ``torch.ops.vllm.gdn_attention_core``; 0.33.0's
``QwenGatedDeltaNetAttention`` through ``qwen_gdn_attention_core``, on CPU through
``cpu_gdn_attention_core``), then its gated norm and output projection. The core reads the runner's
GDN metadata and state cache, which only the GPU runner builds; without them both versions return and
leave the output zero. Only that core is replaced here, for a single prefill sequence with zero initial
state: causal depthwise conv1d + activation over the mixed q/k/v, ``g = -exp(A_log) *
softplus(a + dt_bias)``, ``beta = sigmoid(b)`` (doubled for a layer with ``allow_neg_eigval``: OLMo Hybrid's
``fused_olmo_hybrid_gdn_gating`` and its pinned back-port's gating), q/k l2-normalised (``use_qk_l2norm_in_kernel=True``
in both versions, eps 1e-6), ``scale = head_k_dim ** -0.5``, and the gated delta rule token by token
(v heads sharing a k head ``i // (Hv // Hk)``, as FLA's kernels index). Each side keeps its own
projections, layouts, norm and output code; a back-ported layer whose core is the pinned one (P22)
goes through the same reference. OLMo Hybrid's layer (upstream's ``OlmoHybridGatedDeltaNetAttention``, the
whole forward in ``olmo_hybrid_gdn_full_forward``; the pinned back-port over ``Qwen3NextGatedDeltaNet``) has
its own core of the same contract, q/k repeated per value-head group as the reference does. Standard library
only at import.
"""

# the cores read here (0.13.0 / 0.33.0): a layer whose class overrides them is another core, left alone
_CORES = (
    ("vllm.model_executor.models.qwen3_next", "Qwen3NextGatedDeltaNet"),
    ("vllm.model_executor.layers.mamba.gdn.qwen_gdn_linear_attn", "QwenGatedDeltaNetAttention"),
    # OLMo Hybrid (upstream; the pinned side's back-port, P22, is vllm_fl/compat/olmo_gdn_linear_attn.py): the
    # same core contract and rule, beta doubled with ``allow_neg_eigval`` (both versions' gating)
    ("vllm.model_executor.layers.mamba.gdn.olmo_gdn_linear_attn", "OlmoHybridGatedDeltaNetAttention"),
)
_LAYERS = {}  # prefix -> layer, for upstream's CPU op, which names the layer


def causal_conv1d(x, weight, bias, activation):
    """Depthwise causal conv over time, zero history: ``x`` (tokens, channels), ``weight``
    (channels, width)."""
    import torch.nn.functional as F

    n, width = x.shape[0], weight.shape[-1]
    out = F.conv1d(x.t().unsqueeze(0), weight.unsqueeze(1), bias, padding=width - 1, groups=x.shape[1])
    out = out[0, :, :n].t()
    if activation in ("silu", "swish"):
        out = F.silu(out)
    elif activation is not None:
        raise ValueError(f"GDN reference: conv activation {activation!r} not read")
    return out


def l2norm(x, eps=1e-6):
    import torch

    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def gated_delta_rule(q, k, v, g, beta, scale=None, use_qk_l2norm=True):
    """Gated delta rule over one sequence from a zero state. ``q``/``k`` (T, Hk, K), ``v`` (T, Hv, V),
    ``g``/``beta`` (T, Hv); returns (T, Hv, V) in float32. Per token and v head:
    ``S = S * exp(g); S += k (beta (v - k S)); o = (q * scale) S``."""
    import torch

    q, k, v, g, beta = (t.float() for t in (q, k, v, g, beta))
    if use_qk_l2norm:
        q, k = l2norm(q), l2norm(k)
    hv = v.shape[1]
    if hv != q.shape[1]:
        q = q.repeat_interleave(hv // q.shape[1], dim=1)
        k = k.repeat_interleave(hv // k.shape[1], dim=1)
    q = q * (scale if scale is not None else q.shape[-1] ** -0.5)
    state = torch.zeros(hv, q.shape[-1], v.shape[-1])
    out = torch.empty(v.shape)
    for t in range(v.shape[0]):
        state = state * g[t].exp()[:, None, None]
        delta = (v[t] - torch.einsum("hk,hkv->hv", k[t], state)) * beta[t][:, None]
        state = state + k[t][:, :, None] * delta[:, None, :]
        out[t] = torch.einsum("hk,hkv->hv", q[t], state)
    return out


def reference_core(layer, mixed_qkv, b, a, core_attn_out):
    """``_forward_core`` for one prefill sequence: the layer's conv weights, gating parameters and
    head sizes, no metadata, no state cache."""
    import torch.nn.functional as F

    n = mixed_qkv.shape[0]
    weight = layer.conv1d.weight
    x = causal_conv1d(mixed_qkv.float(), weight.reshape(weight.shape[0], weight.shape[-1]).float(),
                      None if layer.conv1d.bias is None else layer.conv1d.bias.float(), layer.activation)
    tp = int(getattr(layer, "tp_size", 1) or 1)
    kd, vd = layer.key_dim // tp, layer.value_dim // tp
    q, k, v = x.split([kd, kd, vd], dim=-1)
    q, k = q.reshape(n, -1, layer.head_k_dim), k.reshape(n, -1, layer.head_k_dim)
    v = v.reshape(n, -1, layer.head_v_dim)
    g = -layer.A_log.float().exp() * F.softplus(a.float() + layer.dt_bias.float())
    beta = b.float().sigmoid()
    if getattr(layer, "allow_neg_eigval", False):  # OLMo Hybrid's linear_allow_neg_eigval
        beta = beta * 2.0
    core_attn_out[:n] = gated_delta_rule(q, k, v, g, beta).to(core_attn_out.dtype)
    layer._mmf_reference_calls = getattr(layer, "_mmf_reference_calls", 0) + 1


def core_classes(cores=_CORES, model=None):
    """The classes of ``cores`` ((module, class name) pairs) this vLLM has, and the migrated copies among
    ``model``'s classes (a class of that name in a module of the same file name: the plugin's back-port or
    vendored copy, e.g. vllm_fl/compat/olmo_gdn_linear_attn.py)."""
    classes = []
    own = {c for m in model.modules() for c in type(m).__mro__} if model is not None else set()
    for path, name in cores:
        try:
            cls = getattr(__import__(path, fromlist=[name]), name, None)
        except Exception:
            cls = None
        leaf = path.rsplit(".", 1)[-1]
        copies = sorted((c for c in own if c.__name__ == name and c.__module__ != path
                         and c.__module__.rsplit(".", 1)[-1] == leaf), key=lambda c: c.__module__)
        for c in [cls, *copies]:
            if isinstance(c, type) and c not in classes:
                classes.append(c)
    return classes


def _cpu_op(mixed_qkv, b, a, core_attn_out, layer_name):
    """Upstream's CPU op (``cpu_gdn_attention_core``) returns without the runner's metadata; here it
    calls the layer's core, as its CUDA op does."""
    layer = _LAYERS[getattr(layer_name, "value", layer_name)]
    layer._forward_core(mixed_qkv, b, a, core_attn_out)


def core_table(cores, methods, reference, label, also=None, model=None):
    """One row per class of ``cores`` ((module, class name) pairs) this vLLM has (or ``model`` has a migrated
    copy of) that defines one of ``methods`` itself (its core): (class, {method: its own function},
    {method: replacement}, label). Each own method is replaced by ``reference``, and each of ``also``
    (method -> function) too."""
    rows = []
    for cls in core_classes(cores, model):
        own = {k: cls.__dict__[k] for k in methods if k in cls.__dict__}
        if own:
            rows.append((cls, own, {**dict.fromkeys(own, reference), **(also or {})}, label))
    return rows


def mark(layer, refs, label):
    """Bind ``refs`` (method -> function) on ``layer`` and mark it for ``unreached``."""
    import types

    for name, fn in refs.items():
        setattr(layer, name, types.MethodType(fn, layer))
    layer._mmf_reference = label
    layer._mmf_reference_calls = 0


def give_references(model, rows):
    """Give each layer of ``model`` that is an instance of a ``core_table`` row's class, and whose type
    still has that class's own core (a subclass overriding it is another core, left alone), the row's
    replacements. Returns the layers given one."""
    layers = []
    for m in model.modules():
        row = next((r for r in rows if isinstance(m, r[0])
                    and all(getattr(type(m), k, None) is f for k, f in r[1].items())), None)
        if row is not None:
            mark(m, row[2], row[3])
            layers.append(m)
    return layers


def install(model):
    """Give every GDN layer of ``model`` whose core is one read here the reference core. Returns the
    class names given it."""
    import torch

    layers = give_references(model, core_table(_CORES, ("_forward_core",), reference_core, "gdn", model=model))
    _LAYERS.update((m.prefix, m) for m in layers)
    ops = getattr(torch.ops, "vllm", None)
    if layers and ops is not None and hasattr(ops, "cpu_gdn_attention_core"):
        ops.cpu_gdn_attention_core = _cpu_op  # the namespace's cached op object, shadowed in this worker
    return sorted({type(m).__name__ for m in layers})


def unreached(model):
    """Layers given a reference (here or in ``_runtime_mamba2``) that a forward did not call: their
    output is the op's zeros or garbage (a forward that skipped them would still compare equal on
    both sides)."""
    return sorted({type(m).__name__ for m in model.modules()
                   if getattr(m, "_mmf_reference", None) and not getattr(m, "_mmf_reference_calls", 0)})
