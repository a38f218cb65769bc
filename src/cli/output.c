/* output.c - printing records and search results; the radius histogram. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "admin.h"
#include "cli/cli.h"
#include "cli/glyphs.h"
#include "cli/output.h"

static const char *const mod_names[] = {"other", "image", "text"};
static const char *const label_names[] = {"unknown", "safe", "unsafe"};

const char *hydb_cli_modality_name(int m) { return m >= 0 && m < 3 ? mod_names[m] : "?"; }
const char *hydb_cli_label_name(int l) { return l >= 0 && l < 3 ? label_names[l] : "?"; }

int hydb_cli_modality_parse(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, mod_names[i]))
			return i;
	return -1;
}

int hydb_cli_label_parse(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, label_names[i]))
			return i;
	return -1;
}

void hydb_cli_print_entry(FILE *f, const hydb_entry *e, int json, int with_vector)
{
	if (json) {
		fprintf(f, "{\"id\":%llu,\"key\":", (unsigned long long)e->id);
		hydb_json_write_string(f, e->key);
		fprintf(f, ",\"modality\":\"%s\",\"label\":\"%s\",\"radius\":%.9g,\"item\":%llu",
			hydb_cli_modality_name(e->modality), hydb_cli_label_name(e->label), e->radius,
			(unsigned long long)e->item);
		if (e->caption) {
			fputs(",\"caption\":", f);
			hydb_json_write_string(f, e->caption);
		}
		if (e->meta)
			fprintf(f, ",\"meta\":%s", e->meta);
		if (with_vector) {
			fputs(",\"vector\":[", f);
			for (size_t i = 0; i < e->dim; i++)
				fprintf(f, "%s%.9g", i ? "," : "", e->vector[i]);
			fputc(']', f);
		}
		fputs("}\n", f);
		return;
	}
	fprintf(f, "id        %llu\nkey       %s\nmodality  %s\nlabel     %s\nradius    %.6f\n",
		(unsigned long long)e->id, e->key, hydb_cli_modality_name(e->modality),
		hydb_cli_label_name(e->label), e->radius);
	if (e->item)
		fprintf(f, "item      %llu\n", (unsigned long long)e->item);
	if (e->caption)
		fprintf(f, "caption   %s\n", e->caption);
	if (e->meta)
		fprintf(f, "meta      %s\n", e->meta);
	if (with_vector) {
		fputs("vector    [", f);
		for (size_t i = 0; i < e->dim; i++)
			fprintf(f, "%s%.9g", i ? ", " : "", e->vector[i]);
		fputs("]\n", f);
	}
	fputc('\n', f);
}

static int term_width(FILE *f)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");
	if (isatty(fileno(f)) && ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		return ws.ws_col;
	if (cols && atoi(cols) > 20)
		return atoi(cols);
	return 120;
}

/* Print at most width display columns of UTF-8 s, never splitting a code
 * point; newlines become spaces. */
static void put_clipped(FILE *f, const char *s, int width)
{
	int col = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p && col < width) {
		size_t n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : 4;
		if (col == width - 1 && strlen((const char *)p) > n) {
			fputs("…", f);
			return;
		}
		if (*p == '\n' || *p == '\t' || *p == '\r')
			fputc(' ', f);
		else
			fwrite(p, 1, n, f);
		p += n;
		col++;
	}
}

void hydb_cli_print_results(FILE *f, const hydb_results *r, int json, size_t query_no)
{
	if (json) {
		for (size_t i = 0; i < r->n; i++) {
			fprintf(f, "{\"query\":%zu,\"rank\":%zu,\"id\":%llu,\"key\":", query_no, i + 1,
				(unsigned long long)r->ids[i]);
			hydb_json_write_string(f, r->keys[i]);
			fprintf(f, ",\"distance\":%.9g,\"radius\":%.9g,\"label\":\"%s\",\"modality\":\"%s\",\"item\":%llu,\"caption\":",
				r->distances[i], r->radii[i], hydb_cli_label_name(r->labels[i]),
				hydb_cli_modality_name(r->modalities[i]), (unsigned long long)r->items[i]);
			if (r->captions[i])
				hydb_json_write_string(f, r->captions[i]);
			else
				fputs("null", f);
			fprintf(f, ",\"plan\":\"%s\"", r->plan ? r->plan : "");
			if (r->redirected)
				fprintf(f, ",\"redirected_from\":%.9g,\"redirected_to\":%.9g", r->query_radius,
					r->searched_radius);
			if (r->angles_at_result)
				fprintf(f, ",\"cone\":{\"angle_at_result\":%.9g,\"aperture\":%.9g,"
					"\"angle_at_query\":%.9g,\"query_aperture\":%.9g}",
					r->angles_at_result[i], r->apertures[i], r->angles_at_query[i],
					r->query_aperture);
			fputs("}\n", f);
		}
		return;
	}
	{
		int w = term_width(f), keyw = 28, capw;
		capw = w - (5 + 1 + keyw + 1 + 10 + 1 + 8 + 1 + 7 + 1 + 6 + 1);
		if (capw < 10)
			capw = 10;
		fprintf(f, "%-5s %-*s %10s %8s %-7s %-6s %s\n", "rank", keyw, "key", "distance", "radius",
			"label", "type", "caption");
		for (size_t i = 0; i < r->n; i++) {
			fprintf(f, "%-5zu ", i + 1);
			put_clipped(f, r->keys[i], keyw);
			{
				/* pad by code points, as put_clipped counts them */
				int len = 0;
				for (const unsigned char *p = (const unsigned char *)r->keys[i]; *p; p++)
					len += (*p & 0xC0) != 0x80;
				for (int k = len < keyw ? len : keyw; k < keyw; k++)
					fputc(' ', f);
			}
			fprintf(f, " %10.5f %8.4f %-7s %-6s ", r->distances[i], r->radii[i],
				hydb_cli_label_name(r->labels[i]), hydb_cli_modality_name(r->modalities[i]));
			if (r->captions[i])
				put_clipped(f, r->captions[i], capw);
			fputc('\n', f);
		}
	}
}

/* A plain raster plot, one panel per modality that has entries (other,
 * image, text from top to bottom) on a shared radius axis; in each bin the
 * unknown, safe and unsafe counts stand side by side in grey, green and red,
 * so the safe/unsafe separation is visible at a glance. hist is
 * [3 modality][3 label][stride]. */
int hydb_cli_plot_histogram(const char *path, double rmin, double rmax, int bins, int stride,
			    const uint64_t *hist)
{
	static const uint8_t colours[3][3] = {{150, 150, 150}, {40, 160, 60}, {200, 50, 40}};
	static const uint8_t black[3] = {0, 0, 0};
	static const char *const mod_label[] = {"other", "image", "text"};
	static const char *const lab_label[] = {"unknown", "safe", "unsafe"};
	const int W = 800, panel_h = 150, margin = 30, top = 30, S = 2;
	int mods[3], nm = 0, H, rc;
	uint8_t *img;

	for (int m = 0; m < 3; m++) {
		uint64_t sum = 0;
		for (int l = 0; l < 3; l++)
			for (int b = 0; b < bins; b++)
				sum += hist[(m * 3 + l) * stride + b];
		if (sum)
			mods[nm++] = m;
	}
	if (nm == 0)
		mods[nm++] = 0;
	H = top + nm * panel_h + 40;
	img = malloc((size_t)W * H * 3);
	if (!img)
		return hydb_error_set(HYDB_ENOMEM, "%s: out of memory", path);
	memset(img, 255, (size_t)W * H * 3);
	/* legend: a swatch and the name of each label */
	for (int l = 0, x = margin; l < 3; l++) {
		for (int y = 10; y < 24; y++)
			for (int xx = x; xx < x + 14; xx++)
				memcpy(img + ((size_t)y * W + xx) * 3, colours[l], 3);
		hydb_draw_text(img, W, H, x + 20, 10, lab_label[l], black, S);
		x += 20 + 6 * S * (int)strlen(lab_label[l]) + 30;
	}
	for (int mi = 0; mi < nm; mi++) {
		int m = mods[mi], base = top + mi * panel_h + panel_h - 12;
		uint64_t peak = 1;
		char num[32];
		for (int l = 0; l < 3; l++)
			for (int b = 0; b < bins; b++)
				if (hist[(m * 3 + l) * stride + b] > peak)
					peak = hist[(m * 3 + l) * stride + b];
		for (int b = 0; b < bins; b++) {
			int x0 = margin + b * (W - 2 * margin) / bins;
			int bw = (W - 2 * margin) / bins / 3;
			for (int l = 0; l < 3; l++) {
				int h = (int)((double)(panel_h - 40) * hist[(m * 3 + l) * stride + b] / peak);
				for (int y = base - h; y < base; y++)
					for (int x = x0 + l * bw; x < x0 + (l + 1) * bw - 1; x++)
						memcpy(img + ((size_t)y * W + x) * 3, colours[l], 3);
			}
		}
		/* axis with a tick at every bin edge; modality and peak count */
		for (int x = margin; x < W - margin; x++)
			memset(img + ((size_t)base * W + x) * 3, 0, 3);
		for (int b = 0; b <= bins; b++) {
			int x = margin + b * (W - 2 * margin) / bins;
			for (int y = base; y < base + 5 && x < W; y++)
				memset(img + ((size_t)y * W + x) * 3, 0, 3);
		}
		snprintf(num, sizeof num, "%s  max %llu", mod_label[m], (unsigned long long)peak);
		hydb_draw_text(img, W, H, W - margin - 6 * S * (int)strlen(num), base - (panel_h - 22), num, black, S);
	}
	{
		/* radius range under the last axis */
		char lo[32], hi[32];
		int y = top + nm * panel_h + 4;
		snprintf(lo, sizeof lo, "%.3f", rmin);
		snprintf(hi, sizeof hi, "%.3f", rmax);
		hydb_draw_text(img, W, H, margin, y, lo, black, S);
		hydb_draw_text(img, W, H, W / 2 - 6 * S * 3, y, "radius", black, S);
		hydb_draw_text(img, W, H, W - margin - 6 * S * (int)strlen(hi), y, hi, black, S);
	}
	rc = hydb_rgb_write_png(path, img, W, H);
	free(img);
	return rc;
}
