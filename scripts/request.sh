#!/usr/bin/env bash
# Send one chat request to a served model and show the answer and token counts (Step 10).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$HERE/lib/common.sh"

usage() {
    cat <<EOF
usage: request.sh [MODEL] [PORT] [options]

Send one chat completion to the server on PORT and print the answer and the token counts.
The model name is taken from GET /v1/models: when the server lists several, MODEL (a served
name, or the folder/path it was served from) picks one; with a single model MODEL may be omitted.
PORT defaults to \$FLAGOS_PORT or $FM_DEFAULT_PORT (the same default as serve.sh).

options (environment variable in brackets, default after it):
  --host ADDR           [FLAGOS_HOST, 127.0.0.1]
  --prompt TEXT         [FLAGOS_PROMPT, a short question]
  --max-tokens N        [FLAGOS_MAX_TOKENS, 128]
  --temperature T       [0]
  --timeout S           seconds for the whole request [FLAGOS_REQUEST_TIMEOUT, 300]
  --json                print the server's JSON answer instead of text
  --dry-run             print the request that would be sent, send nothing
  -h, --help            this help

exit codes: 0 success, 1 the server answered with an error (its message is printed),
2 could not run (bad input, missing tool, server unreachable)
EOF
}

host=${FLAGOS_HOST:-127.0.0.1}
prompt=${FLAGOS_PROMPT:-In one sentence, what is the capital of France?}
max_tokens=${FLAGOS_MAX_TOKENS:-128}
temperature=0
timeout=${FLAGOS_REQUEST_TIMEOUT:-300}
json=0
dry_run=0
positional=()

while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --*=*) opt=${1%%=*}; val=${1#*=}; shift; set -- "$opt" "$val" "$@"; continue ;;
        --host) fm_need_value "$1" $#; host=$2; shift 2 ;;
        --prompt) fm_need_value "$1" $#; prompt=$2; shift 2 ;;
        --max-tokens) fm_need_value "$1" $#; max_tokens=$2; shift 2 ;;
        --temperature) fm_need_value "$1" $#; temperature=$2; shift 2 ;;
        --timeout) fm_need_value "$1" $#; timeout=$2; shift 2 ;;
        --json) json=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        -*) fm_die "unknown option $1" "see request.sh --help" ;;
        *) positional+=("$1"); shift ;;
    esac
done

model=''
port=${FLAGOS_PORT:-$FM_DEFAULT_PORT}
case ${#positional[@]} in
    0) ;;
    1) if [[ ${positional[0]} =~ ^[0-9]+$ ]]; then port=${positional[0]}; else model=${positional[0]}; fi ;;
    2) model=${positional[0]}; port=${positional[1]} ;;
    *) fm_die "too many arguments: ${positional[*]}" "usage: request.sh [MODEL] [PORT]" ;;
esac
fm_check_port "$port"
fm_check_uint --max-tokens "$max_tokens"
[ "$max_tokens" -ge 1 ] || fm_die "--max-tokens must be at least 1"
fm_check_number --temperature "$temperature"
fm_check_uint --timeout "$timeout"
fm_require curl python3

base="http://$(fm_client_host "$host"):$port"
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# 1. the served model name
if [ "$dry_run" = 1 ]; then
    served=${model:-<name from $base/v1/models>}
else
    code=$(curl -s -o "$work/models.json" -w '%{http_code}' --max-time 30 "$base/v1/models") || code=000
    [ "$code" != 000 ] || fm_die "no server answers on $base" "start one with: serve.sh MODEL $port"
    [ "$code" = 200 ] || fm_die "GET $base/v1/models answered $code: $(head -c 500 "$work/models.json")" "is the server still loading? check serve.sh status $port" 1
    served=$(python3 - "$work/models.json" "$model" <<'PY'
import json, os, sys
path, wanted = sys.argv[1], sys.argv[2]
try:
    entries = json.load(open(path, encoding="utf-8"))["data"]
    names = [(e["id"], str(e.get("root") or "")) for e in entries]
except (ValueError, KeyError, TypeError) as exc:
    sys.exit(f"error: /v1/models is not an OpenAI model list: {exc}")
if not names:
    sys.exit("error: the server lists no models")
if wanted:
    base = os.path.basename(wanted.rstrip("/"))
    hits = [i for i, root in names if wanted in (i, root) or base in (i, os.path.basename(root.rstrip("/")))]
    if hits:
        print(hits[0])
        sys.exit(0)
    if len(names) > 1:
        sys.exit(f"error: no served model matches {wanted!r}; the server has: {', '.join(i for i, _ in names)}")
    print(f"note: serving {names[0][0]!r}, not {wanted!r}; asking it anyway", file=sys.stderr)
elif len(names) > 1:
    sys.exit(f"error: the server has several models ({', '.join(i for i, _ in names)}); name one as MODEL")
print(names[0][0])
PY
    ) || exit 2
fi

# 2. the request body, built by json.dumps so that any prompt text is encoded correctly
python3 - "$served" "$prompt" "$max_tokens" "$temperature" >"$work/body.json" <<'PY'
import json, sys
model, prompt, max_tokens, temperature = sys.argv[1:5]
print(json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}],
                  "max_tokens": int(max_tokens), "temperature": float(temperature)}))
PY

if [ "$dry_run" = 1 ]; then
    echo "POST $base/v1/chat/completions"
    cat "$work/body.json"
    exit 0
fi

fm_info "asking $served on $base (max_tokens $max_tokens)"
rc=0
code=$(curl -s -o "$work/answer.json" -w '%{http_code}' --max-time "$timeout" \
    -H 'Content-Type: application/json' --data-binary "@$work/body.json" \
    "$base/v1/chat/completions") || rc=$?
if [ "$rc" != 0 ] || [ "${code:-000}" = 000 ]; then
    case $rc in  # curl's exit status says what happened
        28) why="no answer from $base/v1/chat/completions within ${timeout}s" ;;
        7) why="cannot connect to $base (nothing listens there)" ;;
        52 | 56) why="the server at $base closed the connection without an answer (curl exit $rc)" ;;
        *) why="the request to $base/v1/chat/completions failed (curl exit $rc)" ;;
    esac
    fm_die "$why" "check serve.sh status $port and its logs"
fi

python3 - "$work/answer.json" "$code" "$json" <<'PY'
import json, sys
path, code, as_json = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
raw = open(path, encoding="utf-8", errors="replace").read()
try:
    body = json.loads(raw)
except ValueError:
    body = None
if code != 200:
    message = raw.strip()[:2000]
    if isinstance(body, dict):
        err = body.get("error", body)
        message = err.get("message", message) if isinstance(err, dict) else str(err)
    print(f"error: the server answered HTTP {code}: {message}", file=sys.stderr)
    sys.exit(1)
if not isinstance(body, dict) or not body.get("choices"):
    print(f"error: HTTP 200 but not a chat completion: {raw[:500]}", file=sys.stderr)
    sys.exit(1)
if as_json:
    print(json.dumps(body, indent=2))
    sys.exit(0)
choice = body["choices"][0]
message = choice.get("message") or {}
reasoning = message.get("reasoning_content") or message.get("reasoning")
if reasoning:
    print(f"[reasoning]\n{reasoning}\n[answer]")
print(message.get("content") or "")
usage = body.get("usage") or {}
print(f"tokens: prompt={usage.get('prompt_tokens', '?')} completion={usage.get('completion_tokens', '?')} "
      f"total={usage.get('total_tokens', '?')} finish_reason={choice.get('finish_reason')}")
PY
