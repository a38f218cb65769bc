# bench: query-cli
# hydb query --vector-file (the command line, whole process, results
# printed as JSON to /dev/null) against hydb_search_batch on the same
# queries in one process (bench/query_batch), interleaved A B A B.
EXTRA_PROGRAMS += bench/query_batch
bench_query_batch_SOURCES = bench/query_batch.c
bench_query_batch_LDADD = libhydb_internal.la $(HYDB_DEPLIBS)
CLEANFILES += bench/query_batch$(EXEEXT)
EXTRA_DIST += bench/bench_query_cli.sh
BENCH_TARGETS += bench-query-cli
bench-query-cli: bench/query_batch$(EXEEXT) hydb$(EXEEXT)
	HYDB_BUILDDIR=$(abs_top_builddir) PYTHON3=$(PYTHON3) sh $(abs_top_srcdir)/bench/bench_query_cli.sh
