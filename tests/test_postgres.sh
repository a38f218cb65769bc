#!/bin/sh
# The PostgreSQL extension (postgres/) in a temporary cluster: the pg_regress
# suite, recall of index scans against sequential scans on HySAC-like data
# (unfiltered and filtered at 1-90% selectivity), a kill -9 of the
# postmaster during a bulk insert, and a streaming standby answering the
# same index queries. Skipped (77) only when PostgreSQL 15's server and
# PGXS are not installed. Installing the extension into PostgreSQL's own
# directories needs root, as initdb and the server need the postgres user.
#
# HYDB_PG_ROWS / HYDB_PG_DIM size the recall data (default 10000 x 64).
set -eu
: "${HYDB_SRCDIR:?}" "${HYDB_BUILDDIR:?}"
PGBIN=${HYDB_PGBIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=$PGBIN/pg_config
PY=${PYTHON3:-python3}
ROWS=${HYDB_PG_ROWS:-10000}
DIM=${HYDB_PG_DIM:-64}
NQ=${HYDB_PG_QUERIES:-100}
if [ ! -x "$PG_CONFIG" ] || [ ! -x "$PGBIN/postgres" ] ||
   [ ! -f "$("$PG_CONFIG" --pgxs 2>/dev/null)" ]; then
	echo "test_postgres: SKIP: PostgreSQL 15 server or PGXS not installed"
	exit 77
fi
fail() { echo "test_postgres: FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root to install the extension and run the cluster as postgres"
id postgres >/dev/null 2>&1 || fail "no postgres system user"

T=$(mktemp -d /tmp/hydb-pg-XXXXXX)
chmod 755 "$T"
chown postgres "$T"
as_pg() { runuser -u postgres -- "$@"; }
stop_all() {
	for d in "$T/standby" "$T/data"; do
		[ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
	done
	rm -rf "$T"
}
trap 'stop_all' EXIT
trap 'exit 1' INT TERM HUP

# Build and install the extension from this tree (idempotent).
mkdir -p "$HYDB_BUILDDIR/postgres"
make -s -C "$HYDB_BUILDDIR/postgres" -f "$HYDB_SRCDIR/postgres/Makefile" \
	HYDB_SRC="$HYDB_SRCDIR" HYDB_BUILD="$HYDB_BUILDDIR" PG_CONFIG="$PG_CONFIG" install \
	>"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "extension build or install"; }

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
PORT2=$(free_port)
while [ "$PORT2" = "$PORT" ]; do PORT2=$(free_port); done

start() { # data dir, port, log
	as_pg "$PGBIN/pg_ctl" -D "$1" -l "$3" -w -t 120 \
		-o "-p $2 -k $T -c listen_addresses=''" start >/dev/null ||
		{ cat "$3"; fail "server in $1 did not start"; }
}
as_pg "$PGBIN/initdb" -D "$T/data" -A trust -U postgres >"$T/initdb.log" 2>&1 ||
	{ cat "$T/initdb.log"; fail initdb; }
cat >>"$T/data/postgresql.conf" <<CONF
wal_level = replica
max_wal_senders = 4
hot_standby = on
shared_buffers = 256MB
maintenance_work_mem = 256MB
CONF
start "$T/data" "$PORT" "$T/log"
psql1() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T" -p "$PORT" -U postgres "$@"; }
psql2() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T" -p "$PORT2" -U postgres "$@"; }

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
	-d "$DIM" -q "$NQ" -e 64 -F >"$T/lib.log" 2>&1 || { cat "$T/lib.log"; fail recall_bench; }
DATA=$(ls -d "$T"/bench/data-*)
psql1 -c "CREATE DATABASE recall"
"$PY" "$HYDB_SRCDIR/tests/postgres_check.py" recall --psql "$PGBIN/psql" --host "$T" \
	--port "$PORT" --data "$DATA" --queries "$NQ" --efs 32,64,128 --min-recall 0.95 --filtered ||
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
