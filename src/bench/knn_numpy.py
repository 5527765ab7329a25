#!/usr/bin/env python3
"""NumPy/OpenBLAS brute-force kNN, the peer of `scoregen bench knn` (same sizes, same sitting):
scores = Q @ X.T, then argpartition for the k largest per query and a sort of those k; the time
of one search of all queries, best of 3 after a warm-up. Prints JSON lines like the bench.
    python3 src/bench/knn_numpy.py [--n 1000000] [--dims 64,512] [--queries 256] [--k 10]"""
import argparse, json, time
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=1_000_000)
p.add_argument("--dims", default="64,512")
p.add_argument("--queries", type=int, default=256)
p.add_argument("--k", type=int, default=10)
a = p.parse_args()
rng = np.random.default_rng(0)
for d in map(int, a.dims.split(",")):
    x = rng.uniform(-1, 1, size=(a.n, d)).astype(np.float32)
    q = rng.uniform(-1, 1, size=(a.queries, d)).astype(np.float32)

    def search():
        s = q @ x.T
        part = np.argpartition(-s, a.k, axis=1)[:, : a.k]
        top = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1)

    search()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        search()
        best = min(best, time.perf_counter() - t0)
    fields = {"bench": "knn", "n": a.n, "d": d, "queries": a.queries, "k": a.k, "impl": "numpy " + np.__version__}
    print(json.dumps({**fields, "value": best * 1e3, "unit": "ms"}))
    print(json.dumps({**fields, "value": 2 * a.n * d * a.queries / best / 1e9, "unit": "GFLOP/s"}))
