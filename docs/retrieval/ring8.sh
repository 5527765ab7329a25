#!/usr/bin/env bash
# The database swap on the 8-Gaussian ring (README, "Retrieval-augmented diffusion"): builds the
# training database (10,000 ring points, identity encoder, L2), trains one retrieval-conditioned
# model (k = 8) and an unconditional one, builds databases of one mode (0) and of two modes
# (0 and 4) from a fresh draw of the ring with its components, and samples the same weights with
# each database (queries drawn per chain). Writes the JSON lines and one picture into OUT.
# About 3 minutes on a 2-core CPU (lavapipe).
# Usage: docs/retrieval/ring8.sh OUT [scoregen binary]
set -euo pipefail
out=${1:?usage: ring8.sh OUT [scoregen]}
bin=${2:-target/release/scoregen}
here=$(dirname "$0")
mkdir -p "$out"
cp "$here/ring8.toml" "$out/ring8.toml"
# Other databases come from another draw of the ring (seed 1), with the points' modes as labels.
sed 's/^\[train\]/[train]\nseed = 1/' "$here/ring8.toml" > "$out/other.toml"
"$bin" --quiet index build --data "$out/ring8.toml" --encoder identity --metric l2 --n 10000 --out "$out/ring8_db.safetensors"
"$bin" --quiet index build --data "$out/other.toml" --encoder identity --metric l2 --n 10000 --class 0 --out "$out/mode0.safetensors"
"$bin" --quiet index build --data "$out/other.toml" --encoder identity --metric l2 --n 10000 --class 0,4 --out "$out/modes04.safetensors"
[ -f "$out/rdm/checkpoint.safetensors" ] || "$bin" --quiet train --config "$out/ring8.toml" --out "$out/rdm" --no-samples
[ -f "$out/uncond/checkpoint.safetensors" ] || "$bin" --quiet train --config "$here/../guidance/ring8_uncond.toml" --out "$out/uncond" --no-samples
"$bin" --quiet bench retrieval2d --checkpoint "$out/rdm/checkpoint.safetensors" \
  --unconditional "$out/uncond/checkpoint.safetensors" \
  --databases "$out/mode0.safetensors,$out/modes04.safetensors,$out/ring8_db.safetensors" \
  --n 4000 --out "$out" --json | tee "$out/retrieval2d.jsonl"
