/*
 * pool.c - the encoder's worker threads. See pool.h.
 *
 * Tasks are claimed with one compare-and-swap on a word holding the step
 * number and the next task index, so that the caller waits only for tasks,
 * never for a worker that has not yet shown up: on a loaded machine a
 * woken thread can wait milliseconds for a core, and a caption's forward
 * pass is a hundred steps of well under a millisecond. Between steps a
 * worker spins briefly, then sleeps on a condition variable.
 */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#include "encoder/pool.h"
#include "base/base.h"

/* Task index of a step whose tasks are still being set up. */
#define CLOSED UINT32_MAX
/* Pauses a worker or the caller spins before sleeping (~0.1 ms). */
#define SPIN 2000

struct hydb_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake, done_cv;
	pthread_t th[HYDB_POOL_MAX];
	size_t threads;          /* the caller and started workers */
	uint32_t step;           /* the caller's count of steps */
	int quit;
	/* The current step, read with acquire loads: a worker that reads a
	 * later step's values fails its claim on the earlier step. */
	uint64_t claim;          /* step << 32 | next task index */
	hydb_task_fn fn;
	void *ctx;
	uint32_t n;              /* tasks in the step */
	uint32_t done;           /* tasks finished */
};

struct worker_arg {
	hydb_pool *p;
	size_t id;
};

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* The next task of step, if any is left. */
static int claim(hydb_pool *p, uint32_t step, uint32_t n, uint32_t *task)
{
	uint64_t c = __atomic_load_n(&p->claim, __ATOMIC_ACQUIRE);
	while ((uint32_t)(c >> 32) == step && (uint32_t)c < n)
		if (__atomic_compare_exchange_n(&p->claim, &c, c + 1, 1,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			*task = (uint32_t)c;
			return 1;
		}
	return 0;
}

static void run_step(hydb_pool *p, uint32_t step, size_t id)
{
	hydb_task_fn fn = __atomic_load_n(&p->fn, __ATOMIC_ACQUIRE);
	void *ctx = __atomic_load_n(&p->ctx, __ATOMIC_ACQUIRE);
	uint32_t n = __atomic_load_n(&p->n, __ATOMIC_ACQUIRE), i;
	while (claim(p, step, n, &i)) {
		fn(ctx, i, id);
		if (__atomic_add_fetch(&p->done, 1, __ATOMIC_ACQ_REL) == n) {
			pthread_mutex_lock(&p->lock);
			pthread_cond_signal(&p->done_cv);
			pthread_mutex_unlock(&p->lock);
		}
	}
}

/* A step after seen open for claims: 1 and *step, or 0 to quit. */
static int open_step(hydb_pool *p, uint32_t seen, uint32_t *step)
{
	uint64_t c = __atomic_load_n(&p->claim, __ATOMIC_ACQUIRE);
	*step = (uint32_t)(c >> 32);
	return *step != seen && (uint32_t)c != CLOSED;
}

static int wait_step(hydb_pool *p, uint32_t seen, uint32_t *step)
{
	for (int i = 0; i < SPIN; i++) {
		if (__atomic_load_n(&p->quit, __ATOMIC_ACQUIRE))
			return 0;
		if (open_step(p, seen, step))
			return 1;
		relax();
	}
	int ok;
	pthread_mutex_lock(&p->lock);
	while (!(ok = open_step(p, seen, step)) && !p->quit)
		pthread_cond_wait(&p->wake, &p->lock);
	pthread_mutex_unlock(&p->lock);
	return ok && !p->quit;
}

static void *worker(void *arg)
{
	hydb_pool *p = ((struct worker_arg *)arg)->p;
	size_t id = ((struct worker_arg *)arg)->id;
	uint32_t step = 0;
	free(arg);
	while (wait_step(p, step, &step))
		run_step(p, step, id);
	return NULL;
}

static size_t cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		return (size_t)CPU_COUNT(&set);
	return 1;
}

static void start_workers(hydb_pool *p, size_t threads)
{
	while (p->threads < threads) {
		struct worker_arg *a = malloc(sizeof *a);
		if (!a)
			return;
		a->p = p;
		a->id = p->threads;
		if (pthread_create(&p->th[p->threads], NULL, worker, a) != 0) {
			free(a);
			return;
		}
		p->threads++;
	}
}

size_t hydb_pool_default_threads(void)
{
	size_t n = cpus();
	return n > HYDB_POOL_MAX ? HYDB_POOL_MAX : n;
}

int hydb_pool_new(hydb_pool **out, size_t threads)
{
	hydb_pool *p = calloc(1, sizeof *p);
	RETURN_ERROR_IF(!p, HYDB_ENOMEM, "encoder threads: out of memory");
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	if (threads == 0)
		threads = cpus();
	if (threads > HYDB_POOL_MAX)
		threads = HYDB_POOL_MAX;
	p->threads = 1;
	start_workers(p, threads);
	*out = p;
	return HYDB_OK;
}

void hydb_pool_free(hydb_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	__atomic_store_n(&p->quit, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 1; i < p->threads; i++)
		pthread_join(p->th[i], NULL);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done_cv);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

size_t hydb_pool_threads(const hydb_pool *p)
{
	return p ? p->threads : 1;
}

/* Close the new step to claims before its tasks change, so that a worker
 * still on the previous step cannot claim one of them; then open it. */
static void publish(hydb_pool *p, uint32_t n, hydb_task_fn fn, void *ctx)
{
	uint64_t s = (uint64_t)++p->step;
	if (p->step == 0) /* workers start having seen step 0 */
		s = ++p->step;
	__atomic_store_n(&p->claim, s << 32 | CLOSED, __ATOMIC_RELEASE);
	__atomic_store_n(&p->fn, fn, __ATOMIC_RELEASE);
	__atomic_store_n(&p->ctx, ctx, __ATOMIC_RELEASE);
	__atomic_store_n(&p->n, n, __ATOMIC_RELEASE);
	__atomic_store_n(&p->done, 0, __ATOMIC_RELEASE);
	pthread_mutex_lock(&p->lock);
	__atomic_store_n(&p->claim, s << 32, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

void hydb_pool_run(hydb_pool *p, size_t n, hydb_task_fn fn, void *ctx)
{
	if (!p || p->threads < 2 || n < 2 || n >= CLOSED) {
		for (size_t i = 0; i < n; i++)
			fn(ctx, i, 0);
		return;
	}
	publish(p, (uint32_t)n, fn, ctx);
	run_step(p, p->step, 0);
	for (int i = 0; i < SPIN; i++) {
		if (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) == n)
			return;
		relax();
	}
	pthread_mutex_lock(&p->lock);
	while (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) != n)
		pthread_cond_wait(&p->done_cv, &p->lock);
	pthread_mutex_unlock(&p->lock);
}
