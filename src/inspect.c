/*
 * inspect.c - whole-database administration for library users and the
 * CLI (src/admin.h): statistics and the radius histogram, the store and
 * index check, key lookups in bulk, a walk over every record, and the
 * re-labelling that `hydb calibrate` does. The CLI reaches the store and
 * the index only through these, so a label, a count or a check is computed
 * in one place.
 */
#include "base/base.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "db_internal.h"
#include "index/hnsw.h"
#include "storage/store_check.h"
#include "storage/store.h"

/* ---- statistics --------------------------------------------------------- */

/* The group a slot is counted in: values past the enums (a damaged slot,
 * which the store check reports) count as other/unknown. */
static unsigned mod_group(const hydb_slot_attr *a)
{
	return a->modality < HYDB_N_MODALITIES ? a->modality : 0;
}

static unsigned label_group(const hydb_slot_attr *a)
{
	return a->label < HYDB_N_LABELS ? a->label : 0;
}

/* Pass 0 counts and finds the radius range; pass 1 (only with a
 * histogram) bins the radii, whose range pass 0 had to find first. */
struct stats_walk {
	hydb_db_stats *s;
	int bins, pass;
	size_t stride;
	uint64_t *hist;
};

static void stats_count(hydb_db_stats *s, const hydb_slot_attr *a)
{
	s->count++;
	s->groups[mod_group(a)][label_group(a)]++;
	if (a->radius < s->radius_min)
		s->radius_min = a->radius;
	if (a->radius > s->radius_max)
		s->radius_max = a->radius;
}

static void stats_bin(struct stats_walk *w, const hydb_slot_attr *a)
{
	const hydb_db_stats *s = w->s;
	double width = (s->radius_max - s->radius_min) / w->bins;
	int bin = width > 0 ? (int)((a->radius - s->radius_min) / width) : 0;
	if (bin >= w->bins)
		bin = w->bins - 1;
	w->hist[(mod_group(a) * HYDB_N_LABELS + label_group(a)) * w->stride + (size_t)bin]++;
}

static int stats_block(uint32_t block_no, const hydb_block *blk, void *vctx)
{
	struct stats_walk *w = vctx;
	(void)block_no;
	if (!blk)
		return HYDB_ECORRUPT; /* the reason is in hydb_last_error() */
	for (unsigned i = 0; i < HYDB_BLOCK_SLOTS; i++) {
		if (!blk->attr[i].live)
			continue;
		if (w->pass == 0)
			stats_count(w->s, &blk->attr[i]);
		else
			stats_bin(w, &blk->attr[i]);
	}
	return HYDB_OK;
}

/* Statistics (and the histogram when w->hist) in the caller's snapshot. */
static int stats_in_txn(hydb_store *st, MDB_txn *txn, struct stats_walk *w)
{
	memset(w->s, 0, sizeof *w->s);
	w->s->radius_min = INFINITY;
	w->s->radius_max = -INFINITY;
	w->pass = 0;
	FORWARD_IF_ERROR(hydb_store_each_block(st, txn, stats_block, w));
	if (w->hist && w->s->count) {
		w->pass = 1;
		FORWARD_IF_ERROR(hydb_store_each_block(st, txn, stats_block, w));
	}
	if (!w->s->count)
		w->s->radius_min = w->s->radius_max = 0;
	return HYDB_OK;
}

int hydb_stats_histogram(hydb_db *db, hydb_db_stats *out, unsigned bins, size_t stride,
			 uint64_t *hist)
{
	hydb_store *st;
	MDB_txn *txn;
	hydb_db_stats s;
	struct stats_walk w = {&s, (int)bins, 0, stride, hist};
	int rc;

	RETURN_ERROR_IF(!db || !out, HYDB_EINVAL, "hydb_stats: NULL argument");
	RETURN_ERROR_IF(hist && (bins == 0 || bins > stride || bins > INT32_MAX), HYDB_EINVAL,
			"hydb_stats_histogram: %u bins do not fit rows of %zu", bins, stride);
	if (hist)
		memset(hist, 0, HYDB_N_MODALITIES * HYDB_N_LABELS * stride * sizeof *hist);
	st = hydb_db_store(db);
	FORWARD_IF_ERROR(hydb_store_read_begin(st, &txn));
	rc = stats_in_txn(st, txn, &w);
	hydb_store_read_end(st, txn);
	FORWARD_IF_ERROR(rc);
	*out = s;
	return HYDB_OK;
}

int hydb_stats(hydb_db *db, hydb_db_stats *out)
{
	return hydb_stats_histogram(db, out, 0, 0, NULL);
}

/* ---- keys and records --------------------------------------------------- */

int hydb_keys_stored(hydb_db *db, const char *const *keys, size_t n, uint8_t *found)
{
	hydb_store *st;
	MDB_txn *txn;
	int rc = HYDB_OK;

	RETURN_ERROR_IF(!db || (n && (!keys || !found)), HYDB_EINVAL, "hydb_keys_stored: NULL argument");
	for (size_t i = 0; i < n; i++)
		RETURN_ERROR_IF(!keys[i] || !*keys[i], HYDB_EINVAL, "hydb_keys_stored: key %zu is empty", i);
	st = hydb_db_store(db);
	FORWARD_IF_ERROR(hydb_store_read_begin(st, &txn));
	for (size_t i = 0; i < n && rc == HYDB_OK; i++) {
		uint64_t id;
		rc = hydb_store_lookup_key(st, txn, keys[i], &id);
		found[i] = rc == HYDB_OK;
		if (rc == HYDB_ENOTFOUND)
			rc = HYDB_OK;
	}
	hydb_store_read_end(st, txn);
	return rc;
}

int hydb_each_entry(hydb_db *db, int (*fn)(const hydb_entry *e, void *ctx), void *ctx)
{
	RETURN_ERROR_IF(!db || !fn, HYDB_EINVAL, "hydb_each_entry: NULL argument");
	return hydb_store_each_record(hydb_db_store(db), fn, ctx);
}

/* ---- checks ------------------------------------------------------------- */

int hydb_lmdb_verified(hydb_db *db, hydb_lmdb_report *out)
{
	const hydb_lmdb_verify_stats *v;
	RETURN_ERROR_IF(!db || !out, HYDB_EINVAL, "hydb_lmdb_verified: NULL argument");
	v = hydb_store_verified(hydb_db_store(db));
	*out = (hydb_lmdb_report){v->txnid, v->tables, v->branch_pages, v->leaf_pages,
				  v->overflow_pages, v->free_pages, v->unaccounted,
				  v->count_mismatches};
	return HYDB_OK;
}

/* The store and index checks take a plain callback; each finding kind
 * gets its own context that tags the messages for the caller's one. */
struct finding_sink {
	const hydb_check_options *o;
	hydb_finding kind;
};

static void sink_fn(const char *msg, void *ctx)
{
	const struct finding_sink *s = ctx;
	if (s->o->fn)
		s->o->fn(s->kind, msg, s->o->ctx);
}

/* The planner estimates label and modality filters from the index's
 * counts; re-labelling that bypassed the index left them stale. Each
 * group that disagrees with the blocks is one index problem. */
static int check_label_counts(hydb_db *db, MDB_txn *txn, struct finding_sink *sink, size_t *nproblems)
{
	static const char *const mods[] = {"other", "image", "text"};
	static const char *const labs[] = {"unknown", "safe", "unsafe"};
	uint64_t counts[HYDB_N_MODALITIES][HYDB_N_LABELS];
	hydb_db_stats s;
	struct stats_walk w = {&s, 0, 0, 0, NULL};

	FORWARD_IF_ERROR(stats_in_txn(hydb_db_store(db), txn, &w));
	FORWARD_IF_ERROR(hydb_index_label_counts(hydb_db_index(db), txn, counts));
	for (unsigned m = 0; m < HYDB_N_MODALITIES; m++)
		for (unsigned l = 0; l < HYDB_N_LABELS; l++) {
			char msg[200];
			if (counts[m][l] == s.groups[m][l])
				continue;
			snprintf(msg, sizeof msg,
				 "index counts %llu %s entries labelled %s, the vector blocks hold %llu "
				 "(filtered searches misjudge their plan; hydb calibrate recounts)",
				 (unsigned long long)counts[m][l], mods[m], labs[l],
				 (unsigned long long)s.groups[m][l]);
			sink_fn(msg, sink);
			(*nproblems)++;
		}
	return HYDB_OK;
}

/* Searches of nodes by their own vector; only a graph that passed its
 * invariants is searched. */
static int self_search(hydb_db *db, MDB_txn *txn, const hydb_check_options *o, hydb_check_result *r)
{
	struct finding_sink lost = {o, HYDB_FINDING_LOST};
	hydb_self_search ss = {.limit = o->self_limit, .wide_ef = o->self_wide_ef, .lost_fn = sink_fn,
			       .ctx = &lost};
	FORWARD_IF_ERROR(hydb_index_self_search_run(hydb_db_index(db), txn, &ss));
	r->searched = 1;
	r->self_ef = ss.ef ? ss.ef : HYDB_HNSW_DEFAULT_EF;
	r->self_checked = ss.checked;
	r->self_missed = ss.missed;
	r->self_lost = ss.lost;
	return HYDB_OK;
}

static int check_in_txn(hydb_db *db, MDB_txn *txn, const hydb_check_options *o, hydb_check_result *r)
{
	struct finding_sink store = {o, HYDB_FINDING_STORE}, index = {o, HYDB_FINDING_INDEX},
			    unreachable = {o, HYDB_FINDING_UNREACHABLE};
	hydb_index *ix = hydb_db_index(db);
	hydb_check_stats cs = {0};
	size_t graph = 0, counts = 0;

	FORWARD_IF_ERROR(hydb_store_check(hydb_db_store(db), txn, sink_fn, &store, &cs));
	FORWARD_IF_ERROR(hydb_index_check(ix, txn, sink_fn, &index, &graph));
	/* Blocks that failed the store check are reported already, and would
	 * stop the count of the labels in the blocks. */
	if (cs.problems == 0)
		FORWARD_IF_ERROR(check_label_counts(db, txn, &index, &counts));
	FORWARD_IF_ERROR(hydb_index_unreachable(ix, txn, sink_fn, &unreachable, &r->report.unreachable));
	if (o->flags & HYDB_CHECK_OUTSIDE_TREE)
		FORWARD_IF_ERROR(hydb_index_outside_tree(ix, txn, NULL, NULL, &r->outside_tree));
	if ((o->flags & HYDB_CHECK_SELF_SEARCH) && graph == 0)
		FORWARD_IF_ERROR(self_search(db, txn, o, r));
	r->report.records = cs.records;
	r->report.live_slots = cs.live_slots;
	r->report.keys = cs.keys;
	r->report.radius_entries = cs.radius_entries;
	r->report.store_problems = cs.problems;
	r->report.index_problems = graph + counts;
	return HYDB_OK;
}

int hydb_check_run(hydb_db *db, const hydb_check_options *o, hydb_check_result *out)
{
	const unsigned known = HYDB_CHECK_CLEAR_READERS | HYDB_CHECK_OUTSIDE_TREE | HYDB_CHECK_SELF_SEARCH;
	hydb_store *st;
	MDB_txn *txn;
	hydb_check_result r;
	int rc;

	RETURN_ERROR_IF(!db || !o || !out, HYDB_EINVAL, "hydb_check: NULL argument");
	RETURN_ERROR_IF(o->flags & ~known, HYDB_EINVAL, "hydb_check_run: unknown flags %#x", o->flags);
	memset(&r, 0, sizeof r);
	st = hydb_db_store(db);
	/* Before this check's own reader takes a slot. */
	if (o->flags & HYDB_CHECK_CLEAR_READERS)
		mdb_reader_check(hydb_store_env(st), &r.stale_readers);
	FORWARD_IF_ERROR(hydb_store_read_begin(st, &txn));
	rc = check_in_txn(db, txn, o, &r);
	hydb_store_read_end(st, txn);
	FORWARD_IF_ERROR(rc);
	*out = r;
	return HYDB_OK;
}

/* hydb_check's callback takes no kind: every finding goes to it. */
struct untagged {
	void (*fn)(const char *msg, void *ctx);
	void *ctx;
};

static void untag(hydb_finding kind, const char *msg, void *ctx)
{
	const struct untagged *u = ctx;
	(void)kind;
	if (u->fn)
		u->fn(msg, u->ctx);
}

int hydb_check(hydb_db *db, void (*fn)(const char *msg, void *ctx), void *ctx,
	       hydb_check_report *out)
{
	struct untagged u = {fn, ctx};
	hydb_check_options o = {.fn = untag, .ctx = &u};
	hydb_check_result r;

	RETURN_ERROR_IF(!db || !out, HYDB_EINVAL, "hydb_check: NULL argument");
	FORWARD_IF_ERROR(hydb_check_run(db, &o, &r));
	*out = r.report;
	return HYDB_OK;
}

/* ---- re-labelling ------------------------------------------------------- */

/* One write transaction: the labels change in the records and the blocks,
 * and the index's counts are recounted from the blocks as they now stand.
 * Idempotent, as hydb_store_write's retries need. */
struct relabel {
	hydb_db *db;
	const double *thr;
	uint64_t changed;
	uint64_t counts[HYDB_N_MODALITIES][HYDB_N_LABELS];
};

/* The label a slot should carry: by its modality's threshold, or its own
 * when the modality has none. */
static unsigned wanted_label(const struct relabel *c, const hydb_slot_attr *a)
{
	double t = a->modality < HYDB_N_MODALITIES ? c->thr[a->modality] : 0;
	if (!(t > 0))
		return a->label;
	return a->radius <= t ? HYDB_LABEL_SAFE : HYDB_LABEL_UNSAFE;
}

struct relabel_block_ctx {
	struct relabel *c;
	hydb_store *st;
	MDB_txn *txn;
};

static int relabel_block(uint32_t block_no, const hydb_block *blk, void *vctx)
{
	struct relabel_block_ctx *rb = vctx;
	uint64_t ids[HYDB_BLOCK_SLOTS];
	hydb_label want[HYDB_BLOCK_SLOTS];
	size_t n = 0;
	(void)block_no;
	if (!blk)
		return HYDB_ECORRUPT;
	/* Collected first: each hydb_store_set_label rewrites this block. */
	for (unsigned i = 0; i < HYDB_BLOCK_SLOTS; i++) {
		hydb_slot_attr a = blk->attr[i];
		if (!a.live)
			continue;
		a.label = (uint8_t)wanted_label(rb->c, &a);
		rb->c->counts[mod_group(&a)][label_group(&a)]++;
		if (a.label != blk->attr[i].label) {
			ids[n] = a.id;
			want[n++] = (hydb_label)a.label;
		}
	}
	for (size_t i = 0; i < n; i++)
		FORWARD_IF_ERROR(hydb_store_set_label(rb->st, rb->txn, ids[i], want[i]));
	rb->c->changed += n;
	return HYDB_OK;
}

static int relabel_fn(hydb_store *st, MDB_txn *txn, void *vctx)
{
	struct relabel_block_ctx rb = {vctx, st, txn};
	rb.c->changed = 0;
	memset(rb.c->counts, 0, sizeof rb.c->counts);
	FORWARD_IF_ERROR(hydb_store_each_block(st, txn, relabel_block, &rb));
	return hydb_index_set_label_counts(hydb_db_index(rb.c->db), txn,
					   (const uint64_t(*)[HYDB_N_LABELS])rb.c->counts);
}

int hydb_relabel_by_radius(hydb_db *db, const double threshold[HYDB_N_MODALITIES], uint64_t *changed)
{
	struct relabel c = {db, threshold, 0, {{0}}};
	RETURN_ERROR_IF(!db || !threshold, HYDB_EINVAL, "hydb_relabel_by_radius: NULL argument");
	FORWARD_IF_ERROR(hydb_store_write(hydb_db_store(db), relabel_fn, &c));
	if (changed)
		*changed = c.changed;
	return HYDB_OK;
}
