/*
 * search.c - the public search path:
 *   validate -> redirect the query -> one read snapshot -> index (or exact)
 *   -> resolve hits to records.
 * The query planner for filtered searches lives in index/ (see hnsw.h).
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/hnsw.h"
#include "search.h"
#include "storage/store.h"


#include "db_internal.h"

void hydb_results_free(hydb_results *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		if (r->keys)
			free(r->keys[i]);
		if (r->captions)
			free(r->captions[i]);
	}
	free(r->ids);
	free(r->keys);
	free(r->distances);
	free(r->radii);
	free(r->labels);
	free(r->modalities);
	free(r->items);
	free(r->captions);
	free(r);
}

void hydb_results_free_batch(hydb_results **r, size_t nq)
{
	if (!r)
		return;
	for (size_t i = 0; i < nq; i++)
		hydb_results_free(r[i]);
	free(r);
}

static int results_alloc(hydb_results **out, size_t n)
{
	hydb_results *r = calloc(1, sizeof *r);
	size_t m = n ? n : 1;
	RETURN_ERROR_IF(!r, HYDB_ENOMEM, "search results: out of memory");
	r->ids = calloc(m, sizeof *r->ids);
	r->keys = calloc(m, sizeof *r->keys);
	r->distances = calloc(m, sizeof *r->distances);
	r->radii = calloc(m, sizeof *r->radii);
	r->labels = calloc(m, sizeof *r->labels);
	r->modalities = calloc(m, sizeof *r->modalities);
	r->items = calloc(m, sizeof *r->items);
	r->captions = calloc(m, sizeof *r->captions);
	if (!r->ids || !r->keys || !r->distances || !r->radii || !r->labels || !r->modalities ||
	    !r->items || !r->captions) {
		hydb_results_free(r);
		return hydb_error_set(HYDB_ENOMEM, "search results: out of memory");
	}
	*out = r;
	return HYDB_OK;
}

/* d = acosh(1 + key)/sqrt(c), without the cancellation of acosh near 1. */
static double key_to_dist(double key, double c)
{
	if (key <= 0)
		return 0;
	return log1p(key + sqrt(key * (key + 2))) / sqrt(c);
}

static int resolve_hits(hydb_store *st, MDB_txn *txn, const hydb_hit *hits, size_t n,
			hydb_results *r)
{
	double c = hydb_store_curvature(st);
	for (size_t i = 0; i < n; i++) {
		hydb_entry *e;
		FORWARD_IF_ERROR(hydb_store_get(st, txn, hits[i].id, &e));
		r->ids[i] = e->id;
		r->keys[i] = e->key;
		r->captions[i] = e->caption;
		e->key = e->caption = NULL;
		r->distances[i] = key_to_dist(hits[i].key, c);
		r->radii[i] = e->radius;
		r->labels[i] = e->label;
		r->modalities[i] = e->modality;
		r->items[i] = e->item;
		r->n = i + 1;
		hydb_entry_free(e);
	}
	return HYDB_OK;
}

static int check_options(const hydb_search_options *o)
{
	RETURN_ERROR_IF(!o || o->version < 1 || o->version > HYDB_SEARCH_OPTIONS_VERSION,
			HYDB_EINVAL, "search options: missing or unknown version");
	RETURN_ERROR_IF(o->k == 0 || o->k > 100000, HYDB_EINVAL, "search: k must be 1..100000, got %zu",
			o->k);
	RETURN_ERROR_IF(isnan(o->min_radius) || isnan(o->max_radius), HYDB_EINVAL,
			"search: radius filter bounds must not be NaN");
	RETURN_ERROR_IF(o->redirect != HYDB_REDIRECT_NONE &&
				!(o->redirect_bound > 0 && isfinite(o->redirect_bound)),
			HYDB_EINVAL, "search: redirect needs a positive finite bound");
	RETURN_ERROR_IF((unsigned)o->redirect > HYDB_REDIRECT_GEODESIC, HYDB_EINVAL,
			"search: unknown redirect mode %d", (int)o->redirect);
	return HYDB_OK;
}

/* One query inside an open snapshot. q is the caller's copy to modify. */
static int search_one(hydb_db *db, MDB_txn *txn, float *q, const hydb_search_options *o,
		      const hydb_filter *f, hydb_hit *hits, hydb_results **out)
{
	hydb_store *st = hydb_db_store(db);
	size_t dim = hydb_store_dim(st), nhit = 0;
	double c = hydb_store_curvature(st);
	const char *plan = "exact";
	hydb_results *r = NULL;
	size_t bad = hydb_first_nonfinite(q, dim);
	double r0;
	int moved, rc;

	RETURN_ERROR_IF(bad < dim, HYDB_ENONFINITE, "query: component %zu is %s", bad,
			isnan(q[bad]) ? "NaN" : "infinite");
	r0 = hydb_lorentz_radius(q, dim, c);
	moved = o->redirect ? hydb_redirect_query(q, dim, c, o->redirect, o->redirect_bound) : 0;
	if (o->exact) {
		rc = hydb_exact_search(st, txn, q, 1, o->k, f, hits, &nhit);
	} else {
		size_t ef = o->ef ? o->ef : (o->k > 64 ? o->k : 64);
		rc = hydb_index_search(hydb_db_index(db), txn, q, o->k, ef < o->k ? o->k : ef, f, hits,
				       &nhit, &plan);
	}
	FORWARD_IF_ERROR(rc);
	FORWARD_IF_ERROR(results_alloc(&r, nhit));
	r->redirected = moved;
	r->query_radius = r0;
	r->searched_radius = moved ? hydb_lorentz_radius(q, dim, c) : r0;
	r->plan = plan;
	rc = resolve_hits(st, txn, hits, nhit, r);
	if (rc < 0) {
		hydb_results_free(r);
		return rc;
	}
	*out = r;
	return HYDB_OK;
}

int hydb_search_batch(hydb_db *db, hydb_results ***out, const float *queries, size_t nq,
		      const hydb_search_options *opts)
{
	hydb_store *st;
	size_t dim;
	hydb_filter f;
	hydb_results **res;
	hydb_hit *hits;
	float *q;
	MDB_txn *txn;
	int rc = HYDB_OK;

	RETURN_ERROR_IF(!db || !out || (!queries && nq), HYDB_EINVAL, "search: NULL argument");
	FORWARD_IF_ERROR(check_options(opts));
	st = hydb_db_store(db);
	dim = hydb_store_dim(st);
	f.min_radius = opts->min_radius > 0 ? opts->min_radius : 0;
	f.max_radius = opts->max_radius;
	f.modality_mask = opts->modality_mask;
	f.label_mask = opts->label_mask;

	res = calloc(nq ? nq : 1, sizeof *res);
	hits = hydb_alloc_array(opts->k, sizeof *hits, "search hits");
	q = hydb_alloc_array(dim, sizeof *q, "query copy");
	if (!res || !hits || !q) {
		free(res);
		free(hits);
		free(q);
		return hydb_error_set(HYDB_ENOMEM, "search: out of memory");
	}
	/* One snapshot for the whole batch: every query sees the same data. */
	rc = hydb_store_read_begin(st, &txn);
	if (rc == 0) {
		for (size_t i = 0; rc == 0 && i < nq; i++) {
			memcpy(q, queries + i * dim, dim * sizeof *q);
			rc = search_one(db, txn, q, opts, &f, hits, &res[i]);
			if (rc < 0 && nq > 1)
				hydb_error_prefix(rc, "query %zu", i);
		}
		hydb_store_read_end(st, txn);
	}
	free(hits);
	free(q);
	if (rc < 0) {
		hydb_results_free_batch(res, nq);
		return rc;
	}
	*out = res;
	return HYDB_OK;
}

int hydb_search(hydb_db *db, hydb_results **out, const float *query,
		const hydb_search_options *opts)
{
	hydb_results **batch;
	RETURN_ERROR_IF(!out || !query, HYDB_EINVAL, "search: NULL argument");
	FORWARD_IF_ERROR(hydb_search_batch(db, &batch, query, 1, opts));
	*out = batch[0];
	free(batch);
	return HYDB_OK;
}
