/*
 * hnsw_cache.c - a backend's copy of the rows and lists its walks read.
 *
 * Reading a row from its page costs a buffer lookup, a pin, a share lock
 * and a cache miss on the page: several times the key itself (measured:
 * about 2 us a row against 0.3 us for the 768-dimensional key). A row's
 * half-precision copy never changes once written (VACUUM only flags
 * elements, links change in place, nothing moves), so a backend may keep
 * the copies it has read, as the library keeps its compact copy mapped.
 * The copies belong to one build of one index: the key is the relation's
 * file number and the build's random id in the metapage, which every
 * CREATE INDEX, REINDEX and TRUNCATE rewrite. The cache stops growing at
 * hydb.cache_mb; deleted flags and far rows are always read from pages.
 *
 * Layer-0 lists do change: an insert links back to its neighbours and
 * VACUUM repairs lists. Every writer bumps the metapage's links_gen after
 * its last list change, under the update lock, and a scan reads the
 * metapage first; a list is used only when it was read under the
 * generation the scan saw. A list read while a writer was at work is
 * stored under the generation from before the writer's bump, so the next
 * scan, which sees the bump, reads it again. Standbys replay the same
 * records in the same order, so the rule holds there too.
 */
#include "hydb_pg.h"

#include "utils/memutils.h"

int hydb_cache_mb = 256;

typedef struct row_cache {
	Oid relnode;
	uint64 build_id;
	int dim, nl;            /* row length, list capacity (2m + tree) */
	size_t cap, count, max; /* slots, rows held, rows allowed */
	uint64 *keys;           /* node + 1, 0 = empty */
	uint32 *slot;           /* row number of each key */
	uint16 *rows;
	hg_node *lists;         /* per row: nl layer-0 and tree links */
	uint16 *nlist;          /* per row: their count */
	uint32 *lgen;           /* per row: links_gen + 1 they were read under */
} row_cache;

static row_cache *cache;

static void cache_drop(void)
{
	if (!cache)
		return;
	pfree(cache->keys);
	pfree(cache->slot);
	pfree(cache->rows);
	pfree(cache->lists);
	pfree(cache->nlist);
	pfree(cache->lgen);
	pfree(cache);
	cache = NULL;
}

static void *huge_zero(size_t bytes)
{
	void *p = MemoryContextAllocHuge(TopMemoryContext, bytes);
	memset(p, 0, bytes);
	return p;
}

/* The cache for this index build, made or replaced as needed; NULL when
 * caching is off or a row would not fit. */
static row_cache *cache_for(Relation index, const hg_cache_key *k)
{
	int nl = 2 * k->m + HG_TREE;
	size_t rowbytes = sizeof(uint16) * k->dim + sizeof(hg_node) * nl + 32;
	size_t max = ((size_t)hydb_cache_mb << 20) / rowbytes;
	if (cache && cache->relnode == index->rd_node.relNode &&
	    cache->build_id == k->build_id && cache->dim == k->dim && cache->nl == nl)
		return cache;
	cache_drop();
	if (max < 64)
		return NULL;
	cache = MemoryContextAllocZero(TopMemoryContext, sizeof *cache);
	cache->relnode = index->rd_node.relNode;
	cache->build_id = k->build_id;
	cache->dim = k->dim;
	cache->nl = nl;
	cache->max = max;
	cache->cap = 1;
	while (cache->cap < max * 2)
		cache->cap <<= 1;
	cache->keys = huge_zero(sizeof(uint64) * cache->cap);
	cache->slot = MemoryContextAllocHuge(TopMemoryContext, sizeof(uint32) * cache->cap);
	cache->rows = MemoryContextAllocHuge(TopMemoryContext, sizeof(uint16) * k->dim * max);
	cache->lists = MemoryContextAllocHuge(TopMemoryContext, sizeof(hg_node) * nl * max);
	cache->nlist = MemoryContextAllocHuge(TopMemoryContext, sizeof(uint16) * max);
	cache->lgen = huge_zero(sizeof(uint32) * max);
	return cache;
}

static inline size_t mix(uint64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x;
}

/* The row number of n, or -1; *at receives the probe's last slot. */
static inline int64 find(const row_cache *c, hg_node n, size_t *at)
{
	size_t i;
	for (i = mix(n) & (c->cap - 1); c->keys[i]; i = (i + 1) & (c->cap - 1))
		if (c->keys[i] == n + 1)
			return c->slot[i];
	*at = i;
	return -1;
}

/* n's row number, added with its row when missing; -1 when full. */
static int64 find_or_add(row_cache *c, hg_node n, const uint16 *half)
{
	size_t at;
	int64 r = find(c, n, &at);
	if (r >= 0 || c->count >= c->max)
		return r;
	c->keys[at] = n + 1;
	c->slot[at] = (uint32)c->count;
	memcpy(c->rows + c->count * c->dim, half, sizeof(uint16) * c->dim);
	c->lgen[c->count] = 0;
	return (int64)c->count++;
}

const uint16 *hg_cache_get(Relation index, const hg_cache_key *k, hg_node n)
{
	row_cache *c = cache_for(index, k);
	size_t at;
	int64 r = c ? find(c, n, &at) : -1;
	return r >= 0 ? c->rows + (size_t)r * c->dim : NULL;
}

void hg_cache_put(Relation index, const hg_cache_key *k, hg_node n,
		  const uint16 *half)
{
	row_cache *c = cache_for(index, k);
	if (c)
		(void)find_or_add(c, n, half);
}

int hg_cache_links(Relation index, const hg_cache_key *k, hg_node n, hg_node *out)
{
	row_cache *c = cache_for(index, k);
	size_t at;
	int64 r = c ? find(c, n, &at) : -1;
	if (r < 0 || c->lgen[r] != k->links_gen + 1)
		return -1;
	memcpy(out, c->lists + (size_t)r * c->nl, sizeof(hg_node) * c->nlist[r]);
	return c->nlist[r];
}

void hg_cache_put_links(Relation index, const hg_cache_key *k, hg_node n,
			const uint16 *half, const hg_node *links, int count)
{
	row_cache *c = cache_for(index, k);
	int64 r = c && count <= c->nl ? find_or_add(c, n, half) : -1;
	if (r < 0)
		return;
	memcpy(c->lists + (size_t)r * c->nl, links, sizeof(hg_node) * count);
	c->nlist[r] = (uint16)count;
	c->lgen[r] = k->links_gen + 1;
}
