#!/usr/bin/env python3
"""Checks of the PostgreSQL extension against a running cluster, driven
through psql (tests/test_postgres.sh, bench/postgres_bench.sh):

  recall   load a bench data set (bench/recall_data.h), build the index,
           compare index scans with sequential scans (recall@10, latency),
           unfiltered and filtered at several selectivities
  crash    kill -9 the postmaster during a bulk insert, restart, check
  standby  the standby answers the primary's index queries after replay
"""
import argparse, array, os, re, signal, struct, subprocess, sys, time

K = 10


def psql(a, sql, db=os.environ.get("HYDB_PG_DB", "recall"), port=None, stdin=None, check=True):
    cmd = [a.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", a.host,
           "-p", str(port or a.port), "-U", "postgres", "-d", db]
    r = subprocess.run(cmd, input=(stdin if stdin is not None else sql),
                       capture_output=True, text=True,
                       **({} if stdin is None else {}))
    if check and r.returncode != 0:
        sys.exit("psql failed: %s\n%s" % (sql[:300], r.stderr))
    return r


def run(a, sql, db=os.environ.get("HYDB_PG_DB", "recall"), port=None):
    return psql(a, sql, db, port).stdout


def literal(v):
    return "[" + ",".join("%.9g" % x for x in v) + "]"


class Rows:
    """n rows of dim float32 from a little-endian file."""

    def __init__(self, path, dim):
        self.a = array.array("f")
        with open(path, "rb") as f:
            self.a.frombytes(f.read())
        if sys.byteorder != "little":
            self.a.byteswap()
        self.dim = dim
        self.n = len(self.a) // dim

    def __getitem__(self, i):
        return self.a[i * self.dim:(i + 1) * self.dim]


def load_set(d):
    n, dim, nq, c = open(os.path.join(d, "info.txt")).read().split()[:4]
    dim = int(dim)
    base = Rows(os.path.join(d, "base.f32"), dim)
    query = Rows(os.path.join(d, "query.f32"), dim)
    raw = open(os.path.join(d, "attr.bin"), "rb").read()
    attr = [struct.unpack_from("<fBBH", raw, 8 * i) for i in range(len(raw) // 8)]
    return base, query, attr, float(c)


def copy_rows(a, base, attr, c):
    suffix = "" if c == 1.0 else ";c=%r" % c
    lines = []
    for i in range(base.n):
        # bucket: a filter column independent of the geometry
        lines.append("%d\t%d\t%d\t%d\t%s%s" % (i, (i * 7919) % 100, attr[i][1],
                                              attr[i][2], literal(base[i]), suffix))
    psql(a, None, stdin="COPY items FROM STDIN;\n" + "\n".join(lines) + "\n\\.\n")


def timed(a, sql):
    """Run sql (one statement) with \\timing; returns (rows, seconds)."""
    out = run(a, "\\timing on\n" + sql)
    ms = [float(x) for x in re.findall(r"^Time: ([0-9.]+) ms", out, re.M)]
    a.times = [x / 1000.0 for x in ms]
    rows = [l for l in out.splitlines() if l and not l.startswith("Time:")]
    return rows, ms[-1] / 1000.0


def knn(a, where, ef, index):
    # jit off: forcing a plan makes its cost pass jit_above_cost, and the
    # compilation (about 0.2 s a statement) is no part of a search.
    setting = "SET jit = off; " + (
        "SET enable_seqscan = off; SET hydb.ef_search = %d;" % ef if index
        else "SET enable_indexscan = off; SET enable_bitmapscan = off;")
    one = ("\nSELECT qid, (SELECT array_to_string(array_agg(id), ',') FROM "
           "(SELECT id FROM items %s ORDER BY embedding <-> v LIMIT %d) s) FROM queries "
           "ORDER BY qid;" % (where, K))
    # Index scans run the query set twice in one session and time the
    # second pass: a backend keeps the rows and lists it has read (the
    # library's walk likewise reads a mapped, warm file). The first pass's
    # time is kept in a.cold.
    rows, sec = timed(a, setting + one + (one if index else ""))
    if index:
        a.cold = a.times[-2]
    res = {}
    for r in rows:
        q, ids = r.split("|")
        res[int(q)] = [int(x) for x in ids.split(",")] if ids else []
    return res, sec


def recall(idx, seq):
    got = want = 0
    short = 0
    for q, truth in seq.items():
        got += len(set(idx.get(q, [])) & set(truth))
        want += len(truth)
        short += len(idx.get(q, [])) < len(truth)
    return (got / want if want else 1.0), short


def cmd_recall(a):
    base, query, attr, c = load_set(a.data)
    n, dim = base.n, base.dim
    nq = min(query.n, a.queries)
    run(a, "CREATE EXTENSION IF NOT EXISTS hydb; DROP TABLE IF EXISTS items, queries;"
        "CREATE TABLE items (id int PRIMARY KEY, bucket int, modality int, label int,"
        " embedding lorentz(%d)); CREATE TABLE queries (qid int, v lorentz(%d));" % (dim, dim))
    t0 = time.time()
    copy_rows(a, base, attr, c)
    psql(a, None, stdin="COPY queries FROM STDIN;\n" + "\n".join(
        "%d\t%s%s" % (q, literal(query[q]), "" if c == 1.0 else ";c=%r" % c)
        for q in range(nq)) + "\n\\.\n")
    run(a, "VACUUM ANALYZE items;")
    print("loaded %d x %d in %.1f s" % (n, dim, time.time() - t0))
    _, build = timed(a, "SET maintenance_work_mem = '2GB'; CREATE INDEX items_idx ON items "
                     "USING hydb_hnsw (embedding lorentz_ops) WITH (m = %d, ef_construction = %d);"
                     % (a.m, a.efc))
    size = int(run(a, "SELECT pg_relation_size('items_idx');"))
    print("build_seconds %.2f index_bytes %d bytes_per_row %.1f" % (build, size, size / n))
    run(a, "SELECT hydb_index_check('items_idx');")
    ok = True
    seq, seq_s = knn(a, "", 0, False)
    print("seqscan: %.2f ms/query" % (1000 * seq_s / nq))
    print("%-28s %6s %8s %10s %6s %10s" % ("filter", "ef", "recall", "ms/query", "short",
                                           "cold ms"))
    for ef in a.efs:
        idx, s = knn(a, "", ef, True)
        r, short = recall(idx, seq)
        print("%-28s %6d %8.4f %10.3f %6d %10.3f" % ("none", ef, r, 1000 * s / nq, short,
                                                    1000 * a.cold / nq))
        if ef == 64 and (r < a.min_recall or short):
            ok = False
    if a.filtered:
        ok &= filtered(a, nq)
    if not ok:
        sys.exit("recall below %.2f or short results" % a.min_recall)


def filtered(a, nq):
    """Filtered queries on the first a.filter_queries queries: the
    sequential scans that give the truth are the slow part."""
    ok = True
    if a.filter_queries < nq:
        run(a, "DELETE FROM queries WHERE qid >= %d;" % a.filter_queries)
        nq = a.filter_queries
    filters = [("bucket < 1", "1%"), ("bucket < 10", "10%"), ("bucket < 50", "50%"),
               ("bucket < 90", "90%"), ("label = 1", None), ("modality = 1 AND label = 2", None),
               ("lorentz_radius(embedding) < 2.0", None)]
    for cond, sel in filters:
        frac = float(run(a, "SELECT avg((%s)::int) FROM items;" % cond))
        seq, _ = knn(a, "WHERE " + cond, 0, False)
        idx, s = knn(a, "WHERE " + cond, 64, True)
        r, short = recall(idx, seq)
        print("%-28s %6d %8.4f %10.3f %6d  (selectivity %.1f%%)" % (
            cond, 64, r, 1000 * s / nq, short, 100 * frac))
        if r < a.min_recall or short:
            ok = False
    return ok


def children(pid):
    """Processes whose parent is pid, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except (OSError, ValueError):
            continue
        if d.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
    return out


def cmd_crash(a):
    # Rows: random points (smooth functions of the row number put rows on
    # a lattice whose near-ties a beam does not resolve), 16 dimensions at
    # the default M: a graph search finds every row from its own vector.
    db = "crash"
    run(a, "CREATE DATABASE crash;", db="postgres")
    run(a, "CREATE EXTENSION hydb; CREATE TABLE c (id int PRIMARY KEY, v lorentz(16));"
        "INSERT INTO c SELECT i, lorentz_exp_map0(ARRAY(SELECT random() - 0.5 "
        "FROM generate_series(1, 16) j WHERE i > 0)::real[]) FROM generate_series(1, 2000) i;"
        "CREATE INDEX c_idx ON c USING hydb_hnsw (v) WITH (m = 16, ef_construction = 100);", db=db)
    # One committed transaction per batch of rows, reported after commit.
    script = "\n".join(
        "INSERT INTO c SELECT i, lorentz_exp_map0(ARRAY(SELECT random() - 0.5 "
        "FROM generate_series(1, 16) j WHERE i > 0)::real[]) FROM generate_series(%d, %d) i;\n\\echo committed %d"
        % (b, b + 49, b + 49) for b in range(2001, 200001, 50))
    path = os.path.join(a.host, "crash.sql")
    with open(path, "w") as f:
        f.write(script + "\n")
    # ON_ERROR_STOP: after the kill no later "committed" line may print.
    cmd = [a.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", a.host, "-p", str(a.port),
           "-U", "postgres", "-d", db, "-f", path]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(a.crash_after)
    pid = int(open(os.path.join(a.data, "postmaster.pid")).readline())
    # The children would notice their postmaster is gone only later (and be
    # re-parented, out of reach); they are named now, and stopped right
    # after it, so that the restart finds the shared memory free.
    kids = children(pid)
    os.kill(pid, signal.SIGKILL)
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for _ in range(300):
        if not any(os.path.exists("/proc/%d" % k) for k in kids + [pid]):
            break
        time.sleep(0.1)
    out = p.stdout.read()
    p.wait()
    committed = max([int(x) for x in re.findall(r"committed (\d+)", out)] or [2000])
    time.sleep(1)
    subprocess.run(["runuser", "-u", "postgres", "--", a.pg_ctl, "-D", a.data, "-l", a.log,
                    "-w", "-t", "300", "-o", "-p %d -k %s -c listen_addresses=''" % (a.port, a.host),
                    "start"], check=True, stdout=subprocess.DEVNULL)
    rows = int(run(a, "SELECT count(*) FROM c;", db=db))
    run(a, "SELECT hydb_index_check('c_idx');", db=db)
    # Found: the scan's nearest row is at distance 0 (the row itself or a
    # row with the same vector: the generator repeats some).
    lost = int(run(a, "SET jit = off; SET enable_seqscan = off; SET hydb.ef_search = 200;"
                   "SELECT count(*) FROM c a WHERE NOT EXISTS (SELECT 1 FROM (SELECT b.v FROM c b "
                   "ORDER BY b.v <-> a.v LIMIT 1) s WHERE (s.v <-> a.v) = 0);", db=db))
    print("crash: killed after %.1f s; %d rows reported committed, %d rows after recovery, "
          "hydb_index_check clean, %d rows not found by a search for their own vector"
          % (a.crash_after, committed, rows, lost))
    missing = int(run(a, "SELECT count(*) FROM generate_series(1, %d) i WHERE NOT EXISTS "
                      "(SELECT 1 FROM c WHERE id = i);" % committed, db=db))
    if lost or missing or rows < committed:
        sys.exit("crash: %d lost by the index, %d committed rows missing" % (lost, missing))


def cmd_standby(a):
    db = "recall"
    # Changes after the base backup reach the standby only through WAL.
    run(a, "INSERT INTO items SELECT id + 1000000, bucket, modality, label, embedding FROM items "
        "WHERE id < 500; DELETE FROM items WHERE id % 7 = 3; VACUUM items;", db=db)
    lsn = run(a, "SELECT pg_current_wal_lsn();", db=db).strip()
    for _ in range(600):
        r = psql(a, "SELECT pg_last_wal_replay_lsn() >= '%s';" % lsn, db=db, port=a.port2,
                 check=False)
        if r.returncode == 0 and r.stdout.strip() == "t":
            break
        time.sleep(0.2)
    else:
        sys.exit("standby did not replay up to %s" % lsn)
    sql = ("SET enable_seqscan = off; SELECT qid, (SELECT array_to_string(array_agg(id), ',') FROM "
           "(SELECT id FROM items ORDER BY embedding <-> v LIMIT 10) s) FROM queries ORDER BY qid;")
    p = run(a, sql, db=db)
    s = run(a, sql, db=db, port=a.port2)
    run(a, "SELECT hydb_index_check('items_idx');", db=db, port=a.port2)
    nq = len(p.splitlines())
    same = sum(x == y for x, y in zip(p.splitlines(), s.splitlines()))
    print("standby: %d of %d index queries answered identically after replay; "
          "hydb_index_check clean on the standby" % (same, nq))
    if same != nq or nq == 0:
        sys.exit("standby answers differ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["recall", "crash", "standby"])
    ap.add_argument("--psql", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--port2", type=int)
    ap.add_argument("--data")
    ap.add_argument("--pg-ctl")
    ap.add_argument("--log")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--efs", default="64")
    ap.add_argument("--min-recall", type=float, default=0.95)
    ap.add_argument("--filtered", action="store_true")
    ap.add_argument("--filter-queries", type=int, default=1 << 30)
    ap.add_argument("--crash-after", type=float, default=3.0)
    a = ap.parse_args()
    a.efs = [int(x) for x in a.efs.split(",")]
    {"recall": cmd_recall, "crash": cmd_crash, "standby": cmd_standby}[a.command](a)


if __name__ == "__main__":
    main()
