/* model_select.h - which model the CLI uses, and image contact sheets. */
#ifndef HYDB_CLI_MODEL_SELECT_H
#define HYDB_CLI_MODEL_SELECT_H

#include "hydb.h"

/* The model for a database: --model, else $HYDB_MODEL, else the model
 * recorded in the database. A model whose hash differs from the one that
 * made the database's embeddings is refused (HYDB_EMISMATCH), and so is one
 * that does not fit the database (hydb_cli_model_fits_db). */
int hydb_cli_model_for_db(hydb_model **out, hydb_db *db, const char *explicit_path,
			  hydb_precision precision);
/* hydb_model_open_ex at the given precision. */
int hydb_cli_model_open(hydb_model **out, const char *path, hydb_precision precision);
/* --precision's argument for command cmd: 0, or the usage exit status after
 * reporting. */
int hydb_cli_parse_precision(const char *cmd, const char *text, hydb_precision *out);
/* HYDB_EMISMATCH unless m runs at the precision that made the database's
 * embeddings (its meta "model_precision"; f32 for a database made before
 * precisions were recorded, none for one with no embeddings yet): a
 * database holds embeddings of one precision only. */
int hydb_cli_precision_fits_db(const hydb_model *m, hydb_db *db);
/* HYDB_EDIM unless the model's dimension is the database's; HYDB_EMISMATCH
 * unless its curvature is the database's (relative tolerance 1e-6). path
 * names the model in the message. */
int hydb_cli_model_fits_db(const hydb_model *m, hydb_db *db, const char *path);
/* Record path, hash and precision of the model in the database (first
 * ingest); refuse another model or precision (hydb_cli_precision_fits_db). */
int hydb_cli_model_record(hydb_db *db, hydb_model *m, const char *path);
/* Thumbnails of the image results in a grid, written as PNG. */
int hydb_cli_contact_sheet(const char *path, hydb_db *db, const hydb_results *res);

#endif
