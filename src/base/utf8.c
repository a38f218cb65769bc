/*
 * utf8.c - the one UTF-8 codec: the tokenizer decodes captions with it, the
 * JSON reader encodes \u escapes and the JSON writer passes valid runs
 * through, and every string the library stores is validated with it.
 */
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

size_t hydb_utf8_get(const unsigned char *s, size_t avail, uint32_t *cp)
{
	unsigned c;
	size_t n;
	uint32_t v;
	if (avail == 0 || (c = s[0]) == 0)
		return 0;
	if (c < 0x80)
		return *cp = c, 1;
	if ((c & 0xE0) == 0xC0)
		n = 2, v = c & 0x1F;
	else if ((c & 0xF0) == 0xE0)
		n = 3, v = c & 0x0F;
	else if ((c & 0xF8) == 0xF0)
		n = 4, v = c & 0x07;
	else
		return 0;
	if (n > avail)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((s[k] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[k] & 0x3F);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
	if ((n == 2 && v < 0x80) || (n == 3 && v < 0x800) ||
	    (n == 4 && v < 0x10000) || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return n;
}

size_t hydb_utf8_put(char *out, uint32_t c)
{
	assert(c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF));
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xC0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xE0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		out[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	out[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

int hydb_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t cp;
	for (size_t i = 0, k; i < len; i += k)
		if ((k = hydb_utf8_get(s + i, len - i, &cp)) == 0)
			return -1;
	return 0;
}
