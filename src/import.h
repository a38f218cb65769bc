/*
 * import.h - readers for vector files (.npy, .fvecs, JSON Lines) that yield
 * validated records in batches (internal). Every error names the file and
 * the row or line and says why.
 */
#ifndef HYDB_IMPORT_H
#define HYDB_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

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

int hydb_reader_open(hydb_reader **out, const char *path, hydb_import_format fmt,
		     size_t dim, double curvature, hydb_coords coords);
void hydb_reader_close(hydb_reader *r);

/* Next batch of up to max records; *n = 0 at the end. The records and
 * their strings stay valid until the next call. row0 receives the row
 * (0-based) of the first record, for resuming. */
int hydb_reader_next(hydb_reader *r, const hydb_record **recs, size_t *n,
		     size_t max, uint64_t *row0);
/* Skip the first rows (resume); fast for fixed-size formats. */
int hydb_reader_skip(hydb_reader *r, uint64_t rows);
/* Total rows if known up front (npy, fvecs), else 0. */
uint64_t hydb_reader_total(const hydb_reader *r);
/* Bytes consumed and file size, for progress. */
void hydb_reader_progress(const hydb_reader *r, uint64_t *done, uint64_t *total);

/* Space components from D+1 Lorentz coordinates (x0 first); checks the
 * upper sheet and the constraint x0^2 - |x|^2 = 1/c. */
int hydb_coords_from_time(float *out, const double *in, size_t dim, double c,
			  const char *where);
/* Space components from a point in the Poincare ball. */
int hydb_coords_from_poincare(float *out, const double *in, size_t dim, double c,
			      const char *where);

#endif
