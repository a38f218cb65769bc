/* model_select.c - choosing the model for a database; contact sheets. */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cli/cli.h"
#include "cli/model_select.h"

/* Curvatures closer than this (relative) are the same: a database created
 * from a model stores the model's value exactly; anything else is another
 * geometry. */
#define CURVATURE_RTOL 1e-6

int hydb_cli_model_fits_db(const hydb_model *m, hydb_db *db, const char *path)
{
	double cm = hydb_model_curvature(m), cd = hydb_curvature(db);
	RETURN_ERROR_IF(hydb_model_dim(m) != hydb_dim(db), HYDB_EDIM,
			"%s: model embeds in %zu dimensions, the database has %zu", path,
			hydb_model_dim(m), hydb_dim(db));
	/* Radii, labels and distances all depend on c: a model of another
	 * curvature would store points of another hyperboloid. */
	RETURN_ERROR_IF(!(fabs(cm - cd) <= CURVATURE_RTOL * fmax(fabs(cm), fabs(cd))), HYDB_EMISMATCH,
			"%s: model curvature %.9g differs from the database's %.9g; "
			"use a model of the same curvature or a new database", path, cm, cd);
	return HYDB_OK;
}

int hydb_cli_model_open(hydb_model **out, const char *path, hydb_precision precision)
{
	hydb_model_options o;
	hydb_model_options_init(&o);
	o.precision = precision;
	return hydb_model_open_ex(out, path, &o);
}

int hydb_cli_parse_precision(const char *cmd, const char *text, hydb_precision *out)
{
	if (hydb_precision_parse(text, out) < 0)
		return hydb_cli_fail(cmd, HYDB_EXIT_USAGE, "--precision %s: use f32 or bf16", text);
	return 0;
}

int hydb_cli_precision_fits_db(const hydb_model *m, hydb_db *db)
{
	char got[16], hash[64];
	const char *want = hydb_precision_name(hydb_model_precision(m));
	if (hydb_db_meta_get(db, "model_precision", got, sizeof got) < 0) {
		/* Embeddings made before precisions were recorded are f32. */
		if (hydb_db_meta_get(db, "model_hash", hash, sizeof hash) < 0)
			return HYDB_OK;
		snprintf(got, sizeof got, "f32");
	}
	RETURN_ERROR_IF(strcmp(got, want), HYDB_EMISMATCH,
			"this database's embeddings were made with --precision %s; refusing to add "
			"--precision %s ones (use --precision %s or a new database)", got, want, got);
	return HYDB_OK;
}

int hydb_cli_model_for_db(hydb_model **out, hydb_db *db, const char *explicit_path,
			  hydb_precision precision)
{
	char recorded[PATH_MAX + 1], hash[64];
	const char *path = explicit_path;
	int rc, have_hash = hydb_db_meta_get(db, "model_hash", hash, sizeof hash) == 0;

	if (!path || !*path)
		path = getenv("HYDB_MODEL");
	if ((!path || !*path) && hydb_db_meta_get(db, "model_path", recorded, sizeof recorded) == 0)
		path = recorded;
	RETURN_ERROR_IF(!path || !*path, HYDB_EINVAL,
			"no model: pass --model FILE or set HYDB_MODEL (this database records none)");
	FORWARD_IF_ERROR(hydb_cli_model_open(out, path, precision));
	if (have_hash && strcmp(hash, hydb_model_hash(*out))) {
		char got[17];
		snprintf(got, sizeof got, "%s", hydb_model_hash(*out));
		hydb_model_close(*out);
		*out = NULL;
		return hydb_error_set(HYDB_EMISMATCH,
				      "%s: model hash %s differs from %s, which made this database's embeddings; "
				      "use that model or a new database", path, got, hash);
	}
	rc = hydb_cli_model_fits_db(*out, db, path);
	if (rc < 0) {
		hydb_model_close(*out);
		*out = NULL;
	}
	return rc;
}

int hydb_cli_model_record(hydb_db *db, hydb_model *m, const char *path)
{
	char hash[64], abs[PATH_MAX];
	if (hydb_db_meta_get(db, "model_hash", hash, sizeof hash) == 0) {
		RETURN_ERROR_IF(strcmp(hash, hydb_model_hash(m)), HYDB_EMISMATCH,
				"%s: model hash %s differs from %s, which made this database's embeddings; "
				"refusing to mix models", path, hydb_model_hash(m), hash);
		return hydb_cli_precision_fits_db(m, db);
	}
	if (!realpath(path, abs))
		snprintf(abs, sizeof abs, "%s", path);
	{
		char b1[64], b2[64];
		snprintf(b1, sizeof b1, "%.9g", hydb_model_bound(m, HYDB_MOD_IMAGE));
		snprintf(b2, sizeof b2, "%.9g", hydb_model_bound(m, HYDB_MOD_TEXT));
		const char *names[] = {"model_hash", "model_path", "bound_image_up95", "bound_text_up95",
				       "model_precision"};
		const char *vals[] = {hydb_model_hash(m), abs, b1, b2,
				      hydb_precision_name(hydb_model_precision(m))};
		for (int i = 0; i < 5; i++)
			FORWARD_IF_ERROR(hydb_db_put_meta(db, NULL, 0, NULL, names[i], vals[i]));
	}
	return HYDB_OK;
}
