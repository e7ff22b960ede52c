"""Lifecycle of the upstream-vLLM ground-truth (GT) server on a remote machine, over SSH.

Design:
- The remote shell programs below are constants, fed to ``bash -s`` on stdin. Config values
  never become shell code: they are validated (remote_config) and handed to
  ``bash -s -- ARG...`` as positional arguments, each one quoted with shlex.quote.
- Host keys are verified against a known_hosts file. ``reject`` refuses unknown hosts;
  ``accept-new`` records the key of a host that has no entry yet; a changed key is always refused.
- ``start`` records ``PID STARTTIME`` of the server in the workdir; ``stop`` signals that
  process group only if the PID still has that start time (i.e. it is still our process).
"""

from __future__ import annotations

import http.client
import logging
import os
import shlex
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from flagos_migrate.remote.config import GtMachine

EXIT_CONNECT = 2

# Shared prelude: $1 workdir, $2 port. Defines the pid/log files and the identity check.
_PRELUDE = r"""
set -u
workdir=$1; port=$2; shift 2
pidfile="$workdir/vllm-$port.pid"; logfile="$workdir/vllm-$port.log"; cmdfile="$workdir/vllm-$port.cmdline"
starttime_of() {
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  set -- $s
  [ "$1" != Z ] || return 1
  printf '%s' "${20}"
}
pgid_of() {
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  set -- $s
  printf '%s' "$3"
}
group_alive() {  # a non-zombie member of process group $1 exists
  for f in /proc/[0-9]*/stat; do
    read -r s 2>/dev/null < "$f" || continue
    s=${s##*) }
    [ "${s%% *}" != Z ] || continue
    s=${s#* }; s=${s#* }
    [ "${s%% *}" != "$1" ] || return 0
  done
  return 1
}
target_alive() {
  case $1 in -*) group_alive "${1#-}";; *) [ -n "$(starttime_of "$1")" ];; esac
}
cmdline_matches() {  # /proc/$1/cmdline ends with the recorded arguments (NUL-separated)
  [ -s "$cmdfile" ] || return 1
  n=$(wc -c < "$cmdfile") || return 1
  [ "$(tail -c "$n" "/proc/$1/cmdline" 2>/dev/null | cksum)" = "$(cksum < "$cmdfile")" ]
}
# the record is input: only a PID above 1, not this shell nor its group leader, with the recorded
# start time and command line, is ours
recorded_ours() {
  [ -s "$pidfile" ] || return 1
  read -r rpid rstart < "$pidfile" || true
  case ${rpid:-x} in ''|0*|*[!0-9]*) return 1;; esac
  [ "${#rpid}" -le 10 ] && [ "$rpid" -gt 1 ] || return 1
  [ "$rpid" != "$$" ] && [ "$rpid" != "$(pgid_of $$)" ] || return 1
  [ "$(starttime_of "$rpid")" = "${rstart:-}" ] || return 1
  cmdline_matches "$rpid" || return 1
  printf '%s' "$rpid"
}
"""

# $3 conda env ('' for none), $4 number of NAME=VALUE words that follow, then the vllm argv.
START_PROGRAM = _PRELUDE + r"""
conda_env=$1; nenv=$2; shift 2
i=0
while [ "$i" -lt "$nenv" ]; do export "$1"; shift; i=$((i+1)); done
mkdir -p -- "$workdir" || { echo "cannot create $workdir" >&2; exit 4; }
if pid=$(recorded_ours); then echo "a GT server started by this tool already runs (pid $pid)" >&2; exit 3; fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port is already in use on the GT machine" >&2; exit 5
fi
if [ -n "$conda_env" ]; then
  # non-interactive shells skip ~/.bashrc, where conda is usually initialised: look in the usual places
  conda_bin=$(command -v conda 2>/dev/null || true)
  for c in "${HOME:-/root}/miniconda3/bin/conda" "${HOME:-/root}/anaconda3/bin/conda" /opt/conda/bin/conda; do
    if [ -z "$conda_bin" ] && [ -x "$c" ]; then conda_bin=$c; fi
  done
  [ -n "$conda_bin" ] || { echo "conda was not found on the GT machine" >&2; exit 6; }
  hook=$("$conda_bin" shell.bash hook) || { echo "conda shell.bash hook failed" >&2; exit 6; }
  set +u  # conda's shell functions read unset variables
  eval "$hook"
  conda activate "$conda_env" || { echo "cannot activate conda env $conda_env" >&2; exit 6; }
  set -u
fi
command -v "$1" >/dev/null 2>&1 || { echo "$1 is not on PATH on the GT machine" >&2; exit 7; }
command -v setsid >/dev/null 2>&1 || { echo "setsid is missing on the GT machine" >&2; exit 7; }
cd -- "$workdir"
{ printf '\0'; printf '%s\0' "${@:2}"; } > "$cmdfile"  # not argv[0]: it may run as "python3 /path/vllm"
setsid "$@" > "$logfile" 2>&1 < /dev/null &
pid=$!
printf '%s %s\n' "$pid" "$(starttime_of "$pid")" > "$pidfile"
printf 'pid=%s\nlog=%s\n' "$pid" "$logfile"
"""

STATUS_PROGRAM = _PRELUDE + r"""
printf 'log=%s\n' "$logfile"
if [ ! -s "$pidfile" ]; then echo "state=none"
elif pid=$(recorded_ours); then printf 'state=running\npid=%s\n' "$pid"
else echo "state=exited"
fi
"""

# $3 seconds to wait between TERM and KILL.
STOP_PROGRAM = _PRELUDE + r"""
wait_s=$1
if [ ! -s "$pidfile" ]; then echo "result=none"; exit 0; fi
if ! pid=$(recorded_ours); then rm -f -- "$pidfile" "$cmdfile"; echo "result=stale"; exit 0; fi
target=$pid
[ "$(pgid_of "$pid")" != "$pid" ] || target="-$pid"
if [ "$target" = "-$(pgid_of $$)" ]; then echo "result=refused"; exit 0; fi
kill -TERM -- "$target" 2>/dev/null || true
i=0
while target_alive "$target" && [ "$i" -lt $((wait_s * 10)) ]; do sleep 0.1; i=$((i+1)); done
if target_alive "$target"; then kill -KILL -- "$target" 2>/dev/null; echo "result=killed"; else echo "result=stopped"; fi
rm -f -- "$pidfile" "$cmdfile"
printf 'pid=%s\n' "$pid"
"""

# $3 number of lines.
LOGS_PROGRAM = _PRELUDE + r"""
if [ -f "$logfile" ]; then tail -n "$1" -- "$logfile"; else echo "no log at $logfile" >&2; exit 8; fi
"""

START_ERRORS = {3: "already running", 4: "cannot create workdir", 5: "port in use", 6: "conda env problem",
                7: "command missing on the GT machine"}


class RemoteError(Exception):
    """Connection, authentication, host-key or timeout failure (exit 2)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


# ---------------------------------------------------------------- command building (pure)

@dataclass(frozen=True)
class RemoteCall:
    """A one-line command (only quoted single-line values) and the program bash reads on stdin."""

    command: str
    program: str

    def as_text(self) -> str:
        return f"{self.command} <<'PROGRAM'\n{self.program.strip()}\nPROGRAM"


def remote_call(machine: GtMachine, program: str, args: list[str]) -> RemoteCall:
    """``[docker exec -i C] bash -s -- WORKDIR PORT ARGS...`` with PROGRAM fed on stdin.

    Sending the program on stdin keeps the command line to single-line quoted words, which any
    login shell on the GT machine parses the same way.
    """
    argv = ["bash", "-s", "--", machine.workdir, str(machine.serve_port), *args]
    if machine.docker_container:
        argv = ["docker", "exec", "-i", machine.docker_container, *argv]
    return RemoteCall(" ".join(shlex.quote(part) for part in argv), program)


def server_env(machine: GtMachine) -> list[str]:
    """NAME=VALUE words exported before vllm starts; the gpus field wins over env_vars."""
    env = dict(machine.env_vars)
    if machine.gpus:
        env["CUDA_VISIBLE_DEVICES"] = machine.gpus
    return [f"{name}={value}" for name, value in env.items()]


def vllm_argv(machine: GtMachine, model: str) -> list[str]:
    return [machine.vllm_command, "serve", f"{machine.models_dir.rstrip('/')}/{model}",
            "--host", machine.serve_host, "--port", str(machine.serve_port),
            "--served-model-name", model, "--tensor-parallel-size", str(machine.tensor_parallel_size),
            *machine.extra_args]


def start_call(machine: GtMachine, model: str) -> RemoteCall:
    env = server_env(machine)
    return remote_call(machine, START_PROGRAM, [machine.conda_env, str(len(env)), *env, *vllm_argv(machine, model)])


def status_call(machine: GtMachine) -> RemoteCall:
    return remote_call(machine, STATUS_PROGRAM, [])


def stop_call(machine: GtMachine, wait_seconds: int) -> RemoteCall:
    return remote_call(machine, STOP_PROGRAM, [str(wait_seconds)])


def logs_call(machine: GtMachine, lines: int) -> RemoteCall:
    return remote_call(machine, LOGS_PROGRAM, [str(lines)])


def parse_fields(text: str) -> dict[str, str]:
    """``key=value`` lines printed by the remote programs."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            fields[key] = value
    return fields


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


# ---------------------------------------------------------------- SSH (I/O)

def _paramiko():
    try:
        import paramiko
    except ImportError:
        raise RemoteError("the Python package 'paramiko' is not installed",
                          hint="pip install 'paramiko>=3.4'") from None
    return paramiko


def _policy(machine: GtMachine, known_hosts: Path):
    """RejectPolicy, or an accept-new policy that appends the key of a host with no entry yet."""
    paramiko = _paramiko()

    class RejectUnknown(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            raise RemoteError(
                f"the host key of {hostname} is not in {known_hosts} (host_key_policy 'reject')",
                hint=f"verify the fingerprint ({key.get_name()} {key.fingerprint}) and add the key with "
                     f"ssh-keyscan, or set gt_machine.host_key_policy to 'accept-new' once")

    class AcceptNew(paramiko.MissingHostKeyPolicy):
        # paramiko calls this only when the host has no key at all in the loaded file; a
        # different key for a known host raises BadHostKeyException before we get here.
        def missing_host_key(self, client, hostname, key):
            known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(known_hosts, "a", encoding="utf-8") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            os.chmod(known_hosts, 0o600)

    return AcceptNew() if machine.host_key_policy == "accept-new" else RejectUnknown()


def _open_ssh_socket(machine: GtMachine, timeout: float, target: str) -> socket.socket:
    """TCP connection whose first bytes are an SSH banner, so that each failure gets its own message."""
    try:
        sock = socket.create_connection((machine.host, machine.port), timeout=timeout)
    except socket.gaierror as exc:
        raise RemoteError(f"cannot resolve host {machine.host}: {exc.strerror}",
                          hint="check gt_machine.host") from None
    except (socket.timeout, TimeoutError):
        raise RemoteError(f"timed out after {timeout:g}s connecting to {target}",
                          hint="check the host, the port and the network/VPN") from None
    except OSError as exc:
        raise RemoteError(f"cannot connect to {target}: {exc.strerror or exc}",
                          hint="is sshd running there and gt_machine.port right?") from None
    try:
        sock.settimeout(timeout)
        first = sock.recv(4, socket.MSG_PEEK)  # peek: paramiko reads the banner itself
    except (socket.timeout, TimeoutError):
        sock.close()
        raise RemoteError(f"timed out after {timeout:g}s waiting for the SSH banner of {target}",
                          hint="is that port an SSH server? check gt_machine.port") from None
    except OSError as exc:
        sock.close()
        raise RemoteError(f"the connection to {target} failed: {exc.strerror or exc}") from None
    if not first.startswith(b"SSH-"[: len(first)]) or not first:
        sock.close()
        raise RemoteError(f"{target} does not speak SSH (it sent {first!r})", hint="check gt_machine.port")
    return sock


def connect(machine: GtMachine, timeout: float | None = None):
    """An authenticated paramiko SSHClient; every failure becomes a RemoteError."""
    paramiko = _paramiko()
    # failures become one clear message below; keep paramiko's own log lines off stderr
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    timeout = timeout or machine.connect_timeout
    target = f"{machine.user}@{machine.host}:{machine.port}"
    known_hosts = Path(os.path.expanduser(machine.known_hosts))
    key_file = os.path.expanduser(machine.key_file) if machine.key_file else None
    if key_file and not os.path.isfile(key_file):
        raise RemoteError(f"the key file {key_file} does not exist", hint="fix gt_machine.key_file")
    client = paramiko.SSHClient()
    if known_hosts.is_file():
        try:
            client.load_host_keys(str(known_hosts))
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"cannot read known_hosts {known_hosts}: {exc}") from None
    elif machine.host_key_policy == "reject":
        raise RemoteError(f"the known_hosts file {known_hosts} does not exist (host_key_policy 'reject')",
                          hint="add the GT machine's key with ssh-keyscan, or use host_key_policy 'accept-new'")
    client.set_missing_host_key_policy(_policy(machine, known_hosts))
    sock = _open_ssh_socket(machine, timeout, target)
    try:
        client.connect(machine.host, port=machine.port, sock=sock, username=machine.user, key_filename=key_file,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       look_for_keys=key_file is None, allow_agent=True)
    except Exception as exc:  # every path closes the connection, then says what went wrong
        client.close()
        sock.close()
        if isinstance(exc, RemoteError):
            raise
        raise _connect_error(exc, machine, target, known_hosts, key_file, timeout) from None
    return client


def _connect_error(exc: Exception, machine: GtMachine, target: str, known_hosts: Path, key_file: str | None,
                   timeout: float) -> Exception:
    paramiko = _paramiko()
    name = known_hosts_name(machine.host, machine.port)
    if isinstance(exc, paramiko.BadHostKeyException):
        return RemoteError(
            f"the host key of {name} CHANGED: the server offers {exc.key.get_name()} {exc.key.fingerprint}, "
            f"{known_hosts} expects {exc.expected_key.fingerprint}; refusing to connect (possible man-in-the-middle)",
            hint=f"if the GT machine was reinstalled, remove its old entry with: ssh-keygen -f {known_hosts} -R '{name}'")
    if isinstance(exc, paramiko.PasswordRequiredException):
        return RemoteError(f"the key {key_file} is encrypted and no passphrase is available",
                           hint='load it into ssh-agent and set gt_machine.key_file to ""')
    if isinstance(exc, paramiko.AuthenticationException):
        return RemoteError(f"authentication failed for {target}: {exc}",
                           hint="check gt_machine.user and gt_machine.key_file")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return RemoteError(f"timed out after {timeout:g}s during the SSH handshake with {target}")
    if isinstance(exc, (paramiko.SSHException, OSError, EOFError, ValueError)):
        return RemoteError(f"the SSH handshake with {target} failed: {exc}")
    return exc


def run(client, call: RemoteCall, timeout: float = 120.0) -> tuple[int, str, str]:
    """Run one call; (exit status, stdout, stderr). A stalled command is a RemoteError."""
    paramiko = _paramiko()
    try:
        stdin, stdout, stderr = client.exec_command(call.command, timeout=timeout)
        stdin.write(call.program)
        stdin.flush()
        stdin.channel.shutdown_write()
        out = stdout.read().decode("utf-8", "replace")
        err = stderr.read().decode("utf-8", "replace")
        return stdout.channel.recv_exit_status(), out, err
    except (socket.timeout, TimeoutError):
        raise RemoteError(f"a remote command did not finish within {timeout:g}s") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise RemoteError(f"the SSH connection failed: {exc}") from None


def _health_direct(host: str, port: int, timeout: float) -> int | None:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _health_over_ssh(client, host: str, port: int, timeout: float) -> int | None:
    """GET /health through a direct-tcpip channel to HOST:PORT as seen from the GT machine."""
    paramiko = _paramiko()
    try:
        channel = client.get_transport().open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                                      timeout=timeout)
    except (paramiko.ChannelException, paramiko.SSHException, OSError, EOFError):
        return None  # nothing listens there (or forwarding is disabled)
    try:
        channel.settimeout(timeout)
        channel.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data and len(data) < 4096:
            chunk = channel.recv(1024)
            if not chunk:
                break
            data += chunk
        parts = data.split(b"\r\n", 1)[0].split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
    except (OSError, socket.timeout):
        return None
    finally:
        channel.close()


def health(machine: GtMachine, client, timeout: float = 5.0) -> tuple[int | None, str]:
    """(HTTP status of /health or None, how it was reached: 'direct' or 'ssh')."""
    if machine.health_check in ("auto", "direct"):
        code = _health_direct(machine.host, machine.serve_port, min(timeout, 3.0) if machine.health_check == "auto"
                              else timeout)
        if code is not None or machine.health_check == "direct":
            return code, "direct"
    inside = "127.0.0.1" if machine.serve_host in ("0.0.0.0", "::") else machine.serve_host
    return _health_over_ssh(client, inside, machine.serve_port, timeout), "ssh"


# ---------------------------------------------------------------- actions

@dataclass
class Outcome:
    ok: bool
    report: dict
    text: str


def status(machine: GtMachine, client) -> Outcome:
    rc, out, err = run(client, status_call(machine))
    if rc != 0:
        raise RemoteError(f"the status command failed on the GT machine (exit {rc}): {err.strip()}")
    fields = parse_fields(out)
    state = fields.get("state", "unknown")
    code, via = health(machine, client) if state == "running" else (None, None)
    healthy = state == "running" and code == 200
    report = {"host": machine.host, "serve_port": machine.serve_port, "state": state,
              "pid": int(fields["pid"]) if fields.get("pid", "").isdigit() else None,
              "health": code, "health_via": via, "healthy": healthy, "log": fields.get("log")}
    label = {"none": "not running (nothing recorded)", "exited": "not running (the recorded process has exited)"}
    text = (f"GT server on {machine.host}:{machine.serve_port}: {label.get(state, state)}"
            + (f" (pid {report['pid']}, /health {code if code is not None else 'unreachable'} via {via})"
               if state == "running" else "")
            + f"; log {report['log']}")
    return Outcome(healthy, report, text)


def logs(machine: GtMachine, client, lines: int) -> Outcome:
    rc, out, err = run(client, logs_call(machine, lines))
    if rc == 8:
        return Outcome(False, {"log": None, "error": err.strip()}, err.strip())
    if rc != 0:
        raise RemoteError(f"reading the log failed on the GT machine (exit {rc}): {err.strip()}")
    return Outcome(True, {"lines": out.splitlines()}, out.rstrip("\n"))


def stop(machine: GtMachine, client, wait_seconds: int) -> Outcome:
    rc, out, err = run(client, stop_call(machine, wait_seconds), timeout=wait_seconds + 60)
    if rc != 0:
        raise RemoteError(f"the stop command failed on the GT machine (exit {rc}): {err.strip()}")
    fields = parse_fields(out)
    result = fields.get("result", "unknown")
    texts = {"none": "no GT server recorded; nothing to stop",
             "stale": "the recorded PID is not our server (PID <= 1, this shell's own group, or its start time or "
                      "command line differ); removed the stale record, signalled nothing",
             "refused": "the recorded server shares the process group of the stop command; signalled nothing",
             "stopped": f"stopped the GT server (process group {fields.get('pid')})",
             "killed": f"the GT server ignored TERM; killed its process group {fields.get('pid')}"}
    return Outcome(True, {"result": result, "pid": fields.get("pid")}, texts.get(result, out.strip()))


def start(machine: GtMachine, client, model: str, wait: bool, timeout: int, poll: float,
          log_lines: int = 40, progress: Callable[[str], None] = lambda _m: None) -> Outcome:
    rc, out, err = run(client, start_call(machine, model))
    if rc != 0:
        what = START_ERRORS.get(rc, f"exit {rc}")
        return Outcome(False, {"started": False, "error": what, "message": err.strip()},
                       f"could not start the GT server ({what}): {err.strip()}")
    fields = parse_fields(out)
    report = {"started": True, "model": model, "pid": int(fields.get("pid", "0") or 0), "log": fields.get("log"),
              "serve_port": machine.serve_port, "healthy": False}
    progress(f"started {machine.vllm_command} serve {model} on {machine.host} (pid {report['pid']}), "
             f"log {report['log']}")
    if not wait:
        return Outcome(True, report, f"GT server started (pid {report['pid']}); not waiting for /health")
    deadline = time.monotonic() + timeout
    probe = machine
    while True:
        now = status(probe, client)
        if probe.health_check == "auto" and now.report["health_via"] == "ssh":
            # the port is not reachable from here: stop paying the direct probe's timeout each poll
            probe = replace(machine, health_check="ssh")
        if now.report["state"] != "running":
            tail = logs(machine, client, log_lines).text
            report["error"] = "exited"
            return Outcome(False, report, f"the GT server exited before /health answered 200; log tail:\n{tail}")
        if now.report["health"] == 200:
            report.update(healthy=True, health_via=now.report["health_via"])
            return Outcome(True, report, f"GT server ready on {machine.host}:{machine.serve_port} "
                                         f"(model {model}, pid {report['pid']})")
        if time.monotonic() >= deadline:
            tail = logs(machine, client, log_lines).text
            report["error"] = "timeout"
            return Outcome(False, report, f"/health did not answer 200 within {timeout}s (the server keeps running; "
                                          f"stop it with 'stop'); log tail:\n{tail}")
        time.sleep(poll)
