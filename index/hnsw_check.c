/*
 * hnsw_check.c - the graph's invariant check (hydb_index_check).
 *
 * Besides the per-list invariants, every live node must be reachable from
 * the entry point on layer 0: a node that no path leads to is invisible to
 * every search however large ef is, and nothing else reports it. Reachable
 * is not enough: a walk whose keys mislead it (a compact row that does not
 * match its vector, keys that overflowed) passes by a node it could reach,
 * so hydb_index_self_search searches nodes' own vectors.
 */
#include "index/hnsw_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t slot_id(struct hnsw_ctx *cx, uint32_t slot)
{
	const hydb_slot_attr *a;
	return hnsw_slot_data(cx, slot, NULL, &a, NULL) == 0 ? a->id : 0;
}

static void check_list(struct hnsw_ctx *cx, uint32_t w, unsigned level,
		       hydb_reporter *r)
{
	uint32_t links[2 * HYDB_HNSW_MAX_M];
	unsigned n, tl;
	if (hnsw_get_links(cx, w, level, links, &n) < 0) {
		hydb_report(r, "slot %u (id %llu): layer %u unreadable: %s", w,
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
			hydb_report(r,
				"slot %u (id %llu): layer %u links to slot %u, "
				"which is itself, repeated, free or not on "
				"that layer",
				w, (unsigned long long)slot_id(cx, w), level, t);
	}
}

static void check_node(struct hnsw_ctx *cx, uint32_t w, unsigned level,
		       hydb_reporter *r)
{
	const hydb_slot_attr *a;
	if (hnsw_slot_data(cx, w, NULL, &a, NULL) < 0 || !a->live)
		hydb_report(r, "slot %u is a graph node but holds no record", w);
	if (level > cx->meta.max_level)
		hydb_report(r, "slot %u (id %llu): level %u above the top %u", w,
			(unsigned long long)slot_id(cx, w), level,
			cx->meta.max_level);
	struct hnsw_l0 rec;
	if (hnsw_l0_get(cx, w, &rec) < 0)
		hydb_report(r, "slot %u (id %llu): layer-0 record: %s", w,
			(unsigned long long)slot_id(cx, w), hydb_last_error());
	for (unsigned l = 0; l <= level; l++)
		check_list(cx, w, l, r);
}

/* fn(cx, slot, level, arg) for every node record, in slot order. The
 * cursor steps before fn runs: fn reads other records. */
typedef void (*node_fn)(struct hnsw_ctx *cx, uint32_t w, unsigned level,
			void *arg);

static int each_node(struct hnsw_ctx *cx, node_fn fn, void *arg,
		     uint64_t *count)
{
	MDB_cursor *cur;
	uint8_t key[8];
	*count = 0;
	int rc = mdb_cursor_open(cx->txn, cx->ix->src.nodes, &cur);
	RETURN_ERROR_IF(rc, HYDB_EIO, "index: cursor: %s", mdb_strerror(rc));
	hnsw_node_key(key, HNSW_TAG_L0, 0);
	MDB_val k = {8, key}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && hnsw_key_tag(&k) == HNSW_TAG_L0) {
		uint32_t w = hnsw_key_num(&k);
		unsigned level = v.mv_size ? ((const uint8_t *)v.mv_data)[0] : 0;
		(*count)++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		fn(cx, w, level, arg);
	}
	mdb_cursor_close(cur);
	RETURN_ERROR_IF(rc && rc != MDB_NOTFOUND, HYDB_EIO,
			"index: scanning nodes: %s", mdb_strerror(rc));
	return 0;
}

static void node_visit(struct hnsw_ctx *cx, uint32_t w, unsigned level,
		       void *arg)
{
	check_node(cx, w, level, arg);
}

static int check_nodes(struct hnsw_ctx *cx, hydb_reporter *r)
{
	uint64_t count;
	FORWARD_IF_ERROR(each_node(cx, node_visit, r, &count));
	if (count != cx->meta.nodes)
		hydb_report(r, "graph has %llu nodes, its header says %llu",
			(unsigned long long)count,
			(unsigned long long)cx->meta.nodes);
	return 0;
}

/* Every live slot must be a node. */
static void check_live(struct hnsw_ctx *cx, hydb_reporter *r)
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
				hydb_report(r,
					"slot %u (id %llu) holds a record but "
					"is not in the graph",
					s, (unsigned long long)blk.attr[i].id);
		}
	}
}

/* ---- reachability ------------------------------------------------------ */

struct reach {
	uint8_t *seen; /* slot_limit flags */
	uint32_t *queue;
	size_t head, tail;
	hydb_reporter *r;
	int tree;      /* follow only the reachability tree's links */
};

static void reach_push(struct hnsw_ctx *cx, struct reach *re, uint32_t s)
{
	if (s >= cx->meta.slot_limit || re->seen[s])
		return;
	re->seen[s] = 1;
	re->queue[re->tail++] = s;
}

/* Breadth first over layer 0: searches reach the bottom through the upper
 * layers but walk only layer 0 there, so a node counts as reachable only
 * if a layer-0 path from the entry point leads to it. */
static void reach_walk(struct hnsw_ctx *cx, struct reach *re)
{
	uint32_t links[2 * HYDB_HNSW_MAX_M];
	unsigned n;
	struct hnsw_l0 r, c;
	reach_push(cx, re, cx->meta.entry);
	while (re->head < re->tail) {
		uint32_t w = re->queue[re->head++];
		if (!re->tree) {
			if (hnsw_get_links(cx, w, 0, links, &n) < 0)
				continue;
			for (unsigned i = 0; i < n; i++)
				reach_push(cx, re, links[i]);
			continue;
		}
		/* a tree link counts only while it climbs in rank (reach.c) */
		if (hnsw_l0_get(cx, w, &r) < 0)
			continue;
		for (unsigned i = 0; i < r.prot; i++)
			if (r.links[i] < cx->meta.slot_limit &&
			    !re->seen[r.links[i]] &&
			    hnsw_l0_get(cx, r.links[i], &c) == 0 &&
			    r.rank < c.rank)
				reach_push(cx, re, r.links[i]);
	}
}

static void reach_report(struct hnsw_ctx *cx, uint32_t w, unsigned level,
			 void *arg)
{
	struct reach *re = arg;
	(void)level;
	if (w < cx->meta.slot_limit && re->seen[w])
		return;
	if (re->tree)
		hydb_report(re->r,
			"slot %u (id %llu) is outside the reachability tree",
			w, (unsigned long long)slot_id(cx, w));
	else
		hydb_report(re->r,
			"slot %u (id %llu) cannot be reached from the entry "
			"point on layer 0",
			w, (unsigned long long)slot_id(cx, w));
}

static int check_reach(struct hnsw_ctx *cx, hydb_reporter *r, int tree)
{
	uint64_t count;
	if (cx->meta.entry == HYDB_NO_SLOT)
		return 0;
	struct reach re = {.r = r, .tree = tree};
	size_t lim = cx->meta.slot_limit;
	re.seen = calloc(lim ? lim : 1, 1);
	re.queue = hydb_alloc_array(lim ? lim : 1, sizeof *re.queue,
				    "reachability queue");
	int rc = re.seen && re.queue ? 0 : HYDB_ENOMEM;
	if (!re.seen)
		hydb_error_set(rc, "index check: no memory for %zu flags", lim);
	if (rc == 0) {
		reach_walk(cx, &re);
		rc = each_node(cx, reach_report, &re, &count);
	}
	free(re.seen);
	free(re.queue);
	return rc;
}

/* ---- self-search ------------------------------------------------------- */

struct self {
	hydb_self_search *ss;
	hydb_reporter miss, lost;
	size_t ef, wide;
	uint64_t nodes, seen;
	const uint8_t *reached; /* layer-0 reachability, slot_limit flags */
	float *vec;
	int rc; /* the first failed search: the rest are skipped */
};

/* Whether a search for v at beam ef returns slot w or a point at key 0
 * (an identical vector). */
static int finds(struct hnsw_ctx *cx, struct self *sf, uint32_t w, size_t ef,
		 hydb_hit *hit)
{
	size_t n;
	sf->rc = hydb_index_search(cx->ix, cx->txn, sf->vec, 1, ef, NULL, hit,
				   &n, NULL);
	if (n == 0)
		hit->id = 0, hit->key = INFINITY;
	return sf->rc == 0 && n == 1 && (hit->slot == w || hit->key == 0);
}

static void self_visit(struct hnsw_ctx *cx, uint32_t w, unsigned level,
		       void *arg)
{
	struct self *sf = arg;
	const hydb_slot_attr *a;
	const float *v;
	hydb_hit hit;
	(void)level;
	/* node i of the scan is taken when floor(i limit / nodes) steps:
	 * limit nodes evenly spread, the same ones on every run */
	uint64_t i = sf->seen++, lim = sf->ss->limit;
	if (sf->rc < 0 || (lim && sf->ss->checked >= lim) ||
	    (lim && sf->nodes > lim && (i * lim) % sf->nodes >= lim))
		return;
	/* a free slot that is a node is damage hydb_index_check reports */
	if (hnsw_slot_data(cx, w, &v, &a, NULL) < 0 || !a->live)
		return;
	memcpy(sf->vec, v, cx->ix->dim * sizeof *v);
	sf->ss->checked++;
	if (finds(cx, sf, w, sf->ef, &hit) || sf->rc < 0)
		return;
	/* unreachable nodes are hydb_index_unreachable's to report */
	int reach = w < cx->meta.slot_limit && sf->reached[w];
	if (sf->wide > sf->ef && reach) {
		hydb_hit wh;
		if (!finds(cx, sf, w, sf->wide, &wh)) {
			if (sf->rc == 0)
				hydb_report(&sf->lost,
					"slot %u (id %llu): a search for its "
					"own vector misses it even at ef %zu "
					"(returns id %llu at key %.6g): the walk "
					"cannot steer to it",
					w, (unsigned long long)a->id, sf->wide,
					(unsigned long long)wh.id, wh.key);
			return;
		}
	}
	hydb_report(&sf->miss,
		"slot %u (id %llu): a search for its own vector at ef %zu "
		"returns id %llu at key %.6g instead",
		w, (unsigned long long)a->id, sf->ef,
		(unsigned long long)hit.id, hit.key);
}

int hydb_index_self_search_run(hydb_index *ix, MDB_txn *rtxn,
			       hydb_self_search *ss)
{
	RETURN_ERROR_IF(!ix || !rtxn || !ss, HYDB_EINVAL,
			"index self-search: NULL argument");
	struct hnsw_ctx cx;
	uint64_t count;
	ss->checked = ss->missed = ss->lost = 0;
	FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, rtxn));
	struct self sf = {.ss = ss, .miss = {ss->miss_fn, ss->ctx, 0},
			  .lost = {ss->lost_fn, ss->ctx, 0},
			  .ef = ss->ef ? ss->ef : HYDB_HNSW_DEFAULT_EF,
			  .wide = ss->wide_ef, .nodes = cx.meta.nodes};
	struct reach re = {.r = NULL};
	size_t lim = cx.meta.slot_limit ? cx.meta.slot_limit : 1;
	re.seen = calloc(lim, 1);
	re.queue = hydb_alloc_array(lim, sizeof *re.queue, "reachability queue");
	sf.vec = hydb_alloc_array(ix->dim, sizeof *sf.vec, "query vector");
	int rc = re.seen && re.queue && sf.vec ? 0 : HYDB_ENOMEM;
	if (!re.seen)
		hydb_error_set(rc, "index self-search: no memory for %zu flags",
			       lim);
	if (rc == 0 && cx.meta.entry != HYDB_NO_SLOT)
		reach_walk(&cx, &re);
	sf.reached = re.seen;
	if (rc == 0)
		rc = each_node(&cx, self_visit, &sf, &count);
	hnsw_ctx_end(&cx);
	free(re.seen);
	free(re.queue);
	free(sf.vec);
	FORWARD_IF_ERROR(rc);
	FORWARD_IF_ERROR(sf.rc);
	ss->missed = sf.miss.n;
	ss->lost = sf.lost.n;
	return 0;
}

int hydb_index_self_search(hydb_index *ix, MDB_txn *rtxn, size_t ef,
			   size_t limit, hydb_index_problem_fn fn, void *ctx,
			   size_t *nchecked, size_t *nmissed)
{
	hydb_self_search ss = {.ef = ef, .limit = limit, .miss_fn = fn,
			       .lost_fn = fn, .ctx = ctx};
	RETURN_ERROR_IF(!nchecked || !nmissed, HYDB_EINVAL,
			"index self-search: NULL argument");
	FORWARD_IF_ERROR(hydb_index_self_search_run(ix, rtxn, &ss));
	*nchecked = ss.checked;
	*nmissed = ss.missed + ss.lost;
	return 0;
}

static void check_entry(struct hnsw_ctx *cx, hydb_reporter *r)
{
	unsigned l;
	if (cx->meta.entry != HYDB_NO_SLOT &&
	    (hnsw_get_level(cx, cx->meta.entry, &l) < 0 ||
	     l != cx->meta.max_level))
		hydb_report(r, "entry point slot %u is not a top-level node",
			cx->meta.entry);
	if (cx->meta.entry == HYDB_NO_SLOT && cx->meta.nodes)
		hydb_report(r, "graph has nodes but no entry point");
}

int hydb_index_check(hydb_index *ix, MDB_txn *rtxn, hydb_index_problem_fn fn,
		     void *ctx, size_t *nproblems)
{
	RETURN_ERROR_IF(!ix || !rtxn, HYDB_EINVAL, "index check: NULL argument");
	hydb_reporter r = {fn, ctx, 0};
	struct hnsw_ctx cx;
	FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, rtxn));
	int rc = check_nodes(&cx, &r);
	if (rc == 0) {
		check_live(&cx, &r);
		check_entry(&cx, &r);
	}
	hnsw_ctx_end(&cx);
	if (nproblems)
		*nproblems = r.n;
	return rc;
}

int hydb_index_unreachable(hydb_index *ix, MDB_txn *rtxn, hydb_index_problem_fn fn,
			   void *ctx, size_t *nunreachable)
{
	RETURN_ERROR_IF(!ix || !rtxn, HYDB_EINVAL, "index check: NULL argument");
	hydb_reporter r = {fn, ctx, 0};
	struct hnsw_ctx cx;
	FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, rtxn));
	int rc = check_reach(&cx, &r, 0);
	hnsw_ctx_end(&cx);
	if (nunreachable)
		*nunreachable = r.n;
	return rc;
}

int hydb_index_outside_tree(hydb_index *ix, MDB_txn *rtxn,
			    hydb_index_problem_fn fn, void *ctx, size_t *nout)
{
	RETURN_ERROR_IF(!ix || !rtxn, HYDB_EINVAL, "index check: NULL argument");
	hydb_reporter r = {fn, ctx, 0};
	struct hnsw_ctx cx;
	int rc = 0;
	if (!ix->legacy) {
		FORWARD_IF_ERROR(hnsw_ctx_begin(&cx, ix, rtxn));
		rc = check_reach(&cx, &r, 1);
		hnsw_ctx_end(&cx);
	}
	if (nout)
		*nout = r.n;
	return rc;
}
