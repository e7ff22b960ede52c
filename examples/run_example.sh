#!/usr/bin/env bash
# Migrate the bundled example model (nova_lite) from examples/upstream into a copy of
# examples/plugin, then validate the result against the pinned vLLM 0.13.0 API index.
#
# usage: bash examples/run_example.sh [WORK_DIR]
#   WORK_DIR  where the plugin copy is written (default: ./.mmf-work/example-plugin).
#             An existing WORK_DIR is replaced only if this script created it.
#   MMF_UPSTREAM=<vLLM checkout, site-packages or wheel>  also plans the skill's headline model,
#             qwen3_5 (Qwen3.5-MoE, multimodal), from that upstream into the same plugin copy: what
#             apply would write and fix, and what it leaves for you (a few minutes; SKILL.md Example 2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
work="${1:-$PWD/.mmf-work/example-plugin}"
marker=".model-migrate-flagos-example"
py="${PYTHON:-python3}"

step() { printf '\n==> %s\n' "$*"; }

if [ -e "$work" ]; then
  if [ ! -f "$work/$marker" ]; then
    echo "error: $work exists and was not created by this script; pass another WORK_DIR" >&2
    exit 2
  fi
  rm -rf -- "$work"
fi
mkdir -p "$(dirname "$work")"
cp -R "$here/plugin" "$work"
touch "$work/$marker"

step "copied the example plugin tree to $work"
step "resolve: placeholders of nova_lite from the example upstream tree"
"$py" "$root/scripts/migrate_model.py" resolve nova_lite --upstream "$here/upstream" --plugin "$work"
step "plan: what the migration will fix and what it leaves"
"$py" "$root/scripts/migrate_model.py" plan nova_lite --upstream "$here/upstream" --plugin "$work"
step "apply: copy, patch, register (files written under $work/vllm_fl)"
"$py" "$root/scripts/migrate_model.py" apply nova_lite --upstream "$here/upstream" --plugin "$work"
step "validate: every model the plugin registers, against the vLLM 0.13.0 index"
"$py" "$root/scripts/validate_migration.py" "$work" --all
if [ -n "${MMF_UPSTREAM:-}" ]; then
  step "plan: qwen3_5 (Qwen3_5MoeForConditionalGeneration) from $MMF_UPSTREAM, into the same plugin copy"
  set +e
  "$py" "$root/scripts/migrate_model.py" plan qwen3_5 --upstream "$MMF_UPSTREAM" --plugin "$work" \
    --arch Qwen3_5MoeForConditionalGeneration
  rc=$?
  set -e
  # 1 = findings left for you (expected: see SKILL.md Example 2); 2 = could not run
  [ "$rc" -le 1 ] || exit "$rc"
else
  step "qwen3_5: set MMF_UPSTREAM to a vLLM checkout, site-packages or wheel to plan it as well"
fi
step "done: the migrated plugin is in $work (see git diff --no-index $here/plugin $work)"
