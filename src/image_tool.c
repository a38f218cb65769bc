/*
 * image_tool.c - images as the encoder sees them, for the command-line tool
 * (admin.h): hydb preprocess, the contact sheet and the radius plot use the
 * encoder's decoder, crop and PNG writer through these calls, so that the
 * tool never includes encoder/ and shows exactly the pixels the encoder
 * uses.
 */
#include "config.h"

#include <string.h>

#include "admin.h"
#include "encoder/image.h"

/* hydb_rgb is the tool's view of hydb_image: the same fields, so an image
 * passes between them by value. */
_Static_assert(sizeof(hydb_rgb) == sizeof(hydb_image), "hydb_rgb mirrors hydb_image");

static hydb_image as_image(const hydb_rgb *img)
{
	hydb_image out = {img->w, img->h, img->rgb};
	return out;
}

int hydb_rgb_load(hydb_rgb *out, const char *path, size_t max_pixels)
{
	hydb_image img = {0};
	RETURN_ERROR_IF(!out || !path, HYDB_EINVAL, "image: NULL argument");
	memset(out, 0, sizeof *out);
	FORWARD_IF_ERROR(hydb_image_decode_file(&img, path, max_pixels));
	out->w = img.w;
	out->h = img.h;
	out->rgb = img.rgb;
	return HYDB_OK;
}

void hydb_rgb_free(hydb_rgb *img)
{
	if (!img)
		return;
	hydb_image i = as_image(img);
	hydb_image_free(&i);
	memset(img, 0, sizeof *img);
}

int hydb_rgb_crop(uint8_t *out, const hydb_rgb *img, int size)
{
	RETURN_ERROR_IF(!out || !img, HYDB_EINVAL, "image: NULL argument");
	hydb_image i = as_image(img);
	return hydb_clip_preprocess_u8(out, &i, size);
}

/* No model here: hydb preprocess shows the tensor of CLIP's constants,
 * which the reference pipeline it is compared with uses. */
int hydb_rgb_tensor(float *out, const hydb_rgb *img, int size)
{
	RETURN_ERROR_IF(!out || !img, HYDB_EINVAL, "image: NULL argument");
	hydb_image i = as_image(img);
	return hydb_clip_preprocess(out, &i, size, NULL, NULL);
}

int hydb_rgb_write_png(const char *path, const uint8_t *rgb, int w, int h)
{
	return hydb_png_write(path, rgb, w, h);
}
