"""``vllm.envs`` with upstream's environment variables the pinned vLLM does not have (rule P3).

Upstream model files read settings such as ``envs.VLLM_DCP_Q_REPLICATE`` or ask
``envs.is_set("VLLM_DCP_Q_REPLICATE")``; the pinned ``vllm.envs`` has no such variable and raises
AttributeError. Each variable below is read from the environment exactly as upstream's
``vllm/envs.py`` reads it (same default string, same parser); every other name is the pinned
``vllm.envs``'s own. The table is written in from the catalog (``catalog.yaml``, P3 ``env_vars``).

Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/envs.py``
and re-points the migrated files' ``import vllm.envs as envs`` / ``from vllm import envs`` here.
"""

from __future__ import annotations

import os

import vllm.envs as _pinned

# name -> (parser, default): upstream's lambda ``parser(os.getenv(name, default))``
UPSTREAM_ENV_VARS: dict[str, tuple[str, str]] = {}

_PARSERS = {
    "bool_int": lambda v: bool(int(v)),  # bool(int(os.getenv(name, default)))
    "int": int,  # int(os.getenv(name, default))
    "lower": str.lower,  # os.getenv(name, default).lower()
}


def _upstream_only(name: str) -> bool:
    return name in UPSTREAM_ENV_VARS and name not in _pinned.environment_variables


def __getattr__(name: str):
    if _upstream_only(name):
        parser, default = UPSTREAM_ENV_VARS[name]
        return _PARSERS[parser](os.getenv(name, default))
    return getattr(_pinned, name)


def is_set(name: str) -> bool:
    """Upstream's ``envs.is_set``: the variable is explicitly set in the environment."""
    if _upstream_only(name):
        return name in os.environ
    return _pinned.is_set(name)


def __dir__() -> list[str]:
    return sorted(set(dir(_pinned)) | set(UPSTREAM_ENV_VARS) | {"is_set", "UPSTREAM_ENV_VARS"})


__all__ = ["UPSTREAM_ENV_VARS", "is_set"]
