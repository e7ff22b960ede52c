"""config.json keys the pinned config class will not understand (transformers 5 key drift).

A config.json written by transformers 5 can name a field differently from the transformers 4.57.6
class the pinned vLLM builds: Qwen3-MoE's holds ``num_local_experts`` (transformers 5 keeps
``num_experts`` only as an ``attribute_map`` alias) and ``rope_parameters``, while 4.57.6's
``Qwen3MoeConfig`` takes ``num_experts`` and ``rope_theta``/``rope_scaling``. ``PretrainedConfig``
stores an unknown key as a plain attribute, so nothing fails: the model silently builds with the
class default (128 experts instead of the checkpoint's count).

``key_drift`` lists every top-level key that no ``__init__`` of the pinned class's MRO takes or sets,
each with the pinned keys it maps to where that is known: the inverse of the transformers 5 class's
``attribute_map`` (when the alias is a key the pinned class takes), and ``rope_parameters`` (flat, or
per layer type as Gemma 3 writes it) -> ``rope_theta``/``rope_scaling``/``rope_local_base_freq``.
``mapped_config`` applies those mappings: the config.json the pinned class understands.
"""

from __future__ import annotations

from dataclasses import dataclass

from flagos_migrate.migrate.bridge_sources.tf5_keymap import map_keys

# keys config.json carries that vLLM or transformers read outside the config class's __init__
PASSTHROUGH = frozenset({
    "model_type", "transformers_version", "torch_dtype", "_name_or_path", "auto_map", "quantization_config",
    "compression_config", "use_cache",
})
ROPE_KEYS = ("rope_theta", "rope_scaling")


@dataclass(frozen=True)
class KeyDrift:
    key: str
    maps_to: tuple[str, ...]  # pinned keys it becomes; empty: nothing the pinned class reads
    why: str

    def to_dict(self) -> dict:
        return {"key": self.key, "maps_to": list(self.maps_to), "why": self.why}


def pinned_keys(apis, class_name: str) -> set[str] | None:
    """Keys the pinned transformers class takes or sets in ``__init__`` over its MRO; None if unknown."""
    sym = apis.resolve("transformers", class_name)
    if sym is None or sym.kind != "class":
        return None
    keys: set[str] = set()
    for cls, record in apis.mro(sym)[0]:
        sig = apis.init_signature(cls) or {}
        keys.update(sig.get("p", []), sig.get("k", []), sig.get("kr", []))
        sets = record.get("sets") or {}
        keys.update(sets.get("__init__", []) if isinstance(sets, dict) else [])
        attrs = record.get("attrs") or []
        keys.update(a for a in attrs if isinstance(a, str))
    return keys


def _rope_targets(value, known: set[str]) -> tuple[str, ...]:
    if not isinstance(value, dict) or not set(ROPE_KEYS) & known:
        return ()
    per_layer = value and all(isinstance(v, dict) for v in value.values())
    out = [k for k in ROPE_KEYS if k in known]
    if per_layer and "sliding_attention" in value and "rope_local_base_freq" in known:
        out.append("rope_local_base_freq")
    return tuple(out)


def key_drift(hf_config: dict, known: set[str], aliases: dict[str, str] | None = None) -> list[KeyDrift]:
    """The keys of ``hf_config`` outside ``known`` (``pinned_keys``); ``aliases`` is the transformers 5
    class's ``attribute_map`` (alias -> stored key)."""
    inverse: dict[str, list[str]] = {}
    for alias, stored in (aliases or {}).items():
        inverse.setdefault(stored, []).append(alias)
    out = []
    for key, value in hf_config.items():
        if key in known or key in PASSTHROUGH:
            continue
        if key == "rope_parameters":
            targets = _rope_targets(value, known)
            why = ("transformers 5 RoPE layout; the pinned class reads " + ", ".join(targets)) if targets else \
                "transformers 5 RoPE layout; the pinned class reads no RoPE key"
        else:
            targets = tuple(a for a in inverse.get(key, []) if a in known)
            why = (f"transformers 5 stores {targets[0]} as {key} (attribute_map)" if targets else
                   "no __init__ of the pinned class takes it: a plain attribute, read only where code asks for it by "
                   "this name")
        out.append(KeyDrift(key, targets, why))
    return out


def keymap_of(drift: list[KeyDrift]) -> dict[str, tuple[str, ...]]:
    """The drifted keys that map, for ``map_keys`` (and the key-mapping class apply writes)."""
    return {d.key: d.maps_to for d in drift if d.maps_to}


def mapped_config(hf_config: dict, drift: list[KeyDrift]) -> dict:
    """``hf_config`` with every drifted key that maps replaced by the pinned keys (a key the file
    already sets wins): the same ``map_keys`` the plugin runs (bridge_sources/tf5_keymap.py)."""
    return map_keys(hf_config, keymap_of(drift))


def report(apis, class_name: str | None, hf_config: dict, tf5=None) -> dict | None:
    """``resolve --hf-config``'s answer: the drifted keys of ``hf_config`` against the pinned class
    ``class_name`` and the config.json it understands; None when the pinned transformers has no such
    class (a transformers 5 class gets a bridge that takes its own keys, P2/P5). ``tf5``: a
    ``Transformers5`` for the aliases of the same class in transformers 5."""
    known = pinned_keys(apis, class_name) if class_name else None
    if known is None:
        return None
    fields = tf5.fields_of(class_name) if tf5 is not None else None
    drift = key_drift(hf_config, known, fields[0] if fields else None)
    return {"config_class": class_name, "keys": [d.to_dict() for d in drift],
            "mapped": mapped_config(hf_config, drift) if any(d.maps_to for d in drift) else None}


def drift_for(apis, config_class: str | None, hf_config: dict, tf5=None) -> dict | None:
    """``report`` for the config class the pinned vLLM will build from ``hf_config``: ``config_class``
    (the one the model file names) when the pinned transformers has it, else the class transformers 5
    registers for the config.json's ``model_type`` (4.57.6 spells it the same). ``resolve --hf-config``,
    the validator's ``--hf-config`` and ``apply --hf-config`` all ask here."""
    model_type = hf_config.get("model_type")
    by_type = tf5.model_types.get(model_type) if tf5 is not None and isinstance(model_type, str) else None
    for name in (config_class, by_type):
        answer = report(apis, name, hf_config, tf5) if name else None
        if answer is not None:
            return answer
    return None


def _v5_keys_of(path) -> set[str]:
    """The keys a generated key-mapping class (``__v5_keys__ = {...}``) maps, read from its source."""
    import ast

    try:
        tree = ast.parse(path.read_text("utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__v5_keys__" for t in node.targets)
                and isinstance(node.value, ast.Dict)):
            return {k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return set()


def drift_findings(apis, hf_config: dict, shown: str, text: str, registered=None, plugin_files=None, tf5=None):
    """The validator's ``--hf-config``: one P33 finding per config.json key the config class the pinned
    vLLM builds does not take (an error where it maps to a key the class reads: the model would be
    built from the class default; a warning otherwise). ``registered``: the plugin's config
    registration for the config.json's model_type; a key-mapping class there settles the keys it maps,
    any other registered class is the plugin's own config (it takes its own keys)."""
    import re

    from flagos_migrate.catalog.findings import Finding

    settled: set[str] = set()
    if registered is not None:
        path = (plugin_files or {}).get(registered.module)
        settled = _v5_keys_of(path) if path is not None else set()
        if not settled:
            return []
    answer = drift_for(apis, None, hf_config, tf5)
    out = []
    for d in (answer or {}).get("keys", []):
        if d["key"] in settled:
            continue
        m = re.search(r'"' + re.escape(d["key"]) + r'"\s*:', text)
        line = text.count("\n", 0, m.start()) + 1 if m else 1
        maps = ", ".join(d["maps_to"])
        out.append(Finding(
            "P33", shown, line, 0,
            f"config.json key `{d['key']}`: no __init__ of the pinned {answer['config_class']} takes it"
            + (f"; it maps to {maps}, which the pinned class would otherwise take from its defaults" if maps else "")
            + f" ({d['why']})",
            severity="error" if maps else "warning",
            fix=("apply --hf-config CONFIG_JSON writes a key-mapping config class (vllm_fl/configs/keys_<model_type>.py)"
                 if maps else "check whether the model reads this key under another name"),
            data={"key": d["key"], "maps_to": d["maps_to"], "config_class": answer["config_class"]}))
    return out
