/*
 * tokenizer.c - CLIP's text cleanup and byte-level BPE (see tokenizer.h).
 *
 * Text is handled as an array of code points from the first cleanup step to
 * pre-tokenisation, so that the ftfy and Python string rules, which are
 * defined on code points, can be followed one for one.
 */
#include "encoder/tokenizer.h"

#include "base/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- code point buffers ------------------------------------------------ */

/* A growable code point array. Allocation failure is sticky (oom) so that
 * the many small pushes of a cleanup pass need no error branches; the pass
 * checks once at its end. */
typedef struct cpbuf {
	uint32_t *v;
	size_t n, cap;
	int oom;
} cpbuf;

static void cp_free(cpbuf *b)
{
	free(b->v);
	memset(b, 0, sizeof *b);
}

static int cp_reserve(cpbuf *b, size_t extra)
{
	size_t need, cap;
	uint32_t *v;
	if (b->oom || hydb_add_size(&need, b->n, extra) < 0)
		return b->oom = 1, -1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	v = realloc(b->v, cap * sizeof *v);
	if (!v)
		return b->oom = 1, -1;
	b->v = v;
	b->cap = cap;
	return 0;
}

static void cp_push(cpbuf *b, uint32_t c)
{
	if (b->n < b->cap || cp_reserve(b, 1) == 0)
		b->v[b->n++] = c;
}

static void cp_push_n(cpbuf *b, const uint32_t *c, size_t n)
{
	/* An empty buffer has no storage yet, and NULL + 0 is undefined. */
	if (n > 0 && cp_reserve(b, n) == 0) {
		memcpy(b->v + b->n, c, n * sizeof *c);
		b->n += n;
	}
}

static int cp_check(const cpbuf *b, const char *what)
{
	RETURN_ERROR_IF(b->oom, HYDB_ENOMEM, "tokenizer: out of memory in %s", what);
	return 0;
}

static int cp_equal(const cpbuf *a, const cpbuf *b)
{
	return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

static void cp_swap(cpbuf *a, cpbuf *b)
{
	cpbuf t = *a;
	*a = *b;
	*b = t;
}

/* ---- UTF-8 ------------------------------------------------------------- */

static int utf8_decode(cpbuf *out, const char *text, size_t len, const char *what)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;
	if (cp_reserve(out, len) < 0)
		return cp_check(out, what);
	while (i < len) {
		uint32_t c;
		size_t k = hydb_utf8_get(s + i, len - i, &c);
		RETURN_ERROR_IF(k == 0, HYDB_EUTF8, "%s: %s at byte offset %zu", what,
				s[i] ? "invalid UTF-8" : "embedded NUL", i);
		out->v[out->n++] = c;
		i += k;
	}
	return 0;
}

/* UTF-8 of cps into a malloc'd NUL-terminated string. */
static int utf8_encode(char **out, size_t *out_len, const uint32_t *cps, size_t n)
{
	size_t len = 0, cap;
	char *s;
	RETURN_ERROR_IF(hydb_mul_size(&cap, n, 4) < 0 || hydb_add_size(&cap, cap, 1) < 0,
			HYDB_ENOMEM, "tokenizer text: %zu code points overflow", n);
	s = malloc(cap);
	RETURN_ERROR_IF(!s, HYDB_ENOMEM, "tokenizer text: cannot allocate %zu bytes", cap);
	for (size_t i = 0; i < n; i++)
		len += hydb_utf8_put(s + len, cps[i]);
	s[len] = '\0';
	*out = s;
	*out_len = len;
	return 0;
}

/* ---- Python's character classes ----------------------------------------- */

/* str.isspace(): what Python's \s and strip() treat as whitespace. */
static int py_isspace(uint32_t c)
{
	if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F))
		return 1;
	if (c < 0x85)
		return 0;
	return c == 0x85 || c == 0xA0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_letter(uint32_t c)
{
	if (c < 0x80)
		return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
	return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static int is_number(uint32_t c)
{
	if (c < 0x80)
		return c >= '0' && c <= '9';
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
	return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

/* Windows-1252 for 0x80..0x9F; the five bytes it leaves undefined keep
 * their Latin-1 meaning (Python's html module and ftfy's "sloppy" codec). */
static const uint16_t cp1252_c1[32] = {
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

/* ---- HTML entities ------------------------------------------------------ */

/* name, code point, ftfy's upper-case value for "&NAME;" (0 = none), and
 * whether Python also accepts the name without a semicolon. Sorted by name
 * (strcmp order) for bsearch. */
struct entity {
	const char *name;
	uint32_t cp, up1, up2;
	int legacy;
};

static const struct entity entities[] = {
	{"AElig", 0xC6, 0x0, 0x0, 1},
	{"AMP", 0x26, 0x0, 0x0, 1},
	{"Aacute", 0xC1, 0x0, 0x0, 1},
	{"Acirc", 0xC2, 0x0, 0x0, 1},
	{"Agrave", 0xC0, 0x0, 0x0, 1},
	{"Alpha", 0x391, 0x0, 0x0, 0},
	{"Aring", 0xC5, 0x0, 0x0, 1},
	{"Atilde", 0xC3, 0x0, 0x0, 1},
	{"Auml", 0xC4, 0x0, 0x0, 1},
	{"Beta", 0x392, 0x0, 0x0, 0},
	{"COPY", 0xA9, 0x0, 0x0, 1},
	{"Ccedil", 0xC7, 0x0, 0x0, 1},
	{"Chi", 0x3A7, 0x0, 0x0, 0},
	{"Dagger", 0x2021, 0x0, 0x0, 0},
	{"Delta", 0x394, 0x0, 0x0, 0},
	{"ETH", 0xD0, 0x0, 0x0, 1},
	{"Eacute", 0xC9, 0x0, 0x0, 1},
	{"Ecirc", 0xCA, 0x0, 0x0, 1},
	{"Egrave", 0xC8, 0x0, 0x0, 1},
	{"Epsilon", 0x395, 0x0, 0x0, 0},
	{"Eta", 0x397, 0x0, 0x0, 0},
	{"Euml", 0xCB, 0x0, 0x0, 1},
	{"GT", 0x3E, 0x0, 0x0, 1},
	{"Gamma", 0x393, 0x0, 0x0, 0},
	{"Iacute", 0xCD, 0x0, 0x0, 1},
	{"Icirc", 0xCE, 0x0, 0x0, 1},
	{"Igrave", 0xCC, 0x0, 0x0, 1},
	{"Iota", 0x399, 0x0, 0x0, 0},
	{"Iuml", 0xCF, 0x0, 0x0, 1},
	{"Kappa", 0x39A, 0x0, 0x0, 0},
	{"LT", 0x3C, 0x0, 0x0, 1},
	{"Lambda", 0x39B, 0x0, 0x0, 0},
	{"Mu", 0x39C, 0x0, 0x0, 0},
	{"Ntilde", 0xD1, 0x0, 0x0, 1},
	{"Nu", 0x39D, 0x0, 0x0, 0},
	{"OElig", 0x152, 0x0, 0x0, 0},
	{"Oacute", 0xD3, 0x0, 0x0, 1},
	{"Ocirc", 0xD4, 0x0, 0x0, 1},
	{"Ograve", 0xD2, 0x0, 0x0, 1},
	{"Omega", 0x3A9, 0x0, 0x0, 0},
	{"Omicron", 0x39F, 0x0, 0x0, 0},
	{"Oslash", 0xD8, 0x0, 0x0, 1},
	{"Otilde", 0xD5, 0x0, 0x0, 1},
	{"Ouml", 0xD6, 0x0, 0x0, 1},
	{"Phi", 0x3A6, 0x0, 0x0, 0},
	{"Pi", 0x3A0, 0x0, 0x0, 0},
	{"Prime", 0x2033, 0x0, 0x0, 0},
	{"Psi", 0x3A8, 0x0, 0x0, 0},
	{"QUOT", 0x22, 0x0, 0x0, 1},
	{"REG", 0xAE, 0x0, 0x0, 1},
	{"Rho", 0x3A1, 0x0, 0x0, 0},
	{"Scaron", 0x160, 0x0, 0x0, 0},
	{"Sigma", 0x3A3, 0x0, 0x0, 0},
	{"THORN", 0xDE, 0x0, 0x0, 1},
	{"Tau", 0x3A4, 0x0, 0x0, 0},
	{"Theta", 0x398, 0x0, 0x0, 0},
	{"Uacute", 0xDA, 0x0, 0x0, 1},
	{"Ucirc", 0xDB, 0x0, 0x0, 1},
	{"Ugrave", 0xD9, 0x0, 0x0, 1},
	{"Upsilon", 0x3A5, 0x0, 0x0, 0},
	{"Uuml", 0xDC, 0x0, 0x0, 1},
	{"Xi", 0x39E, 0x0, 0x0, 0},
	{"Yacute", 0xDD, 0x0, 0x0, 1},
	{"Yuml", 0x178, 0x0, 0x0, 0},
	{"Zeta", 0x396, 0x0, 0x0, 0},
	{"aacute", 0xE1, 0xC1, 0x0, 1},
	{"acirc", 0xE2, 0xC2, 0x0, 1},
	{"acute", 0xB4, 0xB4, 0x0, 1},
	{"aelig", 0xE6, 0xC6, 0x0, 1},
	{"agrave", 0xE0, 0xC0, 0x0, 1},
	{"alefsym", 0x2135, 0x2135, 0x0, 0},
	{"alpha", 0x3B1, 0x391, 0x0, 0},
	{"amp", 0x26, 0x0, 0x0, 1},
	{"and", 0x2227, 0x2227, 0x0, 0},
	{"ang", 0x2220, 0x2220, 0x0, 0},
	{"apos", 0x27, 0x27, 0x0, 0},
	{"aring", 0xE5, 0xC5, 0x0, 1},
	{"asymp", 0x2248, 0x2248, 0x0, 0},
	{"atilde", 0xE3, 0xC3, 0x0, 1},
	{"auml", 0xE4, 0xC4, 0x0, 1},
	{"bdquo", 0x201E, 0x201E, 0x0, 0},
	{"beta", 0x3B2, 0x392, 0x0, 0},
	{"brvbar", 0xA6, 0xA6, 0x0, 1},
	{"bull", 0x2022, 0x2022, 0x0, 0},
	{"cap", 0x2229, 0x2229, 0x0, 0},
	{"ccedil", 0xE7, 0xC7, 0x0, 1},
	{"cedil", 0xB8, 0xB8, 0x0, 1},
	{"cent", 0xA2, 0xA2, 0x0, 1},
	{"chi", 0x3C7, 0x3A7, 0x0, 0},
	{"circ", 0x2C6, 0x2C6, 0x0, 0},
	{"clubs", 0x2663, 0x2663, 0x0, 0},
	{"cong", 0x2245, 0x2245, 0x0, 0},
	{"copy", 0xA9, 0x0, 0x0, 1},
	{"crarr", 0x21B5, 0x21B5, 0x0, 0},
	{"cup", 0x222A, 0x222A, 0x0, 0},
	{"curren", 0xA4, 0xA4, 0x0, 1},
	{"dArr", 0x21D3, 0x0, 0x0, 0},
	{"dagger", 0x2020, 0x2020, 0x0, 0},
	{"darr", 0x2193, 0x2193, 0x0, 0},
	{"deg", 0xB0, 0xB0, 0x0, 1},
	{"delta", 0x3B4, 0x394, 0x0, 0},
	{"diams", 0x2666, 0x2666, 0x0, 0},
	{"divide", 0xF7, 0xF7, 0x0, 1},
	{"eacute", 0xE9, 0xC9, 0x0, 1},
	{"ecirc", 0xEA, 0xCA, 0x0, 1},
	{"egrave", 0xE8, 0xC8, 0x0, 1},
	{"empty", 0x2205, 0x2205, 0x0, 0},
	{"emsp", 0x2003, 0x2003, 0x0, 0},
	{"ensp", 0x2002, 0x2002, 0x0, 0},
	{"epsilon", 0x3B5, 0x395, 0x0, 0},
	{"equiv", 0x2261, 0x2261, 0x0, 0},
	{"eta", 0x3B7, 0x397, 0x0, 0},
	{"eth", 0xF0, 0x0, 0x0, 1},
	{"euml", 0xEB, 0xCB, 0x0, 1},
	{"euro", 0x20AC, 0x20AC, 0x0, 0},
	{"exist", 0x2203, 0x2203, 0x0, 0},
	{"fnof", 0x192, 0x191, 0x0, 0},
	{"forall", 0x2200, 0x2200, 0x0, 0},
	{"frac12", 0xBD, 0xBD, 0x0, 1},
	{"frac14", 0xBC, 0xBC, 0x0, 1},
	{"frac34", 0xBE, 0xBE, 0x0, 1},
	{"frasl", 0x2044, 0x2044, 0x0, 0},
	{"gamma", 0x3B3, 0x393, 0x0, 0},
	{"ge", 0x2265, 0x2265, 0x0, 0},
	{"gt", 0x3E, 0x0, 0x0, 1},
	{"hArr", 0x21D4, 0x0, 0x0, 0},
	{"harr", 0x2194, 0x2194, 0x0, 0},
	{"hearts", 0x2665, 0x2665, 0x0, 0},
	{"hellip", 0x2026, 0x2026, 0x0, 0},
	{"iacute", 0xED, 0xCD, 0x0, 1},
	{"icirc", 0xEE, 0xCE, 0x0, 1},
	{"iexcl", 0xA1, 0xA1, 0x0, 1},
	{"igrave", 0xEC, 0xCC, 0x0, 1},
	{"image", 0x2111, 0x2111, 0x0, 0},
	{"infin", 0x221E, 0x221E, 0x0, 0},
	{"int", 0x222B, 0x222B, 0x0, 0},
	{"iota", 0x3B9, 0x399, 0x0, 0},
	{"iquest", 0xBF, 0xBF, 0x0, 1},
	{"isin", 0x2208, 0x2208, 0x0, 0},
	{"iuml", 0xEF, 0xCF, 0x0, 1},
	{"kappa", 0x3BA, 0x39A, 0x0, 0},
	{"lArr", 0x21D0, 0x0, 0x0, 0},
	{"lambda", 0x3BB, 0x39B, 0x0, 0},
	{"lang", 0x27E8, 0x27E8, 0x0, 0},
	{"laquo", 0xAB, 0xAB, 0x0, 1},
	{"larr", 0x2190, 0x2190, 0x0, 0},
	{"lceil", 0x2308, 0x2308, 0x0, 0},
	{"ldquo", 0x201C, 0x201C, 0x0, 0},
	{"le", 0x2264, 0x2264, 0x0, 0},
	{"lfloor", 0x230A, 0x230A, 0x0, 0},
	{"lowast", 0x2217, 0x2217, 0x0, 0},
	{"loz", 0x25CA, 0x25CA, 0x0, 0},
	{"lrm", 0x200E, 0x200E, 0x0, 0},
	{"lsaquo", 0x2039, 0x2039, 0x0, 0},
	{"lsquo", 0x2018, 0x2018, 0x0, 0},
	{"lt", 0x3C, 0x0, 0x0, 1},
	{"macr", 0xAF, 0xAF, 0x0, 1},
	{"mdash", 0x2014, 0x2014, 0x0, 0},
	{"micro", 0xB5, 0x39C, 0x0, 1},
	{"middot", 0xB7, 0xB7, 0x0, 1},
	{"minus", 0x2212, 0x2212, 0x0, 0},
	{"mu", 0x3BC, 0x39C, 0x0, 0},
	{"nabla", 0x2207, 0x2207, 0x0, 0},
	{"nbsp", 0xA0, 0xA0, 0x0, 1},
	{"ndash", 0x2013, 0x2013, 0x0, 0},
	{"ne", 0x2260, 0x2260, 0x0, 0},
	{"ni", 0x220B, 0x220B, 0x0, 0},
	{"not", 0xAC, 0xAC, 0x0, 1},
	{"notin", 0x2209, 0x2209, 0x0, 0},
	{"nsub", 0x2284, 0x2284, 0x0, 0},
	{"ntilde", 0xF1, 0xD1, 0x0, 1},
	{"nu", 0x3BD, 0x39D, 0x0, 0},
	{"oacute", 0xF3, 0xD3, 0x0, 1},
	{"ocirc", 0xF4, 0xD4, 0x0, 1},
	{"oelig", 0x153, 0x152, 0x0, 0},
	{"ograve", 0xF2, 0xD2, 0x0, 1},
	{"oline", 0x203E, 0x203E, 0x0, 0},
	{"omega", 0x3C9, 0x3A9, 0x0, 0},
	{"omicron", 0x3BF, 0x39F, 0x0, 0},
	{"oplus", 0x2295, 0x2295, 0x0, 0},
	{"or", 0x2228, 0x2228, 0x0, 0},
	{"ordf", 0xAA, 0xAA, 0x0, 1},
	{"ordm", 0xBA, 0xBA, 0x0, 1},
	{"oslash", 0xF8, 0xD8, 0x0, 1},
	{"otilde", 0xF5, 0xD5, 0x0, 1},
	{"otimes", 0x2297, 0x2297, 0x0, 0},
	{"ouml", 0xF6, 0xD6, 0x0, 1},
	{"para", 0xB6, 0xB6, 0x0, 1},
	{"part", 0x2202, 0x2202, 0x0, 0},
	{"permil", 0x2030, 0x2030, 0x0, 0},
	{"perp", 0x22A5, 0x22A5, 0x0, 0},
	{"phi", 0x3C6, 0x3A6, 0x0, 0},
	{"pi", 0x3C0, 0x3A0, 0x0, 0},
	{"piv", 0x3D6, 0x3A0, 0x0, 0},
	{"plusmn", 0xB1, 0xB1, 0x0, 1},
	{"pound", 0xA3, 0xA3, 0x0, 1},
	{"prime", 0x2032, 0x2032, 0x0, 0},
	{"prod", 0x220F, 0x220F, 0x0, 0},
	{"prop", 0x221D, 0x221D, 0x0, 0},
	{"psi", 0x3C8, 0x3A8, 0x0, 0},
	{"quot", 0x22, 0x0, 0x0, 1},
	{"rArr", 0x21D2, 0x0, 0x0, 0},
	{"radic", 0x221A, 0x221A, 0x0, 0},
	{"rang", 0x27E9, 0x27E9, 0x0, 0},
	{"raquo", 0xBB, 0xBB, 0x0, 1},
	{"rarr", 0x2192, 0x2192, 0x0, 0},
	{"rceil", 0x2309, 0x2309, 0x0, 0},
	{"rdquo", 0x201D, 0x201D, 0x0, 0},
	{"real", 0x211C, 0x211C, 0x0, 0},
	{"reg", 0xAE, 0x0, 0x0, 1},
	{"rfloor", 0x230B, 0x230B, 0x0, 0},
	{"rho", 0x3C1, 0x3A1, 0x0, 0},
	{"rlm", 0x200F, 0x200F, 0x0, 0},
	{"rsaquo", 0x203A, 0x203A, 0x0, 0},
	{"rsquo", 0x2019, 0x2019, 0x0, 0},
	{"sbquo", 0x201A, 0x201A, 0x0, 0},
	{"scaron", 0x161, 0x160, 0x0, 0},
	{"sdot", 0x22C5, 0x22C5, 0x0, 0},
	{"sect", 0xA7, 0xA7, 0x0, 1},
	{"shy", 0xAD, 0xAD, 0x0, 1},
	{"sigma", 0x3C3, 0x3A3, 0x0, 0},
	{"sigmaf", 0x3C2, 0x3A3, 0x0, 0},
	{"sim", 0x223C, 0x223C, 0x0, 0},
	{"spades", 0x2660, 0x2660, 0x0, 0},
	{"sub", 0x2282, 0x2282, 0x0, 0},
	{"sube", 0x2286, 0x2286, 0x0, 0},
	{"sum", 0x2211, 0x2211, 0x0, 0},
	{"sup", 0x2283, 0x2283, 0x0, 0},
	{"sup1", 0xB9, 0xB9, 0x0, 1},
	{"sup2", 0xB2, 0xB2, 0x0, 1},
	{"sup3", 0xB3, 0xB3, 0x0, 1},
	{"supe", 0x2287, 0x2287, 0x0, 0},
	{"szlig", 0xDF, 0x53, 0x53, 1},
	{"tau", 0x3C4, 0x3A4, 0x0, 0},
	{"there4", 0x2234, 0x2234, 0x0, 0},
	{"theta", 0x3B8, 0x398, 0x0, 0},
	{"thetasym", 0x3D1, 0x398, 0x0, 0},
	{"thinsp", 0x2009, 0x2009, 0x0, 0},
	{"thorn", 0xFE, 0x0, 0x0, 1},
	{"tilde", 0x2DC, 0x2DC, 0x0, 0},
	{"times", 0xD7, 0xD7, 0x0, 1},
	{"trade", 0x2122, 0x0, 0x0, 0},
	{"uArr", 0x21D1, 0x0, 0x0, 0},
	{"uacute", 0xFA, 0xDA, 0x0, 1},
	{"uarr", 0x2191, 0x2191, 0x0, 0},
	{"ucirc", 0xFB, 0xDB, 0x0, 1},
	{"ugrave", 0xF9, 0xD9, 0x0, 1},
	{"uml", 0xA8, 0xA8, 0x0, 1},
	{"upsih", 0x3D2, 0x3D2, 0x0, 0},
	{"upsilon", 0x3C5, 0x3A5, 0x0, 0},
	{"uuml", 0xFC, 0xDC, 0x0, 1},
	{"weierp", 0x2118, 0x2118, 0x0, 0},
	{"xi", 0x3BE, 0x39E, 0x0, 0},
	{"yacute", 0xFD, 0xDD, 0x0, 1},
	{"yen", 0xA5, 0xA5, 0x0, 1},
	{"yuml", 0xFF, 0x178, 0x0, 1},
	{"zeta", 0x3B6, 0x396, 0x0, 0},
	{"zwj", 0x200D, 0x200D, 0x0, 0},
	{"zwnj", 0x200C, 0x200C, 0x0, 0},
};

struct name_key {
	const uint32_t *s;
	size_t n;
};

static int entity_cmp(const void *key, const void *elem)
{
	const struct name_key *k = key;
	const unsigned char *name = (const unsigned char *)((const struct entity *)elem)->name;
	size_t i = 0;
	for (; i < k->n && name[i]; i++)
		if (k->s[i] != name[i])
			return k->s[i] < name[i] ? -1 : 1;
	if (i < k->n)
		return 1;
	return name[i] ? -1 : 0;
}

static const struct entity *entity_find(const uint32_t *s, size_t n)
{
	struct name_key k = { s, n };
	return bsearch(&k, entities, sizeof entities / sizeof entities[0],
		       sizeof entities[0], entity_cmp);
}

static int is_ascii_alnum(uint32_t c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static int is_hex(uint32_t c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Value of the digits s[0..n) in base (10 or 16), saturated past U+10FFFF
 * since every larger number decodes alike. */
static uint32_t parse_number(const uint32_t *s, size_t n, unsigned base)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t d = s[i] <= '9' ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10;
		v = v * base + d;
		if (v > 0x110000)
			v = 0x110000;
	}
	return v;
}

/* Python's html.unescape for a numeric reference; returns 0 when the
 * reference decodes to nothing. */
static int numeric_ref(uint32_t num, uint32_t *out)
{
	if (num == 0 || (num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
		return *out = 0xFFFD, 1;
	if (num == 0x0D)
		return *out = '\r', 1;
	if (num >= 0x80 && num <= 0x9F)
		return *out = cp1252_c1[num - 0x80], 1;
	if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) ||
	    num == 0x7F || (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
		return 0;
	return *out = num, 1;
}

/* Length of a numeric reference "#123" / "#x1F" at s[0..n) (without '&'
 * and ';'), and its value; 0 if none starts there. */
static size_t numeric_span(const uint32_t *s, size_t n, uint32_t *num)
{
	size_t k;
	if (n < 2 || s[0] != '#')
		return 0;
	if (s[1] >= '0' && s[1] <= '9') {
		for (k = 1; k < n && s[k] >= '0' && s[k] <= '9'; k++)
			;
		*num = parse_number(s + 1, k - 1, 10);
		return k;
	}
	if ((s[1] | 0x20) != 'x' || n < 3 || !is_hex(s[2]))
		return 0;
	for (k = 2; k < n && is_hex(s[k]); k++)
		;
	*num = parse_number(s + 2, k - 2, 16);
	return k;
}

static void push_numeric(cpbuf *out, uint32_t num)
{
	uint32_t c;
	if (numeric_ref(num, &c))
		cp_push(out, c);
}

/* ftfy's all-caps form: "&EACUTE;" for a lowercase-named entity. */
static const struct entity *entity_find_upper(const uint32_t *s, size_t n)
{
	uint32_t low[32];
	const struct entity *e;
	int upper = 0;
	if (n > sizeof low / sizeof low[0])
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] >= 'a' && s[i] <= 'z')
			return NULL;
		upper |= s[i] >= 'A' && s[i] <= 'Z';
		low[i] = s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 0x20 : s[i];
	}
	e = upper ? entity_find(low, n) : NULL;
	return e && e->up1 ? e : NULL;
}

/* ftfy's replacement of one "&#?[0-9A-Za-z]{1,24};" match s[0..n): only
 * complete references are decoded, never a prefix of one. */
static void ftfy_entity(cpbuf *out, const uint32_t *s, size_t n)
{
	const uint32_t *name = s + 1;
	size_t name_n = n - 2;
	const struct entity *e;
	uint32_t num, c;
	if (name[0] == '#') {
		if (numeric_span(name, name_n, &num) == name_n &&
		    (!numeric_ref(num, &c) || c != ';')) {
			push_numeric(out, num);
			return;
		}
	} else if ((e = entity_find(name, name_n))) {
		cp_push(out, e->cp);
		return;
	} else if ((e = entity_find_upper(name, name_n))) {
		cp_push(out, e->up1);
		if (e->up2)
			cp_push(out, e->up2);
		return;
	}
	cp_push_n(out, s, n);
}

static size_t ftfy_entity_len(const uint32_t *s, size_t n)
{
	size_t j = 1, k;
	if (j < n && s[j] == '#')
		j++;
	for (k = j; k < n && k - j <= 24 && is_ascii_alnum(s[k]); k++)
		;
	if (k == j || k - j > 24 || k >= n || s[k] != ';')
		return 0;
	return k + 1;
}

static void ftfy_unescape(cpbuf *out, const uint32_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t len = s[i] == '&' ? ftfy_entity_len(s + i, n - i) : 0;
		if (len) {
			ftfy_entity(out, s + i, len);
			i += len;
		} else {
			cp_push(out, s[i++]);
		}
	}
}

static int is_name_char(uint32_t c)
{
	return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' &&
	       c != '&' && c != '#' && c != ';';
}

/* Python's html.unescape rule for a named reference s[0..n) (';' included
 * if present): the whole name, else the longest legacy name that is a
 * proper prefix of at least two characters, else left as it is. */
static void py_named(cpbuf *out, const uint32_t *s, size_t n)
{
	int semi = s[n - 1] == ';';
	const struct entity *e = entity_find(s, n - semi);
	if (e && (semi || e->legacy)) {
		cp_push(out, e->cp);
		return;
	}
	for (size_t x = n - 1; x >= 2; x--) {
		e = entity_find(s, x);
		if (e && e->legacy) {
			cp_push(out, e->cp);
			cp_push_n(out, s + x, n - x);
			return;
		}
	}
	cp_push(out, '&');
	cp_push_n(out, s, n);
}

/* One reference at s[0] == '&'; returns the characters consumed, 0 if the
 * '&' starts none. */
static size_t py_reference(cpbuf *out, const uint32_t *s, size_t n)
{
	uint32_t num;
	size_t k = numeric_span(s + 1, n - 1, &num);
	if (k) {
		k += 1;
		if (k < n && s[k] == ';')
			k++;
		push_numeric(out, num);
		return k;
	}
	if (n > 1 && s[1] == '#')
		return 0;
	for (k = 1; k < n && k <= 32 && is_name_char(s[k]); k++)
		;
	if (k == 1)
		return 0;
	if (k < n && s[k] == ';')
		k++;
	py_named(out, s + 1, k - 1);
	return k;
}

static void py_unescape(cpbuf *out, const uint32_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = s[i] == '&' ? py_reference(out, s + i, n - i) : 0;
		if (k)
			i += k;
		else
			cp_push(out, s[i++]);
	}
}

/* ---- ftfy's fixes -------------------------------------------------------- */

struct ligature {
	uint32_t from, to[3];
};

/* Latin ligatures and digraphs that ftfy spells out. */
static const struct ligature ligatures[] = {
	{ 0x0132, { 'I', 'J' } }, { 0x0133, { 'i', 'j' } },
	{ 0x0149, { 0x02BC, 'n' } }, { 0x01C4, { 'D', 0x017D } },
	{ 0x01C5, { 'D', 0x017E } }, { 0x01C6, { 'd', 0x017E } },
	{ 0x01C7, { 'L', 'J' } }, { 0x01C8, { 'L', 'j' } }, { 0x01C9, { 'l', 'j' } },
	{ 0x01CA, { 'N', 'J' } }, { 0x01CB, { 'N', 'j' } }, { 0x01CC, { 'n', 'j' } },
	{ 0x01F1, { 'D', 'Z' } }, { 0x01F2, { 'D', 'z' } }, { 0x01F3, { 'd', 'z' } },
	{ 0xFB00, { 'f', 'f' } }, { 0xFB01, { 'f', 'i' } }, { 0xFB02, { 'f', 'l' } },
	{ 0xFB03, { 'f', 'f', 'i' } }, { 0xFB04, { 'f', 'f', 'l' } },
	{ 0xFB05, { 0x017F, 't' } }, { 0xFB06, { 's', 't' } },
};

static const struct ligature *ligature_find(uint32_t c)
{
	if (c < 0x0132 || (c > 0x01F3 && c < 0xFB00) || c > 0xFB06)
		return NULL;
	for (size_t i = 0; i < sizeof ligatures / sizeof ligatures[0]; i++)
		if (ligatures[i].from == c)
			return &ligatures[i];
	return NULL;
}

static uint32_t uncurl(uint32_t c)
{
	if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
		return '\'';
	if (c >= 0x201C && c <= 0x201F)
		return '"';
	return c;
}

/* ftfy's width fix then its quote fix. A half-/full-width form becomes its
 * compatibility decomposition; the NFC step later in the same round
 * recomposes it, which gives ftfy's per-character NFKC. */
static void width_uncurl(cpbuf *out, uint32_t c)
{
	utf8proc_int32_t d[8];
	utf8proc_ssize_t n;
	if (c == 0x3000) {
		cp_push(out, ' ');
		return;
	}
	if (c < 0xFF01 || c > 0xFFEF) {
		cp_push(out, uncurl(c));
		return;
	}
	n = utf8proc_decompose_char((utf8proc_int32_t)c, d, 8,
				    UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, NULL);
	if (n <= 0 || n > 8) {
		cp_push(out, c);
		return;
	}
	for (utf8proc_ssize_t i = 0; i < n; i++)
		cp_push(out, uncurl((uint32_t)d[i]));
}

/* C1 controls, ligatures, width and quotes: each maps characters one at a
 * time, so one pass applies them in ftfy's order. */
static void fix_chars(cpbuf *out, const uint32_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t c = s[i];
		const struct ligature *l;
		if (c >= 0x80 && c <= 0x9F)
			c = cp1252_c1[c - 0x80];
		if (!(l = ligature_find(c))) {
			width_uncurl(out, c);
			continue;
		}
		for (size_t k = 0; k < 3 && l->to[k]; k++)
			width_uncurl(out, l->to[k]);
	}
}

static void fix_line_breaks(cpbuf *out, const uint32_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t c = s[i];
		if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85)
			c = '\n';
		cp_push(out, c);
	}
}

/* Length of an ANSI escape "ESC [ (digit|;)* letter" at s[0], or 0. */
static size_t ansi_len(const uint32_t *s, size_t n)
{
	size_t k = 2;
	if (n < 3 || s[0] != 0x1B || s[1] != '[')
		return 0;
	while (k < n && (s[k] == ';' ||
			 utf8proc_category((utf8proc_int32_t)s[k]) == UTF8PROC_CATEGORY_ND))
		k++;
	if (k < n && ((s[k] | 0x20) >= 'a' && (s[k] | 0x20) <= 'z'))
		return k + 1;
	return 0;
}

static void remove_terminal_escapes(cpbuf *out, const uint32_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = s[i] == 0x1B ? ansi_len(s + i, n - i) : 0;
		if (k)
			i += k;
		else
			cp_push(out, s[i++]);
	}
}

/* The invisible controls ftfy drops; tab, LF, FF and CR stay (they are
 * whitespace to the later steps). */
static int is_dropped_control(uint32_t c)
{
	return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
	       (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

static void remove_control_chars(cpbuf *out, const uint32_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_dropped_control(s[i]))
			cp_push(out, s[i]);
}

static int nfc(cpbuf *out, const uint32_t *s, size_t n)
{
	utf8proc_uint8_t *dst = NULL;
	utf8proc_ssize_t m;
	char *u8;
	size_t len;
	size_t i = 0;
	/* Nothing below U+0300 decomposes into or composes from anything else
	 * in NFC, so plain captions skip the round trip. */
	while (i < n && s[i] < 0x300)
		i++;
	if (i == n) {
		cp_push_n(out, s, n);
		return cp_check(out, "NFC");
	}
	FORWARD_IF_ERROR(utf8_encode(&u8, &len, s, n));
	m = utf8proc_map((const utf8proc_uint8_t *)u8, (utf8proc_ssize_t)len, &dst,
			 UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	free(u8);
	RETURN_ERROR_IF(m < 0, HYDB_ENOMEM, "tokenizer: NFC failed: %s",
			utf8proc_errmsg(m));
	int rc = utf8_decode(out, (const char *)dst, (size_t)m, "NFC result");
	free(dst);
	return rc;
}

/* One round of ftfy's fixes over a segment, from *a into *a (via *b). */
static int ftfy_round(cpbuf *a, cpbuf *b, int unescape)
{
	if (unescape) {
		b->n = 0;
		ftfy_unescape(b, a->v, a->n);
		cp_swap(a, b);
	}
	b->n = 0;
	fix_chars(b, a->v, a->n);
	a->n = 0;
	fix_line_breaks(a, b->v, b->n);
	b->n = 0;
	remove_terminal_escapes(b, a->v, a->n);
	a->n = 0;
	remove_control_chars(a, b->v, b->n);
	FORWARD_IF_ERROR(cp_check(a, "ftfy"));
	FORWARD_IF_ERROR(cp_check(b, "ftfy"));
	b->n = 0;
	FORWARD_IF_ERROR(nfc(b, a->v, a->n));
	cp_swap(a, b);
	return 0;
}

/* Printable ASCII without '&' (and tab, LF, FF) is left alone by every
 * fix: the common caption skips the rounds entirely. */
static int ftfy_is_noop(const uint32_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\f') ||
		    s[i] > 0x7E || s[i] == '&')
			return 0;
	return 1;
}

/* ftfy repeats its fixes on a segment until the text stops changing. */
static int ftfy_segment(cpbuf *out, const uint32_t *s, size_t n, int unescape)
{
	cpbuf cur = { 0 }, tmp = { 0 }, prev = { 0 };
	int rc = 0;
	if (ftfy_is_noop(s, n)) {
		cp_push_n(out, s, n);
		return cp_check(out, "ftfy");
	}
	cp_push_n(&cur, s, n);
	for (;;) {
		prev.n = 0;
		cp_push_n(&prev, cur.v, cur.n);
		if ((rc = cp_check(&prev, "ftfy")) < 0 || (rc = ftfy_round(&cur, &tmp, unescape)) < 0)
			break;
		if (cp_equal(&cur, &prev))
			break;
	}
	if (rc == 0) {
		cp_push_n(out, cur.v, cur.n);
		rc = cp_check(out, "ftfy");
	}
	cp_free(&cur);
	cp_free(&tmp);
	cp_free(&prev);
	return rc;
}

/* ftfy.fix_text: line by line; HTML entities are decoded only until the
 * first line that contains '<' (from then on the text looks like HTML). */
static int ftfy_fix_text(cpbuf *out, const uint32_t *s, size_t n)
{
	int unescape = 1;
	for (size_t pos = 0; pos < n;) {
		size_t end = pos;
		while (end < n && s[end] != '\n')
			end++;
		if (end < n)
			end++;
		for (size_t i = pos; unescape && i < end; i++)
			if (s[i] == '<')
				unescape = 0;
		FORWARD_IF_ERROR(ftfy_segment(out, s + pos, end - pos, unescape));
		pos = end;
	}
	return 0;
}

/* ---- Python string steps ------------------------------------------------- */

/* re.sub(r'\s+', ' ', s).strip() */
static void collapse_whitespace(cpbuf *out, const uint32_t *s, size_t n)
{
	int gap = 0;
	for (size_t i = 0; i < n; i++) {
		if (py_isspace(s[i])) {
			gap = out->n > 0;
			continue;
		}
		if (gap)
			cp_push(out, ' ');
		gap = 0;
		cp_push(out, s[i]);
	}
}

static int is_cased(uint32_t c)
{
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
	return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL ||
	       k == UTF8PROC_CATEGORY_LT ||
	       utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
	       utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

static int is_case_ignorable(uint32_t c)
{
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
	if (k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME ||
	    k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_LM ||
	    k == UTF8PROC_CATEGORY_SK)
		return 1;
	/* Word_Break MidLetter, MidNumLet and Single_Quote. */
	return c == '\'' || c == '.' || c == ':' || c == 0xB7 || c == 0x0387 ||
	       c == 0x055F || c == 0x05F4 || c == 0x2018 || c == 0x2019 ||
	       c == 0x2024 || c == 0x2027 || c == 0xFE13 || c == 0xFE52 ||
	       c == 0xFE55 || c == 0xFF07 || c == 0xFF0E || c == 0xFF1A;
}

/* Python's Final_Sigma rule for capital sigma at s[i]. */
static int final_sigma(const uint32_t *s, size_t n, size_t i)
{
	size_t j = i;
	while (j > 0 && is_case_ignorable(s[j - 1]))
		j--;
	if (j == 0 || !is_cased(s[j - 1]))
		return 0;
	for (j = i + 1; j < n && is_case_ignorable(s[j]); j++)
		;
	return j == n || !is_cased(s[j]);
}

/* str.lower(): simple mappings plus the two context-free or contextual
 * full mappings Python applies (dotted capital I, final sigma). */
static void py_lower(cpbuf *out, const uint32_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t c = s[i];
		if (c < 0x80) {
			cp_push(out, c >= 'A' && c <= 'Z' ? c | 0x20 : c);
		} else if (c == 0x0130) {
			cp_push(out, 'i');
			cp_push(out, 0x0307);
		} else if (c == 0x03A3) {
			cp_push(out, final_sigma(s, n, i) ? 0x03C2 : 0x03C3);
		} else {
			cp_push(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
		}
	}
}

static int contains_cp(const uint32_t *s, size_t n, uint32_t c)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == c)
			return 1;
	return 0;
}

/* CLIP's whitespace_clean(basic_clean(text)).lower() on code points. */
static int clean_cps(cpbuf *out, const char *text, size_t len)
{
	cpbuf a = { 0 }, b = { 0 };
	int rc;
	RETURN_ERROR_IF(len > HYDB_MAX_CAPTION, HYDB_ETOOBIG,
			"caption: %zu bytes is over the limit of %d", len, HYDB_MAX_CAPTION);
	if ((rc = utf8_decode(&a, text, len, "caption")) < 0 ||
	    (rc = ftfy_fix_text(&b, a.v, a.n)) < 0)
		goto done;
	for (int round = 0; round < 2; round++) {
		if (!contains_cp(b.v, b.n, '&'))
			break;
		a.n = 0;
		py_unescape(&a, b.v, b.n);
		cp_swap(&a, &b);
	}
	a.n = 0;
	collapse_whitespace(&a, b.v, b.n);
	py_lower(out, a.v, a.n);
	if ((rc = cp_check(&a, "cleanup")) == 0)
		rc = cp_check(out, "cleanup");
done:
	cp_free(&a);
	cp_free(&b);
	return rc;
}

int hydb_tokenizer_clean(char **out, size_t *out_len, const char *text, size_t len)
{
	cpbuf c = { 0 };
	int rc;
	RETURN_ERROR_IF(!out || !out_len || (!text && len), HYDB_EINVAL,
			"hydb_tokenizer_clean: NULL argument");
	rc = clean_cps(&c, text, len);
	if (rc == 0)
		rc = utf8_encode(out, out_len, c.v, c.n);
	cp_free(&c);
	return rc;
}

/* ---- vocabulary ----------------------------------------------------------- */

struct pair_slot {
	uint64_t key;  /* left id << 32 | right id */
	int32_t rank;  /* -1: empty */
	int32_t merged;
};

/* A direct-mapped cache of short words' tokens: captions repeat words, and
 * a hit skips the merging. Slots are guarded by striped locks so that
 * threads sharing a tokenizer rarely wait on each other. */
#define WORD_CACHE_SLOTS 8192
#define WORD_CACHE_LOCKS 64
#define WORD_CACHE_BYTES 24
#define WORD_CACHE_IDS 8

struct word_slot {
	uint8_t len, n_ids;  /* len 0: empty */
	char bytes[WORD_CACHE_BYTES];
	int32_t ids[WORD_CACHE_IDS];
};

struct hydb_tokenizer {
	struct word_slot *cache;
	pthread_mutex_t cache_locks[WORD_CACHE_LOCKS];
	char *arena;            /* every vocabulary string, NUL-terminated */
	uint32_t *off, *len;    /* per id: place and length in arena */
	size_t n_vocab;
	int32_t *str_slots;     /* open addressing over strings: id or -1 */
	size_t str_mask;
	struct pair_slot *pair_slots;
	size_t pair_mask;
	int32_t byte_id[256];   /* a byte as a word-inner symbol */
	int32_t byte_end_id[256]; /* a byte as the last symbol, with "</w>" */
};

/* One merge line: the two symbols, pointing into the merges text. */
struct merge_line {
	const char *a, *b;
	uint32_t a_len, b_len;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Table sizes: a power of two at least twice the entries. */
static size_t table_size(size_t entries)
{
	size_t n = 16;
	while (n < entries * 2)
		n *= 2;
	return n;
}

static int32_t vocab_find(const hydb_tokenizer *t, const char *s, size_t n)
{
	size_t i = hash_bytes(s, n) & t->str_mask;
	for (;; i = (i + 1) & t->str_mask) {
		int32_t id = t->str_slots[i];
		if (id < 0)
			return -1;
		if (t->len[id] == n && !memcmp(t->arena + t->off[id], s, n))
			return id;
	}
}

/* Later entries with the same string win, as in the reference's dict. */
static void vocab_index(hydb_tokenizer *t, int32_t id)
{
	const char *s = t->arena + t->off[id];
	size_t i = hash_bytes(s, t->len[id]) & t->str_mask;
	for (;; i = (i + 1) & t->str_mask) {
		int32_t old = t->str_slots[i];
		if (old < 0 || (t->len[old] == t->len[id] &&
				!memcmp(t->arena + t->off[old], s, t->len[id]))) {
			t->str_slots[i] = id;
			return;
		}
	}
}

static const struct pair_slot *pair_find(const hydb_tokenizer *t, int32_t a, int32_t b)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	size_t i = hash_u64(key) & t->pair_mask;
	for (;; i = (i + 1) & t->pair_mask) {
		const struct pair_slot *p = &t->pair_slots[i];
		if (p->rank < 0)
			return NULL;
		if (p->key == key)
			return p;
	}
}

static void pair_insert(hydb_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	size_t i = hash_u64(key) & t->pair_mask;
	while (t->pair_slots[i].rank >= 0 && t->pair_slots[i].key != key)
		i = (i + 1) & t->pair_mask;
	t->pair_slots[i] = (struct pair_slot){ key, rank, merged };
}

/* GPT-2's byte-to-unicode map: printable Latin-1 bytes stand for
 * themselves, the other 68 bytes for U+0100 onwards in byte order. The
 * vocabulary lists the printable ones first. */
static int byte_printable(unsigned b)
{
	return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

static void byte_symbols(uint32_t cp[256], unsigned order[256])
{
	unsigned n = 0, extra = 0;
	for (unsigned b = 0; b < 256; b++)
		if (byte_printable(b))
			cp[b] = b, order[n++] = b;
	for (unsigned b = 0; b < 256; b++)
		if (!byte_printable(b))
			cp[b] = 256 + extra++, order[n++] = b;
}

static void arena_add(hydb_tokenizer *t, size_t *used, int32_t id, const char *a,
		      size_t a_len, const char *b, size_t b_len)
{
	t->off[id] = (uint32_t)*used;
	t->len[id] = (uint32_t)(a_len + b_len);
	memcpy(t->arena + *used, a, a_len);
	memcpy(t->arena + *used + a_len, b, b_len);
	*used += a_len + b_len;
	t->arena[(*used)++] = '\0';
}

/* ---- merges file ------------------------------------------------------------ */

static int parse_merge_line(struct merge_line *m, const char *s, size_t n, size_t line_no)
{
	const char *sp = memchr(s, ' ', n);
	size_t bad;
	RETURN_ERROR_IF(!sp || sp == s || sp + 1 == s + n, HYDB_EFORMAT,
			"merges line %zu: expected two symbols separated by one space", line_no);
	RETURN_ERROR_IF(memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)) || memchr(s, '\t', n),
			HYDB_EFORMAT, "merges line %zu: more than two symbols", line_no);
	for (bad = 0; bad < n;) {
		uint32_t c;
		size_t k = hydb_utf8_get((const unsigned char *)s + bad, n - bad, &c);
		RETURN_ERROR_IF(k == 0, HYDB_EFORMAT,
				"merges line %zu: invalid UTF-8 at column %zu", line_no, bad + 1);
		bad += k;
	}
	RETURN_ERROR_IF(n > 1024, HYDB_EFORMAT, "merges line %zu: %zu bytes is too long",
			line_no, n);
	m->a = s;
	m->a_len = (uint32_t)(sp - s);
	m->b = sp + 1;
	m->b_len = (uint32_t)(s + n - sp - 1);
	return 0;
}

/* Splits the merges text into lines; *count receives how many (at most
 * max, 0 = no limit). lines may be NULL to count only. The header is found
 * anywhere in the first line because CLIP's own file prefixes it with its
 * name ("\"bpe_simple_vocab_16e6.txt#version: 0.2"). */
static int scan_merges(struct merge_line *lines, size_t *count, const char *text,
		       size_t len, size_t max)
{
	size_t pos = 0, line_no = 0, n = 0;
	while (pos < len && (max == 0 || n < max)) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len, l = end - pos;
		struct merge_line m;
		line_no++;
		if (l > 0 && text[end - 1] == '\r')
			l--;
		if (!(line_no == 1 && memmem(text + pos, l, "#version", 8))) {
			FORWARD_IF_ERROR(parse_merge_line(&m, text + pos, l, line_no));
			if (lines)
				lines[n] = m;
			n++;
		}
		pos = end + 1;
	}
	*count = n;
	return 0;
}

static int tokenizer_alloc(hydb_tokenizer *t, const struct merge_line *lines, size_t n)
{
	size_t bytes = 256 * 3 + 256 * 7 + 64;
	for (size_t i = 0; i < n; i++)
		bytes += (size_t)lines[i].a_len + lines[i].b_len + 1;
	t->n_vocab = 512 + n + 2;
	RETURN_ERROR_IF(t->n_vocab > INT32_MAX / 2 || bytes > UINT32_MAX, HYDB_ENOMEM,
			"merges: %zu merges is too many", n);
	t->str_mask = table_size(t->n_vocab) - 1;
	t->pair_mask = table_size(n) - 1;
	t->arena = malloc(bytes);
	t->off = hydb_alloc_array(t->n_vocab, sizeof *t->off, "tokenizer vocabulary");
	t->len = hydb_alloc_array(t->n_vocab, sizeof *t->len, "tokenizer vocabulary");
	t->str_slots = hydb_alloc_array(t->str_mask + 1, sizeof *t->str_slots, "tokenizer vocabulary");
	t->pair_slots = hydb_alloc_array(t->pair_mask + 1, sizeof *t->pair_slots, "tokenizer merges");
	t->cache = calloc(WORD_CACHE_SLOTS, sizeof *t->cache);
	RETURN_ERROR_IF(!t->arena || !t->off || !t->len || !t->str_slots || !t->pair_slots ||
			!t->cache,
			HYDB_ENOMEM, "tokenizer: cannot allocate the vocabulary (%zu merges)", n);
	memset(t->str_slots, 0xFF, (t->str_mask + 1) * sizeof *t->str_slots);
	for (size_t i = 0; i <= t->pair_mask; i++)
		t->pair_slots[i].rank = -1;
	return 0;
}

/* The vocabulary strings, in the reference's order. */
static void build_vocab(hydb_tokenizer *t, const struct merge_line *lines, size_t n)
{
	uint32_t cp[256];
	unsigned order[256];
	size_t used = 0;
	int32_t id = 0;
	byte_symbols(cp, order);
	for (int end = 0; end < 2; end++) {
		for (unsigned i = 0; i < 256; i++) {
			char u[4];
			size_t ul = hydb_utf8_put(u, cp[order[i]]);
			arena_add(t, &used, id++, u, ul, "</w>", end ? 4 : 0);
		}
	}
	for (size_t i = 0; i < n; i++)
		arena_add(t, &used, id++, lines[i].a, lines[i].a_len, lines[i].b, lines[i].b_len);
	arena_add(t, &used, id++, "<|startoftext|>", 15, "", 0);
	arena_add(t, &used, id++, "<|endoftext|>", 13, "", 0);
	for (int32_t k = 0; k < id; k++)
		vocab_index(t, k);
}

/* Merge ranks; symbols and results by canonical (last) id. A pair whose
 * symbols never occur in the vocabulary can never apply and is left out. */
static void build_merges(hydb_tokenizer *t, const struct merge_line *lines, size_t n)
{
	uint32_t cp[256];
	unsigned order[256];
	byte_symbols(cp, order);
	for (size_t i = 0; i < n; i++) {
		int32_t a = vocab_find(t, lines[i].a, lines[i].a_len);
		int32_t b = vocab_find(t, lines[i].b, lines[i].b_len);
		int32_t r = (int32_t)(512 + i);
		if (a >= 0 && b >= 0)
			pair_insert(t, a, b, (int32_t)i, vocab_find(t, t->arena + t->off[r], t->len[r]));
	}
	for (unsigned b = 0; b < 256; b++) {
		char u[8];
		size_t ul = hydb_utf8_put(u, cp[b]);
		t->byte_id[b] = vocab_find(t, u, ul);
		memcpy(u + ul, "</w>", 4);
		t->byte_end_id[b] = vocab_find(t, u, ul + 4);
	}
}

int hydb_tokenizer_new(hydb_tokenizer **out, const char *merges, size_t len,
		       size_t max_merges)
{
	struct merge_line *lines = NULL;
	hydb_tokenizer *t;
	size_t n;
	int rc;
	RETURN_ERROR_IF(!out || (!merges && len), HYDB_EINVAL, "hydb_tokenizer_new: NULL argument");
	*out = NULL;
	FORWARD_IF_ERROR(scan_merges(NULL, &n, merges, len, max_merges));
	t = calloc(1, sizeof *t);
	for (int i = 0; t && i < WORD_CACHE_LOCKS; i++)
		pthread_mutex_init(&t->cache_locks[i], NULL);
	lines = hydb_alloc_array(n, sizeof *lines, "merges");
	if (!t || !lines) {
		free(t);
		free(lines);
		return hydb_error_set(HYDB_ENOMEM, "tokenizer: out of memory");
	}
	rc = scan_merges(lines, &n, merges, len, max_merges);
	if (rc == 0)
		rc = tokenizer_alloc(t, lines, n);
	if (rc == 0) {
		build_vocab(t, lines, n);
		build_merges(t, lines, n);
		*out = t;
	} else {
		hydb_tokenizer_free(t);
	}
	free(lines);
	return rc;
}

void hydb_tokenizer_free(hydb_tokenizer *t)
{
	if (!t)
		return;
	free(t->arena);
	free(t->off);
	free(t->len);
	free(t->str_slots);
	free(t->pair_slots);
	free(t->cache);
	for (int i = 0; i < WORD_CACHE_LOCKS; i++)
		pthread_mutex_destroy(&t->cache_locks[i]);
	free(t);
}

size_t hydb_tokenizer_vocab_size(const hydb_tokenizer *t)
{
	return t->n_vocab;
}

int32_t hydb_tokenizer_bos(const hydb_tokenizer *t)
{
	return (int32_t)t->n_vocab - 2;
}

int32_t hydb_tokenizer_eos(const hydb_tokenizer *t)
{
	return (int32_t)t->n_vocab - 1;
}

const char *hydb_tokenizer_token(const hydb_tokenizer *t, int32_t id)
{
	if (!t || id < 0 || (size_t)id >= t->n_vocab)
		return NULL;
	return t->arena + t->off[id];
}

/* ---- pre-tokenisation ------------------------------------------------------ */

static int match_ascii(const uint32_t *s, size_t n, const char *lit)
{
	size_t i = 0;
	for (; lit[i]; i++)
		if (i >= n || s[i] != (unsigned char)lit[i])
			return 0;
	return 1;
}

/* The pattern is case-insensitive; after lowercasing, only U+017F (long s)
 * still folds onto an ASCII letter of a contraction. */
static uint32_t fold(uint32_t c)
{
	return c == 0x017F ? 's' : c;
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd) at s[0] == '\'', or 0. */
static size_t contraction_len(const uint32_t *s, size_t n)
{
	uint32_t c1, c2;
	if (n < 2)
		return 0;
	c1 = fold(s[1]);
	if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
		return 2;
	if (n < 3)
		return 0;
	c2 = fold(s[2]);
	if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
		return 3;
	return 0;
}

/* Length of CLIP's pattern match at s[0], which is not whitespace:
 * <|startoftext|> | <|endoftext|> | contraction | \p{L}+ | \p{N} |
 * [^\s\p{L}\p{N}]+, first alternative that matches. *special is 0, 1 for
 * the start marker, 2 for the end marker. */
static size_t piece_len(const uint32_t *s, size_t n, int *special)
{
	size_t k;
	*special = 0;
	if (s[0] == '<' && match_ascii(s, n, "<|startoftext|>"))
		return *special = 1, 15;
	if (s[0] == '<' && match_ascii(s, n, "<|endoftext|>"))
		return *special = 2, 13;
	if (s[0] == '\'' && (k = contraction_len(s, n)))
		return k;
	if (is_letter(s[0])) {
		for (k = 1; k < n && is_letter(s[k]); k++)
			;
		return k;
	}
	if (is_number(s[0]))
		return 1;
	for (k = 1; k < n && !py_isspace(s[k]) && !is_letter(s[k]) && !is_number(s[k]); k++)
		;
	return k;
}

/* ---- byte-pair merging --------------------------------------------------------- */

struct heap_ent {
	int32_t rank, pos, a, b, merged;
};

/* Working memory for one call, sized for the longest possible word. */
struct bpe {
	unsigned char *bytes;
	int32_t *sym, *next, *prev;
	struct heap_ent *heap;
	size_t heap_n;
};

static int bpe_alloc(struct bpe *w, size_t max_bytes)
{
	size_t n = max_bytes + 1;
	w->bytes = malloc(n);
	w->sym = hydb_alloc_array(n, sizeof *w->sym, "tokenizer scratch");
	w->next = hydb_alloc_array(n, sizeof *w->next, "tokenizer scratch");
	w->prev = hydb_alloc_array(n, sizeof *w->prev, "tokenizer scratch");
	w->heap = hydb_alloc_array(n, 3 * sizeof *w->heap, "tokenizer scratch");
	RETURN_ERROR_IF(!w->bytes || !w->sym || !w->next || !w->prev || !w->heap,
			HYDB_ENOMEM, "tokenizer: cannot allocate scratch for %zu bytes", n);
	return 0;
}

static void bpe_free(struct bpe *w)
{
	free(w->bytes);
	free(w->sym);
	free(w->next);
	free(w->prev);
	free(w->heap);
}

/* Lower rank first; equal ranks (the same pair) left to right, which is the
 * reference's left-to-right sweep merging every occurrence of the pair. */
static int heap_less(const struct heap_ent *x, const struct heap_ent *y)
{
	return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(struct bpe *w, struct heap_ent e)
{
	size_t i = w->heap_n++;
	while (i > 0 && heap_less(&e, &w->heap[(i - 1) / 2])) {
		w->heap[i] = w->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->heap[i] = e;
}

static struct heap_ent heap_pop(struct bpe *w)
{
	struct heap_ent top = w->heap[0], last = w->heap[--w->heap_n];
	size_t i = 0, n = w->heap_n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && heap_less(&w->heap[c + 1], &w->heap[c]))
			c++;
		if (!heap_less(&w->heap[c], &last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (n)
		w->heap[i] = last;
	return top;
}

static void push_pair(const hydb_tokenizer *t, struct bpe *w, int32_t i)
{
	int32_t j = w->next[i];
	const struct pair_slot *p = pair_find(t, w->sym[i], w->sym[j]);
	if (p)
		heap_push(w, (struct heap_ent){ p->rank, i, w->sym[i], w->sym[j], p->merged });
}

/* Merges w->sym[0..n) in place; the result is the list from 0 via next. */
static void bpe_merge(const hydb_tokenizer *t, struct bpe *w, int32_t n)
{
	w->heap_n = 0;
	for (int32_t i = 0; i < n; i++) {
		w->next[i] = i + 1 < n ? i + 1 : -1;
		w->prev[i] = i - 1;
	}
	for (int32_t i = 0; i + 1 < n; i++)
		push_pair(t, w, i);
	while (w->heap_n) {
		struct heap_ent e = heap_pop(w);
		int32_t i = e.pos, j = w->next[i];
		if (w->sym[i] != e.a || j < 0 || w->sym[j] != e.b)
			continue;
		w->sym[i] = e.merged;
		w->sym[j] = -1;
		w->next[i] = w->next[j];
		if (w->next[i] >= 0)
			w->prev[w->next[i]] = i;
		if (w->prev[i] >= 0)
			push_pair(t, w, w->prev[i]);
		if (w->next[i] >= 0)
			push_pair(t, w, i);
	}
}

static size_t cache_slot(const char *bytes, size_t n)
{
	return hash_bytes(bytes, n) & (WORD_CACHE_SLOTS - 1);
}

/* Copies a cached word's tokens to out; returns their count, 0 on a miss. */
static size_t cache_get(const hydb_tokenizer *t, const char *bytes, size_t n, int32_t *out)
{
	size_t i = cache_slot(bytes, n), got = 0;
	pthread_mutex_t *lock = (pthread_mutex_t *)&t->cache_locks[i % WORD_CACHE_LOCKS];
	const struct word_slot *e = &t->cache[i];
	pthread_mutex_lock(lock);
	if (e->len == n && !memcmp(e->bytes, bytes, n)) {
		got = e->n_ids;
		memcpy(out, e->ids, got * sizeof *out);
	}
	pthread_mutex_unlock(lock);
	return got;
}

static void cache_put(const hydb_tokenizer *t, const char *bytes, size_t n,
		      const int32_t *ids, size_t n_ids)
{
	size_t i = cache_slot(bytes, n);
	pthread_mutex_t *lock = (pthread_mutex_t *)&t->cache_locks[i % WORD_CACHE_LOCKS];
	struct word_slot *e = &t->cache[i];
	pthread_mutex_lock(lock);
	e->len = (uint8_t)n;
	e->n_ids = (uint8_t)n_ids;
	memcpy(e->bytes, bytes, n);
	memcpy(e->ids, ids, n_ids * sizeof *ids);
	pthread_mutex_unlock(lock);
}

/* Merges the word held in w->bytes[0..nb): the tokens are then w->sym
 * along the next links from 0. */
static void merge_word(const hydb_tokenizer *t, struct bpe *w, size_t nb)
{
	for (size_t i = 0; i < nb; i++)
		w->sym[i] = i + 1 < nb ? t->byte_id[w->bytes[i]] : t->byte_end_id[w->bytes[i]];
	bpe_merge(t, w, (int32_t)nb);
}

/* Appends the tokens of one word s[0..n) to ids[*k..limit). */
static void encode_word(const hydb_tokenizer *t, struct bpe *w, const uint32_t *s,
			size_t n, int32_t *ids, size_t *k, size_t limit)
{
	int32_t tok[WORD_CACHE_IDS + 1];
	size_t nb = 0, nt = 0;
	for (size_t i = 0; i < n; i++)
		nb += hydb_utf8_put((char *)w->bytes + nb, s[i]);
	if (nb <= WORD_CACHE_BYTES && (nt = cache_get(t, (char *)w->bytes, nb, tok))) {
		for (size_t i = 0; i < nt && *k < limit; i++)
			ids[(*k)++] = tok[i];
		return;
	}
	merge_word(t, w, nb);
	for (int32_t i = 0; i >= 0; i = w->next[i]) {
		if (nt <= WORD_CACHE_IDS)
			tok[nt] = w->sym[i];
		nt++;
		if (*k < limit)
			ids[(*k)++] = w->sym[i];
	}
	if (nb <= WORD_CACHE_BYTES && nt <= WORD_CACHE_IDS)
		cache_put(t, (char *)w->bytes, nb, tok, nt);
}

int hydb_tokenize(const hydb_tokenizer *t, const char *text, size_t len,
		  int32_t *ids, size_t context, size_t *n_used)
{
	cpbuf c = { 0 };
	struct bpe w = { 0 };
	size_t k = 1, limit;
	int rc;
	RETURN_ERROR_IF(!t || !ids || (!text && len), HYDB_EINVAL, "hydb_tokenize: NULL argument");
	RETURN_ERROR_IF(context < 2 || context > INT32_MAX, HYDB_EINVAL,
			"hydb_tokenize: context %zu leaves no room for start and end tokens", context);
	if ((rc = clean_cps(&c, text, len)) < 0 || (rc = bpe_alloc(&w, 4 * c.n)) < 0)
		goto done;
	limit = context - 1;
	ids[0] = hydb_tokenizer_bos(t);
	for (size_t i = 0; i < c.n && k < limit;) {
		int special;
		size_t m;
		if (py_isspace(c.v[i])) {
			i++;
			continue;
		}
		m = piece_len(c.v + i, c.n - i, &special);
		if (special)
			ids[k++] = special == 1 ? hydb_tokenizer_bos(t) : hydb_tokenizer_eos(t);
		else
			encode_word(t, &w, c.v + i, m, ids, &k, limit);
		i += m;
	}
	/* the EOS at k stays inside the context, however long the text */
	assert(k < context);
	for (size_t i = k; i < context; i++)
		ids[i] = hydb_tokenizer_eos(t);
	if (n_used)
		*n_used = k + 1;
done:
	bpe_free(&w);
	cp_free(&c);
	return rc;
}
