#!/usr/bin/env bash
# Manage the upstream-vLLM ground-truth (GT) server on the GT machine over SSH (Step 11).
# The work is done by remote_gt_server.py (paramiko, strict config validation, host-key checks).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    cat <<'EOF'
usage: e2e_remote_serve.sh start|stop|status|logs CONFIG [MODEL] [options]

  start   start 'vllm serve MODEL' on the GT machine (optionally inside gt_machine.docker_container
          and gt_machine.conda_env), record its PID there, wait until /health answers 200
  stop    stop the process group recorded by start (only if the PID is still that process)
  status  report whether it runs and what /health answers (--json for machine output)
  logs    print the tail of the remote log (--lines N)

CONFIG is the E2E config (copy scripts/e2e_config.template.json); MODEL defaults to its "model".
Options: --json, --lines N, --no-wait, --timeout S, --poll S, --stop-timeout S, --dry-run.
Full option list: e2e_remote_serve.sh --help-all

exit codes: 0 success, 1 server exited / timed out / not healthy,
2 could not run (bad config, connection, authentication, host key or timeout failure)
EOF
}

case ${1:-} in
    '') usage >&2; exit 2 ;;
    -h | --help) usage; exit 0 ;;
    --help-all) set -- --help ;;
esac

if ! command -v python3 >/dev/null 2>&1; then
    printf 'error: python3 is required but was not found on PATH\nhint: install Python 3.10+\n' >&2
    exit 2
fi
exec python3 "$HERE/remote_gt_server.py" "$@"
