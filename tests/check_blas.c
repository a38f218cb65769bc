/*
 * check_blas.c - the run-time OpenBLAS loader and its kernel choice.
 *
 * OpenBLAS fixes its kernel when it loads, so each core type is tried in a
 * child process (this program re-run with --child and OPENBLAS_CORETYPE
 * set); the child reports the core it got and its worst relative error
 * against a double-precision product.
 */
#include "config.h"

#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/blas.h"
#include "base/base.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float *rand_matrix(size_t n)
{
	float *p = malloc(n * sizeof *p);
	for (size_t i = 0; i < n; i++)
		p[i] = frand();
	return p;
}

static float get(const float *p, size_t ld, int t, size_t i, size_t j)
{
	return t ? p[j * ld + i] : p[i * ld + j];
}

/* Worst |c - ref| / (sum |a||b| + tiny) over the result: the bound float
 * rounding can reach is about k * 2^-24 of that scale. */
static double gemm_error(int ta, int tb, size_t m, size_t n, size_t k,
			 float alpha, float beta)
{
	size_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
	float *a = rand_matrix((ta ? k : m) * lda);
	float *b = rand_matrix((tb ? n : k) * ldb);
	float *c = rand_matrix(m * ldc);
	float *c0 = malloc(m * ldc * sizeof *c0);
	memcpy(c0, c, m * ldc * sizeof *c0);
	hydb_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	double worst = 0;
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++) {
			double s = 0, scale = 0;
			for (size_t l = 0; l < k; l++) {
				double p = (double)get(a, lda, ta, i, l) *
					   get(b, ldb, tb, l, j);
				s += p;
				scale += fabs(p);
			}
			double ref = alpha * s + beta * c0[i * ldc + j];
			scale = fabs(alpha) * scale + fabs(beta * c0[i * ldc + j]) + 1e-30;
			double e = fabs(c[i * ldc + j] - ref) / scale;
			if (e > worst)
				worst = e;
		}
	/* The padding columns of C must be left alone. */
	for (size_t i = 0; i < m; i++)
		for (size_t j = n; j < ldc; j++)
			if (c[i * ldc + j] != c0[i * ldc + j])
				worst = INFINITY;
	free(a);
	free(b);
	free(c);
	free(c0);
	return worst;
}

static const size_t shapes[][3] = {
	{1, 1, 1}, {1, 768, 768}, {7, 13, 29}, {257, 64, 64}, {17, 1024, 1000},
	{33, 65, 4097}, {128, 129, 127},
};

static double all_shapes_error(void)
{
	double worst = 0;
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
		for (int t = 0; t < 4; t++) {
			double e = gemm_error(t & 1, t >> 1, shapes[s][0],
					      shapes[s][1], shapes[s][2],
					      t == 3 ? -0.5f : 1.0f,
					      t == 1 ? 0.75f : 0.0f);
			if (e > worst)
				worst = e;
		}
	return worst;
}

/* Float accumulation of k terms: a few units of 2^-24 per term at most. */
#define TOLERANCE 1e-6

START_TEST(test_sgemm_matches_double)
{
	ck_assert_int_eq(hydb_blas_init(), HYDB_OK);
	double e = all_shapes_error();
	ck_assert_msg(e < TOLERANCE, "worst relative error %g", e);
}
END_TEST

START_TEST(test_zero_sized_is_noop)
{
	float c[4] = {1, 2, 3, 4};
	hydb_sgemm(0, 0, 0, 2, 2, 1.0f, c, 2, c, 2, 0.0f, c, 2);
	hydb_sgemm(0, 0, 2, 0, 2, 1.0f, c, 2, c, 2, 0.0f, c, 2);
	ck_assert(c[0] == 1 && c[3] == 4);
	/* k = 0 means C = beta*C. */
	float a[1] = {0}, b[1] = {0};
	hydb_sgemm(0, 0, 2, 2, 0, 1.0f, a, 1, b, 2, 0.5f, c, 2);
	ck_assert(c[0] == 0.5f && c[3] == 2.0f);
}
END_TEST

/* The thread count OpenBLAS itself reports, or -1 if it is not loaded. */
static int openblas_threads(void)
{
	void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
	int (*get)(void) = h ? (int (*)(void))dlsym(h, "openblas_get_num_threads")
			     : NULL;
	int n = get ? get() : -1;
	if (h)
		dlclose(h);
	return n;
}

START_TEST(test_serial_sections_nest_and_restore)
{
	ck_assert_int_eq(hydb_blas_init(), HYDB_OK);
	if (openblas_threads() < 0)
		return; /* plain loops: nothing to switch */
	hydb_blas_set_threads(2);
	ck_assert_int_eq(openblas_threads(), 2);
	hydb_blas_serial_begin();
	hydb_blas_serial_begin();
	ck_assert_int_eq(openblas_threads(), 1);
	/* A change asked for inside a section waits for its end. */
	hydb_blas_set_threads(3);
	ck_assert_int_eq(openblas_threads(), 1);
	hydb_blas_serial_end();
	ck_assert_int_eq(openblas_threads(), 1);
	hydb_blas_serial_end();
	ck_assert_int_eq(openblas_threads(), 3);
	/* An unmatched end does not go below zero sections. */
	hydb_blas_serial_end();
	hydb_blas_serial_begin();
	ck_assert_int_eq(openblas_threads(), 1);
	hydb_blas_serial_end();
	ck_assert_int_eq(openblas_threads(), 3);
}
END_TEST

/* Attention-shaped products (scores = q k^T, then scores v) run by two
 * threads at once inside a serial section, as the encoder does. */
struct concurrent_job {
	const float *q, *k;
	float *s, *o;
};

enum { SEQ = 257, HEAD = 64, ROUNDS = 20 };

static void *concurrent_gemms(void *arg)
{
	struct concurrent_job *j = arg;
	for (int r = 0; r < ROUNDS; r++) {
		hydb_sgemm(0, 1, SEQ, SEQ, HEAD, 0.125f, j->q, HEAD, j->k, HEAD,
			   0.0f, j->s, SEQ);
		hydb_sgemm(0, 0, SEQ, HEAD, SEQ, 1.0f, j->s, SEQ, j->k, HEAD,
			   0.0f, j->o, HEAD);
	}
	return NULL;
}

/* Worst relative error of o = (0.125 q k^T) k against doubles. */
static double concurrent_error(const struct concurrent_job *j)
{
	double worst = 0;
	double *s = malloc(SEQ * sizeof *s);
	for (size_t i = 0; i < SEQ; i += 16) {
		for (size_t c = 0; c < SEQ; c++) {
			double t = 0;
			for (size_t l = 0; l < HEAD; l++)
				t += (double)j->q[i * HEAD + l] * j->k[c * HEAD + l];
			s[c] = 0.125 * t;
		}
		for (size_t c = 0; c < HEAD; c++) {
			double t = 0, scale = 1e-30;
			for (size_t l = 0; l < SEQ; l++) {
				t += s[l] * j->k[l * HEAD + c];
				scale += fabs(s[l] * j->k[l * HEAD + c]);
			}
			double e = fabs(j->o[i * HEAD + c] - t) / scale;
			worst = e > worst ? e : worst;
		}
	}
	free(s);
	return worst;
}

START_TEST(test_concurrent_serial_gemms)
{
	ck_assert_int_eq(hydb_blas_init(), HYDB_OK);
	hydb_blas_set_threads(2);
	struct concurrent_job j[2];
	for (int t = 0; t < 2; t++) {
		j[t].q = rand_matrix(SEQ * HEAD);
		j[t].k = rand_matrix(SEQ * HEAD);
		j[t].s = malloc(SEQ * SEQ * sizeof(float));
		j[t].o = malloc(SEQ * HEAD * sizeof(float));
	}
	pthread_t th;
	hydb_blas_serial_begin();
	ck_assert_int_eq(pthread_create(&th, NULL, concurrent_gemms, &j[1]), 0);
	concurrent_gemms(&j[0]);
	pthread_join(th, NULL);
	hydb_blas_serial_end();
	for (int t = 0; t < 2; t++) {
		double e = concurrent_error(&j[t]);
		ck_assert_msg(e < TOLERANCE, "thread %d: relative error %g", t, e);
	}
}
END_TEST

/* OPENBLAS_CORETYPE as the test was started with, before any load. */
static const char *user_coretype;

static int cpu_has_avx512f(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f");
}

START_TEST(test_wanted_core_follows_cpu)
{
	const char *w = hydb_blas_wanted_core();
	if (cpu_has_avx512f())
		ck_assert_str_eq(w, "SkylakeX");
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		ck_assert_str_eq(w, "Haswell");
	else
		ck_assert_ptr_null(w);
	/* The choice must not leak into child processes' environment: the
	 * variable is what the user had before hydb loaded OpenBLAS (unset on
	 * most machines, OPENBLAS_CORETYPE=Haswell on some AMD hosts). */
	const char *env = getenv("OPENBLAS_CORETYPE");
	if (user_coretype)
		ck_assert_str_eq(env, user_coretype);
	else
		ck_assert_ptr_null(env);
}
END_TEST

/* hydb --version prints this: the core, and whose choice it was. */
START_TEST(test_info_says_why)
{
	const char *info = hydb_blas_info();
	const char *core = hydb_blas_corename();
	ck_assert_msg(strstr(info, core) != NULL, "%s lacks %s", info, core);
	if (user_coretype && *user_coretype) {
		char want[128];
		snprintf(want, sizeof want, "OPENBLAS_CORETYPE=%s set by the user", user_coretype);
		ck_assert_msg(strstr(info, want) != NULL, "%s", info);
	} else if (hydb_blas_wanted_core()) {
		ck_assert_msg(strstr(info, "chosen by hydb") != NULL, "%s", info);
		ck_assert_msg(strncasecmp(core, hydb_blas_wanted_core(), strlen(hydb_blas_wanted_core())) == 0,
			      "%s", info);
	}
}
END_TEST

struct child_result {
	char core[160];
	char preloaded[8];
	double err;
};

/* Run this program with --child under the given OPENBLAS_CORETYPE. */
static int run_child(const char *coretype, struct child_result *r)
{
	char self[4096], cmd[8300];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return -1;
	self[n] = '\0';
	if (coretype)
		snprintf(cmd, sizeof cmd, "OPENBLAS_CORETYPE=%s '%s' --child",
			 coretype, self);
	else
		snprintf(cmd, sizeof cmd,
			 "env -u OPENBLAS_CORETYPE '%s' --child", self);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	char line[512];
	int ok = fgets(line, sizeof line, p) != NULL;
	pclose(p);
	if (!ok)
		return -1;
	/* "core<TAB>preloaded<TAB>error" */
	char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
	if (!t2)
		return -1;
	*t1 = *t2 = '\0';
	snprintf(r->core, sizeof r->core, "%.159s", line);
	snprintf(r->preloaded, sizeof r->preloaded, "%s", t1 + 1);
	r->err = strtod(t2 + 1, NULL);
	return 0;
}

static const char *const cores[] = {"Prescott", "Haswell", "SkylakeX",
				    "Cooperlake"};

START_TEST(test_each_core_is_correct)
{
	const char *core = cores[_i];
	if (strcmp(core, "Prescott") && !cpu_has_avx512f() &&
	    !__builtin_cpu_supports("avx2"))
		return;
	if ((!strcmp(core, "SkylakeX") || !strcmp(core, "Cooperlake")) &&
	    !cpu_has_avx512f())
		return;
	struct child_result r;
	ck_assert_int_eq(run_child(core, &r), 0);
	/* The core really is the one asked for: otherwise this test would
	 * check the default kernel four times. */
	ck_assert_msg(strncasecmp(r.core, core, strlen(core)) == 0,
		      "asked %s, got %s", core, r.core);
	ck_assert_msg(r.err < TOLERANCE, "%s: worst relative error %g", core,
		      r.err);
}
END_TEST

START_TEST(test_default_gets_wanted_core)
{
	const char *w = hydb_blas_wanted_core();
	struct child_result r;
	ck_assert_int_eq(run_child(NULL, &r), 0);
	ck_assert_msg(r.err < TOLERANCE, "default: error %g", r.err);
	if (!w)
		return;
	if (!strcmp(r.preloaded, "yes")) {
		/* Someone linked OpenBLAS before us: the name must say so. */
		if (strncasecmp(r.core, w, strlen(w)))
			ck_assert_msg(strstr(r.core, "wanted") != NULL, "%s", r.core);
		return;
	}
	ck_assert_msg(strncasecmp(r.core, w, strlen(w)) == 0,
		      "wanted %s, got %s", w, r.core);
}
END_TEST

static int child_main(void)
{
	if (hydb_blas_init() < 0) {
		printf("none\tno\t1\n");
		return 0;
	}
	const char *name = hydb_blas_corename();
	int pre = strstr(name, "loaded before") != NULL;
	/* hydb_blas_corename marks a core it did not choose itself. */
	printf("%s\t%s\t%.3g\n", name, pre ? "yes" : "no", all_shapes_error());
	return 0;
}

static Suite *blas_suite(void)
{
	Suite *s = suite_create("blas");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sgemm_matches_double);
	tcase_add_test(tc, test_zero_sized_is_noop);
	tcase_add_test(tc, test_serial_sections_nest_and_restore);
	tcase_add_test(tc, test_concurrent_serial_gemms);
	tcase_add_test(tc, test_wanted_core_follows_cpu);
	tcase_add_test(tc, test_info_says_why);
	tcase_add_loop_test(tc, test_each_core_is_correct, 0,
			    sizeof cores / sizeof cores[0]);
	tcase_add_test(tc, test_default_gets_wanted_core);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--child"))
		return child_main();
	user_coretype = getenv("OPENBLAS_CORETYPE");
	SRunner *sr = srunner_create(blas_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
