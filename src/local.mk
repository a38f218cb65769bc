# Public API, geometry, exact search and the command-line tool.
libhydb_internal_la_SOURCES += \
	src/hydb.h src/internal.h \
	src/error.c src/util.c src/lorentz.c src/lorentz.h

hydb_SOURCES += src/cli/main.c
