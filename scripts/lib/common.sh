# shellcheck shell=bash
# Helpers shared by serve.sh, benchmark.sh and request.sh (sourced, never run).
# Exit codes of every script: 0 success, 1 the command ran and found a problem
# (server died, unhealthy, non-200 answer), 2 could not run (bad input, missing tool, port in use).

# shellcheck disable=SC2034  # used by the scripts that source this file
FM_DEFAULT_PORT=8122
# shellcheck disable=SC2034
FM_DEFAULT_MODELS_DIR=/models

fm_die() {  # fm_die MESSAGE [HINT] [CODE]
    printf 'error: %s\n' "$1" >&2
    if [ -n "${2:-}" ]; then printf 'hint: %s\n' "$2" >&2; fi
    exit "${3:-2}"
}

fm_info() { printf '%s\n' "$*" >&2; }

fm_require() {  # fm_require CMD... : fail clearly when a tool is missing
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 ||
            fm_die "'$c' is required but was not found on PATH" "install $c (e.g. with your package manager) and retry"
    done
}

fm_need_value() {  # fm_need_value OPTION ARGC : an option that takes a value got none
    if [ "$2" -lt 2 ]; then fm_die "option $1 needs a value" "see --help"; fi
}

fm_check_uint() {  # fm_check_uint NAME VALUE
    [[ $2 =~ ^[0-9]+$ ]] || fm_die "$1 must be a non-negative integer, got '$2'"
}

fm_check_number() {  # fm_check_number NAME VALUE : integer or decimal
    [[ $2 =~ ^[0-9]+([.][0-9]+)?$ ]] || fm_die "$1 must be a number, got '$2'"
}

fm_check_port() {
    if ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then
        fm_die "port must be an integer in 1..65535, got '$1'"
    fi
}

fm_check_gpus() {  # a CUDA_VISIBLE_DEVICES list: digits and commas
    [[ $1 =~ ^[0-9]+(,[0-9]+)*$ ]] || fm_die "GPU list must be digits separated by commas (e.g. 0,1), got '$1'"
}

# Resolve MODEL to a path: absolute paths are kept, names are looked up in MODELS_DIR.
fm_model_path() {  # fm_model_path MODEL MODELS_DIR
    case $1 in
        /*) printf '%s' "$1" ;;
        *) printf '%s/%s' "${2%/}" "$1" ;;
    esac
}

fm_check_model() {  # fm_check_model MODEL PATH DRY_RUN
    case $1 in
        '' | -*) fm_die "MODEL must be a model folder name or an absolute path, got '$1'" "see --help" ;;
    esac
    if [ ! -e "$2" ]; then
        if [ "$3" = 1 ]; then
            fm_info "warning: model path $2 does not exist"
        else
            fm_die "model path $2 does not exist" "pass an absolute path or set --models-dir / FLAGOS_MODELS_DIR"
        fi
    fi
}

# The plugin's defaults from the design card; a value already in the environment wins.
fm_export_vllm_env() {
    export VLLM_FL_PREFER_ENABLED="${VLLM_FL_PREFER_ENABLED:-false}"
    export VLLM_USE_DEEP_GEMM="${VLLM_USE_DEEP_GEMM:-0}"
}

fm_print_command() {  # shell-quoted, copy-pasteable, with the environment it runs under
    local v
    for v in VLLM_FL_PREFER_ENABLED VLLM_USE_DEEP_GEMM CUDA_VISIBLE_DEVICES; do
        if [ -n "${!v+x}" ]; then printf '%s=%q ' "$v" "${!v}"; fi
    done
    printf '%q ' "$@"
    printf '\n'
}

fm_client_host() {  # the address to probe for a server bound to HOST
    case $1 in
        0.0.0.0 | '' | '::' | '[::]') printf '127.0.0.1' ;;
        *) printf '%s' "$1" ;;
    esac
}

fm_http_code() {  # fm_http_code URL : HTTP status, 000 when nothing answers
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time "${FM_HTTP_TIMEOUT:-5}" "$1" 2>/dev/null) || true
    printf '%s' "${code:-000}"
}

fm_port_in_use() {  # fm_port_in_use HOST PORT : true when something listens there
    python3 - "$1" "$2" <<'PY'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
probe = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
try:
    with socket.create_connection((probe, port), timeout=1):
        sys.exit(0)  # somebody answers
except OSError:
    pass
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((host, port))
except OSError:
    sys.exit(0)
finally:
    s.close()
sys.exit(1)
PY
}

# Field N of /proc/PID/stat, counted after "(comm) " (state=1, pgrp=3, starttime=20): comm may
# hold spaces and parentheses, so split only what follows its last ")".
fm_proc_stat_field() {
    local stat rest n=$2
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    printf '%s' "${!n}"
}

# Process identity: the start time (clock ticks since boot) does not change across exec and
# differs for a reused PID, so PID + start time names one process.
fm_proc_starttime() { fm_proc_stat_field "$1" 20; }

fm_proc_pgid() { fm_proc_stat_field "$1" 3; }

fm_pid_alive() {  # alive and not a zombie
    local stat rest
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    [ "${rest%% *}" != Z ]
}

# True while process group $1 has a member that is not a zombie. Zombies are skipped because an
# orphaned server is reaped by PID 1, which in containers may never happen.
fm_group_alive() {
    local pgid=$1 f line rest
    for f in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$f" || continue
        rest=${line##*) }
        [ "${rest%% *}" != Z ] || continue
        rest=${rest#* }  # drop state
        rest=${rest#* }  # drop ppid
        [ "${rest%% *}" != "$pgid" ] || return 0
    done
    return 1
}

# The command line a start recorded: NUL, then every argument after argv[0], each NUL-terminated.
# argv[0] is left out because an interpreter script runs as "python3 /path/vllm serve ...".
fm_write_cmdline() {  # fm_write_cmdline FILE CMD ARGS...
    local file=$1
    shift 2
    { printf '\0'; printf '%s\0' "$@"; } >"$file"
}

fm_cmdline_matches() {  # fm_cmdline_matches PID FILE : /proc/PID/cmdline ends with FILE's bytes
    local n
    [ -s "$2" ] || return 1
    n=$(wc -c <"$2") || return 1
    [ "$(tail -c "$n" "/proc/$1/cmdline" 2>/dev/null | cksum)" = "$(cksum <"$2")" ]
}

# A PID record is input like any other (stale, edited, forged): signal only a PID above 1 that is
# neither this shell nor the leader of its process group, whose start time and command line still
# match what start recorded. Prints why it refuses.
fm_check_target() {  # fm_check_target PID STARTTIME CMDLINE_FILE
    local pid=$1 own
    if ! [[ $pid =~ ^[1-9][0-9]{0,9}$ ]] || [ "$pid" -le 1 ]; then
        printf 'the recorded PID %s is not a process this tool may signal' "$pid"; return 1
    fi
    own=$(fm_proc_pgid $$) || own=$$
    if [ "$pid" = "$$" ] || [ "$pid" = "$own" ]; then
        printf 'the recorded PID %s is this shell or the leader of its own process group' "$pid"; return 1
    fi
    if [ "$(fm_proc_starttime "$pid")" != "$2" ]; then
        printf 'the recorded PID %s is gone or was reused (start time differs)' "$pid"; return 1
    fi
    if ! fm_cmdline_matches "$pid" "$3"; then
        printf 'the recorded PID %s runs another command than the one started' "$pid"; return 1
    fi
}
