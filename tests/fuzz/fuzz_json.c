/*
 * fuzz_json.c - the JSON reader (src/json.h) on arbitrary bytes, and the
 * string writer: every decoded string without NUL must read back unchanged
 * from what hydb_json_write_string makes of it.
 */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <string.h>

#include "src/base/json.h"

static void round_trip(const char *s, size_t len)
{
	char *buf = NULL;
	size_t blen = 0;
	hydb_json *back = NULL;
	FILE *f;
	if (strlen(s) != len)
		return; /* the writer takes C strings */
	f = open_memstream(&buf, &blen);
	if (!f)
		return;
	hydb_json_write_string(f, s);
	fclose(f);
	FUZZ_CHECK(hydb_json_parse(&back, buf, blen) == 0);
	FUZZ_CHECK(back->type == HYDB_JSON_STRING && back->str_len == len &&
		   memcmp(back->str, s, len) == 0);
	hydb_json_free(back);
	free(buf);
}

static void walk(const hydb_json *v, size_t text_len, int depth)
{
	FUZZ_CHECK(depth <= HYDB_JSON_MAX_DEPTH + 1);
	FUZZ_CHECK(v->raw_start < v->raw_end && v->raw_end <= text_len);
	switch (v->type) {
	case HYDB_JSON_STRING:
		FUZZ_CHECK(v->str && v->str[v->str_len] == '\0');
		round_trip(v->str, v->str_len);
		break;
	case HYDB_JSON_OBJECT:
		for (size_t i = 0; i < v->n; i++) {
			FUZZ_CHECK(v->keys[i] != NULL);
			/* The first member of a name wins lookups. */
			FUZZ_CHECK(hydb_json_get(v, v->keys[i]) <= &v->items[i]);
		}
		/* fall through */
	case HYDB_JSON_ARRAY:
		for (size_t i = 0; i < v->n; i++)
			walk(&v->items[i], text_len, depth + 1);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hydb_json *v = NULL;
	if (hydb_json_parse(&v, (const char *)data, size) < 0)
		return 0;
	walk(v, size, 0);
	hydb_json_free(v);
	return 0;
}
