/*
 * main.c - the hydb command-line tool: dispatch to subcommands.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>
#include <unistd.h>

#include "cli/cli.h"
#include "hydb.h"

#pragma weak hydb_cmd_init
#pragma weak hydb_cmd_import
#pragma weak hydb_cmd_query
#pragma weak hydb_cmd_get
#pragma weak hydb_cmd_delete
#pragma weak hydb_cmd_stats
#pragma weak hydb_cmd_export
#pragma weak hydb_cmd_check
#pragma weak hydb_cmd_model
#pragma weak hydb_cmd_encode
#pragma weak hydb_cmd_preprocess
#pragma weak hydb_cmd_ingest
#pragma weak hydb_cmd_classify
#pragma weak hydb_cmd_calibrate
#pragma weak hydb_cmd_traverse
#pragma weak hydb_cmd_tune

int hydb_cmd_evaluate(int argc, char **argv);
static const struct {
	const char *name;
	hydb_cmd_fn fn;
	const char *summary;
} commands[] = {
	{"init", hydb_cmd_init, "create a database (--dim N [--curvature C])"},
	{"import", hydb_cmd_import, "import vectors from .npy, .fvecs or JSON Lines"},
	{"ingest", hydb_cmd_ingest, "encode a folder of images and captions"},
	{"query", hydb_cmd_query, "k-NN search by geodesic distance"},
	{"get", hydb_cmd_get, "print one record by key or id"},
	{"delete", hydb_cmd_delete, "delete records by key or id"},
	{"stats", hydb_cmd_stats, "counts, radius histogram, disk size"},
	{"export", hydb_cmd_export, "write records as JSON Lines or .npy"},
	{"check", hydb_cmd_check, "verify checksums and index invariants"},
	{"model", hydb_cmd_model, "model info FILE: print a model's config"},
	{"encode", hydb_cmd_encode, "encode text or images with a model"},
	{"preprocess", hydb_cmd_preprocess, "write the 224x224 crop the encoder sees"},
	{"classify", hydb_cmd_classify, "safe/unsafe by safety radius"},
	{"calibrate", hydb_cmd_calibrate, "fit radius thresholds from labels"},
	{"traverse", hydb_cmd_traverse, "walk a query toward the origin"},
	{"tune", hydb_cmd_tune, "measure recall against the beam; set the default"},
	{"evaluate", hydb_cmd_evaluate, "R@K, safety score and radii on a quadruplet manifest"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: hydb COMMAND [ARGS]   (hydb COMMAND --help for details)\n\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (commands[i].fn)
			fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nexit status: 0 ok, 1 usage error, 2 data error\n"
		   "environment: HYDB_PATH (database, default ./hydb.db), HYDB_MODEL\n");
}

int hydb_cli_fail(const char *cmd, int code, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "hydb %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int hydb_cli_fail_lib(const char *cmd, int rc)
{
	fprintf(stderr, "hydb %s: %s\n", cmd, hydb_last_error());
	return rc == HYDB_EINVAL ? HYDB_EXIT_USAGE : HYDB_EXIT_DATA;
}

const char *hydb_cli_db_path(const char *arg)
{
	const char *env;
	if (arg)
		return arg;
	env = getenv("HYDB_PATH");
	return env && *env ? env : "hydb.db";
}

int hydb_cli_isatty(FILE *f) { return isatty(fileno(f)); }

int main(int argc, char **argv)
{
	opterr = 0; /* each command reports a bad option in one line */
	if (argc < 2) {
		usage(stderr);
		return HYDB_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return HYDB_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("hydb %s (format %d)\n%s\n", hydb_version_string(),
		       HYDB_FORMAT_VERSION, hydb_blas_info());
		return HYDB_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		if (!commands[i].fn)
			return hydb_cli_fail(argv[1], HYDB_EXIT_USAGE,
					     "not available in this build");
		return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "hydb: unknown command '%s' (see hydb --help)\n", argv[1]);
	return HYDB_EXIT_USAGE;
}
