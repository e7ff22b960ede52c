"""e2e_remote_serve.sh against a real OpenSSH server on loopback, with throwaway keys."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.remote.config import load_config, validate_gt_machine, validate_model_name
from flagos_migrate.remote.gt import start_call

from tests.proc_helpers import alive, free_port
from tests.sshd_fixture import keygen, sshd_unavailable, start_sshd

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "e2e_remote_serve.sh"
FAKE_BIN = ROOT / "tests" / "fakes" / "bin"

SKIP_REASON = sshd_unavailable()
needs_sshd = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")




@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def make_config(tmp_path, sshd):
    """Write a config for the test sshd; overrides are merged into gt_machine."""
    known = tmp_path / "known_hosts"
    known.write_text(sshd.host_key_line())
    record = tmp_path / "record.jsonl"

    def make(top=None, **overrides):
        machine = {
            "host": "127.0.0.1", "user": sshd.user, "port": sshd.port, "key_file": str(sshd.user_key),
            "known_hosts": str(known), "host_key_policy": "reject", "docker_container": "", "conda_env": "",
            "workdir": str(tmp_path / "gt"), "models_dir": "/models", "serve_port": free_port(),
            "serve_host": "127.0.0.1", "tensor_parallel_size": 1, "gpus": "0",
            "env_vars": {"PATH": f"{FAKE_BIN}:{os.path.dirname(sys.executable)}:/usr/bin:/bin",
                         "VLLM_STUB_RECORD": str(record), "VLLM_USE_DEEP_GEMM": "0"},
            "extra_args": [],
        }
        machine.update(overrides)
        config = {"model": "m1", "gt_machine": machine, "local": {}, "eval": {}}
        config.update(top or {})
        path = tmp_path / f"config{len(list(tmp_path.glob('config*.json')))}.json"
        path.write_text(json.dumps(config))
        return path

    make.known_hosts = known
    make.record = record
    return make


def run(*args, timeout=60):
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------- validation (no network)

BASE = {"host": "gt-node-01", "user": "root", "port": 22, "key_file": "~/.ssh/id_ed25519",
        "known_hosts": "~/.ssh/known_hosts", "host_key_policy": "reject", "docker_container": "",
        "conda_env": "", "workdir": "/tmp/model-migrate-flagos-gt", "models_dir": "/models", "serve_port": 8000,
        "tensor_parallel_size": 1, "gpus": "0", "env_vars": {"VLLM_USE_DEEP_GEMM": "0"}, "extra_args": []}


def test_template_shape_validates_with_defaults():
    machine = validate_gt_machine(BASE)
    assert machine.host == "gt-node-01" and machine.host_key_policy == "reject"
    assert machine.vllm_command == "vllm" and machine.health_check == "auto"


def test_the_shared_config_template_validates():
    template = ROOT / "scripts" / "e2e_config.template.json"
    if not template.exists():
        pytest.skip("scripts/e2e_config.template.json is not written yet")
    machine, model = load_config(template)
    assert model == json.loads(template.read_text())["model"]
    assert machine.host_key_policy == "reject"


@pytest.mark.parametrize("field, value", [
    ("host", "gt; touch /x"), ("host", "-oProxyCommand=sh"), ("user", "root$(id)"), ("port", 70000),
    ("port", "22"), ("port", True), ("host_key_policy", "accept-all"), ("docker_container", "c; rm -rf /"),
    ("conda_env", "env`id`"), ("workdir", "relative/dir"), ("workdir", "/tmp/a b"), ("workdir", "/tmp/../etc"),
    ("models_dir", "/models;id"), ("serve_port", 0), ("serve_host", "localhost; id"),
    ("tensor_parallel_size", "1"), ("gpus", "0;1"), ("gpus", "0,,1"), ("env_vars", {"A-B": "1"}),
    ("env_vars", {"A": 1}), ("env_vars", []), ("extra_args", "--x"), ("extra_args", ["ok", 3]),
    ("vllm_command", "vllm serve"), ("health_check", "sometimes"), ("connect_timeout", -1), ("surprise", 1),
])
def test_invalid_fields_are_refused(field, value):
    with pytest.raises(UsageError) as caught:
        validate_gt_machine(dict(BASE, **{field: value}))
    assert field in caught.value.message


@pytest.mark.parametrize("name", ["m1; id", "$(id)", "../etc", "a/b/c", "-x", ""])
def test_unsafe_model_names_are_refused(name):
    with pytest.raises(UsageError):
        validate_model_name(name)


def test_free_text_values_are_quoted_not_pasted():
    machine = validate_gt_machine(dict(BASE, env_vars={"X": "$(id)"}, extra_args=["; id", "`id`"]))
    call = start_call(machine, "org/model-1")
    words = shlex.split(call.command)  # the command line is plain quoted words ...
    assert words[:3] == ["bash", "-s", "--"]
    assert "X=$(id)" in words and words[-2:] == ["; id", "`id`"]
    assert "$(id)" not in call.program  # ... and the program on stdin is a constant
    assert call.program == start_call(validate_gt_machine(BASE), "m").program


# ---------------------------------------------------------------- against a real sshd

INJECTIONS = [
    ({}, {"host": "127.0.0.1; touch {m}"}),
    ({}, {"user": "root; touch {m}"}),
    ({}, {"port": "22; touch {m}"}),
    ({}, {"key_file": "; touch {m}"}),
    ({}, {"known_hosts": "$(touch {m})"}),
    ({}, {"host_key_policy": "reject; touch {m}"}),
    ({}, {"docker_container": "c; touch {m}"}),
    ({}, {"conda_env": "e$(touch {m})"}),
    ({}, {"workdir": "/tmp/x; touch {m}"}),
    ({}, {"models_dir": "/models`touch {m}`"}),
    ({}, {"serve_port": "8000; touch {m}"}),
    ({}, {"serve_host": "0.0.0.0; touch {m}"}),
    ({}, {"tensor_parallel_size": "1; touch {m}"}),
    ({}, {"gpus": "0; touch {m}"}),
    ({}, {"env_vars": {"A;touch {m}": "1"}}),
    ({}, {"extra_args": "; touch {m}"}),
    ({}, {"vllm_command": "vllm; touch {m}"}),
    ({}, {"health_check": "auto; touch {m}"}),
    ({"model": "m1; touch {m}"}, {}),
]


@needs_sshd
@pytest.mark.parametrize("top, machine", INJECTIONS, ids=[next(iter({**t, **m})) for t, m in INJECTIONS])
def test_injection_in_a_config_field_runs_nothing(make_config, tmp_path, top, machine):
    marker = tmp_path / "pwned"

    def fill(value):
        if isinstance(value, str):
            return value.replace("{m}", str(marker))
        if isinstance(value, dict):
            return {fill(k): fill(v) for k, v in value.items()}
        return value

    config = make_config({k: fill(v) for k, v in top.items()}, **{k: fill(v) for k, v in machine.items()})
    result = run("start", config, "--poll", "0.1", "--timeout", "5")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ")
    assert not marker.exists()
    assert not records(make_config.record)


@needs_sshd
def test_injection_in_model_argument_runs_nothing(make_config, tmp_path):
    marker = tmp_path / "pwned"
    result = run("start", make_config(), f"m1$(touch {marker})")
    assert result.returncode == 2 and "not a safe folder name" in result.stderr
    assert not marker.exists()


@needs_sshd
def test_start_status_logs_stop_lifecycle(make_config, tmp_path):
    marker = tmp_path / "pwned"
    env_vars = {"PATH": f"{FAKE_BIN}:{os.path.dirname(sys.executable)}:/usr/bin:/bin",
                "VLLM_STUB_RECORD": str(make_config.record), "VLLM_STUB_STARTUP_DELAY": "0.5",
                "VLLM_STUB_RECORD_ENV": "TRICKY", "TRICKY": f"$(touch {marker}); `touch {marker}`"}
    extra = [f"; touch {marker}", f"$(touch {marker})", "--enforce-eager"]
    config = make_config(env_vars=env_vars, extra_args=extra, gpus="2,3", tensor_parallel_size=2)

    started = run("start", config, "--poll", "0.1", "--timeout", "20")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "GT server ready" in started.stdout
    [rec] = records(make_config.record)
    assert rec["argv"][:2] == ["serve", "/models/m1"]
    assert rec["argv"][-3:] == extra  # passed literally, one argument each
    assert rec["argv"][rec["argv"].index("--tensor-parallel-size") + 1] == "2"
    assert rec["env"]["TRICKY"] == env_vars["TRICKY"]
    assert rec["env"]["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert not marker.exists()

    status = run("status", config, "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["state"] == "running" and info["health"] == 200 and info["pid"] == rec["pid"]

    # the same check through a direct-tcpip channel of the SSH connection
    tunnel = make_config(env_vars=env_vars, extra_args=extra, health_check="ssh",
                         serve_port=json.loads(config.read_text())["gt_machine"]["serve_port"])
    via_ssh = json.loads(run("status", tunnel, "--json").stdout)
    assert via_ssh["health"] == 200 and via_ssh["health_via"] == "ssh"

    again = run("start", config, "--poll", "0.1")
    assert again.returncode == 1 and "already running" in again.stderr

    logs = run("logs", config, "--lines", "5")
    assert logs.returncode == 0 and "stub vllm serving /models/m1" in logs.stdout

    stopped = run("stop", config)
    assert stopped.returncode == 0 and "stopped the GT server" in stopped.stdout
    assert not alive(rec["pid"])
    after = run("status", config)
    assert after.returncode == 1 and "not running" in after.stdout


@needs_sshd
def test_remote_death_reports_the_log_tail(make_config):
    config = make_config(env_vars={"PATH": f"{FAKE_BIN}:{os.path.dirname(sys.executable)}:/usr/bin:/bin",
                                   "VLLM_STUB_FAIL": "1"})
    result = run("start", config, "--poll", "0.1", "--timeout", "20")
    assert result.returncode == 1
    assert "exited before /health" in result.stderr and "stub vllm failure" in result.stderr


@needs_sshd
def test_stop_ignores_a_reused_pid_and_spares_other_processes(make_config, tmp_path):
    config = make_config()
    machine = json.loads(config.read_text())["gt_machine"]
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        workdir = Path(machine["workdir"])
        workdir.mkdir(parents=True)
        pidfile = workdir / f"vllm-{machine['serve_port']}.pid"
        pidfile.write_text(f"{bystander.pid} 1\n")  # the PID exists but is not the process we started
        result = run("stop", config)
        assert result.returncode == 0 and "stale" in result.stdout
        time.sleep(0.2)
        assert bystander.poll() is None
        assert not pidfile.exists()
    finally:
        bystander.kill()
        bystander.wait()


@needs_sshd
def test_unknown_host_key_is_refused(make_config):
    make_config.known_hosts.write_text("")
    result = run("status", make_config())
    assert result.returncode == 2
    assert "not in" in result.stderr and "host_key_policy" in result.stderr
    assert make_config.known_hosts.read_text() == ""


@needs_sshd
def test_accept_new_records_an_unknown_key_but_refuses_a_changed_one(make_config, sshd, tmp_path):
    make_config.known_hosts.write_text("")
    config = make_config(host_key_policy="accept-new")
    first = run("status", config)
    assert first.returncode == 1, first.stderr  # connected; nothing runs there
    assert make_config.known_hosts.read_text() == sshd.host_key_line()

    other = keygen(tmp_path / "other_host_key")
    kind, blob = Path(f"{other}.pub").read_text().split()[:2]
    changed = f"[127.0.0.1]:{sshd.port} {kind} {blob}\n"
    make_config.known_hosts.write_text(changed)
    result = run("status", config)
    assert result.returncode == 2 and "CHANGED" in result.stderr
    assert make_config.known_hosts.read_text() == changed


@needs_sshd
def test_connection_and_authentication_failures_exit_2(make_config, tmp_path):
    refused = run("status", make_config(port=free_port()))
    assert refused.returncode == 2 and "cannot connect" in refused.stderr
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        mute = run("status", make_config(port=silent.getsockname()[1], connect_timeout=1))
    assert mute.returncode == 2 and "timed out" in mute.stderr
    stranger = keygen(tmp_path / "stranger")
    denied = run("status", make_config(key_file=str(stranger)))
    assert denied.returncode == 2 and "authentication failed" in denied.stderr


def test_dry_run_prints_the_quoted_command_without_connecting(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": "m1", "gt_machine": dict(BASE, docker_container="gt-vllm",
                                                                     conda_env="vllm-up")}))
    result = run("start", config, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["target"] == "root@gt-node-01:22"
    assert shlex.split(out["command"])[:7] == ["docker", "exec", "-i", "gt-vllm", "bash", "-s", "--"]
    assert "vllm-up" in out["command"] and "/models/m1" in out["command"]
    assert "setsid" in out["stdin_program"]


FAKE_CONDA = """#!/bin/sh
# stand-in conda: its hook defines a conda() that only knows the env "vllm-up"
if [ "$1 $2" = "shell.bash hook" ]; then
  echo 'conda() { [ "$1" = activate ] && [ "$2" = vllm-up ] && export CONDA_DEFAULT_ENV="$2"; }'
else
  exit 1
fi
"""


@needs_sshd
def test_conda_env_is_activated_before_vllm_starts(make_config, tmp_path):
    conda_dir = tmp_path / "condabin"
    conda_dir.mkdir()
    (conda_dir / "conda").write_text(FAKE_CONDA)
    (conda_dir / "conda").chmod(0o755)
    env_vars = {"PATH": f"{conda_dir}:{FAKE_BIN}:{os.path.dirname(sys.executable)}:/usr/bin:/bin",
                "VLLM_STUB_RECORD": str(make_config.record), "VLLM_STUB_RECORD_ENV": "CONDA_DEFAULT_ENV"}
    missing = run("start", make_config(env_vars=env_vars, conda_env="no-such-env"), "--no-wait")
    assert missing.returncode == 1 and "conda env problem" in missing.stderr
    assert not records(make_config.record)

    config = make_config(env_vars=env_vars, conda_env="vllm-up")
    started = run("start", config, "--poll", "0.1", "--timeout", "20")
    try:
        assert started.returncode == 0, started.stderr
        [rec] = records(make_config.record)
        assert rec["env"]["CONDA_DEFAULT_ENV"] == "vllm-up"
    finally:
        assert run("stop", config).returncode == 0
