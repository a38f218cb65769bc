/*
 * import.h - readers for vector files (.npy, .fvecs, JSON Lines) that yield
 * validated records in batches (internal). Every error names the file and
 * the row or line and says why.
 */
#ifndef HYDB_IMPORT_H
#define HYDB_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef enum {
	HYDB_FMT_AUTO,
	HYDB_FMT_NPY,
	HYDB_FMT_FVECS,
	HYDB_FMT_JSONL
} hydb_import_format;

typedef enum {
	HYDB_COORDS_SPACE,    /* D space components (default) */
	HYDB_COORDS_WITH_TIME,/* D+1 columns: x0 first, checked on the sheet */
	HYDB_COORDS_POINCARE  /* Poincare ball of radius 1/sqrt(c) */
} hydb_coords;

typedef struct hydb_reader hydb_reader;

/* Opens path and checks its header (.npy/.fvecs: shape against dim, size
 * against the shape). HYDB_FMT_AUTO picks the format from the name (.npy,
 * .fvecs, .jsonl/.ndjson/.jl/.json) and refuses any other name, so that
 * a typo is not read as JSON Lines. Rows of .npy/.fvecs get the keys
 * BASE#ROW, BASE being path until hydb_reader_set_key_base. */
int hydb_reader_open(hydb_reader **out, const char *path, hydb_import_format fmt,
		     size_t dim, double curvature, hydb_coords coords);
void hydb_reader_close(hydb_reader *r);
/* The format actually read (never HYDB_FMT_AUTO). */
hydb_import_format hydb_reader_format(const hydb_reader *r);
/* Key base of .npy/.fvecs rows (copied; at most HYDB_MAX_KEY bytes). */
int hydb_reader_set_key_base(hydb_reader *r, const char *base);
/* XXH64 of the whole file, read through the open descriptor without
 * moving the read position: resuming is tied to the content. */
int hydb_reader_hash(hydb_reader *r, uint64_t *hash);

/* The default key base of a file: its path relative to the current
 * directory (directories resolved, "." and ".." removed), or its absolute
 * path when it lies outside; "a.npy", "./a.npy" and "$PWD/a.npy" all give
 * "a.npy", while "sub/a.npy" stays "sub/a.npy". */
int hydb_import_key_base(char *out, size_t size, const char *path);

/* Next batch of up to max records; *n = 0 at the end. The records and
 * their strings stay valid until the next call. row0 receives the row
 * (0-based) of the first record, for resuming. */
int hydb_reader_next(hydb_reader *r, const hydb_record **recs, size_t *n,
		     size_t max, uint64_t *row0);
/* Fixed-size formats (npy, fvecs): read every row once, reporting the
 * first bad one, then return rows nearest the origin first (ties in file
 * order) from the next hydb_reader_next on; row0 and hydb_reader_skip then
 * count rows in that order. A no-op for JSON Lines and single rows.
 * Errors: a row's own error (naming file and row), HYDB_EIO, HYDB_ENOMEM
 * (4 + 8 bytes per row). */
int hydb_reader_order_by_radius(hydb_reader *r);
/* Skip the first rows (resume); fast for fixed-size formats. */
int hydb_reader_skip(hydb_reader *r, uint64_t rows);
/* Total rows if known up front (npy, fvecs), else 0. */
uint64_t hydb_reader_total(const hydb_reader *r);
/* Bytes consumed and file size, for progress. */
void hydb_reader_progress(const hydb_reader *r, uint64_t *done, uint64_t *total);

#endif
