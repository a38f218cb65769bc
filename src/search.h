/*
 * search.h - types shared by exact search (src/) and the index (index/).
 */
#ifndef HYDB_SEARCH_H
#define HYDB_SEARCH_H

#include <math.h>
#include <stdint.h>

#include "internal.h"
#include "storage/store.h"

/* A candidate: its slot and its ranking key cosh(sqrt(c) d) - 1 (monotone in
 * the geodesic distance d). Ties are broken by record id, so results are
 * deterministic. */
typedef struct hydb_hit {
	uint32_t slot;
	uint64_t id;
	double key;
} hydb_hit;

/* Record filter as applied to slot attributes. */
typedef struct hydb_filter {
	double min_radius, max_radius; /* inclusive; [0, INFINITY] = none */
	unsigned modality_mask;        /* 0 = any */
	unsigned label_mask;           /* 0 = any */
} hydb_filter;

static inline int hydb_filter_is_empty(const hydb_filter *f)
{
	return !f || (f->min_radius <= 0 && isinf(f->max_radius) &&
		      !f->modality_mask && !f->label_mask);
}

static inline int hydb_filter_match(const hydb_filter *f,
				    const hydb_slot_attr *a)
{
	if (!a->live)
		return 0;
	if (!f)
		return 1;
	if (a->radius < f->min_radius || a->radius > f->max_radius)
		return 0;
	/* The bytes come from disk: a value past the mask width matches no
	 * mask rather than shifting out of range. */
	if (f->modality_mask && (a->modality >= 32 || !(f->modality_mask & (1u << a->modality))))
		return 0;
	if (f->label_mask && (a->label >= 32 || !(f->label_mask & (1u << a->label))))
		return 0;
	return 1;
}

/* Order: smaller key first, then smaller id. */
static inline int hydb_hit_less(const hydb_hit *a, const hydb_hit *b)
{
	return a->key < b->key || (a->key == b->key && a->id < b->id);
}

/* Exact k-NN over every live slot matching f (src/search_exact.c).
 * out: nq*k hits, row per query; nout[q] = hits found for query q. */
int hydb_exact_search(hydb_store *st, MDB_txn *txn, const float *queries,
		      size_t nq, size_t k, const hydb_filter *f, hydb_hit *out,
		      size_t *nout);

#endif
