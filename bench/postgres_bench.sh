#!/bin/sh
# The PostgreSQL extension against the library on 100,000 x 768 HySAC-like
# points (bench/gen_hysac.c) with the same M = 16, efConstruction = 200:
#   - build: CREATE INDEX ... USING hydb_hnsw against `hydb import` of the
#     same rows as .npy (goal: at most 2x);
#   - query latency at recall@10 = 0.95 against the library's (recall_bench,
#     one thread; goal: at most 1.5x), recall tables unfiltered and
#     filtered at 1-90% selectivity;
#   - bytes per row of the index, with the library's.
# Run with 'make bench-postgres' (root: it installs the extension and runs a
# temporary cluster as postgres). HYDB_PG_BENCH_N / _D / _Q size the data;
# HYDB_PG_BENCH_WORK keeps data and results (default bench/results).
set -eu
: "${HYDB_SRCDIR:?}" "${HYDB_BUILDDIR:?}"
N=${HYDB_PG_BENCH_N:-100000}
D=${HYDB_PG_BENCH_D:-768}
Q=${HYDB_PG_BENCH_Q:-200}
EFS=${HYDB_PG_BENCH_EFS:-8,10,12,16,24,32,48,64,96,128}
W=${HYDB_PG_BENCH_WORK:-$HYDB_BUILDDIR/bench/results}
HYDB_PG_SHARED_BUFFERS=${HYDB_PG_SHARED_BUFFERS:-2GB}
. "$HYDB_SRCDIR/tests/postgres_cluster.sh"
pg_available || fail "PostgreSQL 15 server or PGXS not installed"
mkdir -p "$W"
OUT="$W/postgres_bench.txt"
: >"$OUT"
say() { echo "$*" | tee -a "$OUT"; }

# 1. The library: data, its own build, recall and single-thread latency.
if [ ! -s "$W/lib-$N-$D.log" ]; then
	OPENBLAS_NUM_THREADS=1 "$HYDB_BUILDDIR/bench/recall_bench" -w "$W" -o "$W/lib.csv" \
		-n "$N" -d "$D" -q "$Q" -e "$EFS" -F >"$W/lib-$N-$D.log"
fi
cat "$W/lib-$N-$D.log" | tee -a "$OUT"
DATA="$W/data-$N-$D-$Q-1"

# 2. hydb import of the same rows as .npy, timed.
"$PY" - "$DATA/base.f32" "$W/base-$N-$D.npy" "$N" "$D" <<'PY'
import sys
src, dst, n, d = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
head = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
head += " " * (63 - (len(head) + 10) % 64) + "\n"
with open(dst, "wb") as f, open(src, "rb") as g:
    f.write(b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode())
    while True:
        b = g.read(1 << 24)
        if not b:
            break
        f.write(b)
PY
rm -rf "$W/import.db"
"$HYDB_BUILDDIR/hydb" init "$W/import.db" --dim "$D" --m 16 --ef-construction 200 >/dev/null
IMPORT=$("$PY" -c 'import subprocess, sys, time
t = time.time(); subprocess.run(sys.argv[1:], check=True); print("%.2f" % (time.time() - t))' \
	"$HYDB_BUILDDIR/hydb" import "$W/import.db" "$W/base-$N-$D.npy" --quiet)
say "hydb import of $N x $D (.npy): $IMPORT s"

# 3. PostgreSQL: load, CREATE INDEX (timed), recall and latency tables.
cluster_setup
psql1 -c "CREATE DATABASE recall"
"$PY" "$HYDB_SRCDIR/tests/postgres_check.py" recall --psql "$PGBIN/psql" --host "$T" \
	--port "$PORT" --data "$DATA" --queries "$Q" --efs "$EFS" --min-recall 0 --filtered --filter-queries "${HYDB_PG_BENCH_FQ:-50}" \
	| tee -a "$OUT"

# 4. The library's search again on its own graph (-r), right after
# PostgreSQL's, so that both latencies come from the same minutes. The ef
# list runs twice and the second pass counts: a fresh process's first
# queries fault the mapping in, as PostgreSQL's first pass fills its cache.
OPENBLAS_NUM_THREADS=1 "$HYDB_BUILDDIR/bench/recall_bench" -w "$W" -o "$W/lib.csv" \
	-n "$N" -d "$D" -q "$Q" -e "$EFS,$EFS" -F -r | sed 's/^hydb ef=/hydb-again ef=/' | tee -a "$OUT"

# 5. The ratios, each latency interpolated along its curve to recall 0.95.
"$PY" - "$OUT" "$IMPORT" <<'PY' | tee -a "$OUT"
import re, sys
text = open(sys.argv[1]).read()
imp = float(sys.argv[2])
build = float(re.search(r"build_seconds ([0-9.]+)", text).group(1))
bpr = float(re.search(r"bytes_per_row ([0-9.]+)", text).group(1))
lib_bpv = float(re.search(r"([0-9.]+) bytes/vector", text).group(1))
lib = [(int(e), float(r), 1000.0 / float(qps)) for e, r, qps in
       re.findall(r"hydb-again ef=(\d+)\s+recall@1 \S+ @10 (\S+) @100 \S+\s+QPS\s+(\S+)", text)]
lib = lib[len(lib) // 2:]
pg = [(int(e), float(r), float(ms)) for e, r, ms in
      re.findall(r"^none\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)", text, re.M)]
def at95(rows):
    """(ef, ms) where the curve crosses recall 0.95, linear between the
    two ef values around it; the first row when it starts above."""
    for i, (e, r, ms) in enumerate(rows):
        if r >= 0.95:
            if i == 0:
                return e, ms
            e0, r0, ms0 = rows[i - 1]
            t = (0.95 - r0) / (r - r0)
            return e0 + t * (e - e0), ms0 + t * (ms - ms0)
    return None
l = at95(lib)
p = at95(pg)
print("build: CREATE INDEX %.1f s / hydb import %.1f s = %.2fx (goal <= 2x)" % (build, imp, build / imp))
if l and p:
    print("latency at recall@10 0.95 (interpolated, warm sessions): PostgreSQL %.3f ms (ef %.1f) "
          "/ library %.3f ms (ef %.1f) = %.2fx (goal <= 1.5x)" % (p[1], p[0], l[1], l[0], p[1] / l[1]))
print("bytes per row: index %.0f (graph, half copy and float32 vector); library %.0f "
      "(graph and half copy; its float32 rows live in the store)" % (bpr, lib_bpv))
PY
