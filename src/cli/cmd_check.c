/*
 * cmd_check.c - `hydb check`: verify the whole store (record checksums,
 * vector checksums, slot back-pointers, the key and radius tables, the
 * metadata, the index invariants) and clear stale reader slots; and
 * `hydb export`: write every record out.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "admin.h"

static const char check_usage[] =
	"usage: hydb check [DB] [--quiet]\n"
	"Verify every record's checksum and vector checksum, that records, keys, vector\n"
	"slots and the radius table agree, the metadata, and the HNSW invariants (every\n"
	"live slot is a node, no link to a free slot, degree bounds). Clears reader\n"
	"slots left by crashed processes. Prints each problem with the record id or\n"
	"slot; exit 0 if none, 2 otherwise. Index nodes that no search path reaches\n"
	"are listed as warnings (a graph-quality defect, not damage).\n"
	"Every index node (an even sample of 10,000 in larger databases) is then\n"
	"searched by its own vector at the default ef and the nodes not returned are\n"
	"counted (HNSW is approximate). A reachable node not returned even at ef\n"
	"10,000 is a problem in an index of at most 10,000 nodes, where that search\n"
	"visits every node; in a larger one it is a warning (a hub can hold more\n"
	"leaves than the beam, as WordNet's do).\n";

/* Self-search: how many nodes are searched by their own vector, and the
 * beam of the second search of a node the default ef missed. Up to that
 * many nodes the second beam visits every reachable node, so a miss there
 * means the walk's keys are wrong. */
#define SELF_SAMPLE 10000
#define SELF_WIDE_EF 10000

/* Lines printed of each kind of finding; past them only the totals tell. */
#define MAX_PROBLEM_LINES 1000
#define MAX_WARNING_LINES 100

/* Lines seen so far, one counter per hydb_finding, and whether a lost node
 * proves wrong keys (the wide search visited every node) or is only hard
 * to find (the graph is larger than the wide beam). */
struct seen {
	size_t n[HYDB_FINDING_LOST + 1];
	int lost_is_problem;
};

/* Misses at the default ef are a figure of HNSW's approximation, as recall
 * is: counted, not listed. */
static void print_finding(hydb_finding kind, const char *msg, void *ctx)
{
	struct seen *s = ctx;
	size_t *n = &s->n[kind];
	int warning = kind == HYDB_FINDING_UNREACHABLE ||
		      (kind == HYDB_FINDING_LOST && !s->lost_is_problem);
	if (*n < (warning ? MAX_WARNING_LINES : MAX_PROBLEM_LINES))
		fprintf(stdout, "%s: %s\n", warning ? "warning" : "problem", msg);
	(*n)++;
}

/* What hydb_open's structural check of the LMDB file found. */
static void print_lmdb(hydb_db *db)
{
	hydb_lmdb_report v;
	if (hydb_lmdb_verified(db, &v) < 0)
		return;
	printf("LMDB structure of transaction %llu verified: %llu tables, %llu branch, %llu leaf, "
	       "%llu overflow and %llu free pages\n", (unsigned long long)v.txnid,
	       (unsigned long long)v.tables, (unsigned long long)v.branch_pages,
	       (unsigned long long)v.leaf_pages, (unsigned long long)v.overflow_pages,
	       (unsigned long long)v.free_pages);
	if (v.unaccounted)
		printf("warning: %llu LMDB pages are neither used nor free (space leaked, data "
		       "intact)\n", (unsigned long long)v.unaccounted);
	if (v.count_mismatches)
		printf("warning: %llu LMDB tables store page or entry counts that differ from "
		       "their trees (statistics only)\n", (unsigned long long)v.count_mismatches);
}

/* The totals after the findings; index problems include lost nodes when
 * they prove wrong keys. */
static void print_summary(const hydb_check_result *r, int quiet, int lost_is_problem)
{
	const hydb_check_report *c = &r->report;
	size_t index_problems = c->index_problems + (lost_is_problem ? r->self_lost : 0);
	if (!quiet || c->store_problems || index_problems)
		printf("checked %llu records, %llu vector slots, %llu keys, %llu radius entries: "
		       "%zu store problems, %zu index problems; cleared %d stale reader slot%s\n",
		       (unsigned long long)c->records, (unsigned long long)c->live_slots,
		       (unsigned long long)c->keys, (unsigned long long)c->radius_entries, c->store_problems,
		       index_problems, r->stale_readers, r->stale_readers == 1 ? "" : "s");
	if (c->unreachable)
		printf("warning: %zu index node%s cannot be reached from the entry point: index searches miss "
		       "them, --exact finds them\n", c->unreachable, c->unreachable == 1 ? "" : "s");
	if (r->outside_tree)
		printf("warning: %zu index node%s outside the reachability tree: deletions near them may cut "
		       "them off from index searches\n", r->outside_tree, r->outside_tree == 1 ? " is" : "s are");
	if (r->searched && (!quiet || r->self_lost))
		printf("searched %zu index node%s by %s own vector at ef %zu: %zu not returned, %zu of them not "
		       "even at ef %u (--exact finds them all)\n", r->self_checked,
		       r->self_checked == 1 ? "" : "s", r->self_checked == 1 ? "its" : "their", r->self_ef,
		       r->self_missed + r->self_lost, r->self_lost, SELF_WIDE_EF);
}

static int check_args(int argc, char **argv, int *quiet, const char **path)
{
	static const struct option lo[] = {{"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'},
					   {0, 0, 0, 0}};
	int ch, rc;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "q", lo, NULL)) != -1) {
		if (ch == 'q') *quiet = 1;
		else if (ch == 'h') { fputs(check_usage, stdout); return -1; }
		else return hydb_cli_bad_option("check", argv);
	}
	if ((rc = hydb_cli_db_positional("check", argc, argv, &optind, 0, path)))
		return rc;
	if (optind < argc)
		return hydb_cli_fail("check", HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
	return HYDB_EXIT_OK;
}

int hydb_cmd_check(int argc, char **argv)
{
	struct seen lines = {{0}, 0};
	hydb_check_options o = {HYDB_CHECK_CLEAR_READERS | HYDB_CHECK_OUTSIDE_TREE | HYDB_CHECK_SELF_SEARCH,
				SELF_SAMPLE, SELF_WIDE_EF, print_finding, &lines};
	uint64_t count = 0;
	hydb_check_result r;
	const char *path = NULL;
	int rc, quiet = 0;
	hydb_db *db;

	if ((rc = check_args(argc, argv, &quiet, &path)))
		return rc < 0 ? HYDB_EXIT_OK : rc;
	if ((rc = hydb_cli_open(&db, path, 1)) < 0)
		return hydb_cli_fail_lib("check", rc);
	if (!quiet)
		print_lmdb(db); /* the open itself verified LMDB's structure */
	rc = hydb_count(db, &count);
	lines.lost_is_problem = count <= SELF_WIDE_EF;
	if (rc == 0)
		rc = hydb_check_run(db, &o, &r);
	hydb_close(db);
	if (rc < 0)
		return hydb_cli_fail_lib("check", rc);
	print_summary(&r, quiet, lines.lost_is_problem);
	return r.report.store_problems || r.report.index_problems ||
			       (r.self_lost && lines.lost_is_problem)
		       ? HYDB_EXIT_DATA
		       : HYDB_EXIT_OK;
}

/* ---- export ------------------------------------------------------------- */

static const char export_usage[] =
	"usage: hydb export [DB] [-o FILE] [--format jsonl|npy]\n"
	"Write every record as JSON Lines (key, vector, caption, modality, label,\n"
	"meta, item: the import format), or the vectors alone as a float32 .npy in id\n"
	"order. Default: JSON Lines to standard output; the format follows -o's suffix.\n";

struct export_ctx {
	FILE *f;
	int npy;
	uint64_t n;
};

static int export_one(const hydb_entry *e, void *vctx)
{
	struct export_ctx *c = vctx;
	if (c->npy) {
		if (fwrite(e->vector, sizeof(float), e->dim, c->f) != e->dim)
			return hydb_error_set(HYDB_EIO, "export: write failed");
	} else {
		hydb_cli_print_entry(c->f, e, 1, 1);
	}
	c->n++;
	return ferror(c->f) ? hydb_error_set(HYDB_EIO, "export: write failed") : HYDB_OK;
}

int hydb_cmd_export(int argc, char **argv)
{
	static const struct option lo[] = {{"output", required_argument, 0, 'o'},
					   {"format", required_argument, 0, 'f'},
					   {"help", no_argument, 0, 'h'},
					   {0, 0, 0, 0}};
	const char *out = NULL, *fmt = NULL, *path = NULL;
	struct export_ctx c = {stdout, 0, 0};
	char tmp[4200];
	hydb_db *db;
	uint64_t count = 0;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
		if (ch == 'o') out = optarg;
		else if (ch == 'f') fmt = optarg;
		else if (ch == 'h') { fputs(export_usage, stdout); return HYDB_EXIT_OK; }
		else return hydb_cli_bad_option("export", argv);
	}
	if ((rc = hydb_cli_db_positional("export", argc, argv, &optind, 0, &path)))
		return rc;
	if (optind < argc)
		return hydb_cli_fail("export", HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
	if (!fmt)
		fmt = out && strlen(out) > 4 && !strcmp(out + strlen(out) - 4, ".npy") ? "npy" : "jsonl";
	if (strcmp(fmt, "npy") && strcmp(fmt, "jsonl"))
		return hydb_cli_fail("export", HYDB_EXIT_USAGE, "--format must be jsonl or npy");
	c.npy = !strcmp(fmt, "npy");
	if (c.npy && !out)
		return hydb_cli_fail("export", HYDB_EXIT_USAGE, "npy output needs -o FILE.npy");
	if ((rc = hydb_cli_open(&db, path, 1)) < 0)
		return hydb_cli_fail_lib("export", rc);
	if (out) {
		/* Written beside the target and renamed: no half-written file. */
		snprintf(tmp, sizeof tmp, "%s.tmp", out);
		c.f = fopen(tmp, "wb");
		if (!c.f) {
			hydb_close(db);
			return hydb_cli_fail("export", HYDB_EXIT_DATA, "%s: %m", out);
		}
	}
	rc = hydb_count(db, &count);
	if (rc == 0 && c.npy) {
		char hdr[128];
		int len = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %zu), }",
				   (unsigned long long)count, hydb_dim(db));
		int pad = 64 - (10 + len + 1) % 64;
		fwrite("\x93NUMPY\x01\x00", 1, 8, c.f);
		fputc((len + pad + 1) & 0xff, c.f);
		fputc((len + pad + 1) >> 8, c.f);
		fwrite(hdr, 1, (size_t)len, c.f);
		for (int i = 0; i < pad; i++)
			fputc(' ', c.f);
		fputc('\n', c.f);
	}
	if (rc == 0)
		rc = hydb_each_entry(db, export_one, &c);
	if (out) {
		if (fclose(c.f) != 0 && rc == 0)
			rc = hydb_error_set(HYDB_EIO, "%s: write failed", out);
		if (rc == 0 && rename(tmp, out) != 0)
			rc = hydb_error_set(HYDB_EIO, "%s: cannot rename into place", out);
		if (rc < 0)
			remove(tmp);
	}
	hydb_close(db);
	if (rc < 0)
		return hydb_cli_fail_lib("export", rc);
	if (out)
		fprintf(stderr, "exported %llu records to %s\n", (unsigned long long)c.n, out);
	return HYDB_EXIT_OK;
}
