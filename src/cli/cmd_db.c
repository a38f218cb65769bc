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
#include "search_exact.h"
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
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 64;
		char **nv = realloc(l->v, nc * sizeof *nv);
		if (!nv)
			return -1;
		l->v = nv;
		l->cap = nc;
	}
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
			if (a->nids == a->cap_ids) {
				size_t nc = a->cap_ids ? 2 * a->cap_ids : 16;
				uint64_t *nv = realloc(a->ids, nc * sizeof *nv);
				if (!nv)
					return hydb_cli_fail("delete", HYDB_EXIT_DATA, "out of memory");
				a->ids = nv;
				a->cap_ids = nc;
			}
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
		else { free(s); return hydb_cli_bad_option("stats", argv); }
	}
	first = optind;
	if ((rc = hydb_cli_db_positional("stats", argc, argv, &first, 0, &path)) ||
	    (first < argc && (rc = hydb_cli_fail("stats", HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[first])))) {
		free(s);
		return rc;
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
