"""The reference multi-head latent attention (part of ``_runtime_worker.py``): DeepSeek-style MLA
(``MLAAttention``: a query, the compressed latent ``kv_c_normed`` and the rotary key part ``k_pe``)
run as plain causal attention, the same on both sides. vLLM 0.13.0's CPU platform refuses MLA at
build ("MLA is not supported on CPU"); 0.33.0 has a CPU MLA backend whose forward needs the runner's
attention metadata. So the pinned side gets a backend with no kernels (:class:`ReferenceMLABackend`)
and both sides' ``MLAAttention.forward`` decompresses keys and values through the layer's own
``kv_b_proj`` (the model's checkpoint weights) and attends causally, as the Hugging Face DeepSeek
attention does. Sparse MLA (DeepSeek-V3.2's indexer) is not covered: it stays refused.
Standard library only at import.
"""

BACKEND = __name__ + ".ReferenceMLABackend"
_MODULES = ("vllm.attention.layer", "vllm.model_executor.layers.attention.mla_attention",
            "vllm.model_executor.layers.attention")


class ReferenceMLAImpl:
    """What ``MLAAttention.__init__`` builds from the backend: it keeps ``kv_b_proj`` (0.13.0's
    layer hands it only to the impl) and has nothing to prepare after loading."""

    def __init__(self, *args, kv_b_proj=None, **kwargs):
        self.kv_b_proj = kv_b_proj
        self.scale = kwargs.get("scale")

    def process_weights_after_loading(self, act_dtype):
        return None


class ReferenceMLABackend:
    """The backend the CPU platform names for MLA while a model is verified (no kernels, no cache)."""

    accept_output_buffer = False

    @staticmethod
    def get_name():
        return "REFERENCE_MLA"

    @staticmethod
    def get_impl_cls():
        return ReferenceMLAImpl

    @staticmethod
    def get_required_kv_cache_layout():
        return None


def mla_forward(self, q, kv_c_normed, k_pe, output_shape=None, **_):
    """Causal softmax attention of ``q`` (tokens, heads, nope + rope) over keys ``[k_nope, k_pe]`` and
    values ``v`` from ``kv_b_proj(kv_c_normed)`` (tokens, heads, nope + v), scaled by the layer's scale."""
    import torch
    import torch.nn.functional as F

    proj = getattr(self, "kv_b_proj", None)
    if proj is None:
        proj = getattr(getattr(self, "impl", None), "kv_b_proj", None)
    if proj is None:
        raise RuntimeError("reference MLA: the layer has no kv_b_proj to decompress keys and values with")
    heads, nope, rope, vdim = self.num_heads, self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim
    n = kv_c_normed.shape[0]
    kv = proj(kv_c_normed)
    kv = (kv[0] if isinstance(kv, tuple) else kv).reshape(n, heads, nope + vdim)
    k_nope, v = kv.split([nope, vdim], dim=-1)
    k = torch.cat([k_nope, k_pe.reshape(n, 1, rope).expand(n, heads, rope)], dim=-1)
    q = q.reshape(n, heads, nope + rope)
    scores = torch.einsum("qhd,khd->hqk", q.float(), k.float()) * self.scale
    i = torch.arange(n).unsqueeze(1)
    scores = scores.masked_fill(torch.arange(n).unsqueeze(0) > i, float("-inf"))
    out = torch.einsum("hqk,khd->qhd", F.softmax(scores, dim=-1), v.float()).to(q.dtype)
    return out.reshape(output_shape if output_shape is not None else (n, heads * vdim))


def install():
    """Patch what this vLLM has: MLA backend choice on the CPU platform (only where it refuses MLA),
    and every ``MLAAttention.forward``. Returns the patched names."""
    patched = []
    try:
        from vllm.platforms.cpu import CpuPlatform
    except Exception:
        CpuPlatform = None
    if CpuPlatform is not None and not getattr(CpuPlatform, "_mmf_reference_mla", False):
        original = CpuPlatform.get_attn_backend_cls.__func__

        def get_attn_backend_cls(cls, selected_backend, *args, **kwargs):
            config = kwargs.get("attn_selector_config") or (args[0] if args else None)
            if getattr(config, "use_mla", False) and not getattr(config, "use_sparse", False):
                try:
                    return original(cls, selected_backend, *args, **kwargs)
                except NotImplementedError:  # 0.13.0: "MLA is not supported on CPU."
                    return BACKEND
            return original(cls, selected_backend, *args, **kwargs)

        CpuPlatform.get_attn_backend_cls = classmethod(get_attn_backend_cls)
        CpuPlatform._mmf_reference_mla = True
        patched.append("vllm.platforms.cpu.CpuPlatform.get_attn_backend_cls (MLA)")
    seen = []
    for path in _MODULES:
        try:
            cls = getattr(__import__(path, fromlist=["MLAAttention"]), "MLAAttention", None)
        except Exception:
            cls = None
        if cls is not None and cls not in seen:
            seen.append(cls)
            cls.forward = mla_forward
            patched.append(cls.__module__ + "." + cls.__qualname__)
    return patched
