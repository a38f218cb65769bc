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
#include "db_internal.h"
#include "json.h"


static const char usage[] =
	"usage: hydb query [DB] (--vector '[x1,...]' | --vector-file F | --like KEY |\n"
	"                        --text \"...\" | --image FILE) [options]\n"
	"  -k N                  results wanted, 1..100000 (default 10)\n"
	"  --ef N                search beam, 1..100000 (default max(k, 64)); larger = better\n"
	"                        recall; a beam below k is raised to k\n"
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

/* Parse a JSON array of numbers into floats. */
static int parse_vector(const char *src, size_t dim, float *out, const char *what)
{
	hydb_json *j;
	int rc = hydb_json_parse(&j, src, strlen(src));
	if (rc < 0)
		return hydb_error_prefix(rc, "%s", what);
	if (j->type != HYDB_JSON_ARRAY) {
		hydb_json_free(j);
		return hydb_error_set(HYDB_EFORMAT, "%s: expected a JSON array of numbers", what);
	}
	if (j->n != dim) {
		size_t n = j->n;
		hydb_json_free(j);
		return hydb_error_set(HYDB_EDIM, "%s: vector has %zu components, the database needs %zu", what, n,
				      dim);
	}
	for (size_t i = 0; i < dim; i++) {
		if (j->items[i].type != HYDB_JSON_NUMBER) {
			hydb_json_free(j);
			return hydb_error_set(HYDB_EFORMAT, "%s: component %zu is not a number", what, i);
		}
		out[i] = (float)j->items[i].num;
	}
	hydb_json_free(j);
	return HYDB_OK;
}

static int read_file_text(const char *path, char **out)
{
	FILE *f = fopen(path, "rb");
	long n;
	char *buf;
	RETURN_ERROR_IF(!f, errno == ENOENT ? HYDB_ENOTFOUND : HYDB_EIO, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n < 0 || n > (64l << 20)) {
		fclose(f);
		return hydb_error_set(HYDB_ETOOBIG, "%s: vector file too large", path);
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		return hydb_error_set(HYDB_EIO, "%s: cannot read", path);
	}
	buf[n] = '\0';
	fclose(f);
	*out = buf;
	return HYDB_OK;
}

/* Builds the query vector; *qmod receives the query's own modality. */
static int make_query(hydb_db *db, struct qopts *o, float *q, int *qmod, hydb_model **model)
{
	size_t dim = hydb_dim(db);
	*qmod = -1;
	if (o->vector)
		return parse_vector(o->vector, dim, q, "--vector");
	if (o->vector_file) {
		char *text = NULL;
		int rc;
		FORWARD_IF_ERROR(read_file_text(o->vector_file, &text));
		rc = parse_vector(text, dim, q, o->vector_file);
		free(text);
		return rc;
	}
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

static int parse_args(int argc, char **argv, struct qopts *o, const char **dbpath)
{
	static const struct option lo[] = {
		{"vector", required_argument, 0, 'v'}, {"vector-file", required_argument, 0, 'V'},
		{"like", required_argument, 0, 'l'},   {"text", required_argument, 0, 't'},
		{"image", required_argument, 0, 'i'},  {"ef", required_argument, 0, 'e'},
		{"exact", no_argument, 0, 'x'},        {"safe-only", no_argument, 0, 's'},
		{"label", required_argument, 0, 'L'},  {"modality", required_argument, 0, 'm'},
		{"min-radius", required_argument, 0, 'r'}, {"max-radius", required_argument, 0, 'R'},
		{"redirect", optional_argument, 0, 'D'}, {"bound", required_argument, 0, 'B'},
		{"model", required_argument, 0, 'M'},  {"json", no_argument, 0, 'j'},
		{"sheet", required_argument, 0, 'S'},  {"help", no_argument, 0, 'h'},
		{"precision", required_argument, 0, 'P'},
		{0, 0, 0, 0}};
	int ch, nsrc = 0;
	unsigned labels = 0, mods = 0;

	hydb_search_options_init(&o->so);
	o->bound = NAN;
	o->modality_filter = -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "k:", lo, NULL)) != -1) {
		switch (ch) {
		case 'k':
			if (hydb_cli_parse_size("query", "-k", optarg, 1, HYDB_MAX_K, &o->so.k))
				return HYDB_EXIT_USAGE;
			break;
		case 'e':
			if (hydb_cli_parse_size("query", "--ef", optarg, 1, HYDB_MAX_EF, &o->so.ef))
				return HYDB_EXIT_USAGE;
			break;
		case 'v': o->vector = optarg; nsrc++; break;
		case 'V': o->vector_file = optarg; nsrc++; break;
		case 'l': o->like = optarg; nsrc++; break;
		case 't': o->text = optarg; nsrc++; break;
		case 'i': o->image = optarg; nsrc++; break;
		case 'x': o->so.exact = 1; break;
		case 's': o->safe_only = 1; break;
		case 'L':
			if (add_choice("--label", optarg, hydb_cli_label_parse, &labels))
				return HYDB_EXIT_USAGE;
			break;
		case 'm':
			if (add_choice("--modality", optarg, hydb_cli_modality_parse, &mods))
				return HYDB_EXIT_USAGE;
			break;
		case 'r':
			if (hydb_cli_parse_double("query", "--min-radius", optarg, 0, HUGE_VAL, &o->so.min_radius))
				return HYDB_EXIT_USAGE;
			break;
		case 'R':
			if (hydb_cli_parse_double("query", "--max-radius", optarg, 0, HUGE_VAL, &o->so.max_radius))
				return HYDB_EXIT_USAGE;
			break;
		case 'D':
			if (!optarg || !strcmp(optarg, "hysac")) o->so.redirect = HYDB_REDIRECT_HYSAC;
			else if (!strcmp(optarg, "geodesic")) o->so.redirect = HYDB_REDIRECT_GEODESIC;
			else return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--redirect: mode must be hysac or geodesic");
			break;
		case 'B':
			if (hydb_cli_parse_double("query", "--bound", optarg, 0, HYDB_MAX_RADIUS, &o->bound))
				return HYDB_EXIT_USAGE;
			if (!(o->bound > 0))
				return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--bound: '%s' is not a positive number", optarg);
			break;
		case 'M': o->model = optarg; break;
		case 'P':
			if (hydb_cli_parse_precision("query", optarg, &o->precision))
				return HYDB_EXIT_USAGE;
			break;
		case 'j': o->json = 1; break;
		case 'S': o->sheet = optarg; break;
		case 'h': fputs(usage, stdout); return -1;
		default: fputs(usage, stderr); return HYDB_EXIT_USAGE;
		}
	}
	if (nsrc != 1)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE,
				     "give exactly one of --vector, --vector-file, --like, --text, --image");
	if (combine_filters(o, labels, mods))
		return HYDB_EXIT_USAGE;
	/* Options that would be silently ignored are refused instead. */
	if (!isnan(o->bound) && !o->so.redirect)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--bound is used only with --redirect");
	if (o->so.exact && o->so.ef)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--ef sets the index's beam; --exact uses no index");
	if (hydb_cli_db_positional("query", argc, argv, &optind, 0, dbpath))
		return HYDB_EXIT_USAGE;
	if (optind < argc)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
	return 0;
}

int hydb_cmd_query(int argc, char **argv)
{
	struct qopts o;
	const char *dbpath = NULL;
	hydb_model *model = NULL;
	hydb_results *res = NULL;
	hydb_db *db;
	float *q;
	int qmod = -1, rc, status;

	memset(&o, 0, sizeof o);
	status = parse_args(argc, argv, &o, &dbpath);
	if (status)
		return status < 0 ? HYDB_EXIT_OK : status;
	if ((rc = hydb_cli_open(&db, dbpath, 1)) < 0)
		return hydb_cli_fail_lib("query", rc);
	q = calloc(hydb_dim(db), sizeof *q);
	rc = q ? make_query(db, &o, q, &qmod, &model) : hydb_error_set(HYDB_ENOMEM, "out of memory");
	if (rc == 0 && o.so.redirect) {
		double ub = 0;
		rc = redirect_bound(db, model, &o, qmod, &ub);
		if (rc == 0)
			o.so.redirect_bound = hydb_redirect_bound(ub, hydb_curvature(db));
	}
	if (rc == 0)
		rc = hydb_search(db, &res, q, &o.so);
	if (rc < 0) {
		status = hydb_cli_fail_lib("query", rc);
		goto out;
	}
	if (o.so.redirect && !o.json) {
		const char *mode = o.so.redirect == HYDB_REDIRECT_HYSAC ? "hysac" : "geodesic";
		if (res->redirected)
			printf("redirected (%s): query radius %.4f -> %.4f (bound %.4f)\n", mode,
			       res->query_radius, res->searched_radius, o.so.redirect_bound);
		else
			printf("not redirected (%s): query radius %.4f is within the bound %.4f\n", mode,
			       res->query_radius, o.so.redirect_bound);
	}
	hydb_cli_print_results(stdout, res, o.json, 0);
	if (o.sheet) {
		rc = hydb_cli_contact_sheet(o.sheet, db, res);
		if (rc < 0)
			status = hydb_cli_fail_lib("query", rc);
		else if (!o.json)
			fprintf(stderr, "wrote %s\n", o.sheet);
	}
out:
	hydb_results_free(res);
	free(q);
	hydb_model_close(model);
	hydb_close(db);
	return status;
}
