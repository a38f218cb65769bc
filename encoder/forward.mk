# encoder: forward
# BLAS loader (src/blas.c) and the HySAC transformer forward pass.
libhydb_internal_la_SOURCES += src/blas.h src/blas.c

if HAVE_CHECK
check_PROGRAMS += tests/check_blas
tests_check_blas_SOURCES = tests/check_blas.c
tests_check_blas_LDADD = $(TEST_LIBS)
TESTS += tests/check_blas
endif
