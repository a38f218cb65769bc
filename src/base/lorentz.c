/*
 * lorentz.c - Lorentz-model geometry without cancellation (see lorentz.h for
 * the formulas and their error behaviour).
 *
 * Conventions follow MERU/HySAC (space components, curvature -c), with two
 * deliberate differences that only remove rounding artefacts: distances are
 * not floored at acosh(1 + 1e-8) (that would make every pair closer than
 * 1.4e-4 look equally far), and log_map0 uses asinh(sqrt(c)|x|), equal to
 * MERU's acosh(sqrt(1 + c|x|^2)) but accurate near the origin.
 */
#include "base/base.h"
#include "base/lorentz.h"
#include "base/lorentz_kernel.h"

#include <math.h>
#include <string.h>

/* Clamps of MERU/HySAC's reference code. */
#define HYDB_GEO_EPS 1e-8
#define HYDB_CONE_K 0.1
#define HYDB_LANES 4

/* A double-double number hi + lo, |lo| <= ulp(hi)/2 after normalisation. */
typedef struct {
	double hi, lo;
} hydb_dd;

/* Error-free addition: hi + lo == a + b exactly (Knuth's TwoSum). */
static inline hydb_dd dd_two_sum(double a, double b)
{
	double s = a + b;
	double bb = s - a;
	hydb_dd r = { s, (a - (s - bb)) + (b - bb) };
	return r;
}

static inline hydb_dd dd_normalise(double hi, double lo)
{
	double s = hi + lo;
	hydb_dd r = { s, lo - (s - hi) };
	return r;
}

/* Accumulate t into s, keeping every rounding error in s->lo. */
static inline void dd_acc(hydb_dd *s, double t)
{
	hydb_dd r = dd_two_sum(s->hi, t);
	s->hi = r.hi;
	s->lo += r.lo;
}

static inline hydb_dd dd_add(hydb_dd a, hydb_dd b)
{
	hydb_dd s = dd_two_sum(a.hi, b.hi);
	return dd_normalise(s.hi, s.lo + a.lo + b.lo);
}

static inline hydb_dd dd_neg(hydb_dd a)
{
	hydb_dd r = { -a.hi, -a.lo };
	return r;
}

static inline hydb_dd dd_mul(hydb_dd a, hydb_dd b)
{
	double p = a.hi * b.hi;
	double e = fma(a.hi, b.hi, -p);
	return dd_normalise(p, e + (a.hi * b.lo + a.lo * b.hi));
}

/* Norms and dot product of a pair, the expensive part of every pair
 * function: double-double, in independent lanes so that the dependent
 * TwoSum chains overlap. u = |x - y|^2 has no cancellation and stays
 * double. */
typedef struct {
	hydb_dd xx, yy, xy;
	double u;
} hydb_pair_sums;

/* Fold lane sums into one, lane 0 first: the same order at every width. */
static void pair_sums_fold(hydb_pair_sums *out, const hydb_dd *xx, const hydb_dd *yy,
			   const hydb_dd *xy, const double *u, int lanes)
{
	out->xx = dd_normalise(xx[0].hi, xx[0].lo);
	out->yy = dd_normalise(yy[0].hi, yy[0].lo);
	out->xy = dd_normalise(xy[0].hi, xy[0].lo);
	out->u = u[0];
	for (int l = 1; l < lanes; l++) {
		out->xx = dd_add(out->xx, xx[l]);
		out->yy = dd_add(out->yy, yy[l]);
		out->xy = dd_add(out->xy, xy[l]);
		out->u += u[l];
	}
}

static void pair_sums_scalar(hydb_pair_sums *out, const float *x, const float *y,
			     size_t dim)
{
	hydb_dd xx[HYDB_LANES] = { { 0, 0 } }, yy[HYDB_LANES] = { { 0, 0 } };
	hydb_dd xy[HYDB_LANES] = { { 0, 0 } };
	double u[HYDB_LANES] = { 0 };
	size_t i = 0;
	for (; i + HYDB_LANES <= dim; i += HYDB_LANES) {
		for (int l = 0; l < HYDB_LANES; l++) {
			double a = x[i + l], b = y[i + l], d = a - b;
			dd_acc(&xx[l], a * a);
			dd_acc(&yy[l], b * b);
			dd_acc(&xy[l], a * b);
			u[l] += d * d;
		}
	}
	for (; i < dim; i++) {
		double a = x[i], b = y[i], d = a - b;
		dd_acc(&xx[0], a * a);
		dd_acc(&yy[0], b * b);
		dd_acc(&xy[0], a * b);
		u[0] += d * d;
	}
	pair_sums_fold(out, xx, yy, xy, u, HYDB_LANES);
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
/* The same double-double sums, 8 doubles a vector and two vectors an
 * iteration, so that the dependent TwoSum chains overlap. A product of two
 * floats is exact in double, so only the additions carry error, kept by
 * TwoSum in the lo vectors. The tail is loaded under a mask: zeros add
 * nothing, exactly. */
struct dd8 {
	__m512d hi, lo;
};

__attribute__((target("avx512f"))) static inline void dd8_acc(struct dd8 *s, __m512d t)
{
	__m512d hi = _mm512_add_pd(s->hi, t), bb = _mm512_sub_pd(hi, s->hi);
	__m512d err = _mm512_add_pd(_mm512_sub_pd(s->hi, _mm512_sub_pd(hi, bb)),
				    _mm512_sub_pd(t, bb));
	s->lo = _mm512_add_pd(s->lo, err);
	s->hi = hi;
}

struct sums8 {
	struct dd8 xx, yy, xy;
	__m512d u;
};

__attribute__((target("avx512f"))) static inline void sums8_step(struct sums8 *s, __m256 fa,
								 __m256 fb)
{
	__m512d a = _mm512_cvtps_pd(fa), b = _mm512_cvtps_pd(fb), d = _mm512_sub_pd(a, b);
	dd8_acc(&s->xx, _mm512_mul_pd(a, a));
	dd8_acc(&s->yy, _mm512_mul_pd(b, b));
	dd8_acc(&s->xy, _mm512_mul_pd(a, b));
	s->u = _mm512_fmadd_pd(d, d, s->u);
}

/* hi + lo of two double-double vectors, lane by lane (no normalisation:
 * the lo parts only collect rounding errors until the end). */
__attribute__((target("avx512f"))) static inline struct dd8 dd8_add(struct dd8 a, struct dd8 b)
{
	struct dd8 r = a;
	dd8_acc(&r, b.hi);
	r.lo = _mm512_add_pd(r.lo, b.lo);
	return r;
}

/* The same on 4 and 2 lanes, for folding a vector onto its halves. */
__attribute__((target("avx512f"))) static inline void dd4_fold(__m256d *hi, __m256d *lo,
							       __m256d thi, __m256d tlo)
{
	__m256d s = _mm256_add_pd(*hi, thi), bb = _mm256_sub_pd(s, *hi);
	__m256d err = _mm256_add_pd(_mm256_sub_pd(*hi, _mm256_sub_pd(s, bb)),
				    _mm256_sub_pd(thi, bb));
	*lo = _mm256_add_pd(_mm256_add_pd(*lo, tlo), err);
	*hi = s;
}

/* The same on 2 lanes. */
__attribute__((target("avx512f"))) static inline void dd2_fold(__m128d *hi, __m128d *lo,
							       __m128d thi, __m128d tlo)
{
	__m128d s = _mm_add_pd(*hi, thi), bb = _mm_sub_pd(s, *hi);
	__m128d err = _mm_add_pd(_mm_sub_pd(*hi, _mm_sub_pd(s, bb)), _mm_sub_pd(thi, bb));
	*lo = _mm_add_pd(_mm_add_pd(*lo, tlo), err);
	*hi = s;
}

/* One double-double from the 8 lanes: halves folded 8 -> 4 -> 2 -> 1 in
 * vectors (TwoSum each time, every error kept in lo), then normalised. */
__attribute__((target("avx512f"))) static hydb_dd dd8_total(struct dd8 v)
{
	__m256d hi = _mm512_castpd512_pd256(v.hi), lo = _mm512_castpd512_pd256(v.lo);
	dd4_fold(&hi, &lo, _mm512_extractf64x4_pd(v.hi, 1), _mm512_extractf64x4_pd(v.lo, 1));
	__m128d h2 = _mm256_castpd256_pd128(hi), l2 = _mm256_castpd256_pd128(lo);
	dd2_fold(&h2, &l2, _mm256_extractf128_pd(hi, 1), _mm256_extractf128_pd(lo, 1));
	__m128d h1 = _mm_unpackhi_pd(h2, h2), l1 = _mm_unpackhi_pd(l2, l2);
	dd2_fold(&h2, &l2, h1, l1);
	return dd_normalise(_mm_cvtsd_f64(h2), _mm_cvtsd_f64(l2));
}

__attribute__((target("avx512f"))) static void pair_sums_avx512(hydb_pair_sums *out,
								const float *x, const float *y,
								size_t dim)
{
	struct sums8 s[2];
	memset(s, 0, sizeof s);
	size_t i = 0;
	for (; i + 16 <= dim; i += 16) {
		sums8_step(&s[0], _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
		sums8_step(&s[1], _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8));
	}
	for (; i < dim; i += 8) {
		__mmask16 m = dim - i >= 8 ? 0xff : (__mmask16)((1u << (dim - i)) - 1);
		sums8_step(&s[(i / 8) & 1], _mm512_castps512_ps256(_mm512_maskz_loadu_ps(m, x + i)),
			   _mm512_castps512_ps256(_mm512_maskz_loadu_ps(m, y + i)));
	}
	out->xx = dd8_total(dd8_add(s[0].xx, s[1].xx));
	out->yy = dd8_total(dd8_add(s[0].yy, s[1].yy));
	out->xy = dd8_total(dd8_add(s[0].xy, s[1].xy));
	out->u = _mm512_reduce_add_pd(_mm512_add_pd(s[0].u, s[1].u));
}
#define HYDB_HAVE_PAIR_SUMS_SIMD 1
#endif

/* Norms and dot product of a pair in double-double, on the widest vectors
 * the ranking kernels use (lorentz_kernel.h picks the level once). The
 * lane count changes only how the rounding errors are collected: every
 * level is accurate to a few ulps of double. */
static void pair_sums(hydb_pair_sums *out, const float *x, const float *y,
		      size_t dim)
{
#ifdef HYDB_HAVE_PAIR_SUMS_SIMD
	if (hydb_kernel_level() >= HYDB_KERNEL_AVX512)
		return pair_sums_avx512(out, x, y, dim);
#endif
	pair_sums_scalar(out, x, y, dim);
}

/* W = |x|^2 |y|^2 - p^2 = |x ^ y|^2 >= 0, from the double-double sums. */
static double wedge_dd(const hydb_pair_sums *s)
{
	hydb_dd w = dd_add(dd_mul(s->xx, s->yy), dd_neg(dd_mul(s->xy, s->xy)));
	return w.hi > 0 ? w.hi : 0.0;
}

/* key = (u + c W) / (x0 y0 + p + 1/c) unless the denominator cancels. */
static double key_from_sums(const hydb_pair_sums *s, double c)
{
	double xx = s->xx.hi, yy = s->yy.hi, p = s->xy.hi;
	double x0y0 = sqrt((1.0 / c + xx) * (1.0 / c + yy));
	if (p < -0.5 * (x0y0 + 1.0 / c))
		return c * (x0y0 - p) - 1.0;
	return (s->u + c * wedge_dd(s)) / (x0y0 + p + 1.0 / c);
}

double hydb_dot_d(const float *x, const float *y, size_t dim)
{
	double acc[HYDB_LANES] = { 0 };
	size_t i = 0;
	for (; i + HYDB_LANES <= dim; i += HYDB_LANES)
		for (int l = 0; l < HYDB_LANES; l++)
			acc[l] += (double)x[i + l] * y[i + l];
	for (; i < dim; i++)
		acc[0] += (double)x[i] * y[i];
	return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

double hydb_norm2_d(const float *x, size_t dim)
{
	return hydb_dot_d(x, x, dim);
}

double hydb_lorentz_time_n(double xx, double c)
{
	return sqrt(1.0 / c + xx);
}

double hydb_lorentz_radius_n(double xx, double c)
{
	double rc = sqrt(c);
	return asinh(rc * sqrt(xx)) / rc;
}

double hydb_lorentz_key_to_dist(double key, double c)
{
	if (!(key > 0))
		return isnan(key) ? key : 0.0;
	return log1p(key + sqrt(key * (key + 2.0))) / sqrt(c);
}

/* ---- public geometry --------------------------------------------------- */

double hydb_lorentz_time(const float *x, size_t dim, double c)
{
	return hydb_lorentz_time_n(hydb_norm2_d(x, dim), c);
}

double hydb_lorentz_key(const float *x, const float *y, size_t dim, double c)
{
	hydb_pair_sums s;
	pair_sums(&s, x, y, dim);
	return key_from_sums(&s, c);
}

double hydb_lorentz_inner(const float *x, const float *y, size_t dim,
			  double c)
{
	/* -c <x,y>_L = 1 + key, so the inner product inherits the key's
	 * accuracy instead of cancelling. */
	return -(1.0 + hydb_lorentz_key(x, y, dim, c)) / c;
}

double hydb_lorentz_dist(const float *x, const float *y, size_t dim,
			 double c)
{
	return hydb_lorentz_key_to_dist(hydb_lorentz_key(x, y, dim, c), c);
}

double hydb_lorentz_radius(const float *x, size_t dim, double c)
{
	return hydb_lorentz_radius_n(hydb_norm2_d(x, dim), c);
}

void hydb_exp_map0(float *out, const float *v, size_t dim, double c)
{
	double rc = sqrt(c) * sqrt(hydb_norm2_d(v, dim));
	double in = fmin(fmax(rc, HYDB_GEO_EPS), asinh(32768.0));
	double scale = sinh(in) / fmax(rc, HYDB_GEO_EPS);
	for (size_t i = 0; i < dim; i++)
		out[i] = (float)(scale * v[i]);
}

void hydb_log_map0(float *out, const float *x, size_t dim, double c)
{
	double rc = sqrt(c) * sqrt(hydb_norm2_d(x, dim));
	double scale = rc > 0 ? asinh(rc) / rc : 1.0;
	for (size_t i = 0; i < dim; i++)
		out[i] = (float)(scale * x[i]);
}

static double clamp_unit(double v)
{
	return fmin(fmax(v, -1.0 + HYDB_GEO_EPS), 1.0 - HYDB_GEO_EPS);
}

double hydb_half_aperture(const float *x, size_t dim, double c)
{
	double nx = sqrt(hydb_norm2_d(x, dim));
	return asin(clamp_unit(2.0 * HYDB_CONE_K / (nx * sqrt(c) + HYDB_GEO_EPS)));
}

double hydb_oxy_angle(const float *x, const float *y, size_t dim, double c)
{
	/* MERU's law-of-cosines form, cos = (y0 - cosh(sqrt(c)d) x0) /
	 * (|x| sinh(sqrt(c)d)). The numerator equals c (x0 p - y0 |x|^2),
	 * which vanishes with x instead of cancelling; for p > 0 it is
	 * evaluated as ((p - |x|^2)(p + |x|^2) - c |x|^2 W) / (x0 p + y0 |x|^2)
	 * with p - |x|^2 and W from the double-double sums. */
	hydb_pair_sums s;
	pair_sums(&s, x, y, dim);
	double key = key_from_sums(&s, c);
	double xx = s.xx.hi, yy = s.yy.hi, p = s.xy.hi;
	double x0 = sqrt(1.0 / c + xx), y0 = sqrt(1.0 / c + yy), numer;
	if (p > 0) {
		double pmx = dd_add(s.xy, dd_neg(s.xx)).hi;
		numer = (pmx * (p + xx) - c * xx * wedge_dd(&s)) /
			(x0 * p + y0 * xx);
	} else {
		numer = c * (x0 * p - y0 * xx);
	}
	double denom = sqrt(fmax(key * (key + 2.0), HYDB_GEO_EPS));
	return acos(clamp_unit(numer / (sqrt(xx) * denom + HYDB_GEO_EPS)));
}

/* ---- other coordinates ------------------------------------------------- */

int hydb_coords_from_time(float *out, const double *in, size_t dim, double c, const char *where)
{
	double n2 = 0, x0 = in[0], want;
	for (size_t i = 0; i < dim; i++) {
		out[i] = (float)in[i + 1];
		n2 += in[i + 1] * in[i + 1];
	}
	RETURN_ERROR_IF(!(x0 > 0), HYDB_EFORMAT, "%s: time component %g is not positive (wrong sheet)",
			where, x0);
	want = sqrt(1.0 / c + n2);
	RETURN_ERROR_IF(fabs(x0 - want) > 1e-4 * want, HYDB_EFORMAT,
			"%s: not on the hyperboloid (x0 = %.9g, expected sqrt(1/c + |x|^2) = %.9g)", where,
			x0, want);
	return HYDB_OK;
}

int hydb_coords_from_poincare(float *out, const double *in, size_t dim, double c, const char *where)
{
	double n2 = 0, s;
	for (size_t i = 0; i < dim; i++)
		n2 += in[i] * in[i];
	RETURN_ERROR_IF(c * n2 >= 1.0, HYDB_EFORMAT,
			"%s: point is outside the Poincare ball of radius 1/sqrt(c) (|p| = %g)", where,
			sqrt(n2));
	/* d(O, p) = 2 atanh(sqrt(c)|p|) / sqrt(c): past the largest radius
	 * the store keeps, say so in the ball's terms rather than leave
	 * hydb_record_validate to refuse a point the user never wrote. */
	RETURN_ERROR_IF(2.0 * atanh(sqrt(c * n2)) > HYDB_MAX_RADIUS, HYDB_ETOOBIG,
			"%s: point is too close to the edge of the Poincare ball (|p| = %.17g, 1/sqrt(c) = %.17g): "
			"its radius is beyond the largest stored, %g/sqrt(c)",
			where, sqrt(n2), 1.0 / sqrt(c), HYDB_MAX_RADIUS);
	s = 2.0 / (1.0 - c * n2);
	for (size_t i = 0; i < dim; i++)
		out[i] = (float)(s * in[i]);
	return HYDB_OK;
}

/* ---- query redirection ------------------------------------------------- */

double hydb_redirect_bound(double ub, double c)
{
	return ub + tanh((ub - 0.8) / c) + 1.0;
}

int hydb_redirect_query(float *q, size_t dim, double c, hydb_redirect mode,
			double bound)
{
	RETURN_ERROR_IF(!q || dim == 0, HYDB_EINVAL,
			"redirect: query is empty");
	RETURN_ERROR_IF(!(c > 0) || !isfinite(c), HYDB_EINVAL,
			"redirect: curvature %g is not positive", c);
	RETURN_ERROR_IF(!(bound >= 0) || !isfinite(bound), HYDB_EINVAL,
			"redirect: bound %g is not a finite radius >= 0", bound);
	if (mode == HYDB_REDIRECT_NONE)
		return 0;
	RETURN_ERROR_IF(mode != HYDB_REDIRECT_HYSAC &&
				mode != HYDB_REDIRECT_GEODESIC,
			HYDB_EINVAL, "redirect: unknown mode %d", (int)mode);
	double xx = hydb_norm2_d(q, dim);
	if (!(hydb_lorentz_radius_n(xx, c) > bound))
		return 0;
	/* HySAC's released code compares the geodesic radius with the bound
	 * but then sets the Euclidean norm to it; the geodesic rule moves the
	 * query to exactly the bound's geodesic radius. */
	double target = mode == HYDB_REDIRECT_HYSAC
				? bound
				: sinh(sqrt(c) * bound) / sqrt(c);
	double scale = target / sqrt(xx);
	for (size_t i = 0; i < dim; i++)
		q[i] = (float)(scale * q[i]);
	return 1;
}
