# hydb ingest/encode lose nothing silently: keys of two folders, a bad image
# among good ones, unreadable and non-UTF-8 sidecars, curvature, strict
# numbers (issue 12).
TESTS += tests/test_ingest_safety.sh
EXTRA_DIST += tests/test_ingest_safety.sh tests/ingest_safety.mk
