/*
 * check_lorentz.c - Lorentz geometry against 60-digit mpmath references
 * computed on the exact float32 inputs (tests/gen_lorentz_ref.py), plus the
 * round trip of the origin maps and the redirect arithmetic.
 *
 * Prints the maximum relative error per function, curvature and radius
 * band, and the same figures for the textbook formula in float32 and
 * float64 to show the failure the stable formula avoids.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hydb.h"
#include "base/lorentz.h"
#include "base/lorentz_kernel.h"

#define TOL 1e-5
#define N_CURV 3
#define N_BAND 4
#define N_REF 8

enum { R_TIME, R_INNER, R_KEY, R_DIST, R_RX, R_RY, R_HALF, R_OXY };
enum { K_RANDOM, K_PAR_EQUAL, K_PAR_NEAR, K_ANTIPODAL, K_TINY, K_EXACT };

typedef struct {
	double c;
	size_t dim;
	int kind;
	float *x, *y, *v;
	double ref[N_REF];
	double *expv, *logx;
	double key_f64, dist_f64;
} ref_case;

static ref_case *cases;
static size_t n_cases;

static const double curvatures[N_CURV] = { 0.1, 1.0, 10.0 };
static const char *band_names[N_BAND] = { "0-2", "2-5", "5-8", "8-12" };

/* ---- reference data ----------------------------------------------------- */

static double next_num(char **p)
{
	char *end;
	double v = strtod(*p, &end);
	if (end == *p) {
		fprintf(stderr, "check_lorentz: malformed reference data\n");
		exit(99);
	}
	*p = end;
	return v;
}

static float *read_floats(char **p, size_t n)
{
	float *v = malloc(n * sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = (float)next_num(p);
	return v;
}

static double *read_doubles(char **p, size_t n)
{
	double *v = malloc(n * sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = next_num(p);
	return v;
}

static void parse_line(char *line, ref_case *rc)
{
	char *p = line;
	rc->c = next_num(&p);
	rc->dim = (size_t)next_num(&p);
	rc->kind = (int)next_num(&p);
	rc->x = read_floats(&p, rc->dim);
	rc->y = read_floats(&p, rc->dim);
	rc->v = read_floats(&p, rc->dim);
	for (int i = 0; i < N_REF; i++)
		rc->ref[i] = next_num(&p);
	rc->expv = read_doubles(&p, rc->dim);
	rc->logx = read_doubles(&p, rc->dim);
	rc->key_f64 = next_num(&p);
	rc->dist_f64 = next_num(&p);
}

static int load_cases(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (n_cases == alloc) {
			alloc = alloc ? 2 * alloc : 1024;
			cases = realloc(cases, alloc * sizeof *cases);
		}
		parse_line(line, &cases[n_cases++]);
	}
	free(line);
	fclose(f);
	return n_cases ? 0 : -1;
}

/* Runs the generator; returns 77 (skip) when Python or mpmath is missing. */
static int generate_cases(void)
{
	const char *py = getenv("PYTHON3");
	const char *src = getenv("HYDB_SRCDIR");
	char tmpl[] = "/tmp/hydb-lorentz-ref-XXXXXX";
	char cmd[4096];
	int fd = mkstemp(tmpl);
	if (fd < 0)
		return 99;
	close(fd);
	if (!py || !*py)
		py = "/usr/bin/python3";
	snprintf(cmd, sizeof cmd,
		 "%s -c 'import mpmath, numpy' 2>/dev/null && "
		 "%s %s/tests/gen_lorentz_ref.py %s",
		 py, py, src ? src : ".", tmpl);
	int rc = system(cmd);
	if (rc != 0) {
		unlink(tmpl);
		fprintf(stderr, "check_lorentz: reference generator failed\n");
		return 77;
	}
	rc = load_cases(tmpl);
	unlink(tmpl);
	return rc == 0 ? 0 : 99;
}

/* ---- error bookkeeping --------------------------------------------------- */

enum {
	F_TIME, F_INNER, F_KEY, F_DIST, F_RADIUS, F_HALF, F_OXY, F_EXP, F_LOG,
	F_KEY_KERNEL, F_KEY_F32, F_KEY_F64, N_FUNC
};
static const char *func_names[N_FUNC] = {
	"time", "inner", "key", "dist", "radius", "half_aperture", "oxy_angle",
	"exp_map0", "log_map0", "key kernel", "key naive f32",
	"key naive f64"
};

typedef struct {
	double max[N_FUNC][N_CURV][N_BAND];
} err_table;

static double rel_err(double got, double ref)
{
	if (ref == 0)
		return got == 0 ? 0 : INFINITY;
	return fabs(got - ref) / fabs(ref);
}

static double vec_rel_err(const float *got, const double *ref, size_t dim)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < dim; i++) {
		double d = got[i] - ref[i];
		num += d * d;
		den += ref[i] * ref[i];
	}
	if (den == 0)
		return num == 0 ? 0 : INFINITY;
	return sqrt(num / den);
}

static int curv_index(double c)
{
	for (int i = 0; i < N_CURV; i++)
		if (c == curvatures[i])
			return i;
	return 0;
}

static int band_index(double r)
{
	return r < 2 ? 0 : r < 5 ? 1 : r < 8 ? 2 : 3;
}

static void note(err_table *t, int fn, const ref_case *rc, double err)
{
	int ci = curv_index(rc->c);
	int bi = band_index(fmax(rc->ref[R_RX], rc->ref[R_RY]));
	if (!(err <= t->max[fn][ci][bi]))
		t->max[fn][ci][bi] = err;
}

/* The textbook formula in float32, as a float32 pipeline would run it. */
static double naive_key_f32(const float *x, const float *y, size_t dim,
			    double c)
{
	float xx = 0, yy = 0, xy = 0, cf = (float)c;
	for (size_t i = 0; i < dim; i++) {
		xx += x[i] * x[i];
		yy += y[i] * y[i];
		xy += x[i] * y[i];
	}
	float x0 = sqrtf(1.0f / cf + xx), y0 = sqrtf(1.0f / cf + yy);
	return cf * (x0 * y0 - xy) - 1.0f;
}

static void measure_case(err_table *t, const ref_case *rc)
{
	const double *r = rc->ref;
	size_t dim = rc->dim;
	double c = rc->c;
	float *out = malloc((dim ? dim : 1) * sizeof *out);
	note(t, F_TIME, rc, rel_err(hydb_lorentz_time(rc->x, dim, c), r[R_TIME]));
	note(t, F_INNER, rc,
	     rel_err(hydb_lorentz_inner(rc->x, rc->y, dim, c), r[R_INNER]));
	note(t, F_KEY, rc, rel_err(hydb_lorentz_key(rc->x, rc->y, dim, c), r[R_KEY]));
	note(t, F_DIST, rc,
	     rel_err(hydb_lorentz_dist(rc->x, rc->y, dim, c), r[R_DIST]));
	note(t, F_RADIUS, rc, rel_err(hydb_lorentz_radius(rc->x, dim, c), r[R_RX]));
	note(t, F_RADIUS, rc, rel_err(hydb_lorentz_radius(rc->y, dim, c), r[R_RY]));
	note(t, F_HALF, rc, rel_err(hydb_half_aperture(rc->x, dim, c), r[R_HALF]));
	note(t, F_OXY, rc,
	     rel_err(hydb_oxy_angle(rc->x, rc->y, dim, c), r[R_OXY]));
	hydb_exp_map0(out, rc->v, dim, c);
	note(t, F_EXP, rc, vec_rel_err(out, rc->expv, dim));
	hydb_log_map0(out, rc->x, dim, c);
	note(t, F_LOG, rc, vec_rel_err(out, rc->logx, dim));
	note(t, F_KEY_KERNEL, rc,
	     rel_err(hydb_kernel_key(rc->x, rc->y, dim, c), r[R_KEY]));
	if (r[R_KEY] != 0) { /* any rounding residue is an infinite error */
		note(t, F_KEY_F32, rc,
		     rel_err(naive_key_f32(rc->x, rc->y, dim, c), r[R_KEY]));
		note(t, F_KEY_F64, rc, rel_err(rc->key_f64, r[R_KEY]));
	}
	free(out);
}

static void print_table(const err_table *t)
{
	printf("max relative error vs mpmath (%zu pairs), bands = max radius\n",
	       n_cases);
	printf("%-15s %5s", "function", "c");
	for (int b = 0; b < N_BAND; b++)
		printf(" %10s", band_names[b]);
	printf("\n");
	for (int f = 0; f < N_FUNC; f++)
		for (int ci = 0; ci < N_CURV; ci++) {
			printf("%-15s %5g", func_names[f], curvatures[ci]);
			for (int b = 0; b < N_BAND; b++)
				printf(" %10.3g", t->max[f][ci][b]);
			printf("\n");
		}
	fflush(stdout);
}

static double worst(const err_table *t, int fn)
{
	double w = 0;
	for (int ci = 0; ci < N_CURV; ci++)
		for (int b = 0; b < N_BAND; b++)
			if (!(t->max[fn][ci][b] <= w))
				w = t->max[fn][ci][b];
	return w;
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_against_mpmath)
{
	/* The exact functions collect their double-double sums on the widest
	 * vectors the CPU has; every narrower level must be as accurate. */
	int best = hydb_kernel_set_level(HYDB_KERNEL_BEST);
	for (int level = best; level >= HYDB_KERNEL_SCALAR; level--) {
		err_table t;
		memset(&t, 0, sizeof t);
		ck_assert_int_eq(hydb_kernel_set_level(level), level);
		for (size_t i = 0; i < n_cases; i++)
			measure_case(&t, &cases[i]);
		printf("kernel level: %s\n", hydb_kernel_name(level));
		print_table(&t);
		for (int f = F_TIME; f <= F_LOG; f++)
			ck_assert_msg(worst(&t, f) <= TOL, "%s (%s): max relative error %g",
				      func_names[f], hydb_kernel_name(level), worst(&t, f));
	}
	hydb_kernel_set_level(best);
}
END_TEST

/* Near-parallel pairs from radius 5 (c = 1): the textbook float32 formula
 * loses the ranking key entirely, the stable one keeps it. */
START_TEST(test_naive_float32_fails)
{
	double naive = 0, ours = 0;
	size_t n = 0;
	for (size_t i = 0; i < n_cases; i++) {
		const ref_case *rc = &cases[i];
		if (rc->c != 1.0 || rc->ref[R_RX] < 5 ||
		    (rc->kind != K_PAR_EQUAL && rc->kind != K_PAR_NEAR))
			continue;
		double ref = rc->ref[R_KEY];
		naive = fmax(naive, rel_err(naive_key_f32(rc->x, rc->y, rc->dim,
							  1.0), ref));
		ours = fmax(ours, rel_err(hydb_lorentz_key(rc->x, rc->y,
							   rc->dim, 1.0), ref));
		n++;
	}
	printf("near-parallel pairs at radius >= 5, c = 1 (%zu): naive f32 "
	       "%.3g, stable %.3g\n", n, naive, ours);
	ck_assert_uint_gt(n, 100);
	ck_assert_msg(naive > 0.5, "naive float32 unexpectedly accurate: %g",
		      naive);
	ck_assert_msg(ours <= TOL, "stable key error %g", ours);
}
END_TEST

/* Ranking: two candidates 1e-3 apart in distance at radius 6 must come out
 * in the right order; the naive float32 key cannot separate them. */
START_TEST(test_ranking_at_radius_6)
{
	enum { D = 16 };
	float q[D] = { 0 }, a[D] = { 0 }, b[D] = { 0 };
	double s = sinh(6.0);
	q[0] = (float)s;
	a[0] = (float)(s * cos(0.01));
	a[1] = (float)(s * sin(0.01));
	b[0] = (float)(s * cos(0.0101));
	b[2] = (float)(s * sin(0.0101));
	double ka = hydb_lorentz_key(q, a, D, 1.0);
	double kb = hydb_lorentz_key(q, b, D, 1.0);
	ck_assert(ka < kb);
	/* d is about s*angle here; check it is in the right range. */
	ck_assert_double_eq_tol(hydb_lorentz_dist(q, a, D, 1.0),
				2 * asinh(s * sin(0.005)), 1e-6);
}
END_TEST

START_TEST(test_exp_log_round_trip)
{
	enum { D = 32 };
	float v[D], x[D], back[D];
	unsigned seed = 12345;
	for (int trial = 0; trial < 200; trial++) {
		double c = curvatures[trial % N_CURV], n2 = 0;
		for (int i = 0; i < D; i++) {
			seed = seed * 1103515245u + 12345u;
			v[i] = (float)((seed >> 8) / 16777216.0 - 0.5);
			n2 += (double)v[i] * v[i];
		}
		/* Geodesic radius between 1e-6 and 10, inside the clamp. */
		double r = fmin(pow(10.0, -6 + 7.0 * trial / 200),
				10.0 / sqrt(c));
		for (int i = 0; i < D; i++)
			v[i] = (float)(v[i] * r / sqrt(n2));
		hydb_exp_map0(x, v, D, c);
		ck_assert_double_eq_tol(hydb_lorentz_radius(x, D, c), r, 1e-6 * r);
		hydb_log_map0(back, x, D, c);
		for (int i = 0; i < D; i++)
			ck_assert_double_eq_tol(back[i], v[i], 1e-6 * r);
	}
}
END_TEST

START_TEST(test_exp_map_clamps)
{
	/* sqrt(c)|v| = 20 is above asinh(2^15): the norm saturates at
	 * 2^15/sqrt(c), as in HySAC. The map also works in place. */
	float v[2] = { 12.0f, 16.0f };
	hydb_exp_map0(v, v, 2, 1.0);
	ck_assert_double_eq_tol(hypot(v[0], v[1]), 32768.0, 1e-2);
	ck_assert_double_eq_tol(v[0] / v[1], 0.75, 1e-6);
	float z[3] = { 0, 0, 0 }, out[3] = { 1, 1, 1 };
	hydb_exp_map0(out, z, 3, 1.0);
	ck_assert(out[0] == 0 && out[1] == 0 && out[2] == 0);
	hydb_log_map0(out, z, 3, 1.0);
	ck_assert(out[0] == 0 && out[1] == 0 && out[2] == 0);
}
END_TEST

START_TEST(test_redirect_bound)
{
	/* ub + tanh((ub - 0.8)/c) + 1 */
	ck_assert_double_eq_tol(hydb_redirect_bound(1.0, 1.0),
				2.0 + 0.19737532022490401, 1e-15);
	ck_assert_double_eq_tol(hydb_redirect_bound(0.8, 2.0), 1.8, 1e-15);
	ck_assert_double_eq_tol(hydb_redirect_bound(2.8, 4.0),
				3.8 + 0.46211715726000974, 1e-15);
}
END_TEST

START_TEST(test_redirect_hysac)
{
	/* |q| = 5, radius asinh(5) = 2.31 at c = 1. */
	float q[2] = { 3.0f, 4.0f };
	ck_assert_int_eq(hydb_redirect_query(q, 2, 1.0, HYDB_REDIRECT_HYSAC, 3.0), 0);
	ck_assert(q[0] == 3.0f && q[1] == 4.0f);
	ck_assert_int_eq(hydb_redirect_query(q, 2, 1.0, HYDB_REDIRECT_HYSAC, 2.0), 1);
	ck_assert_double_eq_tol(q[0], 1.2, 1e-6);
	ck_assert_double_eq_tol(q[1], 1.6, 1e-6);
	/* Euclidean norm 2 is geodesic radius asinh(2) = 1.44 < 2. */
	ck_assert_double_eq_tol(hydb_lorentz_radius(q, 2, 1.0), 1.4436354751788103,
				1e-6);
	ck_assert_int_eq(hydb_redirect_query(q, 2, 1.0, HYDB_REDIRECT_NONE, 0.0), 0);
}
END_TEST

START_TEST(test_redirect_geodesic)
{
	float q[2] = { 3.0f, 4.0f };
	ck_assert_int_eq(hydb_redirect_query(q, 2, 1.0, HYDB_REDIRECT_GEODESIC, 2.0), 1);
	/* |q| = sinh(2) = 3.626860407847019, direction kept. */
	ck_assert_double_eq_tol(q[0], 0.6 * 3.626860407847019, 1e-6);
	ck_assert_double_eq_tol(q[1], 0.8 * 3.626860407847019, 1e-6);
	ck_assert_double_eq_tol(hydb_lorentz_radius(q, 2, 1.0), 2.0, 1e-6);
	/* c = 4: radius asinh(10)/2 = 1.499; to 1: |q| = sinh(2)/2. */
	float r[2] = { 3.0f, 4.0f };
	ck_assert_int_eq(hydb_redirect_query(r, 2, 4.0, HYDB_REDIRECT_GEODESIC, 1.0), 1);
	ck_assert_double_eq_tol(r[0], 0.3 * 3.626860407847019, 1e-6);
	ck_assert_double_eq_tol(r[1], 0.4 * 3.626860407847019, 1e-6);
	ck_assert_int_eq(hydb_redirect_query(r, 2, 4.0, HYDB_REDIRECT_GEODESIC, 1.0), 0);
}
END_TEST

START_TEST(test_redirect_errors)
{
	float q[2] = { 3.0f, 4.0f };
	ck_assert_int_eq(hydb_redirect_query(q, 2, 1.0, HYDB_REDIRECT_HYSAC, -1.0),
			 HYDB_EINVAL);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "bound"));
	ck_assert_int_eq(hydb_redirect_query(q, 2, 0.0, HYDB_REDIRECT_HYSAC, 1.0),
			 HYDB_EINVAL);
	ck_assert_int_eq(hydb_redirect_query(q, 2, 1.0, (hydb_redirect)7, 1.0),
			 HYDB_EINVAL);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "mode"));
	ck_assert(q[0] == 3.0f && q[1] == 4.0f);
}
END_TEST

START_TEST(test_simple_values)
{
	/* x = (sinh 1, 0), y = (0, sinh 2) at c = 1: orthogonal, so
	 * cosh d = cosh 1 cosh 2, and the radii are 1 and 2. */
	float x[2] = { (float)sinh(1.0), 0 }, y[2] = { 0, (float)sinh(2.0) };
	double xs = x[0], ys = y[1];
	double cd = sqrt(1 + xs * xs) * sqrt(1 + ys * ys);
	ck_assert_double_eq_tol(hydb_lorentz_key(x, y, 2, 1.0), cd - 1, 1e-12);
	ck_assert_double_eq_tol(hydb_lorentz_inner(x, y, 2, 1.0), -cd, 1e-12);
	ck_assert_double_eq_tol(hydb_lorentz_dist(x, y, 2, 1.0), acosh(cd), 1e-12);
	ck_assert_double_eq_tol(hydb_lorentz_time(x, 2, 1.0), sqrt(1 + xs * xs),
				1e-12);
	ck_assert_double_eq_tol(hydb_lorentz_radius(y, 2, 1.0), asinh(ys), 1e-12);
	ck_assert(hydb_lorentz_key(x, x, 2, 1.0) == 0);
}
END_TEST

int main(void)
{
	int rc = generate_cases();
	if (rc)
		return rc;
	Suite *s = suite_create("lorentz");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_against_mpmath);
	tcase_add_test(tc, test_naive_float32_fails);
	tcase_add_test(tc, test_ranking_at_radius_6);
	tcase_add_test(tc, test_exp_log_round_trip);
	tcase_add_test(tc, test_exp_map_clamps);
	tcase_add_test(tc, test_redirect_bound);
	tcase_add_test(tc, test_redirect_hysac);
	tcase_add_test(tc, test_redirect_geodesic);
	tcase_add_test(tc, test_redirect_errors);
	tcase_add_test(tc, test_simple_values);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
