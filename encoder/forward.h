/*
 * forward.h - the HySAC transformer forward pass (internal to encoder/).
 *
 * float32 (the default): weights are used in place from the model map,
 * nothing is copied or packed, so the resident size of an encoder is the
 * part of the file it has touched plus per-call scratch. bfloat16
 * (HYDB_PRECISION_BF16): the linear layers' weights are packed once into
 * the oneDNN engine (encoder/bf16.h) when the encoder is made, and their
 * float32 pages are dropped from the process's resident set. The resolved
 * tensor pointers live in m->enc, made on first use.
 */
#ifndef HYDB_FORWARD_H
#define HYDB_FORWARD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "encoder/model.h"

/* One pre-LN transformer block, HF CLIPEncoderLayer names. Linear weights
 * are [out, in] as nn.Linear stores them. */
typedef struct hydb_layer_w {
	const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
	const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
	const float *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} hydb_layer_w;

typedef struct hydb_tower {
	size_t width, layers, heads, mlp;
	double ln_eps;
	hydb_layer_w *blocks;
	const float *final_ln_w, *final_ln_b; /* post_layernorm / final_layer_norm */
	const float *proj;                    /* [embed_dim, width] */
} hydb_tower;

typedef struct hydb_encoder {
	hydb_tower vision, text;
	/* vision embeddings */
	const float *class_emb, *patch_w, *patch_b, *vis_pos;
	const float *pre_ln_w, *pre_ln_b;
	size_t grid, patch, n_pos;
	/* text embeddings */
	const float *tok_emb, *txt_pos;
	size_t vocab, context;
	size_t embed_dim;
	struct hydb_bf16 *bf16;               /* the bf16 engine, or NULL */
	/* The scratch block of the last pass, kept for the next
	 * (hydb_scratch_take), under scratch_lock. */
	pthread_mutex_t scratch_lock;
	void *scratch;
	size_t scratch_bytes;
} hydb_encoder;

/* Earlier ways of running parts of the forward pass, kept so that
 * bench/bench_encoder can time old and new in one process (the machine's
 * load changes too much between runs to compare across them). Same
 * results either way. Read when a pass begins, from HYDB_FORWARD_LEGACY in
 * bench builds only (base/bench_switch.h). */
enum {
	/* each GEMM one call on OpenBLAS's threads, its bias or GELU a pass
	 * of its own, instead of blocks on the pool's threads */
	HYDB_FWD_BLAS_THREADS = 1,
	/* scalar loops for the softmax and LayerNorm, GELU in chunks (the
	 * float32 engine's) */
	HYDB_FWD_SCALAR = 2,
	/* the bf16 engine's block of before: LayerNorm and attention write
	 * float32 that a pass of its own rounds for the next matmul, each
	 * head's q, k, v copied in and P v copied out, the softmax
	 * normalised over its seq columns */
	HYDB_FWD_BF16_PASSES = 4,
	/* the bf16 engine's attention on seq tokens as they are, v's
	 * columns read in place, instead of padded to a multiple of 16 */
	HYDB_FWD_ATTN_UNPADDED = 8,
	/* the bf16 engine's attention on short sequences (a caption's) as on
	 * long ones, each head's products two oneDNN matmuls, instead of
	 * float32 loops on the bfloat16 q, k and v */
	HYDB_FWD_ATTN_SMALL_MATMULS = 16,
	/* the bf16 engine's q, k and v projections each a pool step of its
	 * own instead of their blocks in one step */
	HYDB_FWD_QKV_STEPS = 32,
	/* each pass's scratch a fresh allocation, freed after it, instead
	 * of the encoder's kept block */
	HYDB_FWD_SCRATCH_PER_PASS = 64,
	/* the bf16 engine's softmax of before: a degree-5 exponential, the
	 * rounded values widened back to float32 to be summed */
	HYDB_FWD_SOFTMAX_V1 = 128,
	/* oneDNN memory objects made at each of attention's matmuls instead
	 * of kept by the lanes */
	HYDB_FWD_DNNL_FRESH_MEMORIES = 256,
	/* the bf16 softmax a call per row (memset of its zeros, dispatch)
	 * instead of a head's rows in one call */
	HYDB_FWD_SOFTMAX_PER_ROW = 512,
	/* the bf16 engine's LayerNorm statistics summed on one chain of
	 * vector additions instead of four */
	HYDB_FWD_LN_ONE_CHAIN = 1024,
};

/* The threads of one forward pass (encoder/pool.h); OpenBLAS runs
 * single-threaded from hydb_fwd_begin to hydb_fwd_end, the pool's threads
 * taking its place. A NULL hydb_fwd runs everything on the caller. */
typedef struct hydb_fwd {
	struct hydb_pool *pool;
	int split;              /* GEMMs cut into blocks for the pool */
	int legacy;             /* hydb_forward_legacy at hydb_fwd_begin */
	struct hydb_bf16_run *bf16; /* linear layers on the bf16 engine */
} hydb_fwd;

/* A pass of encoder e (NULL: float32 on OpenBLAS). Errors: HYDB_ENOMEM,
 * and the bf16 engine's. */
int hydb_fwd_begin(hydb_fwd *f, const hydb_encoder *e);
/* HYDB_OK, or the first error of the pass's bf16 linear layers (which,
 * like the float32 ones, have no return value of their own). */
int hydb_fwd_status(const hydb_fwd *f);
void hydb_fwd_end(hydb_fwd *f);
/* y[n, out] = x[n, in] W^T with W [out, in], on the pass's threads. */
void hydb_fwd_gemm(const hydb_fwd *f, float *y, const float *x, size_t n,
		   size_t in, size_t out, const float *w);

/* A pass's scratch: at least the bytes asked for, 64-byte aligned. */
typedef struct hydb_scratch {
	void *p;
	size_t bytes;
} hydb_scratch;
/* The encoder's kept block when it is big enough, else a new one. Errors:
 * HYDB_ENOMEM. */
int hydb_scratch_take(hydb_scratch *s, const hydb_fwd *f, hydb_encoder *e,
		      size_t bytes, const char *what);
/* Back to the encoder for the next pass (the larger of it and the kept
 * block is kept, up to HYDB_SCRATCH_KEEP_MAX bytes), or freed. */
void hydb_scratch_give(const hydb_fwd *f, hydb_encoder *e, hydb_scratch *s);

/* The encoder state of m, resolving every tensor on first use (thread-safe).
 * Errors: HYDB_EMODEL naming the missing or misshapen tensor. */
int hydb_encoder_get(hydb_encoder **out, struct hydb_model *m);
/* Called by hydb_model_close. */
void hydb_encoder_release(void *enc);

/* Floats of scratch hydb_layer_forward needs for n_seq x seq tokens. */
int hydb_layer_scratch(size_t *out, const hydb_fwd *f, const hydb_tower *t,
		       size_t n_seq, size_t seq);
/* Run one block in place on x [n_seq * seq, width]: n_seq independent
 * sequences of seq tokens. causal: token i attends to tokens <= i. With
 * the bf16 engine a block's last matmul also makes the next block's
 * first LayerNorm, in scratch: run a tower's blocks in order, from its
 * first, on the same x and scratch. */
void hydb_layer_forward(const hydb_fwd *f, const hydb_tower *t,
			const hydb_layer_w *b, float *x, size_t n_seq,
			size_t seq, int causal, float *scratch);
/* Row-wise LayerNorm: out may alias x. */
void hydb_layer_norm(const hydb_fwd *f, float *out, const float *x,
		     size_t rows, size_t width, const float *w, const float *b,
		     double eps);

/* hydb_layer_norm writing bfloat16 (the bf16 engine's matmul input): the
 * float32 result rounded as hydb_bf16_round would. */
void hydb_layer_norm_bf16(const hydb_fwd *f, uint16_t *out, const float *x,
			  size_t rows, size_t width, const float *w,
			  const float *b, double eps);
/* p[0, live) = exp(row - max of row[0, live)) rounded to bfloat16, p[live,
 * cols) = 0; returns 1 / the sum of p[0, live) (as rounded), which
 * normalises them. live > 0. */
float hydb_softmax_row_bf16(uint16_t *p, const float *row, size_t live,
			    size_t cols);
/* Bytes of buf hydb_attention_bf16 needs on f's threads. */
size_t hydb_attention_bf16_bytes(const hydb_fwd *f, size_t seq, size_t d);
/* o = softmax(q k^T / sqrt(d)) v on the bf16 engine (f->bf16), all
 * bfloat16 [n_seq * seq, width], head h in columns [h*d, (h+1)*d), d =
 * width / heads; causal as for hydb_layer_forward. Errors are the run's
 * (hydb_fwd_status). */
void hydb_attention_bf16(const hydb_fwd *f, uint16_t *o, const uint16_t *q,
			 const uint16_t *k, const uint16_t *v, size_t n_seq,
			 size_t seq, size_t width, size_t heads, int causal,
			 void *buf);

/* pixels: n images, CHW float, image_size^2 each, already normalised.
 * features: n * embed_dim. */
int hydb_vision_forward(struct hydb_model *m, const float *pixels, size_t n,
			float *features);
/* ids: n_ids token ids (BOS ... EOS [padding]); pools at the first EOS.
 * features: embed_dim. */
int hydb_text_forward(struct hydb_model *m, const int32_t *ids, size_t n_ids,
		      float *features);

#endif
