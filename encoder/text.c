/*
 * text.c - the causal text tower. Only the tokens up to the first EOS are
 * run: with a causal mask nothing after the pooled position can reach it,
 * so a 12-token caption costs 12 rows, not the 77 of the padded context.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/forward.h"
#include "base/base.h"

/* HF pools at argmax(input_ids), which is the first EOS because EOS has the
 * largest id; the argmax also covers sequences cut off without an EOS. */
static size_t pool_position(const int32_t *ids, size_t n, int32_t eos)
{
	size_t best = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == eos)
			return i;
		if (ids[i] > ids[best])
			best = i;
	}
	return best;
}

static int check_ids(const hydb_encoder *e, const int32_t *ids, size_t len)
{
	RETURN_ERROR_IF(len > e->context, HYDB_ETOOBIG,
			"text: %zu tokens, the model's context is %zu", len,
			e->context);
	for (size_t i = 0; i < len; i++)
		RETURN_ERROR_IF(ids[i] < 0 || (size_t)ids[i] >= e->vocab,
				HYDB_EINVAL, "text: token %zu id %d outside "
				"vocabulary of %zu", i, (int)ids[i], e->vocab);
	return HYDB_OK;
}

/* x has len + 1 rows: the tokens, then the pooled one. */
static void text_run(const hydb_fwd *f, const hydb_encoder *e,
		     const int32_t *ids, size_t len, float *x, float *s,
		     float *features)
{
	const hydb_tower *t = &e->text;
	size_t w = t->width;
	for (size_t i = 0; i < len; i++) {
		const float *tok = e->tok_emb + (size_t)ids[i] * w;
		const float *pos = e->txt_pos + i * w;
		for (size_t j = 0; j < w; j++)
			x[i * w + j] = tok[j] + pos[j];
	}
	for (size_t l = 0; l < t->layers; l++)
		hydb_layer_forward(f, t, &t->blocks[l], x, 1, len, 1, s);
	float *pooled = x + len * w;
	hydb_layer_norm(NULL, pooled, x + (len - 1) * w, 1, w, t->final_ln_w,
			t->final_ln_b, t->ln_eps);
	hydb_fwd_gemm(f, features, pooled, 1, w, e->embed_dim, t->proj);
}

int hydb_text_forward(struct hydb_model *m, const int32_t *ids, size_t n_ids,
		      float *features)
{
	hydb_encoder *e;
	hydb_fwd f;
	FORWARD_IF_ERROR(hydb_encoder_get(&e, m));
	RETURN_ERROR_IF(n_ids == 0, HYDB_EINVAL, "text: no tokens");
	size_t len = pool_position(ids, n_ids, m->cfg.eos_id) + 1;
	FORWARD_IF_ERROR(check_ids(e, ids, len));
	FORWARD_IF_ERROR(hydb_fwd_begin(&f, e));
	size_t scratch, w = e->text.width, xf = (len + 1) * w;
	hydb_scratch block = {NULL, 0};
	int rc = hydb_layer_scratch(&scratch, &f, &e->text, 1, len);
	/* x's floats, rounded up to 16 (64 bytes), then the layers' scratch;
	 * len <= context, so neither sum overflows past the check above. */
	xf = (xf + 15) & ~(size_t)15;
	if (rc == 0 && scratch > SIZE_MAX / sizeof(float) - xf)
		rc = hydb_error_set(HYDB_ENOMEM, "text scratch overflows");
	if (rc == 0)
		rc = hydb_scratch_take(&block, &f, e, (xf + scratch) *
				       sizeof(float), "text scratch");
	if (rc == 0) {
		float *x = block.p;
		text_run(&f, e, ids, len, x, x + xf, features);
		rc = hydb_fwd_status(&f);
		hydb_scratch_give(&f, e, &block);
	}
	hydb_fwd_end(&f);
	return rc;
}
