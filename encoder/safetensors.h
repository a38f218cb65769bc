/*
 * safetensors.h - the safetensors container (internal to encoder/).
 *
 * The model file is untrusted input: every number read from it is checked
 * against the file size before it is used to size or address anything.
 * JSON parsing itself is src/base/json.c's.
 */
#ifndef HYDB_SAFETENSORS_H
#define HYDB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/json.h"

/* A non-negative integer written without sign, fraction or exponent, read
 * exactly from its text (doubles lose offsets past 2^53). text is the
 * buffer the value was parsed from. */
int hydb_st_u64(const char *text, const hydb_json *n, uint64_t *out);

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
	hydb_json *doc;
	const char *text;          /* the header text doc was parsed from */
	const hydb_json *metadata; /* "__metadata__" object or NULL */
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
const hydb_json *hydb_st_meta(const hydb_st_file *st, const char *key);

#endif
