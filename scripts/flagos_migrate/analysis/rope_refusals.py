"""P42: rope parameter sets of a checkpoint's config.json that the back-ported ``get_rope`` refuses.

The refusal happens when the model is built (``NotImplementedError`` from ``vllm_fl/compat/rope.py``); which
rope a model builds is in its config.json, so the plan and the validator can say so only when given one.
The rows are catalog data (P42 ``refused``). config.json is untrusted: it is only read as data, to a bounded
depth.
"""

from __future__ import annotations

import re

from flagos_migrate.catalog.findings import Finding
from flagos_migrate.catalog.rules import BY_ID

ROPE_MODULE = "vllm_fl.compat.rope"  # where the P22 back-port of get_rope lives in the plugin
_ROPE_KEYS = ("rope_parameters", "rope_scaling")
_MAX_DEPTH = 6


def _rows() -> list[dict]:
    return BY_ID["P42"].tables["refused"]


def _param_sets(config: dict, path: str):
    """(where, rope parameters) of one config level: flat, or per layer type (transformers 5)."""
    for key in _ROPE_KEYS:
        value = config.get(key)
        if not isinstance(value, dict):
            continue
        if value and all(isinstance(v, dict) for v in value.values()):
            for layer_type, params in value.items():
                yield f"{path}{key}.{layer_type}", params
        else:
            yield f"{path}{key}", value


def refused_ropes(hf_config: dict) -> list[tuple[str, dict, dict]]:
    """(where in config.json, the parameter set, the P42 row) for every set the back-port refuses."""
    out: list[tuple[str, dict, dict]] = []

    def visit(config: dict, path: str, depth: int) -> None:
        for where, params in _param_sets(config, path):
            rope_type = params.get("rope_type", params.get("type", "default"))
            for row in _rows():
                if (rope_type in row["rope_types"] and params.get(row["with_key"]) not in (None, False)
                        and not config.get(row.get("unless_config_key") or "", None)):
                    out.append((where, params, row))
        if depth < _MAX_DEPTH:
            for key, value in config.items():
                if key not in _ROPE_KEYS and isinstance(value, dict) and isinstance(key, str):
                    visit(value, f"{path}{key}.", depth + 1)

    if isinstance(hf_config, dict):
        visit(hf_config, "", 0)
    return out


def rope_findings(hf_config: dict, shown: str, line_of=None) -> list[Finding]:
    """One P42 error per refused rope parameter set; ``line_of(key)``: the line to report it on."""
    out = []
    for where, params, row in refused_ropes(hf_config):
        rope_type = params.get("rope_type", params.get("type"))
        out.append(Finding(
            "P42", shown, line_of(row["with_key"]) if line_of else 1, 0,
            f"config.json `{where}`: rope_type {rope_type} with `{row['with_key']}`: the back-ported get_rope "
            f"({ROPE_MODULE}) refuses it when the model is built ({' '.join(row['why'].split())}), so this "
            "checkpoint does not build on the pinned vLLM",
            fix="report that this checkpoint's rope cannot be built on the pinned vLLM (or back-port upstream's "
                "rotary class); dropping the key would compute another rope",
            data={"where": where, "rope_type": rope_type, "key": row["with_key"]}))
    return out


def line_in(text: str):
    """``line_of`` for a config.json text: the first line naming the key, else 1."""
    def line_of(key: str) -> int:
        m = re.search(r'"' + re.escape(key) + r'"\s*:', text)
        return text.count("\n", 0, m.start()) + 1 if m else 1
    return line_of
