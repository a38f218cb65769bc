/*
 * replay.c - runs a fuzz target over stored inputs without libFuzzer, so
 * that 'make check' (and the sanitizer build) keeps every seed and every
 * past finding passing.
 *
 * Usage: replay_<target> [FILE|DIR]...
 * Without arguments: $HYDB_SRCDIR/tests/fuzz/corpus/<target>, the target
 * being the program name after "replay_".
 */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat sb;
	uint8_t *buf;
	size_t n;
	if (!f || fstat(fileno(f), &sb) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	/* Exactly the input's size, so that an over-read is caught. */
	buf = malloc(sb.st_size ? (size_t)sb.st_size : 1);
	n = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
	fclose(f);
	if (!buf || n != (size_t)sb.st_size) {
		fprintf(stderr, "%s: cannot read\n", path);
		free(buf);
		return -1;
	}
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Returns the number of inputs run, or -1. */
static long replay_path(const char *path)
{
	struct dirent **names;
	struct stat sb;
	long count = 0;
	int n;
	if (stat(path, &sb) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode))
		return replay_file(path) < 0 ? -1 : 1;
	n = scandir(path, &names, NULL, by_name);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char full[4096 + 256 + 2];
		if (names[i]->d_name[0] != '.' && count >= 0) {
			snprintf(full, sizeof full, "%s/%s", path, names[i]->d_name);
			count = replay_file(full) < 0 ? -1 : count + 1;
		}
		free(names[i]);
	}
	free(names);
	return count;
}

static const char *target_name(const char *argv0)
{
	const char *base = strrchr(argv0, '/') ? strrchr(argv0, '/') + 1 : argv0;
	const char *t = strstr(base, "replay_");
	return t ? t + strlen("replay_") : base;
}

int main(int argc, char **argv)
{
	const char *name = target_name(argv[0]);
	char dir[4096];
	long total = 0;
	if (argc < 2) {
		const char *src = getenv("HYDB_SRCDIR");
		snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", src ? src : ".", name);
	}
	for (int i = 1; i < argc || (argc < 2 && i == 1); i++) {
		const char *path = argc < 2 ? dir : argv[i];
		long n = replay_path(path);
		if (n <= 0) {
			fprintf(stderr, "%s: no inputs replayed\n", path);
			return 1;
		}
		total += n;
	}
	printf("%s: %ld inputs replayed\n", name, total);
	return 0;
}
