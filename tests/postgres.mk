# The PostgreSQL extension (postgres/, issue 17) in a temporary cluster:
# pg_regress, recall against sequential scans, kill -9 during inserts and a
# streaming standby. Skipped when PostgreSQL 15 and PGXS are not installed.
TESTS += tests/test_postgres.sh
EXTRA_DIST += tests/test_postgres.sh tests/postgres_check.py \
	tests/postgres_cluster.sh tests/postgres.mk \
	postgres/Makefile postgres/README.md postgres/hydb.control \
	postgres/hydb--0.1.sql postgres/hydb_pg.h postgres/lorentz_type.c \
	postgres/lorentz_func.c postgres/hnsw_am.c postgres/hnsw_graph.c \
	postgres/hnsw_page.c postgres/hnsw_insert.c postgres/hnsw_build.c \
	postgres/hnsw_scan.c postgres/hnsw_vacuum.c postgres/hnsw_check.c \
	postgres/sql/lorentz.sql postgres/sql/index.sql \
	postgres/expected/lorentz.out postgres/expected/index.out

# 'make postgres' builds the extension against this build's library
# archive; 'make postgres-install' installs it into PostgreSQL (root).
PG_CONFIG ?= pg_config
postgres: libhydb_internal.la
	$(MKDIR_P) postgres
	$(MAKE) -C postgres -f $(abs_top_srcdir)/postgres/Makefile \
		HYDB_SRC=$(abs_top_srcdir) HYDB_BUILD=$(abs_top_builddir) PG_CONFIG=$(PG_CONFIG)
postgres-install: postgres
	$(MAKE) -C postgres -f $(abs_top_srcdir)/postgres/Makefile \
		HYDB_SRC=$(abs_top_srcdir) HYDB_BUILD=$(abs_top_builddir) PG_CONFIG=$(PG_CONFIG) install
.PHONY: postgres postgres-install
