/*
 * search.c - the public search path:
 *   validate -> redirect the query -> one read snapshot -> index (or exact)
 *   -> resolve hits to records.
 * The query planner for filtered searches lives in index/ (see hnsw.h).
 */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/lorentz.h"
#include "index/hnsw.h"
#include "search_exact.h"
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
	free(r->angles_at_result);
	free(r->apertures);
	free(r->angles_at_query);
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

/* Room for the angles a cone-filtered search reports (hydb.h). */
static int cone_alloc(hydb_results *r, size_t n)
{
	size_t m = n ? n : 1;
	r->angles_at_result = calloc(m, sizeof(double));
	r->apertures = calloc(m, sizeof(double));
	r->angles_at_query = calloc(m, sizeof(double));
	RETURN_ERROR_IF(!r->angles_at_result || !r->apertures || !r->angles_at_query,
			HYDB_ENOMEM, "search results: out of memory");
	return HYDB_OK;
}

/* Result i's angles, from its stored vector v and the searched query q. */
static void cone_angles(hydb_results *r, size_t i, const float *q, const float *v,
			size_t dim, double c)
{
	r->angles_at_result[i] = hydb_oxy_angle(v, q, dim, c);
	r->apertures[i] = hydb_half_aperture(v, dim, c);
	r->angles_at_query[i] = hydb_oxy_angle(q, v, dim, c);
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

/* cone_query: the searched query when the search had a cone filter, whose
 * angles each result then reports; else NULL. */
static int resolve_hits(hydb_store *st, MDB_txn *txn, const hydb_hit *hits, size_t n,
			hydb_results *r, const float *cone_query)
{
	double c = hydb_store_curvature(st);
	if (cone_query) {
		FORWARD_IF_ERROR(cone_alloc(r, n));
		r->query_aperture = hydb_half_aperture(cone_query, hydb_store_dim(st), c);
	}
	for (size_t i = 0; i < n; i++) {
		hydb_entry *e;
		/* the planner's contract: nearest first, ties by id */
		assert(i == 0 || !hydb_hit_less(&hits[i], &hits[i - 1]));
		FORWARD_IF_ERROR(hydb_store_get(st, txn, hits[i].id, &e));
		r->ids[i] = e->id;
		r->keys[i] = e->key;
		r->captions[i] = e->caption;
		e->key = e->caption = NULL;
		r->distances[i] = hydb_lorentz_key_to_dist(hits[i].key, c);
		r->radii[i] = e->radius;
		r->labels[i] = e->label;
		r->modalities[i] = e->modality;
		r->items[i] = e->item;
		r->n = i + 1;
		if (cone_query)
			cone_angles(r, i, cone_query, e->vector, e->dim, c);
		hydb_entry_free(e);
	}
	return HYDB_OK;
}

static int check_options(const hydb_search_options *o)
{
	RETURN_ERROR_IF(!o || o->version < 1 || o->version > HYDB_SEARCH_OPTIONS_VERSION,
			HYDB_EINVAL, "search options: missing or unknown version");
	RETURN_ERROR_IF(o->k == 0 || o->k > HYDB_MAX_K, HYDB_EINVAL, "search: k must be 1..%d, got %zu",
			HYDB_MAX_K, o->k);
	RETURN_ERROR_IF(o->ef > HYDB_MAX_EF, HYDB_EINVAL, "search: ef must be 0..%d, got %zu",
			HYDB_MAX_EF, o->ef);
	RETURN_ERROR_IF(o->version >= 2 && !(o->target_recall >= 0 && o->target_recall <= 1),
			HYDB_EINVAL, "search: target_recall must be in (0, 1] (0: default)");
	RETURN_ERROR_IF(isnan(o->min_radius) || isnan(o->max_radius), HYDB_EINVAL,
			"search: radius filter bounds must not be NaN");
	RETURN_ERROR_IF(o->redirect != HYDB_REDIRECT_NONE &&
				!(o->redirect_bound > 0 && isfinite(o->redirect_bound)),
			HYDB_EINVAL, "search: redirect needs a positive finite bound");
	RETURN_ERROR_IF((unsigned)o->redirect > HYDB_REDIRECT_GEODESIC, HYDB_EINVAL,
			"search: unknown redirect mode %d", (int)o->redirect);
	RETURN_ERROR_IF(o->version >= 3 && (o->cone & ~(HYDB_CONE_WITHIN | HYDB_CONE_CONTAINS)),
			HYDB_EINVAL, "search: unknown cone bits 0x%x", o->cone);
	return HYDB_OK;
}

/* Check a query and apply the redirect in place. */
static int prepare_query(float *q, size_t dim, double c, const hydb_search_options *o,
			 size_t i, double *r0, int *moved)
{
	size_t bad = hydb_first_nonfinite(q, dim);
	RETURN_ERROR_IF(bad < dim, HYDB_ENONFINITE, "query %zu: component %zu is %s", i, bad,
			isnan(q[bad]) ? "NaN" : "infinite");
	*r0 = hydb_lorentz_radius(q, dim, c);
	*moved = o->redirect ? hydb_redirect_query(q, dim, c, o->redirect, o->redirect_bound) : 0;
	return HYDB_OK;
}

/* Search every prepared query inside one snapshot: exact search takes the
 * whole batch in one pass (its GEMM is where batching pays), the index
 * answers query by query. */
/* The filter for one query: a cone is relative to the query, the rest of
 * the filter is the batch's. */
static const hydb_filter *query_filter(const hydb_filter *f, hydb_filter *one, const float *q)
{
	if (!f->cone)
		return f;
	*one = *f;
	one->cone_query = q;
	one->query_aperture = hydb_half_aperture(q, f->dim, f->c);
	return one;
}

static int run_exact(hydb_store *st, MDB_txn *txn, const float *qs, size_t nq,
		     const hydb_search_options *o, const hydb_filter *f, hydb_hit *hits,
		     size_t *nhit, const char **plans)
{
	size_t dim = hydb_store_dim(st);
	hydb_filter one;
	for (size_t i = 0; i < nq; i++)
		plans[i] = "exact";
	if (!f->cone)
		return hydb_exact_search(st, txn, qs, nq, o->k, f, hits, nhit);
	for (size_t i = 0; i < nq; i++)
		FORWARD_IF_ERROR(hydb_exact_search(st, txn, qs + i * dim, 1, o->k,
						   query_filter(f, &one, qs + i * dim),
						   hits + i * o->k, &nhit[i]));
	return HYDB_OK;
}

static int run_queries(hydb_db *db, MDB_txn *txn, const float *qs, size_t nq,
		       const hydb_search_options *o, const hydb_filter *f, hydb_hit *hits,
		       size_t *nhit, const char **plans)
{
	hydb_store *st = hydb_db_store(db);
	size_t dim = hydb_store_dim(st);
	hydb_filter one;
	if (o->exact)
		return run_exact(st, txn, qs, nq, o, f, hits, nhit, plans);
	size_t ef = o->ef;
	if (!ef) {
		hydb_tune_info t;
		int rc = hydb_tune_read(st, txn, &t);
		if (rc < 0 && rc != HYDB_ENOTFOUND)
			return rc;
		ef = hydb_tune_pick(rc == 0 ? &t : NULL,
				    o->version >= 2 ? o->target_recall : 0, o->k);
		/* The curve is measured on unfiltered self-queries. A filtered
		 * walk holds only matches, which can lie in another part of the
		 * graph than the query's own neighbours (a cone's parents near
		 * the origin): it gets at least the default beam. */
		if (!hydb_filter_is_empty(f) && ef < hydb_index_default_ef(o->k))
			ef = hydb_index_default_ef(o->k);
	}
	for (size_t i = 0; i < nq; i++) {
		int rc = hydb_index_search(hydb_db_index(db), txn, qs + i * dim, o->k,
					   ef < o->k ? o->k : ef, query_filter(f, &one, qs + i * dim),
					   hits + i * o->k, &nhit[i], &plans[i]);
		if (rc < 0)
			return nq > 1 ? hydb_error_prefix(rc, "query %zu", i) : rc;
	}
	return HYDB_OK;
}

typedef struct {
	float *qs;
	double *r0;
	int *moved;
	hydb_hit *hits;
	size_t *nhit;
	const char **plans;
} batch_scratch;

static void scratch_free(batch_scratch *b)
{
	free(b->qs);
	free(b->r0);
	free(b->moved);
	free(b->hits);
	free(b->nhit);
	free(b->plans);
}

static int scratch_alloc(batch_scratch *b, size_t nq, size_t dim, size_t k)
{
	size_t nqk;
	memset(b, 0, sizeof *b);
	if (hydb_mul_size(&nqk, nq, k) < 0)
		return hydb_error_set(HYDB_ENOMEM, "search: %zu queries x k = %zu overflows", nq, k);
	b->qs = hydb_alloc_array(nq * dim, sizeof *b->qs, "query copies");
	b->r0 = hydb_alloc_array(nq, sizeof *b->r0, "query radii");
	b->moved = hydb_alloc_array(nq, sizeof *b->moved, "redirect flags");
	b->hits = hydb_alloc_array(nqk, sizeof *b->hits, "search hits");
	b->nhit = hydb_alloc_array(nq, sizeof *b->nhit, "hit counts");
	b->plans = hydb_alloc_array(nq, sizeof *b->plans, "plans");
	if (!b->qs || !b->r0 || !b->moved || !b->hits || !b->nhit || !b->plans) {
		scratch_free(b);
		return HYDB_ENOMEM;
	}
	return HYDB_OK;
}

int hydb_search_batch(hydb_db *db, hydb_results ***out, const float *queries, size_t nq,
		      const hydb_search_options *opts)
{
	hydb_store *st;
	size_t dim, qbytes;
	double c;
	hydb_filter f;
	hydb_results **res;
	batch_scratch b;
	MDB_txn *txn;
	int rc = HYDB_OK;

	RETURN_ERROR_IF(!db || !out || (!queries && nq), HYDB_EINVAL, "search: NULL argument");
	FORWARD_IF_ERROR(check_options(opts));
	st = hydb_db_store(db);
	dim = hydb_store_dim(st);
	c = hydb_store_curvature(st);
	memset(&f, 0, sizeof f);
	f.min_radius = opts->min_radius > 0 ? opts->min_radius : 0;
	f.max_radius = opts->max_radius;
	f.modality_mask = opts->modality_mask;
	f.label_mask = opts->label_mask;
	f.cone = opts->version >= 3 ? opts->cone : 0;
	f.dim = dim;
	f.c = c;
	RETURN_ERROR_IF(hydb_mul3_size(&qbytes, nq, dim, sizeof(float)) < 0, HYDB_ENOMEM,
			"search: %zu queries of dimension %zu overflow", nq, dim);
	FORWARD_IF_ERROR(scratch_alloc(&b, nq ? nq : 1, dim, opts->k));
	res = calloc(nq ? nq : 1, sizeof *res);
	if (!res) {
		scratch_free(&b);
		return hydb_error_set(HYDB_ENOMEM, "search: out of memory");
	}
	memcpy(b.qs, queries, qbytes);
	for (size_t i = 0; rc == 0 && i < nq; i++)
		rc = prepare_query(b.qs + i * dim, dim, c, opts, i, &b.r0[i], &b.moved[i]);
	/* One snapshot for the whole batch: every query sees the same data. */
	if (rc == 0)
		rc = hydb_store_read_begin(st, &txn);
	if (rc == 0) {
		rc = run_queries(db, txn, b.qs, nq, opts, &f, b.hits, b.nhit, b.plans);
		for (size_t i = 0; rc == 0 && i < nq; i++) {
			rc = results_alloc(&res[i], b.nhit[i]);
			if (rc < 0)
				break;
			res[i]->redirected = b.moved[i];
			res[i]->query_radius = b.r0[i];
			res[i]->searched_radius = b.moved[i] ? hydb_lorentz_radius(b.qs + i * dim, dim, c) : b.r0[i];
			res[i]->plan = b.plans[i];
			rc = resolve_hits(st, txn, b.hits + i * opts->k, b.nhit[i], res[i],
					  f.cone ? b.qs + i * dim : NULL);
		}
		hydb_store_read_end(st, txn);
	}
	scratch_free(&b);
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
