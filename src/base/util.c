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

int hydb_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		size_t n;
		uint32_t cp;
		if (c == 0)
			return -1;
		if (c < 0x80) { i++; continue; }
		if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
		else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
		else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
		else return -1;
		if (i + n >= len) /* continuation bytes run past the end */
			return -1;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return -1;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		/* Reject overlong forms, surrogates and values past U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return -1;
		i += n + 1;
	}
	return 0;
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
