/*
 * graph.c - the index's records in LMDB and the per-operation caches.
 *
 * A walk reads each block of vectors through a pointer cached for the
 * operation: LMDB pointers stay valid for the read transaction, so one
 * B-tree lookup per block serves every hop that lands in it. In a write
 * transaction a put may spill dirty pages and free their memory unless the
 * environment uses MDB_WRITEMAP, so there every write drops the cache.
 */
#include "index/hnsw_impl.h"

#include <stdlib.h>
#include <string.h>

void hnsw_node_key(uint8_t key[8], uint32_t tag, uint32_t num)
{
	for (int i = 0; i < 4; i++) {
		key[i] = (uint8_t)(tag >> (24 - 8 * i));
		key[4 + i] = (uint8_t)(num >> (24 - 8 * i));
	}
}

uint32_t hnsw_key_num(const MDB_val *k)
{
	const uint8_t *p = k->mv_data;
	return k->mv_size != 8 ? HYDB_NO_SLOT
			       : (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 |
					 (uint32_t)p[6] << 8 | p[7];
}

uint32_t hnsw_key_tag(const MDB_val *k)
{
	const uint8_t *p = k->mv_data;
	return k->mv_size != 8 ? 0
			       : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
					 (uint32_t)p[2] << 8 | p[3];
}

static int mdb_fail(int rc, const char *what)
{
	if (rc == MDB_MAP_FULL)
		return hydb_error_set(HYDB_EMAPFULL_INTERNAL,
				      "index: %s: map full", what);
	if (rc == MDB_NOTFOUND)
		return hydb_error_set(HYDB_ENOTFOUND, "index: %s: not found",
				      what);
	return hydb_error_set(rc == MDB_TXN_FULL ? HYDB_ENOMEM : HYDB_EIO,
			      "index: %s: %s", what, mdb_strerror(rc));
}

int hnsw_meta_load(hydb_index *ix, MDB_txn *txn, struct hnsw_meta *m)
{
	MDB_val k = {4, "hnsw"}, v;
	int rc = mdb_get(txn, ix->src.meta, &k, &v);
	if (rc)
		return mdb_fail(rc, "reading hnsw_meta");
	RETURN_ERROR_IF(v.mv_size != sizeof *m, HYDB_ECORRUPT,
			"index: hnsw_meta has %zu bytes, expected %zu",
			v.mv_size, sizeof *m);
	memcpy(m, v.mv_data, sizeof *m);
	RETURN_ERROR_IF(m->magic != HNSW_META_MAGIC, HYDB_ECORRUPT,
			"index: hnsw_meta has a bad magic number");
	RETURN_ERROR_IF(m->version > HNSW_META_VERSION, HYDB_EVERSION,
			"index: graph format %u is newer than this library (%u)",
			m->version, HNSW_META_VERSION);
	return 0;
}

int hnsw_meta_save(hydb_index *ix, MDB_txn *txn, const struct hnsw_meta *m)
{
	MDB_val k = {4, "hnsw"}, v = {sizeof *m, (void *)m};
	int rc = mdb_put(txn, ix->src.meta, &k, &v, 0);
	return rc ? mdb_fail(rc, "writing hnsw_meta") : 0;
}

/* ---- scratch ----------------------------------------------------------- */

static struct hnsw_scratch *scratch_get(hydb_index *ix)
{
	pthread_mutex_lock(&ix->pool_lock);
	struct hnsw_scratch *sc = ix->pool;
	if (sc)
		ix->pool = sc->next;
	pthread_mutex_unlock(&ix->pool_lock);
	if (!sc)
		sc = calloc(1, sizeof *sc);
	if (!sc)
		hydb_error_set(HYDB_ENOMEM, "index: no memory for search state");
	return sc;
}

static void scratch_put(hydb_index *ix, struct hnsw_scratch *sc)
{
	pthread_mutex_lock(&ix->pool_lock);
	sc->next = ix->pool;
	ix->pool = sc;
	pthread_mutex_unlock(&ix->pool_lock);
}

void hnsw_scratch_free(struct hnsw_scratch *sc)
{
	if (!sc)
		return;
	free(sc->visit);
	free(sc->blk);
	free(sc->l0);
	free(sc->cand);
	free(sc->res);
	free(sc->xbuf);
	free(sc);
}

/* Grow *p from *cap to want elements of size elt, zeroing the new ones. */
static int grow_zeroed(void **p, uint32_t *cap, uint32_t want, size_t elt,
		       const char *what)
{
	if (want <= *cap)
		return 0;
	/* The first allocation comes zeroed from calloc: at a million slots
	 * the tables are megabytes, and clearing them by hand touched every
	 * page in a fresh process's first query where a search touches a few
	 * hundred (an eighth of the first 300 queries' page faults). */
	char *q = *cap ? realloc(*p, (size_t)want * elt)
		       : calloc(want, elt);
	RETURN_ERROR_IF(!q, HYDB_ENOMEM, "index: no memory for %u %s", want,
			what);
	if (*cap)
		memset(q + (size_t)*cap * elt, 0, (size_t)(want - *cap) * elt);
	else
		free(*p);
	*p = q;
	*cap = want;
	return 0;
}

/* Visited marks and block cache cover every slot up to the meta's limit. */
static int scratch_fit(struct hnsw_scratch *sc, uint32_t slot_limit)
{
	if (slot_limit > sc->visit_cap)
		FORWARD_IF_ERROR(grow_zeroed((void **)&sc->visit,
					     &sc->visit_cap,
					     slot_limit + slot_limit / 4 + 64,
					     sizeof *sc->visit, "visit marks"));
	return grow_zeroed((void **)&sc->blk, &sc->blk_cap,
			   sc->visit_cap / HYDB_BLOCK_SLOTS + 1, sizeof *sc->blk,
			   "block pointers");
}

/* A write may spill dirty pages and free their memory (without
 * MDB_WRITEMAP): pointers into pages dirtied by this transaction expire. */
void hnsw_ctx_wrote(struct hnsw_ctx *cx)
{
	if (!cx->ix->stable_ptrs)
		cx->sc->wepoch++;
}

static void drop_cache(struct hnsw_scratch *sc)
{
	if (++sc->blk_epoch == 0) {
		memset(sc->blk, 0, (size_t)sc->blk_cap * sizeof *sc->blk);
		memset(sc->l0, 0, (size_t)sc->l0_cap * sizeof *sc->l0);
		sc->blk_epoch = 1;
	}
}

/* Cached pointers survive from one read transaction to the next when both
 * see the same snapshot through the same mapping: the pages cannot have
 * changed. Growth may move the map (mdb_env_set_mapsize remaps it), hence
 * the generation; MDB_envinfo.me_mapaddr cannot tell, it is only set for
 * MDB_FIXEDMAP. */
static void cache_for_txn(struct hnsw_ctx *cx)
{
	struct hnsw_scratch *sc = cx->sc;
	const hydb_vsource *src = &cx->ix->src;
	MDB_envinfo info;
	uint64_t id = mdb_txn_id(cx->txn);
	uint64_t gen = src->map_generation ? src->map_generation(src->ctx) : 0;
	/* A write transaction's id is one past the last committed. */
	int rdonly = src->env && mdb_env_info(src->env, &info) == 0 &&
		     id <= info.me_last_txnid;
	if (!rdonly || id != sc->snap_txn || gen != sc->snap_gen) {
		drop_cache(sc);
		sc->snap_txn = rdonly ? id : UINT64_MAX;
		sc->snap_gen = gen;
	}
}

/* The header sizes the per-operation arrays: a damaged one must be refused
 * before it is used, not allocate gigabytes. The last slot it claims must
 * lie in a block the store holds. */
static int meta_sane(struct hnsw_ctx *cx)
{
	const struct hnsw_meta *m = &cx->meta;
	hydb_index *ix = cx->ix;
	hydb_block blk;
	int bad = m->max_level > HYDB_HNSW_MAX_LEVEL ||
		  m->nodes > m->slot_limit ||
		  (m->entry != HYDB_NO_SLOT && m->entry >= m->slot_limit) ||
		  (m->entry == HYDB_NO_SLOT && m->nodes);
	if (!bad && m->slot_limit &&
	    ix->src.block(ix->src.ctx, cx->txn,
			  (m->slot_limit - 1) / HYDB_BLOCK_SLOTS, &blk) < 0)
		bad = 1;
	RETURN_ERROR_IF(bad, HYDB_ECORRUPT,
			"index: hnsw_meta is damaged (slot limit %u, %llu nodes, "
			"entry %u, top level %u)",
			m->slot_limit, (unsigned long long)m->nodes, m->entry,
			m->max_level);
	return 0;
}

int hnsw_ctx_begin(struct hnsw_ctx *cx, hydb_index *ix, MDB_txn *txn)
{
	cx->ix = ix;
	cx->txn = txn;
	cx->sc = NULL;
	cx->pend = NULL;
	cx->pend_ro = 0;
	cx->doomed = NULL;
	cx->doomed_lim = 0;
	cx->pairs = NULL;
	cx->skip = HYDB_NO_SLOT;
	FORWARD_IF_ERROR(hnsw_meta_load(ix, txn, &cx->meta));
	FORWARD_IF_ERROR(meta_sane(cx));
	cx->sc = scratch_get(ix);
	if (!cx->sc)
		return HYDB_ENOMEM;
	int rc = scratch_fit(cx->sc, cx->meta.slot_limit);
	if (rc < 0) {
		hnsw_ctx_end(cx);
		return rc;
	}
	cache_for_txn(cx);
	return 0;
}

void hnsw_ctx_end(struct hnsw_ctx *cx)
{
	if (cx->sc)
		scratch_put(cx->ix, cx->sc);
	cx->sc = NULL;
}

int hnsw_visit_reset(struct hnsw_ctx *cx)
{
	struct hnsw_scratch *sc = cx->sc;
	FORWARD_IF_ERROR(scratch_fit(sc, cx->meta.slot_limit));
	if (++sc->visit_epoch == 0) {
		memset(sc->visit, 0, (size_t)sc->visit_cap * sizeof *sc->visit);
		sc->visit_epoch = 1;
	}
	return 0;
}

int hnsw_cand_reserve(struct hnsw_cand **a, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 256;
	while (n < need)
		n *= 2;
	struct hnsw_cand *p = realloc(*a, n * sizeof *p);
	RETURN_ERROR_IF(!p, HYDB_ENOMEM, "index: no memory for %zu candidates",
			n);
	*a = p;
	*cap = n;
	return 0;
}

float *hnsw_scratch_floats(struct hnsw_ctx *cx, size_t rows)
{
	struct hnsw_scratch *sc = cx->sc;
	size_t need;
	if (hydb_mul_size(&need, rows, cx->ix->dim) < 0) {
		hydb_error_set(HYDB_ENOMEM, "index: %zu decoded vectors", rows);
		return NULL;
	}
	if (need > sc->xbuf_cap) {
		float *p = hydb_alloc_array(need, sizeof *p, "decoded vectors");
		if (!p)
			return NULL;
		free(sc->xbuf);
		sc->xbuf = p;
		sc->xbuf_cap = need;
	}
	return sc->xbuf;
}

/* ---- slot data --------------------------------------------------------- */

/* A block's two parts load separately: the walk reads only the compact
 * copy, and loading the float32 block too (a B-tree descent and its first
 * page) for every block a fresh process's walk touched was a seventh of
 * its first queries' page faults. vec and attr stay NULL until asked for;
 * the entry's epochs cover both parts. */
static int blk_load_cv(struct hnsw_ctx *cx, uint32_t b)
{
	hydb_index *ix = cx->ix;
	struct hnsw_blk *e = &cx->sc->blk[b];
	e->vec = NULL;
	e->attr = NULL;
	e->cv = NULL;
	e->rowfl = NULL;
	if (ix->compact) {
		uint8_t key[8];
		hnsw_node_key(key, HNSW_TAG_CV, b);
		MDB_val k = {8, key}, v;
		size_t rows = HYDB_BLOCK_SLOTS * ix->dim * sizeof(uint16_t);
		int rc = mdb_get(cx->txn, ix->src.nodes, &k, &v);
		if (rc && rc != MDB_NOTFOUND)
			return mdb_fail(rc, "reading a compact block");
		RETURN_ERROR_IF(!rc && v.mv_size != rows &&
					v.mv_size != rows + HYDB_BLOCK_SLOTS,
				HYDB_ECORRUPT,
				"index: compact block %u has %zu bytes", b,
				v.mv_size);
		if (!rc)
			e->cv = v.mv_data;
		if (!rc && v.mv_size > rows)
			e->rowfl = (const uint8_t *)v.mv_data + rows;
	}
	e->epoch = cx->sc->blk_epoch;
	e->wepoch = cx->sc->wepoch;
	/* Without MDB_WRITEMAP a later put may spill the page under it. */
	e->vol = !cx->ix->stable_ptrs;
	return 0;
}

static int blk_load_vec(struct hnsw_ctx *cx, uint32_t b)
{
	hydb_index *ix = cx->ix;
	struct hnsw_blk *e = &cx->sc->blk[b];
	hydb_block blk;
	int rc = ix->src.block(ix->src.ctx, cx->txn, b, &blk);
	if (rc < 0)
		return hydb_error_prefix(rc, "index: vector block %u", b);
	e->vec = blk.vec;
	e->attr = blk.attr;
	return 0;
}

int hnsw_slot_data(struct hnsw_ctx *cx, uint32_t slot, const float **vec,
		   const hydb_slot_attr **attr, const uint16_t **cv)
{
	uint32_t b = slot / HYDB_BLOCK_SLOTS, i = slot % HYDB_BLOCK_SLOTS;
	/* A damaged link can name any slot, HYDB_NO_SLOT included (slot + 1
	 * would wrap and leave the table short). */
	RETURN_ERROR_IF(slot == HYDB_NO_SLOT, HYDB_ECORRUPT, "index: link to slot %u", slot);
	if (b >= cx->sc->blk_cap)
		FORWARD_IF_ERROR(scratch_fit(cx->sc, slot + 1));
	RETURN_ERROR_IF(b >= cx->sc->blk_cap, HYDB_ECORRUPT, "index: slot %u is out of range", slot);
	struct hnsw_blk *e = &cx->sc->blk[b];
	if (e->epoch != cx->sc->blk_epoch ||
	    (e->vol && e->wepoch != cx->sc->wepoch))
		FORWARD_IF_ERROR(blk_load_cv(cx, b));
	if ((vec || attr) && !e->vec)
		FORWARD_IF_ERROR(blk_load_vec(cx, b));
	if (vec)
		*vec = e->vec + (size_t)i * cx->ix->dim;
	if (attr)
		*attr = e->attr + i;
	if (cv) {
		RETURN_ERROR_IF(!e->cv, HYDB_ECORRUPT,
				"index: slot %u has no compact vector", slot);
		*cv = e->cv + (size_t)i * cx->ix->dim;
	}
	return 0;
}

int hnsw_walk_row_load(struct hnsw_ctx *cx, uint32_t slot, const void **row,
		       int *half)
{
	const float *v;
	const uint16_t *cv;
	if (!cx->ix->compact) {
		FORWARD_IF_ERROR(hnsw_slot_data(cx, slot, &v, NULL, NULL));
		*row = v;
		*half = 0;
		return 0;
	}
	FORWARD_IF_ERROR(hnsw_slot_data(cx, slot, NULL, NULL, &cv));
	/* the block entry is current after hnsw_slot_data */
	const uint8_t *fl = cx->sc->blk[slot / HYDB_BLOCK_SLOTS].rowfl;
	*half = !fl || !(fl[slot % HYDB_BLOCK_SLOTS] & HNSW_ROW_WIDE);
	if (!*half)
		FORWARD_IF_ERROR(hnsw_slot_data(cx, slot, &v, NULL, NULL));
	*row = *half ? (const void *)cv : (const void *)v;
	return 0;
}

/* ---- links ------------------------------------------------------------- */

/* Format 2 appends the node's rank in the reachability tree (reach.c);
 * format 1 records end after the links. */
static size_t rank_off(const hydb_index *ix)
{
	return HNSW_L0_LINKS + HNSW_LINK_BYTES * (size_t)ix->M0;
}

static size_t l0_size(const hydb_index *ix)
{
	return rank_off(ix) + (ix->legacy ? 0 : HNSW_RANK_BYTES);
}

static size_t up_stride(const hydb_index *ix)
{
	return HNSW_UP_STRIDE(ix->M);
}

static int node_get(struct hnsw_ctx *cx, uint32_t tag, uint32_t slot,
		    MDB_val *v)
{
	uint8_t key[8];
	hnsw_node_key(key, tag, slot);
	MDB_val k = {8, key};
	int rc = mdb_get(cx->txn, cx->ix->src.nodes, &k, v);
	if (rc == MDB_NOTFOUND)
		return hydb_error_set(HYDB_ENOTFOUND,
				      "index: slot %u is not a graph node",
				      slot);
	return rc ? mdb_fail(rc, "reading a graph node") : 0;
}

static int node_put(struct hnsw_ctx *cx, uint32_t tag, uint32_t slot,
		    const void *data, size_t size)
{
	uint8_t key[8];
	hnsw_node_key(key, tag, slot);
	MDB_val k = {8, key}, v = {size, (void *)data};
	int rc = mdb_put(cx->txn, cx->ix->src.nodes, &k, &v, 0);
	hnsw_ctx_wrote(cx);
	return rc ? mdb_fail(rc, "writing a graph node") : 0;
}

int hnsw_get_level(struct hnsw_ctx *cx, uint32_t slot, unsigned *level)
{
	MDB_val v;
	const struct hnsw_l0 *p = cx->pend ? hnsw_pending_find(cx->pend, slot)
					   : NULL;
	if (p) {
		*level = p->level;
		return 0;
	}
	FORWARD_IF_ERROR(node_get(cx, HNSW_TAG_L0, slot, &v));
	RETURN_ERROR_IF(v.mv_size != l0_size(cx->ix), HYDB_ECORRUPT,
			"index: node of slot %u has %zu bytes", slot,
			v.mv_size);
	*level = ((const uint8_t *)v.mv_data)[HNSW_L0_LEVEL];
	RETURN_ERROR_IF(*level > HYDB_HNSW_MAX_LEVEL, HYDB_ECORRUPT,
			"index: node of slot %u has level %u", slot, *level);
	return 0;
}

/* A link past the header's slot limit would size arrays from a damaged
 * value. */
static int links_sane(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		      const uint32_t *links, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		RETURN_ERROR_IF(links[i] >= cx->meta.slot_limit, HYDB_ECORRUPT,
				"index: slot %u layer %u links to slot %u, past "
				"the limit %u", slot, level, links[i],
				cx->meta.slot_limit);
	return 0;
}

/* The whole layer-0 record from LMDB: level, tree links (the first prot
 * of the list), links, rank. */
static int l0_read(struct hnsw_ctx *cx, uint32_t slot, struct hnsw_l0 *r)
{
	hydb_index *ix = cx->ix;
	MDB_val v;
	uint16_t cnt;
	FORWARD_IF_ERROR(node_get(cx, HNSW_TAG_L0, slot, &v));
	const uint8_t *p = v.mv_data;
	RETURN_ERROR_IF(v.mv_size != l0_size(ix), HYDB_ECORRUPT,
			"index: node of slot %u has %zu bytes", slot, v.mv_size);
	memcpy(&cnt, p + HNSW_L0_DEGREE, sizeof cnt);
	r->level = p[HNSW_L0_LEVEL];
	r->prot = p[HNSW_L0_PROT];
	r->n = cnt;
	r->rank = 0;
	if (!ix->legacy)
		memcpy(&r->rank, p + rank_off(ix), 4);
	RETURN_ERROR_IF(cnt > ix->M0 || r->prot > cnt ||
				r->level > HYDB_HNSW_MAX_LEVEL,
			HYDB_ECORRUPT, "index: node of slot %u is malformed",
			slot);
	memcpy(r->links, p + HNSW_L0_LINKS, (size_t)cnt * HNSW_LINK_BYTES);
	FORWARD_IF_ERROR(links_sane(cx, slot, 0, r->links, cnt));
	if (cx->pend && !cx->pend_ro)
		return hnsw_pending_keep(cx->pend, slot, r);
	return 0;
}

int hnsw_l0_get(struct hnsw_ctx *cx, uint32_t slot, struct hnsw_l0 *r)
{
	const struct hnsw_l0 *p0 = cx->pend ? hnsw_pending_find(cx->pend, slot)
					    : NULL;
	if (p0) {
		hnsw_l0_copy(r, p0);
		return 0;
	}
	return l0_read(cx, slot, r);
}

int hnsw_l0_put(struct hnsw_ctx *cx, uint32_t slot, const struct hnsw_l0 *r)
{
	hydb_index *ix = cx->ix;
	uint8_t buf[HNSW_L0_LINKS + HNSW_LINK_BYTES * 2 * HYDB_HNSW_MAX_M + HNSW_RANK_BYTES];
	uint16_t cnt = (uint16_t)r->n;
	assert(r->n <= ix->M0 && r->prot <= r->n && r->level <= HYDB_HNSW_MAX_LEVEL);
	assert(l0_size(ix) <= sizeof buf);
	RETURN_ERROR_IF(ix->legacy, HYDB_EVERSION,
			"index: graph format 1 is read-only; rebuild the "
			"index to change it");
	if (cx->pend)
		return hnsw_pending_put(cx->pend, slot, r);
	buf[HNSW_L0_LEVEL] = (uint8_t)r->level;
	buf[HNSW_L0_PROT] = (uint8_t)r->prot;
	memcpy(buf + HNSW_L0_DEGREE, &cnt, sizeof cnt);
	memset(buf + HNSW_L0_LINKS, 0xff, HNSW_LINK_BYTES * (size_t)ix->M0);
	memcpy(buf + HNSW_L0_LINKS, r->links, (size_t)r->n * HNSW_LINK_BYTES);
	memcpy(buf + rank_off(ix), &r->rank, HNSW_RANK_BYTES);
	return node_put(cx, HNSW_TAG_L0, slot, buf, l0_size(ix));
}

/* A layer-0 record, checked, from LMDB or from the scratch's table of
 * records already read in this read-only snapshot. A low-dimensional
 * search spent two fifths of its time in the B-tree descents of
 * mdb_get; the pages of a snapshot cannot change while a reader holds
 * it, and cache_for_txn moves blk_epoch on whenever the snapshot or the
 * mapping changes. Write transactions always read through. */
static int l0_record(struct hnsw_ctx *cx, uint32_t slot, const uint8_t **rec)
{
	struct hnsw_scratch *sc = cx->sc;
	hydb_index *ix = cx->ix;
	int keep = sc->snap_txn != UINT64_MAX && sc->blk_epoch != 0;
	if (keep && slot < sc->l0_cap && sc->l0[slot].epoch == sc->blk_epoch) {
		*rec = sc->l0[slot].p;
		return 0;
	}
	MDB_val v;
	uint16_t cnt;
	FORWARD_IF_ERROR(node_get(cx, HNSW_TAG_L0, slot, &v));
	const uint8_t *p = v.mv_data;
	RETURN_ERROR_IF(v.mv_size != l0_size(ix), HYDB_ECORRUPT,
			"index: node of slot %u is malformed", slot);
	memcpy(&cnt, p + HNSW_L0_DEGREE, sizeof cnt);
	RETURN_ERROR_IF(cnt > ix->M0, HYDB_ECORRUPT,
			"index: node of slot %u is malformed", slot);
	uint32_t links[2 * HYDB_HNSW_MAX_M];
	memcpy(links, p + HNSW_L0_LINKS, (size_t)cnt * HNSW_LINK_BYTES);
	FORWARD_IF_ERROR(links_sane(cx, slot, 0, links, cnt));
	if (keep && slot >= sc->l0_cap && slot < cx->meta.slot_limit)
		FORWARD_IF_ERROR(grow_zeroed((void **)&sc->l0, &sc->l0_cap,
					     sc->visit_cap, sizeof *sc->l0,
					     "layer-0 records"));
	if (keep && slot < sc->l0_cap)
		sc->l0[slot] = (struct hnsw_l0ref){p, sc->blk_epoch};
	*rec = p;
	return 0;
}

/* Values sit at 2-byte alignment in LMDB leaf pages: copy, never cast. */
int hnsw_get_links(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		   uint32_t *links, unsigned *n)
{
	hydb_index *ix = cx->ix;
	MDB_val v;
	/* With held records attached, the record goes through them. */
	if (level == 0 && cx->pend) {
		struct hnsw_l0 r;
		FORWARD_IF_ERROR(hnsw_l0_get(cx, slot, &r));
		memcpy(links, r.links, (size_t)r.n * sizeof *links);
		*n = r.n;
		return 0;
	}
	if (level == 0) {
		const uint8_t *p = NULL;
		uint16_t cnt;
		FORWARD_IF_ERROR(l0_record(cx, slot, &p));
		memcpy(&cnt, p + HNSW_L0_DEGREE, sizeof cnt);
		memcpy(links, p + HNSW_L0_LINKS, (size_t)cnt * HNSW_LINK_BYTES);
		*n = cnt;
		return 0;
	}
	FORWARD_IF_ERROR(node_get(cx, HNSW_TAG_UP, slot, &v));
	size_t off = (size_t)(level - 1) * up_stride(ix);
	RETURN_ERROR_IF(off + up_stride(ix) > v.mv_size, HYDB_ECORRUPT,
			"index: slot %u has no layer %u", slot, level);
	uint32_t cnt;
	memcpy(&cnt, (const uint8_t *)v.mv_data + off, HNSW_UP_DEGREE_BYTES);
	RETURN_ERROR_IF(cnt > ix->M, HYDB_ECORRUPT,
			"index: slot %u layer %u has degree %u", slot, level,
			cnt);
	memcpy(links, (const uint8_t *)v.mv_data + off + HNSW_UP_DEGREE_BYTES,
	       (size_t)cnt * HNSW_LINK_BYTES);
	*n = cnt;
	return links_sane(cx, slot, level, links, cnt);
}

int hnsw_links_view(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		    const uint32_t **links, unsigned *n)
{
	if (level == 0 && cx->pend) {
		const struct hnsw_l0 *p0 = hnsw_pending_find(cx->pend, slot);
		if (!p0 && !cx->pend_ro) {
			struct hnsw_l0 r;
			FORWARD_IF_ERROR(l0_read(cx, slot, &r));
			p0 = hnsw_pending_find(cx->pend, slot);
		}
		if (p0) {
			*links = p0->links;
			*n = p0->n;
			return 0;
		}
	}
	FORWARD_IF_ERROR(hnsw_get_links(cx, slot, level, cx->sc->links, n));
	*links = cx->sc->links;
	return 0;
}

int hnsw_put_links(struct hnsw_ctx *cx, uint32_t slot, unsigned level,
		   const uint32_t *links, unsigned n)
{
	hydb_index *ix = cx->ix;
	MDB_val v;
	if (level == 0) {
		struct hnsw_l0 r;
		FORWARD_IF_ERROR(hnsw_l0_get(cx, slot, &r));
		memcpy(r.links, links, (size_t)n * sizeof *links);
		r.n = n;
		RETURN_ERROR_IF(r.prot > n, HYDB_EINVAL,
				"index: slot %u: list of %u drops tree links",
				slot, n);
		return hnsw_l0_put(cx, slot, &r);
	}
	FORWARD_IF_ERROR(node_get(cx, HNSW_TAG_UP, slot, &v));
	size_t off = (size_t)(level - 1) * up_stride(ix), size = v.mv_size;
	RETURN_ERROR_IF(off + up_stride(ix) > size, HYDB_ECORRUPT,
			"index: slot %u has no layer %u", slot, level);
	uint8_t *all = malloc(size);
	RETURN_ERROR_IF(!all, HYDB_ENOMEM, "index: no memory for a node");
	memcpy(all, v.mv_data, size);
	uint32_t cnt = n;
	assert(n <= ix->M);
	memcpy(all + off, &cnt, HNSW_UP_DEGREE_BYTES);
	memcpy(all + off + HNSW_UP_DEGREE_BYTES, links, (size_t)n * HNSW_LINK_BYTES);
	int rc = node_put(cx, HNSW_TAG_UP, slot, all, size);
	free(all);
	return rc;
}

int hnsw_node_create(struct hnsw_ctx *cx, uint32_t slot, unsigned level)
{
	hydb_index *ix = cx->ix;
	struct hnsw_l0 r = {.level = level};
	FORWARD_IF_ERROR(hnsw_l0_put(cx, slot, &r));
	if (level == 0)
		return 0;
	size_t size = (size_t)level * up_stride(ix);
	uint8_t *up = calloc(1, size);
	RETURN_ERROR_IF(!up, HYDB_ENOMEM, "index: no memory for a node");
	int rc = node_put(cx, HNSW_TAG_UP, slot, up, size);
	free(up);
	return rc;
}

static int node_del(struct hnsw_ctx *cx, uint32_t tag, uint32_t slot)
{
	uint8_t key[8];
	hnsw_node_key(key, tag, slot);
	MDB_val k = {8, key};
	int rc = mdb_del(cx->txn, cx->ix->src.nodes, &k, NULL);
	hnsw_ctx_wrote(cx);
	return rc && rc != MDB_NOTFOUND ? mdb_fail(rc, "deleting a node") : 0;
}

int hnsw_node_delete(struct hnsw_ctx *cx, uint32_t slot)
{
	FORWARD_IF_ERROR(hnsw_pending_flush(cx));
	FORWARD_IF_ERROR(node_del(cx, HNSW_TAG_L0, slot));
	return node_del(cx, HNSW_TAG_UP, slot);
}

/* ---- compact copy ------------------------------------------------------ */

/* One row and its flag: a row half precision cannot hold is zero in the
 * block and walked in float32. */
static void compact_row(hydb_index *ix, const float *vec, uint16_t *row,
			uint8_t *flag)
{
	if (hydb_half_fits(vec, ix->dim, ix->c)) {
		hydb_f32_to_f16(row, vec, ix->dim);
		*flag = 0;
	} else {
		memset(row, 0, ix->dim * sizeof *row);
		*flag = HNSW_ROW_WIDE;
	}
}

/* Rewrite each touched block once, however many of its slots are new. A
 * block in the format-2 layout has every row converted again (the store
 * holds all 64 vectors), so it leaves no infinite row behind. */
static int compact_block(struct hnsw_ctx *cx, uint32_t b, const uint32_t *slots,
			 size_t n, uint16_t *buf)
{
	hydb_index *ix = cx->ix;
	size_t rows = HYDB_BLOCK_SLOTS * ix->dim;
	size_t size = rows * sizeof *buf + HYDB_BLOCK_SLOTS;
	uint8_t key[8], *flags = (uint8_t *)(buf + rows);
	hnsw_node_key(key, HNSW_TAG_CV, b);
	MDB_val k = {8, key}, v;
	int rc = mdb_get(cx->txn, ix->src.nodes, &k, &v);
	if (rc && rc != MDB_NOTFOUND)
		return mdb_fail(rc, "reading a compact block");
	int whole = rc != 0 || v.mv_size != size;
	if (!whole)
		memcpy(buf, v.mv_data, size);
	for (uint32_t i = 0; whole && i < HYDB_BLOCK_SLOTS; i++) {
		uint32_t s = b * HYDB_BLOCK_SLOTS + i;
		const float *vec;
		FORWARD_IF_ERROR(hnsw_slot_data(cx, s, &vec, NULL, NULL));
		compact_row(ix, vec, buf + (size_t)i * ix->dim, flags + i);
	}
	for (size_t i = 0; i < n && !whole; i++) {
		if (slots[i] / HYDB_BLOCK_SLOTS != b)
			continue;
		uint32_t r = slots[i] % HYDB_BLOCK_SLOTS;
		const float *vec;
		FORWARD_IF_ERROR(hnsw_slot_data(cx, slots[i], &vec, NULL, NULL));
		compact_row(ix, vec, buf + (size_t)r * ix->dim, flags + r);
	}
	v.mv_size = size;
	v.mv_data = buf;
	rc = mdb_put(cx->txn, ix->src.nodes, &k, &v, 0);
	hnsw_ctx_wrote(cx);
	return rc ? mdb_fail(rc, "writing a compact block") : 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

int hnsw_compact_write(struct hnsw_ctx *cx, const uint32_t *slots, size_t n)
{
	hydb_index *ix = cx->ix;
	if (!ix->compact || n == 0)
		return 0;
	uint32_t *blocks = hydb_alloc_array(n, sizeof *blocks, "block list");
	/* the rows, then a flag byte per row */
	uint16_t *buf = hydb_alloc_array(HYDB_BLOCK_SLOTS * (ix->dim + 1),
					 sizeof *buf, "compact block");
	/* a format-2 library would rewrite the new blocks without their
	 * flags: the graph says it is newer (saved with the insert) */
	cx->meta.version = HNSW_META_VERSION;
	int rc = blocks && buf ? 0 : HYDB_ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++)
		blocks[i] = slots[i] / HYDB_BLOCK_SLOTS;
	if (rc == 0)
		qsort(blocks, n, sizeof *blocks, cmp_u32);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (i == 0 || blocks[i] != blocks[i - 1])
			rc = compact_block(cx, blocks[i], slots, n, buf);
	free(blocks);
	free(buf);
	return rc;
}
