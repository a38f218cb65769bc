#!/usr/bin/python3
"""numpy peer for bench/bench_exact: the same exact Lorentz k-NN.

Per base chunk: float32 GEMM, the direct key c (q0 x0 - p) - 1 in float64,
argpartition keeping 2k per query; then the survivors are re-ranked in
float64 with the cancellation-free key (u + c W) / (x0 y0 + p + 1/c) and
sorted by (key, index).

Usage: bench_exact_numpy.py DIR K C
Reads DIR/base.npy and DIR/queries.npy, writes DIR/numpy_ids.npy (row
indices, nearest first) and DIR/numpy_qps.txt.
"""
import os
import sys
import time

import numpy as np

CHUNK = 16384


def corename():
    try:
        from threadpoolctl import threadpool_info
        for lib in threadpool_info():
            if lib.get("internal_api") == "openblas":
                return "%s (%s threads)" % (lib.get("architecture"),
                                            lib.get("num_threads"))
    except ImportError:
        pass
    return "unknown (threadpoolctl missing)"


def time_component(sq, c):
    return np.sqrt(1.0 / c + sq)


def stable_key(q, x, c):
    """q: (n, D), x: (n, m, D) -> (n, m) keys in float64."""
    q = q.astype(np.float64)[:, None, :]
    x = x.astype(np.float64)
    qq = np.sum(q * q, axis=-1)
    xx = np.sum(x * x, axis=-1)
    p = np.sum(q * x, axis=-1)
    u = np.sum((q - x) ** 2, axis=-1)
    x0y0 = time_component(qq, c) * time_component(xx, c)
    wedge = np.maximum(qq * xx - p * p, 0.0)
    direct = c * (x0y0 - p) - 1.0
    stable = (u + c * wedge) / (x0y0 + p + 1.0 / c)
    return np.where(p < -0.5 * (x0y0 + 1.0 / c), direct, stable)


def search(base, queries, k, c):
    nq = queries.shape[0]
    q0 = time_component(np.sum(queries.astype(np.float64) ** 2, axis=1), c)
    keep = min(2 * k, base.shape[0])
    cand = []
    for start in range(0, base.shape[0], CHUNK):
        b = base[start:start + CHUNK]
        x0 = time_component(np.sum(b.astype(np.float64) ** 2, axis=1), c)
        p = queries @ b.T
        key = c * (np.outer(q0, x0) - p) - 1.0
        kk = min(keep, b.shape[0])
        idx = np.argpartition(key, kk - 1, axis=1)[:, :kk]
        cand.append(idx + start)
    cand = np.concatenate(cand, axis=1)
    keys = np.empty(cand.shape)
    for s in range(0, nq, 64):
        keys[s:s + 64] = stable_key(queries[s:s + 64], base[cand[s:s + 64]], c)
    order = np.lexsort((cand, keys), axis=1)[:, :k]
    return np.take_along_axis(cand, order, axis=1)


def main():
    d, k, c = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    base = np.load(os.path.join(d, "base.npy"))
    queries = np.load(os.path.join(d, "queries.npy"))
    _ = queries[:2] @ base[:64].T  # load and warm OpenBLAS
    print("numpy %s, OpenBLAS core: %s" % (np.__version__, corename()))
    t = time.perf_counter()
    ids = search(base, queries, k, c)
    dt = time.perf_counter() - t
    qps = queries.shape[0] / dt
    print("numpy: %d queries x %d vectors, k=%d: %.3f s, %.1f queries/s"
          % (queries.shape[0], base.shape[0], k, dt, qps))
    np.save(os.path.join(d, "numpy_ids.npy"), ids.astype(np.int64))
    with open(os.path.join(d, "numpy_qps.txt"), "w") as f:
        f.write("%r\n" % qps)


if __name__ == "__main__":
    main()
