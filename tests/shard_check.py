#!/usr/bin/env python3
"""Checks of a sharded hydb made by tools/hydb-pg-cluster (tests/test_shard.sh,
bench/shard_bench.sh), driven through psql:

  npy      write a bench data set (bench/recall_data.h) as FILE.npy + labels
  single   load the same rows into items_single on the coordinator, one index
  knn      sharded top-k against the single-node table, exact answers and
           each shard asked directly; index scans on every shard; filters
  timing   ms/query and queries/s of the sharded and single-node forms
"""
import argparse, array, os, struct, subprocess, sys, threading, time

K = 10


def psql(port, sql, check=True):
    r = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                        "-p", str(port), "-U", "postgres", "-d", "hydb"],
                       input=sql, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit("psql on port %s failed: %s\n%s" % (port, sql[:300], r.stderr))
    return r


def env(cluster):
    e = {}
    for line in open(os.path.join(cluster, "cluster.env")):
        k, v = line.strip().split("=", 1)
        e[k] = v.strip('"')
    return int(e["COORD_PORT"]), [int(p) for p in e["SHARD_PORTS"].split()]


def floats(path, dim):
    a = array.array("f")
    a.frombytes(open(path, "rb").read())
    return [a[i * dim:(i + 1) * dim] for i in range(len(a) // dim)]


def literal(v):
    return "'[" + ",".join("%.9g" % x for x in v) + "]'"


def info(data):
    n, dim = open(os.path.join(data, "info.txt")).read().split()[:2]
    return int(n), int(dim)


def save_npy(path, raw, descr, shape):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    h += " " * ((64 - (11 + len(h)) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + raw)


def cmd_npy(a):
    n, dim = info(a.data)
    save_npy(a.out + ".npy", open(os.path.join(a.data, "base.f32"), "rb").read(), "<f4",
             "(%d, %d)" % (n, dim))
    raw = open(os.path.join(a.data, "attr.bin"), "rb").read()
    labels = [struct.unpack_from("<fBBH", raw, 8 * i)[2] for i in range(n)]
    save_npy(a.out + "_labels.npy", struct.pack("<%dq" % n, *labels), "<i8", "(%d,)" % n)


def cmd_single(a):
    coord, _ = env(a.cluster)
    n, dim = info(a.data)
    t0 = time.time()
    psql(coord, "DROP TABLE IF EXISTS items_single;"
         "CREATE TABLE items_single (LIKE items); INSERT INTO items_single SELECT * FROM items;"
         "CREATE INDEX items_single_idx ON items_single USING hydb_hnsw (embedding lorentz_ops)"
         " WITH (m = 16, ef_construction = 200); ANALYZE items_single;")
    print("single node: %d rows indexed in %.1f s" % (n, time.time() - t0))


def batch(port, queries, form, setup=""):
    """One session: the ids (and distances) of each query, one line each."""
    lines = [setup]
    for q in queries:
        lines.append("SELECT string_agg(id || ':' || d, ',' ORDER BY d, id) FROM (%s) s;"
                     % (form % {"q": literal(q), "k": K}))
    out = psql(port, "\n".join(lines)).stdout.split("\n")
    res = []
    for l in out[:len(queries)]:
        pairs = [p.split(":") for p in l.split(",")] if l else []
        res.append([(int(i), float(d)) for i, d in pairs])
    return res


FORMS = {
    "function": "SELECT id, distance AS d FROM items_knn(%(q)s, %(k)d)",
    "plain": "SELECT id, embedding <-> %(q)s AS d FROM items ORDER BY embedding <-> %(q)s LIMIT %(k)d",
    "single": "SELECT id, embedding <-> %(q)s AS d FROM items_single ORDER BY embedding <-> %(q)s LIMIT %(k)d",
}


def ids(r):
    return [set(i for i, _ in x) for x in r]


def cmd_knn(a):
    coord, shards = env(a.cluster)
    _, dim = info(a.data)
    queries = floats(os.path.join(a.data, "query.f32"), dim)[:a.queries]
    ef = "SET hydb.ef_search = %d;" % a.ef
    fn = batch(coord, queries, FORMS["function"])
    plain = batch(coord, queries, FORMS["plain"])
    single = batch(coord, queries, FORMS["single"], ef)
    exact = batch(coord, queries, FORMS["single"], "SET enable_indexscan = off;")
    direct = [batch(p, queries, FORMS["plain"]) for p in shards]
    merged = [sorted(sum((d[i] for d in direct), []), key=lambda x: (x[1], x[0]))[:K]
              for i in range(len(queries))]
    nq = len(queries)
    same_merge = sum(f == m for f, m in zip(ids(fn), ids(merged)))
    same_plain = sum(f == p for f, p in zip(ids(fn), ids(plain)))
    same_single = sum(f == s for f, s in zip(ids(fn), ids(single)))
    # Where the two differ and the sharded answer is exact, the single
    # node missed a neighbour: an approximate single node, not a wrong merge.
    explained = sum(f == s or f == e for f, s, e in zip(ids(fn), ids(single), ids(exact)))
    rec = lambda r: sum(len(x & t) for x, t in zip(ids(r), ids(exact))) / (K * nq)
    print("queries %d, k %d, ef %d" % (nq, K, a.ef))
    print("sharded (items_knn) = merge of the shards' own answers: %d/%d" % (same_merge, nq))
    print("sharded (items_knn) = sharded plain ORDER BY:           %d/%d" % (same_plain, nq))
    print("sharded (items_knn) = single-node table, same ef:       %d/%d" % (same_single, nq))
    print("  identical, or different where the sharded answer is exact: %d/%d" % (explained, nq))
    print("recall@%d against exact: sharded %.4f plain %.4f single %.4f"
          % (K, rec(fn), rec(plain), rec(single)))
    ok = same_merge == nq and same_plain == nq and same_single >= a.min_same * nq
    ok &= explained == nq or not a.explained
    ok &= rec(fn) >= a.min_recall and all(len(r) == K for r in fn)
    ok &= filtered(coord, queries[:20])
    if not ok:
        sys.exit("shard_check: sharded answers differ or recall below %.2f" % a.min_recall)


def filtered(coord, queries):
    """Filters reach the shards and LIMIT rows come back."""
    ok = True
    for name, form in [
            ("label = 1", "SELECT id, distance AS d FROM items_knn(%(q)s, %(k)d, 1)"),
            ("radius < 3", "SELECT id, distance AS d FROM items_knn(%(q)s, %(k)d, NULL, 3.0)"),
            ("label = 1, plain", "SELECT id, embedding <-> %(q)s AS d FROM items WHERE label = 1"
             " ORDER BY embedding <-> %(q)s LIMIT %(k)d")]:
        r = batch(coord, queries, form)
        short = sum(len(x) < K for x in r)
        print("filter %-18s %d queries, %d short of LIMIT %d" % (name, len(r), short, K))
        ok &= short == 0
    return ok


def warm_ms(port, queries, form, setup, out=None):
    """One session runs the queries twice; the second pass's per-statement
    times (psql's \\timing) are returned: each backend (and each shard
    backend the coordinator opens) starts with an empty hydb.cache_mb copy,
    which would otherwise be most of what a short run measures."""
    lines = [setup]
    for _ in range(2):
        lines.append("\\timing on" if _ else "")
        for q in queries:
            lines.append("SELECT count(*) FROM (%s) s;" % (form % {"q": literal(q), "k": K}))
    res = psql(port, "\n".join(lines)).stdout
    ms = [float(l.split()[1]) for l in res.splitlines() if l.startswith("Time:")]
    if out is not None:
        out.append(sum(ms))
    return ms


def cmd_timing(a):
    """Latency (one client) and throughput (a.clients clients) of a form,
    on warm sessions."""
    coord, shards = env(a.cluster)
    _, dim = info(a.data)
    queries = floats(os.path.join(a.data, "query.f32"), dim)[:a.queries]
    port = shards[0] if a.form == "shard" else coord
    form = FORMS["plain" if a.form == "shard" else a.form]
    setup = "SET hydb.ef_search = %d;" % a.ef
    ms = sorted(warm_ms(port, queries, form, setup))
    lat, p50 = sum(ms) / len(ms), ms[len(ms) // 2]
    busy = []
    th = [threading.Thread(target=warm_ms, args=(port, queries, form, setup, busy))
          for _ in range(a.clients)]
    [t.start() for t in th]
    [t.join() for t in th]
    qps = a.clients * len(queries) / (max(busy) / 1000)
    print("%-9s %8.2f ms/query (median %.2f) %8.1f queries/s (%d clients)"
          % (a.form, lat, p50, qps, a.clients))


def main():
    global PSQL
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["npy", "single", "knn", "timing"])
    p.add_argument("--psql", default="/usr/lib/postgresql/15/bin/psql")
    p.add_argument("--cluster")
    p.add_argument("--data")
    p.add_argument("--out")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--ef", type=int, default=64)
    p.add_argument("--min-recall", type=float, default=0.95)
    p.add_argument("--min-same", type=float, default=0.95)
    p.add_argument("--explained", action="store_true",
                   help="every difference from the single node must be its miss")
    p.add_argument("--form", default="function")
    p.add_argument("--clients", type=int, default=4)
    a = p.parse_args()
    PSQL = a.psql
    {"npy": cmd_npy, "single": cmd_single, "knn": cmd_knn, "timing": cmd_timing}[a.cmd](a)


if __name__ == "__main__":
    main()
