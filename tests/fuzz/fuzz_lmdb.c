/*
 * fuzz_lmdb.c - the structural check of LMDB data files
 * (storage/lmdb_verify.h), and the promise it makes: a file it accepts can
 * be read whole by LMDB without a crash.
 *
 * The input is the data file. When the check accepts it, LMDB opens it
 * read-only and every value of every table is read; the tables LMDB finds
 * must be the ones the check counted.
 */
#include "tests/fuzz/fuzz.h"

#include <lmdb.h>
#include <string.h>

#include "storage/lmdb_verify.h"

static volatile unsigned sink; /* keeps the reads */

/* Touch every byte of every key and value of one table. */
static void read_table(MDB_txn *txn, MDB_dbi dbi, unsigned *sum)
{
	MDB_cursor *cur;
	MDB_val k, v;
	if (mdb_cursor_open(txn, dbi, &cur))
		return;
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		for (size_t i = 0; i < k.mv_size; i++)
			*sum += ((const unsigned char *)k.mv_data)[i];
		for (size_t i = 0; i < v.mv_size; i++)
			*sum += ((const unsigned char *)v.mv_data)[i];
	}
	mdb_cursor_close(cur);
}

static void read_all(const char *file, const hydb_lmdb_verify_stats *st)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi main_dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	unsigned sum = 0;
	uint64_t tables = 0;

	if (mdb_env_create(&env))
		return;
	mdb_env_set_maxdbs(env, 64);
	if (mdb_env_open(env, file, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0600) ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) {
		mdb_env_close(env);
		return;
	}
	if (mdb_dbi_open(txn, NULL, 0, &main_dbi) == 0 && mdb_cursor_open(txn, main_dbi, &cur) == 0) {
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			char name[600];
			MDB_dbi dbi;
			if (k.mv_size >= sizeof name)
				continue;
			memcpy(name, k.mv_data, k.mv_size);
			name[k.mv_size] = '\0';
			/* a name with a NUL inside cannot be opened by name */
			if (strlen(name) != k.mv_size || mdb_dbi_open(txn, name, 0, &dbi))
				continue;
			tables++;
			read_table(txn, dbi, &sum);
		}
		mdb_cursor_close(cur);
		/* LMDB finds no table the check did not walk */
		FUZZ_CHECK(tables <= st->tables);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	sink += sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hydb_lmdb_verify_stats st;
	const char *file;
	if (hydb_lmdb_verify_bytes(&st, "fuzz", data, size) != 0)
		return 0;
	file = hydb_fuzz_file(data, size, ".mdb");
	if (file) {
		FUZZ_CHECK(st.branch_pages + st.leaf_pages + st.overflow_pages + st.free_pages + 2 <=
			   st.last_pg + 1);
		read_all(file, &st);
	}
	return 0;
}
