"""The E2E config layout of the earlier FlagOS skill, mapped onto today's field names.

Old files name the SSH fields ``gt_machine.ssh_user/ssh_port/ssh_key``, the GT port
``gt_machine.vllm_port``, the GPUs ``gt_machine.gpu_ids``, extra ``vllm serve`` arguments as one
string ``gt_machine.extra_serve_args``, the local port ``local.vllm_port`` and the folders under
``shared_storage``. They are renamed here (nothing else changes); the values are then validated
exactly like today's fields, so an old file gets no more trust than a new one.
"""

from __future__ import annotations

import copy
import shlex
import sys
from typing import Any

from flagos_migrate.cli import UsageError

# (section, old key) -> (section, new key)
RENAMES = {
    ("gt_machine", "ssh_user"): ("gt_machine", "user"),
    ("gt_machine", "ssh_port"): ("gt_machine", "port"),
    ("gt_machine", "ssh_key"): ("gt_machine", "key_file"),
    ("gt_machine", "vllm_port"): ("gt_machine", "serve_port"),
    ("gt_machine", "gpu_ids"): ("gt_machine", "gpus"),
    ("gt_machine", "extra_serve_args"): ("gt_machine", "extra_args"),
    ("local", "vllm_port"): ("local", "port"),
    ("shared_storage", "models_dir"): ("gt_machine", "models_dir"),
    ("shared_storage", "results_dir"): ("eval", "results_dir"),
}


def _convert(old: tuple[str, str], value: Any) -> Any:
    if old == ("gt_machine", "extra_serve_args") and isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise UsageError(f"gt_machine.extra_serve_args cannot be split into arguments: {exc}",
                             hint="quote it like a shell command line, or use extra_args: [\"--flag\", \"value\"]") from None
    if old == ("gt_machine", "gpu_ids") and isinstance(value, list) and \
            all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    return value


def upgrade(data: Any, announce: bool = True) -> tuple[Any, list[str]]:
    """(config in today's layout, 'old -> new' names mapped); ``data`` itself is not changed."""
    if not isinstance(data, dict):
        return data, []
    out = copy.deepcopy(data)
    mapped: list[str] = []
    for (section, key), (new_section, new_key) in RENAMES.items():
        src = out.get(section)
        if not isinstance(src, dict) or key not in src:
            continue
        value = _convert((section, key), src.pop(key))
        dest = out.setdefault(new_section, {})
        if not isinstance(dest, dict):
            raise UsageError(f"config section {new_section!r} must be an object")
        if new_key in dest and dest[new_key] != value:
            raise UsageError(f"the config sets both {section}.{key} (earlier layout) and {new_section}.{new_key} "
                             "to different values", hint=f"keep only {new_section}.{new_key}")
        dest[new_key] = value
        mapped.append(f"{section}.{key} -> {new_section}.{new_key}")
    if isinstance(out.get("shared_storage"), dict):
        rest = out["shared_storage"]
        if rest:
            raise UsageError(f"unknown key(s) in shared_storage: {', '.join(sorted(map(str, rest)))}",
                             hint="shared_storage (earlier layout) may hold models_dir and results_dir")
        del out["shared_storage"]
    if mapped and announce:
        print("note: the config uses the earlier FlagOS layout; mapped " + ", ".join(mapped), file=sys.stderr)
    return out, mapped
