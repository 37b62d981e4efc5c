#!/usr/bin/env bash
# The architecture comparison of docs/results.md, reproducible on any machine: trains the
# Transformer, LightConv and DynamicConv variants of one task for the same wall-clock budget, then
# measures each. Run it on an otherwise idle machine: the budget is wall time, so anything else
# running steals updates from whichever model it overlaps.
#
#   bash scripts/compare_archs.sh mt 20    # Es->En: test BLEU (beam 4), decoding sentences/s
#   bash scripts/compare_archs.sh lm 30    # English LM: test perplexity
#
# Results go to runs/compare-<task>/<arch>/ (training log, checkpoints, measure.txt) and a summary
# table is printed at the end. THREADS (default: all cores) sets the training and decoding threads.
set -euo pipefail
cd "$(dirname "$0")/.."
task=${1:?usage: compare_archs.sh lm|mt MINUTES}
minutes=${2:?usage: compare_archs.sh lm|mt MINUTES}
threads=${THREADS:-$(nproc)}
case "$task" in
  mt) archs="mt_transformer_small mt_lightweight_small mt_dynamic_small"
      config=configs/mt_dynamic_small.json data=runs/bible-es-en/data
      prepare=(--task translation --source-lang es --target-lang en) ;;
  lm) archs="lm_transformer_small lm_lightweight_small lm_dynamic_small"
      config=configs/lm_dynamic_small.json data=runs/bible-lm/data
      prepare=(--task lm) ;;
  *) echo "compare_archs.sh: task must be lm or mt, not '$task'" >&2; exit 2 ;;
esac

scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target payless
payless=build/release/payless
$payless prepare "${prepare[@]}" --out "$data"

out=runs/compare-$task
mkdir -p "$out"
for arch in $archs; do
  run=$out/$arch
  rm -rf "$run" && mkdir -p "$run"
  echo "== $arch: training for $minutes minutes"
  $payless train --config "$config" --arch "$arch" --data "$data" --save-dir "$run" \
    --threads "$threads" --set train.time_budget_minutes="$minutes" | tee "$run/train.txt"
  best=$run/checkpoint_best.safetensors
  if [ "$task" = lm ]; then
    $payless eval --checkpoint "$best" --data "$data" --split test --tokens-per-sample 64 \
      --threads "$threads" | tee "$run/measure.txt"
  else
    # Quality: the whole test set with beam 4. Speed: the first 200 test verses for each decoder
    # setting (greedy and beam 4, one sentence at a time and 32 together).
    $payless generate --checkpoint "$best" --data "$data" --split test --beam 4 --show 0 \
      --threads "$threads" | tee "$run/measure.txt"
    for beam in 1 4; do
      for batch in 1 32; do
        $payless generate --checkpoint "$best" --data "$data" --split test --beam "$beam" \
          --batch-size "$batch" --max-sentences 200 --show 0 --threads "$threads" \
          | grep 'sentences/s' | sed "s/^/beam $beam batch $batch: /" | tee -a "$run/measure.txt"
      done
    done
  fi
done

echo "== summary ($task, $minutes minutes each, $threads threads)"
for arch in $archs; do
  echo "-- $arch: $(grep -m1 -o '[0-9]* parameters' "$out/$arch/train.txt" || true)"
  cat "$out/$arch/measure.txt"
done
