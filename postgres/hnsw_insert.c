/*
 * hnsw_insert.c - adding one row to the graph: the layers' searches and the
 * library's selection rule pick the new node's links, the element is
 * written whole, then each chosen neighbour links back (a full list is
 * re-selected by the same rule). Shared by aminsert (pages) and the build
 * (memory) through hg_graph.
 */
#include "hydb_pg.h"

#include "storage/lmgr.h"
#include "utils/memutils.h"

static void search_reset(hg_search *s)
{
	hg_visited_reset(&s->visited);
	s->cand.n = 0;
	s->pool.n = 0;
	s->nres = 0;
}

/* As the library links a new node: at most m links per layer, the list
 * topped up to m with the nearest pruned candidates (fill = m). */
void hg_plan_links(hg_graph *g, const hydb_kquery *q, int level, hg_node entry,
		   int max_level, int efc, hg_node (*links)[HG_MAX_M], int *counts,
		   hg_search *s)
{
	hg_node cur = entry;
	double curkey;
	uint32 sel[HG_MAX_M];
	bool del;
	g->keys(g, q, &cur, 1, &curkey, &del);
	if (level < max_level)
		hg_greedy(g, q, max_level, level, &cur, &curkey);
	for (int l = 0; l <= level; l++)
		counts[l] = 0;
	for (int l = Min(level, max_level); l >= 0; l--) {
		hg_cand e = {curkey, cur, false};
		search_reset(s);
		hg_search_seed(s, e);
		hg_search_batch(g, s, q, (size_t)efc, l);
		if (s->nres == 0)
			continue;
		cur = s->res[0].node;
		curkey = s->res[0].key;
		int n = hg_select(g, s->res, (int)s->nres, g->m, g->m, sel);
		for (int i = 0; i < n; i++)
			links[l][i] = s->res[sel[i]].node;
		counts[l] = n;
	}
}

/* Add node to nb's list on a layer; a full list is re-selected from its
 * links plus the newcomer, purely (fill 0) as the library does, so that old
 * nodes keep their long-range links. */
static void link_back(hg_graph *g, hg_node nb, hg_node node, int level,
		      float *buf)
{
	int mmax = level ? g->m : hg_m0(g->m);
	hg_node links[2 * HG_MAX_M + 1], out[2 * HG_MAX_M];
	hg_cand c[2 * HG_MAX_M + 1];
	uint32 sel[2 * HG_MAX_M];
	hydb_kquery q;
	int n = g->links(g, nb, level, links);
	for (int i = 0; i < n; i++)
		if (links[i] == node)
			return;
	links[n++] = node;
	if (n <= mmax) {
		g->set_links(g, nb, level, links, n);
		return;
	}
	g->vector(g, nb, buf);
	hydb_kquery_init(&q, buf, g->dim, g->c);
	double keys[2 * HG_MAX_M + 1];
	g->keys(g, &q, links, n, keys, NULL);
	for (int i = 0; i < n; i++) {
		c[i].key = keys[i];
		c[i].node = links[i];
		c[i].deleted = false;
	}
	hg_cand_sort(c, n);
	int ns = hg_select(g, c, n, mmax, 0, sel);
	for (int i = 0; i < ns; i++)
		out[i] = c[sel[i]].node;
	g->set_links(g, nb, level, out, ns);
}

static bool try_parent(hg_graph *g, hg_node p, hg_node node, int32 rank)
{
	hg_node t[HG_TREE + 1];
	if (p == node || g->rank(g, p) >= rank)
		return false;
	int n = g->tree(g, p, t);
	if (n >= HG_TREE)
		return false;
	t[n++] = node;
	g->set_tree(g, p, t, n);
	return true;
}

/* Hang node from the nearest of nb (then of their layer-0 neighbours)
 * that ranks lower and has a free tree link; false when none has. */
bool hg_hang(hg_graph *g, hg_node node, int32 rank, const hg_node *nb, int count)
{
	hg_node two[2 * HG_MAX_M];
	for (int i = 0; i < count; i++)
		if (try_parent(g, nb[i], node, rank))
			return true;
	for (int i = 0; i < count; i++) {
		int n = g->links(g, nb[i], 0, two);
		for (int j = 0; j < n; j++)
			if (try_parent(g, two[j], node, rank))
				return true;
	}
	return false;
}

void hg_link_back_all(hg_graph *g, hg_node node, int level,
		      hg_node (*links)[HG_MAX_M], const int *counts)
{
	float *buf = palloc(sizeof(float) * g->dim);
	for (int l = level; l >= 0; l--)
		for (int i = 0; i < counts[l]; i++)
			link_back(g, links[l][i], node, l, buf);
	pfree(buf);
}

/* The first vector fixes the index's dimension and curvature; every later
 * one, and every query, must match them. */
void hg_meta_check_vector(Relation index, const Lorentz *v, bool for_query)
{
	HgMeta m;
	hg_read_meta(index, &m);
	if (m.dim == 0)
		return;
	if (v->dim != m.dim)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("%s has %d dimensions, index \"%s\" has %u",
				       for_query ? "query" : "value", v->dim,
				       RelationGetRelationName(index), m.dim)));
	if (v->c != m.c)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("%s has curvature -%g, index \"%s\" has -%g",
				       for_query ? "query" : "value", v->c,
				       RelationGetRelationName(index), m.c)));
}

/* An element with no links yet; rows beyond half precision's range keep a
 * zero copy and are walked in float32 (HG_FAR), as the library does. */
HgElement *hg_new_element(int dim, int m, int level, const float *x,
			  ItemPointer tid, double c, size_t *size)
{
	*size = hg_element_size(dim, m, level);
	HgElement *e = palloc0(*size);
	e->kind = HG_KIND_ELEMENT;
	e->level = (uint8)level;
	e->heaptid = *tid;
	if (hydb_half_fits(x, (size_t)dim, c))
		hydb_f32_to_f16(hg_elem_half(e), x, (size_t)dim);
	else
		e->flags |= HG_FAR;
	return e;
}

HgVector *hg_new_vector(int dim, const float *x)
{
	HgVector *v = palloc0(HG_VECTOR_SIZE(dim));
	v->kind = HG_KIND_VECTOR;
	memcpy(v->x, x, sizeof(float) * dim);
	return v;
}

static void insert_vector(Relation index, HgMeta *m, const float *x,
			  ItemPointer tid)
{
	hg_graph *g = hg_page_graph(index, m);
	int level = hg_random_level(&m->rng, (int)m->m), counts[HG_MAX_LEVEL];
	hg_node (*links)[HG_MAX_M] = palloc0(sizeof(hg_node) * HG_MAX_M * HG_MAX_LEVEL);
	size_t size;
	HgElement *e = hg_new_element((int)m->dim, (int)m->m, level, x, tid, m->c, &size);
	memset(counts, 0, sizeof counts);
	if (m->entry != HG_NONE) {
		hydb_kquery q;
		hg_search s;
		hg_search_init(&s, m->efc);
		hydb_kquery_init(&q, x, m->dim, m->c);
		hg_plan_links(g, &q, level, m->entry, m->max_level, (int)m->efc,
			      links, counts, &s);
		for (int l = 0; l <= level; l++) {
			memcpy(hg_elem_links(e, m->dim, m->m, l), links[l], sizeof(hg_node) * counts[l]);
			hg_elem_counts(e, m->dim)[l] = (uint16)counts[l];
		}
	}
	/* The vector first: an element always names an existing one. */
	e->vec = hg_place_element(index, m->insert_page, hg_new_vector((int)m->dim, x),
				  HG_VECTOR_SIZE(m->dim));
	/* A new entry point keeps the old one reachable: the old entry
	 * reaches every node, and the walk starts at the new one. */
	if (m->entry != HG_NONE && level > m->max_level) {
		hg_elem_tree(e, m->dim, m->m)[0] = m->entry;
		e->ntree = 1;
	}
	e->rank = level > m->max_level ? (int32)--m->min_rank : (int32)(m->nodes + 1);
	hg_node node = hg_place_element(index, hg_node_block(e->vec), e, size);
	if (m->entry != HG_NONE) {
		hg_link_back_all(g, node, level, links, counts);
		if (level <= m->max_level)
			hg_hang(g, node, e->rank, links[0], counts[0]);
	}
	m->nodes++;
	/* After the last list change: scans' cached lists are stale now. */
	m->links_gen++;
	m->insert_page = hg_node_block(node);
	if (m->entry == HG_NONE || level > m->max_level) {
		m->entry = node;
		m->max_level = level;
	}
	hg_update_meta(index, m);
}

/* Writers (insert, vacuum) take HG_UPDATE_LOCK on the index so that a list
 * read to be re-selected cannot change before it is written back; scans
 * take no such lock and see each page change whole. */
bool hg_insert(Relation index, Datum *values, bool *isnull, ItemPointer tid,
	       Relation heap, IndexUniqueCheck unique, bool unchanged,
	       struct IndexInfo *info)
{
	MemoryContext ctx, old;
	HgMeta m;
	if (isnull[0])
		return false;
	ctx = AllocSetContextCreate(CurrentMemoryContext, "hydb_hnsw insert",
				    ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ctx);
	Lorentz *v = DatumGetLorentz(values[0]);
	LockPage(index, HG_UPDATE_LOCK, ExclusiveLock);
	hg_meta_check_vector(index, v, false);
	hg_read_meta(index, &m);
	if (m.dim == 0) {
		hg_check_fits(index, v->dim, (int)m.m);
		m.dim = v->dim;
		m.c = v->c;
	}
	insert_vector(index, &m, v->x, tid);
	UnlockPage(index, HG_UPDATE_LOCK, ExclusiveLock);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	return false;
}
