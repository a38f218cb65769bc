/*
 * hnsw_build.c - CREATE INDEX: the graph is built in memory while the heap
 * is scanned (the same walk and selection as inserts, without page locks or
 * WAL per change), then written page by page and WAL-logged as whole pages
 * once, which is what makes a build cheaper than row-by-row inserts.
 */
#include "hydb_pg.h"

#include "access/tableam.h"
#include "index/hnsw.h"
#include "access/xloginsert.h"
#include "catalog/index.h"
#include "miscadmin.h"
#include "storage/bufpage.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

typedef struct mem_graph {
	hg_graph g;
	float *vecs;           /* n rows of dim floats */
	uint16 *half;          /* the same in half precision, walked */
	uint8 *far;            /* row beyond half precision: walked in float32 */
	ItemPointerData *tids;
	uint8 *levels;
	uint32 *l0;            /* n rows of 2m links */
	uint16 *l0n;
	uint32 *tree;          /* n rows of HG_TREE tree links */
	uint8 *ntree;
	int32 *rank;
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

/* As on pages: the half-precision copy, float32 for far rows. */
static void mem_keys(hg_graph *g, const hydb_kquery *q, const hg_node *n,
		     int count, double *keys, bool *deleted)
{
	mem_graph *mg = (mem_graph *)g;
	const uint16 *rows[2 * HG_MAX_M + HG_TREE + 1];
	double hk[2 * HG_MAX_M + HG_TREE + 1];
	int idx[2 * HG_MAX_M + HG_TREE + 1], nh = 0;
	for (int i = 0; i < count; i++) {
		if (deleted)
			deleted[i] = false;
		if (mg->far[n[i]]) {
			keys[i] = hydb_key_f32(q, mg->vecs + n[i] * (size_t)g->dim);
			continue;
		}
		idx[nh] = i;
		rows[nh++] = mg->half + n[i] * (size_t)g->dim;
	}
	if (nh)
		hydb_keys_f16(q, rows, (size_t)nh, hk);
	for (int j = 0; j < nh; j++)
		keys[idx[j]] = hk[j];
}

static int mem_links(hg_graph *g, hg_node n, int level, hg_node *out)
{
	mem_graph *mg = (mem_graph *)g;
	const uint32 *l;
	int count, extra = 0;
	if (level == HG_WALK0) {
		level = 0;
		extra = mg->ntree[n];
		for (int i = 0; i < extra; i++)
			out[mg->l0n[n] + i] = mg->tree[n * HG_TREE + i];
	}
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
	return count + extra;
}

static int32 mem_rank(hg_graph *g, hg_node n)
{
	return ((mem_graph *)g)->rank[n];
}

static int mem_tree(hg_graph *g, hg_node n, hg_node *out)
{
	mem_graph *mg = (mem_graph *)g;
	for (int i = 0; i < mg->ntree[n]; i++)
		out[i] = mg->tree[n * HG_TREE + i];
	return mg->ntree[n];
}

static void mem_set_tree(hg_graph *g, hg_node n, const hg_node *links, int count)
{
	mem_graph *mg = (mem_graph *)g;
	for (int i = 0; i < count; i++)
		mg->tree[n * HG_TREE + i] = (uint32)links[i];
	mg->ntree[n] = (uint8)count;
}

static void mem_vector(hg_graph *g, hg_node n, float *out)
{
	mem_graph *mg = (mem_graph *)g;
	if (mg->far[n])
		memcpy(out, mg->vecs + n * (size_t)g->dim, sizeof(float) * g->dim);
	else
		hydb_f16_to_f32_n(out, mg->half + n * (size_t)g->dim, g->dim);
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
	mg->half = mg->cap ? repalloc_huge(mg->half, cap * dim * sizeof(uint16))
			   : MemoryContextAllocHuge(mg->ctx, cap * dim * sizeof(uint16));
	mg->far = mg->cap ? repalloc_huge(mg->far, cap) : MemoryContextAllocHuge(mg->ctx, cap);
	mg->l0 = mg->cap ? repalloc_huge(mg->l0, cap * hg_m0(mg->g.m) * sizeof(uint32))
			 : MemoryContextAllocHuge(mg->ctx, cap * hg_m0(mg->g.m) * sizeof(uint32));
	mg->tids = mg->cap ? repalloc_huge(mg->tids, cap * sizeof(ItemPointerData))
			   : MemoryContextAllocHuge(mg->ctx, cap * sizeof(ItemPointerData));
	mg->levels = mg->cap ? repalloc_huge(mg->levels, cap) : MemoryContextAllocHuge(mg->ctx, cap);
	mg->tree = mg->cap ? repalloc_huge(mg->tree, cap * HG_TREE * sizeof(uint32))
			   : MemoryContextAllocHuge(mg->ctx, cap * HG_TREE * sizeof(uint32));
	mg->ntree = mg->cap ? repalloc_huge(mg->ntree, cap) : MemoryContextAllocHuge(mg->ctx, cap);
	mg->rank = mg->cap ? repalloc_huge(mg->rank, cap * sizeof(int32))
			   : MemoryContextAllocHuge(mg->ctx, cap * sizeof(int32));
	mg->l0n = mg->cap ? repalloc_huge(mg->l0n, cap * sizeof(uint16))
			  : MemoryContextAllocHuge(mg->ctx, cap * sizeof(uint16));
	mg->up = mg->cap ? repalloc_huge(mg->up, cap * sizeof(uint32 *))
			 : MemoryContextAllocHuge(mg->ctx, cap * sizeof(uint32 *));
	mg->cap = cap;
}

/* Size limit: the largest element (top level) and the float32 vector must
 * each fit an empty page. */
void hg_check_fits(Relation index, int dim, int m)
{
	size_t need = Max(MAXALIGN(hg_element_size(dim, m, HG_MAX_LEVEL - 1)),
			  MAXALIGN(HG_VECTOR_SIZE(dim)));
	if (need > BLCKSZ - SizeOfPageHeaderData - sizeof(ItemIdData))
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("lorentz of %d dimensions is too large for a hydb_hnsw index with m = %d",
				       dim, m)));
}

/* A heap row kept for the build; it is linked once the scan has kept them
 * all, in the library's order. */
static void mem_store(mem_graph *mg, const Lorentz *v, ItemPointer tid)
{
	HgMeta *m = &mg->meta;
	if (m->dim == 0) {
		hg_check_fits(mg->index, v->dim, (int)m->m);
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
	memcpy(mg->vecs + i * m->dim, v->x, sizeof(float) * m->dim);
	mg->far[i] = !hydb_half_fits(v->x, m->dim, m->c);
	if (mg->far[i])
		memset(mg->half + i * m->dim, 0, sizeof(uint16) * m->dim);
	else
		hydb_f32_to_f16(mg->half + i * m->dim, v->x, m->dim);
	mg->tids[i] = *tid;
}

/* Row i, the seq-th to be linked: its level, its lists and its neighbours'
 * lists back to it. Ranks follow the linking order, as inserts' do. */
static void mem_link(mem_graph *mg, hg_node i, size_t seq)
{
	HgMeta *m = &mg->meta;
	int level = hg_random_level(&m->rng, (int)m->m), counts[HG_MAX_LEVEL];
	mg->levels[i] = (uint8)level;
	mg->l0n[i] = 0;
	mg->ntree[i] = 0;
	mg->rank[i] = m->entry == HG_NONE || level > m->max_level ? (int32)--m->min_rank
								    : (int32)seq + 1;
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
	if (level <= m->max_level)
		hg_hang(&mg->g, i, mg->rank[i], mg->links[0], counts[0]);
	if (level > m->max_level) {
		/* The old entry stays reachable from the new one. */
		mg->tree[i * HG_TREE] = (uint32)m->entry;
		mg->ntree[i] = 1;
		m->entry = i;
		m->max_level = level;
	}
}

/* Every kept row linked nearest the origin first, the order in which the
 * library inserts a batch (hydb_hnsw_radius_order: a point's neighbours
 * mostly lie nearer the origin, and linked after them it gets their back
 * links; at 20,000 x 768 HySAC-like rows, heap order gave recall@10 0.903
 * at ef 16 against the library's 0.953). */
static void mem_link_all(mem_graph *mg)
{
	size_t n = mg->n, dim = (size_t)mg->g.dim;
	float *radius = MemoryContextAllocHuge(mg->tmp, sizeof(float) * Max(n, 1));
	uint32 *order = MemoryContextAllocHuge(mg->tmp, sizeof(uint32) * Max(n, 1));
	for (size_t i = 0; i < n; i++)
		radius[i] = (float)hydb_lorentz_radius(mg->vecs + i * dim, dim, mg->g.c);
	if (hydb_hnsw_radius_order(radius, n, order) < 0)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
				errmsg("hydb_hnsw build: %s", hydb_last_error())));
	MemoryContext row = AllocSetContextCreate(mg->ctx, "hydb_hnsw build link",
						  ALLOCSET_DEFAULT_SIZES);
	for (size_t seq = 0; seq < n; seq++) {
		MemoryContext old = MemoryContextSwitchTo(row);
		mem_link(mg, order[seq], seq);
		MemoryContextSwitchTo(old);
		MemoryContextReset(row);
		if (seq % 1024 == 0)
			CHECK_FOR_INTERRUPTS();
	}
	MemoryContextDelete(row);
	MemoryContextReset(mg->tmp);
}

static void build_callback(Relation index, ItemPointer tid, Datum *values,
			   bool *isnull, bool alive, void *state)
{
	mem_graph *mg = state;
	MemoryContext old;
	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(mg->tmp);
	mem_store(mg, DatumGetLorentz(values[0]), tid);
	MemoryContextSwitchTo(old);
	MemoryContextReset(mg->tmp);
	mg->reltuples++;
}

/* ---- writing the pages -------------------------------------------------- */

/* Where each row's vector and element go: packed in order, as PageAddItem
 * would place them, so that links are written as final TIDs in one pass. */
typedef struct packer {
	BlockNumber blk;
	size_t lower, upper;
	OffsetNumber off;
} packer;

static hg_node pack(packer *p, size_t size)
{
	size_t sz = MAXALIGN(size);
	if (p->lower + sizeof(ItemIdData) + sz > p->upper) {
		p->blk++;
		p->lower = SizeOfPageHeaderData;
		p->upper = BLCKSZ;
		p->off = 0;
	}
	p->lower += sizeof(ItemIdData);
	p->upper -= sz;
	return hg_tid_node(p->blk, ++p->off);
}

static hg_node *place_all(mem_graph *mg, hg_node **vat, BlockNumber *npages)
{
	size_t bytes = sizeof(hg_node) * Max(mg->n, 1);
	hg_node *at = MemoryContextAllocHuge(mg->ctx, bytes);
	packer p = {1, SizeOfPageHeaderData, BLCKSZ, 0};
	*vat = MemoryContextAllocHuge(mg->ctx, bytes);
	for (size_t i = 0; i < mg->n; i++) {
		(*vat)[i] = pack(&p, HG_VECTOR_SIZE(mg->g.dim));
		at[i] = pack(&p, hg_element_size(mg->g.dim, mg->g.m, mg->levels[i]));
	}
	*npages = mg->n ? p.blk + 1 : 1;
	return at;
}

static HgElement *mem_element(mem_graph *mg, size_t i, const hg_node *at,
			      size_t *size)
{
	int level = mg->levels[i], dim = mg->g.dim, m = mg->g.m;
	hg_node links[2 * HG_MAX_M];
	HgElement *e = hg_new_element(dim, m, level, mg->vecs + i * (size_t)dim,
				      &mg->tids[i], mg->g.c, size);
	for (int l = 0; l <= level; l++) {
		int n = mem_links(&mg->g, i, l, links);
		uint64 *dst = hg_elem_links(e, dim, m, l);
		for (int j = 0; j < n; j++)
			dst[j] = at[links[j]];
		hg_elem_counts(e, dim)[l] = (uint16)n;
	}
	for (int j = 0; j < mg->ntree[i]; j++)
		hg_elem_tree(e, dim, m)[j] = at[mg->tree[i * HG_TREE + j]];
	e->ntree = mg->ntree[i];
	e->rank = mg->rank[i];
	return e;
}

static Buffer new_page(Relation index, ForkNumber fork)
{
	Buffer b = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(b, BUFFER_LOCK_EXCLUSIVE);
	PageInit(BufferGetPage(b), BLCKSZ, 0);
	return b;
}

static void add_planned(Buffer b, void *item, size_t size, hg_node want)
{
	if (BufferGetBlockNumber(b) != hg_node_block(want) ||
	    PageAddItem(BufferGetPage(b), (Item)item, size, InvalidOffsetNumber,
			false, false) != hg_node_off(want))
		elog(ERROR, "hydb_hnsw build: item not at its planned place (%u,%u)",
		     hg_node_block(want), hg_node_off(want));
}

static Buffer page_for(mem_graph *mg, Buffer b, hg_node want)
{
	if (BufferIsValid(b) && BufferGetBlockNumber(b) == hg_node_block(want))
		return b;
	if (BufferIsValid(b)) {
		MarkBufferDirty(b);
		UnlockReleaseBuffer(b);
	}
	return new_page(mg->index, MAIN_FORKNUM);
}

static void write_elements(mem_graph *mg, const hg_node *at, const hg_node *vat)
{
	Buffer b = InvalidBuffer;
	size_t size;
	for (size_t i = 0; i < mg->n; i++) {
		MemoryContext old = MemoryContextSwitchTo(mg->tmp);
		HgVector *v = hg_new_vector(mg->g.dim, mg->vecs + i * (size_t)mg->g.dim);
		b = page_for(mg, b, vat[i]);
		add_planned(b, v, HG_VECTOR_SIZE(mg->g.dim), vat[i]);
		HgElement *e = mem_element(mg, i, at, &size);
		e->vec = vat[i];
		b = page_for(mg, b, at[i]);
		add_planned(b, e, size, at[i]);
		MemoryContextSwitchTo(old);
		MemoryContextReset(mg->tmp);
		if (i % 1024 == 0)
			CHECK_FOR_INTERRUPTS();
	}
	if (BufferIsValid(b)) {
		MarkBufferDirty(b);
		UnlockReleaseBuffer(b);
	}
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
	if (!pg_strong_random(&m->build_id, sizeof m->build_id))
		m->build_id = (uint64)GetCurrentTimestamp() ^ ((uint64)MyProcPid << 32);
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
	mg->g.tree = mem_tree;
	mg->g.rank = mem_rank;
	mg->g.set_tree = mem_set_tree;
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
	mem_link_all(&mg);
	hg_node *vat;
	hg_node *at = place_all(&mg, &vat, &npages);
	write_elements(&mg, at, vat);
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
