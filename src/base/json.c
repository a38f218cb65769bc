/* json.c - strict recursive-descent JSON reader (RFC 8259) and writer. */
#include "base/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

typedef struct {
	const char *s;
	size_t len, pos;
	int depth;
} parser;

static int fail(parser *p, const char *why)
{
	return hydb_error_set(HYDB_EFORMAT, "column %zu: %s", p->pos + 1, why);
}

static void skip_ws(parser *p)
{
	while (p->pos < p->len &&
	       (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
		p->s[p->pos] == '\r'))
		p->pos++;
}

static int parse_value(parser *p, hydb_json *v);

static int hex4(parser *p, unsigned *out)
{
	unsigned v = 0;
	if (p->pos + 4 > p->len)
		return fail(p, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		char c = p->s[p->pos++];
		v <<= 4;
		if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
		else return fail(p, "bad hex digit in \\u escape");
	}
	*out = v;
	return 0;
}

static int parse_string(parser *p, char **out, size_t *out_len)
{
	size_t start = ++p->pos, n = 0;
	char *buf;
	/* Decoded text is never longer than the escaped text. */
	while (p->pos < p->len && p->s[p->pos] != '"') {
		if (p->s[p->pos] == '\\')
			p->pos++;
		p->pos++;
	}
	if (p->pos >= p->len)
		return fail(p, "unterminated string");
	buf = malloc(p->pos - start + 1);
	if (!buf)
		return hydb_error_set(HYDB_ENOMEM, "JSON string: out of memory");
	p->pos = start;
	while (p->s[p->pos] != '"') {
		unsigned char c = (unsigned char)p->s[p->pos++];
		if (c < 0x20) {
			free(buf);
			return fail(p, "control character in string");
		}
		if (c != '\\') {
			buf[n++] = (char)c;
			continue;
		}
		c = (unsigned char)p->s[p->pos++];
		switch (c) {
		case '"': buf[n++] = '"'; break;
		case '\\': buf[n++] = '\\'; break;
		case '/': buf[n++] = '/'; break;
		case 'b': buf[n++] = '\b'; break;
		case 'f': buf[n++] = '\f'; break;
		case 'n': buf[n++] = '\n'; break;
		case 'r': buf[n++] = '\r'; break;
		case 't': buf[n++] = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (hex4(p, &cp) < 0) { free(buf); return HYDB_EFORMAT; }
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (p->pos + 2 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
					free(buf);
					return fail(p, "unpaired surrogate");
				}
				p->pos += 2;
				if (hex4(p, &lo) < 0) { free(buf); return HYDB_EFORMAT; }
				if (lo < 0xDC00 || lo > 0xDFFF) { free(buf); return fail(p, "unpaired surrogate"); }
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				free(buf);
				return fail(p, "unpaired surrogate");
			}
			n += hydb_utf8_put(buf + n, cp);
			break;
		}
		default:
			free(buf);
			return fail(p, "bad escape in string");
		}
	}
	p->pos++;
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return 0;
}

/* The exact magnitude of the digits s[0..n), if it fits in 64 bits. */
static int digits_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	for (size_t k = 0; k < n; k++)
		if (__builtin_mul_overflow(v, 10u, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s[k] - '0'), &v))
			return -1;
	*out = v;
	return 0;
}

static int parse_number(parser *p, hydb_json *v)
{
	size_t i = p->pos, int_start, int_end;
	char tmp[64];
	const char *s = p->s;
	if (i < p->len && s[i] == '-') i++;
	int_start = i;
	if (i < p->len && s[i] == '0') i++;
	else if (i < p->len && s[i] >= '1' && s[i] <= '9') while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
	else return fail(p, "bad number");
	int_end = i;
	if (i < p->len && s[i] == '.') {
		i++;
		if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, "bad number");
		while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
	}
	if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
		if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, "bad number");
		while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
	}
	if (i - p->pos >= sizeof tmp)
		return fail(p, "number too long");
	memcpy(tmp, s + p->pos, i - p->pos);
	tmp[i - p->pos] = '\0';
	v->type = HYDB_JSON_NUMBER;
	v->num = strtod(tmp, NULL);
	v->negative = s[p->pos] == '-';
	v->is_int = int_end == i && digits_u64(s + int_start, int_end - int_start, &v->u64) == 0;
	p->pos = i;
	return 0;
}

static int grow(hydb_json *v, size_t *cap, int with_keys)
{
	size_t nc = *cap ? *cap * 2 : 8;
	hydb_json *ni = realloc(v->items, nc * sizeof *ni);
	if (!ni)
		return hydb_error_set(HYDB_ENOMEM, "JSON: out of memory");
	v->items = ni;
	if (with_keys) {
		char **nk = realloc(v->keys, nc * sizeof *nk);
		if (!nk)
			return hydb_error_set(HYDB_ENOMEM, "JSON: out of memory");
		v->keys = nk;
	}
	*cap = nc;
	return 0;
}

static int parse_container(parser *p, hydb_json *v, int is_obj)
{
	size_t cap = 0;
	char close = is_obj ? '}' : ']';
	v->type = is_obj ? HYDB_JSON_OBJECT : HYDB_JSON_ARRAY;
	if (++p->depth > HYDB_JSON_MAX_DEPTH)
		return fail(p, "nesting too deep");
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		p->depth--;
		return 0;
	}
	for (;;) {
		char *key = NULL;
		size_t klen;
		skip_ws(p);
		if (is_obj) {
			if (p->pos >= p->len || p->s[p->pos] != '"')
				return fail(p, "expected a string key");
			FORWARD_IF_ERROR(parse_string(p, &key, &klen));
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':') {
				free(key);
				return fail(p, "expected ':'");
			}
			p->pos++;
		}
		if (v->n == cap && grow(v, &cap, is_obj) < 0) {
			free(key);
			return HYDB_ENOMEM;
		}
		memset(&v->items[v->n], 0, sizeof v->items[0]);
		if (is_obj)
			v->keys[v->n] = key;
		v->n++;
		FORWARD_IF_ERROR(parse_value(p, &v->items[v->n - 1]));
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == close) {
			p->pos++;
			p->depth--;
			return 0;
		}
		return fail(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int literal(parser *p, const char *word, hydb_json_type t, hydb_json *v)
{
	size_t n = strlen(word);
	if (p->pos + n > p->len || memcmp(p->s + p->pos, word, n))
		return fail(p, "unexpected character");
	p->pos += n;
	v->type = t;
	return 0;
}

static int parse_value(parser *p, hydb_json *v)
{
	int rc;
	skip_ws(p);
	if (p->pos >= p->len)
		return fail(p, "unexpected end of input");
	v->raw_start = p->pos;
	switch (p->s[p->pos]) {
	case '{': rc = parse_container(p, v, 1); break;
	case '[': rc = parse_container(p, v, 0); break;
	case '"':
		v->type = HYDB_JSON_STRING;
		rc = parse_string(p, &v->str, &v->str_len);
		break;
	case 't': rc = literal(p, "true", HYDB_JSON_TRUE, v); break;
	case 'f': rc = literal(p, "false", HYDB_JSON_FALSE, v); break;
	case 'n': rc = literal(p, "null", HYDB_JSON_NULL, v); break;
	default: rc = parse_number(p, v); break;
	}
	v->raw_end = p->pos;
	return rc;
}

static void free_inner(hydb_json *v)
{
	for (size_t i = 0; i < v->n; i++) {
		free_inner(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
}

void hydb_json_free(hydb_json *v)
{
	if (!v)
		return;
	free_inner(v);
	free(v);
}

int hydb_json_parse(hydb_json **out, const char *text, size_t len)
{
	parser p = {text, len, 0, 0};
	hydb_json *v = calloc(1, sizeof *v);
	int rc;
	RETURN_ERROR_IF(!v, HYDB_ENOMEM, "JSON: out of memory");
	rc = parse_value(&p, v);
	if (rc == 0) {
		skip_ws(&p);
		if (p.pos != p.len)
			rc = fail(&p, "trailing characters after the value");
	}
	if (rc < 0) {
		hydb_json_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

const hydb_json *hydb_json_get(const hydb_json *obj, const char *name)
{
	if (!obj || obj->type != HYDB_JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (!strcmp(obj->keys[i], name))
			return &obj->items[i];
	return NULL;
}

int hydb_json_uint64(const hydb_json *v, uint64_t *out)
{
	if (!v || v->type != HYDB_JSON_NUMBER)
		return -1;
	if (v->is_int) {
		if (v->negative && v->u64 != 0)
			return -1;
		*out = v->u64;
		return 0;
	}
	/* 5.0 or 1e3 name an integer exactly only while the double does. */
	if (v->num >= 0 && v->num < 0x1p53 && v->num == floor(v->num)) {
		*out = (uint64_t)v->num;
		return 0;
	}
	return -1;
}

void hydb_json_write_string(FILE *f, const char *s)
{
	fputc('"', f);
	while (s && *s) {
		unsigned char c = (unsigned char)*s;
		size_t run;
		uint32_t cp;
		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (c < 0x20) {
				fprintf(f, "\\u%04x", c);
			} else if (c < 0x80) {
				fputc(c, f);
			} else if ((run = hydb_utf8_get((const unsigned char *)s, strnlen(s, 4),
							&cp)) > 0) {
				fwrite(s, 1, run, f);
				s += run;
				continue;
			} else {
				/* A file name need not be UTF-8; JSON must be. */
				fputs("\\ufffd", f);
			}
		}
		s++;
	}
	fputc('"', f);
}
