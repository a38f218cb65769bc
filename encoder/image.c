/*
 * image.c - decode JPEG, PNG and (optionally) WebP to 8-bit RGB.
 *
 * The conversions follow PIL's Image.open(...).convert("RGB"), which is what
 * the reference encoder was fed: alpha is dropped (not composited), grey is
 * replicated, 16-bit colour keeps the high byte, and 16-bit grey is clipped
 * to 255 (PIL converts its 32-bit "I" mode to 8 bits by clipping).
 *
 * Every decoder reads the header first and refuses images over the pixel cap
 * before allocating pixel memory, so a forged header cannot exhaust memory.
 *
 * EXIF orientation, ICC profiles and PNG gamma are ignored on purpose: the
 * reference pipeline ignores them too, and the encoder was trained on what
 * it saw.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#ifdef HAVE_WEBP
#include <webp/decode.h>
#endif

#include "encoder/image.h"
#include "base/base.h"

const float hydb_clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float hydb_clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

enum img_format { FMT_UNKNOWN, FMT_JPEG, FMT_PNG, FMT_WEBP, FMT_GIF, FMT_BMP,
		  FMT_TIFF };

void hydb_image_free(hydb_image *img)
{
	if (!img)
		return;
	free(img->rgb);
	memset(img, 0, sizeof *img);
}

static enum img_format sniff(const uint8_t *p, size_t len)
{
	static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
		return FMT_JPEG;
	if (len >= 8 && !memcmp(p, png_sig, 8))
		return FMT_PNG;
	if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
		return FMT_WEBP;
	if (len >= 4 && !memcmp(p, "GIF8", 4))
		return FMT_GIF;
	if (len >= 2 && !memcmp(p, "BM", 2))
		return FMT_BMP;
	if (len >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4)))
		return FMT_TIFF;
	return FMT_UNKNOWN;
}

/* Check the declared size against the cap and allocate the RGB buffer. */
static int alloc_pixels(hydb_image *out, unsigned long w, unsigned long h,
			size_t max_pixels, const char *name)
{
	size_t npix, bytes;
	RETURN_ERROR_IF(w == 0 || h == 0, HYDB_EFORMAT,
			"image '%s': zero width or height", name);
	RETURN_ERROR_IF(w > INT32_MAX || h > INT32_MAX || hydb_mul_size(&npix, w, h) < 0 ||
				npix > max_pixels,
			HYDB_ETOOBIG, "image '%s': %lux%lu pixels exceeds the limit of %zu",
			name, w, h, max_pixels);
	RETURN_ERROR_IF(hydb_mul_size(&bytes, npix, 3) < 0, HYDB_ETOOBIG,
			"image '%s': size overflows", name);
	out->rgb = malloc(bytes);
	RETURN_ERROR_IF(!out->rgb, HYDB_ENOMEM, "image '%s': cannot allocate %zu bytes",
			name, bytes);
	out->w = (int)w;
	out->h = (int)h;
	return HYDB_OK;
}

/* ---- JPEG ---------------------------------------------------------------- */

struct jpeg_ctx {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX];
};

static void jpeg_fail(j_common_ptr cinfo)
{
	struct jpeg_ctx *ctx = (struct jpeg_ctx *)cinfo->err;
	cinfo->err->format_message(cinfo, ctx->msg);
	longjmp(ctx->jump, 1);
}

/* libjpeg pads a truncated stream with grey and only warns; PIL refuses such
 * files, so the end-of-data warning is fatal here. Other warnings (extraneous
 * bytes and the like) are tolerated as PIL tolerates them. */
static void jpeg_message(j_common_ptr cinfo, int level)
{
	if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
		jpeg_fail(cinfo);
}

static void jpeg_silent(j_common_ptr cinfo) { (void)cinfo; }

/* PIL's CMYK -> RGB: each channel is (255-k) scaled down by the ink. */
static void cmyk_to_rgb(uint8_t *dst, const uint8_t *src, int w, int inverted)
{
	for (int x = 0; x < w; x++) {
		int v[4];
		for (int c = 0; c < 4; c++)
			v[c] = inverted ? 255 - src[4 * x + c] : src[4 * x + c];
		int nk = 255 - v[3];
		for (int c = 0; c < 3; c++) {
			int t = v[c] * nk + 128;
			int r = nk - (((t >> 8) + t) >> 8);
			dst[3 * x + c] = (uint8_t)(r < 0 ? 0 : r);
		}
	}
}

static void jpeg_read_rows(struct jpeg_decompress_struct *ci, hydb_image *out,
			   uint8_t *cmyk_row)
{
	int inverted = ci->saw_Adobe_marker;
	while (ci->output_scanline < ci->output_height) {
		uint8_t *dst = out->rgb + (size_t)ci->output_scanline * out->w * 3;
		JSAMPROW row = cmyk_row ? cmyk_row : dst;
		jpeg_read_scanlines(ci, &row, 1);
		if (cmyk_row)
			cmyk_to_rgb(dst, cmyk_row, out->w, inverted);
	}
}

static int decode_jpeg(hydb_image *out, const uint8_t *data, size_t len,
		       size_t max_pixels, const char *name)
{
	struct jpeg_decompress_struct ci;
	struct jpeg_ctx ctx;
	uint8_t *volatile cmyk_row = NULL;
	int rc;

	ci.err = jpeg_std_error(&ctx.pub);
	ctx.pub.error_exit = jpeg_fail;
	ctx.pub.emit_message = jpeg_message;
	ctx.pub.output_message = jpeg_silent;
	jpeg_create_decompress(&ci);
	if (setjmp(ctx.jump)) {
		jpeg_destroy_decompress(&ci);
		free(cmyk_row);
		hydb_image_free(out);
		return hydb_error_set(HYDB_EFORMAT, "image '%s': JPEG: %s", name, ctx.msg);
	}
	jpeg_mem_src(&ci, data, (unsigned long)len);
	jpeg_read_header(&ci, TRUE);
	rc = alloc_pixels(out, ci.image_width, ci.image_height, max_pixels, name);
	if (rc < 0) {
		jpeg_destroy_decompress(&ci);
		return rc;
	}
	if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
		ci.out_color_space = JCS_CMYK;
		cmyk_row = malloc((size_t)out->w * 4);
		if (!cmyk_row) {
			jpeg_destroy_decompress(&ci);
			hydb_image_free(out);
			return hydb_error_set(HYDB_ENOMEM, "image '%s': out of memory", name);
		}
	} else {
		ci.out_color_space = JCS_RGB;
	}
	jpeg_start_decompress(&ci);
	jpeg_read_rows(&ci, out, cmyk_row);
	/* Trailing data after the last scanline is not needed (PIL stops here
	 * too), so the decompressor is aborted rather than finished. */
	jpeg_destroy_decompress(&ci);
	free(cmyk_row);
	return HYDB_OK;
}

/* ---- PNG ----------------------------------------------------------------- */

struct png_ctx {
	const uint8_t *data;
	size_t len, pos;
	struct hydb_png_err err;
};

void hydb_png_on_error(png_structp png, png_const_charp msg)
{
	struct hydb_png_err *err = png_get_error_ptr(png);
	snprintf(err->msg, sizeof err->msg, "%s", msg);
	/* libpng's own handler would print before jumping. */
	png_longjmp(png, 1);
}

void hydb_png_on_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void png_read_mem(png_structp png, png_bytep dst, png_size_t n)
{
	struct png_ctx *ctx = png_get_io_ptr(png);
	if (n > ctx->len - ctx->pos)
		png_error(png, "file is truncated");
	memcpy(dst, ctx->data + ctx->pos, n);
	ctx->pos += n;
}

/* Transforms that leave 8-bit RGB, except 16-bit grey which stays 16-bit
 * grey (returned as 1) because PIL clips it rather than keeping the high
 * byte. */
static int png_setup_transforms(png_structp png, png_infop info)
{
	int ct = png_get_color_type(png, info);
	int depth = png_get_bit_depth(png, info);
	if (ct == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(png);
	if (ct == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(png);
	png_set_strip_alpha(png);
	png_set_interlace_handling(png);
	if (ct == PNG_COLOR_TYPE_GRAY && depth == 16)
		return 1;
	png_set_strip_16(png);
	if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA)
		png_set_gray_to_rgb(png);
	return 0;
}

/* Row pointers into buf (rows of rowbytes); NULL on overflow/oom. */
static png_bytepp png_rows(uint8_t *buf, int h, size_t rowbytes)
{
	png_bytepp rows = hydb_alloc_array((size_t)h, sizeof *rows, "PNG rows");
	if (rows)
		for (int y = 0; y < h; y++)
			rows[y] = buf + (size_t)y * rowbytes;
	return rows;
}

static void grey16_to_rgb(uint8_t *rgb, const uint8_t *g16, size_t npix)
{
	for (size_t i = 0; i < npix; i++) {
		uint8_t v = g16[2 * i] ? 255 : g16[2 * i + 1];
		rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v;
	}
}

struct png_job {
	png_structp png;
	png_infop info;
	uint8_t *grey16;
	png_bytepp rows;
};

static void png_job_end(struct png_job *job)
{
	if (job->png)
		png_destroy_read_struct(&job->png, &job->info, NULL);
	free(job->grey16);
	free(job->rows);
	free(job);
}

/* The body run under libpng's setjmp; returns 0 or a negative error after
 * png_read_info (header) failures that are ours, not libpng's. */
static int png_decode_body(struct png_job *job, hydb_image *out, size_t max_pixels,
			   const char *name)
{
	png_read_info(job->png, job->info);
	FORWARD_IF_ERROR(alloc_pixels(out, png_get_image_width(job->png, job->info),
				      png_get_image_height(job->png, job->info),
				      max_pixels, name));
	int grey16 = png_setup_transforms(job->png, job->info);
	png_read_update_info(job->png, job->info);
	size_t rowbytes = png_get_rowbytes(job->png, job->info);
	size_t want = (size_t)out->w * (grey16 ? 2 : 3);
	RETURN_ERROR_IF(rowbytes != want, HYDB_EFORMAT,
			"image '%s': PNG: unexpected row size %zu", name, rowbytes);
	uint8_t *buf = out->rgb;
	if (grey16) {
		job->grey16 = hydb_alloc_array((size_t)out->h, rowbytes, "PNG grey rows");
		if (!job->grey16)
			return HYDB_ENOMEM;
		buf = job->grey16;
	}
	job->rows = png_rows(buf, out->h, rowbytes);
	if (!job->rows)
		return HYDB_ENOMEM;
	png_read_image(job->png, job->rows);
	if (grey16)
		grey16_to_rgb(out->rgb, job->grey16, (size_t)out->w * out->h);
	return HYDB_OK;
}

static int decode_png(hydb_image *out, const uint8_t *data, size_t len,
		      size_t max_pixels, const char *name)
{
	struct png_ctx ctx = {.data = data, .len = len, .pos = 0};
	/* On the heap: its fields change between setjmp and a longjmp. */
	struct png_job *job = calloc(1, sizeof *job);
	int rc;

	RETURN_ERROR_IF(!job, HYDB_ENOMEM, "image '%s': out of memory", name);
	job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx.err,
					  hydb_png_on_error, hydb_png_on_warning);
	if (job->png)
		job->info = png_create_info_struct(job->png);
	if (!job->info) {
		png_job_end(job);
		return hydb_error_set(HYDB_ENOMEM, "image '%s': out of memory", name);
	}
	png_set_read_fn(job->png, &ctx, png_read_mem);
	/* Ancillary chunks (compressed text, profiles) cannot inflate past
	 * this, whatever the libpng build default. */
	png_set_chunk_malloc_max(job->png, (png_alloc_size_t)8 << 20);
	if (setjmp(png_jmpbuf(job->png)))
		rc = hydb_error_set(HYDB_EFORMAT, "image '%s': PNG: %s", name, ctx.err.msg);
	else
		rc = png_decode_body(job, out, max_pixels, name);
	png_job_end(job);
	if (rc < 0)
		hydb_image_free(out);
	return rc;
}

/* ---- WebP ---------------------------------------------------------------- */

#ifdef HAVE_WEBP
static int decode_webp(hydb_image *out, const uint8_t *data, size_t len,
		       size_t max_pixels, const char *name)
{
	WebPBitstreamFeatures f;
	RETURN_ERROR_IF(WebPGetFeatures(data, len, &f) != VP8_STATUS_OK, HYDB_EFORMAT,
			"image '%s': WebP: malformed header", name);
	RETURN_ERROR_IF(f.has_animation, HYDB_EFORMAT,
			"image '%s': WebP: animated images are not supported", name);
	RETURN_ERROR_IF(f.width <= 0 || f.height <= 0, HYDB_EFORMAT,
			"image '%s': WebP: bad dimensions", name);
	FORWARD_IF_ERROR(alloc_pixels(out, (unsigned long)f.width,
				      (unsigned long)f.height, max_pixels, name));
	size_t bytes = (size_t)out->w * out->h * 3;
	if (!WebPDecodeRGBInto(data, len, out->rgb, bytes, out->w * 3)) {
		hydb_image_free(out);
		return hydb_error_set(HYDB_EFORMAT, "image '%s': WebP: corrupt or truncated",
				      name);
	}
	return HYDB_OK;
}
#endif

/* ---- entry points -------------------------------------------------------- */

int hydb_image_decode_memory(hydb_image *out, const void *data, size_t len,
			     size_t max_pixels, const char *name)
{
	static const char *const unsupported[] = {
		[FMT_GIF] = "GIF", [FMT_BMP] = "BMP", [FMT_TIFF] = "TIFF"};
	RETURN_ERROR_IF(!out, HYDB_EINVAL, "image decode: out is NULL");
	memset(out, 0, sizeof *out);
	if (!name)
		name = "<memory>";
	RETURN_ERROR_IF(!data && len, HYDB_EINVAL, "image '%s': data is NULL", name);
	RETURN_ERROR_IF(len == 0, HYDB_EFORMAT, "image '%s': empty file", name);
	RETURN_ERROR_IF(len > HYDB_IMAGE_MAX_BYTES, HYDB_ETOOBIG,
			"image '%s': %zu bytes exceeds the limit of %zu", name, len,
			HYDB_IMAGE_MAX_BYTES);
	if (max_pixels == 0)
		max_pixels = HYDB_IMAGE_DEFAULT_MAX_PIXELS;
	enum img_format fmt = sniff(data, len);
	switch (fmt) {
	case FMT_JPEG: return decode_jpeg(out, data, len, max_pixels, name);
	case FMT_PNG: return decode_png(out, data, len, max_pixels, name);
#ifdef HAVE_WEBP
	case FMT_WEBP: return decode_webp(out, data, len, max_pixels, name);
#else
	case FMT_WEBP:
		return hydb_error_set(HYDB_EFORMAT,
				      "image '%s': WebP support was not built in", name);
#endif
	case FMT_GIF:
	case FMT_BMP:
	case FMT_TIFF:
		return hydb_error_set(HYDB_EFORMAT,
				      "image '%s': %s is not supported (use JPEG or PNG)",
				      name, unsupported[fmt]);
	default:
		return hydb_error_set(HYDB_EFORMAT,
				      "image '%s': not a JPEG, PNG or WebP image", name);
	}
}

static int os_error(int err, const char *path)
{
	int code = (err == ENOENT || err == ENOTDIR) ? HYDB_ENOTFOUND : HYDB_EIO;
	return hydb_error_set(code, "image '%s': %s", path, strerror(err));
}

/* Read a whole regular file of at most HYDB_IMAGE_MAX_BYTES. */
static int read_file(uint8_t **out, size_t *len, const char *path)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO given as an image must fail, not hang the open. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return os_error(errno, path);
	if (fstat(fd, &st) < 0) {
		int err = errno;
		close(fd);
		return os_error(err, path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return hydb_error_set(HYDB_EIO, "image '%s': %s", path,
				      S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
	}
	if ((uint64_t)st.st_size > HYDB_IMAGE_MAX_BYTES) {
		close(fd);
		return hydb_error_set(HYDB_ETOOBIG, "image '%s': %lld bytes exceeds the limit of %zu",
				      path, (long long)st.st_size, HYDB_IMAGE_MAX_BYTES);
	}
	size_t n = (size_t)st.st_size, got = 0;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf) {
		close(fd);
		return hydb_error_set(HYDB_ENOMEM, "image '%s': cannot allocate %zu bytes", path, n);
	}
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int err = r < 0 ? errno : EIO;
			free(buf);
			close(fd);
			return os_error(err, path);
		}
		got += (size_t)r;
	}
	close(fd);
	*out = buf;
	*len = n;
	return HYDB_OK;
}

int hydb_image_decode_file(hydb_image *out, const char *path, size_t max_pixels)
{
	uint8_t *data = NULL;
	size_t len = 0;
	RETURN_ERROR_IF(!out || !path, HYDB_EINVAL, "image decode: NULL argument");
	memset(out, 0, sizeof *out);
	FORWARD_IF_ERROR(read_file(&data, &len, path));
	int rc = hydb_image_decode_memory(out, data, len, max_pixels, path);
	free(data);
	return rc;
}
