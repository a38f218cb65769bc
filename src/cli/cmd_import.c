/*
 * cmd_import.c - `hydb import`: vectors from .npy, .fvecs or JSON Lines.
 *
 * Each batch commits atomically together with the file's progress marker,
 * so a killed import resumes after the last committed batch and re-running
 * a finished import is a no-op.
 */
#include "config.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "db_internal.h"
#include "import.h"

static const char usage[] =
	"usage: hydb import [DB] FILE... [--format npy|fvecs|jsonl] [--with-time | --from poincare]\n"
	"                   [--batch N] [--restart] [--quiet]\n"
	"Import vectors. Formats: .npy (float32/float64, 2-D, C order), .fvecs, and JSON\n"
	"Lines with one object per line: {\"key\", \"vector\", \"caption\"?, \"modality\"?,\n"
	"\"label\"?, \"meta\"?}. Vectors are space components unless --with-time (D+1\n"
	"columns, time first, checked on the hyperboloid) or --from poincare.\n"
	"Rows of .npy/.fvecs get the key FILENAME#ROW. Existing keys are replaced.\n"
	"An interrupted import resumes where it stopped; --restart re-reads from row 0.\n";

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void progress(const char *file, uint64_t rows, uint64_t done, uint64_t total, double t0, int tty)
{
	double el = now_s() - t0, frac = total ? (double)done / total : 0;
	double rate = el > 0 ? rows / el : 0, eta = frac > 0 ? el / frac - el : 0;
	if (tty) {
		int bar = (int)(frac * 30);
		fprintf(stderr, "\r%-24.24s [%.*s%*s] %5.1f%% %9llu rows %8.0f rows/s ETA %5.0fs", file, bar,
			"##############################", 30 - bar, "", frac * 100, (unsigned long long)rows,
			rate, eta);
		fflush(stderr);
	}
}

static int import_file(hydb_db *db, const char *path, hydb_import_format fmt, hydb_coords coords,
		       size_t batch, int restart, int quiet, uint64_t *rows_out)
{
	char real[PATH_MAX], mname[PATH_MAX + 16], mval[128], want_prefix[96];
	struct stat sb;
	hydb_reader *r;
	uint64_t skip = 0, row0, rows = 0;
	int tty = !quiet && hydb_cli_isatty(stderr), rc;
	double t0 = now_s(), last = 0;

	if (!realpath(path, real) || stat(real, &sb) != 0)
		return hydb_cli_fail("import", HYDB_EXIT_DATA, "%s: cannot open: %m", path);
	snprintf(mname, sizeof mname, "import:%s", real);
	snprintf(want_prefix, sizeof want_prefix, "%lld:%lld:", (long long)sb.st_size,
		 (long long)sb.st_mtime);
	if (!restart && hydb_db_meta_get(db, mname, mval, sizeof mval) == 0 &&
	    !strncmp(mval, want_prefix, strlen(want_prefix)))
		skip = strtoull(mval + strlen(want_prefix), NULL, 10);

	rc = hydb_reader_open(&r, path, fmt, hydb_dim(db), hydb_curvature(db), coords);
	if (rc < 0)
		return hydb_cli_fail_lib("import", rc);
	if (skip) {
		rc = hydb_reader_skip(r, skip);
		if (rc < 0)
			goto out;
		if (!quiet)
			fprintf(stderr, "%s: resuming after %llu rows already imported\n", path,
				(unsigned long long)skip);
	}
	for (;;) {
		const hydb_record *recs;
		size_t n;
		rc = hydb_reader_next(r, &recs, &n, batch, &row0);
		if (rc < 0 || n == 0)
			break;
		snprintf(mval, sizeof mval, "%s%llu", want_prefix, (unsigned long long)(row0 + n));
		rc = hydb_db_put_meta(db, recs, n, NULL, mname, mval);
		if (rc < 0)
			break;
		rows += n;
		if (tty && now_s() - last > 0.2) {
			uint64_t done, total;
			hydb_reader_progress(r, &done, &total);
			progress(path, rows, done, total, t0, tty);
			last = now_s();
		}
	}
	if (rc == 0) {
		/* Mark complete even for formats without a row count. */
		uint64_t d, t;
		hydb_reader_progress(r, &d, &t);
		if (tty)
			progress(path, rows, t, t, t0, tty);
	}
out:
	if (tty)
		fputc('\n', stderr);
	hydb_reader_close(r);
	if (rc < 0)
		return hydb_cli_fail_lib("import", rc);
	if (!quiet)
		fprintf(stderr, "%s: imported %llu rows in %.2fs (%.0f rows/s)\n", path,
			(unsigned long long)rows, now_s() - t0, rows / (now_s() - t0 + 1e-9));
	*rows_out += rows;
	return HYDB_EXIT_OK;
}

int hydb_cmd_import(int argc, char **argv)
{
	static const struct option lo[] = {
		{"format", required_argument, 0, 'f'}, {"with-time", no_argument, 0, 't'},
		{"from", required_argument, 0, 'p'},   {"batch", required_argument, 0, 'b'},
		{"quiet", no_argument, 0, 'q'},        {"restart", no_argument, 0, 'r'},
		{"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
	hydb_import_format fmt = HYDB_FMT_AUTO;
	hydb_coords coords = HYDB_COORDS_SPACE;
	size_t batch = 1000;
	int quiet = 0, restart = 0, ch, rc, first, status = HYDB_EXIT_OK;
	const char *path = NULL;
	uint64_t rows = 0;
	struct stat sb;
	hydb_db *db;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "q", lo, NULL)) != -1) {
		switch (ch) {
		case 'f':
			if (!strcmp(optarg, "npy")) fmt = HYDB_FMT_NPY;
			else if (!strcmp(optarg, "fvecs")) fmt = HYDB_FMT_FVECS;
			else if (!strcmp(optarg, "jsonl") || !strcmp(optarg, "json")) fmt = HYDB_FMT_JSONL;
			else return hydb_cli_fail("import", HYDB_EXIT_USAGE, "--format: unknown format '%s'", optarg);
			break;
		case 't': coords = HYDB_COORDS_WITH_TIME; break;
		case 'p':
			if (strcmp(optarg, "poincare"))
				return hydb_cli_fail("import", HYDB_EXIT_USAGE, "--from: only 'poincare' is supported");
			coords = HYDB_COORDS_POINCARE;
			break;
		case 'b':
			batch = strtoul(optarg, NULL, 10);
			if (batch < 1 || batch > 100000)
				return hydb_cli_fail("import", HYDB_EXIT_USAGE, "--batch must be 1..100000");
			break;
		case 'q': quiet = 1; break;
		case 'r': restart = 1; break;
		case 'h': fputs(usage, stdout); return HYDB_EXIT_OK;
		default: fputs(usage, stderr); return HYDB_EXIT_USAGE;
		}
	}
	first = optind;
	if (first < argc && stat(argv[first], &sb) == 0 && S_ISDIR(sb.st_mode))
		path = argv[first++];
	if (first >= argc)
		return hydb_cli_fail("import", HYDB_EXIT_USAGE, "no input files (see hydb import --help)");
	if ((rc = hydb_cli_open(&db, path, 0)) < 0)
		return hydb_cli_fail_lib("import", rc);
	for (int i = first; i < argc && status == HYDB_EXIT_OK; i++)
		status = import_file(db, argv[i], fmt, coords, batch, restart, quiet, &rows);
	hydb_close(db);
	return status;
}
