/*
 * bf16.h - the bfloat16 GEMM engine on oneDNN (internal to encoder/).
 *
 * The second engine beside OpenBLAS's float32: a model opened with
 * HYDB_PRECISION_BF16 runs its linear layers (the patch embedding, the
 * q/k/v/out projections, the MLP and the final projection) as oneDNN
 * matmuls on bfloat16 inputs with float32 accumulation. Attention, softmax,
 * LayerNorm and the exp map stay float32. Each weight is rounded to
 * bfloat16 and reordered into the layout oneDNN's kernel wants once, when
 * the encoder is made; a matmul primitive is made once per shape and kept.
 *
 * The encoder's pool threads run each matmul in blocks, each block a
 * single-threaded oneDNN call on the thread's own lane (stream and
 * scratchpad): oneDNN's OpenMP team is not used, the same threads do the
 * GEMMs and the rest of the pass. Blocks are rows of the output where
 * there are many (image tokens); for the few rows of a caption, the weight
 * is packed in column slices instead and the blocks are slices.
 *
 * Without oneDNN at build time (configure --without-dnnl, or libdnnl-dev
 * absent) the functions exist but hydb_bf16_check refuses.
 */
#ifndef HYDB_BF16_H
#define HYDB_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct hydb_bf16 hydb_bf16;         /* per model */
typedef struct hydb_bf16_run hydb_bf16_run; /* per forward pass */

/* Test hook (tests only): nonzero makes hydb_bf16_check answer as on a CPU
 * with neither AVX512_BF16 nor AMX. */
extern int hydb_bf16_test_no_cpu;
/* Test hook (tests only): nonzero makes the bf16 forward's own loops
 * (encoder/forward.c) take their generic code instead of AVX512_BF16's,
 * as a build without it would. */
extern int hydb_bf16_test_generic;

/* HYDB_OK when this build has oneDNN and the CPU has AVX512_BF16 or AMX;
 * else HYDB_EINVAL with a one-line reason. */
int hydb_bf16_check(void);
/* The instruction set oneDNN will use ("avx512_core_amx", ...), for the
 * bench; "none" without oneDNN. */
const char *hydb_bf16_isa(void);

/* Most column slices of a weight. */
#define HYDB_BF16_MAX_SLICES 16

/* Errors: HYDB_EINVAL (hydb_bf16_check), HYDB_ENOMEM. */
int hydb_bf16_new(hydb_bf16 **out);
void hydb_bf16_free(hydb_bf16 *e);
/* Round W [out, in] (nn.Linear's layout) to bfloat16 in the engine's
 * packed layout, keyed by the pointer w, in up to slices column slices
 * (none narrower than 128 columns, edges on multiples of 64). Call for
 * every weight before the first hydb_bf16_linear; not thread-safe against
 * other calls on e. Errors: HYDB_ENOMEM, HYDB_EINVAL (oneDNN refused the
 * shape). */
int hydb_bf16_pack(hydb_bf16 *e, const float *w, size_t out, size_t in,
		   size_t slices);
/* Bytes of packed weights held by e. */
size_t hydb_bf16_packed_bytes(const hydb_bf16 *e);

/* A pass's lanes: one stream and scratch per thread, lane i used by one
 * thread at a time. */
int hydb_bf16_run_new(hydb_bf16_run **out, hydb_bf16 *e, size_t lanes);
/* Column slices w was packed in (0 if it was not). */
size_t hydb_bf16_slices(const hydb_bf16_run *r, const float *w);
void hydb_bf16_run_free(hydb_bf16_run *r);
/* Nonzero: hydb_bf16_matmul makes oneDNN memory objects at each call, as
 * before the lanes kept them (the bench's A/B only). */
void hydb_bf16_run_fresh_memories(hydb_bf16_run *r, int fresh);
/* The first error of the run's linear layers (they keep no other way to
 * report one), or HYDB_OK. Later layers of a failed run do nothing. */
int hydb_bf16_run_status(const hydb_bf16_run *r);
/* Record rc (< 0) as the run's error unless it has one already. */
void hydb_bf16_run_fail(hydb_bf16_run *r, int rc);

/* The columns of one slice of a linear layer: y[n, out] = x[n, in] W^T
 * (+ bias) (then quick_gelu when gelu) (+ the old y when accumulate), only
 * y's columns in the slice written. x is bfloat16 (see hydb_bf16_round),
 * rows in apart; y is float32, or bfloat16 when y_bf16, rows out apart. w
 * is a pointer given to hydb_bf16_pack. Errors are kept in the lane. */
typedef struct hydb_bf16_op {
	void *y;
	const uint16_t *x;
	const float *w, *bias;
	size_t n, in, out, slice;
	int y_bf16, gelu, accumulate;
} hydb_bf16_op;
void hydb_bf16_linear(hydb_bf16_run *r, size_t lane, const hydb_bf16_op *op);
/* Block `block` of op split into parts row blocks times slices column
 * slices (block / slices the rows, block % slices the slice): how the
 * forward pass (and the bench, to measure the same thing) spreads one
 * layer over a pool's threads. */
void hydb_bf16_linear_block(hydb_bf16_run *r, size_t lane, const hydb_bf16_op *op, size_t block,
			    size_t parts, size_t slices);

/* For bench/bench_encoder: when hydb_bf16_timing is set, the forward pass
 * adds the wall time of its bf16 GEMM steps to hydb_bf16_gemm_seconds (one
 * pass at a time; not for concurrent use): the linear layers' steps, and
 * of each attention step the part its threads spent in the engine's
 * matmuls (q k^T and P v: the step's wall time times their share of its
 * threads' seconds in its tasks), which it also adds to
 * hydb_bf16_attn_gemm_seconds. */
extern int hydb_bf16_timing;
extern double hydb_bf16_gemm_seconds;
extern double hydb_bf16_attn_gemm_seconds;

/* c[m, n] = alpha a[m, k] b (float32, dense), a bfloat16 and dense, b
 * bfloat16: [k, n], or [n, k] when b_trans (c = alpha a b^T), its rows
 * ldb elements apart (0: dense). For the products of attention, whose
 * operands change every call and so are not packed: oneDNN 2.6 has AMX
 * kernels for a b^T only when both are dense, and its strided b (a head's
 * columns of v) runs as fast as a copied one. Errors are kept in the
 * lane. */
void hydb_bf16_matmul(hydb_bf16_run *r, size_t lane, float *c, float alpha,
		      const uint16_t *a, const uint16_t *b, size_t m, size_t k,
		      size_t n, int b_trans, size_t ldb);

/* dst[i] = src[i] rounded to bfloat16, to nearest even (NaN stays NaN). */
void hydb_bf16_round(uint16_t *dst, const float *src, size_t n);
/* dst[i] = src[i] * s rounded to bfloat16 (the product in float32). */
void hydb_bf16_round_scaled(uint16_t *dst, const float *src, float s,
			    size_t n);

/* The rounding of hydb_bf16_round on 16 lanes, for the vector loops that
 * write bfloat16 directly (GCC vectors, inlined into the caller's
 * AVX-512 or AVX2 clone; by pointer, so no vector crosses a call): u
 * holds float32 bit patterns and receives the rounded values', whose low
 * halves are zero. */
typedef uint32_t hydb_bf16_bits16 __attribute__((vector_size(64)));
static inline __attribute__((always_inline)) void
hydb_bf16_round_bits(hydb_bf16_bits16 *u)
{
	hydb_bf16_bits16 v = *u;
	hydb_bf16_bits16 nan = (hydb_bf16_bits16)((v & 0x7fffffffu) >
						   0x7f800000u);
	hydb_bf16_bits16 r = (v + 0x7fffu + ((v >> 16) & 1)) & 0xffff0000u;
	*u = (r & ~nan) | ((v | 0x400000u) & 0xffff0000u & nan);
}

/* dst[0, 16) = the bfloat16 halves of u (after hydb_bf16_round_bits). */
static inline __attribute__((always_inline)) void
hydb_bf16_store16(uint16_t *dst, const hydb_bf16_bits16 *u)
{
	typedef uint16_t h16 __attribute__((vector_size(32)));
	h16 h = __builtin_convertvector(*u >> 16, h16);
	memcpy(dst, &h, sizeof h);
}
static inline float hydb_bf16_to_float(uint16_t h)
{
	union {
		uint32_t u;
		float f;
	} v = {(uint32_t)h << 16};
	return v.f;
}

#endif
