/*
 * db.c - the public database API: a write goes store -> index in one LMDB
 * transaction; a search goes redirect -> plan (index or exact) -> records.
 */
#include "base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "search_exact.h"
#include "storage/store.h"
#include "index/hnsw.h"


struct hydb_db {
	hydb_store *st;
	hydb_index *ix;
};

void hydb_open_options_init(hydb_open_options *o)
{
	memset(o, 0, sizeof *o);
	o->version = HYDB_OPEN_OPTIONS_VERSION;
	o->curvature = 1.0;
}

void hydb_search_options_init(hydb_search_options *o)
{
	memset(o, 0, sizeof *o);
	o->version = HYDB_SEARCH_OPTIONS_VERSION;
	o->k = 10;
	o->min_radius = 0;
	o->max_radius = INFINITY;
}

struct index_open_ctx {
	hydb_db *db;
	unsigned m, efc;
};

static int index_open_fn(hydb_store *st, MDB_txn *txn, void *vctx)
{
	struct index_open_ctx *c = vctx;
	return hydb_index_open(&c->db->ix, st, txn, c->m, c->efc);
}

int hydb_open(hydb_db **out, const char *path, const hydb_open_options *opts)
{
	hydb_db *db;
	int rc;
	struct index_open_ctx ic;

	RETURN_ERROR_IF(!out, HYDB_EINVAL, "hydb_open: out is NULL");
	db = calloc(1, sizeof *db);
	RETURN_ERROR_IF(!db, HYDB_ENOMEM, "%s: out of memory", path ? path : "(null)");
	rc = hydb_store_open(&db->st, path, opts);
	if (rc < 0) {
		free(db);
		return rc;
	}
	ic.db = db;
	ic.m = opts ? opts->hnsw_m : 0;
	ic.efc = opts ? opts->hnsw_ef_construction : 0;
	if (hydb_store_readonly(db->st)) {
		MDB_txn *txn;
		rc = hydb_store_read_begin(db->st, &txn);
		if (rc == 0) {
			rc = hydb_index_open(&db->ix, db->st, txn, ic.m, ic.efc);
			hydb_store_read_end(db->st, txn);
		}
	} else {
		/* Creates the index tables' entries on first open. */
		rc = hydb_store_write(db->st, index_open_fn, &ic);
	}
	if (rc < 0) {
		hydb_store_close(db->st);
		free(db);
		return rc;
	}
	*out = db;
	return HYDB_OK;
}

void hydb_close(hydb_db *db)
{
	if (!db)
		return;
	hydb_index_close(db->ix);
	hydb_store_close(db->st);
	free(db);
}

size_t hydb_dim(const hydb_db *db) { return hydb_store_dim(db->st); }
double hydb_curvature(const hydb_db *db) { return hydb_store_curvature(db->st); }

/* Internal: the store and index behind a handle (CLI check, tests). */
hydb_store *hydb_db_store(hydb_db *db) { return db->st; }
hydb_index *hydb_db_index(hydb_db *db) { return db->ix; }

/* ---- writes ------------------------------------------------------------- */

static int check_text(const char *where, const char *what, const char *s, size_t max)
{
	size_t len = strlen(s);
	RETURN_ERROR_IF(len > max, HYDB_ETOOBIG, "%s: %s of %zu bytes exceeds the limit of %zu", where,
			what, len, max);
	RETURN_ERROR_IF(hydb_utf8_valid(s, len) < 0, HYDB_EUTF8, "%s: %s is not valid UTF-8", where, what);
	return HYDB_OK;
}

int hydb_record_validate(const hydb_record *r, size_t dim, double c, const char *where)
{
	size_t bad;
	double sr;
	RETURN_ERROR_IF(!r->key || !*r->key, HYDB_EINVAL, "%s: key is missing", where);
	FORWARD_IF_ERROR(check_text(where, "key", r->key, HYDB_MAX_KEY));
	RETURN_ERROR_IF(!r->vector, HYDB_EINVAL, "%s ('%.100s'): vector is missing", where, r->key);
	bad = hydb_first_nonfinite(r->vector, dim);
	RETURN_ERROR_IF(bad < dim, HYDB_ENONFINITE, "%s ('%.100s'): component %zu is %s", where, r->key,
			bad, isnan(r->vector[bad]) ? "NaN" : "infinite");
	sr = sqrt(c) * hydb_lorentz_radius(r->vector, dim, c);
	RETURN_ERROR_IF(!(sr <= HYDB_MAX_RADIUS), HYDB_ETOOBIG,
			"%s ('%.100s'): radius %.4g is beyond the largest the geometry represents (%g/sqrt(c))",
			where, r->key, sr / sqrt(c), HYDB_MAX_RADIUS);
	RETURN_ERROR_IF((unsigned)r->modality > HYDB_MOD_TEXT, HYDB_EINVAL,
			"%s ('%.100s'): unknown modality %d", where, r->key, (int)r->modality);
	RETURN_ERROR_IF((unsigned)r->label > HYDB_LABEL_UNSAFE, HYDB_EINVAL,
			"%s ('%.100s'): unknown label %d", where, r->key, (int)r->label);
	if (r->caption)
		FORWARD_IF_ERROR(check_text(where, "caption", r->caption, HYDB_MAX_CAPTION));
	if (r->meta) {
		const char *p = r->meta;
		size_t n = strlen(p);
		FORWARD_IF_ERROR(check_text(where, "metadata", p, HYDB_MAX_META));
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\t'))
			n--;
		p += strspn(p, " \t\n");
		RETURN_ERROR_IF(*p != '{' || n == 0 || r->meta[n - 1] != '}', HYDB_EINVAL,
				"%s ('%.100s'): metadata must be a JSON object", where, r->key);
	}
	return HYDB_OK;
}

struct put_ctx {
	hydb_db *db;
	const hydb_record *recs;
	size_t n;
	float *radii;
	uint64_t *ids;
	uint32_t *slots;
	const char *meta_name, *meta_value;
	uint32_t *old; /* slots of the records the batch replaces */
};

/* The records this batch replaces leave the index together, before any is
 * overwritten: one scan of the graph for all of them, not one each. */
static int remove_replaced(hydb_store *st, MDB_txn *txn, struct put_ctx *c)
{
	size_t n_old = 0;
	for (size_t i = 0; i < c->n; i++) {
		uint64_t old_id;
		int rc = hydb_store_lookup_key(st, txn, c->recs[i].key, &old_id);
		if (rc == HYDB_ENOTFOUND)
			continue;
		FORWARD_IF_ERROR(rc);
		FORWARD_IF_ERROR(hydb_store_record_slot(st, txn, old_id, &c->old[n_old]));
		n_old++;
	}
	return hydb_index_remove_many(c->db->ix, txn, c->old, n_old);
}

static int put_fn(hydb_store *st, MDB_txn *txn, void *vctx)
{
	struct put_ctx *c = vctx;
	size_t n_new = 0;

	FORWARD_IF_ERROR(remove_replaced(st, txn, c));
	for (size_t i = 0; i < c->n; i++) {
		uint64_t old_id;
		uint32_t old_slot, slot;
		int replaced, rc;

		rc = hydb_store_lookup_key(st, txn, c->recs[i].key, &old_id);
		if (rc == 0) {
			size_t j;
			FORWARD_IF_ERROR(hydb_store_record_slot(st, txn, old_id, &old_slot));
			/* Written earlier in this batch: not in the index yet.
			 * Otherwise remove_replaced took it out already. */
			for (j = 0; j < n_new && c->slots[j] != old_slot; j++)
				;
			if (j < n_new)
				c->slots[j] = c->slots[--n_new];
		} else if (rc != HYDB_ENOTFOUND) {
			return rc;
		}
		rc = hydb_store_put(st, txn, &c->recs[i], c->radii[i], &c->ids[i], &slot, &replaced);
		if (rc < 0)
			return hydb_error_prefix(rc, "record %zu ('%.100s')", i, c->recs[i].key);
		c->slots[n_new++] = slot;
	}
	if (c->meta_name)
		FORWARD_IF_ERROR(hydb_store_meta_put(st, txn, c->meta_name, c->meta_value));
	return hydb_index_insert(c->db->ix, txn, c->slots, n_new);
}

/* hydb_put that also records a metadata entry (e.g. import progress) in
 * the same transaction, so progress and data can never disagree. */
int hydb_db_put_meta(hydb_db *db, const hydb_record *recs, size_t n, uint64_t *ids_out,
		     const char *meta_name, const char *meta_value)
{
	struct put_ctx c = {db, recs, n, NULL, NULL, NULL, meta_name, meta_value, NULL};
	size_t dim;
	double curv;
	int rc = HYDB_OK;

	RETURN_ERROR_IF(!db, HYDB_EINVAL, "hydb_put: database handle is NULL");
	RETURN_ERROR_IF(!recs && n, HYDB_EINVAL, "hydb_put: records are NULL");
	if (n == 0 && !meta_name)
		return HYDB_OK;
	dim = hydb_store_dim(db->st);
	curv = hydb_store_curvature(db->st);
	for (size_t i = 0; i < n; i++) {
		char where[32];
		snprintf(where, sizeof where, "record %zu", i);
		FORWARD_IF_ERROR(hydb_record_validate(&recs[i], dim, curv, where));
	}
	c.radii = hydb_alloc_array(n, sizeof *c.radii, "radii");
	c.ids = ids_out ? ids_out : hydb_alloc_array(n, sizeof *c.ids, "ids");
	c.slots = hydb_alloc_array(n, sizeof *c.slots, "slots");
	c.old = hydb_alloc_array(n, sizeof *c.old, "replaced slots");
	if (!c.radii || !c.ids || !c.slots || !c.old) {
		rc = HYDB_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		c.radii[i] = (float)hydb_lorentz_radius(recs[i].vector, dim, curv);
		if (!isfinite(c.radii[i])) {
			rc = hydb_error_set(HYDB_ENONFINITE,
					    "record %zu ('%.100s'): radius overflows float32 (point too far out)",
					    i, recs[i].key);
			goto out;
		}
	}
	rc = hydb_store_write(db->st, put_fn, &c);
	if (rc == 0 && n)
		hydb_tune_maybe(db);
out:
	free(c.radii);
	if (!ids_out)
		free(c.ids);
	free(c.slots);
	free(c.old);
	return rc;
}

int hydb_put(hydb_db *db, const hydb_record *recs, size_t n, uint64_t *ids_out)
{
	return hydb_db_put_meta(db, recs, n, ids_out, NULL, NULL);
}

/* Read one metadata value; HYDB_ENOTFOUND when absent. */
int hydb_db_meta_get(hydb_db *db, const char *name, char *buf, size_t size)
{
	MDB_txn *txn;
	int rc;
	FORWARD_IF_ERROR(hydb_store_read_begin(db->st, &txn));
	rc = hydb_store_meta_get(db->st, txn, name, buf, size);
	hydb_store_read_end(db->st, txn);
	return rc;
}

struct del_ctx {
	hydb_db *db;
	const char *key;
	uint64_t id;
};

static int del_fn(hydb_store *st, MDB_txn *txn, void *vctx)
{
	struct del_ctx *c = vctx;
	uint32_t slot;
	if (c->key)
		FORWARD_IF_ERROR(hydb_store_lookup_key(st, txn, c->key, &c->id));
	FORWARD_IF_ERROR(hydb_store_record_slot(st, txn, c->id, &slot));
	FORWARD_IF_ERROR(hydb_index_remove(c->db->ix, txn, slot));
	return hydb_store_del(st, txn, c->id, NULL);
}

int hydb_delete_key(hydb_db *db, const char *key)
{
	struct del_ctx c = {db, key, 0};
	RETURN_ERROR_IF(!db, HYDB_EINVAL, "hydb_delete_key: database handle is NULL");
	RETURN_ERROR_IF(!key || !*key, HYDB_EINVAL, "hydb_delete_key: key is empty");
	return hydb_store_write(db->st, del_fn, &c);
}

int hydb_delete_id(hydb_db *db, uint64_t id)
{
	struct del_ctx c = {db, NULL, id};
	RETURN_ERROR_IF(!db, HYDB_EINVAL, "hydb_delete_id: database handle is NULL");
	return hydb_store_write(db->st, del_fn, &c);
}

struct id_slot {
	uint64_t id;
	uint32_t slot;
};

struct del_many_ctx {
	hydb_db *db;
	const char *const *keys;
	const uint64_t *ids;
	size_t n;
	unsigned flags;
	struct id_slot *found_pairs; /* the records found, by id, unique */
	uint32_t *slots;             /* their slots, for the index */
	size_t found;
};

/* Look every record up before anything changes, so a missing one can fail
 * the whole batch; a record named twice is removed once. */
static int cmp_id_slot(const void *a, const void *b)
{
	const struct id_slot *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

static int del_many_resolve(hydb_store *st, MDB_txn *txn, struct del_many_ctx *c)
{
	size_t n_unique = 0;
	c->found = 0;
	for (size_t i = 0; i < c->n; i++) {
		uint64_t id = c->ids ? c->ids[i] : 0;
		uint32_t slot;
		int rc = c->keys ? hydb_store_lookup_key(st, txn, c->keys[i], &id) : HYDB_OK;
		if (rc == 0)
			rc = hydb_store_record_slot(st, txn, id, &slot);
		if (rc == HYDB_ENOTFOUND && (c->flags & HYDB_DELETE_MISSING_OK))
			continue;
		if (rc == HYDB_ENOTFOUND && c->keys)
			return hydb_error_set(rc, "key '%.200s' not found; nothing was deleted", c->keys[i]);
		if (rc == HYDB_ENOTFOUND)
			return hydb_error_set(rc, "id %llu not found; nothing was deleted", (unsigned long long)id);
		FORWARD_IF_ERROR(rc);
		c->found_pairs[c->found].id = id;
		c->found_pairs[c->found++].slot = slot;
	}
	qsort(c->found_pairs, c->found, sizeof *c->found_pairs, cmp_id_slot);
	for (size_t i = 0; i < c->found; i++)
		if (!n_unique || c->found_pairs[i].id != c->found_pairs[n_unique - 1].id)
			c->found_pairs[n_unique++] = c->found_pairs[i];
	c->found = n_unique;
	for (size_t i = 0; i < c->found; i++)
		c->slots[i] = c->found_pairs[i].slot;
	return HYDB_OK;
}

static int del_many_fn(hydb_store *st, MDB_txn *txn, void *vctx)
{
	struct del_many_ctx *c = vctx;
	FORWARD_IF_ERROR(del_many_resolve(st, txn, c));
	FORWARD_IF_ERROR(hydb_index_remove_many(c->db->ix, txn, c->slots, c->found));
	for (size_t i = 0; i < c->found; i++)
		FORWARD_IF_ERROR(hydb_store_del(st, txn, c->found_pairs[i].id, NULL));
	return HYDB_OK;
}

int hydb_delete_batch(hydb_db *db, const char *const *keys, const uint64_t *ids, size_t n,
		      unsigned flags, size_t *deleted)
{
	struct del_many_ctx c = {db, keys, ids, n, flags, NULL, NULL, 0};
	int rc;
	if (deleted)
		*deleted = 0;
	RETURN_ERROR_IF(!db, HYDB_EINVAL, "hydb_delete_batch: database handle is NULL");
	RETURN_ERROR_IF(!keys == !ids && n, HYDB_EINVAL, "hydb_delete_batch: give keys or ids, not both");
	RETURN_ERROR_IF(flags & ~HYDB_DELETE_MISSING_OK, HYDB_EINVAL, "hydb_delete_batch: unknown flags %#x",
			flags);
	for (size_t i = 0; keys && i < n; i++)
		RETURN_ERROR_IF(!keys[i] || !*keys[i], HYDB_EINVAL, "hydb_delete_batch: key %zu is empty", i);
	if (n == 0)
		return HYDB_OK;
	c.found_pairs = hydb_alloc_array(n, sizeof *c.found_pairs, "records to delete");
	c.slots = hydb_alloc_array(n, sizeof *c.slots, "slots to delete");
	rc = c.found_pairs && c.slots ? hydb_store_write(db->st, del_many_fn, &c) : HYDB_ENOMEM;
	if (rc == 0 && deleted)
		*deleted = c.found;
	free(c.found_pairs);
	free(c.slots);
	return rc;
}

/* ---- reads -------------------------------------------------------------- */

int hydb_get_id(hydb_db *db, uint64_t id, hydb_entry **out)
{
	MDB_txn *txn;
	int rc;
	RETURN_ERROR_IF(!db || !out, HYDB_EINVAL, "hydb_get_id: NULL argument");
	FORWARD_IF_ERROR(hydb_store_read_begin(db->st, &txn));
	rc = hydb_store_get(db->st, txn, id, out);
	hydb_store_read_end(db->st, txn);
	return rc;
}

int hydb_get_key(hydb_db *db, const char *key, hydb_entry **out)
{
	MDB_txn *txn;
	uint64_t id;
	int rc;
	RETURN_ERROR_IF(!db || !out, HYDB_EINVAL, "hydb_get_key: NULL argument");
	RETURN_ERROR_IF(!key || !*key, HYDB_EINVAL, "hydb_get_key: key is empty");
	FORWARD_IF_ERROR(hydb_store_read_begin(db->st, &txn));
	rc = hydb_store_lookup_key(db->st, txn, key, &id);
	if (rc == 0)
		rc = hydb_store_get(db->st, txn, id, out);
	hydb_store_read_end(db->st, txn);
	return rc;
}

int hydb_count(hydb_db *db, uint64_t *out)
{
	MDB_txn *txn;
	int rc;
	RETURN_ERROR_IF(!db || !out, HYDB_EINVAL, "hydb_count: NULL argument");
	FORWARD_IF_ERROR(hydb_store_read_begin(db->st, &txn));
	rc = hydb_store_count(db->st, txn, out);
	hydb_store_read_end(db->st, txn);
	return rc;
}
