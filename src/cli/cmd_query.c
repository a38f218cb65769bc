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
	"  -k N                  results wanted (default 10)\n"
	"  --ef N                search beam (default max(k, 64)); larger = better recall\n"
	"  --exact               brute force instead of the index\n"
	"  --safe-only           only entries labelled safe\n"
	"  --label L             only entries labelled L (safe, unsafe, unknown)\n"
	"  --modality M          only entries of modality M (image, text, other)\n"
	"  --min-radius R, --max-radius R   radius filter\n"
	"  --redirect[=hysac|geodesic]      move an unsafe query toward the origin first\n"
	"                        (bound ub' = ub + tanh((ub-0.8)/c) + 1, ub = safe up_95 of\n"
	"                        the searched modality; see README)\n"
	"  --bound UB            override ub for --redirect\n"
	"  --model FILE          model for --text/--image (else $HYDB_MODEL or the database's)\n"
	"  --json                one JSON object per result\n"
	"  --sheet OUT.png       contact sheet of image results\n";

struct qopts {
	hydb_search_options so;
	const char *vector, *vector_file, *like, *text, *image, *model, *sheet;
	double bound;
	int json, modality_filter;
};

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
	FORWARD_IF_ERROR(hydb_cli_model_for_db(model, db, o->model));
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
		{0, 0, 0, 0}};
	int ch, nsrc = 0;
	char *end;
	struct stat sb;

	hydb_search_options_init(&o->so);
	o->bound = NAN;
	o->modality_filter = -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "k:", lo, NULL)) != -1) {
		switch (ch) {
		case 'k':
			o->so.k = strtoul(optarg, &end, 10);
			if (*end || !o->so.k)
				return hydb_cli_fail("query", HYDB_EXIT_USAGE, "-k: '%s' is not a positive integer", optarg);
			break;
		case 'e': o->so.ef = strtoul(optarg, NULL, 10); break;
		case 'v': o->vector = optarg; nsrc++; break;
		case 'V': o->vector_file = optarg; nsrc++; break;
		case 'l': o->like = optarg; nsrc++; break;
		case 't': o->text = optarg; nsrc++; break;
		case 'i': o->image = optarg; nsrc++; break;
		case 'x': o->so.exact = 1; break;
		case 's': o->so.label_mask = HYDB_MASK(HYDB_LABEL_SAFE); break;
		case 'L': {
			int l = hydb_cli_label_parse(optarg);
			if (l < 0)
				return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--label: unknown label '%s'", optarg);
			o->so.label_mask = HYDB_MASK(l);
			break;
		}
		case 'm':
			o->modality_filter = hydb_cli_modality_parse(optarg);
			if (o->modality_filter < 0)
				return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--modality: unknown modality '%s'", optarg);
			o->so.modality_mask = HYDB_MASK(o->modality_filter);
			break;
		case 'r':
		case 'R': {
			double v = strtod(optarg, &end);
			if (*end || isnan(v))
				return hydb_cli_fail("query", HYDB_EXIT_USAGE, "radius '%s' is not a number", optarg);
			if (ch == 'r') o->so.min_radius = v; else o->so.max_radius = v;
			break;
		}
		case 'D':
			if (!optarg || !strcmp(optarg, "hysac")) o->so.redirect = HYDB_REDIRECT_HYSAC;
			else if (!strcmp(optarg, "geodesic")) o->so.redirect = HYDB_REDIRECT_GEODESIC;
			else return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--redirect: mode must be hysac or geodesic");
			break;
		case 'B':
			o->bound = strtod(optarg, &end);
			if (*end || !(o->bound > 0))
				return hydb_cli_fail("query", HYDB_EXIT_USAGE, "--bound: '%s' is not a positive number", optarg);
			break;
		case 'M': o->model = optarg; break;
		case 'j': o->json = 1; break;
		case 'S': o->sheet = optarg; break;
		case 'h': fputs(usage, stdout); return -1;
		default: fputs(usage, stderr); return HYDB_EXIT_USAGE;
		}
	}
	if (nsrc != 1)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE,
				     "give exactly one of --vector, --vector-file, --like, --text, --image");
	if (optind < argc && stat(argv[optind], &sb) == 0 && S_ISDIR(sb.st_mode))
		*dbpath = argv[optind++];
	else if (optind < argc)
		return hydb_cli_fail("query", HYDB_EXIT_USAGE, "%s: no database directory there", argv[optind]);
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
