#!/usr/bin/env bash
# Issue 14, point 2: noise-conditional energy models (both forms) trained by DSM sample the ring
# as well as the score model of the same size and steps. Sliced W2 to 10,000 fresh ring points
# (mean over 5 truth draws) from `eval` with three samplers: heun (the probability-flow ODE,
# 100 steps), pc (200) and ald (1,000); one training seed per row unless SEEDS is set.
# Usage: docs/energy_sampling.sh OUT [STEPS]
set -euo pipefail
OUT=${1:?out folder}; STEPS=${2:-3000}; SEEDS=${SEEDS:-0}
S=${SCOREGEN:-$(dirname "$0")/../target/release/scoregen}
mkdir -p "$OUT"
printf 'param\tseed\theun\tpc\tald\ttruth_floor\tsteps/s\n' > "$OUT/table.tsv"
for seed in $SEEDS; do
for p in score norm dae; do
  dir=$OUT/$p-$seed; mkdir -p "$dir"
  if [ $p = score ]; then model='param = "score"'; else model=$(printf 'param = "energy"\nenergy = "%s"' $p); fi
  cat > "$dir/config.toml" <<CFG
[data]
source = "toy"
name = "ring8"
[model]
hidden = [128, 128, 128]
input_var = 8.0
$model
[process]
kind = "ve"
sigma_min = 0.01
sigma_max = 10.0
[train]
steps = $STEPS
batch = 512
lr = 2e-3
warmup = 100
cosine = true
lr_min = 1e-5
ema = 0.999
seed = $seed
log_every = 100
checkpoint_every = 0
[sample]
sampler = "heun"
steps = 100
n = 10000
batch = 10000
CFG
  log=$("$S" train --config "$dir/config.toml" --out "$dir/run" --overwrite --no-samples 2>&1 | tr '\r' '\n' | tail -1)
  sps=$(echo "$log" | sed -n 's/.* \([0-9.]*\) steps\/s.*/\1/p')
  get() { echo "$1" | python3 -c "import sys,json; d={j['eval']:j['value'] for j in map(json.loads,sys.stdin)}; print('%.4f' % d['$2'])"; }
  row=()
  for smp in "heun --steps 100" "pc --steps 200" "ald --steps 1000"; do
    ev=$("$S" eval --checkpoint "$dir/run/checkpoint.safetensors" --nll-n 0 --sampler $smp --json)
    row+=("$(get "$ev" sliced_w2)")
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' $p $seed "${row[@]}" "$(get "$ev" sliced_w2_truth_vs_truth)" "$sps" | tee -a "$OUT/table.tsv"
done
done
