/* db_internal.h - the library face's own view behind a hydb_db: its store
 * and index (src/ and white-box tests only; the CLI uses admin.h). */
#ifndef HYDB_DB_INTERNAL_H
#define HYDB_DB_INTERNAL_H

#include "hydb.h"
#include "admin.h"
#include "storage/store.h"

struct hydb_index;

hydb_store *hydb_db_store(hydb_db *db);
struct hydb_index *hydb_db_index(hydb_db *db);
/* src/tune.c: the stored curve in a transaction (HYDB_ENOTFOUND: none);
 * its text form; measuring again after a write when the index has doubled
 * or halved since. */
int hydb_tune_read(hydb_store *st, MDB_txn *txn, hydb_tune_info *out);
int hydb_tune_parse(const char *s, hydb_tune_info *t);
void hydb_tune_maybe(hydb_db *db);

#endif
