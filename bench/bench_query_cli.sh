#!/bin/sh
# Throughput of batch queries: the command line (whole process: open, read
# the .npy, search, print JSON) against the library's hydb_search_batch on
# the same database and queries (whole process too: open, read, search).
# Runs are interleaved A B A B so that a shared machine's drift falls on
# both; prints each run and the median ratio. N, DIM, NQ, RUNS may be set.
set -eu
: "${HYDB_BUILDDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
N=${N:-100000} DIM=${DIM:-128} NQ=${NQ:-5000} RUNS=${RUNS:-5}
W=$(mktemp -d /tmp/hydb-qcli-XXXXXX)
trap 'rm -rf "$W"' EXIT
"$PY" - "$W" "$N" "$DIM" "$NQ" <<'PY'
import sys, numpy as np
w, n, d, nq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(3)
def pts(m):
    v = rng.normal(size=(m, d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return (v * np.sinh(rng.uniform(0.2, 3.0, size=(m, 1)))).astype(np.float32)
np.save(w + "/base.npy", pts(n))
q = pts(nq)
np.save(w + "/q.npy", q)
q.tofile(w + "/q.f32")
PY
"$H" init "$W/db" --dim "$DIM" >/dev/null
"$H" import "$W/db" "$W/base.npy" --quiet --batch 20000
echo "database $N x $DIM, $NQ queries, k 10, default ef"
now() { date +%s.%N; }
i=0
while [ "$i" -lt "$RUNS" ]; do
	t0=$(now)
	"$H" query "$W/db" --vector-file "$W/q.npy" -k 10 --json >/dev/null
	t1=$(now)
	"$HYDB_BUILDDIR/bench/query_batch" "$W/db" "$W/q.f32" 10 2>/dev/null
	t2=$(now)
	echo "$t0 $t1 $t2" | awk -v nq="$NQ" '{a = $2 - $1; b = $3 - $2;
		printf "run: cli %.3f s (%.0f q/s), library %.3f s (%.0f q/s), cli/library q/s %.3f\n",
		a, nq / a, b, nq / b, b / a}' | tee -a "$W/runs"
	i=$((i + 1))
done
sort -t' ' -k14 -n "$W/runs" | awk -v r="$RUNS" 'NR == int((r + 1) / 2) {print "median cli/library q/s ratio " $NF}'
