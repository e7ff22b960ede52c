"""References for the Mamba-1 mixer's and the short convolution's prefill (``MambaMixer``, Jamba /
Mamba / FalconMamba; ``ShortConv``, LFM2; part of ``_runtime_forward.py``), the same on both sides,
as ``_runtime_gdn`` is for the gated delta net.

Both layers' ``forward`` call an op (``torch.ops.vllm.mamba_mixer`` / ``short_conv``) that calls the
layer's whole pipeline by name: ``MambaMixer.forward_cuda`` (0.13.0) / ``forward_impl`` (0.33.0);
``ShortConv.forward_cuda`` (0.13.0 always; 0.33.0 off CPU) / ``forward_native`` (0.33.0 on CPU;
0.13.0's is a bare ``return`` nothing calls). Each reads the runner's metadata and state cache (GPU
runner only); without them it takes the profile-run path: the mixer returns without writing the
output, 0.33.0's CPU short conv writes ``out_proj(C * B * x)`` with no convolution. Only those
methods are replaced, for one prefill sequence with zero initial state, calling the layer's own
projections (``in_proj``, ``_ssm_transform`` with its dt/B/C norms, ``_time_proj_bias``,
``out_proj``):

- Mamba-1: ``x, z = in_proj(h)``; ``x = act(causal_conv1d(x))``; ``dt, B, C = _ssm_transform(x)``;
  ``dt = softplus(dt + dt_bias)`` (``delta_softplus=True``); per token and channel
  ``S = exp(dt A) S + dt x B; y = S C + D x``, ``y *= silu(z)`` (the scan's gate), then ``out_proj``,
  with the layer's ``A`` (the loader stores ``-exp(A_log)``) and ``D``.
- ShortConv: ``B, C, x = in_proj(h)``; ``y = C * causal_conv1d(B * x)`` (no activation), then
  ``out_proj``.

Standard library only at import.
"""

import _runtime_gdn

# (module, class, the methods the layer's op calls that read the runner's metadata), 0.13.0 / 0.33.0;
# a layer whose class overrides them is another core, left alone
_CORES = (
    ("vllm.model_executor.layers.mamba.mamba_mixer", "MambaMixer", ("forward_cuda", "forward_impl")),
    ("vllm.model_executor.layers.mamba.short_conv", "ShortConv", ("forward_cuda", "forward_native")),
)


def selective_scan(x, dt, A, B, C, D, z=None):
    """Mamba-1's selective scan over one sequence from a zero state. ``x``/``dt``/``z`` (T, channels),
    ``dt`` after softplus, ``A`` (channels, N), ``B``/``C`` (T, N), ``D`` (channels); returns
    (T, channels) in float32. Per token: ``S = exp(dt A) S + (dt x) B; y = S C + D x``, times
    ``silu(z)``."""
    import torch
    import torch.nn.functional as F

    x, dt, A, B, C = (t.float() for t in (x, dt, A, B, C))
    state = torch.zeros(A.shape)
    out = torch.empty(x.shape)
    for t in range(x.shape[0]):
        state = state * (dt[t][:, None] * A).exp() + (dt[t] * x[t])[:, None] * B[t][None, :]
        out[t] = state @ C[t]
    if D is not None:
        out = out + D.float() * x
    return out if z is None else out * F.silu(z.float())


def _conv_weights(conv):
    weight = conv.weight
    return weight.reshape(weight.shape[0], weight.shape[-1]).float(), None if conv.bias is None else conv.bias.float()


def _mark(layer):
    layer._mmf_reference_calls = getattr(layer, "_mmf_reference_calls", 0) + 1


def reference_mixer(layer, hidden_states, output):
    """``MambaMixer``'s pipeline for one prefill sequence: the layer's projections, conv weights,
    ``A``, ``D`` and dt bias, no metadata, no state cache."""
    import torch.nn.functional as F

    n, dtype = hidden_states.shape[0], hidden_states.dtype
    x, gate = layer.in_proj(hidden_states)[0].chunk(2, dim=-1)
    x = _runtime_gdn.causal_conv1d(x.float(), *_conv_weights(layer.conv1d), layer.activation).to(dtype)
    dt, B, C = layer._ssm_transform(x)  # dt as (channels, tokens): the kernel's layout
    bias = layer._time_proj_bias()
    dt = dt.transpose(-2, -1).float()
    dt = F.softplus(dt if bias is None else dt + bias.float())
    y = selective_scan(x, dt, layer.A, B, C, layer.D, gate)
    output[:n] = layer.out_proj(y.to(dtype))[0]
    _mark(layer)


def reference_short_conv(layer, hidden_states, output):
    """``ShortConv``'s pipeline for one prefill sequence: the layer's projections and conv weights, no
    metadata, no state cache."""
    n, dtype = hidden_states.shape[0], hidden_states.dtype
    B, C, x = layer.in_proj(hidden_states)[0].chunk(3, dim=-1)
    conv = _runtime_gdn.causal_conv1d((B * x).float(), *_conv_weights(layer.conv), None)
    output[:n] = layer.out_proj((C.float() * conv).to(dtype))[0]
    _mark(layer)


_REFERENCES = {"MambaMixer": reference_mixer, "ShortConv": reference_short_conv}
_LABELS = {"MambaMixer": "mamba1", "ShortConv": "short conv"}


def install(model):
    """Give every ``MambaMixer`` / ``ShortConv`` of ``model`` whose core methods are the ones read
    here the reference. Returns the class names given it."""
    rows = [row for path, name, methods in _CORES
            for row in _runtime_gdn.core_table([(path, name)], methods, _REFERENCES[name], _LABELS[name])]
    return sorted({type(m).__name__ for m in _runtime_gdn.give_references(model, rows)})
