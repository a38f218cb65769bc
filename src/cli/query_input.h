/*
 * query_input.h - query vectors from --vector and --vector-file (internal
 * to the command-line tool).
 */
#ifndef HYDB_CLI_QUERY_INPUT_H
#define HYDB_CLI_QUERY_INPUT_H

#include <stddef.h>

/* One JSON query in text[0..len): an array of dim numbers or an object
 * with "vector". where names it in errors. */
int hydb_cli_parse_query_json(const char *text, size_t len, float *out, size_t dim, const char *where);
/* Every query in path: .npy (n x dim) and .fvecs through the import
 * readers (rows checked as imports are, including the largest radius),
 * anything else as one JSON value or JSON Lines. *out (n x dim floats,
 * free() it) and *nq are set on success. Errors name the file and row. */
int hydb_cli_read_queries(const char *path, size_t dim, double c, float **out, size_t *nq);

#endif
