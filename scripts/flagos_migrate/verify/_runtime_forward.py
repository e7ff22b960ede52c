"""The forward level (part of ``_runtime_worker.py``): a reference causal attention in place of
vLLM's kernels (the same on both sides), reference gated delta net, Mamba2, Mamba-1 and short conv cores
(``_runtime_gdn``, ``_runtime_mamba2``, ``_runtime_mamba1``), the text prefill with the ``get_language_model()`` /
``embed_input_ids`` path, and the Hugging Face reference's logits. Standard library only at import.
"""

import _runtime_gdn
import _runtime_kda
import _runtime_kernels
import _runtime_linattn
import _runtime_logits
import _runtime_mamba1
import _runtime_mamba2
import _runtime_moe_ops
from _runtime_env import LevelError, NeedsGpu, _source_of


def _window(value):
    """Tokens a query may see (itself included), from a layer's window (size) or a backend's
    ``(left, right)`` tuple or ``-1``; None for full attention."""
    if isinstance(value, (tuple, list)):
        return value[0] + 1 if value and isinstance(value[0], int) and value[0] >= 0 else None
    return value if isinstance(value, int) and value > 0 else None


def _reference_attention():
    """Replace the forward of vLLM's decoder ``Attention`` layer with a causal SDPA over the prefill."""
    import torch
    import torch.nn.functional as F

    classes = []
    for path in ("vllm.attention.layer", "vllm.model_executor.layers.attention.attention",
                 "vllm.model_executor.layers.attention"):
        try:
            mod = __import__(path, fromlist=["Attention"])
            cls = getattr(mod, "Attention", None)
            if cls is not None and cls not in classes:
                classes.append(cls)
        except Exception:
            pass

    def forward(self, query, key, value, output_shape=None, **_):
        heads, kv, dim = self.num_heads, self.num_kv_heads, self.head_size
        # a call without key/value reads what this layer wrote to its KV cache earlier in the prefill (LoopCoder's
        # later loops attend to loop 0's keys through attn[0](q, None, None)): the last key/value it was given
        if key is None and value is None:
            if getattr(self, "_mmf_kv", None) is None and getattr(self, "_mmf_target_kv", False):
                self._mmf_kv = _target_kv(query, heads, kv, dim, getattr(self, "head_size_v", dim) or dim)
                self._mmf_target_kv_used = True
            if getattr(self, "_mmf_kv", None) is None:
                raise LevelError(f"{type(self).__name__} was called without key/value before any were written: it "
                                 "reads a KV cache another layer or step fills, which this prefill does not")
            key, value = self._mmf_kv
        else:
            self._mmf_kv = (key, value)
        q = query.reshape(-1, heads, dim).transpose(0, 1)
        k = key.reshape(-1, kv, dim).transpose(0, 1)
        v = value.reshape(-1, kv, getattr(self, "head_size_v", dim) or dim).transpose(0, 1)
        if heads != kv:
            k = k.repeat_interleave(heads // kv, 0)
            v = v.repeat_interleave(heads // kv, 0)
        impl = getattr(self, "impl", None)
        scale = getattr(impl, "scale", None) or getattr(self, "scale", None) or dim ** -0.5
        n, nk = q.shape[1], k.shape[1]  # nk differs in cross-attention (keys from the encoder's states)
        scores = torch.matmul(q, k.transpose(1, 2)) * scale
        cap = getattr(impl, "logits_soft_cap", None)
        if cap:
            scores = cap * torch.tanh(scores / cap)
        # only decoder self-attention is causal: encoder, encoder-only and cross (encoder_decoder) see every key
        kind = str(getattr(getattr(self, "attn_type", "decoder"), "value", getattr(self, "attn_type", "decoder")))
        kind = kind.lower().rsplit(".", 1)[-1]
        causal = kind == "decoder"
        i = torch.arange(n).unsqueeze(1)
        j = torch.arange(nk).unsqueeze(0)
        allowed = (j <= i) if causal else torch.ones(n, nk, dtype=torch.bool)
        window = _window(getattr(self, "sliding_window", None)) or _window(getattr(impl, "sliding_window", None))
        if window:
            allowed = allowed & (i - j < window)
            if kind == "encoder_only":  # a band both ways: vLLM's encoder-only window is (W - 1, W - 1)
                allowed = allowed & (j - i < window)
        scores = scores.masked_fill(~allowed, float("-inf"))
        sinks = getattr(impl, "sinks", None)
        if isinstance(sinks, torch.Tensor):  # learned per-head sink logits (GPT-OSS): one more softmax column
            sink = sinks.reshape(heads, 1, 1).to(scores.dtype).expand(heads, n, 1)
            probs = F.softmax(torch.cat([scores, sink], -1).float(), dim=-1)[..., :-1]
        else:
            probs = F.softmax(scores.float(), dim=-1)
        out = torch.matmul(probs.to(q.dtype), v)
        out = out.transpose(0, 1).reshape(n, -1)
        if output_shape is not None:
            out = out.reshape(output_shape)
        return out

    for cls in classes:
        cls.forward = forward
    import _runtime_mla  # DeepSeek-style latent attention: its own reference (0.13.0 refuses MLA on CPU)

    return [c.__module__ + "." + c.__qualname__ for c in classes] + _runtime_mla.install()


def _target_kv(query, heads, kv, dim, dim_v):
    """The target's KV cache a draft's attention reads (Gemma 4's MTP layers attend with q only, over the K/V of
    the target layer the proposer shares: kv_sharing_target_layer_name): fixed deterministic keys and values
    for the prefill's tokens, the same in both venvs, as the draft's target hidden states are (_call_kwargs)."""
    import torch

    n = query.numel() // (heads * dim)
    keys = torch.sin(torch.arange(n * kv * dim, dtype=torch.float32).reshape(n, kv * dim) * 0.23) * 0.5
    values = torch.cos(torch.arange(n * kv * dim_v, dtype=torch.float32).reshape(n, kv * dim_v) * 0.29) * 0.5
    return keys.to(query.dtype), values.to(query.dtype)


def _mark_target_kv(model):
    """A draft's attention layers: one that reads K/V it never wrote reads the target's (:func:`_target_kv`)."""
    layers = [m for m in model.modules() if isinstance(getattr(m, "layer_name", None), str)
              and hasattr(m, "num_kv_heads") and hasattr(m, "head_size")]
    for m in layers:
        m._mmf_target_kv = True
    return layers


def _stateful_layers(model):
    """Mamba / linear-attention layers (vLLM's ``MambaBase``) with no reference here: their scans are
    Triton kernels and, without their own attention metadata (which only the GPU runner builds),
    vLLM's forward skips them as in a profiling run, leaving uninitialised output. Such a forward
    proves nothing. A layer given a reference (``_runtime_gdn``, ``_runtime_mamba2``, ``_runtime_mamba1``) is marked
    ``_mmf_reference``."""
    try:
        from vllm.model_executor.layers.mamba.abstract import MambaBase
    except Exception:
        return []
    return sorted({type(m).__name__ for m in model.modules()
                   if isinstance(m, MambaBase) and not getattr(m, "_mmf_reference", None)})


def _call_kwargs(model, vc, cfg, n, notes):
    """What vLLM hands the forward besides ids and positions. A draft / MTP model (a forward taking
    ``hidden_states``) gets, as the spec-decode proposer passes it, the target's hidden states
    (``draft_model_config.get_hidden_size()`` wide): a fixed deterministic tensor, the same in both
    venvs, so match compares like with like. Any other model gets ``intermediate_tensors=None``, as
    the runner passes it on the first pipeline rank (InternLM2 takes it with no default)."""
    import inspect

    import torch

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}
    if "hidden_states" in params:
        try:
            width = int(vc.model_config.get_hidden_size())
        except Exception:
            width = int(cfg.hidden_size)
        grid = torch.arange(n * width, dtype=torch.float32).reshape(n, width)
        notes.append(f"draft model: fed fixed target hidden states ({n}x{width}) as the proposer passes them")
        dtype = getattr(vc.model_config, "dtype", None)
        hidden = torch.sin(grid * 0.37) * 0.5
        return {"hidden_states": hidden.to(dtype) if isinstance(dtype, torch.dtype) else hidden}
    if "intermediate_tensors" in params:
        return {"intermediate_tensors": None}
    return {}


ENCODER_STATES = 16  # encoder states an encoder-decoder's prefill attends to (Whisper: 2x as many mel frames)
# what an encoder-decoder's embed_multimodal takes beyond Whisper's list of log-mel features, by model module (the
# same file on both sides): `mels`, the config path of the feature width where it is not num_mel_bins (NeMo's
# preprocessor.features for Cohere ASR, whose ConformerEncoder reads the same value as encoder.feat_in); `lengths`,
# the keyword of the features' frame counts its _parse_and_validate_audio_input requires ("Audio feature lengths
# must be a tensor.")
ENCODER_INPUTS = {
    "cohere_asr": {"mels": ("preprocessor", "features"), "lengths": "length"},
}


def encoder_feature_width(cfg, spec) -> int:
    """The feature width of the fixed audio: the config value at ``spec["mels"]`` (attributes or mapping keys), else
    ``num_mel_bins`` (80 without one). Pure."""
    value = cfg
    for key in spec.get("mels") or ():
        value = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
    return int(value if spec.get("mels") and value is not None else getattr(cfg, "num_mel_bins", 80))


def _encoder_outputs(model, cfg, notes):
    """An encoder-decoder (Whisper: a forward taking ``encoder_outputs``) decodes against its encoder's
    states, which the runner computes from the audio with ``embed_multimodal`` (``get_multimodal_embeddings``
    on versions that name it so) before the prefill. Fixed log-mel features, the same in both venvs:
    ``num_mel_bins`` x ``2 * ENCODER_STATES`` frames (the encoder's second conv has stride 2)."""
    import torch

    spec = ENCODER_INPUTS.get(type(model).__module__.rsplit(".", 1)[-1], {})
    mels, frames = encoder_feature_width(cfg, spec), 2 * ENCODER_STATES
    grid = torch.arange(mels * frames, dtype=torch.float32).reshape(mels, frames)
    dtype = next(model.parameters()).dtype
    embed = getattr(model, "embed_multimodal", None) or model.get_multimodal_embeddings
    extra = {spec["lengths"]: torch.tensor([frames])} if spec.get("lengths") else {}
    states = list(embed(input_features=[(torch.cos(grid * 0.11) * 0.5).to(dtype)], **extra))
    notes.append(f"encoder-decoder: fixed audio ({mels}x{frames} mel frames) through embed_multimodal, "
                 f"{sum(s.shape[-2] for s in states)} encoder states passed as encoder_outputs")
    return states


def _share_target_lm_head(model, extra, notes):
    """A draft without an lm_head of its own (EagleMistralForCausalLM) computes logits with the
    target's, which the proposer assigns after loading (``self.model.lm_head =
    target_language_model.lm_head``). With no target here, a target with tied embeddings stands in:
    the draft's own (loaded) embedding, the same on both sides."""
    if "hidden_states" not in extra or hasattr(model, "lm_head") or not hasattr(model, "compute_logits"):
        return
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if embed is not None:
        model.lm_head = embed
        notes.append("draft without an lm_head: the target's stood in by its embedding (a tied target)")


def _cache_layers(model):
    """The model's cache-only layers (upstream's extract_hidden_states: a layer whose impl only writes the KV
    cache, ``do_kv_cache_update``), by the layer name the forward context keys them by."""
    return {m.layer_name: m for m in model.modules()
            if isinstance(getattr(m, "layer_name", None), str) and hasattr(getattr(m, "impl", None), "do_kv_cache_update")}


def _cache_only_forward(model, vc, n):
    """A draft whose forward takes the target's hidden states only and returns nothing (upstream's
    ExtractHiddenStatesModel): what it computes is the KV cache it writes. Given what the proposer gives it
    (ExtractHiddenStatesProposer.propose): the target's hidden states stacked per cached layer, [n, heads, head
    size] (a fixed deterministic tensor, the same in both venvs), a KV cache bound by the side's own
    ``bind_kv_cache`` and the layer's slot mapping in the forward context, where the side's
    ``set_forward_context`` takes one (0.13.0's has no slot_mapping: its runner cannot hand one). The written
    cache is compared instead of logits. Returns (cache as [n, -1] rows, notes)."""
    import inspect

    import torch
    from vllm.forward_context import set_forward_context
    from vllm.v1.worker.utils import bind_kv_cache

    layers = _cache_layers(model)
    if len(layers) != 1:
        raise LevelError(f"a forward without input_ids and logits needs one cache-only layer, found {len(layers)}")
    (name, layer), = layers.items()
    heads, size = int(layer.num_heads), int(layer.head_size)
    block = int(getattr(layer, "block_size", 16) or 16)
    dtype = getattr(layer, "kv_cache_torch_dtype", None) or vc.model_config.dtype
    blocks = 1 + -(-n // block)  # block 0 is the null block padding slots go to, never a request's
    # the cache-only layer's layout (its spec is an MLA-style one: no K/V split): blocks x heads x block x head
    cache = torch.zeros(blocks, heads, block, size, dtype=dtype)
    bind_kv_cache({name: cache}, vc.compilation_config.static_forward_context, [])
    grid = torch.arange(n * heads * size, dtype=torch.float32).reshape(n, heads, size)
    hidden = (torch.sin(grid * 0.37) * 0.5).to(dtype)
    slots = {name: torch.arange(n) + block}
    kwargs = {"slot_mapping": slots} if "slot_mapping" in inspect.signature(set_forward_context).parameters else {}
    with torch.no_grad(), set_forward_context(None, vc, num_tokens=n, **kwargs):
        out = model(hidden_states=hidden)
    if out is not None and not (isinstance(out, torch.Tensor) and out.numel() == 0):
        raise LevelError(f"the cache-only forward returned {type(out).__name__}, not None as upstream's")
    notes = [f"cache-only draft: fed fixed target hidden states ({n}x{heads}x{size}) and a bound KV cache with the "
             "layer's slot mapping, as the proposer passes them; the cache it wrote compared instead of logits"]
    if not kwargs:
        notes.append("this vLLM's set_forward_context takes no slot_mapping: none handed to the model")
    return cache.float().permute(0, 2, 1, 3).reshape(blocks * block, heads * size)[block:block + n], notes


def references_note():
    """The note naming the GPU-only kernels torch references computed in this worker's forward level (text and
    image), or None."""
    used = sorted(_runtime_kernels.CALLS) + sorted(_runtime_moe_ops.CALLED)
    if not used:
        return None
    return ("GPU-only kernels computed by torch references, the same on both sides (_runtime_kernels, "
            f"_runtime_moe_ops): {', '.join(used)}")


def _forward(model, vc, cfg, ids_list):
    import inspect

    import torch
    from vllm.forward_context import set_forward_context

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        params = {}
    if params and "input_ids" not in params and "hidden_states" in params and not hasattr(model, "compute_logits"):
        return _cache_only_forward(model, vc, len(ids_list))
    notes = []
    for name, given in (("gated delta net", _runtime_gdn.install(model)), ("Mamba2", _runtime_mamba2.install(model)),
                        ("Kimi delta attention", _runtime_kda.install(model)),
                        ("Mamba-1 / short conv", _runtime_mamba1.install(model)),
                        ("lightning attention", _runtime_linattn.install(model))):
        if given:
            notes.append(f"reference {name} prefill (torch, zero initial state) for {', '.join(given)}")
    _runtime_kernels.CALLS.clear()
    _runtime_moe_ops.CALLED.clear()
    _runtime_kernels.install(model)
    stateful = _stateful_layers(model)
    if stateful:
        raise NeedsGpu(f"{', '.join(stateful)}: Triton scans, run only with the GPU runner's metadata")

    ids = torch.tensor(ids_list, dtype=torch.long)
    n = ids.shape[0]
    pos = torch.arange(n)
    if getattr(vc.model_config, "uses_mrope", False):  # what vLLM's runner decides from the config
        pos = pos.unsqueeze(0).expand(3, n).contiguous()
    extra = _call_kwargs(model, vc, cfg, n, notes)
    _share_target_lm_head(model, extra, notes)
    multimodal = getattr(model, "supports_multimodal", False) and hasattr(model, "get_language_model")
    draft = "hidden_states" in extra
    attn_layers = _mark_target_kv(model) if draft else []
    with torch.no_grad(), set_forward_context(None, vc, num_tokens=n):
        if "encoder_outputs" in params:
            extra["encoder_outputs"] = _encoder_outputs(model, cfg, notes)
        embeds = None
        if multimodal and not draft:
            if model.get_language_model() is None:
                raise LevelError("get_language_model() returned None: the multimodal path has no language model "
                                 "('NoneType' object has no attribute 'embed_input_ids' at the first image)")
            if _runner_takes_embeds(vc, notes):
                embed = getattr(model, "embed_input_ids", None) or getattr(model, "get_input_embeddings", None)
                embeds = _runner_embed(embed, ids)
        if embeds is not None:
            hidden = _embeds_forward(model, ids, pos, embeds, extra, notes)
        else:
            hidden = model(input_ids=ids, positions=pos, **extra)
        if isinstance(hidden, tuple):
            hidden = hidden[0]
        shared = [m.layer_name for m in attn_layers if getattr(m, "_mmf_target_kv_used", False)]
        if shared:
            notes.append(f"draft: {', '.join(shared)} read the target's KV cache (shared by the proposer, never "
                         f"written by the draft): fixed K/V for the {n} prefill tokens, the same on both sides")
        skipped = _runtime_gdn.unreached(model)
        if skipped:
            raise LevelError(f"the reference prefill core was not reached in {', '.join(skipped)}: "
                             "their output is the op's, never written")
        pooling = getattr(model, "is_pooling_model", False) or not hasattr(model, "compute_logits")
        logits = hidden if pooling else model.compute_logits(hidden)
        if pooling:
            notes.append("pooling model: hidden states compared instead of logits")
        masked = _runtime_logits.masked_tokens(logits) if logits is not None else None
        if masked is None:
            raise LevelError("logits are not finite" if logits is not None else "compute_logits returned None")
        if masked:
            notes.append(f"logits: token(s) {masked} at -inf on every row, the model's own mask (compute_logits); "
                         "the match compares the other tokens and requires the same mask on both sides")
        if multimodal and draft and model.get_language_model() is None:
            # a multimodal draft (Qwen3.5 MTP): vLLM 0.13.0 asks only the target for its language model (the
            # EAGLE proposer, to share embeddings); the draft's own is never asked for
            notes.append("draft: get_language_model() not checked (the pinned proposer asks the target's only)")
        elif multimodal and "encoder_outputs" in extra:  # the decoder takes ids (and the encoder's states)
            notes.append("encoder-decoder: inputs_embeds path not checked (the runner passes the decoder ids)")
        elif embeds is not None:
            notes.append("multimodal: prefilled as the runner does, embed_input_ids(ids, [], is_multimodal=all "
                         "False) then the forward with inputs_embeds and no input_ids")
            _ids_path_note(model, ids, pos, extra, logits, pooling, notes)
    return logits.float(), notes


def _embeds_forward(model, ids, pos, embeds, extra, notes):
    """The multimodal prefill as this vLLM's runner calls it: ``input_ids=None`` next to the embeddings, except that
    upstream's runner hands a model flagged ``requires_raw_input_tokens`` its ids too (``_prepare_mm_inputs``; the
    flag's helper in ``interfaces``). 0.13.0's runner reads no such flag: a model that needs the ids fails there,
    and the error says so (catalog P24 ``runner_flags``)."""
    from vllm.model_executor.models import interfaces

    wants_ids = bool(getattr(model, "requires_raw_input_tokens", False))
    runner_reads = hasattr(interfaces, "requires_raw_input_tokens")
    if wants_ids and runner_reads:
        notes.append("requires_raw_input_tokens: input_ids handed next to inputs_embeds, as this vLLM's runner does")
        return model(input_ids=ids, positions=pos, inputs_embeds=embeds, **extra)
    try:
        return model(input_ids=None, positions=pos, inputs_embeds=embeds, **extra)
    except Exception as exc:
        if not wants_ids:
            raise
        raise LevelError(f"{type(exc).__name__}: {exc} (with input_ids=None, as this vLLM's runner calls every "
                         "multimodal model: the model sets requires_raw_input_tokens, which only upstream's runner "
                         "reads to hand it the ids too)") from exc


def _runner_takes_embeds(vc, notes) -> bool:
    """Whether the runner prefills this multimodal model with ``inputs_embeds`` (gpu_model_runner._preprocess, pinned
    and upstream: ``supports_mm_inputs and is_first_rank and not is_encoder_decoder``; the embeddings of a text
    prompt too). ``supports_mm_inputs``: 0.13.0's ``MULTIMODAL_REGISTRY.supports_multimodal_inputs(model_config)``,
    upstream's ``model_config.supports_multimodal_inputs`` (False only when every modality's limit is 0)."""
    mc = vc.model_config
    if getattr(mc, "is_encoder_decoder", False) or not getattr(mc, "is_multimodal_model", False):
        return False
    try:
        if isinstance(getattr(type(mc), "supports_multimodal_inputs", None), property):
            return bool(mc.supports_multimodal_inputs)
        from vllm.multimodal import MULTIMODAL_REGISTRY

        return bool(MULTIMODAL_REGISTRY.supports_multimodal_inputs(mc))
    except Exception as exc:  # the runner would not start; its default limits are non-zero
        notes.append(f"multimodal inputs check raised ({type(exc).__name__}: {str(exc)[:120]}): taken as supported "
                     "(every modality's default limit is non-zero)")
        return True


def _ids_path_note(model, ids, pos, extra, logits, pooling, notes) -> None:
    """The prefill through ``input_ids`` (the runner's only with every modality limit 0, text-only mode), run for a
    note only: a model may need its embed_input_ids first (CLIP's dual encoder) or embed text apart from its
    language model (Phi-3-V's own ``embed_tokens``, loaded from another checkpoint tensor)."""
    import torch

    try:
        hidden = model(input_ids=ids, positions=pos, **extra)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        other = hidden if pooling else model.compute_logits(hidden)
    except Exception as exc:
        notes.append(f"the input_ids path (text-only mode, not the runner's here) raised {type(exc).__name__}: "
                     f"{str(exc)[:120]}")
        return
    if other is None or other.shape != logits.shape or not torch.allclose(logits, other, atol=1e-5, rtol=0):
        notes.append("the input_ids path (text-only mode, not the runner's here) gives other logits than the "
                     "runner's inputs_embeds path")


def _runner_embed(embed, ids):
    """``embed(ids)`` as the pinned runner calls a multimodal model's embed_input_ids (gpu_model_runner._preprocess):
    with the gathered multimodal embeddings (none in a text prompt) and their mask, all False, where it takes them.
    FireRedASR2's requires the mask (vLLM's _require_is_multimodal raises on None)."""
    import inspect

    import torch

    params = inspect.signature(embed).parameters
    if "is_multimodal" not in params:
        return embed(ids)
    runner = {"multimodal_embeddings": [], "is_multimodal": torch.zeros(ids.shape, dtype=torch.bool)}
    return embed(ids, **{k: v for k, v in runner.items() if k in params})


def _hf_logits(arch, work, ids, adjustments=()):
    """The Hugging Face class's logits; ``adjustments`` (reference_divergences.adjustments_for) zero
    parameters upstream vLLM never uses, or add to (or take from) a config field upstream reads another way. Returns (logits, source file, the adjustments applied)."""
    import torch
    import transformers

    hf_cls = getattr(transformers, arch, None)
    if hf_cls is None:
        raise LevelError(f"transformers {transformers.__version__} has no {arch}")
    _same_config_class(hf_cls, work)
    config = transformers.AutoConfig.from_pretrained(work)
    applied = []
    for a in adjustments:  # a config field upstream reads another way (Cohere2Moe's window + 1)
        name = a["parameter"][len("config."):] if a["parameter"].startswith("config.") else None
        if name and a["action"][:1] in ("+", "-") and isinstance(getattr(config, name, None), int):
            setattr(config, name, getattr(config, name) + int(a["action"]))
            applied.append(a)
    model = hf_cls.from_pretrained(work, config=config, dtype=torch.float32, attn_implementation="eager").eval()
    params = dict(model.named_parameters())
    zeroed = [a for a in adjustments if a["action"] == "zeroed" and a["parameter"] in params]
    applied += zeroed
    with torch.no_grad():
        for a in zeroed:
            params[a["parameter"]].zero_()
        out = model(input_ids=torch.tensor([ids]))
    out = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
    return out[0].float(), _source_of(model), applied


def _same_config_class(hf_cls, work):
    """The Hugging Face class reads its own config class from ``work``'s config.json whatever its
    model type: built from another, unrelated class (GraniteMoeSWA from the GraniteMoeSharedConfig of
    the class upstream registers it to) it gets that class's defaults (its sliding window and sinks,
    absent from the checkpoint: random) and is another model, not a reference."""
    import json
    import os

    from transformers import CONFIG_MAPPING

    want = getattr(hf_cls, "config_class", None)
    with open(os.path.join(work, "config.json"), encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    have = CONFIG_MAPPING[model_type] if isinstance(model_type, str) and model_type in CONFIG_MAPPING else None
    if want is None or have is None or issubclass(have, want) or issubclass(want, have):
        return
    if want in (getattr(have, "sub_configs", None) or {}).values():  # a text model of a composite config
        return
    raise LevelError(f"transformers' {hf_cls.__name__} reads {want.__name__} (model type "
                     f"{getattr(want, 'model_type', '?')!r}); the pinned side built from {have.__name__} "
                     f"({model_type!r}): not the same model, no comparison (the pinned stack has no config "
                     "class for the architecture's own model type: P2)")
