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
 */
#include "index/hnsw_impl.h"

#include <stdint.h>

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
			if (cand[i] == x || cand[i] == gone)
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
		/* Every candidate's list is all tree links: the root's
		 * neighbourhood cannot be, or the tree could not have grown. */
		cand[0] = cx->meta.entry;
		FORWARD_IF_ERROR(attach(cx, x, HYDB_NO_SLOT, cand, 1, INT64_MAX,
					&pr, &done));
	}
	return done ? set_rank(cx, x, pr + 1) : 0;
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
		if (x == cx->meta.entry || x == gone)
			continue;
		FORWARD_IF_ERROR(hnsw_l0_get(cx, x, &c));
		if (c.rank <= g->rank)
			continue; /* stale: x has another parent */
		size_t m = parent_candidates(cx, &c, g, &root, cand);
		FORWARD_IF_ERROR(attach(cx, x, gone, cand, m, c.rank, &pr,
					&done));
	}
	return 0;
}

/* The deleted root's successor takes its rank, the lowest. */
int hnsw_tree_succeed(struct hnsw_ctx *cx, uint32_t e, int32_t rank)
{
	return e == HYDB_NO_SLOT ? 0 : set_rank(cx, e, rank);
}
