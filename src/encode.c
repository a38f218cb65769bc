/*
 * encode.c - the public encoder calls (library face): tokenise or decode,
 * run a tower (encoder/), then lift the Euclidean features onto the
 * hyperboloid as HySAC does (scale by the learned alpha, exponential map at
 * the origin, base/lorentz). The image steps are public to the tool too
 * (admin.h: hydb_image_batch), so that hydb ingest, which decodes the next
 * batch while the tower runs on this one, goes through this one pipeline
 * and normalises with the model's own image_mean/image_std.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "encoder/forward.h"
#include "encoder/image.h"
#include "encoder/tokenizer.h"
#include "base/base.h"

static void lift(const hydb_model *m, const float *f, double alpha,
		 float *out, float *radius, float *features)
{
	size_t d = (size_t)m->cfg.embed_dim;
	double c = m->cfg.curvature;
	if (features)
		memcpy(features, f, d * sizeof *f);
	for (size_t i = 0; i < d; i++)
		out[i] = (float)(f[i] * alpha);
	hydb_exp_map0(out, out, d, c);
	if (radius)
		*radius = (float)hydb_lorentz_radius(out, d, c);
}

static int check_model(const hydb_model *m, const void *out)
{
	RETURN_ERROR_IF(!m, HYDB_EINVAL, "encode: model is NULL");
	RETURN_ERROR_IF(!out, HYDB_EINVAL, "encode: output is NULL");
	return HYDB_OK;
}

/* ---- text -------------------------------------------------------------- */

/* The tokenizer is the one hydb_model_open built and checked against the
 * config (encoder/model.c); encoding only reads it, so threads share it. */
static int tokenizer_get(hydb_tokenizer **out, hydb_model *m)
{
	RETURN_ERROR_IF(!m->tok, HYDB_EMODEL, "%s: model has no tokenizer",
			m->path);
	*out = m->tok;
	return HYDB_OK;
}

int hydb_encode_tokens(hydb_model *m, const char *text, int32_t *ids,
		       size_t *n_used)
{
	hydb_tokenizer *t = NULL;
	FORWARD_IF_ERROR(check_model(m, ids));
	RETURN_ERROR_IF(!text, HYDB_EINVAL, "encode: text is NULL");
	FORWARD_IF_ERROR(tokenizer_get(&t, m));
	size_t ctx = (size_t)m->cfg.context_length;
	RETURN_ERROR_IF(ctx < 2 || ctx > HYDB_ENCODE_MAX_CONTEXT, HYDB_EMODEL,
			"%s: context_length %zu unsupported", m->path, ctx);
	return hydb_tokenize(t, text, strlen(text), ids, ctx, n_used);
}

int hydb_encode_ids(hydb_model *m, const int32_t *ids, size_t n, float *out,
		    float *radius, float *features)
{
	FORWARD_IF_ERROR(check_model(m, out));
	float *f = hydb_alloc_array((size_t)m->cfg.embed_dim, sizeof(float),
				    "text features");
	if (!f)
		return HYDB_ENOMEM;
	int rc = hydb_text_forward(m, ids, n, f);
	if (rc == 0)
		lift(m, f, m->cfg.textual_alpha, out, radius, features);
	free(f);
	return rc;
}

int hydb_encode_text(hydb_model *m, const char *text, float *out,
		     float *radius, float *features)
{
	int32_t ids[HYDB_ENCODE_MAX_CONTEXT];
	size_t n_used;
	FORWARD_IF_ERROR(hydb_encode_tokens(m, text, ids, &n_used));
	return hydb_encode_ids(m, ids, n_used, out, radius, features);
}

/* ---- images ------------------------------------------------------------ */

/* Pixels laid out for one model's tower: cap images of per floats. */
struct hydb_image_batch {
	const hydb_model *m;
	size_t per, n, cap;
	float *px;
};

int hydb_image_batch_new(hydb_image_batch **out, const hydb_model *m, size_t cap)
{
	RETURN_ERROR_IF(!out || !m, HYDB_EINVAL, "image batch: NULL argument");
	RETURN_ERROR_IF(cap == 0, HYDB_EINVAL, "encode: batch size 0");
	size_t s = (size_t)m->cfg.image_size;
	hydb_image_batch *b = calloc(1, sizeof *b);
	RETURN_ERROR_IF(!b, HYDB_ENOMEM, "image batch: out of memory");
	b->m = m;
	b->per = 3 * s * s;
	b->cap = cap;
	b->px = hydb_alloc_array(cap, b->per * sizeof(float), "image pixels");
	if (!b->px) {
		free(b);
		return HYDB_ENOMEM;
	}
	*out = b;
	return HYDB_OK;
}

void hydb_image_batch_free(hydb_image_batch *b)
{
	if (b)
		free(b->px);
	free(b);
}

size_t hydb_image_batch_count(const hydb_image_batch *b)
{
	return b ? b->n : 0;
}

void hydb_image_batch_clear(hydb_image_batch *b)
{
	if (b)
		b->n = 0;
}

/* The one place images are normalised: with the model's own mean and std
 * (a model converted from a CLIP variant may not use CLIP's defaults). */
static int batch_push(hydb_image_batch *b, const hydb_image *img)
{
	const hydb_model_config *c = &b->m->cfg;
	RETURN_ERROR_IF(b->n == b->cap, HYDB_EINVAL, "image batch: full (%zu images)", b->cap);
	FORWARD_IF_ERROR(hydb_clip_preprocess(b->px + b->n * b->per, img, c->image_size,
					      c->image_mean, c->image_std));
	b->n++;
	return HYDB_OK;
}

int hydb_image_batch_add(hydb_image_batch *b, const char *path)
{
	RETURN_ERROR_IF(!b || !path, HYDB_EINVAL, "image batch: NULL argument");
	hydb_image img = {0};
	FORWARD_IF_ERROR(hydb_image_decode_file(&img, path, 0));
	int rc = batch_push(b, &img);
	hydb_image_free(&img);
	return rc;
}

/* Run the tower on the batch's images and lift each result. */
int hydb_image_batch_encode(hydb_model *m, const hydb_image_batch *b, float *out, float *radii,
			    float *features)
{
	FORWARD_IF_ERROR(check_model(m, out));
	RETURN_ERROR_IF(!b, HYDB_EINVAL, "encode: image batch is NULL");
	RETURN_ERROR_IF(b->m != m, HYDB_EINVAL, "encode: image batch made for another model");
	size_t d = (size_t)m->cfg.embed_dim;
	if (b->n == 0)
		return HYDB_OK;
	float *f = hydb_alloc_array(b->n, d * sizeof(float), "image features");
	if (!f)
		return HYDB_ENOMEM;
	int rc = hydb_vision_forward(m, b->px, b->n, f);
	for (size_t i = 0; rc == 0 && i < b->n; i++)
		lift(m, f + i * d, m->cfg.visual_alpha, out + i * d,
		     radii ? &radii[i] : NULL, features ? features + i * d : NULL);
	free(f);
	return rc;
}

static int check_paths(const char *const *paths, size_t n)
{
	RETURN_ERROR_IF(n && !paths, HYDB_EINVAL, "encode: paths is NULL");
	for (size_t i = 0; i < n; i++)
		RETURN_ERROR_IF(!paths[i], HYDB_EINVAL, "encode: path %zu is NULL", i);
	return HYDB_OK;
}

/* Images go through the tower batch at a time: the activations grow
 * linearly (about 8 MB per ViT-L/14 image) while the GEMMs stop getting
 * faster beyond a few images. */
int hydb_encode_image_batches(hydb_model *m, const char *const *paths,
			      size_t n, size_t batch, float *out, float *radii,
			      float *features)
{
	hydb_image_batch *b;
	FORWARD_IF_ERROR(check_model(m, out));
	FORWARD_IF_ERROR(check_paths(paths, n));
	RETURN_ERROR_IF(batch == 0, HYDB_EINVAL, "encode: batch size 0");
	size_t d = (size_t)m->cfg.embed_dim;
	batch = n < batch ? n : batch;
	FORWARD_IF_ERROR(hydb_image_batch_new(&b, m, batch ? batch : 1));
	int rc = HYDB_OK;
	for (size_t i0 = 0; rc == 0 && i0 < n; i0 += batch) {
		size_t k = n - i0 < batch ? n - i0 : batch;
		hydb_image_batch_clear(b);
		for (size_t j = 0; rc == 0 && j < k; j++)
			rc = hydb_image_batch_add(b, paths[i0 + j]);
		if (rc == 0)
			rc = hydb_image_batch_encode(m, b, out + i0 * d, radii ? radii + i0 : NULL,
						     features ? features + i0 * d : NULL);
	}
	hydb_image_batch_free(b);
	return rc;
}

int hydb_encode_image_files(hydb_model *m, const char *const *paths,
			    size_t n, float *out, float *radii,
			    float *features)
{
	return hydb_encode_image_batches(m, paths, n, HYDB_ENCODE_BATCH, out,
					 radii, features);
}

int hydb_encode_image_memory(hydb_model *m, const void *data, size_t len,
			     float *out, float *radius, float *features)
{
	hydb_image_batch *b;
	FORWARD_IF_ERROR(check_model(m, out));
	RETURN_ERROR_IF(!data, HYDB_EINVAL, "encode: image data is NULL");
	FORWARD_IF_ERROR(hydb_image_batch_new(&b, m, 1));
	hydb_image img = {0};
	int rc = hydb_image_decode_memory(&img, data, len, 0, "image in memory");
	if (rc == 0)
		rc = batch_push(b, &img);
	hydb_image_free(&img);
	if (rc == 0)
		rc = hydb_image_batch_encode(m, b, out, radius, features);
	hydb_image_batch_free(b);
	return rc;
}
