"""HTTP to the vLLM servers: one session with retries, a whole-request deadline and a cap on the
answer size (a server that dribbles or floods cannot hang or exhaust the run), the health wait and
the model id. ``client.py`` builds the requests and reads the answers on top of this.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import Any, Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from flagos_migrate.cli import UsageError

#: the largest answer read; a greedy answer of a few hundred tokens with top-20 logprobs is < 1 MiB
MAX_RESPONSE_BYTES = 32 * 2**20
Log = Callable[[str], None]


class ResponseError(Exception):
    """A server answer that cannot be used (recorded as an error for that prompt)."""


# ---------------------------------------------------------------- HTTP session

# requests' timeout bounds each socket read, not the request: a server that sends one byte every
# few seconds would hold a request forever. Each attempt (a retry is a new request) arms a timer
# that shuts the socket of the connection in use when the deadline passes; the pool's connection
# class arms it, so the timer knows which socket that is.
_current = threading.local()


class _Watch:
    def __init__(self, timeout: float) -> None:
        self.lock = threading.Lock()
        self.timeout = timeout
        self.timer: threading.Timer | None = None
        self.conn = None
        self.expired = False
        self.done = False

    def arm(self, conn) -> None:
        with self.lock:
            if self.done or self.expired:
                return
            if self.timer is not None:
                self.timer.cancel()
            self.conn = conn
            self.timer = threading.Timer(self.timeout, self.expire)
            self.timer.daemon = True
            self.timer.start()

    def expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            sock = getattr(self.conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def finish(self) -> None:
        with self.lock:
            self.done = True
            if self.timer is not None:
                self.timer.cancel()


class _Tracked:
    def request(self, *args, **kwargs):
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.arm(self)
        return super().request(*args, **kwargs)


class _TrackedHTTP(_Tracked, HTTPConnection):
    pass


class _TrackedHTTPS(_Tracked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTP


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPS


class DeadlineExceeded(Exception):
    """No complete answer within the whole-request deadline."""


class TooLarge(Exception):
    """The answer is larger than the cap."""


def fetch(session: requests.Session, method: str, url: str, timeout: float,
          max_bytes: int = MAX_RESPONSE_BYTES, **kwargs) -> tuple[int, bytes]:
    """(HTTP status, body) of one request whose every attempt ends within ``timeout`` seconds and
    reads at most ``max_bytes``; raises DeadlineExceeded, TooLarge or requests' exceptions."""
    watch = _Watch(timeout)
    _current.watch = watch
    try:
        resp = session.request(method, url, timeout=(min(10.0, timeout), timeout), stream=True, **kwargs)
        with resp:
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise TooLarge(f"the answer announces {int(length)} bytes")
            chunks, size = [], 0
            for chunk in resp.iter_content(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"the answer exceeded {max_bytes} bytes")
                chunks.append(chunk)
        watch.finish()
    except (requests.RequestException, OSError):
        watch.finish()
        if watch.expired:
            raise DeadlineExceeded() from None
        raise
    finally:
        watch.finish()
        _current.watch = None
    if watch.expired:  # the socket was shut mid-body: what arrived is cut short
        raise DeadlineExceeded()
    return resp.status_code, b"".join(chunks)


def make_session(retries: int, backoff: float, pool_size: int) -> requests.Session:
    """A session that retries refused connections and 5xx answers with exponential backoff.

    Read timeouts are not retried: a hung generation would otherwise cost several timeouts.
    """
    retry = Retry(
        total=retries, connect=retries, read=0, status=retries, other=0,
        backoff_factor=backoff, status_forcelist=(500, 502, 503, 504),
        allowed_methods=None, raise_on_status=False, respect_retry_after_header=True,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=2, pool_maxsize=max(pool_size, 1))
    adapter.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def wait_for_health(url: str, timeout: float, log: Log, poll: float = 0.25,
                    clock: Callable[[], float] = time.monotonic,
                    stop: threading.Event | None = None) -> tuple[bool, str]:
    """Poll ``/health`` until it answers 200; a refused connection or 503 means 'not up yet'."""
    deadline = clock() + timeout
    last, next_note = "no answer yet", clock() + 10
    session = make_session(0, 0, 1)
    try:
        while not (stop and stop.is_set()):
            try:
                status, _ = fetch(session, "GET", f"{url}/health", min(5.0, max(timeout, 0.5)), max_bytes=64 * 1024)
                if status == 200:
                    return True, "healthy"
                last = f"HTTP {status}" + (" (loading)" if status == 503 else "")
            except requests.ConnectionError:
                last = "connection refused"
            except (requests.Timeout, DeadlineExceeded):
                last = "health check timed out"
            except (requests.RequestException, TooLarge) as exc:
                last = f"unusable answer ({exc.__class__.__name__})"
            now = clock()
            if now >= deadline:
                return False, last
            if now >= next_note:
                log(f"waiting for {url}/health: {last} ({deadline - now:.0f}s left)")
                next_note = now + 10
            time.sleep(min(poll, max(deadline - now, 0)))
    finally:
        session.close()
    return False, "interrupted"


def list_models(session: requests.Session, url: str, timeout: float) -> list[dict[str, Any]]:
    try:
        status, body = fetch(session, "GET", f"{url}/v1/models", timeout)
    except DeadlineExceeded:
        raise UsageError(f"{url}/v1/models gave no complete answer within {timeout:g}s") from None
    except TooLarge as exc:
        raise UsageError(f"{url}/v1/models: {exc}; refused") from None
    except requests.RequestException as exc:
        raise UsageError(f"cannot list models at {url}/v1/models: {exc.__class__.__name__}") from None
    if status != 200:
        raise UsageError(f"{url}/v1/models answered HTTP {status}")
    try:
        data = json.loads(body).get("data")
    except (ValueError, AttributeError):
        data = None
    if not isinstance(data, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in data):
        raise UsageError(f"{url}/v1/models did not return a model list")
    return data


def _base(name: str) -> str:
    return os.path.basename(name.rstrip("/")) or name


def pick_model(cards: list[dict[str, Any]], wanted: str | None, url: str) -> tuple[str, str | None]:
    """The served model id to send, and an optional note for the user.

    One served model: use it. Several: the one matching ``wanted`` by id, by the basename of a
    path, or by the basename of the model path (``root``) it was loaded from.
    """
    ids = [c["id"] for c in cards]
    if not ids:
        raise UsageError(f"{url} serves no model")
    if len(ids) == 1:
        only = ids[0]
        matches_wanted = wanted is None or wanted in (only, _base(only), cards[0].get("root")) or \
            _base(wanted) in (only, _base(only), _base(str(cards[0].get("root") or "")))
        note = None if matches_wanted else f"{url} serves {only!r}, not {wanted!r}; comparing with {only!r}"
        return only, note
    if wanted is None:
        raise UsageError(f"{url} serves several models ({', '.join(ids)})", "pass --model NAME to pick one")
    exact = [i for i in ids if i == wanted]
    if exact:
        return exact[0], None
    base = _base(wanted)
    by_name = sorted({c["id"] for c in cards if base in (c["id"], _base(c["id"]), _base(str(c.get("root") or "")))})
    if len(by_name) == 1:
        return by_name[0], None
    if not by_name:
        raise UsageError(f"{url} serves no model matching {wanted!r} (it serves {', '.join(ids)})",
                         "pass --model with one of the served names")
    raise UsageError(f"--model {wanted!r} is ambiguous at {url}: {', '.join(by_name)}",
                     "pass the exact served name")
