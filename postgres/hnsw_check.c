/*
 * hnsw_check.c - hydb_index_check(regclass): verify a hydb_hnsw index as
 * amcheck verifies a B-tree: the metapage, every element's shape, every
 * link (to an element that exists, is high enough, is not itself, is not
 * repeated, is not a tombstone), the entry point. Damage raises
 * ERRCODE_INDEX_CORRUPTED naming the first problems; live elements that no
 * layer-0 path reaches are a quality figure, reported as a NOTICE.
 */
#include "hydb_pg.h"

#include <math.h>

#include "access/relation.h"
#include "catalog/pg_am.h"
#include "lib/stringinfo.h"
#include "storage/bufpage.h"
#include "utils/rel.h"

typedef struct check {
	Relation index;
	HgMeta m;
	hg_visited live, dead; /* elements by state */
	hg_node *nodes;        /* every live element, for the walk */
	size_t nnodes, cap;
	int problems;
	StringInfoData msg;
} check;

static void problem(check *ck, hg_node n, const char *what)
{
	if (ck->problems++ < 10)
		appendStringInfo(&ck->msg, "%selement (%u,%u): %s", ck->problems > 1 ? "; " : "",
				 hg_node_block(n), hg_node_off(n), what);
}

static void check_vector(check *ck, hg_node n, HgVector *v, size_t size)
{
	if (size != HG_VECTOR_SIZE(ck->m.dim)) {
		problem(ck, n, "vector of the wrong size");
		return;
	}
	for (uint32 i = 0; i < ck->m.dim; i++)
		if (!isfinite(v->x[i])) {
			problem(ck, n, "vector component not finite");
			break;
		}
}

static void check_element(check *ck, hg_node n, HgElement *e, size_t size)
{
	int dim = (int)ck->m.dim, m = (int)ck->m.m;
	if (e->kind == HG_KIND_VECTOR) {
		check_vector(ck, n, (HgVector *)e, size);
		return;
	}
	if (e->kind != HG_KIND_ELEMENT) {
		problem(ck, n, "item of unknown kind");
		return;
	}
	if (e->ntree > HG_TREE)
		problem(ck, n, "more tree links than an element holds");
	if (e->level >= HG_MAX_LEVEL) {
		problem(ck, n, "level out of range");
		return;
	}
	if (size != hg_element_size(dim, m, e->level)) {
		problem(ck, n, "size does not match its level");
		return;
	}
	for (int l = 0; l <= e->level; l++)
		if (hg_elem_counts(e, dim)[l] > (l ? m : 2 * m))
			problem(ck, n, "more links than the layer holds");
	if (e->flags & HG_DELETED)
		hg_visited_add(&ck->dead, n);
	else {
		if (!ItemPointerIsValid(&e->heaptid))
			problem(ck, n, "live element without heap TID");
		hg_visited_add(&ck->live, n);
		if (ck->nnodes == ck->cap) {
			ck->cap *= 2;
			ck->nodes = repalloc_huge(ck->nodes, sizeof(hg_node) * ck->cap);
		}
		ck->nodes[ck->nnodes++] = n;
	}
}

static void pass_elements(check *ck)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(ck->index);
	for (BlockNumber blk = 1; blk < nblocks; blk++) {
		Buffer b = ReadBuffer(ck->index, blk);
		LockBuffer(b, BUFFER_LOCK_SHARE);
		Page p = BufferGetPage(b);
		for (OffsetNumber o = FirstOffsetNumber; o <= PageGetMaxOffsetNumber(p); o++) {
			ItemId id = PageGetItemId(p, o);
			check_element(ck, hg_tid_node(blk, o), (HgElement *)PageGetItem(p, id),
				      ItemIdGetLength(id));
		}
		UnlockReleaseBuffer(b);
		CHECK_FOR_INTERRUPTS();
	}
}

static int level_of(check *ck, hg_node n)
{
	Buffer b = ReadBuffer(ck->index, hg_node_block(n));
	LockBuffer(b, BUFFER_LOCK_SHARE);
	int l = ((HgElement *)hg_page_element(ck->index, BufferGetPage(b), n))->level;
	UnlockReleaseBuffer(b);
	return l;
}

/* The element's float32 vector exists (hg_page_vector raises otherwise)
 * and agrees with the walked copy to half precision. */
static void check_own_vector(check *ck, hg_node n)
{
	Buffer b = ReadBuffer(ck->index, hg_node_block(n));
	LockBuffer(b, BUFFER_LOCK_SHARE);
	HgElement *e = hg_page_element(ck->index, BufferGetPage(b), n);
	hg_node vec = e->vec;
	bool far = (e->flags & HG_FAR) != 0;
	uint16 *half = palloc(sizeof(uint16) * ck->m.dim);
	memcpy(half, hg_elem_half(e), sizeof(uint16) * ck->m.dim);
	UnlockReleaseBuffer(b);
	float *x = palloc(sizeof(float) * ck->m.dim);
	hg_read_vector(ck->index, vec, (int)ck->m.dim, x);
	if (!far) {
		uint16 *h2 = palloc(sizeof(uint16) * ck->m.dim);
		hydb_f32_to_f16(h2, x, ck->m.dim);
		if (memcmp(h2, half, sizeof(uint16) * ck->m.dim) != 0)
			problem(ck, n, "half-precision copy differs from its vector");
		pfree(h2);
	}
	pfree(x);
	pfree(half);
}

static void check_link(check *ck, hg_node n, hg_node to, int l, int *pending)
{
	bool live = hg_visited_has(&ck->live, to);
	if (to == n)
		problem(ck, n, "links to itself");
	else if (!live && !hg_visited_has(&ck->dead, to))
		problem(ck, n, "links to an element that does not exist");
	else if (level_of(ck, to) < l)
		problem(ck, n, "links to an element below the layer");
	else if (!live)
		(*pending)++;
}

static void check_links(check *ck, hg_graph *g, hg_node n, int *pending)
{
	hg_node links[2 * HG_MAX_M + HG_TREE];
	int top = level_of(ck, n);
	check_own_vector(ck, n);
	int t = g->tree(g, n, links);
	for (int i = 0; i < t; i++)
		check_link(ck, n, links[i], 0, pending);
	for (int l = 0; l <= top; l++) {
		int c = g->links(g, n, l, links);
		for (int i = 0; i < c; i++) {
			check_link(ck, n, links[i], l, pending);
			for (int j = 0; j < i; j++)
				if (links[j] == links[i])
					problem(ck, n, "repeats a link");
		}
	}
}

/* Live elements a layer-0 walk from the entry point reaches. */
static size_t reachable(check *ck, hg_graph *g)
{
	hg_visited seen;
	hg_node links[2 * HG_MAX_M + HG_TREE], *stack = palloc(sizeof(hg_node) * Max(ck->nnodes, 1));
	size_t top = 0, count = 0;
	hg_visited_init(&seen, ck->nnodes + 16);
	if (ck->m.entry != HG_NONE && hg_visited_has(&ck->live, ck->m.entry)) {
		stack[top++] = ck->m.entry;
		hg_visited_add(&seen, ck->m.entry);
	}
	while (top) {
		hg_node n = stack[--top];
		count++;
		int c = g->links(g, n, HG_WALK0, links);
		for (int i = 0; i < c; i++)
			if (hg_visited_has(&ck->live, links[i]) && hg_visited_add(&seen, links[i]))
				stack[top++] = links[i];
	}
	return count;
}

PG_FUNCTION_INFO_V1(hydb_index_check);
Datum hydb_index_check(PG_FUNCTION_ARGS)
{
	check ck;
	int pending = 0;
	memset(&ck, 0, sizeof ck);
	ck.index = index_open(PG_GETARG_OID(0), AccessShareLock);
	if (ck.index->rd_indam->ambuild != hg_build)
		ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
				errmsg("\"%s\" is not a hydb_hnsw index", RelationGetRelationName(ck.index))));
	hg_read_meta(ck.index, &ck.m);
	initStringInfo(&ck.msg);
	hg_visited_init(&ck.live, 1024);
	hg_visited_init(&ck.dead, 64);
	ck.cap = 1024;
	ck.nodes = palloc(sizeof(hg_node) * ck.cap);
	pass_elements(&ck);
	hg_graph *g = hg_page_graph(ck.index, &ck.m);
	for (size_t i = 0; i < ck.nnodes && ck.problems < 100; i++)
		check_links(&ck, g, ck.nodes[i], &pending);
	if (ck.nnodes && (ck.m.entry == HG_NONE || !hg_visited_has(&ck.live, ck.m.entry)))
		problem(&ck, ck.m.entry, "entry point is not a live element");
	else if (ck.nnodes && level_of(&ck, ck.m.entry) != ck.m.max_level)
		problem(&ck, ck.m.entry, "entry point's level is not the top level");
	if (ck.problems)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" is corrupt: %d problems", RelationGetRelationName(ck.index), ck.problems),
				errdetail("%s", ck.msg.data)));
	size_t reach = ck.nnodes ? reachable(&ck, g) : 0;
	if (reach < ck.nnodes || pending)
		ereport(NOTICE, (errmsg("index \"%s\": %zu of %zu live elements unreachable on layer 0, %d links to tombstones awaiting VACUUM",
					RelationGetRelationName(ck.index), ck.nnodes - reach, ck.nnodes, pending)));
	index_close(ck.index, AccessShareLock);
	PG_RETURN_VOID();
}
