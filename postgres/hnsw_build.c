/*
 * hnsw_build.c - CREATE INDEX: the graph is built in memory while the heap
 * is scanned (the same walk and selection as inserts, without page locks or
 * WAL per change), then written page by page and WAL-logged as whole pages
 * once, which is what makes a build cheaper than row-by-row inserts.
 */
#include "hydb_pg.h"

#include "access/tableam.h"
#include "access/xloginsert.h"
#include "catalog/index.h"
#include "miscadmin.h"
#include "storage/bufpage.h"
#include "utils/memutils.h"

typedef struct mem_graph {
	hg_graph g;
	float *vecs;           /* n rows of dim floats */
	ItemPointerData *tids;
	uint8 *levels;
	uint32 *l0;            /* n rows of 2m links */
	uint16 *l0n;
	uint32 **up;           /* per node, per upper layer: count, m links */
	size_t n, cap;
	HgMeta meta;
	hg_search search;
	hg_node (*links)[HG_MAX_M];
	Relation index;
	double reltuples;
	MemoryContext ctx, tmp; /* the graph's, and one reset per row */
} mem_graph;

static uint32 *up_layer(mem_graph *mg, hg_node n, int level)
{
	return mg->up[n] + (size_t)(level - 1) * (mg->g.m + 1);
}

static void mem_keys(hg_graph *g, const hydb_kquery *q, const hg_node *n,
		     int count, double *keys, bool *deleted)
{
	mem_graph *mg = (mem_graph *)g;
	const float *rows[2 * HG_MAX_M + 1];
	for (int i = 0; i < count; i++) {
		rows[i] = mg->vecs + n[i] * (size_t)g->dim;
		if (deleted)
			deleted[i] = false;
	}
	hydb_keys_f32(q, rows, (size_t)count, keys);
}

static int mem_links(hg_graph *g, hg_node n, int level, hg_node *out)
{
	mem_graph *mg = (mem_graph *)g;
	const uint32 *l;
	int count;
	if (level > mg->levels[n])
		return 0;
	if (level == 0) {
		l = mg->l0 + n * (size_t)hg_m0(g->m);
		count = mg->l0n[n];
	} else {
		l = up_layer(mg, n, level) + 1;
		count = (int)l[-1];
	}
	for (int i = 0; i < count; i++)
		out[i] = l[i];
	return count;
}

static void mem_vector(hg_graph *g, hg_node n, float *out)
{
	mem_graph *mg = (mem_graph *)g;
	memcpy(out, mg->vecs + n * (size_t)g->dim, sizeof(float) * g->dim);
}

static void mem_set_links(hg_graph *g, hg_node n, int level,
			  const hg_node *links, int count)
{
	mem_graph *mg = (mem_graph *)g;
	uint32 *l;
	if (level == 0) {
		l = mg->l0 + n * (size_t)hg_m0(g->m);
		mg->l0n[n] = (uint16)count;
	} else {
		l = up_layer(mg, n, level) + 1;
		l[-1] = (uint32)count;
	}
	for (int i = 0; i < count; i++)
		l[i] = (uint32)links[i];
}

static void grow(mem_graph *mg)
{
	size_t cap = mg->cap ? mg->cap * 2 : 1024, dim = mg->g.dim;
	mg->vecs = mg->cap ? repalloc_huge(mg->vecs, cap * dim * sizeof(float))
			   : MemoryContextAllocHuge(mg->ctx, cap * dim * sizeof(float));
	mg->l0 = mg->cap ? repalloc_huge(mg->l0, cap * hg_m0(mg->g.m) * sizeof(uint32))
			 : MemoryContextAllocHuge(mg->ctx, cap * hg_m0(mg->g.m) * sizeof(uint32));
	mg->tids = mg->cap ? repalloc_huge(mg->tids, cap * sizeof(ItemPointerData))
			   : MemoryContextAllocHuge(mg->ctx, cap * sizeof(ItemPointerData));
	mg->levels = mg->cap ? repalloc_huge(mg->levels, cap) : MemoryContextAllocHuge(mg->ctx, cap);
	mg->l0n = mg->cap ? repalloc_huge(mg->l0n, cap * sizeof(uint16))
			  : MemoryContextAllocHuge(mg->ctx, cap * sizeof(uint16));
	mg->up = mg->cap ? repalloc_huge(mg->up, cap * sizeof(uint32 *))
			 : MemoryContextAllocHuge(mg->ctx, cap * sizeof(uint32 *));
	mg->cap = cap;
}

/* Element size limit: the largest element (top level) must fit a page. */
static void check_fits(Relation index, int dim, int m)
{
	size_t need = MAXALIGN(hg_element_size(dim, m, HG_MAX_LEVEL - 1));
	if (need > BLCKSZ - SizeOfPageHeaderData - sizeof(ItemIdData))
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("lorentz of %d dimensions is too large for a hydb_hnsw index with m = %d",
				       dim, m)));
}

static void mem_add(mem_graph *mg, const Lorentz *v, ItemPointer tid)
{
	HgMeta *m = &mg->meta;
	if (m->dim == 0) {
		check_fits(mg->index, v->dim, (int)m->m);
		m->dim = v->dim;
		m->c = v->c;
		mg->g.dim = v->dim;
		mg->g.c = v->c;
	}
	if (v->dim != m->dim || v->c != m->c)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("rows of dimension %d / curvature -%g and %u / -%g cannot share an index",
				       v->dim, v->c, m->dim, m->c)));
	if (mg->n == mg->cap)
		grow(mg);
	hg_node i = mg->n++;
	int level = hg_random_level(&m->rng, (int)m->m), counts[HG_MAX_LEVEL];
	memcpy(mg->vecs + i * m->dim, v->x, sizeof(float) * m->dim);
	mg->tids[i] = *tid;
	mg->levels[i] = (uint8)level;
	mg->l0n[i] = 0;
	mg->up[i] = level ? MemoryContextAllocZero(mg->ctx, sizeof(uint32) * level * (m->m + 1)) : NULL;
	if (m->entry == HG_NONE) {
		m->entry = i;
		m->max_level = level;
		return;
	}
	hydb_kquery q;
	hydb_kquery_init(&q, mg->vecs + i * m->dim, m->dim, m->c);
	hg_plan_links(&mg->g, &q, level, m->entry, m->max_level, (int)m->efc,
		      mg->links, counts, &mg->search);
	for (int l = Min(level, m->max_level); l >= 0; l--)
		mem_set_links(&mg->g, i, l, mg->links[l], counts[l]);
	hg_link_back_all(&mg->g, i, Min(level, m->max_level), mg->links, counts);
	if (level > m->max_level) {
		m->entry = i;
		m->max_level = level;
	}
}

static void build_callback(Relation index, ItemPointer tid, Datum *values,
			   bool *isnull, bool alive, void *state)
{
	mem_graph *mg = state;
	MemoryContext old;
	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(mg->tmp);
	mem_add(mg, DatumGetLorentz(values[0]), tid);
	MemoryContextSwitchTo(old);
	MemoryContextReset(mg->tmp);
	mg->reltuples++;
}

/* ---- writing the pages -------------------------------------------------- */

/* Where each element goes: packed in order, as PageAddItem would place
 * them, so that links can be written as final TIDs in one pass. */
static hg_node *place_all(mem_graph *mg, BlockNumber *npages)
{
	hg_node *at = MemoryContextAllocHuge(mg->ctx, sizeof(hg_node) * Max(mg->n, 1));
	BlockNumber blk = 1;
	size_t lower = SizeOfPageHeaderData, upper = BLCKSZ;
	OffsetNumber off = 0;
	for (size_t i = 0; i < mg->n; i++) {
		size_t sz = MAXALIGN(hg_element_size(mg->g.dim, mg->g.m, mg->levels[i]));
		if (lower + sizeof(ItemIdData) + sz > upper) {
			blk++;
			lower = SizeOfPageHeaderData;
			upper = BLCKSZ;
			off = 0;
		}
		lower += sizeof(ItemIdData);
		upper -= sz;
		at[i] = hg_tid_node(blk, ++off);
	}
	*npages = mg->n ? blk + 1 : 1;
	return at;
}

static HgElement *mem_element(mem_graph *mg, size_t i, const hg_node *at,
			      HgElement *e, size_t *size)
{
	int level = mg->levels[i], dim = mg->g.dim, m = mg->g.m;
	hg_node links[2 * HG_MAX_M];
	*size = hg_element_size(dim, m, level);
	memset(e, 0, *size);
	e->level = (uint8)level;
	e->heaptid = mg->tids[i];
	memcpy(hg_elem_vec(e), mg->vecs + i * (size_t)dim, sizeof(float) * dim);
	for (int l = 0; l <= level; l++) {
		int n = mem_links(&mg->g, i, l, links);
		uint64 *dst = hg_elem_links(e, dim, m, l);
		for (int j = 0; j < n; j++)
			dst[j] = at[links[j]];
		hg_elem_counts(e, dim)[l] = (uint16)n;
	}
	return e;
}

static Buffer new_page(Relation index, ForkNumber fork)
{
	Buffer b = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(b, BUFFER_LOCK_EXCLUSIVE);
	PageInit(BufferGetPage(b), BLCKSZ, 0);
	return b;
}

static void write_elements(mem_graph *mg, const hg_node *at)
{
	HgElement *e = palloc(BLCKSZ);
	Buffer b = InvalidBuffer;
	size_t size;
	for (size_t i = 0; i < mg->n; i++) {
		if (!BufferIsValid(b) || BufferGetBlockNumber(b) != hg_node_block(at[i])) {
			if (BufferIsValid(b)) {
				MarkBufferDirty(b);
				UnlockReleaseBuffer(b);
			}
			b = new_page(mg->index, MAIN_FORKNUM);
			if (BufferGetBlockNumber(b) != hg_node_block(at[i]))
				elog(ERROR, "hydb_hnsw build: page %u where %u was planned",
				     BufferGetBlockNumber(b), hg_node_block(at[i]));
		}
		mem_element(mg, i, at, e, &size);
		if (PageAddItem(BufferGetPage(b), (Item)e, size, InvalidOffsetNumber,
				false, false) != hg_node_off(at[i]))
			elog(ERROR, "hydb_hnsw build: element %zu not at its planned place", i);
		if (i % 1024 == 0)
			CHECK_FOR_INTERRUPTS();
	}
	if (BufferIsValid(b)) {
		MarkBufferDirty(b);
		UnlockReleaseBuffer(b);
	}
	pfree(e);
}

static void init_meta(HgMeta *m, Relation index)
{
	memset(m, 0, sizeof *m);
	m->magic = HG_MAGIC;
	m->version = HG_VERSION;
	m->m = (uint32)hg_opt_m(index);
	m->efc = (uint32)hg_opt_efc(index);
	m->c = 1.0;
	m->entry = HG_NONE;
	m->max_level = -1;
	m->insert_page = InvalidBlockNumber;
	m->rng = 0x68796462ULL;
}

static void write_meta(Relation index, ForkNumber fork, const HgMeta *m)
{
	Buffer b = new_page(index, fork);
	hg_meta_write_page(BufferGetPage(b), m);
	MarkBufferDirty(b);
	if (fork == INIT_FORKNUM)
		log_newpage_buffer(b, true);
	UnlockReleaseBuffer(b);
}

static void rewrite_meta(Relation index, const HgMeta *m)
{
	Buffer b = ReadBuffer(index, HG_META_BLKNO);
	LockBuffer(b, BUFFER_LOCK_EXCLUSIVE);
	hg_meta_write_page(BufferGetPage(b), m);
	MarkBufferDirty(b);
	UnlockReleaseBuffer(b);
}

static void mem_graph_init(mem_graph *mg, Relation index)
{
	memset(mg, 0, sizeof *mg);
	mg->ctx = AllocSetContextCreate(CurrentMemoryContext, "hydb_hnsw build",
					ALLOCSET_DEFAULT_SIZES);
	mg->tmp = AllocSetContextCreate(CurrentMemoryContext, "hydb_hnsw build row",
					ALLOCSET_DEFAULT_SIZES);
	mg->index = index;
	init_meta(&mg->meta, index);
	mg->g.m = (int)mg->meta.m;
	mg->g.c = 1.0;
	mg->g.keys = mem_keys;
	mg->g.links = mem_links;
	mg->g.vector = mem_vector;
	mg->g.set_links = mem_set_links;
	MemoryContext old = MemoryContextSwitchTo(mg->ctx);
	hg_search_init(&mg->search, mg->meta.efc);
	mg->links = palloc0(sizeof(hg_node) * HG_MAX_M * HG_MAX_LEVEL);
	MemoryContextSwitchTo(old);
}

IndexBuildResult *hg_build(Relation heap, Relation index, struct IndexInfo *info)
{
	mem_graph mg;
	BlockNumber npages;
	IndexBuildResult *r = palloc0(sizeof *r);
	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	mem_graph_init(&mg, index);
	write_meta(index, MAIN_FORKNUM, &mg.meta);
	r->heap_tuples = table_index_build_scan(heap, index, info, true, true,
						build_callback, &mg, NULL);
	hg_node *at = place_all(&mg, &npages);
	write_elements(&mg, at);
	if (mg.meta.entry != HG_NONE)
		mg.meta.entry = at[mg.meta.entry];
	mg.meta.nodes = mg.n;
	mg.meta.insert_page = npages - 1;
	rewrite_meta(index, &mg.meta);
	if (RelationNeedsWAL(index))
		log_newpage_range(index, MAIN_FORKNUM, 0, RelationGetNumberOfBlocks(index), true);
	r->index_tuples = mg.reltuples;
	MemoryContextDelete(mg.tmp);
	MemoryContextDelete(mg.ctx);
	return r;
}

void hg_buildempty(Relation index)
{
	HgMeta m;
	init_meta(&m, index);
	write_meta(index, INIT_FORKNUM, &m);
}
