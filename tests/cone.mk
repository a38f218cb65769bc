# Entailment-cone filters in search: exact against a scan, the index against
# exact, with other filters and a redirect (issue 16).
if HAVE_CHECK
check_PROGRAMS += tests/check_cone
tests_check_cone_SOURCES = tests/check_cone.c
tests_check_cone_LDADD = $(TEST_LIBS)
TESTS += tests/check_cone
endif

# hydb traverse --cone against a numpy reimplementation of HySAC's traversal.
TESTS += tests/test_traverse_cone.sh
EXTRA_DIST += tests/test_traverse_cone.sh tests/ref_traversal.py
