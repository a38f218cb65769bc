/*
 * reach.c - keeping every node reachable from the entry point on layer 0.
 *
 * Links are directed and the selection heuristic drops them freely, so a
 * node can lose its last in-link, or a group of nodes every link from
 * outside it, and then no search finds them however large ef is (1.35% of
 * a 100,000-point HySAC-like build, mostly far from the origin). Local
 * repairs cannot rule out such islands; a spanning tree can. Every node but
 * the entry point has a parent whose layer-0 list holds it among its first
 * prot links, the tree links, which pruning never drops. Each node has a
 * rank above its parent's, so a node whose parent is deleted may take any
 * node of lower rank as its new parent without closing a cycle, and the
 * entry point, the root, has the lowest rank of all. A tree link whose
 * owner's rank is not below its target's is stale (the target became the
 * root) and is ignored.
 *
 * Ranks follow insertion order (hnsw_meta.next_rank), not depth: an orphan
 * may only take a parent of lower rank, and with depth as the rank a node
 * near the root found none among its neighbours (upserting 1,000 of 20,000
 * points left 992 nodes outside the tree). In insertion order half of all
 * nodes are older than the average orphan. When none of its neighbours
 * qualifies (or after a root succession, when the new root's tree links
 * are full), the orphan's subtree is hung below the first node the tree
 * reaches from the root that has room, and the subtree is re-ranked.
 */
#include "index/hnsw_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Tree links a list may hold: half the list on a first pass, so that the
 * heuristic keeps room to shape it, all but one when nothing else fits. */
static unsigned tree_cap(const hydb_index *ix, int pass)
{
	unsigned m = pass ? ix->M0 - 1 : ix->M0 / 2;
	return m > 255 ? 255 : m;
}

/* x becomes a tree link of q, whose record r has been read: it moves into
 * the tree prefix, entering the list if absent (a full list loses its last
 * ordinary link, which the tree does not need). */
static int add_child(struct hnsw_ctx *cx, uint32_t q, struct hnsw_l0 *r,
		     uint32_t x)
{
	unsigned i = 0;
	while (i < r->n && r->links[i] != x)
		i++;
	if (i < r->prot)
		return hnsw_l0_put(cx, q, r);
	if (i == r->n) {
		if (r->n < cx->ix->M0)
			r->n++;
		i = r->n - 1;
		r->links[i] = x;
	}
	r->links[i] = r->links[r->prot];
	r->links[r->prot++] = x;
	return hnsw_l0_put(cx, q, r);
}

/* Give x a parent among cand[0..n) (nearest first) whose rank is below
 * `below`; *parent_rank receives its rank, *done whether one had room. */
static int attach(struct hnsw_ctx *cx, uint32_t x, uint32_t gone,
		  const uint32_t *cand, size_t n, int64_t below,
		  int32_t *parent_rank, int *done)
{
	struct hnsw_l0 r;
	*done = 0;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			if (cand[i] == x || cand[i] == gone ||
			    hnsw_doomed(cx, cand[i]))
				continue;
			FORWARD_IF_ERROR(hnsw_l0_get(cx, cand[i], &r));
			if (r.rank >= below || r.prot >= tree_cap(cx->ix, pass))
				continue;
			*parent_rank = r.rank;
			*done = 1;
			return add_child(cx, cand[i], &r, x);
		}
	return 0;
}

/* When every candidate's and the root's lists are all tree links (data
 * where most points share a few hubs, as the leaves of a taxonomy share
 * their parents), x hangs below the nearest node with room that the
 * candidates' tree links reach: x is new and has no subtree, so any parent
 * keeps the tree a tree, and one below a hub is near x's neighbours. */
static int attach_below(struct hnsw_ctx *cx, uint32_t x, const uint32_t *cand,
			size_t n, int32_t *parent_rank, int *done)
{
	struct hnsw_l0 r;
	size_t head = 0, tail = 0, cap = n + 64;
	uint32_t *queue = hydb_alloc_array(cap, sizeof *queue, "tree search");
	int rc = queue ? hnsw_visit_reset(cx) : HYDB_ENOMEM;
	*done = 0;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (!hnsw_visited(cx->sc, cand[i]))
			queue[tail++] = cand[i];
	while (rc == 0 && head < tail && !*done) {
		uint32_t q = queue[head++];
		rc = hnsw_l0_get(cx, q, &r);
		if (rc)
			break;
		if (q != x && !hnsw_doomed(cx, q) && r.prot < tree_cap(cx->ix, 1)) {
			*parent_rank = r.rank;
			*done = 1;
			rc = add_child(cx, q, &r, x);
			break;
		}
		for (unsigned k = 0; k < r.prot && rc == 0; k++) {
			uint32_t y = r.links[k];
			if (y >= cx->meta.slot_limit || hnsw_visited(cx->sc, y))
				continue;
			if (tail == cap) {
				uint32_t *nq = realloc(queue, 2 * cap * sizeof *queue);
				if (!nq) {
					rc = hydb_error_set(HYDB_ENOMEM, "index: tree search: out of memory");
					break;
				}
				queue = nq;
				cap *= 2;
			}
			queue[tail++] = y;
		}
	}
	free(queue);
	return rc;
}

static int set_rank(struct hnsw_ctx *cx, uint32_t x, int32_t rank)
{
	struct hnsw_l0 r;
	FORWARD_IF_ERROR(hnsw_l0_get(cx, x, &r));
	r.rank = rank;
	return hnsw_l0_put(cx, x, &r);
}

/* A node above the top becomes the entry point: the old root hangs below
 * it. */
static int new_root(struct hnsw_ctx *cx, uint32_t e, uint32_t old)
{
	struct hnsw_l0 o, r;
	FORWARD_IF_ERROR(hnsw_l0_get(cx, old, &o));
	FORWARD_IF_ERROR(hnsw_l0_get(cx, e, &r));
	r.rank = o.rank - 1;
	return add_child(cx, e, &r, old);
}

int hnsw_tree_join(struct hnsw_ctx *cx, uint32_t x, unsigned level,
		   const struct hnsw_cand *c, size_t n)
{
	uint32_t cand[4 * HYDB_HNSW_MAX_M];
	size_t m = 0;
	int32_t pr = 0;
	int done;
	if (cx->meta.entry == HYDB_NO_SLOT || cx->meta.entry == x)
		return 0;
	if (level > cx->meta.max_level)
		return new_root(cx, x, cx->meta.entry);
	for (size_t i = 0; i < n && m < sizeof cand / sizeof *cand; i++)
		cand[m++] = c[i].slot;
	FORWARD_IF_ERROR(attach(cx, x, HYDB_NO_SLOT, cand, m, INT64_MAX, &pr,
				&done));
	if (!done) {
		/* Every candidate's list is all tree links: try the root, then
		 * the nodes the tree reaches from the candidates. */
		uint32_t root = cx->meta.entry;
		FORWARD_IF_ERROR(attach(cx, x, HYDB_NO_SLOT, &root, 1, INT64_MAX,
					&pr, &done));
		if (!done)
			FORWARD_IF_ERROR(attach_below(cx, x, cand, m, &pr, &done));
	}
	/* Only a tree whose every node is full leaves x out (check reports). */
	if (!done)
		return 0;
	/* Above the parent, and in insertion order once a counter exists
	 * (graphs written before it have depth ranks: the counter takes over
	 * from the first new node). */
	int64_t rank = (int64_t)pr + 1;
	if ((int64_t)cx->meta.next_rank > rank)
		rank = cx->meta.next_rank;
	if (rank < INT32_MAX)
		cx->meta.next_rank = (uint32_t)(rank + 1 > 0 ? rank + 1 : 0);
	return set_rank(cx, x, (int32_t)(rank < INT32_MAX ? rank : INT32_MAX));
}

/* Candidates for an orphan's new parent: its own links, the deleted
 * node's, the root and the root's links. */
static size_t parent_candidates(struct hnsw_ctx *cx, const struct hnsw_l0 *c,
				const struct hnsw_l0 *g, const struct hnsw_l0 *root,
				uint32_t *out)
{
	size_t m = 0;
	for (unsigned i = 0; i < c->n; i++)
		out[m++] = c->links[i];
	for (unsigned i = 0; i < g->n; i++)
		out[m++] = g->links[i];
	out[m++] = cx->meta.entry;
	for (unsigned i = 0; root && i < root->n; i++)
		out[m++] = root->links[i];
	return m;
}

struct adopt {
	uint32_t lim;
	uint8_t *mark;     /* 1: in x's subtree, 2: reached from the root */
	uint32_t *sub, *queue;
	int64_t *rank;     /* by slot, for the subtree: old, then new */
	size_t nsub;
};

struct ranked {
	int64_t rank;
	uint32_t slot;
};

static int ranked_cmp(const void *p, const void *q)
{
	const struct ranked *a = p, *b = q;
	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	return (a->slot > b->slot) - (a->slot < b->slot);
}

/* x now hangs below a node of rank hr: its subtree's ranks are raised in
 * the order of their old ranks (a topological order of the tree links), so
 * that every tree link in it still climbs. */
static int rerank_subtree(struct hnsw_ctx *cx, struct adopt *a, uint32_t x,
			  int64_t hr)
{
	struct hnsw_l0 r;
	struct ranked *order = hydb_alloc_array(a->nsub, sizeof *order, "ranks");
	int rc = 0;
	if (!order)
		return HYDB_ENOMEM;
	for (size_t i = 0; i < a->nsub; i++)
		order[i] = (struct ranked){a->rank[a->sub[i]], a->sub[i]};
	qsort(order, a->nsub, sizeof *order, ranked_cmp);
	if (a->rank[x] <= hr)
		a->rank[x] = hr + 1;
	for (size_t i = 0; rc == 0 && i < a->nsub; i++) {
		uint32_t u = order[i].slot;
		rc = hnsw_l0_get(cx, u, &r);
		if (rc)
			break;
		int64_t nr = a->rank[u] < INT32_MAX ? a->rank[u] : INT32_MAX;
		for (unsigned k = 0; k < r.prot; k++) {
			uint32_t y = r.links[k];
			if (y < a->lim && a->mark[y] == 1 && a->rank[y] <= nr &&
			    y != u)
				a->rank[y] = nr + 1;
		}
		if (nr != order[i].rank)
			rc = set_rank(cx, u, (int32_t)nr);
	}
	free(order);
	return rc;
}

/* x's subtree: the nodes valid tree links reach from it. */
static int collect_subtree(struct hnsw_ctx *cx, struct adopt *a, uint32_t x)
{
	struct hnsw_l0 r, c;
	a->mark[x] = 1;
	a->sub[a->nsub++] = x;
	for (size_t h = 0; h < a->nsub; h++) {
		FORWARD_IF_ERROR(hnsw_l0_get(cx, a->sub[h], &r));
		a->rank[a->sub[h]] = r.rank;
		for (unsigned i = 0; i < r.prot; i++) {
			uint32_t y = r.links[i];
			if (y >= a->lim || a->mark[y] || hnsw_doomed(cx, y))
				continue;
			FORWARD_IF_ERROR(hnsw_l0_get(cx, y, &c));
			if (r.rank < c.rank) {
				a->mark[y] = 1;
				a->sub[a->nsub++] = y;
			}
		}
	}
	return 0;
}

/* The first node the tree reaches from the root, breadth first, outside
 * x's subtree, that has room for a tree link. */
static int find_host(struct hnsw_ctx *cx, struct adopt *a, uint32_t gone,
		     uint32_t *host)
{
	size_t tail = 0;
	struct hnsw_l0 r;
	*host = HYDB_NO_SLOT;
	if (cx->meta.entry >= a->lim || a->mark[cx->meta.entry])
		return 0;
	a->mark[cx->meta.entry] = 2;
	a->queue[tail++] = cx->meta.entry;
	for (int pass = 0; pass < 2; pass++)
		for (size_t h = 0; h < tail; h++) {
			uint32_t p = a->queue[h];
			FORWARD_IF_ERROR(hnsw_l0_get(cx, p, &r));
			for (unsigned i = 0; pass == 0 && i < r.prot; i++) {
				uint32_t y = r.links[i];
				if (y < a->lim && !a->mark[y]) {
					a->mark[y] = 2;
					a->queue[tail++] = y;
				}
			}
			if (p != gone && !hnsw_doomed(cx, p) &&
			    r.prot < tree_cap(cx->ix, pass)) {
				*host = p;
				return 0;
			}
		}
	return 0;
}

/* Last resort for an orphan x none of whose neighbours ranks below it and
 * has room: x and its subtree hang below any node outside the subtree that
 * has room, and the subtree's ranks are raised in rank order so that
 * every tree link in it still climbs (no cycle can form: ranks rise along
 * every link). Costs a walk of the tree, which the neighbourhood almost
 * always spares. */
static int adopt_anywhere(struct hnsw_ctx *cx, uint32_t x, uint32_t gone,
			  int *done)
{
	struct adopt a = {.lim = cx->meta.slot_limit};
	struct hnsw_l0 r;
	uint32_t host;
	int rc;
	*done = 0;
	if (cx->meta.entry == HYDB_NO_SLOT || x >= a.lim)
		return 0;
	a.mark = calloc(a.lim, 1);
	a.sub = hydb_alloc_array(a.lim, sizeof *a.sub, "tree walk");
	a.queue = hydb_alloc_array(a.lim, sizeof *a.queue, "tree walk");
	a.rank = hydb_alloc_array(a.lim, sizeof *a.rank, "tree walk");
	rc = a.mark && a.sub && a.queue && a.rank ? 0 : HYDB_ENOMEM;
	if (!a.mark)
		hydb_error_set(HYDB_ENOMEM, "index: no memory for a tree walk");
	if (rc == 0)
		rc = collect_subtree(cx, &a, x);
	if (rc == 0)
		rc = find_host(cx, &a, gone, &host);
	if (rc == 0 && host != HYDB_NO_SLOT)
		rc = hnsw_l0_get(cx, host, &r);
	if (rc == 0 && host != HYDB_NO_SLOT) {
		int64_t hr = r.rank;
		rc = add_child(cx, host, &r, x);
		if (rc == 0)
			rc = rerank_subtree(cx, &a, x, hr);
		*done = rc == 0;
	}
	free(a.mark);
	free(a.sub);
	free(a.queue);
	free(a.rank);
	return rc;
}

int hnsw_tree_orphans(struct hnsw_ctx *cx, uint32_t gone,
		      const struct hnsw_l0 *g)
{
	uint32_t cand[3 * 2 * HYDB_HNSW_MAX_M + 1];
	struct hnsw_l0 c, root;
	if (cx->meta.entry == HYDB_NO_SLOT)
		return 0;
	FORWARD_IF_ERROR(hnsw_l0_get(cx, cx->meta.entry, &root));
	for (unsigned i = 0; i < g->prot; i++) {
		uint32_t x = g->links[i];
		int32_t pr;
		int done;
		if (x == cx->meta.entry || x == gone || hnsw_doomed(cx, x))
			continue;
		FORWARD_IF_ERROR(hnsw_l0_get(cx, x, &c));
		if (c.rank <= g->rank)
			continue; /* stale: x has another parent */
		size_t m = parent_candidates(cx, &c, g, &root, cand);
		FORWARD_IF_ERROR(attach(cx, x, gone, cand, m, c.rank, &pr,
					&done));
		if (!done)
			FORWARD_IF_ERROR(adopt_anywhere(cx, x, gone, &done));
	}
	return 0;
}

/* The deleted root's successor takes its rank, the lowest. */
int hnsw_tree_succeed(struct hnsw_ctx *cx, uint32_t e, int32_t rank)
{
	return e == HYDB_NO_SLOT ? 0 : set_rank(cx, e, rank);
}
