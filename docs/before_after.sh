#!/usr/bin/env bash
# Before/after in one sitting: OLD = an earlier build (e.g. e13c0c9, before issue 13), NEW = this tree.
set -u
export XDG_RUNTIME_DIR=/tmp NODEVICE_SELECT=1
OLD=${OLD:?path to the earlier version's scoregen binary}
NEW=${NEW:-target/release/scoregen}
B=/tmp/b; rm -rf $B; mkdir -p $B
cd "$(dirname "$0")/.."
echo "== quick start: train toy2d (new), whole command"
/usr/bin/time -f "wall %e s" $NEW train --config assets/configs/toy2d.toml --out $B/new_full 2>&1 | tr '\r' '\n' | grep -E "steps/s;|samples|wall" | tail -3
echo "== training bit-identity at 300 steps"
$OLD train --config assets/configs/toy2d.toml --out $B/old300 --steps 300 --no-samples 2>&1 | tr '\r' '\n' | grep "steps/s;" 
$NEW train --config assets/configs/toy2d.toml --out $B/new300 --steps 300 --no-samples 2>&1 | tr '\r' '\n' | grep "steps/s;"
python3 docs/ckcmp.py $B/old300/checkpoint.safetensors $B/new300/checkpoint.safetensors
echo "== eval of the 4000-step model: new, then old (with data_mean_square added)"
$NEW eval --checkpoint $B/new_full/checkpoint.safetensors 2>&1 | grep -v "^$"
python3 docs/add_mean_square.py $B/new_full/checkpoint.safetensors $B/old_copy.safetensors
$OLD eval --checkpoint $B/old_copy.safetensors 2>&1 | grep -v "^$"
echo "== W1 training (bench mlp), old/new interleaved"
for i in 1 2; do
  echo "-- old"; $OLD bench mlp 2>&1 | grep -v "^$"
  echo "-- new"; $NEW bench mlp 2>&1 | grep -v "^$"
done
echo "== W1 ALD (bench sample)"
echo "-- old"; $OLD bench sample 2>&1 | grep -v "^$"
echo "-- new"; $NEW bench sample 2>&1 | grep -v "^$"
echo "== W2 (bench unet)"
echo "-- old"; $OLD bench unet 2>&1 | grep -v "^$"
echo "-- new"; $NEW bench unet 2>&1 | grep -v "^$"
echo "== end $(date)"
