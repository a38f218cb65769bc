/* record.c - encode, verify and decode records (layout in record.h). */
#include "storage/record.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

/* Below this, zstd's frame overhead outweighs the gain. */
#define HYDB_ZSTD_MIN 128
#define HYDB_ZSTD_LEVEL 3

uint64_t hydb_vec_hash(const float *v, size_t dim)
{
	return XXH64(v, dim * sizeof(float), 0);
}

/* Compress src into dst if that saves space; returns the stored length. */
static size_t pack_text(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= HYDB_ZSTD_MIN) {
		size_t z = ZSTD_compress(dst, cap, src, len, HYDB_ZSTD_LEVEL);
		if (!ZSTD_isError(z) && z < len)
			return z;
	}
	memcpy(dst, src, len);
	return len;
}

/* The checksum of a record: XXH64 of the whole record with the checksum
 * field read as 0 (the header copy is hashed, then the rest, so a record
 * that is only read is never written to). */
static int rec_hash_of(uint64_t *out, const void *buf, size_t len)
{
	hydb_rec_hdr h;
	XXH64_state_t *st = XXH64_createState();
	if (!st)
		return -1;
	memcpy(&h, buf, sizeof h);
	h.rec_hash = 0;
	XXH64_reset(st, 0);
	XXH64_update(st, &h, sizeof h);
	XXH64_update(st, (const char *)buf + sizeof h, len - sizeof h);
	*out = XXH64_digest(st);
	XXH64_freeState(st);
	return 0;
}

/* Store the checksum in a record whose other bytes are final. */
static int rec_seal(void *buf, size_t len)
{
	hydb_rec_hdr h;
	uint64_t sum;
	if (rec_hash_of(&sum, buf, len) < 0)
		return hydb_error_set(HYDB_ENOMEM, "record checksum: out of memory");
	memcpy(&h, buf, sizeof h);
	h.rec_hash = sum;
	memcpy(buf, &h, sizeof h);
	return HYDB_OK;
}

int hydb_rec_set_label(void *buf, size_t len, hydb_label label)
{
	hydb_rec_hdr h;
	memcpy(&h, buf, sizeof h);
	h.label = (uint8_t)label;
	memcpy(buf, &h, sizeof h);
	return rec_seal(buf, len);
}

int hydb_rec_encode(void **out, size_t *out_len, const hydb_record *rec,
		    uint64_t id, uint32_t slot, float radius, size_t dim)
{
	size_t klen = strlen(rec->key);
	size_t clen = rec->caption ? strlen(rec->caption) : 0;
	size_t mlen = rec->meta ? strlen(rec->meta) : 0;
	size_t cap, ccap = clen ? ZSTD_compressBound(clen) : 0;
	size_t mcap = mlen ? ZSTD_compressBound(mlen) : 0;
	hydb_rec_hdr h;
	char *buf, *p;

	if (hydb_add_size(&cap, sizeof h, klen) < 0 ||
	    hydb_add_size(&cap, cap, ccap) < 0 ||
	    hydb_add_size(&cap, cap, mcap) < 0)
		return hydb_error_set(HYDB_ENOMEM, "record '%s': size overflows", rec->key);
	buf = malloc(cap);
	RETURN_ERROR_IF(!buf, HYDB_ENOMEM, "record '%s': out of memory", rec->key);

	memset(&h, 0, sizeof h);
	h.magic = HYDB_REC_MAGIC;
	h.version = HYDB_REC_VERSION;
	h.modality = (uint8_t)rec->modality;
	h.label = (uint8_t)rec->label;
	h.slot = slot;
	h.radius = radius;
	h.id = id;
	h.item = rec->item;
	h.dim = (uint32_t)dim;
	h.key_len = (uint32_t)klen;
	h.vec_hash = hydb_vec_hash(rec->vector, dim);
	p = buf + sizeof h;
	memcpy(p, rec->key, klen);
	p += klen;
	if (rec->caption) {
		h.flags |= HYDB_REC_HAS_CAPTION;
		h.caption_len = (uint32_t)clen;
		h.caption_zlen = (uint32_t)pack_text(p, ccap, rec->caption, clen);
		p += h.caption_zlen;
	}
	if (rec->meta) {
		h.flags |= HYDB_REC_HAS_META;
		h.meta_len = (uint32_t)mlen;
		h.meta_zlen = (uint32_t)pack_text(p, mcap, rec->meta, mlen);
		p += h.meta_zlen;
	}
	*out_len = (size_t)(p - buf);
	assert(*out_len <= cap && *out_len == sizeof h + klen + h.caption_zlen + h.meta_zlen);
	memcpy(buf, &h, sizeof h);
	rec_seal(buf, *out_len);
	*out = buf;
	return HYDB_OK;
}

void hydb_rec_header(hydb_rec_hdr *out, const void *buf)
{
	memcpy(out, buf, sizeof *out);
}

int hydb_rec_verify(const void *buf, size_t len, uint64_t id)
{
	hydb_rec_hdr h;
	uint64_t want, got;
	size_t need;

	RETURN_ERROR_IF(len < sizeof h, HYDB_ECORRUPT,
			"record %llu: truncated (%zu bytes)", (unsigned long long)id, len);
	memcpy(&h, buf, sizeof h);
	RETURN_ERROR_IF(h.magic != HYDB_REC_MAGIC, HYDB_ECORRUPT,
			"record %llu: bad magic", (unsigned long long)id);
	RETURN_ERROR_IF(h.version > HYDB_REC_VERSION, HYDB_EVERSION,
			"record %llu: record version %u is newer than this hydb",
			(unsigned long long)id, h.version);
	/* Every write is validated against these, so a record beyond them is
	 * damaged or forged; decoding would size buffers from them. */
	RETURN_ERROR_IF(h.key_len > HYDB_MAX_KEY || h.caption_len > HYDB_MAX_CAPTION ||
			h.meta_len > HYDB_MAX_META || h.modality > HYDB_MOD_TEXT ||
			h.label > HYDB_LABEL_UNSAFE, HYDB_ECORRUPT,
			"record %llu: length, modality or label out of range",
			(unsigned long long)id);
	need = sizeof h + (size_t)h.key_len + h.caption_zlen + h.meta_zlen;
	RETURN_ERROR_IF(need != len || h.id != id, HYDB_ECORRUPT,
			"record %llu: inconsistent lengths or id", (unsigned long long)id);
	want = h.rec_hash;
	RETURN_ERROR_IF(rec_hash_of(&got, buf, len) < 0, HYDB_ENOMEM,
			"record %llu: out of memory", (unsigned long long)id);
	RETURN_ERROR_IF(got != want, HYDB_ECORRUPT,
			"record %llu: checksum mismatch", (unsigned long long)id);
	return HYDB_OK;
}

static int unpack_text(char **out, const char *src, size_t zlen, size_t len,
		       uint64_t id, const char *what)
{
	char *s = malloc(len + 1);
	RETURN_ERROR_IF(!s, HYDB_ENOMEM, "record %llu: out of memory", (unsigned long long)id);
	if (zlen == len) {
		memcpy(s, src, len);
	} else {
		size_t got = ZSTD_decompress(s, len, src, zlen);
		if (ZSTD_isError(got) || got != len) {
			free(s);
			return hydb_error_set(HYDB_ECORRUPT, "record %llu: %s does not decompress",
					      (unsigned long long)id, what);
		}
	}
	s[len] = '\0';
	*out = s;
	return HYDB_OK;
}

int hydb_rec_decode(hydb_entry **out, const void *buf, size_t len, uint64_t id)
{
	hydb_rec_hdr h;
	hydb_entry *e;
	const char *p = (const char *)buf + sizeof h;
	int rc;

	FORWARD_IF_ERROR(hydb_rec_verify(buf, len, id));
	memcpy(&h, buf, sizeof h);
	e = calloc(1, sizeof *e);
	RETURN_ERROR_IF(!e, HYDB_ENOMEM, "record %llu: out of memory", (unsigned long long)id);
	e->id = id;
	e->item = h.item;
	e->radius = h.radius;
	e->modality = (hydb_modality)h.modality;
	e->label = (hydb_label)h.label;
	e->dim = h.dim;
	rc = unpack_text(&e->key, p, h.key_len, h.key_len, id, "key");
	p += h.key_len;
	if (rc == 0 && (h.flags & HYDB_REC_HAS_CAPTION))
		rc = unpack_text(&e->caption, p, h.caption_zlen, h.caption_len, id, "caption");
	p += h.caption_zlen;
	if (rc == 0 && (h.flags & HYDB_REC_HAS_META))
		rc = unpack_text(&e->meta, p, h.meta_zlen, h.meta_len, id, "metadata");
	if (rc < 0) {
		hydb_entry_free(e);
		return rc;
	}
	*out = e;
	return HYDB_OK;
}

void hydb_entry_free(hydb_entry *e)
{
	if (!e)
		return;
	free(e->key);
	free(e->vector);
	free(e->caption);
	free(e->meta);
	free(e);
}
