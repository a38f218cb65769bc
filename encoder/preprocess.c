/*
 * preprocess.c - CLIPImageProcessor's resize, centre crop and normalisation.
 *
 * The resize reproduces Pillow's Image.resize(..., BICUBIC) exactly: a cubic
 * kernel with a = -0.5 whose support widens with the downscale factor
 * (antialiasing), weights normalised to sum 1 and rounded to 22-bit fixed
 * point, a horizontal pass rounded and clipped to uint8, then a vertical
 * pass. Any other rounding shifts pixels by one level and the embedding with
 * them.
 *
 * Only the output pixels inside the centre crop are computed: each output
 * pixel depends only on its own weights, so the result is identical to
 * resizing the whole image and cropping afterwards.
 */
#include "config.h"

#include "encoder/image.h"
#include "base/base.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 8 bits of result, 2 bits of headroom for negative lobes and overshoot. */
#define PREC_BITS (32 - 8 - 2)
#define CUBIC_SUPPORT 2.0

static double cubic(double x)
{
	const double a = -0.5;
	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
	if (x < 2.0)
		return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
	return 0.0;
}

/* Fixed-point weights of output positions [first, first+count) of a resize
 * from in_size to out_size along one axis. */
struct axis {
	int ksize;
	int *start;  /* first input index of each output position */
	int *taps;   /* number of inputs used */
	int32_t *w;  /* count*ksize weights */
};

static void axis_free(struct axis *ax)
{
	free(ax->start);
	free(ax->taps);
	free(ax->w);
	memset(ax, 0, sizeof *ax);
}

static int32_t to_fixed(double w)
{
	double s = w * (double)(1 << PREC_BITS);
	return (int32_t)(w < 0 ? s - 0.5 : s + 0.5);
}

static void axis_position(struct axis *ax, int i, int pos, int in_size,
			  double scale, double fscale, double support, double *tmp)
{
	double center = (pos + 0.5) * scale;
	double inv = 1.0 / fscale, sum = 0.0;
	/* Truncation toward zero, then clamping: Pillow's rounding of the
	 * window ends. */
	int lo = (int)(center - support + 0.5);
	int hi = (int)(center + support + 0.5);
	if (lo < 0)
		lo = 0;
	if (hi > in_size)
		hi = in_size;
	int n = hi - lo;
	for (int k = 0; k < n; k++) {
		tmp[k] = cubic((k + lo - center + 0.5) * inv);
		sum += tmp[k];
	}
	int32_t *w = ax->w + (size_t)i * ax->ksize;
	for (int k = 0; k < ax->ksize; k++)
		w[k] = k < n ? to_fixed(sum != 0.0 ? tmp[k] / sum : tmp[k]) : 0;
	ax->start[i] = lo;
	ax->taps[i] = n;
}

static int axis_init(struct axis *ax, int in_size, int out_size, int first, int count)
{
	double scale = (double)in_size / out_size;
	double fscale = scale < 1.0 ? 1.0 : scale;
	double support = CUBIC_SUPPORT * fscale;
	memset(ax, 0, sizeof *ax);
	RETURN_ERROR_IF(support > INT_MAX / 4, HYDB_ETOOBIG,
			"preprocess: downscale factor %g too large", scale);
	ax->ksize = (int)ceil(support) * 2 + 1;
	ax->start = hydb_alloc_array((size_t)count, sizeof(int), "resize bounds");
	ax->taps = hydb_alloc_array((size_t)count, sizeof(int), "resize bounds");
	ax->w = hydb_alloc_array((size_t)count * ax->ksize, sizeof(int32_t), "resize weights");
	double *tmp = hydb_alloc_array((size_t)ax->ksize, sizeof(double), "resize weights");
	if (!ax->start || !ax->taps || !ax->w || !tmp) {
		free(tmp);
		axis_free(ax);
		return HYDB_ENOMEM;
	}
	for (int i = 0; i < count; i++)
		axis_position(ax, i, first + i, in_size, scale, fscale, support, tmp);
	free(tmp);
	return HYDB_OK;
}

static uint8_t clip_fixed(int32_t v)
{
	v >>= PREC_BITS; /* arithmetic: negative sums clip to 0 below */
	return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* src rows of src_w RGB pixels; dst rows of ax count pixels. */
static void pass_horizontal(uint8_t *dst, const uint8_t *src, int src_w, int rows,
			    const struct axis *ax, int count)
{
	for (int y = 0; y < rows; y++) {
		const uint8_t *row = src + (size_t)y * src_w * 3;
		uint8_t *out = dst + (size_t)y * count * 3;
		for (int i = 0; i < count; i++) {
			const int32_t *w = ax->w + (size_t)i * ax->ksize;
			const uint8_t *p = row + (size_t)ax->start[i] * 3;
			int32_t r = 1 << (PREC_BITS - 1), g = r, b = r;
			for (int k = 0, n = ax->taps[i]; k < n; k++, p += 3) {
				r += p[0] * w[k];
				g += p[1] * w[k];
				b += p[2] * w[k];
			}
			out[3 * i] = clip_fixed(r);
			out[3 * i + 1] = clip_fixed(g);
			out[3 * i + 2] = clip_fixed(b);
		}
	}
}

/* src: rows starting at input row row0, each width pixels wide. */
static void pass_vertical(uint8_t *dst, const uint8_t *src, int width, int row0,
			  const struct axis *ax, int count)
{
	size_t stride = (size_t)width * 3;
	for (int i = 0; i < count; i++) {
		const int32_t *w = ax->w + (size_t)i * ax->ksize;
		const uint8_t *base = src + (size_t)(ax->start[i] - row0) * stride;
		uint8_t *out = dst + (size_t)i * stride;
		for (size_t x = 0; x < stride; x++) {
			int32_t s = 1 << (PREC_BITS - 1);
			for (int k = 0; k < ax->taps[i]; k++)
				s += base[(size_t)k * stride + x] * w[k];
			out[x] = clip_fixed(s);
		}
	}
}

/* HF get_resize_output_image_size: the short side becomes size, the long
 * side int(size * long / short) (truncated, computed in double). */
static int resized_dims(int *rw, int *rh, int w, int h, int size)
{
	int s = w <= h ? w : h, l = w <= h ? h : w;
	double nl = floor((double)size * l / s);
	RETURN_ERROR_IF(nl > INT_MAX / 8, HYDB_ETOOBIG,
			"preprocess: aspect ratio %dx%d too extreme", w, h);
	*rw = w <= h ? size : (int)nl;
	*rh = w <= h ? (int)nl : size;
	return HYDB_OK;
}

struct plan {
	int rw, rh, left, top, size;
	int need_h, need_v;
	struct axis ah, av;
	int row0, nrows; /* input rows the crop needs */
};

static void plan_free(struct plan *p)
{
	axis_free(&p->ah);
	axis_free(&p->av);
}

static int plan_init(struct plan *p, const hydb_image *img, int size)
{
	memset(p, 0, sizeof *p);
	FORWARD_IF_ERROR(resized_dims(&p->rw, &p->rh, img->w, img->h, size));
	p->size = size;
	/* HF center_crop: (orig - crop) // 2, never negative here. */
	p->left = (p->rw - size) / 2;
	p->top = (p->rh - size) / 2;
	/* Pillow skips a pass whose axis keeps its length. */
	p->need_h = p->rw != img->w;
	p->need_v = p->rh != img->h;
	if (p->need_h)
		FORWARD_IF_ERROR(axis_init(&p->ah, img->w, p->rw, p->left, size));
	if (p->need_v) {
		int rc = axis_init(&p->av, img->h, p->rh, p->top, size);
		if (rc < 0) {
			plan_free(p);
			return rc;
		}
		p->row0 = p->av.start[0];
		p->nrows = p->av.start[size - 1] + p->av.taps[size - 1] - p->row0;
	} else {
		p->row0 = p->top;
		p->nrows = size;
	}
	return HYDB_OK;
}

static int check_args(const void *out, const hydb_image *img, int size)
{
	RETURN_ERROR_IF(!out || !img || !img->rgb, HYDB_EINVAL, "preprocess: NULL argument");
	RETURN_ERROR_IF(img->w <= 0 || img->h <= 0, HYDB_EINVAL,
			"preprocess: empty image %dx%d", img->w, img->h);
	RETURN_ERROR_IF(size <= 0 || size > HYDB_CLIP_MAX_SIZE, HYDB_EINVAL,
			"preprocess: crop size %d outside 1..%d", size, HYDB_CLIP_MAX_SIZE);
	return HYDB_OK;
}

/* Horizontal pass (or plain column copy) over the needed rows. */
static void run_horizontal(uint8_t *tmp, const hydb_image *img, const struct plan *p)
{
	const uint8_t *src = img->rgb + (size_t)p->row0 * img->w * 3;
	if (p->need_h) {
		pass_horizontal(tmp, src, img->w, p->nrows, &p->ah, p->size);
		return;
	}
	for (int y = 0; y < p->nrows; y++)
		memcpy(tmp + (size_t)y * p->size * 3,
		       src + ((size_t)y * img->w + p->left) * 3, (size_t)p->size * 3);
}

int hydb_clip_preprocess_u8(uint8_t *out_hwc, const hydb_image *img, int size)
{
	struct plan p;
	FORWARD_IF_ERROR(check_args(out_hwc, img, size));
	FORWARD_IF_ERROR(plan_init(&p, img, size));
	uint8_t *tmp = hydb_alloc_array((size_t)p.nrows * size, 3, "resize buffer");
	if (!tmp) {
		plan_free(&p);
		return HYDB_ENOMEM;
	}
	run_horizontal(tmp, img, &p);
	if (p.need_v)
		pass_vertical(out_hwc, tmp, size, p.row0, &p.av, size);
	else
		memcpy(out_hwc, tmp, (size_t)size * size * 3);
	free(tmp);
	plan_free(&p);
	return HYDB_OK;
}

int hydb_clip_preprocess(float *out_chw, const hydb_image *img, int size,
			 const float mean[3], const float std[3])
{
	FORWARD_IF_ERROR(check_args(out_chw, img, size));
	if (!mean)
		mean = hydb_clip_mean;
	if (!std)
		std = hydb_clip_std;
	size_t plane = (size_t)size * size;
	uint8_t *u8 = hydb_alloc_array(plane, 3, "preprocess buffer");
	if (!u8)
		return HYDB_ENOMEM;
	int rc = hydb_clip_preprocess_u8(u8, img, size);
	if (rc < 0) {
		free(u8);
		return rc;
	}
	/* As HF does: rescale in double, round to float32, then normalise in
	 * float32, so that the tensor matches bit for bit. */
	for (size_t i = 0; i < plane; i++)
		for (int c = 0; c < 3; c++) {
			float v = (float)(u8[3 * i + c] * (1.0 / 255.0));
			out_chw[c * plane + i] = (v - mean[c]) / std[c];
		}
	free(u8);
	return HYDB_OK;
}
