#!/usr/bin/env python3
"""Checks of a sharded hydb made by tools/hydb-pg-cluster (tests/test_shard.sh,
bench/shard_bench.sh), driven through psql:

  npy      write a bench data set (bench/recall_data.h) as FILE.npy + labels
  single   load the same rows into items_single on the coordinator, one index
  knn      sharded top-k against the single-node table, exact answers and
           each shard asked directly; index scans on every shard; filters
  timing   ms/query and queries/s of the sharded and single-node forms,
           interleaved query by query in warm sessions, against one shard

The sharded forms: items_knn (dblink to every shard's hydb_knn_local),
items_knn_fdw (postgres_fdw async foreign scans) and the plain ORDER BY over
the partitioned items (Merge Append).
"""
import argparse, array, os, statistics, struct, subprocess, sys, threading, time

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
    "fdw": "SELECT id, distance AS d FROM items_knn_fdw(%(q)s, %(k)d)",
    # items_knn with k = 0: the whole fan-out (the vector printed, sent to
    # and parsed by every shard, one round trip each, the merge) without a
    # search (LIMIT 0 never starts the index scan)
    "fanout": "SELECT id, distance AS d FROM items_knn(%(q)s, 0)",
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
    # The coordinator's setting reaches items_knn's shards (its ef
    # argument's default), not items_knn_fdw's or the plain query's remote
    # sessions: those run at the shards' own hydb.ef_search (hydb-pg-cluster
    # ef), which the test sets to the same value.
    fn = batch(coord, queries, FORMS["function"], ef)
    fdw = batch(coord, queries, FORMS["fdw"])
    plain = batch(coord, queries, FORMS["plain"])
    # items_single (cmd_single) may live on another cluster's coordinator
    sport = env(a.single_cluster)[0] if a.single_cluster else coord
    single = batch(sport, queries, FORMS["single"], ef)
    exact = batch(sport, queries, FORMS["single"], "SET enable_indexscan = off;")
    direct = [batch(p, queries, FORMS["plain"], ef) for p in shards]
    merged = [sorted(sum((d[i] for d in direct), []), key=lambda x: (x[1], x[0]))[:K]
              for i in range(len(queries))]
    nq = len(queries)
    same = lambda x, y: sum(f == m for f, m in zip(ids(x), ids(y)))
    same_merge, same_fdw, same_plain = same(fn, merged), same(fn, fdw), same(fn, plain)
    same_single = same(fn, single)
    # Where the two differ and the sharded answer is exact, the single
    # node missed a neighbour: an approximate single node, not a wrong merge.
    explained = sum(f == s or f == e for f, s, e in zip(ids(fn), ids(single), ids(exact)))
    rec = lambda r: sum(len(x & t) for x, t in zip(ids(r), ids(exact))) / (K * nq)
    # Each shard against the exact top k over its own rows.
    shard_exact = [batch(p, queries, FORMS["plain"], "SET enable_indexscan = off;") for p in shards]
    shard_rec = [sum(len(x & t) for x, t in zip(ids(d), ids(e))) / (K * nq)
                 for d, e in zip(direct, shard_exact)]
    print("queries %d, k %d, ef %d, %d shards" % (nq, K, a.ef, len(shards)))
    print("sharded (items_knn, dblink) = merge of the shards' own answers: %d/%d" % (same_merge, nq))
    print("sharded (items_knn, dblink) = items_knn_fdw:                    %d/%d" % (same_fdw, nq))
    print("sharded (items_knn, dblink) = sharded plain ORDER BY:           %d/%d" % (same_plain, nq))
    print("sharded (items_knn, dblink) = single-node table, same ef:       %d/%d" % (same_single, nq))
    print("  identical, or different where the sharded answer is exact: %d/%d" % (explained, nq))
    print("recall@%d against exact: items_knn %.4f items_knn_fdw %.4f plain %.4f single %.4f"
          % (K, rec(fn), rec(fdw), rec(plain), rec(single)))
    print("each shard against the exact top %d over its own rows: %s"
          % (K, " ".join("%.4f" % r for r in shard_rec)))
    ok = same_merge == nq and same_fdw == nq and same_plain == nq and same_single >= a.min_same * nq
    ok &= explained == nq or not a.explained
    ok &= rec(fn) >= a.min_recall and all(len(r) == K for r in fn)
    ok &= filtered(coord, queries[:20])
    if not ok:
        sys.exit("shard_check: sharded answers differ or recall below %.2f" % a.min_recall)


def filtered(coord, queries):
    """Filters reach the shards and LIMIT rows come back; both sharded
    functions agree."""
    ok = True
    for name, form in [
            ("label = 1", "SELECT id, distance AS d FROM items_knn(%(q)s, %(k)d, 1)"),
            ("radius < 3", "SELECT id, distance AS d FROM items_knn(%(q)s, %(k)d, NULL, 3.0)"),
            ("both", "SELECT id, distance AS d FROM items_knn(%(q)s, %(k)d, 1, 3.0)"),
            ("label = 1, plain", "SELECT id, embedding <-> %(q)s AS d FROM items WHERE label = 1"
             " ORDER BY embedding <-> %(q)s LIMIT %(k)d")]:
        r = batch(coord, queries, form)
        short = sum(len(x) < K for x in r)
        line = "filter %-18s %d queries, %d short of LIMIT %d" % (name, len(r), short, K)
        ok &= short == 0
        if "items_knn(" in form:
            f = batch(coord, queries, form.replace("items_knn(", "items_knn_fdw("))
            agree = sum(x == y for x, y in zip(ids(r), ids(f)))
            line += ", = items_knn_fdw on %d/%d" % (agree, len(r))
            ok &= agree == len(r)
        print(line)
    return ok


class Session:
    """A psql process kept open: statements go in one at a time, psql's
    \\timing (client round trip) comes back."""

    def __init__(self, port, setup):
        self.p = subprocess.Popen([PSQL, "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(port),
                                   "-U", "postgres", "-d", "hydb"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  bufsize=1)
        self.run(setup + "\n\\timing on")

    def run(self, sql):
        self.p.stdin.write(sql + "\n\\echo @@end\n")
        self.p.stdin.flush()
        ms, lines = None, []
        while True:
            l = self.p.stdout.readline()
            if not l:
                sys.exit("psql ended: %s" % "".join(lines[-5:]))
            if l.startswith("@@end"):
                return ms
            if l.startswith("Time:"):
                ms = float(l.split()[1])
            elif l.startswith(("ERROR", "psql:")):
                sys.exit("shard_check: %s" % l.strip())
            lines.append(l)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def stmt(form, q):
    return "SELECT count(*) FROM (%s) s;" % (FORMS[form] % {"q": literal(q), "k": K})


def cmd_timing(a):
    """Latency (one client; the forms interleaved query by query, each in
    its own warm session) and throughput (a.clients clients, one form after
    another), each sharded form's ratio against one shard over its share.
    Forms: function, fdw, plain, shard (shard1 asked directly), single; a
    form after a colon reads the second cluster (--cluster2)."""
    _, dim = info(a.data)
    queries = floats(os.path.join(a.data, "query.f32"), dim)[:a.queries]
    setup = "SET hydb.ef_search = %d;" % a.ef
    clusters = {"": env(a.cluster)}
    if a.cluster2:
        clusters["2"] = env(a.cluster2)
    forms = []
    for f in a.forms.split(","):  # items_knn's fan-out cost next to it
        forms.append(f)
        if f.endswith("function"):
            forms.append(f[:-len("function")] + "fanout")

    def where(f):
        c, _, form = f.rpartition(":")
        coord, shards = clusters[c]
        return (shards[0] if form == "shard" else coord), ("plain" if form == "shard" else form)

    def label(f):
        c, _, form = f.rpartition(":")
        coord, shards = clusters[c]
        return "%d shards: %s" % (len(shards), form) if form not in ("single",) else "one node: single"

    sess = {f: Session(where(f)[0], setup) for f in forms}
    for f in forms:  # warm: every backend's index cache, the shard connections
        for q in queries:
            sess[f].run(stmt(where(f)[1], q))
    ms = {f: [] for f in forms}
    for r in range(a.rounds):
        for i, q in enumerate(queries):
            order = forms[(i + r) % len(forms):] + forms[:(i + r) % len(forms)]
            for f in order:
                ms[f].append(sess[f].run(stmt(where(f)[1], q)))
    for s in sess.values():
        s.close()
    qps = {}
    for f in forms:
        port, form = where(f)
        clients = [Session(port, setup) for _ in range(a.clients)]
        for c in clients:
            for q in queries:
                c.run(stmt(form, q))
        go = threading.Barrier(a.clients + 1)

        def work(c):
            go.wait()
            for q in queries:
                c.run(stmt(form, q))
        th = [threading.Thread(target=work, args=(c,)) for c in clients]
        [t.start() for t in th]
        go.wait()
        t0 = time.time()
        [t.join() for t in th]
        qps[f] = a.clients * len(queries) / (time.time() - t0)
        [c.close() for c in clients]
    print("%d queries x %d rounds, ef %d, k %d, %d CPUs (nproc), throughput with %d clients"
          % (len(queries), a.rounds, a.ef, K, os.cpu_count(), a.clients))
    print("%-22s %9s %9s %9s %10s %9s" % ("form", "mean ms", "median", "x shard", "queries/s", "x single"))
    for f in forms:
        c = f.rpartition(":")[0]
        one = [g for g in forms if g.rpartition(":") == (c, ":" if c else "", "shard")]
        base = statistics.mean(ms[one[0]]) if one else None
        single = qps.get("single")
        m = statistics.mean(ms[f])
        print("%-22s %9.2f %9.2f %9s %10.1f %9s"
              % (label(f), m, statistics.median(ms[f]), "%.2f" % (m / base) if base else "",
                 qps[f], "%.2f" % (qps[f] / single) if single else ""))


def cmd_gap(a):
    """The checks behind the account of the sharded recall (README): does
    the coordinator's ef reach the shards, does the query vector lose
    precision on its way, were the shards' indexes built differently, and
    where in each shard's own ranking its misses fall."""
    coord, shards = env(a.cluster)
    _, dim = info(a.data)
    queries = floats(os.path.join(a.data, "query.f32"), dim)[:a.queries]
    nq = len(queries)
    ef = "SET hydb.ef_search = %d;" % a.ef
    diff = lambda x, y: sum(i != j for i, j in zip(ids(x), ids(y)))
    # 1. ef: a coordinator SET reaches items_knn's shards (its default ef
    # argument), not the remote sessions of items_knn_fdw.
    fn, fdw = batch(coord, queries, FORMS["function"], ef), batch(coord, queries, FORMS["fdw"], ef)
    fn8 = batch(coord, queries, FORMS["function"], "SET hydb.ef_search = 8;")
    fdw8 = batch(coord, queries, FORMS["fdw"], "SET hydb.ef_search = 8;")
    print("gap 1, ef: SET hydb.ef_search = 8 on the coordinator changes items_knn's answer on"
          " %d/%d queries, items_knn_fdw's on %d/%d" % (diff(fn, fn8), nq, diff(fdw, fdw8), nq))
    # 2. precision: the shards' answers asked directly with the query's own
    # literal, against both functions' (whose shards receive the vector as
    # the coordinator prints it).
    direct = [batch(p, queries, FORMS["plain"], ef) for p in shards]
    merged = [sorted(sum((d[i] for d in direct), []), key=lambda x: (x[1], x[0]))[:K]
              for i in range(nq)]
    dd = lambda r: max(abs(x[1] - y[1]) for u, v in zip(r, merged) for x, y in zip(u, v))
    print("gap 2, precision: against the shards asked directly, items_knn differs on %d/%d"
          " queries (max |distance difference| %.3g), items_knn_fdw on %d/%d (%.3g)"
          % (diff(fn, merged), nq, dd(fn), diff(fdw, merged), nq, dd(fdw)))
    # 3. build: shard1's rows indexed again on the coordinator, alone and
    # with the default maintenance_work_mem; recall of both over those rows.
    t0 = time.time()
    psql(coord, "DROP TABLE IF EXISTS items_s1; CREATE TABLE items_s1 AS SELECT * FROM items_p0;"
         "CREATE INDEX ON items_s1 USING hydb_hnsw (embedding lorentz_ops)"
         " WITH (m = 16, ef_construction = 200); ANALYZE items_s1;")
    s1form = FORMS["plain"].replace("FROM items", "FROM items_s1")
    again = batch(coord, [q for q in queries], s1form, ef)
    exact1 = batch(shards[0], queries, FORMS["plain"], "SET enable_indexscan = off;")
    rec = lambda r, e: sum(len(x & t) for x, t in zip(ids(r), ids(e))) / (K * nq)
    print("gap 3, build: shard1's rows, recall@%d over them: shard1's index %.4f, the same rows"
          " indexed on the coordinator (%.0f s) %.4f"
          % (K, rec(direct[0], exact1), time.time() - t0, rec(again, exact1)))
    psql(coord, "DROP TABLE items_s1;")
    # 4. where the misses are: the global exact top k holds about k/N of
    # each shard's rows, so a shard's miss costs the merged answer only when
    # it falls in those first ranks of the shard's own exact list.
    exact = [batch(p, queries, FORMS["plain"], "SET enable_indexscan = off;") for p in shards]
    ranks = [0] * K
    for d, e in zip(direct, exact):
        for got, want in zip(d, e):
            g = set(i for i, _ in got)
            for r, (i, _) in enumerate(want):
                if i not in g:
                    ranks[r] += 1
    gexact = batch(coord, queries, FORMS["single"], "SET enable_indexscan = off;")
    lost = sum(len(t - x) for x, t in zip(ids(fn), ids(gexact)))
    print("gap 4, misses by rank in the shard's own exact top %d (1..%d): %s; the merged"
          " answer lost %d of %d neighbours" % (K, K, " ".join(map(str, ranks)), lost, K * nq))
    # 5. ef: recall of items_knn against the single node as ef grows.
    line = []
    for e in (64, 96, 128, 200):
        r1 = rec(batch(coord, queries, FORMS["function"], "SET hydb.ef_search = %d;" % e), gexact)
        r2 = rec(batch(coord, queries, FORMS["single"], "SET hydb.ef_search = %d;" % e), gexact)
        line.append("ef %d: %.4f / %.4f" % (e, r1, r2))
    print("gap 5, recall@%d items_knn / single node: %s" % (K, ", ".join(line)))


def main():
    global PSQL
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["npy", "single", "knn", "gap", "timing"])
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
    p.add_argument("--forms", default="function,fdw,plain,shard,single")
    p.add_argument("--single-cluster", help="the cluster whose coordinator holds items_single")
    p.add_argument("--cluster2", help="a second cluster, for forms written 2:FORM")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=4)
    a = p.parse_args()
    PSQL = a.psql
    {"npy": cmd_npy, "single": cmd_single, "knn": cmd_knn, "gap": cmd_gap, "timing": cmd_timing}[a.cmd](a)


if __name__ == "__main__":
    main()
