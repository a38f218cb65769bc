# bench: 3 shards behind a postgres_fdw coordinator against one node with
# all the rows (issue 18); 'make bench-shard' (root, PostgreSQL 15).
EXTRA_DIST += bench/shard_bench.sh bench/shard.mk
BENCH_TARGETS += bench-shard
bench-shard: bench/recall_bench$(EXEEXT)
	HYDB_BUILDDIR=$(abs_top_builddir) HYDB_SRCDIR=$(abs_top_srcdir) \
		PYTHON3=$(PYTHON3) $(SHELL) $(srcdir)/bench/shard_bench.sh
.PHONY: bench-shard
