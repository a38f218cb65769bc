/*
 * hnsw.c - opening the index, queries and the filtered-search planner
 * (the plan is described in index/hnsw.h).
 */
#include "index/hnsw_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int create_meta(hydb_index *ix, MDB_txn *txn, unsigned M, unsigned efc,
		       unsigned flags, struct hnsw_meta *m)
{
	memset(m, 0, sizeof *m);
	m->magic = HNSW_META_MAGIC;
	m->version = HNSW_META_VERSION;
	m->M = M ? M : HYDB_HNSW_DEFAULT_M;
	m->efc = efc ? efc : HYDB_HNSW_DEFAULT_EFC;
	m->dim = (uint32_t)ix->src.dim;
	m->flags = flags;
	m->entry = HYDB_NO_SLOT;
	m->rng = 0x243f6a8885a308d3ull;
	m->c = ix->src.c;
	RETURN_ERROR_IF(m->M < 2 || m->M > HYDB_HNSW_MAX_M, HYDB_EINVAL,
			"index: M = %u is outside [2, %u]", m->M,
			HYDB_HNSW_MAX_M);
	int rc = hnsw_meta_save(ix, txn, m);
	if (rc == HYDB_EIO)
		return hydb_error_set(HYDB_EREADONLY,
				      "index: no graph yet, and the transaction "
				      "cannot create one");
	return rc;
}

static int setup(hydb_index *ix, const struct hnsw_meta *m)
{
	RETURN_ERROR_IF(m->dim != ix->src.dim, HYDB_ECORRUPT,
			"index: graph built for dimension %u, store has %zu",
			m->dim, ix->src.dim);
	RETURN_ERROR_IF(m->M < 2 || m->M > HYDB_HNSW_MAX_M, HYDB_ECORRUPT,
			"index: persisted M = %u is invalid", m->M);
	ix->M = m->M;
	ix->M0 = 2 * m->M;
	ix->efc = m->efc ? m->efc : HYDB_HNSW_DEFAULT_EFC;
	ix->compact = !(m->flags & HYDB_HNSW_NO_COMPACT);
	ix->legacy = m->version < 2;
	ix->dim = ix->src.dim;
	ix->c = ix->src.c;
	ix->level_mult = 1.0 / log((double)m->M);
	return 0;
}

int hydb_index_open_source(hydb_index **out, const hydb_vsource *src,
			   MDB_txn *txn, unsigned M, unsigned efc,
			   unsigned flags)
{
	RETURN_ERROR_IF(!out || !src || !txn || !src->block || !src->dim ||
				!(src->c > 0),
			HYDB_EINVAL, "index open: invalid argument");
	*out = NULL;
	hydb_index *ix = calloc(1, sizeof *ix);
	RETURN_ERROR_IF(!ix, HYDB_ENOMEM, "index open: out of memory");
	ix->src = *src;
	ix->threads = 2;
	pthread_mutex_init(&ix->pool_lock, NULL);
	unsigned envflags = 0;
	if (src->env && mdb_env_get_flags(src->env, &envflags) == 0)
		ix->stable_ptrs = !!(envflags & MDB_WRITEMAP);
	struct hnsw_meta m;
	int rc = hnsw_meta_load(ix, txn, &m);
	if (rc == HYDB_ENOTFOUND)
		rc = create_meta(ix, txn, M, efc, flags, &m);
	if (rc == 0)
		rc = setup(ix, &m);
	if (rc < 0) {
		hydb_index_close(ix);
		return rc;
	}
	*out = ix;
	return 0;
}

void hydb_index_close(hydb_index *ix)
{
	if (!ix)
		return;
	while (ix->pool) {
		struct hnsw_scratch *sc = ix->pool;
		ix->pool = sc->next;
		hnsw_scratch_free(sc);
	}
	pthread_mutex_destroy(&ix->pool_lock);
	free(ix);
}

void hydb_index_set_threads(hydb_index *ix, unsigned n)
{
	ix->threads = n ? n : 1;
}

/* ---- results ----------------------------------------------------------- */

static int hit_cmp(const void *a, const void *b)
{
	const hydb_hit *x = a, *y = b;
	return hydb_hit_less(x, y) ? -1 : hydb_hit_less(y, x) ? 1 : 0;
}

/* h into the n best so far (out, sorted, at most k): the beam is a few
 * times k, and qsort's callback per comparison over all of it was a
 * twentieth of a low-dimensional query. */
static void keep_best(hydb_hit *out, size_t *n, size_t k, const hydb_hit *h)
{
	size_t i = *n;
	if (i == k) {
		if (!hydb_hit_less(h, &out[k - 1]))
			return;
		i--;
	} else {
		(*n)++;
	}
	for (; i > 0 && hydb_hit_less(h, &out[i - 1]); i--)
		out[i] = out[i - 1];
	out[i] = *h;
}

/* Survivors by insertion up to this k; beyond it, one sort. */
#define KEEP_BEST_MAX_K 64

/* Exact keys for the beam's survivors, then the k best by (key, id). A
 * row the walk measured in float32 already has its exact key (the batch
 * and single kernels agree bit for bit); a half-precision row is measured
 * again on its float32 vector. */
static int rerank(struct hnsw_ctx *cx, const hydb_kquery *q, size_t nr,
		  size_t k, hydb_hit *out, size_t *nout)
{
	int sorted = k == 0 || k > KEEP_BEST_MAX_K;
	hydb_hit *h = sorted ? hydb_alloc_array(nr ? nr : 1, sizeof *h, "hits")
			     : NULL;
	if (sorted && !h)
		return HYDB_ENOMEM;
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; i < nr && rc == 0; i++) {
		const struct hnsw_cand *c = &cx->sc->res[i];
		const float *v;
		const hydb_slot_attr *a;
		const void *row;
		int half = 0;
		rc = hnsw_slot_data(cx, c->slot, &v, &a, NULL);
		if (rc == 0 && cx->ix->compact)
			rc = hnsw_walk_row(cx, c->slot, &row, &half);
		if (rc < 0)
			break;
		hydb_hit e = {c->slot, a->id, half ? hydb_key_f32(q, v) : c->key};
		if (sorted)
			h[n++] = e;
		else
			keep_best(out, &n, k, &e);
	}
	if (rc == 0 && sorted) {
		qsort(h, n, sizeof *h, hit_cmp);
		n = n < k ? n : k;
		memcpy(out, h, n * sizeof *h);
	}
	free(h);
	*nout = rc == 0 ? n : 0;
	return rc;
}

static int graph_query(struct hnsw_ctx *cx, const float *x, size_t k,
		       size_t ef, const hydb_filter *f, hydb_hit *out,
		       size_t *nout)
{
	hydb_kquery q;
	size_t nr;
	*nout = 0;
	if (cx->meta.entry == HYDB_NO_SLOT)
		return 0;
	hydb_kquery_init(&q, x, cx->ix->dim, cx->ix->c);
	uint32_t cur = cx->meta.entry;
	double key;
	FORWARD_IF_ERROR(hnsw_walk_key(cx, &q, cur, &key));
	FORWARD_IF_ERROR(hnsw_greedy(cx, &q, cx->meta.max_level, 0, &cur, &key));
	FORWARD_IF_ERROR(hnsw_search_layer(cx, &q, cur, key, ef, 0, f, &nr));
	return rerank(cx, &q, nr, k, out, nout);
}

/* ---- exact scan of the matches ----------------------------------------- */

struct brute {
	struct hnsw_ctx *cx;
	hydb_kquery q;
	const hydb_filter *f;
	hydb_hit *heap; /* max-heap by (key, id), k entries */
	size_t n, k;
};

static void brute_offer(struct brute *b, hydb_hit h)
{
	hydb_hit *a = b->heap;
	size_t i;
	if (b->n == b->k) {
		if (!hydb_hit_less(&h, &a[0]))
			return;
		/* replace the worst: sift down from the root */
		size_t m = b->n;
		i = 0;
		for (;;) {
			size_t l = 2 * i + 1, w = l;
			if (l >= m)
				break;
			if (l + 1 < m && hydb_hit_less(&a[l], &a[l + 1]))
				w = l + 1;
			if (!hydb_hit_less(&h, &a[w]))
				break;
			a[i] = a[w];
			i = w;
		}
		a[i] = h;
		return;
	}
	for (i = b->n++; i > 0 && hydb_hit_less(&a[(i - 1) / 2], &h);
	     i = (i - 1) / 2)
		a[i] = a[(i - 1) / 2];
	a[i] = h;
}

static int brute_slot(uint32_t slot, void *ctx)
{
	struct brute *b = ctx;
	const float *v;
	const hydb_slot_attr *a;
	FORWARD_IF_ERROR(hnsw_slot_data(b->cx, slot, &v, &a, NULL));
	if (!hydb_filter_match(b->f, a) || !hydb_filter_cone_match(b->f, v))
		return 0;
	hydb_hit h = {slot, a->id, hydb_key_f32(&b->q, v)};
	brute_offer(b, h);
	return 0;
}

static int brute_blocks(struct brute *b)
{
	uint32_t limit = b->cx->meta.slot_limit;
	for (uint32_t s = 0; s < limit; s++)
		FORWARD_IF_ERROR(brute_slot(s, b));
	return 0;
}

static int brute_query(struct hnsw_ctx *cx, const float *x, size_t k,
		       const hydb_filter *f, int by_radius, hydb_hit *out,
		       size_t *nout)
{
	hydb_index *ix = cx->ix;
	struct brute b = {.cx = cx, .f = f, .heap = out, .k = k};
	hydb_kquery_init(&b.q, x, ix->dim, ix->c);
	if (by_radius)
		FORWARD_IF_ERROR(ix->src.radius_scan(ix->src.ctx, cx->txn,
						     f->min_radius,
						     f->max_radius, brute_slot,
						     &b));
	else
		FORWARD_IF_ERROR(brute_blocks(&b));
	qsort(out, b.n, sizeof *out, hit_cmp);
	*nout = b.n;
	return 0;
}

/* ---- planner ----------------------------------------------------------- */

static double mask_fraction(const struct hnsw_meta *m, const hydb_filter *f)
{
	uint64_t hit = 0, all = 0;
	for (unsigned mo = 0; mo < HYDB_N_MODALITIES; mo++)
		for (unsigned la = 0; la < HYDB_N_LABELS; la++) {
			uint64_t c = m->counts[mo][la];
			all += c;
			if ((!f->modality_mask || (f->modality_mask >> mo) & 1) &&
			    (!f->label_mask || (f->label_mask >> la) & 1))
				hit += c;
		}
	return all ? (double)hit / (double)all : 1.0;
}

/* The share of live nodes inside f's cones, from up to CONE_SAMPLE slots
 * spread evenly over the table: cones have no table to count them on, and
 * a cone can hold almost nothing (a leaf's children) or half the space (the
 * root's), so the planner has to look. */
#define CONE_SAMPLE 256
static int cone_fraction(struct hnsw_ctx *cx, const hydb_filter *f, double *out)
{
	uint32_t limit = cx->meta.slot_limit, step = limit / CONE_SAMPLE + 1;
	size_t live = 0, in = 0;
	*out = 1.0;
	for (uint32_t s = 0; s < limit; s += step) {
		const float *v;
		const hydb_slot_attr *a;
		FORWARD_IF_ERROR(hnsw_slot_data(cx, s, &v, &a, NULL));
		if (!a->live)
			continue;
		live++;
		in += (size_t)hydb_filter_cone_match(f, v);
	}
	/* one match counted as half: a sample that saw none still allows a few */
	if (live)
		*out = in ? (double)in / (double)live : 0.5 / (double)live;
	return 0;
}

static int filtered_query(struct hnsw_ctx *cx, const float *x, size_t k,
			  size_t ef, const hydb_filter *f, hydb_hit *out,
			  size_t *nout, const char **plan)
{
	hydb_index *ix = cx->ix;
	double n = (double)cx->meta.nodes;
	double limit = sqrt(4.0 * (double)ef * n);
	double frac = mask_fraction(&cx->meta, f), cone = 1.0;
	if (f->cone)
		FORWARD_IF_ERROR(cone_fraction(cx, f, &cone));
	frac *= cone;
	int radius = f->min_radius > 0 || !isinf(f->max_radius);
	if (radius && ix->src.radius_count && ix->src.radius_scan) {
		uint64_t cnt;
		uint64_t cap = (uint64_t)(4 * limit) + 1;
		FORWARD_IF_ERROR(ix->src.radius_count(ix->src.ctx, cx->txn,
						      f->min_radius,
						      f->max_radius, cap, &cnt));
		if (cnt < cap && (double)cnt * frac <= limit) {
			*plan = "brute-filtered";
			return brute_query(cx, x, k, f, 1, out, nout);
		}
	} else if (!radius && n * frac <= limit && n <= 64 * limit) {
		*plan = "brute-filtered";
		return brute_query(cx, x, k, f, 0, out, nout);
	}
	*plan = "hnsw-filtered";
	return graph_query(cx, x, k, ef, f, out, nout);
}

int hydb_index_search(hydb_index *ix, MDB_txn *rtxn, const float *q, size_t k,
		      size_t ef, const hydb_filter *f, hydb_hit *out,
		      size_t *nout, const char **plan)
{
	const char *p = "hnsw";
	RETURN_ERROR_IF(!ix || !rtxn || !q || !nout || (k && !out),
			HYDB_EINVAL, "index search: NULL argument");
	*nout = 0;
	if (k == 0)
		return 0;
	if (ef == 0)
		ef = hydb_index_default_ef(k);
	if (ef < k)
		ef = k;
	struct hnsw_ctx cx;
	FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, rtxn));
	int rc;
	if (hydb_filter_is_empty(f))
		rc = graph_query(&cx, q, k, ef, NULL, out, nout);
	else
		rc = filtered_query(&cx, q, k, ef, f, out, nout, &p);
	hnsw_ctx_end(&cx);
	if (plan)
		*plan = p;
	return rc;
}

int hydb_index_search_without(hydb_index *ix, MDB_txn *rtxn, const float *q,
			      size_t k, size_t ef, uint32_t skip, hydb_hit *out,
			      size_t *nout)
{
	RETURN_ERROR_IF(!ix || !rtxn || !q || !nout || (k && !out),
			HYDB_EINVAL, "index search: NULL argument");
	*nout = 0;
	if (k == 0)
		return 0;
	struct hnsw_ctx cx;
	FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, rtxn));
	cx.skip = skip;
	int rc = graph_query(&cx, q, k, ef < k ? k : ef, NULL, out, nout);
	hnsw_ctx_end(&cx);
	return rc;
}

int hydb_index_stats_get(hydb_index *ix, MDB_txn *rtxn, hydb_index_stats *out)
{
	struct hnsw_meta m;
	MDB_stat st;
	FORWARD_IF_ERROR(hnsw_meta_load(ix, rtxn, &m));
	int rc = mdb_stat(rtxn, ix->src.nodes, &st);
	RETURN_ERROR_IF(rc, HYDB_EIO, "index stats: %s", mdb_strerror(rc));
	out->M = ix->M;
	out->efc = ix->efc;
	out->compact = ix->compact;
	out->nodes = m.nodes;
	out->entry = m.entry;
	out->max_level = m.max_level;
	double pages = (double)(st.ms_branch_pages + st.ms_leaf_pages +
				st.ms_overflow_pages);
	out->bytes_per_vector = m.nodes ? pages * st.ms_psize / m.nodes : 0;
	return 0;
}

int hydb_index_label_counts(hydb_index *ix, MDB_txn *rtxn,
			    uint64_t counts[HYDB_N_MODALITIES][HYDB_N_LABELS])
{
	struct hnsw_meta m;
	FORWARD_IF_ERROR(hnsw_meta_load(ix, rtxn, &m));
	memcpy(counts, m.counts, sizeof m.counts);
	return 0;
}

int hydb_index_set_label_counts(hydb_index *ix, MDB_txn *wtxn,
				const uint64_t counts[HYDB_N_MODALITIES][HYDB_N_LABELS])
{
	struct hnsw_meta m;
	FORWARD_IF_ERROR(hnsw_meta_load(ix, wtxn, &m));
	memcpy(m.counts, counts, sizeof m.counts);
	return hnsw_meta_save(ix, wtxn, &m);
}
