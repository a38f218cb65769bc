#!/usr/bin/python3
"""FAISS IndexFlatIP on the time-flipped Lorentz form: the exact float32
baseline for the recall bench.  (x, x0) . (q, -q0) = <x, q>_L, largest first.

usage: recall_faiss.py DATADIR OUT.csv
"""
import sys
import time

import numpy as np

try:
    import faiss
except ImportError:
    sys.exit(0)


def main():
    d = sys.argv[1]
    n, dim, nq, c = open(d + "/info.txt").read().split()
    n, dim, nq, c = int(n), int(dim), int(nq), float(c)
    base = np.fromfile(d + "/base.f32", dtype=np.float32).reshape(n, dim)
    query = np.fromfile(d + "/query.f32", dtype=np.float32).reshape(nq, dim)
    gt = np.fromfile(d + "/gt.i32", dtype=np.int32).reshape(nq, 100)

    def lift(x, sign):
        t = np.sqrt(1.0 / c + np.sum(x.astype(np.float64) ** 2, axis=1))
        return np.hstack([x, (sign * t)[:, None].astype(np.float32)])

    faiss.omp_set_num_threads(1)
    t0 = time.time()
    index = faiss.IndexFlatIP(dim + 1)
    index.add(lift(base, 1.0))
    build = time.time() - t0
    q = lift(query, -1.0)
    t0 = time.time()
    _, ids = index.search(q, 10)
    qps = nq / (time.time() - t0)
    r1 = np.mean(ids[:, 0] == gt[:, 0])
    r10 = np.mean([len(set(ids[i]) & set(gt[i, :10])) / 10.0 for i in range(nq)])
    with open(sys.argv[2], "a") as f:
        f.write("faiss-flatip,0,1,%.4f,%.4f,,%.1f,,%.3f,,\n" % (r1, r10, qps, build))
    print("faiss IndexFlatIP (flipped time) recall@1 %.4f @10 %.4f QPS %.1f"
          % (r1, r10, qps))


main()
