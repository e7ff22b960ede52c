"""Strict validation of the ``gt_machine`` section of the E2E config.

Every value that reaches the GT machine's shell is checked here against a narrow pattern, and
is later passed as a quoted argument (never pasted into shell code), so a config file with
shell metacharacters is refused before anything connects.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flagos_migrate import names
from flagos_migrate.cli import UsageError
from flagos_migrate.e2e.legacy_layout import upgrade as upgrade_layout

HOST_KEY_POLICIES = ("reject", "accept-new")
HEALTH_CHECKS = ("auto", "direct", "ssh")



@dataclass(frozen=True)
class GtMachine:
    """The validated ``gt_machine`` section; field names follow the config template."""

    host: str
    user: str = "root"
    port: int = 22
    key_file: str = ""
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_policy: str = "reject"
    docker_container: str = ""
    conda_env: str = ""
    workdir: str = "/tmp/model-migrate-flagos-gt"
    models_dir: str = "/models"
    serve_port: int = 8000
    serve_host: str = "0.0.0.0"
    tensor_parallel_size: int = 1
    gpus: str = ""
    env_vars: dict[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    vllm_command: str = "vllm"
    health_check: str = "auto"
    connect_timeout: float = 15.0
    startup_timeout: int = 1800


KNOWN_FIELDS = tuple(GtMachine.__dataclass_fields__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def valid_host(value: str) -> bool:
    """A DNS hostname or an IPv4/IPv6 address; nothing that could start an option or a command."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    if not value or len(value) > 253:
        return False
    return all(names.matches(names.HOSTNAME_LABEL, label) for label in value.rstrip(".").split("."))


def _safe_text(value: str) -> bool:
    """Free text (env values, extra args, local paths): quoted later, but no NUL or newlines."""
    return not any(ch in value for ch in ("\x00", "\n", "\r"))


def _check_str(raw: dict, name: str, errors: list[str], pattern: re.Pattern | None = None,
               allow_empty: bool = True, describe: str = "") -> None:
    value = raw[name]
    if not isinstance(value, str):
        errors.append(f"gt_machine.{name} must be a string, got {type(value).__name__}")
    elif value == "" and not allow_empty:
        errors.append(f"gt_machine.{name} must not be empty")
    elif value and pattern is not None and not names.matches(pattern, value, limit=4096):
        errors.append(f"gt_machine.{name} = {value!r} is not {describe}")
    elif not _safe_text(value):
        errors.append(f"gt_machine.{name} contains a NUL or newline character")


def _check_int(raw: dict, name: str, errors: list[str], low: int, high: int) -> None:
    value = raw[name]
    if not _is_int(value) or not low <= value <= high:
        errors.append(f"gt_machine.{name} must be an integer in {low}..{high}, got {value!r}")


def _check_path(raw: dict, name: str, errors: list[str]) -> None:
    _check_str(raw, name, errors, names.REMOTE_PATH, allow_empty=False,
               describe="an absolute path of letters, digits and _ . / + @ -")
    value = raw[name]
    if isinstance(value, str) and ".." in value.split("/"):
        errors.append(f"gt_machine.{name} = {value!r} must not contain '..'")


def validate_gt_machine(raw: Any) -> GtMachine:
    """Validate the raw ``gt_machine`` mapping; raise UsageError listing every problem."""
    if not isinstance(raw, dict):
        raise UsageError("the config has no 'gt_machine' object",
                         hint="copy scripts/e2e_config.template.json and fill in gt_machine")
    errors: list[str] = []
    unknown = sorted(set(raw) - set(KNOWN_FIELDS))
    if unknown:
        errors.append(f"unknown gt_machine field(s): {', '.join(unknown)} (known: {', '.join(KNOWN_FIELDS)})")
    defaults = GtMachine(host="placeholder")
    merged = {name: raw.get(name, getattr(defaults, name)) for name in KNOWN_FIELDS}
    if "host" not in raw:
        errors.append("gt_machine.host is required")
    elif not isinstance(merged["host"], str) or not valid_host(merged["host"]):
        errors.append(f"gt_machine.host = {merged['host']!r} is not a hostname or IP address")
    _check_str(merged, "user", errors, names.USER, allow_empty=False, describe="a user name")
    _check_int(merged, "port", errors, 1, 65535)
    _check_str(merged, "key_file", errors)
    _check_str(merged, "known_hosts", errors, allow_empty=False)
    if merged["host_key_policy"] not in HOST_KEY_POLICIES:
        errors.append(f"gt_machine.host_key_policy must be one of {', '.join(HOST_KEY_POLICIES)}, "
                      f"got {merged['host_key_policy']!r}")
    _check_str(merged, "docker_container", errors, names.CONTAINER, describe="a docker container name")
    _check_str(merged, "conda_env", errors, names.CONDA_ENV, describe="a conda environment name")
    _check_path(merged, "workdir", errors)
    _check_path(merged, "models_dir", errors)
    _check_int(merged, "serve_port", errors, 1, 65535)
    serve_host = merged["serve_host"]
    try:
        ipaddress.ip_address(serve_host if isinstance(serve_host, str) else "")
    except ValueError:
        errors.append(f"gt_machine.serve_host must be an IP address to bind, got {serve_host!r}")
    _check_int(merged, "tensor_parallel_size", errors, 1, 1024)
    _check_str(merged, "gpus", errors, names.GPUS, describe="a GPU list of digits and commas (e.g. 0,1)")
    env_vars = merged["env_vars"]
    if not isinstance(env_vars, dict):
        errors.append("gt_machine.env_vars must be an object of NAME: value strings")
        env_vars = {}
    for name, value in env_vars.items():
        if not names.matches(names.ENV_NAME, name):
            errors.append(f"gt_machine.env_vars name {name!r} is not an identifier")
        if not isinstance(value, str) or not _safe_text(value):
            errors.append(f"gt_machine.env_vars[{name!r}] must be a string without NUL/newlines")
    extra = merged["extra_args"]
    if not isinstance(extra, (list, tuple)) or not all(isinstance(a, str) and _safe_text(a) for a in extra):
        errors.append("gt_machine.extra_args must be a list of strings (one vllm argument each)")
        extra = ()
    _check_str(merged, "vllm_command", errors, names.EXECUTABLE, allow_empty=False,
               describe="an executable name or absolute path")
    if merged["health_check"] not in HEALTH_CHECKS:
        errors.append(f"gt_machine.health_check must be one of {', '.join(HEALTH_CHECKS)}")
    timeout = merged["connect_timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        errors.append(f"gt_machine.connect_timeout must be a number of seconds in (0, 600], got {timeout!r}")
    _check_int(merged, "startup_timeout", errors, 1, 86400)
    if errors:
        raise UsageError("invalid gt_machine config:\n  " + "\n  ".join(errors),
                         hint="fix the listed fields; values reach a remote shell only after validation")
    merged["env_vars"] = dict(env_vars)
    merged["extra_args"] = tuple(extra)
    merged["connect_timeout"] = float(timeout)
    return GtMachine(**merged)


def validate_model_name(name: Any) -> str:
    """A model folder under models_dir: letters, digits, _ . + - and at most one '/'."""
    if not isinstance(name, str) or not names.matches(names.MODEL_FOLDER, name) or ".." in name.split("/"):
        raise UsageError(f"model name {name!r:.100} is not a safe folder name",
                         hint="use letters, digits, _ . + - (and one '/' for org/name); the model "
                              "is looked up under gt_machine.models_dir")
    return name


def load_config(path: str | Path) -> tuple[GtMachine, str | None]:
    """Read the E2E config; return the validated GT machine and the config's default model."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"config {path} is not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror or exc}",
                         hint="copy scripts/e2e_config.template.json to e2e_config.json and fill it in") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"config {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config {path} must hold a JSON object")
    data, _ = upgrade_layout(data)
    machine = validate_gt_machine(data.get("gt_machine"))
    model = data.get("model")
    return machine, (validate_model_name(model) if model not in (None, "") else None)
