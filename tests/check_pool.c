/*
 * check_pool.c - the encoder's worker threads (encoder/pool.c).
 *
 * Tasks are claimed lock-free and a worker may still be on an old step
 * when the next one opens, so these tests run many short steps of varying
 * size back to back and check that every task of every step ran exactly
 * once and before hydb_pool_run returned.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "encoder/pool.h"
#include "base/base.h"

#define MAX_TASKS 64

struct counts {
	int runs[MAX_TASKS];
	size_t threads;
	int bad_thread;
};

static void count_task(void *ctx, size_t i, size_t thread)
{
	struct counts *c = ctx;
	__atomic_add_fetch(&c->runs[i], 1, __ATOMIC_RELAXED);
	if (thread >= c->threads)
		c->bad_thread = 1;
}

static void run_steps(size_t threads, int steps)
{
	hydb_pool *p;
	ck_assert_int_eq(hydb_pool_new(&p, threads), 0);
	size_t t = hydb_pool_threads(p);
	ck_assert(t >= 1 && t <= (threads ? threads : HYDB_POOL_MAX));
	for (int s = 0; s < steps; s++) {
		/* A fresh struct per step on the stack, as the forward uses
		 * them: a stale worker touching an old one would show. */
		struct counts c = {.threads = t};
		size_t n = (size_t)(s * 7 % MAX_TASKS);
		hydb_pool_run(p, n, count_task, &c);
		for (size_t i = 0; i < MAX_TASKS; i++)
			ck_assert_msg(c.runs[i] == (i < n),
				      "step %d task %zu of %zu ran %d times", s,
				      i, n, c.runs[i]);
		ck_assert(!c.bad_thread);
	}
	hydb_pool_free(p);
}

START_TEST(every_task_once_two_threads)
{
	run_steps(2, 20000);
}
END_TEST

START_TEST(every_task_once_more_threads_than_cpus)
{
	run_steps(5, 5000);
}
END_TEST

START_TEST(one_thread_runs_on_caller)
{
	hydb_pool *p;
	ck_assert_int_eq(hydb_pool_new(&p, 1), 0);
	ck_assert_uint_eq(hydb_pool_threads(p), 1);
	struct counts c = {.threads = 1};
	hydb_pool_run(p, 10, count_task, &c);
	for (size_t i = 0; i < 10; i++)
		ck_assert_int_eq(c.runs[i], 1);
	hydb_pool_free(p);
	ck_assert_uint_eq(hydb_pool_threads(NULL), 1);
	struct counts d = {.threads = 1};
	hydb_pool_run(NULL, 3, count_task, &d);
	ck_assert_int_eq(d.runs[0] + d.runs[1] + d.runs[2], 3);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("pool");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, every_task_once_two_threads);
	tcase_add_test(tc, every_task_once_more_threads_than_cpus);
	tcase_add_test(tc, one_thread_runs_on_caller);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
