/*
 * remove.c - deleting nodes.
 *
 * Links are directed and pruning drops back-links, so the nodes pointing at
 * a deleted node cannot be found from its own lists. Removal therefore scans
 * every node record (about 140 bytes each, a sequential cursor walk: a few
 * milliseconds per 100,000 nodes) and repairs each list that links to a
 * deleted node with the heuristic, over its remaining links plus the
 * deleted nodes' links. A batch of deletions (the records an upsert
 * replaces) shares one scan: every node of the batch is marked doomed
 * first, and no repair, new entry point or new tree parent may pick a
 * doomed node, so no link to one is created while the others are handled.
 */
#include "index/hnsw_impl.h"

#include <stdlib.h>
#include <string.h>

struct fix {
	uint32_t slot;
	unsigned level;
};

struct fixes {
	struct fix *a;
	size_t n, cap;
	uint32_t best;       /* highest-level node that stays */
	unsigned best_level;
};

static int fix_add(struct fixes *fx, uint32_t slot, unsigned level)
{
	if (fx->n == fx->cap) {
		size_t cap = fx->cap ? 2 * fx->cap : 64;
		struct fix *a = realloc(fx->a, cap * sizeof *a);
		RETURN_ERROR_IF(!a, HYDB_ENOMEM, "index remove: out of memory");
		fx->a = a;
		fx->cap = cap;
	}
	fx->a[fx->n].slot = slot;
	fx->a[fx->n++].level = level;
	return 0;
}

static int links_doomed(const struct hnsw_ctx *cx, const uint8_t *p,
			unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint32_t s;
		memcpy(&s, p + HNSW_LINK_BYTES * (size_t)i, sizeof s);
		if (hnsw_doomed(cx, s))
			return 1;
	}
	return 0;
}

/* One record: which of its layers link to a doomed node. */
static int scan_record(struct hnsw_ctx *cx, uint32_t tag, const MDB_val *k,
		       const MDB_val *v, struct fixes *fx)
{
	hydb_index *ix = cx->ix;
	uint32_t w = hnsw_key_num(k);
	const uint8_t *p = v->mv_data;
	if (hnsw_doomed(cx, w))
		return 0;
	if (tag == HNSW_TAG_L0) {
		uint16_t cnt;
		memcpy(&cnt, p + HNSW_L0_DEGREE, sizeof cnt);
		if (p[HNSW_L0_LEVEL] >= fx->best_level || fx->best == HYDB_NO_SLOT) {
			fx->best = w;
			fx->best_level = p[HNSW_L0_LEVEL];
		}
		return cnt <= ix->M0 && links_doomed(cx, p + HNSW_L0_LINKS, cnt)
			       ? fix_add(fx, w, 0)
			       : 0;
	}
	size_t stride = HNSW_UP_STRIDE(ix->M);
	for (size_t l = 0; (l + 1) * stride <= v->mv_size; l++) {
		uint32_t cnt;
		memcpy(&cnt, p + l * stride, HNSW_UP_DEGREE_BYTES);
		if (cnt <= ix->M && links_doomed(cx, p + l * stride + HNSW_UP_DEGREE_BYTES, cnt))
			FORWARD_IF_ERROR(fix_add(fx, w, (unsigned)l + 1));
	}
	return 0;
}

static int scan_tag(struct hnsw_ctx *cx, MDB_cursor *cur, uint32_t tag,
		    struct fixes *fx)
{
	uint8_t key[8];
	hnsw_node_key(key, tag, 0);
	MDB_val k = {8, key}, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && hnsw_key_tag(&k) == tag) {
		FORWARD_IF_ERROR(scan_record(cx, tag, &k, &v, fx));
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	RETURN_ERROR_IF(rc && rc != MDB_NOTFOUND, HYDB_EIO,
			"index: scanning nodes: %s", mdb_strerror(rc));
	return 0;
}

static int scan_links_to_doomed(struct hnsw_ctx *cx, struct fixes *fx)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(cx->txn, cx->ix->src.nodes, &cur);
	RETURN_ERROR_IF(rc, HYDB_EIO, "index: cursor: %s", mdb_strerror(rc));
	rc = scan_tag(cx, cur, HNSW_TAG_L0, fx);
	if (rc == 0)
		rc = scan_tag(cx, cur, HNSW_TAG_UP, fx);
	mdb_cursor_close(cur);
	return rc;
}

#define REPAIR_CANDS (4 * HYDB_HNSW_MAX_M)

/* Candidate c[*m] for w's list: s unless it is doomed, already seen (w and
 * its kept tree links are marked first), or there is no room left. */
static int add_cand(struct hnsw_ctx *cx, const hydb_kquery *q, uint32_t s,
		    struct hnsw_cand *c, unsigned *m)
{
	if (*m == REPAIR_CANDS || hnsw_doomed(cx, s) || hnsw_visited(cx->sc, s))
		return 0;
	c[*m].slot = s;
	FORWARD_IF_ERROR(hnsw_walk_key(cx, q, s, &c[*m].key));
	(*m)++;
	return 0;
}

/* w's list on a layer links to doomed nodes: re-select its ordinary links
 * from what it keeps, what those doomed nodes and its other neighbours
 * link to, and extra[], back to its former length; its tree links stay
 * but for doomed ones. */
static int repair(struct hnsw_ctx *cx, uint32_t w, unsigned level,
		  const uint32_t *extra, unsigned nextra)
{
	hydb_index *ix = cx->ix;
	unsigned mmax = level ? ix->M : ix->M0, prot = 0, m = 0, ns, gn;
	struct hnsw_l0 r;
	struct hnsw_cand c[REPAIR_CANDS];
	uint32_t links[2 * HYDB_HNSW_MAX_M], gl[2 * HYDB_HNSW_MAX_M];
	if (level == 0) {
		FORWARD_IF_ERROR(hnsw_l0_get(cx, w, &r));
	} else {
		FORWARD_IF_ERROR(hnsw_get_links(cx, w, level, r.links, &r.n));
		r.prot = 0;
	}
	FORWARD_IF_ERROR(hnsw_visit_reset(cx));
	hnsw_visited(cx->sc, w);
	for (unsigned i = 0; i < r.prot; i++)
		if (!hnsw_doomed(cx, r.links[i])) {
			links[prot++] = r.links[i];
			hnsw_visited(cx->sc, r.links[i]);
		}
	const float *v;
	hydb_kquery q;
	FORWARD_IF_ERROR(hnsw_slot_data(cx, w, &v, NULL, NULL));
	hydb_kquery_init(&q, v, ix->dim, ix->c);
	for (unsigned i = 0; i < r.n; i++) {
		uint32_t s = r.links[i];
		if (!hnsw_doomed(cx, s)) {
			if (i >= r.prot)
				FORWARD_IF_ERROR(add_cand(cx, &q, s, c, &m));
			continue;
		}
		unsigned sl = 0;
		gn = 0;
		if (level)
			FORWARD_IF_ERROR(hnsw_get_level(cx, s, &sl));
		if (sl >= level)
			FORWARD_IF_ERROR(hnsw_get_links(cx, s, level, gl, &gn));
		for (unsigned j = 0; j < gn; j++)
			FORWARD_IF_ERROR(
				add_cand(cx, &q, gl[j], c, &m));
	}
	for (unsigned i = 0; i < nextra; i++)
		FORWARD_IF_ERROR(add_cand(cx, &q, extra[i], c, &m));
	/* and its remaining neighbours' neighbours: the deleted nodes'
	 * lists alone left recall 0.016 short of a fresh build after 30%
	 * were deleted and re-inserted (20,000 x 768), these 0.005. */
	for (unsigned i = 0; i < r.n; i++) {
		if (hnsw_doomed(cx, r.links[i]))
			continue;
		FORWARD_IF_ERROR(hnsw_get_links(cx, r.links[i], level, gl, &gn));
		for (unsigned j = 0; j < gn; j++)
			FORWARD_IF_ERROR(
				add_cand(cx, &q, gl[j], c, &m));
	}
	hnsw_cand_sort(c, m);
	/* As many ordinary links as before: the pure heuristic alone would
	 * thin every list near a deletion, and recall after deleting and
	 * re-inserting 30% fell 0.02 short of a fresh build. */
	unsigned before = r.n - prot;
	FORWARD_IF_ERROR(hnsw_select(cx, c, m, mmax - prot, before,
				     links + prot, &ns));
	if (level > 0)
		return hnsw_put_links(cx, w, level, links, prot + ns);
	memcpy(r.links, links, (prot + ns) * sizeof *links);
	r.n = prot + ns;
	r.prot = prot;
	return hnsw_l0_put(cx, w, &r);
}

/* The entry point goes: its successor is its nearest neighbour that stays,
 * on the highest layer it has one (or the highest node that stays, when
 * that is higher), takes over its lists as repair candidates on every
 * layer and its place as the root of the tree. */
static int move_entry(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		      int32_t rank, uint32_t fallback, unsigned fallback_level)
{
	struct hnsw_meta *m = &cx->meta;
	uint32_t gl[2 * HYDB_HNSW_MAX_M], e = HYDB_NO_SLOT;
	unsigned gn = 0, el;
	for (int l = (int)level; l >= 0 && e == HYDB_NO_SLOT; l--) {
		FORWARD_IF_ERROR(hnsw_get_links(cx, slot, (unsigned)l, gl, &gn));
		for (unsigned i = 0; i < gn && e == HYDB_NO_SLOT; i++)
			if (!hnsw_doomed(cx, gl[i]))
				e = gl[i];
	}
	if (e == HYDB_NO_SLOT) {
		m->entry = fallback;
		m->max_level = fallback == HYDB_NO_SLOT ? 0 : fallback_level;
		return hnsw_tree_succeed(cx, fallback, rank);
	}
	FORWARD_IF_ERROR(hnsw_get_level(cx, e, &el));
	/* The entry must be on the top layer: when the neighbour found is
	 * lower than some node that stays (the old entry's upper lists had
	 * emptied), the highest node takes over instead. */
	if (fallback != HYDB_NO_SLOT && fallback_level > el) {
		e = fallback;
		el = fallback_level;
	}
	for (unsigned k = 0; k <= el && k <= level; k++) {
		FORWARD_IF_ERROR(hnsw_get_links(cx, slot, k, gl, &gn));
		FORWARD_IF_ERROR(repair(cx, e, k, gl, gn));
	}
	m->entry = e;
	m->max_level = el;
	return hnsw_tree_succeed(cx, e, rank);
}

/* Mark slots[0..n) doomed; *kept receives how many distinct ones, their
 * records in g[]. */
static int doom(struct hnsw_ctx *cx, const uint32_t *slots, size_t n,
		uint8_t *bits, uint32_t *list, struct hnsw_l0 *g, size_t *kept)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t s = slots[i];
		RETURN_ERROR_IF(s >= cx->meta.slot_limit, HYDB_ENOTFOUND,
				"index: slot %u is not a graph node", s);
		if (bits[s >> 3] >> (s & 7) & 1)
			continue;
		FORWARD_IF_ERROR(hnsw_l0_get(cx, s, &g[k]));
		bits[s >> 3] |= (uint8_t)(1u << (s & 7));
		list[k++] = s;
	}
	*kept = k;
	return 0;
}

static int remove_doomed(struct hnsw_ctx *cx, const uint32_t *list,
			 const struct hnsw_l0 *g, size_t n)
{
	struct hnsw_meta *m = &cx->meta;
	struct fixes fx = {.best = HYDB_NO_SLOT};
	int rc = scan_links_to_doomed(cx, &fx);
	for (size_t i = 0; rc == 0 && i < fx.n; i++)
		rc = repair(cx, fx.a[i].slot, fx.a[i].level, NULL, 0);
	free(fx.a);
	FORWARD_IF_ERROR(rc);
	for (size_t i = 0; i < n; i++)
		if (m->entry == list[i])
			FORWARD_IF_ERROR(move_entry(cx, list[i], g[i].level,
						    g[i].rank, fx.best,
						    fx.best_level));
	for (size_t i = 0; i < n; i++)
		FORWARD_IF_ERROR(hnsw_tree_orphans(cx, list[i], &g[i]));
	for (size_t i = 0; i < n; i++) {
		const hydb_slot_attr *a;
		FORWARD_IF_ERROR(hnsw_node_delete(cx, list[i]));
		if (hnsw_slot_data(cx, list[i], NULL, &a, NULL) == 0 &&
		    a->modality < HYDB_N_MODALITIES && a->label < HYDB_N_LABELS &&
		    m->counts[a->modality][a->label])
			m->counts[a->modality][a->label]--;
		m->nodes--;
	}
	return 0;
}

int hnsw_remove_many_in(struct hnsw_ctx *cx, const uint32_t *slots, size_t n)
{
	size_t bytes = ((size_t)cx->meta.slot_limit + 7) / 8, k = 0;
	uint8_t *bits = calloc(bytes ? bytes : 1, 1);
	uint32_t *list = hydb_alloc_array(n ? n : 1, sizeof *list, "removals");
	struct hnsw_l0 *g = hydb_alloc_array(n ? n : 1, sizeof *g, "removals");
	int rc = bits && list && g ? 0 : HYDB_ENOMEM;
	if (!bits)
		hydb_error_set(HYDB_ENOMEM, "index remove: out of memory");
	if (rc == 0)
		rc = doom(cx, slots, n, bits, list, g, &k);
	if (rc == 0 && k) {
		cx->doomed = bits;
		cx->doomed_lim = cx->meta.slot_limit;
		rc = remove_doomed(cx, list, g, k);
		cx->doomed = NULL;
		cx->doomed_lim = 0;
	}
	free(bits);
	free(list);
	free(g);
	return rc;
}

int hnsw_remove_in(struct hnsw_ctx *cx, uint32_t slot)
{
	return hnsw_remove_many_in(cx, &slot, 1);
}

int hydb_index_remove_many(hydb_index *ix, MDB_txn *wtxn,
			   const uint32_t *slots, size_t n)
{
	RETURN_ERROR_IF(!ix || !wtxn || (!slots && n), HYDB_EINVAL,
			"index remove: NULL argument");
	RETURN_ERROR_IF(ix->legacy, HYDB_EVERSION,
			"index remove: graph format 1 is read-only; rebuild "
			"the index to change it");
	if (n == 0)
		return 0;
	struct hnsw_ctx cx;
	struct hnsw_pending *pend = NULL;
	FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, wtxn));
	/* Repairs hold their records (pending.c): a put each would expire
	 * the cached block pointers before the next repair's keys. The scan
	 * reads LMDB before anything is held; the deletions flush. */
	int rc = hnsw_pending_init(&pend);
	cx.pend = pend;
	if (rc == 0)
		rc = hnsw_remove_many_in(&cx, slots, n);
	if (rc == 0)
		rc = hnsw_pending_flush(&cx);
	cx.pend = NULL;
	hnsw_pending_free(pend);
	if (rc == 0)
		rc = hnsw_meta_save(ix, wtxn, &cx.meta);
	hnsw_ctx_end(&cx);
	return rc;
}

int hydb_index_remove(hydb_index *ix, MDB_txn *wtxn, uint32_t slot)
{
	return hydb_index_remove_many(ix, wtxn, &slot, 1);
}
