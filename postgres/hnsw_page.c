/*
 * hnsw_page.c - the index in PostgreSQL pages.
 *
 * Block 0 is the metapage; every other block holds elements, each one heap
 * row's vector with its links, written whole so that a scan never sees an
 * element without links. Every change after the build goes through generic
 * WAL records, which is what lets crash recovery and standbys replay it
 * without a resource manager of our own.
 */
#include "hydb_pg.h"

#include "access/generic_xlog.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"

static inline size_t align8(size_t x) { return (x + 7) & ~(size_t)7; }

static size_t links_offset(int dim, int level)
{
	return align8(sizeof(HgElement) + sizeof(uint16) * dim +
		      sizeof(uint16) * (level + 1));
}

size_t hg_element_size(int dim, int m, int level)
{
	return links_offset(dim, level) + sizeof(uint64) * (2 * m + HG_TREE + level * m);
}

uint16 *hg_elem_half(HgElement *e)
{
	return (uint16 *)((char *)e + sizeof(HgElement));
}

uint16 *hg_elem_counts(HgElement *e, int dim)
{
	return hg_elem_half(e) + dim;
}

/* Layer 0's 2m links first, then the tree links, then m for each upper
 * layer. */
uint64 *hg_elem_links(HgElement *e, int dim, int m, int level)
{
	uint64 *l = (uint64 *)((char *)e + links_offset(dim, e->level));
	return level == 0 ? l : l + 2 * m + HG_TREE + (level - 1) * m;
}

uint64 *hg_elem_tree(HgElement *e, int dim, int m)
{
	return hg_elem_links(e, dim, m, 0) + 2 * m;
}

HgMeta *hg_meta_page(Page p)
{
	return (HgMeta *)PageGetContents(p);
}

void hg_read_meta(Relation index, HgMeta *out)
{
	Buffer b = ReadBuffer(index, HG_META_BLKNO);
	LockBuffer(b, BUFFER_LOCK_SHARE);
	*out = *hg_meta_page(BufferGetPage(b));
	UnlockReleaseBuffer(b);
	if (out->magic != HG_MAGIC || out->version != HG_VERSION)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" is not a hydb_hnsw index of version %d",
				       RelationGetRelationName(index), HG_VERSION)));
}

/* The metapage's contents end at pd_lower, so that WAL images skip the
 * hole after it. */
void hg_meta_write_page(Page p, const HgMeta *m)
{
	*hg_meta_page(p) = *m;
	((PageHeader)p)->pd_lower = (char *)hg_meta_page(p) + sizeof(HgMeta) - (char *)p;
}

void hg_update_meta(Relation index, const HgMeta *m)
{
	Buffer b = ReadBuffer(index, HG_META_BLKNO);
	GenericXLogState *st;
	LockBuffer(b, BUFFER_LOCK_EXCLUSIVE);
	st = GenericXLogStart(index);
	hg_meta_write_page(GenericXLogRegisterBuffer(st, b, 0), m);
	GenericXLogFinish(st);
	UnlockReleaseBuffer(b);
}

/* The element a node names, on a locked page; ERROR when there is none. */
HgElement *hg_page_element(Relation index, Page page, hg_node n)
{
	OffsetNumber off = hg_node_off(n);
	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page))
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" links to missing element (%u,%u)",
				       RelationGetRelationName(index), hg_node_block(n), off)));
	HgElement *e = (HgElement *)PageGetItem(page, PageGetItemId(page, off));
	if (e->kind != HG_KIND_ELEMENT)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" links to (%u,%u), which is not an element",
				       RelationGetRelationName(index), hg_node_block(n), off)));
	return e;
}

HgVector *hg_page_vector(Relation index, Page page, hg_node n, int dim)
{
	OffsetNumber off = hg_node_off(n);
	ItemId id;
	HgVector *v;
	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page))
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\": missing vector (%u,%u)",
				       RelationGetRelationName(index), hg_node_block(n), off)));
	id = PageGetItemId(page, off);
	v = (HgVector *)PageGetItem(page, id);
	if (v->kind != HG_KIND_VECTOR || ItemIdGetLength(id) != HG_VECTOR_SIZE(dim))
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\": (%u,%u) is not a vector of %d dimensions",
				       RelationGetRelationName(index), hg_node_block(n), off, dim)));
	return v;
}

void hg_read_vector(Relation index, hg_node vec, int dim, float *out)
{
	Buffer b = ReadBuffer(index, hg_node_block(vec));
	LockBuffer(b, BUFFER_LOCK_SHARE);
	memcpy(out, hg_page_vector(index, BufferGetPage(b), vec, dim)->x, sizeof(float) * dim);
	UnlockReleaseBuffer(b);
}

static bool try_add(Relation index, Buffer b, void *e, size_t size,
		    hg_node *out, bool fresh)
{
	GenericXLogState *st = GenericXLogStart(index);
	Page p = GenericXLogRegisterBuffer(st, b, fresh ? GENERIC_XLOG_FULL_IMAGE : 0);
	OffsetNumber off;
	if (fresh)
		PageInit(p, BLCKSZ, 0);
	if (PageGetFreeSpace(p) < MAXALIGN(size)) {
		GenericXLogAbort(st);
		return false;
	}
	off = PageAddItem(p, (Item)e, size, InvalidOffsetNumber, false, false);
	if (off == InvalidOffsetNumber)
		elog(ERROR, "failed to add element to index \"%s\"", RelationGetRelationName(index));
	GenericXLogFinish(st);
	*out = hg_tid_node(BufferGetBlockNumber(b), off);
	return true;
}

/* New elements go to the last page that took one, else to a new page.
 * Writers hold HG_UPDATE_LOCK, so the page cannot fill under us. */
hg_node hg_place_element(Relation index, BlockNumber page, void *e,
			 size_t size)
{
	hg_node n;
	Buffer b;
	if (page != InvalidBlockNumber && page != HG_META_BLKNO &&
	    page < RelationGetNumberOfBlocks(index)) {
		b = ReadBuffer(index, page);
		LockBuffer(b, BUFFER_LOCK_EXCLUSIVE);
		bool ok = try_add(index, b, e, size, &n, false);
		UnlockReleaseBuffer(b);
		if (ok)
			return n;
	}
	LockRelationForExtension(index, ExclusiveLock);
	b = ReadBuffer(index, P_NEW);
	LockBuffer(b, BUFFER_LOCK_EXCLUSIVE);
	UnlockRelationForExtension(index, ExclusiveLock);
	if (!try_add(index, b, e, size, &n, true))
		elog(ERROR, "element of %zu bytes does not fit an empty page", size);
	UnlockReleaseBuffer(b);
	return n;
}

void hg_set_links(Relation index, int dim, int m, hg_node n, int level,
		  const hg_node *links, int count)
{
	Buffer b = ReadBuffer(index, hg_node_block(n));
	LockBuffer(b, BUFFER_LOCK_EXCLUSIVE);
	GenericXLogState *st = GenericXLogStart(index);
	Page p = GenericXLogRegisterBuffer(st, b, 0);
	HgElement *e = hg_page_element(index, p, n);
	memcpy(hg_elem_links(e, dim, m, level), links, sizeof(hg_node) * count);
	hg_elem_counts(e, dim)[level] = (uint16)count;
	GenericXLogFinish(st);
	UnlockReleaseBuffer(b);
}

/* ---- the page graph for the shared walk --------------------------------- */

typedef struct page_graph {
	hg_graph g;
	Relation index;
	hg_cache_key key;
	bool cached; /* scans: rows and lists from the backend's cache */
} page_graph;

/* A far row's key, from its float32 vector. */
static double far_key(Relation index, const hydb_kquery *q, hg_node vec, int dim)
{
	float *row = palloc(sizeof(float) * dim);
	hg_read_vector(index, vec, dim, row);
	double k = hydb_key_f32(q, row);
	pfree(row);
	return k;
}

/* Keys from the half-precision copies. The pages of a batch are pinned
 * and share-locked together so that the library's batch kernel can fetch
 * each row while it measures the previous one (the rows lie a page apart:
 * a cache miss each). Writers lock one page at a time, so holding several
 * share locks cannot deadlock. A far row's key comes from its float32
 * vector once the batch is released. */
#define KEYS_CHUNK (2 * HG_MAX_M + HG_TREE + 1)
static void keys_chunk(hg_graph *g, const hydb_kquery *q, const hg_node *n,
		       int count, double *keys, bool *deleted)
{
	Relation index = ((page_graph *)g)->index;
	Buffer bufs[2 * HG_MAX_M + HG_TREE + 1];
	const uint16 *rows[2 * HG_MAX_M + HG_TREE + 1];
	hg_node far[2 * HG_MAX_M + HG_TREE + 1];
	int idx[2 * HG_MAX_M + HG_TREE + 1], nb = 0, nh = 0;
	double hk[2 * HG_MAX_M + HG_TREE + 1];
	const hg_cache_key *ck = &((page_graph *)g)->key;
	for (int i = 0; i < count; i++) {
		BlockNumber blk = hg_node_block(n[i]);
		const uint16 *hit = ((page_graph *)g)->cached ?
			hg_cache_get(index, ck, n[i]) : NULL;
		/* A cached row's deleted flag is not known here: the scan
		 * reads it with the heap TID before returning the row. */
		if (hit) {
			if (deleted)
				deleted[i] = false;
			far[i] = HG_NONE;
			idx[nh] = i;
			rows[nh++] = hit;
			continue;
		}
		int j = 0;
		while (j < nb && BufferGetBlockNumber(bufs[j]) != blk)
			j++;
		if (j == nb) {
			bufs[nb] = ReadBuffer(index, blk);
			LockBuffer(bufs[nb++], BUFFER_LOCK_SHARE);
		}
		HgElement *e = hg_page_element(index, BufferGetPage(bufs[j]), n[i]);
		if (deleted)
			deleted[i] = (e->flags & HG_DELETED) != 0;
		far[i] = e->flags & HG_FAR ? e->vec : HG_NONE;
		if (far[i] == HG_NONE) {
			idx[nh] = i;
			rows[nh++] = hg_elem_half(e);
			if (((page_graph *)g)->cached)
				hg_cache_put(index, ck, n[i], hg_elem_half(e));
		}
	}
	if (nh)
		hydb_keys_f16(q, rows, (size_t)nh, hk);
	for (int j = 0; j < nb; j++)
		UnlockReleaseBuffer(bufs[j]);
	for (int j = 0; j < nh; j++)
		keys[idx[j]] = hk[j];
	for (int i = 0; i < count; i++)
		if (far[i] != HG_NONE)
			keys[i] = far_key(index, q, far[i], g->dim);
}

static void page_keys(hg_graph *g, const hydb_kquery *q, const hg_node *n,
		      int count, double *keys, bool *deleted)
{
	for (int i = 0; i < count; i += KEYS_CHUNK)
		keys_chunk(g, q, n + i, Min(KEYS_CHUNK, count - i), keys + i,
			   deleted ? deleted + i : NULL);
}

/* Layer 0's links and the tree links, as the walk reads them; a scan
 * keeps them with the row (hnsw_cache.c says when they are still valid). */
static int walk0_links(page_graph *pg, hg_node n, const HgElement *e,
		       hg_node *out, int count)
{
	if (e->ntree <= HG_TREE) {
		memcpy(out + count, hg_elem_tree((HgElement *)e, pg->g.dim, pg->g.m),
		       sizeof(hg_node) * e->ntree);
		count += e->ntree;
	}
	if (pg->cached && !(e->flags & HG_FAR))
		hg_cache_put_links(pg->index, &pg->key, n, hg_elem_half((HgElement *)e),
				   out, count);
	return count;
}

static int page_links(hg_graph *g, hg_node n, int level, hg_node *out)
{
	page_graph *pg = (page_graph *)g;
	Relation index = pg->index;
	int count = 0, walk0 = level == HG_WALK0;
	if (walk0 && pg->cached && (count = hg_cache_links(index, &pg->key, n, out)) >= 0)
		return count;
	count = 0;
	Buffer b = ReadBuffer(index, hg_node_block(n));
	LockBuffer(b, BUFFER_LOCK_SHARE);
	HgElement *e = hg_page_element(index, BufferGetPage(b), n);
	if (walk0)
		level = 0;
	if (level <= e->level) {
		count = hg_elem_counts(e, g->dim)[level];
		if (count > (level ? g->m : 2 * g->m))
			ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
					errmsg("index \"%s\": element (%u,%u) has %d links on layer %d",
					       RelationGetRelationName(index), hg_node_block(n),
					       hg_node_off(n), count, level)));
		memcpy(out, hg_elem_links(e, g->dim, g->m, level), sizeof(hg_node) * count);
	}
	if (walk0)
		count = walk0_links(pg, n, e, out, count);
	UnlockReleaseBuffer(b);
	return count;
}

static int page_tree(hg_graph *g, hg_node n, hg_node *out)
{
	Relation index = ((page_graph *)g)->index;
	Buffer b = ReadBuffer(index, hg_node_block(n));
	LockBuffer(b, BUFFER_LOCK_SHARE);
	HgElement *e = hg_page_element(index, BufferGetPage(b), n);
	int count = Min(e->ntree, HG_TREE);
	memcpy(out, hg_elem_tree(e, g->dim, g->m), sizeof(hg_node) * count);
	UnlockReleaseBuffer(b);
	return count;
}

void hg_set_tree(Relation index, int dim, int m, hg_node n, const hg_node *links,
		 int count)
{
	Buffer b = ReadBuffer(index, hg_node_block(n));
	LockBuffer(b, BUFFER_LOCK_EXCLUSIVE);
	GenericXLogState *st = GenericXLogStart(index);
	Page p = GenericXLogRegisterBuffer(st, b, 0);
	HgElement *e = hg_page_element(index, p, n);
	memcpy(hg_elem_tree(e, dim, m), links, sizeof(hg_node) * count);
	e->ntree = (uint8)count;
	GenericXLogFinish(st);
	UnlockReleaseBuffer(b);
}

static int32 page_rank(hg_graph *g, hg_node n)
{
	Relation index = ((page_graph *)g)->index;
	Buffer b = ReadBuffer(index, hg_node_block(n));
	LockBuffer(b, BUFFER_LOCK_SHARE);
	int32 r = hg_page_element(index, BufferGetPage(b), n)->rank;
	UnlockReleaseBuffer(b);
	return r;
}

static void page_set_tree(hg_graph *g, hg_node n, const hg_node *links, int count)
{
	hg_set_tree(((page_graph *)g)->index, g->dim, g->m, n, links, count);
}

/* The vector the selection rule measures from: decoded from the walk's
 * copy, as the library does, or read in float32 for a far row. */
static void page_vector(hg_graph *g, hg_node n, float *out)
{
	Relation index = ((page_graph *)g)->index;
	Buffer b = ReadBuffer(index, hg_node_block(n));
	LockBuffer(b, BUFFER_LOCK_SHARE);
	HgElement *e = hg_page_element(index, BufferGetPage(b), n);
	bool far = (e->flags & HG_FAR) != 0;
	hg_node vec = e->vec;
	if (!far)
		hydb_f16_to_f32_n(out, hg_elem_half(e), g->dim);
	UnlockReleaseBuffer(b);
	if (far)
		hg_read_vector(index, vec, g->dim, out);
}

static void page_set_links(hg_graph *g, hg_node n, int level,
			   const hg_node *links, int count)
{
	hg_set_links(((page_graph *)g)->index, g->dim, g->m, n, level, links, count);
}

void hg_page_graph_cached(hg_graph *g)
{
	((page_graph *)g)->cached = hydb_cache_mb > 0;
}

hg_graph *hg_page_graph(Relation index, const HgMeta *meta)
{
	page_graph *pg = palloc0(sizeof *pg);
	pg->g.dim = (int)meta->dim;
	pg->g.m = (int)meta->m;
	pg->g.c = meta->c;
	pg->g.keys = page_keys;
	pg->g.links = page_links;
	pg->g.vector = page_vector;
	pg->g.set_links = page_set_links;
	pg->g.tree = page_tree;
	pg->g.rank = page_rank;
	pg->g.set_tree = page_set_tree;
	pg->index = index;
	pg->key.build_id = meta->build_id;
	pg->key.dim = (int)meta->dim;
	pg->key.m = (int)meta->m;
	pg->key.links_gen = meta->links_gen;
	return &pg->g;
}
