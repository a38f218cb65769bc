/*
 * select.c - the HNSW neighbour-selection rule as a pure function.
 *
 * The rule is kept apart from the graph storage so that every graph hydb
 * builds (the LMDB index here, the PostgreSQL access method in postgres/)
 * links the same code: a second copy would drift.
 */
#include "index/hnsw.h"

/* A candidate is kept only if no kept neighbour is closer to it than the
 * base is, which spreads the links over directions; the list is then
 * topped up to fill links with the nearest pruned candidates (why: see
 * hnsw_select in index/walk.c). */
int hydb_hnsw_select(const double *key0, size_t stride, size_t n,
		     unsigned mmax, unsigned fill, hydb_select_key_fn key,
		     hydb_select_prefetch_fn prefetch, void *ctx,
		     uint32_t *out, unsigned *nout)
{
	unsigned k = 0;
	uint32_t pruned[4 * HYDB_HNSW_MAX_M];
	size_t np = 0;
	const char *kp = (const char *)key0;
	if (n <= mmax) {
		for (size_t i = 0; i < n; i++)
			out[i] = (uint32_t)i;
		*nout = (unsigned)n;
		return 0;
	}
	for (size_t i = 0; i < n && k < mmax; i++) {
		double base = *(const double *)(kp + i * stride);
		int keep = 1;
		if (prefetch)
			prefetch(ctx, out, k, (uint32_t)i);
		for (unsigned j = 0; j < k && keep; j++) {
			double d;
			FORWARD_IF_ERROR(key(ctx, j, out[j], (uint32_t)i, &d));
			keep = d >= base;
		}
		if (keep)
			out[k++] = (uint32_t)i;
		else if (np < 4 * HYDB_HNSW_MAX_M)
			pruned[np++] = (uint32_t)i;
	}
	for (size_t i = 0; i < np && k < mmax && k < fill; i++)
		out[k++] = pruned[i];
	*nout = k;
	return 0;
}
