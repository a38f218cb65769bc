/*
 * pending.c - layer-0 records held in memory while inserts link nodes.
 *
 * Without MDB_WRITEMAP every put may spill dirty pages and free them, so
 * each put expires the walk's cached block pointers and the next distance
 * in every block pays two B-tree lookups to find its vectors again. On a
 * 100,000-node graph a search touches most of the 1,563 blocks, so one put
 * per insert (the new node's record) cost more lookups than the search had
 * distances. While a table is attached to the operation, layer-0 records
 * are created, read and changed here instead: a record read from LMDB is
 * kept (clean), a changed one is held (dirty) and written once, in slot
 * order, when the table is flushed. Flushing also empties the table, so
 * anything that reads LMDB directly (the cursor scan of a removal) or
 * deletes a node comes after a flush.
 *
 * The table is indexed densely by slot: on a build every layer-0 read
 * probes it, and a hash probe per read cost as much as the B-tree path it
 * replaced once the table outgrew the caches. It holds at most a budget of
 * records; hnsw_pending_full() tells the insert loops to flush between
 * nodes. Search threads of a parallel insert read it through their own
 * contexts while the linking thread waits (hnsw_pending_find only).
 */
#include "index/hnsw_impl.h"

#include <stdlib.h>
#include <string.h>

/* 64 MB of records at M = 16 (about 430,000 nodes): a 100,000-node build
 * never flushes before its end. */
#define PENDING_BUDGET_BYTES (64u << 20)

struct pend_rec {
	uint32_t slot;
	int dirty;
	struct hnsw_l0 r;
};

struct hnsw_pending {
	struct pend_rec *rec; /* insertion order */
	size_t n, cap, budget;
	uint32_t *idx; /* by slot: record index + 1, 0 = not held */
	size_t idx_cap;
};

int hnsw_pending_init(struct hnsw_pending **out)
{
	struct hnsw_pending *p = calloc(1, sizeof *p);
	RETURN_ERROR_IF(!p, HYDB_ENOMEM, "index: no memory for pending lists");
	p->budget = PENDING_BUDGET_BYTES / sizeof *p->rec;
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

struct hnsw_l0 *hnsw_pending_find(struct hnsw_pending *p, uint32_t slot)
{
	uint32_t i = slot < p->idx_cap ? p->idx[slot] : 0;
	return i ? &p->rec[i - 1].r : NULL;
}

int hnsw_pending_full(const struct hnsw_pending *p)
{
	return p && p->n >= p->budget;
}

/* Room for one more record and an index entry for slot. */
static int reserve(struct hnsw_pending *p, uint32_t slot)
{
	if (slot >= p->idx_cap) {
		size_t cap = p->idx_cap ? p->idx_cap : 1024;
		while (cap <= slot)
			cap *= 2;
		uint32_t *idx = realloc(p->idx, cap * sizeof *idx);
		RETURN_ERROR_IF(!idx, HYDB_ENOMEM,
				"index: no memory for pending lists");
		memset(idx + p->idx_cap, 0, (cap - p->idx_cap) * sizeof *idx);
		p->idx = idx;
		p->idx_cap = cap;
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 256;
		struct pend_rec *rec = realloc(p->rec, cap * sizeof *rec);
		RETURN_ERROR_IF(!rec, HYDB_ENOMEM,
				"index: no memory for pending lists");
		p->rec = rec;
		p->cap = cap;
	}
	return 0;
}

static int hold(struct hnsw_pending *p, uint32_t slot,
		const struct hnsw_l0 *r, int dirty)
{
	uint32_t i = slot < p->idx_cap ? p->idx[slot] : 0;
	if (!i) {
		FORWARD_IF_ERROR(reserve(p, slot));
		p->rec[p->n].slot = slot;
		p->rec[p->n].dirty = 0;
		i = p->idx[slot] = (uint32_t)++p->n;
	}
	struct pend_rec *e = &p->rec[i - 1];
	e->dirty |= dirty;
	hnsw_l0_copy(&e->r, r);
	return 0;
}

int hnsw_pending_put(struct hnsw_pending *p, uint32_t slot,
		     const struct hnsw_l0 *r)
{
	return hold(p, slot, r, 1);
}

/* A record just read from LMDB, kept while the budget allows: the graph
 * around recent inserts is read again and again. */
int hnsw_pending_keep(struct hnsw_pending *p, uint32_t slot,
		      const struct hnsw_l0 *r)
{
	if (p->n >= p->budget)
		return 0;
	return hold(p, slot, r, 0);
}

static int rec_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct pend_rec *)a)->slot;
	uint32_t y = ((const struct pend_rec *)b)->slot;
	return (x > y) - (x < y);
}

/* Write every changed record (slot order keeps the B-tree walk local) and
 * empty the table; it stays attached. */
int hnsw_pending_flush(struct hnsw_ctx *cx)
{
	struct hnsw_pending *p = cx->pend;
	int rc = 0;
	if (!p || !p->n)
		return 0;
	cx->pend = NULL;
	for (size_t i = 0; i < p->n; i++)
		p->idx[p->rec[i].slot] = 0;
	qsort(p->rec, p->n, sizeof *p->rec, rec_cmp);
	for (size_t i = 0; i < p->n && rc == 0; i++)
		if (p->rec[i].dirty)
			rc = hnsw_l0_put(cx, p->rec[i].slot, &p->rec[i].r);
	p->n = 0;
	cx->pend = p;
	return rc;
}
