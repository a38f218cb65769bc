# hydb evaluate: every figure equal to a numpy reimplementation of HySAC's
# recall computation on the same embeddings, CSV and JSON Lines manifests,
# reuse of a database's entries, the PNG, and bad input.
TESTS += tests/test_evaluate.sh
EXTRA_DIST += tests/test_evaluate.sh tests/ref_hysac_recall.py
