/*
 * cmd_db.c - database housekeeping subcommands: init, get, delete, stats,
 * export.
 */
#include "config.h"

#include <dirent.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "hydb.h"
#include "search.h"
#include "storage/store.h"

#include "db_internal.h"

static int want_help(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 1;
		}
	return 0;
}

/* ---- init --------------------------------------------------------------- */

static const char init_usage[] =
	"usage: hydb init [DB] --dim N [--curvature C] [--m M] [--ef-construction E]\n"
	"Create a database directory (default $HYDB_PATH or ./hydb.db) for N-dimensional\n"
	"points on the Lorentz hyperboloid of curvature -C (default C = 1).\n"
	"HNSW parameters: M links per node (default 16), construction beam (default 200).\n";

/* 1 when path already holds a database, 0 when it is free (missing or an
 * empty directory), -1 (message printed) when it holds something else: a
 * database is never created among unrelated files. */
static int init_target(const char *path)
{
	char data[8192];
	struct stat sb;
	DIR *d;
	struct dirent *de;
	int others = 0;
	if (stat(path, &sb) != 0)
		return 0;
	if (!S_ISDIR(sb.st_mode))
		return (hydb_cli_fail("init", HYDB_EXIT_USAGE, "%s: exists and is not a directory", path), -1);
	snprintf(data, sizeof data, "%s/data.mdb", path);
	if (stat(data, &sb) == 0)
		return 1;
	if (!(d = opendir(path)))
		return (hydb_cli_fail("init", HYDB_EXIT_USAGE, "%s: %m", path), -1);
	while ((de = readdir(d)))
		others += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	if (others)
		return (hydb_cli_fail("init", HYDB_EXIT_USAGE,
				      "%s: directory holds other files and no database; give an empty or new directory",
				      path), -1);
	return 0;
}

int hydb_cmd_init(int argc, char **argv)
{
	static const struct option lo[] = {
		{"dim", required_argument, 0, 'd'}, {"curvature", required_argument, 0, 'c'},
		{"m", required_argument, 0, 'm'}, {"ef-construction", required_argument, 0, 'e'},
		{0, 0, 0, 0}};
	hydb_open_options o;
	hydb_db *db;
	unsigned long long v;
	const char *path;
	int ch, rc, existed;

	if (want_help(argc, argv, init_usage))
		return HYDB_EXIT_OK;
	hydb_open_options_init(&o);
	o.flags = HYDB_OPEN_CREATE;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'd':
			if (hydb_cli_parse_size("init", "--dim", optarg, 1, HYDB_MAX_DIM, &o.dim))
				return HYDB_EXIT_USAGE;
			break;
		case 'c':
			if (hydb_cli_parse_double("init", "--curvature", optarg, 1e-6, 1e6, &o.curvature))
				return HYDB_EXIT_USAGE;
			break;
		case 'm':
			if (hydb_cli_parse_uint("init", "--m", optarg, 2, HYDB_MAX_HNSW_M, &v))
				return HYDB_EXIT_USAGE;
			o.hnsw_m = (unsigned)v;
			break;
		case 'e':
			if (hydb_cli_parse_uint("init", "--ef-construction", optarg, 1, HYDB_MAX_EF, &v))
				return HYDB_EXIT_USAGE;
			o.hnsw_ef_construction = (unsigned)v;
			break;
		default: fputs(init_usage, stderr); return HYDB_EXIT_USAGE;
		}
	}
	if (!o.dim)
		return hydb_cli_fail("init", HYDB_EXIT_USAGE, "--dim is required (see hydb init --help)");
	if (argc - optind > 1)
		return hydb_cli_fail("init", HYDB_EXIT_USAGE, "too many arguments");
	path = hydb_cli_db_path(optind < argc ? argv[optind] : NULL);
	existed = init_target(path);
	if (existed < 0)
		return HYDB_EXIT_USAGE;
	rc = hydb_open(&db, path, &o);
	if (rc < 0)
		return hydb_cli_fail_lib("init", rc);
	if (existed) {
		uint64_t n = 0;
		hydb_count(db, &n);
		printf("%s: a database is already there (dim %zu, curvature %g, %llu records); left as it was\n",
		       path, hydb_dim(db), hydb_curvature(db), (unsigned long long)n);
	} else {
		printf("created %s: dim %zu, curvature %g\n", path, hydb_dim(db), hydb_curvature(db));
	}
	hydb_close(db);
	return HYDB_EXIT_OK;
}

/* ---- get / delete ------------------------------------------------------- */

#define MAX_IDS 256

static const char get_usage[] =
	"usage: hydb get [DB] (KEY | --id N)... [--json] [--vector]\n"
	"Print records by key or id. --vector includes the space components.\n";

int hydb_cli_open(hydb_db **db, const char *path, int readonly)
{
	hydb_open_options o;
	int rc;
	hydb_open_options_init(&o);
	o.flags = readonly ? HYDB_OPEN_RDONLY : 0;
	rc = hydb_open(db, hydb_cli_db_path(path), &o);
	if (rc == HYDB_EREADONLY && !readonly) {
		return rc;
	}
	return rc;
}


int hydb_cmd_get(int argc, char **argv)
{
	static const struct option lo[] = {{"id", required_argument, 0, 'i'}, {"json", no_argument, 0, 'j'},
					   {"vector", no_argument, 0, 'v'}, {0, 0, 0, 0}};
	unsigned long long ids[MAX_IDS];
	size_t nids = 0;
	int json = 0, vec = 0, ch, rc, first, status = HYDB_EXIT_OK;
	const char *path;
	hydb_db *db;

	if (want_help(argc, argv, get_usage))
		return HYDB_EXIT_OK;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 'i') {
			if (nids == MAX_IDS)
				return hydb_cli_fail("get", HYDB_EXIT_USAGE, "--id: at most %d ids at once", MAX_IDS);
			if (hydb_cli_parse_uint("get", "--id", optarg, 1, UINT64_MAX, &ids[nids++]))
				return HYDB_EXIT_USAGE;
		} else if (ch == 'j')
			json = 1;
		else if (ch == 'v')
			vec = 1;
		else {
			fputs(get_usage, stderr);
			return HYDB_EXIT_USAGE;
		}
	}
	first = optind;
	if (hydb_cli_db_positional("get", argc, argv, &first, 1, &path))
		return HYDB_EXIT_USAGE;
	if (first >= argc && !nids)
		return hydb_cli_fail("get", HYDB_EXIT_USAGE, "give a KEY or --id N");
	if ((rc = hydb_cli_open(&db, path, 1)) < 0)
		return hydb_cli_fail_lib("get", rc);
	for (int i = first; i < argc + (int)nids; i++) {
		hydb_entry *e;
		rc = i < argc ? hydb_get_key(db, argv[i], &e) : hydb_get_id(db, ids[i - argc], &e);
		if (rc < 0) {
			status = hydb_cli_fail_lib("get", rc);
			continue;
		}
		hydb_cli_print_entry(stdout, e, json, vec);
		hydb_entry_free(e);
	}
	hydb_close(db);
	return status;
}

static const char delete_usage[] =
	"usage: hydb delete [DB] (KEY | --id N)...\n"
	"Delete records; their index links are repaired and their space reused.\n";

int hydb_cmd_delete(int argc, char **argv)
{
	static const struct option lo[] = {{"id", required_argument, 0, 'i'}, {0, 0, 0, 0}};
	unsigned long long ids[MAX_IDS];
	size_t nids = 0;
	int ch, rc, first, status = HYDB_EXIT_OK, done = 0;
	const char *path;
	hydb_db *db;

	if (want_help(argc, argv, delete_usage))
		return HYDB_EXIT_OK;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 'i') {
			if (nids == MAX_IDS)
				return hydb_cli_fail("delete", HYDB_EXIT_USAGE, "--id: at most %d ids at once", MAX_IDS);
			if (hydb_cli_parse_uint("delete", "--id", optarg, 1, UINT64_MAX, &ids[nids++]))
				return HYDB_EXIT_USAGE;
		} else {
			fputs(delete_usage, stderr);
			return HYDB_EXIT_USAGE;
		}
	}
	first = optind;
	if (hydb_cli_db_positional("delete", argc, argv, &first, 1, &path))
		return HYDB_EXIT_USAGE;
	if (first >= argc && !nids)
		return hydb_cli_fail("delete", HYDB_EXIT_USAGE, "give a KEY or --id N");
	if ((rc = hydb_cli_open(&db, path, 0)) < 0)
		return hydb_cli_fail_lib("delete", rc);
	for (int i = first; i < argc + (int)nids; i++) {
		rc = i < argc ? hydb_delete_key(db, argv[i]) : hydb_delete_id(db, ids[i - argc]);
		if (rc < 0)
			status = hydb_cli_fail_lib("delete", rc);
		else
			done++;
	}
	printf("deleted %d record%s\n", done, done == 1 ? "" : "s");
	hydb_close(db);
	return status;
}

/* ---- stats -------------------------------------------------------------- */

static const char stats_usage[] =
	"usage: hydb stats [DB] [--json] [--bins N] [--plot OUT.png]\n"
	"Counts per modality and label, radius histogram per modality and label,\n"
	"and disk size. --json prints one object with a top-level \"count\".\n"
	"--plot writes the histograms as a PNG: one panel per modality, bars for\n"
	"unknown (grey), safe (green) and unsafe (red) side by side in each radius bin.\n";

#define MAXBINS 64

struct stats {
	uint64_t count, by[3][3]; /* [modality][label] */
	double rmin, rmax;
	uint64_t hist[3][3][MAXBINS];
	int bins;
};

struct stats_ctx {
	struct stats *s;
	int pass;
};

/* Pass 0 counts and finds the radius range; pass 1 fills the histograms. */
static int stats_block(uint32_t block_no, const hydb_block *blk, void *vctx)
{
	struct stats_ctx *c = vctx;
	struct stats *s = c->s;
	(void)block_no;
	if (!blk)
		return HYDB_ECORRUPT;
	for (unsigned i = 0; i < HYDB_BLOCK_SLOTS; i++) {
		const hydb_slot_attr *a = &blk->attr[i];
		unsigned m = a->modality < 3 ? a->modality : 0, l = a->label < 3 ? a->label : 0;
		if (!a->live)
			continue;
		if (c->pass == 0) {
			s->count++;
			s->by[m][l]++;
			if (a->radius < s->rmin) s->rmin = a->radius;
			if (a->radius > s->rmax) s->rmax = a->radius;
		} else {
			double w = (s->rmax - s->rmin) / s->bins;
			int bin = w > 0 ? (int)((a->radius - s->rmin) / w) : 0;
			if (bin >= s->bins) bin = s->bins - 1;
			s->hist[m][l][bin]++;
		}
	}
	return HYDB_OK;
}

static int stats_pass(hydb_store *st, MDB_txn *txn, struct stats *s, int pass)
{
	struct stats_ctx c = {s, pass};
	return hydb_store_each_block(st, txn, stats_block, &c);
}

static uint64_t dir_bytes(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	uint64_t total = 0;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char p[8192];
		struct stat sb;
		snprintf(p, sizeof p, "%s/%s", path, de->d_name);
		if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
			total += (uint64_t)sb.st_blocks * 512;
	}
	closedir(d);
	return total;
}

int hydb_cmd_stats(int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, 0, 'j'}, {"bins", required_argument, 0, 'b'},
					   {"plot", required_argument, 0, 'p'}, {0, 0, 0, 0}};
	static const char *const mods[] = {"other", "image", "text"}, *const labs[] = {"unknown", "safe", "unsafe"};
	struct stats *s = calloc(1, sizeof *s);
	int json = 0, ch, rc, first;
	const char *path, *plot = NULL;
	hydb_db *db;
	MDB_txn *txn;

	if (!s)
		return hydb_cli_fail("stats", HYDB_EXIT_DATA, "out of memory");
	s->bins = 20;
	if (want_help(argc, argv, stats_usage)) {
		free(s);
		return HYDB_EXIT_OK;
	}
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 'j') json = 1;
		else if (ch == 'b') {
			unsigned long long b;
			if (hydb_cli_parse_uint("stats", "--bins", optarg, 1, MAXBINS, &b)) {
				free(s);
				return HYDB_EXIT_USAGE;
			}
			s->bins = (int)b;
		}
		else if (ch == 'p') plot = optarg;
		else { free(s); fputs(stats_usage, stderr); return HYDB_EXIT_USAGE; }
	}
	first = optind;
	if (hydb_cli_db_positional("stats", argc, argv, &first, 0, &path) || first < argc) {
		free(s);
		if (first < argc && path)
			return hydb_cli_fail("stats", HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[first]);
		return HYDB_EXIT_USAGE;
	}
	if ((rc = hydb_cli_open(&db, path, 1)) < 0) {
		free(s);
		return hydb_cli_fail_lib("stats", rc);
	}
	s->rmin = INFINITY;
	s->rmax = -INFINITY;
	rc = hydb_store_read_begin(hydb_db_store(db), &txn);
	if (rc == 0) {
		rc = stats_pass(hydb_db_store(db), txn, s, 0);
		if (rc == 0 && s->count)
			rc = stats_pass(hydb_db_store(db), txn, s, 1);
		hydb_store_read_end(hydb_db_store(db), txn);
	}
	if (rc < 0) {
		free(s);
		hydb_close(db);
		return hydb_cli_fail_lib("stats", rc);
	}
	if (!s->count)
		s->rmin = s->rmax = 0;
	{
		uint64_t bytes = dir_bytes(hydb_cli_db_path(path));
		if (json) {
			printf("{\"count\":%llu,\"dim\":%zu,\"curvature\":%.17g,\"disk_bytes\":%llu,"
			       "\"radius_min\":%.9g,\"radius_max\":%.9g,\"groups\":[",
			       (unsigned long long)s->count, hydb_dim(db), hydb_curvature(db),
			       (unsigned long long)bytes, s->rmin, s->rmax);
			int firstg = 1;
			for (int m = 0; m < 3; m++)
				for (int l = 0; l < 3; l++) {
					if (!s->by[m][l])
						continue;
					printf("%s{\"modality\":\"%s\",\"label\":\"%s\",\"count\":%llu,\"histogram\":[",
					       firstg ? "" : ",", mods[m], labs[l], (unsigned long long)s->by[m][l]);
					for (int b = 0; b < s->bins; b++)
						printf("%s%llu", b ? "," : "", (unsigned long long)s->hist[m][l][b]);
					printf("]}");
					firstg = 0;
				}
			printf("]}\n");
		} else {
			printf("records     %llu\ndimension   %zu\ncurvature   %g\ndisk        %.1f MiB\n",
			       (unsigned long long)s->count, hydb_dim(db), hydb_curvature(db), bytes / 1048576.0);
			printf("radius      %.4f .. %.4f\n", s->rmin, s->rmax);
			for (int m = 0; m < 3; m++)
				for (int l = 0; l < 3; l++) {
					uint64_t peak = 1;
					if (!s->by[m][l])
						continue;
					printf("\n%s / %s: %llu\n", mods[m], labs[l], (unsigned long long)s->by[m][l]);
					for (int b = 0; b < s->bins; b++)
						if (s->hist[m][l][b] > peak) peak = s->hist[m][l][b];
					for (int b = 0; b < s->bins; b++) {
						double w = (s->rmax - s->rmin) / s->bins;
						int bar = (int)(40.0 * s->hist[m][l][b] / peak);
						printf("  %8.3f %8llu %.*s\n", s->rmin + w * b,
						       (unsigned long long)s->hist[m][l][b], bar,
						       "########################################");
					}
				}
		}
	}
	if (plot) {
		rc = hydb_cli_plot_histogram(plot, s->rmin, s->rmax, s->bins, MAXBINS, &s->hist[0][0][0]);
		if (rc < 0) {
			free(s);
			hydb_close(db);
			return hydb_cli_fail_lib("stats", rc);
		}
		fprintf(stderr, "wrote %s\n", plot);
	}
	free(s);
	hydb_close(db);
	return HYDB_EXIT_OK;
}
