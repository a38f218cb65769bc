# Reliability: killed writers and readers, damaged files, concurrency
# (tests/check_crash.c), a full disk (tests/test_fulldisk.sh), file modes
# and read-only databases (tests/test_modes.sh).
if HAVE_CHECK
check_PROGRAMS += tests/check_crash
tests_check_crash_SOURCES = tests/check_crash.c
tests_check_crash_LDADD = $(TEST_LIBS)
TESTS += tests/check_crash
endif

TESTS += tests/test_fulldisk.sh
EXTRA_DIST += tests/test_fulldisk.sh

TESTS += tests/test_modes.sh
EXTRA_DIST += tests/test_modes.sh
