# The HySAC encoder. One fragment per stage, in the order data flows.
include encoder/model.mk
include encoder/tokenizer.mk
include encoder/image.mk
include encoder/forward.mk

libhydb_internal_la_SOURCES += encoder/model.h
