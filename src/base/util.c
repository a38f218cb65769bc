/* util.c - small checked helpers shared by every part of the library. */
#include "base/base.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void *hydb_alloc_array(size_t n, size_t size, const char *what)
{
	size_t bytes;
	void *p;
	if (hydb_mul_size(&bytes, n, size) < 0) {
		hydb_error_set(HYDB_ENOMEM, "%s: size %zu x %zu overflows", what, n, size);
		return NULL;
	}
	p = malloc(bytes ? bytes : 1);
	if (!p)
		hydb_error_set(HYDB_ENOMEM, "%s: cannot allocate %zu bytes", what, bytes);
	return p;
}

void *hydb_array_grow(void *p, size_t *cap, size_t need, size_t size, const char *what)
{
	size_t nc = *cap ? *cap : 64, bytes;
	while (nc < need)
		if (hydb_mul_size(&nc, nc, 2) < 0)
			return hydb_error_set(HYDB_ENOMEM, "%s: too many entries", what), NULL;
	if (nc == *cap)
		return p;
	void *np = hydb_mul_size(&bytes, nc, size) < 0 ? NULL : realloc(p, bytes);
	if (!np)
		return hydb_error_set(HYDB_ENOMEM, "%s: out of memory", what), NULL;
	*cap = nc;
	return np;
}

size_t hydb_first_nonfinite(const float *v, size_t n)
{
	/* Branch-free accumulation over the whole vector (no SIMD tail left
	 * unchecked): x*0 is NaN exactly when x is NaN or infinite. */
	float acc = 0.0f;
	for (size_t i = 0; i < n; i++)
		acc += v[i] * 0.0f;
	if (acc == 0.0f)
		return n;
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return i;
	return n;
}

void hydb_report(hydb_reporter *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->n++;
	if (r->fn)
		r->fn(msg, r->ctx);
}
