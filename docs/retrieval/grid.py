"""One row of 10 images per .npy of samples [n, 1, 28, 28] in [-1, 1], written as a grayscale
PNG with NumPy and zlib only. Usage: grid.py OUT.png A.npy B.npy ..."""
import struct
import sys
import zlib

import numpy as np

out, files = sys.argv[1], sys.argv[2:]
rows = []
for f in files:
    x = np.load(f)[:10].reshape(-1, 28, 28)
    x = ((np.clip(x, -1, 1) + 1) * 127.5).round().astype(np.uint8)
    pad = np.full((28, 2), 255, np.uint8)
    rows.append(np.concatenate([np.concatenate([im, pad], 1) for im in x], 1))
    rows.append(np.full((2, rows[-1].shape[1]), 255, np.uint8))
img = np.concatenate(rows, 0)
h, w = img.shape
raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
open(out, "wb").write(png)
