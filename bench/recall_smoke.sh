#!/bin/sh
# recall_smoke.sh - a tiny recall bench inside 'make check' so the bench
# never rots: 3,000 HySAC-like points, D=64, then 2,000 points of each other
# generated family (wide-radius D=32, tree D=2 and D=16, isotropic D=8;
# bench/recall_data.h). Checks that it runs, that every node is reachable
# and that recall@10 against exact search holds a floor.
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
for f in wide:32 tree:2 tree:16 iso:8; do
	fam=${f%:*} d=${f#*:}
	: >"$W/$fam$d.csv"
	"$B/bench/recall_bench" -w "$W" -f "$fam" -d "$d" -n 2000 -q 50 -F \
		-e 32,128 -o "$W/$fam$d.csv" >"$W/log"
	sed "s/^/$fam d=$d: /" "$W/log"
	grep -q "hydb graph: 0 of " "$W/log"
	awk -F, -v f="$fam d=$d" '$1 == "hydb" && $2 == 128 {
			if ($5 < 0.95) { print f " recall@10 " $5 " < 0.95"; exit 1 }
			found = 1 }
		END { exit found ? 0 : 1 }' "$W/$fam$d.csv"
done
