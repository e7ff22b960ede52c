"""A reference for lightning (linear) attention's prefill (part of ``_runtime_forward.py``), the
same on both sides, as ``_runtime_gdn`` is for the gated delta net.

vLLM's linear-attention layers (0.13.0's ``mamba.linear_attn.MiniMaxText01LinearAttention``, which
the P22 back-port of Bailing's layer subclasses; 0.33.0's ``mamba.linear.minimax_linear_attn.
MiniMaxText01LinearAttention`` and ``mamba.linear.bailing_linear_attn.BailingMoELinearAttention``)
run, inside the ``linear_attention`` op, ``_forward``: their projections and q/k/v activations, then,
only when the runner's ``LinearAttentionMetadata`` for the layer is in the forward context, the core
``_prefill_and_mix_infer(q, k, v, kv_cache, state_indices, metadata)`` (Triton lightning kernels);
without it the hidden is ``torch.empty`` (garbage). Here ``_forward`` is handed, for the duration of
its call, what the runner hands it for one new prefill sequence: its own metadata class (one prefill of
all tokens, state slot 0, no context) and a zero state of the layer's ``get_state_shape()`` (per
virtual engine where the forward context has one, as 0.13.0 indexes it); and the core is replaced by
the lightning kernels' result from a zero state, ``o_t = sum_{s<=t} exp(-slope_h (t - s)) (q_t . k_s)
v_s`` per head, with the layer's ``tp_slope`` (both versions: ALiBi-style slopes times
``1 - layer_idx / (layers - 1) + 1e-5``), output ``(tokens, heads * head_dim)`` in q's dtype. Each side
keeps its own projections, RoPE, norms, gate and output code. Standard library only at import.
"""

import _runtime_gdn

# the cores read here (0.13.0 / 0.33.0): a layer whose class overrides them is another core, left alone
_CORES = (
    ("vllm.model_executor.layers.mamba.linear_attn", "MiniMaxText01LinearAttention"),
    ("vllm.model_executor.layers.mamba.linear.minimax_linear_attn", "MiniMaxText01LinearAttention"),
    ("vllm.model_executor.layers.mamba.linear.bailing_linear_attn", "BailingMoELinearAttention"),
)


def lightning_prefill(q, k, v, slope):
    """Causal linear attention with per-head exponential decay from a zero state, as vLLM's
    ``lightning_attention`` computes it: ``q``/``k`` (T, H, D), ``v`` (T, H, E), ``slope`` (H, ...);
    returns (T, H, E) in float32."""
    import torch

    q, k, v = (t.float() for t in (q, k, v))
    n = q.shape[0]
    dist = (torch.arange(n)[:, None] - torch.arange(n)[None, :]).float()  # t - s
    causal = dist >= 0
    decay = torch.exp(-slope.float().reshape(-1, 1, 1) * dist.clamp(min=0)) * causal  # (H, T, T)
    scores = torch.einsum("thd,shd->hts", q, k) * decay
    return torch.einsum("hts,she->the", scores, v)


def reference_prefill(layer, q, k, v, kv_cache, state_indices_tensor, attn_metadata):
    """``_prefill_and_mix_infer`` for the one prefill sequence handed below: the layer's slopes, no
    kernels, no state read or written."""
    n = q.shape[0]
    out = lightning_prefill(q, k, v, layer.tp_slope)
    layer._mmf_reference_calls = getattr(layer, "_mmf_reference_calls", 0) + 1
    return out.reshape(n, -1).to(q.dtype)


def _one_prefill(layer, n):
    """The side's own metadata for one new sequence of ``n`` tokens, and a zero state in slot 0."""
    import torch
    from vllm.forward_context import get_forward_context
    from vllm.v1.attention.backends.linear_attn import LinearAttentionMetadata

    meta = LinearAttentionMetadata(
        num_prefills=1, num_prefill_tokens=n, num_decodes=0, num_decode_tokens=0,
        query_start_loc=torch.tensor([0, n], dtype=torch.int32), seq_lens=torch.tensor([n], dtype=torch.int32),
        state_indices_tensor=torch.tensor([0], dtype=torch.int32))
    states = tuple(torch.zeros((1, *shape), dtype=torch.float32) for shape in layer.get_state_shape())
    per_engine = hasattr(get_forward_context(), "virtual_engine")  # 0.13.0: kv_cache[virtual_engine][i]
    return meta, [states] if per_engine else states


def _reference_forward(layer, hidden_states, output, positions):
    """The layer's own ``_forward`` with one prefill's metadata and a zero state in place for the call."""
    from vllm.forward_context import get_forward_context

    ctx = get_forward_context()
    meta, cache = _one_prefill(layer, hidden_states.shape[0])
    saved = ctx.attn_metadata, layer.__dict__.get("kv_cache", _MISSING)
    ctx.attn_metadata, layer.kv_cache = {layer.prefix: meta}, cache
    try:
        type(layer)._forward(layer, hidden_states, output, positions)
    finally:
        ctx.attn_metadata = saved[0]
        if saved[1] is _MISSING:
            del layer.kv_cache
        else:
            layer.kv_cache = saved[1]


_MISSING = object()

# FLA's Triton layer / RMS norm (upstream Bailing's q/k norm and sigmoid-gated group norm go through it)
_FLA_NORMS = ("vllm.third_party.flash_linear_attention.ops.layernorm_guard",
              "vllm.model_executor.layers.fla.ops.layernorm_guard")


def layer_norm_fwd(x, weight, bias, eps, z=None, out=None, group_size=None, norm_before_gate=True,
                   is_rms_norm=False, activation="swish"):
    """FLA's ``layer_norm_fwd`` as its kernel computes it, in torch: per row and group of ``group_size``
    columns, float32 statistics (mean only for layer norm), ``x_hat * w (+ b)``, the gate ``z`` through
    silu / sigmoid before or after the norm; written in ``x``'s dtype. Returns (out, mean, rstd)."""
    import torch

    rows, cols = x.shape
    group = group_size or cols
    xf = x.float()
    act = torch.sigmoid if activation == "sigmoid" else torch.nn.functional.silu
    if activation not in ("swish", "silu", "sigmoid"):
        raise ValueError(f"FLA norm reference: activation {activation!r} not read")
    if z is not None and not norm_before_gate:
        xf = xf * act(z.float())
    xg = xf.reshape(rows, cols // group, group)
    mean = None if is_rms_norm else xg.mean(-1, keepdim=True)
    centred = xg if is_rms_norm else xg - mean
    rstd = torch.rsqrt((centred * centred).mean(-1, keepdim=True) + eps)
    y = (centred * rstd).reshape(rows, cols) * weight.float()
    if bias is not None:
        y = y + bias.float()
    if z is not None and norm_before_gate:
        y = y * act(z.float())
    if out is None:
        out = torch.empty_like(x)
    out.copy_(y)
    # mean / rstd in the kernel's (group, row) order
    flat = [None if t is None else t.reshape(rows, -1).t().reshape(-1) for t in (mean, rstd)]
    return out, flat[0], flat[1]


def _install_fla_norm():
    """Point FLA's layer-norm modules this vLLM has at the torch ``layer_norm_fwd`` (their public
    functions look it up by name at each call)."""
    import importlib

    for path in _FLA_NORMS:
        try:
            mod = importlib.import_module(path)
        except Exception:
            continue
        if callable(getattr(mod, "layer_norm_fwd", None)):
            mod.layer_norm_fwd = layer_norm_fwd


def install(model):
    """Give every linear-attention layer of ``model`` whose core is one read here the reference core
    (and its ``_forward`` the one-prefill metadata). Returns the class names given it."""
    rows = _runtime_gdn.core_table(_CORES, ("_prefill_and_mix_infer",), reference_prefill, "lightning attention",
                                   also={"_forward": _reference_forward})
    done = sorted({type(m).__name__ for m in _runtime_gdn.give_references(model, rows)})
    if done:
        _install_fla_norm()
    return done
