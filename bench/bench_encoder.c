/*
 * bench_encoder.c - encoder throughput against the machine's sgemm peak.
 *
 * usage: bench_encoder MODEL [--batches 1,8] [--captions N] [--threads N]
 *                      [--ab FLAGS] [--rounds N] [--precision f32|bf16]
 *
 * Prints one "key value" line per figure so that bench/bench_encoder.sh can
 * put them next to PyTorch's: the BLAS core, sgemm GFLOP/s on a GEMM shaped
 * like the vision MLP, images/s per batch size with the share of that peak
 * the whole vision forward reaches, captions/s, and peak RSS.
 *
 * --precision bf16 opens the model on the bfloat16 engine: the peak is then
 * the engine's matmul on the same shape (bf16 inputs, float32 output), and
 * the share of the forward's time spent outside the engine's matmuls
 * (attention, softmax, LayerNorm, GELU-free rounding passes) is printed too.
 *
 * --ab FLAGS times the forward with HYDB_FORWARD_LEGACY = FLAGS and = 0
 * alternately (encoder/forward.h lists the flags), --rounds times each,
 * and prints both medians and how far apart their features are: on a
 * shared machine only runs interleaved in one process compare fairly.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/blas.h"
#include "encoder/bf16.h"
#include "admin.h"
#include "encoder/forward.h"
#include "encoder/pool.h"
#include "hydb.h"

static hydb_precision precision = HYDB_PRECISION_F32;

/* The library copy bench/ links reads this switch at each forward pass
 * (base/bench_switch.h). */
static void set_legacy(int flags)
{
	char v[16];
	snprintf(v, sizeof v, "%d", flags);
	setenv("HYDB_FORWARD_LEGACY", v, 1);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *random_floats(size_t n, unsigned seed)
{
	float *p = malloc(n * sizeof *p);
	if (!p)
		exit(2);
	srand(seed);
	for (size_t i = 0; i < n; i++)
		p[i] = (float)rand() / RAND_MAX - 0.5f;
	return p;
}

/* GFLOP per CPU second of the best sgemm seen, all threads counted. */
static double cpu_peak;

/* Best of several runs: other processes on the machine only slow it. */
static double sgemm_gflops(size_t m, size_t n, size_t k)
{
	float *a = random_floats(m * k, 1), *b = random_floats(n * k, 2);
	float *c = calloc(m * n, sizeof *c);
	double best = 0;
	for (int r = 0; r < 6; r++) {
		double t = now(), cpu = cpu_now();
		hydb_sgemm(0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
		double g = 2.0 * m * n * k / (now() - t) / 1e9;
		double gc = 2.0 * m * n * k / (cpu_now() - cpu) / 1e9;
		best = g > best ? g : best;
		cpu_peak = gc > cpu_peak ? gc : cpu_peak;
	}
	free(a);
	free(b);
	free(c);
	return best;
}

/* One matmul of the bf16 engine run as the forward pass runs an image
 * batch's: blocks of rows on a pool, each single-threaded. */
struct bf16_peak {
	hydb_bf16_run *run;
	hydb_bf16_op op;
	size_t parts, slices;
};

static void bf16_peak_task(void *p, size_t i, size_t thread)
{
	const struct bf16_peak *s = p;
	hydb_bf16_linear_block(s->run, thread, &s->op, i, s->parts, s->slices);
}

/* The bf16 engine's matmul, x [m, k] by W [n, k]^T, like sgemm_gflops. */
static double bf16_gflops(size_t m, size_t n, size_t k)
{
	float *a = random_floats(m * k, 1), *b = random_floats(n * k, 2);
	float *c = calloc(m * n, sizeof *c);
	uint16_t *ab = malloc(m * k * sizeof *ab);
	hydb_bf16 *e = NULL;
	hydb_pool *pool = NULL;
	struct bf16_peak s = {NULL, {.y = c, .x = ab, .w = b, .n = m, .in = k,
				     .out = n}, (m + 511) / 512, 1};
	double best = 0;
	if (!c || !ab || hydb_pool_new(&pool, 0) < 0 ||
	    hydb_bf16_new(&e) < 0 || hydb_bf16_pack(e, b, n, k, 1) < 0 ||
	    hydb_bf16_run_new(&s.run, e, hydb_pool_threads(pool)) < 0) {
		fprintf(stderr, "bench_encoder: %s\n", hydb_last_error());
		exit(2);
	}
	hydb_bf16_round(ab, a, m * k);
	for (int r = 0; r < 6; r++) {
		double t = now(), cpu = cpu_now();
		hydb_pool_run(pool, s.parts * s.slices, bf16_peak_task, &s);
		double g = 2.0 * m * n * k / (now() - t) / 1e9;
		double gc = 2.0 * m * n * k / (cpu_now() - cpu) / 1e9;
		best = g > best ? g : best;
		cpu_peak = gc > cpu_peak ? gc : cpu_peak;
	}
	if (hydb_bf16_run_status(s.run) < 0) {
		fprintf(stderr, "bench_encoder: %s\n", hydb_last_error());
		exit(2);
	}
	hydb_bf16_run_free(s.run);
	hydb_bf16_free(e);
	hydb_pool_free(pool);
	free(a), free(b), free(c), free(ab);
	return best;
}

/* Multiply-adds x 2 of one image through the vision tower. */
static double vision_flops(const hydb_model_config *c)
{
	double w = c->vision_width, f = c->vision_mlp, g = c->image_size /
							  c->patch_size;
	double t = g * g + 1, k = 3.0 * c->patch_size * c->patch_size;
	double per_layer = t * (4 * w * w + 2 * w * f) + 2 * t * t * w;
	return 2 * (g * g * k * w + c->vision_layers * per_layer +
		    w * c->embed_dim);
}

/* The peak is re-measured around every timed forward and the best kept:
 * on a shared machine a single measurement can land in a busy moment and
 * make the forward look faster than the GEMM it is made of. */
static double peak_gflops(const hydb_model_config *c)
{
	static double best;
	size_t tokens = (size_t)8 * ((c->image_size / c->patch_size) *
				     (c->image_size / c->patch_size) + 1);
	double g = precision == HYDB_PRECISION_BF16 ?
		   bf16_gflops(tokens, c->vision_mlp, c->vision_width) :
		   sgemm_gflops(tokens, c->vision_mlp, c->vision_width);
	best = g > best ? g : best;
	return best;
}

static int bench_images(hydb_model *m, size_t batch)
{
	const hydb_model_config *c = &m->cfg;
	size_t px = 3 * (size_t)c->image_size * c->image_size;
	float *pixels = random_floats(batch * px, 3);
	float *f = malloc(batch * c->embed_dim * sizeof *f);
	double best = 1e30, best_cpu = 1e30, gemm_share = 0;
	int rc = 0;
	/* The first run faults the weights in from the page cache. */
	for (int r = 0; r < 3 && rc == 0; r++) {
		peak_gflops(c);
		double g0 = hydb_bf16_gemm_seconds;
		double t = now(), cpu = cpu_now();
		rc = hydb_vision_forward(m, pixels, batch, f);
		double dt = now() - t;
		cpu = cpu_now() - cpu;
		if (dt < best)
			gemm_share = (hydb_bf16_gemm_seconds - g0) / dt;
		best = dt < best ? dt : best;
		best_cpu = cpu < best_cpu ? cpu : best_cpu;
	}
	if (rc < 0) {
		fprintf(stderr, "bench_encoder: %s\n", hydb_last_error());
		return 2;
	}
	double peak = peak_gflops(c);
	double gflops = vision_flops(c) * batch / best / 1e9;
	printf("images_per_s_batch%zu %.3f\n", batch, batch / best);
	printf("vision_gflops_batch%zu %.1f\n", batch, gflops);
	printf("vision_peak_fraction_batch%zu %.3f\n", batch, gflops / peak);
	/* The same per CPU second: unlike wall time, not skewed by other
	 * processes taking a core during one of the two measurements. */
	double gcpu = vision_flops(c) * batch / best_cpu / 1e9;
	printf("vision_cpu_fraction_batch%zu %.3f\n", batch, gcpu / cpu_peak);
	if (precision == HYDB_PRECISION_BF16)
		printf("vision_non_gemm_share_batch%zu %.3f\n", batch,
		       1 - gemm_share);
	free(pixels);
	free(f);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define AB_MAX_ROUNDS 64

/* Largest difference between the two paths' features, relative to the
 * largest feature: they differ only in rounding. */
static double max_rel_diff(const float *a, const float *b, size_t n)
{
	double d = 0, scale = 0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)a[i] - b[i]), s = fabs((double)b[i]);
		d = e > d ? e : d;
		scale = s > scale ? s : scale;
	}
	return scale > 0 ? d / scale : d;
}

/* Images/s of the legacy and current code paths, interleaved. */
static int bench_ab(hydb_model *m, size_t batch, int flags, int rounds)
{
	const hydb_model_config *c = &m->cfg;
	size_t px = 3 * (size_t)c->image_size * c->image_size;
	float *pixels = random_floats(batch * px, 3);
	size_t nf = batch * c->embed_dim;
	float *f = malloc(2 * nf * sizeof *f);
	double t_old[AB_MAX_ROUNDS], t_new[AB_MAX_ROUNDS];
	double c_old[AB_MAX_ROUNDS], c_new[AB_MAX_ROUNDS];
	int rc = hydb_vision_forward(m, pixels, batch, f); /* warm-up */
	rounds = rounds > AB_MAX_ROUNDS ? AB_MAX_ROUNDS : rounds;
	for (int r = 0; r < rounds && rc == 0; r++) {
		for (int v = 0; v < 2 && rc == 0; v++) {
			/* Alternate which goes first so drift hits both. */
			int old = (v + r) % 2;
			set_legacy(old ? flags : 0);
			double t = now(), cpu = cpu_now();
			rc = hydb_vision_forward(m, pixels, batch,
						 f + (old ? nf : 0));
			(old ? t_old : t_new)[r] = batch / (now() - t);
			(old ? c_old : c_new)[r] = batch / (cpu_now() - cpu);
		}
	}
	set_legacy(0);
	double diff = max_rel_diff(f + nf, f, nf);
	free(pixels);
	free(f);
	if (rc < 0) {
		fprintf(stderr, "bench_encoder: %s\n", hydb_last_error());
		return 2;
	}
	printf("ab_max_rel_diff_batch%zu %.2e\n", batch, diff);
	double peak = peak_gflops(c), fl = vision_flops(c) / 1e9;
	double mo = median(t_old, rounds), mn = median(t_new, rounds);
	printf("ab_legacy%d_images_per_s_batch%zu %.3f\n", flags, batch, mo);
	printf("ab_current_images_per_s_batch%zu %.3f\n", batch, mn);
	printf("ab_legacy%d_peak_fraction_batch%zu %.3f\n", flags, batch,
	       mo * fl / peak);
	printf("ab_current_peak_fraction_batch%zu %.3f\n", batch, mn * fl / peak);
	/* Per CPU second, against the sgemm's best per CPU second: less
	 * skewed by other processes, but blind to a thread waiting. */
	mo = median(c_old, rounds);
	mn = median(c_new, rounds);
	printf("ab_legacy%d_cpu_fraction_batch%zu %.3f\n", flags, batch,
	       mo * fl / cpu_peak);
	printf("ab_current_cpu_fraction_batch%zu %.3f\n", batch,
	       mn * fl / cpu_peak);
	return 0;
}

/* A 14-token caption: BOS, 12 words, EOS. */
static void caption_ids(const hydb_model *m, int32_t ids[14])
{
	ids[0] = m->cfg.bos_id;
	for (int i = 1; i < 13; i++)
		ids[i] = 320 + 37 * i;
	ids[13] = m->cfg.eos_id;
}

/* Milliseconds per caption of the legacy and current code paths, n
 * captions a round, interleaved like bench_ab. */
static int bench_captions_ab(hydb_model *m, int n, int flags, int rounds)
{
	int32_t ids[14];
	float *out = malloc(m->cfg.embed_dim * sizeof *out), r;
	double t_old[AB_MAX_ROUNDS], t_new[AB_MAX_ROUNDS];
	caption_ids(m, ids);
	int rc = hydb_encode_ids(m, ids, 14, out, &r, NULL); /* warm-up */
	rounds = rounds > AB_MAX_ROUNDS ? AB_MAX_ROUNDS : rounds;
	for (int k = 0; k < rounds && rc == 0; k++)
		for (int v = 0; v < 2 && rc == 0; v++) {
			int old = (v + k) % 2;
			set_legacy(old ? flags : 0);
			double t = now();
			for (int i = 0; i < n && rc == 0; i++)
				rc = hydb_encode_ids(m, ids, 14, out, &r, NULL);
			(old ? t_old : t_new)[k] = (now() - t) / n * 1e3;
		}
	set_legacy(0);
	free(out);
	if (rc < 0) {
		fprintf(stderr, "bench_encoder: %s\n", hydb_last_error());
		return 2;
	}
	printf("ab_legacy%d_caption_ms %.2f\n", flags, median(t_old, rounds));
	printf("ab_current_caption_ms %.2f\n", median(t_new, rounds));
	return 0;
}

static int bench_captions(hydb_model *m, int n)
{
	int32_t ids[14];
	float *out = malloc(m->cfg.embed_dim * sizeof *out), r;
	caption_ids(m, ids);
	int rc = hydb_encode_ids(m, ids, 14, out, &r, NULL); /* warm-up */
	double t = now(), cpu = cpu_now();
	for (int i = 0; i < n && rc == 0; i++)
		rc = hydb_encode_ids(m, ids, 14, out, &r, NULL);
	double dt = now() - t;
	cpu = cpu_now() - cpu;
	free(out);
	if (rc < 0) {
		fprintf(stderr, "bench_encoder: %s\n", hydb_last_error());
		return 2;
	}
	printf("captions_per_s %.2f\n", n / dt);
	printf("caption_ms %.2f\n", dt / n * 1e3);
	/* CPU time of all threads: what the caption costs when the machine
	 * is shared and wall time mostly measures the other processes. */
	printf("caption_cpu_ms %.2f\n", cpu / n * 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	const char *batches = "1,8";
	int captions = 20, threads = 0, ab = -1, rounds = 5;
	if (argc < 2) {
		fprintf(stderr, "usage: bench_encoder MODEL [--batches 1,8] "
				"[--captions N] [--threads N] [--ab FLAGS] "
				"[--rounds N]\n");
		return 1;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--batches"))
			batches = argv[i + 1];
		else if (!strcmp(argv[i], "--captions"))
			captions = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--ab"))
			ab = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 1;
		else if (!strcmp(argv[i], "--precision") &&
			 hydb_precision_parse(argv[i + 1], &precision) < 0) {
			fprintf(stderr, "bench_encoder: %s\n", hydb_last_error());
			return 1;
		}
	}
	hydb_model *m;
	hydb_model_options mo;
	hydb_model_options_init(&mo);
	mo.precision = precision;
	if (hydb_model_open_ex(&m, argv[1], &mo) < 0 || hydb_blas_init() < 0) {
		fprintf(stderr, "bench_encoder: %s\n", hydb_last_error());
		return 2;
	}
	if (threads > 0)
		hydb_blas_set_threads(threads);
	hydb_bf16_timing = 1;
	printf("blas_core %s\n", hydb_blas_corename());
	printf("precision %s\n", hydb_precision_name(precision));
	if (precision == HYDB_PRECISION_BF16)
		printf("bf16_isa %s\n", hydb_bf16_isa());
	int rc = 0;
	for (const char *p = batches; *p && rc == 0;) {
		char *end;
		size_t b = strtoul(p, &end, 10);
		if (b > 0)
			rc = ab >= 0 ? bench_ab(m, b, ab, rounds)
				     : bench_images(m, b);
		p = *end ? end + 1 : end;
	}
	if (rc == 0 && captions > 0)
		rc = ab >= 0 ? bench_captions_ab(m, captions, ab, rounds)
			     : bench_captions(m, captions);
	/* The f32 figure keeps its old name for the scripts that read it. */
	printf("%s %.1f\n", precision == HYDB_PRECISION_BF16 ?
	       "gemm_peak_gflops" : "sgemm_peak_gflops", peak_gflops(&m->cfg));
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("peak_rss_mb %.0f\n", ru.ru_maxrss / 1024.0);
	hydb_model_close(m);
	return rc;
}
