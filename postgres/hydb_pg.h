/*
 * hydb_pg.h - the PostgreSQL extension's shared declarations.
 *
 * The geometry (keys, distances, redirect, cones) and the neighbour-
 * selection rule are the library's own functions, linked from its
 * convenience archive; this extension only stores values and graph pages.
 */
#ifndef HYDB_PG_H
#define HYDB_PG_H

#include "postgres.h"

#include "access/amapi.h"
#include "fmgr.h"
#include "storage/bufmgr.h"
#include "miscadmin.h"
#include "utils/rel.h"

#include "hydb.h"
#include "base/lorentz.h"
#include "base/lorentz_kernel.h"

/* ---- the lorentz type -------------------------------------------------- */

/* Space components in float4 and the curvature -c (c > 0) they live in. */
typedef struct Lorentz {
	int32 vl_len_;
	uint16 dim;
	uint16 unused;
	float8 c;
	float4 x[FLEXIBLE_ARRAY_MEMBER];
} Lorentz;

#define LORENTZ_MAX_DIM 16000
#define LORENTZ_SIZE(dim) (offsetof(Lorentz, x) + sizeof(float4) * (dim))
#define DatumGetLorentz(d) ((Lorentz *)PG_DETOAST_DATUM(d))
#define PG_GETARG_LORENTZ_P(n) DatumGetLorentz(PG_GETARG_DATUM(n))

Lorentz *lorentz_new(int dim, double c);
/* Reject values that cannot be compared: another dimension or curvature. */
void lorentz_check_pair(const Lorentz *a, const Lorentz *b);
/* Every component finite, curvature valid, radius within the library's. */
void lorentz_validate(const float *x, int dim, double c);
void lorentz_check_curvature(double c);
/* Report a failed library call as a data exception. */
void hydb_pg_library_error(int rc, int sqlstate);

/* ---- the hydb_hnsw access method ---------------------------------------- */

#define HG_META_BLKNO 0
#define HG_MAGIC 0x48594842u /* "HYHB" */
#define HG_VERSION 1
#define HG_MAX_M 64
#define HG_MAX_LEVEL 16
#define HG_NONE UINT64_MAX

/* A node: an element's index TID (block << 16 | offset) on pages, an
 * array position in the build's memory graph. */
typedef uint64 hg_node;

static inline hg_node hg_tid_node(BlockNumber b, OffsetNumber o)
{
	return ((uint64)b << 16) | o;
}
static inline BlockNumber hg_node_block(hg_node n) { return (BlockNumber)(n >> 16); }
static inline OffsetNumber hg_node_off(hg_node n) { return (OffsetNumber)(n & 0xffff); }

typedef struct HgMeta {
	uint32 magic, version;
	uint32 dim;          /* 0 until the first vector */
	uint32 m, efc;
	float8 c;
	uint64 entry;        /* hg_node or HG_NONE */
	int32 max_level;
	uint32 unused;
	BlockNumber insert_page; /* the page new elements try first */
	uint32 links_gen; /* bumped by every writer after its last list change */
	uint64 nodes, deleted; /* elements written, elements marked deleted */
	uint64 rng;
	int64 min_rank; /* the lowest rank given, the root's */
	uint64 build_id; /* random, new with every build: names cached rows */
} HgMeta;

/* Two kinds of item share the element pages. An element is one heap row's
 * node: its vector in IEEE half precision, the copy the walk reads (as the
 * library's compact copy: a third of the work of float32 keys), and its
 * links, a fixed size for its level so that links are rewritten in place.
 * Layout after the header: uint16 half[dim], uint16 count[level + 1], then
 * links as hg_node (layer 0: 2m, each upper layer: m). The row's float32
 * vector is a separate item (HgVector), read only to measure the final
 * candidates exactly and to walk rows beyond half precision's range. */
#define HG_KIND_ELEMENT 1
#define HG_KIND_VECTOR 2
#define HG_DELETED 0x1
#define HG_FAR 0x2 /* beyond HYDB_HALF_MAX_NORM: walked in float32 */
/* Tree links: a few layer-0 links kept apart from the selected ones and
 * never pruned, forming a spanning tree from the entry point. Pure
 * re-selection of full lists drops links to older nodes, and 4% of
 * HySAC-like rows (M = 16) were left unreachable; every node therefore
 * hangs from a tree link of its nearest neighbour of lower rank with room,
 * as the library keeps its graph spanned (index/reach.c). A new entry
 * point gets a rank below all and the old entry as its tree child. */
#define HG_TREE 4
/* links() at this level: layer 0's links followed by its tree links. */
#define HG_WALK0 (-1)
typedef struct HgElement {
	uint8 kind, level, flags, ntree;
	ItemPointerData heaptid;
	uint16 unused2;
	int32 rank; /* tree links go from lower to higher rank: no cycles */
	uint64 vec; /* hg_node of the HgVector */
} HgElement;

typedef struct HgVector {
	uint8 kind;
	uint8 unused[3];
	float4 x[FLEXIBLE_ARRAY_MEMBER];
} HgVector;

#define HG_VECTOR_SIZE(dim) (offsetof(HgVector, x) + sizeof(float4) * (dim))

size_t hg_element_size(int dim, int m, int level);
uint16 *hg_elem_half(HgElement *e);
uint16 *hg_elem_counts(HgElement *e, int dim);
uint64 *hg_elem_links(HgElement *e, int dim, int m, int level);
uint64 *hg_elem_tree(HgElement *e, int dim, int m);

/* Graph access for the shared walk: pages or the build's memory. */
typedef struct hg_graph hg_graph;
struct hg_graph {
	int dim, m;
	double c;
	/* Keys between q and n nodes; deleted[i] (may be NULL) set when the
	 * node is marked deleted. */
	void (*keys)(hg_graph *g, const hydb_kquery *q, const hg_node *n,
		     int count, double *keys, bool *deleted);
	/* A node's links on a layer; returns their count. */
	int (*links)(hg_graph *g, hg_node n, int level, hg_node *out);
	/* A node's vector, copied. */
	void (*vector)(hg_graph *g, hg_node n, float *out);
	/* Replace a node's links on a layer. */
	void (*set_links)(hg_graph *g, hg_node n, int level,
			  const hg_node *links, int count);
	/* A node's tree links, and their replacement; its rank. */
	int (*tree)(hg_graph *g, hg_node n, hg_node *out);
	int32 (*rank)(hg_graph *g, hg_node n);
	void (*set_tree)(hg_graph *g, hg_node n, const hg_node *links, int count);
};

typedef struct hg_cand {
	double key;
	hg_node node;
	bool deleted;
} hg_cand;

/* A set of visited nodes (open addressing). */
typedef struct hg_visited {
	uint64 *slots;
	size_t cap, count;
} hg_visited;
void hg_visited_init(hg_visited *v, size_t expect);
bool hg_visited_add(hg_visited *v, hg_node n); /* false: already there */
void hg_visited_reset(hg_visited *v);
bool hg_visited_has(const hg_visited *v, hg_node n);

/* Min/max heap of candidates; sign +1 keeps the nearest on top. */
typedef struct hg_heap {
	hg_cand *a;
	size_t n, cap;
	int sign;
} hg_heap;
void hg_heap_init(hg_heap *h, size_t cap, int sign);
void hg_heap_push(hg_heap *h, hg_cand c);
hg_cand hg_heap_pop(hg_heap *h);
static inline const hg_cand *hg_heap_top(const hg_heap *h) { return h->n ? &h->a[0] : NULL; }
void hg_cand_sort(hg_cand *c, size_t n);

/* Greedy descent from *cur through layers top..bottom+1. */
void hg_greedy(hg_graph *g, const hydb_kquery *q, int top, int bottom,
	       hg_node *cur, double *curkey);
/* A resumable beam search on one layer: the walk's state between batches. */
typedef struct hg_search {
	hg_visited visited;
	hg_heap cand;    /* discovered, not expanded (nearest on top) */
	hg_heap pool;    /* discovered, not returned (nearest on top) */
	hg_cand *res;    /* the batch just found, nearest first */
	size_t nres;
	size_t expanded;
	bool include_deleted;
} hg_search;
void hg_search_init(hg_search *s, size_t ef);
void hg_search_seed(hg_search *s, hg_cand entry);
/* Take the next batch of up to ef results from the walk. */
void hg_search_batch(hg_graph *g, hg_search *s, const hydb_kquery *q,
		     size_t ef, int level);
void hg_search_free(hg_search *s);
/* The library's selection rule over candidates sorted by key; out
 * receives chosen candidate indices. */
int hg_select(hg_graph *g, const hg_cand *c, int n, int mmax, int fill,
	      uint32 *out);
int hg_random_level(uint64 *rng, int m);

/* Pages */
HgMeta *hg_meta_page(Page p);
void hg_read_meta(Relation index, HgMeta *out);
hg_graph *hg_page_graph(Relation index, const HgMeta *meta);
/* Let a scan's walk read rows from the backend's cache. */
void hg_page_graph_cached(hg_graph *g);
void hg_meta_write_page(Page p, const HgMeta *m);
HgElement *hg_page_element(Relation index, Page page, hg_node n);
int hg_m0(int m);

/* Options */
typedef struct HgOptions {
	int32 vl_len_;
	int m, ef_construction;
} HgOptions;
int hg_opt_m(Relation index);
int hg_opt_efc(Relation index);

extern int hydb_ef_search;
extern int hydb_cache_mb;
/* The backend's copies of half-precision rows and layer-0 lists
 * (hnsw_cache.c), for one build of an index as its metapage describes. */
typedef struct hg_cache_key {
	uint64 build_id;
	int dim, m;
	uint32 links_gen;
} hg_cache_key;
const uint16 *hg_cache_get(Relation index, const hg_cache_key *k, hg_node n);
void hg_cache_put(Relation index, const hg_cache_key *k, hg_node n,
		  const uint16 *half);
/* n's layer-0 and tree links read under k->links_gen, or -1. */
int hg_cache_links(Relation index, const hg_cache_key *k, hg_node n, hg_node *out);
void hg_cache_put_links(Relation index, const hg_cache_key *k, hg_node n,
			const uint16 *half, const hg_node *links, int count);
extern int hydb_max_scan_tuples;
extern bool hydb_iterative_scan;

/* AM callbacks */
IndexBuildResult *hg_build(Relation heap, Relation index, struct IndexInfo *info);
void hg_buildempty(Relation index);
bool hg_insert(Relation index, Datum *values, bool *isnull, ItemPointer tid,
	       Relation heap, IndexUniqueCheck unique, bool unchanged,
	       struct IndexInfo *info);
IndexBulkDeleteResult *hg_bulkdelete(IndexVacuumInfo *info,
				     IndexBulkDeleteResult *stats,
				     IndexBulkDeleteCallback cb, void *state);
IndexBulkDeleteResult *hg_vacuumcleanup(IndexVacuumInfo *info,
					IndexBulkDeleteResult *stats);
IndexScanDesc hg_beginscan(Relation index, int nkeys, int norderbys);
void hg_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
	       int norderbys);
bool hg_gettuple(IndexScanDesc scan, ScanDirection dir);
void hg_endscan(IndexScanDesc scan);

/* The first vector fixes the index's dimension and curvature. */
void hg_meta_check_vector(Relation index, const Lorentz *v, bool for_query);
HgElement *hg_new_element(int dim, int m, int level, const float *x,
			  ItemPointer tid, double c, size_t *size);
HgVector *hg_new_vector(int dim, const float *x);
void hg_check_fits(Relation index, int dim, int m);
/* Write a new item (element or vector) to a page with room, trying page
 * first; returns its node. */
hg_node hg_place_element(Relation index, BlockNumber page, void *item,
			 size_t size);
/* The float32 vector of an element, read from its HgVector. */
void hg_read_vector(Relation index, hg_node vec, int dim, float *out);
HgVector *hg_page_vector(Relation index, Page page, hg_node n, int dim);
void hg_set_links(Relation index, int dim, int m, hg_node n, int level,
		  const hg_node *links, int count);
/* Search and selection for a new node at level: links[l] (m each) and
 * counts[l] for layers 0..min(level, max_level). */
void hg_plan_links(hg_graph *g, const hydb_kquery *q, int level, hg_node entry,
		   int max_level, int efc, hg_node (*links)[HG_MAX_M], int *counts,
		   hg_search *s);
/* Add node to the lists of the nodes it links to on each layer. */
void hg_link_back_all(hg_graph *g, hg_node node, int level,
		      hg_node (*links)[HG_MAX_M], const int *counts);
/* After the back links: hang node from a tree link when no layer-0 list
 * kept it. nb: its layer-0 links, nearest first. */
bool hg_hang(hg_graph *g, hg_node node, int32 rank, const hg_node *nb, int count);
void hg_set_tree(Relation index, int dim, int m, hg_node n, const hg_node *links,
		 int count);
void hg_update_meta(Relation index, const HgMeta *m);

/* Lock serializing writers of the graph (insert, vacuum). */
#define HG_UPDATE_LOCK 0

#endif
