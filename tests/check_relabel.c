/*
 * check_relabel.c - re-labelling (hydb_relabel_by_radius, what `hydb
 * calibrate` runs) keeps the index's per-label counts equal to the labels
 * in the vector blocks, so the query planner estimates label filters from
 * the labels as they are. Before the fix `hydb calibrate` wrote the labels
 * into the store alone: the counts kept the import's labels, a --safe-only
 * search over a database that had become mostly safe was planned as if
 * nothing were safe, and nothing reported it.
 * Also the other administration calls of src/admin.h that `hydb stats`,
 * `hydb import` and `hydb check` use instead of the store and the index.
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
#include "admin.h"
#include "db_internal.h"
#include "index/hnsw.h"
#include "storage/store.h"

#define DIM 4
#define N_IMAGES 600 /* few enough that hydb_put does not tune the beam */
#define N_TEXTS 50
#define EF 64
/* Image i lies at radius 0.1 + 2.9 i / N_IMAGES: 480 of them within it. */
#define THRESHOLD 2.4175
#define N_SAFE 480

static char tmpdir[256];

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *f)
{
	(void)sb, (void)type, (void)f;
	return remove(path);
}

static void remove_tmpdir(void)
{
	char *slash = strrchr(tmpdir, '/');
	if (!tmpdir[0] || !slash)
		return;
	*slash = 0; /* the mkdtemp directory, not just its db/ */
	nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = 0;
}

/* A point at geodesic radius r (c = 1) in a direction that varies with i,
 * so that the graph is a graph and not a line. */
static void point(float *v, unsigned i, double r)
{
	double d[DIM], norm = 0;
	for (unsigned j = 0; j < DIM; j++) {
		d[j] = sin(1.7 * i + 2.3 * j) + 0.1 * (j + 1);
		norm += d[j] * d[j];
	}
	for (unsigned j = 0; j < DIM; j++)
		v[j] = (float)(sinh(r) * d[j] / sqrt(norm));
}

/* N_IMAGES images all labelled unsafe, and N_TEXTS texts of no label,
 * which a threshold for images alone must leave alone. */
static hydb_db *fixture(void)
{
	hydb_open_options o;
	hydb_db *db = NULL;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/hydb-check-relabel-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	strcat(tmpdir, "/db");
	hydb_open_options_init(&o);
	o.flags = HYDB_OPEN_CREATE;
	o.dim = DIM;
	ck_assert_int_eq(hydb_open(&db, tmpdir, &o), 0);
	for (unsigned i = 0; i < N_IMAGES + N_TEXTS; i++) {
		char key[32];
		float v[DIM];
		hydb_record r = {key, v, HYDB_MOD_IMAGE, HYDB_LABEL_UNSAFE, 0, NULL, NULL};
		snprintf(key, sizeof key, "k%u", i);
		point(v, i, 0.1 + 2.9 * i / N_IMAGES);
		if (i >= N_IMAGES) {
			r.modality = HYDB_MOD_TEXT;
			r.label = HYDB_LABEL_UNKNOWN;
			point(v, i, 0.5);
		}
		ck_assert_int_eq(hydb_put(db, &r, 1, NULL), 0);
	}
	return db;
}

/* The index's label counts must be the blocks' (hydb_stats), group by
 * group. */
static void assert_counts_match(hydb_db *db)
{
	uint64_t counts[HYDB_N_MODALITIES][HYDB_N_LABELS];
	hydb_db_stats s;
	MDB_txn *txn;
	ck_assert_int_eq(hydb_stats(db, &s), 0);
	ck_assert_int_eq(hydb_store_read_begin(hydb_db_store(db), &txn), 0);
	ck_assert_int_eq(hydb_index_label_counts(hydb_db_index(db), txn, counts), 0);
	hydb_store_read_end(hydb_db_store(db), txn);
	for (unsigned m = 0; m < HYDB_N_MODALITIES; m++)
		for (unsigned l = 0; l < HYDB_N_LABELS; l++)
			ck_assert_msg(counts[m][l] == s.groups[m][l],
				      "modality %u label %u: index counts %llu, blocks hold %llu", m, l,
				      (unsigned long long)counts[m][l], (unsigned long long)s.groups[m][l]);
}

static void count_msgs(const char *msg, void *ctx)
{
	(void)msg;
	(*(size_t *)ctx)++;
}

static size_t index_problems(hydb_db *db)
{
	hydb_check_report rep;
	size_t msgs = 0;
	ck_assert_int_eq(hydb_check(db, count_msgs, &msgs, &rep), 0);
	ck_assert_uint_eq(rep.store_problems, 0);
	ck_assert_uint_eq(msgs, rep.index_problems + rep.unreachable);
	return rep.index_problems;
}

/* The plan of a --safe-only search at beam EF; every result must be safe. */
static const char *safe_only_plan(hydb_db *db, size_t *n)
{
	static char plan[32];
	hydb_search_options so;
	hydb_results *res;
	float q[DIM];
	point(q, 7, 1.0);
	hydb_search_options_init(&so);
	so.ef = EF;
	so.label_mask = HYDB_MASK(HYDB_LABEL_SAFE);
	ck_assert_int_eq(hydb_search(db, &res, q, &so), 0);
	for (size_t i = 0; i < res->n; i++)
		ck_assert_int_eq(res->labels[i], HYDB_LABEL_SAFE);
	snprintf(plan, sizeof plan, "%s", res->plan);
	*n = res->n;
	hydb_results_free(res);
	return plan;
}

static const double thresholds[HYDB_N_MODALITIES] = {0, THRESHOLD, 0};

START_TEST(test_relabel_updates_index_counts)
{
	hydb_db *db = fixture();
	hydb_db_stats s;
	uint64_t changed = 0;
	size_t n;

	/* Nothing is safe yet: the planner scans for the (no) matches. */
	ck_assert_str_eq(safe_only_plan(db, &n), "brute-filtered");
	ck_assert_uint_eq(n, 0);

	ck_assert_int_eq(hydb_relabel_by_radius(db, thresholds, &changed), 0);
	ck_assert_uint_eq(changed, N_SAFE);
	ck_assert_int_eq(hydb_stats(db, &s), 0);
	ck_assert_uint_eq(s.groups[HYDB_MOD_IMAGE][HYDB_LABEL_SAFE], N_SAFE);
	ck_assert_uint_eq(s.groups[HYDB_MOD_IMAGE][HYDB_LABEL_UNSAFE], N_IMAGES - N_SAFE);
	ck_assert_uint_eq(s.groups[HYDB_MOD_TEXT][HYDB_LABEL_UNKNOWN], N_TEXTS);
	assert_counts_match(db);
	ck_assert_uint_eq(index_problems(db), 0);

	/* 480 of 650 match: m = 480 > sqrt(4 ef N) = 408, so a walk of the
	 * graph beats a scan. With the import's counts (0 safe) the planner
	 * chose the scan. */
	ck_assert_str_eq(safe_only_plan(db, &n), "hnsw-filtered");
	ck_assert_uint_eq(n, 10);

	/* Nothing left to change, and the counts stay right. */
	ck_assert_int_eq(hydb_relabel_by_radius(db, thresholds, &changed), 0);
	ck_assert_uint_eq(changed, 0);
	assert_counts_match(db);
	hydb_close(db);
}
END_TEST

/* What `hydb calibrate` did before: labels written to the store alone. */
static int store_only_relabel(hydb_store *st, MDB_txn *txn, void *ctx)
{
	(void)ctx;
	for (unsigned i = 0; i < N_SAFE; i++) {
		uint64_t id;
		char key[32];
		snprintf(key, sizeof key, "k%u", i);
		FORWARD_IF_ERROR(hydb_store_lookup_key(st, txn, key, &id));
		FORWARD_IF_ERROR(hydb_store_set_label(st, txn, id, HYDB_LABEL_SAFE));
	}
	return 0;
}

/* hydb check finds counts left stale that way (one problem for each of
 * image/safe and image/unsafe), and re-labelling repairs them. */
START_TEST(test_stale_counts_found_and_repaired)
{
	hydb_db *db = fixture();
	uint64_t changed = 1;
	ck_assert_int_eq(hydb_store_write(hydb_db_store(db), store_only_relabel, NULL), 0);
	ck_assert_uint_eq(index_problems(db), 2);
	ck_assert_int_eq(hydb_relabel_by_radius(db, thresholds, &changed), 0);
	ck_assert_uint_eq(changed, 0);
	assert_counts_match(db);
	ck_assert_uint_eq(index_problems(db), 0);
	hydb_close(db);
}
END_TEST

START_TEST(test_relabel_refusals)
{
	hydb_db *db = fixture();
	hydb_open_options o;
	hydb_db *ro = NULL;
	ck_assert_int_eq(hydb_relabel_by_radius(NULL, thresholds, NULL), HYDB_EINVAL);
	ck_assert_int_eq(hydb_relabel_by_radius(db, NULL, NULL), HYDB_EINVAL);
	hydb_close(db);
	hydb_open_options_init(&o);
	o.flags = HYDB_OPEN_RDONLY;
	ck_assert_int_eq(hydb_open(&ro, tmpdir, &o), 0);
	ck_assert_int_eq(hydb_relabel_by_radius(ro, thresholds, NULL), HYDB_EREADONLY);
	hydb_close(ro);
}
END_TEST

/* The histogram's rows add up to the groups; refusals of bad shapes. */
START_TEST(test_stats_histogram)
{
	enum { BINS = 7, STRIDE = 9 };
	hydb_db *db = fixture();
	uint64_t hist[HYDB_N_MODALITIES * HYDB_N_LABELS * STRIDE];
	hydb_db_stats s, plain;
	ck_assert_int_eq(hydb_stats_histogram(db, &s, BINS, STRIDE, hist), 0);
	ck_assert_int_eq(hydb_stats(db, &plain), 0);
	ck_assert_mem_eq(&s, &plain, sizeof s);
	for (unsigned g = 0; g < HYDB_N_MODALITIES * HYDB_N_LABELS; g++) {
		uint64_t sum = 0;
		for (unsigned b = 0; b < STRIDE; b++)
			sum += hist[g * STRIDE + b];
		ck_assert_uint_eq(sum, s.groups[g / HYDB_N_LABELS][g % HYDB_N_LABELS]);
		ck_assert_uint_eq(hist[g * STRIDE + BINS], 0); /* past the bins */
	}
	/* The farthest image is in the last bin, the nearest in the first. */
	ck_assert_uint_ge(hist[(HYDB_MOD_IMAGE * HYDB_N_LABELS + HYDB_LABEL_UNSAFE) * STRIDE + BINS - 1], 1);
	ck_assert_uint_ge(hist[(HYDB_MOD_IMAGE * HYDB_N_LABELS + HYDB_LABEL_UNSAFE) * STRIDE], 1);
	ck_assert_int_eq(hydb_stats_histogram(db, &s, 0, STRIDE, hist), HYDB_EINVAL);
	ck_assert_int_eq(hydb_stats_histogram(db, &s, STRIDE + 1, STRIDE, hist), HYDB_EINVAL);
	ck_assert_int_eq(hydb_stats_histogram(NULL, &s, BINS, STRIDE, hist), HYDB_EINVAL);
	hydb_close(db);
}
END_TEST

START_TEST(test_keys_stored)
{
	hydb_db *db = fixture();
	const char *keys[] = {"k0", "nope", "k649", "k650"};
	const char *empty[] = {"k0", ""};
	uint8_t found[4];
	ck_assert_int_eq(hydb_keys_stored(db, keys, 4, found), 0);
	ck_assert_uint_eq(found[0], 1);
	ck_assert_uint_eq(found[1], 0);
	ck_assert_uint_eq(found[2], 1);
	ck_assert_uint_eq(found[3], 0);
	ck_assert_int_eq(hydb_keys_stored(db, empty, 2, found), HYDB_EINVAL);
	ck_assert_int_eq(hydb_keys_stored(db, NULL, 0, NULL), 0);
	hydb_close(db);
}
END_TEST

/* Findings arrive tagged with their kind. */
static void count_kinds(hydb_finding kind, const char *msg, void *ctx)
{
	(void)msg;
	((size_t *)ctx)[kind]++;
}

START_TEST(test_check_run)
{
	hydb_db *db = fixture();
	size_t kinds[HYDB_FINDING_LOST + 1] = {0};
	hydb_check_options o = {HYDB_CHECK_OUTSIDE_TREE | HYDB_CHECK_SELF_SEARCH, 0, 1000, count_kinds, kinds};
	hydb_check_result r;
	hydb_lmdb_report v;

	ck_assert_int_eq(hydb_check_run(db, &o, &r), 0);
	ck_assert_int_eq(r.searched, 1);
	ck_assert_uint_eq(r.self_checked, N_IMAGES + N_TEXTS); /* limit 0: all */
	ck_assert_uint_eq(r.self_ef, HYDB_DEFAULT_EF);
	ck_assert_uint_eq(r.self_lost + r.report.index_problems + r.report.store_problems, 0);
	ck_assert_int_eq(r.stale_readers, 0);
	ck_assert_uint_eq(kinds[HYDB_FINDING_STORE] + kinds[HYDB_FINDING_INDEX] + kinds[HYDB_FINDING_LOST], 0);

	ck_assert_int_eq(hydb_store_write(hydb_db_store(db), store_only_relabel, NULL), 0);
	ck_assert_int_eq(hydb_check_run(db, &o, &r), 0);
	ck_assert_uint_eq(kinds[HYDB_FINDING_INDEX], 2);
	ck_assert_uint_eq(r.report.index_problems, 2);
	ck_assert_int_eq(r.searched, 1); /* stale counts do not stop the search */

	o.flags = 0x80;
	ck_assert_int_eq(hydb_check_run(db, &o, &r), HYDB_EINVAL);
	ck_assert_int_eq(hydb_check_run(db, NULL, &r), HYDB_EINVAL);
	/* This open created the database: nothing was there to verify. */
	ck_assert_int_eq(hydb_lmdb_verified(db, &v), 0);
	ck_assert_uint_eq(v.txnid + v.tables + v.leaf_pages, 0);
	ck_assert_int_eq(hydb_lmdb_verified(db, NULL), HYDB_EINVAL);
	hydb_close(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("relabel");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, remove_tmpdir);
	tcase_add_test(tc, test_relabel_updates_index_counts);
	tcase_add_test(tc, test_stale_counts_found_and_repaired);
	tcase_add_test(tc, test_relabel_refusals);
	tcase_add_test(tc, test_stats_histogram);
	tcase_add_test(tc, test_keys_stored);
	tcase_add_test(tc, test_check_run);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
