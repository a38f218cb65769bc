/*
 * blas.h - the BLAS entry points libhydb uses (internal).
 *
 * Debian's OpenBLAS 0.3.21 does not recognise recent Intel CPUs and falls
 * back to its Prescott (SSE3) kernels, 3-5x slower than the AVX-512 ones.
 * OpenBLAS reads OPENBLAS_CORETYPE only when it is loaded, so libhydb does
 * not link it: src/base/blas.c picks the core type from the CPU's flags, sets the
 * variable (unless the user did) and dlopen()s OpenBLAS on first use. Every
 * GEMM in hydb goes through these wrappers.
 */
#ifndef HYDB_BLAS_H
#define HYDB_BLAS_H

#include <stddef.h>

/* Load OpenBLAS with the right kernel. Idempotent and thread-safe; called
 * implicitly by the wrappers. Returns 0 or HYDB_EIO with a message. */
int hydb_blas_init(void);

/* Row-major C = alpha * op(A) * op(B) + beta * C, op = transpose if trans. */
void hydb_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k,
		float alpha, const float *a, size_t lda, const float *b,
		size_t ldb, float beta, float *c, size_t ldc);

/* The OpenBLAS core in use ("SkylakeX", "Cooperlake", "Prescott", ...). */
const char *hydb_blas_corename(void);
/* hydb_blas_info (hydb.h): the core and why it was chosen. */
const char *hydb_blas_info(void);
/* The core type hydb selected from the CPU flags (NULL if none needed). */
const char *hydb_blas_wanted_core(void);
/* Number of threads OpenBLAS may use (0 = its default). */
void hydb_blas_set_threads(int n);

/* Between these, hydb_sgemm runs on the calling thread only, so that
 * callers can run many small GEMMs on threads of their own instead of
 * waking OpenBLAS's pool for each. OpenBLAS 0.3.21 has only a process-wide
 * thread count, so sections of concurrent callers are counted and the count
 * is restored when the last one ends; other threads' GEMMs run serial
 * meanwhile (slower, still correct). Every begin needs one end. */
void hydb_blas_serial_begin(void);
void hydb_blas_serial_end(void);

#endif
