/*
 * bench_exact.c - exact k-NN throughput of hydb against numpy on the same
 * data, in the same run.
 *
 * Usage: bench_exact [N [NQ [K]]]   (default 100000 1000 10, dim 768, c 1)
 * Generates deterministic clustered hyperbolic data (radii 0.5..3, like
 * HySAC embeddings), writes it as .npy for bench/bench_exact_numpy.py, runs
 * both and checks that they return the same ids.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/blas.h"
#include "hydb.h"
#include "base/lorentz.h"
#include "search_exact.h"

#define DIM 768
#define CURV 1.0
#define N_CENTRES 1000

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double uniform(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return ((rng >> 11) + 0.5) * 0x1p-53;
}

static double gauss(void)
{
	return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

static void make_points(float *out, size_t n, const float *centres)
{
	for (size_t j = 0; j < n; j++) {
		const float *c = centres + (size_t)(uniform() * N_CENTRES) * DIM;
		float *x = out + j * DIM;
		double n2 = 0;
		for (size_t i = 0; i < DIM; i++) {
			x[i] = (float)(c[i] + 0.6 * gauss());
			n2 += (double)x[i] * x[i];
		}
		double r = 0.5 + 2.5 * uniform();
		double scale = sinh(sqrt(CURV) * r) / sqrt(CURV) / sqrt(n2);
		for (size_t i = 0; i < DIM; i++)
			x[i] = (float)(x[i] * scale);
	}
}

static int write_npy(const char *path, const char *descr, const void *data,
		     size_t rows, size_t cols, size_t elem)
{
	char hdr[128];
	int len = snprintf(hdr, sizeof hdr,
			   "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %zu), }",
			   descr, rows, cols);
	int total = (10 + len + 1 + 63) / 64 * 64;
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	uint16_t hlen = (uint16_t)(total - 10);
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fwrite(&hlen, 2, 1, f);
	fwrite(hdr, 1, (size_t)len, f);
	for (int i = 10 + len; i < total - 1; i++)
		fputc(' ', f);
	fputc('\n', f);
	size_t ok = fwrite(data, elem, rows * cols, f);
	return fclose(f) == 0 && ok == rows * cols ? 0 : -1;
}

/* Reads an int64 .npy of rows*cols written by numpy (header skipped). */
static int read_ids(const char *path, int64_t *ids, size_t count)
{
	FILE *f = fopen(path, "rb");
	unsigned char pre[10];
	if (!f || fread(pre, 1, 10, f) != 10)
		return -1;
	fseek(f, 10 + (pre[8] | pre[9] << 8), SEEK_SET);
	size_t got = fread(ids, sizeof *ids, count, f);
	fclose(f);
	return got == count ? 0 : -1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double run_numpy(const char *dir, size_t k)
{
	const char *py = getenv("PYTHON3"), *src = getenv("HYDB_SRCDIR");
	char cmd[4096], path[4096];
	double qps = 0;
	snprintf(cmd, sizeof cmd,
		 "OPENBLAS_CORETYPE=SkylakeX %s %s/bench/bench_exact_numpy.py %s %zu %g",
		 py && *py ? py : "/usr/bin/python3", src ? src : ".", dir, k, CURV);
	if (system(cmd) != 0)
		return -1;
	snprintf(path, sizeof path, "%s/numpy_qps.txt", dir);
	FILE *f = fopen(path, "r");
	if (!f || fscanf(f, "%lf", &qps) != 1)
		qps = -1;
	if (f)
		fclose(f);
	return qps;
}

static size_t compare_ids(const char *dir, const hydb_hit *hits, size_t nq,
			  size_t k)
{
	char path[4096];
	int64_t *ids = malloc(nq * k * sizeof *ids);
	size_t diff = 0;
	snprintf(path, sizeof path, "%s/numpy_ids.npy", dir);
	if (read_ids(path, ids, nq * k) < 0) {
		free(ids);
		return nq * k;
	}
	for (size_t i = 0; i < nq * k; i++)
		diff += hits[i].id != (uint64_t)ids[i] + 1;
	free(ids);
	return diff;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	size_t nq = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
	size_t k = argc > 3 ? strtoul(argv[3], NULL, 10) : 10;
	char dir[] = "/tmp/hydb-bench-exact-XXXXXX", path[4096];
	float *centres = malloc((size_t)N_CENTRES * DIM * sizeof *centres);
	float *base = malloc(n * DIM * sizeof *base);
	float *queries = malloc(nq * DIM * sizeof *queries);
	hydb_slot_attr *attr = calloc(n, sizeof *attr);
	hydb_hit *hits = malloc(nq * k * sizeof *hits);
	size_t *nout = malloc(nq * sizeof *nout);
	if (!centres || !base || !queries || !attr || !hits || !nout || !mkdtemp(dir)) {
		fprintf(stderr, "bench_exact: setup failed: %s\n", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < (size_t)N_CENTRES * DIM; i++)
		centres[i] = (float)gauss();
	make_points(base, n, centres);
	make_points(queries, nq, centres);
	for (size_t j = 0; j < n; j++) {
		attr[j].id = j + 1;
		attr[j].live = 1;
	}
	snprintf(path, sizeof path, "%s/base.npy", dir);
	int wr = write_npy(path, "<f4", base, n, DIM, sizeof(float));
	snprintf(path, sizeof path, "%s/queries.npy", dir);
	wr |= write_npy(path, "<f4", queries, nq, DIM, sizeof(float));
	if (wr) {
		fprintf(stderr, "bench_exact: cannot write %s\n", dir);
		return 1;
	}
	hydb_blas_init();
	printf("hydb OpenBLAS core: %s (wanted %s)\n", hydb_blas_corename(),
	       hydb_blas_wanted_core() ? hydb_blas_wanted_core() : "default");
	double t = now();
	int rc = hydb_exact_scan_array(queries, nq, base, attr, 0, n, DIM, CURV, k,
				       NULL, hits, nout);
	double dt = now() - t;
	if (rc) {
		fprintf(stderr, "bench_exact: %s\n", hydb_last_error());
		return 1;
	}
	double qps = nq / dt;
	printf("hydb: %zu queries x %zu vectors, dim %d, k=%zu: %.3f s, %.1f queries/s\n",
	       nq, n, DIM, k, dt, qps);
	fflush(stdout);
	double np_qps = run_numpy(dir, k);
	size_t diff = np_qps > 0 ? compare_ids(dir, hits, nq, k) : nq * k;
	if (np_qps > 0)
		printf("ratio hydb/numpy: %.2fx\n", qps / np_qps);
	printf("ids differing from numpy: %zu of %zu\n", diff, nq * k);
	snprintf(path, sizeof path, "rm -rf '%s'", dir);
	if (system(path) != 0)
		fprintf(stderr, "bench_exact: could not remove %s\n", dir);
	free(centres);
	free(base);
	free(queries);
	free(attr);
	free(hits);
	free(nout);
	return diff == 0 ? 0 : 1;
}
