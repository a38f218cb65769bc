/* eval_manifest.h - the quadruplet manifest `hydb evaluate` reads. */
#ifndef HYDB_CLI_EVAL_MANIFEST_H
#define HYDB_CLI_EVAL_MANIFEST_H

#include <stddef.h>

/* Field names, in the order of field[] below; HySAC's nsfw_caption and
 * nsfw_image are accepted for the unsafe ones. */
#define EVAL_FIELDS {"safe_caption", "unsafe_caption", "safe_image", "unsafe_image"}

struct eval_manifest {
	size_t n, cap;
	char **field;  /* n * 4: safe and unsafe caption, safe and unsafe image
			  path (relative ones resolved against the manifest's
			  directory) */
	size_t *line;  /* each row's line in the file */
};

/* Read path: JSON Lines (one object a line; blank lines skipped) or CSV
 * with a header row naming the fields (RFC 4180 quoting, other columns
 * ignored), told apart by the suffix (.csv, .jsonl, .json, .ndjson) or else
 * by the first character. Errors (message "PATH: line N: reason"):
 * HYDB_ENOTFOUND, HYDB_EIO, HYDB_EFORMAT (malformed line, missing or empty
 * field, no rows), HYDB_EUTF8, HYDB_ENOMEM. */
int eval_manifest_read(struct eval_manifest *mf, const char *path);
void eval_manifest_free(struct eval_manifest *mf);

#endif
