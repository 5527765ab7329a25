#!/usr/bin/env bash
# The guidance trade-off on the 8-Gaussian ring (README, "Conditioning and guidance"):
# trains a class-conditional model (classes = the ring's modes), an unconditional one and a
# noise-conditional classifier, then sweeps the classifier-free weight w and the classifier
# scale over 0, 1, 3, 8 (chains cycling through the classes) and writes the table's JSON lines
# and one picture per kind of guidance into OUT. About 3 minutes on a 2-core CPU (lavapipe).
# Usage: docs/guidance/ring8.sh OUT [scoregen binary]
set -euo pipefail
out=${1:?usage: ring8.sh OUT [scoregen]}
bin=${2:-target/release/scoregen}
here=$(dirname "$0")
mkdir -p "$out"
for m in cond uncond classifier; do
  [ -f "$out/$m/checkpoint.safetensors" ] || "$bin" --quiet train --config "$here/ring8_$m.toml" --out "$out/$m" --no-samples
done
"$bin" --quiet bench guide2d --conditional "$out/cond/checkpoint.safetensors" \
  --unconditional "$out/uncond/checkpoint.safetensors" --classifier "$out/classifier/checkpoint.safetensors" \
  --weights 0,1,3,8 --n 4000 --out "$out" --json | tee "$out/guide2d.jsonl"
