/*
 * cmd_preprocess.c - `hydb preprocess`: show the pixels the encoder sees.
 *
 * Writes the resized, centre-cropped image as PNG so that a surprising
 * embedding can be traced to its input, and optionally the normalised
 * float32 tensor as .npy for comparison with a reference pipeline.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cli/cli.h"
#include "hydb.h"

#define CMD "preprocess"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hydb preprocess IMAGE -o OUT.png [options]\n\n"
		"Decode IMAGE (JPEG, PNG or WebP, detected from its bytes), resize its\n"
		"shorter side to SIZE with bicubic filtering and write the centre\n"
		"SIZE x SIZE crop: exactly the pixels the image encoder sees.\n\n"
		"  -o, --output FILE     PNG to write (required unless --tensor)\n"
		"  -s, --size N          crop side (default %d)\n"
		"      --tensor FILE     also write the normalised float32 tensor\n"
		"                        (shape 3 x SIZE x SIZE) as .npy\n"
		"      --decode-only     write the decoded image, not resized or cropped\n"
		"      --max-pixels N    refuse larger images (default %zu)\n"
		"  -h, --help            this help\n",
		HYDB_CLIP_SIZE, HYDB_IMAGE_DEFAULT_MAX_PIXELS);
}

struct opts {
	const char *image, *output, *tensor;
	long size;
	unsigned long long max_pixels;
	int decode_only;
};

static int parse_number(const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	if (!s[0] || s[0] == '-')
		return -1;
	*out = strtoull(s, &end, 10);
	return (errno || *end) ? -1 : 0;
}

/* 0 ok, 1 help printed, -1 usage error reported. */
static int parse_args(struct opts *o, int argc, char **argv)
{
	enum { OPT_TENSOR = 256, OPT_DECODE, OPT_MAXPIX };
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'},
		{"size", required_argument, NULL, 's'},
		{"tensor", required_argument, NULL, OPT_TENSOR},
		{"decode-only", no_argument, NULL, OPT_DECODE},
		{"max-pixels", required_argument, NULL, OPT_MAXPIX},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	unsigned long long v;
	int c;
	memset(o, 0, sizeof *o);
	o->size = HYDB_CLIP_SIZE;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': o->output = optarg; break;
		case OPT_TENSOR: o->tensor = optarg; break;
		case OPT_DECODE: o->decode_only = 1; break;
		case 'h': usage(stdout); return 1;
		case 's':
			if (parse_number(optarg, &v) < 0 || v < 1 || v > HYDB_CLIP_MAX_SIZE)
				return hydb_cli_fail(CMD, -1, "--size: expected 1..%d, got '%s'",
						     HYDB_CLIP_MAX_SIZE, optarg);
			o->size = (long)v;
			break;
		case OPT_MAXPIX:
			if (parse_number(optarg, &v) < 0 || v < 1)
				return hydb_cli_fail(CMD, -1, "--max-pixels: expected a positive "
						     "integer, got '%s'", optarg);
			o->max_pixels = v;
			break;
		default:
			return hydb_cli_fail(CMD, -1, "unknown or incomplete option '%s' "
					     "(see hydb preprocess --help)", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return hydb_cli_fail(CMD, -1, "expected exactly one IMAGE (see --help)");
	o->image = argv[optind];
	if (!o->output && !o->tensor)
		return hydb_cli_fail(CMD, -1, "no output: give -o OUT.png and/or --tensor");
	if (o->decode_only && !o->output)
		return hydb_cli_fail(CMD, -1, "--decode-only needs -o OUT.png");
	if (o->decode_only && o->tensor)
		return hydb_cli_fail(CMD, -1, "--tensor needs the crop; drop --decode-only");
	return 0;
}

/* .npy version 1.0: magic, header length, a dict padded to 64 bytes. */
static int write_npy(const char *path, const float *data, int size)
{
	char dict[128];
	int n = snprintf(dict, sizeof dict,
			 "{'descr': '<f4', 'fortran_order': False, 'shape': (3, %d, %d), }",
			 size, size);
	int total = 10 + n + 1;
	int pad = (64 - total % 64) % 64;
	unsigned hlen = (unsigned)(n + pad + 1);
	size_t count = (size_t)3 * size * size;
	FILE *f = fopen(path, "wb");
	if (!f)
		return hydb_cli_fail(CMD, HYDB_EXIT_DATA, "%s: %s", path, strerror(errno));
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fputc((int)(hlen & 0xff), f);
	fputc((int)(hlen >> 8), f);
	fprintf(f, "%s%*s\n", dict, pad, "");
	size_t wrote = fwrite(data, sizeof *data, count, f);
	if (fclose(f) != 0 || wrote != count)
		return hydb_cli_fail(CMD, HYDB_EXIT_DATA, "%s: write failed", path);
	return HYDB_EXIT_OK;
}

static int run(const struct opts *o, const hydb_rgb *img)
{
	int size = (int)o->size, rc;
	if (o->decode_only) {
		rc = hydb_rgb_write_png(o->output, img->rgb, img->w, img->h);
		return rc < 0 ? hydb_cli_fail_lib(CMD, rc) : HYDB_EXIT_OK;
	}
	size_t plane = (size_t)size * size;
	uint8_t *crop = malloc(plane * 3);
	float *tensor = o->tensor ? malloc(plane * 3 * sizeof(float)) : NULL;
	int status = HYDB_EXIT_OK;
	if (!crop || (o->tensor && !tensor))
		status = hydb_cli_fail(CMD, HYDB_EXIT_DATA, "out of memory");
	else if ((rc = hydb_rgb_crop(crop, img, size)) < 0)
		status = hydb_cli_fail_lib(CMD, rc);
	else if (o->output && (rc = hydb_rgb_write_png(o->output, crop, size, size)) < 0)
		status = hydb_cli_fail_lib(CMD, rc);
	else if (tensor && (rc = hydb_rgb_tensor(tensor, img, size)) < 0)
		status = hydb_cli_fail_lib(CMD, rc);
	else if (tensor)
		status = write_npy(o->tensor, tensor, size);
	free(crop);
	free(tensor);
	return status;
}

int hydb_cmd_preprocess(int argc, char **argv)
{
	struct opts o;
	int p = parse_args(&o, argc, argv);
	if (p != 0)
		return p > 0 ? HYDB_EXIT_OK : HYDB_EXIT_USAGE;
	hydb_rgb img;
	int rc = hydb_rgb_load(&img, o.image, (size_t)o.max_pixels);
	if (rc < 0)
		return hydb_cli_fail_lib(CMD, rc);
	int status = run(&o, &img);
	hydb_rgb_free(&img);
	return status;
}
