"""Which config class a synthesized config's sub-config is, read from what upstream builds from it.

Host side of ``verify --run`` (pure functions over source text; ``config_hints`` hands the result to the
worker). A remote-code multimodal config nests its towers' configs (``vision_config``, ``text_config``) with no
class here to take defaults from, and upstream's file says what each one is where it builds from it:

- a module built from it whose ``__init__`` annotates that parameter with a config class
  (``Qwen2_5_VisionTransformer(vision_config=config.vision_config)``, ``vision_config: Qwen2_5_VLVisionConfig``;
  ``Idefics2VisionTransformer(config.vision_config)``, ``config: Idefics2VisionConfig``): that class, whose
  defaults (shrunk like every tower) the worker fills the sub-config from, so both sides build one tower;
- a language model built from it by the registry (``init_vllm_registered_model(hf_config=config.text_config)``,
  or ``vllm_config=vllm_config.with_hf_config(config.text_config)`` there): any registered causal LM serves there, which the
  worker fills with a tiny Qwen2 (:data:`LANGUAGE`).
"""

from __future__ import annotations

import ast

LANGUAGE = "=language"
# annotations that say nothing about a sub-config's class
_GENERIC = {"PretrainedConfig", "PreTrainedConfig", "QuantizationConfig", "VllmConfig", "CacheConfig",
            "ModelConfig", "MultiModalConfig"}
_CONFIG_NAMES = {"config", "hf_config", "text_config", "hf_text_config", "language_config"}
_LANGUAGE_BUILDERS = {"init_vllm_registered_model"}


def _sub_key(node: ast.AST) -> str | None:
    """``K`` of a read ``config.K`` / ``self.config.K`` / ``vllm_config.model_config.hf_config.K`` of a
    sub-config (a name ending in ``_config``)."""
    if not isinstance(node, ast.Attribute) or not node.attr.endswith("_config"):
        return None
    base = node.value
    name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else None
    return node.attr if name in _CONFIG_NAMES else None


def _annotation_class(node: ast.AST | None) -> str | None:
    """The config class an annotation names (``X``, ``X | None``, ``Optional[X]``, ``"X"``), else None."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return None
    names = [n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute))]
    found = [n for n in names if n.endswith("Config") and n not in _GENERIC]
    return found[0] if len(set(found)) == 1 else None


def _classes(sources: list[str]) -> dict[str, ast.ClassDef]:
    """Class definitions by name, the first source's first (the model file's own win)."""
    out: dict[str, ast.ClassDef] = {}
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                out.setdefault(node.name, node)
    return out


def _init_params(cls: ast.ClassDef) -> tuple[list[ast.arg], dict[str, ast.arg]] | None:
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return None
    positional = (init.args.posonlyargs + init.args.args)[1:]  # without self
    named = {a.arg: a for a in positional + init.args.kwonlyargs}
    return positional, named


def sub_config_classes(sources: list[str]) -> dict[str, str]:
    """Sub-config key -> the config class upstream builds a module of from it, or :data:`LANGUAGE` (a
    registered language model is built from it); ``sources``: the model file first, then the model modules
    it imports (where the towers are defined). A key two annotations disagree on is left out; pure."""
    classes = _classes(sources)
    found: dict[str, set[str]] = {}
    try:
        tree = ast.parse(sources[0]) if sources else None
    except SyntaxError:
        tree = None
    if tree is None:
        return {}
    # the model file, and the classes its own derive from in the imported modules (MiniCPM-O's tower is built
    # by MiniCPM-V's base class); never another build an imported module makes (clip.py's text tower for Phi-3-V)
    scopes: list[ast.AST] = [tree]
    level = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    seen = {n.name for n in level}
    while level:
        bases = [ast.unparse(b).split(".")[-1] for c in level for b in c.bases]
        level = [classes[b] for b in bases if b in classes and b not in seen]
        seen.update(c.name for c in level)
        scopes += [c for c in level if c not in scopes]
    for fn in (n for scope in scopes for n in ast.walk(scope)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        # local names bound to a sub-config (``vision_config = config.vision_config``)
        bound = {n.targets[0].id: _sub_key(n.value) for n in ast.walk(fn) if isinstance(n, ast.Assign)
                 and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name) and _sub_key(n.value)}

        def key_of(arg: ast.AST, bound: dict = bound) -> str | None:
            return _sub_key(arg) or (bound.get(arg.id) if isinstance(arg, ast.Name) else None)

        for call in ast.walk(fn):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in _LANGUAGE_BUILDERS:
                # hf_config=config.text_config, or vllm_config=vllm_config.with_hf_config(config.text_config); never
                # a with_hf_config elsewhere (ColUltraVBert hands it to the file's own UltraBert, no registered model)
                args = [kw.value for kw in call.keywords if kw.arg == "hf_config"] + \
                    [a.args[0] for a in list(call.args) + [kw.value for kw in call.keywords] if isinstance(a, ast.Call)
                     and isinstance(a.func, ast.Attribute) and a.func.attr == "with_hf_config" and a.args]
                for arg in args:
                    if key_of(arg):
                        found.setdefault(key_of(arg), set()).add(LANGUAGE)
                continue
            params = _init_params(classes[name]) if name in classes else None
            if params is None:
                continue
            positional, named = params
            pairs = list(zip(positional, call.args)) + [(named.get(kw.arg), kw.value) for kw in call.keywords]
            for param, arg in pairs:
                key = key_of(arg)
                cls = _annotation_class(param.annotation) if param is not None and key else None
                if cls:
                    found.setdefault(key, set()).add(cls)
    return {k: next(iter(v)) for k, v in sorted(found.items()) if len(v) == 1}
