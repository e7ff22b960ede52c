"""serve.sh, benchmark.sh and request.sh against the stand-in vllm (tests/fakes/bin/vllm)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.fakes.vllm_openai_server import start_server
from tests.proc_helpers import alive, free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
FAKE_BIN = ROOT / "tests" / "fakes" / "bin"
SHELL_SCRIPTS = ["serve.sh", "benchmark.sh", "request.sh", "e2e_remote_serve.sh", "lib/common.sh"]






@pytest.fixture
def env(tmp_path):
    models = tmp_path / "models"
    (models / "m1").mkdir(parents=True)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("FLAGOS_", "VLLM_", "CUDA_VISIBLE_DEVICES"))}
    clean.update({
        "PATH": f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "FLAGOS_STATE_DIR": str(tmp_path / "state"),
        "FLAGOS_MODELS_DIR": str(models),
        "VLLM_STUB_RECORD": str(tmp_path / "record.jsonl"),
        "FLAGOS_HEALTH_POLL": "0.1",
        "FLAGOS_STOP_TIMEOUT": "5",
    })
    return clean


@pytest.fixture
def run(env, tmp_path):
    """Run a script; stop every server started on a port the test used."""
    ports: set[str] = set()

    def runner(script, *args, extra_env=None, timeout=30):
        ports.update(str(a) for a in args if str(a).isdigit())
        merged = dict(env, **(extra_env or {}))
        return subprocess.run([str(SCRIPTS / script), *map(str, args)], env=merged, cwd=tmp_path,
                              capture_output=True, text=True, timeout=timeout)

    yield runner
    for port in ports:
        subprocess.run([str(SCRIPTS / "serve.sh"), "stop", port], env=env, capture_output=True, timeout=30)


def records(env) -> list[dict]:
    path = Path(env["VLLM_STUB_RECORD"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start_unrelated() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


# ---------------------------------------------------------------- help and dry runs

@pytest.mark.parametrize("script", ["serve.sh", "benchmark.sh", "request.sh", "e2e_remote_serve.sh"])
def test_help_documents_usage_and_exit_codes(run, script):
    result = run(script, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout and "exit codes" in result.stdout


def test_serve_and_request_share_the_default_port(run):
    for script in ("serve.sh", "request.sh"):
        assert "8122" in run(script, "--help").stdout


def test_serve_dry_run_prints_every_flag_and_the_default_env(run, env):
    result = run("serve.sh", "m1", 18999, "--dry-run", "--tp", "2", "--gpus", "0,1", "--max-num-seqs", "8",
                 "--gpu-memory-utilization=0.5", "--load-format", "dummy", "--", "--enforce-eager")
    assert result.returncode == 0, result.stderr
    words = shlex.split(result.stdout)
    assert "VLLM_FL_PREFER_ENABLED=false" in words and "VLLM_USE_DEEP_GEMM=0" in words
    assert "CUDA_VISIBLE_DEVICES=0,1" in words
    cmd = words[words.index("vllm"):]
    assert cmd[:3] == ["vllm", "serve", f"{env['FLAGOS_MODELS_DIR']}/m1"]
    pairs = dict(zip(cmd[3::2], cmd[4::2]))
    assert pairs["--port"] == "18999" and pairs["--tensor-parallel-size"] == "2"
    assert pairs["--max-num-seqs"] == "8" and pairs["--gpu-memory-utilization"] == "0.5"
    assert pairs["--load-format"] == "dummy" and cmd[-1] == "--enforce-eager"
    assert "--reasoning-parser" not in cmd
    assert not records(env), "a dry run must not run vllm"


def test_env_already_set_wins_and_reasoning_parser_only_when_asked(run):
    result = run("serve.sh", "m1", "--dry-run", "--reasoning-parser", "qwen3",
                 extra_env={"VLLM_FL_PREFER_ENABLED": "true", "FLAGOS_PORT": "18123"})
    words = shlex.split(result.stdout)
    assert "VLLM_FL_PREFER_ENABLED=true" in words
    assert words[words.index("--reasoning-parser") + 1] == "qwen3"
    assert words[words.index("--port") + 1] == "18123"


@pytest.mark.parametrize("args, message", [
    (["m1", "--tp", "two"], "--tp must be"),
    (["m1", "70000"], "port must be"),
    (["m1", "--gpus", "0;1"], "GPU list"),
    (["missing_model"], "does not exist"),
    (["m1", "--bogus"], "unknown option"),
])
def test_serve_bad_input_is_one_clear_error(run, env, args, message):
    result = run("serve.sh", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert not records(env)


# ---------------------------------------------------------------- serve lifecycle

def test_start_waits_through_503_then_status_logs_stop(run, env):
    port = free_port()
    began = time.monotonic()
    result = run("serve.sh", "m1", port, "--tp", "1", "--served-model-name", "demo-model",
                 extra_env={"VLLM_STUB_STARTUP_DELAY": "1", "FLAGOS_GPUS": "3"})
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began >= 1.0, "returned before the startup delay (503) had passed"
    assert "server ready" in result.stdout
    [rec] = records(env)
    assert rec["argv"][:2] == ["serve", f"{env['FLAGOS_MODELS_DIR']}/m1"]
    assert rec["argv"][rec["argv"].index("--served-model-name") + 1] == "demo-model"
    assert rec["env"] == {"VLLM_FL_PREFER_ENABLED": "false", "VLLM_USE_DEEP_GEMM": "0", "CUDA_VISIBLE_DEVICES": "3"}

    status = run("serve.sh", "status", port, "--json")
    assert status.returncode == 0
    info = json.loads(status.stdout)
    assert info["state"] == "healthy" and info["health"] == 200 and info["pid"] == rec["pid"]
    # the server leads its own process group
    assert os.getpgid(info["pid"]) == info["pid"]

    again = run("serve.sh", "m1", port)
    assert again.returncode == 2 and "already runs" in again.stderr

    logs = run("serve.sh", "logs", port)
    assert logs.returncode == 0 and "stub vllm serving" in logs.stdout

    stop = run("serve.sh", "stop", port)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    deadline = time.monotonic() + 5
    while alive(info["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(info["pid"])
    after = run("serve.sh", "status", port)
    assert after.returncode == 1 and "not running" in after.stdout


def test_process_death_fails_with_the_log_tail(run, env):
    port = free_port()
    result = run("serve.sh", "m1", port, extra_env={"VLLM_STUB_FAIL": "1", "VLLM_STUB_FAIL_DELAY": "0.3"})
    assert result.returncode == 1
    assert "exited" in result.stderr
    assert "RuntimeError: stub vllm failure" in result.stderr
    assert run("serve.sh", "status", port).returncode == 1


def test_health_timeout_fails_and_stops_the_server(run, env):
    port = free_port()
    # 4 s: enough for the stand-in to be listening (and answering 503) even on a loaded machine
    result = run("serve.sh", "m1", port, "--timeout", "4", extra_env={"VLLM_STUB_STARTUP_DELAY": "60"})
    assert result.returncode == 1
    assert "did not answer 200" in result.stderr and "last answer: 503" in result.stderr
    [rec] = records(env)
    assert not alive(rec["pid"])


def test_interrupting_the_health_wait_stops_the_started_server(env, tmp_path):
    port = free_port()
    proc = subprocess.Popen([str(SCRIPTS / "serve.sh"), "m1", str(port)], cwd=tmp_path, text=True,
                            env=dict(env, VLLM_STUB_STARTUP_DELAY="60"), stderr=subprocess.PIPE)
    pid_file = tmp_path / "state" / f"serve-{port}" / "pid"
    deadline = time.monotonic() + 10
    while not records(env) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    [rec] = records(env)
    assert not alive(rec["pid"]) and not pid_file.exists()


def test_foreground_server_is_recorded_and_stoppable(run, env, tmp_path):
    port = free_port()
    proc = subprocess.Popen([str(SCRIPTS / "serve.sh"), "m1", str(port), "--foreground"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while run("serve.sh", "status", port).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        info = json.loads(run("serve.sh", "status", port, "--json").stdout)
        assert info["state"] == "healthy" and info["pid"] == proc.pid  # exec kept the PID
        assert run("serve.sh", "stop", port).returncode == 0
        assert proc.wait(timeout=10) is not None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_in_use_is_refused(run, env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve.sh", "m1", port)
    assert result.returncode == 2
    assert f"port {port} is already in use" in result.stderr
    assert not records(env)


def test_stop_leaves_an_unrelated_process_alive(run, env):
    port = free_port()
    bystander = start_unrelated()
    try:
        assert run("serve.sh", "m1", port).returncode == 0
        [rec] = records(env)
        assert run("serve.sh", "stop", port).returncode == 0
        time.sleep(0.2)
        assert bystander.poll() is None, "stop killed a process it did not start"
        assert not alive(rec["pid"])
    finally:
        bystander.kill()
        bystander.wait()


def test_stale_pid_record_for_another_process_is_not_signalled(run, env, tmp_path):
    port = free_port()
    other = start_unrelated()
    try:
        state = tmp_path / "state" / f"serve-{port}"
        state.mkdir(parents=True)
        (state / "pid").write_text(f"{other.pid} 12345\n")  # right PID, wrong start time: reused PID
        result = run("serve.sh", "stop", port)
        assert result.returncode == 0 and "stale" in result.stdout
        time.sleep(0.2)
        assert other.poll() is None
        assert not (state / "pid").exists()
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()


# ---------------------------------------------------------------- benchmark

def test_benchmark_summary_and_compare(run, env, tmp_path):
    first = run("benchmark.sh", "m1", "--num-prompts", "10", "--input-len", "100", "--output-len", "50",
                "--output-json", "plugin.json", extra_env={"VLLM_STUB_BENCH_ELAPSED": "2"})
    assert first.returncode == 0, first.stderr
    [rec] = records(env)
    argv = rec["argv"]
    assert argv[:2] == ["bench", "throughput"]
    assert argv[argv.index("--load-format") + 1] == "dummy"
    assert argv[argv.index("--output-json") + 1] == "plugin.json"
    result = json.loads((tmp_path / "plugin.json").read_text())
    # 10 requests of 150 tokens in 2 s
    assert first.stdout.strip().splitlines()[-1].startswith(
        "throughput: 5.00 requests/s, 750.00 total tokens/s, 250.00 output tokens/s")
    assert result["requests_per_second"] == 5.0

    second = run("benchmark.sh", "m1", "--num-prompts", "10", "--input-len", "100", "--output-len", "50",
                 "--output-json", "upstream.json", extra_env={"VLLM_STUB_BENCH_ELAPSED": "4"})
    assert second.returncode == 0
    compare = run("benchmark.sh", "--summarize", "plugin.json", "--compare", "upstream.json", "--json")
    assert compare.returncode == 0, compare.stderr
    ratios = json.loads(compare.stdout)["compare"]["ratios"]
    assert ratios == {"requests_per_second": 2.0, "tokens_per_second": 2.0, "output_tokens_per_second": 2.0}
    text = run("benchmark.sh", "--summarize", "upstream.json", "--compare", "plugin.json")
    assert "ratio this/other: requests/s 0.500x, total tokens/s 0.500x, output tokens/s 0.500x" in text.stdout


def test_benchmark_failure_exits_nonzero(run, env):
    result = run("benchmark.sh", "m1", extra_env={"VLLM_STUB_FAIL": "1"})
    assert result.returncode == 1
    assert "stub vllm failure" in result.stderr and "bench throughput failed" in result.stderr


# ---------------------------------------------------------------- request

def test_request_happy_path_uses_the_served_name(run):
    server = start_server("127.0.0.1", 0, served_model_name="served-x")
    try:
        result = run("request.sh", "served-x", server.port, "--max-tokens", "7", "--prompt", 'say "hi"')
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    [body] = server.requests
    assert body["model"] == "served-x" and body["max_tokens"] == 7
    assert body["messages"] == [{"role": "user", "content": 'say "hi"'}]
    assert "tokens: prompt=" in result.stdout and "completion=7" in result.stdout


def test_request_non_200_exits_nonzero_with_the_server_message(run):
    server = start_server("127.0.0.1", 0, served_model_name="m", behaviour={"BREAK": {"status": 400}})
    try:
        result = run("request.sh", server.port, "--prompt", "please BREAK")
    finally:
        server.shutdown()
    assert result.returncode == 1
    assert "HTTP 400" in result.stderr and "injected failure 400" in result.stderr


def test_a_missing_tool_is_named(env, tmp_path):
    bare = tmp_path / "bare-bin"  # bash and dirname only: no curl, no python3
    bare.mkdir()
    for tool in ("bash", "dirname"):
        (bare / tool).symlink_to(shutil.which(tool))
    result = subprocess.run([str(bare / "bash"), str(SCRIPTS / "request.sh"), "m1"], capture_output=True, text=True,
                            env=dict(env, PATH=str(bare)), timeout=30)
    assert result.returncode == 2
    assert "error: 'curl' is required but was not found on PATH" in result.stderr


def test_request_without_server_is_a_clear_error(run):
    result = run("request.sh", "m1", free_port())
    assert result.returncode == 2 and "no server answers" in result.stderr


# ---------------------------------------------------------------- lint

@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shell_scripts_are_shellcheck_clean():
    result = subprocess.run(["shellcheck", "-x", *SHELL_SCRIPTS], cwd=SCRIPTS, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_request_to_a_server_that_closes_the_connection_says_so(run):
    """A server that hangs up on the completion is not 'no answer within 300 s' (issue 15, item 7)."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def hang_up():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            request = conn.recv(65536)
            if request.startswith(b"GET /v1/models"):  # the model list answers; the completion hangs up
                body = json.dumps({"object": "list", "data": [{"id": "m1", "object": "model", "root": "/models/m1"}]})
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                             f"Connection: close\r\n\r\n{body}".encode())
            conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        result = run("request.sh", "m1", port, "--timeout", "20")
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert result.returncode != 0
    assert "closed the connection" in result.stderr, result.stderr
    assert "within" not in result.stderr
