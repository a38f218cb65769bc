/*
 * store_check.c - whole-store verification for `hydb check`, and iteration over
 * every record for export. LMDB has no page checksums, so this is where
 * silent corruption is found: each table is cross-checked against the
 * others, and every record and vector against its XXH64.
 */
#include "storage/store_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/keys.h"
#include "storage/record.h"

/* Records: checksum, key table, slot back-pointer, vector checksum, radius
 * table entry, radius consistent with the vector. */
static int check_records(hydb_store *st, MDB_txn *txn, hydb_reporter *rep, hydb_check_stats *cs,
			 uint64_t *max_id)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, hydb_store_dbi(st, HYDB_DBI_RECORDS), &c);
	size_t dim = hydb_store_dim(st);
	double curv = hydb_store_curvature(st);

	if (rc)
		return hydb_store_mdb_error(rc, "record table");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint64_t id, kid;
		hydb_rec_hdr h;
		hydb_entry *e;
		const float *vec;
		const hydb_slot_attr *attr;
		unsigned char rk[8];
		MDB_val rv, rkv = {8, rk};

		if (k.mv_size != 8) {
			hydb_report(rep, "record table: key of %zu bytes (expected 8)", k.mv_size);
			continue;
		}
		id = get_be64(k.mv_data);
		cs->records++;
		if (id > *max_id)
			*max_id = id;
		if (hydb_rec_decode(&e, v.mv_data, v.mv_size, id) < 0) {
			hydb_report(rep, "%s", hydb_last_error());
			continue;
		}
		hydb_rec_header(&h, v.mv_data);
		if (hydb_store_lookup_key(st, txn, e->key, &kid) < 0 || kid != id)
			hydb_report(rep, "record %llu: key '%.100s' does not map back to it", (unsigned long long)id, e->key);
		if (hydb_store_slot(st, txn, h.slot, &vec, &attr) < 0) {
			hydb_report(rep, "record %llu: vector slot %u is missing", (unsigned long long)id, h.slot);
		} else if (!attr->live || attr->id != id) {
			hydb_report(rep, "record %llu: vector slot %u belongs to %s", (unsigned long long)id, h.slot,
				attr->live ? "another record" : "nobody (free)");
		} else {
			double r = hydb_lorentz_radius(vec, dim, curv);
			if (hydb_vec_hash(vec, dim) != h.vec_hash)
				hydb_report(rep, "record %llu: vector checksum mismatch (slot %u)", (unsigned long long)id, h.slot);
			else if (fabs(r - h.radius) > 1e-4 * (1 + r) || attr->radius != h.radius)
				hydb_report(rep, "record %llu: stored radius %.6g does not match its vector (%.6g)",
					(unsigned long long)id, h.radius, r);
			if (attr->label != h.label || attr->modality != h.modality)
				hydb_report(rep, "record %llu: slot attributes disagree with the record", (unsigned long long)id);
		}
		put_be32(rk, radius_bits(h.radius));
		put_be32(rk + 4, h.slot);
		if (mdb_get(txn, hydb_store_dbi(st, HYDB_DBI_RADIUS), &rkv, &rv) != 0)
			hydb_report(rep, "record %llu: missing from the radius table", (unsigned long long)id);
		hydb_entry_free(e);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? HYDB_OK : hydb_store_mdb_error(rc, "record table");
}

/* Vector blocks: every live slot's record exists and points back. */
struct block_check_ctx {
	hydb_store *st;
	MDB_txn *txn;
	hydb_reporter *rep;
	hydb_check_stats *cs;
};

static int check_block(uint32_t b, const hydb_block *blk, void *vctx)
{
	struct block_check_ctx *c = vctx;
	unsigned live = 0;
	if (!blk) {
		hydb_report(c->rep, "%s", hydb_last_error());
		return HYDB_OK;
	}
	for (unsigned i = 0; i < HYDB_BLOCK_SLOTS; i++) {
		uint32_t slot = b * HYDB_BLOCK_SLOTS + i, rslot;
		if (!blk->attr[i].live)
			continue;
		live++;
		c->cs->live_slots++;
		if (hydb_store_record_slot(c->st, c->txn, blk->attr[i].id, &rslot) < 0)
			hydb_report(c->rep, "slot %u: its record %llu is missing or corrupt", slot,
				(unsigned long long)blk->attr[i].id);
		else if (rslot != slot)
			hydb_report(c->rep, "slot %u: record %llu lives in slot %u", slot,
				(unsigned long long)blk->attr[i].id, rslot);
	}
	if (live != blk->hdr->n_live)
		hydb_report(c->rep, "vector block %u: header counts %u live slots, found %u", b, blk->hdr->n_live, live);
	return HYDB_OK;
}

static int check_blocks(hydb_store *st, MDB_txn *txn, hydb_reporter *rep, hydb_check_stats *cs,
			uint32_t *slot_end)
{
	struct block_check_ctx c = {st, txn, rep, cs};
	uint32_t nb;
	FORWARD_IF_ERROR(hydb_store_block_count(st, txn, &nb));
	*slot_end = nb * HYDB_BLOCK_SLOTS;
	return hydb_store_each_block(st, txn, check_block, &c);
}

/* Keys, radius and free tables: every entry points at something live. */
static int check_tables(hydb_store *st, MDB_txn *txn, hydb_reporter *rep, hydb_check_stats *cs)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, hydb_store_dbi(st, HYDB_DBI_KEYS), &c)))
		return hydb_store_mdb_error(rc, "key table");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint32_t slot;
		cs->keys++;
		if (v.mv_size != 8 || hydb_store_record_slot(st, txn, get_be64(v.mv_data), &slot) < 0)
			hydb_report(rep, "key table: entry '%.*s' points at no record", (int)(k.mv_size > 100 ? 100 : k.mv_size),
				(const char *)k.mv_data);
	}
	mdb_cursor_close(c);
	if ((rc = mdb_cursor_open(txn, hydb_store_dbi(st, HYDB_DBI_RADIUS), &c)))
		return hydb_store_mdb_error(rc, "radius table");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const hydb_slot_attr *a;
		uint32_t slot;
		cs->radius_entries++;
		if (k.mv_size != 8) {
			hydb_report(rep, "radius table: key of %zu bytes", k.mv_size);
			continue;
		}
		slot = get_be32((const unsigned char *)k.mv_data + 4);
		if (hydb_store_slot(st, txn, slot, NULL, &a) < 0 || !a->live ||
		    radius_bits(a->radius) != get_be32(k.mv_data))
			hydb_report(rep, "radius table: entry for slot %u does not match a live slot", slot);
	}
	mdb_cursor_close(c);
	if ((rc = mdb_cursor_open(txn, hydb_store_dbi(st, HYDB_DBI_FREE), &c)))
		return hydb_store_mdb_error(rc, "free slots");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const hydb_slot_attr *a;
		uint32_t slot = k.mv_size == 4 ? get_be32(k.mv_data) : HYDB_NO_SLOT;
		if (slot != HYDB_NO_SLOT && hydb_store_slot(st, txn, slot, NULL, &a) == 0 && a->live)
			hydb_report(rep, "free slots: slot %u is listed free but holds record %llu", slot,
				(unsigned long long)a->id);
	}
	mdb_cursor_close(c);
	return HYDB_OK;
}

int hydb_store_check(hydb_store *st, MDB_txn *txn, hydb_check_problem_fn fn, void *ctx,
		     hydb_check_stats *cs)
{
	hydb_reporter rep = {fn, ctx, 0};
	uint64_t max_id = 0, count = 0, next_id = 0, next_slot = 0;
	uint32_t slot_end = 0;
	char buf[64];

	memset(cs, 0, sizeof *cs);
	FORWARD_IF_ERROR(check_records(st, txn, &rep, cs, &max_id));
	FORWARD_IF_ERROR(check_blocks(st, txn, &rep, cs, &slot_end));
	FORWARD_IF_ERROR(check_tables(st, txn, &rep, cs));
	if (hydb_store_count(st, txn, &count) < 0 || count != cs->records)
		hydb_report(&rep, "metadata: count says %llu records, found %llu", (unsigned long long)count,
			(unsigned long long)cs->records);
	if (cs->live_slots != cs->records)
		hydb_report(&rep, "metadata: %llu live slots for %llu records", (unsigned long long)cs->live_slots,
			(unsigned long long)cs->records);
	if (cs->keys != cs->records)
		hydb_report(&rep, "metadata: %llu keys for %llu records", (unsigned long long)cs->keys,
			(unsigned long long)cs->records);
	if (hydb_store_meta_get(st, txn, "next_id", buf, sizeof buf) == 0)
		next_id = strtoull(buf, NULL, 10);
	if (cs->records && next_id <= max_id)
		hydb_report(&rep, "metadata: next id %llu is not above the largest id %llu",
			(unsigned long long)next_id, (unsigned long long)max_id);
	if (hydb_store_meta_get(st, txn, "next_slot", buf, sizeof buf) == 0)
		next_slot = strtoull(buf, NULL, 10);
	if (next_slot < slot_end - (slot_end ? HYDB_BLOCK_SLOTS : 0))
		hydb_report(&rep, "metadata: next slot %llu lies inside the used blocks", (unsigned long long)next_slot);
	cs->problems = rep.n;
	return HYDB_OK;
}

int hydb_store_each_record(hydb_store *st, hydb_record_visit_fn fn, void *ctx)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	FORWARD_IF_ERROR(hydb_store_read_begin(st, &txn));
	rc = mdb_cursor_open(txn, hydb_store_dbi(st, HYDB_DBI_RECORDS), &c);
	if (rc) {
		hydb_store_read_end(st, txn);
		return hydb_store_mdb_error(rc, "record table");
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		hydb_entry *e;
		int frc;
		if (k.mv_size != 8) {
			rc = hydb_error_set(HYDB_ECORRUPT, "record table: bad key");
			break;
		}
		frc = hydb_store_get(st, txn, get_be64(k.mv_data), &e);
		if (frc == 0) {
			frc = fn(e, ctx);
			hydb_entry_free(e);
		}
		if (frc < 0) {
			rc = frc;
			break;
		}
	}
	mdb_cursor_close(c);
	hydb_store_read_end(st, txn);
	if (rc == MDB_NOTFOUND)
		return HYDB_OK;
	return rc < 0 ? rc : hydb_store_mdb_error(rc, "record table");
}
