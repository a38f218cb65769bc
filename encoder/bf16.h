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
 * oneDNN runs each matmul on its own OpenMP threads (Debian's build); the
 * encoder's pool threads sleep meanwhile. Both default to one thread per
 * CPU the process may use, so a pass uses the same cores either way.
 *
 * Without oneDNN at build time (configure --without-dnnl, or libdnnl-dev
 * absent) the functions exist but hydb_bf16_check refuses.
 */
#ifndef HYDB_BF16_H
#define HYDB_BF16_H

#include <stddef.h>
#include <stdint.h>

typedef struct hydb_bf16 hydb_bf16;         /* per model */
typedef struct hydb_bf16_run hydb_bf16_run; /* per forward pass */

/* Test hook (tests only): nonzero makes hydb_bf16_check answer as on a CPU
 * with neither AVX512_BF16 nor AMX. */
extern int hydb_bf16_test_no_cpu;

/* HYDB_OK when this build has oneDNN and the CPU has AVX512_BF16 or AMX;
 * else HYDB_EINVAL with a one-line reason. */
int hydb_bf16_check(void);
/* The instruction set oneDNN will use ("avx512_core_amx", ...), for the
 * bench; "none" without oneDNN. */
const char *hydb_bf16_isa(void);

/* Errors: HYDB_EINVAL (hydb_bf16_check), HYDB_ENOMEM. */
int hydb_bf16_new(hydb_bf16 **out);
void hydb_bf16_free(hydb_bf16 *e);
/* Round W [out, in] (nn.Linear's layout) to bfloat16 in the engine's
 * packed layout, keyed by the pointer w. Call for every weight before the
 * first hydb_bf16_linear; not thread-safe against other calls on e.
 * Errors: HYDB_ENOMEM, HYDB_EINVAL (oneDNN refused the shape). */
int hydb_bf16_pack(hydb_bf16 *e, const float *w, size_t out, size_t in);
/* Bytes of packed weights held by e. */
size_t hydb_bf16_packed_bytes(const hydb_bf16 *e);

/* A pass's stream and scratchpad; one thread uses a run at a time. */
int hydb_bf16_run_new(hydb_bf16_run **out, hydb_bf16 *e);
void hydb_bf16_run_free(hydb_bf16_run *r);
/* The first error of the run's linear layers (they keep no other way to
 * report one), or HYDB_OK. Later layers of a failed run do nothing. */
int hydb_bf16_run_status(const hydb_bf16_run *r);
/* Record rc (< 0) as the run's error unless it has one already. */
void hydb_bf16_run_fail(hydb_bf16_run *r, int rc);

/* One linear layer: y[n, out] = x[n, in] W^T (+ bias) (then quick_gelu
 * when gelu) (+ the old y when accumulate). x is bfloat16 (see
 * hydb_bf16_round); y is float32, or bfloat16 when y_bf16. w is a pointer
 * given to hydb_bf16_pack. Errors are kept in the run. */
typedef struct hydb_bf16_op {
	void *y;
	const uint16_t *x;
	const float *w, *bias;
	size_t n, in, out;
	int y_bf16, gelu, accumulate;
} hydb_bf16_op;
void hydb_bf16_linear(hydb_bf16_run *r, const hydb_bf16_op *op);

/* dst[i] = src[i] rounded to bfloat16, to nearest even (NaN stays NaN). */
void hydb_bf16_round(uint16_t *dst, const float *src, size_t n);
static inline float hydb_bf16_to_float(uint16_t h)
{
	union {
		uint32_t u;
		float f;
	} v = {(uint32_t)h << 16};
	return v.f;
}

#endif
