# Unit and integration tests (Check). OPENBLAS_NUM_THREADS=1 is set in
# AM_TESTS_ENVIRONMENT.
if HAVE_CHECK
endif
