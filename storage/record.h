/*
 * record.h - the on-disk form of one record (internal).
 *
 * LMDB has no page checksums, so every record carries an XXH64 of itself
 * and of its vector (which lives in a vector block): `hydb check` and every
 * decode verify them. Captions and metadata above a small size are zstd
 * compressed; short ones are stored raw because zstd's frame header would
 * make them larger.
 *
 * Layout (little-endian, packed by hand):
 *   hydb_rec_hdr, key bytes, caption bytes, meta bytes
 */
#ifndef HYDB_RECORD_H
#define HYDB_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define HYDB_REC_MAGIC 0x43455248u /* "HREC" */
#define HYDB_REC_VERSION 1

typedef struct hydb_rec_hdr {
	uint32_t magic;
	uint16_t version;
	uint8_t modality;
	uint8_t label;
	uint32_t slot;
	float radius;
	uint64_t id;
	uint64_t item;
	uint32_t dim;
	uint32_t key_len;
	uint32_t caption_len;   /* uncompressed length; 0 = none */
	uint32_t caption_zlen;  /* stored length; == caption_len when raw */
	uint32_t meta_len;
	uint32_t meta_zlen;
	uint32_t flags;         /* HYDB_REC_HAS_CAPTION | HYDB_REC_HAS_META */
	uint32_t reserved;
	uint64_t vec_hash;      /* XXH64 of the dim float32 components */
	uint64_t rec_hash;      /* XXH64 of the record with this field 0 */
} hydb_rec_hdr;

#define HYDB_REC_HAS_CAPTION 0x1u
#define HYDB_REC_HAS_META 0x2u

/* Encode into a malloc'd buffer (*out, *out_len; caller frees). */
int hydb_rec_encode(void **out, size_t *out_len, const hydb_record *rec,
		    uint64_t id, uint32_t slot, float radius, size_t dim);

/* Check magic, sizes and the record checksum. Returns HYDB_ECORRUPT with
 * the id in the message on failure. */
int hydb_rec_verify(const void *buf, size_t len, uint64_t id);
/* Change the label of an encoded record in place and re-seal its checksum.
 * Errors: HYDB_ENOMEM. */
int hydb_rec_set_label(void *buf, size_t len, hydb_label label);

/* Read the header of a verified record (copy; the buffer may be unaligned). */
void hydb_rec_header(hydb_rec_hdr *out, const void *buf);

/* Decode into a fresh entry (vector left NULL; the store fills it). */
int hydb_rec_decode(hydb_entry **out, const void *buf, size_t len,
		    uint64_t id);

uint64_t hydb_vec_hash(const float *v, size_t dim);

#endif
