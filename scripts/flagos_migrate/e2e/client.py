"""Talking to the two vLLM servers: health, model id, greedy requests with logprobs, resumable results.

The requests ask for greedy decoding (``temperature: 0`` and a seed), ``logprobs`` with
``top_logprobs``, ``return_token_ids`` (the generated ids, independent of any reasoning parser
that moves text out of ``content``) and ``return_tokens_as_token_ids`` (so that the top-k
candidates are token *ids* too, and the comparison never has to trust decoded strings).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import requests
from urllib3.exceptions import ReadTimeoutError

from flagos_migrate.cli import UsageError
from flagos_migrate.e2e.config import Settings
from flagos_migrate.e2e.http import (
    MAX_RESPONSE_BYTES,
    DeadlineExceeded,
    ResponseError,
    TooLarge,
    fetch,
    list_models,
    make_session,
    pick_model,
    wait_for_health,
)
from flagos_migrate.e2e.prompts import Prompt
from flagos_migrate.fsutil import atomic_write_json

SIDES = ("gt", "local")
TOKEN_ID_RE = re.compile(r"token_id:(-?\d+)\Z")
RESULTS_SCHEMA = 1
Log = Callable[[str], None]


# ---------------------------------------------------------------- requests and answers


def request_body(prompt: Prompt, settings: Settings, model: str) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) of the greedy request for one prompt."""
    common = {
        "model": model, "max_tokens": settings.max_tokens, "temperature": 0.0, "seed": settings.seed,
        "n": 1, "return_token_ids": True, "return_tokens_as_token_ids": True,
    }
    if settings.api == "chat":
        return "/v1/chat/completions", {**common, "messages": prompt.messages, "logprobs": True,
                                        "top_logprobs": settings.top_k}
    return "/v1/completions", {**common, "prompt": prompt.completion_text(), "logprobs": settings.top_k}


def request_params(body: dict[str, Any]) -> dict[str, Any]:
    """The parameters that decide the answer, without the model name (which may differ per side)."""
    params = {k: v for k, v in body.items() if k not in ("model", "messages", "prompt")}
    content = body.get("messages", body.get("prompt"))
    params["input_sha256"] = hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()
    return params


def params_key(params: dict[str, Any], model: str) -> str:
    return hashlib.sha256(json.dumps({"p": params, "m": model}, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _key_of(token: Any) -> tuple[str, Any]:
    """('id', int) for vLLM's 'token_id:N' strings, else ('text', the string)."""
    if isinstance(token, str):
        m = TOKEN_ID_RE.fullmatch(token)
        if m:
            return "id", int(m.group(1))
        return "text", token
    raise ResponseError(f"token is not a string: {token!r}")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResponseError(f"{what} is not a number: {value!r}")
    return float(value)


def _normalise(token_ids: list[int], chosen: list[Any], logprobs: list[Any],
               tops: list[list[tuple[Any, Any]]]) -> dict[str, Any]:
    if len(chosen) != len(token_ids):
        raise ResponseError(f"logprobs cover {len(chosen)} tokens but token_ids has {len(token_ids)}")
    kinds, keys = set(), []
    for i, tok in enumerate(chosen):
        kind, key = _key_of(tok)
        if kind == "id" and key != token_ids[i]:
            raise ResponseError(f"position {i}: logprobs token {key} differs from token_ids {token_ids[i]}")
        kinds.add(kind)
        keys.append(key)
    norm_tops = []
    for i, top in enumerate(tops):
        row = []
        for tok, lp in top:
            kind, key = _key_of(tok)
            kinds.add(kind)
            row.append([key, _number(lp, f"top logprob at position {i}")])
        norm_tops.append(row)
    if len(kinds) > 1:
        raise ResponseError("logprobs mix token ids and token strings")
    return {
        "token_ids": token_ids,
        "key_kind": kinds.pop() if kinds else "id",
        "keys": keys,
        "logprobs": [_number(lp, f"logprob at position {i}") for i, lp in enumerate(logprobs)],
        "top": norm_tops,
    }


def _token_ids_of(choice: dict[str, Any]) -> list[int]:
    ids = choice.get("token_ids")
    if ids is None:
        raise ResponseError("response has no token_ids (the server ignored return_token_ids; needs vLLM >= 0.10.2)")
    if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
        raise ResponseError("token_ids is not a list of integers")
    return ids


def _first_choice(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ResponseError("response is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ResponseError("response has no choices")
    return choices[0]


def parse_chat(data: Any) -> dict[str, Any]:
    choice = _first_choice(data)
    ids = _token_ids_of(choice)
    content = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
    if content is None:
        if ids:
            raise ResponseError("response has no logprobs (requested logprobs/top_logprobs)")
        content = []
    if not isinstance(content, list) or not all(isinstance(e, dict) for e in content):
        raise ResponseError("logprobs.content is not a list of objects")
    out = _normalise(
        ids, [e.get("token") for e in content], [e.get("logprob") for e in content],
        [[(t.get("token"), t.get("logprob")) for t in (e.get("top_logprobs") or []) if isinstance(t, dict)]
         for e in content],
    )
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    out["text"] = message.get("content") or ""
    out["reasoning"] = message.get("reasoning") or message.get("reasoning_content") or ""
    out["finish_reason"] = choice.get("finish_reason")
    out["usage"] = data.get("usage")
    return out


def parse_completion(data: Any) -> dict[str, Any]:
    choice = _first_choice(data)
    ids = _token_ids_of(choice)
    lp = choice.get("logprobs")
    if not isinstance(lp, dict) or lp.get("tokens") is None:
        if ids:
            raise ResponseError("response has no logprobs (requested logprobs)")
        lp = {"tokens": [], "token_logprobs": [], "top_logprobs": []}
    tokens, values = lp.get("tokens") or [], lp.get("token_logprobs") or []
    tops_raw = lp.get("top_logprobs") or [None] * len(tokens)
    if not (len(tokens) == len(values) == len(tops_raw)):
        raise ResponseError("logprobs lists have different lengths")
    tops = [sorted((top or {}).items(), key=lambda kv: -kv[1] if isinstance(kv[1], (int, float)) else 0)
            for top in tops_raw]
    out = _normalise(ids, tokens, values, tops)
    out["text"] = choice.get("text") or ""
    out["reasoning"] = ""
    out["finish_reason"] = choice.get("finish_reason")
    out["usage"] = data.get("usage")
    return out


def _error_text(status: int, body: bytes) -> str:
    try:
        data = json.loads(body)
        err = data.get("error") if isinstance(data, dict) else None
        message = err.get("message") if isinstance(err, dict) else (data.get("message") or data.get("detail"))
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")
    return f"HTTP {status}: {str(message or '').strip()[:300]}"


def ask(session: requests.Session, url: str, path: str, body: dict[str, Any], timeout: float,
        api: str, max_bytes: int = MAX_RESPONSE_BYTES) -> tuple[str, dict[str, Any] | None, str | None]:
    """(status, output, error) of one request; never raises for server-side problems."""
    try:
        status, raw = fetch(session, "POST", f"{url}{path}", timeout, max_bytes, json=body)
    except DeadlineExceeded:
        return "error", None, f"timed out after {timeout:g}s: no complete answer (--request-timeout bounds the whole request)"
    except TooLarge as exc:
        return "error", None, f"answer too large: {exc} (cap {max_bytes // 2**20} MiB); refused"
    except requests.Timeout:
        return "error", None, f"timed out after {timeout:g}s"
    except requests.ConnectionError as exc:
        # with a Retry policy, a read timeout arrives wrapped: ConnectionError(MaxRetryError(ReadTimeoutError))
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, ReadTimeoutError):
            return "error", None, f"timed out after {timeout:g}s"
        return "error", None, f"connection failed: {(reason or exc).__class__.__name__}"
    except requests.RequestException as exc:
        return "error", None, f"request failed: {exc}"
    if status != 200:
        return "error", None, _error_text(status, raw)
    try:
        data = json.loads(raw)
    except ValueError:
        return "error", None, f"malformed JSON in the response: {raw[:80].decode('utf-8', 'replace')!r}"
    try:
        return "ok", (parse_chat(data) if api == "chat" else parse_completion(data)), None
    except ResponseError as exc:
        return "error", None, str(exc)


# ---------------------------------------------------------------- resumable result files


def results_path(results_dir: str | Path, side: str) -> Path:
    return Path(results_dir) / f"{side}.json"


def read_results(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read results file {path}: {exc}", "move it away to start afresh") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise UsageError(f"results file {path} has no 'results' object", "move it away to start afresh")
    return results


@dataclass
class ResultStore:
    """One side's answers, written atomically after every prompt so an interrupted run resumes."""

    path: Path
    side: str
    dry_run: bool = False
    results: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, results_dir: str | Path, side: str, dry_run: bool = False) -> ResultStore:
        path = results_path(results_dir, side)
        return cls(path=path, side=side, dry_run=dry_run, results=read_results(path))

    def answered(self, prompt_id: str, key: str) -> bool:
        rec = self.results.get(prompt_id)
        return isinstance(rec, dict) and rec.get("status") == "ok" and rec.get("params_key") == key

    def put(self, prompt_id: str, record: dict[str, Any]) -> None:
        with self.lock:
            self.results[prompt_id] = record
            if not self.dry_run:
                atomic_write_json(self.path, {"schema": RESULTS_SCHEMA, "side": self.side, **self.meta,
                                              "results": self.results})


@dataclass
class SideOutcome:
    side: str
    url: str
    reachable: bool = False
    model: str | None = None
    note: str | None = None
    problem: str | None = None
    asked: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_side(side: str, url: str, prompts: list[Prompt], settings: Settings, store: ResultStore,
             log: Log, stop: threading.Event | None = None) -> SideOutcome:
    """Wait for the server, resolve the model id, ask every prompt not answered yet (concurrently).

    When ``stop`` is set (Ctrl-C), prompts not sent yet are dropped; answers in flight are still saved.
    """
    stop = stop or threading.Event()
    started = time.monotonic()
    outcome = SideOutcome(side=side, url=url)
    up, why = wait_for_health(url, settings.wait_timeout, lambda m: log(f"[{side}] {m}"), stop=stop)
    if not up:
        outcome.problem = f"{url} not healthy after {settings.wait_timeout:g}s: {why}"
        return outcome
    outcome.reachable = True
    session = make_session(settings.retries, settings.backoff, settings.concurrency)
    try:
        model, outcome.note = pick_model(list_models(session, url, settings.request_timeout), settings.model, url)
        outcome.model = model
        store.meta = {"server": url, "model": model, "updated": _now()}
        work = []
        for prompt in prompts:
            path, body = request_body(prompt, settings, model)
            params = request_params(body)
            key = params_key(params, model)
            if store.answered(prompt.id, key):
                outcome.resumed.append(prompt.id)
            else:
                work.append((prompt, path, body, params, key))
        if outcome.resumed:
            log(f"[{side}] {len(outcome.resumed)} prompt(s) already answered with the same parameters; not asked again")

        def one(item):
            prompt, path, body, params, key = item
            if stop.is_set():
                return prompt, None
            t0 = time.monotonic()
            status, output, error = ask(session, url, path, body, settings.request_timeout, settings.api)
            return prompt, {
                "prompt_id": prompt.id, "category": prompt.category, "modality": prompt.modality,
                "model": model, "server": url, "params": params, "params_key": key, "status": status,
                "error": error, "output": output, "elapsed_s": round(time.monotonic() - t0, 3), "asked_at": _now(),
            }

        with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix=f"e2e-{side}") as pool:
            for fut in as_completed([pool.submit(one, item) for item in work]):
                prompt, record = fut.result()
                if record is None:
                    continue
                store.put(prompt.id, record)
                outcome.asked.append(prompt.id)
                if record["status"] == "ok":
                    n = len(record["output"]["token_ids"])
                    log(f"[{side}] {prompt.id}: {n} tokens in {record['elapsed_s']:.2f}s")
                else:
                    outcome.errors[prompt.id] = record["error"]
                    log(f"[{side}] {prompt.id}: ERROR {record['error']}")
    finally:
        session.close()
        outcome.elapsed_s = round(time.monotonic() - started, 3)
    return outcome


def _one_line_at_a_time(log: Log) -> Log:
    """Progress from many threads, without lines running into each other."""
    lock = threading.Lock()

    def locked(message: str) -> None:
        with lock:
            log(message)

    return locked


def collect(sides: dict[str, str], prompts: list[Prompt], settings: Settings, log: Log,
            dry_run: bool = False) -> dict[str, SideOutcome]:
    """Run the wanted sides at the same time (GT and local overlap); returns each side's outcome."""
    log = _one_line_at_a_time(log)
    stores = {side: ResultStore.open(settings.results_dir, side, dry_run) for side in sides}
    outcomes: dict[str, SideOutcome] = {}
    failures: list[BaseException] = []
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(len(sides), 1), thread_name_prefix="e2e-side")
    try:
        futures = {pool.submit(run_side, side, url, prompts, settings, stores[side], log, stop): side
                   for side, url in sides.items()}
        for fut in as_completed(futures):
            try:
                outcomes[futures[fut]] = fut.result()
            except Exception as exc:  # re-raised below once both sides stopped
                failures.append(exc)
    except BaseException:
        # Ctrl-C: send nothing more; requests in flight finish and are saved before the process exits
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    if failures:
        raise failures[0]
    return outcomes


# ---------------------------------------------------------------- token texts for the reports

MAX_DECODE = 5000


def token_text_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / "token_text.json"


def load_token_text(results_dir: str | Path) -> dict[str, dict[str, str]]:
    """Cached texts of single token ids, per served model: {model: {"123": " Paris"}}."""
    path = token_text_path(results_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def decode_tokens(url: str, model: str, ids: set[int], settings: Settings, log: Log) -> dict[str, str]:
    """Text of each token id via vLLM's ``/detokenize`` (best effort, only for the reports).

    Results are cached in results_dir/token_text.json; when the endpoint is missing or fails,
    the reports show bare ids. Token ids stay what is compared; this text is never compared.
    """
    cache = load_token_text(settings.results_dir)
    known = dict(cache.get(model) or {})
    todo = sorted(i for i in ids if str(i) not in known)[:MAX_DECODE]
    if not todo:
        return known
    session = make_session(0, 0, settings.concurrency)
    timeout = min(settings.request_timeout, 30.0)

    def one(tid: int) -> tuple[int, str | None]:
        try:
            status, raw = fetch(session, "POST", f"{url}/detokenize", timeout, 1024 * 1024,
                                json={"model": model, "tokens": [tid]})
            text = json.loads(raw).get("prompt") if status == 200 else None
            return tid, text if isinstance(text, str) else None
        except (requests.RequestException, DeadlineExceeded, TooLarge, ValueError, AttributeError):
            return tid, None

    try:
        first = one(todo[0])  # one probe first: a server without /detokenize costs one request, not thousands
        if first[1] is None:
            log(f"note: {url}/detokenize gave no text; reports show token ids only")
            return known
        results = [first]
        with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="e2e-detok") as pool:
            results += list(pool.map(one, todo[1:]))
    finally:
        session.close()
    known.update({str(tid): text for tid, text in results if text is not None})
    cache[model] = known
    atomic_write_json(token_text_path(settings.results_dir), cache)
    return known
