/*
 * inspect.c - whole-database reads for library users: statistics, the
 * store and index check, and a walk over every record (what the CLI's
 * stats, check and export do with internal calls, for bindings such as the
 * Python package).
 */
#include "base/base.h"

#include <math.h>
#include <string.h>

#include "db_internal.h"
#include "index/hnsw.h"
#include "storage/store_check.h"
#include "storage/store.h"

static int stats_block(uint32_t block_no, const hydb_block *blk, void *vctx)
{
	hydb_db_stats *s = vctx;
	(void)block_no;
	if (!blk)
		return HYDB_ECORRUPT; /* the reason is in hydb_last_error() */
	for (unsigned i = 0; i < HYDB_BLOCK_SLOTS; i++) {
		const hydb_slot_attr *a = &blk->attr[i];
		if (!a->live)
			continue;
		s->count++;
		s->groups[a->modality < 3 ? a->modality : 0][a->label < 3 ? a->label : 0]++;
		if (a->radius < s->radius_min)
			s->radius_min = a->radius;
		if (a->radius > s->radius_max)
			s->radius_max = a->radius;
	}
	return HYDB_OK;
}

int hydb_stats(hydb_db *db, hydb_db_stats *out)
{
	hydb_store *st;
	MDB_txn *txn;
	hydb_db_stats s;
	int rc;

	RETURN_ERROR_IF(!db || !out, HYDB_EINVAL, "hydb_stats: NULL argument");
	memset(&s, 0, sizeof s);
	s.radius_min = INFINITY;
	s.radius_max = -INFINITY;
	st = hydb_db_store(db);
	FORWARD_IF_ERROR(hydb_store_read_begin(st, &txn));
	rc = hydb_store_each_block(st, txn, stats_block, &s);
	hydb_store_read_end(st, txn);
	FORWARD_IF_ERROR(rc);
	if (!s.count)
		s.radius_min = s.radius_max = 0;
	*out = s;
	return HYDB_OK;
}

int hydb_check(hydb_db *db, void (*fn)(const char *msg, void *ctx), void *ctx,
	       hydb_check_report *out)
{
	hydb_store *st;
	MDB_txn *txn;
	hydb_check_stats cs;
	hydb_check_report r;
	int rc;

	RETURN_ERROR_IF(!db || !out, HYDB_EINVAL, "hydb_check: NULL argument");
	memset(&cs, 0, sizeof cs);
	memset(&r, 0, sizeof r);
	st = hydb_db_store(db);
	FORWARD_IF_ERROR(hydb_store_read_begin(st, &txn));
	rc = hydb_store_check(st, txn, fn, ctx, &cs);
	if (rc == 0)
		rc = hydb_index_check(hydb_db_index(db), txn, fn, ctx, &r.index_problems);
	/* A graph that failed its invariants is not walked. */
	if (rc == 0 && r.index_problems == 0)
		rc = hydb_index_unreachable(hydb_db_index(db), txn, fn, ctx, &r.unreachable);
	hydb_store_read_end(st, txn);
	FORWARD_IF_ERROR(rc);
	r.records = cs.records;
	r.live_slots = cs.live_slots;
	r.keys = cs.keys;
	r.radius_entries = cs.radius_entries;
	r.store_problems = cs.problems;
	*out = r;
	return HYDB_OK;
}

int hydb_each_entry(hydb_db *db, int (*fn)(const hydb_entry *e, void *ctx), void *ctx)
{
	RETURN_ERROR_IF(!db || !fn, HYDB_EINVAL, "hydb_each_entry: NULL argument");
	return hydb_store_each_record(hydb_db_store(db), fn, ctx);
}
