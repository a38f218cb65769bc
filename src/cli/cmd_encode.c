/*
 * cmd_encode.c - `hydb encode`: embed captions or images with a model file.
 *
 * Prints each input's point on the hyperboloid (space components) and its
 * safety radius; --features adds the Euclidean projection output, which is
 * what a reference implementation is compared against.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cli/cli.h"
#include "cli/model_select.h"
#include "hydb.h"

#define CMD "encode"
#define MAX_BATCH 1024

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hydb encode --model FILE (--text TEXT... | --image FILE...)\n\n"
		"Embed captions or images with a HySAC model file and print each\n"
		"point's space components and its radius (distance from the origin).\n\n"
		"  -m, --model FILE   model (default: $HYDB_MODEL)\n"
		"  -t, --text TEXT    a caption; may be repeated\n"
		"  -i, --image FILE   an image; every further argument is one too;\n"
		"                     - reads one image from standard input\n"
		"      --ids LIST     token ids (comma-separated) instead of a caption\n"
		"      --json         one JSON object per input per line\n"
		"      --features     also print the Euclidean features (before the\n"
		"                     exponential map)\n"
		"      --tokens       print the token ids of each --text, not embeddings\n"
		"  -b, --batch N      images per forward pass, 1..%d (default %d)\n"
		"      --precision P  f32 (default) or bf16: the encoder's arithmetic\n"
		"  -h, --help         this help\n\n"
		"An input that cannot be encoded (an unreadable or broken image, a\n"
		"caption the model refuses) is reported on standard error, one line\n"
		"naming it; the others are still printed, and the exit status is 2.\n",
		MAX_BATCH, HYDB_ENCODE_BATCH);
}

enum input_kind { IN_TEXT, IN_IDS, IN_IMAGE };

struct input {
	enum input_kind kind;
	const char *arg;
};

struct opts {
	const char *model;
	struct input *in;
	size_t n_in;
	int json, features, tokens;
	size_t batch;
	hydb_precision precision;
};

static int add_input(struct opts *o, enum input_kind kind, const char *arg)
{
	struct input *p = realloc(o->in, (o->n_in + 1) * sizeof *p);
	if (!p)
		return hydb_cli_fail(CMD, -1, "out of memory");
	o->in = p;
	o->in[o->n_in].kind = kind;
	o->in[o->n_in++].arg = arg;
	return 0;
}

/* 0 ok, 1 help printed, -1 usage error reported. */
static int parse_args(struct opts *o, int argc, char **argv)
{
	enum { OPT_IDS = 256, OPT_JSON, OPT_FEATURES, OPT_TOKENS, OPT_PRECISION };
	static const struct option longopts[] = {
		{"model", required_argument, NULL, 'm'},
		{"text", required_argument, NULL, 't'},
		{"image", required_argument, NULL, 'i'},
		{"ids", required_argument, NULL, OPT_IDS},
		{"json", no_argument, NULL, OPT_JSON},
		{"features", no_argument, NULL, OPT_FEATURES},
		{"tokens", no_argument, NULL, OPT_TOKENS},
		{"batch", required_argument, NULL, 'b'},
		{"precision", required_argument, NULL, OPT_PRECISION},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int c, images = 0, rc = 0;
	o->model = getenv("HYDB_MODEL");
	o->batch = HYDB_ENCODE_BATCH;
	optind = 1;
	opterr = 0;
	while (rc == 0 &&
	       (c = getopt_long(argc, argv, "m:t:i:b:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 't': rc = add_input(o, IN_TEXT, optarg); break;
		case OPT_IDS: rc = add_input(o, IN_IDS, optarg); break;
		case 'i': images = 1; rc = add_input(o, IN_IMAGE, optarg); break;
		case OPT_JSON: o->json = 1; break;
		case OPT_FEATURES: o->features = 1; break;
		case OPT_TOKENS: o->tokens = 1; break;
		case OPT_PRECISION:
			if (hydb_cli_parse_precision(CMD, optarg, &o->precision))
				return -1;
			break;
		case 'b':
			if (hydb_cli_parse_size(CMD, "--batch", optarg, 1, MAX_BATCH, &o->batch))
				return -1;
			break;
		case 'h': usage(stdout); return 1;
		default:
			return hydb_cli_fail(CMD, -1, "unknown or incomplete option "
					     "'%s' (see hydb encode --help)",
					     argv[optind - 1]);
		}
	}
	for (; rc == 0 && optind < argc; optind++) {
		if (!images)
			return hydb_cli_fail(CMD, -1, "unexpected argument '%s' "
					     "(images follow --image)", argv[optind]);
		rc = add_input(o, IN_IMAGE, argv[optind]);
	}
	if (rc)
		return rc;
	if (!o->model || !*o->model)
		return hydb_cli_fail(CMD, -1, "no model: give --model FILE or set "
				     "HYDB_MODEL");
	if (!o->n_in)
		return hydb_cli_fail(CMD, -1, "nothing to encode: give --text or "
				     "--image");
	return 0;
}

/* ---- output ------------------------------------------------------------ */

static void put_floats(const float *v, size_t n, const char *sep)
{
	for (size_t i = 0; i < n; i++)
		printf("%s%.9g", i ? sep : "", (double)v[i]);
}

static void print_result(const struct opts *o, const char *input,
			 const float *emb, float radius, const float *feat,
			 size_t d)
{
	if (o->json) {
		printf("{\"input\":");
		hydb_json_write_string(stdout, input);
		printf(",\"embedding\":[");
		put_floats(emb, d, ",");
		printf("],\"radius\":%.9g", (double)radius);
		if (feat) {
			printf(",\"features\":[");
			put_floats(feat, d, ",");
			putchar(']');
		}
		printf("}\n");
		return;
	}
	printf("%s\tradius %.9g\n  embedding ", input, (double)radius);
	put_floats(emb, d, " ");
	if (feat) {
		printf("\n  features ");
		put_floats(feat, d, " ");
	}
	putchar('\n');
}

static void print_tokens(const struct opts *o, const char *input,
			 const int32_t *ids, size_t n)
{
	if (o->json) {
		printf("{\"input\":");
		hydb_json_write_string(stdout, input);
		printf(",\"tokens\":[");
	} else {
		printf("%s\t", input);
	}
	for (size_t i = 0; i < n; i++)
		printf("%s%d", i ? (o->json ? "," : " ") : "", (int)ids[i]);
	printf(o->json ? "]}\n" : "\n");
}

/* ---- encoding ---------------------------------------------------------- */

/* "1,2,3": each id strictly an integer in 0..INT32_MAX (the model checks
 * it against its vocabulary). */
static int parse_ids(int32_t *ids, size_t *n, const char *s)
{
	*n = 0;
	for (;;) {
		size_t len = strcspn(s, ",");
		char *tok;
		unsigned long long v;
		int rc;
		if (*n == HYDB_ENCODE_MAX_CONTEXT)
			return hydb_cli_fail(CMD, -1, "--ids: more than %d ids",
					     HYDB_ENCODE_MAX_CONTEXT);
		if (!(tok = strndup(s, len)))
			return hydb_cli_fail(CMD, -1, "out of memory");
		rc = hydb_cli_parse_uint(CMD, "--ids", tok, 0, INT32_MAX, &v);
		free(tok);
		if (rc)
			return -1;
		ids[(*n)++] = (int32_t)v;
		if (!s[len])
			return 0;
		s += len + 1;
	}
}

static int encode_caption(const struct opts *o, hydb_model *m,
			  const struct input *in, float *emb, float *feat)
{
	int32_t ids[HYDB_ENCODE_MAX_CONTEXT];
	size_t n;
	float r;
	int rc;
	if (in->kind == IN_IDS) {
		if (parse_ids(ids, &n, in->arg) < 0)
			return HYDB_EXIT_USAGE;
	} else {
		rc = hydb_encode_tokens(m, in->arg, ids, &n);
		if (rc < 0)
			return hydb_cli_fail_lib(CMD, rc);
	}
	if (o->tokens) {
		print_tokens(o, in->arg, ids, n);
		return 0;
	}
	rc = hydb_encode_ids(m, ids, n, emb, &r, feat);
	if (rc < 0)
		return hydb_cli_fail_lib(CMD, rc);
	print_result(o, in->arg, emb, r, feat, hydb_model_dim(m));
	return 0;
}

static int read_stdin(unsigned char **out, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	unsigned char *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n, stdin);
		if (n < cap || cap >= HYDB_IMAGE_MAX_BYTES)
			break;
		unsigned char *p = realloc(buf, cap * 2);
		if (!p) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = p;
		cap *= 2;
	}
	if (!buf)
		return hydb_cli_fail(CMD, HYDB_EXIT_DATA, "standard input: out of memory");
	if (ferror(stdin) || (n == cap && cap >= HYDB_IMAGE_MAX_BYTES)) {
		free(buf);
		return hydb_cli_fail(CMD, HYDB_EXIT_DATA, "standard input: %s",
				     ferror(stdin) ? "read error" :
				     "image over the size limit");
	}
	*out = buf;
	*len = n;
	return 0;
}

/* "-": one image from standard input, through hydb_encode_image_memory. */
static int encode_stdin_image(const struct opts *o, hydb_model *m, float *emb,
			      float *feat)
{
	unsigned char *data = NULL;
	size_t len = 0;
	float r;
	int rc = read_stdin(&data, &len);
	if (rc)
		return rc;
	int lrc = hydb_encode_image_memory(m, data, len, emb, &r, feat);
	free(data);
	if (lrc < 0)
		return hydb_cli_fail_lib(CMD, lrc);
	print_result(o, "-", emb, r, feat, hydb_model_dim(m));
	return 0;
}

static int is_stdin(const struct input *in)
{
	return in->kind == IN_IMAGE && !strcmp(in->arg, "-");
}

/* One image on its own: its error is reported and does not stop the rest.
 * HYDB_EXIT_DATA if it failed. */
static int encode_one_image(const struct opts *o, hydb_model *m, const char *path,
			    float *emb, float *radius, float *feat)
{
	int lrc = hydb_encode_image_files(m, &path, 1, emb, radius, feat);
	if (lrc < 0)
		return hydb_cli_fail(CMD, HYDB_EXIT_DATA, "%s", hydb_last_error());
	print_result(o, path, emb, *radius, feat, hydb_model_dim(m));
	return 0;
}

/* A run of consecutive image inputs [i0, i1), encoded o->batch at a time.
 * The library fails a whole batch for one bad file, so a failed batch is
 * redone one image at a time: the good ones print, each bad one gets its
 * line. HYDB_EXIT_DATA if any failed. */
static int encode_images(const struct opts *o, hydb_model *m, size_t i0,
			 size_t i1)
{
	size_t d = hydb_model_dim(m), n = i1 - i0;
	size_t b = o->batch < n ? o->batch : n;
	const char **paths = malloc(b * sizeof *paths);
	float *emb = malloc(b * d * sizeof *emb);
	float *feat = malloc(b * d * sizeof *feat);
	float *radii = malloc(b * sizeof *radii);
	float *fp = o->features ? feat : NULL;
	int rc = 0;
	if (!paths || !emb || !feat || !radii) {
		rc = hydb_cli_fail(CMD, HYDB_EXIT_DATA, "out of memory for %zu images", b);
		goto out;
	}
	for (size_t s = 0; s < n; s += b) {
		size_t k = n - s < b ? n - s : b;
		for (size_t i = 0; i < k; i++)
			paths[i] = o->in[i0 + s + i].arg;
		if (hydb_encode_image_batches(m, paths, k, k, emb, radii, fp) == 0) {
			for (size_t i = 0; i < k; i++)
				print_result(o, paths[i], emb + i * d, radii[i],
					     fp ? feat + i * d : NULL, d);
			continue;
		}
		for (size_t i = 0; i < k; i++)
			if (encode_one_image(o, m, paths[i], emb, radii, fp))
				rc = HYDB_EXIT_DATA;
	}
out:
	free(paths);
	free(emb);
	free(feat);
	free(radii);
	return rc;
}

/* Every input in order. A usage error stops at once; an input that cannot
 * be encoded is reported and the others still run (exit status 2). */
static int run(const struct opts *o, hydb_model *m)
{
	size_t d = hydb_model_dim(m);
	float *emb = malloc(d * sizeof *emb), *feat = malloc(d * sizeof *feat);
	int status = 0;
	if (!emb || !feat)
		status = hydb_cli_fail(CMD, HYDB_EXIT_DATA, "out of memory");
	for (size_t i = 0; status != HYDB_EXIT_USAGE && emb && feat && i < o->n_in;) {
		int rc;
		if (o->tokens && o->in[i].kind == IN_IMAGE) {
			rc = hydb_cli_fail(CMD, HYDB_EXIT_USAGE,
					   "--tokens applies to --text only");
		} else if (is_stdin(&o->in[i])) {
			rc = encode_stdin_image(o, m, emb, o->features ? feat : NULL);
			i++;
		} else if (o->in[i].kind == IN_IMAGE) {
			size_t j = i;
			while (j < o->n_in && o->in[j].kind == IN_IMAGE &&
			       !is_stdin(&o->in[j]))
				j++;
			rc = encode_images(o, m, i, j);
			i = j;
		} else {
			rc = encode_caption(o, m, &o->in[i],
					    emb, o->features ? feat : NULL);
			i++;
		}
		if (rc == HYDB_EXIT_USAGE || (rc && !status))
			status = rc;
		fflush(stdout);
	}
	free(emb);
	free(feat);
	return status;
}

int hydb_cmd_encode(int argc, char **argv)
{
	struct opts o = {0};
	int rc = parse_args(&o, argc, argv);
	if (rc) {
		free(o.in);
		return rc > 0 ? HYDB_EXIT_OK : HYDB_EXIT_USAGE;
	}
	hydb_model *m;
	int lrc = hydb_cli_model_open(&m, o.model, o.precision);
	if (lrc < 0) {
		free(o.in);
		return hydb_cli_fail_lib(CMD, lrc);
	}
	rc = run(&o, m);
	hydb_model_close(m);
	free(o.in);
	return rc;
}
