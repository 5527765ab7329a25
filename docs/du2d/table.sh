#!/usr/bin/env bash
# Du et al.'s 2-D composition benchmark (README "Composition and annealed MCMC"): train the six
# models of each seed in both parameterisations (score, energy) from docs/du2d/base.toml, then
# `scoregen bench du2d` samples product, mixture and negation with every sampler row and prints
# the table (medians and spreads over the seeds).
#   docs/du2d/table.sh OUT [STEPS]        SEEDS="0 1" by default
set -euo pipefail
out=${1:?usage: docs/du2d/table.sh OUT [STEPS]}
steps=${2:-1500}
here=$(cd "$(dirname "$0")" && pwd)
bin=${SCOREGEN:-$here/../../target/release/scoregen}
for seed in ${SEEDS:-0 1}; do
  for ds in du-ring du-bar du-bar-left du-bar-right du-box-outer du-box-inner; do
    for param in score energy; do
      run=$out/$seed/$ds-$param
      [ -f "$run/checkpoint.safetensors" ] && continue
      mkdir -p "$run"
      sed -e "s/^name = .*/name = \"$ds\"/" -e "s/^param = .*/param = \"$param\"/" \
          -e "s/^seed = .*/seed = $seed/" -e "s/^steps = 1500/steps = $steps/" "$here/base.toml" > "$run/config.toml"
      "$bin" train --config "$run/config.toml" --out "$run" --overwrite --no-samples 2>&1 | tail -1
    done
  done
done
"$bin" bench du2d --models "$out" --seeds "$(echo ${SEEDS:-0 1} | tr ' ' ,)"
