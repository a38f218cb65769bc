# The HNSW index.
EXTRA_DIST += index/README.md
libhydb_internal_la_SOURCES += index/hnsw.h index/hnsw_impl.h index/graph.c index/walk.c \
	index/insert.c index/remove.c index/hnsw.c \
	index/hnsw_store.c index/insert_par.c index/hnsw_check.c \
	index/reach.c index/pending.c index/pairs.c index/select.c

if HAVE_CHECK
check_PROGRAMS += tests/check_hnsw
tests_check_hnsw_SOURCES = tests/check_hnsw.c
tests_check_hnsw_LDADD = $(TEST_LIBS)
TESTS += tests/check_hnsw
endif
