/*
 * check_model.c - the model file loader on files built byte by byte here:
 * one valid tiny model, then one defect at a time. Every defect must give
 * a specific error code and a message naming the file and the culprit.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "encoder/model.h"
#include "hydb.h"

#define MAX_ENT 80

typedef struct ent {
	char name[96];
	char dtype[12];
	int ndim;
	long long shape[4];
	unsigned long long begin, end;
} ent;

typedef struct builder {
	ent e[MAX_ENT];
	int n;
	int version;
	const char *format;
	const char *bounds;   /* JSON text of the "bounds" field */
	const char *extra_cfg; /* appended to the config object */
	const char *drop_cfg;  /* config key to leave out */
	int bos;
} builder;

static char path[64];

/* Exactly representable in f16 and bf16, so conversions compare with ==. */
static float val(size_t i)
{
	return (float)((int)(i % 13) - 6) * 0.125f;
}

static void add(builder *b, const char *name, const char *dtype, int ndim,
		long long d0, long long d1, long long d2, long long d3)
{
	ent *e = &b->e[b->n++];
	ck_assert_int_le(b->n, MAX_ENT);
	snprintf(e->name, sizeof e->name, "%s", name);
	snprintf(e->dtype, sizeof e->dtype, "%s", dtype);
	e->ndim = ndim;
	e->shape[0] = d0, e->shape[1] = d1, e->shape[2] = d2, e->shape[3] = d3;
}

static void add_norm(builder *b, const char *p, const char *norm, long long w)
{
	char n[128];
	snprintf(n, sizeof n, "%s%s.weight", p, norm);
	add(b, n, "F32", 1, w, 0, 0, 0);
	snprintf(n, sizeof n, "%s%s.bias", p, norm);
	add(b, n, "F32", 1, w, 0, 0, 0);
}

static void add_layer(builder *b, const char *tower, long long w, long long mlp)
{
	static const char *const proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
	char p[64], n[128];
	snprintf(p, sizeof p, "%s.encoder.layers.0.", tower);
	for (int i = 0; i < 4; i++) {
		snprintf(n, sizeof n, "%sself_attn.%s.weight", p, proj[i]);
		add(b, n, "F32", 2, w, w, 0, 0);
		snprintf(n, sizeof n, "%sself_attn.%s.bias", p, proj[i]);
		add(b, n, "F32", 1, w, 0, 0, 0);
	}
	add_norm(b, p, "layer_norm1", w);
	add_norm(b, p, "layer_norm2", w);
	snprintf(n, sizeof n, "%smlp.fc1.weight", p);
	add(b, n, "F32", 2, mlp, w, 0, 0);
	snprintf(n, sizeof n, "%smlp.fc1.bias", p);
	add(b, n, "F32", 1, mlp, 0, 0, 0);
	snprintf(n, sizeof n, "%smlp.fc2.weight", p);
	add(b, n, "F32", 2, w, mlp, 0, 0);
	snprintf(n, sizeof n, "%smlp.fc2.bias", p);
	add(b, n, "F32", 1, w, 0, 0, 0);
}

static size_t dtype_size(const char *d)
{
	if (!strcmp(d, "F32") || !strcmp(d, "I32"))
		return 4;
	if (!strcmp(d, "F16") || !strcmp(d, "BF16"))
		return 2;
	if (!strcmp(d, "I64"))
		return 8;
	return 1;
}

static void layout(builder *b)
{
	unsigned long long at = 0;
	for (int i = 0; i < b->n; i++) {
		unsigned long long count = 1;
		for (int d = 0; d < b->e[i].ndim; d++)
			count *= (unsigned long long)b->e[i].shape[d];
		b->e[i].begin = at;
		at += count * dtype_size(b->e[i].dtype);
		b->e[i].end = at;
	}
}

/* vision: width 8, 1 layer, 2 heads, mlp 16, image 28, patch 14 (2x2 grid);
 * text: width 8, 1 layer, vocab 516 (the two merges of fill()), context 7;
 * embed 4. */
static void builder_init(builder *b)
{
	memset(b, 0, sizeof *b);
	b->version = 1;
	b->bos = 514;
	b->format = "hydb-model";
	b->bounds = "{\\\"V\\\":{\\\"avg\\\":1.5,\\\"low_05\\\":1.0,\\\"up_95\\\":2.25},"
		    "\\\"S\\\":{\\\"avg\\\":1.25,\\\"low_05\\\":0.75,\\\"up_95\\\":1.75}}";
	add(b, "vision_model.embeddings.class_embedding", "F32", 1, 8, 0, 0, 0);
	add(b, "vision_model.embeddings.patch_embedding.weight", "F32", 4, 8, 3, 14, 14);
	add(b, "vision_model.embeddings.position_embedding.weight", "F32", 2, 5, 8, 0, 0);
	add_norm(b, "vision_model.", "pre_layrnorm", 8);
	add_layer(b, "vision_model", 8, 16);
	add_norm(b, "vision_model.", "post_layernorm", 8);
	add(b, "visual_projection.weight", "F32", 2, 4, 8, 0, 0);
	add(b, "text_model.embeddings.token_embedding.weight", "F32", 2, 516, 8, 0, 0);
	add(b, "text_model.embeddings.position_embedding.weight", "F32", 2, 7, 8, 0, 0);
	add_layer(b, "text_model", 8, 16);
	add_norm(b, "text_model.", "final_layer_norm", 8);
	add(b, "text_projection.weight", "F32", 2, 4, 8, 0, 0);
	add(b, "tokenizer.merges", "U8", 1, 7, 0, 0, 0);
	layout(b);
}

static int find(const builder *b, const char *name)
{
	for (int i = 0; i < b->n; i++)
		if (!strcmp(b->e[i].name, name))
			return i;
	ck_abort_msg("no tensor %s in the builder", name);
	return -1;
}

static void cfg_field(char *o, size_t cap, const builder *b, const char *key,
		      const char *value)
{
	size_t l = strlen(o);
	if (b->drop_cfg && !strcmp(b->drop_cfg, key))
		return;
	snprintf(o + l, cap - l, "%s\\\"%s\\\":%s", o[l - 1] == '{' ? "" : ",", key, value);
}

/* The config is JSON inside a JSON string, hence the escaped quotes. */
static void config_text(char *o, size_t cap, const builder *b)
{
	char v[32], text[256];
	snprintf(o, cap, "{");
	snprintf(v, sizeof v, "%d", b->version);
	cfg_field(o, cap, b, "format_version", v);
	cfg_field(o, cap, b, "name", "\\\"unit\\\"");
	cfg_field(o, cap, b, "vision", "{\\\"width\\\":8,\\\"layers\\\":1,\\\"heads\\\":2,"
		  "\\\"mlp\\\":16,\\\"image_size\\\":28,\\\"patch_size\\\":14}");
	snprintf(text, sizeof text, "{\\\"width\\\":8,\\\"layers\\\":1,\\\"heads\\\":2,"
		 "\\\"mlp\\\":16,\\\"vocab_size\\\":516,\\\"context_length\\\":7,"
		 "\\\"bos_id\\\":%d,\\\"eos_id\\\":515}", b->bos);
	cfg_field(o, cap, b, "text", text);
	cfg_field(o, cap, b, "embed_dim", "4");
	cfg_field(o, cap, b, "ln_eps", "1e-5");
	cfg_field(o, cap, b, "curvature", "0.5");
	cfg_field(o, cap, b, "visual_alpha", "0.25");
	cfg_field(o, cap, b, "textual_alpha", "0.125");
	cfg_field(o, cap, b, "image_mean", "[0.5,0.25,0.125]");
	cfg_field(o, cap, b, "image_std", "[0.5,0.5,0.5]");
	if (b->bounds)
		cfg_field(o, cap, b, "bounds", b->bounds);
	if (b->extra_cfg)
		snprintf(o + strlen(o), cap - strlen(o), ",%s", b->extra_cfg);
	snprintf(o + strlen(o), cap - strlen(o), "}");
}

static size_t header_text(char *h, size_t cap, const builder *b)
{
	char cfg[2048];
	size_t l;
	config_text(cfg, sizeof cfg, b);
	l = (size_t)snprintf(h, cap, "{\"__metadata__\":{\"format\":\"%s\",\"hydb\":\"%s\"}",
			     b->format, cfg);
	for (int i = 0; i < b->n; i++) {
		const ent *e = &b->e[i];
		l += (size_t)snprintf(h + l, cap - l, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
				      e->name, e->dtype);
		for (int d = 0; d < e->ndim; d++)
			l += (size_t)snprintf(h + l, cap - l, "%s%lld", d ? "," : "", e->shape[d]);
		l += (size_t)snprintf(h + l, cap - l, "],\"data_offsets\":[%llu,%llu]}",
				      e->begin, e->end);
	}
	l += (size_t)snprintf(h + l, cap - l, "}");
	while (l % 8)
		h[l++] = ' ';
	return l;
}

static void fill(unsigned char *data, const ent *e)
{
	size_t n = (size_t)(e->end - e->begin), sz = dtype_size(e->dtype);
	for (size_t i = 0; i < n / sz; i++) {
		float f = val(i);
		uint32_t bits;
		memcpy(&bits, &f, 4);
		if (!strcmp(e->dtype, "F32"))
			memcpy(data + e->begin + 4 * i, &f, 4);
		else if (!strcmp(e->dtype, "BF16"))
			bits >>= 16, memcpy(data + e->begin + 2 * i, &bits, 2);
		else if (!strcmp(e->dtype, "F16")) {
			/* val(i) = k/8 with |k| <= 6: normal halves, exact. */
			uint16_t s = (uint16_t)((bits >> 16) & 0x8000);
			int ex = (int)((bits >> 23) & 0xFF) - 127 + 15;
			uint16_t h = f == 0 ? 0 : (uint16_t)(s | (ex << 10) | ((bits >> 13) & 0x3FF));
			memcpy(data + e->begin + 2 * i, &h, 2);
		} else if (!strcmp(e->name, "tokenizer.merges"))
			memcpy(data + e->begin, "a b\nc d", n < 7 ? n : 7);
	}
}

/* Write the file; returns its size. */
static size_t write_model(const builder *b)
{
	static char h[65536];
	size_t hl = header_text(h, sizeof h, b);
	unsigned long long dsize = 0;
	unsigned char *data;
	uint64_t hl64 = hl;
	FILE *f;
	for (int i = 0; i < b->n; i++)
		if (b->e[i].end > dsize && b->e[i].end < (1ull << 32))
			dsize = b->e[i].end;
	data = calloc(dsize + 1, 1);
	for (int i = 0; i < b->n; i++)
		if (b->e[i].end <= dsize && b->e[i].begin <= b->e[i].end)
			fill(data, &b->e[i]);
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	fwrite(&hl64, 8, 1, f); /* little-endian host */
	fwrite(h, 1, hl, f);
	fwrite(data, 1, dsize, f);
	fclose(f);
	free(data);
	return 8 + hl + dsize;
}

static void setup(void)
{
	int fd;
	snprintf(path, sizeof path, "/tmp/check_model_XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

static void teardown(void)
{
	unlink(path);
}

/* Open must fail with code; the message must name the file and needle. */
static void expect_fail(int code, const char *needle)
{
	hydb_model *m = (hydb_model *)0x1;
	int rc = hydb_model_open(&m, path);
	ck_assert_msg(rc == code, "expected %d, got %d (%s)", code, rc, hydb_last_error());
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(hydb_last_error(), path) != NULL, "no file in '%s'",
		      hydb_last_error());
	ck_assert_msg(strstr(hydb_last_error(), needle) != NULL, "no '%s' in '%s'",
		      needle, hydb_last_error());
	ck_assert_ptr_null(strchr(hydb_last_error(), '\n'));
}

static hydb_model *open_ok(void)
{
	hydb_model *m = NULL;
	int rc = hydb_model_open(&m, path);
	ck_assert_msg(rc == 0, "open failed: %s", hydb_last_error());
	return m;
}

START_TEST(valid_model)
{
	builder b;
	hydb_model *m;
	const int64_t pshape[4] = {8, 3, 14, 14}, wrong[2] = {8, 9}, any[2] = {-1, 8};
	const float *w;
	builder_init(&b);
	write_model(&b);
	m = open_ok();
	ck_assert_uint_eq(hydb_model_dim(m), 4);
	ck_assert_double_eq(hydb_model_curvature(m), 0.5);
	ck_assert_double_eq(hydb_model_bound(m, HYDB_MOD_IMAGE), 2.25);
	ck_assert_double_eq(hydb_model_bound(m, HYDB_MOD_TEXT), 1.75);
	ck_assert_double_eq(m->cfg.bound_image.low_05, 1.0);
	ck_assert_double_eq(m->cfg.textual_alpha, 0.125);
	ck_assert_int_eq(m->cfg.vocab_size, 516);
	ck_assert_int_eq(m->cfg.eos_id, 515);
	ck_assert_ptr_nonnull(m->tok);
	ck_assert_float_eq(m->cfg.image_mean[1], 0.25f);
	ck_assert_int_eq(m->cfg.has_patch_bias, 0);
	ck_assert_str_eq(m->cfg.name, "unit");
	ck_assert_uint_eq(m->n_tensors, (size_t)b.n - 1);
	ck_assert_uint_eq(m->merges_len, 7);
	ck_assert_int_eq(memcmp(m->merges, "a b\nc d", 7), 0);
	w = hydb_model_tensor(m, "vision_model.embeddings.patch_embedding.weight", 4, pshape);
	ck_assert_ptr_nonnull(w);
	for (size_t i = 0; i < 8 * 3 * 14 * 14; i++)
		ck_assert_float_eq(w[i], val(i));
	ck_assert_ptr_nonnull(hydb_model_tensor(m, "text_projection.weight", 2, any));
	ck_assert_ptr_null(hydb_model_tensor(m, "text_projection.weight", 2, wrong));
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "text_projection.weight"));
	ck_assert_ptr_null(hydb_model_tensor_opt(m, "nope", 1, any));
	ck_assert_ptr_null(hydb_model_tensor(m, "nope", 1, any));
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), "'nope' is missing"));
	hydb_model_close(m);
}
END_TEST

START_TEST(hash_is_xxh64_of_file)
{
	builder b;
	hydb_model *m;
	char want[17];
	size_t size;
	unsigned char *buf;
	FILE *f;
	builder_init(&b);
	size = write_model(&b);
	buf = malloc(size);
	f = fopen(path, "rb");
	ck_assert_uint_eq(fread(buf, 1, size, f), size);
	fclose(f);
	snprintf(want, sizeof want, "%016llx", (unsigned long long)XXH64(buf, size, 0));
	free(buf);
	m = open_ok();
	ck_assert_str_eq(m->hash, want);
	hydb_model_close(m);
}
END_TEST

static void check_half(const char *dtype)
{
	builder b;
	hydb_model *m;
	const int64_t shape[2] = {516, 8};
	const float *w;
	builder_init(&b);
	strcpy(b.e[find(&b, "text_model.embeddings.token_embedding.weight")].dtype, dtype);
	layout(&b);
	write_model(&b);
	m = open_ok();
	w = hydb_model_tensor(m, "text_model.embeddings.token_embedding.weight", 2, shape);
	ck_assert_ptr_nonnull(w);
	for (size_t i = 0; i < 160; i++)
		ck_assert_float_eq(w[i], val(i));
	ck_assert_uint_eq(m->n_owned, 1);
	hydb_model_close(m);
}

START_TEST(f16_converted) { check_half("F16"); }
END_TEST

START_TEST(bf16_converted) { check_half("BF16"); }
END_TEST

START_TEST(patch_bias_optional)
{
	builder b;
	hydb_model *m;
	builder_init(&b);
	add(&b, "vision_model.embeddings.patch_embedding.bias", "F32", 1, 8, 0, 0, 0);
	layout(&b);
	write_model(&b);
	m = open_ok();
	ck_assert_int_eq(m->cfg.has_patch_bias, 1);
	hydb_model_close(m);
	b.e[b.n - 1].shape[0] = 7;
	layout(&b);
	write_model(&b);
	expect_fail(HYDB_EMODEL, "patch_embedding.bias' has shape [7]");
}
END_TEST

START_TEST(bounds_absent_are_nan)
{
	builder b;
	hydb_model *m;
	builder_init(&b);
	b.bounds = "null";
	write_model(&b);
	m = open_ok();
	ck_assert(isnan(hydb_model_bound(m, HYDB_MOD_IMAGE)));
	ck_assert(isnan(hydb_model_bound(m, HYDB_MOD_TEXT)));
	hydb_model_close(m);
}
END_TEST

START_TEST(truncated_everywhere)
{
	builder b;
	size_t size, cuts[] = {0, 3, 8, 9, 100, 0, 0, 0};
	char *buf;
	FILE *f;
	builder_init(&b);
	size = write_model(&b);
	cuts[5] = size / 2, cuts[6] = size - 4, cuts[7] = size - 1;
	buf = malloc(size);
	f = fopen(path, "rb");
	ck_assert_uint_eq(fread(buf, 1, size, f), size);
	fclose(f);
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		f = fopen(path, "wb");
		fwrite(buf, 1, cuts[i], f);
		fclose(f);
		expect_fail(HYDB_ECORRUPT, "truncated");
	}
	free(buf);
}
END_TEST

START_TEST(huge_header_length)
{
	uint64_t len = UINT64_MAX - 3;
	FILE *f = fopen(path, "wb");
	fwrite(&len, 8, 1, f);
	fputs("{}", f);
	fclose(f);
	expect_fail(HYDB_ECORRUPT, "header length");
}
END_TEST

static void write_raw_header(const char *h, size_t len)
{
	uint64_t l = len;
	FILE *f = fopen(path, "wb");
	fwrite(&l, 8, 1, f);
	fwrite(h, 1, len, f);
	fclose(f);
}

START_TEST(bad_header_text)
{
	write_raw_header("{\"a\xff\":1}", 8);
	expect_fail(HYDB_EMODEL, "UTF-8");
	write_raw_header("{\"a\":[1,}", 9);
	expect_fail(HYDB_EMODEL, "invalid JSON");
	write_raw_header("[1,2]", 5);
	expect_fail(HYDB_EMODEL, "not a JSON object");
	write_raw_header("{\"__metadata__\":{\"format\":1}}", 29);
	expect_fail(HYDB_EMODEL, "not a string");
}
END_TEST

START_TEST(deep_nesting)
{
	char h[2048];
	memset(h, '[', sizeof h);
	memcpy(h, "{\"a\":", 5);
	write_raw_header(h, sizeof h);
	expect_fail(HYDB_EMODEL, "nesting too deep");
}
END_TEST

START_TEST(unknown_dtype)
{
	builder b;
	builder_init(&b);
	strcpy(b.e[3].dtype, "F33");
	write_model(&b);
	expect_fail(HYDB_EMODEL, "unknown or missing dtype");
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), b.e[3].name));
}
END_TEST

START_TEST(integer_weights_refused)
{
	builder b;
	builder_init(&b);
	strcpy(b.e[3].dtype, "I32");
	write_model(&b);
	expect_fail(HYDB_EMODEL, "dtype I32 not supported");
}
END_TEST

START_TEST(overlapping_offsets)
{
	builder b;
	builder_init(&b);
	b.e[2].begin -= 4;
	b.e[2].end -= 4;
	write_model(&b);
	expect_fail(HYDB_EMODEL, "overlaps");
}
END_TEST

START_TEST(offsets_not_matching_shape)
{
	builder b;
	builder_init(&b);
	b.e[1].end -= 4;
	write_model(&b);
	expect_fail(HYDB_EMODEL, "do not match shape");
}
END_TEST

START_TEST(huge_shape_and_offsets)
{
	builder b;
	builder_init(&b);
	b.e[0].shape[0] = 1ll << 62;
	b.e[0].ndim = 2;
	b.e[0].shape[1] = 1ll << 62;
	write_model(&b);
	expect_fail(HYDB_EMODEL, "shape overflows");
	builder_init(&b);
	b.e[0].end = 1ull << 60;
	write_model(&b);
	expect_fail(HYDB_ECORRUPT, "ends at data byte");
}
END_TEST

START_TEST(hole_in_data)
{
	builder b;
	builder_init(&b);
	b.e[b.n - 1].begin += 8;
	b.e[b.n - 1].end += 8;
	write_model(&b);
	expect_fail(HYDB_EMODEL, "unused data bytes");
}
END_TEST

START_TEST(missing_tensor)
{
	builder b;
	int i;
	builder_init(&b);
	i = find(&b, "text_model.encoder.layers.0.mlp.fc2.bias");
	memmove(&b.e[i], &b.e[i + 1], (size_t)(b.n - i - 1) * sizeof b.e[0]);
	b.n--;
	layout(&b);
	write_model(&b);
	expect_fail(HYDB_EMODEL, "tensor 'text_model.encoder.layers.0.mlp.fc2.bias' is missing");
}
END_TEST

START_TEST(missing_merges)
{
	builder b;
	builder_init(&b);
	b.n--;
	layout(&b);
	write_model(&b);
	expect_fail(HYDB_EMODEL, "tokenizer.merges");
}
END_TEST

START_TEST(wrong_shape_for_config)
{
	builder b;
	builder_init(&b);
	b.e[find(&b, "vision_model.embeddings.position_embedding.weight")].shape[0] = 4;
	layout(&b);
	write_model(&b);
	expect_fail(HYDB_EMODEL, "position_embedding.weight' has shape [4,8], the config needs [5,8]");
	builder_init(&b);
	b.e[find(&b, "text_model.encoder.layers.0.mlp.fc1.weight")].shape[0] = 17;
	layout(&b);
	write_model(&b);
	expect_fail(HYDB_EMODEL, "fc1.weight' has shape [17,8]");
}
END_TEST

START_TEST(newer_version)
{
	builder b;
	builder_init(&b);
	b.version = 2;
	write_model(&b);
	expect_fail(HYDB_EVERSION, "version 2");
}
END_TEST

START_TEST(not_a_hydb_model)
{
	builder b;
	builder_init(&b);
	b.format = "pt";
	write_model(&b);
	expect_fail(HYDB_EMODEL, "hydb-model");
}
END_TEST

START_TEST(bad_config)
{
	builder b;
	builder_init(&b);
	b.drop_cfg = "curvature";
	write_model(&b);
	expect_fail(HYDB_EMODEL, "'curvature'");
	builder_init(&b);
	b.drop_cfg = "text";
	write_model(&b);
	expect_fail(HYDB_EMODEL, "'text'");
	builder_init(&b);
	b.bounds = "{\\\"V\\\":{\\\"avg\\\":1}}";
	write_model(&b);
	expect_fail(HYDB_EMODEL, "'bounds.V.low_05'");
}
END_TEST

START_TEST(tokenizer_mismatch)
{
	builder b;
	builder_init(&b);
	b.e[b.n - 1].shape[0] = 3; /* "a b": one merge, the vocabulary needs two */
	layout(&b);
	write_model(&b);
	expect_fail(HYDB_EMODEL, "holds 1 merges");
	builder_init(&b);
	b.bos = 3;
	write_model(&b);
	expect_fail(HYDB_EMODEL, "'text.bos_id'");
}
END_TEST

START_TEST(missing_file)
{
	hydb_model *m;
	unlink(path);
	ck_assert_int_eq(hydb_model_open(&m, path), HYDB_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(hydb_last_error(), path));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("model");
	TCase *t = tcase_create("loader");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, valid_model);
	tcase_add_test(t, hash_is_xxh64_of_file);
	tcase_add_test(t, f16_converted);
	tcase_add_test(t, bf16_converted);
	tcase_add_test(t, patch_bias_optional);
	tcase_add_test(t, bounds_absent_are_nan);
	tcase_add_test(t, truncated_everywhere);
	tcase_add_test(t, huge_header_length);
	tcase_add_test(t, bad_header_text);
	tcase_add_test(t, deep_nesting);
	tcase_add_test(t, unknown_dtype);
	tcase_add_test(t, integer_weights_refused);
	tcase_add_test(t, overlapping_offsets);
	tcase_add_test(t, offsets_not_matching_shape);
	tcase_add_test(t, huge_shape_and_offsets);
	tcase_add_test(t, hole_in_data);
	tcase_add_test(t, missing_tensor);
	tcase_add_test(t, missing_merges);
	tcase_add_test(t, wrong_shape_for_config);
	tcase_add_test(t, newer_version);
	tcase_add_test(t, not_a_hydb_model);
	tcase_add_test(t, bad_config);
	tcase_add_test(t, tokenizer_mismatch);
	tcase_add_test(t, missing_file);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;
	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
