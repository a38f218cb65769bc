#!/bin/sh
# hydb calibrate re-labels through the library (hydb_relabel_by_radius),
# in one transaction with the index's per-label counts, which the query
# planner reads to estimate a label filter. Before, calibrate wrote the
# labels into the store alone: 600 images imported unsafe of which 500
# became safe still counted as 0 safe, so --safe-only was planned as a scan
# of almost no matches ("brute-filtered") instead of a graph walk, and
# hydb check did not notice. Now the plan follows the labels, and hydb
# check compares the counts with the blocks.
set -eu
: "${HYDB_BUILDDIR:?}"
H="$HYDB_BUILDDIR/hydb"
PY=${PYTHON3:-/usr/bin/python3}
T=$(mktemp -d /tmp/hydb-calibrate-counts-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fails=0
fail() { echo "test_calibrate_counts: FAIL: $*"; fails=$((fails + 1)); }

# Image i at radius 0.1 + 2.9 i / 600, all unsafe; the labels put the
# threshold between k409 (safe) and k590 (unsafe): 500 images end up safe.
"$PY" - <<'PY'
import json, math
with open("pts.jsonl", "w") as f:
    for i in range(600):
        r = 0.1 + 2.9 * i / 600
        d = [math.sin(1.7 * i + 2.3 * j) + 0.1 * (j + 1) for j in range(4)]
        n = math.sqrt(sum(x * x for x in d))
        v = [math.sinh(r) * x / n for x in d]
        f.write(json.dumps({"key": "k%d" % i, "vector": v, "modality": "image", "label": "unsafe"}) + "\n")
with open("labels.csv", "w") as f:
    for i in range(400, 410):
        f.write("k%d,safe\n" % i)
    for i in range(590, 600):
        f.write("k%d,unsafe\n" % i)
PY
"$H" init db --dim 4 >/dev/null
"$H" import db pts.jsonl --quiet

plan() { "$H" query db --vector '[0.5,0.5,0.5,0.5]' -k 5 --ef 64 --safe-only --json |
	"$PY" -c 'import json, sys; print(" ".join(sorted({json.loads(l)["plan"] for l in sys.stdin})))'; }

[ "$(plan)" = "" ] || fail "before calibrate: --safe-only found something"
"$H" calibrate db --labels labels.csv >calibrate.txt
grep -q "^re-labelled 500 entries$" calibrate.txt || fail "calibrate: $(cat calibrate.txt)"
groups=$("$H" stats db --json | "$PY" -c 'import json, sys
print(" ".join("%s/%s=%d" % (g["modality"], g["label"], g["count"]) for g in json.load(sys.stdin)["groups"]))')
[ "$groups" = "image/safe=500 image/unsafe=100" ] || fail "stats after calibrate: $groups"
# 500 of 600 match, above sqrt(4 ef N) = 392: the walk, not the scan.
p=$(plan)
[ "$p" = "hnsw-filtered" ] || fail "--safe-only after calibrate planned as '$p', want hnsw-filtered (stale label counts)"
st=0
"$H" check db >check.txt || st=$?
[ "$st" -eq 0 ] || fail "hydb check after calibrate: exit $st: $(grep problem check.txt | head -3)"

[ "$fails" -eq 0 ] || exit 1
echo "test_calibrate_counts: ok"
