#!/usr/bin/env python3
"""Manage the upstream-vLLM ground-truth server on the GT machine over SSH (called by e2e_remote_serve.sh)."""

from __future__ import annotations

import sys

from flagos_migrate.cli import (
    EXIT_FINDINGS,
    EXIT_OK,
    UsageError,
    make_parser,
    print_json,
    progress,
    run_main,
    seconds,
)
from flagos_migrate.remote.config import load_config, validate_model_name
from flagos_migrate.remote.gt import (
    RemoteError,
    connect,
    logs,
    logs_call,
    start,
    start_call,
    status,
    status_call,
    stop,
    stop_call,
)

EPILOG = """\
CONFIG is the E2E config (see scripts/e2e_config.template.json); its gt_machine section is
validated strictly before anything connects. MODEL defaults to the config's "model" and names a
folder under gt_machine.models_dir.

Host keys are checked against gt_machine.known_hosts (default ~/.ssh/known_hosts):
host_key_policy "reject" (default) refuses unknown hosts, "accept-new" records the key of a host
that has no entry yet; a changed key is always refused.

Optional gt_machine fields beyond the template: serve_host (bind address, default 0.0.0.0),
vllm_command (default "vllm"), health_check ("auto": direct HTTP, then over SSH; "direct"; "ssh"),
connect_timeout (seconds, default 15), startup_timeout (seconds, default 1800).

With docker_container set, every remote command runs through 'docker exec CONTAINER', so
workdir, models_dir and the PID file are paths inside the container; the container needs the
host network (or a published serve_port) for /health and e2e_eval.py to reach the server.

exit codes of start/status: 1 means the server exited, timed out or is not healthy;
connection, authentication, host-key and timeout failures exit 2."""


def build_parser():
    parser = make_parser("e2e_remote_serve.sh", "Start, stop, inspect the GT vLLM server on the GT machine.", EPILOG)
    parser.add_argument("action", choices=("start", "stop", "status", "logs"))
    parser.add_argument("config", help="the E2E config JSON")
    parser.add_argument("model", nargs="?", help="model folder under models_dir (default: the config's model)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--lines", type=int, default=100, help="log lines for logs and failure reports (default 100)")
    parser.add_argument("--no-wait", action="store_true", help="start: return without waiting for /health 200")
    parser.add_argument("--timeout", type=int, default=None,
                        help="start: seconds to wait for /health 200 (default gt_machine.startup_timeout)")
    parser.add_argument("--poll", type=seconds(0.01, 3600), default=5.0, help="start: seconds between health probes (default 5)")
    parser.add_argument("--stop-timeout", type=int, default=30, help="stop: seconds between TERM and KILL (default 30)")
    parser.add_argument("--dry-run", action="store_true", help="print the remote command line, connect to nothing")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    machine, config_model = load_config(args.config)
    if args.lines < 1 or args.poll <= 0 or args.stop_timeout < 0 or (args.timeout is not None and args.timeout < 1):
        raise UsageError("--lines, --poll and --timeout must be positive, --stop-timeout not negative")
    model = None
    if args.action == "start":
        model = validate_model_name(args.model) if args.model else config_model
        if not model:
            raise UsageError("no model given", hint="pass MODEL or set \"model\" in the config")
    if args.dry_run:
        calls = {"start": lambda: start_call(machine, model), "status": lambda: status_call(machine),
                 "stop": lambda: stop_call(machine, args.stop_timeout), "logs": lambda: logs_call(machine, args.lines)}
        call = calls[args.action]()
        target = f"{machine.user}@{machine.host}:{machine.port}"
        if args.json:
            print_json({"target": target, "command": call.command, "stdin_program": call.program})
        else:
            print(f"ssh {target} {call.as_text()}")
        return EXIT_OK
    try:
        client = connect(machine)
        try:
            if args.action == "start":
                outcome = start(machine, client, model, wait=not args.no_wait,
                                timeout=args.timeout or machine.startup_timeout, poll=args.poll,
                                log_lines=args.lines, progress=progress)
            elif args.action == "status":
                outcome = status(machine, client)
            elif args.action == "stop":
                outcome = stop(machine, client, args.stop_timeout)
            else:
                outcome = logs(machine, client, args.lines)
        finally:
            client.close()
    except RemoteError as exc:
        raise UsageError(exc.message, exc.hint) from None
    if args.json:
        print_json(outcome.report)
    elif outcome.text:
        stream = sys.stdout if outcome.ok or args.action == "status" else sys.stderr
        print(outcome.text, file=stream)
    return EXIT_OK if outcome.ok else EXIT_FINDINGS


if __name__ == "__main__":
    run_main(main)
