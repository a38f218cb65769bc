/*
 * cli.h - the hydb command-line tool's subcommands (internal).
 *
 * Each subcommand lives in its own src/cli/cmd_*.c and has the signature
 * below: argv[0] is the subcommand name. Exit codes: 0 ok, 1 usage,
 * 2 data error (bad input, I/O, corrupt store).
 */
#ifndef HYDB_CLI_H
#define HYDB_CLI_H

#include <stdio.h>

#include "hydb.h"

#define HYDB_EXIT_OK 0
#define HYDB_EXIT_USAGE 1
#define HYDB_EXIT_DATA 2

typedef int (*hydb_cmd_fn)(int argc, char **argv);

/* Subcommands (weak in main.c so that a partial build still links). */
int hydb_cmd_init(int argc, char **argv);
int hydb_cmd_import(int argc, char **argv);
int hydb_cmd_query(int argc, char **argv);
int hydb_cmd_get(int argc, char **argv);
int hydb_cmd_delete(int argc, char **argv);
int hydb_cmd_stats(int argc, char **argv);
int hydb_cmd_export(int argc, char **argv);
int hydb_cmd_check(int argc, char **argv);
int hydb_cmd_tune(int argc, char **argv);
int hydb_cmd_model(int argc, char **argv);       /* model info FILE */
int hydb_cmd_encode(int argc, char **argv);
int hydb_cmd_preprocess(int argc, char **argv);
int hydb_cmd_ingest(int argc, char **argv);
int hydb_cmd_classify(int argc, char **argv);
int hydb_cmd_calibrate(int argc, char **argv);
int hydb_cmd_traverse(int argc, char **argv);

/* Print "hydb CMD: message" to stderr; returns code. */
int hydb_cli_fail(const char *cmd, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Print "hydb CMD: <hydb_last_error()>" and map the hydb error to an exit
 * code (usage errors -> 1, everything else -> 2). */
int hydb_cli_fail_lib(const char *cmd, int rc);
/* Database path: explicit argument, else $HYDB_PATH, else ./hydb.db. */
const char *hydb_cli_db_path(const char *arg);
/* Open the database at path (NULL: $HYDB_PATH or ./hydb.db). */
int hydb_cli_open(hydb_db **db, const char *path, int readonly);
/* Strict numeric options (src/cli/args.c): the whole of s must be a number
 * in lo..hi, else "hydb CMD: OPT: 's' is not ..." is printed and
 * HYDB_EXIT_USAGE returned; 0 on success. */
int hydb_cli_parse_uint(const char *cmd, const char *opt, const char *s,
			unsigned long long lo, unsigned long long hi,
			unsigned long long *out);
int hydb_cli_parse_size(const char *cmd, const char *opt, const char *s, size_t lo,
			size_t hi, size_t *out);
int hydb_cli_parse_double(const char *cmd, const char *opt, const char *s, double lo,
			  double hi, double *out);
/* The optional [DB] positional at argv[*first]: an existing directory is
 * taken as the database (*first advances; hydb_open then refuses one that
 * is not a database). When keys_follow is 0 (no other positionals), any
 * other word is an error. When keys may follow, a word spelled like a
 * database (ending in ".db") or an existing non-directory followed by more
 * words is an error too: it never falls through to $HYDB_PATH or ./hydb.db
 * as a key. Returns 0, or HYDB_EXIT_DATA with the message printed (what
 * is at a path is data, as for a missing input file). */
int hydb_cli_db_positional(const char *cmd, int argc, char **argv, int *first,
			   int keys_follow, const char **path);
/* keys_follow values: what the other positionals of a command are. With
 * files, an existing file is an input, never taken for a database. */
#define HYDB_CLI_NOTHING_FOLLOWS 0
#define HYDB_CLI_KEYS_FOLLOW 1
#define HYDB_CLI_FILES_FOLLOW 2
/* After getopt_long returned '?' or ':': one line naming the word, exit 1. */
int hydb_cli_bad_option(const char *cmd, char **argv);
/* 1 if stream is a terminal (progress bars), else 0. */
int hydb_cli_isatty(FILE *f);

#endif
