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

#include <stdarg.h>
#include <stdio.h>
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

static uint32_t key_num(const MDB_val *k)
{
	const uint8_t *p = k->mv_data;
	return (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 |
	       (uint32_t)p[6] << 8 | p[7];
}

static uint32_t key_tag(const MDB_val *k)
{
	const uint8_t *p = k->mv_data;
	return k->mv_size != 8 ? 0
			       : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
					 (uint32_t)p[2] << 8 | p[3];
}

/* One record: which of its layers link to slot. */
static int scan_record(struct hnsw_ctx *cx, uint32_t tag, const MDB_val *k,
		       const MDB_val *v, uint32_t slot, struct fixes *fx)
{
	hydb_index *ix = cx->ix;
	uint32_t w = key_num(k);
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
	while (rc == 0 && key_tag(&k) == tag) {
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

/* w lost its link to gone on a layer: re-select from what it has left and
 * what gone linked to. */
static int repair(struct hnsw_ctx *cx, uint32_t w, unsigned level,
		  uint32_t gone, const uint32_t *gl, unsigned gn)
{
	hydb_index *ix = cx->ix;
	unsigned mmax = level ? ix->M : ix->M0, n, m = 0;
	uint32_t links[2 * HYDB_HNSW_MAX_M];
	struct hnsw_cand c[4 * HYDB_HNSW_MAX_M];
	FORWARD_IF_ERROR(hnsw_get_links(cx, w, level, links, &n));
	const float *v;
	hydb_kquery q;
	FORWARD_IF_ERROR(hnsw_slot_data(cx, w, &v, NULL, NULL));
	hydb_kquery_init(&q, v, ix->dim, ix->c);
	for (unsigned i = 0; i < n + gn; i++) {
		uint32_t s = i < n ? links[i] : gl[i - n];
		int dup = s == gone || s == w;
		for (unsigned j = 0; j < m && !dup; j++)
			dup = c[j].slot == s;
		if (dup)
			continue;
		c[m].slot = s;
		FORWARD_IF_ERROR(hnsw_walk_key(cx, &q, s, &c[m].key));
		m++;
	}
	hnsw_cand_sort(c, m);
	FORWARD_IF_ERROR(hnsw_select(cx, c, m, mmax, 0, links, &n));
	return hnsw_put_links(cx, w, level, links, n);
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

int hnsw_remove_in(struct hnsw_ctx *cx, uint32_t slot)
{
	struct hnsw_meta *m = &cx->meta;
	unsigned level;
	const hydb_slot_attr *a;
	FORWARD_IF_ERROR(hnsw_get_level(cx, slot, &level));
	struct fixes fx = {.best = HYDB_NO_SLOT};
	int rc = scan_links_to(cx, slot, &fx);
	if (rc == 0)
		rc = repair_all(cx, slot, level, &fx);
	free(fx.a);
	FORWARD_IF_ERROR(rc);
	FORWARD_IF_ERROR(hnsw_node_delete(cx, slot));
	if (hnsw_slot_data(cx, slot, NULL, &a, NULL) == 0 && a->modality < 3 &&
	    a->label < 3 && m->counts[a->modality][a->label])
		m->counts[a->modality][a->label]--;
	m->nodes--;
	if (m->entry == slot) {
		m->entry = fx.best;
		m->max_level = fx.best == HYDB_NO_SLOT ? 0 : fx.best_level;
	}
	return 0;
}

int hydb_index_remove(hydb_index *ix, MDB_txn *wtxn, uint32_t slot)
{
	RETURN_ERROR_IF(!ix || !wtxn, HYDB_EINVAL, "index remove: NULL argument");
	struct hnsw_ctx cx;
	FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, wtxn));
	int rc = hnsw_remove_in(&cx, slot);
	if (rc == 0)
		rc = hnsw_meta_save(ix, wtxn, &cx.meta);
	hnsw_ctx_end(&cx);
	return rc;
}

/* ---- check ------------------------------------------------------------- */

struct report {
	hydb_index_problem_fn fn;
	void *ctx;
	size_t n;
};

static void problem(struct report *r, const char *fmt, ...)
	HYDB_PRINTF(2, 3);

static void problem(struct report *r, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->n++;
	if (r->fn)
		r->fn(msg, r->ctx);
}

static uint64_t slot_id(struct hnsw_ctx *cx, uint32_t slot)
{
	const hydb_slot_attr *a;
	return hnsw_slot_data(cx, slot, NULL, &a, NULL) == 0 ? a->id : 0;
}

static void check_list(struct hnsw_ctx *cx, uint32_t w, unsigned level,
		       struct report *r)
{
	uint32_t links[2 * HYDB_HNSW_MAX_M];
	unsigned n, tl;
	if (hnsw_get_links(cx, w, level, links, &n) < 0) {
		problem(r, "slot %u (id %llu): layer %u unreadable: %s", w,
			(unsigned long long)slot_id(cx, w), level,
			hydb_last_error());
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		const hydb_slot_attr *a;
		uint32_t t = links[i];
		int bad = t == w || hnsw_get_level(cx, t, &tl) < 0 ||
			  tl < level ||
			  hnsw_slot_data(cx, t, NULL, &a, NULL) < 0 || !a->live;
		for (unsigned j = 0; j < i && !bad; j++)
			bad = links[j] == t;
		if (bad)
			problem(r,
				"slot %u (id %llu): layer %u links to slot %u, "
				"which is itself, repeated, free or not on "
				"that layer",
				w, (unsigned long long)slot_id(cx, w), level, t);
	}
}

static void check_node(struct hnsw_ctx *cx, uint32_t w, unsigned level,
		       struct report *r)
{
	const hydb_slot_attr *a;
	if (hnsw_slot_data(cx, w, NULL, &a, NULL) < 0 || !a->live)
		problem(r, "slot %u is a graph node but holds no record", w);
	if (level > cx->meta.max_level)
		problem(r, "slot %u (id %llu): level %u above the top %u", w,
			(unsigned long long)slot_id(cx, w), level,
			cx->meta.max_level);
	for (unsigned l = 0; l <= level; l++)
		check_list(cx, w, l, r);
}

static int check_nodes(struct hnsw_ctx *cx, struct report *r)
{
	MDB_cursor *cur;
	uint8_t key[8];
	uint64_t count = 0;
	int rc = mdb_cursor_open(cx->txn, cx->ix->src.nodes, &cur);
	RETURN_ERROR_IF(rc, HYDB_EIO, "index: cursor: %s", mdb_strerror(rc));
	hnsw_node_key(key, HNSW_TAG_L0, 0);
	MDB_val k = {8, key}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && key_tag(&k) == HNSW_TAG_L0) {
		uint32_t w = key_num(&k);
		unsigned level = ((const uint8_t *)v.mv_data)[0];
		count++;
		/* check_node reads other records: the cursor must not be
		 * used across them in a write txn, so step first. */
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		check_node(cx, w, level, r);
	}
	mdb_cursor_close(cur);
	RETURN_ERROR_IF(rc && rc != MDB_NOTFOUND, HYDB_EIO,
			"index: scanning nodes: %s", mdb_strerror(rc));
	if (count != cx->meta.nodes)
		problem(r, "graph has %llu nodes, its header says %llu",
			(unsigned long long)count,
			(unsigned long long)cx->meta.nodes);
	return 0;
}

/* Every live slot must be a node. */
static void check_live(struct hnsw_ctx *cx, struct report *r)
{
	hydb_index *ix = cx->ix;
	for (uint32_t b = 0;; b++) {
		hydb_block blk;
		if (ix->src.block(ix->src.ctx, cx->txn, b, &blk) < 0)
			break;
		for (uint32_t i = 0; i < HYDB_BLOCK_SLOTS; i++) {
			uint32_t s = b * HYDB_BLOCK_SLOTS + i;
			unsigned l;
			if (blk.attr[i].live && hnsw_get_level(cx, s, &l) < 0)
				problem(r,
					"slot %u (id %llu) holds a record but "
					"is not in the graph",
					s, (unsigned long long)blk.attr[i].id);
		}
	}
}

int hydb_index_check(hydb_index *ix, MDB_txn *rtxn, hydb_index_problem_fn fn,
		     void *ctx, size_t *nproblems)
{
	RETURN_ERROR_IF(!ix || !rtxn, HYDB_EINVAL, "index check: NULL argument");
	struct report r = {fn, ctx, 0};
	struct hnsw_ctx cx;
	FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, rtxn));
	int rc = check_nodes(&cx, &r);
	if (rc == 0) {
		check_live(&cx, &r);
		unsigned l;
		if (cx.meta.entry != HYDB_NO_SLOT &&
		    (hnsw_get_level(&cx, cx.meta.entry, &l) < 0 ||
		     l != cx.meta.max_level))
			problem(&r, "entry point slot %u is not a top-level node",
				cx.meta.entry);
		if (cx.meta.entry == HYDB_NO_SLOT && cx.meta.nodes)
			problem(&r, "graph has nodes but no entry point");
	}
	hnsw_ctx_end(&cx);
	if (nproblems)
		*nproblems = r.n;
	return rc;
}
