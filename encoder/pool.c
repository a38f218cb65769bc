/*
 * pool.c - the encoder's worker threads. See pool.h.
 *
 * Workers sleep on a condition variable between steps: a step is at least
 * tens of microseconds of work, so a futex wake costs little, and unlike
 * spinning it leaves the cores to other processes while the caller does
 * serial work.
 */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "encoder/pool.h"
#include "internal.h"

struct hydb_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake, done;
	pthread_t th[HYDB_POOL_MAX];
	size_t threads;          /* the caller and started workers */
	unsigned long step;      /* bumped for every hydb_pool_run */
	int quit;
	size_t busy;             /* workers still in the current step */
	/* the current step */
	hydb_task_fn fn;
	void *ctx;
	size_t n, next;          /* tasks, next one to hand out (atomic) */
};

struct worker_arg {
	hydb_pool *p;
	size_t id;
};

static void take_tasks(hydb_pool *p, size_t id)
{
	size_t i;
	while ((i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED)) < p->n)
		p->fn(p->ctx, i, id);
}

static void *worker(void *arg)
{
	hydb_pool *p = ((struct worker_arg *)arg)->p;
	size_t id = ((struct worker_arg *)arg)->id;
	unsigned long seen = 0;
	free(arg);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->step == seen && !p->quit)
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->quit)
			break;
		seen = p->step;
		pthread_mutex_unlock(&p->lock);
		take_tasks(p, id);
		pthread_mutex_lock(&p->lock);
		if (--p->busy == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
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

int hydb_pool_new(hydb_pool **out, size_t threads)
{
	hydb_pool *p = calloc(1, sizeof *p);
	RETURN_ERROR_IF(!p, HYDB_ENOMEM, "encoder threads: out of memory");
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
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
	p->quit = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 1; i < p->threads; i++)
		pthread_join(p->th[i], NULL);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

size_t hydb_pool_threads(const hydb_pool *p)
{
	return p ? p->threads : 1;
}

void hydb_pool_run(hydb_pool *p, size_t n, hydb_task_fn fn, void *ctx)
{
	if (!p || p->threads < 2 || n < 2) {
		for (size_t i = 0; i < n; i++)
			fn(ctx, i, 0);
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->fn = fn;
	p->ctx = ctx;
	p->n = n;
	p->next = 0;
	p->busy = p->threads - 1;
	p->step++;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	take_tasks(p, 0);
	pthread_mutex_lock(&p->lock);
	while (p->busy)
		pthread_cond_wait(&p->done, &p->lock);
	pthread_mutex_unlock(&p->lock);
}
