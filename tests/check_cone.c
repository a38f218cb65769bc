/*
 * check_cone.c - entailment-cone filters in search (HYDB_CONE_WITHIN,
 * HYDB_CONE_CONTAINS): exact search against a brute-force reference, the
 * index against exact search, combined with a label filter and a redirect,
 * and the angles each result reports.
 *
 * The data is a tree in 8 dimensions: 6 roots near the origin, each node's
 * children farther out around it. A child placed on its parent's own ray is
 * in the parent's cone by construction (the exterior angle is 0), which
 * gives membership that does not depend on the code under test. A cloud of
 * points near the origin gives wide cones, so both plans run.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hydb.h"

enum { D = 8, ROOTS = 3, FAN = 4, DEPTH = 6, CLOUD = 4000 };
#define C 1.0

struct tree {
	float *v;
	size_t n, cap;
	int *parent;
};

static uint64_t rng = 42;
static double rnd(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (double)(rng >> 11) / 9007199254740992.0;
}

static size_t add(struct tree *t, const float *x, int parent)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 256;
		t->v = realloc(t->v, t->cap * D * sizeof(float));
		t->parent = realloc(t->parent, t->cap * sizeof(int));
	}
	memcpy(t->v + t->n * D, x, D * sizeof(float));
	t->parent[t->n] = parent;
	return t->n++;
}

/* Children of node p: the first on p's ray (1.6x as far), the others tilted
 * by up to 0.3 rad, also farther out. */
static void grow(struct tree *t, size_t p, int depth)
{
	if (depth == DEPTH)
		return;
	for (int j = 0; j < FAN; j++) {
		float x[D];
		double nrm = 0;
		for (int i = 0; i < D; i++) {
			double tilt = j ? 0.3 * (rnd() - 0.5) : 0;
			x[i] = (float)(t->v[p * D + i] * 1.6 + tilt);
			nrm += (double)x[i] * x[i];
		}
		if (nrm > 0) {
			size_t c = add(t, x, (int)p);
			grow(t, c, depth + 1);
		}
	}
}

/* Points near the origin, whose cones are half-spaces (the aperture is
 * capped at pi/2 within 2K/sqrt(c) of the origin): every query has many of
 * them as cone parents, and each of them has half the space as children,
 * so the planner walks the graph for these instead of scanning. */
static void cloud(struct tree *t, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		float x[D];
		for (int i = 0; i < D; i++)
			x[i] = (float)(0.12 * (rnd() - 0.5));
		add(t, x, -1);
	}
}

static struct tree make_tree(void)
{
	struct tree t = {0};
	cloud(&t, CLOUD);
	for (int r = 0; r < ROOTS; r++) {
		float x[D] = {0};
		for (int i = 0; i < D; i++)
			x[i] = (float)(0.05 * (rnd() - 0.5));
		x[r % D] += 0.15f;
		grow(&t, add(&t, x, -1), 1);
	}
	return t;
}

static char dir[] = "/tmp/hydb_cone_XXXXXX";

/* Every node stored under key "n<i>"; odd nodes labelled unsafe. */
static hydb_db *load(const struct tree *t)
{
	hydb_db *db;
	hydb_open_options o;
	char path[64];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/db", dir);
	hydb_open_options_init(&o);
	o.flags = HYDB_OPEN_CREATE;
	o.dim = D;
	o.curvature = C;
	ck_assert_int_eq(hydb_open(&db, path, &o), 0);
	hydb_record *r = calloc(t->n, sizeof *r);
	char (*keys)[16] = malloc(16 * t->n);
	for (size_t i = 0; i < t->n; i++) {
		snprintf(keys[i], 16, "n%zu", i);
		r[i].key = keys[i];
		r[i].vector = t->v + i * D;
		r[i].label = i % 2 ? HYDB_LABEL_UNSAFE : HYDB_LABEL_SAFE;
	}
	ck_assert_int_eq(hydb_put(db, r, t->n, NULL), 0);
	free(keys);
	free(r);
	return db;
}

static void drop(hydb_db *db)
{
	char cmd[64];
	hydb_close(db);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static int member(const float *q, const float *v, unsigned cone)
{
	if ((cone & HYDB_CONE_WITHIN) &&
	    !(hydb_oxy_angle(v, q, D, C) <= hydb_half_aperture(v, D, C)))
		return 0;
	return !(cone & HYDB_CONE_CONTAINS) ||
	       hydb_oxy_angle(q, v, D, C) <= hydb_half_aperture(q, D, C);
}

static size_t node_of(const char *key)
{
	return (size_t)strtoul(key + 1, NULL, 10);
}

static hydb_results *search(hydb_db *db, const float *q, unsigned cone, int exact,
			    size_t k, unsigned labels)
{
	hydb_search_options o;
	hydb_results *r;
	hydb_search_options_init(&o);
	o.k = k;
	o.cone = cone;
	o.exact = exact;
	o.ef = 64;
	o.label_mask = labels;
	ck_assert_int_eq(hydb_search(db, &r, q, &o), 0);
	return r;
}

/* Exact search returns the k nearest members, as a scan of every node with
 * the angle functions finds them; every result's reported angles pass the
 * test they stand for. */
static void check_exact_against_scan(hydb_db *db, const struct tree *t, size_t qi, unsigned cone)
{
	const float *q = t->v + qi * D;
	hydb_results *r = search(db, q, cone, 1, t->n, 0);
	size_t want = 0;
	for (size_t i = 0; i < t->n; i++)
		want += (size_t)member(q, t->v + i * D, cone);
	ck_assert_uint_eq(r->n, want);
	for (size_t i = 0; i < r->n; i++) {
		size_t v = node_of(r->keys[i]);
		ck_assert(member(q, t->v + v * D, cone));
		if (cone & HYDB_CONE_WITHIN)
			ck_assert(r->angles_at_result[i] <= r->apertures[i]);
		if (cone & HYDB_CONE_CONTAINS)
			ck_assert(r->angles_at_query[i] <= r->query_aperture);
		ck_assert(i == 0 || r->distances[i - 1] <= r->distances[i]);
	}
	hydb_results_free(r);
}

START_TEST(test_exact_matches_scan)
{
	struct tree t = make_tree();
	hydb_db *db = load(&t);
	for (size_t qi = 0; qi < t.n; qi += 97) {
		check_exact_against_scan(db, &t, qi, HYDB_CONE_WITHIN);
		check_exact_against_scan(db, &t, qi, HYDB_CONE_CONTAINS);
		check_exact_against_scan(db, &t, qi, HYDB_CONE_WITHIN | HYDB_CONE_CONTAINS);
	}
	drop(db);
}
END_TEST

/* A node on its parent's ray is in the cone of the parent and of every
 * ancestor on that ray: CONTAINS from an ancestor finds it, WITHIN from the
 * node finds the ancestor. */
START_TEST(test_known_membership)
{
	struct tree t = make_tree();
	hydb_db *db = load(&t);
	size_t checked = 0;
	for (size_t i = 0; i < t.n; i++) {
		int p = t.parent[i];
		if (p < 0 || t.v[i * D] != (float)(t.v[(size_t)p * D] * 1.6))
			continue; /* not the on-ray child */
		hydb_results *down = search(db, t.v + (size_t)p * D, HYDB_CONE_CONTAINS, 1, t.n, 0);
		hydb_results *up = search(db, t.v + i * D, HYDB_CONE_WITHIN, 1, t.n, 0);
		int found_down = 0, found_up = 0;
		for (size_t j = 0; j < down->n; j++)
			found_down |= node_of(down->keys[j]) == i;
		for (size_t j = 0; j < up->n; j++)
			found_up |= node_of(up->keys[j]) == (size_t)p;
		ck_assert_msg(found_down && found_up, "node %zu and its parent %d", i, p);
		hydb_results_free(down);
		hydb_results_free(up);
		checked++;
	}
	ck_assert_uint_gt(checked, 100);
	drop(db);
}
END_TEST

/* recall@10 of the index against exact search, over queries at every depth,
 * for each cone, alone and with a label filter and a geodesic redirect. */
static size_t plans_walk, plans_scan;

static size_t ef_used;

static double index_recall(hydb_db *db, const struct tree *t, unsigned cone, unsigned labels,
			   int redirect)
{
	size_t hit = 0, want = 0;
	for (size_t qi = 1; qi < t->n; qi += 23) {
		hydb_search_options o;
		hydb_results *ex, *ix;
		hydb_search_options_init(&o);
		o.k = 10;
		o.ef = ef_used;
		o.cone = cone;
		o.label_mask = labels;
		if (redirect) {
			o.redirect = HYDB_REDIRECT_GEODESIC;
			o.redirect_bound = 1.5;
		}
		o.exact = 1;
		ck_assert_int_eq(hydb_search(db, &ex, t->v + qi * D, &o), 0);
		o.exact = 0;
		ck_assert_int_eq(hydb_search(db, &ix, t->v + qi * D, &o), 0);
		plans_walk += strcmp(ix->plan, "hnsw-filtered") == 0;
		plans_scan += strcmp(ix->plan, "brute-filtered") == 0;
		for (size_t i = 0; i < ex->n; i++)
			for (size_t j = 0; j < ix->n; j++)
				hit += ex->ids[i] == ix->ids[j];
		want += ex->n;
		hydb_results_free(ex);
		hydb_results_free(ix);
	}
	ck_assert_uint_gt(want, 0);
	return (double)hit / (double)want;
}

/* At the database's own beam (ef 0) and at ef 32, 64, 128, 256: the walk
 * must reach 0.95 at the default, and recall must not fall as ef grows. */
START_TEST(test_index_recall)
{
	struct tree t = make_tree();
	hydb_db *db = load(&t);
	static const unsigned cones[] = {HYDB_CONE_WITHIN, HYDB_CONE_CONTAINS};
	static const size_t efs[] = {0, 32, 64, 128, 256};
	for (int c = 0; c < 2; c++) {
		for (size_t e = 0; e < sizeof efs / sizeof efs[0]; e++) {
			ef_used = efs[e];
			double plain = index_recall(db, &t, cones[c], 0, 0);
			double label = index_recall(db, &t, cones[c], HYDB_MASK(HYDB_LABEL_SAFE), 0);
			double moved = index_recall(db, &t, cones[c], 0, 1);
			printf("cone %-8s ef %3zu: recall@10 %.3f, with a label filter %.3f, "
			       "redirected %.3f\n", c ? "contains" : "within", efs[e], plain, label,
			       moved);
			fflush(stdout);
			if (efs[e] == 0 || efs[e] >= 64)
				ck_assert(plain >= 0.95 && label >= 0.95 && moved >= 0.95);
		}
	}
	/* both plans ran: wide cones are walked, narrow ones scanned */
	ck_assert(plans_walk > 100 && plans_scan > 100);
	printf("plans: %zu walks, %zu scans\n", plans_walk, plans_scan);
	fflush(stdout);
	drop(db);
}
END_TEST

START_TEST(test_bad_cone_bits)
{
	struct tree t = make_tree();
	hydb_db *db = load(&t);
	hydb_search_options o;
	hydb_results *r;
	hydb_search_options_init(&o);
	o.cone = 4;
	ck_assert_int_eq(hydb_search(db, &r, t.v, &o), HYDB_EINVAL);
	/* a version-2 caller's options never carry cone bits */
	o.version = 2;
	ck_assert_int_eq(hydb_search(db, &r, t.v, &o), 0);
	ck_assert_ptr_null(r->angles_at_result);
	hydb_results_free(r);
	drop(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cone");
	TCase *tc = tcase_create("cone");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_exact_matches_scan);
	tcase_add_test(tc, test_known_membership);
	tcase_add_test(tc, test_index_recall);
	tcase_add_test(tc, test_bad_cone_bits);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
