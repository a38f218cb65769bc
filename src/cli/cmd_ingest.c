/*
 * cmd_ingest.c - `hydb ingest [DB] DIR`: encode every image under a folder
 * and its captions with the HySAC model, label each entry by its safety
 * radius, and store and index it.
 *
 * Pipeline: a worker thread decodes and preprocesses batch i+1 while the
 * main thread runs the vision transformer on batch i; each batch (images
 * plus their captions) is one atomic commit. Both steps are the library's
 * (admin.h: hydb_image_batch), the same pipeline as hydb_encode_image_files,
 * so an ingested image is stored exactly as hydb encode prints it.
 * Re-running skips files whose path, size, mtime and captions are
 * unchanged, so a killed ingest resumes where it stopped and a finished
 * one is a no-op.
 *
 * Keys: the folder's path relative to the working directory (its absolute
 * path when it lies elsewhere) joined with the file's path under it, so two
 * folders holding a "chelsea.png" give two records. A record of another
 * source file under the same key (the same relative path ingested from
 * another directory) is replaced, and each such replacement is reported.
 * No problem of one file (decode, caption, key) is silent or costs the
 * others: it is reported and that file skipped, and the summary counts what
 * was committed.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "admin.h"
#include "cli/cli.h"
#include "cli/ingest.h"
#include "cli/model_select.h"

#define MAX_CAPTIONS 16
#define MAX_BATCH 256
/* Replacements named one per line; past this only counted. */
#define REPORT_REPLACED 10
#define STR_(x) #x
#define STR(x) STR_(x)

static const char usage[] =
	"usage: hydb ingest [DB] DIR [--model FILE] [--captions FILE.jsonl|FILE.csv]\n"
	"                   [--batch N] [--quiet] [--allow-outside-root] [--prune] [--precision P]\n"
	"Encode every JPEG, PNG and WebP under DIR (recursively; symbolic links to\n"
	"directories are not followed) with the HySAC model and store each as an image\n"
	"entry. Captions come from a sidecar file (photo.jpg -> photo.txt, one caption a\n"
	"line, at most 16) or a manifest (--captions: JSON Lines {\"path\": REL,\n"
	"\"captions\": [...]} or {\"path\", \"caption\"}; or CSV lines REL,caption). Each\n"
	"caption becomes a text entry linked to its image (same item). Entries are\n"
	"labelled safe or unsafe by their radius against the model's bound (or 'hydb\n"
	"calibrate''s threshold).\n"
	"Keys: DIR's path relative to the current directory (its absolute path when it\n"
	"is not below it) joined with the file's path under DIR, e.g. photos/cat.png;\n"
	"a caption's key is its image's key + \"#captionN\". A record of another file\n"
	"stored under the same key is replaced and reported.\n"
	"The model: --model, else $HYDB_MODEL, else the one recorded in the database;\n"
	"its dimension and curvature must be the database's.\n"
	"A new database is created with the model's dimension and curvature.\n"
	"Images stored from DIR whose files are gone are reported and kept; --prune\n"
	"deletes them and their captions (one transaction).\n"
	"  --batch N   images per forward pass and commit, 1..256 (default " STR(HYDB_ENCODE_BATCH) ")\n"
	"  --precision P  f32 (default) or bf16 (about 2x faster where the CPU has\n"
	"              AVX512_BF16 or AMX); one database holds embeddings of one precision\n"
	"Exit status 2 if any file failed (each is reported and skipped: an unreadable\n"
	"image or sidecar, an invalid UTF-8 caption, a key over the limits).\n";

typedef struct {
	char *rel;      /* path under the root: what a manifest names */
	char *abs;      /* path opened, and recorded as the source */
	char *key;      /* record key: the key prefix joined with rel */
	char *replaces; /* source of the stored record of another file, or NULL */
	int replaces_other; /* set even when copying that source failed */
	long long size, mtime;
} image_file;

typedef struct {
	image_file *v;
	size_t n, cap;
	const char *root;
	size_t rootlen;
	const char *prefix; /* of every key; "" when the root is the cwd */
} file_list;

static file_list *walk_list; /* nftw has no context pointer */

static int has_image_ext(const char *p)
{
	const char *dot = strrchr(p, '.');
	static const char *const ext[] = {".jpg", ".jpeg", ".png", ".webp"};
	if (!dot)
		return 0;
	for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
		if (!strcasecmp(dot, ext[i]))
			return 1;
	return 0;
}

static char *join_key(const char *prefix, const char *rel)
{
	size_t np = strlen(prefix), nr = strlen(rel);
	int slash = np && prefix[np - 1] != '/';
	char *k = malloc(np + slash + nr + 1);
	if (!k)
		return NULL;
	memcpy(k, prefix, np);
	if (slash)
		k[np] = '/';
	memcpy(k + np + slash, rel, nr + 1);
	return k;
}

/* The prefix of every key: the root (already resolved by realpath) relative
 * to the working directory, so that "photos" and "./photos/" give the same
 * keys; a root elsewhere keeps its absolute path, which no other root
 * shares. */
static const char *key_prefix(const char *root, char *cwd, size_t cwdcap)
{
	size_t n;
	if (!getcwd(cwd, cwdcap))
		return root;
	n = strlen(cwd);
	if (n == 1)
		return root + 1; /* the cwd is "/" */
	if (strncmp(root, cwd, n) || (root[n] != '/' && root[n] != 0))
		return root;
	return root + n + (root[n] == '/');
}

static int walk_fn(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	file_list *l = walk_list;
	image_file *f;
	struct stat tsb;
	(void)ftw;
	if (type == FTW_SL) {
		/* A link to a file is followed; to a directory, never (loops). */
		if (stat(path, &tsb) != 0 || !S_ISREG(tsb.st_mode))
			return 0;
		sb = &tsb;
	} else if (type != FTW_F) {
		if (type == FTW_DNR)
			fprintf(stderr, "hydb ingest: %s: cannot read directory (skipped)\n", path);
		return 0;
	}
	if (!has_image_ext(path))
		return 0;
	image_file *nv = hydb_array_grow(l->v, &l->cap, l->n + 1, sizeof *nv, "image list");
	if (!nv)
		return -1;
	l->v = nv;
	f = &l->v[l->n];
	memset(f, 0, sizeof *f);
	f->abs = strdup(path);
	f->rel = strdup(path + l->rootlen + (path[l->rootlen] == '/'));
	f->key = f->rel ? join_key(l->prefix, f->rel) : NULL;
	f->size = (long long)sb->st_size;
	f->mtime = (long long)sb->st_mtime;
	l->n++; /* counted before the check so that the caller frees it */
	return f->abs && f->rel && f->key ? 0 : -1;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const image_file *)a)->rel, ((const image_file *)b)->rel);
}

/* ---- captions ----------------------------------------------------------- */

typedef struct {
	char *rel;
	char *caps[MAX_CAPTIONS];
	int n;
	size_t line; /* where it was first named, for the unmatched warning */
	int used;    /* an image under the root has this path */
} manifest_entry;

typedef struct {
	manifest_entry *v;
	size_t n, cap;
} manifest;

static manifest_entry *manifest_find(manifest *m, const char *rel, int create)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].rel, rel))
			return &m->v[i];
	if (!create)
		return NULL;
	manifest_entry *nv = hydb_array_grow(m->v, &m->cap, m->n + 1, sizeof *nv, "manifest");
	if (!nv)
		return NULL;
	m->v = nv;
	memset(&m->v[m->n], 0, sizeof m->v[0]);
	m->v[m->n].rel = strdup(rel);
	return m->v[m->n].rel ? &m->v[m->n++] : NULL;
}

int hydb_ingest_path_ok(const char *rel, int allow_outside)
{
	const char *p = rel;
	if (allow_outside)
		return 1;
	if (!*rel)
		return 0;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 0;
		p += n;
		p += *p == '/';
	}
	return 1;
}

/* A manifest may name an image by its absolute path: inside the root it
 * is the same image as its relative path; outside it escapes the root. */
static const char *manifest_rel(const char *path, const char *root, int allow_outside)
{
	size_t n = strlen(root);
	if (path[0] != '/')
		return path;
	if (!strncmp(path, root, n) && path[n] == '/' && path[n + 1])
		return path + n + 1;
	return allow_outside ? path : NULL;
}

static int add_caption(manifest *m, const char *rel, const char *cap, const char *where, size_t line)
{
	manifest_entry *e;
	/* Checked here, where the line is known, not at commit (which would
	 * refuse the whole batch). */
	RETURN_ERROR_IF(hydb_utf8_valid(cap, strlen(cap)) < 0, HYDB_EUTF8,
			"%s: caption for %s is not valid UTF-8", where, rel);
	e = manifest_find(m, rel, 1);
	RETURN_ERROR_IF(!e, HYDB_ENOMEM, "%s: out of memory", where);
	if (!e->line)
		e->line = line;
	RETURN_ERROR_IF(e->n >= MAX_CAPTIONS, HYDB_ETOOBIG, "%s: more than %d captions for %s", where,
			MAX_CAPTIONS, rel);
	e->caps[e->n] = strdup(cap);
	RETURN_ERROR_IF(!e->caps[e->n], HYDB_ENOMEM, "%s: out of memory", where);
	e->n++;
	return HYDB_OK;
}

/* Where a manifest line is, for its messages, and the root its paths are
 * checked against. */
typedef struct {
	const char *root;
	int allow_outside;
	size_t line;
	char where[PATH_MAX + 32]; /* "FILE: line N" */
} manifest_pos;

/* The image a manifest line names, relative to the root; NULL (message
 * set) when it escapes the root. */
static const char *manifest_path(const manifest_pos *at, const char *path)
{
	const char *rel = manifest_rel(path, at->root, at->allow_outside);
	if (!rel || !hydb_ingest_path_ok(rel, at->allow_outside)) {
		hydb_error_set(HYDB_EFORMAT, "%s: path '%s' escapes the ingest root %s", at->where, path,
			       at->root);
		return NULL;
	}
	return rel;
}

/* "PATH,CAPTION" (a first line "path,..." is a header); the caption may be
 * in double quotes. */
static int manifest_csv_line(manifest *m, char *line, const manifest_pos *at)
{
	char *comma = strchr(line, ','), *c;
	const char *rel;
	size_t cl;
	RETURN_ERROR_IF(!comma, HYDB_EFORMAT, "%s: expected PATH,CAPTION", at->where);
	*comma = 0;
	if (at->line == 1 && !strcmp(line, "path"))
		return HYDB_OK;
	if (!(rel = manifest_path(at, line)))
		return HYDB_EFORMAT;
	c = comma + 1;
	cl = strlen(c);
	if (cl >= 2 && c[0] == '"' && c[cl - 1] == '"') {
		c[cl - 1] = 0;
		c++;
	}
	return add_caption(m, rel, c, at->where, at->line);
}

/* {"path": REL, "caption": TEXT} and/or {"path": REL, "captions": [...]}. */
static int manifest_json_line(manifest *m, const char *line, size_t len, const manifest_pos *at)
{
	hydb_json *j;
	const hydb_json *p, *c, *cs;
	const char *rel = NULL;
	int rc = hydb_json_parse(&j, line, len);
	if (rc < 0)
		return hydb_error_prefix(rc, "%s", at->where);
	p = hydb_json_get(j, "path");
	c = hydb_json_get(j, "caption");
	cs = hydb_json_get(j, "captions");
	if (!p || p->type != HYDB_JSON_STRING)
		rc = hydb_error_set(HYDB_EFORMAT, "%s: \"path\" must be a string", at->where);
	else if (!(rel = manifest_path(at, p->str)))
		rc = HYDB_EFORMAT;
	if (rc == 0 && c && c->type == HYDB_JSON_STRING)
		rc = add_caption(m, rel, c->str, at->where, at->line);
	if (rc == 0 && cs && cs->type == HYDB_JSON_ARRAY)
		for (size_t i = 0; rc == 0 && i < cs->n; i++)
			if (cs->items[i].type == HYDB_JSON_STRING)
				rc = add_caption(m, rel, cs->items[i].str, at->where, at->line);
	hydb_json_free(j);
	return rc;
}

/* A captions manifest: CSV when its name ends in .csv, else JSON Lines.
 * The first bad line stops the load (and the ingest, before any write). */
static int manifest_load(manifest *m, const char *path, const char *root, int allow_outside)
{
	FILE *f = fopen(path, "rb");
	manifest_pos at = {root, allow_outside, 0, ""};
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = HYDB_OK;
	const char *dot = strrchr(path, '.');
	int csv = dot && !strcasecmp(dot, ".csv");

	RETURN_ERROR_IF(!f, HYDB_ENOTFOUND, "%s: %s", path, strerror(errno));
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		at.line++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (len == 0)
			continue;
		snprintf(at.where, sizeof at.where, "%s: line %zu", path, at.line);
		rc = csv ? manifest_csv_line(m, line, &at) : manifest_json_line(m, line, (size_t)len, &at);
	}
	free(line);
	fclose(f);
	return rc;
}

static void free_captions(char **caps, int *n)
{
	for (int i = 0; i < *n; i++)
		free(caps[i]);
	*n = 0;
}

/* Opens the sidecar PATH-without-extension.txt into *out; *out is NULL
 * when there is none. Anything at that name that cannot be read (mode 000,
 * a directory, a dangling link) is an error, never "no captions". */
static int sidecar_open(const char *path, FILE **out)
{
	struct stat lsb;
	int e;
	*out = fopen(path, "rb");
	if (*out)
		return HYDB_OK;
	e = errno;
	if (e == ENOENT && lstat(path, &lsb) != 0)
		return HYDB_OK;
	return hydb_error_set(HYDB_EIO, "%s: caption file unreadable: %s", path,
			      e == ENOENT ? "dangling symbolic link" : strerror(e));
}

/* Captions from the sidecar, one per line; blank lines are skipped. */
static int sidecar_captions(const image_file *img, char **caps, int *n)
{
	char path[PATH_MAX + 8];
	const char *dot = strrchr(img->abs, '.');
	FILE *f;
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int rc;
	snprintf(path, sizeof path, "%.*s.txt", (int)(dot - img->abs), img->abs);
	FORWARD_IF_ERROR(sidecar_open(path, &f));
	if (!f)
		return HYDB_OK;
	rc = HYDB_OK;
	errno = 0;
	while (rc == HYDB_OK && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
			line[--len] = 0;
		if (len == 0)
			continue;
		if (hydb_utf8_valid(line, (size_t)len) < 0)
			rc = hydb_error_set(HYDB_EUTF8, "%s: line %zu: caption is not valid UTF-8", path,
					    lineno);
		else if (*n == MAX_CAPTIONS)
			rc = hydb_error_set(HYDB_ETOOBIG, "%s: more than %d captions", path, MAX_CAPTIONS);
		else if (!(caps[*n] = strdup(line)))
			rc = hydb_error_set(HYDB_ENOMEM, "%s: out of memory", path);
		else
			(*n)++;
	}
	if (rc == HYDB_OK && ferror(f))
		rc = hydb_error_set(HYDB_EIO, "%s: caption file unreadable: %s", path, strerror(errno));
	free(line);
	fclose(f);
	return rc;
}

/* ---- decode/preprocess worker -------------------------------------------- */

/* One batch of files decoded and preprocessed into images, on a worker
 * thread while the previous batch runs through the tower. */
typedef struct {
	image_file **files;
	size_t n;
	hydb_image_batch *images; /* the files that decoded, in order */
	int *ok;                  /* 1 decoded, 0 failed */
	char (*err)[512];
	pthread_t th;
	int running;
} prep_job;

static void *prep_run(void *arg)
{
	prep_job *j = arg;
	hydb_image_batch_clear(j->images);
	for (size_t i = 0; i < j->n; i++) {
		int rc = hydb_image_batch_add(j->images, j->files[i]->abs);
		j->ok[i] = rc == 0;
		if (rc < 0)
			snprintf(j->err[i], sizeof j->err[i], "%s", hydb_last_error());
	}
	return NULL;
}

/* Decode n files on a worker thread, or on this one if none can be made. */
static void prep_start(prep_job *j, image_file **files, size_t n)
{
	j->files = files;
	j->n = n;
	j->running = pthread_create(&j->th, NULL, prep_run, j) == 0;
	if (!j->running)
		prep_run(j);
}

/* ---- ingest state --------------------------------------------------------- */

typedef struct {
	hydb_db *db;
	hydb_model *m;
	manifest man;
	int quiet, tty, allow_outside, prune;
	size_t batch;
	double thr_image, thr_text;
	/* Records committed (images, captions), files skipped as current,
	 * files that failed, committed images that replaced another file's. */
	uint64_t ingested, captions, unchanged, failed, replaced;
	size_t done, total, printed_done;
	double t0, last_progress;
	double t_encoder;   /* seconds inside the transformer (vision + text) */
	double t_wait;      /* seconds waiting for the decode worker */
} ingest;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void progress(ingest *g, int final)
{
	double el = now_s() - g->t0, rate = el > 0 ? g->done / el : 0;
	double eta = rate > 0 ? (g->total - g->done) / rate : 0;
	if (g->quiet || (!final && now_s() - g->last_progress < (g->tty ? 0.2 : 2.0)))
		return;
	if (final && !g->tty && g->printed_done == g->done)
		return; /* the last line already said it */
	g->printed_done = g->done;
	g->last_progress = now_s();
	if (g->tty) {
		int bar = g->total ? (int)(30.0 * g->done / g->total) : 30;
		fprintf(stderr, "\r[%.*s%*s] %zu/%zu images %6.2f img/s ETA %5.0fs failed %llu ", bar,
			"##############################", 30 - bar, "", g->done, g->total, rate, eta,
			(unsigned long long)g->failed);
		if (final)
			fputc('\n', stderr);
	} else {
		fprintf(stderr, "progress done=%zu total=%zu failed=%llu rate=%.3f eta=%.0f\n", g->done,
			g->total, (unsigned long long)g->failed, rate, eta);
	}
	fflush(stderr);
}

static hydb_label label_for(double radius, double thr)
{
	if (!(thr > 0) || !isfinite(thr))
		return HYDB_LABEL_UNKNOWN;
	return radius <= thr ? HYDB_LABEL_SAFE : HYDB_LABEL_UNSAFE;
}

static uint64_t captions_hash(char **caps, int n)
{
	XXH64_state_t *s = XXH64_createState();
	uint64_t h;
	XXH64_reset(s, 0);
	for (int i = 0; i < n; i++)
		XXH64_update(s, caps[i], strlen(caps[i]) + 1);
	h = XXH64_digest(s);
	XXH64_freeState(s);
	return h;
}

/* Is the stored entry under f's key this file, unchanged? Also notes in f
 * whether that entry came from another source file (f->replaces) and, in
 * *old_ncap, how many captions it had. */
static int inspect_stored(ingest *g, image_file *f, uint64_t chash, int *old_ncap)
{
	hydb_entry *e;
	hydb_json *j = NULL;
	const hydb_json *path = NULL;
	int same = 0;
	*old_ncap = 0;
	if (hydb_get_key(g->db, f->key, &e) < 0)
		return 0;
	if (e->meta && hydb_json_parse(&j, e->meta, strlen(e->meta)) == 0) {
		const hydb_json *sz = hydb_json_get(j, "size"), *mt = hydb_json_get(j, "mtime"),
				*ch = hydb_json_get(j, "captions_hash"), *nc = hydb_json_get(j, "captions");
		char want[32];
		path = hydb_json_get(j, "path");
		if (path && path->type != HYDB_JSON_STRING)
			path = NULL;
		snprintf(want, sizeof want, "%016llx", (unsigned long long)chash);
		same = path && !strcmp(path->str, f->abs) && sz && mt && ch &&
		       sz->num == (double)f->size && mt->num == (double)f->mtime &&
		       ch->type == HYDB_JSON_STRING && !strcmp(ch->str, want);
		if (nc && nc->type == HYDB_JSON_NUMBER)
			*old_ncap = (int)nc->num;
	}
	if (!path || strcmp(path->str, f->abs)) {
		f->replaces_other = 1;
		f->replaces = strdup(path ? path->str : "(a record not made by hydb ingest)");
	}
	hydb_json_free(j);
	hydb_entry_free(e);
	return same;
}

static uint64_t file_hash(const char *path)
{
	FILE *f = fopen(path, "rb");
	char buf[65536];
	size_t n;
	XXH3_state_t *s;
	uint64_t h;
	if (!f)
		return 0;
	s = XXH3_createState();
	XXH3_64bits_reset(s);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		XXH3_64bits_update(s, buf, n);
	h = XXH3_64bits_digest(s);
	XXH3_freeState(s);
	fclose(f);
	return h;
}

typedef struct {
	hydb_record *recs;
	float *vecs;
	char **strs;   /* owned strings, freed after commit */
	size_t n, nstr, cap, capstr;
} pending;

static int pend_str(pending *p, char *s)
{
	if (!s)
		return hydb_error_set(HYDB_ENOMEM, "ingest: out of memory");
	char **ns = hydb_array_grow(p->strs, &p->capstr, p->nstr + 1, sizeof *ns, "ingest");
	if (!ns)
		return HYDB_ENOMEM;
	p->strs = ns;
	p->strs[p->nstr++] = s;
	return HYDB_OK;
}

static void pend_clear(pending *p)
{
	for (size_t i = 0; i < p->nstr; i++)
		free(p->strs[i]);
	p->n = p->nstr = 0;
}

static char *meta_json(const image_file *f, uint64_t fh, uint64_t chash, int ncap, const char *of)
{
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);
	if (!m)
		return NULL;
	fputs("{\"path\":", m);
	hydb_json_write_string(m, f->abs);
	fprintf(m, ",\"size\":%lld,\"mtime\":%lld,\"hash\":\"%016llx\"", f->size, f->mtime,
		(unsigned long long)fh);
	if (of) {
		fputs(",\"image\":", m);
		hydb_json_write_string(m, of);
	} else {
		fprintf(m, ",\"captions\":%d,\"captions_hash\":\"%016llx\"", ncap, (unsigned long long)chash);
	}
	fputc('}', m);
	fclose(m);
	return out;
}

/* Encode the captions of one image and queue all its records. Each record
 * is validated as hydb_put will validate it, so that a bad key or caption
 * costs this item only and not the whole batch's commit. */
static int queue_item(ingest *g, pending *p, const image_file *f, const float *vec, float radius,
		      char **caps, int ncap, uint64_t chash)
{
	size_t d = hydb_model_dim(g->m);
	uint64_t item = XXH3_64bits(f->key, strlen(f->key)) >> 1;
	uint64_t fh = file_hash(f->abs);
	char *meta;
	size_t base = p->n;

	if (p->n + 1 + (size_t)ncap > p->cap)
		return hydb_error_set(HYDB_EINVAL, "ingest: batch overflow");
	{
		hydb_record *rec = &p->recs[p->n++];
		memcpy(p->vecs + base * d, vec, d * sizeof *vec);
		memset(rec, 0, sizeof *rec);
		rec->key = f->key;
		rec->vector = p->vecs + base * d;
		rec->modality = HYDB_MOD_IMAGE;
		rec->label = label_for(radius, g->thr_image);
		rec->item = item;
		rec->caption = ncap ? caps[0] : NULL;
		meta = meta_json(f, fh, chash, ncap, NULL);
		FORWARD_IF_ERROR(pend_str(p, meta));
		rec->meta = meta;
	}
	for (int i = 0; i < ncap; i++) {
		float r, *v = p->vecs + p->n * d;
		char key[HYDB_MAX_KEY + 32];
		hydb_record *rec;
		double te = now_s();
		int rc = hydb_encode_text(g->m, caps[i], v, &r, NULL);
		g->t_encoder += now_s() - te;
		if (rc < 0)
			return hydb_error_prefix(rc, "%s: caption %d", f->abs, i + 1);
		rec = &p->recs[p->n++];
		memset(rec, 0, sizeof *rec);
		snprintf(key, sizeof key, "%s#caption%d", f->key, i + 1);
		FORWARD_IF_ERROR(pend_str(p, strdup(key)));
		rec->key = p->strs[p->nstr - 1];
		rec->vector = v;
		rec->modality = HYDB_MOD_TEXT;
		rec->label = label_for(r, g->thr_text);
		rec->item = item;
		rec->caption = caps[i];
		meta = meta_json(f, fh, chash, ncap, f->key);
		FORWARD_IF_ERROR(pend_str(p, meta));
		rec->meta = meta;
	}
	for (size_t i = base; i < p->n; i++)
		FORWARD_IF_ERROR(hydb_record_validate(&p->recs[i], d, hydb_curvature(g->db), f->abs));
	return HYDB_OK;
}

static void report_fail(ingest *g, const char *msg)
{
	g->failed++;
	if (g->tty)
		fputc('\n', stderr);
	fprintf(stderr, "hydb ingest: %s (skipped)\n", msg);
}

/* Called once the record that replaced another file's is committed. */
static void report_replaced(ingest *g, const image_file *f)
{
	if (g->replaced++ >= REPORT_REPLACED)
		return;
	if (g->tty)
		fputc('\n', stderr);
	fprintf(stderr, "hydb ingest: %s: replaced the record of %s with %s\n", f->key,
		f->replaces ? f->replaces : "another file", f->abs);
}

/* Captions for one file: manifest first, else sidecar. Strings owned by
 * caps (freed by the caller); on an error none are left. */
static int gather_captions(ingest *g, const image_file *f, char **caps, int *n)
{
	manifest_entry *e = manifest_find(&g->man, f->rel, 0);
	int rc = HYDB_OK;
	*n = 0;
	if (e)
		e->used = 1;
	if (!e)
		rc = sidecar_captions(f, caps, n);
	for (int i = 0; e && rc == HYDB_OK && i < e->n; i++) {
		if (!(caps[*n] = strdup(e->caps[i])))
			rc = hydb_error_set(HYDB_ENOMEM, "%s: out of memory", f->abs);
		else
			(*n)++;
	}
	if (rc < 0)
		free_captions(caps, n);
	return rc;
}

/* Queue the records of the encoded images of one batch (points in vecs,
 * their radii in radii), commit them in one transaction, and count what was
 * committed. An image whose captions or records are bad is reported and
 * left out. */
static int commit_batch(ingest *g, pending *p, image_file **files, size_t n, const float *vecs,
			const float *radii)
{
	size_t d = hydb_model_dim(g->m);
	image_file *queued[MAX_BATCH];
	size_t nq = 0;
	uint64_t ncaps = 0;

	pend_clear(p);
	for (size_t i = 0; i < n; i++) {
		char *caps[MAX_CAPTIONS];
		int ncap = 0, rc = gather_captions(g, files[i], caps, &ncap);
		size_t before = p->n, before_s = p->nstr;
		if (rc < 0) {
			report_fail(g, hydb_last_error());
			continue;
		}
		for (int c = 0; c < ncap; c++)
			FORWARD_IF_ERROR(pend_str(p, caps[c]));
		rc = queue_item(g, p, files[i], vecs + i * d, radii[i], caps, ncap,
				captions_hash(caps, ncap));
		if (rc < 0) {
			report_fail(g, hydb_last_error());
			for (size_t s = before_s + (size_t)ncap; s < p->nstr; s++)
				free(p->strs[s]);
			p->nstr = before_s + (size_t)ncap;
			p->n = before;
			continue;
		}
		queued[nq++] = files[i];
		ncaps += (uint64_t)ncap;
	}
	if (p->n)
		FORWARD_IF_ERROR(hydb_put(g->db, p->recs, p->n, NULL));
	g->ingested += nq;
	g->captions += ncaps;
	for (size_t i = 0; i < nq; i++)
		if (queued[i]->replaces_other)
			report_replaced(g, queued[i]);
	return HYDB_OK;
}

/* What the batches share: the two decode jobs (one filling while the other
 * is encoded), the records being queued, and one batch's points. */
typedef struct {
	prep_job jobs[2];
	pending p;
	float *vecs, *radii;
} batch_state;

static int batch_state_init(batch_state *s, ingest *g)
{
	size_t d = hydb_model_dim(g->m), B = g->batch;
	int ok = 1;
	memset(s, 0, sizeof *s);
	s->p.cap = B * (1 + MAX_CAPTIONS);
	s->p.recs = calloc(s->p.cap, sizeof *s->p.recs);
	s->p.vecs = calloc(s->p.cap * d, sizeof(float));
	s->vecs = calloc(B * d, sizeof(float));
	s->radii = calloc(B, sizeof(float));
	for (int k = 0; k < 2; k++) {
		prep_job *j = &s->jobs[k];
		ok &= hydb_image_batch_new(&j->images, g->m, B) == 0;
		j->ok = calloc(B, sizeof(int));
		j->err = calloc(B, sizeof j->err[0]);
		ok &= j->ok && j->err;
	}
	if (!ok || !s->p.recs || !s->p.vecs || !s->vecs || !s->radii)
		return hydb_error_set(HYDB_ENOMEM, "ingest: out of memory for a batch of %zu", B);
	return HYDB_OK;
}

static void batch_state_free(batch_state *s)
{
	for (int k = 0; k < 2; k++) {
		prep_job *j = &s->jobs[k];
		if (j->running)
			pthread_join(j->th, NULL);
		hydb_image_batch_free(j->images);
		free(j->ok);
		free(j->err);
	}
	pend_clear(&s->p);
	free(s->p.strs);
	free(s->p.recs);
	free(s->p.vecs);
	free(s->vecs);
	free(s->radii);
}

/* Wait for the worker decoding j (the time counts as waiting for decode). */
static void prep_wait(ingest *g, prep_job *j)
{
	if (!j->running)
		return;
	double tw = now_s();
	pthread_join(j->th, NULL);
	g->t_wait += now_s() - tw;
	j->running = 0;
}

/* Report the files of j that failed to decode and keep the others, in
 * order, at the front of j->files: the batch holds exactly their images.
 * Returns how many are kept. */
static size_t prep_keep_decoded(ingest *g, prep_job *j)
{
	size_t nok = 0;
	for (size_t i = 0; i < j->n; i++) {
		if (!j->ok[i]) {
			report_fail(g, j->err[i]);
			continue;
		}
		j->files[nok++] = j->files[i];
	}
	return nok;
}

/* The decoded images of j through the tower onto the hyperboloid, then
 * committed with their captions. */
static int encode_and_commit(ingest *g, batch_state *s, prep_job *j)
{
	size_t nok = prep_keep_decoded(g, j);
	if (nok) {
		double te = now_s();
		int rc = hydb_image_batch_encode(g->m, j->images, s->vecs, s->radii, NULL);
		g->t_encoder += now_s() - te;
		FORWARD_IF_ERROR(rc);
	}
	return commit_batch(g, &s->p, j->files, nok, s->vecs, s->radii);
}

static int run_batches(ingest *g, image_file **todo, size_t ntodo)
{
	size_t B = g->batch;
	batch_state s;
	int rc = batch_state_init(&s, g);
	for (size_t start = 0, k = 0; rc == 0 && start < ntodo; start += B, k ^= 1) {
		prep_job *cur = &s.jobs[k], *next = &s.jobs[k ^ 1];
		size_t n = ntodo - start < B ? ntodo - start : B;
		if (start == 0) {
			cur->files = todo;
			cur->n = n;
			prep_run(cur); /* nothing to overlap with yet */
		} else {
			prep_wait(g, cur);
		}
		/* Decode the next batch while this one runs through the model. */
		if (start + B < ntodo)
			prep_start(next, todo + start + B, ntodo - start - B < B ? ntodo - start - B : B);
		rc = encode_and_commit(g, &s, cur);
		if (rc < 0)
			break; /* disk full or similar: stop, earlier batches are safe */
		g->done += n;
		progress(g, 0);
	}
	batch_state_free(&s);
	return rc;
}

/* Remove caption entries beyond the new count (captions were removed), in
 * one transaction; a failure is reported, not ignored. */
static void drop_stale_captions(ingest *g, const image_file *f, int from, int to)
{
	char keys[MAX_CAPTIONS][HYDB_MAX_KEY + 32];
	const char *kp[MAX_CAPTIONS];
	int n = 0;
	for (int i = from; i < to && n < MAX_CAPTIONS; i++, n++) {
		snprintf(keys[n], sizeof keys[n], "%s#caption%d", f->key, i + 1);
		kp[n] = keys[n];
	}
	if (n && hydb_delete_batch(g->db, kp, NULL, (size_t)n, HYDB_DELETE_MISSING_OK, NULL) < 0) {
		char msg[1024];
		snprintf(msg, sizeof msg, "%s: removing its %d stale captions: %s", f->key, n, hydb_last_error());
		report_fail(g, msg);
	}
}

/* A threshold 'hydb calibrate' stored, else the model's bound. */
static double threshold(hydb_db *db, const char *name, double fallback)
{
	char buf[64], *end;
	if (hydb_db_meta_get(db, name, buf, sizeof buf) == 0) {
		double v = strtod(buf, &end);
		if (end != buf && !*end && v > 0 && isfinite(v))
			return v;
	}
	return fallback;
}

static int open_or_create(hydb_db **db, const char *path, hydb_model *m)
{
	hydb_open_options o;
	int rc = hydb_cli_open(db, path, 0);
	if (rc != HYDB_ENOTFOUND)
		return rc;
	hydb_open_options_init(&o);
	o.flags = HYDB_OPEN_CREATE;
	o.dim = hydb_model_dim(m);
	o.curvature = hydb_model_curvature(m);
	return hydb_open(db, hydb_cli_db_path(path), &o);
}

typedef struct {
	const char *model, *captions, *db, *dir;
	hydb_precision precision;
} ingest_args;

/* 0 to go on; else the exit status (help printed: HYDB_EXIT_OK). */
static int parse_args(ingest *g, ingest_args *a, int argc, char **argv)
{
	static const struct option lo[] = {
		{"model", required_argument, 0, 'm'}, {"captions", required_argument, 0, 'c'},
		{"batch", required_argument, 0, 'b'}, {"quiet", no_argument, 0, 'q'},
		{"allow-outside-root", no_argument, 0, 'A'}, {"help", no_argument, 0, 'h'},
		{"prune", no_argument, 0, 'R'},
		{"precision", required_argument, 0, 'P'},
		{0, 0, 0, 0}};
	int ch, rc;
	g->batch = HYDB_ENCODE_BATCH;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "q", lo, NULL)) != -1) {
		switch (ch) {
		case 'm': a->model = optarg; break;
		case 'c': a->captions = optarg; break;
		case 'b':
			rc = hydb_cli_parse_size("ingest", "--batch", optarg, 1, MAX_BATCH, &g->batch);
			if (rc)
				return rc;
			break;
		case 'q': g->quiet = 1; break;
		case 'A': g->allow_outside = 1; break;
		case 'R': g->prune = 1; break;
		case 'P':
			rc = hydb_cli_parse_precision("ingest", optarg, &a->precision);
			if (rc)
				return rc;
			break;
		case 'h': fputs(usage, stdout); return -1;
		default: return hydb_cli_bad_option("ingest", argv);
		}
	}
	if (argc - optind == 2)
		a->db = argv[optind++];
	if (argc - optind != 1)
		return hydb_cli_fail("ingest", HYDB_EXIT_USAGE, "give the image folder (see hydb ingest --help)");
	a->dir = argv[optind];
	return 0;
}

/* Open the model and the database (creating it for an explicit model), and
 * refuse a model that did not make the database's embeddings or whose
 * dimension or curvature differ from it, before anything is recorded. */
static int open_model_and_db(ingest *g, const ingest_args *a, const char *root)
{
	const char *model = a->model ? a->model : getenv("HYDB_MODEL");
	if (model && *model) {
		FORWARD_IF_ERROR(hydb_cli_model_open(&g->m, model, a->precision));
		FORWARD_IF_ERROR(open_or_create(&g->db, a->db, g->m));
		FORWARD_IF_ERROR(hydb_cli_model_fits_db(g->m, g->db, model));
		FORWARD_IF_ERROR(hydb_cli_model_record(g->db, g->m, model));
	} else {
		FORWARD_IF_ERROR(hydb_cli_open(&g->db, a->db, 0));
		FORWARD_IF_ERROR(hydb_cli_model_for_db(&g->m, g->db, NULL, a->precision));
		FORWARD_IF_ERROR(hydb_cli_precision_fits_db(g->m, g->db));
	}
	if (a->captions)
		FORWARD_IF_ERROR(manifest_load(&g->man, a->captions, root, g->allow_outside));
	g->thr_image = threshold(g->db, "threshold_image", hydb_model_bound(g->m, HYDB_MOD_IMAGE));
	g->thr_text = threshold(g->db, "threshold_text", hydb_model_bound(g->m, HYDB_MOD_TEXT));
	return HYDB_OK;
}

/* Every image file under the root, sorted, with its key. */
static int list_files(file_list *files, const char *dir, char *root)
{
	char cwd[PATH_MAX];
	struct stat sb;
	if (!realpath(dir, root))
		return hydb_error_set(HYDB_ENOTFOUND, "%s: %s", dir, strerror(errno));
	RETURN_ERROR_IF(stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode), HYDB_EFORMAT,
			"%s: not a directory (give the folder of the images)", dir);
	walk_list = files;
	files->root = root;
	files->rootlen = strlen(root);
	files->prefix = key_prefix(root, cwd, sizeof cwd);
	/* The prefix may point into cwd: keys are built during the walk. */
	RETURN_ERROR_IF(nftw(root, walk_fn, 64, FTW_PHYS) != 0, HYDB_EIO, "%s: cannot walk: %s", dir,
			strerror(errno));
	files->prefix = NULL;
	qsort(files->v, files->n, sizeof *files->v, cmp_file);
	return HYDB_OK;
}

/* The files to encode: not those stored unchanged, nor those whose
 * captions cannot be read (reported as failed). */
static image_file **plan(ingest *g, file_list *files, size_t *ntodo)
{
	image_file **todo = calloc(files->n ? files->n : 1, sizeof *todo);
	*ntodo = 0;
	for (size_t i = 0; todo && i < files->n; i++) {
		image_file *f = &files->v[i];
		char *caps[MAX_CAPTIONS];
		int ncap = 0, old_ncap;
		if (gather_captions(g, f, caps, &ncap) < 0) {
			report_fail(g, hydb_last_error());
			continue;
		}
		if (inspect_stored(g, f, captions_hash(caps, ncap), &old_ncap)) {
			g->unchanged++;
		} else {
			todo[(*ntodo)++] = f;
			if (old_ncap > ncap)
				drop_stale_captions(g, f, ncap, old_ncap);
		}
		free_captions(caps, &ncap);
	}
	return todo;
}

/* Manifest paths that name no image under the root would otherwise be
 * dropped without a word (a typo, or an image moved away). */
static void warn_unmatched(const ingest *g, const char *manifest_path, const char *root)
{
	size_t n = 0, first = 0;
	for (size_t i = 0; i < g->man.n; i++)
		if (!g->man.v[i].used && !n++)
			first = i;
	if (n)
		fprintf(stderr, "hydb ingest: %s: %zu path%s match%s no image under %s (first: '%s' on line %zu)\n",
			manifest_path, n, n == 1 ? "" : "s", n == 1 ? "es" : "", root, g->man.v[first].rel,
			g->man.v[first].line);
}

/* Records of images ingested from the root whose files are gone: their
 * keys and their captions' keys. */
struct stale {
	const char *root;
	size_t rootlen, images;
	char **keys;
	size_t n, cap;
	char first[256];
};

static int stale_add(struct stale *st, const char *key)
{
	char **nv = hydb_array_grow(st->keys, &st->cap, st->n + 1, sizeof *nv, "ingest");
	if (!nv)
		return HYDB_ENOMEM;
	st->keys = nv;
	RETURN_ERROR_IF(!(st->keys[st->n] = strdup(key)), HYDB_ENOMEM, "ingest: out of memory");
	st->n++;
	return HYDB_OK;
}

static int stale_entry(const hydb_entry *e, void *ctx)
{
	struct stale *st = ctx;
	hydb_json *j = NULL;
	const hydb_json *p, *nc;
	struct stat sb;
	int rc = HYDB_OK, ncap = 0;
	if (e->modality != HYDB_MOD_IMAGE || !e->meta || hydb_json_parse(&j, e->meta, strlen(e->meta)) < 0)
		return HYDB_OK;
	p = hydb_json_get(j, "path");
	nc = hydb_json_get(j, "captions");
	if (nc && nc->type == HYDB_JSON_NUMBER && nc->num > 0 && nc->num <= MAX_CAPTIONS)
		ncap = (int)nc->num;
	if (p && p->type == HYDB_JSON_STRING && !strncmp(p->str, st->root, st->rootlen) &&
	    p->str[st->rootlen] == '/' && stat(p->str, &sb) != 0 && errno == ENOENT) {
		if (!st->images++)
			snprintf(st->first, sizeof st->first, "%.250s", e->key);
		rc = stale_add(st, e->key);
		for (int i = 1; rc == 0 && i <= ncap; i++) {
			char key[HYDB_MAX_KEY + 32];
			snprintf(key, sizeof key, "%s#caption%d", e->key, i);
			rc = stale_add(st, key);
		}
	}
	hydb_json_free(j);
	return rc;
}

/* A deleted photo's record would otherwise stay, searchable, without a
 * word; --prune deletes it with its captions in one transaction. */
static int handle_stale(ingest *g, const char *root)
{
	struct stale st = {root, strlen(root), 0, NULL, 0, 0, ""};
	size_t done = 0;
	int rc = hydb_each_entry(g->db, stale_entry, &st);
	if (rc == 0 && st.images && g->prune) {
		rc = hydb_delete_batch(g->db, (const char *const *)st.keys, NULL, st.n, HYDB_DELETE_MISSING_OK,
				       &done);
		if (rc == 0)
			fprintf(stderr, "hydb ingest: pruned %zu records of %zu images no longer under %s\n", done,
				st.images, root);
	} else if (rc == 0 && st.images) {
		fprintf(stderr,
			"hydb ingest: %zu image%s stored from %s no longer there (first: %s); kept: --prune deletes them\n",
			st.images, st.images == 1 ? " is" : "s are", root, st.first);
	}
	for (size_t i = 0; i < st.n; i++)
		free(st.keys[i]);
	free(st.keys);
	return rc;
}

static void summary(ingest *g, int status)
{
	if (g->replaced > REPORT_REPLACED)
		fprintf(stderr, "hydb ingest: ... %llu more records of other files replaced\n",
			(unsigned long long)(g->replaced - REPORT_REPLACED));
	if (!g->quiet || status) {
		printf("ingested %llu images (%llu captions), skipped %llu unchanged, failed %llu, "
		       "replaced %llu of other files",
		       (unsigned long long)g->ingested, (unsigned long long)g->captions,
		       (unsigned long long)g->unchanged, (unsigned long long)g->failed,
		       (unsigned long long)g->replaced);
		if (g->done < g->total)
			printf(", stopped with %zu not attempted", g->total - g->done);
		putchar('\n');
	}
	if (!g->quiet && g->ingested) {
		double wall = now_s() - g->t0;
		fprintf(stderr, "time: %.2fs, %.2f images/s; encoder %.1f%%, waiting for decode %.1f%%, "
			"other (first decode, captions I/O, commits) %.1f%%\n", wall, g->ingested / wall,
			100 * g->t_encoder / wall, 100 * g->t_wait / wall,
			100 * (wall - g->t_encoder - g->t_wait) / wall);
	}
}

static void cleanup(ingest *g, file_list *files)
{
	for (size_t i = 0; i < files->n; i++) {
		free(files->v[i].rel);
		free(files->v[i].abs);
		free(files->v[i].key);
		free(files->v[i].replaces);
	}
	free(files->v);
	for (size_t i = 0; i < g->man.n; i++) {
		free(g->man.v[i].rel);
		for (int c = 0; c < g->man.v[i].n; c++)
			free(g->man.v[i].caps[c]);
	}
	free(g->man.v);
	hydb_model_close(g->m);
	hydb_close(g->db);
}

int hydb_cmd_ingest(int argc, char **argv)
{
	ingest g;
	ingest_args a = {0};
	char root[PATH_MAX];
	file_list files = {0};
	image_file **todo = NULL;
	size_t ntodo = 0;
	int rc, status = HYDB_EXIT_OK;

	memset(&g, 0, sizeof g);
	if ((rc = parse_args(&g, &a, argc, argv)) != 0)
		return rc < 0 ? HYDB_EXIT_OK : rc;
	g.tty = !g.quiet && hydb_cli_isatty(stderr);
	/* The folder is checked first: a typo must not create a database. */
	rc = list_files(&files, a.dir, root);
	if (rc == 0)
		rc = open_model_and_db(&g, &a, root);
	if (rc == 0 && !(todo = plan(&g, &files, &ntodo)))
		rc = hydb_error_set(HYDB_ENOMEM, "ingest: out of memory");
	if (rc == 0 && a.captions)
		warn_unmatched(&g, a.captions, root);
	if (rc == 0)
		rc = handle_stale(&g, root);
	if (rc < 0) {
		status = hydb_cli_fail_lib("ingest", rc);
		goto out;
	}
	g.total = ntodo;
	g.t0 = now_s();
	rc = ntodo ? run_batches(&g, todo, ntodo) : 0;
	if (ntodo)
		progress(&g, 1);
	if (rc < 0)
		status = hydb_cli_fail_lib("ingest", rc);
	summary(&g, status);
	if (status == HYDB_EXIT_OK && g.failed)
		status = HYDB_EXIT_DATA;
out:
	free(todo);
	cleanup(&g, &files);
	return status;
}
