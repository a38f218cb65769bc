/*
 * bf16.c - the bfloat16 GEMM engine on oneDNN (see bf16.h).
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/bf16.h"
#include "base/base.h"

#ifdef HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <omp.h>
#endif

int hydb_bf16_test_no_cpu;
int hydb_bf16_test_generic;
int hydb_bf16_timing;
double hydb_bf16_gemm_seconds;
double hydb_bf16_attn_gemm_seconds;

/* ---- rounding ----------------------------------------------------------- */

#pragma GCC diagnostic ignored "-Wpsabi"
typedef float bf16_f16x __attribute__((vector_size(64)));

/* Round to nearest even on the bits: add 0x7fff plus the lowest kept bit,
 * keep the top half. NaNs keep a set quiet bit instead (the add could
 * carry them into infinity). hydb_bf16_round_bits is the same on 16
 * lanes. */
static inline uint16_t round_one(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40);
	return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void hydb_bf16_round(uint16_t *dst, const float *src, size_t n)
{
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		hydb_bf16_bits16 u;
		memcpy(&u, src + i, sizeof u);
		hydb_bf16_round_bits(&u);
		hydb_bf16_store16(dst + i, &u);
	}
	for (; i < n; i++)
		dst[i] = round_one(src[i]);
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void hydb_bf16_round_scaled(uint16_t *dst, const float *src, float s,
			    size_t n)
{
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		bf16_f16x v;
		hydb_bf16_bits16 u;
		memcpy(&v, src + i, sizeof v);
		v *= s;
		memcpy(&u, &v, sizeof u);
		hydb_bf16_round_bits(&u);
		hydb_bf16_store16(dst + i, &u);
	}
	for (; i < n; i++)
		dst[i] = round_one(src[i] * s);
}

#ifndef HAVE_DNNL

int hydb_bf16_check(void)
{
	return hydb_error_set(HYDB_EINVAL, "precision bf16: this build of hydb "
			      "has no bfloat16 engine (built without oneDNN: "
			      "install libdnnl-dev and rebuild)");
}

const char *hydb_bf16_isa(void)
{
	return "none";
}

int hydb_bf16_new(hydb_bf16 **out)
{
	*out = NULL;
	return hydb_bf16_check();
}

void hydb_bf16_free(hydb_bf16 *e)
{
}

int hydb_bf16_pack(hydb_bf16 *e, const float *w, size_t out, size_t in,
		   size_t slices)
{
	return hydb_bf16_check();
}

size_t hydb_bf16_packed_bytes(const hydb_bf16 *e)
{
	return 0;
}

int hydb_bf16_run_new(hydb_bf16_run **out, hydb_bf16 *e, size_t lanes)
{
	*out = NULL;
	return hydb_bf16_check();
}

void hydb_bf16_run_free(hydb_bf16_run *r)
{
}

void hydb_bf16_run_fresh_memories(hydb_bf16_run *r, int fresh)
{
}

int hydb_bf16_run_status(const hydb_bf16_run *r)
{
	return hydb_bf16_check();
}

void hydb_bf16_run_fail(hydb_bf16_run *r, int rc)
{
}

size_t hydb_bf16_slices(const hydb_bf16_run *r, const float *w)
{
	return 0;
}

void hydb_bf16_matmul(hydb_bf16_run *r, size_t lane, float *c, float alpha,
		      const uint16_t *a, const uint16_t *b, size_t m, size_t k,
		      size_t n, int b_trans, size_t ldb)
{
}

void hydb_bf16_linear(hydb_bf16_run *r, size_t lane, const hydb_bf16_op *op)
{
}

#else /* HAVE_DNNL */

/* Both instruction sets have the bf16 dot products oneDNN's bf16 kernels
 * need; dnnl_cpu_isa_avx512_core_amx includes the bits of _bf16. */
static int cpu_has_bf16(void)
{
	unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
	unsigned need = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
	return !hydb_bf16_test_no_cpu && (isa & need) == need;
}

int hydb_bf16_check(void)
{
	RETURN_ERROR_IF(!cpu_has_bf16(), HYDB_EINVAL, "precision bf16: this "
			"CPU has neither AVX512_BF16 nor AMX; use precision "
			"f32");
	return HYDB_OK;
}

const char *hydb_bf16_isa(void)
{
	switch (dnnl_get_effective_cpu_isa()) {
	case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
	case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
	case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
	case dnnl_cpu_isa_avx512_core: return "avx512_core";
	case dnnl_cpu_isa_avx2: return "avx2";
	default: return "other";
	}
}

/* oneDNN runs single-threaded on whichever thread calls it: the encoder's
 * pool hands out blocks of each matmul as it does OpenBLAS's, so that a
 * core taken by another process slows only the blocks it has, where a
 * second OpenMP team would stall every matmul at its barrier (3x slower on
 * a shared 2-core machine, bench/bench_encoder). A primitive keeps the
 * thread count it was made with, so making and running both happen here.
 * The calling thread's own OpenMP setting is restored after. */
static int solo_begin(void)
{
	int prev = omp_get_max_threads();
	if (prev != 1)
		omp_set_num_threads(1);
	return prev;
}

static void solo_end(int prev)
{
	if (prev != 1)
		omp_set_num_threads(prev);
}

/* Columns [c0, c1) of a weight, packed: rows c0..c1 of W [out, in]. */
struct slice {
	size_t c0, c1;
	void *data;
	dnnl_memory_desc_t md;
};

/* A weight in the packed layout, in column slices. */
struct packed {
	const float *w;      /* the float32 weight it was made from (key) */
	size_t in, out, nsl;
	struct slice sl[HYDB_BF16_MAX_SLICES];
};

enum {
	F_BIAS = 1,
	F_GELU = 2,
	F_ACC = 4,
	F_YBF16 = 8,
};

/* A matmul for one block shape and post-op set. */
struct prim {
	const struct slice *sl;  /* NULL for a plain matmul */
	size_t n, ldy;
	int flags;
	float alpha;            /* plain matmuls' scale */
	size_t ldb;             /* plain matmuls' b row stride */
	dnnl_primitive_t p;
	dnnl_memory_desc_t src, wei, bias, dst, pad;
	size_t pad_size;
};

/* More shapes than any use of the encoder makes (a few per image batch
 * size and per caption length): past this, primitives are made per call. */
#define PRIM_CACHE_MAX 4096
/* The row count the packed layout is chosen for; oneDNN's bf16 kernels
 * block the weights by their own dimensions only, so the layout serves
 * every row count (packed_layout checks one row too). */
#define PACK_ROWS 256
/* Slices narrower than this would starve the kernels' 64-column tiles. */
#define SLICE_MIN_COLS 128

struct hydb_bf16 {
	dnnl_engine_t eng;
	struct packed *pk;   /* sorted by w */
	size_t npk, cap_pk, bytes;
	struct prim *pr;
	size_t npr, cap_pr;
	pthread_mutex_t lock;
};

/* Memory objects of a lane's plain matmuls (src, weights, dst,
 * scratchpad), made once per primitive and pointed at each call's data:
 * making four each call was ~8% of an attention head's product. */
#define LANE_MEMS 4

struct lane_mems {
	dnnl_primitive_t p;
	dnnl_memory_t m[4];
};

/* A lane: one thread's stream and scratchpad. */
struct lane {
	dnnl_stream_t s;
	void *pad, *tmp;
	size_t pad_size, tmp_size;
	int rc;
	struct lane_mems mc[LANE_MEMS];
	unsigned mc_next;
};

struct hydb_bf16_run {
	hydb_bf16 *e;
	size_t lanes;
	int fresh;      /* hydb_bf16_run_fresh_memories */
	struct lane lane[];
};

static int dnnl_fail(dnnl_status_t st, const char *what)
{
	return hydb_error_set(st == dnnl_out_of_memory ? HYDB_ENOMEM :
			      HYDB_EINVAL, "oneDNN %s: %s", what,
			      dnnl_status2str(st));
}

#define DNNL_TRY(call, what)                                                \
	do {                                                                \
		dnnl_status_t st_ = (call);                                 \
		if (st_ != dnnl_success)                                    \
			return dnnl_fail(st_, what);                        \
	} while (0)

int hydb_bf16_new(hydb_bf16 **out)
{
	*out = NULL;
	FORWARD_IF_ERROR(hydb_bf16_check());
	hydb_bf16 *e = calloc(1, sizeof *e);
	RETURN_ERROR_IF(!e, HYDB_ENOMEM, "bf16 engine: out of memory");
	pthread_mutex_init(&e->lock, NULL);
	dnnl_status_t st = dnnl_engine_create(&e->eng, dnnl_cpu, 0);
	if (st != dnnl_success) {
		hydb_bf16_free(e);
		return dnnl_fail(st, "engine");
	}
	*out = e;
	return HYDB_OK;
}

void hydb_bf16_free(hydb_bf16 *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->npr; i++)
		dnnl_primitive_destroy(e->pr[i].p);
	for (size_t i = 0; i < e->npk; i++)
		for (size_t j = 0; j < e->pk[i].nsl; j++)
			free(e->pk[i].sl[j].data);
	free(e->pr);
	free(e->pk);
	if (e->eng)
		dnnl_engine_destroy(e->eng);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

size_t hydb_bf16_packed_bytes(const hydb_bf16 *e)
{
	return e ? e->bytes : 0;
}

static void md_2d(dnnl_memory_desc_t *md, size_t r, size_t c, size_t ld,
		  dnnl_data_type_t t)
{
	dnnl_dims_t d = {(dnnl_dim_t)r, (dnnl_dim_t)c};
	dnnl_dims_t s = {(dnnl_dim_t)ld, 1};
	dnnl_memory_desc_init_by_strides(md, 2, d, t, s);
}

/* The matmul's description for n rows of out columns, y rows ldy apart;
 * wei is the packed layout, or format "any" to ask oneDNN for it. */
static int matmul_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng,
		     const dnnl_memory_desc_t *wei, size_t n, size_t in,
		     size_t out, size_t ldy, int flags, float alpha,
		     struct prim *shape)
{
	dnnl_memory_desc_t src, bias, dst;
	dnnl_matmul_desc_t d;
	dnnl_primitive_attr_t attr;
	dnnl_post_ops_t po;
	md_2d(&src, n, in, in, dnnl_bf16);
	md_2d(&bias, 1, out, out, dnnl_f32);
	md_2d(&dst, n, out, ldy, flags & F_YBF16 ? dnnl_bf16 : dnnl_f32);
	DNNL_TRY(dnnl_matmul_desc_init(&d, &src, wei, flags & F_BIAS ? &bias :
				       NULL, &dst), "matmul");
	DNNL_TRY(dnnl_primitive_attr_create(&attr), "attributes");
	dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(
		attr, dnnl_scratchpad_mode_user);
	if (st == dnnl_success && alpha != 1.0f)
		st = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha);
	if (st == dnnl_success && (st = dnnl_post_ops_create(&po)) ==
	    dnnl_success) {
		/* quick_gelu(x) = x * sigmoid(1.702 x) is oneDNN's swish. */
		if (flags & F_GELU)
			st = dnnl_post_ops_append_eltwise(po, 1.0f,
							  dnnl_eltwise_swish,
							  1.702f, 0.0f);
		if (st == dnnl_success && (flags & F_ACC))
			st = dnnl_post_ops_append_sum(po, 1.0f);
		if (st == dnnl_success)
			st = dnnl_primitive_attr_set_post_ops(attr, po);
		dnnl_post_ops_destroy(po);
	}
	if (st == dnnl_success)
		st = dnnl_primitive_desc_create(pd, &d, attr, eng, NULL);
	dnnl_primitive_attr_destroy(attr);
	if (st != dnnl_success)
		return hydb_error_set(st == dnnl_out_of_memory ? HYDB_ENOMEM :
				      HYDB_EINVAL, "oneDNN bf16 matmul %zu x "
				      "%zu x %zu: %s", n, in, out,
				      dnnl_status2str(st));
	if (shape) {
		shape->src = src;
		shape->bias = bias;
		shape->dst = dst;
	}
	return HYDB_OK;
}

/* The layout oneDNN's kernel wants for an in x cols weight. */
static int packed_layout(hydb_bf16 *e, dnnl_memory_desc_t *md, size_t in,
			 size_t cols)
{
	for (size_t i = 0; i < e->npk; i++)
		for (size_t j = 0; j < e->pk[i].nsl; j++)
			if (e->pk[i].in == in &&
			    e->pk[i].sl[j].c1 - e->pk[i].sl[j].c0 == cols) {
				*md = e->pk[i].sl[j].md;
				return HYDB_OK;
			}
	dnnl_memory_desc_t any;
	dnnl_primitive_desc_t pd;
	dnnl_dims_t d = {(dnnl_dim_t)in, (dnnl_dim_t)cols};
	DNNL_TRY(dnnl_memory_desc_init_by_tag(&any, 2, d, dnnl_bf16,
					      dnnl_format_tag_any), "weights");
	FORWARD_IF_ERROR(matmul_pd(&pd, e->eng, &any, PACK_ROWS, in, cols,
				   cols, F_BIAS, 1.0f, NULL));
	*md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	dnnl_primitive_desc_destroy(pd);
	/* A layout that one row would not accept would fail captions later;
	 * find out now. */
	FORWARD_IF_ERROR(matmul_pd(&pd, e->eng, md, 1, in, cols, cols, F_BIAS,
				   1.0f, NULL));
	dnnl_primitive_desc_destroy(pd);
	return HYDB_OK;
}

/* Run one reorder from src (described by smd) into dst (dmd). */
static int reorder(hydb_bf16 *e, const dnnl_memory_desc_t *smd,
		   const void *src, const dnnl_memory_desc_t *dmd, void *dst)
{
	dnnl_primitive_desc_t pd;
	dnnl_primitive_t p = NULL;
	dnnl_memory_t ms = NULL, md = NULL;
	dnnl_stream_t s = NULL;
	DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, smd, e->eng, dmd,
						    e->eng, NULL), "reorder");
	dnnl_status_t st = dnnl_primitive_create(&p, pd);
	dnnl_primitive_desc_destroy(pd);
	if (st == dnnl_success)
		st = dnnl_memory_create(&ms, smd, e->eng, (void *)src);
	if (st == dnnl_success)
		st = dnnl_memory_create(&md, dmd, e->eng, dst);
	if (st == dnnl_success)
		st = dnnl_stream_create(&s, e->eng, dnnl_stream_default_flags);
	if (st == dnnl_success) {
		dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms},
					   {DNNL_ARG_TO, md}};
		st = dnnl_primitive_execute(p, s, 2, args);
		if (st == dnnl_success)
			st = dnnl_stream_wait(s);
	}
	if (s)
		dnnl_stream_destroy(s);
	dnnl_memory_destroy(ms);
	dnnl_memory_destroy(md);
	dnnl_primitive_destroy(p);
	return st == dnnl_success ? HYDB_OK : dnnl_fail(st, "weight reorder");
}

/* Keep e->pk sorted by w so that lookups can bisect. */
static int insert_packed(hydb_bf16 *e, const struct packed *p)
{
	if (e->npk == e->cap_pk) {
		size_t cap = e->cap_pk ? 2 * e->cap_pk : 64;
		struct packed *n = realloc(e->pk, cap * sizeof *n);
		RETURN_ERROR_IF(!n, HYDB_ENOMEM, "bf16 engine: out of memory");
		e->pk = n;
		e->cap_pk = cap;
	}
	size_t i = e->npk;
	while (i > 0 && (uintptr_t)e->pk[i - 1].w > (uintptr_t)p->w)
		i--;
	memmove(e->pk + i + 1, e->pk + i, (e->npk - i) * sizeof *e->pk);
	e->pk[i] = *p;
	e->npk++;
	return HYDB_OK;
}

static const struct packed *find_packed(const hydb_bf16 *e, const float *w)
{
	size_t lo = 0, hi = e->npk;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((uintptr_t)e->pk[mid].w < (uintptr_t)w)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < e->npk && e->pk[lo].w == w ? &e->pk[lo] : NULL;
}

/* Slice edges on multiples of 64 columns, the kernels' tile width. */
static size_t slice_edge(size_t out, size_t i, size_t n)
{
	return i >= n ? out : (out * i / n) & ~(size_t)63;
}

static int pack_slice(hydb_bf16 *e, struct slice *sl, const float *w,
		      size_t in)
{
	size_t cols = sl->c1 - sl->c0;
	FORWARD_IF_ERROR(packed_layout(e, &sl->md, in, cols));
	size_t bytes = dnnl_memory_desc_get_size(&sl->md);
	sl->data = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	RETURN_ERROR_IF(!sl->data, HYDB_ENOMEM, "bf16 engine: cannot "
			"allocate %zu bytes of packed weights", bytes);
	/* Rows c0..c1 of W [out, in] are the in x cols weights of the slice,
	 * with strides (1, in). */
	dnnl_memory_desc_t smd;
	dnnl_dims_t d = {(dnnl_dim_t)in, (dnnl_dim_t)cols};
	dnnl_dims_t s = {1, (dnnl_dim_t)in};
	DNNL_TRY(dnnl_memory_desc_init_by_strides(&smd, 2, d, dnnl_f32, s),
		 "weights");
	FORWARD_IF_ERROR(reorder(e, &smd, w + sl->c0 * in, &sl->md, sl->data));
	e->bytes += bytes;
	return HYDB_OK;
}

static int pack(hydb_bf16 *e, const float *w, size_t out, size_t in,
		size_t slices)
{
	struct packed p = {w, in, out, 0, {{0}}};
	slices = slices > HYDB_BF16_MAX_SLICES ? HYDB_BF16_MAX_SLICES : slices;
	p.nsl = out / SLICE_MIN_COLS < slices ? out / SLICE_MIN_COLS : slices;
	p.nsl = p.nsl ? p.nsl : 1;
	int rc = HYDB_OK;
	for (size_t j = 0; j < p.nsl && rc == 0; j++) {
		p.sl[j].c0 = slice_edge(out, j, p.nsl);
		p.sl[j].c1 = slice_edge(out, j + 1, p.nsl);
		rc = pack_slice(e, &p.sl[j], w, in);
	}
	if (rc == 0)
		rc = insert_packed(e, &p);
	if (rc < 0)
		for (size_t j = 0; j < p.nsl; j++)
			free(p.sl[j].data);
	return rc;
}

int hydb_bf16_pack(hydb_bf16 *e, const float *w, size_t out, size_t in,
		   size_t slices)
{
	if (find_packed(e, w))
		return HYDB_OK;
	int prev = solo_begin();
	int rc = pack(e, w, out, in, slices);
	solo_end(prev);
	return rc;
}

size_t hydb_bf16_slices(const hydb_bf16_run *r, const float *w)
{
	const struct packed *pk = find_packed(r->e, w);
	return pk ? pk->nsl : 0;
}

/* ---- running ------------------------------------------------------------ */

int hydb_bf16_run_new(hydb_bf16_run **out, hydb_bf16 *e, size_t lanes)
{
	*out = NULL;
	lanes = lanes ? lanes : 1;
	hydb_bf16_run *r = calloc(1, sizeof *r + lanes * sizeof r->lane[0]);
	RETURN_ERROR_IF(!r, HYDB_ENOMEM, "bf16 engine: out of memory");
	r->e = e;
	for (; r->lanes < lanes; r->lanes++) {
		dnnl_status_t st = dnnl_stream_create(
			&r->lane[r->lanes].s, e->eng, dnnl_stream_default_flags);
		if (st != dnnl_success) {
			hydb_bf16_run_free(r);
			return dnnl_fail(st, "stream");
		}
	}
	*out = r;
	return HYDB_OK;
}

void hydb_bf16_run_free(hydb_bf16_run *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->lanes; i++) {
		for (size_t j = 0; j < LANE_MEMS; j++)
			for (size_t k = 0; k < 4; k++)
				if (r->lane[i].mc[j].m[k])
					dnnl_memory_destroy(r->lane[i].mc[j].m[k]);
		dnnl_stream_destroy(r->lane[i].s);
		free(r->lane[i].pad);
		free(r->lane[i].tmp);
	}
	free(r);
}

int hydb_bf16_run_status(const hydb_bf16_run *r)
{
	for (size_t i = 0; i < r->lanes; i++)
		if (r->lane[i].rc < 0)
			return r->lane[i].rc;
	return HYDB_OK;
}

void hydb_bf16_run_fail(hydb_bf16_run *r, int rc)
{
	if (r->lane[0].rc == 0)
		r->lane[0].rc = rc;
}

static int prim_make(struct prim *pr, hydb_bf16 *e, const struct packed *pk,
		     const struct slice *sl, size_t n, size_t ldy, int flags)
{
	dnnl_primitive_desc_t pd;
	memset(pr, 0, sizeof *pr);
	pr->sl = sl;
	pr->n = n;
	pr->ldy = ldy;
	pr->flags = flags;
	pr->wei = sl->md;
	FORWARD_IF_ERROR(matmul_pd(&pd, e->eng, &sl->md, n, pk->in,
				   sl->c1 - sl->c0, ldy, flags, 1.0f, pr));
	pr->pad = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md,
						0);
	pr->pad_size = dnnl_memory_desc_get_size(&pr->pad);
	dnnl_status_t st = dnnl_primitive_create(&pr->p, pd);
	dnnl_primitive_desc_destroy(pd);
	return st == dnnl_success ? HYDB_OK : dnnl_fail(st, "matmul");
}

static void prim_keep(hydb_bf16 *e, const struct prim *p, int *own)
{
	if (e->npr == e->cap_pr && e->npr < PRIM_CACHE_MAX) {
		size_t cap = e->cap_pr ? 2 * e->cap_pr : 64;
		struct prim *n = realloc(e->pr, cap * sizeof *n);
		if (n) {
			e->pr = n;
			e->cap_pr = cap;
		}
	}
	if (e->npr < e->cap_pr)
		e->pr[e->npr++] = *p;
	else
		*own = 1;
}

/* The cached primitive for the shape, made on first use; *own is set when
 * the cache was full and the caller must destroy it. */
static int prim_get(struct prim *out, int *own, hydb_bf16 *e,
		    const struct packed *pk, const struct slice *sl, size_t n,
		    size_t ldy, int flags)
{
	*own = 0;
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->npr; i++)
		if (e->pr[i].sl == sl && e->pr[i].n == n &&
		    e->pr[i].ldy == ldy && e->pr[i].flags == flags) {
			*out = e->pr[i];
			pthread_mutex_unlock(&e->lock);
			return HYDB_OK;
		}
	int rc = prim_make(out, e, pk, sl, n, ldy, flags);
	if (rc == 0)
		prim_keep(e, out, own);
	pthread_mutex_unlock(&e->lock);
	return rc;
}

/* *buf holds at least bytes (its contents are not kept). */
static int reserve(void **buf, size_t *size, size_t bytes)
{
	if (bytes <= *size)
		return HYDB_OK;
	void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	RETURN_ERROR_IF(!p, HYDB_ENOMEM, "bf16 engine: cannot allocate %zu "
			"bytes of scratch", bytes);
	free(*buf);
	*buf = p;
	*size = bytes;
	return HYDB_OK;
}

/* Copy rows of cols elements of el bytes between a dense block and a
 * matrix whose rows are ld elements apart. */
static void copy_block(void *dst, size_t ldd, const void *src, size_t lds,
		       size_t rows, size_t cols, size_t el)
{
	for (size_t r = 0; r < rows; r++)
		memcpy((char *)dst + r * ldd * el, (const char *)src + r * lds * el,
		       cols * el);
}

static int execute(hydb_bf16 *e, const struct lane *l,
		   const struct prim *pr, const void *x, void *w, void *y,
		   const float *bias)
{
	dnnl_memory_t m[5] = {0};
	int args[5] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST,
		       DNNL_ARG_BIAS, DNNL_ARG_SCRATCHPAD};
	const dnnl_memory_desc_t *mds[5] = {&pr->src, &pr->wei, &pr->dst,
					    &pr->bias, &pr->pad};
	void *ptrs[5] = {(void *)x, w, y, (void *)bias, l->pad};
	dnnl_exec_arg_t ea[5];
	int n = 0;
	dnnl_status_t st = dnnl_success;
	for (int i = 0; i < 5 && st == dnnl_success; i++) {
		if ((i == 3 && !(pr->flags & F_BIAS)) ||
		    (i == 4 && pr->pad_size == 0))
			continue;
		st = dnnl_memory_create(&m[i], mds[i], e->eng, ptrs[i]);
		ea[n].arg = args[i];
		ea[n++].memory = m[i];
	}
	if (st == dnnl_success)
		st = dnnl_primitive_execute(pr->p, l->s, n, ea);
	if (st == dnnl_success)
		st = dnnl_stream_wait(l->s);
	for (int i = 0; i < 5; i++)
		if (m[i])
			dnnl_memory_destroy(m[i]);
	return st == dnnl_success ? HYDB_OK : dnnl_fail(st, "matmul");
}

/* oneDNN 2.6's fast kernels want a dense output: a slice's columns are
 * made in the lane's block and copied into y (and out of it first when
 * accumulating). Slices are for the few rows of a caption, where the copy
 * is small next to reading the weights. */
static int run_slice(hydb_bf16 *e, struct lane *l, const struct prim *pr,
		     const hydb_bf16_op *op)
{
	const struct slice *sl = pr->sl;
	size_t el = op->y_bf16 ? 2 : 4, cols = sl->c1 - sl->c0;
	char *y = (char *)op->y + sl->c0 * el;
	const float *bias = op->bias ? op->bias + sl->c0 : NULL;
	if (cols == op->out)
		return execute(e, l, pr, op->x, sl->data, y, bias);
	FORWARD_IF_ERROR(reserve(&l->tmp, &l->tmp_size, op->n * cols * el));
	if (op->accumulate)
		copy_block(l->tmp, cols, y, op->out, op->n, cols, el);
	FORWARD_IF_ERROR(execute(e, l, pr, op->x, sl->data, l->tmp, bias));
	copy_block(y, op->out, l->tmp, cols, op->n, cols, el);
	return HYDB_OK;
}

static int linear(hydb_bf16_run *r, struct lane *l, const hydb_bf16_op *op)
{
	const struct packed *pk = find_packed(r->e, op->w);
	RETURN_ERROR_IF(!pk || pk->in != op->in || pk->out != op->out ||
			op->slice >= pk->nsl, HYDB_EINVAL, "bf16 engine: "
			"weight %zu x %zu (slice %zu) not packed", op->out,
			op->in, op->slice);
	const struct slice *sl = &pk->sl[op->slice];
	int flags = (op->bias ? F_BIAS : 0) | (op->gelu ? F_GELU : 0) |
		    (op->accumulate ? F_ACC : 0) | (op->y_bf16 ? F_YBF16 : 0);
	struct prim pr;
	int own;
	FORWARD_IF_ERROR(prim_get(&pr, &own, r->e, pk, sl, op->n,
				  sl->c1 - sl->c0, flags));
	int rc = reserve(&l->pad, &l->pad_size, pr.pad_size);
	if (rc == 0)
		rc = run_slice(r->e, l, &pr, op);
	if (own)
		dnnl_primitive_destroy(pr.p);
	return rc;
}

/* A plain matmul's shape: m rows in n, n in ldy, k and b_trans in the
 * flags (above the F_ bits, which execute reads), b's row stride in ldb. */
static struct prim plain_key(size_t m, size_t k, size_t n, int b_trans,
			     size_t ldb, float alpha)
{
	struct prim key = {.n = m, .ldy = n, .alpha = alpha, .ldb = ldb,
			   .flags = (int)((k << 5) | (b_trans ? 16 : 0))};
	return key;
}

/* Make the primitive of key (k x n operand b, rows ldb apart). */
static int plain_make(struct prim *out, hydb_bf16 *e, size_t k, int b_trans)
{
	dnnl_memory_desc_t wei;
	dnnl_primitive_desc_t pd;
	size_t m = out->n, n = out->ldy, ldb = out->ldb;
	dnnl_dims_t d = {(dnnl_dim_t)k, (dnnl_dim_t)n};
	dnnl_dims_t st = {b_trans ? 1 : (dnnl_dim_t)ldb,
			  b_trans ? (dnnl_dim_t)ldb : 1};
	if (dnnl_memory_desc_init_by_strides(&wei, 2, d, dnnl_bf16, st) !=
	    dnnl_success)
		return hydb_error_set(HYDB_EINVAL, "oneDNN: matmul operand");
	FORWARD_IF_ERROR(matmul_pd(&pd, e->eng, &wei, m, k, n, n, 0,
				   out->alpha, out));
	out->wei = wei;
	out->pad = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md,
						 0);
	out->pad_size = dnnl_memory_desc_get_size(&out->pad);
	dnnl_status_t s = dnnl_primitive_create(&out->p, pd);
	dnnl_primitive_desc_destroy(pd);
	return s == dnnl_success ? HYDB_OK : dnnl_fail(s, "matmul");
}

/* A plain matmul's primitive, cached beside the linear layers' with no
 * slice (so that neither matches the other). */
static int plain_prim(struct prim *out, int *own, hydb_bf16 *e, size_t m,
		      size_t k, size_t n, int b_trans, size_t ldb, float alpha)
{
	*out = plain_key(m, k, n, b_trans, ldb ? ldb : b_trans ? k : n, alpha);
	*own = 0;
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->npr; i++)
		if (!e->pr[i].sl && e->pr[i].n == out->n &&
		    e->pr[i].ldy == out->ldy && e->pr[i].flags == out->flags &&
		    e->pr[i].alpha == alpha && e->pr[i].ldb == out->ldb) {
			*out = e->pr[i];
			pthread_mutex_unlock(&e->lock);
			return HYDB_OK;
		}
	int rc = plain_make(out, e, k, b_trans);
	if (rc == 0)
		prim_keep(e, out, own);
	pthread_mutex_unlock(&e->lock);
	return rc;
}

void hydb_bf16_run_fresh_memories(hydb_bf16_run *r, int fresh)
{
	r->fresh = fresh;
}

/* The lane's memory objects for plain primitive pr, made on first use
 * (the least recently made set replaced), or NULL. */
static struct lane_mems *lane_mems(hydb_bf16 *e, struct lane *l,
				   const struct prim *pr)
{
	for (size_t i = 0; i < LANE_MEMS; i++)
		if (l->mc[i].p == pr->p)
			return &l->mc[i];
	struct lane_mems *c = &l->mc[l->mc_next++ % LANE_MEMS];
	const dnnl_memory_desc_t *mds[4] = {&pr->src, &pr->wei, &pr->dst,
					    &pr->pad};
	c->p = NULL;
	for (size_t k = 0; k < 4; k++) {
		if (c->m[k])
			dnnl_memory_destroy(c->m[k]);
		c->m[k] = NULL;
	}
	for (size_t k = 0; k < 4; k++)
		if ((k < 3 || pr->pad_size) &&
		    dnnl_memory_create(&c->m[k], mds[k], e->eng,
				       DNNL_MEMORY_NONE) != dnnl_success)
			return NULL;
	c->p = pr->p;
	return c;
}

/* execute for a plain matmul (no bias) on the lane's kept memory
 * objects; a primitive not kept in the cache (own) or a lane that could
 * not make them runs as execute does. */
static int execute_kept(hydb_bf16 *e, struct lane *l, const struct prim *pr,
			const void *a, const void *b, void *c, int own)
{
	struct lane_mems *mc = own ? NULL : lane_mems(e, l, pr);
	if (!mc)
		return execute(e, l, pr, a, (void *)b, c, NULL);
	void *ptrs[4] = {(void *)a, (void *)b, c, l->pad};
	int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST,
		       DNNL_ARG_SCRATCHPAD};
	dnnl_exec_arg_t ea[4];
	int n = 0;
	dnnl_status_t st = dnnl_success;
	for (int i = 0; i < 4 && st == dnnl_success; i++) {
		if (!mc->m[i])
			continue;
		st = dnnl_memory_set_data_handle(mc->m[i], ptrs[i]);
		ea[n].arg = args[i];
		ea[n++].memory = mc->m[i];
	}
	if (st == dnnl_success)
		st = dnnl_primitive_execute(pr->p, l->s, n, ea);
	if (st == dnnl_success)
		st = dnnl_stream_wait(l->s);
	return st == dnnl_success ? HYDB_OK : dnnl_fail(st, "matmul");
}

static int matmul(hydb_bf16_run *r, struct lane *l, float *c, float alpha,
		  const uint16_t *a, const uint16_t *b, size_t m, size_t k,
		  size_t n, int b_trans, size_t ldb)
{
	struct prim pr;
	int own;
	FORWARD_IF_ERROR(plain_prim(&pr, &own, r->e, m, k, n, b_trans, ldb,
				    alpha));
	int rc = reserve(&l->pad, &l->pad_size, pr.pad_size);
	if (rc == 0 && r->fresh)
		rc = execute(r->e, l, &pr, a, (void *)b, c, NULL);
	else if (rc == 0)
		rc = execute_kept(r->e, l, &pr, a, b, c, own);
	if (own)
		dnnl_primitive_destroy(pr.p);
	return rc;
}

void hydb_bf16_matmul(hydb_bf16_run *r, size_t lane, float *c, float alpha,
		      const uint16_t *a, const uint16_t *b, size_t m, size_t k,
		      size_t n, int b_trans, size_t ldb)
{
	struct lane *l = &r->lane[lane < r->lanes ? lane : 0];
	if (l->rc != 0 || m == 0)
		return;
	int prev = solo_begin();
	l->rc = matmul(r, l, c, alpha, a, b, m, k, n, b_trans, ldb);
	solo_end(prev);
}

void hydb_bf16_linear(hydb_bf16_run *r, size_t lane, const hydb_bf16_op *op)
{
	struct lane *l = &r->lane[lane < r->lanes ? lane : 0];
	if (l->rc != 0 || op->n == 0)
		return;
	int prev = solo_begin();
	l->rc = linear(r, l, op);
	solo_end(prev);
}

#endif /* HAVE_DNNL */

void hydb_bf16_linear_block(hydb_bf16_run *r, size_t lane, const hydb_bf16_op *op, size_t block,
			    size_t parts, size_t slices)
{
	size_t part = block / slices, n = op->n;
	assert(slices > 0 && part < parts);
	size_t r0 = n * part / parts, r1 = n * (part + 1) / parts;
	hydb_bf16_op b = *op;
	b.slice = block % slices;
	b.n = r1 - r0;
	b.x += r0 * b.in;
	b.y = (char *)b.y + r0 * b.out * (b.y_bf16 ? sizeof(uint16_t) : sizeof(float));
	hydb_bf16_linear(r, lane, &b);
}
