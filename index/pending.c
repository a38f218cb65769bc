/*
 * pending.c - layer-0 records held in memory while inserts link nodes.
 *
 * Linking one node rewrites the lists of a dozen or more neighbours, and
 * without MDB_WRITEMAP every put expires the cached block pointers (a put
 * may spill dirty pages), so each distance after it paid two B-tree
 * lookups to find its vectors again. While a table is attached to the
 * operation, layer-0 reads and writes go to it instead; each touched record
 * is written once, in slot order, when the table is flushed. Anything that
 * reads the graph other than through hnsw_ctx (cursor scans, the search
 * threads' own contexts) must come after a flush.
 */
#include "index/hnsw_impl.h"

#include <stdlib.h>
#include <string.h>

struct pend_rec {
	uint32_t slot;
	struct hnsw_l0 r;
};

struct hnsw_pending {
	struct pend_rec *rec; /* insertion order */
	size_t n, cap;
	uint32_t *idx; /* open addressing: record index + 1, 0 = empty */
	size_t mask;
};

int hnsw_pending_init(struct hnsw_pending **out)
{
	struct hnsw_pending *p = calloc(1, sizeof *p);
	RETURN_ERROR_IF(!p, HYDB_ENOMEM, "index: no memory for pending lists");
	*out = p;
	return 0;
}

void hnsw_pending_free(struct hnsw_pending *p)
{
	if (!p)
		return;
	free(p->rec);
	free(p->idx);
	free(p);
}

static size_t hash_slot(uint32_t slot, size_t mask)
{
	return (size_t)((slot * 0x9e3779b1u) >> 7) & mask;
}

static void find_pos(const struct hnsw_pending *p, uint32_t slot, size_t *pos)
{
	size_t h = hash_slot(slot, p->mask);
	while (p->idx[h] && p->rec[p->idx[h] - 1].slot != slot)
		h = (h + 1) & p->mask;
	*pos = h;
}

struct hnsw_l0 *hnsw_pending_find(struct hnsw_pending *p, uint32_t slot)
{
	size_t h;
	if (!p->n)
		return NULL;
	find_pos(p, slot, &h);
	return p->idx[h] ? &p->rec[p->idx[h] - 1].r : NULL;
}

/* Keep the table at most half full: rebuild it at twice the size. */
static int rehash(struct hnsw_pending *p, size_t want)
{
	size_t size = 64;
	while (size < 2 * want)
		size *= 2;
	if (p->idx && size <= p->mask + 1)
		return 0;
	uint32_t *idx = calloc(size, sizeof *idx);
	RETURN_ERROR_IF(!idx, HYDB_ENOMEM, "index: no memory for pending lists");
	free(p->idx);
	p->idx = idx;
	p->mask = size - 1;
	for (size_t i = 0; i < p->n; i++) {
		size_t h;
		find_pos(p, p->rec[i].slot, &h);
		p->idx[h] = (uint32_t)i + 1;
	}
	return 0;
}

int hnsw_pending_put(struct hnsw_pending *p, uint32_t slot,
		     const struct hnsw_l0 *r)
{
	struct hnsw_l0 *e = hnsw_pending_find(p, slot);
	if (!e) {
		if (p->n == p->cap) {
			size_t cap = p->cap ? 2 * p->cap : 256;
			struct pend_rec *rec = realloc(p->rec, cap * sizeof *rec);
			RETURN_ERROR_IF(!rec, HYDB_ENOMEM,
					"index: no memory for pending lists");
			p->rec = rec;
			p->cap = cap;
		}
		FORWARD_IF_ERROR(rehash(p, p->n + 1));
		size_t h;
		find_pos(p, slot, &h);
		p->rec[p->n].slot = slot;
		p->idx[h] = (uint32_t)++p->n;
		e = &p->rec[p->n - 1].r;
	}
	hnsw_l0_copy(e, r);
	return 0;
}

static int rec_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct pend_rec *)a)->slot;
	uint32_t y = ((const struct pend_rec *)b)->slot;
	return (x > y) - (x < y);
}

/* Write every held record (slot order keeps the B-tree walk local); the
 * table stays attached, empty. */
int hnsw_pending_flush(struct hnsw_ctx *cx)
{
	struct hnsw_pending *p = cx->pend;
	int rc = 0;
	if (!p || !p->n)
		return 0;
	cx->pend = NULL;
	qsort(p->rec, p->n, sizeof *p->rec, rec_cmp);
	for (size_t i = 0; i < p->n && rc == 0; i++)
		rc = hnsw_l0_put(cx, p->rec[i].slot, &p->rec[i].r);
	memset(p->idx, 0, (p->mask + 1) * sizeof *p->idx);
	p->n = 0;
	cx->pend = p;
	return rc;
}
