/*
 * hnsw_cache.c - a backend's copy of the half-precision rows its walks read.
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
 */
#include "hydb_pg.h"

#include "utils/memutils.h"

int hydb_cache_mb = 256;

typedef struct row_cache {
	Oid relnode;
	uint64 build_id;
	int dim;
	size_t cap, count, max; /* slots, rows held, rows allowed */
	uint64 *keys;           /* node + 1, 0 = empty */
	uint32 *slot;           /* row number of each key */
	uint16 *rows;
} row_cache;

static row_cache *cache;

static void cache_drop(void)
{
	if (!cache)
		return;
	pfree(cache->keys);
	pfree(cache->slot);
	pfree(cache->rows);
	pfree(cache);
	cache = NULL;
}

/* The cache for this index build, made or replaced as needed; NULL when
 * caching is off or a row would not fit. */
static row_cache *cache_for(Relation index, uint64 build_id, int dim)
{
	size_t rowbytes = sizeof(uint16) * dim;
	size_t max = ((size_t)hydb_cache_mb << 20) / (rowbytes + 24);
	if (cache && cache->relnode == index->rd_node.relNode &&
	    cache->build_id == build_id && cache->dim == dim)
		return cache;
	cache_drop();
	if (max < 64)
		return NULL;
	cache = MemoryContextAllocZero(TopMemoryContext, sizeof *cache);
	cache->relnode = index->rd_node.relNode;
	cache->build_id = build_id;
	cache->dim = dim;
	cache->max = max;
	cache->cap = 1;
	while (cache->cap < max * 2)
		cache->cap <<= 1;
	cache->keys = MemoryContextAllocHuge(TopMemoryContext, sizeof(uint64) * cache->cap);
	memset(cache->keys, 0, sizeof(uint64) * cache->cap);
	cache->slot = MemoryContextAllocHuge(TopMemoryContext, sizeof(uint32) * cache->cap);
	cache->rows = MemoryContextAllocHuge(TopMemoryContext, rowbytes * max);
	return cache;
}

static inline size_t mix(uint64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x;
}

const uint16 *hg_cache_get(Relation index, uint64 build_id, int dim, hg_node n)
{
	row_cache *c = cache_for(index, build_id, dim);
	if (!c)
		return NULL;
	for (size_t i = mix(n) & (c->cap - 1); c->keys[i]; i = (i + 1) & (c->cap - 1))
		if (c->keys[i] == n + 1)
			return c->rows + (size_t)c->slot[i] * dim;
	return NULL;
}

void hg_cache_put(Relation index, uint64 build_id, int dim, hg_node n,
		  const uint16 *half)
{
	row_cache *c = cache_for(index, build_id, dim);
	size_t i;
	if (!c || c->count >= c->max)
		return;
	for (i = mix(n) & (c->cap - 1); c->keys[i]; i = (i + 1) & (c->cap - 1))
		if (c->keys[i] == n + 1)
			return;
	c->keys[i] = n + 1;
	c->slot[i] = (uint32)c->count;
	memcpy(c->rows + c->count * dim, half, sizeof(uint16) * dim);
	c->count++;
}
