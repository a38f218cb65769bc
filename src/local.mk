# Public API, geometry, exact search and the command-line tool.
libhydb_internal_la_SOURCES += \
	src/hydb.h src/internal.h src/search.h \
	src/error.c src/util.c

hydb_SOURCES += src/cli/main.c src/cli/cli.h

include src/geo.mk
