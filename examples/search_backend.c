/*
 * search_backend.c - a minimal search backend on libhydb: it keeps one
 * database handle open and answers queries read from standard input, one
 * JSON array of space components per line, with the k nearest safe entries.
 *
 *   cc search_backend.c $(pkg-config --cflags --libs hydb) -o search_backend
 *   echo '[0.1, 0.2, ...]' | ./search_backend DB [K]
 */
#include <hydb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse "[x, y, ...]" into dim floats; returns 0 when the count matches. */
static int parse(const char *line, float *q, size_t dim)
{
	size_t n = 0;
	const char *p = strchr(line, '[');
	char *end;
	if (!p)
		return -1;
	p++;
	while (n < dim) {
		q[n++] = strtof(p, &end);
		if (end == p)
			return -1;
		p = end + strspn(end, " ,\t");
	}
	return *p == ']' ? 0 : -1;
}

int main(int argc, char **argv)
{
	hydb_open_options oo;
	hydb_search_options so;
	hydb_db *db;
	char line[1 << 16];
	float *q;
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DB [K]\n", argv[0]);
		return 1;
	}
	hydb_open_options_init(&oo);
	oo.flags = HYDB_OPEN_RDONLY;
	if (hydb_open(&db, argv[1], &oo) < 0) {
		fprintf(stderr, "search_backend: %s\n", hydb_last_error());
		return 2;
	}
	hydb_search_options_init(&so);
	so.k = argc > 2 ? strtoul(argv[2], NULL, 10) : 10;
	so.label_mask = HYDB_MASK(HYDB_LABEL_SAFE);
	q = calloc(hydb_dim(db), sizeof *q);
	while (q && fgets(line, sizeof line, stdin)) {
		hydb_results *res;
		if (parse(line, q, hydb_dim(db)) < 0) {
			fprintf(stderr, "search_backend: expected a JSON array of %zu numbers\n", hydb_dim(db));
			rc = 2;
			continue;
		}
		if (hydb_search(db, &res, q, &so) < 0) {
			fprintf(stderr, "search_backend: %s\n", hydb_last_error());
			rc = 2;
			continue;
		}
		for (size_t i = 0; i < res->n; i++)
			printf("%zu\t%s\t%.6f\t%s\n", i + 1, res->keys[i], res->distances[i],
			       res->labels[i] == HYDB_LABEL_SAFE ? "safe" : "unsafe");
		hydb_results_free(res);
	}
	free(q);
	hydb_close(db);
	return rc;
}
