/*
 * cmd_tune.c - hydb tune: measure the database's recall against its beam
 * (src/tune.c) and store the curve that searches without --ef use.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hydb.h"

static const char usage[] =
	"usage: hydb tune [DB] [--recall R] [--sample N] [--show]\n"
	"  Searches a sample of stored points for their own vectors (each left out of\n"
	"  its own results and exact truth), records recall@10 at each beam, and stores\n"
	"  the curve: a query without --ef then uses the smallest beam reaching its\n"
	"  target (hydb query --recall R; default 0.97). hydb import measures again\n"
	"  whenever the database has doubled since.\n"
	"  --recall R   print the beam for this recall@10 target, 0 < R <= 1 (default 0.97)\n"
	"  --sample N   self-queries, 1..100000 (default 200)\n"
	"  --show       print the stored curve without measuring (read-only)\n";

int hydb_cmd_tune(int argc, char **argv)
{
	static const struct option lo[] = {{"recall", required_argument, 0, 'r'},
					   {"sample", required_argument, 0, 's'},
					   {"show", no_argument, 0, 'S'},
					   {"help", no_argument, 0, 'h'},
					   {0, 0, 0, 0}};
	double target = HYDB_DEFAULT_RECALL;
	size_t sample = HYDB_TUNE_DEFAULT_SAMPLE;
	int ch, show = 0, first, rc;
	const char *path;
	hydb_db *db;
	hydb_tune_info t;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if (hydb_cli_parse_double("tune", "--recall", optarg, 1e-9, 1, &target))
				return HYDB_EXIT_USAGE;
			break;
		case 's':
			if (hydb_cli_parse_size("tune", "--sample", optarg, 1, HYDB_TUNE_MAX_SAMPLE, &sample))
				return HYDB_EXIT_USAGE;
			break;
		case 'S': show = 1; break;
		case 'h': fputs(usage, stdout); return HYDB_EXIT_OK;
		default: fputs(usage, stderr); return HYDB_EXIT_USAGE;
		}
	}
	first = optind;
	if (hydb_cli_db_positional("tune", argc, argv, &first, 0, &path) || first < argc) {
		if (first < argc && path)
			return hydb_cli_fail("tune", HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[first]);
		return HYDB_EXIT_USAGE;
	}
	if ((rc = hydb_cli_open(&db, path, show)) < 0)
		return hydb_cli_fail_lib("tune", rc);
	rc = show ? hydb_tune_get(db, &t) : hydb_tune(db, sample, &t);
	hydb_close(db);
	if (rc < 0)
		return hydb_cli_fail_lib("tune", rc);
	printf("%llu nodes, %zu self-queries, measured in %.2f s\n", (unsigned long long)t.nodes,
	       t.sample, t.seconds);
	printf("%8s %10s\n", "ef", "recall@10");
	for (size_t i = 0; i < t.n; i++)
		printf("%8zu %10.4f\n", t.ef[i], t.recall[i]);
	size_t ef = hydb_tune_pick(&t, target, 10);
	int reached = 0;
	for (size_t i = 0; i < t.n; i++)
		reached |= t.recall[i] >= target;
	printf("recall@10 %.4g: ef %zu%s\n", target, ef,
	       reached ? "" : " (the target was not reached; the largest beam measured)");
	return HYDB_EXIT_OK;
}
