# encoder: forward
# The HySAC transformer forward pass.
libhydb_internal_la_SOURCES += encoder/forward.h encoder/forward.c encoder/vision.c encoder/text.c \
	encoder/pool.h encoder/pool.c encoder/bf16.h encoder/bf16.c

if HAVE_CHECK
check_PROGRAMS += tests/check_blas
tests_check_blas_SOURCES = tests/check_blas.c
tests_check_blas_LDADD = $(TEST_LIBS)
TESTS += tests/check_blas
check_PROGRAMS += tests/check_pool
tests_check_pool_SOURCES = tests/check_pool.c
tests_check_pool_LDADD = $(TEST_LIBS)
TESTS += tests/check_pool
# The bf16 engine: its matmuls, a tiny model against float32, refusals.
check_PROGRAMS += tests/check_bf16
tests_check_bf16_SOURCES = tests/check_bf16.c
tests_check_bf16_LDADD = $(TEST_LIBS)
TESTS += tests/check_bf16
endif

# The forward pass against a PyTorch reference on small random models.
check_SCRIPTS += tests/test_forward.sh
TESTS += tests/test_forward.sh
EXTRA_DIST += tests/ref_hysac.py tests/test_forward.sh
