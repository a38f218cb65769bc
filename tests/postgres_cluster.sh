# Sourced by tests/test_postgres.sh and bench/postgres_bench.sh: a temporary
# PostgreSQL 15 cluster run as the postgres system user (the server refuses
# root), with its Unix socket in a temporary folder, stopped on exit even on
# failure, and the extension built from this tree and installed.
# Needs: HYDB_SRCDIR, HYDB_BUILDDIR; sets PGBIN, T, PORT, PORT2, psql1, start.
PGBIN=${HYDB_PGBIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=$PGBIN/pg_config
PY=${PYTHON3:-python3}
pg_available() {
	[ -x "$PG_CONFIG" ] && [ -x "$PGBIN/postgres" ] && [ -x "$PGBIN/initdb" ] &&
		[ -f "$("$PG_CONFIG" --pgxs 2>/dev/null)" ]
}
fail() { echo "$0: FAIL: $*"; exit 1; }
as_pg() { runuser -u postgres -- "$@"; }

cluster_setup() {
	[ "$(id -u)" = 0 ] || fail "must run as root: the extension is installed into PostgreSQL's directories and the cluster runs as postgres"
	id postgres >/dev/null 2>&1 || fail "no postgres system user"
	T=$(mktemp -d "${TMPDIR:-/tmp}/hydb-pg-XXXXXX")
	chmod 755 "$T"
	chown postgres "$T"
	trap 'cluster_stop' EXIT
	trap 'exit 1' INT TERM HUP
	install_extension
	PORT=$(free_port)
	PORT2=$(free_port)
	while [ "$PORT2" = "$PORT" ]; do PORT2=$(free_port); done
	as_pg "$PGBIN/initdb" -D "$T/data" -A trust -U postgres >"$T/initdb.log" 2>&1 ||
		{ cat "$T/initdb.log"; fail initdb; }
	cat >>"$T/data/postgresql.conf" <<CONF
wal_level = replica
max_wal_senders = 4
hot_standby = on
shared_buffers = ${HYDB_PG_SHARED_BUFFERS:-256MB}
max_wal_size = 4GB
CONF
	start "$T/data" "$PORT" "$T/log"
}

# The extension built from this tree and installed into PostgreSQL's
# directories; HYDB_PG_INSTALLED=1 uses the one installed already. Needs T.
install_extension() {
	[ "${HYDB_PG_INSTALLED:-0}" = 1 ] && return 0
	mkdir -p "$HYDB_BUILDDIR/postgres"
	make -s -C "$HYDB_BUILDDIR/postgres" -f "$HYDB_SRCDIR/postgres/Makefile" \
		HYDB_SRC="$HYDB_SRCDIR" HYDB_BUILD="$HYDB_BUILDDIR" PG_CONFIG="$PG_CONFIG" install \
		>"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "extension build or install"; }
}

cluster_stop() {
	for d in "$T/standby" "$T/data"; do
		[ -f "$d/postmaster.pid" ] &&
			as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
	done
	rm -rf "$T"
}

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() { # data dir, port, log
	as_pg "$PGBIN/pg_ctl" -D "$1" -l "$3" -w -t 300 \
		-o "-p $2 -k $T -c listen_addresses=''" start >/dev/null ||
		{ cat "$3"; fail "server in $1 did not start"; }
}

psql1() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T" -p "$PORT" -U postgres "$@"; }
