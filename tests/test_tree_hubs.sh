#!/bin/sh
# Every node joins the reachability tree even when all its candidates'
# lists are full of tree links: 8 hubs near the origin and 400 leaves far
# out in random directions (the shape of a taxonomy's embedding, where
# leaves share a few parents), with M = 2 (4 links on layer 0) and a beam
# of 8 at construction, so that every new leaf's candidates are the full
# hubs. The WordNet noun embedding left 60,538 of 81,615 nodes outside the
# tree and 29,903 unreachable this way. hydb check must find none.
set -eu
: "${HYDB_BUILDDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
T=$(mktemp -d /tmp/hydb-hubs-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "test_tree_hubs: FAIL: $*"; exit 1; }
"$PY" - "$T/pts.jsonl" <<'PY'
import json, math, random, sys
random.seed(11)
d = 10
def point(r):
    v = [random.gauss(0, 1) for _ in range(d)]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n * math.sinh(r) for x in v]
with open(sys.argv[1], "w") as f:
    for i in range(8):
        f.write(json.dumps({"key": "hub%d" % i, "vector": point(0.2)}) + "\n")
    for i in range(400):
        f.write(json.dumps({"key": "leaf%d" % i, "vector": point(8.0)}) + "\n")
PY
"$H" init "$T/db" --dim 10 --m 2 --ef-construction 8 >/dev/null
for b in 1 50; do
	rm -rf "$T/db"
	"$H" init "$T/db" --dim 10 --m 2 --ef-construction 8 >/dev/null
	"$H" import "$T/db" "$T/pts.jsonl" --quiet --batch "$b"
	# (hydb check's exit status is not asserted: with 4 links a node, the
	# greedy walk's stopping rule misses some reachable leaves even with a
	# beam above the database's size, which check reports as problems.)
	"$H" check "$T/db" >"$T/check.out" 2>&1 || true
	grep -q "^checked 408 records" "$T/check.out" || { cat "$T/check.out"; fail "hydb check did not run"; }
	if grep -q "outside the reachability tree\|cannot be reached" "$T/check.out"; then
		grep "^warning: [0-9]" "$T/check.out"
		fail "import in batches of $b: nodes outside the tree"
	fi
done
echo "test_tree_hubs: ok"
