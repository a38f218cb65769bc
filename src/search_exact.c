/*
 * search_exact.c - brute-force k-NN that is exact to the last rank.
 *
 * A float32 GEMM gives every query-vector dot product p with an error of at
 * most gamma_D |q||x| (gamma_D = D u / (1 - D u), u = 2^-24, any summation
 * order). The direct key c (q0 x0 - p) - 1 moves by exactly c per unit of
 * error in p, so each GEMM entry yields a rigorous interval [lb, ub] for
 * the key. Per query a max-heap keeps the k smallest upper bounds; its top
 * tau bounds the k-th key from above, so a vector whose lower bound exceeds
 * tau can never be in the result. Survivors are re-ranked with the
 * double-double key of lorentz.c, sorted by (key, id).
 *
 * Vectors are gathered into chunks of matching rows (the filter is applied
 * before the GEMM, so a selective filter saves arithmetic), and the GEMM
 * output of a chunk is screened by two threads, one per half of the
 * queries.
 */
#include "base/base.h"
#include "base/blas.h"
#include "base/lorentz.h"
#include "search_exact.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_ROWS 1024u   /* base rows per GEMM */
#define QUERY_BLOCK 1024u  /* query rows per GEMM */
#define MIN_SPLIT 32u      /* fewer query rows: screen on one thread */

typedef struct {
	uint32_t slot;
	uint64_t id;
	double lb, ub;     /* equal once the key is exact */
	int exact;
	const float *vec;  /* valid for the whole scan */
} scan_cand;

typedef struct {
	const float *q;
	double q0, qn;
	double *heap;      /* max-heap of the k smallest upper bounds */
	size_t nheap;
	double tau;        /* heap top once full, else +inf */
	scan_cand *cand;
	size_t ncand, capcand, limit;
	int err;
} scan_query;

typedef struct {
	size_t nq, dim, k;
	double c, gamma;
	const hydb_filter *f;
	scan_query *qs;
	/* the chunk being gathered */
	float *buf;
	const float **orig;
	uint32_t *slot;
	uint64_t *id;
	double *x0, *xn;
	double *lb; /* screening scratch, CHUNK_ROWS per thread */
	size_t nrows;
	float *tile;
} scan_state;

/* ---- per-query bookkeeping -------------------------------------------- */

static void heap_sift_down(double *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < n && h[l] > h[m])
			m = l;
		if (l + 1 < n && h[l + 1] > h[m])
			m = l + 1;
		if (m == i)
			return;
		double t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/* Offer an upper bound; keeps the k smallest and tau = the largest kept. */
static void heap_offer(scan_query *qs, size_t k, double v)
{
	double *h = qs->heap;
	if (qs->nheap < k) {
		size_t i = qs->nheap++;
		h[i] = v;
		while (i > 0 && h[(i - 1) / 2] < h[i]) {
			double t = h[i];
			h[i] = h[(i - 1) / 2];
			h[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
	} else if (v < h[0]) {
		h[0] = v;
		heap_sift_down(h, qs->nheap, 0);
	}
	if (qs->nheap == k)
		qs->tau = h[0];
}

static void drop_above_tau(scan_query *qs)
{
	size_t n = 0;
	for (size_t i = 0; i < qs->ncand; i++)
		if (qs->cand[i].lb <= qs->tau)
			qs->cand[n++] = qs->cand[i];
	qs->ncand = n;
}

/* Replace every bound by the exact key and rebuild the heap from the
 * candidates alone: they include every vector that can be in the result,
 * so the k-th smallest of their keys still bounds the answer. */
static void make_exact(scan_state *s, scan_query *qs)
{
	qs->nheap = 0;
	qs->tau = INFINITY;
	for (size_t i = 0; i < qs->ncand; i++) {
		scan_cand *cd = &qs->cand[i];
		if (!cd->exact) {
			cd->lb = cd->ub = hydb_lorentz_key(qs->q, cd->vec, s->dim, s->c);
			cd->exact = 1;
		}
		heap_offer(qs, s->k, cd->ub);
	}
	drop_above_tau(qs);
}

/* Keeps the candidate list short when bounds are loose (large radii, many
 * ties): prune, then settle keys exactly, then allow growth. */
static void shrink_candidates(scan_state *s, scan_query *qs)
{
	drop_above_tau(qs);
	if (qs->ncand * 2 > qs->limit)
		make_exact(s, qs);
	if (qs->ncand * 2 > qs->limit)
		qs->limit *= 2;
}

static int push_candidate(scan_state *s, scan_query *qs, size_t row, double lb,
			  double ub)
{
	if (qs->ncand == qs->capcand) {
		size_t cap = qs->capcand ? 2 * qs->capcand : 64;
		scan_cand *c = realloc(qs->cand, cap * sizeof *c);
		if (!c)
			return HYDB_ENOMEM;
		qs->cand = c;
		qs->capcand = cap;
	}
	scan_cand *cd = &qs->cand[qs->ncand++];
	cd->slot = s->slot[row];
	cd->id = s->id[row];
	cd->lb = lb;
	cd->ub = ub;
	cd->exact = 0;
	cd->vec = s->orig[row];
	if (qs->ncand >= qs->limit)
		shrink_candidates(s, qs);
	return HYDB_OK;
}

/* Half-width of the key interval for GEMM dot p: the GEMM error, plus the
 * rounding of the key expression itself. */
static inline double key_halfwidth(double c, double errq, double xn, double x0y0,
				   double p)
{
	return c * (errq * xn + 0x1p-49 * (x0y0 + fabs(p))) + 0x1p-50;
}

/* Lower bounds of SCREEN_STEP keys: fixed trip count and no aliasing, so
 * that -O2 vectorises it. */
#define SCREEN_STEP 16
static void lower_bounds(double *restrict lb, const float *restrict dots,
			 const double *restrict x0, const double *restrict xn,
			 double c, double errq, double q0)
{
	for (size_t j = 0; j < SCREEN_STEP; j++) {
		double p = dots[j], x0y0 = q0 * x0[j];
		lb[j] = c * (x0y0 - p) - 1.0 - key_halfwidth(c, errq, xn[j], x0y0, p);
	}
}

/* One GEMM row: dot products of query qs with the chunk's rows. The lower
 * bounds are computed branch-free first; the rare rows under tau are then
 * handled one by one. Rows past nrows (up to the next SCREEN_STEP) hold
 * stale but finite values and are ignored. */
static void screen_row(scan_state *s, scan_query *qs, const float *dots, double *lb)
{
	double c = s->c, errq = s->gamma * qs->qn, q0 = qs->q0;
	const double *x0 = s->x0, *xn = s->xn;
	size_t n = s->nrows;
	for (size_t j = 0; j < n; j += SCREEN_STEP)
		lower_bounds(lb + j, dots + j, x0 + j, xn + j, c, errq, q0);
	for (size_t j = 0; j < n && !qs->err; j++) {
		if (lb[j] > qs->tau)
			continue;
		double p = dots[j], x0y0 = q0 * x0[j];
		double ub = lb[j] + 2 * key_halfwidth(c, errq, xn[j], x0y0, p);
		heap_offer(qs, s->k, ub);
		qs->err = push_candidate(s, qs, j, lb[j], ub);
	}
}

typedef struct {
	scan_state *s;
	size_t q_first, q_end, tile_first;
	double *lb; /* CHUNK_ROWS scratch */
} screen_job;

static void *screen_rows(void *arg)
{
	screen_job *jb = arg;
	for (size_t i = jb->q_first; i < jb->q_end; i++)
		screen_row(jb->s, &jb->s->qs[i],
			   jb->s->tile + (i - jb->tile_first) * CHUNK_ROWS, jb->lb);
	return NULL;
}

static void screen_block(scan_state *s, size_t q_first, size_t q_end)
{
	size_t half = q_first + (q_end - q_first) / 2;
	screen_job a = { s, q_first, half, q_first, s->lb },
		   b = { s, half, q_end, q_first, s->lb + CHUNK_ROWS };
	pthread_t th;
	if (q_end - q_first < MIN_SPLIT || pthread_create(&th, NULL, screen_rows, &a)) {
		a.q_end = q_end;
		screen_rows(&a);
		return;
	}
	screen_rows(&b);
	pthread_join(th, NULL);
}

/* ---- chunks ------------------------------------------------------------ */

static int flush_chunk(scan_state *s)
{
	if (s->nrows == 0)
		return HYDB_OK;
	for (size_t j = 0; j < s->nrows; j++) {
		double xx = hydb_norm2_d(s->buf + j * s->dim, s->dim);
		s->x0[j] = hydb_lorentz_time_n(xx, s->c);
		s->xn[j] = sqrt(xx);
	}
	for (size_t q = 0; q < s->nq; q += QUERY_BLOCK) {
		size_t nb = s->nq - q < QUERY_BLOCK ? s->nq - q : QUERY_BLOCK;
		hydb_sgemm(0, 1, nb, s->nrows, s->dim, 1.0f, s->qs[q].q, s->dim,
			   s->buf, s->dim, 0.0f, s->tile, CHUNK_ROWS);
		screen_block(s, q, q + nb);
	}
	s->nrows = 0;
	for (size_t q = 0; q < s->nq; q++)
		RETURN_ERROR_IF(s->qs[q].err, HYDB_ENOMEM,
				"exact search: out of memory for candidates of query %zu", q);
	return HYDB_OK;
}

/* Gather the rows of one block that pass the filter; vec rows must stay
 * valid until the scan ends (they are re-read for the exact keys). */
static int scan_block(scan_state *s, const float *vec, const hydb_slot_attr *attr,
		      uint32_t first_slot, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		const float *row = vec + j * s->dim;
		if (!hydb_filter_match(s->f, &attr[j]) || !hydb_filter_cone_match(s->f, row))
			continue;
		memcpy(s->buf + s->nrows * s->dim, row, s->dim * sizeof(float));
		s->orig[s->nrows] = row;
		s->slot[s->nrows] = first_slot + (uint32_t)j;
		s->id[s->nrows] = attr[j].id;
		if (++s->nrows == CHUNK_ROWS)
			FORWARD_IF_ERROR(flush_chunk(s));
	}
	return HYDB_OK;
}

static void scan_free(scan_state *s)
{
	if (s->qs)
		for (size_t q = 0; q < s->nq; q++) {
			free(s->qs[q].heap);
			free(s->qs[q].cand);
		}
	free(s->qs);
	free(s->buf);
	free(s->orig);
	free(s->slot);
	free(s->id);
	free(s->x0);
	free(s->xn);
	free(s->lb);
	free(s->tile);
}

static int scan_alloc(scan_state *s)
{
	size_t qb = s->nq < QUERY_BLOCK ? s->nq : QUERY_BLOCK;
	s->qs = calloc(s->nq, sizeof *s->qs);
	s->buf = hydb_alloc_array(CHUNK_ROWS * s->dim, sizeof(float), "exact search chunk");
	s->orig = hydb_alloc_array(CHUNK_ROWS, sizeof *s->orig, "exact search rows");
	s->slot = hydb_alloc_array(CHUNK_ROWS, sizeof *s->slot, "exact search slots");
	s->id = hydb_alloc_array(CHUNK_ROWS, sizeof *s->id, "exact search ids");
	s->x0 = calloc(CHUNK_ROWS, sizeof *s->x0);
	s->xn = calloc(CHUNK_ROWS, sizeof *s->xn);
	s->lb = hydb_alloc_array(2 * CHUNK_ROWS, sizeof(double), "exact search bounds");
	s->tile = calloc(qb * CHUNK_ROWS, sizeof(float));
	RETURN_ERROR_IF(!s->qs || !s->buf || !s->orig || !s->slot || !s->id || !s->x0 ||
				!s->xn || !s->lb || !s->tile,
			HYDB_ENOMEM, "exact search: out of memory for %zu queries", s->nq);
	return HYDB_OK;
}

static int scan_begin(scan_state *s, const float *queries, size_t nq, size_t dim,
		      double c, size_t k, const hydb_filter *f)
{
	memset(s, 0, sizeof *s);
	RETURN_ERROR_IF(!queries || dim == 0 || dim > HYDB_MAX_DIM, HYDB_EINVAL,
			"exact search: no queries or dimension %zu out of range", dim);
	RETURN_ERROR_IF(!(c > 0) || !isfinite(c), HYDB_EINVAL,
			"exact search: curvature %g is not positive", c);
	size_t bad = hydb_first_nonfinite(queries, nq * dim);
	RETURN_ERROR_IF(bad < nq * dim, HYDB_ENONFINITE,
			"exact search: query %zu component %zu is not finite", bad / dim,
			bad % dim);
	s->nq = nq;
	s->dim = dim;
	s->k = k;
	s->c = c;
	s->f = hydb_filter_is_empty(f) ? NULL : f;
	/* gamma_{D+2} doubled: the GEMM bound with room for the norms. */
	s->gamma = 2.0 * (dim + 2) * 0x1p-24 / (1.0 - (dim + 2) * 0x1p-24);
	FORWARD_IF_ERROR(scan_alloc(s));
	for (size_t q = 0; q < nq; q++) {
		scan_query *qs = &s->qs[q];
		double qq = hydb_norm2_d(queries + q * dim, dim);
		qs->q = queries + q * dim;
		qs->q0 = hydb_lorentz_time_n(qq, c);
		qs->qn = sqrt(qq);
		qs->tau = INFINITY;
		qs->limit = 4 * k + 256;
		qs->heap = hydb_alloc_array(k ? k : 1, sizeof(double), "exact search heap");
		if (!qs->heap)
			return HYDB_ENOMEM;
	}
	return HYDB_OK;
}

static int cand_less(const void *a, const void *b)
{
	const scan_cand *x = a, *y = b;
	if (x->lb != y->lb)
		return x->lb < y->lb ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int scan_end(scan_state *s, hydb_hit *out, size_t *nout)
{
	FORWARD_IF_ERROR(flush_chunk(s));
	for (size_t q = 0; q < s->nq; q++) {
		scan_query *qs = &s->qs[q];
		drop_above_tau(qs);
		make_exact(s, qs);
		if (qs->ncand > 1) /* qsort(NULL, 0) is undefined */
			qsort(qs->cand, qs->ncand, sizeof *qs->cand, cand_less);
		size_t n = qs->ncand < s->k ? qs->ncand : s->k;
		for (size_t i = 0; i < n; i++) {
			hydb_hit *h = &out[q * s->k + i];
			h->slot = qs->cand[i].slot;
			h->id = qs->cand[i].id;
			h->key = qs->cand[i].lb;
		}
		nout[q] = n;
	}
	return HYDB_OK;
}

/* ---- entry points ------------------------------------------------------ */

/* k = 0 or no queries: nothing to scan. Returns 1 if handled. */
static int nothing_to_do(size_t nq, size_t k, size_t *nout)
{
	if (nq && k)
		return 0;
	for (size_t q = 0; q < nq; q++)
		nout[q] = 0;
	return 1;
}

int hydb_exact_scan_array(const float *queries, size_t nq, const float *base,
			  const struct hydb_slot_attr *attr, uint32_t first_slot,
			  size_t nbase, size_t dim, double c, size_t k,
			  const struct hydb_filter *f, struct hydb_hit *out, size_t *nout)
{
	scan_state s;
	if (nothing_to_do(nq, k, nout))
		return HYDB_OK;
	int rc = scan_begin(&s, queries, nq, dim, c, k, f);
	for (size_t j = 0; rc == HYDB_OK && j < nbase; j += HYDB_BLOCK_SLOTS) {
		size_t n = nbase - j < HYDB_BLOCK_SLOTS ? nbase - j : HYDB_BLOCK_SLOTS;
		rc = scan_block(&s, base + j * dim, attr + j, first_slot + (uint32_t)j, n);
	}
	if (rc == HYDB_OK)
		rc = scan_end(&s, out, nout);
	scan_free(&s);
	return rc;
}

static int scan_one_block(uint32_t b, const hydb_block *blk, void *ctx)
{
	if (!blk)
		return HYDB_ECORRUPT;
	if (blk->hdr->n_live == 0)
		return HYDB_OK;
	return scan_block(ctx, blk->vec, blk->attr, b * HYDB_BLOCK_SLOTS, HYDB_BLOCK_SLOTS);
}

static int scan_store(scan_state *s, hydb_store *st, MDB_txn *txn)
{
	return hydb_store_each_block(st, txn, scan_one_block, s);
}

int hydb_exact_search(hydb_store *st, MDB_txn *txn, const float *queries,
		      size_t nq, size_t k, const hydb_filter *f, hydb_hit *out,
		      size_t *nout)
{
	scan_state s;
	if (nothing_to_do(nq, k, nout))
		return HYDB_OK;
	int rc = scan_begin(&s, queries, nq, hydb_store_dim(st),
			    hydb_store_curvature(st), k, f);
	if (rc == HYDB_OK)
		rc = scan_store(&s, st, txn);
	if (rc == HYDB_OK)
		rc = scan_end(&s, out, nout);
	scan_free(&s);
	return rc;
}
