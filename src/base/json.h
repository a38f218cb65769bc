/*
 * json.h - a small strict JSON reader and string writer (internal), enough
 * for JSON Lines import, manifests and model metadata. Depth and size are
 * bounded so hostile input cannot exhaust the stack.
 */
#ifndef HYDB_JSON_H
#define HYDB_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
	HYDB_JSON_NULL,
	HYDB_JSON_FALSE,
	HYDB_JSON_TRUE,
	HYDB_JSON_NUMBER,
	HYDB_JSON_STRING,
	HYDB_JSON_ARRAY,
	HYDB_JSON_OBJECT
} hydb_json_type;

typedef struct hydb_json {
	hydb_json_type type;
	double num;           /* NUMBER: the nearest double */
	/* NUMBER written as an integer (digits only: no fraction, no
	 * exponent) whose magnitude fits in 64 bits: is_int = 1, negative
	 * gives the sign and u64 the exact magnitude. A double holds integers
	 * exactly only up to 2^53, so 64-bit ids must be read from here. */
	int is_int, negative;
	uint64_t u64;
	char *str;            /* STRING: decoded UTF-8, NUL-terminated */
	size_t str_len;       /* may contain NUL bytes: check str_len */
	size_t n;             /* ARRAY/OBJECT: children */
	struct hydb_json *items;
	char **keys;          /* OBJECT: keys[i] names items[i] */
	size_t raw_start, raw_end; /* byte span of this value in the input */
} hydb_json;

#define HYDB_JSON_MAX_DEPTH 64

/* Parse exactly one value (surrounding whitespace allowed). On error
 * returns HYDB_EFORMAT with "column N: reason" as the message. */
int hydb_json_parse(hydb_json **out, const char *text, size_t len);
void hydb_json_free(hydb_json *v);
/* Object member by name, or NULL. */
const hydb_json *hydb_json_get(const hydb_json *obj, const char *name);
/* A NUMBER whose value is a non-negative integer that uint64_t holds
 * exactly: digits only up to 2^64 - 1, or a fraction/exponent form whose
 * double is integral and below 2^53 (e.g. 5.0, 1e3). 0 on success, else -1
 * (not a number, negative, fractional or too large). */
int hydb_json_uint64(const hydb_json *v, uint64_t *out);
/* Write s as a JSON string literal (with quotes). */
void hydb_json_write_string(FILE *f, const char *s);

#endif
