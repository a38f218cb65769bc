# bench: encoder
# ViT-L/14 images/s and caption latency against the sgemm peak and PyTorch,
# and the forward pass's accuracy at full size (bench/bench_encoder.sh).
EXTRA_PROGRAMS += bench/bench_encoder
bench_bench_encoder_SOURCES = bench/bench_encoder.c
bench_bench_encoder_LDADD = libhydb_bench.la $(HYDB_DEPLIBS)
EXTRA_DIST += bench/bench_encoder.sh
CLEANFILES += bench/bench_encoder
BENCH_TARGETS += bench-encoder
bench-encoder: bench/bench_encoder hydb
	HYDB_SRCDIR=$(abs_top_srcdir) HYDB_BUILDDIR=$(abs_top_builddir) \
	  $(SHELL) $(srcdir)/bench/bench_encoder.sh
