/*
 * args.c - strict parsing of numeric options and of the [DB] argument.
 *
 * strtoul accepts "-1" (as ULONG_MAX), " 5", "5x" with an end pointer nobody
 * checks, and "abc" as 0; each of these once reached the library as a huge
 * beam or a silent default. Every numeric option goes through here instead:
 * the whole string must be the number, in range, or the command stops with
 * one line naming the option, the text and the range.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <getopt.h>

#include "cli/cli.h"

int hydb_cli_parse_uint(const char *cmd, const char *opt, const char *s,
			unsigned long long lo, unsigned long long hi,
			unsigned long long *out)
{
	char *end;
	unsigned long long v;
	if (!s || !isdigit((unsigned char)*s))
		return hydb_cli_fail(cmd, HYDB_EXIT_USAGE, "%s: '%s' is not an integer in %llu..%llu",
				     opt, s ? s : "", lo, hi);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end || errno == ERANGE || v < lo || v > hi)
		return hydb_cli_fail(cmd, HYDB_EXIT_USAGE, "%s: '%s' is not an integer in %llu..%llu",
				     opt, s, lo, hi);
	*out = v;
	return 0;
}

int hydb_cli_parse_size(const char *cmd, const char *opt, const char *s, size_t lo,
			size_t hi, size_t *out)
{
	unsigned long long v;
	int rc = hydb_cli_parse_uint(cmd, opt, s, lo, hi, &v);
	if (rc == 0)
		*out = (size_t)v;
	return rc;
}

int hydb_cli_parse_double(const char *cmd, const char *opt, const char *s, double lo,
			  double hi, double *out)
{
	char *end;
	double v;
	if (!s || !*s || isspace((unsigned char)*s))
		return hydb_cli_fail(cmd, HYDB_EXIT_USAGE, "%s: '%s' is not a number in %g..%g", opt,
				     s ? s : "", lo, hi);
	errno = 0;
	v = strtod(s, &end);
	if (*end || errno == ERANGE || !isfinite(v) || v < lo || v > hi)
		return hydb_cli_fail(cmd, HYDB_EXIT_USAGE, "%s: '%s' is not a number in %g..%g", opt,
				     s, lo, hi);
	*out = v;
	return 0;
}

/* A path names a database when it is a directory holding LMDB's data file,
 * or when it is spelled like one (ends in ".db"); anything else is a key. */
static int spelled_like_db(const char *s)
{
	size_t n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		n--;
	return n >= 3 && !memcmp(s + n - 3, ".db", 3);
}

int hydb_cli_db_positional(const char *cmd, int argc, char **argv, int *first,
			   int keys_follow, const char **path)
{
	struct stat sb;
	const char *a;
	*path = NULL;
	if (*first >= argc)
		return 0;
	a = argv[*first];
	if (stat(a, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		(*first)++;
		*path = a;
		return 0;
	}
	/* What is at the path decides, so this is a data error (exit 2), as
	 * when hydb_open finds no database in a directory. */
	if (keys_follow == HYDB_CLI_NOTHING_FOLLOWS || spelled_like_db(a) ||
	    (keys_follow == HYDB_CLI_KEYS_FOLLOW && *first + 1 < argc && stat(a, &sb) == 0))
		return hydb_cli_fail(cmd, HYDB_EXIT_DATA, "%s: %s", a,
				     stat(a, &sb) == 0 ? "not a database directory"
						       : "no database there");
	return 0;
}

int hydb_cli_bad_option(const char *cmd, char **argv)
{
	/* getopt leaves optind past the offending word; opterr is 0 (main.c),
	 * so this is the only line printed. */
	return hydb_cli_fail(cmd, HYDB_EXIT_USAGE, "'%s': unknown option or missing value (see hydb %s --help)",
			     argv[optind - 1], cmd);
}
