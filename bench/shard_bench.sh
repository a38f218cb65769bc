#!/bin/sh
# Scale-out bench (issue 18): 3 shards behind a coordinator against one node
# holding all the rows, on HySAC-like data from the recall bench generator.
# Latency (one client): sharded items_knn and plain ORDER BY, one shard over
# its third of the rows, the single node; throughput with HYDB_SHARD_CLIENTS
# clients. Root, PostgreSQL 15 with postgres_fdw. All shards share this
# machine's CPUs, so the CPU count bounds what sharding can show here.
#
# HYDB_SHARD_BENCH_ROWS / _DIM / _QUERIES (default 100000 x 768, 100).
set -eu
: "${HYDB_SRCDIR:?}" "${HYDB_BUILDDIR:?}"
ROWS=${HYDB_SHARD_BENCH_ROWS:-100000}
DIM=${HYDB_SHARD_BENCH_DIM:-768}
NQ=${HYDB_SHARD_BENCH_QUERIES:-100}
EF=${HYDB_SHARD_BENCH_EF:-64}
CLIENTS=${HYDB_SHARD_CLIENTS:-4}
. "$HYDB_SRCDIR/tests/postgres_cluster.sh"
pg_available && [ -f "$PGBIN/../lib/postgres_fdw.so" ] || fail "PostgreSQL 15, PGXS or postgres_fdw not installed"
[ "$(id -u)" = 0 ] || fail "must run as root"
TOOL="$HYDB_SRCDIR/tools/hydb-pg-cluster"
T=$(mktemp -d "${TMPDIR:-/tmp}/hydb-shard-bench-XXXXXX")
chmod 755 "$T"
C=$T/cluster
trap '"$TOOL" purge "$C" >/dev/null 2>&1; rm -rf "$T"' EXIT
trap 'exit 1' INT TERM HUP
CHECK="$PY $HYDB_SRCDIR/tests/shard_check.py --psql $PGBIN/psql --cluster $C"

make -s -C "$HYDB_BUILDDIR/postgres" -f "$HYDB_SRCDIR/postgres/Makefile" \
	HYDB_SRC="$HYDB_SRCDIR" HYDB_BUILD="$HYDB_BUILDDIR" PG_CONFIG="$PG_CONFIG" install \
	>"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "extension build or install"; }
mkdir -p "$T/bench"
"$HYDB_BUILDDIR/bench/recall_bench" -w "$T/bench" -o "$T/lib.csv" -n "$ROWS" \
	-d "$DIM" -q "$NQ" -e "$EF" -F >"$T/lib.log" 2>&1 || { cat "$T/lib.log"; fail recall_bench; }
DATA=$(ls -d "$T"/bench/data-*)
$CHECK npy --data "$DATA" --out "$T/base"
echo "shard bench: $ROWS x $DIM, $NQ queries, ef $EF, $(nproc) CPUs, $CLIENTS clients"
"$TOOL" up 3 "$C" "$DIM"
"$TOOL" ef "$C" "$EF"
"$TOOL" load "$C" "$T/base.npy" "$T/base_labels.npy"
$CHECK single --data "$DATA"
for s in shard1 shard2 shard3; do
	"$TOOL" psql "$C" $s -A -t -c "SELECT '$s rows ' || count(*) || ', index bytes/row ' ||
		round(pg_relation_size('items_embedding_idx') / count(*)::numeric, 1) ||
		', table bytes/row ' || round(pg_total_relation_size('items') / count(*)::numeric, 1) FROM items"
done
$CHECK knn --data "$DATA" --queries "$NQ" --ef "$EF" --min-recall 0 --min-same 0 || true
for form in function plain shard single; do
	$CHECK timing --data "$DATA" --queries "$NQ" --ef "$EF" --form "$form" --clients "$CLIENTS"
done
