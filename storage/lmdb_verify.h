/*
 * lmdb_verify.h - structural check of an LMDB data file before LMDB maps it
 * (internal).
 *
 * LMDB trusts every byte of its file: a damaged page header or node offset
 * makes it read outside the page, follow a page number past the map, or
 * write into a read-only mapping. It has no page checksums. hydb therefore
 * walks the snapshot that LMDB is about to use, with its own bounds checks,
 * before handing the file to LMDB:
 *
 *  - both meta pages (magic, version, page size, last page, transaction-id
 *    parity, which readers rely on to pick the same meta as the writer);
 *  - every branch and leaf page of every table and of LMDB's free list:
 *    header page number, page type, free-space bounds, node offsets and
 *    sizes inside the page, key order within the page and against the
 *    parent's separators, child page numbers, tree depth, and the page and
 *    entry counts stored in the table record;
 *  - the first page of every overflow run: type, length, and that the run
 *    lies inside the file and holds the value;
 *  - that no page is used twice (by two tables, or by a table and the free
 *    list), so that LMDB never reuses a live page.
 *
 * The contents of overflow values are not read here: hydb checksums its
 * records and vector blocks itself. Cost: one read of every branch and leaf
 * page (about 10,000 pages per 100,000 vectors of 768 dimensions) and one
 * header per overflow run.
 */
#ifndef HYDB_LMDB_VERIFY_H
#define HYDB_LMDB_VERIFY_H

#include <stddef.h>
#include <stdint.h>

typedef struct hydb_lmdb_verify_stats {
	uint32_t psize;
	uint64_t txnid;          /* the snapshot verified */
	uint64_t last_pg;
	uint64_t tables;         /* named tables found */
	uint64_t branch_pages, leaf_pages, overflow_pages;
	uint64_t free_pages;     /* listed in LMDB's free list */
	uint64_t unaccounted;    /* neither used nor free: leaked, harmless */
	uint64_t count_mismatches; /* tables whose stored counts differ */
	uint64_t entries;
} hydb_lmdb_verify_stats;

/*
 * Verify the data file DATAFILE of the database at PATH (PATH only names it
 * in messages). A writer in another process may commit during the walk;
 * a failing verdict only counts if that cannot explain it.
 *
 * Returns HYDB_OK; HYDB_ECORRUPT with a one-line message naming the page
 * and the fault; HYDB_EIO if the file cannot be read. A missing file is
 * HYDB_OK (there is nothing for LMDB to trust yet). OUT may be NULL.
 */
int hydb_lmdb_verify(hydb_lmdb_verify_stats *out, const char *path, const char *datafile);

/*
 * The same check on a data file already in memory (DATA, SIZE bytes), once,
 * with no allowance for a concurrent writer. On failure OUT holds the
 * transaction id of the snapshot walked (0 if no meta page was usable).
 */
int hydb_lmdb_verify_bytes(hydb_lmdb_verify_stats *out, const char *path,
			   const unsigned char *data, size_t size);

#endif
