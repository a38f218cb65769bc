# bench: the PostgreSQL extension against the library (issue 17): build
# time against hydb import, latency at recall 0.95, bytes per row, recall
# tables; 'make bench-postgres' (root, PostgreSQL 15 installed).
EXTRA_DIST += bench/postgres_bench.sh bench/postgres.mk
BENCH_TARGETS += bench-postgres
bench-postgres: hydb$(EXEEXT) bench/recall_bench$(EXEEXT)
	HYDB_BUILDDIR=$(abs_top_builddir) HYDB_SRCDIR=$(abs_top_srcdir) \
		PYTHON3=$(PYTHON3) $(SHELL) $(srcdir)/bench/postgres_bench.sh
.PHONY: bench-postgres
