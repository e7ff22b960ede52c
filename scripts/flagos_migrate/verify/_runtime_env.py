"""The worker's environment (part of ``_runtime_worker.py``): vLLM on CPU, either version.

Standard library only at import and no ``flagos_migrate`` imports, like every ``_runtime_*`` module:
the worker runs by path inside a foreign venv (the pinned or the upstream vLLM) and imports these
modules by bare name from its own directory.

What is here: the exceptions a level ends with; the error description the report carries; which
GPU-only op an exception points to; forcing the CPU platform, namespace plugin packages (their
``__init__`` may import GPU-only packages), world size 1 over gloo; the ``VllmConfig`` of a tiny
model (fp32, eager, native custom ops) and building a class from it, with absent compiled ``_C``
ops standing in as GPU-only.
"""

import json
import os
import sys
import traceback

MAX_MESSAGE = 2000


TAIL_LINES = 12
# frames kept of a failure's traceback, innermost last: enough to reach the model class's own forward through
# torch's two call frames per module (left_findings ties a frame inside a finding's span to it)
FRAMES = 40


class LevelError(Exception):
    """A level failed for a reason found by a check (not an exception of the model code)."""


class NeedsGpu(Exception):
    """The layer's kernels exist only for GPUs; the level is skipped with this op named."""


class Unavailable(Exception):
    """What the level needs does not exist here (e.g. no config class for a remote-code model):
    the level is skipped with this reason, it did not fail."""


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
                   for f in traceback.extract_tb(exc.__traceback__)[-FRAMES:]],
    }


_GPU_MARKERS = ("triton", "cuda", "nvidia", "nccl", "_C.", "_C::", "'_C'", "_moe_C", "flash_attn", "deep_gemm")


def unset_attribute(exc):
    """``"Class.attr"`` when ``exc`` is an AttributeError on an object of a vLLM class that nothing the object ran can
    have assigned: no class of its MRO holds or assigns it (``self.attr =``), counting a base's ``__init__`` only when
    the class's own ``__init__`` chains to it (``super(`` or ``Base.__init__``). Upstream's own bug on any device
    (0.33.0's OpenPanguDecoderLayer never sets the use_sequence_parallel_moe DeepSeek's MTP layer reads;
    EagleMistralLarge3Model.__init__ calls nn.Module.__init__, skipping the DeepseekV2Model.__init__ that sets the
    is_fused_shared_expert_enabled its inherited load_weights reads), not the CPU's nor the migration's; else None."""
    import inspect
    import re

    obj, name = getattr(exc, "obj", None), getattr(exc, "name", None)
    if not isinstance(exc, AttributeError) or obj is None or not name \
            or not type(obj).__module__.startswith("vllm."):
        return None
    assigned = re.compile(r"\bself\." + re.escape(name) + r"\s*(?::[^=\n]*)?=(?!=)|setattr\(\s*self\s*,\s*['\"]"
                          + re.escape(name) + "['\"]")
    def source_and_init(cls):  # the class's source and its own __init__'s, read from the class body (a decorator
        import ast  # such as support_torch_compile replaces __init__ by a wrapper of its own source)
        import textwrap

        src = textwrap.dedent(inspect.getsource(cls))
        node = next((n for n in ast.parse(src).body if isinstance(n, ast.ClassDef)), None)
        init = next((f for f in getattr(node, "body", []) if isinstance(f, ast.FunctionDef) and f.name == "__init__"),
                    None)
        return src, (ast.get_source_segment(src, init) or "") if init is not None else None

    mro = type(obj).__mro__
    own_init = None  # the __init__ the object ran: its class's own, else the nearest base's
    for cls in mro:
        if name in vars(cls):
            return None
        try:
            src, init = source_and_init(cls)
        except (OSError, TypeError, SyntaxError):  # no source (torch's nn.Module is found by vars): unknown
            if cls.__module__.startswith("vllm."):
                return None
            continue
        if init is not None and own_init is None:
            own_init = init
        elif init is not None and not ("super(" in own_init or f"{cls.__name__}.__init__" in own_init):
            src = src.replace(init, "")  # a base's __init__ the object's own never ran
        if assigned.search(src):
            return None
    return f"{type(obj).__name__}.{name}"


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
    # an assertion in the pinned vLLM's CPU-only path of a layer (0.13.0's cpu_fused_moe.py: `assert not
    # apply_router_weight_on_input`, which Llama 4's MoE sets): the GPU path has the feature, the CPU one not
    last = frames[-1] if frames else None
    if (isinstance(exc, AssertionError) and last is not None and "/vllm/" in last.filename
            and os.path.basename(last.filename).startswith("cpu_")):
        return f"{os.path.basename(last.filename)}:{last.lineno} {(last.line or '').strip()}"
    return None


def cuda_only_refusal(exc):
    """A layer that refuses to be built off CUDA, saying so (0.13.0's FusedMoE: "is_act_and_mul=False is
    supported only for CUDA for now"): the layer named, else None. Narrower than :func:`gpu_only_op`,
    for the construct level, where a missing op may be the migration's."""
    low = str(exc).lower()
    if isinstance(exc, NotImplementedError) and "cuda" in low and ("only" in low or "not supported" in low):
        frames = traceback.extract_tb(exc.__traceback__)
        where = next((f"{os.path.basename(f.filename)}:{f.lineno}" for f in reversed(frames)), "?")
        return f"{str(exc)[:120]} ({where})"
    return None


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


TARGET_DIR = "target"  # a draft model's target config (``_runtime_config._write_target``)
SPECULATIVE_FILE = "speculative.json"


# architecture -> ModelConfig arguments a user serving it on this CPU machine passes (--mm-encoder-attn-backend, ...),
# the same on both sides. UnlimitedOCRForCausalLM: upstream's UnlimitedOCRForCausalLMConfig.verify_and_update_config
# (model_executor/models/config.py) sets the vision encoder's backend to FLASH_ATTN when the user left it unset, and
# the CPU platform refuses every vit backend but TORCH_SDPA (platforms/interface.py get_vit_attn_backend: "Backend
# FLASH_ATTN is not supported for vit attention"); the hook keeps a user's choice other than FLASHINFER, so TORCH_SDPA
# (CPU's own default, what the pinned side picks unset) is what upstream runs on CPU at all
ENGINE_ARGS: dict[str, dict[str, str]] = {
    "UnlimitedOCRForCausalLM": {"mm_encoder_attn_backend": "TORCH_SDPA"},
}


def _engine_args(workdir):
    """The ENGINE_ARGS entry of the config's first architecture (none when it cannot be read)."""
    try:
        with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
            archs = json.load(f).get("architectures") or []
    except (OSError, ValueError):
        return {}
    return dict(ENGINE_ARGS.get(archs[0], {})) if archs else {}


def _model_config(workdir, runner, overrides=None):
    import torch
    from vllm.config import ModelConfig

    def rewrite(hf_config):  # applied to the loaded config object, as SpeculativeConfig.hf_config_override is
        hf_config.update(dict(overrides))
        return hf_config

    # the tiny tokenizer written next to the config for a model that reads one while built (runtime_tokenizer)
    # (a tekken file: Mistral's own format, which both vLLMs read with tokenizer_mode mistral)
    tekken = os.path.isfile(os.path.join(workdir, "tekken.json"))
    tokenizer = workdir if tekken or os.path.isfile(os.path.join(workdir, "tokenizer.json")) else None
    kwargs = dict(model=workdir, tokenizer=tokenizer, skip_tokenizer_init=tokenizer is None, dtype=torch.float32,
                  **({"tokenizer_mode": "mistral"} if tekken else {}),
                  enforce_eager=True, seed=0, runner=runner, **({"hf_overrides": rewrite} if overrides else {}),
                  **_engine_args(workdir))
    try:
        return ModelConfig(max_model_len=MAX_MODEL_LEN, **kwargs)
    except ValueError as exc:  # pydantic's ValidationError is one
        if not _over_position_limit(exc):
            raise
    # a model whose positions end below it (CLIP's text tower: max_position_embeddings 77, SigLIP's 64): the
    # limit vLLM derives from the config, as a serve without --max-model-len takes it
    return ModelConfig(max_model_len=None, **kwargs)


# the context every model is built for (the prompts are a few dozen tokens), else the config's own position
# limit when that is lower
MAX_MODEL_LEN = 256


def _over_position_limit(exc):
    """``exc`` is vLLM's refusal of a max_model_len above the limit it derives from the config."""
    return "max_model_len" in str(exc) and "greater than the derived" in str(exc)


def _speculative(workdir, pc):
    """For a draft model (``workdir/target`` written): the target's ``ModelConfig`` and a
    ``SpeculativeConfig`` holding the draft's (``workdir``, already rewritten the way upstream's
    ``hf_config_override`` does), as vLLM's proposer has them when it builds the draft
    (``get_model(vllm_config=<the target's>, model_config=draft_model_config)``); else (None, None).
    The object is made through the method that needs no draft model (ngram) and then given the
    draft: the running vLLM's own rewrite may not know a draft the plugin brings (0.13.0's does not
    know nemotron_h_mtp), and the model only reads the fields set here."""
    from vllm.config import SpeculativeConfig

    spec_file = os.path.join(workdir, TARGET_DIR, SPECULATIVE_FILE)
    if not os.path.isfile(spec_file):
        return None, None
    with open(spec_file, encoding="utf-8") as f:
        want = json.load(f)
    target = _model_config(os.path.join(workdir, TARGET_DIR), "draft")
    spec = SpeculativeConfig(method="ngram", num_speculative_tokens=int(want.get("num_speculative_tokens") or 1),
                             target_model_config=target, target_parallel_config=pc)
    spec.method = want.get("method") or "mtp"
    spec.model = workdir
    spec.draft_model_config = _model_config(workdir, "draft", want.get("overrides"))
    _eagle_wrap(spec)
    spec.draft_parallel_config = pc
    spec.prompt_lookup_min = spec.prompt_lookup_max = 0
    return target, spec


# the methods whose draft config both vLLMs' SpeculativeConfig.__post_init__ (0.13.0 and 0.33.0) wrap in
# their EAGLEConfig (``config.model`` is the draft's own config: deepseek_eagle reads config.model.hidden_size)
EAGLE_WRAPPED = ("eagle", "eagle3")


def _eagle_wrap(spec):
    """The draft's hf_config wrapped in the running vLLM's ``EAGLEConfig`` for an EAGLE method, as its
    ``SpeculativeConfig`` does (skipped here: it is made through ngram, see :func:`_speculative`)."""
    if spec.method not in EAGLE_WRAPPED:
        return
    from vllm.transformers_utils.configs.eagle import EAGLEConfig

    mc = spec.draft_model_config
    if isinstance(mc.hf_config, EAGLEConfig):
        return
    wrapped = EAGLEConfig(mc.hf_config, method=spec.method, model_type="eagle")
    # the wrap renames an architecture without the method's prefix (PEagleDraftModel -> EaglePEagleDraftModel, a
    # class no vLLM registers): the harness's method guess from the name is not the checkpoint's then; unwrapped
    if list(getattr(wrapped, "architectures", None) or []) != list(getattr(mc.hf_config, "architectures", None) or []):
        return
    mc.hf_config = wrapped
    if hasattr(mc, "update_arch_"):  # 0.33.0 re-reads the architectures from the wrapped config
        mc.update_arch_()


def _vllm_config(workdir):
    from vllm.config import CompilationConfig, DeviceConfig, ParallelConfig, VllmConfig

    pc = ParallelConfig()
    target, spec = _speculative(workdir, pc)
    mc = target or _model_config(workdir, _runner(workdir))
    extra = {}
    if getattr(mc, "is_hybrid", False) and getattr(mc, "use_mla", False):
        # an MLA + Mamba hybrid (Bailing V3 VL): 0.33.0's CPU platform turns prefix caching off for MLA after the
        # hybrid hook aligned mamba_block_size to it, and its own validator then refuses the config
        # ("--mamba-block-size can only be set with --enable-prefix-caching"); off from the start, the state that
        # platform forces anyway (cpu.py), so the hook sizes the Mamba blocks for a run without prefix caching
        from vllm.config import CacheConfig

        extra["cache_config"] = CacheConfig(enable_prefix_caching=False)
    return VllmConfig(model_config=mc, parallel_config=pc, speculative_config=spec,
                      device_config=DeviceConfig(device="cpu"),
                      compilation_config=CompilationConfig(custom_ops=list(CUSTOM_OPS)), **extra)


def _resolved_class(vc):
    """The class vLLM itself would build for the config (its registry, pooling adapters included;
    a draft's from the draft's model config, as the proposer resolves it)."""
    from vllm.model_executor.model_loader.utils import get_model_architecture

    spec = getattr(vc, "speculative_config", None)
    mc = spec.draft_model_config if spec is not None and spec.draft_model_config is not None else vc.model_config
    return get_model_architecture(mc)[0]


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


# Modules a draft takes from the target, the flag False on its class: both vLLMs' proposers replace them with the
# target's (0.13.0 v1/spec_decode/eagle.py load_model, 0.33.0 llm_base_proposer.py _maybe_share_embeddings and
# _maybe_share_lm_head). With the class each is built with, (vocab_size, hidden_size), as a target builds it.
TARGET_LENT = (("has_own_embed_tokens", "model.embed_tokens"), ("has_own_lm_head", "lm_head"))
TARGET_LENT_CLASSES = {"model.embed_tokens": "VocabParallelEmbedding", "lm_head": "ParallelLMHead"}


def _attach_target_modules(model, vc, notes=None):
    """A draft built with a :data:`TARGET_LENT` module left ``None`` for the target to fill (NemotronH's MTP:
    ``embed_tokens`` and ``lm_head`` "must be shared from target model") gets one built as the target builds it,
    as its proposer assigns the target's; its tensors then travel beside the checkpoint like any lent module's
    (``_runtime_load.lent_by_target``), the same on both sides. Returns the paths given."""
    if getattr(vc, "speculative_config", None) is None:
        return []
    from vllm.model_executor.layers import vocab_parallel_embedding as vpe

    given = []
    for flag, path in TARGET_LENT:
        owner_path, _, attr = path.rpartition(".")
        try:
            owner = model.get_submodule(owner_path) if owner_path else model
        except AttributeError:
            continue
        if getattr(model, flag, None) is not False or not hasattr(owner, attr) or getattr(owner, attr) is not None:
            continue
        cfg = vc.speculative_config.draft_model_config.hf_config.get_text_config()
        setattr(owner, attr, getattr(vpe, TARGET_LENT_CLASSES[path])(cfg.vocab_size, cfg.hidden_size))
        given.append(path)
    note = (f"draft: built {', '.join(given)} as None for its proposer to share the target's ("
            + ", ".join(f"{f} False" for f, p in TARGET_LENT if p in given) + "): given one built as the "
            "target builds it, its tensors drawn beside the checkpoint, the same on both sides")
    if given and notes is not None and note not in notes:
        notes.append(note)
    return given


def _construct(cls, vc, notes=None):
    import torch
    from vllm.config import set_current_vllm_config

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        with set_current_vllm_config(vc), torch.device("cpu"), _missing_c_ops_as_gpu_only() as ops:
            model = cls(vllm_config=vc, prefix="")
            _attach_target_modules(model, vc, notes)
    finally:
        torch.set_default_dtype(old)
    if ops.names and notes is not None:
        notes.append("compiled ops looked up at build, absent from this wheel (their native torch path runs): "
                     + ", ".join(sorted(set(ops.names))))
    return model


def _tf_version():
    import transformers

    return transformers.__version__


def _save_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def _read_json(path, default):
    """What :func:`_save_json` wrote there, or ``default`` when nothing readable is."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default
