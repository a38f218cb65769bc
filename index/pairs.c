/*
 * pairs.c - keys between graph nodes remembered while inserts link.
 *
 * Re-selecting a full list compares its members pairwise, and the lists of
 * nearby nodes share most members, so the same pairs come back again and
 * again over a batch (most of the distance work of linking). A
 * direct-mapped table keeps the last key seen for each pair; a collision
 * simply replaces the entry.
 */
#include "index/hnsw_impl.h"

#include <stdlib.h>
#include <string.h>

#define PAIR_BITS 20

struct pair_entry {
	uint64_t pair; /* lower slot << 32 | higher slot; all ones: empty */
	double key;
};

struct hnsw_pairs {
	struct pair_entry e[1u << PAIR_BITS];
};

int hnsw_pairs_init(struct hnsw_pairs **out)
{
	struct hnsw_pairs *p = malloc(sizeof *p);
	RETURN_ERROR_IF(!p, HYDB_ENOMEM, "index: no memory for the pair cache");
	memset(p->e, 0xff, sizeof p->e);
	*out = p;
	return 0;
}

void hnsw_pairs_free(struct hnsw_pairs *p)
{
	free(p);
}

static struct pair_entry *entry(struct hnsw_pairs *p, uint32_t a, uint32_t b,
				uint64_t *pair)
{
	*pair = a < b ? (uint64_t)a << 32 | b : (uint64_t)b << 32 | a;
	return &p->e[(*pair * 0x9e3779b97f4a7c15ull) >> (64 - PAIR_BITS)];
}

void hnsw_pairs_prefetch(struct hnsw_ctx *cx, uint32_t a, uint32_t b)
{
	uint64_t pair;
	if (cx->pairs)
		__builtin_prefetch(entry(cx->pairs, a, b, &pair));
}

int hnsw_pair_key(struct hnsw_ctx *cx, uint32_t a, hydb_kquery *qa,
		  float *abuf, int *ready, uint32_t b, double *key)
{
	uint64_t pair;
	struct pair_entry *e = cx->pairs ? entry(cx->pairs, a, b, &pair) : NULL;
	if (e && e->pair == pair) {
		*key = e->key;
		return 0;
	}
	if (!*ready) {
		const void *row;
		const float *v;
		int half;
		/* The float32 vector is cold: 3 KB from memory for a norm. */
		FORWARD_IF_ERROR(hnsw_walk_row(cx, a, &row, &half));
		if (half) {
			hydb_f16_to_f32_n(abuf, row, cx->ix->dim);
			v = abuf;
		} else {
			v = row;
		}
		hydb_kquery_init(qa, v, cx->ix->dim, cx->ix->c);
		*ready = 1;
	}
	FORWARD_IF_ERROR(hnsw_walk_key(cx, qa, b, key));
	if (e) {
		e->pair = pair;
		e->key = *key;
	}
	return 0;
}
