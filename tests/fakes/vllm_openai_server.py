#!/usr/bin/env python3
"""A small HTTP server that answers like vLLM 0.13.0's OpenAI-compatible API server.

It serves ``/health``, ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions`` and
``/detokenize`` with the response field names of vLLM's protocol (ChatCompletionResponse,
ChatCompletionLogProbsContent, CompletionLogProbs, UsageInfo, ModelCard, DetokenizeResponse ...), and generates
tokens deterministically from the prompt text, so two servers given the same prompts agree
unless a test tells one of them otherwise.

Importable interface (shared with other tests and the stand-in ``vllm`` executable)::

    handle = start_server(host="127.0.0.1", port=0, served_model_name="demo",
                          latency=0.0, startup_delay=0.0, behaviour=None)
    handle.port, handle.url, handle.requests, handle.max_in_flight, handle.spans, handle.shutdown()

``served_model_name`` may be a list (vLLM accepts several names; all are listed in
/v1/models). ``behaviour`` decides per request what to answer; it is either a callable
``behaviour(prompt_text, body) -> dict | None`` or a dict ``{substring: spec}`` (the first
substring found in the prompt text wins). A spec may hold:

- ``token_ids``: list[int]  -- the generated ids (default: derived from the prompt text)
- ``top_ids``: {position: [ids]} -- the top-k candidates at a position, best first
- ``status``: int  -- answer with this HTTP error status and vLLM's error body
- ``hang``: float  -- wait this many seconds before answering (a client timeout test)
- ``malformed``: True -- answer 200 with a body that is not JSON
- ``no_logprobs``: True -- ``logprobs`` is null even though it was requested
- ``no_token_ids``: True -- ``token_ids`` is null even though it was requested
- ``empty``: True -- generate no tokens
- ``latency``: float -- per-request latency overriding the server's

Command line: ``python3 tests/fakes/vllm_openai_server.py --host 127.0.0.1 --port N
--served-model-name NAME [--latency S] [--startup-delay S]`` runs until SIGTERM/SIGINT and
exits 0; it prints ``ready <url>`` on stdout once listening. /health answers 503 during the
startup delay, then 200.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

VOCAB_SIZE = 151_000
DEFAULT_MAX_TOKENS = 16
DEFAULT_MAX_MODEL_LEN = 4096
_SYLLABLES = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ba", "de", "fi", "go", "hu", "je", "ki", "la",
    "ma", "no", "pi", "qu", "ro", "se", "ta", "un", "ve", "wa", "xi", "yo", "ze", "an", "el", "or",
]

Spec = dict[str, Any]
Behaviour = Callable[[str, dict], "Spec | None"] | dict[str, Spec] | None


# ---------------------------------------------------------------- token generation (pure)


def _hash_int(*parts: object) -> int:
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def decode_token(token_id: int) -> str:
    """A stable word for an id, so that outputs read like text."""
    first = _SYLLABLES[token_id % len(_SYLLABLES)]
    second = _SYLLABLES[(token_id // len(_SYLLABLES)) % len(_SYLLABLES)]
    return f" {first}{second}"


def default_token_ids(prompt_text: str, count: int, salt: str = "") -> list[int]:
    return [_hash_int(prompt_text, salt, i) % VOCAB_SIZE for i in range(count)]


def default_top_ids(chosen: int, k: int) -> list[int]:
    """The chosen (greedy) token first, then k-1 other stable candidates."""
    return [chosen] + [(chosen + 7919 * j) % VOCAB_SIZE for j in range(1, k)]


def chosen_logprob(prompt_text: str, position: int) -> float:
    return -round(0.01 + (_hash_int("lp", prompt_text, position) % 1000) / 2000.0, 6)


def candidate_logprobs(first: float, count: int) -> list[float]:
    """Strictly decreasing logprobs starting at ``first``."""
    return [round(first - 0.75 * j, 6) for j in range(count)]


def prompt_text_of(body: dict, api: str) -> str:
    """The text a behaviour is keyed on: the prompt, or all text parts of the messages."""
    if api == "completions":
        prompt = body.get("prompt", "")
        return prompt if isinstance(prompt, str) else json.dumps(prompt)
    pieces: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            pieces.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    pieces.append(str(part.get("text", "")))
                elif isinstance(part, dict) and part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url", "")
                    pieces.append(f"<image:{hashlib.sha256(url.encode()).hexdigest()[:12]}>")
    return "\n".join(pieces)


def resolve_spec(behaviour: Behaviour, prompt_text: str, body: dict) -> Spec:
    if behaviour is None:
        return {}
    if callable(behaviour):
        return behaviour(prompt_text, body) or {}
    for needle, spec in behaviour.items():
        if needle in prompt_text:
            return spec
    return {}


@dataclass
class Generation:
    token_ids: list[int]
    # per position: list of (token_id, logprob), best first; the chosen token is included
    candidates: list[list[tuple[int, float]]]
    chosen_logprobs: list[float]
    finish_reason: str


def generate(prompt_text: str, body: dict, spec: Spec, max_tokens: int) -> Generation:
    temperature = body.get("temperature")
    salt = ""
    if temperature is None or float(temperature) > 0:
        # sampling: without a seed the answer changes from call to call, as a real server's would
        seed = body.get("seed")
        salt = f"seed={seed}" if seed is not None else uuid.uuid4().hex
    if spec.get("empty"):
        ids: list[int] = []
    elif "token_ids" in spec:
        ids = [int(t) for t in spec["token_ids"]][:max_tokens]
    else:
        ids = default_token_ids(prompt_text, max_tokens, salt)
    k = max(1, int(body.get("top_logprobs") or 0) if "messages" in body else int(body.get("logprobs") or 0))
    top_override = {int(p): list(v) for p, v in (spec.get("top_ids") or {}).items()}
    candidates, chosen = [], []
    for pos, tid in enumerate(ids):
        first = chosen_logprob(prompt_text, pos)
        top = top_override.get(pos) or default_top_ids(tid, max(k, 1))
        lps = candidate_logprobs(first, len(top))
        pairs = list(zip(top, lps, strict=True))
        own = dict(pairs).get(tid, round(first - 0.75 * len(top), 6))
        candidates.append(pairs)
        chosen.append(own)
    finish = "length" if len(ids) >= max_tokens else "stop"
    return Generation(ids, candidates, chosen, finish)


def _token_str(token_id: int, as_ids: bool) -> str:
    return f"token_id:{token_id}" if as_ids else decode_token(token_id)


def chat_logprobs(gen: Generation, top_n: int, as_ids: bool) -> dict:
    content = []
    for tid, lp, cands in zip(gen.token_ids, gen.chosen_logprobs, gen.candidates, strict=True):
        text = decode_token(tid)
        content.append({
            "token": _token_str(tid, as_ids),
            "logprob": lp,
            "bytes": list(text.encode("utf-8")),
            "top_logprobs": [
                {"token": _token_str(c, as_ids), "logprob": clp,
                 "bytes": list(decode_token(c).encode("utf-8"))}
                for c, clp in cands[:top_n]
            ],
        })
    return {"content": content}


def completion_logprobs(gen: Generation, top_n: int, as_ids: bool) -> dict:
    tokens, offsets, offset = [], [], 0
    for tid in gen.token_ids:
        tokens.append(_token_str(tid, as_ids))
        offsets.append(offset)
        offset += len(decode_token(tid))
    return {
        "text_offset": offsets,
        "token_logprobs": list(gen.chosen_logprobs),
        "tokens": tokens,
        "top_logprobs": [
            {_token_str(c, as_ids): clp for c, clp in cands[:top_n]} for cands in gen.candidates
        ],
    }


def prompt_token_ids_of(prompt_text: str) -> list[int]:
    words = prompt_text.split() or [""]
    return [_hash_int("prompt", w) % VOCAB_SIZE for w in words]


def usage_of(prompt_ids: list[int], gen: Generation) -> dict:
    return {
        "prompt_tokens": len(prompt_ids),
        "total_tokens": len(prompt_ids) + len(gen.token_ids),
        "completion_tokens": len(gen.token_ids),
        "prompt_tokens_details": None,
    }


def chat_response(model: str, body: dict, gen: Generation, prompt_ids: list[int], spec: Spec) -> dict:
    want_lp = bool(body.get("logprobs")) and not spec.get("no_logprobs")
    want_ids = bool(body.get("return_token_ids")) and not spec.get("no_token_ids")
    as_ids = bool(body.get("return_tokens_as_token_ids"))
    top_n = int(body.get("top_logprobs") or 0)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "".join(decode_token(t) for t in gen.token_ids),
                "refusal": None,
                "annotations": None,
                "audio": None,
                "function_call": None,
                "tool_calls": [],
                # vLLM moved reasoning text from `reasoning_content` to `reasoning` around 0.12/0.13;
                # both are sent so that a client must cope with either
                "reasoning": None,
                "reasoning_content": None,
            },
            "logprobs": chat_logprobs(gen, top_n, as_ids) if want_lp else None,
            "finish_reason": gen.finish_reason,
            "stop_reason": None,
            "token_ids": list(gen.token_ids) if want_ids else None,
        }],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_of(prompt_ids, gen),
        "prompt_logprobs": None,
        "prompt_token_ids": list(prompt_ids) if body.get("return_token_ids") else None,
        "kv_transfer_params": None,
    }


def completion_response(model: str, body: dict, gen: Generation, prompt_ids: list[int], spec: Spec) -> dict:
    top_n = int(body.get("logprobs") or 0)
    want_lp = body.get("logprobs") is not None and not spec.get("no_logprobs")
    want_ids = bool(body.get("return_token_ids"))
    as_ids = bool(body.get("return_tokens_as_token_ids"))
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "text": "".join(decode_token(t) for t in gen.token_ids),
            "logprobs": completion_logprobs(gen, top_n, as_ids) if want_lp else None,
            "finish_reason": gen.finish_reason,
            "stop_reason": None,
            "token_ids": list(gen.token_ids) if want_ids and not spec.get("no_token_ids") else None,
            "prompt_logprobs": None,
            "prompt_token_ids": list(prompt_ids) if want_ids else None,
        }],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_of(prompt_ids, gen),
        "kv_transfer_params": None,
    }


def error_body(message: str, err_type: str, code: int, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def model_list(names: list[str], root: str, max_model_len: int, created: int) -> dict:
    return {
        "object": "list",
        "data": [{
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": root,
            "parent": None,
            "max_model_len": max_model_len,
            "permission": [{
                "id": f"modelperm-{uuid.uuid4().hex}",
                "object": "model_permission",
                "created": created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }],
        } for name in names],
    }


# ---------------------------------------------------------------- the server


@dataclass
class ServerHandle:
    server: ThreadingHTTPServer
    thread: threading.Thread
    names: list[str]
    root: str
    latency: float
    ready_at: float
    behaviour: Behaviour
    max_model_len: int = DEFAULT_MAX_MODEL_LEN
    requests: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    # (start, end) time.monotonic() of every generation request, to check that requests overlapped
    spans: list[tuple[float, float]] = field(default_factory=list)
    in_flight: int = 0
    detokenized: int = 0  # token ids decoded through /detokenize
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def host(self) -> str:
        return self.server.server_address[0]

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def loading(self) -> bool:
        return time.monotonic() < self.ready_at

    def shutdown(self) -> None:
        self.stopping.set()  # releases handlers that are told to hang
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def _make_handler(handle: ServerHandle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-vllm/0.13.0"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass  # keep test output quiet

        def _send(self, status: int, payload: object | bytes) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            handle.paths.append(self.path)
            if self.path == "/health":
                self._send(503 if handle.loading else 200, b"")
            elif handle.loading:
                self._send(503, error_body("server is loading", "ServiceUnavailable", 503))
            elif self.path == "/v1/models":
                self._send(200, model_list(handle.names, handle.root, handle.max_model_len, handle.created))
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            handle.paths.append(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path == "/detokenize":
                self._detokenize(raw)
                return
            api = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}.get(self.path)
            if api is None:
                self._send(404, {"detail": "Not Found"})
                return
            if handle.loading:
                self._send(503, error_body("server is loading", "ServiceUnavailable", 503))
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, error_body("request body is not valid JSON", "BadRequestError", 400))
                return
            started = time.monotonic()
            with handle.lock:
                handle.requests.append(body)
                handle.in_flight += 1
                handle.max_in_flight = max(handle.max_in_flight, handle.in_flight)
            try:
                self._answer(api, body)
            finally:
                with handle.lock:
                    handle.in_flight -= 1
                    handle.spans.append((started, time.monotonic()))

        def _detokenize(self, raw: bytes) -> None:
            """vLLM's DetokenizeRequest {model, tokens} -> DetokenizeResponse {prompt}."""
            try:
                body = json.loads(raw or b"{}")
                tokens = [int(t) for t in body.get("tokens") or []]
            except (ValueError, TypeError):
                self._send(400, error_body("bad detokenize request", "BadRequestError", 400))
                return
            handle.detokenized += len(tokens)
            model = body.get("model") or handle.names[0]
            if model not in handle.names:
                self._send(404, error_body(f"The model `{model}` does not exist.", "NotFoundError", 404, "model"))
                return
            self._send(200, {"prompt": "".join(decode_token(t) for t in tokens)})

        def _answer(self, api: str, body: dict) -> None:
            model = body.get("model") or handle.names[0]
            if model not in handle.names:
                self._send(404, error_body(f"The model `{model}` does not exist.", "NotFoundError", 404, "model"))
                return
            text = prompt_text_of(body, api)
            spec = resolve_spec(handle.behaviour, text, body)
            handle.stopping.wait(float(spec.get("latency", handle.latency)))
            if spec.get("hang"):
                handle.stopping.wait(float(spec["hang"]))
            if spec.get("status"):
                code = int(spec["status"])
                kind = "BadRequestError" if code < 500 else "InternalServerError"
                self._send(code, error_body(f"injected failure {code}", kind, code))
                return
            if spec.get("malformed"):
                self._send(200, b'{"id": "chatcmpl-broken", "choices": [')
                return
            limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
            gen = generate(text, body, spec, int(limit))
            prompt_ids = prompt_token_ids_of(text)
            build = chat_response if api == "chat" else completion_response
            self._send(200, build(model, body, gen, prompt_ids, spec))

    return Handler


def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    served_model_name: str | list[str] = "demo",
    latency: float = 0.0,
    startup_delay: float = 0.0,
    behaviour: Behaviour = None,
    model_path: str | None = None,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
) -> ServerHandle:
    """Start the server in a background thread; returns once it is listening."""
    names = [served_model_name] if isinstance(served_model_name, str) else list(served_model_name)
    handle = ServerHandle(
        server=None,  # type: ignore[arg-type]  # set just below: the handler needs the handle
        thread=None,  # type: ignore[arg-type]
        names=names,
        root=model_path or names[0],
        latency=latency,
        ready_at=time.monotonic() + startup_delay,
        behaviour=behaviour,
        max_model_len=max_model_len,
    )
    server = ThreadingHTTPServer((host, port), _make_handler(handle))
    server.daemon_threads = True
    handle.server = server
    handle.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    handle.thread.start()
    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake vLLM 0.13.0 OpenAI-compatible server for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", nargs="+", default=["demo"])
    parser.add_argument("--model-path", default=None, help="reported as `root` in /v1/models")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per generation request")
    parser.add_argument("--startup-delay", type=float, default=0.0, help="seconds /health answers 503")
    parser.add_argument("--max-model-len", type=int, default=DEFAULT_MAX_MODEL_LEN)
    parser.add_argument("vllm_argv", nargs="*", help="the `vllm serve` command line this stands in for")
    args = parser.parse_args(argv)
    try:
        handle = start_server(args.host, args.port, args.served_model_name, args.latency,
                              args.startup_delay, None, args.model_path, args.max_model_len)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"ready {handle.url}", flush=True)
    while not done.wait(0.2):
        pass
    handle.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
