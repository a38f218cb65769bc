/*
 * model_desc.c - what a model file holds, for hydb model info (admin.h)
 * and the model hash (hydb.h): the tool describes a model through these
 * calls instead of reading encoder/'s structs.
 */
#include "config.h"

#include <string.h>

#include "admin.h"
#include "encoder/model.h"

const char *hydb_model_hash(const hydb_model *m)
{
	return m ? m->hash : "";
}

/* The tokenizer's merges are its lines; the last may lack its newline. */
static size_t count_merges(const hydb_model *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->merges_len; i++)
		if (m->merges[i] == '\n')
			n++;
	if (m->merges_len && m->merges[m->merges_len - 1] != '\n')
		n++;
	return n;
}

static unsigned long long count_params(const hydb_model *m)
{
	unsigned long long n = 0;
	for (size_t i = 0; i < m->n_tensors; i++) {
		unsigned long long k = 1;
		for (int d = 0; d < m->tensors[i].ndim; d++)
			k *= (unsigned long long)m->tensors[i].shape[d];
		n += k;
	}
	return n;
}

static hydb_model_bounds_desc bounds(const hydb_model_bounds *b)
{
	hydb_model_bounds_desc out = {b->avg, b->low_05, b->up_95};
	return out;
}

static void describe_towers(const hydb_model_config *c, hydb_model_desc *out)
{
	out->vision_width = c->vision_width;
	out->vision_layers = c->vision_layers;
	out->vision_heads = c->vision_heads;
	out->vision_mlp = c->vision_mlp;
	out->image_size = c->image_size;
	out->patch_size = c->patch_size;
	out->patch_bias = c->has_patch_bias;
	out->text_width = c->text_width;
	out->text_layers = c->text_layers;
	out->text_heads = c->text_heads;
	out->text_mlp = c->text_mlp;
	out->vocab_size = c->vocab_size;
	out->context_length = c->context_length;
	out->bos_id = c->bos_id;
	out->eos_id = c->eos_id;
}

int hydb_model_describe(const hydb_model *m, hydb_model_desc *out)
{
	RETURN_ERROR_IF(!m || !out, HYDB_EINVAL, "model describe: NULL argument");
	const hydb_model_config *c = &m->cfg;
	memset(out, 0, sizeof *out);
	out->file = m->path;
	out->name = c->name;
	out->hash = m->hash;
	out->format_version = c->format_version;
	out->tensors = m->n_tensors;
	out->merges = count_merges(m);
	out->parameters = count_params(m);
	describe_towers(c, out);
	out->embed_dim = c->embed_dim;
	out->ln_eps = c->ln_eps;
	out->curvature = c->curvature;
	out->visual_alpha = c->visual_alpha;
	out->textual_alpha = c->textual_alpha;
	out->bound_image = bounds(&c->bound_image);
	out->bound_text = bounds(&c->bound_text);
	memcpy(out->image_mean, c->image_mean, sizeof out->image_mean);
	memcpy(out->image_std, c->image_std, sizeof out->image_std);
	return HYDB_OK;
}

int hydb_model_tensor_shape(const hydb_model *m, size_t i, const char **name, int *ndim,
			    int64_t shape[4])
{
	RETURN_ERROR_IF(!m || !name || !ndim || !shape, HYDB_EINVAL,
			"model tensor: NULL argument");
	RETURN_ERROR_IF(i >= m->n_tensors, HYDB_EINVAL, "model tensor %zu: the model has %zu", i,
			m->n_tensors);
	const hydb_tensor *t = &m->tensors[i];
	*name = t->name;
	*ndim = t->ndim;
	memcpy(shape, t->shape, sizeof t->shape);
	return HYDB_OK;
}
