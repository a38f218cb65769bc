/*
 * vision.c - the ViT image tower: patch embedding as one GEMM over the
 * image's patches, class token, pre-LN blocks, projection of the class
 * token. A batch of images runs through each block together so that the
 * GEMMs are tall enough to keep both cores busy.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/forward.h"
#include "base/base.h"

/* Rearrange one CHW image into rows of patches; each row is ordered like
 * the conv weight [out, channel, ky, kx] flattened. */
static void im2col(float *rows, const float *img, size_t grid, size_t p)
{
	size_t side = grid * p, k = 3 * p * p;
	for (size_t gy = 0; gy < grid; gy++)
		for (size_t gx = 0; gx < grid; gx++) {
			float *r = rows + (gy * grid + gx) * k;
			for (size_t c = 0; c < 3; c++)
				for (size_t ky = 0; ky < p; ky++) {
					const float *src = img + c * side * side +
							   (gy * p + ky) * side +
							   gx * p;
					memcpy(r, src, p * sizeof *r);
					r += p;
				}
		}
}

/* Tokens of one image: class embedding, then patches, plus positions. */
static void embed_image(const hydb_fwd *f, const hydb_encoder *e, float *x,
			const float *img, float *patches)
{
	size_t w = e->vision.width, g2 = e->grid * e->grid;
	size_t k = 3 * e->patch * e->patch;
	im2col(patches, img, e->grid, e->patch);
	hydb_fwd_gemm(f, x + w, patches, g2, k, w, e->patch_w);
	memcpy(x, e->class_emb, w * sizeof *x);
	for (size_t t = 0; t < e->n_pos; t++) {
		float *row = x + t * w;
		const float *pos = e->vis_pos + t * w;
		for (size_t i = 0; i < w; i++)
			row[i] += pos[i];
		if (t > 0 && e->patch_b)
			for (size_t i = 0; i < w; i++)
				row[i] += e->patch_b[i];
	}
}

struct vision_buf {
	float *x, *patches, *scratch, *pooled;
	hydb_scratch block;     /* all four, from the encoder */
};

/* Floats of each part, and where each starts in the block (64-byte
 * aligned); returns HYDB_ENOMEM on overflow. */
static int vision_parts(size_t at[4], size_t *total, const hydb_fwd *f,
			const hydb_encoder *e, size_t n)
{
	size_t w = e->vision.width, k = 3 * e->patch * e->patch, sz[4];
	RETURN_ERROR_IF(hydb_mul_size(&sz[0], n, e->n_pos) < 0 ||
			hydb_mul_size(&sz[0], sz[0], w) < 0 ||
			hydb_mul_size(&sz[3], n, w) < 0, HYDB_ENOMEM,
			"image batch of %zu overflows", n);
	FORWARD_IF_ERROR(hydb_layer_scratch(&sz[2], f, &e->vision, n,
					     e->n_pos));
	sz[1] = e->grid * e->grid * k;
	*total = 0;
	for (int i = 0; i < 4; i++) {
		at[i] = *total;
		RETURN_ERROR_IF(sz[i] > (SIZE_MAX / 8 - *total) / sizeof(float),
				HYDB_ENOMEM, "image batch of %zu overflows", n);
		*total += (sz[i] * sizeof(float) + 63) & ~(size_t)63;
	}
	return HYDB_OK;
}

static int vision_buf_alloc(struct vision_buf *b, const hydb_fwd *f,
			    hydb_encoder *e, size_t n)
{
	size_t at[4], total = 0;
	memset(b, 0, sizeof *b);
	FORWARD_IF_ERROR(vision_parts(at, &total, f, e, n));
	FORWARD_IF_ERROR(hydb_scratch_take(&b->block, f, e, total,
					   "image scratch"));
	char *p = b->block.p;
	b->x = (float *)(p + at[0]);
	b->patches = (float *)(p + at[1]);
	b->scratch = (float *)(p + at[2]);
	b->pooled = (float *)(p + at[3]);
	return HYDB_OK;
}

static void vision_run(const hydb_fwd *f, const hydb_encoder *e,
		       struct vision_buf *b, const float *pixels, size_t n,
		       float *features)
{
	const hydb_tower *t = &e->vision;
	size_t w = t->width, side = e->grid * e->patch;
	for (size_t i = 0; i < n; i++)
		embed_image(f, e, b->x + i * e->n_pos * w,
			    pixels + i * 3 * side * side, b->patches);
	hydb_layer_norm(f, b->x, b->x, n * e->n_pos, w, e->pre_ln_w,
			e->pre_ln_b, t->ln_eps);
	for (size_t l = 0; l < t->layers; l++)
		hydb_layer_forward(f, t, &t->blocks[l], b->x, n, e->n_pos, 0,
				   b->scratch);
	for (size_t i = 0; i < n; i++)
		hydb_layer_norm(NULL, b->pooled + i * w, b->x + i * e->n_pos * w,
				1, w, t->final_ln_w, t->final_ln_b, t->ln_eps);
	hydb_fwd_gemm(f, features, b->pooled, n, w, e->embed_dim, t->proj);
}

int hydb_vision_forward(struct hydb_model *m, const float *pixels, size_t n,
			float *features)
{
	hydb_encoder *e;
	hydb_fwd f;
	struct vision_buf b;
	if (n == 0)
		return HYDB_OK;
	FORWARD_IF_ERROR(hydb_encoder_get(&e, m));
	FORWARD_IF_ERROR(hydb_fwd_begin(&f, e));
	int rc = vision_buf_alloc(&b, &f, e, n);
	if (rc == 0) {
		vision_run(&f, e, &b, pixels, n, features);
		rc = hydb_fwd_status(&f);
		hydb_scratch_give(&f, e, &b.block);
	}
	hydb_fwd_end(&f);
	return rc;
}
