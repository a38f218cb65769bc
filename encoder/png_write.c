/*
 * png_write.c - write 8-bit RGB as PNG.
 *
 * The file appears complete or not at all: it is written to a temporary name
 * in the same directory, synced, then renamed over the target, so a reader
 * (or a crash) never sees half an image.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>

#include "encoder/image.h"
#include "base/base.h"

/* Encode to an open stream; 0 or a negative error naming path. */
static int png_encode(FILE *f, const uint8_t *rgb, int w, int h, const char *path)
{
	struct hydb_png_err err = {{0}};
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err,
						  hydb_png_on_error, hydb_png_on_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!info) {
		png_destroy_write_struct(&png, NULL);
		return hydb_error_set(HYDB_ENOMEM, "PNG '%s': out of memory", path);
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		return hydb_error_set(HYDB_EIO, "PNG '%s': %s", path, err.msg);
	}
	png_init_io(png, f);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		     PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < h; y++)
		png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	return HYDB_OK;
}

static int close_synced(FILE *f, const char *path)
{
	int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
	int err = errno;
	if (fclose(f) != 0 && !bad) {
		bad = 1;
		err = errno;
	}
	if (bad)
		return hydb_error_set(err == ENOSPC ? HYDB_ENOSPC : HYDB_EIO,
				      "PNG '%s': %s", path, strerror(err));
	return HYDB_OK;
}

/* Create a fresh temporary file next to path; mode 0666 lets the umask
 * apply as for any ordinary output file (mkstemp would force 0600). */
static int open_temp(char **tmp_out, const char *path)
{
	static _Atomic unsigned counter;
	for (int attempt = 0; attempt < 100; attempt++) {
		char *tmp = NULL;
		RETURN_ERROR_IF(asprintf(&tmp, "%s.tmp%ld.%u", path, (long)getpid(),
					 counter++) < 0,
				HYDB_ENOMEM, "PNG '%s': out of memory", path);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd >= 0) {
			*tmp_out = tmp;
			return fd;
		}
		int err = errno;
		free(tmp);
		if (err != EEXIST)
			return hydb_error_set(err == ENOENT ? HYDB_ENOTFOUND : HYDB_EIO,
					      "PNG '%s': %s", path, strerror(err));
	}
	return hydb_error_set(HYDB_EIO, "PNG '%s': cannot create a temporary file", path);
}

int hydb_png_write(const char *path, const uint8_t *rgb, int w, int h)
{
	RETURN_ERROR_IF(!path || !rgb, HYDB_EINVAL, "PNG write: NULL argument");
	RETURN_ERROR_IF(w <= 0 || h <= 0, HYDB_EINVAL, "PNG '%s': bad size %dx%d", path, w, h);
	char *tmp = NULL;
	int fd = open_temp(&tmp, path);
	if (fd < 0)
		return fd;
	FILE *f = fdopen(fd, "wb");
	int rc;
	if (!f) {
		close(fd);
		rc = hydb_error_set(HYDB_EIO, "PNG '%s': %s", path, strerror(errno));
	} else {
		rc = png_encode(f, rgb, w, h, path);
		int rc2 = close_synced(f, path);
		if (rc == HYDB_OK)
			rc = rc2;
	}
	if (rc == HYDB_OK && rename(tmp, path) != 0)
		rc = hydb_error_set(HYDB_EIO, "PNG '%s': rename: %s", path, strerror(errno));
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	return rc;
}
