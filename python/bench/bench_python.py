#!/usr/bin/python3
"""The Python package's speed against the C library, in one run, A/B
interleaved (the machine is shared: every ratio compares runs made side by
side, best of rounds).

1. search: 1,000 queries as one (q, dim) array; the C API alone
   (Database._search_c: hydb_search_batch + hydb_results_free_batch, no
   Python objects) vs Database.search (the same call plus the result
   arrays and key lists); then 2 Python threads each searching the whole
   batch vs one.
2. add: db.add of the (n, dim) array into a new database vs `hydb import`
   of the same .npy into a new database.
3. geometry: hydb.lorentz.dist on pairs vs numpy's implementation of the
   same stable formula, key = (u + c W) / (x0 y0 + p + 1/c), both float64
   from the same float32 points; and the largest relative difference.

usage: bench_python.py [--n 100000] [--dim 768] [--queries 1000] [--ef 64]
                       [--pairs 1000000] [--pair-dim 64] [--rounds 3]
                       [--hydb build/hydb] [--tmp DIR]
"""
import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time

import numpy as np

import hydb


def hyperboloid_points(n, dim, seed):
    """Directions uniform on the sphere, geodesic radii spread over 0.3..3."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 20000):
        e = min(n, s + 20000)
        d = rng.standard_normal((e - s, dim))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        # clustered a little, like embeddings: 100 centres
        r = rng.uniform(0.3, 3.0, e - s)
        out[s:e] = (d * np.sinh(r)[:, None]).astype(np.float32)
    return out


def best(f, rounds):
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def numpy_dist(x, y, c=1.0):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    xx = np.einsum("ij,ij->i", x, x)
    yy = np.einsum("ij,ij->i", y, y)
    p = np.einsum("ij,ij->i", x, y)
    d = x - y
    u = np.einsum("ij,ij->i", d, d)
    w = np.maximum(xx * yy - p * p, 0)
    x0y0 = np.sqrt((1 / c + xx) * (1 / c + yy))
    key = (u + c * w) / (x0y0 + p + 1 / c)
    return np.log1p(key + np.sqrt(key * (key + 2))) / np.sqrt(c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=1000000)
    ap.add_argument("--pair-dim", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--add-rounds", type=int, default=1)
    ap.add_argument("--hydb", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "hydb"))
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--skip", default="", help="comma list of search,add,geo to skip")
    ap.add_argument("--db", default=None,
                    help="with --skip add: search this database, filling it with the bench's "
                         "points first if it does not exist; it is kept (the 100,000-point fill "
                         "takes minutes, the search rounds seconds)")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    tmp = tempfile.mkdtemp(prefix="hydb-bench-py-", dir=a.tmp)
    print("hydb %s, library %s; n=%d dim=%d queries=%d ef=%d k=%d" % (
        hydb.__version__, hydb.library_version, a.n, a.dim, a.queries, a.ef, a.k))
    try:
        x = hyperboloid_points(a.n, a.dim, 1)
        npy = os.path.join(tmp, "points.npy")
        np.save(npy, x)
        keys = ["points.npy#%d" % i for i in range(a.n)]
        if "add" not in skip:
            ta, tp = [], []
            for r in range(a.add_rounds):
                for which in ("import", "python") if r % 2 == 0 else ("python", "import"):
                    path = os.path.join(tmp, "db-%s-%d" % (which, r))
                    if which == "import":
                        subprocess.run([a.hydb, "init", path, "--dim", str(a.dim)], check=True,
                                       stdout=subprocess.DEVNULL)
                        t = time.perf_counter()
                        subprocess.run([a.hydb, "import", path, npy, "--quiet"], check=True, cwd=tmp,
                                       stdout=subprocess.DEVNULL)
                        ta.append(time.perf_counter() - t)
                    else:
                        t = time.perf_counter()
                        with hydb.open(path, dim=a.dim, create=True) as db:
                            db.add(keys, x)
                        tp.append(time.perf_counter() - t)
                    if r < a.add_rounds - 1 or which == "import":
                        shutil.rmtree(path)
            print("add %d x %d: hydb import %.2f s (%.0f/s), db.add %.2f s (%.0f/s): ratio %.3f "
                  "(import time / add time, best of %d)" % (a.n, a.dim, min(ta), a.n / min(ta), min(tp),
                                                             a.n / min(tp), min(ta) / min(tp), a.add_rounds))
            dbpath = os.path.join(tmp, "db-python-%d" % (a.add_rounds - 1))
        else:
            dbpath = a.db or os.path.join(tmp, "db")
            if not os.path.exists(dbpath):
                with hydb.open(dbpath, dim=a.dim, create=True) as db:
                    db.add(keys, x)
        if "search" not in skip:
            q = hyperboloid_points(a.queries, a.dim, 2)
            with hydb.open(dbpath) as db:
                db.search(q[:50], k=a.k, ef=a.ef)  # warm the map
                tc, tpy = [], []
                for r in range(a.rounds):
                    order = (0, 1) if r % 2 == 0 else (1, 0)
                    for o in order:
                        t = time.perf_counter()
                        if o == 0:
                            db._db._search_c(q, a.k, a.ef, False, 0, 0, 0.0, float("inf"), 0, 0.0)
                            tc.append(time.perf_counter() - t)
                        else:
                            db.search(q, k=a.k, ef=a.ef)
                            tpy.append(time.perf_counter() - t)
                qc, qp = a.queries / min(tc), a.queries / min(tpy)
                print("search: C API %.0f q/s, Python %.0f q/s: ratio %.3f (best of %d)" % (
                    qc, qp, qp / qc, a.rounds))

                def two():
                    ts = [threading.Thread(target=db.search, args=(q,), kwargs=dict(k=a.k, ef=a.ef))
                          for _ in range(2)]
                    for t in ts:
                        t.start()
                    for t in ts:
                        t.join()
                t1, t2 = [], []
                for r in range(a.rounds):
                    t1.append(best(lambda: db.search(q, k=a.k, ef=a.ef), 1))
                    t2.append(best(two, 1))
                print("threads: 1 thread %.0f q/s, 2 threads %.0f q/s: ratio %.2f (best of %d)" % (
                    a.queries / min(t1), 2 * a.queries / min(t2), 2 * min(t1) / min(t2), a.rounds))
        if "geo" not in skip:
            px = hyperboloid_points(a.pairs, a.pair_dim, 3)
            py = px + hyperboloid_points(a.pairs, a.pair_dim, 4) * 0.1
            tl, tn = [], []
            for r in range(a.rounds):
                t = time.perf_counter()
                d_lib = hydb.lorentz.dist(px, py)
                tl.append(time.perf_counter() - t)
                t = time.perf_counter()
                d_np = numpy_dist(px, py)
                tn.append(time.perf_counter() - t)
            rel = np.max(np.abs(d_lib - d_np) / np.maximum(d_np, 1e-300))
            print("geometry dist on %d pairs of dim %d: hydb.lorentz %.3f s, numpy %.3f s: speed-up %.1fx "
                  "(best of %d, %d CPUs); max relative difference %.2e" % (
                      a.pairs, a.pair_dim, min(tl), min(tn), min(tn) / min(tl), a.rounds, os.cpu_count(), rel))
            hydb.lorentz.set_threads(1)
            t = best(lambda: hydb.lorentz.dist(px, py), a.rounds)
            hydb.lorentz.set_threads(0)
            print("  one thread: hydb.lorentz %.3f s: speed-up %.1fx" % (t, min(tn) / t))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
