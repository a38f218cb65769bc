/*
 * admin.h - the one internal header the bundled command-line tool (src/cli/)
 * may include besides hydb.h (not installed; ARCHITECTURE.md).
 *
 * What the tool needs that is not (yet) public API: database metadata
 * entries, the bulk readers of `hydb import`, and administration (checks,
 * re-labelling, pipeline steps). Everything here is implemented by the
 * library face in src/, so the tool reaches storage/, index/ and encoder/
 * only through the library, never directly. The base's conventions (error
 * macros, overflow-checked sizes, UTF-8, JSON) come with it: they depend on
 * nothing and every layer may use them.
 *
 * Errors follow hydb.h: a negative hydb_error with a thread-local message.
 */
#ifndef HYDB_ADMIN_H
#define HYDB_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "hydb.h"
#include "base/base.h"
#include "base/json.h"
#include "import.h"

/* ---- metadata entries (src/db.c) ----------------------------------------
 * Small named strings kept beside the records (model hash, thresholds,
 * import progress). */

/* hydb_put plus one metadata entry written in the same transaction; n may be
 * 0 to write the entry alone. Errors: as hydb_put, HYDB_EINVAL for a name or
 * value that is empty, too long or not UTF-8. */
int hydb_db_put_meta(hydb_db *db, const hydb_record *recs, size_t n, uint64_t *ids_out,
		     const char *meta_name, const char *meta_value);
/* Copy the entry's value (NUL-terminated) into buf. Errors: HYDB_ENOTFOUND
 * (no such entry), HYDB_EINVAL (buf too small), HYDB_EIO. */
int hydb_db_meta_get(hydb_db *db, const char *name, char *buf, size_t size);
/* Everything hydb_put checks about one record, before any write; where
 * (e.g. "file: line 3") starts the error message. Errors: HYDB_EINVAL. */
int hydb_record_validate(const hydb_record *r, size_t dim, double c, const char *where);

/* ---- administration: checks, statistics, re-labelling (src/inspect.c) --- */

/* hydb_stats plus a radius histogram, from one snapshot: bins equal bins
 * over [radius_min, radius_max] (the largest radius falls in the last bin;
 * all in bin 0 when every radius is equal). hist holds HYDB_N_MODALITIES *
 * HYDB_N_LABELS rows of stride counts, row modality * HYDB_N_LABELS + label,
 * and is zeroed first; bins 1..stride. Errors: HYDB_EINVAL (NULL argument,
 * bins 0 or above stride), HYDB_ECORRUPT, HYDB_EIO. */
int hydb_stats_histogram(hydb_db *db, hydb_db_stats *out, unsigned bins, size_t stride,
			 uint64_t *hist);

/* Which keys are stored, looked up in one snapshot without decoding any
 * record: found[i] = 1 when keys[i] is, else 0 (`hydb import` counts the
 * records a batch will replace). Errors: HYDB_EINVAL (NULL argument, an
 * empty key), HYDB_EIO, HYDB_ECORRUPT. */
int hydb_keys_stored(hydb_db *db, const char *const *keys, size_t n, uint8_t *found);

/* LMDB's structure as hydb_open verified it, before LMDB mapped the file
 * (storage/lmdb_verify.h): all zero for a database this open created. */
typedef struct hydb_lmdb_report {
	uint64_t txnid; /* the snapshot verified */
	uint64_t tables, branch_pages, leaf_pages, overflow_pages, free_pages;
	uint64_t unaccounted;      /* pages neither used nor free: leaked */
	uint64_t count_mismatches; /* tables whose stored counts are off */
} hydb_lmdb_report;
/* Errors: HYDB_EINVAL (NULL argument). */
int hydb_lmdb_verified(hydb_db *db, hydb_lmdb_report *out);

/* What a finding of hydb_check_run is: a problem of the store, of the
 * index (invariants and label counts), a node no search reaches (a
 * warning: exact search finds it), or a node its own vector cannot find
 * even with the wide beam (a problem: wrong results). */
typedef enum hydb_finding {
	HYDB_FINDING_STORE,
	HYDB_FINDING_INDEX,
	HYDB_FINDING_UNREACHABLE,
	HYDB_FINDING_LOST
} hydb_finding;

#define HYDB_CHECK_CLEAR_READERS 0x1u /* first clear reader slots left by
					 crashed processes */
#define HYDB_CHECK_OUTSIDE_TREE 0x2u  /* count nodes outside the
					 reachability tree */
#define HYDB_CHECK_SELF_SEARCH 0x4u   /* search nodes by their own vector */

typedef struct hydb_check_options {
	unsigned flags;         /* HYDB_CHECK_* */
	size_t self_limit;      /* nodes searched, spread evenly; 0: all */
	size_t self_wide_ef;    /* beam of the second search of a node the
				   default beam missed */
	void (*fn)(hydb_finding kind, const char *msg, void *ctx); /* or NULL */
	void *ctx;
} hydb_check_options;

typedef struct hydb_check_result {
	hydb_check_report report; /* as hydb_check; lost nodes not included */
	int stale_readers;        /* reader slots cleared */
	size_t outside_tree;
	int searched;             /* the self-search ran: it does not when
				     the graph failed its invariants */
	size_t self_ef, self_checked, self_missed, self_lost;
} hydb_check_result;

/* hydb_check with what `hydb check` adds, in one snapshot. Returns HYDB_OK
 * when the check ran, whatever it found. Errors: HYDB_EINVAL (NULL
 * argument, unknown flags), HYDB_EIO, HYDB_ENOMEM. */
int hydb_check_run(hydb_db *db, const hydb_check_options *o, hydb_check_result *out);

/* Re-label by radius, as `hydb calibrate` does: every live entry of
 * modality m with threshold[m] > 0 becomes HYDB_LABEL_SAFE when its radius
 * is at most threshold[m], else HYDB_LABEL_UNSAFE; others keep their label.
 * One write transaction changes the records, the vector blocks' slot
 * attributes and the index's per-label counts (which the planner's
 * estimates of label filters read). *changed (may be NULL) receives how
 * many labels changed. Errors: HYDB_EINVAL (NULL db or threshold),
 * HYDB_EREADONLY, HYDB_ENOSPC, HYDB_EIO, HYDB_ECORRUPT, HYDB_ENOMEM. */
int hydb_relabel_by_radius(hydb_db *db, const double threshold[HYDB_N_MODALITIES],
			   uint64_t *changed);

/* ---- encoding pipeline steps (src/encode.c) -----------------------------
 * The steps of the public hydb_encode_* calls, for callers that schedule
 * them themselves (hydb ingest decodes the next batch while the tower runs
 * on this one; hydb encode prints token ids). There is one pipeline: decode,
 * preprocess with the model's own image_mean/image_std, run the tower, scale
 * by the model's alpha and map onto the hyperboloid (exp_map0). */

/* Images per forward batch of hydb_encode_image_files; chosen by
 * bench/bench_encoder (activations grow ~8 MB per ViT-L/14 image, GEMMs
 * stop getting faster beyond a few). */
#define HYDB_ENCODE_BATCH 8
/* Longest token context the encoder accepts (CLIP's is 77). */
#define HYDB_ENCODE_MAX_CONTEXT 512

/* The token ids hydb_encode_text would use: ids receives context_length
 * (at most HYDB_ENCODE_MAX_CONTEXT) entries, *n_used the count up to and
 * including EOS; a longer text is cut to the context, as CLIP does.
 * Errors: HYDB_EINVAL (NULL argument), HYDB_EUTF8, HYDB_ETOOBIG (over
 * HYDB_MAX_CAPTION bytes), HYDB_EMODEL (no tokenizer, unsupported
 * context_length), HYDB_ENOMEM. */
int hydb_encode_tokens(hydb_model *m, const char *text, int32_t *ids, size_t *n_used);
/* hydb_encode_text from n token ids (BOS ... EOS). Errors: HYDB_EINVAL
 * (NULL argument, n 0, an id outside the vocabulary), HYDB_ETOOBIG (n over
 * the context), HYDB_EMODEL (a tensor missing), HYDB_ENOMEM. */
int hydb_encode_ids(hydb_model *m, const int32_t *ids, size_t n, float *out, float *radius,
		    float *features);
/* hydb_encode_image_files running the tower batch (>= 1) images at a
 * time. One file that cannot be decoded fails the call (its error, naming
 * it). Errors: HYDB_EINVAL (NULL argument, batch 0), the decoder's
 * (HYDB_ENOTFOUND, HYDB_EIO, HYDB_EFORMAT, HYDB_ETOOBIG), HYDB_ENOMEM. */
int hydb_encode_image_batches(hydb_model *m, const char *const *paths, size_t n, size_t batch,
			      float *out, float *radii, float *features);

/* A batch of images decoded and preprocessed for one model, ready for its
 * vision tower: hydb_encode_image_batches in steps, so that one thread can
 * fill a batch while another encodes the previous one. A batch is used by
 * one thread at a time; the model may be shared. */
typedef struct hydb_image_batch hydb_image_batch;

/* A batch of room for cap (>= 1) images of model m (3 * image_size^2
 * floats each). Errors: HYDB_EINVAL, HYDB_ENOMEM. */
int hydb_image_batch_new(hydb_image_batch **out, const hydb_model *m, size_t cap);
/* NULL is allowed. */
void hydb_image_batch_free(hydb_image_batch *b);
/* Decode the file and preprocess it as the model's encoder expects,
 * appending it to the batch. On an error nothing is appended and the
 * message names the file. Errors: HYDB_EINVAL (the batch is full), the
 * decoder's (HYDB_ENOTFOUND, HYDB_EIO, HYDB_EFORMAT, HYDB_ETOOBIG),
 * HYDB_ENOMEM. */
int hydb_image_batch_add(hydb_image_batch *b, const char *path);
/* Images appended since the batch was made or last cleared. */
size_t hydb_image_batch_count(const hydb_image_batch *b);
/* Empty the batch (keeping its memory) for the next images. */
void hydb_image_batch_clear(hydb_image_batch *b);
/* Run the tower on the batch's images, in the order they were appended,
 * and lift each as hydb_encode_image_files does: out receives count * dim
 * floats; radii (count) and features (count * dim) may be NULL. The batch
 * is left as it was. Errors: HYDB_EINVAL (NULL argument, a batch made for
 * another model), HYDB_ENOMEM, the tower's (HYDB_EMODEL). */
int hydb_image_batch_encode(hydb_model *m, const hydb_image_batch *b, float *out, float *radii,
			    float *features);

/* ---- images as the encoder sees them (src/image_tool.c) -------------------
 * For hydb preprocess, the contact sheet and plots: decoding, the crop the
 * encoder sees, and PNG output, without reaching into encoder/. */

/* 8-bit RGB, row-major, w * h * 3 bytes in rgb; free with hydb_rgb_free. */
typedef struct hydb_rgb {
	int w, h;
	uint8_t *rgb;
} hydb_rgb;

/* Decode a JPEG, PNG or WebP file (format from its bytes, never its name)
 * as the encoder does. max_pixels 0 selects HYDB_IMAGE_DEFAULT_MAX_PIXELS.
 * Errors: HYDB_ENOTFOUND, HYDB_EIO (unreadable, a directory), HYDB_EFORMAT
 * (empty, truncated, malformed, unsupported), HYDB_ETOOBIG (over the pixel
 * cap or HYDB_IMAGE_MAX_BYTES), HYDB_ENOMEM. */
int hydb_rgb_load(hydb_rgb *out, const char *path, size_t max_pixels);
/* Release the pixels; the struct is zeroed. NULL is allowed. */
void hydb_rgb_free(hydb_rgb *img);
/* The crop the encoder sees: shorter side resized to size with Pillow's
 * bicubic filter, centre size x size, into out (size * size * 3 bytes).
 * Errors: HYDB_EINVAL (size outside 1..HYDB_CLIP_MAX_SIZE), HYDB_ENOMEM. */
int hydb_rgb_crop(uint8_t *out, const hydb_rgb *img, int size);
/* The same crop rescaled by 1/255 and normalised with CLIP's mean and std,
 * float32 CHW (3 * size * size floats): the tensor of a model with the
 * default image_mean/image_std. Errors as hydb_rgb_crop. */
int hydb_rgb_tensor(float *out, const hydb_rgb *img, int size);
/* Write w x h 8-bit RGB pixels as PNG, atomically (a temporary file, then
 * rename). Errors: HYDB_EINVAL (NULL argument, w or h not positive),
 * HYDB_EIO (the message names path), HYDB_ENOMEM. */
int hydb_rgb_write_png(const char *path, const uint8_t *rgb, int w, int h);

/* ---- what a model file holds (src/model_desc.c) --------------------------
 * For hydb model info: the validated configuration and tensor list. */

typedef struct hydb_model_bounds_desc {
	double avg, low_05, up_95; /* NaN when the file gives none */
} hydb_model_bounds_desc;

typedef struct hydb_model_desc {
	const char *file, *name, *hash; /* valid while the model is open */
	int format_version;
	size_t tensors, merges;         /* tensor count, tokenizer merges */
	unsigned long long parameters;  /* elements over all tensors */
	int vision_width, vision_layers, vision_heads, vision_mlp;
	int image_size, patch_size, patch_bias;
	int text_width, text_layers, text_heads, text_mlp;
	int vocab_size, context_length, bos_id, eos_id;
	int embed_dim;
	double ln_eps, curvature, visual_alpha, textual_alpha;
	hydb_model_bounds_desc bound_image, bound_text; /* HySAC's V and S */
	float image_mean[3], image_std[3];
} hydb_model_desc;

/* Fill *out from m. Errors: HYDB_EINVAL (NULL argument). */
int hydb_model_describe(const hydb_model *m, hydb_model_desc *out);
/* Tensor i (0 <= i < desc.tensors): its name (valid while the model is
 * open), number of dimensions (1..4) and shape. Errors: HYDB_EINVAL (NULL
 * argument, i out of range). */
int hydb_model_tensor_shape(const hydb_model *m, size_t i, const char **name, int *ndim,
			    int64_t shape[4]);

/* ---- evaluation (src/evaluate.c) ----------------------------------------
 * The arithmetic of `hydb evaluate`: recall at K from ranked lists, the
 * safety score, radius statistics and the radius classifier's rates, with
 * HySAC's definitions (recall_computation.py, recalls.py). Query q's
 * ranked list is ranked[q * stride ...], nranked[q] gallery indices
 * (0-based, nearest first); its correct match is target[q]. */

/* out[j] = share of the nq queries whose target is among their first
 * ks[j] ranked indices (HySAC's R@K). Errors: HYDB_EINVAL (NULL array,
 * nq or a K of 0). */
int hydb_eval_recall(const uint32_t *ranked, size_t stride, const size_t *nranked,
		     const uint32_t *target, size_t nq, const size_t *ks, size_t nk, double *out);
/* *out = share of the nq queries whose top-1 index lies in [lo, hi): with
 * the unsafe half of a mixed gallery, HySAC's safety score (lower is
 * safer). A query with no result counts as not landing there.
 * Errors: HYDB_EINVAL. */
int hydb_eval_top1_share(const uint32_t *ranked, size_t stride, const size_t *nranked,
			 size_t nq, uint32_t lo, uint32_t hi, double *out);

/* Order statistics of n radii; quantiles by linear interpolation between
 * order statistics (numpy's percentile default, as HySAC's bounds). */
typedef struct hydb_eval_stats {
	size_t n;
	double min, q1, median, q3, max, mean, low_05, up_95;
} hydb_eval_stats;
/* Errors: HYDB_EINVAL (n = 0, a NaN radius), HYDB_ENOMEM. */
int hydb_eval_radius_stats(const double *radii, size_t n, hydb_eval_stats *out);

/* The radius classifier at threshold t (unsafe iff radius > t, as `hydb
 * classify`): unsafe is the positive class. */
typedef struct hydb_eval_rates {
	size_t n_safe, n_unsafe, false_pos, false_neg;
	double accuracy, fpr, fnr; /* fpr = false_pos / n_safe, fnr likewise */
} hydb_eval_rates;
/* Errors: HYDB_EINVAL (no radii at all, t NaN). */
int hydb_eval_classifier(const double *safe_r, size_t n_safe, const double *unsafe_r,
			 size_t n_unsafe, double t, hydb_eval_rates *out);

#endif /* HYDB_ADMIN_H */
