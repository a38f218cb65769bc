/*
 * reach.c - keeping every node reachable when lists are pruned.
 *
 * Links are directed and the selection heuristic drops links freely, so a
 * node can lose its last in-link (when a full list is re-selected, when a
 * neighbour is deleted, or when none of a new node's neighbours keep the
 * link back). Such a node is invisible to every search. A node's own
 * neighbours are the likely holders of its in-links, so one that none of
 * them links to is treated as orphaned and given a link: by the list that
 * was dropping it when that list has room, else by the first of its own
 * neighbours with room. Lists never grow past their bound and no list is
 * re-selected, so this cannot cascade.
 */
#include "index/hnsw_impl.h"

static unsigned list_max(const hydb_index *ix, unsigned level)
{
	return level ? ix->M : ix->M0;
}

static int contains(const uint32_t *a, unsigned n, uint32_t s)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i] == s)
			return 1;
	return 0;
}

/* Does one of x's neighbours on the layer, other than skip, link to x? */
static int has_in_link(struct hnsw_ctx *cx, uint32_t x, unsigned level,
		       uint32_t skip, int *yes)
{
	uint32_t out[2 * HYDB_HNSW_MAX_M], in[2 * HYDB_HNSW_MAX_M];
	unsigned n, m;
	*yes = 0;
	FORWARD_IF_ERROR(hnsw_get_links(cx, x, level, out, &n));
	for (unsigned i = 0; i < n && !*yes; i++) {
		if (out[i] == skip || hnsw_get_links(cx, out[i], level, in, &m))
			continue;
		*yes = contains(in, m, x);
	}
	return 0;
}

/* Link x from the first of its neighbours (not skip) whose list has room;
 * *done says whether one had. */
static int adopt(struct hnsw_ctx *cx, uint32_t x, unsigned level,
		 uint32_t skip, int *done)
{
	uint32_t out[2 * HYDB_HNSW_MAX_M], l[2 * HYDB_HNSW_MAX_M + 1];
	unsigned n, m;
	*done = 0;
	FORWARD_IF_ERROR(hnsw_get_links(cx, x, level, out, &n));
	for (unsigned i = 0; i < n; i++) {
		if (out[i] == skip || hnsw_get_links(cx, out[i], level, l, &m))
			continue;
		if (m >= list_max(cx->ix, level) || contains(l, m, x))
			continue;
		l[m++] = x;
		*done = 1;
		return hnsw_put_links(cx, out[i], level, l, m);
	}
	return 0;
}

int hnsw_rescue(struct hnsw_ctx *cx, uint32_t x, unsigned level,
		uint32_t skip)
{
	int yes;
	FORWARD_IF_ERROR(has_in_link(cx, x, level, skip, &yes));
	return yes ? 0 : adopt(cx, x, level, skip, &yes);
}

/* Is d in the list of one of via[0..n)? */
static int linked_from(struct hnsw_ctx *cx, const uint32_t *via, unsigned n,
		       uint32_t d, unsigned level, int *yes)
{
	uint32_t l[2 * HYDB_HNSW_MAX_M];
	unsigned m;
	*yes = 0;
	for (unsigned i = 0; i < n && !*yes; i++) {
		if (via[i] == d)
			continue;
		FORWARD_IF_ERROR(hnsw_get_links(cx, via[i], level, l, &m));
		*yes = contains(l, m, d);
	}
	return 0;
}

/* Append d to the list of the first of via[0..n) with room; *done says
 * whether one had. */
static int append_to_one(struct hnsw_ctx *cx, const uint32_t *via,
			 unsigned n, uint32_t d, unsigned level, int *done)
{
	uint32_t l[2 * HYDB_HNSW_MAX_M + 1];
	unsigned m;
	*done = 0;
	for (unsigned i = 0; i < n && !*done; i++) {
		if (via[i] == d)
			continue;
		FORWARD_IF_ERROR(hnsw_get_links(cx, via[i], level, l, &m));
		if (m >= list_max(cx->ix, level))
			continue;
		l[m++] = d;
		FORWARD_IF_ERROR(hnsw_put_links(cx, via[i], level, l, m));
		*done = 1;
	}
	return 0;
}

/* Every list is full: d takes the place of the farthest kept link that
 * another kept link still leads to. */
static int displace(struct hnsw_ctx *cx, uint32_t *links, unsigned n,
		    uint32_t d, unsigned level)
{
	for (unsigned j = n; j-- > 0;) {
		uint32_t t = links[j];
		int yes;
		links[j] = d;
		FORWARD_IF_ERROR(linked_from(cx, links, n, t, level, &yes));
		if (yes)
			return 0;
		links[j] = t;
	}
	return 0;
}

/* A path owner -> d survives the re-selection as owner -> k -> d for some
 * k in the new list, so the set of nodes reachable from the entry point
 * cannot shrink. Inserts, which prune constantly, look for k among the
 * nearest few kept links only and give up when the list is full; removals
 * search the whole list and make room. */
int hnsw_keep_dropped(struct hnsw_ctx *cx, uint32_t owner, unsigned level,
		      const uint32_t *old, unsigned nold, uint32_t *links,
		      unsigned *n, int thorough)
{
	for (unsigned i = 0; i < nold; i++) {
		int yes;
		if (old[i] == owner || contains(links, *n, old[i]))
			continue;
		unsigned via = thorough || *n < 8 ? *n : 8;
		FORWARD_IF_ERROR(linked_from(cx, links, via, old[i], level,
					     &yes));
		if (yes)
			continue;
		if (*n < list_max(cx->ix, level)) {
			links[(*n)++] = old[i];
			continue;
		}
		if (!thorough)
			continue;
		FORWARD_IF_ERROR(append_to_one(cx, links, *n, old[i], level,
					       &yes));
		if (!yes)
			FORWARD_IF_ERROR(displace(cx, links, *n, old[i], level));
	}
	return 0;
}

/* A new node above the top becomes the entry point: on layer 0 it must
 * reach the old one, which reached everything. */
int hnsw_keep_entry(struct hnsw_ctx *cx, uint32_t e, uint32_t old_entry,
		    unsigned level)
{
	uint32_t links[2 * HYDB_HNSW_MAX_M];
	unsigned n, before;
	if (old_entry == HYDB_NO_SLOT || old_entry == e)
		return 0;
	FORWARD_IF_ERROR(hnsw_get_links(cx, e, level, links, &n));
	before = n;
	FORWARD_IF_ERROR(
		hnsw_keep_dropped(cx, e, level, &old_entry, 1, links, &n, 1));
	return n == before ? 0 : hnsw_put_links(cx, e, level, links, n);
}
