#!/bin/sh
# recall_run.sh - the recall bench: hydb, hnswlib peers and FAISS on the same
# HySAC-like data; CSV, PNG plot and a history with regression check.
#
# Environment: HYDB_BENCH_N (default 100000; HYDB_BENCH_FULL=1 for
# 1000000), HYDB_BENCH_NQ (1000), HYDB_BENCH_RACE (0: no build race),
# HYDB_BUILDDIR, HYDB_SRCDIR, PYTHON3.
# Exit status 1 when hydb regressed against the previous run with the same
# N on this machine: recall@10 down more than 0.01 at an ef, or 1-thread QPS
# down more than 15%.
set -e
B=${HYDB_BUILDDIR:-.}
S=${HYDB_SRCDIR:-$B/..}
N=${HYDB_BENCH_N:-100000}
[ "${HYDB_BENCH_FULL:-0}" = 1 ] && N=1000000
NQ=${HYDB_BENCH_NQ:-1000}
R=$B/bench/results
mkdir -p "$R"
csv=$R/recall.csv
hist=$R/recall_history.csv
echo "system,ef,sel,recall1,recall10,recall100,qps1,qps2,build_s,bytes_per_vector,open_s" >"$csv"
"$B/bench/recall_bench" -w "$R" -n "$N" -q "$NQ" -o "$csv"
data=$R/data-$N-768-$NQ-1
"$B/bench/hnswlib_peer" "$data" "$csv"
"${PYTHON3:-/usr/bin/python3}" "$S/bench/recall_faiss.py" "$data" "$csv" || true
# Build time against hnswlib, both builds interleaved in one process
# (bench/build_race.cpp): 1 thread each, then 2 threads each.
# HYDB_BENCH_RACE=0 skips it.
if [ "${HYDB_BENCH_RACE:-1}" != 0 ]; then
	for t in 1 2; do
		"$B/bench/build_race" "$data" "$R" 5000 "$t" >"$R/race.out"
		head -1 "$R/race.out"
		tail -2 "$R/race.out" >>"$csv"
	done
	rm -rf "$R/race-db" "$R/race.out"
fi

commit=$(git -C "$S" rev-parse --short HEAD 2>/dev/null || echo unknown)
when=$(date -u +%Y-%m-%dT%H:%M:%SZ)
machine="$(uname -n) $(nproc)cpu $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
[ -f "$hist" ] || echo "run,commit,date,machine,n,system,ef,sel,recall1,recall10,recall100,qps1,qps2,build_s,bytes_per_vector,open_s" >"$hist"
run=$(($(cut -d, -f1 "$hist" | sort -n | tail -1 | grep -E '^[0-9]+$' || echo 0) + 1))
tail -n +2 "$csv" | while IFS= read -r row; do
	echo "$run,$commit,$when,$(echo "$machine" | tr ',' ' '),$N,$row"
done >>"$hist"

gnuplot -e "csv='$csv'; hist='$hist'; out='$R/recall.png'" \
	"$S/bench/plot_recall.gp" 2>/dev/null || echo "plot failed (gnuplot)"
echo "results: $csv, $hist, $R/recall.png"

# Regression: this run against the latest earlier run, same N and machine.
awk -F, -v run="$run" -v n="$N" -v m="$(echo "$machine" | tr ',' ' ')" '
	$6 == "hydb" && $5 == n && $4 == m && $1 < run { last = $1 > last ? $1 : last }
	$6 == "hydb" && $5 == n && $4 == m { r[$1 "," $7] = $10; q[$1 "," $7] = $12 }
	END {
		bad = 0
		if (!last) exit 0
		for (k in r) {
			split(k, p, ","); if (p[1] != run) continue
			o = last "," p[2]
			if (!(o in r)) continue
			if (r[k] < r[o] - 0.01) { print "REGRESSION ef=" p[2] " recall@10 " r[o] " -> " r[k]; bad = 1 }
			if (q[k] < 0.85 * q[o]) { print "REGRESSION ef=" p[2] " QPS " q[o] " -> " q[k]; bad = 1 }
		}
		exit bad
	}' "$hist"
