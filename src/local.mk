# Public API (library face), exact search, the encode calls and the command-line tool.
# A query travels: cli/cmd_query.c -> search.c -> index/ (or search_exact.c)
# -> storage/; a write: cli/cmd_import.c -> import.c -> db.c -> storage/ + index/.
libhydb_internal_la_SOURCES += \
	src/hydb.h src/admin.h src/search_exact.h src/db_internal.h \
	src/db.c src/search.c src/tune.c src/import.c src/import.h src/inspect.c \
	src/encode.c
# What the tool needs of encoder/ without including it (admin.h).
libhydb_internal_la_SOURCES += src/image_tool.c src/model_desc.c

hydb_SOURCES += src/cli/main.c src/cli/cli.h src/cli/args.c src/cli/output.c src/cli/output.h \
	src/cli/cmd_db.c src/cli/cmd_import.c src/cli/cmd_query.c src/cli/cmd_tune.c \
	src/cli/query_input.c src/cli/query_input.h src/cli/sheet.c \
	src/cli/model_select.c src/cli/model_select.h \
	src/cli/cmd_ingest.c src/cli/ingest.h src/cli/cmd_safety.c src/cli/safety.h \
	src/cli/cmd_check.c src/cli/glyphs.h \
	src/cli/cmd_encode.c src/cli/cmd_preprocess.c src/cli/cmd_model.c src/cli/cmd_traverse.c

include src/geo.mk
include src/evaluate.mk
