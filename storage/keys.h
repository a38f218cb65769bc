/*
 * keys.h - how the store forms LMDB keys (internal to storage/): big-endian
 * integers so that LMDB's byte order is numeric order, radii as sortable
 * bit patterns, and long external keys as a prefix plus a 128-bit hash.
 */
#ifndef HYDB_STORAGE_KEYS_H
#define HYDB_STORAGE_KEYS_H

#include <stdint.h>
#include <string.h>
#include <xxhash.h>

/* Keys longer than this are stored under a prefix + 128-bit hash, well
 * inside LMDB's 511-byte key limit. */
#define HYDB_KEY_DIRECT_MAX 400
#define HYDB_KEY_PREFIX 350

static inline void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}
static inline void put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}
static inline uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t get_be64(const unsigned char *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* Non-negative floats order like their bit patterns. */
static inline uint32_t radius_bits(double r)
{
	float f = r < 0 ? 0.0f : (float)r;
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/* The LMDB key for an external key: itself, or prefix + XXH128 when long.
 * buf needs HYDB_KEY_DIRECT_MAX + 1 bytes. */
static inline size_t key_bytes(unsigned char *buf, const char *key, size_t len)
{
	XXH128_hash_t h;
	if (len <= HYDB_KEY_DIRECT_MAX) {
		memcpy(buf, key, len);
		return len;
	}
	memcpy(buf, key, HYDB_KEY_PREFIX);
	buf[HYDB_KEY_PREFIX] = 0; /* cannot occur in a direct (UTF-8) key */
	h = XXH3_128bits(key, len);
	put_be64(buf + HYDB_KEY_PREFIX + 1, h.high64);
	put_be64(buf + HYDB_KEY_PREFIX + 9, h.low64);
	return HYDB_KEY_PREFIX + 17;
}

#endif
