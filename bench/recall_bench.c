/*
 * recall_bench.c - hydb's HNSW on a data family (HySAC-like by default):
 * recall@1/10/100 and QPS
 * (1 and 2 threads) at several ef, build and open time, bytes per vector,
 * and filtered search at radius selectivities 0.1% ... 90%.
 *
 *   recall_bench -w WORKDIR -o OUT.csv [-f FAMILY] [-i INPUT] [-n N] [-q NQ]
 *                [-d D] [-c C] [-x] [-t BUILD_THREADS] [-r] [-e EF,EF,...]
 *                [-F] [-D] [-T]
 *
 * -f picks the data family (bench/recall_data.h: hysac, wide, tree, iso,
 * wordnet; wordnet reads its vectors from -i, made by bench/wordnet_embed.py,
 * and -n 0 takes every row but the queries).
 * -x walks the float32 vectors instead of the half-precision copy. -r reuses
 * the database WORKDIR/db-N left by an earlier run instead of building it
 * (for measuring search on one graph), -e replaces the list of ef values,
 * -F skips the filtered searches, -D then removes 30% of the points from
 * the graph in one batch, re-inserts them and measures recall again
 * (rows "hydb-reinserted"; the database is changed). -T then lets the
 * database measure its own recall curve (hydb_tune) and searches without
 * ef through hydb_search at the default and other targets (rows
 * "hydb-auto-TARGET"). -G only makes the data set (for the PostgreSQL
 * test and bench). Nodes no layer-0 path reaches are
 * counted after the build: they cap recall whatever ef is. The data
 * set and its ground truth are cached in WORKDIR/data-N-D-NQ-C (hysac) or
 * WORKDIR/data-FAMILY-N-D-NQ-C for the peers
 * (bench/hnswlib_peer.cpp, bench/recall_faiss.py).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/recall_data.h"
#include "base/lorentz_kernel.h"
#include "index/hnsw.h"
#include "storage/store.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static double build_cpu;

static void die(const char *what)
{
	fprintf(stderr, "recall_bench: %s: %s\n", what, hydb_last_error());
	exit(1);
}

struct bench {
	struct rd_set s;
	hydb_store *st;
	hydb_index *ix;
	int32_t *slot2row;
	uint32_t *slots;
	size_t batch_from, batch_to;
	unsigned flags, threads;
	FILE *csv;
	size_t efs[32], nef;
};

/* ---- build ------------------------------------------------------------- */

static int put_batch(hydb_store *st, MDB_txn *txn, void *ctx)
{
	struct bench *b = ctx;
	char key[32];
	for (size_t i = b->batch_from; i < b->batch_to; i++) {
		hydb_record r = {.key = key, .vector = b->s.base + i * b->s.d,
				 .modality = b->s.attr[i].modality,
				 .label = b->s.attr[i].label};
		uint64_t id;
		int replaced;
		snprintf(key, sizeof key, "p%zu", i);
		FORWARD_IF_ERROR(hydb_store_put(st, txn, &r, b->s.attr[i].radius,
						&id, &b->slots[i], &replaced));
	}
	return 0;
}

static int open_index(hydb_store *st, MDB_txn *txn, void *ctx)
{
	struct bench *b = ctx;
	hydb_index_close(b->ix);
	b->ix = NULL;
	return hydb_index_open_flags(&b->ix, st, txn, 16, 200, b->flags);
}

static int insert_batch(hydb_store *st, MDB_txn *txn, void *ctx)
{
	struct bench *b = ctx;
	return hydb_index_insert(b->ix, txn, b->slots + b->batch_from,
				 b->batch_to - b->batch_from);
}

static void in_batches(struct bench *b, hydb_write_fn fn, size_t per,
		       const char *what)
{
	for (size_t i = 0; i < b->s.n; i += per) {
		b->batch_from = i;
		b->batch_to = i + per < b->s.n ? i + per : b->s.n;
		if (hydb_store_write(b->st, fn, b) < 0)
			die(what);
	}
}

static void open_store(struct bench *b, const char *path, int create)
{
	hydb_open_options o;
	memset(&o, 0, sizeof o);
	o.version = HYDB_OPEN_OPTIONS_VERSION;
	o.flags = create ? HYDB_OPEN_CREATE | HYDB_OPEN_NOSYNC : 0;
	o.dim = b->s.d;
	o.curvature = b->s.c;
	if (hydb_store_open(&b->st, path, &o) < 0)
		die(path);
	if (hydb_store_dim(b->st) != b->s.d) {
		fprintf(stderr, "recall_bench: %s: holds %zu dimensions, the "
			"data %zu\n", path, hydb_store_dim(b->st), b->s.d);
		exit(1);
	}
}

/* Puts b->slots in radius order for the insert calls; returns the slots
 * in row order, which the rest of the bench indexes by row. */
static uint32_t *radius_sorted_slots(struct bench *b)
{
	float *r = malloc(b->s.n * sizeof *r);
	uint32_t *order = malloc(b->s.n * sizeof *order);
	uint32_t *sorted = malloc(b->s.n * sizeof *sorted);
	if (!r || !order || !sorted)
		die("radius order");
	for (size_t i = 0; i < b->s.n; i++)
		r[i] = b->s.attr[i].radius;
	if (hydb_hnsw_radius_order(r, b->s.n, order) < 0)
		die("radius order");
	for (size_t i = 0; i < b->s.n; i++)
		sorted[i] = b->slots[order[i]];
	uint32_t *rows = b->slots;
	b->slots = sorted;
	free(r);
	free(order);
	return rows;
}

static double build(struct bench *b, const char *path)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		exit(1);
	open_store(b, path, 1);
	b->slots = malloc(b->s.n * sizeof *b->slots);
	in_batches(b, put_batch, 5000, "storing records");
	if (hydb_store_write(b->st, open_index, b) < 0)
		die("creating the index");
	if (b->threads)
		hydb_index_set_threads(b->ix, b->threads);
	double t0 = now(), c0 = cpu_now();
	/* As hydb import stores a file: all rows nearest the origin first,
	 * then in insert calls of 20,000 (HYDB_BENCH_INSERT_BATCH sets the
	 * size; HYDB_BENCH_FILE_ORDER=1 keeps the rows' own order, each call
	 * still sorted within itself, as imports were before). */
	const char *ib = getenv("HYDB_BENCH_INSERT_BATCH");
	const char *fo = getenv("HYDB_BENCH_FILE_ORDER");
	uint32_t *saved = NULL;
	if (!(fo && atoi(fo)))
		saved = radius_sorted_slots(b);
	in_batches(b, insert_batch, ib && atol(ib) > 0 ? (size_t)atol(ib) : 20000,
		   "building the index");
	if (saved) {
		free(b->slots);
		b->slots = saved;
	}
	double t = now() - t0;
	build_cpu = cpu_now() - c0;
	uint32_t max = 0;
	for (size_t i = 0; i < b->s.n; i++)
		max = b->slots[i] > max ? b->slots[i] : max;
	b->slot2row = malloc(((size_t)max + 1) * sizeof *b->slot2row);
	for (size_t i = 0; i < b->s.n; i++)
		b->slot2row[b->slots[i]] = (int32_t)i;
	return t;
}

/* Rows of an existing database: the bench stores row i under key "p<i>". */
static void map_rows(struct bench *b)
{
	MDB_txn *txn;
	char key[32];
	uint32_t max = 0;
	b->slots = malloc(b->s.n * sizeof *b->slots);
	if (hydb_store_read_begin(b->st, &txn) < 0)
		die("reading the database");
	for (size_t i = 0; i < b->s.n; i++) {
		uint64_t id;
		snprintf(key, sizeof key, "p%zu", i);
		if (hydb_store_lookup_key(b->st, txn, key, &id) < 0 ||
		    hydb_store_record_slot(b->st, txn, id, &b->slots[i]) < 0)
			die(key);
		max = b->slots[i] > max ? b->slots[i] : max;
	}
	if (hydb_index_open(&b->ix, b->st, txn, 0, 0) < 0)
		die("opening the index");
	hydb_store_read_end(b->st, txn);
	b->slot2row = malloc(((size_t)max + 1) * sizeof *b->slot2row);
	for (size_t i = 0; i < b->s.n; i++)
		b->slot2row[b->slots[i]] = (int32_t)i;
}

static size_t unreachable(struct bench *b)
{
	MDB_txn *txn;
	size_t n = 0;
	if (hydb_store_read_begin(b->st, &txn) < 0 ||
	    hydb_index_unreachable(b->ix, txn, NULL, NULL, &n) < 0)
		die("reachability");
	hydb_store_read_end(b->st, txn);
	return n;
}

/* ---- search ------------------------------------------------------------ */

struct run {
	struct bench *b;
	size_t k, ef, from, to;
	const hydb_filter *f;
	int32_t *rows; /* nq x k result rows, -1 padded */
	const char *plan;
};

static void *run_queries(void *arg)
{
	struct run *r = arg;
	struct bench *b = r->b;
	hydb_hit hits[RD_GT_K];
	for (size_t q = r->from; q < r->to; q++) {
		MDB_txn *txn;
		size_t n;
		if (hydb_store_read_begin(b->st, &txn) < 0 ||
		    hydb_index_search(b->ix, txn, b->s.query + q * b->s.d, r->k,
				      r->ef, r->f, hits, &n, &r->plan) < 0)
			die("search");
		hydb_store_read_end(b->st, txn);
		for (size_t i = 0; i < r->k; i++)
			r->rows[q * r->k + i] =
				i < n ? b->slot2row[hits[i].slot] : -1;
	}
	return NULL;
}

/* Wall-clock QPS over all queries with nthreads threads. */
static double timed(struct run *proto, int nthreads)
{
	pthread_t t[2];
	struct run r[2] = {*proto, *proto};
	size_t nq = proto->b->s.nq;
	double t0 = now();
	r[0].from = 0, r[0].to = nthreads > 1 ? nq / 2 : nq;
	r[1].from = nq / 2, r[1].to = nq;
	if (nthreads > 1)
		pthread_create(&t[0], NULL, run_queries, &r[1]);
	run_queries(&r[0]);
	if (nthreads > 1)
		pthread_join(t[0], NULL);
	proto->plan = r[0].plan;
	return (double)nq / (now() - t0);
}

static void unfiltered(struct bench *b, const char *name, double build_s,
		       double bpv, double open_s)
{
	const size_t *efs = b->efs;
	size_t nq = b->s.nq;
	int32_t *rows = malloc(nq * RD_GT_K * sizeof *rows);
	/* One untimed pass first: the graph was just reopened, and the first
	 * pass faults its mapping in (hnswlib's peer searches the arrays it
	 * built). Fresh-process costs are measured apart: "open + first
	 * query" here, the first 300 queries in README's scale section. */
	struct run warm = {b, 10, b->nef ? efs[0] : 10, 0, nq, NULL, rows, NULL};
	run_queries(&warm);
	for (size_t e = 0; e < b->nef; e++) {
		struct run r = {b, 10, efs[e], 0, 0, NULL, rows, NULL};
		double q1 = timed(&r, 1), q2 = timed(&r, 2);
		double r1 = rd_recall(rows, 10, b->s.gt, RD_GT_K, nq, 1);
		double r10 = rd_recall(rows, 10, b->s.gt, RD_GT_K, nq, 10);
		struct run h = {b, 100, efs[e] > 100 ? efs[e] : 100, 0, nq,
				NULL, rows, NULL};
		run_queries(&h);
		double r100 = rd_recall(rows, 100, b->s.gt, RD_GT_K, nq, 100);
		fprintf(b->csv, "%s,%zu,1,%.4f,%.4f,%.4f,%.1f,%.1f,%.3f,%.0f,%.4f\n",
			name, efs[e], r1, r10, r100, q1, q2, build_s, bpv, open_s);
		printf("%s ef=%-4zu recall@1 %.4f @10 %.4f @100 %.4f  QPS %8.1f "
		       "(2 threads %8.1f)\n",
		       name, efs[e], r1, r10, r100, q1, q2);
	}
	free(rows);
}

static void filtered(struct bench *b)
{
	size_t nq = b->s.nq;
	int32_t *rows = malloc(nq * 10 * sizeof *rows);
	for (int i = 0; i < RD_NSEL; i++) {
		hydb_filter f = {0, b->s.bound[i], 0, 0};
		struct run r = {b, 10, 64, 0, 0, &f, rows, NULL};
		double q1 = timed(&r, 1);
		double r10 = rd_recall(rows, 10,
				       b->s.gtf + (size_t)i * nq * RD_GTF_K,
				       RD_GTF_K, nq, 10);
		fprintf(b->csv, "hydb-filtered,64,%g,,%.4f,,%.1f,,,,\n",
			b->s.sel[i], r10, q1);
		printf("hydb filtered sel %5.3f%% recall@10 %.4f QPS %8.1f (%s)\n",
		       100 * b->s.sel[i], r10, q1, r.plan);
	}
	free(rows);
}

/* ---- delete and re-insert ---------------------------------------------- */

struct churn_ctx {
	struct bench *b;
	uint32_t *slots;
	size_t n;
};

static int churn_remove(hydb_store *st, MDB_txn *txn, void *ctx)
{
	struct churn_ctx *c = ctx;
	(void)st;
	return hydb_index_remove_many(c->b->ix, txn, c->slots, c->n);
}

static int churn_insert(hydb_store *st, MDB_txn *txn, void *ctx)
{
	struct churn_ctx *c = ctx;
	(void)st;
	return hydb_index_insert(c->b->ix, txn, c->slots, c->n);
}

/* 30% of the points, spread over the set, leave the graph in one batch
 * and come back: recall must stay within 0.01 of the fresh build. */
static void churn(struct bench *b)
{
	struct churn_ctx c = {b, malloc(b->s.n * sizeof *c.slots), 0};
	if (b->threads)
		hydb_index_set_threads(b->ix, b->threads);
	for (size_t i = 0; i < b->s.n; i++)
		if ((uint32_t)(i * 2654435761u) % 1000 < 300)
			c.slots[c.n++] = b->slots[i];
	double t0 = now();
	if (hydb_store_write(b->st, churn_remove, &c) < 0)
		die("removing 30%");
	double t1 = now();
	if (hydb_store_write(b->st, churn_insert, &c) < 0)
		die("re-inserting");
	double t2 = now();
	printf("hydb churn: %zu of %zu nodes removed in one batch in %.2f s, "
	       "re-inserted in %.2f s; %zu unreachable after\n",
	       c.n, b->s.n, t1 - t0, t2 - t1, unreachable(b));
	unfiltered(b, "hydb-reinserted", t2 - t1, 0, 0);
	free(c.slots);
}

/* ---- the self-measured default beam (src/tune.c) ------------------------ */

/* Searches through the public API with ef = 0 at several recall targets
 * (0: the default), after the database measured its curve: rows
 * "hydb-auto-TARGET" with the beam picked, recall and QPS (1 thread,
 * through hydb_search, so records are resolved too) and the measuring time
 * in the build_s column. */
static void auto_ef(struct bench *b, const char *path)
{
	static const double targets[] = {0, 0.9, 0.95, 0.99};
	hydb_db *db;
	hydb_tune_info t;
	hydb_index_close(b->ix);
	hydb_store_close(b->st);
	b->ix = NULL, b->st = NULL;
	if (hydb_open(&db, path, NULL) < 0)
		die("hydb_open");
	double t0 = now();
	if (hydb_tune(db, 0, &t) < 0)
		die("hydb_tune");
	double tune_s = now() - t0;
	printf("hydb tune: %zu self-queries in %.2f s:", t.sample, tune_s);
	for (size_t i = 0; i < t.n; i++)
		printf(" %zu:%.4f", t.ef[i], t.recall[i]);
	printf("\n");
	size_t nq = b->s.nq;
	int32_t *rows = malloc(nq * 10 * sizeof *rows);
	for (size_t k = 0; k < sizeof targets / sizeof *targets; k++) {
		hydb_search_options o;
		hydb_search_options_init(&o);
		o.target_recall = targets[k];
		double q0 = now();
		for (size_t q = 0; q < nq; q++) {
			hydb_results *r;
			if (hydb_search(db, &r, b->s.query + q * b->s.d, &o) < 0)
				die("hydb_search");
			for (size_t i = 0; i < 10; i++)
				rows[q * 10 + i] = i < r->n ? atoi(r->keys[i] + 1) : -1;
			hydb_results_free(r);
		}
		double qps = (double)nq / (now() - q0);
		double r1 = rd_recall(rows, 10, b->s.gt, RD_GT_K, nq, 1);
		double r10 = rd_recall(rows, 10, b->s.gt, RD_GT_K, nq, 10);
		double tg = targets[k] > 0 ? targets[k] : HYDB_DEFAULT_RECALL;
		size_t ef = hydb_tune_pick(&t, tg, 10);
		fprintf(b->csv, "hydb-auto-%g,%zu,1,%.4f,%.4f,,%.1f,,%.3f,,\n",
			tg, ef, r1, r10, qps, tune_s);
		printf("hydb default search (target %.2f%s): ef %zu recall@10 "
		       "%.4f QPS %8.1f (hydb_search)\n",
		       tg, targets[k] > 0 ? "" : ", the default", ef, r10, qps);
	}
	free(rows);
	hydb_close(db);
}

/* Cold open: store, index and the first answer. */
static double reopen(struct bench *b, const char *path)
{
	hydb_index_close(b->ix);
	hydb_store_close(b->st);
	b->ix = NULL;
	double t0 = now();
	MDB_txn *txn;
	hydb_hit h[10];
	size_t n;
	open_store(b, path, 0);
	if (hydb_store_read_begin(b->st, &txn) < 0 ||
	    hydb_index_open(&b->ix, b->st, txn, 0, 0) < 0 ||
	    hydb_index_search(b->ix, txn, b->s.query, 10, 64, NULL, h, &n,
			      NULL) < 0)
		die("reopen");
	hydb_store_read_end(b->st, txn);
	return now() - t0;
}

int main(int argc, char **argv)
{
	struct bench b;
	size_t n = 100000, nq = 1000, d = 768;
	double c = 1.0;
	const char *work = "bench/results", *out = NULL, *family = "hysac";
	const char *input = NULL;
	int opt, reuse = 0, nofilter = 0, churned = 0, autoef = 0, gen_only = 0;
	static const size_t def_efs[] = {10, 16, 24, 32, 48, 64, 96, 128, 192,
					 256, 512};
	memset(&b, 0, sizeof b);
	b.nef = sizeof def_efs / sizeof *def_efs;
	memcpy(b.efs, def_efs, sizeof def_efs);
	while ((opt = getopt(argc, argv, "f:i:n:q:d:c:w:o:xt:re:FDTG")) != -1) {
		switch (opt) {
		case 'f': family = optarg; break;
		case 'i': input = optarg; break;
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'q': nq = strtoul(optarg, NULL, 10); break;
		case 'd': d = strtoul(optarg, NULL, 10); break;
		case 'c': c = strtod(optarg, NULL); break;
		case 'w': work = optarg; break;
		case 'o': out = optarg; break;
		case 'x': b.flags |= HYDB_HNSW_NO_COMPACT; break;
		case 't': b.threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': reuse = 1; break;
		case 'F': nofilter = 1; break;
		case 'D': churned = 1; break;
		case 'T': autoef = 1; break;
		case 'G': gen_only = 1; break;
		case 'e':
			b.nef = 0;
			for (char *p = optarg; *p && b.nef < 32; p += *p == ',')
				b.efs[b.nef++] = strtoul(p, &p, 10);
			break;
		default:
			fprintf(stderr, "usage: recall_bench -w DIR -o CSV [-n N] "
					"[-f FAMILY] [-i INPUT] [-q NQ] [-d D] [-c C] [-x] [-t T] [-r] "
					"[-e EF,...] [-F] [-D] [-T] [-G]\n");
			return 2;
		}
	}
	char data[4096], db[4096];
	int hysac = !strcmp(family, "hysac");
	snprintf(data, sizeof data, "%s/data-%s%s%zu-%zu-%zu-%g", work,
		 hysac ? "" : family, hysac ? "" : "-", n, d, nq, c);
	double t0 = now();
	if (rd_make_family(&b.s, data, family, input, n, d, nq, c) < 0)
		return 1;
	n = b.s.n;
	/* Named as its data: tree at 2 and 16 dimensions share a family, and
	 * the number of held-out queries changes the rows. */
	snprintf(db, sizeof db, "%s/db-%s%s%zu-%zu-%zu-%g%s", work,
		 hysac ? "" : family, hysac ? "" : "-", n, d, nq, c,
		 b.flags ? "-f32" : "");
	printf("data %s (%s): N=%zu D=%zu queries=%zu c=%g (%.1f s), kernel %s\n",
	       data, family, n, d, nq, c, now() - t0,
	       hydb_kernel_name(hydb_kernel_level()));
	if (gen_only)
		return 0;
	b.csv = out ? fopen(out, "a") : stdout;
	if (!b.csv)
		return 1;
	double build_s = 0;
	if (reuse) {
		open_store(&b, db, 0);
		map_rows(&b);
	} else {
		build_s = build(&b, db);
	}
	MDB_txn *txn;
	hydb_index_stats st;
	if (hydb_store_read_begin(b.st, &txn) < 0 ||
	    hydb_index_stats_get(b.ix, txn, &st) < 0)
		die("stats");
	hydb_store_read_end(b.st, txn);
	double open_s = reopen(&b, db);
	printf("hydb build %.2f s wall, %.2f s CPU (M=16 efC=200, %s walk), "
	       "%.0f bytes/vector of graph%s, open + first query %.4f s\n",
	       build_s, build_cpu, st.compact ? "half-precision" : "float32",
	       st.bytes_per_vector, st.compact ? " + half copy" : "", open_s);
	printf("hydb graph: %zu of %zu nodes unreachable from the entry "
	       "point\n", unreachable(&b), b.s.n);
	unfiltered(&b, "hydb", build_s, st.bytes_per_vector, open_s);
	if (!nofilter)
		filtered(&b);
	if (churned)
		churn(&b);
	if (autoef)
		auto_ef(&b, db);
	if (out)
		fclose(b.csv);
	hydb_index_close(b.ix);
	hydb_store_close(b.st);
	free(b.slots);
	free(b.slot2row);
	rd_free(&b.s);
	return 0;
}
