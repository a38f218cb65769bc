# hydb ingest goes through the library's one encode pipeline: each stored
# image equals hydb encode's, for a model with its own image_mean/image_std
# (issue 13).
TESTS += tests/test_ingest_pipeline.sh
EXTRA_DIST += tests/test_ingest_pipeline.sh tests/cli_encode.mk
