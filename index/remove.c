/*
 * remove.c - deleting a node, and the graph's invariant check.
 *
 * Links are directed and pruning drops back-links, so the nodes pointing at
 * a deleted node cannot be found from its own lists. Removal therefore scans
 * every node record (about 140 bytes each, a sequential cursor walk: a few
 * milliseconds per 100,000 nodes) and repairs each list that loses a link
 * with the heuristic, over its remaining links plus the deleted node's.
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
	uint32_t best;       /* highest-level node other than the removed */
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

static int has_link(const uint8_t *p, unsigned n, uint32_t slot)
{
	for (unsigned i = 0; i < n; i++) {
		uint32_t s;
		memcpy(&s, p + 4 * (size_t)i, 4);
		if (s == slot)
			return 1;
	}
	return 0;
}

/* One record: which of its layers link to slot. */
static int scan_record(struct hnsw_ctx *cx, uint32_t tag, const MDB_val *k,
		       const MDB_val *v, uint32_t slot, struct fixes *fx)
{
	hydb_index *ix = cx->ix;
	uint32_t w = hnsw_key_num(k);
	const uint8_t *p = v->mv_data;
	if (w == slot)
		return 0;
	if (tag == HNSW_TAG_L0) {
		uint16_t cnt;
		memcpy(&cnt, p + 2, 2);
		if (p[0] >= fx->best_level || fx->best == HYDB_NO_SLOT) {
			fx->best = w;
			fx->best_level = p[0];
		}
		return cnt <= ix->M0 && has_link(p + 4, cnt, slot)
			       ? fix_add(fx, w, 0)
			       : 0;
	}
	size_t stride = 4 * (size_t)(ix->M + 1);
	for (size_t l = 0; (l + 1) * stride <= v->mv_size; l++) {
		uint32_t cnt;
		memcpy(&cnt, p + l * stride, 4);
		if (cnt <= ix->M && has_link(p + l * stride + 4, cnt, slot))
			FORWARD_IF_ERROR(fix_add(fx, w, (unsigned)l + 1));
	}
	return 0;
}

static int scan_tag(struct hnsw_ctx *cx, MDB_cursor *cur, uint32_t tag,
		    uint32_t slot, struct fixes *fx)
{
	uint8_t key[8];
	hnsw_node_key(key, tag, 0);
	MDB_val k = {8, key}, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && hnsw_key_tag(&k) == tag) {
		FORWARD_IF_ERROR(scan_record(cx, tag, &k, &v, slot, fx));
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	RETURN_ERROR_IF(rc && rc != MDB_NOTFOUND, HYDB_EIO,
			"index: scanning nodes: %s", mdb_strerror(rc));
	return 0;
}

static int scan_links_to(struct hnsw_ctx *cx, uint32_t slot,
			 struct fixes *fx)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(cx->txn, cx->ix->src.nodes, &cur);
	RETURN_ERROR_IF(rc, HYDB_EIO, "index: cursor: %s", mdb_strerror(rc));
	rc = scan_tag(cx, cur, HNSW_TAG_L0, slot, fx);
	if (rc == 0)
		rc = scan_tag(cx, cur, HNSW_TAG_UP, slot, fx);
	mdb_cursor_close(cur);
	return rc;
}

/* Candidate c[*m] for w's list: s unless it is gone, w, kept or listed. */
static int add_cand(struct hnsw_ctx *cx, const hydb_kquery *q, uint32_t w,
		    uint32_t gone, const uint32_t *kept, unsigned nkept,
		    uint32_t s, struct hnsw_cand *c, unsigned *m)
{
	int dup = s == gone || s == w;
	for (unsigned j = 0; j < nkept && !dup; j++)
		dup = kept[j] == s;
	for (unsigned j = 0; j < *m && !dup; j++)
		dup = c[j].slot == s;
	if (dup)
		return 0;
	c[*m].slot = s;
	FORWARD_IF_ERROR(hnsw_walk_key(cx, q, s, &c[*m].key));
	(*m)++;
	return 0;
}

/* w lost its link to gone on a layer: re-select its ordinary links from
 * what it has left and what gone linked to; its tree links stay, but for
 * gone's. */
static int repair(struct hnsw_ctx *cx, uint32_t w, unsigned level,
		  uint32_t gone, const uint32_t *gl, unsigned gn)
{
	hydb_index *ix = cx->ix;
	unsigned mmax = level ? ix->M : ix->M0, prot = 0, m = 0, ns;
	struct hnsw_l0 r;
	struct hnsw_cand c[4 * HYDB_HNSW_MAX_M];
	uint32_t links[2 * HYDB_HNSW_MAX_M];
	if (level == 0) {
		FORWARD_IF_ERROR(hnsw_l0_get(cx, w, &r));
	} else {
		FORWARD_IF_ERROR(hnsw_get_links(cx, w, level, r.links, &r.n));
		r.prot = 0;
	}
	for (unsigned i = 0; i < r.prot; i++)
		if (r.links[i] != gone)
			links[prot++] = r.links[i];
	const float *v;
	hydb_kquery q;
	FORWARD_IF_ERROR(hnsw_slot_data(cx, w, &v, NULL, NULL));
	hydb_kquery_init(&q, v, ix->dim, ix->c);
	for (unsigned i = r.prot; i < r.n + gn; i++)
		FORWARD_IF_ERROR(add_cand(cx, &q, w, gone, links, prot,
					  i < r.n ? r.links[i] : gl[i - r.n],
					  c, &m));
	hnsw_cand_sort(c, m);
	FORWARD_IF_ERROR(hnsw_select(cx, c, m, mmax - prot, 0, links + prot,
				     &ns));
	if (level > 0)
		return hnsw_put_links(cx, w, level, links, prot + ns);
	memcpy(r.links, links, (prot + ns) * sizeof *links);
	r.n = prot + ns;
	r.prot = prot;
	return hnsw_l0_put(cx, w, &r);
}

static int repair_all(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		      const struct fixes *fx)
{
	uint32_t gl[2 * HYDB_HNSW_MAX_M];
	unsigned gn;
	for (size_t i = 0; i < fx->n; i++) {
		unsigned l = fx->a[i].level;
		gn = 0;
		if (l <= level)
			FORWARD_IF_ERROR(hnsw_get_links(cx, slot, l, gl, &gn));
		FORWARD_IF_ERROR(repair(cx, fx->a[i].slot, l, slot, gl, gn));
	}
	return 0;
}

/* The entry point goes: its successor is its nearest neighbour on the
 * highest layer it has any, takes over its lists as repair candidates on
 * every layer and its place as the root of the tree. */
static int move_entry(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		      int32_t rank, uint32_t fallback, unsigned fallback_level)
{
	struct hnsw_meta *m = &cx->meta;
	uint32_t gl[2 * HYDB_HNSW_MAX_M];
	unsigned gn = 0, el;
	int l = (int)level;
	for (; l >= 0 && gn == 0; l--)
		FORWARD_IF_ERROR(hnsw_get_links(cx, slot, (unsigned)l, gl, &gn));
	if (gn == 0) {
		m->entry = fallback;
		m->max_level = fallback == HYDB_NO_SLOT ? 0 : fallback_level;
		return hnsw_tree_succeed(cx, fallback, rank);
	}
	uint32_t e = gl[0];
	FORWARD_IF_ERROR(hnsw_get_level(cx, e, &el));
	for (unsigned k = 0; k <= el && k <= level; k++) {
		FORWARD_IF_ERROR(hnsw_get_links(cx, slot, k, gl, &gn));
		FORWARD_IF_ERROR(repair(cx, e, k, slot, gl, gn));
	}
	m->entry = e;
	m->max_level = el;
	return hnsw_tree_succeed(cx, e, rank);
}

int hnsw_remove_in(struct hnsw_ctx *cx, uint32_t slot)
{
	struct hnsw_meta *m = &cx->meta;
	unsigned level;
	const hydb_slot_attr *a;
	struct hnsw_l0 g;
	FORWARD_IF_ERROR(hnsw_l0_get(cx, slot, &g));
	level = g.level;
	struct fixes fx = {.best = HYDB_NO_SLOT};
	int rc = scan_links_to(cx, slot, &fx);
	if (rc == 0)
		rc = repair_all(cx, slot, level, &fx);
	free(fx.a);
	FORWARD_IF_ERROR(rc);
	if (m->entry == slot)
		FORWARD_IF_ERROR(move_entry(cx, slot, level, g.rank, fx.best,
					    fx.best_level));
	FORWARD_IF_ERROR(hnsw_tree_orphans(cx, slot, &g));
	FORWARD_IF_ERROR(hnsw_node_delete(cx, slot));
	if (hnsw_slot_data(cx, slot, NULL, &a, NULL) == 0 && a->modality < 3 &&
	    a->label < 3 && m->counts[a->modality][a->label])
		m->counts[a->modality][a->label]--;
	m->nodes--;
	return 0;
}

int hydb_index_remove(hydb_index *ix, MDB_txn *wtxn, uint32_t slot)
{
	RETURN_ERROR_IF(!ix || !wtxn, HYDB_EINVAL, "index remove: NULL argument");
	RETURN_ERROR_IF(ix->legacy, HYDB_EVERSION,
			"index remove: graph format 1 is read-only; rebuild "
			"the index to change it");
	struct hnsw_ctx cx;
	FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, wtxn));
	int rc = hnsw_remove_in(&cx, slot);
	if (rc == 0)
		rc = hnsw_meta_save(ix, wtxn, &cx.meta);
	hnsw_ctx_end(&cx);
	return rc;
}
