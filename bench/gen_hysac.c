/*
 * gen_hysac.c - deterministic data families for the recall bench: HySAC-like
 * (below), and wide-radius, tree, isotropic and WordNet (rd_make_family).
 *
 * Four populations at increasing distance from the origin, as HySAC places
 * them: safe text < safe image < unsafe text < unsafe image. Directions are
 * clustered (thousands of clusters) and the cluster centres come from a
 * 32-dimensional latent space mapped linearly into D dimensions, because
 * real embeddings occupy a low-dimensional manifold; isotropic random
 * centres would make every point nearly equidistant and defeat any graph
 * index. Queries are drawn from the same distribution with another seed.
 * Ground truth is exact: float64 keys over every point.
 */
#include "bench/recall_data.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/lorentz_kernel.h"

#define LATENT 32
#define CLUSTERS 4000

static const double pop_radius[4] = {1.6, 2.1, 2.5, 2.9}; /* c = 1 */

struct rng {
	uint64_t s;
};

static double urand(struct rng *r)
{
	r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
	return ((r->s >> 11) + 0.5) / 9007199254740992.0;
}

static double nrand(struct rng *r)
{
	return sqrt(-2 * log(urand(r))) * cos(6.283185307179586 * urand(r));
}

static void normalize(double *v, size_t d)
{
	double n = 0;
	for (size_t i = 0; i < d; i++)
		n += v[i] * v[i];
	n = sqrt(n);
	for (size_t i = 0; i < d; i++)
		v[i] /= n;
}

/* A cluster: its latent point and a fixed isotropic offset. */
struct gen {
	size_t d;
	double *w;     /* d x LATENT */
	double *z;     /* CLUSTERS x LATENT */
	double *iso;   /* CLUSTERS x d */
};

static void make_gen(struct gen *g, size_t d, struct rng *r)
{
	g->d = d;
	g->w = malloc(d * LATENT * sizeof *g->w);
	g->z = malloc(CLUSTERS * LATENT * sizeof *g->z);
	g->iso = malloc(CLUSTERS * d * sizeof *g->iso);
	for (size_t i = 0; i < d * LATENT; i++)
		g->w[i] = nrand(r) / sqrt((double)LATENT);
	for (size_t i = 0; i < CLUSTERS * LATENT; i++)
		g->z[i] = nrand(r);
	for (size_t i = 0; i < CLUSTERS * d; i++)
		g->iso[i] = 0.15 * nrand(r);
}

static void free_gen(struct gen *g)
{
	free(g->w);
	free(g->z);
	free(g->iso);
}

/* Direction: the cluster's latent point jittered in the latent space,
 * mapped up, plus the cluster's and a point's own isotropic offsets. */
static void make_point(float *x, struct rd_attr *a, const struct gen *g,
		       double c, struct rng *r)
{
	double v[4096], z[LATENT];
	size_t d = g->d, k = (size_t)(urand(r) * CLUSTERS);
	unsigned pop = (unsigned)(k % 4);
	for (size_t j = 0; j < LATENT; j++)
		z[j] = g->z[k * LATENT + j] + 0.3 * nrand(r);
	for (size_t i = 0; i < d; i++) {
		double s = g->iso[k * d + i] + 0.1 * nrand(r);
		for (size_t j = 0; j < LATENT; j++)
			s += g->w[i * LATENT + j] * z[j];
		v[i] = s;
	}
	normalize(v, d);
	/* Radii scale as 1/sqrt(c) so the picture holds at any curvature. */
	double rad = (pop_radius[pop] + 0.25 * nrand(r)) / sqrt(c);
	if (rad < 0.05)
		rad = 0.05;
	double s = sinh(sqrt(c) * rad) / sqrt(c);
	for (size_t i = 0; i < d; i++)
		x[i] = (float)(v[i] * s);
	a->radius = (float)rad;
	a->modality = (pop % 2) ? 1 : 2; /* image : text */
	a->label = pop < 2 ? 1 : 2;      /* safe : unsafe */
	a->pad = 0;
}

/* ---- ground truth ------------------------------------------------------ */

struct gt_job {
	struct rd_set *s;
	size_t from, to;
};

static void top_k(const double *key, size_t n, const struct rd_attr *a,
		  double bound, int32_t *out, size_t k)
{
	double best[RD_GT_K];
	size_t m = 0;
	for (size_t j = 0; j < n; j++) {
		if (a && a[j].radius > bound)
			continue;
		double v = key[j];
		if (m == k && v >= best[k - 1])
			continue;
		size_t i = m < k ? m++ : k - 1;
		while (i > 0 && best[i - 1] > v) {
			best[i] = best[i - 1];
			out[i] = out[i - 1];
			i--;
		}
		best[i] = v;
		out[i] = (int32_t)j;
	}
	for (size_t i = m; i < k; i++)
		out[i] = -1;
}

static void *gt_worker(void *arg)
{
	struct gt_job *j = arg;
	struct rd_set *s = j->s;
	double *key = malloc(s->n * sizeof *key);
	for (size_t q = j->from; q < j->to; q++) {
		hydb_kquery kq;
		hydb_kquery_init(&kq, s->query + q * s->d, s->d, s->c);
		for (size_t i = 0; i < s->n; i++)
			key[i] = hydb_key_f32(&kq, s->base + i * s->d);
		top_k(key, s->n, NULL, 0, s->gt + q * RD_GT_K, RD_GT_K);
		for (int f = 0; f < RD_NSEL; f++)
			top_k(key, s->n, s->attr, s->bound[f],
			      s->gtf + ((size_t)f * s->nq + q) * RD_GTF_K,
			      RD_GTF_K);
	}
	free(key);
	return NULL;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* Radius bounds that keep 0.1%, 1%, 10%, 50% and 90% of the points. */
static void pick_bounds(struct rd_set *s)
{
	static const double sel[RD_NSEL] = {0.001, 0.01, 0.1, 0.5, 0.9};
	float *r = malloc(s->n * sizeof *r);
	for (size_t i = 0; i < s->n; i++)
		r[i] = s->attr[i].radius;
	qsort(r, s->n, sizeof *r, cmp_float);
	for (int f = 0; f < RD_NSEL; f++) {
		size_t i = (size_t)(sel[f] * (double)s->n);
		s->sel[f] = sel[f];
		s->bound[f] = r[i ? i - 1 : 0];
	}
	free(r);
}

static void ground_truth(struct rd_set *s)
{
	pthread_t t[2];
	struct gt_job j[2] = {{s, 0, s->nq / 2}, {s, s->nq / 2, s->nq}};
	s->gt = malloc(s->nq * RD_GT_K * sizeof *s->gt);
	s->gtf = malloc(RD_NSEL * s->nq * RD_GTF_K * sizeof *s->gtf);
	pick_bounds(s);
	pthread_create(&t[0], NULL, gt_worker, &j[0]);
	gt_worker(&j[1]);
	pthread_join(t[0], NULL);
}

/* ---- files ------------------------------------------------------------- */

static int put_file(const char *dir, const char *name, const void *p,
		    size_t bytes)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f)) {
		fprintf(stderr, "gen_hysac: cannot write %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void *get_file(const char *dir, const char *name, size_t bytes)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	void *p = malloc(bytes ? bytes : 1);
	if (!f || fread(p, 1, bytes, f) != bytes) {
		if (f)
			fclose(f);
		free(p);
		return NULL;
	}
	fclose(f);
	return p;
}

static int save(const struct rd_set *s, const char *dir)
{
	char path[4096];
	mkdir(dir, 0755);
	if (put_file(dir, "base.f32", s->base, s->n * s->d * 4) ||
	    put_file(dir, "query.f32", s->query, s->nq * s->d * 4) ||
	    put_file(dir, "attr.bin", s->attr, s->n * sizeof *s->attr) ||
	    put_file(dir, "gt.i32", s->gt, s->nq * RD_GT_K * 4) ||
	    put_file(dir, "gtf.i32", s->gtf, RD_NSEL * s->nq * RD_GTF_K * 4))
		return -1;
	snprintf(path, sizeof path, "%s/sel.txt", dir);
	FILE *f = fopen(path, "w");
	for (int i = 0; f && i < RD_NSEL; i++)
		fprintf(f, "%.17g %.17g\n", s->sel[i], s->bound[i]);
	if (f)
		fclose(f);
	snprintf(path, sizeof path, "%s/info.txt", dir);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%zu %zu %zu %.17g\n", s->n, s->d, s->nq, s->c);
		fclose(f);
	}
	return f ? 0 : -1;
}

int rd_load(struct rd_set *s, const char *dir)
{
	char path[4096];
	memset(s, 0, sizeof *s);
	snprintf(path, sizeof path, "%s/info.txt", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int ok = fscanf(f, "%zu %zu %zu %lg", &s->n, &s->d, &s->nq, &s->c) == 4;
	fclose(f);
	snprintf(path, sizeof path, "%s/sel.txt", dir);
	f = ok ? fopen(path, "r") : NULL;
	for (int i = 0; f && i < RD_NSEL; i++)
		ok &= fscanf(f, "%lg %lg", &s->sel[i], &s->bound[i]) == 2;
	if (f)
		fclose(f);
	if (!ok || !f)
		return -1;
	s->base = get_file(dir, "base.f32", s->n * s->d * 4);
	s->query = get_file(dir, "query.f32", s->nq * s->d * 4);
	s->attr = get_file(dir, "attr.bin", s->n * sizeof *s->attr);
	s->gt = get_file(dir, "gt.i32", s->nq * RD_GT_K * 4);
	s->gtf = get_file(dir, "gtf.i32", RD_NSEL * s->nq * RD_GTF_K * 4);
	if (!s->base || !s->query || !s->attr || !s->gt || !s->gtf) {
		rd_free(s);
		return -1;
	}
	return 0;
}

/* ---- other families ---------------------------------------------------- */

/* A point at geodesic radius rad (c scaled) in unit direction v. */
static void place(float *x, const double *v, size_t d, double rad, double c)
{
	double s = sinh(sqrt(c) * rad) / sqrt(c);
	for (size_t i = 0; i < d; i++)
		x[i] = (float)(v[i] * s);
}

static void plain_attr(struct rd_attr *a, double rad)
{
	a->radius = (float)rad;
	a->modality = 2; /* text */
	a->label = 1;    /* safe */
	a->pad = 0;
}

/* wide: HySAC's clustered directions (its 4,000 clusters on a 32-dimensional
 * latent manifold), geodesic radii uniform in 0.05..10 (over sqrt(c)). */
static void make_wide(float *x, struct rd_attr *a, const struct gen *g,
		      double c, struct rng *r)
{
	make_point(x, a, g, c, r);
	double v[4096], n = 0;
	for (size_t i = 0; i < g->d; i++)
		n += (double)x[i] * x[i];
	n = sqrt(n);
	for (size_t i = 0; i < g->d; i++)
		v[i] = x[i] / n;
	double rad = (0.05 + 9.95 * urand(r)) / sqrt(c);
	place(x, v, g->d, rad, c);
	plain_attr(a, rad);
}

/* iso: a wrapped normal at the origin, sigma 1.25 per tangent axis. */
static void make_iso(float *x, struct rd_attr *a, size_t d, double c,
		     struct rng *r)
{
	double v[4096], n = 0;
	for (size_t i = 0; i < d; i++) {
		v[i] = 1.25 * nrand(r);
		n += v[i] * v[i];
	}
	n = sqrt(n);
	for (size_t i = 0; i < d; i++)
		v[i] /= n;
	place(x, v, d, n / sqrt(c), c);
	plain_attr(a, n / sqrt(c));
}

/* tree: a random tree grown breadth first until total nodes exist. The
 * root sits at the origin with 8 children; a node has no children with
 * probability 0.3, else 1 + a geometric count (mean 2.5). A child lies
 * 0.75..1.25 (over sqrt(c)) farther out than its parent, its direction the
 * parent's plus Gaussian noise that shrinks as e^(-r/2) with the parent's
 * radius r, so siblings stay apart as the space widens. */
static void make_tree(float *all, struct rd_attr *attr, size_t total,
		      size_t d, double c, struct rng *r)
{
	double *dir = malloc(total * d * sizeof *dir);
	double *rad = malloc(total * sizeof *rad);
	size_t made = 1;
	for (size_t i = 0; i < d; i++)
		dir[i] = nrand(r);
	normalize(dir, d);
	rad[0] = 0;
	for (size_t p = 0; p < made && made < total; p++) {
		size_t kids;
		if (p == 0)
			kids = 8;
		else if (urand(r) < 0.3)
			kids = 0;
		else
			kids = 1 + (size_t)(-log(urand(r)) * 2.5);
		double sigma = p == 0 ? 10.0 : 1.5 * exp(-0.5 * sqrt(c) * rad[p]);
		for (size_t k = 0; k < kids && made < total; k++, made++) {
			double *v = dir + made * d;
			for (size_t i = 0; i < d; i++)
				v[i] = dir[p * d + i] + sigma * nrand(r);
			normalize(v, d);
			rad[made] = rad[p] + (0.75 + 0.5 * urand(r)) / sqrt(c);
		}
	}
	/* the process dies out with tiny probability: fill from the root */
	for (; made < total; made++) {
		for (size_t i = 0; i < d; i++)
			dir[made * d + i] = nrand(r);
		normalize(dir + made * d, d);
		rad[made] = 1 / sqrt(c);
	}
	for (size_t i = 0; i < total; i++) {
		place(all + i * d, dir + i * d, d, rad[i], c);
		plain_attr(&attr[i], rad[i]);
	}
	free(dir);
	free(rad);
}

/* wordnet: rows of a file of float32 space components (bench/wordnet_embed.py).
 * total 0 takes every row. */
static float *load_rows(const char *path, size_t d, size_t *rows)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "gen_hysac: cannot read %s: %s\n", path,
			strerror(errno));
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	long bytes = ftell(f);
	fseek(f, 0, SEEK_SET);
	*rows = (size_t)bytes / (d * 4);
	float *x = malloc(*rows * d * 4 + 4);
	if (fread(x, 4, *rows * d, f) != *rows * d) {
		fclose(f);
		free(x);
		return NULL;
	}
	fclose(f);
	return x;
}

/* Hold out nq of total rows as queries, the same ones on every run. */
static void split(struct rd_set *s, float *all, struct rd_attr *attr,
		  size_t total)
{
	size_t d = s->d;
	size_t *perm = malloc(total * sizeof *perm);
	struct rng r = {424242};
	for (size_t i = 0; i < total; i++)
		perm[i] = i;
	for (size_t i = total - 1; i > 0; i--) {
		size_t j = (size_t)(urand(&r) * (double)(i + 1));
		size_t t = perm[i];
		perm[i] = perm[j], perm[j] = t;
	}
	for (size_t i = 0; i < s->nq; i++)
		memcpy(s->query + i * d, all + perm[i] * d, d * 4);
	for (size_t i = 0; i < s->n; i++) {
		memcpy(s->base + i * d, all + perm[s->nq + i] * d, d * 4);
		s->attr[i] = attr[perm[s->nq + i]];
	}
	free(perm);
}

int rd_make_family(struct rd_set *s, const char *dir, const char *family,
		   const char *input, size_t n, size_t d, size_t nq, double c)
{
	if (rd_load(s, dir) == 0 && (n == 0 || s->n == n) && s->d == d &&
	    s->nq == nq && s->c == c)
		return 0;
	rd_free(s);
	if (d > 4096 || d == 0)
		return -1;
	float *rows = NULL;
	size_t have = 0;
	if (!strcmp(family, "wordnet")) {
		if (!input || !(rows = load_rows(input, d, &have)))
			return -1;
		if (n == 0 || n + nq > have)
			n = have > nq ? have - nq : 0;
		if (n == 0) {
			free(rows);
			return -1;
		}
	} else if (strcmp(family, "hysac") && strcmp(family, "wide") &&
		   strcmp(family, "tree") && strcmp(family, "iso")) {
		fprintf(stderr, "gen_hysac: unknown family %s (hysac, wide, "
				"tree, iso, wordnet)\n", family);
		return -1;
	}
	struct rng r = {12345};
	s->n = n, s->d = d, s->nq = nq, s->c = c;
	s->base = malloc(n * d * sizeof *s->base);
	s->query = malloc(nq * d * sizeof *s->query);
	s->attr = malloc((n > nq ? n : nq) * sizeof *s->attr);
	if (!strcmp(family, "hysac") || !strcmp(family, "wide")) {
		int wide = !strcmp(family, "wide");
		struct gen g;
		make_gen(&g, d, &r);
		for (size_t i = 0; i < n; i++)
			(wide ? make_wide : make_point)(s->base + i * d,
							&s->attr[i], &g, c, &r);
		struct rng rq = {987654321};
		struct rd_attr qa;
		for (size_t i = 0; i < nq; i++)
			(wide ? make_wide : make_point)(s->query + i * d, &qa,
							&g, c, &rq);
		free_gen(&g);
	} else if (!strcmp(family, "iso")) {
		for (size_t i = 0; i < n; i++)
			make_iso(s->base + i * d, &s->attr[i], d, c, &r);
		struct rng rq = {987654321};
		struct rd_attr qa;
		for (size_t i = 0; i < nq; i++)
			make_iso(s->query + i * d, &qa, d, c, &rq);
	} else {
		size_t total = n + nq;
		float *all = rows ? rows : malloc(total * d * sizeof *all);
		struct rd_attr *attr = malloc(total * sizeof *attr);
		if (rows) {
			for (size_t i = 0; i < total; i++) {
				double y = 0;
				for (size_t j = 0; j < d; j++)
					y += (double)all[i * d + j] * all[i * d + j];
				plain_attr(&attr[i], asinh(sqrt(c * y)) / sqrt(c));
			}
		} else {
			make_tree(all, attr, total, d, c, &r);
		}
		split(s, all, attr, total);
		free(all);
		free(attr);
	}
	ground_truth(s);
	return save(s, dir);
}

int rd_make(struct rd_set *s, const char *dir, size_t n, size_t d, size_t nq,
	    double c)
{
	return rd_make_family(s, dir, "hysac", NULL, n, d, nq, c);
}

void rd_free(struct rd_set *s)
{
	free(s->base);
	free(s->query);
	free(s->attr);
	free(s->gt);
	free(s->gtf);
	memset(s, 0, sizeof *s);
}

double rd_recall(const int32_t *rows, size_t k, const int32_t *gt, size_t gk,
		 size_t nq, size_t at)
{
	double sum = 0;
	size_t counted = 0;
	for (size_t q = 0; q < nq; q++) {
		size_t hit = 0, want = 0;
		for (size_t j = 0; j < at; j++)
			want += gt[q * gk + j] >= 0;
		for (size_t i = 0; i < at && i < k; i++)
			for (size_t j = 0; j < at; j++)
				hit += rows[q * k + i] >= 0 &&
				       rows[q * k + i] == gt[q * gk + j];
		if (want) {
			sum += (double)hit / (double)want;
			counted++;
		}
	}
	return counted ? sum / counted : 1.0;
}
