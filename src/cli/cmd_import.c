/*
 * cmd_import.c - `hydb import`: vectors from .npy, .fvecs or JSON Lines.
 *
 * Nothing may be lost without a word:
 * - every named file is opened and its header checked before anything is
 *   stored; one that cannot be read stops the command with nothing stored;
 * - each batch commits atomically together with the file's progress marker,
 *   which holds the XXH64 of the file's bytes, so a killed import resumes
 *   after the last committed batch, a finished one is a no-op, and a file
 *   whose content changed (even within the same second, or by `cp -p`) is
 *   imported again from row 0;
 * - rows of .npy/.fvecs are keyed by the file's path relative to the
 *   current directory, so sub/a.npy and a.npy never share keys;
 * - records replaced by the import are counted and reported, --quiet or
 *   not; a file that fails midway names the files not tried.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "admin.h"

static const char usage[] =
	"usage: hydb import [DB] FILE... [--format npy|fvecs|jsonl] [--with-time | --from poincare]\n"
	"                   [--batch N] [--restart] [--quiet]\n"
	"Import vectors. Formats: .npy (float32/float64, 2-D, C order), .fvecs, and JSON\n"
	"Lines (.jsonl, .ndjson, .jl, .json) with one object per line: {\"key\", \"vector\",\n"
	"\"caption\"?, \"modality\"?, \"label\"?, \"item\"?, \"meta\"?}; \"item\" is an integer\n"
	"0..18446744073709551615. Other names need --format. Vectors are space components\n"
	"unless --with-time (D+1 columns, time first, checked on the hyperboloid) or\n"
	"--from poincare. Points farther than 20/sqrt(c) from the origin are refused.\n"
	"Rows of .npy/.fvecs get the key PATH#ROW, PATH being the file's path relative\n"
	"to the current directory (its absolute path when outside it).\n"
	"Existing keys are replaced, and the number replaced is reported.\n"
	"Every file is checked before anything is stored; a bad row stops the import\n"
	"(its batch is rolled back) and the files not tried are named. Rows of .npy/\n"
	".fvecs are read once first and stored nearest the origin first, which gives\n"
	"the index a better graph; a bad row there stops the file before any is stored.\n"
	"An interrupted import resumes where it stopped if the file's content (XXH64)\n"
	"is unchanged; a changed file is imported again from row 0. --restart always\n"
	"reads from row 0. --batch N: rows per transaction, 1..100000 (default 1000).\n";

#define MAX_BATCH 100000
#define MARKER_MAX 64

typedef struct {
	hydb_import_format fmt;
	hydb_coords coords;
	size_t batch;
	int restart, quiet;
} import_opts;

typedef struct {
	uint64_t rows, replaced;
	char example[MARKER_MAX]; /* one replaced key, for the message */
} import_counts;

/* The progress marker: meta "import:REALPATH" (or "import:#HASH" for a
 * path too long for an LMDB key) = "xxh64=H size=S keys=K rows=R
 * order=radius" (R rows in radius order; without the suffix, from versions
 * that read in file order, the first R rows of the file). K is the
 * XXH64 of the key base (0 for JSON Lines, whose keys are in the file), so
 * that importing the same bytes under other keys starts from row 0. */
typedef struct {
	uint64_t hash, size, keys, rows;
	int radius; /* " order=radius": rows counted nearest the origin first */
} marker;

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

/* ---- the marker ---------------------------------------------------------- */

static int marker_name(char *out, size_t size, const char *path)
{
	char real[PATH_MAX];
	if (!realpath(path, real))
		return -1;
	/* LMDB keys stop at 511 bytes. */
	if (strlen(real) > 400)
		snprintf(out, size, "import:#%016llx", (unsigned long long)XXH64(real, strlen(real), 0));
	else
		snprintf(out, size, "import:%s", real);
	return 0;
}

static int marker_parse(const char *s, marker *m)
{
	unsigned long long h, sz, k, r;
	int end = -1;
	if (sscanf(s, "xxh64=%16llx size=%llu keys=%16llx rows=%llu%n", &h, &sz, &k, &r, &end) != 4)
		return -1;
	/* Markers of earlier versions count rows in file order. */
	int radius = !strcmp(s + end, " order=radius");
	if (s[end] != '\0' && !radius)
		return -1;
	*m = (marker){h, sz, k, r, radius};
	return 0;
}

static void marker_format(char *out, size_t size, const marker *m, uint64_t rows)
{
	snprintf(out, size, "xxh64=%016llx size=%llu keys=%016llx rows=%llu%s", (unsigned long long)m->hash,
		 (unsigned long long)m->size, (unsigned long long)m->keys, (unsigned long long)rows,
		 m->radius ? " order=radius" : "");
}

/* Markers written before content hashes: "SIZE:MTIME:ROWS". They cannot
 * tell a rewritten file from the one imported, so they are not trusted;
 * those hydb versions keyed rows by the file's base name only. */
static int legacy_marker(const char *s)
{
	long long a, b;
	unsigned long long r;
	int end = -1;
	return sscanf(s, "%lld:%lld:%llu%n", &a, &b, &r, &end) == 3 && s[end] == '\0';
}

/* The row to start from, and why when it is not what the user expects. */
static uint64_t resume_row(hydb_db *db, const char *path, const char *mname, const marker *now,
			   const char *key_base, int restart, marker *old)
{
	char val[256];
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;

	old->rows = 0;
	if (restart || hydb_db_meta_get(db, mname, val, sizeof val) != 0)
		return 0;
	if (legacy_marker(val)) {
		if (now->keys && strcmp(key_base, name))
			fprintf(stderr,
				"%s: an earlier hydb imported it under the keys %s#ROW; its rows now get the keys %s#ROW "
				"(the old records stay: delete them with hydb delete)\n",
				path, name, key_base);
		else
			fprintf(stderr, "%s: imported by an earlier hydb without a content hash, importing again from row 0\n",
				path);
		return 0;
	}
	if (marker_parse(val, old) < 0) {
		fprintf(stderr, "%s: unreadable import marker, importing again from row 0\n", path);
		old->rows = 0;
		return 0;
	}
	if (old->hash != now->hash || old->size != now->size) {
		fprintf(stderr, "%s: changed since the last import, importing again from row 0\n", path);
		return 0;
	}
	if (old->keys != now->keys) {
		fprintf(stderr, "%s: last imported under other keys, importing again from row 0 as %s#ROW\n",
			path, key_base);
		old->rows = 0;
		return 0;
	}
	return old->rows;
}

/* ---- replacements ---------------------------------------------------------- */

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* How many records the batch will replace: keys already stored, and keys
 * repeated within the batch (the last one wins). Read just before the
 * write; another writer between the two could make the count differ. */
static int count_replaced(hydb_db *db, const hydb_record *recs, size_t n, import_counts *c)
{
	const char **keys = hydb_alloc_array(n, sizeof *keys, "key list");
	uint8_t *stored = hydb_alloc_array(n, sizeof *stored, "stored flags");
	int rc = keys && stored ? HYDB_OK : HYDB_ENOMEM;

	for (size_t i = 0; i < n && rc == HYDB_OK; i++)
		keys[i] = recs[i].key;
	if (rc == HYDB_OK) {
		qsort(keys, n, sizeof *keys, cmp_key);
		rc = hydb_keys_stored(db, keys, n, stored);
	}
	for (size_t i = 0; i < n && rc == HYDB_OK; i++) {
		int found = stored[i] || (i > 0 && !strcmp(keys[i], keys[i - 1]));
		if (found && c->replaced++ == 0)
			snprintf(c->example, sizeof c->example, "%s", keys[i]);
	}
	free(keys);
	free(stored);
	return rc;
}

static void report_replaced(const char *what, const import_counts *c)
{
	if (c->replaced)
		fprintf(stderr, "%s: replaced %llu existing record%s (e.g. '%s')\n", what,
			(unsigned long long)c->replaced, c->replaced == 1 ? "" : "s", c->example);
}

/* ---- one file ---------------------------------------------------------------- */

static int open_reader(hydb_db *db, hydb_reader **r, const char *path, const char *key_base,
		       const import_opts *o)
{
	FORWARD_IF_ERROR(hydb_reader_open(r, path, o->fmt, hydb_dim(db), hydb_curvature(db), o->coords));
	if (hydb_reader_format(*r) == HYDB_FMT_JSONL)
		return HYDB_OK;
	{
		int rc = hydb_reader_set_key_base(*r, key_base);
		if (rc < 0) {
			hydb_reader_close(*r);
			*r = NULL;
		}
		return rc;
	}
}

/* Reads the batches from the resume row on, committing each with its
 * marker. *c counts what was stored and replaced. */
static int import_rows(hydb_db *db, hydb_reader *r, const char *path, const char *mname,
		       const marker *m, const import_opts *o, import_counts *c)
{
	int tty = !o->quiet && hydb_cli_isatty(stderr), rc;
	double t0 = now_s(), last = 0;
	uint64_t row0, done, size;
	char mval[256];

	for (;;) {
		const hydb_record *recs;
		size_t n;
		if ((rc = hydb_reader_next(r, &recs, &n, o->batch, &row0)) < 0 || n == 0)
			break;
		if ((rc = count_replaced(db, recs, n, c)) < 0)
			break;
		marker_format(mval, sizeof mval, m, row0 + n);
		if ((rc = hydb_db_put_meta(db, recs, n, NULL, mname, mval)) < 0)
			break;
		c->rows += n;
		if (tty && now_s() - last > 0.2) {
			hydb_reader_progress(r, &done, &size);
			progress(path, c->rows, done, size, t0, tty);
			last = now_s();
		}
	}
	if (tty) {
		hydb_reader_progress(r, &done, &size);
		progress(path, c->rows, rc < 0 ? done : size, size, t0, tty);
		fputc('\n', stderr);
	}
	return rc;
}

/* Rows a shorter new version of a file no longer has keep their records:
 * say which, since nothing else will. */
static void report_stale(const char *path, hydb_reader *r, const char *key_base, const marker *old)
{
	uint64_t total = hydb_reader_total(r);
	if (hydb_reader_format(r) != HYDB_FMT_JSONL && old->rows > total)
		fprintf(stderr,
			"%s: the file now has %llu rows; the records %s#%llu..%s#%llu from its previous "
			"version remain\n",
			path, (unsigned long long)total, key_base, (unsigned long long)total, key_base,
			(unsigned long long)(old->rows - 1));
}

/* Imports one file; c counts its rows and replacements, also when it
 * fails midway (the failing batch rolled back, earlier ones stay). */
static int import_file(hydb_db *db, const char *path, const char *key_base, const import_opts *o,
		       import_counts *c)
{
	char mname[PATH_MAX + 32];
	hydb_reader *r;
	marker now = {0}, old = {0};
	uint64_t skip;
	double t0 = now_s();
	int rc;

	if (marker_name(mname, sizeof mname, path) < 0)
		return hydb_error_set(HYDB_EIO, "%s: %s", path, strerror(errno));
	FORWARD_IF_ERROR(open_reader(db, &r, path, key_base, o));
	if ((rc = hydb_reader_hash(r, &now.hash)) < 0)
		goto out;
	hydb_reader_progress(r, &skip, &now.size); /* skip: the read position, unused */
	now.keys = hydb_reader_format(r) == HYDB_FMT_JSONL ? 0 : XXH64(key_base, strlen(key_base), 0);
	skip = resume_row(db, path, mname, &now, key_base, o->restart, &old);
	/* A fixed-size file is read nearest the origin first, unless an
	 * earlier version left it half imported in file order. */
	now.radius = hydb_reader_format(r) != HYDB_FMT_JSONL && (!skip || old.radius);
	if (now.radius && (rc = hydb_reader_order_by_radius(r)) < 0)
		goto out;
	if (skip) {
		if ((rc = hydb_reader_skip(r, skip)) < 0)
			goto out;
		if (!o->quiet)
			fprintf(stderr, "%s: resuming after %llu rows already imported\n", path,
				(unsigned long long)skip);
	}
	rc = import_rows(db, r, path, mname, &now, o, c);
	if (rc == 0 && !skip)
		report_stale(path, r, key_base, &old);
out:
	hydb_reader_close(r);
	if (rc < 0)
		return rc;
	if (!o->quiet)
		fprintf(stderr, "%s: imported %llu rows in %.2fs (%.0f rows/s)\n", path,
			(unsigned long long)c->rows, now_s() - t0, c->rows / (now_s() - t0 + 1e-9));
	report_replaced(path, c);
	return HYDB_OK;
}

/* ---- the command ------------------------------------------------------------ */

/* Every file opens, has a known format and a header that fits the
 * database, before anything is stored. Fills key_bases[i]. */
static int check_inputs(hydb_db *db, char **files, int n, const import_opts *o, char **key_bases)
{
	for (int i = 0; i < n; i++) {
		char base[PATH_MAX];
		hydb_reader *r;
		int rc = hydb_import_key_base(base, sizeof base, files[i]);
		if (rc == 0)
			rc = open_reader(db, &r, files[i], base, o);
		if (rc < 0)
			return hydb_cli_fail("import", HYDB_EXIT_DATA, "%s; nothing was imported",
					     hydb_last_error());
		hydb_reader_close(r);
		key_bases[i] = strdup(base);
		if (!key_bases[i])
			return hydb_cli_fail("import", HYDB_EXIT_DATA, "out of memory");
	}
	return HYDB_EXIT_OK;
}

/* One line: the error, what of the failing file is stored, and every
 * file after it. */
static int fail_with_rest(char **files, int failed, int n, const import_counts *c)
{
	fprintf(stderr, "hydb import: %s", hydb_last_error());
	if (c->rows)
		fprintf(stderr, "; %llu rows from it were stored before that batch", (unsigned long long)c->rows);
	if (c->replaced)
		fprintf(stderr, ", replacing %llu existing records", (unsigned long long)c->replaced);
	if (failed + 1 < n) {
		fputs("; not tried:", stderr);
		for (int i = failed + 1; i < n; i++)
			fprintf(stderr, " %s", files[i]);
	}
	fputc('\n', stderr);
	return HYDB_EXIT_DATA;
}

static int parse_options(int argc, char **argv, import_opts *o)
{
	static const struct option lo[] = {
		{"format", required_argument, 0, 'f'}, {"with-time", no_argument, 0, 't'},
		{"from", required_argument, 0, 'p'},   {"batch", required_argument, 0, 'b'},
		{"quiet", no_argument, 0, 'q'},        {"restart", no_argument, 0, 'r'},
		{"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "q", lo, NULL)) != -1) {
		switch (ch) {
		case 'f':
			if (!strcmp(optarg, "npy")) o->fmt = HYDB_FMT_NPY;
			else if (!strcmp(optarg, "fvecs")) o->fmt = HYDB_FMT_FVECS;
			else if (!strcmp(optarg, "jsonl") || !strcmp(optarg, "json")) o->fmt = HYDB_FMT_JSONL;
			else return hydb_cli_fail("import", HYDB_EXIT_USAGE, "--format: unknown format '%s'", optarg);
			break;
		case 't':
		case 'p':
			if (ch == 'p' && strcmp(optarg, "poincare"))
				return hydb_cli_fail("import", HYDB_EXIT_USAGE, "--from: only 'poincare' is supported");
			/* The two describe different coordinates: one would be ignored. */
			if (o->coords != HYDB_COORDS_SPACE &&
			    o->coords != (ch == 't' ? HYDB_COORDS_WITH_TIME : HYDB_COORDS_POINCARE))
				return hydb_cli_fail("import", HYDB_EXIT_USAGE,
						     "--with-time and --from poincare describe different coordinates; give one");
			o->coords = ch == 't' ? HYDB_COORDS_WITH_TIME : HYDB_COORDS_POINCARE;
			break;
		case 'b':
			if ((rc = hydb_cli_parse_size("import", "--batch", optarg, 1, MAX_BATCH, &o->batch)))
				return rc;
			break;
		case 'q': o->quiet = 1; break;
		case 'r': o->restart = 1; break;
		case 'h': fputs(usage, stdout); return -1;
		default: return hydb_cli_bad_option("import", argv);
		}
	}
	return HYDB_EXIT_OK;
}

static int import_all(hydb_db *db, char **files, int n, const import_opts *o)
{
	char **bases = calloc((size_t)n, sizeof *bases);
	import_counts total = {0};
	int status;

	if (!bases)
		return hydb_cli_fail("import", HYDB_EXIT_DATA, "out of memory");
	status = check_inputs(db, files, n, o, bases);
	for (int i = 0; i < n && status == HYDB_EXIT_OK; i++) {
		import_counts c = {0};
		if (import_file(db, files[i], bases[i], o, &c) < 0)
			status = fail_with_rest(files, i, n, &c);
		total.rows += c.rows;
		if (c.replaced && total.replaced == 0)
			memcpy(total.example, c.example, sizeof c.example);
		total.replaced += c.replaced;
	}
	if (status == HYDB_EXIT_OK && n > 1) {
		if (!o->quiet)
			fprintf(stderr, "imported %llu rows from %d files\n", (unsigned long long)total.rows, n);
		report_replaced("all files", &total);
	}
	for (int i = 0; i < n; i++)
		free(bases[i]);
	free(bases);
	return status;
}

int hydb_cmd_import(int argc, char **argv)
{
	import_opts o = {HYDB_FMT_AUTO, HYDB_COORDS_SPACE, 1000, 0, 0};
	int rc, first, status;
	const char *path = NULL;
	hydb_db *db;

	if ((rc = parse_options(argc, argv, &o)) != 0)
		return rc < 0 ? HYDB_EXIT_OK : rc;
	first = optind;
	if ((rc = hydb_cli_db_positional("import", argc, argv, &first, HYDB_CLI_FILES_FOLLOW, &path)))
		return rc;
	if (first >= argc)
		return hydb_cli_fail("import", HYDB_EXIT_USAGE, "no input files (see hydb import --help)");
	if ((rc = hydb_cli_open(&db, path, 0)) < 0)
		return hydb_cli_fail_lib("import", rc);
	status = import_all(db, argv + first, argc - first, &o);
	hydb_close(db);
	return status;
}
