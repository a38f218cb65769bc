/*
 * lorentz_kernel.c - Lorentz ranking-key kernels, dispatched on the CPU's flags.
 *
 * A kernel makes one pass over both vectors and returns two sums over
 * d = y - x: |d|^2 and x.d; hydb_key_* turn them into the key with the
 * query's |x|^2. Small differences are summed directly, so nothing large
 * cancels. The float32 kernels widen every float to double before
 * multiplying; the half-precision walk kernel sums float32 products over
 * 64 lanes and then in double (it only steers the beam).
 */
#include "base/lorentz_kernel.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HYDB_X86 1
#endif

typedef void (*sums_f32_fn)(const float *x, const float *y, size_t n,
			    double s[2]);
typedef void (*sums_f16_fn)(const float *x, const uint16_t *y, size_t n,
			    double s[2]);
/* The same sums and |y|^2, all in float64, for far queries. */
typedef void (*sums3_f32_fn)(const float *x, const float *y, size_t n,
			     double s[3]);
typedef void (*sums3_f16_fn)(const float *x, const uint16_t *y, size_t n,
			     double s[3]);

/* ---- half precision ---------------------------------------------------- */

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static uint16_t f32_to_f16(float f)
{
	uint32_t u = f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	uint32_t a = u & 0x7fffffffu;
	if (a >= 0x7f800000u) /* inf stays inf, NaN stays quiet NaN */
		return sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0);
	if (a >= 0x477ff000u) /* 65520 and up round to infinity */
		return sign | 0x7c00u;
	if (a < 0x38800000u) /* half subnormal: scale so units are 2^-24 */
		return sign | (uint16_t)lrintf(bits_f32(a) * 16777216.0f);
	/* Rebias the exponent and round the dropped 13 bits to nearest even. */
	a += 0xc8000fffu + ((a >> 13) & 1u);
	return sign | (uint16_t)(a >> 13);
}

float hydb_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
	if (e == 0) {
		float v = (float)m * (1.0f / 16777216.0f);
		return sign ? -v : v;
	}
	if (e == 31)
		return bits_f32(sign | 0x7f800000u | (m << 13));
	return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

#ifdef HYDB_X86
static void widen_f16c(float *out, const uint16_t *in, size_t n);
#endif

/* Exact either way: every half is a float. */
void hydb_f16_to_f32_n(float *out, const uint16_t *in, size_t n)
{
#ifdef HYDB_X86
	if (hydb_kernel_level() >= HYDB_KERNEL_AVX2) {
		widen_f16c(out, in, n);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		out[i] = hydb_f16_to_f32(in[i]);
}

void hydb_f32_to_f16(uint16_t *out, const float *in, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = f32_to_f16(in[i]);
}

int hydb_half_fits(const float *y, size_t dim, double c)
{
	double yy = 0;
	for (size_t i = 0; i < dim; i++) {
		/* NaN fails the comparison too */
		if (!(fabsf(y[i]) < 65504.0f))
			return 0;
		yy += (double)y[i] * y[i];
	}
	return c * yy <= HYDB_HALF_MAX_NORM * HYDB_HALF_MAX_NORM;
}

/* ---- scalar ------------------------------------------------------------ */

static void sums_f32_scalar(const float *x, const float *y, size_t n,
			    double s[2])
{
	double dd = 0, xd = 0;
	for (size_t i = 0; i < n; i++) {
		double a = x[i], d = (double)y[i] - a;
		dd += d * d;
		xd += a * d;
	}
	s[0] = dd, s[1] = xd;
}

static void sums_f16_scalar(const float *x, const uint16_t *y, size_t n,
			    double s[2])
{
	double dd = 0, xd = 0;
	for (size_t i = 0; i < n; i++) {
		double a = x[i], d = (double)hydb_f16_to_f32(y[i]) - a;
		dd += d * d;
		xd += a * d;
	}
	s[0] = dd, s[1] = xd;
}

static void sums3_f32_scalar(const float *x, const float *y, size_t n,
			     double s[3])
{
	double dd = 0, xd = 0, yy = 0;
	for (size_t i = 0; i < n; i++) {
		double a = x[i], b = y[i], d = b - a;
		dd += d * d;
		xd += a * d;
		yy += b * b;
	}
	s[0] = dd, s[1] = xd, s[2] = yy;
}

static void sums3_f16_scalar(const float *x, const uint16_t *y, size_t n,
			     double s[3])
{
	double dd = 0, xd = 0, yy = 0;
	for (size_t i = 0; i < n; i++) {
		double a = x[i], b = hydb_f16_to_f32(y[i]), d = b - a;
		dd += d * d;
		xd += a * d;
		yy += b * b;
	}
	s[0] = dd, s[1] = xd, s[2] = yy;
}

static double norm_scalar(const float *x, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)x[i] * x[i];
	return s;
}

/* s = {|d|^2, x.d} for d = y - x. Then x.y = |x|^2 + x.d,
 * |y|^2 = |x|^2 + 2 x.d + |d|^2 and the wedge |x^y|^2 = |x|^2|d|^2 - (x.d)^2,
 * which only cancels when d is radial, where |d|^2 dominates the key: no
 * large terms are subtracted anywhere. The clamp removes rounding below 0. */
static double key_from_sums(const hydb_kquery *q, const double s[2])
{
	double xy = q->xx + s[1], yy = q->xx + 2 * s[1] + s[0];
	double wedge = q->xx * s[0] - s[1] * s[1];
	if (wedge < 0)
		wedge = 0;
	if (yy < 0)
		yy = 0;
	double y0 = sqrt(q->inv_c + yy);
	return (s[0] + q->c * wedge) / (q->x0 * y0 + xy + q->inv_c);
}

/* The far query's key from {|d|^2, x.d, |y|^2} (lorentz_kernel.h). The wedge
 * |x|^2|v|^2 - (x.v)^2 is the same for v = d and v = y; its rounding is
 * about eps |x|^2 |v|^2, so the shorter one is taken. For an obtuse pair
 * c x0 y0 - 1 = p / (sqrt(1 + p) + 1) with p = c(|x|^2 + |y|^2) +
 * c^2 |x|^2 |y|^2, and -c x.y > 0: nothing cancels. */
static double key_from_sums3(const hydb_kquery *q, const double s[3])
{
	double dd = s[0], xd = s[1], yy = s[2], c = q->c;
	double xy = q->xx + xd;
	if (xy < 0) {
		double p = c * (q->xx + yy) + c * c * q->xx * yy;
		return p / (sqrt(1 + p) + 1) - c * xy;
	}
	double wedge = yy < dd ? q->xx * yy - xy * xy : q->xx * dd - xd * xd;
	if (wedge < 0)
		wedge = 0;
	double y0 = sqrt(q->inv_c + yy);
	return (dd + c * wedge) / (q->x0 * y0 + xy + q->inv_c);
}

static void finish_scalar(const hydb_kquery *q, const double *s0,
			  const double *s1, size_t n, double *out)
{
	for (size_t i = 0; i < n; i++) {
		double s[2] = {s0[i], s1[i]};
		out[i] = key_from_sums(q, s);
	}
}

static void finish3_scalar(const hydb_kquery *q, const double *s0,
			   const double *s1, const double *s2, size_t n,
			   double *out)
{
	for (size_t i = 0; i < n; i++) {
		double s[3] = {s0[i], s1[i], s2[i]};
		out[i] = key_from_sums3(q, s);
	}
}

#ifdef HYDB_X86
/* The float32 and half entry points of one instruction set, with two sums
 * and with three; sums_<isa> is inlined into each with constant flags. */
#define SUMS_ENTRY_POINTS(isa, target)                                      \
	target static void sums_f32_##isa(const float *x, const float *y,   \
					  size_t n, double s[2])            \
	{                                                                   \
		sums_##isa(x, y, 0, 0, n, s);                               \
	}                                                                   \
	target static void sums_f16_##isa(const float *x, const uint16_t *y, \
					  size_t n, double s[2])            \
	{                                                                   \
		sums_##isa(x, y, 1, 0, n, s);                               \
	}                                                                   \
	target static void sums3_f32_##isa(const float *x, const float *y,  \
					   size_t n, double s[3])           \
	{                                                                   \
		sums_##isa(x, y, 0, 1, n, s);                               \
	}                                                                   \
	target static void sums3_f16_##isa(const float *x,                  \
					   const uint16_t *y, size_t n,      \
					   double s[3])                     \
	{                                                                   \
		sums_##isa(x, y, 1, 1, n, s);                               \
	}

#define INLINE_ALWAYS inline __attribute__((always_inline))

/* ---- AVX2 -------------------------------------------------------------- */

/* Component i of a row in float32 or half precision. */
static inline const void *elem(const void *yv, int half, size_t i)
{
	return half ? (const void *)((const uint16_t *)yv + i)
		    : (const void *)((const float *)yv + i);
}

/* The n < 16 components past the last full step, zero-padded into one
 * more step (zeros add nothing to any sum). Handing them to the scalar
 * code instead made a 16-d key (no remainder, but the call) and every
 * key below 16 dimensions four times slower: 11,700 against 51,000
 * queries/s on the recall bench's 16-d tree family. */
static INLINE_ALWAYS void pad16(const float *x, const void *yv, int half,
				size_t n, float xb[16], uint16_t hb[16], float yb[16])
{
	for (size_t k = 0; k < 16; k++) {
		xb[k] = k < n ? x[k] : 0.0f;
		if (half)
			hb[k] = k < n ? ((const uint16_t *)yv)[k] : 0;
		else
			yb[k] = k < n ? ((const float *)yv)[k] : 0.0f;
	}
}

#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))

AVX2_TARGET static inline void acc4(__m256d a, __m256d b, __m256d *dd,
				    __m256d *xd)
{
	__m256d d = _mm256_sub_pd(b, a);
	*dd = _mm256_fmadd_pd(d, d, *dd);
	*xd = _mm256_fmadd_pd(a, d, *xd);
}

AVX2_TARGET static double hsum4(__m256d v)
{
	__m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
	lo = _mm_add_pd(lo, hi);
	return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

/* The running sums of the vector kernels: two chains each, so that the
 * FMA latency does not serialise the loop. */
typedef struct {
	__m256d dd0, xd0, dd1, xd1, yy0, yy1;
} acc_avx2;

/* One step of eight lanes: x and y as float32 (y from half precision when
 * half is set), widened to two double quads each; |y|^2 too when three. */
AVX2_TARGET static INLINE_ALWAYS void step_avx2(const float *x, const void *yv,
						int half, int three, acc_avx2 *a)
{
	__m256 xf = _mm256_loadu_ps(x);
	__m256 yf = half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)yv))
			 : _mm256_loadu_ps((const float *)yv);
	__m256d y0 = _mm256_cvtps_pd(_mm256_castps256_ps128(yf));
	__m256d y1 = _mm256_cvtps_pd(_mm256_extractf128_ps(yf, 1));
	acc4(_mm256_cvtps_pd(_mm256_castps256_ps128(xf)), y0, &a->dd0, &a->xd0);
	acc4(_mm256_cvtps_pd(_mm256_extractf128_ps(xf, 1)), y1, &a->dd1, &a->xd1);
	if (three) {
		a->yy0 = _mm256_fmadd_pd(y0, y0, a->yy0);
		a->yy1 = _mm256_fmadd_pd(y1, y1, a->yy1);
	}
}

AVX2_TARGET static INLINE_ALWAYS void sums_avx2(const float *x, const void *yv,
						int half, int three, size_t n,
						double *s)
{
	__m256d z = _mm256_setzero_pd();
	acc_avx2 a = {z, z, z, z, z, z};
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		step_avx2(x + i, elem(yv, half, i), half, three, &a);
	if (i < n) {
		float xb[16], yb[16];
		uint16_t hb[16];
		pad16(x + i, elem(yv, half, i), half, n - i, xb, hb, yb);
		step_avx2(xb, half ? (const void *)hb : (const void *)yb, half, three, &a);
	}
	s[0] = hsum4(_mm256_add_pd(a.dd0, a.dd1));
	s[1] = hsum4(_mm256_add_pd(a.xd0, a.xd1));
	if (three)
		s[2] = hsum4(_mm256_add_pd(a.yy0, a.yy1));
}

SUMS_ENTRY_POINTS(avx2, AVX2_TARGET)

/* ---- AVX-512 ----------------------------------------------------------- */

#define AVX512_TARGET __attribute__((target("avx512f,avx2,fma,f16c")))

AVX512_TARGET static inline void acc8(__m512d a, __m512d b, __m512d *dd,
				      __m512d *xd)
{
	__m512d d = _mm512_sub_pd(b, a);
	*dd = _mm512_fmadd_pd(d, d, *dd);
	*xd = _mm512_fmadd_pd(a, d, *xd);
}

AVX512_TARGET static inline __m256 load8(const void *yv, int half, size_t i)
{
	if (half)
		return _mm256_cvtph_ps(_mm_loadu_si128(
			(const __m128i *)((const uint16_t *)yv + i)));
	return _mm256_loadu_ps((const float *)yv + i);
}

typedef struct {
	__m512d dd0, xd0, dd1, xd1, yy0, yy1;
} acc_avx512;

/* One step of sixteen lanes in two chains; |y|^2 too when three. */
AVX512_TARGET static INLINE_ALWAYS void step_avx512(const float *x, const void *yv,
						    int half, int three, acc_avx512 *a)
{
	__m512d y0 = _mm512_cvtps_pd(load8(yv, half, 0));
	__m512d y1 = _mm512_cvtps_pd(load8(yv, half, 8));
	acc8(_mm512_cvtps_pd(_mm256_loadu_ps(x)), y0, &a->dd0, &a->xd0);
	acc8(_mm512_cvtps_pd(_mm256_loadu_ps(x + 8)), y1, &a->dd1, &a->xd1);
	if (three) {
		a->yy0 = _mm512_fmadd_pd(y0, y0, a->yy0);
		a->yy1 = _mm512_fmadd_pd(y1, y1, a->yy1);
	}
}

/* 2-7 dimensions: a padded vector step would be mostly zeros, and its
 * three reductions cost more than the products; the scalar form here
 * converts half precision with the F16C instruction, not a call. */
AVX512_TARGET static INLINE_ALWAYS void sums_short(const float *x, const void *yv,
						   int half, int three, size_t n,
						   double *s)
{
	double dd = 0, xd = 0, yy = 0;
	for (size_t k = 0; k < n; k++) {
		double a = x[k], b = half ? (double)_cvtsh_ss(((const uint16_t *)yv)[k])
					: (double)((const float *)yv)[k];
		double d = b - a;
		dd += d * d;
		xd += a * d;
		yy += b * b;
	}
	s[0] = dd, s[1] = xd;
	if (three)
		s[2] = yy;
}

AVX512_TARGET static INLINE_ALWAYS void sums_avx512(const float *x,
						    const void *yv, int half,
						    int three, size_t n,
						    double *s)
{
	if (n < 8) {
		sums_short(x, yv, half, three, n, s);
		return;
	}
	__m512d z = _mm512_setzero_pd();
	acc_avx512 a = {z, z, z, z, z, z};
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		step_avx512(x + i, elem(yv, half, i), half, three, &a);
	if (i < n) {
		float xb[16], yb[16];
		uint16_t hb[16];
		pad16(x + i, elem(yv, half, i), half, n - i, xb, hb, yb);
		step_avx512(xb, half ? (const void *)hb : (const void *)yb, half, three, &a);
	}
	s[0] = _mm512_reduce_add_pd(_mm512_add_pd(a.dd0, a.dd1));
	s[1] = _mm512_reduce_add_pd(_mm512_add_pd(a.xd0, a.xd1));
	if (three)
		s[2] = _mm512_reduce_add_pd(_mm512_add_pd(a.yy0, a.yy1));
}

AVX512_TARGET static double norm_avx512(const float *x, size_t n)
{
	__m512d a = _mm512_setzero_pd(), b = a;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512d u = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
		__m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
		a = _mm512_fmadd_pd(u, u, a);
		b = _mm512_fmadd_pd(v, v, b);
	}
	return _mm512_reduce_add_pd(_mm512_add_pd(a, b)) + norm_scalar(x + i, n - i);
}

/* Eight float32 lanes of each half of v, widened and added to acc. */
AVX512_TARGET static inline __m512d widen_add(__m512d acc, __m512 v)
{
	__m256 lo = _mm512_castps512_ps256(v);
	__m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
	return _mm512_add_pd(acc, _mm512_add_pd(_mm512_cvtps_pd(lo),
						 _mm512_cvtps_pd(hi)));
}

/* The walk's kernel: half-precision points are only steering the beam
 * (final candidates are re-ranked with float32 and float64 sums), so
 * products accumulate in float32 over 64 lanes at a time and then in
 * float64: a third of the instructions of the exact kernel. */
AVX512_TARGET static void sums_f16_avx512_walk(const float *x,
					       const uint16_t *y, size_t n,
					       double s[2])
{
	__m512d dd = _mm512_setzero_pd(), xd = dd;
	size_t i = 0;
	while (i + 16 <= n) {
		__m512 fdd = _mm512_setzero_ps(), fxd = fdd;
		for (size_t e = i + 64 <= n ? i + 64 : i + 16; i < e; i += 16) {
			__m512 a = _mm512_loadu_ps(x + i);
			__m512 b = _mm512_cvtph_ps(
				_mm256_loadu_si256((const __m256i *)(y + i)));
			__m512 d = _mm512_sub_ps(b, a);
			fdd = _mm512_fmadd_ps(d, d, fdd);
			fxd = _mm512_fmadd_ps(a, d, fxd);
		}
		dd = widen_add(dd, fdd);
		xd = widen_add(xd, fxd);
	}
	if (i < n) {
		float xb[16], yb[16];
		uint16_t hb[16];
		pad16(x + i, y + i, 1, n - i, xb, hb, yb);
		__m512 a = _mm512_loadu_ps(xb);
		__m512 b = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)hb));
		__m512 d = _mm512_sub_ps(b, a);
		dd = widen_add(dd, _mm512_mul_ps(d, d));
		xd = widen_add(xd, _mm512_mul_ps(a, d));
	}
	s[0] = _mm512_reduce_add_pd(dd);
	s[1] = _mm512_reduce_add_pd(xd);
}

AVX512_TARGET static void sums_f32_avx512(const float *x, const float *y,
					  size_t n, double s[2])
{
	sums_avx512(x, y, 0, 0, n, s);
}

AVX512_TARGET static void sums3_f32_avx512(const float *x, const float *y,
					   size_t n, double s[3])
{
	sums_avx512(x, y, 0, 1, n, s);
}

AVX512_TARGET static void sums3_f16_avx512(const float *x, const uint16_t *y,
					   size_t n, double s[3])
{
	sums_avx512(x, y, 1, 1, n, s);
}

AVX2_TARGET static void widen_f16c(float *out, const uint16_t *in, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(
						  (const __m128i *)(in + i))));
	for (; i < n; i++)
		out[i] = hydb_f16_to_f32(in[i]);
}

/* key_from_sums on eight candidates at once: a list's square roots and
 * divisions overlap instead of each waiting on the one before. The same
 * operations in the same order as the scalar form. */
AVX512_TARGET static void finish_avx512(const hydb_kquery *q, const double *s0,
					const double *s1, size_t n,
					double *out)
{
	const __m512d xx = _mm512_set1_pd(q->xx), c = _mm512_set1_pd(q->c);
	const __m512d ic = _mm512_set1_pd(q->inv_c), x0 = _mm512_set1_pd(q->x0);
	const __m512d two = _mm512_set1_pd(2.0), zero = _mm512_setzero_pd();
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m512d a = _mm512_loadu_pd(s0 + i), b = _mm512_loadu_pd(s1 + i);
		__m512d xy = _mm512_add_pd(xx, b);
		__m512d yy = _mm512_add_pd(
			_mm512_add_pd(xx, _mm512_mul_pd(two, b)), a);
		__m512d wedge = _mm512_sub_pd(_mm512_mul_pd(xx, a),
					      _mm512_mul_pd(b, b));
		wedge = _mm512_max_pd(wedge, zero);
		yy = _mm512_max_pd(yy, zero);
		__m512d y0 = _mm512_sqrt_pd(_mm512_add_pd(ic, yy));
		__m512d num = _mm512_add_pd(a, _mm512_mul_pd(c, wedge));
		__m512d den = _mm512_add_pd(
			_mm512_add_pd(_mm512_mul_pd(x0, y0), xy), ic);
		_mm512_storeu_pd(out + i, _mm512_div_pd(num, den));
	}
	finish_scalar(q, s0 + i, s1 + i, n - i, out + i);
}

/* key_from_sums3 on 8 lanes, operation for operation (no fused
 * multiply-adds), so every key equals the scalar one: at 2-16 dimensions
 * its two square roots and division per key were a fifth of a far query's
 * time. The obtuse form is computed only when a lane needs it. */
AVX512_TARGET static void finish3_avx512(const hydb_kquery *q,
					 const double *s0, const double *s1,
					 const double *s2, size_t n,
					 double *out)
{
	const __m512d xx = _mm512_set1_pd(q->xx), c = _mm512_set1_pd(q->c);
	const __m512d ic = _mm512_set1_pd(q->inv_c), x0 = _mm512_set1_pd(q->x0);
	const __m512d one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
	const __m512d ccx = _mm512_set1_pd(q->c * q->c * q->xx);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m512d dd = _mm512_loadu_pd(s0 + i), xd = _mm512_loadu_pd(s1 + i);
		__m512d yy = _mm512_loadu_pd(s2 + i);
		__m512d xy = _mm512_add_pd(xx, xd);
		__mmask8 sm = _mm512_cmp_pd_mask(yy, dd, _CMP_LT_OQ);
		__m512d v = _mm512_mask_blend_pd(sm, dd, yy);
		__m512d u = _mm512_mask_blend_pd(sm, xd, xy);
		/* max(0, w) keeps a NaN as the scalar clamp does */
		__m512d wedge = _mm512_max_pd(zero, _mm512_sub_pd(
			_mm512_mul_pd(xx, v), _mm512_mul_pd(u, u)));
		__m512d y0 = _mm512_sqrt_pd(_mm512_add_pd(ic, yy));
		__m512d num = _mm512_add_pd(dd, _mm512_mul_pd(c, wedge));
		__m512d den = _mm512_add_pd(
			_mm512_add_pd(_mm512_mul_pd(x0, y0), xy), ic);
		__m512d r = _mm512_div_pd(num, den);
		__mmask8 ob = _mm512_cmp_pd_mask(xy, zero, _CMP_LT_OQ);
		if (ob) {
			__m512d p = _mm512_add_pd(
				_mm512_mul_pd(c, _mm512_add_pd(xx, yy)),
				_mm512_mul_pd(ccx, yy));
			__m512d o = _mm512_sub_pd(
				_mm512_div_pd(p, _mm512_add_pd(_mm512_sqrt_pd(
					_mm512_add_pd(one, p)), one)),
				_mm512_mul_pd(c, xy));
			r = _mm512_mask_blend_pd(ob, r, o);
		}
		_mm512_storeu_pd(out + i, r);
	}
	finish3_scalar(q, s0 + i, s1 + i, s2 + i, n - i, out + i);
}
#endif /* HYDB_X86 */

/* ---- dispatch ---------------------------------------------------------- */

static const struct kernel_impl {
	const char *name;
	sums_f32_fn f32;
	sums_f16_fn f16;
	sums3_f32_fn f32x;
	sums3_f16_fn f16x;
	double (*norm)(const float *x, size_t n);
	void (*finish)(const hydb_kquery *q, const double *s0,
		       const double *s1, size_t n, double *out);
	void (*finish3)(const hydb_kquery *q, const double *s0,
			const double *s1, const double *s2, size_t n,
			double *out);
} impls[] = {
	{"scalar", sums_f32_scalar, sums_f16_scalar, sums3_f32_scalar,
	 sums3_f16_scalar, norm_scalar, finish_scalar, finish3_scalar},
#ifdef HYDB_X86
	{"avx2", sums_f32_avx2, sums_f16_avx2, sums3_f32_avx2, sums3_f16_avx2,
	 norm_scalar, finish_scalar, finish3_scalar},
	{"avx512", sums_f32_avx512, sums_f16_avx512_walk, sums3_f32_avx512,
	 sums3_f16_avx512, norm_avx512, finish_avx512, finish3_avx512},
#endif
};

#define N_IMPLS ((int)(sizeof impls / sizeof impls[0]))

static _Atomic int active_level = -1;

static int best_level(void)
{
#ifdef HYDB_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && N_IMPLS > HYDB_KERNEL_AVX512)
		return HYDB_KERNEL_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return HYDB_KERNEL_AVX2;
#endif
	return HYDB_KERNEL_SCALAR;
}

int hydb_kernel_set_level(int level)
{
	int best = best_level();
	if (level < 0 || level > best)
		level = best;
	atomic_store(&active_level, level);
	return level;
}

int hydb_kernel_level(void)
{
	int l = atomic_load_explicit(&active_level, memory_order_relaxed);
	return l >= 0 ? l : hydb_kernel_set_level(HYDB_KERNEL_BEST);
}

const char *hydb_kernel_name(int level)
{
	return level >= 0 && level < N_IMPLS ? impls[level].name : "unknown";
}

/* ---- keys -------------------------------------------------------------- */

void hydb_kquery_init(hydb_kquery *q, const float *x, size_t dim, double c)
{
	assert(x && dim > 0 && c > 0);
	double xx = impls[hydb_kernel_level()].norm(x, dim);
	q->x = x;
	q->dim = dim;
	q->c = c;
	q->inv_c = 1.0 / c;
	q->xx = xx;
	q->x0 = sqrt(q->inv_c + xx);
	q->far = c * xx > HYDB_HALF_MAX_NORM * HYDB_HALF_MAX_NORM;
}

double hydb_key_f32(const hydb_kquery *q, const float *y)
{
	double s[3];
	const struct kernel_impl *k = &impls[hydb_kernel_level()];
	if (q->far) {
		k->f32x(q->x, y, q->dim, s);
		return key_from_sums3(q, s);
	}
	k->f32(q->x, y, q->dim, s);
	return key_from_sums(q, s);
}

double hydb_key_f16(const hydb_kquery *q, const uint16_t *y)
{
	double s[3];
	const struct kernel_impl *k = &impls[hydb_kernel_level()];
	if (q->far) {
		k->f16x(q->x, y, q->dim, s);
		return key_from_sums3(q, s);
	}
	k->f16(q->x, y, q->dim, s);
	return key_from_sums(q, s);
}

double hydb_kernel_key(const float *x, const float *y, size_t dim, double c)
{
	hydb_kquery q;
	hydb_kquery_init(&q, x, dim, c);
	return hydb_key_f32(&q, y);
}

/* ---- batches ----------------------------------------------------------- */

static inline void prefetch_row(const void *p, size_t bytes)
{
#ifdef HYDB_X86
	const char *c = p;
	for (size_t o = 0; o < bytes; o += 64)
		_mm_prefetch(c + o, _MM_HINT_T0);
#else
	(void)p, (void)bytes;
#endif
}

#define BATCH 32

/* Each point is fetched while the one before it is measured. */
static void keys_batch(const hydb_kquery *q, const void *const *y, int half,
		       size_t n, double *keys)
{
	const struct kernel_impl *k = &impls[hydb_kernel_level()];
	size_t row = q->dim * (half ? sizeof(uint16_t) : sizeof(float));
	double s0[BATCH], s1[BATCH], s2[BATCH], s[3] = {0, 0, 0};
	if (n)
		prefetch_row(y[0], row);
	for (size_t b = 0; b < n; b += BATCH) {
		size_t m = n - b < BATCH ? n - b : BATCH;
		for (size_t i = 0; i < m; i++) {
			if (b + i + 1 < n)
				prefetch_row(y[b + i + 1], row);
			if (q->far) {
				if (half)
					k->f16x(q->x, y[b + i], q->dim, s);
				else
					k->f32x(q->x, y[b + i], q->dim, s);
			} else if (half) {
				k->f16(q->x, y[b + i], q->dim, s);
			} else {
				k->f32(q->x, y[b + i], q->dim, s);
			}
			s0[i] = s[0];
			s1[i] = s[1];
			s2[i] = s[2];
		}
		if (q->far)
			k->finish3(q, s0, s1, s2, m, keys + b);
		else
			k->finish(q, s0, s1, m, keys + b);
	}
}

void hydb_keys_f16(const hydb_kquery *q, const uint16_t *const *y, size_t n,
		   double *keys)
{
	keys_batch(q, (const void *const *)y, 1, n, keys);
}

void hydb_keys_f32(const hydb_kquery *q, const float *const *y, size_t n,
		   double *keys)
{
	keys_batch(q, (const void *const *)y, 0, n, keys);
}
