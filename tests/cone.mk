# Entailment-cone filters in search: exact against a scan, the index against
# exact, with other filters and a redirect (issue 16).
if HAVE_CHECK
check_PROGRAMS += tests/check_cone
tests_check_cone_SOURCES = tests/check_cone.c
tests_check_cone_LDADD = $(TEST_LIBS)
TESTS += tests/check_cone
endif
