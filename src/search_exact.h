/*
 * search_exact.h - exact k-NN over the store (src/search_exact.c): the
 * reference the index is measured against, and the planner's scan for
 * filters that match few records. The hit and filter types are the index's
 * (index/hnsw.h).
 */
#ifndef HYDB_SEARCH_EXACT_H
#define HYDB_SEARCH_EXACT_H

#include "base/base.h"
#include "index/hnsw.h"
#include "storage/store.h"

/* Exact k-NN over every live slot matching f (src/search_exact.c).
 * out: nq*k hits, row per query; nout[q] = hits found for query q. */
int hydb_exact_search(hydb_store *st, MDB_txn *txn, const float *queries,
		      size_t nq, size_t k, const hydb_filter *f, hydb_hit *out,
		      size_t *nout);

#endif /* HYDB_SEARCH_EXACT_H */
