/*
 * insert.c - adding slots to the graph inside the caller's write txn.
 */
#include "index/hnsw_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: the state lives in hnsw_meta, so the same inserts in the same
 * order give the same graph. */
/* How far a new node's own lists are topped up with pruned candidates:
 * M (bench builds: HYDB_HNSW_FILL=N, 0 for the plain heuristic). */
unsigned hnsw_fill(const hydb_index *ix)
{
	return (unsigned)hydb_bench_switch("HYDB_HNSW_FILL", ix->M);
}

unsigned hnsw_random_level(hydb_index *ix, struct hnsw_meta *m)
{
	uint64_t z = (m->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	double u = ((z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
	double l = -log(u) * ix->level_mult;
	return l >= HYDB_HNSW_MAX_LEVEL ? HYDB_HNSW_MAX_LEVEL : (unsigned)l;
}

void hnsw_count_attr(struct hnsw_meta *m, const hydb_slot_attr *a, int d)
{
	if (a->modality < HYDB_N_MODALITIES && a->label < HYDB_N_LABELS)
		m->counts[a->modality][a->label] += (uint64_t)(int64_t)d;
}

/* Layers level..0, each from the nearest node found on the layer above. */
static int link_layers(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		       const hydb_kquery *q)
{
	hydb_index *ix = cx->ix;
	struct hnsw_meta *m = &cx->meta;
	uint32_t cur = m->entry, sel[HYDB_HNSW_MAX_M];
	double curkey;
	FORWARD_IF_ERROR(hnsw_walk_key(cx, q, cur, &curkey));
	if (level < m->max_level)
		FORWARD_IF_ERROR(hnsw_greedy(cx, q, m->max_level, level, &cur,
					     &curkey));
	struct hnsw_cand *w = hydb_alloc_array(ix->efc + 1, sizeof *w,
					       "insert candidates");
	if (!w)
		return HYDB_ENOMEM;
	int rc = 0;
	for (int l = (int)(level < m->max_level ? level : m->max_level);
	     l >= 0 && rc == 0; l--) {
		size_t nr, nw = 0;
		unsigned ns;
		rc = hnsw_search_layer(cx, q, cur, curkey, ix->efc, (unsigned)l,
				       NULL, &nr);
		for (size_t i = 0; rc == 0 && i < nr; i++)
			if (cx->sc->res[i].slot != slot)
				w[nw++] = cx->sc->res[i];
		if (rc || nw == 0)
			break;
		cur = w[0].slot;
		curkey = w[0].key;
		rc = hnsw_select(cx, w, nw, ix->M, hnsw_fill(ix), sel, &ns);
		if (rc == 0)
			rc = hnsw_connect(cx, slot, (unsigned)l, sel, ns);
		if (rc == 0 && l == 0)
			rc = hnsw_tree_join(cx, slot, level, w, nw);
	}
	free(w);
	return rc;
}

static int insert_one(struct hnsw_ctx *cx, uint32_t slot, float *qbuf)
{
	hydb_index *ix = cx->ix;
	struct hnsw_meta *m = &cx->meta;
	unsigned level;
	if (hnsw_get_level(cx, slot, &level) == 0) {
		/* The removal scans the records in LMDB. */
		FORWARD_IF_ERROR(hnsw_pending_flush(cx));
		FORWARD_IF_ERROR(hnsw_remove_in(cx, slot));
	}
	const float *v;
	const hydb_slot_attr *a;
	FORWARD_IF_ERROR(hnsw_slot_data(cx, slot, &v, &a, NULL));
	RETURN_ERROR_IF(!a->live, HYDB_EINVAL,
			"index: insert of slot %u, which holds no record", slot);
	hnsw_count_attr(m, a, 1);
	/* Our own writes may move the block this pointer came from. */
	memcpy(qbuf, v, ix->dim * sizeof *qbuf);
	level = hnsw_random_level(ix, m);
	FORWARD_IF_ERROR(hnsw_node_create(cx, slot, level));
	m->nodes++;
	if (m->entry == HYDB_NO_SLOT) {
		m->entry = slot;
		m->max_level = level;
		return 0;
	}
	hydb_kquery q;
	hydb_kquery_init(&q, qbuf, ix->dim, ix->c);
	FORWARD_IF_ERROR(link_layers(cx, slot, level, &q));
	if (level > m->max_level) {
		m->entry = slot;
		m->max_level = level;
	}
	return 0;
}

int hnsw_insert_serial(struct hnsw_ctx *cx, const uint32_t *slots, size_t n)
{
	float *qbuf = hydb_alloc_array(cx->ix->dim, sizeof *qbuf, "query");
	if (!qbuf)
		return HYDB_ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = insert_one(cx, slots[i], qbuf);
		if (rc == 0 && hnsw_pending_full(cx->pend))
			rc = hnsw_pending_flush(cx);
	}
	free(qbuf);
	return rc;
}

struct by_radius {
	float radius;
	uint32_t i;
};

static int by_radius_cmp(const void *a, const void *b)
{
	const struct by_radius *x = a, *y = b;
	if (x->radius != y->radius)
		return x->radius < y->radius ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

/* The batch nearest the origin first. Hyperbolic data is tree-like: a
 * point's nearest neighbours mostly lie nearer the origin than it does.
 * Inserted after them, it links to them and they link back; inserted
 * before them, its only in-links come from points that arrive later and
 * farther out, outside the beam of a search for it (300 points at radii
 * 5-15 in 16 dimensions, points near the origin last: 4% missed
 * themselves at the default ef, none in this order). Ties keep the
 * caller's order, so a repeated slot is inserted in order. */
int hydb_hnsw_radius_order(const float *radius, size_t n, uint32_t *order)
{
	struct by_radius *o = hydb_alloc_array(n ? n : 1, sizeof *o, "insert order");
	if (!o)
		return HYDB_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		o[i].radius = radius[i] == radius[i] ? radius[i] : 0;
		o[i].i = (uint32_t)i;
	}
	/* bench builds: HYDB_HNSW_CALLER_ORDER=1 keeps the caller's order */
	if (!hydb_bench_switch("HYDB_HNSW_CALLER_ORDER", 0))
		qsort(o, n, sizeof *o, by_radius_cmp);
	for (size_t i = 0; i < n; i++)
		order[i] = o[i].i;
	free(o);
	return 0;
}

static uint32_t *radius_order(struct hnsw_ctx *cx, const uint32_t *slots,
			      size_t n)
{
	float *r = hydb_alloc_array(n, sizeof *r, "insert order");
	uint32_t *out = hydb_alloc_array(n, sizeof *out, "insert order");
	int rc = r && out ? 0 : HYDB_ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const hydb_slot_attr *a;
		rc = hnsw_slot_data(cx, slots[i], NULL, &a, NULL);
		r[i] = rc == 0 ? a->radius : 0;
	}
	if (rc == 0)
		rc = hydb_hnsw_radius_order(r, n, out);
	for (size_t i = 0; rc == 0 && i < n; i++)
		out[i] = slots[out[i]];
	free(r);
	if (rc < 0) {
		free(out);
		return NULL;
	}
	return out;
}

int hydb_index_insert(hydb_index *ix, MDB_txn *wtxn, const uint32_t *slots,
		      size_t n)
{
	RETURN_ERROR_IF(!ix || !wtxn || (!slots && n), HYDB_EINVAL,
			"index insert: NULL argument");
	RETURN_ERROR_IF(ix->legacy, HYDB_EVERSION,
			"index insert: graph format 1 is read-only; rebuild "
			"the index to change it");
	if (n == 0)
		return 0;
	struct hnsw_ctx cx;
	FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, wtxn));
	for (size_t i = 0; i < n; i++) {
		if (slots[i] == HYDB_NO_SLOT) {
			hnsw_ctx_end(&cx);
			return hydb_error_set(HYDB_EINVAL,
					      "index insert: entry %zu has no slot",
					      i);
		}
		if (slots[i] >= cx.meta.slot_limit)
			cx.meta.slot_limit = slots[i] + 1;
	}
	int rc = hnsw_visit_reset(&cx);
	if (rc == 0)
		rc = hnsw_compact_write(&cx, slots, n);
	uint32_t *order = rc == 0 ? radius_order(&cx, slots, n) : NULL;
	if (rc == 0 && !order)
		rc = HYDB_ENOMEM;
	slots = order;
	/* bench builds: HYDB_HNSW_PLAIN_LINKING=1 puts every list as it
	 * changes and computes every key afresh (the earlier path). */
	struct hnsw_pending *pend = NULL;
	struct hnsw_pairs *pairs = NULL;
	if (rc == 0 && !hydb_bench_switch("HYDB_HNSW_PLAIN_LINKING", 0)) {
		rc = hnsw_pending_init(&pend);
		/* Clearing the 16 MB table costs more than a few inserts
		 * gain from it (a single put took 2.5x as long). */
		if (rc == 0 && n >= HNSW_PAIRS_MIN_INSERTS)
			rc = hnsw_pairs_init(&pairs);
	}
	cx.pend = pend;
	cx.pairs = pairs;
	/* A graph too small to search well is grown serially first. */
	size_t serial = 0;
	if (ix->threads > 1 && cx.meta.nodes < 4 * 64)
		serial = 4 * 64 - (size_t)cx.meta.nodes;
	if (ix->threads <= 1 || serial > n)
		serial = n;
	if (rc == 0)
		rc = hnsw_insert_serial(&cx, slots, serial);
	if (rc == 0 && serial < n)
		rc = hnsw_insert_parallel(&cx, slots + serial, n - serial);
	if (rc == 0)
		rc = hnsw_pending_flush(&cx);
	cx.pend = NULL;
	cx.pairs = NULL;
	hnsw_pending_free(pend);
	hnsw_pairs_free(pairs);
	free(order);
	if (rc == 0)
		rc = hnsw_meta_save(ix, wtxn, &cx.meta);
	hnsw_ctx_end(&cx);
	return rc;
}
