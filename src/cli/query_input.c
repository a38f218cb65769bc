/*
 * query_input.c - the query vectors of `hydb query --vector-file F`: one
 * JSON array, JSON Lines (an array or {"vector": [...]} a line), .npy
 * (n x D) or .fvecs. Many queries run as one hydb_search_batch.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/query_input.h"
#include "admin.h"

#define MAX_TEXT_BYTES (256u << 20)

struct qbuf {
	float *v;
	size_t n, cap, dim;
};

static int qbuf_row(struct qbuf *b, float **row)
{
	if (b->n == b->cap) {
		size_t nc = b->cap ? 2 * b->cap : 64;
		float *nv = hydb_alloc_array(nc, b->dim * sizeof *nv, "query vectors");
		RETURN_ERROR_IF(!nv, HYDB_ENOMEM, "query vectors: out of memory");
		if (b->n)
			memcpy(nv, b->v, b->n * b->dim * sizeof *nv);
		free(b->v);
		b->v = nv;
		b->cap = nc;
	}
	*row = b->v + b->n++ * b->dim;
	return HYDB_OK;
}

/* One JSON value as a query: an array of dim numbers, or an object with
 * such an array under "vector". */
static int json_query(const hydb_json *j, float *out, size_t dim, const char *where)
{
	const hydb_json *a = j->type == HYDB_JSON_OBJECT ? hydb_json_get(j, "vector") : j;
	RETURN_ERROR_IF(!a || a->type != HYDB_JSON_ARRAY, HYDB_EFORMAT,
			"%s: expected an array of numbers or an object with \"vector\"", where);
	RETURN_ERROR_IF(a->n != dim, HYDB_EDIM, "%s: vector has %zu components, the database needs %zu", where,
			a->n, dim);
	for (size_t i = 0; i < dim; i++) {
		RETURN_ERROR_IF(a->items[i].type != HYDB_JSON_NUMBER, HYDB_EFORMAT,
				"%s: component %zu is not a number", where, i);
		out[i] = (float)a->items[i].num;
	}
	return HYDB_OK;
}

int hydb_cli_parse_query_json(const char *text, size_t len, float *out, size_t dim, const char *where)
{
	hydb_json *j;
	int rc = hydb_json_parse(&j, text, len);
	if (rc < 0)
		return hydb_error_prefix(rc, "%s", where);
	rc = json_query(j, out, dim, where);
	hydb_json_free(j);
	return rc;
}

static int read_rows(const char *path, size_t dim, double c, struct qbuf *b)
{
	hydb_reader *r;
	const hydb_record *recs;
	size_t n;
	uint64_t row0;
	int rc;
	FORWARD_IF_ERROR(hydb_reader_open(&r, path, HYDB_FMT_AUTO, dim, c, HYDB_COORDS_SPACE));
	while ((rc = hydb_reader_next(r, &recs, &n, 4096, &row0)) == 0 && n) {
		for (size_t i = 0; rc == 0 && i < n; i++) {
			float *row;
			rc = qbuf_row(b, &row);
			if (rc == 0)
				memcpy(row, recs[i].vector, dim * sizeof *row);
		}
		if (rc < 0)
			break;
	}
	hydb_reader_close(r);
	return rc;
}

static int slurp(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;
	RETURN_ERROR_IF(!f, errno == ENOENT ? HYDB_ENOTFOUND : HYDB_EIO, "%s: %s", path, strerror(errno));
	for (;;) {
		size_t got;
		if (n + 65536 + 1 > cap) {
			char *nb = cap + 65536 > MAX_TEXT_BYTES ? NULL : realloc(buf, cap + (cap ? cap : 65536) + 1);
			if (!nb) {
				free(buf);
				fclose(f);
				return hydb_error_set(cap + 65536 > MAX_TEXT_BYTES ? HYDB_ETOOBIG : HYDB_ENOMEM,
						      "%s: a JSON query file may hold at most %u MiB; use .npy for more",
						      path, MAX_TEXT_BYTES >> 20);
			}
			buf = nb;
			cap = cap + (cap ? cap : 65536);
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return hydb_error_set(HYDB_EIO, "%s: %s", path, strerror(errno));
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return HYDB_OK;
}

/* A whole-file JSON array of numbers is one query; otherwise every
 * non-blank line is one. */
static int read_json(const char *path, size_t dim, struct qbuf *b)
{
	char *text = NULL, *p, where[4200];
	size_t len = 0, line = 0;
	hydb_json *j;
	int rc;
	FORWARD_IF_ERROR(slurp(path, &text, &len));
	p = len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3) ? text + 3 : text;
	if (hydb_json_parse(&j, p, strlen(p)) == 0) {
		float *row;
		snprintf(where, sizeof where, "%s", path);
		rc = qbuf_row(b, &row);
		if (rc == 0)
			rc = json_query(j, row, dim, where);
		hydb_json_free(j);
		free(text);
		return rc;
	}
	rc = HYDB_OK;
	while (rc == 0 && *p) {
		char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		line++;
		if (n && p[n - 1] == '\r')
			n--;
		if (strspn(p, " \t\r") < n) {
			float *row;
			snprintf(where, sizeof where, "%s: line %zu", path, line);
			rc = qbuf_row(b, &row);
			if (rc == 0)
				rc = hydb_cli_parse_query_json(p, n, row, dim, where);
		}
		p = end ? end + 1 : p + strlen(p);
	}
	free(text);
	return rc;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

int hydb_cli_read_queries(const char *path, size_t dim, double c, float **out, size_t *nq)
{
	struct qbuf b = {NULL, 0, 0, dim};
	struct stat sb;
	int rc;
	*out = NULL;
	*nq = 0;
	RETURN_ERROR_IF(stat(path, &sb) != 0, errno == ENOENT ? HYDB_ENOTFOUND : HYDB_EIO, "%s: %s", path,
			strerror(errno));
	RETURN_ERROR_IF(S_ISDIR(sb.st_mode), HYDB_EFORMAT, "%s: is a directory, not a vector file", path);
	if (ends_with(path, ".npy") || ends_with(path, ".fvecs"))
		rc = read_rows(path, dim, c, &b);
	else
		rc = read_json(path, dim, &b);
	if (rc == 0 && b.n == 0)
		rc = hydb_error_set(HYDB_EFORMAT, "%s: holds no query vector", path);
	if (rc < 0) {
		free(b.v);
		return rc;
	}
	*out = b.v;
	*nq = b.n;
	return HYDB_OK;
}
