/*
 * cmd_model.c - "hydb model info FILE [--json] [--tensors]": show what a
 * model file holds, after the same validation the encoder relies on.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "cli/cli.h"
#include "hydb.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hydb model info FILE [--json] [--tensors]\n"
		   "  Validate a model file and print its configuration, safety\n"
		   "  bounds, tensor count and format version.\n"
		   "  --json     one JSON object instead of text\n"
		   "  --tensors  also list every tensor with its shape\n");
}

static void print_shape(FILE *f, int ndim, const int64_t *shape)
{
	fputc('[', f);
	for (int d = 0; d < ndim; d++)
		fprintf(f, "%s%lld", d ? ", " : "", (long long)shape[d]);
	fputc(']', f);
}

/* One line or JSON member per tensor: "  name [shape]\n" or "name":[shape]. */
static void print_tensors(FILE *f, const hydb_model *m, size_t n, int json)
{
	for (size_t i = 0; i < n; i++) {
		const char *name;
		int ndim;
		int64_t shape[4];
		if (hydb_model_tensor_shape(m, i, &name, &ndim, shape) < 0)
			continue;
		if (json) {
			fputs(i ? "," : "", f);
			hydb_json_write_string(f, name);
			fputc(':', f);
		} else {
			fprintf(f, "  %s ", name);
		}
		print_shape(f, ndim, shape);
		if (!json)
			fputc('\n', f);
	}
}

/* Writes prefix then v; JSON has no NaN, so absent values print as null. */
static void json_num(FILE *f, const char *prefix, double v)
{
	fputs(prefix, f);
	if (isfinite(v))
		fprintf(f, "%.17g", v);
	else
		fputs("null", f);
}

static void json_bound(FILE *f, const char *key, const hydb_model_bounds_desc *b)
{
	fprintf(f, "\"%s\":", key);
	if (isnan(b->up_95)) {
		fputs("null", f);
		return;
	}
	json_num(f, "{\"avg\":", b->avg);
	json_num(f, ",\"low_05\":", b->low_05);
	json_num(f, ",\"up_95\":", b->up_95);
	fputc('}', f);
}

static void json_vec3(FILE *f, const char *key, const float *v)
{
	fprintf(f, "\"%s\":[%.9g,%.9g,%.9g]", key, v[0], v[1], v[2]);
}

static void json_towers(FILE *f, const hydb_model_desc *c)
{
	fprintf(f, "\"vision\":{\"width\":%d,\"layers\":%d,\"heads\":%d,\"mlp\":%d,"
		   "\"image_size\":%d,\"patch_size\":%d,\"patch_bias\":%s},",
		c->vision_width, c->vision_layers, c->vision_heads, c->vision_mlp,
		c->image_size, c->patch_size, c->patch_bias ? "true" : "false");
	fprintf(f, "\"text\":{\"width\":%d,\"layers\":%d,\"heads\":%d,\"mlp\":%d,"
		   "\"vocab_size\":%d,\"context_length\":%d,\"bos_id\":%d,\"eos_id\":%d},",
		c->text_width, c->text_layers, c->text_heads, c->text_mlp,
		c->vocab_size, c->context_length, c->bos_id, c->eos_id);
}

static void print_json(FILE *f, const hydb_model *m, const hydb_model_desc *c, int tensors)
{
	fputs("{\"file\":", f);
	hydb_json_write_string(f, c->file);
	fputs(",\"name\":", f);
	hydb_json_write_string(f, c->name);
	fprintf(f, ",\"format_version\":%d,\"hash\":\"%s\",\"tensors\":%zu,"
		   "\"parameters\":%llu,\"merges\":%zu,", c->format_version, c->hash,
		c->tensors, c->parameters, c->merges);
	json_towers(f, c);
	fprintf(f, "\"embed_dim\":%d", c->embed_dim);
	json_num(f, ",\"ln_eps\":", c->ln_eps);
	json_num(f, ",\"curvature\":", c->curvature);
	json_num(f, ",\"visual_alpha\":", c->visual_alpha);
	json_num(f, ",\"textual_alpha\":", c->textual_alpha);
	fputs(",\"bounds\":{", f);
	json_bound(f, "V", &c->bound_image);
	fputc(',', f);
	json_bound(f, "S", &c->bound_text);
	fputs("},", f);
	json_vec3(f, "image_mean", c->image_mean);
	fputc(',', f);
	json_vec3(f, "image_std", c->image_std);
	if (tensors) {
		fputs(",\"tensor_shapes\":{", f);
		print_tensors(f, m, c->tensors, 1);
		fputc('}', f);
	}
	fputs("}\n", f);
}

static void text_bound(FILE *f, const char *label, const hydb_model_bounds_desc *b)
{
	if (isnan(b->up_95))
		fprintf(f, "%-16s none (classification by radius unavailable)\n", label);
	else
		fprintf(f, "%-16s avg %.6g  low_05 %.6g  up_95 %.6g\n", label, b->avg,
			b->low_05, b->up_95);
}

static void print_text(FILE *f, const hydb_model *m, const hydb_model_desc *c, int tensors)
{
	fprintf(f, "file             %s\nname             %s\n", c->file, c->name);
	fprintf(f, "format version   %d\nhash             %s\n", c->format_version, c->hash);
	fprintf(f, "tensors          %zu (%llu parameters)\n", c->tensors, c->parameters);
	fprintf(f, "vision           width %d, layers %d, heads %d, mlp %d, image %d, "
		   "patch %d, patch bias %s\n", c->vision_width, c->vision_layers,
		c->vision_heads, c->vision_mlp, c->image_size, c->patch_size,
		c->patch_bias ? "yes" : "no");
	fprintf(f, "text             width %d, layers %d, heads %d, mlp %d, vocab %d, "
		   "context %d, bos %d, eos %d\n", c->text_width, c->text_layers,
		c->text_heads, c->text_mlp, c->vocab_size, c->context_length,
		c->bos_id, c->eos_id);
	fprintf(f, "tokenizer        %zu merges\n", c->merges);
	fprintf(f, "embed dim        %d\nln eps           %g\n", c->embed_dim, c->ln_eps);
	fprintf(f, "curvature        %.9g\nvisual alpha     %.9g\ntextual alpha    %.9g\n",
		c->curvature, c->visual_alpha, c->textual_alpha);
	text_bound(f, "bounds V (image)", &c->bound_image);
	text_bound(f, "bounds S (text)", &c->bound_text);
	fprintf(f, "image mean       %.8g %.8g %.8g\nimage std        %.8g %.8g %.8g\n",
		c->image_mean[0], c->image_mean[1], c->image_mean[2],
		c->image_std[0], c->image_std[1], c->image_std[2]);
	if (tensors)
		print_tensors(f, m, c->tensors, 0);
}

static int cmd_info(int argc, char **argv)
{
	const char *file = NULL;
	int json = 0, tensors = 0, rc;
	hydb_model *m;
	hydb_model_desc desc;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--tensors") == 0)
			tensors = 1;
		else if (argv[i][0] == '-' && argv[i][1])
			return hydb_cli_fail("model", HYDB_EXIT_USAGE, "unknown option '%s'",
					     argv[i]);
		else if (file)
			return hydb_cli_fail("model", HYDB_EXIT_USAGE, "more than one FILE");
		else
			file = argv[i];
	}
	if (!file) {
		usage(stderr);
		return HYDB_EXIT_USAGE;
	}
	rc = hydb_model_open(&m, file);
	if (rc < 0)
		return hydb_cli_fail_lib("model", rc == HYDB_EINVAL ? HYDB_EIO : rc);
	rc = hydb_model_describe(m, &desc);
	if (rc < 0) {
		hydb_model_close(m);
		return hydb_cli_fail_lib("model", rc);
	}
	if (json)
		print_json(stdout, m, &desc, tensors);
	else
		print_text(stdout, m, &desc, tensors);
	hydb_model_close(m);
	return fflush(stdout) == 0 ? HYDB_EXIT_OK : HYDB_EXIT_DATA;
}

int hydb_cmd_model(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return HYDB_EXIT_OK;
	}
	if (argc < 2 || strcmp(argv[1], "info") != 0) {
		usage(stderr);
		return HYDB_EXIT_USAGE;
	}
	return cmd_info(argc, argv);
}
