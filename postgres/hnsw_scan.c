/*
 * hnsw_scan.c - ORDER BY embedding <-> $1 [LIMIT k] through the graph.
 *
 * A scan walks the graph in batches of hydb.ef_search results. The first
 * batch is the plain HNSW search; when the executor asks for more (its
 * filter rejected rows, or dead rows were skipped) the walk resumes from
 * where it stopped instead of starting over with a wider beam, until
 * hydb.max_scan_tuples entries were returned. Each batch comes out sorted
 * by the library's float32 key over the rows' float32 vectors (the walk
 * itself reads half precision); batches follow each other in nearly, not
 * strictly, increasing distance.
 */
#include "hydb_pg.h"

#include "access/relscan.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"

typedef struct hit {
	double dist; /* the ranking key until returned */
	ItemPointerData tid;
} hit;

typedef struct hg_scan {
	MemoryContext ctx;
	Lorentz *query;
	bool started, done;
	HgMeta meta;
	hg_graph *g;
	hydb_kquery q;
	hg_search s;
	hit *hits;
	float *row;
	size_t nhits, pos, returned;
} hg_scan;

IndexScanDesc hg_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	hg_scan *so = palloc0(sizeof *so);
	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "hydb_hnsw scan",
					ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	scan->xs_orderbyvals = palloc0(sizeof(Datum) * Max(norderbys, 1));
	scan->xs_orderbynulls = palloc(sizeof(bool) * Max(norderbys, 1));
	memset(scan->xs_orderbynulls, true, sizeof(bool) * Max(norderbys, 1));
	return scan;
}

void hg_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
	       int norderbys)
{
	hg_scan *so = scan->opaque;
	MemoryContextReset(so->ctx);
	so->started = false;
	so->done = false;
	so->query = NULL;
	so->nhits = so->pos = so->returned = 0;
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	if (scan->numberOfOrderBys > 0 && !(scan->orderByData[0].sk_flags & SK_ISNULL)) {
		MemoryContext old = MemoryContextSwitchTo(so->ctx);
		Lorentz *v = DatumGetLorentz(scan->orderByData[0].sk_argument);
		so->query = (Lorentz *)PG_DETOAST_DATUM_COPY(PointerGetDatum(v));
		MemoryContextSwitchTo(old);
	}
}

static int hit_cmp(const void *a, const void *b)
{
	const hit *x = a, *y = b;
	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return ItemPointerCompare((ItemPointer)&x->tid, (ItemPointer)&y->tid);
}

/* The batch's rows: heap TIDs and exact distances, read under the page
 * lock, skipping elements VACUUM has marked deleted since they were met. */
static void collect(IndexScanDesc scan, hg_scan *so)
{
	Relation index = scan->indexRelation;
	so->hits = repalloc(so->hits, sizeof(hit) * Max(so->s.nres, 1));
	so->nhits = so->pos = 0;
	for (size_t i = 0; i < so->s.nres; i++) {
		hg_node n = so->s.res[i].node, vec;
		Buffer b = ReadBuffer(index, hg_node_block(n));
		LockBuffer(b, BUFFER_LOCK_SHARE);
		HgElement *e = hg_page_element(index, BufferGetPage(b), n);
		bool live = !(e->flags & HG_DELETED);
		ItemPointerData tid = e->heaptid;
		vec = e->vec;
		/* The vector usually shares the element's page. The float32
		 * kernel ranks as the library re-ranks its final candidates:
		 * the stable key, at a tenth of the exact one's cost. */
		if (live && hg_node_block(vec) == hg_node_block(n)) {
			HgVector *v = hg_page_vector(index, BufferGetPage(b), vec, so->meta.dim);
			so->hits[so->nhits].dist = hydb_key_f32(&so->q, v->x);
		} else if (live) {
			hg_read_vector(index, vec, so->meta.dim, so->row);
			so->hits[so->nhits].dist = hydb_key_f32(&so->q, so->row);
		}
		UnlockReleaseBuffer(b);
		if (live)
			so->hits[so->nhits++].tid = tid;
	}
	qsort(so->hits, so->nhits, sizeof(hit), hit_cmp);
}

static void start(IndexScanDesc scan, hg_scan *so)
{
	Relation index = scan->indexRelation;
	MemoryContext old = MemoryContextSwitchTo(so->ctx);
	so->started = true;
	so->done = true;
	/* pg_stat_user_indexes.idx_scan counts scans only if the AM says so. */
	pgstat_count_index_scan(index);
	if (!so->query)
		goto out;
	hg_meta_check_vector(index, so->query, true);
	hg_read_meta(index, &so->meta);
	if (so->meta.entry == HG_NONE)
		goto out;
	so->g = hg_page_graph(index, &so->meta);
	hg_page_graph_cached(so->g);
	hydb_kquery_init(&so->q, so->query->x, so->meta.dim, so->meta.c);
	hg_node cur = so->meta.entry;
	double key;
	bool del;
	so->g->keys(so->g, &so->q, &cur, 1, &key, &del);
	hg_greedy(so->g, &so->q, so->meta.max_level, 0, &cur, &key);
	hg_search_init(&so->s, (size_t)hydb_ef_search);
	hg_cand e = {key, cur, false};
	so->g->keys(so->g, &so->q, &cur, 1, &e.key, &e.deleted);
	hg_search_seed(&so->s, e);
	so->hits = palloc(sizeof(hit));
	so->row = palloc(sizeof(float) * so->meta.dim);
	so->done = false;
out:
	MemoryContextSwitchTo(old);
}

static bool next_batch(IndexScanDesc scan, hg_scan *so)
{
	MemoryContext old = MemoryContextSwitchTo(so->ctx);
	hg_search_batch(so->g, &so->s, &so->q, (size_t)hydb_ef_search, 0);
	collect(scan, so);
	MemoryContextSwitchTo(old);
	return so->s.nres > 0;
}

bool hg_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	hg_scan *so = scan->opaque;
	if (!so->started) {
		start(scan, so);
		if (!so->done && !next_batch(scan, so))
			so->done = true;
	}
	while (!so->done) {
		if (so->pos < so->nhits) {
			hit *h = &so->hits[so->pos++];
			scan->xs_heaptid = h->tid;
			scan->xs_recheck = false;
			scan->xs_recheckorderby = false;
			scan->xs_orderbyvals[0] = Float8GetDatum(
				hydb_lorentz_key_to_dist(h->dist, so->meta.c));
			scan->xs_orderbynulls[0] = false;
			so->returned++;
			return true;
		}
		/* Walk on only when asked for more than the first batch. */
		if (hydb_iterative_scan && so->returned >= (size_t)hydb_max_scan_tuples) {
			/* A filter whose matches lie far from the query (a shell
			 * of the hyperboloid away from it) can pass fewer rows
			 * than LIMIT within the bound: say so, once a scan. */
			ereport(NOTICE,
				(errmsg("hydb_hnsw scan of \"%s\" stopped after hydb.max_scan_tuples = %d entries",
					RelationGetRelationName(scan->indexRelation),
					hydb_max_scan_tuples),
				 errhint("Fewer rows than asked for may follow. Raise hydb.max_scan_tuples, "
					 "or let a sequential scan answer (SET enable_indexscan = off).")));
			so->done = true;
		} else if (!hydb_iterative_scan || !next_batch(scan, so)) {
			so->done = true;
		}
	}
	return false;
}

void hg_endscan(IndexScanDesc scan)
{
	hg_scan *so = scan->opaque;
	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}
