/*
 * hnsw_store.c - the index over a hydb store: vectors, attributes and the
 * radius index come from storage/, the graph goes in the store's hnsw DBIs.
 */
#include "index/hnsw_impl.h"

static int st_block(void *ctx, MDB_txn *txn, uint32_t no, hydb_block *out)
{
	return hydb_store_block_get(ctx, txn, no, out);
}

static int st_rcount(void *ctx, MDB_txn *txn, double lo, double hi,
		     uint64_t limit, uint64_t *out)
{
	return hydb_store_radius_count(ctx, txn, lo, hi, limit, out);
}

static int st_rscan(void *ctx, MDB_txn *txn, double lo, double hi,
		    hydb_slot_fn fn, void *fctx)
{
	return hydb_store_radius_scan(ctx, txn, lo, hi, fn, fctx);
}

static uint64_t st_mapgen(void *ctx)
{
	return hydb_store_map_generation(ctx);
}

int hydb_index_open_flags(hydb_index **out, hydb_store *st, MDB_txn *txn,
			  unsigned M, unsigned efc, unsigned flags)
{
	RETURN_ERROR_IF(!st, HYDB_EINVAL, "index open: no store");
	hydb_vsource src = {
		.ctx = st,
		.env = hydb_store_env(st),
		.nodes = hydb_store_dbi(st, HYDB_DBI_HNSW_NODES),
		.meta = hydb_store_dbi(st, HYDB_DBI_HNSW_META),
		.dim = hydb_store_dim(st),
		.c = hydb_store_curvature(st),
		.block = st_block,
		.radius_count = st_rcount,
		.radius_scan = st_rscan,
		.map_generation = st_mapgen,
	};
	return hydb_index_open_source(out, &src, txn, M, efc, flags);
}

int hydb_index_open(hydb_index **out, hydb_store *st, MDB_txn *txn,
		    unsigned M, unsigned efc)
{
	return hydb_index_open_flags(out, st, txn, M, efc, 0);
}
