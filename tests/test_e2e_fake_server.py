"""The fake vLLM server answers with exactly the field names of vLLM 0.13.0's OpenAI protocol."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.fakes.vllm_openai_server import start_server

# Field names of vLLM's pydantic protocol models (vllm/entrypoints/openai/protocol.py, 0.13.0).
CHAT_RESPONSE = {"id", "object", "created", "model", "choices", "service_tier", "system_fingerprint",
                 "usage", "prompt_logprobs", "prompt_token_ids", "kv_transfer_params"}
CHAT_CHOICE = {"index", "message", "logprobs", "finish_reason", "stop_reason", "token_ids"}
CHAT_MESSAGE = {"role", "content", "refusal", "annotations", "audio", "function_call", "tool_calls",
                "reasoning", "reasoning_content"}
CHAT_LOGPROBS = {"content"}
CHAT_LOGPROB_CONTENT = {"token", "logprob", "bytes", "top_logprobs"}
CHAT_LOGPROB = {"token", "logprob", "bytes"}
USAGE = {"prompt_tokens", "total_tokens", "completion_tokens", "prompt_tokens_details"}
COMPLETION_RESPONSE = {"id", "object", "created", "model", "choices", "service_tier", "system_fingerprint",
                       "usage", "kv_transfer_params"}
COMPLETION_CHOICE = {"index", "text", "logprobs", "finish_reason", "stop_reason", "token_ids",
                     "prompt_logprobs", "prompt_token_ids"}
COMPLETION_LOGPROBS = {"text_offset", "token_logprobs", "tokens", "top_logprobs"}
MODEL_LIST = {"object", "data"}
MODEL_CARD = {"id", "object", "created", "owned_by", "root", "parent", "max_model_len", "permission"}

FAKE = Path(__file__).resolve().parent / "fakes" / "vllm_openai_server.py"


@pytest.fixture()
def server():
    handle = start_server(served_model_name="demo", model_path="/models/Demo-7B")
    yield handle
    handle.shutdown()


def _chat(url: str, **extra) -> requests.Response:
    body = {"model": "demo", "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 6, "temperature": 0, "seed": 0, "logprobs": True, "top_logprobs": 3,
            "return_token_ids": True}
    body.update(extra)
    return requests.post(f"{url}/v1/chat/completions", json=body, timeout=5)


def test_chat_response_has_vllm_field_names(server):
    resp = _chat(server.url)
    assert resp.status_code == 200
    data = resp.json()
    assert set(data) == CHAT_RESPONSE
    assert data["object"] == "chat.completion"
    choice = data["choices"][0]
    assert set(choice) == CHAT_CHOICE
    assert set(choice["message"]) == CHAT_MESSAGE
    assert set(choice["logprobs"]) == CHAT_LOGPROBS
    assert set(data["usage"]) == USAGE
    content = choice["logprobs"]["content"]
    assert len(content) == 6 == len(choice["token_ids"])
    for entry in content:
        assert set(entry) == CHAT_LOGPROB_CONTENT
        assert len(entry["top_logprobs"]) == 3
        assert all(set(top) == CHAT_LOGPROB for top in entry["top_logprobs"])
    assert data["usage"]["completion_tokens"] == 6
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + 6
    assert isinstance(data["prompt_token_ids"], list) and data["prompt_token_ids"]


def test_chat_fields_follow_request_flags(server):
    data = _chat(server.url, logprobs=False, return_token_ids=False).json()
    assert data["choices"][0]["logprobs"] is None
    assert data["choices"][0]["token_ids"] is None
    assert data["prompt_token_ids"] is None
    as_ids = _chat(server.url, return_tokens_as_token_ids=True).json()["choices"][0]
    first = as_ids["logprobs"]["content"][0]
    assert first["token"] == f"token_id:{as_ids['token_ids'][0]}"
    assert all(top["token"].startswith("token_id:") for top in first["top_logprobs"])


def test_completion_response_has_vllm_field_names(server):
    body = {"model": "demo", "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0,
            "logprobs": 2, "return_token_ids": True}
    data = requests.post(f"{server.url}/v1/completions", json=body, timeout=5).json()
    assert set(data) == COMPLETION_RESPONSE
    assert data["object"] == "text_completion"
    choice = data["choices"][0]
    assert set(choice) == COMPLETION_CHOICE
    assert set(choice["logprobs"]) == COMPLETION_LOGPROBS
    assert len(choice["logprobs"]["tokens"]) == 5 == len(choice["token_ids"])
    assert all(len(top) == 2 for top in choice["logprobs"]["top_logprobs"])
    assert set(data["usage"]) == USAGE


def test_models_and_health(server):
    data = requests.get(f"{server.url}/v1/models", timeout=5).json()
    assert set(data) == MODEL_LIST
    card = data["data"][0]
    assert set(card) == MODEL_CARD
    assert card["id"] == "demo" and card["root"] == "/models/Demo-7B" and card["owned_by"] == "vllm"
    assert requests.get(f"{server.url}/health", timeout=5).status_code == 200


def test_deterministic_and_greedy_respected():
    a, b = start_server(served_model_name="a"), start_server(served_model_name="b")
    try:
        ids_a = _chat(a.url, model="a").json()["choices"][0]["token_ids"]
        ids_b = _chat(b.url, model="b").json()["choices"][0]["token_ids"]
        assert ids_a == ids_b
        # sampling without a seed is not reproducible, as on a real server
        hot = [_chat(a.url, model="a", temperature=1.0, seed=None).json()["choices"][0]["token_ids"]
               for _ in range(2)]
        assert hot[0] != hot[1]
    finally:
        a.shutdown()
        b.shutdown()


def test_unknown_model_is_404(server):
    resp = _chat(server.url, model="/models/guessed-path")
    assert resp.status_code == 404
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


def test_behaviour_injects_failures():
    spec = {"boom": {"status": 500}, "bad": {"malformed": True}, "quiet": {"empty": True}}
    with start_server(behaviour=spec) as handle:
        def ask(text):
            return _chat(handle.url, messages=[{"role": "user", "content": text}])
        assert ask("boom now").status_code == 500
        with pytest.raises(ValueError):
            ask("bad json").json()
        quiet = ask("quiet please").json()["choices"][0]
        assert quiet["token_ids"] == [] and quiet["finish_reason"] == "stop"
        assert ask("fine").json()["choices"][0]["finish_reason"] == "length"
        assert len(handle.requests) == 4


def test_cli_startup_delay_then_sigterm(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(FAKE), "--port", "0", "--served-model-name", "m", "--startup-delay", "0.6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("ready http://127.0.0.1:")
        url = line.split()[1]
        assert requests.get(f"{url}/health", timeout=5).status_code == 503
        deadline = time.monotonic() + 10
        while requests.get(f"{url}/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        models = requests.get(f"{url}/v1/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == ["m"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    assert json.dumps(models)  # the body was valid JSON
