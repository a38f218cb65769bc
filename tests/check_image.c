/*
 * check_image.c - image decoding, its failure modes, and the CLIP crop.
 *
 * PNGs are built byte by byte here (stored deflate blocks, hand-computed
 * CRC and Adler-32) so that every colour type and bit depth is exercised
 * with pixels whose expected RGB values follow from PIL's convert("RGB")
 * rules. Comparison with PIL on real photos is in test_preprocess.sh.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "encoder/image.h"
#include "base/base.h"

/* ---- byte builders ------------------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t n;
};

static void put(struct buf *b, const void *src, size_t n)
{
	b->p = realloc(b->p, b->n + n);
	ck_assert_ptr_nonnull(b->p);
	memcpy(b->p + b->n, src, n);
	b->n += n;
}

static void put_be32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {v >> 24, v >> 16, v >> 8, v};
	put(b, x, 4);
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & -(c & 1));
	}
	return ~c;
}

static void put_chunk(struct buf *b, const char *type, const uint8_t *data, size_t n)
{
	struct buf t = {0};
	put_be32(b, (uint32_t)n);
	put(&t, type, 4);
	if (n)
		put(&t, data, n);
	put(b, t.p, t.n);
	put_be32(b, crc32_of(t.p, t.n));
	free(t.p);
}

/* zlib stream of one stored (uncompressed) deflate block. */
static struct buf zlib_stored(const uint8_t *raw, size_t n)
{
	struct buf z = {0};
	uint32_t a = 1, s = 0;
	uint8_t head[7] = {0x78, 0x01, 0x01, n & 0xff, n >> 8, ~n & 0xff, (~n >> 8) & 0xff};
	ck_assert_uint_lt(n, 65536);
	put(&z, head, sizeof head);
	put(&z, raw, n);
	for (size_t i = 0; i < n; i++) {
		a = (a + raw[i]) % 65521;
		s = (s + a) % 65521;
	}
	put_be32(&z, (s << 16) | a);
	return z;
}

struct png_spec {
	uint32_t w, h;
	int depth, color_type, interlace;
	const uint8_t *raw;   /* filtered scanlines as they go into IDAT */
	size_t raw_len;
	const char *extra_type[2];
	const uint8_t *extra[2];
	size_t extra_len[2];
};

static struct buf make_png(const struct png_spec *s)
{
	static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	struct buf b = {0}, ihdr = {0};
	put(&b, sig, 8);
	put_be32(&ihdr, s->w);
	put_be32(&ihdr, s->h);
	uint8_t rest[5] = {s->depth, s->color_type, 0, 0, s->interlace};
	put(&ihdr, rest, 5);
	put_chunk(&b, "IHDR", ihdr.p, ihdr.n);
	free(ihdr.p);
	for (int i = 0; i < 2; i++)
		if (s->extra_type[i])
			put_chunk(&b, s->extra_type[i], s->extra[i], s->extra_len[i]);
	if (s->raw) {
		struct buf z = zlib_stored(s->raw, s->raw_len);
		put_chunk(&b, "IDAT", z.p, z.n);
		free(z.p);
	}
	put_chunk(&b, "IEND", NULL, 0);
	return b;
}

/* Decode from memory, expect success and the given w x h RGB pixels. */
static void expect_pixels(const struct buf *png, int w, int h, const uint8_t *rgb)
{
	hydb_image img;
	int rc = hydb_image_decode_memory(&img, png->p, png->n, 0, "case");
	ck_assert_msg(rc == HYDB_OK, "decode failed: %s", hydb_last_error());
	ck_assert_int_eq(img.w, w);
	ck_assert_int_eq(img.h, h);
	for (int i = 0; i < w * h * 3; i++)
		ck_assert_msg(img.rgb[i] == rgb[i], "byte %d: got %d want %d", i, img.rgb[i],
			      rgb[i]);
	hydb_image_free(&img);
}

/* A one-row PNG of the given type must decode to want (w RGB pixels). */
static void expect_row(int w, int depth, int color_type, const uint8_t *raw,
		       size_t raw_len, const uint8_t *want)
{
	struct png_spec s = {.w = w, .h = 1, .depth = depth, .color_type = color_type,
			     .raw = raw, .raw_len = raw_len};
	struct buf b = make_png(&s);
	expect_pixels(&b, w, 1, want);
	free(b.p);
}

/* ---- PNG colour types ---------------------------------------------------- */

START_TEST(test_png_palette_with_transparency_drops_alpha)
{
	/* 2-bit indices 0,1,2,3 in one byte; tRNS makes 0 and 1 transparent,
	 * which convert("RGB") ignores. */
	static const uint8_t raw[] = {0, 0x1b};
	static const uint8_t plte[] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 200, 100, 0};
	static const uint8_t trns[] = {0, 128};
	struct png_spec s = {.w = 4, .h = 1, .depth = 2, .color_type = 3, .raw = raw,
			     .raw_len = sizeof raw, .extra_type = {"PLTE", "tRNS"},
			     .extra = {plte, trns}, .extra_len = {sizeof plte, sizeof trns}};
	struct buf b = make_png(&s);
	expect_pixels(&b, 4, 1, plte);
	free(b.p);
}
END_TEST

START_TEST(test_png_low_bit_grey_is_scaled)
{
	static const uint8_t raw2[] = {0, 0x1b}; /* 0,1,2,3 */
	static const uint8_t want2[] = {0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255};
	expect_row(4, 2, 0, raw2, sizeof raw2, want2);

	static const uint8_t raw1[] = {0, 0x40}; /* 0,1,0 */
	static const uint8_t want1[] = {0, 0, 0, 255, 255, 255, 0, 0, 0};
	expect_row(3, 1, 0, raw1, sizeof raw1, want1);
}
END_TEST

START_TEST(test_png_grey16_clips_like_pil)
{
	/* PIL holds 16-bit grey as 32-bit integers and clips them to 255;
	 * taking the high byte would give 0, 0, 1, 255 instead. */
	static const uint8_t raw[] = {0, 0x00, 0x00, 0x00, 0xc8, 0x01, 0x00, 0xff, 0xff};
	static const uint8_t want[] = {0, 0, 0, 200, 200, 200, 255, 255, 255, 255, 255, 255};
	expect_row(4, 16, 0, raw, sizeof raw, want);
}
END_TEST

START_TEST(test_png_16bit_colour_keeps_high_byte)
{
	static const uint8_t rgb16[] = {0, 0x12, 0x34, 0x80, 0xff, 0xff, 0xff};
	static const uint8_t want_rgb[] = {0x12, 0x80, 0xff};
	expect_row(1, 16, 2, rgb16, sizeof rgb16, want_rgb);

	static const uint8_t ga16[] = {0, 0x12, 0x34, 0x00, 0x00};
	static const uint8_t want_ga[] = {0x12, 0x12, 0x12};
	expect_row(1, 16, 4, ga16, sizeof ga16, want_ga);
}
END_TEST

START_TEST(test_png_alpha_is_dropped_not_composited)
{
	/* Fully transparent pixels keep their colour, as in convert("RGB"). */
	static const uint8_t raw[] = {0, 1, 2, 3, 0, 250, 251, 252, 9};
	static const uint8_t want[] = {1, 2, 3, 250, 251, 252};
	expect_row(2, 8, 6, raw, sizeof raw, want);
}
END_TEST

/* Adam7 pass geometry: x0, y0, dx, dy. */
static const int adam7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
				{0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};

START_TEST(test_png_interlaced)
{
	enum { W = 5, H = 3 };
	uint8_t want[W * H * 3];
	struct buf raw = {0};
	for (int i = 0; i < W * H; i++) {
		want[3 * i] = (uint8_t)(i * 17);
		want[3 * i + 1] = (uint8_t)(255 - i);
		want[3 * i + 2] = (uint8_t)(i * i);
	}
	for (int p = 0; p < 7; p++)
		for (int y = adam7[p][1]; y < H; y += adam7[p][3]) {
			if (adam7[p][0] >= W)
				break;
			put(&raw, "", 1); /* filter: none */
			for (int x = adam7[p][0]; x < W; x += adam7[p][2])
				put(&raw, want + 3 * (y * W + x), 3);
		}
	struct png_spec s = {.w = W, .h = H, .depth = 8, .color_type = 2, .interlace = 1,
			     .raw = raw.p, .raw_len = raw.n};
	struct buf b = make_png(&s);
	expect_pixels(&b, W, H, want);
	free(b.p);
	free(raw.p);
}
END_TEST

/* ---- failures ------------------------------------------------------------ */

static char tmpdir[64];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/check_image.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char path[512];
	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
			chmod(path, 0600);
			unlink(path);
		}
	closedir(d);
	rmdir(tmpdir);
}

static const char *tmp_path(const char *name)
{
	static char path[512];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	return path;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

/* Decode path, expect code and a message naming the file and containing
 * what. */
static void expect_file_error(const char *path, int code, const char *what)
{
	hydb_image img = {.w = 7};
	int rc = hydb_image_decode_file(&img, path, 0);
	ck_assert_msg(rc == code, "%s: got %d (%s), want %d", path, rc, hydb_last_error(), code);
	ck_assert_ptr_null(img.rgb);
	ck_assert_int_eq(img.w, 0);
	ck_assert_msg(strstr(hydb_last_error(), path), "message lacks path: %s",
		      hydb_last_error());
	ck_assert_msg(strstr(hydb_last_error(), what), "message lacks '%s': %s", what,
		      hydb_last_error());
}

/* Write the first n bytes of b as tmpdir/name and expect an error. */
static void expect_bytes_error(const struct buf *b, size_t n, const char *name, int code,
			       const char *what)
{
	write_bytes(tmp_path(name), b->p, n);
	expect_file_error(tmp_path(name), code, what);
}

START_TEST(test_os_errors)
{
	expect_file_error(tmp_path("missing.png"), HYDB_ENOTFOUND, "No such file");
	expect_file_error(tmpdir, HYDB_EIO, "is a directory");
	write_bytes(tmp_path("empty.jpg"), "", 0);
	expect_file_error(tmp_path("empty.jpg"), HYDB_EFORMAT, "empty");
	write_bytes(tmp_path("text.png"), "hello, world\n", 13);
	expect_file_error(tmp_path("text.png"), HYDB_EFORMAT, "not a JPEG, PNG or WebP");
	write_bytes(tmp_path("anim.gif"), "GIF89a\1\0\1\0", 10);
	expect_file_error(tmp_path("anim.gif"), HYDB_EFORMAT, "GIF is not supported");
	/* Root reads through mode 000, so EACCES can only be seen as a user. */
	if (geteuid() != 0) {
		write_bytes(tmp_path("secret.png"), "x", 1);
		chmod(tmp_path("secret.png"), 0);
		expect_file_error(tmp_path("secret.png"), HYDB_EIO, "Permission denied");
	}
}
END_TEST

static struct buf grey_png(uint32_t w, uint32_t h)
{
	struct buf raw = {0};
	for (uint32_t y = 0; y < h; y++) {
		put(&raw, "", 1);
		for (uint32_t x = 0; x < w; x++) {
			uint8_t v = (uint8_t)(x * 9 + y * 31);
			put(&raw, &v, 1);
		}
	}
	struct png_spec s = {.w = w, .h = h, .depth = 8, .color_type = 0, .raw = raw.p,
			     .raw_len = raw.n};
	struct buf b = make_png(&s);
	free(raw.p);
	return b;
}

START_TEST(test_png_truncated)
{
	struct buf b = grey_png(40, 30);
	hydb_image img;
	ck_assert_int_eq(hydb_image_decode_memory(&img, b.p, b.n, 0, "whole"), HYDB_OK);
	hydb_image_free(&img);
	/* Cut inside IDAT: half the rows are missing. */
	expect_bytes_error(&b, b.n / 2, "cut.png", HYDB_EFORMAT, "truncated");
	free(b.p);
}
END_TEST

START_TEST(test_png_header_bomb_fails_before_allocating)
{
	/* 100000 x 100000 RGB would need 30 GB; the header is followed by one
	 * row's worth of compressed data at most. */
	static const uint8_t raw[64] = {0};
	struct png_spec s = {.w = 100000, .h = 100000, .depth = 8, .color_type = 2,
			     .raw = raw, .raw_len = sizeof raw};
	struct buf b = make_png(&s);
	expect_bytes_error(&b, b.n, "bomb.png", HYDB_ETOOBIG, "100000x100000");
	free(b.p);
}
END_TEST

START_TEST(test_pixel_cap_is_exact)
{
	struct buf b = grey_png(10, 10);
	hydb_image img;
	ck_assert_int_eq(hydb_image_decode_memory(&img, b.p, b.n, 99, "cap"), HYDB_ETOOBIG);
	ck_assert_int_eq(hydb_image_decode_memory(&img, b.p, b.n, 100, "cap"), HYDB_OK);
	ck_assert_int_eq(img.rgb[3 * 11], (uint8_t)(9 + 31));
	hydb_image_free(&img);
	free(b.p);
}
END_TEST

/* A w x h JPEG made with libjpeg; caller frees. */
static struct buf make_jpeg(int w, int h)
{
	struct jpeg_compress_struct ci;
	struct jpeg_error_mgr jerr;
	unsigned char *mem = NULL;
	unsigned long len = 0;
	ci.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&ci);
	jpeg_mem_dest(&ci, &mem, &len);
	ci.image_width = w;
	ci.image_height = h;
	ci.input_components = 3;
	ci.in_color_space = JCS_RGB;
	jpeg_set_defaults(&ci);
	jpeg_start_compress(&ci, TRUE);
	uint8_t *row = malloc((size_t)w * 3);
	while (ci.next_scanline < ci.image_height) {
		for (int x = 0; x < w * 3; x++)
			row[x] = (uint8_t)(x * 5 + ci.next_scanline * 3);
		jpeg_write_scanlines(&ci, &row, 1);
	}
	jpeg_finish_compress(&ci);
	jpeg_destroy_compress(&ci);
	free(row);
	struct buf b = {0};
	put(&b, mem, len);
	free(mem);
	return b;
}

START_TEST(test_jpeg_truncated_is_an_error)
{
	struct buf b = make_jpeg(64, 48);
	hydb_image img;
	ck_assert_int_eq(hydb_image_decode_memory(&img, b.p, b.n, 0, "ok.jpg"), HYDB_OK);
	ck_assert_int_eq(img.w, 64);
	ck_assert_int_eq(img.h, 48);
	hydb_image_free(&img);
	/* libjpeg alone would fill the missing rows with grey and succeed. */
	expect_bytes_error(&b, b.n * 2 / 3, "cut.jpg", HYDB_EFORMAT, "Premature end");
	free(b.p);
	const char *sk = "/usr/lib/python3/dist-packages/skimage/data/truncated.jpg";
	if (access(sk, R_OK) == 0)
		expect_file_error(sk, HYDB_EFORMAT, "Premature end");
}
END_TEST

START_TEST(test_jpeg_header_bomb)
{
	struct buf b = make_jpeg(16, 16);
	/* Patch the SOF0 frame size to 60000 x 60000. */
	size_t i = 2;
	while (i + 9 < b.n && !(b.p[i] == 0xff && b.p[i + 1] == 0xc0))
		i++;
	ck_assert_uint_lt(i + 9, b.n);
	b.p[i + 5] = 60000 >> 8;
	b.p[i + 6] = 60000 & 0xff;
	b.p[i + 7] = 60000 >> 8;
	b.p[i + 8] = 60000 & 0xff;
	expect_bytes_error(&b, b.n, "bomb.jpg", HYDB_ETOOBIG, "60000x60000");
	free(b.p);
}
END_TEST

START_TEST(test_format_from_bytes_not_name)
{
	struct buf b = grey_png(5, 4);
	write_bytes(tmp_path("actually_png.jpg"), b.p, b.n);
	hydb_image img;
	ck_assert_int_eq(hydb_image_decode_file(&img, tmp_path("actually_png.jpg"), 0), HYDB_OK);
	ck_assert_int_eq(img.w, 5);
	hydb_image_free(&img);
	free(b.p);
}
END_TEST

START_TEST(test_webp_truncated)
{
#ifdef HAVE_WEBP
	const char *src = getenv("HYDB_SRCDIR");
	char path[1024];
	if (!src)
		return;
	snprintf(path, sizeof path, "%s/tests/data/lossy.webp", src);
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	uint8_t data[65536];
	size_t n = fread(data, 1, sizeof data, f);
	fclose(f);
	hydb_image img;
	ck_assert_int_eq(hydb_image_decode_memory(&img, data, n, 0, "w"), HYDB_OK);
	ck_assert_int_eq(img.w, 97);
	hydb_image_free(&img);
	ck_assert_int_eq(hydb_image_decode_memory(&img, data, n / 2, 0, "w"), HYDB_EFORMAT);
#endif
}
END_TEST

/* ---- PNG writer ---------------------------------------------------------- */

START_TEST(test_png_write_roundtrip_leaves_no_temp)
{
	enum { W = 7, H = 5 };
	uint8_t rgb[W * H * 3];
	for (int i = 0; i < W * H * 3; i++)
		rgb[i] = (uint8_t)(i * 37 + 11);
	ck_assert_int_eq(hydb_png_write(tmp_path("out.png"), rgb, W, H), HYDB_OK);
	hydb_image img;
	ck_assert_int_eq(hydb_image_decode_file(&img, tmp_path("out.png"), 0), HYDB_OK);
	ck_assert_int_eq(img.w, W);
	ck_assert_int_eq(img.h, H);
	ck_assert_mem_eq(img.rgb, rgb, sizeof rgb);
	hydb_image_free(&img);
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d)))
		files += e->d_name[0] != '.';
	closedir(d);
	ck_assert_int_eq(files, 1);
	ck_assert_int_eq(hydb_png_write(tmp_path("no/such/dir.png"), rgb, W, H),
			 HYDB_ENOTFOUND);
	ck_assert_int_eq(hydb_png_write(tmp_path("zero.png"), rgb, 0, H), HYDB_EINVAL);
}
END_TEST

/* ---- preprocessing ------------------------------------------------------- */

static hydb_image image_from(int w, int h, const uint8_t *rgb)
{
	hydb_image img = {w, h, malloc((size_t)w * h * 3)};
	memcpy(img.rgb, rgb, (size_t)w * h * 3);
	return img;
}

/* The size x size crop of a w x h image must equal want. */
static void expect_crop(int w, int h, const uint8_t *in, int size, const uint8_t *want)
{
	hydb_image img = image_from(w, h, in);
	uint8_t *out = malloc((size_t)size * size * 3);
	ck_assert_int_eq(hydb_clip_preprocess_u8(out, &img, size), HYDB_OK);
	ck_assert_mem_eq(out, want, (size_t)size * size * 3);
	free(out);
	hydb_image_free(&img);
}

START_TEST(test_crop_matches_pillow_upscale)
{
	/* 5x3 -> 6x4 (int(4*5/3) = 6), crop columns 1..4; expected values
	 * from PIL 9.4 Image.resize((6, 4), Image.BICUBIC). */
	static const uint8_t in[] = {
		0, 37, 74, 53, 90, 127, 106, 143, 180, 159, 196, 233, 212, 249, 30,
		101, 138, 175, 154, 191, 228, 207, 244, 25, 4, 41, 78, 57, 94, 131,
		202, 239, 20, 255, 36, 73, 52, 89, 126, 105, 142, 179, 158, 195, 232};
	static const uint8_t want[] = {
		33, 70, 106, 78, 115, 161, 128, 165, 225, 183, 220, 197,
		93, 145, 198, 164, 209, 124, 133, 169, 90, 58, 95, 123,
		189, 146, 174, 184, 179, 100, 101, 145, 60, 34, 71, 124,
		255, 72, 49, 127, 44, 104, 52, 108, 154, 126, 163, 199};
	expect_crop(5, 3, in, 4, want);
}
END_TEST

START_TEST(test_crop_matches_pillow_downscale)
{
	/* 9x7 -> 3x3 (antialiased support 2 * 3 input pixels). */
	static const uint8_t want[] = {32, 109, 186, 129, 156, 137, 155, 108, 108,
				       105, 180, 120, 138, 133, 97,  118, 131, 143,
				       173, 191, 43,  119, 110, 138, 115, 136, 155};
	uint8_t in[9 * 7 * 3];
	for (int j = 0; j < 7; j++)
		for (int i = 0; i < 9; i++)
			for (int c = 0; c < 3; c++)
				in[(j * 9 + i) * 3 + c] = (uint8_t)((i * i * 7 + j * 29 + c * 71) % 256);
	expect_crop(9, 7, in, 3, want);
}
END_TEST

START_TEST(test_crop_without_resize_is_centred)
{
	/* Short side already equals size: no filtering, rows (10-4)//2 = 3. */
	enum { W = 4, H = 10 };
	uint8_t in[W * H * 3];
	for (int i = 0; i < W * H * 3; i++)
		in[i] = (uint8_t)i;
	expect_crop(W, H, in, 4, in + 3 * W * 3);
}
END_TEST

START_TEST(test_uniform_image_stays_uniform)
{
	enum { W = 301, H = 233 };
	uint8_t *in = malloc(W * H * 3), *out = malloc(224 * 224 * 3);
	for (int i = 0; i < W * H; i++) {
		in[3 * i] = 17;
		in[3 * i + 1] = 99;
		in[3 * i + 2] = 250;
	}
	hydb_image img = {W, H, in};
	ck_assert_int_eq(hydb_clip_preprocess_u8(out, &img, 224), HYDB_OK);
	for (int i = 0; i < 224 * 224; i++) {
		ck_assert_int_eq(out[3 * i], 17);
		ck_assert_int_eq(out[3 * i + 1], 99);
		ck_assert_int_eq(out[3 * i + 2], 250);
	}
	free(out);
	hydb_image_free(&img);
}
END_TEST

START_TEST(test_normalised_tensor_is_chw)
{
	static const uint8_t px[] = {0, 128, 255};
	enum { S = 8 };
	uint8_t in[S * S * 3];
	float out[3 * S * S];
	for (int i = 0; i < S * S; i++)
		memcpy(in + 3 * i, px, 3);
	hydb_image img = image_from(S, S, in);
	ck_assert_int_eq(hydb_clip_preprocess(out, &img, S, NULL, NULL), HYDB_OK);
	for (int c = 0; c < 3; c++) {
		double want = (px[c] / 255.0 - hydb_clip_mean[c]) / hydb_clip_std[c];
		for (int i = 0; i < S * S; i++)
			ck_assert_double_eq_tol(out[c * S * S + i], want, 1e-6);
	}
	/* Channel 0 of black: -mean/std = -1.7923 for CLIP's red. */
	ck_assert_double_eq_tol(out[0], -1.79226, 1e-4);
	hydb_image_free(&img);
}
END_TEST

START_TEST(test_preprocess_rejects_bad_arguments)
{
	uint8_t px[3] = {1, 2, 3}, out[3];
	hydb_image img = {1, 1, px};
	ck_assert_int_eq(hydb_clip_preprocess_u8(out, &img, 0), HYDB_EINVAL);
	ck_assert_int_eq(hydb_clip_preprocess_u8(out, &img, HYDB_CLIP_MAX_SIZE + 1), HYDB_EINVAL);
	ck_assert_int_eq(hydb_clip_preprocess_u8(NULL, &img, 1), HYDB_EINVAL);
	ck_assert_int_eq(hydb_clip_preprocess_u8(out, &img, 1), HYDB_OK);
	ck_assert_mem_eq(out, px, 3);
	/* A 1 x 2,000,000 strip would need a 448-million-pixel resize. */
	hydb_image strip = {1, 2000000, calloc(2000000, 3)};
	uint8_t *big = malloc(224 * 224 * 3);
	ck_assert_int_eq(hydb_clip_preprocess_u8(big, &strip, 224), HYDB_ETOOBIG);
	free(big);
	hydb_image_free(&strip);
}
END_TEST

static Suite *image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *png = tcase_create("png");
	tcase_add_test(png, test_png_palette_with_transparency_drops_alpha);
	tcase_add_test(png, test_png_low_bit_grey_is_scaled);
	tcase_add_test(png, test_png_grey16_clips_like_pil);
	tcase_add_test(png, test_png_16bit_colour_keeps_high_byte);
	tcase_add_test(png, test_png_alpha_is_dropped_not_composited);
	tcase_add_test(png, test_png_interlaced);
	suite_add_tcase(s, png);

	TCase *err = tcase_create("errors");
	tcase_add_checked_fixture(err, make_tmpdir, remove_tmpdir);
	tcase_add_test(err, test_os_errors);
	tcase_add_test(err, test_png_truncated);
	tcase_add_test(err, test_png_header_bomb_fails_before_allocating);
	tcase_add_test(err, test_pixel_cap_is_exact);
	tcase_add_test(err, test_jpeg_truncated_is_an_error);
	tcase_add_test(err, test_jpeg_header_bomb);
	tcase_add_test(err, test_format_from_bytes_not_name);
	tcase_add_test(err, test_webp_truncated);
	tcase_add_test(err, test_png_write_roundtrip_leaves_no_temp);
	suite_add_tcase(s, err);

	TCase *pre = tcase_create("preprocess");
	tcase_add_test(pre, test_crop_matches_pillow_upscale);
	tcase_add_test(pre, test_crop_matches_pillow_downscale);
	tcase_add_test(pre, test_crop_without_resize_is_centred);
	tcase_add_test(pre, test_uniform_image_stays_uniform);
	tcase_add_test(pre, test_normalised_tensor_is_chw);
	tcase_add_test(pre, test_preprocess_rejects_bad_arguments);
	suite_add_tcase(s, pre);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(image_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
