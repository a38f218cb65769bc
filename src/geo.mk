# Lorentz geometry and exact search.
libhydb_internal_la_SOURCES += src/search_exact.c

if HAVE_CHECK
check_PROGRAMS += tests/check_lorentz tests/check_exact
tests_check_lorentz_SOURCES = tests/check_lorentz.c
tests_check_lorentz_LDADD = $(TEST_LIBS)
tests_check_exact_SOURCES = tests/check_exact.c
tests_check_exact_LDADD = $(TEST_LIBS)
TESTS += tests/check_lorentz tests/check_exact
endif
EXTRA_DIST += tests/gen_lorentz_ref.py
