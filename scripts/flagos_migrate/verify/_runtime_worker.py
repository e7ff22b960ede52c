"""Standalone worker of ``runtime``: builds, loads and runs models under a *foreign* Python.

Runs inside a venv with vLLM (the pinned 0.13.0, or upstream for ``match``); imports only the
standard library, torch, transformers, vLLM and, by bare name from this directory, the stdlib-only
modules next to it: ``_runtime_env`` (CPU platform, vLLM config, construct), ``_runtime_config``
(tiny configs), ``_runtime_load`` (synthetic checkpoint, load check), ``_runtime_forward``
(reference attention, prefill), ``runtime_tiny`` and ``runtime_mm``. Nothing from ``flagos_migrate``.

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

import _runtime_logits
import _runtime_moe
import _runtime_pool
import runtime_mm
import runtime_tiny
import runtime_tokenizer
from _runtime_config import (
    _bridge_classes,
    _config_class,
    _config_class_of,
    _register_bridge,
    _text_config,
    _write_tiny_config,
    bridge_modules,
    hf_class_name,
    hf_config_for,
    register_model_config,
    register_synthesized,
)
from _runtime_env import (
    LevelError,
    NeedsGpu,
    Unavailable,
    _construct,
    _cpu_gemm_keeps_conv_weights,
    _describe,
    _init_distributed,
    _namespace,
    _platform_cpu,
    _preload,
    _read_json,
    _resolved_class,
    _save_json,
    _source_of,
    _tail,
    _tf_version,
    _vllm_config,
    cuda_only_refusal,
    gpu_only_op,
    unset_attribute,
)
from _runtime_forward import _forward, _hf_logits, _reference_attention, references_note
from _runtime_load import (
    Checkpoint,
    SpellingNotServed,
    _builtin_class,
    _load,
    lend_unwritten,
    lent_by_target,
    load_checkpoint,
    make_checkpoint,
    named_by_upstream,
    read_checkpoint,
    save_lent,
    served_spelling,
)
from reference_divergences import adjustments_for

LEVELS = ("import", "construct", "load", "forward")
UNLOADED_FILE = "unloaded_as_pinned.json"  # the pinned side's accepted unloaded parameters, for upstream's side
CHECKPOINT_SOURCE = "checkpoint_source.json"  # what named the checkpoint the reference side made


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


def _is_vllm_config(name):
    """Whether ``name`` is a config class of vLLM itself (``vllm.config``: PoolerConfig, ModelConfig, ...):
    a missing attribute there is the migrated code reading a pinned API that lacks it (colqwen3_5's vendored
    pooler reads ``PoolerConfig.get_tok_pooling_type``), never a value the tiny Hugging Face config lacks."""
    try:
        import vllm.config as vllm_config
    except Exception:
        return False
    return isinstance(getattr(vllm_config, name, None), type)


def _synth_lacks(res, exc, aliases=None, blocker=None):
    """A config the harness derived (synthesized, or a draft's or base class's config) without an
    attribute the model reads: the reason naming it (the config is the harness's, not the
    migration's), else None. ``aliases``: config class -> the transformers 5 aliases (P40) no config.json
    carries; the pinned class lacking one fails with every real checkpoint too, so that is no skip.
    ``blocker``: why no tiny config builds the architecture here (config_hints.SYNTH_BLOCKERS), said
    instead of the advice to pass a real config.json, which would not help."""
    import re

    source = res.get("config_source")
    m = re.search(r"'(\w*Config)' object has no attribute '(\w+)'", str(exc))
    if m and m.group(2) in ((aliases or {}).get(m.group(1)) or ()):
        return None
    # a bridge is transformers 5's own class, the one upstream runs with: a field it lacks is one only a real
    # config.json carries (nano_nemotron_vl reads config.patch_size, which NemotronH_Omni_Reasoning_V3_Config
    # does not declare), never a drift between the two transformers
    if source not in ("synthesized", "draft", "base class", "composed", "bridge") or not isinstance(exc, AttributeError) or not m:
        return None
    # a sub-config of the pinned transformers: P39 (unless the table says why no config builds the architecture:
    # step3p7's tower is the bridge's own transformers 5 sub-config)
    if source == "bridge" and m.group(1) != res.get("config_class") and not blocker:
        return None
    if _is_vllm_config(m.group(1)):  # vLLM's own config objects (PoolerConfig, ...) are the pinned API, not the tiny config
        return None
    if source == "synthesized":
        head = (f"the synthesized config has no value for {m.group(2)!r}: the model reads it, and neither the "
                "synthesis table nor a default in upstream's file values it")
        return f"{head}: {blocker}" if blocker else f"{head} (see the note); pass --hf-config with a real config.json"
    head = f"the {source} config ({m.group(1)}) has no {m.group(2)!r}, which the model reads"
    return f"{head}: {blocker}" if blocker else (f"{head} (a real checkpoint's config.json carries it); pass --hf-config "
                                                 "with a real config.json")


def _registered_bridges(bridges, req):
    """``bridges`` (model_type -> class) without what register_model() leaves to the checkpoint's own
    remote-code config (P2 remote_config_first: molmo2, step3p7): of a bridge module defining such a model type,
    only the model types register_model() registers (step3p7's module serves step3p5 too), so the config is built
    as a serve reads the checkpoint's, not from transformers 5's class of that model type or its sub-configs."""
    left = set(req.get("unregistered_bridges") or ())
    registered = set(req.get("registered_configs") or ())
    shadowing = {c.__module__ for mt, c in bridges.items() if mt in left}
    return {mt: c for mt, c in bridges.items() if c.__module__ not in shadowing or mt in registered}


def _register_siblings(registry, req, arch):
    """The record's other architectures and those of the plugin's other records (``registrations``), registered
    as the plugin's register() does (lazily, by "module:Class"), over the pinned registry's own entry when it has
    one: gemma4_unified builds Gemma4ForCausalLM by name, which only the plugin registers on 0.13.0, from its
    own record or from gemma4's when that model was migrated first; cohere2_vision builds Cohere2ForCausalLM by
    name, which the pinned registry serves with its own class unless the plugin registers upstream's (P43's
    answered_by: apply commandr), and a serve then builds the plugin's."""
    for other in (req.get("architectures") or []) + (req.get("registrations") or []):
        name = other.get("architecture")
        if name != arch:
            registry.register_model(name, f"{other['module']}:{other['class']}")


def _install_config_hooks(req, arch, notes):
    """The plugin's MODELS_CONFIG_MAP entry for ``arch`` (P25's vendored upstream hook), installed as its
    register_model() does, so the pinned VllmConfig runs it where a serve would; a hook that fails to import is
    what register_model()'s guarded block logs and goes on without."""
    import importlib

    for hook in req.get("config_hooks") or []:
        if hook.get("architecture") != arch:
            continue
        try:
            cls = getattr(importlib.import_module(hook["module"]), hook["class"])
        except Exception as exc:  # noqa: BLE001 - the plugin's guarded registration block catches everything
            notes.append(f"config hook: {hook['module']}.{hook['class']} failed to import ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); register_model() logs it and goes on without it")
            continue
        from vllm.model_executor.models.config import MODELS_CONFIG_MAP

        MODELS_CONFIG_MAP[arch] = cls
        notes.append(f"config hook: the plugin's {hook['class']} (register_model() maps {arch} to it)")


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
        bridges = _bridge_classes(bridge_modules(req.get("config_modules"), req.get("namespace_packages")))
        bridges = _registered_bridges(bridges, req)
        own = set(req["own_config_modules"] if "own_config_modules" in req else req.get("config_modules") or ())
        for mt, bcls in bridges.items():
            _register_bridge(mt, bcls)
        hints = spec.get("config_hints") or {}
        others = {k: v for k, v in _bridge_classes(req.get("plugin_config_modules"), tolerant=True).items()
                  if k not in bridges} if hints.get("draft") else {}
        cfg_cls, res["config_source"] = _config_class(arch, bridges, spec.get("model_type"), spec.get("class"),
                                                      res["notes"], hints, mod, lambda: others,
                                                      {mt: c for mt, c in bridges.items() if c.__module__ in own})
        res["config_class"] = getattr(cfg_cls, "__name__", None)
        cfg = _write_tiny_config(arch, cfg_cls, work, spec.get("base_config"),
                                 hasattr(cls, "get_mrope_input_positions"), res["notes"], hints, res["config_source"],
                                 bool(getattr(cls, "supports_multimodal", False)))
        # a peer architecture built from its class's config takes that class's checkpoint names too
        peer = spec.get("class") if cfg_cls is _config_class_of(spec.get("class")) else hf_class_name(arch)
        # named by the reference side after the pinned vLLM's own class refused this transformers' spelling
        ckpt = None if spec.get("reference_checkpoint") else make_checkpoint(arch, cfg, int(req.get("seed", 0)), peer)
        if ckpt is not None:
            import transformers

            res["checkpoint_source"] = f"transformers {_tf_version()} {arch if hasattr(transformers, arch) else peer}"
        elif os.path.exists(os.path.join(work, "model.safetensors")):
            ckpt = read_checkpoint(work)
            res["checkpoint_source"] = _read_json(os.path.join(work, CHECKPOINT_SOURCE), "the reference venv")
        if res.get("checkpoint_source"):
            res["notes"].append(f"checkpoint: {res['checkpoint_source']}")
        from safetensors.torch import save_file

        if ckpt is not None:
            save_file(ckpt, os.path.join(work, "model.safetensors"))
        from vllm import ModelRegistry

        builtin = _builtin_class(ModelRegistry, arch)
        _register_siblings(ModelRegistry, req, arch)
        ModelRegistry.register_model(arch, cls)
        _install_config_hooks(req, arch, res["notes"])
        vc = _vllm_config(work)
        _init_distributed(vc)
        model = _construct(_resolved_class(vc), vc, res["notes"])
        model.eval()
        res["model_file"] = _source_of(model)
        # the classes the built model is: a registered class whose __new__ builds another is not among them
        res["model_classes"] = [k.__name__ for k in type(model).__mro__]
        res["levels"]["construct"] = {"status": "pass", "reason": None}

        level = "load"
        if ckpt is None:
            res["needs_checkpoint"] = True
            res["levels"]["load"] = {"status": "skipped", "reason": f"transformers {_tf_version()} has no {arch} to "
                                     "take checkpoint names from; pass --reference-python (its transformers, else "
                                     "upstream vLLM's own class, names it)"}
            res["levels"]["forward"] = {"status": "skipped", "reason": "no checkpoint"}
            return res
        try:
            res["stats"]["load"], loaded = load_checkpoint(model, ckpt, vc, builtin, work, res["notes"])
        except SpellingNotServed as exc:
            if spec.get("reference_checkpoint"):  # the reference's names fail here: the migrated load's own error
                raise exc.__cause__ from None
            res["needs_checkpoint"] = True
            res["notes"].append(f"checkpoint: {exc}; the reference side names it")
            res["levels"]["load"] = {"status": "skipped", "reason": f"{exc}; pass --reference-python (upstream vLLM's "
                                     "own class judges the reference transformers' spelling, else names it)"}
            res["levels"]["forward"] = {"status": "skipped", "reason": "no checkpoint"}
            return res
        # upstream's side leaves unloaded only what the pinned side judged against the pinned vLLM's own class
        _save_json(os.path.join(work, UNLOADED_FILE), res["stats"]["load"].get("unloaded_as_pinned") or [])
        if loaded is not ckpt:  # the spelling the pinned vLLM's own class loads: upstream's side takes it too
            save_file(loaded, os.path.join(work, "model.safetensors"))
        res["levels"]["load"] = {"status": "pass", "reason": None}

        level = "forward"
        text = _text_config(cfg)
        reserved = runtime_tiny.special_ids(cfg.to_dict()) | runtime_tokenizer.special_ids(
            getattr(cfg, "model_type", None), int(text.vocab_size), getattr(cfg, "architectures", None)
        ) | runtime_tokenizer.tekken_special_ids(getattr(cfg, "architectures", None))
        ids = runtime_tiny.prompt_ids(int(text.vocab_size), int(req.get("num_tokens", 12)), reserved,
                                      int(req.get("seed", 0)))
        _save_json(os.path.join(work, "ids.json"), ids)
        logits, notes = _forward(model, vc, cfg, ids)
        res["notes"].extend(notes)
        torch.save(logits, os.path.join(work, "logits.pt"))
        if _runtime_pool.tasks_of(model):  # what the model serves: its pooler's output over those hidden states
            try:
                pooled = _runtime_pool.pool(model, vc, logits, ids)
            except Exception:  # the pinned runner calls it so at warm-up and per request: the model's own failure
                res["notes"].append("pooler: the pooler failed on the tiny prefill, called as the pinned runner "
                                    "calls it (get_pooling_updates(task), PoolingMetadata, pooler(...))")
                raise
            _runtime_pool.save(pooled, work)
            res["notes"].append(f"pooler output ({_runtime_pool.describe(pooled)}) compared too")
        image = None
        # one image through the tower (runtime_mm); not for a draft (Qwen3.5's MTP): its proposer hands it the
        # target's hidden states and embeddings, never pixels
        draft = any(n.startswith("draft model: fed") for n in notes)
        if getattr(model, "supports_multimodal", False) and not draft:
            image = runtime_mm.pinned_image_forward(model, vc, cfg, ids, work, LevelError)
        if references_note():
            res["notes"].append(references_note())
        res["levels"]["forward"] = {"status": "pass", "reason": image}
    except NeedsGpu as exc:
        _skip_from(res, level, f"needs GPU ({exc})")
    except Unavailable as exc:
        _skip_from(res, level, str(exc))
    except BaseException as exc:  # the model's own errors are the findings
        hints = spec.get("config_hints") or {}
        lacking = _synth_lacks(res, exc, (hints.get("complete") or {}).get("aliases"),
                               (hints.get("synth") or {}).get("blocker"))
        if lacking:
            _skip_from(res, level, lacking)
            return res
        op = gpu_only_op(exc) if level == "forward" else cuda_only_refusal(exc) if level == "construct" else None
        same = _builtin_fails_alike(builtin, exc, req, spec) if level == "construct" else None
        if op:
            _skip_from(res, level, f"needs GPU ({op})")
        elif same:
            _skip_from(res, level, same)
        else:
            res["levels"][level] = {"status": "fail", "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
            res["first_error"] = _describe(level, exc)
    return res


def upstream_peer(arch):
    """The class upstream vLLM's registry serves ``arch`` with, where transformers has a class of that name and none
    of ``arch``'s own: the reference implementation of the very class upstream builds for it
    (NemotronHPuzzleForCausalLM -> ("nemotron_h", "NemotronHForCausalLM")), else None. Reference venv only."""
    import transformers
    from vllm.model_executor.models.registry import ModelRegistry

    if getattr(transformers, hf_class_name(arch) or arch, None) is not None:
        return None
    name = getattr(ModelRegistry.models.get(arch), "class_name", None)
    if name is None:  # already imported: the class itself
        name = getattr(getattr(ModelRegistry.models.get(arch), "model_cls", None), "__name__", None)
    return name if name and name != arch and getattr(transformers, name, None) is not None else None


def _hf_checkpoint(arch, work, seed, peer=None):
    """The reference transformers' checkpoint of ``arch`` (or of ``peer``, :func:`upstream_peer`) and its source,
    else (None, why not)."""
    from transformers import AutoConfig

    name = peer or hf_class_name(arch) or arch
    try:
        cfg = hf_config_for(name, AutoConfig.from_pretrained(work))
        ckpt = make_checkpoint(name, cfg, seed)
    except Exception as exc:  # the class exists but does not build from the tiny config
        return None, f"transformers {_tf_version()}'s {name} failed ({type(exc).__name__}: {str(exc)[:160]})"
    if ckpt is None:
        return None, f"transformers {_tf_version()} has no {arch} either"
    return ckpt, f"transformers {_tf_version()} {name}"


def _upstream_vllm_checkpoint(arch, work, seed, notes):
    """Checkpoint names from upstream vLLM's own class of ``arch`` (a reference implementation, not the
    migrated file), built on the same tiny config: its parameters split back through its own mappings
    (``upstream_checkpoint``) and accepted only when its own ``load_weights`` writes every parameter
    with exactly the values they were split from (``self_check``). (checkpoint, source) or (None, why)."""
    import vllm
    from vllm.model_executor.models.registry import ModelRegistry

    where = f"upstream vLLM {vllm.__version__}"
    try:
        if ModelRegistry._try_load_model_cls(arch) is None:
            return None, f"{where} has no {arch}"
        vc = _vllm_config(work)
        _init_distributed(vc)
        model = _construct(_resolved_class(vc), vc, notes)
        name = type(model).__name__
        ckpt, why, respelled = named_by_upstream(model, seed, vc)
    except Exception as exc:
        return None, f"{where}'s {arch} could not be built to name it ({type(exc).__name__}: {str(exc)[:160]})"
    if why:
        return None, f"{where} {name}: no checkpoint derived from it passes its own load_weights ({why})"
    if respelled:  # its loader renames in code (the released spelling, found by the same self-check), or an
        # upstream bug stepped over (checkpoint_layouts.UNSET_BY_UPSTREAM)
        how = ("respelled as its load_weights reads it" if "upstream bug" not in respelled["evidence"] else
               "read as its load_weights reads it, with what upstream's bug leaves unset supplied")
        return ckpt, (f"upstream vLLM {vllm.__version__} {name} (validated by its own load_weights), {how} "
                      f"({respelled['id']}: {respelled['evidence']})")
    return ckpt, f"upstream vLLM {vllm.__version__} {name} (validated by its own load_weights)"


def _served_by_upstream(arch, work, seed, ckpt, source, notes):
    """The reference transformers' checkpoint in the spelling upstream vLLM's own class of ``arch`` is served
    with (``served_spelling``): the pinned side has no class of its own to judge a new architecture's
    spelling by (``load_checkpoint``), and a spelling only the migrated file loads proves nothing. The
    saved spelling stands when upstream's class is missing or cannot be built."""
    import vllm
    from vllm.model_executor.models.registry import ModelRegistry

    if not isinstance(ckpt, Checkpoint):
        return ckpt, source
    # nothing renamed on save is still judged: the class's own names may not be the released ones
    # (transformers 5's ColModernVBertForRetrieval), and then upstream's class names the checkpoint
    try:
        if ModelRegistry._try_load_model_cls(arch) is None:
            return ckpt, source
        vc = _vllm_config(work)
        _init_distributed(vc)
        model = _construct(_resolved_class(vc), vc, notes)
        lent = lent_by_target(model, vc)  # as built: a load flips the flags
        served, why = served_spelling(model, ckpt, vc, seed)
        if lent and isinstance(served, Checkpoint) and not served.lent:
            served.lent = lend_unwritten(model, served, vc, lent, seed)
    except Exception as exc:
        notes.append(f"upstream vLLM {vllm.__version__}'s {arch} could not judge the checkpoint's spelling "
                     f"({type(exc).__name__}: {str(exc)[:160]})")
        return ckpt, source
    return served, (source if why is None else f"{source}, {why}")


def _reference_checkpoint(arch, work, seed, res):
    """``make_checkpoint`` mode: the checkpoint the pinned transformers could not name, from the
    reference transformers' class, else from upstream vLLM's own class; saved with its source."""
    from safetensors.torch import save_file

    ckpt, why = _hf_checkpoint(arch, work, seed)
    source = why
    if ckpt is not None:
        ckpt, source = _served_by_upstream(arch, work, seed, ckpt, source, res["notes"])
    if ckpt is None:
        ckpt, source = _upstream_vllm_checkpoint(arch, work, seed, res["notes"])
        peer = upstream_peer(arch) if ckpt is None else None
        if peer is not None:  # upstream's class could not name it: transformers' class of the same name can
            why_not = source
            ckpt, source = _hf_checkpoint(arch, work, seed, peer)
            if ckpt is not None:
                res["notes"].append(f"checkpoint of transformers' {peer}, the class upstream vLLM's registry serves "
                                    f"{arch} with ({why_not})")
                ckpt, source = _served_by_upstream(arch, work, seed, ckpt, source, res["notes"])
            else:
                source = f"{why_not}; {source}"
        if ckpt is None:
            res["error"] = f"{why}; {source}"
            return res
    save_file(ckpt, os.path.join(work, "model.safetensors"))
    save_lent(ckpt, work)
    _save_json(os.path.join(work, CHECKPOINT_SOURCE), source)
    res["checkpoint"] = True
    res["checkpoint_source"] = source
    return res


def run_reference(req, spec):
    """The same tiny config, checkpoint and tokens through upstream vLLM (else Hugging Face)."""
    import torch

    arch = spec["architecture"]
    work = os.path.join(req["workdir"], spec.get("id", arch))
    res = {"architecture": arch, "reference": None, "notes": [], "error": None}

    # the pinned side's synthesized config builds this side too, in a class of the same name
    register_synthesized(work, ((spec.get("config_hints") or {}).get("synth") or {}).get("class_name"))
    register_model_config(work, arch, res["notes"])

    if spec.get("make_checkpoint"):
        return _reference_checkpoint(arch, work, int(req.get("seed", 0)), res)
    ckpt = read_checkpoint(work)
    with open(os.path.join(work, "ids.json"), encoding="utf-8") as f:
        ids = json.load(f)
    import vllm

    image_diff = pooler_diffs = None
    try:
        from vllm.model_executor.models.registry import ModelRegistry

        if ModelRegistry._try_load_model_cls(arch) is None:
            raise LevelError(f"upstream vLLM has no {arch}")
        vc = _vllm_config(work)
        _init_distributed(vc)
        model = _construct(_resolved_class(vc), vc, res["notes"]).eval()
        res["model_file"] = _source_of(model)
        _load(model, ckpt, vc, reference=True, pinned_unloaded=_read_json(os.path.join(work, UNLOADED_FILE), []))

        logits, _ = _forward(model, vc, vc.model_config.hf_config, ids)
        pooler_diffs = _pooler_diffs(model, vc, logits, ids, work, res)
        try:
            image_diff = runtime_mm.reference_image_diff(model, vc, work, LevelError)
        except Exception as exc:  # the upstream side's image path: the text prefill still compares
            res["notes"].append(f"image not compared: upstream {type(exc).__name__}: {str(exc)[:200]}")
        res["reference"] = f"vllm-{vllm.__version__}"
    except BaseException as exc:
        op, unset = gpu_only_op(exc), unset_attribute(exc)
        upstream_why = (f"reference cannot run: upstream bug {unset} (vLLM {vllm.__version__} reads it, no class of the "
                        f"object sets it: {type(exc).__name__}: {str(exc)[:200]})" if unset and not op else
                        f"upstream vLLM {vllm.__version__} could not run it on CPU ({op or type(exc).__name__ + ': ' + str(exc)[:200]})")
        res["notes"].append(f"{upstream_why}; Hugging Face reference used")
        if os.path.exists(os.path.join(work, runtime_mm.IDS_FILE)):
            res["notes"].append("image not compared: the Hugging Face reference runs the text prefill only")
        if os.path.exists(os.path.join(work, _runtime_pool.POOLED_FILE)):
            res["notes"].append("pooler output not compared: the Hugging Face reference has no vLLM pooler")
        try:
            reference = f"transformers-{_tf_version()}"
            peer = upstream_peer(arch)  # the Hugging Face class of the class upstream serves it with
            if peer is not None:
                res["notes"].append(f"Hugging Face reference: {peer}, the class upstream vLLM's registry serves "
                                    f"{arch} with")
            logits, res["model_file"], applied = _hf_logits(peer or hf_class_name(arch) or arch, work, ids,
                                                            adjustments_for(arch, reference))
            res["reference"] = reference
            if applied:  # what upstream vLLM leaves out, left out of its stand-in too (never a tolerance)
                res["reference_adjustments"] = applied
                res["notes"].append("Hugging Face reference adjusted to upstream vLLM: "
                                    + ", ".join(f"{a['parameter']} {a['action']}" for a in applied))
        except BaseException as exc2:  # neither reference: both reasons
            res["error"] = f"{upstream_why}; Hugging Face: {type(exc2).__name__}: {str(exc2)[:300]}"
            res["traceback_tail"] = _tail(exc2)
            return res
    torch.save(logits, os.path.join(work, "logits_ref.pt"))
    pinned = torch.load(os.path.join(work, "logits.pt"))
    if pinned.shape != logits.shape:
        res["error"] = f"logit shapes differ: pinned {tuple(pinned.shape)}, reference {tuple(logits.shape)}"
        return res
    res["max_abs_logit_diff"] = res["text_logit_diff"] = _runtime_logits.max_abs_diff(pinned, logits)
    if image_diff is not None:  # the prefill with the image counts as much as the text one
        res["notes"].append(f"with one image: max |Δlogit| {image_diff:.3g}")
        res["image_logit_diff"] = image_diff
        res["max_abs_logit_diff"] = max(res["max_abs_logit_diff"], image_diff)
    if pooler_diffs:  # reported apart from the hidden states' diff; match holds both to the tolerance
        res["pooler_diffs"] = pooler_diffs
        res["max_abs_pooler_diff"] = max(pooler_diffs.values())
    return res


def _pooler_diffs(model, vc, hidden, ids, work, res):
    """Upstream's pooler over its own hidden states, against the pinned side's saved outputs: {task: max |Δ|},
    or None when the pinned side pooled nothing. Upstream's pooler failing on CPU leaves it uncompared (a note)."""
    if not os.path.exists(os.path.join(work, _runtime_pool.POOLED_FILE)):
        return None
    try:
        pooled = _runtime_pool.pool(model, vc, hidden, ids)
    except Exception as exc:
        res["notes"].append(f"pooler output not compared: upstream's pooler {type(exc).__name__}: {str(exc)[:200]}")
        return None
    diffs, notes = _runtime_pool.compare(pooled, work)
    res["notes"].extend(notes)
    for task, diff in (diffs or {}).items():
        res["notes"].append(f"pooler {task}: max |Δ| {diff:.3g}")
    return diffs


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
        patched = _reference_attention() + _runtime_moe.install()
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
