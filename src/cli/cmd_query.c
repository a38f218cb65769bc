/*
 * cmd_query.c - `hydb query`: k-NN by geodesic distance from a vector, a
 * stored record, a caption or an image, optionally filtered (--safe-only,
 * radius, modality, label) or redirected toward the origin (--redirect).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/model_select.h"
#include "cli/output.h"
#include "cli/query_input.h"
#include "admin.h"

static const char usage[] =
	"usage: hydb query [DB] (--vector '[x1,...]' | --vector-file F | --like KEY |\n"
	"                        --text \"...\" | --image FILE) [options]\n"
	"  --vector-file F       queries from F: one JSON array, JSON Lines (an array or\n"
	"                        {\"vector\": [...]} a line), .npy (n x D) or .fvecs; many\n"
	"                        queries run as one batch, grouped by query in the output\n"
	"  -k N                  results wanted, 1..100000 (default 10)\n"
	"  --ef N                search beam, 1..100000; larger = better recall; a beam below\n"
	"                        k is raised to k (default: the beam the database measured for\n"
	"                        --recall, see hydb tune; max(k, 64) before it measured one)\n"
	"  --recall R            recall@10 the default beam aims for, 0 < R <= 1 (default 0.97)\n"
	"  --exact               brute force instead of the index\n"
	"  --safe-only           only entries labelled safe\n"
	"  --label L             only entries labelled L (safe, unsafe, unknown);\n"
	"                        repeat for any of several labels\n"
	"  --modality M          only entries of modality M (image, text, other);\n"
	"                        repeat for any of several\n"
	"  --min-radius R, --max-radius R   radius filter\n"
	"                        (different filters intersect; contradictory ones are an error)\n"
	"  --redirect[=hysac|geodesic]      move an unsafe query toward the origin first\n"
	"                        (bound ub' = ub + tanh((ub-0.8)/c) + 1, ub = safe up_95 of\n"
	"                        the searched modality; see README)\n"
	"  --bound UB            override ub for --redirect\n"
	"  --within-cone         only entries whose entailment cone holds the query\n"
	"                        (its more generic parents)\n"
	"  --contains-cone       only entries inside the query's cone (its more specific\n"
	"                        children); both flags: both tests. JSON gives the angles\n"
	"  --model FILE          model for --text/--image (else $HYDB_MODEL or the database's)\n"
	"  --precision P         f32 (default) or bf16: the encoder's arithmetic for --text/--image\n"
	"  --json                one JSON object per result\n"
	"  --sheet OUT.png       contact sheet of image results\n";

struct qopts {
	hydb_search_options so;
	const char *vector, *vector_file, *like, *text, *image, *model, *sheet;
	double bound;
	int json, modality_filter, safe_only;
	hydb_precision precision;
};

/* A repeated --label or --modality widens the set (any of the values). */
static int add_choice(const char *opt, const char *val, int (*parse)(const char *), unsigned *set)
{
	int v = parse(val);
	if (v < 0)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE, "%s: unknown value '%s'", opt, val);
	*set |= HYDB_MASK(v);
	return 0;
}

/* Different filters intersect, and --safe-only is never weakened: a label
 * set that leaves nothing to match is a contradiction, not a wider search. */
static int combine_filters(struct qopts *o, unsigned labels, unsigned mods)
{
	unsigned lm = labels ? labels : ~0u;
	if (o->safe_only)
		lm &= HYDB_MASK(HYDB_LABEL_SAFE);
	if (!(lm & (HYDB_MASK(HYDB_LABEL_UNKNOWN) | HYDB_MASK(HYDB_LABEL_SAFE) | HYDB_MASK(HYDB_LABEL_UNSAFE))))
		return hydb_cli_fail("query", HYDB_EXIT_USAGE,
				     "--safe-only conflicts with --label: no label satisfies both filters");
	o->so.label_mask = labels || o->safe_only ? lm : 0;
	o->so.modality_mask = mods;
	/* The redirect bound follows the searched modality when there is one. */
	o->modality_filter = mods && !(mods & (mods - 1)) ? __builtin_ctz(mods) : -1;
	if (o->so.min_radius > o->so.max_radius)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE,
				     "--min-radius %g is above --max-radius %g: no radius satisfies both",
				     o->so.min_radius, o->so.max_radius);
	return 0;
}

/* Builds the query vectors (*nq of them, *qs to free); *qmod receives
 * the queries' own modality when they have one. */
static int make_queries(hydb_db *db, struct qopts *o, float **qs, size_t *nq, int *qmod,
			hydb_model **model)
{
	size_t dim = hydb_dim(db);
	float *q;
	*qmod = -1;
	if (o->vector_file)
		return hydb_cli_read_queries(o->vector_file, dim, hydb_curvature(db), qs, nq);
	q = *qs = calloc(dim, sizeof *q);
	RETURN_ERROR_IF(!q, HYDB_ENOMEM, "out of memory");
	*nq = 1;
	if (o->vector)
		return hydb_cli_parse_query_json(o->vector, strlen(o->vector), q, dim, "--vector");
	if (o->like) {
		hydb_entry *e;
		FORWARD_IF_ERROR(hydb_get_key(db, o->like, &e));
		memcpy(q, e->vector, dim * sizeof *q);
		*qmod = e->modality;
		hydb_entry_free(e);
		return HYDB_OK;
	}
	FORWARD_IF_ERROR(hydb_cli_model_for_db(model, db, o->model, o->precision));
	RETURN_ERROR_IF(hydb_model_dim(*model) != dim, HYDB_EDIM,
			"model embeds in %zu dimensions, the database has %zu", hydb_model_dim(*model), dim);
	if (o->text) {
		*qmod = HYDB_MOD_TEXT;
		return hydb_encode_text(*model, o->text, q, NULL, NULL);
	}
	*qmod = HYDB_MOD_IMAGE;
	return hydb_encode_image_files(*model, &o->image, 1, q, NULL, NULL);
}

/* ub for the searched modality: --bound, else the model's, else the
 * bound recorded in the database at ingest or calibration. */
static int redirect_bound(hydb_db *db, hydb_model *model, struct qopts *o, int qmod, double *ub)
{
	int mod = o->modality_filter >= 0 ? o->modality_filter : qmod >= 0 ? qmod : HYDB_MOD_IMAGE;
	const char *name = mod == HYDB_MOD_TEXT ? "bound_text_up95" : "bound_image_up95";
	char buf[64];
	if (!isnan(o->bound)) {
		*ub = o->bound;
		return HYDB_OK;
	}
	if (model) {
		*ub = hydb_model_bound(model, mod == HYDB_MOD_TEXT ? HYDB_MOD_TEXT : HYDB_MOD_IMAGE);
		if (*ub > 0 && isfinite(*ub))
			return HYDB_OK;
	}
	if (hydb_db_meta_get(db, name, buf, sizeof buf) == 0) {
		*ub = strtod(buf, NULL);
		if (*ub > 0 && isfinite(*ub))
			return HYDB_OK;
	}
	return hydb_error_set(HYDB_EINVAL,
			      "--redirect: no safety bound known for %s (ingest with a model, run 'hydb calibrate', or pass --bound UB)",
			      mod == HYDB_MOD_TEXT ? "text" : "images");
}

/* The filters wanted so far; combine_filters settles them after the
 * options. */
struct qfilters {
	unsigned labels, mods;
	int nsrc; /* query sources given */
};

/* Options that take a number: 0, or HYDB_EXIT_USAGE with the message
 * printed. */
static int numeric_option(int ch, const char *arg, struct qopts *o)
{
	hydb_search_options *so = &o->so;
	switch (ch) {
	case 'k': return hydb_cli_parse_size("query", "-k", arg, 1, HYDB_MAX_K, &so->k) ? HYDB_EXIT_USAGE : 0;
	case 'e': return hydb_cli_parse_size("query", "--ef", arg, 1, HYDB_MAX_EF, &so->ef) ? HYDB_EXIT_USAGE : 0;
	case 'c':
		return hydb_cli_parse_double("query", "--recall", arg, 1e-9, 1, &so->target_recall) ? HYDB_EXIT_USAGE
												: 0;
	case 'r':
		return hydb_cli_parse_double("query", "--min-radius", arg, 0, HUGE_VAL, &so->min_radius)
			       ? HYDB_EXIT_USAGE : 0;
	case 'R':
		return hydb_cli_parse_double("query", "--max-radius", arg, 0, HUGE_VAL, &so->max_radius)
			       ? HYDB_EXIT_USAGE : 0;
	default: /* 'B' */
		if (hydb_cli_parse_double("query", "--bound", arg, 0, HYDB_MAX_RADIUS, &o->bound))
			return HYDB_EXIT_USAGE;
		if (!(o->bound > 0))
			return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--bound: '%s' is not a positive number", arg);
		return 0;
	}
}

/* One option of getopt_long: 0 to go on, -1 after --help, else the exit
 * status. */
static int query_option(int ch, const char *arg, char **argv, struct qopts *o, struct qfilters *f)
{
	switch (ch) {
	case 'k': case 'e': case 'c': case 'r': case 'R': case 'B':
		return numeric_option(ch, arg, o);
	case 'v': o->vector = arg; f->nsrc++; return 0;
	case 'V': o->vector_file = arg; f->nsrc++; return 0;
	case 'l': o->like = arg; f->nsrc++; return 0;
	case 't': o->text = arg; f->nsrc++; return 0;
	case 'i': o->image = arg; f->nsrc++; return 0;
	case 'x': o->so.exact = 1; return 0;
	case 'W': o->so.cone |= HYDB_CONE_WITHIN; return 0;
	case 'C': o->so.cone |= HYDB_CONE_CONTAINS; return 0;
	case 's': o->safe_only = 1; return 0;
	case 'L': return add_choice("--label", arg, hydb_cli_label_parse, &f->labels) ? HYDB_EXIT_USAGE : 0;
	case 'm': return add_choice("--modality", arg, hydb_cli_modality_parse, &f->mods) ? HYDB_EXIT_USAGE : 0;
	case 'D':
		if (!arg || !strcmp(arg, "hysac")) o->so.redirect = HYDB_REDIRECT_HYSAC;
		else if (!strcmp(arg, "geodesic")) o->so.redirect = HYDB_REDIRECT_GEODESIC;
		else return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--redirect: mode must be hysac or geodesic");
		return 0;
	case 'M': o->model = arg; return 0;
	case 'P': return hydb_cli_parse_precision("query", arg, &o->precision) ? HYDB_EXIT_USAGE : 0;
	case 'j': o->json = 1; return 0;
	case 'S': o->sheet = arg; return 0;
	case 'h': fputs(usage, stdout); return -1;
	default: return hydb_cli_bad_option("query", argv);
	}
}

/* Options that would be silently ignored are refused instead. */
static int refuse_ignored(const struct qopts *o)
{
	if (!isnan(o->bound) && !o->so.redirect)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--bound is used only with --redirect");
	if (o->so.ef && o->so.target_recall > 0)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--recall picks the beam; --ef sets it: give one");
	if (o->so.exact && o->so.target_recall > 0)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--recall picks the index's beam; --exact uses no index");
	if (o->so.exact && o->so.ef)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--ef sets the index's beam; --exact uses no index");
	return 0;
}

static int parse_args(int argc, char **argv, struct qopts *o, const char **dbpath)
{
	static const struct option lo[] = {
		{"vector", required_argument, 0, 'v'}, {"vector-file", required_argument, 0, 'V'},
		{"like", required_argument, 0, 'l'},   {"text", required_argument, 0, 't'},
		{"image", required_argument, 0, 'i'},  {"ef", required_argument, 0, 'e'},
		{"recall", required_argument, 0, 'c'},
		{"exact", no_argument, 0, 'x'},        {"safe-only", no_argument, 0, 's'},
		{"label", required_argument, 0, 'L'},  {"modality", required_argument, 0, 'm'},
		{"min-radius", required_argument, 0, 'r'}, {"max-radius", required_argument, 0, 'R'},
		{"redirect", optional_argument, 0, 'D'}, {"bound", required_argument, 0, 'B'},
		{"model", required_argument, 0, 'M'},  {"json", no_argument, 0, 'j'},
		{"sheet", required_argument, 0, 'S'},  {"help", no_argument, 0, 'h'},
		{"precision", required_argument, 0, 'P'},
		{"within-cone", no_argument, 0, 'W'}, {"contains-cone", no_argument, 0, 'C'},
		{0, 0, 0, 0}};
	struct qfilters f = {0, 0, 0};
	int ch, rc;

	hydb_search_options_init(&o->so);
	o->bound = NAN;
	o->modality_filter = -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "k:", lo, NULL)) != -1)
		if ((rc = query_option(ch, optarg, argv, o, &f)))
			return rc;
	if (f.nsrc != 1)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE,
				     "give exactly one of --vector, --vector-file, --like, --text, --image");
	if (combine_filters(o, f.labels, f.mods))
		return HYDB_EXIT_USAGE;
	if ((rc = refuse_ignored(o)))
		return rc;
	if ((rc = hydb_cli_db_positional("query", argc, argv, &optind, 0, dbpath)))
		return rc;
	if (optind < argc)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
	return 0;
}

static void print_redirect(const struct qopts *o, const hydb_results *res)
{
	const char *mode = o->so.redirect == HYDB_REDIRECT_HYSAC ? "hysac" : "geodesic";
	if (res->redirected)
		printf("redirected (%s): query radius %.4f -> %.4f (bound %.4f)\n", mode, res->query_radius,
		       res->searched_radius, o->so.redirect_bound);
	else
		printf("not redirected (%s): query radius %.4f is within the bound %.4f\n", mode,
		       res->query_radius, o->so.redirect_bound);
}

/* Results grouped by query: a "query N" line before each table when there
 * are several, and "query": N in every JSON object. */
static void print_all(const struct qopts *o, hydb_results **res, size_t nq)
{
	for (size_t i = 0; i < nq; i++) {
		if (nq > 1 && !o->json)
			printf("%squery %zu\n", i ? "\n" : "", i);
		if (o->so.redirect && !o->json)
			print_redirect(o, res[i]);
		hydb_cli_print_results(stdout, res[i], o->json, i);
	}
}

int hydb_cmd_query(int argc, char **argv)
{
	struct qopts o;
	const char *dbpath = NULL;
	hydb_model *model = NULL;
	hydb_results **res = NULL;
	hydb_db *db;
	float *qs = NULL;
	size_t nq = 0;
	int qmod = -1, rc, status;

	memset(&o, 0, sizeof o);
	status = parse_args(argc, argv, &o, &dbpath);
	if (status)
		return status < 0 ? HYDB_EXIT_OK : status;
	if ((rc = hydb_cli_open(&db, dbpath, 1)) < 0)
		return hydb_cli_fail_lib("query", rc);
	rc = make_queries(db, &o, &qs, &nq, &qmod, &model);
	if (rc == 0 && o.sheet && nq > 1)
		rc = hydb_error_set(HYDB_EINVAL, "--sheet draws one query's results; %s holds %zu queries",
				    o.vector_file, nq);
	if (rc == 0 && o.so.redirect) {
		double ub = 0;
		rc = redirect_bound(db, model, &o, qmod, &ub);
		if (rc == 0)
			o.so.redirect_bound = hydb_redirect_bound(ub, hydb_curvature(db));
	}
	if (rc == 0)
		rc = hydb_search_batch(db, &res, qs, nq, &o.so);
	if (rc < 0) {
		status = hydb_cli_fail_lib("query", rc);
		goto out;
	}
	print_all(&o, res, nq);
	if (o.sheet) {
		rc = hydb_cli_contact_sheet(o.sheet, db, res[0]);
		if (rc < 0)
			status = hydb_cli_fail_lib("query", rc);
		else if (!o.json)
			fprintf(stderr, "wrote %s\n", o.sheet);
	}
out:
	hydb_results_free_batch(res, nq);
	free(qs);
	hydb_model_close(model);
	hydb_close(db);
	return status;
}
