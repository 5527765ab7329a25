#!/usr/bin/env bash
# The database swap on MNIST (README, "Retrieval-augmented diffusion"): with the model of
# assets/configs/mnist_rdm.toml trained into RUN and its database DB, builds one database per
# digit class and one of Fashion-MNIST (all embedded by DB's PCA: --encoder db:DB), draws N
# samples with each (queries drawn per chain), judges the digit databases' samples with the
# noise-free classifier CLF (assets/configs/mnist_classifier.toml), and writes the table's JSON
# lines and a picture (one row of 10 samples per database) into OUT.
# Usage: docs/retrieval/mnist.sh RUN DB CLF OUT [N] [scoregen binary]
set -euo pipefail
run=${1:?usage: mnist.sh RUN DB CLF OUT [N] [scoregen]}; db=${2:?}; clf=${3:?}; out=${4:?}
n=${5:-200}
bin=${6:-target/release/scoregen}
here=$(dirname "$0")
mkdir -p "$out"
ck="$run/checkpoint.safetensors"
for c in 0 1 2 3 4 5 6 7 8 9; do
  [ -f "$out/digit$c.safetensors" ] || "$bin" --quiet index build --data "$here/../../assets/configs/mnist_rdm.toml" \
    --class $c --encoder "db:$db" --out "$out/digit$c.safetensors"
done
[ -f "$out/fashion.safetensors" ] || "$bin" --quiet index build --data "$here/fashion.toml" --encoder "db:$db" \
  --out "$out/fashion.safetensors"
: > "$out/mnist_rdm.jsonl"
for c in 0 1 2 3 4 5 6 7 8 9; do
  "$bin" --quiet sample --checkpoint "$ck" --database "$out/digit$c.safetensors" --n "$n" --out "$out/digit$c.npy"
  python3 -c "import numpy as np; np.save('$out/digit$c.labels.npy', np.full($n, $c, dtype=np.int64))"
  acc=$("$bin" --quiet classify --classifier "$clf" --samples "$out/digit$c.npy" --json | python3 -c \
    "import json,sys; print(json.loads(sys.stdin.readlines()[-1])['as_class'])")
  echo "{\"bench\": \"mnist_rdm\", \"database\": \"digit $c\", \"n\": $n, \"classified_as_its_digit\": $acc}" | tee -a "$out/mnist_rdm.jsonl"
done
"$bin" --quiet sample --checkpoint "$ck" --database "$out/fashion.safetensors" --n "$n" --out "$out/fashion.npy"
"$bin" --quiet sample --checkpoint "$ck" --n "$n" --out "$out/training_db.npy"
python3 "$here/grid.py" "$out/mnist_rdm_grid.png" "$out"/digit{0,1,2,3,4,5,6,7,8,9}.npy "$out/training_db.npy" "$out/fashion.npy"
echo "picture: $out/mnist_rdm_grid.png (rows: the databases of digits 0-9, the training database, Fashion-MNIST)"
