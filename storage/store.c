/*
 * store.c - the LMDB environment of a database directory: opening and
 * validating it, transactions with automatic map growth, and the record,
 * key, vector-block, radius and free-slot tables (layout in store.h).
 */
#include "storage/store.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "storage/keys.h"
#include "storage/record.h"

#define HYDB_INITIAL_MAP ((size_t)256 << 20)
#define HYDB_MAX_READERS 510

struct hydb_store {
	MDB_env *env;
	MDB_dbi dbi[HYDB_DBI_COUNT];
	size_t dim;
	double curvature;
	int readonly;
	size_t block_bytes;
	size_t mapsize;
	/* Shared by every transaction of this process, exclusive for map
	 * growth: LMDB forbids mdb_env_set_mapsize under an open txn. */
	pthread_rwlock_t growlock;
	/* Bumped under growlock whenever the map may have moved, so that
	 * pointers cached from an older mapping can be told apart. */
	uint64_t mapgen;
	dev_t dev;
	ino_t ino;
	hydb_lmdb_verify_stats verified; /* the data file as opened */
	char path[PATH_MAX];
};

static const char *const dbi_names[HYDB_DBI_COUNT] = {
	"meta", "records", "keys", "blocks", "radius",
	"hnsw_nodes", "hnsw_meta", "free",
};

/* ---- process-wide registry: LMDB must not open one env twice --------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static hydb_store *registry[64];

static int registry_add(hydb_store *st)
{
	int rc = HYDB_EBUSY;
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < 64; i++)
		if (registry[i] && registry[i]->dev == st->dev && registry[i]->ino == st->ino) {
			rc = hydb_error_set(HYDB_EBUSY,
					    "%s: database is already open in this process; share that handle "
					    "(it is thread-safe)", st->path);
			goto out;
		}
	for (size_t i = 0; i < 64; i++)
		if (!registry[i]) {
			registry[i] = st;
			rc = HYDB_OK;
			break;
		}
	/* Only a failure sets the message: hydb_last_error() after a good
	 * open must not read "too many databases open". */
	if (rc == HYDB_EBUSY)
		rc = hydb_error_set(HYDB_EBUSY, "%s: too many databases open in this process", st->path);
out:
	pthread_mutex_unlock(&registry_lock);
	return rc;
}

static void registry_del(hydb_store *st)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < 64; i++)
		if (registry[i] == st)
			registry[i] = NULL;
	pthread_mutex_unlock(&registry_lock);
}

/* ---- errors ------------------------------------------------------------ */

int hydb_store_mdb_error(int rc, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS:
		return HYDB_OK;
	case MDB_MAP_FULL:
		hydb_error_set(HYDB_ENOSPC, "%s: database map full", what);
		return HYDB_EMAPFULL_INTERNAL;
	case MDB_NOTFOUND:
		return hydb_error_set(HYDB_ENOTFOUND, "%s: not found", what);
	case MDB_READERS_FULL:
		return hydb_error_set(HYDB_EBUSY, "%s: too many concurrent readers (limit %d)",
				      what, HYDB_MAX_READERS);
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return hydb_error_set(HYDB_ECORRUPT, "%s: %s", what, mdb_strerror(rc));
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return hydb_error_set(HYDB_ENOSPC, "%s: no space left on device", what);
	case EACCES:
	case EROFS:
	case EPERM:
		return hydb_error_set(HYDB_EREADONLY, "%s: %s", what, strerror(rc));
	case ENOENT:
		return hydb_error_set(HYDB_ENOTFOUND, "%s: %s", what, strerror(rc));
	case ENOMEM:
		return hydb_error_set(HYDB_ENOMEM, "%s: out of memory", what);
	default:
		return hydb_error_set(HYDB_EIO, "%s: %s", what, mdb_strerror(rc));
	}
}

/* ---- transactions ------------------------------------------------------ */

static int grow_map(hydb_store *st)
{
	size_t want;
	int rc;
	pthread_rwlock_wrlock(&st->growlock);
	want = st->mapsize * 2;
	rc = mdb_env_set_mapsize(st->env, want);
	__atomic_add_fetch(&st->mapgen, 1, __ATOMIC_RELEASE);
	if (rc == 0)
		st->mapsize = want;
	pthread_rwlock_unlock(&st->growlock);
	return rc ? hydb_store_mdb_error(rc, st->path) : HYDB_OK;
}

/* Another process grew the map: adopt its size. */
static int adopt_map(hydb_store *st)
{
	MDB_envinfo info;
	int rc;
	pthread_rwlock_wrlock(&st->growlock);
	rc = mdb_env_set_mapsize(st->env, 0);
	__atomic_add_fetch(&st->mapgen, 1, __ATOMIC_RELEASE);
	if (rc == 0 && mdb_env_info(st->env, &info) == 0)
		st->mapsize = info.me_mapsize;
	pthread_rwlock_unlock(&st->growlock);
	return rc ? hydb_store_mdb_error(rc, st->path) : HYDB_OK;
}

static int txn_begin(hydb_store *st, unsigned flags, MDB_txn **txn)
{
	for (int tries = 0;; tries++) {
		int rc;
		pthread_rwlock_rdlock(&st->growlock);
		rc = mdb_txn_begin(st->env, NULL, flags, txn);
		if (rc == 0)
			return HYDB_OK;
		pthread_rwlock_unlock(&st->growlock);
		if (rc == MDB_MAP_RESIZED && tries < 3) {
			FORWARD_IF_ERROR(adopt_map(st));
			continue;
		}
		return hydb_store_mdb_error(rc, st->path);
	}
}

int hydb_store_read_begin(hydb_store *st, MDB_txn **txn)
{
	return txn_begin(st, MDB_RDONLY, txn);
}

void hydb_store_read_end(hydb_store *st, MDB_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&st->growlock);
}

/* LMDB reports a short write as EIO; tell a full disk or a file-size limit
 * apart from a real I/O error so the user knows what to do. */
static int out_of_space(hydb_store *st)
{
	struct statvfs vs;
	struct rlimit rl;
	struct stat sb;
	char datafile[PATH_MAX + 16];
	/* a commit writes at least a few pages beyond the current end */
	unsigned long long need = 4ull << 20;

	snprintf(datafile, sizeof datafile, "%s/data.mdb", st->path);
	if (statvfs(st->path, &vs) == 0 && (unsigned long long)vs.f_bavail * vs.f_frsize < need)
		return 1;
	if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && stat(datafile, &sb) == 0 &&
	    (unsigned long long)sb.st_size + need > (unsigned long long)rl.rlim_cur)
		return 1;
	return 0;
}

int hydb_store_write(hydb_store *st, hydb_write_fn fn, void *ctx)
{
	RETURN_ERROR_IF(st->readonly, HYDB_EREADONLY,
			"%s: database is open read-only", st->path);
	for (;;) {
		MDB_txn *txn;
		int rc;
		FORWARD_IF_ERROR(txn_begin(st, 0, &txn));
		rc = fn(st, txn, ctx);
		if (rc == 0) {
			rc = mdb_txn_commit(txn);
			if (rc == EIO && out_of_space(st))
				rc = hydb_error_set(HYDB_ENOSPC,
						    "%s: no space left for the commit (disk full or file size limit); "
						    "nothing of this batch was written", st->path);
			else if (rc)
				rc = hydb_store_mdb_error(rc, st->path);
		} else {
			mdb_txn_abort(txn);
		}
		pthread_rwlock_unlock(&st->growlock);
		if (rc != HYDB_EMAPFULL_INTERNAL)
			return rc;
		/* Nothing of the batch was written: grow, then redo it whole. */
		FORWARD_IF_ERROR(grow_map(st));
	}
}

/* ---- metadata ----------------------------------------------------------- */

int hydb_store_meta_get(hydb_store *st, MDB_txn *txn, const char *name,
			char *buf, size_t bufsize)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_get(txn, st->dbi[HYDB_DBI_META], &k, &v);
	if (rc == MDB_NOTFOUND)
		return HYDB_ENOTFOUND;
	if (rc)
		return hydb_store_mdb_error(rc, name);
	RETURN_ERROR_IF(v.mv_size >= bufsize, HYDB_ECORRUPT,
			"%s: metadata '%s' too long (%zu bytes)", st->path, name, v.mv_size);
	memcpy(buf, v.mv_data, v.mv_size);
	buf[v.mv_size] = '\0';
	return HYDB_OK;
}

int hydb_store_meta_put(hydb_store *st, MDB_txn *txn, const char *name,
			const char *value)
{
	MDB_val k = {strlen(name), (void *)name}, v = {strlen(value), (void *)value};
	return hydb_store_mdb_error(mdb_put(txn, st->dbi[HYDB_DBI_META], &k, &v, 0), name);
}

static int meta_get_u64(hydb_store *st, MDB_txn *txn, const char *name, uint64_t *out)
{
	char buf[32], *end;
	int rc = hydb_store_meta_get(st, txn, name, buf, sizeof buf);
	if (rc == HYDB_ENOTFOUND) {
		*out = 0;
		return HYDB_OK;
	}
	FORWARD_IF_ERROR(rc);
	errno = 0;
	*out = strtoull(buf, &end, 10);
	RETURN_ERROR_IF(errno || *end || end == buf, HYDB_ECORRUPT,
			"%s: metadata '%s' is not a number", st->path, name);
	return HYDB_OK;
}

static int meta_put_u64(hydb_store *st, MDB_txn *txn, const char *name, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
	return hydb_store_meta_put(st, txn, name, buf);
}

/* ---- open / create ------------------------------------------------------ */

struct create_ctx {
	const hydb_open_options *opts;
};

static int write_header(hydb_store *st, MDB_txn *txn, void *vctx)
{
	char buf[64];
	snprintf(buf, sizeof buf, "%d", HYDB_FORMAT_VERSION);
	FORWARD_IF_ERROR(hydb_store_meta_put(st, txn, "format_version", buf));
	FORWARD_IF_ERROR(meta_put_u64(st, txn, "dim", st->dim));
	snprintf(buf, sizeof buf, "%.17g", st->curvature);
	FORWARD_IF_ERROR(hydb_store_meta_put(st, txn, "curvature", buf));
	FORWARD_IF_ERROR(hydb_store_meta_put(st, txn, "created_by", "hydb " HYDB_VERSION_STRING));
	return HYDB_OK;
}

static int open_dbis(hydb_store *st, int create)
{
	MDB_txn *txn;
	int rc;
	rc = mdb_txn_begin(st->env, NULL, create ? 0 : MDB_RDONLY, &txn);
	if (rc)
		return hydb_store_mdb_error(rc, st->path);
	for (int i = 0; i < HYDB_DBI_COUNT; i++) {
		rc = mdb_dbi_open(txn, dbi_names[i], create ? MDB_CREATE : 0, &st->dbi[i]);
		if (rc) {
			mdb_txn_abort(txn);
			if (rc == MDB_NOTFOUND)
				return hydb_error_set(HYDB_ECORRUPT,
						      "%s: table '%s' is missing (not a hydb database?)",
						      st->path, dbi_names[i]);
			return hydb_store_mdb_error(rc, st->path);
		}
	}
	/* Commit even a read-only txn: aborting it would close the handles. */
	rc = mdb_txn_commit(txn);
	return rc ? hydb_store_mdb_error(rc, st->path) : HYDB_OK;
}

static int read_header(hydb_store *st)
{
	MDB_txn *txn;
	char buf[64], *end;
	uint64_t dim;
	long fmt;
	int rc;

	FORWARD_IF_ERROR(hydb_store_read_begin(st, &txn));
	rc = hydb_store_meta_get(st, txn, "format_version", buf, sizeof buf);
	if (rc == HYDB_ENOTFOUND)
		rc = hydb_error_set(HYDB_ECORRUPT, "%s: no format version (not a hydb database?)", st->path);
	if (rc == 0) {
		fmt = strtol(buf, &end, 10);
		if (*end || fmt < 1)
			rc = hydb_error_set(HYDB_ECORRUPT, "%s: bad format version '%s'", st->path, buf);
		else if (fmt > HYDB_FORMAT_VERSION)
			rc = hydb_error_set(HYDB_EVERSION,
					    "%s: made by format version %ld; this hydb reads up to %d (upgrade hydb)",
					    st->path, fmt, HYDB_FORMAT_VERSION);
	}
	if (rc == 0)
		rc = meta_get_u64(st, txn, "dim", &dim);
	if (rc == 0 && (dim == 0 || dim > HYDB_MAX_DIM))
		rc = hydb_error_set(HYDB_ECORRUPT, "%s: bad dimension %llu", st->path,
				    (unsigned long long)dim);
	if (rc == 0)
		rc = hydb_store_meta_get(st, txn, "curvature", buf, sizeof buf);
	if (rc == 0) {
		st->curvature = strtod(buf, &end);
		if (*end || !(st->curvature > 0) || !isfinite(st->curvature))
			rc = hydb_error_set(HYDB_ECORRUPT, "%s: bad curvature '%s'", st->path, buf);
	}
	hydb_store_read_end(st, txn);
	if (rc == 0)
		st->dim = (size_t)dim;
	return rc;
}

/* A block must be bigger than LMDB's largest in-page value so that it is
 * stored on its own overflow pages: only there is a value aligned (16 bytes
 * from a page start); inside a leaf page LMDB aligns values to 2 bytes. */
static size_t block_bytes_for(size_t dim, size_t psize)
{
	size_t b = HYDB_BLOCK_VEC_OFFSET + (size_t)HYDB_BLOCK_SLOTS * dim * sizeof(float);
	return b > psize ? b : psize + 64;
}

static int env_setup(hydb_store *st, unsigned flags, size_t initial_map)
{
	struct stat sb;
	char datafile[PATH_MAX + 16];
	int rc;
	size_t map = initial_map ? initial_map : HYDB_INITIAL_MAP;

	snprintf(datafile, sizeof datafile, "%s/data.mdb", st->path);
	if (stat(datafile, &sb) == 0) {
		/* LMDB trusts its file; damage must be an error, not a crash */
		FORWARD_IF_ERROR(hydb_lmdb_verify(&st->verified, st->path, datafile));
		/* Start at twice the file so that a big database does not grow
		 * in many small steps. */
		while (map < (size_t)sb.st_size * 2)
			map *= 2;
	}
	st->mapsize = map;
	rc = mdb_env_create(&st->env);
	if (!rc) rc = mdb_env_set_maxdbs(st->env, HYDB_DBI_COUNT + 2);
	if (!rc) rc = mdb_env_set_maxreaders(st->env, HYDB_MAX_READERS);
	if (!rc) rc = mdb_env_set_mapsize(st->env, map);
	if (!rc) rc = mdb_env_open(st->env, st->path, flags, 0600);
	if (rc == EACCES && (flags & MDB_RDONLY) && !(flags & MDB_NOLOCK)) {
		/* Read-only media: the lock file cannot be written. Without
		 * it readers are safe only while no process writes. */
		mdb_env_close(st->env);
		st->env = NULL;
		return env_setup(st, flags | MDB_NOLOCK, initial_map);
	}
	if (rc) {
		int code;
		if (rc == EINVAL || rc == MDB_INVALID)
			code = hydb_error_set(HYDB_ECORRUPT, "%s: data file is not a valid database (%s)",
					      st->path, mdb_strerror(rc));
		else
			code = hydb_store_mdb_error(rc, st->path);
		return code;
	}
	if (stat(datafile, &sb) == 0) {
		st->dev = sb.st_dev;
		st->ino = sb.st_ino;
	}
	{
		MDB_envinfo info;
		if (mdb_env_info(st->env, &info) == 0)
			st->mapsize = info.me_mapsize;
	}
	return HYDB_OK;
}

static int check_dir(const char *path, int create, int *exists)
{
	struct stat sb;
	char datafile[PATH_MAX + 16];
	*exists = 0;
	if (stat(path, &sb) == 0) {
		RETURN_ERROR_IF(!S_ISDIR(sb.st_mode), HYDB_EINVAL,
				"%s: not a directory (a database is a directory)", path);
		snprintf(datafile, sizeof datafile, "%s/data.mdb", path);
		if (stat(datafile, &sb) == 0) {
			RETURN_ERROR_IF(sb.st_size == 0, HYDB_ECORRUPT,
					"%s: data file is empty (truncated database)", path);
			*exists = 1;
		}
		return HYDB_OK;
	}
	RETURN_ERROR_IF(errno != ENOENT, HYDB_EIO, "%s: %s", path, strerror(errno));
	RETURN_ERROR_IF(!create, HYDB_ENOTFOUND,
			"%s: no database here (create one with 'hydb init')", path);
	/* Private by default: the store holds moderation labels. */
	RETURN_ERROR_IF(mkdir(path, 0700) != 0, errno == EACCES ? HYDB_EREADONLY : HYDB_EIO,
			"%s: cannot create directory: %s", path, strerror(errno));
	return HYDB_OK;
}

static int check_open_options(const char *path, const hydb_open_options *opts)
{
	RETURN_ERROR_IF(!path || !*path, HYDB_EINVAL, "database path is empty");
	RETURN_ERROR_IF(strlen(path) >= PATH_MAX - 32, HYDB_EINVAL, "database path too long");
	RETURN_ERROR_IF(opts->version < 1 || opts->version > HYDB_OPEN_OPTIONS_VERSION, HYDB_EINVAL,
			"%s: unknown open-options version %u", path, opts->version);
	RETURN_ERROR_IF(opts->version >= 2 && opts->initial_map &&
			opts->initial_map < HYDB_MIN_INITIAL_MAP, HYDB_EINVAL,
			"%s: initial map must be 0 or at least %d bytes, got %zu", path,
			HYDB_MIN_INITIAL_MAP, opts->initial_map);
	if (!(opts->flags & HYDB_OPEN_CREATE))
		return HYDB_OK;
	RETURN_ERROR_IF(opts->dim == 0 || opts->dim > HYDB_MAX_DIM, HYDB_EINVAL,
			"%s: dimension must be 1..%d, got %zu", path, HYDB_MAX_DIM, opts->dim);
	RETURN_ERROR_IF(!(opts->curvature > 0) || !isfinite(opts->curvature), HYDB_EINVAL,
			"%s: curvature must be a positive finite number", path);
	RETURN_ERROR_IF(opts->flags & HYDB_OPEN_RDONLY, HYDB_EINVAL,
			"%s: cannot create a database read-only", path);
	return HYDB_OK;
}

/* Writer-preferring: with the default reader preference, threads that
 * search back to back keep the lock shared forever and a write that must
 * grow the map never gets it. No hydb call holds a transaction while it
 * opens another, so no thread re-enters the read side while growth waits. */
static void growlock_init(pthread_rwlock_t *l)
{
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(l, &ra);
	pthread_rwlockattr_destroy(&ra);
}

/* The tables, the header (written when the database is new, then read and
 * compared with what a create asked for) and the block size the page size
 * gives. The environment is open and registered. */
static int open_contents(hydb_store *st, const hydb_open_options *opts, int exists)
{
	MDB_stat ms;
	int rc = open_dbis(st, !exists);
	if (rc == 0 && !exists) {
		st->dim = opts->dim;
		st->curvature = opts->curvature;
		rc = hydb_store_write(st, write_header, NULL);
	}
	if (rc == 0)
		rc = read_header(st);
	FORWARD_IF_ERROR(rc);
	RETURN_ERROR_IF(exists && (opts->flags & HYDB_OPEN_CREATE) &&
			(st->dim != opts->dim || st->curvature != opts->curvature),
			HYDB_EMISMATCH,
			"%s: database exists with dim %zu and curvature %g (asked for %zu, %g)",
			st->path, st->dim, st->curvature, opts->dim, opts->curvature);
	rc = mdb_env_stat(st->env, &ms);
	if (rc)
		return hydb_store_mdb_error(rc, st->path);
	st->block_bytes = block_bytes_for(st->dim, ms.ms_psize);
	return HYDB_OK;
}

int hydb_store_open(hydb_store **out, const char *path,
		    const hydb_open_options *opts)
{
	hydb_open_options def;
	hydb_store *st;
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
	int exists, rc;

	if (!opts) {
		hydb_open_options_init(&def);
		opts = &def;
	}
	FORWARD_IF_ERROR(check_open_options(path, opts));
	FORWARD_IF_ERROR(check_dir(path, !!(opts->flags & HYDB_OPEN_CREATE), &exists));
	RETURN_ERROR_IF(!exists && !(opts->flags & HYDB_OPEN_CREATE), HYDB_ENOTFOUND,
			"%s: no database here (create one with 'hydb init')", path);

	st = calloc(1, sizeof *st);
	RETURN_ERROR_IF(!st, HYDB_ENOMEM, "%s: out of memory", path);
	growlock_init(&st->growlock);
	snprintf(st->path, sizeof st->path, "%s", path);
	st->readonly = !!(opts->flags & HYDB_OPEN_RDONLY);
	if (st->readonly)
		flags |= MDB_RDONLY;
	if (opts->flags & HYDB_OPEN_NOSYNC)
		flags |= MDB_NOSYNC;
	if (!st->readonly && access(path, W_OK) != 0) {
		rc = hydb_error_set(HYDB_EREADONLY,
				    "%s: database is not writable (%s); open it read-only to query",
				    path, strerror(errno));
		goto fail;
	}
	rc = env_setup(st, flags, opts->version >= 2 ? opts->initial_map : 0);
	if (rc == 0)
		rc = registry_add(st);
	if (rc < 0)
		goto fail_env;
	rc = open_contents(st, opts, exists);
	if (rc < 0)
		goto fail_reg;
	*out = st;
	return HYDB_OK;

fail_reg:
	registry_del(st);
fail_env:
	if (st->env)
		mdb_env_close(st->env);
fail:
	pthread_rwlock_destroy(&st->growlock);
	free(st);
	return rc;
}

void hydb_store_close(hydb_store *st)
{
	if (!st)
		return;
	registry_del(st);
	mdb_env_close(st->env);
	pthread_rwlock_destroy(&st->growlock);
	free(st);
}

size_t hydb_store_dim(const hydb_store *st) { return st->dim; }
double hydb_store_curvature(const hydb_store *st) { return st->curvature; }
int hydb_store_readonly(const hydb_store *st) { return st->readonly; }
MDB_env *hydb_store_env(hydb_store *st) { return st->env; }

uint64_t hydb_store_map_generation(const hydb_store *st)
{
	return __atomic_load_n(&st->mapgen, __ATOMIC_ACQUIRE);
}
MDB_dbi hydb_store_dbi(const hydb_store *st, enum hydb_dbi_id which) { return st->dbi[which]; }
const hydb_lmdb_verify_stats *hydb_store_verified(const hydb_store *st) { return &st->verified; }

/* ---- vector blocks ------------------------------------------------------ */

static void block_view(hydb_block *out, const void *data, size_t dim)
{
	const char *p = data;
	out->hdr = (const hydb_block_hdr *)p;
	out->attr = (const hydb_slot_attr *)(p + sizeof(hydb_block_hdr));
	out->vec = (const float *)(p + HYDB_BLOCK_VEC_OFFSET);
	(void)dim;
}

int hydb_store_block_get(hydb_store *st, MDB_txn *txn, uint32_t block_no,
			 hydb_block *out)
{
	unsigned char kb[4];
	MDB_val k = {4, kb}, v;
	int rc;
	put_be32(kb, block_no);
	rc = mdb_get(txn, st->dbi[HYDB_DBI_BLOCKS], &k, &v);
	if (rc == MDB_NOTFOUND)
		return HYDB_ENOTFOUND;
	if (rc)
		return hydb_store_mdb_error(rc, "vector block");
	block_view(out, v.mv_data, st->dim);
	RETURN_ERROR_IF(v.mv_size != st->block_bytes || out->hdr->magic != HYDB_BLOCK_MAGIC ||
			out->hdr->dim != st->dim || out->hdr->block_no != block_no,
			HYDB_ECORRUPT, "%s: vector block %u is corrupt", st->path, block_no);
	return HYDB_OK;
}

int hydb_store_block_count(hydb_store *st, MDB_txn *txn, uint32_t *out)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, st->dbi[HYDB_DBI_BLOCKS], &c);
	if (rc)
		return hydb_store_mdb_error(rc, "vector blocks");
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND) {
		*out = 0;
		return HYDB_OK;
	}
	if (rc)
		return hydb_store_mdb_error(rc, "vector blocks");
	RETURN_ERROR_IF(k.mv_size != 4, HYDB_ECORRUPT, "%s: bad block key", st->path);
	*out = get_be32(k.mv_data) + 1;
	return HYDB_OK;
}

int hydb_store_each_block(hydb_store *st, MDB_txn *txn, hydb_block_fn fn, void *ctx)
{
	uint32_t nb;
	FORWARD_IF_ERROR(hydb_store_block_count(st, txn, &nb));
	for (uint32_t b = 0; b < nb; b++) {
		hydb_block blk;
		int rc = hydb_store_block_get(st, txn, b, &blk);
		if (rc == HYDB_ENOTFOUND)
			continue;
		rc = fn(b, rc == 0 ? &blk : NULL, ctx);
		if (rc)
			return rc;
	}
	return HYDB_OK;
}

int hydb_store_slot(hydb_store *st, MDB_txn *txn, uint32_t slot,
		    const float **vec, const hydb_slot_attr **attr)
{
	hydb_block b;
	uint32_t i = slot % HYDB_BLOCK_SLOTS;
	assert(st->dim > 0 && st->block_bytes > 0);
	FORWARD_IF_ERROR(hydb_store_block_get(st, txn, slot / HYDB_BLOCK_SLOTS, &b));
	if (vec)
		*vec = b.vec + (size_t)i * st->dim;
	if (attr)
		*attr = &b.attr[i];
	return HYDB_OK;
}

/* Rewrite one slot of a block (creating the block if needed). LMDB gives
 * fresh overflow pages for the new value, so the old content is copied
 * through a bounce buffer first. */
static int block_write_slot(hydb_store *st, MDB_txn *txn, uint32_t slot,
			    const float *vec, const hydb_slot_attr *attr)
{
	unsigned char kb[4];
	MDB_val k = {4, kb}, v;
	uint32_t bno = slot / HYDB_BLOCK_SLOTS, i = slot % HYDB_BLOCK_SLOTS;
	char *tmp = malloc(st->block_bytes);
	hydb_block_hdr *h;
	hydb_slot_attr *a;
	int rc;

	RETURN_ERROR_IF(!tmp, HYDB_ENOMEM, "vector block: out of memory");
	put_be32(kb, bno);
	rc = mdb_get(txn, st->dbi[HYDB_DBI_BLOCKS], &k, &v);
	if (rc == 0 && v.mv_size == st->block_bytes) {
		memcpy(tmp, v.mv_data, st->block_bytes);
	} else if (rc == MDB_NOTFOUND) {
		memset(tmp, 0, st->block_bytes);
		h = (hydb_block_hdr *)tmp;
		h->magic = HYDB_BLOCK_MAGIC;
		h->dim = (uint32_t)st->dim;
		h->block_no = bno;
	} else {
		free(tmp);
		return rc ? hydb_store_mdb_error(rc, "vector block")
			  : hydb_error_set(HYDB_ECORRUPT, "%s: vector block %u has a bad size", st->path, bno);
	}
	h = (hydb_block_hdr *)tmp;
	a = (hydb_slot_attr *)(tmp + sizeof *h);
	if (a[i].live && !attr->live)
		h->n_live--;
	else if (!a[i].live && attr->live)
		h->n_live++;
	a[i] = *attr;
	if (vec)
		memcpy(tmp + HYDB_BLOCK_VEC_OFFSET + (size_t)i * st->dim * sizeof(float), vec,
		       st->dim * sizeof(float));
	else
		memset(tmp + HYDB_BLOCK_VEC_OFFSET + (size_t)i * st->dim * sizeof(float), 0,
		       st->dim * sizeof(float));
	v.mv_size = st->block_bytes;
	rc = mdb_put(txn, st->dbi[HYDB_DBI_BLOCKS], &k, &v, MDB_RESERVE);
	if (rc == 0)
		memcpy(v.mv_data, tmp, st->block_bytes);
	free(tmp);
	return hydb_store_mdb_error(rc, "vector block");
}

/* ---- slots -------------------------------------------------------------- */

static int slot_alloc(hydb_store *st, MDB_txn *txn, uint32_t *out)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t next;
	int rc = mdb_cursor_open(txn, st->dbi[HYDB_DBI_FREE], &c);
	if (rc)
		return hydb_store_mdb_error(rc, "free slots");
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	if (rc == 0) {
		if (k.mv_size != 4) {
			mdb_cursor_close(c);
			return hydb_error_set(HYDB_ECORRUPT, "%s: bad free-slot key", st->path);
		}
		*out = get_be32(k.mv_data);
		rc = mdb_cursor_del(c, 0);
		mdb_cursor_close(c);
		return hydb_store_mdb_error(rc, "free slots");
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return hydb_store_mdb_error(rc, "free slots");
	FORWARD_IF_ERROR(meta_get_u64(st, txn, "next_slot", &next));
	RETURN_ERROR_IF(next >= HYDB_NO_SLOT, HYDB_ENOSPC, "%s: slot numbers exhausted", st->path);
	*out = (uint32_t)next;
	return meta_put_u64(st, txn, "next_slot", next + 1);
}

static int slot_free(hydb_store *st, MDB_txn *txn, uint32_t slot)
{
	unsigned char kb[4];
	MDB_val k = {4, kb}, v = {0, ""};
	put_be32(kb, slot);
	return hydb_store_mdb_error(mdb_put(txn, st->dbi[HYDB_DBI_FREE], &k, &v, 0), "free slots");
}

/* ---- radius index ------------------------------------------------------- */

static int radius_key_op(hydb_store *st, MDB_txn *txn, float radius, uint32_t slot, int del)
{
	unsigned char kb[8];
	MDB_val k = {8, kb}, v = {0, ""};
	int rc;
	put_be32(kb, radius_bits(radius));
	put_be32(kb + 4, slot);
	rc = del ? mdb_del(txn, st->dbi[HYDB_DBI_RADIUS], &k, NULL)
		 : mdb_put(txn, st->dbi[HYDB_DBI_RADIUS], &k, &v, 0);
	if (del && rc == MDB_NOTFOUND)
		return hydb_error_set(HYDB_ECORRUPT, "%s: radius index misses slot %u", st->path, slot);
	return hydb_store_mdb_error(rc, "radius index");
}

int hydb_store_radius_scan(hydb_store *st, MDB_txn *txn, double lo, double hi,
			   hydb_slot_fn fn, void *ctx)
{
	unsigned char kb[8];
	MDB_cursor *c;
	MDB_val k = {8, kb}, v;
	uint32_t hib = radius_bits(hi);
	int rc;

	if (isinf(hi))
		hib = UINT32_MAX;
	if (hi < lo)
		return HYDB_OK;
	put_be32(kb, radius_bits(lo));
	put_be32(kb + 4, 0);
	rc = mdb_cursor_open(txn, st->dbi[HYDB_DBI_RADIUS], &c);
	if (rc)
		return hydb_store_mdb_error(rc, "radius index");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		int frc;
		if (k.mv_size != 8) {
			mdb_cursor_close(c);
			return hydb_error_set(HYDB_ECORRUPT, "%s: bad radius key", st->path);
		}
		if (get_be32(k.mv_data) > hib)
			break;
		frc = fn(get_be32((const unsigned char *)k.mv_data + 4), ctx);
		if (frc) {
			mdb_cursor_close(c);
			return frc > 0 ? HYDB_OK : frc;
		}
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? HYDB_OK : hydb_store_mdb_error(rc, "radius index");
}

struct count_ctx {
	uint64_t n, limit;
};

static int count_one(uint32_t slot, void *vctx)
{
	struct count_ctx *c = vctx;
	(void)slot;
	return ++c->n >= c->limit ? 1 : 0;
}

int hydb_store_radius_count(hydb_store *st, MDB_txn *txn, double lo, double hi,
			    uint64_t limit, uint64_t *out)
{
	struct count_ctx c = {0, limit ? limit : UINT64_MAX};
	FORWARD_IF_ERROR(hydb_store_radius_scan(st, txn, lo, hi, count_one, &c));
	*out = c.n;
	return HYDB_OK;
}

/* ---- keys --------------------------------------------------------------- */

int hydb_store_lookup_key(hydb_store *st, MDB_txn *txn, const char *key, uint64_t *id_out)
{
	unsigned char kb[HYDB_KEY_DIRECT_MAX + 32];
	size_t len = strlen(key);
	MDB_val k, v;
	int rc;
	RETURN_ERROR_IF(len == 0 || len > HYDB_MAX_KEY, HYDB_EINVAL,
			"key of %zu bytes: keys must be 1..%d bytes", len, HYDB_MAX_KEY);
	k.mv_size = key_bytes(kb, key, len);
	k.mv_data = kb;
	rc = mdb_get(txn, st->dbi[HYDB_DBI_KEYS], &k, &v);
	if (rc == MDB_NOTFOUND)
		return hydb_error_set(HYDB_ENOTFOUND, "key '%.200s' not found", key);
	if (rc)
		return hydb_store_mdb_error(rc, "key table");
	RETURN_ERROR_IF(v.mv_size != 8, HYDB_ECORRUPT, "%s: key table entry for '%.200s' is corrupt",
			st->path, key);
	*id_out = get_be64(v.mv_data);
	return HYDB_OK;
}

static int key_put(hydb_store *st, MDB_txn *txn, const char *key, uint64_t id, int del)
{
	unsigned char kb[HYDB_KEY_DIRECT_MAX + 32], vb[8];
	size_t len = strlen(key);
	MDB_val k = {key_bytes(kb, key, len), kb}, v = {8, vb};
	int rc;
	put_be64(vb, id);
	rc = del ? mdb_del(txn, st->dbi[HYDB_DBI_KEYS], &k, NULL)
		 : mdb_put(txn, st->dbi[HYDB_DBI_KEYS], &k, &v, 0);
	if (del && rc == MDB_NOTFOUND)
		return HYDB_OK;
	return hydb_store_mdb_error(rc, "key table");
}

/* ---- records ------------------------------------------------------------ */

static int rec_get_raw(hydb_store *st, MDB_txn *txn, uint64_t id, MDB_val *v)
{
	unsigned char kb[8];
	MDB_val k = {8, kb};
	int rc;
	put_be64(kb, id);
	rc = mdb_get(txn, st->dbi[HYDB_DBI_RECORDS], &k, v);
	if (rc == MDB_NOTFOUND)
		return hydb_error_set(HYDB_ENOTFOUND, "record %llu not found", (unsigned long long)id);
	return hydb_store_mdb_error(rc, "record table");
}

int hydb_store_record_slot(hydb_store *st, MDB_txn *txn, uint64_t id, uint32_t *slot_out)
{
	MDB_val v;
	hydb_rec_hdr h;
	FORWARD_IF_ERROR(rec_get_raw(st, txn, id, &v));
	FORWARD_IF_ERROR(hydb_rec_verify(v.mv_data, v.mv_size, id));
	hydb_rec_header(&h, v.mv_data);
	*slot_out = h.slot;
	return HYDB_OK;
}

int hydb_store_del(hydb_store *st, MDB_txn *txn, uint64_t id, uint32_t *slot_out)
{
	unsigned char kb[8];
	MDB_val k = {8, kb}, v;
	hydb_rec_hdr h;
	hydb_slot_attr free_attr = {0};
	hydb_entry *e;
	uint64_t count;

	FORWARD_IF_ERROR(rec_get_raw(st, txn, id, &v));
	FORWARD_IF_ERROR(hydb_rec_decode(&e, v.mv_data, v.mv_size, id));
	hydb_rec_header(&h, v.mv_data);
	{
		int rc = key_put(st, txn, e->key, id, 1);
		hydb_entry_free(e);
		FORWARD_IF_ERROR(rc);
	}
	put_be64(kb, id);
	FORWARD_IF_ERROR(hydb_store_mdb_error(mdb_del(txn, st->dbi[HYDB_DBI_RECORDS], &k, NULL),
					      "record table"));
	FORWARD_IF_ERROR(radius_key_op(st, txn, h.radius, h.slot, 1));
	FORWARD_IF_ERROR(block_write_slot(st, txn, h.slot, NULL, &free_attr));
	FORWARD_IF_ERROR(slot_free(st, txn, h.slot));
	FORWARD_IF_ERROR(meta_get_u64(st, txn, "count", &count));
	FORWARD_IF_ERROR(meta_put_u64(st, txn, "count", count ? count - 1 : 0));
	if (slot_out)
		*slot_out = h.slot;
	return HYDB_OK;
}

int hydb_store_put(hydb_store *st, MDB_txn *txn, const hydb_record *rec,
		   float radius, uint64_t *id_out, uint32_t *slot_out, int *replaced)
{
	unsigned char kb[8];
	MDB_val k = {8, kb}, v;
	hydb_slot_attr attr = {0};
	uint64_t id, count;
	uint32_t slot = HYDB_NO_SLOT;
	void *buf;
	size_t len;
	int rc;

	*replaced = 0;
	rc = hydb_store_lookup_key(st, txn, rec->key, &id);
	if (rc == 0) {
		/* Upsert: drop the old record but keep its id, so that links
		 * to it (items, the caller's own tables) stay valid. */
		FORWARD_IF_ERROR(hydb_store_del(st, txn, id, NULL));
		*replaced = 1;
	} else if (rc != HYDB_ENOTFOUND) {
		return rc;
	} else {
		FORWARD_IF_ERROR(meta_get_u64(st, txn, "next_id", &id));
		id = id ? id : 1;
		FORWARD_IF_ERROR(meta_put_u64(st, txn, "next_id", id + 1));
	}
	FORWARD_IF_ERROR(slot_alloc(st, txn, &slot));
	FORWARD_IF_ERROR(hydb_rec_encode(&buf, &len, rec, id, slot, radius, st->dim));
	put_be64(kb, id);
	v.mv_size = len;
	v.mv_data = buf;
	rc = mdb_put(txn, st->dbi[HYDB_DBI_RECORDS], &k, &v, 0);
	free(buf);
	FORWARD_IF_ERROR(hydb_store_mdb_error(rc, "record table"));
	FORWARD_IF_ERROR(key_put(st, txn, rec->key, id, 0));
	attr.id = id;
	attr.radius = radius;
	attr.modality = (uint8_t)rec->modality;
	attr.label = (uint8_t)rec->label;
	attr.live = 1;
	FORWARD_IF_ERROR(block_write_slot(st, txn, slot, rec->vector, &attr));
	FORWARD_IF_ERROR(radius_key_op(st, txn, radius, slot, 0));
	FORWARD_IF_ERROR(meta_get_u64(st, txn, "count", &count));
	FORWARD_IF_ERROR(meta_put_u64(st, txn, "count", count + 1));
	*id_out = id;
	*slot_out = slot;
	return HYDB_OK;
}

int hydb_store_get(hydb_store *st, MDB_txn *txn, uint64_t id, hydb_entry **out)
{
	MDB_val v;
	hydb_rec_hdr h;
	hydb_entry *e;
	const float *vec;
	const hydb_slot_attr *attr;
	int rc;

	FORWARD_IF_ERROR(rec_get_raw(st, txn, id, &v));
	FORWARD_IF_ERROR(hydb_rec_decode(&e, v.mv_data, v.mv_size, id));
	hydb_rec_header(&h, v.mv_data);
	rc = hydb_store_slot(st, txn, h.slot, &vec, &attr);
	if (rc == 0 && (h.dim != st->dim || !attr->live || attr->id != id))
		rc = hydb_error_set(HYDB_ECORRUPT, "record %llu: its vector slot %u does not point back",
				    (unsigned long long)id, h.slot);
	if (rc == 0 && hydb_vec_hash(vec, st->dim) != h.vec_hash)
		rc = hydb_error_set(HYDB_ECORRUPT, "record %llu: vector checksum mismatch",
				    (unsigned long long)id);
	if (rc == 0) {
		e->vector = hydb_alloc_array(st->dim, sizeof(float), "record vector");
		if (!e->vector)
			rc = HYDB_ENOMEM;
		else
			memcpy(e->vector, vec, st->dim * sizeof(float));
	}
	if (rc < 0) {
		hydb_entry_free(e);
		return rc;
	}
	*out = e;
	return HYDB_OK;
}

int hydb_store_set_label(hydb_store *st, MDB_txn *txn, uint64_t id, hydb_label label)
{
	unsigned char kb[8];
	MDB_val k = {8, kb}, v;
	hydb_rec_hdr h;
	const float *vec;
	const hydb_slot_attr *attr;
	hydb_slot_attr a;
	char *buf;
	int rc;

	FORWARD_IF_ERROR(rec_get_raw(st, txn, id, &v));
	FORWARD_IF_ERROR(hydb_rec_verify(v.mv_data, v.mv_size, id));
	buf = malloc(v.mv_size);
	RETURN_ERROR_IF(!buf, HYDB_ENOMEM, "record %llu: out of memory", (unsigned long long)id);
	memcpy(buf, v.mv_data, v.mv_size);
	rc = hydb_rec_set_label(buf, v.mv_size, label);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	hydb_rec_header(&h, buf);
	put_be64(kb, id);
	v.mv_data = buf;
	rc = mdb_put(txn, st->dbi[HYDB_DBI_RECORDS], &k, &v, 0);
	free(buf);
	FORWARD_IF_ERROR(hydb_store_mdb_error(rc, "record table"));
	FORWARD_IF_ERROR(hydb_store_slot(st, txn, h.slot, &vec, &attr));
	a = *attr;
	a.label = (uint8_t)label;
	{
		/* the block is rewritten, so copy the vector out first */
		float *copy = hydb_alloc_array(st->dim, sizeof(float), "vector");
		if (!copy)
			return HYDB_ENOMEM;
		memcpy(copy, vec, st->dim * sizeof(float));
		rc = block_write_slot(st, txn, h.slot, copy, &a);
		free(copy);
	}
	return rc;
}

int hydb_store_count(hydb_store *st, MDB_txn *txn, uint64_t *out)
{
	return meta_get_u64(st, txn, "count", out);
}
