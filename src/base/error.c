/*
 * error.c - error codes, the per-thread message, and the library version.
 *
 * The message lives in thread-local storage so that concurrent readers on
 * one handle never see each other's errors.
 */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define HYDB_MSG_MAX 1024

static _Thread_local char tls_msg[HYDB_MSG_MAX];

unsigned hydb_version_number(void) { return HYDB_VERSION_NUMBER; }
const char *hydb_version_string(void) { return HYDB_VERSION_STRING; }

const char *hydb_strerror(int code)
{
	switch (code) {
	case HYDB_OK: return "success";
	case HYDB_EINVAL: return "invalid argument";
	case HYDB_ENOMEM: return "out of memory";
	case HYDB_EIO: return "I/O error";
	case HYDB_ENOTFOUND: return "not found";
	case HYDB_EDIM: return "dimension mismatch";
	case HYDB_ENONFINITE: return "non-finite value";
	case HYDB_ECORRUPT: return "corrupt data";
	case HYDB_EVERSION: return "unsupported format version";
	case HYDB_EREADONLY: return "read-only database";
	case HYDB_ENOSPC: return "no space left on device";
	case HYDB_EBUSY: return "resource busy";
	case HYDB_ETOOBIG: return "value too large";
	case HYDB_EUTF8: return "invalid UTF-8";
	case HYDB_EFORMAT: return "malformed input";
	case HYDB_EMODEL: return "invalid model";
	case HYDB_EMISMATCH: return "incompatible database";
	case HYDB_EEXIST: return "already exists";
	default: return "unknown error";
	}
}

const char *hydb_last_error(void)
{
	return tls_msg[0] ? tls_msg : "no error";
}

int hydb_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
	va_end(ap);
	return code;
}

int hydb_error_prefix(int code, const char *fmt, ...)
{
	char prefix[HYDB_MSG_MAX / 2], old[HYDB_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, tls_msg, sizeof old);
	/* Keep the prefix whole; the older, inner message may be cut. */
	snprintf(tls_msg, sizeof tls_msg, "%s: %.*s", prefix, HYDB_MSG_MAX / 2 - 4, old);
	return code;
}
