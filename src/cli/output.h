/* output.h - how the CLI prints records and results (tables and JSON). */
#ifndef HYDB_CLI_OUTPUT_H
#define HYDB_CLI_OUTPUT_H

#include <stdint.h>
#include <stdio.h>

#include "hydb.h"

const char *hydb_cli_modality_name(int m);
const char *hydb_cli_label_name(int l);
/* Parse "image"/"text"/"other" (or "safe"/"unsafe"/"unknown"); -1 if bad. */
int hydb_cli_modality_parse(const char *s);
int hydb_cli_label_parse(const char *s);

void hydb_cli_print_entry(FILE *f, const hydb_entry *e, int json, int with_vector);
/* Results of one query: a table sized to the terminal, or JSON Lines. */
void hydb_cli_print_results(FILE *f, const hydb_results *r, int json, size_t query_no);
/* Radius histogram PNG: hist is [3 modality][3 label][stride], bins used. */
int hydb_cli_plot_histogram(const char *path, double rmin, double rmax, int bins, int stride,
			    const uint64_t *hist);

#endif
