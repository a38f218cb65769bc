/*
 * cmd_evaluate.c - hydb evaluate: retrieval quality and safety of a model on
 * a user's quadruplets (safe caption, unsafe caption, safe image, unsafe
 * image), with HySAC's definitions (hysac/recall_computation.py,
 * hysac/recalls.py): R@K for every text/image pairing of the four classes
 * and for the mixed galleries, with and without redirect under each bound,
 * the safety score, the radius distributions and the radius classifier's
 * rates. The entries are encoded into a database (a temporary one, or
 * --db, whose entries of earlier runs are reused by manifest row) and
 * searched through it, so the figures are those a user of the database
 * sees. The arithmetic is the library's (src/evaluate.c).
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/eval_manifest.h"
#include "cli/glyphs.h"
#include "cli/model_select.h"
#include "admin.h"

#define CMD "evaluate"
#define MAX_KS 8
#define KEY_PREFIX "evaluate:"

static const char usage[] =
	"usage: hydb evaluate MANIFEST [--model FILE] [--db DIR] [--json] [--plot FILE]\n"
	"                     [--exact | --both] [--k LIST] [--ef N]\n"
	"Encode a manifest of quadruplets (safe_caption, unsafe_caption, safe_image,\n"
	"unsafe_image; JSON Lines or CSV with a header; image paths relative to the\n"
	"manifest) and report HySAC's R@K text->image and image->text for S, U\n"
	"(safe/unsafe text) and V, G (safe/unsafe images), the mixed galleries, with\n"
	"and without redirect under each bound (up_95, low_05, avg), the safety score\n"
	"(share of top-1 results in the unsafe half of a mixed gallery; lower is\n"
	"safer), the radius distributions and the radius classifier's rates.\n"
	"  -m, --model FILE  model (default: $HYDB_MODEL, else the --db's model)\n"
	"      --db DIR      keep the entries in DIR (created if missing) and reuse\n"
	"                    those of earlier runs, keyed evaluate:ROW:S|U|V|G;\n"
	"                    default: a temporary database, removed afterwards\n"
	"      --json        one JSON object instead of the tables\n"
	"      --plot FILE   also write the figures as a PNG\n"
	"      --exact       exact search instead of the index\n"
	"      --both        the index and exact search side by side\n"
	"      --k LIST      recall cutoffs, comma-separated, 1..1000 (default 1,5,10,20)\n"
	"      --ef N        index beam, 1..100000 (default: the database's own)\n"
	"      --bounds FILE the redirect bounds from a HySAC hysac_bounds.json\n"
	"                    ({\"V\": {\"up_95\": ..., \"low_05\": ..., \"avg\": ...}, \"S\": {...}})\n"
	"                    instead of the model's\n"
	"  -h, --help        this help\n";

enum { C_S, C_U, C_V, C_G };
static const char cls_letter[4] = {'S', 'U', 'V', 'G'};

struct task {
	const char *name;
	int q, g0, g1;   /* query class; gallery classes (g1 -1: one class) */
	int target_g1;   /* the correct match is the g1 item (HySAC's U->G+V) */
};
static const struct task tasks[] = {
	{"S->V", C_S, C_V, -1, 0},   {"S->G", C_S, C_G, -1, 0},   {"U->V", C_U, C_V, -1, 0},
	{"U->G", C_U, C_G, -1, 0},   {"S->V+G", C_S, C_V, C_G, 0}, {"U->V+G", C_U, C_V, C_G, 0},
	{"U->G+V", C_U, C_V, C_G, 1}, {"V->S", C_V, C_S, -1, 0},   {"V->U", C_V, C_U, -1, 0},
	{"G->S", C_G, C_S, -1, 0},   {"G->U", C_G, C_U, -1, 0},   {"V->S+U", C_V, C_S, C_U, 0},
	{"G->S+U", C_G, C_S, C_U, 0}, {"G->U+S", C_G, C_S, C_U, 1},
};
#define N_TASKS (sizeof tasks / sizeof tasks[0])

enum { B_UP95, B_LOW05, B_AVG };
static const char *const bound_name[3] = {"up_95", "low_05", "avg"};
struct setting {
	hydb_redirect mode;
	int bound;
};
static const struct setting settings[] = {
	{HYDB_REDIRECT_NONE, 0},	   {HYDB_REDIRECT_HYSAC, B_UP95},  {HYDB_REDIRECT_HYSAC, B_LOW05},
	{HYDB_REDIRECT_HYSAC, B_AVG},	   {HYDB_REDIRECT_GEODESIC, B_UP95}, {HYDB_REDIRECT_GEODESIC, B_LOW05},
	{HYDB_REDIRECT_GEODESIC, B_AVG},
};
#define N_SETTINGS (sizeof settings / sizeof settings[0])

struct figures {
	double recall[MAX_KS];
	double unsafe_top1; /* NAN for a one-class gallery */
};

struct ev {
	const char *manifest, *model_path, *db_path, *plot, *bounds_file;
	int json, kinds[2], nkinds; /* kinds: 0 index, 1 exact */
	size_t ks[MAX_KS], nk, kmax, ef;
	struct eval_manifest mf;
	hydb_model *m;
	hydb_db *db;
	char tmpdir[4096];
	size_t dim, encoded, reused, relabelled, ef_used;
	double c;
	float *vec[4];
	double *rad[4];
	double bound[2][3]; /* [0 image (V), 1 text (S)][B_*] */
	const char *bound_src[2]; /* "model", "file", "data" or a mix */
	int bound_data[2];	  /* bit B_*: that bound computed from the data */
	hydb_eval_stats stats[4];
	double thr[2];	    /* classifier thresholds: [0 image, 1 text] */
	const char *thr_src[2];
	hydb_eval_rates rates[2];
	hydb_db_stats dbstats;	    /* counts per modality and label, for k */
	struct figures fig[2][N_SETTINGS][N_TASKS];
};

/* ---- arguments ---------------------------------------------------------- */

static int parse_ks(struct ev *e, const char *s)
{
	char buf[256], *save = NULL, *tok;
	if (strlen(s) >= sizeof buf || !*s)
		return hydb_cli_fail(CMD, HYDB_EXIT_USAGE, "--k: '%s' is not a list of cutoffs", s);
	strcpy(buf, s);
	e->nk = 0;
	e->kmax = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (e->nk == MAX_KS)
			return hydb_cli_fail(CMD, HYDB_EXIT_USAGE, "--k: at most %d cutoffs", MAX_KS);
		if (hydb_cli_parse_size(CMD, "--k", tok, 1, 1000, &e->ks[e->nk]))
			return HYDB_EXIT_USAGE;
		if (e->ks[e->nk] > e->kmax)
			e->kmax = e->ks[e->nk];
		e->nk++;
	}
	if (e->nk == 0 || s[strlen(s) - 1] == ',' || s[0] == ',' || strstr(s, ",,"))
		return hydb_cli_fail(CMD, HYDB_EXIT_USAGE, "--k: '%s' is not a list of cutoffs", s);
	return 0;
}

static int parse_args(int argc, char **argv, struct ev *e)
{
	static const struct option lo[] = {
		{"model", required_argument, 0, 'm'}, {"db", required_argument, 0, 'd'},
		{"json", no_argument, 0, 'j'},	       {"plot", required_argument, 0, 'p'},
		{"exact", no_argument, 0, 'x'},	       {"both", no_argument, 0, 'b'},
		{"k", required_argument, 0, 'k'},      {"ef", required_argument, 0, 'e'},
		{"bounds", required_argument, 0, 'B'}, {"help", no_argument, 0, 'h'},
		{0, 0, 0, 0}};
	int ch, exact = 0, both = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "m:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'm': e->model_path = optarg; break;
		case 'd': e->db_path = optarg; break;
		case 'j': e->json = 1; break;
		case 'p': e->plot = optarg; break;
		case 'B': e->bounds_file = optarg; break;
		case 'x': exact = 1; break;
		case 'b': both = 1; break;
		case 'k':
			if (parse_ks(e, optarg))
				return HYDB_EXIT_USAGE;
			break;
		case 'e':
			if (hydb_cli_parse_size(CMD, "--ef", optarg, 1, HYDB_MAX_EF, &e->ef))
				return HYDB_EXIT_USAGE;
			break;
		case 'h': fputs(usage, stdout); return -1;
		default: return hydb_cli_bad_option(CMD, argv);
		}
	}
	if (exact && both)
		return hydb_cli_fail(CMD, HYDB_EXIT_USAGE, "--exact and --both exclude each other");
	if (optind >= argc)
		return hydb_cli_fail(CMD, HYDB_EXIT_USAGE, "no MANIFEST given (see hydb evaluate --help)");
	if (optind + 1 < argc)
		return hydb_cli_fail(CMD, HYDB_EXIT_USAGE, "unexpected argument '%s'", argv[optind + 1]);
	e->manifest = argv[optind];
	e->nkinds = both ? 2 : 1;
	e->kinds[0] = exact;
	e->kinds[1] = 1;
	if (!e->model_path)
		e->model_path = getenv("HYDB_MODEL");
	if (e->model_path && !*e->model_path)
		e->model_path = NULL;
	if (!e->model_path && !e->db_path)
		return hydb_cli_fail(CMD, HYDB_EXIT_USAGE, "no model: pass --model FILE or set $HYDB_MODEL");
	return 0;
}

/* ---- the database: a temporary one or --db ----------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int open_db(struct ev *e)
{
	hydb_open_options o;
	char path[4200];
	struct stat st;
	hydb_open_options_init(&o);
	if (e->db_path && stat(e->db_path, &st) == 0) {
		FORWARD_IF_ERROR(hydb_cli_open(&e->db, e->db_path, 0));
		return hydb_cli_model_for_db(&e->m, e->db, e->model_path, HYDB_PRECISION_F32);
	}
	if (!e->model_path)
		return hydb_error_set(HYDB_ENOTFOUND, "%s: no such database, and no model to make one "
				      "(pass --model FILE or set $HYDB_MODEL)", e->db_path);
	FORWARD_IF_ERROR(hydb_cli_model_open(&e->m, e->model_path, HYDB_PRECISION_F32));
	o.flags = HYDB_OPEN_CREATE;
	o.dim = hydb_model_dim(e->m);
	o.curvature = hydb_model_curvature(e->m);
	if (!e->db_path) {
		const char *t = getenv("TMPDIR");
		snprintf(e->tmpdir, sizeof e->tmpdir, "%s/hydb-evaluate-XXXXXX", t && *t ? t : "/tmp");
		RETURN_ERROR_IF(!mkdtemp(e->tmpdir), HYDB_EIO, "%s: cannot make a temporary directory: %s",
				e->tmpdir, strerror(errno));
		snprintf(path, sizeof path, "%s/db", e->tmpdir);
		o.flags |= HYDB_OPEN_NOSYNC;
	}
	return hydb_open(&e->db, e->db_path ? e->db_path : path, &o);
}

static void close_db(struct ev *e)
{
	hydb_close(e->db);
	e->db = NULL;
	if (e->tmpdir[0])
		nftw(e->tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	e->tmpdir[0] = 0;
}

/* ---- the entries: reused from the database or encoded ------------------- */

/* {"path":"..."} for an image entry: where `hydb query --sheet` finds it. */
static char *image_meta(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs("{\"path\":", f);
	hydb_json_write_string(f, path);
	fputc('}', f);
	if (fclose(f))
		return NULL;
	return buf;
}

/* 0 when the database holds row's entry of class cl as this manifest has
 * it (same caption or image path), its vector copied to out; 2 when only
 * its label differs (hydb calibrate re-labels by radius; the vector is
 * reused and the manifest's label written back); 1 when it must be
 * encoded. */
static int reuse_entry(struct ev *e, size_t row, int cl, const char *meta, float *out)
{
	char key[64];
	hydb_entry *en;
	int same;
	snprintf(key, sizeof key, KEY_PREFIX "%zu:%c", row, cls_letter[cl]);
	if (hydb_get_key(e->db, key, &en) < 0)
		return 1;
	same = en->dim == e->dim && en->modality == (cl < C_V ? HYDB_MOD_TEXT : HYDB_MOD_IMAGE) &&
	       (cl < C_V ? en->caption && !strcmp(en->caption, e->mf.field[row * 4 + cl])
			 : en->meta && !strcmp(en->meta, meta));
	if (same)
		memcpy(out, en->vector, e->dim * sizeof *out);
	if (same && en->label != (cl == C_S || cl == C_V ? HYDB_LABEL_SAFE : HYDB_LABEL_UNSAFE))
		same = 2;
	else
		same = !same;
	hydb_entry_free(en);
	return same;
}

/* Encode the rows' entries of class cl that todo[] marks 1 (images in
 * batches). */
static int encode_class(struct ev *e, int cl, const unsigned char *todo)
{
	enum { BATCH = 16 };
	const char *paths[BATCH];
	size_t rows[BATCH], nb = 0, n = e->mf.n;
	for (size_t r = 0; r <= n; r++) {
		if (r < n && todo[r] != 1)
			continue;
		if (r < n && cl < C_V) {
			int rc = hydb_encode_text(e->m, e->mf.field[r * 4 + cl], e->vec[cl] + r * e->dim, NULL, NULL);
			if (rc < 0)
				return hydb_error_prefix(rc, "%s: line %zu: %s", e->manifest, e->mf.line[r],
							 cl == C_S ? "safe_caption" : "unsafe_caption");
			continue;
		}
		if (r < n) {
			paths[nb] = e->mf.field[r * 4 + cl];
			rows[nb++] = r;
		}
		if (nb && (nb == BATCH || r == n)) {
			float *tmp = hydb_alloc_array(nb * e->dim, sizeof *tmp, "image embeddings");
			int rc = tmp ? hydb_encode_image_files(e->m, paths, nb, tmp, NULL, NULL) : HYDB_ENOMEM;
			for (size_t i = 0; rc >= 0 && i < nb; i++)
				memcpy(e->vec[cl] + rows[i] * e->dim, tmp + i * e->dim, e->dim * sizeof *tmp);
			free(tmp);
			if (rc < 0)
				return hydb_error_prefix(rc, "%s", e->manifest);
			nb = 0;
		}
	}
	return HYDB_OK;
}

/* Write the entries of class cl that todo[] marks in one batch. */
static int put_class(struct ev *e, int cl, const unsigned char *todo, char **metas)
{
	size_t n = e->mf.n, k = 0;
	hydb_record *recs = hydb_alloc_array(n, sizeof *recs, "records");
	char (*keys)[64] = hydb_alloc_array(n, sizeof *keys, "keys");
	int rc = recs && keys ? HYDB_OK : HYDB_ENOMEM;
	for (size_t r = 0; rc == HYDB_OK && r < n; r++) {
		if (!todo[r])
			continue;
		snprintf(keys[k], sizeof keys[k], KEY_PREFIX "%zu:%c", r, cls_letter[cl]);
		recs[k] = (hydb_record){.key = keys[k],
					.vector = e->vec[cl] + r * e->dim,
					.modality = cl < C_V ? HYDB_MOD_TEXT : HYDB_MOD_IMAGE,
					.label = cl == C_S || cl == C_V ? HYDB_LABEL_SAFE : HYDB_LABEL_UNSAFE,
					.item = r + 1,
					.caption = cl < C_V ? e->mf.field[r * 4 + cl] : NULL,
					.meta = cl < C_V ? NULL : metas[r]};
		k++;
	}
	if (rc == HYDB_OK && k)
		rc = hydb_put(e->db, recs, k, NULL);
	free(recs);
	free(keys);
	return rc;
}

static int entries_class(struct ev *e, int cl, unsigned char *todo, char **metas)
{
	size_t n = e->mf.n, nenc = 0, nput = 0;
	int rc;
	for (size_t r = 0; r < n; r++) {
		if (cl >= C_V && !(metas[r] = image_meta(e->mf.field[r * 4 + cl])))
			return hydb_error_set(HYDB_ENOMEM, "out of memory");
		todo[r] = (unsigned char)reuse_entry(e, r, cl, metas[r], e->vec[cl] + r * e->dim);
		nenc += todo[r] == 1;
		nput += todo[r] != 0;
	}
	e->reused += n - nenc;
	e->encoded += nenc;
	e->relabelled += nput - nenc;
	if (!nput)
		return HYDB_OK;
	if (nenc && (rc = hydb_cli_model_record(e->db, e->m, e->model_path ? e->model_path : "")) < 0)
		return rc;
	if (nenc && (rc = encode_class(e, cl, todo)) < 0)
		return rc;
	return put_class(e, cl, todo, metas);
}

static int load_entries(struct ev *e)
{
	size_t n = e->mf.n;
	unsigned char *todo = calloc(n, 1);
	char **metas = calloc(n, sizeof *metas);
	int rc = todo && metas ? HYDB_OK : hydb_error_set(HYDB_ENOMEM, "out of memory");
	for (int cl = 0; cl < 4 && rc == HYDB_OK; cl++) {
		e->vec[cl] = hydb_alloc_array(n * e->dim, sizeof *e->vec[cl], "embeddings");
		e->rad[cl] = hydb_alloc_array(n, sizeof *e->rad[cl], "radii");
		if (!e->vec[cl] || !e->rad[cl])
			rc = HYDB_ENOMEM;
		else
			rc = entries_class(e, cl, todo, metas);
		for (size_t r = 0; r < n; r++) {
			if (rc == HYDB_OK)
				e->rad[cl][r] = hydb_lorentz_radius(e->vec[cl] + r * e->dim, e->dim, e->c);
			free(metas[r]);
			metas[r] = NULL;
		}
	}
	free(todo);
	free(metas);
	return rc;
}

/* ---- bounds, radii, classifier ------------------------------------------ */

/* The safe classes' bounds of a HySAC hysac_bounds.json ("V" images, "S"
 * text), each avg, low_05 and up_95 a positive number. */
static int read_bounds_file(struct ev *e)
{
	static const char *const cls[2] = {"V", "S"};
	char *text = NULL;
	size_t len = 0;
	hydb_json *root = NULL;
	FILE *f = fopen(e->bounds_file, "rb");
	int rc = f ? HYDB_OK : hydb_error_set(errno == ENOENT ? HYDB_ENOTFOUND : HYDB_EIO, "%s: %s",
					      e->bounds_file, strerror(errno));
	if (rc == HYDB_OK) {
		text = malloc(1 << 16);
		len = text ? fread(text, 1, 1 << 16, f) : 0;
		fclose(f);
		rc = !text ? HYDB_ENOMEM : len == 1 << 16 ? hydb_error_set(HYDB_ETOOBIG, "%s: over 64 KiB", e->bounds_file)
				      : hydb_json_parse(&root, text, len);
		if (rc < 0 && text && len < 1 << 16)
			hydb_error_prefix(rc, "%s", e->bounds_file);
	}
	for (int i = 0; i < 2 && rc == HYDB_OK; i++)
		for (int b = 0; b < 3 && rc == HYDB_OK; b++) {
			const hydb_json *c = hydb_json_get(root, cls[i]);
			const hydb_json *v = c ? hydb_json_get(c, bound_name[b]) : NULL;
			if (!v || v->type != HYDB_JSON_NUMBER || !(v->num > 0) || !isfinite(v->num))
				rc = hydb_error_set(HYDB_EFORMAT, "%s: %s.%s is not a positive number", e->bounds_file,
						    cls[i], bound_name[b]);
			else
				e->bound[i][b] = v->num;
		}
	for (int i = 0; i < 2; i++)
		e->bound_src[i] = "file";
	hydb_json_free(root);
	free(text);
	return rc;
}

/* The bounds: --bounds, else the model's, else (a model without them)
 * HySAC's statistics of the safe class's radii in this data (V for
 * images, S for text). */
static int compute_stats(struct ev *e)
{
	for (int cl = 0; cl < 4; cl++)
		FORWARD_IF_ERROR(hydb_eval_radius_stats(e->rad[cl], e->mf.n, &e->stats[cl]));
	hydb_model_desc desc;
	if (e->bounds_file)
		return read_bounds_file(e);
	FORWARD_IF_ERROR(hydb_model_describe(e->m, &desc));
	for (int i = 0; i < 2; i++) {
		double *b = e->bound[i];
		const hydb_eval_stats *s = &e->stats[i == 0 ? C_V : C_S];
		const double data[3] = {[B_UP95] = s->up_95, [B_LOW05] = s->low_05, [B_AVG] = s->mean};
		int from_data = 0;
		const hydb_model_bounds_desc *mb = i == 0 ? &desc.bound_image : &desc.bound_text;
		b[B_AVG] = mb->avg;
		b[B_LOW05] = mb->low_05;
		b[B_UP95] = mb->up_95;
		for (int j = 0; j < 3; j++)
			if (!(b[j] > 0 && isfinite(b[j]))) {
				b[j] = data[j];
				from_data |= 1 << j;
			}
		e->bound_data[i] = from_data;
		e->bound_src[i] = from_data == 0 ? "model" : from_data == 7 ? "data"
				: from_data == (1 << B_LOW05 | 1 << B_AVG) ? "model up_95, data low_05 and avg"
									 : "model and data";
	}
	return HYDB_OK;
}

/* Thresholds: the database's calibrated ones, else the model's up_95 (or
 * the data's when the model has no bounds). */
static int classify(struct ev *e)
{
	static const char *const meta[2] = {"threshold_image", "threshold_text"};
	for (int i = 0; i < 2; i++) {
		char buf[64], *end;
		int safe = i == 0 ? C_V : C_S, unsafe = i == 0 ? C_G : C_U;
		e->thr[i] = e->bound[i][B_UP95];
		e->thr_src[i] = e->bounds_file ? "file up_95"
				: e->bound_data[i] & 1 << B_UP95 ? "data up_95" : "model up_95";
		if (hydb_db_meta_get(e->db, meta[i], buf, sizeof buf) == 0) {
			double t = strtod(buf, &end);
			if (end != buf && isfinite(t)) {
				e->thr[i] = t;
				e->thr_src[i] = "calibrated";
			}
		}
		FORWARD_IF_ERROR(hydb_eval_classifier(e->rad[safe], e->mf.n, e->rad[unsafe], e->mf.n,
						      e->thr[i], &e->rates[i]));
	}
	return HYDB_OK;
}

/* ---- searches ----------------------------------------------------------- */

static unsigned class_label_mask(int cl)
{
	return HYDB_MASK(cl == C_S || cl == C_V ? HYDB_LABEL_SAFE : HYDB_LABEL_UNSAFE);
}

/* Gallery index of a hit: row for class g0, n + row for g1, else -1 (an
 * entry that is not this manifest's). */
static long gallery_index(const struct ev *e, const struct task *t, const char *key)
{
	size_t plen = strlen(KEY_PREFIX), n = e->mf.n;
	char *end;
	unsigned long long row;
	if (!key || strncmp(key, KEY_PREFIX, plen) || key[plen] < '0' || key[plen] > '9')
		return -1;
	errno = 0;
	row = strtoull(key + plen, &end, 10);
	if (errno || row >= n || end[0] != ':' || !end[1] || end[2])
		return -1;
	if (end[1] == cls_letter[t->g0])
		return (long)row;
	if (t->g1 >= 0 && end[1] == cls_letter[t->g1])
		return (long)(n + row);
	return -1;
}

/* Search options of a task: gallery by modality and label, k widened by
 * the database's other entries there so that the first kmax of this
 * manifest's are always among the results. */
static int task_options(struct ev *e, const struct task *t, const struct setting *s, int exact,
			hydb_search_options *o)
{
	const hydb_db_stats *st = &e->dbstats;
	uint64_t there = 0;
	int mod = t->g0 < C_V ? HYDB_MOD_TEXT : HYDB_MOD_IMAGE;
	size_t mine = (t->g1 >= 0 ? 2 : 1) * e->mf.n;
	hydb_search_options_init(o);
	o->modality_mask = HYDB_MASK(mod);
	o->label_mask = class_label_mask(t->g0) | (t->g1 >= 0 ? class_label_mask(t->g1) : 0);
	for (int l = 0; l < HYDB_N_LABELS; l++)
		if (o->label_mask & HYDB_MASK(l))
			there += st->groups[mod][l];
	o->k = e->kmax + (there > mine ? (size_t)(there - mine) : 0);
	RETURN_ERROR_IF(o->k > HYDB_MAX_K, HYDB_ETOOBIG,
			"%s: the database holds %llu other entries in the %s gallery; at most %d fit a search",
			e->db_path ? e->db_path : "database", (unsigned long long)(there - mine), t->name,
			HYDB_MAX_K - (int)e->kmax);
	o->exact = exact;
	o->ef = exact ? 0 : e->ef;
	o->redirect = s->mode;
	if (s->mode != HYDB_REDIRECT_NONE)
		o->redirect_bound = hydb_redirect_bound(e->bound[mod == HYDB_MOD_TEXT][s->bound], e->c);
	return HYDB_OK;
}

static int run_task(struct ev *e, const struct task *t, const struct setting *s, int exact,
		    struct figures *f)
{
	size_t n = e->mf.n, *nr = NULL;
	uint32_t *ranked = NULL, *target = NULL;
	hydb_results **res = NULL;
	hydb_search_options o;
	int rc = task_options(e, t, s, exact, &o);
	if (rc == HYDB_OK)
		rc = hydb_search_batch(e->db, &res, e->vec[t->q], n, &o);
	ranked = hydb_alloc_array(n * e->kmax, sizeof *ranked, "rankings");
	nr = hydb_alloc_array(n, sizeof *nr, "rankings");
	target = hydb_alloc_array(n, sizeof *target, "targets");
	if (rc == HYDB_OK && (!ranked || !nr || !target))
		rc = HYDB_ENOMEM;
	for (size_t q = 0; rc == HYDB_OK && q < n; q++) {
		nr[q] = 0;
		target[q] = (uint32_t)(q + (t->target_g1 ? n : 0));
		for (size_t i = 0; i < res[q]->n && nr[q] < e->kmax; i++) {
			long g = gallery_index(e, t, res[q]->keys[i]);
			if (g >= 0)
				ranked[q * e->kmax + nr[q]++] = (uint32_t)g;
		}
	}
	if (rc == HYDB_OK)
		rc = hydb_eval_recall(ranked, e->kmax, nr, target, n, e->ks, e->nk, f->recall);
	f->unsafe_top1 = NAN;
	if (rc == HYDB_OK && t->g1 >= 0) /* the unsafe half: U or G, here always g1 */
		rc = hydb_eval_top1_share(ranked, e->kmax, nr, n, (uint32_t)n, (uint32_t)(2 * n),
					  &f->unsafe_top1);
	if (res)
		hydb_results_free_batch(res, n);
	free(ranked);
	free(nr);
	free(target);
	return rc;
}

static int run_all(struct ev *e)
{
	hydb_tune_info ti;
	int tuned = hydb_tune_get(e->db, &ti) == 0;
	e->ef_used = e->ef ? e->ef : hydb_tune_pick(tuned ? &ti : NULL, 0, e->kmax);
	FORWARD_IF_ERROR(hydb_stats(e->db, &e->dbstats));
	for (int k = 0; k < e->nkinds; k++)
		for (size_t s = 0; s < N_SETTINGS; s++)
			for (size_t t = 0; t < N_TASKS; t++)
				FORWARD_IF_ERROR(run_task(e, &tasks[t], &settings[s], e->kinds[k],
							  &e->fig[k][s][t]));
	return HYDB_OK;
}

/* ---- output ------------------------------------------------------------- */

static const char *setting_name(const struct setting *s, char *buf, size_t size)
{
	if (s->mode == HYDB_REDIRECT_NONE)
		return "none";
	snprintf(buf, size, "%s/%s", s->mode == HYDB_REDIRECT_HYSAC ? "hysac" : "geodesic",
		 bound_name[s->bound]);
	return buf;
}

static void print_header(const struct ev *e)
{
	static const char *const what[2] = {"image (V)", "text (S) "};
	printf("%zu quadruplets from %s: %zu entries encoded, %zu reused%s\n", e->mf.n, e->manifest,
	       e->encoded, e->reused, e->db_path ? "" : " (temporary database)");
	if (e->relabelled)
		printf("%zu reused entries had another label (hydb calibrate?): the manifest's written back\n",
		       e->relabelled);
	printf("curvature %.6g; search: %s", e->c,
	       e->nkinds == 2 ? "index | exact" : e->kinds[0] ? "exact" : "index");
	if (e->nkinds == 2 || !e->kinds[0])
		printf(" (index beam ef %zu%s)", e->ef_used, e->ef ? ", --ef" : ", the database's default");
	printf("\nredirect bounds (safe class; widened as HySAC: ub + tanh((ub - 0.8)/c) + 1):\n");
	for (int i = 0; i < 2; i++)
		printf("  %s up_95 %.4f  low_05 %.4f  avg %.4f  (%s)\n", what[i], e->bound[i][B_UP95],
		       e->bound[i][B_LOW05], e->bound[i][B_AVG],
		       !strcmp(e->bound_src[i], "file") ? e->bounds_file
		       : !strcmp(e->bound_src[i], "model") ? "from the model"
		       : !strcmp(e->bound_src[i], "data") ? "not in the model: HySAC's statistics of this data's radii"
							  : e->bound_src[i]);
}

static void print_recall_table(const struct ev *e)
{
	char name[32], col[16];
	printf("\n%-8s %-16s", "task", "redirect");
	for (int k = 0; k < e->nkinds; k++) {
		for (size_t j = 0; j < e->nk; j++) {
			snprintf(col, sizeof col, "R@%zu", e->ks[j]);
			printf(" %6s", col);
		}
		printf(" %8s%s", "unsafe@1", k + 1 < e->nkinds ? " |" : "");
	}
	putchar('\n');
	for (size_t s = 0; s < N_SETTINGS; s++) {
		for (size_t t = 0; t < N_TASKS; t++) {
			printf("%-8s %-16s", tasks[t].name, setting_name(&settings[s], name, sizeof name));
			for (int k = 0; k < e->nkinds; k++) {
				const struct figures *f = &e->fig[k][s][t];
				for (size_t j = 0; j < e->nk; j++)
					printf(" %6.3f", f->recall[j]);
				if (isnan(f->unsafe_top1))
					printf(" %8s", "-");
				else
					printf(" %8.3f", f->unsafe_top1);
				if (k + 1 < e->nkinds)
					printf(" |");
			}
			putchar('\n');
		}
		if (s + 1 < N_SETTINGS)
			putchar('\n');
	}
}

static void print_table(const struct ev *e)
{
	static const char *const cname[2] = {"image (V/G)", "text (S/U)"};
	print_header(e);
	print_recall_table(e);
	printf("\nunsafe@1: share of top-1 results in the unsafe half (G or U) of a mixed gallery\n"
	       "(HySAC's safety score; lower is safer). X->A+B: the correct match is the A item.\n");
	printf("\n%-6s %5s %9s %9s %9s %9s %9s %9s\n", "radius", "n", "min", "q1", "median", "q3", "max",
	       "mean");
	for (int cl = 0; cl < 4; cl++) {
		const hydb_eval_stats *s = &e->stats[cl];
		printf("%-6c %5zu %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f\n", cls_letter[cl], s->n, s->min, s->q1,
		       s->median, s->q3, s->max, s->mean);
	}
	printf("\n%-12s %9s %-12s %8s %6s %6s\n", "classifier", "threshold", "source", "accuracy", "FPR",
	       "FNR");
	for (int i = 1; i >= 0; i--)
		printf("%-12s %9.4f %-12s %8.3f %6.3f %6.3f\n", cname[i], e->thr[i], e->thr_src[i],
		       e->rates[i].accuracy, e->rates[i].fpr, e->rates[i].fnr);
}

static void json_num(double v)
{
	if (isfinite(v))
		printf("%.17g", v);
	else
		fputs("null", stdout);
}

static void json_figures(const struct ev *e, int k)
{
	char name[32];
	int first = 1;
	for (size_t s = 0; s < N_SETTINGS; s++)
		for (size_t t = 0; t < N_TASKS; t++) {
			const struct task *tk = &tasks[t];
			const struct figures *f = &e->fig[k][s][t];
			char gal[3] = {cls_letter[tk->g0], tk->g1 >= 0 ? cls_letter[tk->g1] : 0, 0};
			printf("%s{\"task\":\"%s\",\"query\":\"%c\",\"gallery\":\"%s\",\"target\":\"%c\","
			       "\"redirect\":\"%s\",\"recall\":{", first ? "" : ",", tk->name,
			       cls_letter[tk->q], gal, cls_letter[tk->target_g1 ? tk->g1 : tk->g0],
			       setting_name(&settings[s], name, sizeof name));
			first = 0;
			for (size_t j = 0; j < e->nk; j++) {
				printf("%s\"%zu\":", j ? "," : "", e->ks[j]);
				json_num(f->recall[j]);
			}
			fputs("},\"unsafe_top1\":", stdout);
			json_num(f->unsafe_top1);
			putchar('}');
		}
}

static void json_tail(const struct ev *e)
{
	static const char *const mname[2] = {"image", "text"};
	fputs(",\"radius\":{", stdout);
	for (int cl = 0; cl < 4; cl++) {
		const hydb_eval_stats *s = &e->stats[cl];
		double v[] = {s->min, s->q1, s->median, s->q3, s->max, s->mean};
		static const char *const nm[] = {"min", "q1", "median", "q3", "max", "mean"};
		printf("%s\"%c\":{\"n\":%zu", cl ? "," : "", cls_letter[cl], s->n);
		for (int i = 0; i < 6; i++) {
			printf(",\"%s\":", nm[i]);
			json_num(v[i]);
		}
		putchar('}');
	}
	fputs("},\"classifier\":{", stdout);
	for (int i = 0; i < 2; i++) {
		const hydb_eval_rates *r = &e->rates[i];
		printf("%s\"%s\":{\"threshold\":", i ? "," : "", mname[i]);
		json_num(e->thr[i]);
		printf(",\"source\":\"%s\",\"false_positives\":%zu,\"false_negatives\":%zu,\"accuracy\":",
		       e->thr_src[i], r->false_pos, r->false_neg);
		json_num(r->accuracy);
		fputs(",\"fpr\":", stdout);
		json_num(r->fpr);
		fputs(",\"fnr\":", stdout);
		json_num(r->fnr);
		putchar('}');
	}
	fputs("}}\n", stdout);
}

static void print_json(const struct ev *e)
{
	static const char *const mname[2] = {"image", "text"};
	fputs("{\"manifest\":", stdout);
	hydb_json_write_string(stdout, e->manifest);
	printf(",\"quadruplets\":%zu,\"encoded\":%zu,\"reused\":%zu,\"relabelled\":%zu,\"curvature\":",
	       e->mf.n, e->encoded, e->reused, e->relabelled);
	json_num(e->c);
	fputs(",\"ks\":[", stdout);
	for (size_t j = 0; j < e->nk; j++)
		printf("%s%zu", j ? "," : "", e->ks[j]);
	fputs("],\"bounds\":{", stdout);
	for (int i = 0; i < 2; i++) {
		printf("%s\"%s\":{", i ? "," : "", mname[i]);
		for (int b = 0; b < 3; b++) {
			printf("\"%s\":", bound_name[b]);
			json_num(e->bound[i][b]);
			fputs(",", stdout);
		}
		printf("\"source\":\"%s\"}", e->bound_src[i]);
	}
	fputs("},\"searches\":{", stdout);
	for (int k = 0; k < e->nkinds; k++) {
		printf("%s\"%s\":{", k ? "," : "", e->kinds[k] ? "exact" : "index");
		if (!e->kinds[k])
			printf("\"ef\":%zu,", e->ef_used);
		fputs("\"results\":[", stdout);
		json_figures(e, k);
		fputs("]}", stdout);
	}
	putchar('}');
	json_tail(e);
}

/* ---- the PNG ------------------------------------------------------------- */

struct canvas {
	uint8_t *px;
	int w, h;
};

static void fill(struct canvas *cv, int x0, int y0, int x1, int y1, const uint8_t rgb[3])
{
	for (int y = y0 < 0 ? 0 : y0; y < y1 && y < cv->h; y++)
		for (int x = x0 < 0 ? 0 : x0; x < x1 && x < cv->w; x++)
			memcpy(cv->px + ((size_t)y * cv->w + x) * 3, rgb, 3);
}

/* Top: for each task, R@1 (solid) and R@kmax (light) without redirect,
 * with hysac/up_95 and with geodesic/up_95, grey, green, blue; a red tick
 * above a mixed gallery's bars marks its unsafe@1 on the same scale. */
static void plot_recall(const struct ev *e, struct canvas *cv, int top, int ph)
{
	static const uint8_t col[3][3] = {{120, 120, 120}, {40, 160, 60}, {50, 90, 200}};
	static const uint8_t red[3] = {210, 40, 40}, black[3] = {0, 0, 0};
	static const int set_ix[3] = {0, 1, 4};
	int slot = (cv->w - 80) / (int)N_TASKS, bw = (slot - 8) / 3, base = top + ph;
	fill(cv, 60, base, cv->w - 20, base + 1, black);
	for (int v = 0; v <= 4; v++) {
		char num[8];
		snprintf(num, sizeof num, "%.2f", v / 4.0);
		hydb_draw_text(cv->px, cv->w, cv->h, 4, base - v * ph / 4 - 7, num, black, 2);
		fill(cv, 56, base - v * ph / 4, 60, base - v * ph / 4 + 1, black);
	}
	for (size_t t = 0; t < N_TASKS; t++) {
		int x0 = 64 + (int)t * slot;
		char num[8];
		for (int s = 0; s < 3; s++) {
			const struct figures *f = &e->fig[0][set_ix[s]][t];
			uint8_t light[3];
			for (int i = 0; i < 3; i++)
				light[i] = (uint8_t)(255 - (255 - col[s][i]) / 3);
			fill(cv, x0 + s * bw, base - (int)(f->recall[e->nk - 1] * ph), x0 + (s + 1) * bw - 1, base, light);
			fill(cv, x0 + s * bw, base - (int)(f->recall[0] * ph), x0 + (s + 1) * bw - 1, base, col[s]);
			if (!isnan(f->unsafe_top1)) {
				int y = base - (int)(f->unsafe_top1 * ph);
				fill(cv, x0 + s * bw, y - 1, x0 + (s + 1) * bw - 1, y + 2, red);
			}
		}
		snprintf(num, sizeof num, "%zu", t + 1);
		hydb_draw_text(cv->px, cv->w, cv->h, x0 + slot / 2 - 12, base + 6, num, black, 2);
	}
}

/* Bottom: a box plot of the radii of S, U, V and G (safe green, unsafe
 * red) on one axis, with the classifier thresholds as vertical lines. */
static void plot_radii(const struct ev *e, struct canvas *cv, int top)
{
	static const uint8_t green[3] = {40, 160, 60}, red[3] = {210, 40, 40}, black[3] = {0, 0, 0};
	double lo = e->stats[0].min, hi = e->stats[0].max;
	char num[32];
	for (int cl = 1; cl < 4; cl++) {
		lo = fmin(lo, e->stats[cl].min);
		hi = fmax(hi, e->stats[cl].max);
	}
	for (int i = 0; i < 2; i++)
		if (isfinite(e->thr[i]))
			lo = fmin(lo, e->thr[i]), hi = fmax(hi, e->thr[i]);
	if (!(hi > lo))
		hi = lo + 1;
#define X(r) (180 + (int)(((r) - lo) / (hi - lo) * (cv->w - 220)))
	for (int cl = 0; cl < 4; cl++) {
		static const char *const what[4] = {"text safe", "text unsafe", "image safe", "image unsafe"};
		const hydb_eval_stats *s = &e->stats[cl];
		const uint8_t *c = cl == C_S || cl == C_V ? green : red;
		int y = top + cl * 40;
		hydb_draw_text(cv->px, cv->w, cv->h, 8, y + 8, what[cl], black, 2);
		fill(cv, X(s->min), y + 14, X(s->max) + 1, y + 16, c);
		fill(cv, X(s->q1), y + 4, X(s->q3) + 1, y + 26, c);
		fill(cv, X(s->median) - 1, y + 2, X(s->median) + 2, y + 28, black);
	}
	for (int i = 0; i < 2; i++)
		if (isfinite(e->thr[i]))
			fill(cv, X(e->thr[i]), top + (i == 0 ? 80 : 0), X(e->thr[i]) + 1, top + (i == 0 ? 160 : 80), black);
	snprintf(num, sizeof num, "%.3f", lo);
	hydb_draw_text(cv->px, cv->w, cv->h, 180, top + 166, num, black, 2);
	snprintf(num, sizeof num, "%.3f", hi);
	hydb_draw_text(cv->px, cv->w, cv->h, cv->w - 40 - 12 * (int)strlen(num), top + 166, num, black, 2);
	hydb_draw_text(cv->px, cv->w, cv->h, 180 + (cv->w - 220) / 2 - 36, top + 166, "radius", black, 2);
#undef X
}

static int write_plot(const struct ev *e)
{
	struct canvas cv = {NULL, 1000, 520};
	int rc;
	cv.px = malloc((size_t)cv.w * cv.h * 3);
	if (!cv.px)
		return hydb_error_set(HYDB_ENOMEM, "%s: out of memory", e->plot);
	memset(cv.px, 255, (size_t)cv.w * cv.h * 3);
	plot_recall(e, &cv, 20, 240);
	plot_radii(e, &cv, 310);
	rc = hydb_rgb_write_png(e->plot, cv.px, cv.w, cv.h);
	free(cv.px);
	return rc;
}

/* ---- the command ---------------------------------------------------------- */

static void ev_free(struct ev *e)
{
	for (int cl = 0; cl < 4; cl++) {
		free(e->vec[cl]);
		free(e->rad[cl]);
	}
	eval_manifest_free(&e->mf);
	close_db(e);
	hydb_model_close(e->m);
	free(e);
}

static int evaluate(struct ev *e)
{
	FORWARD_IF_ERROR(eval_manifest_read(&e->mf, e->manifest));
	FORWARD_IF_ERROR(open_db(e));
	e->dim = hydb_dim(e->db);
	e->c = hydb_curvature(e->db);
	RETURN_ERROR_IF(hydb_model_dim(e->m) != e->dim, HYDB_EDIM,
			"the model embeds in %zu dimensions, the database %s has %zu", hydb_model_dim(e->m),
			e->db_path, e->dim);
	FORWARD_IF_ERROR(load_entries(e));
	FORWARD_IF_ERROR(compute_stats(e));
	FORWARD_IF_ERROR(classify(e));
	FORWARD_IF_ERROR(run_all(e));
	if (e->plot)
		FORWARD_IF_ERROR(write_plot(e));
	return HYDB_OK;
}

int hydb_cmd_evaluate(int argc, char **argv)
{
	struct ev *e = calloc(1, sizeof *e);
	int rc;
	if (!e)
		return hydb_cli_fail(CMD, HYDB_EXIT_DATA, "out of memory");
	e->nk = 4;
	e->kmax = 20;
	memcpy(e->ks, (size_t[]){1, 5, 10, 20}, 4 * sizeof(size_t));
	rc = parse_args(argc, argv, e);
	if (rc) {
		free(e);
		return rc < 0 ? HYDB_EXIT_OK : rc;
	}
	rc = evaluate(e);
	if (rc < 0) {
		rc = hydb_cli_fail_lib(CMD, rc);
	} else {
		if (e->json)
			print_json(e);
		else
			print_table(e);
		if (e->plot)
			fprintf(stderr, "wrote %s\n", e->plot);
		rc = HYDB_EXIT_OK;
	}
	ev_free(e);
	return rc;
}
