"""Settings of the end-to-end comparison: defaults, the JSON config file, command-line overrides.

Precedence: command line > config file > defaults. The config file is shared with the GT
server tooling (``e2e_remote_serve.sh`` reads ``gt_machine`` for SSH); this module validates
only ``model``, ``local`` and ``eval`` and reads ``gt_machine.host``/``serve_port`` as the
address of the GT server.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from flagos_migrate.cli import UsageError
from flagos_migrate.e2e import legacy_layout

MODES = ("text", "multimodal", "all")
APIS = ("chat", "completions")
#: vLLM's default --max-logprobs is 20; a larger top-k is refused by the server.
MAX_TOP_K = 20
DEFAULT_CONFIG_NAME = "e2e_config.json"
DEFAULT_PROMPTS = Path(__file__).resolve().parents[2] / "e2e_test_prompts.json"


@dataclass(frozen=True)
class Settings:
    model: str | None = None
    prompts: str = str(DEFAULT_PROMPTS)
    gt_host: str | None = None
    gt_port: int = 8000
    local_host: str = "127.0.0.1"
    local_port: int = 8122
    max_tokens: int = 64
    token_match_count: int = 32
    top_k: int = 5
    concurrency: int = 8
    mode: str = "all"
    api: str = "chat"
    wait_timeout: float = 600.0
    results_dir: str = "e2e_results"
    seed: int = 0
    request_timeout: float = 300.0
    retries: int = 2
    backoff: float = 0.5

    @property
    def gt_url(self) -> str | None:
        return f"http://{_host_for_url(self.gt_host)}:{self.gt_port}" if self.gt_host else None

    @property
    def local_url(self) -> str:
        return f"http://{_host_for_url(self.local_host)}:{self.local_port}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# Keys the config file may hold, section by section; the value says which Settings field it sets.
EVAL_KEYS = {
    "max_tokens": "max_tokens", "token_match_count": "token_match_count", "top_k": "top_k",
    "concurrency": "concurrency", "mode": "mode", "api": "api", "wait_timeout": "wait_timeout",
    "results_dir": "results_dir", "seed": "seed",
}
LOCAL_KEYS = {"host": "local_host", "port": "local_port"}
TOP_LEVEL_KEYS = {"model", "gt_machine", "local", "eval"}


def _unknown(keys: Any, allowed: Any, where: str) -> None:
    extra = sorted(k for k in keys if k not in allowed and not str(k).startswith("_"))
    if extra:
        raise UsageError(
            f"unknown key {extra[0]!r} in {where} of the config file",
            f"allowed keys: {', '.join(sorted(allowed))} (keys starting with '_' are comments)",
        )


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"config section {name!r} must be an object, not {type(value).__name__}")
    return value


def overrides_from_config(data: Any) -> dict[str, Any]:
    """Settings fields set by a parsed config file (unvalidated values; see validate())."""
    if not isinstance(data, dict):
        raise UsageError("the config file must hold a JSON object", "start from scripts/e2e_config.template.json")
    data, _ = legacy_layout.upgrade(data)
    _unknown(data, TOP_LEVEL_KEYS, "the top level")
    out: dict[str, Any] = {}
    if data.get("model") is not None:
        if not isinstance(data["model"], str):
            raise UsageError("config key 'model' must be a string (the model name)")
        out["model"] = data["model"]
    gt = _section(data, "gt_machine")
    if gt.get("host"):
        out["gt_host"] = gt["host"]
    if gt.get("serve_port") is not None:
        out["gt_port"] = gt["serve_port"]
    local = _section(data, "local")
    _unknown(local, LOCAL_KEYS, "section 'local'")
    for key, field_name in LOCAL_KEYS.items():
        if key in local:
            out[field_name] = local[key]
    ev = _section(data, "eval")
    _unknown(ev, EVAL_KEYS, "section 'eval'")
    for key, field_name in EVAL_KEYS.items():
        if key in ev:
            out[field_name] = ev[key]
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file not found: {p}", "copy scripts/e2e_config.template.json and fill it in") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {p}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"config file {p} is not UTF-8 text: {exc.reason}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"config file {p} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    return overrides_from_config(data)


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise UsageError(f"{name} must be an integer {bound}, got {value!r}")


#: the longest wait any setting accepts (a week): larger values are typos, and nan/inf never end
MAX_SECONDS = 7 * 86400


def _check_number(name: str, value: Any, low: float, high: float = MAX_SECONDS) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise UsageError(f"{name} must be a finite number of seconds in {low:g}..{high:g}, got {value!r}")


def validate(settings: Settings) -> Settings:
    """Check every field; return settings with numbers normalised. Raises UsageError."""
    for name in ("max_tokens", "token_match_count", "concurrency"):
        _check_int(name, getattr(settings, name), 1)
    _check_int("top_k", settings.top_k, 1, MAX_TOP_K)
    _check_int("seed", settings.seed, 0)
    _check_int("retries", settings.retries, 0, 10)
    for name in ("gt_port", "local_port"):
        _check_int(name, getattr(settings, name), 1, 65535)
    _check_number("wait_timeout", settings.wait_timeout, 0)
    _check_number("backoff", settings.backoff, 0, 60)
    _check_number("request_timeout", settings.request_timeout, 0.001)
    if settings.mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, got {settings.mode!r}")
    if settings.api not in APIS:
        raise UsageError(f"api must be one of {', '.join(APIS)}, got {settings.api!r}")
    for name in ("local_host", "results_dir", "prompts"):
        value = getattr(settings, name)
        if not isinstance(value, str) or not value:
            raise UsageError(f"{name} must be a non-empty string, got {value!r}")
    if settings.gt_host is not None and not isinstance(settings.gt_host, str):
        raise UsageError(f"gt_machine.host must be a string, got {settings.gt_host!r}")
    if settings.token_match_count > settings.max_tokens:
        raise UsageError(
            f"token_match_count ({settings.token_match_count}) is larger than max_tokens ({settings.max_tokens})",
            "no prompt could ever pass; raise --max-tokens or lower --token-match-count",
        )
    return replace(settings, wait_timeout=float(settings.wait_timeout),
                   request_timeout=float(settings.request_timeout), backoff=float(settings.backoff))


def resolve_settings(config_overrides: Mapping[str, Any], cli_overrides: Mapping[str, Any]) -> Settings:
    """Defaults, then the config file, then the command line (None on the CLI means 'not given')."""
    known = {f.name for f in fields(Settings)}
    merged: dict[str, Any] = {}
    for source in (config_overrides, cli_overrides):
        for key, value in source.items():
            if key not in known:
                raise ValueError(f"not a Settings field: {key}")  # a programming error, not user input
            if value is not None:
                merged[key] = value
    return validate(replace(Settings(), **merged))


def find_default_config(cwd: Path) -> Path | None:
    candidate = cwd / DEFAULT_CONFIG_NAME
    return candidate if candidate.is_file() else None
