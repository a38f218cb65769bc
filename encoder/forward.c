/*
 * forward.c - encoder state and the transformer block shared by the
 * vision and text towers.
 *
 * A forward pass runs on a pool of hydb's own threads (encoder/pool.h):
 * every large GEMM is cut into blocks of output rows or columns, each a
 * single-threaded OpenBLAS call, and the element-wise work after a GEMM is
 * done on its block while it is still in cache. OpenBLAS's own threads
 * stay asleep meanwhile; they used to spin between the calls of a block,
 * a tenth of the CPU time.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/bench_switch.h"
#include "base/blas.h"
#include "encoder/bf16.h"
#include "encoder/forward.h"
#include "encoder/pool.h"
#include "base/base.h"

int hydb_fwd_begin(hydb_fwd *f, const hydb_encoder *e)
{
	/* bench builds: HYDB_FORWARD_LEGACY=flags (HYDB_FWD_*) */
	f->legacy = (int)hydb_bench_switch("HYDB_FORWARD_LEGACY", 0);
	f->split = !(f->legacy & HYDB_FWD_BLAS_THREADS);
	f->bf16 = NULL;
	FORWARD_IF_ERROR(hydb_pool_new(&f->pool, 0));
	int rc = e && e->bf16 ? hydb_bf16_run_new(&f->bf16, e->bf16,
						  hydb_pool_threads(f->pool)) :
		 HYDB_OK;
	if (rc < 0) {
		hydb_pool_free(f->pool);
		return rc;
	}
	if (f->bf16)
		hydb_bf16_run_fresh_memories(
			f->bf16, (f->legacy & HYDB_FWD_DNNL_FRESH_MEMORIES) != 0);
	if (f->split)
		hydb_blas_serial_begin();
	return HYDB_OK;
}

int hydb_fwd_status(const hydb_fwd *f)
{
	return f->bf16 ? hydb_bf16_run_status(f->bf16) : HYDB_OK;
}

void hydb_fwd_end(hydb_fwd *f)
{
	if (f->split)
		hydb_blas_serial_end();
	hydb_pool_free(f->pool);
	f->pool = NULL;
	hydb_bf16_run_free(f->bf16);
	f->bf16 = NULL;
}

static hydb_pool *pool_of(const hydb_fwd *f)
{
	return f ? f->pool : NULL;
}

/* ---- row passes on the pool ------------------------------------------- */

typedef void (*rows_fn)(void *ctx, size_t r0, size_t r1);

struct rows_step {
	rows_fn fn;
	void *ctx;
	size_t rows, parts;
};

static void rows_task(void *p, size_t i, size_t thread)
{
	const struct rows_step *s = p;
	s->fn(s->ctx, s->rows * i / s->parts, s->rows * (i + 1) / s->parts);
}

/* Below this many elements a pass is not worth waking the pool for. */
#define PARALLEL_MIN_WORK (1u << 16)
/* Tasks per thread in a step. More would even out a core shared with
 * another process, but each GEMM block packs again the operand it shares
 * with the others: 2 per thread was 5% slower at batch 1 than 1 per
 * thread and no faster at batch 8 on a loaded machine (bench_encoder). */
#define PARTS_PER_THREAD 1

static void parallel_rows(const hydb_fwd *f, rows_fn fn, void *ctx,
			  size_t rows, size_t width)
{
	size_t parts = PARTS_PER_THREAD * hydb_pool_threads(pool_of(f));
	if (rows * width < PARALLEL_MIN_WORK)
		parts = 1;
	parts = parts > rows ? rows : parts;
	struct rows_step s = {fn, ctx, rows, parts};
	hydb_pool_run(pool_of(f), parts, rows_task, &s);
}

/* ---- 16 lanes at a time ------------------------------------------------ */

/* GCC vector arithmetic: inlined into the target_clones functions below,
 * it compiles to AVX-512, AVX2 or SSE2 for the CPU the clone is picked
 * for. The helpers are always inlined, so their vector ABI never
 * matters: GCC's warning about returns is silenced, and vectors go in by
 * pointer because its note about parameters cannot be. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float hydb_v16 __attribute__((vector_size(64)));
typedef int32_t hydb_v16i __attribute__((vector_size(64)));
#define V16_INLINE static inline __attribute__((always_inline))
#define V16_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

V16_INLINE hydb_v16 v16_load(const float *p)
{
	hydb_v16 v;
	memcpy(&v, p, sizeof v);
	return v;
}

V16_INLINE void v16_store(float *p, const hydb_v16 *v)
{
	memcpy(p, v, sizeof *v);
}

V16_INLINE hydb_v16 v16_splat(float f)
{
	return (hydb_v16){0} + f;
}

/* Lanes of a where m is set, else of b (C has no vector ?:). */
V16_INLINE hydb_v16 v16_select(const hydb_v16i *m, const hydb_v16 *a,
			       const hydb_v16 *b)
{
	hydb_v16i ia, ib;
	hydb_v16 r;
	memcpy(&ia, a, sizeof ia);
	memcpy(&ib, b, sizeof ib);
	ia = (ia & *m) | (ib & ~*m);
	memcpy(&r, &ia, sizeof r);
	return r;
}

V16_INLINE hydb_v16 v16_max(const hydb_v16 *a, const hydb_v16 *b)
{
	hydb_v16i m = *a > *b;
	return v16_select(&m, a, b);
}

V16_INLINE double v16_sum(const hydb_v16 *v)
{
	double s = 0;
	for (int i = 0; i < 16; i++)
		s += (*v)[i];
	return s;
}

V16_INLINE float v16_hmax(const hydb_v16 *v)
{
	float m = (*v)[0];
	for (int i = 1; i < 16; i++)
		m = (*v)[i] > m ? (*v)[i] : m;
	return m;
}

/* libm's expf is a scalar call per element; GELU and softmax make ~50M of
 * them per image. This is the Cephes expf (2^n times a degree-6 polynomial
 * on [-ln2/2, ln2/2], relative error ~1e-7). */
V16_INLINE hydb_v16 v16_exp(const hydb_v16 *x)
{
	const float magic = 12582912.0f; /* 1.5 * 2^23: adds round to integer */
	hydb_v16 lo = v16_splat(-87.0f), hi = v16_splat(88.0f), v = *x;
	hydb_v16i m = v < lo;
	v = v16_select(&m, &lo, &v);
	m = v > hi;
	v = v16_select(&m, &hi, &v);
	hydb_v16 t = v * 1.44269504088896341f + magic;
	hydb_v16 n = t - magic;
	hydb_v16 r = v - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	hydb_v16 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	hydb_v16i bits;
	memcpy(&bits, &t, sizeof bits);
	bits = (bits - 0x4B400000 + 127) << 23;
	memcpy(&t, &bits, sizeof t);
	return p * t;
}

V16_CLONES
static void exp_array(float *y, const float *x, size_t n)
{
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		hydb_v16 v = v16_load(x + i), e = v16_exp(&v);
		v16_store(y + i, &e);
	}
	for (; i < n; i++)
		y[i] = expf(x[i]);
}

/* ---- AVX512_BF16 ---------------------------------------------------------- */

/* The bf16 engine runs only where the CPU has AVX512_BF16 (or AMX, which
 * comes with it): the loops that write its bfloat16 inputs use the CPU's
 * own rounding (vcvtneps2bf16: to nearest even like hydb_bf16_round, but
 * denormals flushed to zero) and, for the softmax, a base-2 exponential
 * at bfloat16's precision, a quarter of the generic loops' instructions.
 * The generic loops remain for compilers or CPUs without it. */
#if defined(__x86_64__) && defined(__GNUC__) && \
	(__GNUC__ >= 10 || defined(__clang__))
#include <immintrin.h>
#define HYDB_AVX512BF16 1
#define BF16_TARGET \
	__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")))

static int have_avx512bf16(void)
{
	static int have = -1;
	int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
	if (h < 0) {
		__builtin_cpu_init();
		h = __builtin_cpu_supports("avx512bf16") != 0;
		__atomic_store_n(&have, h, __ATOMIC_RELAXED);
	}
	return h && !hydb_bf16_test_generic;
}

/* 2^t for t <= 0: 2^floor(t) (scalef reads floor(t) from t itself) times
 * 2^f, f = t - floor(t) in [0, 1) (vreduceps, exact), by a degree-4
 * polynomial fitted to 2^f's relative error on [0, 1) (< 3e-6 in float32;
 * bfloat16 keeps 2e-3): 7 instructions, where rounding t, subtracting and
 * clamping it took 3 more. t far below -149 gives 0, NaN stays NaN. */
BF16_TARGET static inline __m512 exp2_avx512(__m512 t)
{
	__m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF |
				       _MM_FROUND_NO_EXC);
	__m512 p = _mm512_set1_ps(1.35341678e-2f);
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.20114601e-2f));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.41442755e-1f));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.93003833e-1f));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.00000262f));
	return _mm512_scalef_ps(p, t);
}

/* v rounded to bfloat16 into the lanes of dst in mask; returns the rounded
 * values as float32. */
BF16_TARGET static inline __m512 store_bf16_avx512(uint16_t *dst,
						   __mmask16 mask, __m512 v)
{
	__m256i h = (__m256i)_mm512_cvtneps_pbh(v);
	_mm256_mask_storeu_epi16(dst, mask, h);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h),
						     16));
}

static __mmask16 lanes(size_t n)
{
	return (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
}

/* v rounded to bfloat16, stored into dst's 16 lanes (those of mask) and
 * returned. */
BF16_TARGET static inline __m256i round_store_avx512(uint16_t *dst,
						     __mmask16 mask, __m512 v)
{
	__m256i h = (__m256i)_mm512_cvtneps_pbh(v);
	_mm256_mask_storeu_epi16(dst, mask, h);
	return h;
}

/* hydb_softmax_row_bf16 on one row (see there): whole vectors, then the
 * masked rest. The rounded values are summed by a bfloat16 dot product
 * with ones (exact products, float32 sums), one instruction where
 * widening them back to float32 and adding took three. */
BF16_TARGET static inline __attribute__((always_inline)) float
softmax_row_bf16_avx512(uint16_t *p, const float *row, size_t live)
{
	size_t n16 = live / 16 * 16, j;
	__mmask16 k = lanes(live - n16);
	__m512 m = _mm512_set1_ps(-INFINITY), m2 = m, m3 = m, m4 = m;
	__m256 acc = _mm256_setzero_ps();
	__m256bh ones = (__m256bh)_mm256_set1_epi16(0x3f80);
	/* four chains of maxima: one waited on the last, a third of the
	 * row's time */
	for (j = 0; j + 64 <= n16; j += 64) {
		m = _mm512_max_ps(m, _mm512_loadu_ps(row + j));
		m2 = _mm512_max_ps(m2, _mm512_loadu_ps(row + j + 16));
		m3 = _mm512_max_ps(m3, _mm512_loadu_ps(row + j + 32));
		m4 = _mm512_max_ps(m4, _mm512_loadu_ps(row + j + 48));
	}
	for (; j < n16; j += 16)
		m = _mm512_max_ps(m, _mm512_loadu_ps(row + j));
	m = _mm512_max_ps(_mm512_max_ps(m, m2), _mm512_max_ps(m3, m4));
	m = _mm512_mask_max_ps(m, k, m, _mm512_maskz_loadu_ps(k, row + j));
	__m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(m));
	/* Two sums, so that each waits on the dot product before last. */
	__m256 acc2 = _mm256_setzero_ps();
	for (j = 0; j + 32 <= n16; j += 32) {
		__m512 t = _mm512_sub_ps(_mm512_loadu_ps(row + j), mx);
		__m512 t2 = _mm512_sub_ps(_mm512_loadu_ps(row + j + 16), mx);
		__m256i h = round_store_avx512(p + j, 0xffff, exp2_avx512(t));
		__m256i h2 = round_store_avx512(p + j + 16, 0xffff,
						exp2_avx512(t2));
		acc = _mm256_dpbf16_ps(acc, (__m256bh)h, ones);
		acc2 = _mm256_dpbf16_ps(acc2, (__m256bh)h2, ones);
	}
	acc = _mm256_add_ps(acc, acc2);
	if (j < n16) {
		__m512 t = _mm512_sub_ps(_mm512_loadu_ps(row + j), mx);
		__m256i h = round_store_avx512(p + j, 0xffff, exp2_avx512(t));
		acc = _mm256_dpbf16_ps(acc, (__m256bh)h, ones);
		j += 16;
	}
	if (k) {
		__m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + j), mx);
		__m512 e = _mm512_maskz_mov_ps(k, exp2_avx512(t));
		__m256i h = round_store_avx512(p + j, k, e);
		acc = _mm256_dpbf16_ps(acc, (__m256bh)h, ones);
	}
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(acc),
			      _mm256_extractf128_ps(acc, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return 1.0f / _mm_cvtss_f32(s);
}

/* Rows [0, rows) of a head's scores sc into P (both rows cols apart),
 * inv[r] = 1 / the sum of row r's: the row loop of hydb_softmax_row_bf16
 * in one call, its zeros past live stored by masks where a call to
 * memset, the dispatch and the row's call and return were a third of a
 * row's time. live is r + 1 when causal, else seq. */
BF16_TARGET static void softmax_rows_bf16_avx512(uint16_t *pb,
						 const float *sc, float *inv,
						 size_t rows, size_t seq,
						 size_t cols, int causal)
{
	__m256i z = _mm256_setzero_si256();
	for (size_t r = 0; r < rows; r++) {
		uint16_t *p = pb + r * cols;
		size_t live = causal ? r + 1 : seq, j = live;
		inv[r] = softmax_row_bf16_avx512(p, sc + r * cols, live);
		/* the vector live ends in was stored up to live only */
		if (j % 16 && j < cols) {
			size_t end = (j + 15) & ~(size_t)15;
			end = end < cols ? end : cols;
			_mm256_mask_storeu_epi16(p + j, lanes(end - j), z);
			j = end;
		}
		for (; j < cols; j += 16)
			_mm256_mask_storeu_epi16(p + j, lanes(cols - j), z);
	}
}

/* The exponential of before exp2_avx512 (HYDB_FWD_SOFTMAX_V1): 2^t: 2^round(t) (scalef, which takes t down to -inf as 0) times 2^f,
 * |f| <= 1/2, by its degree-5 Taylor polynomial (relative error < 3e-6,
 * against bfloat16's 2e-3). NaN stays NaN. */
BF16_TARGET static inline __m512 exp2_avx512_v1(__m512 t)
{
	t = _mm512_max_ps(_mm512_set1_ps(-200.0f), t);
	__m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT |
					       _MM_FROUND_NO_EXC);
	__m512 f = _mm512_sub_ps(t, n);
	__m512 p = _mm512_set1_ps(1.3333558e-3f);
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291e-3f));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

/* The softmax row of before softmax_row_bf16_avx512 (HYDB_FWD_SOFTMAX_V1):
 * the rounded values widened back to float32 to be summed. */
BF16_TARGET static float softmax_row_bf16_avx512_v1(uint16_t *p,
						 const float *row,
						 size_t live)
{
	size_t n16 = live / 16 * 16, j;
	__mmask16 k = lanes(live - n16);
	__m512 m = _mm512_set1_ps(-INFINITY), acc = _mm512_setzero_ps();
	for (j = 0; j < n16; j += 16)
		m = _mm512_max_ps(m, _mm512_loadu_ps(row + j));
	m = _mm512_mask_max_ps(m, k, m, _mm512_maskz_loadu_ps(k, row + j));
	__m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(m));
	for (j = 0; j < n16; j += 16) {
		__m512 t = _mm512_sub_ps(_mm512_loadu_ps(row + j), mx);
		acc = _mm512_add_ps(acc, store_bf16_avx512(p + j, 0xffff,
							   exp2_avx512_v1(t)));
	}
	if (k) {
		__m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + j), mx);
		__m512 r = store_bf16_avx512(p + j, k, exp2_avx512_v1(t));
		acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, r));
	}
	return 1.0f / _mm512_reduce_add_ps(acc);
}

/* The last pass of ln_row_bf16: o = bf16((x - m) inv w + b). */
BF16_TARGET static void ln_out_bf16_avx512(uint16_t *o, const float *x,
					   float m, float inv, const float *w,
					   const float *b, size_t width)
{
	__m512 vm = _mm512_set1_ps(m), vi = _mm512_set1_ps(inv);
	for (size_t i = 0; i < width; i += 16) {
		__mmask16 k = lanes(width - i);
		__m512 d = _mm512_mul_ps(_mm512_sub_ps(
			_mm512_maskz_loadu_ps(k, x + i), vm), vi);
		__m512 y = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(k, w + i),
					   _mm512_maskz_loadu_ps(k, b + i));
		store_bf16_avx512(o + i, k, y);
	}
}

/* rows x d of src (dense) times s[row], rounded into dst (rows ld apart). */
BF16_TARGET static void scale_rows_bf16_avx512(uint16_t *dst, size_t ld,
					       const float *src,
					       const float *s, size_t rows,
					       size_t d)
{
	for (size_t r = 0; r < rows; r++) {
		__m512 vs = _mm512_set1_ps(s[r]);
		for (size_t i = 0; i < d; i += 16) {
			__mmask16 k = lanes(d - i);
			__m512 v = _mm512_maskz_loadu_ps(k, src + r * d + i);
			store_bf16_avx512(dst + r * ld + i, k,
					  _mm512_mul_ps(v, vs));
		}
	}
}
#else
static int have_avx512bf16(void)
{
	return 0;
}
#endif

/* ---- LayerNorm --------------------------------------------------------- */

struct ln_ctx {
	float *out;
	uint16_t *out16;    /* bfloat16 output instead of out, or NULL */
	float *x;           /* written only when add is set */
	const float *w, *b;
	const float *add;   /* a bias to add to x first, or NULL */
	size_t width;
	double eps;
	int scalar;         /* float32 output: HYDB_FWD_SCALAR; bfloat16
			     * output: HYDB_FWD_LN_ONE_CHAIN */
};

/* The row's mean and 1 / standard deviation, x += add first when add is
 * set; the sums are kept per lane and added in double. */
V16_INLINE void ln_stats(float *x, const float *add, size_t width,
			 double eps, float *mean, float *inv)
{
	size_t n16 = width / 16 * 16, i;
	hydb_v16 acc = {0};
	double sum = 0, var = 0;
	for (i = 0; i < n16; i += 16) {
		hydb_v16 v = v16_load(x + i);
		if (add) {
			v += v16_load(add + i);
			v16_store(x + i, &v);
		}
		acc += v;
	}
	for (; i < width; i++) {
		if (add)
			x[i] += add[i];
		sum += x[i];
	}
	float m = (float)((sum + v16_sum(&acc)) / (double)width);
	hydb_v16 vm = v16_splat(m);
	acc = (hydb_v16){0};
	for (i = 0; i < n16; i += 16) {
		hydb_v16 d = v16_load(x + i) - vm;
		acc += d * d;
	}
	for (; i < width; i++)
		var += (double)(x[i] - m) * (x[i] - m);
	var += v16_sum(&acc);
	*mean = m;
	*inv = (float)(1.0 / sqrt(var / (double)width + eps));
}

/* Sum of x[0, width) - m (m = 0) or of its squares (m given), in float32
 * lanes of four vectors in turn, then double: ln_stats's single chain of
 * additions waited 4 cycles a vector, the four overlap. */
V16_INLINE double ln_sum4(const float *x, size_t width, const float *m)
{
	size_t n64 = width / 64 * 64, n16 = width / 16 * 16, i;
	hydb_v16 a[4] = {{0}, {0}, {0}, {0}}, vm = v16_splat(m ? *m : 0.0f);
	double tail = 0;
	for (i = 0; i < n64; i += 64)
		for (int k = 0; k < 4; k++) {
			hydb_v16 d = v16_load(x + i + 16 * k) - vm;
			a[k] += m ? d * d : d;
		}
	for (; i < n16; i += 16) {
		hydb_v16 d = v16_load(x + i) - vm;
		a[0] += m ? d * d : d;
	}
	for (; i < width; i++) {
		double d = (double)x[i] - (m ? *m : 0.0f);
		tail += m ? d * d : d;
	}
	hydb_v16 t = (a[0] + a[1]) + (a[2] + a[3]);
	return tail + v16_sum(&t);
}

/* ln_stats without add, on four chains (ln_sum4). */
V16_INLINE void ln_stats4(const float *x, size_t width, double eps,
			  float *mean, float *inv)
{
	float m = (float)(ln_sum4(x, width, NULL) / (double)width);
	double var = ln_sum4(x, width, &m);
	*mean = m;
	*inv = (float)(1.0 / sqrt(var / (double)width + eps));
}

V16_CLONES
static void ln_row(float *o, float *x, const float *add, const float *w,
		   const float *b, size_t width, double eps)
{
	size_t n16 = width / 16 * 16, i;
	float m, inv;
	ln_stats(x, add, width, eps, &m, &inv);
	hydb_v16 vm = v16_splat(m);
	for (i = 0; i < n16; i += 16) {
		hydb_v16 y = (v16_load(x + i) - vm) * inv * v16_load(w + i) +
			     v16_load(b + i);
		v16_store(o + i, &y);
	}
	for (; i < width; i++)
		o[i] = (x[i] - m) * inv * w[i] + b[i];
}

/* 16 floats rounded to bfloat16 into dst (hydb_bf16_round's rounding);
 * returns the rounded values. */
V16_INLINE hydb_v16 v16_store_bf16(uint16_t *dst, const hydb_v16 *v)
{
	hydb_bf16_bits16 u;
	hydb_v16 r;
	memcpy(&u, v, sizeof u);
	hydb_bf16_round_bits(&u);
	hydb_bf16_store16(dst, &u);
	memcpy(&r, &u, sizeof r);
	return r;
}

/* ln_row writing the bf16 engine's input directly: the same values as
 * ln_row then hydb_bf16_round, without the float32 row in between. */
V16_CLONES
static void ln_row_bf16(uint16_t *o, float *x, const float *add,
			const float *w, const float *b, size_t width,
			double eps, int one_chain)
{
	size_t n16 = width / 16 * 16, i;
	float m, inv;
	if (add || one_chain)
		ln_stats(x, add, width, eps, &m, &inv);
	else
		ln_stats4(x, width, eps, &m, &inv);
#ifdef HYDB_AVX512BF16
	if (have_avx512bf16()) {
		ln_out_bf16_avx512(o, x, m, inv, w, b, width);
		return;
	}
#endif
	hydb_v16 vm = v16_splat(m);
	for (i = 0; i < n16; i += 16) {
		hydb_v16 y = (v16_load(x + i) - vm) * inv * v16_load(w + i) +
			     v16_load(b + i);
		v16_store_bf16(o + i, &y);
	}
	for (; i < width; i++) {
		float y = (x[i] - m) * inv * w[i] + b[i];
		hydb_bf16_round(o + i, &y, 1);
	}
}

/* The scalar rows of before ln_row, for bench/bench_encoder --ab. */
static void ln_row_scalar(float *o, float *x, const float *add,
			  const float *w, const float *b, size_t width,
			  double eps)
{
	double mean = 0, var = 0;
	if (add)
		for (size_t i = 0; i < width; i++)
			x[i] += add[i];
	for (size_t i = 0; i < width; i++)
		mean += x[i];
	mean /= (double)width;
	for (size_t i = 0; i < width; i++) {
		double d = x[i] - mean;
		var += d * d;
	}
	float inv = (float)(1.0 / sqrt(var / (double)width + eps));
	float m = (float)mean;
	for (size_t i = 0; i < width; i++)
		o[i] = (x[i] - m) * inv * w[i] + b[i];
}

static void ln_rows(void *p, size_t r0, size_t r1)
{
	const struct ln_ctx *c = p;
	size_t w = c->width;
	for (size_t r = r0; r < r1; r++)
		if (c->out16)
			ln_row_bf16(c->out16 + r * w, c->x + r * w, c->add,
				    c->w, c->b, w, c->eps, c->scalar);
		else
			(c->scalar ? ln_row_scalar : ln_row)(
				c->out + r * w, c->x + r * w, c->add, c->w,
				c->b, w, c->eps);
}

static int scalar_mode(const hydb_fwd *f)
{
	return f ? f->legacy & HYDB_FWD_SCALAR : 0;
}

static int ln_one_chain(const hydb_fwd *f)
{
	return f ? (f->legacy & HYDB_FWD_LN_ONE_CHAIN) != 0 : 0;
}

void hydb_layer_norm(const hydb_fwd *f, float *out, const float *x,
		     size_t rows, size_t width, const float *w, const float *b,
		     double eps)
{
	struct ln_ctx c = {out, NULL, (float *)x, w, b, NULL, width, eps,
			   scalar_mode(f)};
	parallel_rows(f, ln_rows, &c, rows, width);
}

void hydb_layer_norm_bf16(const hydb_fwd *f, uint16_t *out, const float *x,
			  size_t rows, size_t width, const float *w,
			  const float *b, double eps)
{
	struct ln_ctx c = {NULL, out, (float *)x, w, b, NULL, width, eps,
			   ln_one_chain(f)};
	parallel_rows(f, ln_rows, &c, rows, width);
}

/* x += bias, then out = LayerNorm(x): the residual's bias costs no pass of
 * its own. */
static void bias_layer_norm(const hydb_fwd *f, float *out, float *x,
			    const float *bias, size_t rows, size_t width,
			    const float *w, const float *b, double eps)
{
	struct ln_ctx c = {out, NULL, x, w, b, bias, width, eps,
			   scalar_mode(f)};
	parallel_rows(f, ln_rows, &c, rows, width);
}

/* ---- quick_gelu -------------------------------------------------------- */

/* x = quick_gelu(x) = x * sigmoid(1.702 x). */
V16_CLONES
static void gelu_span(float *x, size_t k)
{
	size_t i = 0;
	for (; i + 16 <= k; i += 16) {
		hydb_v16 v = v16_load(x + i), a = v * -1.702f;
		a = v / (1.0f + v16_exp(&a));
		v16_store(x + i, &a);
	}
	for (; i < k; i++)
		x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

#define GELU_CHUNK 256

/* The GELU of before gelu_span, for bench/bench_encoder --ab. */
static void gelu_span_chunked(float *x, size_t n)
{
	float e[GELU_CHUNK];
	for (size_t i0 = 0; i0 < n; i0 += GELU_CHUNK) {
		size_t k = n - i0 < GELU_CHUNK ? n - i0 : GELU_CHUNK;
		float *xs = x + i0;
		for (size_t i = 0; i < k; i++)
			e[i] = -1.702f * xs[i];
		exp_array(e, e, k);
		for (size_t i = 0; i < k; i++)
			xs[i] = xs[i] / (1.0f + e[i]);
	}
}

V16_CLONES
static void add_span(float *x, const float *bias, size_t k)
{
	for (size_t i = 0; i < k; i++)
		x[i] += bias[i];
}

/* ---- linear layers ----------------------------------------------------- */

/* After a linear layer's GEMM, on each block of its output: */
enum lin_post {
	POST_NONE,
	POST_BIAS,      /* y += bias */
	POST_GELU,      /* y = quick_gelu(y + bias) */
};

/* y[n, out] = x[n, in] W^T + beta y, then post; W is [out, in] as
 * nn.Linear stores it. The GEMM is cut into parts blocks of rows or of
 * columns. When beta is 0, the bias is written into y before the GEMM,
 * which then adds to it: OpenBLAS would otherwise clear y in a pass of its
 * own, and the bias take another. */
struct lin {
	float *y;
	const float *x, *w, *bias;
	size_t n, in, out;
	float beta;
	enum lin_post post;
	int scalar;             /* HYDB_FWD_SCALAR */
	int post_apart;         /* post left to a pass of its own */
	size_t parts;
	int by_rows;
};

static struct lin lin_make(float *y, const float *x, const float *w,
			   const float *bias, size_t n, size_t in, size_t out,
			   float beta, enum lin_post post)
{
	struct lin l = {.y = y, .x = x, .w = w, .bias = bias, .n = n,
			.in = in, .out = out, .beta = beta, .post = post};
	return l;
}

/* A block's columns start at multiples of 16 so that no block splits a
 * register tile of the kernels. */
static size_t col_edge(const struct lin *l, size_t i)
{
	return i >= l->parts ? l->out : (l->out * i / l->parts) & ~(size_t)15;
}

static int lin_seeded(const struct lin *l)
{
	return l->bias && l->post != POST_NONE && l->beta == 0.0f;
}

static void lin_post_rows(const struct lin *l, size_t r0, size_t r1,
			  size_t c0, size_t c1)
{
	for (size_t r = r0; r < r1; r++) {
		float *y = l->y + r * l->out + c0;
		if (l->post == POST_BIAS && !lin_seeded(l))
			add_span(y, l->bias + c0, c1 - c0);
		else if (l->post == POST_GELU)
			(l->scalar ? gelu_span_chunked : gelu_span)(y, c1 - c0);
	}
}

static void lin_block(const struct lin *l, size_t part)
{
	size_t r0 = 0, r1 = l->n, c0 = 0, c1 = l->out;
	if (l->by_rows) {
		r0 = l->n * part / l->parts;
		r1 = l->n * (part + 1) / l->parts;
	} else {
		c0 = col_edge(l, part);
		c1 = col_edge(l, part + 1);
	}
	if (r0 == r1 || c0 == c1)
		return;
	float beta = l->beta;
	if (lin_seeded(l)) {
		for (size_t r = r0; r < r1; r++)
			memcpy(l->y + r * l->out + c0, l->bias + c0,
			       (c1 - c0) * sizeof *l->y);
		beta = 1.0f;
	}
	hydb_sgemm(0, 1, r1 - r0, c1 - c0, l->in, 1.0f, l->x + r0 * l->in,
		   l->in, l->w + c0 * l->in, l->in, beta,
		   l->y + r0 * l->out + c0, l->out);
	if (!l->post_apart)
		lin_post_rows(l, r0, r1, c0, c1);
}

/* Below this many multiply-adds a GEMM runs whole on one thread. */
#define SPLIT_MIN_MACS (1u << 22)

/* Each extra block packs again the operand it shares with the others:
 * row blocks all of W, column blocks all of x. Cut the other one. */
static void lin_plan(struct lin *l, size_t parts)
{
	l->by_rows = l->n > l->out;
	size_t most = l->by_rows ? l->n : l->out / 16;
	if ((double)l->n * l->in * l->out < SPLIT_MIN_MACS)
		parts = 1;
	parts = parts > most ? most : parts;
	l->parts = parts ? parts : 1;
}

struct lin_step {
	struct lin *l;
	size_t nl;
};

static void lin_task(void *p, size_t i, size_t thread)
{
	const struct lin_step *s = p;
	size_t k = 0;
	while (i >= s->l[k].parts)
		i -= s->l[k++].parts;
	lin_block(&s->l[k], i);
}

struct post_ctx {
	const struct lin *l;
};

static void post_rows(void *p, size_t r0, size_t r1)
{
	const struct lin *l = ((const struct post_ctx *)p)->l;
	lin_post_rows(l, r0, r1, 0, l->out);
}

/* The linear layers of l (independent of each other) in one step: their
 * blocks go to the pool together. With HYDB_FWD_BLAS_THREADS, each GEMM
 * is one call on OpenBLAS's threads as before, its post a pass of its own. */
static void run_linears(const hydb_fwd *f, struct lin *l, size_t nl)
{
	size_t threads = hydb_pool_threads(pool_of(f)), tasks = 0;
	int legacy = !f || !f->split;
	size_t per = PARTS_PER_THREAD * threads;
	for (size_t k = 0; k < nl; k++) {
		l[k].scalar = scalar_mode(f);
		lin_plan(&l[k], legacy ? 1 : per);
		tasks += l[k].parts;
	}
	if (!legacy) {
		struct lin_step s = {l, nl};
		hydb_pool_run(pool_of(f), tasks, lin_task, &s);
		return;
	}
	for (size_t k = 0; k < nl; k++) {
		l[k].post_apart = 1;
		lin_block(&l[k], 0);
		struct post_ctx pc = {&l[k]};
		if (l[k].post != POST_NONE)
			parallel_rows(f, post_rows, &pc, l[k].n, l[k].out);
	}
}

/* ---- the bfloat16 engine's linear layers -------------------------------- */

struct round_ctx {
	uint16_t *dst;
	const float *src;
	size_t width;
};

static void round_rows(void *p, size_t r0, size_t r1)
{
	const struct round_ctx *c = p;
	hydb_bf16_round(c->dst + r0 * c->width, c->src + r0 * c->width,
			(r1 - r0) * c->width);
}

/* dst = src [rows, width] rounded to bfloat16, on the pool. */
static void round_bf16(const hydb_fwd *f, uint16_t *dst, const float *src,
		       size_t rows, size_t width)
{
	struct round_ctx c = {dst, src, width};
	parallel_rows(f, round_rows, &c, rows, width);
}

/* Rows of one block of a bf16 linear layer. The weights are packed, so a
 * block costs no packing of its own; blocks this tall keep the kernels at
 * full speed while a batch still gives the pool several per thread to
 * even out a core shared with another process. */
#define BF16_BLOCK_ROWS 512
/* Fewer rows than this per block would leave the kernels' tiles empty. */
#define BF16_MIN_ROWS 32

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct bf16_step {
	const hydb_fwd *f;
	hydb_bf16_op op;
	size_t row_parts, slices;
	/* A LayerNorm of y's rows after each block (whole rows), or NULL;
	 * timed (hydb_bf16_timing): each thread's seconds in it and in its
	 * tasks. */
	const struct ln_ctx *then;
	double ln[HYDB_POOL_MAX], all[HYDB_POOL_MAX];
};

/* Block i: rows of part i / slices, columns of slice i % slices; then the
 * LayerNorm of those rows while they are still in cache. */
static void bf16_task(void *p, size_t i, size_t thread)
{
	struct bf16_step *s = p;
	int timed = s->then && hydb_bf16_timing && thread < HYDB_POOL_MAX;
	double t0 = timed ? seconds() : 0;
	hydb_bf16_linear_block(s->f->bf16, thread, &s->op, i, s->row_parts,
			       s->slices);
	if (!s->then)
		return;
	double t1 = timed ? seconds() : 0;
	/* slices is 1 here: the rows of hydb_bf16_linear_block's block i */
	ln_rows((void *)s->then, s->op.n * i / s->row_parts,
		s->op.n * (i + 1) / s->row_parts);
	if (timed) {
		double t2 = seconds();
		s->ln[thread] += t2 - t1;
		s->all[thread] += t2 - t0;
	}
}

/* The step's wall time t as GEMM time: with a LayerNorm in its tasks, the
 * part of it the threads spent in the matmuls. */
static void bf16_step_time(const struct bf16_step *s, double t)
{
	double ln = 0, all = 0;
	if (s->then)
		for (size_t i = 0; i < HYDB_POOL_MAX; i++)
			ln += s->ln[i], all += s->all[i];
	hydb_bf16_gemm_seconds += all > 0 ? t * (all - ln) / all : t;
}

/* How a linear layer is cut into blocks for the pool: row_parts blocks of
 * rows times slices column slices. */
static void bf16_plan(const hydb_fwd *f, const hydb_bf16_op *op,
		      size_t *row_parts, size_t *slices)
{
	size_t threads = hydb_pool_threads(pool_of(f)), n = op->n;
	size_t sl = hydb_bf16_slices(f->bf16, op->w);
	size_t rp = (n + BF16_BLOCK_ROWS - 1) / BF16_BLOCK_ROWS;
	if (rp < threads)
		rp = n / BF16_MIN_ROWS < threads ? n / BF16_MIN_ROWS : threads;
	/* A sliced weight (a caption's) is cut by columns only; an unknown
	 * one runs as one block for the engine to report. */
	if (sl != 1 || rp == 0)
		rp = 1;
	*row_parts = rp;
	*slices = sl ? sl : 1;
}

/* Several independent linear layers (q, k and v) in one step. */
#define BF16_MULTI_MAX 3

struct bf16_multi {
	const hydb_fwd *f;
	const hydb_bf16_op *op;
	size_t nop, parts[BF16_MULTI_MAX], slices[BF16_MULTI_MAX];
};

static void bf16_multi_task(void *p, size_t i, size_t thread)
{
	const struct bf16_multi *m = p;
	size_t k = 0;
	while (i >= m->parts[k] * m->slices[k])
		i -= m->parts[k] * m->slices[k], k++;
	hydb_bf16_linear_block(m->f->bf16, thread, &m->op[k], i, m->parts[k],
			       m->slices[k]);
}

/* The blocks of nop linear layers in one pool step: one wait for the
 * slowest block instead of one per layer, and with more blocks the
 * threads' shares come out more even (an image batch's 5 row blocks a
 * layer leave a thread idle for one of the 3 rounds). */
static void bf16_linears(const hydb_fwd *f, const hydb_bf16_op *op,
			 size_t nop)
{
	struct bf16_multi m = {f, op, nop, {0}, {0}};
	size_t tasks = 0;
	for (size_t k = 0; k < nop; k++) {
		bf16_plan(f, &op[k], &m.parts[k], &m.slices[k]);
		tasks += m.parts[k] * m.slices[k];
	}
	double t = hydb_bf16_timing ? seconds() : 0;
	hydb_pool_run(pool_of(f), tasks, bf16_multi_task, &m);
	if (hydb_bf16_timing)
		hydb_bf16_gemm_seconds += seconds() - t;
}

/* A linear layer on the engine, bias, GELU and residual fused, in blocks
 * of rows x column slices on the pool; then, when then is set, its
 * LayerNorm of the float32 y into bfloat16 (then->out16): in each block
 * when blocks are whole rows, else in a pass of its own. */
static void bf16_linear_then(const hydb_fwd *f, const hydb_bf16_op *op,
			     const struct ln_ctx *then)
{
	struct bf16_step s;
	memset(&s, 0, sizeof s);
	s.f = f, s.op = *op;
	size_t n = op->n;
	bf16_plan(f, op, &s.row_parts, &s.slices);
	s.then = hydb_bf16_slices(f->bf16, op->w) == 1 ? then : NULL;
	double t = hydb_bf16_timing ? seconds() : 0;
	hydb_pool_run(pool_of(f), s.row_parts * s.slices, bf16_task, &s);
	if (hydb_bf16_timing)
		bf16_step_time(&s, seconds() - t);
	if (then && !s.then)
		parallel_rows(f, ln_rows, (void *)then, n, op->out);
}

static void bf16_linear(const hydb_fwd *f, void *y, int y_bf16,
			const uint16_t *x, const float *w, const float *bias,
			size_t n, size_t in, size_t out, int gelu,
			int accumulate)
{
	hydb_bf16_op op = {.y = y, .x = x, .w = w, .bias = bias, .n = n,
			   .in = in, .out = out, .y_bf16 = y_bf16, .gelu = gelu,
			   .accumulate = accumulate};
	bf16_linear_then(f, &op, NULL);
}

void hydb_fwd_gemm(const hydb_fwd *f, float *y, const float *x, size_t n,
		   size_t in, size_t out, const float *w)
{
	if (f && f->bf16) {
		uint16_t *xb = hydb_alloc_array(n, in * sizeof *xb,
						"bf16 GEMM input");
		if (!xb) {
			hydb_bf16_run_fail(f->bf16, HYDB_ENOMEM);
			return;
		}
		round_bf16(f, xb, x, n, in);
		bf16_linear(f, y, 0, xb, w, NULL, n, in, out, 0, 0);
		free(xb);
		return;
	}
	struct lin l = lin_make(y, x, w, NULL, n, in, out, 0.0f, POST_NONE);
	run_linears(f, &l, 1);
}

/* ---- attention --------------------------------------------------------- */

/* The largest of row[0, live), live > 0. */
V16_INLINE float row_max(const float *row, size_t live)
{
	size_t n16 = live / 16 * 16, j;
	float mx = row[0];
	if (n16) {
		hydb_v16 m = v16_load(row);
		for (j = 16; j < n16; j += 16) {
			hydb_v16 a = v16_load(row + j);
			m = v16_max(&m, &a);
		}
		mx = v16_hmax(&m);
	}
	for (j = n16; j < live; j++)
		mx = row[j] > mx ? row[j] : mx;
	return mx;
}

/* Softmax of row[0, live), zeros after: max, exp and sum, scale. */
V16_CLONES
static void softmax_row(float *row, size_t live, size_t cols)
{
	size_t n16 = live / 16 * 16, j;
	float mx = row_max(row, live);
	hydb_v16 vmx = v16_splat(mx), acc = {0};
	for (j = 0; j < n16; j += 16) {
		hydb_v16 d = v16_load(row + j) - vmx, e = v16_exp(&d);
		v16_store(row + j, &e);
		acc += e;
	}
	double sum = v16_sum(&acc);
	for (j = n16; j < live; j++) {
		row[j] = expf(row[j] - mx);
		sum += row[j];
	}
	float inv = (float)(1.0 / sum);
	for (j = 0; j < n16; j += 16) {
		hydb_v16 y = v16_load(row + j) * inv;
		v16_store(row + j, &y);
	}
	for (j = n16; j < live; j++)
		row[j] *= inv;
	for (j = live; j < cols; j++)
		row[j] = 0.0f;
}

/* The loops of before softmax_row, for bench/bench_encoder --ab. */
static void softmax_row_scalar(float *row, size_t live, size_t cols)
{
	float mx = row[0];
	for (size_t j = 1; j < live; j++)
		mx = row[j] > mx ? row[j] : mx;
	float sum = 0;
	for (size_t j = 0; j < live; j++)
		row[j] -= mx;
	exp_array(row, row, live);
	for (size_t j = 0; j < live; j++)
		sum += row[j];
	float inv = 1.0f / sum;
	for (size_t j = 0; j < live; j++)
		row[j] *= inv;
	for (size_t j = live; j < cols; j++)
		row[j] = 0.0f;
}

/* The bf16 engine's softmax, unnormalised and in base 2 (attention folds
 * log2(e) into the scores' scale): p[0, live) = 2^(row - max) rounded to
 * bfloat16, zeros to cols; returns 1 / the sum of p's rounded values, the
 * scale that makes them sum to 1. Left to the rows of P v, it is d
 * multiplies a row instead of seq. */
V16_CLONES
static float softmax_bf16(uint16_t *p, const float *row, size_t live,
			  size_t cols, int v1)
{
	if (live < cols)
		memset(p + live, 0, (cols - live) * sizeof *p);
#ifdef HYDB_AVX512BF16
	if (have_avx512bf16())
		return (v1 ? softmax_row_bf16_avx512_v1 :
			softmax_row_bf16_avx512)(p, row, live);
#endif
	size_t n16 = live / 16 * 16, j;
	float mx = row_max(row, live);
	hydb_v16 vmx = v16_splat(mx), acc = {0};
	const float ln2 = 0.693147180559945309f;
	for (j = 0; j < n16; j += 16) {
		hydb_v16 d = (v16_load(row + j) - vmx) * ln2, e = v16_exp(&d);
		acc += v16_store_bf16(p + j, &e);
	}
	double sum = v16_sum(&acc);
	if (j < live) {
		/* The last few on one vector; lanes past live are not kept. */
		float t[16] = {0};
		uint16_t h[16];
		memcpy(t, row + j, (live - j) * sizeof *t);
		hydb_v16 d = (v16_load(t) - vmx) * ln2, e = v16_exp(&d);
		hydb_v16 r = v16_store_bf16(h, &e);
		memcpy(p + j, h, (live - j) * sizeof *p);
		for (size_t i = 0; i < live - j; i++)
			sum += r[i];
	}
	return (float)(1.0 / sum);
}

float hydb_softmax_row_bf16(uint16_t *p, const float *row, size_t live,
			    size_t cols)
{
	return softmax_bf16(p, row, live, cols, 0);
}

/* A head's softmax, rows [0, seq) of sc into P (cols apart). */
static void softmax_rows(uint16_t *pb, const float *sc, float *inv,
			 size_t seq, size_t cols, int causal, int legacy)
{
	int v1 = (legacy & HYDB_FWD_SOFTMAX_V1) != 0;
#ifdef HYDB_AVX512BF16
	if (!v1 && !(legacy & HYDB_FWD_SOFTMAX_PER_ROW) && have_avx512bf16()) {
		softmax_rows_bf16_avx512(pb, sc, inv, seq, seq, cols, causal);
		return;
	}
#endif
	for (size_t r = 0; r < seq; r++)
		inv[r] = softmax_bf16(pb + r * cols, sc + r * cols,
				      causal ? r + 1 : seq, cols, v1);
}

struct attn_ctx {
	float *o;
	const float *q, *k, *v;
	float *scores;  /* seq x seq per thread */
	size_t seq, width, d, heads;
	float scale;
	int causal, scalar;
};

/* One head of one sequence. */
static void attn_task(void *p, size_t task, size_t thread)
{
	const struct attn_ctx *c = p;
	size_t s = task / c->heads, h = task % c->heads;
	size_t off = s * c->seq * c->width + h * c->d;
	float *scores = c->scores + thread * c->seq * c->seq;
	hydb_sgemm(0, 1, c->seq, c->seq, c->d, c->scale, c->q + off, c->width,
		   c->k + off, c->width, 0.0f, scores, c->seq);
	for (size_t r = 0; r < c->seq; r++)
		(c->scalar ? softmax_row_scalar : softmax_row)(
			scores + r * c->seq, c->causal ? r + 1 : c->seq, c->seq);
	hydb_sgemm(0, 0, c->seq, c->d, c->seq, 1.0f, scores, c->seq, c->v + off,
		   c->width, 0.0f, c->o + off, c->width);
}

/* Below this many multiply-adds per head, other threads cost more than
 * they save (a 77-token caption head is ~0.4M). */
#define ATTN_PARALLEL_MIN (1u << 21)

/* o = softmax(q k^T / sqrt(d)) v for every sequence and head. q, k, v, o
 * are [n_seq * seq, width] with head h in columns [h*d, (h+1)*d). The
 * per-head GEMMs are small: the pool's threads each run whole heads with
 * single-threaded GEMMs rather than OpenBLAS splitting each one. */
static void attention(const hydb_fwd *f, float *o, const float *q,
		      const float *k, const float *v, float *scores,
		      size_t n_seq, size_t seq, size_t width, size_t heads,
		      int causal)
{
	struct attn_ctx c = {o, q, k, v, scores, seq, width, width / heads,
			     heads, 0.0f, causal, scalar_mode(f)};
	c.scale = (float)(1.0 / sqrt((double)c.d));
	size_t tasks = n_seq * heads;
	if (seq * seq * c.d < ATTN_PARALLEL_MIN) {
		for (size_t t = 0; t < tasks; t++)
			attn_task(&c, t, 0);
		return;
	}
	hydb_blas_serial_begin();
	hydb_pool_run(pool_of(f), tasks, attn_task, &c);
	hydb_blas_serial_end();
}

/* ---- one block --------------------------------------------------------- */

/* h | q | k | v | o, the MLP's hidden layer reusing q onwards, then one
 * seq x seq matrix of attention scores per thread. */
static size_t scratch_per_row(const hydb_tower *t)
{
	size_t four = 4 * t->width;
	return t->width + (four > t->mlp ? four : t->mlp);
}

static size_t round64(size_t bytes)
{
	return (bytes + 63) & ~(size_t)63;
}

/* Tokens of a head's products as attention runs them: seq, or rounded up
 * to 16 (the tile height of oneDNN's AMX kernels) when that leaves a tail
 * of at most half a tile. 257 tokens (an image) leave the kernels a tail
 * of one that costs nearly a tile of its own: run as 272, with k and v
 * copied into zero-padded blocks, an image's attention takes ~13% less
 * time for 6% more multiply-adds. Longer tails are left as they are:
 * the gain shrinks as the tail fills its tile, and v's copy stays. */
static size_t attn_pad(size_t seq)
{
	return seq % 16 && seq % 16 <= 8 ? (seq + 15) & ~(size_t)15 : seq;
}

/* One thread's block for attention on the bf16 engine: a head's scores,
 * P v, the softmax's scales, and q's, k's and v's columns and P in
 * bfloat16, sized for sp = attn_pad(seq) tokens, each part 64-byte
 * aligned. */
struct attn16_buf {
	float *sc, *oh, *inv;
	uint16_t *qh, *kh, *vh, *pb;
};

static size_t attn16_layout(struct attn16_buf *l, char *b, size_t seq,
			    size_t d)
{
	size_t at = 0, sp = attn_pad(seq);
	void **part[7] = {(void **)&l->sc, (void **)&l->oh, (void **)&l->inv,
			  (void **)&l->qh, (void **)&l->kh, (void **)&l->vh,
			  (void **)&l->pb};
	size_t bytes[7] = {sp * sp * 4, sp * d * 4, sp * 4, sp * d * 2,
			   sp * d * 2, sp * d * 2, sp * sp * 2};
	for (int i = 0; i < 7; i++) {
		*part[i] = b ? b + at : NULL;
		at += round64(bytes[i]);
	}
	return at;
}

/* Attention on sequences up to this long (a caption's, the text context
 * is 77) runs as float32 loops on the bfloat16 q, k and v (attn_small_head)
 * rather than as oneDNN matmuls: a caption head's products are ~12k
 * multiply-adds each, less than the engine's fixed cost per call, and the
 * copies into dense blocks and the softmax's own pass cost as much again. */
#define ATTN_SMALL_SEQ 80
#define ATTN_SMALL_D 128

static int attn_small(const hydb_fwd *f, size_t seq, size_t d)
{
	return !(f->legacy & HYDB_FWD_ATTN_SMALL_MATMULS) &&
	       seq <= ATTN_SMALL_SEQ && d <= ATTN_SMALL_D && d % 16 == 0;
}

/* The small path's block: k transposed [d, seq16] and v [seq, d] in
 * float32, the scores (seq16), q's row and the output row (d each). */
struct attn_small_buf {
	float *kt, *vf, *sc, *qf, *acc;
	size_t ld;
};

static size_t attn_small_layout(struct attn_small_buf *l, float *b,
				size_t seq, size_t d)
{
	l->ld = (seq + 15) & ~(size_t)15;
	l->kt = b;
	l->vf = b + d * l->ld;
	l->sc = l->vf + seq * d;
	l->qf = l->sc + l->ld;
	l->acc = l->qf + d;
	return round64((d * l->ld + seq * d + l->ld + 2 * d) * sizeof *b);
}

static size_t attn16_bytes(size_t seq, size_t d)
{
	struct attn16_buf l;
	struct attn_small_buf sl;
	size_t big = attn16_layout(&l, NULL, seq, d);
	size_t small = seq <= ATTN_SMALL_SEQ && d <= ATTN_SMALL_D ?
		       attn_small_layout(&sl, NULL, seq, d) : 0;
	return big > small ? big : small;
}

size_t hydb_attention_bf16_bytes(const hydb_fwd *f, size_t seq, size_t d)
{
	return hydb_pool_threads(pool_of(f)) * attn16_bytes(seq, d) + 64;
}

/* With the bf16 engine: h | q | k | v | o as for float32 (q, k, v and the
 * MLP's hidden layer in bfloat16, h and o used only by the block of
 * before, HYDB_FWD_BF16_PASSES), then the bfloat16 input of a GEMM (width
 * floats a row hold it twice over, simpler than halves), then each
 * thread's attention block. */
struct bf16_scratch {
	float *h, *q, *k, *v, *o;
	uint16_t *xb;
	char *attn;
};

static struct bf16_scratch bf16_scratch_of(const hydb_tower *t, float *s,
					   size_t n)
{
	struct bf16_scratch b;
	size_t w = t->width;
	b.h = s;
	b.q = b.h + n * w, b.k = b.q + n * w, b.v = b.k + n * w;
	b.o = b.v + n * w;
	b.xb = (uint16_t *)(s + n * scratch_per_row(t));
	uintptr_t a = (uintptr_t)(b.xb + 2 * n * w);
	b.attn = (char *)round64(a);
	return b;
}

int hydb_layer_scratch(size_t *out, const hydb_fwd *f, const hydb_tower *t,
		       size_t n_seq, size_t seq)
{
	size_t n, sq, nb;
	size_t threads = hydb_pool_threads(pool_of(f));
	int bf16 = f && f->bf16;
	if (hydb_mul_size(&n, n_seq, seq) < 0 ||
	    hydb_mul_size(&nb, n, bf16 ? t->width : 0) < 0 ||
	    hydb_mul_size(&n, n, scratch_per_row(t)) < 0 ||
	    hydb_mul3_size(&sq, threads, seq, seq) < 0)
		goto overflow;
	/* With the bf16 engine, the attention blocks (under 16 seq (seq +
	 * width) bytes a thread, in floats) replace the per-thread scores. */
	if (bf16 && seq > SIZE_MAX / 32 / threads / (seq + t->width))
		goto overflow;
	if (bf16)
		sq = hydb_attention_bf16_bytes(f, seq, t->width / t->heads) / 4 + 1;
	if (hydb_add_size(out, n, sq) < 0 || hydb_add_size(out, *out, nb) < 0)
		goto overflow;
	return HYDB_OK;
overflow:
	return hydb_error_set(HYDB_ENOMEM, "encoder scratch: %zu x %zu "
			      "tokens overflow", n_seq, seq);
}

/* For bench/bench_encoder (hydb_bf16_timing): the seconds each thread of
 * an attention step spends in the engine's matmuls and in its tasks. */
struct attn_clock {
	double mm[HYDB_POOL_MAX], all[HYDB_POOL_MAX];
	hydb_task_fn fn;        /* the step's task, timed by attn_timed */
	void *ctx;
};

/* hydb_bf16_matmul, timed into k when k is set. */
static void attn_matmul(struct attn_clock *k, const hydb_fwd *f,
			size_t thread, float *c, float alpha, const uint16_t *a,
			const uint16_t *b, size_t m, size_t kk, size_t n,
			int b_trans, size_t ldb)
{
	double t = k ? seconds() : 0;
	hydb_bf16_matmul(f->bf16, thread, c, alpha, a, b, m, kk, n, b_trans,
			 ldb);
	if (k && thread < HYDB_POOL_MAX)
		k->mm[thread] += seconds() - t;
}

static void attn_timed(void *p, size_t task, size_t thread)
{
	struct attn_clock *k = p;
	double t = seconds();
	k->fn(k->ctx, task, thread);
	if (thread < HYDB_POOL_MAX)
		k->all[thread] += seconds() - t;
}

/* Run an attention step's tasks (on the pool unless a head is too small
 * to share out). Timed, the step's wall time is split between GEMM and
 * the rest in proportion to its threads' seconds in the matmuls and in
 * the whole tasks, as the threads' waits (a worker woken late on a loaded
 * machine, the last task) hold up both alike. */
static void attn_run(const hydb_fwd *f, size_t tasks, int pool,
		     hydb_task_fn fn, void *ctx, struct attn_clock *k)
{
	if (k) {
		k->fn = fn, k->ctx = ctx;
		fn = attn_timed, ctx = k;
	}
	double t = k ? seconds() : 0, mm = 0, all = 0;
	if (!pool)
		for (size_t i = 0; i < tasks; i++)
			fn(ctx, i, 0);
	else
		hydb_pool_run(pool_of(f), tasks, fn, ctx);
	if (!k)
		return;
	t = seconds() - t;
	for (size_t i = 0; i < HYDB_POOL_MAX; i++)
		mm += k->mm[i], all += k->all[i];
	if (all > 0) {
		hydb_bf16_gemm_seconds += t * mm / all;
		hydb_bf16_attn_gemm_seconds += t * mm / all;
	}
}

/* Attention on the bf16 engine: q, k and v come from their linear layers
 * already in bfloat16, o goes to the out-projection in bfloat16. Per head
 * on one thread: q's and k's columns copied into dense blocks (oneDNN
 * 2.6's AMX kernel for q k^T wants them dense), the scores a matmul
 * scaled inside, the softmax writing P in bfloat16 unnormalised, P v a
 * matmul reading v's columns in place, and its rows scaled by the
 * softmax's 1 / sum as they are rounded into o. */
struct attn16_ctx {
	const hydb_fwd *f;
	uint16_t *o;
	const uint16_t *q, *k, *v;
	char *buf;              /* per thread: attn16_bytes */
	size_t seq, width, d, heads;
	float scale;
	int causal;
	struct attn_clock *clk; /* hydb_bf16_timing, else NULL */
};

/* dst [seq, d] dense = the head's columns of src [seq, width]. */
static void head_copy(uint16_t *dst, const uint16_t *src, size_t seq,
		      size_t d, size_t width)
{
	if (d == 64) /* ViT-L's and CLIP text's heads: copies made inline */
		for (size_t t = 0; t < seq; t++)
			memcpy(dst + t * 64, src + t * width, 64 * sizeof *dst);
	else
		for (size_t t = 0; t < seq; t++)
			memcpy(dst + t * d, src + t * width, d * sizeof *dst);
}

/* dst rows (ld apart) = src [rows, d] rows times s[row], in bfloat16. */
static void scale_rows_bf16(uint16_t *dst, size_t ld, const float *src,
			    const float *s, size_t rows, size_t d)
{
#ifdef HYDB_AVX512BF16
	if (have_avx512bf16()) {
		scale_rows_bf16_avx512(dst, ld, src, s, rows, d);
		return;
	}
#endif
	for (size_t t = 0; t < rows; t++)
		hydb_bf16_round_scaled(dst + t * ld, src + t * d, s[t], d);
}

/* head_copy into a block of rows rows, those past seq zero. */
static void head_copy_pad(uint16_t *dst, const uint16_t *src, size_t seq,
			  size_t rows, size_t d, size_t width)
{
	head_copy(dst, src, seq, d, width);
	memset(dst + seq * d, 0, (rows - seq) * d * sizeof *dst);
}

/* One head of one sequence: q k^T over sp = attn_pad(seq) columns of k
 * (zero rows past seq), the softmax over seq of them (P's columns past
 * seq zero), P v over sp rows of v (zero past seq, as 0 x garbage could be
 * NaN). Unpadded (sp = seq, always with HYDB_FWD_ATTN_UNPADDED), v's
 * columns are read in place. */
static void attn16_task(void *p, size_t task, size_t thread)
{
	const struct attn16_ctx *c = p;
	size_t s = task / c->heads, h = task % c->heads, seq = c->seq, d = c->d;
	size_t off = s * seq * c->width + h * d, sp = attn_pad(seq);
	struct attn16_buf b;
	attn16_layout(&b, c->buf + thread * attn16_bytes(seq, d), seq, d);
	sp = c->f->legacy & HYDB_FWD_ATTN_UNPADDED ? seq : sp;
	int pad = sp != seq;
	head_copy(b.qh, c->q + off, seq, d, c->width);
	head_copy_pad(b.kh, c->k + off, seq, sp, d, c->width);
	attn_matmul(c->clk, c->f, thread, b.sc, c->scale, b.qh, b.kh, seq, d,
		    sp, 1, 0);
	softmax_rows(b.pb, b.sc, b.inv, seq, sp, c->causal, c->f->legacy);
	if (pad)
		head_copy_pad(b.vh, c->v + off, seq, sp, d, c->width);
	attn_matmul(c->clk, c->f, thread, b.oh, 1.0f, b.pb,
		    pad ? b.vh : c->v + off, seq, sp, d, 0, pad ? d : c->width);
	scale_rows_bf16(c->o + off, c->width, b.oh, b.inv, seq, d);
}

/* 16 bfloat16 values as float32 (exact). */
V16_INLINE hydb_v16 v16_load_bf16(const uint16_t *p)
{
	typedef uint16_t h16 __attribute__((vector_size(32)));
	h16 h;
	memcpy(&h, p, sizeof h);
	hydb_bf16_bits16 u = __builtin_convertvector(h, hydb_bf16_bits16) << 16;
	hydb_v16 r;
	memcpy(&r, &u, sizeof r);
	return r;
}

/* The head's k transposed and v, in float32, into b; kt's columns past
 * seq zero. */
V16_INLINE void attn_small_load(const struct attn_small_buf *b,
				const uint16_t *k, const uint16_t *v,
				size_t seq, size_t width, size_t d)
{
	for (size_t c = 0; c < d; c++) {
		float *row = b->kt + c * b->ld;
		for (size_t j = 0; j < seq; j++)
			row[j] = hydb_bf16_to_float(k[j * width + c]);
		for (size_t j = seq; j < b->ld; j++)
			row[j] = 0.0f;
	}
	for (size_t j = 0; j < seq; j++)
		for (size_t c = 0; c < d; c += 16) {
			hydb_v16 x = v16_load_bf16(v + j * width + c);
			v16_store(b->vf + j * d + c, &x);
		}
}

/* sc[0, live) = exp(q.k_j scale - max); returns their sum. Whole vectors
 * of sc are made; lanes past live are not read. */
V16_INLINE double attn_small_scores(const struct attn_small_buf *b,
				    size_t live, size_t d, float scale)
{
	for (size_t j = 0; j < live; j += 16) {
		hydb_v16 s = {0};
		for (size_t c = 0; c < d; c++)
			s += v16_splat(b->qf[c]) * v16_load(b->kt + c * b->ld + j);
		s *= scale;
		v16_store(b->sc + j, &s);
	}
	float mx = row_max(b->sc, live);
	double sum = 0;
	for (size_t j = 0; j < live; j += 16) {
		hydb_v16 x = v16_load(b->sc + j) - v16_splat(mx);
		x = v16_exp(&x);
		v16_store(b->sc + j, &x);
	}
	for (size_t j = 0; j < live; j++)
		sum += b->sc[j];
	return sum;
}

/* One head of one sequence in float32 from the bfloat16 q, k, v (exact
 * products, the softmax unrounded: closer to float64 than the matmul
 * path, whose P is rounded to bfloat16), o rounded once at the end. */
V16_CLONES
static void attn_small_head(uint16_t *o, const uint16_t *q, const uint16_t *k,
			    const uint16_t *v, size_t seq, size_t width,
			    size_t d, int causal, float *buf)
{
	struct attn_small_buf b;
	attn_small_layout(&b, buf, seq, d);
	attn_small_load(&b, k, v, seq, width, d);
	float scale = (float)(1.0 / sqrt((double)d));
	for (size_t i = 0; i < seq; i++) {
		size_t live = causal ? i + 1 : seq;
		for (size_t c = 0; c < d; c += 16) {
			hydb_v16 x = v16_load_bf16(q + i * width + c);
			v16_store(b.qf + c, &x);
		}
		float inv = (float)(1.0 / attn_small_scores(&b, live, d, scale));
		for (size_t c = 0; c < d; c += 16) {
			hydb_v16 a = {0};
			for (size_t j = 0; j < live; j++)
				a += v16_splat(b.sc[j]) * v16_load(b.vf + j * d + c);
			v16_store(b.acc + c, &a);
		}
		hydb_bf16_round_scaled(o + i * width, b.acc, inv, d);
	}
}

static void attn_small_task(void *p, size_t task, size_t thread)
{
	const struct attn16_ctx *c = p;
	size_t s = task / c->heads, h = task % c->heads;
	size_t off = s * c->seq * c->width + h * c->d;
	attn_small_head(c->o + off, c->q + off, c->k + off, c->v + off,
			c->seq, c->width, c->d, c->causal,
			(float *)(c->buf + thread * attn16_bytes(c->seq, c->d)));
}

void hydb_attention_bf16(const hydb_fwd *f, uint16_t *o, const uint16_t *q,
			 const uint16_t *k, const uint16_t *v, size_t n_seq,
			 size_t seq, size_t width, size_t heads, int causal,
			 void *buf)
{
	size_t d = width / heads;
	struct attn_clock clk;
	memset(&clk, 0, sizeof clk);
	/* log2(e) / sqrt(d): the softmax is in base 2. */
	struct attn16_ctx c = {f, o, q, k, v, (char *)round64((uintptr_t)buf),
			       seq, width, d, heads,
			       (float)(1.4426950408889634 / sqrt((double)d)),
			       causal,
			       hydb_bf16_timing ? &clk : NULL};
	attn_run(f, n_seq * heads, seq * seq * d >= ATTN_PARALLEL_MIN,
		 attn_small(f, seq, d) ? attn_small_task : attn16_task, &c,
		 c.clk);
}

/* ---- the bf16 block of before (HYDB_FWD_BF16_PASSES) ------------------ */

/* Each head's q, k and v copied into dense blocks, the softmax in float32
 * normalised in place then rounded in a pass of its own, P v written
 * float32 and copied out; LayerNorm writing float32 for a rounding pass. */
struct attn16_v1_ctx {
	const hydb_fwd *f;
	float *o;
	const uint16_t *q, *k, *v;
	char *buf;              /* per thread: attn16_v1_bytes */
	size_t seq, width, d, heads;
	float scale;
	int causal;
	struct attn_clock *clk; /* hydb_bf16_timing, else NULL */
};

static size_t attn16_v1_bytes(size_t seq, size_t d)
{
	return round64(3 * seq * d * 2 + seq * seq * 6 + seq * d * 4);
}

static void attn16_v1_task(void *p, size_t task, size_t thread)
{
	const struct attn16_v1_ctx *c = p;
	size_t s = task / c->heads, h = task % c->heads, seq = c->seq, d = c->d;
	size_t off = s * seq * c->width + h * d;
	char *b = c->buf + thread * attn16_v1_bytes(seq, d);
	uint16_t *qh = (uint16_t *)b, *kh = qh + seq * d, *vh = kh + seq * d;
	float *sc = (float *)(vh + seq * d);
	uint16_t *pb = (uint16_t *)(sc + seq * seq);
	float *oh = (float *)(pb + seq * seq);
	head_copy(qh, c->q + off, seq, d, c->width);
	head_copy(kh, c->k + off, seq, d, c->width);
	head_copy(vh, c->v + off, seq, d, c->width);
	attn_matmul(c->clk, c->f, thread, sc, c->scale, qh, kh, seq, d, seq, 1,
		    0);
	for (size_t r = 0; r < seq; r++)
		softmax_row(sc + r * seq, c->causal ? r + 1 : seq, seq);
	hydb_bf16_round(pb, sc, seq * seq);
	attn_matmul(c->clk, c->f, thread, oh, 1.0f, pb, vh, seq, seq, d, 0, 0);
	for (size_t t = 0; t < seq; t++)
		memcpy(c->o + off + t * c->width, oh + t * d, d * sizeof *oh);
}

static void attention_bf16_v1(const hydb_fwd *f, float *o, const uint16_t *q,
			      const uint16_t *k, const uint16_t *v,
			      size_t n_seq, size_t seq, size_t width,
			      size_t heads, int causal)
{
	size_t threads = hydb_pool_threads(pool_of(f)), d = width / heads;
	struct attn_clock clk;
	memset(&clk, 0, sizeof clk);
	struct attn16_v1_ctx c = {f, o, q, k, v, NULL, seq, width, d, heads,
				  (float)(1.0 / sqrt((double)d)), causal,
				  hydb_bf16_timing ? &clk : NULL};
	c.buf = hydb_alloc_array(threads, attn16_v1_bytes(seq, d),
				 "attention blocks");
	if (!c.buf) {
		hydb_bf16_run_fail(f->bf16, HYDB_ENOMEM);
		return;
	}
	attn_run(f, n_seq * heads, seq * seq * d >= ATTN_PARALLEL_MIN,
		 attn16_v1_task, &c, c.clk);
	free(c.buf);
}

static void block_forward_bf16_v1(const hydb_fwd *f, const hydb_tower *t,
				  const hydb_layer_w *b, float *x,
				  size_t n_seq, size_t seq, int causal,
				  float *scratch)
{
	size_t n = n_seq * seq, w = t->width;
	struct bf16_scratch s = bf16_scratch_of(t, scratch, n);
	uint16_t *mid = (uint16_t *)s.q;

	hydb_layer_norm(f, s.h, x, n, w, b->ln1_w, b->ln1_b, t->ln_eps);
	round_bf16(f, s.xb, s.h, n, w);
	bf16_linear(f, s.q, 1, s.xb, b->q_w, b->q_b, n, w, w, 0, 0);
	bf16_linear(f, s.k, 1, s.xb, b->k_w, b->k_b, n, w, w, 0, 0);
	bf16_linear(f, s.v, 1, s.xb, b->v_w, b->v_b, n, w, w, 0, 0);
	attention_bf16_v1(f, s.o, (const uint16_t *)s.q, (const uint16_t *)s.k,
			  (const uint16_t *)s.v, n_seq, seq, w, t->heads,
			  causal);
	round_bf16(f, s.xb, s.o, n, w);
	bf16_linear(f, x, 0, s.xb, b->o_w, NULL, n, w, w, 0, 1);
	bias_layer_norm(f, s.h, x, b->o_b, n, w, b->ln2_w, b->ln2_b,
			t->ln_eps);
	round_bf16(f, s.xb, s.h, n, w);
	bf16_linear(f, mid, 1, s.xb, b->fc1_w, b->fc1_b, n, w, t->mlp, 1, 0);
	bf16_linear(f, x, 0, mid, b->fc2_w, b->fc2_b, n, t->mlp, w, 0, 1);
}

/* ---- the bf16 block ------------------------------------------------------ */

/* q, k and v (bfloat16) from xb: one step, or three with
 * HYDB_FWD_QKV_STEPS. */
static void bf16_qkv(const hydb_fwd *f, uint16_t *q, uint16_t *k,
		     uint16_t *v, const uint16_t *xb, const hydb_layer_w *b,
		     size_t n, size_t w)
{
	hydb_bf16_op op[3] = {
		{.y = q, .x = xb, .w = b->q_w, .bias = b->q_b, .n = n,
		 .in = w, .out = w, .y_bf16 = 1},
		{.y = k, .x = xb, .w = b->k_w, .bias = b->k_b, .n = n,
		 .in = w, .out = w, .y_bf16 = 1},
		{.y = v, .x = xb, .w = b->v_w, .bias = b->v_b, .n = n,
		 .in = w, .out = w, .y_bf16 = 1},
	};
	if (!(f->legacy & HYDB_FWD_QKV_STEPS)) {
		bf16_linears(f, op, 3);
		return;
	}
	for (int i = 0; i < 3; i++)
		bf16_linear_then(f, &op[i], NULL);
}

/* hydb_layer_forward on the bf16 engine: the same steps, each linear
 * layer one matmul with its bias, GELU or residual fused (out_proj's bias
 * too), q/k/v and fc1 writing the bfloat16 inputs of what follows
 * directly, and so do both LayerNorms and attention: no float32 copy of a
 * matmul's input is made and then rounded. The LayerNorms run in the
 * blocks of the matmuls before them (out_proj's, and fc2's for the next
 * block), on rows still in cache, where the blocks are whole rows. */
static void block_forward_bf16(const hydb_fwd *f, const hydb_tower *t,
			       const hydb_layer_w *b, float *x, size_t n_seq,
			       size_t seq, int causal, float *scratch)
{
	if (f->legacy & HYDB_FWD_BF16_PASSES) {
		block_forward_bf16_v1(f, t, b, x, n_seq, seq, causal, scratch);
		return;
	}
	size_t n = n_seq * seq, w = t->width;
	struct bf16_scratch s = bf16_scratch_of(t, scratch, n);
	uint16_t *q = (uint16_t *)s.q, *k = (uint16_t *)s.k;
	uint16_t *v = (uint16_t *)s.v, *mid = q;
	const hydb_layer_w *next = b + 1 < t->blocks + t->layers ? b + 1 : NULL;
	struct ln_ctx ln2 = {NULL, s.xb, x, b->ln2_w, b->ln2_b, NULL, w,
			     t->ln_eps, ln_one_chain(f)};
	struct ln_ctx ln1 = {NULL, s.xb, x, next ? next->ln1_w : NULL,
			     next ? next->ln1_b : NULL, NULL, w, t->ln_eps,
			     ln_one_chain(f)};

	/* The blocks after a tower's first find their LayerNorm in xb, made
	 * by the previous block's last matmul. */
	if (b == t->blocks)
		hydb_layer_norm_bf16(f, s.xb, x, n, w, b->ln1_w, b->ln1_b,
				     t->ln_eps);
	bf16_qkv(f, q, k, v, s.xb, b, n, w);
	hydb_attention_bf16(f, s.xb, q, k, v, n_seq, seq, w, t->heads, causal,
			    s.attn);
	hydb_bf16_op o = {.y = x, .x = s.xb, .w = b->o_w, .bias = b->o_b,
			  .n = n, .in = w, .out = w, .accumulate = 1};
	bf16_linear_then(f, &o, &ln2);
	bf16_linear(f, mid, 1, s.xb, b->fc1_w, b->fc1_b, n, w, t->mlp, 1, 0);
	hydb_bf16_op fc2 = {.y = x, .x = mid, .w = b->fc2_w, .bias = b->fc2_b,
			    .n = n, .in = t->mlp, .out = w, .accumulate = 1};
	bf16_linear_then(f, &fc2, next ? &ln1 : NULL);
}

void hydb_layer_forward(const hydb_fwd *f, const hydb_tower *t,
			const hydb_layer_w *b, float *x, size_t n_seq,
			size_t seq, int causal, float *scratch)
{
	if (f && f->bf16) {
		block_forward_bf16(f, t, b, x, n_seq, seq, causal, scratch);
		return;
	}
	size_t n = n_seq * seq, w = t->width;
	float *h = scratch;
	float *q = h + n * w, *k = q + n * w, *v = k + n * w, *o = v + n * w;
	float *scores = h + n * scratch_per_row(t);

	hydb_layer_norm(f, h, x, n, w, b->ln1_w, b->ln1_b, t->ln_eps);
	struct lin qkv[3] = {
		lin_make(q, h, b->q_w, b->q_b, n, w, w, 0.0f, POST_BIAS),
		lin_make(k, h, b->k_w, b->k_b, n, w, w, 0.0f, POST_BIAS),
		lin_make(v, h, b->v_w, b->v_b, n, w, w, 0.0f, POST_BIAS),
	};
	run_linears(f, qkv, 3);
	attention(f, o, q, k, v, scores, n_seq, seq, w, t->heads, causal);
	/* out_proj's bias joins the LayerNorm pass that follows. */
	struct lin out = lin_make(x, o, b->o_w, NULL, n, w, w, 1.0f, POST_NONE);
	run_linears(f, &out, 1);
	bias_layer_norm(f, h, x, b->o_b, n, w, b->ln2_w, b->ln2_b, t->ln_eps);
	float *mid = q;
	struct lin fc1 = lin_make(mid, h, b->fc1_w, b->fc1_b, n, w, t->mlp,
				  0.0f, POST_GELU);
	run_linears(f, &fc1, 1);
	struct lin fc2 = lin_make(x, mid, b->fc2_w, b->fc2_b, n, t->mlp, w,
				  1.0f, POST_BIAS);
	run_linears(f, &fc2, 1);
}

/* ---- scratch kept between passes ---------------------------------------- */

/* A fresh block of tens of MB (an image batch's scratch) is mapped by
 * malloc and its pages faulted in and cleared by the kernel as the pass
 * first writes them, ~2% of a batch's time; a kept block's are already
 * there. Larger blocks (batches of dozens) are not kept, so a process
 * that once ran one does not hold it for good. */
#define HYDB_SCRATCH_KEEP_MAX ((size_t)256 << 20)

static int scratch_kept(const hydb_fwd *f)
{
	return !(f->legacy & HYDB_FWD_SCRATCH_PER_PASS);
}

int hydb_scratch_take(hydb_scratch *s, const hydb_fwd *f, hydb_encoder *e,
		      size_t bytes, const char *what)
{
	s->p = NULL;
	s->bytes = 0;
	if (scratch_kept(f)) {
		pthread_mutex_lock(&e->scratch_lock);
		if (e->scratch && e->scratch_bytes >= bytes) {
			s->p = e->scratch, s->bytes = e->scratch_bytes;
			e->scratch = NULL, e->scratch_bytes = 0;
		}
		pthread_mutex_unlock(&e->scratch_lock);
		if (s->p)
			return HYDB_OK;
	}
	s->p = aligned_alloc(64, round64(bytes ? bytes : 1));
	RETURN_ERROR_IF(!s->p, HYDB_ENOMEM, "%s: cannot allocate %zu bytes",
			what, bytes);
	s->bytes = round64(bytes ? bytes : 1);
	return HYDB_OK;
}

void hydb_scratch_give(const hydb_fwd *f, hydb_encoder *e, hydb_scratch *s)
{
	void *drop = s->p;
	if (scratch_kept(f) && s->bytes <= HYDB_SCRATCH_KEEP_MAX) {
		pthread_mutex_lock(&e->scratch_lock);
		if (s->bytes > e->scratch_bytes) {
			drop = e->scratch;
			e->scratch = s->p, e->scratch_bytes = s->bytes;
		}
		pthread_mutex_unlock(&e->scratch_lock);
	}
	free(drop);
	s->p = NULL;
	s->bytes = 0;
}

/* ---- resolving tensors ------------------------------------------------- */

struct resolver {
	const struct hydb_model *m;
	int rc;
};

/* Look up name (printf-style) with the given shape; the first failure is
 * kept and later lookups are skipped. */
static const float *need(struct resolver *r, int ndim, const int64_t *shape,
			 const char *fmt, ...) HYDB_PRINTF(4, 5);

static const float *need(struct resolver *r, int ndim, const int64_t *shape,
			 const char *fmt, ...)
{
	char name[256];
	va_list ap;
	if (r->rc < 0)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	const float *p = hydb_model_tensor(r->m, name, ndim, shape);
	if (!p)
		r->rc = HYDB_EMODEL;
	return p;
}

static const float *vec(struct resolver *r, size_t n, const char *pfx,
			const char *what)
{
	int64_t s[1] = {(int64_t)n};
	return need(r, 1, s, "%s.%s", pfx, what);
}

static const float *mat(struct resolver *r, size_t rows, size_t cols,
			const char *pfx, const char *what)
{
	int64_t s[2] = {(int64_t)rows, (int64_t)cols};
	return need(r, 2, s, "%s.%s", pfx, what);
}

/* An nn.Linear (weight [out, in] and bias) or LayerNorm (in = 0) pair. */
static void pair(struct resolver *r, const float **w, const float **b,
		 size_t out, size_t in, const char *pfx, const char *mod)
{
	char name[192];
	snprintf(name, sizeof name, "%s.%s", pfx, mod);
	*w = in ? mat(r, out, in, name, "weight") : vec(r, out, name, "weight");
	*b = vec(r, out, name, "bias");
}

static void resolve_block(struct resolver *r, hydb_layer_w *b,
			  const hydb_tower *t, const char *tower, size_t i)
{
	char p[128];
	size_t w = t->width, f = t->mlp;
	snprintf(p, sizeof p, "%s.encoder.layers.%zu", tower, i);
	pair(r, &b->ln1_w, &b->ln1_b, w, 0, p, "layer_norm1");
	pair(r, &b->ln2_w, &b->ln2_b, w, 0, p, "layer_norm2");
	pair(r, &b->q_w, &b->q_b, w, w, p, "self_attn.q_proj");
	pair(r, &b->k_w, &b->k_b, w, w, p, "self_attn.k_proj");
	pair(r, &b->v_w, &b->v_b, w, w, p, "self_attn.v_proj");
	pair(r, &b->o_w, &b->o_b, w, w, p, "self_attn.out_proj");
	pair(r, &b->fc1_w, &b->fc1_b, f, w, p, "mlp.fc1");
	pair(r, &b->fc2_w, &b->fc2_b, w, f, p, "mlp.fc2");
}

static int tower_init(struct resolver *r, hydb_tower *t, const char *name,
		      int width, int layers, int heads, int mlp, double eps)
{
	RETURN_ERROR_IF(width <= 0 || layers <= 0 || heads <= 0 || mlp <= 0 ||
			width % heads, HYDB_EMODEL,
			"%s: config width %d, layers %d, heads %d, mlp %d "
			"invalid", name, width, layers, heads, mlp);
	t->width = (size_t)width;
	t->layers = (size_t)layers;
	t->heads = (size_t)heads;
	t->mlp = (size_t)mlp;
	t->ln_eps = eps > 0 ? eps : 1e-5;
	t->blocks = calloc(t->layers, sizeof *t->blocks);
	RETURN_ERROR_IF(!t->blocks, HYDB_ENOMEM, "%s: cannot allocate %d layers",
			name, layers);
	for (size_t i = 0; i < t->layers; i++)
		resolve_block(r, &t->blocks[i], t, name, i);
	return r->rc;
}

static int resolve_vision(struct resolver *r, hydb_encoder *e,
			  const hydb_model_config *c)
{
	const char *v = "vision_model";
	FORWARD_IF_ERROR(tower_init(r, &e->vision, v, c->vision_width,
				    c->vision_layers, c->vision_heads,
				    c->vision_mlp, c->ln_eps));
	RETURN_ERROR_IF(c->patch_size <= 0 || c->image_size <= 0 ||
			c->image_size % c->patch_size, HYDB_EMODEL,
			"model config: image_size %d not a multiple of "
			"patch_size %d", c->image_size, c->patch_size);
	size_t w = e->vision.width;
	e->patch = (size_t)c->patch_size;
	e->grid = (size_t)(c->image_size / c->patch_size);
	e->n_pos = e->grid * e->grid + 1;
	int64_t pw[4] = {(int64_t)w, 3, (int64_t)e->patch, (int64_t)e->patch};
	e->patch_w = need(r, 4, pw, "%s.embeddings.patch_embedding.weight", v);
	if (r->rc == 0) {
		int64_t pb[1] = {(int64_t)w};
		e->patch_b = hydb_model_tensor_opt(r->m,
			"vision_model.embeddings.patch_embedding.bias", 1, pb);
	}
	e->class_emb = vec(r, w, "vision_model.embeddings", "class_embedding");
	e->vis_pos = mat(r, e->n_pos, w, "vision_model.embeddings",
			 "position_embedding.weight");
	pair(r, &e->pre_ln_w, &e->pre_ln_b, w, 0, v, "pre_layrnorm");
	pair(r, &e->vision.final_ln_w, &e->vision.final_ln_b, w, 0, v,
	     "post_layernorm");
	e->vision.proj = mat(r, e->embed_dim, w, "visual_projection", "weight");
	return r->rc;
}

static int resolve_text(struct resolver *r, hydb_encoder *e,
			const hydb_model_config *c)
{
	const char *t = "text_model";
	FORWARD_IF_ERROR(tower_init(r, &e->text, t, c->text_width,
				    c->text_layers, c->text_heads, c->text_mlp,
				    c->ln_eps));
	RETURN_ERROR_IF(c->vocab_size <= 0 || c->context_length <= 0 ||
			c->eos_id < 0 || c->eos_id >= c->vocab_size,
			HYDB_EMODEL, "model config: vocab_size %d, "
			"context_length %d, eos_id %d invalid", c->vocab_size,
			c->context_length, c->eos_id);
	size_t w = e->text.width;
	e->vocab = (size_t)c->vocab_size;
	e->context = (size_t)c->context_length;
	e->tok_emb = mat(r, e->vocab, w, "text_model.embeddings",
			 "token_embedding.weight");
	e->txt_pos = mat(r, e->context, w, "text_model.embeddings",
			 "position_embedding.weight");
	pair(r, &e->text.final_ln_w, &e->text.final_ln_b, w, 0, t,
	     "final_layer_norm");
	e->text.proj = mat(r, e->embed_dim, w, "text_projection", "weight");
	return r->rc;
}

/* ---- the bf16 engine's weights ----------------------------------------- */

/* The float32 copy of a packed weight is not read again: give its pages
 * back (the map is private and read-only, so a later read would fault them
 * in from the file again, never see other data). Weights converted at load
 * live outside the map and stay. */
static void drop_pages(const struct hydb_model *m, const float *w,
		       size_t floats)
{
	uintptr_t a = (uintptr_t)w, z = a + floats * sizeof *w;
	uintptr_t base = (uintptr_t)m->map, pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	if (a < base || z > base + m->map_size)
		return;
	a = (a + pg - 1) & ~(pg - 1);
	z &= ~(pg - 1);
	if (z > a)
		madvise((void *)a, z - a, MADV_DONTNEED);
}

static int pack_one(hydb_encoder *e, const struct hydb_model *m,
		    const float *w, size_t out, size_t in, size_t slices)
{
	FORWARD_IF_ERROR(hydb_bf16_pack(e->bf16, w, out, in, slices));
	drop_pages(m, w, out * in);
	return HYDB_OK;
}

/* A tower's weights; slices > 1 for the text tower, whose few rows cannot
 * be shared out among the threads, and for the final projections (one row
 * an image or caption). */
static int pack_tower(hydb_encoder *e, const struct hydb_model *m,
		      const hydb_tower *t, size_t slices)
{
	size_t w = t->width, f = t->mlp;
	size_t threads = hydb_pool_default_threads();
	for (size_t i = 0; i < t->layers; i++) {
		const hydb_layer_w *b = &t->blocks[i];
		FORWARD_IF_ERROR(pack_one(e, m, b->q_w, w, w, slices));
		FORWARD_IF_ERROR(pack_one(e, m, b->k_w, w, w, slices));
		FORWARD_IF_ERROR(pack_one(e, m, b->v_w, w, w, slices));
		FORWARD_IF_ERROR(pack_one(e, m, b->o_w, w, w, slices));
		FORWARD_IF_ERROR(pack_one(e, m, b->fc1_w, f, w, slices));
		FORWARD_IF_ERROR(pack_one(e, m, b->fc2_w, w, f, slices));
	}
	return pack_one(e, m, t->proj, e->embed_dim, w, threads);
}

/* Every weight the bf16 passes multiply by, packed once. */
static int bf16_setup(hydb_encoder *e, const struct hydb_model *m)
{
	FORWARD_IF_ERROR(hydb_bf16_new(&e->bf16));
	FORWARD_IF_ERROR(pack_one(e, m, e->patch_w, e->vision.width,
				  3 * e->patch * e->patch, 1));
	FORWARD_IF_ERROR(pack_tower(e, m, &e->vision, 1));
	return pack_tower(e, m, &e->text, hydb_pool_default_threads());
}

void hydb_encoder_release(void *enc)
{
	hydb_encoder *e = enc;
	if (!e)
		return;
	hydb_bf16_free(e->bf16);
	free(e->scratch);
	pthread_mutex_destroy(&e->scratch_lock);
	free(e->vision.blocks);
	free(e->text.blocks);
	free(e);
}

static int encoder_create(hydb_encoder **out, const struct hydb_model *m)
{
	const hydb_model_config *c = &m->cfg;
	RETURN_ERROR_IF(c->embed_dim <= 0, HYDB_EMODEL,
			"model config: embed_dim %d invalid", c->embed_dim);
	hydb_encoder *e = calloc(1, sizeof *e);
	RETURN_ERROR_IF(!e, HYDB_ENOMEM, "encoder: out of memory");
	e->embed_dim = (size_t)c->embed_dim;
	pthread_mutex_init(&e->scratch_lock, NULL);
	struct resolver r = {m, 0};
	int rc = resolve_vision(&r, e, c);
	if (rc == 0)
		rc = resolve_text(&r, e, c);
	if (rc == 0 && m->precision == HYDB_PRECISION_BF16)
		rc = bf16_setup(e, m);
	if (rc < 0) {
		hydb_encoder_release(e);
		return rc;
	}
	*out = e;
	return HYDB_OK;
}

static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;

int hydb_encoder_get(hydb_encoder **out, struct hydb_model *m)
{
	hydb_encoder *e = __atomic_load_n((hydb_encoder **)&m->enc,
					  __ATOMIC_ACQUIRE);
	if (e) {
		*out = e;
		return HYDB_OK;
	}
	FORWARD_IF_ERROR(hydb_blas_init());
	pthread_mutex_lock(&create_lock);
	int rc = HYDB_OK;
	e = m->enc;
	if (!e) {
		rc = encoder_create(&e, m);
		if (rc == 0)
			__atomic_store_n((hydb_encoder **)&m->enc, e,
					 __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&create_lock);
	*out = e;
	return rc;
}
