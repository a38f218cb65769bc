/*
 * cone_bench.c - entailment-cone filters on a data family: recall@10 of the
 * index against exact search for HYDB_CONE_WITHIN (the query's generic
 * parents) and HYDB_CONE_CONTAINS (its specific children), at the
 * database's own beam and at fixed ones, with the planner's choices and the
 * time per query of each side, through the public API only.
 *
 *   cone_bench -f FAMILY [-i INPUT] [-n N] [-d D] [-q NQ] [-w DIR]
 *
 * FAMILY is one of bench/recall_data.h's; "wordnet" reads the embedding
 * bench/wordnet_embed.py writes (-i), whose held-out nouns are the queries:
 * their parents are hypernyms, their children hyponyms. One line a row:
 * family, cone, ef, share of queries with a match, recall@10 over those,
 * mean matches held (of 10), share of walks,
 * index and exact milliseconds per query.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/recall_data.h"
#include "hydb.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what)
{
	fprintf(stderr, "cone_bench: %s: %s\n", what, hydb_last_error());
	exit(1);
}

static hydb_db *load(const struct rd_set *s, const char *path)
{
	hydb_db *db;
	hydb_open_options o;
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		exit(1);
	hydb_open_options_init(&o);
	o.flags = HYDB_OPEN_CREATE | HYDB_OPEN_NOSYNC;
	o.dim = s->d;
	o.curvature = s->c;
	if (hydb_open(&db, path, &o) < 0)
		die(path);
	enum { BATCH = 5000 };
	hydb_record *r = calloc(BATCH, sizeof *r);
	char (*keys)[24] = malloc(24 * (size_t)BATCH);
	for (size_t i0 = 0; i0 < s->n; i0 += BATCH) {
		size_t m = s->n - i0 < BATCH ? s->n - i0 : BATCH;
		for (size_t j = 0; j < m; j++) {
			snprintf(keys[j], 24, "p%zu", i0 + j);
			r[j] = (hydb_record){.key = keys[j], .vector = s->base + (i0 + j) * s->d};
		}
		if (hydb_put(db, r, m, NULL) < 0)
			die("storing the points");
	}
	free(keys);
	free(r);
	return db;
}

struct row {
	double hit, want, held, walks, t_index, t_exact;
	size_t answered; /* queries with at least one match */
};

static hydb_results *search(hydb_db *db, const float *q, unsigned cone, size_t ef,
			    int exact, double *t)
{
	hydb_search_options o;
	hydb_results *r;
	hydb_search_options_init(&o);
	o.k = 10;
	o.ef = ef;
	o.cone = cone;
	o.exact = exact;
	double t0 = now();
	if (hydb_search(db, &r, q, &o) < 0)
		die("search");
	*t += now() - t0;
	return r;
}

static void measure(hydb_db *db, const struct rd_set *s, unsigned cone, size_t ef,
		    struct row *w)
{
	memset(w, 0, sizeof *w);
	for (size_t q = 0; q < s->nq; q++) {
		const float *x = s->query + q * s->d;
		hydb_results *ex = search(db, x, cone, 0, 1, &w->t_exact);
		hydb_results *ix = search(db, x, cone, ef, 0, &w->t_index);
		for (size_t i = 0; i < ex->n; i++)
			for (size_t j = 0; j < ix->n; j++)
				w->hit += ex->ids[i] == ix->ids[j];
		w->want += (double)ex->n;
		w->answered += ex->n > 0;
		w->held += (double)ix->n;
		w->walks += strcmp(ix->plan, "hnsw-filtered") == 0;
		hydb_results_free(ex);
		hydb_results_free(ix);
	}
}

int main(int argc, char **argv)
{
	size_t n = 20000, nq = 200, d = 16;
	const char *work = "bench/results", *family = "tree", *input = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "f:i:n:q:d:w:")) != -1) {
		switch (opt) {
		case 'f': family = optarg; break;
		case 'i': input = optarg; break;
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'q': nq = strtoul(optarg, NULL, 10); break;
		case 'd': d = strtoul(optarg, NULL, 10); break;
		case 'w': work = optarg; break;
		default:
			fprintf(stderr, "usage: cone_bench -f FAMILY [-i INPUT] [-n N] [-d D] "
					"[-q NQ] [-w DIR]\n");
			return 1;
		}
	}
	struct rd_set s;
	char data[4096], path[4096];
	snprintf(data, sizeof data, "%s/data-%s-%zu-%zu-%zu-1", work, family, n, d, nq);
	snprintf(path, sizeof path, "%s/db-cone-%s", work, family);
	mkdir(work, 0755); /* the data writer makes only the last level */
	if (rd_make_family(&s, data, family, input, n, d, nq, 1.0) < 0)
		return 1;
	hydb_db *db = load(&s, path);
	static const unsigned cones[] = {HYDB_CONE_WITHIN, HYDB_CONE_CONTAINS};
	static const size_t efs[] = {0, 64, 128, 256};
	/* recall is over the queries that have matches; the share of those is
	 * printed, since a cone can be empty (distance-trained embeddings put
	 * few points in each other's cones) */
	printf("family,n,d,cone,ef,queries_with_matches,recall10,held_of_10,walk_share,"
	       "index_ms,exact_ms\n");
	for (int c = 0; c < 2; c++)
		for (size_t e = 0; e < sizeof efs / sizeof *efs; e++) {
			struct row w;
			measure(db, &s, cones[c], efs[e], &w);
			printf("%s,%zu,%zu,%s,%zu,%.2f,%.4f,%.2f,%.2f,%.3f,%.3f\n", family, s.n,
			       s.d, c ? "contains" : "within", efs[e],
			       (double)w.answered / (double)s.nq, w.want ? w.hit / w.want : 0.0,
			       w.held / (double)s.nq, w.walks / (double)s.nq,
			       1e3 * w.t_index / (double)s.nq, 1e3 * w.t_exact / (double)s.nq);
			fflush(stdout);
		}
	hydb_close(db);
	rd_free(&s);
	return 0;
}
