"""Upstream's ``get_hf_file_bytes`` / ``get_hf_file_to_dict`` for the pinned vLLM (back-port, rule P22).

Upstream's models read optional files beside a checkpoint with ``get_hf_file_bytes`` and take ``None`` for "not
there" (qwen3_dflash.py's ``mask_embedding.pt``, jina.py's ``adapters/{task}/...``, adapters.py's head files).
Upstream's function (``vllm.transformers_utils.repo_utils``) returns ``None`` when a local model directory lacks
the file (``_try_download_from_hf_hub`` skips a directory), when the Hub cache knows the file is absent, and when
the Hub says the repository, revision or file does not exist or cannot be reached. vLLM 0.13.0's function of the
same name and call sends any path it cannot find locally to ``hf_hub_download``: a local directory raises
``HFValidationError`` ("Repo id must be in the form ...") and a repository without the optional file raises
``EntryNotFoundError``, so on the pin those loaders fail on every checkpoint that ships without the file. 0.13.0's ``get_hf_file_to_dict``
(nemotron_vl.py, llava_onevision2.py, moss_audio.py) takes the Hub's errors as upstream's does but not a local
directory (``HFValidationError``).
This is upstream's function over the pinned ``huggingface_hub`` and token; the file is read as it is.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/repo_utils.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import huggingface_hub
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from vllm.logger import init_logger
from vllm.transformers_utils.repo_utils import _get_hf_token

__all__ = ["get_hf_file_bytes", "get_hf_file_to_dict", "try_get_local_file"]

logger = init_logger(__name__)


def try_get_local_file(model: str | Path, file_name: str, revision: str | None = "main") -> Path | Any | None:
    """Upstream's: a ``Path`` when the file is local (in the directory or the Hub cache), the Hub cache's
    ``_CACHED_NO_EXIST`` sentinel when it is known to be absent, else None (0.13.0's drops the sentinel)."""
    file_path = Path(model) / file_name
    if file_path.is_file():
        return file_path
    try:
        cached = try_to_load_from_cache(repo_id=str(model), filename=file_name, revision=revision)
        return Path(cached) if isinstance(cached, str) else cached
    except ValueError:
        return None


def _try_download_from_hf_hub(model: str | Path, file_name: str, revision: str | None) -> Path | None:
    """Upstream's: the downloaded file's path, or None for a local directory and when the Hub has no such
    repository, revision or file (or cannot be reached)."""
    if Path(model).is_dir():
        return None
    try:
        return Path(hf_hub_download(str(model), file_name, revision=revision, token=_get_hf_token()))
    except huggingface_hub.errors.OfflineModeIsEnabled:
        return None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, LocalEntryNotFoundError) as e:
        logger.debug("File or repository not found in hf_hub_download: %s", e)
        return None
    except HfHubHTTPError as e:
        logger.warning("Cannot connect to Hugging Face Hub. Skipping file download for '%s':", file_name, exc_info=e)
        return None


def get_hf_file_bytes(file_name: str, model: str | Path, revision: str | None = "main") -> bytes | None:
    """Upstream's: the file's bytes, or None when it is not there."""
    file_path = try_get_local_file(model=model, file_name=file_name, revision=revision)
    if file_path is None:
        file_path = _try_download_from_hf_hub(model, file_name, revision)
    if isinstance(file_path, Path) and file_path.is_file():
        with open(file_path, "rb") as file:
            return file.read()
    return None


def get_hf_file_to_dict(file_name: str, model: str | Path, revision: str | None = "main"):
    """Upstream's: the JSON file as a dictionary, or None when it is not there."""
    file_path = try_get_local_file(model=model, file_name=file_name, revision=revision)
    if file_path is None:
        file_path = _try_download_from_hf_hub(model, file_name, revision)
    if isinstance(file_path, Path) and file_path.is_file():
        with open(file_path) as file:
            return json.load(file)
    return None
