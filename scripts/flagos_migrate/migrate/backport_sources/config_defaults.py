"""Config fields a pinned class reads unguarded where upstream's same class has a default (rule P7).

Written by model-migrate-flagos; regenerated on every migrate_model.py apply, do not edit by hand.

Upstream's ``Qwen3_VisionTransformer`` reads ``vision_config.deepstack_visual_indexes`` when the
config has it, else ``[]``; vLLM 0.13.0's reads it unguarded. The migrated call hands the pinned
class ``with_config_defaults(config, deepstack_visual_indexes=[])`` instead of the config.
"""

from __future__ import annotations

import copy


def with_config_defaults(config, **defaults):
    """``config`` itself when it has every field of ``defaults``; else a shallow copy with the missing
    fields set to (a copy of) their default. The model's own config is never changed: other code tests
    it with ``hasattr`` (upstream's ``use_deepstack``) and must see what upstream sees."""
    missing = {name: value for name, value in defaults.items() if not hasattr(config, name)}
    if not missing:
        return config
    view = copy.copy(config)
    for name, value in missing.items():
        setattr(view, name, copy.deepcopy(value))
    return view


__all__ = ["with_config_defaults"]
