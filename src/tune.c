/*
 * tune.c - the search beam a database measures for itself.
 *
 * A sample of stored points searches the index for its own vector, as
 * held-out queries: the walk steps around the point (it would otherwise
 * start from the point's own links, its nearest neighbours, and measure
 * recall far above what a new query sees) and the point is dropped from
 * the exact truth (an exact batched scan, src/search_exact.c), so what is
 * measured is recall@10 of its 10 nearest other points. Hits count by key:
 * a result whose key is within the 10th true neighbour's (relative 1e-5)
 * is a hit, so ties and duplicates do not count as misses. The curve
 * (recall at each beam of a fixed ladder, up to the first beam that finds
 * everything) is kept in the store's meta table under "index_tune" as text:
 *
 *   v1 nodes=N sample=S k=10 seconds=T curve=EF:R,EF:R,...
 *
 * A search with ef = 0 takes the smallest measured beam whose recall
 * reaches the target (hydb_search_options.target_recall, default
 * HYDB_DEFAULT_RECALL); the largest measured one when none does; max(k, 64)
 * when the database was never measured. hydb_put measures again when the
 * index has at least HYDB_TUNE_MIN_NODES nodes and has doubled since (or
 * halved: a delete-heavy history).
 */
#include "base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_internal.h"
#include "index/hnsw.h"
#include "search_exact.h"
#include "storage/store.h"

#define TUNE_META "index_tune"
#define TUNE_K 10

static const size_t ladder[] = {10,  12,  16,  20,  24,  32,   40,   48,
				64,  80,  96,  128, 160, 192,  256,  320,
				384, 512, 640, 768, 1024, 1536, 2048, 4096};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int hydb_tune_parse(const char *s, hydb_tune_info *t)
{
	memset(t, 0, sizeof *t);
	unsigned long long nodes;
	unsigned long sample, k;
	int used = 0;
	if (sscanf(s, "v1 nodes=%llu sample=%lu k=%lu seconds=%lf curve=%n",
		   &nodes, &sample, &k, &t->seconds, &used) != 4 || !used)
		return hydb_error_set(HYDB_ECORRUPT, "index_tune: unreadable '%.60s'", s);
	t->nodes = nodes;
	t->sample = sample;
	for (const char *p = s + used; *p && t->n < HYDB_TUNE_MAX_POINTS;) {
		char *e;
		unsigned long ef = strtoul(p, &e, 10);
		if (e == p || *e != ':')
			break;
		p = e + 1;
		double r = strtod(p, &e);
		if (e == p || ef == 0 || !(r >= 0 && r <= 1))
			break;
		t->ef[t->n] = ef;
		t->recall[t->n++] = r;
		p = *e == ',' ? e + 1 : e;
	}
	RETURN_ERROR_IF(t->n == 0, HYDB_ECORRUPT, "index_tune: no curve in '%.60s'", s);
	return HYDB_OK;
}

int hydb_tune_read(hydb_store *st, MDB_txn *txn, hydb_tune_info *out)
{
	char buf[2048];
	int rc = hydb_store_meta_get(st, txn, TUNE_META, buf, sizeof buf);
	if (rc < 0)
		return rc;
	return hydb_tune_parse(buf, out);
}

size_t hydb_tune_pick(const hydb_tune_info *t, double target, size_t k)
{
	size_t ef = 0;
	if (!t || t->n == 0)
		return hydb_index_default_ef(k);
	if (!(target > 0))
		target = HYDB_DEFAULT_RECALL;
	for (size_t i = 0; i < t->n && !ef; i++)
		if (t->recall[i] >= target)
			ef = t->ef[i];
	if (!ef)
		ef = t->ef[t->n - 1];
	return ef < k ? k : ef;
}

/* ---- measuring ----------------------------------------------------------- */

struct sample {
	size_t want, live, seen, n, dim;
	float *vec;
	uint32_t *slot;
};

static int take(uint32_t block_no, const hydb_block *b, void *ctx)
{
	struct sample *s = ctx;
	if (!b)
		return hydb_error_set(HYDB_ECORRUPT, "tune: block %u is damaged", block_no);
	for (uint32_t i = 0; i < HYDB_BLOCK_SLOTS && s->n < s->want; i++) {
		if (!b->attr[i].live)
			continue;
		/* live point j is taken when floor(j want / live) steps */
		size_t j = s->seen++;
		if (s->live > s->want && (j * s->want) % s->live >= s->want)
			continue;
		memcpy(s->vec + s->n * s->dim, b->vec + (size_t)i * s->dim, s->dim * sizeof(float));
		s->slot[s->n++] = block_no * HYDB_BLOCK_SLOTS + i;
	}
	return 0;
}

/* Hits of one result row against the truth row, the point itself left out
 * of both. */
static size_t hits_of(const hydb_hit *res, size_t nres, const hydb_hit *gt, size_t ngt,
		      uint32_t self, size_t *want)
{
	double kth = -1;
	size_t w = 0, h = 0;
	for (size_t i = 0; i < ngt && w < TUNE_K; i++)
		if (gt[i].slot != self) {
			kth = gt[i].key;
			w++;
		}
	*want = w;
	double lim = kth + fabs(kth) * 1e-5 + 1e-12;
	for (size_t i = 0, taken = 0; i < nres && taken < TUNE_K; i++) {
		if (res[i].slot == self)
			continue;
		taken++;
		h += res[i].key <= lim;
	}
	return h < w ? h : w;
}

struct tune_write {
	char text[2048];
};

static int write_fn(hydb_store *st, MDB_txn *txn, void *ctx)
{
	struct tune_write *w = ctx;
	return hydb_store_meta_put(st, txn, TUNE_META, w->text);
}

int hydb_tune(hydb_db *db, size_t sample, hydb_tune_info *out)
{
	RETURN_ERROR_IF(!db, HYDB_EINVAL, "hydb_tune: database handle is NULL");
	RETURN_ERROR_IF(sample > HYDB_TUNE_MAX_SAMPLE, HYDB_EINVAL,
			"hydb_tune: sample must be 0..%d, got %zu", HYDB_TUNE_MAX_SAMPLE, sample);
	hydb_store *st = hydb_db_store(db);
	RETURN_ERROR_IF(hydb_store_readonly(st), HYDB_EREADONLY,
			"hydb_tune: the database is open read-only");
	hydb_index *ix = hydb_db_index(db);
	hydb_tune_info t;
	memset(&t, 0, sizeof t);
	double t0 = now();
	struct sample s = {.want = sample ? sample : HYDB_TUNE_DEFAULT_SAMPLE,
			   .dim = hydb_store_dim(st)};
	hydb_hit *gt = NULL, *res = NULL;
	size_t *ngt = NULL;
	MDB_txn *txn;
	uint64_t live;
	FORWARD_IF_ERROR(hydb_store_read_begin(st, &txn));
	int rc = hydb_store_count(st, txn, &live);
	hydb_index_stats is;
	if (rc == 0)
		rc = hydb_index_stats_get(ix, txn, &is);
	if (rc == 0 && live < 2)
		rc = hydb_error_set(HYDB_EINVAL, "hydb_tune: %llu records: nothing to measure",
				    (unsigned long long)live);
	if (rc == 0) {
		s.live = live;
		if (s.want > live)
			s.want = live;
		s.vec = hydb_alloc_array(s.want * s.dim, sizeof *s.vec, "tune sample");
		s.slot = hydb_alloc_array(s.want, sizeof *s.slot, "tune sample");
		gt = hydb_alloc_array(s.want * (TUNE_K + 1), sizeof *gt, "tune truth");
		ngt = hydb_alloc_array(s.want, sizeof *ngt, "tune truth");
		res = hydb_alloc_array(TUNE_K + 1, sizeof *res, "tune results");
		rc = s.vec && s.slot && gt && ngt && res ? 0 : HYDB_ENOMEM;
	}
	if (rc == 0)
		rc = hydb_store_each_block(st, txn, take, &s);
	if (rc == 0)
		rc = hydb_exact_search(st, txn, s.vec, s.n, TUNE_K + 1, NULL, gt, ngt);
	for (size_t e = 0; rc == 0 && e < sizeof ladder / sizeof *ladder; e++) {
		size_t hit = 0, want = 0;
		for (size_t q = 0; rc == 0 && q < s.n; q++) {
			size_t nres, w;
			rc = hydb_index_search_without(ix, txn, s.vec + q * s.dim, TUNE_K + 1,
						       ladder[e], s.slot[q], res, &nres);
			hit += hits_of(res, nres, gt + q * (TUNE_K + 1), ngt[q], s.slot[q], &w);
			want += w;
		}
		t.ef[t.n] = ladder[e];
		t.recall[t.n++] = want ? (double)hit / (double)want : 1.0;
		if (hit == want || ladder[e] >= 2 * is.nodes)
			break;
	}
	hydb_store_read_end(st, txn);
	free(s.vec);
	free(s.slot);
	free(gt);
	free(ngt);
	free(res);
	FORWARD_IF_ERROR(rc);
	t.nodes = is.nodes;
	t.sample = s.n;
	t.seconds = now() - t0;
	struct tune_write w;
	int len = snprintf(w.text, sizeof w.text, "v1 nodes=%llu sample=%zu k=%d seconds=%.3f curve=",
			   (unsigned long long)t.nodes, t.sample, TUNE_K, t.seconds);
	for (size_t i = 0; i < t.n; i++)
		len += snprintf(w.text + len, sizeof w.text - (size_t)len, "%s%zu:%.4f",
				i ? "," : "", t.ef[i], t.recall[i]);
	FORWARD_IF_ERROR(hydb_store_write(st, write_fn, &w));
	if (out)
		*out = t;
	return HYDB_OK;
}

int hydb_tune_get(hydb_db *db, hydb_tune_info *out)
{
	RETURN_ERROR_IF(!db || !out, HYDB_EINVAL, "hydb_tune_get: NULL argument");
	hydb_store *st = hydb_db_store(db);
	MDB_txn *txn;
	FORWARD_IF_ERROR(hydb_store_read_begin(st, &txn));
	int rc = hydb_tune_read(st, txn, out);
	hydb_store_read_end(st, txn);
	if (rc == HYDB_ENOTFOUND)
		return hydb_error_set(HYDB_ENOTFOUND, "the database has not measured its recall yet");
	return rc;
}

/* After a write: measure when the index has grown (or shrunk) by a factor
 * of 2 since the last measurement. Failures leave the old curve. */
void hydb_tune_maybe(hydb_db *db)
{
	hydb_store *st = hydb_db_store(db);
	hydb_tune_info t;
	hydb_index_stats is;
	MDB_txn *txn;
	if (hydb_store_readonly(st) || hydb_store_read_begin(st, &txn) < 0)
		return;
	int rc = hydb_index_stats_get(hydb_db_index(db), txn, &is);
	int have = rc == 0 && hydb_tune_read(st, txn, &t) == 0;
	hydb_store_read_end(st, txn);
	if (rc < 0 || is.nodes < HYDB_TUNE_MIN_NODES)
		return;
	if (have && is.nodes < 2 * t.nodes && 2 * is.nodes > t.nodes)
		return;
	hydb_tune(db, 0, NULL);
}
