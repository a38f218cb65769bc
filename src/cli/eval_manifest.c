/*
 * eval_manifest.c - read the quadruplet manifest of `hydb evaluate`:
 * JSON Lines or CSV (the two forms ViSU-style data sets are distributed
 * in), one quadruplet a row, image paths relative to the manifest.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/eval_manifest.h"
#include "admin.h"

#define MAX_MANIFEST ((size_t)1 << 30)

static const char *const names[4] = EVAL_FIELDS;
static const char *const alt_names[4] = {NULL, "nsfw_caption", NULL, "nsfw_image"};

void eval_manifest_free(struct eval_manifest *mf)
{
	for (size_t i = 0; i < mf->n * 4; i++)
		free(mf->field[i]);
	free(mf->field);
	free(mf->line);
	memset(mf, 0, sizeof *mf);
}

static int read_all(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	if (!f)
		return hydb_error_set(errno == ENOENT ? HYDB_ENOTFOUND : HYDB_EIO, "%s: %s", path,
				      strerror(errno));
	for (;;) {
		if (n + 65536 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 131072;
			if (cap > MAX_MANIFEST + 65536 + 1 || !(nb = realloc(buf, cap))) {
				free(buf);
				fclose(f);
				return hydb_error_set(cap > MAX_MANIFEST ? HYDB_ETOOBIG : HYDB_ENOMEM,
						      "%s: larger than 1 GiB or out of memory", path);
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, 65536, f);
		n += got;
		if (got < 65536)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return hydb_error_set(HYDB_EIO, "%s: read error", path);
	}
	fclose(f);
	buf[n] = 0;
	*out = buf;
	*len = n;
	return HYDB_OK;
}

/* Append a row; image paths are resolved against dir ("" for the cwd). */
static int add_row(struct eval_manifest *mf, const char *path, size_t line, const char *dir,
		   const char *const vals[4], const size_t lens[4])
{
	if (mf->n == mf->cap) {
		size_t cap = mf->cap ? mf->cap * 2 : 64;
		char **f = realloc(mf->field, cap * 4 * sizeof *f);
		size_t *l = f ? realloc(mf->line, cap * sizeof *l) : NULL;
		if (f)
			mf->field = f;
		if (!l)
			return hydb_error_set(HYDB_ENOMEM, "%s: out of memory", path);
		mf->line = l;
		mf->cap = cap;
	}
	for (int i = 0; i < 4; i++) {
		RETURN_ERROR_IF(lens[i] == 0, HYDB_EFORMAT, "%s: line %zu: field '%s' is empty", path, line,
				names[i]);
		RETURN_ERROR_IF(hydb_utf8_valid(vals[i], lens[i]), HYDB_EUTF8,
				"%s: line %zu: field '%s' is not UTF-8 (or holds a NUL byte)", path, line,
				names[i]);
	}
	for (int i = 0; i < 4; i++) {
		int rel = i >= 2 && vals[i][0] != '/' && dir[0];
		char *s = malloc(lens[i] + (rel ? strlen(dir) + 1 : 0) + 1);
		if (!s) {
			for (int j = 0; j < i; j++)
				free(mf->field[mf->n * 4 + j]);
			return hydb_error_set(HYDB_ENOMEM, "%s: out of memory", path);
		}
		if (rel)
			sprintf(s, "%s/%.*s", dir, (int)lens[i], vals[i]);
		else
			sprintf(s, "%.*s", (int)lens[i], vals[i]);
		mf->field[mf->n * 4 + i] = s;
	}
	mf->line[mf->n++] = line;
	return HYDB_OK;
}

static int jsonl_line(struct eval_manifest *mf, const char *path, const char *dir, size_t line,
		      const char *s, size_t len)
{
	hydb_json *v;
	const char *vals[4];
	size_t lens[4];
	int rc;
	if ((rc = hydb_json_parse(&v, s, len)) < 0)
		return hydb_error_prefix(HYDB_EFORMAT, "%s: line %zu", path, line);
	rc = v->type == HYDB_JSON_OBJECT ? HYDB_OK
					 : hydb_error_set(HYDB_EFORMAT, "%s: line %zu: not a JSON object", path, line);
	for (int i = 0; i < 4 && rc == HYDB_OK; i++) {
		const hydb_json *f = hydb_json_get(v, names[i]);
		if (!f && alt_names[i])
			f = hydb_json_get(v, alt_names[i]);
		if (!f)
			rc = hydb_error_set(HYDB_EFORMAT, "%s: line %zu: field '%s' is missing", path, line, names[i]);
		else if (f->type != HYDB_JSON_STRING)
			rc = hydb_error_set(HYDB_EFORMAT, "%s: line %zu: field '%s' is not a string", path, line,
					    names[i]);
		else {
			vals[i] = f->str;
			lens[i] = f->str_len;
		}
	}
	if (rc == HYDB_OK)
		rc = add_row(mf, path, line, dir, vals, lens);
	hydb_json_free(v);
	return rc;
}

static int read_jsonl(struct eval_manifest *mf, const char *path, const char *dir, const char *buf,
		      size_t len)
{
	size_t line = 0;
	for (size_t a = 0; a < len;) {
		const char *nl = memchr(buf + a, '\n', len - a);
		size_t b = nl ? (size_t)(nl - buf) : len, e = b, i;
		line++;
		if (e > a && buf[e - 1] == '\r')
			e--;
		for (i = a; i < e && (buf[i] == ' ' || buf[i] == '\t'); i++)
			;
		if (i < e)
			FORWARD_IF_ERROR(jsonl_line(mf, path, dir, line, buf + a, e - a));
		a = b + 1;
	}
	return HYDB_OK;
}

/* ---- CSV ------------------------------------------------------------------ */

struct csv_rec {
	char *text;	/* the fields, each NUL-terminated, one after another */
	size_t len, cap, off[65], flen[65], n;
};

static int csv_putc(struct csv_rec *r, char ch)
{
	if (r->len + 2 > r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 1024;
		char *t = realloc(r->text, cap);
		if (!t)
			return hydb_error_set(HYDB_ENOMEM, "out of memory");
		r->text = t;
		r->cap = cap;
	}
	r->text[r->len++] = ch;
	return HYDB_OK;
}

static int csv_end_field(struct csv_rec *r, const char *path, size_t line)
{
	RETURN_ERROR_IF(r->n == 64, HYDB_EFORMAT, "%s: line %zu: more than 64 columns", path, line);
	r->flen[r->n] = r->len - r->off[r->n];
	FORWARD_IF_ERROR(csv_putc(r, 0));
	r->n++;
	r->off[r->n] = r->len;
	return HYDB_OK;
}

/* One record from *pos (RFC 4180: "" inside quotes is a quote; a quoted
 * field may span lines). *line counts the lines consumed. */
static int csv_record(struct csv_rec *r, const char *path, const char *buf, size_t len, size_t *pos,
		      size_t *line)
{
	size_t i = *pos, start_line = *line;
	int quoted = 0, was_quoted = 0;
	r->len = r->n = 0;
	r->off[0] = 0;
	for (; i < len; i++) {
		char ch = buf[i];
		if (quoted) {
			if (ch == '"' && i + 1 < len && buf[i + 1] == '"')
				FORWARD_IF_ERROR(csv_putc(r, buf[i++]));
			else if (ch == '"')
				quoted = 0;
			else {
				*line += ch == '\n';
				FORWARD_IF_ERROR(csv_putc(r, ch));
			}
		} else if (ch == '"') {
			RETURN_ERROR_IF(was_quoted || r->len != r->off[r->n], HYDB_EFORMAT,
					"%s: line %zu: a quote inside an unquoted field", path, *line);
			quoted = was_quoted = 1;
		} else if (ch == ',') {
			FORWARD_IF_ERROR(csv_end_field(r, path, *line));
			was_quoted = 0;
		} else if (ch == '\n' || (ch == '\r' && i + 1 < len && buf[i + 1] == '\n')) {
			i += ch == '\r';
			break;
		} else {
			RETURN_ERROR_IF(was_quoted, HYDB_EFORMAT, "%s: line %zu: text after a closing quote",
					path, *line);
			FORWARD_IF_ERROR(csv_putc(r, ch));
		}
	}
	RETURN_ERROR_IF(quoted, HYDB_EFORMAT, "%s: line %zu: a quoted field is never closed", path,
			start_line);
	FORWARD_IF_ERROR(csv_end_field(r, path, *line));
	*pos = i + 1;
	(*line)++;
	return HYDB_OK;
}

static int csv_header(const struct csv_rec *r, const char *path, int col[4])
{
	for (int i = 0; i < 4; i++) {
		col[i] = -1;
		for (size_t j = 0; j < r->n; j++) {
			const char *h = r->text + r->off[j];
			if (!strcmp(h, names[i]) || (alt_names[i] && !strcmp(h, alt_names[i])))
				col[i] = (int)j;
		}
		RETURN_ERROR_IF(col[i] < 0, HYDB_EFORMAT, "%s: line 1: the header has no column '%s'", path,
				names[i]);
	}
	return HYDB_OK;
}

static int read_csv(struct eval_manifest *mf, const char *path, const char *dir, const char *buf,
		    size_t len)
{
	struct csv_rec r = {0};
	size_t pos = 0, line = 1, ncols = 0;
	int col[4], rc = HYDB_OK, header = 1;
	while (rc == HYDB_OK && pos < len) {
		size_t at = line;
		if ((rc = csv_record(&r, path, buf, len, &pos, &line)) < 0)
			break;
		if (r.n == 1 && r.flen[0] == 0)
			continue; /* a blank line */
		if (header) {
			rc = csv_header(&r, path, col);
			ncols = r.n;
			header = 0;
			continue;
		}
		if (r.n != ncols) {
			rc = hydb_error_set(HYDB_EFORMAT, "%s: line %zu: %zu columns, the header has %zu", path, at,
					    r.n, ncols);
			break;
		}
		const char *vals[4];
		size_t lens[4];
		for (int i = 0; i < 4; i++) {
			vals[i] = r.text + r.off[col[i]];
			lens[i] = r.flen[col[i]];
		}
		rc = add_row(mf, path, at, dir, vals, lens);
	}
	if (rc == HYDB_OK && header)
		rc = hydb_error_set(HYDB_EFORMAT, "%s: no header row", path);
	free(r.text);
	return rc;
}

static int is_csv(const char *path, const char *buf, size_t len)
{
	size_t pl = strlen(path), i;
	if (pl >= 4 && !strcasecmp(path + pl - 4, ".csv"))
		return 1;
	if ((pl >= 6 && !strcasecmp(path + pl - 6, ".jsonl")) || (pl >= 5 && !strcasecmp(path + pl - 5, ".json")) ||
	    (pl >= 7 && !strcasecmp(path + pl - 7, ".ndjson")))
		return 0;
	for (i = 0; i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'); i++)
		;
	return !(i < len && buf[i] == '{');
}

int eval_manifest_read(struct eval_manifest *mf, const char *path)
{
	char *buf = NULL, *dir;
	size_t len = 0;
	const char *slash = strrchr(path, '/');
	int rc;
	memset(mf, 0, sizeof *mf);
	FORWARD_IF_ERROR(read_all(path, &buf, &len));
	/* "/x.csv" has the directory "/" (its images are "//name") */
	dir = strndup(path, slash ? (size_t)(slash - path) + (slash == path) : 0);
	if (!dir) {
		free(buf);
		return hydb_error_set(HYDB_ENOMEM, "out of memory");
	}
	rc = is_csv(path, buf, len) ? read_csv(mf, path, dir, buf, len)
				    : read_jsonl(mf, path, dir, buf, len);
	if (rc == HYDB_OK && mf->n == 0)
		rc = hydb_error_set(HYDB_EFORMAT, "%s: no quadruplets", path);
	if (rc < 0)
		eval_manifest_free(mf);
	free(dir);
	free(buf);
	return rc;
}
