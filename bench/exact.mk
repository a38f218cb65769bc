# bench: exact
# Exact k-NN, hydb against numpy (GEMM + stable key + argpartition) on the
# same 100,000 x 768 vectors and 1,000 queries; checks both give the same ids.
EXTRA_PROGRAMS += bench/bench_exact
bench_bench_exact_SOURCES = bench/bench_exact.c
bench_bench_exact_LDADD = libhydb_internal.la $(HYDB_DEPLIBS)
CLEANFILES += bench/bench_exact$(EXEEXT)
EXTRA_DIST += bench/bench_exact_numpy.py
BENCH_TARGETS += bench-exact
bench-exact: bench/bench_exact$(EXEEXT)
	HYDB_SRCDIR=$(abs_top_srcdir) PYTHON3=$(PYTHON3) \
		OPENBLAS_CORETYPE=SkylakeX ./bench/bench_exact$(EXEEXT)
