/* fuzz_file.c - the scratch file behind hydb_fuzz_file (see fuzz.h). */
#include "fuzz.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static char path[256];

static void remove_scratch(void)
{
	if (path[0])
		unlink(path);
}

const char *hydb_fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
	size_t done = 0;
	int fd;
	if (!path[0]) {
		const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(path, sizeof path, "%s/hydb-fuzz-%ld%s", dir, (long)getpid(), suffix);
		atexit(remove_scratch);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return NULL;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0) {
			close(fd);
			return NULL;
		}
		done += (size_t)n;
	}
	close(fd);
	return path;
}
