/*
 * safetensors.c - strict JSON reader and safetensors container validation.
 *
 * The container is 8 bytes of little-endian header length, a UTF-8 JSON
 * object, then the data section. Every tensor's byte range must lie inside
 * the data section, match shape x dtype exactly, and the ranges must tile
 * the section without overlap or holes (the format's rule against
 * polyglot files; it also rejects every overlap trick).
 */
#include "encoder/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Deep nesting has no use in a header and would exhaust the stack. */
#define JSON_MAX_DEPTH 32
/* The format's own limit on the header; larger means a damaged length. */
#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)

typedef struct parser {
	hydb_mjson_doc *doc;
	const char *s;
	size_t len, pos;
	const char *what;
} parser;

static int perr(const parser *p, const char *reason)
{
	return hydb_error_set(HYDB_EFORMAT, "%s: invalid JSON at byte %zu: %s",
			      p->what, p->pos, reason);
}

static void skip_ws(parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
				   p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

static long new_node(parser *p, hydb_mjson_type type)
{
	hydb_mjson_doc *d = p->doc;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		hydb_mjson *nn;
		size_t bytes;
		if (hydb_mul_size(&bytes, cap, sizeof *nn) < 0 ||
		    !(nn = realloc(d->nodes, bytes))) {
			hydb_error_set(HYDB_ENOMEM, "%s: out of memory parsing JSON",
				       p->what);
			return -1;
		}
		d->nodes = nn;
		d->cap = cap;
	}
	memset(&d->nodes[d->n], 0, sizeof d->nodes[0]);
	d->nodes[d->n].type = type;
	d->nodes[d->n].first = d->nodes[d->n].last = d->nodes[d->n].next = -1;
	return (long)d->n++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static int read_hex4(parser *p, uint32_t *out)
{
	uint32_t v = 0;
	if (p->len - p->pos < 4)
		return perr(p, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		int h = hexval(p->s[p->pos + i]);
		if (h < 0)
			return perr(p, "bad \\u escape");
		v = v * 16 + (uint32_t)h;
	}
	p->pos += 4;
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) { o[0] = (char)cp; return 1; }
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static int read_unicode_escape(parser *p, uint32_t *cp)
{
	FORWARD_IF_ERROR(read_hex4(p, cp));
	if (*cp >= 0xDC00 && *cp <= 0xDFFF)
		return perr(p, "lone low surrogate");
	if (*cp >= 0xD800 && *cp <= 0xDBFF) {
		uint32_t lo;
		if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
			return perr(p, "lone high surrogate");
		p->pos += 2;
		FORWARD_IF_ERROR(read_hex4(p, &lo));
		if (lo < 0xDC00 || lo > 0xDFFF)
			return perr(p, "bad surrogate pair");
		*cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
	}
	if (*cp == 0)
		return perr(p, "NUL character in string");
	return 0;
}

static int read_escape(parser *p, char *o, size_t *w)
{
	char c;
	uint32_t cp;
	if (p->pos >= p->len)
		return perr(p, "unterminated string");
	c = p->s[p->pos++];
	switch (c) {
	case '"': case '\\': case '/': o[(*w)++] = c; return 0;
	case 'b': o[(*w)++] = '\b'; return 0;
	case 'f': o[(*w)++] = '\f'; return 0;
	case 'n': o[(*w)++] = '\n'; return 0;
	case 'r': o[(*w)++] = '\r'; return 0;
	case 't': o[(*w)++] = '\t'; return 0;
	case 'u':
		FORWARD_IF_ERROR(read_unicode_escape(p, &cp));
		*w += put_utf8(o + *w, cp);
		return 0;
	default:
		return perr(p, "bad escape");
	}
}

/* Unescape into the arena. Output is never longer than the input span
 * (each escape is at least as long as its UTF-8), and the quotes leave room
 * for the terminating NUL. */
static int read_string(parser *p, const char **out, size_t *out_len)
{
	char *o = p->doc->arena + p->doc->arena_used;
	size_t w = 0;
	p->pos++; /* opening quote */
	for (;;) {
		unsigned char c;
		if (p->pos >= p->len)
			return perr(p, "unterminated string");
		c = (unsigned char)p->s[p->pos++];
		if (c == '"')
			break;
		if (c < 0x20)
			return perr(p, "control character in string");
		if (c == '\\')
			FORWARD_IF_ERROR(read_escape(p, o, &w));
		else
			o[w++] = (char)c;
	}
	o[w] = '\0';
	p->doc->arena_used += w + 1;
	*out = o;
	*out_len = w;
	return 0;
}

static int read_number(parser *p, hydb_mjson *n)
{
	size_t start = p->pos;
	char buf[64];
	char *end;
	if (p->s[p->pos] == '-')
		p->pos++;
	if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
		return perr(p, "bad number");
	if (p->s[p->pos] == '0' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' &&
	    p->s[p->pos + 1] <= '9')
		return perr(p, "leading zero in number");
	while (p->pos < p->len && strchr("0123456789+-.eE", p->s[p->pos]))
		p->pos++;
	if (p->pos - start >= sizeof buf)
		return perr(p, "number too long");
	memcpy(buf, p->s + start, p->pos - start);
	buf[p->pos - start] = '\0';
	n->num = strtod(buf, &end);
	if (*end != '\0')
		return perr(p, "bad number");
	n->str = p->s + start;
	n->len = p->pos - start;
	return 0;
}

static int read_literal(parser *p, const char *word)
{
	size_t l = strlen(word);
	if (p->len - p->pos < l || memcmp(p->s + p->pos, word, l) != 0)
		return perr(p, "unexpected character");
	p->pos += l;
	return 0;
}

static int parse_value(parser *p, long *out, int depth);

static void link_child(hydb_mjson_doc *d, long parent, long child)
{
	hydb_mjson *par = &d->nodes[parent];
	if (par->last < 0)
		par->first = child;
	else
		d->nodes[par->last].next = child;
	par->last = child;
	par->count++;
}

static int parse_members(parser *p, long self, int depth)
{
	int is_obj = p->doc->nodes[self].type == HYDB_MJSON_OBJ;
	char close = is_obj ? '}' : ']';
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		return 0;
	}
	for (;;) {
		const char *key = NULL;
		size_t klen;
		long child;
		skip_ws(p);
		if (is_obj) {
			if (p->pos >= p->len || p->s[p->pos] != '"')
				return perr(p, "expected member name");
			FORWARD_IF_ERROR(read_string(p, &key, &klen));
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return perr(p, "expected ':'");
			p->pos++;
		}
		FORWARD_IF_ERROR(parse_value(p, &child, depth + 1));
		p->doc->nodes[child].key = key;
		link_child(p->doc, self, child);
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == close) {
			p->pos++;
			return 0;
		}
		return perr(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int parse_value(parser *p, long *out, int depth)
{
	long self;
	char c;
	if (depth > JSON_MAX_DEPTH)
		return perr(p, "nested too deeply");
	skip_ws(p);
	if (p->pos >= p->len)
		return perr(p, "unexpected end");
	c = p->s[p->pos];
	switch (c) {
	case '{': self = new_node(p, HYDB_MJSON_OBJ); break;
	case '[': self = new_node(p, HYDB_MJSON_ARR); break;
	case '"': self = new_node(p, HYDB_MJSON_STR); break;
	case 't': case 'f': self = new_node(p, HYDB_MJSON_BOOL); break;
	case 'n': self = new_node(p, HYDB_MJSON_NULL); break;
	default: self = new_node(p, HYDB_MJSON_NUM); break;
	}
	if (self < 0)
		return HYDB_ENOMEM;
	*out = self;
	if (c == '{' || c == '[')
		return parse_members(p, self, depth);
	if (c == '"') {
		const char *s;
		size_t l;
		FORWARD_IF_ERROR(read_string(p, &s, &l));
		p->doc->nodes[self].str = s;
		p->doc->nodes[self].len = l;
		return 0;
	}
	if (c == 't' || c == 'f') {
		p->doc->nodes[self].boolean = c == 't';
		return read_literal(p, c == 't' ? "true" : "false");
	}
	if (c == 'n')
		return read_literal(p, "null");
	return read_number(p, &p->doc->nodes[self]);
}

int hydb_mjson_parse(hydb_mjson_doc *doc, const char *text, size_t len,
		    const char *what)
{
	parser p = {doc, text, len, 0, what};
	long root;
	int rc;
	memset(doc, 0, sizeof *doc);
	doc->arena = hydb_alloc_array(len + 1, 1, what);
	if (!doc->arena)
		return HYDB_ENOMEM;
	rc = parse_value(&p, &root, 0);
	if (rc == 0) {
		skip_ws(&p);
		if (p.pos != len)
			rc = perr(&p, "trailing characters");
	}
	if (rc < 0)
		hydb_mjson_free(doc);
	return rc;
}

void hydb_mjson_free(hydb_mjson_doc *doc)
{
	free(doc->nodes);
	free(doc->arena);
	memset(doc, 0, sizeof *doc);
}

const hydb_mjson *hydb_mjson_child(const hydb_mjson_doc *doc, const hydb_mjson *n)
{
	return n && n->first >= 0 ? &doc->nodes[n->first] : NULL;
}

const hydb_mjson *hydb_mjson_next(const hydb_mjson_doc *doc, const hydb_mjson *n)
{
	return n && n->next >= 0 ? &doc->nodes[n->next] : NULL;
}

const hydb_mjson *hydb_mjson_get(const hydb_mjson_doc *doc, const hydb_mjson *obj,
			       const char *key)
{
	if (!obj || obj->type != HYDB_MJSON_OBJ)
		return NULL;
	for (const hydb_mjson *c = hydb_mjson_child(doc, obj); c; c = hydb_mjson_next(doc, c))
		if (strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

int hydb_mjson_u64(const hydb_mjson *n, uint64_t *out)
{
	uint64_t v = 0;
	if (!n || n->type != HYDB_MJSON_NUM || n->len == 0)
		return -1;
	for (size_t i = 0; i < n->len; i++) {
		char c = n->str[i];
		if (c < '0' || c > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(c - '0'), &v))
			return -1;
	}
	*out = v;
	return 0;
}

/* ---- safetensors ------------------------------------------------------- */

static const struct {
	const char *name;
	size_t size;
} dtypes[] = {
	[HYDB_ST_F64] = {"F64", 8}, [HYDB_ST_F32] = {"F32", 4},
	[HYDB_ST_F16] = {"F16", 2}, [HYDB_ST_BF16] = {"BF16", 2},
	[HYDB_ST_I64] = {"I64", 8}, [HYDB_ST_I32] = {"I32", 4},
	[HYDB_ST_I16] = {"I16", 2}, [HYDB_ST_I8] = {"I8", 1},
	[HYDB_ST_U64] = {"U64", 8}, [HYDB_ST_U32] = {"U32", 4},
	[HYDB_ST_U16] = {"U16", 2}, [HYDB_ST_U8] = {"U8", 1},
	[HYDB_ST_BOOL] = {"BOOL", 1}, [HYDB_ST_F8_E4M3] = {"F8_E4M3", 1},
	[HYDB_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *hydb_st_dtype_name(hydb_st_dtype t) { return dtypes[t].name; }
size_t hydb_st_dtype_size(hydb_st_dtype t) { return dtypes[t].size; }

static int parse_dtype(const hydb_mjson *v, hydb_st_dtype *out)
{
	if (!v || v->type != HYDB_MJSON_STR)
		return -1;
	for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
		if (strcmp(v->str, dtypes[i].name) == 0) {
			*out = (hydb_st_dtype)i;
			return 0;
		}
	return -1;
}

static int parse_shape(const hydb_st_file *st, const hydb_mjson *v,
		       hydb_st_entry *e, const char *what)
{
	size_t count = 1;
	RETURN_ERROR_IF(!v || v->type != HYDB_MJSON_ARR, HYDB_EMODEL,
			"%s: tensor '%s': shape is missing or not an array", what, e->name);
	RETURN_ERROR_IF(v->count > HYDB_ST_MAX_DIMS, HYDB_EMODEL,
			"%s: tensor '%s': %zu dimensions, at most %d supported", what,
			e->name, v->count, HYDB_ST_MAX_DIMS);
	e->ndim = 0;
	for (const hydb_mjson *d = hydb_mjson_child(&st->doc, v); d; d = hydb_mjson_next(&st->doc, d)) {
		uint64_t x;
		RETURN_ERROR_IF(hydb_mjson_u64(d, &x) < 0 || x > SIZE_MAX, HYDB_EMODEL,
				"%s: tensor '%s': shape entry is not a non-negative integer",
				what, e->name);
		RETURN_ERROR_IF(hydb_mul_size(&count, count, (size_t)x) < 0, HYDB_EMODEL,
				"%s: tensor '%s': shape overflows", what, e->name);
		e->shape[e->ndim++] = x;
	}
	e->count = count;
	return 0;
}

static int parse_offsets(const hydb_st_file *st, const hydb_mjson *v,
			 hydb_st_entry *e, const char *what)
{
	const hydb_mjson *b = hydb_mjson_child(&st->doc, v), *en = hydb_mjson_next(&st->doc, b);
	size_t bytes;
	RETURN_ERROR_IF(!v || v->type != HYDB_MJSON_ARR || v->count != 2 ||
			hydb_mjson_u64(b, &e->begin) < 0 || hydb_mjson_u64(en, &e->end) < 0,
			HYDB_EMODEL, "%s: tensor '%s': data_offsets must be two "
			"non-negative integers", what, e->name);
	RETURN_ERROR_IF(e->begin > e->end, HYDB_EMODEL,
			"%s: tensor '%s': data_offsets [%llu, %llu] run backwards", what,
			e->name, (unsigned long long)e->begin, (unsigned long long)e->end);
	/* A range past the end is what a cut-short download looks like. */
	RETURN_ERROR_IF(e->end > st->data_size, HYDB_ECORRUPT,
			"%s: truncated or corrupt: tensor '%s' ends at data byte %llu, "
			"the data section has %zu", what, e->name,
			(unsigned long long)e->end, st->data_size);
	RETURN_ERROR_IF(hydb_mul_size(&bytes, e->count, dtypes[e->dtype].size) < 0 ||
			bytes != e->end - e->begin, HYDB_EMODEL,
			"%s: tensor '%s': %llu data bytes do not match shape x %s",
			what, e->name, (unsigned long long)(e->end - e->begin),
			dtypes[e->dtype].name);
	return 0;
}

static int parse_entry(hydb_st_file *st, const hydb_mjson *v, hydb_st_entry *e,
		       const char *what)
{
	e->name = v->key;
	RETURN_ERROR_IF(v->type != HYDB_MJSON_OBJ, HYDB_EMODEL,
			"%s: tensor '%s': entry is not an object", what, e->name);
	RETURN_ERROR_IF(parse_dtype(hydb_mjson_get(&st->doc, v, "dtype"), &e->dtype) < 0,
			HYDB_EMODEL, "%s: tensor '%s': unknown or missing dtype", what,
			e->name);
	FORWARD_IF_ERROR(parse_shape(st, hydb_mjson_get(&st->doc, v, "shape"), e, what));
	return parse_offsets(st, hydb_mjson_get(&st->doc, v, "data_offsets"), e, what);
}

static int cmp_begin(const void *a, const void *b)
{
	const hydb_st_entry *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	/* Empty tensors first so that they never hide an overlap. */
	return (x->end > y->end) - (x->end < y->end);
}

/* The tensors must tile the data section: sorted by start, each begins where
 * the previous ended. */
static int check_tiling(hydb_st_file *st, const char *what)
{
	uint64_t at = 0;
	hydb_st_entry *sorted;
	int rc = 0;
	if (st->n_entries == 0)
		return st->data_size == 0 ? 0 :
			hydb_error_set(HYDB_EMODEL, "%s: %zu data bytes but no tensors",
				       what, st->data_size);
	sorted = hydb_alloc_array(st->n_entries, sizeof *sorted, what);
	if (!sorted)
		return HYDB_ENOMEM;
	memcpy(sorted, st->entries, st->n_entries * sizeof *sorted);
	qsort(sorted, st->n_entries, sizeof *sorted, cmp_begin);
	for (size_t i = 0; i < st->n_entries && rc == 0; i++) {
		if (sorted[i].begin < at)
			rc = hydb_error_set(HYDB_EMODEL, "%s: tensor '%s' overlaps tensor '%s'",
					    what, sorted[i].name, sorted[i - 1].name);
		else if (sorted[i].begin > at)
			rc = hydb_error_set(HYDB_EMODEL, "%s: %llu unused data bytes before "
					    "tensor '%s'", what,
					    (unsigned long long)(sorted[i].begin - at), sorted[i].name);
		at = sorted[i].end;
	}
	if (rc == 0 && at != st->data_size)
		rc = hydb_error_set(HYDB_EMODEL, "%s: %llu unused data bytes after the "
				    "last tensor", what,
				    (unsigned long long)(st->data_size - at));
	free(sorted);
	return rc;
}

static int parse_entries(hydb_st_file *st, const hydb_mjson *root, const char *what)
{
	size_t n = 0;
	for (const hydb_mjson *c = hydb_mjson_child(&st->doc, root); c; c = hydb_mjson_next(&st->doc, c)) {
		if (strcmp(c->key, "__metadata__") == 0) {
			RETURN_ERROR_IF(c->type != HYDB_MJSON_OBJ, HYDB_EMODEL,
					"%s: __metadata__ is not an object", what);
			st->metadata = c;
			continue;
		}
		FORWARD_IF_ERROR(parse_entry(st, c, &st->entries[n], what));
		n++;
	}
	st->n_entries = n;
	return check_tiling(st, what);
}

static int check_metadata(const hydb_st_file *st, const char *what)
{
	for (const hydb_mjson *c = hydb_mjson_child(&st->doc, st->metadata); c;
	     c = hydb_mjson_next(&st->doc, c))
		RETURN_ERROR_IF(c->type != HYDB_MJSON_STR, HYDB_EMODEL,
				"%s: __metadata__ value '%s' is not a string", what, c->key);
	return 0;
}

static int read_header(hydb_st_file *st, const unsigned char *p, size_t size,
		       const char *what)
{
	uint64_t hlen = 0;
	const hydb_mjson *root;
	char where[4200];
	RETURN_ERROR_IF(size < 8, HYDB_ECORRUPT,
			"%s: truncated: %zu bytes, a safetensors file needs at least 8",
			what, size);
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | p[i];
	RETURN_ERROR_IF(hlen > size - 8, HYDB_ECORRUPT,
			"%s: truncated: header length %llu exceeds the %zu bytes after it",
			what, (unsigned long long)hlen, size - 8);
	RETURN_ERROR_IF(hlen > ST_MAX_HEADER, HYDB_EMODEL,
			"%s: header length %llu over the 100 MB limit", what,
			(unsigned long long)hlen);
	RETURN_ERROR_IF(hlen < 2 || p[8] != '{', HYDB_EMODEL,
			"%s: header is not a JSON object", what);
	RETURN_ERROR_IF(hydb_utf8_valid((const char *)p + 8, (size_t)hlen) < 0,
			HYDB_EMODEL, "%s: header is not valid UTF-8", what);
	snprintf(where, sizeof where, "%s: header", what);
	if (hydb_mjson_parse(&st->doc, (const char *)p + 8, (size_t)hlen, where) < 0)
		return HYDB_EMODEL;
	root = hydb_mjson_root(&st->doc);
	RETURN_ERROR_IF(root->type != HYDB_MJSON_OBJ, HYDB_EMODEL,
			"%s: header is not a JSON object", what);
	st->data = p + 8 + hlen;
	st->data_size = size - 8 - (size_t)hlen;
	return 0;
}

int hydb_st_open(hydb_st_file *st, const void *map, size_t size, const char *what)
{
	const hydb_mjson *root;
	int rc;
	memset(st, 0, sizeof *st);
	rc = read_header(st, map, size, what);
	if (rc < 0) {
		hydb_st_close(st);
		return rc;
	}
	root = hydb_mjson_root(&st->doc);
	st->entries = hydb_alloc_array(root->count ? root->count : 1,
				       sizeof *st->entries, what);
	rc = st->entries ? parse_entries(st, root, what) : HYDB_ENOMEM;
	if (rc == 0 && st->metadata)
		rc = check_metadata(st, what);
	if (rc < 0)
		hydb_st_close(st);
	return rc;
}

void hydb_st_close(hydb_st_file *st)
{
	hydb_mjson_free(&st->doc);
	free(st->entries);
	memset(st, 0, sizeof *st);
}

const hydb_mjson *hydb_st_meta(const hydb_st_file *st, const char *key)
{
	const hydb_mjson *v = hydb_mjson_get(&st->doc, st->metadata, key);
	return v && v->type == HYDB_MJSON_STR ? v : NULL;
}
