/*
 * hnsw.h - the HNSW graph over a database's vector slots (internal).
 *
 * The graph lives in the database's own LMDB environment, in two DBIs the
 * store opens for the index, so that a record and its links commit in one
 * transaction and an index is ready the moment the environment is open:
 *
 *   hnsw_meta  "hnsw" -> struct hnsw_meta: parameters, entry point, top
 *                        level, node count, per modality/label counts
 *   hnsw_nodes (tag u32 BE, number u32 BE) ->
 *                "L0", slot  : level (u8), tree links (u8), degree (u16),
 *                              2M links (u32; the tree links first), rank
 *                              (i32) in the spanning tree (index/reach.c)
 *                "UP", slot  : for levels 1..level: degree (u32), M links
 *                "CV", block : the block's 64 vectors in IEEE half
 *                              precision, the compact copy walked during
 *                              traversal (final candidates are re-ranked
 *                              with the float32 vectors in the store),
 *                              then a flag byte per row (format 3): a row
 *                              beyond HYDB_HALF_MAX_NORM is zero and the
 *                              walk reads its float32 vector instead
 *
 * Every distance is the Lorentz key cosh(sqrt(c) d) - 1 (src/base/lorentz_kernel.h).
 * Parameters: M (default 16; 2M links on layer 0), efConstruction
 * (default 200), ef at search time (default max(k, 64)).
 *
 * Query planner (hydb_index_search), for a filter f (radius range, modality
 * and label masks):
 *   - no filter: plain HNSW, plan "hnsw".
 *   - estimate the matches m: the radius range is counted on the store's
 *     radius index (counting stops past a limit), the masks by the
 *     per-modality/label counts kept in hnsw_meta.
 *   - brute force the matches exactly when m^2 <= 4 ef N: a filtered
 *     graph walk must visit about ef/s nodes for s = m/N, so below this line
 *     scanning the m matches is cheaper, and it is exact. Plan
 *     "brute-filtered" (radius-index scan, or a block scan for mask-only
 *     filters).
 *   - otherwise walk the whole graph, every node steering the walk, and keep
 *     only matching nodes as results; the walk stops only once ef matches
 *     are held, so recall does not collapse as s falls toward the brute-force
 *     line, only the cost rises. Plan "hnsw-filtered".
 *
 * Threads: searches run in parallel, each in its own read transaction.
 * Insert, remove and open in create mode run in the caller's single write
 * transaction. A large insert computes neighbour candidates on two threads
 * that only read the write transaction while the caller's thread waits;
 * all links are written afterwards by the caller's thread alone (see
 * index/insert_par.c). The handle may be shared by threads: per-operation
 * state lives in scratch taken from a mutex-guarded pool.
 */
#ifndef HYDB_INDEX_HNSW_H
#define HYDB_INDEX_HNSW_H

#include <lmdb.h>
#include <math.h>
#include <stdint.h>

#include "base/base.h"
#include "storage/store.h"

#define HYDB_HNSW_DEFAULT_M 16u
#define HYDB_HNSW_DEFAULT_EFC 200u
/* The beam when the caller names none: the public HYDB_DEFAULT_EF, and never
 * below k (the one place this rule is written; src/tune.c uses it too). */
#define HYDB_HNSW_DEFAULT_EF ((unsigned)HYDB_DEFAULT_EF)
static inline size_t hydb_index_default_ef(size_t k)
{
	return k > HYDB_DEFAULT_EF ? k : (size_t)HYDB_DEFAULT_EF;
}
#define HYDB_HNSW_MAX_M 128u
#define HYDB_HNSW_MAX_LEVEL 16u

/* A candidate: its slot and its ranking key cosh(sqrt(c) d) - 1 (monotone in
 * the geodesic distance d). Ties are broken by record id, so results are
 * deterministic. */
typedef struct hydb_hit {
	uint32_t slot;
	uint64_t id;
	double key;
} hydb_hit;

/* Record filter as applied to slot attributes. */
typedef struct hydb_filter {
	double min_radius, max_radius; /* inclusive; [0, INFINITY] = none */
	unsigned modality_mask;        /* 0 = any */
	unsigned label_mask;           /* 0 = any */
	/* HYDB_CONE_* tests against cone_query (dim components, curvature c),
	 * whose half-aperture is query_aperture; 0 = none */
	unsigned cone;
	const float *cone_query;
	double query_aperture, c;
	size_t dim;
} hydb_filter;

static inline int hydb_filter_is_empty(const hydb_filter *f)
{
	return !f || (f->min_radius <= 0 && isinf(f->max_radius) &&
		      !f->modality_mask && !f->label_mask && !f->cone);
}

/* The cone tests of f on a stored point v (its attributes matched). Each is
 * an exact angle (base/lorentz.c), so the index and exact search agree. */
static inline int hydb_filter_cone_match(const hydb_filter *f, const float *v)
{
	if (!f || !f->cone)
		return 1;
	if ((f->cone & HYDB_CONE_WITHIN) &&
	    !(hydb_oxy_angle(v, f->cone_query, f->dim, f->c) <=
	      hydb_half_aperture(v, f->dim, f->c)))
		return 0;
	return !(f->cone & HYDB_CONE_CONTAINS) ||
	       hydb_oxy_angle(f->cone_query, v, f->dim, f->c) <= f->query_aperture;
}

static inline int hydb_filter_match(const hydb_filter *f,
				    const hydb_slot_attr *a)
{
	if (!a->live)
		return 0;
	if (!f)
		return 1;
	if (a->radius < f->min_radius || a->radius > f->max_radius)
		return 0;
	/* The bytes come from disk: a value past the mask width matches no
	 * mask rather than shifting out of range. */
	if (f->modality_mask && (a->modality >= 32 || !(f->modality_mask & (1u << a->modality))))
		return 0;
	if (f->label_mask && (a->label >= 32 || !(f->label_mask & (1u << a->label))))
		return 0;
	return 1;
}

/* Order: smaller key first, then smaller id. */
static inline int hydb_hit_less(const hydb_hit *a, const hydb_hit *b)
{
	return a->key < b->key || (a->key == b->key && a->id < b->id);
}

typedef struct hydb_index hydb_index;

/* Where the index reads vectors and writes its graph. hydb_index_open fills
 * one from a store; tests and benches may supply their own. */
typedef struct hydb_vsource {
	void *ctx;
	MDB_env *env;
	MDB_dbi nodes, meta;
	size_t dim;
	double c;
	int (*block)(void *ctx, MDB_txn *txn, uint32_t block_no,
		     hydb_block *out);
	int (*radius_count)(void *ctx, MDB_txn *txn, double lo, double hi,
			    uint64_t limit, uint64_t *out);
	int (*radius_scan)(void *ctx, MDB_txn *txn, double lo, double hi,
			   hydb_slot_fn fn, void *fctx);
	/* Changes whenever the map may have moved; block pointers are kept
	 * across read transactions only while it stays the same. NULL: the
	 * map never moves. */
	uint64_t (*map_generation)(void *ctx);
} hydb_vsource;

/* Creation options beyond M and efConstruction. */
#define HYDB_HNSW_NO_COMPACT 0x1u /* walk the float32 vectors directly */

/*
 * Open the index; txn is a write transaction when the index may be created
 * (M, efc: 0 = default; ignored when it exists, the persisted ones win) and
 * may be a read transaction otherwise. The handle keeps no transaction.
 */
int hydb_index_open(hydb_index **out, hydb_store *st, MDB_txn *txn,
		    unsigned M, unsigned efc);
int hydb_index_open_source(hydb_index **out, const hydb_vsource *src,
			   MDB_txn *txn, unsigned M, unsigned efc,
			   unsigned flags);
/* hydb_index_open with creation flags (HYDB_HNSW_*). */
int hydb_index_open_flags(hydb_index **out, hydb_store *st, MDB_txn *txn,
			  unsigned M, unsigned efc, unsigned flags);
void hydb_index_close(hydb_index *ix);

/* Insert slots whose vectors and attributes are already in the blocks. */
int hydb_index_insert(hydb_index *ix, MDB_txn *wtxn, const uint32_t *slots,
		      size_t n);
/* Remove a slot before the store frees or overwrites it: every link to it
 * is dropped and each node that lost one has its list repaired. */
int hydb_index_remove(hydb_index *ix, MDB_txn *wtxn, uint32_t slot);
/* The same for n slots (repeats allowed) with one scan of the graph for
 * all of them: an upsert that replaces many records removes them here. */
int hydb_index_remove_many(hydb_index *ix, MDB_txn *wtxn,
			   const uint32_t *slots, size_t n);

/* k nearest matching slots, nearest first (ties by id), exact keys. out
 * holds k hits; *nout receives how many were found; *plan (may be NULL)
 * a static string naming the plan. ef = 0: default. */
int hydb_index_search(hydb_index *ix, MDB_txn *rtxn, const float *q, size_t k,
		      size_t ef, const hydb_filter *f, hydb_hit *out,
		      size_t *nout, const char **plan);

/* An unfiltered search that walks around node skip as if it were not in
 * the graph: neither stepped on nor returned (unless it is the entry
 * point). The recall a database measures for itself (src/tune.c) searches
 * stored points this way, as held-out queries. */
int hydb_index_search_without(hydb_index *ix, MDB_txn *rtxn, const float *q,
			      size_t k, size_t ef, uint32_t skip, hydb_hit *out,
			      size_t *nout);

/* Verify the graph against the blocks. Each problem is passed to fn (may be
 * NULL) as a one-line message naming the slot and record id; *nproblems
 * receives the count. Returns 0 even when problems are found. */
typedef void (*hydb_index_problem_fn)(const char *msg, void *ctx);
int hydb_index_check(hydb_index *ix, MDB_txn *rtxn, hydb_index_problem_fn fn,
		     void *ctx, size_t *nproblems);
/* Live nodes that no layer-0 path from the entry point reaches: index
 * searches cannot return them (exact search still does). This is a quality
 * defect of the graph, not damage, so it is reported apart from
 * hydb_index_check's invariants. */
int hydb_index_unreachable(hydb_index *ix, MDB_txn *rtxn, hydb_index_problem_fn fn,
			   void *ctx, size_t *nunreachable);
/* Live nodes the reachability tree (index/reach.c) does not span. They may
 * still be reachable, but a deletion near them may cut them off; none
 * should exist. Format-1 graphs have no tree: 0. */
int hydb_index_outside_tree(hydb_index *ix, MDB_txn *rtxn,
			    hydb_index_problem_fn fn, void *ctx, size_t *nout);

/* Nodes that a search for their own vector misses: a search (k = 1, no
 * filter) must return the node or another point at key 0 (an identical
 * vector). At most limit nodes are tried (0: all), spread evenly over the
 * slot order, the same ones on every run. A node missed at ef (0: the
 * default) is searched again at wide_ef when that is larger: found there,
 * it is a miss (HNSW is approximate: a graph-quality figure, passed to
 * miss_fn); missed again while a layer-0 path leads to it, it is lost
 * (the walk's keys cannot steer to it: wrong results, passed to lost_fn).
 * Unreachable nodes count as misses (hydb_index_unreachable names them).
 * A wide_ef at least the node count makes the second search exhaustive. */
typedef struct hydb_self_search {
	size_t ef, wide_ef, limit;
	hydb_index_problem_fn miss_fn, lost_fn; /* may be NULL */
	void *ctx;
	size_t checked, missed, lost; /* results */
} hydb_self_search;
int hydb_index_self_search_run(hydb_index *ix, MDB_txn *rtxn,
			       hydb_self_search *ss);
/* The same at one beam, for tests: *nmissed counts every miss. */
int hydb_index_self_search(hydb_index *ix, MDB_txn *rtxn, size_t ef,
			   size_t limit, hydb_index_problem_fn fn, void *ctx,
			   size_t *nchecked, size_t *nmissed);

/* Figures for benches and the CLI. */
typedef struct hydb_index_stats {
	unsigned M, efc;
	int compact;
	uint64_t nodes;
	uint32_t entry;
	unsigned max_level;
	double bytes_per_vector; /* graph + compact copy, without the store */
} hydb_index_stats;
int hydb_index_stats_get(hydb_index *ix, MDB_txn *rtxn, hydb_index_stats *out);

/* Live nodes by modality and label, as the planner reads them to estimate
 * how many nodes a label or modality mask matches. */
int hydb_index_label_counts(hydb_index *ix, MDB_txn *rtxn,
			    uint64_t counts[HYDB_N_MODALITIES][HYDB_N_LABELS]);
/* Replace those counts after re-labelling (src/inspect.c). A label is no
 * part of the graph, so the counts are all the index keeps of it; the
 * caller counted the live slots' attributes in the same write transaction,
 * so counts left stale by an earlier re-labelling are repaired too. */
int hydb_index_set_label_counts(hydb_index *ix, MDB_txn *wtxn,
				const uint64_t counts[HYDB_N_MODALITIES][HYDB_N_LABELS]);

/* The neighbour-selection rule (index/select.c) as a pure function, so
 * that every graph built on hydb's geometry selects with this one code.
 * Candidates 0..n-1 are sorted by their key to the base; candidate i's key
 * is the double at (const char *)key0 + i * stride. key(ctx, pos, kept,
 * cand, &d) gives the key between the candidate kept at position pos of the
 * list and candidate cand (non-zero: an error, returned as is); prefetch
 * (may be NULL) announces the keys about to be asked for cand. out (mmax
 * entries) receives the indices of the chosen candidates, *nout their
 * count: at most mmax, topped up to fill with the nearest pruned ones. */
typedef int (*hydb_select_key_fn)(void *ctx, unsigned pos, uint32_t kept,
				  uint32_t cand, double *key);
typedef void (*hydb_select_prefetch_fn)(void *ctx, const uint32_t *kept,
					unsigned nkept, uint32_t cand);
int hydb_hnsw_select(const double *key0, size_t stride, size_t n,
		     unsigned mmax, unsigned fill, hydb_select_key_fn key,
		     hydb_select_prefetch_fn prefetch, void *ctx,
		     uint32_t *out, unsigned *nout);

/* The order in which every graph built on hydb's geometry inserts a batch:
 * nearest the origin first (why: index/insert.c). order (n entries)
 * receives the positions 0..n-1 sorted by radius[]; ties and NaN radii
 * (taken as 0) keep their order. HYDB_ENOMEM when the sort's table
 * cannot be allocated. */
int hydb_hnsw_radius_order(const float *radius, size_t n, uint32_t *order);

/* Worker threads for large inserts (default 2; 1 = serial). */
void hydb_index_set_threads(hydb_index *ix, unsigned n);

#endif
