#!/usr/bin/env bash
# The main job: Spanish -> English translation on the shipped Bible corpus, end to end, on this
# machine's CPU. Installs what is missing, builds payless, prepares the data once (joint BPE,
# joined dictionary), trains a small DynamicConv translator for a few minutes, translates a few
# test verses and reports test BLEU (sacreBLEU-compatible). Re-running reuses the build and the
# prepared data and trains afresh.
#
# The default (configs/mt_quick.json) is the d=128 model with small batches and a high learning
# rate: the most progress in five minutes. The longer recipe is the d=256 model of the
# architecture comparison (docs/results.md):
#   CONFIG=configs/mt_dynamic_small.json MINUTES=20 bash scripts/main_job.sh
#   ARCH=mt_transformer_mini bash scripts/main_job.sh     # another block, same recipe
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${MINUTES:-5}
config=${CONFIG:-configs/mt_quick.json}
threads=${THREADS:-$(nproc)}
arch_args=()
if [ -n "${ARCH:-}" ]; then arch_args=(--arch "$ARCH"); fi

scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target payless
payless=build/release/payless

$payless prepare --task translation --source-lang es --target-lang en --out runs/bible-es-en/data

run=runs/bible-es-en/$(basename "$config" .json)${ARCH:+-$ARCH}
rm -rf "$run"
$payless train --config "$config" "${arch_args[@]}" --data runs/bible-es-en/data \
  --save-dir "$run" --threads "$threads" --set train.time_budget_minutes="$minutes"

echo "== a few test verses (Spanish -> English)"
gzip -dc data/bible-es-en/test.es.gz | awk 'NR <= 5' > "$run/sample.es"  # awk reads to the end: no SIGPIPE
$payless translate --checkpoint "$run/checkpoint_best.safetensors" --data runs/bible-es-en/data \
  --input "$run/sample.es" --beam 4 --threads "$threads" | paste -d '\n' "$run/sample.es" - | sed 's/^/  /'
# The first 300 test verses keep this step to a few minutes; TEST_SENTENCES=0 scores all 1,177.
echo "== test BLEU (beam 4, first ${TEST_SENTENCES:-300} verses)"
$payless generate --checkpoint "$run/checkpoint_best.safetensors" --data runs/bible-es-en/data \
  --split test --beam 4 --threads "$threads" --show 0 --max-sentences "${TEST_SENTENCES:-300}"
$payless plot "$run/train.jsonl" --out "$run/curves.svg"
echo "training curves: $run/curves.svg"
