/*
 * base.h - conventions shared by every part of libhydb (not installed).
 *
 * Errors propagate zstd-style: a function that fails records a message for
 * the calling thread with hydb_error_set() and returns a negative hydb_error;
 * its callers forward the code unchanged with FORWARD_IF_ERROR so that the
 * innermost, most specific message survives.
 */
#ifndef HYDB_INTERNAL_H
#define HYDB_INTERNAL_H

#include <assert.h> /* invariants: active unless NDEBUG (configure.ac) */
#include <stddef.h>
#include <stdint.h>

#include "hydb.h"

#if defined(__GNUC__)
#define HYDB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define HYDB_LIKELY(x) __builtin_expect(!!(x), 1)
#define HYDB_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define HYDB_PRINTF(a, b)
#define HYDB_LIKELY(x) (x)
#define HYDB_UNLIKELY(x) (x)
#endif

/* Record a printf-style message for this thread; returns code. */
int hydb_error_set(int code, const char *fmt, ...) HYDB_PRINTF(2, 3);
/* Prefix the current thread message with "prefix: ". Returns code. */
int hydb_error_prefix(int code, const char *fmt, ...) HYDB_PRINTF(2, 3);

#define RETURN_ERROR_IF(cond, code, ...)                                    \
	do {                                                                \
		if (HYDB_UNLIKELY(cond))                                    \
			return hydb_error_set((code), __VA_ARGS__);         \
	} while (0)

#define FORWARD_IF_ERROR(expr)                                              \
	do {                                                                \
		int hydb_fwd_rc_ = (expr);                                  \
		if (HYDB_UNLIKELY(hydb_fwd_rc_ < 0))                        \
			return hydb_fwd_rc_;                                \
	} while (0)

/* Overflow-checked size arithmetic: return 0 on success, -1 on overflow. */
static inline int hydb_mul_size(size_t *out, size_t a, size_t b)
{
	return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
static inline int hydb_add_size(size_t *out, size_t a, size_t b)
{
	return __builtin_add_overflow(a, b, out) ? -1 : 0;
}
/* *out = a*b*c; -1 on overflow. */
static inline int hydb_mul3_size(size_t *out, size_t a, size_t b, size_t c)
{
	size_t t;
	if (__builtin_mul_overflow(a, b, &t))
		return -1;
	return __builtin_mul_overflow(t, c, out) ? -1 : 0;
}

/* malloc of n*size bytes with overflow check; sets HYDB_ENOMEM message
 * naming what on failure. */
void *hydb_alloc_array(size_t n, size_t size, const char *what);
/* A growing array p of *cap elements of size bytes, grown (doubling, from
 * 64) to hold at least need: returns the array, moved or not, with *cap
 * updated; NULL with an HYDB_ENOMEM message naming what when memory or the
 * size runs out, p then unchanged and still the caller's. */
void *hydb_array_grow(void *p, size_t *cap, size_t need, size_t size, const char *what);

/* Collects the problems a checker finds: each is counted and passed, as
 * one formatted line, to fn (which may be NULL). */
typedef void (*hydb_problem_fn)(const char *msg, void *ctx);
typedef struct hydb_reporter {
	hydb_problem_fn fn;
	void *ctx;
	size_t n;
} hydb_reporter;
void hydb_report(hydb_reporter *r, const char *fmt, ...) HYDB_PRINTF(2, 3);

/* Returns index of the first non-finite value in v[0..n), or n if none. */
size_t hydb_first_nonfinite(const float *v, size_t n);

/* UTF-8 (src/base/utf8.c). Validates that s (len bytes) is UTF-8 without
 * NUL: 0 or -1. */
int hydb_utf8_valid(const char *s, size_t len);
/* Decodes the sequence at s[0..avail) into *cp and returns its length, or 0
 * when the bytes there are a NUL or not UTF-8 (overlong, surrogate, past
 * U+10FFFF, truncated). */
size_t hydb_utf8_get(const unsigned char *s, size_t avail, uint32_t *cp);
/* Writes cp (at most U+10FFFF) as 1 to 4 bytes at out; returns the count. */
size_t hydb_utf8_put(char *out, uint32_t cp);

#endif /* HYDB_INTERNAL_H */
