#!/usr/bin/env bash
# Training throughput on one machine: 1 process x 2 threads against 2 MPI ranks x 1 thread
# (docs/scaling.md). Each round runs the two back to back (which goes first alternates), so that
# a change in the machine's load falls on both sides of the round's ratio; the median ratio over
# the rounds is the figure to quote.
#
#   scripts/bench_scaling.sh [DATA_DIR] [CONFIG]
#   env: PAYLESS (default build/release/payless), ROUNDS (3), UPDATES (40), LOG (10)
#
# DATA_DIR is a prepared folder (payless prepare; default runs/es-en/data, prepared here if
# missing). Tokens/s is the mean of rank 0's logged windows after the first (start-up excluded),
# in target tokens over all ranks. Needs mpirun (openmpi-bin) and a payless built with MPI.
set -euo pipefail
cd "$(dirname "$0")/.."
payless=${PAYLESS:-build/release/payless}
data=${1:-runs/es-en/data}
config=${2:-configs/mt_dynamic_small.json}
rounds=${ROUNDS:-3}
updates=${UPDATES:-40}
log=${LOG:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

[ -f "$data/prepare.json" ] || "$payless" prepare --task translation --out "$data"

export OMP_WAIT_POLICY=PASSIVE
common=(train --config "$config" --data "$data" --set train.max_update="$updates"
        --set train.time_budget_minutes=0 --set train.log_interval="$log"
        --set train.validate_interval_updates=0 --set train.save_interval_updates=0)

# Mean tokens/s (and comm share, if logged) of the windows after the first.
rate() {
  python3 - "$1" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"type":"train"' in l][1:]
tps = sum(r["tokens_per_s"] for r in rows) / len(rows)
comm = [r["comm_fraction"] for r in rows if "comm_fraction" in r]
print(f"{tps:.0f}" + (f" {100 * sum(comm) / len(comm):.1f}" if comm else " -"))
EOF
}

one() {  # 1 process x 2 threads
  "$payless" "${common[@]}" --save-dir "$work/one$1" --threads 2 >/dev/null
  rate "$work/one$1/train.jsonl"
}
two() {  # 2 ranks x 1 thread
  mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_WAIT_POLICY -np 2 \
    "$payless" "${common[@]}" --save-dir "$work/two$1" --threads 1 >/dev/null
  rate "$work/two$1/train.jsonl"
}

echo "config $config, $updates updates, data $data, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "round | 1x2 tok/s | 2x1 tok/s | 2x1 comm % | ratio 2x1 / 1x2"
ratios=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then a=$(one "$r"); b=$(two "$r"); else b=$(two "$r"); a=$(one "$r"); fi
  read -r a_tps _ <<<"$a"
  read -r b_tps b_comm <<<"$b"
  ratio=$(python3 -c "print(f'{$b_tps / $a_tps:.3f}')")
  ratios+=("$ratio")
  echo "$r | $a_tps | $b_tps | $b_comm | $ratio   (load $(cut -d' ' -f1 /proc/loadavg))"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END {print "median ratio " v[int((NR+1)/2)]}'
