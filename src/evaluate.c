/*
 * evaluate.c - the arithmetic of `hydb evaluate` (declared in admin.h):
 * recall at K from ranked lists, HySAC's safety score, radius statistics
 * and the radius classifier's rates.
 *
 * Definitions follow HySAC's evaluation code (hysac/recall_computation.py
 * and hysac/recalls.py): a query's correct match is its own quadruplet's
 * item, R@K is the share of queries that find it among their first K
 * results, and the safety score of a mixed gallery (safe half followed by
 * unsafe half, or the reverse) is the share of queries whose first result
 * lies in the unsafe half. Bounds are HySAC's hysac_bounds.json statistics
 * of a class's radii: avg (mean), low_05 and up_95 (5th and 95th
 * percentiles, linear interpolation as numpy and torch compute them).
 */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

int hydb_eval_recall(const uint32_t *ranked, size_t stride, const size_t *nranked,
		     const uint32_t *target, size_t nq, const size_t *ks, size_t nk, double *out)
{
	RETURN_ERROR_IF(!ranked || !nranked || !target || !ks || !out, HYDB_EINVAL,
			"recall: NULL argument");
	RETURN_ERROR_IF(nq == 0, HYDB_EINVAL, "recall: no queries");
	for (size_t j = 0; j < nk; j++) {
		size_t hits = 0;
		RETURN_ERROR_IF(ks[j] == 0, HYDB_EINVAL, "recall: K must be at least 1");
		for (size_t q = 0; q < nq; q++) {
			size_t n = nranked[q] < ks[j] ? nranked[q] : ks[j];
			if (n > stride)
				n = stride;
			for (size_t r = 0; r < n; r++)
				if (ranked[q * stride + r] == target[q]) {
					hits++;
					break;
				}
		}
		out[j] = (double)hits / (double)nq;
	}
	return HYDB_OK;
}

int hydb_eval_top1_share(const uint32_t *ranked, size_t stride, const size_t *nranked,
			 size_t nq, uint32_t lo, uint32_t hi, double *out)
{
	size_t in = 0;
	RETURN_ERROR_IF(!ranked || !nranked || !out, HYDB_EINVAL, "safety score: NULL argument");
	RETURN_ERROR_IF(nq == 0 || stride == 0, HYDB_EINVAL, "safety score: no queries");
	for (size_t q = 0; q < nq; q++)
		if (nranked[q] > 0 && ranked[q * stride] >= lo && ranked[q * stride] < hi)
			in++;
	*out = (double)in / (double)nq;
	return HYDB_OK;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The p-th quantile (0..1) of sorted[0..n), numpy's "linear" method. */
static double quantile(const double *sorted, size_t n, double p)
{
	double pos = p * (double)(n - 1);
	size_t i = (size_t)floor(pos);
	double frac = pos - (double)i;
	if (i + 1 >= n)
		return sorted[n - 1];
	return sorted[i] + frac * (sorted[i + 1] - sorted[i]);
}

int hydb_eval_radius_stats(const double *radii, size_t n, hydb_eval_stats *out)
{
	double *s, sum = 0;
	RETURN_ERROR_IF(!radii || !out, HYDB_EINVAL, "radius statistics: NULL argument");
	RETURN_ERROR_IF(n == 0, HYDB_EINVAL, "radius statistics: no radii");
	for (size_t i = 0; i < n; i++)
		RETURN_ERROR_IF(isnan(radii[i]), HYDB_EINVAL, "radius statistics: radius %zu is NaN", i);
	s = hydb_alloc_array(n, sizeof *s, "radii");
	if (!s)
		return HYDB_ENOMEM;
	memcpy(s, radii, n * sizeof *s);
	qsort(s, n, sizeof *s, cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += s[i];
	out->n = n;
	out->min = s[0];
	out->max = s[n - 1];
	out->q1 = quantile(s, n, 0.25);
	out->median = quantile(s, n, 0.5);
	out->q3 = quantile(s, n, 0.75);
	out->low_05 = quantile(s, n, 0.05);
	out->up_95 = quantile(s, n, 0.95);
	out->mean = sum / (double)n;
	free(s);
	return HYDB_OK;
}

int hydb_eval_classifier(const double *safe_r, size_t n_safe, const double *unsafe_r,
			 size_t n_unsafe, double t, hydb_eval_rates *out)
{
	RETURN_ERROR_IF(!out || (n_safe && !safe_r) || (n_unsafe && !unsafe_r), HYDB_EINVAL,
			"classifier: NULL argument");
	RETURN_ERROR_IF(n_safe + n_unsafe == 0, HYDB_EINVAL, "classifier: no radii");
	RETURN_ERROR_IF(isnan(t), HYDB_EINVAL, "classifier: the threshold is NaN");
	memset(out, 0, sizeof *out);
	out->n_safe = n_safe;
	out->n_unsafe = n_unsafe;
	for (size_t i = 0; i < n_safe; i++)
		out->false_pos += safe_r[i] > t;
	for (size_t i = 0; i < n_unsafe; i++)
		out->false_neg += !(unsafe_r[i] > t);
	out->accuracy = 1.0 - (double)(out->false_pos + out->false_neg) / (double)(n_safe + n_unsafe);
	out->fpr = n_safe ? (double)out->false_pos / (double)n_safe : NAN;
	out->fnr = n_unsafe ? (double)out->false_neg / (double)n_unsafe : NAN;
	return HYDB_OK;
}
