/*
 * walk.c - HNSW search on one layer, neighbour selection and linking.
 *
 * Follows Malkov & Yashunin (arXiv:1603.09320): greedy descent through the
 * upper layers, a beam of width ef on the target layer, and the
 * diversity heuristic that keeps a candidate only if it is closer to the
 * base than to every neighbour already kept.
 */
#include "index/hnsw_impl.h"

#include <stdlib.h>
#include <string.h>

/* The key used while walking: the compact copy where the row has one. */
int hnsw_walk_key(struct hnsw_ctx *cx, const hydb_kquery *q, uint32_t slot,
		  double *key)
{
	const void *row;
	int half;
	FORWARD_IF_ERROR(hnsw_walk_row(cx, slot, &row, &half));
	*key = half ? hydb_key_f16(q, row) : hydb_key_f32(q, row);
	return 0;
}

/* ---- heaps: sign +1 keeps the minimum on top, -1 the maximum ----------- */

static inline int above(const struct hnsw_cand *a, const struct hnsw_cand *b,
			int sign)
{
	return sign > 0 ? a->key < b->key : a->key > b->key;
}

static void heap_push(struct hnsw_cand *h, size_t *n, struct hnsw_cand c,
		      int sign)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!above(&c, &h[p], sign))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = c;
}

static struct hnsw_cand heap_pop(struct hnsw_cand *h, size_t *n, int sign)
{
	assert(*n > 0);
	struct hnsw_cand top = h[0], last = h[--(*n)];
	size_t i = 0, m = *n;
	for (;;) {
		size_t l = 2 * i + 1, best = l;
		if (l >= m)
			break;
		if (l + 1 < m && above(&h[l + 1], &h[l], sign))
			best = l + 1;
		if (!above(&h[best], &last, sign))
			break;
		h[i] = h[best];
		i = best;
	}
	if (m)
		h[i] = last;
	return top;
}

static inline int cand_less(const struct hnsw_cand *x,
			    const struct hnsw_cand *y)
{
	return x->key < y->key || (x->key == y->key && x->slot < y->slot);
}

static int cand_cmp(const void *a, const void *b)
{
	const struct hnsw_cand *x = a, *y = b;
	return cand_less(x, y) ? -1 : cand_less(y, x);
}

/* Runs of 16 by insertion, then merges, all with the comparison inline:
 * qsort's callback per comparison cost more than the sorting (every
 * search sorts its ef results, every re-selection its list). */
void hnsw_cand_sort(struct hnsw_cand *c, size_t n)
{
	struct hnsw_cand tmp[1024], *a = c, *b = tmp;
	if (n > sizeof tmp / sizeof *tmp) {
		qsort(c, n, sizeof *c, cand_cmp);
		return;
	}
	for (size_t lo = 0; lo < n; lo += 16) {
		size_t hi = lo + 16 < n ? lo + 16 : n;
		for (size_t i = lo + 1; i < hi; i++) {
			struct hnsw_cand v = c[i];
			size_t j = i;
			for (; j > lo && cand_less(&v, &c[j - 1]); j--)
				c[j] = c[j - 1];
			c[j] = v;
		}
	}
	for (size_t w = 16; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n;
			size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				b[k++] = cand_less(&a[j], &a[i]) ? a[j++] : a[i++];
			while (i < mid)
				b[k++] = a[i++];
			while (j < hi)
				b[k++] = a[j++];
		}
		struct hnsw_cand *t = a;
		a = b;
		b = t;
	}
	if (a != c)
		memcpy(c, a, n * sizeof *c);
}

/* ---- layer search ------------------------------------------------------ */

int hnsw_greedy(struct hnsw_ctx *cx, const hydb_kquery *q, unsigned top,
		unsigned bottom, uint32_t *cur, double *curkey)
{
	uint32_t *links = cx->sc->links;
	for (unsigned l = top; l > bottom; l--) {
		for (int changed = 1; changed;) {
			unsigned n;
			changed = 0;
			FORWARD_IF_ERROR(hnsw_get_links(cx, *cur, l, links, &n));
			for (unsigned i = 0; i < n; i++) {
				double k;
				if (links[i] == cx->skip)
					continue;
				FORWARD_IF_ERROR(hnsw_walk_key(cx, q, links[i], &k));
				if (k < *curkey) {
					*curkey = k;
					*cur = links[i];
					changed = 1;
				}
			}
		}
	}
	return 0;
}

/* 1 when slot matches f, 0 when not, or the error of reading it: a read
 * that fails is the caller's error, never a node quietly left out. */
static int accepts(struct hnsw_ctx *cx, const hydb_filter *f, uint32_t slot)
{
	const hydb_slot_attr *a;
	const float *v = NULL;
	if (!f)
		return 1;
	FORWARD_IF_ERROR(hnsw_slot_data(cx, slot, f->cone ? &v : NULL, &a, NULL));
	return hydb_filter_match(f, a) && hydb_filter_cone_match(f, v);
}

/* Keys of a node's unvisited neighbours, measured as one batch. */
static int expand(struct hnsw_ctx *cx, const hydb_kquery *q, uint32_t node,
		  unsigned level, struct hnsw_cand *out, unsigned *nout)
{
	struct hnsw_scratch *sc = cx->sc;
	const uint32_t *links;
	/* half rows from the front of ptr, float32 rows from the back */
	const void *ptr[2 * HYDB_HNSW_MAX_M];
	double keys[2 * HYDB_HNSW_MAX_M];
	unsigned n, m = 0, nh = 0, nf = 0;
	uint8_t at[2 * HYDB_HNSW_MAX_M];
	FORWARD_IF_ERROR(hnsw_links_view(cx, node, level, &links, &n));
	for (unsigned i = 0; i < n; i++) {
		const void *row;
		int half;
		if (hnsw_visited(sc, links[i]))
			continue;
		FORWARD_IF_ERROR(hnsw_walk_row(cx, links[i], &row, &half));
		at[m] = half ? (uint8_t)nh : (uint8_t)(n - 1 - nf);
		ptr[at[m]] = row;
		nh += !!half;
		nf += !half;
		out[m++].slot = links[i];
	}
	hydb_keys_f16(q, (const uint16_t *const *)ptr, nh, keys);
	hydb_keys_f32(q, (const float *const *)ptr + n - nf, nf, keys + n - nf);
	for (unsigned i = 0; i < m; i++)
		out[i].key = keys[at[i]];
	*nout = m;
	return 0;
}

int hnsw_search_layer(struct hnsw_ctx *cx, const hydb_kquery *q,
		      uint32_t entry, double entry_key, size_t ef,
		      unsigned level, const hydb_filter *f, size_t *nres)
{
	struct hnsw_scratch *sc = cx->sc;
	struct hnsw_cand nb[2 * HYDB_HNSW_MAX_M];
	size_t nc = 0, nr = 0;
	FORWARD_IF_ERROR(hnsw_visit_reset(cx));
	if (cx->skip != HYDB_NO_SLOT && cx->skip != entry)
		hnsw_visited(sc, cx->skip);
	FORWARD_IF_ERROR(hnsw_cand_reserve(&sc->cand, &sc->cand_cap, 64));
	FORWARD_IF_ERROR(hnsw_cand_reserve(&sc->res, &sc->res_cap, ef + 1));
	hnsw_visited(sc, entry);
	struct hnsw_cand e = {entry_key, entry};
	heap_push(sc->cand, &nc, e, 1);
	int ok = accepts(cx, f, entry);
	FORWARD_IF_ERROR(ok);
	if (ok)
		heap_push(sc->res, &nr, e, -1);
	while (nc) {
		struct hnsw_cand c = heap_pop(sc->cand, &nc, 1);
		double bound = nr ? sc->res[0].key : INFINITY;
		/* Unfiltered the beam stops at its bound; filtered it goes on
		 * until ef matches are held. */
		if (c.key > bound && (nr >= ef || !f))
			break;
		unsigned m;
		FORWARD_IF_ERROR(expand(cx, q, c.slot, level, nb, &m));
		FORWARD_IF_ERROR(
			hnsw_cand_reserve(&sc->cand, &sc->cand_cap, nc + m));
		for (unsigned i = 0; i < m; i++) {
			bound = nr ? sc->res[0].key : INFINITY;
			if (nr >= ef && nb[i].key >= bound)
				continue;
			heap_push(sc->cand, &nc, nb[i], 1);
			/* unfiltered, the per-neighbour test is not even called:
			 * this loop is the walk's innermost */
			if (f) {
				ok = accepts(cx, f, nb[i].slot);
				FORWARD_IF_ERROR(ok);
				if (!ok)
					continue;
			}
			heap_push(sc->res, &nr, nb[i], -1);
			if (nr > ef)
				heap_pop(sc->res, &nr, -1);
		}
	}
	hnsw_cand_sort(sc->res, nr);
	*nres = nr;
	return 0;
}

/* ---- neighbour selection ----------------------------------------------- */


/* What the selection rule needs from this graph: the pair keys between
 * candidates, from the pair table or the compact copy. */
struct select_ctx {
	struct hnsw_ctx *cx;
	const struct hnsw_cand *c;
	float *xb;
	/* Kept neighbours act as queries (the key is symmetric), so each
	 * candidate costs one pass per kept neighbour and no norm of its own. */
	hydb_kquery kept[2 * HYDB_HNSW_MAX_M];
	int ready[2 * HYDB_HNSW_MAX_M];
};

static int select_key(void *ctx, unsigned pos, uint32_t kept, uint32_t cand,
		      double *key)
{
	struct select_ctx *s = ctx;
	if (!s->xb) {
		/* Rows 0..mmax-1 of the scratch (mmax <= M0); link_back
		 * keeps its own base in row M0. */
		s->xb = hnsw_scratch_floats(s->cx, (size_t)s->cx->ix->M0 + 1);
		if (!s->xb)
			return HYDB_ENOMEM;
	}
	return hnsw_pair_key(s->cx, s->c[kept].slot, &s->kept[pos],
			     s->xb + pos * s->cx->ix->dim, &s->ready[pos],
			     s->c[cand].slot, key);
}

static void select_prefetch(void *ctx, const uint32_t *kept, unsigned nkept,
			    uint32_t cand)
{
	struct select_ctx *s = ctx;
	for (unsigned j = 0; j < nkept; j++)
		hnsw_pairs_prefetch(s->cx, s->c[kept[j]].slot, s->c[cand].slot);
}

/* c: candidates sorted by key to the base; the rule is hydb_hnsw_select
 * (index/select.c). Topping the list up to fill links matters on the
 * hyperboloid: points near the origin are close to everything and prune
 * most links of the points above them, and on HySAC-like data the pure
 * heuristic plateaus near recall@10 0.94 (hnswlib too) while filled lists
 * of new nodes reach 0.98 at the same ef. Back-link pruning stays pure
 * (fill 0) so that the lists of old nodes keep their long-range
 * diversity; a list repaired after deletions is filled back to its former
 * length. */
int hnsw_select(struct hnsw_ctx *cx, struct hnsw_cand *c, size_t n,
		unsigned mmax, unsigned fill, uint32_t *out, unsigned *nout)
{
	struct select_ctx s = {.cx = cx, .c = c, .xb = NULL};
	if (mmax > cx->ix->M0)
		mmax = cx->ix->M0;
	memset(s.ready, 0, sizeof s.ready);
	FORWARD_IF_ERROR(hydb_hnsw_select(&c[0].key, sizeof *c, n, mmax, fill,
					  select_key, select_prefetch, &s,
					  out, nout));
	for (unsigned i = 0; i < *nout; i++)
		out[i] = c[out[i]].slot;
	return 0;
}

/* Add slot to nb's list on a layer; a full list is re-selected from its
 * ordinary links plus the newcomer, its tree links (reach.c) staying. */
static int link_back(struct hnsw_ctx *cx, uint32_t nb, uint32_t slot,
		     unsigned level)
{
	hydb_index *ix = cx->ix;
	unsigned mmax = level ? ix->M : ix->M0, n, prot = 0, ns;
	uint32_t links[2 * HYDB_HNSW_MAX_M + 1];
	struct hnsw_l0 r;
	if (level == 0) {
		FORWARD_IF_ERROR(hnsw_l0_get(cx, nb, &r));
		memcpy(links, r.links, r.n * sizeof *links);
		n = r.n;
		prot = r.prot;
	} else {
		FORWARD_IF_ERROR(hnsw_get_links(cx, nb, level, links, &n));
	}
	for (unsigned i = 0; i < n; i++)
		if (links[i] == slot)
			return 0;
	links[n++] = slot;
	if (n <= mmax)
		return hnsw_put_links(cx, nb, level, links, n);
	struct hnsw_cand c[2 * HYDB_HNSW_MAX_M + 1];
	hydb_kquery q;
	int ready = 0;
	float *xb = hnsw_scratch_floats(cx, (size_t)ix->M0 + 1);
	if (!xb)
		return HYDB_ENOMEM;
	for (unsigned i = prot; i < n; i++)
		hnsw_pairs_prefetch(cx, nb, links[i]);
	for (unsigned i = prot; i < n; i++) {
		c[i - prot].slot = links[i];
		FORWARD_IF_ERROR(hnsw_pair_key(
			cx, nb, &q, xb + (size_t)ix->M0 * ix->dim,
			&ready, links[i], &c[i - prot].key));
	}
	hnsw_cand_sort(c, n - prot);
	FORWARD_IF_ERROR(hnsw_select(cx, c, n - prot, mmax - prot, 0,
				     links + prot, &ns));
	return hnsw_put_links(cx, nb, level, links, prot + ns);
}

int hnsw_connect(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		 const uint32_t *nb, unsigned n)
{
	FORWARD_IF_ERROR(hnsw_put_links(cx, slot, level, nb, n));
	for (unsigned i = 0; i < n; i++)
		FORWARD_IF_ERROR(link_back(cx, nb[i], slot, level));
	return 0;
}
