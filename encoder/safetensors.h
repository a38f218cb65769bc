/*
 * safetensors.h - a strict JSON reader and the safetensors container
 * (internal to encoder/).
 *
 * The model file is untrusted input: every number read from it is checked
 * against the file size before it is used to size or address anything.
 */
#ifndef HYDB_SAFETENSORS_H
#define HYDB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum hydb_mjson_type {
	HYDB_MJSON_NULL,
	HYDB_MJSON_BOOL,
	HYDB_MJSON_NUM,
	HYDB_MJSON_STR,
	HYDB_MJSON_ARR,
	HYDB_MJSON_OBJ
} hydb_mjson_type;

/* Nodes live in one array; children are linked by index (-1 = none) so the
 * array can grow without invalidating links. */
typedef struct hydb_mjson {
	hydb_mjson_type type;
	const char *key;   /* member name when the parent is an object */
	const char *str;   /* unescaped string, or the raw text of a number */
	size_t len;
	double num;
	int boolean;
	long first, last, next;
	size_t count;      /* members or elements */
} hydb_mjson;

typedef struct hydb_mjson_doc {
	hydb_mjson *nodes;
	size_t n, cap;
	char *arena;       /* unescaped strings; never longer than the text */
	size_t arena_used;
} hydb_mjson_doc;

/* Parse text (len bytes, UTF-8 checked by the caller) into doc. what names
 * the input in error messages. Errors: HYDB_EFORMAT, HYDB_ENOMEM. */
int hydb_mjson_parse(hydb_mjson_doc *doc, const char *text, size_t len,
		    const char *what);
void hydb_mjson_free(hydb_mjson_doc *doc);
static inline const hydb_mjson *hydb_mjson_root(const hydb_mjson_doc *doc)
{
	return doc->n ? &doc->nodes[0] : NULL;
}
/* First child of a container, or the next sibling; NULL at the end. */
const hydb_mjson *hydb_mjson_child(const hydb_mjson_doc *doc, const hydb_mjson *n);
const hydb_mjson *hydb_mjson_next(const hydb_mjson_doc *doc, const hydb_mjson *n);
/* Member of an object by name; NULL when absent or obj is not an object. */
const hydb_mjson *hydb_mjson_get(const hydb_mjson_doc *doc, const hydb_mjson *obj,
			       const char *key);
/* A non-negative integer written without sign, fraction or exponent. */
int hydb_mjson_u64(const hydb_mjson *n, uint64_t *out);

typedef enum hydb_st_dtype {
	HYDB_ST_F64, HYDB_ST_F32, HYDB_ST_F16, HYDB_ST_BF16,
	HYDB_ST_I64, HYDB_ST_I32, HYDB_ST_I16, HYDB_ST_I8,
	HYDB_ST_U64, HYDB_ST_U32, HYDB_ST_U16, HYDB_ST_U8,
	HYDB_ST_BOOL, HYDB_ST_F8_E4M3, HYDB_ST_F8_E5M2
} hydb_st_dtype;

#define HYDB_ST_MAX_DIMS 8

typedef struct hydb_st_entry {
	const char *name;
	hydb_st_dtype dtype;
	int ndim;
	uint64_t shape[HYDB_ST_MAX_DIMS];
	uint64_t begin, end;  /* relative to the data section */
	size_t count;         /* elements */
} hydb_st_entry;

/* A parsed safetensors header over a mapped file. Names point into doc. */
typedef struct hydb_st_file {
	hydb_mjson_doc doc;
	const hydb_mjson *metadata; /* "__metadata__" object or NULL */
	hydb_st_entry *entries;
	size_t n_entries;
	const unsigned char *data; /* start of the data section */
	size_t data_size;
} hydb_st_file;

/* Validate the container in map[0..size): header length, UTF-8, JSON,
 * dtypes, shapes, offsets (in range, sized shape x dtype, no overlap, no
 * hole). what names the file. Errors: HYDB_ECORRUPT (truncated),
 * HYDB_EMODEL, HYDB_ENOMEM. */
int hydb_st_open(hydb_st_file *st, const void *map, size_t size,
		 const char *what);
void hydb_st_close(hydb_st_file *st);
const char *hydb_st_dtype_name(hydb_st_dtype t);
size_t hydb_st_dtype_size(hydb_st_dtype t);
/* Metadata string value, or NULL. */
const hydb_mjson *hydb_st_meta(const hydb_st_file *st, const char *key);

#endif
