/*
 * fuzz_record.c - record verification and decoding (storage/record.h).
 *
 * Random bytes almost never carry a valid XXH64, so most inputs would stop
 * at the checksum. Byte 0 chooses: odd = the bytes as they are; even = the
 * rest is taken as a record whose magic, id, last length and checksum are
 * made consistent first, which is what a crafted database file holds, so
 * that decoding itself is fuzzed.
 */
#include "tests/fuzz/fuzz.h"

#include <string.h>
#include <xxhash.h>

#include "storage/record.h"

/* Make buf[0..len) pass hydb_rec_verify where the lengths allow it. */
static void forge(unsigned char *buf, size_t len)
{
	hydb_rec_hdr h;
	size_t used;
	memcpy(&h, buf, sizeof h);
	h.magic = HYDB_REC_MAGIC;
	if (h.version > HYDB_REC_VERSION)
		h.version = HYDB_REC_VERSION;
	h.id = 7;
	used = sizeof h + (size_t)h.key_len + h.caption_zlen;
	if (used <= len && len - used <= UINT32_MAX)
		h.meta_zlen = (uint32_t)(len - used);
	h.rec_hash = 0;
	memcpy(buf, &h, sizeof h);
	h.rec_hash = XXH64(buf, len, 0);
	memcpy(buf, &h, sizeof h);
}

static void check_entry(const hydb_entry *e, const hydb_rec_hdr *h)
{
	FUZZ_CHECK(e->key && strlen(e->key) <= h->key_len);
	FUZZ_CHECK(!(h->flags & HYDB_REC_HAS_CAPTION) || e->caption);
	FUZZ_CHECK(!(h->flags & HYDB_REC_HAS_META) || e->meta);
	FUZZ_CHECK(e->vector == NULL && e->dim == h->dim);
	FUZZ_CHECK(e->modality <= HYDB_MOD_TEXT && e->label <= HYDB_LABEL_UNSAFE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *buf;
	size_t len;
	uint64_t id = 7;
	hydb_entry *e = NULL;
	hydb_rec_hdr h;
	if (size < 1)
		return 0;
	len = size - 1;
	buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, len);
	if (!(data[0] & 1) && len >= sizeof h)
		forge(buf, len);
	else if (len >= sizeof h)
		id = ((const hydb_rec_hdr *)memcpy(&h, buf, sizeof h))->id;
	if (hydb_rec_verify(buf, len, id) == 0 && hydb_rec_decode(&e, buf, len, id) == 0) {
		hydb_rec_header(&h, buf);
		check_entry(e, &h);
		hydb_entry_free(e);
	}
	free(buf);
	return 0;
}
