/*
 * lorentz.h - internal Lorentz-model helpers shared by exact search and the
 * index (the public geometry functions are declared in hydb.h).
 *
 * Notation: curvature -c (c > 0); a point is its space components x, its
 * time component x0 = sqrt(1/c + |x|^2); p = x.y, u = |x - y|^2.
 *
 * Why not the textbook formula: the ranking key cosh(sqrt(c) d) - 1 equals
 * c (x0 y0 - p) - 1, a difference of two numbers of size c|x||y| whose
 * difference can be tiny; in float32 neighbour ranking is lost from radius
 * about 5 and in double from about 9 (c = 1). hydb uses instead
 *
 *   key = (u + c W) / (x0 y0 + p + 1/c),   W = |x ^ y|^2 = |x|^2|y|^2 - p^2,
 *
 * (from (x0 y0)^2 - (p + 1/c)^2 = u/c + W), where every term is a sum of
 * non-negative numbers, except W itself, and the denominator when x and y
 * point in opposite directions (p < 0 and large): there the direct form has
 * no cancellation and is used instead.
 *
 * W cancels for near-parallel vectors. hydb_lorentz_key() computes |x|^2,
 * |y|^2 and p in double-double (products of two floats are exact in double;
 * sums use error-free transformations), so W is accurate to about
 * n^2 eps^2 / sin^2(angle) relative (eps = 2^-53), i.e. to full double
 * precision for any two distinct float32 vectors, and exactly 0 for
 * parallel ones. The key then has a relative error of a few eps for all
 * radii representable in float32. It costs about 4x a plain dot product.
 *
 * The index ranks with the SIMD kernels of lorentz_kernel.h, which use the
 * same stable form; tests/check_lorentz.c measures both against mpmath.
 */
#ifndef HYDB_LORENTZ_H
#define HYDB_LORENTZ_H

#include <stddef.h>
#include <stdint.h>

/* Sum of x[i]*y[i] accumulated in double. */
double hydb_dot_d(const float *x, const float *y, size_t dim);
/* |x|^2 accumulated in double. */
double hydb_norm2_d(const float *x, size_t dim);

/* Time component from the squared norm. */
double hydb_lorentz_time_n(double xx, double c);
/* Geodesic radius asinh(sqrt(c)|x|)/sqrt(c) from the squared norm. */
double hydb_lorentz_radius_n(double xx, double c);
/* Distance from a key: acosh(1 + key)/sqrt(c), without cancellation for
 * small keys. Negative keys (rounding) give 0. */
double hydb_lorentz_key_to_dist(double key, double c);

/* Exact k-NN over an array (src/search_exact.c; the code path of
 * hydb_exact_search without the store): nbase rows of dim floats, attr[j]
 * describes row j, which is slot first_slot + j. Results as for
 * hydb_exact_search: out has nq*k hits, nout[q] of them filled for query q,
 * nearest first, ties by id, keys exact (hydb_lorentz_key). */
struct hydb_hit;
struct hydb_filter;
struct hydb_slot_attr;
int hydb_exact_scan_array(const float *queries, size_t nq, const float *base,
			  const struct hydb_slot_attr *attr, uint32_t first_slot,
			  size_t nbase, size_t dim, double c, size_t k,
			  const struct hydb_filter *f, struct hydb_hit *out,
			  size_t *nout);

/* Other coordinates to space components, with the checks an import makes
 * (errors HYDB_EFORMAT or HYDB_ETOOBIG naming where). */
/* Space components from D+1 Lorentz coordinates (x0 first); checks the
 * upper sheet and the constraint x0^2 - |x|^2 = 1/c. */
int hydb_coords_from_time(float *out, const double *in, size_t dim, double c,
			  const char *where);
/* Space components from a point in the Poincare ball. */
int hydb_coords_from_poincare(float *out, const double *in, size_t dim, double c,
			      const char *where);

#endif
