/*
 * hnsw_vacuum.c - VACUUM: elements whose heap rows are gone are marked
 * deleted (never returned again, so their heap TIDs may be reused), then
 * every list that linked to one is repaired as the library repairs lists
 * after deletions: the survivors plus the deleted nodes' own neighbours,
 * selected by the same rule and filled back to the former length. The
 * marked elements stay as tombstones that nothing links to.
 */
#include "hydb_pg.h"

#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"

#include <math.h>

/* Mark one page's dead elements; live ones are counted, deleted ones
 * (new or from an earlier run) remembered in gone. */
static void mark_page(IndexVacuumInfo *info, BlockNumber blk,
		      IndexBulkDeleteCallback cb, void *state, hg_visited *gone,
		      IndexBulkDeleteResult *stats)
{
	Relation index = info->index;
	Buffer b = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);
	LockBuffer(b, BUFFER_LOCK_EXCLUSIVE);
	GenericXLogState *st = GenericXLogStart(index);
	Page p = GenericXLogRegisterBuffer(st, b, 0);
	bool changed = false;
	for (OffsetNumber o = FirstOffsetNumber; o <= PageGetMaxOffsetNumber(p); o++) {
		HgElement *e = (HgElement *)PageGetItem(p, PageGetItemId(p, o));
		if (e->kind != HG_KIND_ELEMENT)
			continue;
		if (!(e->flags & HG_DELETED) && cb(&e->heaptid, state)) {
			e->flags |= HG_DELETED;
			ItemPointerSetInvalid(&e->heaptid);
			changed = true;
			stats->tuples_removed++;
		}
		if (e->flags & HG_DELETED)
			hg_visited_add(gone, hg_tid_node(blk, o));
		else
			stats->num_index_tuples++;
	}
	if (changed)
		GenericXLogFinish(st);
	else
		GenericXLogAbort(st);
	UnlockReleaseBuffer(b);
}

/* Survivors of n's list plus the live neighbours of its deleted ones,
 * without n and without repeats. */
static int repair_candidates(hg_graph *g, hg_visited *gone, hg_node n,
			     int level, const hg_node *links, int count,
			     hg_node *out)
{
	hg_node two[2 * HG_MAX_M];
	hg_visited seen;
	int k = 0;
	hg_visited_init(&seen, 8 * HG_MAX_M);
	hg_visited_add(&seen, n);
	for (int i = 0; i < count; i++)
		if (!hg_visited_has(gone, links[i]) && hg_visited_add(&seen, links[i]))
			out[k++] = links[i];
	for (int i = 0; i < count; i++) {
		if (!hg_visited_has(gone, links[i]))
			continue;
		int t = g->links(g, links[i], level, two);
		for (int j = 0; j < t; j++)
			if (!hg_visited_has(gone, two[j]) && hg_visited_add(&seen, two[j]))
				out[k++] = two[j];
	}
	pfree(seen.slots);
	return k;
}

static void repair(hg_graph *g, hg_visited *gone, hg_node n, int level,
		   const hg_node *links, int count, float *buf)
{
	hg_node *cand = palloc(sizeof(hg_node) * (count + 1) * 2 * HG_MAX_M);
	int k = repair_candidates(g, gone, n, level, links, count, cand);
	hg_cand *c = palloc(sizeof(hg_cand) * Max(k, 1));
	double *keys = palloc(sizeof(double) * Max(k, 1));
	uint32 sel[2 * HG_MAX_M];
	hg_node out[2 * HG_MAX_M];
	hydb_kquery q;
	int mmax = level ? g->m : hg_m0(g->m);
	g->vector(g, n, buf);
	hydb_kquery_init(&q, buf, g->dim, g->c);
	for (int i = 0; i < k; i += 2 * HG_MAX_M)
		g->keys(g, &q, cand + i, Min(k - i, 2 * HG_MAX_M), keys + i, NULL);
	for (int i = 0; i < k; i++) {
		c[i].key = keys[i];
		c[i].node = cand[i];
		c[i].deleted = false;
	}
	hg_cand_sort(c, k);
	int ns = hg_select(g, c, k, mmax, count, sel);
	for (int i = 0; i < ns; i++)
		out[i] = c[sel[i]].node;
	g->set_links(g, n, level, out, ns);
	pfree(cand);
	pfree(c);
	pfree(keys);
}

/* Tree links to deleted elements are dropped. */
static void repair_tree(hg_graph *g, hg_visited *gone, hg_node n)
{
	hg_node t[HG_TREE], keep[HG_TREE];
	int c = g->tree(g, n, t), k = 0;
	for (int i = 0; i < c; i++)
		if (!hg_visited_has(gone, t[i]))
			keep[k++] = t[i];
	if (k != c)
		g->set_tree(g, n, keep, k);
}

/* A deleted element's tree children hang again from one of their own
 * neighbours when no list keeps them any more. */
static void rehang_children(hg_graph *g, hg_visited *gone, hg_node d)
{
	hg_node t[HG_TREE], nb[2 * HG_MAX_M], live[2 * HG_MAX_M];
	int c = g->tree(g, d, t);
	for (int i = 0; i < c; i++) {
		if (hg_visited_has(gone, t[i]))
			continue;
		int n = g->links(g, t[i], 0, nb), k = 0;
		for (int j = 0; j < n; j++)
			if (!hg_visited_has(gone, nb[j]))
				live[k++] = nb[j];
		hg_hang(g, t[i], g->rank(g, t[i]), live, k);
	}
	if (c)
		g->set_tree(g, d, t, 0);
}

/* Repair every live list on one page that links to a deleted element. */
/* Pass 0 repairs lists, pass 1 (once all lists are whole) re-hangs the
 * deleted elements' tree children. */
static void repair_page(Relation index, hg_graph *g, BlockNumber blk,
			hg_visited *gone, float *buf, int pass)
{
	hg_node links[2 * HG_MAX_M];
	uint8 kinds[MaxOffsetNumber];
	Buffer b = ReadBuffer(index, blk);
	LockBuffer(b, BUFFER_LOCK_SHARE);
	OffsetNumber max = PageGetMaxOffsetNumber(BufferGetPage(b));
	uint8 levels[MaxOffsetNumber], flags[MaxOffsetNumber];
	for (OffsetNumber o = FirstOffsetNumber; o <= max; o++) {
		HgElement *e = (HgElement *)PageGetItem(BufferGetPage(b), PageGetItemId(BufferGetPage(b), o));
		levels[o - 1] = e->level;
		kinds[o - 1] = e->kind;
		/* Vectors are not nodes: treated as deleted, never repaired. */
		flags[o - 1] = e->kind == HG_KIND_ELEMENT ? e->flags : HG_DELETED;
	}
	UnlockReleaseBuffer(b);
	for (OffsetNumber o = FirstOffsetNumber; o <= max; o++) {
		hg_node n = hg_tid_node(blk, o);
		if (kinds[o - 1] != HG_KIND_ELEMENT)
			continue;
		if (flags[o - 1] & HG_DELETED) {
			if (pass == 1)
				rehang_children(g, gone, n);
			continue;
		}
		if (pass == 1)
			continue;
		repair_tree(g, gone, n);
		for (int l = 0; l <= levels[o - 1]; l++) {
			int count = g->links(g, n, l, links);
			for (int i = 0; i < count; i++)
				if (hg_visited_has(gone, links[i])) {
					repair(g, gone, n, l, links, count, buf);
					break;
				}
		}
	}
}

/* The new entry point becomes the tree's root: the lowest rank, so that
 * the old root's orphans may hang from it. */
static void make_root(Relation index, HgMeta *m)
{
	Buffer b = ReadBuffer(index, hg_node_block(m->entry));
	LockBuffer(b, BUFFER_LOCK_EXCLUSIVE);
	GenericXLogState *st = GenericXLogStart(index);
	Page p = GenericXLogRegisterBuffer(st, b, 0);
	hg_page_element(index, p, m->entry)->rank = (int32)--m->min_rank;
	GenericXLogFinish(st);
	UnlockReleaseBuffer(b);
}

/* fn(ctx, node, element) for every live element, in page order, each
 * page share-locked while its elements are visited. */
static void each_live(Relation index, void (*fn)(void *, hg_node, const HgElement *),
		      void *ctx)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	for (BlockNumber blk = 1; blk < nblocks; blk++) {
		Buffer b = ReadBuffer(index, blk);
		LockBuffer(b, BUFFER_LOCK_SHARE);
		Page p = BufferGetPage(b);
		for (OffsetNumber o = FirstOffsetNumber; o <= PageGetMaxOffsetNumber(p); o++) {
			HgElement *e = (HgElement *)PageGetItem(p, PageGetItemId(p, o));
			if (e->kind == HG_KIND_ELEMENT && !(e->flags & HG_DELETED))
				fn(ctx, hg_tid_node(blk, o), e);
		}
		UnlockReleaseBuffer(b);
	}
}

static void keep_highest(void *ctx, hg_node n, const HgElement *e)
{
	HgMeta *m = ctx;
	if (e->level > m->max_level) {
		m->entry = n;
		m->max_level = e->level;
	}
}

/* A deleted entry point gives way to the live element of highest level. */
static void new_entry(Relation index, HgMeta *m, hg_visited *gone)
{
	if (m->entry == HG_NONE || !hg_visited_has(gone, m->entry))
		return;
	m->entry = HG_NONE;
	m->max_level = -1;
	each_live(index, keep_highest, m);
	if (m->entry != HG_NONE)
		make_root(index, m);
}

typedef struct node_list {
	hg_node *a;
	size_t n, cap;
} node_list;

static void append_node(void *ctx, hg_node n, const HgElement *e)
{
	node_list *l = ctx;
	(void)e;
	if (l->n == l->cap) {
		l->cap *= 2;
		l->a = repalloc_huge(l->a, sizeof(hg_node) * l->cap);
	}
	l->a[l->n++] = n;
}

/* Every live element, in page order. */
static hg_node *live_elements(Relation index, size_t *n)
{
	node_list l = {palloc(sizeof(hg_node) * 1024), 0, 1024};
	each_live(index, append_node, &l);
	*n = l.n;
	return l.a;
}

/* The live elements a layer-0 walk from the entry point reaches. */
static void reached(hg_graph *g, const HgMeta *m, hg_visited *gone, size_t n,
		    hg_visited *seen)
{
	hg_node links[2 * HG_MAX_M + HG_TREE];
	hg_node *stack = palloc(sizeof(hg_node) * (n + 1));
	size_t top = 0;
	hg_visited_init(seen, n + 16);
	if (m->entry == HG_NONE)
		return;
	stack[top++] = m->entry;
	hg_visited_add(seen, m->entry);
	while (top) {
		int c = g->links(g, stack[--top], HG_WALK0, links);
		for (int i = 0; i < c; i++)
			if (!hg_visited_has(gone, links[i]) && hg_visited_add(seen, links[i]))
				stack[top++] = links[i];
		vacuum_delay_point();
	}
	pfree(stack);
}

static bool adopt(hg_graph *g, hg_node parent, hg_node child)
{
	hg_node t[HG_TREE + 1];
	int k = g->tree(g, parent, t);
	if (k >= HG_TREE)
		return false;
	t[k++] = child;
	g->set_tree(g, parent, t, k);
	return true;
}

/* No neighbour of u is reached: the nearest reached element with a free
 * tree link adopts it. */
static bool adopt_nearest(hg_graph *g, const hg_node *live, size_t n,
			  hg_visited *seen, hg_node u)
{
	float *x = palloc(sizeof(float) * g->dim);
	hydb_kquery q;
	hg_node best = HG_NONE, t[HG_TREE];
	double bestkey = INFINITY, key;
	g->vector(g, u, x);
	hydb_kquery_init(&q, x, g->dim, g->c);
	for (size_t i = 0; i < n; i++) {
		if (!hg_visited_has(seen, live[i]) || g->tree(g, live[i], t) >= HG_TREE)
			continue;
		g->keys(g, &q, &live[i], 1, &key, NULL);
		if (key < bestkey) {
			bestkey = key;
			best = live[i];
		}
	}
	pfree(x);
	return best != HG_NONE && adopt(g, best, u);
}

/* After heavy deletion a live element may have lost its tree parent and
 * every list that held it: it hangs from a reached neighbour with a free
 * tree link (rank aside: reachability is what matters here), and what
 * hangs below it comes back with it. */
static void reconnect(Relation index, hg_graph *g, const HgMeta *m,
		      hg_visited *gone)
{
	size_t n;
	hg_node *live = live_elements(index, &n);
	hg_node nb[2 * HG_MAX_M];
	for (int round = 0; round < 3; round++) {
		hg_visited seen;
		int fixed = 0, missing = 0;
		reached(g, m, gone, n, &seen);
		for (size_t i = 0; i < n; i++) {
			if (hg_visited_has(&seen, live[i]))
				continue;
			missing++;
			int c = g->links(g, live[i], 0, nb), j;
			for (j = 0; j < c; j++)
				if (hg_visited_has(&seen, nb[j]) && adopt(g, nb[j], live[i]))
					break;
			if (j < c || adopt_nearest(g, live, n, &seen, live[i]))
				fixed++;
		}
		pfree(seen.slots);
		if (!missing || !fixed)
			break;
	}
	pfree(live);
}

IndexBulkDeleteResult *hg_bulkdelete(IndexVacuumInfo *info,
				     IndexBulkDeleteResult *stats,
				     IndexBulkDeleteCallback cb, void *state)
{
	Relation index = info->index;
	HgMeta m;
	hg_visited gone;
	if (!stats)
		stats = palloc0(sizeof *stats);
	stats->num_index_tuples = 0;
	LockPage(index, HG_UPDATE_LOCK, ExclusiveLock);
	hg_read_meta(index, &m);
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	hg_visited_init(&gone, 1024);
	for (BlockNumber blk = 1; blk < nblocks; blk++) {
		mark_page(info, blk, cb, state, &gone, stats);
		vacuum_delay_point();
	}
	if (gone.count && m.dim) {
		hg_graph *g = hg_page_graph(index, &m);
		float *buf = palloc(sizeof(float) * m.dim);
		new_entry(index, &m, &gone);
		for (int pass = 0; pass < 2; pass++)
			for (BlockNumber blk = 1; blk < nblocks; blk++) {
				repair_page(index, g, blk, &gone, buf, pass);
				vacuum_delay_point();
			}
		reconnect(index, g, &m, &gone);
	}
	m.deleted = gone.count;
	/* After the repairs, so that no scan keeps a list from before them. */
	m.links_gen++;
	hg_update_meta(index, &m);
	UnlockPage(index, HG_UPDATE_LOCK, ExclusiveLock);
	stats->num_pages = nblocks;
	return stats;
}

IndexBulkDeleteResult *hg_vacuumcleanup(IndexVacuumInfo *info,
					IndexBulkDeleteResult *stats)
{
	HgMeta m;
	if (info->analyze_only)
		return stats;
	if (!stats) {
		stats = palloc0(sizeof *stats);
		hg_read_meta(info->index, &m);
		stats->num_index_tuples = (double)(m.nodes - m.deleted);
	}
	stats->num_pages = RelationGetNumberOfBlocks(info->index);
	return stats;
}
