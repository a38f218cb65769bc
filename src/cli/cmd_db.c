/*
 * cmd_db.c - database housekeeping subcommands: init, get, delete, stats,
 * export.
 */
#include "config.h"

#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "admin.h"

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
		default: return hydb_cli_bad_option("init", argv);
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
	hydb_open_options_init(&o);
	o.flags = readonly ? HYDB_OPEN_RDONLY : 0;
	return hydb_open(db, hydb_cli_db_path(path), &o);
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
		else
			return hydb_cli_bad_option("get", argv);
	}
	first = optind;
	if ((rc = hydb_cli_db_positional("get", argc, argv, &first, 1, &path)))
		return rc;
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
	"usage: hydb delete [DB] (KEY... | --keys-file F | --id N...) [--missing-ok]\n"
	"Delete records in one transaction: their index links are repaired in one\n"
	"pass and their space reused. --keys-file reads one key a line ('-': stdin).\n"
	"A record that is not there fails the whole command and nothing is deleted,\n"
	"unless --missing-ok (then it is skipped and counted).\n";

/* A growing list of keys: the arguments' own strings, or lines read. */
struct key_list {
	char **v;
	size_t n, cap;
	int owned; /* strings were read from a file and are ours to free */
};

static int key_list_add(struct key_list *l, char *k)
{
	char **nv = hydb_array_grow(l->v, &l->cap, l->n + 1, sizeof *nv, "key list");
	if (!nv)
		return -1;
	l->v = nv;
	l->v[l->n++] = k;
	return 0;
}

static int read_keys_file(const char *path, struct key_list *l)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int status = HYDB_EXIT_OK;
	struct stat sb;
	if (f && f != stdin && fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
		fclose(f);
		return hydb_cli_fail("delete", HYDB_EXIT_DATA, "%s: is a directory, not a keys file", path);
	}
	if (!f)
		return hydb_cli_fail("delete", HYDB_EXIT_DATA, "%s: %m", path);
	l->owned = 1;
	while (status == HYDB_EXIT_OK && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (!len)
			continue;
		char *k = strdup(line);
		if (!k || key_list_add(l, k)) {
			free(k);
			status = hydb_cli_fail("delete", HYDB_EXIT_DATA, "%s: line %zu: out of memory", path, lineno);
		}
	}
	if (status == HYDB_EXIT_OK && ferror(f))
		status = hydb_cli_fail("delete", HYDB_EXIT_DATA, "%s: %m", path);
	free(line);
	if (f != stdin)
		fclose(f);
	return status;
}

static void key_list_free(struct key_list *l)
{
	for (size_t i = 0; l->owned && i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

struct delete_args {
	struct key_list keys;
	uint64_t *ids;
	size_t nids, cap_ids;
	const char *keys_file;
	unsigned flags;
};

static int delete_parse(int argc, char **argv, struct delete_args *a, int *first)
{
	static const struct option lo[] = {{"id", required_argument, 0, 'i'},
					   {"keys-file", required_argument, 0, 'f'},
					   {"missing-ok", no_argument, 0, 'm'},
					   {0, 0, 0, 0}};
	unsigned long long v;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 'i') {
			if (hydb_cli_parse_uint("delete", "--id", optarg, 1, UINT64_MAX, &v))
				return HYDB_EXIT_USAGE;
			uint64_t *nv = hydb_array_grow(a->ids, &a->cap_ids, a->nids + 1, sizeof *nv, "--id");
			if (!nv)
				return hydb_cli_fail("delete", HYDB_EXIT_DATA, "out of memory");
			a->ids = nv;
			a->ids[a->nids++] = v;
		} else if (ch == 'f') {
			a->keys_file = optarg;
		} else if (ch == 'm') {
			a->flags |= HYDB_DELETE_MISSING_OK;
		} else {
			return hydb_cli_bad_option("delete", argv);
		}
	}
	*first = optind;
	return HYDB_EXIT_OK;
}

int hydb_cmd_delete(int argc, char **argv)
{
	struct delete_args a;
	int rc, first, status;
	size_t done = 0, asked;
	const char *path;
	hydb_db *db;

	if (want_help(argc, argv, delete_usage))
		return HYDB_EXIT_OK;
	memset(&a, 0, sizeof a);
	status = delete_parse(argc, argv, &a, &first);
	if (status == HYDB_EXIT_OK)
		status = hydb_cli_db_positional("delete", argc, argv, &first, 1, &path);
	for (int i = first; status == HYDB_EXIT_OK && i < argc; i++)
		if (key_list_add(&a.keys, argv[i]))
			status = hydb_cli_fail("delete", HYDB_EXIT_DATA, "out of memory");
	if (status == HYDB_EXIT_OK && a.keys_file) {
		if (a.keys.n)
			status = hydb_cli_fail("delete", HYDB_EXIT_USAGE, "give KEYs or --keys-file, not both");
		else
			status = read_keys_file(a.keys_file, &a.keys);
	}
	if (status == HYDB_EXIT_OK && !a.keys.n == !a.nids)
		status = hydb_cli_fail("delete", HYDB_EXIT_USAGE,
				       a.nids ? "give KEYs or --id N, not both" : "give a KEY, --keys-file F or --id N");
	if (status == HYDB_EXIT_OK) {
		asked = a.nids ? a.nids : a.keys.n;
		if ((rc = hydb_cli_open(&db, path, 0)) < 0) {
			status = hydb_cli_fail_lib("delete", rc);
		} else {
			rc = hydb_delete_batch(db, a.nids ? NULL : (const char *const *)a.keys.v, a.ids, asked,
					       a.flags, &done);
			if (rc < 0)
				status = hydb_cli_fail_lib("delete", rc);
			else if (done < asked)
				printf("deleted %zu record%s; %zu of the %zu named were repeats or not there\n", done,
				       done == 1 ? "" : "s", asked - done, asked);
			else
				printf("deleted %zu record%s\n", done, done == 1 ? "" : "s");
			hydb_close(db);
		}
	}
	key_list_free(&a.keys);
	free(a.ids);
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
#define DEFAULT_BINS 20

static const char *const stats_mods[] = {"other", "image", "text"};
static const char *const stats_labs[] = {"unknown", "safe", "unsafe"};

/* Counts, radius range and histogram, from one snapshot (src/inspect.c). */
struct stats {
	hydb_db_stats s;
	uint64_t hist[HYDB_N_MODALITIES][HYDB_N_LABELS][MAXBINS];
	int bins;
};

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

static void stats_print_json(hydb_db *db, const struct stats *st, uint64_t bytes)
{
	const hydb_db_stats *s = &st->s;
	int firstg = 1;
	printf("{\"count\":%llu,\"dim\":%zu,\"curvature\":%.17g,\"disk_bytes\":%llu,"
	       "\"radius_min\":%.9g,\"radius_max\":%.9g,\"groups\":[",
	       (unsigned long long)s->count, hydb_dim(db), hydb_curvature(db),
	       (unsigned long long)bytes, s->radius_min, s->radius_max);
	for (int m = 0; m < HYDB_N_MODALITIES; m++)
		for (int l = 0; l < HYDB_N_LABELS; l++) {
			if (!s->groups[m][l])
				continue;
			printf("%s{\"modality\":\"%s\",\"label\":\"%s\",\"count\":%llu,\"histogram\":[",
			       firstg ? "" : ",", stats_mods[m], stats_labs[l], (unsigned long long)s->groups[m][l]);
			for (int b = 0; b < st->bins; b++)
				printf("%s%llu", b ? "," : "", (unsigned long long)st->hist[m][l][b]);
			printf("]}");
			firstg = 0;
		}
	printf("]}\n");
}

/* One group's histogram as bars scaled to its fullest bin. */
static void stats_print_bars(const struct stats *st, int m, int l)
{
	const hydb_db_stats *s = &st->s;
	uint64_t peak = 1;
	printf("\n%s / %s: %llu\n", stats_mods[m], stats_labs[l], (unsigned long long)s->groups[m][l]);
	for (int b = 0; b < st->bins; b++)
		if (st->hist[m][l][b] > peak) peak = st->hist[m][l][b];
	for (int b = 0; b < st->bins; b++) {
		double w = (s->radius_max - s->radius_min) / st->bins;
		int bar = (int)(40.0 * st->hist[m][l][b] / peak);
		printf("  %8.3f %8llu %.*s\n", s->radius_min + w * b, (unsigned long long)st->hist[m][l][b], bar,
		       "########################################");
	}
}

static void stats_print_text(hydb_db *db, const struct stats *st, uint64_t bytes)
{
	const hydb_db_stats *s = &st->s;
	printf("records     %llu\ndimension   %zu\ncurvature   %g\ndisk        %.1f MiB\n",
	       (unsigned long long)s->count, hydb_dim(db), hydb_curvature(db), bytes / 1048576.0);
	printf("radius      %.4f .. %.4f\n", s->radius_min, s->radius_max);
	for (int m = 0; m < HYDB_N_MODALITIES; m++)
		for (int l = 0; l < HYDB_N_LABELS; l++)
			if (s->groups[m][l])
				stats_print_bars(st, m, l);
}

struct stats_args {
	int json, bins;
	const char *path, *plot;
};

/* 0 to go on, -1 after --help, else the exit status. */
static int stats_parse(int argc, char **argv, struct stats_args *a)
{
	static const struct option lo[] = {{"json", no_argument, 0, 'j'}, {"bins", required_argument, 0, 'b'},
					   {"plot", required_argument, 0, 'p'}, {0, 0, 0, 0}};
	unsigned long long b;
	int ch, first;

	if (want_help(argc, argv, stats_usage))
		return -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 'j') a->json = 1;
		else if (ch == 'b') {
			if (hydb_cli_parse_uint("stats", "--bins", optarg, 1, MAXBINS, &b))
				return HYDB_EXIT_USAGE;
			a->bins = (int)b;
		}
		else if (ch == 'p') a->plot = optarg;
		else return hydb_cli_bad_option("stats", argv);
	}
	first = optind;
	if ((ch = hydb_cli_db_positional("stats", argc, argv, &first, 0, &a->path)))
		return ch;
	if (first < argc)
		return hydb_cli_fail("stats", HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[first]);
	return HYDB_EXIT_OK;
}

/* Everything after the statistics are read: the report, then the plot. */
static int stats_report(hydb_db *db, const struct stats_args *a, const struct stats *st)
{
	uint64_t bytes = dir_bytes(hydb_cli_db_path(a->path));
	int rc;
	if (a->json)
		stats_print_json(db, st, bytes);
	else
		stats_print_text(db, st, bytes);
	if (!a->plot)
		return HYDB_EXIT_OK;
	rc = hydb_cli_plot_histogram(a->plot, st->s.radius_min, st->s.radius_max, st->bins, MAXBINS,
				     &st->hist[0][0][0]);
	if (rc < 0)
		return hydb_cli_fail_lib("stats", rc);
	fprintf(stderr, "wrote %s\n", a->plot);
	return HYDB_EXIT_OK;
}

int hydb_cmd_stats(int argc, char **argv)
{
	struct stats_args a = {0, DEFAULT_BINS, NULL, NULL};
	struct stats *st;
	hydb_db *db;
	int rc;

	if ((rc = stats_parse(argc, argv, &a)))
		return rc < 0 ? HYDB_EXIT_OK : rc;
	if (!(st = calloc(1, sizeof *st)))
		return hydb_cli_fail("stats", HYDB_EXIT_DATA, "out of memory");
	st->bins = a.bins;
	if ((rc = hydb_cli_open(&db, a.path, 1)) < 0) {
		free(st);
		return hydb_cli_fail_lib("stats", rc);
	}
	rc = hydb_stats_histogram(db, &st->s, (unsigned)st->bins, MAXBINS, &st->hist[0][0][0]);
	rc = rc < 0 ? hydb_cli_fail_lib("stats", rc) : stats_report(db, &a, st);
	free(st);
	hydb_close(db);
	return rc;
}
