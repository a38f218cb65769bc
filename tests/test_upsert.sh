#!/bin/sh
# Upserts through hydb import keep the index whole: 5,000 clustered HySAC-
# like points (the recall bench's generator, 64 dimensions), then 30% of
# them replaced by a second import of the same file name. Every replaced
# record leaves the graph in one scan, its neighbours' lists are repaired,
# and every node must stay in the reachability tree and be reachable; the
# replaced vectors must be what a search finds. (Before insertion-order
# ranks, this left 148 nodes outside the tree and 1 unreachable.)
set -eu
: "${HYDB_BUILDDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
T=$(mktemp -d /tmp/hydb-upsert-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "test_upsert: FAIL: $*"; exit 1; }

"$HYDB_BUILDDIR/bench/recall_bench" -w "$T" -n 5000 -d 64 -q 10 -F -e 10 \
	-o "$T/gen.csv" >/dev/null
mkdir "$T/first" "$T/second"
"$PY" - "$T" <<'PY'
import sys, numpy as np
t = sys.argv[1]
a = np.fromfile(t + "/data-5000-64-10-1/base.f32", dtype=np.float32).reshape(-1, 64)
np.save(t + "/first/v.npy", a)
# rows 0..1499 move: each takes another row's direction and radius
b = a[(np.arange(1500) * 7 + 3) % 5000] * np.float32(1.01)
np.save(t + "/second/v.npy", b)
np.save(t + "/q.npy", b[:1])
PY
"$H" init "$T/db" --dim 64 >/dev/null
# Rows are keyed by their path relative to the current directory: imported
# from inside first/ and second/, both files' rows are v.npy#ROW.
(cd "$T/first" && "$H" import "$T/db" v.npy --quiet)
(cd "$T/second" && "$H" import "$T/db" v.npy --quiet) 2>"$T/replaced"
grep -q "v.npy: replaced 1500 existing records" "$T/replaced" || fail "replacements not reported: $(cat "$T/replaced")"
"$H" check "$T/db" >"$T/check.out" || { cat "$T/check.out"; fail "hydb check"; }
grep -q "^warning" "$T/check.out" && { cat "$T/check.out"; fail "index not whole after upserts"; }
n=$("$H" stats "$T/db" --json | sed -n 's/^{"count":\([0-9]*\),.*/\1/p')
[ "$n" = 5000 ] || fail "$n records after upserting 1,500 of 5,000"
# the replaced row 0 is found where its new vector is
"$H" query "$T/db" --vector "[$("$PY" -c "import numpy as np; print(','.join(repr(float(x)) for x in np.load('$T/q.npy')[0]))")]" \
	-k 1 >"$T/q.out"
grep -q "v.npy#0 " "$T/q.out" || { cat "$T/q.out"; fail "replaced record not found by its new vector"; }
echo "test_upsert: 1,500 of 5,000 records replaced; index whole, new vectors found"
