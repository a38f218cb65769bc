# hydb import loses nothing silently (issue 12): content-tied resume, keys
# by path, files not tried named, exact 64-bit items, the largest radius,
# strict numeric options.
TESTS += tests/test_import_safety.sh
EXTRA_DIST += tests/test_import_safety.sh
