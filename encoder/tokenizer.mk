# encoder: tokenizer (CLIP's text cleanup and byte-level BPE)
libhydb_internal_la_SOURCES += encoder/tokenizer.c encoder/tokenizer.h

if HAVE_CHECK
check_PROGRAMS += tests/check_tokenizer
tests_check_tokenizer_SOURCES = tests/check_tokenizer.c
tests_check_tokenizer_LDADD = $(TEST_LIBS) -lz
TESTS += tests/check_tokenizer
endif
