# encoder: model file (safetensors container, config, weight validation)
libhydb_internal_la_SOURCES += encoder/model.c encoder/safetensors.c \
	encoder/safetensors.h
# The text the converter learns a tiny model's tokenizer from; installed next
# to the converter's data so that 'hydb-convert --tiny' works after install.
modeldatadir = $(pkgdatadir)
dist_modeldata_DATA = tools/tiny_corpus.txt

if HAVE_CHECK
check_PROGRAMS += tests/check_model
tests_check_model_SOURCES = tests/check_model.c
tests_check_model_LDADD = $(TEST_LIBS)
TESTS += tests/check_model
endif

# Converter round trip; needs Debian's python3-torch (skips without it).
TESTS += tests/test_convert.sh
EXTRA_DIST += tests/test_convert.sh tests/make_hf_checkpoint.py
