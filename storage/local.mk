# The LMDB store: records, keys, vector blocks, radius index, free slots.
libhydb_internal_la_SOURCES += storage/store.h storage/store.c \
	storage/record.h storage/record.c \
	storage/keys.h storage/store_check.h storage/store_check.c \
	storage/lmdb_verify.h storage/lmdb_verify.c
