/*
 * blas.c - load OpenBLAS at run time with a kernel that suits the CPU.
 *
 * See blas.h for why the library is not linked. The core choice is made
 * from cpuid, not from OpenBLAS's own detection, because Debian's 0.3.21
 * maps Sapphire Rapids to Prescott. When OpenBLAS cannot be loaded at all,
 * hydb_sgemm falls back to a plain loop so that results stay correct.
 */
#include "config.h"

#include <cpuid.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/blas.h"
#include "base/base.h"

/* cblas enum values (cblas.h), so that no OpenBLAS header is needed. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k,
			 float alpha, const float *a, int lda, const float *b,
			 int ldb, float beta, float *c, int ldc);
typedef char *(*corename_fn)(void);
typedef void (*set_threads_fn)(int n);

static struct {
	pthread_once_t once;
	int rc;
	char msg[512];
	void *lib;
	sgemm_fn sgemm;
	corename_fn corename;
	set_threads_fn set_threads;
	const char *wanted;
	int preloaded;          /* OpenBLAS was in the process before us */
	char name[160];         /* what hydb_blas_corename reports */
	char why[160];          /* how that core came to be chosen */
	char info[340];         /* hydb_blas_info: the two together */
	int threads;
	pthread_mutex_t serial_lock;
	int serial;             /* open hydb_blas_serial_begin sections */
} blas = {.once = PTHREAD_ONCE_INIT, .serial_lock = PTHREAD_MUTEX_INITIALIZER};

static const char *const sonames[] = {
	"libopenblas.so.0", "libopenblasp.so.0", "libopenblaso.so.0",
	"libopenblas.so",
};

/* OS support for the AVX-512 register state (XCR0 opmask, ZMM_Hi256,
 * Hi16_ZMM) and for AVX (XMM, YMM). */
static unsigned long long xcr0(void)
{
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((unsigned long long)hi << 32) | lo;
}

static const char *detect_core(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return NULL;
	int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
	if (!osxsave || !avx)
		return NULL;
	unsigned long long x = xcr0();
	if ((x & 0x6) != 0x6)
		return NULL;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return NULL;
	int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1;
	int zmm_os = (x & 0xe6) == 0xe6;
	if (avx512f && zmm_os) {
		/* Cooperlake only adds bf16 GEMMs. Both give correct sgemm
		 * (tests/check_blas) but SkylakeX measured 5-10% faster on
		 * Sapphire Rapids (make bench-encoder). */
		return "SkylakeX";
	}
	if (avx2 && fma)
		return "Haswell";
	return NULL;
}

static void report_name(void)
{
	const char *core = blas.corename ? blas.corename() : NULL;
	if (!core)
		core = "unknown";
	/* OpenBLAS pads some names with blanks. */
	snprintf(blas.name, sizeof blas.name, "%s", core);
	size_t n = strlen(blas.name);
	while (n && blas.name[n - 1] == ' ')
		blas.name[--n] = '\0';
	if (blas.preloaded && blas.wanted && strcasecmp(blas.name, blas.wanted)) {
		char tmp[64];
		snprintf(tmp, sizeof tmp, "%.63s", blas.name);
		snprintf(blas.name, sizeof blas.name,
			 "%.63s (loaded before hydb; %.32s wanted)", tmp,
			 blas.wanted);
	}
}

static void *find_loaded(void)
{
	for (size_t i = 0; i < sizeof sonames / sizeof sonames[0]; i++) {
		void *h = dlopen(sonames[i], RTLD_NOW | RTLD_NOLOAD);
		if (h)
			return h;
	}
	/* Linked directly into the executable (e.g. a test program). */
	void *self = dlopen(NULL, RTLD_NOW);
	if (self && dlsym(self, "openblas_get_corename"))
		return self;
	if (self)
		dlclose(self);
	return NULL;
}

/* Load OpenBLAS with OPENBLAS_CORETYPE set only for the duration of the
 * load, so that child processes see the user's own environment. */
static void *load_fresh(void)
{
	const char *user = getenv("OPENBLAS_CORETYPE");
	int set = (!user || !*user) && blas.wanted;
	if (set)
		setenv("OPENBLAS_CORETYPE", blas.wanted, 1);
	void *h = NULL;
	for (size_t i = 0; !h && i < sizeof sonames / sizeof sonames[0]; i++)
		h = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
	if (set)
		unsetenv("OPENBLAS_CORETYPE");
	return h;
}

/* Said once, before loading: the environment is the user's again after. */
static void explain_choice(void)
{
	const char *user = getenv("OPENBLAS_CORETYPE");
	if (blas.preloaded)
		snprintf(blas.why, sizeof blas.why, "OpenBLAS was loaded before hydb");
	else if (user && *user)
		snprintf(blas.why, sizeof blas.why, "OPENBLAS_CORETYPE=%.64s set by the user", user);
	else if (blas.wanted)
		snprintf(blas.why, sizeof blas.why, "chosen by hydb from the CPU's flags (%s)",
			 strcmp(blas.wanted, "SkylakeX") ? "AVX2+FMA" : "AVX-512F");
	else
		snprintf(blas.why, sizeof blas.why, "OpenBLAS's own detection (no AVX2 on this CPU)");
}

static void load_once(void)
{
	blas.wanted = detect_core();
	blas.lib = find_loaded();
	blas.preloaded = blas.lib != NULL;
	explain_choice();
	if (!blas.lib)
		blas.lib = load_fresh();
	if (!blas.lib) {
		blas.rc = HYDB_EIO;
		snprintf(blas.msg, sizeof blas.msg,
			 "libopenblas.so.0: cannot load OpenBLAS (%s); install "
			 "the Debian package libopenblas0", dlerror());
		snprintf(blas.name, sizeof blas.name, "none (plain loops)");
		return;
	}
	blas.sgemm = (sgemm_fn)dlsym(blas.lib, "cblas_sgemm");
	blas.corename = (corename_fn)dlsym(blas.lib, "openblas_get_corename");
	blas.set_threads = (set_threads_fn)dlsym(blas.lib,
						 "openblas_set_num_threads");
	if (!blas.sgemm) {
		blas.rc = HYDB_EIO;
		snprintf(blas.msg, sizeof blas.msg,
			 "OpenBLAS: symbol cblas_sgemm missing; install the "
			 "Debian package libopenblas0");
		snprintf(blas.name, sizeof blas.name, "none (plain loops)");
		return;
	}
	report_name();
	if (blas.threads > 0 && blas.set_threads)
		blas.set_threads(blas.threads);
}

static void init_once(void)
{
	load_once();
	snprintf(blas.info, sizeof blas.info, "OpenBLAS core %s: %s", blas.name, blas.why);
}

int hydb_blas_init(void)
{
	pthread_once(&blas.once, init_once);
	if (blas.rc < 0)
		return hydb_error_set(blas.rc, "%s", blas.msg);
	return HYDB_OK;
}

const char *hydb_blas_corename(void)
{
	pthread_once(&blas.once, init_once);
	return blas.name;
}

const char *hydb_blas_info(void)
{
	pthread_once(&blas.once, init_once);
	return blas.info;
}

const char *hydb_blas_wanted_core(void)
{
	pthread_once(&blas.once, init_once);
	return blas.wanted;
}

/* OpenBLAS takes 0 as "its default" (the pool it started with). */
static void apply_threads(int n)
{
	if (blas.set_threads)
		blas.set_threads(n > 0 ? n : 0);
}

void hydb_blas_set_threads(int n)
{
	pthread_once(&blas.once, init_once);
	pthread_mutex_lock(&blas.serial_lock);
	if (n != blas.threads) {
		blas.threads = n;
		if (!blas.serial)
			apply_threads(n);
	}
	pthread_mutex_unlock(&blas.serial_lock);
}

void hydb_blas_serial_begin(void)
{
	pthread_once(&blas.once, init_once);
	pthread_mutex_lock(&blas.serial_lock);
	if (blas.serial++ == 0 && blas.set_threads)
		blas.set_threads(1);
	pthread_mutex_unlock(&blas.serial_lock);
}

void hydb_blas_serial_end(void)
{
	pthread_mutex_lock(&blas.serial_lock);
	if (blas.serial > 0 && --blas.serial == 0)
		apply_threads(blas.threads);
	pthread_mutex_unlock(&blas.serial_lock);
}

static float at(const float *p, size_t ld, int trans, size_t i, size_t j)
{
	return trans ? p[j * ld + i] : p[i * ld + j];
}

/* Only used when OpenBLAS is missing: correct, slow. */
static void sgemm_plain(int ta, int tb, size_t m, size_t n, size_t k,
			float alpha, const float *a, size_t lda, const float *b,
			size_t ldb, float beta, float *c, size_t ldc)
{
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++) {
			double s = 0;
			for (size_t l = 0; l < k; l++)
				s += (double)at(a, lda, ta, i, l) *
				     at(b, ldb, tb, l, j);
			float *cij = &c[i * ldc + j];
			*cij = (float)(alpha * s) + (beta == 0 ? 0 : beta * *cij);
		}
}

static int fits_int(size_t v)
{
	return v <= 0x7fffffff;
}

void hydb_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k,
		float alpha, const float *a, size_t lda, const float *b,
		size_t ldb, float beta, float *c, size_t ldc)
{
	pthread_once(&blas.once, init_once);
	if (m == 0 || n == 0)
		return;
	if (blas.sgemm && fits_int(m) && fits_int(n) && fits_int(k) &&
	    fits_int(lda) && fits_int(ldb) && fits_int(ldc)) {
		blas.sgemm(CBLAS_ROW_MAJOR, trans_a ? CBLAS_TRANS : CBLAS_NO_TRANS,
			   trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, (int)m,
			   (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb,
			   beta, c, (int)ldc);
		return;
	}
	sgemm_plain(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
		    ldc);
}
