/*
 * check_exact.c - the exact scan (GEMM screening + exact re-ranking) against
 * a brute-force reference that evaluates the double-double key of every
 * matching vector and sorts by (key, id).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hydb.h"
#include "base/lorentz.h"
#include "search_exact.h"

typedef struct {
	size_t n, nq, dim, k;
	double c, max_radius; /* data radii are uniform in [0, max_radius] */
	size_t dup_every;     /* every n-th row copies an earlier one (ties) */
	int near_queries;     /* half the rows are tiny perturbations of queries */
	hydb_filter filter;
	int use_filter;
} scenario;

typedef struct {
	float *base, *queries;
	hydb_slot_attr *attr;
} dataset;

static uint64_t rng_state;

static double rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (rng_state >> 11) * 0x1p-53;
}

static double gauss(void)
{
	double u = rnd() + 1e-300, v = rnd();
	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* A point near one of a few cluster directions at a given geodesic radius,
 * like HySAC embeddings: nearby directions, radius encodes specificity. */
static void make_point(float *x, size_t dim, double c, double radius,
		       const float *centres, size_t ncentres)
{
	const float *ctr = centres + (size_t)(rnd() * ncentres) * dim;
	double n2 = 0;
	for (size_t i = 0; i < dim; i++) {
		double v = ctr[i] + 0.3 * gauss();
		x[i] = (float)v;
		n2 += v * v;
	}
	double scale = sinh(sqrt(c) * radius) / sqrt(c) / sqrt(n2);
	for (size_t i = 0; i < dim; i++)
		x[i] = (float)(x[i] * scale);
}

/* A copy of q moved by a relative 1e-6..1e-2: at large radii these differ
 * in key by less than the float32 GEMM error. */
static void perturb(float *x, const float *q, size_t dim)
{
	double scale = pow(10.0, -6 + 4 * rnd()), n2 = 0;
	for (size_t i = 0; i < dim; i++)
		n2 += (double)q[i] * q[i];
	double step = scale * sqrt(n2 / dim);
	for (size_t i = 0; i < dim; i++)
		x[i] = (float)(q[i] + step * gauss());
}

static void make_dataset(dataset *d, const scenario *sc, uint64_t seed)
{
	size_t nctr = 8;
	float *centres = malloc(nctr * sc->dim * sizeof *centres);
	rng_state = seed;
	for (size_t i = 0; i < nctr * sc->dim; i++)
		centres[i] = (float)gauss();
	d->base = malloc(sc->n * sc->dim * sizeof *d->base);
	d->queries = malloc(sc->nq * sc->dim * sizeof *d->queries);
	d->attr = calloc(sc->n, sizeof *d->attr);
	for (size_t q = 0; q < sc->nq; q++)
		make_point(d->queries + q * sc->dim, sc->dim, sc->c,
			   rnd() * sc->max_radius, centres, nctr);
	for (size_t j = 0; j < sc->n; j++) {
		float *x = d->base + j * sc->dim;
		if (sc->near_queries && j % 2 == 0)
			perturb(x, d->queries + (size_t)(rnd() * sc->nq) * sc->dim,
				sc->dim);
		else if (sc->dup_every && j > 0 && j % sc->dup_every == 0)
			memcpy(x, d->base + (size_t)(rnd() * j) * sc->dim,
			       sc->dim * sizeof *x);
		else
			make_point(x, sc->dim, sc->c, rnd() * sc->max_radius,
				   centres, nctr);
		/* ids not in slot order, so that ties test the id rule */
		d->attr[j].id = 1 + (j * 7919u) % (sc->n * 2 + 1);
		d->attr[j].radius = (float)hydb_lorentz_radius(x, sc->dim, sc->c);
		d->attr[j].modality = (uint8_t)(j % 3);
		d->attr[j].label = (uint8_t)((j / 3) % 3);
		d->attr[j].live = (j % 17) != 5; /* some deleted slots */
	}
	free(centres);
}

static void free_dataset(dataset *d)
{
	free(d->base);
	free(d->queries);
	free(d->attr);
}

/* Brute force: every matching row, key by hydb_lorentz_key, full sort. */
static size_t reference(const dataset *d, const scenario *sc, size_t q,
			const hydb_filter *f, hydb_hit *out)
{
	hydb_hit *all = malloc(sc->n * sizeof *all);
	size_t m = 0;
	for (size_t j = 0; j < sc->n; j++) {
		if (!hydb_filter_match(f, &d->attr[j]))
			continue;
		all[m].slot = (uint32_t)(100 + j);
		all[m].id = d->attr[j].id;
		all[m].key = hydb_lorentz_key(d->queries + q * sc->dim,
					      d->base + j * sc->dim, sc->dim, sc->c);
		m++;
	}
	/* insertion of the k best by (key, id) */
	size_t n = 0;
	for (size_t i = 0; i < m; i++) {
		size_t pos = n < sc->k ? n : sc->k;
		while (pos > 0 && hydb_hit_less(&all[i], &out[pos - 1])) {
			if (pos < sc->k)
				out[pos] = out[pos - 1];
			pos--;
		}
		if (pos < sc->k) {
			out[pos] = all[i];
			if (n < sc->k)
				n++;
		}
	}
	free(all);
	return n;
}

static void run_scenario(const scenario *sc, uint64_t seed)
{
	dataset d;
	make_dataset(&d, sc, seed);
	const hydb_filter *f = sc->use_filter ? &sc->filter : NULL;
	hydb_hit *got = calloc(sc->nq * sc->k + 1, sizeof *got);
	hydb_hit *want = calloc(sc->k + 1, sizeof *want);
	size_t *nout = calloc(sc->nq + 1, sizeof *nout);
	int rc = hydb_exact_scan_array(d.queries, sc->nq, d.base, d.attr, 100, sc->n,
				       sc->dim, sc->c, sc->k, f, got, nout);
	ck_assert_msg(rc == HYDB_OK, "scan failed: %s", hydb_last_error());
	for (size_t q = 0; q < sc->nq; q++) {
		size_t n = reference(&d, sc, q, f, want);
		ck_assert_uint_eq(nout[q], n);
		for (size_t i = 0; i < n; i++) {
			const hydb_hit *g = &got[q * sc->k + i];
			ck_assert_msg(g->id == want[i].id && g->slot == want[i].slot &&
					      g->key == want[i].key,
				      "query %zu rank %zu: got id %llu key %.17g, want "
				      "id %llu key %.17g", q, i,
				      (unsigned long long)g->id, g->key,
				      (unsigned long long)want[i].id, want[i].key);
		}
	}
	free(got);
	free(want);
	free(nout);
	free_dataset(&d);
}

#define ANY_RADIUS .min_radius = 0, .max_radius = INFINITY

/* Zero fields take these defaults. */
static scenario with_defaults(scenario sc)
{
	sc.n = sc.n ? sc.n : 3000;
	sc.nq = sc.nq ? sc.nq : 40;
	sc.dim = sc.dim ? sc.dim : 48;
	sc.k = sc.k ? sc.k : 10;
	sc.c = sc.c > 0 ? sc.c : 1.0;
	sc.max_radius = sc.max_radius > 0 ? sc.max_radius : 3.0;
	return sc;
}

/* Each row checks one way of losing a true neighbour: batches and single
 * queries; radii up to 12 where the GEMM bounds are useless and the scan
 * must fall back to exact keys; neighbours closer than the GEMM resolves;
 * ties (duplicate vectors, broken by id); filters; k above the number of
 * matches; more queries than one GEMM block (two screening threads). */
static const scenario scenarios[] = {
	{ .k = 0 },
	{ .nq = 1, .k = 25 },
	{ .nq = 8, .max_radius = 12.0 },
	{ .nq = 8, .c = 0.1, .max_radius = 12.0 },
	{ .nq = 20, .k = 20, .near_queries = 1, .max_radius = 12.0 },
	{ .nq = 20, .k = 20, .near_queries = 1, .c = 10.0, .max_radius = 5.0 },
	{ .k = 30, .dup_every = 3 },
	{ .use_filter = 1, .filter = { .min_radius = 1.0, .max_radius = 2.0 } },
	{ .use_filter = 1,
	  .filter = { ANY_RADIUS, .modality_mask = HYDB_MASK(HYDB_MOD_TEXT),
		      .label_mask = HYDB_MASK(HYDB_LABEL_SAFE) |
				    HYDB_MASK(HYDB_LABEL_UNSAFE) } },
	{ .nq = 3, .k = 200, .use_filter = 1,
	  .filter = { .min_radius = 2.9, .max_radius = 2.95,
		      .label_mask = HYDB_MASK(HYDB_LABEL_UNSAFE) } },
	{ .n = 50, .k = 64 },
	{ .n = 300, .nq = 1100, .dim = 16, .k = 5 },
	{ .n = 1500, .nq = 20, .dim = 768, .c = 2.0, .max_radius = 4.0 },
};
#define N_SCENARIOS (sizeof scenarios / sizeof scenarios[0])

START_TEST(test_scenario)
{
	scenario sc = with_defaults(scenarios[_i]);
	run_scenario(&sc, 1000 + (uint64_t)_i);
}
END_TEST

START_TEST(test_degenerate)
{
	float q[4] = { 1, 0, 0, 0 }, b[8] = { 1, 0, 0, 0, 0, 1, 0, 0 };
	hydb_slot_attr attr[2] = { { .id = 9, .live = 1 }, { .id = 4, .live = 1 } };
	hydb_hit hits[3];
	size_t nout[1] = { 77 };
	ck_assert_int_eq(hydb_exact_scan_array(q, 1, b, attr, 0, 2, 4, 1.0, 0, NULL,
					       hits, nout), HYDB_OK);
	ck_assert_uint_eq(nout[0], 0);
	ck_assert_int_eq(hydb_exact_scan_array(q, 1, b, attr, 0, 0, 4, 1.0, 3, NULL,
					       hits, nout), HYDB_OK);
	ck_assert_uint_eq(nout[0], 0);
	ck_assert_int_eq(hydb_exact_scan_array(q, 1, b, attr, 0, 2, 4, 1.0, 3, NULL,
					       hits, nout), HYDB_OK);
	ck_assert_uint_eq(nout[0], 2);
	ck_assert_uint_eq(hits[0].id, 9);
	ck_assert(hits[0].key == 0);
	ck_assert_uint_eq(hits[1].slot, 1);
	ck_assert_int_eq(hydb_exact_scan_array(q, 1, b, attr, 0, 2, 4, -1.0, 3, NULL,
					       hits, nout), HYDB_EINVAL);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "curvature"));
	q[2] = NAN;
	ck_assert_int_eq(hydb_exact_scan_array(q, 1, b, attr, 0, 2, 4, 1.0, 3, NULL,
					       hits, nout), HYDB_ENONFINITE);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "query 0 component 2"));
}
END_TEST

/* Through the public API on a real store: blocks, slots reused after
 * deletes, ids; the same answers as the array scan's reference. */
START_TEST(test_store_path)
{
	enum { N = 700, D = 24, K = 10, NQ = 5 };
	char dir[] = "/tmp/hydb-check-exact-XXXXXX", key[32], cmd[64];
	hydb_open_options opts;
	hydb_db *db;
	scenario sc = with_defaults((scenario){ .n = N, .nq = NQ, .dim = D, .k = K });
	dataset d;
	uint64_t ids[N];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	hydb_open_options_init(&opts);
	opts.flags = HYDB_OPEN_CREATE | HYDB_OPEN_NOSYNC;
	opts.dim = D;
	opts.curvature = sc.c;
	ck_assert_msg(hydb_open(&db, dir, &opts) == HYDB_OK, "%s", hydb_last_error());
	make_dataset(&d, &sc, 77);
	hydb_record *recs = calloc(N, sizeof *recs);
	char (*keys)[16] = calloc(N, sizeof *keys);
	for (size_t j = 0; j < N; j++) {
		snprintf(keys[j], sizeof keys[j], "r%zu", j);
		recs[j].key = keys[j];
		recs[j].vector = d.base + j * D;
	}
	ck_assert_msg(hydb_put(db, recs, N, ids) == HYDB_OK, "%s", hydb_last_error());
	for (size_t j = 0; j < N; j += 7) {
		snprintf(key, sizeof key, "r%zu", j);
		ck_assert_int_eq(hydb_delete_key(db, key), HYDB_OK);
	}
	hydb_search_options so;
	hydb_search_options_init(&so);
	so.k = K;
	so.exact = 1;
	for (size_t q = 0; q < NQ; q++) {
		const float *qv = d.queries + q * D;
		hydb_results *r;
		ck_assert_msg(hydb_search(db, &r, qv, &so) == HYDB_OK, "%s",
			      hydb_last_error());
		/* reference over the live records */
		hydb_hit best[K];
		size_t nb = 0;
		for (size_t j = 0; j < N; j++) {
			if (j % 7 == 0)
				continue;
			hydb_hit h = { .id = ids[j],
				       .key = hydb_lorentz_key(qv, d.base + j * D, D, sc.c) };
			size_t pos = nb < K ? nb++ : K;
			while (pos > 0 && hydb_hit_less(&h, &best[pos - 1])) {
				if (pos < K)
					best[pos] = best[pos - 1];
				pos--;
			}
			if (pos < K)
				best[pos] = h;
		}
		ck_assert_uint_eq(r->n, K);
		for (size_t i = 0; i < K; i++) {
			ck_assert_uint_eq(r->ids[i], best[i].id);
			ck_assert_double_eq_tol(r->distances[i],
						hydb_lorentz_key_to_dist(best[i].key, sc.c),
						1e-12);
		}
		hydb_results_free(r);
	}
	hydb_close(db);
	free(recs);
	free(keys);
	free_dataset(&d);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("exact");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_scenario, 0, (int)N_SCENARIOS);
	tcase_add_test(tc, test_degenerate);
	tcase_add_test(tc, test_store_path);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
