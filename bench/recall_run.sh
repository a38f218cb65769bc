#!/bin/sh
# recall_run.sh - the recall bench: hydb against hnswlib-Lorentz (same M,
# efConstruction, metric) on every data family, in one run; CSV, a PNG plot
# per family and a history with a regression check per family.
#
# Families (bench/recall_data.h), name:generator:dimension
#   hysac   HySAC-like shells at radii 1.6-2.9, D=768 (also hnswlib-ip,
#           hnswlib-l2log and FAISS)
#   wide    clustered directions, radii uniform in 0.05-10, D=128
#   tree2   random tree, radius growing with depth, D=2
#   tree16  the same, D=16
#   iso     wrapped normal at the origin, D=8
#   wordnet the WordNet 3.0 noun closure embedded in 10 dimensions
#           (bench/wordnet_embed.py, Debian's wordnet-base; trained once,
#           a few minutes, and cached in $HYDB_CACHE, default
#           ${XDG_CACHE_HOME:-~/.cache}/hydb); every synset but the queries
#
# Environment: HYDB_BENCH_FAMILIES (default all of the above),
# HYDB_BENCH_N (default 100000; HYDB_BENCH_FULL=1 for 1000000; wordnet
# always takes its full size), HYDB_BENCH_NQ (1000), HYDB_BENCH_RACE (0: no
# build race), HYDB_BUILDDIR, HYDB_SRCDIR, PYTHON3.
#
# Output in $HYDB_BUILDDIR/bench/results: recall-FAMILY.csv (columns below),
# recall.csv (every family, a family column last), recall_history.csv (a
# family column last; rows without one are hysac) and recall-FAMILY.png.
# Exit status 1 when hydb regressed on a family against the previous run
# with the same N on this machine: recall@10 down more than 0.01 at an ef,
# or 1-thread QPS down more than 15%.
set -e
B=${HYDB_BUILDDIR:-.}
S=${HYDB_SRCDIR:-$B/..}
N=${HYDB_BENCH_N:-100000}
[ "${HYDB_BENCH_FULL:-0}" = 1 ] && N=1000000
NQ=${HYDB_BENCH_NQ:-1000}
FAMILIES=${HYDB_BENCH_FAMILIES:-hysac wide tree2 tree16 iso wordnet}
PY=${PYTHON3:-/usr/bin/python3}
CACHE=${HYDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hydb}
R=$B/bench/results
mkdir -p "$R"
cols="system,ef,sel,recall1,recall10,recall100,qps1,qps2,build_s,bytes_per_vector,open_s"
all=$R/recall.csv
hist=$R/recall_history.csv
echo "$cols,family" >"$all"

commit=$(git -C "$S" rev-parse --short HEAD 2>/dev/null || echo unknown)
when=$(date -u +%Y-%m-%dT%H:%M:%SZ)
machine="$(uname -n) $(nproc)cpu $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
machine=$(echo "$machine" | tr ',' ' ')
[ -f "$hist" ] || echo "run,commit,date,machine,n,$cols,family" >"$hist"
run=$(($(cut -d, -f1 "$hist" | sort -n | tail -1 | grep -E '^[0-9]+$' || echo 0) + 1))

for fam in $FAMILIES; do
	n=$N
	input=
	case $fam in
	hysac) gen=hysac d=768 ;;
	wide) gen=wide d=128 ;;
	tree2) gen=tree d=2 ;;
	tree16) gen=tree d=16 ;;
	iso) gen=iso d=8 ;;
	wordnet)
		gen=wordnet d=10 n=0
		input=$CACHE/wordnet-noun-10d.f32
		if [ ! -f "$input" ]; then
			mkdir -p "$CACHE"
			echo "training the WordNet embedding into $input"
			"$PY" "$S/bench/wordnet_embed.py" "$input" || {
				echo "wordnet: skipped (no embedding)"
				continue
			}
		fi ;;
	*) echo "recall_run: unknown family $fam" >&2; exit 2 ;;
	esac
	echo "== family $fam ($gen, D=$d)"
	csv=$R/recall-$fam.csv
	echo "$cols" >"$csv"
	"$B/bench/recall_bench" -w "$R" -f "$gen" ${input:+-i "$input"} \
		-n "$n" -d "$d" -q "$NQ" -T -o "$csv" | tee "$R/recall-$fam.log"
	if [ "$gen" = hysac ]; then
		data=$R/data-$n-$d-$NQ-1
	else
		data=$R/data-$gen-$n-$d-$NQ-1
	fi
	n=$(cut -d' ' -f1 "$data/info.txt")
	if [ "$gen" = hysac ]; then
		"$B/bench/hnswlib_peer" "$data" "$csv"
		"$PY" "$S/bench/recall_faiss.py" "$data" "$csv" || true
	else
		HYDB_BENCH_LORENTZ_ONLY=1 "$B/bench/hnswlib_peer" "$data" "$csv"
	fi
	# Build time against hnswlib, both builds interleaved in one process
	# (bench/build_race.cpp): 1 thread each, then 2 threads each.
	if [ "${HYDB_BENCH_RACE:-1}" != 0 ]; then
		for t in 1 2; do
			"$B/bench/build_race" "$data" "$R" 5000 "$t" >"$R/race.out"
			head -1 "$R/race.out"
			tail -2 "$R/race.out" >>"$csv"
		done
		rm -rf "$R/race-db" "$R/race.out"
	fi
	tail -n +2 "$csv" | sed "s/\$/,$fam/" >>"$all"
	tail -n +2 "$csv" | while IFS= read -r row; do
		echo "$run,$commit,$when,$machine,$n,$row,$fam"
	done >>"$hist"
	gnuplot -e "csv='$csv'; hist='$hist'; fam='$fam'; out='$R/recall-$fam.png'" \
		"$S/bench/plot_recall.gp" 2>/dev/null || echo "plot failed (gnuplot)"
done
echo "results: $all, $hist, $R/recall-*.png"

# The table: per family and ef (and the searches without ef, rows
# hydb-auto-TARGET: the beam the database measured for each target), hydb and hnswlib-lorentz recall@10 and
# 1-thread QPS, and hydb's QPS over hnswlib's at recall 0.90 and 0.95
# (each system's QPS interpolated on its own recall curve).
"$PY" "$S/bench/recall_table.py" "$all" || true

# Regression: this run against the latest earlier run, same N, machine and
# family (rows without a family column are hysac).
awk -F, -v run="$run" -v m="$machine" '
	{ f = $17 == "" ? "hysac" : $17 }
	$6 == "hydb" && $4 == m { r[$1 "," f "," $5 "," $7] = $10; q[$1 "," f "," $5 "," $7] = $12
		if ($1 < run && $1 > last[f "," $5]) last[f "," $5] = $1 }
	END {
		bad = 0
		for (k in r) {
			split(k, p, ","); if (p[1] != run) continue
			fn = p[2] "," p[3]
			if (!(fn in last)) continue
			o = last[fn] "," fn "," p[4]
			if (!(o in r)) continue
			if (r[k] < r[o] - 0.01) { print "REGRESSION " p[2] " ef=" p[4] " recall@10 " r[o] " -> " r[k]; bad = 1 }
			if (q[k] < 0.85 * q[o]) { print "REGRESSION " p[2] " ef=" p[4] " QPS " q[o] " -> " q[k]; bad = 1 }
		}
		exit bad
	}' "$hist"
