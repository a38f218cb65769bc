/*
 * fuzz.h - shared by the fuzz targets, which build both as libFuzzer
 * programs (clang) and as replay programs run by 'make check'.
 */
#ifndef HYDB_FUZZ_H
#define HYDB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Readers that only take a path get the input through one scratch file per
 * process (in /dev/shm when it is writable, so no disk I/O), rewritten for
 * every input. suffix names the format, e.g. ".npy". Returns the path, or
 * NULL if the file cannot be written. */
const char *hydb_fuzz_file(const uint8_t *data, size_t size, const char *suffix);

/* A broken invariant is a finding, even without a memory error. */
#define FUZZ_CHECK(cond)          \
	do {                      \
		if (!(cond))      \
			abort();  \
	} while (0)

#endif
