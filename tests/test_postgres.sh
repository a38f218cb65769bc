#!/bin/sh
# The PostgreSQL extension (postgres/) in a temporary cluster: the pg_regress
# suite, recall of index scans against sequential scans on HySAC-like data
# (unfiltered and filtered at 1-90% selectivity), a kill -9 of the
# postmaster during a bulk insert, and a streaming standby answering the
# same index queries. Skipped (77) only when PostgreSQL 15's server and
# PGXS are not installed. Installing the extension into PostgreSQL's own
# directories needs root, as initdb and the server need the postgres user.
#
# HYDB_PG_ROWS / HYDB_PG_DIM size the recall data (default 100000 x 768,
# the issue's size: about 4 minutes, most of it CREATE INDEX);
# HYDB_PG_QUERIES and HYDB_PG_FILTER_QUERIES the queries (100, 20 filtered:
# each filtered query's truth is a sequential scan).
set -eu
: "${HYDB_SRCDIR:?}" "${HYDB_BUILDDIR:?}"
ROWS=${HYDB_PG_ROWS:-100000}
DIM=${HYDB_PG_DIM:-768}
NQ=${HYDB_PG_QUERIES:-100}
. "$HYDB_SRCDIR/tests/postgres_cluster.sh"
# The extension is loaded by PostgreSQL's own server, which is not built
# with the sanitizers: an instrumented archive cannot run inside it (the
# sanitizer runtime must be the first library of the process). The plain
# build's pass of the suite runs this test.
if [ -n "${HYDB_SAN_LDFLAGS:-}" ]; then
	echo "test_postgres: SKIP: sanitizer build (PostgreSQL's server is not instrumented)"
	exit 77
fi
if ! pg_available; then
	echo "test_postgres: SKIP: PostgreSQL 15 server or PGXS not installed"
	exit 77
fi
cluster_setup

# 1. pg_regress
REGRESS=$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress
mkdir -p "$T/regress"
"$REGRESS" --bindir="$PGBIN" --host="$T" --port="$PORT" --user=postgres \
	--inputdir="$HYDB_SRCDIR/postgres" --outputdir="$T/regress" \
	--dbname=hydb_regress lorentz index >"$T/regress.log" 2>&1 ||
	{ cat "$T/regress.log"; cat "$T/regress/regression.diffs" 2>/dev/null; fail pg_regress; }
grep -E "tests passed|ok" "$T/regress.log"

# 2. recall on HySAC-like data from the bench generator
mkdir -p "$T/bench"
"$HYDB_BUILDDIR/bench/recall_bench" -w "$T/bench" -o "$T/lib.csv" -n "$ROWS" \
	-d "$DIM" -q "$NQ" -G >"$T/lib.log" 2>&1 || { cat "$T/lib.log"; fail recall_bench; }
DATA=$(ls -d "$T"/bench/data-*)
psql1 -c "CREATE DATABASE recall"
"$PY" "$HYDB_SRCDIR/tests/postgres_check.py" recall --psql "$PGBIN/psql" --host "$T" \
	--port "$PORT" --data "$DATA" --queries "$NQ" --efs 16,32,64,128 --min-recall 0.95 --filtered \
	--filter-queries "${HYDB_PG_FILTER_QUERIES:-20}" --reach 0.99 ||
	fail "recall"

# 3. crash: kill -9 the postmaster during a bulk insert
"$PY" "$HYDB_SRCDIR/tests/postgres_check.py" crash --psql "$PGBIN/psql" --host "$T" \
	--port "$PORT" --data "$T/data" --pg-ctl "$PGBIN/pg_ctl" --log "$T/log" ||
	fail "crash"

# 4. a streaming standby answers the same index queries
as_pg "$PGBIN/pg_basebackup" -h "$T" -p "$PORT" -U postgres -D "$T/standby" -R -X stream \
	>"$T/basebackup.log" 2>&1 || { cat "$T/basebackup.log"; fail pg_basebackup; }
start "$T/standby" "$PORT2" "$T/log2"
"$PY" "$HYDB_SRCDIR/tests/postgres_check.py" standby --psql "$PGBIN/psql" --host "$T" \
	--port "$PORT" --port2 "$PORT2" || fail "standby"
echo "test_postgres: all passed"
