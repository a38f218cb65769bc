# Fuzzing. Each target in tests/fuzz/ is an LLVMFuzzerTestOneInput over one
# parser of untrusted input. 'make check' replays the stored corpora (seeds
# and every past finding) through the normal build; 'make fuzz' builds the
# targets with clang's libFuzzer, ASan and UBSan and runs each one for
# FUZZ_SECONDS (FUZZ_TARGETS picks a subset).
FUZZ_SECONDS = 60
FUZZ_CC = clang
FUZZ_TARGETS = npy fvecs jsonl json model safetensors tokenize tokenizer_new image record lmdb

fuzz:
	@FUZZ_CC='$(FUZZ_CC)' FUZZ_SECONDS='$(FUZZ_SECONDS)' \
	FUZZ_TARGETS='$(FUZZ_TARGETS)' FUZZ_CPPFLAGS='$(DEFS) $(DEFAULT_INCLUDES) $(AM_CPPFLAGS) $(LMDB_CFLAGS) $(ZSTD_CFLAGS) $(BLAS_CFLAGS) $(PNG_CFLAGS) $(JPEG_CFLAGS) $(UTF8PROC_CFLAGS) $(XXHASH_CFLAGS) $(WEBP_CFLAGS)' \
	FUZZ_LIBS='$(HYDB_DEPLIBS)' \
	$(SHELL) $(srcdir)/tests/fuzz/fuzz.sh '$(srcdir)' $(libhydb_internal_la_SOURCES)
.PHONY: fuzz

FUZZ_REPLAYS = tests/fuzz/replay_npy tests/fuzz/replay_fvecs tests/fuzz/replay_jsonl \
	tests/fuzz/replay_json tests/fuzz/replay_model tests/fuzz/replay_safetensors \
	tests/fuzz/replay_tokenize tests/fuzz/replay_tokenizer_new tests/fuzz/replay_image \
	tests/fuzz/replay_record tests/fuzz/replay_lmdb
check_PROGRAMS += $(FUZZ_REPLAYS)
TESTS += $(FUZZ_REPLAYS)
FUZZ_REPLAY = tests/fuzz/replay.c tests/fuzz/fuzz.h

tests_fuzz_replay_npy_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_import.c tests/fuzz/fuzz_file.c
tests_fuzz_replay_npy_CPPFLAGS = $(AM_CPPFLAGS) -DHYDB_FUZZ_FMT=HYDB_FMT_NPY
tests_fuzz_replay_npy_LDADD = $(TEST_LIBS)
tests_fuzz_replay_fvecs_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_import.c tests/fuzz/fuzz_file.c
tests_fuzz_replay_fvecs_CPPFLAGS = $(AM_CPPFLAGS) -DHYDB_FUZZ_FMT=HYDB_FMT_FVECS
tests_fuzz_replay_fvecs_LDADD = $(TEST_LIBS)
tests_fuzz_replay_jsonl_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_import.c tests/fuzz/fuzz_file.c
tests_fuzz_replay_jsonl_CPPFLAGS = $(AM_CPPFLAGS) -DHYDB_FUZZ_FMT=HYDB_FMT_JSONL
tests_fuzz_replay_jsonl_LDADD = $(TEST_LIBS)
tests_fuzz_replay_json_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_json.c
tests_fuzz_replay_json_LDADD = $(TEST_LIBS)
tests_fuzz_replay_model_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_model.c tests/fuzz/fuzz_file.c
tests_fuzz_replay_model_LDADD = $(TEST_LIBS)
tests_fuzz_replay_safetensors_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_safetensors.c
tests_fuzz_replay_safetensors_LDADD = $(TEST_LIBS)
tests_fuzz_replay_tokenize_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_tokenize.c \
	tests/fuzz/tokenizer_check.h
tests_fuzz_replay_tokenize_LDADD = $(TEST_LIBS)
tests_fuzz_replay_tokenizer_new_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_tokenizer_new.c \
	tests/fuzz/tokenizer_check.h
tests_fuzz_replay_tokenizer_new_LDADD = $(TEST_LIBS)
tests_fuzz_replay_image_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_image.c
tests_fuzz_replay_image_LDADD = $(TEST_LIBS)
tests_fuzz_replay_record_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_record.c
tests_fuzz_replay_record_LDADD = $(TEST_LIBS)
tests_fuzz_replay_lmdb_SOURCES = $(FUZZ_REPLAY) tests/fuzz/fuzz_lmdb.c tests/fuzz/fuzz_file.c
tests_fuzz_replay_lmdb_LDADD = $(TEST_LIBS)

EXTRA_DIST += tests/fuzz/corpus tests/fuzz/fuzz.sh tests/fuzz/make_seeds.py
