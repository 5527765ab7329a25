#!/usr/bin/env bash
# Du et al.'s 2-D composition benchmark (README "Du et al.'s 2-D benchmark"): train the six
# models of each seed in both parameterisations (score, energy) from docs/du2d/base.toml, then
# `scoregen bench du2d` samples product, mixture and negation with every sampler row, one seed at
# a time (JSON lines appended to OUT/table.jsonl), and prints the table (medians and ranges over
# the seeds). Rerunning resumes: training picks up from the last checkpoint, seeds with lines
# in OUT/table.jsonl are not sampled again.
#   docs/du2d/table.sh OUT [STEPS]        SEEDS="0 1" by default
set -euo pipefail
out=${1:?usage: docs/du2d/table.sh OUT [STEPS]}
steps=${2:-1500}
here=$(cd "$(dirname "$0")" && pwd)
bin=${SCOREGEN:-$here/../../target/release/scoregen}
seeds=${SEEDS:-0 1}
for seed in $seeds; do
  for ds in du-ring du-bar du-bar-left du-bar-right du-box-outer du-box-inner; do
    for param in score energy; do
      run=$out/$seed/$ds-$param
      mkdir -p "$run"
      sed -e "s/^name = .*/name = \"$ds\"/" -e "s/^param = .*/param = \"$param\"/" \
          -e "s/^seed = .*/seed = $seed/" -e "s/^steps = 1500/steps = $steps/" "$here/base.toml" > "$run/config.toml"
      "$bin" --quiet train --config "$run/config.toml" --out "$run" --resume --no-samples
    done
  done
done
touch "$out/table.jsonl"
for seed in $seeds; do
  grep -q "\"seed\":$seed," "$out/table.jsonl" && continue
  "$bin" bench du2d --models "$out" --seeds "$seed" --json > "$out/table.$seed.part"
  cat "$out/table.$seed.part" >> "$out/table.jsonl" && rm "$out/table.$seed.part"
done
"$bin" bench du2d --models "$out" --table "$out/table.jsonl"
