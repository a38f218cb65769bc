/*
 * fuzz_image.c - JPEG/PNG/WebP decoding from memory and the CLIP crop
 * (encoder/image.h). The pixel cap keeps forged headers from asking for
 * more than a few megabytes; the crop side varies with the input size so
 * that up- and down-scaling and 1-pixel crops are all reached.
 */
#include "tests/fuzz/fuzz.h"

#include "encoder/image.h"

#define FUZZ_MAX_PIXELS ((size_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hydb_image img = {0};
	uint8_t *crop;
	int side = 1 + (int)(size % 64);
	if (hydb_image_decode_memory(&img, data, size, FUZZ_MAX_PIXELS, "fuzz-image") < 0)
		return 0;
	FUZZ_CHECK(img.w > 0 && img.h > 0 && img.rgb);
	FUZZ_CHECK((size_t)img.w * (size_t)img.h <= FUZZ_MAX_PIXELS);
	crop = malloc((size_t)side * side * 3);
	if (crop) {
		FUZZ_CHECK(hydb_clip_preprocess_u8(crop, &img, side) == 0);
		free(crop);
	}
	hydb_image_free(&img);
	return 0;
}
