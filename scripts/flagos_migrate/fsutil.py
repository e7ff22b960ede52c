"""Filesystem helpers: atomic writes (an interrupted run never leaves half a file), containment
of every write in one folder after resolving links, a lock for read-modify-write, temp cleanup."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from flagos_migrate.cli import UsageError


def atomic_write_bytes(path: str | os.PathLike, data: bytes, within: str | os.PathLike | None = None) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target.

    ``within``: refuse (UsageError) unless the target, after resolving links, stays in that folder.
    """
    target = Path(path)
    if within is not None:
        ensure_within(target, within)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        else:  # mkstemp creates 0600; give new files the usual umask-derived mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str, within: str | os.PathLike | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), within)


def atomic_write_json(path: str | os.PathLike, obj: object, within: str | os.PathLike | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", within)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_within(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when ``path`` (after resolving links) lies inside ``root``."""
    real = Path(os.path.realpath(path))
    base = Path(os.path.realpath(root))
    return real == base or base in real.parents


def ensure_within(path: str | os.PathLike, root: str | os.PathLike, what: str = "the plugin") -> Path:
    """``path`` itself, or UsageError (exit 2) when it or any folder on the way is a link out of ``root``."""
    if not is_within(path, root):
        raise UsageError(f"refusing {path}: it resolves to {os.path.realpath(path)}, outside {what} ({root})",
                         hint="a symlink in the plugin tree points elsewhere; remove it (nothing was written)")
    return Path(path)


def _read_only(path: Path) -> bool:
    # the mode bits, not os.access: root may write anywhere, but a file marked 0444 (or a folder
    # marked 0555) says "do not replace" whoever runs the tool
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not mode & 0o222 or not os.access(path, os.W_OK)


def check_writable(path: str | os.PathLike) -> None:
    """UsageError unless ``path`` can be replaced: a read-only file or folder is never replaced silently."""
    target = Path(path)
    if target.exists() and not target.is_file():
        raise UsageError(f"{target} exists and is not a regular file; not replacing it",
                         hint="move it away and run again; nothing was written")
    if target.exists() and _read_only(target):
        raise UsageError(f"{target} is read-only; not replacing it",
                         hint="make it writable (chmod u+w) if it should be replaced, then run again")
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    if _read_only(folder):
        raise UsageError(f"cannot write in {folder}: the folder is read-only",
                         hint="make it writable (chmod u+w) and run again; nothing was written")


_TEMP = r"{}\.[a-z0-9_]{{8}}\.tmp\Z"  # mkstemp(prefix=".NAME.", suffix=".tmp")


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove ``.NAME.xxxxxxxx.tmp`` files that an interrupted atomic write of ``path`` left behind.

    Call it only while no other writer of ``path`` runs (under ``locked``).
    """
    target = Path(path)
    pattern = re.compile(_TEMP.format(re.escape(f".{target.name}")))
    removed = []
    if target.parent.is_dir():
        for cand in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
            if pattern.fullmatch(cand.name) and cand.is_file() and not cand.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    cand.unlink()
                    removed.append(cand)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?[])", r"[\1]", name)


@contextlib.contextmanager
def locked(lock_file: str | os.PathLike) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_file`` (created if missing, never followed if a link)."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise UsageError(f"cannot open the lock file {lock_file}: {exc.strerror or exc}",
                         hint="the folder must be writable and the lock file must not be a symlink") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
