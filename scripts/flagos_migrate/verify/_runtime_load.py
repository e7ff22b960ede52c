"""Synthetic checkpoints and the load level (part of ``_runtime_worker.py``).

The checkpoint has the tensor names and shapes of the Hugging Face class of the architecture (a
reference implementation, not the migrated file), random values with a fixed seed; it is loaded
through the migrated ``load_weights`` and checked: every parameter written, each equal to its
checkpoint tensor or, for a fused one, to the concatenation of its parts; values held in another
order only as the pinned vLLM's own class loads them. Standard library only at import.
"""

import re

import runtime_mm
from _runtime_config import _text_config
from _runtime_env import TARGET_LENT, LevelError, _construct, _vllm_config, unset_attribute
from checkpoint_layouts import (
    LAYOUTS,
    UNSET_BY_UPSTREAM,
    even_parts,
    fold,
    folded,
    held_expert_parts,
    interleave_rotary,
    kept_at_init,
    load_scale,
    row_parts,
    stacked_experts,
)
from draft_respellings import FIELDS, RESPELLINGS, respell
from reference_divergences import dropped_by_upstream


class Checkpoint(dict):
    """Checkpoint tensors by name as a saved checkpoint spells them; ``in_memory`` maps each name to
    the reference class's own state-dict name where transformers renames on save (VLMs)."""

    in_memory: dict = {}
    permuted: tuple = ()  # names stored in another layout than the class holds (checkpoint_layouts.interleaved_rotary)
    lent: dict = {}  # parameter name -> the target's tensor, for a draft's parameters its proposer takes from the target

    def respelled(self):
        """The same tensors under the reference class's own names (None when nothing is renamed)."""
        if not any(k != v for k, v in self.in_memory.items()):
            return None
        out = Checkpoint({self.in_memory.get(k, k): t for k, t in self.items()})
        out.in_memory = {}
        return out


def _checkpoint_names(hf_model):
    """State-dict names as a saved Hugging Face checkpoint spells them (transformers' own reverse
    of ``_checkpoint_conversion_mapping``, as ``save_pretrained`` applies it), each with its shape
    and the in-memory name. The mapping's targets are prefixes: the reverse replaces the prefix
    only (transformers 4.57's unanchored ``re.subn`` also rewrites later matches, e.g. gemma3n's
    ``"model"`` inside ``per_layer_model_projection``, a name no real checkpoint has)."""
    import re

    mapping = getattr(hf_model, "_checkpoint_conversion_mapping", None) or {}
    reverse = {v: k for k, v in mapping.items()}
    out = {}
    for key, tensor in hf_model.state_dict().items():
        new = key
        for pattern, replacement in reverse.items():
            replacement = re.sub(r"\(.*\)", "", replacement.lstrip("^"))
            new, n = re.subn(pattern if pattern.startswith("^") else "^" + pattern, replacement, key, count=1)
            if n:
                break
        out[new] = (tuple(tensor.shape), key)
    return out


def _reference_config(hf_cls, cfg):
    """``cfg`` as the reference class's own config class: the pinned vLLM replaces some of
    transformers' (``vllm.transformers_utils.configs.NemotronConfig`` keeps ``rope_parameters``
    only, and transformers' Nemotron reads ``config.rope_theta``). The model is built from vLLM's
    class; the reference implementation, which only names and shapes the tensors, from its own."""
    own = getattr(hf_cls, "config_class", None)
    if not isinstance(own, type) or isinstance(cfg, own):
        return cfg
    try:
        return own.from_dict(cfg.to_dict())
    except Exception:  # not convertible: the class gets the config as it is (and may fail on it)
        return cfg


def make_checkpoint(arch, cfg, seed, alt=None):
    """Random tensors (fixed seed) with the names and shapes of the Hugging Face class of ``arch``
    (else of ``alt``, the class a peer architecture is registered to); None when this transformers
    lacks both."""
    import torch
    import transformers

    hf_cls = getattr(transformers, arch, None) or (getattr(transformers, alt, None) if alt else None)
    if hf_cls is None:
        return None
    cfg = _reference_config(hf_cls, cfg)
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
    out = Checkpoint()
    for name in sorted(shapes):
        shape = shapes[name][0]
        t = torch.randn(shape, generator=gen, dtype=torch.float32) * 0.1
        if len(shape) == 1 and "norm" in name and name.endswith("weight"):
            t = t + 1.0
        out[name] = t.contiguous()
    _tie_aliases(hf, out, {v[1]: k for k, v in shapes.items()})
    out.in_memory = {k: v[1] for k, v in shapes.items()}
    return _as_saved(hf, out)


def _tie_aliases(hf, ckpt, saved_of):
    """Tensors the class ties (one parameter under two names: BERT's ``cls.predictions.decoder.bias`` is
    ``cls.predictions.bias``, its decoder weight the word embeddings) hold the same values, as in every
    checkpoint the class writes; drawn apart, a loader that reads either name looks wrong."""
    groups: dict[int, list[str]] = {}
    for name, t in [*hf.named_parameters(remove_duplicate=False), *hf.named_buffers(remove_duplicate=False)]:
        if (saved := saved_of.get(name)) in ckpt:
            groups.setdefault(id(t), []).append(saved)
    for names in groups.values():
        for alias in names[1:]:
            if ckpt[alias].shape == ckpt[names[0]].shape:
                ckpt[alias] = ckpt[names[0]].clone()


def _as_saved(hf, ckpt):
    """``ckpt`` as transformers 5's ``save_pretrained`` writes it: the reverse of the model's weight
    conversions (``conversion_mapping.py``: renamings such as hy_v3's ``mlp.expert_bias ->
    mlp.e_score_correction_bias``, MoE experts fused on load split back per expert), which is the
    spelling of the released checkpoints those conversions load. transformers 4 has none (its
    ``_checkpoint_conversion_mapping`` is reversed in :func:`_checkpoint_names`). ``in_memory``
    keeps the class's own name of each tensor only renamed (a split expert has none)."""
    try:
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:
        return ckpt
    saved = revert_weight_conversion(hf, dict(ckpt))
    if set(saved) == set(ckpt):
        return ckpt
    own = {id(t): k for k, t in ckpt.items()}
    out = Checkpoint({k: t.contiguous() for k, t in sorted(saved.items())})
    out.in_memory = {k: own.get(id(t), k) for k, t in saved.items()}
    return out


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


def _as_loaded(tensor, param):
    """The checkpoint tensor as a loader's ``copy_`` stores it in ``param``: cast to the parameter's
    dtype. A layer may keep its parameters in a dtype of its own whatever the model's (vLLM's XIELU
    builds ``alpha_p``/``alpha_n`` in bfloat16, pinned and upstream alike), so comparing in the
    checkpoint's dtype would call a correct load wrong."""
    return tensor.to(param.dtype) if param.is_floating_point() and tensor.is_floating_point() else tensor


def _same_values(want, got):
    """The same values in another order (a loader that permutes a tensor, e.g. per head)."""
    import torch

    return want.numel() == got.numel() and torch.equal(torch.sort(want.flatten().float())[0],
                                                       torch.sort(got.flatten().float())[0])


def _judge(name: str, want, got, reordered: list, problems: list, differs: str, changed: dict) -> None:
    """Equal passes; the same values in another order are ``reordered`` (the caller decides); else a
    problem, which ``changed`` (name -> its message) lets the caller judge against the pinned loader."""
    import torch

    if torch.equal(want, got.to(want.dtype)):
        return
    if _same_values(want, got):
        reordered.append(name)
    else:
        problems.append(differs)
        changed[name] = differs


def unloaded_signatures(params):
    """Parameters left (partly) unloaded, i.e. still NaN where they were NaN-filled before loading:
    name -> (shape, how many values, a digest of which), for :func:`unloaded_as_pinned`."""
    import hashlib

    import torch

    out = {}
    for name, p in params.items():
        if not (isinstance(p, torch.Tensor) and p.is_floating_point()):
            continue
        mask = torch.isnan(p.data if hasattr(p, "data") else p)
        if mask.any():
            out[name] = (tuple(mask.shape), int(mask.sum()),
                         hashlib.sha1(mask.flatten().to(torch.uint8).numpy().tobytes()).hexdigest())
    return out


def unloaded_as_pinned(unloaded, pinned_unloaded, reference_names):
    """The names of ``unloaded`` (name -> signature, :func:`unloaded_signatures`) that the pinned vLLM's
    own class of the architecture, given the same checkpoint, leaves unloaded the very same way (same
    shape, same values), and for which the reference class has no tensor at all (``reference_names``:
    its state-dict names, saved and in memory): JambaForSequenceClassification inherits
    JambaForCausalLM's lm_head, which no sequence-classification checkpoint holds (it has score.weight),
    in the pinned vLLM and upstream alike. A tensor the reference class has but the checkpoint lacks
    stays a failure; without the pinned class (``pinned_unloaded`` None) nothing is accepted. Pure."""
    if not pinned_unloaded:
        return []
    index = _suffix_index(reference_names)

    def in_reference(name):  # a dotted suffix of two parts or more names a reference tensor
        parts = name.split(".")
        return any(".".join(parts[i:]) in index for i in range(len(parts) - 1))

    return sorted(n for n, sig in unloaded.items() if pinned_unloaded.get(n) == sig and not in_reference(n))


def held_values(params, ckpt):
    """How many checkpoint values ``params`` ({name: tensor}) can hold: a parameter with more rows than its
    checkpoint tensor and the same other dimensions (an embedding padded to the vocabulary granule) counts
    the checkpoint's rows, every other parameter its size."""
    index = _suffix_index(ckpt)
    total = 0
    for name, t in params.items():
        key = _ckpt_name(name, index)
        held = ckpt[key] if key is not None else None
        padded = (held is not None and held.dim() == t.dim() >= 1 and tuple(held.shape[1:]) == tuple(t.shape[1:])
                  and held.shape[0] < t.shape[0])
        total += held.numel() if padded else t.numel()
    return total


def check_loaded(model, ckpt, reported, excused=(), dropped=()):
    """Every parameter written (NaN-filled before loading), and each equal to its checkpoint tensor or,
    for fused parameters, to the concatenation of its parts. Returns (problems, stats); the stats'
    ``reordered`` lists parameters holding their checkpoint values in another order (the caller
    decides against the pinned loader whether that order is right). ``excused``: parameters left
    unloaded exactly as the pinned vLLM's own class leaves them (:func:`unloaded_as_pinned`), reported
    in the stats as ``unloaded_as_pinned`` and counted nowhere else. ``dropped``: checkpoint tensors upstream's
    own model file never loads (reference_divergences), not counted as lost, reported as ``dropped_as_upstream``."""
    import torch

    excused = set(excused)
    params = {n: p for n, p in model.named_parameters() if n not in excused}
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
    changed: dict[str, str] = {}
    for name, p in params.items():
        if name in unloaded:
            continue
        key = _ckpt_name(name, index)
        if key is not None and tuple(ckpt[key].shape) == tuple(p.shape):
            _judge(name, _as_loaded(ckpt[key], p.data), p.data, reordered, problems,
                   f"{name} differs from its checkpoint tensor {key}", changed)
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
        want = _as_loaded(torch.cat([ckpt[k] for k in keys], 0), p.data)
        if tuple(want.shape) != tuple(p.shape):
            unchecked += 1
            continue
        _judge(name, want, p.data, reordered, problems,
               f"{name} is not the concatenation of its checkpoint parts {keys}", changed)
        fused += 1
    in_ckpt = sum(t.numel() for n, t in ckpt.items() if not n.endswith("rotary_emb.inv_freq"))
    in_params = sum(p.numel() for p in params.values())  # an excused parameter holds no checkpoint values
    all_values = in_params + sum(p.numel() for n, p in model.named_parameters() if n in excused)
    # buffers a checkpoint holds and the loader fills (XIELU's beta and eps) are loaded values too
    buffers = sum(b.numel() for n, b in model.named_buffers() if (k := _ckpt_name(n, index)) is not None
                  and tuple(ckpt[k].shape) == tuple(b.shape))
    stats = {"parameters": len(params) + len(excused), "equal": equal, "fused_equal": fused, "unchecked": unchecked,
             "reordered": reordered, "changed": changed, "checkpoint_tensors": len(ckpt), "checkpoint_values": in_ckpt, "parameter_values": all_values}
    in_ckpt -= buffers
    gone = [n for n in dropped if n in ckpt]
    if gone:
        stats["dropped_as_upstream"] = gone
        in_ckpt -= sum(ckpt[n].numel() for n in gone)
    if not unloaded and in_ckpt > in_params:  # tensors of layers the model does not build are no loss
        unbuilt = runtime_mm.unbuilt_tensors(model, list(ckpt))
        stats["not_built"] = len(unbuilt)
        in_ckpt -= sum(ckpt[n].numel() for n in unbuilt)
    if not unloaded and in_ckpt > in_params:
        problems.append(f"the checkpoint holds {in_ckpt - in_params} more values than the model's parameters: "
                        "some checkpoint tensors were not loaded")
    if excused:
        stats["unloaded_as_pinned"] = sorted(excused)
    return problems, stats


def accept_transforms(problems, changed, params, expected, notes, stats, reference=False):
    """``problems`` without the parameters (``changed``: name -> its problem) that differ from their
    checkpoint tensors by a transform on load the pinned vLLM's own class of the architecture makes too:
    LongCat-Flash folds sqrt(hidden/rank) into its q/kv_a_layernorm weights, in the pinned vLLM's own
    load_weights and in upstream's weight loader alike. Right only where that class (``expected``: its
    parameters after loading the same checkpoint) holds exactly the same values; without it the
    difference stands. On upstream's side (``reference``) its own loader is the reference's behaviour:
    its logits are of what it loaded, and match compares."""
    import torch

    if reference:
        same = list(changed)
    else:
        same = [n for n in changed if expected is not None and n in expected and n in params
                and tuple(expected[n].shape) == tuple(params[n].shape)
                and torch.equal(expected[n], params[n].data.to(expected[n].dtype))]
    if not same:
        return problems
    gone = {changed[n] for n in same}
    stats["transformed_as_pinned_loader" if not reference else "transformed_upstream"] = len(same)
    if notes is not None:
        notes.append(f"{len(same)} parameter(s) differ from their checkpoint tensors (e.g. {same[0]}) "
                     + ("on upstream's side: its own transform on load" if reference else
                        "exactly as the pinned vLLM's own class loads them (a transform on load)"))
    return [m for m in problems if m not in gone]


def target_shared(model, vc, ckpt):
    """The parameters of a draft that its proposer replaces with the target's after loading, where the draft's own
    ``load_weights`` leaves them to it: an MTP draft's (or an EAGLE draft's without ``has_own_lm_head``) lm_head,
    which both vLLMs' proposers assign (``self.model.lm_head = target_language_model.lm_head``: 0.13.0's
    v1/spec_decode/eagle.py load_model, 0.33.0's llm_base_proposer.py _maybe_share_lm_head). LongCat-Flash's MTP
    loader skips every name outside ``model.mtp``, lm_head included. Only names the checkpoint holds: its tensor
    stands in for the target's head, the same on both sides. Pure over the model's names."""
    if getattr(vc, "speculative_config", None) is None or getattr(model, "has_own_lm_head", False):
        return []
    head = getattr(model, "lm_head", None)
    if head is None or not hasattr(head, "named_parameters"):
        return []
    return [f"lm_head.{n}" for n, _ in head.named_parameters() if f"lm_head.{n}" in ckpt]


# Modules a draft declares, as built, that it takes from the target: the flag False on the draft class, which both
# vLLMs' proposers read to replace the module with the target's (0.13.0 v1/spec_decode/eagle.py load_model, 0.33.0
# llm_base_proposer.py _maybe_share_embeddings: ``if not self.model.has_own_embed_tokens: share``). A draft's loader
# sets the flag True on any checkpoint name holding "embed_tokens" (utils.process_eagle_weight), so a checkpoint
# of such a draft holds none: the target's tensor travels beside it (``Checkpoint.lent``). The table itself is
# _runtime_env.TARGET_LENT (a draft that builds such a module as None gets one there, at construction).
LENT_FILE = "target_lent.safetensors"
LENT_ENTRY = {"id": "target-lent", "evidence": "the draft's own loader writes none of its " + ", ".join(
    p for _, p in TARGET_LENT) + " and it declares it has none of its own (" + ", ".join(
    f for f, _ in TARGET_LENT) + " False): both vLLMs' proposers give it the target's, which the harness draws beside "
    "the checkpoint (0.13.0 v1/spec_decode/eagle.py load_model, 0.33.0 llm_base_proposer.py _maybe_share_embeddings)"}


def lent_by_target(model, vc):
    """The parameters of ``model`` (built as a draft) under a :data:`TARGET_LENT` module whose flag the class sets
    False, read before any load (its loader may flip it). Pure over the model's names."""
    if getattr(vc, "speculative_config", None) is None:
        return []
    names = [n for n, _ in model.named_parameters()]
    return [n for flag, path in TARGET_LENT if getattr(model, flag, None) is False
            for n in names if n.startswith(path + ".")]


def lend_unwritten(model, ckpt, vc, lent, seed):
    """Tensors drawn (fixed seed) for each of ``lent`` (:func:`lent_by_target`, read before any load) that ``model``'s
    own ``load_weights`` leaves wholly unwritten from ``ckpt``: a draft's checkpoint the reference transformers saves
    (MuseGlimmer's assistant) holds neither embedding nor head, both the target's at serving. {} when its loader
    refuses the checkpoint (the load level says why)."""
    import torch

    if not lent:
        return {}
    try:
        load_over_nan(model, ckpt, vc)
    except Exception:
        return {}
    params, gen = dict(model.named_parameters()), torch.Generator().manual_seed(seed + 1)
    return {n: torch.randn(tuple(params[n].shape), generator=gen, dtype=torch.float32) * 0.1 for n in lent
            if n in params and params[n].is_floating_point() and torch.isnan(params[n].data).all()}


def read_checkpoint(work):
    """The checkpoint saved in ``work`` (``model.safetensors``) with the target's tensors beside it (:data:`LENT_FILE`)."""
    import os

    from safetensors.torch import load_file

    ckpt = Checkpoint(load_file(os.path.join(work, "model.safetensors")))
    ckpt.in_memory = {}
    lent = os.path.join(work, LENT_FILE)
    ckpt.lent = load_file(lent) if os.path.exists(lent) else {}
    return ckpt


def save_lent(ckpt, work):
    """The target's tensors of ``ckpt`` (``Checkpoint.lent``) saved beside it, for both sides' loads."""
    import os

    from safetensors.torch import save_file

    if getattr(ckpt, "lent", None):
        save_file({k: t.contiguous() for k, t in ckpt.lent.items()}, os.path.join(work, LENT_FILE))


def _kept(model):
    """{parameter name: a copy of its value now} of each :func:`checkpoint_layouts.kept_at_init` parameter (call it
    before NaN-filling: the initial values)."""
    modules = dict(model.named_modules())
    return {n: p.data.detach().clone() for n, p in model.named_parameters()
            if kept_at_init(n, modules.get(n.rpartition(".")[0], model)) is not None}


def _restore_kept(model, kept, notes=None):
    """Each ``kept`` parameter (:func:`_kept`) its loader left wholly unwritten (NaN) while its flag is still False,
    set back to its initial value; returns their names, noted."""
    import torch

    modules, params, restored = dict(model.named_modules()), dict(model.named_parameters()), []
    with torch.no_grad():
        for name, init in kept.items():
            p = params.get(name)
            if p is not None and torch.isnan(p.data).all() and \
                    kept_at_init(name, modules.get(name.rpartition(".")[0], model)) is not None:
                p.data.copy_(init)
                restored.append(name)
    if restored and notes is not None:
        ids = sorted({kept_at_init(n, modules.get(n.rpartition(".")[0], model)) for n in restored})
        notes.append(f"{len(restored)} parameter(s) kept at their initial value ({', '.join(restored[:4])}): upstream's "
                     f"loader never writes them and its forward reads the initial value (checkpoint_layouts.KEPT_AT_INIT "
                     f"{', '.join(ids)})")
    return restored


def _fill_from_target(model, vc, ckpt, notes):
    """Each :func:`target_shared` parameter the draft's ``load_weights`` left unwritten (still NaN) set to the
    checkpoint's tensor of that name, as the proposer's target head would hold it; noted."""
    import torch

    params = dict(model.named_parameters())
    filled = []
    lent = getattr(ckpt, "lent", None) or {}
    with torch.no_grad():
        for name, t in [*((n, ckpt[n]) for n in target_shared(model, vc, ckpt)), *lent.items()]:
            p = params.get(name)
            if p is not None and p.is_floating_point() and torch.isnan(p.data).all() \
                    and tuple(p.shape) == tuple(t.shape):
                p.data.copy_(t.to(p.dtype))
                filled.append(name)
    if filled and notes is not None:
        notes.append(f"draft: {', '.join(filled)} left to the target by its load_weights (its proposer shares the "
                     "target's " + ("head" if not lent else "module: the draft declares it has none of its own")
                     + "); the same stand-in tensor for the target's on both sides")
    return filled


def _accept_load_scales(model, ckpt, vc, problems, changed, notes, stats):
    """``problems`` without the parameters of ``changed`` that hold their checkpoint tensor times the factor
    upstream's own weight loader scales them by (``checkpoint_layouts.LOAD_SCALES``: LongCat's q/kv_a_layernorm),
    exactly; those leave ``changed``. The pinned vLLM's own class may name them otherwise (its LongCat MTP layer
    is num_hidden_layers * 2, upstream's num_layers * 2), so it cannot be asked by name."""
    import torch

    config = getattr(model, "config", None) or getattr(vc.model_config, "hf_config", None)
    params, index = dict(model.named_parameters()), _suffix_index(ckpt)
    same = []
    for name in list(changed):
        key, factor = _ckpt_name(name, index), load_scale(name, config)
        if key is None or factor == 1.0 or name not in params:
            continue
        want = _as_loaded(ckpt[key] * factor, params[name].data)
        if tuple(want.shape) == tuple(params[name].shape) and torch.equal(want, params[name].data):
            same.append(name)
    if not same:
        return problems
    gone = {changed.pop(n) for n in same}
    stats["scaled_on_load"] = len(same)
    if notes is not None:
        notes.append(f"{len(same)} parameter(s) hold their checkpoint tensors scaled on load (e.g. {same[0]}), as "
                     "upstream's own weight loader scales them (checkpoint_layouts.LOAD_SCALES)")
    return [m for m in problems if m not in gone]


def _load(model, ckpt, vc, pinned_loader=None, notes=None, reference=False, pinned_unloaded=None):
    """Load ``ckpt`` through the model's ``load_weights`` and check it (:func:`check_loaded`).
    A parameter holding its checkpoint values in another order is right only where the pinned
    vLLM's own class of the architecture (``pinned_loader()``: its parameters after loading the
    same checkpoint) orders them the same way; with no such class (a model new to the pin) the
    order is left to ``match``, and a note says so. Parameters left unloaded pass only as the pinned
    class leaves them (:func:`unloaded_as_pinned`); on upstream's side (``reference``) the names the
    pinned side accepted so (``pinned_unloaded``)."""
    import torch
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader.utils import process_weights_after_loading

    kept = _kept(model)
    reported = load_over_nan(model, ckpt, vc)
    filled = _fill_from_target(model, vc, ckpt, notes) + _restore_kept(model, kept, notes)
    if filled and reported is not None:
        reported = set(reported) | set(filled)
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

    unloaded = unloaded_signatures(dict(model.named_parameters()))
    excused = []
    if unloaded and reference:
        # upstream's side: the pinned side judged what stays unloaded against the pinned vLLM's own class
        excused = [n for n in (pinned_unloaded or ()) if n in unloaded]
    elif unloaded:
        expected = pinned_params()
        own = getattr(ckpt, "in_memory", None) or {}
        excused = unloaded_as_pinned(unloaded, None if expected is None else unloaded_signatures(expected),
                                     set(ckpt) | set(own) | set(own.values()))
    if excused and notes is not None:
        notes.append(f"{len(excused)} parameter(s) left unloaded ({', '.join(excused[:4])}): "
                     + ("as on the pinned side" if reference else
                        "the pinned vLLM's own class leaves the very same values unloaded from this checkpoint"))
    arch = next(iter(getattr(vc.model_config.hf_config, "architectures", None) or ()), "")
    problems, stats = check_loaded(model, ckpt, reported, excused, dropped_by_upstream(arch))
    if stats.get("dropped_as_upstream") and notes is not None:
        notes.append(f"checkpoint tensors upstream vLLM's own {arch} never loads, not loaded here either: "
                     f"{', '.join(stats['dropped_as_upstream'])} (reference_divergences)")
    reordered = stats.pop("reordered")
    changed = stats.pop("changed")

    if changed:
        problems = _accept_load_scales(model, ckpt, vc, problems, changed, notes, stats)
    if changed:
        problems = accept_transforms(problems, changed, dict(model.named_parameters()),
                                     None if reference else pinned_params(), notes, stats, reference)
    leftover = [m for m in problems if m.startswith("the checkpoint holds")]
    if leftover and len(problems) == 1 and reference:
        # upstream's side: what the pinned side left unloaded was judged there against the pinned
        # vLLM's own class (a tower cut at vision_feature_layer); upstream builds the same layers
        problems = []
        if notes is not None:
            notes.append(leftover[0] + " (upstream's side; the pinned side judged the count)")
    if leftover and len(problems) == 1:
        # vLLM builds fewer layers than a checkpoint holds on purpose (a vision tower cut at
        # vision_feature_layer): the same count as the pinned vLLM's own class is right
        expected = pinned_params()
        if expected is not None and sum(t.numel() for t in expected.values()) == stats["parameter_values"]:
            problems = []
            if notes is not None:
                notes.append(leftover[0] + "; exactly as many as the pinned vLLM's own class leaves unloaded")
        elif expected is not None and held_values(expected, ckpt) == held_values(
                {n: p.data for n, p in model.named_parameters()}, ckpt):
            # one side pads an embedding to the vocabulary granule and the other does not (upstream's RoBERTa
            # builds VocabParallelEmbedding where 0.13.0's builds nn.Embedding): rows no checkpoint holds
            problems = []
            if notes is not None:
                notes.append(leftover[0] + "; exactly as many as the pinned vLLM's own class leaves unloaded, "
                             "counting a padded embedding by the checkpoint rows it holds")
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

    vc = _vllm_config(work)  # its own compilation config: layer names do not clash with the migrated model's
    model = _construct(cls, vc)
    load_over_nan(model, ckpt, vc)  # as the migrated model is loaded: what it leaves unloaded stays NaN
    return {n: p.data.detach().clone() for n, p in model.named_parameters() if isinstance(p.data, torch.Tensor)}


def _loads(cls, ckpt, work):
    """Whether the pinned vLLM's own ``cls`` loads ``ckpt`` without an error."""
    try:
        _builtin_loaded(cls, ckpt, work)
    except Exception:
        return False
    return True


class SpellingNotServed(Exception):
    """The pinned transformers' checkpoint spelling is refused by the pinned vLLM's own class of the architecture
    too (saved and in-memory names): not how the architecture is served, so it decides nothing."""


def load_checkpoint(model, ckpt, vc, builtin, work, notes):
    """The load level: ``ckpt`` through the migrated ``load_weights`` (:func:`_load`); returns
    (stats, the checkpoint loaded). A class vLLM serves as the language model of a multimodal
    checkpoint (gemma3n's ``Gemma3nForCausalLM``) takes its reference class's own names, not the
    spelling transformers saves (``model.language_model.*``): when the load fails, the pinned
    vLLM's own class of the architecture decides: it fails on the saved spelling too and loads the
    in-memory one, so that is the checkpoint this architecture is served with, here and upstream.
    Without a pinned class the failure stands here: a checkpoint the reference venv made was already spelled
    as upstream vLLM's own class routes it (:func:`served_spelling`)."""
    try:
        return _load(model, ckpt, vc, lambda: _builtin_loaded(builtin, ckpt, work), notes), ckpt
    except Exception as exc:
        if not isinstance(ckpt, Checkpoint) or builtin is None or _loads(builtin, ckpt, work):
            raise
        alt = ckpt.respelled()
        if alt is None or not _loads(builtin, alt, work):
            # not a spelling the pinned vLLM serves this architecture with either (Voxtral: transformers' audio_tower.*,
            # both vLLMs read Mistral's mm_whisper_embeddings.*): the reference side names it, as for a class the
            # pinned transformers lacks (upstream's own class judges, served_spelling)
            raise SpellingNotServed(f"the pinned vLLM's own {builtin.__name__} refuses the spelling transformers "
                                    f"saves{'' if alt is None else ' and its in-memory names'} too "
                                    f"({type(exc).__name__}: {str(exc)[:160]})") from exc
    stats = _load(model, alt, vc, lambda: _builtin_loaded(builtin, alt, work), notes)
    renamed = next(f"{k} -> {v}" for k, v in ckpt.in_memory.items() if k != v)
    notes.append(f"checkpoint in the reference class's own names (e.g. {renamed}): the pinned vLLM's own "
                 f"{builtin.__name__} does not load the spelling transformers saves and loads this one")
    return stats, alt



def _lent_or_shared(model, vc, ckpt):
    """A draft's parameters the target gives it at serving (:func:`lent_by_target`, :func:`target_shared`): its own
    loader leaves them unwritten from any checkpoint, by design."""
    return [*lent_by_target(model, vc), *target_shared(model, vc, ckpt)]


def _refusal(model, ckpt, vc, route_only=False, ignored=()):
    """Why ``model``'s own ``load_weights`` refuses ``ckpt`` and whether it raised (else it left a parameter
    unwritten), else (None, False). ``route_only``: every parameter's ``weight_loader`` stubbed to record the
    hit, so only the names are judged (which tensor reaches which parameter), not a loader's handling of the
    values (upstream 0.33.0's olmo_hybrid conv1d loader is never handed the shard id its own
    AutoWeightsLoader tags the tensor with, and raises on every checkpoint). ``ignored``: parameter names never
    counted unwritten (kept at init, a draft's target's)."""
    import torch
    from vllm.config import set_current_vllm_config

    params = dict(model.named_parameters())
    hit, own = set(), {}
    with torch.no_grad():
        for n, p in params.items():
            if p.is_floating_point():
                p.data.fill_(float("nan"))
            if route_only:  # vLLM's own parameter classes keep theirs as _weight_loader behind a property
                attr = "_weight_loader" if isinstance(getattr(type(p), "weight_loader", None), property) else "weight_loader"
                own[n] = (attr, p.__dict__.get(attr, own))
                setattr(p, attr, lambda *a, _n=n, **k: hit.add(_n))
    try:
        with set_current_vllm_config(vc):
            model.load_weights(iter([(k, v.clone()) for k, v in ckpt.items()]))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:160]}", True
    finally:
        for n, (attr, loader) in own.items():
            if loader is own:
                delattr(params[n], attr)
            else:
                setattr(params[n], attr, loader)
    if route_only:
        unloaded = sorted(set(params) - hit)
    else:
        unloaded = sorted(n for n, p in params.items() if p.is_floating_point() and torch.isnan(p.data).any()
                          and n not in ignored)
    return (f"{len(unloaded)} parameter(s) not written: {', '.join(unloaded[:4])}" if unloaded else None), False


def own_names_of_skipped(model, ckpt, vc, ignored=()):
    """``ckpt`` with each tensor whose name ends in ``.`` + the name of a parameter ``model``'s own ``load_weights``
    leaves unwritten from it (the one such tensor of its shape) renamed to that parameter's name, when the loader
    then raises nothing, leaves nothing unwritten but ``ignored`` and writes each renamed parameter exactly with its
    tensor. Returns (that checkpoint, one renaming ``old -> new``), else (None, why not)."""
    import torch

    def unwritten():
        params = dict(model.named_parameters())
        return params, [n for n, p in params.items()
                        if n not in ignored and p.is_floating_point() and torch.isnan(p.data).any()]

    try:
        load_over_nan(model, ckpt, vc)
    except Exception as exc:
        return None, f"its load_weights raised ({type(exc).__name__}: {str(exc)[:120]})"
    params, left = unwritten()
    renames = {}
    for name in left:
        found = [k for k, t in ckpt.items() if k.endswith("." + name) and tuple(t.shape) == tuple(params[name].shape)]
        if len(found) != 1 or name in ckpt:
            return None, f"{len(found)} tensor(s) of its shape end in {name}"
        renames[found[0]] = name
    if not renames:
        return None, "nothing left unwritten"
    out = Checkpoint({renames.get(k, k): t for k, t in ckpt.items()})
    out.in_memory, out.lent = {}, getattr(ckpt, "lent", None) or {}
    try:
        load_over_nan(model, out, vc)
    except Exception as exc:
        return None, f"its load_weights raised on the renamed ones ({type(exc).__name__}: {str(exc)[:120]})"
    params, left = unwritten()
    if left:
        return None, f"renamed, {len(left)} parameter(s) still unwritten: {', '.join(left[:3])}"
    differ = [new for new in renames.values() if not torch.equal(params[new].data, out[new].to(params[new].dtype))]
    if differ:
        return None, f"renamed, {len(differ)} parameter(s) not written back exactly: {', '.join(differ[:3])}"
    old, new = next(iter(sorted(renames.items())))
    return out, f"{old} -> {new}"


def served_spelling(model, ckpt, vc, seed):
    """The spelling of ``ckpt`` (a transformers checkpoint, :func:`make_checkpoint`) that ``model``, upstream
    vLLM's own class of the architecture built in the reference venv, is served with, where the pinned vLLM
    has no class to decide (:func:`load_checkpoint`). The saved spelling unless its ``load_weights`` raises
    on its names; then the class's in-memory names if its ``load_weights`` routes every one of those to a
    parameter and writes each parameter, else a checkpoint derived from it (:func:`upstream_checkpoint`) that
    passes :func:`self_check`. transformers 5 renames some checkpoints on load that upstream vLLM reads in
    its in-memory names, not as it saves them (olmo_hybrid: saved ``attention_layer_norm``, upstream's
    ``input_layernorm``). Names it loads without an error but skips, leaving a parameter unwritten that a
    released checkpoint holds, are not its spelling either: then those tensors under the parameters' own names
    (:func:`own_names_of_skipped`), else the derived checkpoint, when one passes.
    Returns (checkpoint, why it was taken, or None when the saved spelling stands);
    when every spelling fails the saved one stays (the load fails on it), and the why says so."""
    alt = ckpt.respelled() if isinstance(ckpt, Checkpoint) else None
    # no released checkpoint holds these (read before any load: a draft's loader flips its flags): never a reason
    ignored = set(_kept(model)) | set(_lent_or_shared(model, vc, ckpt))
    why, raised = _refusal(model, ckpt, vc, route_only=True)
    if not raised:  # its names load without an error: it stands, unless its loader skips some and leaves them unwritten
        unwritten, failed = _refusal(model, ckpt, vc, ignored=ignored)
        if not unwritten or failed:
            return ckpt, None
        # ernie45_vl: transformers 5 saves the tower as model.vision_model.* (the reverse of its vision_model ->
        # vision_tower renaming under its model.), upstream's mapper sends model.* to the language model, whose loader
        # skips vision_model names; the class reads the released vision_model.* at the top. A spelling its own
        # load_weights writes back exactly is the one it is served with (both sides load it)
        own, renamed = own_names_of_skipped(model, ckpt, vc, ignored)  # else renamed says why not
        if own is not None:
            return own, (f"of which upstream vLLM's own {type(model).__name__} leaves {unwritten} (a loader that "
                         f"skips names it lacks), so those tensors under the parameters' own names (e.g. {renamed}), "
                         "which its own load_weights writes back exactly")
        derived, why_not, _ = named_by_upstream(model, seed, vc)
        if why_not is None:
            return derived, (f"of which upstream vLLM's own {type(model).__name__} leaves {unwritten} (a loader that "
                             f"skips names it lacks): the checkpoint named by {type(model).__name__} instead "
                             "(validated by its own load_weights)")
        return ckpt, (f"of which upstream vLLM's own {type(model).__name__} leaves {unwritten} too (a loader "
                      "that skips names it lacks: not the spelling it is served with); not under the parameters' own "
                      f"names ({renamed}), nor in any checkpoint derived from it ({why_not[:300]})")
    # nothing renamed on save still may be refused: transformers 5's ColModernVBertForRetrieval names its
    # tensors embedding_proj_layer / vlm.*, upstream's class reads the released model.custom_text_proj / model.*
    name, why = type(model).__name__, why.split(". ")[0]
    if alt is not None and _refusal(model, alt, vc, route_only=True)[0] is None:
        renamed = next(f"{k} -> {v}" for k, v in ckpt.in_memory.items() if k != v)
        taken = (f"in the class's own names (e.g. {renamed}): upstream vLLM's own {name} refuses the spelling "
                 f"transformers saves ({why}) and routes each of these names to its parameters")
        values = _refusal(model, alt, vc)[0]
        return alt, taken + (f"; its own weight loaders then fail on the values ({values})" if values else "")
    derived, why_not, taken = named_by_upstream(model, seed, vc)
    if why_not is None:  # the layout / respelling taken named: where the names come from (cohere_asr: NeMo's)
        how = f"; {taken['id']}: {taken['evidence'][:240]}" if taken else ""
        return derived, (f"refused by upstream vLLM's own {name} as transformers saves it ({why}) and in the "
                         f"class's own names: the checkpoint named by {name} (validated by its own load_weights{how})")
    # the saved spelling stays and the load fails on it: the report says upstream's class refuses it too
    return ckpt, (f"which upstream vLLM's own {name} refuses too ({why}), as it does "
                  f"{'the in-memory names and ' if alt is not None else ''}every checkpoint derived from it "
                  f"({why_not[:300]})")

# ------------------------------------------------------------------------------------------------
# checkpoint names from the upstream vLLM class (no transformers has the architecture)

_QKV_SHARDS = {"q": 0, "k": 1, "v": 2}
# vLLM's conventional stacked layers, as the ``stacked_params_mapping`` inside most ``load_weights`` spell
# them; a model's own mappings win (K2-Horizon declares gate_up_proj in packed_modules_mapping only for
# some configs, and its loader stacks it always). The self-check decides whether they hold.
CONVENTIONAL_STACKED = {"qkv_proj": ["q_proj", "k_proj", "v_proj"], "gate_up_proj": ["gate_proj", "up_proj"]}


def _shard_index(shard):
    """A stacked mapping's shard id as the span (first, last) of the layer's ``output_sizes`` it covers:
    0 or "q" one entry, a tuple one contiguous span (Qwen3.5's ``.in_proj_qkv`` -> (0, 1, 2) of
    ``in_proj_qkvz``'s four); None for anything else."""
    if isinstance(shard, (tuple, list)) and shard and all(isinstance(i, int) for i in shard):
        return (shard[0], shard[-1]) if list(shard) == list(range(shard[0], shard[-1] + 1)) else None
    if isinstance(shard, str):
        shard = _QKV_SHARDS.get(shard)
    return (shard, shard) if isinstance(shard, int) else None


_MAPPER_ARG = re.compile(r"\bmapper\s*=\s*self\.(\w+)\b")


def _mapper_attr(mod):
    """The attribute holding the mapper ``mod``'s own ``load_weights`` passes (``mapper=self.<name>``), else
    ``hf_to_vllm_mapper``: JinaVL's loader passes its ``weight_mapper`` ("model." -> "language_model.model."), not the
    ``hf_to_vllm_mapper`` it inherits from Qwen2-VL ("model.visual." -> "visual."), and read backwards the inherited
    one spelled its tower model.visual.*, which JinaVL's mapper sends into the language model."""
    import inspect

    try:
        found = _MAPPER_ARG.findall(inspect.getsource(type(mod).load_weights))
    except (AttributeError, OSError, TypeError):
        return "hf_to_vllm_mapper"
    return found[0] if len(set(found)) == 1 else "hf_to_vllm_mapper"


_MODULE_MAPPER_ARG = re.compile(r"\bmapper\s*=\s*([A-Za-z_]\w*)\s*[,)]")
_HANDS_SELF = re.compile(r"\b([A-Za-z_]\w*)\(\s*self\s*,")


def _module_mapper(mod):
    """The module-level mapper ``mod``'s own ``load_weights`` passes its loader (``mapper=NAME``), or that a function
    of its module it hands ``self`` to passes (Ultravox's whisper encoder: ``_load_whisper_layer_weights(self,
    weights)`` passes ``_WHISPER_ENCODER_MAPPER``), when exactly one such mapper is found; else None."""
    import inspect
    import sys

    fn = getattr(type(mod), "load_weights", None)
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        return None
    scope = vars(sys.modules.get(getattr(fn, "__module__", None), None) or object())
    sources = [src]
    for called in _HANDS_SELF.findall(src):
        if inspect.isfunction(scope.get(called)):
            try:
                sources.append(inspect.getsource(scope[called]))
            except (OSError, TypeError):
                pass
    found = {id(m): m for text in sources for name in _MODULE_MAPPER_ARG.findall(text)
             if name != "self" and hasattr(m := scope.get(name), "orig_to_new_prefix")}
    return next(iter(found.values())) if len(found) == 1 else None


def _passed_stacks(model):
    """The stacked layers (``orig_to_new_stacked`` targets) of the mappers a module's own ``load_weights`` passes its
    loader by name (``mapper=self.<name>``): FunAudioChat's Qwen3 decoder stacks q/k/v and gate/up that way; DFlash
    Laguna's model inherits such a mapper from DFlash-Qwen3 and its own loader never passes it (params_dict[name])."""
    import inspect

    out = set()
    for _, mod in model.named_modules():
        try:
            passed = set(_MAPPER_ARG.findall(inspect.getsource(type(mod).load_weights)))
        except (AttributeError, OSError, TypeError):
            continue
        for attr in passed:
            stacked = getattr(getattr(mod, attr, None), "orig_to_new_stacked", None) or {}
            out |= {new for new, _ in stacked.values()}
    return out


def kept_whole(layout, stacks):
    """The stacked layers of ``stacks`` (:func:`_passed_stacks`) that ``layout`` keeps whole (all of them for a
    layout that splits none, those its ``held_stacked`` names otherwise), sorted: a layout that keeps whole what the
    model's own mappers read in parts spells no release. Pure."""
    if not layout["split_stacked"]:
        return sorted(stacks)
    held = {h.strip(".") for h in layout.get("held_stacked") or ()}
    return sorted(s for s in stacks if s.strip(".") in held)


def _mappers(model):
    """(module path, WeightsMapper) of every module declaring ``hf_to_vllm_mapper`` (or passing another mapper of its
    own to its loader, :func:`_mapper_attr`; without either, a module-level one its loader passes,
    :func:`_module_mapper`)."""
    out = []
    for path, mod in model.named_modules():
        # a class attribute mostly; MiMoMTP builds its own in __init__ (its MTP layers' index offset)
        mapper = getattr(mod, _mapper_attr(mod), None)
        if mapper is None and callable(getattr(mod, "load_weights", None)):
            mapper = _module_mapper(mod)
        if mapper is not None and hasattr(mapper, "orig_to_new_prefix"):
            out.append((path, mapper))
    return out


def _substr_inverse(rel, substr):
    """The fewest of ``substr``'s renames ({orig: new}) read backwards on ``rel`` such that the mapper's substring
    stage (every entry in order, each once, as upstream's ``WeightsMapper`` applies them) gives ``rel`` back: FunASR's
    top mapper renames both ``linear_q.`` -> ``q_proj.`` and ``audio_encoder.`` -> ``model.encoder.audio_encoder.``
    in one name, and leaves its decoder's ``q_proj`` alone. ``rel`` itself when nothing does. Pure."""
    from itertools import combinations

    def forward(key):
        for orig, new in substr.items():
            if orig in key:
                if new is None:
                    return None
                key = key.replace(orig, new, 1)
        return key

    found = [(orig, new) for orig, new in substr.items() if new and new in rel]
    for size in range(len(found) + 1):
        for chosen in combinations(found, size):
            cand = rel
            for orig, new in reversed(chosen):
                cand = cand.replace(new, orig, 1) if new in cand else cand
            if forward(cand) == rel:
                return cand
    return rel


def _prefix_forward(key, prefix):
    """``key`` through a ``WeightsMapper``'s prefix stage as both vLLMs apply it (``_map_name``): every entry in order,
    each tested on the key as renamed so far, none ending the loop; None for a dropped name. Pure."""
    for orig, new in prefix.items():
        if key.startswith(orig):
            if new is None:
                return None
            key = key.replace(orig, new, 1)
    return key


def _prefix_inverse(rel, prefix):
    """``rel`` read backwards through ``prefix`` ({orig: new}): the first entry whose ``new`` starts it, as before,
    when the forward stage (:func:`_prefix_forward`) sends that back to ``rel``; else the first other entry, or ``rel``
    itself, that it does send back. ColUltraVBert's ``{"vision_model.vision_model.": "vision_model.vision_model.",
    "vision_model.": "vision_model.vision_model."}`` renames an already doubled name again (no entry ends the loop), so
    only ``vision_model.*`` loads, and the first match, the identity, spells a name its loader refuses. Pure."""
    found = [orig + rel[len(new):] for orig, new in prefix.items()
             if new is not None and rel.startswith(new) and (new or orig)]
    for cand in (*found, rel):
        if _prefix_forward(cand, prefix) == rel:
            return cand
    return found[0] if found else rel


def _unmap(name, mappers, substr_exact=False):
    """``name`` (a vLLM parameter) as the checkpoint spells it: each module's ``hf_to_vllm_mapper``
    read backwards on the part of the name under that module (prefix, substring and suffix maps;
    an ignored name, mapped to None, names no tensor). Deepest module first, as a loader nests.
    ``substr_exact``: the substring map read backwards by :func:`_substr_inverse`, not its first match only."""
    for path, mapper in sorted(mappers, key=lambda pm: -len(pm[0])):
        if path and not name.startswith(path + "."):
            continue
        head, rel = (path + ".", name[len(path) + 1:]) if path else ("", name)
        for orig, new in (getattr(mapper, "orig_to_new_suffix", None) or {}).items():
            if new and rel.endswith(new):
                rel = orig.join(rel.rsplit(new, 1))
                break
        rel = _prefix_inverse(rel, getattr(mapper, "orig_to_new_prefix", None) or {})
        if substr_exact:
            rel = _substr_inverse(rel, getattr(mapper, "orig_to_new_substr", None) or {})
        for orig, new in () if substr_exact else (getattr(mapper, "orig_to_new_substr", None) or {}).items():
            if new and new in rel and not _leaf_alias(orig, new, rel, mapper):
                rel = rel.replace(new, orig, 1)
                break
        name = head + rel
    return name


def unnamed_by_mappers(names, mappers):
    """{parameter: (module path, why)} for each of ``names`` that no checkpoint name reaches through ``mappers``
    (:func:`_mappers`), read as the loaders nest (a module's own ``load_weights`` gets names relative to it):

    - a prefix map sends no name to it (:func:`_prefix_inverse`, then :func:`_prefix_forward`): ColQwen3.5's own
      mapper sends every ``language_model.`` name to ``language_model.model.``, so its language model's ``lm_head``
      has no name and the derived one lands in Qwen3_5Model;
    - a stacked map builds its layer from parts, and none of its keys is in the name the module gets:
      FunAudioChatAudioAttention's ``.q_proj`` -> ``.qkv_proj`` (a leading dot) never matches the ``q_proj.weight``
      its own load_weights receives, so its qkv_proj has no name.

    Pure."""
    out = {}
    for name in names:
        cur = name
        for path, mapper in sorted(mappers, key=lambda pm: -len(pm[0])):
            if path and not cur.startswith(path + "."):
                continue
            rel = cur[len(path) + 1:] if path else cur
            stacked = getattr(mapper, "orig_to_new_stacked", None) or {}
            head, _, leaf = rel.rpartition(".")
            above, _, holder = head.rpartition(".")
            parts = [orig for orig, (new, _) in stacked.items() if new.strip(".") == holder]
            if parts and not any(new in rel for new, _ in stacked.values()):
                part = ".".join(filter(None, (above, parts[0].strip("."), leaf)))
                out[name] = (path, f"its stacked map ({parts[0]!r} -> {stacked[parts[0]][0]!r}) renames no name it "
                                   f"gets ({part}, relative to it), so no part reaches {rel}")
                break
            prefix = getattr(mapper, "orig_to_new_prefix", None) or {}
            inv = _prefix_inverse(rel, prefix)
            sent = _prefix_forward(inv, prefix)
            if sent != rel:
                out[name] = (path, f"its prefix map {'drops ' + inv if sent is None else f'sends {inv} to {sent}'}"
                                   + (f", so no name reaches {rel}" if inv == rel else ""))
                break
            cur = (path + "." if path else "") + inv
    return out


def _leaf_alias(orig, new, rel, mapper):
    """Whether a substring rename ``orig`` -> ``new`` only renames the parameter leaf of the same module (BERT's
    ``LayerNorm.gamma`` -> ``LayerNorm.weight``: a legacy alias of TF-era checkpoints) and ``mapper`` reads ``rel``
    as held unchanged: then the module's own state-dict spelling is a name the loader reads, and the one the load
    level pairs parameters by (their names' endings; reversed, ``embeddings.LayerNorm.weight`` paired with the only
    tensor still ending so, the MLM head's)."""
    o_mod, _, o_leaf = orig.rpartition(".")
    n_mod, _, n_leaf = new.rpartition(".")
    if not (o_mod and o_mod == n_mod and o_leaf != n_leaf and rel.endswith(new)):
        return False
    forward = getattr(mapper, "map_name", None) or getattr(mapper, "_map_name", None)
    try:
        return callable(forward) and forward(rel) == rel
    except Exception:
        return False


def _stacked(model, extra=None):
    """Stacked vLLM layers and their checkpoint parts: ``{fused: [(part, shard span)]}`` from the
    mappers' ``orig_to_new_stacked`` (".mlp.gate_proj" -> (".mlp.gate_up_proj", 0)) and the
    ``packed_modules_mapping`` of every module ({"qkv_proj": ["q_proj", "k_proj", "v_proj"]},
    parts in shard order). Mapper entries are substrings (with their dots), packed ones leaf names."""
    out = {}
    for _, mapper in _mappers(model):
        for orig, (new, shard) in (getattr(mapper, "orig_to_new_stacked", None) or {}).items():
            idx = _shard_index(shard)
            if idx is not None:
                out.setdefault(("substr", new), []).append((orig, idx))
    for leaf, parts in {**CONVENTIONAL_STACKED, **(extra or {}), **_packed(model)}.items():
        if isinstance(parts, (list, tuple)) and list(parts) != [leaf]:
            out.setdefault(("leaf", leaf), [(part, (i, i)) for i, part in enumerate(parts)])
    return out


def _split_stacked(name, param, sizes, stacked):
    """(checkpoint part name, slice) pairs of a stacked parameter (its layer's ``output_sizes``), else None."""
    if not sizes or len(sizes) < 2:
        return None
    dim = getattr(param, "output_dim", 0) or 0
    leaf = name.split(".")[-2] if "." in name else ""
    for (kind, key), parts in stacked.items():
        # a mapper's substring names a whole segment: the Qwen2-VL tower's ".qkv" is not the ".qkv_proj" of the
        # language model beside it (JinaVL), which the tower's mapper never sees
        at = re.compile(re.escape(key) + ("" if key.endswith(".") else r"(?=\.|$)"))
        if kind == "substr" and at.search("." + name):
            renamed = [at.sub(lambda _m, o=orig: o, "." + name, count=1)[1:] for orig, _ in parts]
        elif kind == "leaf" and key == leaf:
            pieces = name.split(".")
            renamed = [".".join(pieces[:-2] + [part, pieces[-1]]) for part, _ in parts]
        else:
            continue
        if sorted(i for _, span in parts for i in range(span[0], span[1] + 1)) != list(range(len(sizes))):
            continue  # the parts must tile the layer's outputs exactly
        return [(new, (dim, sum(sizes[:lo]), sum(sizes[lo:hi + 1]))) for (_, (lo, hi)), new in zip(parts, renamed)]
    return None


def _expert_parts(model):
    """Per-expert checkpoint names of the fused expert parameters: ``{param: [(name, (expert, dim,
    start, size))]}``, from each expert layer's own ``get_expert_mapping()`` (param prefix, checkpoint
    name, expert, shard w1/w2/w3) read backwards: w1 is the first half of w13's rows, w3 the second."""
    out = {}
    for path, mod in model.named_modules():
        get = getattr(mod, "get_expert_mapping", None)
        own = dict(mod.named_parameters(recurse=False))
        if not callable(get) or not own:
            continue
        try:
            mapping = list(get())
        except Exception:
            continue
        pieces = path.split(".")
        at = max((i for i, piece in enumerate(pieces) if piece == "experts"), default=None)
        if at is None:
            continue
        base = ".".join(pieces[:at])
        gated = {s for _, _, _, s in mapping} >= {"w1", "w3"}
        for param_prefix, weight_name, expert, shard in mapping:
            prefix = param_prefix.split(".")[-1]
            for pname, p in own.items():
                if not pname.startswith(prefix) or p.dim() < 2:
                    continue
                leaf = pname[len(prefix):]
                rows = p.shape[1]
                start, size = (0, rows) if shard == "w2" or not gated else ((0, rows // 2) if shard == "w1" else (rows // 2, rows // 2))
                out.setdefault(f"{path}.{pname}", []).append(
                    ((base + "." if base else "") + weight_name + leaf, (expert, 1, start, size)))
    return out


def upstream_checkpoint(model, seed, layout=None, config=None, lent=()):
    """A checkpoint as the released one of ``model`` (an upstream vLLM class, built) would be spelled,
    derived from the model itself: random values (fixed seed) for each of its parameters, split back
    through its own mappings (stacked layers by their ``output_sizes``, fused experts by their expert
    mapping, names by the ``hf_to_vllm_mapper`` read backwards). ``layout`` (a ``checkpoint_layouts.LAYOUTS``
    entry, default the first) may keep stacked layers whole or join each tensor's experts into one. Returns
    (checkpoint, the parameters' values it should load to), the checkpoint None when the layout does not
    apply. ``lent`` (:func:`lent_by_target`): parameters the draft takes from the target, drawn as the others but
    held beside the checkpoint (``Checkpoint.lent``), never in it. Only as good as :func:`self_check` finds it."""
    import torch

    layout = layout or LAYOUTS[0]
    gen = torch.Generator().manual_seed(seed)
    mappers = [] if layout.get("unmapped") else _mappers(model)
    exact = bool(layout.get("substr_exact"))
    stacked = _stacked(model, layout["stacked_extra"]) if layout["split_stacked"] else {}
    held = set(layout.get("held_stacked") or ())  # kept whole: the loader reads them as the class holds them
    stacked = {key: parts for key, parts in stacked.items() if key[1].strip(".") not in held}
    experts = _expert_parts(model) if layout["split_experts"] else {}
    modules = dict(model.named_modules())
    expected = {}
    out, beside = Checkpoint(), {}
    for name, p in model.named_parameters():
        if not p.is_floating_point() or kept_at_init(name, modules.get(name.rpartition(".")[0], model)):
            continue  # kept at its initial value by design: no released checkpoint holds it
        t = torch.randn(tuple(p.shape), generator=gen, dtype=torch.float32) * 0.1
        if p.dim() == 1 and "norm" in name and name.endswith("weight"):
            t = t + 1.0
        if name in lent:
            expected[name] = beside[name] = t
            continue
        entry = folded(name)
        if entry is not None:  # stored as the loader reads it, the parameter its fold (checkpoint_layouts)
            old_leaf, new_leaf = entry["stored"]
            expected[name] = fold(entry["fold"], t)
            out[_unmap(name[: len(name) - len(old_leaf)] + new_leaf, mappers, exact)] = t.contiguous()
            continue
        owner = modules.get(name.rsplit(".", 1)[0]) if "." in name else model
        rows = getattr(owner, "org_vocab_size", None) if name.endswith("weight") else None
        padded = isinstance(rows, int) and 0 < rows < p.shape[0]
        if padded:
            # a vocabulary embedding padded past its vocabulary (BERT's 2 token types in 64 rows): the checkpoint holds
            # the vocabulary's rows only (VocabParallelEmbedding.weight_loader asserts it) and the loader zeroes the rest
            t[rows:] = 0
        split = row_parts(name, rows if padded else p.shape[0], layout.get("split_rows"), config)
        if split == ():
            return None, expected  # the layout names this parameter and its sizes do not fit it
        if split:
            expected[name] = t
            for new, start, size in split:
                out[new] = t.narrow(0, start, size).contiguous()
            continue
        if padded:
            expected[name] = t
            out[_unmap(name, mappers, exact)] = t[:rows].contiguous()
            continue
        expected[name] = t
        held = held_expert_parts(name, tuple(p.shape), layout.get("held_experts"))
        if held is not None:
            for new, e, start, size in held:
                out[_unmap(new, mappers, exact)] = t[e].narrow(0, start, size).contiguous()
            continue
        even = even_parts(name, tuple(p.shape), layout.get("split_even"))
        if even is not None:
            for new, start, size in even:
                out[_unmap(new, mappers, exact)] = t.narrow(0, start, size).contiguous()
            continue
        if name in experts:
            for new, (e, dim, start, size) in experts[name]:
                out[_unmap(new, mappers, exact)] = t[e].narrow(dim - 1, start, size).contiguous()
            continue
        whole = any(name.startswith(h) for h in layout.get("held_under") or ())  # a tower released fused
        parts = None if whole else _split_stacked(name, p, list(getattr(owner, "output_sizes", None) or []), stacked)
        if parts is None:
            out[_unmap(name, mappers, exact)] = t.contiguous()
            continue
        for new, (dim, start, size) in parts:
            out[_unmap(new, mappers, exact)] = t.narrow(dim, start, size).contiguous()
    permuted = []
    for pattern, field in layout.get("interleaved_rotary") or ():  # read back through the loader's permutation
        for name in [n for n in out if re.search(pattern, n)]:
            out[name] = interleave_rotary(out[name], getattr(config, field, None))
            if out[name] is None:
                return None, expected
            permuted.append(name)
    if layout["stack_experts"] is not None:
        joined = stacked_experts(out, layout["stack_experts"])
        if not joined or any(len({tuple(out[n].shape) for n in parts}) != 1 for parts in joined.values()):
            return None, expected
        for name, parts in joined.items():
            out[name] = torch.stack([out.pop(n) for n in parts]).contiguous()
    out = Checkpoint({k: out[k] for k in sorted(out)})
    out.in_memory = {}
    out.permuted = tuple(sorted(permuted))  # the same names as another layout's, other values
    out.lent = beside
    return out, expected


def load_over_nan(model, ckpt, vc):
    """``ckpt`` through ``model``'s own ``load_weights`` after every floating parameter is set to NaN, so what the
    loader leaves unwritten stays NaN (clones: a loader may write into the tensors it is given); what
    ``load_weights`` returns."""
    import torch
    from vllm.config import set_current_vllm_config

    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.data.fill_(float("nan"))
    with set_current_vllm_config(vc):
        return model.load_weights(iter([(k, v.clone()) for k, v in ckpt.items()]))


def supply_unset(exc, supplied=None):
    """Set the attribute an upstream bug leaves unset (``exc``: :func:`unset_attribute`'s) on the object that lacks
    it, when ``checkpoint_layouts.UNSET_BY_UPSTREAM`` values it and no submodule holds it set otherwise: the entry
    (appended to ``supplied``), else None."""
    unset = unset_attribute(exc)
    entry = UNSET_BY_UPSTREAM.get(unset or "")
    if entry is None:
        return None
    obj, attr = exc.obj, exc.name
    modules = obj.modules() if hasattr(obj, "modules") else ()
    if any(getattr(m, attr, entry["value"]) != entry["value"] for m in modules if m is not obj):
        return None
    setattr(obj, attr, entry["value"])
    entry = {"id": f"{unset}={entry['value']!r}", "evidence": f"upstream bug {unset}: {entry['why']}"}
    if supplied is not None and entry not in supplied:
        supplied.append(entry)
    return entry


def self_check(model, ckpt, expected, vc, supplied=None):
    """Load ``ckpt`` through ``model``'s own ``load_weights``: every parameter written and equal to the
    values the checkpoint was derived from. The reason it fails, else None (the checkpoint is right).
    An attribute upstream's loader reads and no class sets is supplied as ``UNSET_BY_UPSTREAM`` values it
    (:func:`supply_unset`, each recorded in ``supplied``) and the load run again."""
    import torch

    kept = _kept(model)
    for _ in range(len(UNSET_BY_UPSTREAM) + 1):
        try:
            load_over_nan(model, ckpt, vc)
            break
        except Exception as exc:
            if supply_unset(exc, supplied) is not None:
                continue
            unset = unset_attribute(exc)  # upstream's own loader reads what no class of the object sets: any checkpoint
            if unset:
                return (f"reference cannot run: upstream bug {unset} (its load_weights reads it, no class of the object "
                        f"sets it: {type(exc).__name__}: {str(exc)[:200]})")
            return f"its load_weights refused the derived checkpoint ({type(exc).__name__}: {str(exc)[:200]})"
    else:  # each supplied once: not reached
        return "its load_weights refused the derived checkpoint (upstream bugs stepped over, still failing)"
    restored = set(_restore_kept(model, kept))  # kept at init by design: never derived, never in the checkpoint
    expected = {n: t for n, t in expected.items() if n not in restored}
    params = dict(model.named_parameters())
    # the target's at serving time: the harness fills them alike
    shared = set(target_shared(model, vc, ckpt)) | set(getattr(ckpt, "lent", None) or ())
    unloaded = sorted(n for n in expected if torch.isnan(params[n].data).any() and not
                      (n in shared and torch.isnan(params[n].data).all()))
    expected = {n: t for n, t in expected.items() if n not in shared or not torch.isnan(params[n].data).all()}
    if unloaded:
        return f"{len(unloaded)} parameter(s) not (fully) written by its load_weights: {', '.join(unloaded[:4])}"
    # a loader that scales on load (checkpoint_layouts.LOAD_SCALES) writes the derived values times its factor
    config = getattr(model, "config", None) or getattr(vc.model_config, "hf_config", None)
    want = {n: t * load_scale(n, config) for n, t in expected.items()}
    differ = sorted(n for n, t in want.items() if not torch.equal(params[n].data, t.to(params[n].dtype)))
    differ = [n for n in differ if not _own_loader_wrote(model, n, params[n], ckpt)]
    if differ:
        return f"{len(differ)} parameter(s) differ from the derived checkpoint after its load_weights: {', '.join(differ[:4])}"
    return None


def _own_loader_wrote(model, name, param, ckpt):
    """Whether ``param`` (``name``) holds exactly what its own ``weight_loader`` writes from the checkpoint tensor
    derived under its name alone (unsplit): a loader that transforms on load (PLaMo 3's norms, a composed
    default_weight_loader adding an offset) got that tensor, so the name is right and the value is the loader's own.
    False without such a tensor or loader, or when the loader fails or writes anything else."""
    import torch

    loader = getattr(param, "weight_loader", None)
    key = _unmap(name, _mappers(model))
    if not callable(loader) or key not in ckpt or tuple(ckpt[key].shape) != tuple(param.shape):
        return False
    scratch = torch.nn.Parameter(torch.full_like(param.data, float("nan")), requires_grad=False)
    try:
        with torch.no_grad():
            loader(scratch, ckpt[key].clone())
    except Exception:
        return False
    return torch.equal(scratch.data, param.data)


def named_by_upstream(model, seed, vc):
    """The checkpoint :func:`upstream_checkpoint` derives from ``model`` in the first layout
    (``checkpoint_layouts.LAYOUTS``: stacked layers split, experts per expert), as it is or respelled
    (``draft_respellings.RESPELLINGS``: a draft's ``load_weights`` renames in code, ``"model." + name``), that
    passes :func:`self_check`; layouts in order, each as it is first. A draft whose loader writes none of them
    then again with the parameters it takes from the target (:func:`lent_by_target`) beside the checkpoint, not
    in it. Returns (checkpoint, why none passed or None, the layout / respelling taken or None: ``{"id",
    "evidence"}``); nothing passes that upstream's own loader does not write back exactly."""
    config = getattr(model, "config", None) or getattr(vc.model_config, "hf_config", None)
    fields = {f: getattr(config, f, None) for f in FIELDS}
    first, tried, supplied = None, [], []  # supplied: upstream bugs stepped over (UNSET_BY_UPSTREAM)
    lent = tuple(lent_by_target(model, vc))  # as built: its loader flips the flags on a name it sees
    stacks = _passed_stacks(model)
    built = {flag: getattr(model, flag) for flag, _ in TARGET_LENT if hasattr(model, flag)}
    for beside in ((), lent) if lent else ((),):
        for flag, value in built.items():  # each pass from the flags as built
            setattr(model, flag, value)
        lend = [LENT_ENTRY] if beside else []
        seen = set()
        for layout in LAYOUTS:
            whole = kept_whole(layout, stacks)
            if whole:
                # its own mappers read stacked layers in parts (FunAudioChat's Qwen3 decoder): no release of it holds
                # them whole, whatever its loader would take (the pinned Qwen3 loader refuses it: gate_gate_up_proj,
                # and a whole qkv_proj: qkqkv_proj)
                if not beside:
                    tried.append(f"in layout {layout['id']}: not taken: its own mappers stack "
                                 f"({', '.join(whole[:3])}), so no release holds those layers whole")
                continue
            ckpt, expected = upstream_checkpoint(model, seed, layout, config, beside)
            key = None if ckpt is None else (frozenset(ckpt), ckpt.permuted)
            if ckpt is None or key in seen:  # the layout does not apply, or changes nothing here
                continue
            seen.add(key)
            first = ckpt if first is None else first
            for entry in (None, *RESPELLINGS):
                if entry is None:
                    alt = ckpt
                else:
                    names = respell(ckpt, entry["rewrites"], fields)
                    if names is None or all(k == v for k, v in names.items()):
                        continue
                    alt = Checkpoint({names[k]: t for k, t in ckpt.items()})
                    alt.in_memory, alt.lent = {}, ckpt.lent
                why = self_check(model, alt, expected, vc, supplied)
                taken = [e for e in (None if layout is LAYOUTS[0] else layout, entry, *lend, *supplied) if e is not None]
                if why is None:
                    return alt, None, ({"id": " + ".join(e["id"] for e in taken),
                                        "evidence": "; ".join(e["evidence"] for e in taken)} if taken else None)
                head = "with the target's tensors beside it, " if beside else ""
                if entry is None:  # each layout's own failure, and the respellings' of the first only (length)
                    tried.append(head + (f"in layout {layout['id']}: " if layout is not LAYOUTS[0] else "") + why[:200])
                elif layout is LAYOUTS[0]:
                    tried.append(f"{head}respelled {entry['id']}: {why[:200]}")
    unnamed = unnamed_by_mappers([n for n, _ in model.named_parameters()], _mappers(model))
    if unnamed:  # the cause, first: its own mappers leave these with no name, so no release can hold them
        (name, (path, why)), more = next(iter(unnamed.items())), len(unnamed) - 1
        tried.insert(0, f"its own mappers send no checkpoint name to {name}{f' (and {more} more)' if more else ''} "
                        f"({type(dict(model.named_modules())[path]).__name__}: {why}): no name in any checkpoint loads it "
                        "through its own load_weights")
    return first, "; ".join(tried), None
