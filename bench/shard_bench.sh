#!/bin/sh
# Scale-out bench (issue 18): 3 shards and 2 shards, each behind a
# coordinator, against one node holding all the rows, on HySAC-like data
# from the recall bench generator. Latency (one client): items_knn (dblink
# to every shard's hydb_knn_local), items_knn_fdw (postgres_fdw async
# foreign scans), the plain ORDER BY, one shard over its share of the rows
# asked directly, the single node, and items_knn(q, 0) (the fan-out without
# a search); all forms interleaved query by query in
# warm sessions, so that the ratios against one shard come from the same
# minutes of this (shared) machine. Throughput with HYDB_SHARD_CLIENTS
# clients. Recall@10 of every form against exact, each shard's own, and the
# checks behind the README's account of the sharded recall. Root,
# PostgreSQL 15 with postgres_fdw and dblink. All servers share this
# machine's CPUs (nproc), so the CPU count bounds what sharding can show.
#
# HYDB_SHARD_BENCH_ROWS / _DIM / _QUERIES / _EF / _ROUNDS (default
# 100000 x 768, 100 queries, ef 64, 2 rounds).
set -eu
: "${HYDB_SRCDIR:?}" "${HYDB_BUILDDIR:?}"
ROWS=${HYDB_SHARD_BENCH_ROWS:-100000}
DIM=${HYDB_SHARD_BENCH_DIM:-768}
NQ=${HYDB_SHARD_BENCH_QUERIES:-100}
EF=${HYDB_SHARD_BENCH_EF:-64}
ROUNDS=${HYDB_SHARD_BENCH_ROUNDS:-2}
CLIENTS=${HYDB_SHARD_CLIENTS:-4}
. "$HYDB_SRCDIR/tests/postgres_cluster.sh"
pg_available && [ -f "$PGBIN/../lib/postgres_fdw.so" ] && [ -f "$PGBIN/../lib/dblink.so" ] ||
	fail "PostgreSQL 15, PGXS, postgres_fdw or dblink not installed"
[ "$(id -u)" = 0 ] || fail "must run as root"
TOOL="$HYDB_SRCDIR/tools/hydb-pg-cluster"
T=$(mktemp -d "${TMPDIR:-/tmp}/hydb-shard-bench-XXXXXX")
chmod 755 "$T"
C=$T/cluster C2=$T/cluster2
trap '"$TOOL" purge "$C" >/dev/null 2>&1; "$TOOL" purge "$C2" >/dev/null 2>&1; rm -rf "$T"' EXIT
trap 'exit 1' INT TERM HUP
CHECK="$PY $HYDB_SRCDIR/tests/shard_check.py --psql $PGBIN/psql"

install_extension
mkdir -p "$T/bench"
"$HYDB_BUILDDIR/bench/recall_bench" -w "$T/bench" -o "$T/lib.csv" -n "$ROWS" \
	-d "$DIM" -q "$NQ" -G >"$T/lib.log" 2>&1 || { cat "$T/lib.log"; fail "making the data set"; }
DATA=$(ls -d "$T"/bench/data-*)
$CHECK npy --data "$DATA" --out "$T/base"
echo "shard bench: $ROWS x $DIM, $NQ queries, ef $EF, $(nproc) CPUs (nproc), $CLIENTS clients"
for c in "3 $C" "2 $C2"; do
	set -- $c
	"$TOOL" up "$1" "$2" "$DIM"
	"$TOOL" ef "$2" "$EF"
	"$TOOL" load "$2" "$T/base.npy" "$T/base_labels.npy"
	i=1
	while [ "$i" -le "$1" ]; do
		"$TOOL" psql "$2" shard$i -A -t -c "SELECT '$1 shards: shard$i rows ' || count(*) ||
			', index bytes/row ' || round(pg_relation_size('items_embedding_idx') / count(*)::numeric, 1) ||
			', table bytes/row ' || round(pg_total_relation_size('items') / count(*)::numeric, 1) FROM items"
		i=$((i + 1))
	done
done
$CHECK single --cluster "$C" --data "$DATA"
for c in "$C" "$C2"; do
	$CHECK knn --cluster "$c" --single-cluster "$C" --data "$DATA" --queries "$NQ" --ef "$EF" \
		--min-recall 0 --min-same 0 || true
done
$CHECK gap --cluster "$C" --data "$DATA" --queries "$NQ" --ef "$EF"
$CHECK timing --cluster "$C" --cluster2 "$C2" --data "$DATA" --queries "$NQ" --ef "$EF" \
	--rounds "$ROUNDS" --clients "$CLIENTS" \
	--forms function,fdw,plain,shard,single,2:function,2:fdw,2:plain,2:shard
