/*
 * forward.c - encoder state and the transformer block shared by the
 * vision and text towers.
 *
 * Every matrix product goes through hydb_sgemm (OpenBLAS threads it); the
 * element-wise parts are split over two threads when large enough to pay
 * for it, since they would otherwise leave the second core idle.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "encoder/forward.h"
#include "internal.h"

/* ---- element-wise work on two threads --------------------------------- */

typedef void (*rows_fn)(void *ctx, size_t r0, size_t r1);

struct rows_job {
	rows_fn fn;
	void *ctx;
	size_t r0, r1;
};

static void *rows_thread(void *arg)
{
	struct rows_job *j = arg;
	j->fn(j->ctx, j->r0, j->r1);
	return NULL;
}

/* Below this many elements a thread costs more than it saves. */
#define PARALLEL_MIN_WORK (1u << 18)

static void parallel_rows(rows_fn fn, void *ctx, size_t rows, size_t width)
{
	pthread_t th;
	if (rows < 2 || rows * width < PARALLEL_MIN_WORK) {
		fn(ctx, 0, rows);
		return;
	}
	struct rows_job j = {fn, ctx, rows / 2, rows};
	if (pthread_create(&th, NULL, rows_thread, &j) != 0) {
		fn(ctx, 0, rows);
		return;
	}
	fn(ctx, 0, rows / 2);
	pthread_join(th, NULL);
}

/* ---- LayerNorm --------------------------------------------------------- */

struct ln_ctx {
	float *out;
	float *x;           /* written only when add is set */
	const float *w, *b;
	const float *add;   /* a bias to add to x first, or NULL */
	size_t width;
	double eps;
};

static void ln_rows(void *p, size_t r0, size_t r1)
{
	const struct ln_ctx *c = p;
	size_t w = c->width;
	for (size_t r = r0; r < r1; r++) {
		float *x = c->x + r * w;
		float *o = c->out + r * w;
		double mean = 0, var = 0;
		if (c->add)
			for (size_t i = 0; i < w; i++)
				x[i] += c->add[i];
		for (size_t i = 0; i < w; i++)
			mean += x[i];
		mean /= (double)w;
		for (size_t i = 0; i < w; i++) {
			double d = x[i] - mean;
			var += d * d;
		}
		float inv = (float)(1.0 / sqrt(var / (double)w + c->eps));
		float m = (float)mean;
		for (size_t i = 0; i < w; i++)
			o[i] = (x[i] - m) * inv * c->w[i] + c->b[i];
	}
}

void hydb_layer_norm(float *out, const float *x, size_t rows, size_t width,
		     const float *w, const float *b, double eps)
{
	struct ln_ctx c = {out, (float *)x, w, b, NULL, width, eps};
	parallel_rows(ln_rows, &c, rows, width);
}

/* x += bias, then out = LayerNorm(x): the residual's bias costs no pass of
 * its own. */
static void bias_layer_norm(float *out, float *x, const float *bias,
			    size_t rows, size_t width, const float *w,
			    const float *b, double eps)
{
	struct ln_ctx c = {out, x, w, b, bias, width, eps};
	parallel_rows(ln_rows, &c, rows, width);
}

/* ---- linear layers ----------------------------------------------------- */

static void fill_bias(float *y, size_t rows, const float *b, size_t width)
{
	for (size_t r = 0; r < rows; r++)
		memcpy(y + r * width, b, width * sizeof *y);
}

/* y[n, out] = x[n, in] W^T + b; the bias seeds C so the GEMM adds to it. */
static void linear(float *y, const float *x, size_t n, size_t in, size_t out,
		   const float *w, const float *b)
{
	if (b)
		fill_bias(y, n, b, out);
	hydb_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y,
		   out);
}

/* x[n, out] += h[n, in] W^T + b: the residual add costs nothing extra. */
static void linear_residual(float *x, const float *h, size_t n, size_t in,
			    size_t out, const float *w, const float *b)
{
	for (size_t r = 0; r < n; r++) {
		float *row = x + r * out;
		for (size_t i = 0; i < out; i++)
			row[i] += b[i];
	}
	hydb_sgemm(0, 1, n, out, in, 1.0f, h, in, w, in, 1.0f, x, out);
}

/* ---- exp, 16 lanes at a time ------------------------------------------ */

/* libm's expf is a scalar call per element; GELU and softmax make ~50M of
 * them per image. This is the Cephes expf (2^n times a degree-6 polynomial
 * on [-ln2/2, ln2/2], relative error ~1e-7) in GCC vector arithmetic, so it
 * compiles to AVX-512 or AVX2 with the clone the CPU picks. */
typedef float hydb_v16 __attribute__((vector_size(64)));
typedef int32_t hydb_v16i __attribute__((vector_size(64)));

__attribute__((target_clones("avx512f", "avx2", "default")))
static void exp16(float *y, const float *x)
{
	const float magic = 12582912.0f; /* 1.5 * 2^23: adds round to integer */
	hydb_v16 v, t, n, r, p, zero = {0};
	hydb_v16i vi, lo, hi, m;
	memcpy(&v, x, sizeof v);
	/* Clamp to [-87, 88] with lane masks (C has no vector ?:). */
	t = zero - 87.0f;
	memcpy(&lo, &t, sizeof lo);
	t = zero + 88.0f;
	memcpy(&hi, &t, sizeof hi);
	memcpy(&vi, &v, sizeof vi);
	m = v < -87.0f;
	vi = (vi & ~m) | (lo & m);
	m = v > 88.0f;
	vi = (vi & ~m) | (hi & m);
	memcpy(&v, &vi, sizeof v);
	t = v * 1.44269504088896341f + magic;
	n = t - magic;
	r = v - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	p = r * 1.9875691500e-4f + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	hydb_v16i bits;
	memcpy(&bits, &t, sizeof bits);
	bits = (bits - 0x4B400000 + 127) << 23;
	memcpy(&t, &bits, sizeof t);
	p = p * t;
	memcpy(y, &p, sizeof p);
}

static void exp_array(float *y, const float *x, size_t n)
{
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		exp16(y + i, x + i);
	for (; i < n; i++)
		y[i] = expf(x[i]);
}

/* ---- quick_gelu -------------------------------------------------------- */

struct gelu_ctx {
	float *x;
	const float *bias; /* added first, or NULL */
	size_t width;
};

#define GELU_CHUNK 256

/* x = quick_gelu(x + bias) on k values, bias possibly NULL. */
static void gelu_chunk(float *x, const float *bias, size_t k)
{
	float e[GELU_CHUNK];
	if (bias)
		for (size_t i = 0; i < k; i++)
			x[i] += bias[i];
	for (size_t i = 0; i < k; i++)
		e[i] = -1.702f * x[i];
	exp_array(e, e, k);
	for (size_t i = 0; i < k; i++)
		x[i] = x[i] / (1.0f + e[i]);
}

static void gelu_rows(void *p, size_t r0, size_t r1)
{
	const struct gelu_ctx *c = p;
	for (size_t r = r0; r < r1; r++) {
		float *x = c->x + r * c->width;
		for (size_t i0 = 0; i0 < c->width; i0 += GELU_CHUNK) {
			size_t k = c->width - i0 < GELU_CHUNK ? c->width - i0
							      : GELU_CHUNK;
			gelu_chunk(x + i0, c->bias ? c->bias + i0 : NULL, k);
		}
	}
}

struct bias_ctx {
	float *x;
	const float *bias;
	size_t width;
};

static void bias_rows(void *p, size_t r0, size_t r1)
{
	const struct bias_ctx *c = p;
	for (size_t r = r0; r < r1; r++) {
		float *x = c->x + r * c->width;
		for (size_t i = 0; i < c->width; i++)
			x[i] += c->bias[i];
	}
}

/* ---- attention --------------------------------------------------------- */

static void softmax_rows(float *s, size_t rows, size_t cols, int causal,
			 size_t row0)
{
	for (size_t r = 0; r < rows; r++) {
		float *row = s + r * cols;
		size_t live = causal ? row0 + r + 1 : cols;
		float mx = row[0];
		for (size_t j = 1; j < live; j++)
			mx = row[j] > mx ? row[j] : mx;
		float sum = 0;
		for (size_t j = 0; j < live; j++)
			row[j] -= mx;
		exp_array(row, row, live);
		for (size_t j = 0; j < live; j++)
			sum += row[j];
		float inv = 1.0f / sum;
		for (size_t j = 0; j < live; j++)
			row[j] *= inv;
		for (size_t j = live; j < cols; j++)
			row[j] = 0.0f;
	}
}

struct attn_ctx {
	float *o;
	const float *q, *k, *v;
	size_t seq, width, d, heads, tasks;
	float scale;
	int causal;
	size_t next; /* next (sequence, head) task, taken atomically */
};

/* One head of one sequence; scores is seq x seq of the thread's own. */
static void attn_head(const struct attn_ctx *c, size_t task, float *scores)
{
	size_t s = task / c->heads, h = task % c->heads;
	size_t off = s * c->seq * c->width + h * c->d;
	hydb_sgemm(0, 1, c->seq, c->seq, c->d, c->scale, c->q + off, c->width,
		   c->k + off, c->width, 0.0f, scores, c->seq);
	softmax_rows(scores, c->seq, c->seq, c->causal, 0);
	hydb_sgemm(0, 0, c->seq, c->d, c->seq, 1.0f, scores, c->seq, c->v + off,
		   c->width, 0.0f, c->o + off, c->width);
}

struct attn_worker {
	struct attn_ctx *c;
	float *scores;
};

/* Tasks are handed out one at a time: causal heads differ in cost and the
 * other core may be busy with another process. */
static void *attn_worker(void *arg)
{
	struct attn_worker *w = arg;
	size_t t;
	while ((t = __atomic_fetch_add(&w->c->next, 1, __ATOMIC_RELAXED)) <
	       w->c->tasks)
		attn_head(w->c, t, w->scores);
	return NULL;
}

/* Below this many multiply-adds per head, a second thread costs more than
 * it saves (a 77-token caption head is ~0.4M). */
#define ATTN_PARALLEL_MIN (1u << 21)

int hydb_forward_legacy;

/* o = softmax(q k^T / sqrt(d)) v for every sequence and head. q, k, v, o
 * are [n_seq * seq, width] with head h in columns [h*d, (h+1)*d). The
 * per-head GEMMs are small: two threads of ours each run whole heads with
 * single-threaded GEMMs rather than OpenBLAS splitting each one, which
 * left its threads spinning between the many short calls. scores holds
 * two seq x seq matrices. */
static void attention(float *o, const float *q, const float *k,
		      const float *v, float *scores, size_t n_seq, size_t seq,
		      size_t width, size_t heads, int causal)
{
	struct attn_ctx c = {o, q, k, v, seq, width, width / heads, heads,
			     n_seq * heads, 0.0f, causal, 0};
	c.scale = (float)(1.0 / sqrt((double)c.d));
	struct attn_worker mine = {&c, scores}, other = {&c, scores + seq * seq};
	pthread_t th;
	if ((hydb_forward_legacy & HYDB_FWD_OLD_ATTENTION) || seq * seq * c.d < ATTN_PARALLEL_MIN ||
	    c.tasks < 2) {
		attn_worker(&mine);
		return;
	}
	hydb_blas_serial_begin();
	int spawned = pthread_create(&th, NULL, attn_worker, &other) == 0;
	attn_worker(&mine);
	if (spawned)
		pthread_join(th, NULL);
	hydb_blas_serial_end();
}

/* ---- one block --------------------------------------------------------- */

/* h | q | k | v | o, the MLP's hidden layer reusing q onwards, then two
 * heads' attention scores (one per thread). */
static size_t scratch_per_row(const hydb_tower *t)
{
	size_t four = 4 * t->width;
	return t->width + (four > t->mlp ? four : t->mlp);
}

int hydb_block_scratch(size_t *out, const hydb_tower *t, size_t n_seq,
		       size_t seq)
{
	size_t n, sq;
	if (hydb_mul_size(&n, n_seq, seq) < 0 ||
	    hydb_mul_size(&n, n, scratch_per_row(t)) < 0 ||
	    hydb_mul3_size(&sq, 2, seq, seq) < 0 ||
	    hydb_add_size(out, n, sq) < 0)
		return hydb_error_set(HYDB_ENOMEM, "encoder scratch: %zu x %zu "
				      "tokens overflow", n_seq, seq);
	return HYDB_OK;
}

void hydb_block_forward(const hydb_tower *t, const hydb_block_w *b, float *x,
			size_t n_seq, size_t seq, int causal, float *scratch)
{
	size_t n = n_seq * seq, w = t->width;
	float *h = scratch;
	float *q = h + n * w, *k = q + n * w, *v = k + n * w, *o = v + n * w;
	float *scores = h + n * scratch_per_row(t);

	hydb_layer_norm(h, x, n, w, b->ln1_w, b->ln1_b, t->ln_eps);
	linear(q, h, n, w, w, b->q_w, b->q_b);
	linear(k, h, n, w, w, b->k_w, b->k_b);
	linear(v, h, n, w, w, b->v_w, b->v_b);
	attention(o, q, k, v, scores, n_seq, seq, w, t->heads, causal);
	float *mid = q;
	if (hydb_forward_legacy & HYDB_FWD_UNFUSED) {
		linear_residual(x, o, n, w, w, b->o_w, b->o_b);
		hydb_layer_norm(h, x, n, w, b->ln2_w, b->ln2_b, t->ln_eps);
		linear(mid, h, n, w, t->mlp, b->fc1_w, b->fc1_b);
		struct gelu_ctx g = {mid, NULL, t->mlp};
		parallel_rows(gelu_rows, &g, n, t->mlp);
		linear_residual(x, mid, n, t->mlp, w, b->fc2_w, b->fc2_b);
		return;
	}
	/* Biases join the element-wise pass that follows each GEMM rather
	 * than taking a pass over the rows of their own. */
	hydb_sgemm(0, 1, n, w, w, 1.0f, o, w, b->o_w, w, 1.0f, x, w);
	bias_layer_norm(h, x, b->o_b, n, w, b->ln2_w, b->ln2_b, t->ln_eps);
	hydb_sgemm(0, 1, n, t->mlp, w, 1.0f, h, w, b->fc1_w, w, 0.0f, mid,
		   t->mlp);
	struct gelu_ctx g = {mid, b->fc1_b, t->mlp};
	parallel_rows(gelu_rows, &g, n, t->mlp);
	hydb_sgemm(0, 1, n, w, t->mlp, 1.0f, mid, t->mlp, b->fc2_w, t->mlp,
		   1.0f, x, w);
	struct bias_ctx fb = {x, b->fc2_b, w};
	parallel_rows(bias_rows, &fb, n, w);
}

/* ---- resolving tensors ------------------------------------------------- */

struct resolver {
	const struct hydb_model *m;
	int rc;
};

/* Look up name (printf-style) with the given shape; the first failure is
 * kept and later lookups are skipped. */
static const float *need(struct resolver *r, int ndim, const int64_t *shape,
			 const char *fmt, ...) HYDB_PRINTF(4, 5);

static const float *need(struct resolver *r, int ndim, const int64_t *shape,
			 const char *fmt, ...)
{
	char name[256];
	va_list ap;
	if (r->rc < 0)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	const float *p = hydb_model_tensor(r->m, name, ndim, shape);
	if (!p)
		r->rc = HYDB_EMODEL;
	return p;
}

static const float *vec(struct resolver *r, size_t n, const char *pfx,
			const char *what)
{
	int64_t s[1] = {(int64_t)n};
	return need(r, 1, s, "%s.%s", pfx, what);
}

static const float *mat(struct resolver *r, size_t rows, size_t cols,
			const char *pfx, const char *what)
{
	int64_t s[2] = {(int64_t)rows, (int64_t)cols};
	return need(r, 2, s, "%s.%s", pfx, what);
}

/* An nn.Linear (weight [out, in] and bias) or LayerNorm (in = 0) pair. */
static void pair(struct resolver *r, const float **w, const float **b,
		 size_t out, size_t in, const char *pfx, const char *mod)
{
	char name[192];
	snprintf(name, sizeof name, "%s.%s", pfx, mod);
	*w = in ? mat(r, out, in, name, "weight") : vec(r, out, name, "weight");
	*b = vec(r, out, name, "bias");
}

static void resolve_block(struct resolver *r, hydb_block_w *b,
			  const hydb_tower *t, const char *tower, size_t i)
{
	char p[128];
	size_t w = t->width, f = t->mlp;
	snprintf(p, sizeof p, "%s.encoder.layers.%zu", tower, i);
	pair(r, &b->ln1_w, &b->ln1_b, w, 0, p, "layer_norm1");
	pair(r, &b->ln2_w, &b->ln2_b, w, 0, p, "layer_norm2");
	pair(r, &b->q_w, &b->q_b, w, w, p, "self_attn.q_proj");
	pair(r, &b->k_w, &b->k_b, w, w, p, "self_attn.k_proj");
	pair(r, &b->v_w, &b->v_b, w, w, p, "self_attn.v_proj");
	pair(r, &b->o_w, &b->o_b, w, w, p, "self_attn.out_proj");
	pair(r, &b->fc1_w, &b->fc1_b, f, w, p, "mlp.fc1");
	pair(r, &b->fc2_w, &b->fc2_b, w, f, p, "mlp.fc2");
}

static int tower_init(struct resolver *r, hydb_tower *t, const char *name,
		      int width, int layers, int heads, int mlp, double eps)
{
	RETURN_ERROR_IF(width <= 0 || layers <= 0 || heads <= 0 || mlp <= 0 ||
			width % heads, HYDB_EMODEL,
			"%s: config width %d, layers %d, heads %d, mlp %d "
			"invalid", name, width, layers, heads, mlp);
	t->width = (size_t)width;
	t->layers = (size_t)layers;
	t->heads = (size_t)heads;
	t->mlp = (size_t)mlp;
	t->ln_eps = eps > 0 ? eps : 1e-5;
	t->blocks = calloc(t->layers, sizeof *t->blocks);
	RETURN_ERROR_IF(!t->blocks, HYDB_ENOMEM, "%s: cannot allocate %d layers",
			name, layers);
	for (size_t i = 0; i < t->layers; i++)
		resolve_block(r, &t->blocks[i], t, name, i);
	return r->rc;
}

static int resolve_vision(struct resolver *r, hydb_encoder *e,
			  const hydb_model_config *c)
{
	const char *v = "vision_model";
	FORWARD_IF_ERROR(tower_init(r, &e->vision, v, c->vision_width,
				    c->vision_layers, c->vision_heads,
				    c->vision_mlp, c->ln_eps));
	RETURN_ERROR_IF(c->patch_size <= 0 || c->image_size <= 0 ||
			c->image_size % c->patch_size, HYDB_EMODEL,
			"model config: image_size %d not a multiple of "
			"patch_size %d", c->image_size, c->patch_size);
	size_t w = e->vision.width;
	e->patch = (size_t)c->patch_size;
	e->grid = (size_t)(c->image_size / c->patch_size);
	e->n_pos = e->grid * e->grid + 1;
	int64_t pw[4] = {(int64_t)w, 3, (int64_t)e->patch, (int64_t)e->patch};
	e->patch_w = need(r, 4, pw, "%s.embeddings.patch_embedding.weight", v);
	if (r->rc == 0) {
		int64_t pb[1] = {(int64_t)w};
		e->patch_b = hydb_model_tensor_opt(r->m,
			"vision_model.embeddings.patch_embedding.bias", 1, pb);
	}
	e->class_emb = vec(r, w, "vision_model.embeddings", "class_embedding");
	e->vis_pos = mat(r, e->n_pos, w, "vision_model.embeddings",
			 "position_embedding.weight");
	pair(r, &e->pre_ln_w, &e->pre_ln_b, w, 0, v, "pre_layrnorm");
	pair(r, &e->vision.final_ln_w, &e->vision.final_ln_b, w, 0, v,
	     "post_layernorm");
	e->vision.proj = mat(r, e->embed_dim, w, "visual_projection", "weight");
	return r->rc;
}

static int resolve_text(struct resolver *r, hydb_encoder *e,
			const hydb_model_config *c)
{
	const char *t = "text_model";
	FORWARD_IF_ERROR(tower_init(r, &e->text, t, c->text_width,
				    c->text_layers, c->text_heads, c->text_mlp,
				    c->ln_eps));
	RETURN_ERROR_IF(c->vocab_size <= 0 || c->context_length <= 0 ||
			c->eos_id < 0 || c->eos_id >= c->vocab_size,
			HYDB_EMODEL, "model config: vocab_size %d, "
			"context_length %d, eos_id %d invalid", c->vocab_size,
			c->context_length, c->eos_id);
	size_t w = e->text.width;
	e->vocab = (size_t)c->vocab_size;
	e->context = (size_t)c->context_length;
	e->tok_emb = mat(r, e->vocab, w, "text_model.embeddings",
			 "token_embedding.weight");
	e->txt_pos = mat(r, e->context, w, "text_model.embeddings",
			 "position_embedding.weight");
	pair(r, &e->text.final_ln_w, &e->text.final_ln_b, w, 0, t,
	     "final_layer_norm");
	e->text.proj = mat(r, e->embed_dim, w, "text_projection", "weight");
	return r->rc;
}

void hydb_encoder_release(void *enc)
{
	hydb_encoder *e = enc;
	if (!e)
		return;
	free(e->vision.blocks);
	free(e->text.blocks);
	hydb_encoder_tokenizer_free(e->tok);
	free(e);
}

static int encoder_create(hydb_encoder **out, const struct hydb_model *m)
{
	const hydb_model_config *c = &m->cfg;
	RETURN_ERROR_IF(c->embed_dim <= 0, HYDB_EMODEL,
			"model config: embed_dim %d invalid", c->embed_dim);
	hydb_encoder *e = calloc(1, sizeof *e);
	RETURN_ERROR_IF(!e, HYDB_ENOMEM, "encoder: out of memory");
	e->embed_dim = (size_t)c->embed_dim;
	struct resolver r = {m, 0};
	int rc = resolve_vision(&r, e, c);
	if (rc == 0)
		rc = resolve_text(&r, e, c);
	if (rc < 0) {
		hydb_encoder_release(e);
		return rc;
	}
	*out = e;
	return HYDB_OK;
}

static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;

int hydb_encoder_get(hydb_encoder **out, struct hydb_model *m)
{
	hydb_encoder *e = __atomic_load_n((hydb_encoder **)&m->enc,
					  __ATOMIC_ACQUIRE);
	if (e) {
		*out = e;
		return HYDB_OK;
	}
	FORWARD_IF_ERROR(hydb_blas_init());
	pthread_mutex_lock(&create_lock);
	int rc = HYDB_OK;
	e = m->enc;
	if (!e) {
		rc = encoder_create(&e, m);
		if (rc == 0)
			__atomic_store_n((hydb_encoder **)&m->enc, e,
					 __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&create_lock);
	*out = e;
	return rc;
}
