/*
 * hnsw_graph.c - the walk over an HNSW graph, shared by the build (graph in
 * memory), inserts and scans (graph in pages): greedy descent, a beam
 * search that can be resumed for more results, and neighbour selection by
 * the library's rule (hydb_hnsw_select, index/select.c).
 */
#include "hydb_pg.h"

#include <math.h>

#include "index/hnsw.h"
#include "utils/memutils.h"

/* ---- visited set -------------------------------------------------------- */

static inline size_t mix(uint64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x;
}

void hg_visited_init(hg_visited *v, size_t expect)
{
	size_t cap = 64;
	while (cap < expect * 2)
		cap <<= 1;
	v->slots = palloc0(sizeof(uint64) * cap);
	v->cap = cap;
	v->count = 0;
}

void hg_visited_reset(hg_visited *v)
{
	memset(v->slots, 0, sizeof(uint64) * v->cap);
	v->count = 0;
}

static void visited_grow(hg_visited *v)
{
	uint64 *old = v->slots;
	size_t oldcap = v->cap;
	v->cap *= 2;
	/* The set may outlive the context current now (the build resets a
	 * per-row context): grow it where it lives. */
	v->slots = MemoryContextAllocZero(GetMemoryChunkContext(old),
					  sizeof(uint64) * v->cap);
	v->count = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i])
			hg_visited_add(v, old[i] - 1);
	pfree(old);
}

/* Slots hold node + 1 so that 0 marks an empty slot. */
bool hg_visited_add(hg_visited *v, hg_node n)
{
	if (v->count * 2 >= v->cap)
		visited_grow(v);
	size_t i = mix(n) & (v->cap - 1);
	while (v->slots[i]) {
		if (v->slots[i] == n + 1)
			return false;
		i = (i + 1) & (v->cap - 1);
	}
	v->slots[i] = n + 1;
	v->count++;
	return true;
}

bool hg_visited_has(const hg_visited *v, hg_node n)
{
	size_t i = mix(n) & (v->cap - 1);
	while (v->slots[i]) {
		if (v->slots[i] == n + 1)
			return true;
		i = (i + 1) & (v->cap - 1);
	}
	return false;
}

/* ---- heaps -------------------------------------------------------------- */

void hg_heap_init(hg_heap *h, size_t cap, int sign)
{
	h->cap = cap < 16 ? 16 : cap;
	h->a = palloc(sizeof(hg_cand) * h->cap);
	h->n = 0;
	h->sign = sign;
}

static inline bool above(const hg_heap *h, const hg_cand *a, const hg_cand *b)
{
	return h->sign > 0 ? a->key < b->key : a->key > b->key;
}

void hg_heap_push(hg_heap *h, hg_cand c)
{
	if (h->n == h->cap) {
		h->cap *= 2;
		h->a = repalloc_huge(h->a, sizeof(hg_cand) * h->cap);
	}
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!above(h, &c, &h->a[p]))
			break;
		h->a[i] = h->a[p];
		i = p;
	}
	h->a[i] = c;
}

hg_cand hg_heap_pop(hg_heap *h)
{
	hg_cand top = h->a[0], last = h->a[--h->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, best = i;
		const hg_cand *bc = &last;
		if (l < h->n && above(h, &h->a[l], bc))
			best = l, bc = &h->a[l];
		if (l + 1 < h->n && above(h, &h->a[l + 1], bc))
			best = l + 1;
		if (best == i)
			break;
		h->a[i] = h->a[best];
		i = best;
	}
	if (h->n)
		h->a[i] = last;
	return top;
}

static int cand_cmp(const void *a, const void *b)
{
	const hg_cand *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->node < y->node ? -1 : x->node > y->node;
}

void hg_cand_sort(hg_cand *c, size_t n)
{
	qsort(c, n, sizeof *c, cand_cmp);
}

/* ---- walk --------------------------------------------------------------- */

void hg_greedy(hg_graph *g, const hydb_kquery *q, int top, int bottom,
	       hg_node *cur, double *curkey)
{
	hg_node nb[HG_MAX_M];
	double keys[HG_MAX_M];
	for (int l = top; l > bottom; l--) {
		bool moved = true;
		while (moved) {
			int n = g->links(g, *cur, l, nb);
			moved = false;
			g->keys(g, q, nb, n, keys, NULL);
			for (int i = 0; i < n; i++)
				if (keys[i] < *curkey) {
					*curkey = keys[i];
					*cur = nb[i];
					moved = true;
				}
		}
	}
}

void hg_search_init(hg_search *s, size_t ef)
{
	hg_visited_init(&s->visited, ef * 16);
	hg_heap_init(&s->cand, ef * 4, 1);
	hg_heap_init(&s->pool, ef, 1);
	s->res = palloc(sizeof(hg_cand) * (ef + 1));
	s->nres = 0;
	s->expanded = 0;
	s->include_deleted = false;
}

void hg_search_free(hg_search *s)
{
	pfree(s->visited.slots);
	pfree(s->cand.a);
	pfree(s->pool.a);
	pfree(s->res);
}

void hg_search_seed(hg_search *s, hg_cand entry)
{
	if (!hg_visited_add(&s->visited, entry.node))
		return;
	hg_heap_push(&s->cand, entry);
	if (!entry.deleted || s->include_deleted)
		hg_heap_push(&s->pool, entry);
}

/* A newly measured neighbour: kept in the beam w while it is among the ef
 * nearest, else in the pool for a later batch. */
static void offer(hg_search *s, hg_heap *w, size_t ef, hg_cand c)
{
	hg_heap_push(&s->cand, c);
	if (c.deleted && !s->include_deleted)
		return;
	if (w->n < ef || c.key < w->a[0].key) {
		hg_heap_push(w, c);
		if (w->n > ef)
			hg_heap_push(&s->pool, hg_heap_pop(w));
	} else {
		hg_heap_push(&s->pool, c);
	}
}

static void expand(hg_graph *g, hg_search *s, const hydb_kquery *q,
		   hg_node node, int level, hg_heap *w, size_t ef)
{
	hg_node nb[2 * HG_MAX_M + HG_TREE], fresh[2 * HG_MAX_M + HG_TREE];
	double keys[2 * HG_MAX_M + HG_TREE];
	bool del[2 * HG_MAX_M + HG_TREE];
	int n = g->links(g, node, level ? level : HG_WALK0, nb), nf = 0;
	for (int i = 0; i < n; i++)
		if (hg_visited_add(&s->visited, nb[i]))
			fresh[nf++] = nb[i];
	if (!nf)
		return;
	g->keys(g, q, fresh, nf, keys, del);
	for (int i = 0; i < nf; i++) {
		hg_cand c = {keys[i], fresh[i], del[i]};
		offer(s, w, ef, c);
	}
}

/* One batch: the beam starts from the nearest ef results not yet returned
 * and walks on from every node not yet expanded; it stops as a plain beam
 * search does, when the nearest unexpanded node is beyond the ef-th
 * result. The first batch is the ordinary HNSW layer search. */
void hg_search_batch(hg_graph *g, hg_search *s, const hydb_kquery *q,
		     size_t ef, int level)
{
	hg_heap w;
	hg_heap_init(&w, ef + 1, -1);
	while (s->pool.n && w.n < ef)
		hg_heap_push(&w, hg_heap_pop(&s->pool));
	while (s->cand.n) {
		const hg_cand *c = hg_heap_top(&s->cand);
		if (w.n >= ef && c->key > w.a[0].key)
			break;
		hg_cand e = hg_heap_pop(&s->cand);
		expand(g, s, q, e.node, level, &w, ef);
		s->expanded++;
		CHECK_FOR_INTERRUPTS();
	}
	s->nres = w.n;
	memcpy(s->res, w.a, sizeof(hg_cand) * w.n);
	hg_cand_sort(s->res, s->nres);
	pfree(w.a);
}

/* ---- selection ---------------------------------------------------------- */

struct select_ctx {
	hg_graph *g;
	const hg_cand *c;
	float *vec;        /* one row per kept position */
	hydb_kquery *kq;
	bool *ready;
};

static int select_key(void *ctx, unsigned pos, uint32_t kept, uint32_t cand,
		      double *key)
{
	struct select_ctx *s = ctx;
	hg_node n = s->c[cand].node;
	if (!s->ready[pos]) {
		float *row = s->vec + (size_t)pos * s->g->dim;
		s->g->vector(s->g, s->c[kept].node, row);
		hydb_kquery_init(&s->kq[pos], row, s->g->dim, s->g->c);
		s->ready[pos] = true;
	}
	s->g->keys(s->g, &s->kq[pos], &n, 1, key, NULL);
	return 0;
}

int hg_select(hg_graph *g, const hg_cand *c, int n, int mmax, int fill,
	      uint32 *out)
{
	struct select_ctx s = {g, c, NULL, NULL, NULL};
	unsigned nout;
	if (n > mmax) {
		s.vec = palloc(sizeof(float) * g->dim * mmax);
		s.kq = palloc(sizeof(hydb_kquery) * mmax);
		s.ready = palloc0(sizeof(bool) * mmax);
	}
	if (hydb_hnsw_select(&c[0].key, sizeof *c, (size_t)n, (unsigned)mmax,
			     (unsigned)fill, select_key, NULL, &s, out, &nout))
		elog(ERROR, "neighbour selection failed: %s", hydb_last_error());
	if (s.vec) {
		pfree(s.vec);
		pfree(s.kq);
		pfree(s.ready);
	}
	return (int)nout;
}

/* Levels drawn as -ln(u)/ln(m), the usual HNSW law, from a splitmix64
 * stream kept in the metapage so that builds are repeatable. */
int hg_random_level(uint64 *rng, int m)
{
	uint64 z = (*rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	double u = ((z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
	double l = -log(u) / log((double)m);
	return l >= HG_MAX_LEVEL - 1 ? HG_MAX_LEVEL - 1 : (int)l;
}

int hg_m0(int m)
{
	return 2 * m;
}
