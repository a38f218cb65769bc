/*
 * check_crash.c - reliability: a writer SIGKILLed at random moments never
 * loses an acknowledged batch nor leaves half of one; a killed reader does
 * not block writers; default opens are durable; damaged files give errors,
 * never crashes; threads and processes share a database safely.
 *
 * Every figure the issue asks for is printed on stderr ("reliability: ...")
 * so that a test log shows what was exercised.
 */
#include <check.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "hydb.h"
#include "db_internal.h"
#include "index/hnsw.h"
#include "base/base.h"
#include "storage/store_check.h"
#include "storage/store.h"

#define DIM 16
#define KEYSPACE 256

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* ---- small helpers ------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

typedef struct {
	uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
	r->s = mix64(r->s);
	return r->s;
}

static double rng_unit(rng *r)
{
	return (rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static unsigned rng_below(rng *r, unsigned n)
{
	return (unsigned)(rng_next(r) % n);
}

/* A point at geodesic radius in [0.1, 3] (curvature 1), fully determined by
 * seed, so that a verifier can rebuild any record a writer stored. */
static void seeded_point(float *x, uint64_t seed)
{
	rng r = {seed};
	double n = 0, rad = 0.1 + 2.9 * rng_unit(&r), s;
	for (size_t i = 0; i < DIM; i++) {
		x[i] = (float)(rng_unit(&r) * 2 - 1);
		n += (double)x[i] * x[i];
	}
	s = sinh(rad) / sqrt(n + 1e-30);
	for (size_t i = 0; i < DIM; i++)
		x[i] = (float)(x[i] * s);
}

static char tmproot[256];

static const char *make_tmpdir(const char *tag)
{
	snprintf(tmproot, sizeof tmproot, "/tmp/hydb-rel-%s-XXXXXX", tag);
	ck_assert_ptr_nonnull(mkdtemp(tmproot));
	return tmproot;
}

static hydb_db *open_db(const char *path, unsigned flags)
{
	hydb_open_options o;
	hydb_db *db = NULL;
	int rc;
	hydb_open_options_init(&o);
	o.flags = flags;
	o.dim = DIM;
	o.curvature = 1.0;
	rc = hydb_open(&db, path, &o);
	ck_assert_msg(rc == 0, "open %s: %s", path, hydb_last_error());
	return db;
}

static void rm_rf(const char *path)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "reliability: could not remove %s\n", path);
}

/* A test that fails stops before its own rm_rf; this runs after it in the
 * same forked child. */
static void remove_tmproot(void)
{
	if (tmproot[0] && access(tmproot, F_OK) == 0)
		rm_rf(tmproot);
	tmproot[0] = 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(90);
		c += w;
		n -= (size_t)w;
	}
}

static void problem_count(const char *msg, void *ctx)
{
	size_t *n = ctx;
	if (*n < 5)
		fprintf(stderr, "reliability: problem: %s\n", msg);
	(*n)++;
}

/* Store and index checks over one snapshot; returns the problem count. */
static size_t full_check(hydb_db *db)
{
	hydb_store *st = hydb_db_store(db);
	hydb_check_stats cs;
	size_t store_problems = 0, index_problems = 0;
	MDB_txn *txn;
	ck_assert_int_eq(hydb_store_read_begin(st, &txn), 0);
	ck_assert_int_eq(hydb_store_check(st, txn, problem_count, &store_problems, &cs), 0);
	ck_assert_int_eq(hydb_index_check(hydb_db_index(db), txn, problem_count, &index_problems,
					  &index_problems), 0);
	hydb_store_read_end(st, txn);
	return store_problems + index_problems;
}

/* ---- the writer's workload, replayable by the verifier ------------------- */

/* What the database must hold after a given batch: for each key, the batch
 * that last wrote it (0 = absent) and its position in that batch. */
typedef struct {
	uint32_t ver[KEYSPACE];
	uint16_t pos[KEYSPACE];
} model;

typedef struct {
	int del;          /* a delete of keys[0] */
	unsigned n;
	unsigned keys[200];
} batch_plan;

/* Mostly small upsert batches, some large ones (the index insert then
 * dominates the transaction and its worker threads run), and deletes (the
 * index repairs neighbour lists). Keys repeat, so upserts and duplicates
 * inside one batch are common. */
static void plan_batch(batch_plan *p, const model *m, uint32_t b)
{
	rng r = {0x5eedull * b + 17};
	unsigned kind = rng_below(&r, 10);
	p->del = 0;
	if (kind < 3) {
		unsigned start = rng_below(&r, KEYSPACE);
		for (unsigned i = 0; i < KEYSPACE; i++) {
			unsigned k = (start + i) % KEYSPACE;
			if (m->ver[k]) {
				p->del = 1;
				p->n = 1;
				p->keys[0] = k;
				return;
			}
		}
	}
	p->n = kind == 9 ? 64 + rng_below(&r, 136) : 1 + rng_below(&r, 12);
	for (unsigned i = 0; i < p->n; i++)
		p->keys[i] = rng_below(&r, KEYSPACE);
}

static void model_apply(model *m, const batch_plan *p, uint32_t b)
{
	if (p->del) {
		m->ver[p->keys[0]] = 0;
		return;
	}
	for (unsigned i = 0; i < p->n; i++) {
		m->ver[p->keys[i]] = b;
		m->pos[p->keys[i]] = (uint16_t)i;
	}
}

static void model_at(model *m, uint32_t upto)
{
	batch_plan p;
	memset(m, 0, sizeof *m);
	for (uint32_t b = 1; b <= upto; b++) {
		plan_batch(&p, m, b);
		model_apply(m, &p, b);
	}
}

typedef struct {
	char key[32];
	char caption[64];
	float vec[DIM];
	hydb_label label;
	hydb_modality modality;
	int has_caption;
} expected_rec;

static void expect_rec(expected_rec *e, unsigned k, uint32_t ver, unsigned pos)
{
	uint64_t seed = mix64(((uint64_t)ver << 32) ^ ((uint64_t)k << 8) ^ pos);
	snprintf(e->key, sizeof e->key, "key-%u", k);
	seeded_point(e->vec, seed);
	e->label = (hydb_label)(seed % 3);
	e->modality = (hydb_modality)((seed >> 8) % 3);
	e->has_caption = (seed >> 16) % 4 != 0;
	snprintf(e->caption, sizeof e->caption, "batch %u, position %u, key %u", ver, pos, k);
}

static int write_batch(hydb_db *db, const batch_plan *p, uint32_t b)
{
	static expected_rec ex[200];
	hydb_record recs[200];
	if (p->del) {
		char key[32];
		snprintf(key, sizeof key, "key-%u", p->keys[0]);
		return hydb_delete_key(db, key);
	}
	memset(recs, 0, sizeof recs);
	for (unsigned i = 0; i < p->n; i++) {
		expect_rec(&ex[i], p->keys[i], b, i);
		recs[i].key = ex[i].key;
		recs[i].vector = ex[i].vec;
		recs[i].label = ex[i].label;
		recs[i].modality = ex[i].modality;
		recs[i].caption = ex[i].has_caption ? ex[i].caption : NULL;
	}
	return hydb_put(db, recs, p->n, NULL);
}

/* Child: resume after batch `done`, acknowledge every committed batch on
 * fd, until killed. */
static void writer_child(const char *path, uint32_t done, int fd)
{
	model m;
	batch_plan p;
	hydb_db *db;
	hydb_open_options o;
	hydb_open_options_init(&o);
	model_at(&m, done);
	if (hydb_open(&db, path, &o) < 0) {
		fprintf(stderr, "writer: %s\n", hydb_last_error());
		_exit(3);
	}
	{
		uint32_t opened = 0;
		write_all(fd, &opened, sizeof opened);
	}
	for (uint32_t b = done + 1;; b++) {
		plan_batch(&p, &m, b);
		if (write_batch(db, &p, b) < 0) {
			fprintf(stderr, "writer: batch %u: %s\n", b, hydb_last_error());
			_exit(4);
		}
		model_apply(&m, &p, b);
		write_all(fd, &b, sizeof b);
	}
}

/* ---- the verifier -------------------------------------------------------- */

#define MAX_ROUNDS 200

/* The state each verification found, and which records an index search
 * could not find then. The graph is deterministic (its level generator is
 * persisted), so a recovered database must have exactly the reachability of
 * the same batches written without kills. */
typedef struct {
	uint32_t at;
	uint8_t unreachable[KEYSPACE];
} round_rec;

typedef struct {
	unsigned kills, kills_writing, checked, lost, unreachable, problems, half_batches;
	unsigned rounds;
	round_rec rec[MAX_ROUNDS];
} kill_stats;

static int entry_matches(const hydb_entry *e, const expected_rec *x)
{
	if (!e || memcmp(e->vector, x->vec, sizeof x->vec) != 0 || e->label != x->label ||
	    e->modality != x->modality)
		return 0;
	if (!x->has_caption)
		return e->caption == NULL;
	return e->caption && !strcmp(e->caption, x->caption);
}

/* Does the database hold exactly the state m? Counts mismatching keys. */
static unsigned diff_against(hydb_db *db, const model *m, unsigned *present)
{
	unsigned bad = 0;
	uint64_t count;
	*present = 0;
	for (unsigned k = 0; k < KEYSPACE; k++) {
		expected_rec x;
		hydb_entry *e = NULL;
		int rc;
		expect_rec(&x, k, m->ver[k], m->pos[k]);
		rc = hydb_get_key(db, x.key, &e);
		if (m->ver[k] == 0)
			bad += rc != HYDB_ENOTFOUND;
		else
			bad += rc != 0 || !entry_matches(e, &x);
		*present += rc == 0;
		hydb_entry_free(e);
	}
	ck_assert_int_eq(hydb_count(db, &count), 0);
	bad += count != *present;
	return bad;
}

/* Each live record found by an index search of its own vector at
 * distance 0 (to rounding). ef covers the whole database, so a miss means a node the
 * graph cannot reach. */
static unsigned unreachable_records(hydb_db *db, const model *m, uint8_t *lost_keys)
{
	hydb_search_options so;
	unsigned miss = 0;
	hydb_search_options_init(&so);
	so.k = 1;
	so.ef = KEYSPACE + 64;
	for (unsigned k = 0; k < KEYSPACE; k++) {
		expected_rec x;
		hydb_results *r = NULL;
		if (!m->ver[k])
			continue;
		expect_rec(&x, k, m->ver[k], m->pos[k]);
		if (hydb_search(db, &r, x.vec, &so) < 0 || r->n != 1 || strcmp(r->keys[0], x.key) ||
		    !(r->distances[0] < 1e-6) || strcmp(r->plan, "hnsw")) {
			if (lost_keys)
				lost_keys[k] = 1;
			miss++;
		}
		hydb_results_free(r);
	}
	return miss;
}

/* After a kill: the store is at batch acked or acked+1 (committed, not yet
 * acknowledged), whole. Returns the batch it is at. */
static uint32_t verify_after_kill(const char *path, uint32_t acked, kill_stats *ks)
{
	static model m0, m1;
	hydb_db *db = open_db(path, 0);
	unsigned present, bad0, bad1;
	uint32_t at = acked;
	int stale = 0;

	mdb_reader_check(hydb_store_env(hydb_db_store(db)), &stale);
	model_at(&m0, acked);
	m1 = m0;
	{
		batch_plan p;
		plan_batch(&p, &m1, acked + 1);
		model_apply(&m1, &p, acked + 1);
	}
	bad0 = diff_against(db, &m0, &present);
	if (bad0) {
		bad1 = diff_against(db, &m1, &present);
		if (bad1 == 0) {
			at = acked + 1;
		} else {
			/* Neither whole state: acknowledged data lost or a batch
			 * applied in part. */
			ks->lost += bad0 < bad1 ? bad0 : bad1;
			ks->half_batches++;
		}
	}
	ks->checked += present;
	ks->problems += (unsigned)full_check(db);
	/* A search per record with ef over the whole database is the costly
	 * part: sample every third round. */
	if (ks->kills % 3 == 0) {
		round_rec *rr = &ks->rec[ks->rounds++];
		rr->at = at;
		memset(rr->unreachable, 0, sizeof rr->unreachable);
		ks->unreachable += unreachable_records(db, at == acked ? &m0 : &m1, rr->unreachable);
	}
	hydb_close(db);
	return at;
}

/* Acknowledgements follow the writer's 0 ("opened"), in batch order. */
static uint32_t drain_acks(int fd, uint32_t last, int opened_read)
{
	uint32_t b;
	ssize_t n;
	while ((n = read(fd, &b, sizeof b)) == (ssize_t)sizeof b) {
		if (!opened_read) {
			ck_assert_uint_eq(b, 0);
			opened_read = 1;
			continue;
		}
		ck_assert_uint_eq(b, last + 1);
		last = b;
	}
	return last;
}

/* A process holding the environment open for the whole run, so that the
 * lock file outlives each killed writer: the next writer then recovers the
 * dead writer's mutex instead of starting a fresh lock file. */
static pid_t start_keeper(const char *path, int *ctl)
{
	int fds[2], rd[2];
	pid_t pid;
	char c;
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(pipe(rd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		hydb_open_options o;
		hydb_db *db;
		close(fds[1]);
		close(rd[0]);
		hydb_open_options_init(&o);
		o.flags = HYDB_OPEN_RDONLY;
		if (hydb_open(&db, path, &o) < 0)
			_exit(3);
		write_all(rd[1], "k", 1);
		while (read(fds[0], &c, 1) > 0)
			;
		hydb_close(db);
		_exit(0);
	}
	close(fds[0]);
	close(rd[1]);
	ck_assert_int_eq(read(rd[0], &c, 1), 1);
	close(rd[0]);
	*ctl = fds[1];
	return pid;
}

static void stop_child(pid_t pid, int ctl)
{
	int status;
	close(ctl);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void kill_round(const char *path, uint32_t *done, rng *r, kill_stats *ks)
{
	int fds[2], status, wait_open = rng_below(r, 5) != 0;
	pid_t pid;
	uint32_t acked, opened = 1;
	/* One kill in five at any moment from the start (often while opening
	 * and recovering); the others a while into the writes, so that machine
	 * load does not decide where kills land. Some rounds run long enough
	 * for a large batch to commit, or the run would retry it forever. */
	long delay = (long)rng_below(r, wait_open ? 80000 : 60000);
	if (wait_open && rng_below(r, 4) == 0)
		delay += (long)rng_below(r, 320000);

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		writer_child(path, *done, fds[1]);
	}
	close(fds[1]);
	if (wait_open)
		ck_assert_msg(read(fds[0], &opened, sizeof opened) == sizeof opened && opened == 0,
			      "writer failed to open the database after batch %u", *done);
	sleep_us(delay);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "writer ended on its own (status %d) after batch %u", status, *done);
	acked = drain_acks(fds[0], *done, wait_open);
	ks->kills_writing += wait_open;
	close(fds[0]);
	ks->kills++;
	*done = verify_after_kill(path, acked, ks);
}

/* Replay the verified rounds without kills (no fsync: durability is not
 * in question here) and count rounds whose reachability differs. */
static unsigned replay_differences(const char *root, const kill_stats *ks, unsigned *base_unreach)
{
	char path[300];
	static model m;
	uint8_t miss[KEYSPACE];
	batch_plan p;
	hydb_db *db;
	uint32_t b = 0;
	unsigned differ = 0;

	snprintf(path, sizeof path, "%s/replay", root);
	db = open_db(path, HYDB_OPEN_CREATE | HYDB_OPEN_NOSYNC);
	memset(&m, 0, sizeof m);
	*base_unreach = 0;
	for (unsigned i = 0; i < ks->rounds; i++) {
		for (; b < ks->rec[i].at; ) {
			b++;
			plan_batch(&p, &m, b);
			ck_assert_msg(write_batch(db, &p, b) == 0, "replay batch %u: %s", b, hydb_last_error());
			model_apply(&m, &p, b);
		}
		memset(miss, 0, sizeof miss);
		*base_unreach += unreachable_records(db, &m, miss);
		if (memcmp(miss, ks->rec[i].unreachable, sizeof miss) != 0) {
			fprintf(stderr, "reliability: after batch %u the recovered index differs from a "
				"replay without kills\n", b);
			differ++;
		}
	}
	hydb_close(db);
	return differ;
}

START_TEST(test_kill_writer)
{
	const char *root = make_tmpdir("kill");
	char path[300];
	static kill_stats ks;
	rng r = {(uint64_t)time(NULL)};
	uint32_t done = 0;
	unsigned rounds = SANITIZED ? 100 : 120, round;
	double t0 = now_s(), budget = SANITIZED ? 80 : 45;
	int ctl = -1;
	pid_t keeper;

	snprintf(path, sizeof path, "%s/db", root);
	hydb_close(open_db(path, HYDB_OPEN_CREATE));
	keeper = start_keeper(path, &ctl);
	fprintf(stderr, "reliability: kill test seed %llu\n", (unsigned long long)r.s);
	for (round = 0; round < rounds && round < MAX_ROUNDS && now_s() - t0 < budget; round++) {
		if (round == rounds / 2) {
			stop_child(keeper, ctl);
			keeper = 0;
		}
		kill_round(path, &done, &r, &ks);
		if (ks.lost || ks.half_batches || ks.problems)
			break;
	}
	if (keeper)
		stop_child(keeper, ctl);
	fprintf(stderr,
		"reliability: kills survived %u (%u after the writer opened), batches committed %u, "
		"acknowledged records checked %u, records lost %u, half batches %u, check problems %u "
		"(%.1f s)\n",
		ks.kills, ks.kills_writing, done, ks.checked, ks.lost, ks.half_batches, ks.problems,
		now_s() - t0);
	ck_assert_uint_eq(ks.lost, 0);
	ck_assert_uint_eq(ks.half_batches, 0);
	ck_assert_uint_eq(ks.problems, 0);
	{
		unsigned base_unreach, differ = replay_differences(root, &ks, &base_unreach);
		fprintf(stderr, "reliability: index searches missing a record: %u after kills, %u in a "
			"replay without kills; rounds whose index differs from the replay: %u\n",
			ks.unreachable, base_unreach, differ);
		ck_assert_uint_eq(differ, 0);
	}
	ck_assert_uint_ge(ks.kills, 100);
	rm_rf(root);
}
END_TEST

static void put_seeded(hydb_db *db, unsigned first, unsigned n)
{
	hydb_record recs[64];
	static expected_rec ex[64];
	ck_assert_uint_le(n, 64);
	memset(recs, 0, sizeof recs);
	for (unsigned i = 0; i < n; i++) {
		expect_rec(&ex[i], first + i, 1, 0);
		recs[i].key = ex[i].key;
		recs[i].vector = ex[i].vec;
	}
	ck_assert_msg(hydb_put(db, recs, n, NULL) == 0, "put: %s", hydb_last_error());
}

/* `hydb check` output: the number of stale reader slots it cleared. */
static int cli_check_stale(const char *path)
{
	const char *bd = getenv("HYDB_BUILDDIR");
	char cmd[700], line[1024];
	int stale = -1;
	FILE *f;
	snprintf(cmd, sizeof cmd, "'%s/hydb' check '%s'", bd ? bd : ".", path);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f)) {
		const char *p = strstr(line, "; cleared ");
		if (p)
			stale = atoi(p + 10);
	}
	ck_assert_int_eq(pclose(f), 0);
	return stale;
}

/* A reader killed inside a snapshot leaves its slot in the lock file. It
 * must not block writers, and `hydb check` clears it and says so. */
START_TEST(test_kill_reader)
{
	const char *root = make_tmpdir("reader");
	char path[300], c;
	int fds[2], status;
	uint64_t n;
	hydb_db *db;
	pid_t pid;

	snprintf(path, sizeof path, "%s/db", root);
	db = open_db(path, HYDB_OPEN_CREATE);
	put_seeded(db, 0, 20);
	hydb_close(db);
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		hydb_open_options o;
		MDB_txn *txn;
		hydb_open_options_init(&o);
		o.flags = HYDB_OPEN_RDONLY;
		if (hydb_open(&db, path, &o) < 0 || hydb_store_read_begin(hydb_db_store(db), &txn) < 0)
			_exit(3);
		write_all(fds[1], "r", 1);
		for (;;)
			pause();
	}
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &c, 1), 1);
	/* Opened while the reader lives, so the lock file keeps its slot. */
	db = open_db(path, 0);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	for (unsigned b = 0; b < 30; b++)
		put_seeded(db, 20 + 8 * b, 8);
	ck_assert_int_eq(hydb_count(db, &n), 0);
	ck_assert_uint_eq(n, 20 + 30 * 8);
	ck_assert_int_eq(cli_check_stale(path), 1);
	ck_assert_int_eq(cli_check_stale(path), 0);
	fprintf(stderr, "reliability: killed reader: 240 records written past its snapshot, "
		"hydb check cleared 1 stale reader slot\n");
	hydb_close(db);
	close(fds[0]);
	rm_rf(root);
}
END_TEST

/* Default opens are durable: every commit is synced, and writes go
 * through write(2), not a writable map that a stray pointer could
 * damage. */
START_TEST(test_durable_by_default)
{
	const char *root = make_tmpdir("durable");
	char path[300];
	unsigned flags;
	hydb_db *db;

	snprintf(path, sizeof path, "%s/db", root);
	db = open_db(path, HYDB_OPEN_CREATE);
	ck_assert_int_eq(mdb_env_get_flags(hydb_store_env(hydb_db_store(db)), &flags), 0);
	ck_assert_uint_eq(flags & (MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP | MDB_MAPASYNC), 0);
	hydb_close(db);
	db = open_db(path, 0);
	ck_assert_int_eq(mdb_env_get_flags(hydb_store_env(hydb_db_store(db)), &flags), 0);
	ck_assert_uint_eq(flags & (MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP | MDB_MAPASYNC), 0);
	hydb_close(db);
	/* The opt-out does what it says. */
	db = open_db(path, HYDB_OPEN_NOSYNC);
	ck_assert_int_eq(mdb_env_get_flags(hydb_store_env(hydb_db_store(db)), &flags), 0);
	ck_assert_uint_ne(flags & MDB_NOSYNC, 0);
	ck_assert_uint_eq(flags & MDB_WRITEMAP, 0);
	hydb_close(db);
	rm_rf(root);
}
END_TEST

/* ---- damaged files ------------------------------------------------------- */

static int crash_fd = -1;

/* Name the shared object and function a crash happened in, for the
 * report, then die of the same signal. */
static void crash_handler(int sig, siginfo_t *si, void *vuc)
{
	ucontext_t *uc = vuc;
	Dl_info info;
	char msg[300];
	void *pc = (void *)uc->uc_mcontext.gregs[REG_RIP];
	int n;
	(void)si;
	if (dladdr(pc, &info) && info.dli_fname) {
		const char *base = strrchr(info.dli_fname, '/');
		n = snprintf(msg, sizeof msg, "signal %d in %s:%s+%#lx\n", sig,
			     base ? base + 1 : info.dli_fname, info.dli_sname ? info.dli_sname : "",
			     (unsigned long)((char *)pc - (char *)(info.dli_sname ? info.dli_saddr
										 : info.dli_fbase)));
	} else {
		n = snprintf(msg, sizeof msg, "signal %d at %p\n", sig, pc);
	}
	/* A fault inside libc (memcpy and friends, leaf functions that push no
	 * frame) belongs to whoever called it: the return address is on top
	 * of the stack. Name that caller so the crash is attributed right. */
	if (n > 0 && n < (int)sizeof msg - 80 && strstr(msg, "libc.so")) {
		void *ret = *(void **)uc->uc_mcontext.gregs[REG_RSP];
		Dl_info ci;
		if (sig == SIGABRT) {
			/* abort() is no leaf: take the first frame past the
			 * handler that is not in libc (an assert in LMDB or ours) */
			void *frames[32];
			int nf = backtrace(frames, 32);
			for (int k = 1; k < nf; k++)
				if (dladdr(frames[k], &ci) && ci.dli_fname && !strstr(ci.dli_fname, "libc.so")) {
					ret = frames[k];
					break;
				}
		}
		if (dladdr(ret, &ci) && ci.dli_fname) {
			const char *cb = strrchr(ci.dli_fname, '/');
			n--; /* drop the newline */
			n += snprintf(msg + n, sizeof msg - (size_t)n, " called from %s+%#lx\n",
				      cb ? cb + 1 : ci.dli_fname,
				      (unsigned long)((char *)ret - (char *)ci.dli_fbase));
		}
	}
	if (crash_fd >= 0 && n > 0)
		(void)!write(crash_fd, msg, (size_t)n);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_crashes(int fd)
{
	struct sigaction sa;
	int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
	{
		/* backtrace() loads its unwinder on first use: not inside a
		 * signal handler */
		void *warm[2];
		(void)backtrace(warm, 2);
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = crash_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	crash_fd = fd;
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaction(sigs[i], &sa, NULL);
}

/* Everything a user might do with a damaged database. Any outcome but a
 * crash or a hang is acceptable: errors are the expected answer. */
static void use_damaged(const char *path, int writable)
{
	hydb_open_options o;
	hydb_search_options so;
	hydb_results *r = NULL;
	hydb_entry *e = NULL;
	expected_rec x;
	uint64_t n;
	hydb_db *db;

	hydb_open_options_init(&o);
	o.flags = writable ? 0 : HYDB_OPEN_RDONLY;
	if (hydb_open(&db, path, &o) < 0)
		return;
	(void)hydb_count(db, &n);
	{
		hydb_store *st = hydb_db_store(db);
		hydb_check_stats cst;
		size_t np = 0;
		MDB_txn *txn;
		if (hydb_store_read_begin(st, &txn) == 0) {
			if (hydb_store_check(st, txn, NULL, NULL, &cst) == 0)
				(void)hydb_index_check(hydb_db_index(db), txn, NULL, NULL, &np);
			hydb_store_read_end(st, txn);
		}
	}
	expect_rec(&x, 7, 1, 0);
	hydb_search_options_init(&so);
	so.k = 20;
	if (hydb_search(db, &r, x.vec, &so) == 0)
		hydb_results_free(r);
	so.exact = 1;
	if (hydb_search(db, &r, x.vec, &so) == 0)
		hydb_results_free(r);
	so.exact = 0;
	so.max_radius = 1.0;
	if (hydb_search(db, &r, x.vec, &so) == 0)
		hydb_results_free(r);
	if (hydb_get_key(db, x.key, &e) == 0)
		hydb_entry_free(e);
	if (hydb_get_id(db, 3, &e) == 0)
		hydb_entry_free(e);
	if (writable) {
		hydb_record rec = {0};
		expect_rec(&x, 9, 2, 0);
		rec.key = x.key;
		rec.vector = x.vec;
		(void)hydb_put(db, &rec, 1, NULL);
		(void)hydb_delete_key(db, "key-11");
	}
	hydb_close(db);
}

typedef struct {
	unsigned cases, crashes, lmdb_crashes, hangs;
	char where[8][120];
	unsigned where_n[8], nwhere;
} corrupt_stats;

static void note_crash(corrupt_stats *cs, const char *what)
{
	unsigned i;
	for (i = 0; i < cs->nwhere; i++)
		if (!strcmp(cs->where[i], what))
			break;
	if (i == cs->nwhere && cs->nwhere < 8)
		snprintf(cs->where[cs->nwhere++], sizeof cs->where[0], "%s", what);
	if (i < 8)
		cs->where_n[i]++;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* DATA becomes the database's data file, with no lock file left from an
 * earlier case. */
static void place_data_file(const char *dir, const unsigned char *data, size_t len)
{
	char file[400];
	snprintf(file, sizeof file, "%s/lock.mdb", dir);
	unlink(file);
	snprintf(file, sizeof file, "%s/data.mdb", dir);
	write_file(file, data, len);
}

/* One damaged copy, used in a child so that a crash is counted. */
static void damaged_case(const char *dir, const unsigned char *data, size_t len, int writable,
			 corrupt_stats *cs, const char *what)
{
	char msg[200] = "";
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	place_data_file(dir, data, len);
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		catch_crashes(fds[1]);
		alarm(SANITIZED ? 60 : 20);
		if (!SANITIZED) {
			/* A damaged size can ask for gigabytes: that must be an
			 * ENOMEM error here, not a machine out of memory. */
			struct rlimit rl = {(rlim_t)2 << 30, (rlim_t)2 << 30};
			setrlimit(RLIMIT_AS, &rl);
		}
		use_damaged(dir, writable);
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], msg, sizeof msg - 1);
	msg[n > 0 ? n - 1 : 0] = '\0';
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	cs->cases++;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
		cs->hangs++;
		note_crash(cs, "hang (no answer within the alarm)");
		return;
	}
	if (strstr(msg, "liblmdb"))
		cs->lmdb_crashes++;
	else
		cs->crashes++;
	if (!*msg)
		snprintf(msg, sizeof msg, "exit status %d (sanitizer report?)", status);
	note_crash(cs, msg);
	fprintf(stderr, "reliability: crash on %s: %s\n", what, msg);
}

static unsigned char *build_victim(const char *root, size_t *len)
{
	char path[300], file[320];
	unsigned char *data;
	struct stat sb;
	hydb_db *db;
	FILE *f;

	snprintf(path, sizeof path, "%s/victim", root);
	db = open_db(path, HYDB_OPEN_CREATE);
	for (unsigned b = 0; b < 6; b++)
		put_seeded(db, 50 * b, 50);
	ck_assert_int_eq(hydb_delete_key(db, "key-5"), 0);
	hydb_close(db);
	snprintf(file, sizeof file, "%s/data.mdb", path);
	ck_assert_int_eq(stat(file, &sb), 0);
	*len = (size_t)sb.st_size;
	data = malloc(*len);
	f = fopen(file, "rb");
	ck_assert_ptr_nonnull(data);
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(data, 1, *len, f), *len);
	fclose(f);
	return data;
}

START_TEST(test_damaged_files)
{
	const char *root = make_tmpdir("corrupt");
	char dir[300], what[64];
	size_t len;
	unsigned char *orig = build_victim(root, &len), *copy = malloc(len);
	size_t cuts[6];
	/* A fixed seed keeps 'make check' reproducible; HYDB_TEST_SEED picks
	 * other flips (the nightly run uses the time). */
	const char *seed_env = getenv("HYDB_TEST_SEED");
	rng r = {seed_env ? strtoull(seed_env, NULL, 10) : 0x9e3779b97f4a7c15ull};
	corrupt_stats cs = {0};
	unsigned flips = 1000;
	double t0 = now_s(), budget = SANITIZED ? 120 : 40;

	ck_assert_ptr_nonnull(copy);
	cuts[0] = 0, cuts[1] = 1, cuts[2] = 4095, cuts[3] = 4096, cuts[4] = len / 2, cuts[5] = len - 1;
	snprintf(dir, sizeof dir, "%s/case", root);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	fprintf(stderr, "reliability: damaged files: %zu-byte data file, seed %llu\n", len,
		(unsigned long long)r.s);
	for (int w = 0; w < 2; w++)
		for (int i = 0; i < 6; i++) {
			snprintf(what, sizeof what, "truncation to %zu bytes", cuts[i]);
			damaged_case(dir, orig, cuts[i], w, &cs, what);
		}
	ck_assert_uint_eq(cs.crashes + cs.lmdb_crashes + cs.hangs, 0);
	for (unsigned i = 0; i < flips && now_s() - t0 < budget; i++) {
		size_t at = (size_t)(rng_next(&r) % len);
		memcpy(copy, orig, len);
		copy[at] ^= (unsigned char)(1 + rng_below(&r, 255));
		snprintf(what, sizeof what, "byte %zu flipped", at);
		damaged_case(dir, copy, len, i % 4 == 0, &cs, what);
	}
	fprintf(stderr, "reliability: damaged files: cases tried %u, crashes %u (in hydb %u, inside "
		"liblmdb %u), hangs %u (%.1f s)\n", cs.cases, cs.crashes + cs.lmdb_crashes, cs.crashes,
		cs.lmdb_crashes, cs.hangs, now_s() - t0);
	for (unsigned i = 0; i < cs.nwhere; i++)
		fprintf(stderr, "reliability:   %u x %s\n", cs.where_n[i], cs.where[i]);
	ck_assert_uint_ge(cs.cases, SANITIZED ? 200 : 1000);
	/* LMDB trusts its pages; hydb verifies them before LMDB maps the
	 * file, so no damage reaches LMDB's code either. */
	ck_assert_uint_eq(cs.crashes + cs.lmdb_crashes + cs.hangs, 0);
	free(orig);
	free(copy);
	rm_rf(root);
}
END_TEST

/* ---- LMDB's own structure ------------------------------------------------ */

/* The test reads LMDB 0.9's layout itself (see storage/lmdb_verify.c) to
 * aim damage at page headers, node offsets and node headers: the bytes
 * LMDB trusts. */
#define PSIZE 4096u

static uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

typedef struct {
	size_t *at;
	size_t n, cap;
} offsets;

static void offsets_add(offsets *o, size_t from, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (o->n == o->cap) {
			o->cap = o->cap ? 2 * o->cap : 4096;
			o->at = realloc(o->at, o->cap * sizeof *o->at);
			ck_assert_ptr_nonnull(o->at);
		}
		o->at[o->n++] = from + i;
	}
}

/* Every structural byte of every page whose header names itself: branch
 * and leaf headers with their node offsets and node headers, overflow run
 * headers, and the meta pages. */
static void structure_offsets(offsets *o, const unsigned char *d, size_t len)
{
	offsets_add(o, 0, 16 + 136);
	offsets_add(o, PSIZE, 16 + 136);
	for (size_t pg = 2; (pg + 1) * PSIZE <= len; pg++) {
		const unsigned char *p = d + pg * PSIZE;
		unsigned flags = get16(p + 10), lower = get16(p + 12);
		if (get64(p) != pg)
			continue;
		if (flags == 4)
			offsets_add(o, pg * PSIZE, 16);
		if ((flags != 1 && flags != 2) || lower < 16 || lower > PSIZE)
			continue;
		offsets_add(o, pg * PSIZE, lower);
		for (unsigned i = 0; i < (lower - 16) / 2; i++) {
			unsigned off = get16(p + 16 + 2 * i);
			if (off + 8 <= PSIZE)
				offsets_add(o, pg * PSIZE + off, 8);
		}
	}
}

/* Random damage aimed at the structure only: every case must be an error
 * or harmless, never a crash. */
START_TEST(test_damaged_structure)
{
	const char *root = make_tmpdir("struct");
	char dir[300], what[64];
	size_t len;
	unsigned char *orig = build_victim(root, &len), *copy = malloc(len);
	const char *seed_env = getenv("HYDB_TEST_SEED");
	rng r = {seed_env ? strtoull(seed_env, NULL, 10) : 0x2545f4914f6cdd1dull};
	corrupt_stats cs = {0};
	offsets o = {0};
	double t0 = now_s(), budget = SANITIZED ? 90 : 30;

	ck_assert_ptr_nonnull(copy);
	structure_offsets(&o, orig, len);
	snprintf(dir, sizeof dir, "%s/case", root);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	for (unsigned i = 0; i < 600 && now_s() - t0 < budget; i++) {
		size_t at = o.at[rng_next(&r) % o.n];
		memcpy(copy, orig, len);
		copy[at] ^= (unsigned char)(1 + rng_below(&r, 255));
		snprintf(what, sizeof what, "structure byte %zu flipped", at);
		damaged_case(dir, copy, len, i % 3 == 0, &cs, what);
	}
	fprintf(stderr, "reliability: damaged LMDB structure: %zu structural bytes, cases tried %u, "
		"crashes %u (in hydb %u, inside liblmdb %u), hangs %u (%.1f s)\n", o.n, cs.cases,
		cs.crashes + cs.lmdb_crashes, cs.crashes, cs.lmdb_crashes, cs.hangs, now_s() - t0);
	for (unsigned i = 0; i < cs.nwhere; i++)
		fprintf(stderr, "reliability:   %u x %s\n", cs.where_n[i], cs.where[i]);
	ck_assert_uint_ge(cs.cases, SANITIZED ? 150 : 500);
	ck_assert_uint_eq(cs.crashes + cs.lmdb_crashes + cs.hangs, 0);
	free(o.at);
	free(orig);
	free(copy);
	rm_rf(root);
}
END_TEST

typedef struct {
	uint64_t root;
	unsigned depth;
} table_ref;

/* A named table's root and depth, read from the main table's leaf. */
static table_ref find_table(const unsigned char *d, const char *name)
{
	const unsigned char *meta0 = d + 16, *meta1 = d + PSIZE + 16, *m;
	const unsigned char *p;
	table_ref t = {0, 0};
	m = get64(meta1 + 128) > get64(meta0 + 128) ? meta1 : meta0;
	ck_assert_uint_eq(get16(m + 72 + 6), 1); /* main table: one leaf */
	p = d + get64(m + 72 + 40) * PSIZE;
	for (unsigned i = 0; i < (get16(p + 12) - 16u) / 2; i++) {
		const unsigned char *nd = p + get16(p + 16 + 2 * i);
		if (get16(nd + 6) == strlen(name) && !memcmp(nd + 8, name, strlen(name))) {
			t.root = get64(nd + 8 + get16(nd + 6) + 40);
			t.depth = get16(nd + 8 + get16(nd + 6) + 6);
		}
	}
	ck_assert_msg(t.depth > 0, "table %s not found", name);
	return t;
}

static unsigned char *page_of(unsigned char *d, uint64_t pg) { return d + pg * PSIZE; }

/* The leftmost leaf under a table's root. */
static uint64_t first_leaf(const unsigned char *d, table_ref t)
{
	uint64_t pg = t.root;
	for (unsigned l = t.depth; l > 1; l--) {
		const unsigned char *nd = d + pg * PSIZE + get16(d + pg * PSIZE + 16);
		pg = get16(nd) | (uint64_t)get16(nd + 2) << 16 | (uint64_t)get16(nd + 4) << 32;
	}
	return pg;
}

static void expect_damage(const char *dir, const unsigned char *data, size_t len,
			  const char *kind, const char *message)
{
	hydb_db *db = NULL;
	hydb_open_options o;
	int rc;

	place_data_file(dir, data, len);
	hydb_open_options_init(&o);
	rc = hydb_open(&db, dir, &o);
	ck_assert_msg(rc == HYDB_ECORRUPT && strstr(hydb_last_error(), message),
		      "%s: got %d '%s', wanted '%s'", kind, rc, rc ? hydb_last_error() : "", message);
	fprintf(stderr, "reliability: %s -> %s\n", kind, hydb_last_error());
}

/* Each kind of damage that would mislead LMDB is named, not crashed on;
 * the undamaged file verifies with every page accounted for. */
START_TEST(test_structure_faults_named)
{
	const char *root = make_tmpdir("faults");
	char dir[300];
	size_t len;
	unsigned char *orig = build_victim(root, &len), *c = malloc(len);
	table_ref recs, blocks;
	uint64_t leaf, freeroot;
	const unsigned char *m;
	hydb_db *db;

	ck_assert_ptr_nonnull(c);
	snprintf(dir, sizeof dir, "%s/case", root);
	ck_assert_int_eq(mkdir(dir, 0700), 0);

	place_data_file(dir, orig, len);
	db = open_db(dir, 0);
	{
		const hydb_lmdb_verify_stats *v = hydb_store_verified(hydb_db_store(db));
		fprintf(stderr, "reliability: intact file: %llu tables, %llu branch, %llu leaf, %llu "
			"overflow, %llu free pages, %llu unaccounted\n", (unsigned long long)v->tables,
			(unsigned long long)v->branch_pages, (unsigned long long)v->leaf_pages,
			(unsigned long long)v->overflow_pages, (unsigned long long)v->free_pages,
			(unsigned long long)v->unaccounted);
		ck_assert_uint_eq(v->tables, 8);
		ck_assert_uint_eq(v->unaccounted, 0);
		ck_assert_uint_eq(v->count_mismatches, 0);
		ck_assert_uint_gt(v->free_pages, 0);
		ck_assert_uint_eq(2 + v->branch_pages + v->leaf_pages + v->overflow_pages + v->free_pages,
				  v->last_pg + 1);
	}
	hydb_close(db);

	recs = find_table(orig, "records");
	blocks = find_table(orig, "blocks");
	leaf = first_leaf(orig, recs);
	ck_assert_uint_ge(recs.depth, 2);
	ck_assert_uint_ge(get16(page_of(orig, leaf) + 12), 16 + 2 * 2);

	memcpy(c, orig, len);
	put64(page_of(c, leaf), leaf + 1);
	expect_damage(dir, c, len, "leaf header names another page", "header names page");

	memcpy(c, orig, len);
	put16(page_of(c, leaf) + 10, 0x12); /* leaf | dirty: LMDB would write into the map */
	expect_damage(dir, c, len, "dirty flag on a stored page", "page type 0x12");

	memcpy(c, orig, len);
	put16(page_of(c, leaf) + 16, PSIZE - 4);
	expect_damage(dir, c, len, "node offset past the page", "outside the node area");

	memcpy(c, orig, len);
	{
		unsigned char *p = page_of(c, leaf);
		uint16_t a = get16(p + 16), b = get16(p + 18);
		put16(p + 16, b);
		put16(p + 18, a);
	}
	expect_damage(dir, c, len, "two keys swapped", "out of order");

	memcpy(c, orig, len);
	{
		unsigned char *p = page_of(c, recs.root), *nd = p + get16(p + 16);
		put16(nd + 2, 0x7fff); /* child page number far past the file */
	}
	expect_damage(dir, c, len, "child page past the file", "outside pages 2..");

	memcpy(c, orig, len);
	{
		/* the first block's value points at its overflow run */
		unsigned char *p = page_of(c, first_leaf(c, blocks)), *nd = p + get16(p + 16);
		uint64_t run = get64(nd + 8 + get16(nd + 6));
		ck_assert_uint_eq(get16(nd + 4), 1);
		memcpy(page_of(c, run) + 12, &(uint32_t){1}, 4);
	}
	expect_damage(dir, c, len, "overflow run cut to one page", "cannot hold");

	memcpy(c, orig, len);
	m = get64(orig + PSIZE + 16 + 128) > get64(orig + 16 + 128) ? orig + PSIZE + 16 : orig + 16;
	freeroot = get64(m + 24 + 40);
	ck_assert_uint_eq(get16(m + 24 + 6), 1); /* free list: one leaf */
	{
		unsigned char *p = page_of(c, freeroot), *nd = p + get16(p + 16);
		unsigned char *ids = nd + 8 + get16(nd + 6);
		ck_assert_uint_eq(get16(nd + 4), 0);
		ck_assert_uint_ge(get64(ids), 1);
		put64(ids + 8, leaf); /* a live leaf listed as free */
	}
	expect_damage(dir, c, len, "live page in the free list", "used twice");

	memcpy(c, orig, len);
	{
		size_t at = (size_t)(m - orig) + 128;
		put64(c + at, get64(c + at) + 1);
	}
	expect_damage(dir, c, len, "meta transaction id off by one", "parity");

	free(orig);
	free(c);
	rm_rf(root);
}
END_TEST

/* ---- concurrency --------------------------------------------------------- */

#define CC_BATCH 16
#define CC_BATCHES 60

typedef struct {
	hydb_db *db;
	int exact_only;
	volatile int done;
	unsigned errors, torn, searches;
} cc_shared;

static void cc_record(expected_rec *e, unsigned b, unsigned i)
{
	expect_rec(e, b * CC_BATCH + i, b + 1, i);
	snprintf(e->key, sizeof e->key, "b%u-%u", b, i);
}

/* One snapshot must show whole batches only: every batch tag it returns
 * occurs CC_BATCH times. */
static int snapshot_whole(hydb_db *db, unsigned *torn, int exact_only)
{
	hydb_search_options so;
	hydb_results *r;
	unsigned per[CC_BATCHES] = {0};
	expected_rec q;
	int rc;
	hydb_search_options_init(&so);
	so.k = CC_BATCH * CC_BATCHES + 10;
	so.exact = 1;
	cc_record(&q, 0, 0);
	if ((rc = hydb_search(db, &r, q.vec, &so)) < 0)
		return rc;
	for (size_t i = 0; i < r->n; i++) {
		unsigned b = (unsigned)atoi(r->keys[i] + 1);
		if (b < CC_BATCHES)
			per[b]++;
	}
	for (unsigned b = 0; b < CC_BATCHES; b++)
		*torn += per[b] != 0 && per[b] != CC_BATCH;
	hydb_results_free(r);
	if (exact_only)
		return 0;
	so.exact = 0;
	so.k = 10;
	if ((rc = hydb_search(db, &r, q.vec, &so)) < 0)
		return rc;
	hydb_results_free(r);
	return 0;
}

static void *cc_reader(void *vsh)
{
	cc_shared *sh = vsh;
	unsigned torn = 0, errors = 0, n = 0;
	while (!__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE)) {
		if (snapshot_whole(sh->db, &torn, sh->exact_only) < 0) {
			if (errors++ == 0)
				fprintf(stderr, "reliability: reader: %s\n", hydb_last_error());
		}
		n++;
	}
	__atomic_add_fetch(&sh->torn, torn, __ATOMIC_RELAXED);
	__atomic_add_fetch(&sh->errors, errors, __ATOMIC_RELAXED);
	__atomic_add_fetch(&sh->searches, n, __ATOMIC_RELAXED);
	return NULL;
}

static int cc_write_batch(hydb_db *db, unsigned b)
{
	static expected_rec ex[CC_BATCH];
	hydb_record recs[CC_BATCH];
	memset(recs, 0, sizeof recs);
	for (unsigned i = 0; i < CC_BATCH; i++) {
		cc_record(&ex[i], b, i);
		recs[i].key = ex[i].key;
		recs[i].vector = ex[i].vec;
		recs[i].caption = ex[i].caption;
	}
	return hydb_put(db, recs, CC_BATCH, NULL);
}

/* A reader process with a handle of its own, until the pipe closes. Exit
 * status: 0 clean, 5 torn snapshot seen, 6 errors. */
static pid_t cc_reader_process(const char *path, int *ctl, int sibling_ctl)
{
	int fds[2];
	pid_t pid;
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		hydb_open_options o;
		hydb_db *db;
		unsigned torn = 0, errors = 0;
		char c;
		close(fds[1]);
		if (sibling_ctl >= 0)
			close(sibling_ctl); /* or the sibling never sees its pipe close */
		fcntl(fds[0], F_SETFL, O_NONBLOCK);
		hydb_open_options_init(&o);
		o.flags = HYDB_OPEN_RDONLY;
		if (hydb_open(&db, path, &o) < 0)
			_exit(3);
		while (read(fds[0], &c, 1) < 0 && errno == EAGAIN)
			errors += snapshot_whole(db, &torn, 0) < 0;
		hydb_close(db);
		_exit(torn ? 5 : errors ? 6 : 0);
	}
	close(fds[0]);
	*ctl = fds[1];
	return pid;
}

/* 8 threads search one handle while this thread writes batches; two more
 * processes read through handles of their own. With grow_from set the map
 * starts that small, so that it grows under the readers. */
static void threads_share_a_handle(const char *initial_map, int exact_only)
{
	const char *root = make_tmpdir("threads");
	char path[300];
	pthread_t th[8];
	static cc_shared sh;
	hydb_open_options o;
	MDB_envinfo info;
	uint64_t n;
	size_t map0;
	int ctl[2];
	pid_t readers[2];

	memset(&sh, 0, sizeof sh);
	sh.exact_only = exact_only;
	snprintf(path, sizeof path, "%s/db", root);
	hydb_close(open_db(path, HYDB_OPEN_CREATE));
	for (int i = 0; i < 2; i++)
		readers[i] = cc_reader_process(path, &ctl[i], i ? ctl[0] : -1);
	hydb_open_options_init(&o);
	if (initial_map)
		o.initial_map = (size_t)strtoull(initial_map, NULL, 10);
	ck_assert_int_eq(hydb_open(&sh.db, path, &o), 0);
	mdb_env_info(hydb_store_env(hydb_db_store(sh.db)), &info);
	map0 = info.me_mapsize;
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, cc_reader, &sh), 0);
	for (unsigned b = 0; b < CC_BATCHES; b++)
		ck_assert_msg(cc_write_batch(sh.db, b) == 0, "batch %u: %s", b, hydb_last_error());
	__atomic_store_n(&sh.done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 2; i++)
		stop_child(readers[i], ctl[i]);
	mdb_env_info(hydb_store_env(hydb_db_store(sh.db)), &info);
	fprintf(stderr, "reliability: threads (%s): %u searches by 8 threads during %u batches, %u torn "
		"snapshots, %u errors; map %zu -> %zu bytes\n", exact_only ? "exact" : "index and exact",
		sh.searches, CC_BATCHES, sh.torn, sh.errors, map0, info.me_mapsize);
	if (initial_map)
		ck_assert_uint_gt(info.me_mapsize, map0);
	ck_assert_uint_eq(sh.torn, 0);
	ck_assert_uint_eq(sh.errors, 0);
	ck_assert_uint_gt(sh.searches, 8);
	ck_assert_int_eq(hydb_count(sh.db, &n), 0);
	ck_assert_uint_eq(n, CC_BATCH * CC_BATCHES);
	ck_assert_uint_eq(full_check(sh.db), 0);
	hydb_close(sh.db);
	rm_rf(root);
}

START_TEST(test_threads_share_a_handle)
{
	threads_share_a_handle(NULL, 0);
}
END_TEST

/* Growth waits for every open transaction of the process (it used to wait
 * forever behind back-to-back searches), and index searches after a growth
 * must not read through block pointers cached from the old mapping. */
START_TEST(test_growth_under_readers)
{
	threads_share_a_handle("262144", 0);
}
END_TEST

/* The reader table holds 510 snapshots; one more is a clear EBUSY, not a
 * hang, and a second handle on the same database in one process is EBUSY
 * too (LMDB forbids opening one environment twice in a process). */
START_TEST(test_reader_limit_and_double_open)
{
	const char *root = make_tmpdir("readers");
	char path[300];
	static MDB_txn *txns[1100];
	hydb_db *db, *db2 = NULL;
	hydb_store *st;
	unsigned ok = 0;
	int rc = 0;

	snprintf(path, sizeof path, "%s/db", root);
	db = open_db(path, HYDB_OPEN_CREATE);
	st = hydb_db_store(db);
	while (ok < 1100 && (rc = hydb_store_read_begin(st, &txns[ok])) == 0)
		ok++;
	ck_assert_int_eq(rc, HYDB_EBUSY);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "too many concurrent readers"));
	ck_assert_uint_ge(ok, 510);
	fprintf(stderr, "reliability: %u concurrent snapshots, then: %s\n", ok, hydb_last_error());
	for (unsigned i = 0; i < ok; i++)
		hydb_store_read_end(st, txns[i]);
	put_seeded(db, 0, 4);
	ck_assert_int_eq(hydb_open(&db2, path, NULL), HYDB_EBUSY);
	ck_assert_ptr_null(db2);
	hydb_close(db);
	rm_rf(root);
}
END_TEST

/* Opening verifies the data file while a writer in another process may
 * commit: pages it reuses must never make an intact file look damaged. */
START_TEST(test_open_while_writing)
{
	const char *root = make_tmpdir("openw");
	char path[300];
	unsigned opens = 0, failures = 0;
	uint64_t n = 0;
	int fds[2], status;
	hydb_db *db;
	pid_t pid;

	snprintf(path, sizeof path, "%s/db", root);
	db = open_db(path, HYDB_OPEN_CREATE);
	ck_assert_int_eq(cc_write_batch(db, 0), 0);
	hydb_close(db);
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* the writer, in a process of its own */
		close(fds[0]);
		db = open_db(path, 0);
		for (unsigned b = 1; b <= CC_BATCHES; b++) {
			if (cc_write_batch(db, b) != 0)
				_exit(2);
			if (b % 4 == 0) {
				/* deletes free pages, which later commits reuse */
				char key[32];
				snprintf(key, sizeof key, "b%u-0", b - 1);
				if (hydb_delete_key(db, key) != 0)
					_exit(3);
			}
		}
		hydb_close(db);
		_exit(0);
	}
	close(fds[1]);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		hydb_open_options o;
		hydb_open_options_init(&o);
		o.flags = HYDB_OPEN_RDONLY;
		if (hydb_open(&db, path, &o) == 0) {
			hydb_close(db);
		} else {
			failures++;
			fprintf(stderr, "reliability: open during writes failed: %s\n", hydb_last_error());
		}
		opens++;
	}
	close(fds[0]);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	db = open_db(path, 0);
	ck_assert_int_eq(hydb_count(db, &n), 0);
	ck_assert_uint_eq(n, (CC_BATCHES + 1) * CC_BATCH - CC_BATCHES / 4);
	hydb_close(db);
	fprintf(stderr, "reliability: %u verified opens during %u committed batches, %u failed\n",
		opens, CC_BATCHES, failures);
	ck_assert_uint_ge(opens, 10);
	ck_assert_uint_eq(failures, 0);
	rm_rf(root);
}
END_TEST

Suite *crash_suite(void);
Suite *crash_suite(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("kill");
	tcase_set_timeout(tc, 240);
	tcase_add_checked_fixture(tc, NULL, remove_tmproot);
	tcase_add_test(tc, test_durable_by_default);
	tcase_add_test(tc, test_kill_reader);
	tcase_add_test(tc, test_kill_writer);
	suite_add_tcase(s, tc);
	tc = tcase_create("concurrency");
	tcase_set_timeout(tc, 240);
	tcase_add_checked_fixture(tc, NULL, remove_tmproot);
	tcase_add_test(tc, test_threads_share_a_handle);
	tcase_add_test(tc, test_growth_under_readers);
	tcase_add_test(tc, test_reader_limit_and_double_open);
	tcase_add_test(tc, test_open_while_writing);
	suite_add_tcase(s, tc);
	tc = tcase_create("corrupt");
	tcase_set_timeout(tc, 240);
	tcase_add_checked_fixture(tc, NULL, remove_tmproot);
	tcase_add_test(tc, test_damaged_files);
	tcase_add_test(tc, test_damaged_structure);
	tcase_add_test(tc, test_structure_faults_named);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(crash_suite());
	int failed;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
