/*
 * recall_data.h - the recall bench's data families (HySAC-like, wide-radius,
 * tree, isotropic, WordNet) shared by the bench and its peers
 * (bench/gen_hysac.c).
 *
 * Files in one directory, all little-endian, row-major:
 *   base.f32   N x D space components      query.f32  NQ x D
 *   attr.bin   N x {float radius, u8 modality, u8 label, u16 pad}
 *   gt.i32     NQ x 100 exact neighbour rows (float64 keys)
 *   sel.txt    one line per filter: selectivity and radius bound
 *   gtf.i32    for each filter, NQ x 10 exact filtered neighbours
 *   info.txt   N D NQ c
 */
#ifndef HYDB_BENCH_RECALL_DATA_H
#define HYDB_BENCH_RECALL_DATA_H

#include <stddef.h>
#include <stdint.h>

#define RD_GT_K 100
#define RD_GTF_K 10
#define RD_NSEL 5

struct rd_attr {
	float radius;
	uint8_t modality, label;
	uint16_t pad;
};

struct rd_set {
	size_t n, d, nq;
	double c;
	float *base, *query;
	struct rd_attr *attr;
	int32_t *gt;  /* nq x RD_GT_K */
	int32_t *gtf; /* RD_NSEL x nq x RD_GTF_K */
	double sel[RD_NSEL], bound[RD_NSEL];
};

/* Generate (or reuse) the set in dir; returns 0 or -1 with errno-style
 * message on stderr. */
int rd_make(struct rd_set *s, const char *dir, size_t n, size_t d, size_t nq,
	    double c);
/* The same for a family: "hysac" (rd_make's), "wide" (HySAC's clustered
 * directions, radii uniform in 0.05..10), "tree" (a random tree, radius
 * growing with depth; held-out nodes as queries), "iso" (wrapped normal at
 * the origin) or "wordnet" (rows of input, float32 space components; held-out
 * rows as queries; n = 0 takes all but nq). */
int rd_make_family(struct rd_set *s, const char *dir, const char *family,
		   const char *input, size_t n, size_t d, size_t nq, double c);
int rd_load(struct rd_set *s, const char *dir);
void rd_free(struct rd_set *s);
/* Mean over queries of |rows[q][0..at) ∩ truth[q][0..at)| / (valid truth
 * entries); rows has k columns, truth gk, -1 marks an empty entry. */
double rd_recall(const int32_t *rows, size_t k, const int32_t *gt, size_t gk,
		 size_t nq, size_t at);

#endif
