/*
 * cmd_safety.c - the safety tools: classify (safe/unsafe by radius) and
 * calibrate (thresholds from known labels). traverse is cmd_traverse.c.
 */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/model_select.h"
#include "cli/output.h"
#include "cli/safety.h"
#include "admin.h"

#define EXIT_UNSAFE 3

static int is_dir(const char *p)
{
	struct stat sb;
	return p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Encode a caption or an image file; *mod receives the modality. */
static int encode_input(hydb_model *m, const char *text, const char *file, float *out, int *mod)
{
	if (text) {
		*mod = HYDB_MOD_TEXT;
		return hydb_encode_text(m, text, out, NULL, NULL);
	}
	*mod = HYDB_MOD_IMAGE;
	return hydb_encode_image_files(m, &file, 1, out, NULL, NULL);
}

/* A database's calibrated threshold for a modality, else the model's
 * up_95 bound. */
static double threshold_for(hydb_db *db, hydb_model *m, int mod)
{
	char buf[64];
	if (db && hydb_db_meta_get(db, mod == HYDB_MOD_TEXT ? "threshold_text" : "threshold_image", buf,
				   sizeof buf) == 0)
		return strtod(buf, NULL);
	return hydb_model_bound(m, mod == HYDB_MOD_TEXT ? HYDB_MOD_TEXT : HYDB_MOD_IMAGE);
}

/* classify's arguments: [DB] (FILE | --text T) [--model F]. */
typedef struct {
	const char *db, *text, *file, *model;
	int json, exit_status;
} safety_args;

static int parse_safety(int argc, char **argv, safety_args *a, const char *usage)
{
	static const struct option lo[] = {
		{"text", required_argument, 0, 't'}, {"model", required_argument, 0, 'm'},
		{"json", no_argument, 0, 'j'},       {"exit-status", no_argument, 0, 'x'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0}};
	int ch;
	memset(a, 0, sizeof *a);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 't': a->text = optarg; break;
		case 'm': a->model = optarg; break;
		case 'j': a->json = 1; break;
		case 'x': a->exit_status = 1; break;
		case 'h': fputs(usage, stdout); return -1;
		default: return hydb_cli_bad_option(argv[0], argv);
		}
	}
	if ((ch = hydb_cli_db_positional(argv[0], argc, argv, &optind, HYDB_CLI_FILES_FOLLOW, &a->db)))
		return ch;
	for (int i = optind; i < argc; i++) {
		if (!a->file)
			a->file = argv[i];
		else
			return hydb_cli_fail(argv[0], HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if (!!a->text + !!a->file != 1)
		return hydb_cli_fail(argv[0], HYDB_EXIT_USAGE, "give an image FILE or --text \"...\"");
	return 0;
}

/* Open the model (and the database, when one is given or is the default). */
static int open_inputs(const safety_args *a, hydb_db **db, hydb_model **m, int need_db)
{
	const char *dbp = a->db ? a->db : hydb_cli_db_path(NULL);
	*db = NULL;
	*m = NULL;
	if (a->db || need_db || is_dir(dbp))
		FORWARD_IF_ERROR(hydb_cli_open(db, a->db, 1));
	if (*db)
		return hydb_cli_model_for_db(m, *db, a->model, HYDB_PRECISION_F32);
	if (!a->model && !getenv("HYDB_MODEL"))
		return hydb_error_set(HYDB_EINVAL, "no model: pass --model FILE or set HYDB_MODEL");
	return hydb_model_open(m, a->model ? a->model : getenv("HYDB_MODEL"));
}

static const char classify_usage[] =
	"usage: hydb classify [DB] (IMAGE | --text \"...\") [--model FILE] [--json] [--exit-status]\n"
	"Print safe or unsafe, the radius and the threshold used: the database's calibrated\n"
	"threshold ('hydb calibrate') if a database is given or found, else the model's\n"
	"up_95 bound of the safe class. With --exit-status: 0 safe, 3 unsafe.\n";

int hydb_cmd_classify(int argc, char **argv)
{
	safety_args a;
	hydb_db *db;
	hydb_model *m;
	float *v = NULL;
	int rc, mod = 0, status;
	double r, thr;

	if ((status = parse_safety(argc, argv, &a, classify_usage)))
		return status < 0 ? HYDB_EXIT_OK : status;
	rc = open_inputs(&a, &db, &m, 0);
	if (rc == 0) {
		v = calloc(hydb_model_dim(m), sizeof *v);
		rc = v ? encode_input(m, a.text, a.file, v, &mod) : hydb_error_set(HYDB_ENOMEM, "out of memory");
	}
	if (rc < 0) {
		status = hydb_cli_fail_lib("classify", rc);
		goto out;
	}
	r = hydb_lorentz_radius(v, hydb_model_dim(m), hydb_model_curvature(m));
	thr = threshold_for(db, m, mod);
	if (!(thr > 0)) {
		status = hydb_cli_fail("classify", HYDB_EXIT_DATA,
				       "no safety bound for %s in the model and no calibration; run 'hydb calibrate'",
				       mod == HYDB_MOD_TEXT ? "text" : "images");
		goto out;
	}
	{
		const char *label = r <= thr ? "safe" : "unsafe";
		if (a.json) {
			/* The input itself (a caption or a path), escaped: quotes,
			 * backslashes and control characters must not break the line. */
			fputs("{\"input\":", stdout);
			hydb_json_write_string(stdout, a.text ? a.text : a.file);
			printf(",\"modality\":\"%s\",\"label\":\"%s\",\"radius\":%.9g,\"threshold\":%.9g}\n",
			       mod == HYDB_MOD_TEXT ? "text" : "image", label, r, thr);
		} else
			printf("%s\tradius %.6f\tthreshold %.6f (%s)\n", label, r, thr,
			       mod == HYDB_MOD_TEXT ? "text" : "image");
		status = a.exit_status && r > thr ? EXIT_UNSAFE : HYDB_EXIT_OK;
	}
out:
	free(v);
	hydb_model_close(m);
	hydb_close(db);
	return status;
}

/* ---- calibrate ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double quantile(const double *sorted, size_t n, double q)
{
	double pos;
	size_t i;
	if (n == 0)
		return NAN;
	pos = q * (double)(n - 1);
	i = (size_t)pos;
	return i + 1 < n ? sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]) : sorted[n - 1];
}

void hydb_class_stats_compute(hydb_class_stats *s, double *radii, size_t n)
{
	double sum = 0;
	qsort(radii, n, sizeof *radii, cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += radii[i];
	s->n = n;
	s->avg = n ? sum / n : NAN;
	s->low_05 = quantile(radii, n, 0.05);
	s->up_95 = quantile(radii, n, 0.95);
}

/* The threshold t (label safe iff radius <= t) with the highest accuracy;
 * candidates are midpoints between consecutive distinct radii. */
void hydb_best_threshold(hydb_threshold *out, const double *safe, size_t ns, const double *unsafe,
			 size_t nu)
{
	/* safe and unsafe are sorted ascending */
	size_t i = 0, j = 0, best_correct = 0;
	double best_t = ns ? safe[ns - 1] : 0;
	/* t below everything: all unsafe predicted unsafe */
	size_t correct = nu;
	best_correct = correct;
	best_t = (ns && nu) ? fmin(safe[0], unsafe[0]) - 1e-9 : best_t;
	while (i < ns || j < nu) {
		double v = (j >= nu || (i < ns && safe[i] <= unsafe[j])) ? safe[i] : unsafe[j];
		while (i < ns && safe[i] == v) { i++; correct++; }
		while (j < nu && unsafe[j] == v) { j++; correct--; }
		if (correct > best_correct) {
			double next = (i < ns && (j >= nu || safe[i] < unsafe[j])) ? safe[i] : j < nu ? unsafe[j] : v;
			best_correct = correct;
			best_t = (i < ns || j < nu) ? 0.5 * (v + next) : v;
		}
	}
	out->threshold = best_t;
	{
		size_t fp = 0, fn = 0;
		for (size_t k = 0; k < ns; k++) fp += safe[k] > best_t;     /* safe flagged unsafe */
		for (size_t k = 0; k < nu; k++) fn += unsafe[k] <= best_t;  /* unsafe passed as safe */
		out->accuracy = (ns + nu) ? (double)(ns + nu - fp - fn) / (double)(ns + nu) : NAN;
		out->fpr = ns ? (double)fp / ns : NAN;
		out->fnr = nu ? (double)fn / nu : NAN;
	}
}

static const char calibrate_usage[] =
	"usage: hydb calibrate [DB] --labels LABELS.csv [--dry-run] [--json]\n"
	"LABELS.csv has lines KEY,safe|unsafe. For each modality, computes the radius\n"
	"statistics of each class (avg, low_05, up_95, as in HySAC's bounds) and the\n"
	"threshold (safe iff radius <= threshold) that maximises accuracy, reports the\n"
	"accuracy, false-positive rate (safe flagged unsafe) and false-negative rate\n"
	"(unsafe passed as safe), stores the thresholds and re-labels every entry.\n";

/* A directory opens and reads as empty; a labels file must be a file. */
static FILE *open_labels(const char *path)
{
	struct stat sb;
	FILE *f;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		hydb_cli_fail("calibrate", HYDB_EXIT_DATA, "%s: is a directory, not a labels file", path);
		return NULL;
	}
	f = fopen(path, "rb");
	if (!f)
		hydb_cli_fail("calibrate", HYDB_EXIT_DATA, "%s: %m", path);
	return f;
}

static const char *const modality_names[] = {"other", "image", "text"};

/* A threshold needs both classes: with one, every radius is on the same
 * side and the "best" threshold re-labels everything as that class. Checked
 * for every modality before anything is stored. "other" entries are never
 * re-labelled, so labels of them alone calibrate nothing. */
static int check_classes(const char *labels, size_t nr[HYDB_N_MODALITIES][2], size_t lines)
{
	int any = 0;
	for (int m = 1; m < HYDB_N_MODALITIES; m++) {
		if (!nr[m][0] && !nr[m][1])
			continue;
		if (!nr[m][0] || !nr[m][1])
			return hydb_cli_fail("calibrate", HYDB_EXIT_DATA,
					     "%s: %s entries need both safe and unsafe labels to calibrate, got %zu safe and %zu unsafe",
					     labels, modality_names[m], nr[m][0], nr[m][1]);
		any = 1;
	}
	if (!any)
		return hydb_cli_fail("calibrate", HYDB_EXIT_DATA,
				     "%s: none of its %zu lines labels an image or text entry of the database; nothing to calibrate",
				     labels, lines);
	return HYDB_EXIT_OK;
}

/* What the labels file says: the radii of the labelled entries per
 * [modality][0 safe, 1 unsafe], and the keys it names that are not
 * stored. */
struct labelled {
	double *rad[HYDB_N_MODALITIES][2];
	size_t nr[HYDB_N_MODALITIES][2], cap[HYDB_N_MODALITIES][2];
	size_t lines, unknown;
	char first_unknown[256];
};

static int labelled_add(struct labelled *k, int m, int cls, double radius)
{
	double *nv = hydb_array_grow(k->rad[m][cls], &k->cap[m][cls], k->nr[m][cls] + 1,
				     sizeof *nv, "calibrate");
	if (!nv)
		return -1;
	k->rad[m][cls] = nv;
	k->rad[m][cls][k->nr[m][cls]++] = radius;
	return 0;
}

static void labelled_free(struct labelled *k)
{
	for (int m = 0; m < HYDB_N_MODALITIES; m++)
		free(k->rad[m][0]), free(k->rad[m][1]);
}

/* One line KEY,safe|unsafe (already without its line end): its entry's
 * radius is added, or its key noted as unknown. Returns the exit status. */
static int labelled_line(hydb_db *db, const char *labels, char *line, struct labelled *k)
{
	char *comma = strrchr(line, ',');
	hydb_entry *e;
	int cls, m;
	if (!comma)
		return hydb_cli_fail("calibrate", HYDB_EXIT_DATA, "%s: line %zu: expected KEY,LABEL", labels, k->lines);
	*comma = 0;
	cls = !strcmp(comma + 1, "safe") ? 0 : !strcmp(comma + 1, "unsafe") ? 1 : -1;
	if (cls < 0)
		return hydb_cli_fail("calibrate", HYDB_EXIT_DATA, "%s: line %zu: label must be safe or unsafe, got '%s'",
				     labels, k->lines, comma + 1);
	if (hydb_get_key(db, line, &e) < 0) {
		if (!k->unknown++)
			snprintf(k->first_unknown, sizeof k->first_unknown, "line %zu: '%.200s'", k->lines, line);
		return HYDB_EXIT_OK;
	}
	m = e->modality < HYDB_N_MODALITIES ? e->modality : 0;
	cls = labelled_add(k, m, cls, e->radius);
	hydb_entry_free(e);
	return cls < 0 ? HYDB_EXIT_DATA : HYDB_EXIT_OK;
}

/* Every line of the labels file; a header line "key,..." is skipped. */
static int read_labels(hydb_db *db, const char *labels, struct labelled *k)
{
	FILE *f = open_labels(labels);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int status = HYDB_EXIT_OK;
	if (!f)
		return HYDB_EXIT_DATA;
	while (status == HYDB_EXIT_OK && (len = getline(&line, &cap, f)) >= 0) {
		k->lines++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (!len || (k->lines == 1 && !strncmp(line, "key,", 4)))
			continue;
		status = labelled_line(db, labels, line, k);
	}
	if (status == HYDB_EXIT_OK && ferror(f))
		status = hydb_cli_fail("calibrate", HYDB_EXIT_DATA, "%s: %m", labels);
	free(line);
	fclose(f);
	return status;
}

static void print_calibration(int m, const hydb_class_stats s[2], const hydb_threshold *t, int json)
{
	if (json)
		printf("{\"modality\":\"%s\",\"safe\":{\"n\":%zu,\"avg\":%.6g,\"low_05\":%.6g,\"up_95\":%.6g},"
		       "\"unsafe\":{\"n\":%zu,\"avg\":%.6g,\"low_05\":%.6g,\"up_95\":%.6g},"
		       "\"threshold\":%.9g,\"accuracy\":%.6f,\"fpr\":%.6f,\"fnr\":%.6f}\n",
		       modality_names[m], s[0].n, s[0].avg, s[0].low_05, s[0].up_95, s[1].n, s[1].avg, s[1].low_05,
		       s[1].up_95, t->threshold, t->accuracy, t->fpr, t->fnr);
	else
		printf("%s: safe n=%zu avg %.4f [%.4f, %.4f]  unsafe n=%zu avg %.4f [%.4f, %.4f]\n"
		       "  threshold %.6f  accuracy %.4f  false-positive rate %.4f  false-negative rate %.4f\n",
		       modality_names[m], s[0].n, s[0].avg, s[0].low_05, s[0].up_95, s[1].n, s[1].avg, s[1].low_05,
		       s[1].up_95, t->threshold, t->accuracy, t->fpr, t->fnr);
}

/* One metadata entry NAME_MODALITY[SUFFIX] = value; the exit status. */
static int store_meta(hydb_db *db, const char *name, int m, const char *suffix, double value)
{
	char key[64], val[64];
	int rc;
	snprintf(key, sizeof key, "%s_%s%s", name, modality_names[m], suffix);
	snprintf(val, sizeof val, "%.9g", value);
	if ((rc = hydb_db_put_meta(db, NULL, 0, NULL, key, val)) < 0)
		return hydb_cli_fail_lib("calibrate", rc);
	return HYDB_EXIT_OK;
}

/* Statistics and threshold of modality m, printed and (unless dry, and
 * not for "other" entries) stored: the threshold for classify, the safe
 * class's up_95 as the redirect bound. */
static int calibrate_modality(hydb_db *db, struct labelled *k, int m, int json, int dry, double *thr)
{
	hydb_class_stats s[2];
	hydb_threshold t;
	int status = HYDB_EXIT_OK, st2;
	hydb_class_stats_compute(&s[0], k->rad[m][0], k->nr[m][0]);
	hydb_class_stats_compute(&s[1], k->rad[m][1], k->nr[m][1]);
	hydb_best_threshold(&t, k->rad[m][0], k->nr[m][0], k->rad[m][1], k->nr[m][1]);
	*thr = t.threshold;
	print_calibration(m, s, &t, json);
	if (dry || m == HYDB_MOD_OTHER)
		return HYDB_EXIT_OK;
	status = store_meta(db, "threshold", m, "", t.threshold);
	if (s[0].n && (st2 = store_meta(db, "bound", m, "_up95", s[0].up_95)))
		status = st2;
	return status;
}

static int calibrate_parse(int argc, char **argv, const char **labels, const char **dbp, int *dry, int *json)
{
	static const struct option lo[] = {{"labels", required_argument, 0, 'l'},
					   {"dry-run", no_argument, 0, 'n'},
					   {"json", no_argument, 0, 'j'},
					   {"help", no_argument, 0, 'h'},
					   {0, 0, 0, 0}};
	int ch, rc;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 'l') *labels = optarg;
		else if (ch == 'n') *dry = 1;
		else if (ch == 'j') *json = 1;
		else if (ch == 'h') { fputs(calibrate_usage, stdout); return -1; }
		else return hydb_cli_bad_option("calibrate", argv);
	}
	if ((rc = hydb_cli_db_positional("calibrate", argc, argv, &optind, 0, dbp)))
		return rc;
	if (optind < argc)
		return hydb_cli_fail("calibrate", HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
	if (!*labels)
		return hydb_cli_fail("calibrate", HYDB_EXIT_USAGE, "--labels FILE is required");
	return HYDB_EXIT_OK;
}

/* Thresholds from the labels, then every entry re-labelled by them in one
 * transaction that keeps the index's label counts right (src/inspect.c). */
static int calibrate(hydb_db *db, const char *labels, int dry, int json)
{
	struct labelled k;
	double thr[HYDB_N_MODALITIES] = {0};
	uint64_t changed = 0;
	int rc, status;

	memset(&k, 0, sizeof k);
	status = read_labels(db, labels, &k);
	if (status == HYDB_EXIT_OK)
		status = check_classes(labels, k.nr, k.lines);
	if (status == HYDB_EXIT_OK && k.unknown)
		fprintf(stderr, "hydb calibrate: %s: %zu key%s not in the database ignored (first on %s)\n",
			labels, k.unknown, k.unknown == 1 ? "" : "s", k.first_unknown);
	for (int m = 0; status == HYDB_EXIT_OK && m < HYDB_N_MODALITIES; m++)
		if (k.nr[m][0] || k.nr[m][1])
			status = calibrate_modality(db, &k, m, json, dry, &thr[m]);
	labelled_free(&k);
	if (status != HYDB_EXIT_OK || dry)
		return status;
	thr[HYDB_MOD_OTHER] = 0; /* "other" entries keep their labels */
	if ((rc = hydb_relabel_by_radius(db, thr, &changed)) < 0)
		return hydb_cli_fail_lib("calibrate", rc);
	if (!json)
		printf("re-labelled %llu entries\n", (unsigned long long)changed);
	return HYDB_EXIT_OK;
}

int hydb_cmd_calibrate(int argc, char **argv)
{
	const char *labels = NULL, *dbp = NULL;
	int rc, dry = 0, json = 0, status;
	hydb_db *db;

	if ((rc = calibrate_parse(argc, argv, &labels, &dbp, &dry, &json)))
		return rc < 0 ? HYDB_EXIT_OK : rc;
	if ((rc = hydb_cli_open(&db, dbp, 0)) < 0)
		return hydb_cli_fail_lib("calibrate", rc);
	status = calibrate(db, labels, dry, json);
	hydb_close(db);
	return status;
}

