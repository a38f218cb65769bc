/*
 * hnsw_impl.h - shared internals of the index/ files (not for other parts).
 */
#ifndef HYDB_INDEX_HNSW_IMPL_H
#define HYDB_INDEX_HNSW_IMPL_H

#include <pthread.h>
#include <string.h>

#include "base/bench_switch.h"
#include "base/lorentz_kernel.h"
#include "index/hnsw.h"

/* The node records' layout (hnsw.h). Layer 0: level (u8), tree links (u8),
 * degree (u16), 2M link slots (u32), then the rank (i32; format 2 on). An
 * upper record: per level 1..level, a degree (u32) and M link slots. */
#define HNSW_L0_LEVEL 0
#define HNSW_L0_PROT 1
#define HNSW_L0_DEGREE 2
#define HNSW_L0_LINKS 4
#define HNSW_LINK_BYTES 4
#define HNSW_RANK_BYTES 4
#define HNSW_UP_DEGREE_BYTES 4
/* Bytes of one level in an upper record. */
#define HNSW_UP_STRIDE(M) (HNSW_UP_DEGREE_BYTES + HNSW_LINK_BYTES * (size_t)(M))

#define HNSW_META_MAGIC 0x57534e48u /* "HNSW" */
/* 2: layer-0 records carry the reachability tree (index/reach.c). Format 1
 * graphs are searched but not changed.
 * 3: a compact block ends with a byte per row, HNSW_ROW_WIDE for a row the
 * walk reads in float32 from the store (src/base/lorentz_kernel.h, HYDB_HALF_MAX_NORM).
 * Blocks without the bytes (written by format 2) are all half precision;
 * an insert rewrites each block it touches in the new layout and marks the
 * graph format 3, which format-2 libraries refuse. */
#define HNSW_META_VERSION 3u
#define HNSW_ROW_WIDE 1u
#define HNSW_TAG_L0 0x4c300000u /* "L0" */
#define HNSW_TAG_UP 0x55500000u /* "UP" */
#define HNSW_TAG_CV 0x43560000u /* "CV" */

/* Persisted in hnsw_meta under "hnsw", host byte order (the store refuses
 * environments from another architecture). */
struct hnsw_meta {
	uint32_t magic, version;
	uint32_t M, efc;
	uint32_t dim, flags;
	uint32_t entry;     /* HYDB_NO_SLOT when the graph is empty */
	uint32_t max_level;
	uint64_t nodes;
	uint32_t slot_limit; /* 1 + the highest slot ever inserted */
	uint32_t next_rank;  /* rank of the next new node (reach.c); 0: none */
	uint64_t rng;        /* level generator state: builds are repeatable */
	uint64_t counts[HYDB_N_MODALITIES][HYDB_N_LABELS]; /* live nodes */
	double c;
};

struct hydb_index {
	hydb_vsource src;
	unsigned M, M0, efc, threads;
	int compact;
	int legacy; /* format 1: no tree, read-only */
	size_t dim;
	double c, level_mult;
	int stable_ptrs; /* MDB_WRITEMAP: our writes never move block data */
	pthread_mutex_t pool_lock;
	struct hnsw_scratch *pool;
};

struct hnsw_cand {
	double key;
	uint32_t slot;
};

struct hnsw_blk {
	uint32_t epoch;
	uint32_t wepoch; /* for volatile entries: the write count they saw */
	int vol;         /* points at a page dirty in this write txn */
	const float *vec;           /* vec and attr: NULL until asked for */
	const hydb_slot_attr *attr;
	const uint16_t *cv;
	const uint8_t *rowfl; /* per-row flags; NULL: a format-2 block */
};

/* A layer-0 record checked once in a read-only snapshot (graph.c). */
struct hnsw_l0ref {
	const uint8_t *p;
	uint32_t epoch;
};

/* Per-thread working memory, pooled in the index so a search allocates
 * nothing in the steady state. */
struct hnsw_scratch {
	struct hnsw_scratch *next;
	uint32_t *visit;
	uint32_t visit_cap, visit_epoch;
	struct hnsw_blk *blk;
	uint32_t blk_cap, blk_epoch, wepoch;
	struct hnsw_l0ref *l0; /* by slot, valid at blk_epoch */
	uint32_t l0_cap;
	uint64_t snap_txn;  /* snapshot the cached pointers belong to */
	uint64_t snap_gen;  /* and the map generation they were read in */
	struct hnsw_cand *cand, *res;
	size_t cand_cap, res_cap;
	float *xbuf; /* vectors decoded as queries (hnsw_scratch_floats) */
	size_t xbuf_cap;
	uint32_t links[2 * HYDB_HNSW_MAX_M + 1];
};

/* One operation (search, insert batch, remove) in one transaction. */
struct hnsw_ctx {
	hydb_index *ix;
	MDB_txn *txn;
	struct hnsw_scratch *sc;
	struct hnsw_meta meta;
	struct hnsw_pending *pend; /* NULL: layer-0 writes go straight out */
	int pend_ro;               /* pend is shared: look up, never add */
	const uint8_t *doomed;     /* removals under way (bit per slot) */
	uint32_t doomed_lim;
	struct hnsw_pairs *pairs;  /* NULL: no pair keys remembered */
	uint32_t skip;             /* a search walks around this node
				      (HYDB_NO_SLOT: none) */
};

/* A layer-0 record. Its first prot links are tree links (reach.c). */
struct hnsw_l0 {
	uint32_t links[2 * HYDB_HNSW_MAX_M];
	unsigned n, prot, level;
	int32_t rank;
};

/* Copies only the links in use (the array holds 2 * HYDB_HNSW_MAX_M). */
static inline void hnsw_l0_copy(struct hnsw_l0 *d, const struct hnsw_l0 *s)
{
	d->n = s->n;
	d->prot = s->prot;
	d->level = s->level;
	d->rank = s->rank;
	memcpy(d->links, s->links, (size_t)s->n * sizeof *d->links);
}

/* graph.c: persistence and access */
int hnsw_l0_get(struct hnsw_ctx *cx, uint32_t slot, struct hnsw_l0 *r);
int hnsw_l0_put(struct hnsw_ctx *cx, uint32_t slot, const struct hnsw_l0 *r);
int hnsw_meta_load(hydb_index *ix, MDB_txn *txn, struct hnsw_meta *m);
int hnsw_meta_save(hydb_index *ix, MDB_txn *txn, const struct hnsw_meta *m);
int hnsw_ctx_begin(struct hnsw_ctx *cx, hydb_index *ix, MDB_txn *txn);
void hnsw_ctx_end(struct hnsw_ctx *cx);
void hnsw_ctx_wrote(struct hnsw_ctx *cx);
int hnsw_visit_reset(struct hnsw_ctx *cx);
int hnsw_slot_data(struct hnsw_ctx *cx, uint32_t slot, const float **vec,
		   const hydb_slot_attr **attr, const uint16_t **cv);
/* The row the walk measures: the half-precision copy (*half = 1) or, for a
 * row half precision cannot hold or without a compact copy, the float32
 * vector. */
int hnsw_walk_row_load(struct hnsw_ctx *cx, uint32_t slot, const void **row,
		       int *half);

/* hnsw_walk_row_load's common case inline, where the slot's block is
 * current in the scratch: one call per neighbour was a sixth of a
 * low-dimensional build. */
static inline int hnsw_walk_row(struct hnsw_ctx *cx, uint32_t slot,
				const void **row, int *half)
{
	const struct hnsw_scratch *sc = cx->sc;
	uint32_t b = slot / HYDB_BLOCK_SLOTS, i = slot % HYDB_BLOCK_SLOTS;
	const struct hnsw_blk *e = b < sc->blk_cap ? &sc->blk[b] : NULL;
	if (slot == HYDB_NO_SLOT || !e || e->epoch != sc->blk_epoch ||
	    (e->vol && e->wepoch != sc->wepoch))
		return hnsw_walk_row_load(cx, slot, row, half);
	if (cx->ix->compact && e->cv &&
	    (!e->rowfl || !(e->rowfl[i] & HNSW_ROW_WIDE))) {
		*half = 1;
		*row = e->cv + (size_t)i * cx->ix->dim;
		return 0;
	}
	if ((cx->ix->compact && !e->cv) || !e->vec)
		return hnsw_walk_row_load(cx, slot, row, half);
	*half = 0;
	*row = e->vec + (size_t)i * cx->ix->dim;
	return 0;
}
int hnsw_get_level(struct hnsw_ctx *cx, uint32_t slot, unsigned *level);
int hnsw_get_links(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		   uint32_t *links, unsigned *n);
int hnsw_put_links(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		   const uint32_t *links, unsigned n);
/* The links without a copy where they are held in memory: *links stays
 * valid until the operation next reads or writes a record. */
int hnsw_links_view(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		    const uint32_t **links, unsigned *n);
int hnsw_node_create(struct hnsw_ctx *cx, uint32_t slot, unsigned level);
int hnsw_node_delete(struct hnsw_ctx *cx, uint32_t slot);
int hnsw_compact_write(struct hnsw_ctx *cx, const uint32_t *slots, size_t n);
void hnsw_scratch_free(struct hnsw_scratch *sc);
int hnsw_cand_reserve(struct hnsw_cand **a, size_t *cap, size_t need);
/* rows x dim floats of the operation's scratch; NULL (error set) without
 * memory. Valid until the next call. */
float *hnsw_scratch_floats(struct hnsw_ctx *cx, size_t rows);
void hnsw_node_key(uint8_t key[8], uint32_t tag, uint32_t num);
uint32_t hnsw_key_num(const MDB_val *k);
uint32_t hnsw_key_tag(const MDB_val *k);

static inline int hnsw_visited(struct hnsw_scratch *sc, uint32_t slot)
{
	if (slot >= sc->visit_cap || sc->visit[slot] == sc->visit_epoch)
		return 1;
	sc->visit[slot] = sc->visit_epoch;
	return 0;
}

/* A node a batch of removals is deleting: nothing may link to it anew. */
static inline int hnsw_doomed(const struct hnsw_ctx *cx, uint32_t slot)
{
	return cx->doomed && slot < cx->doomed_lim &&
	       (cx->doomed[slot >> 3] >> (slot & 7) & 1);
}

/* pending.c: layer-0 records held back from LMDB while a chunk links */
struct hnsw_pending;
int hnsw_pending_init(struct hnsw_pending **out);
void hnsw_pending_free(struct hnsw_pending *p);
struct hnsw_l0 *hnsw_pending_find(struct hnsw_pending *p, uint32_t slot);
int hnsw_pending_put(struct hnsw_pending *p, uint32_t slot,
		     const struct hnsw_l0 *r);
int hnsw_pending_keep(struct hnsw_pending *p, uint32_t slot,
		      const struct hnsw_l0 *r);
/* The table holds its budget: flush before the next node. */
int hnsw_pending_full(const struct hnsw_pending *p);
int hnsw_pending_flush(struct hnsw_ctx *cx);

/* pairs.c: keys between nodes remembered over an insert */
struct hnsw_pairs;
/* Batches smaller than this link without the pair table. */
#define HNSW_PAIRS_MIN_INSERTS 64
int hnsw_pairs_init(struct hnsw_pairs **out);
void hnsw_pairs_free(struct hnsw_pairs *p);
/* The table is far larger than the caches: fetch the entry ahead. */
void hnsw_pairs_prefetch(struct hnsw_ctx *cx, uint32_t a, uint32_t b);
/* The key between node a and node b. *qa is a prepared as a query when
 * *ready, else prepared here, its vector decoded into abuf (dim floats)
 * from the compact copy, which the walk has just read. */
int hnsw_pair_key(struct hnsw_ctx *cx, uint32_t a, hydb_kquery *qa,
		  float *abuf, int *ready, uint32_t b, double *key);

/* walk.c: the graph algorithms */
int hnsw_walk_key(struct hnsw_ctx *cx, const hydb_kquery *q, uint32_t slot,
		  double *key);
int hnsw_greedy(struct hnsw_ctx *cx, const hydb_kquery *q, unsigned top,
		unsigned bottom, uint32_t *cur, double *curkey);
/* Beam search on one layer from the entries already in cx->sc->cand-free
 * form; results (accepted by f) are left in cx->sc->res[0..*nres) sorted by
 * key. */
int hnsw_search_layer(struct hnsw_ctx *cx, const hydb_kquery *q,
		      uint32_t entry, double entry_key, size_t ef,
		      unsigned level, const hydb_filter *f, size_t *nres);
int hnsw_select(struct hnsw_ctx *cx, struct hnsw_cand *c, size_t n,
		unsigned mmax, unsigned fill, uint32_t *out, unsigned *nout);
int hnsw_connect(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		 const uint32_t *nb, unsigned n);
void hnsw_cand_sort(struct hnsw_cand *c, size_t n);

/* reach.c: the spanning tree that keeps layer 0 reachable. x, just linked
 * on layer 0 with candidates c (nearest first), gets a parent, or becomes
 * the root when its level is above the top. */
int hnsw_tree_join(struct hnsw_ctx *cx, uint32_t x, unsigned level,
		   const struct hnsw_cand *c, size_t n);
/* gone, whose layer-0 record was g, is being deleted and the entry point
 * is settled: its tree children get new parents. */
int hnsw_tree_orphans(struct hnsw_ctx *cx, uint32_t gone,
		      const struct hnsw_l0 *g);
/* e succeeds a deleted root of that rank. */
int hnsw_tree_succeed(struct hnsw_ctx *cx, uint32_t e, int32_t rank);

/* insert.c */
unsigned hnsw_fill(const hydb_index *ix);
unsigned hnsw_random_level(hydb_index *ix, struct hnsw_meta *m);
void hnsw_count_attr(struct hnsw_meta *m, const hydb_slot_attr *a, int d);
int hnsw_insert_serial(struct hnsw_ctx *cx, const uint32_t *slots, size_t n);

/* insert_par.c */
int hnsw_insert_parallel(struct hnsw_ctx *cx, const uint32_t *slots, size_t n);

/* remove.c */
int hnsw_remove_in(struct hnsw_ctx *cx, uint32_t slot);
int hnsw_remove_many_in(struct hnsw_ctx *cx, const uint32_t *slots, size_t n);

#endif
