/* store_check.h - whole-store verification and record iteration (internal). */
#ifndef HYDB_STORAGE_CHECK_H
#define HYDB_STORAGE_CHECK_H

#include "storage/store.h"

typedef struct hydb_check_stats {
	uint64_t records, live_slots, keys, radius_entries;
	size_t problems;
} hydb_check_stats;

/* Called once per problem with a one-line message naming the record id or
 * slot. */
typedef void (*hydb_check_problem_fn)(const char *msg, void *ctx);

/* Cross-check records, keys, vector blocks, the radius and free tables and
 * the metadata inside one snapshot. Problems go to fn; the return value is
 * an error only when the check itself could not run. */
int hydb_store_check(hydb_store *st, MDB_txn *txn, hydb_check_problem_fn fn,
		     void *ctx, hydb_check_stats *stats);

/* Visit every record in id order, in one snapshot, with its vector. */
typedef int (*hydb_record_visit_fn)(const hydb_entry *e, void *ctx);
int hydb_store_each_record(hydb_store *st, hydb_record_visit_fn fn, void *ctx);

#endif
