/*
 * cmd_traverse.c - hydb traverse: walk a query toward the origin and show
 * which text each point retrieves, as HySAC's safety traversal retrieval
 * does (scripts/safety_traversal_retrieval.py).
 *
 * The query is mapped to the tangent space at the origin, scaled by weights
 * from 1 down to 0 in --steps even steps, and lifted back. At each point the
 * answer is, by default (--cone), the nearest text whose entailment cone
 * holds the point, or [ROOT] (the origin, which holds every point) when the
 * origin is nearer than any such text: HySAC ranks by the Lorentz inner
 * product, which orders exactly as the geodesic distance does, and puts
 * [ROOT] last in its pool, so a text wins a tie. --nearest drops the cone
 * test (the nearest text, no [ROOT]). Exact search, so every step is the
 * script's argmax, not an approximation of it.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/model_select.h"
#include "cli/output.h"
#include "cli/query_input.h"
#include "admin.h"

static const char usage[] =
	"usage: hydb traverse [DB] (IMAGE | --text \"...\" | --vector '[x1,...]') [options]\n"
	"Walk the query toward the origin along its geodesic (linearly in the tangent space\n"
	"at the origin, weights 1 to 0 in --steps points) and print the text each point\n"
	"retrieves where it changes: HySAC's safety traversal retrieval.\n"
	"  --steps N      points on the walk, the query and the origin included (2..10000,\n"
	"                 default 50, as HySAC's script)\n"
	"  --cone         the nearest text whose entailment cone holds the point, or [ROOT]\n"
	"                 when the origin is nearer (default)\n"
	"  --nearest      the nearest text, no cone test\n"
	"  --all-steps    print every step, not only where the answer changes\n"
	"  --model FILE   model for IMAGE and --text (else $HYDB_MODEL or the database's)\n"
	"  --json         one JSON object per printed step\n";

struct targs {
	const char *db, *text, *file, *vector, *model;
	int json, steps, nearest, all;
};

static int topt(int ch, const char *arg, char **argv, struct targs *a)
{
	unsigned long long v;
	switch (ch) {
	case 't': a->text = arg; return 0;
	case 'v': a->vector = arg; return 0;
	case 'm': a->model = arg; return 0;
	case 'j': a->json = 1; return 0;
	case 'c': a->nearest = 0; return 0;
	case 'n': a->nearest = 1; return 0;
	case 'a': a->all = 1; return 0;
	case 's':
		if (hydb_cli_parse_uint("traverse", "--steps", arg, 2, 10000, &v))
			return HYDB_EXIT_USAGE;
		a->steps = (int)v;
		return 0;
	case 'h': fputs(usage, stdout); return -1;
	default: return hydb_cli_bad_option("traverse", argv);
	}
}

static int parse(int argc, char **argv, struct targs *a)
{
	static const struct option lo[] = {
		{"text", required_argument, 0, 't'},  {"vector", required_argument, 0, 'v'},
		{"model", required_argument, 0, 'm'}, {"json", no_argument, 0, 'j'},
		{"steps", required_argument, 0, 's'}, {"cone", no_argument, 0, 'c'},
		{"nearest", no_argument, 0, 'n'},     {"all-steps", no_argument, 0, 'a'},
		{"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
	int ch, rc;
	memset(a, 0, sizeof *a);
	a->steps = 50;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1)
		if ((rc = topt(ch, optarg, argv, a)))
			return rc;
	if ((rc = hydb_cli_db_positional("traverse", argc, argv, &optind, HYDB_CLI_FILES_FOLLOW,
					 &a->db)))
		return rc;
	for (int i = optind; i < argc; i++) {
		if (a->file)
			return hydb_cli_fail("traverse", HYDB_EXIT_USAGE, "unexpected argument '%s'",
					     argv[i]);
		a->file = argv[i];
	}
	if (!!a->text + !!a->file + !!a->vector != 1)
		return hydb_cli_fail("traverse", HYDB_EXIT_USAGE,
				     "give an image FILE, --text \"...\" or --vector '[...]'");
	return 0;
}

/* The query's space components: parsed, or encoded with the model. */
static int query_vector(const struct targs *a, hydb_db *db, float *q)
{
	size_t d = hydb_dim(db);
	hydb_model *m = NULL;
	int rc;
	if (a->vector)
		return hydb_cli_parse_query_json(a->vector, strlen(a->vector), q, d, "--vector");
	FORWARD_IF_ERROR(hydb_cli_model_for_db(&m, db, a->model, HYDB_PRECISION_F32));
	if (a->text)
		rc = hydb_encode_text(m, a->text, q, NULL, NULL);
	else
		rc = hydb_encode_image_files(m, &a->file, 1, q, NULL, NULL);
	hydb_model_close(m);
	return rc;
}

/* One step's answer: the result's row 0, or [ROOT] (hit = NULL). */
struct answer {
	const hydb_results *hit;
	double radius, distance;
	uint64_t id; /* 0 for [ROOT] */
};

static int step_answer(hydb_db *db, const struct targs *a, const float *x, hydb_results **res,
		       struct answer *ans)
{
	hydb_search_options so;
	hydb_search_options_init(&so);
	so.k = 1;
	so.exact = 1;
	so.modality_mask = HYDB_MASK(HYDB_MOD_TEXT);
	so.cone = a->nearest ? 0 : HYDB_CONE_WITHIN;
	FORWARD_IF_ERROR(hydb_search(db, res, x, &so));
	ans->radius = hydb_lorentz_radius(x, hydb_dim(db), hydb_curvature(db));
	/* the origin is the pool's last entry: it wins only when strictly nearer */
	int root = !a->nearest && (!(*res)->n || (*res)->distances[0] > ans->radius);
	ans->hit = (*res)->n && !root ? *res : NULL;
	ans->distance = ans->hit ? (*res)->distances[0] : ans->radius;
	ans->id = ans->hit ? (*res)->ids[0] : 0;
	return (*res)->n || root ? HYDB_OK : HYDB_ENOTFOUND;
}

static void print_answer(const struct targs *a, int step, double w, const struct answer *ans)
{
	const hydb_results *r = ans->hit;
	const char *key = r ? r->keys[0] : "[ROOT]";
	const char *label = r ? hydb_cli_label_name(r->labels[0]) : "-";
	const char *cap = r ? r->captions[0] : NULL;
	if (!a->json) {
		printf("step %3d  t %.3f  radius %8.4f  %-7s %s", step, w, ans->radius, label, key);
		if (cap)
			printf("  \"%s\"", cap);
		putchar('\n');
		return;
	}
	printf("{\"step\":%d,\"t\":%.6f,\"radius\":%.9g,\"key\":", step, w, ans->radius);
	hydb_json_write_string(stdout, key);
	printf(",\"label\":%s%s%s,\"distance\":%.9g,\"caption\":", r ? "\"" : "",
	       r ? label : "null", r ? "\"" : "", ans->distance);
	if (cap)
		hydb_json_write_string(stdout, cap);
	else
		fputs("null", stdout);
	fputs("}\n", stdout);
}

static int walk(hydb_db *db, const struct targs *a, const float *q)
{
	size_t d = hydb_dim(db);
	double c = hydb_curvature(db);
	float *t = calloc(d, sizeof *t), *x = calloc(d, sizeof *x);
	uint64_t last = UINT64_MAX;
	int rc = t && x ? HYDB_OK : hydb_error_set(HYDB_ENOMEM, "traverse: out of memory");
	if (rc == 0)
		hydb_log_map0(t, q, d, c);
	for (int s = 0; rc == 0 && s < a->steps; s++) {
		double w = 1.0 - (double)s / (a->steps - 1);
		hydb_results *res = NULL;
		struct answer ans;
		for (size_t i = 0; i < d; i++)
			x[i] = (float)(t[i] * w);
		hydb_exp_map0(x, x, d, c);
		rc = step_answer(db, a, x, &res, &ans);
		if (rc == 0 && (a->all || ans.id != last))
			print_answer(a, s, w, &ans);
		last = ans.id;
		hydb_results_free(res);
	}
	if (rc == HYDB_ENOTFOUND)
		rc = hydb_error_set(rc, "the database holds no text entries to retrieve");
	free(t);
	free(x);
	return rc;
}

int hydb_cmd_traverse(int argc, char **argv)
{
	struct targs a;
	hydb_db *db = NULL;
	float *q = NULL;
	int rc = parse(argc, argv, &a);
	if (rc)
		return rc < 0 ? HYDB_EXIT_OK : rc;
	rc = hydb_cli_open(&db, a.db, 1);
	if (rc == 0)
		q = calloc(hydb_dim(db), sizeof *q);
	if (rc == 0 && !q)
		rc = hydb_error_set(HYDB_ENOMEM, "traverse: out of memory");
	if (rc == 0)
		rc = query_vector(&a, db, q);
	if (rc == 0)
		rc = walk(db, &a, q);
	free(q);
	hydb_close(db);
	return rc < 0 ? hydb_cli_fail_lib("traverse", rc) : HYDB_EXIT_OK;
}
