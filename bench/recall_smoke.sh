#!/bin/sh
# recall_smoke.sh - a tiny recall bench inside 'make check' so the bench
# never rots: 3,000 points, D=64. Checks that it runs and that recall is sane.
set -e
B=${HYDB_BUILDDIR:-.}
W=$(mktemp -d /tmp/hydb-recall-smoke.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$B/bench/recall_bench" -w "$W" -n 3000 -q 50 -d 64 -o "$W/out.csv" >"$W/log"
cat "$W/log"
# every node reachable: an unreachable one caps recall whatever ef is
grep -q "hydb graph: 0 of " "$W/log"
# recall@10 at ef=128 (column 5) must be high on this small set
awk -F, '$1 == "hydb" && $2 == 128 { if ($5 < 0.9) { print "recall@10 " $5; exit 1 } found = 1 }
	END { exit found ? 0 : 1 }' "$W/out.csv"
