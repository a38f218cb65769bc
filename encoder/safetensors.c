/*
 * safetensors.c - safetensors container validation.
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

#include "base/base.h"

/* The format's own limit on the header; larger means a damaged length. */
#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)

int hydb_st_u64(const char *text, const hydb_json *n, uint64_t *out)
{
	uint64_t v = 0;
	if (!n || n->type != HYDB_JSON_NUMBER || n->raw_end <= n->raw_start)
		return -1;
	for (size_t i = n->raw_start; i < n->raw_end; i++) {
		char c = text[i];
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

static int parse_dtype(const hydb_json *v, hydb_st_dtype *out)
{
	if (!v || v->type != HYDB_JSON_STRING)
		return -1;
	for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
		if (strcmp(v->str, dtypes[i].name) == 0) {
			*out = (hydb_st_dtype)i;
			return 0;
		}
	return -1;
}

static int parse_shape(const hydb_st_file *st, const hydb_json *v,
		       hydb_st_entry *e, const char *what)
{
	size_t count = 1;
	RETURN_ERROR_IF(!v || v->type != HYDB_JSON_ARRAY, HYDB_EMODEL,
			"%s: tensor '%s': shape is missing or not an array", what, e->name);
	RETURN_ERROR_IF(v->n > HYDB_ST_MAX_DIMS, HYDB_EMODEL,
			"%s: tensor '%s': %zu dimensions, at most %d supported", what,
			e->name, v->n, HYDB_ST_MAX_DIMS);
	e->ndim = 0;
	for (size_t i = 0; i < v->n; i++) {
		uint64_t x;
		RETURN_ERROR_IF(hydb_st_u64(st->text, &v->items[i], &x) < 0 || x > SIZE_MAX,
				HYDB_EMODEL, "%s: tensor '%s': shape entry is not a "
				"non-negative integer", what, e->name);
		RETURN_ERROR_IF(hydb_mul_size(&count, count, (size_t)x) < 0, HYDB_EMODEL,
				"%s: tensor '%s': shape overflows", what, e->name);
		e->shape[e->ndim++] = x;
	}
	e->count = count;
	return 0;
}

static int parse_offsets(const hydb_st_file *st, const hydb_json *v,
			 hydb_st_entry *e, const char *what)
{
	size_t bytes;
	RETURN_ERROR_IF(!v || v->type != HYDB_JSON_ARRAY || v->n != 2 ||
			hydb_st_u64(st->text, &v->items[0], &e->begin) < 0 ||
			hydb_st_u64(st->text, &v->items[1], &e->end) < 0,
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

static int parse_entry(hydb_st_file *st, const char *name, const hydb_json *v,
		       hydb_st_entry *e, const char *what)
{
	e->name = name;
	RETURN_ERROR_IF(v->type != HYDB_JSON_OBJECT, HYDB_EMODEL,
			"%s: tensor '%s': entry is not an object", what, e->name);
	RETURN_ERROR_IF(parse_dtype(hydb_json_get(v, "dtype"), &e->dtype) < 0,
			HYDB_EMODEL, "%s: tensor '%s': unknown or missing dtype", what,
			e->name);
	FORWARD_IF_ERROR(parse_shape(st, hydb_json_get(v, "shape"), e, what));
	return parse_offsets(st, hydb_json_get(v, "data_offsets"), e, what);
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

static int parse_entries(hydb_st_file *st, const char *what)
{
	size_t n = 0;
	for (size_t i = 0; i < st->doc->n; i++) {
		const hydb_json *c = &st->doc->items[i];
		const char *key = st->doc->keys[i];
		if (strcmp(key, "__metadata__") == 0) {
			RETURN_ERROR_IF(c->type != HYDB_JSON_OBJECT, HYDB_EMODEL,
					"%s: __metadata__ is not an object", what);
			st->metadata = c;
			continue;
		}
		FORWARD_IF_ERROR(parse_entry(st, key, c, &st->entries[n], what));
		n++;
	}
	st->n_entries = n;
	return check_tiling(st, what);
}

static int check_metadata(const hydb_st_file *st, const char *what)
{
	for (size_t i = 0; i < st->metadata->n; i++)
		RETURN_ERROR_IF(st->metadata->items[i].type != HYDB_JSON_STRING, HYDB_EMODEL,
				"%s: __metadata__ value '%s' is not a string", what,
				st->metadata->keys[i]);
	return 0;
}

static int read_header(hydb_st_file *st, const unsigned char *p, size_t size,
		       const char *what)
{
	uint64_t hlen = 0;
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
	st->text = (const char *)p + 8;
	if (hydb_json_parse(&st->doc, st->text, (size_t)hlen) < 0)
		return hydb_error_prefix(HYDB_EMODEL, "%s: header: invalid JSON", what);
	RETURN_ERROR_IF(st->doc->type != HYDB_JSON_OBJECT, HYDB_EMODEL,
			"%s: header is not a JSON object", what);
	st->data = p + 8 + hlen;
	st->data_size = size - 8 - (size_t)hlen;
	return 0;
}

int hydb_st_open(hydb_st_file *st, const void *map, size_t size, const char *what)
{
	int rc;
	memset(st, 0, sizeof *st);
	rc = read_header(st, map, size, what);
	if (rc == 0) {
		st->entries = hydb_alloc_array(st->doc->n ? st->doc->n : 1,
					       sizeof *st->entries, what);
		rc = st->entries ? parse_entries(st, what) : HYDB_ENOMEM;
	}
	if (rc == 0 && st->metadata)
		rc = check_metadata(st, what);
	if (rc < 0)
		hydb_st_close(st);
	return rc;
}

void hydb_st_close(hydb_st_file *st)
{
	hydb_json_free(st->doc);
	free(st->entries);
	memset(st, 0, sizeof *st);
}

const hydb_json *hydb_st_meta(const hydb_st_file *st, const char *key)
{
	const hydb_json *v = hydb_json_get(st->metadata, key);
	return v && v->type == HYDB_JSON_STRING ? v : NULL;
}
