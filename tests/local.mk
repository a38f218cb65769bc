# Unit and integration tests (Check). OPENBLAS_NUM_THREADS=1 is set in
# AM_TESTS_ENVIRONMENT.
if HAVE_CHECK
check_PROGRAMS += tests/check_db
tests_check_db_SOURCES = tests/check_db.c
tests_check_db_LDADD = $(TEST_LIBS)
TESTS += tests/check_db
endif
