# bench: 3 and 2 shards behind a coordinator (items_knn through dblink,
# items_knn_fdw through postgres_fdw, the plain query) against one shard
# and one node with all the rows (issue 18); 'make bench-shard' (root,
# PostgreSQL 15; HYDB_PG_INSTALLED=1 uses the installed extension).
EXTRA_DIST += bench/shard_bench.sh bench/shard.mk
BENCH_TARGETS += bench-shard
bench-shard: bench/recall_bench$(EXEEXT)
	HYDB_BUILDDIR=$(abs_top_builddir) HYDB_SRCDIR=$(abs_top_srcdir) \
		PYTHON3=$(PYTHON3) $(SHELL) $(srcdir)/bench/shard_bench.sh
.PHONY: bench-shard
