/*
 * model.c - open a hydb model file: map it, validate every number in it
 * before use, convert half-precision storage, and check that each tensor
 * the forward pass reads is present with the shape the config implies.
 *
 * Checking all shapes at open time is what lets the forward pass index
 * weights without bounds checks of its own.
 */
#include "encoder/model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "encoder/safetensors.h"
#include "encoder/tokenizer.h"

#pragma weak hydb_encoder_release
#pragma weak hydb_bf16_check

#define MERGES_NAME "tokenizer.merges"

/* ---- config ------------------------------------------------------------ */

typedef struct cfg_reader {
	const char *text; /* the config JSON, for exact integers */
	const char *file;
} cfg_reader;

static int cfg_int(const cfg_reader *r, const hydb_json *obj, const char *sect,
		   const char *key, long long lo, long long hi, int *out)
{
	const hydb_json *v = hydb_json_get(obj, key);
	uint64_t x;
	RETURN_ERROR_IF(hydb_st_u64(r->text, v, &x) < 0 || (long long)x < lo || (long long)x > hi ||
			x > (uint64_t)hi, HYDB_EMODEL,
			"%s: config field '%s%s' missing or not an integer in [%lld, %lld]",
			r->file, sect, key, lo, hi);
	*out = (int)x;
	return 0;
}

static int cfg_num(const cfg_reader *r, const hydb_json *obj, const char *sect,
		   const char *key, int positive, double *out)
{
	const hydb_json *v = hydb_json_get(obj, key);
	RETURN_ERROR_IF(!v || v->type != HYDB_JSON_NUMBER || !isfinite(v->num) ||
			(positive && !(v->num > 0)), HYDB_EMODEL,
			"%s: config field '%s%s' missing or not a %snumber", r->file, sect,
			key, positive ? "positive " : "finite ");
	*out = v->num;
	return 0;
}

static int cfg_vec3(const cfg_reader *r, const hydb_json *obj, const char *key,
		    int positive, float out[3])
{
	const hydb_json *v = hydb_json_get(obj, key);
	RETURN_ERROR_IF(!v || v->type != HYDB_JSON_ARRAY || v->n != 3, HYDB_EMODEL,
			"%s: config field '%s' must be an array of 3 numbers", r->file, key);
	for (int i = 0; i < 3; i++) {
		const hydb_json *e = &v->items[i];
		RETURN_ERROR_IF(e->type != HYDB_JSON_NUMBER || !isfinite(e->num) ||
				(positive && !(e->num > 0)), HYDB_EMODEL,
				"%s: config field '%s' entry %d is not a %snumber", r->file,
				key, i, positive ? "positive " : "finite ");
		out[i] = (float)e->num;
	}
	return 0;
}

static int cfg_section(const cfg_reader *r, const hydb_json *root, const char *key,
		       const hydb_json **out)
{
	*out = hydb_json_get(root, key);
	RETURN_ERROR_IF(!*out || (*out)->type != HYDB_JSON_OBJECT, HYDB_EMODEL,
			"%s: config field '%s' missing or not an object", r->file, key);
	return 0;
}

static int cfg_tower_common(const cfg_reader *r, const hydb_json *t, const char *sect,
			    int *width, int *layers, int *heads, int *mlp)
{
	FORWARD_IF_ERROR(cfg_int(r, t, sect, "width", 1, 65536, width));
	FORWARD_IF_ERROR(cfg_int(r, t, sect, "layers", 1, 1024, layers));
	FORWARD_IF_ERROR(cfg_int(r, t, sect, "heads", 1, 65536, heads));
	FORWARD_IF_ERROR(cfg_int(r, t, sect, "mlp", 1, 1 << 20, mlp));
	RETURN_ERROR_IF(*width % *heads != 0, HYDB_EMODEL,
			"%s: config field '%sheads' (%d) does not divide width %d",
			r->file, sect, *heads, *width);
	return 0;
}

static int cfg_vision(const cfg_reader *r, const hydb_json *root, hydb_model_config *c)
{
	const hydb_json *v;
	FORWARD_IF_ERROR(cfg_section(r, root, "vision", &v));
	FORWARD_IF_ERROR(cfg_tower_common(r, v, "vision.", &c->vision_width,
					  &c->vision_layers, &c->vision_heads, &c->vision_mlp));
	FORWARD_IF_ERROR(cfg_int(r, v, "vision.", "image_size", 1, 4096, &c->image_size));
	FORWARD_IF_ERROR(cfg_int(r, v, "vision.", "patch_size", 1, 4096, &c->patch_size));
	RETURN_ERROR_IF(c->image_size % c->patch_size != 0, HYDB_EMODEL,
			"%s: config field 'vision.patch_size' (%d) does not divide "
			"image_size %d", r->file, c->patch_size, c->image_size);
	return 0;
}

static int cfg_text(const cfg_reader *r, const hydb_json *root, hydb_model_config *c)
{
	const hydb_json *t;
	FORWARD_IF_ERROR(cfg_section(r, root, "text", &t));
	FORWARD_IF_ERROR(cfg_tower_common(r, t, "text.", &c->text_width,
					  &c->text_layers, &c->text_heads, &c->text_mlp));
	FORWARD_IF_ERROR(cfg_int(r, t, "text.", "vocab_size", 1, 1 << 24, &c->vocab_size));
	FORWARD_IF_ERROR(cfg_int(r, t, "text.", "context_length", 2, 4096,
				 &c->context_length));
	FORWARD_IF_ERROR(cfg_int(r, t, "text.", "bos_id", 0, c->vocab_size - 1, &c->bos_id));
	FORWARD_IF_ERROR(cfg_int(r, t, "text.", "eos_id", 0, c->vocab_size - 1, &c->eos_id));
	return 0;
}

/* Bounds are optional: a plain CLIP conversion has none, and NaN makes every
 * comparison against them false, so classification must refuse instead. */
static int cfg_bound(const cfg_reader *r, const hydb_json *bounds, const char *key,
		     hydb_model_bounds *out)
{
	const hydb_json *b = hydb_json_get(bounds, key);
	char sect[16];
	out->avg = out->low_05 = out->up_95 = NAN;
	if (!b || b->type == HYDB_JSON_NULL)
		return 0;
	snprintf(sect, sizeof sect, "bounds.%s.", key);
	RETURN_ERROR_IF(b->type != HYDB_JSON_OBJECT, HYDB_EMODEL,
			"%s: config field 'bounds.%s' is not an object", r->file, key);
	FORWARD_IF_ERROR(cfg_num(r, b, sect, "avg", 0, &out->avg));
	FORWARD_IF_ERROR(cfg_num(r, b, sect, "low_05", 0, &out->low_05));
	FORWARD_IF_ERROR(cfg_num(r, b, sect, "up_95", 0, &out->up_95));
	return 0;
}

static int cfg_scalars(const cfg_reader *r, const hydb_json *root, hydb_model_config *c)
{
	const hydb_json *bounds = hydb_json_get(root, "bounds");
	FORWARD_IF_ERROR(cfg_int(r, root, "", "embed_dim", 1, HYDB_MAX_DIM, &c->embed_dim));
	FORWARD_IF_ERROR(cfg_num(r, root, "", "ln_eps", 1, &c->ln_eps));
	FORWARD_IF_ERROR(cfg_num(r, root, "", "curvature", 1, &c->curvature));
	FORWARD_IF_ERROR(cfg_num(r, root, "", "visual_alpha", 1, &c->visual_alpha));
	FORWARD_IF_ERROR(cfg_num(r, root, "", "textual_alpha", 1, &c->textual_alpha));
	FORWARD_IF_ERROR(cfg_vec3(r, root, "image_mean", 0, c->image_mean));
	FORWARD_IF_ERROR(cfg_vec3(r, root, "image_std", 1, c->image_std));
	RETURN_ERROR_IF(bounds && bounds->type != HYDB_JSON_OBJECT &&
			bounds->type != HYDB_JSON_NULL, HYDB_EMODEL,
			"%s: config field 'bounds' is not an object", r->file);
	FORWARD_IF_ERROR(cfg_bound(r, bounds, "V", &c->bound_image));
	return cfg_bound(r, bounds, "S", &c->bound_text);
}

static int cfg_version(const cfg_reader *r, const hydb_json *root, hydb_model_config *c)
{
	FORWARD_IF_ERROR(cfg_int(r, root, "", "format_version", 1, 1 << 30,
				 &c->format_version));
	RETURN_ERROR_IF(c->format_version > HYDB_MODEL_FORMAT_VERSION, HYDB_EVERSION,
			"%s: model format version %d is newer than the supported %d",
			r->file, c->format_version, HYDB_MODEL_FORMAT_VERSION);
	return 0;
}

static int cfg_parse_doc(const cfg_reader *r, const hydb_json *root,
			 hydb_model_config *c)
{
	const hydb_json *name;
	RETURN_ERROR_IF(root->type != HYDB_JSON_OBJECT, HYDB_EMODEL,
			"%s: metadata 'hydb' is not a JSON object", r->file);
	/* The version decides how the rest reads, so it is checked first. */
	FORWARD_IF_ERROR(cfg_version(r, root, c));
	FORWARD_IF_ERROR(cfg_vision(r, root, c));
	FORWARD_IF_ERROR(cfg_text(r, root, c));
	FORWARD_IF_ERROR(cfg_scalars(r, root, c));
	name = hydb_json_get(root, "name");
	if (name && name->type == HYDB_JSON_STRING)
		snprintf(c->name, sizeof c->name, "%s", name->str);
	return 0;
}

static int read_config(hydb_model *m, const hydb_st_file *st)
{
	const hydb_json *fmt = hydb_st_meta(st, "format"), *text = hydb_st_meta(st, "hydb");
	hydb_json *root;
	cfg_reader r = {NULL, m->path};
	int rc;
	RETURN_ERROR_IF(!fmt || strcmp(fmt->str, "hydb-model") != 0, HYDB_EMODEL,
			"%s: metadata 'format' is not \"hydb-model\" (not a hydb model "
			"file; convert it with hydb-convert)", m->path);
	RETURN_ERROR_IF(!text, HYDB_EMODEL, "%s: metadata 'hydb' (the config) is missing",
			m->path);
	if (hydb_json_parse(&root, text->str, text->str_len) < 0)
		return hydb_error_prefix(HYDB_EMODEL, "%s: metadata 'hydb': invalid JSON",
					 m->path);
	r.text = text->str;
	rc = cfg_parse_doc(&r, root, &m->cfg);
	hydb_json_free(root);
	return rc;
}

/* ---- tensors ----------------------------------------------------------- */

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1F, f = h & 0x3FF;
	uint32_t bits;
	float out;
	if (e == 0x1F) {
		bits = sign | 0x7F800000u | (f << 13);
	} else if (e == 0) {
		/* Subnormal or zero: value is f * 2^-24 exactly. */
		out = ldexpf((float)f, -24);
		return sign ? -out : out;
	} else {
		bits = sign | ((e + 112) << 23) | (f << 13);
	}
	memcpy(&out, &bits, sizeof out);
	return out;
}

static void convert_to_f32(float *dst, const unsigned char *src, size_t n,
			   hydb_st_dtype dt)
{
	for (size_t i = 0; i < n; i++) {
		uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
		if (dt == HYDB_ST_F16) {
			dst[i] = half_to_float(h);
		} else {
			uint32_t bits = (uint32_t)h << 16;
			memcpy(&dst[i], &bits, sizeof bits);
		}
	}
}

/* f32 data in the map is used in place when aligned; anything else gets an
 * owned float buffer. */
static int tensor_data(hydb_model *m, const hydb_st_file *st, const hydb_st_entry *e,
		       const float **out)
{
	const unsigned char *src = st->data + e->begin;
	float *buf;
	if (e->dtype == HYDB_ST_F32 && ((uintptr_t)src % sizeof(float)) == 0) {
		*out = (const float *)(const void *)src;
		return 0;
	}
	buf = hydb_alloc_array(e->count, sizeof(float), e->name);
	if (!buf)
		return HYDB_ENOMEM;
	if (e->dtype == HYDB_ST_F32)
		memcpy(buf, src, e->count * sizeof(float));
	else
		convert_to_f32(buf, src, e->count, e->dtype);
	m->owned[m->n_owned++] = buf;
	*out = buf;
	return 0;
}

static int add_merges(hydb_model *m, const hydb_st_file *st, const hydb_st_entry *e)
{
	RETURN_ERROR_IF(e->dtype != HYDB_ST_U8 || e->ndim != 1, HYDB_EMODEL,
			"%s: tensor '%s' must be a 1-D U8 tensor", m->path, e->name);
	RETURN_ERROR_IF(hydb_utf8_valid((const char *)st->data + e->begin, e->count) < 0,
			HYDB_EMODEL, "%s: tensor '%s' is not valid UTF-8 text", m->path,
			e->name);
	m->merges = (const char *)st->data + e->begin;
	m->merges_len = e->count;
	return 0;
}

static int add_tensor(hydb_model *m, const hydb_st_file *st, const hydb_st_entry *e)
{
	hydb_tensor *t = &m->tensors[m->n_tensors];
	RETURN_ERROR_IF(e->dtype != HYDB_ST_F32 && e->dtype != HYDB_ST_F16 &&
			e->dtype != HYDB_ST_BF16, HYDB_EMODEL,
			"%s: tensor '%s': dtype %s not supported for weights (F32, F16 "
			"or BF16)", m->path, e->name, hydb_st_dtype_name(e->dtype));
	RETURN_ERROR_IF(e->ndim > 4, HYDB_EMODEL,
			"%s: tensor '%s': %d dimensions, weights have at most 4",
			m->path, e->name, e->ndim);
	t->name = e->name;
	t->ndim = e->ndim;
	for (int i = 0; i < 4; i++)
		t->shape[i] = i < e->ndim ? (int64_t)e->shape[i] : 1;
	FORWARD_IF_ERROR(tensor_data(m, st, e, &t->data));
	m->n_tensors++;
	return 0;
}

static int cmp_tensor(const void *a, const void *b)
{
	return strcmp(((const hydb_tensor *)a)->name, ((const hydb_tensor *)b)->name);
}

/* Names are copied into the tail of the tensor table's allocation so that
 * the parsed header can be freed. */
static int alloc_tables(hydb_model *m, const hydb_st_file *st, char **names)
{
	size_t name_bytes = 0, bytes;
	for (size_t i = 0; i < st->n_entries; i++)
		if (hydb_add_size(&name_bytes, name_bytes, strlen(st->entries[i].name) + 1) < 0)
			return hydb_error_set(HYDB_ENOMEM, "%s: names overflow", m->path);
	if (hydb_mul_size(&bytes, st->n_entries, sizeof *m->tensors) < 0 ||
	    hydb_add_size(&bytes, bytes, name_bytes) < 0)
		return hydb_error_set(HYDB_ENOMEM, "%s: tensor table overflows", m->path);
	m->tensors = hydb_alloc_array(bytes, 1, m->path);
	m->owned = hydb_alloc_array(st->n_entries + 1, sizeof *m->owned, m->path);
	if (!m->tensors || !m->owned)
		return HYDB_ENOMEM;
	*names = (char *)(m->tensors + st->n_entries);
	return 0;
}

static int load_tensors(hydb_model *m, const hydb_st_file *st)
{
	char *names = NULL;
	FORWARD_IF_ERROR(alloc_tables(m, st, &names));
	for (size_t i = 0; i < st->n_entries; i++) {
		hydb_st_entry e = st->entries[i];
		size_t l = strlen(e.name) + 1;
		memcpy(names, e.name, l);
		e.name = names;
		names += l;
		if (strcmp(e.name, MERGES_NAME) == 0)
			FORWARD_IF_ERROR(add_merges(m, st, &e));
		else
			FORWARD_IF_ERROR(add_tensor(m, st, &e));
	}
	qsort(m->tensors, m->n_tensors, sizeof *m->tensors, cmp_tensor);
	for (size_t i = 1; i < m->n_tensors; i++)
		RETURN_ERROR_IF(strcmp(m->tensors[i - 1].name, m->tensors[i].name) == 0,
				HYDB_EMODEL, "%s: tensor '%s' appears twice", m->path,
				m->tensors[i].name);
	RETURN_ERROR_IF(!m->merges, HYDB_EMODEL, "%s: tensor '%s' (tokenizer) is missing",
			m->path, MERGES_NAME);
	return 0;
}

static const hydb_tensor *find_tensor(const hydb_model *m, const char *name)
{
	hydb_tensor key = {.name = name};
	return bsearch(&key, m->tensors, m->n_tensors, sizeof key, cmp_tensor);
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
	size_t at = 0;
	at += (size_t)snprintf(buf, cap, "[");
	for (int i = 0; i < ndim && at < cap; i++)
		at += (size_t)snprintf(buf + at, cap - at, "%s%lld", i ? "," : "",
				       (long long)shape[i]);
	if (at < cap)
		snprintf(buf + at, cap - at, "]");
}

static int shape_matches(const hydb_tensor *t, int ndim, const int64_t *shape)
{
	if (t->ndim != ndim)
		return 0;
	for (int i = 0; i < ndim; i++)
		if (shape[i] >= 0 && shape[i] != t->shape[i])
			return 0;
	return 1;
}

static const float *lookup(const hydb_model *m, const char *name, int ndim,
			   const int64_t *shape, int required)
{
	const hydb_tensor *t = find_tensor(m, name);
	char have[96], want[96];
	if (!t) {
		if (required)
			hydb_error_set(HYDB_EMODEL, "%s: tensor '%s' is missing", m->path, name);
		return NULL;
	}
	if (shape_matches(t, ndim, shape))
		return t->data;
	format_shape(have, sizeof have, t->ndim, t->shape);
	format_shape(want, sizeof want, ndim, shape);
	hydb_error_set(HYDB_EMODEL, "%s: tensor '%s' has shape %s, the config needs %s",
		       m->path, name, have, want);
	return NULL;
}

const float *hydb_model_tensor(const hydb_model *m, const char *name, int ndim,
			       const int64_t *shape)
{
	return lookup(m, name, ndim, shape, 1);
}

const float *hydb_model_tensor_opt(const hydb_model *m, const char *name, int ndim,
				   const int64_t *shape)
{
	return lookup(m, name, ndim, shape, 0);
}

/* ---- required tensors -------------------------------------------------- */

static int need(const hydb_model *m, const char *name, int ndim, int64_t a,
		int64_t b, int64_t c, int64_t d)
{
	const int64_t shape[4] = {a, b, c, d};
	return hydb_model_tensor(m, name, ndim, shape) ? 0 : HYDB_EMODEL;
}

static int need_fmt(const hydb_model *m, const char *prefix, const char *suffix,
		    int ndim, int64_t a, int64_t b)
{
	char name[256];
	snprintf(name, sizeof name, "%s%s", prefix, suffix);
	return need(m, name, ndim, a, b, -1, -1);
}

static int need_norm(const hydb_model *m, const char *prefix, const char *norm,
		     int64_t width)
{
	char name[256];
	snprintf(name, sizeof name, "%s%s.weight", prefix, norm);
	FORWARD_IF_ERROR(need(m, name, 1, width, -1, -1, -1));
	snprintf(name, sizeof name, "%s%s.bias", prefix, norm);
	return need(m, name, 1, width, -1, -1, -1);
}

static int need_layer(const hydb_model *m, const char *tower, int layer,
		      int64_t w, int64_t mlp)
{
	static const char *const proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
	char p[128], name[64];
	snprintf(p, sizeof p, "%s.encoder.layers.%d.", tower, layer);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "self_attn.%s.weight", proj[i]);
		FORWARD_IF_ERROR(need_fmt(m, p, name, 2, w, w));
		snprintf(name, sizeof name, "self_attn.%s.bias", proj[i]);
		FORWARD_IF_ERROR(need_fmt(m, p, name, 1, w, -1));
	}
	FORWARD_IF_ERROR(need_norm(m, p, "layer_norm1", w));
	FORWARD_IF_ERROR(need_norm(m, p, "layer_norm2", w));
	FORWARD_IF_ERROR(need_fmt(m, p, "mlp.fc1.weight", 2, mlp, w));
	FORWARD_IF_ERROR(need_fmt(m, p, "mlp.fc1.bias", 1, mlp, -1));
	FORWARD_IF_ERROR(need_fmt(m, p, "mlp.fc2.weight", 2, w, mlp));
	return need_fmt(m, p, "mlp.fc2.bias", 1, w, -1);
}

static int need_vision(hydb_model *m)
{
	const hydb_model_config *c = &m->cfg;
	int64_t w = c->vision_width, p = c->patch_size, g = c->image_size / c->patch_size;
	const int64_t bias_shape[1] = {w};
	FORWARD_IF_ERROR(need(m, "vision_model.embeddings.class_embedding", 1, w, -1, -1, -1));
	FORWARD_IF_ERROR(need(m, "vision_model.embeddings.patch_embedding.weight", 4,
			      w, 3, p, p));
	FORWARD_IF_ERROR(need(m, "vision_model.embeddings.position_embedding.weight", 2,
			      g * g + 1, w, -1, -1));
	FORWARD_IF_ERROR(need_norm(m, "vision_model.", "pre_layrnorm", w));
	for (int l = 0; l < c->vision_layers; l++)
		FORWARD_IF_ERROR(need_layer(m, "vision_model", l, w, c->vision_mlp));
	FORWARD_IF_ERROR(need_norm(m, "vision_model.", "post_layernorm", w));
	FORWARD_IF_ERROR(need(m, "visual_projection.weight", 2, c->embed_dim, w, -1, -1));
	m->cfg.has_patch_bias = hydb_model_tensor_opt(
		m, "vision_model.embeddings.patch_embedding.bias", 1, bias_shape) != NULL;
	/* Present but misshapen is an error, not an absent bias. */
	if (!m->cfg.has_patch_bias &&
	    find_tensor(m, "vision_model.embeddings.patch_embedding.bias"))
		return HYDB_EMODEL;
	return 0;
}

static int need_text(const hydb_model *m)
{
	const hydb_model_config *c = &m->cfg;
	int64_t w = c->text_width;
	FORWARD_IF_ERROR(need(m, "text_model.embeddings.token_embedding.weight", 2,
			      c->vocab_size, w, -1, -1));
	FORWARD_IF_ERROR(need(m, "text_model.embeddings.position_embedding.weight", 2,
			      c->context_length, w, -1, -1));
	for (int l = 0; l < c->text_layers; l++)
		FORWARD_IF_ERROR(need_layer(m, "text_model", l, w, c->text_mlp));
	FORWARD_IF_ERROR(need_norm(m, "text_model.", "final_layer_norm", w));
	return need(m, "text_projection.weight", 2, c->embed_dim, w, -1, -1);
}

/* ---- tokenizer --------------------------------------------------------- */

/* The vocabulary is rebuilt from the merges (512 byte symbols, one token a
 * merge, two specials), so the config's vocab_size fixes how many merges
 * count and the special ids must be the last two. */
static int load_tokenizer(hydb_model *m)
{
	const hydb_model_config *c = &m->cfg;
	int rc;
	RETURN_ERROR_IF(c->vocab_size <= HYDB_TOKENIZER_FIXED_IDS, HYDB_EMODEL,
			"%s: config field 'text.vocab_size' (%d) leaves no BPE merges",
			m->path, c->vocab_size);
	RETURN_ERROR_IF(c->bos_id != c->vocab_size - 2 || c->eos_id != c->vocab_size - 1,
			HYDB_EMODEL, "%s: config fields 'text.bos_id'/'text.eos_id' (%d, %d) "
			"must be the last two ids of the vocabulary", m->path, c->bos_id,
			c->eos_id);
	rc = hydb_tokenizer_new(&m->tok, m->merges, m->merges_len,
				(size_t)c->vocab_size - HYDB_TOKENIZER_FIXED_IDS);
	if (rc < 0)
		return hydb_error_prefix(HYDB_EMODEL, "%s: tensor '%s'", m->path, MERGES_NAME);
	RETURN_ERROR_IF(hydb_tokenizer_vocab_size(m->tok) != (size_t)c->vocab_size,
			HYDB_EMODEL, "%s: tensor '%s' holds %zu merges, the vocabulary of "
			"%d needs %d", m->path, MERGES_NAME,
			hydb_tokenizer_vocab_size(m->tok) - HYDB_TOKENIZER_FIXED_IDS, c->vocab_size,
			c->vocab_size - HYDB_TOKENIZER_FIXED_IDS);
	return 0;
}

/* ---- open / close ------------------------------------------------------ */

static int map_file(hydb_model *m, const char *path)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	RETURN_ERROR_IF(fd < 0, errno == ENOENT ? HYDB_ENOTFOUND : HYDB_EIO,
			"%s: cannot open model file: %s", path, strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		int e = errno;
		close(fd);
		return hydb_error_set(HYDB_EIO, "%s: not a regular file%s%s", path,
				      e ? ": " : "", e ? strerror(e) : "");
	}
	m->map_size = (size_t)sb.st_size;
	if (m->map_size > 0)
		m->map = mmap(NULL, m->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m->map == MAP_FAILED) {
		m->map = NULL;
		return hydb_error_set(HYDB_EIO, "%s: cannot map: %s", path, strerror(errno));
	}
	return 0;
}

static int load(hydb_model *m, const char *path)
{
	hydb_st_file st;
	int rc;
	RETURN_ERROR_IF(strlen(path) >= sizeof m->path, HYDB_EINVAL,
			"model path too long (%zu bytes)", strlen(path));
	strcpy(m->path, path);
	FORWARD_IF_ERROR(map_file(m, path));
	FORWARD_IF_ERROR(hydb_st_open(&st, m->map, m->map_size, m->path));
	rc = read_config(m, &st);
	if (rc == 0)
		rc = load_tensors(m, &st);
	hydb_st_close(&st);
	FORWARD_IF_ERROR(rc);
	FORWARD_IF_ERROR(need_vision(m));
	FORWARD_IF_ERROR(need_text(m));
	FORWARD_IF_ERROR(load_tokenizer(m));
	snprintf(m->hash, sizeof m->hash, "%016llx",
		 (unsigned long long)XXH64(m->map, m->map_size, 0));
	return 0;
}

void hydb_model_options_init(hydb_model_options *opts)
{
	if (!opts)
		return;
	memset(opts, 0, sizeof *opts);
	opts->version = HYDB_MODEL_OPTIONS_VERSION;
	opts->precision = HYDB_PRECISION_F32;
}

const char *hydb_precision_name(hydb_precision p)
{
	return p == HYDB_PRECISION_F32 ? "f32" :
	       p == HYDB_PRECISION_BF16 ? "bf16" : NULL;
}

int hydb_precision_parse(const char *text, hydb_precision *out)
{
	RETURN_ERROR_IF(!text || !out, HYDB_EINVAL,
			"hydb_precision_parse: NULL argument");
	if (!strcmp(text, "f32"))
		*out = HYDB_PRECISION_F32;
	else if (!strcmp(text, "bf16"))
		*out = HYDB_PRECISION_BF16;
	else
		return hydb_error_set(HYDB_EINVAL, "precision '%s': use f32 "
				      "or bf16", text);
	return HYDB_OK;
}

hydb_precision hydb_model_precision(const hydb_model *m)
{
	return m ? (hydb_precision)m->precision : HYDB_PRECISION_F32;
}

/* The precision opts ask for, refused before the file is read when this
 * build or CPU cannot run it. */
static int wanted_precision(int *out, const hydb_model_options *opts)
{
	*out = HYDB_PRECISION_F32;
	if (!opts)
		return HYDB_OK;
	RETURN_ERROR_IF(opts->version != HYDB_MODEL_OPTIONS_VERSION, HYDB_EINVAL,
			"hydb_model_open_ex: options version %u, this library "
			"has %u", opts->version, HYDB_MODEL_OPTIONS_VERSION);
	RETURN_ERROR_IF(!hydb_precision_name(opts->precision), HYDB_EINVAL,
			"hydb_model_open_ex: unknown precision %d",
			(int)opts->precision);
	if (opts->precision == HYDB_PRECISION_BF16) {
		RETURN_ERROR_IF(!hydb_bf16_check, HYDB_EINVAL, "precision bf16: "
				"this program has no encoder");
		FORWARD_IF_ERROR(hydb_bf16_check());
	}
	*out = opts->precision;
	return HYDB_OK;
}

int hydb_model_open(hydb_model **out, const char *path)
{
	return hydb_model_open_ex(out, path, NULL);
}

int hydb_model_open_ex(hydb_model **out, const char *path,
		       const hydb_model_options *opts)
{
	hydb_model *m;
	int rc, precision;
	RETURN_ERROR_IF(!out || !path, HYDB_EINVAL, "hydb_model_open: NULL argument");
	*out = NULL;
	FORWARD_IF_ERROR(wanted_precision(&precision, opts));
	m = calloc(1, sizeof *m);
	RETURN_ERROR_IF(!m, HYDB_ENOMEM, "%s: cannot allocate the model handle", path);
	m->precision = precision;
	rc = load(m, path);
	if (rc < 0) {
		hydb_model_close(m);
		return rc;
	}
	*out = m;
	return 0;
}

void hydb_model_close(hydb_model *m)
{
	if (!m)
		return;
	if (m->enc && hydb_encoder_release)
		hydb_encoder_release(m->enc);
	hydb_tokenizer_free(m->tok);
	for (size_t i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	free(m->owned);
	free(m->tensors);
	if (m->map)
		munmap(m->map, m->map_size);
	free(m);
}

size_t hydb_model_dim(const hydb_model *m)
{
	return m ? (size_t)m->cfg.embed_dim : 0;
}

double hydb_model_curvature(const hydb_model *m)
{
	return m ? m->cfg.curvature : NAN;
}

double hydb_model_bound(const hydb_model *m, hydb_modality mod)
{
	if (!m)
		return NAN;
	if (mod == HYDB_MOD_IMAGE)
		return m->cfg.bound_image.up_95;
	if (mod == HYDB_MOD_TEXT)
		return m->cfg.bound_text.up_95;
	return NAN;
}
