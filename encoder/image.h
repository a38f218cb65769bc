/*
 * image.h - image decoding and CLIP preprocessing for the encoder (internal).
 *
 * The encoder must see the same 224x224 pixels as the reference pipeline
 * (PIL + Hugging Face CLIPImageProcessor), so decoding follows PIL's
 * convert("RGB") and resizing reproduces Pillow's fixed-point bicubic
 * filter bit for bit.
 */
#ifndef HYDB_IMAGE_H
#define HYDB_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* The limits (HYDB_IMAGE_MAX_BYTES, HYDB_IMAGE_DEFAULT_MAX_PIXELS,
 * HYDB_CLIP_SIZE, HYDB_CLIP_MAX_SIZE) are public, in hydb.h: the encode
 * calls and the command-line tool state them too. */
#include "hydb.h"

/* CLIPImageProcessor's image_mean / image_std. */
extern const float hydb_clip_mean[3];
extern const float hydb_clip_std[3];

typedef struct hydb_image {
	int w, h;
	uint8_t *rgb; /* w*h*3, row-major RGB; free with hydb_image_free */
} hydb_image;

/* Decode a JPEG, PNG (or WebP when built with it) file to 8-bit RGB.
 * max_pixels = 0 selects HYDB_IMAGE_DEFAULT_MAX_PIXELS. The format is taken
 * from the magic bytes, never from the file name.
 * Errors: HYDB_ENOTFOUND, HYDB_EIO (unreadable, a directory), HYDB_EFORMAT
 * (empty, truncated, malformed, unsupported), HYDB_ETOOBIG (over the pixel or
 * byte cap, checked before pixel memory is allocated), HYDB_ENOMEM. */
int hydb_image_decode_file(hydb_image *out, const char *path, size_t max_pixels);
/* The same from memory; name (may be NULL) is used in error messages. */
int hydb_image_decode_memory(hydb_image *out, const void *data, size_t len,
			     size_t max_pixels, const char *name);
/* Release the pixels; the struct is zeroed. NULL is allowed. */
void hydb_image_free(hydb_image *img);

/* CLIPImageProcessor geometry on uint8: shorter side resized to size with
 * Pillow's BICUBIC, centre crop size x size. out_hwc: size*size*3 bytes. */
int hydb_clip_preprocess_u8(uint8_t *out_hwc, const hydb_image *img, int size);
/* The crop rescaled by 1/255 and normalised per channel, float32 CHW
 * (size*size*3 floats). mean/std NULL select the CLIP constants. */
int hydb_clip_preprocess(float *out_chw, const hydb_image *img, int size,
			 const float mean[3], const float std[3]);

/* Write 8-bit RGB as PNG, atomically (temporary file, then rename). */
int hydb_png_write(const char *path, const uint8_t *rgb, int w, int h);

/* libpng callbacks shared by the reader and the writer: the message is kept
 * in a struct hydb_png_err passed as libpng's error pointer, and nothing is
 * printed. Declared only where png.h has been included. */
#ifdef PNG_LIBPNG_VER
struct hydb_png_err {
	char msg[200];
};
void hydb_png_on_error(png_structp png, png_const_charp msg);
void hydb_png_on_warning(png_structp png, png_const_charp msg);
#endif

#endif /* HYDB_IMAGE_H */
