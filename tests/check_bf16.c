/*
 * check_bf16.c - the bfloat16 encoder engine (encoder/bf16.h).
 *
 * The engine's matmuls against a float64 product of the same bf16-rounded
 * inputs, every post-op combination and row counts from a caption's one to
 * a batch's hundreds, and attention's unpacked products; a tiny model's embeddings in bf16 against float32
 * (cosine >= 0.9995, |dradius| <= 0.005); and the refusals: a CPU without
 * bf16 (forced through the test hook), an unknown options version or
 * precision. Exits 77 after the refusal tests when the build has no oneDNN
 * or the CPU no bf16, since then nothing else can run.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "encoder/bf16.h"
#include "encoder/forward.h"
#include "encoder/pool.h"
#include "hydb.h"

static unsigned long long rng_state = 88172645463325252ull;

static float frand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f -
	       1.0f;
}

static float *randoms(size_t n, float scale)
{
	float *v = malloc(n * sizeof *v);
	ck_assert_ptr_nonnull(v);
	for (size_t i = 0; i < n; i++)
		v[i] = frand() * scale;
	return v;
}

/* ---- rounding ----------------------------------------------------------- */

START_TEST(round_to_nearest_even)
{
	/* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to even (1);
	 * 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to 1 + 2^-6. */
	float in[20] = {1.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f,
			1.0f + 0x1p-8f + 0x1p-20f, -2.5f, NAN, INFINITY,
			3.0e38f, 0.0f, -0.0f};
	for (int i = 10; i < 20; i++)
		in[i] = in[i - 10];
	uint16_t out[20];
	hydb_bf16_round(out, in, 20);    /* 16 in the vector loop, 4 after */
	for (int i = 0; i < 20; i += 10) {
		ck_assert_uint_eq(out[i + 0], 0x3f80);
		ck_assert_uint_eq(out[i + 1], 0x3f80);
		ck_assert_uint_eq(out[i + 2], 0x3f82);
		ck_assert_uint_eq(out[i + 3], 0x3f81);
		ck_assert_uint_eq(out[i + 4], 0xc020);
		ck_assert(isnan(hydb_bf16_to_float(out[i + 5])));
		ck_assert_uint_eq(out[i + 6], 0x7f80);
		ck_assert(isfinite(hydb_bf16_to_float(out[i + 7])));
		ck_assert_uint_eq(out[i + 8], 0x0000);
		ck_assert_uint_eq(out[i + 9], 0x8000);
	}
}
END_TEST

START_TEST(options_and_names)
{
	hydb_model_options o;
	hydb_precision p;
	hydb_model_options_init(&o);
	ck_assert_uint_eq(o.version, HYDB_MODEL_OPTIONS_VERSION);
	ck_assert_int_eq(o.precision, HYDB_PRECISION_F32);
	ck_assert_int_eq(hydb_precision_parse("bf16", &p), HYDB_OK);
	ck_assert_int_eq(p, HYDB_PRECISION_BF16);
	ck_assert_int_eq(hydb_precision_parse("f32", &p), HYDB_OK);
	ck_assert_int_eq(p, HYDB_PRECISION_F32);
	ck_assert_int_eq(hydb_precision_parse("fp16", &p), HYDB_EINVAL);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "fp16"));
	ck_assert_str_eq(hydb_precision_name(HYDB_PRECISION_BF16), "bf16");
	ck_assert_ptr_null(hydb_precision_name((hydb_precision)7));
}
END_TEST

/* ---- refusals ----------------------------------------------------------- */

static char model_path[256];

START_TEST(no_bf16_cpu_refused)
{
	hydb_model *m = (hydb_model *)1;
	hydb_model_options o;
	hydb_model_options_init(&o);
	o.precision = HYDB_PRECISION_BF16;
	hydb_bf16_test_no_cpu = 1;
	int rc = hydb_model_open_ex(&m, model_path, &o);
	hydb_bf16_test_no_cpu = 0;
	ck_assert_int_eq(rc, HYDB_EINVAL);
	ck_assert_ptr_null(m);
	/* One line naming what is missing: the CPU's, or this build's. */
	ck_assert_ptr_null(strchr(hydb_last_error(), '\n'));
#ifdef HAVE_DNNL
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "AVX512_BF16"));
#else
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "no bfloat16 engine"));
#endif
	/* float32 is unaffected by the hook. */
	hydb_bf16_test_no_cpu = 1;
	rc = hydb_model_open(&m, model_path);
	hydb_bf16_test_no_cpu = 0;
	ck_assert_int_eq(rc, HYDB_OK);
	ck_assert_int_eq(hydb_model_precision(m), HYDB_PRECISION_F32);
	hydb_model_close(m);
}
END_TEST

START_TEST(bad_options_refused)
{
	hydb_model *m;
	hydb_model_options o;
	hydb_model_options_init(&o);
	o.version = 99;
	ck_assert_int_eq(hydb_model_open_ex(&m, model_path, &o), HYDB_EINVAL);
	hydb_model_options_init(&o);
	o.precision = (hydb_precision)5;
	ck_assert_int_eq(hydb_model_open_ex(&m, model_path, &o), HYDB_EINVAL);
	ck_assert_int_eq(hydb_model_open_ex(&m, model_path, NULL), HYDB_OK);
	hydb_model_close(m);
}
END_TEST

/* ---- the engine's matmul ------------------------------------------------ */

struct shape {
	size_t n, in, out;
};

static const struct shape shapes[] = {
	{1, 64, 96}, {7, 128, 256}, {77, 768, 3072}, {257, 256, 512},
	{33, 3072, 768},
};

static double round_d(float f)
{
	uint16_t h;
	hydb_bf16_round(&h, &f, 1);
	return hydb_bf16_to_float(h);
}

/* y against sum_k bf16(x) bf16(w) + bias (then GELU, then + y0) in double.
 * Float32 accumulation of in products errs by ~sqrt(in) ulps of the sum of
 * magnitudes; 2e-5 of it is ample and still ~100x tighter than what
 * unrounded inputs would give (see matmul_rounds_inputs). */
static void check_rows(const struct shape *s, const float *x, const float *w,
		       const float *bias, const float *y0, const void *y,
		       int flags)
{
	int gelu = flags & 1, acc = flags & 2, ybf = flags & 4;
	double *xd = malloc(s->n * s->in * sizeof *xd);
	double *wd = malloc(s->out * s->in * sizeof *wd);
	ck_assert(xd && wd);
	for (size_t i = 0; i < s->n * s->in; i++)
		xd[i] = round_d(x[i]);
	for (size_t i = 0; i < s->out * s->in; i++)
		wd[i] = round_d(w[i]);
	for (size_t r = 0; r < s->n; r++)
		for (size_t c = 0; c < s->out; c++) {
			double sum = bias ? bias[c] : 0, mag = fabs(sum);
			const double *xr = xd + r * s->in, *wr = wd + c * s->in;
			for (size_t k = 0; k < s->in; k++) {
				double p = xr[k] * wr[k];
				sum += p;
				mag += fabs(p);
			}
			if (gelu)
				sum = sum / (1.0 + exp(-1.702 * sum));
			if (acc)
				sum += y0[r * s->out + c], mag += fabs(y0[r * s->out + c]);
			double got = ybf ? hydb_bf16_to_float(
				((const uint16_t *)y)[r * s->out + c]) :
				((const float *)y)[r * s->out + c];
			double tol = 2e-5 * mag + 1e-6 + (ybf ? 0x1p-8 * fabs(sum) : 0);
			if (fabs(got - sum) > tol)
				ck_abort_msg("%zux%zux%zu flags %d [%zu,%zu]: %.9g, "
					     "reference %.9g", s->n, s->in,
					     s->out, flags, r, c, got, sum);
		}
	free(xd);
	free(wd);
}

static void run_shape(const struct shape *s, int flags)
{
	hydb_bf16 *e;
	hydb_bf16_run *run;
	float *x = randoms(s->n * s->in, 1.0f);
	float *w = randoms(s->out * s->in, 1.0f / sqrtf((float)s->in));
	float *bias = randoms(s->out, 0.5f);
	float *y0 = randoms(s->n * s->out, 1.0f);
	float *y = malloc(s->n * s->out * sizeof *y);
	uint16_t *xb = malloc(s->n * s->in * sizeof *xb);
	ck_assert(y && xb);
	memcpy(y, y0, s->n * s->out * sizeof *y);
	hydb_bf16_round(xb, x, s->n * s->in);
	/* Three slices where the width allows: uneven ones, and more than
	 * the two lanes. */
	ck_assert_int_eq(hydb_bf16_new(&e), HYDB_OK);
	ck_assert_int_eq(hydb_bf16_pack(e, w, s->out, s->in, 3), HYDB_OK);
	ck_assert_uint_ge(hydb_bf16_packed_bytes(e), s->out * s->in * 2);
	ck_assert_int_eq(hydb_bf16_run_new(&run, e, 2), HYDB_OK);
	size_t slices = hydb_bf16_slices(run, w);
	ck_assert_uint_eq(slices, s->out >= 384 ? 3 : s->out / 128 ? s->out / 128 : 1);
	/* Twice: the second run takes the cached primitives. Each time in
	 * blocks as the forward pass runs it: two halves of the rows (the
	 * first empty for one row) by every slice, on alternating lanes. */
	for (int rep = 0; rep < 2; rep++) {
		memcpy(y, y0, s->n * s->out * sizeof *y);
		/* bf16 output: y0 is read as float32 only when accumulating,
		 * which never goes with a bf16 output here. */
		for (size_t part = 0; part < 2; part++)
			for (size_t sl = 0; sl < slices; sl++) {
				size_t r0 = s->n * part / 2, r1 = s->n * (part + 1) / 2;
				size_t ysz = (flags & 4) ? 2 : 4;
				hydb_bf16_op op = {
					.y = (char *)y + r0 * s->out * ysz,
					.x = xb + r0 * s->in, .w = w,
					.n = r1 - r0, .in = s->in, .out = s->out,
					.slice = sl,
					.bias = (flags & 8) ? NULL : bias,
					.gelu = flags & 1,
					.accumulate = (flags & 2) != 0,
					.y_bf16 = (flags & 4) != 0};
				hydb_bf16_linear(run, (part + sl) % 2, &op);
			}
		ck_assert_int_eq(hydb_bf16_run_status(run), HYDB_OK);
		check_rows(s, x, w, (flags & 8) ? NULL : bias, y0, y, flags & 7);
	}
	hydb_bf16_run_free(run);
	hydb_bf16_free(e);
	free(x), free(w), free(bias), free(y0), free(y), free(xb);
}

/* flags: 1 GELU, 2 accumulate, 4 bf16 output, 8 no bias. */
START_TEST(matmul_plain_bias)
{
	run_shape(&shapes[_i], 0);
	run_shape(&shapes[_i], 8);
}
END_TEST

START_TEST(matmul_gelu_bf16_out)
{
	run_shape(&shapes[_i], 1 | 4);
}
END_TEST

START_TEST(matmul_accumulate)
{
	run_shape(&shapes[_i], 2);
	run_shape(&shapes[_i], 2 | 8);
}
END_TEST

/* The tolerance above tells rounded inputs from unrounded ones: the
 * engine's result is far from the float32 product of the raw inputs. */
START_TEST(matmul_rounds_inputs)
{
	struct shape s = {4, 512, 64};
	hydb_bf16 *e;
	hydb_bf16_run *run;
	float *x = randoms(s.n * s.in, 1.0f), *w = randoms(s.out * s.in, 0.05f);
	float y[4 * 64];
	uint16_t *xb = malloc(s.n * s.in * sizeof *xb);
	hydb_bf16_round(xb, x, s.n * s.in);
	ck_assert_int_eq(hydb_bf16_new(&e), HYDB_OK);
	ck_assert_int_eq(hydb_bf16_pack(e, w, s.out, s.in, 1), HYDB_OK);
	ck_assert_int_eq(hydb_bf16_run_new(&run, e, 1), HYDB_OK);
	hydb_bf16_op op = {.y = y, .x = xb, .w = w, .n = s.n, .in = s.in,
			   .out = s.out};
	hydb_bf16_linear(run, 0, &op);
	ck_assert_int_eq(hydb_bf16_run_status(run), HYDB_OK);
	int far = 0;
	for (size_t r = 0; r < s.n; r++)
		for (size_t c = 0; c < s.out; c++) {
			double sum = 0, mag = 0;
			for (size_t k = 0; k < s.in; k++) {
				sum += (double)x[r * s.in + k] * w[c * s.in + k];
				mag += fabs((double)x[r * s.in + k] * w[c * s.in + k]);
			}
			far += fabs(y[r * s.out + c] - sum) > 2e-5 * mag + 1e-6;
		}
	ck_assert_int_gt(far, (int)(s.n * s.out / 2));
	/* An unpacked weight is an error of the run, and sticks. */
	float other[64 * 512];
	op.w = other;
	hydb_bf16_linear(run, 0, &op);
	ck_assert_int_eq(hydb_bf16_run_status(run), HYDB_EINVAL);
	hydb_bf16_run_free(run);
	hydb_bf16_free(e);
	free(x), free(w), free(xb);
}
END_TEST

/* Attention's plain products: c = alpha a b or alpha a b^T, operands not
 * packed, against float64 on the same bf16 values; shapes of a caption's
 * heads and an image's. */
START_TEST(matmul_plain)
{
	static const size_t dims[][3] = {{14, 64, 14}, {257, 64, 257},
					 {257, 257, 64}, {1, 64, 1}};
	size_t row = _i % 8 / 2;
	size_t m = dims[row][0], k = dims[row][1], n = dims[row][2];
	int trans = _i % 2;
	/* _i >= 8: b's rows further apart than its width, as a head's
	 * columns of v are (the same products, other strides). */
	size_t ld = (trans ? k : n) + (_i >= 8 ? 37 : 0);
	float alpha = trans ? 0.125f : 1.0f;
	hydb_bf16 *e;
	hydb_bf16_run *run;
	size_t nb = (trans ? n : k) * ld;
	float *a = randoms(m * k, 1.0f), *b = randoms(nb, 1.0f);
	float *c = malloc(m * n * sizeof *c);
	uint16_t *ab = malloc(m * k * 2), *bb = malloc(nb * 2);
	hydb_bf16_round(ab, a, m * k);
	hydb_bf16_round(bb, b, nb);
	ck_assert_int_eq(hydb_bf16_new(&e), HYDB_OK);
	ck_assert_int_eq(hydb_bf16_run_new(&run, e, 1), HYDB_OK);
	for (int rep = 0; rep < 2; rep++) {
		hydb_bf16_matmul(run, 0, c, alpha, ab, bb, m, k, n, trans,
				 _i >= 8 ? ld : 0);
		ck_assert_int_eq(hydb_bf16_run_status(run), HYDB_OK);
		for (size_t i = 0; i < m; i++)
			for (size_t j = 0; j < n; j++) {
				double sum = 0, mag = 0;
				for (size_t t = 0; t < k; t++) {
					double p = (double)hydb_bf16_to_float(ab[i * k + t]) *
						   hydb_bf16_to_float(trans ? bb[j * ld + t] :
								      bb[t * ld + j]);
					sum += p;
					mag += fabs(p);
				}
				sum *= alpha;
				mag *= alpha;
				ck_assert_msg(fabs(c[i * n + j] - sum) <= 2e-5 * mag + 1e-6,
					      "%zux%zux%zu trans %d [%zu,%zu]: %.9g, "
					      "reference %.9g", m, k, n, trans, i, j,
					      c[i * n + j], sum);
			}
	}
	hydb_bf16_run_free(run);
	hydb_bf16_free(e);
	free(a), free(b), free(c), free(ab), free(bb);
}
END_TEST

/* ---- the bf16 block's own loops ----------------------------------------- */

/* x * s rounded: the product in float32, then hydb_bf16_round's rule. */
START_TEST(round_scaled)
{
	float *x = randoms(37, 3.0f), y[37];
	uint16_t got[37], want[37];
	for (int i = 0; i < 37; i++)
		y[i] = x[i] * 0.3712f;
	hydb_bf16_round_scaled(got, x, 0.3712f, 37); /* 32 in vectors, 5 after */
	hydb_bf16_round(want, y, 37);
	for (int i = 0; i < 37; i++)
		ck_assert_uint_eq(got[i], want[i]);
	free(x);
}
END_TEST

/* |got - ref| within bfloat16's rounding of ref (half an ulp: 2^-8
 * relative at most, 8 significant bits) plus err, the error before the
 * rounding. */
static void near_bf16(double got, double ref, double err, const char *what,
		      size_t i)
{
	double tol = 0x1p-8 * fabs(ref) * 1.001 + err;
	ck_assert_msg(fabs(got - ref) <= tol, "%s [%zu]: %.9g, reference "
		      "%.9g", what, i, got, ref);
}

/* LayerNorm writing bfloat16 against float64, rows with a large mean and
 * a tail past the 16-lane loop (_i = 1: width 40). */
START_TEST(layer_norm_bf16)
{
	size_t rows = 5, width = _i & 1 ? 40 : 1024;
	hydb_bf16_test_generic = _i >= 2;
	float *x = randoms(rows * width, 2.0f), *w = randoms(width, 1.5f);
	float *b = randoms(width, 0.5f);
	uint16_t *out = malloc(rows * width * sizeof *out);
	for (size_t i = 0; i < width; i++)
		x[i] += 30.0f; /* row 0: mean far from 0 */
	hydb_layer_norm_bf16(NULL, out, x, rows, width, w, b, 1e-5);
	hydb_bf16_test_generic = 0;
	for (size_t r = 0; r < rows; r++) {
		const float *xr = x + r * width;
		double mean = 0, var = 0;
		for (size_t i = 0; i < width; i++)
			mean += xr[i];
		mean /= (double)width;
		for (size_t i = 0; i < width; i++)
			var += (xr[i] - mean) * (xr[i] - mean);
		double inv = 1.0 / sqrt(var / (double)width + 1e-5);
		for (size_t i = 0; i < width; i++) {
			double ref = (xr[i] - mean) * inv * w[i] + b[i];
			near_bf16(hydb_bf16_to_float(out[r * width + i]), ref,
				  1e-5 * (fabs(w[i]) * 4 + 1), "layer norm",
				  r * width + i);
		}
	}
	free(x), free(w), free(b), free(out);
}
END_TEST

/* The softmax of attention (base 2, unnormalised, 1/sum returned) against
 * float64, for the lengths a causal mask gives: 1, under, at and over a
 * vector, an image's 257. */
START_TEST(softmax_bf16)
{
	static const size_t lives[] = {1, 5, 16, 17, 100, 257};
	size_t cols = 257;
	float *row = randoms(cols, 12.0f);
	uint16_t p[257];
	size_t off = 0, count = 0;
	for (size_t l = 0; l < sizeof lives / sizeof lives[0]; l++) {
		size_t live = lives[l];
		memset(p, 0xff, sizeof p);
		hydb_bf16_test_generic = _i;
		float inv = hydb_softmax_row_bf16(p, row, live, cols);
		hydb_bf16_test_generic = 0;
		double mx = row[0], sum = 0, total = 0;
		for (size_t j = 1; j < live; j++)
			mx = row[j] > mx ? row[j] : mx;
		for (size_t j = 0; j < live; j++)
			sum += exp2((double)row[j] - mx);
		for (size_t j = 0; j < live; j++) {
			double ref = exp2((double)row[j] - mx) / sum;
			double got = (double)hydb_bf16_to_float(p[j]) * inv;
			/* p's rounding, and its share of 1 / sum's. */
			near_bf16(got, ref, (0x1p-8 + 1e-5) * ref, "softmax", j);
			total += got;
			/* The exponential itself is good to far better than
			 * bfloat16: p is 2^(row - max) correctly rounded but
			 * for the rare value next to a rounding edge. */
			off += hydb_bf16_to_float(p[j]) !=
			       round_d((float)exp2((double)row[j] - mx));
		}
		ck_assert_double_eq_tol(total, 1.0, 1e-5);
		count += live;
		for (size_t j = live; j < cols; j++)
			ck_assert_uint_eq(p[j], 0);
	}
	ck_assert_uint_le(off, 2 + count / 100);
	free(row);
}
END_TEST

/* One head of one sequence of attention in float64, on the bf16 inputs:
 * ref [seq, d] and, for the tolerance, sum_j P_ij |v_jc| in mag. */
static void attention_ref(double *ref, double *mag, const uint16_t *q,
			  const uint16_t *k, const uint16_t *v, size_t seq,
			  size_t width, size_t d, int causal)
{
	double *sc = malloc(seq * sizeof *sc);
	for (size_t i = 0; i < seq; i++) {
		size_t live = causal ? i + 1 : seq;
		double mx = -INFINITY, sum = 0;
		for (size_t j = 0; j < live; j++) {
			double dot = 0;
			for (size_t c = 0; c < d; c++)
				dot += (double)hydb_bf16_to_float(q[i * width + c]) *
				       hydb_bf16_to_float(k[j * width + c]);
			sc[j] = dot / sqrt((double)d);
			mx = sc[j] > mx ? sc[j] : mx;
		}
		for (size_t j = 0; j < live; j++)
			sum += sc[j] = exp(sc[j] - mx);
		for (size_t c = 0; c < d; c++) {
			double o = 0, m = 0;
			for (size_t j = 0; j < live; j++) {
				double vj = hydb_bf16_to_float(v[j * width + c]);
				o += sc[j] / sum * vj;
				m += sc[j] / sum * fabs(vj);
			}
			ref[i * d + c] = o;
			mag[i * d + c] = m;
		}
	}
	free(sc);
}

/* Attention on the engine against float64: two sequences of a caption's
 * length (causal or not, heads of 64 and of 32 columns, on the caller
 * alone) and one image's 257 tokens on a pool of two threads; 32 and 256
 * tokens too (no padding to a multiple of 16), and each with the
 * attention of before (HYDB_FWD_ATTN_UNPADDED); the captions' lengths
 * both by the float32 loops of short sequences and, as before, by the
 * engine's matmuls (HYDB_FWD_ATTN_SMALL_MATMULS), and the image's with
 * the softmax of before too (HYDB_FWD_SOFTMAX_V1). The threads' blocks start
 * as NaN, so that padding the products read but did not zero fails. P is
 * rounded to bfloat16 (2^-8 of each weight, and as much again through
 * 1 / sum) before P v: 2^-7 of sum_j P_ij |v_j| bounds that, plus the
 * rounding of o. */
START_TEST(attention_bf16)
{
	int causal = _i & 1, image = (_i & 2) != 0, even = (_i & 16) != 0;
	size_t n_seq = image ? 1 : 2;
	size_t seq = image ? (even ? 256 : 257) : (even ? 32 : 19);
	size_t heads = image ? 2 : (causal ? 3 : 2), width = image ? 128 : 96;
	size_t d = width / heads, n = n_seq * seq * width;
	hydb_bf16 *e;
	hydb_fwd f = {0};
	f.legacy = (_i & 8 ? HYDB_FWD_ATTN_UNPADDED : 0) |
		   (_i & 32 ? image ? HYDB_FWD_SOFTMAX_V1 :
			      HYDB_FWD_ATTN_SMALL_MATMULS : 0);
	float *x = randoms(3 * n, 2.0f);
	uint16_t *qkv = malloc(3 * n * 2), *o = malloc(n * 2);
	double *ref = malloc(seq * d * sizeof *ref), *mag = malloc(seq * d * 8);
	hydb_bf16_round(qkv, x, 3 * n);
	ck_assert_int_eq(hydb_bf16_new(&e), HYDB_OK);
	if (image)
		ck_assert_int_eq(hydb_pool_new(&f.pool, 2), HYDB_OK);
	ck_assert_int_eq(hydb_bf16_run_new(&f.bf16, e, hydb_pool_threads(f.pool)),
			 HYDB_OK);
	void *buf = malloc(hydb_attention_bf16_bytes(&f, seq, d));
	memset(buf, 0xff, hydb_attention_bf16_bytes(&f, seq, d));
	hydb_bf16_test_generic = (_i & 4) != 0;
	hydb_attention_bf16(&f, o, qkv, qkv + n, qkv + 2 * n, n_seq, seq, width,
			    heads, causal, buf);
	hydb_bf16_test_generic = 0;
	ck_assert_int_eq(hydb_fwd_status(&f), HYDB_OK);
	for (size_t s = 0; s < n_seq; s++)
		for (size_t h = 0; h < heads; h++) {
			size_t off = s * seq * width + h * d;
			attention_ref(ref, mag, qkv + off, qkv + n + off,
				      qkv + 2 * n + off, seq, width, d, causal);
			for (size_t i = 0; i < seq; i++)
				for (size_t c = 0; c < d; c++)
					near_bf16(hydb_bf16_to_float(
						o[off + i * width + c]),
						ref[i * d + c],
						0x1p-7 * mag[i * d + c] + 1e-6,
						"attention", off + i * width + c);
		}
	hydb_bf16_run_free(f.bf16);
	hydb_pool_free(f.pool);
	hydb_bf16_free(e);
	free(x), free(qkv), free(o), free(ref), free(mag), free(buf);
}
END_TEST

/* ---- a whole model ------------------------------------------------------ */

static double cosine(const float *a, const float *b, size_t n)
{
	double ab = 0, aa = 0, bb = 0;
	for (size_t i = 0; i < n; i++) {
		ab += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return ab / sqrt(aa * bb);
}

static int differs(const float *a, const float *b, size_t n)
{
	return memcmp(a, b, n * sizeof *a) != 0;
}

START_TEST(tiny_model_bf16_near_f32)
{
	hydb_model *m32, *m16;
	hydb_model_options o;
	hydb_model_options_init(&o);
	o.precision = HYDB_PRECISION_BF16;
	ck_assert_int_eq(hydb_model_open(&m32, model_path), HYDB_OK);
	ck_assert_int_eq(hydb_model_open_ex(&m16, model_path, &o), HYDB_OK);
	ck_assert_int_eq(hydb_model_precision(m16), HYDB_PRECISION_BF16);
	size_t d = hydb_model_dim(m32);
	const char *src = getenv("HYDB_SRCDIR") ? getenv("HYDB_SRCDIR") : "..";
	char paths[3][512];
	const char *names[3] = {"photo420.jpg", "exact224.png", "rgb16.png"};
	const char *pp[3];
	for (int i = 0; i < 3; i++) {
		snprintf(paths[i], sizeof paths[i], "%s/tests/data/%s", src,
			 names[i]);
		pp[i] = paths[i];
	}
	float a[3 * 64], b[3 * 64], ra[3], rb[3];
	ck_assert_uint_le(d, 64);
	ck_assert_int_eq(hydb_encode_image_files(m32, pp, 3, a, ra, NULL), 0);
	ck_assert_int_eq(hydb_encode_image_files(m16, pp, 3, b, rb, NULL), 0);
	ck_assert(differs(a, b, 3 * d)); /* bf16 really ran */
	for (int i = 0; i < 3; i++) {
		ck_assert_double_ge(cosine(a + i * d, b + i * d, d), 0.9995);
		ck_assert_double_le(fabs(ra[i] - rb[i]), 0.005);
	}
	const char *caps[3] = {"a photo of a cat", "two dogs running on the "
			       "beach at sunset", "x"};
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(hydb_encode_text(m32, caps[i], a, ra, NULL), 0);
		ck_assert_int_eq(hydb_encode_text(m16, caps[i], b, rb, NULL), 0);
		ck_assert(differs(a, b, d));
		ck_assert_double_ge(cosine(a, b, d), 0.9995);
		ck_assert_double_le(fabs(ra[0] - rb[0]), 0.005);
	}
	hydb_model_close(m16);
	hydb_model_close(m32);
}
END_TEST

/* The encoder keeps a pass's scratch for the next (hydb_scratch_take):
 * whatever a pass leaves in it must not change the next one's results.
 * Images, then a caption in the image batch's block, then the images one
 * at a time and again as a batch: the same features bit for bit, on both
 * engines. */
static void same_after_reuse(hydb_precision prec)
{
	hydb_model *m;
	hydb_model_options o;
	hydb_model_options_init(&o);
	o.precision = prec;
	ck_assert_int_eq(hydb_model_open_ex(&m, model_path, &o), HYDB_OK);
	const char *src = getenv("HYDB_SRCDIR") ? getenv("HYDB_SRCDIR") : "..";
	char paths[2][512];
	const char *pp[2];
	for (int i = 0; i < 2; i++) {
		snprintf(paths[i], sizeof paths[i], "%s/tests/data/%s", src,
			 i ? "exact224.png" : "photo420.jpg");
		pp[i] = paths[i];
	}
	size_t d = hydb_model_dim(m);
	float a[2 * 64], b[2 * 64], t1[64], t2[64], r[2];
	ck_assert_uint_le(d, 64);
	ck_assert_int_eq(hydb_encode_text(m, "a cat on a mat", t1, r, NULL), 0);
	ck_assert_int_eq(hydb_encode_image_files(m, pp, 2, a, r, NULL), 0);
	ck_assert_int_eq(hydb_encode_text(m, "a cat on a mat", t2, r, NULL), 0);
	ck_assert_mem_eq(t1, t2, d * sizeof *t1);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(hydb_encode_image_files(m, pp + i, 1, b + i * d,
							 r, NULL), 0);
	ck_assert_mem_eq(a, b, 2 * d * sizeof *a);
	ck_assert_int_eq(hydb_encode_image_files(m, pp, 2, b, r, NULL), 0);
	ck_assert_mem_eq(a, b, 2 * d * sizeof *a);
	hydb_model_close(m);
}

START_TEST(scratch_reused)
{
	same_after_reuse(_i ? HYDB_PRECISION_BF16 : HYDB_PRECISION_F32);
}
END_TEST

static Suite *suite(int engine)
{
	Suite *s = suite_create("bf16");
	TCase *t = tcase_create("refusals");
	tcase_add_test(t, round_to_nearest_even);
	tcase_add_test(t, options_and_names);
	tcase_add_test(t, no_bf16_cpu_refused);
	tcase_add_test(t, bad_options_refused);
	suite_add_tcase(s, t);
	if (!engine)
		return s;
	t = tcase_create("engine");
	tcase_set_timeout(t, 600);
	int ns = (int)(sizeof shapes / sizeof shapes[0]);
	tcase_add_loop_test(t, matmul_plain_bias, 0, ns);
	tcase_add_loop_test(t, matmul_gelu_bf16_out, 0, ns);
	tcase_add_loop_test(t, matmul_accumulate, 0, ns);
	tcase_add_test(t, matmul_rounds_inputs);
	tcase_add_loop_test(t, matmul_plain, 0, 16);
	tcase_add_test(t, round_scaled);
	/* Each twice: the AVX512_BF16 loops, then the generic ones. */
	tcase_add_loop_test(t, layer_norm_bf16, 0, 4);
	tcase_add_loop_test(t, softmax_bf16, 0, 2);
	tcase_add_loop_test(t, attention_bf16, 0, 64);
	tcase_add_test(t, tiny_model_bf16_near_f32);
	tcase_add_loop_test(t, scratch_reused, 0, 2);
	suite_add_tcase(s, t);
	return s;
}

/* The tiny model of tools/hydb-convert, made once for every test. */
static int make_model(void)
{
	const char *py = getenv("PYTHON3") && *getenv("PYTHON3") ?
			 getenv("PYTHON3") : "/usr/bin/python3";
	const char *src = getenv("HYDB_SRCDIR") ? getenv("HYDB_SRCDIR") : "..";
	char cmd[1024];
	snprintf(model_path, sizeof model_path, "/tmp/check_bf16.%d.st",
		 (int)getpid());
	snprintf(cmd, sizeof cmd, "%s %s/tools/hydb-convert --tiny %s --seed 1 "
		 ">/dev/null", py, src, model_path);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	if (make_model() < 0) {
		fprintf(stderr, "check_bf16: cannot make the tiny model\n");
		return EXIT_FAILURE;
	}
	int engine = hydb_bf16_check() == HYDB_OK;
	SRunner *r = srunner_create(suite(engine));
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	unlink(model_path);
	if (failed)
		return EXIT_FAILURE;
	if (!engine) {
		fprintf(stderr, "SKIP engine tests: %s\n", hydb_last_error());
		return 77;
	}
	return EXIT_SUCCESS;
}
