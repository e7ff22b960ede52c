"""config.json keys transformers 5 writes, mapped to the keys a transformers 4.x config class takes (rule P33).

Written by model-migrate-flagos; regenerated on every migrate_model.py apply, do not edit by hand.
The same function maps a config.json for ``resolve --hf-config`` (model-migrate-flagos imports this
file) and, copied into the plugin as ``vllm_fl/configs/tf5_keymap.py``, the keyword arguments of the
key-mapping config class the plugin registers, so both read a checkpoint alike. No dependencies.

``keymap``: drifted key -> the pinned keys it becomes (an ``attribute_map`` alias of transformers 5:
``num_local_experts`` -> ``num_experts``; ``rope_parameters``, flat or per layer type as Gemma 3
writes it, -> ``rope_theta``/``rope_scaling``/``rope_local_base_freq``). A key the config already
sets wins over a mapped one.
"""

from __future__ import annotations


def rope_mapped(value: dict, targets) -> dict:
    """``rope_parameters`` as the 4.x RoPE keys among ``targets``."""
    per_layer = bool(value) and all(isinstance(v, dict) for v in value.values())
    full = dict(value.get("full_attention", {})) if per_layer else dict(value)
    out: dict = {}
    theta = full.pop("rope_theta", None)
    if theta is not None and "rope_theta" in targets:
        out["rope_theta"] = theta
    rope_type = full.get("rope_type", full.get("type", "default"))
    if rope_type != "default" and "rope_scaling" in targets:
        out["rope_scaling"] = full
    if "rope_local_base_freq" in targets and per_layer:
        local = value.get("sliding_attention", {}).get("rope_theta")
        if local is not None:
            out["rope_local_base_freq"] = local
    return out


def map_keys(config: dict, keymap: dict) -> dict:
    """``config`` with every key of ``keymap`` it holds replaced by the keys it maps to."""
    out = dict(config)
    for key, targets in keymap.items():
        if key not in out or not targets:
            continue
        value = out.pop(key)
        if key == "rope_parameters":
            new = rope_mapped(value, targets) if isinstance(value, dict) else {}
        else:
            new = {targets[0]: value}
        for k, v in new.items():
            out.setdefault(k, v)
    return out
