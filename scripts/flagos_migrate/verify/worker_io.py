"""The host side of a worker process in a foreign Python: its stderr tail and its JSON event lines.

Both workers (``_probe_worker.py`` and ``_runtime_worker.py``) print one JSON object per line on
stdout and may print anything on stderr (vLLM is chatty); the host keeps only stderr's tail for
diagnostics and reads stdout as events.
"""

from __future__ import annotations

import json
import threading
from typing import IO, Iterator


class StderrTail:
    """Drain a process's stderr in a background thread, keeping its last ``keep`` lines."""

    def __init__(self, stream: IO[str] | None, keep: int = 40):
        self.lines: list[str] = []
        self._stream = stream
        self._keep = keep
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        assert self._stream is not None
        for line in self._stream:
            self.lines.append(line)
            del self.lines[:-self._keep]

    def last(self, n: int) -> str:
        return "".join(self.lines[-n:])

    def join(self, timeout: float = 5) -> None:
        self._thread.join(timeout=timeout)


def json_events(stream: IO[str]) -> Iterator[dict]:
    """The JSON objects a worker prints, one a line; anything else on stdout is skipped."""
    for line in stream:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event
