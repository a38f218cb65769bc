/*
 * check_db.c - the database API and the store: create/open checks, bad
 * input that must leave the store unchanged, upsert/delete, map growth,
 * and exact search against a double-precision brute force.
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hydb.h"
#include "db_internal.h"
#include "base/base.h"
#include "storage/store.h"

#define DIM 19 /* odd on purpose: SIMD tails */

static char tmpdir[256];

static int remove_one(const char *path, const struct stat *sb, int type,
		      struct FTW *f)
{
	(void)sb, (void)type, (void)f;
	return remove(path);
}

/* Runs in the forked test after its body, so a failing test cleans up too;
 * tests that chmod the directory restore it before they return. */
static void remove_tmpdir(void)
{
	char *slash = strrchr(tmpdir, '/');
	if (!tmpdir[0] || !slash)
		return;
	chmod(tmpdir, 0700);
	*slash = 0; /* the mkdtemp directory, not just its db/ */
	chmod(tmpdir, 0700);
	nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = 0;
}

static const char *fresh_dir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/hydb-check-db-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	strcat(tmpdir, "/db");
	return tmpdir;
}

static hydb_db *create_db(size_t dim, double c)
{
	hydb_open_options o;
	hydb_db *db = NULL;
	hydb_open_options_init(&o);
	o.flags = HYDB_OPEN_CREATE;
	o.dim = dim;
	o.curvature = c;
	ck_assert_int_eq(hydb_open(&db, fresh_dir(), &o), 0);
	return db;
}

static uint64_t rng_state = 88172645463325252ull;
static double urand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (rng_state >> 11) * (1.0 / 9007199254740992.0);
}
static double nrand(void)
{
	return sqrt(-2 * log(urand() + 1e-300)) * cos(2 * M_PI * urand());
}

/* A point at geodesic radius r in a random direction. */
static void random_point(float *x, size_t dim, double c, double r)
{
	double n = 0, s;
	for (size_t i = 0; i < dim; i++) {
		x[i] = (float)nrand();
		n += (double)x[i] * x[i];
	}
	s = sinh(sqrt(c) * r) / sqrt(c) / sqrt(n);
	for (size_t i = 0; i < dim; i++)
		x[i] = (float)(x[i] * s);
}

static uint64_t count_of(hydb_db *db)
{
	uint64_t n;
	ck_assert_int_eq(hydb_count(db, &n), 0);
	return n;
}

static void put_one(hydb_db *db, const char *key, const float *v, int expect)
{
	hydb_record r = {0};
	r.key = key;
	r.vector = v;
	ck_assert_int_eq(hydb_put(db, &r, 1, NULL), expect);
}

/* The documented limits hold in the library itself, not only in the CLI:
 * a point beyond HYDB_MAX_RADIUS is refused whole (1e20 components once
 * went in and broke exact search), one just inside it is stored and found,
 * k and ef past their limits are refused (ef = (size_t)-1 crashed), and a
 * NULL handle is an error, not a crash. */
START_TEST(test_documented_limits)
{
	hydb_db *db = create_db(DIM, 2.0);
	hydb_search_options so;
	hydb_results *res = NULL;
	float v[DIM], far[DIM], huge[DIM];
	hydb_record r = {0};

	ck_assert_ptr_null(strstr(hydb_last_error(), "too many databases"));
	random_point(v, DIM, 2.0, 1.0);
	random_point(far, DIM, 2.0, 0.999 * HYDB_MAX_RADIUS / sqrt(2.0));
	random_point(huge, DIM, 2.0, 1.001 * HYDB_MAX_RADIUS / sqrt(2.0));
	put_one(db, "near", v, 0);
	put_one(db, "huge", huge, HYDB_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "radius"));
	for (size_t i = 0; i < DIM; i++)
		huge[i] = 1e20f;
	put_one(db, "1e20", huge, HYDB_ETOOBIG);
	put_one(db, "far", far, 0);
	ck_assert_uint_eq(count_of(db), 2);

	hydb_search_options_init(&so);
	so.k = 1;
	so.exact = 1;
	ck_assert_int_eq(hydb_search(db, &res, far, &so), 0);
	ck_assert_uint_eq(res->n, 1);
	ck_assert_str_eq(res->keys[0], "far");
	hydb_results_free(res);

	so.exact = 0;
	so.ef = HYDB_MAX_EF + 1;
	ck_assert_int_eq(hydb_search(db, &res, v, &so), HYDB_EINVAL);
	so.ef = (size_t)-1;
	ck_assert_int_eq(hydb_search(db, &res, v, &so), HYDB_EINVAL);
	so.ef = HYDB_MAX_EF;
	so.k = HYDB_MAX_K + 1;
	ck_assert_int_eq(hydb_search(db, &res, v, &so), HYDB_EINVAL);
	so.k = HYDB_MAX_K;
	ck_assert_int_eq(hydb_search(db, &res, v, &so), 0);
	ck_assert_uint_eq(res->n, 2);
	hydb_results_free(res);

	r.key = "x";
	r.vector = v;
	ck_assert_int_eq(hydb_put(NULL, &r, 1, NULL), HYDB_EINVAL);
	ck_assert_int_eq(hydb_delete_key(NULL, "x"), HYDB_EINVAL);
	ck_assert_int_eq(hydb_delete_id(NULL, 1), HYDB_EINVAL);
	ck_assert_int_eq(hydb_count(NULL, NULL), HYDB_EINVAL);
	hydb_close(db);
}
END_TEST

/* A batch delete is one transaction: a missing record fails it whole
 * unless HYDB_DELETE_MISSING_OK; repeats are deleted once. */
START_TEST(test_delete_batch)
{
	hydb_db *db = create_db(DIM, 1);
	const char *names[] = {"a", "b", "c", "d", "e"};
	const char *some[] = {"b", "nope", "c"};
	const char *twice[] = {"b", "b", "c", "nope"};
	uint64_t ids[5], bad_ids[2];
	float v[DIM];
	size_t done = 99;
	hydb_entry *e;

	for (int i = 0; i < 5; i++) {
		hydb_record r = {0};
		random_point(v, DIM, 1, 1.0 + i);
		r.key = names[i];
		r.vector = v;
		ck_assert_int_eq(hydb_put(db, &r, 1, &ids[i]), 0);
	}
	ck_assert_int_eq(hydb_delete_batch(db, some, NULL, 3, 0, &done), HYDB_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "nope"));
	ck_assert_uint_eq(done, 0);
	ck_assert_uint_eq(count_of(db), 5);
	ck_assert_int_eq(hydb_delete_batch(db, twice, NULL, 4, HYDB_DELETE_MISSING_OK, &done), 0);
	ck_assert_uint_eq(done, 2);
	ck_assert_uint_eq(count_of(db), 3);
	ck_assert_int_eq(hydb_get_key(db, "b", &e), HYDB_ENOTFOUND);
	bad_ids[0] = ids[0];
	bad_ids[1] = ids[0];
	ck_assert_int_eq(hydb_delete_batch(db, NULL, bad_ids, 2, 0, &done), 0);
	ck_assert_uint_eq(done, 1);
	ck_assert_uint_eq(count_of(db), 2);
	ck_assert_int_eq(hydb_delete_batch(db, NULL, NULL, 1, 0, NULL), HYDB_EINVAL);
	ck_assert_int_eq(hydb_delete_batch(db, names, ids, 1, 0, NULL), HYDB_EINVAL);
	ck_assert_int_eq(hydb_delete_batch(db, names, NULL, 1, 0x10, NULL), HYDB_EINVAL);
	ck_assert_int_eq(hydb_delete_batch(NULL, names, NULL, 1, 0, NULL), HYDB_EINVAL);
	hydb_close(db);
}
END_TEST

struct each_ctx {
	size_t n;
	uint64_t last_id;
	int stop_at;
};

static int each_fn(const hydb_entry *e, void *vctx)
{
	struct each_ctx *c = vctx;
	ck_assert_uint_gt(e->id, c->last_id); /* id order */
	ck_assert_uint_eq(e->dim, DIM);
	ck_assert_ptr_nonnull(e->key);
	c->last_id = e->id;
	if (++c->n == (size_t)c->stop_at)
		return HYDB_EIO;
	return HYDB_OK;
}

static void count_msgs(const char *msg, void *ctx)
{
	(void)msg;
	++*(size_t *)ctx;
}

START_TEST(test_stats_check_each)
{
	hydb_db *db = create_db(DIM, 1);
	hydb_db_stats st;
	hydb_check_report rep;
	struct each_ctx ec = {0, 0, 0};
	size_t msgs = 0;
	float v[DIM];
	double rmin = INFINITY, rmax = 0;

	ck_assert_int_eq(hydb_stats(db, &st), 0);
	ck_assert_uint_eq(st.count, 0);
	ck_assert(st.radius_min == 0 && st.radius_max == 0);
	for (int i = 0; i < 7; i++) {
		hydb_record r = {0};
		char key[8];
		snprintf(key, sizeof key, "k%d", i);
		random_point(v, DIM, 1, 0.5 + i);
		r.key = key;
		r.vector = v;
		r.modality = i % 2 ? HYDB_MOD_TEXT : HYDB_MOD_IMAGE;
		r.label = i < 3 ? HYDB_LABEL_SAFE : HYDB_LABEL_UNSAFE;
		ck_assert_int_eq(hydb_put(db, &r, 1, NULL), 0);
		double rad = hydb_lorentz_radius(v, DIM, 1);
		if (rad < rmin) rmin = rad;
		if (rad > rmax) rmax = rad;
	}
	ck_assert_int_eq(hydb_stats(db, &st), 0);
	ck_assert_uint_eq(st.count, 7);
	ck_assert_uint_eq(st.groups[HYDB_MOD_IMAGE][HYDB_LABEL_SAFE], 2);  /* 0, 2 */
	ck_assert_uint_eq(st.groups[HYDB_MOD_TEXT][HYDB_LABEL_SAFE], 1);   /* 1 */
	ck_assert_uint_eq(st.groups[HYDB_MOD_IMAGE][HYDB_LABEL_UNSAFE], 2); /* 4, 6 */
	ck_assert_uint_eq(st.groups[HYDB_MOD_TEXT][HYDB_LABEL_UNSAFE], 2);  /* 3, 5 */
	ck_assert_double_eq_tol(st.radius_min, rmin, 1e-5);
	ck_assert_double_eq_tol(st.radius_max, rmax, 1e-5);
	ck_assert_int_eq(hydb_stats(db, NULL), HYDB_EINVAL);

	ck_assert_int_eq(hydb_check(db, count_msgs, &msgs, &rep), 0);
	ck_assert_uint_eq(rep.records, 7);
	ck_assert_uint_eq(rep.keys, 7);
	ck_assert_uint_eq(rep.store_problems + rep.index_problems + rep.unreachable, 0);
	ck_assert_uint_eq(msgs, 0);
	ck_assert_int_eq(hydb_check(NULL, NULL, NULL, &rep), HYDB_EINVAL);

	ck_assert_int_eq(hydb_each_entry(db, each_fn, &ec), 0);
	ck_assert_uint_eq(ec.n, 7);
	ec = (struct each_ctx){0, 0, 3};
	ck_assert_int_eq(hydb_each_entry(db, each_fn, &ec), HYDB_EIO); /* the callback stops it */
	ck_assert_uint_eq(ec.n, 3);
	ck_assert_int_eq(hydb_each_entry(db, NULL, NULL), HYDB_EINVAL);
	hydb_close(db);
}
END_TEST

START_TEST(test_create_and_reopen)
{
	hydb_db *db = create_db(DIM, 0.5);
	hydb_open_options o;
	struct stat sb;
	ck_assert_uint_eq(hydb_dim(db), DIM);
	ck_assert(hydb_curvature(db) == 0.5);
	hydb_close(db);
	ck_assert_int_eq(stat(tmpdir, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 077, 0); /* private */
	ck_assert_int_eq(hydb_open(&db, tmpdir, NULL), 0);
	ck_assert_uint_eq(hydb_dim(db), DIM);
	ck_assert(hydb_curvature(db) == 0.5);
	/* a second handle in the same process is refused, not silently broken */
	{
		hydb_db *db2;
		ck_assert_int_eq(hydb_open(&db2, tmpdir, NULL), HYDB_EBUSY);
	}
	hydb_close(db);
	/* create with other parameters over an existing database */
	hydb_open_options_init(&o);
	o.flags = HYDB_OPEN_CREATE;
	o.dim = DIM + 1;
	o.curvature = 0.5;
	ck_assert_int_eq(hydb_open(&db, tmpdir, &o), HYDB_EMISMATCH);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "dim"));
}
END_TEST

START_TEST(test_missing_and_newer_format)
{
	hydb_db *db;
	ck_assert_int_eq(hydb_open(&db, "/nonexistent/hydb-db", NULL), HYDB_ENOTFOUND);
	db = create_db(4, 1);
	{
		/* pretend a future hydb wrote it */
		hydb_store *st = hydb_db_store(db);
		(void)st;
		ck_assert_int_eq(hydb_db_put_meta(db, NULL, 0, NULL, "format_version", "999"), 0);
	}
	hydb_close(db);
	ck_assert_int_eq(hydb_open(&db, tmpdir, NULL), HYDB_EVERSION);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "999"));
}
END_TEST

START_TEST(test_bad_input_leaves_store_unchanged)
{
	hydb_db *db = create_db(DIM, 1);
	float v[DIM], w[DIM];
	char *big;
	hydb_record recs[2] = {{0}};

	random_point(v, DIM, 1, 2);
	put_one(db, "good", v, 0);
	ck_assert_uint_eq(count_of(db), 1);

	/* NaN/Inf in every position, including the SIMD tail */
	for (size_t pos = 0; pos < DIM; pos++) {
		memcpy(w, v, sizeof w);
		w[pos] = pos % 2 ? NAN : -INFINITY;
		put_one(db, "bad", w, HYDB_ENONFINITE);
		ck_assert_ptr_nonnull(strstr(hydb_last_error(), "component"));
	}
	/* a bad record anywhere in a batch rejects the whole batch */
	memcpy(w, v, sizeof w);
	w[DIM - 1] = NAN;
	recs[0].key = "batch-ok";
	recs[0].vector = v;
	recs[1].key = "batch-bad";
	recs[1].vector = w;
	ck_assert_int_eq(hydb_put(db, recs, 2, NULL), HYDB_ENONFINITE);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "record 1"));

	/* oversized key and caption, invalid UTF-8, non-object metadata */
	big = malloc(HYDB_MAX_CAPTION + 2);
	memset(big, 'a', HYDB_MAX_CAPTION + 1);
	big[HYDB_MAX_CAPTION + 1] = 0;
	recs[0].vector = v;
	recs[0].key = big;
	ck_assert_int_eq(hydb_put(db, recs, 1, NULL), HYDB_ETOOBIG);
	recs[0].key = "k";
	recs[0].caption = big;
	ck_assert_int_eq(hydb_put(db, recs, 1, NULL), HYDB_ETOOBIG);
	recs[0].caption = "caf\xc3";
	ck_assert_int_eq(hydb_put(db, recs, 1, NULL), HYDB_EUTF8);
	recs[0].caption = "over\xc0\xafong";
	ck_assert_int_eq(hydb_put(db, recs, 1, NULL), HYDB_EUTF8);
	recs[0].caption = NULL;
	recs[0].meta = "[1,2]";
	ck_assert_int_eq(hydb_put(db, recs, 1, NULL), HYDB_EINVAL);
	free(big);

	ck_assert_uint_eq(count_of(db), 1);
	{
		hydb_entry *e;
		ck_assert_int_eq(hydb_get_key(db, "good", &e), 0);
		ck_assert_int_eq(memcmp(e->vector, v, sizeof v), 0);
		hydb_entry_free(e);
		ck_assert_int_eq(hydb_get_key(db, "batch-ok", &e), HYDB_ENOTFOUND);
	}
	hydb_close(db);
}
END_TEST

START_TEST(test_upsert_delete_get)
{
	hydb_db *db = create_db(DIM, 2);
	float v[DIM], w[DIM];
	hydb_record r = {0};
	hydb_entry *e;
	uint64_t id1, id2;
	char longkey[1000];

	random_point(v, DIM, 2, 1.5);
	random_point(w, DIM, 2, 3.5);
	r.key = "photo.jpg";
	r.vector = v;
	r.caption = "a cat on a sofa";
	r.meta = "{\"path\": \"/x/photo.jpg\"}";
	r.modality = HYDB_MOD_IMAGE;
	r.label = HYDB_LABEL_SAFE;
	r.item = 7;
	ck_assert_int_eq(hydb_put(db, &r, 1, &id1), 0);
	ck_assert_int_eq(hydb_get_key(db, "photo.jpg", &e), 0);
	ck_assert_str_eq(e->caption, "a cat on a sofa");
	ck_assert_str_eq(e->meta, "{\"path\": \"/x/photo.jpg\"}");
	ck_assert_int_eq(e->modality, HYDB_MOD_IMAGE);
	ck_assert_int_eq(e->label, HYDB_LABEL_SAFE);
	ck_assert_uint_eq(e->item, 7);
	ck_assert(fabs(e->radius - 1.5) < 1e-4);
	hydb_entry_free(e);

	/* same key again replaces, keeping the id */
	r.vector = w;
	r.caption = NULL;
	r.label = HYDB_LABEL_UNSAFE;
	ck_assert_int_eq(hydb_put(db, &r, 1, &id2), 0);
	ck_assert_uint_eq(id1, id2);
	ck_assert_uint_eq(count_of(db), 1);
	ck_assert_int_eq(hydb_get_id(db, id1, &e), 0);
	ck_assert_ptr_null(e->caption);
	ck_assert_int_eq(e->label, HYDB_LABEL_UNSAFE);
	ck_assert_int_eq(memcmp(e->vector, w, sizeof w), 0);
	ck_assert(fabs(e->radius - 3.5) < 1e-4);
	hydb_entry_free(e);

	/* long keys (over LMDB's key limit) work and stay distinct */
	memset(longkey, 'k', sizeof longkey - 1);
	longkey[sizeof longkey - 1] = 0;
	r.key = longkey;
	ck_assert_int_eq(hydb_put(db, &r, 1, NULL), 0);
	longkey[sizeof longkey - 2] = 'x';
	r.key = longkey;
	ck_assert_int_eq(hydb_put(db, &r, 1, NULL), 0);
	ck_assert_uint_eq(count_of(db), 3);
	ck_assert_int_eq(hydb_get_key(db, longkey, &e), 0);
	ck_assert_str_eq(e->key, longkey);
	hydb_entry_free(e);

	ck_assert_int_eq(hydb_delete_key(db, "photo.jpg"), 0);
	ck_assert_int_eq(hydb_delete_key(db, "photo.jpg"), HYDB_ENOTFOUND);
	ck_assert_int_eq(hydb_get_id(db, id1, &e), HYDB_ENOTFOUND);
	ck_assert_uint_eq(count_of(db), 2);
	hydb_close(db);
}
END_TEST

START_TEST(test_readonly)
{
	hydb_db *db = create_db(4, 1);
	hydb_open_options o;
	float v[4] = {0.1f, 0.2f, 0.3f, 0.4f};
	put_one(db, "a", v, 0);
	hydb_close(db);
	hydb_open_options_init(&o);
	o.flags = HYDB_OPEN_RDONLY;
	ck_assert_int_eq(hydb_open(&db, tmpdir, &o), 0);
	put_one(db, "b", v, HYDB_EREADONLY);
	ck_assert_uint_eq(count_of(db), 1);
	hydb_close(db);
	/* a directory we may not write: opening for writing fails clearly,
	 * read-only opening works (root ignores modes, so only when not root) */
	if (geteuid() != 0) {
		chmod(tmpdir, 0500);
		ck_assert_int_eq(hydb_open(&db, tmpdir, NULL), HYDB_EREADONLY);
		ck_assert_int_eq(hydb_open(&db, tmpdir, &o), 0);
		hydb_close(db);
		chmod(tmpdir, 0700);
	}
}
END_TEST

/* The self-measured beam (src/tune.c): on a graph built thin (M = 2,
 * efConstruction 8) over clustered points at radii 0.05-6, ef 64 misses
 * the 0.99 target; hydb_put measured the curve once the index had
 * HYDB_TUNE_MIN_NODES nodes, and a search without ef for target 0.99
 * reaches it on held-out queries (exact search as truth, 0.01 slack for a
 * 60-query sample). Also the API's refusals and the unmeasured default. */
#define TUNE_N 3000
#define TUNE_NQ 60
#define TUNE_DIM 24

static void clustered_point(float *x, const float *centres, double c)
{
	const float *m = centres + (size_t)(urand() * 40) * TUNE_DIM;
	double v[TUNE_DIM], n = 0;
	for (size_t i = 0; i < TUNE_DIM; i++) {
		v[i] = m[i] + 0.7 * nrand();
		n += v[i] * v[i];
	}
	double r = 0.05 + 5.95 * urand();
	double s = sinh(sqrt(c) * r) / sqrt(c) / sqrt(n);
	for (size_t i = 0; i < TUNE_DIM; i++)
		x[i] = (float)(v[i] * s);
}

static double recall_at(hydb_db *db, const float *qs, hydb_results **truth, size_t ef,
			double target)
{
	size_t hit = 0;
	hydb_search_options o;
	hydb_search_options_init(&o);
	o.ef = ef;
	o.target_recall = target;
	for (size_t q = 0; q < TUNE_NQ; q++) {
		hydb_results *r;
		ck_assert_int_eq(hydb_search(db, &r, qs + q * TUNE_DIM, &o), 0);
		for (size_t i = 0; i < r->n; i++)
			for (size_t j = 0; j < truth[q]->n; j++)
				hit += r->ids[i] == truth[q]->ids[j];
		hydb_results_free(r);
	}
	return (double)hit / (10.0 * TUNE_NQ);
}

START_TEST(test_tuned_default_beam)
{
	hydb_open_options oo;
	hydb_db *db = NULL;
	hydb_tune_info t;
	float *centres = malloc(40 * TUNE_DIM * sizeof *centres);
	float *x = malloc(TUNE_N * TUNE_DIM * sizeof *x);
	float *qs = malloc(TUNE_NQ * TUNE_DIM * sizeof *qs);
	hydb_record *recs = calloc(TUNE_N, sizeof *recs);
	char (*keys)[16] = malloc(TUNE_N * sizeof *keys);
	hydb_results *truth[TUNE_NQ];
	hydb_search_options o;

	hydb_open_options_init(&oo);
	oo.flags = HYDB_OPEN_CREATE;
	oo.dim = TUNE_DIM;
	oo.hnsw_m = 2;
	oo.hnsw_ef_construction = 8;
	ck_assert_int_eq(hydb_open(&db, fresh_dir(), &oo), 0);
	/* unmeasured: the fixed default, and hydb_tune_get says so */
	ck_assert_int_eq(hydb_tune_get(db, &t), HYDB_ENOTFOUND);
	ck_assert_uint_eq(hydb_tune_pick(NULL, 0, 10), HYDB_DEFAULT_EF);
	ck_assert_uint_eq(hydb_tune_pick(NULL, 0, 500), 500);
	ck_assert_int_eq(hydb_tune(db, 0, &t), HYDB_EINVAL); /* empty */
	ck_assert_int_eq(hydb_tune(db, HYDB_TUNE_MAX_SAMPLE + 1, &t), HYDB_EINVAL);
	ck_assert_int_eq(hydb_tune(NULL, 0, &t), HYDB_EINVAL);
	for (size_t i = 0; i < 40 * TUNE_DIM; i++)
		centres[i] = (float)nrand();
	for (size_t i = 0; i < TUNE_N; i++) {
		clustered_point(x + i * TUNE_DIM, centres, 1);
		snprintf(keys[i], sizeof keys[i], "p%zu", i);
		recs[i].key = keys[i];
		recs[i].vector = x + i * TUNE_DIM;
	}
	for (size_t q = 0; q < TUNE_NQ; q++)
		clustered_point(qs + q * TUNE_DIM, centres, 1);
	ck_assert_int_eq(hydb_put(db, recs, TUNE_N, NULL), 0);
	/* the import measured the curve: TUNE_N >= HYDB_TUNE_MIN_NODES */
	ck_assert_int_eq(hydb_tune_get(db, &t), 0);
	ck_assert_uint_eq(t.nodes, TUNE_N);
	ck_assert_uint_eq(t.sample, HYDB_TUNE_DEFAULT_SAMPLE);
	ck_assert_uint_gt(t.n, 1);
	for (size_t i = 1; i < t.n; i++)
		ck_assert_uint_gt(t.ef[i], t.ef[i - 1]);

	hydb_search_options_init(&o);
	o.exact = 1;
	for (size_t q = 0; q < TUNE_NQ; q++)
		ck_assert_int_eq(hydb_search(db, &truth[q], qs + q * TUNE_DIM, &o), 0);
	double r64 = recall_at(db, qs, truth, 64, 0);
	double r99 = recall_at(db, qs, truth, 0, 0.99);
	size_t ef99 = hydb_tune_pick(&t, 0.99, 10);
	fprintf(stderr, "tuned beam: ef 64 recall@10 %.4f; target 0.99 -> ef %zu, recall@10 %.4f\n",
		r64, ef99, r99);
	ck_assert_double_lt(r64, 0.99);
	ck_assert_uint_gt(ef99, 64);
	ck_assert_double_ge(r99, 0.98);
	/* the default target picks a beam between them */
	ck_assert_uint_le(hydb_tune_pick(&t, 0, 10), ef99);

	/* refusals: a target outside (0, 1]; measuring a read-only database */
	hydb_search_options_init(&o);
	o.target_recall = 1.5;
	hydb_results *r;
	ck_assert_int_eq(hydb_search(db, &r, qs, &o), HYDB_EINVAL);
	o.target_recall = -0.1;
	ck_assert_int_eq(hydb_search(db, &r, qs, &o), HYDB_EINVAL);
	for (size_t q = 0; q < TUNE_NQ; q++)
		hydb_results_free(truth[q]);
	hydb_close(db);
	hydb_open_options_init(&oo);
	oo.flags = HYDB_OPEN_RDONLY;
	ck_assert_int_eq(hydb_open(&db, tmpdir, &oo), 0);
	ck_assert_int_eq(hydb_tune(db, 0, &t), HYDB_EREADONLY);
	ck_assert_int_eq(hydb_tune_get(db, &t), 0);
	hydb_close(db);
	free(centres);
	free(x);
	free(qs);
	free(recs);
	free(keys);
}
END_TEST

START_TEST(test_map_growth_keeps_batches_whole)
{
	/* A 1 MiB initial map fills after a few batches; growth must be
	 * invisible to the caller and must not tear a batch. */
	hydb_db *db;
	hydb_open_options o;
	enum { D = 256, N = 500, B = 100 };
	float *v = malloc(sizeof(float) * D * N);
	hydb_record *r = calloc(N, sizeof *r);
	char (*keys)[16] = malloc(16 * N);

	hydb_open_options_init(&o);
	o.initial_map = 1048576;
	o.flags = HYDB_OPEN_CREATE;
	o.dim = D;
	ck_assert_int_eq(hydb_open(&db, fresh_dir(), &o), 0);
	for (int i = 0; i < N; i++) {
		random_point(v + (size_t)i * D, D, 1, 1 + (i % 7));
		snprintf(keys[i], 16, "k%d", i);
		r[i].key = keys[i];
		r[i].vector = v + (size_t)i * D;
	}
	for (int b = 0; b < N / B; b++)
		ck_assert_int_eq(hydb_put(db, r + b * B, B, NULL), 0);
	ck_assert_uint_eq(count_of(db), N);
	hydb_close(db);
	ck_assert_int_eq(hydb_open(&db, tmpdir, NULL), 0);
	for (int i = 0; i < N; i += 37) {
		hydb_entry *e;
		ck_assert_int_eq(hydb_get_key(db, keys[i], &e), 0);
		ck_assert_int_eq(memcmp(e->vector, v + (size_t)i * D, sizeof(float) * D), 0);
		hydb_entry_free(e);
	}
	hydb_close(db);
	free(v);
	free(r);
	free(keys);
}
END_TEST

/* Double-precision reference distance via the textbook formula, safe here
 * because radii are small. */
static double ref_dist(const float *x, const float *y, size_t d, double c)
{
	double xx = 0, yy = 0, xy = 0;
	for (size_t i = 0; i < d; i++) {
		xx += (double)x[i] * x[i];
		yy += (double)y[i] * y[i];
		xy += (double)x[i] * y[i];
	}
	double x0 = sqrt(1 / c + xx), y0 = sqrt(1 / c + yy);
	double a = c * (x0 * y0 - xy);
	return acosh(a < 1 ? 1 : a) / sqrt(c);
}

START_TEST(test_exact_search_and_filters)
{
	enum { N = 600, K = 10 };
	hydb_db *db = create_db(DIM, 1.3);
	float *v = malloc(sizeof(float) * DIM * N), q[DIM];
	hydb_record *r = calloc(N, sizeof *r);
	char (*keys)[16] = malloc(16 * N);
	hydb_search_options so;
	hydb_results *res;

	for (int i = 0; i < N; i++) {
		random_point(v + (size_t)i * DIM, DIM, 1.3, 0.2 + 3.0 * urand());
		snprintf(keys[i], 16, "p%d", i);
		r[i].key = keys[i];
		r[i].vector = v + (size_t)i * DIM;
		r[i].modality = i % 3 == 0 ? HYDB_MOD_TEXT : HYDB_MOD_IMAGE;
		r[i].label = i % 2 ? HYDB_LABEL_SAFE : HYDB_LABEL_UNSAFE;
	}
	ck_assert_int_eq(hydb_put(db, r, N, NULL), 0);
	random_point(q, DIM, 1.3, 1.0);

	for (int variant = 0; variant < 3; variant++) {
		double best[K];
		int nb = 0;
		hydb_search_options_init(&so);
		so.k = K;
		so.exact = 1;
		if (variant == 1)
			so.label_mask = HYDB_MASK(HYDB_LABEL_SAFE);
		if (variant == 2) {
			so.modality_mask = HYDB_MASK(HYDB_MOD_TEXT);
			so.max_radius = 1.5;
		}
		/* brute-force reference: sorted distances of matching points */
		double *all = malloc(sizeof(double) * N);
		for (int i = 0; i < N; i++) {
			float rad = (float)hydb_lorentz_radius(v + (size_t)i * DIM, DIM, 1.3);
			int ok = (variant != 1 || r[i].label == HYDB_LABEL_SAFE) &&
				 (variant != 2 || (r[i].modality == HYDB_MOD_TEXT && rad <= 1.5));
			all[i] = ok ? ref_dist(q, v + (size_t)i * DIM, DIM, 1.3) : INFINITY;
		}
		for (int k = 0; k < K; k++) {
			int bi = -1;
			for (int i = 0; i < N; i++)
				if (isfinite(all[i]) && (bi < 0 || all[i] < all[bi]))
					bi = i;
			if (bi < 0)
				break;
			best[nb++] = all[bi];
			all[bi] = INFINITY;
		}
		free(all);
		ck_assert_int_eq(hydb_search(db, &res, q, &so), 0);
		ck_assert_uint_eq(res->n, (size_t)nb);
		for (int k = 0; k < nb; k++) {
			ck_assert_msg(fabs(res->distances[k] - best[k]) < 1e-6 * (1 + best[k]),
				      "variant %d rank %d: %.12g vs %.12g", variant, k, res->distances[k], best[k]);
			if (variant == 1)
				ck_assert_int_eq(res->labels[k], HYDB_LABEL_SAFE);
			if (variant == 2)
				ck_assert(res->modalities[k] == HYDB_MOD_TEXT && res->radii[k] <= 1.5);
		}
		hydb_results_free(res);
	}
	/* a query with NaN is refused */
	q[DIM - 1] = NAN;
	hydb_search_options_init(&so);
	so.exact = 1;
	ck_assert_int_eq(hydb_search(db, &res, q, &so), HYDB_ENONFINITE);
	hydb_close(db);
	free(v);
	free(r);
	free(keys);
}
END_TEST

START_TEST(test_redirect_in_search)
{
	hydb_db *db = create_db(DIM, 1);
	float q[DIM], v[DIM];
	hydb_search_options so;
	hydb_results *res;
	random_point(v, DIM, 1, 0.5);
	put_one(db, "near", v, 0);
	random_point(q, DIM, 1, 6.0);
	hydb_search_options_init(&so);
	so.exact = 1;
	so.redirect = HYDB_REDIRECT_GEODESIC;
	so.redirect_bound = 2.0;
	ck_assert_int_eq(hydb_search(db, &res, q, &so), 0);
	ck_assert_int_eq(res->redirected, 1);
	ck_assert(fabs(res->query_radius - 6.0) < 1e-4);
	ck_assert(fabs(res->searched_radius - 2.0) < 1e-6);
	hydb_results_free(res);
	so.redirect = HYDB_REDIRECT_HYSAC;
	ck_assert_int_eq(hydb_search(db, &res, q, &so), 0);
	ck_assert_int_eq(res->redirected, 1);
	/* HySAC rescales to Euclidean norm 2: radius asinh(2) for c = 1 */
	ck_assert(fabs(res->searched_radius - asinh(2.0)) < 1e-6);
	hydb_results_free(res);
	hydb_close(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("db");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, remove_tmpdir);
	tcase_add_test(tc, test_documented_limits);
	tcase_add_test(tc, test_delete_batch);
	tcase_add_test(tc, test_stats_check_each);
	tcase_add_test(tc, test_create_and_reopen);
	tcase_add_test(tc, test_missing_and_newer_format);
	tcase_add_test(tc, test_bad_input_leaves_store_unchanged);
	tcase_add_test(tc, test_upsert_delete_get);
	tcase_add_test(tc, test_readonly);
	tcase_add_test(tc, test_map_growth_keeps_batches_whole);
	tcase_add_test(tc, test_exact_search_and_filters);
	tcase_add_test(tc, test_tuned_default_beam);
	tcase_add_test(tc, test_redirect_in_search);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
