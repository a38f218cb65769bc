/*
 * admin.h - the one internal header the bundled command-line tool (src/cli/)
 * may include besides hydb.h (not installed; ARCHITECTURE.md).
 *
 * What the tool needs that is not (yet) public API: database metadata
 * entries, the bulk readers of `hydb import`, and administration (checks,
 * re-labelling, pipeline steps). Everything here is implemented by the
 * library face in src/, so the tool reaches storage/, index/ and encoder/
 * only through the library, never directly. The base's conventions (error
 * macros, overflow-checked sizes, UTF-8, JSON) come with it: they depend on
 * nothing and every layer may use them.
 *
 * Errors follow hydb.h: a negative hydb_error with a thread-local message.
 */
#ifndef HYDB_ADMIN_H
#define HYDB_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "hydb.h"
#include "base/base.h"
#include "base/json.h"
#include "import.h"

/* ---- metadata entries (src/db.c) ----------------------------------------
 * Small named strings kept beside the records (model hash, thresholds,
 * import progress). */

/* hydb_put plus one metadata entry written in the same transaction; n may be
 * 0 to write the entry alone. Errors: as hydb_put, HYDB_EINVAL for a name or
 * value that is empty, too long or not UTF-8. */
int hydb_db_put_meta(hydb_db *db, const hydb_record *recs, size_t n, uint64_t *ids_out,
		     const char *meta_name, const char *meta_value);
/* Copy the entry's value (NUL-terminated) into buf. Errors: HYDB_ENOTFOUND
 * (no such entry), HYDB_EINVAL (buf too small), HYDB_EIO. */
int hydb_db_meta_get(hydb_db *db, const char *name, char *buf, size_t size);
/* Everything hydb_put checks about one record, before any write; where
 * (e.g. "file: line 3") starts the error message. Errors: HYDB_EINVAL. */
int hydb_record_validate(const hydb_record *r, size_t dim, double c, const char *where);

/* ---- administration: checks, statistics, re-labelling (src/inspect.c) --- */

/* ---- encoding pipeline steps (src/encode.c) ----------------------------- */

#endif /* HYDB_ADMIN_H */
