"""Images through the vision tower for ``verify --run``: the multimodal half of the forward level.

Standard library only at import and no ``flagos_migrate`` imports: ``_runtime_worker.py`` loads
this file by path inside a foreign venv (the pinned or the upstream vLLM); torch, transformers and
vLLM are imported inside the functions that need them. The host tests the pure parts directly.

What the forward level does for a multimodal architecture, in the order vLLM's runner does it:

1. ``get_language_model()`` must return a module (0.13.0's ``SupportsMultiModal`` default returns
   None: a class that lost upstream's ``_mark_language_model`` crashes at the first image);
2. one tiny image with deterministic pixels goes through the model's Hugging Face image processor
   (constructed with its defaults, sized to the tiny tower; no downloaded files), and the processor's
   outputs become the kwargs the runner passes, through the pinned model's own multimodal processor
   field layout (``_get_mm_fields_config`` + ``group_mm_kwargs_by_modality``) where it can be built;
3. ``embed_multimodal`` (or ``get_multimodal_embeddings`` on versions that name it so) runs the tower
   and the projector; the prompt holds one image placeholder token per embedding row;
4. ``embed_input_ids(input_ids, mm_embeds, is_multimodal=mask)`` merges them at the placeholders and
   a prefill with ``inputs_embeds`` gives finite logits.

The kwargs, token ids and logits are written next to the text artifacts, so the reference side
(upstream vLLM) runs the same image through its own classes and ``match`` compares both prefills.
"""

import json
import os

IMAGE_PATCHES = 4  # patches per side of the tiny image (a 2x2 grid after a 2x2 spatial merge)
DEFAULT_PATCH = 14
# model types whose checkpoints read the SigLIP tower's patch states: their vision_config says
# vision_use_head false (vLLM's SigLIP pools the image to one token when the key is absent or true;
# Cohere2Vision's projector pixel-shuffles a grid of patches, which one pooled token is not; upstream's
# lfm2_siglip2.Siglip2Model, LFM2-VL's tower, builds no head at all, so its checkpoints carry none; 4.57.6's
# Lfm2VlConfig spells its type "lfm2-vl", the key AutoConfig maps it by "lfm2_vl")
PATCH_STATE_TOWERS = ("gemma3", "paligemma", "cohere2_vision", "lfm2_vl", "lfm2-vl")
# Aria: its projector takes only the patch counts its config's projector_patch_to_query_dict names (1225
# and 4900 in every checkpoint: a 490 or 980 image, the only sizes AriaImageProcessor makes, in the real
# tower's 14-pixel patches), so the tiny tower keeps that geometry and sees the smaller image
QUERY_PROJECTOR_TOWER = {"patch_size": 14, "image_size": 490}
# architectures whose towers and processor are built from constants, not from the config: the config's image_size
# stays the released one, which upstream's model checks the pixels against. DeepSeek-OCR-2 builds SAM-B and a Qwen2
# encoder of fixed sizes (deepencoder2.py), its processor resizes every image to BASE_SIZE 1024, and its
# _parse_and_validate_image_input binds base_size = vision_config.image_size (1024 in its config.json): shrunk to a
# few patches, the image forward failed "data dim[2] expected 64, got 1024". Unlimited-OCR (upstream's
# unlimited_ocr.py) is DeepSeek-OCR's vision stack; its migrated file builds on the pinned deepseek_ocr.py, whose
# _parse_and_validate_image_input binds base_size = vision_config.image_size (upstream's binds the pixels' own side),
# while the processor resizes every image's global view to BASE_SIZE 1024 (both vLLMs' processors/deepseek_ocr.py):
# the pinned forward failed the same way. At the released geometry both sides take the same 1024 pixels
FIXED_GEOMETRY_ARCHS = frozenset({"DeepseekOCR2ForCausalLM", "UnlimitedOCRForCausalLM"})
KWARGS_FILE = "mm_kwargs.pt"
IDS_FILE = "mm_ids.json"
LOGITS_FILE = "mm_logits.pt"
LOGITS_REF_FILE = "mm_logits_ref.pt"

# keys naming the image placeholder id, in the order looked up (top level, then the text config)
IMAGE_TOKEN_KEYS = ("image_token_id", "image_token_index", "image_pad_token_id", "img_context_token_id")
# keys naming the tokens a real prompt puts around an image's placeholders (Qwen2-VL's
# "<|vision_start|><|image_pad|>...<|vision_end|>", GLM-4.1V's begin/end of image)
IMAGE_DELIMITER_KEYS = (("vision_start_token_id", "vision_end_token_id"),
                        ("image_start_token_id", "image_end_token_id"))


def _tiny():
    """``runtime_tiny`` as the host imports it, or by path next to this file inside the worker."""
    try:
        from flagos_migrate.verify import runtime_tiny
    except ImportError:
        import runtime_tiny
    return runtime_tiny


def _tokenizer():
    """``runtime_tokenizer`` as the host imports it, or by path next to this file inside the worker."""
    try:
        from flagos_migrate.verify import runtime_tokenizer
    except ImportError:
        import runtime_tokenizer
    return runtime_tokenizer


class NoImage(Exception):
    """No image input could be built for this architecture here: the forward stays text-only."""


# --------------------------------------------------------------------------------------------
# tiny config (pure)


def shrink_vision_geometry(cfg: dict) -> None:
    """Make the tiny config's tower see a small image consistently: ``image_size`` is a few patches,
    and what is derived from it (tokens per image, pooling) follows. Mutates ``cfg`` (a tiny config)."""
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    for key in ("vision_config", "vision_tower_config"):
        vision = cfg.get(key)
        if not isinstance(vision, dict):
            continue
        # (Qwen2-VL's merger width, hidden_size apart from the tower's embed_dim: runtime_tiny._shrink_vision)
        patch = vision.get("patch_size") if isinstance(vision.get("patch_size"), int) else None
        if "spatial_pool_stride" in cfg and patch and patch > IMAGE_PATCHES:
            # LLaVA-NeXT-Video's pooler divides by image_size // patch_size**2 (1 for 336 / 14, 0 for
            # 4 patches of 14): smaller patches keep it 1, the same on the pinned and upstream side
            patch = vision["patch_size"] = IMAGE_PATCHES
        if isinstance(vision.get("image_size"), int) and not FIXED_GEOMETRY_ARCHS & set(cfg.get("architectures") or ()):
            vision["image_size"] = IMAGE_PATCHES * (patch or DEFAULT_PATCH)
        if isinstance(vision.get("num_image_tokens"), int):
            vision["num_image_tokens"] = IMAGE_PATCHES * IMAGE_PATCHES
        # a pixel-shuffle tower (Llama 4) folds 1/ratio^2 patch vectors into one, which its adapter MLP takes
        # intermediate_size wide (Scout: 5632 = 1408 / 0.5^2) and writes projector_output_dim wide, read by the
        # projector as vision_output_dim (both 4096 in the released config; the class's defaults disagree)
        ratio = vision.get("pixel_shuffle_ratio")
        if isinstance(ratio, float) and 0 < ratio < 1 and isinstance(vision.get("hidden_size"), int) \
                and isinstance(vision.get("intermediate_size"), int):
            vision["intermediate_size"] = round(vision["hidden_size"] / ratio ** 2)
            if isinstance(vision.get("projector_output_dim"), int) and isinstance(vision.get("vision_output_dim"), int):
                vision["vision_output_dim"] = vision["projector_output_dim"]
    # the tower keeps one block up to its feature layer (llava's vision_feature_layer=-2 builds all
    # but the last layer: two layers in the checkpoint, one built and run)
    layers = cfg.get("vision_feature_layer")
    layers = layers if isinstance(layers, list) else [layers]
    need = max([-x if x < 0 else x for x in layers if isinstance(x, int) and not isinstance(x, bool)] or [1])
    vision = next((cfg[k] for k in ("vision_config", "vision_tower_config") if isinstance(cfg.get(k), dict)), None)
    if vision is not None and need > 1:
        for key in ("num_hidden_layers", "depth", "num_layers"):
            if isinstance(vision.get(key), int):
                vision[key] = max(vision[key], min(need, 4))
    if isinstance(cfg.get("projector_patch_to_query_dict"), dict) and isinstance(vision, dict):
        vision.update(QUERY_PROJECTOR_TOWER)
    if cfg.get("model_type") in PATCH_STATE_TOWERS and isinstance(vision, dict):
        vision["vision_use_head"] = False
    # OPT (BLIP-2's language model) embeds tokens word_embed_proj_dim wide: the image embeddings are
    # merged at that width, so it follows the shrunk hidden size (as in most OPT checkpoints)
    if isinstance(text.get("word_embed_proj_dim"), int) and isinstance(text.get("hidden_size"), int):
        text["word_embed_proj_dim"] = text["hidden_size"]
    # gemma3: the tower's patches are average-pooled to mm_tokens_per_image (a square)
    if isinstance(cfg.get("mm_tokens_per_image"), int):
        cfg["mm_tokens_per_image"] = (IMAGE_PATCHES // 2) ** 2
    if isinstance(cfg.get("num_query_tokens"), int):  # blip2's Q-Former queries
        cfg["num_query_tokens"] = 4
    qformer = cfg.get("qformer_config")
    if isinstance(qformer, dict):
        for key, value in (("hidden_size", 32), ("num_hidden_layers", 1), ("num_attention_heads", 2),
                           ("intermediate_size", 64), ("encoder_hidden_size", None)):
            if key in qformer and isinstance(qformer[key], int):
                qformer[key] = value if value is not None else cfg.get("vision_config", {}).get("hidden_size", 32)


def image_token_id(cfg: dict):
    """The placeholder token id of an image in the (tiny) config dict, else None."""
    for scope in (cfg, cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else {}):
        for key in IMAGE_TOKEN_KEYS:
            if isinstance(scope.get(key), int) and not isinstance(scope.get(key), bool):
                return scope[key]
    return None


def image_delimiters(cfg: dict) -> tuple:
    """(start, end) token ids a real prompt puts around the image placeholders, from the (tiny)
    config dict, else (None, None). vLLM 0.13.0's Qwen2-VL family finds an image's M-RoPE grid by
    the token after each vision-start token (as transformers' ``get_rope_index``): placeholders
    without it get text positions, upstream's (from the placeholder offsets) grid ones."""
    for scope in (cfg, cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else {}):
        for start, end in IMAGE_DELIMITER_KEYS:
            ids = [scope.get(start), scope.get(end)]
            if all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                return tuple(ids)
    return (None, None)


def free_token(vocab: int, used: set):
    """The highest token id below ``vocab`` that is not in ``used``, else None."""
    return next((t for t in range(vocab - 1, 0, -1) if t not in used), None)


def prompt_with_image(ids: list, token: int, count: int, around: tuple = (None, None)) -> list:
    """The text prompt with ``count`` image placeholders in its middle, between the ``around``
    start and end tokens where the model has them."""
    half = len(ids) // 2
    start, end = around
    image = ([start] if start is not None else []) + [token] * count + ([end] if end is not None else [])
    return list(ids[:half]) + image + list(ids[half:])


def pixels(side: int) -> list:
    """A deterministic ``side`` x ``side`` RGB image as nested lists of 0..255 (no randomness)."""
    return [[[(x * 37 + y * 11 + c * 83 + (x * y) % 17) % 256 for c in range(3)] for x in range(side)]
            for y in range(side)]


# --------------------------------------------------------------------------------------------
# load (inside the worker)


def unbuilt_tensors(model, names) -> list:
    """Checkpoint tensors of modules the model deliberately does not build: a vision tower cut at its
    feature layer (``vision_feature_layer=-2`` builds one layer less; vLLM's CLIP/SigLIP loaders skip
    the rest) or a sub-module left None (an unused ``post_layernorm``). The tensor's module path is
    anchored at the model module that shares the longest dotted run of it; the tensor is unbuilt when
    that module's next attribute is None or its next index is past the end of a ModuleList. A pooling
    model without an ``lm_head`` does not build the one of the causal LM it adapts: vLLM's pooling
    adapters (``adapters.py``, pinned and upstream) delete it and their ``load_weights`` skip ``lm_head.``
    (DeepseekV3BidirectionalModel, named by transformers' DeepseekV3ForCausalLM)."""
    import torch.nn as nn

    headless = hasattr(model, "pooler") and not hasattr(model, "lm_head")

    by_suffix = {}
    for qual, mod in model.named_modules():
        parts = qual.split(".") if qual else []
        for i in range(len(parts)):
            by_suffix.setdefault(".".join(parts[i:]), []).append(mod)
    out = []
    for name in names:
        if headless and name.startswith("lm_head."):
            out.append(name)
            continue
        parts = name.split(".")
        best = None  # (run length, k, owner)
        for k in range(len(parts) - 1, 0, -1):
            for start in range(k):
                owners = by_suffix.get(".".join(parts[start:k]), [])
                if len(owners) == 1 and (best is None or k - start > best[0]):
                    best = (k - start, k, owners[0])
        if best is None:
            continue
        _, k, owner = best
        nxt = parts[k]
        if isinstance(owner, nn.ModuleList):
            gone = nxt.isdigit() and int(nxt) >= len(owner)
        else:
            gone = (nxt in owner._modules and owner._modules[nxt] is None) or \
                (nxt in vars(owner) and vars(owner)[nxt] is None)
        if gone:
            out.append(name)
    return out


# --------------------------------------------------------------------------------------------
# image inputs (inside the worker)


def _vision(cfg):
    for key in ("vision_config", "vision_tower_config"):
        v = getattr(cfg, key, None)
        if v is not None:
            return v
    return None


def _image_side(cfg):
    vision = _vision(cfg)
    patch = getattr(vision, "patch_size", None) if vision is not None else None
    size = getattr(vision, "image_size", None) if vision is not None else None
    if isinstance(size, int):
        return size
    return IMAGE_PATCHES * (patch if isinstance(patch, int) else DEFAULT_PATCH)


def _sized(value, side, area):
    if isinstance(value, dict):
        return {k: (area if k in ("shortest_edge", "longest_edge") and area else side) if isinstance(v, int) else v
                for k, v in value.items()}
    return value


# model types with no image processor of their own in transformers 4.57.6 whose upstream vLLM processing is
# another family's: upstream's qwen3_5.py builds Qwen3_5(Moe)ProcessingInfo on Qwen3VLProcessingInfo (the released
# Qwen3.5 checkpoints ship Qwen3-VL's preprocessor)
# ColQwen3 / OpsColQwen3 / Nemotron's Qwen3-VL embedder: upstream's ColQwen3ProcessingInfo forces Qwen3VLProcessor
# (their released checkpoints ship Qwen3-VL's preprocessor_config.json)
IMAGE_PROCESSOR_FAMILY = {"qwen3_5": "qwen3_vl", "qwen3_5_moe": "qwen3_vl",
                          **dict.fromkeys(("colqwen3", "ops_colqwen3", "qwen3_vl_nemotron_embed"), "qwen3_vl")}
# model type (else architecture: a synthesized config's model type is the harness's own; ColQwen3.5's is Qwen3.5's,
# which ships none of its own) whose upstream vLLM class
# loads its Hugging Face processor while it is built -> the family whose image processor its released checkpoints
# ship. ColQwen3's processing info asks the processor for a video processor to know its modality limits; Ovis2.5's
# builds its Ovis2_5Processor in __init__ (AutoImageProcessor: upstream's processors/ovis2_5.py documents a
# Qwen2VLImageProcessor). The tiny checkpoint dir holds that preprocessor_config.json
# (:func:`write_preprocessor_config`; the processor's tokenizer is runtime_tokenizer's). Without it upstream's
# class could not be built at all, so nothing named the checkpoint
SHIPS_PREPROCESSOR = {**dict.fromkeys(("colqwen3", "ops_colqwen3", "qwen3_vl_nemotron_embed", "ColQwen3_5"), "qwen3_vl"),
                      **dict.fromkeys(("Ovis2_5", "Ovis2_6ForCausalLM", "Ovis2_6_MoeForCausalLM"), "qwen2_vl")}
PREPROCESSOR_FILE = "preprocessor_config.json"
SYNTH_PREFIX = "mmf_synth_"  # _runtime_config's synthesized model types (this file imports no harness module)


def image_processor(cfg):
    """The Hugging Face image processor class of the config's model type, built with its defaults and
    sized to the tiny tower (the slow, PIL/numpy one: deterministic)."""
    import transformers
    from transformers.models.auto import image_processing_auto as ipa

    model_type = getattr(cfg, "model_type", None)
    names = ipa.IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type) or ipa.IMAGE_PROCESSOR_MAPPING_NAMES.get(
        IMAGE_PROCESSOR_FAMILY.get(model_type))
    tower = getattr(_vision(cfg), "model_type", None)
    if not names and str(model_type).startswith(SYNTH_PREFIX) and tower:
        # a synthesized config (a remote-code model) has no processor of its own here: its tower's family's,
        # whose inputs that tower takes (HyperCLOVAX-V2's Qwen2.5-VL tower: Qwen2-VL's patches and grid)
        names = ipa.IMAGE_PROCESSOR_MAPPING_NAMES.get(tower)
        model_type = f"{model_type}'s tower {tower}"
    if not names:
        raise NoImage(f"transformers {transformers.__version__} maps no image processor to {model_type!r}")
    if isinstance(names, dict):  # transformers 5: {backend: class}; the PIL one is the slow, deterministic one
        names = (names.get("pil"), *names.values())
    names = names if isinstance(names, (tuple, list)) else (names,)
    cls = next((getattr(transformers, n, None) for n in names if n and getattr(transformers, n, None)), None)
    if cls is None:
        raise NoImage(f"transformers {transformers.__version__} has none of {list(names)}")
    vision = _vision(cfg)
    side = _image_side(cfg)
    kwargs = {}
    patch = getattr(vision, "patch_size", None)
    merge = getattr(vision, "spatial_merge_size", None)
    import dataclasses
    import inspect

    params = set(inspect.signature(cls.__init__).parameters)
    if params == {"self", "kwargs"}:  # transformers 5: __init__(**kwargs), the kwargs a TypedDict declares
        params |= set(getattr(getattr(cls, "valid_kwargs", None), "__annotations__", None) or ())
    pixel_area = "min_pixels" in params or "max_pixels" in params
    for key, value in (("patch_size", patch), ("merge_size", merge),
                       ("temporal_patch_size", getattr(vision, "temporal_patch_size", None))):
        if key in params and isinstance(value, int):
            kwargs[key] = value
    if pixel_area:
        kwargs.update(min_pixels=side * side, max_pixels=side * side)
    for key in ("do_image_splitting", "do_pan_and_scan", "do_convert_rgb"):
        if key in params:
            kwargs[key] = key == "do_convert_rgb"
    proc = cls(**kwargs)
    # GLM-4.1V's processor has no min_pixels/max_pixels but reads size's shortest/longest edge as
    # pixel areas (its longest_edge is 28*28*15000): no edge length is that large
    size = getattr(proc, "size", None)
    areas = isinstance(size, dict) and isinstance(size.get("longest_edge"), int) and size["longest_edge"] >= 1_000_000
    pixel_area = pixel_area or areas
    for attr in ("size", "crop_size", "max_image_size"):
        value = getattr(proc, attr, None)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):  # transformers 5's SizeDict
            setattr(proc, attr, {k: v for k, v in dataclasses.asdict(value).items() if v is not None})
        if isinstance(getattr(proc, attr, None), dict):
            setattr(proc, attr, _sized(getattr(proc, attr), side, side * side if pixel_area else None))
    if isinstance(getattr(proc, "max_image_size", None), int):  # Aria: the side it pads every image to
        proc.max_image_size = side
    if areas:  # its budget counts the frames of a temporal patch too (an image is 2 frames)
        temporal = getattr(proc, "temporal_patch_size", None)
        proc.size = {**proc.size, "longest_edge": side * side * (temporal if isinstance(temporal, int) else 1)}
    if pixel_area:
        for attr in ("min_pixels", "max_pixels"):
            if hasattr(proc, attr):
                setattr(proc, attr, side * side)
    if isinstance(patch, int) and hasattr(proc, "patch_size") and not isinstance(proc.patch_size, dict):
        proc.patch_size = patch
    elif isinstance(patch, int) and isinstance(getattr(proc, "patch_size", None), dict):
        proc.patch_size = {"height": patch, "width": patch}
    return proc, side


def write_preprocessor_config(workdir, cfg):
    """The image processor of the :data:`SHIPS_PREPROCESSOR` family of ``cfg``'s model type (else architecture)
    (:func:`image_processor`: its class's defaults, sized to the tiny tower) saved as ``workdir``'s
    preprocessor_config.json, the file both sides read; its class name, else None (not in the table: nothing
    written)."""
    import types

    key = next((k for k in (getattr(cfg, "model_type", None), *(getattr(cfg, "architectures", None) or ()))
                if isinstance(k, str) and k in SHIPS_PREPROCESSOR), None)
    if key is None:
        return None
    tower = _vision(cfg) or getattr(cfg, "vit_config", None)  # Ovis names its tower vit_config
    proc, _side = image_processor(types.SimpleNamespace(model_type=SHIPS_PREPROCESSOR[key], vision_config=tower))
    proc.save_pretrained(workdir)
    return type(proc).__name__


def _runner_kwargs(vc, hf_inputs):
    """The kwargs vLLM's runner would pass for one image: the model's multimodal processor lays out
    the fields (batched, flat, shared), ``group_mm_kwargs_by_modality`` batches the one item."""
    from vllm.multimodal import MULTIMODAL_REGISTRY
    from vllm.multimodal.inputs import MultiModalKwargsItems
    from vllm.multimodal.utils import group_mm_kwargs_by_modality

    proc = MULTIMODAL_REGISTRY.create_processor(vc.model_config)
    grid_rows(hf_inputs)
    try:
        fields = proc._get_mm_fields_config(hf_inputs, {})
    except KeyError as exc:  # a count the vLLM processor adds after the HF call (idefics3)
        if "num_patches" not in str(exc):
            raise
        fields = None
    missing = [k for k in CROP_COUNTS if fields is not None and k in fields and k not in hf_inputs]
    if fields is None or missing:  # gemma3: crops + 1
        _crops(hf_inputs, need=True, names=missing or CROP_COUNTS[:1])
        fields = proc._get_mm_fields_config(hf_inputs, {})
    rename_fields(hf_inputs, fields)
    items = MultiModalKwargsItems.from_hf_inputs(hf_inputs, fields)
    group = list(items.get("image", []))
    if not group:
        raise NoImage("the multimodal processor lays out no image field")
    for _modality, _n, kwargs in group_mm_kwargs_by_modality(group, device="cpu"):
        return dict(kwargs)
    raise NoImage("no image group")


# a field a vLLM processor lays out under its own name -> the Hugging Face processor output holding the same
# tensor: Kanana-V's processor renames its image processor's grid vision_grid_thw (the name its
# _parse_and_validate_image_input reads), which the tower family's processor (Qwen2-VL's) calls image_grid_thw
FIELD_SOURCES = {"vision_grid_thw": "image_grid_thw"}
# per-image row counts of flat patch pixels a vLLM processor adds after the Hugging Face call, which its
# pixel field is split by (Kanana-V: pixel_sizes, one image's patch rows; without it the field lays out nothing)
GRID_ROW_COUNTS = ("pixel_sizes",)


def rename_fields(hf_inputs, fields) -> None:
    """Give each field the model's processor lays out (``fields``) and the Hugging Face outputs lack the
    output of the same content under its other name (FIELD_SOURCES). Mutates ``hf_inputs`` (a mapping)."""
    for field, source in FIELD_SOURCES.items():
        if field in fields and field not in hf_inputs and source in hf_inputs:
            hf_inputs[field] = hf_inputs[source]


def grid_rows(hf_inputs, names=GRID_ROW_COUNTS) -> None:
    """Flat patch pixels with a (t, h, w) grid per image (Qwen2-VL's processor): each image's row count,
    t * h * w, under the names a vLLM processor adds it by (GRID_ROW_COUNTS), where absent. Mutates
    ``hf_inputs``."""
    grid, pv = hf_inputs.get("image_grid_thw"), hf_inputs.get("pixel_values")
    if grid is None or pv is None or pv.dim() != 2 or grid.dim() != 2:
        return
    rows = grid.prod(-1)
    if int(rows.sum()) != pv.shape[0]:
        return
    for name in names:
        if name not in hf_inputs:
            hf_inputs[name] = rows


# the per-image crop counts vLLM's processors add after the Hugging Face call for tiled images, which
# their flat pixel fields are split by (idefics3, gemma3: num_patches; Llama 4: patches_per_image)
CROP_COUNTS = ("num_patches", "patches_per_image")


def _crops(hf_inputs, need=False, names=CROP_COUNTS[:1]) -> None:
    """What vLLM's processors add after the Hugging Face call for tiled images (idefics3, gemma3, Llama 4):
    the crop count (``names``) = the crops of the one image, the crops as the leading dim of the pixels."""
    pv = hf_inputs.get("pixel_values")
    if pv is None or "image_grid_thw" in hf_inputs:
        return
    if pv.dim() == 5:  # (images, crops, 3, h, w)
        for name in names:
            hf_inputs[name] = pv.new_tensor([pv.shape[1]]).long()
        hf_inputs["pixel_values"] = pv[0]
        mask = hf_inputs.get("pixel_attention_mask")
        if mask is not None and mask.dim() == 4:
            hf_inputs["pixel_attention_mask"] = mask[0]
    elif pv.dim() == 4 and need:
        for name in names:
            hf_inputs[name] = pv.new_tensor([pv.shape[0]]).long()


def build_image_kwargs(vc, cfg):
    """Kwargs of ``embed_multimodal`` for one tiny image and how they were made (a note)."""
    import numpy as np
    import torch
    from PIL import Image
    from transformers import BatchFeature

    proc, side = image_processor(cfg)
    img = Image.fromarray(np.asarray(pixels(side), dtype=np.uint8), "RGB")
    out = proc(images=[img], return_tensors="pt")
    hf_inputs = BatchFeature({k: v for k, v in out.items() if isinstance(v, torch.Tensor)})
    note = f"{type(proc).__name__} on a {side}x{side} image"
    kwargs = failure = None
    # the crops first stay where the Hugging Face processor put them (LLaVA-NeXT's batched pixel_values are
    # (images, crops, 3, h, w) in vLLM too; fields that count crops flatten them in _runner_kwargs), then
    # as the leading dim
    for flat in (False, True):
        inputs = BatchFeature(dict(hf_inputs))
        if flat:
            _crops(inputs)
        try:
            kwargs = _runner_kwargs(vc, inputs)
            note += (", crops as the leading dim" if flat else "") + ", fields laid out by the model's multimodal processor"
            break
        except Exception as exc:  # e.g. fields the vLLM processor computes in _call_hf_processor
            failure = exc
    if kwargs is None:
        kwargs = dict(inputs)
        note += f", processor outputs passed as they are ({type(failure).__name__}: {str(failure)[:120]})"
    return {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
            for k, v in kwargs.items()}, note


def processor_image_inputs(vc, cfg, ids, image_text):
    """Kwargs, prompt ids, placeholder id and a note for one tiny image through the model's own vLLM multimodal
    processor (``apply`` on the text prompt with the image's token ``image_text`` in its middle, words ``w<id>``
    of the tiny tokenizer around it). The placeholder id is the one the processor put at the image's embedding
    positions."""
    import numpy as np
    import torch
    from PIL import Image
    from vllm.multimodal import MULTIMODAL_REGISTRY
    from vllm.multimodal.utils import group_mm_kwargs_by_modality

    side = _image_side(cfg)
    img = Image.fromarray(np.asarray(pixels(side), dtype=np.uint8), "RGB")
    half = len(ids) // 2
    text = " ".join([f"w{i}" for i in ids[:half]] + [image_text] + [f"w{i}" for i in ids[half:]])
    proc = MULTIMODAL_REGISTRY.create_processor(vc.model_config)
    out = proc.apply(text, {"image": [img]}, {})
    prompt = list(out["prompt_token_ids"])
    group = list(out["mm_kwargs"].get("image", []))
    kwargs = None
    for _modality, _n, batch in group_mm_kwargs_by_modality(group, device="cpu"):
        kwargs = dict(batch)
        break
    if kwargs is None:
        raise NoImage("the model's multimodal processor gave no image kwargs")
    place = out["mm_placeholders"]["image"][0]
    span = prompt[place.offset:place.offset + place.length]
    embed = getattr(place, "is_embed", None)
    at = [t for t, e in zip(span, embed.tolist() if embed is not None else [True] * len(span)) if e]
    if len(set(at)) != 1:
        raise NoImage(f"the processor's image placeholders hold {len(set(at))} distinct ids, not one")
    kwargs = {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in kwargs.items()}
    return kwargs, prompt, at[0], (f"{type(proc).__name__}.apply on a {side}x{side} image (the model's vLLM "
                                   "processor, the tiny tokenizer)")


# --------------------------------------------------------------------------------------------
# the forward with an image (both sides)


def _embeds_list(mm):
    import torch

    if mm is None:
        return []
    if isinstance(mm, torch.Tensor):
        return list(mm) if mm.dim() == 3 else [mm]
    out = []
    for item in mm:
        out.extend(_embeds_list(item) if not isinstance(item, torch.Tensor) or item.dim() == 3 else [item])
    return out


def embed_image(model, kwargs):
    """Image embeddings via the version's API (``embed_multimodal``, else ``get_multimodal_embeddings``)."""
    fn = getattr(model, "embed_multimodal", None) or getattr(model, "get_multimodal_embeddings", None)
    if fn is None:
        raise NoImage(f"{type(model).__name__} has neither embed_multimodal nor get_multimodal_embeddings")
    return _embeds_list(fn(**dict(kwargs)))


class _FieldElem:
    """The part of vLLM's ``MultiModalFieldElem`` a model's M-RoPE code reads: ``.data``."""

    def __init__(self, data):
        self.data = data


def mrope_positions(model, vc, prompt, kwargs, token, count, fail):
    """The (3, n) positions vLLM's runner passes a multimodal-rope model (Qwen2-VL family, GLM-4.1V):
    the model's own ``get_mrope_input_positions(prompt, mm_features)`` over one image feature (its
    ``image_grid_thw``, placeholders at the prompt's image tokens), as the runner computes them at
    prefill; the same call on both sides, so each runs its own position code. None for a model
    without M-RoPE (1-D positions)."""
    import torch

    if not getattr(vc.model_config, "uses_mrope", False):
        return None
    n = len(prompt)
    get = getattr(model, "get_mrope_input_positions", None)
    grid = kwargs.get("image_grid_thw")
    if get is None or not isinstance(grid, torch.Tensor):  # no grid: text positions in all three sections
        return torch.arange(n).unsqueeze(0).expand(3, n).contiguous()
    from vllm.multimodal.inputs import MultiModalFeatureSpec, PlaceholderRange

    item = {key: _FieldElem(value[0] if isinstance(value, torch.Tensor) and value.dim() > 1 else value)
            for key, value in kwargs.items() if key.endswith("_grid_thw")}
    feature = MultiModalFeatureSpec(data=item, modality="image", identifier="image-0",
                                    mm_position=PlaceholderRange(offset=prompt.index(token), length=count))
    positions, _delta = get(list(prompt), [feature])
    positions = torch.as_tensor(positions, dtype=torch.long)
    if tuple(positions.shape) != (3, n):
        raise fail(f"get_mrope_input_positions gave {tuple(positions.shape)} for {n} tokens")
    return positions


def run_with_image(model, vc, ids, kwargs, token, fail, placed=False, around=(None, None)):
    """``embed_multimodal`` -> placeholders -> ``embed_input_ids(..., is_multimodal=mask)`` ->
    prefill with ``inputs_embeds``; returns (logits, prompt ids, image token count). ``ids`` is the
    text prompt (one placeholder per embedding row goes into its middle), or with ``placed`` the
    whole prompt, placeholders included; ``around``: the image's start and end tokens."""
    import torch
    from vllm.forward_context import set_forward_context

    lm = model.get_language_model()
    if lm is None:
        raise fail("get_language_model() returned None: the multimodal path has no language model "
                   "('NoneType' object has no attribute 'embed_input_ids' at the first image)")
    with torch.no_grad():
        embeds = embed_image(model, kwargs)
        if not embeds:
            raise fail("embed_multimodal returned no embedding for the image")
        for e in embeds:
            if not torch.isfinite(e).all():
                raise fail("the image embeddings are not finite")
        count = sum(int(e.shape[0]) for e in embeds)
        prompt = list(ids) if placed else prompt_with_image(ids, token, count, around)
        input_ids = torch.tensor(prompt, dtype=torch.long)
        mask = input_ids == token
        merged = model.embed_input_ids(input_ids, embeds, is_multimodal=mask)
        n = input_ids.shape[0]
        if tuple(merged.shape[:1]) != (n,):
            raise fail(f"embed_input_ids returned {tuple(merged.shape)} for {n} tokens")
        pos = mrope_positions(model, vc, prompt, kwargs, token, count, fail)
        if pos is None:
            pos = torch.arange(n)
        with set_forward_context(None, vc, num_tokens=n):
            hidden = model(input_ids=None, positions=pos, inputs_embeds=merged)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
            # a pooling model (CLIP's and SigLIP's dual encoders) serves its hidden states, as in the text prefill
            pooling = getattr(model, "is_pooling_model", False) or not hasattr(model, "compute_logits")
            logits = hidden if pooling else model.compute_logits(hidden)
        import _runtime_logits  # the worker's (verify/ on sys.path)

        if logits is None or _runtime_logits.masked_tokens(logits) is None:
            raise fail("logits of the prefill with the image are not finite")
    return logits.float(), prompt, count


def pinned_image_forward(model, vc, cfg, ids, work, fail):
    """The image half of the pinned forward level; returns a reason naming what ran (``with one image``
    or why text only), and writes the artifacts the reference side reads."""
    import torch

    cfg_dict = cfg.to_dict()
    vocab = (cfg_dict.get("text_config") or cfg_dict).get("vocab_size") or 0
    # the config's, else the tiny tokenizer's (DeepSeek-OCR reads tokenizer.vocab["<image>"])
    token = image_token_id(cfg_dict)
    if token is None:
        token = _tokenizer().image_token_id(cfg_dict.get("model_type"), int(vocab), cfg_dict.get("architectures"))
    chosen = token is None
    if chosen:  # blip2 takes it from the tokenizer: any id the prompt does not use (the mask decides)
        token = free_token(int(vocab), set(ids) | _tiny().special_ids(cfg_dict))
        if token is None:
            return "text only: the config names no image token id and the vocabulary has no free one"
    placed = False
    try:
        kwargs, note = build_image_kwargs(vc, cfg)
    except NoImage as exc:
        spec = _tokenizer().tokens_for(cfg_dict.get("model_type"), cfg_dict.get("architectures"))
        if not (spec and spec.get("image") and getattr(vc.model_config, "tokenizer", None)):
            return f"text only: no image input ({exc})"
        # no Hugging Face image processor, but the tiny tokenizer: the model's own vLLM multimodal processor
        # makes the prompt and the kwargs, as the engine's input processing does
        kwargs, ids, token, note = processor_image_inputs(vc, cfg, ids, spec["image"])
        note = f"{note} (transformers has no image processor for it: {exc})"
        placed = True
    logits, prompt, count = run_with_image(model, vc, ids, kwargs, token, fail, placed=placed,
                                           around=image_delimiters(cfg_dict))
    torch.save(kwargs, os.path.join(work, KWARGS_FILE))
    torch.save(logits, os.path.join(work, LOGITS_FILE))
    with open(os.path.join(work, IDS_FILE), "w", encoding="utf-8") as f:
        json.dump({"ids": prompt, "token": token, "count": count}, f)
    if chosen:
        note += f"; placeholder id {token} (the config names none)"
    if getattr(vc.model_config, "uses_mrope", False):
        note += ("; M-RoPE positions from the model's get_mrope_input_positions over the image grid"
                 if "image_grid_thw" in kwargs and hasattr(model, "get_mrope_input_positions")
                 else "; M-RoPE positions: the text ones in all three sections (no image grid)")
    return f"with one image ({count} image tokens through the vision tower; {note})"


def reference_image_diff(model, vc, work, fail):
    """The pinned side's image prefill through the upstream model: max |Δlogit|, or None when the
    pinned side ran text only."""
    import torch

    path = os.path.join(work, IDS_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    kwargs = torch.load(os.path.join(work, KWARGS_FILE))
    logits, _prompt, count = run_with_image(model, vc, saved["ids"], kwargs, saved["token"], fail, placed=True)
    if count != saved["count"]:
        raise fail(f"upstream gives {count} image tokens, the pinned model {saved['count']}")
    torch.save(logits, os.path.join(work, LOGITS_REF_FILE))
    pinned = torch.load(os.path.join(work, LOGITS_FILE))
    if pinned.shape != logits.shape:
        raise fail(f"image logit shapes differ: pinned {tuple(pinned.shape)}, reference {tuple(logits.shape)}")
    import _runtime_logits  # the worker's (verify/ on sys.path)

    return _runtime_logits.max_abs_diff(pinned, logits)
