#!/usr/bin/env bash
# Start, inspect and stop a local vLLM server for a migrated model (Steps 10 and 11).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$HERE/lib/common.sh"

usage() {
    cat <<EOF
usage: serve.sh [start] MODEL [PORT] [options] [-- EXTRA_VLLM_ARGS...]
       serve.sh stop|status|logs [PORT] [options]

Start 'vllm serve' for MODEL in the background (own process group), record its PID and log,
and wait until GET /health answers 200 (503 means the model is still loading).

MODEL is a folder name inside the models folder or an absolute path.
PORT defaults to \$FLAGOS_PORT or $FM_DEFAULT_PORT (the same default as benchmark.sh, request.sh
and e2e_eval.py).

verbs:
  start (default)   start the server and wait until it is healthy
  stop PORT         stop the server this script started on PORT (its process group only)
  status PORT       report whether it runs and what /health answers (--json for machine output)
  logs PORT         print the tail of its log (--lines N, --follow)

options (environment variable in brackets, default after it):
  --models-dir DIR              folder holding the models [FLAGOS_MODELS_DIR, $FM_DEFAULT_MODELS_DIR]
  --host ADDR                   address to bind [FLAGOS_HOST, 127.0.0.1]
  --served-model-name NAME      name in /v1/models [FLAGOS_SERVED_MODEL_NAME, MODEL]
  --tp N, --tensor-parallel-size N   [FLAGOS_TP, 1]
  --gpus LIST                   sets CUDA_VISIBLE_DEVICES, e.g. 0,1 [FLAGOS_GPUS, inherited]
  --load-format FMT             [FLAGOS_LOAD_FORMAT, auto]
  --max-num-seqs N              [FLAGOS_MAX_NUM_SEQS, vLLM's default]
  --gpu-memory-utilization F    [FLAGOS_GPU_MEMORY_UTILIZATION, vLLM's default]
  --max-model-len N             [FLAGOS_MAX_MODEL_LEN, vLLM's default]
  --reasoning-parser NAME       only passed when given [FLAGOS_REASONING_PARSER]
  --trust-remote-code           pass --trust-remote-code [FLAGOS_TRUST_REMOTE_CODE=1]
  --vllm CMD                    the vllm executable [FLAGOS_VLLM, vllm]
  --state-dir DIR               where PID and log are kept
                                [FLAGOS_STATE_DIR, \${XDG_STATE_HOME:-~/.local/state}/model-migrate-flagos]
  --timeout S                   seconds to wait for /health 200 [FLAGOS_HEALTH_TIMEOUT, 1800]
  --poll S                      seconds between health probes [FLAGOS_HEALTH_POLL, 2]
  --stop-timeout S              seconds between TERM and KILL on stop [FLAGOS_STOP_TIMEOUT, 30]
  --foreground                  run vllm in the foreground instead (no health wait)
  --dry-run                     print the exact command and environment, start nothing
  --json                        machine-readable output for status
  --lines N                     lines for logs and failure reports [40]
  --follow                      logs: keep following the log
  -h, --help                    this help

environment: VLLM_FL_PREFER_ENABLED=false and VLLM_USE_DEEP_GEMM=0 are exported unless already set.
Only the process recorded by 'start' is ever signalled: its PID and start time must still match.

exit codes: 0 success, 1 server failed/unhealthy/not running, 2 could not run (bad input,
missing tool, port in use)
EOF
}

verb=start
models_dir=${FLAGOS_MODELS_DIR:-$FM_DEFAULT_MODELS_DIR}
host=${FLAGOS_HOST:-127.0.0.1}
served_name=${FLAGOS_SERVED_MODEL_NAME:-}
tp=${FLAGOS_TP:-1}
gpus=${FLAGOS_GPUS:-}
load_format=${FLAGOS_LOAD_FORMAT:-auto}
max_num_seqs=${FLAGOS_MAX_NUM_SEQS:-}
gpu_mem=${FLAGOS_GPU_MEMORY_UTILIZATION:-}
max_model_len=${FLAGOS_MAX_MODEL_LEN:-}
reasoning_parser=${FLAGOS_REASONING_PARSER:-}
trust_remote_code=${FLAGOS_TRUST_REMOTE_CODE:-0}
vllm_cmd=${FLAGOS_VLLM:-vllm}
state_base=${FLAGOS_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/model-migrate-flagos}
timeout=${FLAGOS_HEALTH_TIMEOUT:-1800}
poll=${FLAGOS_HEALTH_POLL:-2}
stop_timeout=${FLAGOS_STOP_TIMEOUT:-30}
foreground=0
dry_run=0
json=0
lines=40
follow=0
positional=()
extra=()

while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        --*=*) opt=${1%%=*}; val=${1#*=}; shift; set -- "$opt" "$val" "$@"; continue ;;
        --models-dir) fm_need_value "$1" $#; models_dir=$2; shift 2 ;;
        --host) fm_need_value "$1" $#; host=$2; shift 2 ;;
        --served-model-name) fm_need_value "$1" $#; served_name=$2; shift 2 ;;
        --tp | --tensor-parallel-size) fm_need_value "$1" $#; tp=$2; shift 2 ;;
        --gpus) fm_need_value "$1" $#; gpus=$2; shift 2 ;;
        --load-format) fm_need_value "$1" $#; load_format=$2; shift 2 ;;
        --max-num-seqs) fm_need_value "$1" $#; max_num_seqs=$2; shift 2 ;;
        --gpu-memory-utilization) fm_need_value "$1" $#; gpu_mem=$2; shift 2 ;;
        --max-model-len) fm_need_value "$1" $#; max_model_len=$2; shift 2 ;;
        --reasoning-parser) fm_need_value "$1" $#; reasoning_parser=$2; shift 2 ;;
        --trust-remote-code) trust_remote_code=1; shift ;;
        --vllm) fm_need_value "$1" $#; vllm_cmd=$2; shift 2 ;;
        --state-dir) fm_need_value "$1" $#; state_base=$2; shift 2 ;;
        --timeout) fm_need_value "$1" $#; timeout=$2; shift 2 ;;
        --poll) fm_need_value "$1" $#; poll=$2; shift 2 ;;
        --stop-timeout) fm_need_value "$1" $#; stop_timeout=$2; shift 2 ;;
        --foreground) foreground=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        --json) json=1; shift ;;
        --lines) fm_need_value "$1" $#; lines=$2; shift 2 ;;
        --follow | -f) follow=1; shift ;;
        -*) fm_die "unknown option $1" "see serve.sh --help" ;;
        *) positional+=("$1"); shift ;;
    esac
done

case ${positional[0]:-} in
    start | stop | status | logs) verb=${positional[0]}; positional=("${positional[@]:1}") ;;
esac

fm_check_uint --timeout "$timeout"
fm_check_number --poll "$poll"
fm_check_uint --stop-timeout "$stop_timeout"
fm_check_uint --lines "$lines"

if [ "$verb" = start ]; then
    [ ${#positional[@]} -ge 1 ] || fm_die "MODEL is required" "usage: serve.sh [start] MODEL [PORT]; see --help"
    [ ${#positional[@]} -le 2 ] || fm_die "too many arguments: ${positional[*]}" "extra vllm arguments go after --"
    model=${positional[0]}
    port=${positional[1]:-${FLAGOS_PORT:-$FM_DEFAULT_PORT}}
else
    [ ${#positional[@]} -le 1 ] || fm_die "too many arguments: ${positional[*]}" "usage: serve.sh $verb [PORT]"
    port=${positional[0]:-${FLAGOS_PORT:-$FM_DEFAULT_PORT}}
fi
fm_check_port "$port"

state_dir="$state_base/serve-$port"
pid_file="$state_dir/pid"
cmdline_file="$state_dir/cmdline"
log_file="$state_dir/server.log"
probe_url="http://$(fm_client_host "$host"):$port"

# Prints the recorded PID when that PID is still the process 'start' launched; otherwise
# returns 1 and leaves the reason in $refused.
refused=''
recorded_pid() {
    local pid start
    refused='nothing recorded'
    [ -s "$pid_file" ] || return 1
    read -r pid start <"$pid_file" || true
    refused=$(fm_check_target "${pid:-}" "${start:-}" "$cmdline_file") || return 1
    fm_pid_alive "$pid" || { refused="the recorded PID $pid has exited"; return 1; }
    printf '%s' "$pid"
}

show_log_tail() {
    if [ -s "$log_file" ]; then
        fm_info "---- last $lines lines of $log_file ----"
        tail -n "$lines" -- "$log_file" >&2
        fm_info "----"
    else
        fm_info "(the log $log_file is empty)"
    fi
}

# TERM the server's process group (or only the server, when it does not lead a group, as
# with --foreground from a script), wait, then KILL that same target if it is still there.
target_alive() {
    if [ "${1#-}" != "$1" ]; then fm_group_alive "${1#-}"; else fm_pid_alive "$1"; fi
}

stop_group() {
    local pid=$1 target waited=0
    target=$pid
    [ "$(fm_proc_pgid "$pid")" != "$pid" ] || target="-$pid"
    if [ "$target" = "-$(fm_proc_pgid $$)" ] || [ "$pid" -le 1 ]; then
        fm_info "refusing to signal process group $pid: it is this tool's own"; return 0
    fi
    kill -TERM -- "$target" 2>/dev/null || true
    while target_alive "$target" && [ "$waited" -lt $((stop_timeout * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if target_alive "$target"; then
        fm_info "server $pid ignored TERM for ${stop_timeout}s; sending KILL to its process group only"
        kill -KILL -- "$target" 2>/dev/null || true
    fi
}

do_stop() {
    local pid
    if [ ! -s "$pid_file" ]; then
        echo "no server recorded for port $port (nothing to stop)"
        return 0
    fi
    if ! pid=$(recorded_pid); then
        recorded_pid >/dev/null || true  # for $refused (the call above ran in a subshell)
        rm -f -- "$pid_file" "$cmdline_file"
        echo "the recorded PID for port $port is not the server serve.sh started ($refused); removed the stale record, signalled nothing"
        return 0
    fi
    stop_group "$pid"
    rm -f -- "$pid_file" "$cmdline_file"
    echo "stopped server on port $port (process group $pid); log kept at $log_file"
}

do_status() {
    local pid='' state code=000 rc=1
    fm_require curl
    [ "$json" = 0 ] || fm_require python3
    if pid=$(recorded_pid); then
        code=$(fm_http_code "$probe_url/health")
        case $code in
            200) state=healthy; rc=0 ;;
            503) state=loading ;;
            *) state=unhealthy ;;
        esac
    elif [ -s "$pid_file" ]; then
        state=stale; pid=''
    else
        state=not-running
    fi
    if [ "$json" = 1 ]; then
        python3 - "$state" "$port" "$pid" "$code" "$log_file" "$probe_url" <<'PY'
import json, sys
state, port, pid, code, log, url = sys.argv[1:]
print(json.dumps({"state": state, "port": int(port), "pid": int(pid) if pid else None,
                  "health": int(code) if code != "000" else None, "log": log, "url": url}, indent=2))
PY
    else
        case $state in
            stale) echo "port $port: not running (stale record: the recorded PID is gone or reused)" ;;
            not-running) echo "port $port: not running (no server recorded)" ;;
            *) echo "port $port: $state (pid $pid, /health $code) log=$log_file" ;;
        esac
    fi
    return "$rc"
}

do_logs() {
    [ -f "$log_file" ] || fm_die "no log for port $port at $log_file" "start a server with serve.sh MODEL $port first" 1
    if [ "$follow" = 1 ]; then
        exec tail -n "$lines" -f -- "$log_file"
    fi
    tail -n "$lines" -- "$log_file"
}

case $verb in
    stop) do_stop; exit $? ;;
    status) do_status; exit $? ;;
    logs) do_logs; exit $? ;;
esac

# ---- start ----
fm_check_uint --tp "$tp"
[ -z "$gpus" ] || fm_check_gpus "$gpus"
[ -z "$max_num_seqs" ] || fm_check_uint --max-num-seqs "$max_num_seqs"
[ -z "$gpu_mem" ] || fm_check_number --gpu-memory-utilization "$gpu_mem"
[ -z "$max_model_len" ] || fm_check_uint --max-model-len "$max_model_len"
model_path=$(fm_model_path "$model" "$models_dir")
fm_check_model "$model" "$model_path" "$dry_run"
[ -n "$served_name" ] || served_name=$(basename -- "$model")

cmd=("$vllm_cmd" serve "$model_path" --host "$host" --port "$port"
    --served-model-name "$served_name" --tensor-parallel-size "$tp" --load-format "$load_format")
[ -z "$max_num_seqs" ] || cmd+=(--max-num-seqs "$max_num_seqs")
[ -z "$gpu_mem" ] || cmd+=(--gpu-memory-utilization "$gpu_mem")
[ -z "$max_model_len" ] || cmd+=(--max-model-len "$max_model_len")
[ -z "$reasoning_parser" ] || cmd+=(--reasoning-parser "$reasoning_parser")
[ "$trust_remote_code" != 1 ] || cmd+=(--trust-remote-code)
cmd+=("${extra[@]}")

fm_export_vllm_env
[ -z "$gpus" ] || export CUDA_VISIBLE_DEVICES="$gpus"

if [ "$dry_run" = 1 ]; then
    fm_print_command "${cmd[@]}"
    exit 0
fi

fm_require curl python3 "$vllm_cmd"
[ "$foreground" = 1 ] || fm_require setsid

if pid=$(recorded_pid); then
    fm_die "a server started by serve.sh already runs on port $port (pid $pid)" "stop it first: serve.sh stop $port"
fi
if fm_port_in_use "$host" "$port"; then
    fm_die "port $port is already in use on $host by another process" "choose another PORT (serve.sh $model OTHER_PORT) or stop that process yourself"
fi

mkdir -p -- "$state_dir"
printf '%q ' "${cmd[@]}" >"$state_dir/command"

fm_write_cmdline "$cmdline_file" "${cmd[@]}"
if [ "$foreground" = 1 ]; then
    printf '%s %s\n' "$$" "$(fm_proc_starttime $$)" >"$pid_file"
    fm_info "serving $model_path on port $port in the foreground"
    exec "${cmd[@]}"
fi

# Non-interactive bash puts background jobs in our own process group, so setsid does not need
# to fork: $! is the server itself, and it leads a new session and process group.
setsid "${cmd[@]}" >"$log_file" 2>&1 </dev/null &
pid=$!
# Interrupting the wait stops the server we just started instead of leaving it behind; set before the
# PID record is written, so a signal arriving once the server runs always finds the trap.
trap 'fm_info "interrupted; stopping the server (pid $pid)"; stop_group "$pid"; rm -f -- "$pid_file"; exit 130' INT TERM
printf '%s %s\n' "$pid" "$(fm_proc_starttime "$pid")" >"$pid_file"
fm_info "started $vllm_cmd serve (pid $pid), log: $log_file; waiting for $probe_url/health (timeout ${timeout}s)"

deadline=$((SECONDS + timeout))
while :; do
    if ! fm_pid_alive "$pid"; then
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        rm -f -- "$pid_file"
        show_log_tail
        fm_die "the server process exited (status $rc) before /health answered 200" "read the log above: $log_file" 1
    fi
    code=$(fm_http_code "$probe_url/health")
    if [ "$code" = 200 ]; then
        echo "server ready: $probe_url (model $served_name, pid $pid, log $log_file)"
        exit 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        show_log_tail
        stop_group "$pid"
        rm -f -- "$pid_file"
        fm_die "/health did not answer 200 within ${timeout}s (last answer: $code); stopped the server" \
            "raise --timeout or read the log: $log_file" 1
    fi
    sleep "$poll"
done
