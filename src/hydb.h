/*
 * hydb.h - approximate nearest-neighbour search over hyperbolic (Lorentz)
 * embeddings, with a built-in HySAC encoder.
 *
 * One public header. All handles are opaque. Every function that can fail
 * returns an int: HYDB_OK (0) on success or a negative hydb_error code.
 * After a failure, hydb_last_error() gives a one-line message for the calling
 * thread that names the input and the reason. The library never prints and
 * never exits.
 *
 * Ownership: memory returned through an out-parameter belongs to the caller
 * and is released with the matching *_free function named in each comment.
 * Strings passed in are copied; the library keeps no pointer to them.
 *
 * Threads: a hydb_db handle may be used by many threads at once. Searches
 * and reads run in parallel, each on its own consistent snapshot; writes are
 * serialised (one writer at a time, across processes too). A hydb_model is
 * read-only after hydb_model_open and may be shared by threads, but each
 * hydb_encode_* call uses scratch memory of its own, so concurrent encodes
 * cost memory, not correctness.
 *
 * Geometry: curvature is -c with c > 0. A point is stored by its D space
 * components x; its time component is x0 = sqrt(1/c + |x|^2).
 */
#ifndef HYDB_H
#define HYDB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define HYDB_API __attribute__((visibility("default")))
#else
#define HYDB_API
#endif

/* ---- versions --------------------------------------------------------- */

#define HYDB_VERSION_MAJOR 0
#define HYDB_VERSION_MINOR 1
#define HYDB_VERSION_PATCH 0
#define HYDB_VERSION_NUMBER \
	(HYDB_VERSION_MAJOR * 10000 + HYDB_VERSION_MINOR * 100 + HYDB_VERSION_PATCH)
#define HYDB_VERSION_STRING "0.1.0"

/* The on-disk database format. Independent of the library version: a newer
 * library opens older formats it knows; an older library refuses newer ones. */
#define HYDB_FORMAT_VERSION 1

/** Library version of the code actually linked (HYDB_VERSION_NUMBER form). */
HYDB_API unsigned hydb_version_number(void);
/** Library version string; static storage. */
HYDB_API const char *hydb_version_string(void);

/* ---- errors ------------------------------------------------------------ */

typedef enum hydb_error {
	HYDB_OK = 0,
	HYDB_EINVAL = -1,     /* invalid argument or usage */
	HYDB_ENOMEM = -2,     /* out of memory, or a size overflowed */
	HYDB_EIO = -3,        /* operating-system I/O error */
	HYDB_ENOTFOUND = -4,  /* no such record, file or key */
	HYDB_EDIM = -5,       /* vector dimension does not match the database */
	HYDB_ENONFINITE = -6, /* NaN or infinity in a vector */
	HYDB_ECORRUPT = -7,   /* a file or record failed validation */
	HYDB_EVERSION = -8,   /* made by a newer format version */
	HYDB_EREADONLY = -9,  /* write attempted on a read-only database */
	HYDB_ENOSPC = -10,    /* disk full */
	HYDB_EBUSY = -11,     /* another writer or too many readers */
	HYDB_ETOOBIG = -12,   /* key, caption, image or radius over a documented limit */
	HYDB_EUTF8 = -13,     /* text is not valid UTF-8 */
	HYDB_EFORMAT = -14,   /* input file is malformed (npy, json, image ...) */
	HYDB_EMODEL = -15,    /* model file invalid or incompatible */
	HYDB_EMISMATCH = -16, /* database made by another model or curvature */
	HYDB_EEXIST = -17     /* database already exists */
} hydb_error;

/** Static description of an error code, e.g. "dimension mismatch". */
HYDB_API const char *hydb_strerror(int code);
/** The calling thread's last error message (static per thread, valid until
 *  the thread's next failing hydb call). Never NULL. */
HYDB_API const char *hydb_last_error(void);

/* ---- Lorentz geometry -------------------------------------------------- */
/* Space-component form throughout; all lengths in units of the geodesic
 * distance for curvature -c. Results are computed in double precision with
 * a cancellation-free formula, valid for radii up to at least 12. */

/** Time component x0 = sqrt(1/c + |x|^2). */
HYDB_API double hydb_lorentz_time(const float *x, size_t dim, double c);
/** Lorentz inner product <x,y>_L = x.y - x0*y0. */
HYDB_API double hydb_lorentz_inner(const float *x, const float *y, size_t dim,
				   double c);
/** Geodesic distance acosh(-c<x,y>_L)/sqrt(c). */
HYDB_API double hydb_lorentz_dist(const float *x, const float *y, size_t dim,
				  double c);
/** cosh(sqrt(c) d) - 1: monotone in d, the key used for ranking. */
HYDB_API double hydb_lorentz_key(const float *x, const float *y, size_t dim,
				 double c);
/** Distance from the origin: asinh(sqrt(c)|x|)/sqrt(c). */
HYDB_API double hydb_lorentz_radius(const float *x, size_t dim, double c);
/** exp_map at the origin: tangent vector v -> space components (HySAC's
 *  clamps). out may alias v. */
HYDB_API void hydb_exp_map0(float *out, const float *v, size_t dim, double c);
/** log_map at the origin: space components -> tangent vector. */
HYDB_API void hydb_log_map0(float *out, const float *x, size_t dim, double c);
/** Entailment-cone half-aperture asin(2K/(sqrt(c)|x|)), K = 0.1, clamped. */
HYDB_API double hydb_half_aperture(const float *x, size_t dim, double c);
/** Exterior angle at x of the triangle O-x-y (MERU's oxy_angle). */
HYDB_API double hydb_oxy_angle(const float *x, const float *y, size_t dim,
			       double c);

/** Which OpenBLAS kernel hydb's GEMMs run on and why, one line, e.g.
 *  "OpenBLAS core SkylakeX: chosen by hydb from the CPU's flags (AVX-512F)"
 *  or "...: OPENBLAS_CORETYPE=Haswell set by the user". Loads OpenBLAS on
 *  first call. Static storage: do not free. */
HYDB_API const char *hydb_blas_info(void);

/* ---- database ---------------------------------------------------------- */

typedef struct hydb_db hydb_db;

typedef enum hydb_modality {
	HYDB_MOD_OTHER = 0,
	HYDB_MOD_IMAGE = 1,
	HYDB_MOD_TEXT = 2
} hydb_modality;
#define HYDB_N_MODALITIES 3

typedef enum hydb_label {
	HYDB_LABEL_UNKNOWN = 0,
	HYDB_LABEL_SAFE = 1,
	HYDB_LABEL_UNSAFE = 2
} hydb_label;
#define HYDB_N_LABELS 3

/* Documented limits. Longer keys are accepted up to HYDB_MAX_KEY and stored
 * under a hash in LMDB's key space (which allows 511 bytes). */
#define HYDB_MAX_KEY 4096
#define HYDB_MAX_CAPTION (64 * 1024)
#define HYDB_MAX_META (1024 * 1024)
#define HYDB_MAX_DIM 65536
/* The largest geodesic radius stored, in units of the curvature radius:
 * sqrt(c) * d(O, x) <= 20, i.e. |x| <= sinh(20)/sqrt(c) (about 2.4e8 for
 * c = 1). Hierarchy embeddings reach 10-15 and Poincare-ball points at the
 * edge of float32 about 17; beyond 20 the squared norms that every key needs
 * leave float32's exact range. hydb_put refuses larger points. */
#define HYDB_MAX_RADIUS 20.0
/* Search limits: k results and a beam of ef candidates (ef < k means k). */
#define HYDB_MAX_K 100000
#define HYDB_MAX_EF 100000

#define HYDB_MAX_HNSW_M 128

#define HYDB_OPEN_OPTIONS_VERSION 2
#define HYDB_OPEN_RDONLY 0x1u /* never write; works on read-only media */
#define HYDB_OPEN_CREATE 0x2u /* create if missing (needs dim, curvature) */
#define HYDB_OPEN_NOSYNC 0x4u /* faster writes; the last commits before an
				 OS crash or power loss may be lost (a
				 process crash loses nothing) */

typedef struct hydb_open_options {
	unsigned version;  /* HYDB_OPEN_OPTIONS_VERSION */
	unsigned flags;    /* HYDB_OPEN_* */
	size_t dim;        /* with HYDB_OPEN_CREATE: space dimension */
	double curvature;  /* with HYDB_OPEN_CREATE: c > 0 */
	unsigned hnsw_m;   /* with HYDB_OPEN_CREATE: 0 = default (16), else
			      2..HYDB_MAX_HNSW_M */
	unsigned hnsw_ef_construction; /* 0 = default (200) */
	/* version 2: the bytes LMDB maps at first, 0 = 256 MiB (or twice the
	 * file); the map grows by itself when a write needs more, so a small
	 * value only saves address space, at the cost of more growth steps.
	 * At least HYDB_MIN_INITIAL_MAP. */
	size_t initial_map;
} hydb_open_options;
#define HYDB_MIN_INITIAL_MAP 65536

/** Fill *opts with defaults (version set, no flags, curvature 1). */
HYDB_API void hydb_open_options_init(hydb_open_options *opts);

/**
 * Open (or with HYDB_OPEN_CREATE create) the database directory at path.
 * opts may be NULL for an existing database opened read-write.
 * Errors: HYDB_ENOTFOUND (no database there), HYDB_EVERSION (newer format),
 * HYDB_ECORRUPT (metadata invalid), HYDB_EMISMATCH (create with other dim or
 * curvature than the existing database), HYDB_EIO, HYDB_EREADONLY.
 * Close with hydb_close.
 */
HYDB_API int hydb_open(hydb_db **out, const char *path,
		       const hydb_open_options *opts);
/** Close a handle; NULL is allowed. No call may be running on it. */
HYDB_API void hydb_close(hydb_db *db);

/** The database's dimension and curvature c (its points lie on the
 *  hyperboloid of curvature -c). */
HYDB_API size_t hydb_dim(const hydb_db *db);
HYDB_API double hydb_curvature(const hydb_db *db);

/** A record as given to hydb_put. Strings are NUL-terminated UTF-8. */
typedef struct hydb_record {
	const char *key;       /* unique external key, required */
	const float *vector;   /* dim space components, required */
	hydb_modality modality;
	hydb_label label;
	uint64_t item;         /* links entries of one item (image + captions);
				  0 = none */
	const char *caption;   /* may be NULL */
	const char *meta;      /* a JSON object, may be NULL */
} hydb_record;

/**
 * Insert or replace (by key) n records in one atomic transaction, and insert
 * them into the index. Either all are stored or none. ids_out (n entries, may
 * be NULL) receives each record's id.
 * Errors: HYDB_EDIM, HYDB_ENONFINITE, HYDB_ETOOBIG, HYDB_EUTF8, HYDB_EINVAL
 * (record index named in the message; HYDB_ETOOBIG also for a point farther
 * than HYDB_MAX_RADIUS from the origin), HYDB_EREADONLY, HYDB_ENOSPC, HYDB_EIO.
 */
HYDB_API int hydb_put(hydb_db *db, const hydb_record *recs, size_t n,
		      uint64_t *ids_out);

#define HYDB_DELETE_MISSING_OK 0x1u /* skip absent records instead of failing */

/**
 * Delete n records, by key (keys non-NULL) or by id (ids non-NULL), in one
 * transaction with one pass over the index. A record named twice is
 * deleted once. An absent record fails the whole batch with
 * HYDB_ENOTFOUND (the message names it; nothing is deleted) unless flags
 * has HYDB_DELETE_MISSING_OK, which skips it. *deleted (may be NULL)
 * receives how many records were removed.
 * Errors: HYDB_EINVAL (NULL handle, both or neither of keys and ids, an
 * empty key, unknown flags), HYDB_ENOTFOUND, HYDB_EREADONLY, HYDB_EVERSION
 * (a format 1 graph), HYDB_ENOSPC, HYDB_EIO, HYDB_ECORRUPT, HYDB_ENOMEM.
 */
HYDB_API int hydb_delete_batch(hydb_db *db, const char *const *keys,
			       const uint64_t *ids, size_t n, unsigned flags,
			       size_t *deleted);

/** Delete one record by key or id: hydb_delete_batch of one with no flags.
 *  Errors: HYDB_ENOTFOUND (absent; nothing changes), HYDB_EINVAL (NULL
 *  handle, NULL or empty key), and the write errors of hydb_delete_batch. */
HYDB_API int hydb_delete_key(hydb_db *db, const char *key);
HYDB_API int hydb_delete_id(hydb_db *db, uint64_t id);

/** A stored record. Free with hydb_entry_free. */
typedef struct hydb_entry {
	uint64_t id;
	uint64_t item;
	char *key;
	float *vector;  /* dim floats */
	size_t dim;
	float radius;
	hydb_modality modality;
	hydb_label label;
	char *caption;  /* NULL if none */
	char *meta;     /* NULL if none */
} hydb_entry;

/** Read one record by key (at most HYDB_MAX_KEY bytes) or by id into a new
 *  *out that the caller frees with hydb_entry_free.
 *  Errors: HYDB_ENOTFOUND (no live record), HYDB_EINVAL (NULL argument,
 *  empty key), HYDB_ETOOBIG (key over HYDB_MAX_KEY), HYDB_ECORRUPT (the
 *  record fails its checksum), HYDB_EIO, HYDB_ENOMEM. */
HYDB_API int hydb_get_key(hydb_db *db, const char *key, hydb_entry **out);
HYDB_API int hydb_get_id(hydb_db *db, uint64_t id, hydb_entry **out);
HYDB_API void hydb_entry_free(hydb_entry *e);

/** Number of live records. Errors: HYDB_EINVAL (NULL argument), HYDB_EIO,
 *  HYDB_ECORRUPT. */
HYDB_API int hydb_count(hydb_db *db, uint64_t *out);

/** Counts and radius range of the live records, from one snapshot. */
typedef struct hydb_db_stats {
	uint64_t count;
	uint64_t groups[HYDB_N_MODALITIES][HYDB_N_LABELS];
	double radius_min, radius_max; /* both 0 when empty */
} hydb_db_stats;

/** Fill *out from the vector blocks' attributes (no record is decoded).
 *  Errors: HYDB_EINVAL (NULL argument), HYDB_ECORRUPT, HYDB_EIO. */
HYDB_API int hydb_stats(hydb_db *db, hydb_db_stats *out);

/** What hydb_check verified and found. */
typedef struct hydb_check_report {
	uint64_t records, live_slots, keys, radius_entries;
	size_t store_problems; /* checksums, tables that disagree, metadata */
	size_t index_problems; /* HNSW invariants (links, degrees, nodes),
				  and per-label counts that disagree with
				  the records (the planner's estimates) */
	size_t unreachable;    /* nodes no index search reaches (a quality
				  warning: exact search still finds them) */
} hydb_check_report;

/**
 * Verify the store and the index in one snapshot, as `hydb check` does
 * (without its self-search). Each problem and warning is passed to fn (may
 * be NULL) as a one-line message naming the record id or slot, or the
 * modality and label whose count is off (compared only when the store
 * passed). Returns HYDB_OK when the check ran, even when it found problems
 * (see *out).
 * Errors: HYDB_EINVAL (NULL db or out), HYDB_EIO, HYDB_ENOMEM.
 */
HYDB_API int hydb_check(hydb_db *db, void (*fn)(const char *msg, void *ctx),
			void *ctx, hydb_check_report *out);

/**
 * Call fn for every record in id order, in one snapshot; e is valid only
 * during the call (the library frees it). A negative return from fn stops
 * the walk and is returned. Errors: HYDB_EINVAL, HYDB_ECORRUPT, HYDB_EIO.
 */
HYDB_API int hydb_each_entry(hydb_db *db, int (*fn)(const hydb_entry *e, void *ctx),
			     void *ctx);

/* ---- search ------------------------------------------------------------ */

#define HYDB_SEARCH_OPTIONS_VERSION 3

typedef enum hydb_redirect {
	HYDB_REDIRECT_NONE = 0,
	/* HySAC's released rule: if the query radius exceeds the bound, rescale
	 * the space components to Euclidean norm = bound. */
	HYDB_REDIRECT_HYSAC = 1,
	/* Move along the geodesic to the origin until the geodesic radius
	 * equals the bound. */
	HYDB_REDIRECT_GEODESIC = 2
} hydb_redirect;

/* Entailment cones (HySAC, MERU): y lies in x's cone when the exterior angle
 * at x of the triangle origin-x-y, hydb_oxy_angle(x, y), is at most x's
 * half-aperture asin(2K / (sqrt(c)|x|)), K = 0.1. Generic concepts sit near
 * the origin with wide cones holding their specific ones. */
#define HYDB_CONE_WITHIN 0x1u   /* results whose cone holds the query:
				   its more generic parents */
#define HYDB_CONE_CONTAINS 0x2u /* results inside the query's cone: its
				   more specific children */

/* Modality and label masks: bit (1u << value). 0 = any. */
#define HYDB_MASK(v) (1u << (unsigned)(v))

typedef struct hydb_search_options {
	unsigned version;   /* HYDB_SEARCH_OPTIONS_VERSION */
	size_t k;           /* results wanted, 1..HYDB_MAX_K (default 10) */
	size_t ef;          /* beam width, 0..HYDB_MAX_EF; 0 = automatic:
			       the database's measured beam for
			       target_recall (see hydb_tune), max(k, 64)
			       when it never measured one */
	double min_radius;  /* filter: radius >= min_radius (default 0) */
	double max_radius;  /* filter: radius <= max_radius (default +inf) */
	unsigned modality_mask; /* HYDB_MASK(HYDB_MOD_*) bits; 0 = any */
	unsigned label_mask;    /* HYDB_MASK(HYDB_LABEL_*) bits; 0 = any */
	hydb_redirect redirect;
	double redirect_bound;  /* target radius ub' for redirect */
	int exact;          /* nonzero: brute force, no index */
	/* version 2: with ef = 0, the recall@10 the beam is chosen for,
	 * 0 < target_recall <= 1; 0 = HYDB_DEFAULT_RECALL. Ignored when ef is
	 * set or the search is exact. */
	double target_recall;
	/* version 3: HYDB_CONE_* bits, both = both tests; applied to the query
	 * as searched (after a redirect), with every other filter. */
	unsigned cone;
} hydb_search_options;

HYDB_API void hydb_search_options_init(hydb_search_options *opts);

/** Results of one query, nearest first (ties by id). Free with
 *  hydb_results_free. Arrays have n entries and are owned by the struct. */
typedef struct hydb_results {
	size_t n;
	uint64_t *ids;
	char **keys;
	double *distances;   /* geodesic */
	float *radii;
	hydb_label *labels;
	hydb_modality *modalities;
	uint64_t *items;
	char **captions;     /* entries may be NULL */
	int redirected;      /* the query was moved toward the origin */
	double query_radius;     /* before redirect */
	double searched_radius;  /* after redirect */
	const char *plan;    /* static: "exact", "hnsw", "filtered-brute", ... */
	/* With a cone filter (else NULL, and query_aperture 0): for each
	 * result r and the searched query q, hydb_oxy_angle(r, q) and r's
	 * half-aperture (the HYDB_CONE_WITHIN test), hydb_oxy_angle(q, r)
	 * (the HYDB_CONE_CONTAINS test against query_aperture), radians. */
	double *angles_at_result, *apertures, *angles_at_query;
	double query_aperture;
} hydb_results;

/** k-NN of one query (dim space components).
 *  Errors: HYDB_EINVAL (k outside 1..HYDB_MAX_K, ef above HYDB_MAX_EF, a NaN
 *  radius bound, a redirect without a positive finite bound),
 *  HYDB_ENONFINITE (a query component is NaN or infinite), HYDB_EIO,
 *  HYDB_ECORRUPT, HYDB_ENOMEM. */
HYDB_API int hydb_search(hydb_db *db, hydb_results **out, const float *query,
			 const hydb_search_options *opts);
/** nq queries, row-major, in one read snapshot; out receives an array of nq
 *  result pointers, freed with hydb_results_free_batch. Either every query
 *  is answered or none (*out is then untouched).
 *  nq may be 0 (an empty array). Errors: those of hydb_search (the message
 *  names the query's row), HYDB_EINVAL for NULL queries with nq > 0,
 *  HYDB_ENOMEM when nq * dim overflows. */
HYDB_API int hydb_search_batch(hydb_db *db, hydb_results ***out,
			       const float *queries, size_t nq,
			       const hydb_search_options *opts);
HYDB_API void hydb_results_free(hydb_results *r);
HYDB_API void hydb_results_free_batch(hydb_results **r, size_t nq);

/* ---- the self-measured search beam ----------------------------------- */

/* Recall@10 a search without ef aims for. */
#define HYDB_DEFAULT_RECALL 0.97
/* The beam of a database that never measured one (and k > 64: k). */
#define HYDB_DEFAULT_EF 64
#define HYDB_TUNE_MAX_POINTS 32
#define HYDB_TUNE_DEFAULT_SAMPLE 200
#define HYDB_TUNE_MAX_SAMPLE 100000
/* hydb_put measures again once the index has this many nodes and has
 * doubled (or halved) since the last measurement. */
#define HYDB_TUNE_MIN_NODES 1000

/** What a database measured about its index: recall@10 at each beam ef[i]
 *  (ascending, up to the first beam that found every neighbour) for sample
 *  stored points searched by their own vectors, each point left out of its
 *  own results and exact truth. */
typedef struct hydb_tune_info {
	uint64_t nodes;  /* index nodes when measured */
	size_t sample;   /* self-queries */
	size_t n;        /* curve points */
	size_t ef[HYDB_TUNE_MAX_POINTS];
	double recall[HYDB_TUNE_MAX_POINTS];
	double seconds;  /* time the measurement took */
} hydb_tune_info;

/** Measure the curve and store it in the database (replacing the last one);
 *  out (may be NULL) receives it. sample: self-queries, 0 =
 *  HYDB_TUNE_DEFAULT_SAMPLE, at most HYDB_TUNE_MAX_SAMPLE (fewer when the
 *  database holds fewer points). Cost: one exact scan of the database for
 *  the sample (batched) plus sample searches per beam measured; see
 *  index/README.md for figures. Runs in a read snapshot and one short write.
 *  Errors: HYDB_EINVAL (NULL db, sample too large, fewer than 2 records),
 *  HYDB_EREADONLY, HYDB_EIO, HYDB_ECORRUPT, HYDB_ENOMEM. */
HYDB_API int hydb_tune(hydb_db *db, size_t sample, hydb_tune_info *out);
/** The stored curve. Errors: HYDB_ENOTFOUND (never measured),
 *  HYDB_ECORRUPT, HYDB_EIO, HYDB_EINVAL. */
HYDB_API int hydb_tune_get(hydb_db *db, hydb_tune_info *out);
/** The beam a search with ef = 0 uses for recall target (0: the default)
 *  and k: the smallest measured beam reaching target, the largest measured
 *  when none does, HYDB_DEFAULT_EF for t = NULL; never below k. */
HYDB_API size_t hydb_tune_pick(const hydb_tune_info *t, double target, size_t k);

/** Apply a redirect rule to a query (dim space components, curvature c) in
 *  place; returns 1 if it moved, 0 if it was already within bound (or mode
 *  is HYDB_REDIRECT_NONE).
 *  Errors: HYDB_EINVAL (NULL or empty query, c or bound not finite and
 *  positive, unknown mode). */
HYDB_API int hydb_redirect_query(float *q, size_t dim, double c,
				 hydb_redirect mode, double bound);
/** HySAC's widened bound ub' = ub + tanh((ub - 0.8)/c) + 1. */
HYDB_API double hydb_redirect_bound(double ub, double c);

/* ---- encoder ----------------------------------------------------------- */

typedef struct hydb_model hydb_model;

/** Map a model file (see README, "Model file"). Close with hydb_model_close.
 *  Errors: HYDB_ENOTFOUND, HYDB_EMODEL (with the field or tensor named),
 *  HYDB_ECORRUPT (truncated), HYDB_EVERSION. Same as hydb_model_open_ex
 *  with default options (float32). */
HYDB_API int hydb_model_open(hydb_model **out, const char *path);

/** The arithmetic of the encoder's matrix products (see README, "bfloat16
 *  encoding"). */
typedef enum hydb_precision {
	/* float32 on OpenBLAS: matches HySAC's PyTorch model (default) */
	HYDB_PRECISION_F32 = 0,
	/* bfloat16 inputs, float32 accumulation, on oneDNN: about twice as
	 * fast where the CPU has AVX512_BF16 or AMX; embeddings differ from
	 * float32 ones by a cosine of ~0.9999 */
	HYDB_PRECISION_BF16 = 1
} hydb_precision;

#define HYDB_MODEL_OPTIONS_VERSION 1

typedef struct hydb_model_options {
	unsigned version;         /* HYDB_MODEL_OPTIONS_VERSION */
	hydb_precision precision; /* HYDB_PRECISION_F32 unless set */
} hydb_model_options;

/** Fill *opts with defaults (version set, float32). */
HYDB_API void hydb_model_options_init(hydb_model_options *opts);
/** hydb_model_open with options; opts may be NULL (defaults).
 *  Errors as hydb_model_open, and HYDB_EINVAL for an unknown options
 *  version or precision, or HYDB_PRECISION_BF16 where this build has no
 *  oneDNN or the CPU has neither AVX512_BF16 nor AMX (the message says
 *  which). The bf16 weights are packed on the first encode (~0.9 GB for
 *  ViT-L/14, the float32 pages of those weights being released). */
HYDB_API int hydb_model_open_ex(hydb_model **out, const char *path,
				const hydb_model_options *opts);
/** The precision the model was opened with. */
HYDB_API hydb_precision hydb_model_precision(const hydb_model *m);
/** "f32" or "bf16"; NULL for other values. */
HYDB_API const char *hydb_precision_name(hydb_precision p);
/** Parse "f32" or "bf16" (as hydb_precision_name writes them).
 *  Errors: HYDB_EINVAL naming the text. */
HYDB_API int hydb_precision_parse(const char *text, hydb_precision *out);
HYDB_API void hydb_model_close(hydb_model *m);
/** Embedding dimension (space components). */
HYDB_API size_t hydb_model_dim(const hydb_model *m);
HYDB_API double hydb_model_curvature(const hydb_model *m);
/** Safe-class bound: up_95 radius for HYDB_MOD_IMAGE or HYDB_MOD_TEXT. */
HYDB_API double hydb_model_bound(const hydb_model *m, hydb_modality mod);
/** The model file's content hash: 16 lowercase hex digits (XXH64 of the
 *  whole file), the same for every copy of the file wherever it lies, so a
 *  database can record which model made its embeddings. Valid until
 *  hydb_model_close; "" for NULL. */
HYDB_API const char *hydb_model_hash(const hydb_model *m);

/* Limits of the image inputs of the encode calls below. */
/** Image files (and images in memory) larger than this are refused before
 *  being read: HYDB_ETOOBIG. */
#define HYDB_IMAGE_MAX_BYTES ((size_t)256 << 20)
/** Images of more pixels are refused before pixel memory is allocated
 *  (HYDB_ETOOBIG): PIL's decompression-bomb limit, 1024^3 / 4 / 3. */
#define HYDB_IMAGE_DEFAULT_MAX_PIXELS ((size_t)89478485)
/** The input side of CLIP ViT-L/14, which HySAC models use: images are
 *  resized (shorter side) and centre-cropped to the model's image_size. */
#define HYDB_CLIP_SIZE 224
/** The largest image_size a model file may give, and the largest crop. */
#define HYDB_CLIP_MAX_SIZE 4096

/** Encode a caption (NUL-terminated UTF-8). out: dim floats (space
 *  components); radius may be NULL. features, if non-NULL, receives the
 *  Euclidean projection output (dim). Text longer than the model's context
 *  (77 tokens for CLIP) is cut so that the end-of-text token stays last, as
 *  CLIP does. Thread-safe: threads may share one model.
 *  Errors: HYDB_EINVAL (NULL model, text or out), HYDB_EUTF8 (text is not
 *  UTF-8), HYDB_EMODEL (the model has no usable tokenizer), HYDB_ENOMEM. */
HYDB_API int hydb_encode_text(hydb_model *m, const char *text, float *out,
			      float *radius, float *features);
/** Encode n image files (JPEG, PNG or WebP) in batches. out: n*dim floats;
 *  radii (n) and features (n*dim) may be NULL. Either every image is
 *  encoded or the call fails, naming the file.
 *  Limits: a file of at most 256 MiB, an image of at most 89,478,485 pixels.
 *  Errors: HYDB_EINVAL (NULL model, paths or out), HYDB_ENOTFOUND (no such
 *  file), HYDB_EIO, HYDB_EFORMAT (not a decodable image, truncated),
 *  HYDB_ETOOBIG (over a limit), HYDB_ENOMEM. */
HYDB_API int hydb_encode_image_files(hydb_model *m, const char *const *paths,
				     size_t n, float *out, float *radii,
				     float *features);
/** Encode one image held in memory (len bytes of JPEG, PNG or WebP).
 *  Limits and errors as hydb_encode_image_files, without HYDB_ENOTFOUND and
 *  HYDB_EIO. */
HYDB_API int hydb_encode_image_memory(hydb_model *m, const void *data,
				      size_t len, float *out, float *radius,
				      float *features);

#ifdef __cplusplus
}
#endif
#endif /* HYDB_H */
