# Unit and integration tests (Check). OPENBLAS_NUM_THREADS=1 is set in
# AM_TESTS_ENVIRONMENT.
if HAVE_CHECK
check_PROGRAMS += tests/check_db
tests_check_db_SOURCES = tests/check_db.c
tests_check_db_LDADD = $(TEST_LIBS)
TESTS += tests/check_db
endif

# The README's program and the example search backend, built against the
# installed hydb.pc.
TESTS += tests/test_example.sh
EXTRA_DIST += tests/test_example.sh examples/search_backend.c \
	examples/demo-captions.txt examples/demo-labels.csv tools/quickstart \
	tools/build tools/run-tests tools/install-deps tools/debian-packages.txt

# End to end: ingest (killed and resumed), every query flag, calibration.
TESTS += tests/test_e2e.sh
EXTRA_DIST += tests/test_e2e.sh tests/e2e.py

# Upserts of 30% of a database through hydb import keep the index whole.
TESTS += tests/test_upsert.sh
EXTRA_DIST += tests/test_upsert.sh

# Numbers parsed strictly, no fallback to another database, filters that
# intersect, calibration that refuses what it cannot calibrate.
TESTS += tests/test_cli_strict.sh
EXTRA_DIST += tests/test_cli_strict.sh

# hydb query --vector-file: .npy, .fvecs, JSON Lines and JSON as one batch,
# equal to the same queries one by one.
TESTS += tests/test_query_batch.sh
EXTRA_DIST += tests/test_query_batch.sh

# Every --json output of every command parses, whatever the strings hold.
TESTS += tests/test_json_output.sh
EXTRA_DIST += tests/test_json_output.sh

# Golden transcripts of every command: messages, tables and exit codes
# change only on purpose (HYDB_GOLDEN_UPDATE=1 rewrites them).
TESTS += tests/test_golden.sh
EXTRA_DIST += tests/test_golden.sh tests/golden

# Entailment-cone filters (tests/cone.mk).
include tests/cone.mk

# The layering of ARCHITECTURE.md: includes, file names, function length.
TESTS += tests/test_layers.sh
EXTRA_DIST += tests/test_layers.sh tests/check_layers.py

# hydb query --sheet: tiles framed by label, text under them, placeholders.
TESTS += tests/test_sheet.sh
EXTRA_DIST += tests/test_sheet.sh

# Every node joins the reachability tree when its candidates are full hubs.
TESTS += tests/test_tree_hubs.sh
EXTRA_DIST += tests/test_tree_hubs.sh

# Every outside file read comes from a package the install step installs.
TESTS += tests/test_packages.sh
EXTRA_DIST += tests/test_packages.sh tests/check_packages.py

# hydb import: formats, conversions, every bad input, resume after a kill.
TESTS += tests/test_import.sh
EXTRA_DIST += tests/test_import.sh tests/import_cases.py
include tests/fuzz.mk
include tests/reliability.mk
include tests/ingest_safety.mk
include tests/import_safety.mk
include tests/far.mk
include tests/python.mk

# --precision f32|bf16: one precision per database, bf16 near f32, refusals.
TESTS += tests/test_precision.sh
EXTRA_DIST += tests/test_precision.sh
include tests/postgres.mk
include tests/cli_encode.mk
include tests/evaluate.mk
include tests/cli_db.mk
include tests/shard.mk
