/*
 * check_hnsw.c - the HNSW index against brute force, on clustered points
 * of the hyperboloid held in an in-memory vector source, with the graph in
 * a real LMDB environment.
 */
#include <check.h>
#include <lmdb.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/lorentz_kernel.h"
#include "index/hnsw.h"
#include "index/hnsw_impl.h"

/* ---- in-memory vector source ------------------------------------------ */

struct memsrc {
	size_t dim, nslots;
	double c;
	hydb_block_hdr hdr;
	hydb_slot_attr *attr;
	float *vec;
};

static int mem_block(void *ctx, MDB_txn *txn, uint32_t no, hydb_block *out)
{
	struct memsrc *m = ctx;
	if ((size_t)no * HYDB_BLOCK_SLOTS >= m->nslots)
		return HYDB_ENOTFOUND;
	out->hdr = &m->hdr;
	out->attr = m->attr + (size_t)no * HYDB_BLOCK_SLOTS;
	out->vec = m->vec + (size_t)no * HYDB_BLOCK_SLOTS * m->dim;
	return 0;
}

static int in_range(const hydb_slot_attr *a, double lo, double hi)
{
	return a->live && a->radius >= lo && a->radius <= hi;
}

static int mem_rcount(void *ctx, MDB_txn *txn, double lo, double hi,
		      uint64_t limit, uint64_t *out)
{
	struct memsrc *m = ctx;
	*out = 0;
	for (size_t s = 0; s < m->nslots && *out < limit; s++)
		*out += in_range(&m->attr[s], lo, hi);
	return 0;
}

static int mem_rscan(void *ctx, MDB_txn *txn, double lo, double hi,
		     hydb_slot_fn fn, void *fctx)
{
	struct memsrc *m = ctx;
	for (size_t s = 0; s < m->nslots; s++)
		if (in_range(&m->attr[s], lo, hi)) {
			int rc = fn((uint32_t)s, fctx);
			if (rc < 0)
				return rc;
		}
	return 0;
}

/* ---- data: clusters on the hyperboloid at several radii --------------- */

static double urand(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return ((*s >> 11) + 0.5) / 9007199254740992.0;
}

static double nrand(uint64_t *s)
{
	return sqrt(-2 * log(urand(s))) * cos(6.283185307179586 * urand(s));
}

/* Tangent vector at the origin -> space components. */
static void expmap(float *x, const double *v, size_t dim, double c)
{
	double n = 0;
	for (size_t i = 0; i < dim; i++)
		n += v[i] * v[i];
	n = sqrt(n);
	double s = n > 0 ? sinh(sqrt(c) * n) / (sqrt(c) * n) : 1;
	for (size_t i = 0; i < dim; i++)
		x[i] = (float)(v[i] * s);
}

static double radius_of(const float *x, size_t dim, double c)
{
	double n = 0;
	for (size_t i = 0; i < dim; i++)
		n += (double)x[i] * x[i];
	return asinh(sqrt(c * n)) / sqrt(c);
}

#define NCLUST 40

/* Point i of a data set: a cluster centre direction with a cluster radius,
 * label and modality by cluster, Gaussian spread in the tangent space. */
static void make_point(float *x, hydb_slot_attr *a, size_t dim, double c,
		       uint64_t *s, const double *centres, uint64_t id)
{
	double v[256];
	size_t k = (size_t)(urand(s) * NCLUST);
	const double *cc = centres + k * (dim + 1);
	double r = cc[dim] + 0.15 * nrand(s);
	for (size_t i = 0; i < dim; i++)
		v[i] = cc[i] * r + 0.25 * nrand(s) / sqrt((double)dim) * r;
	expmap(x, v, dim, c);
	if (a) {
		a->id = id;
		a->radius = (float)radius_of(x, dim, c);
		a->modality = (uint8_t)(1 + k % 2);
		a->label = (uint8_t)(1 + (k / 2) % 2);
		a->live = 1;
	}
}

static double *make_centres(size_t dim, uint64_t *s)
{
	double *cs = malloc(NCLUST * (dim + 1) * sizeof *cs);
	for (size_t k = 0; k < NCLUST; k++) {
		double n = 0, *cc = cs + k * (dim + 1);
		for (size_t i = 0; i < dim; i++) {
			cc[i] = nrand(s);
			n += cc[i] * cc[i];
		}
		for (size_t i = 0; i < dim; i++)
			cc[i] /= sqrt(n);
		cc[dim] = 0.6 + 2.4 * urand(s);
	}
	return cs;
}

/* ---- fixture ----------------------------------------------------------- */

#define DIM 48
#define N 3000
#define NQ 100
#define CURV 1.0

struct fx {
	char dir[64];
	MDB_env *env;
	hydb_vsource vs;
	struct memsrc mem;
	hydb_index *ix;
	float q[NQ * DIM];
};

static void env_open(struct fx *f)
{
	MDB_txn *txn;
	ck_assert_int_eq(mdb_env_create(&f->env), 0);
	mdb_env_set_maxdbs(f->env, 4);
	mdb_env_set_mapsize(f->env, (size_t)1 << 30);
	ck_assert_int_eq(mdb_env_open(f->env, f->dir, MDB_NOSYNC, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "hnsw_nodes", MDB_CREATE, &f->vs.nodes), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "hnsw_meta", MDB_CREATE, &f->vs.meta), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	f->vs.env = f->env;
}

static void index_open(struct fx *f, unsigned flags)
{
	MDB_txn *txn;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
	int rc = hydb_index_open_source(&f->ix, &f->vs, txn, 12, 100, flags);
	ck_assert_msg(rc == 0, "open: %s", hydb_last_error());
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
}

static void insert_range(struct fx *f, uint32_t from, uint32_t to)
{
	MDB_txn *txn;
	uint32_t *slots = malloc((to - from) * sizeof *slots);
	for (uint32_t i = from; i < to; i++) {
		slots[i - from] = i;
		f->mem.attr[i].live = 1;
	}
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
	int rc = hydb_index_insert(f->ix, txn, slots, to - from);
	ck_assert_msg(rc == 0, "insert: %s", hydb_last_error());
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	free(slots);
}

/* A directory and room for n vectors of dim; the points come next. */
static struct memsrc *fx_alloc(struct fx *f, size_t n, size_t dim)
{
	memset(f, 0, sizeof *f);
	strcpy(f->dir, "/tmp/check_hnsw.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	struct memsrc *m = &f->mem;
	m->dim = dim;
	m->c = CURV;
	m->nslots = (n + HYDB_BLOCK_SLOTS - 1) / HYDB_BLOCK_SLOTS * HYDB_BLOCK_SLOTS;
	m->attr = calloc(m->nslots, sizeof *m->attr);
	m->vec = calloc(m->nslots * dim, sizeof *m->vec);
	return m;
}

/* The points are made: the environment and an empty index. */
static void fx_open(struct fx *f, unsigned flags)
{
	f->vs = (hydb_vsource){.ctx = &f->mem, .dim = f->mem.dim, .c = CURV,
			       .block = mem_block, .radius_count = mem_rcount,
			       .radius_scan = mem_rscan};
	env_open(f);
	index_open(f, flags);
}

static void fx_init(struct fx *f, unsigned flags, int build)
{
	uint64_t s = 42;
	struct memsrc *m = fx_alloc(f, N, DIM);
	double *cs = make_centres(DIM, &s);
	for (size_t i = 0; i < N; i++)
		make_point(m->vec + i * DIM, &m->attr[i], DIM, CURV, &s, cs, i + 1);
	for (size_t i = 0; i < NQ; i++)
		make_point(f->q + i * DIM, NULL, DIM, CURV, &s, cs, 0);
	free(cs);
	fx_open(f, flags);
	for (size_t i = 0; i < m->nslots; i++)
		m->attr[i].live = 0;
	if (build)
		insert_range(f, 0, N);
}

static void fx_free(struct fx *f)
{
	char cmd[4200];
	hydb_index_close(f->ix);
	mdb_env_close(f->env);
	free(f->mem.attr);
	free(f->mem.vec);
	/* Quoted: the directory comes from mkdtemp under TMPDIR, which may hold
	 * spaces. */
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- reference --------------------------------------------------------- */

/* Long-double textbook key c(x0 y0 - x.y) - 1: independent of the kernels. */
static long double ref_key(const float *x, const float *y, size_t dim, double c)
{
	long double xx = 0, yy = 0, xy = 0;
	for (size_t i = 0; i < dim; i++) {
		xx += (long double)x[i] * x[i];
		yy += (long double)y[i] * y[i];
		xy += (long double)x[i] * y[i];
	}
	long double x0 = sqrtl(1 / (long double)c + xx);
	long double y0 = sqrtl(1 / (long double)c + yy);
	return c * (x0 * y0 - xy) - 1;
}

/* The same key by the difference form, in long double: the kernels must
 * match it to double rounding. */
static long double ref_key_d(const float *x, const float *y, size_t dim,
			     double c)
{
	long double xx = 0, dd = 0, xd = 0;
	for (size_t i = 0; i < dim; i++) {
		long double d = (long double)y[i] - x[i];
		xx += (long double)x[i] * x[i];
		dd += d * d;
		xd += x[i] * d;
	}
	long double yy = xx + 2 * xd + dd, w = xx * dd - xd * xd;
	return (dd + c * w) /
	       (sqrtl((1 / (long double)c + xx) * (1 / (long double)c + yy)) +
		xx + xd + 1 / (long double)c);
}

/* Exact top-k ids among live slots matching flt. */
static size_t truth(const struct fx *f, const float *q, const hydb_filter *flt,
		    size_t k, uint64_t *ids)
{
	long double best[64];
	size_t n = 0;
	for (size_t s = 0; s < f->mem.nslots; s++) {
		const hydb_slot_attr *a = &f->mem.attr[s];
		if (!hydb_filter_match(flt, a))
			continue;
		long double d = ref_key(q, f->mem.vec + s * DIM, DIM, CURV);
		size_t i = n < k ? n++ : k;
		if (i == k && d >= best[k - 1])
			continue;
		if (i == k)
			i = k - 1;
		while (i > 0 && best[i - 1] > d) {
			best[i] = best[i - 1];
			ids[i] = ids[i - 1];
			i--;
		}
		best[i] = d;
		ids[i] = a->id;
	}
	return n;
}

/* Mean recall@k over the queries; every returned hit must match flt. */
static double recall(struct fx *f, size_t k, size_t ef, const hydb_filter *flt,
		     const char **plan)
{
	MDB_txn *txn;
	hydb_hit hits[64];
	uint64_t ids[64];
	size_t found = 0, want = 0;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
	for (size_t qi = 0; qi < NQ; qi++) {
		size_t n, nt = truth(f, f->q + qi * DIM, flt, k, ids);
		int rc = hydb_index_search(f->ix, txn, f->q + qi * DIM, k, ef,
					   flt, hits, &n, plan);
		ck_assert_msg(rc == 0, "search: %s", hydb_last_error());
		ck_assert_uint_eq(n, nt);
		for (size_t i = 0; i < n; i++) {
			const hydb_slot_attr *a = &f->mem.attr[hits[i].slot];
			ck_assert(hydb_filter_match(flt, a));
			ck_assert_uint_eq(a->id, hits[i].id);
			if (i)
				ck_assert(hits[i - 1].key <= hits[i].key);
			for (size_t j = 0; j < nt; j++)
				found += ids[j] == hits[i].id;
		}
		want += nt;
	}
	mdb_txn_abort(txn);
	return want ? (double)found / want : 1.0;
}

static void on_problem(const char *msg, void *ctx)
{
	fprintf(stderr, "check: %s\n", msg);
	(*(int *)ctx)++;
}

static size_t problems(struct fx *f)
{
	MDB_txn *txn;
	size_t np;
	int seen = 0;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(hydb_index_check(f->ix, txn, on_problem, &seen, &np), 0);
	{
		/* these tests also hold the graph to full reachability */
		size_t nu;
		ck_assert_int_eq(hydb_index_unreachable(f->ix, txn, on_problem, &seen, &nu), 0);
		np += nu;
	}
	mdb_txn_abort(txn);
	ck_assert_uint_eq(np, (size_t)seen);
	return np;
}

/* ---- tests ------------------------------------------------------------- */

/* Live graph nodes that the reachability tree alone does not reach from
 * the entry point: its links are the first prot of each layer-0 list whose
 * owner ranks below the target (index/reach.c). The tree must span the
 * graph after any sequence of inserts and deletions. */
static size_t tree_unreached(struct fx *f)
{
	MDB_txn *txn;
	struct hnsw_meta m;
	MDB_val k = {4, "hnsw"}, v;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(mdb_get(txn, f->vs.meta, &k, &v), 0);
	memcpy(&m, v.mv_data, sizeof m);
	size_t lim = m.slot_limit, nreached = 0, head = 0;
	uint8_t *seen = calloc(lim + 1, 1);
	uint32_t *queue = malloc((lim + 1) * sizeof *queue);
	size_t tail = 0;
	if (m.entry != HYDB_NO_SLOT) {
		seen[m.entry] = 1;
		queue[tail++] = m.entry;
	}
	while (head < tail) {
		uint32_t x = queue[head++];
		uint8_t key[8];
		int32_t rx, ry;
		nreached++;
		hnsw_node_key(key, HNSW_TAG_L0, x);
		MDB_val kk = {8, key}, vx;
		ck_assert_int_eq(mdb_get(txn, f->vs.nodes, &kk, &vx), 0);
		const uint8_t *p = vx.mv_data;
		memcpy(&rx, p + vx.mv_size - 4, 4);
		for (unsigned i = 0; i < p[1]; i++) {
			uint32_t y;
			memcpy(&y, p + 4 + 4 * (size_t)i, 4);
			if (y >= lim || seen[y])
				continue;
			hnsw_node_key(key, HNSW_TAG_L0, y);
			MDB_val ky = {8, key}, vy;
			ck_assert_int_eq(mdb_get(txn, f->vs.nodes, &ky, &vy), 0);
			memcpy(&ry, (const uint8_t *)vy.mv_data + vy.mv_size - 4, 4);
			if (rx >= ry)
				continue; /* stale tree link */
			seen[y] = 1;
			queue[tail++] = y;
		}
	}
	mdb_txn_abort(txn);
	free(seen);
	free(queue);
	ck_assert_uint_ge(m.nodes, nreached);
	return (size_t)m.nodes - nreached;
}

START_TEST(kernels_agree)
{
	static const size_t dims[] = {1, 7, 16, 33, 100, 768};
	uint64_t s = 7;
	float x[768], y[768], yr[768];
	uint16_t yh[768];
	int best = hydb_kernel_set_level(HYDB_KERNEL_BEST);
	for (size_t t = 0; t < sizeof dims / sizeof *dims; t++) {
		size_t d = dims[t];
		for (size_t i = 0; i < d; i++) {
			x[i] = (float)(3 * nrand(&s));
			/* a near neighbour far from the origin: the case the
			 * textbook formula gets wrong */
			y[i] = x[i] + (float)(1e-3 * nrand(&s));
		}
		hydb_f32_to_f16(yh, y, d);
		for (size_t i = 0; i < d; i++)
			yr[i] = hydb_f16_to_f32(yh[i]);
		/* The textbook form loses digits here: a loose check of the
		 * formula, then a tight one of the arithmetic. */
		double text = (double)ref_key(x, y, d, 0.7), k0 = 0;
		double ref = (double)ref_key_d(x, y, d, 0.7);
		double ref16 = (double)ref_key_d(x, yr, d, 0.7);
		ck_assert(fabs(text - ref) <= 1e-6 * ref);
		for (int l = 0; l <= best; l++) {
			ck_assert_int_eq(hydb_kernel_set_level(l), l);
			hydb_kquery q;
			hydb_kquery_init(&q, x, d, 0.7);
			double k = hydb_kernel_key(x, y, d, 0.7);
			double h = hydb_key_f16(&q, yh);
			ck_assert_msg(fabs(k - ref) <= 1e-9 * ref,
				      "%s d=%zu: %.17g vs %.17g",
				      hydb_kernel_name(l), d, k, (double)ref);
			if (l == 0)
				k0 = k;
			ck_assert(fabs(k - k0) <= 1e-12 * k0);
			/* the walk kernel may sum in float32 */
			ck_assert_msg(fabs(h - ref16) <= 1e-4 * ref16,
				      "%s d=%zu half: %.17g vs %.17g",
				      hydb_kernel_name(l), d, h, ref16);
		}
	}
	hydb_kernel_set_level(HYDB_KERNEL_BEST);
	/* a point is at key 0 from itself */
	ck_assert(hydb_kernel_key(x, x, 768, 1.0) == 0.0);
}
END_TEST

/* Every kernel level: hydb_keys_f32/f16 over n points equal the single
 * keys bit for bit. */
static void batch_keys_check(const float *x, size_t dim,
			     const float *const *yp,
			     const uint16_t *const *hp, size_t np, double *kb,
			     double *kh, int far)
{
	int best = hydb_kernel_set_level(HYDB_KERNEL_BEST);
	for (int l = 0; l <= best; l++) {
		ck_assert_int_eq(hydb_kernel_set_level(l), l);
		hydb_kquery q;
		hydb_kquery_init(&q, x, dim, 0.9);
		ck_assert_int_eq(q.far, far);
		const size_t ns[] = {0, 1, 7, 8, 9, 33, np};
		for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
			size_t n = ns[t];
			kb[0] = kh[0] = -1;
			hydb_keys_f32(&q, yp, n, kb);
			hydb_keys_f16(&q, hp, n, kh);
			if (n == 0)
				ck_assert(kb[0] == -1 && kh[0] == -1);
			for (size_t p = 0; p < n; p++) {
				double a = hydb_key_f32(&q, yp[p]);
				double b = hydb_key_f16(&q, hp[p]);
				ck_assert_msg(kb[p] == a && kh[p] == b,
					      "%s far=%d n=%zu point %zu: "
					      "%.17g/%.17g vs %.17g/%.17g",
					      hydb_kernel_name(l), far, n, p,
					      kb[p], kh[p], a, b);
			}
		}
		ck_assert(kb[0] == 0.0);
	}
	hydb_kernel_set_level(HYDB_KERNEL_BEST);
}

START_TEST(batch_keys_match_single_keys)
{
	/* 70 points: two full batches of 32, a partial one, and an 8-lane
	 * finish with a scalar tail in each. The query is far (|x| = 20:
	 * three sums, both of key_from_sums3's forms, every fifth point on
	 * the obtuse side) and then near (|x| = 0.2: two sums). */
	enum { D = 100, NP = 70 };
	static float x[D], y[NP][D];
	static uint16_t yh[NP][D];
	const float *yp[NP];
	const uint16_t *hp[NP];
	double kb[NP], kh[NP];
	for (int far = 1; far >= 0; far--) {
		uint64_t s = 11;
		float scale = far ? 2.0f : 0.02f;
		for (size_t i = 0; i < D; i++)
			x[i] = (float)(scale * nrand(&s));
		for (size_t p = 0; p < NP; p++) {
			/* near and far points; one equal to the query (key 0) */
			double spread = p == 0 ? 0 : p % 3 == 0 ? 3.0 : 1e-2;
			float sign = p % 5 == 4 ? -1.0f : 1.0f;
			for (size_t i = 0; i < D; i++)
				y[p][i] = sign * x[i] +
					  (float)(spread * scale * nrand(&s));
			hydb_f32_to_f16(yh[p], y[p], D);
			yp[p] = y[p];
			hp[p] = yh[p];
		}
		batch_keys_check(x, D, yp, hp, NP, kb, kh, far);
	}
}
END_TEST

static int ref_cand_cmp(const void *a, const void *b)
{
	const struct hnsw_cand *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->slot > y->slot) - (x->slot < y->slot);
}

START_TEST(candidate_sort_orders_by_key_then_slot)
{
	/* sizes around the insertion runs (16), the merge widths and the
	 * stack buffer (1024), with many equal keys */
	static const size_t ns[] = {0, 1, 2, 15, 16, 17, 31, 33, 200, 1023,
				    1024, 1025, 3000};
	static struct hnsw_cand a[3000], b[3000];
	uint64_t s = 5;
	for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
		size_t n = ns[t];
		for (size_t i = 0; i < n; i++) {
			a[i].key = (double)(int)(urand(&s) * 50) / 7;
			a[i].slot = (uint32_t)(urand(&s) * 1e6);
		}
		memcpy(b, a, n * sizeof *a);
		hnsw_cand_sort(a, n);
		qsort(b, n, sizeof *b, ref_cand_cmp);
		for (size_t i = 0; i < n; i++)
			ck_assert_msg(a[i].key == b[i].key &&
					      a[i].slot == b[i].slot,
				      "n=%zu at %zu", n, i);
	}
}
END_TEST

START_TEST(half_conversion)
{
	static const float v[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f,
				  5.960464477539063e-08f, 0.333251953125f};
	uint16_t h;
	for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
		hydb_f32_to_f16(&h, &v[i], 1);
		ck_assert(hydb_f16_to_f32(h) == v[i]);
	}
	float big = 70000.0f, tie = 1.0f + 1.0f / 2048; /* halfway: to even */
	hydb_f32_to_f16(&h, &big, 1);
	ck_assert_uint_eq(h, 0x7c00);
	hydb_f32_to_f16(&h, &tie, 1);
	ck_assert(hydb_f16_to_f32(h) == 1.0f);
}
END_TEST

START_TEST(recall_unfiltered)
{
	struct fx f;
	const char *plan = NULL;
	fx_init(&f, 0, 1);
	double r = recall(&f, 10, 100, NULL, &plan);
	ck_assert_str_eq(plan, "hnsw");
	ck_assert_msg(r >= 0.95, "recall@10 %.3f", r);
	double r1 = recall(&f, 1, 64, NULL, NULL);
	ck_assert_msg(r1 >= 0.95, "recall@1 %.3f", r1);
	ck_assert_uint_eq(problems(&f), 0);
	fx_free(&f);
}
END_TEST

START_TEST(recall_float32_walk_serial)
{
	struct fx f;
	fx_init(&f, HYDB_HNSW_NO_COMPACT, 0);
	hydb_index_set_threads(f.ix, 1);
	insert_range(&f, 0, N);
	double r = recall(&f, 10, 100, NULL, NULL);
	ck_assert_msg(r >= 0.95, "recall@10 %.3f", r);
	fx_free(&f);
}
END_TEST

/* One removal at a time, or all of them in one batch (one scan). */
static void remove_slots_as(struct fx *f, const uint32_t *slots, size_t n,
			    int batched)
{
	MDB_txn *txn;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
	if (batched) {
		int rc = hydb_index_remove_many(f->ix, txn, slots, n);
		ck_assert_msg(rc == 0, "remove %zu: %s", n, hydb_last_error());
	}
	for (size_t i = 0; i < n; i++) {
		if (!batched) {
			int rc = hydb_index_remove(f->ix, txn, slots[i]);
			ck_assert_msg(rc == 0, "remove %u: %s", slots[i],
				      hydb_last_error());
		}
		f->mem.attr[slots[i]].live = 0;
	}
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
}

static int remove_batched;

static void remove_slots(struct fx *f, const uint32_t *slots, size_t n)
{
	remove_slots_as(f, slots, n, remove_batched);
}

START_TEST(delete_reinsert)
{
	struct fx f;
	uint64_t s = 99;
	uint32_t gone[N], ng = 0;
	fx_init(&f, 0, 1);
	double fresh = recall(&f, 10, 100, NULL, NULL);
	for (uint32_t i = 0; i < N; i++)
		if (urand(&s) < 0.3)
			gone[ng++] = i;
	remove_slots(&f, gone, ng);
	ck_assert_uint_eq(problems(&f), 0);
	ck_assert_uint_eq(tree_unreached(&f), 0);
	double holed = recall(&f, 10, 100, NULL, NULL);
	ck_assert_msg(holed >= fresh - 0.02, "after delete %.3f vs %.3f", holed,
		      fresh);
	MDB_txn *txn;
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, 0, &txn), 0);
	for (uint32_t i = 0; i < ng; i++)
		f.mem.attr[gone[i]].live = 1;
	ck_assert_int_eq(hydb_index_insert(f.ix, txn, gone, ng), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	double again = recall(&f, 10, 100, NULL, NULL);
	ck_assert_msg(again >= fresh - 0.01, "re-inserted %.3f vs fresh %.3f",
		      again, fresh);
	ck_assert_uint_eq(problems(&f), 0);
	fx_free(&f);
}
END_TEST

/* The database's upsert: the old slot leaves the graph, the store frees it
 * and allocates one (the most recently freed first, so often the same
 * slot) for the new vector, and the batch's new slots are inserted at the
 * end, all in one transaction. */
struct churn {
	struct fx *f;
	uint64_t s;
	double *centres;
	uint32_t free[N], nfree;
	uint32_t batch[N], nbatch;
	uint8_t touched[N];
};

static void churn_remove(struct churn *c, MDB_txn *txn, uint32_t slot)
{
	int rc = hydb_index_remove(c->f->ix, txn, slot);
	ck_assert_msg(rc == 0, "remove %u: %s", slot, hydb_last_error());
	c->f->mem.attr[slot].live = 0;
	c->free[c->nfree++] = slot;
}

static void churn_write(struct churn *c)
{
	struct memsrc *m = &c->f->mem;
	uint32_t slot = c->free[--c->nfree];
	make_point(m->vec + (size_t)slot * DIM, &m->attr[slot], DIM, CURV,
		   &c->s, c->centres, 100000 + c->s % 1000000);
	c->touched[slot] = 1;
	c->batch[c->nbatch++] = slot;
}

static void churn_batch(struct churn *c, unsigned ops)
{
	MDB_txn *txn;
	memset(c->touched, 0, sizeof c->touched);
	c->nbatch = 0;
	ck_assert_int_eq(mdb_txn_begin(c->f->env, NULL, 0, &txn), 0);
	for (unsigned i = 0; i < ops; i++) {
		uint32_t slot = (uint32_t)(urand(&c->s) * N);
		double u = urand(&c->s);
		if (c->touched[slot])
			continue;
		if (c->f->mem.attr[slot].live) {
			churn_remove(c, txn, slot);
			if (u < 0.8)
				churn_write(c);
		} else if (c->nfree) {
			churn_write(c);
		}
	}
	int rc = hydb_index_insert(c->f->ix, txn, c->batch, c->nbatch);
	ck_assert_msg(rc == 0, "insert: %s", hydb_last_error());
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
}

/* With ef as large as the graph, a record's own vector must find it. */
static size_t lost_records(struct fx *f)
{
	MDB_txn *txn;
	hydb_hit hits[10];
	size_t lost = 0;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
	for (uint32_t s = 0; s < N; s++) {
		size_t n, found = 0;
		if (!f->mem.attr[s].live)
			continue;
		ck_assert_int_eq(hydb_index_search(f->ix, txn,
						   f->mem.vec + (size_t)s * DIM,
						   10, N, NULL, hits, &n, NULL),
				 0);
		for (size_t i = 0; i < n; i++)
			found |= hits[i].slot == s;
		lost += !found;
	}
	mdb_txn_abort(txn);
	return lost;
}

START_TEST(upserts_keep_every_node_reachable)
{
	struct fx f;
	static struct churn c;
	uint64_t cs = 5;
	fx_init(&f, 0, 0);
	insert_range(&f, 0, 2000);
	memset(&c, 0, sizeof c);
	c.f = &f;
	c.s = 1234;
	c.centres = make_centres(DIM, &cs);
	for (uint32_t s = N; s-- > 2000;)
		c.free[c.nfree++] = s;
	for (unsigned b = 0; b < 12; b++)
		churn_batch(&c, 160);
	free(c.centres);
	ck_assert_uint_eq(problems(&f), 0);
	ck_assert_uint_eq(tree_unreached(&f), 0);
	ck_assert_uint_eq(lost_records(&f), 0);
	fx_free(&f);
}
END_TEST

/* The entry point deleted again and again: each time its successor takes
 * the root's place and the old root's children, the lowest-ranked nodes
 * of all, need new parents though the new root's tree links soon fill up.
 * Every node must stay in the tree. */
START_TEST(entry_deletions_keep_the_tree_whole)
{
	struct fx f;
	fx_init(&f, 0, 0);
	insert_range(&f, 0, 3000);
	for (unsigned i = 0; i < 150; i++) {
		MDB_txn *txn;
		struct hnsw_meta m;
		MDB_val k = {4, "hnsw"}, v;
		ck_assert_int_eq(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
		ck_assert_int_eq(mdb_get(txn, f.vs.meta, &k, &v), 0);
		memcpy(&m, v.mv_data, sizeof m);
		mdb_txn_abort(txn);
		remove_slots_as(&f, &m.entry, 1, i % 2);
	}
	ck_assert_uint_eq(tree_unreached(&f), 0);
	ck_assert_uint_eq(problems(&f), 0);
	fx_free(&f);
}
END_TEST

/* ---- reachability on isotropic data ----------------------------------- */

#define ISO_DIM 13

/* n points of an isotropic Gaussian in the tangent space at the origin,
 * spread so that radii run from near 0 to about 3: the points near the
 * origin are close to everything and prune the lists of those above them,
 * the case that used to leave about 1% of a plain build unreachable. */
static void iso_init(struct fx *f, size_t n, uint64_t seed)
{
	uint64_t s = seed;
	double v[ISO_DIM];
	struct memsrc *m = fx_alloc(f, n, ISO_DIM);
	for (size_t i = 0; i < n; i++) {
		float *x = m->vec + i * ISO_DIM;
		for (size_t j = 0; j < ISO_DIM; j++)
			v[j] = 0.6 * nrand(&s);
		expmap(x, v, ISO_DIM, CURV);
		m->attr[i] = (hydb_slot_attr){.id = i + 1, .live = 0,
			.radius = (float)radius_of(x, ISO_DIM, CURV),
			.modality = 1, .label = 1};
	}
	fx_open(f, 0);
}

static size_t unreachable(struct fx *f)
{
	MDB_txn *txn;
	size_t nu;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(hydb_index_unreachable(f->ix, txn, NULL, NULL, &nu), 0);
	mdb_txn_abort(txn);
	return nu;
}

#define ISO_N 8000

START_TEST(isotropic_build_reaches_every_node)
{
	struct fx f;
	iso_init(&f, ISO_N, 3);
	/* one batch grown serially, then one on two threads */
	hydb_index_set_threads(f.ix, 1);
	insert_range(&f, 0, ISO_N / 2);
	ck_assert_uint_eq(unreachable(&f), 0);
	hydb_index_set_threads(f.ix, 2);
	insert_range(&f, ISO_N / 2, ISO_N);
	ck_assert_uint_eq(problems(&f), 0);
	fx_free(&f);
}
END_TEST

/* Deleting the nodes nearest the origin (about 16%), the hubs most tree
 * links hang from, and the entry point: their children find new parents. */
START_TEST(isotropic_hub_deletes_keep_every_node_reachable)
{
	struct fx f;
	uint32_t gone[ISO_N / 4 + 1];
	size_t ng = 0;
	iso_init(&f, ISO_N / 4, 11);
	insert_range(&f, 0, ISO_N / 4);
	MDB_txn *txn;
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
	struct hnsw_meta m;
	MDB_val k = {4, "hnsw"}, v;
	ck_assert_int_eq(mdb_get(txn, f.vs.meta, &k, &v), 0);
	memcpy(&m, v.mv_data, sizeof m);
	mdb_txn_abort(txn);
	for (uint32_t i = 0; i < ISO_N / 4; i++)
		if (f.mem.attr[i].radius < 1.7f || i == m.entry)
			gone[ng++] = i;
	ck_assert_uint_gt(ng, 100);
	ck_assert_uint_eq(tree_unreached(&f), 0);
	remove_slots(&f, gone, ng);
	ck_assert_uint_eq(problems(&f), 0);
	ck_assert_uint_eq(tree_unreached(&f), 0);
	fx_free(&f);
}
END_TEST

START_TEST(delete_reinsert_batched)
{
	remove_batched = 1;
	delete_reinsert_fn(_i);
}
END_TEST

START_TEST(isotropic_hub_deletes_batched)
{
	remove_batched = 1;
	isotropic_hub_deletes_keep_every_node_reachable_fn(_i);
}
END_TEST

START_TEST(delete_everything)
{
	struct fx f;
	uint32_t all[200];
	fx_init(&f, 0, 0);
	insert_range(&f, 0, 200);
	for (uint32_t i = 0; i < 200; i++)
		all[i] = 199 - i;
	/* half one by one, the rest in one batch that names some twice */
	remove_slots_as(&f, all, 100, 0);
	ck_assert_uint_eq(problems(&f), 0);
	uint32_t rest[120];
	memcpy(rest, all + 100, 100 * sizeof *rest);
	memcpy(rest + 100, all + 100, 20 * sizeof *rest);
	MDB_txn *w;
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, 0, &w), 0);
	ck_assert_int_eq(hydb_index_remove_many(f.ix, w, rest, 120), 0);
	ck_assert_int_eq(mdb_txn_commit(w), 0);
	for (uint32_t i = 0; i < 200; i++)
		f.mem.attr[i].live = 0;
	ck_assert_uint_eq(problems(&f), 0);
	hydb_hit h[10];
	size_t n = 99;
	MDB_txn *txn;
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(hydb_index_search(f.ix, txn, f.q, 10, 0, NULL, h, &n,
					   NULL), 0);
	ck_assert_uint_eq(n, 0);
	mdb_txn_abort(txn);
	fx_free(&f);
}
END_TEST

/* Radius quantile of the data: a range [0, q] keeps about frac of it. */
static double quantile(const struct fx *f, double frac)
{
	float *r = malloc(N * sizeof *r);
	for (size_t i = 0; i < N; i++)
		r[i] = f->mem.attr[i].radius;
	for (size_t i = 1; i < N; i++) /* insertion sort: small N */
		for (size_t j = i; j > 0 && r[j - 1] > r[j]; j--) {
			float t = r[j];
			r[j] = r[j - 1];
			r[j - 1] = t;
		}
	double q = r[(size_t)(frac * (N - 1))];
	free(r);
	return q;
}

START_TEST(recall_filtered)
{
	static const double sel[] = {0.01, 0.1, 0.5, 0.9};
	struct fx f;
	const char *plan;
	int brute = 0, graph = 0;
	fx_init(&f, 0, 1);
	for (size_t i = 0; i < sizeof sel / sizeof *sel; i++) {
		hydb_filter flt = {0, quantile(&f, sel[i]), 0, 0};
		double r = recall(&f, 10, 64, &flt, &plan);
		ck_assert_msg(r >= 0.95, "selectivity %.2f: recall %.3f (%s)",
			      sel[i], r, plan);
		brute += !strcmp(plan, "brute-filtered");
		graph += !strcmp(plan, "hnsw-filtered");
	}
	/* Both plans must have been exercised. */
	ck_assert_int_gt(brute, 0);
	ck_assert_int_gt(graph, 0);
	hydb_filter lab = {0, INFINITY, 0, HYDB_MASK(HYDB_LABEL_UNSAFE)};
	ck_assert(recall(&f, 10, 64, &lab, &plan) >= 0.95);
	hydb_filter both = {quantile(&f, 0.3), INFINITY,
			    HYDB_MASK(HYDB_MOD_IMAGE), 0};
	ck_assert(recall(&f, 10, 64, &both, &plan) >= 0.95);
	hydb_filter none = {5000, INFINITY, 0, 0};
	ck_assert(recall(&f, 10, 64, &none, &plan) == 1.0);
	fx_free(&f);
}
END_TEST

START_TEST(persists)
{
	struct fx f;
	hydb_hit a[10], b[10];
	size_t na, nb;
	MDB_txn *txn;
	fx_init(&f, 0, 1);
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(hydb_index_search(f.ix, txn, f.q, 10, 50, NULL, a, &na,
					   NULL), 0);
	mdb_txn_abort(txn);
	hydb_index_close(f.ix);
	mdb_env_close(f.env);
	env_open(&f);
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
	/* A read transaction suffices to open a built index; the parameters
	 * given are ignored in favour of the persisted ones. */
	ck_assert_int_eq(hydb_index_open_source(&f.ix, &f.vs, txn, 40, 7, 0), 0);
	hydb_index_stats st;
	ck_assert_int_eq(hydb_index_stats_get(f.ix, txn, &st), 0);
	ck_assert_uint_eq(st.M, 12);
	ck_assert_uint_eq(st.efc, 100);
	ck_assert_uint_eq(st.nodes, N);
	ck_assert_int_eq(hydb_index_search(f.ix, txn, f.q, 10, 50, NULL, b, &nb,
					   NULL), 0);
	mdb_txn_abort(txn);
	ck_assert_uint_eq(na, 10);
	ck_assert_uint_eq(na, nb);
	for (size_t i = 0; i < na; i++) {
		ck_assert_uint_eq(a[i].id, b[i].id);
		ck_assert(a[i].key == b[i].key);
	}
	fx_free(&f);
}
END_TEST

/* The k best kept by insertion (k <= 64) are the first k of the sorted
 * beam (k > 64), keys and ids, for every k up to the beam. */
START_TEST(top_k_is_the_sorted_prefix)
{
	struct fx f;
	hydb_hit all[100], some[64];
	size_t na, ns;
	MDB_txn *txn;
	fx_init(&f, 0, 1);
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
	for (size_t qi = 0; qi < 20; qi++) {
		const float *q = f.q + qi * DIM;
		ck_assert_int_eq(hydb_index_search(f.ix, txn, q, 100, 100, NULL,
						   all, &na, NULL), 0);
		ck_assert_uint_eq(na, 100);
		static const size_t ks[] = {1, 2, 10, 33, 64};
		for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
			ck_assert_int_eq(hydb_index_search(f.ix, txn, q, ks[t],
							   100, NULL, some,
							   &ns, NULL), 0);
			ck_assert_uint_eq(ns, ks[t]);
			for (size_t i = 0; i < ns; i++)
				ck_assert_msg(some[i].id == all[i].id &&
						      some[i].key == all[i].key,
					      "query %zu k %zu rank %zu", qi,
					      ks[t], i);
		}
	}
	mdb_txn_abort(txn);
	fx_free(&f);
}
END_TEST

/* Damaged sizes in the graph's header or records are refused with
 * HYDB_ECORRUPT before anything is sized from them. */
static int search_after_damage(struct fx *f, size_t field, uint32_t value)
{
	MDB_txn *txn;
	MDB_val k = {4, "hnsw"}, v;
	struct hnsw_meta m;
	hydb_hit h[10];
	size_t n;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_get(txn, f->vs.meta, &k, &v), 0);
	memcpy(&m, v.mv_data, sizeof m);
	memcpy((char *)&m + field, &value, sizeof value);
	v.mv_data = &m;
	ck_assert_int_eq(mdb_put(txn, f->vs.meta, &k, &v, 0), 0);
	int rc = hydb_index_search(f->ix, txn, f->q, 10, 0, NULL, h, &n, NULL);
	mdb_txn_abort(txn);
	return rc;
}

START_TEST(damaged_sizes_are_refused)
{
	struct fx f;
	fx_init(&f, 0, 0);
	insert_range(&f, 0, 300);
	ck_assert_int_eq(search_after_damage(&f, offsetof(struct hnsw_meta,
							  slot_limit),
					     0xfffffff0u),
			 HYDB_ECORRUPT);
	ck_assert_int_eq(search_after_damage(&f, offsetof(struct hnsw_meta,
							  max_level), 200),
			 HYDB_ECORRUPT);
	ck_assert_int_eq(search_after_damage(&f, offsetof(struct hnsw_meta,
							  entry), 100000),
			 HYDB_ECORRUPT);
	/* A slot limit below the nodes' links: a link past it is refused. */
	ck_assert_int_eq(search_after_damage(&f, offsetof(struct hnsw_meta,
							  slot_limit), 150),
			 HYDB_ECORRUPT);
	fx_free(&f);
}
END_TEST

/* Rewrite a graph as format 1 wrote it: layer-0 records without the tree
 * (no tree links, no rank). */
static void make_format1(struct fx *f)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = {4, "hnsw"}, v;
	struct hnsw_meta m;
	uint8_t key[8];
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_get(txn, f->vs.meta, &k, &v), 0);
	memcpy(&m, v.mv_data, sizeof m);
	m.version = 1;
	v.mv_data = &m;
	ck_assert_int_eq(mdb_put(txn, f->vs.meta, &k, &v, 0), 0);
	/* Collected first: a put of another size under a cursor moves it. */
	static uint8_t recs[300][1024];
	static size_t sizes[300];
	uint32_t slots[300], nr = 0;
	ck_assert_int_eq(mdb_cursor_open(txn, f->vs.nodes, &cur), 0);
	hnsw_node_key(key, HNSW_TAG_L0, 0);
	k = (MDB_val){8, key};
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	for (; rc == 0 && hnsw_key_tag(&k) == HNSW_TAG_L0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		ck_assert(nr < 300 && v.mv_size <= sizeof recs[0]);
		slots[nr] = hnsw_key_num(&k);
		memcpy(recs[nr], v.mv_data, v.mv_size);
		recs[nr][1] = 0;
		sizes[nr++] = v.mv_size - 4;
	}
	mdb_cursor_close(cur);
	for (uint32_t i = 0; i < nr; i++) {
		hnsw_node_key(key, HNSW_TAG_L0, slots[i]);
		k = (MDB_val){8, key};
		v = (MDB_val){sizes[i], recs[i]};
		ck_assert_int_eq(mdb_put(txn, f->vs.nodes, &k, &v, 0), 0);
	}
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
}

START_TEST(format1_is_searched_not_changed)
{
	struct fx f;
	hydb_hit h[10];
	size_t n;
	MDB_txn *txn;
	uint32_t slot = 299;
	fx_init(&f, 0, 0);
	insert_range(&f, 0, 299);
	make_format1(&f);
	hydb_index_close(f.ix);
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(hydb_index_open_source(&f.ix, &f.vs, txn, 0, 0, 0), 0);
	int rc = hydb_index_search(f.ix, txn, f.q, 10, 50, NULL, h, &n, NULL);
	ck_assert_msg(rc == 0, "search: %s", hydb_last_error());
	ck_assert_uint_eq(n, 10);
	mdb_txn_abort(txn);
	ck_assert_uint_eq(problems(&f), 0);
	f.mem.attr[slot].live = 1;
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, 0, &txn), 0);
	ck_assert_int_eq(hydb_index_insert(f.ix, txn, &slot, 1), HYDB_EVERSION);
	ck_assert_int_eq(hydb_index_remove(f.ix, txn, 5), HYDB_EVERSION);
	ck_assert(strstr(hydb_last_error(), "format 1"));
	mdb_txn_abort(txn);
	fx_free(&f);
}
END_TEST

/* A format-2 graph: compact blocks without the row flags, header version
 * 2. It is searched as before; an insert rewrites the blocks it touches in
 * the new layout (every row, so no infinity written by format 2 stays in
 * them) and marks the graph format 3. */
static void make_format2(struct fx *f)
{
	MDB_txn *txn;
	MDB_val mk = {4, "hnsw"}, v;
	struct hnsw_meta m;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
	for (uint32_t b = 0;; b++) {
		uint8_t key[8];
		MDB_val k = {8, key};
		hnsw_node_key(key, HNSW_TAG_CV, b);
		if (mdb_get(txn, f->vs.nodes, &k, &v))
			break;
		ck_assert_uint_eq(v.mv_size, HYDB_BLOCK_SLOTS * (DIM * 2 + 1));
		v.mv_size -= HYDB_BLOCK_SLOTS;
		uint8_t *buf = malloc(v.mv_size);
		memcpy(buf, v.mv_data, v.mv_size);
		v.mv_data = buf;
		ck_assert_int_eq(mdb_put(txn, f->vs.nodes, &k, &v, 0), 0);
		free(buf);
	}
	ck_assert_int_eq(mdb_get(txn, f->vs.meta, &mk, &v), 0);
	memcpy(&m, v.mv_data, sizeof m);
	m.version = 2;
	v.mv_data = &m;
	ck_assert_int_eq(mdb_put(txn, f->vs.meta, &mk, &v, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
}

static size_t cv_size(struct fx *f, uint32_t b, uint32_t *version)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = {8, key}, mk = {4, "hnsw"}, v;
	struct hnsw_meta m;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
	hnsw_node_key(key, HNSW_TAG_CV, b);
	ck_assert_int_eq(mdb_get(txn, f->vs.nodes, &k, &v), 0);
	size_t size = v.mv_size;
	ck_assert_int_eq(mdb_get(txn, f->vs.meta, &mk, &v), 0);
	memcpy(&m, v.mv_data, sizeof m);
	*version = m.version;
	mdb_txn_abort(txn);
	return size;
}

START_TEST(format2_is_searched_and_upgraded)
{
	struct fx f;
	uint32_t version;
	const size_t old = HYDB_BLOCK_SLOTS * DIM * 2;
	fx_init(&f, 0, 0);
	insert_range(&f, 0, 600);
	double before = recall(&f, 10, 64, NULL, NULL);
	make_format2(&f);
	hydb_index_close(f.ix);
	index_open(&f, 0);
	ck_assert(recall(&f, 10, 64, NULL, NULL) == before);
	ck_assert_uint_eq(problems(&f), 0);
	ck_assert_uint_eq(cv_size(&f, 9, &version), old);
	ck_assert_uint_eq(version, 2);
	insert_range(&f, 600, 620);
	ck_assert_uint_eq(cv_size(&f, 9, &version), old + HYDB_BLOCK_SLOTS);
	ck_assert_uint_eq(version, HNSW_META_VERSION);
	ck_assert_uint_eq(cv_size(&f, 0, &version), old);
	ck_assert_uint_eq(problems(&f), 0);
	ck_assert(recall(&f, 10, 64, NULL, NULL) >= before - 0.02);
	fx_free(&f);
}
END_TEST

START_TEST(check_finds_damage)
{
	struct fx f;
	fx_init(&f, 0, 0);
	insert_range(&f, 0, 300);
	ck_assert_uint_eq(problems(&f), 0);
	/* A record the graph does not know about, and a free slot that is
	 * still a node. */
	f.mem.attr[300].live = 1;
	f.mem.attr[5].live = 0;
	ck_assert_uint_ge(problems(&f), 2);
	fx_free(&f);
}
END_TEST

/* ---- points far from the origin (issue 12) ----------------------------- */

/* A point at hyperbolic radius r (c = CURV) in a uniformly random
 * direction. */
static void point_at(float *x, size_t dim, double r, uint64_t *s)
{
	double v[768], n = 0;
	for (size_t i = 0; i < dim; i++) {
		v[i] = nrand(s);
		n += v[i] * v[i];
	}
	n = sqrt(n);
	for (size_t i = 0; i < dim; i++)
		v[i] *= r / n;
	expmap(x, v, dim, CURV);
}

/* Keys for far queries against the long-double textbook form, which is
 * accurate for pairs that are not close: a point near the origin, one at
 * mid radius, the antipode (whose denominator x0 y0 + x.y cancels) and a
 * near neighbour (checked against the difference form). The bound is the
 * inputs' own: x.y is |x|^2 + x.d, rounded at 2^-53 |x|^2, a relative
 * 5e-8 of the key at radius 19.9, as much as rounding x to float32 moves
 * it. */
START_TEST(far_query_keys_match_reference)
{
	static const size_t dims[] = {2, 16, 33, 768};
	static float x[768], y[4][768];
	uint64_t s = 99;
	int best = hydb_kernel_set_level(HYDB_KERNEL_BEST);
	for (size_t t = 0; t < sizeof dims / sizeof *dims; t++) {
		size_t d = dims[t];
		point_at(x, d, 19.9, &s);
		point_at(y[0], d, 0.3, &s);
		point_at(y[1], d, 9.0, &s);
		for (size_t i = 0; i < d; i++) {
			y[2][i] = -x[i];
			y[3][i] = x[i] * (1 + (float)(1e-6 * nrand(&s)));
		}
		for (int l = 0; l <= best; l++) {
			ck_assert_int_eq(hydb_kernel_set_level(l), l);
			hydb_kquery q;
			hydb_kquery_init(&q, x, d, CURV);
			for (int p = 0; p < 4; p++) {
				uint16_t h[768];
				double ref = p < 3 ? (double)ref_key(x, y[p], d, CURV)
						   : (double)ref_key_d(x, y[p], d, CURV);
				double k = hydb_key_f32(&q, y[p]);
				ck_assert_msg(fabs(k - ref) <= 1e-6 * ref,
					      "%s d=%zu point %d: %.17g vs %.17g",
					      hydb_kernel_name(l), d, p, k, ref);
				if (p != 0)
					continue;
				/* a half row near the origin, as the walk
				 * measures it */
				float yr[768];
				hydb_f32_to_f16(h, y[p], d);
				hydb_f16_to_f32_n(yr, h, d);
				ref = (double)ref_key(x, yr, d, CURV);
				k = hydb_key_f16(&q, h);
				ck_assert_msg(fabs(k - ref) <= 1e-6 * ref,
					      "%s d=%zu half: %.17g vs %.17g",
					      hydb_kernel_name(l), d, k, ref);
			}
		}
	}
	hydb_kernel_set_level(HYDB_KERNEL_BEST);
}
END_TEST

#define FAR_DIM 16
#define FAR_N 384

/* 300 points at radii 5..15, 40 at 16..19.9 (every component of most of
 * them beyond half precision's 65504), 42 near the origin and an antipodal
 * pair at 19.9, in that slot order: the points near the origin come last,
 * the order the index reverses within a batch (index/insert.c). */
static size_t far_init(struct fx *f)
{
	uint64_t s = 2024;
	struct memsrc *m = fx_alloc(f, FAR_N, FAR_DIM);
	size_t big = 0;
	for (size_t i = 0; i < FAR_N; i++) {
		double r = i < 300   ? 5 + 10 * urand(&s)
			   : i < 340 ? 16 + 3.9 * urand(&s)
				     : 0.05 + 1.95 * urand(&s);
		float *x = m->vec + i * FAR_DIM;
		if (i == FAR_N - 2)
			r = 19.9;
		point_at(x, FAR_DIM, r, &s);
		if (i == FAR_N - 1)
			for (size_t j = 0; j < FAR_DIM; j++)
				x[j] = -(x - FAR_DIM)[j];
		for (size_t j = 0; j < FAR_DIM; j++)
			big += fabsf(x[j]) > 65504;
		m->attr[i] = (hydb_slot_attr){.id = i + 1, .live = 0,
					      .radius = (float)radius_of(x, FAR_DIM, CURV)};
	}
	fx_open(f, 0);
	return big;
}

/* No row of the compact copy holds an infinity or a NaN. */
static void assert_rows_finite(struct fx *f)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t key[8];
	MDB_val k = {8, key}, v;
	size_t blocks = 0;
	ck_assert_int_eq(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(mdb_cursor_open(txn, f->vs.nodes, &cur), 0);
	hnsw_node_key(key, HNSW_TAG_CV, 0);
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	for (; rc == 0 && hnsw_key_tag(&k) == HNSW_TAG_CV;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), blocks++) {
		size_t nh = HYDB_BLOCK_SLOTS * FAR_DIM;
		ck_assert_uint_ge(v.mv_size, nh * 2);
		for (size_t i = 0; i < nh; i++) {
			uint16_t h;
			memcpy(&h, (const uint8_t *)v.mv_data + 2 * i, 2);
			ck_assert_msg((h & 0x7c00u) != 0x7c00u,
				      "block %u row %zu: half %#x",
				      hnsw_key_num(&k), i / FAR_DIM, h);
		}
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	ck_assert_uint_eq(blocks, FAR_N / HYDB_BLOCK_SLOTS);
}

/* The k nearest slots by the long-double reference key. */
static void far_truth(const struct fx *f, const float *q, size_t k,
		      uint32_t *out)
{
	long double best[16];
	size_t n = 0;
	for (uint32_t s = 0; s < FAR_N; s++) {
		long double key = ref_key(q, f->mem.vec + (size_t)s * FAR_DIM,
					  FAR_DIM, CURV);
		size_t i = n < k ? n++ : k;
		for (; i > 0 && best[i - 1] > key; i--) {
			if (i < k) {
				best[i] = best[i - 1];
				out[i] = out[i - 1];
			}
		}
		if (i < k) {
			best[i] = key;
			out[i] = s;
		}
	}
}

START_TEST(far_points_find_themselves)
{
	struct fx f;
	MDB_txn *txn;
	hydb_hit hits[5];
	size_t n, missed = 0;
	ck_assert_uint_gt(far_init(&f), 79);
	insert_range(&f, 0, FAR_N);
	assert_rows_finite(&f);
	ck_assert_uint_eq(problems(&f), 0);
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
	for (uint32_t s = 0; s < FAR_N; s++) {
		ck_assert_int_eq(hydb_index_search(f.ix, txn,
						   f.mem.vec + (size_t)s * FAR_DIM,
						   1, 0, NULL, hits, &n, NULL), 0);
		ck_assert_uint_eq(n, 1);
		if (hits[0].slot != s || hits[0].key != 0)
			missed++;
	}
	ck_assert_msg(missed == 0, "%zu of %d points miss themselves", missed,
		      FAR_N);
	/* new points anywhere in the range: the index's top 5 is the exact
	 * top 5, in order, with keys that match the reference */
	uint64_t s = 77;
	for (int qi = 0; qi < 30; qi++) {
		float q[FAR_DIM];
		uint32_t want[5];
		point_at(q, FAR_DIM, 0.5 + 19.3 * urand(&s), &s);
		far_truth(&f, q, 5, want);
		ck_assert_int_eq(hydb_index_search(f.ix, txn, q, 5, 0, NULL,
						   hits, &n, NULL), 0);
		ck_assert_uint_eq(n, 5);
		for (int i = 0; i < 5; i++) {
			double ref = (double)ref_key(
				q, f.mem.vec + (size_t)want[i] * FAR_DIM,
				FAR_DIM, CURV);
			ck_assert_msg(hits[i].slot == want[i],
				      "query %d rank %d: slot %u, want %u", qi,
				      i, hits[i].slot, want[i]);
			ck_assert_msg(fabs(hits[i].key - ref) <= 1e-6 * ref,
				      "query %d rank %d: key %.17g vs %.17g",
				      qi, i, hits[i].key, ref);
		}
	}
	mdb_txn_abort(txn);
	fx_free(&f);
}
END_TEST

/* hydb_index_self_search finds the nodes their own vector misses: here
 * every node's compact row is overwritten by another node's, so walks
 * steer by the wrong points. */
START_TEST(self_search_finds_misses)
{
	struct fx f;
	MDB_txn *txn;
	size_t checked, missed;
	fx_init(&f, 0, 0);
	insert_range(&f, 0, 640);
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(hydb_index_self_search(f.ix, txn, 0, 0, NULL, NULL,
						&checked, &missed), 0);
	ck_assert_uint_eq(checked, 640);
	ck_assert_uint_le(missed, 6);
	ck_assert_int_eq(hydb_index_self_search(f.ix, txn, 0, 100, NULL, NULL,
						&checked, &missed), 0);
	ck_assert_uint_eq(checked, 100);
	mdb_txn_abort(txn);
	/* rotate the rows of every block by one */
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, 0, &txn), 0);
	for (uint32_t b = 0; b < 640 / HYDB_BLOCK_SLOTS; b++) {
		uint8_t key[8];
		MDB_val k = {8, key}, v;
		size_t row = DIM * 2;
		hnsw_node_key(key, HNSW_TAG_CV, b);
		ck_assert_int_eq(mdb_get(txn, f.vs.nodes, &k, &v), 0);
		uint8_t *buf = malloc(v.mv_size);
		memcpy(buf, v.mv_data, v.mv_size);
		memmove(buf + row, v.mv_data, (HYDB_BLOCK_SLOTS - 1) * row);
		memcpy(buf, (const uint8_t *)v.mv_data +
				    (HYDB_BLOCK_SLOTS - 1) * row, row);
		v.mv_data = buf;
		ck_assert_int_eq(mdb_put(txn, f.vs.nodes, &k, &v, 0), 0);
		free(buf);
	}
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	ck_assert_int_eq(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(hydb_index_self_search(f.ix, txn, 0, 0, NULL, NULL,
						&checked, &missed), 0);
	ck_assert_uint_eq(checked, 640);
	ck_assert_uint_ge(missed, 64);
	/* a second beam over the whole graph finds every miss (the re-rank
	 * is float32); a narrow one leaves some lost */
	hydb_self_search ss = {.wide_ef = 640};
	ck_assert_int_eq(hydb_index_self_search_run(f.ix, txn, &ss), 0);
	ck_assert_uint_eq(ss.checked, 640);
	ck_assert_uint_eq(ss.missed, missed);
	ck_assert_uint_eq(ss.lost, 0);
	ss.wide_ef = 65;
	ck_assert_int_eq(hydb_index_self_search_run(f.ix, txn, &ss), 0);
	ck_assert_uint_eq(ss.missed + ss.lost, missed);
	ck_assert_uint_ge(ss.lost, 1);
	mdb_txn_abort(txn);
	fx_free(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("hnsw");
	TCase *t = tcase_create("core");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, kernels_agree);
	tcase_add_test(t, batch_keys_match_single_keys);
	tcase_add_test(t, candidate_sort_orders_by_key_then_slot);
	tcase_add_test(t, half_conversion);
	tcase_add_test(t, recall_unfiltered);
	tcase_add_test(t, recall_float32_walk_serial);
	tcase_add_test(t, delete_reinsert);
	tcase_add_test(t, delete_reinsert_batched);
	tcase_add_test(t, delete_everything);
	tcase_add_test(t, upserts_keep_every_node_reachable);
	tcase_add_test(t, entry_deletions_keep_the_tree_whole);
	tcase_add_test(t, isotropic_build_reaches_every_node);
	tcase_add_test(t, isotropic_hub_deletes_keep_every_node_reachable);
	tcase_add_test(t, isotropic_hub_deletes_batched);
	tcase_add_test(t, recall_filtered);
	tcase_add_test(t, persists);
	tcase_add_test(t, top_k_is_the_sorted_prefix);
	tcase_add_test(t, check_finds_damage);
	tcase_add_test(t, format1_is_searched_not_changed);
	tcase_add_test(t, damaged_sizes_are_refused);
	tcase_add_test(t, format2_is_searched_and_upgraded);
	tcase_add_test(t, far_query_keys_match_reference);
	tcase_add_test(t, far_points_find_themselves);
	tcase_add_test(t, self_search_finds_misses);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
