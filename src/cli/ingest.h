/* ingest.h - helpers of `hydb ingest` that tests reach directly. */
#ifndef HYDB_CLI_INGEST_H
#define HYDB_CLI_INGEST_H

/* 1 if a manifest path stays inside the ingest root (relative, no ".."
 * component), or if allow_outside is set; else 0. */
int hydb_ingest_path_ok(const char *rel, int allow_outside);

#endif
