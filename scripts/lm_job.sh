#!/usr/bin/env bash
# Language modelling on the shipped English Bible corpus, end to end, on this machine's CPU:
# installs what is missing, builds payless, prepares the data (once), trains a small DynamicConv
# language model for a few minutes, reports test perplexity, writes samples and the training
# curves (SVG). Re-running reuses the build and the prepared data and starts a fresh run.
#
#   MINUTES=30 bash scripts/lm_job.sh     # a longer run
#   ARCH=lm_transformer_small bash scripts/lm_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${MINUTES:-4}
arch=${ARCH:-lm_dynamic_small}
threads=${THREADS:-$(nproc)}

scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target payless
payless=build/release/payless

$payless prepare --task lm --out runs/bible-lm/data

run=runs/bible-lm/$arch
rm -rf "$run"
$payless train --config configs/lm_dynamic_small.json --arch "$arch" --data runs/bible-lm/data \
  --save-dir "$run" --threads "$threads" --set train.time_budget_minutes="$minutes"

echo "== test perplexity"
$payless eval --checkpoint "$run/checkpoint_best.safetensors" --data runs/bible-lm/data --split test \
  --tokens-per-sample 64 --threads "$threads"
echo "== samples"
$payless sample --checkpoint "$run/checkpoint_best.safetensors" --data runs/bible-lm/data \
  --prompt "In the beginning" --num 3 --max-tokens 40
$payless plot "$run/train.jsonl" --out "$run/curves.svg"
echo "training curves: $run/curves.svg"
