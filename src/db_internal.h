/* db_internal.h - what the CLI and tests may reach behind a hydb_db. */
#ifndef HYDB_DB_INTERNAL_H
#define HYDB_DB_INTERNAL_H

#include "hydb.h"
#include "storage/store.h"

struct hydb_index;

hydb_store *hydb_db_store(hydb_db *db);
struct hydb_index *hydb_db_index(hydb_db *db);
/* hydb_put plus one metadata entry written in the same transaction. */
int hydb_db_put_meta(hydb_db *db, const hydb_record *recs, size_t n, uint64_t *ids_out,
		     const char *meta_name, const char *meta_value);
/* Everything hydb_put checks about one record, before any write; where
 * (e.g. "file: line 3") starts the error message. */
int hydb_record_validate(const hydb_record *r, size_t dim, double c, const char *where);
int hydb_db_meta_get(hydb_db *db, const char *name, char *buf, size_t size);
/* src/tune.c: the stored curve in a transaction (HYDB_ENOTFOUND: none);
 * its text form; measuring again after a write when the index has doubled
 * or halved since. */
int hydb_tune_read(hydb_store *st, MDB_txn *txn, hydb_tune_info *out);
int hydb_tune_parse(const char *s, hydb_tune_info *t);
void hydb_tune_maybe(hydb_db *db);

#endif
