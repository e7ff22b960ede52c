#!/usr/bin/env bash
# Throughput benchmark of a migrated model with dummy weights (Step 9).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$HERE/lib/common.sh"

usage() {
    cat <<EOF
usage: benchmark.sh MODEL [options] [-- EXTRA_VLLM_ARGS...]
       benchmark.sh --summarize RESULT.json [--compare OTHER.json]

Run 'vllm bench throughput' on MODEL with dummy weights, keep vLLM's --output-json result, and
print one summary line: requests/s, total tokens/s, output tokens/s. With --compare OTHER.json
(e.g. the same benchmark run on upstream vLLM) also print this/other ratios.

MODEL is a folder name inside the models folder or an absolute path (the config and tokenizer are
read from it; the weights are not, with --load-format dummy). The benchmark runs offline, so
there is no PORT.

options (environment variable in brackets, default after it):
  --models-dir DIR              [FLAGOS_MODELS_DIR, $FM_DEFAULT_MODELS_DIR]
  --tp N, --tensor-parallel-size N   [FLAGOS_TP, 1]
  --gpus LIST                   sets CUDA_VISIBLE_DEVICES [FLAGOS_GPUS, inherited]
  --load-format FMT             [FLAGOS_BENCH_LOAD_FORMAT, dummy]
  --max-num-seqs N              [FLAGOS_MAX_NUM_SEQS, vLLM's default]
  --gpu-memory-utilization F    [FLAGOS_GPU_MEMORY_UTILIZATION, vLLM's default]
  --max-model-len N             [FLAGOS_MAX_MODEL_LEN, vLLM's default]
  --input-len N                 [FLAGOS_BENCH_INPUT_LEN, 512]
  --output-len N                [FLAGOS_BENCH_OUTPUT_LEN, 128]
  --num-prompts N               [FLAGOS_BENCH_NUM_PROMPTS, 100]
  --output-json FILE            vLLM's result file [FLAGOS_BENCH_OUTPUT, ./benchmark_<model>.json];
                                the run's output goes to FILE without .json + .log and the
                                three-number summary to FILE without .json + .summary.json
  --compare OTHER.json          print ratios against another result (vLLM JSON or .summary.json)
  --summarize FILE              do not run; summarize an existing result
  --trust-remote-code           [FLAGOS_TRUST_REMOTE_CODE=1]
  --vllm CMD                    the vllm executable [FLAGOS_VLLM, vllm]
  --json                        print the summary (and comparison) as JSON
  --dry-run                     print the exact command and environment, run nothing
  -h, --help                    this help

environment: VLLM_FL_PREFER_ENABLED=false and VLLM_USE_DEEP_GEMM=0 are exported unless already set.
exit codes: 0 success, 1 the benchmark failed, 2 could not run (bad input, missing tool or file)
EOF
}

models_dir=${FLAGOS_MODELS_DIR:-$FM_DEFAULT_MODELS_DIR}
tp=${FLAGOS_TP:-1}
gpus=${FLAGOS_GPUS:-}
load_format=${FLAGOS_BENCH_LOAD_FORMAT:-dummy}
max_num_seqs=${FLAGOS_MAX_NUM_SEQS:-}
gpu_mem=${FLAGOS_GPU_MEMORY_UTILIZATION:-}
max_model_len=${FLAGOS_MAX_MODEL_LEN:-}
input_len=${FLAGOS_BENCH_INPUT_LEN:-512}
output_len=${FLAGOS_BENCH_OUTPUT_LEN:-128}
num_prompts=${FLAGOS_BENCH_NUM_PROMPTS:-100}
output_json=${FLAGOS_BENCH_OUTPUT:-}
trust_remote_code=${FLAGOS_TRUST_REMOTE_CODE:-0}
vllm_cmd=${FLAGOS_VLLM:-vllm}
compare=''
summarize=''
json=0
dry_run=0
positional=()
extra=()

while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        --*=*) opt=${1%%=*}; val=${1#*=}; shift; set -- "$opt" "$val" "$@"; continue ;;
        --models-dir) fm_need_value "$1" $#; models_dir=$2; shift 2 ;;
        --tp | --tensor-parallel-size) fm_need_value "$1" $#; tp=$2; shift 2 ;;
        --gpus) fm_need_value "$1" $#; gpus=$2; shift 2 ;;
        --load-format) fm_need_value "$1" $#; load_format=$2; shift 2 ;;
        --max-num-seqs) fm_need_value "$1" $#; max_num_seqs=$2; shift 2 ;;
        --gpu-memory-utilization) fm_need_value "$1" $#; gpu_mem=$2; shift 2 ;;
        --max-model-len) fm_need_value "$1" $#; max_model_len=$2; shift 2 ;;
        --input-len) fm_need_value "$1" $#; input_len=$2; shift 2 ;;
        --output-len) fm_need_value "$1" $#; output_len=$2; shift 2 ;;
        --num-prompts) fm_need_value "$1" $#; num_prompts=$2; shift 2 ;;
        --output-json) fm_need_value "$1" $#; output_json=$2; shift 2 ;;
        --compare) fm_need_value "$1" $#; compare=$2; shift 2 ;;
        --summarize) fm_need_value "$1" $#; summarize=$2; shift 2 ;;
        --trust-remote-code) trust_remote_code=1; shift ;;
        --vllm) fm_need_value "$1" $#; vllm_cmd=$2; shift 2 ;;
        --json) json=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        -*) fm_die "unknown option $1" "see benchmark.sh --help" ;;
        *) positional+=("$1"); shift ;;
    esac
done

# Summarize RESULT (vLLM's JSON + the run's log) and optionally compare with OTHER.
summarize_result() {  # summarize_result RESULT LOG SUMMARY_OUT OTHER
    python3 - "$@" "$json" <<'PY'
import json
import os
import re
import sys

result_path, log_path, summary_out, other_path, as_json = sys.argv[1:6]
THROUGHPUT = re.compile(r"Throughput:\s*([\d.]+)\s*requests/s,\s*([\d.]+)\s*total tokens/s"
                        r"(?:,\s*([\d.]+)\s*output tokens/s)?")
OUTPUT_TOKENS = re.compile(r"Total num output tokens:\s*(\d+)")


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def load(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        fail(f"cannot read benchmark result {path}: {exc}")
    if not isinstance(data, dict):
        fail(f"{path} is not a benchmark result object")
    return data


def sibling(path, suffix):
    return (path[:-5] if path.endswith(".json") else path) + suffix


def output_rate(data, log_text):
    """vLLM's JSON has no output tokens/s: take it from the printed Throughput line."""
    if isinstance(data.get("output_tokens_per_second"), (int, float)):
        return float(data["output_tokens_per_second"])
    match = THROUGHPUT.search(log_text)
    if match and match.group(3):
        return float(match.group(3))
    tokens = OUTPUT_TOKENS.search(log_text)
    if tokens and data.get("elapsed_time"):
        return int(tokens.group(1)) / float(data["elapsed_time"])
    return None


def summary_of(path, log_path=""):
    data = load(path)
    if path.endswith(".summary.json") and "requests_per_second" in data:
        return data
    if not log_path and os.path.exists(sibling(path, ".summary.json")):
        stored = load(sibling(path, ".summary.json"))
        if stored.get("output_tokens_per_second") is not None:
            return stored
    log_path = log_path or sibling(path, ".log")
    log_text = ""
    if os.path.exists(log_path):
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            log_text = handle.read()
    missing = [k for k in ("requests_per_second", "tokens_per_second") if not isinstance(data.get(k), (int, float))]
    if missing:
        fail(f"{path} lacks {', '.join(missing)}; is it the --output-json of 'vllm bench throughput'?")
    return {
        "result": path,
        "requests_per_second": float(data["requests_per_second"]),
        "tokens_per_second": float(data["tokens_per_second"]),
        "output_tokens_per_second": output_rate(data, log_text),
        "num_requests": data.get("num_requests"),
        "elapsed_time": data.get("elapsed_time"),
    }


def fmt(value):
    return "n/a" if value is None else f"{value:.2f}"


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


mine = summary_of(result_path, log_path)
if summary_out:
    with open(summary_out, "w", encoding="utf-8") as handle:
        json.dump(mine, handle, indent=2)
        handle.write("\n")
keys = ("requests_per_second", "tokens_per_second", "output_tokens_per_second")
report = {"summary": mine}
if other_path:
    other = summary_of(other_path)
    report["compare"] = {"other": other, "ratios": {k: ratio(mine[k], other[k]) for k in keys}}
if as_json == "1":
    print(json.dumps(report, indent=2))
    sys.exit(0)
print(f"throughput: {fmt(mine['requests_per_second'])} requests/s, {fmt(mine['tokens_per_second'])} total tokens/s, "
      f"{fmt(mine['output_tokens_per_second'])} output tokens/s ({result_path})")
if other_path:
    r = report["compare"]["ratios"]
    rx = {k: "n/a" if v is None else f"{v:.3f}x" for k, v in r.items()}
    print(f"ratio this/other: requests/s {rx['requests_per_second']}, total tokens/s {rx['tokens_per_second']}, "
          f"output tokens/s {rx['output_tokens_per_second']} (other: {other_path})")
PY
}

if [ -n "$compare" ] && [ ! -f "$compare" ]; then
    fm_die "comparison file $compare does not exist" "pass the --output-json of an earlier benchmark"
fi

if [ -n "$summarize" ]; then
    [ ${#positional[@]} -eq 0 ] || fm_die "--summarize takes no MODEL" "see --help"
    [ -f "$summarize" ] || fm_die "result file $summarize does not exist"
    fm_require python3
    summarize_result "$summarize" "" "" "$compare"
    exit $?
fi

[ ${#positional[@]} -ge 1 ] || fm_die "MODEL is required" "usage: benchmark.sh MODEL [options]; see --help"
[ ${#positional[@]} -eq 1 ] || fm_die "unexpected arguments: ${positional[*]:1}" "the throughput benchmark runs offline and takes no PORT; extra vllm arguments go after --"
model=${positional[0]}

fm_check_uint --tp "$tp"
[ -z "$gpus" ] || fm_check_gpus "$gpus"
[ -z "$max_num_seqs" ] || fm_check_uint --max-num-seqs "$max_num_seqs"
[ -z "$gpu_mem" ] || fm_check_number --gpu-memory-utilization "$gpu_mem"
[ -z "$max_model_len" ] || fm_check_uint --max-model-len "$max_model_len"
fm_check_uint --input-len "$input_len"
fm_check_uint --output-len "$output_len"
fm_check_uint --num-prompts "$num_prompts"
model_path=$(fm_model_path "$model" "$models_dir")
fm_check_model "$model" "$model_path" "$dry_run"
[ -n "$output_json" ] || output_json="./benchmark_$(basename -- "$model").json"
base=${output_json%.json}
log_file="$base.log"
summary_file="$base.summary.json"

cmd=("$vllm_cmd" bench throughput --model "$model_path" --load-format "$load_format"
    --tensor-parallel-size "$tp" --input-len "$input_len" --output-len "$output_len"
    --num-prompts "$num_prompts" --output-json "$output_json")
[ -z "$max_num_seqs" ] || cmd+=(--max-num-seqs "$max_num_seqs")
[ -z "$gpu_mem" ] || cmd+=(--gpu-memory-utilization "$gpu_mem")
[ -z "$max_model_len" ] || cmd+=(--max-model-len "$max_model_len")
[ "$trust_remote_code" != 1 ] || cmd+=(--trust-remote-code)
cmd+=("${extra[@]}")

fm_export_vllm_env
[ -z "$gpus" ] || export CUDA_VISIBLE_DEVICES="$gpus"

if [ "$dry_run" = 1 ]; then
    fm_print_command "${cmd[@]}"
    exit 0
fi

fm_require python3 "$vllm_cmd"
out_dir=$(dirname -- "$output_json")
mkdir -p -- "$out_dir" || fm_die "cannot create $out_dir"
rm -f -- "$output_json"
fm_info "running: $(printf '%q ' "${cmd[@]}")"
fm_info "output of the run: $log_file"
rc=0
"${cmd[@]}" 2>&1 | tee "$log_file" >&2 || rc=$?
if [ "$rc" != 0 ]; then
    fm_die "vllm bench throughput failed (status $rc)" "see the output above or $log_file" 1
fi
[ -s "$output_json" ] || fm_die "vllm bench throughput wrote no result to $output_json" "see $log_file" 1
summarize_result "$output_json" "$log_file" "$summary_file" "$compare"
