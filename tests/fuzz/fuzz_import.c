/*
 * fuzz_import.c - the vector file readers (src/import.h). Built once per
 * format with HYDB_FUZZ_FMT set to HYDB_FMT_NPY, _FVECS or _JSONL.
 *
 * Input: two parameter bytes, then the file. Byte 0 picks the dimension
 * (1..8, low 3 bits) and the coordinate convention (bits 3-4); byte 1 the
 * batch size (1..16, low 4 bits) and whether to skip rows first (bit 4).
 */
#include "tests/fuzz/fuzz.h"

#include <math.h>

#include "src/import.h"

#ifndef HYDB_FUZZ_FMT
#define HYDB_FUZZ_FMT HYDB_FMT_JSONL
#endif

static const char *suffix(void)
{
	switch (HYDB_FUZZ_FMT) {
	case HYDB_FMT_NPY: return ".npy";
	case HYDB_FMT_FVECS: return ".fvecs";
	default: return ".jsonl";
	}
}

/* Every record the reader hands out must be usable as it stands. */
static void check_batch(const hydb_record *recs, size_t n, size_t dim)
{
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(recs[i].key && recs[i].key[0]);
		for (size_t k = 0; k < dim; k++)
			FUZZ_CHECK(isfinite(recs[i].vector[k]));
		FUZZ_CHECK(recs[i].modality <= HYDB_MOD_TEXT);
		FUZZ_CHECK(recs[i].label <= HYDB_LABEL_UNSAFE);
	}
}

static void read_all(hydb_reader *r, size_t dim, size_t batch, int skip)
{
	const hydb_record *recs;
	uint64_t row0, done, total;
	size_t n;
	if (skip && hydb_reader_skip(r, 2) < 0)
		return;
	for (int guard = 0; guard < 4096; guard++) {
		if (hydb_reader_next(r, &recs, &n, batch, &row0) < 0 || n == 0)
			break;
		check_batch(recs, n, dim);
		hydb_reader_progress(r, &done, &total);
		FUZZ_CHECK(done <= total);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const hydb_coords coords[4] = {HYDB_COORDS_SPACE, HYDB_COORDS_WITH_TIME,
					      HYDB_COORDS_POINCARE, HYDB_COORDS_SPACE};
	hydb_reader *r = NULL;
	const char *path;
	size_t dim, batch;
	if (size < 2)
		return 0;
	dim = 1 + (data[0] & 7);
	batch = 1 + (data[1] & 15);
	path = hydb_fuzz_file(data + 2, size - 2, suffix());
	if (!path)
		return 0;
	if (hydb_reader_open(&r, path, HYDB_FUZZ_FMT, dim, 1.0, coords[(data[0] >> 3) & 3]) < 0)
		return 0;
	read_all(r, dim, batch, data[1] & 16);
	hydb_reader_close(r);
	return 0;
}
