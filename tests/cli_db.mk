# The CLI's database commands through the library (issue 13).

# Re-labelling keeps the index's per-label counts, which the planner reads,
# equal to the labels in the blocks; hydb check finds stale ones. Also the
# other calls of src/admin.h the CLI uses instead of the store and index.
if HAVE_CHECK
check_PROGRAMS += tests/check_relabel
tests_check_relabel_SOURCES = tests/check_relabel.c
tests_check_relabel_LDADD = $(TEST_LIBS)
TESTS += tests/check_relabel
endif

# The same through hydb calibrate: the --safe-only plan follows the new
# labels, and hydb check is clean afterwards.
TESTS += tests/test_calibrate_counts.sh
EXTRA_DIST += tests/test_calibrate_counts.sh
