/*
 * lorentz_kernel.h - the ranking key cosh(sqrt(c) d) - 1 as fast kernels (internal).
 *
 * Every distance the index computes, in build and in search, is this key.
 * Written as (|x-y|^2 + c|x^y|^2) / (x0 y0 + x.y + 1/c) it has no
 * cancellation between the two large terms x0 y0 and x.y that the textbook
 * form c(x0 y0 - x.y) - 1 subtracts, so nearby points far from the origin
 * keep their order; the wedge |x^y|^2 is taken as |x|^2|d|^2 - (x.d)^2 with
 * d = y - x for the same reason. Sums are accumulated in float64 (the
 * half-precision walk kernel: float32 within 64 lanes, then float64).
 *
 * A query far from the origin (sqrt(c)|x| > HYDB_HALF_MAX_NORM, kquery.far)
 * is measured differently: |x|^2 + 2 x.d + |d|^2 would give |y|^2 with the
 * rounding of |x|^2 (at sqrt(c) r = 20, |x|^2 = 6e16 / c, its last bit
 * outweighs a point near the origin), so the kernels also sum |y|^2, always
 * in float64; the wedge is taken on whichever of y and d is shorter, and an
 * obtuse pair, whose denominator x0 y0 + x.y cancels, takes the textbook
 * form c (x0 y0 - x.y) - 1 written as a sum of positive terms. Queries near
 * the origin keep the two-sum path unchanged.
 *
 * Three implementations (scalar, AVX2+FMA+F16C, AVX-512F) are chosen once at
 * run time from the CPU's flags; they agree to rounding (tests/check_hnsw.c).
 */
#ifndef HYDB_INDEX_DISTANCE_H
#define HYDB_INDEX_DISTANCE_H

#include <stddef.h>
#include <stdint.h>

/* Half precision keeps 11 significant bits: rounding a row moves its point
 * by up to 2^-12 sqrt(c)|y| in hyperbolic distance, and a component of
 * 65520 or more becomes infinite. A row is walked in half precision only
 * while sqrt(c)|y| <= 16 (error <= 2^-8; HySAC-like data, radius <= 2,
 * stays below 2^-10); farther rows are walked in float32 (index/README.md). */
#define HYDB_HALF_MAX_NORM 16.0

enum hydb_kernel_level {
	HYDB_KERNEL_SCALAR = 0,
	HYDB_KERNEL_AVX2 = 1,
	HYDB_KERNEL_AVX512 = 2,
	HYDB_KERNEL_BEST = 3 /* request: the best the CPU supports */
};

/* A query prepared once: its squared norm and time component are reused by
 * every key computed against it. */
typedef struct hydb_kquery {
	const float *x;
	size_t dim;
	double c, inv_c;
	double xx; /* |x|^2 */
	double x0; /* sqrt(1/c + |x|^2) */
	int far;   /* sqrt(c)|x| > HYDB_HALF_MAX_NORM: the three-sum keys */
} hydb_kquery;

/* Select the implementation (for tests and benches); returns the level now in
 * use, which is lower than asked when the CPU lacks the instructions. */
int hydb_kernel_set_level(int level);
int hydb_kernel_level(void);
const char *hydb_kernel_name(int level);

void hydb_kquery_init(hydb_kquery *q, const float *x, size_t dim, double c);

/* The key between two float32 points (space components). */
double hydb_kernel_key(const float *x, const float *y, size_t dim, double c);
/* The key between a prepared query and a float32 point. */
double hydb_key_f32(const hydb_kquery *q, const float *y);
/* The key between a prepared query and an IEEE half-precision point (the
 * index's compact traversal copy). */
double hydb_key_f16(const hydb_kquery *q, const uint16_t *y);

/* The keys between a prepared query and n points, as the single forms give
 * them up to the last bit: the walk measures a node's neighbours at once,
 * fetching each point while the previous one is measured. */
void hydb_keys_f16(const hydb_kquery *q, const uint16_t *const *y, size_t n,
		   double *keys);
void hydb_keys_f32(const hydb_kquery *q, const float *const *y, size_t n,
		   double *keys);

/* Whether a row of dim floats may be walked in half precision: finite,
 * and within HYDB_HALF_MAX_NORM of the origin. */
int hydb_half_fits(const float *y, size_t dim, double c);

/* Convert n floats to IEEE half precision, round to nearest even. */
void hydb_f32_to_f16(uint16_t *out, const float *in, size_t n);
float hydb_f16_to_f32(uint16_t h);
void hydb_f16_to_f32_n(float *out, const uint16_t *in, size_t n);

#endif
