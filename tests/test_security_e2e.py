"""Issue 15, item 5: no hang and no unbounded read in the E2E client (real loopback servers)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flagos_migrate.e2e.client import ask, make_session, wait_for_health

ROOT = Path(__file__).resolve().parent.parent
E2E = ROOT / "scripts" / "e2e_eval.py"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


class Server:
    """A loopback HTTP server whose handler is a plain function of the request handler."""

    def __init__(self, handle):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._run()

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._run()

            def _run(self):
                try:
                    handle(self)
                except OSError:
                    pass  # the client hung up, as it should

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.sent = 0

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_dribbling_body_is_cut_at_the_whole_request_deadline():
    def dribble(h):
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        for _ in range(40):  # one byte every 0.25 s: each read is quick, the answer never completes
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.25)

    with Server(dribble) as srv:
        started = time.monotonic()
        status, out, error = ask(make_session(0, 0, 1), srv.url, "/v1/chat/completions", BODY, 1.5, "chat")
        elapsed = time.monotonic() - started
    assert (status, out) == ("error", None)
    assert "timed out after 1.5s: no complete answer" in error
    assert elapsed < 4, elapsed


def test_dribbling_headers_are_cut_at_the_deadline_too():
    def slow_headers(h):
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(40):
            h.wfile.write(f"X-Slow-{i}: 1\r\n".encode())
            h.wfile.flush()
            time.sleep(0.25)

    with Server(slow_headers) as srv:
        started = time.monotonic()
        status, _, error = ask(make_session(0, 0, 1), srv.url, "/v1/chat/completions", BODY, 1.5, "chat")
        assert time.monotonic() - started < 4
    assert status == "error" and "1.5s" in error


@pytest.mark.parametrize("announce", [True, False])
def test_a_huge_body_is_refused_with_a_clear_error(announce):
    total = 256 * 2**20
    chunk = b"0" * 2**20

    def huge(h):
        h.send_response(200)
        if announce:
            h.send_header("Content-Length", str(total))
        else:
            h.send_header("Connection", "close")  # body ends when the connection does
        h.end_headers()
        for _ in range(total // len(chunk)):
            h.wfile.write(chunk)
            srv.sent += len(chunk)

    with Server(huge) as srv:
        status, out, error = ask(make_session(0, 0, 1), srv.url, "/v1/chat/completions", BODY, 30, "chat",
                                 max_bytes=4 * 2**20)
    assert (status, out) == ("error", None)
    assert "answer too large" in error and "4 MiB" in error
    assert srv.sent < 64 * 2**20  # stopped reading early, not after the whole body


def test_health_wait_ends_although_health_dribbles():
    def dribble(h):
        h.send_response(200)
        h.send_header("Content-Length", "50")
        h.end_headers()
        for _ in range(50):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.2)

    with Server(dribble) as srv:
        started = time.monotonic()
        ok, why = wait_for_health(srv.url, 1.0, lambda _m: None)
        assert time.monotonic() - started < 8
    assert not ok and "timed out" in why


def _e2e(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(E2E), *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=env)
    return proc, time.monotonic() - started


@pytest.mark.parametrize("flag, value", [("--wait-timeout", "nan"), ("--wait-timeout", "inf"),
                                         ("--wait-timeout", "1e300"), ("--request-timeout", "nan"),
                                         ("--request-timeout", "-1"), ("--wait-timeout", "-inf")])
def test_non_finite_or_absurd_timeouts_exit_2_at_once(tmp_path, flag, value, capsys):
    import e2e_eval

    started = time.monotonic()
    with pytest.raises(SystemExit) as stop:
        e2e_eval.main(["--local-only", "--local-port", "9", f"{flag}={value}"])
    assert stop.value.code == 2 and time.monotonic() - started < 1.0  # refused at parse time
    assert f"argument {flag}" in capsys.readouterr().err
    proc, _ = _e2e("--local-only", "--local-port", "9", f"{flag}={value}", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and f"argument {flag}" in proc.stderr


@pytest.mark.parametrize("key, value", [("wait_timeout", "NaN"), ("wait_timeout", "Infinity"),
                                        ("wait_timeout", "1e12")])
def test_non_finite_timeouts_in_the_config_exit_2(tmp_path, key, value):
    (tmp_path / "e2e_config.json").write_text('{"eval": {"%s": %s}}' % (key, value))
    proc, _ = _e2e("--local-only", "--local-port", "9", cwd=tmp_path)
    assert proc.returncode == 2 and "finite number of seconds" in proc.stderr, proc.stderr
