# bench: recall
# HNSW recall and speed on six data families against hnswlib (and FAISS on
# HySAC-like data)
# ('make bench'); a tiny run in 'make check' keeps it working.
EXTRA_PROGRAMS += bench/hnswlib_peer bench/build_race
bench_recall_bench_SOURCES = bench/recall_bench.c bench/gen_hysac.c \
	bench/recall_data.h
bench_recall_bench_LDADD = libhydb_bench.la $(HYDB_DEPLIBS)
bench_hnswlib_peer_SOURCES = bench/hnswlib_peer.cpp bench/gen_hysac.c \
	bench/recall_data.h bench/hnswlib_lorentz.h
bench_hnswlib_peer_LDADD = libhydb_internal.la $(HYDB_DEPLIBS)
bench_build_race_SOURCES = bench/build_race.cpp bench/gen_hysac.c \
	bench/recall_data.h bench/hnswlib_lorentz.h
bench_build_race_LDADD = libhydb_internal.la $(HYDB_DEPLIBS)
check_PROGRAMS += bench/recall_bench
CLEANFILES += bench/hnswlib_peer$(EXEEXT) bench/build_race$(EXEEXT)
EXTRA_DIST += bench/recall_run.sh bench/recall_faiss.py bench/plot_recall.gp \
	bench/recall_smoke.sh bench/recall_table.py bench/wordnet_embed.py \
	bench/wordnet_smoke.sh
TESTS += bench/recall_smoke.sh bench/wordnet_smoke.sh
BENCH_TARGETS += bench-recall
bench-recall: bench/recall_bench$(EXEEXT) bench/hnswlib_peer$(EXEEXT) \
		bench/build_race$(EXEEXT)
	HYDB_BUILDDIR=$(abs_top_builddir) HYDB_SRCDIR=$(abs_top_srcdir) \
		PYTHON3=$(PYTHON3) $(SHELL) $(srcdir)/bench/recall_run.sh
