#!/usr/bin/env bash
# Issue 14's acceptance table: every objective x {score, energy} on two 2-D mixtures at one fixed
# noise level, equal steps; the Fisher divergence to the exact noised mixture from `eval`.
# Usage: docs/objectives_table.sh OUT [STEPS]   (needs target/release/scoregen)
set -euo pipefail
OUT=${1:?out folder}; STEPS=${2:-3000}; SIGMA=${SIGMA:-0.1}
S=${SCOREGEN:-$(dirname "$0")/../target/release/scoregen}
mkdir -p "$OUT"
row() { # data ref objective param extra...
  local data=$1 ref=$2 obj=$3 param=$4; shift 4
  local name=$data-$obj-$param dir=$OUT/$data-$obj-$param
  mkdir -p "$dir"
  cat > "$dir/config.toml" <<CFG
[data]
source = "toy"
name = "$data"
[model]
hidden = [128, 128]
activation = "softplus"
param = "$param"
[process]
kind = "fixed"
sigma_min = $SIGMA
[train]
steps = $STEPS
batch = 128
lr = 1e-3
objective = "$obj"
log_every = 100
checkpoint_every = 0
$(printf '%s\n' "$@")
[sample]
sampler = "langevin"
CFG
  local log; log=$("$S" train --config "$dir/config.toml" --out "$dir/run" --overwrite --no-samples 2>&1 | tr '\r' '\n' | tail -1)
  local sps; sps=$(echo "$log" | sed -n 's/.* \([0-9.]*\) steps\/s.*/\1/p')
  local ev; ev=$("$S" eval --checkpoint "$dir/run/checkpoint.safetensors" --n 0 --nll-n 2000 --levels "$SIGMA" --fisher-n 20000 --json)
  local get; get() { echo "$ev" | python3 -c "import sys,json; d={j['eval']:j['value'] for j in map(json.loads,sys.stdin)}; print('%.4g' % d['$1'] if '$1' in d else '-')"; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$data" "$obj" "$param" "$(get fisher@$SIGMA)" "$(get fisher@${SIGMA}_se)" "$(get fisher@${SIGMA}_relative)" "$sps" "$(get energy_corr@$SIGMA)" "$(get log_z)/$(get log_z_quadrature)" | tee -a "$OUT/table.tsv"
}
printf 'data\tobjective\tparam\tfisher\tse\trelative\tsteps/s\tenergy_corr\tlog_z/quadrature\n' > "$OUT/table.tsv"
for data in ncsn ring8; do
  for p in score energy; do
    for obj in dsm ssm ssm-vr esm; do row $data gmm:$data $obj $p; done
  done
  row $data gmm:$data nce energy "nce_ratio = 4"
done
