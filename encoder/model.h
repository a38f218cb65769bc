/*
 * model.h - the HySAC model file, mapped read-only (internal).
 *
 * Container: safetensors. The JSON header's "__metadata__" holds string
 * values only (safetensors' rule); hydb's config is the JSON text under the
 * "hydb" key (see README, "Model file"). Tensor names are the Hugging Face
 * CLIPModel names after LoRA merging, e.g.
 *   vision_model.encoder.layers.0.self_attn.k_proj.weight
 * plus the optional vision_model.embeddings.patch_embedding.bias and the
 * tokenizer merges as a U8 tensor "tokenizer.merges" (text, one merge a
 * line, no header line).
 */
#ifndef HYDB_MODEL_H
#define HYDB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define HYDB_MODEL_FORMAT_VERSION 1

typedef struct hydb_model_bounds {
	double avg, low_05, up_95;
} hydb_model_bounds;

typedef struct hydb_model_config {
	int format_version;
	/* vision tower */
	int vision_width, vision_layers, vision_heads, vision_mlp;
	int image_size, patch_size;
	/* text tower */
	int text_width, text_layers, text_heads, text_mlp;
	int vocab_size, context_length;
	int bos_id, eos_id;
	int embed_dim;      /* projection output = hyperbolic space dim */
	double ln_eps;      /* 1e-5 */
	/* HySAC scalars, already exponentiated */
	double curvature, visual_alpha, textual_alpha;
	hydb_model_bounds bound_image, bound_text; /* HySAC "V" and "S" */
	int has_patch_bias;
	float image_mean[3], image_std[3];
	char name[128];     /* free-form, e.g. "hysac-vit-l-14" or "tiny" */
} hydb_model_config;

typedef struct hydb_tensor {
	const char *name;
	int ndim;
	int64_t shape[4];
	const float *data;  /* float32, in the map or converted at load */
} hydb_tensor;

struct hydb_tokenizer;

/* The public handle hydb_model (hydb.h) is this struct. */
struct hydb_model {
	hydb_model_config cfg;
	void *map;
	size_t map_size;
	hydb_tensor *tensors;
	size_t n_tensors;
	void **owned;          /* buffers of tensors converted from f16/bf16 */
	size_t n_owned;
	const char *merges;    /* in the map */
	size_t merges_len;
	struct hydb_tokenizer *tok;
	char hash[17];         /* XXH64 hex of the whole file */
	char path[4096];
	void *enc;             /* encoder/: packed weights and scratch */
	int precision;         /* hydb_precision */
};

/* Look up a tensor and check its shape (ndim entries; -1 = any).
 * Returns NULL and sets HYDB_EMODEL when missing or misshapen. */
const float *hydb_model_tensor(const struct hydb_model *m, const char *name,
			       int ndim, const int64_t *shape);
/* Same, but returns NULL without error when the tensor is absent. */
const float *hydb_model_tensor_opt(const struct hydb_model *m,
				   const char *name, int ndim,
				   const int64_t *shape);

/* Frees m->enc; defined by the forward pass (encoder/forward.c). The model
 * references it weakly so that it links without the encoder. */
void hydb_encoder_release(void *enc);
/* HYDB_OK when this build and CPU can run the bf16 engine; defined by
 * encoder/bf16.c, referenced weakly for the same reason. */
int hydb_bf16_check(void);

#endif
