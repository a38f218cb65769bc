/*
 * cmd_ingest.c - `hydb ingest [DB] DIR`: encode every image under a folder
 * and its captions with the HySAC model, label each entry by its safety
 * radius, and store and index it.
 *
 * Pipeline: a worker thread decodes and preprocesses batch i+1 while the
 * main thread runs the vision transformer on batch i; each batch (images
 * plus their captions) is one atomic commit. Re-running skips files whose
 * size, mtime and captions are unchanged, so a killed ingest resumes where
 * it stopped and a finished one is a no-op.
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
#include <xxhash.h>

#include "cli/cli.h"
#include "cli/ingest.h"
#include "cli/model_select.h"
#include "db_internal.h"
#include "encoder/forward.h"
#include "encoder/image.h"
#include "encoder/model.h"
#include "json.h"

static const char usage[] =
	"usage: hydb ingest [DB] DIR [--model FILE] [--captions FILE.jsonl|FILE.csv]\n"
	"                   [--batch N] [--quiet] [--allow-outside-root]\n"
	"Encode every JPEG, PNG and WebP under DIR (recursively; symbolic links to\n"
	"directories are not followed) with the HySAC model and store each as an image\n"
	"entry. Captions come from a sidecar file (photo.jpg -> photo.txt, one caption a\n"
	"line) or a manifest (--captions: JSON Lines {\"path\": REL, \"captions\": [...]}\n"
	"or {\"path\", \"caption\"}; or CSV lines REL,caption). Each caption becomes a\n"
	"text entry linked to its image (same item). Entries are labelled safe or unsafe\n"
	"by their radius against the model's bound (or 'hydb calibrate''s threshold).\n"
	"The model: --model, else $HYDB_MODEL, else the one recorded in the database.\n"
	"A new database is created with the model's dimension and curvature.\n"
	"Exit status 2 if any file failed (each is reported and skipped).\n";

#define MAX_CAPTIONS 16

typedef struct {
	char *rel, *abs;
	long long size, mtime;
} image_file;

typedef struct {
	image_file *v;
	size_t n, cap;
	const char *root;
	size_t rootlen;
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

static int walk_fn(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	file_list *l = walk_list;
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
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 256;
		image_file *nv = realloc(l->v, nc * sizeof *nv);
		if (!nv)
			return -1;
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n].abs = strdup(path);
	l->v[l->n].rel = strdup(path + l->rootlen + (path[l->rootlen] == '/'));
	l->v[l->n].size = (long long)sb->st_size;
	l->v[l->n].mtime = (long long)sb->st_mtime;
	if (!l->v[l->n].abs || !l->v[l->n].rel)
		return -1;
	l->n++;
	return 0;
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
	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 64;
		manifest_entry *nv = realloc(m->v, nc * sizeof *nv);
		if (!nv)
			return NULL;
		m->v = nv;
		m->cap = nc;
	}
	memset(&m->v[m->n], 0, sizeof m->v[0]);
	m->v[m->n].rel = strdup(rel);
	return m->v[m->n].rel ? &m->v[m->n++] : NULL;
}

int hydb_ingest_path_ok(const char *rel, int allow_outside)
{
	const char *p = rel;
	if (allow_outside)
		return 1;
	if (*rel == '/' || !*rel)
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

static int add_caption(manifest *m, const char *rel, const char *cap, const char *where)
{
	manifest_entry *e = manifest_find(m, rel, 1);
	RETURN_ERROR_IF(!e, HYDB_ENOMEM, "%s: out of memory", where);
	RETURN_ERROR_IF(e->n >= MAX_CAPTIONS, HYDB_ETOOBIG, "%s: more than %d captions for %s", where,
			MAX_CAPTIONS, rel);
	e->caps[e->n] = strdup(cap);
	RETURN_ERROR_IF(!e->caps[e->n], HYDB_ENOMEM, "%s: out of memory", where);
	e->n++;
	return HYDB_OK;
}

static int manifest_load(manifest *m, const char *path, int allow_outside)
{
	FILE *f = fopen(path, "rb");
	char *line = NULL, where[PATH_MAX + 32];
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int csv, rc = HYDB_OK;
	const char *dot = strrchr(path, '.');

	RETURN_ERROR_IF(!f, HYDB_ENOTFOUND, "%s: %s", path, strerror(errno));
	csv = dot && !strcasecmp(dot, ".csv");
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (len == 0)
			continue;
		snprintf(where, sizeof where, "%s: line %zu", path, lineno);
		if (csv) {
			char *comma = strchr(line, ',');
			if (!comma) {
				rc = hydb_error_set(HYDB_EFORMAT, "%s: expected PATH,CAPTION", where);
				break;
			}
			*comma = 0;
			if (lineno == 1 && !strcmp(line, "path"))
				continue; /* header */
			if (!hydb_ingest_path_ok(line, allow_outside)) {
				rc = hydb_error_set(HYDB_EINVAL, "%s: path '%s' escapes the ingest root", where, line);
				break;
			}
			{
				char *c = comma + 1;
				size_t cl = strlen(c);
				if (cl >= 2 && c[0] == '"' && c[cl - 1] == '"') {
					c[cl - 1] = 0;
					c++;
				}
				rc = add_caption(m, line, c, where);
			}
		} else {
			hydb_json *j;
			const hydb_json *p, *c, *cs;
			rc = hydb_json_parse(&j, line, (size_t)len);
			if (rc < 0) {
				hydb_error_prefix(rc, "%s", where);
				break;
			}
			p = hydb_json_get(j, "path");
			c = hydb_json_get(j, "caption");
			cs = hydb_json_get(j, "captions");
			if (!p || p->type != HYDB_JSON_STRING)
				rc = hydb_error_set(HYDB_EFORMAT, "%s: \"path\" must be a string", where);
			else if (!hydb_ingest_path_ok(p->str, allow_outside))
				rc = hydb_error_set(HYDB_EINVAL, "%s: path '%s' escapes the ingest root", where, p->str);
			if (rc == 0 && c && c->type == HYDB_JSON_STRING)
				rc = add_caption(m, p->str, c->str, where);
			if (rc == 0 && cs && cs->type == HYDB_JSON_ARRAY)
				for (size_t i = 0; rc == 0 && i < cs->n; i++)
					if (cs->items[i].type == HYDB_JSON_STRING)
						rc = add_caption(m, p->str, cs->items[i].str, where);
			hydb_json_free(j);
		}
	}
	free(line);
	fclose(f);
	return rc;
}

/* Captions from the sidecar PATH-without-extension.txt, one per line. */
static int sidecar_captions(const image_file *img, char **caps, int *n)
{
	char path[PATH_MAX + 8];
	const char *dot = strrchr(img->abs, '.');
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	snprintf(path, sizeof path, "%.*s.txt", (int)(dot - img->abs), img->abs);
	f = fopen(path, "rb");
	if (!f)
		return HYDB_OK;
	while (*n < MAX_CAPTIONS && (len = getline(&line, &cap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
			line[--len] = 0;
		if (len > 0)
			caps[(*n)++] = strdup(line);
	}
	free(line);
	fclose(f);
	return HYDB_OK;
}

/* ---- decode/preprocess worker -------------------------------------------- */

typedef struct {
	image_file **files;
	size_t n;
	float *pixels;          /* n * 3 * S * S */
	int *ok;                /* 1 decoded, 0 failed */
	char (*err)[512];
	int size;
	pthread_t th;
	int running;
} prep_job;

static void *prep_run(void *arg)
{
	prep_job *j = arg;
	size_t per = (size_t)3 * j->size * j->size;
	for (size_t i = 0; i < j->n; i++) {
		hydb_image img;
		int rc = hydb_image_decode_file(&img, j->files[i]->abs, 0);
		if (rc == 0) {
			rc = hydb_clip_preprocess(j->pixels + i * per, &img, j->size, NULL, NULL);
			hydb_image_free(&img);
		}
		j->ok[i] = rc == 0;
		if (rc < 0)
			snprintf(j->err[i], sizeof j->err[i], "%s", hydb_last_error());
	}
	return NULL;
}

/* ---- ingest state --------------------------------------------------------- */

typedef struct {
	hydb_db *db;
	hydb_model *m;
	manifest man;
	int quiet, tty, allow_outside;
	size_t batch;
	double thr_image, thr_text;
	uint64_t ingested, captions, unchanged, failed;
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

/* Is the stored entry for this file current? */
static int unchanged(ingest *g, const image_file *f, uint64_t chash, int *old_ncap)
{
	hydb_entry *e;
	hydb_json *j = NULL;
	int same = 0;
	*old_ncap = 0;
	if (hydb_get_key(g->db, f->rel, &e) < 0)
		return 0;
	if (e->meta && hydb_json_parse(&j, e->meta, strlen(e->meta)) == 0) {
		const hydb_json *sz = hydb_json_get(j, "size"), *mt = hydb_json_get(j, "mtime"),
				*ch = hydb_json_get(j, "captions_hash"), *nc = hydb_json_get(j, "captions");
		char want[32];
		snprintf(want, sizeof want, "%016llx", (unsigned long long)chash);
		same = sz && mt && ch && sz->num == (double)f->size && mt->num == (double)f->mtime &&
		       ch->type == HYDB_JSON_STRING && !strcmp(ch->str, want);
		if (nc && nc->type == HYDB_JSON_NUMBER)
			*old_ncap = (int)nc->num;
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

/* The Euclidean features -> the hyperboloid, as the encoder does it. */
static void project(ingest *g, float *out, const float *feat, double alpha, float *radius)
{
	size_t d = hydb_model_dim(g->m);
	double c = hydb_model_curvature(g->m);
	for (size_t i = 0; i < d; i++)
		out[i] = (float)(feat[i] * alpha);
	hydb_exp_map0(out, out, d, c);
	*radius = (float)hydb_lorentz_radius(out, d, c);
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
	if (p->nstr == p->capstr) {
		size_t nc = p->capstr ? p->capstr * 2 : 64;
		char **ns = realloc(p->strs, nc * sizeof *ns);
		if (!ns)
			return hydb_error_set(HYDB_ENOMEM, "ingest: out of memory");
		p->strs = ns;
		p->capstr = nc;
	}
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

/* Encode the captions of one image and queue all its records. */
static int queue_item(ingest *g, pending *p, const image_file *f, const float *feat, char **caps,
		      int ncap, uint64_t chash)
{
	size_t d = hydb_model_dim(g->m);
	uint64_t item = XXH3_64bits(f->rel, strlen(f->rel)) >> 1;
	uint64_t fh = file_hash(f->abs);
	char *meta;
	size_t base = p->n;

	if (p->n + 1 + (size_t)ncap > p->cap)
		return hydb_error_set(HYDB_EINVAL, "ingest: batch overflow");
	{
		float r;
		hydb_record *rec = &p->recs[p->n++];
		project(g, p->vecs + base * d, feat, g->m->cfg.visual_alpha, &r);
		memset(rec, 0, sizeof *rec);
		rec->key = f->rel;
		rec->vector = p->vecs + base * d;
		rec->modality = HYDB_MOD_IMAGE;
		rec->label = label_for(r, g->thr_image);
		rec->item = item;
		rec->caption = ncap ? caps[0] : NULL;
		meta = meta_json(f, fh, chash, ncap, NULL);
		FORWARD_IF_ERROR(pend_str(p, meta));
		rec->meta = meta;
	}
	for (int i = 0; i < ncap; i++) {
		float r, *v = p->vecs + p->n * d;
		char key[PATH_MAX + 32];
		hydb_record *rec;
		double te = now_s();
		int rc = hydb_encode_text(g->m, caps[i], v, &r, NULL);
		g->t_encoder += now_s() - te;
		if (rc < 0)
			return hydb_error_prefix(rc, "%s: caption %d", f->rel, i + 1);
		rec = &p->recs[p->n++];
		memset(rec, 0, sizeof *rec);
		snprintf(key, sizeof key, "%s#caption%d", f->rel, i + 1);
		FORWARD_IF_ERROR(pend_str(p, strdup(key)));
		rec->key = p->strs[p->nstr - 1];
		rec->vector = v;
		rec->modality = HYDB_MOD_TEXT;
		rec->label = label_for(r, g->thr_text);
		rec->item = item;
		rec->caption = caps[i];
		meta = meta_json(f, fh, chash, ncap, f->rel);
		FORWARD_IF_ERROR(pend_str(p, meta));
		rec->meta = meta;
	}
	return HYDB_OK;
}

static void report_fail(ingest *g, const char *msg)
{
	g->failed++;
	if (g->tty)
		fputc('\n', stderr);
	fprintf(stderr, "hydb ingest: %s (skipped)\n", msg);
}

/* Captions for one file: manifest first, else sidecar. Strings owned by
 * caps (freed by the caller). */
static int gather_captions(ingest *g, const image_file *f, char **caps, int *n)
{
	manifest_entry *e = manifest_find(&g->man, f->rel, 0);
	*n = 0;
	if (e) {
		for (int i = 0; i < e->n; i++)
			caps[(*n)++] = strdup(e->caps[i]);
		return HYDB_OK;
	}
	return sidecar_captions(f, caps, n);
}

static int run_batches(ingest *g, image_file **todo, size_t ntodo)
{
	size_t d = hydb_model_dim(g->m), S = (size_t)g->m->cfg.image_size, per = 3 * S * S;
	size_t B = g->batch;
	prep_job jobs[2];
	pending p = {0};
	float *feat = calloc(B * d, sizeof(float));
	int rc = HYDB_OK;

	memset(jobs, 0, sizeof jobs);
	p.cap = B * (1 + MAX_CAPTIONS);
	p.recs = calloc(p.cap, sizeof *p.recs);
	p.vecs = calloc(p.cap * d, sizeof(float));
	for (int k = 0; k < 2; k++) {
		jobs[k].pixels = malloc(B * per * sizeof(float));
		jobs[k].ok = calloc(B, sizeof(int));
		jobs[k].err = calloc(B, sizeof jobs[k].err[0]);
		jobs[k].size = (int)S;
	}
	if (!feat || !p.recs || !p.vecs || !jobs[0].pixels || !jobs[1].pixels || !jobs[0].err ||
	    !jobs[1].err) {
		rc = hydb_error_set(HYDB_ENOMEM, "ingest: out of memory for a batch of %zu", B);
		goto out;
	}
	for (size_t start = 0, k = 0; start < ntodo; start += B, k ^= 1) {
		prep_job *cur = &jobs[k], *next = &jobs[k ^ 1];
		size_t n = ntodo - start < B ? ntodo - start : B, nok = 0;
		if (start == 0) {
			cur->files = todo;
			cur->n = n;
			prep_run(cur);
		} else {
			double tw = now_s();
			pthread_join(cur->th, NULL);
			g->t_wait += now_s() - tw;
			cur->running = 0;
		}
		/* Decode the next batch while this one runs through the model. */
		if (start + B < ntodo) {
			next->files = todo + start + B;
			next->n = ntodo - start - B < B ? ntodo - start - B : B;
			next->running = pthread_create(&next->th, NULL, prep_run, next) == 0;
			if (!next->running)
				prep_run(next);
		}
		/* Compact the decoded images to the front. */
		for (size_t i = 0; i < n; i++) {
			if (!cur->ok[i]) {
				report_fail(g, cur->err[i]);
				continue;
			}
			if (nok != i)
				memmove(cur->pixels + nok * per, cur->pixels + i * per, per * sizeof(float));
			cur->files[nok] = cur->files[i];
			nok++;
		}
		if (nok) {
			double te = now_s();
			rc = hydb_vision_forward(g->m, cur->pixels, nok, feat);
			g->t_encoder += now_s() - te;
			if (rc < 0)
				break;
		}
		pend_clear(&p);
		for (size_t i = 0; i < nok; i++) {
			char *caps[MAX_CAPTIONS];
			int ncap = 0;
			gather_captions(g, cur->files[i], caps, &ncap);
			size_t before = p.n, before_s = p.nstr;
			for (int c = 0; c < ncap; c++)
				pend_str(&p, caps[c]);
			rc = queue_item(g, &p, cur->files[i], feat + i * d, caps, ncap,
					captions_hash(caps, ncap));
			if (rc < 0) {
				/* one bad caption drops that item only */
				report_fail(g, hydb_last_error());
				for (size_t s = before_s + (size_t)ncap; s < p.nstr; s++)
					free(p.strs[s]);
				p.nstr = before_s + (size_t)ncap;
				p.n = before;
				rc = 0;
				continue;
			}
			g->captions += (uint64_t)ncap;
		}
		if (p.n) {
			rc = hydb_put(g->db, p.recs, p.n, NULL);
			if (rc < 0)
				break; /* disk full or similar: stop, earlier batches are safe */
		}
		g->ingested += nok;
		g->done += n;
		progress(g, 0);
	}
out:
	for (int k = 0; k < 2; k++) {
		if (jobs[k].running)
			pthread_join(jobs[k].th, NULL);
		free(jobs[k].pixels);
		free(jobs[k].ok);
		free(jobs[k].err);
	}
	pend_clear(&p);
	free(p.strs);
	free(p.recs);
	free(p.vecs);
	free(feat);
	return rc;
}

/* Remove caption entries beyond the new count (captions were removed). */
static void drop_stale_captions(ingest *g, const image_file *f, int from, int to)
{
	for (int i = from; i < to; i++) {
		char key[PATH_MAX + 32];
		snprintf(key, sizeof key, "%s#caption%d", f->rel, i + 1);
		hydb_delete_key(g->db, key);
	}
}

static double threshold(hydb_db *db, const char *name, double fallback)
{
	char buf[64];
	if (hydb_db_meta_get(db, name, buf, sizeof buf) == 0) {
		double v = strtod(buf, NULL);
		if (v > 0 && isfinite(v))
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

int hydb_cmd_ingest(int argc, char **argv)
{
	static const struct option lo[] = {
		{"model", required_argument, 0, 'm'}, {"captions", required_argument, 0, 'c'},
		{"batch", required_argument, 0, 'b'}, {"quiet", no_argument, 0, 'q'},
		{"allow-outside-root", no_argument, 0, 'A'}, {"help", no_argument, 0, 'h'},
		{0, 0, 0, 0}};
	ingest g;
	const char *model_path = NULL, *captions = NULL, *dbpath = NULL, *dir;
	char rootbuf[PATH_MAX];
	file_list files = {0};
	image_file **todo = NULL;
	size_t ntodo = 0;
	int ch, rc, status = HYDB_EXIT_OK;

	memset(&g, 0, sizeof g);
	g.batch = HYDB_ENCODE_BATCH;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "q", lo, NULL)) != -1) {
		switch (ch) {
		case 'm': model_path = optarg; break;
		case 'c': captions = optarg; break;
		case 'b':
			g.batch = strtoul(optarg, NULL, 10);
			if (g.batch < 1 || g.batch > 256)
				return hydb_cli_fail("ingest", HYDB_EXIT_USAGE, "--batch must be 1..256");
			break;
		case 'q': g.quiet = 1; break;
		case 'A': g.allow_outside = 1; break;
		case 'h': fputs(usage, stdout); return HYDB_EXIT_OK;
		default: fputs(usage, stderr); return HYDB_EXIT_USAGE;
		}
	}
	if (argc - optind == 2)
		dbpath = argv[optind++];
	if (argc - optind != 1)
		return hydb_cli_fail("ingest", HYDB_EXIT_USAGE, "give the image folder (see hydb ingest --help)");
	dir = argv[optind];
	if (!realpath(dir, rootbuf))
		return hydb_cli_fail("ingest", HYDB_EXIT_DATA, "%s: %s", dir, strerror(errno));
	g.tty = !g.quiet && hydb_cli_isatty(stderr);

	/* The model: explicit, env, or the database's. */
	if (!model_path)
		model_path = getenv("HYDB_MODEL");
	if (model_path && *model_path) {
		if ((rc = hydb_model_open(&g.m, model_path)) < 0)
			return hydb_cli_fail_lib("ingest", rc);
		rc = open_or_create(&g.db, dbpath, g.m);
		if (rc == 0)
			rc = hydb_cli_model_record(g.db, g.m, model_path);
	} else {
		rc = hydb_cli_open(&g.db, dbpath, 0);
		if (rc == 0)
			rc = hydb_cli_model_for_db(&g.m, g.db, NULL);
	}
	if (rc == 0 && hydb_model_dim(g.m) != hydb_dim(g.db))
		rc = hydb_error_set(HYDB_EDIM, "model embeds in %zu dimensions, the database has %zu",
				    hydb_model_dim(g.m), hydb_dim(g.db));
	if (rc == 0 && captions)
		rc = manifest_load(&g.man, captions, g.allow_outside);
	if (rc < 0) {
		status = hydb_cli_fail_lib("ingest", rc);
		goto out;
	}
	g.thr_image = threshold(g.db, "threshold_image", g.m->cfg.bound_image.up_95);
	g.thr_text = threshold(g.db, "threshold_text", g.m->cfg.bound_text.up_95);

	walk_list = &files;
	files.root = rootbuf;
	files.rootlen = strlen(rootbuf);
	if (nftw(rootbuf, walk_fn, 64, FTW_PHYS) != 0) {
		status = hydb_cli_fail("ingest", HYDB_EXIT_DATA, "%s: cannot walk: %s", dir, strerror(errno));
		goto out;
	}
	qsort(files.v, files.n, sizeof *files.v, cmp_file);
	todo = calloc(files.n ? files.n : 1, sizeof *todo);
	for (size_t i = 0; todo && i < files.n; i++) {
		char *caps[MAX_CAPTIONS];
		int ncap = 0, old_ncap;
		gather_captions(&g, &files.v[i], caps, &ncap);
		if (unchanged(&g, &files.v[i], captions_hash(caps, ncap), &old_ncap))
			g.unchanged++;
		else {
			todo[ntodo++] = &files.v[i];
			if (old_ncap > ncap)
				drop_stale_captions(&g, &files.v[i], ncap, old_ncap);
		}
		for (int c = 0; c < ncap; c++)
			free(caps[c]);
	}
	g.total = ntodo;
	g.t0 = now_s();
	rc = ntodo ? run_batches(&g, todo, ntodo) : 0;
	if (ntodo)
		progress(&g, 1);
	if (rc < 0)
		status = hydb_cli_fail_lib("ingest", rc);
	if (!g.quiet || status)
		printf("ingested %llu images (%llu captions), skipped %llu unchanged, failed %llu\n",
		       (unsigned long long)g.ingested, (unsigned long long)g.captions,
		       (unsigned long long)g.unchanged, (unsigned long long)g.failed);
	if (!g.quiet && g.ingested) {
		double wall = now_s() - g.t0;
		fprintf(stderr, "time: %.2fs, %.2f images/s; encoder %.1f%%, waiting for decode %.1f%%, "
			"other (first decode, captions I/O, commits) %.1f%%\n", wall, g.ingested / wall,
			100 * g.t_encoder / wall, 100 * g.t_wait / wall,
			100 * (wall - g.t_encoder - g.t_wait) / wall);
	}
	if (status == HYDB_EXIT_OK && g.failed)
		status = HYDB_EXIT_DATA;
out:
	for (size_t i = 0; i < files.n; i++) {
		free(files.v[i].rel);
		free(files.v[i].abs);
	}
	free(files.v);
	free(todo);
	for (size_t i = 0; i < g.man.n; i++) {
		free(g.man.v[i].rel);
		for (int c = 0; c < g.man.v[i].n; c++)
			free(g.man.v[i].caps[c]);
	}
	free(g.man.v);
	hydb_model_close(g.m);
	hydb_close(g.db);
	return status;
}
