"""scripts/e2e_eval.py against two real HTTP servers on loopback that answer like vLLM 0.13.0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import e2e_eval
import pytest
from flagos_migrate.cli import UsageError

from tests.fakes.vllm_openai_server import start_server

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "e2e_eval.py"
BASE = list(range(100, 116))


def with_token(ids, pos, token):
    return ids[:pos] + [token] + ids[pos + 1:]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./e2e_config.json is picked up by accident


@pytest.fixture()
def servers():
    started = []

    def make(**kwargs):
        handle = start_server(**kwargs)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.shutdown()


def prompts_file(tmp_path: Path, texts: dict[str, str], name: str = "prompts.json") -> str:
    path = tmp_path / name
    items = [{"id": pid, "category": "cat", "modality": "text", "prompt": text,
              "messages": [{"role": "user", "content": text}]} for pid, text in texts.items()]
    path.write_text(json.dumps({"prompts": items}))
    return str(path)


def run(capsys, tmp_path, gt, local, prompts, *extra, results="results"):
    argv = ["--prompts", prompts, "--local-host", "127.0.0.1", "--local-port", str(local.port),
            "--results-dir", str(tmp_path / results), "--max-tokens", "16", "--token-match-count", "8",
            "--wait-timeout", "5", "--request-timeout", "5", "--retries", "1", "--format", "json", *extra]
    if gt is not None:
        argv += ["--gt-host", "127.0.0.1", "--gt-port", str(gt.port)]
    capsys.readouterr()
    code = e2e_eval.main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def verdicts(report):
    return {row["id"]: row for row in report["prompts"]}


def test_all_match_sends_greedy_requests_with_the_served_model_name(capsys, tmp_path, servers):
    gt = servers(served_model_name="Qwen/Qwen3-8B", model_path="/models/Qwen3-8B")
    local = servers(served_model_name="qwen3-plugin")
    prompts = prompts_file(tmp_path, {"a": "What is 2+2?", "b": "Name a colour.", "c": "Say hi."})
    code, report = run(capsys, tmp_path, gt, local, prompts, "--model", "qwen3_5")
    assert code == 0
    assert report["summary"]["passed"] == 3 and all(r["verdict"] == "match" for r in report["prompts"])
    body = gt.requests[0]
    assert body["model"] == "Qwen/Qwen3-8B" and local.requests[0]["model"] == "qwen3-plugin"
    assert body["temperature"] == 0 and body["seed"] == 0 and body["logprobs"] is True
    assert body["top_logprobs"] == 5 and body["return_token_ids"] is True and body["max_tokens"] == 16
    assert any("not 'qwen3_5'" in n for n in report["notes"])  # the served name differs from --model
    for path in report["reports"].values():
        assert Path(path).is_file()
    saved = json.loads((tmp_path / "results" / "gt.json").read_text())
    assert set(saved["results"]) == {"a", "b", "c"} and saved["model"] == "Qwen/Qwen3-8B"


def test_close_and_mismatch_verdicts(capsys, tmp_path, servers):
    gt = servers(behaviour={
        "near": {"token_ids": BASE, "top_ids": {9: [109, 999]}},
        "far": {"token_ids": BASE},
        "early": {"token_ids": BASE, "top_ids": {1: [101, 4242]}},
    })
    local = servers(behaviour={
        "near": {"token_ids": with_token(BASE, 9, 999), "top_ids": {9: [999, 109]}},
        "far": {"token_ids": with_token(BASE, 9, 4242)},
        "early": {"token_ids": with_token(BASE, 1, 4242), "top_ids": {1: [4242, 101]}},
    })
    prompts = prompts_file(tmp_path, {"near": "near tie", "far": "far off", "early": "early split"})
    code, report = run(capsys, tmp_path, gt, local, prompts, "--token-match-count", "12")
    assert code == 1  # one mismatch fails the run
    v = verdicts(report)
    assert v["near"]["verdict"] == "close" and v["near"]["position"] == 9
    assert v["near"]["gt"]["token_id"] == 109 and v["near"]["local"]["token_id"] == 999
    assert "numerical noise" in v["near"]["diagnosis"]
    assert v["early"]["verdict"] == "close" and "likely a code bug" in v["early"]["diagnosis"]
    assert v["far"]["verdict"] == "mismatch" and v["far"]["position"] == 9
    assert report["summary"]["early_divergence"] == ["early"]
    passing = prompts_file(tmp_path, {"near": "near tie", "early": "early split"}, "passing.json")
    code, report = run(capsys, tmp_path, gt, local, passing, "--token-match-count", "12")
    assert code == 0 and report["summary"]["counts"]["close"] == 2  # close counts as a pass


def test_prompt_failures_are_recorded_and_the_others_go_on(capsys, tmp_path, servers):
    gt = servers(behaviour={"short": {"token_ids": BASE[:4]}})
    local = servers(behaviour={
        "boom": {"status": 500}, "slow": {"hang": 10}, "garbled": {"malformed": True},
        "nolp": {"no_logprobs": True}, "noids": {"no_token_ids": True}, "quiet": {"empty": True},
        "short": {"token_ids": BASE[:4]}, "reject": {"status": 400},
    })
    names = ["boom", "slow", "garbled", "nolp", "noids", "quiet", "short", "reject", "fine"]
    prompts = prompts_file(tmp_path, {n: f"{n} prompt" for n in names})
    code, report = run(capsys, tmp_path, gt, local, prompts, "--request-timeout", "3", "--concurrency", "9")
    assert code == 1
    v = verdicts(report)
    assert v["fine"]["verdict"] == "match"
    expected = {"boom": "HTTP 500", "slow": "timed out", "garbled": "malformed JSON", "nolp": "no logprobs",
                "noids": "no token_ids", "reject": "HTTP 400"}
    for name, text in expected.items():
        assert v[name]["verdict"] == "error" and text in v[name]["detail"], name
    assert v["quiet"]["verdict"] == "empty" and v["short"]["verdict"] == "too_short"
    assert report["summary"]["passed"] == 1
    asked = [b["messages"][0]["content"] for b in local.requests]
    assert asked.count("boom prompt") == 2  # one retry on 5xx (--retries 1)
    assert asked.count("reject prompt") == 1 and asked.count("slow prompt") == 1  # 4xx and timeouts not retried


def test_resume_asks_only_what_is_missing(capsys, tmp_path, servers):
    gt = servers()
    local = servers(behaviour={"b-": {"status": 500}})
    prompts = prompts_file(tmp_path, {"a": "a- text", "b": "b- text", "c": "c- text"})
    code, _ = run(capsys, tmp_path, gt, local, prompts)
    assert code == 1 and len(gt.requests) == 3
    local.behaviour = None  # the server recovers
    n_gt, n_local = len(gt.requests), len(local.requests)
    code, report = run(capsys, tmp_path, gt, local, prompts)
    assert code == 0 and report["summary"]["passed"] == 3
    assert len(gt.requests) == n_gt  # GT answered everything already
    assert [b["messages"][0]["content"] for b in local.requests[n_local:]] == ["b- text"]
    n_gt = len(gt.requests)
    code, _ = run(capsys, tmp_path, gt, local, prompts, "--max-tokens", "12")
    assert code == 0 and len(gt.requests) == n_gt + 3  # other parameters: asked again


def test_interrupted_run_keeps_finished_prompts(tmp_path, servers):
    local = servers(latency=0.6)
    prompts = prompts_file(tmp_path, {f"p{i}": f"prompt number {i}" for i in range(4)})
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--local-only", "--local-port", str(local.port), "--prompts", prompts,
         "--results-dir", str(results), "--concurrency", "1", "--max-tokens", "8", "--token-match-count", "8",
         "--wait-timeout", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        # a terminal's Ctrl-C: when this test itself runs in a background job, SIGINT is inherited as
        # ignored, and Python then (rightly) installs no KeyboardInterrupt handler in the child
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 20
    while len(local.requests) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    saved = json.loads((results / "local.json").read_text())["results"]
    assert 1 <= len(saved) < 4 and all(r["status"] == "ok" for r in saved.values())
    asked_before = len(local.requests)
    assert asked_before < 4  # nothing more was sent after Ctrl-C
    local.latency = 0.0
    code = e2e_eval.main(["--local-only", "--local-port", str(local.port), "--prompts", prompts,
                          "--results-dir", str(results), "--max-tokens", "8", "--token-match-count", "8"])
    assert code == 0
    assert len(local.requests) - asked_before == 4 - len(saved)


def test_prompts_run_concurrently_and_sides_overlap(capsys, tmp_path, servers):
    gt, local = servers(latency=0.5), servers(latency=0.5)
    prompts = prompts_file(tmp_path, {f"p{i}": f"prompt {i}" for i in range(10)})
    t0 = time.monotonic()
    code, _ = run(capsys, tmp_path, gt, local, prompts, "--concurrency", "10")
    wall = time.monotonic() - t0
    assert code == 0
    sequential = 2 * 10 * 0.5
    assert wall < 0.6 * sequential
    assert gt.max_in_flight >= 5 and local.max_in_flight >= 5
    # GT and local requests were in flight at the same time
    assert min(s for s, _ in local.spans) < max(e for _, e in gt.spans)
    assert min(s for s, _ in gt.spans) < max(e for _, e in local.spans)


def test_waits_for_health_then_runs(capsys, tmp_path, servers):
    gt, local = servers(), servers(startup_delay=1.0)
    prompts = prompts_file(tmp_path, {"a": "hello"})
    code, _ = run(capsys, tmp_path, gt, local, prompts)
    assert code == 0
    assert local.paths.count("/health") >= 2  # it answered 503 at least once before 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_exit_2_with_reason(capsys, tmp_path, servers):
    gt = servers()
    prompts = prompts_file(tmp_path, {"a": "hello"})
    argv = ["--prompts", prompts, "--gt-host", "127.0.0.1", "--gt-port", str(gt.port), "--local-port",
            str(free_port()), "--wait-timeout", "0.6", "--results-dir", str(tmp_path / "r")]
    with pytest.raises(UsageError) as exc:
        e2e_eval.main(argv)
    assert "connection refused" in exc.value.message
    with pytest.raises(UsageError, match="no GT server"):
        e2e_eval.main(["--prompts", prompts, "--gt-only"])


def test_model_picked_among_several_by_name_or_path(capsys, tmp_path, servers):
    gt = servers(served_model_name=["alpha", "beta"])
    local = servers(served_model_name="beta")
    prompts = prompts_file(tmp_path, {"a": "hello"})
    code, _ = run(capsys, tmp_path, gt, local, prompts, "--model", "/data/checkpoints/beta/")
    assert code == 0 and gt.requests[-1]["model"] == "beta"
    with pytest.raises(UsageError, match="several models"):
        run(capsys, tmp_path, gt, local, prompts)
    twins = servers(served_model_name=["org1/demo", "org2/demo"])
    with pytest.raises(UsageError, match="ambiguous"):
        run(capsys, tmp_path, twins, local, prompts, "--model", "/models/demo")


def test_completions_api(capsys, tmp_path, servers):
    gt, local = servers(), servers()
    prompts = prompts_file(tmp_path, {"a": "Once upon a time", "b": "The quick brown fox"})
    code, report = run(capsys, tmp_path, gt, local, prompts, "--api", "completions", "--top-k", "3")
    assert code == 0 and report["summary"]["passed"] == 2
    assert gt.paths.count("/v1/completions") == 2
    body = gt.requests[0]
    assert body["prompt"] in ("Once upon a time", "The quick brown fox") and body["logprobs"] == 3


def test_phases_then_compare_only(capsys, tmp_path, servers):
    gt, local = servers(), servers(behaviour={"two": {"token_ids": with_token(BASE, 2, 7)}})
    prompts = prompts_file(tmp_path, {"one": "one", "two": "two"})
    code, out = run(capsys, tmp_path, gt, local, prompts, "--gt-only")
    assert code == 0 and sorted(out["asked"]) == ["one", "two"] and not local.requests
    code, out = run(capsys, tmp_path, gt, local, prompts, "--local-only")
    assert code == 0 and len(gt.requests) == 2 and len(local.requests) == 2
    gt.shutdown()
    local.shutdown()
    code, report = run(capsys, tmp_path, None, local, prompts, "--compare-only")
    assert code == 1 and verdicts(report)["two"]["verdict"] == "mismatch"
    assert verdicts(report)["one"]["verdict"] == "match" and not report["notes"]
    code, report = run(capsys, tmp_path, None, local, prompts, "--compare-only", "--top-k", "8")
    assert any("only top-5 candidates" in n for n in report["notes"])
    with pytest.raises(UsageError, match="no results to compare"):
        run(capsys, tmp_path, None, local, prompts, "--compare-only", results="empty")


def test_dry_run_sends_and_writes_nothing(capsys, tmp_path, servers):
    gt, local = servers(), servers()
    prompts = prompts_file(tmp_path, {"a": "hello"})
    code, plan = run(capsys, tmp_path, gt, local, prompts, "--dry-run")
    assert code == 0 and plan["phase"] == "both" and [p["id"] for p in plan["prompts"]] == ["a"]
    assert not gt.requests and not local.requests and not (tmp_path / "results").exists()


def test_html_report_escapes_text_and_marks_the_divergence(capsys, tmp_path, servers):
    evil = "<img src=x onerror=alert(1)>"
    gt = servers(behaviour={"tie": {"token_ids": BASE, "top_ids": {9: [109, 999]}}})
    local = servers(behaviour={"tie": {"token_ids": with_token(BASE, 9, 999), "top_ids": {9: [999, 109]}}})
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"prompts": [{"id": evil, "category": "<b>cat</b>", "modality": "text",
                                             "messages": [{"role": "user", "content": "tie"}]}]}))
    code, report = run(capsys, tmp_path, gt, local, str(path), "--token-match-count", "12")
    assert code == 0
    page = Path(report["reports"]["html"]).read_text()
    assert evil not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>cat</b>" not in page and "<script" not in page
    assert page.count('class="t div"') == 2  # GT and local rows, at the divergence
    assert 'title="position 9: token 109' in page and "top-k: 109 " in page
    # token texts come from the server's /detokenize (only for display) and whitespace is made visible
    assert gt.detokenized > 0 and "\u2423" in page
    assert report["prompts"][0]["verdict"] == "close"
    md = Path(report["reports"]["markdown"]).read_text()
    assert "**close**" in md and "| 9 |" in md


def _cli(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def test_exit_codes_of_the_real_script(tmp_path, servers):
    gt = servers()
    local = servers(behaviour={"bad": {"token_ids": with_token(BASE, 0, 1)}})
    good = prompts_file(tmp_path, {"a": "fine"}, "good.json")
    bad = prompts_file(tmp_path, {"a": "fine", "b": "bad one"}, "bad.json")
    common = ["--gt-host", "127.0.0.1", "--gt-port", str(gt.port), "--local-port", str(local.port),
              "--max-tokens", "16", "--token-match-count", "8"]
    ok = _cli(*common, "--prompts", good, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "1/1 passed" in ok.stdout and "report.html" in ok.stdout
    mismatch = _cli(*common, "--prompts", bad, "--results-dir", "r2", cwd=tmp_path)
    assert mismatch.returncode == 1 and "mismatch" in mismatch.stdout
    (tmp_path / "e2e_config.json").write_text(json.dumps({"eval": {"max_tokns": 5}}))
    typo = _cli("--prompts", good, cwd=tmp_path)
    assert typo.returncode == 2 and "max_tokns" in typo.stderr and "Traceback" not in typo.stderr
    down = _cli("--config", str(tmp_path / "missing.json"), cwd=tmp_path)
    assert down.returncode == 2 and "config file not found" in down.stderr
    helptext = _cli("--help", cwd=tmp_path)
    assert helptext.returncode == 0 and "exit codes" in helptext.stdout


def test_config_file_values_reach_the_requests(capsys, tmp_path, servers):
    gt, local = servers(), servers()
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({
        "model": "demo", "gt_machine": {"host": "127.0.0.1", "serve_port": gt.port, "user": "root"},
        "local": {"host": "127.0.0.1", "port": local.port},
        "eval": {"max_tokens": 10, "token_match_count": 6, "top_k": 2, "seed": 7,
                 "results_dir": str(tmp_path / "cfg_results")}}))
    prompts = prompts_file(tmp_path, {"a": "hello"})
    code = e2e_eval.main(["--config", str(config), "--prompts", prompts, "--max-tokens", "9"])
    assert code == 0
    body = gt.requests[0]
    assert body["max_tokens"] == 9 and body["top_logprobs"] == 2 and body["seed"] == 7  # CLI > config
    assert (tmp_path / "cfg_results" / "report.json").is_file()


def test_token_texts_are_cached_for_compare_only(capsys, tmp_path, servers):
    gt = servers(behaviour={"tie": {"token_ids": BASE, "top_ids": {9: [109, 999]}}})
    local = servers(behaviour={"tie": {"token_ids": with_token(BASE, 9, 999), "top_ids": {9: [999, 109]}}})
    prompts = prompts_file(tmp_path, {"t": "tie"})
    code, _ = run(capsys, tmp_path, gt, local, prompts, "--token-match-count", "12")
    decoded = gt.detokenized
    assert code == 0 and 0 < decoded <= 16 + 2  # up to a little past position 9, plus the top-k there
    code, _ = run(capsys, tmp_path, gt, local, prompts, "--token-match-count", "12")
    assert gt.detokenized == decoded  # cached in results/token_text.json
    gt.shutdown()
    local.shutdown()
    code, report = run(capsys, tmp_path, None, local, prompts, "--compare-only", "--token-match-count", "12")
    assert code == 0 and "\u2423" in Path(report["reports"]["html"]).read_text()


def test_detokenize_failure_costs_one_probe(tmp_path, servers):
    from flagos_migrate.e2e.client import decode_tokens
    from flagos_migrate.e2e.config import Settings

    gt = servers()
    notes = []
    texts = decode_tokens(gt.url, "not-served", {1, 2, 3, 4}, Settings(results_dir=str(tmp_path)), notes.append)
    assert texts == {} and gt.detokenized == 1 and "token ids only" in notes[0]
    texts = decode_tokens(gt.url, "demo", {1, 2}, Settings(results_dir=str(tmp_path)), notes.append)
    assert set(texts) == {"1", "2"} and all(texts.values())
