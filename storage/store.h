/*
 * store.h - the LMDB store underneath a hydb database (internal).
 *
 * One LMDB environment per database directory holds everything, so that a
 * record, its vector and its index links commit in one transaction:
 *
 *   meta     string keys -> format version, dim, curvature, model hash ...
 *   records  id (u64 BE)  -> record (see record.h): key, slot, labels,
 *                            zstd caption/meta, checksum
 *   keys     external key (or hash of a long key) -> id
 *   blocks   block no (u32 BE) -> vector block: HYDB_BLOCK_SLOTS slots of
 *                            attributes and float32 space components
 *   radius   (radius as sortable u32 BE, slot u32 BE) -> empty; counts and
 *                            scans of radius ranges for the query planner
 *   free     slot (u32 BE) -> empty: slots freed by deletes, reused first
 *   hnsw_*   owned by index/ (see index/hnsw.h)
 *
 * Slots are dense u32 numbers reused after deletes, so a block is a compact
 * array that exact search multiplies with one GEMM and that HNSW addresses
 * by slot number. Block values are larger than a page, so LMDB keeps them on
 * overflow pages: page-aligned and contiguous in the map, hence the float
 * data is 64-byte aligned and can be used in place for the lifetime of the
 * transaction that returned it.
 */
#ifndef HYDB_STORE_H
#define HYDB_STORE_H

#include <lmdb.h>
#include <stdint.h>

#include "base/base.h"
#include "storage/lmdb_verify.h"

#define HYDB_BLOCK_SLOTS 64u
#define HYDB_BLOCK_MAGIC 0x4b4c4248u /* "HBLK" */
#define HYDB_NO_SLOT UINT32_MAX

/* Per-slot attributes, kept beside the vectors so that filters are checked
 * during graph traversal without touching the records. */
typedef struct hydb_slot_attr {
	uint64_t id;       /* record id; 0 = free slot */
	float radius;
	uint8_t modality;  /* hydb_modality */
	uint8_t label;     /* hydb_label */
	uint8_t live;      /* 1 = holds a record */
	uint8_t reserved;
} hydb_slot_attr;

/* Header then attrs[HYDB_BLOCK_SLOTS], padded to 64 bytes, then
 * float vec[HYDB_BLOCK_SLOTS][dim]. */
typedef struct hydb_block_hdr {
	uint32_t magic;
	uint32_t dim;
	uint32_t block_no;
	uint32_t n_live;
	uint64_t checksum; /* reserved for block-level verification */
	uint64_t reserved;
} hydb_block_hdr;

#define HYDB_BLOCK_VEC_OFFSET                                               \
	((sizeof(hydb_block_hdr) + HYDB_BLOCK_SLOTS * sizeof(hydb_slot_attr) + \
	  63) & ~(size_t)63)

typedef struct hydb_block {
	const hydb_block_hdr *hdr;
	const hydb_slot_attr *attr; /* HYDB_BLOCK_SLOTS entries */
	const float *vec;           /* HYDB_BLOCK_SLOTS * dim floats */
} hydb_block;

enum hydb_dbi_id {
	HYDB_DBI_META,
	HYDB_DBI_RECORDS,
	HYDB_DBI_KEYS,
	HYDB_DBI_BLOCKS,
	HYDB_DBI_RADIUS,
	HYDB_DBI_HNSW_NODES, /* index/: per-slot graph links */
	HYDB_DBI_HNSW_META,  /* index/: entry point, parameters */
	HYDB_DBI_FREE,       /* free slots: slot (u32 BE) -> empty */
	HYDB_DBI_COUNT
};

typedef struct hydb_store hydb_store;

int hydb_store_open(hydb_store **out, const char *path,
		    const hydb_open_options *opts);
void hydb_store_close(hydb_store *st);

size_t hydb_store_dim(const hydb_store *st);
double hydb_store_curvature(const hydb_store *st);
int hydb_store_readonly(const hydb_store *st);
MDB_env *hydb_store_env(hydb_store *st);
/* Changes whenever the map may have moved (growth, or adopting another
 * process's size); stable while any transaction of the process is open. */
uint64_t hydb_store_map_generation(const hydb_store *st);
MDB_dbi hydb_store_dbi(const hydb_store *st, enum hydb_dbi_id which);
/* What the structural check of the data file found when it was opened
 * (all zero for a database created by this open). */
const hydb_lmdb_verify_stats *hydb_store_verified(const hydb_store *st);

/*
 * Transactions. A write transaction runs a callback so that the store can
 * retry the whole batch after growing the map (MDB_MAP_FULL): the callback
 * must be idempotent given a fresh transaction, and must return a negative
 * hydb_error or MDB error mapped through hydb_store_mdb_error.
 * Map growth takes an exclusive lock that every transaction of this process
 * holds shared, so the map never changes size under an open transaction.
 */
typedef int (*hydb_write_fn)(hydb_store *st, MDB_txn *txn, void *ctx);
int hydb_store_write(hydb_store *st, hydb_write_fn fn, void *ctx);

int hydb_store_read_begin(hydb_store *st, MDB_txn **txn);
void hydb_store_read_end(hydb_store *st, MDB_txn *txn);

/* Map an LMDB return code to a hydb error with a message naming what. */
int hydb_store_mdb_error(int rc, const char *what);
/* The internal code a write callback returns (via hydb_store_mdb_error) when
 * the map is full; hydb_store_write grows the map and retries. */
#define HYDB_EMAPFULL_INTERNAL (-1000)

/* Vector blocks. The pointers stay valid until txn ends; in a write txn
 * until the next write to the same block. Missing block: HYDB_ENOTFOUND. */
int hydb_store_block_get(hydb_store *st, MDB_txn *txn, uint32_t block_no,
			 hydb_block *out);
/* Highest block number + 1 (0 if empty). */
int hydb_store_block_count(hydb_store *st, MDB_txn *txn, uint32_t *out);
/* Visit every existing block in order (missing block numbers are skipped).
 * A block that fails validation is passed as NULL with the reason in
 * hydb_last_error(), so that a checker can report it and go on. A non-zero
 * return from fn stops the walk and is returned. */
typedef int (*hydb_block_fn)(uint32_t block_no, const hydb_block *b, void *ctx);
int hydb_store_each_block(hydb_store *st, MDB_txn *txn, hydb_block_fn fn,
			  void *ctx);
/* Vector and attributes of one slot. */
int hydb_store_slot(hydb_store *st, MDB_txn *txn, uint32_t slot,
		    const float **vec, const hydb_slot_attr **attr);

/* Records (write txn). put: allocates a slot (reusing a freed one) or keeps
 * the slot of the record with the same key; *slot_out, *id_out, and
 * *replaced (1 if a previous record with this key existed: its slot is
 * reused in place) are set. */
int hydb_store_put(hydb_store *st, MDB_txn *txn, const hydb_record *rec,
		   float radius, uint64_t *id_out, uint32_t *slot_out,
		   int *replaced);
/* Delete by id; *slot_out receives the freed slot. */
int hydb_store_del(hydb_store *st, MDB_txn *txn, uint64_t id,
		   uint32_t *slot_out);
/* The slot a record's vector occupies. */
int hydb_store_record_slot(hydb_store *st, MDB_txn *txn, uint64_t id,
			   uint32_t *slot_out);
int hydb_store_lookup_key(hydb_store *st, MDB_txn *txn, const char *key,
			  uint64_t *id_out);
/* Decode a record into a caller-owned entry (hydb_entry_free). */
int hydb_store_get(hydb_store *st, MDB_txn *txn, uint64_t id,
		   hydb_entry **out);
/* Change a record's safety label in place (record and slot attributes);
 * the vector and the index are untouched. */
int hydb_store_set_label(hydb_store *st, MDB_txn *txn, uint64_t id,
			 hydb_label label);
int hydb_store_count(hydb_store *st, MDB_txn *txn, uint64_t *out);

/* Radius range [lo, hi]: count matches (stops counting past limit), or
 * visit their slots. */
int hydb_store_radius_count(hydb_store *st, MDB_txn *txn, double lo,
			    double hi, uint64_t limit, uint64_t *out);
typedef int (*hydb_slot_fn)(uint32_t slot, void *ctx);
int hydb_store_radius_scan(hydb_store *st, MDB_txn *txn, double lo,
			   double hi, hydb_slot_fn fn, void *ctx);

/* Metadata strings (meta DBI). get returns HYDB_ENOTFOUND when absent. */
int hydb_store_meta_get(hydb_store *st, MDB_txn *txn, const char *name,
			char *buf, size_t bufsize);
int hydb_store_meta_put(hydb_store *st, MDB_txn *txn, const char *name,
			const char *value);

#endif /* HYDB_STORE_H */
