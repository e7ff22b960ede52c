"""Issue 15, item 2: serve.sh stop and the remote stop signal only the process their start recorded.

A record naming PID 1 (with its real start time) is tried in a throwaway PID namespace, where
PID 1 is the test's own shell and `kill -- -1` could only hit the namespace's processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from flagos_migrate.remote.gt import STOP_PROGRAM

ROOT = Path(__file__).resolve().parent.parent
SERVE = ROOT / "scripts" / "serve.sh"
PORT = "18999"

# bash helpers for the scenarios: start time of a PID, and the command-line record of a PID
HELPERS = r'''
starttime() { s=$(cat /proc/$1/stat); s=${s##*) }; set -- $s; printf '%s' "${20}"; }
cmdline_of() { python3 -c "import sys; d = open('/proc/%s/cmdline' % sys.argv[1], 'rb').read(); \
sys.stdout.buffer.write(d[d.index(b'\0'):])" "$1"; }
'''


def _namespace_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc",
                            "sh", "-c", "echo $$"], capture_output=True, text=True, timeout=30)
    return probe.returncode == 0 and probe.stdout.strip() == "1"


needs_pidns = pytest.mark.skipif(not _namespace_works(), reason="no unprivileged PID namespace (unshare) here")


def in_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc",
                           "bash", "-c", HELPERS + script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "T": str(tmp_path), "SERVE": str(SERVE), "PORT": PORT})


@needs_pidns
def test_serve_stop_refuses_a_record_of_pid_1(tmp_path):
    proc = in_namespace(r'''
        d=$T/state/serve-$PORT; mkdir -p "$d"
        printf '1 %s\n' "$(starttime 1)" > "$d/pid"       # PID 1 is this shell, start time real
        cmdline_of 1 > "$d/cmdline"                        # and even its command line
        sleep 60 & bystander=$!
        "$SERVE" stop "$PORT" --state-dir "$T/state"; echo "rc=$?"
        kill -0 "$bystander" 2>/dev/null && echo bystander-alive
        kill "$bystander"
    ''', tmp_path)
    assert "rc=0" in proc.stdout and "bystander-alive" in proc.stdout, proc.stdout + proc.stderr
    assert "signalled nothing" in proc.stdout


@needs_pidns
def test_remote_stop_program_refuses_a_record_of_pid_1(tmp_path):
    (tmp_path / "stop.sh").write_text(STOP_PROGRAM)
    proc = in_namespace(r'''
        printf '1 %s\n' "$(starttime 1)" > "$T/vllm-$PORT.pid"
        cmdline_of 1 > "$T/vllm-$PORT.cmdline"
        sleep 60 & bystander=$!
        bash -s -- "$T" "$PORT" 1 < "$T/stop.sh"; echo "rc=$?"
        kill -0 "$bystander" 2>/dev/null && echo bystander-alive
        kill "$bystander"
    ''', tmp_path)
    assert "result=stale" in proc.stdout and "bystander-alive" in proc.stdout, proc.stdout + proc.stderr


def _own_group_script(stop: str) -> str:
    # a new session: this shell leads its process group, and the record names it
    return HELPERS + r'''
        printf '%s %s\n' "$$" "$(starttime $$)" > "$PIDFILE"
        cmdline_of $$ > "$CMDFILE"
        ''' + stop + r'''
        echo "rc=$? survived"
    '''


def test_serve_stop_refuses_its_own_process_group(tmp_path):
    d = tmp_path / "state" / f"serve-{PORT}"
    d.mkdir(parents=True)
    env = {**os.environ, "PIDFILE": str(d / "pid"), "CMDFILE": str(d / "cmdline")}
    proc = subprocess.run(["setsid", "bash", "-c", _own_group_script(
        f'"{SERVE}" stop {PORT} --state-dir "{tmp_path / "state"}"'), "own-group-test"],
        capture_output=True, text=True, timeout=60, env=env)
    assert "rc=0 survived" in proc.stdout, (proc.returncode, proc.stdout, proc.stderr)
    assert "its own process group" in proc.stdout


def test_remote_stop_refuses_its_own_process_group(tmp_path):
    (tmp_path / "stop.sh").write_text(STOP_PROGRAM)
    env = {**os.environ, "PIDFILE": str(tmp_path / f"vllm-{PORT}.pid"),
           "CMDFILE": str(tmp_path / f"vllm-{PORT}.cmdline")}
    proc = subprocess.run(["setsid", "bash", "-c", _own_group_script(
        f'bash -s -- "{tmp_path}" {PORT} 1 < "{tmp_path / "stop.sh"}"'), "own-group-test"],
        capture_output=True, text=True, timeout=60, env=env)
    assert "survived" in proc.stdout and "result=stale" in proc.stdout, (proc.stdout, proc.stderr)


@pytest.mark.parametrize("remote", [False, True])
def test_stop_refuses_a_process_whose_command_differs(tmp_path, remote):
    """Right PID, right start time, but not the command that start ran: left alone."""
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        stat = Path(f"/proc/{bystander.pid}/stat").read_text()
        start = stat.rsplit(")", 1)[1].split()[19]
        if remote:
            pidfile, cmdfile = tmp_path / f"vllm-{PORT}.pid", tmp_path / f"vllm-{PORT}.cmdline"
        else:
            (tmp_path / "state" / f"serve-{PORT}").mkdir(parents=True)
            pidfile, cmdfile = (tmp_path / "state" / f"serve-{PORT}" / n for n in ("pid", "cmdline"))
        pidfile.write_text(f"{bystander.pid} {start}\n")
        cmdfile.write_bytes(b"\0serve\0/models/m\0--port\0" + PORT.encode() + b"\0")
        if remote:
            proc = subprocess.run(["bash", "-s", "--", str(tmp_path), PORT, "1"], input=STOP_PROGRAM,
                                  capture_output=True, text=True, timeout=60)
            assert "result=stale" in proc.stdout, proc.stdout + proc.stderr
        else:
            proc = subprocess.run([str(SERVE), "stop", PORT, "--state-dir", str(tmp_path / "state")],
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0 and "runs another command" in proc.stdout, proc.stdout + proc.stderr
        time.sleep(0.2)
        assert bystander.poll() is None, "stop signalled a process it did not start"
    finally:
        bystander.kill()
        bystander.wait()
