/*
 * sheet.c - `hydb query --sheet OUT.png`: the image results as a contact
 * sheet. Each tile is the crop the encoder saw, framed green (safe), red
 * (unsafe) or grey (unknown), with its rank, distance, radius and key
 * printed under it; a result whose source file is gone gets a crossed
 * placeholder and a warning, so the sheet never silently shows less.
 * Text is drawn with FreeType from DejaVu Sans Mono (keys are any UTF-8);
 * without the font the 5x7 built-in glyphs stand in.
 */
#include "config.h"

#include <ft2build.h>
#include FT_FREETYPE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "cli/cli.h"
#include "cli/glyphs.h"
#include "cli/model_select.h"

#define TILE 224
#define FRAME 4
#define PAD 8
#define LINE_H 16
#define TEXT_LINES 3
#define MAX_COLS 8
#define FONT_PX 13
#define DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"

typedef struct {
	uint8_t *px;
	int w, h;
	FT_Library ft;
	FT_Face face; /* NULL: the built-in glyphs */
} canvas;

static const uint8_t C_SAFE[3] = {40, 170, 70}, C_UNSAFE[3] = {210, 50, 40}, C_UNKNOWN[3] = {150, 150, 150},
		     C_TEXT[3] = {235, 235, 235}, C_BG[3] = {30, 30, 30}, C_MISSING[3] = {70, 70, 70};

static void fill(canvas *c, int x0, int y0, int w, int h, const uint8_t rgb[3])
{
	for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < c->h; y++)
		for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < c->w; x++)
			memcpy(c->px + ((size_t)y * c->w + x) * 3, rgb, 3);
}

/* Next code point of UTF-8 text (stored keys are valid UTF-8). */
static unsigned next_cp(const char **s)
{
	const unsigned char *p = (const unsigned char *)*s;
	unsigned cp = *p, n = cp < 0x80 ? 0 : cp < 0xE0 ? 1 : cp < 0xF0 ? 2 : 3;
	cp &= n ? 0x3F >> n : 0x7F;
	for (unsigned i = 1; i <= n && p[i]; i++)
		cp = cp << 6 | (p[i] & 0x3F);
	*s += 1 + n;
	return cp;
}

/* One glyph at the pen; returns the advance. */
static int glyph(canvas *c, int pen, int y, unsigned cp, const uint8_t rgb[3])
{
	FT_GlyphSlot g;
	if (FT_Load_Char(c->face, cp, FT_LOAD_RENDER))
		return 0;
	g = c->face->glyph;
	for (unsigned r = 0; r < g->bitmap.rows; r++)
		for (unsigned col = 0; col < g->bitmap.width; col++) {
			int px = pen + g->bitmap_left + (int)col, py = y - g->bitmap_top + (int)r;
			unsigned a = g->bitmap.buffer[r * g->bitmap.pitch + col];
			uint8_t *d;
			if (!a || px < 0 || py < 0 || px >= c->w || py >= c->h)
				continue;
			d = c->px + ((size_t)py * c->w + px) * 3;
			for (int k = 0; k < 3; k++)
				d[k] = (uint8_t)((rgb[k] * a + d[k] * (255 - a)) / 255);
		}
	return (int)(g->advance.x >> 6);
}

/* Draws text from (x, baseline y) within max_w pixels; a cut is marked
 * with "..." (the font is monospaced, so every glyph is as wide). */
static void text(canvas *c, int x, int y, int max_w, const char *s, const uint8_t rgb[3])
{
	int pen = x, adv, room;
	const char *p = s;
	size_t n = 0;
	if (!c->face) {
		char buf[64];
		snprintf(buf, sizeof buf, "%.*s", max_w / 6 > 63 ? 63 : max_w / 6, s);
		hydb_draw_text(c->px, c->w, c->h, x, y - 8, buf, rgb, 1);
		return;
	}
	if (FT_Load_Char(c->face, 'M', FT_LOAD_DEFAULT) || !(adv = (int)(c->face->glyph->advance.x >> 6)))
		return;
	while (*p) {
		next_cp(&p);
		n++;
	}
	room = max_w / adv;
	for (size_t i = 0; *s && (int)i < room; i++) {
		if (n > (size_t)room && (int)i == room - 3) {
			for (int k = 0; k < 3; k++)
				pen += glyph(c, pen, y, '.', rgb);
			return;
		}
		pen += glyph(c, pen, y, next_cp(&s), rgb);
	}
}

static void font_open(canvas *c)
{
	const char *path = getenv("HYDB_FONT");
	c->face = NULL;
	if (!path || !*path)
		path = DEFAULT_FONT;
	if (FT_Init_FreeType(&c->ft))
		return;
	if (FT_New_Face(c->ft, path, 0, &c->face) || FT_Set_Pixel_Sizes(c->face, 0, FONT_PX)) {
		if (c->face)
			FT_Done_Face(c->face);
		c->face = NULL;
	}
}

static void font_close(canvas *c)
{
	if (c->face)
		FT_Done_Face(c->face);
	FT_Done_FreeType(c->ft);
}

/* The source file of an ingested entry, from its metadata. */
static char *entry_path(hydb_db *db, uint64_t id)
{
	hydb_entry *e;
	hydb_json *j = NULL;
	const hydb_json *p;
	char *out = NULL;
	if (hydb_get_id(db, id, &e) < 0)
		return NULL;
	if (e->meta && hydb_json_parse(&j, e->meta, strlen(e->meta)) == 0 &&
	    (p = hydb_json_get(j, "path")) && p->type == HYDB_JSON_STRING)
		out = strdup(p->str);
	hydb_json_free(j);
	hydb_entry_free(e);
	return out;
}

/* The crop into the tile, or a crossed placeholder (returns 0 then). */
static int draw_image(canvas *c, uint8_t *tile, const char *src, int x0, int y0)
{
	hydb_rgb img;
	int ok = src && hydb_rgb_load(&img, src, 0) == 0;
	if (ok) {
		ok = hydb_rgb_crop(tile, &img, TILE) == 0;
		hydb_rgb_free(&img);
	}
	if (ok) {
		for (int y = 0; y < TILE; y++)
			memcpy(c->px + ((size_t)(y0 + y) * c->w + x0) * 3, tile + (size_t)y * TILE * 3, (size_t)TILE * 3);
		return 1;
	}
	fill(c, x0, y0, TILE, TILE, C_MISSING);
	for (int t = 0; t < TILE; t++)
		for (int d = -1; d <= 1; d++) {
			fill(c, x0 + t, y0 + t + d, 1, 1, C_BG);
			fill(c, x0 + TILE - 1 - t, y0 + t + d, 1, 1, C_BG);
		}
	text(c, x0 + 8, y0 + TILE / 2 - 4, TILE - 16, src ? "source file missing" : "no source recorded", C_TEXT);
	return 0;
}

static void draw_tile(canvas *c, uint8_t *tile, hydb_db *db, const hydb_results *r, size_t i, int x0,
		      int y0)
{
	const uint8_t *frame = r->labels[i] == HYDB_LABEL_SAFE	   ? C_SAFE
			       : r->labels[i] == HYDB_LABEL_UNSAFE ? C_UNSAFE
								   : C_UNKNOWN;
	char line[160], *src = entry_path(db, r->ids[i]);
	int tx = x0 + FRAME, ty = y0 + 2 * FRAME + TILE + LINE_H - 2;
	fill(c, x0, y0, TILE + 2 * FRAME, TILE + 2 * FRAME, frame);
	if (!draw_image(c, tile, src, x0 + FRAME, y0 + FRAME))
		fprintf(stderr, "hydb query: --sheet: %s: %s; a placeholder stands in its tile\n", r->keys[i],
			src ? "source image not found" : "no source file recorded");
	snprintf(line, sizeof line, "#%zu  d %.4f  r %.4f", i + 1, r->distances[i], r->radii[i]);
	text(c, tx, ty, TILE, line, C_TEXT);
	text(c, tx, ty + LINE_H, TILE, r->keys[i], C_TEXT);
	text(c, tx, ty + 2 * LINE_H, TILE,
	     r->labels[i] == HYDB_LABEL_SAFE ? "safe" : r->labels[i] == HYDB_LABEL_UNSAFE ? "unsafe" : "unknown",
	     frame);
	free(src);
}

int hydb_cli_contact_sheet(const char *path, hydb_db *db, const hydb_results *res)
{
	const int cell_w = TILE + 2 * FRAME + PAD, cell_h = TILE + 2 * FRAME + TEXT_LINES * LINE_H + PAD;
	canvas c = {0};
	size_t n = 0, k = 0;
	int cols, rows, rc;
	uint8_t *tile;

	for (size_t i = 0; i < res->n; i++)
		n += res->modalities[i] == HYDB_MOD_IMAGE;
	RETURN_ERROR_IF(n == 0, HYDB_ENOTFOUND, "--sheet: no image among the %zu results to draw", res->n);
	/* One row of as many tiles as results, wrapping after MAX_COLS. */
	cols = n < MAX_COLS ? (int)n : MAX_COLS;
	rows = (int)((n + cols - 1) / cols);
	c.w = cols * cell_w + PAD;
	c.h = rows * cell_h + PAD;
	c.px = malloc((size_t)c.w * c.h * 3);
	tile = malloc((size_t)TILE * TILE * 3);
	if (!c.px || !tile) {
		free(c.px);
		free(tile);
		return hydb_error_set(HYDB_ENOMEM, "--sheet: out of memory");
	}
	fill(&c, 0, 0, c.w, c.h, C_BG);
	font_open(&c);
	for (size_t i = 0; i < res->n; i++) {
		if (res->modalities[i] != HYDB_MOD_IMAGE)
			continue;
		draw_tile(&c, tile, db, res, i, PAD + (int)(k % cols) * cell_w, PAD + (int)(k / cols) * cell_h);
		k++;
	}
	font_close(&c);
	rc = hydb_rgb_write_png(path, c.px, c.w, c.h);
	free(c.px);
	free(tile);
	return rc;
}
