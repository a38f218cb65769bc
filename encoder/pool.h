/*
 * pool.h - worker threads for one encoder forward pass (internal to
 * encoder/).
 *
 * The forward pass splits every large GEMM and element-wise pass into
 * tasks that these threads take one at a time, each GEMM running
 * single-threaded in OpenBLAS. Threads live for the whole pass, not per
 * operation: a forward makes a few hundred parallel steps.
 */
#ifndef HYDB_POOL_H
#define HYDB_POOL_H

#include <stddef.h>

typedef struct hydb_pool hydb_pool;

/* Most threads a pool runs (the caller included). */
#define HYDB_POOL_MAX 16

/* task(ctx, i, thread) for one task index i; thread < hydb_pool_threads. */
typedef void (*hydb_task_fn)(void *ctx, size_t i, size_t thread);

/* A pool of up to threads threads, the caller being one; 0 = one per CPU
 * the process may run on. Workers that cannot be started leave a smaller
 * pool. Errors: HYDB_ENOMEM. */
int hydb_pool_new(hydb_pool **out, size_t threads);
void hydb_pool_free(hydb_pool *p);
/* The threads hydb_pool_new(.., 0) starts: one per CPU the process may
 * run on, at most HYDB_POOL_MAX. */
size_t hydb_pool_default_threads(void);
/* Threads taking part in hydb_pool_run; 1 for a NULL pool. */
size_t hydb_pool_threads(const hydb_pool *p);
/* Run tasks 0..n-1 on every thread of p (a NULL pool runs them on the
 * caller) and return when all are done. Tasks are handed out in order,
 * one at a time, so that a thread slowed by other processes takes fewer. */
void hydb_pool_run(hydb_pool *p, size_t n, hydb_task_fn fn, void *ctx);

#endif
