# The LMDB store.
