"""A reference for Mamba2's prefill (``MambaMixer2``; part of ``_runtime_forward.py``), the same on
both sides, as ``_runtime_gdn`` is for the gated delta net.

Both vLLM versions' ``MambaMixer2.forward`` run the input projection, then the op
``torch.ops.vllm.mamba_mixer2``, which calls the layer's ``conv_ssm_forward(projected_states,
output)``, then the gated RMS norm and the output projection. That core reads the runner's Mamba2
metadata and state cache (GPU runner only); without them it returns and leaves the output unwritten.
Only the core is replaced, for one prefill sequence with zero initial state: causal depthwise conv1d
+ activation over ``xBC`` (the layer's own split into x, B, C), ``dt = softplus(dt + dt_bias)``
(``dt_softplus=True``, ``dt_limit=(0, inf)``), and the SSD recurrence token by token with the layer's
``A`` (the loader stores ``-exp(A_log)``) and ``D`` skip, head ``h`` reading group
``h // (heads // groups)`` as the kernels index (``z=None``: the gate is the norm's, outside the core).
Standard library only at import.
"""

import _runtime_gdn

_CORES = (("vllm.model_executor.layers.mamba.mamba_mixer2", "MambaMixer2"),)


def ssd_scan(x, dt, A, B, C, D):
    """``x`` (T, H, P), ``dt`` (T, H) after softplus, ``A``/``D`` (H), ``B``/``C`` (T, G, N); returns
    (T, H, P) in float32. Per token and head: ``S = exp(dt A) S + dt x B^T; y = S C + D x``."""
    import torch

    x, dt, A, B, C, D = (t.float() for t in (x, dt, A, B, C, D))
    heads = x.shape[1]
    B = B.repeat_interleave(heads // B.shape[1], dim=1)
    C = C.repeat_interleave(heads // C.shape[1], dim=1)
    state = torch.zeros(heads, x.shape[2], B.shape[2])
    out = torch.empty(x.shape)
    for t in range(x.shape[0]):
        state = state * (dt[t] * A).exp()[:, None, None] + (dt[t][:, None] * x[t])[:, :, None] * B[t][:, None, :]
        out[t] = (state * C[t][:, None, :]).sum(-1) + D[:, None] * x[t]
    return out


def reference_conv_ssm(layer, projected_states, output):
    """``conv_ssm_forward`` for one prefill sequence: the layer's conv weights, split, ``A``, ``D``,
    ``dt_bias`` and head sizes, no metadata, no state cache."""
    import torch.nn.functional as F

    n = projected_states.shape[0]
    xbc, dt = projected_states[..., layer.tped_intermediate_size:].split(
        [layer.tped_conv_size, layer.tped_dt_size], dim=-1)
    weight, bias = layer.conv1d.weight, layer.conv1d.bias
    xbc = _runtime_gdn.causal_conv1d(xbc.float(), weight.reshape(weight.shape[0], weight.shape[-1]).float(),
                                     None if bias is None else bias.float(), layer.activation)
    x, B, C = layer.split_hidden_states_B_C_fn(xbc)
    tp = int(getattr(layer, "tp_size", 1) or 1)
    heads, groups = layer.num_heads // tp, layer.n_groups // tp
    dt = F.softplus(dt.float() + layer.dt_bias.float())
    y = ssd_scan(x.reshape(n, heads, layer.head_dim), dt, layer.A, B.reshape(n, groups, -1),
                 C.reshape(n, groups, -1), layer.D)
    output[:n] = y.reshape(n, -1).to(output.dtype)
    layer._mmf_reference_calls = getattr(layer, "_mmf_reference_calls", 0) + 1


def install(model):
    """Give every ``MambaMixer2`` of ``model`` whose core is the one read here the reference core.
    Returns the class names given it."""
    rows = _runtime_gdn.core_table(_CORES, ("conv_ssm_forward",), reference_conv_ssm, "mamba2")
    return sorted({type(m).__name__ for m in _runtime_gdn.give_references(model, rows)})
