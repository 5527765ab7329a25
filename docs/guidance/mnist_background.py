"""Background cleanliness of MNIST samples (issue 16): the mean intensity (0-1 scale) of samples
on the pixels where fewer than 1% of the real training digits are non-zero.

    python3 docs/guidance/mnist_background.py SAMPLES.npy [SAMPLES2.npy ...]

Samples are scoregen's .npy output, [N, 1, 28, 28] or [N, 784] in the model's [-1, 1] scale;
intensity = clip((x + 1) / 2, 0, 1). The real test digits are printed first for comparison.
Needs numpy; reads ../shared/data/mnist (or $MNIST_DIR)."""
import gzip
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.environ.get("MNIST_DIR", os.path.join(HERE, "..", "..", "..", "shared", "data", "mnist"))


def idx_images(name):
    with gzip.open(os.path.join(MNIST, name)) as f:
        raw = f.read()
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, h * w) / 255.0


train = idx_images("train-images-idx3-ubyte.gz")
mask = (train > 0).mean(axis=0) < 0.01
test = idx_images("t10k-images-idx3-ubyte.gz")
print(f"{mask.sum()} pixels where < 1% of the {len(train)} training digits are non-zero")
print(f"real test digits: mean intensity there {test[:, mask].mean():.4f}")
for path in sys.argv[1:]:
    x = np.load(path).reshape(-1, 784)
    v = np.clip((x + 1.0) / 2.0, 0.0, 1.0)[:, mask]
    per = v.mean(axis=1)
    print(f"{path}: {len(x)} samples, mean intensity {v.mean():.4f} (per sample: median {np.median(per):.4f}, "
          f"max {per.max():.4f}; pixels above 0.5: {(v > 0.5).mean():.4f})")
