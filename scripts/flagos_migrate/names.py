"""Strict patterns for every name that comes from input (CLI, config files, config.json).

One place, so that every check is anchored the same way: ``\\Z`` (not ``$``, which also matches
before a final newline) and used with ``fullmatch``.
"""

from __future__ import annotations

import keyword
import re

# migrate_model.py MODEL_NAME: an upstream module file name
MODEL_MODULE = re.compile(r"[a-z][a-z0-9_]*\Z")
# a Hugging Face config.json model_type ("qwen3_5", "gpt-oss", "xlm-roberta")
MODEL_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")

# remote (gt_machine) fields: they reach a remote shell as quoted words
HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\Z")
CONTAINER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
CONDA_ENV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}\Z")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
GPUS = re.compile(r"[0-9]+(,[0-9]+)*\Z")
REMOTE_PATH = re.compile(r"/[A-Za-z0-9_./+@-]*\Z")
EXECUTABLE = re.compile(r"(/[A-Za-z0-9_./+@-]+|[A-Za-z0-9_][A-Za-z0-9_.+-]*)\Z")
_MODEL_PART = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}"
MODEL_FOLDER = re.compile(rf"{_MODEL_PART}(/{_MODEL_PART})?\Z")

# the longest name any check accepts: a 5000-character argument is refused, not searched for
MAX_NAME = 255


def matches(pattern: re.Pattern, value: object, limit: int = MAX_NAME) -> bool:
    """``value`` is a string that the whole ``pattern`` matches (a trailing newline never does)."""
    return isinstance(value, str) and len(value) <= limit and pattern.fullmatch(value) is not None


def is_identifier(value: object) -> bool:
    return matches(IDENTIFIER, value) and not keyword.iskeyword(value)


def is_dotted(value: object) -> bool:
    return matches(DOTTED, value) and not any(keyword.iskeyword(p) for p in value.split("."))
