# The LMDB store.
libhydb_internal_la_SOURCES += storage/store.h
