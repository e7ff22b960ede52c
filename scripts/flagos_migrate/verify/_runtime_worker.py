"""Standalone worker of ``runtime``: builds, loads and runs models under a *foreign* Python.

Runs inside a venv with vLLM (the pinned 0.13.0, or upstream for ``match``); imports only the
standard library, torch, transformers, vLLM and, by path, the stdlib-only ``runtime_tiny.py``
next to this file. Nothing from ``flagos_migrate``.

Protocol. The worker imports torch, transformers and vLLM, writes ``{"event": "ready", ...}``, then
reads a JSON request from stdin::

    {"mode": "pinned" | "reference", "sys_path": [...], "namespace_packages": {"vllm_fl": dir},
     "config_modules": [...], "workdir": dir, "timeout": s, "seed": 0, "num_tokens": 12,
     "architectures": [{"architecture", "module", "class"}]}

Per architecture one forked child runs the levels (import, construct, load, forward) and writes
one JSON line ``{"event": "result", ...}`` to the protocol stream (the original stdout); whatever
vLLM prints goes to stderr. Artifacts shared with the other side live in
``workdir/<id>/``: ``config.json`` (the tiny config), ``model.safetensors`` (the synthetic checkpoint), ``ids.json``
and ``logits.pt``. In ``reference`` mode the child takes those, builds the upstream vLLM class of
the architecture (falling back to the Hugging Face class) and writes ``logits_ref.pt``.

Why this setup (vLLM on a CPU-only machine, either version): the CPU platform is forced before
any model code asks for ``current_platform``; custom ops run their native torch code; world size
1 over gloo; eager; fp32. vLLM's CPU attention kernels are not in the CUDA wheels, so
``Attention.forward`` is replaced by a reference causal SDPA over the prefill, the same on both
sides, so the comparison is of everything else.
"""

import json
import os
import select
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_MESSAGE = 2000
TAIL_LINES = 12
LEVELS = ("import", "construct", "load", "forward")


class LevelError(Exception):
    """A level failed for a reason found by a check (not an exception of the model code)."""


class NeedsGpu(Exception):
    """The layer's kernels exist only for GPUs; the level is skipped with this op named."""


class Unavailable(Exception):
    """What the level needs does not exist here (e.g. no config class for a remote-code model):
    the level is skipped with this reason, it did not fail."""


# --------------------------------------------------------------------------------------------
# error description


def _tail(exc):
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    text = "".join(lines).rstrip().splitlines()
    return "\n".join(text[-TAIL_LINES:])


def _describe(level, exc):
    return {
        "level": level,
        "type": type(exc).__name__,
        "message": str(exc)[:MAX_MESSAGE],
        "traceback_tail": _tail(exc),
        "frames": [{"file": f.filename, "line": f.lineno, "func": f.name}
                   for f in traceback.extract_tb(exc.__traceback__)[-12:]],
    }


_GPU_MARKERS = ("triton", "cuda", "nvidia", "nccl", "_C.", "_C::", "'_C'", "_moe_C", "flash_attn", "deep_gemm")


def gpu_only_op(exc):
    """The GPU-only op an exception points to (Triton kernel, missing compiled op), else None."""
    msg = str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    for fs in reversed(frames):
        if "/triton/" in fs.filename:
            user = next((f for f in reversed(frames) if "/triton/" not in f.filename), fs)
            return f"triton kernel in {user.name}"
    low = msg.lower()
    if "_opnamespace" in low and "'_c'" in low or "no such operator _c" in low or "_moe_c" in low:
        name = msg.split("'")[-2] if msg.count("'") >= 2 else msg
        return f"compiled op {name}"
    if "torch not compiled with cuda" in low or "no nvidia driver" in low or "found no nvidia" in low \
            or "cuda driver" in low or "cuda is not available" in low:
        return f"CUDA ({frames[-1].name if frames else 'device'})"
    if "triton" in low:
        return "triton"
    return None


# --------------------------------------------------------------------------------------------
# environment


def _platform_cpu():
    """Make vLLM resolve the CPU platform (0.13 only picks it for CPU builds of vLLM)."""
    import vllm.platforms as platforms
    from vllm.platforms.cpu import CpuPlatform

    platforms._current_platform = CpuPlatform()


def _namespace(packages):
    """Top-level plugin packages as bare namespaces: their ``__init__`` (which may import GPU-only
    packages such as flag_gems) is not executed; sub-packages import normally."""
    import types

    for name, path in (packages or {}).items():
        mod = types.ModuleType(name)
        mod.__path__ = [path]
        mod.__file__ = None
        sys.modules[name] = mod


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
        q = query.reshape(-1, heads, dim).transpose(0, 1)
        k = key.reshape(-1, kv, dim).transpose(0, 1)
        v = value.reshape(-1, kv, getattr(self, "head_size_v", dim) or dim).transpose(0, 1)
        if heads != kv:
            k = k.repeat_interleave(heads // kv, 0)
            v = v.repeat_interleave(heads // kv, 0)
        impl = getattr(self, "impl", None)
        scale = getattr(impl, "scale", None) or getattr(self, "scale", None) or dim ** -0.5
        n = q.shape[1]
        scores = torch.matmul(q, k.transpose(1, 2)) * scale
        cap = getattr(impl, "logits_soft_cap", None)
        if cap:
            scores = cap * torch.tanh(scores / cap)
        causal = str(getattr(self, "attn_type", "decoder")).lower().endswith("decoder")
        i = torch.arange(n).unsqueeze(1)
        j = torch.arange(n).unsqueeze(0)
        allowed = (j <= i) if causal else torch.ones(n, n, dtype=torch.bool)
        window = _window(getattr(self, "sliding_window", None)) or _window(getattr(impl, "sliding_window", None))
        if window:
            allowed = allowed & (i - j < window)
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
    return [c.__module__ + "." + c.__qualname__ for c in classes]


def _cpu_gemm_keeps_conv_weights():
    """vLLM's CPU platform repacks every linear weight after loading assuming it is 2-D; Mamba's
    ``conv1d`` is a linear layer holding a 3-D conv weight (no CPU path in these wheels: its scan is
    Triton), so that layer keeps the plain ``F.linear`` fallback the function itself ends with.
    The same on both sides."""
    import torch

    try:
        import vllm.model_executor.layers.utils as lu
    except Exception:
        return
    orig = getattr(lu, "dispatch_cpu_unquantized_gemm", None)
    if orig is None:
        return

    def dispatch(layer, remove_weight):
        weight = getattr(layer, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() != 2:
            layer.cpu_linear = lambda x, w, b: torch.nn.functional.linear(x, w, b)
            return None
        return orig(layer, remove_weight)

    lu.dispatch_cpu_unquantized_gemm = dispatch


PRELOAD = ("vllm.config", "vllm.distributed", "vllm.forward_context", "vllm.model_executor.model_loader.utils",
           "vllm.model_executor.models", "vllm.model_executor.models.registry", "safetensors.torch",
           "transformers.models.auto.modeling_auto")


def _preload(req):
    """Import once before forking what every child needs, the migrated modules included (a child
    that finds one in ``sys.modules`` saves its import; one that failed is retried by the child,
    which reports the error)."""
    import importlib

    names = list(PRELOAD) + list(req.get("config_modules") or [])
    names += [s["module"] for s in req.get("architectures") or [] if s.get("module") and req.get("mode") == "pinned"]
    for name in dict.fromkeys(names):
        try:
            importlib.import_module(name)
        except BaseException:
            pass


def _free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _init_distributed(vc):
    from vllm.config import set_current_vllm_config
    from vllm.distributed import init_distributed_environment, initialize_model_parallel

    with set_current_vllm_config(vc):
        init_distributed_environment(world_size=1, rank=0, local_rank=0,
                                     distributed_init_method=f"tcp://127.0.0.1:{_free_port()}", backend="gloo")
        initialize_model_parallel(1, 1)


# --------------------------------------------------------------------------------------------
# config


def _hf_model_types(arch):
    """model_types whose Hugging Face class of any auto mapping is named ``arch``."""
    from transformers.models.auto import modeling_auto

    found = []
    for name in dir(modeling_auto):
        table = getattr(modeling_auto, name)
        if not name.endswith("MAPPING_NAMES") or not isinstance(table, dict):
            continue
        for model_type, cls in table.items():
            names = cls if isinstance(cls, (tuple, list)) else (cls,)
            if arch in names and model_type not in found:
                found.append(model_type)
    return found


def _bridge_classes(modules):
    """PretrainedConfig subclasses the plugin's config bridges define, by model_type."""
    import importlib

    from transformers import PretrainedConfig

    out = {}
    for name in modules or []:
        mod = importlib.import_module(name)
        for value in vars(mod).values():
            if isinstance(value, type) and issubclass(value, PretrainedConfig) and value.__module__ == mod.__name__ \
                    and getattr(value, "model_type", ""):
                out[value.model_type] = value
    return out


def _register_bridge(model_type, cls):
    from transformers import AutoConfig

    try:
        AutoConfig.register(model_type, cls, exist_ok=True)
    except Exception:
        pass
    try:
        from vllm.transformers_utils.config import _CONFIG_REGISTRY

        _CONFIG_REGISTRY[model_type] = cls
    except Exception:
        pass


def _vllm_configs():
    """The config classes the pinned vLLM itself registers (``vllm.transformers_utils.configs``)."""
    try:
        from vllm.transformers_utils.config import _CONFIG_REGISTRY
    except Exception:
        return {}
    out = {}
    for mt, cls in dict(_CONFIG_REGISTRY).items():
        if isinstance(cls, str):  # newer vLLMs register lazily, by class name
            try:
                import vllm.transformers_utils.configs as configs

                cls = getattr(configs, cls)
            except Exception:
                continue
        out[mt] = cls
    return out


def _by_stem(arch, table):
    """The one entry of ``table`` whose model_type spells the architecture's prefix
    ("Qwen3_5MoeForCausalLM" -> "qwen3_5_moe"), compared without case and underscores."""
    stem = arch.split("For")[0].replace("_", "").lower()
    stem = stem[:-len("model")] if stem.endswith("model") and len(stem) > 5 else stem  # ChatGLMModel
    named = [cls for mt, cls in table.items() if mt.replace("_", "").replace("-", "").lower() == stem]
    return named[0] if len(named) == 1 else None


def _config_class(arch, bridges, model_type_hint=None, cls_name=None, notes=None):
    """The config class to build ``arch`` from, looked up where the pinned stack gets it: the
    plugin's config bridges (``vllm_fl/configs``), the pinned vLLM's own config registry,
    transformers' auto mappings (the order of vLLM's ``get_config``); else the config of the class ``arch`` is registered to (a peer
    architecture such as ``InternLM3ForCausalLM -> LlamaForCausalLM`` whose own config is remote code)."""
    from transformers import CONFIG_MAPPING

    vllm_cfgs = _vllm_configs()
    types = ([model_type_hint] if model_type_hint else []) + _hf_model_types(arch)
    for mt in types:  # in the order the pinned vLLM's get_config reads a config.json
        if mt in bridges:
            return bridges[mt]
        if mt in vllm_cfgs:
            return vllm_cfgs[mt]
        if mt in CONFIG_MAPPING:
            return CONFIG_MAPPING[mt]
    if len(bridges) == 1:
        return next(iter(bridges.values()))
    found = _by_stem(arch, bridges) or _by_stem(arch, vllm_cfgs)
    if found is not None:
        return found
    if cls_name and cls_name != arch:
        for mt in _hf_model_types(cls_name):
            if mt in CONFIG_MAPPING:
                if notes is not None:
                    notes.append(f"config: no config class of its own for {arch} here (remote code); built from "
                                 f"{CONFIG_MAPPING[mt].__name__}, the config of {cls_name} it is registered to")
                return CONFIG_MAPPING[mt]
    raise Unavailable(f"no config class for {arch}: transformers {_tf_version()} maps no model_type to it, the "
                      f"pinned vLLM's config registry has none for it and the plugin's config bridges define "
                      f"{sorted(bridges) or 'none'} (a remote-code model, or a model type the pinned transformers "
                      "lacks without a config bridge: P2)")


def _config_class_of(cls_name):
    from transformers import CONFIG_MAPPING

    types = _hf_model_types(cls_name) if cls_name else []
    return CONFIG_MAPPING[types[0]] if types and types[0] in CONFIG_MAPPING else None


def _tiny_module():
    sys.path.insert(0, HERE)
    import runtime_tiny

    return runtime_tiny


def _sub_architectures(tiny):
    """A language sub-config without ``architectures`` gets its causal-LM class, as a real
    checkpoint's config.json has it (BLIP-2's default OPT ``text_config`` has none; vLLM builds the
    language model from it with ``init_vllm_registered_model``)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    for key in _tiny_module()._TEXT_KEYS:
        sub = tiny.get(key)
        if isinstance(sub, dict) and not sub.get("architectures"):
            name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(sub.get("model_type"))
            if isinstance(name, str):
                sub["architectures"] = [name]


def _mm_module():
    """``runtime_mm.py`` (images through the vision tower), loaded by path like ``runtime_tiny``."""
    sys.path.insert(0, HERE)
    import runtime_mm

    return runtime_mm


def _write_tiny_config(arch, cfg_cls, workdir, base=None):
    """The tiny config of ``arch``: from the model's real config.json when given (``--hf-config``),
    else from the config class's defaults."""
    source = cfg_cls.from_dict(base).to_dict() if base else cfg_cls().to_dict()
    tiny = _tiny_module().tiny_config(source)
    _mm_module().shrink_vision_geometry(tiny)
    tiny["architectures"] = [arch]
    tiny.pop("transformers_version", None)
    _sub_architectures(tiny)
    cfg = cfg_cls.from_dict(tiny)
    cfg.architectures = [arch]
    cfg.save_pretrained(workdir)
    return cfg


# --------------------------------------------------------------------------------------------
# checkpoint


def _checkpoint_names(hf_model):
    """State-dict names as a saved Hugging Face checkpoint spells them (transformers' own reverse
    of ``_checkpoint_conversion_mapping``, as ``save_pretrained`` applies it)."""
    import re

    mapping = getattr(hf_model, "_checkpoint_conversion_mapping", None) or {}
    reverse = {v: k for k, v in mapping.items()}
    out = {}
    for key, tensor in hf_model.state_dict().items():
        new = key
        for pattern, replacement in reverse.items():
            replacement = re.sub(r"\(.*\)", "", replacement.lstrip("^"))
            new, n = re.subn(pattern, replacement, key)
            if n:
                break
        out[new] = tuple(tensor.shape)
    return out


def _text_config(cfg):
    getter = getattr(cfg, "get_text_config", None)
    return getter() if getter else cfg


def make_checkpoint(arch, cfg, seed, alt=None):
    """Random tensors (fixed seed) with the names and shapes of the Hugging Face class of ``arch``
    (else of ``alt``, the class a peer architecture is registered to); None when this transformers
    lacks both."""
    import torch
    import transformers

    hf_cls = getattr(transformers, arch, None) or (getattr(transformers, alt, None) if alt else None)
    if hf_cls is None:
        return None
    try:
        with torch.device("meta"):
            hf = hf_cls(cfg)
    except NotImplementedError:  # a layer computes in __init__ (HF's XIELU reads .item()): build it for real, tiny
        hf = hf_cls(cfg)
    shapes = _checkpoint_names(hf)
    # the text config decides (vLLM builds the language model from it); a composite config's own
    # top-level flag is PretrainedConfig's default True even where the text model is untied (llava)
    if getattr(_text_config(cfg), "tie_word_embeddings", False):
        shapes = {k: v for k, v in shapes.items() if not k.endswith("lm_head.weight")}
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(shapes):
        shape = shapes[name]
        t = torch.randn(shape, generator=gen, dtype=torch.float32) * 0.1
        if len(shape) == 1 and "norm" in name and name.endswith("weight"):
            t = t + 1.0
        out[name] = t.contiguous()
    return out


# --------------------------------------------------------------------------------------------
# the levels


# Native torch code for every custom op, except the unquantized fused MoE: its native path is the
# Triton (GPU) kernel, its CPU path is plain torch (per-expert F.linear) in the CUDA wheel too.
CUSTOM_OPS = ("none", "+unquantized_fused_moe")


def _runner(workdir):
    """``pooling`` for an architecture whose name vLLM reads as a pooling model (``*Model``,
    ``*ForSequenceClassification``, ...), else ``auto``. vLLM registers e.g. ``LlamaModel`` as
    ``LlamaForCausalLM``; its checkpoints (embedding models, no ``model.`` prefix, no head) are
    served as pooling models (a Sentence Transformers config or ``--runner pooling``), whose adapter
    loads the bare names. The same decision on both sides."""
    try:
        from vllm.config.model import try_match_architecture_defaults
        with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
            archs = json.load(f).get("architectures") or []
        match = try_match_architecture_defaults(archs[0]) if archs else None
    except Exception:
        return "auto"
    return "pooling" if match and match[1][0] == "pooling" else "auto"


def _vllm_config(workdir):
    import torch
    from vllm.config import CompilationConfig, DeviceConfig, ModelConfig, VllmConfig

    mc = ModelConfig(model=workdir, tokenizer=None, skip_tokenizer_init=True, dtype=torch.float32,
                     enforce_eager=True, seed=0, max_model_len=256, runner=_runner(workdir))
    return VllmConfig(model_config=mc, device_config=DeviceConfig(device="cpu"),
                      compilation_config=CompilationConfig(custom_ops=list(CUSTOM_OPS)))


def _resolved_class(vc):
    """The class vLLM itself would build for the config (its registry, pooling adapters included)."""
    from vllm.model_executor.model_loader.utils import get_model_architecture

    return get_model_architecture(vc.model_config)[0]


class _GpuOnlyOp:
    """Stands for a compiled ``torch.ops._C`` op this wheel lacks (the CUDA wheel's ``_C`` does not
    load without a GPU driver). Layers such as 0.13.0's ``GeluAndMul``/``NewGELU`` look theirs up in
    ``__init__`` on the CPU platform and then run ``forward_native`` (custom ops "none"), so the
    lookup must not fail; a call means the native path was not taken and is reported as needing a GPU."""

    def __init__(self, name):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise NeedsGpu(f"compiled op _C.{self.name}")


class _missing_c_ops_as_gpu_only:
    """While a model is built: an absent ``torch.ops._C.<op>`` is a :class:`_GpuOnlyOp` (the same
    on both sides); the names looked up are kept for the report's notes."""

    def __enter__(self):
        from torch._ops import _OpNamespace

        self.cls, self.orig, self.names = _OpNamespace, _OpNamespace.__getattr__, []
        orig, names = self.orig, self.names

        def getattr_(ns, op_name):
            try:
                return orig(ns, op_name)
            except AttributeError:
                if ns.name != "_C" or op_name.startswith("__"):
                    raise
                names.append(op_name)
                return _GpuOnlyOp(op_name)

        _OpNamespace.__getattr__ = getattr_
        return self

    def __exit__(self, *exc):
        self.cls.__getattr__ = self.orig
        return False


def _source_of(model):
    """The file of the model class that was built (past vLLM's generated pooling adapters), so the
    report shows which code each side ran."""
    import inspect

    for klass in type(model).__mro__:
        if "adapters" not in klass.__module__.split("."):
            try:
                return inspect.getsourcefile(klass)
            except TypeError:
                return None
    return None


def _construct(cls, vc, notes=None):
    import torch
    from vllm.config import set_current_vllm_config

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        with set_current_vllm_config(vc), torch.device("cpu"), _missing_c_ops_as_gpu_only() as ops:
            model = cls(vllm_config=vc, prefix="")
    finally:
        torch.set_default_dtype(old)
    if ops.names and notes is not None:
        notes.append("compiled ops looked up at build, absent from this wheel (their native torch path runs): "
                     + ", ".join(sorted(set(ops.names))))
    return model


def _suffix_index(names):
    index = {}
    for name in names:
        parts = name.split(".")
        for i in range(len(parts)):
            index.setdefault(".".join(parts[i:]), []).append(name)
    return index


def _ckpt_name(name, index):
    """The checkpoint tensor a vLLM parameter name corresponds to: the longest dotted suffix of
    ``name`` that ends exactly one checkpoint name (prefixes such as ``language_model.`` differ)."""
    parts = name.split(".")
    for i in range(len(parts) - 1):
        found = index.get(".".join(parts[i:]), [])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return None
    return None


def _packed(model):
    packed = {}
    for mod in model.modules():
        packed.update(getattr(mod, "packed_modules_mapping", None) or {})
    return packed


def _same_values(want, got):
    """The same values in another order (a loader that permutes a tensor, e.g. per head)."""
    import torch

    return want.numel() == got.numel() and torch.equal(torch.sort(want.flatten().float())[0],
                                                       torch.sort(got.flatten().float())[0])


def check_loaded(model, ckpt, reported):
    """Every parameter written (NaN-filled before loading), and each equal to its checkpoint tensor or,
    for fused parameters, to the concatenation of its parts. Returns (problems, stats); the stats'
    ``reordered`` lists parameters holding their checkpoint values in another order (the caller
    decides against the pinned loader whether that order is right)."""
    import torch

    params = dict(model.named_parameters())
    problems = []
    unloaded = [n for n, p in params.items() if p.is_floating_point() and torch.isnan(p.data).any()]
    if unloaded:
        problems.append(f"{len(unloaded)} parameter(s) not (fully) loaded: {', '.join(sorted(unloaded)[:8])}")
    if reported is not None:
        missing = sorted(set(params) - set(reported))
        if missing and not unloaded:
            problems.append(f"load_weights did not report {len(missing)} parameter(s): {', '.join(missing[:8])}")
    index = _suffix_index(ckpt)
    packed = _packed(model)
    equal = fused = unchecked = 0
    reordered = []
    for name, p in params.items():
        if name in unloaded:
            continue
        key = _ckpt_name(name, index)
        if key is not None and tuple(ckpt[key].shape) == tuple(p.shape):
            if not torch.equal(ckpt[key], p.data.to(ckpt[key].dtype)):
                if _same_values(ckpt[key], p.data):
                    reordered.append(name)
                else:
                    problems.append(f"{name} differs from its checkpoint tensor {key}")
            equal += 1
            continue
        pieces = name.split(".")
        fused_at = next((i for i, piece in enumerate(pieces) if piece in packed), None)
        if fused_at is None:
            unchecked += 1
            continue
        keys = [_ckpt_name(".".join(pieces[:fused_at] + [part] + pieces[fused_at + 1:]), index)
                for part in packed[pieces[fused_at]]]
        if None in keys:
            unchecked += 1
            continue
        want = torch.cat([ckpt[k] for k in keys], 0)
        if tuple(want.shape) != tuple(p.shape):
            unchecked += 1
            continue
        if not torch.equal(want, p.data.to(want.dtype)):
            if _same_values(want, p.data):
                reordered.append(name)
            else:
                problems.append(f"{name} is not the concatenation of its checkpoint parts {keys}")
        fused += 1
    in_ckpt = sum(t.numel() for n, t in ckpt.items() if not n.endswith("rotary_emb.inv_freq"))
    in_params = sum(p.numel() for p in params.values())
    stats = {"parameters": len(params), "equal": equal, "fused_equal": fused, "unchecked": unchecked,
             "reordered": reordered, "checkpoint_tensors": len(ckpt), "checkpoint_values": in_ckpt, "parameter_values": in_params}
    if not unloaded and in_ckpt > in_params:  # tensors of layers the model does not build are no loss
        unbuilt = _mm_module().unbuilt_tensors(model, list(ckpt))
        stats["not_built"] = len(unbuilt)
        in_ckpt -= sum(ckpt[n].numel() for n in unbuilt)
    if not unloaded and in_ckpt > in_params:
        problems.append(f"the checkpoint holds {in_ckpt - in_params} more values than the model's parameters: "
                        "some checkpoint tensors were not loaded")
    return problems, stats


def _load(model, ckpt, vc, pinned_loader=None, notes=None):
    """Load ``ckpt`` through the model's ``load_weights`` and check it (:func:`check_loaded`).
    A parameter holding its checkpoint values in another order is right only where the pinned
    vLLM's own class of the architecture (``pinned_loader()``: its parameters after loading the
    same checkpoint) orders them the same way; with no such class (a model new to the pin) the
    order is left to ``match``, and a note says so."""
    import torch
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader.utils import process_weights_after_loading

    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.data.fill_(float("nan"))
    with set_current_vllm_config(vc):
        reported = model.load_weights(iter([(k, v.clone()) for k, v in ckpt.items()]))
    problems, stats = check_loaded(model, ckpt, reported)
    reordered = stats.pop("reordered")
    cache = []

    def pinned_params():
        if not cache:
            try:
                cache.append(pinned_loader() if pinned_loader else None)
            except Exception as exc:  # the pinned class does not build from this config: nothing to compare with
                cache.append(None)
                if notes is not None:
                    notes.append(f"the pinned vLLM's own class could not be built to compare with: {type(exc).__name__}")
        return cache[0]

    leftover = [m for m in problems if m.startswith("the checkpoint holds")]
    if leftover and len(problems) == 1:
        # vLLM builds fewer layers than a checkpoint holds on purpose (a vision tower cut at
        # vision_feature_layer): the same count as the pinned vLLM's own class is right
        expected = pinned_params()
        if expected is not None and sum(t.numel() for t in expected.values()) == stats["parameter_values"]:
            problems = []
            if notes is not None:
                notes.append(leftover[0] + "; exactly as many as the pinned vLLM's own class leaves unloaded")
    if reordered and not problems:
        expected = pinned_params()
        params = dict(model.named_parameters())
        if expected is None:
            stats["reordered_unchecked"] = len(reordered)
            if notes is not None:
                notes.append(f"{len(reordered)} parameter(s) hold their checkpoint values reordered (e.g. "
                             f"{reordered[0]}); no pinned class to compare the order with, match decides")
        else:
            wrong = [n for n in reordered if n not in expected or tuple(expected[n].shape) != tuple(params[n].shape)
                     or not torch.equal(expected[n], params[n].data.to(expected[n].dtype))]
            problems += [f"{n} differs from its checkpoint tensor and from the pinned vLLM's own loading of it"
                         for n in wrong[:8]]
            stats["reordered_as_pinned_loader"] = len(reordered) - len(wrong)
            if not wrong and notes is not None:
                notes.append(f"{len(reordered)} parameter(s) hold their checkpoint values reordered (e.g. {reordered[0]}), "
                             "exactly as the pinned vLLM's own class loads them")
    if problems:
        raise LevelError("; ".join(problems))
    with set_current_vllm_config(vc):
        process_weights_after_loading(model, vc.model_config, torch.device("cpu"))
    return stats


def _stateful_layers(model):
    """Mamba / linear-attention layers (vLLM's ``MambaBase``): their scans are Triton kernels and,
    without their own attention metadata (which only the GPU runner builds), vLLM's forward skips
    them as in a profiling run, leaving uninitialised output. Such a forward proves nothing."""
    try:
        from vllm.model_executor.layers.mamba.abstract import MambaBase
    except Exception:
        return []
    return sorted({type(m).__name__ for m in model.modules() if isinstance(m, MambaBase)})


def _forward(model, vc, cfg, ids_list):
    import torch
    from vllm.forward_context import set_forward_context

    stateful = _stateful_layers(model)
    if stateful:
        raise NeedsGpu(f"{', '.join(stateful)}: Triton scans, run only with the GPU runner's metadata")

    ids = torch.tensor(ids_list, dtype=torch.long)
    n = ids.shape[0]
    pos = torch.arange(n)
    if getattr(vc.model_config, "uses_mrope", False):  # what vLLM's runner decides from the config
        pos = pos.unsqueeze(0).expand(3, n).contiguous()
    notes = []
    with torch.no_grad(), set_forward_context(None, vc, num_tokens=n):
        hidden = model(input_ids=ids, positions=pos)
        if isinstance(hidden, tuple):
            hidden = hidden[0]
        pooling = getattr(model, "is_pooling_model", False) or not hasattr(model, "compute_logits")
        logits = hidden if pooling else model.compute_logits(hidden)
        if pooling:
            notes.append("pooling model: hidden states compared instead of logits")
        if logits is None or not torch.isfinite(logits).all():
            raise LevelError("logits are not finite" if logits is not None else "compute_logits returned None")
        lm_getter = getattr(model, "get_language_model", None)
        if getattr(model, "supports_multimodal", False) and lm_getter is not None:
            lm = lm_getter()
            if lm is None:
                raise LevelError("get_language_model() returned None: the multimodal path has no language model "
                                 "('NoneType' object has no attribute 'embed_input_ids' at the first image)")
            embed = getattr(model, "embed_input_ids", None) or getattr(model, "get_input_embeddings", None)
            embeds = embed(ids)
            hidden2 = model(input_ids=None, positions=pos, inputs_embeds=embeds)
            if isinstance(hidden2, tuple):
                hidden2 = hidden2[0]
            logits2 = hidden2 if pooling else model.compute_logits(hidden2)
            if not torch.allclose(logits, logits2, atol=1e-5, rtol=0):
                raise LevelError("logits through inputs_embeds (embed_input_ids) differ from logits through input_ids")
            notes.append("get_language_model()/embed_input_ids path ok")
    return logits.float(), notes


# --------------------------------------------------------------------------------------------
# one architecture


def _save_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def _levels():
    return {lv: {"status": "skipped", "reason": "an earlier level failed"} for lv in LEVELS}


def _skip_from(res, level, reason):
    """``level`` skipped for ``reason``; the later levels were not run because of that, not a failure."""
    later = False
    for lv in LEVELS:
        if lv == level:
            res["levels"][lv] = {"status": "skipped", "reason": reason}
            later = True
        elif later:
            res["levels"][lv] = {"status": "skipped", "reason": f"not run: {level} was skipped"}


def _builtin_class(registry, arch):
    """The pinned vLLM's own class of ``arch`` (before the migrated one replaces it), else None."""
    entry = registry.models.get(arch) if isinstance(getattr(registry, "models", None), dict) else None
    if entry is None or str(getattr(entry, "module_name", "")).startswith("vllm_fl"):
        return None
    try:
        return entry.load_model_cls()
    except Exception:
        return None


def _builtin_loaded(cls, ckpt, work):
    """Parameters of the pinned vLLM's own ``cls`` after loading ``ckpt`` (None without one)."""
    if cls is None:
        return None
    import torch
    from vllm.config import set_current_vllm_config

    vc = _vllm_config(work)  # its own compilation config: layer names do not clash with the migrated model's
    model = _construct(cls, vc)
    with set_current_vllm_config(vc):
        model.load_weights(iter([(k, v.clone()) for k, v in ckpt.items()]))
    return {n: p.data.detach().clone() for n, p in model.named_parameters() if isinstance(p.data, torch.Tensor)}


def _builtin_fails_alike(builtin, exc, req, spec):
    """When the migrated class fails to build, the pinned vLLM's own class of the architecture on
    the same tiny config: failing with the same error, the config is what is short (a field every
    real checkpoint's config.json carries but the class's defaults lack, e.g. ChatGLM's
    ``original_rope``), not the migration. The reason to skip with, else None."""
    if builtin is None:
        return None
    work = os.path.join(req["workdir"], spec.get("id", spec["architecture"]))
    try:
        _construct(builtin, _vllm_config(work))
    except BaseException as exc2:
        if type(exc2) is type(exc) and str(exc2) == str(exc):
            return (f"the pinned vLLM's own {builtin.__name__} fails the same way here "
                    f"({type(exc).__name__}: {str(exc)[:200]}): not the migration's (the tiny config from the class's "
                    "defaults, or this CPU setup); pass --hf-config with a real config.json")
    return None


def run_pinned(req, spec):
    """import -> construct -> load -> forward of the migrated class; artifacts into workdir/<arch>."""
    import importlib

    import torch

    arch = spec["architecture"]
    work = os.path.join(req["workdir"], spec.get("id", arch))
    os.makedirs(work, exist_ok=True)
    res = {"architecture": arch, "levels": _levels(), "first_error": None, "stats": {}, "notes": []}
    level = "import"
    try:
        mod = importlib.import_module(spec["module"])
        cls = getattr(mod, spec["class"], None)
        if cls is None:
            raise LevelError(f"module {spec['module']} has no class {spec['class']}")
        res["levels"]["import"] = {"status": "pass", "reason": None}

        level = "construct"
        builtin = None
        bridges = _bridge_classes(req.get("config_modules"))
        for mt, bcls in bridges.items():
            _register_bridge(mt, bcls)
        cfg_cls = _config_class(arch, bridges, spec.get("model_type"), spec.get("class"), res["notes"])
        cfg = _write_tiny_config(arch, cfg_cls, work, spec.get("base_config"))
        # a peer architecture built from its class's config takes that class's checkpoint names too
        peer = spec.get("class") if cfg_cls is _config_class_of(spec.get("class")) else None
        ckpt = make_checkpoint(arch, cfg, int(req.get("seed", 0)), peer)
        if ckpt is None and os.path.exists(os.path.join(work, "model.safetensors")):
            from safetensors.torch import load_file

            ckpt = load_file(os.path.join(work, "model.safetensors"))
            res["notes"].append("checkpoint names from the reference venv's transformers")
        if ckpt is not None:
            from safetensors.torch import save_file

            save_file(ckpt, os.path.join(work, "model.safetensors"))
        from vllm import ModelRegistry

        builtin = _builtin_class(ModelRegistry, arch)
        ModelRegistry.register_model(arch, cls)
        vc = _vllm_config(work)
        _init_distributed(vc)
        model = _construct(_resolved_class(vc), vc, res["notes"])
        model.eval()
        res["model_file"] = _source_of(model)
        res["levels"]["construct"] = {"status": "pass", "reason": None}

        level = "load"
        if ckpt is None:
            res["needs_checkpoint"] = True
            res["levels"]["load"] = {"status": "skipped", "reason": f"transformers {_tf_version()} has no {arch} to "
                                     "take checkpoint names from; pass --reference-python"}
            res["levels"]["forward"] = {"status": "skipped", "reason": "no checkpoint"}
            return res
        res["stats"]["load"] = _load(model, ckpt, vc, lambda: _builtin_loaded(builtin, ckpt, work), res["notes"])
        res["levels"]["load"] = {"status": "pass", "reason": None}

        level = "forward"
        tiny = _tiny_module()
        text = _text_config(cfg)
        ids = tiny.prompt_ids(int(text.vocab_size), int(req.get("num_tokens", 12)),
                              tiny.special_ids(cfg.to_dict()), int(req.get("seed", 0)))
        _save_json(os.path.join(work, "ids.json"), ids)
        logits, notes = _forward(model, vc, cfg, ids)
        res["notes"].extend(notes)
        torch.save(logits, os.path.join(work, "logits.pt"))
        image = None
        if getattr(model, "supports_multimodal", False):  # one image through the tower (runtime_mm)
            image = _mm_module().pinned_image_forward(model, vc, cfg, ids, work, LevelError)
        res["levels"]["forward"] = {"status": "pass", "reason": image}
    except NeedsGpu as exc:
        _skip_from(res, level, f"needs GPU ({exc})")
    except Unavailable as exc:
        _skip_from(res, level, str(exc))
    except BaseException as exc:  # the model's own errors are the findings
        op = gpu_only_op(exc) if level == "forward" else None
        same = _builtin_fails_alike(builtin, exc, req, spec) if level == "construct" else None
        if op:
            _skip_from(res, level, f"needs GPU ({op})")
        elif same:
            _skip_from(res, level, same)
        else:
            res["levels"][level] = {"status": "fail", "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
            res["first_error"] = _describe(level, exc)
    return res


def _tf_version():
    import transformers

    return transformers.__version__


def run_reference(req, spec):
    """The same tiny config, checkpoint and tokens through upstream vLLM (else Hugging Face)."""
    import torch

    arch = spec["architecture"]
    work = os.path.join(req["workdir"], spec.get("id", arch))
    res = {"architecture": arch, "reference": None, "notes": [], "error": None}
    from safetensors.torch import load_file

    if spec.get("make_checkpoint"):
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(work)
        ckpt = make_checkpoint(arch, cfg, int(req.get("seed", 0)))
        if ckpt is None:
            res["error"] = f"transformers {_tf_version()} has no {arch} either"
            return res
        from safetensors.torch import save_file

        save_file(ckpt, os.path.join(work, "model.safetensors"))
        res["checkpoint"] = True
        return res
    ckpt = load_file(os.path.join(work, "model.safetensors"))
    with open(os.path.join(work, "ids.json"), encoding="utf-8") as f:
        ids = json.load(f)
    import vllm

    image_diff = None
    try:
        from vllm.model_executor.models.registry import ModelRegistry

        if ModelRegistry._try_load_model_cls(arch) is None:
            raise LevelError(f"upstream vLLM has no {arch}")
        vc = _vllm_config(work)
        _init_distributed(vc)
        model = _construct(_resolved_class(vc), vc, res["notes"]).eval()
        res["model_file"] = _source_of(model)
        _load(model, ckpt, vc)
        from transformers import AutoConfig

        logits, _ = _forward(model, vc, vc.model_config.hf_config, ids)
        try:
            image_diff = _mm_module().reference_image_diff(model, vc, work, LevelError)
        except Exception as exc:  # the upstream side's image path: the text prefill still compares
            res["notes"].append(f"image not compared: upstream {type(exc).__name__}: {str(exc)[:200]}")
        res["reference"] = f"vllm-{vllm.__version__}"
    except BaseException as exc:
        op = gpu_only_op(exc)
        res["notes"].append(f"upstream vLLM {vllm.__version__} could not run it on CPU "
                            f"({op or type(exc).__name__ + ': ' + str(exc)[:200]}); Hugging Face reference used")
        if os.path.exists(os.path.join(work, _mm_module().IDS_FILE)):
            res["notes"].append("image not compared: the Hugging Face reference runs the text prefill only")
        try:
            logits, res["model_file"] = _hf_logits(arch, work, ids)
            res["reference"] = f"transformers-{_tf_version()}"
        except BaseException as exc2:
            res["error"] = f"{type(exc2).__name__}: {str(exc2)[:300]}"
            res["traceback_tail"] = _tail(exc2)
            return res
    torch.save(logits, os.path.join(work, "logits_ref.pt"))
    pinned = torch.load(os.path.join(work, "logits.pt"))
    if pinned.shape != logits.shape:
        res["error"] = f"logit shapes differ: pinned {tuple(pinned.shape)}, reference {tuple(logits.shape)}"
        return res
    res["max_abs_logit_diff"] = float((pinned - logits).abs().max())
    if image_diff is not None:  # the prefill with the image counts as much as the text one
        res["notes"].append(f"with one image: max |Δlogit| {image_diff:.3g}")
        res["max_abs_logit_diff"] = max(res["max_abs_logit_diff"], image_diff)
    return res


def _hf_logits(arch, work, ids):
    import torch
    import transformers

    hf_cls = getattr(transformers, arch, None)
    if hf_cls is None:
        raise LevelError(f"transformers {transformers.__version__} has no {arch}")
    model = hf_cls.from_pretrained(work, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]))
    out = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
    return out[0].float(), _source_of(model)


# --------------------------------------------------------------------------------------------
# process handling


def _die_with_parent(parent):
    """Linux: SIGKILL this process when its parent (pid ``parent``) exits, however it exits (SIGKILL
    included), so no worker outlives the verify run that started it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        return
    if parent and os.getppid() != parent:  # the parent died before the call: the signal will not come
        os._exit(1)


def _child(req, spec, wfd, parent):
    os.setpgid(0, 0)
    _die_with_parent(parent)
    try:
        res = (run_reference if req["mode"] == "reference" else run_pinned)(req, spec)
    except BaseException as exc:
        res = {"architecture": spec["architecture"], "crash": _describe("worker", exc)}
    res["id"] = spec.get("id", spec["architecture"])
    data = json.dumps(res, default=str).encode("utf-8")
    view = memoryview(data)
    while view:
        n = os.write(wfd, view)
        view = view[n:]
    os.close(wfd)
    os._exit(0)


def _run_one(req, spec, timeout):
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            _child(req, spec, wfd, parent)
        finally:
            os._exit(70)
    os.close(wfd)
    deadline = time.monotonic() + timeout
    chunks = []
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([rfd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    if timed_out:
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except OSError:
                pass
    _, status = os.waitpid(pid, 0)
    os.close(rfd)
    try:
        os.killpg(pid, signal.SIGKILL)  # grandchildren (none expected) never outlive the run
    except OSError:
        pass
    raw = b"".join(chunks)
    if raw and not timed_out:
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            pass
    why = "did not finish in time" if timed_out else (
        f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exited with {os.WEXITSTATUS(status)}")
    return {"architecture": spec["architecture"], "id": spec.get("id", spec["architecture"]),
            "crash": {"level": "worker", "type": "Crashed",
                                                             "message": f"the run {why}", "traceback_tail": ""}}


def main():
    """Heavy imports first, then the request: the host starts the reference worker while the
    pinned one still runs and sends it the request (which needs the pinned artifacts) later."""
    try:
        host = int(os.environ.get("MMF_RUNTIME_HOST_PID") or 0)
    except ValueError:
        host = 0
    _die_with_parent(host)
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    t0 = time.monotonic()
    env_error = None
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import vllm

        _platform_cpu()
        patched = _reference_attention()
        _cpu_gemm_keeps_conv_weights()
    except BaseException as exc:
        env_error = _describe("environment", exc)
    ready = {"event": "ready", "seconds": round(time.monotonic() - t0, 2), "python": sys.version.split()[0]}
    if env_error:
        ready["environment_error"] = env_error
    else:
        ready.update(vllm=vllm.__version__, transformers=transformers.__version__, attention_patched=patched)
    proto.write(json.dumps(ready) + "\n")
    proto.flush()
    if env_error is None:
        req = json.load(sys.stdin)
        for entry in reversed(req.get("sys_path") or []):
            sys.path.insert(0, entry)
        _namespace(req.get("namespace_packages"))
        _preload(req)
        import gc

        gc.collect()
        gc.freeze()
        for spec in req.get("architectures") or []:
            res = _run_one(req, spec, float(req.get("timeout") or 600))
            proto.write(json.dumps({"event": "result", **res}, default=str) + "\n")
            proto.flush()
    proto.write(json.dumps({"event": "done"}) + "\n")
    proto.close()


if __name__ == "__main__":
    main()
