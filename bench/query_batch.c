/*
 * query_batch.c - the library side of `hydb query --vector-file`'s
 * throughput: the same queries (a raw float32 file, n x dim) through
 * hydb_search_batch in one process, results freed unprinted. Compared with
 * the command line on the same database by bench/bench_query_cli.sh.
 * usage: query_batch DB QUERIES.f32 K [EF]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "hydb.h"

int main(int argc, char **argv)
{
	hydb_db *db;
	hydb_results **res;
	hydb_search_options so;
	float *q;
	long bytes;
	size_t nq, dim;
	FILE *f;
	struct timespec t0, t1;
	if (argc < 4) {
		fprintf(stderr, "usage: query_batch DB QUERIES.f32 K [EF]\n");
		return 1;
	}
	if (hydb_open(&db, argv[1], NULL) < 0) {
		fprintf(stderr, "%s\n", hydb_last_error());
		return 2;
	}
	dim = hydb_dim(db);
	f = fopen(argv[2], "rb");
	if (!f || fseek(f, 0, SEEK_END) || (bytes = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET)) {
		fprintf(stderr, "%s: cannot read\n", argv[2]);
		return 2;
	}
	nq = (size_t)bytes / (dim * sizeof *q);
	q = malloc(nq * dim * sizeof *q);
	if (!q || fread(q, sizeof *q, nq * dim, f) != nq * dim) {
		fprintf(stderr, "%s: cannot read\n", argv[2]);
		return 2;
	}
	fclose(f);
	hydb_search_options_init(&so);
	so.k = (size_t)atoi(argv[3]);
	so.ef = argc > 4 ? (size_t)atoi(argv[4]) : 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (hydb_search_batch(db, &res, q, nq, &so) < 0) {
		fprintf(stderr, "%s\n", hydb_last_error());
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "%zu queries in %.3f s in the library\n", nq,
		(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	hydb_results_free_batch(res, nq);
	free(q);
	hydb_close(db);
	return 0;
}
